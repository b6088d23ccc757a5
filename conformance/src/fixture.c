/*
 * fixture.c - loading and structural checks of fixtures and canon vectors;
 * see fixture.h.  The checks mirror spec/schema/fixture.schema.json; when
 * the two disagree, `labelsync-check --lint` (which runs both) says so.
 */
#include "fixture.h"

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "http.h"
#include "lifecycle.h"
#include "match.h"
#include "stream.h"
#include "util.h"
#include "vars.h"

/* Problem reporter: "file: /pointer: message"; also tracks which streams are open. */
struct chk {
    const char *file;
    struct buf *err;
    int bad;
    const char *open[STREAM_MAX_OPEN]; /* names of the streams open at this step (borrowed) */
    size_t nopen;
    int life;    /* the case requires "lifecycle": the server starts stopped */
    int running; /* the server runs at this step (always, outside lifecycle cases) */
};

static void say(struct chk *k, const char *where, const char *fmt, ...) LS_PRINTF(3, 4);

static void say(struct chk *k, const char *where, const char *fmt, ...)
{
    va_list ap;
    int rc = buf_appendf(k->err, "%s: %s: ", k->file, *where ? where : "/");

    va_start(ap, fmt);
    if (!rc)
        rc = buf_vappendf(k->err, fmt, ap);
    va_end(ap);
    if (!rc)
        rc = buf_appendc(k->err, '\n');
    (void)rc;
    k->bad = 1;
}

/* A child pointer "where/key" in a small scratch buffer owned by the caller. */
static const char *at(struct buf *b, const char *where, const char *key)
{
    buf_reset(b);
    if (buf_appends(b, where) != 0 || json_pointer_push(b, key) != 0)
        return where;
    return b->data;
}

static const char *at_i(struct buf *b, const char *where, int i)
{
    buf_reset(b);
    if (buf_appendf(b, "%s/%d", where, i) != 0)
        return where;
    return b->data;
}

const char *fixture_str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int is_int(const cJSON *v, double lo, double hi)
{
    return cJSON_IsNumber(v) && util_is_integral(v->valuedouble) && v->valuedouble >= lo &&
           v->valuedouble <= hi;
}

/* Only keys from allowed (NULL-terminated) may appear in obj. */
static void only_keys(struct chk *k, const cJSON *obj, const char *where,
                      const char *const *allowed, const char *what)
{
    const cJSON *c;

    cJSON_ArrayForEach(c, obj)
    {
        const char *const *a;
        int ok = 0;

        for (a = allowed; *a; a++)
            if (!strcmp(c->string, *a))
                ok = 1;
        if (!ok)
            say(k, where, "unknown key \"%s\" in %s", c->string, what);
    }
}

static void check_pattern(struct chk *k, const cJSON *p, const char *where)
{
    struct buf e;

    buf_init(&e, 64 * 1024);
    if (match_check(p, where, &e) != 0) {
        /* match_check writes "pointer: problem" lines; prefix each with the file. */
        char *line = e.data, *nl;

        while (line && *line) {
            nl = strchr(line, '\n');
            if (nl)
                *nl = '\0';
            util_note(k->err, "%s: %s\n", k->file, line);
            line = nl ? nl + 1 : NULL;
        }
        k->bad = 1;
    }
    buf_cleanup(&e);
}

static int client_name_ok(const char *s)
{
    return vars_is_name(s, strlen(s)) && strlen(s) <= 64;
}

static void check_client(struct chk *k, const cJSON *c, const char *where)
{
    if (c && !(cJSON_IsString(c) && client_name_ok(c->valuestring)))
        say(k, where, "client must be a name of [A-Za-z0-9_.-], at most 64 bytes");
}

static void check_timeout(struct chk *k, const cJSON *t, const char *where)
{
    if (t && !is_int(t, 1, FIXTURE_MAX_TIMEOUT_MS))
        say(k, where, "timeout_ms must be an integer 1..%d", FIXTURE_MAX_TIMEOUT_MS);
}

