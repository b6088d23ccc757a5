/*
 * vars.h - fixture variables and {{name}} substitution (contract §8).
 *
 * A variable table maps names to JSON values: the case's "vars", captures
 * made by earlier steps, and the built-ins {{run}}, {{case}} and {{i}} (set
 * by the runner like any other variable).  {{client.NAME}} is computed from
 * the run id.  Substitution is typed: a string that is exactly "{{name}}"
 * becomes the variable's JSON value (a captured integer stays an integer);
 * any other {{name}} inside a string is interpolated as text.
 * Not thread-safe: one table per running case.
 */
#ifndef LSC_VARS_H
#define LSC_VARS_H

#include <stddef.h>

#include <cJSON.h>

#include "buf.h"

#ifndef VARS_MAX
#define VARS_MAX 1024 /* variables per case */
#endif
#ifndef VARS_MAX_TEXT
#define VARS_MAX_TEXT (1024 * 1024) /* bytes of one substituted string */
#endif

struct vars;

/* vars_new - an empty table for a run whose {{run}} is run_id (copied).  NULL on ENOMEM. */
struct vars *vars_new(const char *run_id);

/* vars_free - free the table and every value.  NULL-safe. */
void vars_free(struct vars *v);

/*
 * vars_set - bind name to a deep copy of value, replacing an earlier binding.
 * Returns 0, LS_ETOOMANY past VARS_MAX, or -ENOMEM (table unchanged).
 */
LS_MUST_CHECK int vars_set(struct vars *v, const char *name, const cJSON *value);

/* vars_set_string - vars_set with a JSON string value. */
LS_MUST_CHECK int vars_set_string(struct vars *v, const char *name, const char *s);

/* vars_set_number - vars_set with a JSON number value. */
LS_MUST_CHECK int vars_set_number(struct vars *v, const char *name, double d);

/* vars_unset - remove a binding if present. */
void vars_unset(struct vars *v, const char *name);

/*
 * vars_lookup - a new deep copy of the value bound to name (the caller owns
 * it and frees it with cJSON_Delete), or NULL when unbound or on ENOMEM.
 * "client.NAME" resolves to "<run>-NAME".
 */
cJSON *vars_lookup(const struct vars *v, const char *name);

/* vars_is_name - 1 when s[0..n) is a valid variable name ([A-Za-z0-9_.-]+). */
int vars_is_name(const char *s, size_t n);

/*
 * vars_whole - when s is exactly "{{name}}", store the name's bounds in
 * *name / *len and return 1; else return 0.
 */
int vars_whole(const char *s, const char **name, size_t *len);

/*
 * vars_scan - call cb(ctx, name, len) for every {{name}} reference inside s,
 * in order.  Text that looks like "{{" but is no reference is skipped.
 */
void vars_scan(const char *s, void (*cb)(void *ctx, const char *name, size_t len), void *ctx);

/*
 * vars_value_text - append the text form of a value used inside a larger
 * string: strings raw, numbers shortest, true/false/null, arrays/objects as
 * compact JSON.  Returns 0 or a buf error.
 */
LS_MUST_CHECK int vars_value_text(const cJSON *val, struct buf *out);

/*
 * vars_subst_text - append s with every {{name}} interpolated as text.
 * Returns 0; LS_ENOTFOUND when a name is unbound (err gets a message); or a
 * buf error (LS_ETOOBIG past VARS_MAX_TEXT).
 */
LS_MUST_CHECK int vars_subst_text(const struct vars *v, const char *s, struct buf *out,
                                  struct buf *err);

/*
 * vars_subst - a deep copy of src with every string substituted (object keys
 * are left alone).  Returns the copy (caller frees with cJSON_Delete), or NULL
 * with a message in err on an unbound name or on allocation failure.
 */
cJSON *vars_subst(const struct vars *v, const cJSON *src, struct buf *err);

#endif
