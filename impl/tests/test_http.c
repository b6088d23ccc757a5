/*
 * test_http.c - the request logic through http_handle (no sockets): routes,
 * the order of checks, idempotency, conflicts, origins, 32 concurrent
 * writers; and the libmicrohttpd glue through real sockets on 127.0.0.1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <pthread.h>
#include <time.h>

#include "http.h"
#include "idem.h"
#include "store.h"

struct fixture {
    struct store *store;
    struct idem *idem;
    struct events_hub *events;
    struct presence *presence;
    struct http_deps deps;
    struct http_app *app;
};

static int setup(void **state)
{
    static const char *const paths[] = {"/a.png", "/b.jpg", "/dir/c.webp", "/dir/sub/d.png"};
    struct fixture *f = calloc(1, sizeof(*f));
    struct events_config ecfg = {64, 32, 1000, 1000};
    struct presence_config pcfg;
    struct http_config cfg;
    int err = 0;

    memset(&pcfg, 0, sizeof(pcfg));
    memset(&cfg, 0, sizeof(cfg));
    cfg.host = "127.0.0.1";
    f->store = store_new();
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        if (store_add_item(f->store, paths[i]) != 0)
            return -1;
    f->idem = idem_new(1024, 1 << 20, IDEM_DEFAULT_TTL_US);
    f->events = events_new(&ecfg, 0, &err);
    f->presence = presence_new(&pcfg, &err);
    f->deps.store = f->store;
    f->deps.idem = f->idem;
    f->deps.events = f->events;
    f->deps.presence = f->presence;
    f->app = http_app_new(&cfg, 7070, &f->deps, &err);
    if (!f->app)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    http_app_free(f->app);
    presence_free(f->presence);
    events_free(f->events);
    idem_free(f->idem);
    store_free(f->store);
    free(f);
    return 0;
}

/* A request in test-friendly form. */
struct rq {
    const char *method;
    const char *url;
    const char *query;       /* raw "name=value&..." or NULL */
    const char *headers[12]; /* "Name: value", NULL-terminated */
    const char *body;
    bool too_large;
};

struct result {
    struct http_response r;
    cJSON *json;
};

static void call(struct fixture *f, const struct rq *rq, struct result *out)
{
    struct http_kv q[16], h[16];
    char names[16][64], qbuf[8192];
    struct http_request req;
    size_t nq = 0, nh = 0;

    memset(&req, 0, sizeof(req));
    memset(out, 0, sizeof(*out));
    if (rq->query) {
        char *save = NULL, *tok;

        snprintf(qbuf, sizeof(qbuf), "%s", rq->query);
        for (tok = strtok_r(qbuf, "&", &save); tok && nq < 16; tok = strtok_r(NULL, "&", &save)) {
            char *eq = strchr(tok, '=');

            q[nq].name = tok;
            q[nq].value = eq ? eq + 1 : NULL;
            if (eq)
                *eq = '\0';
            q[nq].value_len = eq ? strlen(eq + 1) : 0;
            nq++;
        }
    }
    for (; nh < 12 && rq->headers[nh]; nh++) {
        const char *colon = strchr(rq->headers[nh], ':');

        snprintf(names[nh], sizeof(names[nh]), "%.*s", (int)(colon - rq->headers[nh]),
                 rq->headers[nh]);
        h[nh].name = names[nh];
        h[nh].value = colon + 2;
        h[nh].value_len = strlen(colon + 2);
    }
    req.method = rq->method;
    req.url = rq->url;
    req.query = q;
    req.nquery = nq;
    req.headers = h;
    req.nheaders = nh;
    req.body = rq->body;
    req.body_len = rq->body ? strlen(rq->body) : 0;
    req.body_too_large = rq->too_large;
    assert_int_equal(http_handle(f->app, &req, &out->r), 0);
    if (out->r.body)
        out->json = cJSON_ParseWithLength(out->r.body, out->r.body_len);
}

static void done(struct result *res)
{
    cJSON_Delete(res->json);
    http_response_cleanup(&res->r);
}

static const char *hdr(const struct result *res, const char *name)
{
    for (size_t i = 0; i < res->r.nheaders; i++)
        if (strcasecmp(res->r.headers[i].name, name) == 0)
            return res->r.headers[i].value;
    return NULL;
}

