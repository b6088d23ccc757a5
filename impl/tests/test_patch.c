/*
 * test_patch.c - unit tests of the patch module (cmocka).
 *
 * The bulk of the behaviour is pinned by spec/vectors/patch.json, shared with
 * the fuzz seeds and other implementations; every vector is checked for its
 * error (code, pointer, expected, field, offset) or its after-state and
 * changed list, plus atomicity and the parse -> serialize -> parse round
 * trip.  The hand-written tests cover what vectors cannot express: the labels
 * helpers, allocation failure, reading exactly len bytes, serialization bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "canon.h"
#include "patch.h"
#include "testutil.h"

/* ------------------------------------------------------------------ */
/* helpers                                                              */

static char *xstrdup(const char *s)
{
    char *p = strdup(s);

    assert_non_null(p);
    return p;
}

static int metric_name_cmp(const void *a, const void *b)
{
    const struct labels_metric *x = a, *y = b;

    return strcmp(x->name, y->name);
}

/* Labels from a vector's {"tags","notes","star","metrics"} (NULL = empty). */
static void labels_from_json(const cJSON *o, struct labels *l)
{
    const cJSON *t, *v;
    size_t n, i;

    labels_init(l);
    if (!o)
        return;
    t = cJSON_GetObjectItemCaseSensitive(o, "tags");
    n = (size_t)cJSON_GetArraySize(t);
    if (n) {
        l->tags = calloc(n, sizeof(*l->tags));
        assert_non_null(l->tags);
        i = 0;
        cJSON_ArrayForEach(v, t) l->tags[i++] = xstrdup(v->valuestring);
        l->ntags = n;
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "notes");
    if (cJSON_IsString(v) && v->valuestring[0])
        l->notes = xstrdup(v->valuestring);
    v = cJSON_GetObjectItemCaseSensitive(o, "star");
    l->star = cJSON_IsNumber(v) ? v->valueint : -1;
    t = cJSON_GetObjectItemCaseSensitive(o, "metrics");
    n = (size_t)cJSON_GetArraySize(t);
    if (n) {
        l->metrics = calloc(n, sizeof(*l->metrics));
        assert_non_null(l->metrics);
        i = 0;
        cJSON_ArrayForEach(v, t)
        {
            l->metrics[i].name = xstrdup(v->string);
            l->metrics[i].value = v->valuedouble;
            i++;
        }
        l->nmetrics = n;
        qsort(l->metrics, n, sizeof(*l->metrics), metric_name_cmp);
    }
}

/* Exact JSON text of labels: "byte-identical" comparisons. free() it. */
static char *labels_text(const struct labels *l)
{
    cJSON *o = cJSON_CreateObject();
    char *s;

    assert_non_null(o);
    assert_int_equal(labels_to_json_ex(l, o, LABELS_JSON_EXACT), 0);
    s = cJSON_PrintUnformatted(o);
    assert_non_null(s);
    cJSON_Delete(o);
    return s;
}

static unsigned changed_from_json(const cJSON *a)
{
    static const char *const names[] = {"tags", "notes", "star", "metrics"};
    const cJSON *v;
    unsigned bits = 0, i, last = 0;

    cJSON_ArrayForEach(v, a)
    {
        for (i = 0; i < 4; i++)
            if (strcmp(v->valuestring, names[i]) == 0)
                break;
        assert_true(i < 4);
        assert_true(bits == 0 || i >= last); /* vectors list them in contract order */
        last = i;
        bits |= 1u << i; /* PATCH_CHANGED_* follow the same order */
    }
    return bits;
}

static int code_rc(const char *code)
{
    if (strcmp(code, "invalid_json") == 0)
        return LS_EPARSE;
    if (strcmp(code, "invalid_type") == 0)
        return LS_ETYPE;
    if (strcmp(code, "unknown_field") == 0)
        return LS_EUNKNOWN;
    if (strcmp(code, "duplicate_field") == 0)
        return LS_EDUP;
    if (strcmp(code, "invalid_value") == 0)
        return LS_EVALUE;
    return 1; /* never a real return code */
}

/* The body of a vector in a buffer of exactly its length, so ASan sees any
 * read past len.  free() it. */