static void check_request(struct chk *k, const cJSON *r, const char *where, int in_parallel)
{
    static const char *const keys[] = {"method", "path", "query",    "raw_query", "headers",
                                       "json",   "body", "body_hex", "body_fill", NULL};
    static const char *const pkeys[] = {"method",    "path",   "query", "raw_query",
                                        "headers",   "json",   "body",  "body_hex",
                                        "body_fill", "client", NULL};
    static const char *const fill_keys[] = {"prefix", "fill", "count", "suffix", NULL};
    const cJSON *c, *v;
    struct buf sub;
    int bodies = 0;

    buf_init(&sub, 64 * 1024);
    if (!cJSON_IsObject(r)) {
        say(k, where, "request must be an object");
        goto out;
    }
    only_keys(k, r, where, in_parallel ? pkeys : keys, "request");
    if (in_parallel)
        check_client(k, cJSON_GetObjectItemCaseSensitive(r, "client"), at(&sub, where, "client"));
    v = cJSON_GetObjectItemCaseSensitive(r, "method");
    if (!cJSON_IsString(v) || !v->valuestring[0] ||
        strspn(v->valuestring, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(v->valuestring))
        say(k, at(&sub, where, "method"), "method must be an upper-case token (GET, PATCH, ...)");
    v = cJSON_GetObjectItemCaseSensitive(r, "path");
    if (!cJSON_IsString(v) || !v->valuestring[0])
        say(k, at(&sub, where, "path"), "path must be a non-empty string");
    v = cJSON_GetObjectItemCaseSensitive(r, "query");
    if (v) {
        if (!cJSON_IsObject(v))
            say(k, at(&sub, where, "query"), "query must be an object");
        cJSON_ArrayForEach(c, v)
        {
            const cJSON *e;
            int ok = !cJSON_IsObject(c);

            if (cJSON_IsArray(c))
                cJSON_ArrayForEach(e, c)
                {
                    if (cJSON_IsArray(e) || cJSON_IsObject(e))
                        ok = 0;
                }
            if (!ok)
                say(k, at(&sub, where, "query"),
                    "query value \"%s\" must be a scalar or an array of scalars", c->string);
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(r, "raw_query");
    if (v && !cJSON_IsString(v))
        say(k, at(&sub, where, "raw_query"), "raw_query must be a string");
    v = cJSON_GetObjectItemCaseSensitive(r, "headers");
    if (v) {
        if (!cJSON_IsObject(v))
            say(k, at(&sub, where, "headers"), "headers must be an object");
        cJSON_ArrayForEach(c, v)
        {
            if (!cJSON_IsString(c) && !cJSON_IsNull(c))
                say(k, at(&sub, where, "headers"), "header \"%s\" must be a string or null",
                    c->string);
            else if (cJSON_IsString(c) && strpbrk(c->valuestring, "\r\n"))
                say(k, at(&sub, where, "headers"), "header \"%s\" contains CR or LF", c->string);
            if (!c->string[0] || strpbrk(c->string, " :\t\r\n"))
                say(k, at(&sub, where, "headers"), "bad header name \"%s\"", c->string);
        }
    }
    bodies += cJSON_GetObjectItemCaseSensitive(r, "json") != NULL;
    v = cJSON_GetObjectItemCaseSensitive(r, "body");
    if (v) {
        bodies++;
        if (!cJSON_IsString(v))
            say(k, at(&sub, where, "body"), "body must be a string");
    }
    v = cJSON_GetObjectItemCaseSensitive(r, "body_hex");
    if (v) {
        bodies++;
        if (!cJSON_IsString(v) || strlen(v->valuestring) % 2 ||
            strspn(v->valuestring, "0123456789abcdefABCDEF") != strlen(v->valuestring))
            say(k, at(&sub, where, "body_hex"), "body_hex must be pairs of hex digits");
    }
    v = cJSON_GetObjectItemCaseSensitive(r, "body_fill");
    if (v) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(v, "fill");

        bodies++;
        if (!cJSON_IsObject(v)) {
            say(k, at(&sub, where, "body_fill"), "body_fill must be an object");
        } else {
            only_keys(k, v, at(&sub, where, "body_fill"), fill_keys, "body_fill");
            if (!cJSON_IsString(f) || !f->valuestring[0])
                say(k, at(&sub, where, "body_fill"), "body_fill.fill must be a non-empty string");
            if (!is_int(cJSON_GetObjectItemCaseSensitive(v, "count"), 0, HTTP_MAX_REQUEST_BODY))
                say(k, at(&sub, where, "body_fill"), "body_fill.count must be an integer 0..%d",
                    HTTP_MAX_REQUEST_BODY);
            c = cJSON_GetObjectItemCaseSensitive(v, "prefix");
            if (c && !cJSON_IsString(c))
                say(k, at(&sub, where, "body_fill"), "body_fill.prefix must be a string");
            c = cJSON_GetObjectItemCaseSensitive(v, "suffix");
            if (c && !cJSON_IsString(c))
                say(k, at(&sub, where, "body_fill"), "body_fill.suffix must be a string");
        }
    }
    if (bodies > 1)
        say(k, where, "at most one of json, body, body_hex, body_fill");
out:
    buf_cleanup(&sub);
}

static int status_ok(const cJSON *s)
{
    const char *n;
    size_t l;

    return is_int(s, 100, 599) || (cJSON_IsString(s) && vars_whole(s->valuestring, &n, &l));
}

static void check_expect(struct chk *k, const cJSON *e, const char *where)
{
    static const char *const keys[] = {"status", "headers", "json", "body_empty", NULL};
    const cJSON *v, *c;
    struct buf sub, sub2;

    if (!cJSON_IsObject(e)) {
        say(k, where, "expect must be an object");
        return;
    }
    buf_init(&sub, 64 * 1024);
    buf_init(&sub2, 64 * 1024);
    only_keys(k, e, where, keys, "expect");
    v = cJSON_GetObjectItemCaseSensitive(e, "status");
    if (v) {
        int ok = status_ok(v) || (cJSON_IsArray(v) && cJSON_GetArraySize(v) > 0);

        if (cJSON_IsArray(v))
            cJSON_ArrayForEach(c, v)
            {
                if (!status_ok(c))
                    ok = 0;
            }
        if (!ok)
            say(k, at(&sub, where, "status"),
                "status must be an integer 100..599 or a non-empty array of them");
    }
    v = cJSON_GetObjectItemCaseSensitive(e, "headers");
    if (v) {
        if (!cJSON_IsObject(v))
            say(k, at(&sub, where, "headers"), "headers must be an object");
        cJSON_ArrayForEach(c, v)
        {
            const char *w = at(&sub, where, "headers");

            w = at(&sub2, w, c->string);
            if (cJSON_IsString(c))
                continue;
            if (!match_matcher_name(c))
                say(k, w, "a header expectation is a string or a matcher object");
            else
                check_pattern(k, c, w);
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(e, "json");
    if (v)
        check_pattern(k, v, at(&sub, where, "json"));
    v = cJSON_GetObjectItemCaseSensitive(e, "body_empty");
    if (v && !cJSON_IsBool(v))
        say(k, at(&sub, where, "body_empty"), "body_empty must be a boolean");
    buf_cleanup(&sub);
    buf_cleanup(&sub2);
}

static void check_capture(struct chk *k, const cJSON *cap, const char *where)
{
    const cJSON *c;

    if (!cJSON_IsObject(cap)) {
        say(k, where, "capture must be an object");
        return;
    }
    cJSON_ArrayForEach(c, cap)
    {
        const char *s = cJSON_IsString(c) ? c->valuestring : "";

        if (!vars_is_name(c->string, strlen(c->string)))
            say(k, where, "bad variable name \"%s\"", c->string);
        if (!strcmp(s, "status"))
            continue;
        if (!strncmp(s, "json:", 5) && (s[5] == '\0' || s[5] == '/'))
            continue;
        if (!strncmp(s, "header:", 7) && s[7] && !strpbrk(s + 7, " :\t"))
            continue;
        say(k, where, "capture \"%s\" must be \"json:/pointer\", \"header:Name\" or \"status\"",
            c->string);
    }
}

static void check_step(struct chk *k, const cJSON *st, const char *where, int nested);

static void check_request_step(struct chk *k, const cJSON *st, const char *where)
{
    struct buf sub;
    const cJSON *v;

    buf_init(&sub, 64 * 1024);
    check_request(k, cJSON_GetObjectItemCaseSensitive(st, "request"), at(&sub, where, "request"),
                  0);
    v = cJSON_GetObjectItemCaseSensitive(st, "expect");
    if (v)
        check_expect(k, v, at(&sub, where, "expect"));
    v = cJSON_GetObjectItemCaseSensitive(st, "capture");
    if (v)
        check_capture(k, v, at(&sub, where, "capture"));
    check_client(k, cJSON_GetObjectItemCaseSensitive(st, "client"), at(&sub, where, "client"));
    check_timeout(k, cJSON_GetObjectItemCaseSensitive(st, "timeout_ms"),
                  at(&sub, where, "timeout_ms"));
    buf_cleanup(&sub);
}

static void check_parallel(struct chk *k, const cJSON *p, const char *where)
{
    static const char *const keys[] = {"count",       "request",    "requests",   "client",
                                       "expect_each", "expect_all", "timeout_ms", NULL};
    const cJSON *count = cJSON_GetObjectItemCaseSensitive(p, "count");
    const cJSON *reqs = cJSON_GetObjectItemCaseSensitive(p, "requests");
    const cJSON *v, *c = NULL; /* cppcheck cannot see through cJSON_ArrayForEach */
    struct buf sub, sub2;
    int i = 0;

    if (!cJSON_IsObject(p)) {
        say(k, where, "parallel must be an object");
        return;
    }
    buf_init(&sub, 64 * 1024);
    buf_init(&sub2, 64 * 1024);
    only_keys(k, p, where, keys, "parallel");
    if (!!count == !!reqs) {
        say(k, where, "parallel needs exactly one of count (+ request) or requests");
    } else if (count) {
        if (!is_int(count, 1, FIXTURE_MAX_PARALLEL))
            say(k, at(&sub, where, "count"), "count must be an integer 1..%d",
                FIXTURE_MAX_PARALLEL);
        check_request(k, cJSON_GetObjectItemCaseSensitive(p, "request"), at(&sub, where, "request"),
                      0);
    } else {
        if (cJSON_GetObjectItemCaseSensitive(p, "request"))
            say(k, where, "request and requests are exclusive");
        if (!cJSON_IsArray(reqs) || cJSON_GetArraySize(reqs) < 1 ||
            cJSON_GetArraySize(reqs) > FIXTURE_MAX_PARALLEL)
            say(k, at(&sub, where, "requests"), "requests must be an array of 1..%d requests",
                FIXTURE_MAX_PARALLEL);
        else
            cJSON_ArrayForEach(c, reqs)
            {
                check_request(k, c, at_i(&sub2, at(&sub, where, "requests"), i++), 1);
            }
    }
    check_client(k, cJSON_GetObjectItemCaseSensitive(p, "client"), at(&sub, where, "client"));
    check_timeout(k, cJSON_GetObjectItemCaseSensitive(p, "timeout_ms"),
                  at(&sub, where, "timeout_ms"));
    v = cJSON_GetObjectItemCaseSensitive(p, "expect_each");
    if (v)
        check_expect(k, v, at(&sub, where, "expect_each"));
    v = cJSON_GetObjectItemCaseSensitive(p, "expect_all");
    if (v) {
        static const char *const akeys[] = {"status_counts", NULL};
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(v, "status_counts");

        if (!cJSON_IsObject(v)) {
            say(k, at(&sub, where, "expect_all"), "expect_all must be an object");
        } else {
            only_keys(k, v, at(&sub, where, "expect_all"), akeys, "expect_all");
            if (!cJSON_IsObject(sc))
                say(k, at(&sub, where, "expect_all"), "status_counts must be an object");
            cJSON_ArrayForEach(c, sc)
            {
                const char *s = c->string;

                if (strlen(s) != 3 || strspn(s, "0123456789") != 3 || s[0] < '1' || s[0] > '5' ||
                    !is_int(c, 0, FIXTURE_MAX_PARALLEL))
                    say(k, at(&sub, where, "expect_all"),
                        "status_counts entry \"%s\" must map a status to a count", s);
            }
        }
    }
    buf_cleanup(&sub);
    buf_cleanup(&sub2);
}

static void check_repeat(struct chk *k, const cJSON *r, const char *where)
{
    static const char *const keys[] = {"max_attempts", "interval_ms", "step", NULL};
    const cJSON *st;
    struct buf sub;

    if (!cJSON_IsObject(r)) {
        say(k, where, "repeat must be an object");
        return;
    }
    buf_init(&sub, 64 * 1024);
    only_keys(k, r, where, keys, "repeat");
    if (!is_int(cJSON_GetObjectItemCaseSensitive(r, "max_attempts"), 1, FIXTURE_MAX_ATTEMPTS))
        say(k, at(&sub, where, "max_attempts"), "max_attempts must be an integer 1..%d",
            FIXTURE_MAX_ATTEMPTS);
    if (!is_int(cJSON_GetObjectItemCaseSensitive(r, "interval_ms"), 0, FIXTURE_MAX_SLEEP_MS))
        say(k, at(&sub, where, "interval_ms"), "interval_ms must be an integer 0..%d",
            FIXTURE_MAX_SLEEP_MS);
    st = cJSON_GetObjectItemCaseSensitive(r, "step");
    if (!cJSON_IsObject(st) || !cJSON_GetObjectItemCaseSensitive(st, "request"))
        say(k, at(&sub, where, "step"), "repeat.step must be a request step");
    else
        check_step(k, st, at(&sub, where, "step"), 1);
    buf_cleanup(&sub);
}

/* ------------------------------------------------------------------ stream steps */

static int stream_open_at(const struct chk *k, const char *name)
{
    size_t i;

    for (i = 0; i < k->nopen; i++)
        if (!strcmp(k->open[i], name))
            return (int)i;
    return -1;
}

/*
 * The "stream" member: a valid name that is open at this step (sse_open: not
 * open yet).  Returns the name or NULL.
 */
static const char *check_stream_name(struct chk *k, const cJSON *o, const char *where,
                                     const char *kind)
{
    const char *name = fixture_str(o, "stream");

    if (!name || !vars_is_name(name, strlen(name)) || strlen(name) > 64) {
        say(k, where, "%s.stream must be a name of [A-Za-z0-9_.-], at most 64 bytes", kind);
        return NULL;
    }
    if (!strcmp(kind, "sse_open")) {
        if (stream_open_at(k, name) >= 0)
            say(k, where, "stream \"%s\" is already open (sse_close it first)", name);
        else if (k->nopen >= STREAM_MAX_OPEN)
            say(k, where, "more than %d streams open at once", STREAM_MAX_OPEN);
        else
            k->open[k->nopen++] = name;
    } else if (stream_open_at(k, name) < 0) {
        say(k, where,
            "%s on stream \"%s\", which is not open here (no earlier sse_open, or closed by "
            "sse_close)",
            kind, name);
    } else if (!strcmp(kind, "sse_close")) {
        int i = stream_open_at(k, name);

        memmove(&k->open[i], &k->open[i + 1], (k->nopen - (size_t)i - 1) * sizeof(k->open[0]));
        k->nopen--;
    }
    return name;
}

static void check_int_member(struct chk *k, const cJSON *o, const char *key, double lo, double hi,
                             const char *where, struct buf *sub)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    if (v && !is_int(v, lo, hi))
        say(k, at(sub, where, key), "%s must be an integer %.0f..%.0f", key, lo, hi);
}

static void check_sse_open(struct chk *k, const cJSON *o, const char *where, struct buf *sub)
{
    static const char *const keys[] = {"stream", "path",   "query",     "raw_query", "headers",
                                       "client", "expect", "within_ms", NULL};
    static const char *const ekeys[] = {"status", "headers", "json", NULL};
    static const char *const req_members[] = {"path", "query", "raw_query", "headers", NULL};
    const char *const *m;
    const cJSON *v;
    cJSON *req = cJSON_CreateObject();

    only_keys(k, o, where, keys, "sse_open");
    /* The request part is a GET request: check it with the request rules. */
    if (req && cJSON_AddStringToObject(req, "method", "GET")) {
        for (m = req_members; *m; m++) {
            v = cJSON_GetObjectItemCaseSensitive(o, *m);
            if (v)
                cJSON_AddItemReferenceToObject(req, *m, (cJSON *)(uintptr_t)v);
        }
        check_request(k, req, where, 0);
    }
    cJSON_Delete(req);
    check_client(k, cJSON_GetObjectItemCaseSensitive(o, "client"), at(sub, where, "client"));
    check_int_member(k, o, "within_ms", 1, FIXTURE_MAX_TIMEOUT_MS, where, sub);
    v = cJSON_GetObjectItemCaseSensitive(o, "expect");
    if (v) {
        if (cJSON_IsObject(v))
            only_keys(k, v, at(sub, where, "expect"), ekeys, "sse_open.expect");
        check_expect(k, v, at(sub, where, "expect"));
    }
}

static void check_sse_capture(struct chk *k, const cJSON *cap, const char *where)
{
    const cJSON *c;

    if (!cJSON_IsObject(cap)) {
        say(k, where, "capture must be an object");
        return;
    }
    cJSON_ArrayForEach(c, cap)
    {
        const char *s = cJSON_IsString(c) ? c->valuestring : "";

        if (!vars_is_name(c->string, strlen(c->string)))
            say(k, where, "bad variable name \"%s\"", c->string);
        if (!strcmp(s, "id") || (!strncmp(s, "data:", 5) && (s[5] == '\0' || s[5] == '/')))
            continue;
        say(k, where, "capture \"%s\" must be \"id\" or \"data:/pointer\"", c->string);
    }
}

static void check_sse_expect(struct chk *k, const cJSON *o, const char *where, struct buf *sub)
{
    static const char *const keys[] = {"stream", "within_ms", "ignore", "events", NULL};
    static const char *const ev_keys[] = {"event", "id", "data", "capture", NULL};
    const cJSON *v, *e;
    struct buf w, w2;
    int i = 0;

    buf_init(&w, 64 * 1024);
    buf_init(&w2, 64 * 1024);
    only_keys(k, o, where, keys, "sse_expect");
    check_int_member(k, o, "within_ms", 1, FIXTURE_MAX_TIMEOUT_MS, where, sub);
    v = cJSON_GetObjectItemCaseSensitive(o, "ignore");
    if (v && (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > FIXTURE_MAX_SSE_IGNORE))
        say(k, at(sub, where, "ignore"), "ignore must be an array of at most %d event types",
            FIXTURE_MAX_SSE_IGNORE);
    cJSON_ArrayForEach(e, v)
    {
        if (!cJSON_IsString(e) || !e->valuestring[0])
            say(k, at(sub, where, "ignore"), "ignore entries must be non-empty strings");
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "events");
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1 ||
        cJSON_GetArraySize(v) > FIXTURE_MAX_SSE_EVENTS) {
        say(k, at(sub, where, "events"), "events must be an array of 1..%d expected events",
            FIXTURE_MAX_SSE_EVENTS);
        v = NULL;
    }
    cJSON_ArrayForEach(e, v)
    {
        const char *ew = at_i(&w, at(sub, where, "events"), i++);
        const cJSON *f;

        if (!cJSON_IsObject(e)) {
            say(k, ew, "an expected event must be an object");
            continue;
        }
        only_keys(k, e, ew, ev_keys, "expected event");
        f = cJSON_GetObjectItemCaseSensitive(e, "event");
        if (f && !cJSON_IsString(f) && !match_matcher_name(f))
            say(k, at(&w2, ew, "event"), "event must be a type string or a matcher");
        else if (f && !cJSON_IsString(f))
            check_pattern(k, f, at(&w2, ew, "event"));
        f = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (f && !cJSON_IsString(f) && !cJSON_IsNumber(f) && !match_matcher_name(f))
            say(k, at(&w2, ew, "id"), "id must be a string, a number or a matcher");
        else if (f && match_matcher_name(f))
            check_pattern(k, f, at(&w2, ew, "id"));
        f = cJSON_GetObjectItemCaseSensitive(e, "data");
        if (f)
            check_pattern(k, f, at(&w2, ew, "data"));
        f = cJSON_GetObjectItemCaseSensitive(e, "capture");
        if (f)
            check_sse_capture(k, f, at(&w2, ew, "capture"));
    }
    buf_cleanup(&w);
    buf_cleanup(&w2);
}

static void check_sse(struct chk *k, const char *kind, const cJSON *o, const char *where)
{
    static const char *const none_keys[] = {"stream", "event", "window_ms", NULL};
    static const char *const check_keys[] = {"stream", "retry", "comments_min", "within_ms", NULL};
    static const char *const end_keys[] = {"stream", "within_ms", NULL};
    static const char *const close_keys[] = {"stream", NULL};
    const cJSON *v;
    struct buf sub;

    if (!cJSON_IsObject(o)) {
        say(k, where, "%s must be an object", kind);
        return;
    }
    buf_init(&sub, 64 * 1024);
    (void)check_stream_name(k, o, at(&sub, where, "stream"), kind);
    if (!strcmp(kind, "sse_open")) {
        check_sse_open(k, o, where, &sub);
    } else if (!strcmp(kind, "sse_expect")) {
        check_sse_expect(k, o, where, &sub);
    } else if (!strcmp(kind, "sse_expect_none")) {
        only_keys(k, o, where, none_keys, "sse_expect_none");
        v = cJSON_GetObjectItemCaseSensitive(o, "event");
        if (v && !(cJSON_IsString(v) && v->valuestring[0]))
            say(k, at(&sub, where, "event"), "event must be a non-empty event type");
        check_int_member(k, o, "window_ms", 0, FIXTURE_MAX_SLEEP_MS, where, &sub);
    } else if (!strcmp(kind, "sse_check")) {
        only_keys(k, o, where, check_keys, "sse_check");
        if (!cJSON_GetObjectItemCaseSensitive(o, "retry") &&
            !cJSON_GetObjectItemCaseSensitive(o, "comments_min"))
            say(k, where, "sse_check needs retry and/or comments_min");
        v = cJSON_GetObjectItemCaseSensitive(o, "retry");
        if (v)
            check_pattern(k, v, at(&sub, where, "retry"));
        check_int_member(k, o, "comments_min", 0, FIXTURE_MAX_SSE_COMMENTS, where, &sub);
        check_int_member(k, o, "within_ms", 1, FIXTURE_MAX_TIMEOUT_MS, where, &sub);
    } else if (!strcmp(kind, "sse_expect_end")) {
        only_keys(k, o, where, end_keys, "sse_expect_end");
        check_int_member(k, o, "within_ms", 1, FIXTURE_MAX_TIMEOUT_MS, where, &sub);
    } else {
        only_keys(k, o, where, close_keys, "sse_close");
    }
    buf_cleanup(&sub);
}

/* ------------------------------------------------------------------ lifecycle steps */

static void check_args(struct chk *k, const cJSON *o, const char *where, struct buf *sub)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "args");

    if (v && !(cJSON_IsString(v) && life_args_ok(v->valuestring)))
        say(k, at(sub, where, "args"),
            "args must be at most %d bytes of [A-Za-z0-9 ._=/:,+-] (inserted into the "
            "--server command as shell words)",
            LIFE_MAX_ARGS);
}

