/*
 * sse.c - incremental text/event-stream parser; see sse.h for the rules.
 *
 * The parser keeps the raw bytes of the current line and works on a line
 * only once its line end has arrived, so no decision ever depends on where
 * a chunk ended.  The two pieces of state that do cross chunks are a CR that
 * ended the previous line (an LF right after it belongs to the same line
 * end) and a partly seen leading BOM.  UTF-8 decoding is done per value:
 * the WHATWG decoder turns CR and LF into themselves even after a truncated
 * sequence, so splitting raw bytes into lines first and decoding each value
 * afterwards gives exactly what decoding the whole stream first would.
 * Pure: no I/O, no globals, no clock.
 */
#include "sse.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define SSE_MAX_VALUE (3 * SSE_MAX_LINE + 3) /* a decoded value: each byte may become U+FFFD */

struct sse_parser {
    struct sse_handler h;
    struct buf line;    /* raw bytes of the current line, without its line end */
    struct buf data;    /* the data buffer (decoded, each line followed by LF) */
    struct buf type;    /* the event type buffer (decoded) */
    struct buf id;      /* the last event ID buffer (decoded) */
    struct buf last_id; /* the last event ID string, copied from the buffer at each blank line */
    size_t comments;
    size_t events;
    unsigned long long retry;
    int has_retry;
    int id_field;      /* the current event's lines held an accepted id field */
    unsigned bom_seen; /* bytes of a leading BOM matched so far */
    int bom_done;      /* the BOM question is settled */
    int cr;            /* the last line ended with CR: one LF right after it is skipped */
    size_t tail;       /* raw bytes since the last blank line */
    int stopped;       /* sticky nonzero result */
    const char *err;   /* which cap was exceeded */
};

static const unsigned char bom[3] = {0xef, 0xbb, 0xbf};
static const unsigned char replacement[3] = {0xef, 0xbf, 0xbd}; /* U+FFFD */

struct sse_parser *sse_new(const struct sse_handler *h)
{
    struct sse_parser *p = calloc(1, sizeof(*p));

    if (!p)
        return NULL;
    p->h = *h;
    buf_init(&p->line, SSE_MAX_LINE);
    buf_init(&p->data, SSE_MAX_DATA);
    buf_init(&p->type, SSE_MAX_VALUE);
    buf_init(&p->id, SSE_MAX_VALUE);
    buf_init(&p->last_id, SSE_MAX_VALUE);
    return p;
}

void sse_free(struct sse_parser *p)
{
    if (!p)
        return;
    buf_cleanup(&p->line);
    buf_cleanup(&p->data);
    buf_cleanup(&p->type);
    buf_cleanup(&p->id);
    buf_cleanup(&p->last_id);
    free(p);
}

/*
 * Append s[0..n) to out, decoded by the WHATWG UTF-8 decoder: valid
 * sequences are copied, every maximal invalid subpart becomes U+FFFD.
 */
static int utf8_append(struct buf *out, const unsigned char *s, size_t n)
{
    size_t i = 0, run = 0; /* s[run..i) is valid text not yet copied */
    int rc = 0;

    while (i < n && !rc) {
        unsigned char b = s[i];
        unsigned char lo = 0x80, hi = 0xbf;
        size_t need, k;

        if (b < 0x80) {
            i++;
            continue;
        }
        if (b >= 0xc2 && b <= 0xdf) {
            need = 1;
        } else if (b >= 0xe0 && b <= 0xef) {
            need = 2;
            lo = b == 0xe0 ? 0xa0 : 0x80;
            hi = b == 0xed ? 0x9f : 0xbf;
        } else if (b >= 0xf0 && b <= 0xf4) {
            need = 3;
            lo = b == 0xf0 ? 0x90 : 0x80;
            hi = b == 0xf4 ? 0x8f : 0xbf;
        } else {
            need = 0; /* 80..C1, F5..FF: never valid as a lead byte */
        }
        for (k = 1; need && k <= need; k++) {
            if (i + k >= n || s[i + k] < lo || s[i + k] > hi)
                break;
            lo = 0x80;
            hi = 0xbf;
        }
        if (need && k > need) {
            i += need + 1;
            continue;
        }
        /* Invalid: flush the valid run, emit U+FFFD for the lead and the continuation bytes
         * that were accepted, and go on with the byte that broke the sequence. */
        rc = buf_append(out, s + run, i - run);
        rc = rc ? rc : buf_append(out, replacement, sizeof(replacement));
        i += need ? k : 1;
        run = i;
    }
    return rc ? rc : buf_append(out, s + run, i - run);
}

static int field_is(const unsigned char *f, size_t n, const char *name)
{
    return n == strlen(name) && memcmp(f, name, n) == 0;
}

static int cap_error(struct sse_parser *p, int rc, const char *what)
{
    if (rc == LS_ETOOBIG)
        p->err = what;
    return rc;
}

static int dispatch(struct sse_parser *p)
{
    struct sse_event ev;
    int rc = 0;

    buf_reset(&p->last_id);
    rc = buf_append(&p->last_id, p->id.data ? p->id.data : "", p->id.len);
    if (rc)
        return rc;
    if (p->data.len == 0) {
        buf_reset(&p->type);
        p->id_field = 0;
        return 0;
    }
    /* Remove the data buffer's last LF (every data line appended one). */
    p->data.data[p->data.len - 1] = '\0';
    memset(&ev, 0, sizeof(ev));
    ev.type = p->type.len ? p->type.data : "message";
    ev.type_len = p->type.len ? p->type.len : strlen("message");
    ev.data = p->data.data;
    ev.data_len = p->data.len - 1;
    ev.last_id = p->last_id.data ? p->last_id.data : "";
    ev.last_id_len = p->last_id.len;
    ev.id_field = p->id_field;
    p->events++;
    if (p->h.on_event)
        rc = p->h.on_event(p->h.ctx, &ev);
    buf_reset(&p->data);
    buf_reset(&p->type);
    p->id_field = 0;
    return rc;
}