static const char *jstr(const struct result *res, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(res->json, key);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

#define JSON_CT "Content-Type: application/json"

static void http_should_answer_get_with_record_and_etag(void **state)
{
    struct rq rq = {"GET", "/item", "path=%2Fa.png", {NULL}, NULL, false};
    struct result res;

    call(*state, &rq, &res);
    assert_int_equal(res.r.status, 200);
    assert_string_equal(hdr(&res, "ETag"), "\"1\"");
    assert_string_equal(res.r.body, "{\"path\":\"/a.png\",\"tags\":[],\"notes\":\"\",\"star\":null,"
                                    "\"metrics\":{},\"version\":1,\"updated_at\":null,"
                                    "\"updated_by\":null}");
    done(&res);
    /* Canonicalization reaches the same item. */
    rq.query = "path=dir/./sub//d.png/";
    call(*state, &rq, &res);
    assert_int_equal(res.r.status, 200);
    assert_string_equal(jstr(&res, "path"), "/dir/sub/d.png");
    done(&res);
    /* If-None-Match with the current version: 304, no body. */
    rq.query = "path=/a.png";
    rq.headers[0] = "If-None-Match: \"1\"";
    call(*state, &rq, &res);
    assert_int_equal(res.r.status, 304);
    assert_null(res.r.body);
    done(&res);
}

static void http_should_require_and_validate_path(void **state)
{
    static const struct {
        const char *query;
        int status;
        const char *error;
        const char *reason;
    } cases[] = {
        {NULL, 400, "missing_parameter", NULL},
        {"path=/a.png&path=/b.jpg", 400, "duplicate_parameter", NULL},
        {"path=..", 400, "invalid_path", "escapes_root"},
        {"path=/a/../../x.png", 400, "invalid_path", "escapes_root"},
        {"path=%zz", 400, "invalid_path", "bad_percent_encoding"},
        {"path=/a%00.png", 400, "invalid_path", "control_char"},
        {"path=%C0%AF", 400, "invalid_path", "invalid_utf8"},
        {"path=/nope.png", 404, "item_not_found", NULL},
        {"path=/dir", 404, "item_not_found", NULL},
        {"other=1&path=%2Fa.png", 200, NULL, NULL},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct rq rq = {"GET", "/item", cases[i].query, {NULL}, NULL, false};
        struct result res;

        call(*state, &rq, &res);
        assert_int_equal(res.r.status, cases[i].status);
        if (cases[i].error)
            assert_string_equal(jstr(&res, "error"), cases[i].error);
        if (cases[i].reason)
            assert_string_equal(jstr(&res, "reason"), cases[i].reason);
        assert_string_equal(hdr(&res, "Content-Type"), "application/json");
        done(&res);
    }
}

static void http_should_route_and_refuse_methods(void **state)
{
    struct rq rq = {"GET", "/nope", NULL, {NULL}, NULL, false};
    struct result res;
    cJSON *allow;

    call(*state, &rq, &res);
    assert_int_equal(res.r.status, 404);
    assert_string_equal(jstr(&res, "error"), "not_found");
    done(&res);
    rq.url = "/item/";
    call(*state, &rq, &res);
    assert_int_equal(res.r.status, 404);
    done(&res);
    rq.url = "/item";
    rq.method = "DELETE";
    call(*state, &rq, &res);
    assert_int_equal(res.r.status, 405);
    assert_string_equal(hdr(&res, "Allow"), "GET, HEAD, PUT, PATCH, OPTIONS");
    allow = cJSON_GetObjectItemCaseSensitive(res.json, "allow");
    assert_int_equal(cJSON_GetArraySize(allow), 5);
    done(&res);
    rq.url = "/health";
    rq.method = "POST";
    call(*state, &rq, &res);
    assert_int_equal(res.r.status, 405);
    assert_string_equal(hdr(&res, "Allow"), "GET, HEAD, OPTIONS");
    done(&res);
    rq.method = "OPTIONS";
    call(*state, &rq, &res);
    assert_int_equal(res.r.status, 204);
    assert_null(res.r.body);
    done(&res);
}

static void http_should_apply_a_patch(void **state)
{
    struct rq rq = {"PATCH",
                    "/item",
                    "path=/b.jpg",
                    {JSON_CT, "Idempotency-Key: k-apply", "X-Client-Id: tab-1", NULL},
                    "{\"base_version\":1,\"set_star\":5,\"add_tags\":[\"sky\"]}",
                    false};
    struct result res;
    const cJSON *item, *changed;

    call(*state, &rq, &res);
    assert_int_equal(res.r.status, 200);
    assert_string_equal(hdr(&res, "ETag"), "\"2\"");
    item = cJSON_GetObjectItemCaseSensitive(res.json, "item");
    assert_int_equal((int)jnum(item, "version"), 2);
    assert_int_equal((int)jnum(item, "star"), 5);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(item, "updated_by")->valuestring, "tab-1");
    assert_string_equal(jstr(&res, "mutation_id"), "k-apply");
    assert_int_equal((int)jnum(res.json, "event_id"), 1);
    changed = cJSON_GetObjectItemCaseSensitive(res.json, "changed_fields");
    assert_int_equal(cJSON_GetArraySize(changed), 2);
    assert_string_equal(cJSON_GetArrayItem(changed, 0)->valuestring, "tags");
    assert_string_equal(cJSON_GetArrayItem(changed, 1)->valuestring, "star");
    done(&res);
}

