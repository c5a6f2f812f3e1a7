/*
 * server_internal.h -- the server's objects and the interfaces between its
 * files.  Not installed.
 *
 * Files, in the order a request passes through them (each calls only the
 * ones below it; nothing calls back up except through the mailbox):
 *
 *   server.c        the server object: options, method table, listeners,
 *                   start, shutdown, counters
 *   server_loop.c   the loop threads and their mailbox: accepted sockets,
 *                   "this call has news" notices, shutdown commands
 *   server_conn.c   one HTTP/2 connection: nghttp2 callbacks, request
 *                   header parsing into a struct srv_head, rejection of bad
 *                   requests, links and unlinks its calls, timers
 *   server_call.c   one call: its state machine, context tree, dispatch to
 *                   the handler, response production, every way it ends
 *   server_call_api.c  the handler's side (rpc_call_*: send/recv/finish)
 *   server_health.c grpc.health.v1.Health, on the public API only
 *
 * Internal names: every function and type shared between these files is
 * srv_<file>_... (srv_loop_, srv_conn_, srv_call_), file-static helpers
 * have no prefix.
 *
 * Threads and ownership.
 *   - A loop (struct srv_loop) is one thread running one event_base.  Each
 *     connection and everything "loop-only" below belongs to exactly one
 *     loop thread and is touched by no other thread.
 *   - A call (struct rpc_call) is shared between its loop and at most one
 *     handler thread.  It is reference counted: the stream holds one
 *     reference until nghttp2 closes it (or the connection dies), a running
 *     handler holds one, the loop's mailbox holds one while the call is
 *     queued there, and the request-context watcher (calls with a deadline)
 *     holds one until it has fired or been stopped.  The last release frees it and releases its
 *     contexts (sub-tasks hold their own context references).
 *
 * Locks (lock order: loop->mu and call->mu are never held together; the
 * server's mu is a leaf):
 *   server->mu  guards state, the drain condition variable;
 *   loop->mu    guards the loop's inbox (new fds), ready list, commands;
 *   call->mu    guards the fields marked [mu] in struct rpc_call, shared
 *               between the handler thread and the loop, and every change
 *               of call->state.
 * No user callback (handler) ever runs under any of these locks.
 */
#ifndef SERVER_INTERNAL_H
#define SERVER_INTERNAL_H

#include <rpc/server.h>

#include "rpc_h2.h"
#include "rpc_internal.h"
#include "server_observe.h" /* observe: struct srv_call_obs, srv_obs_* hooks */

#include <event2/listener.h>
#include <protobuf-c/protobuf-c.h>
#include <pthread.h>
#include <stdatomic.h>

/* ---- server ------------------------------------------------------------- */

struct srv_method {
    char *path; /* "/pkg.Svc/Method" */
    const ProtobufCMethodDescriptor *desc;
    rpc_method_kind_t kind;
    rpc_handler_style_t style;
    rpc_handler_fn fn;
    void *user_data;
};

struct srv_opts {
    int loop_threads;
    int worker_threads;
    uint32_t max_recv;
    uint32_t max_streams;
    uint32_t max_header_list;
    int64_t keepalive_ns;
    int64_t keepalive_timeout_ns;
    int64_t permit_ping_ns;
    int max_ping_strikes;
    int64_t handshake_ns;
    int64_t idle_ns;
    int64_t write_timeout_ns;
    size_t send_buffer;
    int64_t send_stall_ns;
    int max_blocked_sends;
    int max_conns;
    int max_pending_hs;
    int max_resets_per_sec;
    int max_workers;          /* 0: the pool's default ceiling */
    int worker_sched_batch;   /* the own pool's threads run SCHED_BATCH */
};

struct srv_health;
struct srv_loop;

enum srv_state { SRV_NEW, SRV_RUNNING, SRV_DRAINING, SRV_STOPPED };

/* Causes are RPC_CAUSE_* = 0x5250001 + i; their counters are indexed by i. */
#define SRV_NCAUSES 8
#define SRV_CAUSE_INDEX(c) ((c) - RPC_CAUSE_CLIENT_CANCEL)

