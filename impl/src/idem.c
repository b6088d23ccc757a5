/*
 * idem.c - idempotency table; see idem.h.
 *
 * A chained hash table over (scope, key) plus a doubly linked list in
 * insertion order.  Insertion order is also expiry order (every entry has the
 * same TTL), so expiry and eviction both work from the list head, and the
 * table never needs a full scan.
 */
#include "idem.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IDEM_BUCKETS_MIN 1024

struct idem_entry {
    struct idem_entry *hnext;       /* hash chain */
    struct idem_entry *prev, *next; /* insertion order */
    char *id;                       /* scope '\0' key '\0' */
    size_t idlen;
    uint64_t hash;
    unsigned char fp[IDEM_FP_LEN];
    long long created_us;
    int done;
    struct idem_response resp;
};

struct idem {
    pthread_mutex_t lock;
    struct idem_entry **buckets;
    size_t nbuckets;
    struct idem_entry *head, *tail;
    size_t count, bytes;
    size_t max_entries, max_bytes;
    long long ttl_us;
};

static uint64_t idem_hash(const char *p, size_t n)
{
    /* FNV-1a.  Keys are chosen by clients, so chains could be made long on
     * purpose; the damage is bounded because the table never holds more than
     * max_entries entries and the buckets are sized to that number. */
    uint64_t h = 1469598103934665603ULL;

    while (n--) {
        h ^= (unsigned char)*p++;
        h *= 1099511628211ULL;
    }
    return h;
}

struct idem *idem_new(size_t max_entries, size_t max_bytes, long long ttl_us)
{
    struct idem *t = calloc(1, sizeof(*t));
    size_t nb = IDEM_BUCKETS_MIN;

    if (!t)
        return NULL;
    while (nb < max_entries && nb < ((size_t)1 << 24))
        nb *= 2;
    t->buckets = calloc(nb, sizeof(*t->buckets));
    if (!t->buckets || pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t->buckets);
        free(t);
        return NULL;
    }
    t->nbuckets = nb;
    t->max_entries = max_entries ? max_entries : 1;
    t->max_bytes = max_bytes;
    t->ttl_us = ttl_us;
    return t;
}

static void idem_entry_free(struct idem_entry *e)
{
    free(e->id);
    idem_response_cleanup(&e->resp);
    free(e);
}

void idem_free(struct idem *t)
{
    struct idem_entry *e, *n;

    if (!t)
        return;
    for (e = t->head; e; e = n) {
        n = e->next;
        idem_entry_free(e);
    }
    free(t->buckets);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

/* Build the composite id "scope\0key\0"; returns its length or 0 on failure. */
static char *idem_make_id(const char *scope, const char *key, size_t *len)
{
    size_t ls = strlen(scope), lk = strlen(key);
    char *id;

    if (ls > IDEM_MAX_SCOPE || lk == 0 || lk > IDEM_MAX_KEY)
        return NULL;
    id = malloc(ls + lk + 2);
    if (!id)
        return NULL;
    memcpy(id, scope, ls + 1);
    memcpy(id + ls + 1, key, lk + 1);
    *len = ls + lk + 2;
    return id;
}

static struct idem_entry *idem_find(struct idem *t, const char *id, size_t len, uint64_t h)
{
    struct idem_entry *e = t->buckets[h & (t->nbuckets - 1)];

    for (; e; e = e->hnext)
        if (e->hash == h && e->idlen == len && memcmp(e->id, id, len) == 0)
            return e;
    return NULL;
}

static void idem_unlink(struct idem *t, struct idem_entry *e)
{
    struct idem_entry **pp = &t->buckets[e->hash & (t->nbuckets - 1)];

    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->prev)
        e->prev->next = e->next;
    else
        t->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        t->tail = e->prev;
    t->count--;
    t->bytes -= e->resp.body_len;
    idem_entry_free(e);
}

/* Drop expired completed entries from the head of the insertion list. */
static void idem_expire(struct idem *t, long long now_us)
{
    struct idem_entry *e = t->head, *n;

    for (; e && now_us - e->created_us > t->ttl_us; e = n) {
        n = e->next;
        if (e->done)
            idem_unlink(t, e);
    }
}

