/*
 * http.c - routing, limits, headers, JSON errors, and the libmicrohttpd glue.
 *
 * The request logic (http_handle) knows nothing about sockets; the MHD part at
 * the end of the file only collects a request, calls http_handle and queues
 * the answer.  Order of checks for writes is PROTOCOL.md §5.3, step by step,
 * and every failing check answers before anything changes.
 *
 * Threading: MHD runs with MHD_USE_POLL_INTERNAL_THREAD (plus an optional pool
 * of poll workers).  Not epoll: libmicrohttpd 0.9.75's internal epoll loop can
 * stall with exactly 128 ready sockets (docs/internals/http.md).  Handlers
 * never block on anything but the store and idempotency locks.
 */
#include "http.h"

#include <arpa/inet.h>
#include <math.h>
#include <pthread.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <microhttpd.h>

#include "buf.h"
#include "canon.h"
#include "patch.h"
#include "trace.h"

#define HTTP_ALLOW_ITEM   "GET, HEAD, PUT, PATCH, OPTIONS"
#define HTTP_ALLOW_READ   "GET, HEAD, OPTIONS"
#define HTTP_ALLOW_POST   "POST, OPTIONS"
#define HTTP_MAX_FP_INPUT (HTTP_MAX_BODY * 2 + CANON_MAX_PATH + 64)

struct http_app {
    struct store *store;
    struct idem *idem;
    struct events_hub *events;
    struct presence *presence;
    struct wal *wal;
    /* Held across "take the next event id, queue its log record", so the
     * log sees ids in increasing order whoever takes them (writes under the
     * store lock, presence under presence_lock). */
    pthread_mutex_t seq_lock;
    /* Serializes presence operations with the publication of the counts
     * they change, so count events reach subscribers in the order the
     * changes happened. */
    pthread_mutex_t presence_lock;
    bool no_write;
    char root[4096];
    long long idem_ttl_us;
    double keepalive_s, prune_interval_s, view_ttl_s, edit_ttl_s;
    char origins[HTTP_MAX_ORIGINS + 4][HTTP_MAX_ORIGIN_LEN];
    size_t norigins;
};

/* ------------------------------------------------------------------------
 * Responses
 * ---------------------------------------------------------------------- */

static void resp_header(struct http_response *r, const char *name, const char *value)
{
    if (r->nheaders >= HTTP_MAX_RESP_HEADERS)
        return; /* a programming error; the table is sized for every route */
    snprintf(r->headers[r->nheaders].name, sizeof(r->headers[0].name), "%s", name);
    snprintf(r->headers[r->nheaders].value, sizeof(r->headers[0].value), "%s", value);
    r->nheaders++;
}

