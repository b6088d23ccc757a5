/*
 * match.h - the JSON subset matcher of the fixture format (contract §8).
 *
 * An expected value ("pattern") matches an actual JSON value when:
 *   - objects: every expected key matches (extra actual keys are allowed,
 *     except below a $exact, where they are not);
 *   - arrays: same length and element-wise match;
 *   - scalars: JSON equality (1 == 1.0);
 *   - matcher objects (one key starting with '$'): $any $absent $type $regex
 *     $var $len $gt $gte $lt $lte $one_of $contains $exact $not.
 * A missing actual value is passed as NULL; only $absent (and $not, $one_of
 * wrapping it) can match it.
 * Mismatches are described with the JSON Pointer of the mismatching value
 * and both values.  Not thread-safe per context; contexts are independent.
 */
#ifndef LSC_MATCH_H
#define LSC_MATCH_H

#include <cJSON.h>

#include "buf.h"
#include "vars.h"

#ifndef MATCH_MAX_MESSAGES
#define MATCH_MAX_MESSAGES 8 /* mismatch lines reported per comparison */
#endif

struct match_ctx {
    const struct vars *vars; /* for $var; borrowed */
    struct buf *msg;         /* mismatch lines appended here; NULL = quiet; borrowed */
    int header_mode;         /* actual values are header strings: compare numerically */
    int nmsg;                /* mismatch lines written so far */
};

/*
 * match_value - 1 when actual (NULL = missing) matches the pattern expected,
 * else 0 with up to MATCH_MAX_MESSAGES lines "PTR: expected X, got Y"
 * appended to m->msg.  ptr is the JSON Pointer (or label) of actual.  The
 * pattern must have passed match_check; {{var}} substitution is done by the
 * caller beforehand.
 */
int match_value(struct match_ctx *m, const cJSON *expected, const cJSON *actual, const char *ptr);

/*
 * match_matcher_name - when obj has exactly one key and it starts with '$',
 * return that key ("$regex"); else NULL.
 */
const char *match_matcher_name(const cJSON *obj);

/*
 * match_check - validate a pattern before anything is sent: every '$' key
 * must be a known matcher, alone in its object, with a well-typed argument;
 * regexes without {{var}} must compile.  where is the pattern's pointer in
 * the fixture.  Returns 0 or LS_EPARSE with one line per problem in err.
 */
int match_check(const cJSON *pattern, const char *where, struct buf *err);

/* json_equal - JSON equality (numbers by value, objects ignoring key order). */
int json_equal(const cJSON *a, const cJSON *b);

/*
 * json_pointer_get - resolve an RFC 6901 pointer ("" = the document).
 * Returns the borrowed value or NULL when it does not resolve.
 */
const cJSON *json_pointer_get(const cJSON *doc, const char *ptr);

/* json_pointer_push - append "/" + token (escaped per RFC 6901) to ptr. */
LS_MUST_CHECK int json_pointer_push(struct buf *ptr, const char *token);

/*
 * json_brief - append a compact, display-safe rendering of v (or "(missing)"
 * for NULL), cut at max bytes.  Returns 0 or a buf error.
 */
int json_brief(struct buf *out, const cJSON *v, size_t max);

#endif