static void http_should_check_in_protocol_order(void **state)
{
    struct result res;
    /* 415 outranks a broken body; 413 outranks a bad path. */
    struct rq a = {"PATCH", "/item", "path=/a.png", {"Content-Type: text/plain", NULL}, "{", false};
    struct rq b = {"PATCH", "/item", "path=..", {JSON_CT, NULL}, "{}", true};
    /* Missing key outranks a stale version and an unknown item. */
    struct rq c = {"PATCH", "/item", "path=/zz.png", {JSON_CT, NULL}, "{\"base_version\":9}",
                   false};
    /* Body errors name the field. */
    struct rq d = {"PATCH",
                   "/item",
                   "path=/a.png",
                   {JSON_CT, "Idempotency-Key: k-d", NULL},
                   "{\"base_version\":1,\"bogus\":1}",
                   false};
    struct rq e = {"PATCH",
                   "/item",
                   "path=/a.png",
                   {JSON_CT, "Idempotency-Key: k-e", NULL},
                   "{\"base_version\":1,\"set_star\":\"3\"}",
                   false};
    struct rq g = {"PATCH",
                   "/item",
                   "path=/a.png",
                   {JSON_CT, "Idempotency-Key: k-g", NULL},
                   "{\"set_star\":3}",
                   false};
    struct rq h = {"PATCH",
                   "/item",
                   "path=/a.png",
                   {JSON_CT, "Idempotency-Key: k-h", "If-Match: \"2\"", NULL},
                   "{\"base_version\":1}",
                   false};
    struct rq i = {"PATCH",       "/item",
                   "path=/a.png", {JSON_CT, "Idempotency-Key: k-i", "If-Match: W/\"1\"", NULL},
                   "{}",          false};
    struct rq j = {"PATCH",
                   "/item",
                   "path=/a.png",
                   {JSON_CT, "Idempotency-Key: k-j", NULL},
                   "{\"base_version\":1,",
                   false};

    call(*state, &a, &res);
    assert_int_equal(res.r.status, 415);
    assert_string_equal(hdr(&res, "Accept-Patch"), "application/json");
    done(&res);
    call(*state, &b, &res);
    assert_int_equal(res.r.status, 413);
    assert_int_equal((int)jnum(res.json, "limit"), HTTP_MAX_BODY);
    done(&res);
    call(*state, &c, &res);
    assert_int_equal(res.r.status, 400);
    assert_string_equal(jstr(&res, "error"), "missing_idempotency_key");
    done(&res);
    call(*state, &d, &res);
    assert_int_equal(res.r.status, 400);
    assert_string_equal(jstr(&res, "error"), "unknown_field");
    assert_string_equal(jstr(&res, "field"), "bogus");
    done(&res);
    call(*state, &e, &res);
    assert_int_equal(res.r.status, 400);
    assert_string_equal(jstr(&res, "error"), "invalid_type");
    assert_string_equal(jstr(&res, "pointer"), "/set_star");
    done(&res);
    call(*state, &g, &res);
    assert_string_equal(jstr(&res, "error"), "missing_base_version");
    done(&res);
    call(*state, &h, &res);
    assert_string_equal(jstr(&res, "error"), "version_mismatch");
    done(&res);
    call(*state, &i, &res);
    assert_string_equal(jstr(&res, "error"), "invalid_if_match");
    done(&res);
    call(*state, &j, &res);
    assert_string_equal(jstr(&res, "error"), "invalid_json");
    assert_non_null(cJSON_GetObjectItemCaseSensitive(res.json, "offset"));
    done(&res);
}

