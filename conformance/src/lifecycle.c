/*
 * lifecycle.c - server slots and lifecycle steps of --server mode; see
 * lifecycle.h.
 */
#include "lifecycle.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "match.h"
#include "run.h"
#include "util.h"

static const char *const kinds[] = {
    "server_start",    "server_start_second", "server_stop", "server_restart",
    "workspace_files", "workspace_expect",    NULL};

const char *life_step_kind(const cJSON *st)
{
    const char *const *k;

    for (k = kinds; *k; k++)
        if (cJSON_GetObjectItemCaseSensitive(st, *k))
            return *k;
    return NULL;
}

int life_path_ok(const char *p, int glob)
{
    const char *c = p;

    if (!p || !*p || strlen(p) > LIFE_MAX_PATH || *p == '/')
        return 0;
    for (; *c; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f || *c == '\\')
            return 0;
        if (!glob && strchr("*?[", *c))
            return 0;
    }
    /* Components: none empty, "." or "..". */
    for (c = p;;) {
        const char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);

        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return 0;
        if (!e)
            return 1;
        c = e + 1;
    }
}

int life_args_ok(const char *a)
{
    static const char ok[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ._=/:,+-";

    return a && strlen(a) <= LIFE_MAX_ARGS && strspn(a, ok) == strlen(a);
}

static long scaled(const struct life *l, double ms)
{
    double v = ms * l->cfg->scale;

    return v < 1 ? 1 : v > 86400000.0 ? 86400000L : (long)v;
}

static long step_ms(const struct life *l, const cJSON *o, const char *key, double dflt)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, key);

    return scaled(l, cJSON_IsNumber(t) ? t->valuedouble : dflt);
}

/* ------------------------------------------------------------------ slots */

static char *path_join(const char *a, const char *b)
{
    struct buf p;

    buf_init(&p, PATH_MAX + LIFE_MAX_PATH);
    if (buf_appendf(&p, "%s/%s", a, b) != 0) {
        buf_cleanup(&p);
        return NULL;
    }
    return buf_take(&p, NULL);
}

struct life *life_new(const struct life_cfg *cfg, const char *slot, struct buf *err)
{
    struct life *l = calloc(1, sizeof(*l));

    if (!l || !(l->dir = path_join(cfg->rundir, slot)) || !(l->ws = path_join(l->dir, "ws"))) {
        util_note(err, "%s", "out of memory");
        goto fail;
    }
    l->cfg = cfg;
    if (mkdir(l->dir, 0700) != 0) {
        util_note(err, "cannot create %s: %s", l->dir, strerror(errno));
        goto fail;
    }
    if (server_init(&l->main, l->dir, "main") != 0 ||
        server_init(&l->second, l->dir, "second") != 0) {
        util_note(err, "%s", "out of memory");
        life_free(l);
        return NULL;
    }
    return l;
fail:
    if (l) {
        free(l->dir);
        free(l->ws);
        free(l);
    }
    return NULL;
}

void life_free(struct life *l)
{
    if (!l)
        return;
    server_cleanup(&l->main);
    server_cleanup(&l->second);
    if (l->dir)
        (void)tree_remove(l->dir);
    free(l->dir);
    free(l->ws);
    free(l);
}

static int truncate_log(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    if (fd < 0)
        return -errno;
    close(fd);
    return 0;
}

