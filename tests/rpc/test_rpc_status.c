/* Tests for rpc/src/rpc_status.c: all 17 status names and the error
 * table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <rpc/rpc.h>

static void test_names(void **state)
{
    static const char *names[17] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
        "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
        "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE",
        "DATA_LOSS", "UNAUTHENTICATED"};
    for (int i = 0; i < 17; i++)
        assert_string_equal(rpc_status_name(i), names[i]);
    assert_int_equal(RPC_STATUS_UNAUTHENTICATED, 16);
    assert_int_equal(RPC_STATUS_DEADLINE_EXCEEDED, 4);
    assert_string_equal(rpc_status_name(17), "UNKNOWN_STATUS");
    assert_string_equal(rpc_status_name(-1), "UNKNOWN_STATUS");
}

static void test_errors(void **state)
{
    assert_string_equal(rpc_strerror(0), "success");
    assert_string_equal(rpc_strerror(RPC_ERR_NOMEM), "out of memory");
    assert_string_equal(rpc_strerror(1), "unknown error");
    assert_string_equal(rpc_strerror(-1000), "unknown error");
    /* every code in the table has its own text */
    for (int e = RPC_ERR_SYSTEM; e <= RPC_ERR_NOMEM; e++) {
        assert_string_not_equal(rpc_strerror(e), "unknown error");
        for (int f = e + 1; f <= RPC_ERR_NOMEM; f++)
            assert_string_not_equal(rpc_strerror(e), rpc_strerror(f));
    }
}

static void test_err_from_ctx(void **state)
{
    ctx_t *c = ctx_with_cancel(ctx_background());
    assert_int_equal(rpc_err_from_ctx(c), 0);
    ctx_cancel(c);
    assert_int_equal(rpc_err_from_ctx(c), RPC_ERR_CANCELED);
    ctx_release(c);
    c = ctx_with_timeout(ctx_background(), 0);
    assert_int_equal(rpc_err_from_ctx(c), RPC_ERR_DEADLINE);
    ctx_release(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_err_from_ctx),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
