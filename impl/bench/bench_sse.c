/*
 * bench_sse.c - fan-out benchmark and delivery check for GET /events.
 *
 * S subscribers open GET /events (live only, no cursor) and wait until each
 * has seen its `retry:` line, which the server sends first on every stream.
 * Then one or a few writers PATCH the scratch items W times.  Every item
 * event must reach every subscriber exactly once, in strictly increasing id
 * order, with no gap against the event_ids the writers got back in their 200
 * responses, and no `resync`.  The program prints the delivery counts, the
 * publish -> receive latencies, the wall time and the server's RSS, and exits
 * non-zero when any check fails.
 *
 * Pacing:
 *   lockstep  a writer sends its next PATCH only after every subscriber has
 *             received the event of its previous one, so events never overlap
 *             and the latencies are those of one event fanned out to S idle
 *             streams (what machine-limits.md measured);
 *   burst     writers send back to back, each as soon as its 200 arrives, so
 *             events queue in the server and the latencies include that
 *             queueing; the figure of interest is then the delivery rate.
 *
 * Latencies are measured twice, on CLOCK_MONOTONIC: from the moment the PATCH
 * was handed to libcurl and pushed to the socket ("send"), and from the
 * moment its 200 had been read ("ack").  An event may reach a subscriber
 * before the writer has read the response, so ack latencies can be negative.
 *
 * Everything runs on one thread: libcurl's multi_socket interface on an
 * epoll loop, so each wake-up touches only the sockets that have data, and
 * the writer's transfers share the loop so subscribers keep reading while a
 * PATCH is in flight.  Each subscriber parses its stream incrementally (WHATWG
 * HTML 9.2.6 rules: CR, LF or CRLF line ends, comments, id/event/data/retry
 * fields, dispatch on a blank line; an unterminated final event is dropped).
 *
 * Invariants / bounds: only loopback servers are accepted and proxies are
 * disabled; the connect phase, every writer transfer, every lockstep wait and
 * the final drain have timeouts, and the whole run has --max-seconds; SSE
 * lines, data fields and response bodies have caps; each subscriber records
 * at most W + BENCH_EXTRA_RECORDS events (more is itself a failure); S x W is
 * capped so the per-delivery records fit in memory.
 *
 * With --hold-seconds the streams stay open after the report so that the
 * caller can stop the server and measure its shutdown with S streams open;
 * the end of each stream and the server's exit are then reported with
 * CLOCK_REALTIME stamps the caller can compare with its own kill time.
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
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define BENCH_MAX_SUBSCRIBERS  19000 /* the open-file limit here is 20000 */
#define BENCH_MAX_WRITES       1000000L
#define BENCH_MAX_DELIVERIES   20000000.0 /* S x W: 16 bytes each, plus 16 for latencies */
#define BENCH_SCRATCH_ITEMS    12
#define BENCH_MAX_WRITERS      BENCH_SCRATCH_ITEMS
#define BENCH_EXTRA_RECORDS    256
#define BENCH_FD_RESERVE       64
#define BENCH_MAX_LINE         (64u * 1024u)
#define BENCH_MAX_DATA         (256u * 1024u)
#define BENCH_MAX_EVENT_NAME   64
#define BENCH_MAX_ID_LEN       32
#define BENCH_MAX_BODY         (1024u * 1024u)
#define BENCH_MAX_BASE         512
#define BENCH_MAX_URL          8192
#define BENCH_DEFAULT_CONNECT  30000L
#define BENCH_DEFAULT_TIMEOUT  10000L
#define BENCH_MAX_TIMEOUT      600000L
#define BENCH_DEFAULT_MAX_SECS 600.0
#define BENCH_MAX_SECS         86400.0
#define BENCH_MAX_HOLD         3600.0
#define BENCH_EPOLL_BATCH      1024
#define BENCH_TICK_MS          100
#define BENCH_HOLD_TICK_MS     1
#define BENCH_MAX_ID           9007199254740991LL
#define BENCH_REPORT_ERRORS    5

enum pace { PACE_LOCKSTEP, PACE_BURST };
enum phase { PH_CONNECT, PH_WRITE, PH_DRAIN, PH_HOLD };
enum wstate { W_IDLE, W_GET, W_PATCH, W_BLOCKED, W_DONE };

struct opts {
    const char *url;
    long subscribers;
    long writes;
    long writers;
    enum pace pace;
    long connect_ms;
    long timeout_ms;
    double max_seconds;
    double hold_seconds;
    long server_pid; /* 0 = no RSS/CPU/exit measurement */
};

/* One received item event: its id and CLOCK_MONOTONIC receive time. */
struct rec {
    long long id;
    long long ns;
};

/* Incremental SSE parser state (WHATWG HTML 9.2.6). */
struct sse_parser {
    char *line; /* only a line split across chunks is copied here */
    size_t line_len;
    size_t line_cap;
    char *data;
    size_t data_len;
    size_t data_cap;
    char event[BENCH_MAX_EVENT_NAME + 1];
    size_t event_len;
    bool event_long;
    char id[BENCH_MAX_ID_LEN + 1]; /* the "last event ID buffer" */
    size_t id_len;
    bool id_long;
    bool frame_id; /* this frame carried an id: field */
    bool cr;       /* the previous chunk ended in CR: a leading LF belongs to it */
    bool started;  /* past the optional BOM */
    bool broken;   /* a cap was exceeded; the stream is aborted */
};

struct sub {
    CURL *easy;
    struct bench *b;
    unsigned idx;
    struct sse_parser p;
    struct rec *recs;
    size_t nrec;
    size_t caprec;
    char **datas; /* subscriber 0 only: each event's data, checked at the end */
    long long last_id;
    bool checked; /* status and Content-Type looked at */
    bool ready;   /* retry: seen */
    bool dead;    /* transfer finished */
    bool refused; /* not a 200 text/event-stream */
    uint64_t overflow;
    uint64_t resyncs;
    uint64_t presence;
    uint64_t other;
    uint64_t bad_id;
    uint64_t no_id;
    uint64_t comments;
    char errbuf[CURL_ERROR_SIZE];
};

struct write_rec {
    long long send_ns;
    long long done_ns;
    long long event_id; /* 0 = the PATCH failed */
    long long version;
    unsigned item;
};

struct writer {
    CURL *easy;
    unsigned idx;
    unsigned items[BENCH_SCRATCH_ITEMS];
    size_t nitems;
    size_t cursor;
    enum wstate state;
    size_t cur_write; /* index into bench.writes of the PATCH in flight */
    unsigned cur_item;
    long long wait_id;
    struct curl_slist *headers;
    char body[128];
    char *resp;
    size_t resp_len;
    size_t resp_cap;
    char errbuf[CURL_ERROR_SIZE];
};

struct cpu_snap {
    long long self_us;
    long long server_us;
    long long machine_us;
};

struct bench {
    struct opts o;
    char base[BENCH_MAX_BASE];
    /* Start time in ns, in every Idempotency-Key and note: a note equal to the
       current one would change nothing and publish no event, and a reused key
       would replay an old response. */
    unsigned long long run_id;
    CURLM *multi;
    int epfd;
    long long timer_at; /* libcurl's timer, absolute ns; -1 = none */
    enum phase phase;
    struct sub *subs;
    size_t nsubs;
    struct writer writers[BENCH_MAX_WRITERS];
    size_t nwriters;
    struct write_rec *writes;
    size_t nwrites;     /* writes started */
    size_t writes_done; /* writes finished, ok or not */
    char *item_urls[BENCH_SCRATCH_ITEMS];
    long long versions[BENCH_SCRATCH_ITEMS];
    long long target;        /* event id every subscriber must reach; 0 = none */
    size_t reached;          /* subscribers with last_id >= target, or dead */
    long long target_ns;     /* when target was set (lockstep timeout) */
    size_t ready;            /* subscribers that saw retry: */
    size_t dead;             /* subscriber transfers that finished */
    uint64_t streams_failed; /* never became a 200 text/event-stream */
    uint64_t streams_ended;  /* ended after becoming ready, before the end */
    uint64_t write_errors;
    uint64_t write_409;
    uint64_t setup_errors;
    bool lockstep_timeout;
    bool drain_timeout;
    bool aborted;
    long long first_send_ns;
    long long last_done_ns;
    long long last_recv_ns;
    /* hold phase */
    uint64_t hold_clean;
    uint64_t hold_partial;
    uint64_t hold_error;
    long long hold_first_end; /* CLOCK_REALTIME ns, 0 = none */
    long long hold_last_end;
    long long hold_server_exit;
};

