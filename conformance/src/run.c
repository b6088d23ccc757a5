/*
 * run.c - the step interpreter; see run.h.
 *
 * Every step is handled in four stages: substitute {{vars}} into a copy of
 * the step's request and expectation, build a struct http_req, perform it,
 * then check and capture.  The fixture itself is never modified, so a case
 * can be run twice in one process.
 */
#include "run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fixture.h"
#include "http.h"
#include "lifecycle.h"
#include "match.h"
#include "stream.h"
#include "util.h"
#include "vars.h"

#define BODY_SNIPPET 600 /* response body bytes quoted in a failure message */
#define MAX_REPORTED 5   /* failing members of a parallel group / vectors listed */
#define PUMP_SLICE   100 /* ms: longest single wait inside a bounded stream wait */

struct rctx {
    const struct run_opts *o;
    struct vars *vars;
    struct http_client *clients[RUN_MAX_CLIENTS];
    size_t nclients;
    struct buf *msg;         /* failure message being built */
    struct streams *streams; /* created by the first sse_open of the case */
};

cJSON *run_parse_json(const char *body, size_t len)
{
    const char *end = NULL, *lim = body + len;
    cJSON *j;

    if (!body || len == 0)
        return NULL;
    j = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!j)
        return NULL;
    while (end < lim && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (end != lim) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static long scaled(const struct run_opts *o, double ms)
{
    double v = ms * o->scale;

    if (v < 1)
        v = 1;
    if (v > 86400000.0)
        v = 86400000.0;
    return (long)v;
}

static struct http_client *get_client(struct rctx *x, const char *name)
{
    size_t i;
    struct http_client *c;

    for (i = 0; i < x->nclients; i++)
        if (!strcmp(http_client_name(x->clients[i]), name))
            return x->clients[i];
    if (x->nclients >= RUN_MAX_CLIENTS)
        return NULL;
    c = http_client_new(name);
    if (c)
        x->clients[x->nclients++] = c;
    return c;
}

/* The loop requests run on: the streams' loop while streams are open, so they keep flowing. */
static struct http_loop *request_loop(const struct rctx *x)
{
    return x->streams && streams_count(x->streams) ? streams_loop(x->streams) : NULL;
}

static int perform(struct rctx *x, struct http_client *c, const struct http_req *req,
                   struct http_resp *resp)
{
    struct http_loop *l = request_loop(x);

    return l ? http_perform_on(l, &c, req, resp, 1, x->o->verbose)
             : http_perform(c, req, resp, x->o->verbose);
}

/* Let ms pass; open streams keep receiving meanwhile. */
static void pass_time(struct rctx *x, long ms)
{
    double end = util_now_ms() + (double)ms;

    if (!request_loop(x)) {
        util_sleep_ms(ms);
        return;
    }
    for (;;) {
        double left = end - util_now_ms();

        if (left <= 0 || streams_pump(x->streams, left < PUMP_SLICE ? (long)left + 1 : PUMP_SLICE))
            break;
    }
}

/* ------------------------------------------------------------------ building */

static int add_query_pair(struct buf *q, const char *key, const cJSON *val)
{
    struct buf text;
    int rc;

    if (cJSON_IsNull(val))
        return 0;
    buf_init(&text, VARS_MAX_TEXT);
    rc = vars_value_text(val, &text);
    if (!rc && q->len)
        rc = buf_appendc(q, '&');
    rc = rc ? rc : util_pct_encode(q, key, strlen(key), 0);
    rc = rc ? rc : buf_appendc(q, '=');
    rc = rc ? rc : util_pct_encode(q, text.data ? text.data : "", text.len, 0);
    buf_cleanup(&text);
    return rc;
}

/*
 * Turn a substituted request object into an http_req.  Problems go to x->msg
 * and make this return nonzero.
 */
static int build_req(struct rctx *x, const cJSON *r, const char *client, long timeout_ms,
                     struct http_req *out)
{
    const struct run_opts *o = x->o;
    const cJSON *v, *c;
    struct buf url, q, cid, text;
    int rc = 0;

    buf_init(&url, 1024 * 1024);
    buf_init(&q, 1024 * 1024);
    buf_init(&cid, 4096);
    buf_init(&text, VARS_MAX_TEXT);
    out->timeout_ms = timeout_ms;
    out->method = strdup(fixture_str(r, "method"));
    rc = out->method ? 0 : -ENOMEM;
    rc = rc ? rc : buf_appendf(&url, "%s%s", o->url, fixture_str(r, "path"));
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(r, "query"))
    {
        const cJSON *e;

        if (cJSON_IsArray(c)) {
            cJSON_ArrayForEach(e, c)
            {
                rc = rc ? rc : add_query_pair(&q, c->string, e);
            }
        } else {
            rc = rc ? rc : add_query_pair(&q, c->string, c);
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(r, "raw_query");
    if (!rc && cJSON_IsString(v) && v->valuestring[0]) {
        if (q.len)
            rc = buf_appendc(&q, '&');
        rc = rc ? rc : buf_appends(&q, v->valuestring);
    }
    if (!rc && q.len)
        rc = buf_appendf(&url, "%s%s", strchr(url.data, '?') ? "&" : "?", q.data);
    if (!rc) {
        out->url = buf_take(&url, NULL);
        rc = out->url ? 0 : -ENOMEM;
    }
    /* Headers the runner adds; the fixture's own headers override them below. */
    rc = rc ? rc : buf_appendf(&cid, "%s-%s", o->run_id, client);
    rc = rc ? rc : http_req_set_header(out, "X-Client-Id", cid.data);
    if (!rc && o->origin)
        rc = http_req_set_header(out, "Origin", o->origin);
    if (!rc && cJSON_GetObjectItemCaseSensitive(r, "json"))
        rc = http_req_set_header(out, "Content-Type", "application/json");
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(r, "headers"))
    {
        if (rc)
            break;
        if (cJSON_IsNull(c)) {
            rc = http_req_set_header(out, c->string, NULL);
            continue;
        }
        buf_reset(&text);
        rc = vars_value_text(c, &text);
        if (!rc && text.data && strpbrk(text.data, "\r\n")) {
            util_note(x->msg, "    header %s: value contains CR/LF after substitution\n",
                      c->string);
            rc = LS_EPARSE;
        }
        rc = rc ? rc : http_req_set_header(out, c->string, text.data ? text.data : "");
    }
    /* The body. */
    if (!rc && (v = cJSON_GetObjectItemCaseSensitive(r, "json")) != NULL) {
        char *s = cJSON_PrintUnformatted(v);

        rc = s ? buf_appends(&out->body, s) : -ENOMEM;
        free(s);
        out->has_body = 1;
    } else if (!rc && (v = cJSON_GetObjectItemCaseSensitive(r, "body")) != NULL) {
        rc = buf_appends(&out->body, v->valuestring);
        out->has_body = 1;
    } else if (!rc && (v = cJSON_GetObjectItemCaseSensitive(r, "body_hex")) != NULL) {
        rc = cJSON_IsString(v) ? util_hex_decode(v->valuestring, &out->body) : LS_EPARSE;
        out->has_body = 1;
    } else if (!rc && (v = cJSON_GetObjectItemCaseSensitive(r, "body_fill")) != NULL) {
        const char *pre = fixture_str(v, "prefix"), *fill = fixture_str(v, "fill");
        const char *suf = fixture_str(v, "suffix");
        const cJSON *cnt = cJSON_GetObjectItemCaseSensitive(v, "count");
        double k, n = cJSON_IsNumber(cnt) ? cnt->valuedouble : 0;

        rc = pre ? buf_appends(&out->body, pre) : 0;
        for (k = 0; !rc && fill && k < n; k++)
            rc = buf_appends(&out->body, fill);
        rc = rc ? rc : (suf ? buf_appends(&out->body, suf) : 0);
        out->has_body = 1;
    }
    if (rc && rc != LS_EPARSE)
        util_note(x->msg, "    cannot build the request: %s\n",
                  rc == LS_ETOOBIG ? "a size cap was exceeded" : ls_strerror(rc));
    buf_cleanup(&url);
    buf_cleanup(&q);
    buf_cleanup(&cid);
    buf_cleanup(&text);
    return rc;
}

/* ------------------------------------------------------------------ checking */

static void print_trace(const struct rctx *x, const char *client, const struct http_req *req,
                        const struct http_resp *resp)
{
    if (!x->o->verbose)
        return;
    printf("    --- %s %s (client %s) ---\n", req->method, req->url, client);
    if (resp->trace.len)
        fwrite(resp->trace.data, 1, resp->trace.len, stdout);
    if (resp->body.len > HTTP_TRACE_BODY)
        printf("< (%zu body bytes in total)\n", resp->body.len);
    if (resp->curl_code)
        printf("* transfer failed: %s\n", resp->error);
    printf("    --- %.1f ms ---\n", resp->elapsed_ms);
    fflush(stdout);
}

static void describe_response(struct buf *m, const struct http_resp *r)
{
    int rc;

    if (r->curl_code) {
        util_note(m, "    response: none (%s)\n", r->error);
        return;
    }
    rc = buf_appendf(m, "    response: %ld, %zu body bytes", r->status, r->body.len);
    if (!rc && r->body.len) {
        rc = buf_appends(m, ": ");
        rc = rc ? rc : util_append_clean(m, r->body.data, r->body.len, BODY_SNIPPET, 0);
    }
    (void)(rc ? rc : buf_appendc(m, '\n'));
}

static void add_repro(struct buf *m, const struct http_req *req)
{
    int rc = buf_appends(m, "    reproduce: ");

    rc = rc ? rc : http_repro(req, m);
    (void)(rc ? rc : buf_appendc(m, '\n'));
}

static int status_allowed(const cJSON *st, long status)
{
    const cJSON *e;

    if (cJSON_IsNumber(st))
        return st->valuedouble == (double)status;
    cJSON_ArrayForEach(e, st)
    {
        if (cJSON_IsNumber(e) && e->valuedouble == (double)status)
            return 1;
    }
    return 0;
}

/*
 * Check a response against a substituted expectation.  Returns 1 when it
 * holds; otherwise 0 with mismatch lines in out.  *json receives the parsed
 * body when it is JSON (caller frees), for captures.
 */
static int check_expect(struct rctx *x, const cJSON *exp, const struct http_resp *r, cJSON **json,
                        struct buf *out)
{
    const cJSON *v, *c;
    struct match_ctx m;
    struct buf hv;
    int ok = 1;

    *json = r->curl_code ? NULL : run_parse_json(r->body.data, r->body.len);
    if (r->curl_code) {
        util_note(out, "    transport error: %s\n", r->error);
        return 0;
    }
    if (!exp)
        return 1;
    v = cJSON_GetObjectItemCaseSensitive(exp, "status");
    if (v && !status_allowed(v, r->status)) {
        util_note(out, "%s", "    status: expected ");
        (void)json_brief(out, v, 200);
        util_note(out, ", got %ld\n", r->status);
        ok = 0;
    }
    buf_init(&hv, HTTP_MAX_RESPONSE);
    memset(&m, 0, sizeof(m));
    m.vars = x->vars;
    m.msg = out;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(exp, "headers"))
    {
        int present = http_resp_header(r, c->string, &hv);
        cJSON *actual = present ? cJSON_CreateString(hv.data ? hv.data : "") : NULL;
        struct buf label;

        buf_init(&label, 4096);
        util_note(&label, "header %s", c->string);
        m.header_mode = 1;
        if (cJSON_IsString(c)) {
            if (!actual || strcmp(actual->valuestring, c->valuestring)) {
                util_note(out, "    %s: expected ", label.data);
                (void)json_brief(out, c, 200);
                util_note(out, "%s", ", got ");
                (void)json_brief(out, actual, 200);
                util_note(out, "%c", '\n');
                ok = 0;
            }
        } else if (!match_value(&m, c, actual, label.data)) {
            ok = 0;
        }
        cJSON_Delete(actual);
        buf_cleanup(&label);
    }
    buf_cleanup(&hv);
    m.header_mode = 0;
    v = cJSON_GetObjectItemCaseSensitive(exp, "json");
    if (v) {
        if (!*json) {
            util_note(out, "%s", "    body: expected JSON, got ");
            if (r->body.len)
                (void)util_append_clean(out, r->body.data, r->body.len, 200, 0);
            else
                util_note(out, "%s", "an empty body");
            util_note(out, "%c", '\n');
            ok = 0;
        } else if (!match_value(&m, v, *json, "")) {
            ok = 0;
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(exp, "body_empty");
    if (cJSON_IsBool(v) && cJSON_IsTrue(v) != (r->body.len == 0)) {
        util_note(out, "    body: expected %s, got %zu bytes\n",
                  cJSON_IsTrue(v) ? "no body" : "a body", r->body.len);
        ok = 0;
    }
    return ok;
}

static int do_capture(struct rctx *x, const cJSON *cap, const struct http_resp *r,
                      const cJSON *json, struct buf *out)
{
    const cJSON *c;
    struct buf hv;
    int ok = 1;

    buf_init(&hv, HTTP_MAX_RESPONSE);
    cJSON_ArrayForEach(c, cap)
    {
        const char *spec = c->valuestring;
        int rc = 0;

        if (!strcmp(spec, "status")) {
            rc = vars_set_number(x->vars, c->string, (double)r->status);
        } else if (!strncmp(spec, "header:", 7)) {
            if (!http_resp_header(r, spec + 7, &hv)) {
                util_note(out, "    capture %s: response has no %s header\n", c->string, spec + 7);
                ok = 0;
                continue;
            }
            rc = vars_set_string(x->vars, c->string, hv.data ? hv.data : "");
        } else {
            const cJSON *val = json ? json_pointer_get(json, spec + 5) : NULL;

            if (!val) {
                util_note(out, "    capture %s: %s %s\n", c->string,
                          json ? "no value at" : "body is not JSON, cannot read", spec + 5);
                ok = 0;
                continue;
            }
            rc = vars_set(x->vars, c->string, val);
        }
        if (rc) {
            util_note(out, "    capture %s: %s\n", c->string, ls_strerror(rc));
            ok = 0;
        }
    }
    buf_cleanup(&hv);
    return ok;
}

/* ------------------------------------------------------------------ steps */

static void step_label(struct rctx *x, int idx, int total, const cJSON *st)
{
    const char *name = fixture_str(st, "name");

    util_note(x->msg, "  step %d/%d", idx + 1, total);
    if (name)
        util_note(x->msg, " \"%s\"", name);
    util_note(x->msg, "%s", ":\n");
}

static long step_timeout(const struct rctx *x, const cJSON *holder)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(holder, "timeout_ms");

    return scaled(x->o, cJSON_IsNumber(t) ? t->valuedouble : RUN_DEFAULT_TIMEOUT_MS);
}

/*
 * One request+expect+capture exchange.  Returns 1 on success; on failure 0
 * with details (and a repro) appended to detail.
 */
static int exchange(struct rctx *x, const cJSON *st, struct buf *detail)
{
    const char *cname = fixture_str(st, "client");
    const cJSON *cap = cJSON_GetObjectItemCaseSensitive(st, "capture");
    cJSON *req = NULL, *exp = NULL, *json = NULL;
    struct http_client *client;
    struct http_req hr;
    struct http_resp resp;
    struct buf *saved = x->msg, why;
    int ok = 0;

    buf_init(&why, 4096);
    http_req_init(&hr);
    http_resp_init(&resp);
    x->msg = detail;
    cname = cname ? cname : "default";
    req = vars_subst(x->vars, cJSON_GetObjectItemCaseSensitive(st, "request"), &why);
    if (req && cJSON_GetObjectItemCaseSensitive(st, "expect"))
        exp = vars_subst(x->vars, cJSON_GetObjectItemCaseSensitive(st, "expect"), &why);
    if (!req || (!exp && cJSON_GetObjectItemCaseSensitive(st, "expect"))) {
        util_note(detail, "    %s\n", why.data ? why.data : "cannot substitute variables");
        goto out;
    }
    client = get_client(x, cname);
    if (!client) {
        util_note(detail, "%s", "    cannot create the simulated client\n");
        goto out;
    }
    if (build_req(x, req, cname, step_timeout(x, st), &hr) != 0)
        goto out;
    if (perform(x, client, &hr, &resp) != 0) {
        util_note(detail, "%s", "    cannot set up the transfer\n");
        goto out;
    }
    print_trace(x, cname, &hr, &resp);
    ok = check_expect(x, exp, &resp, &json, detail);
    if (ok && cap)
        ok = do_capture(x, cap, &resp, json, detail);
    if (!ok) {
        describe_response(detail, &resp);
        add_repro(detail, &hr);
    }
out:
    x->msg = saved;
    buf_cleanup(&why);
    cJSON_Delete(req);
    cJSON_Delete(exp);
    cJSON_Delete(json);
    http_req_cleanup(&hr);
    http_resp_cleanup(&resp);
    return ok;
}

static int step_parallel(struct rctx *x, const cJSON *p)
{
    const cJSON *reqs = cJSON_GetObjectItemCaseSensitive(p, "requests");
    const cJSON *cnt = cJSON_GetObjectItemCaseSensitive(p, "count");
    const cJSON *each = cJSON_GetObjectItemCaseSensitive(p, "expect_each");
    const cJSON *all = cJSON_GetObjectItemCaseSensitive(p, "expect_all");
    const char *pclient = fixture_str(p, "client");
    size_t n = reqs ? (size_t)cJSON_GetArraySize(reqs) : (size_t)cnt->valuedouble, i;
    struct http_req *hr = calloc(n, sizeof(*hr));
    struct http_resp *resp = calloc(n, sizeof(*resp));
    struct http_client **cl = calloc(n, sizeof(*cl));
    cJSON **exps = calloc(n, sizeof(*exps));
    long timeout = step_timeout(x, p);
    int ok = 1, reported = 0;
    struct buf why;

    buf_init(&why, 4096);

    if (!hr || !resp || !cl || !exps) {
        util_note(x->msg, "%s", "    out of memory\n");
        ok = 0;
        goto out;
    }
    for (i = 0; i < n; i++) {
        http_req_init(&hr[i]);
        http_resp_init(&resp[i]);
    }
    for (i = 0; ok && i < n; i++) {
        const cJSON *src = reqs ? cJSON_GetArrayItem(reqs, (int)i)
                                : cJSON_GetObjectItemCaseSensitive(p, "request");
        const char *cname = fixture_str(src, "client");
        cJSON *r;

        cname = cname ? cname : (pclient ? pclient : "default");
        if (vars_set_number(x->vars, "i", (double)i) != 0) {
            ok = 0;
            break;
        }
        buf_reset(&why);
        r = vars_subst(x->vars, src, &why);
        if (r && each)
            exps[i] = vars_subst(x->vars, each, &why);
        cl[i] = get_client(x, cname);
        if (!r || (each && !exps[i]) || !cl[i]) {
            util_note(x->msg, "    request {{i}}=%zu cannot be prepared: %s\n", i,
                      why.data ? why.data : "too many clients");
            cJSON_Delete(r);
            ok = 0;
            break;
        }
        if (build_req(x, r, cname, timeout, &hr[i]) != 0)
            ok = 0;
        cJSON_Delete(r);
    }
    vars_unset(x->vars, "i");
    if (!ok)
        goto out;
    if (http_perform_on(request_loop(x), cl, hr, resp, n, x->o->verbose) != 0) {
        util_note(x->msg, "%s", "    cannot set up the transfers\n");
        ok = 0;
        goto out;
    }
    for (i = 0; i < n; i++) {
        struct buf d;
        cJSON *json = NULL;

        print_trace(x, http_client_name(cl[i]), &hr[i], &resp[i]);
        buf_init(&d, RUN_MAX_MESSAGE);
        if (!check_expect(x, exps[i], &resp[i], &json, &d)) {
            ok = 0;
            if (reported++ < MAX_REPORTED) {
                util_note(x->msg, "    request {{i}}=%zu:\n", i);
                util_note_n(x->msg, d.data, d.len);
                describe_response(x->msg, &resp[i]);
                add_repro(x->msg, &hr[i]);
            }
        }
        cJSON_Delete(json);
        buf_cleanup(&d);
    }
    if (reported > MAX_REPORTED)
        util_note(x->msg, "    (%d more failing requests not shown)\n", reported - MAX_REPORTED);
    if (all) {
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(all, "status_counts"), *c;
        cJSON *got = cJSON_CreateObject();
        int same = got != NULL;

        for (i = 0; got && i < n; i++) {
            char key[24];
            cJSON *slot;

            snprintf(key, sizeof(key), "%ld", resp[i].status);
            slot = cJSON_GetObjectItemCaseSensitive(got, key);
            if (slot)
                cJSON_SetNumberValue(slot, slot->valuedouble + 1);
            else
                cJSON_AddNumberToObject(got, key, 1);
        }
        /* Exact: every listed status with its count, and nothing unlisted (0 = must not occur). */
        cJSON_ArrayForEach(c, want)
        {
            const cJSON *g = cJSON_GetObjectItemCaseSensitive(got, c->string);

            if ((g ? g->valuedouble : 0) != c->valuedouble)
                same = 0;
        }
        cJSON_ArrayForEach(c, got)
        {
            if (!cJSON_GetObjectItemCaseSensitive(want, c->string))
                same = 0;
        }
        if (!same) {
            util_note(x->msg, "%s", "    status_counts: expected ");
            (void)json_brief(x->msg, want, 400);
            util_note(x->msg, "%s", ", got ");
            (void)json_brief(x->msg, got, 400);
            util_note(x->msg, "%s", " (status 0 = no response)\n");
            if (!reported)
                add_repro(x->msg, &hr[0]);
            ok = 0;
        }
        cJSON_Delete(got);
    }
out:
    for (i = 0; i < n; i++) {
        if (hr)
            http_req_cleanup(&hr[i]);
        if (resp)
            http_resp_cleanup(&resp[i]);
        if (exps)
            cJSON_Delete(exps[i]);
    }
    free(hr);
    free(resp);
    free(cl);
    free(exps);
    buf_cleanup(&why);
    return ok;
}

static int step_repeat(struct rctx *x, const cJSON *r)
{
    int max = (int)cJSON_GetObjectItemCaseSensitive(r, "max_attempts")->valuedouble, a;
    double interval = cJSON_GetObjectItemCaseSensitive(r, "interval_ms")->valuedouble;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(r, "step");
    struct buf last;

    buf_init(&last, RUN_MAX_MESSAGE);
    for (a = 1; a <= max; a++) {
        buf_reset(&last);
        if (exchange(x, st, &last)) {
            buf_cleanup(&last);
            return 1;
        }
        if (a < max)
            pass_time(x, interval > 0 ? scaled(x->o, interval) : 0);
    }
    util_note(x->msg,
              "    no attempt matched within max_attempts=%d (interval %ld ms); "
              "last attempt:\n",
              max, interval > 0 ? scaled(x->o, interval) : 0L);
    util_note_n(x->msg, last.data ? last.data : "", last.len);
    buf_cleanup(&last);
    return 0;
}

static int step_vectors(struct rctx *x, const cJSON *st)
{
    const cJSON *v, *vecs = cJSON_GetObjectItemCaseSensitive(x->o->vectors, "vectors");
    const char *cname = fixture_str(st, "client");
    struct http_client *client;
    struct buf raw, path;
    int ok = 1, failed = 0, checked = 0;

    cname = cname ? cname : "default";
    client = get_client(x, cname);
    if (!x->o->vectors || !client) {
        util_note(x->msg, "%s", "    canon vectors are not loaded\n");
        return 0;
    }
    buf_init(&raw, FIXTURE_MAX_REPEAT_BYTES + 65536);
    buf_init(&path, 4 * FIXTURE_MAX_REPEAT_BYTES + 65536);
    cJSON_ArrayForEach(v, vecs)
    {
        const cJSON *http = cJSON_GetObjectItemCaseSensitive(v, "http");
        const char *id = fixture_str(v, "id"), *want;
        long status;
        struct http_req hr;
        struct http_resp resp;
        struct buf d;
        cJSON *json = NULL;
        int is_query, good = 1;

        if (!cJSON_IsObject(http))
            continue;
        checked++;
        status = (long)cJSON_GetObjectItemCaseSensitive(http, "status")->valuedouble;
        buf_reset(&raw);
        buf_reset(&path);
        http_req_init(&hr);
        http_resp_init(&resp);
        buf_init(&d, RUN_MAX_MESSAGE);
        /* query vectors are already form-encoded text; raw inputs get every byte encoded. */
        if (fixture_vector_input(v, &raw, &is_query) != 0 || buf_appends(&path, "path=") != 0 ||
            (is_query ? buf_append(&path, raw.data ? raw.data : "", raw.len)
                      : util_pct_encode(&path, raw.data ? raw.data : "", raw.len, 1)) != 0) {
            util_note(&d, "    vector %s: cannot build the request\n", id);
            good = 0;
        } else {
            cJSON *r = cJSON_CreateObject();

            if (r) {
                cJSON_AddStringToObject(r, "method", "GET");
                cJSON_AddStringToObject(r, "path", "/item");
                cJSON_AddStringToObject(r, "raw_query", path.data);
            }
            if (!r || build_req(x, r, cname, scaled(x->o, RUN_DEFAULT_TIMEOUT_MS), &hr) != 0 ||
                perform(x, client, &hr, &resp) != 0) {
                util_note(&d, "    vector %s: cannot send the request\n", id);
                good = 0;
            }
            cJSON_Delete(r);
        }
        if (good) {
            print_trace(x, cname, &hr, &resp);
            json = resp.curl_code ? NULL : run_parse_json(resp.body.data, resp.body.len);
            if (resp.curl_code) {
                util_note(&d, "    transport error: %s\n", resp.error);
                good = 0;
            } else if (resp.status != status) {
                util_note(&d, "    status: expected %ld, got %ld\n", status, resp.status);
                good = 0;
            } else if (status == 200 && (want = fixture_str(v, "output")) != NULL) {
                const cJSON *got = json ? json_pointer_get(json, "/path") : NULL;

                if (!cJSON_IsString(got) || strcmp(got->valuestring, want)) {
                    util_note(&d, "    /path: expected \"%s\", got ", want);
                    (void)json_brief(&d, got, 200);
                    util_note(&d, "%c", '\n');
                    good = 0;
                }
            } else if (status == 400) {
                const cJSON *e = json ? json_pointer_get(json, "/error") : NULL;
                const cJSON *rs = json ? json_pointer_get(json, "/reason") : NULL;

                want = fixture_str(http, "reason");
                want = want ? want : fixture_str(v, "error");
                if (!cJSON_IsString(e) || strcmp(e->valuestring, "invalid_path")) {
                    util_note(&d, "%s", "    /error: expected \"invalid_path\", got ");
                    (void)json_brief(&d, e, 200);
                    util_note(&d, "%c", '\n');
                    good = 0;
                }
                if (want && (!cJSON_IsString(rs) || strcmp(rs->valuestring, want))) {
                    util_note(&d, "    /reason: expected \"%s\", got ", want);
                    (void)json_brief(&d, rs, 200);
                    util_note(&d, "%c", '\n');
                    good = 0;
                }
            }
        }
        if (!good) {
            ok = 0;
            if (failed++ < MAX_REPORTED) {
                util_note(x->msg, "    vector \"%s\":\n", id);
                util_note_n(x->msg, d.data ? d.data : "", d.len);
                if (hr.url) {
                    describe_response(x->msg, &resp);
                    add_repro(x->msg, &hr);
                }
            }
        }
        cJSON_Delete(json);
        buf_cleanup(&d);
        http_req_cleanup(&hr);
        http_resp_cleanup(&resp);
    }
    if (failed)
        util_note(x->msg, "    %d of %d vectors failed%s\n", failed, checked,
                  failed > MAX_REPORTED ? " (first ones shown)" : "");
    if (checked == 0) {
        util_note(x->msg, "%s", "    no vector has an http expectation\n");
        ok = 0;
    }
    buf_cleanup(&raw);
    buf_cleanup(&path);
    return ok;
}

/* ------------------------------------------------------------------ streams */

static long wait_ms(const struct rctx *x, const cJSON *o, const char *key, double dflt)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, key);

    return scaled(x->o, cJSON_IsNumber(t) ? t->valuedouble : dflt);
}