static void check_stderr_pattern(struct chk *k, const cJSON *o, const char *where, struct buf *sub)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "stderr");

    if (v)
        check_pattern(k, v, at(sub, where, "stderr"));
}

static void check_signal(struct chk *k, const cJSON *o, const char *where, struct buf *sub)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "signal");

    if (v && !(cJSON_IsString(v) &&
               (!strcmp(v->valuestring, "TERM") || !strcmp(v->valuestring, "KILL"))))
        say(k, at(sub, where, "signal"), "signal must be \"TERM\" or \"KILL\"");
}

static void check_server_step(struct chk *k, const char *kind, const cJSON *o, const char *where)
{
    static const char *const start_keys[] = {"args", "expect", "within_ms", "stderr", NULL};
    static const char *const stop_keys[] = {"signal", "within_ms", NULL};
    static const char *const restart_keys[] = {"signal", "args", "within_ms", "stderr", NULL};
    const char *e = fixture_str(o, "expect");
    struct buf sub;

    buf_init(&sub, 64 * 1024);
    check_int_member(k, o, "within_ms", 1, FIXTURE_MAX_TIMEOUT_MS, where, &sub);
    if (!strcmp(kind, "server_start") || !strcmp(kind, "server_start_second")) {
        only_keys(k, o, where, start_keys, kind);
        check_args(k, o, where, &sub);
        check_stderr_pattern(k, o, where, &sub);
        if (cJSON_GetObjectItemCaseSensitive(o, "expect") &&
            !(e && (!strcmp(e, "fail") || (!strcmp(e, "ready") && !strcmp(kind, "server_start")))))
            say(k, at(&sub, where, "expect"), "expect must be %s",
                !strcmp(kind, "server_start") ? "\"ready\" or \"fail\"" : "\"fail\"");
        if (!strcmp(kind, "server_start")) {
            if (k->running && k->life)
                say(k, where, "server_start while the server runs (server_stop it first)");
            k->running = !(e && !strcmp(e, "fail"));
        } else if (!k->running && k->life) {
            say(k, where, "server_start_second needs the main server running here");
        }
    } else if (!strcmp(kind, "server_stop")) {
        only_keys(k, o, where, stop_keys, kind);
        check_signal(k, o, where, &sub);
        if (!k->running && k->life)
            say(k, where, "server_stop while the server is not running");
        k->running = 0;
    } else {
        only_keys(k, o, where, restart_keys, kind);
        check_signal(k, o, where, &sub);
        check_args(k, o, where, &sub);
        check_stderr_pattern(k, o, where, &sub);
        if (!k->running && k->life)
            say(k, where, "server_restart while the server is not running (use server_start)");
        k->running = 1;
    }
    buf_cleanup(&sub);
}

