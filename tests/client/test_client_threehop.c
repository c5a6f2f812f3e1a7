/*
 * test_client_threehop.c -- client -> server A -> server B, both the
 * project's servers (<rpc/server.h>), in one process.  A's Fanout handler
 * calls B's Fanout with its own request context (rpc_client_unary_pb), so
 * the deadline, the cancellation and the x-request-id travel on.  B's
 * handler fans out to worker threads that wait on the request context.
 *
 * For each of: a client timeout, a client cancel, a client disconnect
 * (channel destroyed mid-call), the workers in B must all stop within a
 * bound, and B must have seen a deadline no larger than what A had left
 * when it made the downstream call.
 */
#include "client_test_util.h"

#include <rpc/client_pb.h>
#include <rpc/server.h>

#include "demo/v1/demo.pb-c.h"

#include <pthread.h>

#define WORKERS 4

static rpc_server_t *srv_a, *srv_b;
static rpc_client_channel_t *a_to_b;
static char target_a[64];

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started, stopped;
    int64_t a_left, b_left; /* remaining time seen, ns (-1: none) */
    char b_request_id[64];
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void g_reset(void)
{
    pthread_mutex_lock(&g.mu);
    g.started = g.stopped = 0;
    g.a_left = g.b_left = -1;
    g.b_request_id[0] = 0;
    pthread_mutex_unlock(&g.mu);
}

/* Waits up to timeout for *counter >= want. */
static bool g_wait(int *counter, int want, int64_t timeout)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(timeout / CTX_SECOND);
    ts.tv_nsec += (long)(timeout % CTX_SECOND);
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&g.mu);
    while (*counter < want)
        if (pthread_cond_timedwait(&g.cv, &g.mu, &ts) != 0)
            break;
    bool ok = *counter >= want;
    pthread_mutex_unlock(&g.mu);
    return ok;
}

static int64_t left_of(ctx_t *c)
{
    int64_t d;
    return ctx_deadline(c, &d) ? d - ctx_now() : -1;
}

static void *worker(void *arg)
{
    ctx_t *c = arg;
    pthread_mutex_lock(&g.mu);
    g.started++;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    ctx_wait(c, 30 * CTX_SECOND); /* "work" until the request ends */
    pthread_mutex_lock(&g.mu);
    g.stopped++;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    ctx_release(c);
    return NULL;
}

