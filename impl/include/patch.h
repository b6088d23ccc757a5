/*
 * patch.h - PATCH and PUT bodies of /item: parse, validate, apply (contract
 * §3.3, §3.4, §5, §7; docs/internals/patch.md).
 *
 * The module is pure: no I/O, no globals, no locks.  patch_parse turns a body
 * into a validated, normalized struct patch (or one precise error with a JSON
 * pointer); patch_apply computes the next labels from the current ones into a
 * fresh value and never touches the input, so a failed write cannot leave an
 * item half-changed.  Every function is thread-safe on distinct objects and
 * reentrant (see patch.md for the one cJSON caveat).
 *
 * Numbers are IEEE doubles (as cJSON reads them); all number text is produced
 * and read with the "C" LC_NUMERIC locale, which labelsyncd never changes.
 */
#ifndef LS_PATCH_H
#define LS_PATCH_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "buf.h"
#include "err.h"

#define PATCH_MAX_NOTES       32768               /* bytes of notes */
#define PATCH_MAX_TAG         128                 /* bytes of one tag after trimming */
#define PATCH_MAX_TAGS_IN     256                 /* entries per request array */
#define PATCH_MAX_TAGS_ITEM   64                  /* tags on one item after apply */
#define PATCH_MAX_METRICS     64                  /* keys of set_metrics / metrics */
#define PATCH_MAX_METRIC_NAME 64                  /* bytes of one metric name */
#define PATCH_MAX_VERSION     9007199254740991ULL /* 2^53 - 1 */
#define PATCH_MAX_BODY        (1u << 20) /* bytes handed to patch_parse (HTTP caps far lower) */
#define PATCH_MAX_DEPTH       64         /* nesting of arrays/objects in a body */
#define PATCH_MAX_NUMBER_TEXT 63         /* characters of one JSON number (cJSON's own limit) */
#define PATCH_MAX_SERIALIZED  (1u << 20) /* bytes of patch_serialize output */
#define PATCH_NUMBER_BUF      32         /* buffer size for patch_format_number */

struct labels_metric {
    char *name;
    double value;
};

/* The mutable part of an item record. */
struct labels {
    char **tags; /* normalized: trimmed, non-empty, unique, in order */
    size_t ntags;
    char *notes;                   /* never NULL after labels_init: "" (see labels_init) */
    int star;                      /* -1 = null, else 0..5 */
    struct labels_metric *metrics; /* sorted bytewise by name, unique */
    size_t nmetrics;
};

/*
 * labels_init - make l the empty value (tags [], notes "", star null,
 * metrics {}).  Cannot fail: an empty notes points at a shared static ""
 * that labels_cleanup knows not to free, so a struct labels may be copied by
 * value (ownership moves with it).  Never write through an empty notes.
 * Thread-safe.
 */
void labels_init(struct labels *l);

/*
 * labels_cleanup - free everything l owns and leave the empty value.
 * NULL-safe.  Thread-safe on distinct objects.
 */
void labels_cleanup(struct labels *l);

/*
 * labels_copy - deep copy of src into dst (whose previous contents are not
 * freed: pass an empty or uninitialized dst).  Returns 0 or -ENOMEM, in which
 * case dst is the empty value.  Thread-safe on distinct objects.
 */
LS_MUST_CHECK int labels_copy(struct labels *dst, const struct labels *src);

/*
 * labels_equal - true when both values are the same: tags as ordered lists,
 * notes bytewise, star, metrics by name and value (doubles compared with ==,
 * so -0 equals 0).  Thread-safe.
 */
bool labels_equal(const struct labels *a, const struct labels *b);

/* Flags for labels_to_json_ex. */
enum {
    /* Metric values as cJSON raw nodes holding the shortest text that reads
     * back to the same double; cJSON 1.7.15 prints some doubles with one
     * digit too few (0.30000000000000004 -> 0.3).  Readers of the tree then
     * see cJSON_Raw, not cJSON_Number, for metric values. */
    LABELS_JSON_EXACT = 1u << 0,
};

/*
 * labels_to_json - add "tags", "notes", "star", "metrics" (in that order) to
 * the object obj.  Metrics come out sorted by name.  Returns 0, or -ENOMEM
 * in which case obj is as it was (added members are detached and freed).
 * obj stays owned by the caller.  Thread-safe on distinct objects.
 * labels_to_json_ex takes LABELS_JSON_* flags; labels_to_json is flags 0.
 */
LS_MUST_CHECK int labels_to_json(const struct labels *l, cJSON *obj);
LS_MUST_CHECK int labels_to_json_ex(const struct labels *l, cJSON *obj, unsigned flags);

/*
 * patch_format_number - the shortest decimal text (at most 17 significant
 * digits, "%g" style, always valid JSON) that strtod reads back as exactly v;
 * -0 is written as "0".  v must be finite.  out must hold PATCH_NUMBER_BUF
 * bytes; returns the length written (excluding the NUL).  Thread-safe.
 */
size_t patch_format_number(double v, char *out);

enum patch_kind { PATCH_KIND_PATCH, PATCH_KIND_PUT };

/* struct patch.has: which fields the body set. */
enum {
    PATCH_F_BASE_VERSION = 1u << 0,
    PATCH_F_STAR = 1u << 1,
    PATCH_F_NOTES = 1u << 2,
    PATCH_F_SET_TAGS = 1u << 3,
    PATCH_F_ADD_TAGS = 1u << 4,
    PATCH_F_REMOVE_TAGS = 1u << 5,
    PATCH_F_METRICS = 1u << 6,
};

