/* Tests for the call lifecycle of server_call.c: every way a request ends
 * states its cause, ctx_err() agrees with it, in 100% of 200 calls in
 * flight at once; completion cancels the request context (FINISHED) while
 * the connection is still open; the counters add up after a mixed load.
 *
 * The handler (blocking, one worker per call in flight) records what its
 * request context said when it ended, and so does a ctx_after_func watcher
 * registered on it (what a sub-task left behind would see). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <rpc/server.h>

#include "demo/v1/demo.pb-c.h"
#include "h2_test_client.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef N
#define N 200
#endif

struct seen {
    int err, cause;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int entered;
    int handled;             /* handlers that saw their context end */
    int watched;             /* watchers fired */
    struct seen handler[N];
    struct seen watcher[N];
    ctx_after_t *handles[N]; /* stopped (freed) by reset() */
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void reset(void)
{
    pthread_mutex_lock(&g.mu);
    for (int i = 0; i < N; i++) {
        ctx_after_stop(g.handles[i]);
        g.handles[i] = NULL;
    }
    g.entered = g.handled = g.watched = 0;
    memset(g.handler, 0, sizeof g.handler);
    memset(g.watcher, 0, sizeof g.watcher);
    pthread_mutex_unlock(&g.mu);
}

static int wait_count(int *field, int want, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000 + 1;
    int rc = 0;
    pthread_mutex_lock(&g.mu);
    while (*field < want && rc == 0)
        rc = pthread_cond_timedwait(&g.cv, &g.mu, &ts);
    int ok = *field >= want;
    pthread_mutex_unlock(&g.mu);
    return ok ? 0 : -1;
}

struct watch {
    ctx_t *ctx;
    int id;
};

static void watcher_fired(void *arg)
{
    struct watch *w = arg;
    pthread_mutex_lock(&g.mu);
    g.watcher[w->id].err = ctx_err(w->ctx);
    g.watcher[w->id].cause = ctx_cause(w->ctx);
    g.watched++;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    ctx_release(w->ctx);
    free(w);
}

/* x-id: the slot; x-mode: "wait" (block until the request ends, answer
 * with the cause's status) or "reply" (answer at once). */
static int handler(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *req,
                   void *ud)
{
    const char *ids = rpc_metadata_get(ctx, "x-id", NULL);
    const char *mode = rpc_metadata_get(ctx, "x-mode", NULL);
    int id = ids ? atoi(ids) : -1;
    if (id < 0 || id >= N || mode == NULL)
        return RPC_STATUS_INVALID_ARGUMENT;
    struct watch *w = malloc(sizeof *w);
    w->ctx = ctx_retain(ctx);
    w->id = id;
    ctx_after_t *a = ctx_after_func(ctx, watcher_fired, w);
    pthread_mutex_lock(&g.mu);
    g.handles[id] = a;
    g.entered++;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    if (strcmp(mode, "reply") == 0) {
        Demo__V1__FanoutReply rsp = DEMO__V1__FANOUT_REPLY__INIT;
        rpc_call_send(call, &rsp.base);
        return RPC_STATUS_OK;
    }
    ctx_wait(ctx, -1);
    pthread_mutex_lock(&g.mu);
    g.handler[id].err = ctx_err(ctx);
    g.handler[id].cause = ctx_cause(ctx);
    g.handled++;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    return rpc_cause_status(ctx_cause(ctx));
}

static rpc_server_t *start(void)
{
    reset();
    rpc_server_t *s = rpc_server_new();
    rpc_server_set_option(s, RPC_SERVER_LOOP_THREADS, 1);
    rpc_server_set_option(s, RPC_SERVER_WORKER_THREADS, N + 8);
    rpc_server_set_option(s, RPC_SERVER_MAX_CONCURRENT_STREAMS, N + 8);
    assert_int_equal(rpc_server_add_method(s, &demo__v1__demo__descriptor,
                                           "Fanout", RPC_UNARY, RPC_BLOCKING,
                                           handler, NULL), 0);
    assert_int_equal(rpc_server_listen(s, "127.0.0.1", 0), 0);
    assert_int_equal(rpc_server_start(s), 0);
    return s;
}