/* The lines that end every stream failure: the stream's state and a curl(1) command. */
static void stream_footer(struct rctx *x, const struct stream *s)
{
    stream_describe(s, x->msg, 3);
    add_repro(x->msg, &s->req);
}

/* After any step: a violation on any open stream fails the case. */
static int streams_ok(struct rctx *x)
{
    const struct stream *s;

    if (!x->streams)
        return 1;
    if (streams_pump(x->streams, 0) != 0) {
        util_note(x->msg, "%s", "    the transfer loop failed\n");
        return 0;
    }
    s = streams_violation(x->streams);
    if (!s)
        return 1;
    util_note(x->msg, "    stream %s: %s\n", s->name, s->violation.data);
    stream_footer(x, s);
    return 0;
}

/*
 * One slice of a bounded wait: let the streams run for at most PUMP_SLICE
 * ms, never past deadline.  Returns 0 to go on waiting, 1 when the deadline
 * has passed (nothing was pumped), -1 after a violation or a loop failure
 * (described in x->msg).
 */
static int wait_slice(struct rctx *x, double deadline)
{
    double left = deadline - util_now_ms();

    if (left <= 0)
        return 1;
    if (streams_pump(x->streams, left < PUMP_SLICE ? (long)left + 1 : PUMP_SLICE) != 0) {
        util_note(x->msg, "%s", "    the transfer loop failed\n");
        return -1;
    }
    return streams_ok(x) ? 0 : -1;
}

