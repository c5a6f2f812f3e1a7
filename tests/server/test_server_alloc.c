/* Fault injection across a call's life: the n-th allocation rpc/ and
 * server/ make after a request is sent fails, for n = 1, 2, ... until a
 * call makes fewer than n.  Each time the call must end with a clear
 * answer (a grpc-status, or a reset of its stream) rather than hang, the
 * server must serve the next call normally, and nothing may leak (ASan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <rpc/server.h>

#include "demo/v1/demo.pb-c.h"
#include "h2_test_client.h"
#include "ctx_internal.h"
#include "rpc_internal.h"

#include <string.h>

static int echo(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *m,
                void *ud)
{
    const Demo__V1__FanoutRequest *req = (const Demo__V1__FanoutRequest *)m;
    Demo__V1__FanoutReply rsp = DEMO__V1__FANOUT_REPLY__INIT;
    rsp.payload = req->payload;
    rsp.tasks_done = req->tasks;
    int rc = rpc_call_send(call, &rsp.base);
    if (rc != 0)
        return rc == RPC_ERR_NOMEM ? RPC_STATUS_RESOURCE_EXHAUSTED
                                   : RPC_STATUS_INTERNAL;
    rpc_call_set_trailer(call, "x-done", "yes", 3);
    return RPC_STATUS_OK;
}

static int ticks(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *m,
                 void *ud)
{
    const Demo__V1__TickRequest *req = (const Demo__V1__TickRequest *)m;
    for (int i = 0; i < req->count; i++) {
        Demo__V1__Tick t = DEMO__V1__TICK__INIT;
        t.seq = i;
        if (rpc_call_send(call, &t.base) != 0)
            return RPC_STATUS_RESOURCE_EXHAUSTED;
    }
    return RPC_STATUS_OK;
}

static rpc_server_t *start(void)
{
    rpc_server_t *s = rpc_server_new();
    assert_non_null(s);
    rpc_server_set_option(s, RPC_SERVER_LOOP_THREADS, 1);
    rpc_server_set_option(s, RPC_SERVER_WORKER_THREADS, 2);
    /* Not nghttp2's default of 100, so got_settings() sees the server's. */
    rpc_server_set_option(s, RPC_SERVER_MAX_CONCURRENT_STREAMS, 101);
    assert_int_equal(rpc_server_add_method(s, &demo__v1__demo__descriptor,
                                           "Fanout", RPC_UNARY, RPC_BLOCKING,
                                           echo, NULL), 0);
    assert_int_equal(rpc_server_add_method(s, &demo__v1__demo__descriptor,
                                           "Ticks", RPC_SERVER_STREAMING,
                                           RPC_NONBLOCKING, ticks, NULL), 0);
    assert_int_equal(rpc_server_listen(s, "127.0.0.1", 0), 0);
    assert_int_equal(rpc_server_start(s), 0);
    return s;
}

static int closed_or_eof(h2t_t *c, void *arg)
{
    int i = *(int *)arg;
    return c->eof || c->streams[i].closed;
}

static int got_settings(h2t_t *c, void *arg)
{
    return nghttp2_session_get_remote_settings(
               c->sess, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS) == 101;
}

/* Connects and waits for the server's SETTINGS: the connection is set up
 * on the server before any allocation is armed. */
static void connect_ready(h2t_t *c, rpc_server_t *s)
{
    assert_int_equal(h2t_connect(c, rpc_server_port(s)), 0);
    assert_int_equal(h2t_flush(c), 0);
    assert_int_equal(h2t_run(c, 10000, got_settings, NULL), 0);
}

/* One call of `path` with body; returns its stream index. */
static int call(h2t_t *c, const char *path, const uint8_t *body, size_t len,
                const char *mdval)
{
    int i = h2t_call(c, path, body, len, 1, "x-md", mdval, "grpc-timeout",
                     "5S", NULL);
    assert_true(i >= 0);
    assert_int_equal(h2t_flush(c), 0);
    return i;
}

/* arm(n): arm the n-th allocation of one allocator to fail; returns the
 * countdown left.  rpc/ + server/, or libctx (context nodes, AfterFuncs,
 * pool tasks). */
static void each_allocation(long (*arm)(long), const char *path,
                            const uint8_t *body, size_t len)
{
    rpc_server_t *s = start();
    long n;
    int failed_calls = 0;
    for (n = 1; n < 500; n++) {
        h2t_t c;
        connect_ready(&c, s);
        arm(n);
        int i = call(&c, path, body, len, "v");
        /* Bounded: a hang fails here. */
        int ran = h2t_run(&c, 10000, closed_or_eof, &i);
        if (ran != 0)
            print_error("%s: the call with allocation %ld failed did not end "
                        "(eof %d, closed %d, status %d)\n", path, n, c.eof,
                        c.streams[i].closed, c.streams[i].grpc_status);
        assert_int_equal(ran, 0);
        long left = arm(0);
        struct h2t_stream *st = &c.streams[i];
        /* A clear end: a grpc-status, or a reset stream or connection. */
        assert_true(st->grpc_status >= 0 || st->rst_code != 0 || c.eof);
        if (left == 0 && st->grpc_status != 0)
            failed_calls++;
        h2t_close(&c);
        /* The server serves the next call normally. */
        connect_ready(&c, s);
        i = call(&c, path, body, len, "w");
        assert_int_equal(h2t_run(&c, 10000, h2t_closed, &i), 0);
        assert_int_equal(c.streams[i].grpc_status, RPC_STATUS_OK);
        h2t_close(&c);
        if (left > 0)
            break; /* the call made fewer than n allocations: all walked */
    }
    print_message("%s: %ld allocations walked, %d calls failed cleanly\n", path, n - 1, failed_calls);
    assert_true(n > 3);        /* the call's life does allocate */
    assert_true(n < 500);
    assert_true(failed_calls > 0);
    for (int k = 0; k < 5000 && rpc_server_stat(s, RPC_STAT_CALLS_ACTIVE) > 0; k++)
        ctx_wait(ctx_background(), CTX_MS);
    assert_int_equal(rpc_server_stat(s, RPC_STAT_CALLS_ACTIVE), 0);
    rpc_server_free(s);
}

static void test_unary_blocking(void **state)
{
    /* FanoutRequest{tasks: 3, payload: "hello"} */
    const uint8_t req[] = {0x08, 3, 0x1a, 5, 'h', 'e', 'l', 'l', 'o'};
    each_allocation(rpc__test_fail_alloc, "/demo.v1.Demo/Fanout", req, sizeof req);
    each_allocation(ctx__test_fail_alloc, "/demo.v1.Demo/Fanout", req, sizeof req);
}

static void test_server_streaming(void **state)
{
    /* TickRequest{count: 5} */
    const uint8_t req[] = {0x08, 5};
    each_allocation(rpc__test_fail_alloc, "/demo.v1.Demo/Ticks", req, sizeof req);
    each_allocation(ctx__test_fail_alloc, "/demo.v1.Demo/Ticks", req, sizeof req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary_blocking),
        cmocka_unit_test(test_server_streaming),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ctx_shutdown();
    return rc;
}
