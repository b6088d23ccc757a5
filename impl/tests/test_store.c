/*
 * test_store.c - the record store: loading, lookups, folders, the commit
 * path (conflict, no-op, apply, hook refusal), and 32 concurrent writers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <unistd.h>

#include "patch.h"
#include "store.h"
#include "testutil.h"

static struct store *make_store(void)
{
    static const char *const paths[] = {"/b.png",        "/a/x.jpg", "/a/b/y.png",
                                        "/a/b-c/z.webp", "/a/b.png", "/c/d/e/f.jpg"};
    struct store *s = store_new();

    assert_non_null(s);
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        assert_int_equal(store_add_item(s, paths[i]), 0);
    return s;
}

static void parse(const char *body, enum patch_kind kind, struct patch *p)
{
    struct patch_error pe;

    memset(&pe, 0, sizeof(pe));
    assert_int_equal(patch_parse(kind, body, strlen(body), p, &pe), 0);
}

static void store_should_reject_non_canonical_items(void **state)
{
    struct store *s = store_new();

    (void)state;
    assert_int_equal(store_add_item(s, "a.png"), LS_EPATH);
    assert_int_equal(store_add_item(s, "/a//b.png"), LS_EPATH);
    assert_int_equal(store_add_item(s, "/"), LS_EPATH);
    assert_int_equal(store_add_item(s, "/ok.png"), 0);
    store_free(s);
    store_free(NULL);
}

static void store_should_start_items_at_version_one_never_written(void **state)
{
    struct store *s = make_store();
    struct store_record r;
    cJSON *j;
    char *text;

    (void)state;
    assert_int_equal(store_get(s, "/a/x.jpg", &r), 0);
    assert_int_equal(r.version, 1);
    assert_int_equal(r.updated_at_us, 0);
    assert_null(r.updated_by);
    j = store_record_to_json(&r);
    text = cJSON_PrintUnformatted(j);
    assert_string_equal(text, "{\"path\":\"/a/x.jpg\",\"tags\":[],\"notes\":\"\",\"star\":null,"
                              "\"metrics\":{},\"version\":1,\"updated_at\":null,"
                              "\"updated_by\":null}");
    free(text);
    cJSON_Delete(j);
    store_record_cleanup(&r);
    assert_int_equal(store_get(s, "/nope.png", &r), LS_ENOTFOUND);
    assert_false(store_has_item(s, "/a"));
    assert_true(store_has_item(s, "/b.png"));
    store_free(s);
}

static void store_should_list_direct_children_sorted(void **state)
{
    struct store *s = make_store();
    struct store_folder f;

    (void)state;
    assert_int_equal(store_list_folder(s, "/a", &f), 0);
    assert_int_equal(f.nfolders, 2);
    assert_string_equal(f.folders[0], "/a/b");
    assert_string_equal(f.folders[1], "/a/b-c");
    assert_int_equal(f.nitems, 2);
    assert_string_equal(f.items[0].path, "/a/b.png");
    assert_string_equal(f.items[1].path, "/a/x.jpg");
    store_folder_cleanup(&f);
    assert_int_equal(store_list_folder(s, "/", &f), 0);
    assert_int_equal(f.nfolders, 2); /* /a and /c */
    assert_int_equal(f.nitems, 1);
    store_folder_cleanup(&f);
    assert_int_equal(store_list_folder(s, "/c", &f), 0);
    assert_int_equal(f.nfolders, 1);
    assert_string_equal(f.folders[0], "/c/d");
    assert_int_equal(f.nitems, 0);
    store_folder_cleanup(&f);
    assert_int_equal(store_list_folder(s, "/b.png", &f), LS_ENOTFOUND);
    assert_int_equal(store_list_folder(s, "/zz", &f), LS_ENOTFOUND);
    assert_int_equal(store_list_folder(s, "/a/b-", &f), LS_ENOTFOUND);
    store_free(s);
}

