/*
 * fuzz_wal_replay.c - replay of labels.log.jsonl and labels.snapshot.json
 * from memory (wal.h pure core; docs/internals/wal.md).
 *
 * The input is handed, as is, to wal_replay_log (strict and recover) and to
 * wal_replay_snapshot.  The buffer is the fuzzer's own, never NUL-terminated
 * or written to, and every sub-buffer the target builds is an exact-size
 * copy, so a read past len is caught.  A collecting callback records every
 * delivered record (all fields, numbers bit-exact) and applies it to a small
 * state the way labelsyncd's start-up does (newest version wins, absent
 * fields keep their value).  Properties:
 *   - deterministic: a second replay delivers the same records and result;
 *   - replaying twice equals replaying once (same final state);
 *   - results are consistent: good_len, torn and corrupt offsets <= len;
 *     a torn tail holds no line wal_check_line accepts (else it is corrupt);
 *     strict replay delivers no record from the corrupt line on; recover
 *     delivers the same records as strict and returns 0;
 *   - every delivered item has a canonical path, a version in 1..2^53-1,
 *     star -1..5, metrics sorted and unique;
 *   - cutting the log at good_len (what wal_open does with a torn tail or,
 *     with recover, a corrupt one), and at other line boundaries before it,
 *     replays cleanly to the corresponding prefix of the records;
 *   - resuming after max_id delivers no item record;
 *   - wal_check_line (what wal_submit accepts) agrees with replay: a line it
 *     accepts replays alone as exactly one record, and a line replayed alone
 *     as an item or idempotency record is one it accepts.
 * wal.c is built for this target with small caps (fuzz/README.md) so the
 * over-long-line and over-large-snapshot paths are reachable.
 */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "buf.h"
#include "canon.h"
#include "fuzz.h"
#include "wal.h"

#define MAX_INPUT     (1u << 20)
#define MAX_STATE     256 /* paths the collected state follows */
#define MAX_CUTS      8   /* line boundaries tried below good_len */
#define MAX_LINES_CHK 32  /* lines checked one by one with wal_check_line */
#define TRACE_CAP     (16u << 20)

struct st_item {
    char *path;
    struct labels labels;
    unsigned long long version;
    long long updated_at_us;
    char *updated_by;
};

/* What a replay delivered (trace) and what it built (state). */
struct collect {
    struct buf trace; /* one serialized record after another */
    size_t *ends;     /* trace length after each record */
    size_t nrec, caprec;
    size_t max_line; /* largest line number of a delivered log record */
    struct st_item items[MAX_STATE];
    size_t nitems, unknown;
    struct buf idem; /* the idempotency outcomes, last one per key wins: kept as a list */
};

static void collect_init(struct collect *c)
{
    memset(c, 0, sizeof(*c));
    buf_init(&c->trace, TRACE_CAP);
    buf_init(&c->idem, TRACE_CAP);
}

static void collect_cleanup(struct collect *c)
{
    for (size_t i = 0; i < c->nitems; i++) {
        free(c->items[i].path);
        free(c->items[i].updated_by);
        labels_cleanup(&c->items[i].labels);
    }
    buf_cleanup(&c->trace);
    buf_cleanup(&c->idem);
    free(c->ends);
    memset(c, 0, sizeof(*c));
}

/* Out of memory or over the cap while collecting: give up on this input quietly. */
static int put(struct buf *b, const void *p, size_t n)
{
    return buf_append(b, p, n) == 0 ? 0 : -ENOMEM;
}

static int put_str(struct buf *b, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    int rc = put(b, s ? "S" : "N", 1);

    rc = rc ? rc : put(b, &n, sizeof(n));
    return rc ? rc : put(b, s ? s : "", n);
}

static int put_labels(struct buf *b, const struct labels *l)
{
    int rc = put(b, &l->ntags, sizeof(l->ntags));

    for (size_t i = 0; !rc && i < l->ntags; i++)
        rc = put_str(b, l->tags[i]);
    rc = rc ? rc : put_str(b, l->notes);
    rc = rc ? rc : put(b, &l->star, sizeof(l->star));
    rc = rc ? rc : put(b, &l->nmetrics, sizeof(l->nmetrics));
    for (size_t i = 0; !rc && i < l->nmetrics; i++) {
        rc = put_str(b, l->metrics[i].name);
        rc = rc ? rc : put(b, &l->metrics[i].value, sizeof(double)); /* bit-exact */
    }
    return rc;
}

