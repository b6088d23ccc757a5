/*
 * crash_test.c - kill -9 durability test for labelsyncd.
 *
 * The durability contract (acknowledged = on disk under --fsync=always) can
 * only be observed from outside: write, kill the process at a random moment,
 * start it again on the same files and compare what comes back with what was
 * acknowledged.  This program does exactly that, many times in a row:
 *
 *   setup    copy the template gallery into a fresh temp workspace (once);
 *            start labelsyncd on it and read the items' versions.
 *   cycle    W writer threads PATCH their own items as fast as the server
 *            answers; after a random A..B ms the server gets SIGKILL and is
 *            reaped; the writers stop; the server is started again on the
 *            same workspace and the read-back is checked:
 *              - lost:        an acknowledged (200) version is missing, or the
 *                             version is there with other notes;
 *              - backwards:   a version lower than one seen before the kill;
 *              - indefinite:  a write whose answer never came (transport error
 *                             or 5xx) is wholly present or wholly absent;
 *              - unexplained: a version nobody wrote (higher than every write
 *                             that could have made it);
 *              - events:      a probe write after the restart gets an event_id
 *                             above every acknowledged one;
 *              - idempotency: sampled acknowledged requests, sent again with
 *                             the same key, get the same status and the same
 *                             body bytes.
 *            The next cycle writes on from the versions read back.
 *
 * Invariants: each item has exactly one writer, so the only way its version
 * moves is through that writer (a 409 is therefore itself a violation); a
 * writer stops at its first request without an answer, so it leaves at most
 * one indefinite write per cycle and that write sits directly on top of the
 * writer's last known state.  Every wait is bounded (curl timeouts, server
 * start and reap deadlines, --max-seconds), the server is always reaped, only
 * loopback URLs are accepted, proxies are disabled.
 *
 * Exit status: 0 every check passed, 1 a durability violation, 2 usage or
 * set-up error (including an interrupted or timed-out run).
 */
#include <curl/curl.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CT_MAX_WRITERS        16
#define CT_MAX_ITEMS          64
#define CT_MAX_CYCLES         100000ULL
#define CT_MAX_RUN_MS         600000ULL
#define CT_MAX_SECONDS        86400ULL
#define CT_DEFAULT_CYCLES     50ULL
#define CT_DEFAULT_WRITERS    4ULL
#define CT_DEFAULT_MIN_RUN_MS 50ULL
#define CT_DEFAULT_MAX_RUN_MS 400ULL
#define CT_DEFAULT_MAX_SECS   1800ULL
#define CT_MAX_SERVER_ARGS    32
#define CT_MAX_SERVER_ARGLEN  4096
#define CT_MAX_URL            4096
#define CT_MAX_BASE           256
#define CT_MAX_BODY           (256u * 1024u)
#define CT_MAX_READY_LINE     4096
#define CT_MAX_TOKEN          96
#define CT_MAX_REQ            256
#define CT_MAX_ACKS_PER_ITEM  (1u << 20)
#define CT_IDEM_SAMPLES       3
#define CT_START_TIMEOUT_MS   15000
#define CT_REAP_TIMEOUT_MS    10000
#define CT_HTTP_TIMEOUT_MS    5000L
#define CT_CONNECT_TIMEOUT_MS 2000L
#define CT_MAX_DETAILS        6
#define CT_MAX_VERSION        9007199254740991ULL

#define CT_EXIT_OK        0
#define CT_EXIT_VIOLATION 1
#define CT_EXIT_SETUP     2

/* Items the writers use: the 12 free-for-all scratch items and a few with
 * awkward names, so percent-encoding and nested folders are on the path too.
 * Items missing from the template are dropped at set-up. */
static const char *const default_items[] = {
    "/scratch/s01.png",    "/scratch/s02.png",
    "/scratch/s03.png",    "/scratch/s04.png",
    "/scratch/s05.png",    "/scratch/s06.png",
    "/scratch/s07.png",    "/scratch/s08.png",
    "/scratch/s09.png",    "/scratch/s10.png",
    "/scratch/s11.png",    "/scratch/s12.png",
    "/cover.png",          "/animals/birds/sea/gull.jpg",
    "/with space/a b.png", "/unicode/caf\xc3\xa9.jpg",
};

struct opts {
    char *server_bin; /* argv's, not owned; not const because execv takes char *const[] */
    const char *template_dir;
    unsigned long long cycles;
    unsigned long long writers;
    unsigned long long min_run_ms;
    unsigned long long max_run_ms;
    unsigned long long seed;
    unsigned long long max_seconds;
    char *server_args[CT_MAX_SERVER_ARGS]; /* owned; split from --server-args */
    size_t nserver_args;
    bool keep;
};

/* One HTTP answer (or the transport error that replaced it). */
struct resp {
    long status; /* 0 = no answer */
    char *body;  /* owned, NUL-terminated, at most CT_MAX_BODY bytes */
    size_t len;
    size_t cap;
    bool overflow;
    bool replayed; /* Idempotent-Replayed: true */
    char err[CURL_ERROR_SIZE];
};

/*
 * Per-item model.  "exp" is what the server must hold if every acknowledged
 * write survived and no indefinite write took effect; the writer that owns
 * the item updates it during a cycle, the main thread between cycles.
 */
struct item {
    const char *path;
    char *esc; /* curl_easy_escape'd path, owned (curl_free) */
    unsigned long long exp_version;
    char *exp_notes;             /* owned */
    unsigned long long seen_max; /* highest version observed since the last check */
    bool ind;                    /* an indefinite write is outstanding */
    unsigned long long ind_version;
    char ind_token[CT_MAX_TOKEN];
    char ind_req[CT_MAX_REQ];  /* the request, to send it again with the same key */
    unsigned long long *acked; /* acknowledged versions not yet disproved, ascending */
    size_t nacked;
    size_t acked_cap;
};

/* One acknowledged request, kept to be replayed with the same key. */
struct sample {
    bool used;
    size_t item;
    unsigned long long base;
    char key[CT_MAX_TOKEN];
    char req[CT_MAX_REQ];
    char *resp; /* owned: the exact 200 body */
    size_t resp_len;
};

struct writer {
    unsigned id;
    pthread_t th;
    bool started;
    CURL *curl;
    struct resp r;
    uint64_t rng;
    unsigned long long n; /* requests this cycle: the key suffix */
    unsigned long long acks, conflicts, backwards, server_errors;
    unsigned long long max_event;
    bool indefinite;
    bool fatal;
    char fatal_msg[256];
    struct sample last;
    struct sample res[CT_IDEM_SAMPLES];
};

struct server {
    pid_t pid; /* -1 = none */
    int out_fd;
    char base[CT_MAX_BASE]; /* "http://127.0.0.1:PORT/" */
};

struct totals {
    unsigned long long cycles, acked, lost, backwards, idem_checked, idem_mismatch;
    unsigned long long indefinite, present, absent, inconsistent, unexplained;
    unsigned long long event_regress, probe_fail, restart_fail, conflicts;
};

