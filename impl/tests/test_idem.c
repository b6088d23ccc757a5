/*
 * test_idem.c - the idempotency table: reserve, replay, mismatch, in flight,
 * scopes, expiry and both bounds, and SHA-256 against the FIPS vectors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "idem.h"

static void fp_of(const char *s, unsigned char fp[IDEM_FP_LEN])
{
    idem_sha256(s, strlen(s), fp);
}

static void hex(const unsigned char *d, char *out)
{
    for (int i = 0; i < IDEM_FP_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void idem_should_compute_sha256_test_vectors(void **state)
{
    unsigned char d[IDEM_FP_LEN];
    char h[2 * IDEM_FP_LEN + 1];
    char million[1000];

    (void)state;
    idem_sha256("", 0, d);
    hex(d, h);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    idem_sha256("abc", 3, d);
    hex(d, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    idem_sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, d);
    hex(d, h);
    assert_string_equal(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    memset(million, 'a', sizeof(million));
    idem_sha256(million, sizeof(million), d); /* 1000 x 'a': crosses many blocks */
    hex(d, h);
    assert_string_equal(h, "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
}

static void idem_should_replay_a_completed_key(void **state)
{
    struct idem *t = idem_new(16, 1 << 20, 1000000);
    unsigned char fp[IDEM_FP_LEN];
    enum idem_verdict v;
    struct idem_response r;

    (void)state;
    fp_of("req-1", fp);
    assert_int_equal(idem_begin(t, "c1", "k", fp, 10, &v, &r), 0);
    assert_int_equal(v, IDEM_PROCEED);
    assert_int_equal(idem_begin(t, "c1", "k", fp, 11, &v, &r), 0);
    assert_int_equal(v, IDEM_IN_FLIGHT);
    assert_int_equal(idem_complete(t, "c1", "k", 200, "{\"a\":1}", 7, "\"2\"", 12), 0);
    assert_int_equal(idem_begin(t, "c1", "k", fp, 13, &v, &r), 0);
    assert_int_equal(v, IDEM_REPLAY);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 7);
    assert_string_equal(r.body, "{\"a\":1}");
    assert_string_equal(r.etag, "\"2\"");
    idem_response_cleanup(&r);
    idem_free(t);
}

static void idem_should_report_a_mismatch_and_keep_the_original(void **state)
{
    struct idem *t = idem_new(16, 1 << 20, 1000000);
    unsigned char a[IDEM_FP_LEN], b[IDEM_FP_LEN];
    enum idem_verdict v;
    struct idem_response r;

    (void)state;
    fp_of("A", a);
    fp_of("B", b);
    assert_int_equal(idem_begin(t, "", "k", a, 1, &v, &r), 0);
    assert_int_equal(idem_complete(t, "", "k", 409, "x", 1, NULL, 1), 0);
    assert_int_equal(idem_begin(t, "", "k", b, 2, &v, &r), 0);
    assert_int_equal(v, IDEM_MISMATCH);
    assert_int_equal(idem_begin(t, "", "k", a, 3, &v, &r), 0);
    assert_int_equal(v, IDEM_REPLAY);
    assert_int_equal(r.status, 409);
    assert_null(r.etag);
    idem_response_cleanup(&r);
    idem_free(t);
}

static void idem_should_keep_scopes_apart(void **state)
{
    struct idem *t = idem_new(16, 1 << 20, 1000000);
    unsigned char a[IDEM_FP_LEN], b[IDEM_FP_LEN];
    enum idem_verdict v;
    struct idem_response r;

    (void)state;
    fp_of("A", a);
    fp_of("B", b);
    assert_int_equal(idem_begin(t, "alice", "k", a, 1, &v, &r), 0);
    assert_int_equal(v, IDEM_PROCEED);
    assert_int_equal(idem_begin(t, "bob", "k", b, 1, &v, &r), 0);
    assert_int_equal(v, IDEM_PROCEED);
    /* "a" + "lice\0k" must not collide with "al" + "ice\0k"-like splits */
    assert_int_equal(idem_begin(t, "alic", "ek", a, 1, &v, &r), 0);
    assert_int_equal(v, IDEM_PROCEED);
    assert_int_equal(idem_count(t), 3);
    idem_free(t);
}

static void idem_should_forget_cancelled_reservations(void **state)
{
    struct idem *t = idem_new(16, 1 << 20, 1000000);
    unsigned char a[IDEM_FP_LEN], b[IDEM_FP_LEN];
    enum idem_verdict v;
    struct idem_response r;

    (void)state;
    fp_of("A", a);
    fp_of("B", b);
    assert_int_equal(idem_begin(t, "", "k", a, 1, &v, &r), 0);
    idem_cancel(t, "", "k");
    assert_int_equal(idem_count(t), 0);
    assert_int_equal(idem_begin(t, "", "k", b, 2, &v, &r), 0);
    assert_int_equal(v, IDEM_PROCEED);
    assert_int_equal(idem_complete(t, "", "nope", 200, "x", 1, NULL, 2), LS_ENOTFOUND);
    idem_cancel(t, "", "absent"); /* no-op */
    idem_free(t);
}

