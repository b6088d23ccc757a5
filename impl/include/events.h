/*
 * events.h - the event hub: one id sequence, a ring of recent events,
 * subscribers with replay, resync, keepalive and backpressure, SSE framing.
 *
 * Ids are reserved first and committed (or cancelled) later; subscribers only
 * ever see the contiguous prefix of resolved ids, so the wire order is the id
 * order even when commits finish out of order (the durability work commits
 * after fsync).  Every event is framed once, at commit, as
 * "id: N\nevent: TYPE\ndata: JSON\n\n", and the ring holds the frames.
 *
 * A subscriber never misses an event silently: when it asks for ids the ring
 * no longer holds, asks for the future, or falls more than `backlog` events
 * behind, it gets a `resync` frame (PROTOCOL §15).
 *
 * The hub knows nothing about HTTP.  A transport plugs in with two callbacks,
 * both called with the hub lock held: `park` when a subscriber has nothing to
 * send (suspend the connection), `wake` when a parked subscriber has data
 * again (resume it).  Holding the lock across both is what makes suspend and
 * resume race-free (docs/internals/events.md).  All functions are thread-safe.
 */
#ifndef LS_EVENTS_H
#define LS_EVENTS_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

#define EVENTS_DEFAULT_RING     4096
#define EVENTS_DEFAULT_BACKLOG  1024
#define EVENTS_DEFAULT_RETRY_MS 2000
#define EVENTS_DEFAULT_MAX_SUBS 10000
#define EVENTS_MAX_TYPE         32
#define EVENTS_MAX_DATA         (256 * 1024)
#define EVENTS_MAX_PENDING      65536 /* reserved ids not yet resolved */
#define EVENTS_MAX_RING         (1u << 20)
#define EVENTS_END              (-1L)

struct events_hub;
struct events_sub;

struct events_config {
    size_t ring_cap;        /* events kept for replay (>= 1) */
    size_t backlog;         /* max events a subscriber may be behind */
    unsigned retry_ms;      /* the retry: hint sent first on every stream */
    size_t max_subscribers; /* events_subscribe fails with LS_EFULL past it */
};

/*
 * events_new - a hub whose sequence continues after last_id (0 for a fresh
 * server).  Ids up to last_id count as no longer replayable.  NULL with *err
 * set (-ENOMEM, -EINVAL for a zero ring or a ring over EVENTS_MAX_RING).
 */
struct events_hub *events_new(const struct events_config *cfg, unsigned long long last_id,
                              int *err);

/* events_free - free the hub.  Every subscriber must be gone. NULL-safe. */
void events_free(struct events_hub *h);

/*
 * events_reserve - take the next id of the sequence.  Delivery stops at the
 * first reserved id until it is committed or cancelled.  Returns 0 or
 * LS_EFULL (too many unresolved reservations).
 */
LS_MUST_CHECK int events_reserve(struct events_hub *h, unsigned long long *id);

/*
 * events_commit - publish the event of a reserved id.  type is the SSE event
 * name; scope (a canonical path or gallery id, or NULL) is what subscriber
 * filters compare; is_gallery says whether scope is a gallery (presence) or an
 * item path.  data is one line of JSON (copied).  Returns 0, -EINVAL (id not
 * reserved, type or data malformed: the id is then cancelled), -ENOMEM (the
 * id is cancelled).  Wakes parked subscribers the event is for.
 */
LS_MUST_CHECK int events_commit(struct events_hub *h, unsigned long long id, const char *type,
                                const char *scope, bool is_gallery, const char *data, size_t len);

/* events_cancel - give a reserved id up; it is skipped on the wire. */
void events_cancel(struct events_hub *h, unsigned long long id);

/* events_publish - reserve and commit in one call; *id (optional) gets the id. */
LS_MUST_CHECK int events_publish(struct events_hub *h, const char *type, const char *scope,
                                 bool is_gallery, const char *data, size_t len,
                                 unsigned long long *id);

/* Where a new subscriber starts. */
struct events_sub_opts {
    bool has_last;              /* a resume id was given */
    bool last_invalid;          /* a resume id was given but is not a valid id */
    unsigned long long last_id; /* the resume id when has_last */
    const char *filter;         /* canonical folder, or NULL for every event */
};

typedef void (*events_cb)(void *ctx);

/*
 * events_subscribe - a new subscriber.  Its stream starts with the retry hint,
 * then the replay of every event after last_id still in the ring, or a resync
 * (too_old, future, invalid_id), then live events.  wake(ctx) is called with
 * the hub lock held whenever the subscriber is parked and has something to
 * send.  Returns NULL with *err = LS_EFULL (max_subscribers) or -ENOMEM.
 */
struct events_sub *events_subscribe(struct events_hub *h, const struct events_sub_opts *o,
                                    events_cb wake, void *ctx, int *err);

/*
 * events_sub_read - the next bytes of the subscriber's stream, at most max.
 * Returns the count (> 0); or 0 after calling park(park_ctx) with the hub lock
 * held, when there is nothing to send now (the subscriber is parked until
 * wake); or EVENTS_END when the stream is over (after a lagging resync, or at
 * shutdown).  Frames may be split across calls.  One reader at a time per
 * subscriber.
 */
long events_sub_read(struct events_sub *s, char *buf, size_t max, events_cb park, void *park_ctx);

/* events_unsubscribe - unlink and free; wake is never called again. NULL-safe. */
void events_unsubscribe(struct events_sub *s);

/* events_keepalive - every subscriber sends ": keepalive" at its next read; parked ones wake. */
void events_keepalive(struct events_hub *h);

/* events_shutdown - every subscriber ends at its next read; parked ones wake. Idempotent. */
void events_shutdown(struct events_hub *h);

/* events_last_id - the newest id whose event is visible (all ids up to it resolved). */
unsigned long long events_last_id(struct events_hub *h);

struct events_stats {
    size_t subscribers;
    unsigned long long last_event_id;
    size_t ring_size, ring_capacity;
    unsigned long long oldest_event_id; /* 0 when the ring is empty */
    unsigned long long resync_total;
    unsigned long long lagging_closed_total;
};

/* events_stats - counters for /health. */
void events_stats(struct events_hub *h, struct events_stats *out);

#endif