static struct opts g_opt;
static struct item g_items[CT_MAX_ITEMS];
static size_t g_nitems;
static struct writer g_writers[CT_MAX_WRITERS];
static struct server g_srv = {-1, -1, ""};
static char g_tmp[PATH_MAX];
static char g_ws[PATH_MAX];
static char g_log[PATH_MAX];
static unsigned long long g_cycle;
static atomic_bool g_stop_writers;
static volatile sig_atomic_t g_interrupted;
static unsigned g_details; /* violation lines printed this cycle */
static pthread_mutex_t g_print_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_signal(int sig)
{
    (void)sig;
    g_interrupted = 1;
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000LL;
}

/* Sleep in short slices so SIGINT/SIGTERM end the wait promptly. */
static void sleep_ms(long long ms)
{
    long long end = now_ms() + ms;

    while (!g_interrupted) {
        long long left = end - now_ms();
        struct timespec ts;

        if (left <= 0)
            break;
        if (left > 20)
            left = 20;
        ts.tv_sec = 0;
        ts.tv_nsec = (long)left * 1000000L;
        nanosleep(&ts, NULL);
    }
}

/* splitmix64: seeds the per-thread streams so --seed reproduces a run's timing choices. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Print one violation detail line; capped so a total loss does not flood the log. */
static void detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void detail(const char *fmt, ...)
{
    va_list ap;

    /* Writers report too; one lock keeps the count exact and the lines whole. */
    pthread_mutex_lock(&g_print_lock);
    g_details++;
    if (g_details <= CT_MAX_DETAILS) {
        fputs("  ", stdout);
        va_start(ap, fmt);
        vfprintf(stdout, fmt, ap);
        va_end(ap);
        fputc('\n', stdout);
    }
    pthread_mutex_unlock(&g_print_lock);
}

/* ---- options --------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: crash_test --server-bin PATH --workspace-template DIR [--cycles N]\n"
               "                  [--writers W] [--min-run-ms A --max-run-ms B] [--seed S]\n"
               "                  [--server-args \"...\"] [--max-seconds S] [--keep]\n"
               "\n"
               "Write to labelsyncd, kill -9 it at a random moment, restart it on the same\n"
               "workspace and check that every acknowledged write survived.\n"
               "  --server-bin PATH          labelsyncd to run (--root WS --port 0 are added)\n"
               "  --workspace-template DIR   gallery copied once into a fresh temp workspace\n"
               "  --cycles N                 kill/restart cycles, 1..100000 (default 50)\n"
               "  --writers W                writer threads, 1..16 (default 4)\n"
               "  --min-run-ms A             shortest write phase before the kill (default 50)\n"
               "  --max-run-ms B             longest write phase before the kill (default 400)\n"
               "  --seed S                   PRNG seed (default: time and pid; printed)\n"
               "  --server-args \"...\"        extra server arguments, split on spaces\n"
               "  --max-seconds S            stop after this long, counted as a set-up error\n"
               "                             (default 1800)\n"
               "  --keep                     keep the temp workspace and the server log\n"
               "\n"
               "Exit status: 0 all checks passed, 1 durability violation, 2 usage or set-up\n"
               "error.\n");
}

/* strtoull wrapper: the whole string must be a decimal number in [lo, hi]. */
static int parse_ull(const char *s, unsigned long long lo, unsigned long long hi,
                     unsigned long long *out)
{
    char *end;
    unsigned long long v;

    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Split --server-args on blanks.  No quoting: server flags never need spaces. */
static int split_server_args(const char *s)
{
    if (strlen(s) > CT_MAX_SERVER_ARGLEN)
        return -1;
    while (*s) {
        size_t n;

        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            break;
        n = strcspn(s, " \t");
        if (g_opt.nserver_args == CT_MAX_SERVER_ARGS)
            return -1;
        g_opt.server_args[g_opt.nserver_args] = strndup(s, n);
        if (!g_opt.server_args[g_opt.nserver_args])
            return -1;
        g_opt.nserver_args++;
        s += n;
    }
    return 0;
}

static int parse_opts(int argc, char **argv)
{
    static const struct option longopts[] = {{"server-bin", required_argument, NULL, 'b'},
                                             {"workspace-template", required_argument, NULL, 't'},
                                             {"cycles", required_argument, NULL, 'c'},
                                             {"writers", required_argument, NULL, 'w'},
                                             {"min-run-ms", required_argument, NULL, 'a'},
                                             {"max-run-ms", required_argument, NULL, 'B'},
                                             {"seed", required_argument, NULL, 's'},
                                             {"server-args", required_argument, NULL, 'x'},
                                             {"max-seconds", required_argument, NULL, 'm'},
                                             {"keep", no_argument, NULL, 'k'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    bool have_seed = false;
    int c, li = 0;

    g_opt.cycles = CT_DEFAULT_CYCLES;
    g_opt.writers = CT_DEFAULT_WRITERS;
    g_opt.min_run_ms = CT_DEFAULT_MIN_RUN_MS;
    g_opt.max_run_ms = CT_DEFAULT_MAX_RUN_MS;
    g_opt.max_seconds = CT_DEFAULT_MAX_SECS;
    while ((c = getopt_long(argc, argv, "", longopts, &li)) != -1) {
        int rc = 0;

        switch (c) {
        case 'b':
            g_opt.server_bin = optarg;
            break;
        case 't':
            g_opt.template_dir = optarg;
            break;
        case 'c':
            rc = parse_ull(optarg, 1, CT_MAX_CYCLES, &g_opt.cycles);
            break;
        case 'w':
            rc = parse_ull(optarg, 1, CT_MAX_WRITERS, &g_opt.writers);
            break;
        case 'a':
            rc = parse_ull(optarg, 0, CT_MAX_RUN_MS, &g_opt.min_run_ms);
            break;
        case 'B':
            rc = parse_ull(optarg, 0, CT_MAX_RUN_MS, &g_opt.max_run_ms);
            break;
        case 's':
            rc = parse_ull(optarg, 0, UINT64_MAX, &g_opt.seed);
            have_seed = true;
            break;
        case 'x':
            rc = split_server_args(optarg);
            break;
        case 'm':
            rc = parse_ull(optarg, 1, CT_MAX_SECONDS, &g_opt.max_seconds);
            break;
        case 'k':
            g_opt.keep = true;
            break;
        case 'h':
            usage(stdout);
            exit(CT_EXIT_OK);
        default:
            usage(stderr);
            return -1;
        }
        if (rc) {
            fprintf(stderr, "crash_test: bad value for --%s: '%s'\n", longopts[li].name, optarg);
            return -1;
        }
    }
    if (optind != argc || !g_opt.server_bin || !g_opt.template_dir) {
        usage(stderr);
        return -1;
    }
    if (g_opt.min_run_ms > g_opt.max_run_ms) {
        fprintf(stderr, "crash_test: --min-run-ms must not exceed --max-run-ms\n");
        return -1;
    }
    if (!have_seed)
        g_opt.seed = (unsigned long long)time(NULL) ^ ((unsigned long long)getpid() << 32);
    return 0;
}

/* ---- temp workspace ------------------------------------------------------------------------ */

/* nftw has no context pointer; the copy runs single-threaded before any writer exists. */
static const char *g_copy_src;
static const char *g_copy_dst;

static int copy_file(const char *from, const char *to, mode_t mode)
{
    char buf[65536];
    int in, out, rc = 0;

    in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -1;
    out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 0777);
    if (out < 0) {
        close(in);
        return -1;
    }
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf), off = 0;

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -1 : 0;
            break;
        }
        while (off < n) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));

            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                rc = -1;
                break;
            }
            off += w;
        }
        if (rc)
            break;
    }
    close(in);
    if (close(out) != 0)
        rc = -1;
    return rc;
}

