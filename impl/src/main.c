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
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "events.h"
#include "http.h"
#include "idem.h"
#include "presence.h"
#include "store.h"
#include "trace.h"
#include "wal.h"

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
            "  --no-write            keep labels in memory only: nothing is written to\n"
            "                        DIR/.lenslet/, and /health says persisted:false\n"
            "  --threads N           HTTP worker threads, 1..64 (default %d)\n"
            "  --max-connections N   concurrent connections, 1..19000 (default 1000)\n"
            "  --allow-origin URL    also accept writes from this browser origin\n"
            "                        (repeatable, at most %d); the server's own\n"
            "                        http://127.0.0.1|localhost|[::1]:PORT always are\n"
            "  --idem-ttl SECONDS    keep idempotency results this long (default 86400)\n"
            "\n"
            "Durability (labels are logged to DIR/.lenslet/labels.log.jsonl):\n"
            "  --fsync MODE          always: answer a write only once its log record is\n"
            "                        on disk (group commit; the default);\n"
            "                        batch: fdatasync at most every --fsync-batch-ms,\n"
            "                        answer after the write(2) (a crash can lose the\n"
            "                        last batch); never: no fdatasync (benchmarks);\n"
            "                        each: always without group commit, one\n"
            "                        fdatasync per write (a benchmark baseline)\n"
            "  --fsync-batch-ms MS   batch mode's sync period (default %d)\n"
            "  --compact-bytes N     snapshot and empty the log once it exceeds N bytes\n"
            "                        (default %u; 0 = only when the server stops)\n"
            "  --recover             if the log is corrupt in the middle, keep a copy of\n"
            "                        it, cut it at the last good record and start\n"
            "                        (without it, the server refuses to start)\n"
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
            MAIN_DEFAULT_PORT, MAIN_DEFAULT_THREADS, HTTP_MAX_ORIGINS, WAL_DEFAULT_BATCH_MS,
            (unsigned)WAL_DEFAULT_COMPACT_BYTES, EVENTS_DEFAULT_RETRY_MS, EVENTS_DEFAULT_RING,
            EVENTS_DEFAULT_BACKLOG, EVENTS_DEFAULT_MAX_SUBS);
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

/* Start-up replay of the label log into the store and the idempotency table. */
struct replay {
    struct store *store;
    struct idem *idem;
    size_t unknown;
    int failed;
};

static long long wall_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static long long mono_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Idempotency retention runs on the monotonic clock; the log stores wall
 * time.  Place the outcome as far in the past as its wall-clock age. */
static long long mono_of_wall(long long wall_us)
{
    long long age = wall_us ? wall_now_us() - wall_us : 0;

    return mono_now_us() - (age > 0 ? age : 0);
}

static int replay_item(void *ctx, const struct wal_item *r)
{
    struct replay *rp = ctx;
    struct store_record cur, rec;
    int rc = store_get(rp->store, r->path, &cur);

    if (rc == LS_ENOTFOUND) {
        rp->unknown++;
        return 0;
    }
    if (rc)
        goto fail;
    /* Fields a record leaves out keep their previous values (upstream rule). */
    rec = cur;
    if (r->present & WAL_HAS_TAGS) {
        rec.labels.tags = r->labels.tags;
        rec.labels.ntags = r->labels.ntags;
    }
    if (r->present & WAL_HAS_NOTES)
        rec.labels.notes = r->labels.notes;
    if (r->present & WAL_HAS_STAR)
        rec.labels.star = r->labels.star;
    if (r->present & WAL_HAS_METRICS) {
        rec.labels.metrics = r->labels.metrics;
        rec.labels.nmetrics = r->labels.nmetrics;
    }
    rec.version = r->version;
    if (r->present & WAL_HAS_UPDATED_AT)
        rec.updated_at_us = r->updated_at_us;
    if (r->present & WAL_HAS_UPDATED_BY)
        rec.updated_by = (char *)(uintptr_t)r->updated_by;
    rc = store_restore(rp->store, r->path, &rec.labels, rec.version, rec.updated_at_us,
                       rec.updated_by, r->id);
    if (!rc && r->has_idem) {
        /* Rebuild the 200 the client got, byte for byte. */
        char *body = http_write_body(&rec, r->idem_key, r->changed, r->id);
        char etag[32];

        snprintf(etag, sizeof(etag), "\"%llu\"", rec.version);
        rc = body ? idem_restore(rp->idem, r->idem_scope, r->idem_key, r->idem_fp, 200, body,
                                 strlen(body), etag, mono_of_wall(rec.updated_at_us), mono_now_us())
                  : -ENOMEM;
        free(body);
    }
    store_record_cleanup(&cur);
    if (rc)
        goto fail;
    return 0;
fail:
    rp->failed = rc;
    return rc;
}

