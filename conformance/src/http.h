/*
 * http.h - the runner's HTTP client on libcurl (easy for single requests,
 * multi for parallel groups) and the curl(1) reproduction of a request.
 *
 * A simulated client (struct http_client) owns a curl share handle holding
 * its cookie jar and its connection cache, so its requests reuse keep-alive
 * connections and every request of that client, sequential or parallel,
 * sees the same cookies, while clients never see each other's cookies.  Every request is bounded
 * by CURLOPT_TIMEOUT_MS and every response body by HTTP_MAX_RESPONSE.
 *
 * Long-lived transfers (event streams) run on a struct http_loop, one
 * libcurl multi handle that the caller drives with http_loop_run; their
 * bodies go to a struct http_sink as they arrive.  Requests can run on the
 * same loop (http_perform_on), so open streams keep receiving while a
 * request is in flight, without a second thread.
 * Not thread-safe: the runner is single-threaded; parallelism is libcurl multi.
 */
#ifndef LSC_HTTP_H
#define LSC_HTTP_H

#include <stddef.h>

#include <curl/curl.h>

#include "buf.h"

#ifndef HTTP_MAX_RESPONSE
#define HTTP_MAX_RESPONSE (16 * 1024 * 1024) /* bytes of one response body */
#endif
#ifndef HTTP_MAX_REQUEST_BODY
#define HTTP_MAX_REQUEST_BODY (16 * 1024 * 1024) /* bytes of one request body */
#endif
#ifndef HTTP_MAX_HEADERS
#define HTTP_MAX_HEADERS 256 /* response header lines kept */
#endif
#ifndef HTTP_MAX_TRACE
#define HTTP_MAX_TRACE (256 * 1024) /* bytes of one -v wire trace */
#endif
#ifndef HTTP_TRACE_BODY
#define HTTP_TRACE_BODY 2048 /* body bytes shown per direction in a -v trace */
#endif

/* One request header; value NULL means "remove the header curl would add". */
struct http_header {
    char *name;
    char *value;
};

/* A fully resolved request.  Owned by whoever filled it; see http_req_cleanup. */
struct http_req {
    char *method;
    char *url;
    struct http_header *hdr;
    size_t nhdr;
    struct buf body;
    int has_body;
    long timeout_ms;         /* whole transfer; 0 = unbounded (streams: the caller bounds them) */
    long connect_timeout_ms; /* 0 = timeout_ms */
    int stream;              /* an event stream: the curl(1) reproduction adds -N */
};

/* A response (or a transport failure: status 0 and a curl error text). */
struct http_resp {
    long status;
    struct http_header *hdr; /* received header lines, in order */
    size_t nhdr;
    struct buf body;
    int curl_code; /* CURLcode; 0 on success */
    char error[CURL_ERROR_SIZE];
    double elapsed_ms;
    struct buf trace; /* wire trace when verbose */
};

struct http_client;

/* http_global_init - curl_global_init; call once before anything else.  Returns 0 or -EIO. */
LS_MUST_CHECK int http_global_init(void);

/* http_global_cleanup - curl_global_cleanup. */
void http_global_cleanup(void);

/* http_req_init - an empty request.  Cannot fail. */
void http_req_init(struct http_req *r);

/* http_req_cleanup - free everything the request owns.  NULL-safe; reusable after init. */
void http_req_cleanup(struct http_req *r);

/*
 * http_req_set_header - set (replacing case-insensitively) a header; value
 * NULL records a removal.  Strings are copied.  Returns 0, LS_ETOOMANY past
 * HTTP_MAX_HEADERS, or -ENOMEM.
 */
LS_MUST_CHECK int http_req_set_header(struct http_req *r, const char *name, const char *value);

/* http_req_header - the value of a header set on r (case-insensitive), or NULL. */
const char *http_req_header(const struct http_req *r, const char *name, int *present);

/* http_resp_init - an empty response.  Cannot fail. */
void http_resp_init(struct http_resp *r);

/* http_resp_cleanup - free everything.  NULL-safe; reusable after init. */
void http_resp_cleanup(struct http_resp *r);

