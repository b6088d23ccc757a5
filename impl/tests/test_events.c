/*
 * test_events.c - the event hub without any transport: framing, the retry
 * hint, replay, every resync reason, filters, reservation order, keepalive,
 * lagging, shutdown, tiny reads, and park/wake accounting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "events.h"

struct probe {
    int parks, wakes;
};

static void on_park(void *ctx)
{
    ((struct probe *)ctx)->parks++;
}

static void on_wake(void *ctx)
{
    ((struct probe *)ctx)->wakes++;
}

static struct events_hub *hub(size_t ring, size_t backlog, unsigned long long last)
{
    struct events_config cfg = {ring, backlog, 1500, 4};
    int err = 0;
    struct events_hub *h = events_new(&cfg, last, &err);

    assert_non_null(h);
    return h;
}

/* Read everything available now (until the subscriber parks or ends). */
static size_t drain(struct events_sub *s, struct probe *p, char *out, size_t cap, size_t chunk,
                    bool *ended)
{
    size_t n = 0;

    *ended = false;
    for (;;) {
        long k = events_sub_read(s, out + n, chunk < cap - n - 1 ? chunk : cap - n - 1, on_park, p);

        if (k == EVENTS_END) {
            *ended = true;
            break;
        }
        if (k == 0)
            break;
        n += (size_t)k;
        assert_true(n < cap - 1);
    }
    out[n] = '\0';
    return n;
}

static void publish(struct events_hub *h, const char *type, const char *scope, bool gallery,
                    const char *data)
{
    unsigned long long id;

    assert_int_equal(events_publish(h, type, scope, gallery, data, strlen(data), &id), 0);
}

static void events_should_start_with_retry_then_go_live(void **state)
{
    struct events_hub *h = hub(8, 100, 0);
    struct events_sub_opts o = {false, false, 0, NULL};
    struct probe p = {0, 0};
    char out[4096];
    bool ended;
    int err = 0;
    struct events_sub *s = events_subscribe(h, &o, on_wake, &p, &err);

    (void)state;
    assert_non_null(s);
    drain(s, &p, out, sizeof(out), 4096, &ended);
    assert_string_equal(out, "retry: 1500\n\n");
    assert_int_equal(p.parks, 1);
    publish(h, "item-updated", "/a/x.png", false, "{\"k\":1}");
    assert_int_equal(p.wakes, 1);
    drain(s, &p, out, sizeof(out), 4096, &ended);
    assert_string_equal(out, "id: 1\nevent: item-updated\ndata: {\"k\":1}\n\n");
    assert_false(ended);
    events_unsubscribe(s);
    events_free(h);
}

static void events_should_replay_after_the_last_id_exactly_once(void **state)
{
    struct events_hub *h = hub(8, 100, 0);
    struct events_sub_opts o = {true, false, 1, NULL};
    struct probe p = {0, 0};
    char out[4096];
    bool ended;
    int err = 0;
    struct events_sub *s;

    (void)state;
    publish(h, "a", NULL, false, "1");
    publish(h, "b", NULL, false, "2");
    publish(h, "c", NULL, false, "3");
    s = events_subscribe(h, &o, on_wake, &p, &err);
    drain(s, &p, out, sizeof(out), 4096, &ended);
    assert_string_equal(out, "retry: 1500\n\nid: 2\nevent: b\ndata: 2\n\nid: 3\nevent: c\ndata: "
                             "3\n\n");
    drain(s, &p, out, sizeof(out), 4096, &ended);
    assert_string_equal(out, ""); /* nothing twice */
    events_unsubscribe(s);
    events_free(h);
}

