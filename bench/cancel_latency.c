/*
 * cancel_latency -- how long after a client's RST_STREAM, disconnect or
 * deadline the LAST sub-task worker of the request has returned, and with
 * which cause.  In-process: the server (one loop) and a hand-driven
 * nghttp2 client share CLOCK_MONOTONIC, so the figure is exact:
 *   RST / disconnect: from just before the client writes the RST_STREAM
 *                     (or closes the socket) to the last sub-task return;
 *   deadline:         from the request's deadline (arrival + grpc-timeout,
 *                     read with ctx_deadline() in the handler) to the last
 *                     sub-task return.
 * Each request fans out to SUBTASKS sub-tasks under a child context of the
 * request's (non-blocking handler: no handler thread; the last sub-task to
 * return finishes the call), in one of two styles:
 *   threads: pool tasks that each park a ctx_pool thread in ctx_wait (the
 *            Go-like "goroutine blocked on <-ctx.Done()");
 *   events:  ctx_after_func registrations, the C form of a sub-task that
 *            waits on an event rather than holding a thread.
 * Scenarios run with 1 and with 200 calls in flight; with 200, the resets
 * are measured both all at once and one at a time (each reset timed on its
 * own while the remaining calls stay in flight).  The measuring thread is
 * woken once per round, not once per finished call, so it does not compete
 * for the CPUs it is timing.
 *
 *   cancel_latency [ROUNDS] [threads|events|both]   p50/p99 in microseconds
 */
#include <rpc/server.h>

#include "demo/v1/demo.pb-c.h"
#include "h2_test_client.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUBTASKS 2
#define MAXCALLS 256

struct slot {
    atomic_int left;      /* sub-tasks still running */
    int64_t last_ns;      /* when the last one returned */
    int64_t deadline_ns;  /* the request's deadline, if any */
    int cause;
    int done;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct slot slots[MAXCALLS];
    int started;          /* sub-tasks started */
    int finished;         /* requests whose last sub-task returned */
    int want;             /* wake the measuring thread when finished == want */
    bool events;          /* sub-task style: AfterFunc instead of pool thread */
    ctx_pool_t *pool;
} B = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

struct req {
    rpc_call_t *call;
    ctx_t *sub_ctx;       /* the sub-tasks' context: a child of the request's */
    struct slot *slot;
    ctx_after_t *after[SUBTASKS]; /* events style */
};

static void last_done(struct req *r)
{
    int cause = ctx_cause(r->sub_ctx);
    rpc_call_finish(r->call, rpc_cause_status(cause), NULL);
    for (int i = 0; i < SUBTASKS; i++)
        ctx_after_stop(r->after[i]); /* NULL in the threads style */
    ctx_release(r->sub_ctx);
    free(r);
}

static int sub(ctx_t *ctx, void *arg)
{
    pthread_mutex_lock(&B.mu);
    B.started++;
    pthread_cond_broadcast(&B.cv);
    pthread_mutex_unlock(&B.mu);
    ctx_wait(ctx, -1);
    return 0;
}

/* After each sub-task (or instead of one skipped because the request was
 * already done): the last one records the time and finishes the call. */
static void sub_done(int err, bool ran, void *arg, void *ud)
{
    struct req *r = arg;
    int64_t now = ctx_now();
    if (atomic_fetch_sub(&r->slot->left, 1) == 1) {
        pthread_mutex_lock(&B.mu);
        r->slot->last_ns = now;
        r->slot->cause = ctx_cause(r->sub_ctx);
        r->slot->done = 1;
        if (++B.finished == B.want)
            pthread_cond_broadcast(&B.cv);
        pthread_mutex_unlock(&B.mu);
        last_done(r); /* the last sub-task completes the call */
    }
}

/* Events style: the sub-task is an AfterFunc on the sub-tasks' context. */
static void sub_event(void *arg)
{
    sub_done(0, true, arg, NULL);
}

/* Non-blocking handler: request id in payload[0].  Fans out SUBTASKS
 * pool tasks under a child of the request context; the last one to return
 * finishes the call, so no thread waits for the others. */