int life_prepare(struct life *l, struct buf *err)
{
    struct buf src;
    int rc;

    server_kill(&l->main);
    server_kill(&l->second);
    l->want_running = 0;
    l->main.started_ms = l->second.started_ms = 0;
    l->main.err_from = l->second.err_from = 0;
    l->main.main_reaped = l->second.main_reaped = 0;
    l->main.sent = l->second.sent = 0;
    rc = tree_remove(l->ws);
    if (rc) {
        util_note(err, "cannot remove the old workspace %s: %s", l->ws, ls_strerror(rc));
        return rc;
    }
    buf_init(&src, PATH_MAX);
    rc = buf_appendf(&src, "%s/workspace", l->cfg->spec);
    rc = rc ? rc : tree_copy(src.data, l->ws);
    if (rc)
        util_note(err, "cannot copy %s to %s: %s", src.data ? src.data : "?", l->ws,
                  ls_strerror(rc));
    buf_cleanup(&src);
    if (rc)
        return rc;
    if ((rc = truncate_log(l->main.log_err)) != 0 || (rc = truncate_log(l->main.log_out)) != 0 ||
        (rc = truncate_log(l->second.log_err)) != 0 ||
        (rc = truncate_log(l->second.log_out)) != 0) {
        util_note(err, "cannot create the server logs in %s: %s", l->dir, ls_strerror(rc));
        return rc;
    }
    rc = server_free_port(&l->port);
    if (rc) {
        util_note(err, "cannot find a free port on 127.0.0.1: %s", ls_strerror(rc));
        return rc;
    }
    snprintf(l->url, sizeof(l->url), "http://127.0.0.1:%d", l->port);
    return 0;
}

const char *life_url(const struct life *l)
{
    return l->url;
}

int life_alive(struct life *l)
{
    return server_running(&l->main);
}

/* ------------------------------------------------------------------ messages */

static void quote_stderr(struct buf *msg, const struct server *s, const char *label)
{
    struct buf e;
    const char *p, *end;
    size_t nlines = 0;

    buf_init(&e, LIFE_STDERR_TAIL + 1);
    if (server_stderr(s, LIFE_STDERR_TAIL, &e) != 0 || e.len == 0) {
        util_note(msg, "    %s stderr: (empty)\n", label);
        buf_cleanup(&e);
        return;
    }
    util_note(msg, "    %s stderr (end of this start):\n", label);
    for (p = e.data, end = e.data + e.len; p < end && nlines < 40; nlines++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

        util_note(msg, "%s", "      | ");
        (void)util_append_clean(msg, p, n, 400, 0);
        util_note(msg, "%c", '\n');
        p += n + (nl ? 1 : 0);
    }
    buf_cleanup(&e);
}

void life_describe(struct life *l, struct buf *msg)
{
    struct server *s = &l->main;

    if (server_running(s)) {
        util_note(msg, "    server: running (pid %ld, port %d)\n", (long)s->pid, s->port);
    } else if (s->main_reaped && !s->sent) {
        util_note(msg, "%s", "    server: exited on its own (");
        server_status_text(s->main_status, msg);
        util_note(msg, "%s", ")\n");
    } else {
        util_note(msg, "%s", "    server: not running\n");
    }
    if (s->started_ms > 0)
        quote_stderr(msg, s, "server");
}

static void trace(const struct life *l, const char *fmt, ...) LS_PRINTF(2, 3);

