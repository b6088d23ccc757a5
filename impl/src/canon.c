/*
 * canon.c - the path canonicalizer; see canon.h and docs/internals/canon.md.
 *
 * canon_path applies the rules of contract §1.2 in their numbered order, so
 * that when an input breaks several rules the reported reason is the one of
 * the lowest-numbered rule:
 *   1 length <= CANON_MAX_INPUT      2 strict UTF-8     3 trim whitespace
 *   4 no control characters          5 '\' is '/'       6 resolve "." and ".."
 *   7 segment and segment-count caps 8 join, output cap
 * followed by the closure rule: while the output ends in whitespace (only
 * possible when the last kept segment does, e.g. "a /" -> "/a "), rules 3-8
 * run again on the output, because rule 3 would strip that whitespace on the
 * next call and the result must be idempotent.
 *
 * Rule 6 runs right to left with a counter of pending "..": a ".." raises
 * it, a normal segment met while it is positive is dropped and lowers it.  A
 * ".." left over at the start is one that had nothing to remove, which is
 * exactly the left-to-right "escapes the root" condition.  Walking this way
 * needs no stack of segments, so memory stays O(1) however many segments and
 * ".." the 4096 input bytes hold, and the kept segments can be written
 * straight into out from its end.  The walk is done twice: once to measure
 * (so rule 7 and 8 failures are found before anything is written), once to
 * write.
 *
 * Nothing here allocates, reads globals or keeps state between calls.
 */
#include "canon.h"

#include <stdint.h>
#include <string.h>

const char *canon_reason_name(enum canon_reason r)
{
    switch (r) {
    case CANON_OK:
        return "ok";
    case CANON_TOO_LONG:
        return "too_long";
    case CANON_INVALID_UTF8:
        return "invalid_utf8";
    case CANON_CONTROL_CHAR:
        return "control_char";
    case CANON_ESCAPES_ROOT:
        return "escapes_root";
    case CANON_SEGMENT_TOO_LONG:
        return "segment_too_long";
    case CANON_TOO_MANY_SEGMENTS:
        return "too_many_segments";
    case CANON_BAD_PERCENT:
        return "bad_percent_encoding";
    }
    return "unknown";
}

/* ---- UTF-8 --------------------------------------------------------------- */

/*
 * Decode one code point of strict UTF-8 at s[0..len) (len >= 1).  Returns the
 * sequence length (1-4) and stores the code point, or 0 when the bytes are not
 * a well-formed sequence.  The second-byte ranges are those of Unicode Table
 * 3-7; checking them is what rules out overlongs (E0 80..9F, F0 80..8F),
 * surrogates (ED A0..BF) and code points above U+10FFFF (F4 90.., F5..FF).
 */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char b0 = s[0], lo = 0x80, hi = 0xBF;
    size_t n, i;
    uint32_t c;

    if (b0 < 0x80) {
        *cp = b0;
        return 1;
    }
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        n = 2;
        c = b0 & 0x1Fu;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        n = 3;
        c = b0 & 0x0Fu;
        if (b0 == 0xE0)
            lo = 0xA0;
        else if (b0 == 0xED)
            hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        n = 4;
        c = b0 & 0x07u;
        if (b0 == 0xF0)
            lo = 0x90;
        else if (b0 == 0xF4)
            hi = 0x8F;
    } else {
        return 0; /* 80..C1 (continuation or overlong lead), F5..FF */
    }
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    c = (c << 6) | (s[1] & 0x3Fu);
    for (i = 2; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3Fu);
    }
    *cp = c;
    return n;
}

