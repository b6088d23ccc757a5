/*
 * bench_http.c - closed-loop HTTP load generator for labelsyncd.
 *
 * N "connections" each keep exactly one request in flight: when a response
 * arrives the next request of that connection is issued at once (closed loop),
 * so the offered load adapts to the server and the numbers measure what the
 * server sustains, not what a fixed arrival rate would queue up.  Everything
 * runs in one thread on libcurl's multi interface; HTTP/1.1 keep-alive
 * connections are reused from the multi handle's pool, capped at N.
 *
 * Modes:
 *   get    GET /item?path=P of the connection's item, body ignored.
 *   patch  each connection owns an item (round-robin over the --path list);
 *          it learns the version with one GET, then PATCHes with If-Match and
 *          base_version, taking the next version from the response
 *          (item.version on 200, current.version on 409, counted as a
 *          conflict).  Connections that share an item race, hence conflicts.
 *   mixed  per request 90% GET (which also refreshes the version) / 10% PATCH.
 *
 * Invariants / bounds: the run ends at the deadline (in-flight requests are
 * abandoned, not counted); every transfer has CURLOPT_TIMEOUT_MS; response
 * bodies are capped at BENCH_MAX_BODY; latency samples are capped at
 * BENCH_MAX_SAMPLES (further samples are counted as dropped, not stored).
 * Only loopback servers are accepted, and proxies are disabled, so the tool
 * can never be pointed at somebody else's host.
 *
 * Only requests that both start after the warm-up and finish before the
 * deadline are counted, so the warm-up's connection set-up and the cut-off
 * at the end do not skew the rate or the percentiles.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define BENCH_MAX_CONNECTIONS 4096
#define BENCH_MAX_SECONDS     3600.0
#define BENCH_MAX_PATHS       1024
#define BENCH_MAX_PATH_LEN    4096
#define BENCH_MAX_URL         8192
#define BENCH_MAX_BASE        512
#define BENCH_MAX_BODY        (1024u * 1024u)
#define BENCH_MAX_SAMPLES     10000000u
#define BENCH_MIN_SAMPLES     65536u
#define BENCH_DEFAULT_TIMEOUT 10000L
#define BENCH_MAX_TIMEOUT     600000L
#define BENCH_POLL_MS         100
#define BENCH_MAX_VERSION     9007199254740991.0
#define BENCH_SCRATCH_ITEMS   12
#define BENCH_PATCH_PERCENT   10

enum bench_mode { MODE_GET, MODE_PATCH, MODE_MIXED };
enum req_kind { REQ_GET, REQ_PATCH };

struct opts {
    const char *url;
    unsigned connections;
    double seconds;
    double warmup;
    long timeout_ms;
    enum bench_mode mode;
    const char *paths[BENCH_MAX_PATHS];
    size_t npaths;
    long server_pid; /* 0 = do not measure the server's CPU */
};

/* CPU time in microseconds: this process (getrusage) and, if asked, the server. */
struct cpu_snap {
    long long self_us;
    long long server_us;  /* -1 = unknown */
    long long machine_us; /* busy time of all CPUs from /proc/stat, -1 = unknown */
};

struct stats {
    uint64_t requests;
    uint64_t gets;
    uint64_t patches;
    uint64_t s200;
    uint64_t s409;
    uint64_t sother;
    uint64_t errors;
    uint64_t bad_body;
    uint64_t connects;
    uint64_t dropped;
    uint32_t *lat; /* microseconds; survives stats_reset so the warm-up reuses it */
    size_t nlat;
    size_t cap;
};

