/*
 * fuzz_headers.c - the request-header and query parsers of http.c
 * (http.h "Header and query parsers"; PROTOCOL §5.1, §6.1, §15.4, §2.1,
 * §12).
 *
 * Every input is given, as a header value, to each parser, and, split at
 * '&' and '=' into query parameters, to the query lookup.  Each parser is
 * checked against a reference written here from the PROTOCOL text, and its
 * results against their canonical forms:
 *   - If-Match: accepted exactly when the reference accepts, with the same
 *     number; the number written bare and in quotes parses back to itself;
 *   - If-None-Match: agrees with a reference list parser for a few versions;
 *   - Idempotency-Key: accepted exactly when R6.1-1/R6.1-2 say so, with the
 *     same key; a key parses back to itself, and quoted to itself when it
 *     has no '"' or '\';
 *   - Last-Event-ID: absent / valid / invalid exactly as the reference says;
 *   - query: found / missing / duplicate / bad exactly as a reference lookup
 *     says, with the same decoded bytes;
 *   - Origin: normalizing is idempotent and gives scheme://host:port.
 * Values are handed over in exact-size copies without a terminator, so a
 * parser reading past its length is caught.
 */
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "http.h"

#define MAX_INPUT  65536
#define MAX_PARAMS 64
#define MAX_VER    9007199254740991ULL

/* ---- references -------------------------------------------------------------- */

static void ref_trim(const char **s, size_t *n)
{
    while (*n && ((*s)[0] == ' ' || (*s)[0] == '\t'))
        (*s)++, (*n)--;
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

/* A version number: 1-16 digits, no leading zero unless "0", <= 2^53-1. */
static bool ref_version(const char *s, size_t n, unsigned long long *v)
{
    unsigned long long x = 0;

    if (n == 0 || n > 16 || (n > 1 && s[0] == '0'))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        x = x * 10 + (unsigned long long)(s[i] - '0');
    }
    if (x > MAX_VER)
        return false;
    *v = x;
    return true;
}

static bool ref_if_match(const char *s, size_t n, unsigned long long *v)
{
    ref_trim(&s, &n);
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"')
        s++, n -= 2;
    return ref_version(s, n, v);
}

static bool ref_if_none_match(const char *s, size_t n, unsigned long long version)
{
    bool hit = false;
    size_t i = 0;

    ref_trim(&s, &n);
    if (n == 0)
        return false;
    if (n == 1 && s[0] == '*')
        return true;
    for (;;) {
        size_t q;
        unsigned long long v;

        while (i < n && (s[i] == ' ' || s[i] == '\t'))
            i++;
        if (i == n)
            return hit; /* also after a trailing comma, as http.c does */
        if (i + 1 < n && s[i] == 'W' && s[i + 1] == '/')
            i += 2;
        if (i >= n || s[i] != '"')
            return false;
        for (q = i + 1; q < n && s[q] != '"'; q++)
            ;
        if (q == n)
            return false;
        if (ref_version(s + i + 1, q - i - 1, &v) && v == version)
            hit = true;
        i = q + 1;
        while (i < n && (s[i] == ' ' || s[i] == '\t'))
            i++;
        if (i == n)
            return hit;
        if (s[i] != ',')
            return false;
        i++;
    }
}

static bool visible(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7E)
            return false;
    return true;
}

/* R6.1-1, R6.1-2: the key, or false. */
static bool ref_idem_key(const char *s, size_t n, const char **key, size_t *kl)
{
    ref_trim(&s, &n);
    if (n > 0 && s[0] == '"') {
        if (n < 3 || s[n - 1] != '"')
            return false;
        s++;
        n -= 2;
        if (memchr(s, '"', n) || memchr(s, '\\', n))
            return false;
    }
    if (n == 0 || n > IDEM_MAX_KEY || !visible(s, n))
        return false;
    *key = s;
    *kl = n;
    return true;
}

static int ref_last_event_id(const char *s, size_t n, unsigned long long *v)
{
    ref_trim(&s, &n);
    if (n == 0)
        return 0;
    return ref_version(s, n, v) ? 1 : -1;
}

/* ---- checks ------------------------------------------------------------------- */

