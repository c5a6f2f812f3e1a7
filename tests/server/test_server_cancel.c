/* Tests for the cancellation sources of server_call.c / server_conn.c:
 * each way a request can end early cancels the handler's context and
 * every sub-task's, with its own cause, and the request is freed once the
 * last of them returns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "server_fixture.h"

static void assert_all_saw(struct fx *f, int cause)
{
    assert_int_equal(fx_wait(f, &f->handler_done, 1, 5000), 0);
    assert_int_equal(fx_wait(f, &f->sub_done, FX_SUBTASKS, 5000), 0);
    pthread_mutex_lock(&f->mu);
    assert_int_equal(f->handler_cause, cause);
    for (int i = 0; i < FX_SUBTASKS; i++)
        assert_int_equal(f->sub_causes[i], cause);
    pthread_mutex_unlock(&f->mu);
}

static void wait_freed(struct fx *f)
{
    /* The request's memory goes when its last worker returns; the call
     * count is the server's own record of that. */
    for (int i = 0; i < 500 && rpc_server_stat(f->s, RPC_STAT_CALLS_ACTIVE) > 0; i++)
        ctx_wait(ctx_background(), CTX_MS);
    assert_int_equal(rpc_server_stat(f->s, RPC_STAT_CALLS_ACTIVE), 0);
}

static int start_call(h2t_t *c, struct fx *f, const char *timeout)
{
    int sidx = timeout
        ? h2t_call(c, "/demo.v1.Demo/Fanout", "", 0, 1, "x-request-id", "rid-7",
                   "grpc-timeout", timeout, NULL)
        : h2t_call(c, "/demo.v1.Demo/Fanout", "", 0, 1, "x-request-id", "rid-7",
                   NULL);
    assert_true(sidx >= 0);
    assert_int_equal(h2t_flush(c), 0);
    assert_int_equal(fx_wait(f, &f->sub_started, FX_SUBTASKS, 5000), 0);
    return sidx;
}

static void test_deadline(void **state)
{
    struct fx *f = fx_start(NULL);
    h2t_t c;
    assert_int_equal(h2t_connect(&c, f->port), 0);
    int64_t t0 = ctx_now();
    int sidx = start_call(&c, f, "200m");
    assert_int_equal(h2t_run(&c, 5000, h2t_closed, &sidx), 0);
    assert_int_equal(c.streams[sidx].grpc_status, RPC_STATUS_DEADLINE_EXCEEDED);
    assert_all_saw(f, RPC_CAUSE_DEADLINE);
    /* Never early, and not lost: 200 ms after arrival.  The upper bound
     * only catches a hang or a misread unit (timeliness is measured in
     * bench/cancel_latency, not asserted on a loaded CI machine). */
    int64_t late = f->cancel_seen_ns - t0 - 200 * CTX_MS;
    assert_true(late >= 0);
    assert_true(late < CTX_SECOND);
    assert_string_equal(f->seen_request_id, "rid-7");
    assert_string_equal(f->seen_method, "/demo.v1.Demo/Fanout");
    h2t_close(&c);
    wait_freed(f);
    assert_int_equal(rpc_server_stat(f->s, RPC_STAT_CANCEL_DEADLINE), 1);
    fx_stop(f);
}

static void test_client_rst(void **state)
{
    struct fx *f = fx_start(NULL);
    h2t_t c;
    assert_int_equal(h2t_connect(&c, f->port), 0);
    int sidx = start_call(&c, f, NULL);
    nghttp2_submit_rst_stream(c.sess, NGHTTP2_FLAG_NONE, c.streams[sidx].id,
                              NGHTTP2_CANCEL);
    assert_int_equal(h2t_flush(&c), 0);
    assert_all_saw(f, RPC_CAUSE_CLIENT_CANCEL);
    h2t_close(&c);
    wait_freed(f);
    assert_int_equal(rpc_server_stat(f->s, RPC_STAT_CANCEL_CLIENT), 1);
    fx_stop(f);
}

static void test_disconnect(void **state)
{
    struct fx *f = fx_start(NULL);
    h2t_t c;
    assert_int_equal(h2t_connect(&c, f->port), 0);
    start_call(&c, f, "30S");
    h2t_close(&c); /* TCP close, no RST_STREAM */
    assert_all_saw(f, RPC_CAUSE_PEER_GONE);
    wait_freed(f);
    assert_int_equal(rpc_server_stat(f->s, RPC_STAT_CANCEL_PEER_GONE), 1);
    fx_stop(f);
}

static void test_keepalive_half_open(void **state)
{
    /* A peer that is connected but silent: it never reads, so it never
     * acknowledges the server's PING (a crashed host behind a live TCP
     * path looks the same). */
    int64_t opts[] = {RPC_SERVER_KEEPALIVE_TIME_MS, 100,
                      RPC_SERVER_KEEPALIVE_TIMEOUT_MS, 100, 0};
    struct fx *f = fx_start(opts);
    h2t_t c;
    assert_int_equal(h2t_connect(&c, f->port), 0);
    start_call(&c, f, NULL);
    /* no h2t_run from here: nothing is read, no PING is acked */
    assert_all_saw(f, RPC_CAUSE_KEEPALIVE);
    wait_freed(f);
    assert_int_equal(rpc_server_stat(f->s, RPC_STAT_CANCEL_KEEPALIVE), 1);
    h2t_close(&c);
    fx_stop(f);
}

static void test_shutdown(void **state)
{
    struct fx *f = fx_start(NULL);
    h2t_t c;
    assert_int_equal(h2t_connect(&c, f->port), 0);
    int sidx = start_call(&c, f, NULL);
    assert_int_equal(rpc_server_shutdown(f->s, 20 * CTX_MS), 0);
    assert_all_saw(f, RPC_CAUSE_SHUTDOWN);
    assert_int_equal(rpc_server_stat(f->s, RPC_STAT_CALLS_ACTIVE), 0);
    h2t_run(&c, 2000, h2t_closed, &sidx);
    assert_true(c.goaway);
    if (c.streams[sidx].grpc_status >= 0)
        assert_int_equal(c.streams[sidx].grpc_status, RPC_STATUS_UNAVAILABLE);
    assert_int_equal(rpc_server_stat(f->s, RPC_STAT_CANCEL_SHUTDOWN), 1);
    h2t_close(&c);
    fx_stop(f);
}

static int got_goaway(h2t_t *c, void *arg)
{
    return c->goaway;
}

static void test_too_many_pings(void **state)
{
    struct fx *f = fx_start(NULL);
    h2t_t c;
    assert_int_equal(h2t_connect(&c, f->port), 0);
    for (int i = 0; i < 4; i++)
        nghttp2_submit_ping(c.sess, NGHTTP2_FLAG_NONE, NULL);
    assert_int_equal(h2t_flush(&c), 0);
    assert_int_equal(h2t_run(&c, 5000, got_goaway, NULL), 0);
    assert_int_equal(c.goaway_code, NGHTTP2_ENHANCE_YOUR_CALM);
    h2t_close(&c);
    fx_stop(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_client_rst),
        cmocka_unit_test(test_disconnect),
        cmocka_unit_test(test_keepalive_half_open),
        cmocka_unit_test(test_shutdown),
        cmocka_unit_test(test_too_many_pings),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ctx_shutdown();
    return rc;
}
