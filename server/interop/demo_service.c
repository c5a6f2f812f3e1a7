/*
 * demo_service.c -- demo.v1.Demo: a unary call that fans out to sub-tasks
 * on a task group (<ctx/group.h>), each sleeping cancellably for the
 * requested time; a server-streaming ticker; and GetStats, the counters
 * through which tests prove that the handler and every one of its
 * sub-task workers observed a cancellation, and with which cause.
 *
 * Sub-tasks run on a pool of their own, not the server's handler pool: a
 * handler waiting for its group while holding a handler thread must never
 * wait for a thread of the same pool (that is how fan-out deadlocks).
 *
 * Counters are relaxed atomics; GetStats is a non-blocking handler (it
 * runs on the loop thread and reads them).  Handler types, registration
 * and send helpers are generated from demo/v1/demo.proto.
 */
#include "interop_service.h"

#include "demo/v1/demo.rpc.h"

#include <ctx/group.h>
#include <stdatomic.h>
#include <stdlib.h>

struct demo_service {
    demo_v1_demo_handlers_t handlers; /* registered: lives as long */
    ctx_pool_t *pool;
    atomic_llong handlers_started, handlers_cancelled;
    atomic_llong subtasks_started, subtasks_cancelled;
    atomic_llong cause[5]; /* client cancel, peer gone, deadline, shutdown,
                              keepalive */
    atomic_llong inflight, subtasks_inflight;
};

struct subtask {
    demo_service_t *d;
    int64_t sleep_ns;
};

static int subtask(ctx_t *ctx, void *arg)
{
    struct subtask *t = arg;
    demo_service_t *d = t->d;
    atomic_fetch_add(&d->subtasks_started, 1);
    atomic_fetch_add(&d->subtasks_inflight, 1);
    int err = ctx_wait(ctx, t->sleep_ns);
    if (err != 0)
        atomic_fetch_add(&d->subtasks_cancelled, 1);
    atomic_fetch_sub(&d->subtasks_inflight, 1);
    return err;
}

static void count_cause(demo_service_t *d, ctx_t *ctx)
{
    atomic_fetch_add(&d->handlers_cancelled, 1);
    int i = ctx_cause(ctx) - RPC_CAUSE_CLIENT_CANCEL;
    if (i >= 0 && i < 5)
        atomic_fetch_add(&d->cause[i], 1);
}

static int fanout(ctx_t *ctx, rpc_call_t *call,
                  const Demo__V1__FanoutRequest *req, void *ud)
{
    demo_service_t *d = ud;
    if (req->tasks < 0 || req->tasks > 64 || req->sleep_ms < 0) {
        rpc_call_set_status_message(call, "tasks must be 0..64, sleep_ms >= 0");
        return RPC_STATUS_INVALID_ARGUMENT;
    }
    atomic_fetch_add(&d->handlers_started, 1);
    atomic_fetch_add(&d->inflight, 1);
    struct subtask t = {d, (int64_t)req->sleep_ms * CTX_MS};
    ctx_group_options_t o;
    ctx_group_options_init(&o);
    o.pool = d->pool;
    ctx_group_t *g = ctx_group_create(ctx, &o);
    int status = RPC_STATUS_OK;
    if (g == NULL) {
        status = RPC_STATUS_RESOURCE_EXHAUSTED;
        goto out;
    }
    int started = 0;
    for (int i = 0; i < req->tasks; i++) {
        if (ctx_group_go(g, subtask, &t) != 0) {
            status = RPC_STATUS_RESOURCE_EXHAUSTED;
            break;
        }
        started++;
    }
    ctx_group_wait(g); /* every sub-task has returned after this */
    ctx_group_destroy(g);
    if (ctx_err(ctx) != 0) {
        count_cause(d, ctx);
        status = rpc_cause_status(ctx_cause(ctx));
        goto out;
    }
    if (status == RPC_STATUS_OK) {
        Demo__V1__FanoutReply rsp = DEMO__V1__FANOUT_REPLY__INIT;
        rsp.tasks_done = started;
        rsp.payload = req->payload;
        if (demo_v1_demo_fanout_send(call, &rsp) != 0) {
            count_cause(d, ctx);
            status = rpc_cause_status(ctx_cause(ctx));
        }
    }
out:
    atomic_fetch_sub(&d->inflight, 1);
    return status;
}