static int end_record(struct collect *c)
{
    if (c->nrec == c->caprec) {
        size_t cap = c->caprec ? c->caprec * 2 : 64;
        size_t *n = realloc(c->ends, cap * sizeof(*n));

        if (!n)
            return -ENOMEM;
        c->ends = n;
        c->caprec = cap;
    }
    c->ends[c->nrec++] = c->trace.len;
    return 0;
}

static int apply_item(struct collect *c, const struct wal_item *r)
{
    struct st_item *it = NULL;
    struct labels next;
    size_t i;

    for (i = 0; i < c->nitems; i++)
        if (strcmp(c->items[i].path, r->path) == 0)
            it = &c->items[i];
    if (!it) {
        if (c->nitems == MAX_STATE) {
            c->unknown++;
            return 0;
        }
        it = &c->items[c->nitems];
        memset(it, 0, sizeof(*it));
        labels_init(&it->labels);
        if (!(it->path = strdup(r->path)))
            return -ENOMEM;
        c->nitems++;
    }
    if (r->version <= it->version)
        return 0; /* store_restore: only a newer version replaces */
    if (labels_copy(&next, &it->labels) != 0)
        return -ENOMEM;
    if (r->present & (WAL_HAS_TAGS | WAL_HAS_NOTES | WAL_HAS_STAR | WAL_HAS_METRICS)) {
        struct labels src;

        if (labels_copy(&src, &r->labels) != 0) {
            labels_cleanup(&next);
            return -ENOMEM;
        }
        if (r->present & WAL_HAS_TAGS) {
            struct labels t = next;

            next.tags = src.tags;
            next.ntags = src.ntags;
            src.tags = t.tags;
            src.ntags = t.ntags;
        }
        if (r->present & WAL_HAS_NOTES) {
            char *t = next.notes;

            next.notes = src.notes;
            src.notes = t;
        }
        if (r->present & WAL_HAS_STAR)
            next.star = src.star;
        if (r->present & WAL_HAS_METRICS) {
            struct labels t = next;

            next.metrics = src.metrics;
            next.nmetrics = src.nmetrics;
            src.metrics = t.metrics;
            src.nmetrics = t.nmetrics;
        }
        labels_cleanup(&src);
    }
    labels_cleanup(&it->labels);
    it->labels = next;
    it->version = r->version;
    if (r->present & WAL_HAS_UPDATED_AT)
        it->updated_at_us = r->updated_at_us;
    if (r->present & WAL_HAS_UPDATED_BY) {
        char *by = r->updated_by ? strdup(r->updated_by) : NULL;

        if (r->updated_by && !by)
            return -ENOMEM;
        free(it->updated_by);
        it->updated_by = by;
    }
    return 0;
}

static int on_item(void *ctx, const struct wal_item *r)
{
    struct collect *c = ctx;
    struct buf *b = &c->trace;
    int rc;

    FUZZ_CHECK(r->path && canon_is_canonical(r->path, strlen(r->path)));
    FUZZ_CHECK(r->version >= 1 && r->version <= WAL_MAX_ID);
    FUZZ_CHECK(r->labels.star >= -1 && r->labels.star <= 5 && r->labels.notes);
    FUZZ_CHECK(r->labels.ntags <= PATCH_MAX_TAGS_ITEM);
    for (size_t i = 1; i < r->labels.nmetrics; i++)
        FUZZ_CHECK(strcmp(r->labels.metrics[i - 1].name, r->labels.metrics[i].name) < 0);
    for (size_t i = 0; i < r->labels.nmetrics; i++)
        FUZZ_CHECK(isfinite(r->labels.metrics[i].value));
    FUZZ_CHECK((r->present & ~(unsigned)WAL_HAS_ALL) == 0);
    if (r->line > c->max_line)
        c->max_line = r->line;
    rc = put(b, "I", 1);
    rc = rc ? rc : put(b, &r->id, sizeof(r->id));
    rc = rc ? rc : put_str(b, r->path);
    rc = rc ? rc : put_labels(b, &r->labels);
    rc = rc ? rc : put(b, &r->version, sizeof(r->version));
    rc = rc ? rc : put_str(b, r->updated_at);
    rc = rc ? rc : put_str(b, r->updated_by);
    rc = rc ? rc : put_str(b, r->mutation_id);
    rc = rc ? rc : put(b, &r->changed, sizeof(r->changed));
    rc = rc ? rc : put(b, &r->has_idem, sizeof(r->has_idem));
    if (!rc && r->has_idem) {
        rc = put_str(b, r->idem_scope);
        rc = rc ? rc : put_str(b, r->idem_key);
        rc = rc ? rc : put(b, r->idem_fp, sizeof(r->idem_fp));
    }
    rc = rc ? rc : put(b, &r->present, sizeof(r->present));
    rc = rc ? rc : put(b, &r->updated_at_us, sizeof(r->updated_at_us));
    rc = rc ? rc : put(b, &r->line, sizeof(r->line));
    rc = rc ? rc : end_record(c);
    return rc ? rc : apply_item(c, r);
}