struct conn {
    CURL *easy;
    unsigned id;
    const char *item_url;
    long long version; /* 0 = unknown, fetch with GET first */
    unsigned long long seq;
    enum req_kind kind;
    struct curl_slist *headers;
    char body[96];
    char *resp;
    size_t resp_len;
    size_t resp_cap;
    bool resp_overflow;
    long long start_ns;
    uint64_t rng;
    char errbuf[CURL_ERROR_SIZE];
};

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static long long now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_http --url URL --connections N --seconds S --mode get|patch|mixed\n"
               "                  [--path P]... [--warmup S] [--timeout-ms MS]\n"
               "\n"
               "Closed-loop load against a labelsyncd on the loopback interface.\n"
               "  --url URL          server base URL, e.g. http://127.0.0.1:7070/ (loopback only)\n"
               "  --connections N    concurrent keep-alive connections, 1..4096\n"
               "  --seconds S        measured duration, 0.1..3600\n"
               "  --mode M           get | patch | mixed (90%% GET / 10%% PATCH)\n"
               "  --path P           item path, repeatable (at most 1024); connections are\n"
               "                     assigned round-robin.  Default: /scratch/s01.png ..\n"
               "                     /scratch/s12.png of spec/workspace\n"
               "  --warmup S         unmeasured run before the measurement (default 0)\n"
               "  --timeout-ms MS    per-request timeout (default 10000)\n"
               "  --server-pid PID   also report that process's CPU use (from /proc/PID/stat)\n"
               "\n"
               "Exit status: 0 measured, 1 set-up failed (server unreachable, non-loopback\n"
               "URL, ...), 2 usage error, 3 no request got a 200 in the measured window.\n");
}

/* strtod/strtol wrappers: the whole string must be a number within range. */
static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {{"url", required_argument, NULL, 'u'},
                                             {"connections", required_argument, NULL, 'c'},
                                             {"seconds", required_argument, NULL, 's'},
                                             {"mode", required_argument, NULL, 'm'},
                                             {"path", required_argument, NULL, 'p'},
                                             {"warmup", required_argument, NULL, 'w'},
                                             {"timeout-ms", required_argument, NULL, 't'},
                                             {"server-pid", required_argument, NULL, 'P'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    bool have_mode = false, have_conn = false, have_secs = false;
    long l;
    int c;

    memset(o, 0, sizeof(*o));
    o->timeout_ms = BENCH_DEFAULT_TIMEOUT;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'u':
            o->url = optarg;
            break;
        case 'c':
            if (parse_long(optarg, 1, BENCH_MAX_CONNECTIONS, &l) < 0) {
                fprintf(stderr, "bench_http: --connections must be 1..%d\n", BENCH_MAX_CONNECTIONS);
                return -1;
            }
            o->connections = (unsigned)l;
            have_conn = true;
            break;
        case 's':
            if (parse_double(optarg, 0.1, BENCH_MAX_SECONDS, &o->seconds) < 0) {
                fprintf(stderr, "bench_http: --seconds must be 0.1..%.0f\n", BENCH_MAX_SECONDS);
                return -1;
            }
            have_secs = true;
            break;
        case 'w':
            if (parse_double(optarg, 0.0, BENCH_MAX_SECONDS, &o->warmup) < 0) {
                fprintf(stderr, "bench_http: --warmup must be 0..%.0f\n", BENCH_MAX_SECONDS);
                return -1;
            }
            break;
        case 't':
            if (parse_long(optarg, 1, BENCH_MAX_TIMEOUT, &o->timeout_ms) < 0) {
                fprintf(stderr, "bench_http: --timeout-ms must be 1..%ld\n", BENCH_MAX_TIMEOUT);
                return -1;
            }
            break;
        case 'P':
            if (parse_long(optarg, 1, INT_MAX, &o->server_pid) < 0) {
                fprintf(stderr, "bench_http: --server-pid must be a process id\n");
                return -1;
            }
            break;
        case 'm':
            if (strcmp(optarg, "get") == 0)
                o->mode = MODE_GET;
            else if (strcmp(optarg, "patch") == 0)
                o->mode = MODE_PATCH;
            else if (strcmp(optarg, "mixed") == 0)
                o->mode = MODE_MIXED;
            else {
                fprintf(stderr, "bench_http: --mode must be get, patch or mixed\n");
                return -1;
            }
            have_mode = true;
            break;
        case 'p':
            if (o->npaths == BENCH_MAX_PATHS) {
                fprintf(stderr, "bench_http: at most %d --path options\n", BENCH_MAX_PATHS);
                return -1;
            }
            if (optarg[0] != '/' || strlen(optarg) > BENCH_MAX_PATH_LEN) {
                fprintf(stderr, "bench_http: --path must start with '/' (at most %d bytes)\n",
                        BENCH_MAX_PATH_LEN);
                return -1;
            }
            o->paths[o->npaths++] = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind != argc || !o->url || !have_mode || !have_conn || !have_secs) {
        usage(stderr);
        return -1;
    }
    return 0;
}