static const char *resp_get_header(const struct http_response *r, const char *name)
{
    size_t i;

    for (i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

/* Set a JSON body; takes ownership of obj.  -ENOMEM leaves a bare 500. */
static int resp_json(struct http_response *r, int status, cJSON *obj)
{
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;

    cJSON_Delete(obj);
    if (!text) {
        r->status = 500;
        return -ENOMEM;
    }
    r->status = status;
    r->body = text;
    r->body_len = strlen(text);
    resp_header(r, "Content-Type", "application/json");
    return 0;
}

/* A new error object {"error":code,"message":msg}; NULL on allocation failure. */
static cJSON *err_obj(const char *code, const char *msg)
{
    cJSON *o = cJSON_CreateObject();

    if (!o)
        return NULL;
    if (!cJSON_AddStringToObject(o, "error", code) || !cJSON_AddStringToObject(o, "message", msg)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static int resp_error(struct http_response *r, int status, const char *code, const char *msg)
{
    return resp_json(r, status, err_obj(code, msg));
}

/* An error with one extra string field (parameter, header, path, ...). */
static int resp_error_s(struct http_response *r, int status, const char *code, const char *msg,
                        const char *key, const char *val)
{
    cJSON *o = err_obj(code, msg);

    if (o && !cJSON_AddStringToObject(o, key, val)) {
        cJSON_Delete(o);
        o = NULL;
    }
    return resp_json(r, status, o);
}

/*
 * The one table from error codes to statuses and wire codes, for errors that
 * reach the handler as plain codes (allocation failures, full tables, ...).
 * Validation errors carry their own wire code from the patch module and only
 * need the status; both come from here.
 */
static const struct {
    int err;
    int status;
    const char *code;
} http_err_table[] = {
    {LS_EPARSE, 400, "invalid_json"},
    {LS_ETYPE, 400, "invalid_type"},
    {LS_EVALUE, 400, "invalid_value"},
    {LS_EUNKNOWN, 400, "unknown_field"},
    {LS_EDUP, 400, "duplicate_field"},
    {LS_EPATH, 400, "invalid_path"},
    {LS_ENOTFOUND, 404, "not_found"},
    {LS_ECONFLICT, 409, "version_conflict"},
    {LS_EINFLIGHT, 409, "idempotency_in_flight"},
    {LS_ETOOBIG, 413, "body_too_large"},
    {LS_EREUSED, 422, "idempotency_key_reused"},
    {LS_ETOOMANY, 422, "too_many_tags"},
    {LS_EFULL, 503, "unavailable"},
    {-ENOSPC, 503, "unavailable"},
    {-EIO, 503, "unavailable"},
    {-EDQUOT, 503, "unavailable"},
    {-EPIPE, 503, "unavailable"},
};

static int http_status_for(int err, const char **code)
{
    size_t i;

    for (i = 0; i < sizeof(http_err_table) / sizeof(http_err_table[0]); i++)
        if (http_err_table[i].err == err) {
            *code = http_err_table[i].code;
            return http_err_table[i].status;
        }
    *code = "internal_error";
    return 500;
}

static int resp_from_err(struct http_response *r, int err)
{
    const char *code;
    int status = http_status_for(err, &code);

    TRACE(status >= 500 ? TRACE_ERROR : TRACE_DEBUG, "http", "error %s: %s", ls_err_name(err),
          ls_strerror(err));
    if (err == -ENOSPC || err == -EIO || err == -EPIPE || err == -EDQUOT) {
        char msg[192];

        /* Storage failed before the change was acknowledged: say so plainly;
         * nothing changed, and a retry can succeed once the disk recovers. */
        snprintf(msg, sizeof(msg),
                 "the label log could not be written (%s); nothing was changed; retry later",
                 ls_strerror(err));
        return resp_error(r, status, code, msg);
    }
    return resp_error(r, status, code,
                      status >= 500 ? "the server could not complete the request"
                                    : ls_strerror(err));
}

void http_response_cleanup(struct http_response *resp)
{
    if (!resp)
        return;
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}

/* ------------------------------------------------------------------------
 * Request helpers
 * ---------------------------------------------------------------------- */

#define HTTP_MAX_HEADER_VALUE 1024

/*
 * The value of a header, NULL if absent.  Several field lines of one name are
 * joined with ", " (RFC 9110 §5.3, PROTOCOL R5.1-4) into buf, which holds
 * HTTP_MAX_HEADER_VALUE bytes; *toolong is set when the joined value does not
 * fit (every header this server reads has a much smaller limit, so such a
 * value is invalid anyway).  A single line is returned without copying.
 */
static const char *req_header(const struct http_request *q, const char *name, char *buf,
                              size_t *len, bool *toolong)
{
    const char *first = NULL;
    size_t i, n = 0, firstlen = 0, count = 0;

    *toolong = false;
    for (i = 0; i < q->nheaders; i++) {
        const char *v = q->headers[i].value ? q->headers[i].value : "";
        size_t vl = q->headers[i].value ? q->headers[i].value_len : 0;

        if (strcasecmp(q->headers[i].name, name) != 0)
            continue;
        if (count++ == 0) {
            first = v;
            firstlen = vl;
            continue;
        }
        if (count == 2) {
            if (firstlen >= HTTP_MAX_HEADER_VALUE) {
                *toolong = true;
                break;
            }
            memcpy(buf, first, firstlen);
            n = firstlen;
        }
        if (n + 2 + vl >= HTTP_MAX_HEADER_VALUE) {
            *toolong = true;
            break;
        }
        memcpy(buf + n, ", ", 2);
        memcpy(buf + n + 2, v, vl);
        n += 2 + vl;
    }
    if (count == 0)
        return NULL;
    if (count == 1 || *toolong) {
        *len = firstlen;
        return first;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Optional header counted as absent when empty after trimming blanks. */
static bool trim_ows(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t'))
        (*s)++, (*n)--;
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
    return *n > 0;
}

enum qp_result { QP_OK, QP_MISSING, QP_DUP, QP_BAD };

/*
 * Find query parameter name (names are form-decoded before comparing) and
 * decode its value into out (CANON_MAX_INPUT + 1 bytes).  An over-long value
 * is reported as QP_BAD with CANON_TOO_LONG, before any decoding work.
 */
static enum qp_result req_query(const struct http_request *q, const char *name, char *out,
                                size_t *outlen, enum canon_reason *why)
{
    const struct http_kv *hit = NULL;
    size_t i;

    for (i = 0; i < q->nquery; i++) {
        char kbuf[64];
        size_t klen = 0, kin = strlen(q->query[i].name);
        enum canon_reason kwhy;

        if (kin >= sizeof(kbuf) ||
            canon_form_decode(q->query[i].name, kin, kbuf, sizeof(kbuf), &klen, &kwhy) != 0)
            continue;
        if (klen != strlen(name) || memcmp(kbuf, name, klen) != 0)
            continue;
        if (hit)
            return QP_DUP;
        hit = &q->query[i];
    }
    if (!hit)
        return QP_MISSING;
    if (!hit->value) {
        out[0] = '\0';
        *outlen = 0;
        return QP_OK;
    }
    /* Decoding never grows; anything longer than 3x the cap decodes too long. */
    if (hit->value_len > CANON_MAX_INPUT * 3) {
        *why = CANON_TOO_LONG;
        return QP_BAD;
    }
    {
        char tmp[CANON_MAX_INPUT * 3 + 1];

        if (canon_form_decode(hit->value, hit->value_len, tmp, sizeof(tmp), outlen, why) != 0)
            return QP_BAD;
        if (*outlen > CANON_MAX_INPUT) {
            *why = CANON_TOO_LONG;
            return QP_BAD;
        }
        memcpy(out, tmp, *outlen);
        out[*outlen] = '\0';
    }
    return QP_OK;
}

/*
 * Resolve the `path` parameter to a canonical path.  Answers 400 itself and
 * returns false when the parameter is missing (unless dflt), repeated or bad.
 */
static bool req_path(const struct http_request *q, struct http_response *r, const char *dflt,
                     char *canon, size_t *clen)
{
    char raw[CANON_MAX_INPUT + 1];
    size_t rlen = 0;
    enum canon_reason why = CANON_OK;
    enum qp_result qr = req_query(q, "path", raw, &rlen, &why);
    cJSON *o;

    if (qr == QP_MISSING && dflt) {
        snprintf(canon, CANON_MAX_PATH + 1, "%s", dflt);
        *clen = strlen(canon);
        return true;
    }
    if (qr == QP_MISSING) {
        resp_error_s(r, 400, "missing_parameter", "the query parameter 'path' is required",
                     "parameter", "path");
        return false;
    }
    if (qr == QP_DUP) {
        resp_error_s(r, 400, "duplicate_parameter",
                     "the query parameter 'path' must be given only once", "parameter", "path");
        return false;
    }
    if (qr == QP_OK && canon_path(raw, rlen, canon, clen, &why) == 0)
        return true;
    o = err_obj("invalid_path", "the path is not acceptable; see 'reason'");
    if (o && (!cJSON_AddStringToObject(o, "parameter", "path") ||
              !cJSON_AddStringToObject(o, "reason", canon_reason_name(why)))) {
        cJSON_Delete(o);
        o = NULL;
    }
    resp_json(r, 400, o);
    return false;
}

/*
 * Parse a version number: decimal digits, no sign, no leading zero, at most
 * 2^53-1.  "0" itself is accepted: it is well-formed in If-Match and simply
 * never matches (PROTOCOL R5.1-2).
 */
static bool parse_version(const char *s, size_t n, unsigned long long *out)
{
    unsigned long long v = 0;
    size_t i;

    if (n == 0 || n > 16 || (s[0] == '0' && n > 1))
        return false;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned long long)(s[i] - '0');
    }
    if (v > PATCH_MAX_VERSION)
        return false;
    *out = v;
    return true;
}

/* If-Match: N or "N", blanks around ignored. */
static bool parse_if_match(const char *s, size_t n, unsigned long long *out)
{
    if (!trim_ows(&s, &n))
        return false;
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s++;
        n -= 2;
    }
    return parse_version(s, n, out);
}

/*
 * If-None-Match (RFC 9110 §13.1.2, PROTOCOL R4-4): "*" or a comma-separated
 * list of entity tags, compared weakly, so "3" and W/"3" both match version 3.
 * A malformed list is ignored (no match).
 */
static bool if_none_match_hits(const char *s, size_t n, unsigned long long version)
{
    const char *end;
    bool hit = false;

    if (!trim_ows(&s, &n))
        return false;
    if (n == 1 && s[0] == '*')
        return true;
    end = s + n;
    while (s < end) {
        const char *q;
        unsigned long long v;

        while (s < end && (*s == ' ' || *s == '\t'))
            s++;
        if (end - s >= 2 && s[0] == 'W' && s[1] == '/')
            s += 2;
        if (s >= end || *s != '"')
            return false;
        q = memchr(s + 1, '"', (size_t)(end - s - 1));
        if (!q)
            return false;
        if (parse_version(s + 1, (size_t)(q - s - 1), &v) && v == version)
            hit = true;
        s = q + 1;
        while (s < end && (*s == ' ' || *s == '\t'))
            s++;
        if (s < end && *s++ != ',')
            return false;
    }
    return hit;
}

/* Idempotency-Key: 1..255 visible ASCII, or the same inside an sf-string. */
static bool parse_idem_key(const char *s, size_t n, char *out)
{
    size_t i;

    if (!trim_ows(&s, &n))
        return false;
    if (s[0] == '"') {
        if (n < 3 || s[n - 1] != '"')
            return false;
        s++;
        n -= 2;
        for (i = 0; i < n; i++)
            if (s[i] == '"' || s[i] == '\\')
                return false;
    }
    if (n == 0 || n > IDEM_MAX_KEY)
        return false;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

/* Content-Type must be application/json; a charset parameter must be utf-8. */
static bool content_type_ok(const char *s, size_t n)
{
    static const char want[] = "application/json";
    const char *p, *end = s + n;

    if (!trim_ows(&s, &n))
        return false;
    end = s + n;
    if (n < sizeof(want) - 1 || strncasecmp(s, want, sizeof(want) - 1) != 0)
        return false;
    p = s + sizeof(want) - 1;
    while (p < end) {
        const char *semi, *eq, *name, *val;
        size_t nlen, vlen;

        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p == end)
            break;
        if (*p != ';')
            return false;
        p++;
        semi = memchr(p, ';', (size_t)(end - p));
        if (!semi)
            semi = end;
        eq = memchr(p, '=', (size_t)(semi - p));
        if (!eq)
            return false;
        name = p;
        nlen = (size_t)(eq - p);
        val = eq + 1;
        vlen = (size_t)(semi - val);
        trim_ows(&name, &nlen);
        trim_ows(&val, &vlen);
        if (vlen >= 2 && val[0] == '"' && val[vlen - 1] == '"')
            val++, vlen -= 2;
        if (nlen == 7 && strncasecmp(name, "charset", 7) == 0 &&
            !(vlen == 5 && strncasecmp(val, "utf-8", 5) == 0))
            return false;
        p = semi;
    }
    return true;
}

/*
 * Normalize an origin "scheme://host[:port]" to "scheme://host:port" with
 * scheme and host lower-cased and the default port filled in.  false when it
 * is not a usable http(s) origin (including "null").
 */
static bool origin_normalize(const char *s, size_t n, char *out, size_t outcap)
{
    char scheme[8], host[HTTP_MAX_ORIGIN_LEN];
    const char *p, *end, *hs, *he, *colon = NULL;
    unsigned long port;
    size_t i, hl;

    if (!trim_ows(&s, &n) || n >= HTTP_MAX_ORIGIN_LEN)
        return false;
    end = s + n;
    if (n > 7 && strncasecmp(s, "http://", 7) == 0) {
        snprintf(scheme, sizeof(scheme), "http");
        port = 80;
        p = s + 7;
    } else if (n > 8 && strncasecmp(s, "https://", 8) == 0) {
        snprintf(scheme, sizeof(scheme), "https");
        port = 443;
        p = s + 8;
    } else {
        return false;
    }
    hs = p;
    if (*p == '[') {
        he = memchr(p, ']', (size_t)(end - p));
        if (!he)
            return false;
        he++;
        if (he < end && *he == ':')
            colon = he;
        else if (he != end)
            return false;
    } else {
        he = p;
        while (he < end && *he != ':' && *he != '/')
            he++;
        if (he < end && *he == ':')
            colon = he;
        else if (he != end)
            return false;
    }
    hl = (size_t)(he - hs);
    if (hl == 0 || hl >= sizeof(host))
        return false;
    for (i = 0; i < hl; i++) {
        unsigned char c = (unsigned char)hs[i];

        if (c <= 0x20 || c >= 0x7f || c == '@' || c == '/')
            return false;
        host[i] = (char)tolower(c);
    }
    host[hl] = '\0';
    if (colon) {
        const char *d = colon + 1;

        if (d == end || end - d > 5)
            return false;
        port = 0;
        for (; d < end; d++) {
            if (*d < '0' || *d > '9')
                return false;
            port = port * 10 + (unsigned long)(*d - '0');
        }
        if (port == 0 || port > 65535)
            return false;
    }
    return (size_t)snprintf(out, outcap, "%s://%s:%lu", scheme, host, port) < outcap;
}

static bool origin_allowed(const struct http_app *app, const char *s, size_t n)
{
    char norm[HTTP_MAX_ORIGIN_LEN];
    size_t i;

    if (!origin_normalize(s, n, norm, sizeof(norm)))
        return false;
    for (i = 0; i < app->norigins; i++)
        if (strcmp(app->origins[i], norm) == 0)
            return true;
    return false;
}

/* ------------------------------------------------------------------------
 * Exported parsers (http.h): thin wrappers, so the request path and the
 * fuzz targets run the very same code.
 * ---------------------------------------------------------------------- */

bool http_parse_if_match(const char *s, size_t n, unsigned long long *out)
{
    return parse_if_match(s, n, out);
}

bool http_if_none_match_hits(const char *s, size_t n, unsigned long long version)
{
    return if_none_match_hits(s, n, version);
}

bool http_parse_idempotency_key(const char *s, size_t n, char *out)
{
    return parse_idem_key(s, n, out);
}

static void parse_resume(const char *v, size_t n, struct events_sub_opts *o);

int http_parse_last_event_id(const char *s, size_t n, unsigned long long *out)
{
    struct events_sub_opts o;

    /* As handle_events: an empty header is absent, anything else a cursor. */
    if (!trim_ows(&s, &n))
        return 0;
    memset(&o, 0, sizeof(o));
    parse_resume(s, n, &o);
    if (o.last_invalid)
        return -1;
    *out = o.last_id;
    return 1;
}

int http_query_param(const struct http_kv *query, size_t nquery, const char *name, char *out,
                     size_t *outlen, enum canon_reason *why)
{
    struct http_request q;

    memset(&q, 0, sizeof(q));
    q.query = query;
    q.nquery = nquery;
    switch (req_query(&q, name, out, outlen, why)) {
    case QP_OK:
        return 0;
    case QP_MISSING:
        return LS_ENOTFOUND;
    case QP_DUP:
        return LS_EDUP;
    case QP_BAD:
    default:
        return LS_EPATH;
    }
}

bool http_normalize_origin(const char *s, size_t n, char *out, size_t outcap)
{
    return origin_normalize(s, n, out, outcap);
}

/* Wall-clock time: the updated_at of records. */
static long long now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Monotonic time: idempotency retention must not jump with the wall clock (R6.6-1). */
static long long mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ------------------------------------------------------------------------
 * Item routes
 * ---------------------------------------------------------------------- */

static void set_etag(struct http_response *r, unsigned long long version)
{
    char etag[32];

    snprintf(etag, sizeof(etag), "\"%llu\"", version);
    resp_header(r, "ETag", etag);
}

static int item_not_found(struct http_response *r, const char *path)
{
    return resp_error_s(r, 404, "item_not_found", "no item has this path", "path", path);
}

static int handle_item_get(struct http_app *app, const struct http_request *q,
                           struct http_response *r)
{
    char path[CANON_MAX_PATH + 1], hbuf[HTTP_MAX_HEADER_VALUE];
    struct store_record rec;
    const char *inm;
    size_t plen = 0, inmlen = 0;
    bool toolong = false;
    int rc;

    if (!req_path(q, r, NULL, path, &plen))
        return 0;
    rc = store_get(app->store, path, &rec);
    if (rc == LS_ENOTFOUND)
        return item_not_found(r, path);
    if (rc)
        return resp_from_err(r, rc);
    inm = req_header(q, "If-None-Match", hbuf, &inmlen, &toolong);
    if (inm && !toolong && if_none_match_hits(inm, inmlen, rec.version)) {
        r->status = 304;
        set_etag(r, rec.version);
        store_record_cleanup(&rec);
        return 0;
    }
    set_etag(r, rec.version);
    rc = resp_json(r, 200, store_record_to_json(&rec));
    store_record_cleanup(&rec);
    return rc;
}

/* The checks of PROTOCOL §5.3 steps 3-4 shared by PUT and PATCH. */
static bool check_body_preconditions(const struct http_request *q, struct http_response *r,
                                     bool is_patch)
{
    char hbuf[HTTP_MAX_HEADER_VALUE];
    size_t ctlen = 0;
    bool dup = false;
    const char *ct = req_header(q, "Content-Type", hbuf, &ctlen, &dup);
    cJSON *o;

    if (!ct || dup || !content_type_ok(ct, ctlen)) {
        if (is_patch)
            resp_header(r, "Accept-Patch", "application/json");
        resp_error(r, 415, "unsupported_media_type",
                   "the body must be JSON sent as 'Content-Type: application/json'");
        return false;
    }
    if (q->body_too_large || q->body_len > HTTP_MAX_BODY) {
        o = err_obj("body_too_large", "the request body exceeds the limit");
        if (o && !cJSON_AddNumberToObject(o, "limit", HTTP_MAX_BODY)) {
            cJSON_Delete(o);
            o = NULL;
        }
        resp_json(r, 413, o);
        return false;
    }
    return true;
}

struct write_headers {
    bool has_key;
    char key[IDEM_MAX_KEY + 1];
    bool has_if_match;
    unsigned long long if_match;
    char client[HTTP_MAX_CLIENT_ID + 1];
    char actor[HTTP_MAX_UPDATED_BY + 1];
};

static bool header_bad(struct http_response *r, const char *name, const char *msg)
{
    resp_error_s(r, 400, "invalid_header", msg, "header", name);
    return false;
}

/* Step 6: Idempotency-Key, If-Match, X-Client-Id, X-Updated-By. */
static bool parse_write_headers(const struct http_request *q, struct http_response *r,
                                bool key_required, struct write_headers *h)
{
    char hbuf[HTTP_MAX_HEADER_VALUE];
    const char *v;
    size_t n = 0;
    bool dup = false;

    memset(h, 0, sizeof(*h));
    v = req_header(q, "Idempotency-Key", hbuf, &n, &dup);
    if (v && dup) {
        resp_error(r, 400, "invalid_idempotency_key", "Idempotency-Key must be sent once");
        return false;
    }
    if (v && trim_ows(&v, &n)) {
        if (!parse_idem_key(v, n, h->key)) {
            resp_error(r, 400, "invalid_idempotency_key",
                       "Idempotency-Key must be 1 to 255 visible ASCII characters, optionally "
                       "in double quotes");
            return false;
        }
        h->has_key = true;
    } else if (key_required) {
        resp_error(r, 400, "missing_idempotency_key", "the Idempotency-Key header is required");
        return false;
    }
    v = req_header(q, "If-Match", hbuf, &n, &dup);
    if (v && (dup || !parse_if_match(v, n, &h->if_match))) {
        resp_error(r, 400, "invalid_if_match",
                   "If-Match must be one version number, bare or in double quotes");
        return false;
    }
    h->has_if_match = v != NULL;
    v = req_header(q, "X-Client-Id", hbuf, &n, &dup);
    if (v && trim_ows(&v, &n)) {
        size_t i;

        if (dup || n > HTTP_MAX_CLIENT_ID)
            return header_bad(r, "X-Client-Id",
                              "X-Client-Id must be sent once, 1 to 128 visible ASCII characters");
        for (i = 0; i < n; i++)
            if ((unsigned char)v[i] < 0x21 || (unsigned char)v[i] > 0x7e)
                return header_bad(r, "X-Client-Id",
                                  "X-Client-Id must be 1 to 128 visible ASCII characters");
        memcpy(h->client, v, n);
        h->client[n] = '\0';
    }
    v = req_header(q, "X-Updated-By", hbuf, &n, &dup);
    if (v && trim_ows(&v, &n)) {
        if (dup || n > HTTP_MAX_UPDATED_BY || !canon_utf8_valid(v, n) || canon_has_control(v, n))
            return header_bad(r, "X-Updated-By",
                              "X-Updated-By must be sent once, 1 to 128 bytes of UTF-8 without "
                              "control characters");
        memcpy(h->actor, v, n);
        h->actor[n] = '\0';
    } else if (h->client[0]) {
        memcpy(h->actor, h->client, sizeof(h->actor));
    } else {
        snprintf(h->actor, sizeof(h->actor), "anonymous");
    }
    return true;
}

static int resp_patch_error(struct http_response *r, int rc, const struct patch_error *pe)
{
    const char *code;
    int status = http_status_for(rc, &code);
    cJSON *o;

    if (status >= 500 || !pe->code)
        return resp_from_err(r, rc);
    o = err_obj(pe->code, pe->message[0] ? pe->message : ls_strerror(rc));
    if (!o)
        return resp_json(r, 500, NULL);
    if (strcmp(pe->code, "invalid_json") == 0) {
        if (!cJSON_AddNumberToObject(o, "offset", (double)pe->offset))
            goto fail;
    } else {
        if (!cJSON_AddStringToObject(o, "pointer", pe->pointer))
            goto fail;
        if (strcmp(pe->code, "unknown_field") == 0 &&
            !cJSON_AddStringToObject(o, "field", pe->field))
            goto fail;
        if (strcmp(pe->code, "invalid_type") == 0 && pe->expected &&
            !cJSON_AddStringToObject(o, "expected", pe->expected))
            goto fail;
    }
    return resp_json(r, status, o);
fail:
    cJSON_Delete(o);
    return resp_json(r, 500, NULL);
}

/* Add "mutation_id", "changed_fields" and "event_id" (null when seq is 0). */
static bool add_mutation_fields(cJSON *o, const char *key, unsigned changed, unsigned long long seq)
{
    static const char *const names[] = {"tags", "notes", "star", "metrics"};
    static const unsigned bits[] = {PATCH_CHANGED_TAGS, PATCH_CHANGED_NOTES, PATCH_CHANGED_STAR,
                                    PATCH_CHANGED_METRICS};
    cJSON *arr;
    char num[24];
    size_t i;

    if (key ? !cJSON_AddStringToObject(o, "mutation_id", key)
            : !cJSON_AddNullToObject(o, "mutation_id"))
        return false;
    arr = cJSON_AddArrayToObject(o, "changed_fields");
    if (!arr)
        return false;
    for (i = 0; i < 4; i++)
        if ((changed & bits[i]) && !cJSON_AddItemToArray(arr, cJSON_CreateString(names[i])))
            return false;
    snprintf(num, sizeof(num), "%llu", seq); /* raw: exact above 2^31 */
    return seq ? cJSON_AddRawToObject(o, "event_id", num) != NULL
               : cJSON_AddNullToObject(o, "event_id") != NULL;
}

char *http_write_body(const struct store_record *rec, const char *key, unsigned changed,
                      unsigned long long seq)
{
    cJSON *o = cJSON_CreateObject(), *item = store_record_to_json(rec);
    char *text = NULL;

    if (o && item && cJSON_AddItemToObject(o, "item", item)) {
        item = NULL;
        if (add_mutation_fields(o, key, changed, seq))
            text = cJSON_PrintUnformatted(o);
    }
    cJSON_Delete(item);
    cJSON_Delete(o);
    return text;
}

/* The PATCH/PUT success wrapper (PROTOCOL §5.7). */
static cJSON *write_body(const struct store_result *res, const char *key)
{
    cJSON *o = cJSON_CreateObject(), *item;

    if (!o)
        return NULL;
    item = store_record_to_json(&res->rec);
    if (!item || !cJSON_AddItemToObject(o, "item", item)) {
        cJSON_Delete(item);
        goto fail;
    }
    if (!add_mutation_fields(o, key, res->outcome == STORE_APPLIED ? res->changed : 0,
                             res->outcome == STORE_APPLIED ? res->seq : 0))
        goto fail;
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

/*
 * The commit hooks (store.h).  prepare runs under the store lock: it takes
 * the next event id (so ids follow commit order) and builds the event.
 * finish runs once the record is visible and commits the event, or cancels
 * the id when the write was abandoned.  A reader that reacts to the event
 * always sees the new record.  A write that changed only metrics is a
 * metrics-updated event (PROTOCOL §15).
 */
struct commit_ticket {
    unsigned long long id;
    bool metrics_only;
    char *text;
    struct wal_ticket *wt; /* the queued log record, until waited for */
};

static int app_prepare(void *ctx, const struct store_write *w, const struct store_record *next,
                       unsigned changed, unsigned long long *seq, void **ticket)
{
    struct http_app *app = ctx;
    struct commit_ticket *t;
    cJSON *o;
    int rc;

    *ticket = NULL;
    if (!app->events)
        return 0; /* no hub: the store numbers commits itself */
    t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    pthread_mutex_lock(&app->seq_lock);
    rc = events_reserve(app->events, &t->id);
    if (rc) {
        pthread_mutex_unlock(&app->seq_lock);
        free(t);
        return rc;
    }
    t->metrics_only = changed == PATCH_CHANGED_METRICS;
    o = store_record_to_json(next);
    if (o && t->metrics_only) {
        cJSON_DeleteItemFromObjectCaseSensitive(o, "tags");
        cJSON_DeleteItemFromObjectCaseSensitive(o, "notes");
        cJSON_DeleteItemFromObjectCaseSensitive(o, "star");
    }
    t->text = o && add_mutation_fields(o, w->mutation_id, changed, t->id)
                  ? cJSON_PrintUnformatted(o)
                  : NULL;
    cJSON_Delete(o);
    rc = t->text ? 0 : -ENOMEM;
    if (!rc && app->wal) {
        struct buf line;

        /* The log record carries the idempotency key and fingerprint, so
         * the stored 200 survives a restart with the change it describes. */
        buf_init(&line, WAL_MAX_LINE + 2);
        rc = wal_format_item(&line, t->id, next, w->mutation_id, changed,
                             w->mutation_id ? w->idem_scope : NULL, w->mutation_id,
                             w->mutation_id ? w->idem_fp : NULL);
        if (!rc)
            rc = wal_submit(app->wal, line.data, line.len, t->id, &t->wt);
        buf_cleanup(&line);
    }
    pthread_mutex_unlock(&app->seq_lock);
    if (rc) {
        events_cancel(app->events, t->id);
        free(t->text);
        free(t);
        return rc;
    }
    *seq = t->id;
    *ticket = t;
    return 0;
}

/* Outside the store lock: until the record is on disk (PROTOCOL §17). */
static int app_wait(void *ctx, void *ticket)
{
    struct http_app *app = ctx;
    struct commit_ticket *t = ticket;
    int rc;

    if (!t || !t->wt)
        return 0;
    rc = wal_wait(app->wal, t->wt);
    t->wt = NULL;
    return rc;
}

static void app_finish(void *ctx, void *ticket, const struct store_record *rec, bool ok)
{
    struct http_app *app = ctx;
    struct commit_ticket *t = ticket;

    if (!t)
        return;
    if (!ok)
        events_cancel(app->events, t->id);
    else if (events_commit(app->events, t->id, t->metrics_only ? "metrics-updated" : "item-updated",
                           rec->path, false, t->text, strlen(t->text)) != 0)
        TRACE_E("events", "event %llu of %s could not be published", t->id, rec->path);
    free(t->text);
    free(t);
}

/*
 * Publish one presence event per changed gallery (already sorted).  With a
 * log, each event's id is logged first (a state-less record), so ids stay
 * unique across restarts; the event goes out once that record is durable.
 */
static void publish_presence(struct http_app *app, struct presence_changes *ch)
{
    size_t i;

    for (i = 0; app->events && i < ch->n; i++) {
        const struct presence_count *c = &ch->items[i];
        struct wal_ticket *wt = NULL;
        unsigned long long id;
        cJSON *o = cJSON_CreateObject();
        char *text = NULL;
        int rc;

        if (!o || !cJSON_AddStringToObject(o, "gallery_id", c->gallery_id) ||
            !cJSON_AddNumberToObject(o, "viewing", c->viewing) ||
            !cJSON_AddNumberToObject(o, "editing", c->editing) ||
            !(text = cJSON_PrintUnformatted(o))) {
            cJSON_Delete(o);
            TRACE_E("presence", "cannot build a presence event: out of memory");
            continue;
        }
        cJSON_Delete(o);
        pthread_mutex_lock(&app->seq_lock);
        rc = events_reserve(app->events, &id);
        if (!rc && app->wal) {
            struct buf line;

            buf_init(&line, WAL_MAX_LINE + 2);
            rc = wal_format_presence(&line, id, c->gallery_id, c->viewing, c->editing);
            if (!rc)
                rc = wal_submit(app->wal, line.data, line.len, id, &wt);
            if (rc)
                events_cancel(app->events, id);
            buf_cleanup(&line);
        }
        pthread_mutex_unlock(&app->seq_lock);
        if (!rc && wt && (rc = wal_wait(app->wal, wt)) != 0)
            events_cancel(app->events, id);
        if (!rc)
            rc =
                events_commit(app->events, id, "presence", c->gallery_id, true, text, strlen(text));
        if (rc)
            TRACE_E("presence", "presence of %s not published: %s", c->gallery_id, ls_strerror(rc));
        free(text);
    }
}

/* A write answered 200 marks its client as editing (PROTOCOL §16). */
static void touch_edit(struct http_app *app, const char *client)
{
    struct presence_changes ch;

    if (!app->presence || !client[0])
        return;
    memset(&ch, 0, sizeof(ch));
    pthread_mutex_lock(&app->presence_lock);
    if (presence_touch_edit(app->presence, client, mono_us(), &ch) == 0)
        publish_presence(app, &ch);
    pthread_mutex_unlock(&app->presence_lock);
    presence_changes_cleanup(&ch);
}

/* The request fingerprint of PROTOCOL §6.2. */
static int fingerprint(const char *method, const char *path, bool has_expected,
                       unsigned long long expected, const struct patch *p, enum patch_kind kind,
                       unsigned char fp[IDEM_FP_LEN])
{
    struct buf b;
    int rc;

    buf_init(&b, HTTP_MAX_FP_INPUT);
    rc = buf_appendf(&b, "%s\n%s\n", method, path);
    if (!rc)
        rc = has_expected ? buf_appendf(&b, "%llu\n", expected) : buf_appends(&b, "-\n");
    if (!rc)
        rc = patch_serialize(p, kind, &b);
    if (!rc)
        idem_sha256(b.data, b.len, fp);
    buf_cleanup(&b);
    return rc;
}

static int handle_item_write(struct http_app *app, const struct http_request *q,
                             struct http_response *r, bool is_patch)
{
    char path[CANON_MAX_PATH + 1];
    struct write_headers h;
    struct patch p;
    struct patch_error pe;
    struct store_write w;
    struct store_result res;
    unsigned char fp[IDEM_FP_LEN];
    enum idem_verdict verdict = IDEM_PROCEED;
    struct idem_response replay;
    enum patch_kind kind = is_patch ? PATCH_KIND_PATCH : PATCH_KIND_PUT;
    bool reserved = false;
    size_t plen = 0;
    cJSON *o = NULL;
    int rc = 0;

    memset(&p, 0, sizeof(p));
    memset(&res, 0, sizeof(res));
    memset(&pe, 0, sizeof(pe));
    /* Steps 3-4: media type and size. */
    if (!check_body_preconditions(q, r, is_patch))
        return 0;
    /* Step 5: the path. */
    if (!req_path(q, r, NULL, path, &plen))
        return 0;
    /* Step 6: headers. */
    if (!parse_write_headers(q, r, is_patch, &h))
        return 0;
    /* Step 7: the body. */
    rc = patch_parse(kind, q->body ? q->body : "", q->body_len, &p, &pe);
    if (rc)
        return resp_patch_error(r, rc, &pe);
    /* Step 8: the expected version. */
    memset(&w, 0, sizeof(w));
    if (h.has_if_match && (p.has & PATCH_F_BASE_VERSION) && h.if_match != p.base_version) {
        resp_error(r, 400, "version_mismatch", "If-Match and base_version disagree");
        goto out;
    }
    if (h.has_if_match) {
        w.has_expected = true;
        w.expected = h.if_match;
    } else if (p.has & PATCH_F_BASE_VERSION) {
        w.has_expected = true;
        w.expected = p.base_version;
    } else if (is_patch) {
        resp_error(r, 400, "missing_base_version",
                   "a PATCH needs base_version in the body or an If-Match header");
        goto out;
    }
    /* Step 9: idempotency. */
    if (h.has_key) {
        rc = fingerprint(q->method, path, w.has_expected, w.expected, &p, kind, fp);
        if (!rc)
            rc = idem_begin(app->idem, h.client, h.key, fp, mono_us(), &verdict, &replay);
        if (rc) {
            resp_from_err(r, rc);
            goto out;
        }
        switch (verdict) {
        case IDEM_REPLAY:
            r->status = replay.status;
            r->body = replay.body;
            r->body_len = replay.body_len;
            replay.body = NULL;
            resp_header(r, "Content-Type", "application/json");
            /* Outcomes restored from the log carry the ETag of their
             * version; a PUT never sends one (RFC 9110 §9.3.4), and the
             * fingerprint guarantees the original was a PUT too. */
            if (replay.etag && is_patch)
                resp_header(r, "ETag", replay.etag);
            resp_header(r, "Idempotent-Replayed", "true");
            idem_response_cleanup(&replay);
            goto out;
        case IDEM_MISMATCH:
            resp_error(r, 422, "idempotency_key_reused",
                       "this Idempotency-Key was already used for a different request");
            goto out;
        case IDEM_IN_FLIGHT:
            resp_error(r, 409, "idempotency_in_flight",
                       "a request with this Idempotency-Key is still being processed");
            goto out;
        case IDEM_PROCEED:
        default:
            reserved = true;
            break;
        }
    }
    /* Steps 10-13: existence, precondition, apply, commit. */
    w.path = path;
    w.patch = &p;
    w.actor = h.actor;
    w.now_us = now_us();
    w.mutation_id = h.has_key ? h.key : NULL;
    w.idem_scope = h.client;
    w.idem_fp = h.has_key ? fp : NULL;
    rc = store_write(app->store, &w, &res);
    if (rc) {
        resp_from_err(r, rc);
        goto out;
    }
    switch (res.outcome) {
    case STORE_NOT_FOUND:
        item_not_found(r, path);
        goto out; /* not stored: the reservation is dropped below */
    case STORE_CONFLICT:
        o = err_obj("version_conflict", "the item changed since base_version; see 'current'");
        if (o && !cJSON_AddItemToObject(o, "current", store_record_to_json(&res.rec))) {
            cJSON_Delete(o);
            o = NULL;
        }
        resp_json(r, 409, o);
        break;
    case STORE_TOO_MANY_TAGS:
        o = err_obj("too_many_tags", "the item would carry more tags than the limit");
        if (o && !cJSON_AddNumberToObject(o, "limit", PATCH_MAX_TAGS_ITEM)) {
            cJSON_Delete(o);
            o = NULL;
        }
        resp_json(r, 422, o);
        break;
    case STORE_APPLIED:
    case STORE_NOOP:
    default:
        if (is_patch)
            set_etag(r, res.rec.version);
        resp_json(r, 200, write_body(&res, h.has_key ? h.key : NULL));
        touch_edit(app, h.client);
        break;
    }
    if (reserved && r->body && r->status != 500 && app->wal && res.outcome != STORE_APPLIED) {
        /* An outcome that changed nothing is logged on its own, and the
         * answer waits for it: after a restart the same key must still get
         * the same answer (PROTOCOL §6.6).  An applied write's log record
         * already carries its key. */
        struct wal_idem wi;
        struct wal_ticket *wt = NULL;
        struct buf line;

        memset(&wi, 0, sizeof(wi));
        wi.scope = h.client;
        wi.key = h.key;
        memcpy(wi.fp, fp, IDEM_FP_LEN);
        wi.status = r->status;
        wi.etag = resp_get_header(r, "ETag");
        wi.body = r->body;
        wi.body_len = r->body_len;
        wi.stored_at_us = now_us();
        buf_init(&line, WAL_MAX_LINE + 2);
        rc = wal_format_idem(&line, &wi);
        if (!rc)
            rc = wal_submit(app->wal, line.data, line.len, 0, &wt);
        buf_cleanup(&line);
        if (!rc)
            rc = wal_wait(app->wal, wt);
        if (rc) {
            http_response_cleanup(r);
            memset(r, 0, sizeof(*r));
            resp_from_err(r, rc);
            goto out; /* not stored: the reservation is dropped below */
        }
    }
    if (reserved && r->body && r->status != 500) {
        rc = idem_complete(app->idem, h.client, h.key, r->status, r->body, r->body_len,
                           resp_get_header(r, "ETag"), mono_us());
        if (rc)
            TRACE_W("http", "idempotency result not stored: %s", ls_strerror(rc));
        reserved = false;
    }
out:
    if (reserved)
        idem_cancel(app->idem, h.client, h.key);
    store_result_cleanup(&res);
    patch_cleanup(&p);
    return 0;
}

/* ------------------------------------------------------------------------
 * Folders and health
 * ---------------------------------------------------------------------- */

static int handle_folders(struct http_app *app, const struct http_request *q,
                          struct http_response *r)
{
    char path[CANON_MAX_PATH + 1];
    struct store_folder f;
    cJSON *o, *fa, *ia;
    size_t plen = 0, i;
    int rc;

    if (!req_path(q, r, "/", path, &plen))
        return 0;
    rc = store_list_folder(app->store, path, &f);
    if (rc == LS_ENOTFOUND)
        return resp_error_s(r, 404, "folder_not_found", "no folder has this path", "path", path);
    if (rc)
        return resp_from_err(r, rc);
    o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "path", path) ||
        !(fa = cJSON_AddArrayToObject(o, "folders")) || !(ia = cJSON_AddArrayToObject(o, "items")))
        goto fail;
    for (i = 0; i < f.nfolders; i++)
        if (!cJSON_AddItemToArray(fa, cJSON_CreateString(f.folders[i])))
            goto fail;
    for (i = 0; i < f.nitems; i++)
        if (!cJSON_AddItemToArray(ia, store_record_to_json(&f.items[i])))
            goto fail;
    store_folder_cleanup(&f);
    return resp_json(r, 200, o);
fail:
    cJSON_Delete(o);
    store_folder_cleanup(&f);
    return resp_json(r, 500, NULL);
}

/* ------------------------------------------------------------------------
 * Events (PROTOCOL §15)
 * ---------------------------------------------------------------------- */

/* A resume id: decimal digits, no sign, no leading zero (except "0"), <= 2^53-1. */
static void parse_resume(const char *v, size_t n, struct events_sub_opts *o)
{
    o->has_last = true;
    if (!trim_ows(&v, &n) || !parse_version(v, n, &o->last_id))
        o->last_invalid = true;
}

static int handle_events(struct http_app *app, const struct http_request *q,
                         struct http_response *r, bool head)
{
    char hbuf[HTTP_MAX_HEADER_VALUE], raw[CANON_MAX_INPUT + 1];
    struct events_sub_opts *o = &r->stream_opts;
    enum canon_reason why = CANON_OK;
    const char *lei;
    size_t n = 0, rlen = 0, flen = 0;
    bool toolong = false;
    enum qp_result qr;

    memset(o, 0, sizeof(*o));
    qr = req_query(q, "gallery_id", raw, &rlen, &why);
    if (qr == QP_DUP)
        return resp_error_s(r, 400, "duplicate_parameter",
                            "the query parameter 'gallery_id' must be given only once", "parameter",
                            "gallery_id");
    if (qr == QP_BAD || (qr == QP_OK && canon_path(raw, rlen, r->stream_filter, &flen, &why))) {
        cJSON *e = err_obj("invalid_path", "the gallery id is not acceptable; see 'reason'");

        if (e && (!cJSON_AddStringToObject(e, "parameter", "gallery_id") ||
                  !cJSON_AddStringToObject(e, "reason", canon_reason_name(why)))) {
            cJSON_Delete(e);
            e = NULL;
        }
        return resp_json(r, 400, e);
    }
    if (qr == QP_OK) {
        if (!store_is_folder(app->store, r->stream_filter))
            return resp_error_s(r, 404, "folder_not_found", "no folder has this path", "path",
                                r->stream_filter);
        o->filter = r->stream_filter;
    }
    /* The header wins over the query: browsers send it on their own
     * reconnects, so it is the fresher cursor (PROTOCOL §15). */
    lei = req_header(q, "Last-Event-ID", hbuf, &n, &toolong);
    if (lei && !toolong && !trim_ows(&lei, &n))
        lei = NULL; /* an empty header counts as absent (R15.4-1, as R5.1-3) */
    if (lei) {
        parse_resume(toolong ? "x" : lei, toolong ? 1 : n, o);
    } else {
        qr = req_query(q, "last_event_id", raw, &rlen, &why);
        if (qr == QP_OK)
            parse_resume(raw, rlen, o);
        else if (qr != QP_MISSING)
            parse_resume("x", 1, o);
    }
    r->status = 200;
    resp_header(r, "Content-Type", "text/event-stream");
    resp_header(r, "Cache-Control", "no-store");
    resp_header(r, "X-Accel-Buffering", "no");
    r->stream = !head && app->events != NULL;
    return 0;
}

/* ------------------------------------------------------------------------
 * Presence (PROTOCOL §16)
 * ---------------------------------------------------------------------- */

enum pf { PF_GALLERY, PF_FROM, PF_TO, PF_LEASE, PF_CLIENT, PF_COUNT };
static const char *const pf_names[PF_COUNT] = {"gallery_id", "from_gallery_id", "to_gallery_id",
                                               "lease_id", "client_id"};

struct pbody {
    const char *v[PF_COUNT]; /* borrowed from root; NULL = absent or null */
    char gallery[3][CANON_MAX_PATH + 1];
    char client[HTTP_MAX_CLIENT_ID + 1];
    cJSON *root;
};

static int resp_pointer_error(struct http_response *r, int status, const char *code,
                              const char *msg, const char *member, const char *expected)
{
    char ptr[64];
    cJSON *o = err_obj(code, msg);

    snprintf(ptr, sizeof(ptr), "%s%s", member[0] ? "/" : "", member); /* "" = the whole body */
    if (o &&
        (!cJSON_AddStringToObject(o, "pointer", ptr) ||
         (strcmp(code, "unknown_field") == 0 && !cJSON_AddStringToObject(o, "field", member)) ||
         (expected && !cJSON_AddStringToObject(o, "expected", expected)))) {
        cJSON_Delete(o);
        o = NULL;
    }
    return resp_json(r, status, o);
}

static bool visible_ascii(const char *s, size_t n, size_t max)
{
    size_t i;

    if (n == 0 || n > max)
        return false;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

/*
 * Parse and validate a presence body: allowed and required members (bits of
 * enum pf), types, client id (body or X-Client-Id), gallery ids (canonical
 * folders).  Answers the error itself and returns false on any failure.
 */
static bool presence_body(struct http_app *app, const struct http_request *q,
                          struct http_response *r, unsigned allowed, unsigned required,
                          struct pbody *b)
{
    struct patch_error pe;
    const cJSON *m, *m2;
    char hbuf[HTTP_MAX_HEADER_VALUE];
    const char *hv;
    size_t hn = 0;
    bool toolong = false;
    int rc = 0, k;

    memset(b, 0, sizeof(*b));
    memset(&pe, 0, sizeof(pe));
    if (!check_body_preconditions(q, r, false))
        return false;
    if (q->body_len > HTTP_MAX_PRESENCE_BODY) {
        cJSON *o = err_obj("body_too_large", "the request body exceeds the limit");

        if (o && !cJSON_AddNumberToObject(o, "limit", HTTP_MAX_PRESENCE_BODY)) {
            cJSON_Delete(o);
            o = NULL;
        }
        resp_json(r, 413, o);
        return false;
    }
    b->root = patch_json_parse(q->body ? q->body : "", q->body_len, &pe, &rc);
    if (!b->root) {
        resp_patch_error(r, rc, &pe);
        return false;
    }
    if (!cJSON_IsObject(b->root)) {
        resp_pointer_error(r, 400, "invalid_type", "the body must be a JSON object", "", "object");
        goto fail;
    }
    /* Types first, then unknown members, then duplicates (as PATCH bodies). */
    cJSON_ArrayForEach(m, b->root)
    {
        for (k = 0; k < PF_COUNT; k++)
            if ((allowed & (1u << k)) && strcmp(m->string, pf_names[k]) == 0)
                break;
        if (k == PF_COUNT) {
            if (!canon_utf8_valid(m->string, strlen(m->string)))
                resp_pointer_error(r, 400, "unknown_field", "unknown member", "", NULL);
            else
                resp_pointer_error(r, 400, "unknown_field", "this member is not allowed here",
                                   m->string, NULL);
            goto fail;
        }
        if (!cJSON_IsString(m) && !(cJSON_IsNull(m) && !(required & (1u << k)))) {
            resp_pointer_error(r, 400, "invalid_type", "this member must be a string", m->string,
                               (required & (1u << k)) ? "string" : "string or null");
            goto fail;
        }
        for (m2 = m->next; m2; m2 = m2->next)
            if (strcmp(m2->string, m->string) == 0) {
                resp_pointer_error(r, 400, "duplicate_field", "this member appears twice",
                                   m->string, NULL);
                goto fail;
            }
        b->v[k] = cJSON_IsString(m) ? m->valuestring : NULL;
    }
    for (k = 0; k < PF_COUNT; k++)
        if ((required & (1u << k)) && !b->v[k]) {
            resp_pointer_error(r, 400, "missing_field", "a required member is missing", pf_names[k],
                               NULL);
            goto fail;
        }
    /* The client: body member, else X-Client-Id; both must agree. */
    hv = req_header(q, "X-Client-Id", hbuf, &hn, &toolong);
    if (hv && trim_ows(&hv, &hn) && (toolong || !visible_ascii(hv, hn, HTTP_MAX_CLIENT_ID))) {
        header_bad(r, "X-Client-Id", "X-Client-Id must be 1 to 128 visible ASCII characters");
        goto fail;
    }
    if (b->v[PF_CLIENT]) {
        size_t cl = strlen(b->v[PF_CLIENT]);

        if (!visible_ascii(b->v[PF_CLIENT], cl, HTTP_MAX_CLIENT_ID)) {
            resp_pointer_error(r, 400, "invalid_value",
                               "client_id must be 1 to 128 visible ASCII characters", "client_id",
                               NULL);
            goto fail;
        }
        if (hv && hn && (hn != cl || memcmp(hv, b->v[PF_CLIENT], cl) != 0)) {
            resp_pointer_error(r, 400, "invalid_value",
                               "client_id and the X-Client-Id header disagree", "client_id", NULL);
            goto fail;
        }
        memcpy(b->client, b->v[PF_CLIENT], cl + 1);
    } else if (hv && hn) {
        memcpy(b->client, hv, hn);
        b->client[hn] = '\0';
    } else {
        resp_pointer_error(r, 400, "missing_field",
                           "client_id is required (in the body or as X-Client-Id)", "client_id",
                           NULL);
        goto fail;
    }
    if (b->v[PF_LEASE] && strlen(b->v[PF_LEASE]) > 0 &&
        !visible_ascii(b->v[PF_LEASE], strlen(b->v[PF_LEASE]), 64)) {
        resp_pointer_error(r, 400, "invalid_value", "lease_id is not a lease id", "lease_id", NULL);
        goto fail;
    }
    /* Gallery ids: canonical, then existing folders. */
    for (k = PF_GALLERY; k <= PF_TO; k++) {
        enum canon_reason why = CANON_OK;
        size_t gl = 0;

        if (!b->v[k])
            continue;
        /* Not UTF-8 here means a \u0000 escape or raw bad bytes in the JSON
         * string (patch_json_parse): a bad value, not a path to judge. */
        if (!canon_utf8_valid(b->v[k], strlen(b->v[k]))) {
            resp_pointer_error(r, 400, "invalid_value", "this member is not valid UTF-8 text",
                               pf_names[k], NULL);
            goto fail;
        }
        if (canon_path(b->v[k], strlen(b->v[k]), b->gallery[k], &gl, &why) != 0) {
            cJSON *o = err_obj("invalid_path", "the gallery id is not acceptable; see 'reason'");

            if (o && (!cJSON_AddStringToObject(o, "parameter", pf_names[k]) ||
                      !cJSON_AddStringToObject(o, "reason", canon_reason_name(why)))) {
                cJSON_Delete(o);
                o = NULL;
            }
            resp_json(r, 400, o);
            goto fail;
        }
    }
    for (k = PF_GALLERY; k <= PF_TO; k++)
        if (b->v[k] && !store_is_folder(app->store, b->gallery[k])) {
            resp_error_s(r, 404, "folder_not_found", "no folder has this path", "path",
                         b->gallery[k]);
            goto fail;
        }
    return true;
fail:
    cJSON_Delete(b->root);
    b->root = NULL;
    return false;
}

static cJSON *scope_obj(const char *gallery, unsigned viewing, unsigned editing)
{
    cJSON *o = cJSON_CreateObject();

    if (o && (!cJSON_AddStringToObject(o, "gallery_id", gallery) ||
              !cJSON_AddNumberToObject(o, "viewing", viewing) ||
              !cJSON_AddNumberToObject(o, "editing", editing))) {
        cJSON_Delete(o);
        o = NULL;
    }
    return o;
}

enum presence_op { POP_JOIN, POP_MOVE, POP_LEAVE, POP_HEARTBEAT };

static int handle_presence(struct http_app *app, const struct http_request *q,
                           struct http_response *r, enum presence_op op)
{
    static const unsigned allowed[] = {
        [POP_JOIN] = 1u << PF_GALLERY | 1u << PF_LEASE | 1u << PF_CLIENT,
        [POP_MOVE] = 1u << PF_FROM | 1u << PF_TO | 1u << PF_LEASE | 1u << PF_CLIENT,
        [POP_LEAVE] = 1u << PF_GALLERY | 1u << PF_LEASE | 1u << PF_CLIENT,
        [POP_HEARTBEAT] = 1u << PF_GALLERY | 1u << PF_CLIENT,
    };
    static const unsigned required[] = {
        [POP_JOIN] = 1u << PF_GALLERY,
        [POP_MOVE] = 1u << PF_FROM | 1u << PF_TO | 1u << PF_LEASE,
        [POP_LEAVE] = 1u << PF_GALLERY | 1u << PF_LEASE,
        [POP_HEARTBEAT] = 1u << PF_GALLERY,
    };
    struct presence_reply rep;
    struct presence_changes ch;
    struct pbody b;
    long long now = mono_us();
    cJSON *o = NULL;
    int rc;

    if (!app->presence)
        return resp_error(r, 503, "unavailable", "presence is not enabled on this server");
    if (!presence_body(app, q, r, allowed[op], required[op], &b))
        return 0;
    memset(&ch, 0, sizeof(ch));
    memset(&rep, 0, sizeof(rep));
    pthread_mutex_lock(&app->presence_lock);
    switch (op) {
    case POP_JOIN:
        rc = presence_join(app->presence, b.client, b.gallery[PF_GALLERY], b.v[PF_LEASE], now, &rep,
                           &ch);
        break;
    case POP_MOVE:
        rc = presence_move(app->presence, b.client, b.v[PF_LEASE], b.gallery[PF_FROM],
                           b.gallery[PF_TO], now, &rep, &ch);
        break;
    case POP_LEAVE:
        rc = presence_leave(app->presence, b.client, b.v[PF_LEASE], b.gallery[PF_GALLERY], now,
                            &rep, &ch);
        break;
    case POP_HEARTBEAT:
    default:
        rc = presence_heartbeat(app->presence, b.client, b.gallery[PF_GALLERY], now, &rep, &ch);
        break;
    }
    if (rc == 0)
        publish_presence(app, &ch);
    pthread_mutex_unlock(&app->presence_lock);
    presence_changes_cleanup(&ch);
    if (rc) {
        resp_from_err(r, rc);
        goto out;
    }
    if (rep.result == PRESENCE_INVALID_LEASE) {
        o = err_obj("invalid_lease", "the lease is not this client's current lease");
        if (o && (!cJSON_AddStringToObject(o, "gallery_id",
                                           b.gallery[op == POP_MOVE ? PF_FROM : PF_GALLERY]) ||
                  !cJSON_AddStringToObject(o, "client_id", b.client))) {
            cJSON_Delete(o);
            o = NULL;
        }
        resp_json(r, 409, o);
        goto out;
    }
    if (rep.result == PRESENCE_SCOPE_MISMATCH) {
        o = err_obj("scope_mismatch", "the session is in another gallery");
        if (o && (!cJSON_AddStringToObject(o, "requested_gallery_id",
                                           b.gallery[op == POP_MOVE ? PF_FROM : PF_GALLERY]) ||
                  !cJSON_AddStringToObject(o, "actual_gallery_id", rep.gallery_id) ||
                  !cJSON_AddStringToObject(o, "client_id", b.client))) {
            cJSON_Delete(o);
            o = NULL;
        }
        resp_json(r, 409, o);
        goto out;
    }
    o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "client_id", b.client))
        goto fail;
    if (op == POP_MOVE) {
        cJSON *from = scope_obj(rep.from_gallery, rep.from_viewing, rep.from_editing);
        cJSON *to = scope_obj(rep.to_gallery, rep.to_viewing, rep.to_editing);

        if (!cJSON_AddStringToObject(o, "lease_id", b.v[PF_LEASE]) || !from ||
            !cJSON_AddItemToObject(o, "from", from)) {
            cJSON_Delete(from);
            cJSON_Delete(to);
            goto fail;
        }
        if (!to || !cJSON_AddItemToObject(o, "to", to)) {
            cJSON_Delete(to);
            goto fail;
        }
    } else {
        if (!cJSON_AddStringToObject(o, "gallery_id", rep.gallery_id) ||
            (op != POP_LEAVE && !cJSON_AddStringToObject(o, "lease_id", rep.lease_id)) ||
            !cJSON_AddNumberToObject(o, "viewing", rep.viewing) ||
            !cJSON_AddNumberToObject(o, "editing", rep.editing) ||
            (op == POP_LEAVE && !cJSON_AddBoolToObject(o, "removed", rep.removed)))
            goto fail;
    }
    resp_json(r, 200, o);
    goto out;
fail:
    cJSON_Delete(o);
    resp_json(r, 500, NULL);
out:
    cJSON_Delete(b.root);
    return 0;
}

static int handle_diagnostics(struct http_app *app, struct http_response *r)
{
    struct presence_stats st;
    struct presence_changes list;
    cJSON *o = cJSON_CreateObject(), *arr;
    long long now = mono_us();
    size_t i;

    memset(&list, 0, sizeof(list));
    if (!app->presence) {
        cJSON_Delete(o);
        return resp_error(r, 503, "unavailable", "presence is not enabled on this server");
    }
    presence_stats(app->presence, now, &st);
    if (!o || presence_list(app->presence, now, &list) != 0 ||
        !cJSON_AddNumberToObject(o, "view_ttl_seconds", app->view_ttl_s) ||
        !cJSON_AddNumberToObject(o, "edit_ttl_seconds", app->edit_ttl_s) ||
        !cJSON_AddNumberToObject(o, "prune_interval_seconds", app->prune_interval_s) ||
        !cJSON_AddNumberToObject(o, "active_clients", (double)st.active_clients) ||
        !cJSON_AddNumberToObject(o, "active_scopes", (double)st.active_scopes) ||
        !cJSON_AddNumberToObject(o, "stale_pruned_total", (double)st.stale_pruned_total) ||
        !cJSON_AddNumberToObject(o, "invalid_lease_total", (double)st.invalid_lease_total) ||
        !cJSON_AddNumberToObject(o, "scope_mismatch_total", (double)st.scope_mismatch_total) ||
        !(arr = cJSON_AddArrayToObject(o, "galleries")))
        goto fail;
    for (i = 0; i < list.n; i++)
        if (!cJSON_AddItemToArray(arr, scope_obj(list.items[i].gallery_id, list.items[i].viewing,
                                                 list.items[i].editing)))
            goto fail;
    presence_changes_cleanup(&list);
    return resp_json(r, 200, o);
fail:
    presence_changes_cleanup(&list);
    cJSON_Delete(o);
    return resp_json(r, 500, NULL);
}

/* ------------------------------------------------------------------------
 * Health
 * ---------------------------------------------------------------------- */

static const char *const http_features[] = {
    "items",
    "items.put",
    "folders",
    "etag",
    "conditional-get",
    "idempotency",
    "idempotency.fingerprint",
    "idempotency.client-scope",
    "if-match",
    "metrics",
    "limits",
    "origin-check",
    "strict-paths",
    "events",
    "events.replay",
    "events.filter",
    "events.metrics",
    "presence",
    "presence.legacy",
    "presence.editing",
};

/* /health "labels": whether and how labels are persisted (PROTOCOL §17). */
static bool add_labels_health(struct http_app *app, cJSON *l)
{
    struct wal_status st;
    char path[4096 + 64];

    if (!cJSON_AddTrueToObject(l, "enabled") ||
        !cJSON_AddBoolToObject(l, "persisted", app->wal != NULL))
        return false;
    if (!app->wal)
        return cJSON_AddStringToObject(l, "mode", "no-write") &&
               cJSON_AddStringToObject(l, "state", "memory") &&
               cJSON_AddNumberToObject(l, "last_event_id", (double)store_seq(app->store));
    wal_status(app->wal, &st);
    if (!cJSON_AddStringToObject(l, "mode", wal_fsync_name(st.mode)) ||
        !cJSON_AddStringToObject(l, "state", st.state) ||
        !cJSON_AddNumberToObject(l, "last_event_id", (double)store_seq(app->store)) ||
        !cJSON_AddNumberToObject(l, "durable_event_id", (double)st.durable_id) ||
        !cJSON_AddNumberToObject(l, "written_event_id", (double)st.written_id) ||
        !cJSON_AddNumberToObject(l, "pending", (double)st.pending) ||
        !cJSON_AddNumberToObject(l, "log_bytes", (double)st.log_bytes) ||
        !cJSON_AddNumberToObject(l, "records", (double)st.records) ||
        !cJSON_AddNumberToObject(l, "fsyncs", (double)st.fsyncs) ||
        !cJSON_AddNumberToObject(l, "compactions", (double)st.compactions) ||
        !cJSON_AddNumberToObject(l, "failures", (double)st.failures) ||
        !cJSON_AddBoolToObject(l, "writes_stopped", st.latched) ||
        (st.error[0] ? !cJSON_AddStringToObject(l, "error", st.error)
                     : !cJSON_AddNullToObject(l, "error")))
        return false;
    snprintf(path, sizeof(path), "%s/%s/%s", app->root, WAL_DIR_NAME, WAL_LOG_NAME);
    if (!cJSON_AddStringToObject(l, "log", path))
        return false;
    snprintf(path, sizeof(path), "%s/%s/%s", app->root, WAL_DIR_NAME, WAL_SNAPSHOT_NAME);
    return cJSON_AddStringToObject(l, "snapshot", path) != NULL;
}

static int handle_health(struct http_app *app, struct http_response *r)
{
    cJSON *o = cJSON_CreateObject(), *feat, *labels, *idem, *ev, *pr;
    struct events_stats es;
    struct presence_stats ps;
    size_t i;

    memset(&es, 0, sizeof(es));
    memset(&ps, 0, sizeof(ps));
    if (app->events)
        events_stats(app->events, &es);
    if (app->presence)
        presence_stats(app->presence, mono_us(), &ps);
    if (!o || !cJSON_AddTrueToObject(o, "ok") ||
        !cJSON_AddStringToObject(o, "server", "labelsyncd") ||
        !cJSON_AddStringToObject(o, "version", HTTP_VERSION_STRING) ||
        !cJSON_AddNumberToObject(o, "protocol", HTTP_PROTOCOL_VERSION) ||
        !(feat = cJSON_AddArrayToObject(o, "features")))
        goto fail;
    for (i = 0; i < sizeof(http_features) / sizeof(http_features[0]); i++) {
        if (!app->events && strncmp(http_features[i], "events", 6) == 0)
            continue;
        if (!app->presence && strncmp(http_features[i], "presence", 8) == 0)
            continue;
        if (!cJSON_AddItemToArray(feat, cJSON_CreateString(http_features[i])))
            goto fail;
    }
    /* Features that describe this running configuration, so fixtures that
     * need fast timers only run where the timers are fast (PROTOCOL §9). */
    if ((app->events && app->keepalive_s <= 2.0 &&
         !cJSON_AddItemToArray(feat, cJSON_CreateString("events.short-keepalive"))) ||
        (app->events && es.ring_capacity <= 256 &&
         !cJSON_AddItemToArray(feat, cJSON_CreateString("events.small-ring"))) ||
        (app->presence && app->view_ttl_s <= 3.0 && app->edit_ttl_s <= 3.0 &&
         app->prune_interval_s <= 0.5 &&
         !cJSON_AddItemToArray(feat, cJSON_CreateString("presence.short-ttl"))))
        goto fail;
    if (!cJSON_AddNumberToObject(o, "items", (double)store_count(app->store)) ||
        !(labels = cJSON_AddObjectToObject(o, "labels")) || !add_labels_health(app, labels) ||
        !(idem = cJSON_AddObjectToObject(o, "idempotency")) ||
        !cJSON_AddNumberToObject(idem, "entries", (double)idem_count(app->idem)) ||
        !cJSON_AddNumberToObject(idem, "capacity", IDEM_DEFAULT_ENTRIES) ||
        !cJSON_AddNumberToObject(idem, "ttl_seconds", (double)(app->idem_ttl_us / 1000000)))
        goto fail;
    if (app->events &&
        (!(ev = cJSON_AddObjectToObject(o, "events")) ||
         !cJSON_AddNumberToObject(ev, "subscribers", (double)es.subscribers) ||
         !cJSON_AddNumberToObject(ev, "last_event_id", (double)es.last_event_id) ||
         !cJSON_AddNumberToObject(ev, "ring_size", (double)es.ring_size) ||
         !cJSON_AddNumberToObject(ev, "ring_capacity", (double)es.ring_capacity) ||
         !cJSON_AddNumberToObject(ev, "oldest_event_id", (double)es.oldest_event_id) ||
         !cJSON_AddNumberToObject(ev, "keepalive_seconds", app->keepalive_s) ||
         !cJSON_AddNumberToObject(ev, "resync_total", (double)es.resync_total) ||
         !cJSON_AddNumberToObject(ev, "lagging_closed_total", (double)es.lagging_closed_total)))
        goto fail;
    if (app->presence &&
        (!(pr = cJSON_AddObjectToObject(o, "presence")) ||
         !cJSON_AddNumberToObject(pr, "active_clients", (double)ps.active_clients) ||
         !cJSON_AddNumberToObject(pr, "active_scopes", (double)ps.active_scopes) ||
         !cJSON_AddNumberToObject(pr, "view_ttl_seconds", app->view_ttl_s) ||
         !cJSON_AddNumberToObject(pr, "edit_ttl_seconds", app->edit_ttl_s) ||
         !cJSON_AddNumberToObject(pr, "prune_interval_seconds", app->prune_interval_s)))
        goto fail;
    return resp_json(r, 200, o);
fail:
    cJSON_Delete(o);
    return resp_json(r, 500, NULL);
}

/* ------------------------------------------------------------------------
 * Dispatch
 * ---------------------------------------------------------------------- */

enum route {
    ROUTE_NONE,
    ROUTE_ITEM,
    ROUTE_FOLDERS,
    ROUTE_HEALTH,
    ROUTE_EVENTS,
    ROUTE_JOIN,
    ROUTE_MOVE,
    ROUTE_LEAVE,
    ROUTE_HEARTBEAT,
    ROUTE_DIAG,
};

static const struct {
    const char *path;
    enum route route;
    const char *allow;
} http_routes[] = {
    {"/item", ROUTE_ITEM, HTTP_ALLOW_ITEM},
    {"/folders", ROUTE_FOLDERS, HTTP_ALLOW_READ},
    {"/health", ROUTE_HEALTH, HTTP_ALLOW_READ},
    {"/events", ROUTE_EVENTS, HTTP_ALLOW_READ},
    {"/presence/join", ROUTE_JOIN, HTTP_ALLOW_POST},
    {"/presence/move", ROUTE_MOVE, HTTP_ALLOW_POST},
    {"/presence/leave", ROUTE_LEAVE, HTTP_ALLOW_POST},
    {"/presence", ROUTE_HEARTBEAT, HTTP_ALLOW_POST},
    {"/presence/diagnostics", ROUTE_DIAG, HTTP_ALLOW_READ},
};

static enum route route_of(const char *url, const char **allow)
{
    size_t i;

    for (i = 0; i < sizeof(http_routes) / sizeof(http_routes[0]); i++)
        if (strcmp(url, http_routes[i].path) == 0) {
            *allow = http_routes[i].allow;
            return http_routes[i].route;
        }
    *allow = HTTP_ALLOW_READ;
    return ROUTE_NONE;
}

static int method_not_allowed(struct http_response *r, const char *allow)
{
    cJSON *o = err_obj("method_not_allowed", "this route does not support the method");
    cJSON *arr = o ? cJSON_AddArrayToObject(o, "allow") : NULL;
    char tmp[64];
    const char *p = allow;

    if (!arr) {
        cJSON_Delete(o);
        return resp_json(r, 500, NULL);
    }
    while (*p) {
        size_t n = strcspn(p, ",");

        snprintf(tmp, sizeof(tmp), "%.*s", (int)n, p);
        cJSON_AddItemToArray(arr, cJSON_CreateString(tmp));
        p += n;
        while (*p == ',' || *p == ' ')
            p++;
    }
    resp_header(r, "Allow", allow);
    return resp_json(r, 405, o);
}

int http_handle(struct http_app *app, const struct http_request *q, struct http_response *r)
{
    const char *allow = HTTP_ALLOW_READ;
    enum route rt = route_of(q->url, &allow);
    const char *m = q->method;
    bool is_post_route = strcmp(allow, HTTP_ALLOW_POST) == 0;
    bool read = !is_post_route && (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0);
    bool write = (rt == ROUTE_ITEM && (strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0)) ||
                 (is_post_route && strcmp(m, "POST") == 0);

    memset(r, 0, sizeof(*r));
    if (rt == ROUTE_NONE)
        return resp_error(r, 404, "not_found", "no such route");
    if (strcmp(m, "OPTIONS") == 0) {
        r->status = 204;
        resp_header(r, "Allow", allow);
        return 0;
    }
    if (!read && !write)
        return method_not_allowed(r, allow);
    if (write) {
        size_t n = 0;
        bool dup = false;
        char hbuf[HTTP_MAX_HEADER_VALUE];
        const char *origin = req_header(q, "Origin", hbuf, &n, &dup);

        if (origin && (dup || !origin_allowed(app, origin, n))) {
            char shown[HTTP_MAX_ORIGIN_LEN];

            snprintf(shown, sizeof(shown), "%.*s", (int)(n < sizeof(shown) - 1 ? n : 0), origin);
            return resp_error_s(r, 403, "origin_not_allowed",
                                "writes from this browser origin are not allowed", "origin",
                                canon_utf8_valid(shown, strlen(shown)) ? shown : "");
        }
    }
    switch (rt) {
    case ROUTE_ITEM:
        if (write)
            return handle_item_write(app, q, r, strcmp(m, "PATCH") == 0);
        return handle_item_get(app, q, r);
    case ROUTE_FOLDERS:
        return handle_folders(app, q, r);
    case ROUTE_HEALTH:
        return handle_health(app, r);
    case ROUTE_EVENTS:
        return handle_events(app, q, r, strcmp(m, "HEAD") == 0);
    case ROUTE_JOIN:
        return handle_presence(app, q, r, POP_JOIN);
    case ROUTE_MOVE:
        return handle_presence(app, q, r, POP_MOVE);
    case ROUTE_LEAVE:
        return handle_presence(app, q, r, POP_LEAVE);
    case ROUTE_HEARTBEAT:
        return handle_presence(app, q, r, POP_HEARTBEAT);
    case ROUTE_DIAG:
        return handle_diagnostics(app, r);
    case ROUTE_NONE:
    default:
        return resp_error(r, 404, "not_found", "no such route");
    }
}

void http_app_tick(struct http_app *app, bool keepalive, bool prune)
{
    struct presence_changes ch;

    if (keepalive && app->events)
        events_keepalive(app->events);
    if (!prune || !app->presence)
        return;
    memset(&ch, 0, sizeof(ch));
    pthread_mutex_lock(&app->presence_lock);
    if (presence_prune(app->presence, mono_us(), &ch) == 0)
        publish_presence(app, &ch);
    pthread_mutex_unlock(&app->presence_lock);
    presence_changes_cleanup(&ch);
}

/* ------------------------------------------------------------------------
 * The app
 * ---------------------------------------------------------------------- */

static int app_add_origin(struct http_app *app, const char *o)
{
    if (app->norigins >= sizeof(app->origins) / sizeof(app->origins[0]))
        return -EINVAL;
    if (!origin_normalize(o, strlen(o), app->origins[app->norigins], HTTP_MAX_ORIGIN_LEN))
        return -EINVAL;
    app->norigins++;
    return 0;
}

struct http_app *http_app_new(const struct http_config *cfg, unsigned port,
                              const struct http_deps *deps, int *err)
{
    struct http_app *app = calloc(1, sizeof(*app));
    char tmp[HTTP_MAX_ORIGIN_LEN];
    size_t i;
    int rc = 0;

    if (!app || pthread_mutex_init(&app->presence_lock, NULL) != 0) {
        free(app);
        *err = -ENOMEM;
        return NULL;
    }
    app->store = deps->store;
    app->idem = deps->idem;
    app->events = deps->events;
    app->presence = deps->presence;
    app->wal = deps->events ? deps->wal : NULL; /* the log needs ids from the hub */
    pthread_mutex_init(&app->seq_lock, NULL);
    app->no_write = cfg->no_write;
    snprintf(app->root, sizeof(app->root), "%s", cfg->root ? cfg->root : "");
    app->idem_ttl_us = cfg->idem_ttl_us ? cfg->idem_ttl_us : IDEM_DEFAULT_TTL_US;
    app->keepalive_s = cfg->keepalive_s > 0 ? cfg->keepalive_s : 15.0;
    app->prune_interval_s = cfg->prune_interval_s > 0 ? cfg->prune_interval_s : 5.0;
    app->view_ttl_s = cfg->view_ttl_s > 0 ? cfg->view_ttl_s : 75.0;
    app->edit_ttl_s = cfg->edit_ttl_s > 0 ? cfg->edit_ttl_s : 60.0;
    if (cfg->nallow_origins > HTTP_MAX_ORIGINS) {
        rc = -EINVAL;
        goto fail;
    }
    snprintf(tmp, sizeof(tmp), "http://127.0.0.1:%u", port);
    rc = app_add_origin(app, tmp);
    snprintf(tmp, sizeof(tmp), "http://localhost:%u", port);
    rc = rc ? rc : app_add_origin(app, tmp);
    snprintf(tmp, sizeof(tmp), "http://[::1]:%u", port);
    rc = rc ? rc : app_add_origin(app, tmp);
    for (i = 0; !rc && i < cfg->nallow_origins; i++) {
        rc = app_add_origin(app, cfg->allow_origins[i]);
        if (rc)
            TRACE_E("http", "--allow-origin %s: not an http(s) origin", cfg->allow_origins[i]);
    }
    if (rc)
        goto fail;
    {
        static const struct store_commit_ops mem_ops = {app_prepare, NULL, app_finish};
        static const struct store_commit_ops log_ops = {app_prepare, app_wait, app_finish};

        store_set_commit_ops(app->store, app->wal ? &log_ops : &mem_ops, app);
    }
    return app;
fail:
    pthread_mutex_destroy(&app->presence_lock);
    free(app);
    *err = rc;
    return NULL;
}

void http_app_free(struct http_app *app)
{
    if (!app)
        return;
    store_set_commit_ops(app->store, NULL, NULL);
    pthread_mutex_destroy(&app->seq_lock);
    pthread_mutex_destroy(&app->presence_lock);
    free(app);
}

/* ------------------------------------------------------------------------
 * libmicrohttpd glue
 * ---------------------------------------------------------------------- */

#define HTTP_MAX_REQ_HEADERS 64
/* Per-connection pool: holds the request line and headers, so it bounds them
 * (PROTOCOL §11: targets up to 16 KiB); it is also the bulk of what an idle
 * event stream costs (about 25 KB each with 32 KiB, 46 KB with 64 KiB). */
#define HTTP_CONN_MEMORY    (32 * 1024)
#define HTTP_STREAM_DRAIN_S 0.5 /* how long http_stop lets streams end cleanly */
#define HTTP_MAX_QUERY_ARGS 64

struct http_server {
    struct MHD_Daemon *daemon;
    struct http_app *app;
    struct events_hub *events;
    unsigned port;
    /* The ticker: keepalives and presence prunes on their own periods. */
    pthread_t ticker;
    bool ticker_running, stopping;
    pthread_mutex_t tick_lock;
    pthread_cond_t tick_cond;
    double keepalive_s, prune_s;
};

/* One event stream: the subscriber and the connection it writes to. */
struct sse_conn {
    struct MHD_Connection *conn;
    struct events_sub *sub;
};

/* Per-request state, freed by the completion callback. */
struct http_ctx {
    struct buf body;
    bool too_large;
    bool answered_early;
};

struct kv_vec {
    struct http_kv kv[HTTP_MAX_REQ_HEADERS];
    size_t n;
    bool overflow;
};

static enum MHD_Result collect_kv(void *cls, enum MHD_ValueKind kind, const char *key,
                                  size_t key_size, const char *value, size_t value_size)
{
    struct kv_vec *v = cls;

    (void)kind;
    (void)key_size;
    if (v->n >= HTTP_MAX_REQ_HEADERS) {
        v->overflow = true;
        return MHD_NO;
    }
    v->kv[v->n].name = key;
    v->kv[v->n].value = value;
    v->kv[v->n].value_len = value ? value_size : 0;
    v->n++;
    return MHD_YES;
}

/* Keep query values raw: the handler decodes exactly once (PROTOCOL §2.1). */
static size_t unescape_identity(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

static enum MHD_Result queue(struct MHD_Connection *c, struct http_response *r)
{
    struct MHD_Response *mr;
    enum MHD_Result ret;
    size_t i;

    if (r->body)
        mr = MHD_create_response_from_buffer_with_free_callback(r->body_len, r->body, &free);
    else
        mr = MHD_create_response_from_buffer(0, (void *)(uintptr_t) "", MHD_RESPMEM_PERSISTENT);
    if (!mr) {
        http_response_cleanup(r);
        return MHD_NO;
    }
    r->body = NULL; /* MHD owns it now */
    for (i = 0; i < r->nheaders; i++)
        MHD_add_response_header(mr, r->headers[i].name, r->headers[i].value);
    ret = MHD_queue_response(c, (unsigned)(r->status ? r->status : 500), mr);
    MHD_destroy_response(mr);
    return ret;
}

/*
 * Event streams.  park and wake run with the hub lock held (events.h): a
 * stream is suspended in the same critical section that marks it parked, so
 * a publisher can never resume a connection that is not suspended, and no
 * wake-up is lost (docs/internals/events.md).
 */
static void sse_park(void *ctx)
{
    MHD_suspend_connection(((struct sse_conn *)ctx)->conn);
}

static void sse_wake(void *ctx)
{
    MHD_resume_connection(((struct sse_conn *)ctx)->conn);
}

static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct sse_conn *sc = cls;
    long n;

    (void)pos;
    n = events_sub_read(sc->sub, buf, max, sse_park, sc);
    if (n == EVENTS_END)
        return MHD_CONTENT_READER_END_OF_STREAM;
    return (ssize_t)n;
}

static void sse_free(void *cls)
{
    struct sse_conn *sc = cls;

    events_unsubscribe(sc->sub);
    free(sc);
}

static enum MHD_Result queue_stream(struct http_server *srv, struct MHD_Connection *c,
                                    struct http_response *r)
{
    struct sse_conn *sc = calloc(1, sizeof(*sc));
    struct MHD_Response *mr;
    enum MHD_Result ret;
    int err = 0;
    size_t i;

    if (sc) {
        sc->conn = c;
        sc->sub = events_subscribe(srv->events, &r->stream_opts, sse_wake, sc, &err);
    }
    if (!sc || !sc->sub) {
        struct http_response e;

        free(sc);
        memset(&e, 0, sizeof(e));
        resp_error(&e, 503, "unavailable",
                   err == LS_EFULL ? "too many event streams are open; retry later"
                                   : "the server cannot open an event stream now");
        http_response_cleanup(r);
        return queue(c, &e);
    }
    /* One response per stream, never shared: MHD may only suspend from the
     * reader of a dedicated response. */
    mr = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 8192, sse_reader, sc, sse_free);
    if (!mr) {
        sse_free(sc);
        http_response_cleanup(r);
        return MHD_NO;
    }
    for (i = 0; i < r->nheaders; i++)
        MHD_add_response_header(mr, r->headers[i].name, r->headers[i].value);
    http_response_cleanup(r);
    ret = MHD_queue_response(c, MHD_HTTP_OK, mr);
    MHD_destroy_response(mr);
    return ret;
}

