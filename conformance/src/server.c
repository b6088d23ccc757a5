/*
 * server.c - server processes and scratch workspaces for --server mode;
 * see server.h.
 *
 * The child side of fork() only calls async-signal-safe functions (the
 * runner may have libcurl resolver threads): everything it needs (argv, log
 * descriptors) is prepared before the fork.
 */
#include "server.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "http.h"
#include "util.h"

#define POLL_MS         10   /* reaping / group polling interval */
#define READY_POLL_MS   25   /* pause between two /health attempts */
#define HEALTH_TRY_MS   2000 /* bound of one /health attempt */
#define MAX_LIVE_GROUPS 16

extern char **environ;

/* Process groups started and not reaped yet; read by server_emergency_kill. */
static volatile pid_t live_groups[MAX_LIVE_GROUPS];

static void live_add(pid_t pg)
{
    size_t i;

    for (i = 0; i < MAX_LIVE_GROUPS; i++) {
        if (live_groups[i] == 0) {
            live_groups[i] = pg;
            return;
        }
    }
}

static void live_del(pid_t pg)
{
    size_t i;

    for (i = 0; i < MAX_LIVE_GROUPS; i++)
        if (live_groups[i] == pg)
            live_groups[i] = 0;
}

void server_emergency_kill(void)
{
    size_t i;

    for (i = 0; i < MAX_LIVE_GROUPS; i++)
        if (live_groups[i] > 0)
            (void)kill(-live_groups[i], SIGKILL);
}

void server_global_init(void)
{
#if defined(__linux__) && defined(PR_SET_CHILD_SUBREAPER)
    /* Orphans of a server's sh (the server itself when sh dies first) become our
     * children, so their exit status is seen and they are reaped here. */
    (void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
#endif
}

int server_init(struct server *s, const char *dir, const char *name)
{
    struct buf b;

    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "%s", name);
    buf_init(&b, PATH_MAX);
    if (buf_appendf(&b, "%s/%s.out", dir, name) != 0 || !(s->log_out = buf_take(&b, NULL)) ||
        buf_appendf(&b, "%s/%s.err", dir, name) != 0 || !(s->log_err = buf_take(&b, NULL))) {
        buf_cleanup(&b);
        free(s->log_out);
        s->log_out = NULL;
        return -ENOMEM;
    }
    buf_cleanup(&b);
    return 0;
}

void server_cleanup(struct server *s)
{
    if (!s)
        return;
    server_kill(s);
    free(s->log_out);
    free(s->log_err);
    s->log_out = s->log_err = NULL;
}

int server_free_port(int *port)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc = 0;

    if (fd < 0)
        return -errno;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        rc = -errno;
    else
        *port = ntohs(sa.sin_port);
    close(fd);
    return rc;
}

const char *server_cmd_check(const char *tmpl)
{
    if (!tmpl || !*tmpl)
        return "the --server command is empty";
    if (!strstr(tmpl, "{port}"))
        return "the --server command must contain {port}";
    if (!strstr(tmpl, "{workspace}"))
        return "the --server command must contain {workspace}";
    if (strlen(tmpl) > SERVER_MAX_CMD / 2)
        return "the --server command is too long";
    return NULL;
}

int server_build_cmd(const char *tmpl, const char *ws, int port, const char *args, struct buf *out)
{
    const char *p = tmpl;
    int rc = 0, had_args = 0;

    buf_reset(out);
    while (!rc && *p) {
        if (!strncmp(p, "{workspace}", 11)) {
            rc = util_shell_quote(out, ws, strlen(ws));
            p += 11;
        } else if (!strncmp(p, "{port}", 6)) {
            rc = buf_appendf(out, "%d", port);
            p += 6;
        } else if (!strncmp(p, "{args}", 6)) {
            rc = buf_appends(out, args ? args : "");
            had_args = 1;
            p += 6;
        } else {
            rc = buf_appendc(out, *p++);
        }
    }
    if (!rc && !had_args && args && *args)
        rc = buf_appendf(out, " %s", args);
    if (!rc && !out->data)
        rc = buf_appends(out, "");
    return rc;
}

static long long file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

