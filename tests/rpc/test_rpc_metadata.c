/* Tests for rpc/src/rpc_metadata.c: the multimap, wire decoding of -bin
 * values (padded, unpadded, comma-joined), and rpc_metadata_get() through
 * deep context chains. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "rpc_internal.h"

static void test_add_find_order(void **state)
{
    rpc_metadata_t *md = rpc_metadata_new();
    assert_non_null(md);
    assert_int_equal(rpc_metadata_add(md, "x-a", "1", 1), 0);
    assert_int_equal(rpc_metadata_add(md, "x-b", "2", 1), 0);
    assert_int_equal(rpc_metadata_add(md, "x-a", "3", 1), 0);
    assert_int_equal(rpc_metadata_add(md, "x-e", "", 0), 0);
    assert_int_equal(rpc_metadata_count(md), 4);
    size_t len;
    assert_string_equal(rpc_metadata_find(md, "x-a", &len), "1");
    assert_string_equal(rpc_metadata_find(md, "x-e", &len), "");
    assert_int_equal(len, 0);
    assert_null(rpc_metadata_find(md, "x-c", NULL));
    assert_null(rpc_metadata_find(md, "x", NULL));
    const char *k;
    const void *v;
    assert_true(rpc_metadata_at(md, 2, &k, &v, &len));
    assert_string_equal(k, "x-a");
    assert_string_equal(v, "3");
    assert_false(rpc_metadata_at(md, 4, &k, &v, &len));
    rpc_metadata_free(md);
    rpc_metadata_free(NULL);
}

static void test_add_rejects(void **state)
{
    rpc_metadata_t *md = rpc_metadata_new();
    assert_int_equal(rpc_metadata_add(md, "X-Upper", "v", 1), RPC_ERR_INVAL);
    assert_int_equal(rpc_metadata_add(md, "", "v", 1), RPC_ERR_INVAL);
    assert_int_equal(rpc_metadata_add(md, "a b", "v", 1), RPC_ERR_INVAL);
    assert_int_equal(rpc_metadata_add(md, "k", "a\nb", 3), RPC_ERR_INVAL);
    assert_int_equal(rpc_metadata_add(NULL, "k", "v", 1), RPC_ERR_INVAL);
    assert_int_equal(rpc_metadata_add(md, "k-bin", "\0\n\xff", 3), 0);
    assert_true(rpc_metadata_key_is_binary("k-bin"));
    assert_false(rpc_metadata_key_is_binary("bin"));
    assert_int_equal(rpc_metadata_count(md), 1);
    rpc_metadata_free(md);
}

static void test_wire_binary(void **state)
{
    rpc_metadata_t *md = rpc_metadata_new();
    const char *v = "q6ur, q6urqw==,q6urqw";
    assert_int_equal(rpc__metadata_add_wire(md, "x-t-bin", 7, v, strlen(v)), 0);
    assert_int_equal(rpc_metadata_count(md), 3);
    size_t len;
    const void *val;
    rpc_metadata_at(md, 0, NULL, &val, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(val, "\xab\xab\xab", 3);
    rpc_metadata_at(md, 1, NULL, &val, &len);
    assert_int_equal(len, 4);
    rpc_metadata_at(md, 2, NULL, &val, &len);
    assert_int_equal(len, 4);
    assert_int_equal(rpc__metadata_add_wire(md, "x-t-bin", 7, "q*", 2),
                     RPC_ERR_MALFORMED);
    assert_int_equal(rpc__metadata_add_wire(md, "X", 1, "v", 1), RPC_ERR_INVAL);
    /* ASCII values: surrounding spaces stripped, odd bytes kept */
    assert_int_equal(rpc__metadata_add_wire(md, "x-s", 3, " a\x80 ", 4), 0);
    assert_string_equal(rpc_metadata_find(md, "x-s", &len), "a\x80");
    rpc_metadata_free(md);
}

static void test_get_through_deep_chain(void **state)
{
    rpc_metadata_t *md = rpc_metadata_new();
    rpc_metadata_add(md, "x-request-id", "req-42", 6);
    ctx_t *root = ctx_with_cancel(ctx_background());
    ctx_t *req = rpc__ctx_with_request_info(root, md, "/pkg.S/M",
                                            "ipv4:127.0.0.1:1");
    assert_non_null(req);
    ctx_t *c = ctx_retain(req);
    for (int i = 0; i < 100; i++) {
        ctx_t *child = i % 2 ? ctx_with_cancel(c) : ctx_with_timeout(c, CTX_SECOND);
        ctx_release(c);
        c = child;
    }
    size_t len;
    assert_string_equal(rpc_metadata_get(c, "x-request-id", &len), "req-42");
    assert_int_equal(len, 6);
    assert_null(rpc_metadata_get(c, "x-other", NULL));
    const rpc__request_info_t *info = rpc__request_info(c);
    assert_string_equal(info->method, "/pkg.S/M");
    assert_string_equal(info->peer, "ipv4:127.0.0.1:1");
    assert_ptr_equal(rpc_metadata_from_ctx(c), md);
    /* not derived from a request: nothing */
    assert_null(rpc_metadata_get(root, "x-request-id", NULL));
    assert_null(rpc_metadata_get(ctx_background(), "x-request-id", NULL));
    ctx_release(c);
    ctx_release(req);
    ctx_release(root);
}

static void test_ctx_with_metadata(void **state)
{
    rpc_metadata_t *md = rpc_metadata_new();
    rpc_metadata_add(md, "k", "v", 1);
    errno = 0;
    assert_null(rpc_ctx_with_metadata(NULL, md));
    assert_int_equal(errno, EINVAL);
    ctx_t *c = rpc_ctx_with_metadata(ctx_background(), md);
    assert_non_null(c);
    assert_string_equal(rpc_metadata_get(c, "k", NULL), "v");
    ctx_release(c); /* frees md */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_find_order),
        cmocka_unit_test(test_add_rejects),
        cmocka_unit_test(test_wire_binary),
        cmocka_unit_test(test_get_through_deep_chain),
        cmocka_unit_test(test_ctx_with_metadata),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
