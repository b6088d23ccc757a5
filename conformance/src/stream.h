/*
 * stream.h - the event streams of one running case (contract-rt §3).
 *
 * A struct streams owns one http_loop (a libcurl multi handle) on which
 * every stream of the case runs, plus the case's requests while streams are
 * open (http_perform_on), so stream bytes keep flowing during a request and
 * a request never waits for a stream.  Nothing runs in the background: the
 * loop advances only inside streams_pump, which every waiting step calls.
 *
 * Each stream parses its body with the WHATWG parser of sse.h and queues the
 * events for the sse_* steps, which consume them in order.  While parsing,
 * it checks what every stream must satisfy whatever the fixture says: event
 * ids (where an event has a non-empty id field) are decimal integers that
 * strictly increase, so they never repeat; a break of that rule, a parser
 * cap or a queue cap is recorded as the stream's violation, which fails the
 * case.  Every buffer is capped.  Not thread-safe.
 */
#ifndef LSC_STREAM_H
#define LSC_STREAM_H

#include <stddef.h>

#include "buf.h"
#include "http.h"
#include "sse.h"

#ifndef STREAM_MAX_OPEN
#define STREAM_MAX_OPEN 32 /* streams open at once in one case */
#endif
#ifndef STREAM_MAX_QUEUED
#define STREAM_MAX_QUEUED 65536 /* events received and not consumed yet, per stream */
#endif
#ifndef STREAM_MAX_QUEUED_BYTES
#define STREAM_MAX_QUEUED_BYTES (64 * 1024 * 1024) /* their data, per stream */
#endif
#ifndef STREAM_MAX_ID
#define STREAM_MAX_ID 9007199254740991ULL /* 2^53 - 1: the largest id the runner accepts */
#endif

/* One received event (owned by its stream). */
struct stream_event {
    char *type;
    char *data; /* NUL-terminated; data_len bytes (may hold NULs) */
    size_t data_len;
    char *id;    /* the value of the event's own id field; NULL when it had none */
    double t_ms; /* arrival, in ms after the stream was opened */
    size_t seq;  /* 1-based position among the events of the stream */
};

/* One stream.  Fields are read-only for users. */
struct stream {
    char *name;
    char *client;
    struct http_req req;   /* the request, kept for the curl(1) reproduction */
    struct http_resp resp; /* headers; for a non-200 answer also the body */
    struct http_async *xfer;
    struct sse_parser *sse;
    struct stream_event **q; /* unconsumed events are q[qhead .. qlen) */
    size_t qhead, qlen, qcap, qbytes;
    size_t consumed;
    int have_id;
    unsigned long long last_id;
    int ended;        /* the transfer is over (server end, error or abort) */
    size_t discarded; /* bytes of an unterminated final event */
    struct buf violation;
    double t0;
    int head_shown; /* -v: the request/response head was printed */
    int verbose;
};

struct streams;

/* streams_new - an empty set with its loop; verbose prints a -v trace.  NULL on ENOMEM. */
struct streams *streams_new(int verbose);

/* streams_free - close every stream and free the set.  NULL-safe. */
void streams_free(struct streams *ss);

/* streams_loop - the set's loop, for requests that must run alongside the streams. */
struct http_loop *streams_loop(struct streams *ss);

/*
 * streams_open - start a stream called name (copied) as client c (borrowed;
 * must outlive the stream) named client_name.  *req is moved into the
 * stream (reinitialised here).  The caller then pumps until
 * stream_status() is nonzero or the stream ended.  Returns 0 with *out set,
 * LS_EDUP when a stream of that name is open, LS_ETOOMANY past
 * STREAM_MAX_OPEN, or -ENOMEM; on failure *req still belongs to the caller.
 */
LS_MUST_CHECK int streams_open(struct streams *ss, const char *name, struct http_client *c,
                               const char *client_name, struct http_req *req, struct stream **out);

/* streams_find - the open stream called name, or NULL. */
struct stream *streams_find(struct streams *ss, const char *name);

/* streams_close - stop the stream (closing its connection) and free it. */
void streams_close(struct streams *ss, struct stream *s);

/*
 * streams_pump - drive the loop for up to wait_ms (0 = only what is ready
 * now), parsing whatever arrives on every stream.  Returns 0 or -EIO.
 */
LS_MUST_CHECK int streams_pump(struct streams *ss, long wait_ms);

/* streams_violation - the first open stream with a violation, or NULL. */
const struct stream *streams_violation(const struct streams *ss);

/* streams_count - how many streams are open. */
size_t streams_count(const struct streams *ss);

/* stream_status - the stream's HTTP status once its headers are in, else 0. */
long stream_status(const struct stream *s);

/* stream_peek - the i-th unconsumed event (0 = the next one), or NULL. */
const struct stream_event *stream_peek(const struct stream *s, size_t i);

/* stream_pending - how many events are received and not consumed. */
size_t stream_pending(const struct stream *s);

/* stream_consume - drop the next unconsumed event (if any). */
void stream_consume(struct stream *s);

/* stream_failed - 1 when the stream ended with a transport error (not a clean end). */
int stream_failed(const struct stream *s);

/*
 * stream_describe - append a few lines about the stream for a failure
 * message: status, events received and consumed, how it ended, and the
 * next unconsumed events (at most max of them).
 */
void stream_describe(const struct stream *s, struct buf *out, size_t max);

/*
 * stream_id_value - an event id as a number: "0" or [1-9][0-9]* up to
 * STREAM_MAX_ID.  Returns 1 with *v set, or 0 (*v then 0 or partial).
 */
int stream_id_value(const char *id, unsigned long long *v);

/* stream_event_brief - append "#seq TYPE id ID: DATA" (display-safe, cut at max bytes). */
void stream_event_brief(const struct stream_event *e, struct buf *out, size_t max);

#endif
