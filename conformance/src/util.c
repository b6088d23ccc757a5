/*
 * util.c - helpers for the conformance runner; see util.h for the contracts.
 */
#include "util.h"

#include <errno.h>
#include <float.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int util_read_file(const char *path, size_t max, struct buf *out)
{
    FILE *f;
    char chunk[8192];
    size_t n;
    int rc = 0;

    buf_reset(out);
    f = fopen(path, "rb");
    if (!f)
        return -errno;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (n > max - out->len) {
            rc = LS_ETOOBIG;
            break;
        }
        rc = buf_append(out, chunk, n);
        if (rc)
            break;
    }
    if (!rc && ferror(f))
        rc = -EIO;
    fclose(f);
    return rc;
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

int util_hex_decode(const char *hex, struct buf *out)
{
    size_t len = strlen(hex), i;
    int rc;

    if (len % 2)
        return LS_EPARSE;
    for (i = 0; i < len; i += 2) {
        int hi = hexval((unsigned char)hex[i]), lo = hexval((unsigned char)hex[i + 1]);

        if (hi < 0 || lo < 0)
            return LS_EPARSE;
        rc = buf_appendc(out, (char)(hi * 16 + lo));
        if (rc)
            return rc;
    }
    return 0;
}

int util_pct_encode(struct buf *out, const void *p, size_t n, int every)
{
    static const char hexd[] = "0123456789ABCDEF";
    const unsigned char *s = p;
    size_t i;
    int rc;

    for (i = 0; i < n; i++) {
        unsigned char c = s[i];
        int plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~';

        if (plain && !every) {
            rc = buf_appendc(out, (char)c);
        } else {
            char esc[3] = {'%', hexd[c >> 4], hexd[c & 15]};

            rc = buf_append(out, esc, 3);
        }
        if (rc)
            return rc;
    }
    return 0;
}

int util_shell_quote(struct buf *out, const void *s, size_t n)
{
    const char *p = s;
    size_t i;
    int rc = buf_appendc(out, '\'');

    for (i = 0; !rc && i < n; i++) {
        if (p[i] == '\'')
            rc = buf_appends(out, "'\\''");
        else
            rc = buf_appendc(out, p[i]);
    }
    if (!rc)
        rc = buf_appendc(out, '\'');
    return rc;
}

/* Bytes that may appear unescaped inside a single-quoted printf format. */
static int printf_plain(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '\'' && c != '\\' && c != '%';
}

/* A run this long of one byte is written with head|tr instead of printf. */
#define UTIL_RUN_MIN 64

int util_shell_bytes_cmd(struct buf *out, const void *p, size_t n)
{
    const unsigned char *s = p;
    size_t i = 0;
    int rc = buf_appends(out, "{ ");
    int in_printf = 0;

    while (!rc && i < n) {
        size_t run = 1;

        while (i + run < n && s[i + run] == s[i])
            run++;
        if (run >= UTIL_RUN_MIN) {
            if (in_printf) {
                rc = buf_appends(out, "'; ");
                in_printf = 0;
            }
            if (!rc && s[i] == 0)
                rc = buf_appendf(out, "head -c %zu /dev/zero; ", run);
            else if (!rc)
                rc = buf_appendf(out, "head -c %zu /dev/zero | tr '\\000' '\\%03o'; ", run,
                                 (unsigned)s[i]);
            i += run;
            continue;
        }
        if (!in_printf) {
            rc = buf_appends(out, "printf '");
            in_printf = 1;
        }
        for (; !rc && run > 0; run--, i++) {
            if (printf_plain(s[i]))
                rc = buf_appendc(out, (char)s[i]);
            else
                rc = buf_appendf(out, "\\%03o", (unsigned)s[i]);
        }
    }
    if (!rc && in_printf)
        rc = buf_appends(out, "'; ");
    if (!rc)
        rc = buf_appends(out, "}");
    return rc;
}