static int on_idem(void *ctx, const struct wal_idem *r)
{
    struct collect *c = ctx;
    struct buf *b = &c->trace;
    int rc;

    FUZZ_CHECK(r->scope && r->key && r->body);
    FUZZ_CHECK(r->status >= 100 && r->status <= 599);
    FUZZ_CHECK(strlen(r->body) == r->body_len);
    rc = put(b, "D", 1);
    rc = rc ? rc : put_str(b, r->scope);
    rc = rc ? rc : put_str(b, r->key);
    rc = rc ? rc : put(b, r->fp, sizeof(r->fp));
    rc = rc ? rc : put(b, &r->status, sizeof(r->status));
    rc = rc ? rc : put_str(b, r->etag);
    rc = rc ? rc : put_str(b, r->body);
    rc = rc ? rc : put(b, &r->stored_at_us, sizeof(r->stored_at_us));
    rc = rc ? rc : end_record(c);
    /* The idempotency table keeps one outcome per (scope, key), the last one
     * restored: a list of them in order serializes that just as well. */
    rc = rc ? rc : put_str(&c->idem, r->scope);
    rc = rc ? rc : put_str(&c->idem, r->key);
    return rc;
}

static const struct wal_replay_cb cbs = {on_item, on_idem};

/* The collected state as bytes (items in first-seen order, then the idempotency keys). */
static int state_bytes(const struct collect *c, struct buf *out)
{
    int rc = 0;

    for (size_t i = 0; !rc && i < c->nitems; i++) {
        const struct st_item *it = &c->items[i];

        rc = put_str(out, it->path);
        rc = rc ? rc : put_labels(out, &it->labels);
        rc = rc ? rc : put(out, &it->version, sizeof(it->version));
        rc = rc ? rc : put(out, &it->updated_at_us, sizeof(it->updated_at_us));
        rc = rc ? rc : put_str(out, it->updated_by);
    }
    return rc ? rc : put(out, &c->unknown, sizeof(c->unknown));
}

static bool same_result(const struct wal_replay_result *a, const struct wal_replay_result *b)
{
    return a->good_len == b->good_len && a->lines == b->lines && a->items == b->items &&
           a->idems == b->idems && a->skipped == b->skipped && a->torn_tail == b->torn_tail &&
           a->torn_bytes == b->torn_bytes && a->corrupt_line == b->corrupt_line &&
           a->corrupt_offset == b->corrupt_offset && a->max_id == b->max_id &&
           a->torn_line == b->torn_line && a->unchecked == b->unchecked && a->below == b->below &&
           strcmp(a->corrupt_why, b->corrupt_why) == 0 && strcmp(a->torn_why, b->torn_why) == 0;
}

static bool same_trace(const struct collect *a, const struct collect *b)
{
    return a->nrec == b->nrec && a->trace.len == b->trace.len &&
           (a->trace.len == 0 || memcmp(a->trace.data, b->trace.data, a->trace.len) == 0);
}

/* a's records are exactly the first k records of b. */
static bool trace_prefix(const struct collect *a, const struct collect *b, size_t k)
{
    size_t n = k ? b->ends[k - 1] : 0;

    return a->nrec == k && k <= b->nrec && a->trace.len == n &&
           (n == 0 || memcmp(a->trace.data, b->trace.data, n) == 0);
}

/* Replay buf[0..len) from an exact-size copy.  Returns the replay's code. */
static int replay_copy(const char *buf, size_t len, unsigned long long after, bool recover,
                       struct collect *c, struct wal_replay_result *res)
{
    char *copy = fuzz_dup(buf, len);
    int rc = wal_replay_log(copy, len, after, recover, &cbs, c, res);

    free(copy);
    return rc;
}

