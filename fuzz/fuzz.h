/*
 * fuzz.h - what every fuzz target shares: the libFuzzer entry points, the
 * property check that turns a broken invariant into a crash, and a small
 * deterministic PRNG for choices derived from the input.
 *
 * Targets are built two ways (fuzz/README.md): with clang's libFuzzer
 * (build/fuzz/fuzz_<target>) and with fuzz/standalone.c under any compiler
 * (build/<flavor>/fuzz/replay_<target>).  Nothing here depends on which.
 * Rules for targets (docs/fuzzing.md): return 0, reject oversized inputs
 * early, keep no state between inputs, never write into the input buffer,
 * no clock or randomness that changes what a check sees.
 */
#ifndef LS_FUZZ_H
#define LS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The entry points (defined by each target; LLVMFuzzerInitialize is optional). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/*
 * FUZZ_CHECK - a property that must hold for every input.  A failure prints
 * the target's file, line and the condition and aborts, which libFuzzer
 * reports as a crash (and saves the input) and the standalone driver reports
 * with the name of the file it was replaying.
 */
#define FUZZ_CHECK(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

/* FNV-1a of data[0..n): seeds choices (split points, ...) from the input itself. */
static inline uint64_t fuzz_hash(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* xorshift64*: a deterministic stream of choices; state must not be 0. */
static inline uint64_t fuzz_rand(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 2685821657736338717ULL;
}

/*
 * fuzz_dup - an exact-size heap copy of p[0..n) (malloc(n), or 1 byte for
 * n == 0) with nothing after it, so AddressSanitizer and valgrind see a read
 * one byte past the end.  Aborts when out of memory (inputs are small).
 */
static inline char *fuzz_dup(const void *p, size_t n)
{
    char *c = malloc(n ? n : 1);

    if (!c)
        abort();
    for (size_t i = 0; i < n; i++)
        c[i] = ((const char *)p)[i];
    return c;
}

#endif