static int got_settings(h2t_t *c, void *arg)
{
    return nghttp2_session_get_remote_settings(
               c->sess, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS) == N + 8;
}

/* Connects and waits for the server's SETTINGS (until then the client
 * holds back streams past the default limit of 100). */
static void connect_ready(h2t_t *c, rpc_server_t *s)
{
    assert_int_equal(h2t_connect(c, rpc_server_port(s)), 0);
    assert_int_equal(h2t_flush(c), 0);
    assert_int_equal(h2t_run(c, 5000, got_settings, NULL), 0);
}

/* Starts n calls on c (ids 0..n-1) in `mode`, with grpc-timeout `timeout`
 * unless NULL. */
static void start_calls(h2t_t *c, int n, const char *mode, const char *timeout)
{
    for (int i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        int sidx = timeout
            ? h2t_call(c, "/demo.v1.Demo/Fanout", "", 0, 1, "x-id", id,
                       "x-mode", mode, "grpc-timeout", timeout, NULL)
            : h2t_call(c, "/demo.v1.Demo/Fanout", "", 0, 1, "x-id", id,
                       "x-mode", mode, NULL);
        assert_int_equal(sidx, i);
    }
    assert_int_equal(h2t_flush(c), 0);
}

static int all_closed(h2t_t *c, void *arg)
{
    for (int i = 0; i < c->nstreams; i++)
        if (!c->streams[i].closed)
            return 0;
    return 1;
}

/* Every handler and every watcher saw (err, cause). */
static void assert_all(int err, int cause)
{
    assert_int_equal(wait_count(&g.handled, N, 10000), 0);
    assert_int_equal(wait_count(&g.watched, N, 10000), 0);
    pthread_mutex_lock(&g.mu);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        if (g.handler[i].err != err || g.handler[i].cause != cause ||
            g.watcher[i].err != err || g.watcher[i].cause != cause) {
            if (bad++ < 5)
                fprintf(stderr, "call %d: handler %s/%s watcher %s/%s\n", i,
                        ctx_strerror(g.handler[i].err),
                        rpc_cause_text(g.handler[i].cause),
                        ctx_strerror(g.watcher[i].err),
                        rpc_cause_text(g.watcher[i].cause));
        }
    }
    pthread_mutex_unlock(&g.mu);
    assert_int_equal(bad, 0);
}

static void wait_idle(rpc_server_t *s)
{
    for (int i = 0; i < 5000 && rpc_server_stat(s, RPC_STAT_CALLS_ACTIVE) > 0; i++)
        ctx_wait(ctx_background(), CTX_MS);
    assert_int_equal(rpc_server_stat(s, RPC_STAT_CALLS_ACTIVE), 0);
}

