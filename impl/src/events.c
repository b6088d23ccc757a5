/*
 * events.c - event hub: ids, ring, subscribers, SSE framing; see events.h.
 *
 * Invariants (all under hub->lock):
 * - ids are handed out by events_reserve in increasing order and sit in
 *   `pend` (sorted) until resolved; `visible` is the highest id such that
 *   every id up to it is resolved; only events with id <= visible are in the
 *   ring, in id order;
 * - ids <= evicted_max can no longer be replayed (evicted, or from before
 *   this process);
 * - a subscriber has consumed every event up to `cursor`; a parked subscriber
 *   has cursor == visible, is suspended by its transport, and is woken
 *   exactly once when an event for it arrives (or keepalive, or shutdown).
 */
#include "events.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define EVENTS_BATCH     (16 * 1024) /* bytes of frames built per read call */
#define EVENTS_MAX_FRAME (EVENTS_MAX_DATA + 128)

enum pend_state { PEND_RESERVED, PEND_COMMITTED, PEND_CANCELLED };

struct ev_entry {
    unsigned long long id;
    char *frame;
    size_t len;
    char *scope; /* NULL = matches every filter */
    bool gallery;
};

struct ev_pending {
    unsigned long long id;
    enum pend_state state;
    struct ev_entry e;
};

struct events_hub {
    pthread_mutex_t lock;
    struct events_config cfg;
    struct ev_entry *ring;
    size_t head, count;
    unsigned long long next_id, visible, evicted_max;
    struct ev_pending *pend;
    size_t npend, pcap;
    struct events_sub *subs;
    size_t nsubs;
    bool shutting_down;
    unsigned long long resync_total, lagging_total;
};

struct events_sub {
    struct events_hub *h;
    struct events_sub *prev, *next;
    unsigned long long cursor;
    char *filter;
    events_cb wake;
    void *ctx;
    bool parked, keepalive_due, retry_pending, ended;
    struct buf out;
    size_t off;
};

static void entry_free(struct ev_entry *e)
{
    free(e->frame);
    free(e->scope);
    memset(e, 0, sizeof(*e));
}

struct events_hub *events_new(const struct events_config *cfg, unsigned long long last_id, int *err)
{
    struct events_hub *h;

    if (!cfg->ring_cap || cfg->ring_cap > EVENTS_MAX_RING) {
        *err = -EINVAL;
        return NULL;
    }
    h = calloc(1, sizeof(*h));
    if (!h || !(h->ring = calloc(cfg->ring_cap, sizeof(*h->ring))) ||
        pthread_mutex_init(&h->lock, NULL) != 0) {
        if (h)
            free(h->ring);
        free(h);
        *err = -ENOMEM;
        return NULL;
    }
    h->cfg = *cfg;
    if (!h->cfg.backlog)
        h->cfg.backlog = EVENTS_DEFAULT_BACKLOG;
    if (!h->cfg.max_subscribers)
        h->cfg.max_subscribers = EVENTS_DEFAULT_MAX_SUBS;
    h->next_id = last_id + 1;
    h->visible = last_id;
    h->evicted_max = last_id;
    return h;
}