static char *vector_body(const cJSON *v, size_t *len)
{
    const cJSON *raw = cJSON_GetObjectItemCaseSensitive(v, "raw");
    const cJSON *hex = cJSON_GetObjectItemCaseSensitive(v, "raw_hex");
    char *text = NULL, *out;

    if (cJSON_IsString(raw)) {
        text = xstrdup(raw->valuestring);
        *len = strlen(text);
    } else if (cJSON_IsString(hex)) {
        text = (char *)tu_hex_decode(hex->valuestring, len);
        assert_non_null(text);
    } else {
        text = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(v, "body"));
        assert_non_null(text);
        *len = strlen(text);
    }
    out = malloc(*len ? *len : 1);
    assert_non_null(out);
    memcpy(out, text, *len);
    free(text);
    return out;
}

static bool patch_is_empty(const struct patch *p)
{
    return p->has == 0 && !p->notes && !p->set_tags && !p->add_tags && !p->remove_tags &&
           !p->metrics && p->nset_tags == 0 && p->nadd_tags == 0 && p->nremove_tags == 0 &&
           p->nmetrics == 0;
}

static bool labels_is_empty(const struct labels *l)
{
    return l->ntags == 0 && !l->tags && l->notes && !l->notes[0] && l->star == -1 &&
           l->nmetrics == 0 && !l->metrics;
}

static bool utf8_ok(const char *s)
{
    return canon_utf8_valid(s, strlen(s));
}

/* parse(serialize(p)) == p, and serialization is a fixed point. */
static bool roundtrip_ok(const struct patch *p, enum patch_kind kind)
{
    struct buf a, b;
    struct patch q;
    struct patch_error e;
    bool ok = false;

    buf_init(&a, PATCH_MAX_SERIALIZED);
    buf_init(&b, PATCH_MAX_SERIALIZED);
    if (patch_serialize(p, kind, &a) != 0)
        goto out;
    if (patch_parse(kind, a.data, a.len, &q, &e) != 0) {
        fprintf(stderr, "  round trip: %s does not parse: %s\n", a.data, e.message);
        goto out;
    }
    ok = patch_equal(p, &q) && patch_serialize(&q, kind, &b) == 0 && a.len == b.len &&
         memcmp(a.data, b.data, a.len) == 0;
    patch_cleanup(&q);
out:
    buf_cleanup(&a);
    buf_cleanup(&b);
    return ok;
}