struct rpc_server {
    struct srv_opts o;
    ctx_t *root;              /* cancelled with RPC_CAUSE_SHUTDOWN */
    ctx_pool_t *pool;
    int own_pool;
    struct srv_method *methods; /* sorted by path */
    size_t nmethods, capmethods;
    int listen_fds[8];
    int nlisten;
    int port;
    struct srv_loop *loops;
    int nloops;
    atomic_uint next_loop;    /* round-robin for accepted connections */
    struct srv_health *health;
    struct srv_reflection *reflection; /* server_reflection.c; before start */
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* signalled when calls_active drops */
    enum srv_state state;     /* [mu] */
    atomic_int_fast64_t stats[RPC_STAT_CALLS_REJECTED + 1];
    atomic_int_fast64_t by_status[17];
    atomic_int_fast64_t by_cause[SRV_NCAUSES];
    atomic_int_fast64_t rst_tat;  /* server-wide RST_STREAM bucket */
    struct srv_transport *transport; /* TLS and Unix listeners, or NULL
                                        (server_tls.c) */
    struct srv_obs *obs;      /* observe: interceptors, metrics, admin,
                                 access log (server_observe.h); NULL when
                                 none; set before start, then read-only */
};

void srv_reflection_free(struct srv_reflection *r); /* server_reflection.c */
void srv_stat_add(rpc_server_t *s, rpc_server_stat_t st, int64_t d);
/* Counts one ended request: by final status, and by the cause its request
 * context ended with (0: it had none, it was rejected at its headers). */
void srv_stat_ended(rpc_server_t *s, int status, int cause);
const struct srv_method *srv_find_method(const rpc_server_t *s,
                                         const char *path, size_t len);
void srv_call_freed(rpc_server_t *s);
/* Logs one line to stderr (bad input is logged once, here), at most 20 a
 * second with bursts of 50; the lines dropped are counted in the next. */
void srv_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Token bucket (GCRA) on *tat: true if one more event is allowed now at
 * `rate` per second with bursts of `burst`.  Any thread, lock-free. */
bool srv_rate_allow(atomic_int_fast64_t *tat, int64_t now, int64_t rate,
                    int64_t burst);

/* ---- loops (server_loop.c) --------------------------------------------- */

enum { LOOP_CMD_DRAIN = 1, LOOP_CMD_ABORT = 2 };

struct srv_conn;

struct srv_loop {
    rpc_server_t *s;
    int idx;
    pthread_t thread;
    struct event_base *base;
    struct event *wake;       /* activated from other threads */
    struct evconnlistener *listeners[8];
    int nlisteners;
    pthread_mutex_t mu;
    int *inbox;               /* [mu] accepted fds for this loop */
    size_t ninbox, capinbox;  /* [mu] */
    struct rpc_call *ready;   /* [mu] calls with news for the loop */
    int cmds;                 /* [mu] LOOP_CMD_* */
    int dead;                 /* [mu] the thread has exited */
    /* loop-only: */
    struct srv_conn *conns;   /* doubly linked */
    int nconns;
    int stopping;
    int draining;             /* listeners stay disabled */
    unsigned flush_epoch;     /* one flush per connection per wake-up */
    struct event *stop_timer;
    struct event *accept_retry; /* re-enables listeners after EMFILE */
    struct event *sweep;      /* once a second: stalled calls */
    int npending;             /* connections still in their handshake */
    int spare_fd;             /* /dev/null, given up to shed a connection
                                 when accept() runs out of descriptors */
    int64_t woke_ns;          /* srv_loop_woke_ns() of this read batch;
                                 0: not worked out yet */
};

/* Loop thread, inside a connection's read batch: when this loop woke up
 * for the bytes it is processing (the time libevent cached at the start of
 * the iteration, carried over to CLOCK_MONOTONIC), worked out once per
 * read batch (srv_loop_read_begins() forgets it).  A request's arrival and
 * the connection's last-received time are stamped with it. */
int64_t srv_loop_woke_ns(struct srv_loop *lp);
void srv_loop_read_begins(struct srv_loop *lp);

/* Creates the loops and their threads (loop 0 owns the listeners).
 * Returns 0 or RPC_ERR_*; on failure nothing is left running. */
int srv_loop_start_all(rpc_server_t *s, int n);
/* Queues a command for every loop: DRAIN (stop accepting, GOAWAY) or
 * ABORT (answer open calls, close connections, exit).  Any thread. */
void srv_loop_post_all(rpc_server_t *s, int cmd);
/* Joins the loop threads (after ABORT) and drops the mailbox's references
 * to calls no loop will pump any more. */