static void check_if_match(const char *s, size_t n)
{
    unsigned long long v = 0, rv = 0, v2 = 0;
    bool ok = http_parse_if_match(s, n, &v), rok = ref_if_match(s, n, &rv);
    char text[32];
    int tl;

    FUZZ_CHECK(ok == rok);
    if (!ok)
        return;
    FUZZ_CHECK(v == rv && v <= MAX_VER);
    tl = snprintf(text, sizeof(text), "%llu", v);
    FUZZ_CHECK(http_parse_if_match(text, (size_t)tl, &v2) && v2 == v);
    tl = snprintf(text, sizeof(text), " \"%llu\"\t", v);
    FUZZ_CHECK(http_parse_if_match(text, (size_t)tl, &v2) && v2 == v);
    FUZZ_CHECK(http_if_none_match_hits(text, (size_t)tl, v));
    tl = snprintf(text, sizeof(text), "W/\"%llu\"", v);
    FUZZ_CHECK(!http_parse_if_match(text, (size_t)tl, &v2));
    FUZZ_CHECK(http_if_none_match_hits(text, (size_t)tl, v));
}

static void check_if_none_match(const char *s, size_t n)
{
    unsigned long long vs[4] = {0, 1, MAX_VER, 3};
    size_t i = 0, j;

    /* Also the first number the value names, so a hit is possible. */
    while (i < n && (s[i] < '0' || s[i] > '9'))
        i++;
    for (j = i; j < n && s[j] >= '0' && s[j] <= '9'; j++)
        ;
    (void)ref_version(s + i, j - i, &vs[3]);
    for (i = 0; i < 4; i++)
        FUZZ_CHECK(http_if_none_match_hits(s, n, vs[i]) == ref_if_none_match(s, n, vs[i]));
}

static void check_idem_key(const char *s, size_t n)
{
    char out[IDEM_MAX_KEY + 1], again[IDEM_MAX_KEY + 1];
    const char *key = NULL;
    size_t kl = 0, ol;
    bool ok = http_parse_idempotency_key(s, n, out);
    bool rok = ref_idem_key(s, n, &key, &kl);
    char *copy;

    FUZZ_CHECK(ok == rok);
    if (!ok)
        return;
    ol = strlen(out);
    FUZZ_CHECK(ol == kl && memcmp(out, key, kl) == 0);
    copy = fuzz_dup(out, ol);
    FUZZ_CHECK(http_parse_idempotency_key(copy, ol, again) && strcmp(again, out) == 0);
    free(copy);
    if (!strchr(out, '"') && !strchr(out, '\\')) {
        char q[IDEM_MAX_KEY + 3];

        q[0] = '"';
        memcpy(q + 1, out, ol);
        q[ol + 1] = '"';
        copy = fuzz_dup(q, ol + 2);
        FUZZ_CHECK(http_parse_idempotency_key(copy, ol + 2, again) && strcmp(again, out) == 0);
        free(copy);
    }
}

static void check_last_event_id(const char *s, size_t n)
{
    unsigned long long v = 0, rv = 0;
    int r = http_parse_last_event_id(s, n, &v), rr = ref_last_event_id(s, n, &rv);

    FUZZ_CHECK(r == rr);
    if (r == 1)
        FUZZ_CHECK(v == rv);
}

static void check_origin(const char *s, size_t n)
{
    char out[HTTP_MAX_ORIGIN_LEN], again[HTTP_MAX_ORIGIN_LEN];
    size_t ol, i;
    char *copy;

    if (!http_normalize_origin(s, n, out, sizeof(out)))
        return;
    ol = strlen(out);
    FUZZ_CHECK(strncmp(out, "http://", 7) == 0 || strncmp(out, "https://", 8) == 0);
    FUZZ_CHECK(strrchr(out, ':') > strstr(out, "://"));
    for (i = (size_t)(strrchr(out, ':') - out) + 1; i < ol; i++)
        FUZZ_CHECK(out[i] >= '0' && out[i] <= '9');
    for (i = 0; i < ol; i++)
        FUZZ_CHECK(!(out[i] >= 'A' && out[i] <= 'Z'));
    copy = fuzz_dup(out, ol);
    FUZZ_CHECK(http_normalize_origin(copy, ol, again, sizeof(again)) && strcmp(again, out) == 0);
    free(copy);
}