static void check_result(const struct wal_replay_result *r, size_t len, int rc)
{
    FUZZ_CHECK(r->good_len <= len);
    if (r->torn_tail)
        FUZZ_CHECK(r->torn_bytes == len - r->good_len && r->torn_line > 0 && r->torn_bytes > 0);
    if (r->corrupt_line) {
        FUZZ_CHECK(r->corrupt_offset <= len && r->corrupt_line <= r->lines);
        FUZZ_CHECK(!r->torn_tail);
    }
    if (rc == LS_ECORRUPT)
        FUZZ_CHECK(r->corrupt_line > 0);
    if (rc == 0 && !r->torn_tail && !r->corrupt_line)
        FUZZ_CHECK(r->good_len == len);
    FUZZ_CHECK(r->max_id <= WAL_MAX_ID);
}

static void check_log(const char *data, size_t len)
{
    struct collect a, b, c;
    struct wal_replay_result ra, rb, rc_res;
    int rca, rcb, rcr;

    collect_init(&a);
    collect_init(&b);
    collect_init(&c);
    rca = wal_replay_log(data, len, 0, false, &cbs, &a, &ra);
    rcb = wal_replay_log(data, len, 0, false, &cbs, &b, &rb);
    if (rca == -ENOMEM || rcb == -ENOMEM)
        goto out;
    /* Deterministic. */
    FUZZ_CHECK(rca == rcb && same_result(&ra, &rb) && same_trace(&a, &b));
    FUZZ_CHECK(rca == 0 || rca == LS_ECORRUPT);
    check_result(&ra, len, rca);
    FUZZ_CHECK(ra.items + ra.idems == a.nrec);
    if (ra.corrupt_line)
        FUZZ_CHECK(a.max_line < ra.corrupt_line);
    if (ra.torn_tail) {
        /* torn means no complete record follows: every later whole line is unusable */
        size_t pos = ra.good_len;

        FUZZ_CHECK(a.max_line < ra.torn_line);
        while (pos < len) {
            const char *nl = memchr(data + pos, '\n', len - pos);
            char *line;

            if (!nl)
                break;
            line = fuzz_dup(data + pos, (size_t)(nl - (data + pos)));
            FUZZ_CHECK(wal_check_line(line, (size_t)(nl - (data + pos)), NULL, 0) != 0);
            free(line);
            pos = (size_t)(nl - data) + 1;
        }
    }

    /* Replaying twice equals once: replay again into the state a built. */
    {
        struct buf s1, s2;

        buf_init(&s1, TRACE_CAP);
        buf_init(&s2, TRACE_CAP);
        if (state_bytes(&a, &s1) == 0 &&
            wal_replay_log(data, len, 0, false, &cbs, &a, &rb) != -ENOMEM &&
            state_bytes(&a, &s2) == 0)
            FUZZ_CHECK(s1.len == s2.len && memcmp(s1.data, s2.data, s1.len) == 0);
        buf_cleanup(&s1);
        buf_cleanup(&s2);
    }

    /* Recover: same records as strict, never an error. */
    rcr = wal_replay_log(data, len, 0, true, &cbs, &c, &rc_res);
    if (rcr != -ENOMEM) {
        FUZZ_CHECK(rcr == 0);
        FUZZ_CHECK(same_trace(&b, &c));
        FUZZ_CHECK(rc_res.good_len == rb.good_len);
        check_result(&rc_res, len, rcr);
        if (rca == LS_ECORRUPT)
            FUZZ_CHECK(rc_res.dropped_bytes == len - rc_res.good_len && rc_res.dropped_lines > 0);
    }

    /* Cuts at line boundaries up to good_len replay cleanly to a prefix. */
    {
        size_t bounds[MAX_CUTS + 1], nb = 0, total = 0, i, rec = 0;

        for (i = 0; i < rb.good_len; i++)
            if (data[i] == '\n')
                total++;
        for (i = 0; i < rb.good_len && nb < MAX_CUTS; i++) {
            if (data[i] != '\n')
                continue;
            /* spread the cuts over the lines */
            if (total <= MAX_CUTS || (rec * MAX_CUTS) / total != ((rec + 1) * MAX_CUTS) / total)
                bounds[nb++] = i + 1;
            rec++;
        }
        if (rb.good_len > 0 && (nb == 0 || bounds[nb - 1] != rb.good_len))
            bounds[nb++] = rb.good_len;
        for (i = 0; i < nb; i++) {
            struct collect p;
            struct wal_replay_result rp;
            int rcp;

            collect_init(&p);
            rcp = replay_copy(data, bounds[i], 0, false, &p, &rp);
            if (rcp != -ENOMEM) {
                FUZZ_CHECK(rcp == 0);
                FUZZ_CHECK(!rp.torn_tail && rp.corrupt_line == 0 && rp.good_len == bounds[i]);
                /* the records of the lines before the cut, in order */
                FUZZ_CHECK(trace_prefix(&p, &b, p.nrec));
                if (bounds[i] == rb.good_len)
                    FUZZ_CHECK(p.nrec == b.nrec);
            }
            collect_cleanup(&p);
        }
    }

    /* Resuming after the last id delivers no item record. */
    if (rca == 0 && ra.max_id > 0) {
        struct collect r;
        struct wal_replay_result rr;
        int rcx;

        collect_init(&r);
        rcx = wal_replay_log(data, len, ra.max_id, false, &cbs, &r, &rr);
        if (rcx != -ENOMEM) {
            FUZZ_CHECK(rcx == 0 && rr.items == 0 && rr.idems == ra.idems);
            FUZZ_CHECK(rr.below == ra.items);
        }
        collect_cleanup(&r);
    }
out:
    collect_cleanup(&a);
    collect_cleanup(&b);
    collect_cleanup(&c);
}

