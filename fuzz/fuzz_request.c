/*
 * fuzz_request.c - whole requests through http_handle (http.h), no sockets.
 *
 * Input format (readable, so seeds can be written by hand; bytes 0x1E
 * separate requests, at most MAX_REQUESTS per input):
 *
 *   ['!'] METHOD ' ' PATH ['?' QUERY] '\n'     '!' = the transport cut the body
 *   NAME ':' [' '] VALUE '\n'                   headers, until an empty line
 *   '\n'
 *   BODY                                        up to the next 0x1E or the end
 *
 * QUERY is split at '&' and at the first '=' of each pair (no '=': a
 * parameter without value), values stay form-encoded as the transport gives
 * them.  Names are NUL-terminated (as libmicrohttpd hands them over); header
 * and query values and the body are exact-size copies without a terminator.
 *
 * Every input gets a fresh server state (no state crosses inputs): a store
 * with the items of items[] below, an idempotency table, an event hub and a
 * presence tracker whose random source is a counter (leases are
 * "0202...02", "0303...03", ...; see fuzz_request.dict) and whose TTLs are
 * days long, so nothing expires while an input runs.  No write-ahead log:
 * wal_open starts a writer thread and every write waits for an fdatasync,
 * which would cut the rate by orders of magnitude and leave threads and files
 * behind between inputs (libFuzzer's rules); the log's parser has its own
 * target (fuzz_wal_replay), and http_handle without a log is the documented
 * --no-write configuration.
 *
 * Properties, per request:
 *   - the response is well-formed: status 100..599, Content-Type whenever
 *     there is a body, a JSON body that parses and is valid UTF-8, and every
 *     4xx/5xx body is {"error": string, "message": string, ...};
 *   - a rejected request (status >= 400) leaves the state byte-identical:
 *     every item record (the wire JSON, version, updated_at/by), the commit
 *     sequence, the idempotency entry count, the event hub (last id, ring),
 *     presence counts per gallery, and the session (gallery, lease, editing)
 *     of every client id the input used.  Two exceptions are what PROTOCOL
 *     requires: a first 409 version_conflict or 422 too_many_tags with an
 *     Idempotency-Key is stored (R6.3-2: the entry count grows by exactly
 *     one), and a presence 409 invalid_lease / scope_mismatch is counted in
 *     its diagnostics counter (R16.7: that counter grows by exactly one);
 *   - a stored answer (a write that added an idempotency entry) replays:
 *     the same request again gets the same status and body bytes with
 *     Idempotent-Replayed: true, and changes nothing.
 */
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cJSON.h>

#include "buf.h"
#include "fuzz.h"
#include "http.h"

#define MAX_INPUT    (64u * 1024u)
#define MAX_REQUESTS 8
#define MAX_HEADERS  32
#define MAX_QUERY    32
#define MAX_CLIENTS  16
#define SEP          0x1E
#define STATE_CAP    (8u << 20)

static const char *const items[] = {
    "/cover.png",
    "/animals/cat.jpg",
    "/animals/dog.png",
    "/animals/birds/crow.jpg",
    "/animals/birds/sea/gull.jpg",
    "/scratch/s01.png",
    "/scratch/s02.png",
    "/people/group.webp",
    "/with space/a b.png",
    "/unicode/caf\xc3\xa9.jpg",
    "/special/a+b.jpg",
    "/landscapes/mountains/peaks/k2.jpg",
};
#define NITEMS (sizeof(items) / sizeof(items[0]))

/* ---- the server state ----------------------------------------------------------- */

struct world {
    struct store *store;
    struct idem *idem;
    struct events_hub *events;
    struct presence *presence;
    struct http_app *app;
    unsigned char rnd; /* the presence random source: call k fills bytes with k */
    char clients[MAX_CLIENTS][HTTP_MAX_CLIENT_ID + 1];
    size_t nclients;
};

static void counter_random(void *ctx, unsigned char *out, size_t n)
{
    struct world *w = ctx;

    w->rnd++;
    memset(out, w->rnd, n);
}

static bool world_new(struct world *w)
{
    struct events_config ecfg = {64, 32, 1000, 1000};
    struct presence_config pcfg;
    struct http_config cfg;
    struct http_deps deps;
    int err = 0;

    memset(w, 0, sizeof(*w));
    memset(&pcfg, 0, sizeof(pcfg));
    memset(&cfg, 0, sizeof(cfg));
    memset(&deps, 0, sizeof(deps));
    pcfg.view_ttl_us = pcfg.edit_ttl_us = 10LL * 24 * 3600 * 1000000;
    pcfg.random = counter_random;
    pcfg.random_ctx = w;
    cfg.host = "127.0.0.1";
    if (!(w->store = store_new()))
        return false;
    for (size_t i = 0; i < NITEMS; i++)
        if (store_add_item(w->store, items[i]) != 0)
            abort(); /* the table above is wrong */
    w->idem = idem_new(64, 1u << 20, IDEM_DEFAULT_TTL_US);
    w->events = events_new(&ecfg, 0, &err);
    w->presence = presence_new(&pcfg, &err);
    if (!w->idem || !w->events || !w->presence)
        return false;
    deps.store = w->store;
    deps.idem = w->idem;
    deps.events = w->events;
    deps.presence = w->presence;
    w->app = http_app_new(&cfg, 7070, &deps, &err);
    return w->app != NULL;
}

