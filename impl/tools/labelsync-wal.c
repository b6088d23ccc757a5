/*
 * labelsync-wal - check, dump or repair the durable state of a labelsync
 * workspace (<root>/.lenslet/labels.snapshot.json and labels.log.jsonl), in
 * the spirit of redis-check-aof.  It reads the files with the same replay
 * code as labelsyncd (wal.c), so "check says ok" means "the server opens it".
 *
 *   labelsync-wal check  [--root DIR | FILE]
 *   labelsync-wal dump   [--json] [--root DIR | FILE]
 *   labelsync-wal repair [--yes] [--root DIR | FILE]
 *
 * Exit status: 0 ok, 1 problems found (or repair refused/failed), 2 usage.
 * See docs/internals/wal.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "err.h"
#include "patch.h"
#include "trace.h"
#include "wal.h"

#define EXIT_OK       0
#define EXIT_PROBLEMS 1
#define EXIT_USAGE    2

#define PATH_CAP 4096

static const char usage_text[] =
    "usage: labelsync-wal check|dump|repair [options] [--root DIR | FILE]\n"
    "\n"
    "Check, list or repair the durable label state of a labelsync workspace:\n"
    "DIR/.lenslet/labels.snapshot.json and DIR/.lenslet/labels.log.jsonl\n"
    "(also the files written by upstream Lenslet).\n"
    "\n"
    "commands:\n"
    "  check    validate the snapshot and the log: records, last event id, torn\n"
    "           tail, the first corruption (line and byte offset)\n"
    "  dump     print one line per record: id, path, version, mutation id, or the\n"
    "           idempotency key and status (--json: one JSON object per line)\n"
    "  repair   cut the log at the last good line before the first corruption (or\n"
    "           before a torn tail), after a confirmation; the whole file is kept\n"
    "           as labels.log.jsonl.bak-<unix time>.  Refused while a labelsyncd\n"
    "           holds the workspace lock.  Snapshots are never rewritten.\n"
    "\n"
    "options:\n"
    "  --root DIR   the workspace (default: the current directory)\n"
    "  FILE         a single log (*.jsonl) or snapshot (*.json) instead of --root\n"
    "  --json       dump: JSON lines\n"
    "  --yes, -y    repair: do not ask\n"
    "  -h, --help   this text\n"
    "\n"
    "exit status: 0 ok, 1 problems found or repair not done, 2 usage error\n";

struct opts {
    const char *cmd;
    const char *root;
    const char *file;
    bool json, yes;
};

struct target {
    char dir[PATH_CAP]; /* the directory of the files (and of the lock) */
    char log[PATH_CAP]; /* "" = not checked */
    char snap[PATH_CAP];
    bool workspace; /* --root: dir is a .lenslet directory, the lock file may be created */
};

/* ------------------------------------------------------------------ */

/* snprintf that may truncate (paths are checked against PATH_CAP first). */
static void fmt(char *out, size_t cap, const char *f, ...) LS_PRINTF(3, 4);

static void fmt(char *out, size_t cap, const char *f, ...)
{
    va_list ap;

    va_start(ap, f);
    vsnprintf(out, cap, f, ap);
    va_end(ap);
}

