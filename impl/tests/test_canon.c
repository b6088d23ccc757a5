/*
 * test_canon.c - unit tests of the path canonicalizer (canon.h).
 *
 * Three layers:
 *   1. canon_should_match_every_vector runs every vector of
 *      spec/vectors/canon.json (the same file the runner and the fuzzer
 *      seeds use), so the C code and the published expectations cannot drift;
 *      canon_should_have_well_formed_vectors checks the file itself.
 *   2. Property tests: every successful output, from the vectors and from a
 *      deterministic pseudo-random generator, is canonical-shaped, accepted
 *      by canon_is_canonical and a fixed point of canon_path.
 *   3. Hand-written tests of the helpers (UTF-8, trim, control, form decode).
 *
 * Buffers handed to canon_* are malloc'd with their exact size so that
 * AddressSanitizer and valgrind catch a read or write one byte past them.
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
#include "testutil.h"

#define MIN_VECTORS   70
#define LIT(s)        (s), (sizeof(s) - 1) /* a literal and its length, NULs included */
#define RANDOM_ROUNDS 20000
#define SHOW          120 /* bytes of a path printed in a failure message */

/* ---- helpers ----------------------------------------------------------------- */

/* A malloc'd copy of n bytes with no spare byte after them (NULL-safe for n == 0). */
static char *exact_copy(const void *p, size_t n)
{
    char *c = malloc(n ? n : 1);

    assert_non_null(c);
    if (n)
        memcpy(c, p, n);
    return c;
}

static const char *str_field(const cJSON *v, const char *key)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(v, key);

    return cJSON_IsString(f) ? f->valuestring : NULL;
}

/*
 * The bytes a vector hands to canon_path, as an exact-size malloc'd buffer.
 * Query vectors are form-decoded first; *rc gets the decode result (0 or
 * LS_EPATH with *why set).  Returns NULL (after fail_msg) on a malformed vector.
 */
static char *vector_input(const cJSON *v, size_t *len, int *rc, enum canon_reason *why)
{
    const cJSON *rep = cJSON_GetObjectItemCaseSensitive(v, "input_repeat");
    const char *s;
    char *buf, *dec;
    unsigned char *raw;
    size_t n, i;

    *rc = 0;
    if ((s = str_field(v, "input"))) {
        *len = strlen(s);
        return exact_copy(s, *len);
    }
    if ((s = str_field(v, "input_hex"))) {
        raw = tu_hex_decode(s, &n);
        assert_non_null(raw);
        buf = exact_copy(raw, n);
        free(raw);
        *len = n;
        return buf;
    }
    if ((s = str_field(v, "query"))) {
        n = strlen(s);
        dec = malloc(n + 1);
        assert_non_null(dec);
        *rc = canon_form_decode(s, n, dec, n + 1, len, why);
        buf = exact_copy(dec, *rc == 0 ? *len : 0);
        free(dec);
        return buf;
    }
    if (cJSON_IsObject(rep)) {
        const char *unit = str_field(rep, "unit");
        const cJSON *count = cJSON_GetObjectItemCaseSensitive(rep, "count");
        size_t ulen, cnt;

        assert_non_null(unit);
        assert_true(cJSON_IsNumber(count) && count->valuedouble >= 0 && count->valuedouble <= 1e6);
        ulen = strlen(unit);
        cnt = (size_t)count->valuedouble;
        *len = ulen * cnt;
        buf = malloc(*len ? *len : 1);
        assert_non_null(buf);
        for (i = 0; i < cnt; i++)
            memcpy(buf + i * ulen, unit, ulen);
        return buf;
    }
    fail_msg("vector %s has no input", str_field(v, "id"));
    return NULL;
}

/* Fail unless p[0..n) has every property contract §1.2 promises of an output. */
static void assert_canonical_shape(const char *p, size_t n)
{
    size_t i, seg = 0, segs = 0, start, tl;

    assert_true(n >= 1 && n <= CANON_MAX_PATH);
    assert_int_equal(p[0], '/');
    assert_int_equal(p[n], '\0');
    assert_true(canon_utf8_valid(p, n));
    assert_false(canon_has_control(p, n));
    assert_null(memchr(p, '\\', n));
    canon_trim(p, n, &start, &tl);
    assert_int_equal(start, 0);
    assert_int_equal(tl, n); /* no trailing whitespace: the next call would strip it */
    if (n == 1)
        return;
    assert_int_not_equal(p[n - 1], '/');
    /* Walk the segments: none empty (no "//"), none "." or "..", caps held. */
    for (i = 1; i <= n; i++) {
        if (i == n || p[i] == '/') {
            const char *s = p + i - seg;

            assert_true(seg >= 1 && seg <= CANON_MAX_SEGMENT);
            assert_false(seg == 1 && s[0] == '.');
            assert_false(seg == 2 && s[0] == '.' && s[1] == '.');
            segs++;
            seg = 0;
        } else {
            seg++;
        }
    }
    assert_true(segs <= CANON_MAX_SEGMENTS);
}

