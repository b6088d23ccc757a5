/*
 * patch.c - PATCH/PUT bodies: strict JSON scan, validation, normalization,
 * apply, canonical serialization.  See patch.h for the contract and
 * docs/internals/patch.md for the rules and the reasons behind them.
 *
 * patch_parse works in four steps, each of which can only make things
 * stricter than the one before:
 *   1. a strict RFC 8259 scan of the raw bytes (cJSON is lenient: it takes
 *      leading zeros, raw control characters in strings, any byte <= 0x20 as
 *      whitespace) that also counts \u0000 escapes;
 *   2. cJSON builds the tree, from a copy in which every \u0000 escape is
 *      replaced by six 0xFF bytes, so a NUL cannot silently truncate a
 *      string (cJSON stops strings at NUL) and shows up as invalid UTF-8 in
 *      exactly the string that contained it;
 *   3. a validation walk over the whole tree that keeps the error of the
 *      highest precedence (type > unknown key > duplicate key > value), first
 *      in document order within a precedence, so the answer does not depend on
 *      where in the body the worse mistake sits;
 *   4. building the normalized struct patch, which can then only fail on
 *      memory or on the cross-field add/remove conflict.
 */
#include "patch.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canon.h"

/* The notes of an empty value: shared, never written, never freed. */
static char labels_empty_notes[1];

/* Six of these replace each \u0000 escape; 0xFF never occurs in UTF-8. */
#define NUL_MARK 0xFF

#define PTR_MAX   sizeof(((struct patch_error *)0)->pointer)
#define FIELD_MAX sizeof(((struct patch_error *)0)->field)
#define MSG_MAX   sizeof(((struct patch_error *)0)->message)

/* ------------------------------------------------------------------ */
/* small helpers                                                        */

static void notes_free(char *s)
{
    if (s != labels_empty_notes)
        free(s);
}