static void http_should_replay_identically_and_refuse_reuse(void **state)
{
    struct rq rq = {"PATCH",
                    "/item",
                    "path=/dir/c.webp",
                    {JSON_CT, "Idempotency-Key: \"k-replay\"", NULL},
                    "{\"base_version\":1,\"set_notes\":\"hello\"}",
                    false};
    struct rq other = rq;
    struct result first, again, res;

    call(*state, &rq, &first);
    assert_int_equal(first.r.status, 200);
    /* Same key (quoted or not), same request, different whitespace: replay. */
    rq.headers[1] = "Idempotency-Key: k-replay";
    rq.body = "{ \"set_notes\" : \"hello\", \"base_version\" : 1 }";
    call(*state, &rq, &again);
    assert_int_equal(again.r.status, 200);
    assert_int_equal(again.r.body_len, first.r.body_len);
    assert_memory_equal(again.r.body, first.r.body, first.r.body_len);
    assert_string_equal(hdr(&again, "Idempotent-Replayed"), "true");
    assert_string_equal(hdr(&again, "ETag"), "\"2\"");
    done(&again);
    done(&first);
    /* Same key, different body: 422, and nothing changed. */
    other.body = "{\"base_version\":1,\"set_notes\":\"other\"}";
    call(*state, &other, &res);
    assert_int_equal(res.r.status, 422);
    assert_string_equal(jstr(&res, "error"), "idempotency_key_reused");
    done(&res);
    /* The same key from another client is another key: here a stale write. */
    other.headers[2] = "X-Client-Id: someone-else";
    call(*state, &other, &res);
    assert_int_equal(res.r.status, 409);
    assert_string_equal(jstr(&res, "error"), "version_conflict");
    assert_int_equal((int)jnum(cJSON_GetObjectItemCaseSensitive(res.json, "current"), "version"),
                     2);
    done(&res);
    /* ... and that 409 is stored too. */
    call(*state, &other, &res);
    assert_int_equal(res.r.status, 409);
    assert_string_equal(hdr(&res, "Idempotent-Replayed"), "true");
    done(&res);
}

static void http_should_not_bump_on_a_noop(void **state)
{
    struct rq rq = {"PATCH",
                    "/item",
                    "path=/a.png",
                    {JSON_CT, "Idempotency-Key: k-noop", NULL},
                    "{\"base_version\":1,\"set_star\":null,\"set_tags\":[]}",
                    false};
    struct result res;
    const cJSON *item;

    call(*state, &rq, &res);
    assert_int_equal(res.r.status, 200);
    item = cJSON_GetObjectItemCaseSensitive(res.json, "item");
    assert_int_equal((int)jnum(item, "version"), 1);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(res.json, "event_id")));
    assert_int_equal(
        cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res.json, "changed_fields")), 0);
    done(&res);
}

static void http_should_replace_with_put(void **state)
{
    struct rq rq = {"PUT",
                    "/item",
                    "path=/dir/sub/d.png",
                    {JSON_CT, NULL},
                    "{\"tags\":[\"b\",\" a \",\"b\"],\"star\":2,\"version\":99,\"v\":1}",
                    false};
    struct result res;
    const cJSON *item;

    call(*state, &rq, &res);
    assert_int_equal(res.r.status, 200);
    assert_null(hdr(&res, "ETag"));
    item = cJSON_GetObjectItemCaseSensitive(res.json, "item");
    assert_int_equal((int)jnum(item, "version"), 2);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(item, "tags")), 2);
    done(&res);
    call(*state, &rq, &res); /* identical PUT: no bump */
    assert_int_equal((int)jnum(cJSON_GetObjectItemCaseSensitive(res.json, "item"), "version"), 2);
    done(&res);
    rq.body = "{\"tags\":[],\"mystery\":1}";
    call(*state, &rq, &res);
    assert_int_equal(res.r.status, 400);
    assert_string_equal(jstr(&res, "field"), "mystery");
    done(&res);
    rq.body = "{}";
    rq.headers[1] = "If-Match: 1";
    call(*state, &rq, &res);
    assert_int_equal(res.r.status, 409);
    done(&res);
}

static void http_should_refuse_foreign_origins(void **state)
{
    struct rq rq = {"PATCH",
                    "/item",
                    "path=/a.png",
                    {JSON_CT, "Idempotency-Key: k-origin", "Origin: http://evil.example", NULL},
                    "{\"base_version\":1}",
                    false};
    struct result res;

    call(*state, &rq, &res);
    assert_int_equal(res.r.status, 403);
    assert_string_equal(jstr(&res, "error"), "origin_not_allowed");
    done(&res);
    rq.headers[2] = "Origin: null";
    call(*state, &rq, &res);
    assert_int_equal(res.r.status, 403);
    done(&res);
    rq.headers[2] = "Origin: HTTP://LOCALHOST:7070";
    call(*state, &rq, &res);
    assert_int_equal(res.r.status, 200);
    done(&res);
}

