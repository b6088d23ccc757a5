/*
 * fake_server.c - a scripted HTTP server for the runner's self-tests.
 *
 * Every response is chosen by the request itself, so one server process can
 * play "right" and "wrong" servers for every self-test case:
 *   GET /health                      fixed features list
 *   /echo?status=N&ctype=T&header=Name:Value&body=TEXT&body_hex=HEX&delay_ms=N
 *                                    exactly that response (any method)
 *   /reflect                         JSON description of the request received
 *   /counter?name=K                  first request 200, later ones 409
 *   /seq?name=K&after=N              503 for the first N requests, then 200
 *   /cookie?set=NAME=VALUE           Set-Cookie, 204
 *   /big?bytes=N                     N bytes of 'x'
 *   /item?path=P                     a tiny canonicalizer over a fixed item
 *                                    list (enough for vectors steps); a client
 *                                    id ending in "-wrong" gets wrong answers
 *   /sse?chunk=MS:TEXT&hex=MS:HEX&fill=MS:COUNT:TEXT&reflect=MS&chan=NAME&end=1&ctype=T
 *                                    a scripted text/event-stream: the pieces
 *                                    are sent in query order, each MS ms after
 *                                    the previous one (the first after the
 *                                    headers), as separate chunks; fill sends
 *                                    TEXT COUNT times; reflect sends an event
 *                                    "reflect" whose data describes the request
 *                                    (headers, query).  After the script the
 *                                    stream stays open (silent) unless end=1;
 *                                    chan=NAME lets /emit push more bytes
 *   /emit?chan=NAME&chunk=TEXT&hex=HEX&id=N&event=T&data=D
 *                                    push bytes (and then, when data is given,
 *                                    one event frame) to every open /sse
 *                                    stream of channel NAME; answers
 *                                    {"delivered": streams}
 *   /kv?key=K[&value=V]               with --root: read (404 when unset) or
 *                                    write the file ROOT/kv-K (synchronously,
 *                                    so it survives kill -9): {"key","value"}
 *   /die?code=N&after_ms=M           answer 200, then _exit(N) after M ms
 * Binds 127.0.0.1 on an ephemeral port (or --port N), prints the port on
 * stdout, and runs until SIGTERM/SIGINT.  Options for the lifecycle
 * self-tests (started by the runner's --server):
 *   --port N          bind this port
 *   --root DIR        the workspace: /kv files, and DIR/.fake.lock held with
 *                     flock for the process lifetime (a second server on DIR
 *                     exits 4 with "DIR/.fake.lock: workspace is locked")
 *   --no-lock         do not take the lock
 *   --fail TEXT       print "fake-server: TEXT" on stderr and exit 3 at once
 *   --exit0           exit 0 at once (a refusal that is not one)
 *   --never-ready     /health answers 503
 *   --slow-start MS   wait before listening
 *   --say TEXT        print TEXT on stderr when listening
 *   --ignore-term     keep running on SIGTERM (SIGINT still stops it)
 *   --term-status N   exit with status N after SIGTERM  Uses MHD's internal poll thread (never
 * epoll, see shared/reference/machine-limits.md).  A stream with nothing to send is suspended
 * (MHD_suspend_connection) and a ticker thread resumes it when its next piece is due or /emit
 * pushed bytes, so streams never busy-wait and never block other requests.  Every input is capped.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cJSON.h>
#include <microhttpd.h>

#include "buf.h"

#define FAKE_MAX_BODY     (1024 * 1024)      /* request body bytes kept */
#define FAKE_MAX_BIG      (32 * 1024 * 1024) /* /big response cap */
#define FAKE_MAX_DELAY_MS 5000
#define FAKE_MAX_COUNTERS 4096
#define FAKE_MAX_NAME     256
#define FAKE_MAX_PATH     4096
#define FAKE_MAX_SEGS     256
#define FAKE_MAX_CHUNKS   512               /* pieces of one /sse script */
#define FAKE_MAX_SSE      (4 * 1024 * 1024) /* bytes of one /sse script */
#define FAKE_MAX_PENDING  (1024 * 1024)     /* bytes pushed by /emit and not sent yet */
#define FAKE_MAX_STREAMS  512               /* /sse streams open at once */

/* Options (set once in main, read-only afterwards). */
static const char *opt_root;
static int opt_never_ready;

struct counter {
    char name[FAKE_MAX_NAME];
    unsigned long n;
};

static struct counter counters[FAKE_MAX_COUNTERS];
static size_t ncounters;
static pthread_mutex_t counters_lock = PTHREAD_MUTEX_INITIALIZER;

/* Per-request state: the body collected so far. */
struct req {
    struct buf body;
    int too_big;
};

