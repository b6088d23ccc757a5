/*
 * test_sse.c - the runner's text/event-stream parser (conformance/src/sse.c)
 * against WHATWG HTML §9.2.5-9.2.6.
 *
 * Every stream is fed whole, split in two at every byte position and byte
 * by byte; each way must give the same transcript (events, comments, retry
 * values, in order, then the parser's final state), and that transcript
 * must equal the expected one.  The cap tests use a few split points only
 * (every position of a 64 KiB stream would take minutes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "sse.h"

#define TRANSCRIPT_MAX (8 * 1024 * 1024)

/* What the callbacks saw, as text. */
struct rec {
    struct buf out;
    int brief;   /* record data as its length only (cap tests) */
    int stop_at; /* return stop_rc from the stop_at-th event (1-based); 0 = never */
    int stop_rc;
    int nevents;
};

static void esc(struct buf *b, const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];

        if (c < 0x20 || c >= 0x7f || c == '\\' || c == '|')
            assert_int_equal(buf_appendf(b, "\\x%02x", c), 0);
        else
            assert_int_equal(buf_appendc(b, (char)c), 0);
    }
}

static int on_event(void *ctx, const struct sse_event *ev)
{
    struct rec *r = ctx;

    assert_non_null(ev->type);
    assert_int_equal(strlen(ev->type), ev->type_len);
    assert_int_equal(ev->data[ev->data_len], '\0');
    assert_int_equal(ev->last_id[ev->last_id_len], '\0');
    assert_int_equal(buf_appends(&r->out, "event "), 0);
    esc(&r->out, ev->type, ev->type_len);
    assert_int_equal(buf_appendf(&r->out, "|id_field=%d|last=", ev->id_field), 0);
    esc(&r->out, ev->last_id, ev->last_id_len);
    assert_int_equal(buf_appends(&r->out, "|data="), 0);
    if (r->brief)
        assert_int_equal(buf_appendf(&r->out, "(%zu bytes)", ev->data_len), 0);
    else
        esc(&r->out, ev->data, ev->data_len);
    assert_int_equal(buf_appendc(&r->out, '\n'), 0);
    r->nevents++;
    return r->stop_at && r->nevents == r->stop_at ? r->stop_rc : 0;
}

static int on_comment(void *ctx, const char *text, size_t len)
{
    struct rec *r = ctx;

    assert_int_equal(buf_appends(&r->out, "comment "), 0);
    esc(&r->out, text, len);
    assert_int_equal(buf_appendc(&r->out, '\n'), 0);
    return 0;
}

static int on_retry(void *ctx, unsigned long long ms)
{
    struct rec *r = ctx;

    assert_int_equal(buf_appendf(&r->out, "retry %llu\n", ms), 0);
    return 0;
}

enum mode { WHOLE, SPLIT, BYTES };

/*
 * Feed s[0..n) in one way and return the transcript (caller frees): the
 * callbacks' lines, then "end rc=... err=... comments=... retry=... last=...
 * discarded=..." (discarded only when no error stopped the parser, since
 * how much of a line went past a cap depends on the chunking).
 */
