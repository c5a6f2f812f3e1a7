/* Fault injection across a client call's life: the n-th allocation rpc/,
 * client/ and server/ make (the server runs in this process too) after a
 * unary call starts fails, for n = 1, 2, ... until a call makes fewer than
 * n.  Each time the call must end (a status, or an error from the start
 * call) rather than hang, the next call on the same channel must succeed,
 * and nothing may leak (ASan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <rpc/client.h>
#include <rpc/server.h>

#include "demo/v1/demo.pb-c.h"
#include "rpc_internal.h"

#include <stdio.h>
#include <string.h>

static int echo(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *m,
                void *ud)
{
    const Demo__V1__FanoutRequest *req = (const Demo__V1__FanoutRequest *)m;
    Demo__V1__FanoutReply rsp = DEMO__V1__FANOUT_REPLY__INIT;
    rsp.payload = req->payload;
    return rpc_call_send(call, &rsp.base) == 0 ? RPC_STATUS_OK
                                                : RPC_STATUS_RESOURCE_EXHAUSTED;
}

/* One unary call with metadata and a deadline; returns its status, or a
 * negative RPC_ERR_* when it could not start. */
static int one_call(rpc_client_channel_t *ch)
{
    /* FanoutRequest{payload: "hello"} */
    static const uint8_t req[] = {0x1a, 5, 'h', 'e', 'l', 'l', 'o'};
    ctx_t *ctx = ctx_with_timeout(ctx_background(), 10 * CTX_SECOND);
    assert_non_null(ctx);
    rpc_metadata_t *md = rpc_metadata_new();
    int rc = md ? rpc_metadata_add(md, "x-request-id", "r-1", 3) : RPC_ERR_NOMEM;
    rpc_client_call_t *call = NULL;
    if (rc == 0)
        rc = rpc_client_unary(ctx, ch, "/demo.v1.Demo/Fanout", md, req,
                              sizeof req, &call);
    if (rc == RPC_STATUS_OK) {
        size_t len = 0;
        const uint8_t *rsp = rpc_client_call_response(call, &len);
        /* FanoutReply{payload: "hello"}: field 2, length 5 */
        assert_non_null(rsp);
        assert_int_equal(len, 7);
        assert_memory_equal(rsp + 2, "hello", 5);
    }
    rpc_client_call_free(call);
    rpc_metadata_free(md);
    ctx_release(ctx);
    return rc;
}

static void test_each_allocation_of_a_client_call(void **state)
{
    rpc_server_t *s = rpc_server_new();
    assert_non_null(s);
    rpc_server_set_option(s, RPC_SERVER_LOOP_THREADS, 1);
    assert_int_equal(rpc_server_add_method(s, &demo__v1__demo__descriptor,
                                           "Fanout", RPC_UNARY, RPC_NONBLOCKING,
                                           echo, NULL), 0);
    assert_int_equal(rpc_server_listen(s, "127.0.0.1", 0), 0);
    assert_int_equal(rpc_server_start(s), 0);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", rpc_server_port(s));
    rpc_client_options_t *o = rpc_client_options_new();
    assert_non_null(o);
    /* A failed connection is retried at once. */
    assert_int_equal(rpc_client_options_set_backoff(o, 1 * CTX_MS, 10 * CTX_MS, 2.0, 0.1), 0);
    rpc_client_options_set_wait_for_ready(o, true);
    rpc_client_channel_t *ch = NULL;
    assert_int_equal(rpc_client_channel_new(target, o, &ch), 0);
    rpc_client_options_free(o);
    assert_int_equal(one_call(ch), RPC_STATUS_OK); /* connected */
    long n;
    int failed = 0;
    for (n = 1; n < 1000; n++) {
        rpc__test_fail_alloc(n);
        int rc = one_call(ch);
        long left = rpc__test_fail_alloc(0);
        failed += rc != RPC_STATUS_OK;
        /* The next call succeeds (reconnecting if the failure cost the
         * connection). */
        assert_int_equal(one_call(ch), RPC_STATUS_OK);
        if (left > 0)
            break; /* fewer than n allocations: every one was walked */
    }
    print_message("%ld allocations walked, %d calls failed cleanly\n", n - 1,
                  failed);
    assert_true(n > 5);
    assert_true(n < 1000);
    assert_true(failed > 0);
    rpc_client_channel_free(ch);
    rpc_server_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_allocation_of_a_client_call),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ctx_shutdown();
    return rc;
}
