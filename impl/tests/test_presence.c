/*
 * test_presence.c - the presence tracker: every branch of join, move, leave
 * and the legacy heartbeat, TTL boundaries for viewing and editing, change
 * reporting (nothing for a no-op, 0/0 once for an emptied gallery, bytewise
 * order), caps, argument checks, and two threaded runs checked against a
 * brute-force recount.  Clock and random source are injected.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "presence.h"

#define T0  1000000000LL /* an arbitrary monotonic start, µs */
#define SEC 1000000LL
#define END ((const char *)NULL) /* ends a changes_are list */

/* ---- helpers ----------------------------------------------------------- */

/* A deterministic random source: each call yields a fresh counter value. */
struct rng {
    unsigned long long ctr;
    bool stuck; /* always the same bytes */
};

static void rng_fill(void *ctx, unsigned char *out, size_t n)
{
    struct rng *r = ctx;
    unsigned long long v = r->stuck ? 42 : ++r->ctr;

    memset(out, 0, n);
    for (size_t i = 0; i < n && i < 8; i++)
        out[n - 1 - i] = (unsigned char)(v >> (8 * i));
}

static struct presence *mk(struct rng *r, long long view_ttl, long long edit_ttl, size_t max)
{
    struct presence_config c;
    struct presence *p;
    int err = 1;

    memset(&c, 0, sizeof(c));
    c.view_ttl_us = view_ttl;
    c.edit_ttl_us = edit_ttl;
    c.random = rng_fill;
    c.random_ctx = r;
    c.max_clients = max;
    p = presence_new(&c, &err);
    assert_non_null(p);
    assert_int_equal(err, 0);
    return p;
}

/* Default fixture: 10 s view TTL, 4 s edit TTL. */
static struct presence *mk_default(struct rng *r)
{
    memset(r, 0, sizeof(*r));
    return mk(r, 10 * SEC, 4 * SEC, 0);
}

static void join_ok(struct presence *p, const char *client, const char *gallery, const char *lease,
                    long long now, struct presence_reply *out, struct presence_changes *ch)
{
    assert_int_equal(presence_join(p, client, gallery, lease, now, out, ch), 0);
    assert_int_equal(out->result, PRESENCE_OK);
    assert_int_equal(strlen(out->lease_id), PRESENCE_LEASE_LEN);
    assert_int_equal(strspn(out->lease_id, "0123456789abcdef"), PRESENCE_LEASE_LEN);
}

static void counts_are(struct presence *p, const char *gallery, long long now, unsigned v,
                       unsigned e)
{
    unsigned cv = 99, ce = 99;

    assert_int_equal(presence_counts(p, gallery, now, &cv, &ce), 0);
    assert_int_equal(cv, v);
    assert_int_equal(ce, e);
}

/*
 * Assert that ch holds exactly the given (gallery, viewing, editing) triples
 * in order, terminated by END, then empty it.
 */
static void changes_are(struct presence_changes *ch, ...)
{
    va_list ap;
    size_t i = 0;
    const char *g;

    va_start(ap, ch);
    while ((g = va_arg(ap, const char *)) != NULL) {
        unsigned v = va_arg(ap, unsigned), e = va_arg(ap, unsigned);

        assert_true(i < ch->n);
        assert_string_equal(ch->items[i].gallery_id, g);
        assert_int_equal(ch->items[i].viewing, v);
        assert_int_equal(ch->items[i].editing, e);
        i++;
    }
    va_end(ap);
    assert_int_equal(ch->n, i);
    presence_changes_cleanup(ch);
}

/* ---- join ---------------------------------------------------------------- */

static void presence_should_create_a_session_with_a_new_lease_on_first_join(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply out;
    struct presence_changes ch = {0};
    char g[PRESENCE_MAX_GALLERY + 1], l[PRESENCE_LEASE_LEN + 1];

    (void)state;
    join_ok(p, "c1", "/animals", NULL, T0, &out, &ch);
    assert_string_equal(out.lease_id, "00000000000000000000000000000002"); /* 1 = hash key */
    assert_string_equal(out.gallery_id, "/animals");
    assert_int_equal(out.viewing, 1);
    assert_int_equal(out.editing, 0);
    changes_are(&ch, "/animals", 1u, 0u, END);
    assert_int_equal(presence_lookup(p, "c1", T0, g, l, NULL), 0);
    assert_string_equal(g, "/animals");
    assert_string_equal(l, out.lease_id);
    assert_int_equal(presence_lookup(p, "c2", T0, NULL, NULL, NULL), LS_ENOTFOUND);
    assert_int_equal(presence_check(p), 0);
    presence_free(p);
}

static void presence_should_ignore_a_stale_lease_when_no_session_exists(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply out;
    struct presence_stats st;

    (void)state;
    join_ok(p, "c1", "/a", "ffffffffffffffffffffffffffffffff", T0, &out, NULL);
    assert_string_not_equal(out.lease_id, "ffffffffffffffffffffffffffffffff");
    assert_int_equal(out.viewing, 1);
    presence_stats(p, T0, &st);
    assert_int_equal(st.invalid_lease_total, 0);
    presence_free(p);
}

static void presence_should_treat_a_join_with_the_same_lease_as_a_heartbeat(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply out, again;
    struct presence_changes ch = {0};

    (void)state;
    join_ok(p, "c1", "/a", NULL, T0, &out, &ch);
    changes_are(&ch, "/a", 1u, 0u, END);
    join_ok(p, "c1", "/a", out.lease_id, T0 + 9 * SEC, &again, &ch);
    assert_string_equal(again.lease_id, out.lease_id);
    assert_int_equal(again.viewing, 1);
    changes_are(&ch, END); /* nothing changed: nothing reported */
    /* The heartbeat refreshed the last view: alive 10 s after it, not after the join. */
    counts_are(p, "/a", T0 + 19 * SEC, 1, 0);
    presence_free(p);
}

static void presence_should_move_on_a_join_with_the_same_lease_to_another_gallery(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply out, again;
    struct presence_changes ch = {0};

    (void)state;
    join_ok(p, "c1", "/b", NULL, T0, &out, &ch);
    changes_are(&ch, "/b", 1u, 0u, END);
    join_ok(p, "c1", "/a", out.lease_id, T0 + 1, &again, &ch);
    assert_string_equal(again.lease_id, out.lease_id);
    assert_string_equal(again.gallery_id, "/a");
    assert_int_equal(again.viewing, 1);
    changes_are(&ch, "/a", 1u, 0u, "/b", 0u, 0u, END);
    counts_are(p, "/b", T0 + 1, 0, 0);
    assert_int_equal(presence_check(p), 0);
    presence_free(p);
}