static char *transcript(const char *s, size_t n, enum mode mode, size_t k, int brief, int stop_at,
                        int stop_rc)
{
    struct rec r;
    struct sse_handler h;
    struct sse_parser *p;
    unsigned long long ms = 0;
    size_t i, disc, idlen;
    const char *id;
    int rc = 0, rc2;

    memset(&r, 0, sizeof(r));
    buf_init(&r.out, TRANSCRIPT_MAX);
    r.brief = brief;
    r.stop_at = stop_at;
    r.stop_rc = stop_rc;
    h.on_event = on_event;
    h.on_comment = on_comment;
    h.on_retry = on_retry;
    h.ctx = &r;
    p = sse_new(&h);
    assert_non_null(p);
    switch (mode) {
    case WHOLE:
        rc = sse_feed(p, s, n);
        break;
    case SPLIT:
        rc = sse_feed(p, s, k);
        rc2 = sse_feed(p, s + k, n - k);
        rc = rc ? rc : rc2;
        break;
    case BYTES:
        for (i = 0; i < n; i++) {
            rc2 = sse_feed(p, s + i, 1);
            rc = rc ? rc : rc2;
        }
        break;
    }
    if (rc)
        assert_int_equal(sse_feed(p, "\n\n", 2), rc); /* stopped parsers stay stopped */
    id = sse_last_event_id(p, &idlen);
    assert_int_equal(buf_appendf(&r.out, "end rc=%d err=%s comments=%zu retry=", rc,
                                 sse_error(p) ? sse_error(p) : "-", sse_comments(p)),
                     0);
    if (sse_retry(p, &ms))
        assert_int_equal(buf_appendf(&r.out, "%llu", ms), 0);
    else
        assert_int_equal(buf_appendc(&r.out, '-'), 0);
    assert_int_equal(buf_appends(&r.out, " last="), 0);
    esc(&r.out, id, idlen);
    assert_int_equal(buf_appendf(&r.out, " events=%zu", sse_events(p)), 0);
    disc = sse_finish(p);
    if (!rc)
        assert_int_equal(buf_appendf(&r.out, " discarded=%zu", disc), 0);
    assert_int_equal(buf_appendc(&r.out, '\n'), 0);
    assert_int_equal(sse_feed(p, "data: x\n\n", 9), rc ? rc : -EPIPE);
    sse_free(p);
    return buf_take(&r.out, NULL);
}

static void same(const char *want, char *got, const char *how, size_t k)
{
    int differ = strcmp(want, got) != 0;

    if (differ)
        print_error("fed %s (k=%zu):\nwant:\n%s\ngot:\n%s\n", how, k, want, got);
    free(got);
    if (differ)
        fail();
}

/* The transcript of s must be want however s is split. */
static void check_n(const char *s, size_t n, const char *want)
{
    size_t k;

    same(want, transcript(s, n, WHOLE, 0, 0, 0, 0), "whole", 0);
    same(want, transcript(s, n, BYTES, 0, 0, 0, 0), "byte by byte", 0);
    for (k = 0; k <= n; k++)
        same(want, transcript(s, n, SPLIT, k, 0, 0, 0), "split in two", k);
}

static void check(const char *s, const char *want)
{
    check_n(s, strlen(s), want);
}

/* ------------------------------------------------------------------ line ends */

static void sse_should_accept_lf_cr_and_crlf_line_ends(void **state)
{
    (void)state;
    check("data: a\rdata: b\n\rdata: c\r\n\r\n"
          "event: e\r\ndata: d\n\n",
          "event message|id_field=0|last=|data=a\\x0ab\n"
          "event message|id_field=0|last=|data=c\n"
          "event e|id_field=0|last=|data=d\n"
          "end rc=0 err=- comments=0 retry=- last= events=3 discarded=0\n");
}

static void sse_should_treat_a_split_crlf_as_one_line_end(void **state)
{
    const char *s = "data: a\r\ndata: b\r\n\r\n";
    const char *want = "event message|id_field=0|last=|data=a\\x0ab\n"
                       "end rc=0 err=- comments=0 retry=- last= events=1 discarded=0\n";

    (void)state;
    /* k = 8 ends the first chunk with the CR of the first CRLF. */
    same(want, transcript(s, strlen(s), SPLIT, 8, 0, 0, 0), "split after CR", 8);
    check(s, want);
}

static void sse_should_treat_cr_cr_as_two_line_ends(void **state)
{
    (void)state;
    check("data: a\r\rdata: b\r\r",
          "event message|id_field=0|last=|data=a\n"
          "event message|id_field=0|last=|data=b\n"
          "end rc=0 err=- comments=0 retry=- last= events=2 discarded=0\n");
}

static void sse_should_treat_lf_cr_as_two_line_ends(void **state)
{
    (void)state;
    check("data: a\n\rdata: b\n\r",
          "event message|id_field=0|last=|data=a\n"
          "event message|id_field=0|last=|data=b\n"
          "end rc=0 err=- comments=0 retry=- last= events=2 discarded=0\n");
}

/* ------------------------------------------------------------------ comments and BOM */