/* Increment and return the hit count of name (1 for the first hit); 0 when the table is full. */
static unsigned long hit(const char *name)
{
    size_t i;
    unsigned long n = 0;

    pthread_mutex_lock(&counters_lock);
    for (i = 0; i < ncounters; i++) {
        if (!strcmp(counters[i].name, name)) {
            n = ++counters[i].n;
            break;
        }
    }
    if (i == ncounters && ncounters < FAKE_MAX_COUNTERS) {
        snprintf(counters[ncounters].name, FAKE_MAX_NAME, "%s", name);
        counters[ncounters].n = 1;
        ncounters++;
        n = 1;
    }
    pthread_mutex_unlock(&counters_lock);
    return n;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Form-decode s into out ('+' = space).  Returns 0, or -1 on a bad %-escape or a cap. */
static int form_decode(const char *s, struct buf *out)
{
    for (; *s; s++) {
        int rc;

        if (*s == '%') {
            int hi = hexval((unsigned char)s[1]), lo = hi < 0 ? -1 : hexval((unsigned char)s[2]);

            if (hi < 0 || lo < 0)
                return -1;
            rc = buf_appendc(out, (char)(hi * 16 + lo));
            s += 2;
        } else {
            rc = buf_appendc(out, *s == '+' ? ' ' : *s);
        }
        if (rc)
            return -1;
    }
    return 0;
}

/* MHD must not decode query values: /item and /reflect want the raw text. */
static size_t keep_raw(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

static const char *arg(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
}

/* The decoded value of a query argument (into b), or NULL. */
static const char *arg_dec(struct MHD_Connection *c, const char *name, struct buf *b)
{
    const char *v = arg(c, name);

    buf_reset(b);
    if (!v || form_decode(v, b) != 0)
        return NULL;
    return b->data ? b->data : "";
}

static enum MHD_Result send_buf(struct MHD_Connection *c, unsigned status, const char *ctype,
                                const void *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;

    if (!r)
        return MHD_NO;
    if (ctype)
        MHD_add_response_header(r, "Content-Type", ctype);
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    enum MHD_Result ret = s ? send_buf(c, status, "application/json", s, strlen(s)) : MHD_NO;

    free(s);
    cJSON_Delete(j);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *code,
                                  const char *reason)
{
    cJSON *j = cJSON_CreateObject();

    cJSON_AddStringToObject(j, "error", code);
    cJSON_AddStringToObject(j, "message", code);
    if (reason) {
        cJSON_AddStringToObject(j, "reason", reason);
        cJSON_AddStringToObject(j, "parameter", "path");
    }
    return send_json(c, status, j);
}

/* ------------------------------------------------------------------ handlers */

static enum MHD_Result do_health(struct MHD_Connection *c)
{
    static const char body[] = "{\"ok\":true,\"server\":\"fake\",\"version\":\"0\",\"protocol\":1,"
                               "\"features\":[\"items\",\"etag\",\"idempotency\",\"if-match\"]}";

    if (opt_never_ready)
        return send_error(c, 503, "starting", NULL);
    return send_buf(c, 200, "application/json", body, sizeof(body) - 1);
}

/* /kv: one small file per key in the workspace, written before the answer. */
static enum MHD_Result do_kv(struct MHD_Connection *c)
{
    const char *key = arg(c, "key"), *val = arg(c, "value");
    char path[FAKE_MAX_PATH], data[4096];
    cJSON *j;
    ssize_t n;
    int fd;

    if (!opt_root || !key || !*key || strlen(key) > 64 ||
        strspn(key, "abcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(key) ||
        (val && strlen(val) >= sizeof(data)))
        return send_error(c, 400, "bad_kv", NULL);
    snprintf(path, sizeof(path), "%s/kv-%s", opt_root, key);
    if (val) {
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, val, strlen(val)) != (ssize_t)strlen(val) || fsync(fd) != 0) {
            if (fd >= 0)
                close(fd);
            return send_error(c, 500, "kv_write_failed", NULL);
        }
        close(fd);
        n = (ssize_t)strlen(val);
        memcpy(data, val, (size_t)n);
    } else {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return send_error(c, 404, "kv_not_found", NULL);
        n = read(fd, data, sizeof(data) - 1);
        close(fd);
        if (n < 0)
            return send_error(c, 500, "kv_read_failed", NULL);
    }
    data[n] = '\0';
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "key", key);
    cJSON_AddStringToObject(j, "value", data);
    return send_json(c, 200, j);
}

static void *die_later(void *arg)
{
    long v = (long)(intptr_t)arg;

    usleep((useconds_t)(v >> 8) * 1000);
    _exit((int)(v & 0xff));
}

/* /die: answer, then exit with the code on our own after after_ms. */
static enum MHD_Result do_die(struct MHD_Connection *c)
{
    const char *code = arg(c, "code"), *after = arg(c, "after_ms");
    long v = (code ? strtol(code, NULL, 10) & 0xff : 1) |
             ((after ? strtol(after, NULL, 10) % 10000 : 50) << 8);
    pthread_t t;

    if (pthread_create(&t, NULL, die_later, (void *)(intptr_t)v) != 0)
        _exit((int)(v & 0xff));
    pthread_detach(t);
    return send_buf(c, 200, "application/json", "{\"dying\":true}", 14);
}

struct hdr_ctx {
    struct MHD_Response *r;
    int bad;
};