static volatile sig_atomic_t g_stop;
static char g_assigned; /* marks sockets already in the epoll set */

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static long long clock_ns(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long now_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_sse --url URL [--subscribers N] [--writes N] [--writers N]\n"
            "                 [--pace lockstep|burst] [--connect-timeout-ms MS]\n"
            "                 [--timeout-ms MS] [--max-seconds S] [--hold-seconds S]\n"
            "                 [--server-pid PID]\n"
            "\n"
            "Fan-out benchmark and delivery check for GET /events on a loopback labelsyncd.\n"
            "  --url URL               server base URL (http on 127.0.0.0/8, [::1], localhost)\n"
            "  --subscribers N         event streams to open, 1..%d (default 1000)\n"
            "  --writes N              PATCHes to /scratch/s01.png..s12.png, 1..%ld\n"
            "                          (default 1000); subscribers x writes <= %.0f\n"
            "  --writers N             writer connections, 1..%d (default 1); each owns\n"
            "                          its own items, so writes never conflict\n"
            "  --pace P                lockstep (default): next PATCH after every subscriber\n"
            "                          got the previous event; burst: back to back\n"
            "  --connect-timeout-ms MS bound for every subscriber to see retry: (30000)\n"
            "  --timeout-ms MS         bound per PATCH, per lockstep wait and for the final\n"
            "                          drain (default 10000)\n"
            "  --max-seconds S         bound on the whole run (default 600)\n"
            "  --hold-seconds S        after the report keep the streams open until they all\n"
            "                          end (and the server exits), or S seconds (default 0)\n"
            "  --server-pid PID        report that process's RSS and CPU, and its exit time\n"
            "                          in the hold\n"
            "\n"
            "Exit status: 0 every check passed, 1 set-up failed, 2 usage error, 3 a check\n"
            "failed (lost, duplicate or out-of-order events, resync, stream or write\n"
            "errors, timeouts).\n",
            BENCH_MAX_SUBSCRIBERS, BENCH_MAX_WRITES, BENCH_MAX_DELIVERIES, BENCH_MAX_WRITERS);
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
                                             {"subscribers", required_argument, NULL, 's'},
                                             {"writes", required_argument, NULL, 'w'},
                                             {"writers", required_argument, NULL, 'W'},
                                             {"pace", required_argument, NULL, 'p'},
                                             {"connect-timeout-ms", required_argument, NULL, 'c'},
                                             {"timeout-ms", required_argument, NULL, 't'},
                                             {"max-seconds", required_argument, NULL, 'm'},
                                             {"hold-seconds", required_argument, NULL, 'H'},
                                             {"server-pid", required_argument, NULL, 'P'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int c;

    memset(o, 0, sizeof(*o));
    o->subscribers = 1000;
    o->writes = 1000;
    o->writers = 1;
    o->pace = PACE_LOCKSTEP;
    o->connect_ms = BENCH_DEFAULT_CONNECT;
    o->timeout_ms = BENCH_DEFAULT_TIMEOUT;
    o->max_seconds = BENCH_DEFAULT_MAX_SECS;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'u':
            o->url = optarg;
            break;
        case 's':
            if (parse_long(optarg, 1, BENCH_MAX_SUBSCRIBERS, &o->subscribers) < 0) {
                fprintf(stderr, "bench_sse: --subscribers must be 1..%d\n", BENCH_MAX_SUBSCRIBERS);
                return -1;
            }
            break;
        case 'w':
            if (parse_long(optarg, 1, BENCH_MAX_WRITES, &o->writes) < 0) {
                fprintf(stderr, "bench_sse: --writes must be 1..%ld\n", BENCH_MAX_WRITES);
                return -1;
            }
            break;
        case 'W':
            if (parse_long(optarg, 1, BENCH_MAX_WRITERS, &o->writers) < 0) {
                fprintf(stderr, "bench_sse: --writers must be 1..%d\n", BENCH_MAX_WRITERS);
                return -1;
            }
            break;
        case 'p':
            if (strcmp(optarg, "lockstep") == 0)
                o->pace = PACE_LOCKSTEP;
            else if (strcmp(optarg, "burst") == 0)
                o->pace = PACE_BURST;
            else {
                fprintf(stderr, "bench_sse: --pace must be lockstep or burst\n");
                return -1;
            }
            break;
        case 'c':
            if (parse_long(optarg, 1, BENCH_MAX_TIMEOUT, &o->connect_ms) < 0) {
                fprintf(stderr, "bench_sse: --connect-timeout-ms must be 1..%ld\n",
                        BENCH_MAX_TIMEOUT);
                return -1;
            }
            break;
        case 't':
            if (parse_long(optarg, 1, BENCH_MAX_TIMEOUT, &o->timeout_ms) < 0) {
                fprintf(stderr, "bench_sse: --timeout-ms must be 1..%ld\n", BENCH_MAX_TIMEOUT);
                return -1;
            }
            break;
        case 'm':
            if (parse_double(optarg, 0.1, BENCH_MAX_SECS, &o->max_seconds) < 0) {
                fprintf(stderr, "bench_sse: --max-seconds must be 0.1..%.0f\n", BENCH_MAX_SECS);
                return -1;
            }
            break;
        case 'H':
            if (parse_double(optarg, 0.0, BENCH_MAX_HOLD, &o->hold_seconds) < 0) {
                fprintf(stderr, "bench_sse: --hold-seconds must be 0..%.0f\n", BENCH_MAX_HOLD);
                return -1;
            }
            break;
        case 'P':
            if (parse_long(optarg, 1, INT_MAX, &o->server_pid) < 0) {
                fprintf(stderr, "bench_sse: --server-pid must be a process id\n");
                return -1;
            }
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind != argc || !o->url) {
        usage(stderr);
        return -1;
    }
    if ((double)o->subscribers * (double)o->writes > BENCH_MAX_DELIVERIES) {
        fprintf(stderr, "bench_sse: subscribers x writes must be at most %.0f\n",
                BENCH_MAX_DELIVERIES);
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
        fprintf(stderr, "bench_sse: cannot parse --url '%s'\n", url);
        goto out;
    }
    if (strcmp(scheme, "http") != 0) {
        fprintf(stderr, "bench_sse: --url must use http:// (got %s://)\n", scheme);
        goto out;
    }
    /* 127.0.0.0/8, ::1 and localhost (which libcurl resolves to loopback itself). */
    if (inet_pton(AF_INET, host, &a4) == 1)
        ok = (ntohl(a4.s_addr) >> 24) == 127;
    else
        ok = strcmp(host, "[::1]") == 0 || strcmp(host, "localhost") == 0;
    if (!ok) {
        fprintf(stderr,
                "bench_sse: refusing non-loopback host '%s': only 127.0.0.0/8, [::1] and "
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

/* Grow *buf to hold need bytes, never beyond cap; 0 or -1. */
static int grow(char **buf, size_t *cap, size_t need, size_t cap_max)
{
    size_t ncap;
    char *p;

    if (need <= *cap)
        return 0;
    if (need > cap_max)
        return -1;
    ncap = *cap ? *cap : 256;
    while (ncap < need)
        ncap *= 2;
    if (ncap > cap_max)
        ncap = cap_max;
    p = realloc(*buf, ncap);
    if (!p)
        return -1;
    *buf = p;
    *cap = ncap;
    return 0;
}

/* "1".."2^53-1" in decimal digits only, else 0. */
static long long parse_id(const char *s, size_t n)
{
    long long v = 0;
    size_t i;

    if (n == 0 || n > 16)
        return 0;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    return v <= BENCH_MAX_ID ? v : 0;
}

/* ---- subscriber side ------------------------------------------------------ */

static void bench_sub_reached(struct bench *b, struct sub *s, long long id);

/* Keep one received item event; the checks run over these at the end. */
static void sub_record(struct sub *s, long long id, const char *data, size_t len)
{
    struct bench *b = s->b;
    long long t = now_ns();

    if (s->nrec == s->caprec) {
        s->overflow++;
    } else {
        s->recs[s->nrec].id = id;
        s->recs[s->nrec].ns = t;
        if (s->datas)
            s->datas[s->nrec] = strndup(data, len);
        s->nrec++;
    }
    if (t > b->last_recv_ns)
        b->last_recv_ns = t;
    bench_sub_reached(b, s, id);
}

/* A complete frame: count it, and keep item events for the checks. */
static void sse_dispatch(struct sub *s)
{
    struct sse_parser *p = &s->p;
    const char *type = p->event_len ? p->event : "message";
    long long id;

    /* WHATWG: a frame without data is not an event (this is the retry: frame). */
    if (p->data_len == 0)
        goto reset;
    p->data_len--; /* the LF appended after the last data line */
    if (p->event_long)
        type = "";
    if (strcmp(type, "presence") == 0) {
        s->presence++;
    } else if (strcmp(type, "resync") == 0) {
        s->resyncs++;
    } else if (strcmp(type, "item-updated") == 0 || strcmp(type, "metrics-updated") == 0) {
        if (!p->frame_id) {
            /* The contract puts id: on every frame; inheriting the previous one would
               pass for a duplicate, so it is counted apart. */
            s->no_id++;
        } else if (p->id_long || (id = parse_id(p->id, p->id_len)) == 0) {
            s->bad_id++;
        } else {
            sub_record(s, id, p->data, p->data_len);
        }
    } else {
        s->other++;
    }
reset:
    p->data_len = 0;
    p->event_len = 0;
    p->event_long = false;
    p->frame_id = false;
}

/* One line, without its terminator. */
static void sse_line(struct sub *s, const char *l, size_t n)
{
    struct sse_parser *p = &s->p;
    const char *colon, *v;
    size_t fn, vn;

    if (n == 0) {
        sse_dispatch(s);
        return;
    }
    if (l[0] == ':') {
        s->comments++;
        return;
    }
    colon = memchr(l, ':', n);
    fn = colon ? (size_t)(colon - l) : n;
    v = colon ? colon + 1 : l + n;
    vn = colon ? n - fn - 1 : 0;
    if (vn && v[0] == ' ') {
        v++;
        vn--;
    }
    if (fn == 4 && memcmp(l, "data", 4) == 0) {
        if (grow(&p->data, &p->data_cap, p->data_len + vn + 1, BENCH_MAX_DATA) < 0) {
            p->broken = true;
            return;
        }
        memcpy(p->data + p->data_len, v, vn);
        p->data_len += vn;
        p->data[p->data_len++] = '\n';
    } else if (fn == 5 && memcmp(l, "event", 5) == 0) {
        p->event_long = vn > BENCH_MAX_EVENT_NAME;
        p->event_len = p->event_long ? 0 : vn;
        memcpy(p->event, v, p->event_len);
        p->event[p->event_len] = '\0';
    } else if (fn == 2 && memcmp(l, "id", 2) == 0) {
        if (memchr(v, '\0', vn))
            return;
        p->frame_id = true;
        p->id_long = vn > BENCH_MAX_ID_LEN;
        p->id_len = p->id_long ? 0 : vn;
        memcpy(p->id, v, p->id_len);
    } else if (fn == 5 && memcmp(l, "retry", 5) == 0) {
        /* Only an all-digit value counts (WHATWG); the line is not NUL-terminated. */
        for (fn = 0; fn < vn && v[fn] >= '0' && v[fn] <= '9'; fn++)
            ;
        if (vn && fn == vn && !s->ready) {
            s->ready = true;
            s->b->ready++;
        }
    }
}

/*
 * Feed a chunk.  Whole lines are parsed in place; only the tail of a line
 * that continues in the next chunk is copied, so the common case (frames
 * that fit one read) copies nothing but the data field.
 */
static void sse_feed(struct sub *s, const char *buf, size_t n)
{
    struct sse_parser *p = &s->p;
    size_t i = 0, j;

    if (!p->started && n) {
        /* One leading UTF-8 BOM is dropped; a BOM split across reads is not
           worth handling for a server that never sends one. */
        if (n >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
            i = 3;
        p->started = true;
    }
    while (i < n && !p->broken) {
        if (p->cr) {
            p->cr = false;
            if (buf[i] == '\n') {
                i++;
                continue;
            }
        }
        for (j = i; j < n && buf[j] != '\n' && buf[j] != '\r'; j++)
            ;
        if (j == n) {
            if (grow(&p->line, &p->line_cap, p->line_len + (n - i), BENCH_MAX_LINE) < 0) {
                p->broken = true;
                return;
            }
            memcpy(p->line + p->line_len, buf + i, n - i);
            p->line_len += n - i;
            return;
        }
        if (p->line_len) {
            if (grow(&p->line, &p->line_cap, p->line_len + (j - i), BENCH_MAX_LINE) < 0) {
                p->broken = true;
                return;
            }
            memcpy(p->line + p->line_len, buf + i, j - i);
            sse_line(s, p->line, p->line_len + (j - i));
            p->line_len = 0;
        } else {
            sse_line(s, buf + i, j - i);
        }
        p->cr = buf[j] == '\r';
        i = j + 1;
    }
}

static size_t on_stream(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct sub *s = userdata;
    size_t n = size * nmemb;
    long status = 0;
    char *ctype = NULL;

    if (!s->checked) {
        /* Anything but a 200 event stream (e.g. a 503 past --max-subscribers)
           is a failed subscriber; returning 0 aborts its transfer. */
        s->checked = true;
        curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(s->easy, CURLINFO_CONTENT_TYPE, &ctype);
        if (status != 200 || !ctype || strncmp(ctype, "text/event-stream", 17) != 0) {
            if (s->b->streams_failed < BENCH_REPORT_ERRORS)
                fprintf(stderr, "bench_sse: subscriber %u: status %ld, Content-Type %s\n", s->idx,
                        status, ctype ? ctype : "(none)");
            s->refused = true;
            return 0;
        }
    }
    sse_feed(s, ptr, n);
    return s->p.broken ? 0 : n;
}

/* ---- writer side ---------------------------------------------------------- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct writer *w = userdata;
    size_t n = size * nmemb;

    /* Returning less than n aborts the transfer; counted as a write error. */
    if (grow(&w->resp, &w->resp_cap, w->resp_len + n + 1, BENCH_MAX_BODY) < 0)
        return 0;
    memcpy(w->resp + w->resp_len, ptr, n);
    w->resp_len += n;
    w->resp[w->resp_len] = '\0';
    return n;
}

/* Options every handle shares: loopback-only, no proxies, no redirects. */
static int easy_common(CURL *e, long connect_ms)
{
    CURLcode rc = CURLE_OK;

    rc |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http");
    rc |= curl_easy_setopt(e, CURLOPT_PROXY, "");
    rc |= curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    rc |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    rc |= curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    rc |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    return rc == CURLE_OK ? 0 : -1;
}

/* A JSON integer 1..2^53-1 at obj[key], else 0. */
static long long json_int(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > (double)BENCH_MAX_ID ||
        v->valuedouble != floor(v->valuedouble))
        return 0;
    return (long long)v->valuedouble;
}

static struct curl_slist *slist_add(struct curl_slist *l, const char *h, bool *fail)
{
    struct curl_slist *n = curl_slist_append(l, h);

    if (!n)
        *fail = true;
    return n ? n : l;
}

/*
 * Start the writer's next request: a GET for an item whose version is not
 * known, else the next PATCH.  The request is pushed to the socket at once
 * (a timeout action runs the new handle) so send_ns is when it left.
 */
static int writer_start(struct bench *b, struct writer *w)
{
    struct write_rec *wr;
    char hdr[160];
    bool fail = false;
    CURLcode rc = CURLE_OK;
    int running;

    curl_slist_free_all(w->headers);
    w->headers = NULL;
    w->resp_len = 0;
    w->errbuf[0] = '\0';
    w->cur_item = w->items[w->cursor % w->nitems];
    rc |= curl_easy_setopt(w->easy, CURLOPT_URL, b->item_urls[w->cur_item]);
    if (b->versions[w->cur_item] == 0) {
        w->state = W_GET;
        rc |= curl_easy_setopt(w->easy, CURLOPT_CUSTOMREQUEST, NULL);
        rc |= curl_easy_setopt(w->easy, CURLOPT_HTTPGET, 1L);
        rc |= curl_easy_setopt(w->easy, CURLOPT_HTTPHEADER, NULL);
    } else {
        w->state = W_PATCH;
        w->cur_write = b->nwrites++;
        wr = &b->writes[w->cur_write];
        wr->item = w->cur_item;
        snprintf(hdr, sizeof(hdr), "If-Match: \"%lld\"", b->versions[w->cur_item]);
        w->headers = slist_add(w->headers, hdr, &fail);
        snprintf(hdr, sizeof(hdr), "Idempotency-Key: bench-sse-%llu-%zu", b->run_id, w->cur_write);
        w->headers = slist_add(w->headers, hdr, &fail);
        w->headers = slist_add(w->headers, "Content-Type: application/json", &fail);
        /* An empty "Expect:" stops libcurl from ever waiting for 100-continue. */
        w->headers = slist_add(w->headers, "Expect:", &fail);
        if (fail)
            return -1;
        snprintf(w->body, sizeof(w->body), "{\"base_version\":%lld,\"set_notes\":\"sse-%llu-%zu\"}",
                 b->versions[w->cur_item], b->run_id, w->cur_write);
        rc |= curl_easy_setopt(w->easy, CURLOPT_POSTFIELDS, w->body);
        rc |= curl_easy_setopt(w->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(w->body));
        rc |= curl_easy_setopt(w->easy, CURLOPT_CUSTOMREQUEST, "PATCH");
        rc |= curl_easy_setopt(w->easy, CURLOPT_HTTPHEADER, w->headers);
        wr->send_ns = now_ns();
        if (b->first_send_ns == 0)
            b->first_send_ns = wr->send_ns;
    }
    if (rc != CURLE_OK || curl_multi_add_handle(b->multi, w->easy) != CURLM_OK)
        return -1;
    curl_multi_socket_action(b->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    return 0;
}

/* A writer transfer finished: learn the version, and for a PATCH the event id. */
static void writer_done(struct bench *b, struct writer *w, CURLcode result)
{
    struct write_rec *wr = NULL;
    long status = 0;
    cJSON *doc = NULL;
    long long v = 0, eid = 0;

    if (result == CURLE_OK)
        curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &status);
    if (result == CURLE_OK && (status == 200 || status == 409))
        doc = cJSON_ParseWithLength(w->resp, w->resp_len);
    if (w->state == W_GET) {
        v = status == 200 ? json_int(doc, "version") : 0;
        if (v == 0) {
            /* Without a version the writer cannot PATCH that item at all: the run
               stops here and fails. */
            fprintf(stderr, "bench_sse: GET %s: %s, status %ld\n", b->item_urls[w->cur_item],
                    result != CURLE_OK ? (w->errbuf[0] ? w->errbuf : curl_easy_strerror(result))
                                       : "no version",
                    status);
            b->write_errors++;
            b->aborted = true;
        }
        b->versions[w->cur_item] = v;
        w->state = W_IDLE;
        cJSON_Delete(doc);
        return;
    }
    wr = &b->writes[w->cur_write];
    wr->done_ns = now_ns();
    b->last_done_ns = wr->done_ns;
    b->writes_done++;
    w->cursor++;
    if (status == 200) {
        v = json_int(cJSON_GetObjectItemCaseSensitive(doc, "item"), "version");
        eid = json_int(doc, "event_id");
    } else if (status == 409) {
        b->write_409++;
        v = json_int(cJSON_GetObjectItemCaseSensitive(doc, "current"), "version");
    }
    cJSON_Delete(doc);
    b->versions[w->cur_item] = v; /* 0: GET it again before its next PATCH */
    if (status != 200 || v == 0 || eid == 0) {
        if (b->write_errors++ < BENCH_REPORT_ERRORS)
            fprintf(stderr, "bench_sse: PATCH #%zu %s: %s, status %ld\n", w->cur_write,
                    b->item_urls[w->cur_item],
                    result != CURLE_OK ? (w->errbuf[0] ? w->errbuf : curl_easy_strerror(result))
                    : status == 200    ? "no item.version or event_id"
                                       : "not 200",
                    status);
        w->state = W_IDLE;
        return;
    }
    wr->event_id = eid;
    wr->version = v;
    if (b->o.pace == PACE_LOCKSTEP) {
        w->state = W_BLOCKED;
        w->wait_id = eid;
    } else {
        w->state = W_IDLE;
    }
}

/* ---- progress tracking ------------------------------------------------------ */

/* Count the subscribers that have the target (or can never get it). */
static void set_target(struct bench *b, long long t)
{
    size_t i;

    b->target = t;
    b->target_ns = now_ns();
    b->reached = 0;
    for (i = 0; i < b->nsubs; i++)
        if (b->subs[i].dead || b->subs[i].last_id >= t)
            b->reached++;
}

static void bench_sub_reached(struct bench *b, struct sub *s, long long id)
{
    if (id <= s->last_id)
        return;
    if (b->target && !s->dead && s->last_id < b->target && id >= b->target)
        b->reached++;
    s->last_id = id;
}

static void sub_dead(struct bench *b, struct sub *s)
{
    if (s->dead)
        return;
    if (b->target && s->last_id < b->target)
        b->reached++;
    s->dead = true;
    b->dead++;
}

/* The smallest event id a blocked writer waits for; 0 = none. */
static long long lockstep_target(const struct bench *b)
{
    long long t = 0;
    size_t i;

    for (i = 0; i < b->nwriters; i++)
        if (b->writers[i].state == W_BLOCKED && (t == 0 || b->writers[i].wait_id < t))
            t = b->writers[i].wait_id;
    return t;
}

/*
 * Write phase: release writers whose event every subscriber has, start idle
 * writers, and move to the drain once every write has finished.
 */
static int schedule(struct bench *b)
{
    struct writer *w;
    long long t, max_id = 0;
    size_t i;
    bool busy = false;

    for (;;) {
        t = lockstep_target(b);
        if (t != b->target)
            set_target(b, t);
        if (!t || b->reached < b->nsubs)
            break;
        for (i = 0; i < b->nwriters; i++)
            if (b->writers[i].state == W_BLOCKED && b->writers[i].wait_id <= t)
                b->writers[i].state = W_IDLE;
    }
    if (b->target && now_ns() - b->target_ns > b->o.timeout_ms * 1000000LL) {
        fprintf(stderr,
                "bench_sse: lockstep: event %lld reached %zu of %zu subscribers in %ld ms\n",
                b->target, b->reached, b->nsubs, b->o.timeout_ms);
        b->lockstep_timeout = true;
        return -1;
    }
    for (i = 0; i < b->nwriters; i++) {
        w = &b->writers[i];
        if (w->state == W_IDLE && (size_t)b->o.writes <= b->nwrites)
            w->state = W_DONE;
        if (w->state == W_IDLE && writer_start(b, w) < 0) {
            fprintf(stderr, "bench_sse: cannot start writer %u\n", w->idx);
            b->setup_errors++;
            return -1;
        }
        busy |= w->state != W_DONE;
    }
    if (busy)
        return 0;
    for (i = 0; i < b->nwrites; i++)
        if (b->writes[i].event_id > max_id)
            max_id = b->writes[i].event_id;
    b->phase = PH_DRAIN;
    set_target(b, max_id);
    return 0;
}

/* ---- libcurl multi_socket glue -------------------------------------------- */

static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct bench *b = userp;
    struct epoll_event ev;

    (void)e;
    if (what == CURL_POLL_REMOVE) {
        /* libcurl may already have closed it, which removed it from the set. */
        epoll_ctl(b->epfd, EPOLL_CTL_DEL, fd, NULL);
        return 0;
    }
    memset(&ev, 0, sizeof(ev));
    ev.data.fd = fd;
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
    if (!socketp) {
        if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 && errno == EEXIST)
            epoll_ctl(b->epfd, EPOLL_CTL_MOD, fd, &ev);
        curl_multi_assign(b->multi, fd, &g_assigned);
    } else {
        epoll_ctl(b->epfd, EPOLL_CTL_MOD, fd, &ev);
    }
    return 0;
}