static void presence_should_issue_a_new_lease_on_takeover_and_invalidate_the_old(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply first, second, third, out;
    struct presence_changes ch = {0};
    struct presence_stats st;

    (void)state;
    join_ok(p, "c1", "/a", NULL, T0, &first, &ch);
    changes_are(&ch, "/a", 1u, 0u, END);
    join_ok(p, "c1", "/a", "", T0 + 1, &second, &ch); /* "" is no lease */
    assert_string_not_equal(second.lease_id, first.lease_id);
    assert_int_equal(second.viewing, 1);
    changes_are(&ch, END);
    /* The old lease no longer works anywhere. */
    assert_int_equal(presence_move(p, "c1", first.lease_id, "/a", "/b", T0 + 2, &out, NULL), 0);
    assert_int_equal(out.result, PRESENCE_INVALID_LEASE);
    assert_int_equal(presence_leave(p, "c1", first.lease_id, "/a", T0 + 2, &out, NULL), 0);
    assert_int_equal(out.result, PRESENCE_INVALID_LEASE);
    assert_int_equal(presence_join(p, "c1", "/a", first.lease_id, T0 + 2, &out, NULL), 0);
    assert_int_equal(out.result, PRESENCE_INVALID_LEASE);
    /* A takeover into another gallery moves the session. */
    join_ok(p, "c1", "/b", NULL, T0 + 3, &third, &ch);
    assert_string_not_equal(third.lease_id, second.lease_id);
    changes_are(&ch, "/a", 0u, 0u, "/b", 1u, 0u, END);
    presence_stats(p, T0 + 3, &st);
    assert_int_equal(st.invalid_lease_total, 3);
    assert_int_equal(st.active_clients, 1);
    presence_free(p);
}

static void presence_should_reject_a_join_with_a_different_lease(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply first, out;
    struct presence_changes ch = {0};
    struct presence_stats st;
    char g[PRESENCE_MAX_GALLERY + 1], l[PRESENCE_LEASE_LEN + 1];

    (void)state;
    join_ok(p, "c1", "/a", NULL, T0, &first, NULL);
    assert_int_equal(presence_join(p, "c1", "/b", "0123", T0 + 5 * SEC, &out, &ch), 0);
    assert_int_equal(out.result, PRESENCE_INVALID_LEASE);
    assert_string_equal(out.gallery_id, "/b");
    assert_string_equal(out.lease_id, "");
    assert_int_equal(out.viewing, 0);
    changes_are(&ch, "/a", 1u, 0u, END); /* the first report of /a rides along */
    /* Unchanged: still in /a, same lease, and the refused join did not refresh it. */
    assert_int_equal(presence_lookup(p, "c1", T0 + 5 * SEC, g, l, NULL), 0);
    assert_string_equal(g, "/a");
    assert_string_equal(l, first.lease_id);
    counts_are(p, "/a", T0 + 10 * SEC + 1, 0, 0);
    presence_stats(p, T0 + 10 * SEC + 1, &st);
    assert_int_equal(st.invalid_lease_total, 1);
    assert_int_equal(st.stale_pruned_total, 1);
    presence_free(p);
}

/* ---- move ---------------------------------------------------------------- */

static void presence_should_reject_a_move_without_a_session(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply out;
    struct presence_stats st;

    (void)state;
    assert_int_equal(
        presence_move(p, "ghost", "00000000000000000000000000000002", "/a", "/b", T0, &out, NULL),
        0);
    assert_int_equal(out.result, PRESENCE_INVALID_LEASE);
    assert_string_equal(out.gallery_id, "/a");
    assert_string_equal(out.lease_id, "");
    assert_int_equal(presence_lookup(p, "ghost", T0, NULL, NULL, NULL), LS_ENOTFOUND);
    presence_stats(p, T0, &st);
    assert_int_equal(st.invalid_lease_total, 1);
    assert_int_equal(st.scope_mismatch_total, 0);
    presence_free(p);
}

static void presence_should_check_the_lease_before_the_scope_on_move(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply first, out;
    struct presence_stats st;

    (void)state;
    join_ok(p, "c1", "/a", NULL, T0, &first, NULL);
    /* Wrong lease and wrong from: the lease wins. */
    assert_int_equal(
        presence_move(p, "c1", "11111111111111111111111111111111", "/x", "/b", T0, &out, NULL), 0);
    assert_int_equal(out.result, PRESENCE_INVALID_LEASE);
    /* No lease at all is a wrong lease. */
    assert_int_equal(presence_move(p, "c1", NULL, "/a", "/b", T0, &out, NULL), 0);
    assert_int_equal(out.result, PRESENCE_INVALID_LEASE);
    assert_int_equal(presence_move(p, "c1", "", "/a", "/b", T0, &out, NULL), 0);
    assert_int_equal(out.result, PRESENCE_INVALID_LEASE);
    presence_stats(p, T0, &st);
    assert_int_equal(st.invalid_lease_total, 3);
    assert_int_equal(st.scope_mismatch_total, 0);
    counts_are(p, "/a", T0, 1, 0);
    presence_free(p);
}

static void presence_should_answer_a_move_to_the_current_gallery_with_true_counts(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply c1, out;
    struct presence_changes ch = {0};

    (void)state;
    join_ok(p, "c1", "/b", NULL, T0, &c1, NULL);
    join_ok(p, "c2", "/a", NULL, T0, &out, NULL);
    join_ok(p, "c3", "/a", NULL, T0, &out, &ch);
    changes_are(&ch, "/a", 2u, 0u, "/b", 1u, 0u, END);
    /* A replayed move /a -> /b: c1 is already in /b. */
    assert_int_equal(presence_move(p, "c1", c1.lease_id, "/a", "/b", T0 + 8 * SEC, &out, &ch), 0);
    assert_int_equal(out.result, PRESENCE_OK);
    assert_string_equal(out.lease_id, c1.lease_id);
    assert_string_equal(out.from_gallery, "/a");
    assert_int_equal(out.from_viewing, 2); /* upstream says 0 here */
    assert_string_equal(out.to_gallery, "/b");
    assert_int_equal(out.to_viewing, 1);
    changes_are(&ch, END);
    /* It counted as a view: c1 outlives c2 and c3. */
    counts_are(p, "/b", T0 + 12 * SEC, 1, 0);
    counts_are(p, "/a", T0 + 12 * SEC, 0, 0);
    presence_free(p);
}

static void presence_should_report_scope_mismatch_with_the_actual_gallery(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply c1, out;
    struct presence_stats st;

    (void)state;
    join_ok(p, "c1", "/c", NULL, T0, &c1, NULL);
    assert_int_equal(presence_move(p, "c1", c1.lease_id, "/a", "/b", T0, &out, NULL), 0);
    assert_int_equal(out.result, PRESENCE_SCOPE_MISMATCH);
    assert_string_equal(out.gallery_id, "/c");
    assert_int_equal(out.viewing, 1);
    assert_string_equal(out.from_gallery, "/a");
    assert_string_equal(out.to_gallery, "/b");
    counts_are(p, "/c", T0, 1, 0);
    presence_stats(p, T0, &st);
    assert_int_equal(st.scope_mismatch_total, 1);
    assert_int_equal(st.invalid_lease_total, 0);
    presence_free(p);
}

