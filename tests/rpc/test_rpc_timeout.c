/* Tests for rpc/src/rpc_timeout.c: grpc-timeout parse (all six units, the
 * 8-digit limit, malformed input) and format (finest unit that fits,
 * rounded up). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "rpc_internal.h"

static int64_t parse(const char *s)
{
    int64_t ns = -1;
    int rc = rpc__timeout_parse(s, strlen(s), &ns);
    return rc == 0 ? ns : -100 + rc;
}

static void test_units(void **state)
{
    assert_int_equal(parse("1H"), INT64_C(3600000000000));
    assert_int_equal(parse("2M"), INT64_C(120000000000));
    assert_int_equal(parse("3S"), INT64_C(3000000000));
    assert_int_equal(parse("4m"), INT64_C(4000000));
    assert_int_equal(parse("5u"), INT64_C(5000));
    assert_int_equal(parse("6n"), INT64_C(6));
    assert_int_equal(parse("0n"), 0);
    assert_int_equal(parse("00000001m"), INT64_C(1000000));
    assert_int_equal(parse("99999999S"), INT64_C(99999999000000000));
    /* 99999999H does not overflow int64 (3.6e20 > 9.2e18): saturate */
    assert_int_equal(parse("99999999H"), INT64_MAX);
    assert_int_equal(parse("1500m"), INT64_C(1500000000));
}

static void test_malformed(void **state)
{
    const char *bad[] = {"", "S", "1", "123456789S", "1s", "1h", "-1S",
                         "+1S", " 1S", "1S ", "1.5S", "1x", "1SS", "abc",
                         "1 S", "0x1S"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t ns = 77;
        assert_int_equal(rpc__timeout_parse(bad[i], strlen(bad[i]), &ns),
                         RPC_ERR_MALFORMED);
        assert_int_equal(ns, 77); /* untouched */
    }
    int64_t ns;
    assert_int_equal(rpc__timeout_parse(NULL, 0, &ns), RPC_ERR_MALFORMED);
    /* embedded NUL */
    assert_int_equal(rpc__timeout_parse("1\0S", 3, &ns), RPC_ERR_MALFORMED);
}

static const char *fmt(int64_t ns)
{
    static char buf[RPC__TIMEOUT_MAX];
    size_t n = rpc__timeout_format(ns, buf);
    assert_int_equal(n, strlen(buf));
    return buf;
}

static void test_format(void **state)
{
    assert_string_equal(fmt(0), "0n");
    assert_string_equal(fmt(-5), "0n");
    assert_string_equal(fmt(1), "1n");
    assert_string_equal(fmt(99999999), "99999999n");
    /* 100 ms = 1e8 ns: no longer fits in n, so u */
    assert_string_equal(fmt(100000000), "100000u");
    assert_string_equal(fmt(100000001), "100001u"); /* rounded up */
    assert_string_equal(fmt(INT64_C(1500000000)), "1500000u");
    assert_string_equal(fmt(INT64_C(100000000000)), "100000m"); /* 100 s */
    assert_string_equal(fmt(INT64_C(200000000001)), "200001m");
    assert_string_equal(fmt(INT64_C(7200) * 1000000000), "7200000m");
    assert_string_equal(fmt(INT64_C(100000000) * 1000000000), "1666667M");
    assert_string_equal(fmt(INT64_MAX), "2562048H");
}

static void test_round_trip_never_shorter(void **state)
{
    int64_t v[] = {1, 999, 1000, 1001, 123456789, INT64_C(987654321012),
                   INT64_C(5999999999999), INT64_C(3600000000001)};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        char buf[RPC__TIMEOUT_MAX];
        size_t n = rpc__timeout_format(v[i], buf);
        int64_t back;
        assert_int_equal(rpc__timeout_parse(buf, n, &back), 0);
        assert_true(back >= v[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_units),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_round_trip_never_shorter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