/* Child side of server_spawn: async-signal-safe calls only. */
static void child(int out, int err, char *const argv[])
{
    sigset_t none;
    int in = open("/dev/null", O_RDONLY), fd;

    (void)setpgid(0, 0);
#if defined(__linux__) && defined(PR_SET_PDEATHSIG)
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
#endif
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
    (void)signal(SIGPIPE, SIG_DFL);
    (void)signal(SIGINT, SIG_DFL);
    (void)signal(SIGTERM, SIG_DFL);
    (void)signal(SIGHUP, SIG_DFL);
    if (in < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
        _exit(126);
        /* Nothing of the runner (sockets, files) leaks into the server. */
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
#endif
        for (fd = 3; fd < 4096; fd++)
            (void)close(fd);
    execve("/bin/sh", argv, environ);
    _exit(127);
}

int server_spawn(struct server *s, const char *cmd, int port)
{
    static char sh[] = "sh", dash_c[] = "-c";
    char *argv[4];
    int out, err, e;
    pid_t pid;

    server_kill(s);
    out = open(s->log_out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    err = open(s->log_err, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (out < 0 || err < 0) {
        e = -errno;
        if (out >= 0)
            close(out);
        return e;
    }
    s->err_from = file_size(s->log_err);
    s->port = port;
    s->main_reaped = s->other_bad = s->sent = 0;
    s->main_status = s->other_status = 0;
    argv[0] = sh;
    argv[1] = dash_c;
    argv[2] = (char *)(uintptr_t)cmd;
    argv[3] = NULL;
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid == 0)
        child(out, err, argv);
    e = pid < 0 ? -errno : 0;
    close(out);
    close(err);
    if (pid < 0)
        return e;
    (void)setpgid(pid, pid); /* also here: no race with the first kill(-pid) */
    s->pid = pid;
    s->started_ms = util_now_ms();
    live_add(pid);
    return 0;
}

/* Is a status acceptable after a stop with signal sig (0: none sent)? */
static int status_clean(int st, int sig)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st) == 0;
    return WIFSIGNALED(st) && sig && WTERMSIG(st) == sig;
}

/* Reap whatever of the group has exited; 1 when no member is left. */
static int reap(struct server *s)
{
    int st;
    pid_t r;

    if (!s->pid)
        return 1;
    while ((r = waitpid(-s->pid, &st, WNOHANG)) > 0) {
        if (r == s->pid) {
            s->main_status = st;
            s->main_reaped = 1;
        } else if (!s->other_bad && !status_clean(st, s->sent)) {
            s->other_status = st;
            s->other_bad = 1;
        }
    }
    if (kill(-s->pid, 0) == 0 || errno == EPERM)
        return 0;
    /* Gone: the group id may be reused from now on. */
    live_del(s->pid);
    s->pid = 0;
    return 1;
}

int server_running(struct server *s)
{
    return !reap(s);
}

/* Wait until the group is gone or ms pass; 1 when gone. */
static int wait_gone(struct server *s, long ms)
{
    double end = util_now_ms() + (double)ms;

    for (;;) {
        if (reap(s))
            return 1;
        if (util_now_ms() >= end)
            return 0;
        util_sleep_ms(POLL_MS);
    }
}

void server_kill(struct server *s)
{
    if (!s->pid)
        return;
    s->sent = SIGKILL;
    (void)kill(-s->pid, SIGKILL);
    if (!wait_gone(s, SERVER_KILL_WAIT_MS)) {
        /* Not our child any more and not dying: forget it rather than hang. */
        live_del(s->pid);
        s->pid = 0;
    }
}

void server_status_text(int st, struct buf *out)
{
    if (WIFEXITED(st))
        util_note(out, "exit status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        util_note(out, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        util_note(out, "wait status 0x%x", (unsigned)st);
}

int server_stop(struct server *s, int sig, long within_ms, struct buf *why)
{
    int bad = 0;

    if (!s->pid) {
        util_note(why, "the %s server is not running", s->name);
        return 1;
    }
    if (reap(s)) {
        util_note(why, "the %s server had already exited on its own (", s->name);
        if (s->main_reaped)
            server_status_text(s->main_status, why);
        else
            util_note(why, "%s", "status unknown");
        util_note(why, "%c", ')');
        return 1;
    }
    s->sent = sig;
    (void)kill(-s->pid, sig);
    if (!wait_gone(s, within_ms)) {
        if (sig != SIGKILL)
            util_note(why, "the %s server did not exit within %ld ms of SIG%s; sent SIGKILL",
                      s->name, within_ms, sig == SIGTERM ? "TERM" : "?");
        else
            util_note(why, "the %s server's process group survived SIGKILL for %ld ms", s->name,
                      within_ms);
        server_kill(s);
        return 1;
    }
    if (sig == SIGKILL)
        return 0;
    if (s->main_reaped && !status_clean(s->main_status, sig)) {
        util_note(why, "the %s server ended with ", s->name);
        server_status_text(s->main_status, why);
        util_note(why, " after SIGTERM (expected exit status 0)");
        bad = 1;
    } else if (s->other_bad) {
        util_note(why, "a process of the %s server ended with ", s->name);
        server_status_text(s->other_status, why);
        util_note(why, " after SIGTERM (expected exit status 0)");
        bad = 1;
    }
    return bad;
}

enum server_wait server_wait_ready(struct server *s, long within_ms)
{
    double end = util_now_ms() + (double)within_ms;
    struct http_client *c = http_client_new("lifecycle");
    struct buf url;
    enum server_wait res = SERVER_TIMEOUT;

    buf_init(&url, 128);
    if (!c || buf_appendf(&url, "http://127.0.0.1:%d/health", s->port) != 0) {
        http_client_free(c);
        buf_cleanup(&url);
        return SERVER_TIMEOUT;
    }
    for (;;) {
        struct http_req req;
        struct http_resp resp;
        double left;
        int got = 0;

        if (reap(s) || s->main_reaped) {
            res = SERVER_EXITED;
            break;
        }
        left = end - util_now_ms();
        if (left <= 0)
            break;
        http_req_init(&req);
        http_resp_init(&resp);
        req.method = strdup("GET");
        req.url = strdup(url.data);
        req.timeout_ms = left < HEALTH_TRY_MS ? (long)left + 1 : HEALTH_TRY_MS;
        if (req.method && req.url && http_perform(c, &req, &resp, 0) == 0 && !resp.curl_code &&
            resp.status == 200)
            got = 1;
        http_req_cleanup(&req);
        http_resp_cleanup(&resp);
        if (got) {
            res = SERVER_READY;
            break;
        }
        util_sleep_ms(READY_POLL_MS);
    }
    http_client_free(c);
    buf_cleanup(&url);
    return res;
}

int server_stderr(const struct server *s, size_t max, struct buf *out)
{
    long long size = file_size(s->log_err), from = s->err_from;
    char chunk[8192];
    FILE *f;
    int rc = 0;

    buf_reset(out);
    if (size - from > (long long)max)
        from = size - (long long)max;
    f = fopen(s->log_err, "rb");
    if (!f)
        return errno == ENOENT ? 0 : -errno;
    if (fseeko(f, (off_t)from, SEEK_SET) != 0) {
        fclose(f);
        return -EIO;
    }
    while (!rc && from < size) {
        size_t want = (size_t)(size - from) < sizeof(chunk) ? (size_t)(size - from) : sizeof(chunk);
        size_t n = fread(chunk, 1, want, f);

        if (n == 0)
            break;
        rc = buf_append(out, chunk, n);
        from += (long long)n;
    }
    fclose(f);
    if (!rc && !out->data)
        rc = buf_appends(out, "");
    return rc;
}

/* ------------------------------------------------------------------ trees */

static int copy_file(const char *src, const char *dst, mode_t mode)
{
    char chunk[65536];
    int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), out, rc = 0;
    long long total = 0;
    ssize_t n;

    if (in < 0)
        return -errno;
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode & 07777);
    if (out < 0) {
        rc = -errno;
        close(in);
        return rc;
    }
    while ((n = read(in, chunk, sizeof(chunk))) != 0) {
        ssize_t off = 0;

        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        total += n;
        if (total > SERVER_MAX_TREE_FILE) {
            rc = LS_ETOOBIG;
            break;
        }
        while (off < n) {
            ssize_t w = write(out, chunk + off, (size_t)(n - off));

            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                rc = w < 0 ? -errno : -EIO;
                break;
            }
            off += w;
        }
        if (rc)
            break;
    }
    close(in);
    if (close(out) != 0 && !rc)
        rc = -errno;
    return rc;
}

