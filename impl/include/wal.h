/*
 * wal.h - the write-ahead log of a workspace: labels.log.jsonl (one JSON
 * record per line, CRC-32C per line), labels.snapshot.json (atomic snapshot),
 * and the lock file, all under <root>/.lenslet/ (contract-wal.md,
 * docs/internals/wal.md, upstream format: lenslet-protocol §6).
 *
 * Two halves:
 *   - a pure core (no I/O, no globals, no locks) that formats records and
 *     replays logs and snapshots from memory buffers; it never reads past
 *     the length it is given, so fuzzers and tests drive it directly;
 *   - the file side: wal_open locks the workspace, loads the snapshot and the
 *     log through the caller's callbacks, cuts a torn tail, and starts one
 *     writer thread that appends queued lines with group commit (one write
 *     and one fdatasync for everything queued), keeps a durable view of the
 *     state and compacts the log into a snapshot when it grows.
 *
 * Only this module touches the workspace state files.
 */
#ifndef LS_WAL_H
#define LS_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "patch.h"
#include "store.h"

/* Caps (every input-driven allocation is bounded; override at build time). */
#ifndef WAL_MAX_LINE
#define WAL_MAX_LINE (1u << 20) /* bytes of one log line, without the '\n'; longer = corrupt */
#endif
#ifndef WAL_MAX_SNAPSHOT
#define WAL_MAX_SNAPSHOT (1ull << 30) /* bytes of labels.snapshot.json we agree to read */
#endif
#ifndef WAL_MAX_QUEUE
#define WAL_MAX_QUEUE 10000 /* lines queued and not yet taken by the writer */
#endif
#ifndef WAL_MAX_QUEUE_BYTES
#define WAL_MAX_QUEUE_BYTES (16u << 20) /* bytes of those lines */
#endif
#ifndef WAL_VIEW_MAX_ITEMS
#define WAL_VIEW_MAX_ITEMS (2u * STORE_MAX_ITEMS) /* distinct paths in the durable view */
#endif
#ifndef WAL_VIEW_MAX_IDEM
#define WAL_VIEW_MAX_IDEM 65536 /* idempotency outcomes kept for the snapshot */
#endif
#ifndef WAL_VIEW_MAX_IDEM_BYTES
#define WAL_VIEW_MAX_IDEM_BYTES (64u << 20) /* bytes of those outcomes */
#endif
#define WAL_VIEW_IDEM_TTL_US (24LL * 3600 * 1000000) /* outcomes older than this are dropped */

#define WAL_DEFAULT_COMPACT_BYTES (64u << 20)
#define WAL_DEFAULT_BATCH_MS      100
#define WAL_MAX_ID                PATCH_MAX_VERSION /* ids and versions: 1 .. 2^53 - 1 */
#define WAL_MAX_TIME_TEXT         64                /* bytes of an updated_at / stored_at text */
#define WAL_MAX_ETAG              128               /* bytes of a stored ETag */
#define WAL_TIME_BUF              32                /* buffer size for wal_format_time */

#define WAL_DIR_NAME      ".lenslet"
#define WAL_LOG_NAME      "labels.log.jsonl"
#define WAL_SNAPSHOT_NAME "labels.snapshot.json"
#define WAL_LOCK_NAME     "labelsyncd.lock"

/* ------------------------------------------------------------------ */
/* Pure core                                                            */

/* struct wal_item.present: which fields the record carried.  An absent field
 * keeps the previous value of the item (upstream rule); its member in the
 * struct then holds the default (tags [], notes "", star null, metrics {},
 * NULL strings). */
enum {
    WAL_HAS_TAGS = 1u << 0,
    WAL_HAS_NOTES = 1u << 1,
    WAL_HAS_STAR = 1u << 2,
    WAL_HAS_METRICS = 1u << 3,
    WAL_HAS_UPDATED_AT = 1u << 4,
    WAL_HAS_UPDATED_BY = 1u << 5,
    WAL_HAS_ALL = (1u << 6) - 1,
};

/*
 * One decoded item record.  Every pointer (labels included) is borrowed from
 * the replay: valid only during the callback; copy what you keep
 * (labels_copy).  From a snapshot's "items" map, id is 0 and mutation_id NULL.
 */