static int copy_entry(const char *fpath, const struct stat *st, int type, struct FTW *ftw)
{
    char to[PATH_MAX];
    const char *rel = fpath + strlen(g_copy_src);
    int n;

    (void)ftw;
    n = snprintf(to, sizeof to, "%s%s", g_copy_dst, rel);
    if (n < 0 || (size_t)n >= sizeof to)
        return -1;
    switch (type) {
    case FTW_D:
        return mkdir(to, (st->st_mode & 0777) | 0700);
    case FTW_F:
        return copy_file(fpath, to, st->st_mode);
    case FTW_SL: {
        /* Kept as a link: the server must see the template exactly (it skips symlinks). */
        char target[PATH_MAX];
        ssize_t len = readlink(fpath, target, sizeof target - 1);

        if (len < 0)
            return -1;
        target[len] = '\0';
        return symlink(target, to);
    }
    default:
        return 0; /* sockets, fifos, unreadable dirs: not part of a gallery */
    }
}

static int remove_entry(const char *fpath, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(fpath);
}

static int make_workspace(void)
{
    const char *tmpdir = getenv("TMPDIR");
    struct stat st;
    int n;

    if (stat(g_opt.template_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "crash_test: %s is not a directory\n", g_opt.template_dir);
        return -1;
    }
    n = snprintf(g_tmp, sizeof g_tmp, "%s/labelsync-crash.XXXXXX",
                 tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (n < 0 || (size_t)n >= sizeof g_tmp || !mkdtemp(g_tmp)) {
        fprintf(stderr, "crash_test: cannot create a temp directory: %s\n", strerror(errno));
        g_tmp[0] = '\0';
        return -1;
    }
    n = snprintf(g_ws, sizeof g_ws, "%s/ws", g_tmp);
    if (n < 0 || (size_t)n >= sizeof g_ws)
        return -1;
    n = snprintf(g_log, sizeof g_log, "%s/server.log", g_tmp);
    if (n < 0 || (size_t)n >= sizeof g_log)
        return -1;
    g_copy_src = g_opt.template_dir;
    g_copy_dst = g_ws;
    if (nftw(g_opt.template_dir, copy_entry, 32, FTW_PHYS) != 0) {
        fprintf(stderr, "crash_test: copying %s to %s failed: %s\n", g_opt.template_dir, g_ws,
                strerror(errno));
        return -1;
    }
    return 0;
}

static void remove_workspace(void)
{
    if (!g_tmp[0])
        return;
    if (g_opt.keep) {
        printf("kept: workspace %s, server log %s\n", g_ws, g_log);
        return;
    }
    if (nftw(g_tmp, remove_entry, 32, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "crash_test: could not remove %s: %s\n", g_tmp, strerror(errno));
}

/* Show the end of the server log when the server misbehaves at start. */
static void dump_log_tail(void)
{
    char buf[2048];
    FILE *f = fopen(g_log, "r");
    size_t n;

    if (!f)
        return;
    if (fseek(f, -(long)(sizeof buf - 1), SEEK_END) != 0)
        rewind(f);
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "crash_test: end of %s:\n%s\n", g_log, buf);
}

/* ---- the server process ----------------------------------------------------------------- */

/* Wait at most timeout_ms for pid to exit; 0 when reaped. */
static int reap(pid_t pid, int timeout_ms, int *status)
{
    long long end = now_ms() + timeout_ms;

    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);

        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
        if (now_ms() >= end)
            return -1;
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/*
 * SIGKILL (or SIGTERM first when graceful) and reap; the server never outlives
 * us.  g_srv.base is left alone: writers may still be reading it, and the next
 * server_start replaces it before anyone uses it again.
 */
static int server_stop(bool graceful)
{
    int status = 0;

    if (g_srv.pid > 0) {
        if (graceful) {
            kill(g_srv.pid, SIGTERM);
            if (reap(g_srv.pid, CT_REAP_TIMEOUT_MS, &status) == 0)
                goto reaped;
        }
        kill(g_srv.pid, SIGKILL);
        if (reap(g_srv.pid, CT_REAP_TIMEOUT_MS, &status) != 0) {
            /* SIGKILL cannot be ignored; only an uninterruptible sleep gets here. */
            fprintf(stderr, "crash_test: server %ld slow to die after SIGKILL; waiting\n",
                    (long)g_srv.pid);
            while (waitpid(g_srv.pid, &status, 0) < 0 && errno == EINTR)
                ;
        }
    }
reaped:
    if (g_srv.out_fd >= 0)
        close(g_srv.out_fd);
    g_srv.pid = -1;
    g_srv.out_fd = -1;
    return status;
}

/* Accept only loopback URLs: the tool must never write to somebody else's server. */
static int take_base_url(const char *line)
{
    static const char *const ok[] = {"http://127.0.0.1:", "http://localhost:", "http://[::1]:"};
    const char *p = strstr(line, "http://");
    size_t n, i;
    bool loop = false;

    if (!p) {
        fprintf(stderr, "crash_test: no URL in the server's ready line: %s", line);
        return -1;
    }
    n = strcspn(p, " \t\r\n");
    for (i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strncmp(p, ok[i], strlen(ok[i])) == 0)
            loop = true;
    if (!loop || n + 2 > sizeof g_srv.base) {
        fprintf(stderr, "crash_test: refusing server URL '%.*s': loopback only\n", (int)n, p);
        return -1;
    }
    memcpy(g_srv.base, p, n);
    if (g_srv.base[n - 1] != '/')
        g_srv.base[n++] = '/';
    g_srv.base[n] = '\0';
    return 0;
}

/*
 * fork+execv the server with --root WS --port 0 and the extra args, then wait
 * (bounded) for the one ready line on its stdout.  The pipe stays open until
 * the server is reaped, so a late write to stdout never gets it a SIGPIPE.
 * Returns 0 with g_srv filled, -1 (server reaped) otherwise.
 */
static int server_start(void)
{
    static char a_root[] = "--root", a_port[] = "--port", a_zero[] = "0";
    char *argv[CT_MAX_SERVER_ARGS + 8];
    char line[CT_MAX_READY_LINE];
    size_t argc = 0, len = 0, i;
    int pfd[2], logfd, nullfd, st;
    long long end;
    pid_t pid;

    argv[argc++] = g_opt.server_bin;
    argv[argc++] = a_root;
    argv[argc++] = g_ws;
    argv[argc++] = a_port;
    argv[argc++] = a_zero;
    for (i = 0; i < g_opt.nserver_args; i++)
        argv[argc++] = g_opt.server_args[i];
    argv[argc] = NULL;

    if (pipe2(pfd, O_CLOEXEC) != 0)
        return -1;
    logfd = open(g_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (logfd < 0 || nullfd < 0) {
        fprintf(stderr, "crash_test: cannot open %s: %s\n", g_log, strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        if (logfd >= 0)
            close(logfd);
        if (nullfd >= 0)
            close(nullfd);
        return -1;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        close(logfd);
        close(nullfd);
        return -1;
    }
    if (pid == 0) {
        /* Child: async-signal-safe calls only.  Own process group, so a terminal
         * ^C reaches crash_test (which kills the server) and not a half-run server. */
        setpgid(0, 0);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        if (dup2(nullfd, 0) < 0 || dup2(pfd[1], 1) < 0 || dup2(logfd, 2) < 0)
            _exit(127);
        execv(g_opt.server_bin, argv);
        {
            static const char msg[] = "crash_test: execv of the server failed\n";
            ssize_t ignored = write(2, msg, sizeof msg - 1);

            (void)ignored;
        }
        _exit(127);
    }
    close(pfd[1]);
    close(logfd);
    close(nullfd);
    g_srv.pid = pid;
    g_srv.out_fd = pfd[0];

    end = now_ms() + CT_START_TIMEOUT_MS;
    for (;;) {
        struct pollfd p = {pfd[0], POLLIN, 0};
        long long left = end - now_ms();
        int r;

        if (left <= 0 || g_interrupted) {
            fprintf(stderr, "crash_test: server did not print its URL within %d ms\n",
                    CT_START_TIMEOUT_MS);
            break;
        }
        r = poll(&p, 1, left > 100 ? 100 : (int)left);
        if (r < 0 && errno != EINTR)
            break;
        if (r > 0) {
            ssize_t n = read(pfd[0], line + len, sizeof line - 1 - len);

            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                fprintf(stderr, "crash_test: server closed stdout before printing its URL\n");
                break;
            }
            len += (size_t)n;
            line[len] = '\0';
            if (strchr(line, '\n')) {
                if (take_base_url(line) == 0)
                    return 0;
                break;
            }
            if (len == sizeof line - 1) {
                fprintf(stderr, "crash_test: server ready line too long\n");
                break;
            }
        }
    }
    st = server_stop(false);
    /* Say how it ended: a signal is a server bug, an exit code the server's verdict. */
    if (WIFEXITED(st))
        fprintf(stderr, "crash_test: server exited with status %d\n", WEXITSTATUS(st));
    else if (WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL)
        fprintf(stderr, "crash_test: server died of signal %d\n", WTERMSIG(st));
    dump_log_tail();
    return -1;
}

/* ---- HTTP ----------------------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    struct resp *r = ud;
    size_t n = size * nmemb;

    if (r->len + n > CT_MAX_BODY) {
        r->overflow = true; /* keep reading so the connection stays usable */
        return n;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        char *nb;

        while (cap < r->len + n + 1)
            cap *= 2;
        nb = realloc(r->body, cap);
        if (!nb)
            return 0;
        r->body = nb;
        r->cap = cap;
    }
    memcpy(r->body + r->len, p, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    static const char name[] = "Idempotent-Replayed:";
    struct resp *r = ud;
    size_t n = size * nmemb;

    if (n >= sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0)
        r->replayed = true;
    return n;
}

/*
 * One request on handle c (keep-alive connections survive curl_easy_reset).
 * body NULL = GET.  Returns 0 when an HTTP answer arrived (r->status), -1 on
 * a transport error (r->err), which for a PATCH means "maybe applied".
 */
static int http_do(CURL *c, const char *url, const char *client, const char *key,
                   unsigned long long if_match, const char *body, struct resp *r)
{
    struct curl_slist *h = NULL, *t;
    char hk[CT_MAX_TOKEN + 32], hc[CT_MAX_TOKEN + 32], hm[64];
    CURLcode cc;
    int rc = 0;

    r->status = 0;
    r->len = 0;
    r->overflow = false;
    r->replayed = false;
    r->err[0] = '\0';
    if (r->body)
        r->body[0] = '\0';
    curl_easy_reset(c);
    if (body) {
        snprintf(hk, sizeof hk, "Idempotency-Key: %s", key);
        snprintf(hc, sizeof hc, "X-Client-Id: %s", client);
        snprintf(hm, sizeof hm, "If-Match: \"%llu\"", if_match);
        const char *lines[] = {"Content-Type: application/json", "Expect:", hk, hc, hm};
        for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
            t = curl_slist_append(h, lines[i]);
            if (!t) {
                curl_slist_free_all(h);
                snprintf(r->err, sizeof r->err, "out of memory");
                return -1;
            }
            h = t;
        }
    }
    rc |= curl_easy_setopt(c, CURLOPT_URL, url);
    rc |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
    rc |= curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    rc |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    rc |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, CT_HTTP_TIMEOUT_MS);
    rc |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CT_CONNECT_TIMEOUT_MS);
    rc |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    rc |= curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    rc |= curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    rc |= curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    rc |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->err);
    if (body) {
        rc |= curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PATCH");
        rc |= curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        rc |= curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        rc |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    }
    if (rc) {
        curl_slist_free_all(h);
        snprintf(r->err, sizeof r->err, "curl_easy_setopt failed");
        return -1;
    }
    cc = curl_easy_perform(c);
    curl_slist_free_all(h);
    if (cc != CURLE_OK) {
        if (!r->err[0])
            snprintf(r->err, sizeof r->err, "%s", curl_easy_strerror(cc));
        return -1;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    return 0;
}

