/*
 * wal.c - the write-ahead log: record format, replay, group commit,
 * snapshots and compaction (contract-wal.md; docs/internals/wal.md has the
 * rules, lenslet-protocol §6 the upstream format we stay compatible with).
 *
 * The file has two halves.  The pure core (CRC-32C, formatting, decoding,
 * replay of a log or a snapshot held in memory) does no I/O and keeps no
 * state, so the fuzzer and the unit tests drive it on buffers.  The file side
 * owns <root>/.lenslet/: the lock, the log, the snapshot and one writer
 * thread.
 *
 * Invariants the file side keeps (each is argued in wal.md):
 *   1. An acknowledged record (ALWAYS: fdatasync returned) is in the log or
 *      in the snapshot, whatever the process or the machine does next.
 *   2. The log never holds half a line in front of a whole one: a failed or
 *      short write is cut back with ftruncate before anything else is
 *      appended; if that cut fails, nothing else is ever appended.
 *   3. Every line ever written replays as a valid record: wal_submit checks
 *      each line with the same decoder that replay uses.
 *   4. A crash at any step of compaction leaves a loadable state whose
 *      replay equals the state before the step:
 *        snapshot temp written   -> old snapshot + old log (temp ignored)
 *        snapshot renamed        -> new snapshot + old log (every log record
 *                                   has id <= last_event_id: skipped, and
 *                                   idempotency records re-apply harmlessly)
 *        empty log temp written  -> new snapshot + old log, as above
 *        log renamed             -> new snapshot + empty log
 *      This relies on log order = id order, which wal_submit enforces.
 *   5. After a failed fdatasync nothing is acknowledged any more (latched):
 *      the page cache no longer tells what is on disk.
 */
#include "wal.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "canon.h"
#include "idem.h"
#include "trace.h"

#define WAL_TRACE "wal"

/* ================================================================== */
/* CRC-32C, slice-by-8                                                  */

static uint32_t crc_tab[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;

        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int k = 1; k < 8; k++)
            crc_tab[k][i] = (crc_tab[k - 1][i] >> 8) ^ crc_tab[0][crc_tab[k - 1][i] & 0xff];
}