struct wal_item {
    unsigned long long id;
    const char *path; /* canonical */
    struct labels labels;
    unsigned long long version; /* 1 .. 2^53 - 1 */
    const char *updated_at;     /* the text as stored, NULL = absent or null */
    const char *updated_by;     /* NULL = absent or null */
    const char *mutation_id;    /* NULL = absent or null (informational) */
    unsigned changed;           /* PATCH_CHANGED_* from changed_fields (informational) */
    bool has_idem;
    const char *idem_scope, *idem_key;
    unsigned char idem_fp[32];
    /* additions */
    unsigned present;        /* WAL_HAS_* */
    long long updated_at_us; /* parsed updated_at; 0 when absent, null, "" or unparseable */
    size_t line;             /* 1-based line number in the log; 0 in a snapshot */
};

/* One idempotency outcome (a stored response that changed nothing). */
struct wal_idem {
    const char *scope, *key; /* scope may be "" */
    unsigned char fp[32];
    int status;       /* 100..599 */
    const char *etag; /* NULL = none */
    const char *body;
    size_t body_len;
    long long stored_at_us;
};

struct wal_replay_cb {
    int (*item)(void *ctx, const struct wal_item *r); /* non-zero aborts replay */
    int (*idem)(void *ctx, const struct wal_idem *r); /* NULL members: records ignored */
};

struct wal_replay_result {
    size_t good_len; /* bytes up to the end of the last good line */
    /* lines examined (a torn or corrupt one included); item and idempotency
     * records delivered; lines not delivered (blank, unusable, id <= after_id) */
    size_t lines, items, idems, skipped;
    bool torn_tail;
    size_t torn_bytes;
    size_t corrupt_line;
    size_t corrupt_offset;
    char corrupt_why[128]; /* corrupt_line 0 = none */
    unsigned long long max_id;
    /* additions */
    size_t torn_line;       /* 1-based line where the torn tail starts; 0 = none */
    size_t dropped_lines;   /* recover: complete or partial lines cut after good_len */
    size_t dropped_bytes;   /* recover: bytes cut (len - good_len) */
    size_t unchecked;       /* records without a crc (written by upstream) */
    size_t below;           /* item records skipped because id <= after_id */
    char torn_why[128];     /* why the torn tail was judged torn */
    size_t first_skip_line; /* first line skipped as unusable (not blank, not below); 0 = none */
    char first_skip_why[96];
};

/*
 * wal_crc32c - CRC-32C (Castagnoli, reflected, init and final xor
 * 0xFFFFFFFF) of p[0..n).  wal_crc32c_update continues a running value
 * (start with 0; the result of one call feeds the next).  Thread-safe.
 */
uint32_t wal_crc32c(const void *p, size_t n);
uint32_t wal_crc32c_update(uint32_t crc, const void *p, size_t n);

/*
 * wal_format_item - append one item record line (compact JSON, UTF-8, keys in
 * the contract's order, metrics with shortest round-trip numbers, crc last,
 * '\n' at the end) for rec under event id `id` to out.  idem_fp NULL = no
 * idem member (scope and key are then ignored).  Deterministic: equal
 * inputs give equal bytes.  Returns 0; LS_EVALUE when a value could not be
 * read back (id/version 0 or above 2^53 - 1, a string that is not UTF-8, a
 * non-finite metric, a path that is not canonical); LS_ETOOBIG when the line
 * would exceed WAL_MAX_LINE or out's cap; -ENOMEM.  On failure out is as it
 * was.  Thread-safe on distinct buffers.
 */
LS_MUST_CHECK int wal_format_item(struct buf *out, unsigned long long id,
                                  const struct store_record *rec, const char *mutation_id,
                                  unsigned changed, const char *idem_scope, const char *idem_key,
                                  const unsigned char *idem_fp);

/*
 * wal_format_idem - append one idempotency record line (see wal_format_item)
 * for r.  body must be UTF-8 without NUL bytes.  Errors as wal_format_item.
 */
LS_MUST_CHECK int wal_format_idem(struct buf *out, const struct wal_idem *r);