static int item_url(char *out, size_t outsz, const struct item *it)
{
    int n = snprintf(out, outsz, "%sitem?path=%s", g_srv.base, it->esc);

    return n < 0 || (size_t)n >= outsz ? -1 : 0;
}

/* Version and notes of an item record; -1 if the record lacks them. */
static int record_fields(const cJSON *rec, unsigned long long *version, const char **notes)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, "version");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(rec, "notes");

    if (!cJSON_IsNumber(v) || !cJSON_IsString(n) || v->valuedouble < 1 ||
        v->valuedouble > (double)CT_MAX_VERSION ||
        v->valuedouble != (double)(unsigned long long)v->valuedouble)
        return -1;
    *version = (unsigned long long)v->valuedouble;
    *notes = n->valuestring;
    return 0;
}

/* cJSON's parser writes a process-global error position on every call, so
 * writers parse one at a time (bodies are a few hundred bytes: no contention). */
static pthread_mutex_t g_parse_lock = PTHREAD_MUTEX_INITIALIZER;

static cJSON *parse_body(const struct resp *r)
{
    cJSON *j;

    if (r->overflow || !r->body)
        return NULL;
    pthread_mutex_lock(&g_parse_lock);
    j = cJSON_ParseWithLength(r->body, r->len);
    pthread_mutex_unlock(&g_parse_lock);
    return j;
}