uint32_t wal_crc32c_update(uint32_t crc, const void *p, size_t n)
{
    const unsigned char *s = p;

    pthread_once(&crc_once, crc_init);
    crc = ~crc;
    while (n >= 8) {
        uint32_t lo = crc ^ ((uint32_t)s[0] | (uint32_t)s[1] << 8 | (uint32_t)s[2] << 16 |
                             (uint32_t)s[3] << 24);

        crc = crc_tab[7][lo & 0xff] ^ crc_tab[6][(lo >> 8) & 0xff] ^ crc_tab[5][(lo >> 16) & 0xff] ^
              crc_tab[4][lo >> 24] ^ crc_tab[3][s[4]] ^ crc_tab[2][s[5]] ^ crc_tab[1][s[6]] ^
              crc_tab[0][s[7]];
        s += 8;
        n -= 8;
    }
    while (n--)
        crc = crc_tab[0][(crc ^ *s++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

uint32_t wal_crc32c(const void *p, size_t n)
{
    return wal_crc32c_update(0, p, n);
}

/* ================================================================== */
/* Small helpers                                                        */

static void set_why(char *why, size_t cap, const char *fmt, ...) LS_PRINTF(3, 4);

static void set_why(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;

    if (!why || cap == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);

    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* 8 lowercase hex digits, as our crc members are written. */
static bool is_crc_hex(const char *s)
{
    for (int i = 0; i < 8; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static uint32_t crc_from_hex(const char *s)
{
    uint32_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 4 | (uint32_t)hexval((unsigned char)s[i]);
    return v;
}

/* 64 hex digits (either case) into 32 bytes. */
static bool fp_decode(const char *s, unsigned char fp[32])
{
    if (strlen(s) != 64)
        return false;
    for (int i = 0; i < 32; i++) {
        int hi = hexval((unsigned char)s[2 * i]), lo = hexval((unsigned char)s[2 * i + 1]);

        if (hi < 0 || lo < 0)
            return false;
        fp[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

static long long wall_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static long long mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ================================================================== */
/* Time                                                                 */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
    long long era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

void wal_format_time(long long us, char *out)
{
    time_t secs = (time_t)(us / 1000000);
    long frac = (long)(us % 1000000);
    struct tm tm;

    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    if (!gmtime_r(&secs, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) {
        snprintf(out, WAL_TIME_BUF, "1970-01-01T00:00:00.000000Z");
        return;
    }
    /* The modulos only tell the compiler the ranges gmtime_r already guarantees. */
    snprintf(out, WAL_TIME_BUF, "%04u-%02u-%02uT%02u:%02u:%02u.%06luZ",
             (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)(tm.tm_mon + 1) % 100u,
             (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u,
             (unsigned)tm.tm_sec % 100u, (unsigned long)frac % 1000000u);
}

static bool digits(const char *s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        *v = *v * 10 + (s[i] - '0');
    }
    return true;
}

int wal_parse_time(const char *s, long long *us)
{
    static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, se, oh = 0, om = 0, sign = 0;
    long long frac = 0, t;
    size_t i = 19;

    if (strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &se))
        return LS_EPARSE;
    if (mo < 1 || mo > 12 || d < 1 || (unsigned)d > mdays[mo - 1] || h > 23 || mi > 59 || se > 60)
        return LS_EPARSE;
    if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        return LS_EPARSE;
    if (s[i] == '.') {
        int nd = 0;

        for (i++; s[i] >= '0' && s[i] <= '9'; i++, nd++) {
            if (nd >= 9)
                return LS_EPARSE;
            if (nd < 6)
                frac = frac * 10 + (s[i] - '0');
        }
        if (nd == 0)
            return LS_EPARSE;
        for (; nd < 6; nd++)
            frac *= 10;
    }
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        sign = s[i] == '+' ? 1 : -1;
        if (!digits(s + i + 1, 2, &oh) || s[i + 3] != ':' || !digits(s + i + 4, 2, &om) ||
            oh > 23 || om > 59)
            return LS_EPARSE;
        i += 6;
    } else {
        return LS_EPARSE;
    }
    if (s[i] != '\0')
        return LS_EPARSE;
    t = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se;
    t -= sign * (oh * 3600 + om * 60);
    *us = t * 1000000 + frac;
    return 0;
}

/* ================================================================== */
/* JSON output                                                          */

/*
 * Append s[0..n) as a JSON string: UTF-8 kept as is, '"' '\\' and control
 * characters escaped.  Not UTF-8, or a NUL byte (cJSON would cut the string
 * there on the way back) -> LS_EVALUE.
 */
static int put_str(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;
    int rc;

    if (!canon_utf8_valid(s, n) || memchr(s, '\0', n))
        return LS_EVALUE;
    if ((rc = buf_appendc(b, '"')) != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7];
        size_t elen = 2;

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        esc[0] = '\\';
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
            break;
        }
        if ((rc = buf_append(b, s + run, i - run)) != 0 || (rc = buf_append(b, esc, elen)) != 0)
            return rc;
        run = i + 1;
    }
    if ((rc = buf_append(b, s + run, n - run)) != 0)
        return rc;
    return buf_appendc(b, '"');
}

static int put_cstr(struct buf *b, const char *s)
{
    return s ? put_str(b, s, strlen(s)) : buf_appends(b, "null");
}

/* ,"key": */
static int put_key(struct buf *b, const char *key, bool first)
{
    int rc = first ? 0 : buf_appendc(b, ',');

    return rc ? rc : buf_appendf(b, "\"%s\":", key);
}

static int put_uint(struct buf *b, unsigned long long v)
{
    return buf_appendf(b, "%llu", v);
}

static int put_tags(struct buf *b, const struct labels *l)
{
    int rc = buf_appendc(b, '[');

    for (size_t i = 0; rc == 0 && i < l->ntags; i++) {
        if (i && (rc = buf_appendc(b, ',')) != 0)
            break;
        rc = put_cstr(b, l->tags[i]);
    }
    return rc ? rc : buf_appendc(b, ']');
}

static int put_metrics(struct buf *b, const struct labels *l)
{
    char num[PATCH_NUMBER_BUF];
    int rc = buf_appendc(b, '{');

    for (size_t i = 0; rc == 0 && i < l->nmetrics; i++) {
        if (!isfinite(l->metrics[i].value))
            return LS_EVALUE;
        if (i && (rc = buf_appendc(b, ',')) != 0)
            break;
        if ((rc = put_cstr(b, l->metrics[i].name)) != 0 || (rc = buf_appendc(b, ':')) != 0)
            break;
        patch_format_number(l->metrics[i].value, num);
        rc = buf_appends(b, num);
    }
    return rc ? rc : buf_appendc(b, '}');
}

static int put_star(struct buf *b, int star)
{
    return star < 0 ? buf_appends(b, "null") : buf_appendf(b, "%d", star);
}

static int put_fp(struct buf *b, const unsigned char *fp)
{
    char hex[65];

    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", fp[i]);
    return buf_appendf(b, "\"%s\"", hex);
}

/* Everything the item record formatter needs; absent fields per `present`. */
struct item_fields {
    unsigned long long id; /* 0 = no id member */
    const char *path;
    const struct labels *labels;
    unsigned present; /* WAL_HAS_* */
    unsigned long long version;
    const char *updated_at; /* NULL -> null */
    const char *updated_by; /* NULL -> null */
    const char *mutation_id;
    unsigned changed;
    const char *idem_scope, *idem_key;
    const unsigned char *idem_fp; /* NULL = no idem member */
};

static const char *const changed_names[4] = {"tags", "notes", "star", "metrics"};
static const unsigned changed_bits[4] = {PATCH_CHANGED_TAGS, PATCH_CHANGED_NOTES,
                                         PATCH_CHANGED_STAR, PATCH_CHANGED_METRICS};

/* The item record object without its closing brace (the crc goes there). */
static int put_item_open(struct buf *b, const struct item_fields *f)
{
    const struct labels *l = f->labels;
    bool first = true;
    int rc = buf_appendc(b, '{');

    if (rc == 0 && f->id) {
        if ((rc = put_key(b, "id", true)) == 0)
            rc = put_uint(b, f->id);
        first = false;
    }
    if (rc == 0 && (rc = put_key(b, "type", first)) == 0)
        rc = buf_appends(b, "\"item-updated\"");
    if (rc == 0 && (rc = put_key(b, "path", false)) == 0)
        rc = put_cstr(b, f->path);
    if (rc == 0 && (rc = put_key(b, "version", false)) == 0)
        rc = put_uint(b, f->version);
    if (rc == 0 && (f->present & WAL_HAS_TAGS) && (rc = put_key(b, "tags", false)) == 0)
        rc = put_tags(b, l);
    if (rc == 0 && (f->present & WAL_HAS_NOTES) && (rc = put_key(b, "notes", false)) == 0)
        rc = put_cstr(b, l->notes ? l->notes : "");
    if (rc == 0 && (f->present & WAL_HAS_STAR) && (rc = put_key(b, "star", false)) == 0)
        rc = put_star(b, l->star);
    if (rc == 0 && (f->present & WAL_HAS_UPDATED_AT) && (rc = put_key(b, "updated_at", false)) == 0)
        rc = put_cstr(b, f->updated_at);
    if (rc == 0 && (f->present & WAL_HAS_UPDATED_BY) && (rc = put_key(b, "updated_by", false)) == 0)
        rc = put_cstr(b, f->updated_by);
    if (rc == 0 && (f->present & WAL_HAS_METRICS) && (rc = put_key(b, "metrics", false)) == 0)
        rc = put_metrics(b, l);
    if (rc == 0 && (rc = put_key(b, "mutation_id", false)) == 0)
        rc = put_cstr(b, f->mutation_id);
    if (rc == 0 && (rc = put_key(b, "changed_fields", false)) == 0) {
        bool any = false;

        rc = buf_appendc(b, '[');
        for (int i = 0; rc == 0 && i < 4; i++) {
            if (!(f->changed & changed_bits[i]))
                continue;
            rc = buf_appendf(b, "%s\"%s\"", any ? "," : "", changed_names[i]);
            any = true;
        }
        if (rc == 0)
            rc = buf_appendc(b, ']');
    }
    if (rc == 0 && f->idem_fp) {
        if ((rc = put_key(b, "idem", false)) == 0 && (rc = buf_appends(b, "{\"scope\":")) == 0 &&
            (rc = put_cstr(b, f->idem_scope ? f->idem_scope : "")) == 0 &&
            (rc = buf_appends(b, ",\"key\":")) == 0 && (rc = put_cstr(b, f->idem_key)) == 0 &&
            (rc = buf_appends(b, ",\"fp\":")) == 0 && (rc = put_fp(b, f->idem_fp)) == 0)
            rc = buf_appendc(b, '}');
    }
    return rc;
}

/* The idempotency record object without its closing brace. */
static int put_idem_open(struct buf *b, const struct wal_idem *r)
{
    char ts[WAL_TIME_BUF];
    int rc;

    if (!r->key || !r->body || r->status < 100 || r->status > 599)
        return LS_EVALUE;
    wal_format_time(r->stored_at_us, ts);
    if ((rc = buf_appends(b, "{\"type\":\"idempotency\",\"scope\":")) == 0 &&
        (rc = put_cstr(b, r->scope ? r->scope : "")) == 0 &&
        (rc = buf_appends(b, ",\"key\":")) == 0 && (rc = put_cstr(b, r->key)) == 0 &&
        (rc = buf_appends(b, ",\"fp\":")) == 0 && (rc = put_fp(b, r->fp)) == 0 &&
        (rc = buf_appendf(b, ",\"status\":%d,\"etag\":", r->status)) == 0 &&
        (rc = put_cstr(b, r->etag)) == 0 && (rc = buf_appends(b, ",\"body\":")) == 0 &&
        (rc = put_str(b, r->body, r->body_len)) == 0 &&
        (rc = buf_appends(b, ",\"stored_at\":")) == 0)
        rc = put_cstr(b, ts);
    return rc;
}

/* Close an object opened by put_*_open with its crc member and a newline. */
static int put_crc_close(struct buf *b)
{
    uint32_t crc = wal_crc32c_update(wal_crc32c(b->data, b->len), "}", 1);

    return buf_appendf(b, ",\"crc\":\"%08x\"}\n", crc);
}

/* Move a finished line from tmp into out, or fail without touching out. */
static int finish_line(struct buf *out, struct buf *tmp, int rc)
{
    if (rc == 0 && tmp->len - 1 > WAL_MAX_LINE)
        rc = LS_ETOOBIG;
    if (rc == 0)
        rc = buf_append(out, tmp->data, tmp->len);
    buf_cleanup(tmp);
    return rc;
}

int wal_format_presence(struct buf *out, unsigned long long id, const char *gallery,
                        unsigned viewing, unsigned editing)
{
    struct buf tmp;
    int rc;

    if (id == 0 || id > WAL_MAX_ID || !gallery || !canon_is_canonical(gallery, strlen(gallery)))
        return LS_EVALUE;
    buf_init(&tmp, (size_t)WAL_MAX_LINE + 64);
    rc = buf_appendf(&tmp, "{\"id\":%llu,\"type\":\"presence\",\"gallery_id\":", id);
    if (rc == 0)
        rc = put_cstr(&tmp, gallery);
    if (rc == 0)
        rc = buf_appendf(&tmp, ",\"viewing\":%u,\"editing\":%u", viewing, editing);
    if (rc == 0)
        rc = put_crc_close(&tmp);
    return finish_line(out, &tmp, rc);
}

int wal_format_item(struct buf *out, unsigned long long id, const struct store_record *rec,
                    const char *mutation_id, unsigned changed, const char *idem_scope,
                    const char *idem_key, const unsigned char *idem_fp)
{
    char ts[WAL_TIME_BUF];
    struct item_fields f;
    struct buf tmp;
    int rc;

    if (!rec || !rec->path || id == 0 || id > WAL_MAX_ID || rec->version == 0 ||
        rec->version > WAL_MAX_ID || !canon_is_canonical(rec->path, strlen(rec->path)) ||
        (idem_fp && !idem_key))
        return LS_EVALUE;
    memset(&f, 0, sizeof(f));
    f.id = id;
    f.path = rec->path;
    f.labels = &rec->labels;
    f.present = WAL_HAS_ALL;
    f.version = rec->version;
    if (rec->updated_at_us) {
        wal_format_time(rec->updated_at_us, ts);
        f.updated_at = ts;
    }
    f.updated_by = rec->updated_by;
    f.mutation_id = mutation_id;
    f.changed = changed;
    f.idem_scope = idem_scope;
    f.idem_key = idem_key;
    f.idem_fp = idem_fp;
    buf_init(&tmp, (size_t)WAL_MAX_LINE + 64);
    rc = put_item_open(&tmp, &f);
    if (rc == 0)
        rc = put_crc_close(&tmp);
    return finish_line(out, &tmp, rc);
}

int wal_format_idem(struct buf *out, const struct wal_idem *r)
{
    struct buf tmp;
    int rc;

    if (!r)
        return LS_EVALUE;
    buf_init(&tmp, (size_t)WAL_MAX_LINE + 64);
    rc = put_idem_open(&tmp, r);
    if (rc == 0)
        rc = put_crc_close(&tmp);
    return finish_line(out, &tmp, rc);
}

/* ================================================================== */
/* Decoding one record                                                  */

/* REC_EVENT: an event that carries no state but consumes an id of the
 * sequence (a presence change); replay only counts its id, so ids are never
 * reused after a restart. */
enum rec_kind { REC_ITEM, REC_IDEM, REC_EVENT, REC_SKIP };

/* One decoded record.  Strings are borrowed from the cJSON tree it came
 * from; item.labels is owned (rec_cleanup). */
struct rec {
    enum rec_kind kind;
    bool has_id;
    unsigned long long id;
    struct wal_item item;
    struct wal_idem idem;
};

static void rec_init(struct rec *r)
{
    memset(r, 0, sizeof(*r));
    labels_init(&r->item.labels);
}

static void rec_cleanup(struct rec *r)
{
    labels_cleanup(&r->item.labels);
}

/* A JSON number that is an integer in [lo, hi] (hi <= 2^53 - 1, so exact). */
static bool json_uint(const cJSON *v, unsigned long long lo, unsigned long long hi,
                      unsigned long long *out)
{
    double d;

    if (!cJSON_IsNumber(v))
        return false;
    d = v->valuedouble;
    if (!isfinite(d) || d < (double)lo || d > (double)hi || d != floor(d))
        return false;
    *out = (unsigned long long)d;
    return true;
}

/* A string that is UTF-8 (a "\u0000" escape was turned into bytes that are
 * not), at most max bytes, without control characters when strict. */
static bool text_ok(const char *s, size_t min, size_t max, bool strict)
{
    size_t n = strlen(s);

    return n >= min && n <= max && canon_utf8_valid(s, n) && (!strict || !canon_has_control(s, n));
}

#define CORRUPT(...)                       \
    do {                                   \
        set_why(why, whycap, __VA_ARGS__); \
        return LS_ECORRUPT;                \
    } while (0)

static int dec_tags(const cJSON *v, struct labels *l, char *why, size_t whycap)
{
    const cJSON *e;
    size_t n = 0;

    if (cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsArray(v))
        CORRUPT("tags: not an array");
    for (e = v->child; e; e = e->next)
        if (++n > PATCH_MAX_TAGS_IN)
            CORRUPT("tags: more than %d entries", PATCH_MAX_TAGS_IN);
    if (n == 0)
        return 0;
    l->tags = calloc(n < PATCH_MAX_TAGS_ITEM ? n : PATCH_MAX_TAGS_ITEM, sizeof(char *));
    if (!l->tags)
        return -ENOMEM;
    n = 0;
    for (e = v->child; e; e = e->next, n++) {
        size_t len, start, tlen, i;

        if (!cJSON_IsString(e))
            CORRUPT("tags[%zu]: not a string", n);
        len = strlen(e->valuestring);
        if (!canon_utf8_valid(e->valuestring, len))
            CORRUPT("tags[%zu]: not valid UTF-8 (or holds \\u0000)", n);
        canon_trim(e->valuestring, len, &start, &tlen);
        if (tlen == 0)
            continue; /* upstream PUT keeps empty tags; normalize as PATCH does */
        if (tlen > PATCH_MAX_TAG || canon_has_control(e->valuestring + start, tlen))
            CORRUPT("tags[%zu]: longer than %d bytes or has a control character", n, PATCH_MAX_TAG);
        for (i = 0; i < l->ntags; i++)
            if (strlen(l->tags[i]) == tlen && memcmp(l->tags[i], e->valuestring + start, tlen) == 0)
                break;
        if (i < l->ntags)
            continue; /* duplicate: the first occurrence wins */
        if (l->ntags == PATCH_MAX_TAGS_ITEM)
            CORRUPT("tags: more than %d distinct tags", PATCH_MAX_TAGS_ITEM);
        if (!(l->tags[l->ntags] = dup_n(e->valuestring + start, tlen)))
            return -ENOMEM;
        l->ntags++;
    }
    return 0;
}

static int metric_cmp(const void *a, const void *b)
{
    return strcmp(((const struct labels_metric *)a)->name, ((const struct labels_metric *)b)->name);
}

static int dec_metrics(const cJSON *v, struct labels *l, char *why, size_t whycap)
{
    const cJSON *e;
    size_t n = 0;

    if (cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsObject(v))
        CORRUPT("metrics: not an object");
    for (e = v->child; e; e = e->next)
        if (++n > PATCH_MAX_METRICS)
            CORRUPT("metrics: more than %d keys", PATCH_MAX_METRICS);
    if (n == 0)
        return 0;
    if (!(l->metrics = calloc(n, sizeof(*l->metrics))))
        return -ENOMEM;
    for (e = v->child; e; e = e->next) {
        if (!text_ok(e->string, 1, PATCH_MAX_METRIC_NAME, true))
            CORRUPT("metrics: a key is empty, longer than %d bytes, not UTF-8 or has a control "
                    "character",
                    PATCH_MAX_METRIC_NAME);
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble))
            CORRUPT("metrics.%.40s: not a finite number", e->string);
        if (!(l->metrics[l->nmetrics].name = strdup(e->string)))
            return -ENOMEM;
        l->metrics[l->nmetrics++].value = e->valuedouble;
    }
    qsort(l->metrics, l->nmetrics, sizeof(*l->metrics), metric_cmp);
    for (size_t i = 1; i < l->nmetrics; i++)
        if (strcmp(l->metrics[i - 1].name, l->metrics[i].name) == 0)
            CORRUPT("metrics: duplicate key \"%.40s\"", l->metrics[i].name);
    return 0;
}

/* The label fields shared by log records and snapshot items. */
static int dec_fields(const cJSON *o, struct wal_item *it, char *why, size_t whycap)
{
    const cJSON *v;
    unsigned long long star;
    int rc;

    if ((v = cJSON_GetObjectItemCaseSensitive(o, "tags")) != NULL) {
        if ((rc = dec_tags(v, &it->labels, why, whycap)) != 0)
            return rc;
        it->present |= WAL_HAS_TAGS;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "notes")) != NULL) {
        if (cJSON_IsString(v)) {
            if (!text_ok(v->valuestring, 0, PATCH_MAX_NOTES, false))
                CORRUPT("notes: longer than %d bytes, not UTF-8 or holds \\u0000", PATCH_MAX_NOTES);
            if (v->valuestring[0] && !(it->labels.notes = strdup(v->valuestring)))
                return -ENOMEM;
        } else if (!cJSON_IsNull(v)) {
            CORRUPT("notes: not a string");
        }
        it->present |= WAL_HAS_NOTES;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "star")) != NULL) {
        if (cJSON_IsNull(v))
            it->labels.star = -1;
        else if (json_uint(v, 0, 5, &star))
            it->labels.star = (int)star;
        else
            CORRUPT("star: not null or an integer 0..5");
        it->present |= WAL_HAS_STAR;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "metrics")) != NULL) {
        if ((rc = dec_metrics(v, &it->labels, why, whycap)) != 0)
            return rc;
        it->present |= WAL_HAS_METRICS;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "updated_at")) != NULL) {
        if (cJSON_IsString(v)) {
            if (!text_ok(v->valuestring, 0, WAL_MAX_TIME_TEXT, true))
                CORRUPT("updated_at: longer than %d bytes or not text", WAL_MAX_TIME_TEXT);
            it->updated_at = v->valuestring;
            if (wal_parse_time(v->valuestring, &it->updated_at_us) != 0)
                it->updated_at_us = 0; /* "" (upstream: never written) or a form we do not know */
        } else if (!cJSON_IsNull(v)) {
            CORRUPT("updated_at: not a string");
        }
        it->present |= WAL_HAS_UPDATED_AT;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "updated_by")) != NULL) {
        if (cJSON_IsString(v)) {
            if (!text_ok(v->valuestring, 0, STORE_MAX_ACTOR, true))
                CORRUPT("updated_by: longer than %d bytes or not text", STORE_MAX_ACTOR);
            if (v->valuestring[0]) { /* upstream applies only a non-empty updated_by */
                it->updated_by = v->valuestring;
                it->present |= WAL_HAS_UPDATED_BY;
            }
        } else if (cJSON_IsNull(v)) {
            it->present |= WAL_HAS_UPDATED_BY;
        } else {
            CORRUPT("updated_by: not a string");
        }
    }
    return 0;
}

