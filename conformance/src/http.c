/*
 * http.c - libcurl client for the runner; see http.h for the contracts.
 *
 * Why these options:
 *  - CURLOPT_PATH_AS_IS: fixtures send paths verbatim ("/item/../x" must reach
 *    the server unchanged).
 *  - CURLOPT_PROXY "": a developer's http_proxy must not reroute 127.0.0.1.
 *  - "Expect:" is removed: a server need not implement 100-continue, and
 *    curl's 1 s wait for it would only slow the suite down.
 *  - "Content-Type:" is removed when a body has no declared type, because
 *    curl would otherwise claim application/x-www-form-urlencoded.
 */
#include "http.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

#define HTTP_USER_AGENT        "labelsync-check/0.1.0"
#define HTTP_PARALLEL_GRACE_MS 2000 /* slack for a multi loop beyond the longest timeout */

struct http_client {
    char *name;
    CURLSH *share; /* the cookie jar and the connection cache */
};

/* Per-transfer state handed to the callbacks; also what a struct http_async is. */
struct xfer {
    struct http_resp *resp;
    struct curl_slist *list;
    int too_big;
    int too_many_headers;
    size_t shown_in, shown_out;
    CURL *easy;
    struct http_loop *loop; /* async transfers only */
    struct http_sink sink;  /* on_data NULL: the body goes to resp->body */
    long status;            /* final status once the headers are complete */
    int in_multi;           /* still added to loop->m */
    int done;
};

struct http_loop {
    CURLM *m;
};

int http_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

void http_global_cleanup(void)
{
    curl_global_cleanup();
}

void http_req_init(struct http_req *r)
{
    memset(r, 0, sizeof(*r));
    buf_init(&r->body, HTTP_MAX_REQUEST_BODY);
}

static void free_headers(struct http_header *h, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        free(h[i].name);
        free(h[i].value);
    }
    free(h);
}

void http_req_cleanup(struct http_req *r)
{
    if (!r)
        return;
    free(r->method);
    free(r->url);
    free_headers(r->hdr, r->nhdr);
    buf_cleanup(&r->body);
    http_req_init(r);
}

int http_req_set_header(struct http_req *r, const char *name, const char *value)
{
    size_t i;
    char *v = NULL, *n;
    struct http_header *nh;

    if (value) {
        v = strdup(value);
        if (!v)
            return -ENOMEM;
    }
    for (i = 0; i < r->nhdr; i++) {
        if (strcasecmp(r->hdr[i].name, name) == 0) {
            free(r->hdr[i].value);
            r->hdr[i].value = v;
            return 0;
        }
    }
    if (r->nhdr >= HTTP_MAX_HEADERS) {
        free(v);
        return LS_ETOOMANY;
    }
    n = strdup(name);
    nh = realloc(r->hdr, (r->nhdr + 1) * sizeof(*nh));
    if (!n || !nh) {
        free(n);
        free(v);
        if (nh)
            r->hdr = nh;
        return -ENOMEM;
    }
    r->hdr = nh;
    r->hdr[r->nhdr].name = n;
    r->hdr[r->nhdr].value = v;
    r->nhdr++;
    return 0;
}

const char *http_req_header(const struct http_req *r, const char *name, int *present)
{
    size_t i;

    for (i = 0; i < r->nhdr; i++) {
        if (strcasecmp(r->hdr[i].name, name) == 0) {
            if (present)
                *present = 1;
            return r->hdr[i].value;
        }
    }
    if (present)
        *present = 0;
    return NULL;
}

void http_resp_init(struct http_resp *r)
{
    memset(r, 0, sizeof(*r));
    buf_init(&r->body, HTTP_MAX_RESPONSE);
    buf_init(&r->trace, HTTP_MAX_TRACE);
}

void http_resp_cleanup(struct http_resp *r)
{
    if (!r)
        return;
    free_headers(r->hdr, r->nhdr);
    buf_cleanup(&r->body);
    buf_cleanup(&r->trace);
    http_resp_init(r);
}

int http_resp_header(const struct http_resp *r, const char *name, struct buf *out)
{
    size_t i;
    int found = 0;

    buf_reset(out);
    for (i = 0; i < r->nhdr; i++) {
        if (strcasecmp(r->hdr[i].name, name) != 0)
            continue;
        if (found && buf_appends(out, ", ") != 0)
            break;
        if (buf_appends(out, r->hdr[i].value) != 0)
            break;
        found = 1;
    }
    if (found && !out->data)
        util_note(out, "%s", "");
    return found;
}