static void idem_should_expire_after_the_ttl(void **state)
{
    struct idem *t = idem_new(16, 1 << 20, 100);
    unsigned char a[IDEM_FP_LEN], b[IDEM_FP_LEN];
    enum idem_verdict v;
    struct idem_response r;

    (void)state;
    fp_of("A", a);
    fp_of("B", b);
    assert_int_equal(idem_begin(t, "", "k", a, 0, &v, &r), 0);
    assert_int_equal(idem_complete(t, "", "k", 200, "x", 1, NULL, 0), 0);
    assert_int_equal(idem_begin(t, "", "k", b, 100, &v, &r), 0);
    assert_int_equal(v, IDEM_MISMATCH); /* age 100 is still inside the TTL */
    assert_int_equal(idem_begin(t, "", "k", b, 101, &v, &r), 0);
    assert_int_equal(v, IDEM_PROCEED); /* expired: a new request */
    idem_free(t);
}

static void idem_should_evict_oldest_completed_at_the_entry_cap(void **state)
{
    struct idem *t = idem_new(3, 1 << 20, 1000000);
    unsigned char fp[IDEM_FP_LEN];
    enum idem_verdict v;
    struct idem_response r;
    char key[16];

    (void)state;
    fp_of("A", fp);
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(idem_begin(t, "", key, fp, i, &v, &r), 0);
        assert_int_equal(idem_complete(t, "", key, 200, "x", 1, NULL, i), 0);
    }
    assert_int_equal(idem_begin(t, "", "k3", fp, 3, &v, &r), 0);
    assert_int_equal(v, IDEM_PROCEED);
    assert_int_equal(idem_count(t), 3);
    assert_int_equal(idem_begin(t, "", "k0", fp, 4, &v, &r), 0);
    assert_int_equal(v, IDEM_PROCEED); /* k0 was evicted, so it is new again */
    idem_free(t);
}

static void idem_should_refuse_when_only_in_flight_entries_remain(void **state)
{
    struct idem *t = idem_new(2, 1 << 20, 1000000);
    unsigned char fp[IDEM_FP_LEN];
    enum idem_verdict v;
    struct idem_response r;

    (void)state;
    fp_of("A", fp);
    assert_int_equal(idem_begin(t, "", "a", fp, 0, &v, &r), 0);
    assert_int_equal(idem_begin(t, "", "b", fp, 0, &v, &r), 0);
    assert_int_equal(idem_begin(t, "", "c", fp, 0, &v, &r), LS_EFULL);
    idem_free(t);
}

static void idem_should_respect_the_byte_cap(void **state)
{
    struct idem *t = idem_new(100, 10, 1000000);
    unsigned char fp[IDEM_FP_LEN];
    enum idem_verdict v;
    struct idem_response r;

    (void)state;
    fp_of("A", fp);
    assert_int_equal(idem_begin(t, "", "a", fp, 0, &v, &r), 0);
    assert_int_equal(idem_complete(t, "", "a", 200, "123456", 6, NULL, 0), 0);
    assert_int_equal(idem_begin(t, "", "b", fp, 1, &v, &r), 0);
    assert_int_equal(idem_complete(t, "", "b", 200, "123456", 6, NULL, 1), 0);
    /* 12 bytes > 10: the oldest ("a") had to go */
    assert_int_equal(idem_begin(t, "", "a", fp, 2, &v, &r), 0);
    assert_int_equal(v, IDEM_PROCEED);
    idem_cancel(t, "", "a");
    assert_int_equal(idem_begin(t, "", "big", fp, 3, &v, &r), 0);
    assert_int_equal(idem_complete(t, "", "big", 200, "12345678901", 11, NULL, 3), LS_ETOOBIG);
    assert_int_equal(idem_begin(t, "", "b", fp, 4, &v, &r), 0);
    assert_int_equal(v, IDEM_REPLAY);
    idem_response_cleanup(&r);
    idem_free(t);
    idem_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(idem_should_compute_sha256_test_vectors),
        cmocka_unit_test(idem_should_replay_a_completed_key),
        cmocka_unit_test(idem_should_report_a_mismatch_and_keep_the_original),
        cmocka_unit_test(idem_should_keep_scopes_apart),
        cmocka_unit_test(idem_should_forget_cancelled_reservations),
        cmocka_unit_test(idem_should_expire_after_the_ttl),
        cmocka_unit_test(idem_should_evict_oldest_completed_at_the_entry_cap),
        cmocka_unit_test(idem_should_refuse_when_only_in_flight_entries_remain),
        cmocka_unit_test(idem_should_respect_the_byte_cap),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