static int fanout(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *m,
                  void *ud)
{
    const Demo__V1__FanoutRequest *q = (const void *)m;
    int id = q->payload.len ? q->payload.data[0] : 0;
    struct req *r = calloc(1, sizeof *r);
    r->call = call;
    r->slot = &B.slots[id];
    r->sub_ctx = ctx_with_cancel(ctx);
    atomic_store(&r->slot->left, SUBTASKS);
    if (!ctx_deadline(ctx, &r->slot->deadline_ns))
        r->slot->deadline_ns = 0;
    if (B.events) {
        pthread_mutex_lock(&B.mu);
        B.started += SUBTASKS; /* registered is started: nothing to wait for */
        pthread_cond_broadcast(&B.cv);
        pthread_mutex_unlock(&B.mu);
        for (int i = 0; i < SUBTASKS; i++)
            r->after[i] = ctx_after_func(r->sub_ctx, sub_event, r);
    } else {
        for (int i = 0; i < SUBTASKS; i++)
            ctx_pool_submit_cb(B.pool, r->sub_ctx, sub, r, sub_done, NULL);
    }
    return RPC_PENDING;
}

static void wait_started(int want)
{
    pthread_mutex_lock(&B.mu);
    while (B.started < want)
        pthread_cond_wait(&B.cv, &B.mu);
    pthread_mutex_unlock(&B.mu);
}

/* Set before the timed action, so only the last finisher wakes us. */
static void want_finished(int want)
{
    pthread_mutex_lock(&B.mu);
    B.want = want;
    pthread_mutex_unlock(&B.mu);
}

static void wait_finished(void)
{
    pthread_mutex_lock(&B.mu);
    while (B.finished < B.want)
        pthread_cond_wait(&B.cv, &B.mu);
    pthread_mutex_unlock(&B.mu);
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, int64_t *v, int n, int bad)
{
    qsort(v, (size_t)n, sizeof *v, cmp64);
    printf("%-52s p50 %8.1f us  p99 %8.1f us  (n=%d, wrong cause %d)\n", what,
           v[n / 2] / 1e3, v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1e3,
           n, bad);
}

enum { RST, DISCONNECT, DEADLINE, RST_ONE };

static int settings_ok(h2t_t *c, void *arg)
{
    return nghttp2_session_get_remote_settings(
               c->sess, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS) >= MAXCALLS;
}

static int all_closed(h2t_t *c, void *arg)
{
    int n = 0;
    for (int i = 0; i < c->nstreams; i++)
        n += c->streams[i].closed;
    return n == *(int *)arg;
}

/* One round: `inflight` calls, then cancel all of them the given way.
 * Appends one latency per call to out. */
