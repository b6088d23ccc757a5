/*
 * test_buf.c - the capped buffer: caps are hard, failures change nothing,
 * the contents stay NUL-terminated.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"

static void buf_should_append_and_terminate(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 100);
    assert_int_equal(buf_append(&b, "ab", 2), 0);
    assert_int_equal(buf_appends(&b, "cd"), 0);
    assert_int_equal(buf_appendc(&b, 'e'), 0);
    assert_int_equal(buf_appendf(&b, "%d-%s", 42, "x"), 0);
    assert_int_equal(b.len, 9);
    assert_string_equal(b.data, "abcde42-x");
    buf_cleanup(&b);
}

static void buf_should_refuse_past_cap_and_stay_unchanged(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 5);
    assert_int_equal(buf_append(&b, "abcd", 4), 0);
    assert_int_equal(buf_append(&b, "ef", 2), LS_ETOOBIG);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "abcd");
    assert_int_equal(buf_appendf(&b, "%s", "xy"), LS_ETOOBIG);
    assert_string_equal(b.data, "abcd");
    assert_int_equal(buf_appendc(&b, 'e'), 0);
    assert_int_equal(buf_appendc(&b, 'f'), LS_ETOOBIG);
    assert_int_equal(b.len, 5);
    buf_cleanup(&b);
}

static void buf_should_guard_against_size_overflow(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, (size_t)-1);
    assert_int_equal(buf_append(&b, "a", 1), 0);
    assert_int_equal(buf_append(&b, "a", (size_t)-1), LS_ETOOBIG);
    assert_int_equal(b.len, 1);
    buf_cleanup(&b);
}

static void buf_should_hold_binary_data(void **state)
{
    struct buf b;
    const char bin[] = {'a', '\0', 'b'};

    (void)state;
    buf_init(&b, 16);
    assert_int_equal(buf_append(&b, bin, 3), 0);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, bin, 3);
    assert_int_equal(b.data[3], '\0');
    buf_cleanup(&b);
}

static void buf_should_hand_over_storage_with_take(void **state)
{
    struct buf b;
    size_t len = 99;
    char *p;

    (void)state;
    buf_init(&b, 16);
    p = buf_take(&b, &len);
    assert_non_null(p);
    assert_int_equal(len, 0);
    assert_string_equal(p, "");
    free(p);
    assert_int_equal(buf_appends(&b, "hello"), 0);
    p = buf_take(&b, &len);
    assert_string_equal(p, "hello");
    assert_int_equal(len, 5);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    free(p);
    buf_cleanup(&b);
}

static void buf_should_reset_and_reuse(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 8);
    assert_int_equal(buf_appends(&b, "12345678"), 0);
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_int_equal(buf_appends(&b, "abcdefgh"), 0);
    buf_cleanup(&b);
    buf_cleanup(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buf_should_append_and_terminate),
        cmocka_unit_test(buf_should_refuse_past_cap_and_stay_unchanged),
        cmocka_unit_test(buf_should_guard_against_size_overflow),
        cmocka_unit_test(buf_should_hold_binary_data),
        cmocka_unit_test(buf_should_hand_over_storage_with_take),
        cmocka_unit_test(buf_should_reset_and_reuse),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