static int fanout_b(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *req,
                    void *ud)
{
    pthread_mutex_lock(&g.mu);
    g.b_left = left_of(ctx);
    const char *rid = rpc_metadata_get(ctx, "x-request-id", NULL);
    snprintf(g.b_request_id, sizeof g.b_request_id, "%s", rid ? rid : "");
    pthread_mutex_unlock(&g.mu);
    pthread_t th[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        pthread_create(&th[i], NULL, worker, ctx_retain(ctx));
    for (int i = 0; i < WORKERS; i++)
        pthread_join(th[i], NULL);
    if (ctx_err(ctx))
        return RPC_STATUS_CANCELLED; /* dropped: the call is answered */
    Demo__V1__FanoutReply r = DEMO__V1__FANOUT_REPLY__INIT;
    r.tasks_done = WORKERS;
    rpc_call_send(call, &r.base);
    return RPC_STATUS_OK;
}

static int fanout_a(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *req,
                    void *ud)
{
    pthread_mutex_lock(&g.mu);
    g.a_left = left_of(ctx);
    pthread_mutex_unlock(&g.mu);
    ProtobufCMessage *resp;
    /* The request context goes straight into the downstream call. */
    int st = rpc_client_unary_pb(ctx, a_to_b, "/demo.v1.Demo/Fanout", NULL,
                                 req, &demo__v1__fanout_reply__descriptor,
                                 &resp, NULL);
    if (st != RPC_STATUS_OK)
        return st;
    rpc_call_send(call, resp);
    protobuf_c_message_free_unpacked(resp, NULL);
    return RPC_STATUS_OK;
}

static rpc_server_t *start_server(rpc_handler_fn fn)
{
    rpc_server_t *s = rpc_server_new();
    if (s == NULL ||
        rpc_server_set_option(s, RPC_SERVER_LOOP_THREADS, 1) != 0 ||
        rpc_server_set_option(s, RPC_SERVER_WORKER_THREADS, 8) != 0 ||
        rpc_server_add_method(s, &demo__v1__demo__descriptor, "Fanout",
                              RPC_UNARY, RPC_BLOCKING, fn, NULL) != 0 ||
        rpc_server_listen(s, "127.0.0.1", 0) != 0 ||
        rpc_server_start(s) != 0)
        return NULL;
    return s;
}

static int setup(void **state)
{
    srv_b = start_server(fanout_b);
    srv_a = start_server(fanout_a);
    if (srv_a == NULL || srv_b == NULL)
        return -1;
    char tb[64];
    snprintf(tb, sizeof tb, "127.0.0.1:%d", rpc_server_port(srv_b));
    snprintf(target_a, sizeof target_a, "127.0.0.1:%d",
             rpc_server_port(srv_a));
    return rpc_client_channel_new(tb, NULL, &a_to_b);
}

static int teardown(void **state)
{
    rpc_server_free(srv_a);
    rpc_client_channel_free(a_to_b);
    rpc_server_free(srv_b);
    ctx_shutdown();
    return 0;
}

struct client_call {
    rpc_client_channel_t *ch;
    ctx_t *ctx;
    int status;
    int64_t took;
};

static void *client_thread(void *arg)
{
    struct client_call *c = arg;
    Demo__V1__FanoutRequest r = DEMO__V1__FANOUT_REQUEST__INIT;
    r.tasks = WORKERS;
    rpc_metadata_t *md = rpc_metadata_new();
    rpc_metadata_add(md, "x-request-id", "hop-1", 5);
    ProtobufCMessage *resp = NULL;
    int64_t t0 = ctx_now();
    c->status = rpc_client_unary_pb(c->ctx, c->ch, "/demo.v1.Demo/Fanout", md,
                                    &r.base,
                                    &demo__v1__fanout_reply__descriptor,
                                    &resp, NULL);
    c->took = ctx_now() - t0;
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    rpc_metadata_free(md);
    return NULL;
}

/* The bound within which B's workers must stop once the client gives up. */
#define STOP_BOUND (T_SCALE(1, 3) * CTX_SECOND)

static void check_propagated(int64_t budget)
{
    pthread_mutex_lock(&g.mu);
    int64_t a = g.a_left, b = g.b_left;
    bool rid = strcmp(g.b_request_id, "hop-1") == 0;
    pthread_mutex_unlock(&g.mu);
    assert_true(rid); /* x-request-id travelled two hops */
    if (budget > 0) {
        assert_true(a > 0 && a <= budget);
        /* B saw no more than A had left (grpc-timeout rounds up to the
         * next microsecond, hence the 1 us slack). */
        assert_true(b > 0 && b <= a + CTX_US);
    }
}

static void test_client_timeout(void **state)
{
    g_reset();
    rpc_client_channel_t *ch;
    assert_int_equal(rpc_client_channel_new(target_a, NULL, &ch), 0);
    const int64_t budget = 400 * CTX_MS;
    struct client_call c = {.ch = ch,
                          .ctx = ctx_with_timeout(ctx_background(), budget)};
    pthread_t th;
    pthread_create(&th, NULL, client_thread, &c);
    assert_true(g_wait(&g.started, WORKERS, 10 * CTX_SECOND));
    pthread_join(th, NULL);
    assert_int_equal(c.status, RPC_STATUS_DEADLINE_EXCEEDED);
    int64_t t_end = ctx_now();
    assert_true(g_wait(&g.stopped, WORKERS, STOP_BOUND));
    assert_true(ctx_now() - t_end < STOP_BOUND);
    check_propagated(budget);
    ctx_release(c.ctx);
    rpc_client_channel_free(ch);
}

static void test_client_cancel(void **state)
{
    g_reset();
    rpc_client_channel_t *ch;
    assert_int_equal(rpc_client_channel_new(target_a, NULL, &ch), 0);
    struct client_call c = {.ch = ch, .ctx = ctx_with_cancel(ctx_background())};
    pthread_t th;
    pthread_create(&th, NULL, client_thread, &c);
    assert_true(g_wait(&g.started, WORKERS, 10 * CTX_SECOND));
    int64_t t0 = ctx_now();
    ctx_cancel(c.ctx);
    pthread_join(th, NULL);
    assert_int_equal(c.status, RPC_STATUS_CANCELLED);
    assert_true(g_wait(&g.stopped, WORKERS, STOP_BOUND));
    assert_true(ctx_now() - t0 < STOP_BOUND);
    check_propagated(0);
    ctx_release(c.ctx);
    rpc_client_channel_free(ch);
}

static void test_client_disconnect(void **state)
{
    g_reset();
    rpc_client_channel_t *ch;
    assert_int_equal(rpc_client_channel_new(target_a, NULL, &ch), 0);
    struct client_call c = {
        .ch = ch, .ctx = ctx_with_timeout(ctx_background(), 20 * CTX_SECOND)};
    pthread_t th;
    pthread_create(&th, NULL, client_thread, &c);
    assert_true(g_wait(&g.started, WORKERS, 10 * CTX_SECOND));
    int64_t t0 = ctx_now();
    rpc_client_channel_free(ch); /* closes the TCP connection to A */
    pthread_join(th, NULL);
    assert_int_equal(c.status, RPC_STATUS_CANCELLED);
    assert_true(g_wait(&g.stopped, WORKERS, STOP_BOUND));
    assert_true(ctx_now() - t0 < STOP_BOUND);
    check_propagated(20 * CTX_SECOND);
    ctx_release(c.ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_timeout),
        cmocka_unit_test(test_client_cancel),
        cmocka_unit_test(test_client_disconnect),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