static int replay_idem(void *ctx, const struct wal_idem *r)
{
    struct replay *rp = ctx;
    int rc = idem_restore(rp->idem, r->scope, r->key, r->fp, r->status, r->body, r->body_len,
                          r->etag, mono_of_wall(r->stored_at_us), mono_now_us());

    if (rc)
        rp->failed = rc;
    return rc;
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
        {"fsync", required_argument, NULL, 'f'},
        {"fsync-batch-ms", required_argument, NULL, 'B'},
        {"compact-bytes", required_argument, NULL, 'C'},
        {"recover", no_argument, NULL, 'X'},
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
    struct wal *wal = NULL;
    struct wal_config wcfg;
    struct wal_open_info winfo;
    struct replay rp;
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
    memset(&wcfg, 0, sizeof(wcfg));
    wcfg.mode = WAL_FSYNC_ALWAYS;
    wcfg.batch_ms = WAL_DEFAULT_BATCH_MS;
    wcfg.compact_bytes = WAL_DEFAULT_COMPACT_BYTES;
    memset(&winfo, 0, sizeof(winfo));
    memset(&rp, 0, sizeof(rp));
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
        case 'f':
            if (wal_fsync_parse(optarg, &wcfg.mode) != 0)
                goto bad_value;
            break;
        case 'B':
            if (!parse_uint(optarg, 1, 60000, &v))
                goto bad_value;
            wcfg.batch_ms = (unsigned)v;
            break;
        case 'C':
            if (!parse_uint(optarg, 0, (unsigned long)1 << 40, &v))
                goto bad_value;
            wcfg.compact_bytes = v;
            break;
        case 'X':
            wcfg.recover = true;
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
    if (!store || !idem) {
        fprintf(stderr, "labelsyncd: out of memory\n");
        goto out;
    }
    rc = store_load_tree(store, root, &nitems);
    if (rc) {
        fprintf(stderr, "labelsyncd: cannot load %s: %s\n", root, ls_strerror(rc));
        goto out;
    }
    if (!cfg.no_write) {
        static const struct wal_replay_cb cb = {replay_item, replay_idem};

        wcfg.root = root;
        rp.store = store;
        rp.idem = idem;
        wal = wal_open(&wcfg, &cb, &rp, &winfo, &rc);
        if (!wal) {
            fprintf(stderr, "labelsyncd: %s\n", winfo.message[0] ? winfo.message : ls_strerror(rc));
            if (rc == LS_ECORRUPT)
                fprintf(stderr,
                        "labelsyncd: inspect it with 'labelsync-wal check --root %s'; "
                        "'labelsync-wal repair' or --recover keep a copy and cut the "
                        "log at the last good record\n",
                        root);
            goto out;
        }
        if (rp.failed) {
            fprintf(stderr, "labelsyncd: replaying the label log failed: %s\n",
                    ls_strerror(rp.failed));
            goto out;
        }
        TRACE_I("main", "%s", winfo.message);
        if (rp.unknown)
            TRACE_W("main", "%zu logged records name files that are not items of %s any more",
                    rp.unknown, root);
    }
    hub = events_new(&ecfg, winfo.last_id, &rc);
    memset(&pcfg, 0, sizeof(pcfg));
    pcfg.view_ttl_us = (long long)(cfg.view_ttl_s * 1e6);
    pcfg.edit_ttl_us = (long long)(cfg.edit_ttl_s * 1e6);
    presence = presence_new(&pcfg, &rc);
    if (!store || !idem || !hub || !presence) {
        fprintf(stderr, "labelsyncd: out of memory\n");
        goto out;
    }
    if (nitems == 0)
        TRACE_W("main", "%s holds no .png/.jpg/.jpeg/.webp files", root);
    deps.store = store;
    deps.idem = idem;
    deps.events = hub;
    deps.presence = presence;
    deps.wal = wal;
    cfg.root = root;
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
    wal_close(wal); /* drains, syncs, snapshots, unlocks */
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