/* GET /item: 0 with version and a malloc'd copy of the notes, -1 transport, -2 bad answer. */
static int get_item(CURL *c, struct resp *r, const struct item *it, unsigned long long *version,
                    char **notes)
{
    char url[CT_MAX_URL];
    const char *n;
    cJSON *j;
    int rc = -2;

    if (item_url(url, sizeof url, it) != 0)
        return -2;
    if (http_do(c, url, NULL, NULL, 0, NULL, r) != 0)
        return -1;
    if (r->status != 200)
        return -2;
    j = parse_body(r);
    if (j && record_fields(j, version, &n) == 0) {
        *notes = strdup(n);
        rc = *notes ? 0 : -2;
    }
    cJSON_Delete(j);
    return rc;
}

/* ---- item model ----------------------------------------------------------------------------- */

static void set_exp(struct item *it, unsigned long long version, const char *notes)
{
    char *copy = strdup(notes);

    if (!copy)
        return; /* keeps the old value; the check then reports a mismatch, never a pass */
    free(it->exp_notes);
    it->exp_notes = copy;
    it->exp_version = version;
    if (version > it->seen_max)
        it->seen_max = version;
}

static int push_ack(struct item *it, unsigned long long version)
{
    if (it->nacked == CT_MAX_ACKS_PER_ITEM) {
        /* Forget the older half: a server that loses those loses the newer ones too,
         * so the loss is still counted, only smaller. */
        memmove(it->acked, it->acked + it->nacked / 2,
                (it->nacked - it->nacked / 2) * sizeof *it->acked);
        it->nacked -= it->nacked / 2;
    }
    if (it->nacked == it->acked_cap) {
        size_t cap = it->acked_cap ? it->acked_cap * 2 : 64;
        unsigned long long *na = realloc(it->acked, cap * sizeof *na);

        if (!na)
            return -1;
        it->acked = na;
        it->acked_cap = cap;
    }
    it->acked[it->nacked++] = version;
    return 0;
}

static void keep_sample(struct sample *s, size_t item, unsigned long long base, const char *key,
                        const char *req, const struct resp *r)
{
    char *copy = malloc(r->len + 1);

    if (!copy)
        return;
    if (r->len)
        memcpy(copy, r->body, r->len);
    copy[r->len] = '\0';
    free(s->resp);
    s->resp = copy;
    s->resp_len = r->len;
    s->used = true;
    s->item = item;
    s->base = base;
    snprintf(s->key, sizeof s->key, "%s", key);
    snprintf(s->req, sizeof s->req, "%s", req);
}

/* ---- writers -------------------------------------------------------------------------------- */

static void writer_fail(struct writer *w, const char *what, const struct resp *r)
{
    w->fatal = true;
    snprintf(w->fatal_msg, sizeof w->fatal_msg, "writer %u: %s: status %ld, body %.120s", w->id,
             what, r->status, r->body ? r->body : "");
}

/* One acknowledged PATCH: check the answer describes our write, then record it. */
static void writer_ack(struct writer *w, size_t idx, unsigned long long base, const char *key,
                       const char *req)
{
    struct item *it = &g_items[idx];
    unsigned long long version, n;
    const cJSON *item, *ev;
    const char *notes;
    cJSON *j = parse_body(&w->r);

    item = cJSON_GetObjectItemCaseSensitive(j, "item");
    ev = cJSON_GetObjectItemCaseSensitive(j, "event_id");
    if (!j || record_fields(item, &version, &notes) != 0 || !cJSON_IsNumber(ev)) {
        writer_fail(w, "200 without item.version/notes/event_id", &w->r);
        cJSON_Delete(j);
        return;
    }
    if (version != base + 1 || strcmp(notes, key) != 0) {
        /* We are the item's only writer: any other answer is the server's invention. */
        writer_fail(w, "200 with a record that is not our write", &w->r);
        cJSON_Delete(j);
        return;
    }
    if ((unsigned long long)ev->valuedouble > w->max_event)
        w->max_event = (unsigned long long)ev->valuedouble;
    set_exp(it, version, notes);
    cJSON_Delete(j);
    if (push_ack(it, version) != 0) {
        writer_fail(w, "out of memory", &w->r);
        return;
    }
    w->acks++;
    keep_sample(&w->last, idx, base, key, req, &w->r);
    /* Reservoir sampling: CT_IDEM_SAMPLES acks uniformly from the whole cycle. */
    n = w->acks;
    if (n <= CT_IDEM_SAMPLES)
        keep_sample(&w->res[n - 1], idx, base, key, req, &w->r);
    else {
        uint64_t k = rng_next(&w->rng) % n;

        if (k < CT_IDEM_SAMPLES)
            keep_sample(&w->res[k], idx, base, key, req, &w->r);
    }
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    char client[CT_MAX_TOKEN], url[CT_MAX_URL];
    size_t idx;

    snprintf(client, sizeof client, "crash-%u", w->id);
    /* Read each owned item first: the cycle starts from what the server says now. */
    for (idx = w->id; idx < g_nitems; idx += g_opt.writers) {
        struct item *it = &g_items[idx];
        unsigned long long v;
        char *notes = NULL;
        int rc = get_item(w->curl, &w->r, it, &v, &notes);

        if (rc == -1)
            return NULL; /* server already gone: nothing written, nothing to check */
        if (rc != 0) {
            writer_fail(w, "GET /item failed", &w->r);
            return NULL;
        }
        if (v < it->seen_max) {
            w->backwards++;
            detail("BACKWARDS %s: GET says v%llu, v%llu was seen before", it->path, v,
                   it->seen_max);
        }
        set_exp(it, v, notes);
        free(notes);
    }
    idx = w->id;
    while (!atomic_load(&g_stop_writers) && !g_interrupted) {
        struct item *it = &g_items[idx];
        char key[CT_MAX_TOKEN], req[CT_MAX_REQ];
        unsigned long long base = it->exp_version;

        w->n++;
        snprintf(key, sizeof key, "crash-%llu-%u-%llu", g_cycle, w->id, w->n);
        snprintf(req, sizeof req, "{\"base_version\":%llu,\"set_notes\":\"%s\",\"set_star\":%llu}",
                 base, key, w->n % 6);
        if (item_url(url, sizeof url, it) != 0) {
            writer_fail(w, "URL too long", &w->r);
            break;
        }
        if (http_do(w->curl, url, client, key, base, req, &w->r) != 0 || w->r.status >= 500) {
            /* No answer (or a 5xx, which promises nothing): it may or may not have
             * happened.  Stop here, so it is the item's only unknown. */
            if (w->r.status >= 500)
                w->server_errors++;
            it->ind = true;
            it->ind_version = base + 1;
            snprintf(it->ind_token, sizeof it->ind_token, "%s", key);
            snprintf(it->ind_req, sizeof it->ind_req, "%s", req);
            w->indefinite = true;
            break;
        }
        if (w->r.status == 200) {
            writer_ack(w, idx, base, key, req);
        } else if (w->r.status == 409) {
            cJSON *j = parse_body(&w->r);
            unsigned long long v;
            const char *notes;

            if (!j ||
                record_fields(cJSON_GetObjectItemCaseSensitive(j, "current"), &v, &notes) != 0) {
                writer_fail(w, "409 without current", &w->r);
            } else {
                w->conflicts++;
                detail("CONFLICT %s: sole writer sent base v%llu, server has v%llu", it->path, base,
                       v);
                set_exp(it, v, notes);
            }
            cJSON_Delete(j);
        } else {
            writer_fail(w, "unexpected PATCH status", &w->r);
        }
        if (w->fatal)
            break;
        idx += g_opt.writers;
        if (idx >= g_nitems)
            idx = w->id;
    }
    return NULL;
}

