/*
 * stream.c - the event streams of a running case; see stream.h.
 *
 * Data path: libcurl hands body bytes to on_data (inside streams_pump);
 * a 200 answer goes through the SSE parser, whose callbacks check the id
 * rule and queue the events; any other answer is kept whole in resp.body so
 * sse_open can match its JSON.  A violation (id order, parser cap, queue
 * cap) is recorded once and the transfer is aborted, so a misbehaving
 * server can never make the runner buffer without bound.
 */
#include "stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define TRACE_EVENT_BYTES 2048 /* data bytes of one event shown by -v */

struct streams {
    struct http_loop *loop;
    struct stream *s[STREAM_MAX_OPEN];
    size_t n;
    int verbose;
};

struct streams *streams_new(int verbose)
{
    struct streams *ss = calloc(1, sizeof(*ss));

    if (!ss)
        return NULL;
    ss->loop = http_loop_new();
    if (!ss->loop) {
        free(ss);
        return NULL;
    }
    ss->verbose = verbose;
    return ss;
}

static void event_free(struct stream_event *e)
{
    if (!e)
        return;
    free(e->type);
    free(e->data);
    free(e->id);
    free(e);
}

static void stream_free(struct stream *s)
{
    size_t i;

    if (!s)
        return;
    http_async_free(s->xfer);
    sse_free(s->sse);
    for (i = s->qhead; i < s->qlen; i++)
        event_free(s->q[i]);
    free(s->q);
    http_req_cleanup(&s->req);
    http_resp_cleanup(&s->resp);
    buf_cleanup(&s->violation);
    free(s->name);
    free(s->client);
    free(s);
}

void streams_free(struct streams *ss)
{
    if (!ss)
        return;
    while (ss->n)
        streams_close(ss, ss->s[ss->n - 1]);
    http_loop_free(ss->loop);
    free(ss);
}

struct http_loop *streams_loop(struct streams *ss)
{
    return ss->loop;
}

size_t streams_count(const struct streams *ss)
{
    return ss->n;
}

/* ------------------------------------------------------------------ tracing */

static double since(const struct stream *s)
{
    return util_now_ms() - s->t0;
}

/* -v: the request and response head, once, as soon as the status is known. */
static void show_head(struct stream *s)
{
    if (!s->verbose || s->head_shown)
        return;
    s->head_shown = 1;
    printf("    --- sse %s: %s %s (client %s) ---\n", s->name, s->req.method, s->req.url,
           s->client);
    if (s->resp.trace.len)
        fwrite(s->resp.trace.data, 1, s->resp.trace.len, stdout);
    if (http_async_status(s->xfer) != 200 && s->resp.body.len) {
        struct buf b;

        buf_init(&b, 4 * TRACE_EVENT_BYTES + 16);
        if (util_append_clean(&b, s->resp.body.data, s->resp.body.len, TRACE_EVENT_BYTES, 1) == 0)
            printf("< %s\n", b.data ? b.data : "");
        buf_cleanup(&b);
    }
    printf("    --- %s after %.1f ms ---\n",
           http_async_status(s->xfer) == 200 ? "stream open" : "answer", since(s));
    buf_reset(&s->resp.trace);
    fflush(stdout);
}

static void show_line(const struct stream *s, const char *what, const char *p, size_t n)
{
    struct buf b;

    if (!s->verbose)
        return;
    buf_init(&b, 4 * TRACE_EVENT_BYTES + 256);
    util_note(&b, "    ~ %s +%.0f ms: %s", s->name, since(s), what);
    if (p)
        (void)util_append_clean(&b, p, n, TRACE_EVENT_BYTES, 0);
    util_note(&b, "%c", '\n');
    fwrite(b.data ? b.data : "", 1, b.len, stdout);
    fflush(stdout);
    buf_cleanup(&b);
}

void stream_event_brief(const struct stream_event *e, struct buf *out, size_t max)
{
    util_note(out, "#%zu \"", e->seq);
    (void)util_append_clean(out, e->type, strlen(e->type), 200, 0);
    util_note(out, "%s", "\"");
    if (e->id) {
        util_note(out, "%s", " id \"");
        (void)util_append_clean(out, e->id, strlen(e->id), 200, 0);
        util_note(out, "%s", "\"");
    } else {
        util_note(out, "%s", " (no id)");
    }
    util_note(out, " +%.0f ms: ", e->t_ms);
    (void)util_append_clean(out, e->data, e->data_len, max, 0);
}

/* ------------------------------------------------------------------ parsing */

static void violate(struct stream *s, const char *fmt, ...) LS_PRINTF(2, 3);

static void violate(struct stream *s, const char *fmt, ...)
{
    va_list ap;
    int rc;

    if (s->violation.len)
        return;
    va_start(ap, fmt);
    rc = buf_vappendf(&s->violation, fmt, ap);
    va_end(ap);
    (void)rc;
    show_line(s, "VIOLATION: ", s->violation.data, s->violation.len);
}

