/*
 * idem.h - the idempotency table: (scope, key) -> request fingerprint and the
 * stored response of the first request that used the key.
 *
 * Semantics (PROTOCOL.md §6): the first request with a key reserves it
 * (in flight); when it finishes, its outcome is stored with idem_complete, or
 * the reservation is dropped with idem_cancel for outcomes that are not
 * stored.  A later request with the same key and the same fingerprint gets the
 * stored response again; a different fingerprint is a mismatch; a request
 * arriving while the first still runs is told so.
 *
 * Bounds: at most max_entries entries and max_bytes of stored bodies; entries
 * older than the TTL expire.  Past a bound the oldest completed entries are
 * evicted first; in-flight entries are never evicted (when nothing can be
 * evicted, idem_begin fails with LS_EFULL).  Time is passed in by the caller
 * (microseconds), so tests control it.  All functions are thread-safe.
 */
#ifndef LS_IDEM_H
#define LS_IDEM_H

#include <stddef.h>

#include "err.h"

#define IDEM_FP_LEN          32
#define IDEM_MAX_KEY         255
#define IDEM_MAX_SCOPE       128
#define IDEM_DEFAULT_ENTRIES 65536
#define IDEM_DEFAULT_BYTES   (64u * 1024u * 1024u)
#define IDEM_DEFAULT_TTL_US  (24LL * 3600 * 1000000)

struct idem;

enum idem_verdict {
    IDEM_PROCEED,   /* new key: reserved for this request; finish with complete or cancel */
    IDEM_REPLAY,    /* same key, same fingerprint, completed: *replay holds the response */
    IDEM_MISMATCH,  /* same key, different fingerprint */
    IDEM_IN_FLIGHT, /* same key, the first request has not finished */
};

/* A stored response. idem_begin fills it with owned copies on IDEM_REPLAY. */
struct idem_response {
    int status;
    char *body;
    size_t body_len;
    char *etag; /* may be NULL */
};

/* idem_new - an empty table. NULL on allocation failure. */
struct idem *idem_new(size_t max_entries, size_t max_bytes, long long ttl_us);

/* idem_free - free the table and every stored response. NULL-safe. */
void idem_free(struct idem *t);

/*
 * idem_begin - look (scope, key) up and, when unknown, reserve it.  scope is
 * the client identity ("" for none); both strings are copied.  Returns 0 with
 * *verdict set (and *replay filled on IDEM_REPLAY, else zeroed), or
 * LS_EFULL / -ENOMEM with nothing reserved.
 */
LS_MUST_CHECK int idem_begin(struct idem *t, const char *scope, const char *key,
                             const unsigned char fp[IDEM_FP_LEN], long long now_us,
                             enum idem_verdict *verdict, struct idem_response *replay);

/*
 * idem_complete - store the outcome of a reserved key (copies body and etag).
 * Returns 0, LS_ENOTFOUND if the key is not reserved, LS_ETOOBIG if the body
 * alone exceeds max_bytes (the reservation is then dropped), or -ENOMEM (the
 * reservation is dropped).
 */
LS_MUST_CHECK int idem_complete(struct idem *t, const char *scope, const char *key, int status,
                                const char *body, size_t body_len, const char *etag,
                                long long now_us);

/*
 * idem_restore - start-up: put back a completed outcome from the durable log.
 * created_us is when it was stored, on the same clock as later calls' now_us
 * (it may lie in the past); an outcome already past the TTL is ignored.  An
 * existing entry for the key is replaced.  Returns 0, LS_EFULL, -ENOMEM.
 */
LS_MUST_CHECK int idem_restore(struct idem *t, const char *scope, const char *key,
                               const unsigned char fp[IDEM_FP_LEN], int status, const char *body,
                               size_t body_len, const char *etag, long long created_us,
                               long long now_us);

/* idem_cancel - drop a reservation whose outcome is not stored. No-op if absent. */
void idem_cancel(struct idem *t, const char *scope, const char *key);

/* idem_count - entries currently held (in flight + completed, expired ones may linger). */
size_t idem_count(struct idem *t);

/* idem_response_cleanup - free a response filled by idem_begin. NULL-safe. */
void idem_response_cleanup(struct idem_response *r);

/* idem_sha256 - SHA-256 of data (used for request fingerprints). */
void idem_sha256(const void *data, size_t len, unsigned char out[IDEM_FP_LEN]);

#endif
