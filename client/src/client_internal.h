/*
 * client_internal.h -- the structures the client's files share.  Not
 * installed.
 *
 * Threads and doors.  A channel has one loop thread that owns everything
 * network: the connection(s), the nghttp2 sessions, the per-call stream
 * state (fields marked "loop").  User threads never touch those; they hand
 * work over through the channel's op queue (ch->mu), which wakes the loop
 * with event_active() on ch->wake_ev.  What user threads read -- received
 * messages, headers, the final status -- lives in the call under call->mu
 * (fields marked "mu").
 *
 * Lock order: ch->mu and call->mu are never held together.  No lock is
 * held while a user callback runs or while the loop calls into nghttp2,
 * except call->mu inside the data-source callback (which calls nothing).
 *
 * Call lifecycle (loop view):
 *
 *   NEW --start op--> WAITING (no connection yet) --connected--> OPEN
 *    |                   |                                         |
 *    +-------------------+---- ctx done / cancel / failure --------+--> DONE
 *
 * DONE is entered exactly once (call_complete): the status is final, the
 * waiters are woken, on_done runs.  The stream may outlive DONE (a reset
 * in flight); the loop's reference is dropped when the call is DONE and
 * detached from any stream and list.
 *
 * References on a call: the user's handle, one while queued, the loop's
 * (from start until DONE and detached), one per pending ctx_after_func.
 * The call holds one reference on its channel; the channel's memory is
 * freed with its last reference, so handles outlive rpc_client_channel_free.
 */
#ifndef CLIENT_INTERNAL_H
#define CLIENT_INTERNAL_H

#include <rpc/client.h>

#include "rpc_h2.h"
#include "rpc_internal.h"
#include "client_observe.h" /* observe: struct rpc__ccall_obs, hooks */

#include <pthread.h>
#include <stdatomic.h>

struct evbuffer;
struct addrinfo;
struct evdns_base;
struct ssl_ctx_st; /* OpenSSL's SSL_CTX */
struct subch;
struct lb;

struct rpc_client_options {
    int64_t connect_timeout_ns;
    int64_t backoff_initial_ns, backoff_max_ns;
    double backoff_mult, backoff_jitter;
    size_t max_recv;
    bool wait_for_ready;
    char **prop_keys;
    size_t n_prop;
    char *authority;
    /* TLS (off unless a TLS setter ran): */
    bool tls, tls_insecure;
    char *tls_ca, *tls_server_name, *tls_cert, *tls_key;
    /* Load balancing: */
    int lb_policy;            /* RPC__LB_PICK_FIRST / RPC__LB_ROUND_ROBIN */
    bool health_check;
    char *health_service;     /* NULL: "" (the whole server) */
    rpc_client_observer_t *observer; /* observe: borrowed, NULL: none */
};

enum { RPC__LB_PICK_FIRST = 0, RPC__LB_ROUND_ROBIN = 1 };

/* Copies src into dst (dst zeroed first).  0 or RPC_ERR_NOMEM. */
int rpc__client_options_copy(rpc_client_options_t *dst,
                             const rpc_client_options_t *src);
/* Frees what a copy owns (not dst itself). */
void rpc__client_options_clear(rpc_client_options_t *o);
void rpc__client_options_defaults(rpc_client_options_t *o);

/* Op bits a user thread (or ctx watcher) queues for the loop. */
enum {
    OP_START = 1u << 0,  /* begin the call */
    OP_DATA = 1u << 1,   /* new bytes or close_send to write */
    OP_CANCEL = 1u << 2, /* rpc_client_call_cancel / free */
    OP_CTX = 1u << 3,    /* the call's context is done */
};

/* What a blocking waiter waits for (call->wants).  The loop broadcasts
 * call->cv only when an event some waiter wants happens (and always when
 * the call finishes), and after dropping call->mu, so a waiter is woken at
 * most once per blocking call and never straight into a held mutex. */
enum {
    WANT_HEADERS = 1u << 0,
    WANT_MSG = 1u << 1,
    WANT_ROOM = 1u << 2,
    WANT_DONE = 1u << 3,
};

/* Loop-side call states. */
enum { CALL_NEW, CALL_WAITING, CALL_OPEN, CALL_DONE };