static int read_all(const char *path, char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    size_t got;

    *data = NULL;
    *len = 0;
    if (!f)
        return -errno;
    if (fstat(fileno(f), &st) != 0) {
        int rc = -errno;

        fclose(f);
        return rc;
    }
    if ((unsigned long long)st.st_size > WAL_MAX_SNAPSHOT * 4ull) {
        fclose(f);
        return LS_ETOOBIG;
    }
    *data = malloc((size_t)st.st_size + 1);
    if (!*data) {
        fclose(f);
        return -ENOMEM;
    }
    got = fread(*data, 1, (size_t)st.st_size, f);
    fclose(f);
    if (got != (size_t)st.st_size) {
        free(*data);
        *data = NULL;
        return -EIO;
    }
    (*data)[got] = '\0';
    *len = got;
    return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);

    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int resolve(const struct opts *o, struct target *t)
{
    memset(t, 0, sizeof(*t));
    if (o->file) {
        const char *slash = strrchr(o->file, '/');

        if (strlen(o->file) >= PATH_CAP)
            return LS_ETOOBIG;
        if (slash)
            fmt(t->dir, sizeof(t->dir), "%.*s", (int)(slash - o->file + (slash == o->file)),
                o->file);
        else
            fmt(t->dir, sizeof(t->dir), ".");
        if (ends_with(o->file, ".json"))
            fmt(t->snap, sizeof(t->snap), "%s", o->file);
        else
            fmt(t->log, sizeof(t->log), "%s", o->file);
        return 0;
    }
    if (strlen(o->root) + sizeof("/" WAL_DIR_NAME "/" WAL_SNAPSHOT_NAME) > PATH_CAP)
        return LS_ETOOBIG;
    t->workspace = true;
    fmt(t->dir, sizeof(t->dir), "%s/%s", o->root, WAL_DIR_NAME);
    fmt(t->log, sizeof(t->log), "%s/%s", t->dir, WAL_LOG_NAME);
    fmt(t->snap, sizeof(t->snap), "%s/%s", t->dir, WAL_SNAPSHOT_NAME);
    return 0;
}

/* Try the workspace lock: 1 held by someone else (pid in *pid), 0 free
 * (and now held by us when keep is set: *fd), or -errno. */
static int probe_lock(const struct target *t, bool keep, int *fd, char *pid, size_t pidcap)
{
    char path[PATH_CAP + 32];
    int lfd, rc = 0;

    pid[0] = '\0';
    *fd = -1;
    fmt(path, sizeof(path), "%s/%s", t->dir, WAL_LOCK_NAME);
    lfd = open(path, (keep && t->workspace ? O_RDWR | O_CREAT : O_RDONLY) | O_CLOEXEC, 0600);
    if (lfd < 0)
        return errno == ENOENT ? 0 : -errno;
    if (flock(lfd, LOCK_EX | LOCK_NB) != 0) {
        ssize_t n = pread(lfd, pid, pidcap - 1, 0);

        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        rc = errno == EWOULDBLOCK ? 1 : -errno;
        close(lfd);
        return rc;
    }
    if (keep)
        *fd = lfd;
    else
        close(lfd);
    return 0;
}

/* ------------------------------------------------------------------ */
/* check and dump                                                       */

struct dump_ctx {
    bool print, json;
    const char *source; /* "snapshot" or "log" */
    size_t items, idems;
};