/* Fail unless out[0..n) is a fixed point of canon_path and canon_is_canonical says so. */
static void assert_fixed_point(const char *p, size_t n)
{
    char *in = exact_copy(p, n);
    char *out = malloc(CANON_MAX_PATH + 1);
    enum canon_reason why = CANON_TOO_LONG;
    size_t m = 0;

    assert_non_null(out);
    assert_int_equal(canon_path(in, n, out, &m, &why), 0);
    assert_int_equal(why, CANON_OK);
    assert_int_equal(m, n);
    assert_memory_equal(out, p, n);
    assert_true(canon_is_canonical(in, n));
    free(out);
    free(in);
}

/* canon_path on a NUL-terminated literal; returns the rc, output in out. */
static int canon_str(const char *s, char *out, size_t *n, enum canon_reason *why)
{
    char *in = exact_copy(s, strlen(s));
    int rc = canon_path(in, strlen(s), out, n, why);

    free(in);
    return rc;
}

/* ---- group setup: the vectors ------------------------------------------------ */

static int load_vectors(void **state)
{
    *state = tu_load_spec_json("vectors/canon.json");
    return 0;
}

static int free_vectors(void **state)
{
    cJSON_Delete(*state);
    return 0;
}

static const cJSON *vectors_of(void **state)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(*state, "vectors");

    assert_true(cJSON_IsArray(arr));
    return arr;
}

/* ---- layer 1: vectors ------------------------------------------------------------ */

static bool is_reason_name(const char *s)
{
    int r;

    for (r = CANON_TOO_LONG; r <= CANON_BAD_PERCENT; r++)
        if (strcmp(s, canon_reason_name((enum canon_reason)r)) == 0)
            return true;
    return false;
}

