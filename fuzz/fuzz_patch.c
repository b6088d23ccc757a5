/*
 * fuzz_patch.c - PATCH and PUT bodies (patch.h; PROTOCOL §5, §7) through
 * parse, serialize and apply.
 *
 * The input is one request body, parsed both as a PATCH and as a PUT (the
 * fuzzer's buffer itself, so a read past len is caught).  Properties:
 *   - parse is deterministic (same verdict, same error twice) and a failure
 *     leaves the patch empty and a well-formed error (known code, UTF-8
 *     pointer/field/message, invalid_json offset <= len);
 *   - parse -> serialize -> parse round-trips (patch_equal), and serializing
 *     the re-parsed patch gives the same bytes (the canonical form the
 *     idempotency fingerprint relies on, PROTOCOL §6.2);
 *   - apply, on each of three fixed documents (empty; every field set; 64
 *     tags, the per-item cap), is atomic: the document is unchanged after
 *     every call (it is shared, read-only), a failure leaves out empty and
 *     changed 0, and only too_many_tags or -ENOMEM may fail;
 *   - changed is 0 exactly when the result equals the document;
 *   - applying twice equals applying once (second apply: same labels,
 *     changed 0);
 *   - the result written as JSON (labels_to_json_ex, exact numbers) and read
 *     back as a PUT gives the same labels.
 */
#include <stdbool.h>
#include <string.h>

#include <cJSON.h>

#include "canon.h"
#include "fuzz.h"
#include "patch.h"

#define MAX_INPUT (PATCH_MAX_BODY + 1)
#define NDOCS     3

/* Built once by LLVMFuzzerInitialize, read-only afterwards (checked after every apply). */
static struct labels docs[NDOCS];
static bool docs_ready;

/* Parse a PUT body known to be valid and apply it to the empty value. */
static void make_doc(struct labels *out, const char *body)
{
    struct patch p;
    struct patch_error err;
    struct labels empty;
    unsigned changed = 0;

    labels_init(&empty);
    labels_init(out);
    if (patch_parse(PATCH_KIND_PUT, body, strlen(body), &p, &err) != 0 ||
        patch_apply(&p, &empty, out, &changed, &err) != 0) {
        fprintf(stderr, "fuzz_patch: fixture body rejected: %s\n", body);
        abort();
    }
    patch_cleanup(&p);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char body[1024];
    size_t n = 0;

    (void)argc;
    (void)argv;
    if (docs_ready)
        return 0;
    labels_init(&docs[0]);
    make_doc(&docs[1], "{\"tags\":[\"a\",\"b\",\"c d\",\"\\u00e9t\\u00e9\"],\"notes\":\"n\","
                       "\"star\":3,\"metrics\":{\"m\":1,\"z\":-0.5,\"\\u00e9\":1e-300}}");
    n += (size_t)snprintf(body + n, sizeof(body) - n, "{\"tags\":[");
    for (int i = 0; i < PATCH_MAX_TAGS_ITEM; i++)
        n += (size_t)snprintf(body + n, sizeof(body) - n, "%s\"t%d\"", i ? "," : "", i);
    snprintf(body + n, sizeof(body) - n, "],\"star\":0}");
    make_doc(&docs[2], body);
    docs_ready = true;
    return 0;
}

static bool known_code(const char *c)
{
    static const char *const codes[] = {"invalid_json",   "invalid_type",    "invalid_value",
                                        "unknown_field",  "duplicate_field", "too_many_tags",
                                        "body_too_large", "internal_error"};

    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (c && strcmp(c, codes[i]) == 0)
            return true;
    return false;
}

static bool text_ok(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);

    return n < cap && canon_utf8_valid(s, n);
}

static bool patch_is_empty(const struct patch *p)
{
    return p->has == 0 && !p->notes && !p->set_tags && !p->nset_tags && !p->add_tags &&
           !p->nadd_tags && !p->remove_tags && !p->nremove_tags && !p->metrics && !p->nmetrics;
}

static void check_error(int rc, const struct patch_error *e, size_t len)
{
    FUZZ_CHECK(rc == LS_EPARSE || rc == LS_ETYPE || rc == LS_EUNKNOWN || rc == LS_EDUP ||
               rc == LS_EVALUE || rc == LS_ETOOBIG || rc == -ENOMEM);
    FUZZ_CHECK(known_code(e->code));
    FUZZ_CHECK(text_ok(e->pointer, sizeof(e->pointer)));
    FUZZ_CHECK(text_ok(e->field, sizeof(e->field)));
    FUZZ_CHECK(text_ok(e->message, sizeof(e->message)));
    FUZZ_CHECK(e->pointer[0] == '\0' || e->pointer[0] == '/');
    if (rc == LS_EPARSE)
        FUZZ_CHECK(strcmp(e->code, "invalid_json") == 0 && e->offset <= len);
}