static enum MHD_Result add_echo_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
    struct hdr_ctx *h = cls;
    struct buf v;
    char *colon;

    (void)kind;
    if (strcmp(key, "header") || !value)
        return MHD_YES;
    buf_init(&v, 8192);
    if (form_decode(value, &v) == 0 && v.data && (colon = strchr(v.data, ':')) != NULL) {
        *colon = '\0';
        colon++;
        while (*colon == ' ')
            colon++;
        MHD_add_response_header(h->r, v.data, colon);
    } else {
        h->bad = 1;
    }
    buf_cleanup(&v);
    return MHD_YES;
}

static enum MHD_Result do_echo(struct MHD_Connection *c)
{
    struct buf body, tmp;
    const char *s;
    unsigned status = 200;
    struct MHD_Response *r;
    struct hdr_ctx h;
    enum MHD_Result ret;

    buf_init(&body, FAKE_MAX_BODY);
    buf_init(&tmp, FAKE_MAX_BODY);
    if ((s = arg(c, "status")) != NULL)
        status = (unsigned)strtoul(s, NULL, 10);
    if ((s = arg(c, "delay_ms")) != NULL) {
        unsigned long ms = strtoul(s, NULL, 10);
        struct timespec ts;

        if (ms > FAKE_MAX_DELAY_MS)
            ms = FAKE_MAX_DELAY_MS;
        ts.tv_sec = (time_t)(ms / 1000);
        ts.tv_nsec = (long)(ms % 1000) * 1000000L;
        nanosleep(&ts, NULL);
    }
    if ((s = arg_dec(c, "body", &tmp)) != NULL) {
        if (buf_append(&body, tmp.data ? tmp.data : "", tmp.len) != 0)
            status = 500;
    } else if ((s = arg(c, "body_hex")) != NULL) {
        size_t i;

        for (i = 0; s[i] && s[i + 1]; i += 2)
            if (buf_appendc(&body, (char)(hexval(s[i]) * 16 + hexval(s[i + 1]))) != 0)
                break;
    }
    r = MHD_create_response_from_buffer(body.len, body.data ? body.data : (void *)(uintptr_t) "",
                                        MHD_RESPMEM_MUST_COPY);
    if (!r) {
        buf_cleanup(&body);
        buf_cleanup(&tmp);
        return MHD_NO;
    }
    if ((s = arg_dec(c, "ctype", &tmp)) != NULL)
        MHD_add_response_header(r, "Content-Type", s);
    h.r = r;
    h.bad = 0;
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, add_echo_header, &h);
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    buf_cleanup(&body);
    buf_cleanup(&tmp);
    return ret;
}

struct collect {
    cJSON *obj;
    struct buf *raw;
    int lower;
};

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    struct collect *k = cls;
    char name[256];
    size_t i;

    (void)kind;
    for (i = 0; i < sizeof(name) - 1 && key[i]; i++)
        name[i] = (char)(key[i] >= 'A' && key[i] <= 'Z' ? key[i] + 32 : key[i]);
    name[i] = '\0';
    if (!cJSON_GetObjectItemCaseSensitive(k->obj, name))
        cJSON_AddStringToObject(k->obj, name, value ? value : "");
    return MHD_YES;
}

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct collect *k = cls;
    int rc = 0;

    (void)kind;
    if (k->raw->len)
        rc = buf_appendc(k->raw, '&');
    rc = rc ? rc : buf_appends(k->raw, key);
    if (!rc && value) {
        rc = buf_appendc(k->raw, '=');
        rc = rc ? rc : buf_appends(k->raw, value);
    }
    return rc ? MHD_NO : MHD_YES;
}

static enum MHD_Result do_reflect(struct MHD_Connection *c, const char *method, const char *url,
                                  struct req *rq)
{
    cJSON *j = cJSON_CreateObject(), *h = cJSON_CreateObject(), *parsed;
    struct buf raw, hex;
    struct collect k;
    size_t i;

    buf_init(&raw, FAKE_MAX_BODY);
    buf_init(&hex, 2 * FAKE_MAX_BODY + 1);
    k.obj = h;
    k.raw = &raw;
    MHD_get_connection_values(c, MHD_HEADER_KIND, collect_header, &k);
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_arg, &k);
    cJSON_AddStringToObject(j, "method", method);
    cJSON_AddStringToObject(j, "path", url);
    cJSON_AddStringToObject(j, "query", raw.data ? raw.data : "");
    cJSON_AddItemToObject(j, "headers", h);
    cJSON_AddNumberToObject(j, "body_len", (double)rq->body.len);
    for (i = 0; i < rq->body.len; i++)
        if (buf_appendf(&hex, "%02x", (unsigned char)rq->body.data[i]) != 0)
            break;
    cJSON_AddStringToObject(j, "body_hex", hex.data ? hex.data : "");
    if (rq->body.len && !memchr(rq->body.data, 0, rq->body.len))
        cJSON_AddStringToObject(j, "body", rq->body.data);
    else
        cJSON_AddStringToObject(j, "body", "");
    parsed = rq->body.len ? cJSON_ParseWithLength(rq->body.data, rq->body.len) : NULL;
    cJSON_AddItemToObject(j, "body_json", parsed ? parsed : cJSON_CreateNull());
    buf_cleanup(&raw);
    buf_cleanup(&hex);
    return send_json(c, 200, j);
}