static void presence_should_move_between_galleries_keeping_the_last_write(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply c1, out;
    struct presence_changes ch = {0};
    bool editing = false;

    (void)state;
    join_ok(p, "c1", "/a", NULL, T0, &c1, NULL);
    join_ok(p, "c2", "/a", NULL, T0, &out, NULL);
    assert_int_equal(presence_touch_edit(p, "c1", T0 + 1, &ch), 0);
    changes_are(&ch, "/a", 2u, 1u, END);
    assert_int_equal(presence_move(p, "c1", c1.lease_id, "/a", "/b", T0 + 2, &out, &ch), 0);
    assert_int_equal(out.result, PRESENCE_OK);
    assert_string_equal(out.lease_id, c1.lease_id);
    assert_string_equal(out.gallery_id, "/b");
    assert_int_equal(out.from_viewing, 1);
    assert_int_equal(out.from_editing, 0);
    assert_int_equal(out.to_viewing, 1);
    assert_int_equal(out.to_editing, 1);
    changes_are(&ch, "/a", 1u, 0u, "/b", 1u, 1u, END);
    assert_int_equal(presence_lookup(p, "c1", T0 + 2, NULL, NULL, &editing), 0);
    assert_true(editing);
    /* The write still lapses 4 s after it happened, not after the move. */
    counts_are(p, "/b", T0 + 1 + 4 * SEC, 1, 1);
    counts_are(p, "/b", T0 + 2 + 4 * SEC, 1, 0);
    assert_int_equal(presence_check(p), 0);
    presence_free(p);
}

static void presence_should_keep_the_last_write_across_a_takeover(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply out;

    (void)state;
    join_ok(p, "c1", "/a", NULL, T0, &out, NULL);
    assert_int_equal(presence_touch_edit(p, "c1", T0, NULL), 0);
    join_ok(p, "c1", "/b", NULL, T0 + 1, &out, NULL);
    assert_int_equal(out.editing, 1);
    counts_are(p, "/a", T0 + 1, 0, 0);
    presence_free(p);
}

/* ---- leave --------------------------------------------------------------- */

static void presence_should_leave_idempotently_without_a_session(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply out;
    struct presence_changes ch = {0};
    struct presence_stats st;

    (void)state;
    join_ok(p, "c2", "/a", NULL, T0, &out, &ch);
    changes_are(&ch, "/a", 1u, 0u, END);
    assert_int_equal(presence_leave(p, "c1", "whatever", "/a", T0, &out, &ch), 0);
    assert_int_equal(out.result, PRESENCE_OK);
    assert_false(out.removed);
    assert_string_equal(out.gallery_id, "/a");
    assert_int_equal(out.viewing, 1); /* true counts */
    changes_are(&ch, END);
    assert_int_equal(presence_leave(p, "c1", NULL, "/a", T0, &out, NULL), 0);
    assert_false(out.removed);
    presence_stats(p, T0, &st);
    assert_int_equal(st.invalid_lease_total, 0);
    presence_free(p);
}

static void presence_should_reject_a_leave_with_a_wrong_lease(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply c1, out;

    (void)state;
    join_ok(p, "c1", "/a", NULL, T0, &c1, NULL);
    assert_int_equal(
        presence_leave(p, "c1", "22222222222222222222222222222222", "/b", T0, &out, NULL), 0);
    assert_int_equal(out.result, PRESENCE_INVALID_LEASE); /* before the scope */
    assert_false(out.removed);
    assert_int_equal(presence_leave(p, "c1", NULL, "/a", T0, &out, NULL), 0);
    assert_int_equal(out.result, PRESENCE_INVALID_LEASE);
    counts_are(p, "/a", T0, 1, 0);
    presence_free(p);
}

static void presence_should_reject_a_leave_from_another_gallery(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply c1, out;
    struct presence_stats st;

    (void)state;
    join_ok(p, "c1", "/a", NULL, T0, &c1, NULL);
    assert_int_equal(presence_leave(p, "c1", c1.lease_id, "/b", T0, &out, NULL), 0);
    assert_int_equal(out.result, PRESENCE_SCOPE_MISMATCH);
    assert_string_equal(out.gallery_id, "/a");
    assert_int_equal(out.viewing, 1);
    assert_false(out.removed);
    presence_stats(p, T0, &st);
    assert_int_equal(st.scope_mismatch_total, 1);
    presence_free(p);
}

static void presence_should_report_an_emptied_gallery_once_as_zero(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply c1, out;
    struct presence_changes ch = {0};
    struct presence_stats st;

    (void)state;
    join_ok(p, "c1", "/a", NULL, T0, &c1, &ch);
    changes_are(&ch, "/a", 1u, 0u, END);
    assert_int_equal(presence_leave(p, "c1", c1.lease_id, "/a", T0 + 1, &out, &ch), 0);
    assert_int_equal(out.result, PRESENCE_OK);
    assert_true(out.removed);
    assert_string_equal(out.lease_id, c1.lease_id);
    assert_int_equal(out.viewing, 0);
    changes_are(&ch, "/a", 0u, 0u, END);
    assert_int_equal(presence_prune(p, T0 + 2, &ch), 0);
    changes_are(&ch, END); /* forgotten */
    presence_stats(p, T0 + 2, &st);
    assert_int_equal(st.active_clients, 0);
    assert_int_equal(st.active_scopes, 0);
    assert_int_equal(st.stale_pruned_total, 0);
    assert_int_equal(presence_check(p), 0);
    presence_free(p);
}

/* ---- legacy heartbeat ---------------------------------------------------- */

static void presence_should_create_or_touch_on_legacy_heartbeat(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply first, out;
    struct presence_changes ch = {0};

    (void)state;
    assert_int_equal(presence_heartbeat(p, "c1", "/a", T0, &first, &ch), 0);
    assert_int_equal(first.result, PRESENCE_OK);
    assert_int_equal(strlen(first.lease_id), PRESENCE_LEASE_LEN);
    changes_are(&ch, "/a", 1u, 0u, END);
    assert_int_equal(presence_heartbeat(p, "c1", "/a", T0 + 9 * SEC, &out, &ch), 0);
    assert_string_equal(out.lease_id, first.lease_id);
    changes_are(&ch, END);
    assert_int_equal(presence_heartbeat(p, "c1", "/b", T0 + 10 * SEC, &out, &ch), 0);
    assert_string_equal(out.lease_id, first.lease_id); /* the lease survives the move */
    assert_string_equal(out.gallery_id, "/b");
    assert_int_equal(out.viewing, 1);
    changes_are(&ch, "/a", 0u, 0u, "/b", 1u, 0u, END);
    /* The lease still works with the lease-checked routes. */
    assert_int_equal(presence_leave(p, "c1", first.lease_id, "/b", T0 + 11 * SEC, &out, NULL), 0);
    assert_true(out.removed);
    presence_free(p);
}

/* ---- TTLs ---------------------------------------------------------------- */

static void presence_should_count_views_up_to_exactly_the_view_ttl(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply out;
    struct presence_stats st;

    (void)state;
    join_ok(p, "c1", "/a", NULL, T0, &out, NULL);
    counts_are(p, "/a", T0 + 10 * SEC, 1, 0); /* exactly at the TTL: still viewing */
    counts_are(p, "/a", T0 + 10 * SEC + 1, 0, 0);
    assert_int_equal(presence_lookup(p, "c1", T0 + 10 * SEC + 1, NULL, NULL, NULL), LS_ENOTFOUND);
    presence_stats(p, T0 + 10 * SEC + 1, &st);
    assert_int_equal(st.stale_pruned_total, 1);
    assert_int_equal(st.active_clients, 0);
    presence_free(p);
}

