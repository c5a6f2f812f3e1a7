/*
 * server_fixture.h -- shared by the server's C tests: an in-process server
 * on 127.0.0.1 (ephemeral port) with demo.v1.Demo/Fanout served by a
 * handler that fans out to sub-tasks on a task group and records, under a
 * mutex, what every one of them observed (the cause of the cancellation).
 * Waits are condition variables with bounded timeouts, never sleeps.
 */
#ifndef SERVER_FIXTURE_H
#define SERVER_FIXTURE_H

#include <rpc/server.h>
#include <ctx/group.h>

#include "demo/v1/demo.pb-c.h"
#include "h2_test_client.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#define FX_SUBTASKS 4

struct fx {
    rpc_server_t *s;
    ctx_pool_t *sub_pool;
    int port;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int entered;          /* handlers that started */
    int sub_started;
    int sub_done;         /* sub-tasks that returned */
    int sub_causes[FX_SUBTASKS * 4];
    int handler_done;
    int handler_cause;
    int64_t cancel_seen_ns; /* when the handler saw its context done */
    char seen_request_id[64];
    char seen_method[64];
};


static inline int fx_subtask(ctx_t *ctx, void *arg)
{
    struct fx *f = arg;
    pthread_mutex_lock(&f->mu);
    f->sub_started++;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    ctx_wait(ctx, -1); /* until cancelled */
    pthread_mutex_lock(&f->mu);
    if (f->sub_done < (int)(sizeof f->sub_causes / sizeof *f->sub_causes))
        f->sub_causes[f->sub_done] = ctx_cause(ctx);
    f->sub_done++;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return ctx_err(ctx);
}

/* Blocks until cancelled, with FX_SUBTASKS sub-tasks doing the same. */
static inline int fx_fanout(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *req,
                     void *ud)
{
    struct fx *f = ud;
    ctx_group_options_t o;
    ctx_group_options_init(&o);
    o.pool = f->sub_pool;
    ctx_group_t *g = ctx_group_create(ctx, &o);
    /* Metadata is visible from the group's (grandchild) context. */
    const char *rid = rpc_metadata_get(ctx_group_ctx(g), "x-request-id", NULL);
    const char *m = rpc_server_method(ctx_group_ctx(g));
    pthread_mutex_lock(&f->mu);
    snprintf(f->seen_request_id, sizeof f->seen_request_id, "%s", rid ? rid : "");
    snprintf(f->seen_method, sizeof f->seen_method, "%s", m ? m : "");
    f->entered++;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    for (int i = 0; i < FX_SUBTASKS; i++)
        ctx_group_go(g, fx_subtask, f);
    ctx_wait(ctx, -1);
    int64_t seen = ctx_now();
    ctx_group_wait(g);
    ctx_group_destroy(g);
    pthread_mutex_lock(&f->mu);
    f->handler_cause = ctx_cause(ctx);
    f->cancel_seen_ns = seen;
    f->handler_done++;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return rpc_cause_status(ctx_cause(ctx));
}

/* Waits (bounded) until *field >= want.  Returns 0, or -1 on timeout. */
static inline int fx_wait(struct fx *f, int *field, int want, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    int rc = 0;
    pthread_mutex_lock(&f->mu);
    while (*field < want && rc == 0)
        rc = pthread_cond_timedwait(&f->cv, &f->mu, &ts);
    int ok = *field >= want;
    pthread_mutex_unlock(&f->mu);
    return ok ? 0 : -1;
}

/* Starts a server with the fixture's Fanout and the given options
 * (pairs of rpc_server_opt_t, value; terminated by 0). */
static inline struct fx *fx_start(const int64_t *opts)
{
    struct fx *f = calloc(1, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    ctx_pool_options_t po;
    ctx_pool_options_init(&po);
    po.threads = FX_SUBTASKS * 2;
    f->sub_pool = ctx_pool_create(&po);
    f->s = rpc_server_new();
    rpc_server_set_option(f->s, RPC_SERVER_LOOP_THREADS, 1);
    rpc_server_set_option(f->s, RPC_SERVER_WORKER_THREADS, 4);
    for (; opts && opts[0]; opts += 2)
        rpc_server_set_option(f->s, (rpc_server_opt_t)opts[0], opts[1]);
    rpc_server_add_method(f->s, &demo__v1__demo__descriptor, "Fanout", RPC_UNARY,
                          RPC_BLOCKING, fx_fanout, f);
    if (rpc_server_listen(f->s, "127.0.0.1", 0) != 0 || rpc_server_start(f->s) != 0)
        return NULL;
    f->port = rpc_server_port(f->s);
    return f;
}

static inline void fx_stop(struct fx *f)
{
    rpc_server_free(f->s);
    ctx_pool_destroy(f->sub_pool);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
}

#endif