static char *memdup_str(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* A notes copy: empty notes share the static "" so copying them cannot fail. */
static int notes_dup(const char *s, char **out)
{
    if (!s || !s[0]) {
        *out = labels_empty_notes;
        return 0;
    }
    *out = strdup(s);
    return *out ? 0 : -ENOMEM;
}

static void strv_free(char **v, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int strv_copy(char *const *src, size_t n, char ***dst, size_t *dn)
{
    char **v;
    size_t i;

    *dst = NULL;
    *dn = 0;
    if (n == 0)
        return 0;
    v = calloc(n, sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (i = 0; i < n; i++) {
        v[i] = strdup(src[i]);
        if (!v[i]) {
            strv_free(v, i);
            return -ENOMEM;
        }
    }
    *dst = v;
    *dn = n;
    return 0;
}

static bool strv_equal(char *const *a, size_t na, char *const *b, size_t nb)
{
    size_t i;

    if (na != nb)
        return false;
    for (i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

static bool strv_contains(char *const *v, size_t n, const char *s)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

static void metrics_free(struct labels_metric *m, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        free(m[i].name);
    free(m);
}

static int metrics_copy(const struct labels_metric *src, size_t n, struct labels_metric **dst,
                        size_t *dn)
{
    struct labels_metric *m;
    size_t i;

    *dst = NULL;
    *dn = 0;
    if (n == 0)
        return 0;
    m = calloc(n, sizeof(*m));
    if (!m)
        return -ENOMEM;
    for (i = 0; i < n; i++) {
        m[i].name = strdup(src[i].name);
        if (!m[i].name) {
            metrics_free(m, i);
            return -ENOMEM;
        }
        m[i].value = src[i].value;
    }
    *dst = m;
    *dn = n;
    return 0;
}

static bool metrics_equal(const struct labels_metric *a, size_t na, const struct labels_metric *b,
                          size_t nb)
{
    size_t i;

    if (na != nb)
        return false;
    for (i = 0; i < na; i++)
        if (strcmp(a[i].name, b[i].name) != 0 || a[i].value != b[i].value)
            return false;
    return true;
}

static int metric_cmp(const void *a, const void *b)
{
    const struct labels_metric *x = a, *y = b;

    return strcmp(x->name, y->name); /* strcmp orders as unsigned char: bytewise */
}

static const char *notes_or_empty(const char *s)
{
    return s ? s : "";
}

/*
 * Length of the strict UTF-8 sequence at s (at most n bytes), 0 when the
 * bytes there are not one.  The lead byte gives the length; canon decides
 * whether the sequence is well-formed, so both modules agree on UTF-8.
 */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t k;

    if (s[0] < 0x80)
        k = 1;
    else if (s[0] >= 0xC2 && s[0] <= 0xDF)
        k = 2;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF)
        k = 3;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        k = 4;
    else
        return 0;
    if (k > n || !canon_utf8_valid((const char *)s, k))
        return 0;
    return k;
}

/*
 * Append s[0..n) to dst (capacity cap, current length *dlen, kept
 * NUL-terminated) as valid UTF-8: a byte that starts no valid sequence
 * becomes U+FFFD; with ptr_escape, '~' and '/' become "~0" and "~1"
 * (RFC 6901).  Stops before a piece that would not fit, so the result is
 * never cut inside a character.  Returns false when it had to stop.
 */
static bool text_append(char *dst, size_t cap, size_t *dlen, const char *s, size_t n,
                        bool ptr_escape)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    bool ok = true;

    while (i < n) {
        size_t k = utf8_seq(u + i, n - i);
        const char *piece = s + i;
        size_t plen = k;

        if (k == 0) {
            /* one U+FFFD per bad byte, but one for a whole \u0000 marker */
            piece = "\xEF\xBF\xBD";
            plen = 3;
            k = (n - i >= 6 && memcmp(s + i, "\xFF\xFF\xFF\xFF\xFF\xFF", 6) == 0) ? 6 : 1;
        } else if (ptr_escape && s[i] == '~') {
            piece = "~0";
            plen = 2;
        } else if (ptr_escape && s[i] == '/') {
            piece = "~1";
            plen = 2;
        }
        if (*dlen + plen >= cap) {
            ok = false;
            break;
        }
        memcpy(dst + *dlen, piece, plen);
        *dlen += plen;
        i += k;
    }
    dst[*dlen] = '\0';
    return ok;
}

/* Cut s at its first byte that does not start a valid UTF-8 sequence. */
static void utf8_cut(char *s)
{
    size_t n = strlen(s), i = 0;

    while (i < n) {
        size_t k = utf8_seq((const unsigned char *)s + i, n - i);

        if (k == 0)
            break;
        i += k;
    }
    s[i] = '\0';
}

static void err_clear(struct patch_error *e)
{
    e->code = NULL;
    e->pointer[0] = '\0';
    e->field[0] = '\0';
    e->expected = NULL;
    e->offset = 0;
    e->message[0] = '\0';
}

static LS_PRINTF(2, 3) void err_msg(struct patch_error *e, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(e->message, MSG_MAX, fmt, ap);
    va_end(ap);
    utf8_cut(e->message); /* vsnprintf may have cut a character in half */
}

/* Finite and without a fractional part. */
static bool num_integral(double d)
{
    double a = d < 0 ? -d : d;

    if (!isfinite(d))
        return false;
    if (a >= 4503599627370496.0) /* 2^52: every double from here on is integral */
        return true;
    return d == (double)(long long)d;
}

/* ------------------------------------------------------------------ */
/* labels                                                               */

void labels_init(struct labels *l)
{
    l->tags = NULL;
    l->ntags = 0;
    l->notes = labels_empty_notes;
    l->star = -1;
    l->metrics = NULL;
    l->nmetrics = 0;
}

void labels_cleanup(struct labels *l)
{
    if (!l)
        return;
    strv_free(l->tags, l->ntags);
    notes_free(l->notes);
    metrics_free(l->metrics, l->nmetrics);
    labels_init(l);
}

int labels_copy(struct labels *dst, const struct labels *src)
{
    labels_init(dst);
    if (strv_copy(src->tags, src->ntags, &dst->tags, &dst->ntags) != 0 ||
        notes_dup(src->notes, &dst->notes) != 0 ||
        metrics_copy(src->metrics, src->nmetrics, &dst->metrics, &dst->nmetrics) != 0)
        goto fail;
    dst->star = src->star;
    return 0;
fail:
    if (!dst->notes)
        dst->notes = labels_empty_notes;
    labels_cleanup(dst);
    return -ENOMEM;
}

bool labels_equal(const struct labels *a, const struct labels *b)
{
    return strv_equal(a->tags, a->ntags, b->tags, b->ntags) &&
           strcmp(notes_or_empty(a->notes), notes_or_empty(b->notes)) == 0 && a->star == b->star &&
           metrics_equal(a->metrics, a->nmetrics, b->metrics, b->nmetrics);
}

size_t patch_format_number(double v, char *out)
{
    int prec, n = 0;

    if (!isfinite(v)) {
        memcpy(out, "null", 5); /* precondition broken: still valid JSON */
        return 4;
    }
    if (v == 0)
        v = 0; /* -0 -> 0: equal values must print alike */
    if (v > -1e17 && v < 1e17 && v == (double)(long long)v) {
        /* integral: plain digits, never "1e+01" */
        n = snprintf(out, PATCH_NUMBER_BUF, "%lld", (long long)v);
        return (size_t)n;
    }
    for (prec = 1; prec <= 17; prec++) {
        n = snprintf(out, PATCH_NUMBER_BUF, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    return (size_t)n;
}

int labels_to_json(const struct labels *l, cJSON *obj)
{
    return labels_to_json_ex(l, obj, 0);
}

int labels_to_json_ex(const struct labels *l, cJSON *obj, unsigned flags)
{
    static const char *const names[4] = {"tags", "notes", "star", "metrics"};
    cJSON *items[4] = {NULL, NULL, NULL, NULL};
    size_t i, added = 0;
    char num[PATCH_NUMBER_BUF];

    items[0] = cJSON_CreateArray();
    items[1] = cJSON_CreateString(notes_or_empty(l->notes));
    items[2] = l->star < 0 ? cJSON_CreateNull() : cJSON_CreateNumber((double)l->star);
    items[3] = cJSON_CreateObject();
    if (!items[0] || !items[1] || !items[2] || !items[3])
        goto fail;
    for (i = 0; i < l->ntags; i++) {
        cJSON *t = cJSON_CreateString(l->tags[i]);

        if (!t || !cJSON_AddItemToArray(items[0], t)) {
            cJSON_Delete(t);
            goto fail;
        }
    }
    for (i = 0; i < l->nmetrics; i++) {
        cJSON *v;

        if (flags & LABELS_JSON_EXACT) {
            patch_format_number(l->metrics[i].value, num);
            v = cJSON_CreateRaw(num);
        } else {
            v = cJSON_CreateNumber(l->metrics[i].value);
        }
        if (!v || !cJSON_AddItemToObject(items[3], l->metrics[i].name, v)) {
            cJSON_Delete(v);
            goto fail;
        }
    }
    for (added = 0; added < 4; added++) {
        if (!cJSON_AddItemToObject(obj, names[added], items[added]))
            goto fail;
    }
    return 0;
fail:
    /* Detach what already went in so obj is exactly as the caller gave it. */
    for (i = 0; i < 4; i++) {
        if (i < added)
            cJSON_DetachItemViaPointer(obj, items[i]);
        cJSON_Delete(items[i]);
    }
    return -ENOMEM;
}

/* ------------------------------------------------------------------ */
/* step 1: strict RFC 8259 scan                                         */

struct jscan {
    const unsigned char *s;
    size_t len;
    size_t pos;       /* next byte; on failure the offset of the error */
    size_t value_end; /* end of the top-level value */
    size_t nnul;      /* \u0000 escapes seen */
    const char *why;  /* static reason on failure */
};

static int js_fail(struct jscan *js, size_t at, const char *why)
{
    js->pos = at;
    js->why = why;
    return -1;
}

static void js_ws(struct jscan *js)
{
    while (js->pos < js->len) {
        unsigned char c = js->s[js->pos];

        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        js->pos++;
    }
}

static bool js_is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Four hex digits at at; on failure *bad is the offset of the problem. */
static bool js_hex4(const struct jscan *js, size_t at, unsigned *cp, size_t *bad)
{
    size_t i;

    *cp = 0;
    for (i = 0; i < 4; i++) {
        unsigned char c;
        unsigned d;

        if (at + i >= js->len) {
            *bad = js->len;
            return false;
        }
        c = js->s[at + i];
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else {
            *bad = at + i;
            return false;
        }
        *cp = *cp << 4 | d;
    }
    return true;
}

/* A string starting at the opening quote.  Raw bytes >= 0x80 pass here: the
 * validation walk checks UTF-8 per string so the error gets a pointer. */
static int js_string(struct jscan *js)
{
    size_t p = js->pos + 1, bad;
    unsigned cp, lo;

    for (;;) {
        unsigned char c;

        if (p >= js->len)
            return js_fail(js, js->len, "unterminated string");
        c = js->s[p];
        if (c == '"') {
            js->pos = p + 1;
            return 0;
        }
        if (c < 0x20)
            return js_fail(js, p, "unescaped control character in a string");
        if (c != '\\') {
            p++;
            continue;
        }
        if (p + 1 >= js->len)
            return js_fail(js, js->len, "unterminated string");
        switch (js->s[p + 1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            p += 2;
            continue;
        case 'u':
            break;
        default:
            return js_fail(js, p + 1, "invalid escape in a string");
        }
        if (!js_hex4(js, p + 2, &cp, &bad))
            return js_fail(js, bad, "invalid \\u escape");
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return js_fail(js, p, "unpaired surrogate in a \\u escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (p + 7 >= js->len)
                return js_fail(js, js->len, "unterminated string");
            if (js->s[p + 6] != '\\' || js->s[p + 7] != 'u')
                return js_fail(js, p, "unpaired surrogate in a \\u escape");
            if (!js_hex4(js, p + 8, &lo, &bad))
                return js_fail(js, bad, "invalid \\u escape");
            if (lo < 0xDC00 || lo > 0xDFFF)
                return js_fail(js, p, "unpaired surrogate in a \\u escape");
            p += 12;
            continue;
        }
        if (cp == 0)
            js->nnul++;
        p += 6;
    }
}

static int js_number(struct jscan *js)
{
    size_t p = js->pos, start = js->pos;

    if (js->s[p] == '-')
        p++;
    if (p >= js->len)
        return js_fail(js, js->len, "unexpected end of input in a number");
    if (js->s[p] == '0') {
        p++;
    } else if (js->s[p] >= '1' && js->s[p] <= '9') {
        while (p < js->len && js_is_digit(js->s[p]))
            p++;
    } else {
        return js_fail(js, p, "invalid number");
    }
    if (p < js->len && js->s[p] == '.') {
        p++;
        if (p >= js->len || !js_is_digit(js->s[p]))
            return js_fail(js, p, "invalid number: a digit must follow '.'");
        while (p < js->len && js_is_digit(js->s[p]))
            p++;
    }
    if (p < js->len && (js->s[p] == 'e' || js->s[p] == 'E')) {
        p++;
        if (p < js->len && (js->s[p] == '+' || js->s[p] == '-'))
            p++;
        if (p >= js->len || !js_is_digit(js->s[p]))
            return js_fail(js, p, "invalid number: a digit must follow the exponent mark");
        while (p < js->len && js_is_digit(js->s[p]))
            p++;
    }
    /* cJSON silently misreads longer numbers; refuse them where we can say why. */
    if (p - start > PATCH_MAX_NUMBER_TEXT)
        return js_fail(js, start, "number longer than 63 characters");
    js->pos = p;
    return 0;
}

static int js_literal(struct jscan *js, const char *word, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (js->pos + i >= js->len)
            return js_fail(js, js->len, "unexpected end of input");
        if (js->s[js->pos + i] != (unsigned char)word[i])
            return js_fail(js, js->pos + i, "invalid literal");
    }
    js->pos += n;
    return 0;
}

static int js_value(struct jscan *js, unsigned depth);

static int js_container(struct jscan *js, unsigned depth, bool object)
{
    unsigned char close = object ? '}' : ']';

    if (depth >= PATCH_MAX_DEPTH)
        return js_fail(js, js->pos, "nesting deeper than 64 levels");
    js->pos++;
    js_ws(js);
    if (js->pos < js->len && js->s[js->pos] == close) {
        js->pos++;
        return 0;
    }
    for (;;) {
        if (object) {
            if (js->pos >= js->len)
                return js_fail(js, js->len, "unexpected end of input");
            if (js->s[js->pos] != '"')
                return js_fail(js, js->pos, "expected a string key");
            if (js_string(js))
                return -1;
            js_ws(js);
            if (js->pos >= js->len)
                return js_fail(js, js->len, "unexpected end of input");
            if (js->s[js->pos] != ':')
                return js_fail(js, js->pos, "expected ':'");
            js->pos++;
            js_ws(js);
        }
        if (js_value(js, depth + 1))
            return -1;
        js_ws(js);
        if (js->pos >= js->len)
            return js_fail(js, js->len, "unexpected end of input");
        if (js->s[js->pos] == close) {
            js->pos++;
            return 0;
        }
        if (js->s[js->pos] != ',')
            return js_fail(js, js->pos, object ? "expected ',' or '}'" : "expected ',' or ']'");
        js->pos++;
        js_ws(js);
    }
}

static int js_value(struct jscan *js, unsigned depth)
{
    unsigned char c;

    if (js->pos >= js->len)
        return js_fail(js, js->len, "unexpected end of input");
    c = js->s[js->pos];
    switch (c) {
    case '{':
        return js_container(js, depth, true);
    case '[':
        return js_container(js, depth, false);
    case '"':
        return js_string(js);
    case 't':
        return js_literal(js, "true", 4);
    case 'f':
        return js_literal(js, "false", 5);
    case 'n':
        return js_literal(js, "null", 4);
    default:
        if (c == '-' || js_is_digit(c))
            return js_number(js);
        return js_fail(js, js->pos, "unexpected character");
    }
}

static int js_scan(struct jscan *js, const char *s, size_t len)
{
    memset(js, 0, sizeof(*js));
    js->s = (const unsigned char *)s;
    js->len = len;
    js_ws(js);
    if (js_value(js, 0))
        return -1;
    js->value_end = js->pos;
    js_ws(js);
    if (js->pos != js->len)
        return js_fail(js, js->pos, "unexpected data after the JSON value");
    return 0;
}

/* Overwrite every \u0000 escape of a scanned text with NUL_MARK bytes. */
static void mark_nul_escapes(unsigned char *s, size_t len)
{
    size_t i = 0;
    bool in_string = false;

    while (i < len) {
        if (!in_string) {
            in_string = s[i] == '"';
            i++;
        } else if (s[i] == '"') {
            in_string = false;
            i++;
        } else if (s[i] == '\\') {
            if (s[i + 1] == 'u' && memcmp(s + i + 2, "0000", 4) == 0) {
                memset(s + i, NUL_MARK, 6);
                i += 6;
            } else {
                i += 2; /* the scan guaranteed the escape is complete */
            }
        } else {
            i++;
        }
    }
}

/* ------------------------------------------------------------------ */
/* step 3: the validation walk                                          */

/* Error precedence (contract §3.2 step 7 order); lower wins. */
enum { RANK_TYPE = 1, RANK_UNKNOWN, RANK_DUP, RANK_VALUE, RANK_NONE = 100 };

enum field_id {
    FLD_UNKNOWN = 0,
    FLD_BASE_VERSION,
    FLD_STAR,
    FLD_NOTES,
    FLD_SET_TAGS,
    FLD_ADD_TAGS,
    FLD_REMOVE_TAGS,
    FLD_METRICS,
    FLD_IGNORED,
};

struct field_name {
    const char *name;
    enum field_id id;
};

static const struct field_name patch_fields[] = {
    {"base_version", FLD_BASE_VERSION}, {"set_star", FLD_STAR},
    {"set_notes", FLD_NOTES},           {"set_tags", FLD_SET_TAGS},
    {"add_tags", FLD_ADD_TAGS},         {"remove_tags", FLD_REMOVE_TAGS},
    {"set_metrics", FLD_METRICS},
};

static const struct field_name put_fields[] = {
    {"tags", FLD_SET_TAGS},        {"notes", FLD_NOTES},        {"star", FLD_STAR},
    {"metrics", FLD_METRICS},      {"path", FLD_IGNORED},       {"version", FLD_IGNORED},
    {"updated_at", FLD_IGNORED},   {"updated_by", FLD_IGNORED}, {"v", FLD_IGNORED},
    {"exif", FLD_IGNORED},         {"hash", FLD_IGNORED},       {"original_position", FLD_IGNORED},
    {"table_fields", FLD_IGNORED},
};

static enum field_id field_lookup(enum patch_kind kind, const char *key)
{
    const struct field_name *t = kind == PATCH_KIND_PUT ? put_fields : patch_fields;
    size_t n = kind == PATCH_KIND_PUT ? sizeof(put_fields) / sizeof(put_fields[0])
                                      : sizeof(patch_fields) / sizeof(patch_fields[0]);
    size_t i;

    for (i = 0; i < n; i++)
        if (strcmp(t[i].name, key) == 0)
            return t[i].id;
    return FLD_UNKNOWN;
}

struct vctx {
    enum patch_kind kind;
    struct patch_error *err;
    int rank; /* precedence of the error kept so far */
    bool nomem;
    char ptr[PTR_MAX]; /* pointer of the value being looked at */
    size_t plen;
};

static size_t ptr_push_key(struct vctx *c, const char *key)
{
    size_t saved = c->plen;

    if (c->plen + 1 < PTR_MAX) {
        c->ptr[c->plen++] = '/';
        c->ptr[c->plen] = '\0';
        text_append(c->ptr, PTR_MAX, &c->plen, key, strlen(key), true);
    }
    return saved;
}

static size_t ptr_push_index(struct vctx *c, size_t i)
{
    size_t saved = c->plen;
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "/%zu", i);

    if (n > 0 && c->plen + (size_t)n < PTR_MAX) {
        memcpy(c->ptr + c->plen, tmp, (size_t)n + 1);
        c->plen += (size_t)n;
    }
    return saved;
}

static void ptr_pop(struct vctx *c, size_t saved)
{
    c->plen = saved;
    c->ptr[saved] = '\0';
}

static bool want(const struct vctx *c, int rank)
{
    return rank < c->rank;
}

/* Keep this error if it outranks the one kept so far. */
static LS_PRINTF(4, 5) void verr(struct vctx *c, int rank, const char *expected, const char *fmt,
                                 ...)
{
    static const char *const codes[] = {
        [RANK_TYPE] = "invalid_type",
        [RANK_UNKNOWN] = "unknown_field",
        [RANK_DUP] = "duplicate_field",
        [RANK_VALUE] = "invalid_value",
    };
    struct patch_error *e = c->err;
    va_list ap;

    if (!want(c, rank))
        return;
    c->rank = rank;
    err_clear(e);
    e->code = codes[rank];
    e->expected = expected;
    memcpy(e->pointer, c->ptr, c->plen + 1);
    va_start(ap, fmt);
    vsnprintf(e->message, MSG_MAX, fmt, ap);
    va_end(ap);
    utf8_cut(e->message);
}

struct keyref {
    const char *key;
    size_t idx;
};

static int keyref_cmp(const void *a, const void *b)
{
    const struct keyref *x = a, *y = b;
    int r = strcmp(x->key, y->key);

    if (r)
        return r;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/*
 * Report a key that occurs twice in obj (cJSON keeps every duplicate in the
 * child list).  Sorting makes this O(n log n) so a body with thousands of
 * keys stays cheap; the scratch array is bounded by the body size
 * (PATCH_MAX_BODY).  Reported: the duplicate whose second occurrence comes
 * first in the document.
 */
static void check_dups(struct vctx *c, const cJSON *obj)
{
    const cJSON *m;
    struct keyref *refs;
    size_t n = 0, i, best = SIZE_MAX;
    const char *best_key = NULL;

    if (!want(c, RANK_DUP))
        return;
    for (m = obj->child; m; m = m->next)
        n++;
    if (n < 2)
        return;
    refs = malloc(n * sizeof(*refs));
    if (!refs) {
        c->nomem = true;
        return;
    }
    for (i = 0, m = obj->child; m; m = m->next, i++) {
        refs[i].key = m->string;
        refs[i].idx = i;
    }
    qsort(refs, n, sizeof(*refs), keyref_cmp);
    for (i = 1; i < n; i++) {
        /* refs[i] is the second of its group when refs[i-1] is the first */
        if (strcmp(refs[i].key, refs[i - 1].key) == 0 &&
            (i == 1 || strcmp(refs[i - 1].key, refs[i - 2].key) != 0) && refs[i].idx < best) {
            best = refs[i].idx;
            best_key = refs[i].key;
        }
    }
    if (best_key) {
        size_t saved = ptr_push_key(c, best_key);

        verr(c, RANK_DUP, NULL, "the key at \"%s\" appears more than once", c->ptr);
        ptr_pop(c, saved);
    }
    free(refs);
}

static bool str_ok(const char *s)
{
    return canon_utf8_valid(s, strlen(s));
}

enum tag_verdict { TAG_OK, TAG_EMPTY, TAG_BAD_UTF8, TAG_TOO_LONG, TAG_CONTROL };

/* One tag: UTF-8 first (trimming needs it), then trim, length, control chars. */
static enum tag_verdict tag_check(const char *s, size_t *start, size_t *tlen)
{
    size_t n = strlen(s);

    if (!canon_utf8_valid(s, n))
        return TAG_BAD_UTF8;
    canon_trim(s, n, start, tlen);
    if (*tlen == 0)
        return TAG_EMPTY;
    if (*tlen > PATCH_MAX_TAG)
        return TAG_TOO_LONG;
    if (canon_has_control(s + *start, *tlen))
        return TAG_CONTROL;
    return TAG_OK;
}

static void check_tag_array(struct vctx *c, const cJSON *a, const char *name)
{
    const cJSON *e;
    size_t n = 0, i, start, tlen;

    for (e = a->child; e; e = e->next)
        n++;
    if (n > PATCH_MAX_TAGS_IN)
        verr(c, RANK_VALUE, NULL, "%s must have at most %d entries", name, PATCH_MAX_TAGS_IN);
    for (i = 0, e = a->child; e; e = e->next, i++) {
        size_t saved = ptr_push_index(c, i);

        if (!cJSON_IsString(e)) {
            verr(c, RANK_TYPE, "string", "each entry of %s must be a string (at \"%s\")", name,
                 c->ptr);
        } else {
            switch (tag_check(e->valuestring, &start, &tlen)) {
            case TAG_OK:
            case TAG_EMPTY:
                break;
            case TAG_BAD_UTF8:
                verr(c, RANK_VALUE, NULL,
                     "tag at \"%s\" must be valid UTF-8 and must not contain U+0000", c->ptr);
                break;
            case TAG_TOO_LONG:
                verr(c, RANK_VALUE, NULL, "tag at \"%s\" must be at most %d bytes after trimming",
                     c->ptr, PATCH_MAX_TAG);
                break;
            case TAG_CONTROL:
                verr(c, RANK_VALUE, NULL, "tag at \"%s\" must not contain control characters",
                     c->ptr);
                break;
            }
        }
        ptr_pop(c, saved);
    }
}

static void check_metrics(struct vctx *c, const cJSON *o, const char *name)
{
    const cJSON *m;
    size_t n = 0;

    check_dups(c, o);
    for (m = o->child; m; m = m->next)
        n++;
    if (n > PATCH_MAX_METRICS)
        verr(c, RANK_VALUE, NULL, "%s must have at most %d keys", name, PATCH_MAX_METRICS);
    for (m = o->child; m; m = m->next) {
        size_t saved = ptr_push_key(c, m->string), klen = strlen(m->string);

        if (klen == 0 || klen > PATCH_MAX_METRIC_NAME)
            verr(c, RANK_VALUE, NULL, "metric names must be 1 to %d bytes (at \"%s\")",
                 PATCH_MAX_METRIC_NAME, c->ptr);
        else if (!canon_utf8_valid(m->string, klen))
            verr(c, RANK_VALUE, NULL, "metric names must be valid UTF-8 without U+0000 (at \"%s\")",
                 c->ptr);
        else if (canon_has_control(m->string, klen))
            verr(c, RANK_VALUE, NULL,
                 "metric names must not contain control characters (at \"%s\")", c->ptr);
        if (!cJSON_IsNumber(m))
            verr(c, RANK_TYPE, "number", "metric values must be numbers (at \"%s\")", c->ptr);
        else if (!isfinite(m->valuedouble))
            verr(c, RANK_VALUE, NULL, "metric values must be finite numbers (at \"%s\")", c->ptr);
        ptr_pop(c, saved);
    }
}

/* Values of ignored PUT keys: only the rules that hold for every string. */
static void check_any(struct vctx *c, const cJSON *v)
{
    const cJSON *m;
    size_t i;

    if (cJSON_IsString(v)) {
        if (!str_ok(v->valuestring))
            verr(c, RANK_VALUE, NULL, "strings must be valid UTF-8 without U+0000 (at \"%s\")",
                 c->ptr);
    } else if (cJSON_IsArray(v)) {
        for (i = 0, m = v->child; m; m = m->next, i++) {
            size_t saved = ptr_push_index(c, i);

            check_any(c, m);
            ptr_pop(c, saved);
        }
    } else if (cJSON_IsObject(v)) {
        check_dups(c, v);
        for (m = v->child; m; m = m->next) {
            size_t saved = ptr_push_key(c, m->string);

            if (!str_ok(m->string))
                verr(c, RANK_VALUE, NULL, "keys must be valid UTF-8 without U+0000 (at \"%s\")",
                     c->ptr);
            check_any(c, m);
            ptr_pop(c, saved);
        }
    }
}

/* An integer in [lo, hi] (or null when nullable); JSON numbers count as
 * integers when their value is integral (3.0, 3e0). */
static void check_int(struct vctx *c, const cJSON *v, bool nullable, double lo, double hi,
                      const char *name, const char *expected, const char *rule)
{
    if (nullable && cJSON_IsNull(v))
        return;
    if (!cJSON_IsNumber(v) || (isfinite(v->valuedouble) && !num_integral(v->valuedouble))) {
        verr(c, RANK_TYPE, expected, "%s must be %s", name, rule);
        return;
    }
    /* an overflowed literal (1e999) is an integer, just far out of range */
    if (!(v->valuedouble >= lo && v->valuedouble <= hi))
        verr(c, RANK_VALUE, NULL, "%s must be %s", name, rule);
}

static void check_field(struct vctx *c, enum field_id id, const char *name, const cJSON *v)
{
    bool put = c->kind == PATCH_KIND_PUT;

    switch (id) {
    case FLD_BASE_VERSION:
        check_int(c, v, false, 1, (double)PATCH_MAX_VERSION, name, "integer",
                  "an integer from 1 to 9007199254740991");
        break;
    case FLD_STAR:
        check_int(c, v, true, 0, 5, name, "integer or null", "null or an integer from 0 to 5");
        break;
    case FLD_NOTES:
        if (!put && cJSON_IsNull(v))
            break;
        if (!cJSON_IsString(v)) {
            verr(c, RANK_TYPE, put ? "string" : "string or null", "%s must be a string%s", name,
                 put ? "" : " or null");
        } else if (strlen(v->valuestring) > PATCH_MAX_NOTES) {
            verr(c, RANK_VALUE, NULL, "%s must be at most %d bytes", name, PATCH_MAX_NOTES);
        } else if (!str_ok(v->valuestring)) {
            verr(c, RANK_VALUE, NULL, "%s must be valid UTF-8 and must not contain U+0000", name);
        }
        break;
    case FLD_SET_TAGS:
    case FLD_ADD_TAGS:
    case FLD_REMOVE_TAGS:
        if (id == FLD_SET_TAGS && !put && cJSON_IsNull(v))
            break;
        if (!cJSON_IsArray(v)) {
            const char *exp = (id == FLD_SET_TAGS && !put) ? "array or null" : "array";

            verr(c, RANK_TYPE, exp, "%s must be an %s of strings", name,
                 (id == FLD_SET_TAGS && !put) ? "array (or null)" : "array");
            break;
        }
        check_tag_array(c, v, name);
        break;
    case FLD_METRICS:
        if (!put && cJSON_IsNull(v))
            break;
        if (!cJSON_IsObject(v)) {
            verr(c, RANK_TYPE, put ? "object" : "object or null",
                 "%s must be an object of numbers%s", name, put ? "" : " (or null)");
            break;
        }
        check_metrics(c, v, name);
        break;
    case FLD_IGNORED:
        check_any(c, v);
        break;
    case FLD_UNKNOWN:
        break;
    }
}

static void check_body(struct vctx *c, const cJSON *root)
{
    const cJSON *m;

    check_dups(c, root);
    for (m = root->child; m; m = m->next) {
        enum field_id id = field_lookup(c->kind, m->string);
        size_t saved = ptr_push_key(c, m->string);

        if (id == FLD_UNKNOWN) {
            if (want(c, RANK_UNKNOWN)) {
                char field[FIELD_MAX];
                size_t flen = 0;

                text_append(field, FIELD_MAX, &flen, m->string, strlen(m->string), false);
                verr(c, RANK_UNKNOWN, NULL, "unknown field \"%s\"", field);
                memcpy(c->err->field, field, flen + 1);
            }
        } else {
            check_field(c, id, m->string, m);
        }
        ptr_pop(c, saved);
    }
}

/* ------------------------------------------------------------------ */
/* step 4: build the normalized patch                                   */

/* Normalized tags of a validated array (NULL or null -> none). */
static int build_tags(const cJSON *a, char ***out, size_t *nout)
{
    const cJSON *e;
    char **v = NULL;
    size_t n = 0, k = 0, start, tlen, j;

    *out = NULL;
    *nout = 0;
    if (!a || !cJSON_IsArray(a))
        return 0;
    for (e = a->child; e; e = e->next)
        n++;
    if (n == 0)
        return 0;
    v = calloc(n, sizeof(*v)); /* n <= PATCH_MAX_TAGS_IN: validated */
    if (!v)
        return -ENOMEM;
    for (e = a->child; e; e = e->next) {
        const char *s = e->valuestring;
        bool dup = false;

        if (tag_check(s, &start, &tlen) != TAG_OK)
            continue; /* only TAG_EMPTY can get here: dropped */
        for (j = 0; j < k && !dup; j++)
            dup = strlen(v[j]) == tlen && memcmp(v[j], s + start, tlen) == 0;
        if (dup)
            continue;
        v[k] = memdup_str(s + start, tlen);
        if (!v[k]) {
            strv_free(v, k);
            return -ENOMEM;
        }
        k++;
    }
    if (k == 0) {
        free(v);
        return 0;
    }
    *out = v;
    *nout = k;
    return 0;
}

static int build_metrics(const cJSON *o, struct labels_metric **out, size_t *nout)
{
    const cJSON *m;
    struct labels_metric *v;
    size_t n = 0, i = 0;

    *out = NULL;
    *nout = 0;
    if (!o || !cJSON_IsObject(o))
        return 0;
    for (m = o->child; m; m = m->next)
        n++;
    if (n == 0)
        return 0;
    v = calloc(n, sizeof(*v)); /* n <= PATCH_MAX_METRICS: validated */
    if (!v)
        return -ENOMEM;
    for (m = o->child; m; m = m->next, i++) {
        v[i].name = strdup(m->string);
        if (!v[i].name) {
            metrics_free(v, i);
            return -ENOMEM;
        }
        v[i].value = m->valuedouble;
    }
    qsort(v, n, sizeof(*v), metric_cmp);
    *out = v;
    *nout = n;
    return 0;
}

static int build_notes(const cJSON *v, char **out)
{
    return notes_dup(cJSON_IsString(v) ? v->valuestring : "", out);
}

static int build_star(const cJSON *v)
{
    return cJSON_IsNumber(v) ? (int)v->valuedouble : -1;
}

static int build_patch(enum patch_kind kind, const cJSON *root, struct patch *p,
                       struct patch_error *err)
{
    const cJSON *v;
    size_t i;

    if (kind == PATCH_KIND_PUT) {
        p->has = PATCH_F_STAR | PATCH_F_NOTES | PATCH_F_SET_TAGS | PATCH_F_METRICS;
        p->star = build_star(cJSON_GetObjectItemCaseSensitive(root, "star"));
        if (build_notes(cJSON_GetObjectItemCaseSensitive(root, "notes"), &p->notes) ||
            build_tags(cJSON_GetObjectItemCaseSensitive(root, "tags"), &p->set_tags,
                       &p->nset_tags) ||
            build_metrics(cJSON_GetObjectItemCaseSensitive(root, "metrics"), &p->metrics,
                          &p->nmetrics))
            return -ENOMEM;
        return 0;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "base_version"))) {
        p->has |= PATCH_F_BASE_VERSION;
        p->base_version = (unsigned long long)v->valuedouble;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "set_star"))) {
        p->has |= PATCH_F_STAR;
        p->star = build_star(v);
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "set_notes"))) {
        p->has |= PATCH_F_NOTES;
        if (build_notes(v, &p->notes))
            return -ENOMEM;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "set_tags"))) {
        p->has |= PATCH_F_SET_TAGS;
        if (build_tags(v, &p->set_tags, &p->nset_tags))
            return -ENOMEM;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "add_tags"))) {
        p->has |= PATCH_F_ADD_TAGS;
        if (build_tags(v, &p->add_tags, &p->nadd_tags))
            return -ENOMEM;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "remove_tags"))) {
        p->has |= PATCH_F_REMOVE_TAGS;
        if (build_tags(v, &p->remove_tags, &p->nremove_tags))
            return -ENOMEM;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "set_metrics"))) {
        p->has |= PATCH_F_METRICS;
        if (build_metrics(v, &p->metrics, &p->nmetrics))
            return -ENOMEM;
    }
    /* Cross-field rule, checked on the normalized lists: asking for a tag to
     * be both added and removed has no sensible meaning. */
    for (i = 0; i < p->nadd_tags; i++) {
        if (strv_contains(p->remove_tags, p->nremove_tags, p->add_tags[i])) {
            err_clear(err);
            err->code = "invalid_value";
            memcpy(err->pointer, "/add_tags", sizeof("/add_tags"));
            err_msg(err, "tag \"%s\" is in both add_tags and remove_tags", p->add_tags[i]);
            return LS_EVALUE;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* patch_parse                                                          */

static void patch_reset(struct patch *p)
{
    memset(p, 0, sizeof(*p));
    p->star = -1;
}

void patch_cleanup(struct patch *p)
{
    if (!p)
        return;
    notes_free(p->notes);
    strv_free(p->set_tags, p->nset_tags);
    strv_free(p->add_tags, p->nadd_tags);
    strv_free(p->remove_tags, p->nremove_tags);
    metrics_free(p->metrics, p->nmetrics);
    patch_reset(p);
}

cJSON *patch_json_parse(const char *body, size_t len, struct patch_error *err, int *rcp)
{
    struct patch_error dummy;
    struct jscan js;
    unsigned char *copy = NULL;
    const char *text = body, *end = NULL;
    cJSON *root = NULL;
    int rc = 0;

    if (!err)
        err = &dummy;
    if (len > PATCH_MAX_BODY) {
        err->code = "body_too_large";
        err_msg(err, "the body must be at most %u bytes", PATCH_MAX_BODY);
        *rcp = LS_ETOOBIG;
        return NULL;
    }
    if (!body)
        text = body = "";
    if (js_scan(&js, body, len)) {
        err->code = "invalid_json";
        err->offset = js.pos;
        err_msg(err, "invalid JSON at byte %zu: %s", js.pos, js.why);
        *rcp = LS_EPARSE;
        return NULL;
    }
    if (js.nnul) {
        copy = malloc(len); /* len <= PATCH_MAX_BODY */
        if (!copy) {
            rc = -ENOMEM;
            goto out;
        }
        memcpy(copy, body, len);
        mark_nul_escapes(copy, len);
        text = (const char *)copy;
    }
    root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        /* The strict scan accepted the text and stays inside cJSON's limits
         * (depth, number length), so cJSON can only have run out of memory. */
        rc = -ENOMEM;
        goto out;
    }
    if (end != text + js.value_end) {
        /* Cannot happen unless cJSON and the scan disagree; refuse loudly. */
        err->code = "invalid_json";
        err->offset = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        err_msg(err, "invalid JSON at byte %zu: parser disagreement", err->offset);
        rc = LS_EPARSE;
        goto out;
    }
out:
    free(copy);
    if (rc) {
        cJSON_Delete(root);
        root = NULL;
    }
    *rcp = rc;
    return root;
}

int patch_parse(enum patch_kind kind, const char *body, size_t len, struct patch *out,
                struct patch_error *err)
{
    static const int rank_rc[] = {
        [RANK_TYPE] = LS_ETYPE,
        [RANK_UNKNOWN] = LS_EUNKNOWN,
        [RANK_DUP] = LS_EDUP,
        [RANK_VALUE] = LS_EVALUE,
    };
    struct patch_error dummy;
    struct vctx c;
    cJSON *root = NULL;
    int rc = 0;

    if (!err)
        err = &dummy;
    err_clear(err);
    patch_reset(out);
    root = patch_json_parse(body, len, err, &rc);
    if (!root)
        goto out;
    if (!cJSON_IsObject(root)) {
        err->code = "invalid_type";
        err->expected = "object";
        err_msg(err, "the body must be a JSON object");
        rc = LS_ETYPE;
        goto out;
    }
    memset(&c, 0, sizeof(c));
    c.kind = kind;
    c.err = err;
    c.rank = RANK_NONE;
    check_body(&c, root);
    if (c.nomem) {
        rc = -ENOMEM;
        goto out;
    }
    if (c.rank != RANK_NONE) {
        rc = rank_rc[c.rank];
        goto out;
    }
    rc = build_patch(kind, root, out, err);
out:
    cJSON_Delete(root);
    if (rc) {
        patch_cleanup(out);
        if (rc == -ENOMEM) {
            err_clear(err);
            err->code = "internal_error";
            err_msg(err, "out of memory");
        }
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* patch_apply                                                          */

int patch_apply(const struct patch *p, const struct labels *cur, struct labels *out,
                unsigned *changed, struct patch_error *err)
{
    struct patch_error dummy;
    char *const *base = cur->tags;
    size_t nbase = cur->ntags, cap, n = 0, i;
    char **list = NULL;
    unsigned ch = 0;
    int rc = 0;

    if (!err)
        err = &dummy;
    err_clear(err);
    if (changed)
        *changed = 0;
    labels_init(out);
    if (p->has & PATCH_F_SET_TAGS) {
        base = p->set_tags;
        nbase = p->nset_tags;
    }
    /* Compute the new list as borrowed pointers first: the cap is checked
     * before anything is copied.  cap <= max(current, PATCH_MAX_TAGS_IN)
     * + PATCH_MAX_TAGS_IN. */
    cap = nbase + ((p->has & PATCH_F_ADD_TAGS) ? p->nadd_tags : 0);
    if (cap) {
        list = malloc(cap * sizeof(*list));
        if (!list) {
            rc = -ENOMEM;
            goto fail;
        }
    }
    for (i = 0; i < nbase; i++) {
        if ((p->has & PATCH_F_REMOVE_TAGS) &&
            strv_contains(p->remove_tags, p->nremove_tags, base[i]))
            continue;
        list[n++] = base[i];
    }
    if (p->has & PATCH_F_ADD_TAGS) {
        for (i = 0; i < p->nadd_tags; i++)
            if (!strv_contains(list, n, p->add_tags[i]))
                list[n++] = p->add_tags[i];
    }
    if (n > PATCH_MAX_TAGS_ITEM) {
        err->code = "too_many_tags";
        err_msg(err, "the item would have %zu tags; at most %d are allowed", n,
                PATCH_MAX_TAGS_ITEM);
        rc = LS_ETOOMANY;
        goto fail;
    }
    if (strv_copy(list, n, &out->tags, &out->ntags) ||
        notes_dup((p->has & PATCH_F_NOTES) ? p->notes : cur->notes, &out->notes)) {
        rc = -ENOMEM;
        goto fail;
    }
    out->star = (p->has & PATCH_F_STAR) ? p->star : cur->star;
    if ((p->has & PATCH_F_METRICS)
            ? metrics_copy(p->metrics, p->nmetrics, &out->metrics, &out->nmetrics)
            : metrics_copy(cur->metrics, cur->nmetrics, &out->metrics, &out->nmetrics)) {
        rc = -ENOMEM;
        goto fail;
    }
    if (!strv_equal(out->tags, out->ntags, cur->tags, cur->ntags))
        ch |= PATCH_CHANGED_TAGS;
    if (strcmp(out->notes, notes_or_empty(cur->notes)) != 0)
        ch |= PATCH_CHANGED_NOTES;
    if (out->star != cur->star)
        ch |= PATCH_CHANGED_STAR;
    if (!metrics_equal(out->metrics, out->nmetrics, cur->metrics, cur->nmetrics))
        ch |= PATCH_CHANGED_METRICS;
    free(list);
    if (changed)
        *changed = ch;
    return 0;
fail:
    free(list);
    if (!out->notes)
        out->notes = labels_empty_notes;
    labels_cleanup(out);
    if (rc == -ENOMEM) {
        err_clear(err);
        err->code = "internal_error";
        err_msg(err, "out of memory");
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* patch_serialize                                                      */

/* A JSON string: the short escapes, \u00XX for other controls, the rest raw
 * (all strings of a parsed patch are valid UTF-8). */
static int emit_str(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const char *run = s;
    int rc;

    if ((rc = buf_appendc(b, '"')))
        return rc;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
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
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
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
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        if ((rc = buf_append(b, run, (size_t)(s - run))) || (rc = buf_append(b, esc, elen)))
            return rc;
        run = s + 1;
    }
    if ((rc = buf_append(b, run, (size_t)(s - run))))
        return rc;
    return buf_appendc(b, '"');
}

static int emit_key(struct buf *b, bool *first, const char *key)
{
    int rc = 0;

    if (!*first)
        rc = buf_appendc(b, ',');
    *first = false;
    if (!rc)
        rc = emit_str(b, key);
    if (!rc)
        rc = buf_appendc(b, ':');
    return rc;
}

static int emit_strv(struct buf *b, char *const *v, size_t n)
{
    size_t i;
    int rc = buf_appendc(b, '[');

    for (i = 0; i < n && !rc; i++) {
        if (i)
            rc = buf_appendc(b, ',');
        if (!rc)
            rc = emit_str(b, v[i]);
    }
    return rc ? rc : buf_appendc(b, ']');
}

static int emit_metrics(struct buf *b, const struct labels_metric *m, size_t n)
{
    char num[PATCH_NUMBER_BUF];
    size_t i, len;
    int rc = buf_appendc(b, '{');

    for (i = 0; i < n && !rc; i++) {
        if (i)
            rc = buf_appendc(b, ',');
        if (!rc)
            rc = emit_str(b, m[i].name);
        if (!rc)
            rc = buf_appendc(b, ':');
        len = patch_format_number(m[i].value, num);
        if (!rc)
            rc = buf_append(b, num, len);
    }
    return rc ? rc : buf_appendc(b, '}');
}

static int emit_star(struct buf *b, int star)
{
    return star < 0 ? buf_appends(b, "null") : buf_appendf(b, "%d", star);
}

int patch_serialize(const struct patch *p, enum patch_kind kind, struct buf *out)
{
    struct buf b;
    bool first = true;
    int rc;

    /* Build aside and append once, so out is unchanged on failure. */
    buf_init(&b, PATCH_MAX_SERIALIZED);
    if ((rc = buf_appendc(&b, '{')))
        goto out;
    if (kind == PATCH_KIND_PUT) {
        if ((rc = emit_key(&b, &first, "tags")) ||
            (rc = emit_strv(&b, p->set_tags, p->nset_tags)) ||
            (rc = emit_key(&b, &first, "notes")) || (rc = emit_str(&b, notes_or_empty(p->notes))) ||
            (rc = emit_key(&b, &first, "star")) || (rc = emit_star(&b, p->star)) ||
            (rc = emit_key(&b, &first, "metrics")) ||
            (rc = emit_metrics(&b, p->metrics, p->nmetrics)))
            goto out;
    } else {
        if ((p->has & PATCH_F_BASE_VERSION) && ((rc = emit_key(&b, &first, "base_version")) ||
                                                (rc = buf_appendf(&b, "%llu", p->base_version))))
            goto out;
        if ((p->has & PATCH_F_STAR) &&
            ((rc = emit_key(&b, &first, "set_star")) || (rc = emit_star(&b, p->star))))
            goto out;
        if ((p->has & PATCH_F_NOTES) && ((rc = emit_key(&b, &first, "set_notes")) ||
                                         (rc = emit_str(&b, notes_or_empty(p->notes)))))
            goto out;
        if ((p->has & PATCH_F_SET_TAGS) && ((rc = emit_key(&b, &first, "set_tags")) ||
                                            (rc = emit_strv(&b, p->set_tags, p->nset_tags))))
            goto out;
        if ((p->has & PATCH_F_ADD_TAGS) && ((rc = emit_key(&b, &first, "add_tags")) ||
                                            (rc = emit_strv(&b, p->add_tags, p->nadd_tags))))
            goto out;
        if ((p->has & PATCH_F_REMOVE_TAGS) &&
            ((rc = emit_key(&b, &first, "remove_tags")) ||
             (rc = emit_strv(&b, p->remove_tags, p->nremove_tags))))
            goto out;
        if ((p->has & PATCH_F_METRICS) && ((rc = emit_key(&b, &first, "set_metrics")) ||
                                           (rc = emit_metrics(&b, p->metrics, p->nmetrics))))
            goto out;
    }
    if ((rc = buf_appendc(&b, '}')))
        goto out;
    rc = buf_append(out, b.data, b.len);
out:
    buf_cleanup(&b);
    return rc;
}

bool patch_equal(const struct patch *a, const struct patch *b)
{
    unsigned h = a->has;

    if (a->has != b->has)
        return false;
    if ((h & PATCH_F_BASE_VERSION) && a->base_version != b->base_version)
        return false;
    if ((h & PATCH_F_STAR) && a->star != b->star)
        return false;
    if ((h & PATCH_F_NOTES) && strcmp(notes_or_empty(a->notes), notes_or_empty(b->notes)) != 0)
        return false;
    if ((h & PATCH_F_SET_TAGS) && !strv_equal(a->set_tags, a->nset_tags, b->set_tags, b->nset_tags))
        return false;
    if ((h & PATCH_F_ADD_TAGS) && !strv_equal(a->add_tags, a->nadd_tags, b->add_tags, b->nadd_tags))
        return false;
    if ((h & PATCH_F_REMOVE_TAGS) &&
        !strv_equal(a->remove_tags, a->nremove_tags, b->remove_tags, b->nremove_tags))
        return false;
    if ((h & PATCH_F_METRICS) && !metrics_equal(a->metrics, a->nmetrics, b->metrics, b->nmetrics))
        return false;
    return true;
}