static void store_should_apply_conflict_and_noop(void **state)
{
    struct store *s = make_store();
    struct store_write w;
    struct store_result res;
    struct patch p;

    (void)state;
    parse("{\"base_version\":1,\"set_star\":4,\"add_tags\":[\" x \"]}", PATCH_KIND_PATCH, &p);
    memset(&w, 0, sizeof(w));
    w.path = "/b.png";
    w.patch = &p;
    w.has_expected = true;
    w.expected = 1;
    w.actor = "alice";
    w.now_us = 1700000000123456LL;
    assert_int_equal(store_write(s, &w, &res), 0);
    assert_int_equal(res.outcome, STORE_APPLIED);
    assert_int_equal(res.seq, 1);
    assert_int_equal(res.changed, PATCH_CHANGED_TAGS | PATCH_CHANGED_STAR);
    assert_int_equal(res.rec.version, 2);
    assert_int_equal(res.rec.labels.star, 4);
    assert_string_equal(res.rec.labels.tags[0], "x");
    assert_string_equal(res.rec.updated_by, "alice");
    store_result_cleanup(&res);

    /* The same base version again is now stale. */
    assert_int_equal(store_write(s, &w, &res), 0);
    assert_int_equal(res.outcome, STORE_CONFLICT);
    assert_int_equal(res.rec.version, 2);
    store_result_cleanup(&res);

    /* The same change at the current version changes nothing. */
    w.expected = 2;
    w.now_us += 1000;
    assert_int_equal(store_write(s, &w, &res), 0);
    assert_int_equal(res.outcome, STORE_NOOP);
    assert_int_equal(res.rec.version, 2);
    assert_int_equal(res.rec.updated_at_us, 1700000000123456LL);
    assert_int_equal(store_seq(s), 1);
    store_result_cleanup(&res);

    w.path = "/missing.png";
    assert_int_equal(store_write(s, &w, &res), 0);
    assert_int_equal(res.outcome, STORE_NOT_FOUND);
    patch_cleanup(&p);
    store_free(s);
}

static int refuse_hook(void *ctx, const struct store_write *w, const struct store_record *next,
                       unsigned changed, unsigned long long *seq, void **ticket)
{
    *ticket = NULL;
    int *calls = ctx;

    (*calls)++;
    assert_string_equal(w->path, "/b.png");
    assert_int_equal(next->version, 2);
    assert_int_equal(*seq, 1);
    assert_true(changed & PATCH_CHANGED_NOTES);
    return -ENOSPC;
}

static void store_should_change_nothing_when_the_commit_hook_refuses(void **state)
{
    struct store *s = make_store();
    struct store_write w;
    struct store_result res;
    struct store_record r;
    struct patch p;
    int calls = 0;

    (void)state;
    {
        static const struct store_commit_ops ops = {refuse_hook, NULL, NULL};

        store_set_commit_ops(s, &ops, &calls);
    }
    parse("{\"set_notes\":\"n\"}", PATCH_KIND_PATCH, &p);
    memset(&w, 0, sizeof(w));
    w.path = "/b.png";
    w.patch = &p;
    w.actor = "x";
    w.now_us = 5;
    assert_int_equal(store_write(s, &w, &res), -ENOSPC);
    assert_int_equal(calls, 1);
    assert_int_equal(store_get(s, "/b.png", &r), 0);
    assert_int_equal(r.version, 1);
    assert_string_equal(r.labels.notes, "");
    assert_int_equal(store_seq(s), 0);
    store_record_cleanup(&r);
    patch_cleanup(&p);
    store_free(s);
}

static void store_should_report_too_many_tags_without_change(void **state)
{
    struct store *s = make_store();
    struct store_write w;
    struct store_result res;
    struct patch p;
    char body[4096];
    size_t n;

    (void)state;
    n = (size_t)snprintf(body, sizeof(body), "{\"tags\":[");
    for (int i = 0; i < PATCH_MAX_TAGS_ITEM + 1; i++)
        n += (size_t)snprintf(body + n, sizeof(body) - n, "%s\"t%d\"", i ? "," : "", i);
    snprintf(body + n, sizeof(body) - n, "]}");
    parse(body, PATCH_KIND_PUT, &p);
    memset(&w, 0, sizeof(w));
    w.path = "/b.png";
    w.patch = &p;
    w.actor = "x";
    assert_int_equal(store_write(s, &w, &res), 0);
    assert_int_equal(res.outcome, STORE_TOO_MANY_TAGS);
    assert_int_equal(res.rec.version, 1);
    assert_int_equal(res.rec.labels.ntags, 0);
    store_result_cleanup(&res);
    patch_cleanup(&p);
    store_free(s);
}

struct racer {
    struct store *s;
    struct patch *p;
    int outcome;
    pthread_barrier_t *bar;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    struct store_write w;
    struct store_result res;

    memset(&w, 0, sizeof(w));
    w.path = "/a/x.jpg";
    w.patch = r->p;
    w.has_expected = true;
    w.expected = 1;
    w.actor = "racer";
    w.now_us = 1;
    pthread_barrier_wait(r->bar);
    if (store_write(r->s, &w, &res) != 0)
        r->outcome = -1;
    else
        r->outcome = (int)res.outcome;
    store_result_cleanup(&res);
    return NULL;
}

