/*
 * sse.h - an incremental parser for text/event-stream (WHATWG HTML
 * §9.2.5 "Parsing an event stream" and §9.2.6 "Interpreting an event
 * stream").
 *
 * Bytes are fed in chunks of any size, split anywhere (inside a UTF-8
 * sequence, a BOM or between the CR and LF of a CRLF); the events that come
 * out do not depend on how the stream was split.  What the parser does:
 *   - line ends are CRLF, LF or CR; a CR at the end of one chunk followed by
 *     an LF at the start of the next is one line end;
 *   - one leading UTF-8 BOM (EF BB BF) is dropped, a second one stays (and
 *     so makes the first field name unknown);
 *   - values are decoded as UTF-8 with the WHATWG decoder: every invalid or
 *     truncated sequence becomes U+FFFD;
 *   - a line starting with ':' is a comment (counted, reported, ignored);
 *   - otherwise the field name runs up to the first ':' (the whole line when
 *     there is none, with an empty value); one space after the colon is
 *     dropped;
 *   - "event" sets the type, "data" appends the value and LF, "id" sets the
 *     last event ID buffer unless the value contains NUL (an empty value
 *     resets it), "retry" sets the reconnection time only when the value is
 *     one or more ASCII digits; any other field is ignored;
 *   - a blank line dispatches: the last event ID is updated, and if the data
 *     buffer is not empty an event is delivered with its trailing LF removed
 *     and type "message" when none was given;
 *   - an unterminated event at the end of the stream is discarded.
 * Every buffer is capped (SSE_MAX_LINE, SSE_MAX_DATA); going past a cap is
 * an error that sticks to the parser.  No globals, no allocation per byte
 * (buffers grow geometrically up to their caps).  One parser per stream; a
 * parser is not thread-safe, distinct parsers are independent.
 */
#ifndef LSC_SSE_H
#define LSC_SSE_H

#include <stddef.h>

#include "err.h"

#ifndef SSE_MAX_LINE
#define SSE_MAX_LINE (64 * 1024) /* bytes of one line before its line end */
#endif
#ifndef SSE_MAX_DATA
#define SSE_MAX_DATA (1024 * 1024) /* bytes of one event's decoded data */
#endif

/* The value retry saturates at (about 31 years of milliseconds). */
#define SSE_MAX_RETRY 999999999999ULL

/* One dispatched event.  Every pointer is borrowed and valid only during the callback. */
struct sse_event {
    const char *type; /* NUL-terminated, never NULL; "message" by default */
    size_t type_len;
    const char *data; /* NUL-terminated, trailing LF removed; may hold NULs: use data_len */
    size_t data_len;
    const char *last_id; /* the last event ID after this event (WHATWG lastEventId) */
    size_t last_id_len;
    int id_field; /* 1 when this event's own lines held an accepted "id" field */
};

/*
 * What the parser reports.  Each callback returns 0 to go on; any other
 * value stops the parser, which then returns that value from sse_feed (and
 * from every later call).  on_comment and on_retry may be NULL.
 */
struct sse_handler {
    int (*on_event)(void *ctx, const struct sse_event *ev);
    int (*on_comment)(void *ctx, const char *text, size_t len); /* text after ':', raw bytes */
    int (*on_retry)(void *ctx, unsigned long long ms);
    void *ctx;
};

struct sse_parser;

/*
 * sse_new - a parser that reports to a copy of *h (h->ctx stays borrowed).
 * Returns NULL when out of memory.
 */
struct sse_parser *sse_new(const struct sse_handler *h);

/* sse_free - release the parser.  NULL-safe. */
void sse_free(struct sse_parser *p);

/*
 * sse_feed - parse the next n bytes of the stream.  Returns 0; LS_ETOOBIG
 * when a line or an event's data went past its cap (sse_error says which);
 * -ENOMEM; or the nonzero value a callback returned.  After a nonzero
 * return the parser is stopped: later calls return the same value and parse
 * nothing.
 */
LS_MUST_CHECK int sse_feed(struct sse_parser *p, const void *data, size_t n);

/*
 * sse_finish - the stream ended: discard the unterminated event (and line),
 * if any.  Returns the number of bytes that were discarded because no line
 * end or no blank line followed them.  The parser is stopped afterwards.
 */
size_t sse_finish(struct sse_parser *p);

/* sse_comments - the number of comment lines seen so far. */
size_t sse_comments(const struct sse_parser *p);

/* sse_retry - 1 with *ms set when a valid retry field was seen (the last one wins), else 0. */
int sse_retry(const struct sse_parser *p, unsigned long long *ms);

/*
 * sse_last_event_id - the last event ID string (borrowed, NUL-terminated,
 * "" initially), updated at every blank line like WHATWG's.  *len is optional.
 */
const char *sse_last_event_id(const struct sse_parser *p, size_t *len);

/* sse_events - the number of events dispatched so far. */
size_t sse_events(const struct sse_parser *p);

/* sse_error - a static description of the cap that was exceeded, or NULL. */
const char *sse_error(const struct sse_parser *p);

#endif
