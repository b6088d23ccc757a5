/*
 * report.c - JSON and JUnit XML result files; see report.h.
 */
#include "report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

#define REPORT_MAX_TEXT (1024 * 1024) /* one sanitised message */

const char *report_status_name(enum case_status s)
{
    switch (s) {
    case CASE_PASS:
        return "pass";
    case CASE_FAIL:
        return "fail";
    case CASE_SKIP:
        return "skip";
    case CASE_XFAIL:
        return "xfail";
    case CASE_XPASS:
        return "xpass";
    default:
        return "unknown";
    }
}

/* A sanitised copy of s (valid UTF-8, \n and \t kept); "" on failure. */
static const char *clean(const char *s, struct buf *b)
{
    buf_reset(b);
    if (!s || util_append_clean(b, s, strlen(s), REPORT_MAX_TEXT, 1) != 0 || !b->data)
        return "";
    return b->data;
}

static int write_all(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    int rc = 0;

    if (!f)
        return -errno;
    if (fwrite(text, 1, len, f) != len)
        rc = -EIO;
    if (fclose(f) != 0 && !rc)
        rc = -EIO;
    return rc;
}

int report_write_json(const char *path, const struct report_meta *m, const struct report_entry *e,
                      size_t n)
{
    cJSON *root = cJSON_CreateObject(), *runner, *server, *sum, *cases, *c, *spec;
    struct buf b;
    char *text = NULL;
    size_t i;
    int rc = -ENOMEM;

    buf_init(&b, REPORT_MAX_TEXT + 64);
    if (!root)
        goto out;
    runner = cJSON_AddObjectToObject(root, "runner");
    cJSON_AddStringToObject(runner, "name", "labelsync-check");
    cJSON_AddStringToObject(runner, "version", LSC_VERSION);
    cJSON_AddStringToObject(root, "run", m->run_id);
    server = cJSON_AddObjectToObject(root, "server");
    cJSON_AddStringToObject(server, "url", clean(m->url, &b));
    if (m->features)
        cJSON_AddItemToObject(server, "features", cJSON_Duplicate(m->features, 1));
    else
        cJSON_AddArrayToObject(server, "features");
    sum = cJSON_AddObjectToObject(root, "summary");
    cJSON_AddNumberToObject(sum, "total", (double)n);
    cJSON_AddNumberToObject(sum, "passed", (double)m->passed);
    cJSON_AddNumberToObject(sum, "failed", (double)m->failed);
    cJSON_AddNumberToObject(sum, "skipped", (double)m->skipped);
    cJSON_AddNumberToObject(sum, "xfail", (double)m->xfail);
    cJSON_AddNumberToObject(sum, "xpass", (double)m->xpass);
    cJSON_AddNumberToObject(sum, "duration_ms", (double)(long long)m->duration_ms);
    cases = cJSON_AddArrayToObject(root, "cases");
    for (i = 0; cases && i < n; i++) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(e[i].f->json, "spec");

        c = cJSON_CreateObject();
        if (!c)
            goto out;
        cJSON_AddItemToArray(cases, c);
        cJSON_AddStringToObject(c, "id", e[i].f->id);
        cJSON_AddStringToObject(c, "title", clean(fixture_str(e[i].f->json, "title"), &b));
        cJSON_AddStringToObject(c, "status", report_status_name(e[i].r.status));
        cJSON_AddStringToObject(c, "level", clean(fixture_str(e[i].f->json, "level"), &b));
        spec = cJSON_IsArray(sp) ? cJSON_Duplicate(sp, 1) : cJSON_CreateArray();
        if (spec && cJSON_IsString(sp))
            cJSON_AddItemToArray(spec, cJSON_CreateString(sp->valuestring));
        cJSON_AddItemToObject(c, "spec", spec);
        cJSON_AddNumberToObject(c, "duration_ms", (double)(long long)e[i].r.duration_ms);
        if (e[i].r.message)
            cJSON_AddStringToObject(c, "message", clean(e[i].r.message, &b));
        else
            cJSON_AddNullToObject(c, "message");
    }
    text = cJSON_Print(root);
    if (!text)
        goto out;
    rc = write_all(path, text, strlen(text));
out:
    free(text);
    cJSON_Delete(root);
    buf_cleanup(&b);
    return rc;
}

/*
 * Append s escaped for XML after sanitising it; in attributes (attr set)
 * newlines and tabs become character references so they survive parsing.
 */
static int xml_esc(struct buf *out, const char *s, int attr)
{
    struct buf b;
    const char *p;
    int rc = 0;

    buf_init(&b, REPORT_MAX_TEXT + 64);
    for (p = clean(s, &b); !rc && *p; p++) {
        switch (*p) {
        case '&':
            rc = buf_appends(out, "&amp;");
            break;
        case '<':
            rc = buf_appends(out, "&lt;");
            break;
        case '>':
            rc = buf_appends(out, "&gt;");
            break;
        case '"':
            rc = buf_appends(out, "&quot;");
            break;
        case '\'':
            rc = buf_appends(out, "&apos;");
            break;
        case '\n':
            rc = attr ? buf_appends(out, "&#10;") : buf_appendc(out, '\n');
            break;
        case '\t':
            rc = attr ? buf_appends(out, "&#9;") : buf_appendc(out, '\t');
            break;
        default:
            rc = buf_appendc(out, *p);
        }
    }
    buf_cleanup(&b);
    return rc;
}

