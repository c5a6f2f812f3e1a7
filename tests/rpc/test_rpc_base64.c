/* Tests for rpc/src/rpc_base64.c: unpadded output, padded and unpadded
 * input, and rejection of malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "rpc_internal.h"

static void test_encode_unpadded(void **state)
{
    char out[64];
    const uint8_t ab3[] = {0xab, 0xab, 0xab}, ab4[] = {0xab, 0xab, 0xab, 0xab};
    rpc__base64_encode(ab3, 3, out);
    assert_string_equal(out, "q6ur"); /* grpc-js, observed */
    rpc__base64_encode(ab4, 4, out);
    assert_string_equal(out, "q6urqw"); /* C-core, observed */
    assert_int_equal(rpc__base64_encoded_len(4), 6);
    rpc__base64_encode("", 0, out);
    assert_string_equal(out, "");
    rpc__base64_encode("fo", 2, out);
    assert_string_equal(out, "Zm8");
    rpc__base64_encode("\xff\xfe", 2, out);
    assert_string_equal(out, "//4");
}

static long dec(const char *s, uint8_t *out)
{
    return rpc__base64_decode(s, strlen(s), out);
}

static void test_decode_both_forms(void **state)
{
    uint8_t out[64];
    assert_int_equal(dec("q6urqw", out), 4);
    assert_int_equal(dec("q6urqw==", out), 4);
    const uint8_t ab4[] = {0xab, 0xab, 0xab, 0xab};
    assert_memory_equal(out, ab4, 4);
    assert_int_equal(dec("Zm8", out), 2);
    assert_int_equal(dec("Zm8=", out), 2);
    assert_memory_equal(out, "fo", 2);
    assert_int_equal(dec("", out), 0);
    assert_int_equal(dec("Zm9v", out), 3);
}

static void test_decode_rejects(void **state)
{
    uint8_t out[64];
    const char *bad[] = {"Z", "Zm9vY", "Zm=8", "Zm8==", "Zm9v=", "Z===",
                         "Zm*v", "Zm 8", "Zm9", "Zn==", "q6urqx", "-_8"};
    /* "Zm9" decodes to two bytes with leftover bits 01: non-canonical */
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(dec(bad[i], out), RPC_ERR_MALFORMED);
}

static void test_round_trip(void **state)
{
    uint8_t in[256], out[512];
    char enc[512];
    for (int i = 0; i < 256; i++)
        in[i] = (uint8_t)(i * 7 + 3);
    for (size_t len = 0; len < 256; len++) {
        size_t n = rpc__base64_encode(in, len, enc);
        assert_int_equal(n, rpc__base64_encoded_len(len));
        assert_true(rpc__base64_decoded_max(n) >= len);
        assert_int_equal(rpc__base64_decode(enc, n, out), (long)len);
        assert_memory_equal(in, out, len);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_unpadded),
        cmocka_unit_test(test_decode_both_forms),
        cmocka_unit_test(test_decode_rejects),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