static void print_json_item(const struct dump_ctx *d, const struct wal_item *r)
{
    static const char *const names[4] = {"tags", "notes", "star", "metrics"};
    static const unsigned bits[4] = {PATCH_CHANGED_TAGS, PATCH_CHANGED_NOTES, PATCH_CHANGED_STAR,
                                     PATCH_CHANGED_METRICS};
    cJSON *o = cJSON_CreateObject(), *a, *m;
    char num[64];
    char *text;

    if (!o)
        return;
    cJSON_AddStringToObject(o, "source", d->source);
    if (r->line)
        cJSON_AddNumberToObject(o, "line", (double)r->line);
    fmt(num, sizeof(num), "%llu", r->id);
    if (r->id)
        cJSON_AddRawToObject(o, "id", num);
    cJSON_AddStringToObject(o, "type", "item-updated");
    cJSON_AddStringToObject(o, "path", r->path);
    fmt(num, sizeof(num), "%llu", r->version);
    cJSON_AddRawToObject(o, "version", num);
    if (r->present & WAL_HAS_TAGS) {
        a = cJSON_AddArrayToObject(o, "tags");
        for (size_t i = 0; a && i < r->labels.ntags; i++)
            cJSON_AddItemToArray(a, cJSON_CreateString(r->labels.tags[i]));
    }
    if (r->present & WAL_HAS_NOTES)
        cJSON_AddStringToObject(o, "notes", r->labels.notes ? r->labels.notes : "");
    if (r->present & WAL_HAS_STAR) {
        if (r->labels.star < 0)
            cJSON_AddNullToObject(o, "star");
        else
            cJSON_AddNumberToObject(o, "star", r->labels.star);
    }
    if (r->present & WAL_HAS_UPDATED_AT) {
        if (r->updated_at)
            cJSON_AddStringToObject(o, "updated_at", r->updated_at);
        else
            cJSON_AddNullToObject(o, "updated_at");
    }
    if (r->present & WAL_HAS_UPDATED_BY) {
        if (r->updated_by)
            cJSON_AddStringToObject(o, "updated_by", r->updated_by);
        else
            cJSON_AddNullToObject(o, "updated_by");
    }
    if (r->present & WAL_HAS_METRICS) {
        m = cJSON_AddObjectToObject(o, "metrics");
        for (size_t i = 0; m && i < r->labels.nmetrics; i++) {
            patch_format_number(r->labels.metrics[i].value, num);
            cJSON_AddRawToObject(m, r->labels.metrics[i].name, num);
        }
    }
    if (r->mutation_id)
        cJSON_AddStringToObject(o, "mutation_id", r->mutation_id);
    a = cJSON_AddArrayToObject(o, "changed_fields");
    for (int i = 0; a && i < 4; i++)
        if (r->changed & bits[i])
            cJSON_AddItemToArray(a, cJSON_CreateString(names[i]));
    if (r->has_idem) {
        m = cJSON_AddObjectToObject(o, "idem");
        if (m) {
            cJSON_AddStringToObject(m, "scope", r->idem_scope);
            cJSON_AddStringToObject(m, "key", r->idem_key);
        }
    }
    text = cJSON_PrintUnformatted(o);
    if (text)
        puts(text);
    free(text);
    cJSON_Delete(o);
}

static int dump_item(void *ctx, const struct wal_item *r)
{
    struct dump_ctx *d = ctx;

    d->items++;
    if (!d->print)
        return 0;
    if (d->json) {
        print_json_item(d, r);
        return 0;
    }
    if (r->line)
        printf("log line %zu: id %llu item %s version %llu", r->line, r->id, r->path, r->version);
    else if (r->id)
        printf("snapshot: id %llu item %s version %llu", r->id, r->path, r->version);
    else
        printf("snapshot: item %s version %llu", r->path, r->version);
    if (r->mutation_id)
        printf(" mutation %s", r->mutation_id);
    if (r->has_idem)
        printf(" idempotency %s/%s", r->idem_scope, r->idem_key);
    putchar('\n');
    return 0;
}

static int dump_idem(void *ctx, const struct wal_idem *r)
{
    struct dump_ctx *d = ctx;
    char ts[WAL_TIME_BUF];

    d->idems++;
    if (!d->print)
        return 0;
    wal_format_time(r->stored_at_us, ts);
    if (d->json) {
        cJSON *o = cJSON_CreateObject();
        char *text;

        if (!o)
            return 0;
        cJSON_AddStringToObject(o, "source", d->source);
        cJSON_AddStringToObject(o, "type", "idempotency");
        cJSON_AddStringToObject(o, "scope", r->scope);
        cJSON_AddStringToObject(o, "key", r->key);
        cJSON_AddNumberToObject(o, "status", r->status);
        cJSON_AddStringToObject(o, "stored_at", ts);
        text = cJSON_PrintUnformatted(o);
        if (text)
            puts(text);
        free(text);
        cJSON_Delete(o);
        return 0;
    }
    printf("%s: idempotency %s/%s status %d stored %s\n", d->source, r->scope, r->key, r->status,
           ts);
    return 0;
}

static const struct wal_replay_cb dump_cb = {dump_item, dump_idem};