static int round_(int port, int mode, int inflight, int64_t *out, int *bad)
{
    memset(B.slots, 0, sizeof B.slots);
    B.started = B.finished = 0;
    B.want = inflight;
    h2t_t c;
    if (h2t_connect(&c, port) != 0 || h2t_run(&c, 5000, settings_ok, NULL) != 0)
        return -1;
    int idx[MAXCALLS];
    for (int i = 0; i < inflight; i++) {
        uint8_t msg[3] = {0x1a, 1, (uint8_t)i};
        char to[16];
        snprintf(to, sizeof to, "%dm", 50 + i / 4); /* staggered deadlines */
        idx[i] = mode == DEADLINE
                     ? h2t_call(&c, "/demo.v1.Demo/Fanout", msg, 3, 1,
                                "grpc-timeout", to, NULL)
                     : h2t_call(&c, "/demo.v1.Demo/Fanout", msg, 3, 1, NULL);
    }
    h2t_flush(&c);
    wait_started(inflight * SUBTASKS);
    int64_t tc = 0;
    if (mode == RST_ONE) {
        /* One at a time: reset call i while the later ones stay in
         * flight, and time each reset on its own. */
        for (int i = 0; i < inflight; i++) {
            want_finished(i + 1);
            nghttp2_submit_rst_stream(c.sess, NGHTTP2_FLAG_NONE,
                                      c.streams[idx[i]].id, NGHTTP2_CANCEL);
            int64_t t = ctx_now();
            h2t_flush(&c);
            wait_finished();
            *out++ = B.slots[i].last_ns - t;
            if (B.slots[i].cause != RPC_CAUSE_CLIENT_CANCEL)
                (*bad)++;
        }
        h2t_close(&c);
        return 0;
    }
    if (mode == RST) {
        for (int i = 0; i < inflight; i++)
            nghttp2_submit_rst_stream(c.sess, NGHTTP2_FLAG_NONE,
                                      c.streams[idx[i]].id, NGHTTP2_CANCEL);
        tc = ctx_now();
        h2t_flush(&c);
    } else if (mode == DISCONNECT) {
        tc = ctx_now();
        h2t_close(&c);
    }
    if (mode == DEADLINE)
        h2t_run(&c, 5000, all_closed, &inflight); /* read the answers */
    wait_finished();
    int want = mode == RST ? RPC_CAUSE_CLIENT_CANCEL
               : mode == DISCONNECT ? RPC_CAUSE_PEER_GONE : RPC_CAUSE_DEADLINE;
    for (int i = 0; i < inflight; i++) {
        /* Deadline: from the request's own deadline as the server holds
         * it (arrival + grpc-timeout, ctx_deadline() in the handler). */
        int64_t from = mode == DEADLINE ? B.slots[i].deadline_ns : tc;
        *out++ = B.slots[i].last_ns - from;
        if (B.slots[i].cause != want)
            (*bad)++;
    }
    if (mode != DISCONNECT)
        h2t_close(&c);
    return 0;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 30;
    ctx_pool_options_t po;
    ctx_pool_options_init(&po);
    po.threads = MAXCALLS * SUBTASKS + 8;
    po.stack_size = 64 * 1024;
    B.pool = ctx_pool_create(&po);
    rpc_server_t *s = rpc_server_new();
    rpc_server_set_option(s, RPC_SERVER_LOOP_THREADS, 1);
    rpc_server_set_option(s, RPC_SERVER_MAX_CONCURRENT_STREAMS, 1000);
    rpc_server_add_method(s, &demo__v1__demo__descriptor, "Fanout", RPC_UNARY,
                          RPC_NONBLOCKING, fanout, NULL);
    if (rpc_server_listen(s, "127.0.0.1", 0) || rpc_server_start(s)) {
        fprintf(stderr, "cancel_latency: server failed\n");
        return 1;
    }
    int port = rpc_server_port(s);
    static const char *names[] = {"client RST_STREAM (all at once)",
                                  "client disconnect", "deadline",
                                  "client RST_STREAM, one at a time"};
    const char *style = argc > 2 ? argv[2] : "both";
    for (int ev = 0; ev <= 1; ev++) {
        if (strcmp(style, "both") != 0 &&
            strcmp(style, ev ? "events" : "threads") != 0)
            continue;
        B.events = ev;
        printf("sub-tasks: %s\n", ev ? "events (ctx_after_func)"
                                      : "threads (ctx_pool + ctx_wait)");
        for (int mode = RST; mode <= RST_ONE; mode++) {
            for (int inflight = mode == RST_ONE ? 200 : 1; inflight <= 200;
                 inflight += 199) {
                int n = 0, bad = 0;
                int r = inflight == 1 ? rounds : (rounds + 9) / 10;
                int64_t *v = malloc(sizeof *v * (size_t)(r * inflight));
                for (int k = 0; k < r; k++)
                    if (round_(port, mode, inflight, v + n, &bad) == 0)
                        n += inflight;
                char what[64];
                snprintf(what, sizeof what, "%s, %d in flight", names[mode],
                         inflight);
                report(what, v, n, bad);
                free(v);
            }
        }
    }
    rpc_server_free(s);
    ctx_pool_destroy(B.pool);
    return 0;
}
