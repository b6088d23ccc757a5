/*
 * testutil.h - helpers shared by the cmocka unit tests.
 *
 * Tests find the spec tree through the LS_SPEC_DIR environment variable, or
 * the LS_SPEC_DIR_DEFAULT macro the Makefile compiles in (the repository's
 * spec/ directory).
 */
#ifndef LS_TESTUTIL_H
#define LS_TESTUTIL_H

#include <stddef.h>

#include <cJSON.h>

/* tu_spec_dir - the spec directory (no trailing slash). Never NULL. */
const char *tu_spec_dir(void);

/*
 * tu_read_file - read a whole file; returns a malloc'd NUL-terminated buffer
 * (free() it) and its length in *len, or NULL on error.
 */
char *tu_read_file(const char *path, size_t *len);

/*
 * tu_load_spec_json - parse <spec dir>/<rel> as JSON.  Returns a tree to be
 * released with cJSON_Delete; aborts the test program with a message when the
 * file is missing or malformed, since a test without its vectors cannot pass.
 */
cJSON *tu_load_spec_json(const char *rel);

/*
 * tu_hex_decode - decode a hex string into a malloc'd buffer (free() it);
 * returns NULL on odd length or a non-hex digit.
 */
unsigned char *tu_hex_decode(const char *hex, size_t *len);

#endif