#define VCHECK(cond)                                                     \
    do {                                                                 \
        if (!(cond)) {                                                   \
            fprintf(stderr, "vector %s: check failed: %s\n", id, #cond); \
            bad = true;                                                  \
            goto done;                                                   \
        }                                                                \
    } while (0)

/* One vector; true when it holds. */
static bool run_vector(const cJSON *v)
{
    const char *id = cJSON_GetObjectItemCaseSensitive(v, "id")->valuestring;
    const cJSON *kindj = cJSON_GetObjectItemCaseSensitive(v, "kind");
    const cJSON *errj = cJSON_GetObjectItemCaseSensitive(v, "error");
    enum patch_kind kind =
        strcmp(kindj->valuestring, "put") == 0 ? PATCH_KIND_PUT : PATCH_KIND_PATCH;
    struct labels cur, out, want;
    struct patch p;
    struct patch_error e;
    char *body, *snap = NULL, *got = NULL, *exp = NULL;
    size_t len;
    unsigned changed = 99;
    bool bad = false;
    int rc;

    labels_from_json(cJSON_GetObjectItemCaseSensitive(v, "before"), &cur);
    labels_from_json(cJSON_GetObjectItemCaseSensitive(v, "after"), &want);
    labels_init(&out);
    body = vector_body(v, &len);
    snap = labels_text(&cur);
    rc = patch_parse(kind, body, len, &p, &e);

    if (errj &&
        strcmp(cJSON_GetObjectItemCaseSensitive(errj, "code")->valuestring, "too_many_tags") != 0) {
        const char *code = cJSON_GetObjectItemCaseSensitive(errj, "code")->valuestring;
        const cJSON *ptr = cJSON_GetObjectItemCaseSensitive(errj, "pointer");
        const cJSON *expd = cJSON_GetObjectItemCaseSensitive(errj, "expected");
        const cJSON *field = cJSON_GetObjectItemCaseSensitive(errj, "field");
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(errj, "offset");

        if (rc == 0)
            fprintf(stderr, "vector %s: parsed, expected %s\n", id, code);
        else if (e.code && strcmp(e.code, code) != 0)
            fprintf(stderr, "vector %s: got %s at '%s' (%s)\n", id, e.code, e.pointer, e.message);
        VCHECK(rc == code_rc(code));
        VCHECK(e.code && strcmp(e.code, code) == 0);
        VCHECK(patch_is_empty(&p));
        VCHECK(e.message[0] && utf8_ok(e.message) && utf8_ok(e.pointer) && utf8_ok(e.field));
        if (ptr && strcmp(ptr->valuestring, e.pointer) != 0)
            fprintf(stderr, "vector %s: pointer '%s'\n", id, e.pointer);
        VCHECK(!ptr || strcmp(ptr->valuestring, e.pointer) == 0);
        VCHECK(!expd || (e.expected && strcmp(expd->valuestring, e.expected) == 0));
        VCHECK(strcmp(code, "invalid_type") != 0 || e.expected);
        VCHECK(!field || strcmp(field->valuestring, e.field) == 0);
        if (off && (double)e.offset != off->valuedouble)
            fprintf(stderr, "vector %s: offset %zu\n", id, e.offset);
        VCHECK(!off || (double)e.offset == off->valuedouble);
        goto done;
    }

    if (rc != 0)
        fprintf(stderr, "vector %s: %s at '%s': %s\n", id, e.code, e.pointer, e.message);
    VCHECK(rc == 0);
    VCHECK(roundtrip_ok(&p, kind));
    rc = patch_apply(&p, &cur, &out, &changed, &e);
    got = labels_text(&cur);
    VCHECK(strcmp(got, snap) == 0); /* cur never changes, failed or not */
    free(got);
    got = NULL;
    if (errj) {
        VCHECK(rc == LS_ETOOMANY);
        VCHECK(e.code && strcmp(e.code, "too_many_tags") == 0 && utf8_ok(e.message));
        VCHECK(labels_is_empty(&out));
        VCHECK(changed == 0);
        goto done;
    }
    VCHECK(rc == 0);
    got = labels_text(&out);
    exp = labels_text(&want);
    if (strcmp(got, exp) != 0)
        fprintf(stderr, "vector %s:\n  got  %s\n  want %s\n", id, got, exp);
    VCHECK(strcmp(got, exp) == 0);
    VCHECK(labels_equal(&out, &want));
    VCHECK(changed == changed_from_json(cJSON_GetObjectItemCaseSensitive(v, "changed")));
done:
    free(body);
    free(snap);
    free(got);
    free(exp);
    patch_cleanup(&p);
    labels_cleanup(&cur);
    labels_cleanup(&out);
    labels_cleanup(&want);
    return !bad;
}

/* ------------------------------------------------------------------ */
/* vector-driven tests                                                  */

static void patch_should_satisfy_every_vector(void **state)
{
    cJSON *root = tu_load_spec_json("vectors/patch.json");
    const cJSON *v;
    int n = 0, failed = 0;

    (void)state;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(root, "vectors"))
    {
        n++;
        if (!run_vector(v))
            failed++;
    }
    cJSON_Delete(root);
    assert_true(n >= 60);
    assert_int_equal(failed, 0);
}

static void patch_should_have_well_formed_vectors(void **state)
{
    cJSON *root = tu_load_spec_json("vectors/patch.json");
    const cJSON *v, *w;

    (void)state;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(root, "vectors"))
    {
        const char *id = cJSON_GetObjectItemCaseSensitive(v, "id")->valuestring;
        int bodies = !!cJSON_GetObjectItemCaseSensitive(v, "body") +
                     !!cJSON_GetObjectItemCaseSensitive(v, "raw") +
                     !!cJSON_GetObjectItemCaseSensitive(v, "raw_hex");
        bool has_err = cJSON_GetObjectItemCaseSensitive(v, "error") != NULL;
        bool has_after = cJSON_GetObjectItemCaseSensitive(v, "after") != NULL;

        assert_int_equal(bodies, 1);
        assert_true(has_err != has_after);
        assert_true(has_err || cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(v, "changed")));
        for (w = v->next; w; w = w->next)
            assert_string_not_equal(id, cJSON_GetObjectItemCaseSensitive(w, "id")->valuestring);
    }
    cJSON_Delete(root);
}