/*
 * wal_format_presence - a state-less event record that only consumes an id of
 * the sequence ({"id":N,"type":"presence","gallery_id",...}); replay counts
 * its id so event ids are never reused after a restart, and applies nothing.
 * Appends one line ending in '\n' to out.  0, LS_EVALUE, LS_ETOOBIG, -ENOMEM.
 */
LS_MUST_CHECK int wal_format_presence(struct buf *out, unsigned long long id, const char *gallery,
                                      unsigned viewing, unsigned editing);

/*
 * wal_replay_log - replay the log text buf[0..len) (need not be
 * NUL-terminated; nothing past len is read).  Item records with
 * id <= after_id are skipped; every other record goes to its callback in file
 * order.  Rules (torn tail, corruption, skipped lines): docs/internals/wal.md.
 *
 * Returns 0 (res->torn_tail tells whether a torn tail follows good_len);
 * LS_ECORRUPT with res->corrupt_line/offset/why set when a bad line is
 * followed by a good one or a record is invalid - unless recover, which
 * instead stops there, sets good_len to the end of the last good line before
 * it and the dropped_* counters, and returns 0; or the first non-zero value
 * a callback returned (replay stops).  On LS_ECORRUPT the callbacks have
 * already seen the records before the corrupt line: discard that state.
 * *res is always filled.  Thread-safe (cJSON with default hooks).
 */
LS_MUST_CHECK int wal_replay_log(const char *buf, size_t len, unsigned long long after_id,
                                 bool recover, const struct wal_replay_cb *cb, void *ctx,
                                 struct wal_replay_result *res);

/*
 * wal_replay_snapshot - replay a snapshot text (ours or upstream's, compact
 * or pretty-printed, "version" any integer): cb->item for every item of
 * "items" (id 0), then our "labelsync.idempotency" entries in order
 * (cb->item for item records that carry idem, cb->idem for outcomes).
 * *last_id gets last_event_id (0 when absent).  Returns 0, LS_ECORRUPT (the
 * whole snapshot is refused: bad JSON, wrong types, a crc mismatch, an
 * invalid record, len > WAL_MAX_SNAPSHOT), -ENOMEM, or a callback's non-zero
 * value.  wal_replay_snapshot_ex also writes a one-line reason to why (may be
 * NULL).  Thread-safe.
 */
LS_MUST_CHECK int wal_replay_snapshot(const char *buf, size_t len, const struct wal_replay_cb *cb,
                                      void *ctx, unsigned long long *last_id);
LS_MUST_CHECK int wal_replay_snapshot_ex(const char *buf, size_t len,
                                         const struct wal_replay_cb *cb, void *ctx,
                                         unsigned long long *last_id, char *why, size_t whycap);

/*
 * wal_check_line - whether line[0..len) (with or without its '\n') is one
 * complete, valid record that replay would deliver (an item record with an
 * id, or an idempotency record).  Returns 0, LS_ETOOBIG (over WAL_MAX_LINE),
 * LS_ECORRUPT (not a record replay accepts; why, if not NULL, says why),
 * or -ENOMEM.  Thread-safe.
 */
LS_MUST_CHECK int wal_check_line(const char *line, size_t len, char *why, size_t whycap);

/*
 * wal_format_time - RFC 3339 UTC with microseconds ("2026-11-23T00:10:34.915145Z")
 * into out[WAL_TIME_BUF].  wal_parse_time reads that form and upstream's
 * ("...+00:00", any offset, 0-9 fraction digits, fraction optional) into
 * microseconds since the epoch; returns 0 or LS_EPARSE.  Thread-safe.
 */
void wal_format_time(long long us, char *out);
LS_MUST_CHECK int wal_parse_time(const char *s, long long *us);

/* ------------------------------------------------------------------ */
/* File side                                                            */

/* EACH is ALWAYS without group commit (one fdatasync per record): only the
 * baseline the benchmarks compare group commit with. */
enum wal_fsync { WAL_FSYNC_ALWAYS, WAL_FSYNC_BATCH, WAL_FSYNC_NEVER, WAL_FSYNC_EACH };

/* wal_fsync_name - "always" "batch" "never"; wal_fsync_parse - the reverse
 * (0 or LS_EVALUE).  Thread-safe. */
