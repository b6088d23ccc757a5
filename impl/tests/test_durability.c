/*
 * test_durability.c - the server's request logic over a real label log:
 * writes survive a restart, idempotent answers come back byte for byte after
 * it, event ids continue, a full disk answers 503 and changes nothing, a
 * failed fdatasync stops writes, and a second server is refused by the lock.
 * Linked with the fault-injection build of wal.c (LS_FAULT).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cmocka.h>

#include "http.h"
#include "testutil.h"
#include "trace.h"

/* One server instance over a workspace (no sockets). */
struct inst {
    struct store *store;
    struct idem *idem;
    struct events_hub *events;
    struct presence *presence;
    struct wal *wal;
    struct http_app *app;
    struct wal_open_info info;
};

static char ws[256];

static void write_png(const char *path)
{
    static const unsigned char png[] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    fwrite(png, 1, sizeof(png), f);
    fclose(f);
}

static int replay_item(void *ctx, const struct wal_item *r)
{
    struct inst *in = ctx;
    int rc = store_restore(in->store, r->path, &r->labels, r->version, r->updated_at_us,
                           r->updated_by, r->id);

    if (!rc && r->has_idem) {
        struct store_record rec = {(char *)(uintptr_t)r->path, r->labels, r->version,
                                   r->updated_at_us, (char *)(uintptr_t)r->updated_by};
        char *body = http_write_body(&rec, r->idem_key, r->changed, r->id);
        char etag[32];

        snprintf(etag, sizeof(etag), "\"%llu\"", r->version);
        rc = idem_restore(in->idem, r->idem_scope, r->idem_key, r->idem_fp, 200, body, strlen(body),
                          etag, 0, 0);
        free(body);
    }
    return rc == LS_ENOTFOUND ? 0 : rc;
}

static int replay_idem(void *ctx, const struct wal_idem *r)
{
    struct inst *in = ctx;

    return idem_restore(in->idem, r->scope, r->key, r->fp, r->status, r->body, r->body_len, r->etag,
                        0, 0);
}

/* Start an instance; returns the wal_open error (0 on success). */
static int start(struct inst *in)
{
    static const struct wal_replay_cb cb = {replay_item, replay_idem};
    struct events_config ecfg = {64, 32, 1000, 100};
    struct presence_config pcfg;
    struct wal_config wcfg;
    struct http_config cfg;
    struct http_deps deps;
    int err = 0;

    memset(in, 0, sizeof(*in));
    memset(&pcfg, 0, sizeof(pcfg));
    memset(&wcfg, 0, sizeof(wcfg));
    memset(&cfg, 0, sizeof(cfg));
    in->store = store_new();
    assert_int_equal(store_load_tree(in->store, ws, NULL), 0);
    in->idem = idem_new(1024, 1 << 20, IDEM_DEFAULT_TTL_US);
    wcfg.root = ws;
    wcfg.mode = WAL_FSYNC_ALWAYS;
    in->wal = wal_open(&wcfg, &cb, in, &in->info, &err);
    if (!in->wal) {
        idem_free(in->idem);
        store_free(in->store);
        return err;
    }
    in->events = events_new(&ecfg, in->info.last_id, &err);
    in->presence = presence_new(&pcfg, &err);
    deps.store = in->store;
    deps.idem = in->idem;
    deps.events = in->events;
    deps.presence = in->presence;
    deps.wal = in->wal;
    cfg.root = ws;
    in->app = http_app_new(&cfg, 7070, &deps, &err);
    assert_non_null(in->app);
    return 0;
}

static void stop(struct inst *in)
{
    http_app_free(in->app);
    wal_close(in->wal);
    presence_free(in->presence);
    events_free(in->events);
    idem_free(in->idem);
    store_free(in->store);
}

struct res {
    struct http_response r;
    cJSON *json;
};

static void call(struct inst *in, const char *method, const char *path, const char *key,
                 const char *body, struct res *out)
{
    struct http_kv q = {"path", path, strlen(path)};
    struct http_kv h[3];
    struct http_request req;
    size_t nh = 0;

    h[nh++] = (struct http_kv){"Content-Type", "application/json", 16};
    h[nh++] = (struct http_kv){"X-Client-Id", "tab-1", 5};
    if (key)
        h[nh++] = (struct http_kv){"Idempotency-Key", key, strlen(key)};
    memset(&req, 0, sizeof(req));
    req.method = method;
    req.url = "/item";
    req.query = &q;
    req.nquery = 1;
    req.headers = h;
    req.nheaders = nh;
    req.body = body;
    req.body_len = body ? strlen(body) : 0;
    memset(out, 0, sizeof(*out));
    assert_int_equal(http_handle(in->app, &req, &out->r), 0);
    if (out->r.body)
        out->json = cJSON_ParseWithLength(out->r.body, out->r.body_len);
}