static void test_deadline_200(void **state)
{
    rpc_server_t *s = start();
    h2t_t c;
    connect_ready(&c, s);
    start_calls(&c, N, "wait", "300m");
    assert_int_equal(h2t_run(&c, 20000, all_closed, NULL), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(c.streams[i].grpc_status, RPC_STATUS_DEADLINE_EXCEEDED);
    assert_all(CTX_DEADLINE_EXCEEDED, RPC_CAUSE_DEADLINE);
    h2t_close(&c);
    wait_idle(s);
    assert_int_equal(rpc_server_stat_cause(s, RPC_CAUSE_DEADLINE), N);
    assert_int_equal(rpc_server_stat_status(s, RPC_STATUS_DEADLINE_EXCEEDED), N);
    rpc_server_free(s);
}

static void test_client_cancel_200(void **state)
{
    rpc_server_t *s = start();
    h2t_t c;
    connect_ready(&c, s);
    /* A deadline far away: a cancel is never mistaken for it. */
    start_calls(&c, N, "wait", "60S");
    if (wait_count(&g.entered, N, 10000) != 0)
        fprintf(stderr, "entered %d of %d\n", g.entered, N);
    assert_int_equal(g.entered, N);
    for (int i = 0; i < N; i++)
        nghttp2_submit_rst_stream(c.sess, NGHTTP2_FLAG_NONE, c.streams[i].id,
                                  NGHTTP2_CANCEL);
    assert_int_equal(h2t_flush(&c), 0);
    assert_all(CTX_CANCELED, RPC_CAUSE_CLIENT_CANCEL);
    h2t_close(&c);
    wait_idle(s);
    assert_int_equal(rpc_server_stat_cause(s, RPC_CAUSE_CLIENT_CANCEL), N);
    rpc_server_free(s);
}

static void test_peer_gone_200(void **state)
{
    rpc_server_t *s = start();
    h2t_t c;
    connect_ready(&c, s);
    start_calls(&c, N, "wait", NULL);
    if (wait_count(&g.entered, N, 10000) != 0)
        fprintf(stderr, "entered %d of %d\n", g.entered, N);
    assert_int_equal(g.entered, N);
    h2t_close(&c);
    assert_all(CTX_CANCELED, RPC_CAUSE_PEER_GONE);
    wait_idle(s);
    assert_int_equal(rpc_server_stat_cause(s, RPC_CAUSE_PEER_GONE), N);
    rpc_server_free(s);
}

static void test_shutdown_200(void **state)
{
    rpc_server_t *s = start();
    h2t_t c;
    connect_ready(&c, s);
    start_calls(&c, N, "wait", NULL);
    if (wait_count(&g.entered, N, 10000) != 0)
        fprintf(stderr, "entered %d of %d\n", g.entered, N);
    assert_int_equal(g.entered, N);
    assert_int_equal(rpc_server_shutdown(s, 0), 0);
    assert_all(CTX_CANCELED, RPC_CAUSE_SHUTDOWN);
    h2t_run(&c, 5000, all_closed, NULL);
    /* Every answer that made it out says the same thing. */
    for (int i = 0; i < N; i++) {
        if (c.streams[i].grpc_status < 0)
            continue;
        assert_int_equal(c.streams[i].grpc_status, RPC_STATUS_UNAVAILABLE);
        assert_string_equal(c.streams[i].grpc_message,
                            rpc_cause_text(RPC_CAUSE_SHUTDOWN));
    }
    assert_int_equal(rpc_server_stat_cause(s, RPC_CAUSE_SHUTDOWN), N);
    h2t_close(&c);
    rpc_server_free(s);
}

static void test_completion_200(void **state)
{
    rpc_server_t *s = start();
    h2t_t c;
    connect_ready(&c, s);
    start_calls(&c, N, "reply", "60S");
    assert_int_equal(h2t_run(&c, 20000, all_closed, NULL), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(c.streams[i].grpc_status, RPC_STATUS_OK);
    /* The connection is still open: the watchers fire because the calls
     * completed, not because the client went away. */
    assert_int_equal(wait_count(&g.watched, N, 10000), 0);
    pthread_mutex_lock(&g.mu);
    int bad = 0;
    for (int i = 0; i < N; i++)
        bad += g.watcher[i].err != CTX_CANCELED ||
               g.watcher[i].cause != RPC_CAUSE_FINISHED;
    pthread_mutex_unlock(&g.mu);
    assert_int_equal(bad, 0);
    assert_int_equal(c.eof, 0);
    wait_idle(s);
    assert_int_equal(rpc_server_stat_cause(s, RPC_CAUSE_FINISHED), N);
    h2t_close(&c);
    rpc_server_free(s);
}

static int64_t sum_status(rpc_server_t *s)
{
    int64_t n = 0;
    for (int st = 0; st <= 16; st++)
        n += rpc_server_stat_status(s, st);
    return n;
}

static int64_t sum_cause(rpc_server_t *s)
{
    static const int causes[] = {
        RPC_CAUSE_CLIENT_CANCEL, RPC_CAUSE_PEER_GONE, RPC_CAUSE_DEADLINE,
        RPC_CAUSE_SHUTDOWN,      RPC_CAUSE_KEEPALIVE, RPC_CAUSE_FINISHED,
        RPC_CAUSE_PROTOCOL,      RPC_CAUSE_STALLED};
    int64_t n = 0;
    for (size_t i = 0; i < sizeof causes / sizeof *causes; i++)
        n += rpc_server_stat_cause(s, causes[i]);
    return n;
}

/* A mixed load: completions, deadlines, client cancels, disconnects,
 * unknown methods, bad headers, a second request message.  Once nothing
 * is in flight, every call has been counted exactly once. */
static void test_counters_add_up(void **state)
{
    rpc_server_t *s = start();
    h2t_t a, b;
    connect_ready(&a, s);
    connect_ready(&b, s);
    int k = 0;
    char id[16];
    for (int i = 0; i < 20; i++, k++) { /* complete */
        snprintf(id, sizeof id, "%d", k);
        h2t_call(&a, "/demo.v1.Demo/Fanout", "", 0, 1, "x-id", id, "x-mode",
                 "reply", NULL);
    }
    for (int i = 0; i < 20; i++, k++) { /* deadline */
        snprintf(id, sizeof id, "%d", k);
        h2t_call(&a, "/demo.v1.Demo/Fanout", "", 0, 1, "x-id", id, "x-mode",
                 "wait", "grpc-timeout", "50m", NULL);
    }
    int first_cancel = a.nstreams;
    for (int i = 0; i < 20; i++, k++) { /* cancelled by the client */
        snprintf(id, sizeof id, "%d", k);
        h2t_call(&a, "/demo.v1.Demo/Fanout", "", 0, 1, "x-id", id, "x-mode",
                 "wait", NULL);
    }
    for (int i = 0; i < 5; i++) /* unknown method */
        h2t_call(&a, "/demo.v1.Demo/Nope", "", 0, 1, NULL);
    for (int i = 0; i < 5; i++) /* bad header */
        h2t_call(&a, "/demo.v1.Demo/Fanout", "", 0, 1, "grpc-timeout", "x", NULL);
    for (int i = 0; i < 20; i++, k++) { /* their peer vanishes */
        snprintf(id, sizeof id, "%d", k);
        h2t_call(&b, "/demo.v1.Demo/Fanout", "", 0, 1, "x-id", id, "x-mode",
                 "wait", NULL);
    }
    assert_int_equal(h2t_flush(&a), 0);
    assert_int_equal(h2t_flush(&b), 0);
    assert_int_equal(wait_count(&g.entered, 80, 10000), 0);
    h2t_close(&b);
    for (int i = first_cancel; i < first_cancel + 20; i++)
        nghttp2_submit_rst_stream(a.sess, NGHTTP2_FLAG_NONE, a.streams[i].id,
                                  NGHTTP2_CANCEL);
    assert_int_equal(h2t_flush(&a), 0);
    assert_int_equal(h2t_run(&a, 20000, all_closed, NULL), 0);
    wait_idle(s);
    int64_t total = rpc_server_stat(s, RPC_STAT_CALLS_TOTAL);
    assert_int_equal(total, 90);
    assert_int_equal(rpc_server_stat(s, RPC_STAT_CALLS_OK) +
                         rpc_server_stat(s, RPC_STAT_CALLS_FAILED), total);
    assert_int_equal(sum_status(s), total);
    assert_int_equal(rpc_server_stat(s, RPC_STAT_CALLS_REJECTED) + sum_cause(s),
                     total);
    assert_int_equal(rpc_server_stat(s, RPC_STAT_CALLS_REJECTED), 10);
    assert_int_equal(rpc_server_stat(s, RPC_STAT_CALLS_OK), 20);
    assert_int_equal(rpc_server_stat_cause(s, RPC_CAUSE_FINISHED), 20);
    assert_int_equal(rpc_server_stat_cause(s, RPC_CAUSE_DEADLINE), 20);
    assert_int_equal(rpc_server_stat_cause(s, RPC_CAUSE_CLIENT_CANCEL), 20);
    assert_int_equal(rpc_server_stat_cause(s, RPC_CAUSE_PEER_GONE), 20);
    assert_int_equal(rpc_server_stat_status(s, RPC_STATUS_UNIMPLEMENTED), 5);
    h2t_close(&a);
    rpc_server_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deadline_200),
        cmocka_unit_test(test_client_cancel_200),
        cmocka_unit_test(test_peer_gone_200),
        cmocka_unit_test(test_shutdown_200),
        cmocka_unit_test(test_completion_200),
        cmocka_unit_test(test_counters_add_up),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    reset();
    ctx_shutdown();
    return rc;
}