const char *wal_fsync_name(enum wal_fsync mode);
LS_MUST_CHECK int wal_fsync_parse(const char *s, enum wal_fsync *mode);

struct wal_config {
    const char *root;     /* the workspace; state lives in <root>/.lenslet/ */
    enum wal_fsync mode;  /* WAL_FSYNC_ALWAYS for a real server */
    unsigned batch_ms;    /* BATCH: fdatasync at most this often (0 = WAL_DEFAULT_BATCH_MS) */
    size_t compact_bytes; /* compact when the log exceeds this (0 = never, except at close) */
    bool recover;         /* cut a corrupt log at the last good line instead of failing */
};

struct wal_open_info {
    unsigned long long last_id; /* continue event ids after this */
    size_t items, idems;        /* records delivered (snapshot + log) */
    bool snapshot_loaded;
    size_t torn_bytes; /* cut from the end of the log */
    bool recovered;    /* recover mode dropped lines */
    char message[256]; /* on failure: what and which file; else a summary */
    /* additions */
    size_t dropped_lines, dropped_bytes; /* recover */
    size_t skipped;                      /* log lines not delivered */
};

struct wal;
struct wal_ticket;

/*
 * wal_open - create <root>/.lenslet (0700) if needed, take the workspace lock,
 * load the snapshot and then the log through cb/ctx (called on this thread,
 * before wal_open returns), cut a torn tail, and start the writer thread.
 * info (may be NULL) is filled in every case; info->message names the file
 * and the reason on failure.  Returns the handle, or NULL with *err (may be
 * NULL) = LS_ELOCKED (another process holds the lock), LS_ECORRUPT (snapshot
 * unreadable, or log corruption without recover), LS_EVALUE (bad config),
 * -errno of the failing system call, -ENOMEM, or a callback's non-zero value.
 * Free with wal_close.  Thread-safe (distinct workspaces).
 */
struct wal *wal_open(const struct wal_config *cfg, const struct wal_replay_cb *cb, void *ctx,
                     struct wal_open_info *info, int *err);

/*
 * wal_submit - queue one line (copied; the trailing '\n' is optional) that
 * has event id `id` (0 for idempotency records).  Ids other than 0 must
 * increase from call to call: call it under the lock that hands out ids, so
 * that log order is id order (compaction relies on it).  The line is
 * validated as replay would read it, so a line that would make the workspace
 * unopenable is never written.  Never blocks on I/O.  Returns 0 with *t (pass
 * it to wal_wait exactly once), or: LS_EFULL (queue caps), -EIO (a failed
 * fdatasync is latched), LS_ETOOBIG (over WAL_MAX_LINE), LS_ECORRUPT (not a
 * valid record), LS_EVALUE (id not increasing), -EPIPE (closing), -ENOMEM.
 * Thread-safe.
 */
LS_MUST_CHECK int wal_submit(struct wal *w, const char *line, size_t len, unsigned long long id,
                             struct wal_ticket **t);

/*
 * wal_wait - block until t is done and free it.  ALWAYS: done = the line is
 * on disk (its batch's fdatasync returned).  BATCH/NEVER: done = written to
 * the file.  Returns 0, or the error of its batch (-ENOSPC, -EIO, ...).
 * Blocks only the caller.  Thread-safe.
 */
LS_MUST_CHECK int wal_wait(struct wal *w, struct wal_ticket *t);

/*
 * wal_close - drain the queue, fdatasync, write a snapshot and empty the log
 * (skipped after a latched fdatasync failure), stop the writer, release the
 * lock, free everything.  Every ticket must have been waited for.  NULL-safe.
 */
void wal_close(struct wal *w);

struct wal_status {
    enum wal_fsync mode;
    const char *state; /* "saved", "pending", "failed" */
    unsigned long long durable_id, written_id;
    size_t pending;
    int last_error;
    char error[128];
    unsigned long long fsyncs, records, batches, failures, compactions;
    size_t log_bytes;
    /* additions */
    bool latched; /* a failed fdatasync: every write fails until restart */
};

/* wal_status - a consistent copy of the writer's counters.  Thread-safe. */
void wal_status(struct wal *w, struct wal_status *st);

#endif