static void trace(const struct life *l, const char *fmt, ...)
{
    va_list ap;

    if (!l->cfg->verbose)
        return;
    fputs("    --- ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputs(" ---\n", stdout);
    fflush(stdout);
}

/* Does the stderr of s's current start match the pattern?  Mismatches go to msg. */
static int check_stderr(struct life *l, const struct server *s, const cJSON *want, struct buf *msg)
{
    struct buf e;
    struct match_ctx m;
    cJSON *act;
    int ok;

    (void)l;
    if (!want)
        return 1;
    buf_init(&e, LIFE_STDERR_MATCH + 1);
    if (server_stderr(s, LIFE_STDERR_MATCH, &e) != 0) {
        util_note(msg, "    stderr: cannot read %s\n", s->log_err);
        buf_cleanup(&e);
        return 0;
    }
    act = cJSON_CreateString(e.data ? e.data : "");
    memset(&m, 0, sizeof(m));
    m.msg = msg;
    ok = act && match_value(&m, want, act, "stderr");
    cJSON_Delete(act);
    buf_cleanup(&e);
    return ok;
}

/* ------------------------------------------------------------------ starting */

/* Spawn s on port with args; 0 or 1 with the reason in why. */
static int spawn(struct life *l, struct server *s, int port, const char *args, struct buf *why)
{
    struct buf cmd;
    int rc;

    buf_init(&cmd, SERVER_MAX_CMD);
    rc = server_build_cmd(l->cfg->cmd, l->ws, port, args, &cmd);
    rc = rc ? rc : server_spawn(s, cmd.data, port);
    if (rc)
        util_note(why, "    cannot start the %s server: %s\n", s->name, ls_strerror(rc));
    else if (l->cfg->verbose)
        trace(l, "%s server: sh -c %s (pid %ld)", s->name, cmd.data, (long)s->pid);
    buf_cleanup(&cmd);
    return rc ? 1 : 0;
}

int life_start(struct life *l, const char *args, long within_ms, struct buf *why)
{
    long wait = scaled(l, (double)within_ms);
    enum server_wait w;

    if (server_running(&l->main)) {
        util_note(why, "    the server is already running (pid %ld)\n", (long)l->main.pid);
        return 1;
    }
    if (spawn(l, &l->main, l->port, args, why))
        return 1;
    w = server_wait_ready(&l->main, wait);
    if (w == SERVER_READY) {
        l->want_running = 1;
        trace(l, "main server ready in %.1f ms (port %d)", util_now_ms() - l->main.started_ms,
              l->port);
        return 0;
    }
    if (w == SERVER_EXITED) {
        util_note(why, "%s", "    the server exited before it became ready (");
        server_status_text(l->main.main_status, why);
        util_note(why, "%s", ")\n");
    } else {
        util_note(why, "    the server did not answer GET /health with 200 within %ld ms\n", wait);
    }
    server_kill(&l->main);
    l->want_running = 0;
    return 1;
}

/* server_start / server_restart's second half with expect "ready". */
static int start_ready(struct life *l, const cJSON *o, struct buf *msg)
{
    const char *args = fixture_str(o, "args");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "within_ms");

    if (life_start(l, args ? args : "", cJSON_IsNumber(t) ? (long)t->valuedouble : LIFE_READY_MS,
                   msg) != 0)
        return 0;
    return check_stderr(l, &l->main, cJSON_GetObjectItemCaseSensitive(o, "stderr"), msg);
}

/*
 * Start s and expect a refusal: it exits with a non-zero status before it
 * answers /health, and its stderr matches.  Nothing of s runs afterwards.
 */
static int start_refused(struct life *l, struct server *s, int port, const cJSON *o,
                         struct buf *msg)
{
    const char *args = fixture_str(o, "args");
    long wait = step_ms(l, o, "within_ms", LIFE_READY_MS);
    enum server_wait w;
    int ok = 0;

    if (spawn(l, s, port, args ? args : "", msg))
        return 0;
    w = server_wait_ready(s, wait);
    if (w == SERVER_READY) {
        util_note(msg,
                  "    the %s server became ready (GET /health 200 after %.1f ms); expected it to "
                  "refuse to start\n",
                  s->name, util_now_ms() - s->started_ms);
    } else if (w == SERVER_TIMEOUT) {
        util_note(msg,
                  "    the %s server neither exited nor became ready within %ld ms; expected it to "
                  "refuse to start\n",
                  s->name, wait);
    } else if (WIFEXITED(s->main_status) && WEXITSTATUS(s->main_status) != 0) {
        ok = check_stderr(l, s, cJSON_GetObjectItemCaseSensitive(o, "stderr"), msg);
        trace(l, "%s server refused to start in %.1f ms (exit status %d)", s->name,
              util_now_ms() - s->started_ms, WEXITSTATUS(s->main_status));
    } else {
        util_note(msg, "    the %s server ended with ", s->name);
        server_status_text(s->main_status, msg);
        util_note(msg, "%s",
                  WIFEXITED(s->main_status)
                      ? "; a refusal to start must exit with a non-zero status\n"
                      : "; a refusal is a non-zero exit status, not a crash\n");
    }
    if (!ok && s == &l->second)
        quote_stderr(msg, s, "second server");
    server_kill(s);
    return ok;
}