static void http_should_list_folders_and_report_health(void **state)
{
    struct rq rq = {"GET", "/folders", "path=/dir", {NULL}, NULL, false};
    struct result res;
    const cJSON *feat;

    call(*state, &rq, &res);
    assert_int_equal(res.r.status, 200);
    assert_string_equal(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res.json, "folders"), 0)->valuestring,
        "/dir/sub");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res.json, "items")), 1);
    done(&res);
    rq.query = NULL;
    call(*state, &rq, &res);
    assert_string_equal(jstr(&res, "path"), "/");
    done(&res);
    rq.query = "path=/a.png";
    call(*state, &rq, &res);
    assert_int_equal(res.r.status, 404);
    assert_string_equal(jstr(&res, "error"), "folder_not_found");
    done(&res);
    rq.url = "/health";
    rq.query = NULL;
    call(*state, &rq, &res);
    assert_int_equal(res.r.status, 200);
    feat = cJSON_GetObjectItemCaseSensitive(res.json, "features");
    assert_true(cJSON_GetArraySize(feat) >= 10);
    assert_int_equal((int)jnum(res.json, "items"), 4);
    done(&res);
}

struct racer {
    struct fixture *f;
    int index;
    int status;
    pthread_barrier_t *bar;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    char key[64], body[96];
    struct rq rq = {"PATCH", "/item", "path=/a.png", {JSON_CT, key, NULL}, body, false};
    struct result res;

    snprintf(key, sizeof(key), "Idempotency-Key: race-%d", r->index);
    snprintf(body, sizeof(body), "{\"base_version\":%d,\"set_notes\":\"n%d\",\"set_star\":%d}", 1,
             r->index, r->index % 6);
    pthread_barrier_wait(r->bar);
    call(r->f, &rq, &res);
    r->status = res.r.status;
    done(&res);
    return NULL;
}

static void http_should_let_exactly_one_of_32_threads_win(void **state)
{
    struct racer rs[32];
    pthread_t th[32];
    pthread_barrier_t bar;
    int ok = 0, conflict = 0;

    pthread_barrier_init(&bar, NULL, 32);
    for (int i = 0; i < 32; i++) {
        rs[i].f = *state;
        rs[i].index = i;
        rs[i].bar = &bar;
        assert_int_equal(pthread_create(&th[i], NULL, race, &rs[i]), 0);
    }
    for (int i = 0; i < 32; i++) {
        pthread_join(th[i], NULL);
        ok += rs[i].status == 200;
        conflict += rs[i].status == 409;
    }
    assert_int_equal(ok, 1);
    assert_int_equal(conflict, 31);
    pthread_barrier_destroy(&bar);
}

static void http_should_resolve_event_stream_options(void **state)
{
    struct rq rq = {"GET", "/events", "last_event_id=3", {"Last-Event-ID: 7", NULL}, NULL, false};
    struct result res;

    call(*state, &rq, &res);
    assert_int_equal(res.r.status, 200);
    assert_true(res.r.stream);
    assert_string_equal(hdr(&res, "Content-Type"), "text/event-stream");
    assert_true(res.r.stream_opts.has_last);
    assert_int_equal(res.r.stream_opts.last_id, 7); /* the header wins */
    done(&res);
    rq.headers[0] = NULL;
    call(*state, &rq, &res);
    assert_int_equal(res.r.stream_opts.last_id, 3);
    done(&res);
    rq.query = "last_event_id=-1";
    call(*state, &rq, &res);
    assert_true(res.r.stream_opts.last_invalid); /* a resync, never a 4xx */
    assert_int_equal(res.r.status, 200);
    done(&res);
    rq.query = "gallery_id=/dir";
    call(*state, &rq, &res);
    assert_string_equal(res.r.stream_opts.filter, "/dir");
    assert_false(res.r.stream_opts.has_last);
    done(&res);
    rq.query = "gallery_id=/nope";
    call(*state, &rq, &res);
    assert_int_equal(res.r.status, 404);
    assert_string_equal(jstr(&res, "error"), "folder_not_found");
    done(&res);
    rq.query = "gallery_id=..";
    call(*state, &rq, &res);
    assert_int_equal(res.r.status, 400);
    assert_string_equal(jstr(&res, "parameter"), "gallery_id");
    done(&res);
    rq.method = "HEAD";
    rq.query = NULL;
    call(*state, &rq, &res);
    assert_int_equal(res.r.status, 200);
    assert_false(res.r.stream);
    done(&res);
}