static enum MHD_Result do_counter(struct MHD_Connection *c)
{
    struct buf b;
    const char *name;
    unsigned long n;
    cJSON *j = cJSON_CreateObject();

    buf_init(&b, FAKE_MAX_NAME - 1);
    name = arg_dec(c, "name", &b);
    n = hit(name ? name : "");
    buf_cleanup(&b);
    cJSON_AddNumberToObject(j, "n", (double)n);
    return send_json(c, n == 1 ? 200 : 409, j);
}

static enum MHD_Result do_seq(struct MHD_Connection *c)
{
    struct buf b;
    const char *name, *after = arg(c, "after");
    unsigned long n, lim = after ? strtoul(after, NULL, 10) : 0;
    cJSON *j = cJSON_CreateObject();

    buf_init(&b, FAKE_MAX_NAME - 1);
    name = arg_dec(c, "name", &b);
    n = hit(name ? name : "");
    buf_cleanup(&b);
    cJSON_AddNumberToObject(j, "attempt", (double)n);
    return send_json(c, n <= lim ? 503 : 200, j);
}

static enum MHD_Result do_cookie(struct MHD_Connection *c)
{
    struct buf b, v;
    const char *set;
    struct MHD_Response *r;
    enum MHD_Result ret;

    buf_init(&b, 4096);
    buf_init(&v, 4200);
    set = arg_dec(c, "set", &b);
    r = MHD_create_response_from_buffer(0, (void *)(uintptr_t) "", MHD_RESPMEM_PERSISTENT);
    if (!r) {
        buf_cleanup(&b);
        buf_cleanup(&v);
        return MHD_NO;
    }
    if (set && buf_appendf(&v, "%s; Path=/", set) == 0)
        MHD_add_response_header(r, "Set-Cookie", v.data);
    ret = MHD_queue_response(c, 204, r);
    MHD_destroy_response(r);
    buf_cleanup(&b);
    buf_cleanup(&v);
    return ret;
}

static ssize_t big_reader(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)cls;
    (void)pos;
    memset(out, 'x', max);
    return (ssize_t)max;
}

static enum MHD_Result do_big(struct MHD_Connection *c)
{
    const char *s = arg(c, "bytes");
    unsigned long n = s ? strtoul(s, NULL, 10) : 0;
    struct MHD_Response *r;
    enum MHD_Result ret;

    if (n > FAKE_MAX_BIG)
        n = FAKE_MAX_BIG;
    r = MHD_create_response_from_callback(n, 64 * 1024, big_reader, NULL, NULL);
    if (!r)
        return MHD_NO;
    ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static const char *const items[] = {"/cover.png",
                                    "/animals/cat.jpg",
                                    "/with space/a b.png",
                                    "/special/a+b.jpg",
                                    "/special/100%.png",
                                    "/unicode/caf\xc3\xa9.jpg",
                                    NULL};

struct count_ctx {
    int n;
};

static enum MHD_Result count_path(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    struct count_ctx *k = cls;

    (void)kind;
    (void)value;
    if (!strcmp(key, "path"))
        k->n++;
    return MHD_YES;
}

/* A deliberately small canonicalizer: enough to check the runner's vectors step. */
static enum MHD_Result do_item(struct MHD_Connection *c)
{
    const char *raw = arg(c, "path"), *cid;
    struct buf in, out;
    struct count_ctx k = {0};
    struct {
        const char *p;
        size_t len;
    } segs[FAKE_MAX_SEGS];
    size_t i, start, nseg = 0;
    int wrong;
    cJSON *j;
    enum MHD_Result ret;

