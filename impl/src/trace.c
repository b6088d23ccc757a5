/*
 * trace.c - diagnostics logging; see trace.h.
 */
#include "trace.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define TRACE_MAX_LINE       1024
#define TRACE_MAX_COMPONENTS 16
#define TRACE_MAX_NAME       16

static enum trace_level trace_level_now = TRACE_INFO;
static struct timespec trace_t0;
/* Component filter: names listed with a leading '-' are excluded; if any
 * name is listed without '-' (other than "all"), only listed ones pass. */
static char trace_only[TRACE_MAX_COMPONENTS][TRACE_MAX_NAME];
static char trace_not[TRACE_MAX_COMPONENTS][TRACE_MAX_NAME];
static int trace_nonly, trace_nnot;

static const char *const trace_names[] = {"error", "warn", "info", "debug"};

void trace_init(void)
{
    const char *lv = getenv("LS_TRACE");
    const char *comp = getenv("LS_TRACE_COMPONENTS");
    int i;

    clock_gettime(CLOCK_MONOTONIC, &trace_t0);
    if (lv && *lv) {
        for (i = 0; i < 4; i++)
            if (strcasecmp(lv, trace_names[i]) == 0)
                trace_level_now = (enum trace_level)i;
    }
    trace_nonly = trace_nnot = 0;
    while (comp && *comp) {
        const char *end = strchr(comp, ',');
        size_t n = end ? (size_t)(end - comp) : strlen(comp);
        bool neg = n > 0 && comp[0] == '-';
        const char *name = neg ? comp + 1 : comp;
        size_t nn = neg ? n - 1 : n;

        if (nn > 0 && nn < TRACE_MAX_NAME && !(nn == 3 && strncmp(name, "all", 3) == 0)) {
            if (neg && trace_nnot < TRACE_MAX_COMPONENTS) {
                memcpy(trace_not[trace_nnot], name, nn);
                trace_not[trace_nnot++][nn] = '\0';
            } else if (!neg && trace_nonly < TRACE_MAX_COMPONENTS) {
                memcpy(trace_only[trace_nonly], name, nn);
                trace_only[trace_nonly++][nn] = '\0';
            }
        }
        comp = end ? end + 1 : NULL;
    }
}

void trace_set_level(enum trace_level level)
{
    trace_level_now = level;
}

bool trace_enabled(enum trace_level level, const char *component)
{
    int i;

    if (level > trace_level_now)
        return false;
    for (i = 0; i < trace_nnot; i++)
        if (strcmp(trace_not[i], component) == 0)
            return false;
    if (trace_nonly == 0 || level == TRACE_ERROR)
        return true;
    for (i = 0; i < trace_nonly; i++)
        if (strcmp(trace_only[i], component) == 0)
            return true;
    return false;
}

void trace_log(enum trace_level level, const char *component, const char *fmt, ...)
{
    char line[TRACE_MAX_LINE];
    struct timespec now;
    double t;
    int n;
    va_list ap;

    clock_gettime(CLOCK_MONOTONIC, &now);
    t = (double)(now.tv_sec - trace_t0.tv_sec) + (double)(now.tv_nsec - trace_t0.tv_nsec) / 1e9;
    n = snprintf(line, sizeof(line), "%10.3f %-5s %-8s ", t, trace_names[level], component);
    if (n < 0)
        return;
    va_start(ap, fmt);
    if ((size_t)n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    /* Keep each record on one line whatever the message holds. */
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fprintf(stderr, "%s\n", line);
}