/* ---- verification --------------------------------------------------------------------------- */

struct cycle_stats {
    unsigned long long acked, lost, backwards, indefinite, present, absent, inconsistent;
    unsigned long long unexplained, idem_checked, idem_mismatch, conflicts;
    unsigned long long probe_event, max_event;
    bool probe_ok, restart_ok;
};

enum ind_outcome { IND_NONE, IND_PRESENT, IND_ABSENT, IND_TORN };

/* Compare one item's read-back with the model; fold the result into cs. */
static enum ind_outcome check_item(struct item *it, unsigned long long rv, const char *rnotes,
                                   struct cycle_stats *cs)
{
    enum ind_outcome out = IND_NONE;
    unsigned long long lost = 0, top;
    bool matches_exp = rv == it->exp_version && strcmp(rnotes, it->exp_notes) == 0;
    bool matches_ind = it->ind && rv == it->ind_version && strcmp(rnotes, it->ind_token) == 0;

    /* Every acknowledged version above the read-back is gone. */
    while (it->nacked > 0 && it->acked[it->nacked - 1] > rv) {
        it->nacked--;
        lost++;
    }
    if (lost)
        detail("LOST %s: %llu acknowledged write(s) up to v%llu, read back v%llu", it->path, lost,
               it->exp_version, rv);
    else if (rv == it->exp_version && !matches_exp && !matches_ind) {
        /* Same version, other content: the acknowledged write is not what is stored. */
        if (it->nacked > 0 && it->acked[it->nacked - 1] == rv)
            lost++;
        else
            cs->unexplained++;
        detail("CONTENT %s v%llu: notes \"%.40s\", expected \"%.40s\"", it->path, rv, rnotes,
               it->exp_notes);
    }
    cs->lost += lost;
    if (rv < it->seen_max) {
        cs->backwards++;
        detail("BACKWARDS %s: read back v%llu, v%llu was seen before the kill", it->path, rv,
               it->seen_max);
    }
    top = it->ind ? it->ind_version : it->exp_version;
    if (it->ind) {
        cs->indefinite++;
        if (matches_ind) {
            cs->present++;
            out = IND_PRESENT;
        } else if (rv <= it->exp_version) {
            cs->absent++;
            out = IND_ABSENT;
        } else {
            /* v+1 with other notes: half a write.  Above v+1: nobody wrote that. */
            cs->inconsistent++;
            out = IND_TORN;
            detail("TORN %s: indefinite write %s would be v%llu; read back v%llu notes "
                   "\"%.40s\"",
                   it->path, it->ind_token, it->ind_version, rv, rnotes);
        }
    } else if (rv > top) {
        cs->unexplained++;
        detail("UNEXPLAINED %s: read back v%llu, nobody wrote above v%llu", it->path, rv, top);
    }
    /* The read-back is the new truth for the next cycle. */
    it->ind = false;
    it->seen_max = 0;
    set_exp(it, rv, rnotes);
    return out;
}

/*
 * Send an indefinite write again with its key.  Its label change and its
 * idempotency record must have survived together: present means the retry is
 * a replay of v+1; absent means the retry is new and applies now as v+1.  A
 * replay of an absent write, or a 409 for a present one, is a torn commit
 * (counted as an idempotency mismatch).  A fresh apply is acknowledged and
 * joins the model like any other write.
 */
static void ind_retry(CURL *c, struct resp *r, size_t idx, bool present, struct cycle_stats *cs,
                      unsigned long long *max_event)
{
    struct item *it = &g_items[idx];
    char url[CT_MAX_URL], client[CT_MAX_TOKEN];
    unsigned long long v;
    const char *notes;
    const cJSON *ev;
    cJSON *j;

    snprintf(client, sizeof client, "crash-%llu", idx % g_opt.writers);
    cs->idem_checked++;
    if (item_url(url, sizeof url, it) != 0 ||
        http_do(c, url, client, it->ind_token, it->ind_version - 1, it->ind_req, r) != 0) {
        cs->idem_mismatch++;
        detail("IDEM %s (indefinite, %s): no answer: %s", it->ind_token,
               present ? "present" : "absent", r->err);
        return;
    }
    j = parse_body(r);
    ev = cJSON_GetObjectItemCaseSensitive(j, "event_id");
    if (r->status != 200 || !j ||
        record_fields(cJSON_GetObjectItemCaseSensitive(j, "item"), &v, &notes) != 0 ||
        v != it->ind_version || strcmp(notes, it->ind_token) != 0 || r->replayed != present ||
        !cJSON_IsNumber(ev)) {
        cs->idem_mismatch++;
        detail("IDEM %s (indefinite, %s): status %ld%s: %.120s", it->ind_token,
               present ? "present" : "absent", r->status, r->replayed ? " replayed" : "",
               r->body ? r->body : "");
        cJSON_Delete(j);
        return;
    }
    if (!present) {
        set_exp(it, v, notes);
        if (push_ack(it, v) == 0)
            cs->acked++;
        if ((unsigned long long)ev->valuedouble > *max_event)
            *max_event = (unsigned long long)ev->valuedouble;
    }
    cJSON_Delete(j);
}

/* A write after the restart must get an event id above every acknowledged one. */
static void probe(CURL *c, struct resp *r, struct cycle_stats *cs, unsigned long long max_event)
{
    struct item *it = &g_items[0];
    char url[CT_MAX_URL], key[CT_MAX_TOKEN], req[CT_MAX_REQ];
    unsigned long long base = it->exp_version, v;
    const char *notes;
    cJSON *j;
    const cJSON *ev;

    cs->probe_ok = false;
    snprintf(key, sizeof key, "crash-%llu-probe", g_cycle);
    snprintf(req, sizeof req, "{\"base_version\":%llu,\"set_notes\":\"%s\",\"set_star\":0}", base,
             key);
    if (item_url(url, sizeof url, it) != 0 ||
        http_do(c, url, "crash-probe", key, base, req, r) != 0) {
        detail("PROBE %s: no answer: %s", it->path, r->err);
        return;
    }
    j = parse_body(r);
    ev = cJSON_GetObjectItemCaseSensitive(j, "event_id");
    if (r->status != 200 || !j ||
        record_fields(cJSON_GetObjectItemCaseSensitive(j, "item"), &v, &notes) != 0 ||
        !cJSON_IsNumber(ev) || v != base + 1 || strcmp(notes, key) != 0) {
        detail("PROBE %s: status %ld, body %.160s", it->path, r->status, r->body ? r->body : "");
        cJSON_Delete(j);
        return;
    }
    cs->probe_event = (unsigned long long)ev->valuedouble;
    set_exp(it, v, notes);
    cJSON_Delete(j);
    if (push_ack(it, v) == 0)
        cs->acked++;
    if (cs->probe_event <= max_event) {
        detail("EVENTS probe got event_id %llu, but %llu was acknowledged before the kill",
               cs->probe_event, max_event);
        return;
    }
    cs->probe_ok = true;
}