/* scope/key/fp of an idem member or an idempotency record. */
static int dec_idem_key(const cJSON *o, const char **scope, const char **key, unsigned char *fp,
                        char *why, size_t whycap)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "scope");
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "key");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, "fp");

    if (!cJSON_IsString(s) || !text_ok(s->valuestring, 0, IDEM_MAX_SCOPE, true))
        CORRUPT("idempotency scope: not a string of at most %d bytes", IDEM_MAX_SCOPE);
    if (!cJSON_IsString(k) || !text_ok(k->valuestring, 1, IDEM_MAX_KEY, true))
        CORRUPT("idempotency key: not a string of 1..%d bytes", IDEM_MAX_KEY);
    if (!cJSON_IsString(f) || !fp_decode(f->valuestring, fp))
        CORRUPT("idempotency fp: not 64 hex digits");
    *scope = s->valuestring;
    *key = k->valuestring;
    return 0;
}

static int dec_item(const cJSON *o, struct rec *r, char *why, size_t whycap)
{
    struct wal_item *it = &r->item;
    const cJSON *v;
    int rc;

    if (!r->has_id) {
        set_why(why, whycap, "no integer id");
        r->kind = REC_SKIP;
        return 0;
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "path");
    if (!v) {
        set_why(why, whycap, "no path");
        r->kind = REC_SKIP;
        return 0;
    }
    if (!cJSON_IsString(v))
        CORRUPT("path: not a string");
    if (!canon_is_canonical(v->valuestring, strlen(v->valuestring)))
        CORRUPT("path: not canonical");
    it->path = v->valuestring;
    v = cJSON_GetObjectItemCaseSensitive(o, "version");
    if (!v) {
        set_why(why, whycap, "no version");
        r->kind = REC_SKIP;
        return 0;
    }
    if (!json_uint(v, 1, WAL_MAX_ID, &it->version))
        CORRUPT("version: not an integer in 1..2^53-1");
    if ((rc = dec_fields(o, it, why, whycap)) != 0)
        return rc;
    v = cJSON_GetObjectItemCaseSensitive(o, "mutation_id");
    if (cJSON_IsString(v) && text_ok(v->valuestring, 0, WAL_MAX_LINE, false))
        it->mutation_id = v->valuestring; /* informational: anything else is ignored */
    v = cJSON_GetObjectItemCaseSensitive(o, "changed_fields");
    if (cJSON_IsArray(v)) {
        for (const cJSON *e = v->child; e; e = e->next)
            for (int i = 0; i < 4 && cJSON_IsString(e); i++)
                if (strcmp(e->valuestring, changed_names[i]) == 0)
                    it->changed |= changed_bits[i];
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "idem");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsObject(v))
            CORRUPT("idem: not an object");
        if ((rc = dec_idem_key(v, &it->idem_scope, &it->idem_key, it->idem_fp, why, whycap)) != 0)
            return rc;
        it->has_idem = true;
    }
    it->id = r->id;
    r->kind = REC_ITEM;
    return 0;
}

static int dec_idem(const cJSON *o, struct rec *r, char *why, size_t whycap)
{
    struct wal_idem *d = &r->idem;
    const cJSON *v;
    unsigned long long status;
    int rc;

    if ((rc = dec_idem_key(o, &d->scope, &d->key, d->fp, why, whycap)) != 0)
        return rc;
    if (!json_uint(cJSON_GetObjectItemCaseSensitive(o, "status"), 100, 599, &status))
        CORRUPT("status: not an integer 100..599");
    d->status = (int)status;
    v = cJSON_GetObjectItemCaseSensitive(o, "etag");
    if (cJSON_IsString(v) && text_ok(v->valuestring, 0, WAL_MAX_ETAG, true))
        d->etag = v->valuestring;
    else if (v && !cJSON_IsNull(v))
        CORRUPT("etag: not null or a string of at most %d bytes", WAL_MAX_ETAG);
    v = cJSON_GetObjectItemCaseSensitive(o, "body");
    if (!cJSON_IsString(v) || !text_ok(v->valuestring, 0, WAL_MAX_LINE, false))
        CORRUPT("body: not a string (UTF-8, no \\u0000)");
    d->body = v->valuestring;
    d->body_len = strlen(v->valuestring);
    v = cJSON_GetObjectItemCaseSensitive(o, "stored_at");
    if (!cJSON_IsString(v) || wal_parse_time(v->valuestring, &d->stored_at_us) != 0)
        CORRUPT("stored_at: not an RFC 3339 time");
    r->kind = REC_IDEM;
    return 0;
}

/*
 * Decode one record object.  0 with r->kind set (REC_SKIP: why says why),
 * LS_ECORRUPT (why), -ENOMEM.  The precedence (id, type, path, version,
 * fields) is the table in wal.md.
 */
static int dec_record(const cJSON *o, struct rec *r, char *why, size_t whycap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "id");
    const char *type = NULL;

    if (cJSON_IsNumber(v)) {
        if (!json_uint(v, 1, WAL_MAX_ID, &r->id))
            CORRUPT("id: not an integer in 1..2^53-1");
        r->has_id = true;
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "type");
    if (v) {
        if (!cJSON_IsString(v))
            CORRUPT("type: not a string");
        type = v->valuestring;
    }
    if (type && strcmp(type, "idempotency") == 0)
        return dec_idem(o, r, why, whycap);
    if (type && strcmp(type, "presence") == 0 && r->has_id) {
        r->kind = REC_EVENT;
        return 0;
    }
    if (!type || strcmp(type, "item-updated") == 0)
        return dec_item(o, r, why, whycap);
    set_why(why, whycap, "type \"%.40s\" is not replayed", type);
    r->kind = REC_SKIP;
    return 0;
}

#undef CORRUPT

/* ================================================================== */
/* Lines                                                                */

enum line_class { LC_GOOD, LC_SKIP, LC_BLANK, LC_DAMAGED, LC_INVALID };

/* Replay scratch: one copy of the current line, reused. */
struct scratch {
    char *p;
    size_t cap;
};

/* Overwrite every \u0000 escape with 0xFF bytes: cJSON would otherwise cut
 * the string there, and 0xFF is never valid UTF-8, so the field check fails
 * loudly instead. */
static void mark_nul_escapes(char *s, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '\\')
            continue;
        if (s[i + 1] == 'u' && i + 5 < n && memcmp(s + i + 2, "0000", 4) == 0) {
            memset(s + i, 0xFF, 6);
            i += 5;
        } else {
            i++; /* the escaped character */
        }
    }
}

static bool all_blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return false;
    return true;
}

#define CRC_SUFFIX_LEN 18 /* ,"crc":"xxxxxxxx"} */

/*
 * Classify the line p[0..n) (without its '\n').  With decode, a well-formed
 * line is also decoded into *r (LC_GOOD or LC_SKIP, or LC_INVALID) and *tree
 * keeps the JSON the strings point into (cJSON_Delete it after r is used).
 * Without decode, LC_GOOD only means well-formed (parses, crc ok).  Returns
 * 0 or -ENOMEM.
 */
static int classify(struct scratch *sc, const char *p, size_t n, bool decode, struct rec *r,
                    cJSON **tree, bool *unchecked, int *cls, char *why, size_t whycap)
{
    const char *end = NULL;
    bool has_crc;
    cJSON *root, *crcm;
    int rc;

    *tree = NULL;
    *unchecked = false;
    if (all_blank(p, n)) {
        *cls = LC_BLANK;
        return 0;
    }
    *cls = LC_DAMAGED;
    if ((end = memchr(p, '\0', n)) != NULL) {
        set_why(why, whycap, "NUL byte at column %zu", (size_t)(end - p) + 1);
        return 0;
    }
    has_crc = n >= CRC_SUFFIX_LEN + 1 && memcmp(p + n - CRC_SUFFIX_LEN, ",\"crc\":\"", 8) == 0 &&
              p[n - 2] == '"' && p[n - 1] == '}' && is_crc_hex(p + n - 10);
    if (has_crc) {
        uint32_t want = crc_from_hex(p + n - 10);
        uint32_t got = wal_crc32c_update(wal_crc32c(p, n - CRC_SUFFIX_LEN), "}", 1);

        if (want != got) {
            set_why(why, whycap, "crc mismatch (stored %08x, computed %08x)", want, got);
            return 0;
        }
    }
    if (sc->cap < n + 1) {
        char *np = realloc(sc->p, n + 1);

        if (!np)
            return -ENOMEM;
        sc->p = np;
        sc->cap = n + 1;
    }
    memcpy(sc->p, p, n);
    sc->p[n] = '\0';
    mark_nul_escapes(sc->p, n);
    root = cJSON_ParseWithLengthOpts(sc->p, n + 1, &end, 1);
    if (!root) {
        set_why(why, whycap, "not valid JSON (column %zu)",
                end && end >= sc->p ? (size_t)(end - sc->p) + 1 : (size_t)0);
        return 0;
    }
    if (!cJSON_IsObject(root)) {
        set_why(why, whycap, "not a JSON object");
        cJSON_Delete(root);
        return 0;
    }
    crcm = cJSON_GetObjectItemCaseSensitive(root, "crc");
    if (has_crc ? !cJSON_IsString(crcm) || strlen(crcm->valuestring) != 8 ||
                      memcmp(crcm->valuestring, p + n - 10, 8) != 0
                : crcm != NULL) {
        set_why(why, whycap, "malformed crc member (must be the last one, 8 lowercase hex digits)");
        cJSON_Delete(root);
        return 0;
    }
    *unchecked = !has_crc;
    *cls = LC_GOOD;
    if (!decode) {
        cJSON_Delete(root);
        return 0;
    }
    rc = dec_record(root, r, why, whycap);
    if (rc == -ENOMEM) {
        cJSON_Delete(root);
        return rc;
    }
    *cls = rc ? LC_INVALID : r->kind == REC_SKIP ? LC_SKIP : LC_GOOD;
    *tree = root;
    return 0;
}

/* Is there a well-formed (or over-long) line in buf[from..len)?  *line gets
 * its 1-based number counted from `from`. */
static int lookahead(struct scratch *sc, const char *buf, size_t len, size_t from, bool *found,
                     size_t *line)
{
    char why[8];

    *found = false;
    *line = 0;
    while (from < len) {
        size_t avail = len - from, lim = avail < WAL_MAX_LINE + 1u ? avail : WAL_MAX_LINE + 1u;
        const char *nl = memchr(buf + from, '\n', lim);
        struct rec r;
        cJSON *tree;
        bool unchecked;
        int cls, rc;

        ++*line;
        if (!nl) {
            *found = avail > WAL_MAX_LINE; /* over-long: never the product of a torn write */
            return 0;
        }
        rc = classify(sc, buf + from, (size_t)(nl - (buf + from)), false, &r, &tree, &unchecked,
                      &cls, why, sizeof(why));
        if (rc)
            return rc;
        if (cls == LC_GOOD) {
            *found = true;
            return 0;
        }
        from = (size_t)(nl - buf) + 1;
    }
    return 0;
}