/* wal_check_line and a one-line replay agree on each of the first lines. */
static void check_lines(const char *data, size_t len)
{
    size_t pos = 0, nlines = 0;

    while (pos < len && nlines < MAX_LINES_CHK) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (data + pos)) : len - pos;
        char *line = malloc(n + 1);
        struct collect c;
        struct wal_replay_result r;
        char why[128];
        int chk, rc;

        if (!line)
            abort();
        memcpy(line, data + pos, n);
        line[n] = '\n'; /* the copy is ours, sized for exactly the line and its '\n' */
        chk = wal_check_line(line, n, why, sizeof(why));
        FUZZ_CHECK(chk == 0 || chk == LS_ECORRUPT || chk == LS_ETOOBIG || chk == -ENOMEM);
        FUZZ_CHECK(wal_check_line(line, n + 1, why, sizeof(why)) == chk);
        collect_init(&c);
        rc = wal_replay_log(line, n + 1, 0, false, &cbs, &c, &r);
        if (chk == 0 && rc != -ENOMEM) {
            FUZZ_CHECK(rc == 0 && !r.torn_tail && r.corrupt_line == 0 && r.good_len == n + 1);
            FUZZ_CHECK(r.lines == 1 && r.items + r.idems + r.skipped == 1);
        }
        if (rc == 0 && r.items + r.idems == 1)
            FUZZ_CHECK(chk == 0);
        collect_cleanup(&c);
        free(line);
        nlines++;
        pos += n + 1;
    }
}

static void check_snapshot(const char *data, size_t len)
{
    struct collect a, b;
    unsigned long long la = 0, lb = 0;
    char wa[160], wb[160];
    int rca, rcb;

    collect_init(&a);
    collect_init(&b);
    rca = wal_replay_snapshot_ex(data, len, &cbs, &a, &la, wa, sizeof(wa));
    rcb = wal_replay_snapshot_ex(data, len, &cbs, &b, &lb, wb, sizeof(wb));
    if (rca != -ENOMEM && rcb != -ENOMEM) {
        FUZZ_CHECK(rca == 0 || rca == LS_ECORRUPT);
        FUZZ_CHECK(rca == rcb && la == lb && strcmp(wa, wb) == 0 && same_trace(&a, &b));
        FUZZ_CHECK(la <= WAL_MAX_ID && (rca == 0 || la == 0));
        FUZZ_CHECK(rca != 0 || wa[0] == '\0');
        if (rca == 0) {
            struct buf s1, s2;

            buf_init(&s1, TRACE_CAP);
            buf_init(&s2, TRACE_CAP);
            if (state_bytes(&a, &s1) == 0 &&
                wal_replay_snapshot(data, len, &cbs, &a, &la) != -ENOMEM &&
                state_bytes(&a, &s2) == 0)
                FUZZ_CHECK(s1.len == s2.len && memcmp(s1.data, s2.data, s1.len) == 0);
            buf_cleanup(&s1);
            buf_cleanup(&s2);
        }
    }
    collect_cleanup(&a);
    collect_cleanup(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    check_log((const char *)data, size);
    check_lines((const char *)data, size);
    check_snapshot((const char *)data, size);
    return 0;
}