/*
 * Accept only http:// on a loopback address and return "http://HOST:PORT"
 * in out.  The base is rebuilt from the parsed host and port so a path or
 * query in --url cannot leak into the request URLs.
 */
static int loopback_base(const char *url, char *out, size_t outsz)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    struct in_addr a4;
    bool ok = false;
    int n;

    if (!u)
        return -1;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        fprintf(stderr, "bench_http: cannot parse --url '%s'\n", url);
        goto out;
    }
    if (strcmp(scheme, "http") != 0) {
        fprintf(stderr, "bench_http: --url must use http:// (got %s://)\n", scheme);
        goto out;
    }
    /* 127.0.0.0/8, ::1 and localhost (which libcurl resolves to loopback itself). */
    if (inet_pton(AF_INET, host, &a4) == 1)
        ok = (ntohl(a4.s_addr) >> 24) == 127;
    else
        ok = strcmp(host, "[::1]") == 0 || strcmp(host, "localhost") == 0;
    if (!ok) {
        fprintf(stderr,
                "bench_http: refusing non-loopback host '%s': only 127.0.0.0/8, [::1] and "
                "localhost are allowed\n",
                host);
        goto out;
    }
    n = snprintf(out, outsz, "http://%s:%s", host, port);
    ok = n > 0 && (size_t)n < outsz;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return ok ? 0 : -1;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct conn *c = userdata;
    size_t n = size * nmemb, ncap;
    char *p;

    if (c->resp_len + n + 1 > c->resp_cap) {
        if (c->resp_len + n + 1 > BENCH_MAX_BODY) {
            /* Returning less than n aborts the transfer; counted as an error. */
            c->resp_overflow = true;
            return 0;
        }
        ncap = c->resp_cap ? c->resp_cap : 4096;
        while (ncap < c->resp_len + n + 1)
            ncap *= 2;
        if (ncap > BENCH_MAX_BODY)
            ncap = BENCH_MAX_BODY;
        p = realloc(c->resp, ncap);
        if (!p)
            return 0;
        c->resp = p;
        c->resp_cap = ncap;
    }
    memcpy(c->resp + c->resp_len, ptr, n);
    c->resp_len += n;
    c->resp[c->resp_len] = '\0';
    return n;
}

/* Options every handle shares: bounded, loopback-only, no proxies, no redirects. */
static int easy_common(CURL *e, long timeout_ms)
{
    CURLcode rc = CURLE_OK;

    rc |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http");
    rc |= curl_easy_setopt(e, CURLOPT_PROXY, "");
    rc |= curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    rc |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    rc |= curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    rc |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    rc |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    rc |= curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)BENCH_MAX_BODY);
    rc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    return rc == CURLE_OK ? 0 : -1;
}