void srv_loop_join_all(rpc_server_t *s);
void srv_loop_free_all(rpc_server_t *s);
/* The loop's wake event: empties the mailbox (accepts the inbox, pumps
 * every ready call and flushes its connection once, runs the commands).
 * Loop thread. */
void srv_loop_wake_cb(evutil_socket_t fd, short what, void *arg);
/* Makes the server's own worker pool if it was given none.  Returns 0 or
 * RPC_ERR_NOMEM. */
int srv_make_pool(rpc_server_t *s);
/* Queues call on its loop's ready list (taking a reference) and wakes the
 * loop, which then runs srv_call_pump(call).  Any thread. */
void srv_loop_notify(struct rpc_call *call);

/* ---- connections (server_conn.c) ----------------------------------------- */

/* One request's HEADERS block, parsed by the connection and handed to
 * srv_call_new() once complete and valid (HTTP/2 never interleaves two
 * header blocks on a connection, so one at a time suffices). */
struct srv_head {
    int32_t stream_id;
    const struct srv_method *m;
    char *path;               /* the method's path (not owned), or a copy
                                 of an unknown one (owned: path_owned) */
    int path_owned;
    size_t bytes;             /* name + value + 32 per entry */
    int64_t timeout_ns;       /* -1: no grpc-timeout */
    int64_t timeout_unit_ns;  /* the granularity of grpc-timeout's unit */
    int enc;                  /* RPC__ENC_* of grpc-encoding */
    unsigned accept_mask;     /* grpc-accept-encoding, as a bit mask */
    rpc_metadata_t *md;       /* owned until handed over */
    int64_t arrival_ns;       /* when the HEADERS frame began */
    int seen_post, seen_ct, seen_te;
    int bad_status;           /* first problem found (0: none) */
    const char *bad_msg;
    int http_status;          /* for a non-gRPC rejection (415, 405) */
};

struct srv_conn {
    struct srv_loop *lp;
    rpc_server_t *s;
    struct srv_conn *prev, *next;
    rpc__h2_t *h2;
    nghttp2_session *sess;
    ctx_t *ctx;               /* connection context */
    char peer[64];
    struct srv_head head;     /* the header block being received */
    struct rpc_call *calls;   /* open streams, doubly linked */
    int ncalls;
    int nover;                /* calls with `over` set */
    struct event *ka_timer, *ack_timer, *hs_timer, *idle_timer;
    int64_t last_recv_ns;
    int64_t settings_sent_ns; /* our first SETTINGS, for the first RTT */
    int64_t ping_sent_ns;     /* our outstanding keepalive PING */
    int64_t rtt_ns;           /* latest measured round trip (0: none yet) */
    int ping_outstanding;
    int64_t last_client_ping_ns;
    int64_t hdr_window_ns;    /* start of the current 1 s header budget */
    size_t hdr_window_bytes;  /* header bytes decoded in it */
    int strikes;
    int got_settings;
    int closing;              /* final GOAWAY sent or closing */
    int draining;             /* shutdown notice sent, awaiting its PING */
    int close_cause;          /* RPC_CAUSE_* decided for this close */
    unsigned flush_epoch;     /* last loop epoch this was flushed in */
    int64_t obs_first_call_ns; /* observe: its first request (loop-only) */
};

/* Loop thread: a new connection on fd. */
void srv_conn_accept(struct srv_loop *lp, int fd);
/* Loop thread: GOAWAY on every connection (drain). */
void srv_conn_drain_all(struct srv_loop *lp);
/* Loop thread: end every open call (SHUTDOWN) and close every connection
 * after a short flush. */
void srv_conn_abort_all(struct srv_loop *lp);
/* Loop thread: close every connection now. */
void srv_conn_close_all(struct srv_loop *lp);
/* Loop thread: flush the connection's output (after handler activity). */
void srv_conn_flush(struct srv_conn *c);
/* Loop thread, once a second: ends calls whose peer stopped reading. */
void srv_conn_sweep(struct srv_loop *lp, int64_t now);

/* ---- calls (server_call.c) ------------------------------------------------ */