size_t util_utf8_seq(const unsigned char *p, size_t n)
{
    unsigned c;
    size_t len, i;
    unsigned long cp;

    if (n == 0)
        return 0;
    c = p[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

int util_is_text(const void *p, size_t n)
{
    const unsigned char *s = p;
    size_t i = 0;

    while (i < n) {
        size_t l = util_utf8_seq(s + i, n - i);

        if (l == 0)
            return 0;
        if (l == 1 && (s[i] < 0x20 || s[i] == 0x7f) && s[i] != '\n' && s[i] != '\t' && s[i] != '\r')
            return 0;
        i += l;
    }
    return 1;
}

int util_append_clean(struct buf *out, const void *p, size_t n, size_t max, int keep_newlines)
{
    const unsigned char *s = p;
    size_t i = 0, lim = n < max ? n : max;
    int rc = 0;

    while (!rc && i < lim) {
        size_t l = util_utf8_seq(s + i, n - i);

        if (l == 1 && (s[i] < 0x20 || s[i] == 0x7f) &&
            !(keep_newlines && (s[i] == '\n' || s[i] == '\t')))
            l = 0;
        if (l == 0) {
            rc = buf_appendf(out, "\\x%02X", (unsigned)s[i]);
            i++;
        } else {
            rc = buf_append(out, s + i, l);
            i += l;
        }
    }
    if (!rc && i < n)
        rc = buf_appendf(out, "...(%zu more bytes)", n - i);
    return rc;
}

void globlist_init(struct globlist *g)
{
    g->pat = NULL;
    g->n = 0;
    g->cap = 0;
}

void globlist_cleanup(struct globlist *g)
{
    size_t i;

    if (!g)
        return;
    for (i = 0; i < g->n; i++)
        free(g->pat[i]);
    free(g->pat);
    globlist_init(g);
}

int globlist_add(struct globlist *g, const char *pattern)
{
    char *copy;

    if (g->n >= UTIL_MAX_LIST_LINES)
        return LS_ETOOMANY;
    if (g->n == g->cap) {
        size_t ncap = g->cap ? g->cap * 2 : 8;
        char **np = realloc(g->pat, ncap * sizeof(*np));

        if (!np)
            return -ENOMEM;
        g->pat = np;
        g->cap = ncap;
    }
    copy = strdup(pattern);
    if (!copy)
        return -ENOMEM;
    g->pat[g->n++] = copy;
    return 0;
}

int globlist_load(struct globlist *g, const char *path)
{
    struct buf text;
    char *line, *end;
    int rc;

    buf_init(&text, 1024 * 1024);
    rc = util_read_file(path, 1024 * 1024, &text);
    if (rc)
        goto out;
    line = text.data;
    while (line && *line) {
        char *hash, *s, *e;

        end = strchr(line, '\n');
        if (end)
            *end = '\0';
        hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        s = line;
        while (*s == ' ' || *s == '\t' || *s == '\r')
            s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
            *--e = '\0';
        if (*s) {
            rc = globlist_add(g, s);
            if (rc)
                goto out;
        }
        if (!end)
            break;
        line = end + 1;
    }
out:
    buf_cleanup(&text);
    return rc;
}

long globlist_match(const struct globlist *g, const char *s)
{
    size_t i;

    for (i = 0; i < g->n; i++)
        if (fnmatch(g->pat[i], s, 0) == 0)
            return (long)i;
    return -1;
}

double util_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void util_sleep_ms(long ms)
{
    struct timespec ts;

    if (ms <= 0)
        return;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int util_fmt_number(struct buf *out, double d)
{
    if (d != d || d > DBL_MAX || d < -DBL_MAX)
        return buf_appends(out, "null");
    /* Integers up to 2^63 print without an exponent so URLs and headers read naturally. */
    if (util_is_integral(d) && d < 9.2e18 && d > -9.2e18)
        return buf_appendf(out, "%lld", (long long)d);
    {
        /* Shortest of %.15g / %.17g that reads back as the same double (cJSON does the same). */
        char tmp[64];

        snprintf(tmp, sizeof(tmp), "%.15g", d);
        if (strtod(tmp, NULL) != d)
            snprintf(tmp, sizeof(tmp), "%.17g", d);
        return buf_appends(out, tmp);
    }
}

void util_note(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = buf_vappendf(b, fmt, ap);
    va_end(ap);
    (void)rc;
}

void util_note_n(struct buf *b, const void *p, size_t n)
{
    int rc = buf_append(b, p, n);

    (void)rc;
}

int util_is_integral(double d)
{
    /* Every double of magnitude >= 2^52 is an integer; below that a cast is exact. */
    if (d != d || d > DBL_MAX || d < -DBL_MAX)
        return 0;
    if (d >= 4503599627370496.0 || d <= -4503599627370496.0)
        return 1;
    return (double)(long long)d == d;
}