struct http_client *http_client_new(const char *name)
{
    struct http_client *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->name = strdup(name);
    c->share = curl_share_init();
    /*
     * Each request gets a fresh easy handle (re-setting CURLOPT_COOKIEFILE on
     * a reused handle leaks in libcurl 7.88), so cookies and keep-alive
     * connections live in the client's share instead.
     */
    if (!c->name || !c->share ||
        curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_COOKIE) != CURLSHE_OK ||
        curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK ||
        curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK) {
        http_client_free(c);
        return NULL;
    }
    return c;
}

void http_client_free(struct http_client *c)
{
    if (!c)
        return;
    if (c->share)
        curl_share_cleanup(c->share);
    free(c->name);
    free(c);
}

const char *http_client_name(const struct http_client *c)
{
    return c->name;
}

/* ------------------------------------------------------------------ callbacks */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;

    if (x->sink.on_data)
        return x->sink.on_data(x->sink.ctx, p, size * n) == 0 ? size * n : 0;
    if (buf_append(&x->resp->body, p, size * n) != 0) {
        x->too_big = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;
    struct http_resp *r = x->resp;
    size_t len = size * n, nl, vs;
    struct http_header *nh;
    char *colon;

    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* A new status line (after 100 Continue or 1xx): forget earlier headers. */
        free_headers(r->hdr, r->nhdr);
        r->hdr = NULL;
        r->nhdr = 0;
        return len;
    }
    if (len <= 2 && (p[0] == '\r' || p[0] == '\n')) {
        /* The blank line that ends a header block; a 1xx block is followed by another. */
        long st = 0;

        if (curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &st) == CURLE_OK && st >= 200)
            x->status = st;
        return len;
    }
    colon = memchr(p, ':', len);
    if (!colon)
        return len;
    if (r->nhdr >= HTTP_MAX_HEADERS) {
        x->too_many_headers = 1;
        return len;
    }
    nl = (size_t)(colon - p);
    vs = nl + 1;
    while (vs < len && (p[vs] == ' ' || p[vs] == '\t'))
        vs++;
    while (len > vs &&
           (p[len - 1] == '\r' || p[len - 1] == '\n' || p[len - 1] == ' ' || p[len - 1] == '\t'))
        len--;
    nh = realloc(r->hdr, (r->nhdr + 1) * sizeof(*nh));
    if (!nh)
        return 0;
    r->hdr = nh;
    nh[r->nhdr].name = strndup(p, nl);
    nh[r->nhdr].value = strndup(p + vs, len - vs);
    if (!nh[r->nhdr].name || !nh[r->nhdr].value) {
        free(nh[r->nhdr].name);
        free(nh[r->nhdr].value);
        return 0;
    }
    r->nhdr++;
    return size * n;
}

/* Append header-ish data line by line with a prefix ("> " or "< "). */
static void trace_lines(struct buf *t, const char *prefix, const char *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        size_t e = i;

        while (e < n && p[e] != '\n')
            e++;
        {
            size_t l = e - i;

            if (l && p[i + l - 1] == '\r')
                l--;
            if (l && (buf_appends(t, prefix) != 0 || util_append_clean(t, p + i, l, 4096, 0) != 0 ||
                      buf_appendc(t, '\n') != 0))
                return;
        }
        i = e + 1;
    }
}

static void trace_body(struct buf *t, const char *prefix, const char *p, size_t n, size_t *shown)
{
    size_t room = *shown < HTTP_TRACE_BODY ? HTTP_TRACE_BODY - *shown : 0;
    int rc = 0;

    if (room == 0) {
        *shown += n;
        return;
    }
    rc = buf_appends(t, prefix);
    if (!rc)
        rc = util_append_clean(t, p, n, room, 1);
    if (!rc)
        rc = buf_appendc(t, '\n');
    *shown += n;
    (void)rc;
}

