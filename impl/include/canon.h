/*
 * canon.h - the path canonicalizer (contract §1, PROTOCOL §2).
 *
 * Every path that reaches the store, the idempotency table, the log or an
 * event goes through canon_path first, so two spellings of one item can never
 * become two records and no path can name anything above the workspace root.
 *
 * Invariants of a canonical path (what canon_path returns):
 *   - starts with '/', is at most CANON_MAX_PATH bytes, valid UTF-8;
 *   - no "//", no "." or ".." segment, no '\', no trailing '/' (except "/");
 *   - no control character and no trailing whitespace;
 *   - canon_path(canon_path(x)) == canon_path(x) (idempotent).
 *
 * The module is pure: no I/O, no globals, no allocation.  All functions are
 * thread-safe and reentrant; they only touch the memory the caller passes in.
 */
#ifndef LS_CANON_H
#define LS_CANON_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

#define CANON_MAX_INPUT    4096 /* bytes handed to canon_path (after query decoding) */
#define CANON_MAX_PATH     1024 /* bytes of a canonical path, without the terminator */
#define CANON_MAX_SEGMENT  255  /* bytes of one segment of a canonical path */
#define CANON_MAX_SEGMENTS 64   /* segments of a canonical path */

/* Why a path was rejected; canon_reason_name gives the wire name (error "reason"). */
enum canon_reason {
    CANON_OK = 0,
    CANON_TOO_LONG,
    CANON_INVALID_UTF8,
    CANON_CONTROL_CHAR,
    CANON_ESCAPES_ROOT,
    CANON_SEGMENT_TOO_LONG,
    CANON_TOO_MANY_SEGMENTS,
    CANON_BAD_PERCENT
};

/*
 * canon_reason_name - the protocol name of a reason: "ok", "too_long",
 * "invalid_utf8", "control_char", "escapes_root", "segment_too_long",
 * "too_many_segments", "bad_percent_encoding"; "unknown" for a value outside
 * the enum.  Returns a static string, never NULL.  Thread-safe.
 */
const char *canon_reason_name(enum canon_reason r);

/*
 * canon_path - canonicalize the bytes in[0..len) (they may contain NUL; in may
 * be NULL when len is 0) following contract §1.2 rules 1-8, plus the closure
 * rule that makes the result idempotent (see docs/internals/canon.md).
 *
 * out must hold CANON_MAX_PATH + 1 bytes and must not overlap in.  On success
 * writes the NUL-terminated canonical path, sets *outlen (excluding the NUL)
 * and returns 0.  On rejection returns LS_EPATH and sets *why; out and *outlen
 * are then unspecified.  The caller owns every buffer.  Thread-safe.
 */
LS_MUST_CHECK int canon_path(const char *in, size_t len, char *out, size_t *outlen,
                             enum canon_reason *why);

/*
 * canon_form_decode - decode application/x-www-form-urlencoded text once:
 * '+' -> space, %XX (hex, either case) -> that byte, everything else copied.
 * A '%' not followed by two hex digits returns LS_EPATH with
 * *why = CANON_BAD_PERCENT.  No second pass: "%252F" becomes "%2F".
 *
 * out receives the decoded bytes (which may include NUL) plus a terminating
 * NUL; *outlen excludes it.  outcap must be >= len + 1 (decoding never grows),
 * else -EINVAL and nothing is written.  out must not overlap in.  The input
 * length is not capped here: canon_path applies CANON_MAX_INPUT to the result.
 * Returns 0, LS_EPATH or -EINVAL.  Thread-safe.
 */
LS_MUST_CHECK int canon_form_decode(const char *in, size_t len, char *out, size_t outcap,
                                    size_t *outlen, enum canon_reason *why);

/*
 * canon_is_canonical - true when p[0..len) is already canonical, i.e.
 * canon_path would accept it and return the same bytes.  Never fails;
 * thread-safe.
 */
bool canon_is_canonical(const char *p, size_t len);

/*
 * canon_utf8_valid - true when s[0..len) is strict UTF-8 (RFC 3629): no
 * overlong forms, no surrogates U+D800-U+DFFF, nothing above U+10FFFF, no
 * truncated sequence.  An empty string is valid.  Thread-safe.
 */
bool canon_utf8_valid(const char *s, size_t len);

/*
 * canon_has_control - true when s[0..len) contains a byte 0x00-0x1F or 0x7F,
 * or a code point U+0080-U+009F.  s must be valid UTF-8 (check with
 * canon_utf8_valid first); on other input the answer is still memory-safe but
 * only meaningful for the ASCII bytes.  Thread-safe.
 */
bool canon_has_control(const char *s, size_t len);

/*
 * canon_trim - find s[0..len) without leading and trailing whitespace: ASCII
 * space, \t \n \v \f \r, and U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028,
 * U+2029, U+202F, U+205F, U+3000.  Interior whitespace is kept.  Stores the
 * offset of the first kept byte in *start and the kept length in *newlen
 * (0 when everything is whitespace).  s should be valid UTF-8; on invalid
 * bytes the scan stops there (memory-safe).  Thread-safe.
 */
void canon_trim(const char *s, size_t len, size_t *start, size_t *newlen);

#endif
