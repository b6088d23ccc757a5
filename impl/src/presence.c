/*
 * presence.c - sessions, leases, expiry and counts; see presence.h.
 *
 * Structure.  Two hash tables (client id -> session, gallery id -> scope),
 * keyed with SipHash-1-3 under a random key because client ids are chosen by
 * clients.  Every session is on the view list, ordered by last view; a session
 * whose client wrote within the edit TTL is also on the edit list, ordered by
 * last write.  Time never runs backwards (p->now is the largest now_us seen),
 * and a touch sets a time to p->now and moves the session to the tail, so
 * both lists stay sorted and expiry only ever looks at their heads.
 *
 * Invariants (presence_check verifies them):
 * - every session is in exactly one scope and on the view list, and it is on
 *   the edit list iff s->editing;
 * - scope->members / scope->editing = the sessions in it / those editing;
 * - after expire(): no session is older than the view TTL and no editing
 *   session's write is older than the edit TTL, so viewing == members;
 * - a scope exists iff it has members or its last reported pair is not 0/0;
 *   it is on the dirty list iff its pair may differ from the reported one.
 */
#include "presence.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define PRESENCE_BUCKETS_MIN 64
#define PRESENCE_LEASE_BYTES (PRESENCE_LEASE_LEN / 2)

struct hnode {
    struct hnode *next;
    uint64_t hash;
    const char *key;
    size_t len;
};

struct htab {
    struct hnode **b;
    size_t nb, n;
};

struct scope {
    struct hnode h;
    unsigned members, editing;   /* current pair (every member is viewing) */
    unsigned rep_view, rep_edit; /* last reported pair */
    bool dirty;                  /* on the dirty list */
    struct scope *dprev, *dnext; /* dirty list */
    unsigned tally_v, tally_e;   /* presence_check scratch */
    char id[];
};

struct session {
    struct hnode h;
    struct scope *scope;
    long long last_view, last_edit;
    bool editing;
    struct session *vprev, *vnext; /* view list */
    struct session *eprev, *enext; /* edit list (only while editing) */
    char lease[PRESENCE_LEASE_LEN + 1];
    char client[];
};

struct presence {
    pthread_mutex_t lock;
    struct htab sessions, scopes;
    struct session *vhead, *vtail, *ehead, *etail;
    struct scope *dhead;
    size_t nonempty;
    long long now;
    long long view_ttl, edit_ttl;
    size_t max_clients;
    void (*random)(void *ctx, unsigned char *out, size_t n);
    void *random_ctx;
    unsigned char hkey[16];
    unsigned long long stale_pruned, invalid_lease, scope_mismatch;
};

/* ---- random source --------------------------------------------------- */

static void presence_getrandom(void *ctx, unsigned char *out, size_t n)
{
    size_t got = 0;
    int fd;

    (void)ctx;
    while (got < n) {
        ssize_t r = getrandom(out + got, n - got, 0);

        if (r > 0)
            got += (size_t)r;
        else if (r < 0 && errno != EINTR)
            break;
    }
    if (got == n)
        return;
    /* Kernel without getrandom(2): the device.  Weak leases would let one
     * client end another's session, so no source at all is fatal. */
    fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    while (fd >= 0 && got < n) {
        ssize_t r = read(fd, out + got, n - got);

        if (r > 0)
            got += (size_t)r;
        else if (r == 0 || errno != EINTR)
            break;
    }
    if (fd >= 0)
        close(fd);
    if (got < n)
        abort();
}

/* ---- hashing --------------------------------------------------------- */

