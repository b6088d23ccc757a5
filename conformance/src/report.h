/*
 * report.h - machine-readable results: --report-json and --report-junit.
 *
 * Both writers take the same array of entries.  Every text that came from a
 * server or a fixture is sanitised (valid UTF-8, no control bytes) before it
 * is written, so the files always parse.  Not thread-safe.
 */
#ifndef LSC_REPORT_H
#define LSC_REPORT_H

#include <stddef.h>

#include <cJSON.h>

#include "fixture.h"
#include "run.h"

#define LSC_VERSION "0.1.0"

/* One reported case. */
struct report_entry {
    const struct fixture *f; /* borrowed */
    struct case_result r;    /* r.message owned by the entry's owner */
};

/* Run-wide facts shown in the reports. */
struct report_meta {
    const char *url;
    const char *run_id;
    const cJSON *features; /* array from /health, borrowed; may be NULL */
    double duration_ms;
    size_t passed, failed, skipped, xfail, xpass;
};

/* report_status_name - "pass", "fail", "skip", "xfail" or "xpass". */
const char *report_status_name(enum case_status s);

/*
 * report_write_json - write the summary and per-case results to path.
 * Returns 0 or -errno / -ENOMEM (a partial file may remain).
 */
LS_MUST_CHECK int report_write_json(const char *path, const struct report_meta *m,
                                    const struct report_entry *e, size_t n);

/*
 * report_write_junit - write JUnit XML (one testsuite, one testcase per case,
 * <failure> for FAIL/XPASS, <skipped> for SKIP/XFAIL).  Returns as above.
 */
LS_MUST_CHECK int report_write_junit(const char *path, const struct report_meta *m,
                                     const struct report_entry *e, size_t n);

#endif
