/* Tests for rpc/src/rpc_compress.c: encoding names and accept lists,
 * gzip/deflate round trips, the decompression limit (a "zip bomb" stops at
 * the limit), corrupt, truncated and trailing input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "rpc_internal.h"

static void test_names(void **state)
{
    assert_int_equal(rpc__encoding_parse("gzip", 4), RPC__ENC_GZIP);
    assert_int_equal(rpc__encoding_parse("deflate", 7), RPC__ENC_DEFLATE);
    assert_int_equal(rpc__encoding_parse("identity", 8), RPC__ENC_IDENTITY);
    assert_int_equal(rpc__encoding_parse("snappy", 6), -1);
    assert_int_equal(rpc__encoding_parse("gzi", 3), -1);
    assert_string_equal(rpc__encoding_name(RPC__ENC_GZIP), "gzip");
    const char *c = "identity, deflate, gzip"; /* C-core's spelling */
    assert_int_equal(rpc__accept_encoding_parse(c, strlen(c)), 7);
    const char *j = "identity,gzip"; /* grpc-js */
    assert_int_equal(rpc__accept_encoding_parse(j, strlen(j)),
                     1u << RPC__ENC_IDENTITY | 1u << RPC__ENC_GZIP);
    assert_int_equal(rpc__accept_encoding_parse("snappy", 6), 1);
    assert_int_equal(rpc__accept_encoding_parse("", 0), 1);
}

static void test_round_trip(void **state)
{
    uint8_t in[10000];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (uint8_t)(i % 7 == 0 ? i : 0);
    for (int enc = RPC__ENC_GZIP; enc <= RPC__ENC_DEFLATE; enc++) {
        for (size_t len = 0; len <= sizeof in; len += 2500) {
            uint8_t *z, *back;
            size_t zl, bl;
            assert_int_equal(rpc__compress(enc, in, len, &z, &zl), 0);
            assert_int_equal(rpc__decompress(enc, z, zl, sizeof in, &back, &bl), 0);
            assert_int_equal(bl, len);
            assert_memory_equal(back, in, len);
            if (enc == RPC__ENC_GZIP)
                assert_true(zl >= 2 && z[0] == 0x1f && z[1] == 0x8b);
            free(z);
            free(back);
        }
    }
    uint8_t *z;
    size_t zl;
    assert_int_equal(rpc__compress(RPC__ENC_IDENTITY, in, 1, &z, &zl), RPC_ERR_UNSUPPORTED);
}

static void test_limit(void **state)
{
    size_t big = 1 << 20; /* 1 MiB of zeros compresses to ~1 KiB */
    uint8_t *in = calloc(1, big), *z, *out;
    size_t zl, ol;
    assert_int_equal(rpc__compress(RPC__ENC_GZIP, in, big, &z, &zl), 0);
    assert_true(zl < 4096);
    assert_int_equal(rpc__decompress(RPC__ENC_GZIP, z, zl, big - 1, &out, &ol),
                     RPC_ERR_TOO_LARGE);
    assert_int_equal(rpc__decompress(RPC__ENC_GZIP, z, zl, big, &out, &ol), 0);
    assert_int_equal(ol, big);
    free(out);
    free(z);
    free(in);
}

static void test_bad_input(void **state)
{
    uint8_t *z, *out;
    size_t zl, ol;
    const char *msg = "hello hello hello hello";
    assert_int_equal(rpc__compress(RPC__ENC_GZIP, (const uint8_t *)msg,
                                   strlen(msg), &z, &zl), 0);
    /* truncated */
    assert_int_equal(rpc__decompress(RPC__ENC_GZIP, z, zl - 3, 100, &out, &ol),
                     RPC_ERR_MALFORMED);
    /* trailing bytes */
    uint8_t *t = malloc(zl + 2);
    memcpy(t, z, zl);
    t[zl] = 'x';
    t[zl + 1] = 'y';
    assert_int_equal(rpc__decompress(RPC__ENC_GZIP, t, zl + 2, 100, &out, &ol),
                     RPC_ERR_MALFORMED);
    /* not gzip at all, and the wrong format */
    assert_int_equal(rpc__decompress(RPC__ENC_GZIP, (const uint8_t *)msg,
                                     strlen(msg), 100, &out, &ol),
                     RPC_ERR_MALFORMED);
    assert_int_equal(rpc__decompress(RPC__ENC_DEFLATE, z, zl, 100, &out, &ol),
                     RPC_ERR_MALFORMED);
    assert_int_equal(rpc__decompress(RPC__ENC_GZIP, z, 0, 100, &out, &ol),
                     RPC_ERR_MALFORMED);
    free(t);
    free(z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