static int sig_of(const cJSON *o)
{
    const char *s = fixture_str(o, "signal");

    return s && !strcmp(s, "KILL") ? SIGKILL : SIGTERM;
}

static int do_stop(struct life *l, const cJSON *o, struct buf *msg)
{
    int sig = sig_of(o);
    long wait = step_ms(l, o, "within_ms", LIFE_STOP_MS);
    double t0 = util_now_ms();
    struct buf why;
    int bad;

    buf_init(&why, 4096);
    bad = server_stop(&l->main, sig, wait, &why);
    l->want_running = 0;
    if (bad) {
        util_note(msg, "    %s\n", why.data ? why.data : "the server did not stop");
    } else {
        struct buf st;

        buf_init(&st, 256);
        if (l->main.main_reaped)
            server_status_text(l->main.main_status, &st);
        trace(l, "main server stopped by SIG%s in %.1f ms (%s)", sig == SIGKILL ? "KILL" : "TERM",
              util_now_ms() - t0, st.data ? st.data : "status not seen");
        buf_cleanup(&st);
    }
    buf_cleanup(&why);
    return !bad;
}

/* ------------------------------------------------------------------ workspace */

/* mkdir -p for the parents of rel inside the workspace; symlinks are refused. */
static int make_parents(const struct life *l, const char *rel, struct buf *msg)
{
    struct buf p;
    const char *c = rel, *e;
    int rc = 0;

    buf_init(&p, PATH_MAX + LIFE_MAX_PATH);
    rc = buf_appends(&p, l->ws);
    while (!rc && (e = strchr(c, '/')) != NULL) {
        struct stat st;

        rc = buf_appendc(&p, '/');
        rc = rc ? rc : buf_append(&p, c, (size_t)(e - c));
        if (rc)
            break;
        if (lstat(p.data, &st) == 0) {
            if (!S_ISDIR(st.st_mode)) {
                util_note(msg, "    %s: a parent is not a directory (or is a symlink)\n", rel);
                rc = LS_EPARSE;
            }
        } else if (errno != ENOENT || mkdir(p.data, 0755) != 0) {
            util_note(msg, "    %s: cannot create %s: %s\n", rel, p.data, strerror(errno));
            rc = -errno;
        }
        c = e + 1;
    }
    buf_cleanup(&p);
    return rc;
}

static int write_bytes(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644), rc = 0;
    const char *c = p;

    if (fd < 0)
        return -errno;
    while (n) {
        ssize_t w = write(fd, c, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = w < 0 ? -errno : -EIO;
            break;
        }
        c += w;
        n -= (size_t)w;
    }
    if (close(fd) != 0 && !rc)
        rc = -errno;
    return rc;
}