static void http_should_run_presence_calls(void **state)
{
    struct rq join = {"POST",
                      "/presence/join",
                      NULL,
                      {JSON_CT, NULL},
                      "{\"gallery_id\":\"/dir\",\"client_id\":\"p1\"}",
                      false};
    struct rq move = {"POST", "/presence/move", NULL, {JSON_CT, "X-Client-Id: p1", NULL}, NULL,
                      false};
    struct rq leave = {"POST", "/presence/leave", NULL, {JSON_CT, NULL}, NULL, false};
    struct result res;
    char lease[64], body[256];

    call(*state, &join, &res);
    assert_int_equal(res.r.status, 200);
    assert_int_equal((int)jnum(res.json, "viewing"), 1);
    assert_int_equal(strlen(jstr(&res, "lease_id")), 32);
    snprintf(lease, sizeof(lease), "%s", jstr(&res, "lease_id"));
    done(&res);
    /* Wrong lease, then wrong scope. */
    move.body = "{\"from_gallery_id\":\"/dir\",\"to_gallery_id\":\"/\",\"lease_id\":\"nope\"}";
    call(*state, &move, &res);
    assert_int_equal(res.r.status, 409);
    assert_string_equal(jstr(&res, "error"), "invalid_lease");
    done(&res);
    snprintf(body, sizeof(body),
             "{\"from_gallery_id\":\"/dir/sub\",\"to_gallery_id\":\"/\",\"lease_id\":\"%s\"}",
             lease);
    move.body = body;
    call(*state, &move, &res);
    assert_int_equal(res.r.status, 409);
    assert_string_equal(jstr(&res, "error"), "scope_mismatch");
    assert_string_equal(jstr(&res, "actual_gallery_id"), "/dir");
    done(&res);
    snprintf(body, sizeof(body),
             "{\"from_gallery_id\":\"/dir\",\"to_gallery_id\":\"/dir/sub\",\"lease_id\":\"%s\"}",
             lease);
    call(*state, &move, &res);
    assert_int_equal(res.r.status, 200);
    assert_int_equal((int)jnum(cJSON_GetObjectItemCaseSensitive(res.json, "to"), "viewing"), 1);
    done(&res);
    /* Body and header must agree on the client. */
    snprintf(body, sizeof(body),
             "{\"gallery_id\":\"/dir/sub\",\"lease_id\":\"%s\",\"client_id\":\"p2\"}", lease);
    leave.body = body;
    leave.headers[1] = "X-Client-Id: p1";
    call(*state, &leave, &res);
    assert_int_equal(res.r.status, 400);
    assert_string_equal(jstr(&res, "pointer"), "/client_id");
    done(&res);
    snprintf(body, sizeof(body),
             "{\"gallery_id\":\"/dir/sub\",\"lease_id\":\"%s\",\"client_id\":\"p1\"}", lease);
    call(*state, &leave, &res);
    assert_int_equal(res.r.status, 200);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res.json, "removed")));
    done(&res);
    call(*state, &leave, &res); /* again: idempotent */
    assert_int_equal(res.r.status, 200);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(res.json, "removed")));
    done(&res);
    /* Validation. */
    join.body = "{\"client_id\":\"p1\"}";
    call(*state, &join, &res);
    assert_string_equal(jstr(&res, "error"), "missing_field");
    assert_string_equal(jstr(&res, "pointer"), "/gallery_id");
    done(&res);
    join.body = "{\"gallery_id\":\"/dir\",\"client_id\":\"p1\",\"x\":1}";
    call(*state, &join, &res);
    assert_string_equal(jstr(&res, "error"), "unknown_field");
    done(&res);
    join.body = "{\"gallery_id\":7,\"client_id\":\"p1\"}";
    call(*state, &join, &res);
    assert_string_equal(jstr(&res, "error"), "invalid_type");
    done(&res);
    join.body = "{\"gallery_id\":\"/dir\"}";
    call(*state, &join, &res);
    assert_string_equal(jstr(&res, "error"), "missing_field");
    assert_string_equal(jstr(&res, "pointer"), "/client_id");
    done(&res);
    join.body = "{\"gallery_id\":\"/zz\",\"client_id\":\"p1\"}";
    call(*state, &join, &res);
    assert_int_equal(res.r.status, 404);
    done(&res);
    join.method = "GET";
    call(*state, &join, &res);
    assert_int_equal(res.r.status, 405);
    assert_string_equal(hdr(&res, "Allow"), "POST, OPTIONS");
    done(&res);
}

/* ---- through real sockets ---------------------------------------------- */

struct sink {
    char data[8192];
    size_t len;
};

static size_t sink_write(char *p, size_t size, size_t n, void *ud)
{
    struct sink *s = ud;
    size_t k = size * n;

    if (k > sizeof(s->data) - 1 - s->len)
        k = sizeof(s->data) - 1 - s->len;
    memcpy(s->data + s->len, p, k);
    s->len += k;
    s->data[s->len] = '\0';
    return size * n;
}

static long fetch(const char *url, const char *method, struct curl_slist *h, const char *body,
                  long body_len, struct sink *out)
{
    CURL *c = curl_easy_init();
    long code = 0;

    memset(out, 0, sizeof(*out));
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, body_len);
    }
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    return code;
}