/* GET /health once, before the load; returns its "items" or -1. */
static long long health_items(const char *base, long timeout_ms)
{
    struct conn c;
    char url[BENCH_MAX_URL];
    long status = 0;
    long long items = -1;
    CURL *e;
    CURLcode rc;
    cJSON *doc, *it;

    memset(&c, 0, sizeof(c));
    snprintf(url, sizeof(url), "%s/health", base);
    e = curl_easy_init();
    if (!e)
        return -1;
    if (easy_common(e, timeout_ms) == 0 && curl_easy_setopt(e, CURLOPT_URL, url) == CURLE_OK &&
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &c) == CURLE_OK &&
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c.errbuf) == CURLE_OK) {
        rc = curl_easy_perform(e);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        if (rc != CURLE_OK)
            fprintf(stderr, "bench_http: GET %s: %s\n", url,
                    c.errbuf[0] ? c.errbuf : curl_easy_strerror(rc));
        else if (status != 200)
            fprintf(stderr, "bench_http: GET %s: status %ld\n", url, status);
        else if ((doc = cJSON_ParseWithLength(c.resp, c.resp_len)) != NULL) {
            it = cJSON_GetObjectItemCaseSensitive(doc, "items");
            if (cJSON_IsNumber(it) && it->valuedouble >= 0)
                items = (long long)it->valuedouble;
            cJSON_Delete(doc);
        }
    }
    if (items < 0 && status == 200)
        fprintf(stderr, "bench_http: GET %s: no \"items\" number in the body\n", url);
    free(c.resp);
    curl_easy_cleanup(e);
    return items;
}

/* xorshift64: the 90/10 mix needs cheap, reproducible, not good, randomness. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static enum req_kind next_kind(struct conn *c, enum bench_mode mode)
{
    if (mode == MODE_GET || c->version == 0)
        return REQ_GET;
    if (mode == MODE_PATCH)
        return REQ_PATCH;
    return rng_next(&c->rng) % 100 < BENCH_PATCH_PERCENT ? REQ_PATCH : REQ_GET;
}

static struct curl_slist *slist_add(struct curl_slist *l, const char *h, bool *fail)
{
    struct curl_slist *n = curl_slist_append(l, h);

    if (!n)
        *fail = true;
    return n ? n : l;
}

/* Set up and add the connection's next request. */
static int conn_start(CURLM *multi, struct conn *c, enum bench_mode mode)
{
    char hdr[160];
    bool fail = false;
    CURLcode rc = CURLE_OK;

    curl_slist_free_all(c->headers);
    c->headers = NULL;
    c->resp_len = 0;
    c->resp_overflow = false;
    c->errbuf[0] = '\0';
    c->kind = next_kind(c, mode);
    if (c->kind == REQ_GET) {
        rc |= curl_easy_setopt(c->easy, CURLOPT_CUSTOMREQUEST, NULL);
        rc |= curl_easy_setopt(c->easy, CURLOPT_HTTPGET, 1L);
        rc |= curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, NULL);
    } else {
        c->seq++;
        snprintf(hdr, sizeof(hdr), "If-Match: \"%lld\"", c->version);
        c->headers = slist_add(c->headers, hdr, &fail);
        snprintf(hdr, sizeof(hdr), "Idempotency-Key: bench-%ld-%u-%llu", (long)getpid(), c->id,
                 c->seq);
        c->headers = slist_add(c->headers, hdr, &fail);
        c->headers = slist_add(c->headers, "Content-Type: application/json", &fail);
        /* An empty "Expect:" stops libcurl from ever waiting for 100-continue. */
        c->headers = slist_add(c->headers, "Expect:", &fail);
        if (fail)
            return -1;
        snprintf(c->body, sizeof(c->body), "{\"base_version\":%lld,\"set_notes\":\"n%llu\"}",
                 c->version, c->seq);
        rc |= curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->body);
        rc |= curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(c->body));
        rc |= curl_easy_setopt(c->easy, CURLOPT_CUSTOMREQUEST, "PATCH");
        rc |= curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
    }
    if (rc != CURLE_OK)
        return -1;
    c->start_ns = now_ns();
    return curl_multi_add_handle(multi, c->easy) == CURLM_OK ? 0 : -1;
}