static int field(struct sse_parser *p, const unsigned char *f, size_t fl, const unsigned char *v,
                 size_t vl)
{
    int rc = 0;

    if (field_is(f, fl, "event")) {
        buf_reset(&p->type);
        rc = utf8_append(&p->type, v, vl);
    } else if (field_is(f, fl, "data")) {
        rc = utf8_append(&p->data, v, vl);
        rc = rc ? rc : buf_appendc(&p->data, '\n');
        rc = cap_error(p, rc, "event data longer than SSE_MAX_DATA bytes");
    } else if (field_is(f, fl, "id")) {
        if (vl && memchr(v, '\0', vl))
            return 0;
        buf_reset(&p->id);
        rc = utf8_append(&p->id, v, vl);
        p->id_field = 1;
    } else if (field_is(f, fl, "retry")) {
        unsigned long long ms = 0;
        size_t i;

        if (vl == 0)
            return 0;
        for (i = 0; i < vl; i++)
            if (v[i] < '0' || v[i] > '9')
                return 0;
        for (i = 0; i < vl; i++) {
            ms = ms * 10 + (unsigned long long)(v[i] - '0');
            if (ms > SSE_MAX_RETRY)
                ms = SSE_MAX_RETRY;
        }
        p->retry = ms;
        p->has_retry = 1;
        if (p->h.on_retry)
            rc = p->h.on_retry(p->h.ctx, ms);
    }
    return rc;
}

/* A complete line (its line end already consumed) is in p->line. */
static int line(struct sse_parser *p)
{
    const unsigned char *l = (const unsigned char *)p->line.data;
    size_t n = p->line.len;
    int rc;

    if (n == 0) {
        p->tail = 0;
        rc = dispatch(p);
    } else if (l[0] == ':') {
        p->comments++;
        rc = p->h.on_comment ? p->h.on_comment(p->h.ctx, (const char *)l + 1, n - 1) : 0;
    } else {
        const unsigned char *colon = memchr(l, ':', n);
        size_t fl = colon ? (size_t)(colon - l) : n;
        const unsigned char *v = colon ? colon + 1 : l + n;
        size_t vl = colon ? n - fl - 1 : 0;

        if (vl && v[0] == ' ') {
            v++;
            vl--;
        }
        rc = field(p, l, fl, v, vl);
    }
    buf_reset(&p->line);
    return rc;
}

static int feed_bytes(struct sse_parser *p, const unsigned char *s, size_t n)
{
    size_t i = 0;
    int rc;

    while (i < n) {
        size_t j = i;

        if (p->cr) {
            p->cr = 0;
            if (s[i] == '\n') {
                /* The LF of a CRLF that ended a blank line is not part of the tail. */
                p->tail += p->tail ? 1 : 0;
                i++;
                continue;
            }
        }
        while (j < n && s[j] != '\r' && s[j] != '\n')
            j++;
        if (j > i) {
            rc = cap_error(p, buf_append(&p->line, s + i, j - i),
                           "line longer than SSE_MAX_LINE bytes");
            if (rc)
                return rc;
            p->tail += j - i;
        }
        if (j == n)
            break;
        p->cr = s[j] == '\r';
        p->tail++;
        i = j + 1;
        rc = line(p);
        if (rc)
            return rc;
    }
    return 0;
}

int sse_feed(struct sse_parser *p, const void *data, size_t n)
{
    const unsigned char *s = data;
    size_t i = 0;
    int rc = 0;

    if (p->stopped)
        return p->stopped;
    /* A leading BOM may arrive split over several chunks. */
    while (!p->bom_done && i < n) {
        if (s[i] == bom[p->bom_seen]) {
            p->bom_seen++;
            i++;
            p->bom_done = p->bom_seen == sizeof(bom);
            continue;
        }
        p->bom_done = 1;
        if (p->bom_seen)
            rc = feed_bytes(p, bom, p->bom_seen); /* a BOM prefix that was not one is text */
    }
    rc = rc ? rc : feed_bytes(p, s + i, n - i);
    if (rc)
        p->stopped = rc;
    return rc;
}

size_t sse_finish(struct sse_parser *p)
{
    size_t discarded = p->tail + (p->bom_done ? 0 : p->bom_seen);

    buf_reset(&p->line);
    buf_reset(&p->data);
    buf_reset(&p->type);
    p->id_field = 0;
    p->tail = 0;
    p->bom_done = 1;
    if (!p->stopped)
        p->stopped = -EPIPE;
    return discarded;
}

size_t sse_comments(const struct sse_parser *p)
{
    return p->comments;
}

int sse_retry(const struct sse_parser *p, unsigned long long *ms)
{
    if (p->has_retry && ms)
        *ms = p->retry;
    return p->has_retry;
}

const char *sse_last_event_id(const struct sse_parser *p, size_t *len)
{
    if (len)
        *len = p->last_id.len;
    return p->last_id.data ? p->last_id.data : "";
}

size_t sse_events(const struct sse_parser *p)
{
    return p->events;
}

const char *sse_error(const struct sse_parser *p)
{
    return p->err;
}