static void events_should_resync_too_old_future_and_invalid(void **state)
{
    struct events_hub *h = hub(2, 100, 10); /* ids up to 10 predate this hub */
    struct events_sub_opts o = {true, false, 5, NULL};
    struct probe p = {0, 0};
    char out[4096];
    bool ended;
    int err = 0;
    struct events_sub *s;

    (void)state;
    s = events_subscribe(h, &o, on_wake, &p, &err);
    drain(s, &p, out, sizeof(out), 4096, &ended);
    assert_non_null(strstr(out, "id: 10\nevent: resync\ndata: "
                                "{\"reason\":\"too_old\",\"last_event_id\":10,\"requested\":5}"));
    events_unsubscribe(s);

    o.last_id = 11;
    s = events_subscribe(h, &o, on_wake, &p, &err);
    drain(s, &p, out, sizeof(out), 4096, &ended);
    assert_non_null(strstr(out, "\"reason\":\"future\""));
    assert_non_null(strstr(out, "\"requested\":11"));
    /* Live events after a resync continue above its id. */
    publish(h, "x", NULL, false, "{}");
    drain(s, &p, out, sizeof(out), 4096, &ended);
    assert_string_equal(out, "id: 11\nevent: x\ndata: {}\n\n");
    events_unsubscribe(s);

    o.last_invalid = true;
    s = events_subscribe(h, &o, on_wake, &p, &err);
    drain(s, &p, out, sizeof(out), 4096, &ended);
    assert_non_null(
        strstr(out, "\"reason\":\"invalid_id\",\"last_event_id\":11,\"requested\":null"));
    events_unsubscribe(s);

    /* Replay window: the ring holds 2 events; asking from 10 needs 11..13. */
    publish(h, "x", NULL, false, "{}");
    publish(h, "x", NULL, false, "{}");
    o.last_invalid = false;
    o.last_id = 10;
    s = events_subscribe(h, &o, on_wake, &p, &err);
    drain(s, &p, out, sizeof(out), 4096, &ended);
    assert_non_null(strstr(out, "\"reason\":\"too_old\""));
    events_unsubscribe(s);
    o.last_id = 11; /* 12 and 13 are still there */
    s = events_subscribe(h, &o, on_wake, &p, &err);
    drain(s, &p, out, sizeof(out), 4096, &ended);
    assert_null(strstr(out, "resync"));
    assert_non_null(strstr(out, "id: 12\n"));
    assert_non_null(strstr(out, "id: 13\n"));
    events_unsubscribe(s);
    events_free(h);
}

static void events_should_filter_by_gallery(void **state)
{
    struct events_hub *h = hub(16, 100, 0);
    struct events_sub_opts o = {false, false, 0, "/a"};
    struct probe p = {0, 0};
    char out[4096];
    bool ended;
    int err = 0;
    struct events_sub *s = events_subscribe(h, &o, on_wake, &p, &err);

    (void)state;
    drain(s, &p, out, sizeof(out), 4096, &ended);
    publish(h, "item-updated", "/ab/x.png", false, "1"); /* a sibling, not a child */
    publish(h, "presence", "/b", true, "2");
    assert_int_equal(p.wakes, 0); /* nothing for it: it stays parked */
    publish(h, "item-updated", "/a/b/x.png", false, "3");
    publish(h, "presence", "/a", true, "4");
    publish(h, "presence", "/a/b", true, "5");
    assert_int_equal(p.wakes, 1);
    drain(s, &p, out, sizeof(out), 4096, &ended);
    assert_null(strstr(out, "data: 1\n"));
    assert_null(strstr(out, "data: 2\n"));
    assert_non_null(strstr(out, "id: 3\n"));
    assert_non_null(strstr(out, "id: 4\n"));
    assert_non_null(strstr(out, "id: 5\n"));
    events_unsubscribe(s);
    events_free(h);
}

static void events_should_deliver_in_id_order_across_reservations(void **state)
{
    struct events_hub *h = hub(16, 100, 0);
    struct events_sub_opts o = {false, false, 0, NULL};
    struct probe p = {0, 0};
    unsigned long long a, b, c;
    char out[4096];
    bool ended;
    int err = 0;
    struct events_sub *s = events_subscribe(h, &o, on_wake, &p, &err);

    (void)state;
    drain(s, &p, out, sizeof(out), 4096, &ended);
    assert_int_equal(events_reserve(h, &a), 0);
    assert_int_equal(events_reserve(h, &b), 0);
    assert_int_equal(events_reserve(h, &c), 0);
    assert_int_equal(events_commit(h, c, "t", NULL, false, "c", 1), 0);
    assert_int_equal(events_last_id(h), 0); /* a still blocks delivery */
    drain(s, &p, out, sizeof(out), 4096, &ended);
    assert_string_equal(out, "");
    events_cancel(h, b);
    assert_int_equal(events_commit(h, a, "t", NULL, false, "a", 1), 0);
    assert_int_equal(events_last_id(h), 3);
    drain(s, &p, out, sizeof(out), 4096, &ended);
    assert_string_equal(out, "id: 1\nevent: t\ndata: a\n\nid: 3\nevent: t\ndata: c\n\n");
    /* Committing twice, or an id never reserved, is refused. */
    assert_int_equal(events_commit(h, a, "t", NULL, false, "a", 1), -EINVAL);
    assert_int_equal(events_commit(h, 99, "t", NULL, false, "a", 1), -EINVAL);
    /* A frame-breaking type or data line is refused and the id skipped. */
    assert_int_equal(events_reserve(h, &a), 0);
    assert_int_equal(events_commit(h, a, "t", NULL, false, "x\ny", 3), -EINVAL);
    assert_int_equal(events_last_id(h), 4);
    events_unsubscribe(s);
    events_free(h);
}