/* The stream named by o's "stream"; with events set it must have answered 200. */
static struct stream *use_stream(struct rctx *x, const cJSON *o, int events)
{
    const char *name = fixture_str(o, "stream");
    struct stream *s = x->streams ? streams_find(x->streams, name) : NULL;

    if (!s) {
        util_note(x->msg, "    stream %s is not open\n", name);
        return NULL;
    }
    if (!streams_ok(x))
        return NULL;
    if (events && stream_status(s) != 200) {
        util_note(x->msg, "    stream %s is not an event stream: the server answered %ld\n", name,
                  stream_status(s));
        stream_footer(x, s);
        return NULL;
    }
    return s;
}

static int step_sse_open(struct rctx *x, const cJSON *o)
{
    const char *name = fixture_str(o, "stream"), *cname = fixture_str(o, "client");
    long wait = wait_ms(x, o, "within_ms", RUN_SSE_WITHIN_MS);
    cJSON *sub, *exp = NULL, *json = NULL;
    struct http_client *client;
    struct http_req hr;
    struct stream *s = NULL;
    struct buf why;
    double deadline;
    int ok = 0, present, rc, r;
    long st;

    buf_init(&why, 4096);
    http_req_init(&hr);
    cname = cname ? cname : "default";
    sub = vars_subst(x->vars, o, &why);
    if (!sub) {
        util_note(x->msg, "    %s\n", why.data ? why.data : "cannot substitute variables");
        goto out;
    }
    client = get_client(x, cname);
    if (!x->streams)
        x->streams = streams_new(x->o->verbose);
    exp = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(sub, "expect"), 1);
    if (!exp)
        exp = cJSON_CreateObject();
    if (!client || !x->streams || !exp || !cJSON_AddStringToObject(sub, "method", "GET") ||
        (!cJSON_GetObjectItemCaseSensitive(exp, "status") &&
         !cJSON_AddNumberToObject(exp, "status", 200))) {
        util_note(x->msg, "%s", "    out of memory\n");
        goto out;
    }
    if (build_req(x, sub, cname, 0, &hr) != 0)
        goto out;
    hr.stream = 1;
    hr.connect_timeout_ms = wait;
    (void)http_req_header(&hr, "Accept", &present);
    if (!present && http_req_set_header(&hr, "Accept", "text/event-stream") != 0) {
        util_note(x->msg, "%s", "    out of memory\n");
        goto out;
    }
    rc = streams_open(x->streams, name, client, cname, &hr, &s);
    if (rc) {
        util_note(x->msg, "    cannot open stream %s: %s\n", name, ls_strerror(rc));
        goto out;
    }
    /* Wait for the headers; for an answer other than 200, for the whole body. */
    deadline = util_now_ms() + (double)wait;
    for (;;) {
        st = stream_status(s);
        if (st == 200 || s->ended)
            break;
        r = wait_slice(x, deadline);
        if (r < 0)
            goto out;
        if (r > 0) {
            if (st)
                util_note(x->msg, "    stream %s: the %ld answer did not end within %ld ms\n", name,
                          st, wait);
            else
                util_note(x->msg, "    stream %s: no response headers within %ld ms\n", name, wait);
            stream_footer(x, s);
            goto out;
        }
    }
    if (cJSON_GetObjectItemCaseSensitive(exp, "json") && stream_status(s) == 200) {
        util_note(x->msg,
                  "    stream %s: expect.json applies to answers other than 200, and the server "
                  "answered 200\n",
                  name);
        stream_footer(x, s);
        goto out;
    }
    ok = check_expect(x, exp, &s->resp, &json, x->msg);
    if (!ok) {
        if (s->resp.status != 200)
            describe_response(x->msg, &s->resp);
        stream_footer(x, s);
    }