int stream_id_value(const char *id, unsigned long long *v)
{
    size_t i, n = strlen(id);

    *v = 0;
    if (n == 0 || n > 16 || (id[0] == '0' && n > 1))
        return 0;
    for (i = 0; i < n; i++) {
        if (id[i] < '0' || id[i] > '9')
            return 0;
        *v = *v * 10 + (unsigned long long)(id[i] - '0');
    }
    return *v <= STREAM_MAX_ID;
}

static int on_event(void *ctx, const struct sse_event *ev)
{
    struct stream *s = ctx;
    struct stream_event *e;
    size_t seq = s->consumed + (s->qlen - s->qhead) + 1;

    if (s->qlen - s->qhead >= STREAM_MAX_QUEUED ||
        s->qbytes + ev->data_len > STREAM_MAX_QUEUED_BYTES) {
        violate(s, "more than %d unconsumed events or %d bytes of their data", STREAM_MAX_QUEUED,
                STREAM_MAX_QUEUED_BYTES);
        return 1;
    }
    if (s->qlen == s->qcap) {
        struct stream_event **nq;

        if (s->qhead) {
            /* Consumed slots at the front: slide the queue down instead of growing it. */
            memmove(s->q, s->q + s->qhead, (s->qlen - s->qhead) * sizeof(*s->q));
            s->qlen -= s->qhead;
            s->qhead = 0;
        } else {
            size_t cap = s->qcap ? 2 * s->qcap : 16;

            nq = realloc(s->q, cap * sizeof(*nq));
            if (!nq)
                return -ENOMEM;
            s->q = nq;
            s->qcap = cap;
        }
    }
    e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->type = strdup(ev->type);
    e->data = malloc(ev->data_len + 1);
    e->id = ev->id_field ? strdup(ev->last_id) : NULL;
    if (!e->type || !e->data || (ev->id_field && !e->id)) {
        event_free(e);
        return -ENOMEM;
    }
    memcpy(e->data, ev->data, ev->data_len + 1);
    e->data_len = ev->data_len;
    e->t_ms = since(s);
    e->seq = seq;
    s->q[s->qlen++] = e;
    s->qbytes += ev->data_len;
    if (s->verbose) {
        struct buf b;

        buf_init(&b, 4 * TRACE_EVENT_BYTES + 1024);
        util_note(&b, "event #%zu \"%s\"", e->seq, e->type);
        if (e->id)
            util_note(&b, " id \"%s\"", e->id);
        util_note(&b, "%s", ": ");
        show_line(s, b.data ? b.data : "", e->data, e->data_len);
        buf_cleanup(&b);
    }
    /* Ids must strictly increase (so never repeat); an empty id only resets the cursor. */
    if (e->id && e->id[0]) {
        unsigned long long v;

        if (!stream_id_value(e->id, &v))
            violate(s, "event #%zu \"%s\": id \"%.64s\" is not a decimal integer up to 2^53-1",
                    e->seq, e->type, e->id);
        else if (s->have_id && v == s->last_id)
            violate(s, "event #%zu \"%s\": id %llu repeats the previous event id", e->seq, e->type,
                    v);
        else if (s->have_id && v < s->last_id)
            violate(s, "event #%zu \"%s\": id %llu is lower than the previous event id %llu",
                    e->seq, e->type, v, s->last_id);
        if (stream_id_value(e->id, &v) && (!s->have_id || v > s->last_id)) {
            s->last_id = v;
            s->have_id = 1;
        }
    }
    return 0;
}

static int on_comment(void *ctx, const char *text, size_t len)
{
    struct stream *s = ctx;

    show_line(s, "comment :", text, len);
    return 0;
}

static int on_retry(void *ctx, unsigned long long ms)
{
    struct stream *s = ctx;
    char t[32];

    snprintf(t, sizeof(t), "%llu", ms);
    show_line(s, "retry ", t, strlen(t));
    return 0;
}

static int on_data(void *ctx, const char *p, size_t n)
{
    struct stream *s = ctx;
    int rc;

    if (http_async_status(s->xfer) != 200) {
        /* Not an event stream: keep the body (capped) for sse_open's json expectation. */
        return buf_append(&s->resp.body, p, n) == 0 ? 0 : 1;
    }
    show_head(s);
    if (s->violation.len)
        return 1;
    rc = sse_feed(s->sse, p, n);
    if (rc == LS_ETOOBIG)
        violate(s, "%s (SSE_MAX_LINE = %d, SSE_MAX_DATA = %d)", sse_error(s->sse), SSE_MAX_LINE,
                SSE_MAX_DATA);
    else if (rc == -ENOMEM)
        violate(s, "%s", "out of memory while parsing the stream");
    return rc ? 1 : 0;
}

/* ------------------------------------------------------------------ the set */

