/* Long-lived blocking streams must not starve short calls: on a server
 * with its default worker pool, 40 server-streaming calls whose blocking
 * handlers stay open (more than the pool's initial threads) and then a
 * unary call with a 2 s deadline: it must be answered OK, as it is by
 * grpc-go (a goroutine per handler) or grpc C++'s growing sync pool.
 * And the default pool's scheduling policy: its workers run SCHED_BATCH
 * unless RPC_SERVER_WORKER_SCHED_BATCH is 0. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* SCHED_BATCH */
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <rpc/server.h>

#include "demo/v1/demo.pb-c.h"
#include "h2_test_client.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#define STREAMS 40

static atomic_int watching;

/* A Watch-like handler: one tick, then blocks until the call ends. */
static int watch(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *m,
                 void *ud)
{
    Demo__V1__Tick t = DEMO__V1__TICK__INIT;
    atomic_fetch_add(&watching, 1); /* before the tick the test waits for */
    rpc_call_send(call, &t.base);
    ctx_wait(ctx, -1);
    atomic_fetch_sub(&watching, 1);
    return rpc_cause_status(ctx_cause(ctx));
}

static int echo(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *m,
                void *ud)
{
    Demo__V1__FanoutReply rsp = DEMO__V1__FANOUT_REPLY__INIT;
    return rpc_call_send(call, &rsp.base) == 0 ? RPC_STATUS_OK
                                                : RPC_STATUS_INTERNAL;
}

static int all_ticked(h2t_t *c, void *arg)
{
    for (int i = 0; i < STREAMS; i++)
        if (c->streams[i].data_len == 0)
            return 0;
    return 1;
}

static void test_streams_do_not_starve_unary(void **state)
{
    rpc_server_t *s = rpc_server_new(); /* the default pool */
    assert_int_equal(rpc_server_add_method(s, &demo__v1__demo__descriptor,
                                           "Ticks", RPC_SERVER_STREAMING,
                                           RPC_BLOCKING, watch, NULL), 0);
    assert_int_equal(rpc_server_add_method(s, &demo__v1__demo__descriptor,
                                           "Fanout", RPC_UNARY, RPC_BLOCKING,
                                           echo, NULL), 0);
    assert_int_equal(rpc_server_listen(s, "127.0.0.1", 0), 0);
    assert_int_equal(rpc_server_start(s), 0);
    h2t_t c;
    assert_int_equal(h2t_connect(&c, rpc_server_port(s)), 0);
    for (int i = 0; i < STREAMS; i++)
        assert_int_equal(h2t_call(&c, "/demo.v1.Demo/Ticks", "", 0, 1, NULL), i);
    assert_int_equal(h2t_flush(&c), 0);
    /* Every stream's handler is running (each sent its first tick). */
    assert_int_equal(h2t_run(&c, 20000, all_ticked, NULL), 0);
    assert_int_equal(atomic_load(&watching), STREAMS);
    int u = h2t_call(&c, "/demo.v1.Demo/Fanout", "", 0, 1, "grpc-timeout", "2S",
                     NULL);
    assert_int_equal(h2t_flush(&c), 0);
    assert_int_equal(h2t_run(&c, 10000, h2t_closed, &u), 0);
    assert_int_equal(c.streams[u].grpc_status, RPC_STATUS_OK);
    h2t_close(&c);
    rpc_server_free(s);
    assert_int_equal(atomic_load(&watching), 0);
}

static atomic_int handler_policy;

static int policy_echo(ctx_t *ctx, rpc_call_t *call,
                       const ProtobufCMessage *m, void *ud)
{
    atomic_store(&handler_policy, sched_getscheduler(0));
    return echo(ctx, call, m, ud);
}

/* The policy a blocking handler runs under, with the option at `opt`
 * (-1: not set). */
static int policy_with(int opt)
{
    rpc_server_t *s = rpc_server_new();
    if (opt >= 0)
        assert_int_equal(
            rpc_server_set_option(s, RPC_SERVER_WORKER_SCHED_BATCH, opt), 0);
    assert_int_equal(rpc_server_add_method(s, &demo__v1__demo__descriptor,
                                           "Fanout", RPC_UNARY, RPC_BLOCKING,
                                           policy_echo, NULL), 0);
    assert_int_equal(rpc_server_listen(s, "127.0.0.1", 0), 0);
    assert_int_equal(rpc_server_start(s), 0);
    atomic_store(&handler_policy, -2);
    assert_int_equal(h2t_unary_status(rpc_server_port(s), "/demo.v1.Demo/Fanout",
                                      10000),
                     RPC_STATUS_OK);
    rpc_server_free(s);
    return atomic_load(&handler_policy);
}

static void *try_batch(void *arg)
{
    struct sched_param sp = {0};
    *(int *)arg = pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
    return NULL;
}

static void test_worker_policy_option(void **state)
{
    rpc_server_t *s = rpc_server_new();
    assert_int_equal(rpc_server_set_option(s, RPC_SERVER_WORKER_SCHED_BATCH, 2),
                     RPC_ERR_INVAL);
    rpc_server_free(s);
    assert_int_equal(policy_with(0), sched_getscheduler(0));
    int rc = -1;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, try_batch, &rc), 0);
    pthread_join(t, NULL);
    if (rc != 0)
        skip(); /* the system refuses SCHED_BATCH: documented as ignored */
    assert_int_equal(policy_with(-1), SCHED_BATCH); /* the default */
    assert_int_equal(policy_with(1), SCHED_BATCH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_streams_do_not_starve_unary),
        cmocka_unit_test(test_worker_policy_option),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ctx_shutdown();
    return rc;
}
