/*
 * standalone.c - replay fuzz inputs through a target without libFuzzer (after
 * LLVM's StandaloneFuzzTargetMain.c and curl-fuzzer's standalone runner).
 *
 * Linked with one fuzz_<target>.c it gives build/<flavor>/fuzz/replay_<target>,
 * which `make check`, `make asan` and `make valgrind` run over
 * fuzz/corpus/<target>/ with any C compiler.
 *
 *   replay_<target> [--timeout=SECS] [--quiet] FILE|DIR...
 *
 * Directories are walked (recursively, entries in name order, dot names
 * skipped).  Each input is read into a buffer of exactly its length
 * (malloc(len), or 1 byte when empty) so a read one byte past the end is
 * caught by ASan or valgrind, and an alarm of SECS seconds (default
 * FUZZ_TIMEOUT_SECS) is armed per input: a hang ends the process with
 * SIGALRM.  The name of each input is printed before it runs, so a crash
 * names its input.  Other arguments that start with '-' (libFuzzer flags such
 * as -runs=N) are ignored.  Exit status: 0 when every input ran, 1 when an
 * input could not be read, 2 on a usage error; a failing property aborts.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

#ifndef FUZZ_TIMEOUT_SECS
#define FUZZ_TIMEOUT_SECS 25
#endif
#define FUZZ_MAX_FILE  (64u << 20) /* bytes of one input we agree to read */
#define FUZZ_MAX_DEPTH 8           /* directory nesting we follow */

/* Optional in the target, as with libFuzzer. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

struct run {
    unsigned timeout;
    int quiet;
    size_t inputs;
    size_t errors;
};

/* Read path into an exactly-sized buffer.  Returns 0, or -errno / -EFBIG. */
static int read_input(const char *path, unsigned char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    unsigned char *p;
    size_t n;

    *out = NULL;
    *len = 0;
    if (!f)
        return -errno;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;

        fclose(f);
        return -e;
    }
    if (st.st_size < 0 || (unsigned long long)st.st_size > FUZZ_MAX_FILE) {
        fclose(f);
        return -EFBIG;
    }
    n = (size_t)st.st_size;
    p = malloc(n ? n : 1);
    if (!p) {
        fclose(f);
        return -ENOMEM;
    }
    if (n && fread(p, 1, n, f) != n) {
        free(p);
        fclose(f);
        return -EIO;
    }
    fclose(f);
    *out = p;
    *len = n;
    return 0;
}

static void run_file(struct run *r, const char *path)
{
    unsigned char *data;
    size_t len;
    int rc;

    if (!r->quiet) {
        fprintf(stderr, "Running: %s\n", path);
        fflush(stderr);
    }
    rc = read_input(path, &data, &len);
    if (rc) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(-rc));
        r->errors++;
        return;
    }
    alarm(r->timeout);
    LLVMFuzzerTestOneInput(data, len);
    alarm(0);
    free(data);
    r->inputs++;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_path(struct run *r, const char *path, int depth)
{
    struct stat st;
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0, i;
    DIR *d;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        r->errors++;
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        run_file(r, path);
        return;
    }
    if (depth >= FUZZ_MAX_DEPTH || !(d = opendir(path))) {
        fprintf(stderr, "replay: %s: cannot walk this directory\n", path);
        r->errors++;
        return;
    }
    while ((e = readdir(d)) != NULL) {
        size_t need = strlen(path) + strlen(e->d_name) + 2;

        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            char **nn = realloc(names, (cap ? cap * 2 : 64) * sizeof(*names));

            if (!nn)
                break;
            names = nn;
            cap = cap ? cap * 2 : 64;
        }
        if (!(names[n] = malloc(need)))
            break;
        snprintf(names[n], need, "%s/%s", path, e->d_name);
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), name_cmp);
    for (i = 0; i < n; i++) {
        run_path(r, names[i], depth + 1);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    struct run r = {FUZZ_TIMEOUT_SECS, 0, 0, 0};
    int i, paths = 0;

    for (i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--timeout=", 10) == 0) {
            char *end;
            long v;

            errno = 0;
            v = strtol(argv[i] + 10, &end, 10);
            if (errno || *end || v < 1 || v > 86400) {
                fprintf(stderr, "replay: bad %s\n", argv[i]);
                return 2;
            }
            r.timeout = (unsigned)v;
        } else if (strcmp(argv[i], "--quiet") == 0) {
            r.quiet = 1;
        }
    }
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    for (i = 1; i < argc; i++) {
        if (argv[i][0] == '-')
            continue;
        paths++;
        run_path(&r, argv[i], 0);
    }
    if (!paths) {
        fprintf(stderr, "usage: %s [--timeout=SECS] [--quiet] FILE|DIR...\n", argv[0]);
        return 2;
    }
    printf("replay: %zu inputs executed, %zu unreadable\n", r.inputs, r.errors);
    return r.errors ? 1 : 0;
}
