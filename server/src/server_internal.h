/*
 * server_internal.h -- the server's objects and the interfaces between its
 * files.  Not installed.
 *
 *   server.c        lifecycle, options, listeners, loop threads, mailbox,
 *                   method table, counters
 *   server_conn.c   one HTTP/2 connection: nghttp2 callbacks, request
 *                   header validation, keepalive/handshake/idle timers
 *   server_call.c   one call: context tree, dispatch to handlers, response
 *                   production, the ways a call ends
 *   server_call_api.c  the handler API (rpc_call_*: send/recv/finish...)
 *   server_health.c grpc.health.v1.Health
 *
 * Threads and ownership.
 *   - A loop (struct srv_loop) is one thread running one event_base.  Each
 *     connection and everything "loop-only" below belongs to exactly one
 *     loop thread and is touched by no other thread.
 *   - A call (struct rpc_call) is shared between its loop and at most one
 *     handler thread.  It is reference counted: the stream holds one
 *     reference until nghttp2 closes it (or the connection dies), a running
 *     blocking handler holds one, the loop's mailbox holds one while the
 *     call is queued there.  The last release frees it and releases its
 *     contexts (sub-tasks hold their own context references, so the
 *     request's contexts live exactly as long as the last worker needs
 *     them).
 *
 * Locks (lock order: loop->mu and call->mu are never held together; the
 * server's mu is a leaf):
 *   server->mu  guards state, the drain condition variable;
 *   loop->mu    guards the loop's inbox (new fds), ready list, commands;
 *   call->mu    guards the fields marked [mu] in struct rpc_call, shared
 *               between the handler thread and the loop.
 * No user callback (handler) ever runs under any of these locks.
 */
#ifndef SERVER_INTERNAL_H
#define SERVER_INTERNAL_H

#include <rpc/server.h>

#include "rpc_h2.h"
#include "rpc_internal.h"

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
};

struct srv_health;
struct srv_loop;

enum srv_state { SRV_NEW, SRV_RUNNING, SRV_DRAINING, SRV_STOPPED };

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
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* signalled when calls_active drops */
    enum srv_state state;     /* [mu] */
    atomic_int_fast64_t stats[RPC_STAT_REFUSED_STREAMS + 1];
    struct srv_transport *transport; /* TLS and Unix listeners, or NULL
                                        (server_tls.c) */
};

void srv_stat_add(rpc_server_t *s, rpc_server_stat_t st, int64_t d);
const struct srv_method *srv_find_method(const rpc_server_t *s,
                                         const char *path, size_t len);
void srv_call_freed(rpc_server_t *s);
/* Logs one line to stderr (bad input is logged once, here). */
void srv_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- loops -------------------------------------------------------------- */

enum { LOOP_CMD_DRAIN = 1, LOOP_CMD_ABORT = 2, LOOP_CMD_STOP = 4 };

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
    struct rpc_call *ready;   /* [mu] calls with handler output */
    int cmds;                 /* [mu] LOOP_CMD_* */
    int dead;                 /* [mu] the thread has exited */
    /* loop-only: */
    struct srv_conn *conns;   /* doubly linked */
    int nconns;
    int stopping;
    int cmds_seen_drain;      /* draining: listeners stay disabled */
    unsigned flush_epoch;     /* one flush per connection per wake-up */
    struct event *stop_timer;
    struct event *accept_retry; /* re-enables listeners after EMFILE */
};

/* Queues call on its loop's ready list (taking a reference) and wakes the
 * loop.  Any thread. */
void srv_loop_notify(struct rpc_call *call);
/* Loop thread: a new connection on fd. */
void srv_conn_accept(struct srv_loop *lp, int fd);
/* Loop thread: GOAWAY on every connection (drain). */
void srv_conn_drain_all(struct srv_loop *lp);
/* Loop thread: answer every open call UNAVAILABLE and close every
 * connection after a short flush. */
void srv_conn_abort_all(struct srv_loop *lp);
/* Loop thread: close every connection now. */
void srv_conn_close_all(struct srv_loop *lp);
/* Loop thread: a connection was freed (the loop may exit when stopping). */
void srv_loop_conn_gone(struct srv_loop *lp);
/* Loop thread: flush the connection's output (after handler activity). */
void srv_conn_flush(struct srv_conn *c);

/* ---- connections ---------------------------------------------------------- */

struct srv_conn {
    struct srv_loop *lp;
    rpc_server_t *s;
    struct srv_conn *prev, *next;
    rpc__h2_t *h2;
    nghttp2_session *sess;
    ctx_t *ctx;               /* connection context */
    char peer[64];
    struct rpc_call *calls;   /* open streams, doubly linked */
    int ncalls;
    struct event *ka_timer, *ack_timer, *hs_timer, *idle_timer;
    int64_t last_recv_ns;
    int ping_outstanding;
    int64_t last_client_ping_ns;
    int strikes;
    int got_settings;
    int closing;              /* final GOAWAY sent or closing */
    int draining;             /* shutdown notice sent, awaiting its PING */
    int close_cause;          /* RPC_CAUSE_* decided for this close */
    unsigned flush_epoch;     /* last loop epoch this was flushed in */
};