static int one_file(struct life *l, const char *rel, const cJSON *spec, struct buf *msg)
{
    const char *text = fixture_str(spec, "text"), *hex = fixture_str(spec, "hex");
    const char *from = fixture_str(spec, "from");
    struct buf data, dst, src;
    struct stat st;
    int rc;

    buf_init(&data, LIFE_MAX_READ);
    buf_init(&dst, PATH_MAX + LIFE_MAX_PATH);
    buf_init(&src, PATH_MAX + LIFE_MAX_PATH);
    rc = make_parents(l, rel, msg);
    rc = rc ? rc : buf_appendf(&dst, "%s/%s", l->ws, rel);
    if (rc)
        goto out;
    if (lstat(dst.data, &st) == 0 && (S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode))) {
        rc = tree_remove(dst.data);
        if (rc) {
            util_note(msg, "    %s: cannot replace: %s\n", rel, ls_strerror(rc));
            goto out;
        }
    }
    if (from) {
        rc = buf_appendf(&src, "%s/%s", l->cfg->spec, from);
        if (rc || !src.data) {
            util_note(msg, "    %s: %s\n", rel, ls_strerror(rc ? rc : -ENOMEM));
            rc = rc ? rc : -ENOMEM;
            goto out;
        }
        if (stat(src.data, &st) != 0)
            rc = -errno;
        if (!rc && S_ISDIR(st.st_mode)) {
            rc = tree_copy(src.data, dst.data);
            if (rc)
                util_note(msg, "    %s: cannot copy the directory %s: %s\n", rel, src.data,
                          ls_strerror(rc));
            else
                trace(l, "workspace_files: %s <- %s (directory)", rel, from);
            goto out;
        }
        rc = rc ? rc : util_read_file(src.data, LIFE_MAX_READ, &data);
        if (rc) {
            util_note(msg, "    %s: cannot read %s: %s\n", rel, src.data, ls_strerror(rc));
            goto out;
        }
    } else if (hex) {
        rc = util_hex_decode(hex, &data);
    } else {
        rc = buf_appends(&data, text ? text : "");
    }
    rc = rc ? rc : write_bytes(dst.data, data.data ? data.data : "", data.len);
    if (rc)
        util_note(msg, "    %s: cannot write: %s\n", rel, ls_strerror(rc));
    else
        trace(l, "workspace_files: %s (%zu bytes)", rel, data.len);
out:
    buf_cleanup(&data);
    buf_cleanup(&dst);
    buf_cleanup(&src);
    return rc ? 0 : 1;
}

static int do_files(struct life *l, const cJSON *o, struct buf *msg)
{
    const cJSON *f;

    if (server_running(&l->main)) {
        util_note(msg, "%s", "    workspace_files while the server runs; stop it first\n");
        return 0;
    }
    cJSON_ArrayForEach(f, o)
    {
        if (!one_file(l, f->string, f, msg))
            return 0;
    }
    return 1;
}

/* Append p with every glob metacharacter escaped. */
static int glob_escape(struct buf *out, const char *p)
{
    int rc = 0;

    for (; !rc && *p; p++) {
        if (strchr("*?[]\\", *p))
            rc = buf_appendc(out, '\\');
        rc = rc ? rc : buf_appendc(out, *p);
    }
    return rc;
}

static int check_one(struct life *l, const cJSON *o, const char *path, const char *shown,
                     struct buf *msg)
{
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(o, "size");
    const cJSON *smin = cJSON_GetObjectItemCaseSensitive(o, "size_min");
    const cJSON *smax = cJSON_GetObjectItemCaseSensitive(o, "size_max");
    const cJSON *json = cJSON_GetObjectItemCaseSensitive(o, "json");
    const char *has = fixture_str(o, "contains"), *hasnt = fixture_str(o, "not_contains");
    struct stat st;
    struct buf data;
    int ok = 1, rc;

