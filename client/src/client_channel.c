/*
 * client_channel.c -- the channel: its loop thread, the op queue that is
 * the only door from user threads into the loop, and the connectivity
 * state machine (connect on demand, fail fast or wait while backing off,
 * reconnect).
 *
 *            first call                 connected
 *   IDLE ------------------> CONNECTING ----------> READY
 *    ^  ^                        |                    |
 *    |  |  backoff timer         | failed             | connection lost
 *    |  +---- TRANSIENT_FAILURE <+                    | or GOAWAY
 *    +--------------------------------------------------+
 *
 * Threads.  rpc_client_channel_new/free and rpc__client_queue run on user
 * threads; everything else here on the loop thread.  ch->mu guards the op
 * queue and the shutdown flag only.  ch->state and ch->connects are atomics
 * written by the loop, read by anyone.
 *
 * Waiting calls.  A call that needs a connection while one is being made
 * waits on ch->waiting.  A failed attempt fails the waiting calls with
 * UNAVAILABLE (except wait-for-ready ones) and sets a backoff before the
 * next attempt; calls arriving during the backoff fail fast the same way.
 * Each waiting call is still governed by its context (OP_CTX removes it).
 */
#include "client_internal.h"
#include "rpc_tls.h"

#include <event2/event.h>
#include <event2/util.h>
#include <event2/thread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_state(rpc_client_channel_t *ch, rpc_client_state_t s)
{
    atomic_store(&ch->state, (int)s);
}

rpc_client_state_t rpc_client_channel_state(rpc_client_channel_t *ch)
{
    return ch ? (rpc_client_state_t)atomic_load(&ch->state)
              : RPC_CLIENT_SHUTDOWN;
}

uint64_t rpc_client_channel_connects(rpc_client_channel_t *ch)
{
    return ch ? atomic_load(&ch->connects) : 0;
}

bool rpc__client_on_loop(rpc_client_channel_t *ch)
{
    return pthread_equal(pthread_self(), ch->thread);
}

/* ---- the op queue ------------------------------------------------------ */

bool rpc__client_queue(rpc_client_call_t *call, unsigned ops)
{
    rpc_client_channel_t *ch = call->ch;
    bool wake = false;
    pthread_mutex_lock(&ch->mu);
    if (ch->shutdown) {
        pthread_mutex_unlock(&ch->mu);
        return false;
    }
    call->ops |= ops;
    if (!call->queued) {
        call->queued = true;
        rpc__call_ref(call);
        call->qnext = NULL;
        if (ch->q_tail)
            ch->q_tail->qnext = call;
        else
            ch->q_head = call;
        ch->q_tail = call;
        /* Wake the loop only on the idle -> busy transition: while it is
         * draining (or already woken) it will pop this call anyway. */
        if (!ch->q_draining && !ch->q_wake_pending) {
            ch->q_wake_pending = true;
            wake = true;
        }
    }
    pthread_mutex_unlock(&ch->mu);
    if (wake)
        event_active(ch->wake_ev, EV_READ, 0);
    return true;
}

static void fail_everything(rpc_client_channel_t *ch);

/* One flush per connection per batch of ops: the HEADERS and DATA of every
 * call started in the batch leave in as few writes as nghttp2 makes. */
static void flush_marked(rpc_client_channel_t *ch)
{
    if (ch->conn != NULL)
        rpc__conn_flush_marked(ch->conn);
    for (struct conn *c = ch->draining; c != NULL; c = *rpc__conn_next(c))
        rpc__conn_flush_marked(c);
    if (ch->lb != NULL)
        rpc__lb_flush_marked(ch);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    rpc_client_channel_t *ch = arg;
    /* Pop one call at a time: a user thread may re-queue a call as soon as
     * its `queued` flag drops, so no detached list is ever walked.  At most
     * 256 per wake-up, so a busy producer cannot starve the network.  While
     * `q_draining` is set producers do not wake us; it drops only when the
     * queue is seen empty under the lock. */
    for (int budget = 256;; budget--) {
        pthread_mutex_lock(&ch->mu);
        ch->q_wake_pending = false;
        ch->q_draining = true;
        bool shutdown = ch->shutdown;
        rpc_client_call_t *c = ch->q_head;
        unsigned ops = 0;
        if (c != NULL && budget > 0) {
            ch->q_head = c->qnext;
            if (ch->q_head == NULL)
                ch->q_tail = NULL;
            c->queued = false;
            ops = c->ops;
            c->ops = 0;
        } else {
            ch->q_draining = false;
            if (c != NULL)
                ch->q_wake_pending = true; /* budget spent: come back */
        }
        pthread_mutex_unlock(&ch->mu);
        if (shutdown)
            ch->stopping = true; /* starts now complete CANCELLED */
        if (c == NULL)
            break;
        if (budget <= 0) {
            flush_marked(ch);
            event_active(ch->wake_ev, EV_READ, 0);
            return;
        }
        rpc__call_run_ops(c, ops);
        rpc__call_unref(c);
    }
    flush_marked(ch);
    if (ch->stopping && atomic_load(&ch->state) != RPC_CLIENT_SHUTDOWN) {
        fail_everything(ch);
        event_base_loopbreak(ch->base);
    }
}