/*
 * http_resp_header - the value(s) of a response header (case-insensitive
 * name); several lines are joined with ", " into out.  Returns 1 when
 * present, 0 when absent.  out is reset first.
 */
int http_resp_header(const struct http_resp *r, const char *name, struct buf *out);

/*
 * http_client_new - a simulated client named name (copied) with an empty
 * cookie jar.  Returns NULL on failure.
 */
struct http_client *http_client_new(const char *name);

/* http_client_free - release the client and its handles.  NULL-safe. */
void http_client_free(struct http_client *c);

/* http_client_name - the client's name (borrowed). */
const char *http_client_name(const struct http_client *c);

/*
 * http_perform - send req as client c and fill resp (initialised by the
 * caller).  A transport failure is not an error of this function: it returns
 * 0 with resp->status 0 and resp->curl_code/error set.  Returns -ENOMEM or
 * -EIO only when the request could not be set up.  verbose fills resp->trace.
 */
LS_MUST_CHECK int http_perform(struct http_client *c, const struct http_req *req,
                               struct http_resp *resp, int verbose);

/*
 * http_perform_parallel - send reqs[i] as clients[i] for i < n, all started
 * together on one multi handle, and fill resps[i] (initialised by the caller).
 * Returns as http_perform.
 */
LS_MUST_CHECK int http_perform_parallel(struct http_client **clients, const struct http_req *reqs,
                                        struct http_resp *resps, size_t n, int verbose);

/* ------------------------------------------------------------------ loops */

struct http_loop;
struct http_async;

/*
 * Where the body of an asynchronous transfer goes, piece by piece as it
 * arrives (instead of resp->body).  on_data returns 0 to go on; any other
 * value aborts the transfer (it then ends with a write error).
 */
struct http_sink {
    int (*on_data)(void *ctx, const char *p, size_t n);
    void *ctx;
};

/* http_loop_new - an empty loop (a libcurl multi handle).  NULL when out of memory. */
struct http_loop *http_loop_new(void);

/*
 * http_loop_free - release the loop.  Every transfer started on it must have
 * been freed with http_async_free first.  NULL-safe.
 */
void http_loop_free(struct http_loop *l);

/*
 * http_loop_run - drive every transfer of the loop: do the pending work,
 * record finished transfers, then wait up to wait_ms for network activity
 * (or for wait_ms when nothing runs) and do the work that activity brought.
 * Sink and header callbacks run inside this call.  Returns 0 or -EIO.
 */
LS_MUST_CHECK int http_loop_run(struct http_loop *l, long wait_ms);

/*
 * http_async_start - start req as client c on loop l and return the transfer
 * in *out.  resp (initialised by the caller) receives the headers as they
 * arrive, the body when sink is NULL, and the final status and transport
 * error when the transfer ends.  req, resp, c and *sink (copied) must stay
 * valid until the transfer is freed.  Returns 0, -ENOMEM or a buf error;
 * nothing is started on failure.
 */
LS_MUST_CHECK int http_async_start(struct http_loop *l, struct http_client *c,
                                   const struct http_req *req, struct http_resp *resp, int verbose,
                                   const struct http_sink *sink, struct http_async **out);

/* http_async_status - the final (non-1xx) status once its headers are complete, else 0. */
long http_async_status(const struct http_async *a);

/* http_async_done - 1 once the transfer ended (resp->status / curl_code / error are final). */
int http_async_done(const struct http_async *a);

/*
 * http_async_free - stop the transfer if it still runs (closing its
 * connection), take it off its loop and release it.  NULL-safe.
 */
void http_async_free(struct http_async *a);

/*
 * http_perform_on - http_perform_parallel on loop l, which keeps driving
 * every other transfer of l (open streams) while these requests run; l NULL
 * = a private loop.  Returns as http_perform.
 */
LS_MUST_CHECK int http_perform_on(struct http_loop *l, struct http_client **clients,
                                  const struct http_req *reqs, struct http_resp *resps, size_t n,
                                  int verbose);

/*
 * http_repro - append a ready-to-paste shell command that reproduces req
 * with curl(1) (with -N for streams).  Returns 0 or a buf error.
 */
LS_MUST_CHECK int http_repro(const struct http_req *req, struct buf *out);

#endif
