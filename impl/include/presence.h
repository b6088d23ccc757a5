/*
 * presence.h - who is looking at which gallery: sessions, leases, TTL expiry,
 * and the (viewing, editing) counts per gallery (PROTOCOL §16).
 *
 * One session per client id.  A session sits in exactly one gallery and holds
 * a lease (32 lowercase hex, from the injected random source), the time of its
 * last view (join, heartbeat, move) and of its client's last write.  A session
 * whose last view is older than the view TTL is gone: every call first
 * expires such sessions and lapses edits older than the edit TTL, so no count
 * ever includes an expired session.
 *
 * Time is injected: every call takes now_us (monotonic microseconds).  The
 * module never lets time run backwards: the effective time of a call is the
 * largest now_us seen so far, so callers on several threads may read the
 * clock before taking their turn.
 *
 * Change reporting: the module remembers, per gallery, the (viewing, editing)
 * pair it last reported.  A call given a change list appends every gallery
 * whose pair now differs from the last reported one, sorted bytewise, and
 * records the new pair; a gallery that became empty is reported once as 0/0
 * and then forgotten.  Changes not handed out (a NULL list, or no memory)
 * stay pending and go to the next call that takes a list.
 *
 * No HTTP, no JSON, no canonicalization: callers pass canonical gallery ids
 * and validated client ids.  All functions are thread-safe (one mutex; every
 * call is atomic), except presence_new and presence_free.
 */
#ifndef LS_PRESENCE_H
#define LS_PRESENCE_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

#define PRESENCE_MAX_CLIENTS         100000 /* sessions; a new one past this is LS_EFULL */
#define PRESENCE_MAX_ID              128    /* bytes in a client id */
#define PRESENCE_MAX_GALLERY         1024   /* bytes in a gallery id */
#define PRESENCE_LEASE_LEN           32     /* hex characters in a lease id */
#define PRESENCE_DEFAULT_VIEW_TTL_US (75LL * 1000000)
#define PRESENCE_DEFAULT_EDIT_TTL_US (60LL * 1000000)

struct presence;

struct presence_config {
    long long view_ttl_us, edit_ttl_us; /* 0 = the defaults above; negative = LS_EVALUE */
    /* Fills out with n random bytes; NULL = getrandom(2).  Called with the
     * presence lock held, so it must not call back into this module. */
    void (*random)(void *ctx, unsigned char *out, size_t n);
    void *random_ctx;
    size_t max_clients; /* 0 = PRESENCE_MAX_CLIENTS; larger values are clamped to it */
};

/* One gallery and its counts.  gallery_id is owned by the list holding it. */
struct presence_count {
    char *gallery_id;
    unsigned viewing, editing;
};

/* A growable list of counts; zero-initialize, free with presence_changes_cleanup. */
struct presence_changes {
    struct presence_count *items;
    size_t n, cap;
};

enum presence_result {
    PRESENCE_OK = 0,
    PRESENCE_INVALID_LEASE,  /* no session, or the lease is not the session's */
    PRESENCE_SCOPE_MISMATCH, /* the session is in another gallery (gallery_id says which) */
};

/*
 * What a call did.  lease_id is the session's lease after the call when the
 * caller holds it (join, heartbeat, and move/leave with the right lease), ""
 * otherwise.  gallery_id: join/heartbeat/leave and invalid_lease: the
 * requested gallery (move: from); scope_mismatch: the session's actual one.
 * viewing/editing are the true counts of gallery_id after the call.
 */
struct presence_reply {
    enum presence_result result;
    char lease_id[PRESENCE_LEASE_LEN + 1];
    char gallery_id[PRESENCE_MAX_GALLERY + 1];
    unsigned viewing, editing;
    char from_gallery[PRESENCE_MAX_GALLERY + 1]; /* move */
    unsigned from_viewing, from_editing;
    char to_gallery[PRESENCE_MAX_GALLERY + 1]; /* move */
    unsigned to_viewing, to_editing;
    bool removed; /* leave: a session was removed */
};

struct presence_stats {
    size_t active_clients, active_scopes; /* sessions; galleries with at least one */
    unsigned long long stale_pruned_total, invalid_lease_total, scope_mismatch_total;
};

/*
 * presence_new - an empty tracker.  cfg may be NULL (all defaults); it is
 * copied.  Draws 16 bytes from the random source for its hash key.  Returns
 * the tracker, or NULL with *err (optional) set to LS_EVALUE for a negative
 * TTL or -ENOMEM.  Not thread-safe with respect to the new object (nothing
 * else can see it yet).
 */
struct presence *presence_new(const struct presence_config *cfg, int *err);

/* presence_free - free the tracker and every session. NULL-safe. No call may be running. */
void presence_free(struct presence *p);

/*
 * Common to the five session calls below.  client is 1..PRESENCE_MAX_ID bytes
 * and every gallery 1..PRESENCE_MAX_GALLERY bytes (else LS_EVALUE when NULL or
 * empty, LS_ETOOBIG when too long); strings are borrowed and copied as
 * needed, and may point into *out.  out is filled on success and zeroed on
 * failure.  The return value
 * is 0 whenever *out->result says what happened (an invalid lease or a scope
 * mismatch is 0, not an error), or a negative error: LS_EFULL when a new
 * session would exceed max_clients, -ENOMEM.  A failing call changes nothing
 * but the expiry of lapsed sessions, and reports nothing.  ch may be NULL;
 * otherwise the call appends the changed galleries (see above).  Thread-safe.
 */