/* ---- connection management (loop) -------------------------------------- */

static int64_t backoff_delay(rpc_client_channel_t *ch)
{
    double d = (double)ch->opts.backoff_initial_ns;
    for (int i = 1; i < ch->failures && d < (double)ch->opts.backoff_max_ns;
         i++)
        d *= ch->opts.backoff_mult;
    if (d > (double)ch->opts.backoff_max_ns)
        d = (double)ch->opts.backoff_max_ns;
    /* rand_r: a per-channel seed, no shared state. */
    double r = (double)rand_r(&ch->rng) / RAND_MAX; /* 0..1 */
    d *= 1.0 + ch->opts.backoff_jitter * (2.0 * r - 1.0);
    return d < 1 ? 1 : (int64_t)d;
}

static void fail_waiting(rpc_client_channel_t *ch, bool keep_wait_for_ready)
{
    if (keep_wait_for_ready && ch->opts.wait_for_ready)
        return;
    while (ch->waiting.head != NULL) {
        rpc_client_call_t *c = ch->waiting.head;
        rpc__call_list_remove(c);
        rpc__call_complete(c, RPC_STATUS_UNAVAILABLE, ch->last_error);
    }
}

static void start_connect(rpc_client_channel_t *ch)
{
    set_state(ch, RPC_CLIENT_CONNECTING);
    rpc__conn_connect(ch);
}

static void backoff_cb(evutil_socket_t fd, short what, void *arg)
{
    rpc_client_channel_t *ch = arg;
    if (ch->conn != NULL || ch->stopping)
        return;
    set_state(ch, RPC_CLIENT_IDLE);
    if (ch->waiting.head != NULL)
        start_connect(ch);
}

void rpc__client_dispatch(rpc_client_call_t *call)
{
    rpc_client_channel_t *ch = call->ch;
    if (ch->stopping) {
        rpc__call_complete(call, RPC_STATUS_CANCELLED, "channel closed");
        return;
    }
    if (ch->lb != NULL) {
        rpc__lb_dispatch(call);
        return;
    }
    if (ch->conn != NULL && rpc__conn_ready(ch->conn)) {
        int st = rpc__conn_submit(ch->conn, call);
        if (st != 0)
            rpc__call_complete(call, st, call->fail_msg);
        else
            rpc__conn_mark(ch->conn); /* flushed at the end of the batch */
        return;
    }
    if (ch->conn == NULL && ctx_now() < ch->retry_at &&
        !ch->opts.wait_for_ready) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s (backing off before reconnecting)",
                 ch->last_error);
        rpc__call_complete(call, RPC_STATUS_UNAVAILABLE, msg);
        return;
    }
    call->state = CALL_WAITING;
    rpc__call_list_add(&ch->waiting, call);
    if (ch->conn == NULL && ctx_now() >= ch->retry_at)
        start_connect(ch);
}

void rpc__client_conn_ready(rpc_client_channel_t *ch, struct conn *c)
{
    if (rpc__conn_sub(c) != NULL) {
        rpc__lb_conn_ready(rpc__conn_sub(c), c);
        return;
    }
    ch->failures = 0;
    ch->retry_at = 0;
    atomic_fetch_add(&ch->connects, 1);
    set_state(ch, RPC_CLIENT_READY);
    while (ch->waiting.head != NULL) {
        rpc_client_call_t *call = ch->waiting.head;
        rpc__call_list_remove(call);
        int st = rpc__conn_submit(c, call);
        if (st != 0)
            rpc__call_complete(call, st, call->fail_msg);
    }
    rpc__conn_flush(c);
}