static void http_should_serve_over_sockets(void **state)
{
    struct fixture *f = *state;
    struct http_config cfg;
    struct http_server *srv = NULL;
    struct curl_slist *h = NULL;
    struct sink out;
    char url[256], *big;
    const size_t bigsz = HTTP_MAX_BODY + 10;

    memset(&cfg, 0, sizeof(cfg));
    cfg.host = "127.0.0.1";
    cfg.threads = 2;
    assert_int_equal(http_start(&cfg, &f->deps, &srv), 0);
    assert_true(http_port(srv) > 0);

    snprintf(url, sizeof(url), "http://127.0.0.1:%u/health", http_port(srv));
    assert_int_equal(fetch(url, "GET", NULL, NULL, 0, &out), 200);
    assert_non_null(strstr(out.data, "\"server\":\"labelsyncd\""));
    assert_int_equal(fetch(url, "HEAD", NULL, NULL, 0, &out), 200);
    assert_int_equal(out.len, 0);

    /* A raw '+' in the query is a space; %2B is a plus. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/item?path=/dir/c%%2ewebp", http_port(srv));
    assert_int_equal(fetch(url, "GET", NULL, NULL, 0, &out), 200);

    /* A body over the cap is refused with 413 (declared length and streamed). */
    big = malloc(bigsz);
    memset(big, ' ', bigsz);
    big[0] = '{';
    big[bigsz - 1] = '}';
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Idempotency-Key: sock-big");
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/item?path=/a.png", http_port(srv));
    assert_int_equal(fetch(url, "PATCH", h, big, (long)bigsz, &out), 413);
    assert_non_null(strstr(out.data, "body_too_large"));
    h = curl_slist_append(h, "Transfer-Encoding: chunked");
    assert_int_equal(fetch(url, "PATCH", h, big, (long)bigsz, &out), 413);
    free(big);
    curl_slist_free_all(h);

    http_stop(srv);
    http_stop(NULL);
}

/*
 * libmicrohttpd 0.9.75's epoll loop hangs when exactly 128 (or 256) sockets
 * become ready at once (docs/internals/http.md); whatever mode the server
 * uses, 256 simultaneous connections must all be served.
 */
static void http_should_serve_256_simultaneous_connections(void **state)
{
    enum { N = 256 };
    struct fixture *f = *state;
    struct http_config cfg;
    struct http_server *srv = NULL;
    CURLM *m = curl_multi_init();
    CURL *e[N];
    struct sink *out = calloc(N, sizeof(*out));
    char url[128];
    int running = 1, ok = 0, rounds = 0;
    CURLMsg *msg;
    int left;

    memset(&cfg, 0, sizeof(cfg));
    cfg.host = "127.0.0.1";
    cfg.threads = 2;
    cfg.max_connections = 1000;
    assert_int_equal(http_start(&cfg, &f->deps, &srv), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/item?path=/b.jpg", http_port(srv));
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)N);
    for (int i = 0; i < N; i++) {
        e[i] = curl_easy_init();
        curl_easy_setopt(e[i], CURLOPT_URL, url);
        curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, sink_write);
        curl_easy_setopt(e[i], CURLOPT_WRITEDATA, &out[i]);
        curl_easy_setopt(e[i], CURLOPT_TIMEOUT_MS, 20000L);
        curl_easy_setopt(e[i], CURLOPT_FRESH_CONNECT, 1L);
        curl_multi_add_handle(m, e[i]);
    }
    while (running && rounds++ < 100000) {
        curl_multi_perform(m, &running);
        if (running)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    while ((msg = curl_multi_info_read(m, &left)) != NULL) {
        long code = 0;

        if (msg->msg != CURLMSG_DONE || msg->data.result != CURLE_OK)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
        ok += code == 200;
    }
    for (int i = 0; i < N; i++) {
        curl_multi_remove_handle(m, e[i]);
        curl_easy_cleanup(e[i]);
    }
    curl_multi_cleanup(m);
    free(out);
    http_stop(srv);
    assert_int_equal(ok, N);
}

/* ---- event streams over sockets ---------------------------------------- */

struct stream_sink {
    char data[16384];
    size_t len;
};