static void presence_should_count_edits_up_to_exactly_the_edit_ttl(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply out;
    bool editing = true;

    (void)state;
    join_ok(p, "c1", "/a", NULL, T0, &out, NULL);
    assert_int_equal(presence_touch_edit(p, "c1", T0 + SEC, NULL), 0);
    counts_are(p, "/a", T0 + 5 * SEC, 1, 1); /* exactly at the TTL */
    counts_are(p, "/a", T0 + 5 * SEC + 1, 1, 0);
    assert_int_equal(presence_lookup(p, "c1", T0 + 5 * SEC + 1, NULL, NULL, &editing), 0);
    assert_false(editing);
    /* A second write renews it; touch_edit is not a view. */
    assert_int_equal(presence_touch_edit(p, "c1", T0 + 6 * SEC, NULL), 0);
    assert_int_equal(presence_touch_edit(p, "c1", T0 + 7 * SEC, NULL), 0);
    counts_are(p, "/a", T0 + 10 * SEC, 1, 1);
    counts_are(p, "/a", T0 + 10 * SEC + 1, 0, 0); /* expired as a viewer though editing */
    assert_int_equal(presence_check(p), 0);
    presence_free(p);
}

static void presence_should_report_lapsed_editing_on_prune(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply out;
    struct presence_changes ch = {0};
    struct presence_stats st;

    (void)state;
    join_ok(p, "c1", "/a", NULL, T0, &out, NULL);
    join_ok(p, "c2", "/b", NULL, T0, &out, NULL);
    assert_int_equal(presence_touch_edit(p, "c1", T0, &ch), 0);
    changes_are(&ch, "/a", 1u, 1u, "/b", 1u, 0u, END);
    assert_int_equal(presence_prune(p, T0 + 4 * SEC, &ch), 0);
    changes_are(&ch, END);
    assert_int_equal(presence_prune(p, T0 + 4 * SEC + 1, &ch), 0);
    changes_are(&ch, "/a", 1u, 0u, END);
    assert_int_equal(presence_heartbeat(p, "c2", "/b", T0 + 5 * SEC, &out, NULL), 0);
    assert_int_equal(presence_prune(p, T0 + 10 * SEC + 1, &ch), 0);
    changes_are(&ch, "/a", 0u, 0u, END);
    presence_stats(p, T0 + 10 * SEC + 1, &st);
    assert_int_equal(st.stale_pruned_total, 1);
    assert_int_equal(st.active_clients, 1);
    assert_int_equal(st.active_scopes, 1);
    presence_free(p);
}

static void presence_should_report_expiry_seen_by_an_unrelated_call(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply out;
    struct presence_changes ch = {0};

    (void)state;
    join_ok(p, "c1", "/z", NULL, T0, &out, &ch);
    changes_are(&ch, "/z", 1u, 0u, END);
    join_ok(p, "c2", "/a", NULL, T0 + 11 * SEC, &out, &ch);
    changes_are(&ch, "/a", 1u, 0u, "/z", 0u, 0u, END);
    presence_free(p);
}

static void presence_should_ignore_touch_edit_without_a_session(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply out;
    struct presence_changes ch = {0};

    (void)state;
    assert_int_equal(presence_touch_edit(p, "c1", T0, &ch), 0);
    changes_are(&ch, END);
    join_ok(p, "c1", "/a", NULL, T0 + 1, &out, NULL);
    assert_int_equal(out.editing, 0); /* the earlier write was not remembered */
    assert_int_equal(presence_touch_edit(p, "", T0, NULL), LS_EVALUE);
    presence_free(p);
}

static void presence_should_use_75_and_60_seconds_by_default(void **state)
{
    struct presence_config c;
    struct presence *p;
    struct presence_reply out;
    struct rng r = {0};
    int err = 0;

    (void)state;
    memset(&c, 0, sizeof(c));
    c.random = rng_fill;
    c.random_ctx = &r;
    p = presence_new(&c, &err);
    assert_non_null(p);
    join_ok(p, "c1", "/a", NULL, T0, &out, NULL);
    assert_int_equal(presence_touch_edit(p, "c1", T0, NULL), 0);
    counts_are(p, "/a", T0 + 60 * SEC, 1, 1);
    counts_are(p, "/a", T0 + 60 * SEC + 1, 1, 0);
    counts_are(p, "/a", T0 + 75 * SEC, 1, 0);
    counts_are(p, "/a", T0 + 75 * SEC + 1, 0, 0);
    presence_free(p);
    c.view_ttl_us = -1;
    assert_null(presence_new(&c, &err));
    assert_int_equal(err, LS_EVALUE);
    c.view_ttl_us = 0;
    c.edit_ttl_us = -5;
    assert_null(presence_new(&c, NULL));
}

static void presence_should_treat_a_clock_going_backwards_as_standing_still(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply out;

    (void)state;
    join_ok(p, "c1", "/a", NULL, T0 + 10 * SEC, &out, NULL);
    join_ok(p, "c2", "/a", NULL, T0, &out, NULL); /* a caller that read the clock earlier */
    /* c2's view counts from T0 + 10 s, the effective time of its join. */
    counts_are(p, "/a", T0 + 20 * SEC, 2, 0);
    counts_are(p, "/a", T0 + 20 * SEC + 1, 0, 0);
    counts_are(p, "/a", T0, 0, 0); /* time does not come back */
    assert_int_equal(presence_check(p), 0);
    presence_free(p);
}

/* ---- change reporting ---------------------------------------------------- */

static void presence_should_report_changes_sorted_bytewise(void **state)
{
    static const char *const gs[] = {"/b", "/\xc3\xa9t\xc3\xa9", "/B", "/a/b", "/a", "/a b"};
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply out;
    struct presence_changes ch = {0};
    char client[16];

    (void)state;
    for (size_t i = 0; i < sizeof(gs) / sizeof(gs[0]); i++) {
        snprintf(client, sizeof(client), "c%zu", i);
        join_ok(p, client, gs[i], NULL, T0, &out, NULL);
    }
    assert_int_equal(presence_prune(p, T0, &ch), 0);
    changes_are(&ch, "/B", 1u, 0u, "/a", 1u, 0u, "/a b", 1u, 0u, "/a/b", 1u, 0u, "/b", 1u, 0u,
                "/\xc3\xa9t\xc3\xa9", 1u, 0u, END);
    /* presence_list uses the same order. */
    assert_int_equal(presence_list(p, T0, &ch), 0);
    changes_are(&ch, "/B", 1u, 0u, "/a", 1u, 0u, "/a b", 1u, 0u, "/a/b", 1u, 0u, "/b", 1u, 0u,
                "/\xc3\xa9t\xc3\xa9", 1u, 0u, END);
    presence_free(p);
}

static void presence_should_keep_changes_pending_without_a_list(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply out;
    struct presence_changes ch = {0};

    (void)state;
    join_ok(p, "c1", "/a", NULL, T0, &out, NULL);
    join_ok(p, "c2", "/b", NULL, T0, &out, NULL);
    counts_are(p, "/a", T0, 1, 0);
    assert_int_equal(presence_touch_edit(p, "c2", T0, NULL), 0);
    assert_int_equal(presence_prune(p, T0, &ch), 0);
    changes_are(&ch, "/a", 1u, 0u, "/b", 1u, 1u, END);
    presence_free(p);
}