out:
    buf_cleanup(&why);
    http_req_cleanup(&hr);
    cJSON_Delete(sub);
    cJSON_Delete(exp);
    cJSON_Delete(json);
    return ok;
}

/* An event's data as JSON; data that is not one JSON value is a JSON string. */
static cJSON *event_json(const struct stream_event *e)
{
    cJSON *j = run_parse_json(e->data, e->data_len);

    return j ? j : cJSON_CreateString(e->data);
}

static int match_id(struct rctx *x, const cJSON *want, const struct stream_event *e,
                    struct buf *out)
{
    const char *mn = match_matcher_name(want);
    const cJSON *w = want;
    cJSON *resolved = NULL;
    unsigned long long v;
    int ok;

    if (mn && !strcmp(mn, "$var")) {
        /* An id is text on the wire: compare a captured integer numerically. */
        resolved = vars_lookup(x->vars, want->child->valuestring);
        if (!resolved) {
            util_note(out, "    id: variable %s is not defined\n", want->child->valuestring);
            return 0;
        }
        w = resolved;
    }
    if (cJSON_IsNumber(w) || cJSON_IsString(w)) {
        if (cJSON_IsNumber(w))
            ok = e->id && stream_id_value(e->id, &v) && (double)v == w->valuedouble;
        else
            ok = e->id && !strcmp(e->id, w->valuestring);
        if (!ok) {
            util_note(out, "%s", "    id: expected ");
            (void)json_brief(out, w, 200);
            if (e->id) {
                util_note(out, "%s", ", got \"");
                (void)util_append_clean(out, e->id, strlen(e->id), 200, 0);
                util_note(out, "%s", "\"\n");
            } else {
                util_note(out, "%s", ", got no id field\n");
            }
        }
    } else {
        cJSON *act = e->id ? cJSON_CreateString(e->id) : NULL;
        struct match_ctx m;

        memset(&m, 0, sizeof(m));
        m.vars = x->vars;
        m.msg = out;
        m.header_mode = 1; /* numeric matchers read the id's integer value */
        ok = match_value(&m, w, act, "id");
        cJSON_Delete(act);
    }
    cJSON_Delete(resolved);
    return ok;
}