static int ticks(ctx_t *ctx, rpc_call_t *call,
                 const Demo__V1__TickRequest *req, void *ud)
{
    demo_service_t *d = ud;
    atomic_fetch_add(&d->handlers_started, 1);
    atomic_fetch_add(&d->inflight, 1);
    int status = RPC_STATUS_OK;
    for (int i = 0; i < req->count; i++) {
        if (req->interval_ms > 0 &&
            ctx_wait(ctx, (int64_t)req->interval_ms * CTX_MS) != 0)
            break;
        Demo__V1__Tick t = DEMO__V1__TICK__INIT;
        t.seq = i;
        if (demo_v1_demo_ticks_send(call, &t) != 0)
            break;
    }
    if (ctx_err(ctx) != 0) {
        count_cause(d, ctx);
        status = rpc_cause_status(ctx_cause(ctx));
    }
    atomic_fetch_sub(&d->inflight, 1);
    return status;
}

static int get_stats(ctx_t *ctx, rpc_call_t *call,
                     const Demo__V1__StatsRequest *req, void *ud)
{
    demo_service_t *d = ud;
    Demo__V1__Stats s = DEMO__V1__STATS__INIT;
    s.handlers_started = atomic_load(&d->handlers_started);
    s.handlers_cancelled = atomic_load(&d->handlers_cancelled);
    s.subtasks_started = atomic_load(&d->subtasks_started);
    s.subtasks_cancelled = atomic_load(&d->subtasks_cancelled);
    s.cause_client_cancel = atomic_load(&d->cause[0]);
    s.cause_peer_gone = atomic_load(&d->cause[1]);
    s.cause_deadline = atomic_load(&d->cause[2]);
    s.cause_shutdown = atomic_load(&d->cause[3]);
    s.cause_keepalive = atomic_load(&d->cause[4]);
    s.inflight = atomic_load(&d->inflight);
    s.subtasks_inflight = atomic_load(&d->subtasks_inflight);
    return demo_v1_demo_get_stats_send(call, &s) == 0 ? RPC_STATUS_OK
                                                      : RPC_STATUS_INTERNAL;
}

demo_service_t *demo_service_new(int subtask_threads)
{
    demo_service_t *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    ctx_pool_options_t o;
    ctx_pool_options_init(&o);
    o.threads = subtask_threads;
    o.stack_size = 64 * 1024;
    o.queue_capacity = 8192;
    d->pool = ctx_pool_create(&o);
    if (d->pool == NULL) {
        free(d);
        return NULL;
    }
    return d;
}

int demo_register(rpc_server_t *s, demo_service_t *d)
{
    d->handlers = (demo_v1_demo_handlers_t){
        .fanout = fanout,
        .ticks = ticks,
        .get_stats = get_stats,
        .style.get_stats = RPC_NONBLOCKING,
        .user_data = d,
    };
    return demo_v1_demo_register(s, &d->handlers);
}

void demo_service_print(demo_service_t *d, FILE *out)
{
    fprintf(out,
            "demo stats: handlers_started=%lld handlers_cancelled=%lld "
            "subtasks_started=%lld subtasks_cancelled=%lld "
            "cause_client_cancel=%lld cause_peer_gone=%lld cause_deadline=%lld "
            "cause_shutdown=%lld cause_keepalive=%lld inflight=%lld "
            "subtasks_inflight=%lld\n",
            (long long)atomic_load(&d->handlers_started),
            (long long)atomic_load(&d->handlers_cancelled),
            (long long)atomic_load(&d->subtasks_started),
            (long long)atomic_load(&d->subtasks_cancelled),
            (long long)atomic_load(&d->cause[0]), (long long)atomic_load(&d->cause[1]),
            (long long)atomic_load(&d->cause[2]), (long long)atomic_load(&d->cause[3]),
            (long long)atomic_load(&d->cause[4]), (long long)atomic_load(&d->inflight),
            (long long)atomic_load(&d->subtasks_inflight));
}

void demo_service_free(demo_service_t *d)
{
    if (d == NULL)
        return;
    ctx_pool_destroy(d->pool);
    free(d);
}