    cid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Client-Id");
    wrong = cid && strlen(cid) > 6 && !strcmp(cid + strlen(cid) - 6, "-wrong");
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, count_path, &k);
    if (k.n > 1)
        return send_error(c, 400, "duplicate_parameter", NULL);
    if (!raw)
        return send_error(c, 400, "missing_parameter", NULL);
    if (wrong) {
        j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "path", "/wrong");
        return send_json(c, 200, j);
    }
    buf_init(&in, 64 * 1024);
    buf_init(&out, 64 * 1024);
    if (form_decode(raw, &in) != 0) {
        ret = send_error(c, 400, "invalid_path", "bad_percent_encoding");
        goto done;
    }
    if (in.len > FAKE_MAX_PATH) {
        ret = send_error(c, 400, "invalid_path", "too_long");
        goto done;
    }
    for (i = 0; i < in.len; i++) {
        unsigned char ch = (unsigned char)in.data[i];

        if (ch < 0x20 || ch == 0x7f) {
            ret = send_error(c, 400, "invalid_path", "control_char");
            goto done;
        }
        if (ch == '\\')
            in.data[i] = '/';
    }
    /* Split on '/', drop "" and ".", pop on "..", then join what is left. */
    for (start = 0, i = 0; i <= in.len; i++) {
        size_t len;
        const char *seg;

        if (i < in.len && in.data[i] != '/')
            continue;
        len = i - start;
        seg = in.data + start;
        start = i + 1;
        if (len == 0 || (len == 1 && seg[0] == '.'))
            continue;
        if (len == 2 && seg[0] == '.' && seg[1] == '.') {
            if (nseg == 0) {
                ret = send_error(c, 400, "invalid_path", "escapes_root");
                goto done;
            }
            nseg--;
            continue;
        }
        if (nseg == FAKE_MAX_SEGS) {
            ret = send_error(c, 400, "invalid_path", "too_many_segments");
            goto done;
        }
        segs[nseg].p = seg;
        segs[nseg].len = len;
        nseg++;
    }
    for (i = 0; i < nseg; i++) {
        if (buf_appendc(&out, '/') != 0 || buf_append(&out, segs[i].p, segs[i].len) != 0) {
            ret = send_error(c, 400, "invalid_path", "too_long");
            goto done;
        }
    }
    {
        const char *canon = out.len ? out.data : "/";
        int found = 0;

        for (i = 0; items[i]; i++)
            if (!strcmp(items[i], canon))
                found = 1;
        if (!found) {
            j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "error", "item_not_found");
            cJSON_AddStringToObject(j, "message", "no such item");
            cJSON_AddStringToObject(j, "path", canon);
            ret = send_json(c, 404, j);
            goto done;
        }
        j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "path", canon);
        cJSON_AddItemToObject(j, "tags", cJSON_CreateArray());
        cJSON_AddStringToObject(j, "notes", "");
        cJSON_AddNullToObject(j, "star");
        cJSON_AddItemToObject(j, "metrics", cJSON_CreateObject());
        cJSON_AddNumberToObject(j, "version", 1);
        cJSON_AddNullToObject(j, "updated_at");
        cJSON_AddNullToObject(j, "updated_by");
        ret = send_json(c, 200, j);
    }
done:
    buf_cleanup(&in);
    buf_cleanup(&out);
    return ret;
}

/* ------------------------------------------------------------------ event streams */

struct piece {
    unsigned long delay_ms;
    size_t off, len; /* in sse.script */
};

struct sse {
    struct MHD_Connection *conn;
    struct buf script;
    struct piece pieces[FAKE_MAX_CHUNKS];
    size_t npieces, next, sent; /* sent: bytes of pieces[next] already written */
    double due;                 /* when pieces[next] may go (monotonic ms) */
    int end;
    int suspended;
    int linked; /* in sse_list */
    char chan[FAKE_MAX_NAME];
    struct buf pending; /* pushed by /emit; pending.data[pend_off..len) not sent yet */
    size_t pend_off;
    struct sse *prev, *nxt;
};

/* Every open stream; the lock also guards each stream's state. */
static struct sse *sse_list;
static size_t sse_count;
static int sse_stopping;
static pthread_mutex_t sse_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sse_wake = PTHREAD_COND_INITIALIZER;

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* Something can be written (or the stream can end) now.  Caller holds sse_lock. */
static int sse_ready(const struct sse *st, double now)
{
    if (sse_stopping || st->pend_off < st->pending.len)
        return 1;
    if (st->next < st->npieces)
        return now >= st->due;
    return st->end;
}

static ssize_t sse_reader(void *cls, uint64_t pos, char *out, size_t max)
{
    struct sse *st = cls;
    double now = now_ms();
    ssize_t n = 0;

    (void)pos;
    pthread_mutex_lock(&sse_lock);
    if (sse_stopping) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else if (st->next < st->npieces && now >= st->due) {
        const struct piece *p = &st->pieces[st->next];
        size_t k = p->len - st->sent < max ? p->len - st->sent : max;

        memcpy(out, st->script.data + p->off + st->sent, k);
        st->sent += k;
        if (st->sent == p->len) {
            st->next++;
            st->sent = 0;
            if (st->next < st->npieces)
                st->due = now + (double)st->pieces[st->next].delay_ms;
        }
        n = (ssize_t)k;
    } else if (st->pend_off < st->pending.len) {
        size_t k = st->pending.len - st->pend_off < max ? st->pending.len - st->pend_off : max;

        memcpy(out, st->pending.data + st->pend_off, k);
        st->pend_off += k;
        if (st->pend_off == st->pending.len) {
            buf_reset(&st->pending);
            st->pend_off = 0;
        }
        n = (ssize_t)k;
    } else if (st->next >= st->npieces && st->end) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        /* Nothing due: park the connection until the ticker resumes it. */
        st->suspended = 1;
        MHD_suspend_connection(st->conn);
        pthread_cond_signal(&sse_wake);
    }
    pthread_mutex_unlock(&sse_lock);
    return n;
}

static void sse_free(void *cls)
{
    struct sse *st = cls;

    pthread_mutex_lock(&sse_lock);
    if (st->linked) {
        if (st->prev)
            st->prev->nxt = st->nxt;
        else
            sse_list = st->nxt;
        if (st->nxt)
            st->nxt->prev = st->prev;
        sse_count--;
    }
    pthread_mutex_unlock(&sse_lock);
    buf_cleanup(&st->script);
    buf_cleanup(&st->pending);
    free(st);
}