/* Does event e match the substituted expectation w?  Mismatch lines go to out. */
static int match_event(struct rctx *x, const cJSON *w, const struct stream_event *e,
                       struct buf *out)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(w, "event");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(w, "id");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(w, "data");
    struct match_ctx m;
    int ok = 1;

    memset(&m, 0, sizeof(m));
    m.vars = x->vars;
    m.msg = out;
    if (cJSON_IsString(t) && strcmp(t->valuestring, e->type)) {
        util_note(out, "%s", "    event: expected ");
        (void)json_brief(out, t, 200);
        util_note(out, "%s", ", got \"");
        (void)util_append_clean(out, e->type, strlen(e->type), 200, 0);
        util_note(out, "%s", "\"\n");
        ok = 0;
    } else if (t && !cJSON_IsString(t)) {
        cJSON *a = cJSON_CreateString(e->type);

        ok = match_value(&m, t, a, "event");
        cJSON_Delete(a);
    }
    if (id && !match_id(x, id, e, out))
        ok = 0;
    if (d) {
        cJSON *a = event_json(e);

        if (!match_value(&m, d, a, "data"))
            ok = 0;
        cJSON_Delete(a);
    }
    return ok;
}

static int sse_capture(struct rctx *x, const cJSON *cap, const struct stream_event *e)
{
    const cJSON *c;
    cJSON *dj = NULL;
    int ok = 1;

    cJSON_ArrayForEach(c, cap)
    {
        const char *spec = c->valuestring;
        unsigned long long v;
        int rc;

        if (!strcmp(spec, "id")) {
            if (!e->id) {
                util_note(x->msg, "    capture %s: the event has no id field\n", c->string);
                ok = 0;
                continue;
            }
            /* A canonical integer id is captured as a number, so "{{v}}" compares with
             * event_id in a JSON body; any other id as a string. */
            rc = stream_id_value(e->id, &v) ? vars_set_number(x->vars, c->string, (double)v)
                                            : vars_set_string(x->vars, c->string, e->id);
        } else {
            const cJSON *val;

            if (!dj)
                dj = event_json(e);
            val = dj ? json_pointer_get(dj, spec + 5) : NULL;
            if (!val) {
                util_note(x->msg, "    capture %s: no value at \"%s\" in the event data\n",
                          c->string, spec + 5);
                ok = 0;
                continue;
            }
            rc = vars_set(x->vars, c->string, val);
        }
        if (rc) {
            util_note(x->msg, "    capture %s: %s\n", c->string, ls_strerror(rc));
            ok = 0;
        }
    }
    cJSON_Delete(dj);
    return ok;
}