static void fill_request(struct MHD_Connection *c, const char *url, const char *method,
                         struct kv_vec *hdr, struct kv_vec *qry, struct http_request *q)
{
    memset(q, 0, sizeof(*q));
    MHD_get_connection_values_n(c, MHD_HEADER_KIND, collect_kv, hdr);
    MHD_get_connection_values_n(c, MHD_GET_ARGUMENT_KIND, collect_kv, qry);
    q->method = method;
    q->url = url;
    q->headers = hdr->kv;
    q->nheaders = hdr->n;
    q->query = qry->kv;
    q->nquery = qry->n;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct http_server *srv = cls;
    struct http_ctx *ctx = *con_cls;
    struct kv_vec hdr, qry;
    struct http_request q;
    struct http_response r;

    (void)version;
    if (!ctx) {
        const char *cl;

        ctx = calloc(1, sizeof(*ctx));
        if (!ctx)
            return MHD_NO;
        buf_init(&ctx->body, HTTP_MAX_BODY);
        *con_cls = ctx;
        /*
         * A declared body over the cap is refused before it is read, once the
         * checks that rank before 413 (route, method, origin, media type)
         * have run: answer everything but 413 the normal way.
         */
        cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > HTTP_MAX_BODY) {
            memset(&hdr, 0, sizeof(hdr));
            memset(&qry, 0, sizeof(qry));
            fill_request(c, url, method, &hdr, &qry, &q);
            q.body_too_large = true;
            http_handle(srv->app, &q, &r);
            ctx->answered_early = true;
            return queue(c, &r);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!ctx->too_large && !ctx->answered_early &&
            buf_append(&ctx->body, upload_data, *upload_data_size) != 0)
            ctx->too_large = true; /* keep reading and discarding; answer 413 at the end */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (ctx->answered_early)
        return MHD_YES;
    memset(&hdr, 0, sizeof(hdr));
    memset(&qry, 0, sizeof(qry));
    fill_request(c, url, method, &hdr, &qry, &q);
    if (hdr.overflow || qry.overflow) {
        memset(&r, 0, sizeof(r));
        resp_error(&r, 400, hdr.overflow ? "invalid_header" : "duplicate_parameter",
                   "the request has too many headers or query parameters");
        return queue(c, &r);
    }
    q.body = ctx->body.data;
    q.body_len = ctx->body.len;
    q.body_too_large = ctx->too_large;
    http_handle(srv->app, &q, &r);
    TRACE_D("http", "%s %s -> %d", method, url, r.status);
    if (r.stream)
        return queue_stream(srv, c, &r);
    return queue(c, &r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_ctx *ctx = *con_cls;

    (void)cls;
    (void)c;
    (void)toe;
    if (!ctx)
        return;
    buf_cleanup(&ctx->body);
    free(ctx);
    *con_cls = NULL;
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    char line[512];

    (void)cls;
    vsnprintf(line, sizeof(line), fmt, ap);
    TRACE_W("mhd", "%s", line);
}

/*
 * Bind the listening socket ourselves so the real port (for --port 0) is
 * known before the daemon starts: the app, whose default allowed origins
 * depend on it, then exists before the first request can arrive.
 */
static int listen_on(const char *host, unsigned port, bool *v6, unsigned *bound)
{
    struct addrinfo hints, *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char portstr[8];
    int fd, one = 1, gai, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(portstr, sizeof(portstr), "%u", port);
    gai = getaddrinfo(host, portstr, &hints, &ai);
    if (gai != 0 || !ai) {
        TRACE_E("http", "cannot use host %s: %s", host, gai_strerror(gai));
        return -EINVAL;
    }
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        rc = -errno;
        freeaddrinfo(ai);
        return rc;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* A deep accept queue: after a restart every EventSource client
     * reconnects at once, and an overflow costs each dropped one a 1 s SYN
     * retry (measured with 1000 streams; docs/benchmarks.md).  The kernel
     * caps it at net.core.somaxconn. */
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        rc = -errno;
        TRACE_E("http", "cannot listen on %s port %u: %s", host, port, strerror(-rc));
        close(fd);
        freeaddrinfo(ai);
        return rc;
    }
    *v6 = ai->ai_family == AF_INET6;
    *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                            : ((struct sockaddr_in *)&ss)->sin_port);
    freeaddrinfo(ai);
    return fd;
}

