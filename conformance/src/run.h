/*
 * run.h - executing one fixture case against a server (contract §8).
 *
 * A case runs its steps in order and stops at the first failing step; the
 * failure message names the step, lists expected vs actual (status, header,
 * JSON pointer with both values) and ends with a curl(1) command that
 * reproduces the failing request.  Event streams (sse_* steps, see
 * stream.h) stay open across steps and are closed when the case ends; a
 * stream violation (ids not strictly increasing, a parser cap) fails the
 * step during or after which it was seen.  Lifecycle steps (lifecycle.h)
 * act on o->life; a failing step of such a case also quotes the server's
 * state and stderr, and the case ends by stopping the server (a server
 * that does not stop cleanly fails the case).  Feature gating, `disabled`
 * and expect-fail bookkeeping are the caller's job.  Not thread-safe.
 */
#ifndef LSC_RUN_H
#define LSC_RUN_H

#include <cJSON.h>

#include "buf.h"

struct life;

#ifndef RUN_DEFAULT_TIMEOUT_MS
#define RUN_DEFAULT_TIMEOUT_MS 10000 /* per request, before --timeout-scale */
#endif
#ifndef RUN_SSE_WITHIN_MS
#define RUN_SSE_WITHIN_MS 5000 /* default within_ms of stream steps, before --timeout-scale */
#endif
#ifndef RUN_SSE_WINDOW_MS
#define RUN_SSE_WINDOW_MS 1000 /* default sse_expect_none.window_ms, before --timeout-scale */
#endif
#ifndef RUN_MAX_CLIENTS
#define RUN_MAX_CLIENTS 64 /* simulated clients per case */
#endif
#ifndef RUN_MAX_MESSAGE
#define RUN_MAX_MESSAGE (256 * 1024) /* bytes of one failure message */
#endif

/* Settings shared by every case of a run; all pointers borrowed. */
struct run_opts {
    const char *url;      /* base URL without a trailing '/' */
    const char *origin;   /* value of an Origin header added to every request, or NULL */
    const char *run_id;   /* the {{run}} value */
    double scale;         /* --timeout-scale */
    int verbose;          /* print a wire trace of every request */
    const cJSON *vectors; /* parsed spec/vectors/canon.json, or NULL if no case needs it */
    struct life *life;    /* --server slot of a lifecycle case (lifecycle steps), or NULL */
};

enum case_status { CASE_PASS, CASE_FAIL, CASE_SKIP, CASE_XFAIL, CASE_XPASS };

/* The outcome of one case. */
struct case_result {
    enum case_status status;
    char *message; /* failure or skip text (owned, may be NULL) */
    double duration_ms;
};

/*
 * run_case - run the steps of fixture (already checked by fixture_check)
 * and set res->status to CASE_PASS or CASE_FAIL, res->message (owned by
 * res; free it) and res->duration_ms.  Returns 0, or -ENOMEM when the run
 * could not be carried out at all.
 */
LS_MUST_CHECK int run_case(const struct run_opts *o, const cJSON *fixture, struct case_result *res);

/*
 * run_parse_json - parse a response body as one JSON value followed only by
 * whitespace.  Returns the value (caller frees) or NULL.
 */
cJSON *run_parse_json(const char *body, size_t len);

#endif
