/*
 * fixture.h - loading and structural checking of conformance fixtures
 * (spec/cases/<id>.json, contract §8) and of the canon vectors (§9).
 *
 * Everything a run will interpret is checked here, before any request is
 * sent, so that an unknown step kind, an unknown matcher or a malformed
 * field is a fixture error (exit 2) and never a confusing FAIL halfway
 * through a run.  The JSON Schema in spec/schema/ describes the same format
 * for humans and for `--lint`.  Not thread-safe.
 */
#ifndef LSC_FIXTURE_H
#define LSC_FIXTURE_H

#include <stddef.h>

#include <cJSON.h>

#include "buf.h"
#include "util.h"

#ifndef FIXTURE_MAX_BYTES
#define FIXTURE_MAX_BYTES (1024 * 1024) /* one fixture file */
#endif
#ifndef FIXTURE_MAX_CASES
#define FIXTURE_MAX_CASES 4096 /* files in <spec>/cases */
#endif
#ifndef FIXTURE_MAX_VECTORS_BYTES
#define FIXTURE_MAX_VECTORS_BYTES (8 * 1024 * 1024) /* spec/vectors/canon.json */
#endif
#ifndef FIXTURE_MAX_PARALLEL
#define FIXTURE_MAX_PARALLEL 1024 /* requests in one parallel group */
#endif
#ifndef FIXTURE_MAX_ATTEMPTS
#define FIXTURE_MAX_ATTEMPTS 1000 /* repeat.max_attempts */
#endif
#ifndef FIXTURE_MAX_SLEEP_MS
#define FIXTURE_MAX_SLEEP_MS 60000 /* sleep_ms and repeat.interval_ms, before scaling */
#endif
#ifndef FIXTURE_MAX_TIMEOUT_MS
#define FIXTURE_MAX_TIMEOUT_MS 600000 /* per-step timeout_ms, before scaling */
#endif
#ifndef FIXTURE_MAX_SSE_EVENTS
#define FIXTURE_MAX_SSE_EVENTS 1024 /* expected events in one sse_expect */
#endif
#ifndef FIXTURE_MAX_SSE_IGNORE
#define FIXTURE_MAX_SSE_IGNORE 64 /* event types in one sse_expect.ignore */
#endif
#ifndef FIXTURE_MAX_SSE_COMMENTS
#define FIXTURE_MAX_SSE_COMMENTS 1000000 /* sse_check.comments_min */
#endif
#ifndef FIXTURE_MAX_REPEAT_BYTES
#define FIXTURE_MAX_REPEAT_BYTES (1024 * 1024) /* a vector's input_repeat expansion */
#endif

/*
 * The feature a case lists in `requires` to use lifecycle steps.  It is not
 * announced by servers: the runner provides it in --server mode only.
 */
#define FIXTURE_LIFECYCLE "lifecycle"

/* fixture_is_lifecycle - 1 when the case requires FIXTURE_LIFECYCLE. */
int fixture_is_lifecycle(const cJSON *c);

/* One loaded case. */
struct fixture {
    char *file;  /* path of the file; owned */
    char *id;    /* owned copy of "id" (or the file stem when the id is unusable) */
    cJSON *json; /* the parsed case; owned */
};

/* The selected cases of a spec directory, sorted by id. */
struct fixture_set {
    struct fixture *f;
    size_t n;
    int selftest; /* the directory holds runner self-tests (marker file SELFTEST) */
};

/* fixture_set_init - an empty set.  Cannot fail. */
void fixture_set_init(struct fixture_set *s);

/* fixture_set_cleanup - free every case.  NULL-safe; reusable after init. */
void fixture_set_cleanup(struct fixture_set *s);

/*
 * fixture_is_selftest_dir - 1 when spec_dir contains the marker file
 * SELFTEST, which allows the top-level "selftest_expect" field.
 */
int fixture_is_selftest_dir(const char *spec_dir);

/*
 * fixture_list_files - the sorted "<spec>/cases/<id>.json" paths (caller frees
 * each and the array).  Returns 0 with *n set, -errno, or LS_ETOOMANY.
 */
LS_MUST_CHECK int fixture_list_files(const char *spec_dir, char ***files, size_t *n);

/*
 * fixture_parse_file - read and parse one fixture file.  Returns the JSON
 * (caller frees) or NULL with "file: problem" lines appended to err.
 */
cJSON *fixture_parse_file(const char *file, struct buf *err);

/*
 * fixture_load - load the cases of spec_dir whose id matches one of filters
 * (all when filters is empty) into out, checking each with fixture_check.
 * Files that do not match are not checked.  Returns 0, or LS_EPARSE with one
 * "file: problem" line per problem in err (out then holds nothing useful),
 * or -errno when the directory cannot be read.
 */
LS_MUST_CHECK int fixture_load(const char *spec_dir, const struct globlist *filters,
                               struct fixture_set *out, struct buf *err);

/*
 * fixture_check - structural check of one case: fields, step kinds, request
 * shapes, matchers, captures and bounds.  allow_selftest permits (and then
 * requires) "selftest_expect".  Appends "file: /pointer: problem" lines to err;
 * returns 0 or LS_EPARSE.
 */
int fixture_check(const cJSON *c, const char *file, int allow_selftest, struct buf *err);

/* fixture_str - the string member key of obj, or NULL. */
const char *fixture_str(const cJSON *obj, const char *key);

/* fixture_spec_text - append the case's spec section(s) joined by ",". */
LS_MUST_CHECK int fixture_spec_text(const cJSON *c, struct buf *out);

/* fixture_uses_vectors - 1 when some step of the case is a vectors step. */
int fixture_uses_vectors(const cJSON *c);

/*
 * fixture_load_vectors - read and check <spec>/vectors/canon.json.  Returns
 * the parsed document (caller frees) or NULL with problems in err.
 */
cJSON *fixture_load_vectors(const char *spec_dir, struct buf *err);

/*
 * fixture_vector_input - the raw bytes a vector stands for (input, input_hex
 * or query, followed by input_repeat's unit repeated count times) into out.
 * *is_query is set for query vectors (sent verbatim, not re-encoded).
 * Returns 0, LS_EPARSE, LS_ETOOBIG or a buf error.
 */
LS_MUST_CHECK int fixture_vector_input(const cJSON *v, struct buf *out, int *is_query);

#endif