static uint64_t rotl64(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

#define SIPROUND             \
    do {                     \
        v0 += v1;            \
        v1 = rotl64(v1, 13); \
        v1 ^= v0;            \
        v0 = rotl64(v0, 32); \
        v2 += v3;            \
        v3 = rotl64(v3, 16); \
        v3 ^= v2;            \
        v0 += v3;            \
        v3 = rotl64(v3, 21); \
        v3 ^= v0;            \
        v2 += v1;            \
        v1 = rotl64(v1, 17); \
        v1 ^= v2;            \
        v2 = rotl64(v2, 32); \
    } while (0)

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* SipHash-1-3 (as in CPython and Rust's HashMap): keyed, so clients cannot
 * aim their ids at one bucket. */
static uint64_t siphash13(const unsigned char key[16], const char *s, size_t len)
{
    const unsigned char *in = (const unsigned char *)s;
    uint64_t k0 = le64(key), k1 = le64(key + 8);
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    uint64_t b = (uint64_t)len << 56;
    size_t left = len;

    for (; left >= 8; in += 8, left -= 8) {
        uint64_t m = le64(in);

        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t i = 0; i < left; i++)
        b |= (uint64_t)in[i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- hash table (intrusive, chained, power-of-two buckets) ----------- */

static int htab_init(struct htab *t)
{
    t->b = calloc(PRESENCE_BUCKETS_MIN, sizeof(*t->b));
    t->nb = PRESENCE_BUCKETS_MIN;
    t->n = 0;
    return t->b ? 0 : -ENOMEM;
}

static struct hnode *htab_find(const struct htab *t, const char *key, size_t len, uint64_t h)
{
    struct hnode *e = t->b[h & (t->nb - 1)];

    for (; e; e = e->next)
        if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0)
            return e;
    return NULL;
}

/* Insert (cannot fail: when growing fails the chains just get longer). */
static void htab_insert(struct htab *t, struct hnode *e)
{
    struct hnode **slot;

    if (t->n >= t->nb) {
        size_t nb = t->nb * 2;
        struct hnode **b = calloc(nb, sizeof(*b));

        if (b) {
            for (size_t i = 0; i < t->nb; i++) {
                struct hnode *x = t->b[i], *next;

                for (; x; x = next) {
                    next = x->next;
                    x->next = b[x->hash & (nb - 1)];
                    b[x->hash & (nb - 1)] = x;
                }
            }
            free(t->b);
            t->b = b;
            t->nb = nb;
        }
    }
    slot = &t->b[e->hash & (t->nb - 1)];
    e->next = *slot;
    *slot = e;
    t->n++;
}

static void htab_remove(struct htab *t, struct hnode *e)
{
    struct hnode **pp = &t->b[e->hash & (t->nb - 1)];

    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    t->n--;
}

/* ---- scopes ---------------------------------------------------------- */

static struct scope *scope_find(struct presence *p, const char *gallery)
{
    size_t len = strlen(gallery);
    struct hnode *h = htab_find(&p->scopes, gallery, len, siphash13(p->hkey, gallery, len));

    return h ? (struct scope *)(void *)h : NULL;
}

/* The scope of gallery, created (empty, clean) when missing; NULL = no memory. */
static struct scope *scope_get(struct presence *p, const char *gallery)
{
    size_t len = strlen(gallery);
    struct scope *sc = scope_find(p, gallery);

    if (sc)
        return sc;
    sc = calloc(1, sizeof(*sc) + len + 1);
    if (!sc)
        return NULL;
    memcpy(sc->id, gallery, len + 1);
    sc->h.key = sc->id;
    sc->h.len = len;
    sc->h.hash = siphash13(p->hkey, gallery, len);
    htab_insert(&p->scopes, &sc->h);
    return sc;
}

static void scope_mark(struct presence *p, struct scope *sc)
{
    if (sc->dirty)
        return;
    sc->dirty = true;
    sc->dprev = NULL;
    sc->dnext = p->dhead;
    if (p->dhead)
        p->dhead->dprev = sc;
    p->dhead = sc;
}

static void scope_unmark(struct presence *p, struct scope *sc)
{
    if (!sc->dirty)
        return;
    if (sc->dprev)
        sc->dprev->dnext = sc->dnext;
    else
        p->dhead = sc->dnext;
    if (sc->dnext)
        sc->dnext->dprev = sc->dprev;
    sc->dirty = false;
    sc->dprev = sc->dnext = NULL;
}

/* Forget a scope with nobody in it and nothing left to report. */
static void scope_release_if_idle(struct presence *p, struct scope *sc)
{
    if (sc->members || sc->rep_view || sc->rep_edit)
        return;
    scope_unmark(p, sc);
    htab_remove(&p->scopes, &sc->h);
    free(sc);
}

static void scope_add(struct presence *p, struct scope *sc, const struct session *s)
{
    if (sc->members++ == 0)
        p->nonempty++;
    if (s->editing)
        sc->editing++;
    scope_mark(p, sc);
}

/* Take s out of its scope's counts; the scope may be freed. */
static void scope_del(struct presence *p, struct scope *sc, const struct session *s)
{
    if (--sc->members == 0)
        p->nonempty--;
    if (s->editing)
        sc->editing--;
    scope_mark(p, sc);
    scope_release_if_idle(p, sc);
}

/* ---- time lists ------------------------------------------------------ */

static void view_unlink(struct presence *p, struct session *s)
{
    if (s->vprev)
        s->vprev->vnext = s->vnext;
    else
        p->vhead = s->vnext;
    if (s->vnext)
        s->vnext->vprev = s->vprev;
    else
        p->vtail = s->vprev;
    s->vprev = s->vnext = NULL;
}

static void view_append(struct presence *p, struct session *s)
{
    s->vprev = p->vtail;
    s->vnext = NULL;
    if (p->vtail)
        p->vtail->vnext = s;
    else
        p->vhead = s;
    p->vtail = s;
}

static void edit_unlink(struct presence *p, struct session *s)
{
    if (s->eprev)
        s->eprev->enext = s->enext;
    else
        p->ehead = s->enext;
    if (s->enext)
        s->enext->eprev = s->eprev;
    else
        p->etail = s->eprev;
    s->eprev = s->enext = NULL;
}

static void edit_append(struct presence *p, struct session *s)
{
    s->eprev = p->etail;
    s->enext = NULL;
    if (p->etail)
        p->etail->enext = s;
    else
        p->ehead = s;
    p->etail = s;
}

/* now - then > ttl, exact for any pair with then <= now (the difference of two
 * long longs always fits in an unsigned long long). */
static bool older_than(long long now, long long then, long long ttl)
{
    return (unsigned long long)now - (unsigned long long)then > (unsigned long long)ttl;
}

/* ---- sessions -------------------------------------------------------- */

static struct session *session_find(struct presence *p, const char *client)
{
    size_t len = strlen(client);
    struct hnode *h = htab_find(&p->sessions, client, len, siphash13(p->hkey, client, len));

    return h ? (struct session *)(void *)h : NULL;
}

static void session_remove(struct presence *p, struct session *s)
{
    view_unlink(p, s);
    if (s->editing)
        edit_unlink(p, s);
    htab_remove(&p->sessions, &s->h);
    scope_del(p, s->scope, s);
    free(s);
}

static void view_touch(struct presence *p, struct session *s)
{
    s->last_view = p->now;
    view_unlink(p, s);
    view_append(p, s);
}

/* Move s to sc (which must differ from its scope). */
static void session_move(struct presence *p, struct session *s, struct scope *sc)
{
    struct scope *old = s->scope;

    s->scope = sc;
    scope_add(p, sc, s);
    scope_del(p, old, s);
}

static void lease_hex(struct presence *p, char out[PRESENCE_LEASE_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char r[PRESENCE_LEASE_BYTES];

    p->random(p->random_ctx, r, sizeof(r));
    for (size_t i = 0; i < sizeof(r); i++) {
        out[2 * i] = hex[r[i] >> 4];
        out[2 * i + 1] = hex[r[i] & 15];
    }
    out[PRESENCE_LEASE_LEN] = '\0';
}

/* A new lease for s, guaranteed to differ from the one it replaces. */
static void lease_renew(struct presence *p, struct session *s)
{
    char next[PRESENCE_LEASE_LEN + 1];

    for (int tries = 0; tries < 4; tries++) {
        lease_hex(p, next);
        if (strcmp(next, s->lease) != 0)
            break;
    }
    if (strcmp(next, s->lease) == 0) /* a stuck random source; never reuse a lease */
        next[PRESENCE_LEASE_LEN - 1] = next[PRESENCE_LEASE_LEN - 1] == '0' ? '1' : '0';
    memcpy(s->lease, next, sizeof(next));
}

/* Constant-time comparison of a presented lease with the session's. */
static bool lease_matches(const struct session *s, const char *lease)
{
    unsigned char diff = 0;

    if (!lease || strlen(lease) != PRESENCE_LEASE_LEN)
        return false;
    for (size_t i = 0; i < PRESENCE_LEASE_LEN; i++)
        diff |= (unsigned char)(s->lease[i] ^ lease[i]);
    return diff == 0;
}

/* A new session for client in gallery.  Nothing changes on failure. */
static int session_create(struct presence *p, const char *client, const char *gallery,
                          struct session **out)
{
    size_t len = strlen(client);
    struct scope *sc;
    struct session *s;

    if (p->sessions.n >= p->max_clients)
        return LS_EFULL;
    sc = scope_get(p, gallery);
    if (!sc)
        return -ENOMEM;
    s = calloc(1, sizeof(*s) + len + 1);
    if (!s) {
        scope_release_if_idle(p, sc);
        return -ENOMEM;
    }
    memcpy(s->client, client, len + 1);
    s->h.key = s->client;
    s->h.len = len;
    s->h.hash = siphash13(p->hkey, client, len);
    lease_renew(p, s);
    s->scope = sc;
    s->last_view = p->now;
    htab_insert(&p->sessions, &s->h);
    view_append(p, s);
    scope_add(p, sc, s);
    *out = s;
    return 0;
}

/* Refresh s's last view and put it in gallery.  Nothing changes on failure. */
static int session_visit(struct presence *p, struct session *s, const char *gallery)
{
    if (strcmp(s->scope->id, gallery) != 0) {
        struct scope *sc = scope_get(p, gallery);

        if (!sc)
            return -ENOMEM;
        session_move(p, s, sc);
    }
    view_touch(p, s);
    return 0;
}

/* ---- time and change reporting --------------------------------------- */

/* Advance the clock and drop everything that lapsed. */
static void expire(struct presence *p, long long now_us)
{
    if (now_us > p->now)
        p->now = now_us;
    while (p->ehead && older_than(p->now, p->ehead->last_edit, p->edit_ttl)) {
        struct session *s = p->ehead;

        edit_unlink(p, s);
        s->editing = false;
        s->scope->editing--;
        scope_mark(p, s->scope);
    }
    while (p->vhead && older_than(p->now, p->vhead->last_view, p->view_ttl)) {
        session_remove(p, p->vhead);
        p->stale_pruned++;
    }
}

static int scope_cmp(const void *a, const void *b)
{
    const struct scope *x = *(const struct scope *const *)a;
    const struct scope *y = *(const struct scope *const *)b;

    return strcmp(x->id, y->id); /* strcmp compares as unsigned char: bytewise */
}

static int changes_reserve(struct presence_changes *ch, size_t more)
{
    size_t cap = ch->cap ? ch->cap : 8;
    struct presence_count *items;

    if (ch->n + more <= ch->cap)
        return 0;
    while (cap < ch->n + more)
        cap *= 2;
    items = realloc(ch->items, cap * sizeof(*items));
    if (!items)
        return -ENOMEM;
    ch->items = items;
    ch->cap = cap;
    return 0;
}

static int changes_push(struct presence_changes *ch, const struct scope *sc, unsigned v, unsigned e)
{
    char *id = strdup(sc->id);

    if (!id)
        return -ENOMEM;
    ch->items[ch->n].gallery_id = id;
    ch->items[ch->n].viewing = v;
    ch->items[ch->n].editing = e;
    ch->n++;
    return 0;
}

/*
 * Hand every dirty scope whose pair differs from the reported one to ch, in
 * bytewise order.  What cannot be handed out for lack of memory stays dirty
 * and goes to a later call.
 */
static void report(struct presence *p, struct presence_changes *ch)
{
    struct scope **v, *sc, *next;
    size_t n = 0, i;

    if (!ch || !p->dhead)
        return;
    for (sc = p->dhead; sc; sc = next) {
        next = sc->dnext;
        if (sc->members == sc->rep_view && sc->editing == sc->rep_edit) {
            scope_unmark(p, sc); /* changed and changed back: nothing to say */
            scope_release_if_idle(p, sc);
        } else {
            n++;
        }
    }
    if (n == 0)
        return;
    v = malloc(n * sizeof(*v));
    if (!v)
        return;
    for (i = 0, sc = p->dhead; sc; sc = sc->dnext)
        v[i++] = sc;
    qsort(v, n, sizeof(*v), scope_cmp);
    if (changes_reserve(ch, n) == 0) {
        for (i = 0; i < n; i++) {
            sc = v[i];
            if (changes_push(ch, sc, sc->members, sc->editing) != 0)
                break;
            sc->rep_view = sc->members;
            sc->rep_edit = sc->editing;
            scope_unmark(p, sc);
            scope_release_if_idle(p, sc);
        }
    }
    free(v);
}

/* ---- argument checks and replies ------------------------------------- */

static int check_id(const char *s, size_t max)
{
    size_t len;

    if (!s || !*s)
        return LS_EVALUE;
    len = strnlen(s, max + 1);
    return len > max ? LS_ETOOBIG : 0;
}

static void counts_of(struct presence *p, const char *gallery, unsigned *v, unsigned *e)
{
    const struct scope *sc = scope_find(p, gallery);

    *v = sc ? sc->members : 0;
    *e = sc ? sc->editing : 0;
}

/* gallery is checked to fit by the caller. */
static void copy_id(char *dst, const char *src)
{
    size_t len = strlen(src);

    memcpy(dst, src, len + 1);
}

static void reply_gallery(struct presence *p, struct presence_reply *out, const char *gallery)
{
    copy_id(out->gallery_id, gallery);
    counts_of(p, gallery, &out->viewing, &out->editing);
}

static void reply_move(struct presence *p, struct presence_reply *out, const char *from,
                       const char *to)
{
    copy_id(out->from_gallery, from);
    counts_of(p, from, &out->from_viewing, &out->from_editing);
    copy_id(out->to_gallery, to);
    counts_of(p, to, &out->to_viewing, &out->to_editing);
}

/* ---- public API ------------------------------------------------------ */

struct presence *presence_new(const struct presence_config *cfg, int *err)
{
    struct presence_config c = {0};
    struct presence *p;
    int rc = -ENOMEM;

    if (cfg)
        c = *cfg;
    if (c.view_ttl_us < 0 || c.edit_ttl_us < 0) {
        if (err)
            *err = LS_EVALUE;
        return NULL;
    }
    p = calloc(1, sizeof(*p));
    if (!p)
        goto fail;
    if (htab_init(&p->sessions) != 0 || htab_init(&p->scopes) != 0 ||
        pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p->sessions.b);
        free(p->scopes.b);
        free(p);
        goto fail;
    }
    p->view_ttl = c.view_ttl_us ? c.view_ttl_us : PRESENCE_DEFAULT_VIEW_TTL_US;
    p->edit_ttl = c.edit_ttl_us ? c.edit_ttl_us : PRESENCE_DEFAULT_EDIT_TTL_US;
    p->max_clients = c.max_clients && c.max_clients < PRESENCE_MAX_CLIENTS ? c.max_clients
                                                                           : PRESENCE_MAX_CLIENTS;
    p->random = c.random ? c.random : presence_getrandom;
    p->random_ctx = c.random ? c.random_ctx : NULL;
    p->now = LLONG_MIN;
    p->random(p->random_ctx, p->hkey, sizeof(p->hkey));
    if (err)
        *err = 0;
    return p;
fail:
    if (err)
        *err = rc;
    return NULL;
}

void presence_free(struct presence *p)
{
    struct session *s, *next;

    if (!p)
        return;
    for (s = p->vhead; s; s = next) {
        next = s->vnext;
        free(s);
    }
    for (size_t i = 0; i < p->scopes.nb; i++) {
        struct hnode *h = p->scopes.b[i], *hn;

        for (; h; h = hn) {
            hn = h->next;
            free(h);
        }
    }
    free(p->sessions.b);
    free(p->scopes.b);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/*
 * The session calls build their reply in a local and copy it out at the end,
 * so arguments may point into *out (a lease echoed from an earlier reply).
 */
int presence_join(struct presence *p, const char *client, const char *gallery, const char *lease,
                  long long now_us, struct presence_reply *out, struct presence_changes *ch)
{
    struct presence_reply o, *ro = &o;
    struct session *s;
    int rc;

    memset(ro, 0, sizeof(*ro));
    if ((rc = check_id(client, PRESENCE_MAX_ID)) != 0 ||
        (rc = check_id(gallery, PRESENCE_MAX_GALLERY)) != 0)
        goto done;
    pthread_mutex_lock(&p->lock);
    expire(p, now_us);
    s = session_find(p, client);
    if (!s) {
        rc = session_create(p, client, gallery, &s);
    } else if (lease && *lease && !lease_matches(s, lease)) {
        p->invalid_lease++;
        ro->result = PRESENCE_INVALID_LEASE;
        reply_gallery(p, ro, gallery);
        report(p, ch);
        goto unlock;
    } else {
        rc = session_visit(p, s, gallery);
        if (rc == 0 && !(lease && *lease))
            lease_renew(p, s); /* takeover */
    }
    if (rc == 0) {
        ro->result = PRESENCE_OK;
        copy_id(ro->lease_id, s->lease);
        reply_gallery(p, ro, gallery);
        report(p, ch);
    }
unlock:
    pthread_mutex_unlock(&p->lock);
done:
    *out = o;
    return rc;
}

int presence_move(struct presence *p, const char *client, const char *lease, const char *from,
                  const char *to, long long now_us, struct presence_reply *out,
                  struct presence_changes *ch)
{
    struct presence_reply o, *ro = &o;
    struct session *s;
    int rc;

    memset(ro, 0, sizeof(*ro));
    if ((rc = check_id(client, PRESENCE_MAX_ID)) != 0 ||
        (rc = check_id(from, PRESENCE_MAX_GALLERY)) != 0 ||
        (rc = check_id(to, PRESENCE_MAX_GALLERY)) != 0)
        goto done;
    pthread_mutex_lock(&p->lock);
    expire(p, now_us);
    s = session_find(p, client);
    if (!s || !lease_matches(s, lease)) {
        p->invalid_lease++;
        ro->result = PRESENCE_INVALID_LEASE;
        reply_gallery(p, ro, from);
    } else if (strcmp(s->scope->id, to) == 0) {
        view_touch(p, s); /* a replay: true counts for both, unlike upstream's 0/0 */
        ro->result = PRESENCE_OK;
        reply_gallery(p, ro, to);
    } else if (strcmp(s->scope->id, from) != 0) {
        p->scope_mismatch++;
        ro->result = PRESENCE_SCOPE_MISMATCH;
        reply_gallery(p, ro, s->scope->id);
    } else if ((rc = session_visit(p, s, to)) == 0) {
        ro->result = PRESENCE_OK;
        reply_gallery(p, ro, to);
    }
    if (rc == 0) {
        if (ro->result == PRESENCE_OK)
            copy_id(ro->lease_id, s->lease);
        reply_move(p, ro, from, to);
        report(p, ch);
    } else {
        memset(ro, 0, sizeof(*ro));
    }
    pthread_mutex_unlock(&p->lock);
done:
    *out = o;
    return rc;
}

int presence_leave(struct presence *p, const char *client, const char *lease, const char *gallery,
                   long long now_us, struct presence_reply *out, struct presence_changes *ch)
{
    struct presence_reply o, *ro = &o;
    struct session *s;
    int rc;

    memset(ro, 0, sizeof(*ro));
    if ((rc = check_id(client, PRESENCE_MAX_ID)) != 0 ||
        (rc = check_id(gallery, PRESENCE_MAX_GALLERY)) != 0)
        goto done;
    pthread_mutex_lock(&p->lock);
    expire(p, now_us);
    s = session_find(p, client);
    if (!s) {
        ro->result = PRESENCE_OK;
        reply_gallery(p, ro, gallery);
    } else if (!lease_matches(s, lease)) {
        p->invalid_lease++;
        ro->result = PRESENCE_INVALID_LEASE;
        reply_gallery(p, ro, gallery);
    } else if (strcmp(s->scope->id, gallery) != 0) {
        p->scope_mismatch++;
        ro->result = PRESENCE_SCOPE_MISMATCH;
        copy_id(ro->lease_id, s->lease);
        reply_gallery(p, ro, s->scope->id);
    } else {
        copy_id(ro->lease_id, s->lease);
        session_remove(p, s);
        ro->result = PRESENCE_OK;
        ro->removed = true;
        reply_gallery(p, ro, gallery);
    }
    report(p, ch);
    pthread_mutex_unlock(&p->lock);
done:
    *out = o;
    return rc;
}

int presence_heartbeat(struct presence *p, const char *client, const char *gallery,
                       long long now_us, struct presence_reply *out, struct presence_changes *ch)
{
    struct presence_reply o, *ro = &o;
    struct session *s;
    int rc;

    memset(ro, 0, sizeof(*ro));
    if ((rc = check_id(client, PRESENCE_MAX_ID)) != 0 ||
        (rc = check_id(gallery, PRESENCE_MAX_GALLERY)) != 0)
        goto done;
    pthread_mutex_lock(&p->lock);
    expire(p, now_us);
    s = session_find(p, client);
    rc = s ? session_visit(p, s, gallery) : session_create(p, client, gallery, &s);
    if (rc == 0) {
        ro->result = PRESENCE_OK;
        copy_id(ro->lease_id, s->lease);
        reply_gallery(p, ro, gallery);
        report(p, ch);
    }
    pthread_mutex_unlock(&p->lock);
done:
    *out = o;
    return rc;
}

int presence_touch_edit(struct presence *p, const char *client, long long now_us,
                        struct presence_changes *ch)
{
    struct session *s;
    int rc;

    if ((rc = check_id(client, PRESENCE_MAX_ID)) != 0)
        return rc;
    pthread_mutex_lock(&p->lock);
    expire(p, now_us);
    s = session_find(p, client);
    if (s) {
        s->last_edit = p->now;
        if (s->editing) {
            edit_unlink(p, s);
        } else {
            s->editing = true;
            s->scope->editing++;
            scope_mark(p, s->scope);
        }
        edit_append(p, s);
    }
    report(p, ch);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

int presence_prune(struct presence *p, long long now_us, struct presence_changes *ch)
{
    pthread_mutex_lock(&p->lock);
    expire(p, now_us);
    report(p, ch);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

int presence_counts(struct presence *p, const char *gallery, long long now_us, unsigned *viewing,
                    unsigned *editing)
{
    int rc;

    *viewing = *editing = 0;
    if ((rc = check_id(gallery, PRESENCE_MAX_GALLERY)) != 0)
        return rc;
    pthread_mutex_lock(&p->lock);
    expire(p, now_us);
    counts_of(p, gallery, viewing, editing);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

void presence_stats(struct presence *p, long long now_us, struct presence_stats *out)
{
    pthread_mutex_lock(&p->lock);
    expire(p, now_us);
    out->active_clients = p->sessions.n;
    out->active_scopes = p->nonempty;
    out->stale_pruned_total = p->stale_pruned;
    out->invalid_lease_total = p->invalid_lease;
    out->scope_mismatch_total = p->scope_mismatch;
    pthread_mutex_unlock(&p->lock);
}

int presence_list(struct presence *p, long long now_us, struct presence_changes *out)
{
    struct scope **v = NULL;
    size_t n = 0, n0 = out->n;
    int rc = 0;

    pthread_mutex_lock(&p->lock);
    expire(p, now_us);
    if (p->nonempty) {
        v = malloc(p->nonempty * sizeof(*v));
        if (!v)
            rc = -ENOMEM;
    }
    for (size_t i = 0; v && i < p->scopes.nb; i++)
        for (struct hnode *h = p->scopes.b[i]; h; h = h->next)
            if (((struct scope *)(void *)h)->members)
                v[n++] = (struct scope *)(void *)h;
    if (n) {
        qsort(v, n, sizeof(*v), scope_cmp);
        rc = changes_reserve(out, n);
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = changes_push(out, v[i], v[i]->members, v[i]->editing);
    if (rc != 0) {
        while (out->n > n0)
            free(out->items[--out->n].gallery_id);
    }
    pthread_mutex_unlock(&p->lock);
    free(v);
    return rc;
}

int presence_lookup(struct presence *p, const char *client, long long now_us, char *gallery,
                    char *lease, bool *editing)
{
    struct session *s;
    int rc;

    if ((rc = check_id(client, PRESENCE_MAX_ID)) != 0)
        return rc;
    pthread_mutex_lock(&p->lock);
    expire(p, now_us);
    s = session_find(p, client);
    if (s) {
        if (gallery)
            copy_id(gallery, s->scope->id);
        if (lease)
            copy_id(lease, s->lease);
        if (editing)
            *editing = s->editing;
    }
    pthread_mutex_unlock(&p->lock);
    return s ? 0 : LS_ENOTFOUND;
}

/* The body of presence_check; the lock is held. */
static bool check_locked(struct presence *p)
{
    size_t nsess = 0, nedit = 0, nonempty = 0, nscopes = 0, ndirty = 0;
    struct session *s, *prev = NULL;
    struct scope *sc, *dprev = NULL;

    for (size_t i = 0; i < p->scopes.nb; i++)
        for (struct hnode *h = p->scopes.b[i]; h; h = h->next) {
            sc = (struct scope *)(void *)h;
            sc->tally_v = sc->tally_e = 0;
            nscopes++;
        }
    if (nscopes != p->scopes.n)
        return false;
    for (sc = p->dhead; sc; dprev = sc, sc = sc->dnext, ndirty++)
        if (!sc->dirty || sc->dprev != dprev || ndirty > nscopes)
            return false;
    for (s = p->vhead; s; prev = s, s = s->vnext) {
        if (s->vprev != prev || (prev && prev->last_view > s->last_view) ||
            older_than(p->now, s->last_view, p->view_ttl) || session_find(p, s->client) != s ||
            scope_find(p, s->scope->id) != s->scope)
            return false;
        s->scope->tally_v++;
        if (s->editing)
            s->scope->tally_e++;
        nsess++;
    }
    if (prev != p->vtail || nsess != p->sessions.n || nsess > p->max_clients)
        return false;
    for (prev = NULL, s = p->ehead; s; prev = s, s = s->enext) {
        if (!s->editing || s->eprev != prev || (prev && prev->last_edit > s->last_edit) ||
            older_than(p->now, s->last_edit, p->edit_ttl))
            return false;
        nedit++;
    }
    if (prev != p->etail)
        return false;
    for (size_t i = 0; i < p->scopes.nb; i++)
        for (struct hnode *h = p->scopes.b[i]; h; h = h->next) {
            sc = (struct scope *)(void *)h;
            if (sc->tally_v != sc->members || sc->tally_e != sc->editing ||
                sc->editing > sc->members || (!sc->members && !sc->rep_view && !sc->rep_edit))
                return false;
            if (!sc->dirty && (sc->members != sc->rep_view || sc->editing != sc->rep_edit))
                return false;
            nonempty += sc->members != 0;
            nedit -= sc->editing;
            ndirty -= sc->dirty;
        }
    return nonempty == p->nonempty && nedit == 0 && ndirty == 0;
}

int presence_check(struct presence *p)
{
    bool ok;

    pthread_mutex_lock(&p->lock);
    ok = check_locked(p);
    pthread_mutex_unlock(&p->lock);
    return ok ? 0 : LS_ECORRUPT;
}

void presence_changes_cleanup(struct presence_changes *ch)
{
    if (!ch)
        return;
    for (size_t i = 0; i < ch->n; i++)
        free(ch->items[i].gallery_id);
    free(ch->items);
    ch->items = NULL;
    ch->n = ch->cap = 0;
}