void rpc__client_conn_failed(rpc_client_channel_t *ch, struct conn *c,
                             const char *why)
{
    if (why != ch->last_error)
        snprintf(ch->last_error, sizeof ch->last_error, "%s", why);
    if (c != NULL && rpc__conn_sub(c) != NULL) {
        rpc__lb_conn_failed(rpc__conn_sub(c), c, ch->last_error);
        return;
    }
    if (c != NULL) {
        if (ch->conn == c)
            ch->conn = NULL;
        rpc__conn_destroy(c, RPC_STATUS_UNAVAILABLE, ch->last_error);
    }
    ch->conn = NULL;
    ch->failures++;
    int64_t d = backoff_delay(ch);
    ch->retry_at = ctx_now() + d;
    set_state(ch, RPC_CLIENT_TRANSIENT_FAILURE);
    fail_waiting(ch, true);
    struct timeval tv = {(time_t)(d / CTX_SECOND),
                         (suseconds_t)(d % CTX_SECOND / 1000)};
    event_add(ch->backoff_ev, &tv);
}

static void unlink_draining(rpc_client_channel_t *ch, struct conn *c);

void rpc__client_conn_closed(rpc_client_channel_t *ch, struct conn *c)
{
    /* A connection that was READY went away: fail its calls UNAVAILABLE
     * and go IDLE (the next call reconnects, no backoff: gRPC). */
    if (rpc__conn_sub(c) != NULL) {
        rpc__lb_conn_closed(rpc__conn_sub(c), c);
        return;
    }
    if (ch->conn == c) {
        ch->conn = NULL;
        set_state(ch, RPC_CLIENT_IDLE);
    } else {
        unlink_draining(ch, c);
    }
    rpc__conn_destroy(c, RPC_STATUS_UNAVAILABLE, ch->last_error);
    if (ch->waiting.head != NULL && ch->conn == NULL && !ch->stopping)
        start_connect(ch);
}

static void unlink_draining(rpc_client_channel_t *ch, struct conn *c)
{
    for (struct conn **p = &ch->draining; *p; p = rpc__conn_next(*p))
        if (*p == c) {
            *p = *rpc__conn_next(c);
            return;
        }
}

void rpc__client_conn_goaway(rpc_client_channel_t *ch, struct conn *c)
{
    if (rpc__conn_sub(c) != NULL) {
        rpc__lb_conn_goaway(rpc__conn_sub(c), c);
        return;
    }
    if (ch->conn != c)
        return;
    ch->conn = NULL;
    *rpc__conn_next(c) = ch->draining;
    ch->draining = c;
    set_state(ch, RPC_CLIENT_IDLE);
}

static void fail_everything(rpc_client_channel_t *ch)
{
    snprintf(ch->last_error, sizeof ch->last_error, "channel closed");
    while (ch->waiting.head != NULL) {
        rpc_client_call_t *c = ch->waiting.head;
        rpc__call_list_remove(c);
        rpc__call_complete(c, RPC_STATUS_CANCELLED, "channel closed");
    }
    if (ch->conn != NULL) {
        rpc__conn_destroy(ch->conn, RPC_STATUS_CANCELLED, "channel closed");
        ch->conn = NULL;
    }
    while (ch->draining != NULL) {
        struct conn *c = ch->draining;
        ch->draining = *rpc__conn_next(c);
        rpc__conn_destroy(c, RPC_STATUS_CANCELLED, "channel closed");
    }
    if (ch->lb != NULL)
        rpc__lb_shutdown(ch);
    set_state(ch, RPC_CLIENT_SHUTDOWN);
}

/* ---- thread, creation, destruction ------------------------------------ */