static size_t count_lines(const char *p, size_t n)
{
    size_t k = 0;

    for (const char *q = p; (q = memchr(q, '\n', n - (size_t)(q - p))) != NULL; q++)
        k++;
    return k + (n && p[n - 1] != '\n');
}

int wal_replay_log(const char *buf, size_t len, unsigned long long after_id, bool recover,
                   const struct wal_replay_cb *cb, void *ctx, struct wal_replay_result *res)
{
    struct scratch sc = {NULL, 0};
    size_t pos = 0, lineno = 0;
    int rc = 0;

    memset(res, 0, sizeof(*res));
    if (!buf)
        len = 0;
    while (pos < len) {
        size_t avail = len - pos, lim = avail < WAL_MAX_LINE + 1u ? avail : WAL_MAX_LINE + 1u, n;
        const char *p = buf + pos, *nl = memchr(p, '\n', lim);
        char why[128];
        struct rec r;
        cJSON *tree = NULL;
        bool unchecked, found;
        size_t ahead;
        int cls;

        lineno++;
        res->lines++;
        if (!nl) {
            if (avail > WAL_MAX_LINE) {
                set_why(why, sizeof(why), "line longer than %u bytes", (unsigned)WAL_MAX_LINE);
                goto corrupt;
            }
            set_why(res->torn_why, sizeof(res->torn_why), "the last line has no newline");
            goto torn;
        }
        n = (size_t)(nl - p);
        rec_init(&r);
        rc = classify(&sc, p, n, true, &r, &tree, &unchecked, &cls, why, sizeof(why));
        if (rc)
            goto out;
        switch (cls) {
        case LC_BLANK:
            res->skipped++;
            break;
        case LC_SKIP:
            res->skipped++;
            if (r.has_id && r.id > res->max_id)
                res->max_id = r.id;
            if (!res->first_skip_line) {
                res->first_skip_line = lineno;
                set_why(res->first_skip_why, sizeof(res->first_skip_why), "%s", why);
            }
            break;
        case LC_GOOD:
            if (r.has_id && r.id > res->max_id)
                res->max_id = r.id;
            res->unchecked += unchecked;
            if (r.kind == REC_EVENT) {
                res->skipped++; /* its id is counted above; nothing to apply */
            } else if (r.kind == REC_IDEM) {
                res->idems++;
                if (cb && cb->idem)
                    rc = cb->idem(ctx, &r.idem);
            } else if (r.item.id <= after_id) {
                res->below++;
                res->skipped++;
            } else {
                res->items++;
                r.item.line = lineno;
                if (cb && cb->item)
                    rc = cb->item(ctx, &r.item);
            }
            break;
        case LC_INVALID:
            rec_cleanup(&r);
            cJSON_Delete(tree);
            goto corrupt;
        default: /* LC_DAMAGED: torn tail unless a well-formed line follows */
            rec_cleanup(&r);
            cJSON_Delete(tree);
            if ((rc = lookahead(&sc, buf, len, pos + n + 1, &found, &ahead)) != 0)
                goto out;
            if (found) {
                char tmp[128];

                memcpy(tmp, why, sizeof(tmp));
                set_why(why, sizeof(why), "%.80s, and a complete record follows at line %zu", tmp,
                        lineno + ahead);
                goto corrupt;
            }
            set_why(res->torn_why, sizeof(res->torn_why), "%s", why);
            goto torn;
        }
        rec_cleanup(&r);
        cJSON_Delete(tree);
        if (rc)
            goto out;
        pos += n + 1;
        res->good_len = pos;
        continue;
    torn:
        res->torn_tail = true;
        res->torn_line = lineno;
        res->torn_bytes = len - pos;
        goto out;
    corrupt:
        res->corrupt_line = lineno;
        res->corrupt_offset = pos;
        set_why(res->corrupt_why, sizeof(res->corrupt_why), "%s", why);
        if (recover) {
            res->dropped_bytes = len - pos;
            res->dropped_lines = count_lines(p, len - pos);
        } else {
            rc = LS_ECORRUPT;
        }
        goto out;
    }
out:
    free(sc.p);
    return rc;
}

/* ================================================================== */
/* Snapshot replay                                                      */

#define SNAP_CRC_SUFFIX_LEN 19 /* ,"crc":"xxxxxxxx"}} */

int wal_replay_snapshot_ex(const char *buf, size_t len, const struct wal_replay_cb *cb, void *ctx,
                           unsigned long long *last_id, char *why, size_t whycap)
{
    char *copy = NULL;
    const char *end = NULL;
    cJSON *root = NULL;
    const cJSON *v, *items, *ls;
    size_t tlen = len, k = 0;
    bool has_crc;
    int rc = LS_ECORRUPT;

    *last_id = 0;
    if (why && whycap)
        why[0] = '\0';
    if (!buf)
        len = tlen = 0;
    if (len > WAL_MAX_SNAPSHOT) {
        set_why(why, whycap, "larger than %llu bytes", (unsigned long long)WAL_MAX_SNAPSHOT);
        return LS_ECORRUPT;
    }
    if (memchr(buf, '\0', len)) {
        set_why(why, whycap, "NUL byte at offset %zu",
                (size_t)((const char *)memchr(buf, 0, len) - buf));
        return LS_ECORRUPT;
    }
    while (tlen && (buf[tlen - 1] == '\n' || buf[tlen - 1] == '\r' || buf[tlen - 1] == ' ' ||
                    buf[tlen - 1] == '\t'))
        tlen--;
    has_crc = tlen >= SNAP_CRC_SUFFIX_LEN + 1 &&
              memcmp(buf + tlen - SNAP_CRC_SUFFIX_LEN, ",\"crc\":\"", 8) == 0 &&
              memcmp(buf + tlen - 3, "\"}}", 3) == 0 && is_crc_hex(buf + tlen - 11);
    if (!(copy = malloc(len + 1)))
        return -ENOMEM;
    memcpy(copy, buf, len);
    copy[len] = '\0';
    mark_nul_escapes(copy, len);
    root = cJSON_ParseWithLengthOpts(copy, len + 1, &end, 1);
    if (!root) {
        set_why(why, whycap, "not valid JSON (byte offset %zu)",
                end && end >= copy ? (size_t)(end - copy) : (size_t)0);
        goto out;
    }
    if (!cJSON_IsObject(root)) {
        set_why(why, whycap, "not a JSON object");
        goto out;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "version");
    if (v && (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))) {
        set_why(why, whycap, "version: not an integer");
        goto out;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "last_event_id");
    if (v && !json_uint(v, 0, WAL_MAX_ID, last_id)) {
        set_why(why, whycap, "last_event_id: not an integer in 0..2^53-1");
        goto out;
    }
    items = cJSON_GetObjectItemCaseSensitive(root, "items");
    if (items && !cJSON_IsObject(items)) {
        set_why(why, whycap, "items: not an object");
        goto out;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "mutations");
    if (v && !cJSON_IsObject(v)) {
        set_why(why, whycap, "mutations: not an object");
        goto out;
    }
    ls = cJSON_GetObjectItemCaseSensitive(root, "labelsync");
    if (ls) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(ls, "crc");

        if (!cJSON_IsObject(ls) || !cJSON_IsString(c) || !has_crc || strlen(c->valuestring) != 8 ||
            memcmp(c->valuestring, buf + tlen - 11, 8) != 0) {
            set_why(why, whycap, "labelsync.crc missing or not the last member of the file");
            goto out;
        }
        uint32_t want = crc_from_hex(buf + tlen - 11);
        uint32_t got = wal_crc32c_update(wal_crc32c(buf, tlen - SNAP_CRC_SUFFIX_LEN), "}}", 2);

        if (want != got) {
            set_why(why, whycap, "crc mismatch (stored %08x, computed %08x)", want, got);
            goto out;
        }
    }
    for (v = items ? items->child : NULL; v; v = v->next, k++) {
        struct rec r;
        char w[128];

        rec_init(&r);
        r.item.path = v->string;
        if (!canon_is_canonical(v->string, strlen(v->string)) || !cJSON_IsObject(v)) {
            set_why(why, whycap, "items entry %zu: path not canonical or value not an object", k);
            rec_cleanup(&r);
            goto out;
        }
        const cJSON *ver = cJSON_GetObjectItemCaseSensitive(v, "version");

        if (!ver) { /* upstream ignores an item without a version */
            rec_cleanup(&r);
            continue;
        }
        if (!json_uint(ver, 1, WAL_MAX_ID, &r.item.version)) {
            set_why(why, whycap, "items[\"%.60s\"]: version not an integer in 1..2^53-1",
                    v->string);
            rec_cleanup(&r);
            goto out;
        }
        rc = dec_fields(v, &r.item, w, sizeof(w));
        if (rc == 0 && cb && cb->item)
            rc = cb->item(ctx, &r.item);
        rec_cleanup(&r);
        if (rc == LS_ECORRUPT)
            set_why(why, whycap, "items[\"%.60s\"]: %s", v->string, w);
        if (rc)
            goto out;
        rc = LS_ECORRUPT;
    }
    v = ls ? cJSON_GetObjectItemCaseSensitive(ls, "idempotency") : NULL;
    if (v && !cJSON_IsArray(v)) {
        set_why(why, whycap, "labelsync.idempotency: not an array");
        goto out;
    }
    k = 0;
    for (v = v ? v->child : NULL; v; v = v->next, k++) {
        struct rec r;
        char w[128];

        rec_init(&r);
        rc = cJSON_IsObject(v) ? dec_record(v, &r, w, sizeof(w)) : LS_ECORRUPT;
        if (!cJSON_IsObject(v))
            set_why(w, sizeof(w), "not an object");
        if (rc == 0 && r.kind == REC_ITEM && cb && cb->item)
            rc = cb->item(ctx, &r.item);
        else if (rc == 0 && r.kind == REC_IDEM && cb && cb->idem)
            rc = cb->idem(ctx, &r.idem);
        rec_cleanup(&r);
        if (rc == LS_ECORRUPT)
            set_why(why, whycap, "labelsync.idempotency[%zu]: %s", k, w);
        if (rc)
            goto out;
        rc = LS_ECORRUPT;
    }
    rc = 0;
out:
    if (rc)
        *last_id = 0;
    cJSON_Delete(root);
    free(copy);
    return rc;
}

int wal_replay_snapshot(const char *buf, size_t len, const struct wal_replay_cb *cb, void *ctx,
                        unsigned long long *last_id)
{
    return wal_replay_snapshot_ex(buf, len, cb, ctx, last_id, NULL, 0);
}

/* Validate one line as wal_submit needs it: a complete, delivered record. */
static int check_line(struct scratch *sc, const char *line, size_t len, enum rec_kind *kind,
                      unsigned long long *id, char *why, size_t whycap)
{
    struct rec r;
    cJSON *tree = NULL;
    bool unchecked;
    int cls, rc;

    if (len && line[len - 1] == '\n')
        len--;
    if (len > WAL_MAX_LINE)
        return LS_ETOOBIG;
    if (memchr(line, '\n', len)) {
        set_why(why, whycap, "more than one line");
        return LS_ECORRUPT;
    }
    rec_init(&r);
    rc = classify(sc, line, len, true, &r, &tree, &unchecked, &cls, why, whycap);
    if (rc == 0 && cls != LC_GOOD) {
        if (cls == LC_BLANK)
            set_why(why, whycap, "blank line");
        rc = LS_ECORRUPT; /* LC_SKIP, LC_DAMAGED, LC_INVALID: why is set */
    }
    if (rc == 0) {
        *kind = r.kind;
        *id = r.kind == REC_ITEM ? r.item.id : r.kind == REC_EVENT ? r.id : 0;
    }
    rec_cleanup(&r);
    cJSON_Delete(tree);
    return rc;
}

int wal_check_line(const char *line, size_t len, char *why, size_t whycap)
{
    struct scratch sc = {NULL, 0};
    enum rec_kind kind;
    unsigned long long id;
    int rc = check_line(&sc, line, len, &kind, &id, why, whycap);

    free(sc.p);
    return rc;
}