/* Evict the oldest completed entries until one more entry of `extra` bytes fits. */
static int idem_make_room(struct idem *t, size_t extra)
{
    struct idem_entry *e = t->head, *n;

    while ((t->count >= t->max_entries || t->bytes + extra > t->max_bytes) && e) {
        n = e->next;
        if (e->done)
            idem_unlink(t, e);
        e = n;
    }
    if (t->count >= t->max_entries || t->bytes + extra > t->max_bytes)
        return LS_EFULL;
    return 0;
}

static int idem_copy_response(struct idem_response *dst, const struct idem_response *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->status = src->status;
    dst->body = malloc(src->body_len + 1);
    if (!dst->body)
        return -ENOMEM;
    memcpy(dst->body, src->body, src->body_len);
    dst->body[src->body_len] = '\0';
    dst->body_len = src->body_len;
    if (src->etag) {
        dst->etag = strdup(src->etag);
        if (!dst->etag) {
            idem_response_cleanup(dst);
            return -ENOMEM;
        }
    }
    return 0;
}

int idem_begin(struct idem *t, const char *scope, const char *key,
               const unsigned char fp[IDEM_FP_LEN], long long now_us, enum idem_verdict *verdict,
               struct idem_response *replay)
{
    struct idem_entry *e;
    size_t len = 0;
    uint64_t h;
    char *id;
    int rc = 0;

    memset(replay, 0, sizeof(*replay));
    id = idem_make_id(scope, key, &len);
    if (!id)
        return -ENOMEM;
    h = idem_hash(id, len);
    pthread_mutex_lock(&t->lock);
    idem_expire(t, now_us);
    e = idem_find(t, id, len, h);
    if (e && e->done && now_us - e->created_us > t->ttl_us) {
        idem_unlink(t, e); /* expired but not yet at the head: treat as new */
        e = NULL;
    }
    if (e) {
        free(id);
        if (memcmp(e->fp, fp, IDEM_FP_LEN) != 0)
            *verdict = IDEM_MISMATCH;
        else if (!e->done)
            *verdict = IDEM_IN_FLIGHT;
        else {
            rc = idem_copy_response(replay, &e->resp);
            *verdict = IDEM_REPLAY;
        }
        goto out;
    }
    rc = idem_make_room(t, 0);
    if (rc) {
        free(id);
        goto out;
    }
    e = calloc(1, sizeof(*e));
    if (!e) {
        free(id);
        rc = -ENOMEM;
        goto out;
    }
    e->id = id;
    e->idlen = len;
    e->hash = h;
    memcpy(e->fp, fp, IDEM_FP_LEN);
    e->created_us = now_us;
    e->hnext = t->buckets[h & (t->nbuckets - 1)];
    t->buckets[h & (t->nbuckets - 1)] = e;
    e->prev = t->tail;
    if (t->tail)
        t->tail->next = e;
    else
        t->head = e;
    t->tail = e;
    t->count++;
    *verdict = IDEM_PROCEED;
out:
    pthread_mutex_unlock(&t->lock);
    return rc;
}

int idem_complete(struct idem *t, const char *scope, const char *key, int status, const char *body,
                  size_t body_len, const char *etag, long long now_us)
{
    struct idem_entry *e;
    struct idem_response src;
    size_t len = 0;
    char *id = idem_make_id(scope, key, &len);
    int rc;

    if (!id)
        return -ENOMEM;
    pthread_mutex_lock(&t->lock);
    e = idem_find(t, id, len, idem_hash(id, len));
    free(id);
    if (!e || e->done) {
        rc = LS_ENOTFOUND;
        goto out;
    }
    if (body_len > t->max_bytes) {
        idem_unlink(t, e);
        rc = LS_ETOOBIG;
        goto out;
    }
    src.status = status;
    src.body = (char *)(uintptr_t)body; /* only read by idem_copy_response */
    src.body_len = body_len;
    src.etag = (char *)(uintptr_t)etag;
    rc = idem_copy_response(&e->resp, &src);
    if (rc) {
        idem_unlink(t, e);
        goto out;
    }
    e->done = 1;
    /* The retention clock starts when the outcome exists, not at reservation.
     * This can leave the insertion list very slightly out of time order,
     * which only delays lazy expiry; it never shortens retention. */
    if (now_us > e->created_us)
        e->created_us = now_us;
    t->bytes += body_len;
    /* Keep the byte bound: evict older completed entries (never this one, which
     * is the newest) if the new body pushed the total over. */
    while (t->bytes > t->max_bytes && t->head && t->head != e) {
        struct idem_entry *h = t->head;

        while (h && (!h->done || h == e))
            h = h->next;
        if (!h)
            break;
        idem_unlink(t, h);
    }
out:
    pthread_mutex_unlock(&t->lock);
    return rc;
}