static void sse_should_count_and_report_comments(void **state)
{
    (void)state;
    check(": hello\n:\n:: x\r\ndata: a\n: inside an event\n\n: keepalive\n\n",
          "comment  hello\n"
          "comment \n"
          "comment : x\n"
          "comment  inside an event\n"
          "event message|id_field=0|last=|data=a\n"
          "comment  keepalive\n"
          "end rc=0 err=- comments=5 retry=- last= events=1 discarded=0\n");
}

static void sse_should_drop_one_leading_bom(void **state)
{
    (void)state;
    check("\xef\xbb\xbf"
          "data: a\n\n",
          "event message|id_field=0|last=|data=a\n"
          "end rc=0 err=- comments=0 retry=- last= events=1 discarded=0\n");
}

static void sse_should_keep_a_second_bom(void **state)
{
    (void)state;
    /* The second BOM starts the field name, which is then unknown: no data, no event. */
    check("\xef\xbb\xbf\xef\xbb\xbf"
          "data: a\n\ndata: b\n\n",
          "event message|id_field=0|last=|data=b\n"
          "end rc=0 err=- comments=0 retry=- last= events=1 discarded=0\n");
}

static void sse_should_keep_a_bom_that_is_not_leading(void **state)
{
    (void)state;
    check("data: \xef\xbb\xbf"
          "a\n\n",
          "event message|id_field=0|last=|data=\\xef\\xbb\\xbfa\n"
          "end rc=0 err=- comments=0 retry=- last= events=1 discarded=0\n");
}

static void sse_should_treat_a_partial_bom_as_text(void **state)
{
    (void)state;
    /* EF BB then 'd': not a BOM; the two bytes become U+FFFD in the (unknown) field name. */
    check("\xef\xbb"
          "data: a\n\ndata: b\n\n",
          "event message|id_field=0|last=|data=b\n"
          "end rc=0 err=- comments=0 retry=- last= events=1 discarded=0\n");
    check("\xef"
          ": c\n",
          "end rc=0 err=- comments=0 retry=- last= events=0 discarded=5\n");
}

/* ------------------------------------------------------------------ fields */

static void sse_should_join_multi_line_data_with_lf(void **state)
{
    (void)state;
    check("data: one\ndata: two\ndata:\ndata: four\n\n",
          "event message|id_field=0|last=|data=one\\x0atwo\\x0a\\x0afour\n"
          "end rc=0 err=- comments=0 retry=- last= events=1 discarded=0\n");
}

static void sse_should_drop_only_one_space_after_the_colon(void **state)
{
    (void)state;
    check("data:a\n\ndata:  b\n\ndata:\tc\n\nevent:  t\ndata: d\n\n",
          "event message|id_field=0|last=|data=a\n"
          "event message|id_field=0|last=|data= b\n"
          "event message|id_field=0|last=|data=\\x09c\n"
          "event  t|id_field=0|last=|data=d\n"
          "end rc=0 err=- comments=0 retry=- last= events=4 discarded=0\n");
}

static void sse_should_dispatch_an_empty_data_field(void **state)
{
    (void)state;
    /* "data:" appends "" + LF, so the buffer is not empty: one event with empty data. */
    check("data:\n\ndata\n\ndata:\ndata:\n\n",
          "event message|id_field=0|last=|data=\n"
          "event message|id_field=0|last=|data=\n"
          "event message|id_field=0|last=|data=\\x0a\n"
          "end rc=0 err=- comments=0 retry=- last= events=3 discarded=0\n");
}

static void sse_should_split_the_field_at_the_first_colon(void **state)
{
    (void)state;
    check("data: a:b: c\n\ndata : x\n\n",
          "event message|id_field=0|last=|data=a:b: c\n"
          "end rc=0 err=- comments=0 retry=- last= events=1 discarded=0\n");
}

static void sse_should_treat_a_field_without_colon_as_empty_value(void **state)
{
    (void)state;
    /* "event" alone sets the type to "", which dispatches as "message". */
    check("event: x\nevent\ndata: a\n\nid: 4\nid\ndata: b\n\n",
          "event message|id_field=0|last=|data=a\n"
          "event message|id_field=1|last=|data=b\n"
          "end rc=0 err=- comments=0 retry=- last= events=2 discarded=0\n");
}