/* A JSON integer 1..2^53-1 at obj[key] (or obj itself when key is NULL), else 0. */
static long long json_version(const cJSON *obj, const char *key)
{
    const cJSON *v;

    if (key)
        obj = cJSON_GetObjectItemCaseSensitive(obj, key);
    v = cJSON_GetObjectItemCaseSensitive(obj, "version");
    if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > BENCH_MAX_VERSION ||
        v->valuedouble != floor(v->valuedouble))
        return 0;
    return (long long)v->valuedouble;
}

/*
 * Learn the item's next version from a finished request.  GET bodies are
 * parsed only when the mode will PATCH later; in get mode the body is
 * ignored so the load generator spends its CPU on sending load.
 */
static void conn_update_version(struct conn *c, long status, enum bench_mode mode, struct stats *st,
                                bool counted)
{
    cJSON *doc;
    long long v = 0;

    if (mode == MODE_GET)
        return;
    if (status != 200 && status != 409) {
        c->version = 0;
        return;
    }
    doc = cJSON_ParseWithLength(c->resp, c->resp_len);
    if (doc) {
        if (c->kind == REQ_GET)
            v = status == 200 ? json_version(doc, NULL) : 0;
        else
            v = json_version(doc, status == 200 ? "item" : "current");
        cJSON_Delete(doc);
    }
    if (v == 0 && counted)
        st->bad_body++;
    c->version = v;
}

static void stats_record(struct stats *st, long long us)
{
    size_t ncap;
    uint32_t *p;

    if (us < 0)
        us = 0;
    if (us > UINT32_MAX)
        us = UINT32_MAX;
    if (st->nlat == st->cap) {
        if (st->cap >= BENCH_MAX_SAMPLES) {
            st->dropped++;
            return;
        }
        ncap = st->cap ? st->cap * 2 : BENCH_MIN_SAMPLES;
        if (ncap > BENCH_MAX_SAMPLES)
            ncap = BENCH_MAX_SAMPLES;
        p = realloc(st->lat, ncap * sizeof(*p));
        if (!p) {
            st->dropped++;
            return;
        }
        st->lat = p;
        st->cap = ncap;
    }
    st->lat[st->nlat++] = (uint32_t)us;
}

static void stats_reset(struct stats *st)
{
    uint32_t *lat = st->lat;
    size_t cap = st->cap;

    memset(st, 0, sizeof(*st));
    st->lat = lat;
    st->cap = cap;
}