static void world_free(struct world *w)
{
    http_app_free(w->app);
    presence_free(w->presence);
    events_free(w->events);
    idem_free(w->idem);
    store_free(w->store);
}

/* Remember a client id the input used (its session is part of the state). */
static void note_client(struct world *w, const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || n > HTTP_MAX_CLIENT_ID || memchr(s, '\0', n) || w->nclients == MAX_CLIENTS)
        return;
    for (size_t i = 0; i < w->nclients; i++)
        if (strlen(w->clients[i]) == n && memcmp(w->clients[i], s, n) == 0)
            return;
    memcpy(w->clients[w->nclients], s, n);
    w->clients[w->nclients][n] = '\0';
    w->nclients++;
}

/*
 * The state every input starts from, made through http_handle like any
 * request: the seeds' default client "r-default" has a session in /animals
 * (lease "0202...02"), "c1" one in /people ("0303...03"), and c2 (no
 * session) wrote /animals/cat.jpg (version 2, tags, star, key "k0"), so a
 * single request can already meet a session, a changed item, a stored key.
 */
static const char *const prelude[][4] = {
    {"POST", "/presence/join", "r-default", "{\"gallery_id\":\"/animals\"}"},
    {"POST", "/presence/join", "c1", "{\"gallery_id\":\"/people\"}"},
    {"PATCH", "/item", "c2", "{\"base_version\":1,\"set_tags\":[\"a\",\"b\"],\"set_star\":2}"},
};

static void world_prelude(struct world *w)
{
    for (size_t i = 0; i < sizeof(prelude) / sizeof(prelude[0]); i++) {
        struct http_kv h[3] = {{"Content-Type", "application/json", 16},
                               {"X-Client-Id", prelude[i][2], strlen(prelude[i][2])},
                               {"Idempotency-Key", "k0", 2}};
        struct http_kv q = {"path", "/animals/cat.jpg", 16};
        struct http_request r;
        struct http_response resp;

        memset(&r, 0, sizeof(r));
        r.method = prelude[i][0];
        r.url = prelude[i][1];
        r.query = &q;
        r.nquery = strcmp(r.url, "/item") == 0 ? 1 : 0;
        r.headers = h;
        r.nheaders = 3;
        r.body = prelude[i][3];
        r.body_len = strlen(prelude[i][3]);
        http_handle(w->app, &r, &resp);
        FUZZ_CHECK(resp.status == 200);
        http_response_cleanup(&resp);
        note_client(w, prelude[i][2], strlen(prelude[i][2]));
    }
}

static long long mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct snap {
    struct buf core;            /* everything that must not change on a rejection */
    size_t idem;                /* idempotency entries */
    unsigned long long lease_x; /* presence invalid_lease_total */
    unsigned long long scope_x; /* presence scope_mismatch_total */
};

static void snap_take(struct world *w, struct snap *s)
{
    struct buf *b = &s->core;
    struct events_stats es;
    struct presence_stats ps;
    struct presence_changes list;
    long long now = mono_now();
    int rc = 0;

    buf_init(b, STATE_CAP);
    for (size_t i = 0; i < NITEMS; i++) {
        struct store_record rec;
        cJSON *o;
        char *text;

        FUZZ_CHECK(store_get(w->store, items[i], &rec) == 0);
        o = store_record_to_json(&rec);
        text = o ? cJSON_PrintUnformatted(o) : NULL;
        if (!text)
            abort();
        rc |= buf_appends(b, text);
        rc |= buf_appendf(b, "\n%lld\n", rec.updated_at_us);
        cJSON_free(text);
        cJSON_Delete(o);
        store_record_cleanup(&rec);
    }
    rc |= buf_appendf(b, "seq %llu count %zu\n", store_seq(w->store), store_count(w->store));
    events_stats(w->events, &es);
    rc |= buf_appendf(b, "events %zu %llu %zu %llu %llu %llu %llu\n", es.subscribers,
                      es.last_event_id, es.ring_size, es.oldest_event_id, es.resync_total,
                      es.lagging_closed_total, events_last_id(w->events));
    presence_stats(w->presence, now, &ps);
    rc |= buf_appendf(b, "presence %zu %zu %llu\n", ps.active_clients, ps.active_scopes,
                      ps.stale_pruned_total);
    memset(&list, 0, sizeof(list));
    FUZZ_CHECK(presence_list(w->presence, now, &list) == 0);
    for (size_t i = 0; i < list.n; i++)
        rc |= buf_appendf(b, "gallery %s %u %u\n", list.items[i].gallery_id, list.items[i].viewing,
                          list.items[i].editing);
    presence_changes_cleanup(&list);
    for (size_t i = 0; i < w->nclients; i++) {
        char gallery[PRESENCE_MAX_GALLERY + 1] = "", lease[PRESENCE_LEASE_LEN + 1] = "";
        bool editing = false;
        int lr = presence_lookup(w->presence, w->clients[i], now, gallery, lease, &editing);

        rc |= buf_appendf(b, "client %s %d %s %s %d\n", w->clients[i], lr, gallery, lease,
                          (int)editing);
    }
    if (rc)
        abort(); /* out of memory or over STATE_CAP: not an input's fault */
    s->idem = idem_count(w->idem);
    s->lease_x = ps.invalid_lease_total;
    s->scope_x = ps.scope_mismatch_total;
}