static void sse_should_ignore_unknown_fields(void **state)
{
    (void)state;
    check("foo: bar\nDATA: x\nData: y\ndata: a\nEvent: z\n\n",
          "event message|id_field=0|last=|data=a\n"
          "end rc=0 err=- comments=0 retry=- last= events=1 discarded=0\n");
}

static void sse_should_default_the_type_to_message_and_reset_it(void **state)
{
    (void)state;
    check("event: item-updated\ndata: 1\n\ndata: 2\n\nevent: a\nevent: b\ndata: 3\n\n",
          "event item-updated|id_field=0|last=|data=1\n"
          "event message|id_field=0|last=|data=2\n"
          "event b|id_field=0|last=|data=3\n"
          "end rc=0 err=- comments=0 retry=- last= events=3 discarded=0\n");
}

static void sse_should_accept_retry_only_with_ascii_digits(void **state)
{
    (void)state;
    check("retry: 1500\n\nretry: 15x\nretry: -1\nretry:\nretry: 1 \nretry:  100\n"
          "retry: +5\nretry: 0x10\nretry: 0\nretry: 007\nretry: 99999999999999999999\n\n",
          "retry 1500\n"
          "retry 0\n"
          "retry 7\n"
          "retry 999999999999\n"
          "end rc=0 err=- comments=0 retry=999999999999 last= events=0 discarded=0\n");
    check("retry: 2000\n\nretry: abc\n\n",
          "retry 2000\n"
          "end rc=0 err=- comments=0 retry=2000 last= events=0 discarded=0\n");
}

static void sse_should_ignore_an_id_containing_nul(void **state)
{
    static const char s[] = "id: 5\ndata: a\n\nid: 6\0x\ndata: b\n\nid: \0\ndata: c\n\n";

    (void)state;
    check_n(s, sizeof(s) - 1,
            "event message|id_field=1|last=5|data=a\n"
            "event message|id_field=0|last=5|data=b\n"
            "event message|id_field=0|last=5|data=c\n"
            "end rc=0 err=- comments=0 retry=- last=5 events=3 discarded=0\n");
}

static void sse_should_reset_the_id_when_empty(void **state)
{
    (void)state;
    check("id: 5\ndata: a\n\nid:\ndata: b\n\nid: 7\ndata: c\n\nid\ndata: d\n\n",
          "event message|id_field=1|last=5|data=a\n"
          "event message|id_field=1|last=|data=b\n"
          "event message|id_field=1|last=7|data=c\n"
          "event message|id_field=1|last=|data=d\n"
          "end rc=0 err=- comments=0 retry=- last= events=4 discarded=0\n");
}

static void sse_should_keep_the_id_across_events(void **state)
{
    (void)state;
    check("id: 3\ndata: a\n\ndata: b\n\nevent: x\ndata: c\n\nid: 4\ndata: d\n\n",
          "event message|id_field=1|last=3|data=a\n"
          "event message|id_field=0|last=3|data=b\n"
          "event x|id_field=0|last=3|data=c\n"
          "event message|id_field=1|last=4|data=d\n"
          "end rc=0 err=- comments=0 retry=- last=4 events=4 discarded=0\n");
}

static void sse_should_take_the_last_id_field_of_an_event(void **state)
{
    (void)state;
    check("id: 1\nid: 2\ndata: a\nid: 3\n\n",
          "event message|id_field=1|last=3|data=a\n"
          "end rc=0 err=- comments=0 retry=- last=3 events=1 discarded=0\n");
}

static void sse_should_not_dispatch_an_event_without_data(void **state)
{
    (void)state;
    /* No event, but the id still becomes the last event ID, and the type is reset. */
    check("id: 9\nevent: ping\n\ndata: a\n\n",
          "event message|id_field=0|last=9|data=a\n"
          "end rc=0 err=- comments=0 retry=- last=9 events=1 discarded=0\n");
    check("id: 9\nevent: ping\n\n",
          "end rc=0 err=- comments=0 retry=- last=9 events=0 discarded=0\n");
}