static void conn_finish(struct conn *c, CURLcode result, long long done_ns, long long t0,
                        long long end, enum bench_mode mode, struct stats *st)
{
    long status = 0;
    curl_off_t nconn = 0;
    bool counted = c->start_ns >= t0 && done_ns <= end;

    if (result == CURLE_OK)
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    if (counted) {
        st->requests++;
        if (c->kind == REQ_GET)
            st->gets++;
        else
            st->patches++;
        if (curl_easy_getinfo(c->easy, CURLINFO_NUM_CONNECTS, &nconn) == CURLE_OK)
            st->connects += (uint64_t)nconn;
        if (result != CURLE_OK) {
            st->errors++;
            if (st->errors <= 3)
                fprintf(stderr, "bench_http: conn %u: %s\n", c->id,
                        c->errbuf[0] ? c->errbuf : curl_easy_strerror(result));
        } else if (status == 200)
            st->s200++;
        else if (status == 409)
            st->s409++;
        else
            st->sother++;
        if (result == CURLE_OK)
            stats_record(st, (done_ns - c->start_ns) / 1000);
    }
    if (result != CURLE_OK)
        c->version = 0;
    else
        conn_update_version(c, status, mode, st, counted);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array. */
static uint32_t pct(const uint32_t *v, size_t n, double p)
{
    size_t rank;

    if (n == 0)
        return 0;
    rank = (size_t)ceil(p / 100.0 * (double)n);
    if (rank < 1)
        rank = 1;
    return v[rank - 1];
}

/*
 * utime+stime of pid from /proc/PID/stat, in microseconds, or -1.  The
 * fields are counted after the last ')' because the command name may itself
 * contain spaces and parentheses.
 */
static long long proc_cpu_us(long pid)
{
    char path[64], line[1024], *p, *end;
    unsigned long long ut, st;
    long tck = sysconf(_SC_CLK_TCK);
    FILE *f;
    int field;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    p = fgets(line, sizeof(line), f);
    fclose(f);
    if (!p || tck <= 0 || (p = strrchr(line, ')')) == NULL)
        return -1;
    /* After ')': field 3 is the state; utime and stime are fields 14 and 15. */
    p++;
    for (field = 3; field < 14; field++) {
        p = strchr(p + 1, ' ');
        if (!p)
            return -1;
    }
    errno = 0;
    ut = strtoull(p + 1, &end, 10);
    if (errno || end == p + 1 || *end != ' ')
        return -1;
    p = end;
    st = strtoull(p + 1, &end, 10);
    if (errno || end == p + 1)
        return -1;
    return (long long)((ut + st) * 1000000ULL / (unsigned long long)tck);
}

/*
 * Busy (non-idle, non-iowait) time of all CPUs in microseconds, from the
 * first line of /proc/stat, or -1.  Compared with the client's and the
 * server's share it shows whether something else was competing for the CPUs.
 */
static long long machine_busy_us(void)
{
    char line[512], *p, *end;
    unsigned long long v, busy = 0;
    long tck = sysconf(_SC_CLK_TCK);
    FILE *f = fopen("/proc/stat", "r");
    int i;

    if (!f)
        return -1;
    p = fgets(line, sizeof(line), f);
    fclose(f);
    if (!p || tck <= 0 || strncmp(line, "cpu ", 4) != 0)
        return -1;
    p = line + 4;
    /* user nice system idle iowait irq softirq steal: skip idle (3) and iowait (4). */
    for (i = 0; i < 8; i++) {
        errno = 0;
        v = strtoull(p, &end, 10);
        if (errno || end == p)
            return -1;
        if (i != 3 && i != 4)
            busy += v;
        p = end;
    }
    return (long long)(busy * 1000000ULL / (unsigned long long)tck);
}

static void cpu_snap_take(struct cpu_snap *s, long server_pid)
{
    struct rusage ru;

    s->self_us = -1;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        s->self_us = (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec +
                     (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
    s->server_us = server_pid > 0 ? proc_cpu_us(server_pid) : -1;
    s->machine_us = machine_busy_us();
}

static const char *mode_name(enum bench_mode m)
{
    return m == MODE_GET ? "get" : m == MODE_PATCH ? "patch" : "mixed";
}

static void report(const struct opts *o, struct stats *st, double elapsed, long long items,
                   const struct cpu_snap *a, const struct cpu_snap *b)
{
    double reqs = st->requests ? (double)st->requests : 1.0;

    qsort(st->lat, st->nlat, sizeof(*st->lat), cmp_u32);
    printf("mode: %s\n", mode_name(o->mode));
    printf("connections: %u\n", o->connections);
    printf("seconds: %.2f\n", elapsed);
    printf("requests: %" PRIu64 "\n", st->requests);
    printf("rps: %.1f\n", elapsed > 0 ? (double)st->requests / elapsed : 0.0);
    printf("gets: %" PRIu64 "\n", st->gets);
    printf("patches: %" PRIu64 "\n", st->patches);
    printf("status_200: %" PRIu64 "\n", st->s200);
    printf("status_409: %" PRIu64 "\n", st->s409);
    printf("status_other: %" PRIu64 "\n", st->sother);
    printf("errors: %" PRIu64 "\n", st->errors);
    printf("bad_body: %" PRIu64 "\n", st->bad_body);
    printf("new_connections: %" PRIu64 "\n", st->connects);
    printf("latency_samples: %zu\n", st->nlat);
    printf("latency_dropped: %" PRIu64 "\n", st->dropped);
    printf("latency_us_p50: %" PRIu32 "\n", pct(st->lat, st->nlat, 50));
    printf("latency_us_p90: %" PRIu32 "\n", pct(st->lat, st->nlat, 90));
    printf("latency_us_p99: %" PRIu32 "\n", pct(st->lat, st->nlat, 99));
    printf("latency_us_max: %" PRIu32 "\n", st->nlat ? st->lat[st->nlat - 1] : 0);
    printf("health_items: %lld\n", items);
    /* CPU shares are of one core: 200 means both cores of a 2-CPU machine. */
    if (elapsed > 0 && a->self_us >= 0 && b->self_us >= 0)
        printf("client_cpu_pct: %.0f\n", (double)(b->self_us - a->self_us) / (elapsed * 1e4));
    if (elapsed > 0 && a->machine_us >= 0 && b->machine_us >= 0)
        printf("machine_cpu_pct: %.0f\n",
               (double)(b->machine_us - a->machine_us) / (elapsed * 1e4));
    if (elapsed > 0 && a->server_us >= 0 && b->server_us >= 0) {
        printf("server_cpu_pct: %.0f\n", (double)(b->server_us - a->server_us) / (elapsed * 1e4));
        printf("server_cpu_us_per_req: %.1f\n", (double)(b->server_us - a->server_us) / reqs);
    }
}

/* Build "<base>/item?path=<escaped P>" for every item path. */
static char **item_urls(const char *base, const struct opts *o, size_t *n)
{
    static const char *const scratch[BENCH_SCRATCH_ITEMS] = {
        "/scratch/s01.png", "/scratch/s02.png", "/scratch/s03.png", "/scratch/s04.png",
        "/scratch/s05.png", "/scratch/s06.png", "/scratch/s07.png", "/scratch/s08.png",
        "/scratch/s09.png", "/scratch/s10.png", "/scratch/s11.png", "/scratch/s12.png"};
    const char *const *paths = o->npaths ? o->paths : scratch;
    size_t count = o->npaths ? o->npaths : BENCH_SCRATCH_ITEMS, i, len;
    char **urls = calloc(count, sizeof(*urls));
    char *esc;

    if (!urls)
        return NULL;
    for (i = 0; i < count; i++) {
        esc = curl_easy_escape(NULL, paths[i], 0);
        if (!esc)
            goto fail;
        len = strlen(base) + strlen(esc) + sizeof("/item?path=");
        urls[i] = malloc(len);
        if (urls[i])
            snprintf(urls[i], len, "%s/item?path=%s", base, esc);
        curl_free(esc);
        if (!urls[i])
            goto fail;
    }
    *n = count;
    return urls;
fail:
    while (i > 0)
        free(urls[--i]);
    free(urls);
    return NULL;
}

static int run(const struct opts *o, const char *base, long long items)
{
    struct conn *conns = NULL;
    struct stats st;
    char **urls;
    size_t nurls = 0, i;
    CURLM *multi = NULL;
    CURLMsg *msg;
    struct conn *c;
    char *priv;
    long long start, t0, end, now;
    bool warm;
    int q, running, ret = 1;
    struct cpu_snap cpu0, cpu1;

    memset(&st, 0, sizeof(st));
    urls = item_urls(base, o, &nurls);
    conns = calloc(o->connections, sizeof(*conns));
    multi = curl_multi_init();
    if (!urls || !conns || !multi) {
        fprintf(stderr, "bench_http: out of memory\n");
        goto out;
    }
    /* One pool connection per closed-loop connection, all kept alive. */
    curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)o->connections);
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o->connections);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)o->connections);
    curl_multi_setopt(multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    for (i = 0; i < o->connections; i++) {
        c = &conns[i];
        c->id = (unsigned)i;
        c->item_url = urls[i % nurls];
        c->rng = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)(i + 1) * 0xbf58476d1ce4e5b9ULL);
        c->easy = curl_easy_init();
        if (!c->easy || easy_common(c->easy, o->timeout_ms) < 0 ||
            curl_easy_setopt(c->easy, CURLOPT_URL, c->item_url) != CURLE_OK ||
            curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c) != CURLE_OK ||
            curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c) != CURLE_OK ||
            curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, c->errbuf) != CURLE_OK) {
            fprintf(stderr, "bench_http: cannot set up connection %zu\n", i);
            goto out;
        }
    }

    cpu_snap_take(&cpu0, o->server_pid);
    start = now_ns();
    warm = o->warmup <= 0;
    t0 = start + (long long)(o->warmup * 1e9);
    end = t0 + (long long)(o->seconds * 1e9);
    for (i = 0; i < o->connections; i++)
        if (conn_start(multi, &conns[i], o->mode) < 0) {
            fprintf(stderr, "bench_http: cannot start connection %zu\n", i);
            goto out;
        }

    while (!g_stop) {
        now = now_ns();
        if (!warm && now >= t0) {
            stats_reset(&st);
            cpu_snap_take(&cpu0, o->server_pid);
            warm = true;
        }
        if (now >= end)
            break;
        if (curl_multi_perform(multi, &running) != CURLM_OK) {
            fprintf(stderr, "bench_http: curl_multi_perform failed\n");
            goto out;
        }
        while ((msg = curl_multi_info_read(multi, &q)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            priv = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
            c = (struct conn *)(void *)priv;
            conn_finish(c, msg->data.result, now_ns(), t0, end, o->mode, &st);
            curl_multi_remove_handle(multi, c->easy);
            if (conn_start(multi, c, o->mode) < 0) {
                fprintf(stderr, "bench_http: cannot restart connection %u\n", c->id);
                goto out;
            }
        }
        now = now_ns();
        q = (int)((end - now) / 1000000) + 1;
        curl_multi_poll(multi, NULL, 0, q < BENCH_POLL_MS ? q : BENCH_POLL_MS, NULL);
    }
    cpu_snap_take(&cpu1, o->server_pid);
    now = now_ns();
    if (now > end)
        now = end;
    if (!warm)
        fprintf(stderr, "bench_http: interrupted during warm-up, nothing measured\n");
    report(o, &st, warm ? (double)(now - t0) / 1e9 : 0.0, items, &cpu0, &cpu1);
    if (st.sother || st.errors || st.bad_body)
        fprintf(stderr,
                "bench_http: warning: %" PRIu64 " responses were neither 200 nor 409, %" PRIu64
                " transport errors, %" PRIu64 " bodies without a version\n",
                st.sother, st.errors, st.bad_body);
    /* A run with no successful request measured nothing worth reporting. */
    ret = st.s200 ? 0 : 3;
out:
    for (i = 0; conns && i < o->connections; i++) {
        if (conns[i].easy) {
            curl_multi_remove_handle(multi, conns[i].easy);
            curl_easy_cleanup(conns[i].easy);
        }
        curl_slist_free_all(conns[i].headers);
        free(conns[i].resp);
    }
    curl_multi_cleanup(multi);
    free(conns);
    for (i = 0; urls && i < nurls; i++)
        free(urls[i]);
    free(urls);
    free(st.lat);
    return ret;
}

int main(int argc, char **argv)
{
    struct opts o;
    struct sigaction sa;
    char base[BENCH_MAX_BASE];
    long long items;
    int ret = 1;

    if (parse_opts(argc, argv, &o) < 0)
        return 2;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "bench_http: curl_global_init failed\n");
        return 1;
    }
    if (loopback_base(o.url, base, sizeof(base)) < 0)
        goto out;
    /* SIGINT/SIGTERM end the measurement early but still print what was measured. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    items = health_items(base, o.timeout_ms);
    if (items < 0) {
        fprintf(stderr, "bench_http: %s/health did not answer; is labelsyncd running?\n", base);
        goto out;
    }
    ret = run(&o, base, items);
out:
    curl_global_cleanup();
    return ret;
}