bool canon_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n;
    uint32_t cp;

    while (i < len) {
        n = utf8_decode(p + i, len - i, &cp);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

bool canon_has_control(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i;

    for (i = 0; i < len; i++) {
        if (p[i] < 0x20 || p[i] == 0x7F)
            return true;
        /* U+0080..U+009F is C2 80..C2 9F; in valid UTF-8 a C2 is always a lead byte */
        if (p[i] == 0xC2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9F)
            return true;
    }
    return false;
}

/* ---- whitespace ------------------------------------------------------------ */

/* The contract's whitespace set (§1.2 rule 3); the same set trims tags (§3.3). */
static bool is_space_cp(uint32_t c)
{
    return c == 0x20 || (c >= 0x09 && c <= 0x0D) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/*
 * Length of the whitespace code point ending at s[len - 1], or 0 when the
 * last code point is not whitespace or is not well-formed.  A code point is at
 * most 4 bytes, so step back over at most 3 continuation bytes and require the
 * decode from there to end exactly at len.
 */
static size_t trailing_space_len(const unsigned char *s, size_t len)
{
    size_t back = 1;
    uint32_t cp;

    while (back < 4 && back < len && (s[len - back] & 0xC0) == 0x80)
        back++;
    if (utf8_decode(s + len - back, back, &cp) != back)
        return 0;
    return is_space_cp(cp) ? back : 0;
}

void canon_trim(const char *s, size_t len, size_t *start, size_t *newlen)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t b = 0, e = len, n;
    uint32_t cp;

    while (b < e) {
        n = utf8_decode(p + b, e - b, &cp);
        if (n == 0 || !is_space_cp(cp))
            break;
        b += n;
    }
    while (e > b) {
        n = trailing_space_len(p + b, e - b);
        if (n == 0)
            break;
        e -= n;
    }
    *start = b;
    *newlen = e - b;
}

/* ---- rules 5-8 --------------------------------------------------------------- */

/* Rule 5: a backslash is a separator exactly like '/'; no byte is rewritten. */
static bool is_sep(unsigned char c)
{
    return c == '/' || c == '\\';
}

/* What the right-to-left walk of rule 6 found. */
struct walk {
    size_t pending; /* ".." still looking for a segment to remove */
    size_t kept;    /* segments that survive */
    size_t total;   /* bytes of the joined output ("/" + segment, each) */
    bool seg_too_long;
};

/*
 * Walk the segments of s[0..len) from the right, applying rule 6, and count
 * into *w.  With out non-NULL, also write every kept segment, preceded by '/',
 * backwards from out[outend] - callers pass out only after a measuring walk
 * has shown that the result fits, with outend = the measured total.
 */
static void walk_segments(const unsigned char *s, size_t len, char *out, size_t outend,
                          struct walk *w)
{
    size_t end = len, beg, seglen, pos = outend;

    w->pending = 0;
    w->kept = 0;
    w->total = 0;
    w->seg_too_long = false;
    for (;;) {
        beg = end;
        while (beg > 0 && !is_sep(s[beg - 1]))
            beg--;
        seglen = end - beg;
        if (seglen == 0 || (seglen == 1 && s[beg] == '.')) {
            /* empty and "." segments are dropped */
        } else if (seglen == 2 && s[beg] == '.' && s[beg + 1] == '.') {
            w->pending++;
        } else if (w->pending > 0) {
            w->pending--; /* removed by a ".." to its right */
        } else {
            w->kept++;
            w->total += seglen + 1;
            if (seglen > CANON_MAX_SEGMENT)
                w->seg_too_long = true;
            if (out) {
                pos -= seglen;
                memcpy(out + pos, s + beg, seglen);
                out[--pos] = '/';
            }
        }
        if (beg == 0)
            break;
        end = beg - 1; /* step over the separator */
    }
}

/* Rules 1-8 once.  out holds CANON_MAX_PATH + 1 bytes and does not overlap in. */
static int canon_once(const unsigned char *in, size_t len, char *out, size_t *outlen,
                      enum canon_reason *why)
{
    const char *text = (const char *)in;
    size_t start, n;
    struct walk w;

    if (len > CANON_MAX_INPUT) {
        *why = CANON_TOO_LONG;
        return LS_EPATH;
    }
    if (!canon_utf8_valid(text, len)) {
        *why = CANON_INVALID_UTF8;
        return LS_EPATH;
    }
    canon_trim(text, len, &start, &n);
    in += start;
    if (canon_has_control((const char *)in, n)) {
        *why = CANON_CONTROL_CHAR;
        return LS_EPATH;
    }
    walk_segments(in, n, NULL, 0, &w);
    if (w.pending > 0) {
        *why = CANON_ESCAPES_ROOT;
        return LS_EPATH;
    }
    if (w.seg_too_long) {
        *why = CANON_SEGMENT_TOO_LONG;
        return LS_EPATH;
    }
    if (w.kept > CANON_MAX_SEGMENTS) {
        *why = CANON_TOO_MANY_SEGMENTS;
        return LS_EPATH;
    }
    if (w.total > CANON_MAX_PATH) {
        *why = CANON_TOO_LONG;
        return LS_EPATH;
    }
    if (w.kept == 0) {
        out[0] = '/';
        w.total = 1;
    } else {
        walk_segments(in, n, out, w.total, &w);
    }
    out[w.total] = '\0';
    *outlen = w.total;
    return 0;
}

int canon_path(const char *in, size_t len, char *out, size_t *outlen, enum canon_reason *why)
{
    static const char empty[1] = "";
    char again[CANON_MAX_PATH + 1];
    int rc;

    if (len == 0)
        in = empty; /* in may be NULL then; give the walks a valid pointer */
    rc = canon_once((const unsigned char *)in, len, out, outlen, why);
    /*
     * Closure rule.  Each round removes at least one trailing whitespace code
     * point, so there are at most CANON_MAX_PATH rounds; in practice one.
     * Only rule 6 can fail in a later round ("..\u00a0/x/.." -> "/..\u00a0"
     * -> "/.." escapes); the other rules already hold for the output.
     */
    while (rc == 0 && trailing_space_len((const unsigned char *)out, *outlen) > 0) {
        memcpy(again, out, *outlen);
        rc = canon_once((const unsigned char *)again, *outlen, out, outlen, why);
    }
    if (rc == 0)
        *why = CANON_OK;
    return rc;
}

/* ---- query decoding -------------------------------------------------------- */

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int canon_form_decode(const char *in, size_t len, char *out, size_t outcap, size_t *outlen,
                      enum canon_reason *why)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t i = 0, o = 0;
    int hi, lo;

    if (!out || outcap < len + 1 || len == SIZE_MAX)
        return -EINVAL;
    while (i < len) {
        if (p[i] == '+') {
            out[o++] = ' ';
            i++;
        } else if (p[i] == '%') {
            /* both digits must be present and hex; "%4" at the end is as bad as "%zz" */
            if (len - i < 3 || (hi = hexval(p[i + 1])) < 0 || (lo = hexval(p[i + 2])) < 0) {
                *why = CANON_BAD_PERCENT;
                return LS_EPATH;
            }
            out[o++] = (char)(unsigned char)(hi << 4 | lo);
            i += 3;
        } else {
            out[o++] = (char)p[i++];
        }
    }
    out[o] = '\0';
    *outlen = o;
    *why = CANON_OK;
    return 0;
}

/* ---- canonical check --------------------------------------------------------- */

bool canon_is_canonical(const char *p, size_t len)
{
    char out[CANON_MAX_PATH + 1];
    enum canon_reason why;
    size_t n;

    /* Defined as "canon_path returns it unchanged", so reuse it rather than restate the rules. */
    if (len == 0 || len > CANON_MAX_PATH || p[0] != '/')
        return false;
    if (canon_path(p, len, out, &n, &why) != 0)
        return false;
    return n == len && memcmp(out, p, len) == 0;
}