static void done(struct res *r)
{
    cJSON_Delete(r->json);
    http_response_cleanup(&r->r);
}

static int version_of(struct inst *in, const char *path)
{
    struct res r;
    int v;

    call(in, "GET", path, NULL, NULL, &r);
    assert_int_equal(r.r.status, 200);
    v = cJSON_GetObjectItemCaseSensitive(r.json, "version")->valueint;
    done(&r);
    return v;
}

static int setup(void **state)
{
    char p[512];

    (void)state;
    snprintf(ws, sizeof(ws), "/tmp/labelsync-durability.XXXXXX");
    if (!mkdtemp(ws))
        return -1;
    snprintf(p, sizeof(p), "%s/a.png", ws);
    write_png(p);
    snprintf(p, sizeof(p), "%s/b.png", ws);
    write_png(p);
    return 0;
}

static int teardown(void **state)
{
    char cmd[600];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", ws);
    return system(cmd) == 0 ? 0 : -1;
}

static void durability_should_keep_writes_and_answers_across_restart(void **state)
{
    struct inst in;
    struct res r, again;
    char *first, *conflict;
    size_t first_len, conflict_len;

    (void)state;
    assert_int_equal(start(&in), 0);
    call(&in, "PATCH", "/a.png", "k-1", "{\"base_version\":1,\"set_star\":5}", &r);
    assert_int_equal(r.r.status, 200);
    first = strndup(r.r.body, r.r.body_len);
    first_len = r.r.body_len;
    done(&r);
    call(&in, "PATCH", "/a.png", "k-2", "{\"base_version\":1,\"set_star\":1}", &r);
    assert_int_equal(r.r.status, 409);
    conflict = strndup(r.r.body, r.r.body_len);
    conflict_len = r.r.body_len;
    done(&r);
    stop(&in);

    assert_int_equal(start(&in), 0);
    assert_int_equal(version_of(&in, "/a.png"), 2);
    /* Both stored answers come back byte for byte, marked as replays. */
    call(&in, "PATCH", "/a.png", "k-1", "{\"base_version\":1,\"set_star\":5}", &again);
    assert_int_equal(again.r.status, 200);
    assert_int_equal(again.r.body_len, first_len);
    assert_memory_equal(again.r.body, first, first_len);
    done(&again);
    call(&in, "PATCH", "/a.png", "k-2", "{\"base_version\":1,\"set_star\":1}", &again);
    assert_int_equal(again.r.status, 409);
    assert_memory_equal(again.r.body, conflict, conflict_len);
    done(&again);
    /* Event ids continue after the durable ones. */
    call(&in, "PATCH", "/b.png", "k-3", "{\"base_version\":1,\"set_notes\":\"n\"}", &r);
    assert_int_equal(r.r.status, 200);
    assert_true(cJSON_GetObjectItemCaseSensitive(r.json, "event_id")->valuedouble > 1);
    done(&r);
    assert_int_equal(version_of(&in, "/a.png"), 2); /* the replay changed nothing */
    stop(&in);
    free(first);
    free(conflict);
}

static void durability_should_refuse_a_second_server(void **state)
{
    struct inst a, b;

    (void)state;
    assert_int_equal(start(&a), 0);
    assert_int_equal(start(&b), LS_ELOCKED);
    stop(&a);
}

static void durability_should_answer_503_and_change_nothing_on_a_full_disk(void **state)
{
    struct inst in;
    struct res r;
    int v;

    (void)state;
    setenv("LS_FAULT", "append-enospc", 1);
    setenv("LS_FAULT_COUNT", "1", 1);
    assert_int_equal(start(&in), 0);
    v = version_of(&in, "/b.png");
    call(&in, "PATCH", "/b.png", "k-full", "{\"base_version\":2,\"set_star\":2}", &r);
    assert_int_equal(r.r.status, 503);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(r.json, "error")->valuestring,
                        "unavailable");
    assert_non_null(
        strstr(cJSON_GetObjectItemCaseSensitive(r.json, "message")->valuestring, "No space left"));
    done(&r);
    assert_int_equal(version_of(&in, "/b.png"), v); /* memory unchanged */
    /* The disk "recovers" (the fault fired once): the same key works now,
     * because the 503 was not stored. */
    call(&in, "PATCH", "/b.png", "k-full", "{\"base_version\":2,\"set_star\":2}", &r);
    assert_int_equal(r.r.status, 200);
    done(&r);
    assert_int_equal(version_of(&in, "/b.png"), v + 1);
    stop(&in);
    unsetenv("LS_FAULT");
}

