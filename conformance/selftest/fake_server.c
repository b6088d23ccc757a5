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
 * Binds 127.0.0.1 on an ephemeral port, prints the port on stdout, and runs
 * until SIGTERM/SIGINT.  Uses MHD's internal poll thread (never epoll, see
 * shared/reference/machine-limits.md).  Every input is capped.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

    return send_buf(c, 200, "application/json", body, sizeof(body) - 1);
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

int main(void)
{
    struct MHD_Daemon *d;
    const union MHD_DaemonInfo *info;
    struct sockaddr_in sa;
    sigset_t set;
    int sig;

    /* Block the stop signals before MHD starts its thread, then wait for them here. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = 0;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    d = MHD_start_daemon(MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, handler,
                         NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                         MHD_OPTION_UNESCAPE_CALLBACK, keep_raw, NULL, MHD_OPTION_NOTIFY_COMPLETED,
                         completed, NULL, MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "fake-server: cannot start\n");
        return 1;
    }
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("%u\n", info ? (unsigned)info->port : 0u);
    fflush(stdout);
    while (sigwait(&set, &sig) != 0)
        ;
    MHD_stop_daemon(d);
    return 0;
}