struct msg {
    struct msg *next;
    size_t len;
    unsigned char data[];
};

struct conn;

struct call_list {
    rpc_client_call_t *head;
    size_t n;
};

struct rpc_client_call {
    atomic_int refs;
    rpc_client_channel_t *ch; /* reference held */
    ctx_t *ctx;               /* reference held */
    char *method;             /* in the call's block (not freed alone) */
    rpc_metadata_t *md;       /* to send (NULL: none); freed once the
                                 HEADERS are built */
    rpc_client_message_cb on_message;
    rpc_client_done_cb on_done;
    void *user_data;
    bool unary;               /* exactly one response expected */
    bool auto_free;           /* unary_async without a handle */
    bool has_deadline;
    int64_t deadline;
    ctx_after_t *after;       /* watches ctx (set before the start op) */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* mu: */
    struct evbuffer *out;     /* framed bytes not yet taken by nghttp2 */
    uint8_t *flat;            /* or, unary: the framed request (in the */
    size_t flat_off;          /* call's block) and how much was taken */
    size_t out_len;
    bool send_closed;
    struct msg *rq_head, *rq_tail; /* received, not yet taken */
    bool headers_ready, done;
    int status;
    char *message;
    int cause;
    rpc_metadata_t *headers, *trailers;
    char timeout_sent[RPC__TIMEOUT_MAX];
    char peer[64];            /* the connection's address, once sent */
    bool user_cancelled;
    unsigned wants;           /* WANT_* bits of the threads waiting on cv */

    /* ch->mu: */
    rpc_client_call_t *qnext;
    bool queued;
    unsigned ops;

    /* loop: */
    int state;
    int32_t stream_id;        /* > 0 while a stream is attached */
    struct conn *conn;
    struct call_list *list;   /* the list the call is on, or NULL */
    rpc_client_call_t *lnext, *lprev;
    rpc__frame_decoder_t dec;
    rpc_metadata_t *blk;      /* header block being received */
    int http_status;
    int grpc_status;          /* -1 until grpc-status arrives */
    char *grpc_message;
    bool got_headers, bad_grpc_status, bad_content_type, deferred;
    bool released;            /* the loop's reference has been dropped */
    int fail_status;          /* != 0: a protocol violation to report */
    char fail_msg[160];
    size_t nmsgs;
    size_t hdr_bytes;
    struct subch *pin;        /* set on the loop before the start op runs:
                                 submit on this subchannel only */
    struct rpc__ccall_obs obs; /* observe (client_observe.h) */
};

struct rpc_client_channel {
    atomic_int refs;          /* the user's + one per call */
    char *target, *host, *port;
    char *authority;          /* default :authority ("host:port") */
    struct addrinfo *static_ai; /* ipv4:/ipv6:/unix: targets: the fixed
                                   address list (NULL: resolve host) */
    bool dns_name;            /* host:port or dns: target */
    struct ssl_ctx_st *ssl_ctx; /* TLS (NULL: cleartext); read-only */
    struct lb *lb;            /* round_robin state (NULL: pick_first) */
    rpc_client_options_t opts;
    pthread_t thread;
    struct event_base *base;
    struct event *wake_ev;
    struct event *backoff_ev;

    pthread_mutex_t mu;
    /* mu: */
    rpc_client_call_t *q_head, *q_tail;
    bool shutdown;
    /* Wake-up coalescing: a non-empty queue implies q_wake_pending (the
     * loop has been woken and has not started draining) or q_draining (the
     * loop is popping the queue and will see new entries before it stops).
     * Producers wake the loop only when neither holds. */
    bool q_wake_pending, q_draining;

    atomic_int state;         /* rpc_client_state_t, written by the loop */
    atomic_uint_least64_t connects;

    /* loop: */
    struct conn *conn;        /* the connection new calls go to */
    struct conn *draining;    /* GOAWAY'd connections finishing their calls */
    struct call_list waiting; /* calls waiting for a connection */
    int failures;             /* consecutive failed attempts */
    int64_t retry_at;         /* no attempt before this (monotonic ns) */
    char last_error[160];
    unsigned rng;
    bool stopping;
    struct evdns_base *dns;   /* the resolver, made on first need (NULL:
                                 none yet); freed when the loop ends */
    int resolving;            /* evdns callbacks still due */