/* ================================================================== */
/* File side: the durable view                                          */

/*
 * What the next snapshot will hold: the latest record of every path and the
 * newest idempotency outcomes.  Fed by wal_open (snapshot + log) and by the
 * writer after each successful batch; only the writer thread touches it
 * once wal_open has returned.
 */
struct view_item {
    char *path;
    struct labels labels;
    unsigned long long version;
    char *updated_at; /* the text as read or written; NULL = null */
    char *updated_by; /* NULL = null */
};

struct view_idem {
    struct view_idem *next;
    long long at_us; /* stored_at, or updated_at of an item record */
    size_t len;
    char text[]; /* the record object without crc and newline */
};

struct view {
    struct view_item **slot; /* open addressing, linear probing, load <= 1/2 */
    size_t cap, count;
    struct view_idem *head, *tail;
    size_t nidem, idem_bytes;
    unsigned long long max_id;
};

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 14695981039346656037ull;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static struct view_item **view_slot(struct view *v, const char *path)
{
    size_t i = (size_t)fnv1a(path) & (v->cap - 1);

    while (v->slot[i] && strcmp(v->slot[i]->path, path) != 0)
        i = (i + 1) & (v->cap - 1);
    return &v->slot[i];
}

static int view_grow(struct view *v)
{
    struct view_item **old = v->slot;
    size_t oldcap = v->cap, cap = oldcap ? oldcap * 2 : 1024;

    if (!(v->slot = calloc(cap, sizeof(*v->slot)))) {
        v->slot = old;
        return -ENOMEM;
    }
    v->cap = cap;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i])
            *view_slot(v, old[i]->path) = old[i];
    free(old);
    return 0;
}

static void view_idem_pop(struct view *v)
{
    struct view_idem *e = v->head;

    v->head = e->next;
    if (!v->head)
        v->tail = NULL;
    v->nidem--;
    v->idem_bytes -= e->len;
    free(e);
}

static int view_push_idem(struct view *v, const struct buf *text, long long at_us)
{
    struct view_idem *e = malloc(sizeof(*e) + text->len + 1);

    if (!e)
        return -ENOMEM;
    e->next = NULL;
    e->at_us = at_us;
    e->len = text->len;
    memcpy(e->text, text->data, text->len + 1);
    if (v->tail)
        v->tail->next = e;
    else
        v->head = e;
    v->tail = e;
    v->nidem++;
    v->idem_bytes += e->len;
    while (v->nidem > WAL_VIEW_MAX_IDEM || v->idem_bytes > WAL_VIEW_MAX_IDEM_BYTES)
        view_idem_pop(v);
    return 0;
}

static void view_cleanup(struct view *v)
{
    for (size_t i = 0; i < v->cap; i++) {
        struct view_item *it = v->slot[i];

        if (!it)
            continue;
        free(it->path);
        labels_cleanup(&it->labels);
        free(it->updated_at);
        free(it->updated_by);
        free(it);
    }
    free(v->slot);
    while (v->head)
        view_idem_pop(v);
    memset(v, 0, sizeof(*v));
}

/* Replace *dst by a copy of src (NULL allowed). */
static int set_str(char **dst, const char *src)
{
    char *c = NULL;

    if (src && !(c = strdup(src)))
        return -ENOMEM;
    free(*dst);
    *dst = c;
    return 0;
}

static int view_item_cb(void *ctx, const struct wal_item *r)
{
    struct view *v = ctx;
    struct view_item **slot, *it;
    struct labels next;
    int rc;

    if (r->id > v->max_id)
        v->max_id = r->id;
    if (r->has_idem) { /* the stored 200 is rebuilt from this record: keep it whole */
        struct item_fields f;
        struct buf text;

        memset(&f, 0, sizeof(f));
        f.id = r->id;
        f.path = r->path;
        f.labels = &r->labels;
        f.present = r->present;
        f.version = r->version;
        f.updated_at = r->updated_at;
        f.updated_by = r->updated_by;
        f.mutation_id = r->mutation_id;
        f.changed = r->changed;
        f.idem_scope = r->idem_scope;
        f.idem_key = r->idem_key;
        f.idem_fp = r->idem_fp;
        buf_init(&text, (size_t)WAL_MAX_LINE + 64);
        rc = put_item_open(&text, &f);
        if (rc == 0)
            rc = buf_appendc(&text, '}');
        if (rc == 0)
            rc = view_push_idem(v, &text, r->updated_at_us ? r->updated_at_us : wall_us());
        buf_cleanup(&text);
        if (rc)
            return rc;
    }
    if (v->cap == 0 && (rc = view_grow(v)) != 0)
        return rc;
    slot = view_slot(v, r->path);
    if (*slot && r->version <= (*slot)->version)
        return 0; /* replay is idempotent: only a newer version applies */
    if (!*slot) {
        if (v->count >= WAL_VIEW_MAX_ITEMS)
            return LS_ETOOMANY;
        if ((v->count + 1) * 2 > v->cap) {
            if ((rc = view_grow(v)) != 0)
                return rc;
            slot = view_slot(v, r->path);
        }
        if (!(it = calloc(1, sizeof(*it))) || !(it->path = strdup(r->path))) {
            free(it);
            return -ENOMEM;
        }
        labels_init(&it->labels);
        it->version = 1;
        *slot = it;
        v->count++;
    }
    it = *slot;
    if ((rc = labels_copy(&next, &r->labels)) != 0)
        return rc;
    /* Missing fields keep their previous values (upstream rule). */
    if (!(r->present & WAL_HAS_TAGS)) {
        char **t = next.tags;
        size_t n = next.ntags;

        next.tags = it->labels.tags;
        next.ntags = it->labels.ntags;
        it->labels.tags = t;
        it->labels.ntags = n;
    }
    if (!(r->present & WAL_HAS_NOTES)) {
        char *t = next.notes;

        next.notes = it->labels.notes;
        it->labels.notes = t;
    }
    if (!(r->present & WAL_HAS_STAR))
        next.star = it->labels.star;
    if (!(r->present & WAL_HAS_METRICS)) {
        struct labels_metric *m = next.metrics;
        size_t n = next.nmetrics;

        next.metrics = it->labels.metrics;
        next.nmetrics = it->labels.nmetrics;
        it->labels.metrics = m;
        it->labels.nmetrics = n;
    }
    if (((r->present & WAL_HAS_UPDATED_AT) &&
         (rc = set_str(&it->updated_at, r->updated_at)) != 0) ||
        ((r->present & WAL_HAS_UPDATED_BY) &&
         (rc = set_str(&it->updated_by, r->updated_by)) != 0)) {
        labels_cleanup(&next);
        return rc;
    }
    labels_cleanup(&it->labels);
    it->labels = next;
    it->version = r->version;
    return 0;
}

static int view_idem_cb(void *ctx, const struct wal_idem *r)
{
    struct view *v = ctx;
    struct buf text;
    int rc;

    buf_init(&text, (size_t)WAL_MAX_LINE + 64);
    rc = put_idem_open(&text, r);
    if (rc == 0)
        rc = buf_appendc(&text, '}');
    if (rc == 0)
        rc = view_push_idem(v, &text, r->stored_at_us);
    buf_cleanup(&text);
    return rc;
}

static const struct wal_replay_cb view_cb = {view_item_cb, view_idem_cb};

/* ================================================================== */
/* File side: the handle, faults, failures                              */

enum fault_point {
    FP_NONE,
    FP_APPEND_ENOSPC,
    FP_APPEND_EIO,
    FP_FSYNC_EIO,
    FP_STALL_WRITER, /* test-only addition: the writer sleeps LS_FAULT_COUNT ms once */
    FP_KILL_AFTER_WRITE,
    FP_KILL_AFTER_FSYNC,
    FP_KILL_SNAPSHOT_TMP,
    FP_KILL_SNAPSHOT_RENAME,
    FP_KILL_LOG_ROTATE,
};

struct wal_ticket {
    struct wal_ticket *next;
    unsigned long long id;
    size_t len; /* with the '\n' */
    int result;
    bool done;
    char line[];
};

struct wal {
    char *dir; /* <root>/.lenslet */
    int dirfd, logfd, lockfd;
    enum wal_fsync mode;
    unsigned batch_ms;
    size_t compact_bytes;

    pthread_mutex_t mu;
    pthread_cond_t wake; /* the writer: work queued or stopping (CLOCK_MONOTONIC) */
    pthread_cond_t done; /* the waiters: a batch finished */
    pthread_t thread;
    bool started, stopping;

    /* Under mu. */
    struct wal_ticket *qhead, *qtail;
    size_t qlen, qbytes, inflight, unsynced;
    unsigned long long last_submit_id;
    int last_error;
    bool latched;
    char error[128];
    unsigned long long durable_id, written_id, fsyncs, records, batches, failures, compactions;
    size_t log_bytes;

    /* Writer thread only (wal_open and wal_close run while it does not). */
    size_t good_off; /* end of the last whole line in the log */
    bool dirty;      /* BATCH: written since the last fdatasync */
    long long last_sync_ms, next_compact_ms, last_err_log_ms;
    struct buf batch;
    struct view view;
    int view_err; /* the view missed a record: never snapshot from it */
    unsigned tmp_seq;
    int fault;
    unsigned long fault_count, fault_hits;
};

#ifdef LS_FAULT_INJECTION
static const char *const fault_names[] = {
    "",
    "append-enospc",
    "append-eio",
    "fsync-eio",
    "stall-writer",
    "kill-after-write",
    "kill-after-fsync",
    "kill-snapshot-tmp",
    "kill-snapshot-rename",
    "kill-log-rotate",
};

/* LS_FAULT=<point>, LS_FAULT_COUNT=N (default 1): append-* and fsync-eio
 * fail the first N times the point is reached; kill-* _exit(137) at the Nth;
 * stall-writer makes the writer sleep N ms before its first batch. */
static void fault_init(struct wal *w)
{
    const char *p = getenv("LS_FAULT"), *c = getenv("LS_FAULT_COUNT");

    w->fault = FP_NONE;
    w->fault_count = 1;
    w->fault_hits = 0;
    if (c && *c) {
        char *end;
        unsigned long n = strtoul(c, &end, 10);

        if (*end == '\0' && n > 0)
            w->fault_count = n;
    }
    if (!p || !*p)
        return;
    for (int i = 1; i < (int)(sizeof(fault_names) / sizeof(fault_names[0])); i++)
        if (strcmp(p, fault_names[i]) == 0)
            w->fault = i;
    if (w->fault == FP_NONE)
        TRACE_W(WAL_TRACE, "LS_FAULT=%s: unknown fault point, ignored", p);
}

static bool fault_fire(struct wal *w, enum fault_point p)
{
    if (w->fault != (int)p)
        return false;
    w->fault_hits++;
    if (p == FP_STALL_WRITER) {
        struct timespec ts = {(time_t)(w->fault_count / 1000),
                              (long)(w->fault_count % 1000) * 1000000};

        if (w->fault_hits == 1)
            nanosleep(&ts, NULL);
        return false;
    }
    if (p >= FP_KILL_AFTER_WRITE) {
        if (w->fault_hits == w->fault_count) {
            TRACE_W(WAL_TRACE, "fault injection: %s, exiting", fault_names[p]);
            _exit(137);
        }
        return false;
    }
    return w->fault_hits <= w->fault_count;
}
#define FAULT(w, p)    fault_fire((w), (p))
#define FAULT_AT(w, p) ((void)fault_fire((w), (p)))
#else
static void fault_init(struct wal *w)
{
    w->fault = FP_NONE;
}
#define FAULT(w, p)    ((void)(w), false)
#define FAULT_AT(w, p) ((void)(w))
#endif