/* ---- calls ---------------------------------------------------------------- */

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
    /* loop-only: */
    struct srv_conn *conn;    /* NULL once the stream is gone */
    struct rpc_call *prev, *next; /* in conn->calls */
    int32_t stream_id;
    const struct srv_method *m;
    char *path;               /* the method's path (not owned), or a copy
                                 of an unknown one (owned: path_owned) */
    int path_owned;
    size_t hdr_bytes;
    int bad_status;           /* early error found while reading headers */
    const char *bad_msg;
    int http_status;          /* for a non-gRPC rejection (415, 405) */
    int seen_ct, seen_te, seen_post, seen_path;
    int64_t timeout_ns;       /* -1: no grpc-timeout */
    int req_enc;              /* RPC__ENC_* of grpc-encoding */
    unsigned accept_mask;     /* grpc-accept-encoding, as a bit mask */
    int req_flag;             /* the unary request arrived compressed */
    int last_in_compressed;   /* handler thread: see
                                 rpc_call_received_compressed() */
    int64_t arrival_ns;
    rpc_metadata_t *md;       /* until handed to the value node */
    rpc__frame_decoder_t dec;
    uint8_t *req;             /* unary request bytes */
    size_t req_len;
    int nreq;
    struct event *deadline_ev;
    int64_t deadline_ns;      /* arrival_ns + timeout_ns, when deadline_ev is set */
    int dispatched;
    int remote_closed;        /* client half-closed */
    int headers_sent;
    int provider;             /* a data provider is attached */
    int deferred;             /* the provider returned DEFERRED */
    int ended;                /* END_STREAM submitted (trailers or
                                 Trailers-Only) */
    int ended_sent;           /* ... and written by nghttp2 */
    ProtobufCMessage *nb_req; /* request of a pending non-blocking handler */
    int ready_queued;         /* [loop->mu] on the loop's ready list */
    struct rpc_call *ready_next; /* [loop->mu] */
    /* contexts (set once on the loop before dispatch, then read-only) */
    ctx_t *req_ctx;           /* cancelable request context */
    ctx_t *vctx;              /* value node: what handlers get */
    /* shared with the handler thread: */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct in_msg *inq, *inq_tail; /* [mu] */
    size_t inq_bytes;         /* [mu] queued for rpc_call_recv */
    size_t unconsumed;        /* loop-only: stream bytes not yet given
                                 back to the peer's flow-control window */
    int in_eof;               /* [mu] client half-closed */
    int in_error;             /* [mu] RPC_ERR_* on the request stream */
    struct out_chunk *outq, *outq_tail; /* [mu] */
    size_t out_bytes;         /* [mu] */
    int sent_msgs;            /* [mu] */
    rpc_metadata_t *rsp_headers;  /* [mu] */
    rpc_metadata_t *rsp_trailers; /* [mu] */
    char *status_msg;         /* [mu] */
    int status;               /* [mu] final status once final */
    int final;                /* [mu] status decided (handler or server) */
    int closed;               /* [mu] handler output is dropped from now */
    int handler_done;         /* [mu] the handler has returned/finished */
    int hdrs_frozen;          /* [mu] response headers submitted */
    int send_enc;             /* [mu] grpc-encoding announced (0: none) */
    atomic_int compress_on;   /* compress the messages sent now (written
                                 under mu, read without it on send) */
    int on_loop_handler;      /* running a non-blocking handler now */
};

/* Loop thread. */
struct rpc_call *srv_call_new(struct srv_conn *c, int32_t stream_id);
void srv_call_release(struct rpc_call *call);
/* Request headers are complete and valid: build the contexts, arm the
 * deadline, dispatch streaming-request handlers. */
void srv_call_headers_done(struct rpc_call *call);
/* DATA payload bytes. */
void srv_call_data(struct rpc_call *call, const uint8_t *data, size_t len);
/* The client half-closed. */
void srv_call_remote_close(struct rpc_call *call);
/* The server ends the call: cancel its contexts with `cause` (0: none),
 * drop further handler output, answer with status/msg. */
void srv_call_abort(struct rpc_call *call, int status, const char *msg,
                    int cause);
/* nghttp2 closed the stream (error_code from RST_STREAM or 0), or the
 * connection died (conn_cause != 0). */
void srv_call_stream_closed(struct rpc_call *call, uint32_t error_code,
                            int conn_cause);
/* Request bytes a streaming call may hold queued for its handler before
 * the server stops opening the stream's flow-control window. */
#define INQ_HIGH (256 * 1024)

static inline int srv_method_streaming_in(const struct srv_method *m)
{
    return m->kind == RPC_CLIENT_STREAMING || m->kind == RPC_BIDI_STREAMING;
}
/* True on the call's loop thread. */
int srv_call_on_loop_thread(struct rpc_call *call);
/* The handler's outcome (status decided unless already final). */
void srv_call_complete(struct rpc_call *call, int status);
/* Decodes a received message, decompressing it first when flag says so.
 * Handler threads.  Returns 0, RPC_ERR_MALFORMED or RPC_ERR_TOO_LARGE. */
int srv_call_decode(struct rpc_call *call, int flag, const uint8_t *data,
                    size_t len, ProtobufCMessage **out);
/* Push whatever the handler produced into nghttp2. */
void srv_call_pump(struct rpc_call *call);

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
