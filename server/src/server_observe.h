/*
 * server_observe.h -- the server's observability: interceptors, metrics,
 * the access log, the live-call registry and the admin HTTP endpoint
 * (/metrics, /ctxz).  Not installed.
 *
 * Files:
 *   server_intercept.c  the interceptor chain, the per-call hooks that
 *                       server_call.c calls (srv_obs_call_*), the live-call
 *                       registry and the ring of recently ended requests
 *   server_metrics.c    counters and histograms (atomics, preallocated per
 *                       method) and their Prometheus text rendering
 *   server_accesslog.c  the access-log interceptor: a bounded lock-free
 *                       ring drained by a writer thread
 *   server_admin.c      the admin HTTP endpoint (evhttp on its own thread)
 *                       and the /ctxz page
 *
 * Cost when nothing is enabled: s->obs is NULL and every hook is one load
 * and one branch; the counters of bytes and messages are plain loop-only
 * increments in struct rpc_call.
 *
 * Threads.  Interceptors, the registry and the metrics are configured
 * before rpc_server_start() and read-only afterwards (the chain array, the
 * flags).  The hooks run on the loop threads (new, dispatch, close) and on
 * whichever thread drops a call's last reference (freed).  Page views run
 * on the admin thread.
 *
 * Locks (leaves: nothing else is taken under them, no user code runs
 * under them):
 *   obs->reg[i].mu  the live calls of loop i (their obs.prev/next links);
 *   obs->recent_mu  the ring of recently ended requests.
 */
#ifndef SERVER_OBSERVE_H
#define SERVER_OBSERVE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct rpc_call;
struct srv_conn;
struct rpc_server;

/* Per call, inside struct rpc_call. */
struct srv_call_obs {
    uint64_t id;              /* set at new, then read-only */
    int64_t conn_start_ns;    /* the connection's first request's arrival */
    const void *conn_id;      /* the connection's context: identity only */
    int dispatched;           /* loop-only: the interceptors' on_start ran */
    uint64_t msgs_in;         /* loop-only */
    uint64_t bytes_in;        /* loop-only: DATA payload bytes */
    uint64_t bytes_out;       /* loop-only: DATA payload bytes */
    int64_t end_ns;           /* loop, at close: when the request ended
                                 early (0: it completed) */
    int status, cause;        /* loop, at close */
    int registered;           /* in the live registry (loop-only) */
    struct rpc_call *rprev, *rnext; /* [obs->reg[loop].mu] */
};

/* Hooks called by server_call.c.  Each is a no-op when s->obs is NULL. */
/* Loop: a call was created (its contexts exist); c is its connection. */
void srv_obs_call_new(struct rpc_call *call, struct srv_conn *c);
/* Loop: the handler is about to be dispatched.  Runs the interceptors'
 * on_start; returns 0 to dispatch, or a status (the call was refused and
 * has been ended with it). */
int srv_obs_call_dispatch(struct rpc_call *call);
/* Loop: the stream closed and the call was counted with status/cause;
 * sent is the number of messages the handler sent. */
void srv_obs_call_closed(struct rpc_call *call, int status, int cause,
                         int sent);
/* Any thread: the last reference is going; the handler has returned. */
void srv_obs_call_freed(struct rpc_call *call);

/* server.c: stops the admin thread and the log writer, frees it all. */
void srv_obs_free(struct rpc_server *s);

#endif /* SERVER_OBSERVE_H */