static void check_workspace_files(struct chk *k, const cJSON *o, const char *where)
{
    static const char *const fkeys[] = {"text", "hex", "from", NULL};
    const cJSON *f;
    struct buf sub;
    int n = 0;

    if (k->running && k->life)
        say(k, where, "workspace_files while the server runs (server_stop it first)");
    buf_init(&sub, 64 * 1024);
    cJSON_ArrayForEach(f, o)
    {
        const char *w = at(&sub, where, f->string);
        const char *hex = fixture_str(f, "hex"), *from = fixture_str(f, "from");
        int kinds = 0;

        n++;
        if (!life_path_ok(f->string, 0))
            say(k, w,
                "\"%s\" must be a relative path inside the workspace (no leading /, no . or .. "
                "component, no glob characters)",
                f->string);
        if (!cJSON_IsObject(f)) {
            say(k, w, "a file must be {\"text\": ...}, {\"hex\": ...} or {\"from\": ...}");
            continue;
        }
        only_keys(k, f, w, fkeys, "workspace file");
        kinds += cJSON_GetObjectItemCaseSensitive(f, "text") != NULL;
        kinds += cJSON_GetObjectItemCaseSensitive(f, "hex") != NULL;
        kinds += cJSON_GetObjectItemCaseSensitive(f, "from") != NULL;
        if (kinds != 1)
            say(k, w, "a file needs exactly one of text, hex, from");
        if (cJSON_GetObjectItemCaseSensitive(f, "text") && !fixture_str(f, "text"))
            say(k, w, "text must be a string");
        if (cJSON_GetObjectItemCaseSensitive(f, "hex") &&
            (!hex || strlen(hex) % 2 || strspn(hex, "0123456789abcdefABCDEF") != strlen(hex)))
            say(k, w, "hex must be pairs of hex digits");
        if (cJSON_GetObjectItemCaseSensitive(f, "from") && !(from && life_path_ok(from, 0)))
            say(k, w,
                "from must be a path relative to the spec directory "
                "(e.g. \"workspaces/NAME/FILE\"), without . or .. components");
    }
    if (!cJSON_IsObject(o) || n < 1 || n > LIFE_MAX_FILES)
        say(k, where, "workspace_files must be an object of 1..%d path -> file entries",
            LIFE_MAX_FILES);
    buf_cleanup(&sub);
}

