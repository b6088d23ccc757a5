/*
 * err.h - the one error space of labelsync.
 *
 * Every fallible function returns 0 on success or a negative code: either
 * -errno (-ENOMEM, -EIO, -ENOSPC, ...) or a project code from the LS_E* band
 * below (all <= -5000, so they never collide with errno values).  The table is
 * an X-macro so names, messages and values cannot drift apart.  Only http.c
 * maps these codes to HTTP statuses.
 */
#ifndef LS_ERR_H
#define LS_ERR_H

#include <errno.h>

#if defined(__GNUC__)
#define LS_MUST_CHECK        __attribute__((warn_unused_result))
#define LS_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define LS_MUST_CHECK
#define LS_PRINTF(fmt, args)
#endif

/* XX(name, value, message) */
#define LS_ERR_MAP(XX)                                                      \
    XX(EPARSE, -5001, "malformed input")                                    \
    XX(ETOOBIG, -5002, "input exceeds a limit")                             \
    XX(ECONFLICT, -5003, "version conflict")                                \
    XX(ENOTFOUND, -5004, "not found")                                       \
    XX(ECORRUPT, -5005, "corrupt data")                                     \
    XX(ETYPE, -5006, "wrong JSON type")                                     \
    XX(EVALUE, -5007, "value out of range or not allowed")                  \
    XX(EUNKNOWN, -5008, "unknown field")                                    \
    XX(EDUP, -5009, "duplicate field or parameter")                         \
    XX(EREUSED, -5010, "idempotency key reused with a different request")   \
    XX(EINFLIGHT, -5011, "request with this idempotency key still running") \
    XX(EPATH, -5012, "invalid path")                                        \
    XX(ETOOMANY, -5013, "too many elements")                                \
    XX(EFULL, -5014, "table full")                                          \
    XX(ELOCKED, -5015, "workspace is locked by another labelsyncd")

enum ls_err {
    LS_OK = 0,
#define LS_ERR_ENUM(name, value, msg) LS_##name = (value),
    LS_ERR_MAP(LS_ERR_ENUM)
#undef LS_ERR_ENUM
};

/*
 * ls_strerror - a static, human-readable message for any code this project
 * returns (project band or -errno).  Never NULL.  Thread-safe.
 */
const char *ls_strerror(int err);

/*
 * ls_err_name - the symbolic name ("LS_ECONFLICT", "ENOSPC", ...) of a code,
 * or "UNKNOWN".  Never NULL.  Thread-safe.
 */
const char *ls_err_name(int err);

#endif