void events_free(struct events_hub *h)
{
    size_t i;

    if (!h)
        return;
    for (i = 0; i < h->count; i++)
        entry_free(&h->ring[(h->head + i) % h->cfg.ring_cap]);
    for (i = 0; i < h->npend; i++)
        entry_free(&h->pend[i].e);
    free(h->pend);
    free(h->ring);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* ------------------------------------------------------------------------
 * Publishing
 * ---------------------------------------------------------------------- */

int events_reserve(struct events_hub *h, unsigned long long *id)
{
    int rc = 0;

    pthread_mutex_lock(&h->lock);
    if (h->npend >= EVENTS_MAX_PENDING) {
        rc = LS_EFULL;
        goto out;
    }
    if (h->npend == h->pcap) {
        size_t ncap = h->pcap ? h->pcap * 2 : 16;
        struct ev_pending *p = realloc(h->pend, ncap * sizeof(*p));

        if (!p) {
            rc = -ENOMEM;
            goto out;
        }
        h->pend = p;
        h->pcap = ncap;
    }
    memset(&h->pend[h->npend], 0, sizeof(h->pend[0]));
    h->pend[h->npend].id = h->next_id;
    h->pend[h->npend].state = PEND_RESERVED;
    h->npend++;
    *id = h->next_id++;
out:
    pthread_mutex_unlock(&h->lock);
    return rc;
}

static struct ev_pending *pend_find(struct events_hub *h, unsigned long long id)
{
    size_t lo = 0, hi = h->npend;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (h->pend[mid].id == id)
            return &h->pend[mid];
        if (h->pend[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static bool scope_matches(const char *filter, const char *scope, bool gallery)
{
    size_t fl;

    if (!filter || !scope || strcmp(filter, "/") == 0)
        return true;
    fl = strlen(filter);
    if (strncmp(scope, filter, fl) != 0)
        return false;
    if (scope[fl] == '/')
        return true;
    return gallery &&
           scope[fl] == '\0'; /* a gallery matches itself; an item path never equals a folder */
}

static void ring_push(struct events_hub *h, struct ev_entry *e)
{
    size_t cap = h->cfg.ring_cap;

    if (h->count == cap) {
        struct ev_entry *old = &h->ring[h->head];

        h->evicted_max = old->id;
        entry_free(old);
        h->head = (h->head + 1) % cap;
        h->count--;
    }
    h->ring[(h->head + h->count) % cap] = *e;
    h->count++;
    memset(e, 0, sizeof(*e));
}

/* The logical index of the first ring entry with id > after (count if none). */
static size_t ring_after(const struct events_hub *h, unsigned long long after)
{
    size_t lo = 0, hi = h->count;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (h->ring[(h->head + mid) % h->cfg.ring_cap].id <= after)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static const struct ev_entry *ring_at(const struct events_hub *h, size_t i)
{
    return &h->ring[(h->head + i) % h->cfg.ring_cap];
}

/*
 * Move the resolved prefix of `pend` into the ring and tell parked
 * subscribers: wake those with a new event for them, and move the cursor of
 * the others past events their filter drops (so a quiet filtered stream is
 * never mistaken for a lagging one).
 */
static void advance(struct events_hub *h)
{
    unsigned long long old = h->visible;
    size_t n = 0, first;
    struct events_sub *s;

    while (n < h->npend && h->pend[n].state != PEND_RESERVED) {
        if (h->pend[n].state == PEND_COMMITTED)
            ring_push(h, &h->pend[n].e);
        h->visible = h->pend[n].id;
        n++;
    }
    if (!n)
        return;
    memmove(h->pend, h->pend + n, (h->npend - n) * sizeof(*h->pend));
    h->npend -= n;
    if (h->visible == old)
        return;
    first = ring_after(h, old);
    for (s = h->subs; s; s = s->next) {
        bool want = false;
        size_t i;

        if (!s->parked)
            continue;
        for (i = first; i < h->count && !want; i++)
            want = scope_matches(s->filter, ring_at(h, i)->scope, ring_at(h, i)->gallery);
        if (want) {
            s->parked = false;
            s->wake(s->ctx);
        } else if (s->cursor == old) {
            s->cursor = h->visible;
        }
    }
}

/* A type or data line must not break the frame: no CR, LF or NUL. */
static bool line_ok(const char *s, size_t n)
{
    return memchr(s, '\n', n) == NULL && memchr(s, '\r', n) == NULL && memchr(s, '\0', n) == NULL;
}

int events_commit(struct events_hub *h, unsigned long long id, const char *type, const char *scope,
                  bool is_gallery, const char *data, size_t len)
{
    struct ev_pending *p;
    struct ev_entry e;
    struct buf b;
    size_t tl = strlen(type);
    int rc = 0;

    memset(&e, 0, sizeof(e));
    buf_init(&b, EVENTS_MAX_FRAME);
    if (tl == 0 || tl > EVENTS_MAX_TYPE || !line_ok(type, tl) || len > EVENTS_MAX_DATA ||
        !line_ok(data, len))
        rc = -EINVAL;
    if (!rc)
        rc = buf_appendf(&b, "id: %llu\nevent: %s\ndata: ", id, type);
    if (!rc)
        rc = buf_append(&b, data, len);
    if (!rc)
        rc = buf_append(&b, "\n\n", 2);
    if (!rc && scope && !(e.scope = strdup(scope)))
        rc = -ENOMEM;
    pthread_mutex_lock(&h->lock);
    p = pend_find(h, id);
    if (!p || p->state != PEND_RESERVED) {
        pthread_mutex_unlock(&h->lock);
        buf_cleanup(&b);
        free(e.scope);
        return -EINVAL;
    }
    if (rc) {
        p->state = PEND_CANCELLED;
        free(e.scope);
        buf_cleanup(&b);
    } else {
        e.id = id;
        e.gallery = is_gallery;
        e.frame = buf_take(&b, &e.len);
        if (!e.frame) {
            p->state = PEND_CANCELLED;
            free(e.scope);
            rc = -ENOMEM;
        } else {
            p->state = PEND_COMMITTED;
            p->e = e;
        }
    }
    advance(h);
    pthread_mutex_unlock(&h->lock);
    return rc;
}

void events_cancel(struct events_hub *h, unsigned long long id)
{
    struct ev_pending *p;

    pthread_mutex_lock(&h->lock);
    p = pend_find(h, id);
    if (p && p->state == PEND_RESERVED) {
        p->state = PEND_CANCELLED;
        advance(h);
    }
    pthread_mutex_unlock(&h->lock);
}

int events_publish(struct events_hub *h, const char *type, const char *scope, bool is_gallery,
                   const char *data, size_t len, unsigned long long *id)
{
    unsigned long long n;
    int rc = events_reserve(h, &n);

    if (rc)
        return rc;
    if (id)
        *id = n;
    return events_commit(h, n, type, scope, is_gallery, data, len);
}

/* ------------------------------------------------------------------------
 * Subscribers
 * ---------------------------------------------------------------------- */

/* Queue a resync frame; id = the cursor, so later live ids stay increasing. */
static int sub_resync(struct events_sub *s, const char *reason, bool has_req,
                      unsigned long long req)
{
    char reqs[24];

    s->h->resync_total++;
    if (has_req)
        snprintf(reqs, sizeof(reqs), "%llu", req);
    else
        snprintf(reqs, sizeof(reqs), "null");
    return buf_appendf(&s->out,
                       "id: %llu\nevent: resync\ndata: {\"reason\":\"%s\",\"last_event_id\":%llu,"
                       "\"requested\":%s}\n\n",
                       s->cursor, reason, s->cursor, reqs);
}

struct events_sub *events_subscribe(struct events_hub *h, const struct events_sub_opts *o,
                                    events_cb wake, void *ctx, int *err)
{
    struct events_sub *s = calloc(1, sizeof(*s));
    int rc = 0;

    if (!s || (o->filter && !(s->filter = strdup(o->filter)))) {
        free(s);
        *err = -ENOMEM;
        return NULL;
    }
    s->h = h;
    s->wake = wake;
    s->ctx = ctx;
    s->retry_pending = true;
    buf_init(&s->out, EVENTS_BATCH + EVENTS_MAX_FRAME);
    pthread_mutex_lock(&h->lock);
    if (h->nsubs >= h->cfg.max_subscribers || h->shutting_down) {
        rc = LS_EFULL;
        goto out;
    }
    s->cursor = h->visible;
    /* The retry hint goes first; a resync (if any) right after it. */
    rc = buf_appendf(&s->out, "retry: %u\n\n", h->cfg.retry_ms);
    s->retry_pending = false;
    if (!rc && o->last_invalid)
        rc = sub_resync(s, "invalid_id", false, 0);
    else if (!rc && o->has_last && o->last_id > h->visible)
        rc = sub_resync(s, "future", true, o->last_id);
    else if (!rc && o->has_last &&
             (o->last_id < h->evicted_max || h->visible - o->last_id > h->cfg.backlog))
        /* Gone from the ring, or more than a backlog to replay (which would
         * only end in a lagging resync): the replay window is the smaller of
         * the ring and the backlog. */
        rc = sub_resync(s, "too_old", true, o->last_id);
    else if (!rc && o->has_last)
        s->cursor = o->last_id; /* replay (last_id, visible] from the ring */
    if (rc)
        goto out;
    s->next = h->subs;
    if (h->subs)
        h->subs->prev = s;
    h->subs = s;
    h->nsubs++;
out:
    pthread_mutex_unlock(&h->lock);
    if (rc) {
        buf_cleanup(&s->out);
        free(s->filter);
        free(s);
        *err = rc;
        return NULL;
    }
    return s;
}

/* Build more output for s; false when there is nothing to send now. */
static bool sub_fill(struct events_sub *s)
{
    struct events_hub *h = s->h;
    size_t i;

    if (h->shutting_down) {
        s->ended = true;
        return false;
    }
    if (h->visible > s->cursor &&
        (h->visible - s->cursor > h->cfg.backlog || s->cursor < h->evicted_max)) {
        /* Behind by more than the backlog, or events it still needed are
         * gone from the ring: tell it, and end the stream. */
        s->cursor = h->visible;
        h->lagging_total++;
        if (sub_resync(s, "lagging", false, 0) != 0)
            buf_reset(&s->out);
        s->ended = true;
        return s->out.len > 0;
    }
    for (i = ring_after(h, s->cursor); i < h->count && s->out.len < EVENTS_BATCH; i++) {
        const struct ev_entry *e = ring_at(h, i);

        if (scope_matches(s->filter, e->scope, e->gallery) &&
            buf_append(&s->out, e->frame, e->len) != 0)
            break; /* the batch is full; the rest goes out on the next call */
        s->cursor = e->id;
    }
    if (s->out.len)
        return true;
    if (s->keepalive_due) {
        s->keepalive_due = false;
        return buf_append(&s->out, ": keepalive\n\n", 13) == 0;
    }
    return false;
}

long events_sub_read(struct events_sub *s, char *buf, size_t max, events_cb park, void *park_ctx)
{
    struct events_hub *h = s->h;
    long n;

    pthread_mutex_lock(&h->lock);
    for (;;) {
        if (s->off < s->out.len) {
            size_t k = s->out.len - s->off;

            if (k > max)
                k = max;
            memcpy(buf, s->out.data + s->off, k);
            s->off += k;
            if (s->off == s->out.len) {
                buf_reset(&s->out);
                s->off = 0;
            }
            n = (long)k;
            break;
        }
        if (s->ended) {
            n = EVENTS_END;
            break;
        }
        if (!sub_fill(s)) {
            if (s->ended) {
                n = EVENTS_END;
                break;
            }
            s->parked = true;
            park(park_ctx);
            n = 0;
            break;
        }
    }
    pthread_mutex_unlock(&h->lock);
    return n;
}

void events_unsubscribe(struct events_sub *s)
{
    struct events_hub *h;

    if (!s)
        return;
    h = s->h;
    pthread_mutex_lock(&h->lock);
    if (s->prev)
        s->prev->next = s->next;
    else
        h->subs = s->next;
    if (s->next)
        s->next->prev = s->prev;
    h->nsubs--;
    pthread_mutex_unlock(&h->lock);
    buf_cleanup(&s->out);
    free(s->filter);
    free(s);
}

void events_keepalive(struct events_hub *h)
{
    struct events_sub *s;

    pthread_mutex_lock(&h->lock);
    for (s = h->subs; s; s = s->next) {
        s->keepalive_due = true;
        if (s->parked) {
            s->parked = false;
            s->wake(s->ctx);
        }
    }
    pthread_mutex_unlock(&h->lock);
}

void events_shutdown(struct events_hub *h)
{
    struct events_sub *s;

    pthread_mutex_lock(&h->lock);
    h->shutting_down = true;
    for (s = h->subs; s; s = s->next) {
        if (s->parked) {
            s->parked = false;
            s->wake(s->ctx);
        }
    }
    pthread_mutex_unlock(&h->lock);
}

unsigned long long events_last_id(struct events_hub *h)
{
    unsigned long long v;

    pthread_mutex_lock(&h->lock);
    v = h->visible;
    pthread_mutex_unlock(&h->lock);
    return v;
}

void events_stats(struct events_hub *h, struct events_stats *out)
{
    pthread_mutex_lock(&h->lock);
    out->subscribers = h->nsubs;
    out->last_event_id = h->visible;
    out->ring_size = h->count;
    out->ring_capacity = h->cfg.ring_cap;
    out->oldest_event_id = h->count ? ring_at(h, 0)->id : 0;
    out->resync_total = h->resync_total;
    out->lagging_closed_total = h->lagging_total;
    pthread_mutex_unlock(&h->lock);
}