    (void)l;
    if (stat(path, &st) != 0) {
        util_note(msg, "    %s: %s\n", shown, strerror(errno));
        return 0;
    }
    if (!size && !smin && !smax && !json && !has && !hasnt)
        return 1;
    if (!S_ISREG(st.st_mode)) {
        util_note(msg, "    %s: not a regular file\n", shown);
        return 0;
    }
    if (size && (double)st.st_size != size->valuedouble) {
        util_note(msg, "    %s: size: expected %.0f bytes, got %lld\n", shown, size->valuedouble,
                  (long long)st.st_size);
        ok = 0;
    }
    if (smin && (double)st.st_size < smin->valuedouble) {
        util_note(msg, "    %s: size: expected at least %.0f bytes, got %lld\n", shown,
                  smin->valuedouble, (long long)st.st_size);
        ok = 0;
    }
    if (smax && (double)st.st_size > smax->valuedouble) {
        util_note(msg, "    %s: size: expected at most %.0f bytes, got %lld\n", shown,
                  smax->valuedouble, (long long)st.st_size);
        ok = 0;
    }
    if (!has && !hasnt && !json)
        return ok;
    buf_init(&data, LIFE_MAX_READ);
    rc = util_read_file(path, LIFE_MAX_READ, &data);
    if (rc) {
        util_note(msg, "    %s: cannot read: %s\n", shown, ls_strerror(rc));
        buf_cleanup(&data);
        return 0;
    }
    if (has && !memmem(data.data ? data.data : "", data.len, has, strlen(has))) {
        util_note(msg, "    %s: expected to contain \"", shown);
        (void)util_append_clean(msg, has, strlen(has), 200, 0);
        util_note(msg, "%s", "\"; it does not\n");
        ok = 0;
    }
    if (hasnt && memmem(data.data ? data.data : "", data.len, hasnt, strlen(hasnt))) {
        util_note(msg, "    %s: expected not to contain \"", shown);
        (void)util_append_clean(msg, hasnt, strlen(hasnt), 200, 0);
        util_note(msg, "%s", "\"; it does\n");
        ok = 0;
    }
    if (json) {
        cJSON *doc = run_parse_json(data.data, data.len);
        struct match_ctx m;

        memset(&m, 0, sizeof(m));
        m.msg = msg;
        if (!doc) {
            util_note(msg, "    %s: expected one JSON value, got: ", shown);
            (void)util_append_clean(msg, data.data ? data.data : "", data.len, 200, 0);
            util_note(msg, "%c", '\n');
            ok = 0;
        } else if (!match_value(&m, json, doc, "")) {
            util_note(msg, "    (in %s)\n", shown);
            ok = 0;
        }
        cJSON_Delete(doc);
    }
    buf_cleanup(&data);
    return ok;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* After a failed expectation: what the directory of rel holds (when rel's directory is no glob). */
static void list_dir(const struct life *l, const char *rel, struct buf *msg)
{
    const char *slash = strrchr(rel, '/');
    int dlen = slash ? (int)(slash - rel) : 0;
    char *names[32];
    size_t n = 0, more = 0, i;
    struct buf dir;
    DIR *d;
    struct dirent *de;

    if (dlen && (memchr(rel, '*', (size_t)dlen) || memchr(rel, '?', (size_t)dlen) ||
                 memchr(rel, '[', (size_t)dlen)))
        return;
    buf_init(&dir, PATH_MAX + LIFE_MAX_PATH);
    if (buf_appendf(&dir, "%s/%.*s", l->ws, dlen, rel) != 0 || !(d = opendir(dir.data))) {
        util_note(msg, "    (the directory %.*s/ does not exist)\n", dlen ? dlen : 1,
                  dlen ? rel : ".");
        buf_cleanup(&dir);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (n < sizeof(names) / sizeof(names[0]) && (names[n] = strdup(de->d_name)) != NULL)
            n++;
        else
            more++;
    }
    closedir(d);
    qsort(names, n, sizeof(names[0]), cmp_name);
    util_note(msg, "    (%.*s/ holds:", dlen ? dlen : 1, dlen ? rel : ".");
    for (i = 0; i < n; i++) {
        util_note(msg, " %s", names[i]);
        free(names[i]);
    }
    if (more)
        util_note(msg, " and %zu more", more);
    util_note(msg, "%s", n || more ? ")\n" : " nothing)\n");
    buf_cleanup(&dir);
}

static int do_expect(struct life *l, const cJSON *o, struct buf *msg)
{
    const char *rel = fixture_str(o, "path");
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(o, "exists");
    int want = !cJSON_IsFalse(ex), ok = 1, rc;
    size_t i, base;
    struct buf pat;
    glob_t g;

    buf_init(&pat, 2 * (PATH_MAX + LIFE_MAX_PATH));
    rc = glob_escape(&pat, l->ws);
    rc = rc ? rc : buf_appendf(&pat, "/%s", rel);
    if (rc) {
        util_note(msg, "    %s: %s\n", rel, ls_strerror(rc));
        buf_cleanup(&pat);
        return 0;
    }
    memset(&g, 0, sizeof(g));
    rc = glob(pat.data, 0, NULL, &g);
    buf_cleanup(&pat);
    if (rc != 0 && rc != GLOB_NOMATCH) {
        util_note(msg, "    %s: cannot list the workspace (glob error %d)\n", rel, rc);
        globfree(&g);
        return 0;
    }
    if (rc == GLOB_NOMATCH)
        g.gl_pathc = 0;
    trace(l, "workspace_expect %s: %zu match%s", rel, (size_t)g.gl_pathc,
          g.gl_pathc == 1 ? "" : "es");
    if (!want && g.gl_pathc) {
        util_note(msg, "    %s: expected no such file, found %s\n", rel,
                  g.gl_pathv[0] + strlen(l->ws) + 1);
        ok = 0;
    } else if (want && !g.gl_pathc) {
        util_note(msg, "    %s: expected to exist; no such file in the workspace\n", rel);
        ok = 0;
    }
    base = strlen(l->ws) + 1;
    for (i = 0; ok && want && i < g.gl_pathc; i++)
        ok = check_one(l, o, g.gl_pathv[i], g.gl_pathv[i] + base, msg);
    if (!ok && want)
        list_dir(l, rel, msg);
    globfree(&g);
    return ok;
}

/* ------------------------------------------------------------------ steps */

int life_step(struct life *l, const struct vars *v, const cJSON *st, struct buf *msg)
{
    const char *kind = life_step_kind(st);
    cJSON *o;
    struct buf why;
    int ok = 0;

    buf_init(&why, 4096);
    o = vars_subst(v, cJSON_GetObjectItemCaseSensitive(st, kind), &why);
    if (!o) {
        util_note(msg, "    %s\n", why.data ? why.data : "cannot substitute variables");
        buf_cleanup(&why);
        return 0;
    }
    buf_cleanup(&why);
    if (!strcmp(kind, "server_start")) {
        const char *e = fixture_str(o, "expect");

        if (e && !strcmp(e, "fail")) {
            if (server_running(&l->main))
                util_note(msg, "    the server is already running (pid %ld)\n", (long)l->main.pid);
            else
                ok = start_refused(l, &l->main, l->port, o, msg);
        } else {
            ok = start_ready(l, o, msg);
        }
    } else if (!strcmp(kind, "server_start_second")) {
        int port;
        int rc = server_free_port(&port);

        if (!server_running(&l->main))
            util_note(msg, "%s", "    the main server is not running\n");
        else if (rc)
            util_note(msg, "    cannot find a free port: %s\n", ls_strerror(rc));
        else
            ok = start_refused(l, &l->second, port, o, msg);
    } else if (!strcmp(kind, "server_stop")) {
        ok = do_stop(l, o, msg);
    } else if (!strcmp(kind, "server_restart")) {
        ok = do_stop(l, o, msg) && start_ready(l, o, msg);
    } else if (!strcmp(kind, "workspace_files")) {
        ok = do_files(l, o, msg);
    } else {
        ok = do_expect(l, o, msg);
    }
    cJSON_Delete(o);
    return ok;
}

int life_finish(struct life *l, struct buf *why)
{
    int bad = 0;

    server_kill(&l->second);
    if (l->want_running) {
        struct buf w;

        buf_init(&w, 4096);
        bad = server_stop(&l->main, SIGTERM, scaled(l, LIFE_STOP_MS), &w);
        if (bad)
            util_note(why, "    %s\n", w.data ? w.data : "the server did not stop");
        buf_cleanup(&w);
    }
    server_kill(&l->main);
    l->want_running = 0;
    return bad;
}