static void durability_should_stop_writes_after_a_failed_fsync(void **state)
{
    struct inst in;
    struct res r;
    struct wal_status st;
    int v;

    (void)state;
    setenv("LS_FAULT", "fsync-eio", 1);
    assert_int_equal(start(&in), 0);
    v = version_of(&in, "/a.png");
    call(&in, "PATCH", "/a.png", "k-eio", "{\"set_notes\":\"x\",\"base_version\":2}", &r);
    assert_int_equal(r.r.status, 503);
    done(&r);
    call(&in, "PATCH", "/a.png", "k-eio2", "{\"set_notes\":\"y\",\"base_version\":2}", &r);
    assert_int_equal(r.r.status, 503); /* latched: the page cache state is unknown */
    done(&r);
    wal_status(in.wal, &st);
    assert_true(st.latched);
    assert_string_equal(st.state, "failed");
    assert_int_equal(version_of(&in, "/a.png"), v);
    stop(&in);
    unsetenv("LS_FAULT");
    /* After a restart nothing answered 503 is there, and writes work again. */
    assert_int_equal(start(&in), 0);
    assert_int_equal(version_of(&in, "/a.png"), v);
    call(&in, "PATCH", "/a.png", "k-eio3", "{\"set_notes\":\"z\",\"base_version\":2}", &r);
    assert_int_equal(r.r.status, 200);
    done(&r);
    stop(&in);
}

/*
 * A real full disk, once: a 256 KiB tmpfs (when this test may mount one; it
 * is skipped otherwise).  Filling it makes the next write answer 503 with
 * memory unchanged; freeing space makes writes succeed again.
 */
static void durability_should_survive_a_real_full_disk(void **state)
{
    char mnt[] = "/tmp/labelsync-tinyfs.XXXXXX", saved[256], p[512];
    struct inst in;
    struct res r;
    FILE *f;
    int v, status = 0;

    (void)state;
    if (!mkdtemp(mnt))
        fail_msg("mkdtemp failed");
    if (geteuid() != 0 || mount("tmpfs", mnt, "tmpfs", 0, "size=256k") != 0) {
        rmdir(mnt);
        print_message("skipping: cannot mount a tmpfs here (needs root)\n");
        skip();
    }
    memcpy(saved, ws, sizeof(saved));
    snprintf(ws, sizeof(ws), "%s", mnt);
    snprintf(p, sizeof(p), "%s/c.png", ws);
    write_png(p);
    assert_int_equal(start(&in), 0);
    /* Fill the file system to the last byte. */
    snprintf(p, sizeof(p), "%s/filler", ws);
    f = fopen(p, "wb");
    assert_non_null(f);
    {
        char block[4096];

        memset(block, 'x', sizeof(block));
        while (fwrite(block, 1, sizeof(block), f) == sizeof(block) && fflush(f) == 0)
            ;
        while (fputc('x', f) != EOF && fflush(f) == 0)
            ;
    }
    fclose(f);
    v = version_of(&in, "/c.png");
    call(&in, "PATCH", "/c.png", "k-tiny", "{\"base_version\":1,\"set_notes\":\"full?\"}", &r);
    status = r.r.status;
    done(&r);
    assert_int_equal(status, 503);
    assert_int_equal(version_of(&in, "/c.png"), v);
    unlink(p); /* the disk recovers */
    call(&in, "PATCH", "/c.png", "k-tiny", "{\"base_version\":1,\"set_notes\":\"full?\"}", &r);
    status = r.r.status;
    done(&r);
    assert_int_equal(status, 200);
    assert_int_equal(version_of(&in, "/c.png"), v + 1);
    stop(&in);
    memcpy(ws, saved, sizeof(ws));
    assert_int_equal(umount(mnt), 0);
    rmdir(mnt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(durability_should_keep_writes_and_answers_across_restart),
        cmocka_unit_test(durability_should_refuse_a_second_server),
        cmocka_unit_test(durability_should_answer_503_and_change_nothing_on_a_full_disk),
        cmocka_unit_test(durability_should_stop_writes_after_a_failed_fsync),
        cmocka_unit_test(durability_should_survive_a_real_full_disk),
    };

    trace_set_level(TRACE_ERROR);
    return cmocka_run_group_tests(tests, setup, teardown);
}