static double secs_to_next(double now, double last, double period)
{
    double d = last + period - now;

    return d > 0 ? d : 0;
}

static double mono_s(void)
{
    return (double)mono_us() / 1e6;
}

/* Keepalives and prunes, each on its own period, until http_stop. */
static void *ticker_main(void *arg)
{
    struct http_server *srv = arg;
    double last_ka = mono_s(), last_prune = last_ka;

    pthread_mutex_lock(&srv->tick_lock);
    while (!srv->stopping) {
        double now = mono_s();
        double wait = fmin(secs_to_next(now, last_ka, srv->keepalive_s),
                           secs_to_next(now, last_prune, srv->prune_s));
        struct timespec until;
        bool ka, prune;

        if (wait > 0) {
            long long ns;

            clock_gettime(CLOCK_MONOTONIC, &until);
            ns = (long long)until.tv_nsec + (long long)(wait * 1e9);
            until.tv_sec += (time_t)(ns / 1000000000LL);
            until.tv_nsec = (long)(ns % 1000000000LL);
            pthread_cond_timedwait(&srv->tick_cond, &srv->tick_lock, &until);
            continue;
        }
        ka = secs_to_next(now, last_ka, srv->keepalive_s) <= 0;
        prune = secs_to_next(now, last_prune, srv->prune_s) <= 0;
        if (ka)
            last_ka = now;
        if (prune)
            last_prune = now;
        pthread_mutex_unlock(&srv->tick_lock);
        http_app_tick(srv->app, ka, prune);
        pthread_mutex_lock(&srv->tick_lock);
    }
    pthread_mutex_unlock(&srv->tick_lock);
    return NULL;
}

