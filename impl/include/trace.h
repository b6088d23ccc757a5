/*
 * trace.h - diagnostics on stderr (never "the log": that is the wal module).
 *
 * One line per record: seconds since start, level, component, message.
 * The level and the component set come from the environment:
 *   LS_TRACE=debug|info|warn|error     (default: info)
 *   LS_TRACE_COMPONENTS=http,store     (default: all; "all,-http" drops one)
 * Macros test the level before formatting, so a disabled record costs a
 * compare.  Thread-safe: records are written with one fputs each.
 */
#ifndef LS_TRACE_H
#define LS_TRACE_H

#include <stdbool.h>

#include "err.h"

enum trace_level { TRACE_ERROR = 0, TRACE_WARN, TRACE_INFO, TRACE_DEBUG };

/* trace_init - read LS_TRACE and LS_TRACE_COMPONENTS. Call once before threads start. */
void trace_init(void);

/* trace_set_level - override the level (tests, --quiet). Not thread-safe vs. logging. */
void trace_set_level(enum trace_level level);

/* trace_enabled - whether a record of this level and component would be written. */
bool trace_enabled(enum trace_level level, const char *component);

/* trace_log - write one record (use the TRACE macro instead). */
LS_PRINTF(3, 4) void trace_log(enum trace_level level, const char *component, const char *fmt, ...);

#define TRACE(level, component, ...)                      \
    do {                                                  \
        if (trace_enabled((level), (component)))          \
            trace_log((level), (component), __VA_ARGS__); \
    } while (0)

#define TRACE_E(c, ...) TRACE(TRACE_ERROR, c, __VA_ARGS__)
#define TRACE_W(c, ...) TRACE(TRACE_WARN, c, __VA_ARGS__)
#define TRACE_I(c, ...) TRACE(TRACE_INFO, c, __VA_ARGS__)
#define TRACE_D(c, ...) TRACE(TRACE_DEBUG, c, __VA_ARGS__)

#endif