/* ---- query -------------------------------------------------------------------- */

static int hexv(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Form-decode into out; false on a bad '%'. */
static bool ref_decode(const char *s, size_t n, char *out, size_t *ol)
{
    size_t i = 0, o = 0;

    while (i < n) {
        if (s[i] == '%') {
            if (n - i < 3 || hexv((unsigned char)s[i + 1]) < 0 || hexv((unsigned char)s[i + 2]) < 0)
                return false;
            out[o++] = (char)(hexv((unsigned char)s[i + 1]) * 16 + hexv((unsigned char)s[i + 2]));
            i += 3;
        } else {
            out[o++] = s[i] == '+' ? ' ' : s[i];
            i++;
        }
    }
    *ol = o;
    return true;
}

static void check_query(const char *s, size_t n)
{
    struct http_kv kv[MAX_PARAMS];
    char *names[MAX_PARAMS];
    size_t nkv = 0, pos = 0, i, hits = 0, hit = 0;
    static const char *const wanted[] = {"path", "gallery_id", "last_event_id"};

    while (pos <= n && nkv < MAX_PARAMS) {
        const char *amp = memchr(s + pos, '&', n - pos);
        size_t end = amp ? (size_t)(amp - s) : n;
        const char *eq = memchr(s + pos, '=', end - pos);
        size_t nl = eq ? (size_t)(eq - (s + pos)) : end - pos;

        /* names are C strings (the transport's); values are exact-size */
        names[nkv] = malloc(nl + 1);
        if (!names[nkv])
            abort();
        memcpy(names[nkv], s + pos, nl);
        names[nkv][nl] = '\0';
        kv[nkv].name = names[nkv];
        kv[nkv].value = eq ? fuzz_dup(eq + 1, end - nl - pos - 1) : NULL;
        kv[nkv].value_len = eq ? end - nl - pos - 1 : 0;
        nkv++;
        pos = end + 1;
    }
    for (size_t w = 0; w < sizeof(wanted) / sizeof(wanted[0]); w++) {
        char out[CANON_MAX_INPUT + 1], dn[64], *rv;
        size_t ol = 0, rl = 0, dl;
        enum canon_reason why = CANON_OK;
        int rc = http_query_param(kv, nkv, wanted[w], out, &ol, &why);

        hits = 0;
        for (i = 0; i < nkv; i++) {
            size_t kl = strlen(kv[i].name);

            if (kl >= sizeof(dn) || !ref_decode(kv[i].name, kl, dn, &dl))
                continue;
            if (dl == strlen(wanted[w]) && memcmp(dn, wanted[w], dl) == 0) {
                hits++;
                hit = i;
            }
        }
        if (hits == 0) {
            FUZZ_CHECK(rc == LS_ENOTFOUND);
            continue;
        }
        if (hits > 1) {
            FUZZ_CHECK(rc == LS_EDUP);
            continue;
        }
        if (!kv[hit].value) {
            FUZZ_CHECK(rc == 0 && ol == 0 && out[0] == '\0');
            continue;
        }
        rv = malloc(kv[hit].value_len + 1);
        if (!rv)
            abort();
        if (kv[hit].value_len > CANON_MAX_INPUT * 3) {
            FUZZ_CHECK(rc == LS_EPATH && why == CANON_TOO_LONG);
        } else if (!ref_decode(kv[hit].value, kv[hit].value_len, rv, &rl)) {
            FUZZ_CHECK(rc == LS_EPATH && why == CANON_BAD_PERCENT);
        } else if (rl > CANON_MAX_INPUT) {
            FUZZ_CHECK(rc == LS_EPATH && why == CANON_TOO_LONG);
        } else {
            FUZZ_CHECK(rc == 0 && ol == rl && out[ol] == '\0' && memcmp(out, rv, rl) == 0);
        }
        free(rv);
    }
    for (i = 0; i < nkv; i++) {
        free(names[i]);
        free((char *)(uintptr_t)kv[i].value);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;

    if (size > MAX_INPUT)
        return 0;
    check_if_match(s, size);
    check_if_none_match(s, size);
    check_idem_key(s, size);
    check_last_event_id(s, size);
    check_origin(s, size);
    check_query(s, size);
    return 0;
}