static int is_ignored(const cJSON *ignore, const char *type)
{
    const cJSON *c;

    cJSON_ArrayForEach(c, ignore)
    {
        if (cJSON_IsString(c) && !strcmp(c->valuestring, type))
            return 1;
    }
    return 0;
}

static int step_sse_expect(struct rctx *x, const cJSON *o)
{
    struct stream *s = use_stream(x, o, 1);
    const cJSON *events = cJSON_GetObjectItemCaseSensitive(o, "events"), *want;
    long wait = wait_ms(x, o, "within_ms", RUN_SSE_WITHIN_MS);
    double deadline = util_now_ms() + (double)wait;
    int n = cJSON_GetArraySize(events), i = 0, ok = 0;
    cJSON *ignore = NULL;
    struct buf why;

    buf_init(&why, 4096);
    if (!s)
        goto out;
    if (cJSON_GetObjectItemCaseSensitive(o, "ignore")) {
        ignore = vars_subst(x->vars, cJSON_GetObjectItemCaseSensitive(o, "ignore"), &why);
        if (!ignore) {
            util_note(x->msg, "    %s\n", why.data ? why.data : "out of memory");
            goto out;
        }
    }
    cJSON_ArrayForEach(want, events)
    {
        const struct stream_event *e;
        struct buf d;
        cJSON *w;
        int r, good;

        for (;;) {
            e = stream_peek(s, 0);
            if (e && is_ignored(ignore, e->type)) {
                stream_consume(s);
                continue;
            }
            if (e)
                break;
            if (s->ended) {
                util_note(x->msg, "    stream %s: expected event %d of %d, but the stream ended\n",
                          s->name, i + 1, n);
                goto fail;
            }
            r = wait_slice(x, deadline);
            if (r < 0)
                goto out;
            if (r > 0) {
                util_note(x->msg,
                          "    stream %s: expected event %d of %d within %ld ms; none arrived%s\n",
                          s->name, i + 1, n, wait, ignore ? " (ignored types skipped)" : "");
                goto fail;
            }
        }
        /* Substituted now, so captures of earlier events in this step apply. */
        buf_reset(&why);
        w = vars_subst(x->vars, want, &why);
        if (!w) {
            util_note(x->msg, "    event %d: %s\n", i + 1, why.data ? why.data : "out of memory");
            goto fail;
        }
        buf_init(&d, RUN_MAX_MESSAGE);
        good = match_event(x, w, e, &d);
        if (!good) {
            util_note(x->msg, "    stream %s, expected event %d of %d:\n", s->name, i + 1, n);
            util_note_n(x->msg, d.data ? d.data : "", d.len);
            util_note(x->msg, "%s", "    expected: ");
            (void)json_brief(x->msg, w, 400);
            util_note(x->msg, "%s", "\n    got: ");
            stream_event_brief(e, x->msg, BODY_SNIPPET);
            util_note(x->msg, "%c", '\n');
        }
        buf_cleanup(&d);
        if (good && cJSON_GetObjectItemCaseSensitive(w, "capture"))
            good = sse_capture(x, cJSON_GetObjectItemCaseSensitive(w, "capture"), e);
        cJSON_Delete(w);
        if (!good)
            goto fail;
        stream_consume(s);
        i++;
    }
    ok = 1;
    goto out;
fail:
    stream_footer(x, s);
out:
    cJSON_Delete(ignore);
    buf_cleanup(&why);
    return ok;
}

