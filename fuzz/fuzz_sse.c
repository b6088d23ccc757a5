/*
 * fuzz_sse.c - the conformance runner's text/event-stream parser
 * (conformance/src/sse.c) against a reference parser written here from the
 * WHATWG text (HTML §9.2.5-9.2.6), on the same bytes.
 *
 * The input is one stream.  sse.c is fed it whole, one byte at a time, and
 * in chunks whose sizes come from a PRNG seeded with a hash of the input (so
 * every input has its own, reproducible split points); a fourth run stops
 * from the on_event callback after k events (k from the hash).  Each run
 * writes a transcript (every event with type, data, last id and id_field;
 * every comment; every retry; then the final counters, last event ID, error
 * and discarded tail), and every transcript must equal the reference's.
 *
 * The reference works on the whole buffer at once, the simplest way the
 * spec allows: strip one leading BOM, cut lines at CRLF, LF or CR, decode
 * values with the WHATWG UTF-8 decoder state machine, interpret fields.  It
 * applies the same caps as sse.c (a line over SSE_MAX_LINE bytes, event data
 * over SSE_MAX_DATA bytes: the parser stops with LS_ETOOBIG).  The target
 * and its copy of sse.c are built with small caps (fuzz/README.md) so those
 * paths are reached by inputs of a few hundred bytes.
 */
#include <stdbool.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "sse.h"

#define MAX_INPUT (1u << 20)
#define TR_CAP    (64u << 20)

/* ---- transcripts -------------------------------------------------------------- */

struct tr {
    struct buf b;
    int stop_at; /* return 7 from the stop_at-th event (1-based); 0 = never */
    int nevents;
    int failed; /* could not record (out of memory) */
};

static void tr_put(struct tr *t, const void *p, size_t n)
{
    if (buf_append(&t->b, p, n) != 0)
        t->failed = 1;
}

static void tr_str(struct tr *t, char tag, const void *p, size_t n)
{
    tr_put(t, &tag, 1);
    tr_put(t, &n, sizeof(n));
    tr_put(t, p, n);
}

static void tr_event(struct tr *t, const char *type, size_t tl, const char *data, size_t dl,
                     const char *last, size_t ll, int id_field)
{
    tr_str(t, 'E', type, tl);
    tr_str(t, 'd', data, dl);
    tr_str(t, 'l', last, ll);
    tr_put(t, &id_field, sizeof(id_field));
}

static int on_event(void *ctx, const struct sse_event *ev)
{
    struct tr *t = ctx;

    FUZZ_CHECK(ev->type && ev->data && ev->last_id);
    FUZZ_CHECK(ev->type[ev->type_len] == '\0' && ev->data[ev->data_len] == '\0' &&
               ev->last_id[ev->last_id_len] == '\0');
    tr_event(t, ev->type, ev->type_len, ev->data, ev->data_len, ev->last_id, ev->last_id_len,
             ev->id_field);
    t->nevents++;
    return t->stop_at && t->nevents == t->stop_at ? 7 : 0;
}

static int on_comment(void *ctx, const char *text, size_t len)
{
    tr_str(ctx, 'C', text, len);
    return 0;
}

static int on_retry(void *ctx, unsigned long long ms)
{
    tr_put(ctx, "R", 1);
    tr_put(ctx, &ms, sizeof(ms));
    return 0;
}

/* The final part of a transcript. */
static void tr_final(struct tr *t, int rc, size_t comments, size_t events, int has_retry,
                     unsigned long long retry, const char *last, size_t ll, bool error,
                     size_t discarded)
{
    tr_put(t, "F", 1);
    tr_put(t, &rc, sizeof(rc));
    tr_put(t, &comments, sizeof(comments));
    tr_put(t, &events, sizeof(events));
    tr_put(t, &has_retry, sizeof(has_retry));
    if (has_retry)
        tr_put(t, &retry, sizeof(retry));
    tr_str(t, 'L', last, ll);
    tr_put(t, &error, sizeof(error));
    if (rc == 0) /* after an error the tail is not defined */
        tr_put(t, &discarded, sizeof(discarded));
}

/* ---- the reference ------------------------------------------------------------- */