    /* set at creation, then read by the loop only: */
    char *nameserver;         /* test hook (rpc__client_set_nameserver),
                                 NULL: the system's configuration */
};

/* ---- load balancing (client_lb.c), loop thread unless noted ------------ */

/* Creation (user thread, before the loop starts): 0 or RPC_ERR_NOMEM. */
int rpc__lb_new(rpc_client_channel_t *ch);
/* After the loop has ended. */
void rpc__lb_free(rpc_client_channel_t *ch);
void rpc__lb_dispatch(rpc_client_call_t *call);
/* The subchannel's new connection attempt (from rpc__conn_connect_sub). */
void rpc__lb_conn_started(struct subch *sc, struct conn *c);
void rpc__lb_conn_ready(struct subch *sc, struct conn *c);
void rpc__lb_conn_failed(struct subch *sc, struct conn *c, const char *why);
void rpc__lb_conn_closed(struct subch *sc, struct conn *c);
void rpc__lb_conn_goaway(struct subch *sc, struct conn *c);
/* Channel shutdown: every subchannel's connection destroyed. */
void rpc__lb_shutdown(rpc_client_channel_t *ch);
/* Flushes every subchannel connection marked during an op batch. */
void rpc__lb_flush_marked(rpc_client_channel_t *ch);

/* ---- channel (client_channel.c) --------------------------------------- */

void rpc__client_channel_unref(rpc_client_channel_t *ch);
/* Queues ops for the loop; takes a queue reference on the call.  Returns
 * false (nothing queued) once the channel is shutting down. */
bool rpc__client_queue(rpc_client_call_t *call, unsigned ops);
bool rpc__client_on_loop(rpc_client_channel_t *ch);
/* Loop: a connection attempt succeeded / failed / a connection went away. */
void rpc__client_conn_ready(rpc_client_channel_t *ch, struct conn *c);
void rpc__client_conn_failed(rpc_client_channel_t *ch, struct conn *c,
                             const char *why);
void rpc__client_conn_closed(rpc_client_channel_t *ch, struct conn *c);
/* Loop: routes a starting call to the connection (or the waiting list,
 * connecting if needed), or completes it when that is impossible. */
void rpc__client_dispatch(rpc_client_call_t *call);
/* Loop: the connection got a GOAWAY: stop giving it new calls. */
void rpc__client_conn_goaway(rpc_client_channel_t *ch, struct conn *c);

/* ---- connection (client_conn.c), loop thread only ---------------------- */

/* Starts connecting: sets ch->conn, and reports the outcome through
 * rpc__client_conn_ready/failed (possibly before returning). */
void rpc__conn_connect(rpc_client_channel_t *ch);
/* round_robin: connects to the one address ai (copied) for subchannel sc;
 * sets sc's connection and reports through rpc__lb_conn_* (possibly
 * before returning). */
void rpc__conn_connect_sub(rpc_client_channel_t *ch, struct subch *sc,
                           const struct addrinfo *ai);
/* The subchannel a connection belongs to (NULL: pick_first's). */
struct subch *rpc__conn_sub(const struct conn *c);
/* A call pinned to a subchannel (health checks) submits there only. */
bool rpc__conn_ready(const struct conn *c);
/* The link of the channel's list of draining connections. */
struct conn **rpc__conn_next(struct conn *c);
/* Submits the call's HEADERS (and data provider).  0, or a status with
 * call->fail_msg set (the call is then not attached). */
int rpc__conn_submit(struct conn *c, rpc_client_call_t *call);
/* Resets the call's stream with CANCEL (no-op without a stream). */
void rpc__conn_reset(rpc_client_call_t *call);
/* The call has more bytes (or END_STREAM) to send. */
void rpc__conn_resume(rpc_client_call_t *call);
void rpc__conn_flush(struct conn *c);
/* Marks the connection for one flush at the end of the loop's current
 * batch of queued ops (rpc__conn_flush_marked), instead of one per call. */
void rpc__conn_mark(struct conn *c);
void rpc__conn_flush_marked(struct conn *c);
size_t rpc__conn_calls(const struct conn *c);
/* Frees the connection after completing its calls with status/why. */
void rpc__conn_destroy(struct conn *c, int status, const char *why);