static void check_workspace_expect(struct chk *k, const cJSON *o, const char *where)
{
    static const char *const keys[] = {
        "path", "exists", "contains", "not_contains", "size", "size_min", "size_max", "json", NULL};
    const char *const *c;
    const cJSON *v;
    struct buf sub;

    if (!cJSON_IsObject(o)) {
        say(k, where, "workspace_expect must be an object");
        return;
    }
    buf_init(&sub, 64 * 1024);
    only_keys(k, o, where, keys, "workspace_expect");
    if (!life_path_ok(fixture_str(o, "path"), 1))
        say(k, at(&sub, where, "path"),
            "path must be a relative path inside the workspace (glob characters allowed; no "
            "leading /, no . or .. component)");
    v = cJSON_GetObjectItemCaseSensitive(o, "exists");
    if (v && !cJSON_IsBool(v))
        say(k, at(&sub, where, "exists"), "exists must be a boolean");
    for (c = keys + 2; *c; c++) {
        v = cJSON_GetObjectItemCaseSensitive(o, *c);
        if (!v)
            continue;
        if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "exists")))
            say(k, at(&sub, where, *c), "%s makes no sense with \"exists\": false", *c);
        if ((!strcmp(*c, "contains") || !strcmp(*c, "not_contains")) &&
            !(cJSON_IsString(v) && v->valuestring[0]))
            say(k, at(&sub, where, *c), "%s must be a non-empty string", *c);
    }
    check_int_member(k, o, "size", 0, 1e15, where, &sub);
    check_int_member(k, o, "size_min", 0, 1e15, where, &sub);
    check_int_member(k, o, "size_max", 0, 1e15, where, &sub);
    v = cJSON_GetObjectItemCaseSensitive(o, "json");
    if (v)
        check_pattern(k, v, at(&sub, where, "json"));
    buf_cleanup(&sub);
}

static void check_life_step(struct chk *k, const char *kind, const cJSON *o, const char *where)
{
    if (!k->life)
        say(k, where, "%s is a lifecycle step: the case must list \"lifecycle\" in requires", kind);
    if (!strcmp(kind, "workspace_files")) {
        check_workspace_files(k, o, where);
    } else if (!strcmp(kind, "workspace_expect")) {
        check_workspace_expect(k, o, where);
    } else if (!cJSON_IsObject(o)) {
        say(k, where, "%s must be an object", kind);
    } else {
        check_server_step(k, kind, o, where);
    }
}