/* Send one sampled request again; the answer must be the stored one, byte for byte. */
static void idem_check(CURL *c, struct resp *r, const struct writer *w, const struct sample *s,
                       struct cycle_stats *cs)
{
    char url[CT_MAX_URL], client[CT_MAX_TOKEN];
    size_t i;

    snprintf(client, sizeof client, "crash-%u", w->id);
    cs->idem_checked++;
    if (item_url(url, sizeof url, &g_items[s->item]) != 0 ||
        http_do(c, url, client, s->key, s->base, s->req, r) != 0) {
        cs->idem_mismatch++;
        detail("IDEM %s: no answer: %s", s->key, r->err);
        return;
    }
    if (r->status == 200 && !r->overflow && r->len == s->resp_len &&
        memcmp(r->body, s->resp, s->resp_len) == 0)
        return;
    for (i = 0; i < r->len && i < s->resp_len && r->body[i] == s->resp[i]; i++)
        ;
    cs->idem_mismatch++;
    detail("IDEM %s %s: status %ld (was 200), bodies differ at byte %zu: %.100s", s->key,
           g_items[s->item].path, r->status, i, r->body ? r->body + i : "");
}

/* ---- main loop ------------------------------------------------------------------------------ */

static void print_health(CURL *c, struct resp *r)
{
    char url[CT_MAX_URL];
    const cJSON *labels;
    cJSON *j;

    snprintf(url, sizeof url, "%shealth", g_srv.base);
    if (http_do(c, url, NULL, NULL, 0, NULL, r) != 0 || r->status != 200)
        return;
    j = parse_body(r);
    labels = cJSON_GetObjectItemCaseSensitive(j, "labels");
    if (labels) {
        char *s = cJSON_PrintUnformatted(labels);

        if (s)
            printf("server: labels %s\n", s);
        free(s);
    }
    cJSON_Delete(j);
}

/* Read every item once at set-up: drop those the template lacks, seed the model. */
static int setup_items(CURL *c, struct resp *r)
{
    size_t i;

    for (i = 0; i < sizeof default_items / sizeof default_items[0]; i++) {
        struct item *it = &g_items[g_nitems];
        unsigned long long v;
        char *notes = NULL;
        int rc;

        it->path = default_items[i];
        it->esc = curl_easy_escape(c, it->path, 0);
        if (!it->esc)
            return -1;
        rc = get_item(c, r, it, &v, &notes);
        if (rc == -2 && r->status == 404) {
            printf("note: %s is not an item of the template; not used\n", it->path);
            curl_free(it->esc);
            it->esc = NULL;
            continue;
        }
        if (rc != 0) {
            fprintf(stderr, "crash_test: GET %s: status %ld %s\n", it->path, r->status,
                    r->err[0] ? r->err : "");
            curl_free(it->esc);
            it->esc = NULL;
            return -1;
        }
        set_exp(it, v, notes);
        free(notes);
        if (!it->exp_notes)
            return -1;
        g_nitems++;
    }
    if (g_nitems < g_opt.writers) {
        fprintf(stderr, "crash_test: %zu items for %llu writers; each writer needs one\n", g_nitems,
                g_opt.writers);
        return -1;
    }
    return 0;
}

static void reset_writer(struct writer *w)
{
    w->n = 0;
    w->acks = w->conflicts = w->backwards = w->server_errors = 0;
    w->max_event = 0;
    w->indefinite = false;
    w->started = false;
    w->last.used = false;
    for (size_t k = 0; k < CT_IDEM_SAMPLES; k++)
        w->res[k].used = false;
}

/*
 * One cycle: write, kill -9, restart, check.  Returns 0 when the cycle ran
 * (cs says whether it passed), -1 on a set-up error, -2 when the server did
 * not come back (a violation in itself).
 */
static int run_cycle(CURL *c, struct resp *r, unsigned long long run_ms,
                     unsigned long long *max_event, struct cycle_stats *cs)
{
    enum ind_outcome out;
    size_t i, k;
    int rc = 0;

    memset(cs, 0, sizeof *cs);
    atomic_store(&g_stop_writers, false);
    for (i = 0; i < g_opt.writers; i++) {
        reset_writer(&g_writers[i]);
        if (pthread_create(&g_writers[i].th, NULL, writer_main, &g_writers[i]) != 0) {
            fprintf(stderr, "crash_test: pthread_create failed\n");
            rc = -1;
            break;
        }
        g_writers[i].started = true;
    }
    if (rc == 0)
        sleep_ms((long long)run_ms);
    /* The point of the test: no shutdown path runs, whatever is not on disk is gone. */
    server_stop(false);
    atomic_store(&g_stop_writers, true);
    for (i = 0; i < g_opt.writers; i++)
        if (g_writers[i].started)
            pthread_join(g_writers[i].th, NULL);
    for (i = 0; i < g_opt.writers; i++) {
        struct writer *w = &g_writers[i];

        if (w->fatal) {
            fprintf(stderr, "crash_test: %s\n", w->fatal_msg);
            rc = -1;
        }
        cs->acked += w->acks;
        cs->conflicts += w->conflicts;
        cs->backwards += w->backwards;
        if (w->max_event > cs->max_event)
            cs->max_event = w->max_event;
    }
    if (rc != 0 || g_interrupted)
        return -1;
    if (cs->max_event > *max_event)
        *max_event = cs->max_event;
    cs->max_event = *max_event; /* the bound the probe must beat: every ack so far */

    if (server_start() != 0)
        return -2;
    cs->restart_ok = true;
    for (i = 0; i < g_nitems; i++) {
        unsigned long long v;
        char *notes = NULL;

        if (get_item(c, r, &g_items[i], &v, &notes) != 0) {
            detail("READ %s after restart: status %ld %s", g_items[i].path, r->status, r->err);
            return -2;
        }
        out = check_item(&g_items[i], v, notes, cs);
        free(notes);
        /* An absent write on top of lost ones would only get a 409: the loss is
         * already counted, so only writes whose base survived are retried. */
        if (out == IND_PRESENT || (out == IND_ABSENT && v + 1 == g_items[i].ind_version))
            ind_retry(c, r, i, out == IND_PRESENT, cs, max_event);
    }
    cs->max_event = *max_event;
    probe(c, r, cs, *max_event);
    if (cs->probe_ok && cs->probe_event > *max_event)
        *max_event = cs->probe_event;
    for (i = 0; i < g_opt.writers; i++) {
        const struct writer *w = &g_writers[i];

        if (w->last.used)
            idem_check(c, r, w, &w->last, cs);
        for (k = 0; k < CT_IDEM_SAMPLES; k++)
            if (w->res[k].used && (!w->last.used || strcmp(w->res[k].key, w->last.key) != 0))
                idem_check(c, r, w, &w->res[k], cs);
    }
    return 0;
}