/* Mutated vector bodies: whatever the outcome, the invariants hold. */
static void patch_should_survive_mutated_bodies(void **state)
{
    cJSON *root = tu_load_spec_json("vectors/patch.json");
    const cJSON *v;
    uint32_t seed = 12345;
    int round;

    (void)state;
    for (round = 0; round < 8; round++) {
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(root, "vectors"))
        {
            size_t len, cut;
            char *body = vector_body(v, &len);
            struct patch p;
            struct patch_error e;
            int k, rc;

            for (k = 0; k < 3 && len; k++) {
                seed = seed * 1103515245u + 12345u;
                body[(seed >> 8) % len] = (char)(seed >> 24);
            }
            seed = seed * 1103515245u + 12345u;
            cut = len ? (seed >> 8) % (len + 1) : 0;
            rc = patch_parse(round % 2 ? PATCH_KIND_PUT : PATCH_KIND_PATCH, body,
                             round < 4 ? len : cut, &p, &e);
            if (rc == 0) {
                assert_true(roundtrip_ok(&p, round % 2 ? PATCH_KIND_PUT : PATCH_KIND_PATCH));
            } else {
                assert_non_null(e.code);
                assert_true(patch_is_empty(&p));
                assert_true(utf8_ok(e.message) && utf8_ok(e.pointer) && utf8_ok(e.field));
            }
            patch_cleanup(&p);
            free(body);
        }
    }
    cJSON_Delete(root);
}

/* ------------------------------------------------------------------ */
/* patch_parse                                                          */

static void patch_should_read_exactly_len_bytes(void **state)
{
    const char *text = "{\"set_star\":1}garbage";
    char *body = malloc(14);
    struct patch p;
    struct patch_error e;

    (void)state;
    assert_non_null(body);
    memcpy(body, text, 14);
    assert_int_equal(patch_parse(PATCH_KIND_PATCH, body, 14, &p, &e), 0);
    assert_int_equal(p.star, 1);
    patch_cleanup(&p);
    assert_int_equal(patch_parse(PATCH_KIND_PATCH, body, 13, &p, &e), LS_EPARSE);
    assert_int_equal(e.offset, 13);
    free(body);
}

static void patch_should_refuse_oversized_body_without_reading_it(void **state)
{
    char one = '{';
    struct patch p;
    struct patch_error e;

    (void)state;
    /* len is a lie on purpose: the cap must be checked before any read */
    assert_int_equal(patch_parse(PATCH_KIND_PATCH, &one, (size_t)PATCH_MAX_BODY + 1, &p, &e),
                     LS_ETOOBIG);
    assert_string_equal(e.code, "body_too_large");
    assert_true(patch_is_empty(&p));
}

static void patch_should_accept_null_err_and_null_empty_body(void **state)
{
    struct patch p;

    (void)state;
    assert_int_equal(patch_parse(PATCH_KIND_PATCH, NULL, 0, &p, NULL), LS_EPARSE);
    assert_int_equal(patch_parse(PATCH_KIND_PATCH, "{}", 2, &p, NULL), 0);
    assert_int_equal(p.has, 0);
    patch_cleanup(&p);
    patch_cleanup(NULL);
}

static void patch_should_truncate_long_keys_safely(void **state)
{
    struct buf b;
    struct patch p;
    struct patch_error e;
    int i;

    (void)state;
    buf_init(&b, 4096);
    assert_int_equal(buf_appends(&b, "{\""), 0);
    for (i = 0; i < 300; i++)
        assert_int_equal(buf_appends(&b, "\xC3\xA9/"), 0); /* "é/" */
    assert_int_equal(buf_appends(&b, "\":1}"), 0);
    assert_int_equal(patch_parse(PATCH_KIND_PATCH, b.data, b.len, &p, &e), LS_EUNKNOWN);
    assert_true(strlen(e.field) < sizeof(e.field) && strlen(e.field) > 100);
    assert_true(strlen(e.pointer) < sizeof(e.pointer) && strlen(e.pointer) > 200);
    assert_true(utf8_ok(e.field) && utf8_ok(e.pointer) && utf8_ok(e.message));
    assert_memory_equal(e.pointer, "/\xC3\xA9~1", 5);
    buf_cleanup(&b);
}