static void presence_should_not_report_a_change_that_changed_back(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply c1, out;
    struct presence_changes ch = {0};

    (void)state;
    join_ok(p, "c1", "/a", NULL, T0, &c1, &ch);
    changes_are(&ch, "/a", 1u, 0u, END);
    assert_int_equal(presence_move(p, "c1", c1.lease_id, "/a", "/b", T0, &out, NULL), 0);
    assert_int_equal(presence_move(p, "c1", c1.lease_id, "/b", "/a", T0, &out, NULL), 0);
    assert_int_equal(presence_prune(p, T0, &ch), 0);
    changes_are(&ch, END); /* /a is 1/0 as reported; /b never was reported */
    /* A gallery joined and left between reports is never reported at all. */
    join_ok(p, "c2", "/c", NULL, T0, &out, NULL);
    /* (The lease argument points into the reply being filled: allowed.) */
    assert_int_equal(presence_leave(p, "c2", out.lease_id, "/c", T0, &out, NULL), 0);
    assert_true(out.removed);
    assert_int_equal(presence_prune(p, T0, &ch), 0);
    changes_are(&ch, END);
    assert_int_equal(presence_check(p), 0);
    presence_free(p);
}

static void presence_should_append_to_a_list_already_holding_items(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply out;
    struct presence_changes ch = {0};

    (void)state;
    join_ok(p, "c1", "/b", NULL, T0, &out, &ch);
    join_ok(p, "c2", "/a", NULL, T0, &out, &ch);
    changes_are(&ch, "/b", 1u, 0u, "/a", 1u, 0u, END); /* sorted per call, appended */
    presence_free(p);
}

/* ---- counts, lists, stats ------------------------------------------------ */

static void presence_should_count_two_clients_in_one_gallery(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply c1, c2, out;
    struct presence_changes ch = {0};
    struct presence_stats st;

    (void)state;
    join_ok(p, "c1", "/a", NULL, T0, &c1, &ch);
    join_ok(p, "c2", "/a", NULL, T0 + SEC, &c2, &ch);
    assert_string_not_equal(c1.lease_id, c2.lease_id);
    assert_int_equal(c2.viewing, 2);
    changes_are(&ch, "/a", 1u, 0u, "/a", 2u, 0u, END);
    assert_int_equal(presence_touch_edit(p, "c2", T0 + SEC, &ch), 0);
    changes_are(&ch, "/a", 2u, 1u, END);
    presence_stats(p, T0 + SEC, &st);
    assert_int_equal(st.active_clients, 2);
    assert_int_equal(st.active_scopes, 1);
    /* c1 expires first. */
    assert_int_equal(presence_prune(p, T0 + 5 * SEC, &ch), 0);
    changes_are(&ch, END);
    assert_int_equal(presence_prune(p, T0 + 5 * SEC + 1, &ch), 0);
    changes_are(&ch, "/a", 2u, 0u, END); /* c2's write lapsed */
    assert_int_equal(presence_prune(p, T0 + 10 * SEC + 1, &ch), 0);
    changes_are(&ch, "/a", 1u, 0u, END); /* c1 expired */
    assert_int_equal(presence_leave(p, "c2", c2.lease_id, "/a", T0 + 10 * SEC + 1, &out, &ch), 0);
    changes_are(&ch, "/a", 0u, 0u, END);
    presence_free(p);
}

static void presence_should_list_only_non_empty_galleries(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply c1, out;
    struct presence_changes list = {0};

    (void)state;
    assert_int_equal(presence_list(p, T0, &list), 0);
    changes_are(&list, END);
    join_ok(p, "c1", "/x", NULL, T0, &c1, &list);
    presence_changes_cleanup(&list); /* /x reported as 1/0 */
    join_ok(p, "c2", "/y", NULL, T0, &out, NULL);
    assert_int_equal(presence_touch_edit(p, "c2", T0, NULL), 0);
    assert_int_equal(presence_leave(p, "c1", c1.lease_id, "/x", T0, &out, NULL), 0);
    /* /x still awaits its 0/0 report but is not listed. */
    assert_int_equal(presence_list(p, T0, &list), 0);
    changes_are(&list, "/y", 1u, 1u, END);
    presence_free(p);
}

static void presence_should_reject_bad_ids(void **state)
{
    struct rng r;
    struct presence *p = mk_default(&r);
    struct presence_reply out;
    char id[PRESENCE_MAX_ID + 2], gal[PRESENCE_MAX_GALLERY + 2];
    unsigned v, e;

    (void)state;
    memset(id, 'c', sizeof(id));
    id[PRESENCE_MAX_ID + 1] = '\0'; /* 129 bytes */
    gal[0] = '/';
    memset(gal + 1, 'g', sizeof(gal) - 1);
    gal[PRESENCE_MAX_GALLERY + 1] = '\0'; /* 1025 bytes */
    assert_int_equal(presence_join(p, id, "/a", NULL, T0, &out, NULL), LS_ETOOBIG);
    assert_int_equal(presence_join(p, "c1", gal, NULL, T0, &out, NULL), LS_ETOOBIG);
    assert_int_equal(presence_join(p, NULL, "/a", NULL, T0, &out, NULL), LS_EVALUE);
    assert_int_equal(presence_join(p, "", "/a", NULL, T0, &out, NULL), LS_EVALUE);
    assert_int_equal(presence_join(p, "c1", "", NULL, T0, &out, NULL), LS_EVALUE);
    assert_int_equal(presence_move(p, "c1", NULL, "/a", gal, T0, &out, NULL), LS_ETOOBIG);
    assert_int_equal(presence_move(p, "c1", NULL, NULL, "/a", T0, &out, NULL), LS_EVALUE);
    assert_int_equal(presence_leave(p, id, NULL, "/a", T0, &out, NULL), LS_ETOOBIG);
    assert_int_equal(presence_heartbeat(p, "c1", gal, T0, &out, NULL), LS_ETOOBIG);
    assert_int_equal(presence_touch_edit(p, id, T0, NULL), LS_ETOOBIG);
    assert_int_equal(presence_counts(p, gal, T0, &v, &e), LS_ETOOBIG);
    assert_int_equal(presence_lookup(p, NULL, T0, NULL, NULL, NULL), LS_EVALUE);
    /* Exactly at the limits is fine, and the reply holds the whole gallery id. */
    id[PRESENCE_MAX_ID] = '\0';
    gal[PRESENCE_MAX_GALLERY] = '\0';
    join_ok(p, id, gal, NULL, T0, &out, NULL);
    assert_string_equal(out.gallery_id, gal);
    counts_are(p, gal, T0, 1, 0);
    presence_free(p);
}

