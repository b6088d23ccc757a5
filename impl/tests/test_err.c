/*
 * test_err.c - every code has a distinct name and a message; errno values
 * pass through.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"

static const int codes[] = {
#define X(name, value, msg) LS_##name,
    LS_ERR_MAP(X)
#undef X
};

static void err_should_name_every_project_code_distinctly(void **state)
{
    size_t i, j, n = sizeof(codes) / sizeof(codes[0]);

    (void)state;
    for (i = 0; i < n; i++) {
        assert_true(codes[i] <= -5000);
        assert_string_not_equal(ls_err_name(codes[i]), "UNKNOWN");
        assert_string_not_equal(ls_strerror(codes[i]), "unknown error");
        for (j = i + 1; j < n; j++) {
            assert_int_not_equal(codes[i], codes[j]);
            assert_string_not_equal(ls_err_name(codes[i]), ls_err_name(codes[j]));
        }
    }
}

static void err_should_pass_errno_through(void **state)
{
    (void)state;
    assert_string_equal(ls_err_name(-ENOSPC), "ENOSPC");
    assert_string_equal(ls_strerror(-ENOENT), strerror(ENOENT));
    assert_string_equal(ls_strerror(0), "success");
    assert_string_equal(ls_err_name(-123456), "UNKNOWN");
    assert_string_equal(ls_strerror(-123456), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(err_should_name_every_project_code_distinctly),
        cmocka_unit_test(err_should_pass_errno_through),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