static void patch_should_normalize_before_comparing_add_and_remove(void **state)
{
    const char *body = "{\"add_tags\":[\"x\",\" y \"],\"remove_tags\":[\"\\u3000y\"]}";
    struct patch p;
    struct patch_error e;

    (void)state;
    assert_int_equal(patch_parse(PATCH_KIND_PATCH, body, strlen(body), &p, &e), LS_EVALUE);
    assert_string_equal(e.pointer, "/add_tags");
    assert_non_null(strstr(e.message, "\"y\""));
}

/* Fails every allocation cJSON makes after the first n. */
static long fail_after = -1;

static void *failing_malloc(size_t n)
{
    if (fail_after == 0)
        return NULL;
    if (fail_after > 0)
        fail_after--;
    return malloc(n);
}

static void use_failing_cjson(bool on)
{
    cJSON_Hooks h = {failing_malloc, free};

    fail_after = -1;
    cJSON_InitHooks(on ? &h : NULL);
}

static void patch_should_report_enomem_when_cjson_runs_out(void **state)
{
    const char *body = "{\"set_tags\":[\"a\",\"b\"],\"set_metrics\":{\"m\":1},\"set_notes\":\"n\"}";
    struct patch p;
    struct patch_error e;
    long n;
    int rc = -1;

    (void)state;
    use_failing_cjson(true);
    for (n = 0; n < 100 && rc != 0; n++) {
        fail_after = n;
        rc = patch_parse(PATCH_KIND_PATCH, body, strlen(body), &p, &e);
        if (rc) {
            assert_int_equal(rc, -ENOMEM);
            assert_string_equal(e.code, "internal_error");
            assert_true(patch_is_empty(&p));
        }
    }
    use_failing_cjson(false);
    assert_int_equal(rc, 0);
    assert_true(n > 1);
    patch_cleanup(&p);
}

/* ------------------------------------------------------------------ */
/* patch_apply                                                          */

static void patch_should_leave_cur_byte_identical_when_apply_fails(void **state)
{
    const char *body = "{\"add_tags\":[\"one\",\"two\"]}";
    struct labels cur, out;
    struct patch p;
    struct patch_error e;
    char name[16], *before, *after;
    unsigned changed = 77;
    int i;

    (void)state;
    labels_init(&cur);
    cur.tags = calloc(63, sizeof(*cur.tags));
    assert_non_null(cur.tags);
    for (i = 0; i < 63; i++) {
        snprintf(name, sizeof(name), "t%d", i);
        cur.tags[i] = xstrdup(name);
    }
    cur.ntags = 63;
    cur.notes = xstrdup("keep");
    cur.star = 4;
    before = labels_text(&cur);
    assert_int_equal(patch_parse(PATCH_KIND_PATCH, body, strlen(body), &p, &e), 0);
    labels_init(&out);
    assert_int_equal(patch_apply(&p, &cur, &out, &changed, &e), LS_ETOOMANY);
    assert_string_equal(e.code, "too_many_tags");
    assert_int_equal(changed, 0);
    assert_true(labels_is_empty(&out));
    after = labels_text(&cur);
    assert_string_equal(before, after);
    /* one fewer tag fits exactly */
    free(cur.tags[62]);
    cur.ntags = 62;
    assert_int_equal(patch_apply(&p, &cur, &out, &changed, NULL), 0);
    assert_int_equal(out.ntags, 64);
    assert_string_equal(out.tags[63], "two");
    assert_int_equal(changed, PATCH_CHANGED_TAGS);
    labels_cleanup(&out);
    labels_cleanup(&cur);
    patch_cleanup(&p);
    free(before);
    free(after);
}

static void patch_should_apply_to_zeroed_labels(void **state)
{
    const char *body = "{\"set_star\":2}";
    struct labels cur, out;
    struct patch p;
    struct patch_error e;
    unsigned changed;

    (void)state;
    memset(&cur, 0, sizeof(cur)); /* notes NULL: treated as "" */
    cur.star = -1;
    assert_int_equal(patch_parse(PATCH_KIND_PATCH, body, strlen(body), &p, &e), 0);
    assert_int_equal(patch_apply(&p, &cur, &out, &changed, &e), 0);
    assert_int_equal(changed, PATCH_CHANGED_STAR);
    assert_string_equal(out.notes, "");
    labels_cleanup(&out);
    patch_cleanup(&p);
}