/* Copy the tree at src to dst. */
static int copy_tree(const char *src, const char *dst, int depth)
{
    struct stat st;
    DIR *d;
    struct dirent *de;
    int rc = 0;

    if (depth > SERVER_TREE_DEPTH)
        return LS_ETOOBIG;
    if (lstat(src, &st) != 0)
        return -errno;
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlink(src, target, sizeof(target) - 1);

        if (n < 0)
            return -errno;
        target[n] = '\0';
        return symlink(target, dst) == 0 ? 0 : -errno;
    }
    if (S_ISREG(st.st_mode))
        return copy_file(src, dst, st.st_mode);
    if (!S_ISDIR(st.st_mode))
        return 0; /* sockets, fifos, devices: not part of a workspace */
    if (mkdir(dst, (st.st_mode & 07777) | 0700) != 0)
        return -errno;
    d = opendir(src);
    if (!d)
        return -errno;
    while (!rc && (de = readdir(d)) != NULL) {
        struct buf a, b;

        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        buf_init(&a, PATH_MAX);
        buf_init(&b, PATH_MAX);
        rc = buf_appendf(&a, "%s/%s", src, de->d_name);
        rc = rc ? rc : buf_appendf(&b, "%s/%s", dst, de->d_name);
        rc = rc ? rc : copy_tree(a.data, b.data, depth + 1);
        buf_cleanup(&a);
        buf_cleanup(&b);
    }
    closedir(d);
    return rc;
}

int tree_copy(const char *src, const char *dst)
{
    return copy_tree(src, dst, 0);
}

static int remove_at(int parent, const char *name, int depth)
{
    struct stat st;
    int fd, rc = 0;
    DIR *d;
    struct dirent *de;

    if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(parent, name, 0) == 0 || errno == ENOENT ? 0 : -errno;
    if (depth > SERVER_TREE_DEPTH)
        return LS_ETOOBIG;
    fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    /* A directory without write or search permission (a server may chmod) cannot be emptied. */
    (void)fchmod(fd, 0700);
    d = fdopendir(fd);
    if (!d) {
        rc = -errno;
        close(fd);
        return rc;
    }
    while ((de = readdir(d)) != NULL) {
        int r;

        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        r = remove_at(dirfd(d), de->d_name, depth + 1);
        if (r && !rc)
            rc = r;
    }
    closedir(d);
    if (unlinkat(parent, name, AT_REMOVEDIR) != 0 && errno != ENOENT && !rc)
        rc = -errno;
    return rc;
}

int tree_remove(const char *path)
{
    return remove_at(AT_FDCWD, path, 0);
}