static int on_timer(CURLM *m, long ms, void *userp)
{
    struct bench *b = userp;

    (void)m;
    b->timer_at = ms < 0 ? -1 : now_ns() + ms * 1000000LL;
    return 0;
}

/* Read the server's state letter from /proc/PID/stat: 0 = gone. */
static char proc_state(long pid)
{
    char path[64], line[512], *p;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    f = fopen(path, "r");
    if (!f)
        return 0;
    p = fgets(line, sizeof(line), f);
    fclose(f);
    if (!p || (p = strrchr(line, ')')) == NULL || p[1] != ' ')
        return 0;
    return p[2];
}

static void sub_done(struct bench *b, struct sub *s, CURLcode result)
{
    long status = 0;
    long long t = clock_ns(CLOCK_REALTIME);

    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
    if (b->phase == PH_HOLD) {
        /* A clean chunked end is CURLE_OK; a close without the last chunk is
           CURLE_PARTIAL_FILE, a reset CURLE_RECV_ERROR. */
        if (result == CURLE_OK)
            b->hold_clean++;
        else if (result == CURLE_PARTIAL_FILE)
            b->hold_partial++;
        else
            b->hold_error++;
        if (!b->hold_first_end)
            b->hold_first_end = t;
        b->hold_last_end = t;
    } else if (!s->ready) {
        b->streams_failed++;
        if (b->streams_failed <= BENCH_REPORT_ERRORS && !s->refused)
            fprintf(stderr, "bench_sse: subscriber %u: %s (status %ld)\n", s->idx,
                    s->errbuf[0] ? s->errbuf : curl_easy_strerror(result), status);
    } else {
        b->streams_ended++;
        if (b->streams_ended <= BENCH_REPORT_ERRORS)
            fprintf(stderr, "bench_sse: subscriber %u: stream ended early: %s\n", s->idx,
                    s->p.broken          ? "an SSE line or data field exceeded its cap"
                    : result == CURLE_OK ? "the server ended it"
                    : s->errbuf[0]       ? s->errbuf
                                         : curl_easy_strerror(result));
    }
    sub_dead(b, s);
}