static void check_step(struct chk *k, const cJSON *st, const char *where, int nested)
{
    static const char *const kinds[] = {"request",
                                        "parallel",
                                        "repeat",
                                        "sleep_ms",
                                        "vectors",
                                        "sse_open",
                                        "sse_expect",
                                        "sse_expect_none",
                                        "sse_check",
                                        "sse_expect_end",
                                        "sse_close",
                                        "server_start",
                                        "server_start_second",
                                        "server_stop",
                                        "server_restart",
                                        "workspace_files",
                                        "workspace_expect"};
    static const char *const req_keys[] = {"name",    "description", "request",    "expect",
                                           "capture", "client",      "timeout_ms", NULL};
    static const char *const par_keys[] = {"name", "description", "parallel", NULL};
    static const char *const rep_keys[] = {"name", "description", "repeat", NULL};
    static const char *const sleep_keys[] = {"name", "description", "sleep_ms", NULL};
    static const char *const vec_keys[] = {"name", "description", "vectors", "client", NULL};
    const char *kind = NULL;
    const cJSON *v;
    struct buf sub;
    size_t i;
    int nkinds = 0;

    if (!cJSON_IsObject(st)) {
        say(k, where, "a step must be an object");
        return;
    }
    for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (cJSON_GetObjectItemCaseSensitive(st, kinds[i])) {
            kind = kinds[i];
            nkinds++;
        }
    }
    if (nkinds != 1) {
        const cJSON *c;
        struct buf names;

        buf_init(&names, 4096);
        cJSON_ArrayForEach(c, st)
        {
            util_note(&names, " \"%s\"", c->string);
        }
        say(k, where,
            "unknown step kind: a step needs exactly one of request, parallel, repeat, "
            "sleep_ms, vectors, sse_open, sse_expect, sse_expect_none, sse_check, "
            "sse_expect_end, sse_close, server_start, server_start_second, server_stop, "
            "server_restart, workspace_files, workspace_expect (keys:%s)",
            names.data ? names.data : "");
        buf_cleanup(&names);
        return;
    }
    buf_init(&sub, 64 * 1024);
    if (!nested && k->life && !k->running &&
        (!strcmp(kind, "request") || !strcmp(kind, "parallel") || !strcmp(kind, "repeat") ||
         !strcmp(kind, "vectors") || !strcmp(kind, "sse_open")))
        say(k, where,
            "%s while the server is not running (a lifecycle case starts with the server "
            "stopped: add a server_start step)",
            kind);
    v = cJSON_GetObjectItemCaseSensitive(st, "name");
    if (v && !cJSON_IsString(v))
        say(k, at(&sub, where, "name"), "name must be a string");
    v = cJSON_GetObjectItemCaseSensitive(st, "description");
    if (v && !cJSON_IsString(v))
        say(k, at(&sub, where, "description"), "description must be a string");
    if (!strcmp(kind, "request")) {
        only_keys(k, st, where, req_keys, "request step");
        check_request_step(k, st, where);
    } else if (nested) {
        say(k, where, "repeat.step must be a request step");
    } else if (!strcmp(kind, "parallel")) {
        only_keys(k, st, where, par_keys, "parallel step");
        check_parallel(k, cJSON_GetObjectItemCaseSensitive(st, "parallel"),
                       at(&sub, where, "parallel"));
    } else if (!strcmp(kind, "repeat")) {
        only_keys(k, st, where, rep_keys, "repeat step");
        check_repeat(k, cJSON_GetObjectItemCaseSensitive(st, "repeat"), at(&sub, where, "repeat"));
    } else if (!strcmp(kind, "sleep_ms")) {
        only_keys(k, st, where, sleep_keys, "sleep step");
        if (!is_int(cJSON_GetObjectItemCaseSensitive(st, "sleep_ms"), 0, FIXTURE_MAX_SLEEP_MS))
            say(k, at(&sub, where, "sleep_ms"), "sleep_ms must be an integer 0..%d",
                FIXTURE_MAX_SLEEP_MS);
    } else if (!strncmp(kind, "sse_", 4)) {
        const char *const sse_keys[] = {"name", "description", kind, NULL};

        only_keys(k, st, where, sse_keys, "stream step");
        check_sse(k, kind, cJSON_GetObjectItemCaseSensitive(st, kind), at(&sub, where, kind));
    } else if (strcmp(kind, "vectors")) {
        const char *const life_keys[] = {"name", "description", kind, NULL};

        only_keys(k, st, where, life_keys, "lifecycle step");
        check_life_step(k, kind, cJSON_GetObjectItemCaseSensitive(st, kind), at(&sub, where, kind));
    } else {
        only_keys(k, st, where, vec_keys, "vectors step");
        v = cJSON_GetObjectItemCaseSensitive(st, "vectors");
        if (!cJSON_IsString(v) || strcmp(v->valuestring, "canon"))
            say(k, at(&sub, where, "vectors"), "vectors must be \"canon\"");
        check_client(k, cJSON_GetObjectItemCaseSensitive(st, "client"), at(&sub, where, "client"));
    }
    buf_cleanup(&sub);
}

static int spec_ok(const char *s)
{
    /* A section number: digits, optionally ".digits" repeated. */
    const char *p = s;

    if (!*p)
        return 0;
    while (*p) {
        size_t d = strspn(p, "0123456789");

        if (d == 0)
            return 0;
        p += d;
        if (*p == '.')
            p++;
        else if (*p)
            return 0;
    }
    return p[-1] != '.';
}

static int id_ok(const char *s)
{
    /* [a-z0-9]+(\.[a-z0-9-]+)+ */
    size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789");
    int parts = 0;

    if (n == 0)
        return 0;
    s += n;
    while (*s == '.') {
        s++;
        n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-");
        if (n == 0)
            return 0;
        s += n;
        parts++;
    }
    return *s == '\0' && parts > 0;
}