/* Check (and with print, dump) the snapshot.  Returns problems found (0/1). */
static int do_snapshot(const struct target *t, bool print, bool json, unsigned long long *last)
{
    struct dump_ctx d = {print, json, "snapshot", 0, 0};
    char why[128] = "", *data;
    size_t len;
    int rc;

    *last = 0;
    if (!t->snap[0])
        return 0;
    rc = read_all(t->snap, &data, &len);
    if (rc == -ENOENT) {
        if (!print)
            printf("snapshot  %s: none\n", t->snap);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "snapshot  %s: cannot read: %s\n", t->snap, ls_strerror(rc));
        return 1;
    }
    rc = wal_replay_snapshot_ex(data, len, &dump_cb, &d, last, why, sizeof(why));
    free(data);
    if (rc) {
        FILE *report = print ? stderr : stdout;

        fprintf(report, "snapshot  %s: CORRUPT: %s\n", t->snap,
                rc == LS_ECORRUPT ? why : ls_strerror(rc));
        fprintf(report, "          labelsyncd refuses to start; repair does not rewrite "
                        "snapshots: move the file aside to start from the log alone\n");
        return 1;
    }
    if (!print)
        printf("snapshot  %s: ok, %zu item(s), %zu idempotency outcome(s), last_event_id %llu\n",
               t->snap, d.items, d.idems, *last);
    return 0;
}

/* Check (and with print, dump) the log.  Returns problems found (0/1). */
static int do_log(const struct target *t, bool print, bool json, unsigned long long snap_last,
                  struct wal_replay_result *out)
{
    FILE *report = print ? stderr : stdout; /* dump keeps stdout for the records */
    struct dump_ctx d = {print, json, "log", 0, 0};
    struct wal_replay_result res;
    char *data;
    size_t len;
    int rc, problems = 0;

    memset(out, 0, sizeof(*out));
    if (!t->log[0])
        return 0;
    rc = read_all(t->log, &data, &len);
    if (rc == -ENOENT) {
        if (!print)
            printf("log       %s: none\n", t->log);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "log       %s: cannot read: %s\n", t->log, ls_strerror(rc));
        return 1;
    }
    rc = wal_replay_log(data, len, 0, false, &dump_cb, &d, &res);
    free(data);
    *out = res;
    if (rc && rc != LS_ECORRUPT) {
        fprintf(stderr, "log       %s: %s\n", t->log, ls_strerror(rc));
        return 1;
    }
    if (!print) {
        printf("log       %s: %zu byte(s), %zu line(s): %zu item record(s), %zu idempotency "
               "record(s), %zu skipped, %zu without crc (upstream), last id %llu\n",
               t->log, len, res.lines, res.items, res.idems, res.skipped, res.unchecked,
               res.max_id);
        if (snap_last && res.max_id)
            printf("          records with id <= %llu are already in the snapshot\n", snap_last);
        if (res.first_skip_line)
            printf("          first skipped line: %zu (%s)\n", res.first_skip_line,
                   res.first_skip_why);
    }
    if (res.torn_tail) {
        fprintf(report,
                "log       TORN TAIL: %zu byte(s) from line %zu (byte offset %zu): %s\n"
                "          labelsyncd cuts it at the next start (or: labelsync-wal repair)\n",
                res.torn_bytes, res.torn_line, res.good_len, res.torn_why);
        problems = 1;
    }
    if (res.corrupt_line) {
        fprintf(report,
                "log       CORRUPT: line %zu (byte offset %zu): %s\n"
                "          labelsyncd refuses to start; labelsync-wal repair cuts the log there\n"
                "          (dropping everything after it) after keeping a backup\n",
                res.corrupt_line, res.corrupt_offset, res.corrupt_why);
        problems = 1;
    }
    return problems;
}