/* Finished transfers: subscribers that ended, writers whose response is in.  Returns how many. */
static int drain_messages(struct bench *b)
{
    CURLMsg *msg;
    char *priv;
    CURL *e;
    CURLcode result;
    int q, done = 0;
    size_t i;

    while ((msg = curl_multi_info_read(b->multi, &q)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        done++;
        e = msg->easy_handle;
        result = msg->data.result;
        priv = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        curl_multi_remove_handle(b->multi, e);
        if (priv && priv[0] == 's') {
            for (i = 0; i < b->nsubs && b->subs[i].easy != e; i++)
                ;
            if (i < b->nsubs)
                sub_done(b, &b->subs[i], result);
        } else {
            for (i = 0; i < b->nwriters && b->writers[i].easy != e; i++)
                ;
            if (i < b->nwriters)
                writer_done(b, &b->writers[i], result);
        }
    }
    return done;
}

/* One turn of the loop: wait at most max_ms, then let libcurl run. */
static void loop_once(struct bench *b, long max_ms)
{
    struct epoll_event evs[BENCH_EPOLL_BATCH];
    long long now = now_ns(), wait_ms = max_ms;
    int n, i, mask, running;

    /* A transfer can complete inside the socket action that started it (the
       writer's kick); its message must not wait for the next wake-up. */
    if (drain_messages(b) > 0)
        return;
    if (b->timer_at >= 0) {
        long long t = (b->timer_at - now + 999999) / 1000000;

        if (t < wait_ms)
            wait_ms = t < 0 ? 0 : t;
    }
    n = epoll_wait(b->epfd, evs, BENCH_EPOLL_BATCH, (int)wait_ms);
    for (i = 0; i < n; i++) {
        mask = 0;
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))
            mask |= CURL_CSELECT_IN;
        if (evs[i].events & EPOLLOUT)
            mask |= CURL_CSELECT_OUT;
        if (evs[i].events & EPOLLERR)
            mask |= CURL_CSELECT_ERR;
        curl_multi_socket_action(b->multi, evs[i].data.fd, mask, &running);
    }
    if (b->timer_at >= 0 && now_ns() >= b->timer_at) {
        b->timer_at = -1;
        curl_multi_socket_action(b->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    drain_messages(b);
}

/* ---- measurements -------------------------------------------------------------- */

/* VmRSS of pid in kB, or -1. */
static long long proc_rss_kb(long pid)
{
    char path[64], line[256], *end;
    long long kb = -1;
    FILE *f;

    if (pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            errno = 0;
            kb = strtoll(line + 6, &end, 10);
            if (errno || end == line + 6)
                kb = -1;
            break;
        }
    fclose(f);
    return kb;
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

/* Busy time of all CPUs from /proc/stat in microseconds (idle, iowait excluded), or -1. */
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

/*
 * GET /health on its own blocking handle; returns the parsed document or
 * NULL.  Used only between phases, where a few ms of not reading the
 * streams costs nothing that is measured.
 */
static cJSON *get_health(const struct bench *b)
{
    struct writer tmp; /* only its response buffer is used */
    char url[BENCH_MAX_URL];
    long status = 0;
    cJSON *doc = NULL;
    CURL *e = curl_easy_init();

    memset(&tmp, 0, sizeof(tmp));
    snprintf(url, sizeof(url), "%s/health", b->base);
    if (e && easy_common(e, b->o.timeout_ms) == 0 &&
        curl_easy_setopt(e, CURLOPT_URL, url) == CURLE_OK &&
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, b->o.timeout_ms) == CURLE_OK &&
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &tmp) == CURLE_OK &&
        curl_easy_perform(e) == CURLE_OK &&
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 200)
        doc = cJSON_ParseWithLength(tmp.resp, tmp.resp_len);
    free(tmp.resp);
    curl_easy_cleanup(e);
    return doc;
}

