/*
 * buf.h - a capped, growable byte buffer (after curl's dynbuf).
 *
 * Every buffer has a hard maximum chosen by its owner; appending past it
 * fails with LS_ETOOBIG and leaves the buffer unchanged.  The contents are
 * always NUL-terminated (the terminator is not counted in len), so text can
 * be handed to C string functions, while binary data with NULs also works.
 * Not thread-safe: one owner at a time.
 */
#ifndef LS_BUF_H
#define LS_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "err.h"

struct buf {
    char *data; /* NULL until the first append; read-only for users */
    size_t len; /* bytes used, excluding the terminator; read-only */
    size_t cap; /* allocated bytes; private */
    size_t max; /* hard cap on len; private */
};

/* buf_init - an empty buffer that may grow to at most max bytes.  Cannot fail. */
void buf_init(struct buf *b, size_t max);

/* buf_cleanup - free the storage; the struct may be reused after buf_init. NULL-safe. */
void buf_cleanup(struct buf *b);

/* buf_reset - drop the contents but keep the storage and the cap. */
void buf_reset(struct buf *b);

/*
 * buf_append - append n bytes from p.  Returns 0, LS_ETOOBIG if len + n would
 * exceed the cap, or -ENOMEM.  On failure the buffer is unchanged.
 */
LS_MUST_CHECK int buf_append(struct buf *b, const void *p, size_t n);

/* buf_appends - append a NUL-terminated string; as buf_append. */
LS_MUST_CHECK int buf_appends(struct buf *b, const char *s);

/* buf_appendc - append one byte; as buf_append. */
LS_MUST_CHECK int buf_appendc(struct buf *b, char c);

/* buf_appendf - append printf-formatted text; as buf_append. */
LS_MUST_CHECK LS_PRINTF(2, 3) int buf_appendf(struct buf *b, const char *fmt, ...);

/* buf_vappendf - va_list form of buf_appendf. */
LS_MUST_CHECK LS_PRINTF(2, 0) int buf_vappendf(struct buf *b, const char *fmt, va_list ap);

/*
 * buf_take - hand the storage to the caller (free() it) and leave the buffer
 * empty.  Returns a NUL-terminated allocation even for an empty buffer, or NULL
 * when that allocation fails.  *len (optional) receives the length.
 */
char *buf_take(struct buf *b, size_t *len);

#endif