static int step_sse_expect_none(struct rctx *x, const cJSON *o)
{
    struct stream *s = use_stream(x, o, 1);
    const char *type = fixture_str(o, "event");
    long wait = wait_ms(x, o, "window_ms", RUN_SSE_WINDOW_MS);
    double deadline = util_now_ms() + (double)wait;
    const struct stream_event *e;
    size_t seen = 0;
    int r;

    if (!s)
        return 0;
    for (;;) {
        /* Nothing is consumed: later steps still see every event. */
        for (; (e = stream_peek(s, seen)) != NULL; seen++) {
            if (type && strcmp(type, e->type))
                continue;
            util_note(x->msg, "    stream %s: expected no %s%s%sevent within %ld ms, got ", s->name,
                      type ? "\"" : "", type ? type : "", type ? "\" " : "", wait);
            stream_event_brief(e, x->msg, BODY_SNIPPET);
            util_note(x->msg, "%c", '\n');
            stream_footer(x, s);
            return 0;
        }
        r = wait_slice(x, deadline);
        if (r < 0)
            return 0;
        if (r > 0)
            return 1;
    }
}

/* The facts sse_check asks about; quiet when out is NULL. */
static int stream_facts(struct rctx *x, const struct stream *s, const cJSON *retry,
                        const cJSON *cmin, struct buf *out)
{
    unsigned long long ms;
    int ok = 1;

    if (retry) {
        cJSON *act = sse_retry(s->sse, &ms) ? cJSON_CreateNumber((double)ms) : NULL;
        struct match_ctx m;

        memset(&m, 0, sizeof(m));
        m.vars = x->vars;
        m.msg = out;
        ok = match_value(&m, retry, act, "retry");
        cJSON_Delete(act);
    }
    if (cJSON_IsNumber(cmin) && (double)sse_comments(s->sse) < cmin->valuedouble) {
        if (out)
            util_note(out, "    comments: expected at least %.0f, got %zu\n", cmin->valuedouble,
                      sse_comments(s->sse));
        ok = 0;
    }
    return ok;
}

static int step_sse_check(struct rctx *x, const cJSON *o)
{
    struct stream *s = use_stream(x, o, 1);
    const cJSON *cmin = cJSON_GetObjectItemCaseSensitive(o, "comments_min");
    long wait = wait_ms(x, o, "within_ms", RUN_SSE_WITHIN_MS);
    double deadline = util_now_ms() + (double)wait;
    cJSON *retry = NULL;
    struct buf why;
    int ok = 0, r;

    buf_init(&why, 4096);
    if (!s)
        goto out;
    if (cJSON_GetObjectItemCaseSensitive(o, "retry")) {
        retry = vars_subst(x->vars, cJSON_GetObjectItemCaseSensitive(o, "retry"), &why);
        if (!retry) {
            util_note(x->msg, "    %s\n", why.data ? why.data : "out of memory");
            goto out;
        }
    }
    /* Facts only accumulate, so wait (bounded) for them to hold. */
    for (;;) {
        if (stream_facts(x, s, retry, cmin, NULL)) {
            ok = 1;
            goto out;
        }
        if (s->ended)
            break;
        r = wait_slice(x, deadline);
        if (r < 0)
            goto out;
        if (r > 0)
            break;
    }
    util_note(x->msg, "    stream %s, facts after %ld ms%s:\n", s->name, wait,
              s->ended ? " (the stream has ended)" : "");
    (void)stream_facts(x, s, retry, cmin, x->msg);
    stream_footer(x, s);
out:
    cJSON_Delete(retry);
    buf_cleanup(&why);
    return ok;
}

