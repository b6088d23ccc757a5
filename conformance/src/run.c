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
#include "match.h"
#include "util.h"
#include "vars.h"

#define BODY_SNIPPET 600 /* response body bytes quoted in a failure message */
#define MAX_REPORTED 5   /* failing members of a parallel group / vectors listed */

struct rctx {
    const struct run_opts *o;
    struct vars *vars;
    struct http_client *clients[RUN_MAX_CLIENTS];
    size_t nclients;
    struct buf *msg; /* failure message being built */
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
    if (http_perform(client, &hr, &resp, x->o->verbose) != 0) {
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
    if (http_perform_parallel(cl, hr, resp, n, x->o->verbose) != 0) {
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
            util_sleep_ms(interval > 0 ? scaled(x->o, interval) : 0);
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
                http_perform(client, &hr, &resp, x->o->verbose) != 0) {
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
        util_sleep_ms(v->valuedouble > 0 ? scaled(x->o, v->valuedouble) : 0);
        ok = 1;
    } else {
        ok = step_vectors(x, st);
    }
    x->msg = outer;
    if (!ok) {
        step_label(x, idx, total, st);
        util_note_n(x->msg, detail.data ? detail.data : "", detail.len);
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
    res->status = ok && !rc ? CASE_PASS : CASE_FAIL;
    res->duration_ms = util_now_ms() - t0;
    res->message = msg.len ? buf_take(&msg, NULL) : NULL;
    buf_cleanup(&msg);
    for (i = 0; i < x.nclients; i++)
        http_client_free(x.clients[i]);
    vars_free(x.vars);
    return rc;
}