/* Append the UTF-8 encoding of cp. */
static void put_cp(struct buf *o, uint32_t cp, int *err)
{
    unsigned char u[4];
    size_t n;

    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (unsigned char)(0xC0 | (cp >> 6));
        u[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (unsigned char)(0xE0 | (cp >> 12));
        u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (unsigned char)(0xF0 | (cp >> 18));
        u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    if (buf_append(o, u, n) != 0)
        *err = 1;
}

/* The WHATWG "UTF-8 decoder" (Encoding Standard §9.1.1), step by step. */
static void whatwg_decode(struct buf *o, const unsigned char *s, size_t n, int *err)
{
    uint32_t cp = 0;
    unsigned needed = 0, seen = 0;
    unsigned char lower = 0x80, upper = 0xBF;
    size_t i = 0;

    while (i < n) {
        unsigned char b = s[i];

        if (needed == 0) {
            i++;
            if (b <= 0x7F) {
                put_cp(o, b, err);
            } else if (b >= 0xC2 && b <= 0xDF) {
                needed = 1;
                cp = b & 0x1Fu;
            } else if (b >= 0xE0 && b <= 0xEF) {
                if (b == 0xE0)
                    lower = 0xA0;
                if (b == 0xED)
                    upper = 0x9F;
                needed = 2;
                cp = b & 0xFu;
            } else if (b >= 0xF0 && b <= 0xF4) {
                if (b == 0xF0)
                    lower = 0x90;
                if (b == 0xF4)
                    upper = 0x8F;
                needed = 3;
                cp = b & 0x7u;
            } else {
                put_cp(o, 0xFFFD, err);
            }
            continue;
        }
        if (b < lower || b > upper) {
            /* error; the byte is processed again ("prepend to stream") */
            cp = 0;
            needed = seen = 0;
            lower = 0x80;
            upper = 0xBF;
            put_cp(o, 0xFFFD, err);
            continue;
        }
        i++;
        lower = 0x80;
        upper = 0xBF;
        cp = (cp << 6) | (b & 0x3Fu);
        if (++seen == needed) {
            put_cp(o, cp, err);
            cp = 0;
            needed = seen = 0;
        }
    }
    if (needed)
        put_cp(o, 0xFFFD, err);
}

struct ref {
    struct buf data, type, id, last_id, tmp;
    int id_field;
    size_t comments, events;
    int has_retry;
    unsigned long long retry;
    int err;
};

/* Run the reference over s[0..n); the transcript goes to t. */
static void ref_parse(struct tr *t, const unsigned char *s, size_t n, int stop_at)
{
    struct ref r;
    size_t pos = 0, tail_start = 0;
    int rc = 0;
    bool error = false;

    memset(&r, 0, sizeof(r));
    buf_init(&r.data, TR_CAP);
    buf_init(&r.type, TR_CAP);
    buf_init(&r.id, TR_CAP);
    buf_init(&r.last_id, TR_CAP);
    buf_init(&r.tmp, TR_CAP);
    if (n >= 3 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF)
        pos = tail_start = 3;
    while (pos < n && !rc) {
        size_t e = pos, next;
        const unsigned char *l = s + pos;
        size_t ll;

        while (e < n && s[e] != '\r' && s[e] != '\n')
            e++;
        ll = e - pos;
        if (ll > SSE_MAX_LINE) {
            rc = LS_ETOOBIG;
            error = true;
            break;
        }
        if (e == n)
            break; /* unterminated: never interpreted */
        next = e + 1;
        if (s[e] == '\r' && next < n && s[next] == '\n')
            next++;
        if (ll == 0) {
            /* dispatch */
            buf_reset(&r.last_id);
            if (buf_append(&r.last_id, r.id.data ? r.id.data : "", r.id.len) != 0)
                r.err = 1;
            tail_start = next;
            if (r.data.len == 0) {
                buf_reset(&r.type);
                r.id_field = 0;
            } else {
                r.events++;
                tr_event(t, r.type.len ? r.type.data : "message", r.type.len ? r.type.len : 7,
                         r.data.data, r.data.len - 1, r.last_id.data ? r.last_id.data : "",
                         r.last_id.len, r.id_field);
                if (stop_at && (int)r.events == stop_at)
                    rc = 7;
                buf_reset(&r.data);
                buf_reset(&r.type);
                r.id_field = 0;
            }
        } else if (l[0] == ':') {
            r.comments++;
            tr_str(t, 'C', l + 1, ll - 1);
        } else {
            const unsigned char *colon = memchr(l, ':', ll);
            size_t fl = colon ? (size_t)(colon - l) : ll;
            const unsigned char *v = colon ? colon + 1 : l + ll;
            size_t vl = colon ? ll - fl - 1 : 0;

            if (vl && v[0] == ' ')
                v++, vl--;
            if (fl == 5 && memcmp(l, "event", 5) == 0) {
                buf_reset(&r.type);
                whatwg_decode(&r.type, v, vl, &r.err);
            } else if (fl == 4 && memcmp(l, "data", 4) == 0) {
                buf_reset(&r.tmp);
                whatwg_decode(&r.tmp, v, vl, &r.err);
                if (r.data.len + r.tmp.len + 1 > SSE_MAX_DATA) {
                    rc = LS_ETOOBIG;
                    error = true;
                    break;
                }
                if (buf_append(&r.data, r.tmp.data ? r.tmp.data : "", r.tmp.len) != 0 ||
                    buf_appendc(&r.data, '\n') != 0)
                    r.err = 1;
            } else if (fl == 2 && memcmp(l, "id", 2) == 0) {
                if (!memchr(v, '\0', vl)) {
                    buf_reset(&r.id);
                    whatwg_decode(&r.id, v, vl, &r.err);
                    r.id_field = 1;
                }
            } else if (fl == 5 && memcmp(l, "retry", 5) == 0) {
                size_t i;
                unsigned long long ms = 0;

                for (i = 0; i < vl && v[i] >= '0' && v[i] <= '9'; i++)
                    ms = ms * 10 + (unsigned long long)(v[i] - '0') > SSE_MAX_RETRY
                             ? SSE_MAX_RETRY
                             : ms * 10 + (unsigned long long)(v[i] - '0');
                if (vl > 0 && i == vl) {
                    r.has_retry = 1;
                    r.retry = ms;
                    tr_put(t, "R", 1);
                    tr_put(t, &ms, sizeof(ms));
                }
            }
        }
        pos = next;
    }
    if (r.err)
        t->failed = 1;
    tr_final(t, rc, r.comments, r.events, r.has_retry, r.retry,
             r.last_id.data ? r.last_id.data : "", r.last_id.len, error, n - tail_start);
    buf_cleanup(&r.data);
    buf_cleanup(&r.type);
    buf_cleanup(&r.id);
    buf_cleanup(&r.last_id);
    buf_cleanup(&r.tmp);
}

/* ---- sse.c --------------------------------------------------------------------- */

enum split { WHOLE, BYTES, RANDOM };

static void sse_run(struct tr *t, const unsigned char *s, size_t n, enum split how, uint64_t seed,
                    int stop_at)
{
    struct sse_handler h = {on_event, on_comment, on_retry, t};
    struct sse_parser *p = sse_new(&h);
    unsigned long long retry = 0;
    size_t pos = 0, ll = 0, discarded;
    const char *last;
    int rc = 0, has_retry;

    if (!p) {
        t->failed = 1;
        return;
    }
    t->stop_at = stop_at;
    while (pos < n || (pos == 0 && n == 0)) {
        size_t chunk = n - pos;
        char *copy;

        if (how == BYTES)
            chunk = chunk ? 1 : 0;
        else if (how == RANDOM && chunk)
            chunk = 1 + (size_t)(fuzz_rand(&seed) % (chunk < 64 ? chunk : 64));
        copy = fuzz_dup(s + pos, chunk); /* exact size: a read past the chunk is caught */
        rc = sse_feed(p, copy, chunk);
        free(copy);
        pos += chunk;
        if (rc) {
            /* stopped: later calls return the same value and parse nothing */
            FUZZ_CHECK(sse_feed(p, "data: x\n\n", 9) == rc);
            break;
        }
        if (n == 0)
            break;
    }
    has_retry = sse_retry(p, &retry);
    last = sse_last_event_id(p, &ll);
    FUZZ_CHECK(last && last[ll] == '\0');
    FUZZ_CHECK((sse_error(p) != NULL) == (rc == LS_ETOOBIG));
    /* finish resets the event being built, not the counters or the last event ID */
    discarded = sse_finish(p);
    FUZZ_CHECK(sse_feed(p, "data: x\n\n", 9) != 0);
    tr_final(t, rc, sse_comments(p), sse_events(p), has_retry, retry, last, ll,
             sse_error(p) != NULL, discarded);
    sse_free(p);
}

static void compare(const struct tr *ref, const struct tr *got, const char *what)
{
    if (ref->failed || got->failed)
        return; /* out of memory: nothing to compare */
    if (ref->b.len == got->b.len && memcmp(ref->b.data, got->b.data, ref->b.len) == 0)
        return;
    fprintf(stderr, "sse.c (%s) disagrees with the reference parser\n", what);
    FUZZ_CHECK(!"transcripts equal");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tr ref, got;
    uint64_t h;
    int stop;

    if (size > MAX_INPUT)
        return 0;
    h = fuzz_hash(data, size) | 1;
    stop = 1 + (int)(h % 4);

    buf_init(&ref.b, TR_CAP);
    ref.failed = 0;
    ref_parse(&ref, data, size, 0);
    for (int how = WHOLE; how <= RANDOM; how++) {
        memset(&got, 0, sizeof(got));
        buf_init(&got.b, TR_CAP);
        sse_run(&got, data, size, (enum split)how, h, 0);
        compare(&ref, &got,
                how == WHOLE   ? "whole"
                : how == BYTES ? "byte by byte"
                               : "random split");
        buf_cleanup(&got.b);
    }
    buf_cleanup(&ref.b);

    /* A callback's non-zero value stops the parser after exactly that event. */
    buf_init(&ref.b, TR_CAP);
    ref.failed = 0;
    ref_parse(&ref, data, size, stop);
    memset(&got, 0, sizeof(got));
    buf_init(&got.b, TR_CAP);
    sse_run(&got, data, size, RANDOM, h ^ 0x9E3779B97F4A7C15ULL, stop);
    compare(&ref, &got, "stopped by the callback");
    buf_cleanup(&got.b);
    buf_cleanup(&ref.b);
    return 0;
}
