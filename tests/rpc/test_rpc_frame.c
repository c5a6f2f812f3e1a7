/* Tests for rpc/src/rpc_frame.c: the 5-byte length-prefixed message
 * decoder, fed in every possible split, with packed messages, empty
 * messages, the size limit and bad flags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "rpc_internal.h"

struct got {
    int n;
    size_t lens[16];
    int flags[16];
    uint8_t bytes[16][64];
    int stop_at; /* return non-zero on this message index, -1 never */
};

static int collect(int flag, const uint8_t *data, size_t len, void *ud)
{
    struct got *g = ud;
    if (g->n < 16) {
        g->lens[g->n] = len;
        g->flags[g->n] = flag;
        memcpy(g->bytes[g->n], data, len < 64 ? len : 64);
    }
    g->n++;
    return g->stop_at == g->n - 1 ? 42 : 0;
}

/* Three messages: "abc" (flag 0), "" (flag 0), 40 bytes (flag 1). */
static size_t build(uint8_t *buf)
{
    size_t n = 0;
    rpc__frame_header(buf + n, 0, 3);
    n += 5;
    memcpy(buf + n, "abc", 3);
    n += 3;
    rpc__frame_header(buf + n, 0, 0);
    n += 5;
    rpc__frame_header(buf + n, 1, 40);
    n += 5;
    for (int i = 0; i < 40; i++)
        buf[n++] = (uint8_t)i;
    return n;
}

static void check(struct got *g)
{
    assert_int_equal(g->n, 3);
    assert_int_equal(g->lens[0], 3);
    assert_memory_equal(g->bytes[0], "abc", 3);
    assert_int_equal(g->lens[1], 0);
    assert_int_equal(g->lens[2], 40);
    assert_int_equal(g->flags[2], 1);
    for (int i = 0; i < 40; i++)
        assert_int_equal(g->bytes[2][i], i);
}

static void test_header_encoding(void **state)
{
    uint8_t h[5];
    rpc__frame_header(h, 1, 0x01020304);
    uint8_t want[5] = {1, 1, 2, 3, 4};
    assert_memory_equal(h, want, 5);
}

static void test_packed_in_one_chunk(void **state)
{
    uint8_t buf[128];
    size_t n = build(buf);
    rpc__frame_decoder_t d;
    rpc__frame_decoder_init(&d, 1024);
    struct got g = {.stop_at = -1};
    assert_int_equal(rpc__frame_feed(&d, buf, n, collect, &g), 0);
    check(&g);
    assert_true(rpc__frame_idle(&d));
    rpc__frame_decoder_reset(&d);
}

/* Every split into two chunks, and byte by byte. */
static void test_every_split(void **state)
{
    uint8_t buf[128];
    size_t n = build(buf);
    for (size_t cut = 0; cut <= n; cut++) {
        rpc__frame_decoder_t d;
        rpc__frame_decoder_init(&d, 1024);
        struct got g = {.stop_at = -1};
        assert_int_equal(rpc__frame_feed(&d, buf, cut, collect, &g), 0);
        assert_int_equal(rpc__frame_feed(&d, buf + cut, n - cut, collect, &g),
                         0);
        check(&g);
        rpc__frame_decoder_reset(&d);
    }
    rpc__frame_decoder_t d;
    rpc__frame_decoder_init(&d, 1024);
    struct got g = {.stop_at = -1};
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(rpc__frame_feed(&d, buf + i, 1, collect, &g), 0);
        if (i + 1 < n)
            assert_true(g.n < 3);
    }
    check(&g);
    rpc__frame_decoder_reset(&d);
}

static void test_partial_is_not_idle(void **state)
{
    uint8_t buf[128];
    size_t n = build(buf);
    rpc__frame_decoder_t d;
    rpc__frame_decoder_init(&d, 1024);
    struct got g = {.stop_at = -1};
    assert_int_equal(rpc__frame_feed(&d, buf, n - 1, collect, &g), 0);
    assert_false(rpc__frame_idle(&d));
    rpc__frame_decoder_reset(&d); /* frees the partial buffer */
}

static void test_limit_checked_before_buffering(void **state)
{
    uint8_t h[5];
    rpc__frame_header(h, 0, 4 * 1024 * 1024 + 1);
    rpc__frame_decoder_t d;
    rpc__frame_decoder_init(&d, RPC__DEFAULT_MAX_RECV);
    struct got g = {.stop_at = -1};
    assert_int_equal(rpc__frame_feed(&d, h, 5, collect, &g), RPC_ERR_TOO_LARGE);
    assert_null(d.buf);
    /* sticky */
    assert_int_equal(rpc__frame_feed(&d, h, 1, collect, &g), RPC_ERR_TOO_LARGE);
    assert_int_equal(g.n, 0);
    /* exactly the limit is fine */
    rpc__frame_decoder_init(&d, 10);
    uint8_t m[15];
    rpc__frame_header(m, 0, 10);
    memset(m + 5, 'x', 10);
    assert_int_equal(rpc__frame_feed(&d, m, 15, collect, &g), 0);
    assert_int_equal(g.n, 1);
}

static void test_bad_flag(void **state)
{
    uint8_t h[5] = {2, 0, 0, 0, 0};
    rpc__frame_decoder_t d;
    rpc__frame_decoder_init(&d, 100);
    struct got g = {.stop_at = -1};
    assert_int_equal(rpc__frame_feed(&d, h, 5, collect, &g), RPC_ERR_MALFORMED);
    assert_int_equal(g.n, 0);
}

static void test_callback_stops(void **state)
{
    uint8_t buf[128];
    size_t n = build(buf);
    rpc__frame_decoder_t d;
    rpc__frame_decoder_init(&d, 1024);
    struct got g = {.stop_at = 1};
    assert_int_equal(rpc__frame_feed(&d, buf, n, collect, &g), 42);
    assert_int_equal(g.n, 2);
    assert_int_equal(rpc__frame_feed(&d, buf, n, collect, &g), 42);
    rpc__frame_decoder_reset(&d);
}

static void test_large_split_message(void **state)
{
    size_t len = 300000;
    uint8_t *buf = malloc(len + 5);
    rpc__frame_header(buf, 0, (uint32_t)len);
    memset(buf + 5, 7, len);
    rpc__frame_decoder_t d;
    rpc__frame_decoder_init(&d, RPC__DEFAULT_MAX_RECV);
    struct got g = {.stop_at = -1};
    for (size_t off = 0; off < len + 5; off += 16384) {
        size_t c = len + 5 - off < 16384 ? len + 5 - off : 16384;
        assert_int_equal(rpc__frame_feed(&d, buf + off, c, collect, &g), 0);
    }
    assert_int_equal(g.n, 1);
    assert_int_equal(g.lens[0], len);
    assert_true(rpc__frame_idle(&d));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_encoding),
        cmocka_unit_test(test_packed_in_one_chunk),
        cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_partial_is_not_idle),
        cmocka_unit_test(test_limit_checked_before_buffering),
        cmocka_unit_test(test_bad_flag),
        cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_large_split_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
