/* /ctxz (server_admin.c) under load: 200 requests in flight, each with a
 * small context tree of its own (a timeout child and a cancel grandchild
 * with an AfterFunc, from a non-blocking handler), are listed with their
 * request ids and deadlines; then all 200 are cancelled by the client
 * while another thread loads /ctxz and /ctxz?format=json in a loop.  No
 * page view may stall (each is bounded), TSan must see no race, and
 * afterwards the page shows no live request and the recent ends with
 * their cause, as /metrics counts them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <rpc/server.h>

#include "demo/v1/demo.pb-c.h"
#include "h2_test_client.h"
#include "obs_test_util.h"

#include <stdatomic.h>

#define N 200

struct req_state {
    rpc_call_t *call;
    ctx_t *child, *grandchild;
    ctx_after_t *after;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int entered, finished;
static struct req_state states[N];

/* The AfterFunc of a request's grandchild: the request ended (the
 * client's cancel reached the whole tree); complete the call. */
static void ended(void *arg)
{
    struct req_state *st = arg;
    rpc_call_finish(st->call, rpc_cause_status(ctx_cause(st->grandchild)), NULL);
    pthread_mutex_lock(&mu);
    finished++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static int handler(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *req,
                   void *ud)
{
    pthread_mutex_lock(&mu);
    int i = entered < N ? entered : -1;
    if (i >= 0)
        entered++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    if (i < 0)
        return RPC_STATUS_RESOURCE_EXHAUSTED;
    struct req_state *st = &states[i];
    st->call = call;
    st->child = ctx_with_timeout(ctx, 15 * CTX_SECOND); /* < 20 s: its own */
    st->grandchild = ctx_with_cancel(st->child);
    st->after = ctx_after_func(st->grandchild, ended, st);
    return st->after ? RPC_PENDING : RPC_STATUS_INTERNAL;
}

struct pager {
    int port;
    atomic_int stop;
    atomic_int pages;
    int bad;
    int64_t max_ns;
};

static void *pager_main(void *arg)
{
    struct pager *p = arg;
    while (!atomic_load(&p->stop)) {
        int code = 0;
        int json = atomic_load(&p->pages) % 2;
        int64_t t0 = ctx_now();
        char *b = obs_http_get(p->port, json ? "/ctxz?format=json" : "/ctxz", &code, 10000);
        int64_t dt = ctx_now() - t0;
        if (dt > p->max_ns)
            p->max_ns = dt;
        if (b == NULL || code != 200 ||
            strncmp(b, json ? "{\"server\"" : "<!DOCTYPE html>", json ? 9 : 15) != 0)
            p->bad++;
        free(b);
        atomic_fetch_add(&p->pages, 1);
    }
    return NULL;
}

static int all_entered(h2t_t *c, void *arg)
{
    pthread_mutex_lock(&mu);
    int ok = entered >= N;
    pthread_mutex_unlock(&mu);
    return ok;
}

static int all_finished(h2t_t *c, void *arg)
{
    pthread_mutex_lock(&mu);
    int ok = finished >= N;
    pthread_mutex_unlock(&mu);
    return ok;
}

/* Drives the client in 10 ms slices until cond holds (h2t_run alone
 * re-checks its condition only when a frame arrives, and a pending
 * non-blocking handler sends none). */
static int run_until(h2t_t *c, int timeout_ms, int (*cond)(h2t_t *, void *))
{
    int64_t end = ctx_now() + (int64_t)timeout_ms * CTX_MS;
    while (!cond(c, NULL)) {
        if (ctx_now() > end || c->eof)
            return -1;
        h2t_run(c, 10, NULL, NULL);
    }
    return 0;
}

static void test_ctxz_while_cancelling(void **state)
{
    rpc_server_t *s = rpc_server_new();
    rpc_server_set_option(s, RPC_SERVER_LOOP_THREADS, 2);
    rpc_server_set_option(s, RPC_SERVER_MAX_CONCURRENT_STREAMS, 256);
    assert_int_equal(rpc_server_add_method(s, &demo__v1__demo__descriptor, "Fanout",
                                           RPC_UNARY, RPC_NONBLOCKING, handler, NULL),
                     0);
    assert_int_equal(rpc_server_enable_admin(s, "127.0.0.1", 0), 0);
    assert_int_equal(rpc_server_listen(s, "127.0.0.1", 0), 0);
    assert_int_equal(rpc_server_start(s), 0);
    int admin = rpc_server_admin_port(s);

    h2t_t c;
    assert_int_equal(h2t_connect(&c, rpc_server_port(s)), 0);
    int sidx[N];
    for (int i = 0; i < N; i++) {
        char rid[32];
        snprintf(rid, sizeof rid, "z-%03d", i);
        sidx[i] = h2t_call(&c, "/demo.v1.Demo/Fanout", "", 0, 1, "x-request-id", rid,
                           "grpc-timeout", "20S", NULL);
        assert_true(sidx[i] >= 0);
    }
    assert_int_equal(h2t_flush(&c), 0);
    assert_int_equal(run_until(&c, 20000, all_entered), 0);

    /* Every in-flight request is on the page, with its deadline. */
    int code = 0;
    char *j = obs_http_get(admin, "/ctxz?format=json", &code, 10000);
    assert_non_null(j);
    assert_int_equal(code, 200);
    if (getenv("OBS_DUMP"))
        fprintf(stderr, "%.3000s\n", j);
    for (int i = 0; i < N; i++) {
        char rid[48];
        snprintf(rid, sizeof rid, "\"request_id\":\"z-%03d\"", i);
        assert_non_null(strstr(j, rid));
    }
    assert_non_null(strstr(j, "\"live_requests\":200"));
    assert_int_equal(obs_count(j, "\"state\":\"running\""), N);
    /* Each request's tree: the request (with the server's watcher
     * AfterFunc), the timeout child, the grandchild (with ours). */
    assert_int_equal(obs_count(j, "\"afterfuncs\":1"), 2 * N);
    assert_int_equal(obs_count(j, "\"own_deadline\":true"), 2 * N);
    assert_null(strstr(j, "\"deadline_left_ms\":null,\"state\":\"running\""));
    free(j);

    /* Cancel all 200 while a page is loaded over and over. */
    struct pager p = {.port = admin};
    pthread_t t;
    pthread_create(&t, NULL, pager_main, &p);
    /* The pager is loading pages before the cancels start (bounded). */
    int64_t until = ctx_now() + 10 * CTX_SECOND;
    while (atomic_load(&p.pages) < 1 && ctx_now() < until)
        h2t_run(&c, 5, NULL, NULL);
    int before = atomic_load(&p.pages);
    for (int i = 0; i < N; i++)
        nghttp2_submit_rst_stream(c.sess, NGHTTP2_FLAG_NONE, c.streams[sidx[i]].id,
                                  NGHTTP2_CANCEL);
    assert_int_equal(h2t_flush(&c), 0);
    assert_int_equal(run_until(&c, 20000, all_finished), 0);
    for (int i = 0; i < 2000 && rpc_server_stat(s, RPC_STAT_CALLS_ACTIVE) > 0; i++)
        ctx_wait(ctx_background(), CTX_MS); /* bounded poll, not a sync sleep */
    assert_int_equal(rpc_server_stat(s, RPC_STAT_CALLS_ACTIVE), 0);
    /* ... and goes on loading them after: one page at least overlapped. */
    until = ctx_now() + 10 * CTX_SECOND;
    while (atomic_load(&p.pages) < before + 2 && ctx_now() < until)
        h2t_run(&c, 5, NULL, NULL);
    atomic_store(&p.stop, 1);
    pthread_join(t, NULL);
    assert_true(before >= 1 && atomic_load(&p.pages) >= before + 2);
    assert_int_equal(p.bad, 0);
    assert_true(p.max_ns < 5 * CTX_SECOND); /* no stall */
    print_message("pages loaded around the cancels: %d, slowest %.1f ms\n",
                  atomic_load(&p.pages),
                  (double)p.max_ns / 1e6);

    j = obs_http_get(admin, "/ctxz.json", &code, 10000);
    assert_non_null(j);
    assert_non_null(strstr(j, "\"live_requests\":0"));
    assert_int_equal(obs_count(j, "\"cause\":\"client_cancel\",\"lived_ms\""), 64);
    free(j);
    char *m = obs_http_get(admin, "/metrics", &code, 10000);
    assert_non_null(m);
    assert_true(obs_sample(m, "rpc_server_cancellations_total{cause=\"client_cancel\"}") == N);
    assert_true(obs_sample(m, "rpc_server_cancel_drain_seconds_count") == N);
    assert_true(obs_sample(m, "rpc_server_live_requests") == 0);
    free(m);

    h2t_close(&c);
    rpc_server_free(s);
    for (int i = 0; i < N; i++) {
        ctx_after_stop(states[i].after);
        ctx_release(states[i].grandchild);
        ctx_release(states[i].child);
    }
    ctx_shutdown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctxz_while_cancelling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