static int cmd_check(const struct target *t, bool dump, bool json)
{
    struct wal_replay_result res;
    unsigned long long last;
    char pid[32];
    int fd, problems, lk;

    lk = probe_lock(t, false, &fd, pid, sizeof(pid));
    if (lk == 1 && !dump)
        printf("note      a labelsyncd holds the workspace lock%s%s: the log may be growing\n",
               pid[0] ? ", pid " : "", pid);
    problems = do_snapshot(t, dump, json, &last);
    problems |= do_log(t, dump, json, last, &res);
    if (!dump)
        printf("result    %s\n", problems ? "PROBLEMS FOUND" : "ok");
    return problems ? EXIT_PROBLEMS : EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* repair                                                               */

static int copy_file(const char *from_data, size_t len, const char *to)
{
    int fd = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600), rc = 0;
    size_t done = 0;

    if (fd < 0)
        return -errno;
    while (done < len) {
        ssize_t k = write(fd, from_data + done, len - done);

        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            rc = k < 0 ? -errno : -EIO;
            break;
        }
        done += (size_t)k;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    close(fd);
    return rc;
}

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

    if (fd < 0)
        return -errno;
    if (fsync(fd) != 0)
        rc = -errno;
    close(fd);
    return rc;
}

/* Lines in p[0..n), a final one without '\n' included. */
static size_t count_lines(const char *p, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        k += p[i] == '\n';
    return k + (n && p[n - 1] != '\n');
}

static bool confirm(const char *question)
{
    char answer[16];

    if (!isatty(STDIN_FILENO)) {
        fprintf(stderr, "repair: stdin is not a terminal; pass --yes to confirm\n");
        return false;
    }
    printf("%s [y/N] ", question);
    fflush(stdout);
    if (!fgets(answer, sizeof(answer), stdin))
        return false;
    return answer[0] == 'y' || answer[0] == 'Y';
}

static int cmd_repair(const struct target *t, bool yes)
{
    struct wal_replay_result res;
    unsigned long long last;
    char pid[32], backup[PATH_CAP + 64], question[512], *data;
    size_t len, cut;
    int lockfd, rc, fd, snap_bad;

    if (!t->log[0]) {
        fprintf(stderr, "repair: only logs are repaired; %s is a snapshot\n", t->snap);
        return EXIT_USAGE;
    }
    rc = probe_lock(t, true, &lockfd, pid, sizeof(pid));
    if (rc == 1) {
        fprintf(stderr, "repair: refused: a labelsyncd holds %s/%s%s%s%s; stop it first\n", t->dir,
                WAL_LOCK_NAME, pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
        return EXIT_PROBLEMS;
    }
    if (rc < 0) {
        fprintf(stderr, "repair: %s/%s: %s\n", t->dir, WAL_LOCK_NAME, ls_strerror(rc));
        return EXIT_PROBLEMS;
    }
    snap_bad = do_snapshot(t, false, false, &last);
    rc = read_all(t->log, &data, &len);
    if (rc) {
        fprintf(stderr, "repair: %s: %s\n", t->log, ls_strerror(rc));
        if (lockfd >= 0)
            close(lockfd);
        return EXIT_PROBLEMS;
    }
    rc = wal_replay_log(data, len, 0, true, NULL, NULL, &res);
    if (rc) {
        fprintf(stderr, "repair: %s: %s\n", t->log, ls_strerror(rc));
        goto fail;
    }
    if (!res.corrupt_line && !res.torn_tail) {
        printf("repair: %s: nothing to repair (%zu line(s), last id %llu)\n", t->log, res.lines,
               res.max_id);
        free(data);
        if (lockfd >= 0)
            close(lockfd);
        return snap_bad ? EXIT_PROBLEMS : EXIT_OK;
    }
    cut = res.good_len;
    if (res.corrupt_line)
        printf("repair: line %zu (byte offset %zu) is corrupt: %s\n", res.corrupt_line,
               res.corrupt_offset, res.corrupt_why);
    else
        printf("repair: torn tail at line %zu (byte offset %zu): %s\n", res.torn_line, cut,
               res.torn_why);
    fmt(backup, sizeof(backup), "%s.bak-%lld", t->log, (long long)time(NULL));
    fmt(question, sizeof(question),
        "Cut %s at byte %zu (after line %zu), dropping %zu line(s) / %zu byte(s)?\n"
        "The whole file is kept as %s.",
        t->log, cut, (res.corrupt_line ? res.corrupt_line : res.torn_line) - 1,
        count_lines(data + cut, len - cut), len - cut, backup);
    if (!yes && !confirm(question)) {
        printf("repair: nothing changed\n");
        goto fail;
    }
    if ((rc = copy_file(data, len, backup)) != 0) {
        fprintf(stderr, "repair: cannot write the backup %s: %s; nothing changed\n", backup,
                ls_strerror(rc));
        goto fail;
    }
    fd = open(t->log, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)cut) != 0 || fsync(fd) != 0) {
        rc = -errno;
        fprintf(stderr, "repair: cannot cut %s: %s (backup in %s)\n", t->log, ls_strerror(rc),
                backup);
        if (fd >= 0)
            close(fd);
        goto fail;
    }
    close(fd);
    if ((rc = fsync_path(t->dir)) != 0)
        fprintf(stderr, "repair: fsync of %s: %s\n", t->dir, ls_strerror(rc));
    printf("repair: cut %s at byte %zu: dropped %zu byte(s)%s; backup: %s\n", t->log, cut,
           len - cut, res.corrupt_line ? " including every line after the corruption" : "", backup);
    free(data);
    if (lockfd >= 0)
        close(lockfd);
    return snap_bad ? EXIT_PROBLEMS : EXIT_OK;
