/*
 * util.h - small helpers shared by the conformance runner: capped file
 * reading, hex and percent encoding, shell quoting, text sanitising for
 * reports and traces, glob lists (--filter, --expect-fail) and clocks.
 *
 * Nothing here knows about fixtures or HTTP.  All functions are thread-safe
 * (no globals) unless they say otherwise.
 */
#ifndef LSC_UTIL_H
#define LSC_UTIL_H

#include <stddef.h>

#include "buf.h"

/* Caps on inputs read from disk; overridable at build time. */
#ifndef UTIL_MAX_LIST_LINES
#define UTIL_MAX_LIST_LINES 4096 /* lines of an --expect-fail file */
#endif

/*
 * util_read_file - read the whole file at path into out (which is reset
 * first) refusing files over max bytes.  Returns 0, LS_ETOOBIG, or -errno.
 * On failure out holds no meaningful data.
 */
LS_MUST_CHECK int util_read_file(const char *path, size_t max, struct buf *out);

/*
 * util_hex_decode - append the bytes spelled by hex (pairs of hex digits,
 * either case, no separators) to out.  Returns 0, LS_EPARSE for an odd
 * length or a non-hex digit, or a buf error.
 */
LS_MUST_CHECK int util_hex_decode(const char *hex, struct buf *out);

/*
 * util_pct_encode - append p[0..n) percent-encoded to out.  With every set,
 * every byte becomes %XX; otherwise the RFC 3986 unreserved characters
 * (ALPHA DIGIT - . _ ~) stay literal.  Returns 0 or a buf error.
 */
LS_MUST_CHECK int util_pct_encode(struct buf *out, const void *p, size_t n, int every);

/*
 * util_shell_quote - append s[0..n) as one POSIX shell word in single quotes
 * (a quote becomes '\'' ).  Meant for printable text; binary data is written
 * with util_shell_bytes_cmd instead.  Returns 0 or a buf error.
 */
LS_MUST_CHECK int util_shell_quote(struct buf *out, const void *s, size_t n);

/*
 * util_shell_bytes_cmd - append a shell command list that writes exactly the
 * bytes p[0..n) to stdout, for "... | curl --data-binary @-".  Long runs of
 * one byte become "head -c N /dev/zero | tr" pipelines so a 64 KiB body stays
 * a short command; everything else is a printf with octal escapes.
 */
LS_MUST_CHECK int util_shell_bytes_cmd(struct buf *out, const void *p, size_t n);

/* util_is_text - 1 when p[0..n) is valid UTF-8 without control bytes other than \t \n \r. */
int util_is_text(const void *p, size_t n);

/*
 * util_append_clean - append p[0..n) as safe display text: valid UTF-8 is
 * copied, \n and \t are kept when keep_newlines is set, every other control
 * byte or invalid sequence becomes \xNN.  At most max input bytes are shown;
 * the rest is summarised as "...(N more bytes)".  Returns 0 or a buf error.
 */
int util_append_clean(struct buf *out, const void *p, size_t n, size_t max, int keep_newlines);

/*
 * util_utf8_seq - the byte length (1..4) of the valid UTF-8 sequence that
 * starts at p (at most n bytes available), or 0 when p does not start one
 * (overlongs, surrogates and code points over U+10FFFF are invalid).
 */
size_t util_utf8_seq(const unsigned char *p, size_t n);

/* A list of fnmatch(3) patterns (used for --filter and --expect-fail). */
struct globlist {
    char **pat; /* owned strings */
    size_t n;
    size_t cap;
};

/* globlist_init - an empty list.  Cannot fail. */
void globlist_init(struct globlist *g);

/* globlist_cleanup - free every pattern; the list may be reused after init. NULL-safe. */
void globlist_cleanup(struct globlist *g);

/* globlist_add - copy pattern into the list.  Returns 0, LS_ETOOMANY or -ENOMEM. */
LS_MUST_CHECK int globlist_add(struct globlist *g, const char *pattern);

/*
 * globlist_load - add the patterns of a list file: one glob per line, '#'
 * starts a comment, blank lines are ignored, surrounding whitespace is
 * trimmed.  Returns 0, -errno, LS_ETOOBIG or LS_ETOOMANY.
 */
LS_MUST_CHECK int globlist_load(struct globlist *g, const char *path);

/* globlist_match - the index of the first pattern matching s, or -1. */
long globlist_match(const struct globlist *g, const char *s);

/* util_now_ms - a monotonic clock in milliseconds. */
double util_now_ms(void);

/* util_sleep_ms - sleep for ms milliseconds (restarted on EINTR). */
void util_sleep_ms(long ms);

/*
 * util_note - append printf-formatted text, ignoring failure.  Only for
 * diagnostics, where a message cut short by a cap is acceptable.
 */
LS_PRINTF(2, 3) void util_note(struct buf *b, const char *fmt, ...);

/* util_note_n - append n bytes, ignoring failure (diagnostics only). */
void util_note_n(struct buf *b, const void *p, size_t n);

/*
 * util_is_integral - 1 when d is finite and has no fractional part.  Done
 * without libm so the runner links with only curl and cJSON.
 */
int util_is_integral(double d);

/* util_fmt_number - append a JSON number as the shortest faithful text (integers without ".0"). */
LS_MUST_CHECK int util_fmt_number(struct buf *out, double d);

#endif
