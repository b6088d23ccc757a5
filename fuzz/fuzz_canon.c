/*
 * fuzz_canon.c - the path canonicalizer (canon.h; PROTOCOL §2) against its
 * invariants and against an independent reference.
 *
 * Every input is tried twice: as raw bytes given to canon_path, and through
 * canon_form_decode first (the ?path= query route).  Properties:
 *   - deterministic: the same bytes give the same answer twice;
 *   - agrees with ref_canon below, a straightforward left-to-right
 *     implementation of the rules (stack of segments, no shortcuts), in the
 *     verdict, the reason and the bytes.  In particular ".." never climbs
 *     above the root: an input the reference sees escape is rejected with
 *     escapes_root, and nothing else is;
 *   - an accepted result is well-formed (starts with '/', no "//", no "." or
 *     ".." segment, no '\', no trailing '/' unless it is "/", valid UTF-8, no
 *     control character, no surrounding whitespace, within every cap), is
 *     canon_is_canonical, canonicalizes to itself (idempotent), and is at
 *     most one byte longer than the input;
 *   - canon_is_canonical(x) holds exactly when canon_path(x) == x;
 *   - canon_form_decode agrees with a reference decoder, never grows, and
 *     with too small an output buffer fails with -EINVAL writing nothing.
 * The input is never modified; every copy handed to the module is an
 * exact-size allocation, so a read past the end is caught.
 */
#include <stdbool.h>
#include <string.h>

#include "canon.h"
#include "fuzz.h"

#define MAX_INPUT 16384

/* ---- reference ------------------------------------------------------------ */

/*
 * Decode one code point at s[0..n) by the textbook definition (length from
 * the lead byte, continuation bytes 10xxxxxx, shortest form, no surrogates,
 * at most U+10FFFF).  Returns the length or 0 when malformed.
 */
static size_t ref_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t len, i;
    uint32_t c;
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if ((s[0] & 0xE0) == 0xC0) {
        len = 2;
        c = s[0] & 0x1Fu;
    } else if ((s[0] & 0xF0) == 0xE0) {
        len = 3;
        c = s[0] & 0x0Fu;
    } else if ((s[0] & 0xF8) == 0xF0) {
        len = 4;
        c = s[0] & 0x07u;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3Fu);
    }
    if (c < min[len] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

static bool ref_space(uint32_t c)
{
    static const uint32_t set[] = {0x09,   0x0A,   0x0B,   0x0C,   0x0D,   0x20,   0x85,
                                   0xA0,   0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004,
                                   0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A, 0x2028,
                                   0x2029, 0x202F, 0x205F, 0x3000};

    for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++)
        if (set[i] == c)
            return true;
    return false;
}

/* Whether s[0..n) is valid UTF-8; *ends_space: its last code point is whitespace. */
static bool ref_utf8(const unsigned char *s, size_t n, bool *ends_space)
{
    size_t i = 0, k;
    uint32_t c = 0;

    *ends_space = false;
    while (i < n) {
        if ((k = ref_decode(s + i, n - i, &c)) == 0)
            return false;
        i += k;
        *ends_space = ref_space(c);
    }
    return true;
}

struct seg {
    size_t off, len;
};

/* One pass of rules 1-8 over in[0..len) (valid pointer), result in out. */
static int ref_once(const unsigned char *in, size_t len, char *out, size_t *outlen,
                    enum canon_reason *why)
{
    struct seg stack[CANON_MAX_INPUT / 2 + 2]; /* a kept segment takes >= 2 of <= 4096 bytes */
    size_t b = 0, e = len, i, k, depth = 0, total = 0;
    bool escaped = false, seg_long = false, dummy;
    uint32_t c = 0;

