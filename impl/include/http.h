/*
 * http.h - the HTTP face of labelsyncd: routing, limits, headers, JSON
 * errors, and the libmicrohttpd daemon.
 *
 * Two layers.  http_handle() is the whole request logic as a pure function of
 * a request description (no sockets): route, checks in the order of
 * PROTOCOL.md §5.3, store and idempotency calls, and the response.  Unit tests
 * and the request fuzzer drive it directly.  http_start()/http_stop() wrap it
 * in a libmicrohttpd daemon (poll-based internal threads; see
 * docs/internals/http.md for why not epoll).  Only http.c includes
 * <microhttpd.h>, and only http.c maps error codes to HTTP statuses.
 */
#ifndef LS_HTTP_H
#define LS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "canon.h"
#include "err.h"
#include "events.h"
#include "idem.h"
#include "presence.h"
#include "store.h"
#include "wal.h"

#define HTTP_MAX_BODY          65536
#define HTTP_MAX_CLIENT_ID     128
#define HTTP_MAX_UPDATED_BY    128
#define HTTP_MAX_ORIGINS       16
#define HTTP_MAX_ORIGIN_LEN    256
#define HTTP_MAX_RESP_HEADERS  8
#define HTTP_MAX_PRESENCE_BODY 4096
#define HTTP_VERSION_STRING    "0.2.0"
#define HTTP_PROTOCOL_VERSION  1

struct http_config {
    const char *host;                 /* bind address, default "127.0.0.1" */
    unsigned port;                    /* 0 = pick a free port */
    unsigned threads;                 /* poll worker threads (>= 1) */
    unsigned max_connections;         /* MHD connection limit */
    const char *const *allow_origins; /* extra allowed browser origins */
    size_t nallow_origins;
    bool no_write;                 /* labels kept in memory only */
    const char *root;              /* the gallery (for /health's file paths) */
    long long idem_ttl_us;         /* idempotency retention (for /health) */
    double keepalive_s;            /* SSE keepalive period (default 15) */
    double prune_interval_s;       /* presence prune period (default 5) */
    double view_ttl_s, edit_ttl_s; /* presence TTLs as configured (for reports) */
};

/* The state the HTTP layer serves; every pointer is borrowed and must outlive it. */
struct http_deps {
    struct store *store;
    struct idem *idem;
    struct events_hub *events; /* NULL: no /events, no event publication */
    struct presence *presence; /* NULL: presence routes answer 503 */
    struct wal *wal;           /* NULL: labels are not persisted (--no-write) */
};

/* A name/value pair; value_len allows NUL bytes in values. Borrowed. */
struct http_kv {
    const char *name;
    const char *value; /* NULL for a query parameter without '=' */
    size_t value_len;
};

/* One request, as the transport saw it. Every pointer is borrowed. */
struct http_request {
    const char *method;
    const char *url;             /* path part, not unescaped */
    const struct http_kv *query; /* raw form-encoded pairs ('+' may already be ' ') */
    size_t nquery;
    const struct http_kv *headers;
    size_t nheaders;
    const char *body;
    size_t body_len;
    bool body_too_large; /* the transport stopped at HTTP_MAX_BODY */
};

struct http_response {
    int status;
    bool stream; /* 200 text/event-stream: subscribe with stream_opts */
    struct events_sub_opts stream_opts;
    char stream_filter[CANON_MAX_PATH + 1];
    char *body; /* owned, malloc'd; NULL when empty */
    size_t body_len;
    size_t nheaders;
    struct {
        char name[32];
        char value[HTTP_MAX_ORIGIN_LEN + 64];
    } headers[HTTP_MAX_RESP_HEADERS]; /* Content-Type is among them when there is a body */
};

struct http_app;
struct http_server;

/*
 * http_app_new - the request logic over deps (borrowed; they must outlive the
 * app).  port is the port the server is reachable on (used for the default
 * allowed origins).  Installs the store's commit hook, which publishes an
 * event for every accepted write.  Returns NULL with *err set (-ENOMEM,
 * -EINVAL for a malformed --allow-origin).
 */
struct http_app *http_app_new(const struct http_config *cfg, unsigned port,
                              const struct http_deps *deps, int *err);

/*
 * http_app_tick - periodic work: presence prune (publishing changed counts)
 * and, when keepalive is true, an SSE keepalive to every subscriber.  The
 * server calls it from its ticker thread; tests call it directly.
 */
void http_app_tick(struct http_app *app, bool keepalive, bool prune);

/* http_app_free - NULL-safe. */
void http_app_free(struct http_app *app);

/*
 * http_handle - answer one request.  Fills *resp (free with
 * http_response_cleanup).  Returns 0; a negative code only when even the
 * 500 answer could not be built (resp->status is then 500 with no body).
 * Thread-safe.
 */