int http_start(const struct http_config *cfg, const struct http_deps *deps,
               struct http_server **out)
{
    struct http_server *srv = calloc(1, sizeof(*srv));
    unsigned flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    pthread_condattr_t ca;
    bool v6 = false;
    int rc = 0, fd;

    *out = NULL;
    if (!srv)
        return -ENOMEM;
    srv->events = deps->events;
    srv->keepalive_s = cfg->keepalive_s > 0 ? cfg->keepalive_s : 15.0;
    srv->prune_s = cfg->prune_interval_s > 0 ? cfg->prune_interval_s : 5.0;
    pthread_mutex_init(&srv->tick_lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&srv->tick_cond, &ca);
    pthread_condattr_destroy(&ca);
    fd = listen_on(cfg->host ? cfg->host : "127.0.0.1", cfg->port, &v6, &srv->port);
    if (fd < 0) {
        rc = fd;
        goto fail;
    }
    srv->app = http_app_new(cfg, srv->port, deps, &rc);
    if (!srv->app) {
        close(fd);
        goto fail;
    }
    if (v6)
        flags |= MHD_USE_IPv6;
    srv->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL,
        MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape_identity, NULL, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)(cfg->threads > 1 ? cfg->threads : 0), MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)(cfg->max_connections ? cfg->max_connections : 1000),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)HTTP_CONN_MEMORY, MHD_OPTION_STRICT_FOR_CLIENT, (int)1, MHD_OPTION_END);
    if (!srv->daemon) {
        TRACE_E("http", "libmicrohttpd refused to start");
        close(fd);
        rc = -EIO;
        goto fail;
    }
    if (pthread_create(&srv->ticker, NULL, ticker_main, srv) != 0) {
        rc = -EAGAIN;
        goto fail;
    }
    srv->ticker_running = true;
    *out = srv;
    return 0;