/* Resume every parked stream that has something to do; sleep until the next one is due. */
static void *sse_ticker(void *arg)
{
    struct MHD_Connection *go[FAKE_MAX_STREAMS];

    (void)arg;
    pthread_mutex_lock(&sse_lock);
    while (!sse_stopping) {
        double now = now_ms(), next = now + 1000;
        struct sse *st;
        struct timespec ts;
        size_t n = 0, i;

        for (st = sse_list; st; st = st->nxt) {
            if (!st->suspended)
                continue;
            if (sse_ready(st, now)) {
                st->suspended = 0;
                go[n++] = st->conn;
            } else if (st->next < st->npieces && st->due < next) {
                next = st->due;
            }
        }
        if (n) {
            /* A parked connection cannot be freed, so resuming outside the lock is safe. */
            pthread_mutex_unlock(&sse_lock);
            for (i = 0; i < n; i++)
                MHD_resume_connection(go[i]);
            pthread_mutex_lock(&sse_lock);
            continue;
        }
        clock_gettime(CLOCK_REALTIME, &ts);
        next -= now;
        ts.tv_sec += (time_t)(next / 1000);
        ts.tv_nsec += (long)((next - (double)(long)(next / 1000) * 1000) * 1e6);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&sse_wake, &sse_lock, &ts);
    }
    pthread_mutex_unlock(&sse_lock);
    return NULL;
}

/* Parse "MS:rest" (rest returned in *rest).  Returns 0 or -1. */
static int split_delay(const char *v, unsigned long *ms, const char **rest)
{
    char *end;

    if (*v < '0' || *v > '9')
        return -1;
    *ms = strtoul(v, &end, 10);
    if (*end != ':' || *ms > FAKE_MAX_DELAY_MS)
        return -1;
    *rest = end + 1;
    return 0;
}

/* Append hex pairs to out.  Returns 0 or -1. */
static int hex_append(struct buf *out, const char *h)
{
    for (; h[0] && h[1]; h += 2) {
        int hi = hexval((unsigned char)h[0]), lo = hexval((unsigned char)h[1]);

        if (hi < 0 || lo < 0 || buf_appendc(out, (char)(hi * 16 + lo)) != 0)
            return -1;
    }
    return *h ? -1 : 0;
}

struct script_ctx {
    struct MHD_Connection *c;
    struct sse *st;
    int bad;
};

static void reflect_event(struct MHD_Connection *c, struct buf *out)
{
    cJSON *j = cJSON_CreateObject(), *h = cJSON_CreateObject();
    struct buf raw;
    struct collect k;
    char *txt;

    buf_init(&raw, FAKE_MAX_BODY);
    k.obj = h;
    k.raw = &raw;
    MHD_get_connection_values(c, MHD_HEADER_KIND, collect_header, &k);
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_arg, &k);
    cJSON_AddItemToObject(j, "headers", h);
    cJSON_AddStringToObject(j, "query", raw.data ? raw.data : "");
    txt = cJSON_PrintUnformatted(j);
    if (!txt || buf_appendf(out, "event: reflect\ndata: %s\n\n", txt) != 0)
        buf_reset(out);
    free(txt);
    cJSON_Delete(j);
    buf_cleanup(&raw);
}

static enum MHD_Result script_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    struct script_ctx *k = cls;
    struct sse *st = k->st;
    struct buf v, piece;
    const char *rest = NULL;
    unsigned long ms = 0;

    (void)kind;
    if (strcmp(key, "chunk") && strcmp(key, "hex") && strcmp(key, "fill") && strcmp(key, "reflect"))
        return MHD_YES;
    buf_init(&v, FAKE_MAX_SSE);
    buf_init(&piece, FAKE_MAX_SSE);
    if (!value || form_decode(value, &v) != 0 || !v.data || st->npieces >= FAKE_MAX_CHUNKS) {
        k->bad = 1;
    } else if (!strcmp(key, "reflect")) {
        ms = strtoul(v.data, NULL, 10);
        reflect_event(k->c, &piece);
        k->bad = ms > FAKE_MAX_DELAY_MS || !piece.len;
    } else if (split_delay(v.data, &ms, &rest) != 0) {
        k->bad = 1;
    } else if (!strcmp(key, "chunk")) {
        k->bad = buf_appends(&piece, rest) != 0;
    } else if (!strcmp(key, "hex")) {
        k->bad = hex_append(&piece, rest) != 0;
    } else {
        char *end;
        unsigned long count = strtoul(rest, &end, 10), i;

        k->bad = *end != ':' || !end[1];
        for (i = 0; !k->bad && i < count; i++)
            k->bad = buf_appends(&piece, end + 1) != 0;
    }
    if (!k->bad && piece.len) {
        st->pieces[st->npieces].delay_ms = ms;
        st->pieces[st->npieces].off = st->script.len;
        st->pieces[st->npieces].len = piece.len;
        k->bad = buf_append(&st->script, piece.data, piece.len) != 0;
        st->npieces++;
    }
    buf_cleanup(&v);
    buf_cleanup(&piece);
    return k->bad ? MHD_NO : MHD_YES;
}