static void sse_should_discard_an_unterminated_final_event(void **state)
{
    (void)state;
    check("data: a\n\nid: 5\ndata: b\n",
          "event message|id_field=0|last=|data=a\n"
          "end rc=0 err=- comments=0 retry=- last= events=1 discarded=14\n");
    check("data: a\n\ndata: b", "event message|id_field=0|last=|data=a\n"
                                "end rc=0 err=- comments=0 retry=- last= events=1 discarded=7\n");
    check("data: a\r\n\r\ndata: b\r\n",
          "event message|id_field=0|last=|data=a\n"
          "end rc=0 err=- comments=0 retry=- last= events=1 discarded=9\n");
}

static void sse_should_replace_invalid_utf8(void **state)
{
    (void)state;
    /* é stays; E0 80 is two bad subparts; F0 90 80 then 'A' is one; FF is one; a truncated
     * E2 82 at the end of the value is one. */
    check("data: \xc3\xa9|\xe0\x80|\xf0\x90\x80"
          "A|\xff|\xe2\x82\n\n",
          "event message|id_field=0|last=|data=\\xc3\\xa9\\x7c\\xef\\xbf\\xbd\\xef\\xbf\\xbd"
          "\\x7c\\xef\\xbf\\xbdA\\x7c\\xef\\xbf\\xbd\\x7c\\xef\\xbf\\xbd\n"
          "end rc=0 err=- comments=0 retry=- last= events=1 discarded=0\n");
    /* Surrogates (ED A0 80: three bad subparts) and code points past U+10FFFF (F4 90 80 80:
     * four) are invalid too; U+10FFFF itself is fine. */
    check(
        "id: \xed\xa0\x80\xf4\x90\x80\x80\ndata: \xf4\x8f\xbf\xbf\n\n",
        "event message|id_field=1|last=\\xef\\xbf\\xbd\\xef\\xbf\\xbd\\xef\\xbf\\xbd\\xef\\xbf\\xbd"
        "\\xef\\xbf\\xbd\\xef\\xbf\\xbd\\xef\\xbf\\xbd|data=\\xf4\\x8f\\xbf\\xbf\n"
        "end rc=0 err=- comments=0 retry=- "
        "last=\\xef\\xbf\\xbd\\xef\\xbf\\xbd\\xef\\xbf\\xbd\\xef\\xbf\\xbd"
        "\\xef\\xbf\\xbd\\xef\\xbf\\xbd\\xef\\xbf\\xbd events=1 discarded=0\n");
}

static void sse_should_parse_a_typical_server_stream(void **state)
{
    (void)state;
    check("retry: 2000\n\n"
          "id: 1\nevent: item-updated\ndata: {\"path\":\"/a.png\",\"version\":2}\n\n"
          ": keepalive\n\n"
          "id: 2\nevent: presence\ndata: {\"gallery_id\":\"/\",\"viewing\":1,\"editing\":0}\n\n",
          "retry 2000\n"
          "event item-updated|id_field=1|last=1|data={\"path\":\"/a.png\",\"version\":2}\n"
          "comment  keepalive\n"
          "event presence|id_field=1|last=2|data={\"gallery_id\":\"/\",\"viewing\":1,"
          "\"editing\":0}\n"
          "end rc=0 err=- comments=1 retry=2000 last=2 events=2 discarded=0\n");
}

static void sse_should_accept_an_empty_stream(void **state)
{
    (void)state;
    check("", "end rc=0 err=- comments=0 retry=- last= events=0 discarded=0\n");
    check("\n\n\r\n", "end rc=0 err=- comments=0 retry=- last= events=0 discarded=0\n");
}

/* ------------------------------------------------------------------ callbacks and caps */