/*
 * The state of a call.  It only moves forward, always in srv_call.c's
 * advance() under call->mu; a state may be skipped (an RST_STREAM takes a
 * running call straight to FINAL and CLOSED).
 *
 *   OPEN     contexts built; the request is arriving (unary methods are
 *            dispatched once it is complete)               -- loop
 *   RUNNING  the handler has been dispatched               -- loop
 *   FINAL    the status is decided; handler output is dropped from now
 *            (the handler returning, the request context ending, bad
 *            input, the stream going away)          -- any thread, [mu]
 *   ENDED    END_STREAM (trailers or Trailers-Only) submitted -- loop
 *   CLOSED   nghttp2 closed the stream; counted; the stream's reference
 *            is dropped                                      -- loop
 */
enum srv_call_state {
    SRV_CALL_OPEN,
    SRV_CALL_RUNNING,
    SRV_CALL_FINAL,
    SRV_CALL_ENDED,
    SRV_CALL_CLOSED,
};

struct out_chunk {
    struct out_chunk *next;
    size_t len, off;
    uint8_t data[];
};

struct in_msg {
    struct in_msg *next;
    size_t len;
    int flag;                 /* compressed on the wire */
    uint8_t data[];
};

struct rpc_call {
    atomic_int refs;
    rpc_server_t *s;
    struct srv_loop *lp;
    const struct srv_method *m;
    char *path;               /* m->path, or NULL */
    /* set once before dispatch, then read-only: */
    int64_t arrival_ns;
    int64_t timeout_ns;       /* -1: no grpc-timeout */
    int64_t timeout_unit_ns;
    int req_enc;              /* RPC__ENC_* of grpc-encoding */
    unsigned accept_mask;     /* grpc-accept-encoding, as a bit mask */
    ctx_t *req_ctx;           /* cancelable request context */
    ctx_t *vctx;              /* value node: what handlers get */
    _Atomic(ctx_after_t *) watch; /* req_ctx done -> srv_loop_notify; only
                                     for calls with a deadline (every other
                                     end starts on the loop) */
    /* loop-only: */
    struct srv_conn *conn;    /* NULL once the stream is gone */
    struct rpc_call *prev, *next; /* in conn->calls */
    int32_t stream_id;
    rpc__frame_decoder_t dec;
    uint8_t *req;             /* unary request bytes */
    size_t req_len;
    int nreq;
    int req_flag;             /* the unary request arrived compressed */
    size_t unconsumed;        /* stream bytes not yet given back to the
                                 peer's flow-control window */
    int headers_sent;
    int over;                 /* more than send_buffer queued when last
                                 looked at (its sender may be blocked) */
    int64_t out_progress_ns;  /* the peer last took output, or `over` began */
    int provider;             /* a data provider is attached */
    int deferred;             /* the provider returned DEFERRED */
    int ready_queued;         /* [loop->mu] on the loop's ready list */
    struct rpc_call *ready_next; /* [loop->mu] */
    /* loop-only, event-driven calls (rpc_call_set_events): */
    rpc_call_events_t ev;
    void *ev_ud;
    int evented;              /* events set, call not finished */
    int ev_ready_wanted;      /* output went over the buffer since on_ready */
    int ev_half_closed;       /* on_half_close delivered */
    /* handler thread: */
    int last_in_compressed;   /* see rpc_call_received_compressed() */
    int on_loop_handler;      /* running a non-blocking handler now */
    ProtobufCMessage *nb_req; /* request of a pending non-blocking handler */
    /* shared with the handler thread: */
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* state, inq and outq changes */
    atomic_int state;         /* enum srv_call_state; changed only under
                                 mu, read with or without it */
    struct in_msg *inq, *inq_tail; /* [mu] */
    size_t inq_bytes;         /* [mu] queued for rpc_call_recv */
    int in_eof;               /* [mu] client half-closed */
    struct out_chunk *outq, *outq_tail; /* [mu] */
    size_t out_bytes;         /* [mu] */
    int sent_msgs;            /* [mu] */
    rpc_metadata_t *rsp_headers;  /* [mu] */
    rpc_metadata_t *rsp_trailers; /* [mu] */
    char *status_msg;         /* [mu] */
    int status;               /* [mu] valid from FINAL */
    int hdrs_frozen;          /* [mu] response headers submitted */
    int send_enc;             /* [mu] grpc-encoding announced (0: none) */
    atomic_int compress_on;   /* compress the messages sent now (written
                                 under mu, read without it on send) */
    struct srv_call_obs obs;  /* observe: counts and registry links
                                 (guards documented in server_observe.h) */
};