    if (len > CANON_MAX_INPUT) {
        *why = CANON_TOO_LONG;
        return LS_EPATH;
    }
    if (!ref_utf8(in, len, &dummy)) {
        *why = CANON_INVALID_UTF8;
        return LS_EPATH;
    }
    /* Trim: walk code points forward; keep [first non-space, end of last non-space). */
    {
        size_t first = len, last_end = 0;

        for (i = 0; i < len; i += k) {
            k = ref_decode(in + i, len - i, &c);
            if (!ref_space(c)) {
                if (first == len)
                    first = i;
                last_end = i + k;
            }
        }
        b = first;
        e = first == len ? len : last_end;
    }
    for (i = b; i < e; i += k) {
        k = ref_decode(in + i, e - i, &c);
        if (c < 0x20 || c == 0x7F || (c >= 0x80 && c <= 0x9F)) {
            *why = CANON_CONTROL_CHAR;
            return LS_EPATH;
        }
    }
    /* Left to right: '/' and '\' separate; "" and "." vanish; ".." pops. */
    for (i = b; i <= e;) {
        size_t j = i, sl;

        while (j < e && in[j] != '/' && in[j] != '\\')
            j++;
        sl = j - i;
        if (sl == 0 || (sl == 1 && in[i] == '.')) {
            /* dropped */
        } else if (sl == 2 && in[i] == '.' && in[i + 1] == '.') {
            if (depth == 0)
                escaped = true;
            else
                depth--;
        } else {
            stack[depth].off = i;
            stack[depth].len = sl;
            depth++;
        }
        i = j + 1;
    }
    if (escaped) {
        *why = CANON_ESCAPES_ROOT;
        return LS_EPATH;
    }
    for (i = 0; i < depth; i++) {
        seg_long |= stack[i].len > CANON_MAX_SEGMENT;
        total += stack[i].len + 1;
    }
    if (seg_long) {
        *why = CANON_SEGMENT_TOO_LONG;
        return LS_EPATH;
    }
    if (depth > CANON_MAX_SEGMENTS) {
        *why = CANON_TOO_MANY_SEGMENTS;
        return LS_EPATH;
    }
    if (total > CANON_MAX_PATH) {
        *why = CANON_TOO_LONG;
        return LS_EPATH;
    }
    total = 0;
    for (i = 0; i < depth; i++) {
        out[total++] = '/';
        memcpy(out + total, in + stack[i].off, stack[i].len);
        total += stack[i].len;
    }
    if (total == 0)
        out[total++] = '/';
    out[total] = '\0';
    *outlen = total;
    return 0;
}

/* Rules 1-8, repeated while the result ends in whitespace (the closure rule). */
static int ref_canon(const unsigned char *in, size_t len, char *out, size_t *outlen,
                     enum canon_reason *why)
{
    char again[CANON_MAX_PATH + 1];
    bool sp;
    int rc = ref_once(in, len, out, outlen, why);

    while (rc == 0 && ref_utf8((const unsigned char *)out, *outlen, &sp) && sp) {
        memcpy(again, out, *outlen);
        rc = ref_once((const unsigned char *)again, *outlen, out, outlen, why);
    }
    if (rc == 0)
        *why = CANON_OK;
    return rc;
}

/* ---- properties ------------------------------------------------------------- */

/* The invariants of canon.h for an accepted path p[0..n). */
static void check_well_formed(const char *p, size_t n)
{
    size_t i, segs = 0, seglen = 0, start, kept;

    FUZZ_CHECK(n >= 1 && n <= CANON_MAX_PATH && p[0] == '/' && p[n] == '\0');
    FUZZ_CHECK(n == 1 || p[n - 1] != '/');
    FUZZ_CHECK(canon_utf8_valid(p, n) && !canon_has_control(p, n));
    FUZZ_CHECK(memchr(p, '\\', n) == NULL);
    canon_trim(p, n, &start, &kept);
    FUZZ_CHECK(start == 0 && kept == n);
    for (i = 1; i <= n; i++) {
        if (i < n && p[i] != '/') {
            seglen++;
            continue;
        }
        if (n == 1)
            break;
        FUZZ_CHECK(seglen > 0); /* no "//" */
        FUZZ_CHECK(seglen <= CANON_MAX_SEGMENT);
        FUZZ_CHECK(!(seglen == 1 && p[i - 1] == '.'));
        FUZZ_CHECK(!(seglen == 2 && p[i - 1] == '.' && p[i - 2] == '.'));
        segs++;
        seglen = 0;
    }
    FUZZ_CHECK(segs <= CANON_MAX_SEGMENTS);
}