static void presence_should_refuse_new_sessions_past_the_cap(void **state)
{
    struct rng r = {0};
    struct presence *p = mk(&r, 10 * SEC, 4 * SEC, 3);
    struct presence_reply c1, out;
    struct presence_stats st;

    (void)state;
    join_ok(p, "c1", "/a", NULL, T0, &c1, NULL);
    join_ok(p, "c2", "/a", NULL, T0, &out, NULL);
    join_ok(p, "c3", "/b", NULL, T0, &out, NULL);
    assert_int_equal(presence_join(p, "c4", "/a", NULL, T0, &out, NULL), LS_EFULL);
    assert_int_equal(out.result, PRESENCE_OK);
    assert_string_equal(out.lease_id, ""); /* zeroed */
    assert_int_equal(presence_heartbeat(p, "c4", "/a", T0, &out, NULL), LS_EFULL);
    /* Existing sessions still work. */
    join_ok(p, "c1", "/c", c1.lease_id, T0, &out, NULL);
    assert_int_equal(presence_move(p, "c1", c1.lease_id, "/c", "/d", T0, &out, NULL), 0);
    assert_int_equal(out.result, PRESENCE_OK);
    assert_int_equal(presence_leave(p, "c1", c1.lease_id, "/d", T0, &out, NULL), 0);
    join_ok(p, "c4", "/a", NULL, T0, &out, NULL);
    /* Expiry frees room too. */
    assert_int_equal(presence_join(p, "c5", "/a", NULL, T0, &out, NULL), LS_EFULL);
    join_ok(p, "c5", "/a", NULL, T0 + 10 * SEC + 1, &out, NULL);
    presence_stats(p, T0 + 10 * SEC + 1, &st);
    assert_int_equal(st.active_clients, 1);
    assert_int_equal(presence_check(p), 0);
    presence_free(p);
}

static void presence_should_hold_at_most_presence_max_clients(void **state)
{
    struct rng r = {0};
    struct presence *p = mk(&r, 10 * SEC, 4 * SEC, (size_t)PRESENCE_MAX_CLIENTS + 5);
    struct presence_reply out;
    struct presence_stats st;
    char client[32];

    (void)state;
    for (int i = 0; i < PRESENCE_MAX_CLIENTS; i++) {
        snprintf(client, sizeof(client), "client-%d", i);
        assert_int_equal(presence_heartbeat(p, client, i % 2 ? "/odd" : "/even", T0, &out, NULL),
                         0);
    }
    assert_int_equal(presence_heartbeat(p, "one-more", "/a", T0, &out, NULL), LS_EFULL);
    presence_stats(p, T0, &st);
    assert_int_equal(st.active_clients, PRESENCE_MAX_CLIENTS);
    assert_int_equal(st.active_scopes, 2);
    counts_are(p, "/odd", T0, PRESENCE_MAX_CLIENTS / 2, 0);
    assert_int_equal(presence_check(p), 0);
    presence_free(p);
}

static void presence_should_never_reuse_a_lease_with_a_stuck_random_source(void **state)
{
    struct rng r = {0, true};
    struct presence *p = mk(&r, 10 * SEC, 4 * SEC, 0);
    struct presence_reply first, second, out;

    (void)state;
    join_ok(p, "c1", "/a", NULL, T0, &first, NULL);
    join_ok(p, "c1", "/a", NULL, T0, &second, NULL);
    assert_string_not_equal(first.lease_id, second.lease_id);
    assert_int_equal(presence_join(p, "c1", "/a", first.lease_id, T0, &out, NULL), 0);
    assert_int_equal(out.result, PRESENCE_INVALID_LEASE);
    presence_free(p);
}

static void presence_should_use_getrandom_by_default(void **state)
{
    struct presence *p = presence_new(NULL, NULL);
    struct presence_reply a, b;

    (void)state;
    assert_non_null(p);
    join_ok(p, "c1", "/a", NULL, T0, &a, NULL);
    join_ok(p, "c2", "/a", NULL, T0, &b, NULL);
    assert_string_not_equal(a.lease_id, b.lease_id);
    presence_free(p);
    presence_free(NULL);
    presence_changes_cleanup(NULL);
}

/* ---- threads ------------------------------------------------------------- */

#define MT_THREADS   8
#define MT_OPS       20000
#define MT_CLIENTS   256
#define MT_GALLERIES 6

static const char *const mt_galleries[MT_GALLERIES] = {"/a", "/b", "/c", "/a/x", "/\xc3\xa9", "/z"};

struct mt_shared {
    struct presence *p;
    atomic_llong clock;
    pthread_mutex_t hint_lock; /* guards hints only; never held across a presence call */
    char hints[MT_CLIENTS][PRESENCE_LEASE_LEN + 1];
    pthread_barrier_t bar;
};

struct mt_worker {
    struct mt_shared *sh;
    unsigned long long seed;
    int index;
    int failures;
    char first_failure[160];
};