static void store_should_let_exactly_one_of_32_writers_win(void **state)
{
    struct store *s = make_store();
    struct patch p[32];
    struct racer rs[32];
    pthread_t th[32];
    pthread_barrier_t bar;
    struct store_record rec;
    int applied = 0, conflicts = 0, winner = -1;
    char body[64];

    (void)state;
    pthread_barrier_init(&bar, NULL, 32);
    for (int i = 0; i < 32; i++) {
        snprintf(body, sizeof(body), "{\"set_notes\":\"writer %d\",\"set_star\":%d}", i, i % 6);
        parse(body, PATCH_KIND_PATCH, &p[i]);
        rs[i].s = s;
        rs[i].p = &p[i];
        rs[i].bar = &bar;
        assert_int_equal(pthread_create(&th[i], NULL, race, &rs[i]), 0);
    }
    for (int i = 0; i < 32; i++) {
        pthread_join(th[i], NULL);
        if (rs[i].outcome == STORE_APPLIED) {
            applied++;
            winner = i;
        } else if (rs[i].outcome == STORE_CONFLICT) {
            conflicts++;
        }
    }
    assert_int_equal(applied, 1);
    assert_int_equal(conflicts, 31);
    /* No torn record: notes and star come from the same writer. */
    assert_int_equal(store_get(s, "/a/x.jpg", &rec), 0);
    snprintf(body, sizeof(body), "writer %d", winner);
    assert_string_equal(rec.labels.notes, body);
    assert_int_equal(rec.labels.star, winner % 6);
    assert_int_equal(rec.version, 2);
    store_record_cleanup(&rec);
    for (int i = 0; i < 32; i++)
        patch_cleanup(&p[i]);
    pthread_barrier_destroy(&bar);
    store_free(s);
}

/* Two-phase commit: a write waiting for durability does not block other
 * items, and a later write to the same item waits for it. */
struct gate {
    pthread_mutex_t m;
    pthread_cond_t c;
    bool open;
    int prepared, finished_ok;
    char order[8][32];
    int norder;
};

static int gate_prepare(void *ctx, const struct store_write *w, const struct store_record *next,
                        unsigned changed, unsigned long long *seq, void **ticket)
{
    struct gate *g = ctx;

    (void)next;
    (void)changed;
    (void)seq;
    pthread_mutex_lock(&g->m);
    g->prepared++;
    snprintf(g->order[g->norder++ % 8], 32, "prepare %s", w->path);
    pthread_cond_broadcast(&g->c);
    pthread_mutex_unlock(&g->m);
    *ticket = NULL;
    return 0;
}

static int gate_wait(void *ctx, void *ticket)
{
    struct gate *g = ctx;

    (void)ticket;
    pthread_mutex_lock(&g->m);
    while (!g->open)
        pthread_cond_wait(&g->c, &g->m);
    pthread_mutex_unlock(&g->m);
    return 0;
}

static void gate_finish(void *ctx, void *ticket, const struct store_record *rec, bool ok)
{
    struct gate *g = ctx;

    (void)ticket;
    pthread_mutex_lock(&g->m);
    g->finished_ok += ok;
    snprintf(g->order[g->norder++ % 8], 32, "finish %s v%llu", rec->path, rec->version);
    pthread_mutex_unlock(&g->m);
}

struct gwriter {
    struct store *s;
    const char *path;
    const char *body;
    int outcome;
};

static void *gwrite(void *arg)
{
    struct gwriter *gw = arg;
    struct store_write w;
    struct store_result res;
    struct patch p;

    parse(gw->body, PATCH_KIND_PATCH, &p);
    memset(&w, 0, sizeof(w));
    w.path = gw->path;
    w.patch = &p;
    w.actor = "g";
    gw->outcome = store_write(gw->s, &w, &res) == 0 ? (int)res.outcome : -1;
    store_result_cleanup(&res);
    patch_cleanup(&p);
    return NULL;
}

static void wait_prepared(struct gate *g, int n)
{
    pthread_mutex_lock(&g->m);
    while (g->prepared < n)
        pthread_cond_wait(&g->c, &g->m);
    pthread_mutex_unlock(&g->m);
}