/*
 * presence_join - join gallery.  No session: a new session with a new lease
 * (a lease sent along is ignored: the client is recovering after a restart).
 * Session and the same lease: a heartbeat, moved to gallery if elsewhere.
 * Session and lease NULL or "": takeover; the old lease stops working and a
 * new one is issued (moved if needed).  Session and a different lease:
 * PRESENCE_INVALID_LEASE (counted).  The last write time survives a move and
 * a takeover: the same client wrote it.
 */
LS_MUST_CHECK int presence_join(struct presence *p, const char *client, const char *gallery,
                                const char *lease, long long now_us, struct presence_reply *out,
                                struct presence_changes *ch);

/*
 * presence_move - move the session from `from` to `to`.  No session or a
 * lease that is not the session's: PRESENCE_INVALID_LEASE (counted; checked
 * before the scope).  Session already in `to`: OK, a heartbeat, with the true
 * counts of both galleries.  Session elsewhere than `from`:
 * PRESENCE_SCOPE_MISMATCH (counted), gallery_id = the actual gallery.  Else
 * the session moves (last view = now; its last write is kept).  out carries
 * from_* and to_* counts in every case.
 */
LS_MUST_CHECK int presence_move(struct presence *p, const char *client, const char *lease,
                                const char *from, const char *to, long long now_us,
                                struct presence_reply *out, struct presence_changes *ch);

/*
 * presence_leave - end the session.  No session: OK with removed = false
 * (idempotent) and the true counts.  Wrong lease: PRESENCE_INVALID_LEASE;
 * session in another gallery: PRESENCE_SCOPE_MISMATCH (both counted).  Else
 * the session is removed (removed = true).
 */
LS_MUST_CHECK int presence_leave(struct presence *p, const char *client, const char *lease,
                                 const char *gallery, long long now_us, struct presence_reply *out,
                                 struct presence_changes *ch);

/*
 * presence_heartbeat - the legacy POST /presence: create the session (new
 * lease) if there is none, else refresh its last view and move it to gallery
 * if needed, keeping its lease.  Always PRESENCE_OK.
 */
LS_MUST_CHECK int presence_heartbeat(struct presence *p, const char *client, const char *gallery,
                                     long long now_us, struct presence_reply *out,
                                     struct presence_changes *ch);

/*
 * presence_touch_edit - the client wrote (a 200 PATCH/PUT): its session, if
 * any, counts as editing until the edit TTL passes.  No session: a no-op (the
 * write is not remembered).  Does not refresh the last view.  Returns 0,
 * LS_EVALUE / LS_ETOOBIG for a bad client id.  Thread-safe.
 */
int presence_touch_edit(struct presence *p, const char *client, long long now_us,
                        struct presence_changes *ch);

/*
 * presence_prune - expire sessions whose last view is older than the view TTL
 * (counted in stale_pruned_total) and edits older than the edit TTL, and
 * report every pending change, including editing that lapsed with time.
 * Every other call expires too; this is the call for the periodic tick.
 * Returns 0.  Thread-safe.
 */
int presence_prune(struct presence *p, long long now_us, struct presence_changes *ch);

/*
 * presence_counts - the counts of one gallery at now_us (0/0 when nobody is
 * there).  Returns 0, or LS_EVALUE / LS_ETOOBIG for a bad gallery id (counts
 * then 0).  Changes caused by expiry stay pending.  Thread-safe.
 */
LS_MUST_CHECK int presence_counts(struct presence *p, const char *gallery, long long now_us,
                                  unsigned *viewing, unsigned *editing);

/* presence_stats - the diagnostics counters at now_us (after expiry). Thread-safe. */
void presence_stats(struct presence *p, long long now_us, struct presence_stats *out);

/*
 * presence_list - append every non-empty gallery with its counts, sorted
 * bytewise, to out (for diagnostics; not a change report).  Returns 0 or
 * -ENOMEM with out unchanged.  Thread-safe.
 */
LS_MUST_CHECK int presence_list(struct presence *p, long long now_us, struct presence_changes *out);

/*
 * presence_lookup - the session of client at now_us: its gallery (copied into
 * gallery, PRESENCE_MAX_GALLERY + 1 bytes), lease (PRESENCE_LEASE_LEN + 1
 * bytes) and whether it counts as editing; each output optional.  Returns 0,
 * LS_ENOTFOUND when the client has no session, LS_EVALUE / LS_ETOOBIG for a
 * bad client id.  For diagnostics and tests.  Thread-safe.
 */
LS_MUST_CHECK int presence_lookup(struct presence *p, const char *client, long long now_us,
                                  char *gallery, char *lease, bool *editing);

/*
 * presence_check - verify every internal invariant by a full recount (each
 * session in exactly one gallery, per-gallery counts, expiry lists in time
 * order, nothing expired left).  O(sessions).  Returns 0 or LS_ECORRUPT.  For
 * tests.  Thread-safe.
 */
LS_MUST_CHECK int presence_check(struct presence *p);

/* presence_changes_cleanup - free the items and empty the list. NULL-safe. */
void presence_changes_cleanup(struct presence_changes *ch);

#endif