static void *loop_main(void *arg)
{
    rpc_client_channel_t *ch = arg;
    rpc__block_sigpipe();
    event_base_loop(ch->base, EVLOOP_NO_EXIT_ON_EMPTY);
    /* fail_everything() has destroyed the connections, cancelling any
     * pending resolution: let those finish, then free the resolver. */
    rpc__resolve_shutdown(ch);
    /* A freed bufferevent (a TLS one, especially) is finalized from a
     * deferred callback; event_base_free() cancels those without running
     * them, which would leak the SSL object and its buffers.  Let them run
     * (they run at once: nothing here waits on I/O). */
    for (int i = 0; i < 4; i++)
        event_base_loop(ch->base, EVLOOP_NONBLOCK);
    return NULL;
}

static void channel_destroy(rpc_client_channel_t *ch)
{
    rpc__lb_free(ch); /* its timers first: they live on ch->base */
    if (ch->wake_ev)
        event_free(ch->wake_ev);
    if (ch->backoff_ev)
        event_free(ch->backoff_ev);
    if (ch->base)
        event_base_free(ch->base);
    if (ch->ssl_ctx)
        SSL_CTX_free((SSL_CTX *)ch->ssl_ctx);
    if (ch->static_ai)
        evutil_freeaddrinfo(ch->static_ai);
    free(ch->authority);
    rpc__client_options_clear(&ch->opts);
    free(ch->nameserver);
    free(ch->target);
    free(ch->host);
    free(ch->port);
    pthread_mutex_destroy(&ch->mu);
    free(ch);
}

void rpc__client_channel_unref(rpc_client_channel_t *ch)
{
    if (atomic_fetch_sub(&ch->refs, 1) == 1)
        channel_destroy(ch);
}

int rpc_client_channel_new(const char *target,
                           const rpc_client_options_t *opts,
                           rpc_client_channel_t **out)
{
    if (target == NULL || out == NULL)
        return RPC_ERR_INVAL;
    rpc__libevent_init();
    rpc_client_channel_t *ch = rpc__calloc(1, sizeof *ch);
    if (ch == NULL)
        return RPC_ERR_NOMEM;
    atomic_init(&ch->refs, 1);
    pthread_mutex_init(&ch->mu, NULL);
    ch->rng = (unsigned)ctx_now() ^ (unsigned)(uintptr_t)ch;
    int err = rpc__client_options_copy(&ch->opts, opts);
    if (err == 0)
        err = rpc__target_parse(ch, target);
    if (err == 0)
        err = rpc__client_nameserver(&ch->nameserver);
    if (err == 0 && ch->opts.tls) {
        char why[512];
        ch->ssl_ctx = (struct ssl_ctx_st *)rpc__tls_client_ctx(
            ch->opts.tls_ca, ch->opts.tls_insecure, ch->opts.tls_cert,
            ch->opts.tls_key, why, sizeof why);
        if (ch->ssl_ctx == NULL)
            err = RPC_ERR_INVAL;
    }
    if (err == 0 && ch->opts.lb_policy == RPC__LB_ROUND_ROBIN)
        err = rpc__lb_new(ch);
    if (err != 0) {
        channel_destroy(ch);
        return err;
    }
    ch->base = event_base_new();
    if (ch->base)
        ch->wake_ev = event_new(ch->base, -1, 0, wake_cb, ch);
    if (ch->base)
        ch->backoff_ev = evtimer_new(ch->base, backoff_cb, ch);
    if (!ch->base || !ch->wake_ev || !ch->backoff_ev) {
        channel_destroy(ch);
        return RPC_ERR_SYSTEM;
    }
    if (pthread_create(&ch->thread, NULL, loop_main, ch) != 0) {
        channel_destroy(ch);
        return RPC_ERR_SYSTEM;
    }
    *out = ch;
    return 0;
}

void rpc_client_channel_free(rpc_client_channel_t *ch)
{
    if (ch == NULL)
        return;
    if (rpc__client_on_loop(ch))
        abort(); /* documented: never from a callback */
    pthread_mutex_lock(&ch->mu);
    ch->shutdown = true;
    bool wake = !ch->q_draining && !ch->q_wake_pending;
    ch->q_wake_pending = true;
    pthread_mutex_unlock(&ch->mu);
    if (wake)
        event_active(ch->wake_ev, EV_READ, 0);
    pthread_join(ch->thread, NULL);
    /* Calls finished by fail_everything() may still hold references. */
    rpc__client_channel_unref(ch);
}
