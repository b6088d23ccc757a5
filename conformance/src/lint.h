/*
 * lint.h - `labelsync-check --lint`: validate every fixture of a spec
 * directory against the JSON Schema of the fixture format (with a built-in
 * validator for the subset of draft 2020-12 the schema uses) and run the
 * semantic checks a schema cannot express:
 *   - id equals the file name without .json, and ids are unique;
 *   - every Idempotency-Key header value contains {{run}} (directly, via a
 *     case variable, or via {{client.NAME}}), so a long-lived server can be
 *     tested twice; an empty value (testing the missing-key error) is exempt;
 *   - every {{var}} and $var is defined (vars, earlier captures including
 *     those of sse_expect events, built-ins) before it is used, and {{i}}
 *     only appears inside parallel groups;
 *   - every `requires` name is in the schema's $defs/feature enum;
 *   - selftest_expect appears only in self-test directories (marker SELFTEST).
 * The structural checks of fixture.c run as well (among them: a stream step
 * names a stream opened by an earlier sse_open and not closed since), so the
 * runner and the lint can never disagree silently.  Not thread-safe.
 */
#ifndef LSC_LINT_H
#define LSC_LINT_H

#include <cJSON.h>

#include "buf.h"

#ifndef LINT_MAX_SCHEMA_BYTES
#define LINT_MAX_SCHEMA_BYTES (1024 * 1024)
#endif

/*
 * lint_run - lint every <spec_dir>/cases/<id>.json against the schema at
 * schema_path (NULL = <spec_dir>/schema/fixture.schema.json), printing one
 * "file: problem" line per problem on stdout and a summary on stderr.
 * Returns 0 when clean, 2 when there are problems or the inputs cannot be read.
 */
int lint_run(const char *spec_dir, const char *schema_path);

/*
 * schema_validate - validate instance against schema (a node inside root,
 * used to resolve "#/..." references), appending "prefix: /pointer: problem"
 * lines to err.  Returns the number of problems (0 = valid).
 */
int schema_validate(const cJSON *root, const cJSON *schema, const cJSON *instance,
                    const char *prefix, struct buf *err);

#endif