static void free_all(void)
{
    size_t i, k;

    for (i = 0; i < CT_MAX_ITEMS; i++) {
        curl_free(g_items[i].esc);
        free(g_items[i].exp_notes);
        free(g_items[i].acked);
    }
    for (i = 0; i < CT_MAX_WRITERS; i++) {
        struct writer *w = &g_writers[i];

        if (w->curl)
            curl_easy_cleanup(w->curl);
        free(w->r.body);
        free(w->last.resp);
        for (k = 0; k < CT_IDEM_SAMPLES; k++)
            free(w->res[k].resp);
    }
    for (i = 0; i < g_opt.nserver_args; i++)
        free(g_opt.server_args[i]);
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    struct totals t;
    struct resp r;
    unsigned long long max_event = 0, cyc;
    uint64_t rng;
    long long deadline;
    CURL *c = NULL;
    int exit_code = CT_EXIT_SETUP;
    bool setup_error = false, timed_out = false, handles_ok = true;
    size_t i;

    memset(&t, 0, sizeof t);
    memset(&r, 0, sizeof r);
    if (parse_opts(argc, argv) != 0) {
        free_all();
        return CT_EXIT_SETUP;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    deadline = now_ms() + (long long)g_opt.max_seconds * 1000LL;
    rng = g_opt.seed;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        free_all();
        return CT_EXIT_SETUP;
    }
    c = curl_easy_init();
    for (i = 0; i < g_opt.writers; i++) {
        g_writers[i].id = (unsigned)i;
        g_writers[i].rng = rng_next(&rng);
        g_writers[i].curl = curl_easy_init();
        if (!g_writers[i].curl)
            handles_ok = false;
    }
    if (!c || !handles_ok || make_workspace() != 0)
        goto out;
    printf("crash_test: seed %llu, %llu cycles, %llu writers, run %llu..%llu ms, server %s",
           g_opt.seed, g_opt.cycles, g_opt.writers, g_opt.min_run_ms, g_opt.max_run_ms,
           g_opt.server_bin);
    for (i = 0; i < g_opt.nserver_args; i++)
        printf(" %s", g_opt.server_args[i]);
    printf("\ncrash_test: workspace %s\n", g_ws);
    if (server_start() != 0)
        goto out;
    print_health(c, &r);
    if (setup_items(c, &r) != 0)
        goto out;
    fflush(stdout);

    for (cyc = 1; cyc <= g_opt.cycles; cyc++) {
        struct cycle_stats cs;
        unsigned long long span = g_opt.max_run_ms - g_opt.min_run_ms + 1;
        unsigned long long run_ms = g_opt.min_run_ms + rng_next(&rng) % span;
        bool bad;
        int rc;

        if (g_interrupted) {
            fprintf(stderr, "crash_test: interrupted\n");
            setup_error = true;
            break;
        }
        if (now_ms() > deadline) {
            fprintf(stderr, "crash_test: --max-seconds %llu reached after %llu cycles\n",
                    g_opt.max_seconds, t.cycles);
            timed_out = true;
            break;
        }
        g_cycle = cyc;
        g_details = 0;
        rc = run_cycle(c, &r, run_ms, &max_event, &cs);
        if (rc == -1) {
            if (g_interrupted)
                fprintf(stderr, "crash_test: interrupted in cycle %llu\n", cyc);
            setup_error = true;
            break;
        }
        t.cycles++;
        t.acked += cs.acked;
        t.lost += cs.lost;
        t.backwards += cs.backwards;
        t.idem_checked += cs.idem_checked;
        t.idem_mismatch += cs.idem_mismatch;
        t.indefinite += cs.indefinite;
        t.present += cs.present;
        t.absent += cs.absent;
        t.inconsistent += cs.inconsistent;
        t.unexplained += cs.unexplained;
        t.conflicts += cs.conflicts;
        if (rc == -2) {
            t.restart_fail++;
            printf("cycle %llu: ran %llu ms, acked %llu, server did not come back after the "
                   "kill: FAIL\n",
                   cyc, run_ms, cs.acked);
            break;
        }
        if (!cs.probe_ok) {
            if (cs.probe_event)
                t.event_regress++;
            else
                t.probe_fail++;
        }
        bad = cs.lost || cs.backwards || cs.idem_mismatch || cs.inconsistent || cs.unexplained ||
              cs.conflicts || !cs.probe_ok;
        if (g_details > CT_MAX_DETAILS)
            printf("  ... %u more\n", g_details - CT_MAX_DETAILS);
        /* Short on purpose: one line per cycle, the violations are on the lines above. */
        printf("cycle %llu: %llu ms, acked %llu, lost %llu, backwards %llu, "
               "indefinite %llu (%llu present, %llu absent), idem %llu/%llu bad, "
               "event %llu after %llu: %s\n",
               cyc, run_ms, cs.acked, cs.lost, cs.backwards, cs.indefinite, cs.present, cs.absent,
               cs.idem_mismatch, cs.idem_checked, cs.probe_event, cs.max_event,
               bad ? "FAIL" : "ok");
        fflush(stdout);
    }

    printf("cycles %llu, acknowledged writes %llu, lost writes %llu, backwards versions %llu, "
           "idempotency mismatches %llu, indefinite writes %llu (present %llu / absent %llu)\n",
           t.cycles, t.acked, t.lost, t.backwards, t.idem_mismatch, t.indefinite, t.present,
           t.absent);
    printf("other checks: idempotency replays checked %llu, torn indefinite writes %llu, "
           "unexplained versions %llu, conflicts %llu, event id regressions %llu, failed probes "
           "%llu, failed restarts %llu\n",
           t.idem_checked, t.inconsistent, t.unexplained, t.conflicts, t.event_regress,
           t.probe_fail, t.restart_fail);
    if (t.lost || t.backwards || t.idem_mismatch || t.inconsistent || t.unexplained ||
        t.conflicts || t.event_regress || t.probe_fail || t.restart_fail)
        exit_code = CT_EXIT_VIOLATION;
    else if (setup_error || timed_out || t.cycles < g_opt.cycles)
        exit_code = CT_EXIT_SETUP;
    else
        exit_code = CT_EXIT_OK;
    printf("result: %s\n", exit_code == CT_EXIT_OK          ? "PASS"
                           : exit_code == CT_EXIT_VIOLATION ? "FAIL (durability violation)"
                                                            : "INCOMPLETE (set-up error)");

out:
    server_stop(true);
    remove_workspace();
    if (c)
        curl_easy_cleanup(c);
    free(r.body);
    free_all();
    curl_global_cleanup();
    return exit_code;
}