static void check_path(const char *in, size_t len)
{
    char out[CANON_MAX_PATH + 1], out2[CANON_MAX_PATH + 1], ref[CANON_MAX_PATH + 1];
    size_t n = 0, n2 = 0, rn = 0;
    enum canon_reason why = CANON_OK, why2 = CANON_OK, rwhy = CANON_OK;
    int rc, rc2, rrc;
    bool canonical = canon_is_canonical(in, len);

    rc = canon_path(in, len, out, &n, &why);
    rc2 = canon_path(in, len, out2, &n2, &why2);
    FUZZ_CHECK(rc == 0 || rc == LS_EPATH);
    FUZZ_CHECK(rc == rc2 && why == why2);
    rrc = ref_canon((const unsigned char *)in, len, ref, &rn, &rwhy);
    FUZZ_CHECK(rc == rrc && why == rwhy);
    if (rc != 0) {
        FUZZ_CHECK(why != CANON_OK && why != CANON_BAD_PERCENT);
        FUZZ_CHECK(!canonical);
        return;
    }
    FUZZ_CHECK(why == CANON_OK);
    FUZZ_CHECK(n == n2 && memcmp(out, out2, n) == 0);
    FUZZ_CHECK(n == rn && memcmp(out, ref, n) == 0);
    FUZZ_CHECK(n <= len + 1);
    check_well_formed(out, n);
    FUZZ_CHECK(canonical == (n == len && memcmp(out, in, len) == 0));
    {
        char *copy = fuzz_dup(out, n);

        FUZZ_CHECK(canon_is_canonical(copy, n));
        rc = canon_path(copy, n, out2, &n2, &why2);
        FUZZ_CHECK(rc == 0 && n2 == n && memcmp(out2, out, n) == 0);
        free(copy);
    }
}

/* Reference form decoding: 0 with the bytes, or 1 when a '%' is not followed by two hex digits. */
static int ref_form_decode(const unsigned char *in, size_t len, unsigned char *out, size_t *outlen)
{
    static const char hex[] = "0123456789abcdef0123456789ABCDEF";
    size_t i = 0, o = 0;

    while (i < len) {
        if (in[i] == '%') {
            const char *h, *l;

            if (i + 2 >= len || !in[i + 1] || !in[i + 2] || !(h = strchr(hex, in[i + 1])) ||
                !(l = strchr(hex, in[i + 2])))
                return 1;
            out[o++] = (unsigned char)(((h - hex) % 16) * 16 + (l - hex) % 16);
            i += 3;
        } else {
            out[o++] = in[i] == '+' ? ' ' : in[i];
            i++;
        }
    }
    *outlen = o;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    char *dec, *ref;
    size_t dlen = 0, rlen = 0, tmp = 0;
    enum canon_reason why = CANON_OK;
    int rc;

    if (size > MAX_INPUT)
        return 0;
    check_path(in, size);

    /* The query route: decode once, then canonicalize the decoded bytes. */
    dec = malloc(size + 1);
    ref = malloc(size + 1);
    if (!dec || !ref)
        abort();
    if (size > 0) {
        memset(dec, 0x5A, size + 1);
        rc = canon_form_decode(in, size, dec, size, &tmp, &why);
        FUZZ_CHECK(rc == -EINVAL);
        for (size_t i = 0; i < size; i++)
            FUZZ_CHECK(dec[i] == 0x5A);
    }
    rc = canon_form_decode(in, size, dec, size + 1, &dlen, &why);
    FUZZ_CHECK(rc == 0 || rc == LS_EPATH);
    if (ref_form_decode(data, size, (unsigned char *)ref, &rlen) != 0) {
        FUZZ_CHECK(rc == LS_EPATH && why == CANON_BAD_PERCENT);
    } else {
        char *exact;

        FUZZ_CHECK(rc == 0 && why == CANON_OK);
        FUZZ_CHECK(dlen == rlen && dlen <= size && dec[dlen] == '\0');
        FUZZ_CHECK(memcmp(dec, ref, dlen) == 0);
        exact = fuzz_dup(dec, dlen);
        check_path(exact, dlen);
        free(exact);
    }
    free(dec);
    free(ref);
    return 0;
}