/* Loop thread: a valid request's headers (taken over: head->md and an
 * owned path become the call's).  Builds the contexts and watches the
 * request context; dispatches streaming-request handlers.  The connection
 * links the call.  NULL on out of memory (head untouched). */
struct rpc_call *srv_call_new(struct srv_conn *c, struct srv_head *head);
void srv_call_release(struct rpc_call *call);
/* Loop thread: DATA payload bytes; the client half-closed. */
void srv_call_data(struct rpc_call *call, const uint8_t *data, size_t len);
void srv_call_remote_close(struct rpc_call *call);
/* Loop thread: the server ends the call: cancels its request context with
 * `cause` and answers status/msg, unless it has already ended. */
void srv_call_end(struct rpc_call *call, int status, const char *msg,
                  int cause);
/* Loop thread: nghttp2 closed the stream (error_code from RST_STREAM or
 * 0), or the connection died (conn_cause != 0).  Decides the status if
 * nothing had, counts the call, drops the stream's reference.  The
 * connection unlinks the call first. */
void srv_call_stream_closed(struct rpc_call *call, uint32_t error_code,
                            int conn_cause);
/* Loop thread: ends a call whose peer does not take its output (cause
 * RPC_CAUSE_STALLED, RESOURCE_EXHAUSTED with `msg`) and resets its stream,
 * whose closed flow-control window would hold the trailers back. */
void srv_call_stall(struct rpc_call *call, const char *msg);
/* Loop thread: delivers the events an event-driven call is due (queued
 * messages, half-close, on_ready, on_done). */
void srv_call_events(struct rpc_call *call);
/* Loop thread: the stall check of the periodic sweep. */
void srv_call_sweep(struct rpc_call *call, int64_t now);
/* Loop thread: news from the mailbox -- the request context ended, the
 * handler produced output or finished, the handler took messages.
 * Decides, produces and ends the response as far as it can. */
void srv_call_pump(struct rpc_call *call);
/* Request bytes a streaming call may hold queued for its handler before
 * the server stops opening the stream's flow-control window. */
#define INQ_HIGH (256 * 1024)

static inline int srv_method_streaming_in(const struct srv_method *m)
{
    return m->kind == RPC_CLIENT_STREAMING || m->kind == RPC_BIDI_STREAMING;
}
static inline int srv_method_unary_out(const struct srv_method *m)
{
    return m->kind == RPC_UNARY || m->kind == RPC_CLIENT_STREAMING;
}
/* True on the call's loop thread. */
int srv_call_on_loop_thread(struct rpc_call *call);
/* Any thread: the handler returned (or rpc_call_finish'ed) with `status`.
 * Ends the request context (RPC_CAUSE_FINISHED), decides the status unless
 * the call had already ended, and tells the loop. */
void srv_call_complete(struct rpc_call *call, int status);
/* Any thread, call->mu held: decides the status (first decision wins),
 * drops queued output (except a message nghttp2 has started sending) when
 * drop_output.  Returns 1 if this decided it. */
int srv_call_decide_locked(struct rpc_call *call, int status, const char *msg,
                           int drop_output);
/* Decodes a received message, decompressing it first when flag says so.
 * Handler threads.  Returns 0, RPC_ERR_MALFORMED or RPC_ERR_TOO_LARGE. */
int srv_call_decode(struct rpc_call *call, int flag, const uint8_t *data,
                    size_t len, ProtobufCMessage **out);

/* ---- transport (server_tls.c) ------------------------------------------- */
struct srv_transport;
/* Loop thread: the byte stream for an accepted fd -- TLS when configured
 * (then *conn_ctx is replaced by a child carrying the peer identity),
 * else plain.  NULL on failure (fd not closed, *conn_ctx unchanged). */
struct bufferevent *srv_transport_stream(rpc_server_t *s,
                                         struct event_base *base, int fd,
                                         ctx_t **conn_ctx);
/* rpc_server_free: the TLS context, and Unix socket files removed. */
void srv_transport_free(rpc_server_t *s);

/* ---- health ------------------------------------------------------------- */
void srv_health_free(struct srv_health *h);
void srv_health_all_not_serving(rpc_server_t *s);

#endif /* SERVER_INTERNAL_H */