static void sse_should_stop_when_a_callback_returns_nonzero(void **state)
{
    const char *s = "data: a\n\ndata: b\n\n";
    char *got;

    (void)state;
    got = transcript(s, strlen(s), WHOLE, 0, 0, 1, 42);
    assert_string_equal(got, "event message|id_field=0|last=|data=a\n"
                             "end rc=42 err=- comments=0 retry=- last= events=1\n");
    free(got);
    got = transcript(s, strlen(s), BYTES, 0, 0, 1, 42);
    assert_string_equal(got, "event message|id_field=0|last=|data=a\n"
                             "end rc=42 err=- comments=0 retry=- last= events=1\n");
    free(got);
}

/* "data: " + fill * x + "\n\n" in a fresh allocation; *n gets the length. */
static char *data_line(size_t fill, size_t *n)
{
    char *s = malloc(fill + 8);

    assert_non_null(s);
    memcpy(s, "data: ", 6);
    memset(s + 6, 'x', fill);
    memcpy(s + 6 + fill, "\n\n", 2);
    *n = fill + 8;
    return s;
}

static void check_some_splits(const char *s, size_t n, const char *want)
{
    static const size_t ks[] = {
        0, 1, 5, 6, 7, 4096, SSE_MAX_LINE - 1, SSE_MAX_LINE, SSE_MAX_LINE + 1};
    size_t i;

    same(want, transcript(s, n, WHOLE, 0, 1, 0, 0), "whole", 0);
    same(want, transcript(s, n, BYTES, 0, 1, 0, 0), "byte by byte", 0);
    for (i = 0; i < sizeof(ks) / sizeof(ks[0]); i++)
        if (ks[i] <= n)
            same(want, transcript(s, n, SPLIT, ks[i], 1, 0, 0), "split in two", ks[i]);
}

static void sse_should_accept_a_line_at_the_cap(void **state)
{
    size_t n;
    char *s = data_line(SSE_MAX_LINE - 6, &n), want[256];

    (void)state;
    snprintf(want, sizeof(want),
             "event message|id_field=0|last=|data=(%d bytes)\n"
             "end rc=0 err=- comments=0 retry=- last= events=1 discarded=0\n",
             SSE_MAX_LINE - 6);
    check_some_splits(s, n, want);
    free(s);
}

static void sse_should_report_a_line_over_the_cap(void **state)
{
    size_t n;
    char *s = data_line(SSE_MAX_LINE - 5, &n), want[256];

    (void)state;
    snprintf(want, sizeof(want),
             "end rc=%d err=line longer than SSE_MAX_LINE bytes comments=0 retry=- last= "
             "events=0\n",
             LS_ETOOBIG);
    check_some_splits(s, n, want);
    free(s);
    /* A comment line counts against the same cap. */
    s = data_line(SSE_MAX_LINE, &n);
    s[0] = ':';
    check_some_splits(s, n, want);
    free(s);
}

/* k data lines of 1023 'x' (each adds 1024 bytes to the data buffer), then extra, then "\n". */
static char *data_lines(size_t k, const char *extra, size_t *n)
{
    size_t unit = 6 + 1023 + 1, i, el = strlen(extra);
    char *s = malloc(k * unit + el + 2), *p = s;

    assert_non_null(s);
    for (i = 0; i < k; i++) {
        memcpy(p, "data: ", 6);
        memset(p + 6, 'x', 1023);
        p[unit - 1] = '\n';
        p += unit;
    }
    memcpy(p, extra, el);
    p[el] = '\n';
    *n = k * unit + el + 1;
    return s;
}

static void sse_should_accept_data_at_the_cap(void **state)
{
    size_t n, k = SSE_MAX_DATA / 1024;
    char *s = data_lines(k, "", &n), want[256];

    (void)state;
    snprintf(want, sizeof(want),
             "event message|id_field=0|last=|data=(%d bytes)\n"
             "end rc=0 err=- comments=0 retry=- last= events=1 discarded=0\n",
             SSE_MAX_DATA - 1);
    same(want, transcript(s, n, WHOLE, 0, 1, 0, 0), "whole", 0);
    same(want, transcript(s, n, BYTES, 0, 1, 0, 0), "byte by byte", 0);
    same(want, transcript(s, n, SPLIT, n / 2, 1, 0, 0), "split in two", n / 2);
    free(s);
}