static void events_should_send_keepalive_and_wake(void **state)
{
    struct events_hub *h = hub(4, 100, 0);
    struct events_sub_opts o = {false, false, 0, NULL};
    struct probe p = {0, 0};
    char out[256];
    bool ended;
    int err = 0;
    struct events_sub *s = events_subscribe(h, &o, on_wake, &p, &err);

    (void)state;
    drain(s, &p, out, sizeof(out), 4096, &ended);
    events_keepalive(h);
    assert_int_equal(p.wakes, 1);
    drain(s, &p, out, sizeof(out), 4096, &ended);
    assert_string_equal(out, ": keepalive\n\n");
    events_unsubscribe(s);
    events_free(h);
}

static void events_should_end_a_lagging_subscriber_with_resync(void **state)
{
    struct events_hub *h = hub(64, 3, 0);
    struct events_sub_opts o = {false, false, 0, NULL};
    struct probe p = {0, 0};
    struct events_stats st;
    char out[4096];
    bool ended;
    int err = 0;
    struct events_sub *s = events_subscribe(h, &o, on_wake, &p, &err);

    (void)state;
    /* It reads the hint but not the events: four events put it past a
     * backlog of three. */
    drain(s, &p, out, sizeof(out), 4096, &ended);
    for (int i = 0; i < 4; i++)
        publish(h, "t", NULL, false, "{}");
    drain(s, &p, out, sizeof(out), 4096, &ended);
    assert_true(ended);
    assert_string_equal(out, "id: 4\nevent: resync\ndata: "
                             "{\"reason\":\"lagging\",\"last_event_id\":4,\"requested\":null}\n\n");
    events_stats(h, &st);
    assert_int_equal(st.lagging_closed_total, 1);
    events_unsubscribe(s);
    events_free(h);
}

static void events_should_split_frames_for_tiny_reads(void **state)
{
    struct events_hub *h = hub(4, 100, 0);
    struct events_sub_opts o = {false, false, 0, NULL};
    struct probe p = {0, 0};
    char out[4096];
    bool ended;
    int err = 0;
    struct events_sub *s = events_subscribe(h, &o, on_wake, &p, &err);

    (void)state;
    publish(h, "item-updated", NULL, false, "{\"long\":\"abcdefghijklmnop\"}");
    drain(s, &p, out, sizeof(out), 1, &ended);
    assert_string_equal(out, "retry: 1500\n\nid: 1\nevent: item-updated\ndata: "
                             "{\"long\":\"abcdefghijklmnop\"}\n\n");
    events_unsubscribe(s);
    events_free(h);
}

static void events_should_refuse_past_max_subscribers_and_end_at_shutdown(void **state)
{
    struct events_hub *h = hub(4, 100, 0);
    struct events_sub_opts o = {false, false, 0, NULL};
    struct probe p = {0, 0};
    struct events_sub *s[5];
    char out[256];
    bool ended;
    int err = 0;

    (void)state;
    for (int i = 0; i < 4; i++) {
        s[i] = events_subscribe(h, &o, on_wake, &p, &err);
        assert_non_null(s[i]);
        drain(s[i], &p, out, sizeof(out), 4096, &ended);
    }
    assert_null(events_subscribe(h, &o, on_wake, &p, &err));
    assert_int_equal(err, LS_EFULL);
    p.wakes = 0;
    events_shutdown(h);
    assert_int_equal(p.wakes, 4); /* every parked one is resumed */
    for (int i = 0; i < 4; i++) {
        drain(s[i], &p, out, sizeof(out), 4096, &ended);
        assert_true(ended);
        events_unsubscribe(s[i]);
    }
    events_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(events_should_start_with_retry_then_go_live),
        cmocka_unit_test(events_should_replay_after_the_last_id_exactly_once),
        cmocka_unit_test(events_should_resync_too_old_future_and_invalid),
        cmocka_unit_test(events_should_filter_by_gallery),
        cmocka_unit_test(events_should_deliver_in_id_order_across_reservations),
        cmocka_unit_test(events_should_send_keepalive_and_wake),
        cmocka_unit_test(events_should_end_a_lagging_subscriber_with_resync),
        cmocka_unit_test(events_should_split_frames_for_tiny_reads),
        cmocka_unit_test(events_should_refuse_past_max_subscribers_and_end_at_shutdown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