static void store_should_commit_other_items_while_one_waits(void **state)
{
    struct store *s = make_store();
    struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, 0, {{0}}, 0};
    static const struct store_commit_ops ops = {gate_prepare, gate_wait, gate_finish};
    struct gwriter a = {s, "/b.png", "{\"set_star\":1}", -2};
    struct gwriter b = {s, "/a/x.jpg", "{\"set_star\":2}", -2};
    struct gwriter c = {s, "/b.png", "{\"set_star\":3}", -2};
    struct store_record r;
    pthread_t ta, tb, tc;

    (void)state;
    store_set_commit_ops(s, &ops, &g);
    pthread_create(&ta, NULL, gwrite, &a);
    wait_prepared(&g, 1);
    /* a waits (pending): b, on another item, still gets through prepare. */
    pthread_create(&tb, NULL, gwrite, &b);
    wait_prepared(&g, 2);
    /* c, on a's item, must not prepare before a is finished. */
    pthread_create(&tc, NULL, gwrite, &c);
    usleep(50000);
    pthread_mutex_lock(&g.m);
    assert_int_equal(g.prepared, 2);
    /* Readers still see the old record while it is pending. */
    pthread_mutex_unlock(&g.m);
    assert_int_equal(store_get(s, "/b.png", &r), 0);
    assert_int_equal(r.version, 1);
    store_record_cleanup(&r);
    pthread_mutex_lock(&g.m);
    g.open = true;
    pthread_cond_broadcast(&g.c);
    pthread_mutex_unlock(&g.m);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_join(tc, NULL);
    assert_int_equal(a.outcome, STORE_APPLIED);
    assert_int_equal(b.outcome, STORE_APPLIED);
    assert_int_equal(c.outcome, STORE_APPLIED);
    assert_int_equal(g.finished_ok, 3);
    assert_int_equal(store_get(s, "/b.png", &r), 0);
    assert_int_equal(r.version, 3); /* a then c, in that order */
    assert_int_equal(r.labels.star, 3);
    store_record_cleanup(&r);
    store_free(s);
}

static void store_should_restore_only_newer_versions(void **state)
{
    struct store *s = make_store();
    struct store_record r;
    struct labels l;

    (void)state;
    labels_init(&l);
    l.star = 4;
    assert_int_equal(store_restore(s, "/b.png", &l, 5, 77, "someone", 9), 0);
    l.star = 1;
    assert_int_equal(store_restore(s, "/b.png", &l, 3, 78, "older", 10), 0);
    assert_int_equal(store_restore(s, "/gone.png", &l, 3, 78, "x", 11), LS_ENOTFOUND);
    assert_int_equal(store_get(s, "/b.png", &r), 0);
    assert_int_equal(r.version, 5);
    assert_int_equal(r.labels.star, 4);
    assert_string_equal(r.updated_by, "someone");
    assert_int_equal(store_seq(s), 11);
    store_record_cleanup(&r);
    labels_cleanup(&l);
    store_free(s);
}

static void store_should_load_the_demo_workspace(void **state)
{
    struct store *s = store_new();
    char root[4096];
    size_t n = 0;

    (void)state;
    snprintf(root, sizeof(root), "%s/workspace", tu_spec_dir());
    assert_int_equal(store_load_tree(s, root, &n), 0);
    assert_true(n >= 30);
    assert_true(store_has_item(s, "/animals/cat.jpg"));
    assert_true(store_has_item(s, "/animals/Bear.PNG"));
    assert_true(store_has_item(s, "/with space/a b.png"));
    assert_false(store_has_item(s, "/notes.txt"));
    assert_false(store_has_item(s, "/.hidden/secret.png"));
    store_free(s);
}

static void store_should_format_times_as_rfc3339_utc(void **state)
{
    char t[40];

    (void)state;
    store_format_time(0, t, sizeof(t));
    assert_string_equal(t, "1970-01-01T00:00:00.000000Z");
    store_format_time(1700000000123456LL, t, sizeof(t));
    assert_string_equal(t, "2023-11-14T22:13:20.123456Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(store_should_reject_non_canonical_items),
        cmocka_unit_test(store_should_start_items_at_version_one_never_written),
        cmocka_unit_test(store_should_list_direct_children_sorted),
        cmocka_unit_test(store_should_apply_conflict_and_noop),
        cmocka_unit_test(store_should_change_nothing_when_the_commit_hook_refuses),
        cmocka_unit_test(store_should_report_too_many_tags_without_change),
        cmocka_unit_test(store_should_let_exactly_one_of_32_writers_win),
        cmocka_unit_test(store_should_commit_other_items_while_one_waits),
        cmocka_unit_test(store_should_restore_only_newer_versions),
        cmocka_unit_test(store_should_load_the_demo_workspace),
        cmocka_unit_test(store_should_format_times_as_rfc3339_utc),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