int streams_open(struct streams *ss, const char *name, struct http_client *c,
                 const char *client_name, struct http_req *req, struct stream **out)
{
    struct sse_handler h;
    struct http_sink sink;
    struct stream *s;
    int rc;

    if (streams_find(ss, name))
        return LS_EDUP;
    if (ss->n >= STREAM_MAX_OPEN)
        return LS_ETOOMANY;
    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    http_resp_init(&s->resp);
    buf_init(&s->violation, 4096);
    s->verbose = ss->verbose;
    s->name = strdup(name);
    s->client = strdup(client_name);
    h.on_event = on_event;
    h.on_comment = on_comment;
    h.on_retry = on_retry;
    h.ctx = s;
    s->sse = sse_new(&h);
    if (!s->name || !s->client || !s->sse) {
        stream_free(s);
        return -ENOMEM;
    }
    s->req = *req; /* moved; restored to the caller on failure */
    sink.on_data = on_data;
    sink.ctx = s;
    s->t0 = util_now_ms();
    rc = http_async_start(ss->loop, c, &s->req, &s->resp, ss->verbose, &sink, &s->xfer);
    if (rc) {
        http_req_init(&s->req);
        stream_free(s);
        return rc;
    }
    http_req_init(req);
    ss->s[ss->n++] = s;
    *out = s;
    return 0;
}

struct stream *streams_find(struct streams *ss, const char *name)
{
    size_t i;

    for (i = 0; i < ss->n; i++)
        if (!strcmp(ss->s[i]->name, name))
            return ss->s[i];
    return NULL;
}

void streams_close(struct streams *ss, struct stream *s)
{
    size_t i;

    for (i = 0; i < ss->n; i++) {
        if (ss->s[i] != s)
            continue;
        memmove(&ss->s[i], &ss->s[i + 1], (ss->n - i - 1) * sizeof(ss->s[0]));
        ss->n--;
        break;
    }
    if (s->verbose && !s->ended) {
        char t[96];

        snprintf(t, sizeof(t), "%zu events received", s->consumed + stream_pending(s));
        show_line(s, "closed by the runner, ", t, strlen(t));
    }
    stream_free(s);
}

/* Book-keeping after the loop ran: a finished transfer ends its stream. */
static void settle(struct stream *s)
{
    char t[160];

    if (s->ended || !http_async_done(s->xfer))
        return;
    s->ended = 1;
    show_head(s);
    if (http_async_status(s->xfer) == 200)
        s->discarded = sse_finish(s->sse);
    if (!s->verbose)
        return;
    snprintf(t, sizeof(t), "%zu events, %zu bytes of an unterminated event discarded",
             s->consumed + stream_pending(s), s->discarded);
    if (s->resp.curl_code)
        show_line(s, "stream failed: ", s->resp.error, strlen(s->resp.error));
    show_line(s, "stream ended by the server, ", t, strlen(t));
}

int streams_pump(struct streams *ss, long wait_ms)
{
    int rc = http_loop_run(ss->loop, wait_ms);
    size_t i;

    for (i = 0; i < ss->n; i++) {
        struct stream *s = ss->s[i];

        /* The status is known from the headers on; the transfer's end makes it final. */
        if (!s->ended)
            s->resp.status = http_async_status(s->xfer);
        if (s->resp.status == 200)
            show_head(s);
        settle(s);
    }
    return rc;
}

const struct stream *streams_violation(const struct streams *ss)
{
    size_t i;

    for (i = 0; i < ss->n; i++)
        if (ss->s[i]->violation.len)
            return ss->s[i];
    return NULL;
}

/* ------------------------------------------------------------------ one stream */

long stream_status(const struct stream *s)
{
    return http_async_status(s->xfer);
}

size_t stream_pending(const struct stream *s)
{
    return s->qlen - s->qhead;
}

const struct stream_event *stream_peek(const struct stream *s, size_t i)
{
    return i < stream_pending(s) ? s->q[s->qhead + i] : NULL;
}

void stream_consume(struct stream *s)
{
    if (!stream_pending(s))
        return;
    s->qbytes -= s->q[s->qhead]->data_len;
    event_free(s->q[s->qhead]);
    s->q[s->qhead++] = NULL;
    s->consumed++;
    if (s->qhead == s->qlen)
        s->qhead = s->qlen = 0;
}

int stream_failed(const struct stream *s)
{
    return s->ended && s->resp.curl_code != 0;
}

void stream_describe(const struct stream *s, struct buf *out, size_t max)
{
    size_t i, pending = stream_pending(s);

    util_note(out, "    stream %s: status %ld, %zu events received, %zu consumed", s->name,
              stream_status(s), s->consumed + pending, s->consumed);
    if (!s->ended)
        util_note(out, "%s", ", still open");
    else if (s->resp.curl_code)
        util_note(out, ", failed: %s", s->resp.error);
    else
        util_note(out, "%s", ", ended by the server");
    if (s->discarded)
        util_note(out, " (%zu bytes of an unterminated event discarded)", s->discarded);
    util_note(out, "%c", '\n');
    for (i = 0; i < pending && i < max; i++) {
        util_note(out, "%s", i ? "      " : "    next: ");
        stream_event_brief(stream_peek(s, i), out, 300);
        util_note(out, "%c", '\n');
    }
    if (pending > max)
        util_note(out, "      (%zu more)\n", pending - max);
}