/* Record a failure in the status (rate-limited trace).  latch: permanent. */
static void set_failed(struct wal *w, int err, bool latch, const char *what)
{
    long long now = mono_ms();

    pthread_mutex_lock(&w->mu);
    if (!w->latched) {
        w->last_error = err;
        snprintf(w->error, sizeof(w->error), "%s: %s%s", what, ls_strerror(err),
                 latch ? " (writes refused until restart)" : "");
    }
    if (latch)
        w->latched = true;
    w->failures++;
    pthread_mutex_unlock(&w->mu);
    if (latch || now - w->last_err_log_ms >= 1000) {
        w->last_err_log_ms = now;
        TRACE_E(WAL_TRACE, "%s/%s: %s: %s%s", w->dir, WAL_LOG_NAME, what, ls_strerror(err),
                latch ? "; every later write fails until restart"
                      : "; retrying with the next batch");
    }
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);

        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? -errno : -EIO;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Append n bytes to the log; on failure cut it back to the last whole line. */
static int log_append(struct wal *w, const char *p, size_t n)
{
    int rc = 0;

    if (FAULT(w, FP_APPEND_ENOSPC) || FAULT(w, FP_APPEND_EIO)) {
        /* Like a disk that fills up half-way: a real partial write, then the error. */
        ssize_t k = write(w->logfd, p, n / 2);

        rc = w->fault == FP_APPEND_ENOSPC ? -ENOSPC : -EIO;
        (void)k;
    } else {
        rc = write_all(w->logfd, p, n);
    }
    if (rc == 0)
        return 0;
    if (ftruncate(w->logfd, (off_t)w->good_off) != 0) {
        /* A half line stays at the end: appending more would turn it into
         * corruption in the middle.  Stop; at restart it is a torn tail. */
        set_failed(w, -errno, true, "cannot cut the log back after a failed write");
        return rc;
    }
    set_failed(w, rc, false, "write");
    return rc;
}

static int log_sync(struct wal *w)
{
    if (FAULT(w, FP_FSYNC_EIO) || fdatasync(w->logfd) != 0) {
        int rc = w->fault == FP_FSYNC_EIO ? -EIO : -errno;

        set_failed(w, rc, true, "fdatasync");
        return -EIO;
    }
    return 0;
}

/* BATCH: the periodic fdatasync. */
static void batch_sync(struct wal *w)
{
    if (!w->dirty)
        return;
    if (log_sync(w) != 0) {
        w->dirty = false;
        return;
    }
    w->dirty = false;
    w->last_sync_ms = mono_ms();
    pthread_mutex_lock(&w->mu);
    w->fsyncs++;
    w->durable_id = w->written_id;
    w->unsynced = 0;
    pthread_mutex_unlock(&w->mu);
}

/* ================================================================== */
/* File side: snapshot and compaction                                   */

/* A streaming writer that keeps the running crc of what it wrote. */
struct swriter {
    int fd;
    struct buf b;
    uint32_t crc;
    int err;
};

static void sw_flush(struct swriter *s)
{
    if (s->err == 0 && s->b.len) {
        s->crc = wal_crc32c_update(s->crc, s->b.data, s->b.len);
        s->err = write_all(s->fd, s->b.data, s->b.len);
    }
    buf_reset(&s->b);
}

static void sw_room(struct swriter *s)
{
    if (s->b.len >= (1u << 20))
        sw_flush(s);
}

static int view_item_cmp(const void *a, const void *b)
{
    return strcmp((*(struct view_item *const *)a)->path, (*(struct view_item *const *)b)->path);
}

static bool view_item_trivial(const struct view_item *it)
{
    const struct labels *l = &it->labels;

    return it->version <= 1 && l->ntags == 0 && (!l->notes || !l->notes[0]) && l->star < 0 &&
           l->nmetrics == 0;
}

static int put_snapshot_item(struct buf *b, const struct view_item *it)
{
    int rc;

    if ((rc = put_cstr(b, it->path)) == 0 && (rc = buf_appends(b, ":{\"tags\":")) == 0 &&
        (rc = put_tags(b, &it->labels)) == 0 && (rc = buf_appends(b, ",\"notes\":")) == 0 &&
        (rc = put_cstr(b, it->labels.notes ? it->labels.notes : "")) == 0 &&
        (rc = buf_appends(b, ",\"star\":")) == 0 && (rc = put_star(b, it->labels.star)) == 0 &&
        (rc = buf_appendf(b, ",\"version\":%llu,\"updated_at\":", it->version)) == 0 &&
        (rc = put_cstr(b, it->updated_at)) == 0 && (rc = buf_appends(b, ",\"updated_by\":")) == 0 &&
        (rc = put_cstr(b, it->updated_by)) == 0 && (rc = buf_appends(b, ",\"metrics\":")) == 0 &&
        (rc = put_metrics(b, &it->labels)) == 0)
        rc = buf_appendc(b, '}');
    return rc;
}

/* Drop outcomes older than the retention (the list is in arrival order, not time order). */
static void view_prune_idem(struct view *v, long long now_us)
{
    struct view_idem **pp = &v->head, *prev = NULL;

    while (*pp) {
        struct view_idem *e = *pp;

        if (e->at_us < now_us - WAL_VIEW_IDEM_TTL_US) {
            *pp = e->next;
            v->nidem--;
            v->idem_bytes -= e->len;
            free(e);
            continue;
        }
        prev = e;
        pp = &e->next;
    }
    v->tail = prev;
}

/* Render the snapshot of the view into fd. */
static int snapshot_render(struct wal *w, int fd, unsigned long long last_id)
{
    struct swriter s = {fd, {NULL, 0, 0, 0}, 0, 0};
    struct view_item **items = NULL;
    size_t n = 0;
    bool first = true;
    int rc;

    buf_init(&s.b, (4u << 20) + (size_t)WAL_MAX_LINE);
    if (w->view.count && !(items = malloc(w->view.count * sizeof(*items))))
        return -ENOMEM;
    for (size_t i = 0; i < w->view.cap; i++)
        if (w->view.slot[i] && !view_item_trivial(w->view.slot[i]))
            items[n++] = w->view.slot[i];
    if (n)
        qsort(items, n, sizeof(*items), view_item_cmp);
    rc = buf_appendf(&s.b, "{\"version\":2,\"last_event_id\":%llu,\"items\":{", last_id);
    for (size_t i = 0; rc == 0 && s.err == 0 && i < n; i++) {
        if (i)
            rc = buf_appendc(&s.b, ',');
        if (rc == 0)
            rc = put_snapshot_item(&s.b, items[i]);
        sw_room(&s);
    }
    if (rc == 0)
        rc = buf_appends(&s.b, "},\"mutations\":{},\"labelsync\":{\"idempotency\":[");
    view_prune_idem(&w->view, wall_us());
    for (struct view_idem *e = w->view.head; rc == 0 && s.err == 0 && e; e = e->next) {
        if (!first)
            rc = buf_appendc(&s.b, ',');
        first = false;
        if (rc == 0)
            rc = buf_append(&s.b, e->text, e->len);
        sw_room(&s);
    }
    if (rc == 0)
        rc = buf_appendc(&s.b, ']');
    sw_flush(&s);
    if (rc == 0 && s.err == 0) {
        char tail[40];
        uint32_t crc = wal_crc32c_update(s.crc, "}}", 2);
        int k = snprintf(tail, sizeof(tail), ",\"crc\":\"%08x\"}}", crc);

        s.err = write_all(fd, tail, (size_t)k);
    }
    buf_cleanup(&s.b);
    free(items);
    return rc ? rc : s.err;
}

static int fsync_dir(struct wal *w)
{
    return fsync(w->dirfd) == 0 ? 0 : -errno;
}

/*
 * Write labels.snapshot.json from the view (last_event_id = last_id):
 *   1. render into a new temp file in the same directory, fsync it;
 *   2. rename it over labels.snapshot.json;
 *   3. fsync the directory.
 * A crash before 2 leaves the old snapshot (the temp is removed at the next
 * open); after 2 the new one; 3 makes the rename itself durable.
 */
static int snapshot_write(struct wal *w, unsigned long long last_id)
{
    char tmp[96];
    int fd, rc;

    snprintf(tmp, sizeof(tmp), ".%s.%ld.%u.tmp", WAL_SNAPSHOT_NAME, (long)getpid(), ++w->tmp_seq);
    fd = openat(w->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    rc = snapshot_render(w, fd, last_id);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0)
        FAULT_AT(w, FP_KILL_SNAPSHOT_TMP);
    if (rc == 0 && renameat(w->dirfd, tmp, w->dirfd, WAL_SNAPSHOT_NAME) != 0)
        rc = -errno;
    if (rc) {
        unlinkat(w->dirfd, tmp, 0);
        return rc;
    }
    FAULT_AT(w, FP_KILL_SNAPSHOT_RENAME);
    return fsync_dir(w);
}

/*
 * Replace the log by an empty one:
 *   1. create an empty temp file, fsync it;
 *   2. rename it over labels.log.jsonl;
 *   3. fsync the directory; from now on appends go to the new file.
 * Before 2 the old log is still in place (all its records are <= the
 * snapshot's last_event_id); after 2 the log is empty.  Once the rename is
 * done the new file is the log whatever happens: a failed directory fsync
 * then latches, since later records could sit in a file whose name is not
 * durable.
 */