/* ------------------------------------------------------------------ */
/* patch_serialize / patch_equal                                        */

static void patch_should_serialize_equivalent_bodies_identically(void **state)
{
    const char *a = "{ \"set_metrics\" : {\"b\":1.0,\"a\":5e-1}, \"add_tags\":[\" x\",\"x\",\"\"],"
                    "\"set_notes\":null,\"set_star\":3.0,\"base_version\":1e1 }";
    const char *b = "{\"base_version\":10,\"set_star\":3,\"set_notes\":\"\",\"add_tags\":[\"x\"],"
                    "\"set_metrics\":{\"a\":0.5,\"b\":1}}";
    struct patch pa, pb;
    struct patch_error e;
    struct buf sa, sb;

    (void)state;
    buf_init(&sa, 1024);
    buf_init(&sb, 1024);
    assert_int_equal(patch_parse(PATCH_KIND_PATCH, a, strlen(a), &pa, &e), 0);
    assert_int_equal(patch_parse(PATCH_KIND_PATCH, b, strlen(b), &pb, &e), 0);
    assert_true(patch_equal(&pa, &pb));
    assert_int_equal(patch_serialize(&pa, PATCH_KIND_PATCH, &sa), 0);
    assert_int_equal(patch_serialize(&pb, PATCH_KIND_PATCH, &sb), 0);
    assert_string_equal(sa.data, b);
    assert_string_equal(sb.data, b);
    patch_cleanup(&pa);
    patch_cleanup(&pb);
    buf_cleanup(&sa);
    buf_cleanup(&sb);
}

static void patch_should_serialize_put_with_every_field(void **state)
{
    const char *in = "{\"exif\":{\"w\":1},\"star\":null,\"tags\":[\"q\\\"\\\\\\n\"],\"v\":1}";
    struct patch p;
    struct patch_error e;
    struct buf s;

    (void)state;
    buf_init(&s, 1024);
    assert_int_equal(patch_parse(PATCH_KIND_PUT, in, strlen(in), &p, &e), 0);
    assert_int_equal(p.has, PATCH_F_STAR | PATCH_F_NOTES | PATCH_F_SET_TAGS | PATCH_F_METRICS);
    assert_int_equal(patch_serialize(&p, PATCH_KIND_PUT, &s), 0);
    /* "\n" at the end of the tag is whitespace: trimmed away */
    assert_string_equal(s.data,
                        "{\"tags\":[\"q\\\"\\\\\"],\"notes\":\"\",\"star\":null,\"metrics\":{}}");
    patch_cleanup(&p);
    buf_cleanup(&s);
}

static void patch_should_leave_buffer_unchanged_when_serialize_overflows(void **state)
{
    const char *in = "{\"set_notes\":\"a long enough note\"}";
    struct patch p;
    struct patch_error e;
    struct buf s;

    (void)state;
    buf_init(&s, 16);
    assert_int_equal(buf_appends(&s, "pre"), 0);
    assert_int_equal(patch_parse(PATCH_KIND_PATCH, in, strlen(in), &p, &e), 0);
    assert_int_equal(patch_serialize(&p, PATCH_KIND_PATCH, &s), LS_ETOOBIG);
    assert_string_equal(s.data, "pre");
    patch_cleanup(&p);
    buf_cleanup(&s);
}