/* patch_apply *changed: which fields differ from the current value. */
enum {
    PATCH_CHANGED_TAGS = 1u << 0,
    PATCH_CHANGED_NOTES = 1u << 1,
    PATCH_CHANGED_STAR = 1u << 2,
    PATCH_CHANGED_METRICS = 1u << 3,
};

/* A parsed, validated, normalized body.  Fields not in `has` are empty. */
struct patch {
    unsigned has; /* PATCH_F_* */
    unsigned long long base_version;
    int star;        /* -1 = null */
    char *notes;     /* set_notes (null -> ""); NULL when not set */
    char **set_tags; /* normalized (null -> []) */
    size_t nset_tags;
    char **add_tags; /* normalized */
    size_t nadd_tags;
    char **remove_tags; /* normalized */
    size_t nremove_tags;
    struct labels_metric *metrics; /* sorted, unique (null -> {}) */
    size_t nmetrics;
};

/* One error, ready for the HTTP error body of contract §5. */
struct patch_error {
    const char *code;     /* "invalid_json" "invalid_type" "invalid_value" "unknown_field"
                           * "duplicate_field" "too_many_tags" "body_too_large"
                           * "internal_error" (-ENOMEM); static */
    char pointer[256];    /* RFC 6901 pointer of the offending value; "" = whole body */
    char field[160];      /* unknown_field: the key (valid UTF-8, safely truncated) */
    const char *expected; /* invalid_type: "object" "string" "array" "integer" "number"
                           * "string or null" "array or null" "object or null"
                           * "integer or null"; else NULL; static */
    size_t offset;        /* invalid_json: byte offset of the error */
    char message[256];    /* one human sentence */
};

/*
 * patch_parse - parse and validate the body body[0..len) of a PATCH or PUT
 * (body need not be NUL-terminated; nothing past len is read).
 *
 * PATCH keys: base_version set_star set_notes set_tags add_tags remove_tags
 * set_metrics.  PUT keys: tags notes star metrics (omitted ones take their
 * defaults [], "", null, {} and `has` is always STAR|NOTES|SET_TAGS|METRICS);
 * path version updated_at updated_by v exif hash original_position
 * table_fields are accepted and ignored.  Rules and the order in which
 * errors win: docs/internals/patch.md.
 *
 * Returns 0 with *out filled (release with patch_cleanup), or with *out empty
 * and *err filled: LS_EPARSE (invalid_json), LS_ETYPE (invalid_type),
 * LS_EUNKNOWN (unknown_field), LS_EDUP (duplicate_field), LS_EVALUE
 * (invalid_value), LS_ETOOBIG (len > PATCH_MAX_BODY, "body_too_large"), or
 * -ENOMEM.  Thread-safe on distinct objects.
 */
LS_MUST_CHECK int patch_parse(enum patch_kind kind, const char *body, size_t len, struct patch *out,
                              struct patch_error *err);

/* patch_cleanup - free everything p owns and zero it.  NULL-safe. */
void patch_cleanup(struct patch *p);

/*
 * patch_json_parse - the strict JSON front end shared by every JSON body the
 * server reads: the size cap (PATCH_MAX_BODY), a strict RFC 8259 scan (cJSON
 * alone accepts too much), and cJSON parsing.  A "\u0000" escape inside a
 * string is turned into bytes that fail UTF-8 validation, so callers that
 * validate their strings reject it instead of seeing a silently cut string.
 * Returns a tree (cJSON_Delete it) or NULL with *rc = LS_ETOOBIG, LS_EPARSE
 * (err->code "invalid_json", err->offset set) or -ENOMEM.  Thread-safe.
 */
cJSON *patch_json_parse(const char *body, size_t len, struct patch_error *err, int *rc);

/*
 * patch_apply - compute p applied to cur into out.  out must be empty
 * (labels_init'd or zeroed); on success the caller owns it (labels_cleanup).
 * Order: set_tags replaces, remove_tags removes, add_tags appends the missing
 * ones at the end; set_star; set_notes; set_metrics replaces the map.
 * *changed gets the PATCH_CHANGED_* bits of the fields whose value differs
 * from cur (tags as ordered lists).
 *
 * Returns 0; LS_ETOOMANY with err->code "too_many_tags" when the resulting
 * tag list would exceed PATCH_MAX_TAGS_ITEM; or -ENOMEM.  Atomic: on failure
 * out is the empty value and *changed is 0; cur is never modified.  err may
 * be NULL.  Thread-safe on distinct objects (cur may be shared read-only).
 */
LS_MUST_CHECK int patch_apply(const struct patch *p, const struct labels *cur, struct labels *out,
                              unsigned *changed, struct patch_error *err);

/*
 * patch_serialize - append the canonical compact JSON of p to out: keys in
 * the fixed order of the contract (PATCH: base_version set_star set_notes
 * set_tags add_tags remove_tags set_metrics, only those in p->has; PUT: tags
 * notes star metrics, always), normalized values, shortest round-trip
 * numbers.  patch_parse(kind, result) gives a patch equal to p.  Two bodies
 * that mean the same give the same bytes, which is what the idempotency
 * fingerprint needs.  Returns 0, LS_ETOOBIG (out's cap or
 * PATCH_MAX_SERIALIZED), or -ENOMEM; on failure out is unchanged.
 * Thread-safe on distinct objects.
 */
LS_MUST_CHECK int patch_serialize(const struct patch *p, enum patch_kind kind, struct buf *out);

/* patch_equal - same `has` and same values for every field in it. Thread-safe. */
bool patch_equal(const struct patch *a, const struct patch *b);

#endif
