/*
 * make_log.c - write a valid labelsyncd write-ahead log of N item records,
 * for the start-up benchmark (tools/bench-durable.sh, impl/bench/README.md).
 *
 *   make_log --out FILE --records N [--idem|--no-idem] PATH...
 *
 * Record i (1-based) gets event id i and goes to PATH[(i-1) mod npaths];
 * each path's version starts at 2 and grows by one per record, so every
 * record applies on replay.  The lines come from the wal module's own
 * wal_format_item (crc included), so they are byte-for-byte what the
 * server would write for a PATCH that set notes, one tag and the star.
 * updated_at is "now" minus (N - i) ms, so the newest record is the
 * current time and, with --idem (the default, like a PATCH with an
 * Idempotency-Key), the idempotency entries are inside the 24 h retention
 * for N up to 86.4 million.
 *
 * The file is created with O_EXCL (an existing file is never overwritten)
 * and is not fsynced: it is a benchmark input.  Bounds: 1 <= N <= 10^8,
 * 1..4096 paths, each canonical (wal_format_item refuses anything else).
 *
 * Exit status: 0 written, 1 failure, 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "patch.h"
#include "store.h"
#include "wal.h"

#define MAKE_LOG_MAX_RECORDS 100000000ULL
#define MAKE_LOG_MAX_PATHS   4096
#define MAKE_LOG_FLUSH       (1u << 20) /* write out the buffer past 1 MiB */

static void usage(FILE *f)
{
    fprintf(f, "usage: make_log --out FILE --records N [--idem|--no-idem] PATH...\n"
               "Write a valid labels.log.jsonl of N item records spread round-robin over\n"
               "the canonical item PATHs (ids 1..N, increasing versions, crc).\n");
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *out = NULL;
    unsigned long long nrec = 0, i;
    bool idem = true;
    const char *paths[MAKE_LOG_MAX_PATHS];
    unsigned long long *versions;
    size_t npaths = 0, k;
    struct timespec ts;
    long long now_us;
    uint64_t rng = 0x6c6162656c73796eULL;
    struct buf b;
    int fd, a, rc = 0;
    unsigned long long bytes = 0;

    for (a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--out") == 0 && a + 1 < argc) {
            out = argv[++a];
        } else if (strcmp(argv[a], "--records") == 0 && a + 1 < argc) {
            char *end;

            errno = 0;
            nrec = strtoull(argv[++a], &end, 10);
            if (errno || *end || nrec < 1 || nrec > MAKE_LOG_MAX_RECORDS) {
                fprintf(stderr, "make_log: --records must be 1..%llu\n", MAKE_LOG_MAX_RECORDS);
                return 2;
            }
        } else if (strcmp(argv[a], "--idem") == 0) {
            idem = true;
        } else if (strcmp(argv[a], "--no-idem") == 0) {
            idem = false;
        } else if (strcmp(argv[a], "-h") == 0 || strcmp(argv[a], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (argv[a][0] == '/') {
            if (npaths == MAKE_LOG_MAX_PATHS) {
                fprintf(stderr, "make_log: at most %d paths\n", MAKE_LOG_MAX_PATHS);
                return 2;
            }
            paths[npaths++] = argv[a];
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!out || nrec == 0 || npaths == 0) {
        usage(stderr);
        return 2;
    }
    versions = calloc(npaths, sizeof(*versions));
    if (!versions) {
        fprintf(stderr, "make_log: out of memory\n");
        return 1;
    }
    for (k = 0; k < npaths; k++)
        versions[k] = 1;
    fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "make_log: %s: %s\n", out, strerror(errno));
        free(versions);
        return 1;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    now_us = (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
    buf_init(&b, MAKE_LOG_FLUSH + WAL_MAX_LINE + 1);

    for (i = 1; rc == 0 && i <= nrec; i++) {
        char tag[32], notes[32], by[32], key[48];
        char *tags[1] = {tag};
        unsigned char fp[32];
        struct store_record r;
        size_t slot = (size_t)((i - 1) % npaths);

        snprintf(tag, sizeof(tag), "t%llu", i % 16);
        snprintf(notes, sizeof(notes), "n%llu", i);
        snprintf(by, sizeof(by), "tab-%llu", i % 8);
        snprintf(key, sizeof(key), "gen-%llu", i);
        for (k = 0; k < sizeof(fp); k += 8) {
            uint64_t v = splitmix64(&rng);

            memcpy(fp + k, &v, 8);
        }
        memset(&r, 0, sizeof(r));
        r.path = (char *)(uintptr_t)paths[slot];
        r.labels.tags = tags;
        r.labels.ntags = 1;
        r.labels.notes = notes;
        r.labels.star = (int)(i % 6);
        r.labels.metrics = NULL;
        r.labels.nmetrics = 0;
        r.version = ++versions[slot];
        r.updated_at_us = now_us - (long long)(nrec - i) * 1000;
        r.updated_by = by;
        rc = wal_format_item(&b, i, &r, key,
                             PATCH_CHANGED_TAGS | PATCH_CHANGED_NOTES | PATCH_CHANGED_STAR,
                             idem ? by : NULL, idem ? key : NULL, idem ? fp : NULL);
        if (rc != 0) {
            fprintf(stderr, "make_log: record %llu (%s): wal_format_item failed (%d)\n", i,
                    paths[slot], rc);
            break;
        }
        if (b.len >= MAKE_LOG_FLUSH || i == nrec) {
            bytes += b.len;
            rc = write_all(fd, b.data, b.len);
            if (rc != 0)
                fprintf(stderr, "make_log: %s: %s\n", out, strerror(-rc));
            buf_reset(&b);
        }
    }
    buf_cleanup(&b);
    free(versions);
    if (close(fd) != 0 && rc == 0) {
        fprintf(stderr, "make_log: %s: %s\n", out, strerror(errno));
        rc = -1;
    }
    if (rc != 0) {
        unlink(out);
        return 1;
    }
    printf("records: %llu\nbytes: %llu\npaths: %zu\nidem: %s\n", nrec, bytes, npaths,
           idem ? "yes" : "no");
    return 0;
}