static int xml_escape(struct buf *out, const char *s)
{
    return xml_esc(out, s, 1);
}

static int xml_text(struct buf *out, const char *s)
{
    return xml_esc(out, s, 0);
}

/* The first line of a message, for the failure/skipped "message" attribute. */
static const char *first_line(const char *s, struct buf *b)
{
    const char *nl;

    buf_reset(b);
    if (!s)
        return "";
    while (*s == ' ' || *s == '\n')
        s++;
    nl = strchr(s, '\n');
    if (buf_append(b, s, nl ? (size_t)(nl - s) : strlen(s)) != 0 || !b->data)
        return "";
    return b->data;
}

int report_write_junit(const char *path, const struct report_meta *m, const struct report_entry *e,
                       size_t n)
{
    struct buf x, line;
    size_t i;
    int rc;
    char stamp[32];
    time_t now = time(NULL);
    struct tm tmv;

    buf_init(&x, 256 * 1024 * 1024);
    buf_init(&line, REPORT_MAX_TEXT);
    gmtime_r(&now, &tmv);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tmv);
    rc = buf_appendf(&x,
                     "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                     "<testsuites name=\"labelsync-check\" tests=\"%zu\" failures=\"%zu\" "
                     "errors=\"0\" skipped=\"%zu\" time=\"%.3f\">\n"
                     "  <testsuite name=\"labelsync-conformance\" tests=\"%zu\" failures=\"%zu\" "
                     "errors=\"0\" skipped=\"%zu\" time=\"%.3f\" timestamp=\"%s\">\n"
                     "    <properties>\n"
                     "      <property name=\"runner.version\" value=\"" LSC_VERSION "\"/>\n"
                     "      <property name=\"run\" value=\"",
                     n, m->failed, m->skipped + m->xfail, m->duration_ms / 1000.0, n, m->failed,
                     m->skipped + m->xfail, m->duration_ms / 1000.0, stamp);
    rc = rc ? rc : xml_escape(&x, m->run_id);
    rc = rc ? rc : buf_appends(&x, "\"/>\n      <property name=\"server.url\" value=\"");
    rc = rc ? rc : xml_escape(&x, m->url);
    rc = rc ? rc : buf_appends(&x, "\"/>\n      <property name=\"server.features\" value=\"");
    if (!rc && m->features) {
        const cJSON *f;
        int first = 1;

        cJSON_ArrayForEach(f, m->features)
        {
            if (!cJSON_IsString(f))
                continue;
            rc = rc ? rc : (first ? 0 : buf_appendc(&x, ','));
            rc = rc ? rc : xml_escape(&x, f->valuestring);
            first = 0;
        }
    }
    rc = rc ? rc : buf_appends(&x, "\"/>\n    </properties>\n");
    for (i = 0; !rc && i < n; i++) {
        const char *level = fixture_str(e[i].f->json, "level");
        enum case_status s = e[i].r.status;

        rc = buf_appends(&x, "    <testcase classname=\"labelsync.");
        rc = rc ? rc : xml_escape(&x, level ? level : "case");
        rc = rc ? rc : buf_appends(&x, "\" name=\"");
        rc = rc ? rc : xml_escape(&x, e[i].f->id);
        rc = rc ? rc : buf_appendf(&x, "\" time=\"%.3f\"", e[i].r.duration_ms / 1000.0);
        if (!rc && s == CASE_PASS) {
            rc = buf_appends(&x, "/>\n");
            continue;
        }
        rc = rc ? rc : buf_appends(&x, ">\n      ");
        if (!rc && (s == CASE_FAIL || s == CASE_XPASS)) {
            rc = buf_appends(&x, "<failure type=\"");
            rc = rc ? rc
                    : buf_appends(&x, s == CASE_XPASS ? "xpass\" message=\"" : "fail\" message=\"");
            rc = rc ? rc
                    : xml_escape(&x, s == CASE_XPASS
                                         ? "unexpected pass of a case listed in --expect-fail"
                                         : first_line(e[i].r.message, &line));
            rc = rc ? rc : buf_appends(&x, "\">");
            rc = rc ? rc : xml_text(&x, e[i].r.message ? e[i].r.message : "");
            rc = rc ? rc : buf_appends(&x, "</failure>\n");
        } else if (!rc) {
            rc = buf_appends(&x, "<skipped message=\"");
            rc = rc ? rc : (s == CASE_XFAIL ? buf_appends(&x, "expected failure (XFAIL): ") : 0);
            rc = rc ? rc : xml_escape(&x, first_line(e[i].r.message, &line));
            rc = rc ? rc : buf_appends(&x, "\"/>\n");
            if (!rc && s == CASE_XFAIL && e[i].r.message) {
                rc = buf_appends(&x, "      <system-out>");
                rc = rc ? rc : xml_text(&x, e[i].r.message);
                rc = rc ? rc : buf_appends(&x, "</system-out>\n");
            }
        }
        rc = rc ? rc : buf_appends(&x, "    </testcase>\n");
    }
    rc = rc ? rc : buf_appends(&x, "  </testsuite>\n</testsuites>\n");
    rc = rc ? rc : write_all(path, x.data, x.len);
    buf_cleanup(&x);
    buf_cleanup(&line);
    return rc;
}