static int on_debug(CURL *h, curl_infotype type, char *p, size_t n, void *ud)
{
    struct xfer *x = ud;
    struct buf *t = &x->resp->trace;

    (void)h;
    switch (type) {
    case CURLINFO_TEXT:
        trace_lines(t, "* ", p, n);
        break;
    case CURLINFO_HEADER_OUT:
        trace_lines(t, "> ", p, n);
        break;
    case CURLINFO_DATA_OUT:
        trace_body(t, "> ", p, n, &x->shown_out);
        break;
    case CURLINFO_HEADER_IN:
        trace_lines(t, "< ", p, n);
        break;
    case CURLINFO_DATA_IN:
        /* A sink's owner traces what it makes of the body (parsed events) itself. */
        if (!x->sink.on_data)
            trace_body(t, "< ", p, n, &x->shown_in);
        break;
    default:
        break;
    }
    return 0;
}

/* ------------------------------------------------------------------ setup */

static int build_headers(const struct http_req *req, struct curl_slist **out)
{
    struct curl_slist *list = NULL, *nl;
    struct buf line;
    size_t i;
    int present, rc = 0;

    buf_init(&line, 64 * 1024);
    for (i = 0; !rc && i < req->nhdr; i++) {
        buf_reset(&line);
        if (!req->hdr[i].value)
            rc = buf_appendf(&line, "%s:", req->hdr[i].name);
        else if (!req->hdr[i].value[0])
            rc = buf_appendf(&line, "%s;", req->hdr[i].name);
        else
            rc = buf_appendf(&line, "%s: %s", req->hdr[i].name, req->hdr[i].value);
        if (rc)
            break;
        nl = curl_slist_append(list, line.data);
        if (!nl)
            rc = -ENOMEM;
        else
            list = nl;
    }
    if (!rc) {
        (void)http_req_header(req, "Expect", &present);
        if (!present) {
            nl = curl_slist_append(list, "Expect:");
            rc = nl ? 0 : -ENOMEM;
            list = nl ? nl : list;
        }
    }
    if (!rc && req->has_body) {
        (void)http_req_header(req, "Content-Type", &present);
        if (!present) {
            nl = curl_slist_append(list, "Content-Type:");
            rc = nl ? 0 : -ENOMEM;
            list = nl ? nl : list;
        }
    }
    buf_cleanup(&line);
    if (rc) {
        curl_slist_free_all(list);
        return rc;
    }
    *out = list;
    return 0;
}

static int setup(CURL *e, struct http_client *c, const struct http_req *req, struct xfer *x,
                 int verbose)
{
    int rc = build_headers(req, &x->list);

    if (rc)
        return rc;
    x->resp->error[0] = '\0';
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     req->connect_timeout_ms ? req->connect_timeout_ms : req->timeout_ms);
    curl_easy_setopt(e, CURLOPT_SHARE, c->share);
    curl_easy_setopt(e, CURLOPT_COOKIEFILE, "");
    curl_easy_setopt(e, CURLOPT_USERAGENT, HTTP_USER_AGENT);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->list);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->resp->error);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    if (verbose) {
        curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, on_debug);
        curl_easy_setopt(e, CURLOPT_DEBUGDATA, x);
        curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
    }
    if (!strcmp(req->method, "HEAD") && !req->has_body) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (!strcmp(req->method, "GET") && !req->has_body) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        if (req->has_body) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body.len);
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body.data ? req->body.data : "");
        }
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
        if (!strcmp(req->method, "HEAD"))
            curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    }
    return 0;
}

/* Fill the result fields once a transfer ended with code. */
static void finish(CURL *e, struct xfer *x, CURLcode code)
{
    struct http_resp *r = x->resp;
    double t = 0;
    long status = 0;

    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(e, CURLINFO_TOTAL_TIME, &t);
    r->elapsed_ms = t * 1000.0;
    r->curl_code = (int)code;
    r->status = code == CURLE_OK ? status : 0;
    if (x->too_big)
        snprintf(r->error, sizeof(r->error), "response body exceeds the %d-byte cap",
                 HTTP_MAX_RESPONSE);
    else if (code != CURLE_OK && !r->error[0])
        snprintf(r->error, sizeof(r->error), "%s", curl_easy_strerror(code));
    if (code == CURLE_OK && x->too_many_headers) {
        r->curl_code = (int)CURLE_RECV_ERROR;
        r->status = 0;
        snprintf(r->error, sizeof(r->error), "more than %d response header lines",
                 HTTP_MAX_HEADERS);
    }
    curl_slist_free_all(x->list);
    x->list = NULL;
}