fail:
    if (srv->daemon) {
        if (srv->events)
            events_shutdown(srv->events);
        MHD_stop_daemon(srv->daemon);
    }
    http_app_free(srv->app);
    pthread_cond_destroy(&srv->tick_cond);
    pthread_mutex_destroy(&srv->tick_lock);
    free(srv);
    return rc ? rc : -EIO;
}

unsigned http_port(const struct http_server *srv)
{
    return srv->port;
}

void http_stop(struct http_server *srv)
{
    if (!srv)
        return;
    /* 1. Every stream ends at its next read; parked ones are resumed, and
     *    none can park again, so MHD_stop_daemon finds no suspended
     *    connection (which would be an MHD_PANIC). */
    if (srv->events) {
        double until = mono_s() + HTTP_STREAM_DRAIN_S;
        struct events_stats st;

        events_shutdown(srv->events);
        /* Give the resumed streams a moment to send their last chunk, so
         * clients see a clean end rather than a cut connection; bounded. */
        for (;;) {
            events_stats(srv->events, &st);
            if (st.subscribers == 0 || mono_s() >= until)
                break;
            usleep(2000);
        }
    }
    /* 2. The ticker stops (it may be publishing presence right now). */
    if (srv->ticker_running) {
        pthread_mutex_lock(&srv->tick_lock);
        srv->stopping = true;
        pthread_cond_signal(&srv->tick_cond);
        pthread_mutex_unlock(&srv->tick_lock);
        pthread_join(srv->ticker, NULL);
    }
    /* 3. The daemon stops; it runs sse_free for the streams on this thread,
     *    so no application lock may be held here. */
    if (srv->daemon)
        MHD_stop_daemon(srv->daemon);
    http_app_free(srv->app);
    pthread_cond_destroy(&srv->tick_cond);
    pthread_mutex_destroy(&srv->tick_lock);
    free(srv);
}
