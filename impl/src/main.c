/*
 * main.c - labelsyncd: flags, signals, start and stop order.
 *
 * Start: parse flags, load the gallery tree into the store, create the
 * idempotency table, start HTTP, print the URL (the line tests wait for).
 * Stop (SIGINT/SIGTERM): stop HTTP first, so no handler runs any more, then
 * free the table and the store.  Signals are blocked in every thread and
 * taken synchronously with sigwait, so no handler runs in signal context.
 */
#include <errno.h>
#include <pthread.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "events.h"
#include "http.h"
#include "idem.h"
#include "presence.h"
#include "store.h"
#include "trace.h"

#define MAIN_DEFAULT_PORT    7070
#define MAIN_DEFAULT_THREADS 2

static void usage(FILE *f)
{
    fprintf(f,
            "usage: labelsyncd --root DIR [options]\n"
            "\n"
            "Serve the Lenslet label-sync protocol v1 (spec/PROTOCOL.md) for the images\n"
            "under DIR (.png .jpg .jpeg .webp; names starting with '.' are skipped).\n"
            "\n"
            "  --root DIR            gallery to serve (required)\n"
            "  --host ADDR           address to bind (default 127.0.0.1)\n"
            "  --port N              port to bind; 0 picks a free one (default %d)\n"
            "  --no-write            keep labels in memory only (this version never\n"
            "                        writes label files; /health says persisted:false)\n"
            "  --threads N           HTTP worker threads, 1..64 (default %d)\n"
            "  --max-connections N   concurrent connections, 1..19000 (default 1000)\n"
            "  --allow-origin URL    also accept writes from this browser origin\n"
            "                        (repeatable, at most %d); the server's own\n"
            "                        http://127.0.0.1|localhost|[::1]:PORT always are\n"
            "  --idem-ttl SECONDS    keep idempotency results this long (default 86400)\n"
            "\n"
            "Events (GET /events) and presence:\n"
            "  --keepalive SECONDS   SSE keepalive comment period (default 15)\n"
            "  --sse-retry-ms MS     retry: hint sent first on every stream (default %d)\n"
            "  --event-ring N        events kept for replay (default %d)\n"
            "  --sse-backlog N       events a subscriber may fall behind before it gets\n"
            "                        'resync lagging' and is closed (default %d)\n"
            "  --max-subscribers N   open event streams at most (default %d)\n"
            "  --view-ttl SECONDS    presence: a viewer counts this long after its last\n"
            "                        join/heartbeat/move (default 75)\n"
            "  --edit-ttl SECONDS    presence: a client counts as editing this long after\n"
            "                        a write (default 60)\n"
            "  --prune-interval SECONDS  presence prune period (default 5)\n"
            "  (SECONDS accept decimals, e.g. 0.25)\n"
            "  --help                show this help and exit\n"
            "  --version             show the version and exit\n"
            "\n"
            "When ready it prints one line with its URL on stdout.  Diagnostics go to\n"
            "stderr; LS_TRACE=debug|info|warn|error sets their level.\n",
            MAIN_DEFAULT_PORT, MAIN_DEFAULT_THREADS, HTTP_MAX_ORIGINS, EVENTS_DEFAULT_RETRY_MS,
            EVENTS_DEFAULT_RING, EVENTS_DEFAULT_BACKLOG, EVENTS_DEFAULT_MAX_SUBS);
}