static int step_sse_expect_end(struct rctx *x, const cJSON *o)
{
    struct stream *s = use_stream(x, o, 1);
    long wait = wait_ms(x, o, "within_ms", RUN_SSE_WITHIN_MS);
    double deadline = util_now_ms() + (double)wait;
    int r;

    if (!s)
        return 0;
    while (!s->ended) {
        r = wait_slice(x, deadline);
        if (r < 0)
            return 0;
        if (r > 0) {
            util_note(x->msg,
                      "    stream %s: still open after %ld ms; expected the server to end it\n",
                      s->name, wait);
            stream_footer(x, s);
            return 0;
        }
    }
    if (stream_failed(s)) {
        util_note(x->msg, "    stream %s: broke off (%s) instead of ending cleanly\n", s->name,
                  s->resp.error);
        stream_footer(x, s);
        return 0;
    }
    return 1;
}

static int step_sse(struct rctx *x, const cJSON *st)
{
    const cJSON *v;
    struct stream *s;

    if ((v = cJSON_GetObjectItemCaseSensitive(st, "sse_open")) != NULL)
        return step_sse_open(x, v);
    if ((v = cJSON_GetObjectItemCaseSensitive(st, "sse_expect")) != NULL)
        return step_sse_expect(x, v);
    if ((v = cJSON_GetObjectItemCaseSensitive(st, "sse_expect_none")) != NULL)
        return step_sse_expect_none(x, v);
    if ((v = cJSON_GetObjectItemCaseSensitive(st, "sse_check")) != NULL)
        return step_sse_check(x, v);
    if ((v = cJSON_GetObjectItemCaseSensitive(st, "sse_expect_end")) != NULL)
        return step_sse_expect_end(x, v);
    v = cJSON_GetObjectItemCaseSensitive(st, "sse_close");
    s = use_stream(x, v, 0);
    if (!s)
        return 0;
    streams_close(x->streams, s);
    return 1;
}

static int run_step(struct rctx *x, const cJSON *st, int idx, int total)
{
    struct buf detail, *outer = x->msg;
    const cJSON *v;
    int ok;

    /* Step output goes to a scratch buffer; only a failing step is described. */
    buf_init(&detail, RUN_MAX_MESSAGE);
    x->msg = &detail;
    if (cJSON_GetObjectItemCaseSensitive(st, "request")) {
        ok = exchange(x, st, &detail);
    } else if ((v = cJSON_GetObjectItemCaseSensitive(st, "parallel")) != NULL) {
        ok = step_parallel(x, v);
    } else if ((v = cJSON_GetObjectItemCaseSensitive(st, "repeat")) != NULL) {
        ok = step_repeat(x, v);
    } else if ((v = cJSON_GetObjectItemCaseSensitive(st, "sleep_ms")) != NULL) {
        pass_time(x, v->valuedouble > 0 ? scaled(x->o, v->valuedouble) : 0);
        ok = 1;
    } else if (cJSON_GetObjectItemCaseSensitive(st, "vectors")) {
        ok = step_vectors(x, st);
    } else if (life_step_kind(st)) {
        ok = x->o->life ? life_step(x->o->life, x->vars, st, x->msg) : 0;
        if (!x->o->life)
            util_note(x->msg, "%s", "    lifecycle steps need --server\n");
    } else {
        ok = step_sse(x, st);
    }
    if (ok)
        ok = streams_ok(x);
    x->msg = outer;
    if (!ok) {
        step_label(x, idx, total, st);
        util_note_n(x->msg, detail.data ? detail.data : "", detail.len);
        if (x->o->life)
            life_describe(x->o->life, x->msg);
    }
    buf_cleanup(&detail);
    return ok;
}

int run_case(const struct run_opts *o, const cJSON *fx, struct case_result *res)
{
    struct rctx x;
    struct buf msg;
    const cJSON *st, *steps = cJSON_GetObjectItemCaseSensitive(fx, "steps"), *v;
    double t0 = util_now_ms();
    int idx = 0, total = cJSON_GetArraySize(steps), ok = 1, rc = 0;
    size_t i;

    memset(&x, 0, sizeof(x));
    buf_init(&msg, RUN_MAX_MESSAGE);
    x.o = o;
    x.msg = &msg;
    x.vars = vars_new(o->run_id);
    if (!x.vars) {
        rc = -ENOMEM;
        goto out;
    }
    if (vars_set_string(x.vars, "case", fixture_str(fx, "id")) != 0) {
        rc = -ENOMEM;
        goto out;
    }
    /* Case variables may use built-ins and earlier case variables. */
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(fx, "vars"))
    {
        struct buf why;
        cJSON *val;

        buf_init(&why, 4096);
        val = vars_subst(x.vars, v, &why);
        if (!val || vars_set(x.vars, v->string, val) != 0) {
            util_note(&msg, "  vars.%s cannot be resolved: %s\n", v->string,
                      why.data ? why.data : "out of memory");
            buf_cleanup(&why);
            cJSON_Delete(val);
            ok = 0;
            break;
        }
        buf_cleanup(&why);
        cJSON_Delete(val);
    }
    cJSON_ArrayForEach(st, steps)
    {
        if (!ok)
            break;
        ok = run_step(&x, st, idx++, total);
    }
out:
    /* Streams first: their transfers use the clients' share handles. */
    streams_free(x.streams);
    if (o->life) {
        /* The server stops at the end of every lifecycle case; it must stop cleanly. */
        struct buf why;

        buf_init(&why, RUN_MAX_MESSAGE);
        if (life_finish(o->life, &why) && ok && !rc) {
            util_note(&msg, "%s", "  after the last step:\n");
            util_note_n(&msg, why.data ? why.data : "", why.len);
            life_describe(o->life, &msg);
            ok = 0;
        }
        buf_cleanup(&why);
    }
    res->status = ok && !rc ? CASE_PASS : CASE_FAIL;
    res->duration_ms = util_now_ms() - t0;
    res->message = msg.len ? buf_take(&msg, NULL) : NULL;
    buf_cleanup(&msg);
    for (i = 0; i < x.nclients; i++)
        http_client_free(x.clients[i]);
    vars_free(x.vars);
    return rc;
}