static enum MHD_Result do_sse(struct MHD_Connection *c)
{
    struct sse *st = calloc(1, sizeof(*st));
    struct script_ctx k;
    struct MHD_Response *r;
    struct buf tmp;
    const char *v;
    enum MHD_Result ret;

    if (!st)
        return MHD_NO;
    buf_init(&st->script, FAKE_MAX_SSE);
    buf_init(&st->pending, FAKE_MAX_PENDING);
    buf_init(&tmp, FAKE_MAX_NAME - 1);
    st->conn = c;
    k.c = c;
    k.st = st;
    k.bad = 0;
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, script_arg, &k);
    v = arg(c, "end");
    st->end = v && !strcmp(v, "1");
    if ((v = arg_dec(c, "chan", &tmp)) != NULL)
        snprintf(st->chan, sizeof(st->chan), "%s", v);
    if (k.bad) {
        buf_cleanup(&st->script);
        buf_cleanup(&st->pending);
        buf_cleanup(&tmp);
        free(st);
        return send_error(c, 400, "bad_script", NULL);
    }
    st->due = now_ms() + (st->npieces ? (double)st->pieces[0].delay_ms : 0);
    r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_reader, st, sse_free);
    if (!r) {
        buf_cleanup(&st->script);
        buf_cleanup(&st->pending);
        buf_cleanup(&tmp);
        free(st);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type",
                            (v = arg_dec(c, "ctype", &tmp)) != NULL ? v : "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    /* Registered before the headers go out, so an /emit after sse_open always reaches it. */
    pthread_mutex_lock(&sse_lock);
    if (sse_count >= FAKE_MAX_STREAMS) {
        pthread_mutex_unlock(&sse_lock);
        MHD_destroy_response(r); /* frees st */
        buf_cleanup(&tmp);
        return send_error(c, 503, "unavailable", NULL);
    }
    st->nxt = sse_list;
    if (sse_list)
        sse_list->prev = st;
    sse_list = st;
    st->linked = 1;
    sse_count++;
    pthread_mutex_unlock(&sse_lock);
    ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    buf_cleanup(&tmp);
    return ret;
}

struct emit_ctx {
    struct buf *bytes;
    int bad;
};

static enum MHD_Result emit_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    struct emit_ctx *k = cls;
    struct buf v;

    (void)kind;
    if (strcmp(key, "chunk") && strcmp(key, "hex"))
        return MHD_YES;
    buf_init(&v, FAKE_MAX_PENDING);
    if (!value || form_decode(value, &v) != 0)
        k->bad = 1;
    else if (!strcmp(key, "chunk"))
        k->bad = buf_append(k->bytes, v.data ? v.data : "", v.len) != 0;
    else
        k->bad = hex_append(k->bytes, v.data ? v.data : "") != 0;
    buf_cleanup(&v);
    return k->bad ? MHD_NO : MHD_YES;
}

static enum MHD_Result do_emit(struct MHD_Connection *c)
{
    struct buf bytes, chan, t;
    struct emit_ctx k;
    struct sse *st;
    const char *ch, *v;
    int delivered = 0;
    cJSON *j;

    buf_init(&bytes, FAKE_MAX_PENDING);
    buf_init(&chan, FAKE_MAX_NAME - 1);
    buf_init(&t, FAKE_MAX_PENDING);
    k.bytes = &bytes;
    k.bad = 0;
    ch = arg_dec(c, "chan", &chan);
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, emit_arg, &k);
    if (!k.bad && (v = arg_dec(c, "data", &t)) != NULL) {
        struct buf f;

        buf_init(&f, FAKE_MAX_NAME);
        if ((v = arg_dec(c, "id", &f)) != NULL)
            k.bad |= buf_appendf(&bytes, "id: %s\n", v) != 0;
        if ((v = arg_dec(c, "event", &f)) != NULL)
            k.bad |= buf_appendf(&bytes, "event: %s\n", v) != 0;
        k.bad |= buf_appendf(&bytes, "data: %s\n\n", t.data ? t.data : "") != 0;
        buf_cleanup(&f);
    }
    if (k.bad || !ch) {
        buf_cleanup(&bytes);
        buf_cleanup(&chan);
        buf_cleanup(&t);
        return send_error(c, 400, "bad_emit", NULL);
    }
    pthread_mutex_lock(&sse_lock);
    for (st = sse_list; st; st = st->nxt) {
        if (strcmp(st->chan, ch) || buf_append(&st->pending, bytes.data, bytes.len) != 0)
            continue;
        delivered++;
    }
    pthread_cond_signal(&sse_wake);
    pthread_mutex_unlock(&sse_lock);
    buf_cleanup(&bytes);
    buf_cleanup(&chan);
    buf_cleanup(&t);
    j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "delivered", delivered);
    return send_json(c, 200, j);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    struct req *rq = *con_cls;

    (void)cls;
    (void)version;
    if (!rq) {
        rq = calloc(1, sizeof(*rq));
        if (!rq)
            return MHD_NO;
        buf_init(&rq->body, FAKE_MAX_BODY);
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_size) {
        if (buf_append(&rq->body, upload, *upload_size) != 0)
            rq->too_big = 1;
        *upload_size = 0;
        return MHD_YES;
    }
    if (rq->too_big)
        return send_error(c, 413, "body_too_large", NULL);
    if (!strcmp(url, "/health"))
        return do_health(c);
    if (!strcmp(url, "/echo"))
        return do_echo(c);
    if (!strcmp(url, "/reflect"))
        return do_reflect(c, method, url, rq);
    if (!strcmp(url, "/counter"))
        return do_counter(c);
    if (!strcmp(url, "/seq"))
        return do_seq(c);
    if (!strcmp(url, "/cookie"))
        return do_cookie(c);
    if (!strcmp(url, "/big"))
        return do_big(c);
    if (!strcmp(url, "/item"))
        return do_item(c);
    if (!strcmp(url, "/sse"))
        return do_sse(c);
    if (!strcmp(url, "/emit"))
        return do_emit(c);
    if (!strcmp(url, "/kv"))
        return do_kv(c);
    if (!strcmp(url, "/die"))
        return do_die(c);
    return send_error(c, 404, "not_found", NULL);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct req *rq = *con_cls;

    (void)cls;
    (void)c;
    (void)toe;
    if (rq) {
        buf_cleanup(&rq->body);
        free(rq);
        *con_cls = NULL;
    }
}