static bool snap_core_equal(const struct snap *a, const struct snap *b)
{
    return a->core.len == b->core.len && memcmp(a->core.data, b->core.data, a->core.len) == 0;
}

/* ---- requests -------------------------------------------------------------------- */

struct req {
    struct http_request r;
    struct http_kv query[MAX_QUERY];
    struct http_kv headers[MAX_HEADERS];
    char *strings[2 + 2 * (MAX_QUERY + MAX_HEADERS) + 1]; /* every allocation, to free */
    size_t nstrings;
};

static char *keep(struct req *q, char *p)
{
    if (!p)
        abort();
    q->strings[q->nstrings++] = p;
    return p;
}

static char *cstr(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static void req_free(struct req *q)
{
    for (size_t i = 0; i < q->nstrings; i++)
        free(q->strings[i]);
    q->nstrings = 0;
}

/* Decode one request from s[0..n) (no separator inside). */
static void req_decode(struct world *w, struct req *q, const char *s, size_t n)
{
    const char *nl = memchr(s, '\n', n), *sp, *qm;
    size_t ll = nl ? (size_t)(nl - s) : n, pos, ul;

    memset(q, 0, sizeof(*q));
    if (ll && s[0] == '!') {
        q->r.body_too_large = true;
        s++, n--, ll--;
        nl = memchr(s, '\n', n);
    }
    sp = memchr(s, ' ', ll);
    q->r.method = keep(q, cstr(s, sp ? (size_t)(sp - s) : ll));
    ul = sp ? ll - (size_t)(sp - s) - 1 : 0;
    sp = sp ? sp + 1 : s + ll;
    qm = memchr(sp, '?', ul);
    q->r.url = keep(q, cstr(sp, qm ? (size_t)(qm - sp) : ul));
    if (qm) {
        const char *p = qm + 1, *end = sp + ul;

        while (p <= end && q->r.nquery < MAX_QUERY) {
            const char *amp = memchr(p, '&', (size_t)(end - p));
            const char *pe = amp ? amp : end;
            const char *eq = memchr(p, '=', (size_t)(pe - p));
            struct http_kv *kv = &q->query[q->r.nquery++];

            kv->name = keep(q, cstr(p, (size_t)((eq ? eq : pe) - p)));
            if (eq) {
                kv->value = keep(q, fuzz_dup(eq + 1, (size_t)(pe - eq - 1)));
                kv->value_len = (size_t)(pe - eq - 1);
            }
            p = pe + 1;
        }
    }
    q->r.query = q->query;
    pos = nl ? ll + 1 : n;
    /* Headers until an empty line (or the end). */
    while (pos < n) {
        const char *line = s + pos, *lnl = memchr(line, '\n', n - pos), *colon;
        size_t len = lnl ? (size_t)(lnl - line) : n - pos;
        struct http_kv *kv;

        pos += len + (lnl ? 1 : 0);
        if (len == 0)
            break;
        if (q->r.nheaders == MAX_HEADERS)
            continue;
        colon = memchr(line, ':', len);
        kv = &q->headers[q->r.nheaders++];
        kv->name = keep(q, cstr(line, colon ? (size_t)(colon - line) : len));
        if (colon) {
            const char *v = colon + 1;
            size_t vl = len - (size_t)(colon - line) - 1;

            if (vl && *v == ' ')
                v++, vl--;
            kv->value = keep(q, fuzz_dup(v, vl));
            kv->value_len = vl;
            if (strcasecmp(kv->name, "X-Client-Id") == 0)
                note_client(w, v, vl);
        } else {
            kv->value = keep(q, fuzz_dup("", 0));
            kv->value_len = 0;
        }
    }
    q->r.headers = q->headers;
    if (pos < n) {
        cJSON *o;

        q->r.body = keep(q, fuzz_dup(s + pos, n - pos));
        q->r.body_len = n - pos;
        /* a presence body may name its client */
        o = cJSON_ParseWithLength(q->r.body, q->r.body_len);
        if (cJSON_IsObject(o)) {
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "client_id");

            if (cJSON_IsString(c))
                note_client(w, c->valuestring, strlen(c->valuestring));
        }
        cJSON_Delete(o);
    }
}