/* The result of an apply, written as JSON and read back as a PUT, is the same labels. */
static void check_json_round_trip(const struct labels *l)
{
    cJSON *o = cJSON_CreateObject();
    struct labels empty, back;
    struct patch p;
    struct patch_error err;
    unsigned changed = 0;
    char *text;
    int rc;

    if (!o || labels_to_json_ex(l, o, LABELS_JSON_EXACT) != 0 ||
        !(text = cJSON_PrintUnformatted(o))) {
        cJSON_Delete(o);
        return; /* out of memory only */
    }
    cJSON_Delete(o);
    labels_init(&empty);
    labels_init(&back);
    rc = patch_parse(PATCH_KIND_PUT, text, strlen(text), &p, &err);
    if (rc != 0)
        fprintf(stderr, "labels JSON not accepted back (%s at %s): %s\n", err.code, err.pointer,
                text);
    FUZZ_CHECK(rc == 0);
    rc = patch_apply(&p, &empty, &back, &changed, &err);
    FUZZ_CHECK(rc == 0 && labels_equal(&back, l));
    labels_cleanup(&back);
    patch_cleanup(&p);
    cJSON_free(text);
}

static void check_apply(const struct patch *p, const struct labels *cur)
{
    struct labels snap, out, out2;
    struct patch_error err;
    unsigned changed = 0xFF, changed2 = 0xFF;
    int rc;

    if (labels_copy(&snap, cur) != 0)
        return;
    labels_init(&out);
    memset(&err, 0, sizeof(err));
    rc = patch_apply(p, cur, &out, &changed, &err);
    FUZZ_CHECK(labels_equal(cur, &snap)); /* cur is never modified */
    if (rc != 0) {
        struct labels empty;

        labels_init(&empty);
        FUZZ_CHECK(rc == LS_ETOOMANY || rc == -ENOMEM);
        FUZZ_CHECK(changed == 0 && labels_equal(&out, &empty));
        if (rc == LS_ETOOMANY)
            FUZZ_CHECK(err.code && strcmp(err.code, "too_many_tags") == 0);
        labels_cleanup(&snap);
        return;
    }
    FUZZ_CHECK((changed & ~15u) == 0);
    FUZZ_CHECK((changed == 0) == labels_equal(&out, cur));
    FUZZ_CHECK(out.ntags <= PATCH_MAX_TAGS_ITEM && out.nmetrics <= PATCH_MAX_METRICS);
    FUZZ_CHECK(out.star >= -1 && out.star <= 5 && out.notes != NULL);
    for (size_t i = 1; i < out.nmetrics; i++)
        FUZZ_CHECK(strcmp(out.metrics[i - 1].name, out.metrics[i].name) < 0);
    /* Applying again changes nothing. */
    labels_init(&out2);
    rc = patch_apply(p, &out, &out2, &changed2, &err);
    if (rc != -ENOMEM) {
        FUZZ_CHECK(rc == 0 && changed2 == 0 && labels_equal(&out2, &out));
        labels_cleanup(&out2);
    }
    check_json_round_trip(&out);
    labels_cleanup(&out);
    labels_cleanup(&snap);
}

static void check_kind(enum patch_kind kind, const char *body, size_t len)
{
    struct patch p, p2, p3;
    struct patch_error e, e2;
    struct buf s1, s2;
    int rc, rc2;

    memset(&e, 0, sizeof(e));
    memset(&e2, 0, sizeof(e2));
    rc = patch_parse(kind, body, len, &p, &e);
    rc2 = patch_parse(kind, body, len, &p2, &e2);
    FUZZ_CHECK(rc == rc2);
    if (rc != 0) {
        FUZZ_CHECK(patch_is_empty(&p) && patch_is_empty(&p2));
        check_error(rc, &e, len);
        FUZZ_CHECK(strcmp(e.code, e2.code) == 0 && strcmp(e.pointer, e2.pointer) == 0 &&
                   e.offset == e2.offset && strcmp(e.message, e2.message) == 0);
        return;
    }
    FUZZ_CHECK(patch_equal(&p, &p2));
    patch_cleanup(&p2);
    if (kind == PATCH_KIND_PUT)
        FUZZ_CHECK(p.has == (PATCH_F_STAR | PATCH_F_NOTES | PATCH_F_SET_TAGS | PATCH_F_METRICS));

    /* parse -> serialize -> parse round-trips; the canonical bytes are a fixed point. */
    buf_init(&s1, PATCH_MAX_SERIALIZED);
    buf_init(&s2, PATCH_MAX_SERIALIZED);
    rc = patch_serialize(&p, kind, &s1);
    FUZZ_CHECK(rc == 0 || rc == -ENOMEM);
    if (rc == 0) {
        char *exact = fuzz_dup(s1.data, s1.len);

        rc = patch_parse(kind, exact, s1.len, &p3, &e);
        if (rc != 0)
            fprintf(stderr, "serialized patch rejected (%s at %s): %.*s\n", e.code, e.pointer,
                    (int)s1.len, s1.data);
        FUZZ_CHECK(rc == 0);
        FUZZ_CHECK(patch_equal(&p, &p3));
        FUZZ_CHECK(patch_serialize(&p3, kind, &s2) == 0);
        FUZZ_CHECK(s1.len == s2.len && memcmp(s1.data, s2.data, s1.len) == 0);
        patch_cleanup(&p3);
        free(exact);
    }
    buf_cleanup(&s1);
    buf_cleanup(&s2);

    for (int d = 0; d < NDOCS; d++)
        check_apply(&p, &docs[d]);
    patch_cleanup(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    if (!docs_ready)
        LLVMFuzzerInitialize(NULL, NULL);
    check_kind(PATCH_KIND_PATCH, (const char *)data, size);
    check_kind(PATCH_KIND_PUT, (const char *)data, size);
    return 0;
}