static void usage_exit(void)
{
    fprintf(stderr, "usage: fake_server [--port N] [--root DIR] [--no-lock] [--fail TEXT] "
                    "[--exit0] [--never-ready] [--slow-start MS] [--say TEXT] [--ignore-term] "
                    "[--term-status N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct MHD_Daemon *d;
    const union MHD_DaemonInfo *info;
    struct sockaddr_in sa;
    sigset_t set;
    pthread_t ticker;
    int sig, i, port = 0, lock = 1, ignore_term = 0, term_status = 0;
    long slow_ms = 0;
    const char *say = NULL;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (!strcmp(a, "--no-lock")) {
            lock = 0;
        } else if (!strcmp(a, "--exit0")) {
            return 0;
        } else if (!strcmp(a, "--never-ready")) {
            opt_never_ready = 1;
        } else if (!strcmp(a, "--ignore-term")) {
            ignore_term = 1;
        } else if (!v) {
            usage_exit();
        } else if (!strcmp(a, "--port")) {
            port = (int)strtol(v, NULL, 10), i++;
        } else if (!strcmp(a, "--root")) {
            opt_root = v, i++;
        } else if (!strcmp(a, "--fail")) {
            fprintf(stderr, "fake-server: %s\n", v);
            return 3;
        } else if (!strcmp(a, "--slow-start")) {
            slow_ms = strtol(v, NULL, 10), i++;
        } else if (!strcmp(a, "--say")) {
            say = v, i++;
        } else if (!strcmp(a, "--term-status")) {
            term_status = (int)strtol(v, NULL, 10), i++;
        } else {
            usage_exit();
        }
    }
    if (opt_root && lock) {
        char path[FAKE_MAX_PATH];
        int fd;

        snprintf(path, sizeof(path), "%s/.fake.lock", opt_root);
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) {
            fprintf(stderr, "fake-server: %s: %s\n", path,
                    fd < 0 ? strerror(errno) : "workspace is locked");
            return 4;
        }
        /* fd stays open (and locked) until the process ends. */
    }
    if (slow_ms > 0 && slow_ms < 60000)
        usleep((useconds_t)slow_ms * 1000);
    /* Block the stop signals before MHD starts its thread, then wait for them here. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    d = MHD_start_daemon(
        MHD_USE_POLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        handler, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_UNESCAPE_CALLBACK,
        keep_raw, NULL, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)1000, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "fake-server: cannot start\n");
        return 1;
    }
    if (pthread_create(&ticker, NULL, sse_ticker, NULL) != 0) {
        fprintf(stderr, "fake-server: cannot start the stream ticker\n");
        MHD_stop_daemon(d);
        return 1;
    }
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("%u\n", info ? (unsigned)info->port : 0u);
    fflush(stdout);
    if (say)
        fprintf(stderr, "%s\n", say);
    while (sigwait(&set, &sig) != 0 || (ignore_term && sig == SIGTERM))
        ;
    /* Stop the ticker, then resume every parked stream (MHD refuses to stop with suspended
     * connections); their readers now end the streams. */
    pthread_mutex_lock(&sse_lock);
    sse_stopping = 1;
    pthread_cond_signal(&sse_wake);
    pthread_mutex_unlock(&sse_lock);
    pthread_join(ticker, NULL);
    for (;;) {
        struct MHD_Connection *conn = NULL;
        struct sse *st;

        pthread_mutex_lock(&sse_lock);
        for (st = sse_list; st && !conn; st = st->nxt) {
            if (st->suspended) {
                st->suspended = 0;
                conn = st->conn;
            }
        }
        pthread_mutex_unlock(&sse_lock);
        if (!conn)
            break;
        MHD_resume_connection(conn);
    }
    MHD_stop_daemon(d);
    return sig == SIGTERM ? term_status : 0;
}