int http_perform(struct http_client *c, const struct http_req *req, struct http_resp *resp,
                 int verbose)
{
    struct xfer x;
    CURLcode code;
    CURL *e = curl_easy_init();
    int rc;

    if (!e)
        return -ENOMEM;
    memset(&x, 0, sizeof(x));
    x.resp = resp;
    x.easy = e;
    rc = setup(e, c, req, &x, verbose);
    if (rc) {
        curl_easy_cleanup(e);
        return rc;
    }
    code = curl_easy_perform(e);
    finish(e, &x, code);
    curl_easy_cleanup(e);
    return 0;
}

/* ------------------------------------------------------------------ loops */

struct http_loop *http_loop_new(void)
{
    struct http_loop *l = calloc(1, sizeof(*l));

    if (!l)
        return NULL;
    l->m = curl_multi_init();
    if (!l->m) {
        free(l);
        return NULL;
    }
    return l;
}

void http_loop_free(struct http_loop *l)
{
    if (!l)
        return;
    curl_multi_cleanup(l->m);
    free(l);
}

/* Record every finished transfer and take it off the multi handle (its connection goes back
 * to the cache at once). */
static void reap(struct http_loop *l)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(l->m, &left)) != NULL) {
        struct xfer *x = NULL;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        finish(msg->easy_handle, x, msg->data.result);
        x->done = 1;
        curl_multi_remove_handle(l->m, msg->easy_handle);
        x->in_multi = 0;
    }
}

int http_loop_run(struct http_loop *l, long wait_ms)
{
    int running = 0;

    if (curl_multi_perform(l->m, &running) != CURLM_OK)
        return -EIO;
    reap(l);
    if (wait_ms <= 0)
        return 0;
    /* curl_multi_poll also sleeps when nothing runs, so the loop doubles as a clock. */
    if (curl_multi_poll(l->m, NULL, 0, (int)(wait_ms > 60000 ? 60000 : wait_ms), NULL) !=
            CURLM_OK ||
        curl_multi_perform(l->m, &running) != CURLM_OK)
        return -EIO;
    reap(l);
    return 0;
}

int http_async_start(struct http_loop *l, struct http_client *c, const struct http_req *req,
                     struct http_resp *resp, int verbose, const struct http_sink *sink,
                     struct http_async **out)
{
    struct xfer *x = calloc(1, sizeof(*x));
    int rc;

    if (!x)
        return -ENOMEM;
    x->easy = curl_easy_init();
    if (!x->easy) {
        free(x);
        return -ENOMEM;
    }
    x->resp = resp;
    x->loop = l;
    if (sink)
        x->sink = *sink;
    rc = setup(x->easy, c, req, x, verbose);
    if (!rc && curl_multi_add_handle(l->m, x->easy) != CURLM_OK)
        rc = -ENOMEM;
    if (rc) {
        curl_slist_free_all(x->list);
        curl_easy_cleanup(x->easy);
        free(x);
        return rc;
    }
    x->in_multi = 1;
    *out = (struct http_async *)x;
    return 0;
}

long http_async_status(const struct http_async *a)
{
    return ((const struct xfer *)a)->status;
}

int http_async_done(const struct http_async *a)
{
    return ((const struct xfer *)a)->done;
}

void http_async_free(struct http_async *a)
{
    struct xfer *x = (struct xfer *)a;

    if (!x)
        return;
    if (x->in_multi)
        curl_multi_remove_handle(x->loop->m, x->easy);
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->list);
    free(x);
}

int http_perform_on(struct http_loop *l, struct http_client **clients, const struct http_req *reqs,
                    struct http_resp *resps, size_t n, int verbose)
{
    struct http_loop *own = l ? NULL : http_loop_new();
    struct http_async **as = calloc(n ? n : 1, sizeof(*as));
    long longest = 0;
    double deadline;
    int rc = 0;
    size_t i, left;