static size_t stream_write(char *p, size_t size, size_t n, void *ud)
{
    struct stream_sink *s = ud;
    size_t k = size * n;

    if (k > sizeof(s->data) - 1 - s->len)
        k = sizeof(s->data) - 1 - s->len;
    memcpy(s->data + s->len, p, k);
    s->len += k;
    s->data[s->len] = '\0';
    return size * n;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Drive m until every sink holds needle (or the deadline passes). */
static bool pump_until(CURLM *m, struct stream_sink *sinks, int n, const char *needle, double secs)
{
    double end = now_s() + secs;
    int running = 1;

    while (now_s() < end) {
        int have = 0;

        curl_multi_perform(m, &running);
        for (int i = 0; i < n; i++)
            have += strstr(sinks[i].data, needle) != NULL;
        if (have == n)
            return true;
        curl_multi_poll(m, NULL, 0, 20, NULL);
        if (now_s() >= end) {
            print_message("pump_until: %d of %d streams have '%s'; first: '%.60s'\n", have, n,
                          needle, sinks[0].data);
        }
    }
    return false;
}

/*
 * Streams deliver live events to every subscriber, and a server with 100
 * open (suspended) streams shuts down in well under a second (PROTOCOL §15,
 * docs/internals/http.md shutdown order).
 */
static void http_should_stream_events_and_stop_fast_with_100_streams(void **state)
{
    enum { N = 100 };
    struct fixture *f = *state;
    struct http_config cfg;
    struct http_server *srv = NULL;
    struct stream_sink *sinks = calloc(N, sizeof(*sinks));
    struct curl_slist *h = NULL;
    struct sink out;
    CURLM *m = curl_multi_init();
    CURL *e[N];
    char url[128], purl[160];
    struct events_config ecfg = {64, 32, 1000, 1000};
    struct http_deps deps = f->deps;
    double t0, took;
    int err = 0;

    /* Its own hub: http_stop shuts a hub down for good, and earlier tests
     * stopped servers over the fixture's hub. */
    deps.events = events_new(&ecfg, 0, &err);
    assert_non_null(deps.events);
    memset(&cfg, 0, sizeof(cfg));
    cfg.host = "127.0.0.1";
    cfg.threads = 2;
    cfg.max_connections = 1000;
    assert_int_equal(http_start(&cfg, &deps, &srv), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/events", http_port(srv));
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)N + 10);
    for (int i = 0; i < N; i++) {
        e[i] = curl_easy_init();
        curl_easy_setopt(e[i], CURLOPT_URL, url);
        curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, stream_write);
        curl_easy_setopt(e[i], CURLOPT_WRITEDATA, &sinks[i]);
        curl_easy_setopt(e[i], CURLOPT_TIMEOUT_MS, 20000L);
        curl_multi_add_handle(m, e[i]);
    }
    /* Headers and the retry hint come at once, before any event. */
    assert_true(pump_until(m, sinks, N, "retry: ", 10.0));

    /* One write reaches every subscriber, with the id the PATCH reported. */
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Idempotency-Key: stream-1");
    snprintf(purl, sizeof(purl), "http://127.0.0.1:%u/item?path=/dir/c.webp", http_port(srv));
    assert_int_equal(fetch(purl, "PUT", h, "{\"notes\":\"streamed\"}", 20, &out), 200);
    curl_slist_free_all(h);
    assert_true(pump_until(m, sinks, N, "\"notes\":\"streamed\"", 10.0));
    for (int i = 0; i < N; i++)
        assert_non_null(strstr(sinks[i].data, "event: item-updated\n"));

    /* Shut down with all of them open and parked. */
    t0 = now_s();
    http_stop(srv);
    took = now_s() - t0;
    print_message("http_stop with %d open streams: %.1f ms\n", N, took * 1e3);
    assert_true(took < 1.0);
    for (int i = 0; i < N; i++) {
        curl_multi_remove_handle(m, e[i]);
        curl_easy_cleanup(e[i]);
    }
    curl_multi_cleanup(m);
    free(sinks);
    events_free(deps.events);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(http_should_answer_get_with_record_and_etag),
        cmocka_unit_test(http_should_require_and_validate_path),
        cmocka_unit_test(http_should_route_and_refuse_methods),
        cmocka_unit_test(http_should_apply_a_patch),
        cmocka_unit_test(http_should_check_in_protocol_order),
        cmocka_unit_test(http_should_replay_identically_and_refuse_reuse),
        cmocka_unit_test(http_should_not_bump_on_a_noop),
        cmocka_unit_test(http_should_replace_with_put),
        cmocka_unit_test(http_should_refuse_foreign_origins),
        cmocka_unit_test(http_should_list_folders_and_report_health),
        cmocka_unit_test(http_should_let_exactly_one_of_32_threads_win),
        cmocka_unit_test(http_should_resolve_event_stream_options),
        cmocka_unit_test(http_should_run_presence_calls),
        cmocka_unit_test(http_should_serve_over_sockets),
        cmocka_unit_test(http_should_serve_256_simultaneous_connections),
        cmocka_unit_test(http_should_stream_events_and_stop_fast_with_100_streams),
    };
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