static unsigned long long xorshift(unsigned long long *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void mt_fail(struct mt_worker *w, const char *what, int line)
{
    if (w->failures++ == 0)
        snprintf(w->first_failure, sizeof(w->first_failure), "thread %d line %d: %s", w->index,
                 line, what);
}

#define MT_CHECK(w, cond)                  \
    do {                                   \
        if (!(cond))                       \
            mt_fail((w), #cond, __LINE__); \
    } while (0)

static void mt_check_reply(struct mt_worker *w, const struct presence_reply *o)
{
    MT_CHECK(w, o->result == PRESENCE_OK || o->result == PRESENCE_INVALID_LEASE ||
                    o->result == PRESENCE_SCOPE_MISMATCH);
    MT_CHECK(w, o->editing <= o->viewing && o->viewing <= MT_CLIENTS);
    MT_CHECK(w, o->from_editing <= o->from_viewing && o->to_editing <= o->to_viewing);
    MT_CHECK(w, o->result != PRESENCE_OK || o->lease_id[0] != '\0' || !o->removed);
}

/* Every op's own report is sorted strictly and self-consistent. */
static void mt_check_changes(struct mt_worker *w, struct presence_changes *ch)
{
    for (size_t i = 0; i < ch->n; i++) {
        MT_CHECK(w, ch->items[i].editing <= ch->items[i].viewing);
        MT_CHECK(w, i == 0 || strcmp(ch->items[i - 1].gallery_id, ch->items[i].gallery_id) < 0);
    }
    presence_changes_cleanup(ch);
}

static void *mt_run(void *arg)
{
    struct mt_worker *w = arg;
    struct mt_shared *sh = w->sh;
    struct presence_changes ch = {0};
    struct presence_reply o;
    char client[16], lease[PRESENCE_LEASE_LEN + 1];

    pthread_barrier_wait(&sh->bar);
    for (int op = 0; op < MT_OPS; op++) {
        unsigned long long x = xorshift(&w->seed);
        int c = (int)(x % MT_CLIENTS), kind = (int)((x >> 16) % 100);
        const char *g1 = mt_galleries[(x >> 24) % MT_GALLERIES];
        const char *g2 = mt_galleries[(x >> 32) % MT_GALLERIES];
        long long now = atomic_fetch_add(&sh->clock, 1);
        int rc = 0;

        snprintf(client, sizeof(client), "mt-%d", c);
        pthread_mutex_lock(&sh->hint_lock);
        memcpy(lease, sh->hints[c], sizeof(lease));
        pthread_mutex_unlock(&sh->hint_lock);
        memset(&o, 0, sizeof(o));
        if (kind < 30) {
            rc = presence_join(sh->p, client, g1, (x >> 40) % 4 ? lease : NULL, now, &o, &ch);
        } else if (kind < 55) {
            rc = presence_move(sh->p, client, lease, g1, g2, now, &o, &ch);
            MT_CHECK(w, rc != 0 || o.result != PRESENCE_OK || strcmp(o.lease_id, lease) == 0);
        } else if (kind < 70) {
            rc = presence_leave(sh->p, client, lease, g1, now, &o, &ch);
        } else if (kind < 80) {
            rc = presence_heartbeat(sh->p, client, g1, now, &o, &ch);
        } else if (kind < 95) {
            rc = presence_touch_edit(sh->p, client, now, &ch);
        } else if (kind < 98) {
            rc = presence_prune(sh->p, now, &ch);
        } else {
            rc = presence_check(sh->p);
        }
        MT_CHECK(w, rc == 0);
        mt_check_reply(w, &o);
        mt_check_changes(w, &ch);
        if (o.result == PRESENCE_OK && o.lease_id[0] && !o.removed) {
            pthread_mutex_lock(&sh->hint_lock);
            memcpy(sh->hints[c], o.lease_id, sizeof(o.lease_id));
            pthread_mutex_unlock(&sh->hint_lock);
        }
    }
    return NULL;
}

/* Recount every gallery from the per-client lookups and compare. */
static void recount_and_compare(struct presence *p, long long now, int nclients, const char *prefix)
{
    unsigned view[MT_GALLERIES] = {0}, edit[MT_GALLERIES] = {0};
    struct presence_changes list = {0};
    struct presence_stats st;
    size_t found = 0, nonempty = 0;
    char client[16], g[PRESENCE_MAX_GALLERY + 1];

    for (int c = 0; c < nclients; c++) {
        bool editing = false;
        int gi = -1;

        snprintf(client, sizeof(client), "%s%d", prefix, c);
        if (presence_lookup(p, client, now, g, NULL, &editing) != 0)
            continue;
        for (int i = 0; i < MT_GALLERIES; i++)
            if (strcmp(g, mt_galleries[i]) == 0)
                gi = i;
        assert_true(gi >= 0); /* in exactly one known gallery */
        view[gi]++;
        edit[gi] += editing;
        found++;
    }
    for (int i = 0; i < MT_GALLERIES; i++) {
        counts_are(p, mt_galleries[i], now, view[i], edit[i]);
        nonempty += view[i] != 0;
    }
    presence_stats(p, now, &st);
    assert_int_equal(st.active_clients, found);
    assert_int_equal(st.active_scopes, nonempty);
    assert_int_equal(presence_list(p, now, &list), 0);
    assert_int_equal(list.n, nonempty);
    for (size_t i = 0; i < list.n; i++)
        for (int j = 0; j < MT_GALLERIES; j++)
            if (strcmp(list.items[i].gallery_id, mt_galleries[j]) == 0) {
                assert_int_equal(list.items[i].viewing, view[j]);
                assert_int_equal(list.items[i].editing, edit[j]);
            }
    presence_changes_cleanup(&list);
    assert_int_equal(presence_check(p), 0);
}

static void presence_should_keep_invariants_under_concurrent_use(void **state)
{
    struct rng r = {0};
    struct mt_shared *sh = calloc(1, sizeof(*sh));
    struct mt_worker w[MT_THREADS];
    pthread_t th[MT_THREADS];
    struct presence_changes ch = {0};
    struct presence_stats st;
    long long end;

    (void)state;
    assert_non_null(sh);
    /* TTLs in clock ticks (one tick per op): some sessions and edits lapse mid-run. */
    sh->p = mk(&r, 600, 300, 0);
    atomic_init(&sh->clock, T0);
    pthread_mutex_init(&sh->hint_lock, NULL);
    pthread_barrier_init(&sh->bar, NULL, MT_THREADS);
    for (int i = 0; i < MT_THREADS; i++) {
        w[i].sh = sh;
        w[i].seed = 0x9e3779b97f4a7c15ULL * (unsigned long long)(i + 1);
        w[i].index = i;
        w[i].failures = 0;
        w[i].first_failure[0] = '\0';
        assert_int_equal(pthread_create(&th[i], NULL, mt_run, &w[i]), 0);
    }
    for (int i = 0; i < MT_THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < MT_THREADS; i++) {
        if (w[i].failures)
            fail_msg("%d failures, first: %s", w[i].failures, w[i].first_failure);
    }
    end = atomic_load(&sh->clock);
    recount_and_compare(sh->p, end, MT_CLIENTS, "mt-");
    /* The run went through every branch (by a wide margin for these seeds). */
    presence_stats(sh->p, end, &st);
    assert_true(st.stale_pruned_total > 0);
    assert_true(st.invalid_lease_total > 0);
    assert_true(st.scope_mismatch_total > 0);
    /* After one report everything is reported: a second report is empty. */
    assert_int_equal(presence_prune(sh->p, end, &ch), 0);
    presence_changes_cleanup(&ch);
    assert_int_equal(presence_prune(sh->p, end, &ch), 0);
    assert_int_equal(ch.n, 0);
    /* And once everything lapses, nothing is left. */
    recount_and_compare(sh->p, end + 601, MT_CLIENTS, "mt-");
    assert_int_equal(presence_list(sh->p, end + 601, &ch), 0);
    assert_int_equal(ch.n, 0);
    pthread_barrier_destroy(&sh->bar);
    pthread_mutex_destroy(&sh->hint_lock);
    presence_free(sh->p);
    free(sh);
}

/*
 * Each thread owns its clients, so it can predict every answer exactly while
 * the others hammer the same galleries; TTLs are long enough not to lapse.
 */
#define OWN_CLIENTS 16

struct own_worker {
    struct presence *p;
    pthread_barrier_t *bar;
    int index, failures;
    unsigned long long seed;
    char first_failure[160];
    int gallery[OWN_CLIENTS]; /* -1 = no session */
    bool edited[OWN_CLIENTS];
    char lease[OWN_CLIENTS][PRESENCE_LEASE_LEN + 1];
};

static void own_fail(struct own_worker *w, const char *what, int line)
{
    if (w->failures++ == 0)
        snprintf(w->first_failure, sizeof(w->first_failure), "thread %d line %d: %s", w->index,
                 line, what);
}

#define OWN_CHECK(w, cond)                  \
    do {                                    \
        if (!(cond))                        \
            own_fail((w), #cond, __LINE__); \
    } while (0)

static void *own_run(void *arg)
{
    struct own_worker *w = arg;
    struct presence_reply o;
    char client[16];

    pthread_barrier_wait(w->bar);
    for (int op = 0; op < MT_OPS / 2; op++) {
        unsigned long long x = xorshift(&w->seed);
        int c = (int)(x % OWN_CLIENTS), kind = (int)((x >> 8) % 6);
        int g1 = (int)((x >> 16) % MT_GALLERIES), g2 = (int)((x >> 24) % MT_GALLERIES);
        int cur = w->gallery[c];
        const char *good = w->lease[c], *bad = "0000000000000000000000000000dead";

        snprintf(client, sizeof(client), "own-%d", w->index * OWN_CLIENTS + c);
        switch (kind) {
        case 0: /* join with the right lease, with none, or with a wrong one */
            OWN_CHECK(w, presence_join(w->p, client, mt_galleries[g1],
                                       (x >> 32) % 3 == 0   ? bad
                                       : (x >> 32) % 3 == 1 ? good
                                                            : NULL,
                                       T0, &o, NULL) == 0);
            if (cur >= 0 && (x >> 32) % 3 == 0) {
                OWN_CHECK(w, o.result == PRESENCE_INVALID_LEASE);
                break;
            }
            OWN_CHECK(w, o.result == PRESENCE_OK);
            if (cur >= 0 && (x >> 32) % 3 == 1)
                OWN_CHECK(w, strcmp(o.lease_id, good) == 0);
            else
                OWN_CHECK(w, strcmp(o.lease_id, good) != 0);
            if (cur < 0)
                w->edited[c] = false;
            w->gallery[c] = g1;
            memcpy(w->lease[c], o.lease_id, sizeof(o.lease_id));
            break;
        case 1:
            OWN_CHECK(w, presence_move(w->p, client, (x >> 32) % 5 ? good : bad, mt_galleries[g1],
                                       mt_galleries[g2], T0, &o, NULL) == 0);
            if (cur < 0 || (x >> 32) % 5 == 0) {
                OWN_CHECK(w, o.result == PRESENCE_INVALID_LEASE);
            } else if (cur == g2) {
                OWN_CHECK(w, o.result == PRESENCE_OK);
            } else if (cur != g1) {
                OWN_CHECK(w, o.result == PRESENCE_SCOPE_MISMATCH);
                OWN_CHECK(w, strcmp(o.gallery_id, mt_galleries[cur]) == 0);
            } else {
                OWN_CHECK(w, o.result == PRESENCE_OK);
                w->gallery[c] = g2;
            }
            break;
        case 2:
            OWN_CHECK(w, presence_leave(w->p, client, good, mt_galleries[g1], T0, &o, NULL) == 0);
            if (cur < 0) {
                OWN_CHECK(w, o.result == PRESENCE_OK && !o.removed);
            } else if (cur != g1) {
                OWN_CHECK(w, o.result == PRESENCE_SCOPE_MISMATCH);
            } else {
                OWN_CHECK(w, o.result == PRESENCE_OK && o.removed);
                w->gallery[c] = -1;
                w->lease[c][0] = '\0';
            }
            break;
        case 3:
            OWN_CHECK(w, presence_heartbeat(w->p, client, mt_galleries[g1], T0, &o, NULL) == 0);
            OWN_CHECK(w, o.result == PRESENCE_OK);
            if (cur >= 0)
                OWN_CHECK(w, strcmp(o.lease_id, good) == 0);
            else
                w->edited[c] = false;
            w->gallery[c] = g1;
            memcpy(w->lease[c], o.lease_id, sizeof(o.lease_id));
            break;
        default:
            OWN_CHECK(w, presence_touch_edit(w->p, client, T0, NULL) == 0);
            if (cur >= 0)
                w->edited[c] = true;
            break;
        }
    }
    return NULL;
}

static void presence_should_match_a_per_thread_model_under_concurrency(void **state)
{
    struct rng r = {0};
    struct presence *p = mk(&r, 3600 * SEC, 3600 * SEC, 0);
    struct own_worker w[MT_THREADS];
    pthread_t th[MT_THREADS];
    pthread_barrier_t bar;
    unsigned view[MT_GALLERIES] = {0}, edit[MT_GALLERIES] = {0};

    (void)state;
    pthread_barrier_init(&bar, NULL, MT_THREADS);
    for (int i = 0; i < MT_THREADS; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].p = p;
        w[i].bar = &bar;
        w[i].index = i;
        w[i].seed = 0x2545f4914f6cdd1dULL * (unsigned long long)(i + 3);
        for (int c = 0; c < OWN_CLIENTS; c++)
            w[i].gallery[c] = -1;
        assert_int_equal(pthread_create(&th[i], NULL, own_run, &w[i]), 0);
    }
    for (int i = 0; i < MT_THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < MT_THREADS; i++) {
        if (w[i].failures)
            fail_msg("%d failures, first: %s", w[i].failures, w[i].first_failure);
        for (int c = 0; c < OWN_CLIENTS; c++)
            if (w[i].gallery[c] >= 0) {
                view[w[i].gallery[c]]++;
                edit[w[i].gallery[c]] += w[i].edited[c];
            }
    }
    for (int i = 0; i < MT_GALLERIES; i++)
        counts_are(p, mt_galleries[i], T0, view[i], edit[i]);
    recount_and_compare(p, T0, MT_THREADS * OWN_CLIENTS, "own-");
    pthread_barrier_destroy(&bar);
    presence_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(presence_should_create_a_session_with_a_new_lease_on_first_join),
        cmocka_unit_test(presence_should_ignore_a_stale_lease_when_no_session_exists),
        cmocka_unit_test(presence_should_treat_a_join_with_the_same_lease_as_a_heartbeat),
        cmocka_unit_test(presence_should_move_on_a_join_with_the_same_lease_to_another_gallery),
        cmocka_unit_test(presence_should_issue_a_new_lease_on_takeover_and_invalidate_the_old),
        cmocka_unit_test(presence_should_reject_a_join_with_a_different_lease),
        cmocka_unit_test(presence_should_reject_a_move_without_a_session),
        cmocka_unit_test(presence_should_check_the_lease_before_the_scope_on_move),
        cmocka_unit_test(presence_should_answer_a_move_to_the_current_gallery_with_true_counts),
        cmocka_unit_test(presence_should_report_scope_mismatch_with_the_actual_gallery),
        cmocka_unit_test(presence_should_move_between_galleries_keeping_the_last_write),
        cmocka_unit_test(presence_should_keep_the_last_write_across_a_takeover),
        cmocka_unit_test(presence_should_leave_idempotently_without_a_session),
        cmocka_unit_test(presence_should_reject_a_leave_with_a_wrong_lease),
        cmocka_unit_test(presence_should_reject_a_leave_from_another_gallery),
        cmocka_unit_test(presence_should_report_an_emptied_gallery_once_as_zero),
        cmocka_unit_test(presence_should_create_or_touch_on_legacy_heartbeat),
        cmocka_unit_test(presence_should_count_views_up_to_exactly_the_view_ttl),
        cmocka_unit_test(presence_should_count_edits_up_to_exactly_the_edit_ttl),
        cmocka_unit_test(presence_should_report_lapsed_editing_on_prune),
        cmocka_unit_test(presence_should_report_expiry_seen_by_an_unrelated_call),
        cmocka_unit_test(presence_should_ignore_touch_edit_without_a_session),
        cmocka_unit_test(presence_should_use_75_and_60_seconds_by_default),
        cmocka_unit_test(presence_should_treat_a_clock_going_backwards_as_standing_still),
        cmocka_unit_test(presence_should_report_changes_sorted_bytewise),
        cmocka_unit_test(presence_should_keep_changes_pending_without_a_list),
        cmocka_unit_test(presence_should_not_report_a_change_that_changed_back),
        cmocka_unit_test(presence_should_append_to_a_list_already_holding_items),
        cmocka_unit_test(presence_should_count_two_clients_in_one_gallery),
        cmocka_unit_test(presence_should_list_only_non_empty_galleries),
        cmocka_unit_test(presence_should_reject_bad_ids),
        cmocka_unit_test(presence_should_refuse_new_sessions_past_the_cap),
        cmocka_unit_test(presence_should_hold_at_most_presence_max_clients),
        cmocka_unit_test(presence_should_never_reuse_a_lease_with_a_stuck_random_source),
        cmocka_unit_test(presence_should_use_getrandom_by_default),
        cmocka_unit_test(presence_should_keep_invariants_under_concurrent_use),
        cmocka_unit_test(presence_should_match_a_per_thread_model_under_concurrency),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