static const char *resp_header(const struct http_response *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

/* The response on its own; returns the parsed body (cJSON_Delete it) or NULL. */
static cJSON *check_response(const struct http_response *r)
{
    const char *ct = resp_header(r, "Content-Type");
    cJSON *o = NULL;

    FUZZ_CHECK(r->status >= 100 && r->status <= 599);
    FUZZ_CHECK(r->nheaders <= HTTP_MAX_RESP_HEADERS);
    FUZZ_CHECK(r->body == NULL || (ct != NULL && r->body_len == strlen(r->body)));
    FUZZ_CHECK(r->body != NULL || r->body_len == 0);
    if (r->body && strncmp(ct, "application/json", 16) == 0) {
        FUZZ_CHECK(canon_utf8_valid(r->body, r->body_len));
        o = cJSON_ParseWithLength(r->body, r->body_len);
        FUZZ_CHECK(o != NULL);
    }
    if (r->status >= 400 && (r->body || r->status != 500)) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "message");

        FUZZ_CHECK(cJSON_IsObject(o) && cJSON_IsString(e) && cJSON_IsString(m));
    }
    return o;
}

static bool error_is(const cJSON *o, const char *code)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");

    return cJSON_IsString(e) && strcmp(e->valuestring, code) == 0;
}

static void run_request(struct world *w, struct req *q)
{
    struct http_response r, r2;
    struct snap before, after, again;
    cJSON *body;

    snap_take(w, &before);
    http_handle(w->app, &q->r, &r);
    body = check_response(&r);
    snap_take(w, &after);
    if (r.status >= 400) {
        bool stored = r.status == 409   ? error_is(body, "version_conflict")
                      : r.status == 422 ? error_is(body, "too_many_tags")
                                        : false;
        bool lease = r.status == 409 && error_is(body, "invalid_lease");
        bool scope = r.status == 409 && error_is(body, "scope_mismatch");

        if (!snap_core_equal(&before, &after))
            fprintf(stderr, "state changed by a %d answer: %.*s\n--- before\n%.*s--- after\n%.*s",
                    r.status, (int)r.body_len, r.body ? r.body : "", (int)before.core.len,
                    before.core.data, (int)after.core.len, after.core.data);
        FUZZ_CHECK(snap_core_equal(&before, &after));
        FUZZ_CHECK(after.idem == before.idem || (stored && after.idem == before.idem + 1));
        FUZZ_CHECK(after.lease_x == before.lease_x ||
                   (lease && after.lease_x == before.lease_x + 1));
        FUZZ_CHECK(after.scope_x == before.scope_x ||
                   (scope && after.scope_x == before.scope_x + 1));
    }
    /* A stored answer replays byte for byte and changes nothing. */
    if (after.idem == before.idem + 1 && r.body) {
        const char *rep;
        cJSON *b2;

        http_handle(w->app, &q->r, &r2);
        b2 = check_response(&r2);
        snap_take(w, &again);
        rep = resp_header(&r2, "Idempotent-Replayed");
        FUZZ_CHECK(r2.status == r.status && r2.body_len == r.body_len && r2.body &&
                   memcmp(r2.body, r.body, r.body_len) == 0);
        FUZZ_CHECK(rep && strcmp(rep, "true") == 0);
        FUZZ_CHECK(snap_core_equal(&after, &again) && again.idem == after.idem);
        cJSON_Delete(b2);
        http_response_cleanup(&r2);
        buf_cleanup(&again.core);
    }
    cJSON_Delete(body);
    http_response_cleanup(&r);
    buf_cleanup(&before.core);
    buf_cleanup(&after.core);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct world w;
    size_t pos = 0, nreq = 0;

    if (size > MAX_INPUT)
        return 0;
    if (!world_new(&w))
        abort(); /* out of memory at start-up: not the input's fault */
    world_prelude(&w);
    while (pos <= size && nreq < MAX_REQUESTS) {
        const char *sep = memchr(s + pos, SEP, size - pos);
        size_t n = sep ? (size_t)(sep - (s + pos)) : size - pos;
        struct req q;

        if (n > 0) {
            req_decode(&w, &q, s + pos, n);
            run_request(&w, &q);
            req_free(&q);
            nreq++;
        }
        pos += n + 1;
    }
    world_free(&w);
    return 0;
}