/* Parse a decimal number of seconds in [lo, hi]; false on anything else. */
static bool parse_secs(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v;

    if (!s || !*s || *s == '-' || *s == '+')
        return false;
    errno = 0;
    v = strtod(s, &end);
    if (errno || *end || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

/* Parse an unsigned decimal in [lo, hi]; false on anything else. */
static bool parse_uint(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
    char *end;
    unsigned long v;

    if (!s || !*s || *s == '-' || *s == '+')
        return false;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"root", required_argument, NULL, 'r'},
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"no-write", no_argument, NULL, 'n'},
        {"threads", required_argument, NULL, 't'},
        {"max-connections", required_argument, NULL, 'c'},
        {"allow-origin", required_argument, NULL, 'o'},
        {"idem-ttl", required_argument, NULL, 'i'},
        {"keepalive", required_argument, NULL, 'k'},
        {"sse-retry-ms", required_argument, NULL, 'R'},
        {"event-ring", required_argument, NULL, 'e'},
        {"sse-backlog", required_argument, NULL, 'b'},
        {"max-subscribers", required_argument, NULL, 'm'},
        {"view-ttl", required_argument, NULL, 'w'},
        {"edit-ttl", required_argument, NULL, 'E'},
        {"prune-interval", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *origins[HTTP_MAX_ORIGINS];
    struct http_config cfg;
    struct http_deps deps;
    struct events_config ecfg;
    struct presence_config pcfg;
    struct http_server *srv = NULL;
    struct store *store = NULL;
    struct idem *idem = NULL;
    struct events_hub *hub = NULL;
    struct presence *presence = NULL;
    double d;
    const char *root = NULL;
    struct stat st;
    sigset_t set;
    size_t nitems = 0;
    unsigned long v;
    int c, sig = 0, rc, status = 1;

    memset(&cfg, 0, sizeof(cfg));
    cfg.host = "127.0.0.1";
    cfg.port = MAIN_DEFAULT_PORT;
    cfg.threads = MAIN_DEFAULT_THREADS;
    cfg.max_connections = 1000;
    cfg.idem_ttl_us = IDEM_DEFAULT_TTL_US;
    cfg.allow_origins = origins;
    cfg.keepalive_s = 15;
    cfg.prune_interval_s = 5;
    cfg.view_ttl_s = 75;
    cfg.edit_ttl_s = 60;
    memset(&ecfg, 0, sizeof(ecfg));
    ecfg.ring_cap = EVENTS_DEFAULT_RING;
    ecfg.backlog = EVENTS_DEFAULT_BACKLOG;
    ecfg.retry_ms = EVENTS_DEFAULT_RETRY_MS;
    ecfg.max_subscribers = EVENTS_DEFAULT_MAX_SUBS;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            root = optarg;
            break;
        case 'H':
            cfg.host = optarg;
            break;
        case 'p':
            if (!parse_uint(optarg, 0, 65535, &v))
                goto bad_value;
            cfg.port = (unsigned)v;
            break;
        case 'n':
            cfg.no_write = true;
            break;
        case 't':
            if (!parse_uint(optarg, 1, 64, &v))
                goto bad_value;
            cfg.threads = (unsigned)v;
            break;
        case 'c':
            if (!parse_uint(optarg, 1, 19000, &v))
                goto bad_value;
            cfg.max_connections = (unsigned)v;
            break;
        case 'o':
            if (cfg.nallow_origins >= HTTP_MAX_ORIGINS) {
                fprintf(stderr, "labelsyncd: at most %d --allow-origin flags\n", HTTP_MAX_ORIGINS);
                return 2;
            }
            origins[cfg.nallow_origins++] = optarg;
            break;
        case 'i':
            if (!parse_uint(optarg, 1, 365UL * 24 * 3600, &v))
                goto bad_value;
            cfg.idem_ttl_us = (long long)v * 1000000;
            break;
        case 'k':
            if (!parse_secs(optarg, 0.05, 3600, &cfg.keepalive_s))
                goto bad_value;
            break;
        case 'R':
            if (!parse_uint(optarg, 1, 600000, &v))
                goto bad_value;
            ecfg.retry_ms = (unsigned)v;
            break;
        case 'e':
            if (!parse_uint(optarg, 1, EVENTS_MAX_RING, &v))
                goto bad_value;
            ecfg.ring_cap = v;
            break;
        case 'b':
            if (!parse_uint(optarg, 1, EVENTS_MAX_RING, &v))
                goto bad_value;
            ecfg.backlog = v;
            break;
        case 'm':
            if (!parse_uint(optarg, 1, 19000, &v))
                goto bad_value;
            ecfg.max_subscribers = v;
            break;
        case 'w':
            if (!parse_secs(optarg, 0.05, 86400, &d))
                goto bad_value;
            cfg.view_ttl_s = d;
            break;
        case 'E':
            if (!parse_secs(optarg, 0.05, 86400, &d))
                goto bad_value;
            cfg.edit_ttl_s = d;
            break;
        case 'P':
            if (!parse_secs(optarg, 0.05, 3600, &d))
                goto bad_value;
            cfg.prune_interval_s = d;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("labelsyncd %s (protocol %d)\n", HTTP_VERSION_STRING, HTTP_PROTOCOL_VERSION);
            return 0;
        case ':':
        case '?':
        default:
            fprintf(stderr, "labelsyncd: unknown option or missing value in '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "labelsyncd: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (!root) {
        fprintf(stderr, "labelsyncd: --root DIR is required (see --help)\n");
        return 2;
    }
    if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "labelsyncd: --root %s: not a directory\n", root);
        return 2;
    }
    trace_init();

    /* Block the stop signals before any thread exists, so every thread
     * inherits the mask and only sigwait below receives them. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    store = store_new();
    idem = idem_new(IDEM_DEFAULT_ENTRIES, IDEM_DEFAULT_BYTES, cfg.idem_ttl_us);
    hub = events_new(&ecfg, 0, &rc);
    memset(&pcfg, 0, sizeof(pcfg));
    pcfg.view_ttl_us = (long long)(cfg.view_ttl_s * 1e6);
    pcfg.edit_ttl_us = (long long)(cfg.edit_ttl_s * 1e6);
    presence = presence_new(&pcfg, &rc);
    if (!store || !idem || !hub || !presence) {
        fprintf(stderr, "labelsyncd: out of memory\n");
        goto out;
    }
    rc = store_load_tree(store, root, &nitems);
    if (rc) {
        fprintf(stderr, "labelsyncd: cannot load %s: %s\n", root, ls_strerror(rc));
        goto out;
    }
    if (nitems == 0)
        TRACE_W("main", "%s holds no .png/.jpg/.jpeg/.webp files", root);
    deps.store = store;
    deps.idem = idem;
    deps.events = hub;
    deps.presence = presence;
    rc = http_start(&cfg, &deps, &srv);
    if (rc) {
        fprintf(stderr, "labelsyncd: cannot start HTTP on %s:%u: %s\n", cfg.host, cfg.port,
                ls_strerror(rc));
        goto out;
    }
    printf("labelsyncd %s: serving %zu items from %s at http://%s%s%s:%u/\n", HTTP_VERSION_STRING,
           nitems, root, strchr(cfg.host, ':') ? "[" : "", cfg.host,
           strchr(cfg.host, ':') ? "]" : "", http_port(srv));
    fflush(stdout);

    if (sigwait(&set, &sig) == 0)
        TRACE_I("main", "signal %d: stopping", sig);
    status = 0;
out:
    http_stop(srv);
    presence_free(presence);
    events_free(hub);
    idem_free(idem);
    store_free(store);
    return status;

bad_value:
    for (const struct option *o = opts; o->name; o++)
        if (o->val == c)
            fprintf(stderr, "labelsyncd: bad value '%s' for --%s (see --help)\n", optarg, o->name);
    return 2;
}