int idem_restore(struct idem *t, const char *scope, const char *key,
                 const unsigned char fp[IDEM_FP_LEN], int status, const char *body, size_t body_len,
                 const char *etag, long long created_us, long long now_us)
{
    enum idem_verdict v;
    struct idem_response r;
    int rc;

    if (now_us - created_us > t->ttl_us)
        return 0; /* expired while the server was down */
    idem_cancel(t, scope, key);
    {
        /* Drop a completed entry too: the log's newest outcome wins. */
        size_t len = 0;
        char *id = idem_make_id(scope, key, &len);
        struct idem_entry *e;

        if (!id)
            return -ENOMEM;
        pthread_mutex_lock(&t->lock);
        e = idem_find(t, id, len, idem_hash(id, len));
        if (e)
            idem_unlink(t, e);
        pthread_mutex_unlock(&t->lock);
        free(id);
    }
    rc = idem_begin(t, scope, key, fp, created_us, &v, &r);
    if (rc)
        return rc;
    idem_response_cleanup(&r);
    return idem_complete(t, scope, key, status, body, body_len, etag, created_us);
}

void idem_cancel(struct idem *t, const char *scope, const char *key)
{
    struct idem_entry *e;
    size_t len = 0;
    char *id = idem_make_id(scope, key, &len);

    if (!id)
        return;
    pthread_mutex_lock(&t->lock);
    e = idem_find(t, id, len, idem_hash(id, len));
    if (e && !e->done)
        idem_unlink(t, e);
    pthread_mutex_unlock(&t->lock);
    free(id);
}

size_t idem_count(struct idem *t)
{
    size_t n;

    pthread_mutex_lock(&t->lock);
    n = t->count;
    pthread_mutex_unlock(&t->lock);
    return n;
}

void idem_response_cleanup(struct idem_response *r)
{
    if (!r)
        return;
    free(r->body);
    free(r->etag);
    memset(r, 0, sizeof(*r));
}

/* ---------------------------------------------------------------------------
 * SHA-256 (FIPS 180-4), small and table-driven; only used for fingerprints.
 * ------------------------------------------------------------------------- */

static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define SHA_ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t st[8], const unsigned char *p)
{
    uint32_t w[64], a, b, c, d, e, f, g, h;
    int i;

    for (i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (i = 16; i < 64; i++) {
        uint32_t s0 = SHA_ROR(w[i - 15], 7) ^ SHA_ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = SHA_ROR(w[i - 2], 17) ^ SHA_ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6], h = st[7];
    for (i = 0; i < 64; i++) {
        uint32_t t1 = h + (SHA_ROR(e, 6) ^ SHA_ROR(e, 11) ^ SHA_ROR(e, 25)) + ((e & f) ^ (~e & g)) +
                      sha256_k[i] + w[i];
        uint32_t t2 =
            (SHA_ROR(a, 2) ^ SHA_ROR(a, 13) ^ SHA_ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    st[0] += a, st[1] += b, st[2] += c, st[3] += d;
    st[4] += e, st[5] += f, st[6] += g, st[7] += h;
}

void idem_sha256(const void *data, size_t len, unsigned char out[IDEM_FP_LEN])
{
    uint32_t st[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                      0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    const unsigned char *p = data;
    unsigned char tail[128];
    size_t rest = len % 64, tlen, i;
    uint64_t bits = (uint64_t)len * 8;

    for (i = 0; i + 64 <= len; i += 64)
        sha256_block(st, p + i);
    memset(tail, 0, sizeof(tail));
    if (rest)
        memcpy(tail, p + len - rest, rest);
    tail[rest] = 0x80;
    tlen = rest < 56 ? 64 : 128;
    for (i = 0; i < 8; i++)
        tail[tlen - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (i = 0; i < tlen; i += 64)
        sha256_block(st, tail + i);
    for (i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(st[i] >> 24);
        out[4 * i + 1] = (unsigned char)(st[i] >> 16);
        out[4 * i + 2] = (unsigned char)(st[i] >> 8);
        out[4 * i + 3] = (unsigned char)st[i];
    }
}