    l = l ? l : own;
    if (!l || !as) {
        rc = -ENOMEM;
        goto out;
    }
    /* Adding every handle before the next perform is what starts them together. */
    for (i = 0; i < n && !rc; i++) {
        rc = http_async_start(l, clients[i], &reqs[i], &resps[i], verbose, NULL, &as[i]);
        if (reqs[i].timeout_ms > longest)
            longest = reqs[i].timeout_ms;
    }
    if (rc)
        goto out;
    deadline = util_now_ms() + (double)longest + HTTP_PARALLEL_GRACE_MS;
    for (;;) {
        double now;

        for (i = 0, left = 0; i < n; i++)
            left += !http_async_done(as[i]);
        now = util_now_ms();
        if (!left || now >= deadline)
            break;
        if (http_loop_run(l, deadline - now < 100 ? (long)(deadline - now) + 1 : 100) != 0)
            break;
    }
    for (i = 0; i < n; i++) {
        struct xfer *x = (struct xfer *)as[i];

        if (!x->done) {
            snprintf(resps[i].error, sizeof(resps[i].error), "no answer within the deadline");
            finish(x->easy, x, CURLE_OPERATION_TIMEDOUT);
        }
    }
out:
    for (i = 0; as && i < n; i++)
        http_async_free(as[i]);
    free(as);
    http_loop_free(own);
    return rc;
}

int http_perform_parallel(struct http_client **clients, const struct http_req *reqs,
                          struct http_resp *resps, size_t n, int verbose)
{
    return http_perform_on(NULL, clients, reqs, resps, n, verbose);
}

/* ------------------------------------------------------------------ repro */

/* Bodies up to this size that are printable text are pasted inline. */
#define HTTP_REPRO_INLINE 4096

int http_repro(const struct http_req *req, struct buf *out)
{
    int rc = 0, present;
    size_t i;
    struct buf h;
    /*
     * Short one-line text goes inline.  Anything else (control bytes, newlines,
     * invalid UTF-8, a leading '@' that curl would read as a file name) is
     * produced by printf so the command stays on one line.
     */
    int inline_body = req->has_body && req->body.len <= HTTP_REPRO_INLINE && req->body.len > 0 &&
                      req->body.data[0] != '@' && util_is_text(req->body.data, req->body.len) &&
                      !memchr(req->body.data, '\n', req->body.len) &&
                      !memchr(req->body.data, '\r', req->body.len) &&
                      !memchr(req->body.data, '\t', req->body.len);

    buf_init(&h, 64 * 1024);
    if (req->has_body && !inline_body) {
        rc = util_shell_bytes_cmd(out, req->body.data ? req->body.data : "", req->body.len);
        rc = rc ? rc : buf_appends(out, " | ");
    }
    rc = rc ? rc
            : buf_appends(out,
                          req->stream ? "curl -sS -i -N --path-as-is" : "curl -sS -i --path-as-is");
    if (!rc && !strcmp(req->method, "HEAD"))
        rc = buf_appends(out, " --head");
    else if (!rc && (strcmp(req->method, "GET") || req->has_body)) {
        rc = buf_appends(out, " -X ");
        rc = rc ? rc : util_shell_quote(out, req->method, strlen(req->method));
    }
    for (i = 0; !rc && i < req->nhdr; i++) {
        buf_reset(&h);
        if (!req->hdr[i].value)
            rc = buf_appendf(&h, "%s:", req->hdr[i].name);
        else if (!req->hdr[i].value[0])
            rc = buf_appendf(&h, "%s;", req->hdr[i].name);
        else
            rc = buf_appendf(&h, "%s: %s", req->hdr[i].name, req->hdr[i].value);
        rc = rc ? rc : buf_appends(out, " -H ");
        rc = rc ? rc : util_shell_quote(out, h.data, h.len);
    }
    if (!rc && req->has_body) {
        (void)http_req_header(req, "Content-Type", &present);
        if (!present)
            rc = buf_appends(out, " -H 'Content-Type:'");
        (void)http_req_header(req, "Expect", &present);
        if (!rc && !present)
            rc = buf_appends(out, " -H 'Expect:'");
        if (!rc && inline_body) {
            rc = buf_appends(out, " --data-binary ");
            rc = rc ? rc
                    : util_shell_quote(out, req->body.data ? req->body.data : "", req->body.len);
        } else if (!rc) {
            rc = buf_appends(out, " --data-binary @-");
        }
    }
    rc = rc ? rc : buf_appendc(out, ' ');
    rc = rc ? rc : util_shell_quote(out, req->url, strlen(req->url));
    buf_cleanup(&h);
    return rc;
}