static int log_rotate(struct wal *w)
{
    char tmp[96];
    int fd, rc = 0;

    snprintf(tmp, sizeof(tmp), ".%s.%ld.%u.tmp", WAL_LOG_NAME, (long)getpid(), ++w->tmp_seq);
    fd = openat(w->dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if (fsync(fd) != 0)
        rc = -errno;
    if (rc == 0)
        FAULT_AT(w, FP_KILL_LOG_ROTATE);
    if (rc == 0 && renameat(w->dirfd, tmp, w->dirfd, WAL_LOG_NAME) != 0)
        rc = -errno;
    if (rc) {
        close(fd);
        unlinkat(w->dirfd, tmp, 0);
        return rc;
    }
    close(w->logfd);
    w->logfd = fd;
    w->good_off = 0;
    w->dirty = false;
    if ((rc = fsync_dir(w)) != 0)
        set_failed(w, rc, true, "fsync of the directory after the log rotation");
    return rc;
}

/* Snapshot the view, then empty the log.  Writer thread (or close). */
static int compact(struct wal *w)
{
    unsigned long long d = w->view.max_id;
    size_t before = w->good_off;
    int rc;

    if (w->view_err)
        return w->view_err;
    if ((rc = snapshot_write(w, d)) != 0) {
        TRACE_E(WAL_TRACE, "%s/%s: snapshot failed: %s; the log keeps everything", w->dir,
                WAL_SNAPSHOT_NAME, ls_strerror(rc));
        return rc;
    }
    if ((rc = log_rotate(w)) != 0) {
        TRACE_E(WAL_TRACE, "%s/%s: log rotation failed: %s", w->dir, WAL_LOG_NAME, ls_strerror(rc));
        return rc;
    }
    pthread_mutex_lock(&w->mu);
    w->compactions++;
    w->log_bytes = 0;
    if (d > w->durable_id)
        w->durable_id = d;
    w->unsynced = 0;
    pthread_mutex_unlock(&w->mu);
    TRACE_I(WAL_TRACE, "compacted %zu bytes of log into %s (last_event_id %llu, %zu items)", before,
            WAL_SNAPSHOT_NAME, d, w->view.count);
    return 0;
}

/* ================================================================== */
/* File side: the writer thread                                         */

/* After a successful batch (waiters already woken): the view, BATCH's
 * periodic fdatasync, compaction. */
static void after_batch(struct wal *w)
{
    if (!w->view_err) {
        struct wal_replay_result res;
        int rc = wal_replay_log(w->batch.data, w->batch.len, 0, false, &view_cb, &w->view, &res);

        /* Ids of state-less events count too: a snapshot's last_event_id
         * must cover every id ever handed out. */
        if (rc == 0 && res.max_id > w->view.max_id)
            w->view.max_id = res.max_id;
        if (rc) {
            w->view_err = rc;
            TRACE_E(WAL_TRACE, "durable view incomplete (%s): compaction disabled until restart",
                    ls_strerror(rc));
        }
    }
    if (w->mode == WAL_FSYNC_BATCH && w->dirty && mono_ms() - w->last_sync_ms >= w->batch_ms)
        batch_sync(w);
    if (w->compact_bytes && w->good_off >= w->compact_bytes && !w->view_err &&
        mono_ms() >= w->next_compact_ms) {
        bool latched;

        pthread_mutex_lock(&w->mu);
        latched = w->latched;
        pthread_mutex_unlock(&w->mu);
        if (!latched && compact(w) != 0)
            w->next_compact_ms = mono_ms() + 10000; /* do not hammer a full disk */
    }
}

/* One group commit: one write, one fdatasync (ALWAYS), then the waiters. */
static void run_batch(struct wal *w, struct wal_ticket *batch, size_t n)
{
    unsigned long long maxid = 0;
    size_t start = w->good_off;
    struct wal_ticket *t, *next;
    bool latched;
    int rc = 0;

    pthread_mutex_lock(&w->mu);
    latched = w->latched;
    pthread_mutex_unlock(&w->mu);
    buf_reset(&w->batch);
    if (latched)
        rc = -EIO;
    for (t = batch; rc == 0 && t; t = t->next) {
        rc = buf_append(&w->batch, t->line, t->len);
        if (t->id > maxid)
            maxid = t->id;
    }
    if (rc == 0)
        rc = log_append(w, w->batch.data, w->batch.len);
    if (rc == 0) {
        w->good_off += w->batch.len;
        FAULT_AT(w, FP_KILL_AFTER_WRITE);
        if (w->mode == WAL_FSYNC_ALWAYS || w->mode == WAL_FSYNC_EACH) {
            if ((rc = log_sync(w)) != 0) {
                /* Best effort: make the file say what was acknowledged. */
                if (ftruncate(w->logfd, (off_t)start) == 0)
                    w->good_off = start;
            } else {
                FAULT_AT(w, FP_KILL_AFTER_FSYNC);
            }
        } else if (w->mode == WAL_FSYNC_BATCH) {
            w->dirty = true;
        }
    }
    pthread_mutex_lock(&w->mu);
    if (rc == 0) {
        if (maxid > w->written_id)
            w->written_id = maxid;
        if (w->mode == WAL_FSYNC_ALWAYS || w->mode == WAL_FSYNC_EACH) {
            w->fsyncs++;
            w->durable_id = w->written_id;
        } else if (w->mode == WAL_FSYNC_BATCH) {
            w->unsynced += n;
        }
        w->records += n;
        w->batches++;
        if (!w->latched) {
            w->last_error = 0;
            w->error[0] = '\0';
        }
    } else if (latched) {
        w->failures++;
    }
    w->log_bytes = w->good_off;
    for (t = batch; t; t = next) {
        next = t->next;
        t->result = rc;
        t->done = true;
    }
    w->inflight = 0;
    pthread_cond_broadcast(&w->done);
    pthread_mutex_unlock(&w->mu);
    if (rc == 0)
        after_batch(w);
}

static void wait_until_ms(pthread_cond_t *c, pthread_mutex_t *m, long long due_ms)
{
    struct timespec ts;

    ts.tv_sec = (time_t)(due_ms / 1000);
    ts.tv_nsec = (long)(due_ms % 1000) * 1000000;
    pthread_cond_timedwait(c, m, &ts);
}

static void *writer_main(void *arg)
{
    struct wal *w = arg;

    pthread_mutex_lock(&w->mu);
    for (;;) {
        struct wal_ticket *batch;
        size_t n;

        if (!w->qhead) {
            if (w->stopping)
                break;
            if (w->mode == WAL_FSYNC_BATCH && w->dirty) {
                long long due = w->last_sync_ms + w->batch_ms;

                if (mono_ms() >= due) {
                    pthread_mutex_unlock(&w->mu);
                    batch_sync(w);
                    pthread_mutex_lock(&w->mu);
                } else {
                    wait_until_ms(&w->wake, &w->mu, due);
                }
                continue;
            }
            pthread_cond_wait(&w->wake, &w->mu);
            continue;
        }
        if (w->fault == FP_STALL_WRITER && w->fault_hits == 0) {
            pthread_mutex_unlock(&w->mu);
            FAULT_AT(w, FP_STALL_WRITER);
            pthread_mutex_lock(&w->mu);
        }
        batch = w->qhead;
        if (w->mode == WAL_FSYNC_EACH) {
            /* Benchmark baseline: one record, one fdatasync. */
            w->qhead = batch->next;
            if (!w->qhead)
                w->qtail = NULL;
            batch->next = NULL;
            n = 1;
            w->qlen--;
            w->qbytes -= batch->len;
        } else {
            n = w->qlen;
            w->qhead = w->qtail = NULL;
            w->qlen = 0;
            w->qbytes = 0;
        }
        w->inflight = n;
        pthread_mutex_unlock(&w->mu);
        run_batch(w, batch, n);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ================================================================== */
/* File side: open                                                      */

const char *wal_fsync_name(enum wal_fsync mode)
{
    switch (mode) {
    case WAL_FSYNC_ALWAYS:
        return "always";
    case WAL_FSYNC_BATCH:
        return "batch";
    case WAL_FSYNC_NEVER:
        return "never";
    case WAL_FSYNC_EACH:
        return "each";
    default:
        return "unknown";
    }
}

int wal_fsync_parse(const char *s, enum wal_fsync *mode)
{
    static const enum wal_fsync all[] = {WAL_FSYNC_ALWAYS, WAL_FSYNC_BATCH, WAL_FSYNC_NEVER,
                                         WAL_FSYNC_EACH};

    for (size_t i = 0; s && i < sizeof(all) / sizeof(all[0]); i++) {
        if (strcmp(s, wal_fsync_name(all[i])) == 0) {
            *mode = all[i];
            return 0;
        }
    }
    return LS_EVALUE;
}

/* Both the caller's callbacks and the durable view see every record. */
struct open_ctx {
    struct wal *w;
    const struct wal_replay_cb *cb;
    void *ctx;
    size_t items, idems;
};

static int open_item_cb(void *c, const struct wal_item *r)
{
    struct open_ctx *o = c;
    int rc = o->cb && o->cb->item ? o->cb->item(o->ctx, r) : 0;

    o->items++;
    return rc ? rc : view_item_cb(&o->w->view, r);
}

static int open_idem_cb(void *c, const struct wal_idem *r)
{
    struct open_ctx *o = c;
    int rc = o->cb && o->cb->idem ? o->cb->idem(o->ctx, r) : 0;

    o->idems++;
    return rc ? rc : view_idem_cb(&o->w->view, r);
}

static const struct wal_replay_cb open_cb = {open_item_cb, open_idem_cb};

static void msgf(struct wal_open_info *info, const char *fmt, ...) LS_PRINTF(2, 3);

static void msgf(struct wal_open_info *info, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(info->message, sizeof(info->message), fmt, ap);
    va_end(ap);
}

#define MSG(...) msgf(info, __VA_ARGS__)

/* mkdir <root>/.lenslet 0700 (fsync root when created) and open it. */
static int open_dir(struct wal *w, const char *root, struct wal_open_info *info)
{
    size_t n = strlen(root) + sizeof("/" WAL_DIR_NAME);
    int rc;

    if (!(w->dir = malloc(n)))
        return -ENOMEM;
    snprintf(w->dir, n, "%s/%s", root, WAL_DIR_NAME);
    if (mkdir(w->dir, 0700) == 0) {
        int rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (rfd < 0 || fsync(rfd) != 0) {
            rc = -errno;
            if (rfd >= 0)
                close(rfd);
            MSG("%s: fsync after creating %s: %s", root, WAL_DIR_NAME, ls_strerror(rc));
            return rc;
        }
        close(rfd);
    } else if (errno != EEXIST) {
        rc = -errno;
        MSG("%s: cannot create: %s", w->dir, ls_strerror(rc));
        return rc;
    }
    w->dirfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->dirfd < 0) {
        rc = -errno;
        MSG("%s: %s", w->dir, ls_strerror(rc));
        return rc;
    }
    return 0;
}

static int take_lock(struct wal *w, struct wal_open_info *info)
{
    char pid[32];
    int n, rc;

    w->lockfd = openat(w->dirfd, WAL_LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (w->lockfd < 0) {
        rc = -errno;
        MSG("%s/%s: %s", w->dir, WAL_LOCK_NAME, ls_strerror(rc));
        return rc;
    }
    if (flock(w->lockfd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? LS_ELOCKED : -errno;
        n = (int)pread(w->lockfd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        MSG("%s/%s: %s%s%s%s", w->dir, WAL_LOCK_NAME, ls_strerror(rc), pid[0] ? " (pid " : "", pid,
            pid[0] ? ")" : "");
        return rc;
    }
    n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(w->lockfd, 0) == 0 && pwrite(w->lockfd, pid, (size_t)n, 0) != n)
        TRACE_D(WAL_TRACE, "could not write the pid into the lock file");
    return 0;
}

/* Temp files of an interrupted snapshot or rotation (ours and upstream's:
 * both are ".<name>.<something>.tmp"). */
static void remove_stale_temps(struct wal *w)
{
    DIR *d = opendir(w->dir);
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        bool ours =
            strncmp(e->d_name, "." WAL_SNAPSHOT_NAME ".", sizeof(WAL_SNAPSHOT_NAME) + 1) == 0 ||
            strncmp(e->d_name, "." WAL_LOG_NAME ".", sizeof(WAL_LOG_NAME) + 1) == 0;

        if (ours && n > 4 && strcmp(e->d_name + n - 4, ".tmp") == 0) {
            if (unlinkat(w->dirfd, e->d_name, 0) == 0)
                TRACE_I(WAL_TRACE, "%s/%s: removed a temp file left by an interrupted write",
                        w->dir, e->d_name);
        }
    }
    closedir(d);
}

static int read_fd(int fd, size_t size, char **out)
{
    char *p = malloc(size + 1);
    size_t got = 0;

    if (!p)
        return -ENOMEM;
    while (got < size) {
        ssize_t k = read(fd, p + got, size - got);

        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            int rc = k < 0 ? -errno : -EIO;

            free(p);
            return rc;
        }
        got += (size_t)k;
    }
    p[size] = '\0';
    *out = p;
    return 0;
}

static int load_snapshot(struct wal *w, struct open_ctx *oc, struct wal_open_info *info,
                         unsigned long long *last_id)
{
    char why[128], *data = NULL;
    struct stat st;
    int fd, rc;

    *last_id = 0;
    fd = openat(w->dirfd, WAL_SNAPSHOT_NAME, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return 0;
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = -errno;
        MSG("%s/%s is unreadable: %s", w->dir, WAL_SNAPSHOT_NAME, ls_strerror(rc));
        if (fd >= 0)
            close(fd);
        return LS_ECORRUPT;
    }
    if ((unsigned long long)st.st_size > WAL_MAX_SNAPSHOT) {
        close(fd);
        MSG("%s/%s is unreadable: larger than %llu bytes", w->dir, WAL_SNAPSHOT_NAME,
            (unsigned long long)WAL_MAX_SNAPSHOT);
        return LS_ECORRUPT;
    }
    rc = read_fd(fd, (size_t)st.st_size, &data);
    close(fd);
    if (rc) {
        MSG("%s/%s is unreadable: %s", w->dir, WAL_SNAPSHOT_NAME, ls_strerror(rc));
        return rc == -ENOMEM ? rc : LS_ECORRUPT;
    }
    why[0] = '\0';
    rc = wal_replay_snapshot_ex(data, (size_t)st.st_size, &open_cb, oc, last_id, why, sizeof(why));
    free(data);
    if (rc == LS_ECORRUPT)
        MSG("%s/%s is unreadable: %s", w->dir, WAL_SNAPSHOT_NAME, why);
    else if (rc)
        MSG("%s/%s: loading stopped: %s", w->dir, WAL_SNAPSHOT_NAME, ls_strerror(rc));
    else
        info->snapshot_loaded = true;
    return rc;
}

/* recover: keep a copy of the whole log before cutting it. */
static int copy_aside(struct wal *w, const char *data, size_t len, char *name, size_t namecap)
{
    long long now = wall_us() / 1000000;
    int fd = -1, rc;

    for (int i = 1; fd < 0 && i < 100; i++) {
        if (i == 1)
            snprintf(name, namecap, "%s.corrupt-%lld", WAL_LOG_NAME, now);
        else
            snprintf(name, namecap, "%s.corrupt-%lld-%d", WAL_LOG_NAME, now, i);
        fd = openat(w->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0)
        return -errno;
    rc = write_all(fd, data, len);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    close(fd);
    if (rc == 0)
        rc = fsync_dir(w);
    return rc;
}

static int load_log(struct wal *w, const struct wal_config *cfg, struct open_ctx *oc,
                    unsigned long long after, struct wal_open_info *info,
                    unsigned long long *max_id)
{
    struct wal_replay_result res;
    char *data = NULL;
    struct stat st;
    int rc;

    *max_id = 0;
    w->logfd = openat(w->dirfd, WAL_LOG_NAME, O_RDWR | O_APPEND | O_CLOEXEC);
    if (w->logfd < 0 && errno == ENOENT) {
        w->logfd =
            openat(w->dirfd, WAL_LOG_NAME, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (w->logfd >= 0 && fsync(w->dirfd) != 0) {
            rc = -errno;
            MSG("%s: fsync after creating %s: %s", w->dir, WAL_LOG_NAME, ls_strerror(rc));
            return rc;
        }
    }
    if (w->logfd < 0 || fstat(w->logfd, &st) != 0) {
        rc = -errno;
        MSG("%s/%s: %s", w->dir, WAL_LOG_NAME, ls_strerror(rc));
        return rc;
    }
    if (st.st_size > 0) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, w->logfd, 0);

        if (m == MAP_FAILED) {
            rc = -errno;
            MSG("%s/%s: mmap: %s", w->dir, WAL_LOG_NAME, ls_strerror(rc));
            return rc;
        }
        data = m;
    }
    rc = wal_replay_log(data, (size_t)st.st_size, after, cfg->recover, &open_cb, oc, &res);
    info->skipped = res.skipped;
    *max_id = res.max_id;
    if (rc == LS_ECORRUPT) {
        MSG("%s line %zu (byte offset %zu): %s; run `labelsync-wal check --root %s`, then "
            "`labelsync-wal repair` (or start with --recover)",
            WAL_LOG_NAME, res.corrupt_line, res.corrupt_offset, res.corrupt_why, cfg->root);
        TRACE_E(WAL_TRACE, "%s/%s line %zu (byte offset %zu): %s", w->dir, WAL_LOG_NAME,
                res.corrupt_line, res.corrupt_offset, res.corrupt_why);
        goto out;
    }
    if (rc) {
        MSG("%s/%s: loading stopped at a record: %s", w->dir, WAL_LOG_NAME, ls_strerror(rc));
        goto out;
    }
    if (res.first_skip_line)
        TRACE_W(WAL_TRACE, "%s/%s: %zu line(s) skipped, the first at line %zu: %s", w->dir,
                WAL_LOG_NAME, res.skipped - res.below, res.first_skip_line, res.first_skip_why);
    if (res.corrupt_line) { /* recover */
        char name[96];

        if ((rc = copy_aside(w, data, (size_t)st.st_size, name, sizeof(name))) != 0) {
            MSG("%s/%s: cannot keep a copy before recovering: %s", w->dir, WAL_LOG_NAME,
                ls_strerror(rc));
            goto out;
        }
        TRACE_W(WAL_TRACE,
                "%s/%s line %zu (byte offset %zu): %s; recover: dropped %zu line(s), %zu "
                "byte(s); the whole file was kept as %s",
                w->dir, WAL_LOG_NAME, res.corrupt_line, res.corrupt_offset, res.corrupt_why,
                res.dropped_lines, res.dropped_bytes, name);
        info->recovered = true;
        info->dropped_lines = res.dropped_lines;
        info->dropped_bytes = res.dropped_bytes;
    } else if (res.torn_tail) {
        TRACE_W(WAL_TRACE,
                "%s/%s: cut a torn tail of %zu byte(s) at line %zu (byte offset %zu): %s", w->dir,
                WAL_LOG_NAME, res.torn_bytes, res.torn_line, res.good_len, res.torn_why);
        info->torn_bytes = res.torn_bytes;
    }
    if (res.good_len < (size_t)st.st_size &&
        (ftruncate(w->logfd, (off_t)res.good_len) != 0 || fdatasync(w->logfd) != 0)) {
        rc = -errno;
        MSG("%s/%s: cannot cut the log at byte %zu: %s", w->dir, WAL_LOG_NAME, res.good_len,
            ls_strerror(rc));
        goto out;
    }
    w->good_off = res.good_len;
out:
    if (data)
        munmap(data, (size_t)st.st_size);
    return rc;
}

static void wal_free(struct wal *w)
{
    struct wal_ticket *t;

    if (!w)
        return;
    while ((t = w->qhead) != NULL) { /* only after a failed open or a misuse of close */
        w->qhead = t->next;
        free(t);
    }
    view_cleanup(&w->view);
    buf_cleanup(&w->batch);
    if (w->logfd >= 0)
        close(w->logfd);
    if (w->lockfd >= 0)
        close(w->lockfd); /* releases the flock */
    if (w->dirfd >= 0)
        close(w->dirfd);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->wake);
    pthread_cond_destroy(&w->done);
    free(w->dir);
    free(w);
}

struct wal *wal_open(const struct wal_config *cfg, const struct wal_replay_cb *cb, void *ctx,
                     struct wal_open_info *info, int *err)
{
    struct wal_open_info dummy;
    struct open_ctx oc;
    pthread_condattr_t ca;
    unsigned long long snap_id = 0, log_id = 0, last;
    struct wal *w = NULL;
    int rc;

    if (!info)
        info = &dummy;
    memset(info, 0, sizeof(*info));
    if (!cfg || !cfg->root || !cfg->root[0] ||
        (cfg->mode != WAL_FSYNC_ALWAYS && cfg->mode != WAL_FSYNC_BATCH &&
         cfg->mode != WAL_FSYNC_NEVER && cfg->mode != WAL_FSYNC_EACH)) {
        MSG("wal: bad configuration");
        rc = LS_EVALUE;
        goto fail;
    }
    if (!(w = calloc(1, sizeof(*w)))) {
        rc = -ENOMEM;
        MSG("wal: out of memory");
        goto fail;
    }
    w->dirfd = w->logfd = w->lockfd = -1;
    w->mode = cfg->mode;
    w->batch_ms = cfg->batch_ms ? cfg->batch_ms : WAL_DEFAULT_BATCH_MS;
    w->compact_bytes = cfg->compact_bytes;
    buf_init(&w->batch, (size_t)WAL_MAX_QUEUE_BYTES + WAL_MAX_LINE + 2);
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&w->done, NULL);
    fault_init(w);
    oc.w = w;
    oc.cb = cb;
    oc.ctx = ctx;
    oc.items = oc.idems = 0;
    if ((rc = open_dir(w, cfg->root, info)) != 0 || (rc = take_lock(w, info)) != 0)
        goto fail;
    remove_stale_temps(w);
    if ((rc = load_snapshot(w, &oc, info, &snap_id)) != 0 ||
        (rc = load_log(w, cfg, &oc, snap_id, info, &log_id)) != 0)
        goto fail;
    last = snap_id > log_id ? snap_id : log_id;
    if (w->view.max_id < last)
        w->view.max_id = last;
    w->last_submit_id = w->written_id = w->durable_id = last;
    w->log_bytes = w->good_off;
    w->last_sync_ms = mono_ms();
    info->last_id = last;
    info->items = oc.items;
    info->idems = oc.idems;
    if ((rc = -pthread_create(&w->thread, NULL, writer_main, w)) != 0) {
        MSG("wal: cannot start the writer thread: %s", ls_strerror(rc));
        goto fail;
    }
    w->started = true;
    MSG("%s: %s%zu record(s), %zu idempotency record(s), last event id %llu%s", w->dir,
        info->snapshot_loaded ? "snapshot + log, " : "log, ", info->items, info->idems, last,
        info->recovered    ? ", recovered (lines dropped)"
        : info->torn_bytes ? ", torn tail cut"
                           : "");
    TRACE_I(WAL_TRACE, "%s", info->message);
    if (err)
        *err = 0;
    return w;
fail:
    wal_free(w);
    if (err)
        *err = rc;
    return NULL;
}