static void canon_should_have_well_formed_vectors(void **state)
{
    static const char *const inputs[] = {"input", "input_hex", "query", "input_repeat"};
    const cJSON *arr = vectors_of(state), *v, *w, *http;
    int count = 0, bad = 0;
    size_t k;

    cJSON_ArrayForEach(v, arr)
    {
        const char *id = str_field(v, "id"), *q = str_field(v, "query");
        const char *out = str_field(v, "output"), *err = str_field(v, "error");
        int kinds = 0, status;

        count++;
        if (!id || !*id) {
            fprintf(stderr, "vector #%d: no id\n", count);
            bad++;
            continue;
        }
        cJSON_ArrayForEach(w, arr)
        {
            if (w == v)
                break;
            if (str_field(w, "id") && strcmp(str_field(w, "id"), id) == 0) {
                fprintf(stderr, "%s: duplicate id\n", id);
                bad++;
            }
        }
        for (k = 0; k < sizeof(inputs) / sizeof(inputs[0]); k++)
            kinds += cJSON_HasObjectItem(v, inputs[k]) ? 1 : 0;
        if (kinds != 1 || !out == !err || (err && !is_reason_name(err))) {
            fprintf(stderr, "%s: needs one input kind and one of output/error (a reason)\n", id);
            bad++;
        }
        /* The runner sends a query verbatim after "path=": it must be URL-safe as is. */
        if (q && strpbrk(q, "&# ")) {
            fprintf(stderr, "%s: query must not contain '&', '#' or space\n", id);
            bad++;
        }
        for (; q && *q; q++)
            if ((unsigned char)*q < 0x21 || (unsigned char)*q > 0x7E) {
                fprintf(stderr, "%s: query must be printable ASCII\n", id);
                bad++;
                break;
            }
        http = cJSON_GetObjectItemCaseSensitive(v, "http");
        if (!http)
            continue;
        w = cJSON_GetObjectItemCaseSensitive(http, "status");
        status = cJSON_IsNumber(w) ? w->valueint : 0;
        if (cJSON_HasObjectItem(v, "input_repeat") || (status == 400 && !err) ||
            ((status == 200 || status == 404) && !out) ||
            (status != 200 && status != 400 && status != 404)) {
            fprintf(stderr, "%s: http status %d does not fit the vector\n", id, status);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
    assert_true(count >= MIN_VECTORS);
}

static void canon_should_match_every_vector(void **state)
{
    const cJSON *arr = vectors_of(state), *v;
    char *out = malloc(CANON_MAX_PATH + 1);
    int failures = 0, total = 0;

    assert_non_null(out);
    cJSON_ArrayForEach(v, arr)
    {
        const char *id = str_field(v, "id");
        const char *want_out = str_field(v, "output"), *want_err = str_field(v, "error");
        enum canon_reason why = CANON_OK;
        size_t len = 0, n = 0;
        int rc;
        char *in = vector_input(v, &len, &rc, &why);

        total++;
        if (rc == 0)
            rc = canon_path(in, len, out, &n, &why);
        free(in);
        if (want_out && rc == 0 && n == strlen(want_out) && memcmp(out, want_out, n) == 0 &&
            why == CANON_OK)
            continue;
        if (want_err && rc == LS_EPATH && strcmp(canon_reason_name(why), want_err) == 0)
            continue;
        failures++;
        /* long paths are cut at SHOW bytes: the id names the vector */
        fprintf(stderr, "FAIL %s: want %s \"%.*s\", got ", id, want_out ? "output" : "error", SHOW,
                want_out ? want_out : want_err);
        if (rc == 0)
            fprintf(stderr, "output \"%.*s\" (%zu bytes)\n", n < SHOW ? (int)n : SHOW, out, n);
        else
            fprintf(stderr, "rc %d reason %s\n", rc, canon_reason_name(why));
    }
    free(out);
    print_message("%d vectors, %d failed\n", total, failures);
    assert_int_equal(failures, 0);
    assert_true(total >= MIN_VECTORS);
}

/* ---- layer 2: properties ---------------------------------------------------------- */

static void canon_should_return_fixed_points_for_every_vector_output(void **state)
{
    const cJSON *arr = vectors_of(state), *v;
    int checked = 0;

    cJSON_ArrayForEach(v, arr)
    {
        const char *want = str_field(v, "output");

        if (!want)
            continue;
        assert_canonical_shape(want, strlen(want));
        assert_fixed_point(want, strlen(want));
        checked++;
    }
    assert_true(checked > 0);
}

/* xorshift64*: deterministic, so a failure reproduces with the same seed. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

/*
 * Pieces chosen to hit every rule: separators, dot segments, whitespace of
 * each width at any position, control and C1 bytes, multibyte letters, broken
 * UTF-8, and long runs for the length caps.
 */
/* clang-format off */
static const char *const pieces[] = {
    "a", "b", "\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x98\x80", ".", "..", "...", "/", "/", "/", "\\",
    " ", "\t", "\xc2\xa0", "\xe3\x80\x80", "\xc2\x85", "\xe2\x80\xa8", "\x7f", "\x01", "\xc2\x9f",
    "\xc0\xaf", "\xed\xa0\x80", "\xe6\x97", "+", "%2F", "%", "\xef\xbb\xbf"};
/* clang-format on */

static size_t random_input(uint64_t *seed, char *buf, size_t cap)
{
    size_t n = 0, parts = rng_next(seed) % 24, i, k;
    uint64_t r;

    for (i = 0; i < parts; i++) {
        r = rng_next(seed);
        if (r % 64 == 0) { /* a long segment, sometimes over the 255-byte cap */
            k = 200 + (size_t)(r >> 8) % 120;
            while (k-- && n < cap)
                buf[n++] = 'x';
            continue;
        }
        if (r % 64 == 1) { /* many short segments, sometimes over the 64-segment cap */
            for (k = 0; k < 40 && n + 2 <= cap; k++) {
                buf[n++] = 's';
                buf[n++] = '/';
            }
            continue;
        }
        {
            const char *p = pieces[(r >> 8) % (sizeof(pieces) / sizeof(pieces[0]))];
            size_t pl = strlen(p);

            if (n + pl > cap)
                break;
            memcpy(buf + n, p, pl);
            n += pl;
        }
    }
    return n;
}

static void canon_should_keep_invariants_on_random_inputs(void **state)
{
    char *out = malloc(CANON_MAX_PATH + 1);
    char buf[2048];
    uint64_t seed = 0x5eed1abe15ULL;
    int i, ok = 0, rejected = 0;

    (void)state;
    assert_non_null(out);
    for (i = 0; i < RANDOM_ROUNDS; i++) {
        size_t n = random_input(&seed, buf, sizeof(buf)), m = 0;
        char *in = exact_copy(buf, n);
        enum canon_reason why = CANON_OK;
        int rc = canon_path(in, n, out, &m, &why);

        if (rc == 0) {
            assert_int_equal(why, CANON_OK);
            assert_canonical_shape(out, m);
            assert_fixed_point(out, m);
            /* canonical input in, same bytes out; anything else is not canonical */
            assert_true(canon_is_canonical(in, n) == (m == n && memcmp(in, out, n) == 0));
            ok++;
        } else {
            assert_int_equal(rc, LS_EPATH);
            assert_true(why >= CANON_TOO_LONG && why <= CANON_TOO_MANY_SEGMENTS);
            assert_false(canon_is_canonical(in, n));
            rejected++;
        }
        free(in);
    }
    free(out);
    print_message("%d random inputs: %d accepted, %d rejected\n", RANDOM_ROUNDS, ok, rejected);
    /* the generator must exercise both outcomes, or it tests nothing */
    assert_true(ok > RANDOM_ROUNDS / 10 && rejected > RANDOM_ROUNDS / 10);
}

/* ---- layer 3: hand-written ------------------------------------------------------- */

static void canon_should_name_every_reason(void **state)
{
    (void)state;
    assert_string_equal(canon_reason_name(CANON_OK), "ok");
    assert_string_equal(canon_reason_name(CANON_TOO_LONG), "too_long");
    assert_string_equal(canon_reason_name(CANON_INVALID_UTF8), "invalid_utf8");
    assert_string_equal(canon_reason_name(CANON_CONTROL_CHAR), "control_char");
    assert_string_equal(canon_reason_name(CANON_ESCAPES_ROOT), "escapes_root");
    assert_string_equal(canon_reason_name(CANON_SEGMENT_TOO_LONG), "segment_too_long");
    assert_string_equal(canon_reason_name(CANON_TOO_MANY_SEGMENTS), "too_many_segments");
    assert_string_equal(canon_reason_name(CANON_BAD_PERCENT), "bad_percent_encoding");
    assert_string_equal(canon_reason_name((enum canon_reason)99), "unknown");
}

static void canon_should_validate_utf8_strictly(void **state)
{
    /* clang-format off */
    static const char *const good[] = {
        "", "abc", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf", "\xee\x80\x80",
        "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf"};
    /* clang-format on */
    /* clang-format off */
    static const char *const bad[] = {
        "\x80", "\xbf", "\xc0\x80", "\xc1\xbf", "\xc2", "\xc2\x41", "\xe0\x80\x80", "\xe0\x9f\xbf",
        "\xed\xa0\x80", "\xed\xbf\xbf", "\xe6\x97", "\xf0\x80\x80\x80", "\xf0\x8f\xbf\xbf",
        "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf8\x88\x80\x80\x80", "\xfe", "\xff",
        "a\xf0\x9f\x98"};
    /* clang-format on */
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(canon_utf8_valid(good[i], strlen(good[i])));
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(canon_utf8_valid(bad[i], strlen(bad[i])));
    /* NUL is a valid code point; length, not the terminator, bounds the scan */
    assert_true(canon_utf8_valid(LIT("a\0b")));
    assert_true(canon_utf8_valid("\xc3\xa9\xff", 2));
}

static void canon_should_detect_control_characters(void **state)
{
    (void)state;
    assert_false(canon_has_control(LIT("")));
    assert_false(canon_has_control(LIT("a b/\xc2\xa0\xc2\xbf\xe3\x80\x80~")));
    assert_true(canon_has_control(LIT("a\0b")));
    assert_true(canon_has_control(LIT("\x1f")));
    assert_true(canon_has_control(LIT("\t")));
    assert_true(canon_has_control(LIT("\x7f")));
    assert_true(canon_has_control(LIT("a\xc2\x80")));
    assert_true(canon_has_control(LIT("\xc2\x85")));
    assert_true(canon_has_control(LIT("\xc2\x9f")));
    assert_false(canon_has_control(LIT("\xc2\xa0")));
    assert_false(canon_has_control(LIT("\xc2"))); /* truncated: memory-safe, not a C1 */
}

static void assert_trim(const char *s, size_t len, size_t want_start, size_t want_len)
{
    char *in = exact_copy(s, len);
    size_t start = 99, n = 99;

    canon_trim(in, len, &start, &n);
    free(in);
    assert_int_equal(start, want_start);
    assert_int_equal(n, want_len);
}

static void canon_should_trim_the_contract_whitespace_set(void **state)
{
    /* clang-format off */
    static const char *const ws[] = {
        " ", "\t", "\n", "\v", "\f", "\r", "\xc2\x85", "\xc2\xa0", "\xe1\x9a\x80", "\xe2\x80\x80",
        "\xe2\x80\x85", "\xe2\x80\x8a", "\xe2\x80\xa8", "\xe2\x80\xa9", "\xe2\x80\xaf",
        "\xe2\x81\x9f", "\xe3\x80\x80"};
    /* clang-format on */
    /* clang-format off */
    static const char *const not_ws[] = {
        "\xe2\x80\x8b", "\xef\xbb\xbf", "\xe1\xa0\x8e", "\x1c", "\x1f", "\xc2\x84", "\xe2\x80\x8c",
        "\xef\xbc\x8f"};
    /* clang-format on */
    char buf[32];
    size_t i, l;

    (void)state;
    assert_trim("", 0, 0, 0);
    assert_trim("abc", 3, 0, 3);
    assert_trim("  a b  ", 7, 2, 3);
    assert_trim(" \t\n ", 4, 4, 0);
    for (i = 0; i < sizeof(ws) / sizeof(ws[0]); i++) {
        l = strlen(ws[i]);
        snprintf(buf, sizeof(buf), "%sx%sy%s", ws[i], ws[i], ws[i]);
        assert_trim(buf, 3 * l + 2, l, l + 2); /* both ends stripped, interior kept */
        assert_trim(ws[i], l, l, 0);
    }
    for (i = 0; i < sizeof(not_ws) / sizeof(not_ws[0]); i++) {
        l = strlen(not_ws[i]);
        snprintf(buf, sizeof(buf), "%sx%s", not_ws[i], not_ws[i]);
        assert_trim(buf, 2 * l + 1, 0, 2 * l + 1);
    }
    /* invalid bytes stop the scan instead of being read past */
    assert_trim(" \xff ", 3, 1, 1);
    assert_trim("\x80 ", 2, 0, 1);
    assert_trim(" \xa0", 2, 1, 1);
}

static void assert_decode(const char *q, int want_rc, const char *want, size_t want_len)
{
    size_t n = strlen(q), outlen = 77;
    char *in = exact_copy(q, n);
    char *out = malloc(n + 1);
    enum canon_reason why = CANON_OK;
    int rc;

    assert_non_null(out);
    rc = canon_form_decode(in, n, out, n + 1, &outlen, &why);
    assert_int_equal(rc, want_rc);
    if (rc == 0) {
        assert_int_equal(outlen, want_len);
        assert_memory_equal(out, want, want_len);
        assert_int_equal(out[outlen], '\0');
    } else {
        assert_int_equal(why, CANON_BAD_PERCENT);
    }
    free(out);
    free(in);
}

static void canon_should_form_decode_exactly_once(void **state)
{
    char out[8];
    size_t n;
    enum canon_reason why;

    (void)state;
    assert_decode("", 0, "", 0);
    assert_decode("abc", 0, "abc", 3);
    assert_decode("a+b", 0, "a b", 3);
    assert_decode("%2B", 0, "+", 1);
    assert_decode("%2f%2F", 0, "//", 2);
    assert_decode("%252F", 0, "%2F", 3);
    assert_decode("a%00b", 0, "a\0b", 3);
    assert_decode("%ff%C3%a9", 0, "\xff\xc3\xa9", 3);
    assert_decode("%", LS_EPATH, NULL, 0);
    assert_decode("%4", LS_EPATH, NULL, 0);
    assert_decode("a%zz", LS_EPATH, NULL, 0);
    assert_decode("%g0", LS_EPATH, NULL, 0);
    assert_decode("%0g", LS_EPATH, NULL, 0);
    assert_decode("ok%2", LS_EPATH, NULL, 0);
    /* outcap below len + 1 is a caller bug: refused before anything is written */
    memset(out, 'z', sizeof(out));
    assert_int_equal(canon_form_decode("abcdefgh", 8, out, 8, &n, &why), -EINVAL);
    assert_int_equal(out[0], 'z');
}

static void canon_should_accept_null_input_of_length_zero(void **state)
{
    char out[CANON_MAX_PATH + 1];
    size_t n = 0;
    enum canon_reason why = CANON_TOO_LONG;

    (void)state;
    assert_int_equal(canon_path(NULL, 0, out, &n, &why), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out, "/");
    assert_int_equal(why, CANON_OK);
    assert_false(canon_is_canonical(NULL, 0));
}

static void canon_should_report_the_lowest_numbered_rule(void **state)
{
    char out[CANON_MAX_PATH + 1], big[CANON_MAX_INPUT + 2];
    size_t n;
    enum canon_reason why;

    (void)state;
    /* rule 1 before 2: over-long input of invalid UTF-8 */
    memset(big, '\xff', sizeof(big));
    assert_int_equal(canon_path(big, CANON_MAX_INPUT + 1, out, &n, &why), LS_EPATH);
    assert_int_equal(why, CANON_TOO_LONG);
    /* rule 2 before 4 */
    assert_int_equal(canon_str("\x01\xc0\xaf", out, &n, &why), LS_EPATH);
    assert_int_equal(why, CANON_INVALID_UTF8);
    /* rule 4 before 6 */
    assert_int_equal(canon_str("../\x7f", out, &n, &why), LS_EPATH);
    assert_int_equal(why, CANON_CONTROL_CHAR);
    /* rule 3 before 4: whitespace controls at the ends are stripped, not rejected */
    assert_int_equal(canon_str("\t\r\n/a\v\f", out, &n, &why), 0);
    assert_string_equal(out, "/a");
}

static void canon_should_make_trailing_whitespace_segments_idempotent(void **state)
{
    char out[CANON_MAX_PATH + 1];
    size_t n;
    enum canon_reason why;

    (void)state;
    assert_int_equal(canon_str("a /", out, &n, &why), 0);
    assert_string_equal(out, "/a");
    assert_int_equal(canon_str("a \xc2\xa0/ /\xe3\x80\x80/", out, &n, &why), 0);
    assert_string_equal(out, "/a");
    assert_int_equal(canon_str("a/b/.. /", out, &n, &why), 0);
    assert_string_equal(out, "/a");
    assert_int_equal(canon_str("x/..\xc2\xa0/", out, &n, &why), 0);
    assert_string_equal(out, "/");
    assert_int_equal(canon_str("..\xc2\xa0/.", out, &n, &why), LS_EPATH);
    assert_int_equal(why, CANON_ESCAPES_ROOT);
    assert_int_equal(canon_str("a /b", out, &n, &why), 0); /* interior: kept */
    assert_string_equal(out, "/a /b");
}

static void canon_should_recognize_canonical_paths(void **state)
{
    /* clang-format off */
    static const char *const yes[] = {
        "/", "/a", "/a/b.png", "/a b/c", "/.hidden", "/...", "/a\xc2\xa0/b", "/caf\xc3\xa9"};
    /* clang-format on */
    /* clang-format off */
    static const char *const no[] = {
        "", "a", "/a/", "//a", "/a//b", "/./a", "/a/.", "/a/..", "/a\\b", "/a ", " /a",
        "/a\xc2\xa0", "/a\x01", "/\xc0\xaf", "/.."};
    /* clang-format on */
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        assert_true(canon_is_canonical(yes[i], strlen(yes[i])));
    for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        assert_false(canon_is_canonical(no[i], strlen(no[i])));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(canon_should_have_well_formed_vectors),
        cmocka_unit_test(canon_should_match_every_vector),
        cmocka_unit_test(canon_should_return_fixed_points_for_every_vector_output),
        cmocka_unit_test(canon_should_keep_invariants_on_random_inputs),
        cmocka_unit_test(canon_should_name_every_reason),
        cmocka_unit_test(canon_should_validate_utf8_strictly),
        cmocka_unit_test(canon_should_detect_control_characters),
        cmocka_unit_test(canon_should_trim_the_contract_whitespace_set),
        cmocka_unit_test(canon_should_form_decode_exactly_once),
        cmocka_unit_test(canon_should_accept_null_input_of_length_zero),
        cmocka_unit_test(canon_should_report_the_lowest_numbered_rule),
        cmocka_unit_test(canon_should_make_trailing_whitespace_segments_idempotent),
        cmocka_unit_test(canon_should_recognize_canonical_paths),
    };

    return cmocka_run_group_tests(tests, load_vectors, free_vectors);
}