int http_handle(struct http_app *app, const struct http_request *req, struct http_response *resp);

/*
 * http_write_body - the exact body of a PATCH/PUT 200 for a write that
 * produced rec (mutation id key or NULL, changed fields, event id seq).  Used
 * to rebuild stored idempotent responses from the log at start-up.  Returns a
 * malloc'd string (free it) or NULL when out of memory.
 */
char *http_write_body(const struct store_record *rec, const char *key, unsigned changed,
                      unsigned long long seq);

/* http_response_cleanup - free the body. NULL-safe. */
void http_response_cleanup(struct http_response *resp);

/*
 * Header and query parsers.  These are the parsers http_handle uses, exported
 * unchanged so fuzz/fuzz_headers.c and tests can drive them without a whole
 * request.  None allocates or keeps state; each reads only s[0..n) (s need
 * not be NUL-terminated; s may be NULL when n is 0 only where noted) and is
 * thread-safe.
 */

/*
 * http_parse_if_match - an If-Match value (PROTOCOL §5.1): blanks (SP, HT)
 * around it ignored, then N or "N", N decimal digits without sign or leading
 * zero, at most 2^53 - 1 ("0" is well-formed and never matches).  true with
 * *out set; false (out untouched) otherwise.
 */
bool http_parse_if_match(const char *s, size_t n, unsigned long long *out);

/*
 * http_if_none_match_hits - whether an If-None-Match value (RFC 9110
 * §13.1.2, PROTOCOL R4-4) matches version: "*" always does; else a
 * comma-separated list of entity tags compared weakly ("3" and W/"3" both
 * match 3).  A malformed list matches nothing.
 */
bool http_if_none_match_hits(const char *s, size_t n, unsigned long long version);

/*
 * http_parse_idempotency_key - an Idempotency-Key value (PROTOCOL §6.1):
 * blanks around it ignored, then 1..IDEM_MAX_KEY visible ASCII bytes, or the
 * same without '"' and '\' inside double quotes.  true with the key,
 * NUL-terminated, in out (IDEM_MAX_KEY + 1 bytes); false otherwise (out may
 * have been written).  http_handle answers an empty value as a missing key
 * before it calls this parser.
 */
bool http_parse_idempotency_key(const char *s, size_t n, char *out);

/*
 * http_parse_last_event_id - a resume cursor, as GET /events reads the
 * Last-Event-ID header (PROTOCOL §15.4): blanks around it ignored; 0 when
 * nothing is left (the header then counts as absent), 1 with *out set for a
 * valid id (decimal, no sign, no leading zero except "0", at most 2^53 - 1),
 * -1 for anything else (the stream then starts with a resync).
 */
int http_parse_last_event_id(const char *s, size_t n, unsigned long long *out);

/*
 * http_query_param - find the query parameter name among query[0..nquery)
 * (names are form-decoded before comparing; each name is a NUL-terminated
 * string) and form-decode its value into out (CANON_MAX_INPUT + 1 bytes,
 * NUL-terminated; *outlen excludes the NUL; a parameter without '=' gives "").
 * Returns 0; LS_ENOTFOUND when absent; LS_EDUP when given more than once;
 * LS_EPATH with *why set (CANON_BAD_PERCENT, or CANON_TOO_LONG when the
 * decoded value exceeds CANON_MAX_INPUT bytes).
 */
LS_MUST_CHECK int http_query_param(const struct http_kv *query, size_t nquery, const char *name,
                                   char *out, size_t *outlen, enum canon_reason *why);

/*
 * http_normalize_origin - an Origin value as the write check compares it:
 * "scheme://host[:port]" (http or https) becomes "scheme://host:port" with
 * scheme and host lower-cased and the default port filled in.  true with the
 * result in out (NUL-terminated, at most outcap bytes with the NUL); false
 * when it is not a usable http(s) origin ("null" included) or does not fit.
 */
bool http_normalize_origin(const char *s, size_t n, char *out, size_t outcap);

/*
 * http_start - start a daemon serving app.  On success *out is the server and
 * the port it listens on is http_port(*out).  Returns 0 or a negative error
 * (-EADDRINUSE, -EINVAL for an unusable host, -EIO when the daemon fails).
 * The app is created inside (http_server_app gives it) because the allowed
 * origins depend on the port actually bound.
 */
LS_MUST_CHECK int http_start(const struct http_config *cfg, const struct http_deps *deps,
                             struct http_server **out);

/* http_port - the port the server listens on. */
unsigned http_port(const struct http_server *srv);

/*
 * http_stop - end every event stream, stop the ticker, stop accepting, finish
 * or close every connection, join the threads, free the server and its app.
 * Returns promptly even with streams open.  NULL-safe.  Must not be called
 * with any application lock held.
 */
void http_stop(struct http_server *srv);

#endif
