/*
 * testutil.c - see testutil.h.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef LS_SPEC_DIR_DEFAULT
#define LS_SPEC_DIR_DEFAULT "spec"
#endif

#define TU_MAX_FILE (64u * 1024u * 1024u)

const char *tu_spec_dir(void)
{
    const char *d = getenv("LS_SPEC_DIR");

    return (d && *d) ? d : LS_SPEC_DIR_DEFAULT;
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || (unsigned long)n > TU_MAX_FILE ||
        fseek(f, 0, SEEK_SET) != 0)
        goto out;
    data = malloc((size_t)n + 1);
    if (!data)
        goto out;
    if (fread(data, 1, (size_t)n, f) != (size_t)n) {
        free(data);
        data = NULL;
        goto out;
    }
    data[n] = '\0';
    if (len)
        *len = (size_t)n;
out:
    fclose(f);
    return data;
}

cJSON *tu_load_spec_json(const char *rel)
{
    char path[4096];
    size_t len = 0;
    char *text;
    cJSON *root;

    snprintf(path, sizeof(path), "%s/%s", tu_spec_dir(), rel);
    text = tu_read_file(path, &len);
    if (!text) {
        fprintf(stderr, "testutil: cannot read %s (set LS_SPEC_DIR?)\n", path);
        abort();
    }
    root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root) {
        fprintf(stderr, "testutil: %s is not valid JSON\n", path);
        abort();
    }
    return root;
}

static int tu_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

unsigned char *tu_hex_decode(const char *hex, size_t *len)
{
    size_t n = strlen(hex), i;
    unsigned char *out;

    if (n % 2)
        return NULL;
    out = malloc(n / 2 + 1);
    if (!out)
        return NULL;
    for (i = 0; i < n / 2; i++) {
        int hi = tu_hexval(hex[2 * i]), lo = tu_hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(out);
            return NULL;
        }
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    out[n / 2] = 0;
    *len = n / 2;
    return out;
}
