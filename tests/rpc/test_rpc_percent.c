/* Tests for rpc/src/rpc_percent.c: grpc-message percent-encoding, with the
 * interop special_status_message string as observed from C-core. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "rpc_internal.h"

static const char special[] = "\t\ntest with whitespace\r\nand Unicode BMP "
                              "\xE2\x98\xBA and non-BMP \xF0\x9F\x98\x88\t\n";
static const char special_wire[] =
    "%09%0Atest with whitespace%0D%0Aand Unicode BMP %E2%98%BA and non-BMP "
    "%F0%9F%98%88%09%0A";

static void test_encode_special(void **state)
{
    char out[256];
    size_t n = rpc__percent_encoded_len(special, strlen(special));
    assert_int_equal(n, strlen(special_wire));
    assert_int_equal(rpc__percent_encode(special, strlen(special), out), n);
    assert_string_equal(out, special_wire);
}

static void test_encode_percent_and_edges(void **state)
{
    char out[64];
    rpc__percent_encode("100% ~", 6, out);
    assert_string_equal(out, "100%25 ~");
    const char b[] = {0x1f, 0x20, 0x7e, 0x7f, 0};
    rpc__percent_encode(b, 4, out);
    assert_string_equal(out, "%1F ~%7F");
    rpc__percent_encode("", 0, out);
    assert_string_equal(out, "");
}

static void test_decode(void **state)
{
    char out[256];
    size_t n = rpc__percent_decode(special_wire, strlen(special_wire), out);
    assert_int_equal(n, strlen(special));
    assert_string_equal(out, special);
    rpc__percent_decode("a%2fb%2F", 8, out);
    assert_string_equal(out, "a/b/");
}

static void test_decode_never_fails(void **state)
{
    char out[64];
    rpc__percent_decode("50%", 3, out);
    assert_string_equal(out, "50%");
    rpc__percent_decode("%4", 2, out);
    assert_string_equal(out, "%4");
    rpc__percent_decode("%zz%41", 6, out);
    assert_string_equal(out, "%zzA");
    rpc__percent_decode("%%41", 4, out);
    assert_string_equal(out, "%A");
    /* a decoded NUL is kept (length tells) */
    assert_int_equal(rpc__percent_decode("a%00b", 5, out), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_special),
        cmocka_unit_test(test_encode_percent_and_edges),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_decode_never_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