static void patch_should_tell_different_patches_apart(void **state)
{
    static const char *const bodies[] = {
        "{}",
        "{\"base_version\":1}",
        "{\"base_version\":2}",
        "{\"set_star\":null}",
        "{\"set_star\":0}",
        "{\"set_notes\":\"\"}",
        "{\"set_notes\":\"a\"}",
        "{\"set_tags\":[]}",
        "{\"set_tags\":[\"a\"]}",
        "{\"add_tags\":[\"a\"]}",
        "{\"remove_tags\":[\"a\"]}",
        "{\"set_metrics\":{}}",
        "{\"set_metrics\":{\"a\":1}}",
        "{\"set_metrics\":{\"a\":2}}",
        "{\"set_tags\":[\"a\",\"b\"]}",
        "{\"set_tags\":[\"b\",\"a\"]}",
    };
    enum { N = sizeof(bodies) / sizeof(bodies[0]) };
    struct patch p[N];
    struct patch_error e;
    size_t i, j;

    (void)state;
    for (i = 0; i < N; i++)
        assert_int_equal(patch_parse(PATCH_KIND_PATCH, bodies[i], strlen(bodies[i]), &p[i], &e), 0);
    for (i = 0; i < N; i++)
        for (j = 0; j < N; j++)
            assert_int_equal(patch_equal(&p[i], &p[j]), i == j);
    for (i = 0; i < N; i++)
        patch_cleanup(&p[i]);
}

static void patch_should_format_numbers_shortest_and_exact(void **state)
{
    static const struct {
        double v;
        const char *s;
    } cases[] = {
        {0, "0"},
        {-0.0, "0"},
        {10, "10"},
        {-3, "-3"},
        {0.5, "0.5"},
        {0.1, "0.1"},
        {0.30000000000000004, "0.30000000000000004"},
        {1e300, "1e+300"},
        {-1.5e-3, "-0.0015"},
        {9007199254740991.0, "9007199254740991"},
        {1e17, "1e+17"},
        {5e-324, "5e-324"},
    };
    char buf[PATCH_NUMBER_BUF];
    size_t i, n;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        n = patch_format_number(cases[i].v, buf);
        assert_string_equal(buf, cases[i].s);
        assert_int_equal(n, strlen(cases[i].s));
    }
}

/* ------------------------------------------------------------------ */
/* labels                                                               */

static void fill_labels(struct labels *l)
{
    labels_init(l);
    l->tags = calloc(2, sizeof(*l->tags));
    assert_non_null(l->tags);
    l->tags[0] = xstrdup("a");
    l->tags[1] = xstrdup("b c");
    l->ntags = 2;
    l->notes = xstrdup("line\none");
    l->star = 5;
    l->metrics = calloc(2, sizeof(*l->metrics));
    assert_non_null(l->metrics);
    l->metrics[0].name = xstrdup("x");
    l->metrics[0].value = 0.30000000000000004;
    l->metrics[1].name = xstrdup("y");
    l->metrics[1].value = -2;
    l->nmetrics = 2;
}

static void patch_should_copy_labels_deeply(void **state)
{
    struct labels a, b;

    (void)state;
    fill_labels(&a);
    assert_int_equal(labels_copy(&b, &a), 0);
    assert_true(labels_equal(&a, &b));
    assert_ptr_not_equal(a.tags[0], b.tags[0]);
    assert_ptr_not_equal(a.notes, b.notes);
    assert_ptr_not_equal(a.metrics[0].name, b.metrics[0].name);
    a.tags[0][0] = 'z';
    a.notes[0] = 'L';
    a.metrics[0].value = 1;
    assert_string_equal(b.tags[0], "a");
    assert_string_equal(b.notes, "line\none");
    assert_true(b.metrics[0].value == 0.30000000000000004);
    assert_false(labels_equal(&a, &b));
    labels_cleanup(&a);
    assert_true(labels_is_empty(&a));
    labels_cleanup(&b);
    labels_cleanup(NULL);
    /* copying the empty value shares the static "" and cannot fail */
    labels_init(&a);
    assert_int_equal(labels_copy(&b, &a), 0);
    assert_true(labels_is_empty(&b));
    labels_cleanup(&b);
}

static void patch_should_compare_every_labels_field(void **state)
{
    struct labels a, b;

    (void)state;
    fill_labels(&a);
    fill_labels(&b);
    assert_true(labels_equal(&a, &b));
    b.star = -1;
    assert_false(labels_equal(&a, &b));
    b.star = 5;
    b.metrics[1].value = -0.0 - 2;
    assert_true(labels_equal(&a, &b));
    b.metrics[1].value = 2;
    assert_false(labels_equal(&a, &b));
    b.metrics[1].value = -2;
    b.notes[4] = ' ';
    assert_false(labels_equal(&a, &b));
    b.notes[4] = '\n';
    b.ntags = 1;
    assert_false(labels_equal(&a, &b));
    b.ntags = 2;
    b.nmetrics = 1;
    assert_false(labels_equal(&a, &b));
    b.nmetrics = 2;
    assert_true(labels_equal(&a, &b));
    labels_cleanup(&a);
    labels_cleanup(&b);
}