int fixture_check(const cJSON *c, const char *file, int allow_selftest, struct buf *err)
{
    static const char *const keys[] = {"id",       "title",    "spec",  "level",
                                       "requires", "vars",     "steps", "description",
                                       "tags",     "disabled", NULL};
    static const char *const st_keys[] = {
        "id",    "title",       "spec", "level",    "requires",        "vars",
        "steps", "description", "tags", "disabled", "selftest_expect", NULL};
    struct chk k;
    const cJSON *v, *e;
    const char *s;
    struct buf sub;
    int i = 0;

    memset(&k, 0, sizeof(k));
    k.file = file;
    k.err = err;
    if (!cJSON_IsObject(c)) {
        say(&k, "", "a fixture must be a JSON object");
        return LS_EPARSE;
    }
    buf_init(&sub, 64 * 1024);
    only_keys(&k, c, "", allow_selftest ? st_keys : keys, "fixture");
    s = fixture_str(c, "id");
    if (!s || !id_ok(s))
        say(&k, "/id", "id must match [a-z0-9]+(\\.[a-z0-9-]+)+");
    s = fixture_str(c, "title");
    if (!s || !*s)
        say(&k, "/title", "title must be a non-empty string");
    v = cJSON_GetObjectItemCaseSensitive(c, "spec");
    if (cJSON_IsString(v)) {
        if (!spec_ok(v->valuestring))
            say(&k, "/spec", "spec must be a section number like \"5.4\"");
    } else if (cJSON_IsArray(v) && cJSON_GetArraySize(v) > 0) {
        cJSON_ArrayForEach(e, v)
        {
            if (!cJSON_IsString(e) || !spec_ok(e->valuestring))
                say(&k, "/spec", "spec entries must be section numbers like \"5.4\"");
        }
    } else {
        say(&k, "/spec", "spec must be a section number string or a non-empty array of them");
    }
    s = fixture_str(c, "level");
    if (!s || (strcmp(s, "MUST") && strcmp(s, "SHOULD") && strcmp(s, "MAY")))
        say(&k, "/level", "level must be MUST, SHOULD or MAY");
    v = cJSON_GetObjectItemCaseSensitive(c, "requires");
    if (!cJSON_IsArray(v))
        say(&k, "/requires", "requires must be an array of feature names");
    cJSON_ArrayForEach(e, v)
    {
        if (!cJSON_IsString(e) || !e->valuestring[0])
            say(&k, "/requires", "requires entries must be non-empty strings");
        else if (!strcmp(e->valuestring, FIXTURE_LIFECYCLE))
            k.life = 1;
    }
    k.running = !k.life;
    v = cJSON_GetObjectItemCaseSensitive(c, "vars");
    if (v && !cJSON_IsObject(v))
        say(&k, "/vars", "vars must be an object");
    cJSON_ArrayForEach(e, v)
    {
        if (!vars_is_name(e->string, strlen(e->string)))
            say(&k, "/vars", "bad variable name \"%s\"", e->string);
    }
    v = cJSON_GetObjectItemCaseSensitive(c, "tags");
    if (v && !cJSON_IsArray(v))
        say(&k, "/tags", "tags must be an array of strings");
    cJSON_ArrayForEach(e, v)
    {
        if (!cJSON_IsString(e))
            say(&k, "/tags", "tags must be strings");
    }
    v = cJSON_GetObjectItemCaseSensitive(c, "description");
    if (v && !cJSON_IsString(v))
        say(&k, "/description", "description must be a string");
    v = cJSON_GetObjectItemCaseSensitive(c, "disabled");
    if (v && !(cJSON_IsString(v) && v->valuestring[0]))
        say(&k, "/disabled", "disabled must be a non-empty reason string");
    if (allow_selftest) {
        s = fixture_str(c, "selftest_expect");
        if (!s || (strcmp(s, "pass") && strcmp(s, "fail") && strcmp(s, "skip")))
            say(&k, "/selftest_expect", "selftest_expect must be \"pass\", \"fail\" or \"skip\"");
    }
    v = cJSON_GetObjectItemCaseSensitive(c, "steps");
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
        say(&k, "/steps", "steps must be a non-empty array");
    cJSON_ArrayForEach(e, v)
    {
        check_step(&k, e, at_i(&sub, "/steps", i++), 0);
    }
    buf_cleanup(&sub);
    return k.bad ? LS_EPARSE : 0;
}

int fixture_spec_text(const cJSON *c, struct buf *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, "spec"), *e;
    int rc = 0, first = 1;

    if (cJSON_IsString(v))
        return buf_appends(out, v->valuestring);
    cJSON_ArrayForEach(e, v)
    {
        if (!cJSON_IsString(e))
            continue;
        if (!first)
            rc = rc ? rc : buf_appendc(out, ',');
        rc = rc ? rc : buf_appends(out, e->valuestring);
        first = 0;
    }
    return rc;
}

int fixture_uses_vectors(const cJSON *c)
{
    const cJSON *st;

    cJSON_ArrayForEach(st, cJSON_GetObjectItemCaseSensitive(c, "steps"))
    {
        if (cJSON_GetObjectItemCaseSensitive(st, "vectors"))
            return 1;
    }
    return 0;
}