static void sse_should_report_data_over_the_cap(void **state)
{
    size_t n, k = SSE_MAX_DATA / 1024;
    char *s = data_lines(k, "data:", &n), want[256];

    (void)state;
    snprintf(want, sizeof(want),
             "end rc=%d err=event data longer than SSE_MAX_DATA bytes comments=0 retry=- "
             "last= events=0\n",
             LS_ETOOBIG);
    same(want, transcript(s, n, WHOLE, 0, 1, 0, 0), "whole", 0);
    same(want, transcript(s, n, BYTES, 0, 1, 0, 0), "byte by byte", 0);
    same(want, transcript(s, n, SPLIT, n - 3, 1, 0, 0), "split in two", n - 3);
    free(s);
}

static void sse_should_reuse_buffers_between_events(void **state)
{
    struct rec r;
    struct sse_handler h = {on_event, NULL, NULL, NULL};
    struct sse_parser *p;
    int i;

    (void)state;
    memset(&r, 0, sizeof(r));
    buf_init(&r.out, TRANSCRIPT_MAX);
    r.brief = 1;
    h.ctx = &r;
    p = sse_new(&h);
    assert_non_null(p);
    /* Far more event bytes in total than any cap: only the per-event size is bounded. */
    for (i = 0; i < 3000; i++) {
        size_t n;
        char *s = data_line(1000, &n);

        assert_int_equal(sse_feed(p, s, n), 0);
        free(s);
        buf_reset(&r.out);
    }
    assert_int_equal(sse_events(p), 3000);
    assert_int_equal(sse_finish(p), 0);
    sse_free(p);
    sse_free(NULL);
    buf_cleanup(&r.out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sse_should_accept_lf_cr_and_crlf_line_ends),
        cmocka_unit_test(sse_should_treat_a_split_crlf_as_one_line_end),
        cmocka_unit_test(sse_should_treat_cr_cr_as_two_line_ends),
        cmocka_unit_test(sse_should_treat_lf_cr_as_two_line_ends),
        cmocka_unit_test(sse_should_count_and_report_comments),
        cmocka_unit_test(sse_should_drop_one_leading_bom),
        cmocka_unit_test(sse_should_keep_a_second_bom),
        cmocka_unit_test(sse_should_keep_a_bom_that_is_not_leading),
        cmocka_unit_test(sse_should_treat_a_partial_bom_as_text),
        cmocka_unit_test(sse_should_join_multi_line_data_with_lf),
        cmocka_unit_test(sse_should_drop_only_one_space_after_the_colon),
        cmocka_unit_test(sse_should_dispatch_an_empty_data_field),
        cmocka_unit_test(sse_should_split_the_field_at_the_first_colon),
        cmocka_unit_test(sse_should_treat_a_field_without_colon_as_empty_value),
        cmocka_unit_test(sse_should_ignore_unknown_fields),
        cmocka_unit_test(sse_should_default_the_type_to_message_and_reset_it),
        cmocka_unit_test(sse_should_accept_retry_only_with_ascii_digits),
        cmocka_unit_test(sse_should_ignore_an_id_containing_nul),
        cmocka_unit_test(sse_should_reset_the_id_when_empty),
        cmocka_unit_test(sse_should_keep_the_id_across_events),
        cmocka_unit_test(sse_should_take_the_last_id_field_of_an_event),
        cmocka_unit_test(sse_should_not_dispatch_an_event_without_data),
        cmocka_unit_test(sse_should_discard_an_unterminated_final_event),
        cmocka_unit_test(sse_should_replace_invalid_utf8),
        cmocka_unit_test(sse_should_parse_a_typical_server_stream),
        cmocka_unit_test(sse_should_accept_an_empty_stream),
        cmocka_unit_test(sse_should_stop_when_a_callback_returns_nonzero),
        cmocka_unit_test(sse_should_accept_a_line_at_the_cap),
        cmocka_unit_test(sse_should_report_a_line_over_the_cap),
        cmocka_unit_test(sse_should_accept_data_at_the_cap),
        cmocka_unit_test(sse_should_report_data_over_the_cap),
        cmocka_unit_test(sse_should_reuse_buffers_between_events),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