#undef MSG

/* ================================================================== */
/* File side: submit, wait, status, close                               */

int wal_submit(struct wal *w, const char *line, size_t len, unsigned long long id,
               struct wal_ticket **t)
{
    struct scratch sc = {NULL, 0};
    struct wal_ticket *tk;
    enum rec_kind kind = REC_SKIP;
    unsigned long long rid = 0;
    char why[128];
    size_t body;
    int rc;

    *t = NULL;
    if (!w || !line)
        return LS_EVALUE;
    body = len && line[len - 1] == '\n' ? len - 1 : len;
    rc = check_line(&sc, line, body, &kind, &rid, why, sizeof(why));
    free(sc.p);
    if (rc == LS_ECORRUPT)
        TRACE_E(WAL_TRACE, "refusing to log an invalid record: %s", why);
    if (rc)
        return rc;
    if (kind == REC_ITEM || kind == REC_EVENT ? rid != id : id != 0)
        return LS_EVALUE;
    if (!(tk = malloc(sizeof(*tk) + body + 1)))
        return -ENOMEM;
    tk->next = NULL;
    tk->id = id;
    tk->len = body + 1;
    tk->result = 0;
    tk->done = false;
    memcpy(tk->line, line, body);
    tk->line[body] = '\n';
    pthread_mutex_lock(&w->mu);
    if (w->stopping)
        rc = -EPIPE;
    else if (w->latched)
        rc = -EIO;
    else if (id && id <= w->last_submit_id)
        rc = LS_EVALUE;
    else if (w->qlen >= WAL_MAX_QUEUE || w->qbytes + tk->len > WAL_MAX_QUEUE_BYTES)
        rc = LS_EFULL;
    if (rc == 0) {
        if (w->qtail)
            w->qtail->next = tk;
        else
            w->qhead = tk;
        w->qtail = tk;
        w->qlen++;
        w->qbytes += tk->len;
        if (id)
            w->last_submit_id = id;
        pthread_cond_signal(&w->wake);
    }
    pthread_mutex_unlock(&w->mu);
    if (rc) {
        free(tk);
        return rc;
    }
    *t = tk;
    return 0;
}

int wal_wait(struct wal *w, struct wal_ticket *t)
{
    int rc;

    if (!w || !t)
        return LS_EVALUE;
    pthread_mutex_lock(&w->mu);
    while (!t->done)
        pthread_cond_wait(&w->done, &w->mu);
    rc = t->result;
    pthread_mutex_unlock(&w->mu);
    free(t);
    return rc;
}

void wal_status(struct wal *w, struct wal_status *st)
{
    memset(st, 0, sizeof(*st));
    if (!w) {
        st->state = "failed";
        return;
    }
    pthread_mutex_lock(&w->mu);
    st->mode = w->mode;
    st->pending = w->qlen + w->inflight + w->unsynced;
    st->state = w->latched || w->last_error ? "failed" : st->pending ? "pending" : "saved";
    st->durable_id = w->durable_id;
    st->written_id = w->written_id;
    st->last_error = w->last_error;
    memcpy(st->error, w->error, sizeof(st->error));
    st->fsyncs = w->fsyncs;
    st->records = w->records;
    st->batches = w->batches;
    st->failures = w->failures;
    st->compactions = w->compactions;
    st->log_bytes = w->log_bytes;
    st->latched = w->latched;
    pthread_mutex_unlock(&w->mu);
}

void wal_close(struct wal *w)
{
    bool latched;

    if (!w)
        return;
    if (w->started) {
        pthread_mutex_lock(&w->mu);
        w->stopping = true;
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
    }
    /* The writer is gone: this thread owns the writer state now. */
    pthread_mutex_lock(&w->mu);
    latched = w->latched;
    pthread_mutex_unlock(&w->mu);
    if (!latched && w->logfd >= 0 && w->good_off > 0) {
        if (log_sync(w) == 0) {
            pthread_mutex_lock(&w->mu);
            w->fsyncs++;
            w->durable_id = w->written_id;
            w->unsynced = 0;
            pthread_mutex_unlock(&w->mu);
            w->dirty = false;
            if (!w->view_err)
                (void)compact(w); /* a failure is traced; the log keeps everything */
        }
    }
    wal_free(w);
}