int fixture_is_lifecycle(const cJSON *c)
{
    const cJSON *r;

    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(c, "requires"))
    {
        if (cJSON_IsString(r) && !strcmp(r->valuestring, FIXTURE_LIFECYCLE))
            return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ loading */

void fixture_set_init(struct fixture_set *s)
{
    s->f = NULL;
    s->n = 0;
    s->selftest = 0;
}

void fixture_set_cleanup(struct fixture_set *s)
{
    size_t i;

    if (!s)
        return;
    for (i = 0; i < s->n; i++) {
        free(s->f[i].file);
        free(s->f[i].id);
        cJSON_Delete(s->f[i].json);
    }
    free(s->f);
    fixture_set_init(s);
}

int fixture_is_selftest_dir(const char *spec_dir)
{
    struct buf p;
    struct stat st;
    int yes;

    buf_init(&p, 8192);
    yes = buf_appendf(&p, "%s/SELFTEST", spec_dir) == 0 && stat(p.data, &st) == 0 &&
          S_ISREG(st.st_mode);
    buf_cleanup(&p);
    return yes;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int fixture_list_files(const char *spec_dir, char ***files, size_t *n)
{
    struct buf dir, path;
    DIR *d;
    struct dirent *de;
    char **list = NULL;
    size_t cnt = 0;
    int rc = 0;

    buf_init(&dir, 8192);
    buf_init(&path, 8192);
    if (buf_appendf(&dir, "%s/cases", spec_dir) != 0) {
        rc = -ENOMEM;
        goto out;
    }
    d = opendir(dir.data);
    if (!d) {
        rc = -errno;
        goto out;
    }
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        char **nl;

        if (de->d_name[0] == '.' || l < 6 || strcmp(de->d_name + l - 5, ".json"))
            continue;
        if (cnt >= FIXTURE_MAX_CASES) {
            rc = LS_ETOOMANY;
            break;
        }
        buf_reset(&path);
        nl = realloc(list, (cnt + 1) * sizeof(*nl));
        if (!nl || buf_appendf(&path, "%s/%s", dir.data, de->d_name) != 0) {
            if (nl)
                list = nl;
            rc = -ENOMEM;
            break;
        }
        list = nl;
        list[cnt] = buf_take(&path, NULL);
        if (!list[cnt]) {
            rc = -ENOMEM;
            break;
        }
        cnt++;
    }
    closedir(d);
    if (rc) {
        while (cnt)
            free(list[--cnt]);
        free(list);
        goto out;
    }
    if (cnt)
        qsort(list, cnt, sizeof(*list), cmp_str);
    *files = list;
    *n = cnt;
out:
    buf_cleanup(&dir);
    buf_cleanup(&path);
    return rc;
}

/* 1 when the JSON text has a real \u0000 escape (an odd number of backslashes before "u0000"). */
static int has_nul_escape(const char *t, size_t n)
{
    size_t i;

    for (i = 0; i + 5 <= n; i++) {
        size_t k = 0;

        if (memcmp(t + i, "u0000", 5) != 0)
            continue;
        while (k < i && t[i - 1 - k] == '\\')
            k++;
        if (k % 2)
            return 1;
    }
    return 0;
}

cJSON *fixture_parse_file(const char *file, struct buf *err)
{
    struct buf text;
    cJSON *j = NULL;
    const char *end = NULL;
    int rc;

    buf_init(&text, FIXTURE_MAX_BYTES);
    rc = util_read_file(file, FIXTURE_MAX_BYTES, &text);
    if (rc) {
        util_note(err, "%s: cannot read: %s\n", file,
                  rc == LS_ETOOBIG ? "larger than the fixture size cap" : ls_strerror(rc));
        goto out;
    }
    if (text.data && has_nul_escape(text.data, text.len)) {
        util_note(err,
                  "%s: a string contains \\u0000, which cJSON cannot represent (it would "
                  "silently cut the string); use body_hex or input_hex for NUL bytes\n",
                  file);
        goto out;
    }
    j = cJSON_ParseWithLengthOpts(text.data ? text.data : "", text.len, &end, 0);
    if (j) {
        /* Only whitespace may follow the value. */
        const char *p = end, *lim = text.data + text.len;

        while (p < lim && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
            p++;
        if (p != lim) {
            cJSON_Delete(j);
            j = NULL;
            end = p;
        }
    }
    if (!j) {
        const char *e = cJSON_GetErrorPtr();
        size_t off = text.data && e && e >= text.data && e <= text.data + text.len
                         ? (size_t)(e - text.data)
                         : (end && text.data ? (size_t)(end - text.data) : 0);

        util_note(err, "%s: invalid JSON near byte %zu\n", file, off);
    }
out:
    buf_cleanup(&text);
    return j;
}

static const char *stem_of(const char *file, struct buf *b)
{
    const char *base = strrchr(file, '/');

    base = base ? base + 1 : file;
    buf_reset(b);
    if (buf_append(b, base, strlen(base) - 5) != 0)
        return "";
    return b->data;
}

static int cmp_fixture(const void *a, const void *b)
{
    return strcmp(((const struct fixture *)a)->id, ((const struct fixture *)b)->id);
}

int fixture_load(const char *spec_dir, const struct globlist *filters, struct fixture_set *out,
                 struct buf *err)
{
    char **files = NULL;
    size_t nfiles = 0, i;
    struct buf stem;
    int rc, bad = 0;

    rc = fixture_list_files(spec_dir, &files, &nfiles);
    if (rc) {
        util_note(err, "%s/cases: %s\n", spec_dir, ls_strerror(rc));
        return rc;
    }
    out->selftest = fixture_is_selftest_dir(spec_dir);
    buf_init(&stem, 8192);
    out->f = calloc(nfiles ? nfiles : 1, sizeof(*out->f));
    if (!out->f) {
        rc = -ENOMEM;
        goto out;
    }
    for (i = 0; i < nfiles; i++) {
        const char *st = stem_of(files[i], &stem);
        cJSON *j;
        const char *id;
        struct fixture *f;

        if (filters->n && globlist_match(filters, st) < 0) {
            /* Not selected by file name; it may still be selected by its id. */
            j = fixture_parse_file(files[i], &stem);
            id = j ? fixture_str(j, "id") : NULL;
            if (!id || globlist_match(filters, id) < 0) {
                cJSON_Delete(j);
                continue;
            }
        } else {
            j = fixture_parse_file(files[i], err);
            if (!j) {
                bad = 1;
                continue;
            }
            id = fixture_str(j, "id");
        }
        if (fixture_check(j, files[i], out->selftest, err) != 0)
            bad = 1;
        if (id && strcmp(id, stem_of(files[i], &stem)) != 0) {
            util_note(err, "%s: /id: id \"%s\" must equal the file name without .json\n", files[i],
                      id);
            bad = 1;
        }
        f = &out->f[out->n++];
        f->json = j;
        f->file = strdup(files[i]);
        f->id = strdup(id ? id : stem_of(files[i], &stem));
        if (!f->file || !f->id) {
            rc = -ENOMEM;
            goto out;
        }
    }
    if (out->n)
        qsort(out->f, out->n, sizeof(*out->f), cmp_fixture);
    rc = bad ? LS_EPARSE : 0;
out:
    for (i = 0; i < nfiles; i++)
        free(files[i]);
    free(files);
    buf_cleanup(&stem);
    return rc;
}

/* ------------------------------------------------------------------ vectors */

int fixture_vector_input(const cJSON *v, struct buf *out, int *is_query)
{
    const char *s;
    const cJSON *rep = cJSON_GetObjectItemCaseSensitive(v, "input_repeat");
    int rc = 0;

    *is_query = 0;
    if ((s = fixture_str(v, "input")) != NULL) {
        rc = buf_appends(out, s);
    } else if ((s = fixture_str(v, "input_hex")) != NULL) {
        rc = util_hex_decode(s, out);
    } else if ((s = fixture_str(v, "query")) != NULL) {
        rc = buf_appends(out, s);
        *is_query = 1;
    } else if (!rep) {
        return LS_EPARSE;
    }
    if (!rc && rep) {
        const cJSON *cnt = cJSON_GetObjectItemCaseSensitive(rep, "count");
        struct buf unit;
        double k;

        buf_init(&unit, FIXTURE_MAX_REPEAT_BYTES);
        if ((s = fixture_str(rep, "unit")) != NULL)
            rc = buf_appends(&unit, s);
        else if ((s = fixture_str(rep, "unit_hex")) != NULL)
            rc = util_hex_decode(s, &unit);
        else
            rc = LS_EPARSE;
        if (!rc && !is_int(cnt, 0, FIXTURE_MAX_REPEAT_BYTES))
            rc = LS_EPARSE;
        if (!rc && unit.len * cnt->valuedouble > FIXTURE_MAX_REPEAT_BYTES)
            rc = LS_ETOOBIG;
        for (k = 0; !rc && k < cnt->valuedouble; k++)
            rc = buf_append(out, unit.data ? unit.data : "", unit.len);
        buf_cleanup(&unit);
    }
    return rc;
}

cJSON *fixture_load_vectors(const char *spec_dir, struct buf *err)
{
    struct buf path, tmp;
    cJSON *doc, *v;
    const cJSON *arr;
    int i = 0, bad = 0;

    buf_init(&path, 8192);
    buf_init(&tmp, FIXTURE_MAX_REPEAT_BYTES + 8192);
    if (buf_appendf(&path, "%s/vectors/canon.json", spec_dir) != 0) {
        buf_cleanup(&path);
        return NULL;
    }
    doc = fixture_parse_file(path.data, err);
    arr = cJSON_GetObjectItemCaseSensitive(doc, "vectors");
    if (doc && !cJSON_IsArray(arr)) {
        util_note(err, "%s: missing \"vectors\" array\n", path.data);
        bad = 1;
    }
    cJSON_ArrayForEach(v, arr)
    {
        const cJSON *http = cJSON_GetObjectItemCaseSensitive(v, "http");
        int q;

        buf_reset(&tmp);
        if (!fixture_str(v, "id")) {
            util_note(err, "%s: /vectors/%d: missing id\n", path.data, i);
            bad = 1;
        } else if (fixture_vector_input(v, &tmp, &q) != 0) {
            util_note(err, "%s: /vectors/%d (%s): bad input/input_hex/query/input_repeat\n",
                      path.data, i, fixture_str(v, "id"));
            bad = 1;
        } else if (http && !is_int(cJSON_GetObjectItemCaseSensitive(http, "status"), 100, 599)) {
            util_note(err, "%s: /vectors/%d (%s): http.status must be an integer\n", path.data, i,
                      fixture_str(v, "id"));
            bad = 1;
        }
        i++;
    }
    buf_cleanup(&path);
    buf_cleanup(&tmp);
    if (bad) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}
