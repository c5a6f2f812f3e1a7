/*
 * server_fuzz.c -- the in-process driver of server_fuzz.h: one loop on the
 * caller's thread, fed connections by hand.
 *
 * What it replaces from server_loop.c: the loop thread (the caller runs
 * the base).  The mailbox and its wake-up handler are the loop's own
 * (srv_loop_wake_cb); its inbox stays empty (connections come through
 * rpc__server_fuzz_accept) and no command is posted to it.
 *
 * _drain and _abort are the two loop commands of server_loop.c's wake_cb
 * (LOOP_CMD_DRAIN without closing listeners, there are none; LOOP_CMD_ABORT
 * without the stop timer), preceded by what rpc_server_shutdown() does
 * before posting each.
 *
 * Threads: everything here on the thread that runs the base; the mailbox
 * is fed from any thread, as in production.
 */
#include "server_fuzz.h"

#include "server_internal.h"

#include <stdlib.h>

int rpc__server_fuzz_start(rpc_server_t *s)
{
    if (s == NULL)
        return RPC_ERR_INVAL;
    if (s->state != SRV_NEW || s->loops != NULL)
        return RPC_ERR_STATE;
    int made_pool = s->pool == NULL;
    if (srv_make_pool(s) != 0)
        return RPC_ERR_NOMEM;
    s->loops = calloc(1, sizeof *s->loops);
    if (s->loops == NULL)
        goto fail;
    s->nloops = 1;
    struct srv_loop *lp = &s->loops[0];
    lp->s = s;
    lp->spare_fd = -1;
    lp->thread = pthread_self();
    pthread_mutex_init(&lp->mu, NULL);
    lp->base = event_base_new();
    if (lp->base == NULL ||
        (lp->wake = event_new(lp->base, -1, 0, srv_loop_wake_cb, lp)) == NULL) {
        srv_loop_free_all(s);
        goto fail;
    }
    return 0;
fail:
    if (made_pool) {
        ctx_pool_destroy(s->pool);
        s->pool = NULL;
        s->own_pool = 0;
    }
    return RPC_ERR_NOMEM;
}

struct event_base *rpc__server_fuzz_base(rpc_server_t *s)
{
    return s && s->loops ? s->loops[0].base : NULL;
}

void rpc__server_fuzz_accept(rpc_server_t *s, int fd)
{
    srv_conn_accept(&s->loops[0], fd);
}

void rpc__server_fuzz_drain(rpc_server_t *s)
{
    srv_health_all_not_serving(s);
    srv_conn_drain_all(&s->loops[0]);
}

void rpc__server_fuzz_abort(rpc_server_t *s)
{
    ctx_cancel_cause(s->root, RPC_CAUSE_SHUTDOWN);
    srv_conn_abort_all(&s->loops[0]);
}