/* health.events.<key> as a number, or -1. */
static long long health_events(const cJSON *doc, const char *key)
{
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(doc, "events");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ev, key);

    return cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;

    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array. */
static long long pct(const long long *v, size_t n, double p)
{
    size_t rank;

    if (n == 0)
        return 0;
    rank = (size_t)ceil(p / 100.0 * (double)n);
    if (rank < 1)
        rank = 1;
    return v[rank - 1];
}

/* Sort v and print NAME_p50/_p90/_p99/_max in µs (v holds ns). */
static void print_dist(const char *name, long long *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_ll);
    printf("%s_p50: %lld\n", name, pct(v, n, 50) / 1000);
    printf("%s_p90: %lld\n", name, pct(v, n, 90) / 1000);
    printf("%s_p99: %lld\n", name, pct(v, n, 99) / 1000);
    printf("%s_max: %lld\n", name, n ? v[n - 1] / 1000 : 0);
}

/* Event id -> write index, for the ok writes, sorted by id. */
struct id_index {
    long long id;
    size_t w;
};

static int cmp_idx(const void *a, const void *b)
{
    long long x = ((const struct id_index *)a)->id, y = ((const struct id_index *)b)->id;

    return (x > y) - (x < y);
}

/* Position of id in ix, or -1. */
static long long find_pos(const struct id_index *ix, size_t n, long long id)
{
    size_t lo = 0, hi = n, mid;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        if (ix[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && ix[lo].id == id ? (long long)lo : -1;
}

/* Subscriber 0 keeps the data of every event: it must describe that write. */
static bool data_matches(const struct bench *b, const char *data, long long id, size_t wi)
{
    static const char *const scratch[BENCH_SCRATCH_ITEMS] = {
        "/scratch/s01.png", "/scratch/s02.png", "/scratch/s03.png", "/scratch/s04.png",
        "/scratch/s05.png", "/scratch/s06.png", "/scratch/s07.png", "/scratch/s08.png",
        "/scratch/s09.png", "/scratch/s10.png", "/scratch/s11.png", "/scratch/s12.png"};
    const struct write_rec *wr = &b->writes[wi];
    char key[96];
    cJSON *doc = data ? cJSON_Parse(data) : NULL;
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(doc, "path");
    const cJSON *mid = cJSON_GetObjectItemCaseSensitive(doc, "mutation_id");
    bool ok;

    snprintf(key, sizeof(key), "bench-sse-%llu-%zu", b->run_id, wi);
    ok = doc && json_int(doc, "event_id") == id && json_int(doc, "version") == wr->version &&
         cJSON_IsString(path) && strcmp(path->valuestring, scratch[wr->item]) == 0 &&
         cJSON_IsString(mid) && strcmp(mid->valuestring, key) == 0;
    cJSON_Delete(doc);
    return ok;
}

struct verdict {
    size_t expected; /* ok writes = events every subscriber must get */
    uint64_t deliveries;
    uint64_t missing;
    uint64_t duplicates;
    uint64_t out_of_order;
    uint64_t foreign;
    uint64_t resyncs;
    uint64_t bad_id;
    uint64_t no_id;
    uint64_t overflow;
    uint64_t presence;
    uint64_t other;
    uint64_t comments;
    uint64_t data_mismatch;
    uint64_t parse_broken;
    uint64_t id_gaps; /* ok writes whose ids are not consecutive: informational */
};

/*
 * Walk every subscriber's records against the writers' event ids, filling
 * the counts and the latency arrays (ns).  ev_first/ev_last are per write.
 */
static int analyse(struct bench *b, struct verdict *v, long long **lat_send, long long **lat_ack,
                   size_t *nlat, long long **ev_last_send, long long **ev_last_ack,
                   long long **ev_first_send, size_t *nev)
{
    struct id_index *ix = NULL;
    long long *first = NULL, *last = NULL, *ls = NULL, *la = NULL;
    long long *els = NULL, *ela = NULL, *efs = NULL, wi, pos, prev;
    unsigned char *seen = NULL;
    size_t i, k, n = 0, got, total = 0;
    struct sub *s;
    struct rec *r;
    int ret = -1;

    memset(v, 0, sizeof(*v));
    for (i = 0; i < b->nwrites; i++)
        n += b->writes[i].event_id != 0;
    for (i = 0; i < b->nsubs; i++)
        total += b->subs[i].nrec;
    ix = calloc(n ? n : 1, sizeof(*ix));
    first = calloc(n ? n : 1, sizeof(*first));
    last = calloc(n ? n : 1, sizeof(*last));
    seen = calloc(n ? n : 1, 1);
    ls = calloc(total ? total : 1, sizeof(*ls));
    la = calloc(total ? total : 1, sizeof(*la));
    els = calloc(n ? n : 1, sizeof(*els));
    ela = calloc(n ? n : 1, sizeof(*ela));
    efs = calloc(n ? n : 1, sizeof(*efs));
    if (!ix || !first || !last || !seen || !ls || !la || !els || !ela || !efs) {
        free(ls);
        free(la);
        free(els);
        free(ela);
        free(efs);
        goto out;
    }
    for (i = 0, k = 0; i < b->nwrites; i++)
        if (b->writes[i].event_id) {
            ix[k].id = b->writes[i].event_id;
            ix[k++].w = i;
        }
    qsort(ix, n, sizeof(*ix), cmp_idx);
    for (k = 1; k < n; k++)
        v->id_gaps += ix[k].id != ix[k - 1].id + 1;
    v->expected = n;
    *nlat = 0;
    for (i = 0; i < b->nsubs; i++) {
        s = &b->subs[i];
        memset(seen, 0, n ? n : 1);
        got = 0;
        prev = 0;
        for (k = 0; k < s->nrec; k++) {
            r = &s->recs[k];
            pos = find_pos(ix, n, r->id);
            if (pos < 0) {
                v->foreign++;
                if (r->id <= prev)
                    v->out_of_order++;
            } else {
                wi = (long long)ix[pos].w;
                if (seen[pos]) {
                    v->duplicates++;
                } else {
                    seen[pos] = 1;
                    got++;
                    v->deliveries++;
                    if (r->id <= prev)
                        v->out_of_order++;
                    ls[*nlat] = r->ns - b->writes[wi].send_ns;
                    la[*nlat] = r->ns - b->writes[wi].done_ns;
                    (*nlat)++;
                    if (!first[pos] || r->ns < first[pos])
                        first[pos] = r->ns;
                    if (r->ns > last[pos])
                        last[pos] = r->ns;
                    if (s->datas && !data_matches(b, s->datas[k], r->id, (size_t)wi))
                        v->data_mismatch++;
                }
            }
            if (r->id > prev)
                prev = r->id;
        }
        v->missing += n - got;
        v->resyncs += s->resyncs;
        v->bad_id += s->bad_id;
        v->no_id += s->no_id;
        v->overflow += s->overflow;
        v->presence += s->presence;
        v->other += s->other;
        v->comments += s->comments;
        v->parse_broken += s->p.broken;
    }
    *nev = 0;
    for (k = 0; k < n; k++) {
        if (!last[k])
            continue;
        els[*nev] = last[k] - b->writes[ix[k].w].send_ns;
        ela[*nev] = last[k] - b->writes[ix[k].w].done_ns;
        efs[*nev] = first[k] - b->writes[ix[k].w].send_ns;
        (*nev)++;
    }
    *lat_send = ls;
    *lat_ack = la;
    *ev_last_send = els;
    *ev_last_ack = ela;
    *ev_first_send = efs;
    ret = 0;
out:
    free(ix);
    free(first);
    free(last);
    free(seen);
    return ret;
}

static const char *pace_name(enum pace p)
{
    return p == PACE_LOCKSTEP ? "lockstep" : "burst";
}

/* Print the report; returns true when every check passed. */
static bool report(struct bench *b, const struct verdict *v, long long *ls, long long *la,
                   size_t nlat, long long *els, long long *ela, long long *efs, size_t nev,
                   const long long rss[3], const struct cpu_snap *c0, const struct cpu_snap *c1,
                   double connect_ms, double wall_s, long long h_subs, long long h_resync,
                   long long h_lagging)
{
    long long *rtt = calloc(b->nwrites ? b->nwrites : 1, sizeof(*rtt));
    double window = 0, wsecs = 0, deliv = (double)(v->deliveries ? v->deliveries : 1);
    size_t i, nrtt = 0;
    uint64_t expected_total = (uint64_t)v->expected * b->nsubs;
    bool pass;

    if (b->first_send_ns && b->last_done_ns)
        wsecs = (double)(b->last_done_ns - b->first_send_ns) / 1e9;
    if (b->first_send_ns && b->last_recv_ns > b->first_send_ns)
        window = (double)(b->last_recv_ns - b->first_send_ns) / 1e9;
    printf("pace: %s\n", pace_name(b->o.pace));
    printf("subscribers: %zu\n", b->nsubs);
    printf("writers: %zu\n", b->nwriters);
    printf("writes: %zu\n", b->nwrites);
    printf("writes_ok: %zu\n", v->expected);
    printf("write_errors: %" PRIu64 "\n", b->write_errors);
    printf("write_409: %" PRIu64 "\n", b->write_409);
    printf("events_expected_per_subscriber: %zu\n", v->expected);
    printf("deliveries_expected: %" PRIu64 "\n", expected_total);
    printf("deliveries: %" PRIu64 "\n", v->deliveries);
    printf("missing: %" PRIu64 "\n", v->missing);
    printf("duplicates: %" PRIu64 "\n", v->duplicates);
    printf("out_of_order: %" PRIu64 "\n", v->out_of_order);
    printf("foreign_events: %" PRIu64 "\n", v->foreign);
    printf("resyncs: %" PRIu64 "\n", v->resyncs);
    printf("streams_failed: %" PRIu64 "\n", b->streams_failed);
    printf("streams_ended: %" PRIu64 "\n", b->streams_ended);
    printf("bad_ids: %" PRIu64 "\n", v->bad_id + v->no_id);
    printf("data_mismatch: %" PRIu64 "\n", v->data_mismatch);
    printf("record_overflow: %" PRIu64 "\n", v->overflow);
    printf("parse_cap_exceeded: %" PRIu64 "\n", v->parse_broken);
    printf("presence_events: %" PRIu64 "\n", v->presence);
    printf("other_events: %" PRIu64 "\n", v->other);
    printf("keepalive_comments: %" PRIu64 "\n", v->comments);
    printf("event_id_gaps: %" PRIu64 "\n", v->id_gaps);
    printf("lockstep_timeout: %d\n", b->lockstep_timeout);
    printf("drain_timeout: %d\n", b->drain_timeout);
    printf("connect_ms: %.1f\n", connect_ms);
    printf("write_seconds: %.3f\n", wsecs);
    printf("writes_per_s: %.1f\n", wsecs > 0 ? (double)b->writes_done / wsecs : 0.0);
    printf("drain_ms: %.1f\n", b->last_recv_ns > b->last_done_ns
                                   ? (double)(b->last_recv_ns - b->last_done_ns) / 1e6
                                   : 0.0);
    printf("deliveries_per_s: %.0f\n", window > 0 ? (double)v->deliveries / window : 0.0);
    for (i = 0; rtt && i < b->nwrites; i++)
        if (b->writes[i].done_ns)
            rtt[nrtt++] = b->writes[i].done_ns - b->writes[i].send_ns;
    if (rtt)
        print_dist("patch_rtt_us", rtt, nrtt);
    free(rtt);
    print_dist("latency_send_us", ls, nlat);
    print_dist("latency_ack_us", la, nlat);
    print_dist("event_last_send_us", els, nev);
    print_dist("event_last_ack_us", ela, nev);
    print_dist("event_first_send_us", efs, nev);
    printf("wall_seconds: %.3f\n", wall_s);
    printf("server_rss_kb_before: %lld\n", rss[0]);
    printf("server_rss_kb_connected: %lld\n", rss[1]);
    printf("server_rss_kb_after: %lld\n", rss[2]);
    if (rss[0] >= 0 && rss[1] >= 0)
        printf("server_rss_bytes_per_subscriber: %.0f\n",
               (double)(rss[1] - rss[0]) * 1024.0 / (double)b->nsubs);
    printf("health_subscribers_connected: %lld\n", h_subs);
    printf("health_resync_total: %lld\n", h_resync);
    printf("health_lagging_closed_total: %lld\n", h_lagging);
    /* CPU over the write and drain phases; 100 = one full CPU. */
    if (window > 0 && c0->self_us >= 0 && c1->self_us >= 0) {
        printf("client_cpu_pct: %.0f\n", (double)(c1->self_us - c0->self_us) / (window * 1e4));
        printf("client_cpu_us_per_delivery: %.2f\n", (double)(c1->self_us - c0->self_us) / deliv);
    }
    if (window > 0 && c0->server_us >= 0 && c1->server_us >= 0) {
        printf("server_cpu_pct: %.0f\n", (double)(c1->server_us - c0->server_us) / (window * 1e4));
        printf("server_cpu_us_per_delivery: %.2f\n",
               (double)(c1->server_us - c0->server_us) / deliv);
    }
    if (window > 0 && c0->machine_us >= 0 && c1->machine_us >= 0)
        printf("machine_cpu_pct: %.0f\n",
               (double)(c1->machine_us - c0->machine_us) / (window * 1e4));
    pass = !b->aborted && !b->setup_errors && b->nwrites == (size_t)b->o.writes &&
           !b->write_errors && !b->write_409 && v->expected == (size_t)b->o.writes &&
           v->deliveries == expected_total && !v->missing && !v->duplicates && !v->out_of_order &&
           !v->foreign && !v->resyncs && !b->streams_failed && !b->streams_ended && !v->bad_id &&
           !v->no_id && !v->data_mismatch && !v->overflow && !v->parse_broken &&
           !b->lockstep_timeout && !b->drain_timeout;
    printf("result: %s\n", pass ? "pass" : "FAIL");
    return pass;
}

/* ---- set-up and the run ------------------------------------------------------- */

static int setup(struct bench *b)
{
    static const char *const scratch[BENCH_SCRATCH_ITEMS] = {
        "/scratch/s01.png", "/scratch/s02.png", "/scratch/s03.png", "/scratch/s04.png",
        "/scratch/s05.png", "/scratch/s06.png", "/scratch/s07.png", "/scratch/s08.png",
        "/scratch/s09.png", "/scratch/s10.png", "/scratch/s11.png", "/scratch/s12.png"};
    char url[BENCH_MAX_URL];
    size_t i, len;
    char *esc;
    struct sub *s;
    struct writer *w;
    CURLcode rc;

    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    b->multi = curl_multi_init();
    b->nsubs = (size_t)b->o.subscribers;
    b->nwriters = (size_t)b->o.writers;
    b->subs = calloc(b->nsubs, sizeof(*b->subs));
    b->writes = calloc((size_t)b->o.writes, sizeof(*b->writes));
    b->timer_at = -1;
    b->run_id = (unsigned long long)clock_ns(CLOCK_REALTIME);
    if (b->epfd < 0 || !b->multi || !b->subs || !b->writes)
        return -1;
    curl_multi_setopt(b->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(b->multi, CURLMOPT_SOCKETDATA, b);
    curl_multi_setopt(b->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(b->multi, CURLMOPT_TIMERDATA, b);
    /* Every stream is its own connection; keep the writers' idle ones too. */
    curl_multi_setopt(b->multi, CURLMOPT_MAXCONNECTS, (long)(b->nsubs + b->nwriters + 4));
    curl_multi_setopt(b->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    for (i = 0; i < BENCH_SCRATCH_ITEMS; i++) {
        esc = curl_easy_escape(NULL, scratch[i], 0);
        if (!esc)
            return -1;
        len = strlen(b->base) + strlen(esc) + sizeof("/item?path=");
        b->item_urls[i] = malloc(len);
        if (b->item_urls[i])
            snprintf(b->item_urls[i], len, "%s/item?path=%s", b->base, esc);
        curl_free(esc);
        if (!b->item_urls[i])
            return -1;
    }
    /* Item i belongs to writer i % N, so no two writers ever race on one item. */
    for (i = 0; i < BENCH_SCRATCH_ITEMS; i++) {
        w = &b->writers[i % b->nwriters];
        w->items[w->nitems++] = (unsigned)i;
    }
    for (i = 0; i < b->nwriters; i++) {
        w = &b->writers[i];
        w->idx = (unsigned)i;
        w->easy = curl_easy_init();
        rc = CURLE_OK;
        if (!w->easy || easy_common(w->easy, b->o.timeout_ms) < 0)
            return -1;
        rc |= curl_easy_setopt(w->easy, CURLOPT_TIMEOUT_MS, b->o.timeout_ms);
        rc |= curl_easy_setopt(w->easy, CURLOPT_WRITEFUNCTION, on_body);
        rc |= curl_easy_setopt(w->easy, CURLOPT_WRITEDATA, w);
        rc |= curl_easy_setopt(w->easy, CURLOPT_PRIVATE, "w");
        rc |= curl_easy_setopt(w->easy, CURLOPT_ERRORBUFFER, w->errbuf);
        if (rc != CURLE_OK)
            return -1;
    }
    snprintf(url, sizeof(url), "%s/events", b->base);
    for (i = 0; i < b->nsubs; i++) {
        s = &b->subs[i];
        s->b = b;
        s->idx = (unsigned)i;
        s->caprec = (size_t)b->o.writes + BENCH_EXTRA_RECORDS;
        s->recs = malloc(s->caprec * sizeof(*s->recs));
        if (i == 0)
            s->datas = calloc(s->caprec, sizeof(*s->datas));
        s->easy = curl_easy_init();
        if (!s->recs || (i == 0 && !s->datas) || !s->easy ||
            easy_common(s->easy, b->o.connect_ms) < 0)
            return -1;
        rc = CURLE_OK;
        /* No CURLOPT_TIMEOUT: a stream lives as long as the run; the loop's
           deadlines bound it instead. */
        rc |= curl_easy_setopt(s->easy, CURLOPT_URL, url);
        rc |= curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_stream);
        rc |= curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
        rc |= curl_easy_setopt(s->easy, CURLOPT_PRIVATE, "s");
        rc |= curl_easy_setopt(s->easy, CURLOPT_ERRORBUFFER, s->errbuf);
        if (rc != CURLE_OK)
            return -1;
    }
    return 0;
}

static void teardown(struct bench *b)
{
    size_t i, k;

    for (i = 0; b->subs && i < b->nsubs; i++) {
        if (b->subs[i].easy) {
            curl_multi_remove_handle(b->multi, b->subs[i].easy);
            curl_easy_cleanup(b->subs[i].easy);
        }
        for (k = 0; b->subs[i].datas && k < b->subs[i].nrec; k++)
            free(b->subs[i].datas[k]);
        free(b->subs[i].datas);
        free(b->subs[i].recs);
        free(b->subs[i].p.line);
        free(b->subs[i].p.data);
    }
    for (i = 0; i < b->nwriters; i++) {
        if (b->writers[i].easy) {
            curl_multi_remove_handle(b->multi, b->writers[i].easy);
            curl_easy_cleanup(b->writers[i].easy);
        }
        curl_slist_free_all(b->writers[i].headers);
        free(b->writers[i].resp);
    }
    curl_multi_cleanup(b->multi);
    if (b->epfd >= 0)
        close(b->epfd);
    for (i = 0; i < BENCH_SCRATCH_ITEMS; i++)
        free(b->item_urls[i]);
    free(b->subs);
    free(b->writes);
}

/*
 * Keep the streams open until every one has ended and (with --server-pid)
 * the server has exited, or the hold runs out.  The caller stops the server
 * meanwhile; it compares its own kill time with the CLOCK_REALTIME stamps.
 */
static void hold(struct bench *b)
{
    long long end = now_ns() + (long long)(b->o.hold_seconds * 1e9);
    size_t open_at_start = b->nsubs - b->dead;
    char st;

    b->phase = PH_HOLD;
    printf("hold: ready\n");
    fflush(stdout);
    while (!g_stop && now_ns() < end) {
        if (b->o.server_pid > 0 && !b->hold_server_exit) {
            st = proc_state(b->o.server_pid);
            if (st == 0 || st == 'Z' || st == 'X')
                b->hold_server_exit = clock_ns(CLOCK_REALTIME);
        }
        if (b->dead == b->nsubs && (b->o.server_pid <= 0 || b->hold_server_exit))
            break;
        /* 1 ms ticks while the server may be going away, for the exit stamp. */
        loop_once(b, BENCH_HOLD_TICK_MS);
    }
    printf("hold_streams_open_at_start: %zu\n", open_at_start);
    printf("hold_streams_ended_clean: %" PRIu64 "\n", b->hold_clean);
    printf("hold_streams_ended_partial: %" PRIu64 "\n", b->hold_partial);
    printf("hold_streams_ended_error: %" PRIu64 "\n", b->hold_error);
    printf("hold_streams_still_open: %zu\n", b->nsubs - b->dead);
    printf("hold_first_end_unix_ns: %lld\n", b->hold_first_end);
    printf("hold_last_end_unix_ns: %lld\n", b->hold_last_end);
    printf("hold_server_exit_unix_ns: %lld\n", b->hold_server_exit);
}

static int run(struct bench *b)
{
    struct cpu_snap c0, c1;
    struct verdict v;
    long long rss[3], start, deadline, connect_end, h_subs = -1, h_resync = -1;
    long long h_lagging = -1, *ls = NULL, *la = NULL, *els = NULL, *ela = NULL, *efs = NULL;
    size_t i, nlat = 0, nev = 0;
    double connect_ms = 0;
    cJSON *h;
    bool pass;

    start = now_ns();
    deadline = start + (long long)(b->o.max_seconds * 1e9);
    rss[0] = proc_rss_kb(b->o.server_pid);
    rss[1] = rss[2] = -1;

    /* Connect: every subscriber must see its retry: line within the bound. */
    connect_end = start + b->o.connect_ms * 1000000LL;
    for (i = 0; i < b->nsubs; i++)
        if (curl_multi_add_handle(b->multi, b->subs[i].easy) != CURLM_OK) {
            fprintf(stderr, "bench_sse: cannot add subscriber %zu\n", i);
            return 1;
        }
    while (!g_stop && b->ready + b->dead < b->nsubs && now_ns() < connect_end &&
           now_ns() < deadline)
        loop_once(b, BENCH_TICK_MS);
    connect_ms = (double)(now_ns() - start) / 1e6;
    if (b->ready < b->nsubs) {
        fprintf(stderr, "bench_sse: %zu of %zu subscribers saw retry: within %.0f ms\n", b->ready,
                b->nsubs, connect_ms);
        b->aborted = true;
    }
    rss[1] = proc_rss_kb(b->o.server_pid);
    if ((h = get_health(b)) != NULL) {
        h_subs = health_events(h, "subscribers");
        cJSON_Delete(h);
    }

    /* Write and drain, in the same loop that reads the streams. */
    b->phase = PH_WRITE;
    cpu_snap_take(&c0, b->o.server_pid);
    while (!b->aborted && !g_stop && now_ns() < deadline && b->dead < b->nsubs) {
        if (b->phase == PH_WRITE && schedule(b) < 0)
            break;
        if (b->phase == PH_DRAIN) {
            if (b->reached >= b->nsubs)
                break;
            if (now_ns() - b->target_ns > b->o.timeout_ms * 1000000LL) {
                fprintf(stderr,
                        "bench_sse: drain: last event %lld reached %zu of %zu subscribers "
                        "within %ld ms of the last write\n",
                        b->target, b->reached, b->nsubs, b->o.timeout_ms);
                b->drain_timeout = true;
                break;
            }
        }
        loop_once(b, BENCH_TICK_MS);
    }
    if (g_stop || now_ns() >= deadline) {
        fprintf(stderr, "bench_sse: %s before the run completed\n",
                g_stop ? "interrupted" : "--max-seconds ran out");
        b->aborted = true;
    }
    cpu_snap_take(&c1, b->o.server_pid);
    rss[2] = proc_rss_kb(b->o.server_pid);
    if ((h = get_health(b)) != NULL) {
        h_resync = health_events(h, "resync_total");
        h_lagging = health_events(h, "lagging_closed_total");
        cJSON_Delete(h);
    }
    if (analyse(b, &v, &ls, &la, &nlat, &els, &ela, &efs, &nev) < 0) {
        fprintf(stderr, "bench_sse: out of memory in the analysis\n");
        return 1;
    }
    pass = report(b, &v, ls, la, nlat, els, ela, efs, nev, rss, &c0, &c1, connect_ms,
                  (double)(now_ns() - start) / 1e9, h_subs, h_resync, h_lagging);
    free(ls);
    free(la);
    free(els);
    free(ela);
    free(efs);
    if (b->o.hold_seconds > 0)
        hold(b);
    if (b->setup_errors)
        return 1;
    return pass ? 0 : 3;
}

/* Streams need one descriptor each: take the hard limit, and check it suffices. */
static int raise_nofile(long need)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            return -1;
    }
    if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)need > rl.rlim_cur) {
        fprintf(stderr, "bench_sse: need %ld descriptors, the limit is %llu\n", need,
                (unsigned long long)rl.rlim_cur);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct bench *b;
    struct sigaction sa;
    cJSON *h;
    int ret = 1;

    b = calloc(1, sizeof(*b));
    if (!b)
        return 1;
    b->epfd = -1;
    if (parse_opts(argc, argv, &b->o) < 0) {
        free(b);
        return 2;
    }
    if (raise_nofile(b->o.subscribers + b->o.writers + BENCH_FD_RESERVE) < 0) {
        free(b);
        return 1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "bench_sse: curl_global_init failed\n");
        free(b);
        return 1;
    }
    if (loopback_base(b->o.url, b->base, sizeof(b->base)) < 0)
        goto out;
    /* SIGINT/SIGTERM end the run early but still print what was measured. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (setup(b) < 0) {
        fprintf(stderr, "bench_sse: set-up failed (out of memory or libcurl)\n");
        goto out;
    }
    h = get_health(b);
    if (!h) {
        fprintf(stderr, "bench_sse: %s/health did not answer; is labelsyncd running?\n", b->base);
        goto out;
    }
    cJSON_Delete(h);
    ret = run(b);
out:
    teardown(b);
    curl_global_cleanup();
    free(b);
    return ret;
}