/* ---- name resolution (client_resolve.c), loop thread only --------------- */

struct rpc__resolve;
/* The outcome of a resolution: ai (owned by the callee from now on,
 * freed with evutil_freeaddrinfo), or why (ch->last_error). */
typedef void (*rpc__resolved_fn)(void *arg, struct addrinfo *ai,
                                 const char *why);
/* Resolves the channel's target for arg without blocking: a static list
 * (ipv4:, ipv6:, unix:) is copied, a numeric host parsed, a name asked of
 * evdns (every A and AAAA record).  If the answer (or an error) is known
 * at once, fn has run before this returns NULL -- arg may then be gone:
 * touch it no more.  Otherwise returns the pending request, and fn runs
 * later unless the request is cancelled first. */
struct rpc__resolve *rpc__resolve_start(rpc_client_channel_t *ch,
                                        rpc__resolved_fn fn, void *arg);
/* Parses target (any thread, at creation) into ch->target, host, port,
 * authority, static_ai, dns_name.  0, RPC_ERR_INVAL or RPC_ERR_NOMEM. */
int rpc__target_parse(rpc_client_channel_t *ch, const char *target);
/* A copy of an address list (NULL when out of memory). */
struct addrinfo *rpc__ai_copy(const struct addrinfo *ai);
/* "1.2.3.4:5", "[::1]:5", "unix:/p" for one address. */
void rpc__ai_name(const struct addrinfo *a, char *buf, size_t len);
bool rpc__ai_same(const struct addrinfo *a, const struct addrinfo *b);
/* Abandons a pending request: rpc__conn_resolved will not run for it, and
 * what it holds is freed on a later loop iteration.  r is gone. */
void rpc__resolve_cancel(struct rpc__resolve *r);
/* Loop thread, after the loop has stopped and every connection has been
 * destroyed: runs the cancelled requests' last callbacks, then frees the
 * resolver (before the event base is freed). */
void rpc__resolve_shutdown(rpc_client_channel_t *ch);

/* Test hook: channels created after this resolve names through the
 * nameserver at addr ("ip" or "ip:port", copied; NULL: back to
 * /etc/resolv.conf) plus /etc/hosts.  Process-wide; each channel copies
 * the setting at creation.  Any thread.  0 or RPC_ERR_NOMEM. */
int rpc__client_set_nameserver(const char *addr);
/* The current setting, copied into *out (NULL: none).  0 or
 * RPC_ERR_NOMEM.  Any thread. */
int rpc__client_nameserver(char **out);

/* ---- calls (client_call.c) --------------------------------------------- */

void rpc__call_ref(rpc_client_call_t *call);
void rpc__call_unref(rpc_client_call_t *call);
/* Loop: runs the queued ops of a call. */
void rpc__call_run_ops(rpc_client_call_t *call, unsigned ops);
/* Loop: finishes the call (exactly once; later calls are ignored).
 * Applies the deadline rule and unary cardinality, wakes waiters, runs
 * on_done, drops the loop's reference when detached -- so a detached call
 * may be freed by this: touch it no more. */
void rpc__call_complete(rpc_client_call_t *call, int status, const char *msg);
/* Loop: drops the loop's reference once the call is DONE and on no
 * stream or list.  The call may be freed by this: touch it no more. */
void rpc__call_detach(rpc_client_call_t *call);
/* Loop: one received message (already size-checked). */
void rpc__call_deliver(rpc_client_call_t *call, const uint8_t *data,
                       size_t len);
/* Loop: response headers (moves md in). */
void rpc__call_set_headers(rpc_client_call_t *call, rpc_metadata_t *md);
/* Loop: finishes with whatever the stream carried (trailers or the
 * mapping of an RST/HTTP status).  If the stream is already detached the
 * call may be freed by this. */
void rpc__call_stream_closed(rpc_client_call_t *call, uint32_t h2_error);

void rpc__call_list_add(struct call_list *l, rpc_client_call_t *call);
void rpc__call_list_remove(rpc_client_call_t *call);

/* data-source read for a call's stream (called by nghttp2 on the loop). */
ssize_t rpc__call_read_out(rpc_client_call_t *call, uint8_t *buf, size_t len,
                           uint32_t *data_flags);

#endif /* CLIENT_INTERNAL_H */