fail:
    free(data);
    if (lockfd >= 0)
        close(lockfd);
    return EXIT_PROBLEMS;
}

/* ------------------------------------------------------------------ */

static int usage_error(const char *f, ...) LS_PRINTF(1, 2);

static int usage_error(const char *f, ...)
{
    va_list ap;

    fprintf(stderr, "labelsync-wal: ");
    va_start(ap, f);
    vfprintf(stderr, f, ap);
    va_end(ap);
    fprintf(stderr, "\n(try labelsync-wal --help)\n");
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    struct opts o = {NULL, NULL, NULL, false, false};
    struct target t;

    trace_init();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage_text, stdout);
            return EXIT_OK;
        } else if (strcmp(a, "--root") == 0) {
            if (++i >= argc)
                return usage_error("%s needs a directory", a);
            o.root = argv[i];
        } else if (strcmp(a, "--json") == 0) {
            o.json = true;
        } else if (strcmp(a, "--yes") == 0 || strcmp(a, "-y") == 0) {
            o.yes = true;
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown option %s", a);
        } else if (!o.cmd) {
            o.cmd = a;
        } else if (!o.file) {
            o.file = a;
        } else {
            return usage_error("unexpected argument %s", a);
        }
    }
    if (!o.cmd)
        return usage_error("%s", "missing command: check, dump or repair");
    if (o.root && o.file)
        return usage_error("%s", "give either --root DIR or FILE, not both");
    if (!o.root)
        o.root = ".";
    if (o.json && strcmp(o.cmd, "dump") != 0)
        return usage_error("%s", "--json goes with dump");
    if (o.yes && strcmp(o.cmd, "repair") != 0)
        return usage_error("%s", "--yes goes with repair");
    if (resolve(&o, &t) != 0)
        return usage_error("%s", "path too long");
    if (strcmp(o.cmd, "check") == 0)
        return cmd_check(&t, false, false);
    if (strcmp(o.cmd, "dump") == 0)
        return cmd_check(&t, true, o.json);
    if (strcmp(o.cmd, "repair") == 0)
        return cmd_repair(&t, o.yes);
    return usage_error("unknown command %s", o.cmd);
}