static void patch_should_render_labels_json_in_contract_order(void **state)
{
    struct labels l;
    cJSON *o = cJSON_CreateObject();
    char *s;

    (void)state;
    labels_init(&l);
    assert_non_null(o);
    assert_non_null(cJSON_AddStringToObject(o, "path", "/a.png"));
    assert_int_equal(labels_to_json(&l, o), 0);
    s = cJSON_PrintUnformatted(o);
    assert_string_equal(s, "{\"path\":\"/a.png\",\"tags\":[],\"notes\":\"\",\"star\":null,"
                           "\"metrics\":{}}");
    free(s);
    cJSON_Delete(o);

    fill_labels(&l);
    o = cJSON_CreateObject();
    assert_int_equal(labels_to_json_ex(&l, o, LABELS_JSON_EXACT), 0);
    s = cJSON_PrintUnformatted(o);
    assert_string_equal(s, "{\"tags\":[\"a\",\"b c\"],\"notes\":\"line\\none\",\"star\":5,"
                           "\"metrics\":{\"x\":0.30000000000000004,\"y\":-2}}");
    free(s);
    cJSON_Delete(o);
    o = cJSON_CreateObject();
    assert_int_equal(labels_to_json(&l, o), 0);
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "metrics"), "x")));
    assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "metrics"), "x")->valuedouble ==
                0.30000000000000004);
    cJSON_Delete(o);
    labels_cleanup(&l);
}

static void patch_should_leave_object_unchanged_when_to_json_fails(void **state)
{
    struct labels l;
    cJSON *o;
    char *before, *after;
    long n;
    int rc = -1;

    (void)state;
    fill_labels(&l);
    o = cJSON_CreateObject();
    assert_non_null(o);
    assert_non_null(cJSON_AddStringToObject(o, "path", "/a.png"));
    before = cJSON_PrintUnformatted(o);
    use_failing_cjson(true);
    for (n = 0; n < 200 && rc != 0; n++) {
        fail_after = n;
        rc = labels_to_json(&l, o);
        if (rc) {
            assert_int_equal(rc, -ENOMEM);
            fail_after = -1;
            after = cJSON_PrintUnformatted(o);
            assert_string_equal(before, after);
            free(after);
        }
    }
    use_failing_cjson(false);
    assert_int_equal(rc, 0);
    assert_true(n > 5);
    assert_int_equal(cJSON_GetArraySize(o), 5);
    free(before);
    cJSON_Delete(o);
    labels_cleanup(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(patch_should_have_well_formed_vectors),
        cmocka_unit_test(patch_should_satisfy_every_vector),
        cmocka_unit_test(patch_should_survive_mutated_bodies),
        cmocka_unit_test(patch_should_read_exactly_len_bytes),
        cmocka_unit_test(patch_should_refuse_oversized_body_without_reading_it),
        cmocka_unit_test(patch_should_accept_null_err_and_null_empty_body),
        cmocka_unit_test(patch_should_truncate_long_keys_safely),
        cmocka_unit_test(patch_should_normalize_before_comparing_add_and_remove),
        cmocka_unit_test(patch_should_report_enomem_when_cjson_runs_out),
        cmocka_unit_test(patch_should_leave_cur_byte_identical_when_apply_fails),
        cmocka_unit_test(patch_should_apply_to_zeroed_labels),
        cmocka_unit_test(patch_should_serialize_equivalent_bodies_identically),
        cmocka_unit_test(patch_should_serialize_put_with_every_field),
        cmocka_unit_test(patch_should_leave_buffer_unchanged_when_serialize_overflows),
        cmocka_unit_test(patch_should_tell_different_patches_apart),
        cmocka_unit_test(patch_should_format_numbers_shortest_and_exact),
        cmocka_unit_test(patch_should_copy_labels_deeply),
        cmocka_unit_test(patch_should_compare_every_labels_field),
        cmocka_unit_test(patch_should_render_labels_json_in_contract_order),
        cmocka_unit_test(patch_should_leave_object_unchanged_when_to_json_fails),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
