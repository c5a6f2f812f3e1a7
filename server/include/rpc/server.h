/*
 * <rpc/server.h> -- a gRPC server over cleartext HTTP/2 (h2c, prior
 * knowledge) where every request runs under a libctx context tree built
 * from the wire:
 *
 *   server root          cancelled by rpc_server_shutdown()  (RPC_CAUSE_SHUTDOWN)
 *    +- connection       cancelled when the peer disconnects (RPC_CAUSE_PEER_GONE)
 *        |               or stops answering keepalive pings  (RPC_CAUSE_KEEPALIVE)
 *        +- request      deadline = arrival + grpc-timeout   (RPC_CAUSE_DEADLINE),
 *            |           cancelled by the client's RST_STREAM (RPC_CAUSE_CLIENT_CANCEL),
 *            |           by bad input on the stream           (RPC_CAUSE_PROTOCOL)
 *            |           and when the call has completed      (RPC_CAUSE_FINISHED)
 *            +- value    method, peer address and request metadata, so
 *                        rpc_metadata_get(ctx, "x-request-id") works from any
 *                        context derived from the handler's
 *
 * The lifecycle of a call.  A call moves forward only through
 *
 *   OPEN (request arriving) -> RUNNING (handler dispatched) -> FINAL (status
 *   decided; later handler output is dropped) -> ENDED (trailers sent) ->
 *   CLOSED (stream closed; the call is counted)
 *
 * and may skip states (an RST_STREAM takes a running call to FINAL and
 * CLOSED).  Every end goes through the request context, and ctx_err()
 * agrees with ctx_cause():
 *
 *   deadline                  CTX_DEADLINE_EXCEEDED  RPC_CAUSE_DEADLINE
 *   client RST_STREAM         CTX_CANCELED           RPC_CAUSE_CLIENT_CANCEL
 *   disconnect / keepalive    CTX_CANCELED           RPC_CAUSE_PEER_GONE / _KEEPALIVE
 *   shutdown (after grace)    CTX_CANCELED           RPC_CAUSE_SHUTDOWN
 *   bad input on the stream   CTX_CANCELED           RPC_CAUSE_PROTOCOL
 *   peer not reading output   CTX_CANCELED           RPC_CAUSE_STALLED
 *   the handler returned      CTX_CANCELED           RPC_CAUSE_FINISHED
 *
 * The request context's own deadline is the only deadline timer.  When the
 * handler returns, the request context is cancelled with
 * RPC_CAUSE_FINISHED, so work it left behind (sub-tasks, AfterFuncs) is
 * told at once.  A handler that returns after its request ended gets that
 * end as the call's status.
 *
 * Deadline or cancel: an RST_STREAM is taken for the client's deadline
 * (ctx_err CTX_DEADLINE_EXCEEDED, cause DEADLINE) when it arrives after the
 * request's deadline, or within 2 units + max(4 x RTT, 5 ms) before it,
 * capped at min(20 ms, timeout / 5) -- unit being the grpc-timeout header's unit
 * and RTT the connection's measured round trip (SETTINGS/PING acks): the
 * RST of a client's deadline arrives at about our deadline, give or take
 * that much.  Any earlier RST is a CLIENT_CANCEL.
 *
 * A handler receives the value context; sub-tasks it fans out to (task
 * groups on a ctx_pool, <ctx/group.h>) take children of it and see every
 * cancellation above.  ctx_cause() tells which source ended the request.
 *
 * Threads.  The server runs N event-loop threads (one per CPU by default);
 * connections are spread across them and each connection lives on one loop
 * for its whole life.  Blocking handlers run on a ctx_pool (the server's
 * own, or one given with rpc_server_set_pool()); non-blocking handlers run
 * on the loop thread and complete later from any thread.  Loop threads never
 * block: workers hand results back through a queue that wakes the loop.
 *
 * Messages.  Services are registered from the descriptors protoc-c
 * generates; the server decodes requests and encodes responses with
 * protobuf-c (on the worker for blocking handlers).  protoc-c does not
 * record streaming kinds, so each method is registered with its kind.
 *
 * Errors.  Functions return 0 or a negative RPC_ERR_* code (<rpc/rpc.h>).
 * Handlers return an RPC_STATUS_* code.
 *
 * Lifecycle:
 *
 *   rpc_server_new -> (set options, add methods, listen) -> rpc_server_start
 *        -> RUNNING -> rpc_server_shutdown (drain, then cancel) -> STOPPED
 *        -> rpc_server_free
 */
#ifndef RPC_SERVER_H
#define RPC_SERVER_H

#include <ctx/ctx.h>
#include <ctx/pool.h>
#include <rpc/rpc.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* protobuf-c types, declared only (this header does not include
 * <protobuf-c/protobuf-c.h>; include it where you use them). */
struct ProtobufCMessage;
struct ProtobufCServiceDescriptor;

typedef struct rpc_server rpc_server_t;
typedef struct rpc_call rpc_call_t;

/* ---- cancellation causes (ctx_cause() of a request context) ------------- */

#define RPC_CAUSE_MAP(X)                                                      \
    X(CLIENT_CANCEL, 0x5250001, "client cancelled (RST_STREAM)")              \
    X(PEER_GONE, 0x5250002, "peer gone (connection closed)")                  \
    X(DEADLINE, 0x5250003, "deadline exceeded (grpc-timeout)")                \
    X(SHUTDOWN, 0x5250004, "server shutting down")                            \
    X(KEEPALIVE, 0x5250005, "peer stopped answering keepalive pings")         \
    X(FINISHED, 0x5250006, "call completed")                                  \
    X(PROTOCOL, 0x5250007, "bad input from the peer")                      \
    X(STALLED, 0x5250008, "peer stopped reading (flow control)")

enum {
#define RPC__CAUSE_ENUM(name, num, text) RPC_CAUSE_##name = num,
    RPC_CAUSE_MAP(RPC__CAUSE_ENUM)
#undef RPC__CAUSE_ENUM
};

/* A text for a cause ("client cancelled (RST_STREAM)"), "none" for 0, or
 * "unknown cause".  Static storage. */
RPC_API const char *rpc_cause_text(int cause);

/* The gRPC status a cause stands for: CLIENT_CANCEL, PEER_GONE, KEEPALIVE
 * -> CANCELLED; DEADLINE -> DEADLINE_EXCEEDED; SHUTDOWN -> UNAVAILABLE;
 * PROTOCOL -> INTERNAL; STALLED -> RESOURCE_EXHAUSTED; FINISHED, 0 -> OK;
 * anything else -> UNKNOWN. */
RPC_API int rpc_cause_status(int cause);

/* ---- server lifecycle -------------------------------------------------- */

/* A new server (not listening, not running), or NULL (out of memory).  Owned
 * by the caller: rpc_server_free(). */
RPC_API rpc_server_t *rpc_server_new(void);

/* Options, settable before rpc_server_start() (RPC_ERR_STATE after). */
typedef enum rpc_server_opt {
    RPC_SERVER_LOOP_THREADS = 1,    /* event loops; 0: one per CPU the process
                                       may run on (affinity; default) */
    RPC_SERVER_WORKER_THREADS,      /* own pool's initial threads; default 32.
                                       When every worker is busy (handlers
                                       blocked on streams, I/O) and calls
                                       wait, the pool grows, up to
                                       RPC_SERVER_MAX_WORKER_THREADS; extra
                                       workers idle for 10 s retire */
    RPC_SERVER_MAX_RECV_MESSAGE,    /* bytes; default 4 MiB */
    RPC_SERVER_MAX_CONCURRENT_STREAMS, /* per connection; default 100 */
    RPC_SERVER_MAX_HEADER_LIST,     /* bytes (name+value+32 each); 16 KiB */
    RPC_SERVER_KEEPALIVE_TIME_MS,   /* ping a connection quiet this long;
                                       default 60000; 0 disables */
    RPC_SERVER_KEEPALIVE_TIMEOUT_MS, /* wait this long for the ack; 20000 */
    RPC_SERVER_PERMIT_PING_MS,      /* clients may ping this often; 60000 */
    RPC_SERVER_MAX_PING_STRIKES,    /* pings too soon before GOAWAY
                                       too_many_pings; default 2 */
    RPC_SERVER_HANDSHAKE_TIMEOUT_MS, /* preface + SETTINGS within; 10000 */
    RPC_SERVER_IDLE_TIMEOUT_MS,     /* close a connection with no call for
                                       this long; default 300000; 0: never */
    RPC_SERVER_WRITE_TIMEOUT_MS,    /* a peer that reads nothing of pending
                                       output this long is dropped; 30000 */
    RPC_SERVER_SEND_BUFFER,         /* bytes a blocking handler may queue
                                       before rpc_call_send() waits; 1 MiB */
    RPC_SERVER_SEND_STALL_TIMEOUT_MS, /* a call whose queued output the peer
                                       has not taken any of for this long
                                       (flow-control window closed) ends
                                       with RPC_CAUSE_STALLED; 20000; 0:
                                       never */
    RPC_SERVER_MAX_BLOCKED_SENDS,   /* calls of one connection that may have
                                       more than SEND_BUFFER queued (their
                                       handlers blocked in rpc_call_send)
                                       at once; past it the newest ends
                                       with RPC_CAUSE_STALLED at once; 16 */
    RPC_SERVER_MAX_CONNECTIONS,     /* open connections; a connection past
                                       it is closed at accept; default: the
                                       fd soft limit minus 64 */
    RPC_SERVER_MAX_PENDING_HANDSHAKES, /* connections that have not sent
                                       their preface and SETTINGS yet; a new
                                       one past it evicts the oldest; 256 */
    RPC_SERVER_MAX_WORKER_THREADS,  /* the own pool's ceiling; default 1024
                                       (at least WORKER_THREADS) */
    RPC_SERVER_MAX_RESETS_PER_SEC,  /* RST_STREAMs the whole server takes
                                       per second (burst: 2x); a connection
                                       that resets past it is closed with
                                       GOAWAY ENHANCE_YOUR_CALM; 2000 */
    RPC_SERVER_WORKER_SCHED_BATCH,  /* 1 (default): the own pool's workers
                                       run under SCHED_BATCH, so waking one
                                       for a handler does not preempt the
                                       event loop in the middle of a read
                                       batch (on a busy CPU this halves the
                                       context switches per blocking call;
                                       see ctx_pool_options_t.sched_batch);
                                       0: they keep the process's policy */
} rpc_server_opt_t;

/* Sets one option.  Returns 0, RPC_ERR_INVAL (unknown option, negative
 * value) or RPC_ERR_STATE (server already started).  Not thread-safe
 * against other calls on the same server before start. */
RPC_API int rpc_server_set_option(rpc_server_t *s, rpc_server_opt_t opt,
                                  int64_t value);

/* Runs blocking handlers on `pool` (borrowed: it must outlive the server)
 * instead of a pool of the server's own.  Before start only.  Sub-tasks
 * that blocking handlers wait for (ctx_group_wait) belong on another pool:
 * when every thread of a pool is a handler waiting for work queued on that
 * same pool, nothing runs. */
RPC_API int rpc_server_set_pool(rpc_server_t *s, ctx_pool_t *pool);

/* Binds and listens on host:port (host NULL or "" = all interfaces; port 0
 * picks an ephemeral port, see rpc_server_port()).  Before start; may be
 * called more than once for several addresses.  Returns 0, RPC_ERR_INVAL,
 * RPC_ERR_STATE or RPC_ERR_SYSTEM (errno tells: EADDRINUSE, ...). */
RPC_API int rpc_server_listen(rpc_server_t *s, const char *host, int port);

/* The port of the first listening socket, or -1. */
RPC_API int rpc_server_port(const rpc_server_t *s);

/* Starts the loop threads (and the worker pool unless one was set) and
 * begins accepting.  Does not block.  Returns 0, RPC_ERR_STATE (already
 * started, or no listener), RPC_ERR_NOMEM or RPC_ERR_SYSTEM. */
RPC_API int rpc_server_start(rpc_server_t *s);

/* The server's root context (borrowed, valid until rpc_server_free()):
 * every connection and request context descends from it.  Derive from it
 * (work that should stop at shutdown); do not cancel it: only
 * rpc_server_shutdown() ends it so that every open call is answered. */
RPC_API ctx_t *rpc_server_ctx(rpc_server_t *s);

/* Stops the server.  Stops accepting, sends GOAWAY on every connection,
 * lets calls in flight finish for up to grace_ns, then cancels the server
 * root (cause RPC_CAUSE_SHUTDOWN) so every remaining handler and sub-task
 * sees it, answers the calls still open with UNAVAILABLE, closes every
 * connection, joins the loop threads and waits for every handler to
 * return.  Blocks.  Idempotent.  Any thread except a loop or pool thread
 * of this server.  Returns 0 or RPC_ERR_STATE (never started). */
RPC_API int rpc_server_shutdown(rpc_server_t *s, int64_t grace_ns);

/* Shuts down (grace 0) if still running and frees everything.
 * NULL-safe. */
RPC_API void rpc_server_free(rpc_server_t *s);

/* ---- counters (any thread; relaxed snapshots) ---------------------------
 *
 * Every request the server accepts as a stream is counted once in
 * CALLS_TOTAL when its headers are complete, and once more when it has
 * ended (its stream closed): by final status (CALLS_OK or CALLS_FAILED,
 * and rpc_server_stat_status()) and either as REJECTED (refused at its
 * headers: bad headers or unknown method; no handler, no context) or by
 * the cause its request context ended with (rpc_server_stat_cause()).
 * Once no call is in flight (CALLS_ACTIVE == 0):
 *
 *   CALLS_TOTAL == CALLS_OK + CALLS_FAILED == sum of stat_status(0..16)
 *               == CALLS_REJECTED + sum of stat_cause(every RPC_CAUSE_*)
 */

typedef enum rpc_server_stat {
    RPC_STAT_CONNECTIONS = 1,     /* open now */
    RPC_STAT_CONNECTIONS_TOTAL,
    RPC_STAT_CALLS_ACTIVE,        /* call objects alive (handler or stream) */
    RPC_STAT_CALLS_TOTAL,         /* requests whose headers were complete */
    RPC_STAT_CALLS_OK,            /* ended with status OK */
    RPC_STAT_CALLS_FAILED,        /* ended with another status */
    RPC_STAT_CANCEL_CLIENT,       /* ended by that cause: the same numbers */
    RPC_STAT_CANCEL_PEER_GONE,    /*  as rpc_server_stat_cause() */
    RPC_STAT_CANCEL_DEADLINE,
    RPC_STAT_CANCEL_SHUTDOWN,
    RPC_STAT_CANCEL_KEEPALIVE,
    RPC_STAT_BAD_REQUESTS,        /* bad input seen (headers, framing,
                                     undecodable messages) */
    RPC_STAT_REFUSED_STREAMS,
    RPC_STAT_CALLS_REJECTED,      /* refused at their headers */
} rpc_server_stat_t;

RPC_API int64_t rpc_server_stat(const rpc_server_t *s, rpc_server_stat_t st);
/* Requests that ended with gRPC status `status` (0..16; 0 otherwise). */
RPC_API int64_t rpc_server_stat_status(const rpc_server_t *s, int status);
/* Requests whose context ended with `cause` (an RPC_CAUSE_*; 0
 * otherwise).  RPC_CAUSE_FINISHED counts the calls that completed. */
RPC_API int64_t rpc_server_stat_cause(const rpc_server_t *s, int cause);

/* ---- registering methods ----------------------------------------------- */

typedef enum rpc_method_kind {
    RPC_UNARY = 0,
    RPC_SERVER_STREAMING,
    RPC_CLIENT_STREAMING,
    RPC_BIDI_STREAMING,
} rpc_method_kind_t;

typedef enum rpc_handler_style {
    /* Runs on a pool thread; may block (rpc_call_recv, rpc_call_send,
     * ctx_wait, ctx_group_wait); its return value is the call's status. */
    RPC_BLOCKING = 0,
    /* Runs on the call's loop thread and must not block.  Returns a status
     * to complete at once, or RPC_PENDING to complete later with
     * rpc_call_finish().  Any kind: a client-streaming or bidi handler
     * gets req NULL and receives its messages as events
     * (rpc_call_set_events()), holding no thread while it waits. */
    RPC_NONBLOCKING = 1,
} rpc_handler_style_t;

/* Returned by a non-blocking handler that will call rpc_call_finish(). */
#define RPC_PENDING (-1)

/* A handler.  ctx: the request's value context (borrowed for the handler's
 * duration; ctx_retain() it to keep it, e.g. for sub-tasks).  req: the
 * decoded request for unary and server-streaming methods (borrowed; freed
 * by the server after the handler returns, or after rpc_call_finish() for
 * a pending non-blocking handler), NULL for client-streaming and bidi
 * methods (read them with rpc_call_recv()).  Returns an RPC_STATUS_* code;
 * a message may be set with rpc_call_set_status_message().  Whatever a
 * handler does after its request has been answered (deadline, cancel) is
 * dropped: check ctx_err(ctx) to stop early. */
typedef int (*rpc_handler_fn)(ctx_t *ctx, rpc_call_t *call,
                              const struct ProtobufCMessage *req,
                              void *user_data);

/* Registers `method` (its name as in the .proto, e.g. "UnaryCall") of the
 * service `svc` (a protoc-c generated descriptor, e.g.
 * &grpc__testing__test_service__descriptor), served at
 * "/<svc->name>/<method>".  The descriptor must outlive the server.
 * Before start only.  Returns 0, RPC_ERR_INVAL (NULL, unknown method, a
 * non-blocking client/bidi streaming handler), RPC_ERR_EXISTS,
 * RPC_ERR_STATE or RPC_ERR_NOMEM.  Paths not registered answer
 * UNIMPLEMENTED. */
RPC_API int rpc_server_add_method(rpc_server_t *s,
                                  const struct ProtobufCServiceDescriptor *svc,
                                  const char *method, rpc_method_kind_t kind,
                                  rpc_handler_style_t style, rpc_handler_fn fn,
                                  void *user_data);

/* ---- the standard health service (grpc.health.v1.Health) ---------------- */

typedef enum rpc_health_status {
    RPC_HEALTH_UNKNOWN = 0,
    RPC_HEALTH_SERVING = 1,
    RPC_HEALTH_NOT_SERVING = 2,
} rpc_health_status_t;

/* Registers grpc.health.v1.Health (Check and Watch) on the server, with
 * "" (the whole server) SERVING.  Before start.  Returns 0 or an error as
 * rpc_server_add_method(). */
RPC_API int rpc_server_add_health(rpc_server_t *s);

/* Sets the status of `service` ("" for the server), creating the entry;
 * Watch streams on it get the new status.  Any thread, any time after
 * rpc_server_add_health().  Returns 0, RPC_ERR_INVAL, RPC_ERR_NOMEM or
 * RPC_ERR_STATE (health service not added).  rpc_server_shutdown() sets
 * every entry to NOT_SERVING first. */
RPC_API int rpc_server_set_health(rpc_server_t *s, const char *service,
                                  rpc_health_status_t status);

/* ---- the call object (valid while the handler runs; for a pending
 *      non-blocking handler, until rpc_call_finish() returns) ------------ */

/* The request's value context (borrowed). */
RPC_API ctx_t *rpc_call_ctx(rpc_call_t *call);

/* Request metadata (borrowed, read-only), method path ("/pkg.Svc/M") and
 * peer ("ipv4:127.0.0.1:4242").  Any thread. */
RPC_API const rpc_metadata_t *rpc_call_metadata(rpc_call_t *call);
RPC_API const char *rpc_call_method(rpc_call_t *call);
RPC_API const char *rpc_call_peer(rpc_call_t *call);

/* The same, from any context derived from a request's (NULL otherwise). */
RPC_API const char *rpc_server_method(ctx_t *c);
RPC_API const char *rpc_server_peer(ctx_t *c);

/* Adds response-header metadata (sent with the first message or with the
 * status).  Fails with RPC_ERR_STATE once headers have gone out, and as
 * rpc_metadata_add() for bad keys/values.  -bin values are raw bytes. */
RPC_API int rpc_call_set_header(rpc_call_t *call, const char *key,
                                const void *value, size_t len);

/* Adds trailing metadata (sent with the status). */
RPC_API int rpc_call_set_trailer(rpc_call_t *call, const char *key,
                                 const void *value, size_t len);

/* The grpc-message to send with the final status (copied; UTF-8, any
 * bytes; percent-encoded on the wire).  NULL clears it. */
RPC_API int rpc_call_set_status_message(rpc_call_t *call, const char *msg);

/* Serializes msg and queues it for sending (response headers go first if
 * they have not).  From a blocking handler: blocks while more than
 * RPC_SERVER_SEND_BUFFER bytes wait for the peer, until they drain or the
 * request context is done.  From a loop thread (non-blocking handlers):
 * never blocks.  Returns 0, RPC_ERR_CANCELED / RPC_ERR_DEADLINE (request
 * context done: the message was dropped), RPC_ERR_CLOSED (the call was
 * already answered), RPC_ERR_STATE (a second message on a unary call: the
 * call then ends INTERNAL),
 * RPC_ERR_INVAL or RPC_ERR_NOMEM.  Any thread (one at a time per call). */
RPC_API int rpc_call_send(rpc_call_t *call,
                          const struct ProtobufCMessage *msg);

/* Receives the next request message of a client-streaming or bidi call,
 * decoded with the method's input descriptor; the caller owns *msg (free
 * with protobuf_c_message_free_unpacked(*msg, NULL)).  Blocks until a
 * message arrives.  Returns 0, RPC_ERR_EOF (the client half-closed),
 * RPC_ERR_CANCELED / RPC_ERR_DEADLINE (request context done),
 * RPC_ERR_MALFORMED (undecodable: return RPC_STATUS_INTERNAL),
 * RPC_ERR_STATE (not a streaming-request method, or called from a loop
 * thread).  Blocking handlers only, one thread at a time. */
RPC_API int rpc_call_recv(rpc_call_t *call, struct ProtobufCMessage **msg);

/* Message compression (gzip or deflate, per message; requests in any
 * encoding the client declares with grpc-encoding are decompressed before
 * handlers see them, within the receive limit).
 *
 * rpc_call_received_compressed(): true when the request message most
 * recently handed to this handler (the unary request, or the last one
 * rpc_call_recv returned) arrived compressed on the wire.  Handler thread.
 *
 * rpc_call_set_compression(call, true): messages sent from now on are
 * compressed, with gzip if the client's grpc-accept-encoding lists it,
 * else deflate; false: sent uncompressed again (allowed per message).
 * Returns 0, RPC_ERR_UNSUPPORTED (the client accepts neither),
 * RPC_ERR_STATE (the response headers already went out without a
 * grpc-encoding) or RPC_ERR_CLOSED.  Any thread. */
RPC_API bool rpc_call_received_compressed(rpc_call_t *call);
RPC_API int rpc_call_set_compression(rpc_call_t *call, bool on);

/* Completes a call whose non-blocking handler returned RPC_PENDING, with
 * `status` and an optional message (copied).  The call object and the
 * request are gone when it returns.  Any thread, exactly once.  Returns 0,
 * or RPC_ERR_CLOSED when the call had already been answered (deadline,
 * cancel): the status is dropped but the call is still released. */
RPC_API int rpc_call_finish(rpc_call_t *call, int status, const char *msg);

/* ---- event-driven calls (no thread held while waiting) ------------------
 *
 * A non-blocking handler (RPC_NONBLOCKING) of any kind may drive its call
 * by events: it calls rpc_call_set_events() and returns RPC_PENDING.  The
 * events then run on the call's loop thread, one at a time, never under a
 * library lock; they must not block, and may call rpc_call_send() (which
 * never blocks there: output past RPC_SERVER_SEND_BUFFER is queued, and
 * on_ready says when the peer has taken it down to half) and
 * rpc_call_finish().  No event runs after rpc_call_finish() returns, and an
 * event-driven call must be finished on its loop thread (from an event, or
 * from the handler itself), so its user_data can be freed right after.
 *
 *   on_message     a request message (client-streaming and bidi methods),
 *                  decoded; the callee owns it (protobuf_c_message_free_-
 *                  unpacked).  An undecodable one ends the call INTERNAL.
 *   on_half_close  the client has sent its last message.
 *   on_ready       queued output dropped below half the send buffer.
 *   on_done        the request context ended before the call was finished
 *                  (deadline, cancel, disconnect, shutdown): ctx_cause(ctx)
 *                  says why, the answer is already decided, and the handler
 *                  must still call rpc_call_finish() to release the call.
 *
 * Any member may be NULL.  Messages that arrived before the events were
 * set are delivered first. */
typedef struct rpc_call_events {
    void (*on_message)(rpc_call_t *call, struct ProtobufCMessage *msg,
                       void *user_data);
    void (*on_half_close)(rpc_call_t *call, void *user_data);
    void (*on_ready)(rpc_call_t *call, void *user_data);
    void (*on_done)(rpc_call_t *call, void *user_data);
} rpc_call_events_t;

/* Sets the call's events (copied) and their user_data.  Only from a
 * non-blocking handler, on its loop thread, before it returns RPC_PENDING.
 * Returns 0, RPC_ERR_INVAL or RPC_ERR_STATE (not a non-blocking handler on
 * its loop, or the call already answered). */
RPC_API int rpc_call_set_events(rpc_call_t *call, const rpc_call_events_t *ev,
                                void *user_data);

/* ---- server reflection (grpc.reflection.v1 and v1alpha) ---------------- */

/* Registers a serialized google.protobuf.FileDescriptorProto under its file
 * name ("kv/v1/kv.proto") for server reflection.  bytes are borrowed and must
 * outlive the server (generated code passes static arrays); they are parsed
 * here, so bytes that are not a FileDescriptorProto fail at once.  Before
 * start, from the thread that sets the server up.  Registering a name again
 * is a no-op returning 0.  Returns 0, RPC_ERR_INVAL (NULL or empty name,
 * undecodable bytes), RPC_ERR_STATE (server started) or RPC_ERR_NOMEM. */
RPC_API int rpc_server_add_file_descriptor(rpc_server_t *s, const char *name,
                                           const uint8_t *bytes, size_t len);

/* Registers grpc.reflection.v1.ServerReflection and
 * grpc.reflection.v1alpha.ServerReflection (ServerReflectionInfo, a
 * blocking bidi handler on the worker pool), answering from the
 * descriptors registered with rpc_server_add_file_descriptor() (and its
 * own: the two reflection files and grpc/health/v1/health.proto for
 * rpc_server_add_health()).  list_services lists every service with a
 * registered method (sorted, both reflection services included), whether
 * or not its file was registered; file requests answer the file and its
 * transitive imports not yet sent on the stream; an unknown name gets an
 * error_response NOT_FOUND and the stream stays open.  Before start.
 * Returns 0, RPC_ERR_INVAL, RPC_ERR_STATE, RPC_ERR_EXISTS (added twice)
 * or RPC_ERR_NOMEM. */
RPC_API int rpc_server_add_reflection(rpc_server_t *s);

/* ---- transport: TLS and Unix-domain sockets ------------------------------ */

/* Client-certificate policy for rpc_server_set_tls(). */
typedef enum rpc_server_client_auth {
    RPC_SERVER_CLIENT_AUTH_NONE = 0,     /* never ask for a certificate */
    RPC_SERVER_CLIENT_AUTH_OPTIONAL = 1, /* ask; one that is sent must
                                            verify against the client CA */
    RPC_SERVER_CLIENT_AUTH_REQUIRE = 2,  /* mTLS: no verified certificate,
                                            no connection */
} rpc_server_client_auth_t;

/* Serves TLS (1.2 and 1.3, ALPN "h2") on every listener of s: cert_file
 * is the PEM certificate chain (leaf first), key_file its PEM private key;
 * client_ca_file (PEM, may be NULL for RPC_SERVER_CLIENT_AUTH_NONE) the
 * CAs client certificates must chain to.  The files are read now (paths
 * copied for rpc_server_reload_tls()).  The handshake runs on the loop
 * threads without blocking and counts against the handshake timeout; a
 * client that speaks cleartext HTTP/2 to a TLS server is closed at its
 * first bytes.  Before rpc_server_start() only; not thread-safe with other
 * setup calls.  Returns 0, RPC_ERR_INVAL (NULL arguments, an unreadable or
 * unusable file: the OpenSSL reason is logged to stderr), RPC_ERR_STATE
 * (already started) or RPC_ERR_NOMEM. */
RPC_API int rpc_server_set_tls(rpc_server_t *s, const char *cert_file,
                               const char *key_file,
                               const char *client_ca_file,
                               rpc_server_client_auth_t client_auth);

/* Re-reads the files given to rpc_server_set_tls() (a renewed
 * certificate, say): connections accepted from now on use them,
 * established ones keep theirs.  On failure the old configuration stays.
 * Any thread, any time after rpc_server_set_tls(); never blocks on the
 * network.  Returns 0, RPC_ERR_STATE (TLS not configured) or
 * RPC_ERR_INVAL (the reason is logged). */
RPC_API int rpc_server_reload_tls(rpc_server_t *s);

/* The verified identity of the client's certificate on a TLS connection
 * (mTLS): its first DNS or URI subjectAltName, else its subject CN.  NULL
 * when the connection is not TLS, the client sent no certificate, or c is
 * not (derived from) a request context.  Borrowed: valid while c is.  Any
 * thread. */
RPC_API const char *rpc_server_peer_identity(ctx_t *c);

/* Listens on a Unix-domain socket.  path is a file system path
 * ("/run/x.sock", or grpc's "unix:/run/x.sock", "unix:///run/x.sock") or
 * an abstract name ("unix-abstract:name", Linux).  A stale socket file at
 * the path is replaced; the file is removed by rpc_server_free().  Peers
 * of such connections read "unix:/run/x.sock" (rpc_server_peer()).  TLS,
 * when set, applies here too.  Before rpc_server_start() only.  Returns 0,
 * RPC_ERR_INVAL (bad path, too long, too many listeners), RPC_ERR_STATE or
 * RPC_ERR_SYSTEM (errno set: bind, listen). */
RPC_API int rpc_server_listen_unix(rpc_server_t *s, const char *path);
/* ---- observability: interceptors, admin endpoint, access log ------------
 *
 * All of it is off by default and configured before rpc_server_start()
 * (the functions below return RPC_ERR_STATE once the server has started).
 * With nothing enabled a call pays one branch per hook.
 *
 * Interceptors.  Each call passes through the chain in registration order:
 * on_start runs just before the handler is dispatched (for unary and
 * server-streaming methods once the request message has arrived, for
 * client-streaming and bidi methods when the headers have), on_end once
 * per call when its stream has closed and the call has been counted --
 * for every call, even one that ended before dispatch (info->dispatched
 * false) or that an on_start refused, in reverse registration order.
 * Both run on the call's loop thread: they must not block (no I/O, no
 * waits; hand slow work to another thread, as the access log does), and
 * must not call rpc_call_send/recv/finish.  A nonzero RPC_STATUS_* from
 * on_start refuses the call: later interceptors' on_start and the handler
 * are skipped, and the client gets that status with the message set by
 * rpc_call_set_status_message(info->call, ...) (or none); the request
 * context ends with RPC_CAUSE_FINISHED.  An out-of-range return is
 * answered RPC_STATUS_UNKNOWN.  Either callback may be NULL.
 *
 * Streaming calls are intercepted as a whole (start and end, with message
 * and byte counts), not message by message.
 */

/* What an interceptor sees of a call.  Every pointer is borrowed and valid
 * only during the callback. */
typedef struct rpc_server_call_info {
    rpc_call_t *call;           /* on_start: may set the status message,
                                   headers or trailers; on_end: NULL */
    ctx_t *ctx;                 /* the handler's (value) context: metadata,
                                   method, peer, ctx_err, ctx_cause */
    const char *method;         /* "/pkg.Service/Method" */
    rpc_method_kind_t kind;
    const char *peer;           /* "ip:port" */
    const rpc_metadata_t *metadata; /* request headers */
    uint64_t id;                /* unique per server, from 1 */
    int64_t arrival_ns;         /* ctx_now() clock */
    int64_t timeout_ns;         /* grpc-timeout on arrival; -1: none */
    /* on_end only (zero in on_start): */
    bool dispatched;            /* on_start ran and the handler ran */
    int status;                 /* final RPC_STATUS_* sent */
    int cause;                  /* ctx_cause() of the request context:
                                   RPC_CAUSE_*, FINISHED when it completed */
    const char *status_message; /* grpc-message sent, or NULL */
    int64_t duration_ns;        /* arrival to stream close */
    uint64_t msgs_in, msgs_out; /* messages received and sent */
    uint64_t bytes_in, bytes_out; /* gRPC-framed DATA payload bytes */
} rpc_server_call_info_t;

typedef struct rpc_server_interceptor {
    /* Returns 0 to continue, or an RPC_STATUS_* to refuse the call. */
    int (*on_start)(const rpc_server_call_info_t *info, void *user_data);
    void (*on_end)(const rpc_server_call_info_t *info, void *user_data);
} rpc_server_interceptor_t;

/* Appends *ic (copied) to the chain; user_data is passed to both
 * callbacks and must outlive the server.  Returns 0, RPC_ERR_INVAL,
 * RPC_ERR_NOMEM or RPC_ERR_STATE (started).  Not thread-safe against other
 * configuration calls on s. */
RPC_API int rpc_server_add_interceptor(rpc_server_t *s,
                                       const rpc_server_interceptor_t *ic,
                                       void *user_data);

/* Serves the admin endpoint on host:port (host NULL: "127.0.0.1"; port 0:
 * any free port) from a thread of its own (page views never run on the
 * server's loops) and turns on the metrics and the live-call registry:
 *
 *   /metrics            Prometheus text format 0.0.4 (grpc_server_* names
 *                       of go-grpc-prometheus plus rpc_server_*; README)
 *   /ctxz               HTML: connections (age: since their first
 *                       request), live requests, their context trees,
 *                       recently ended requests
 *   /ctxz?format=json   the same as JSON (also /ctxz.json)
 *
 * Listens before returning (rpc_server_admin_port() tells the port); the
 * thread stops in rpc_server_free().  Returns 0, RPC_ERR_INVAL, RPC_ERR_IO
 * (cannot bind), RPC_ERR_NOMEM or RPC_ERR_STATE (started, or enabled
 * already).  Blocks only to bind. */
RPC_API int rpc_server_enable_admin(rpc_server_t *s, const char *host,
                                    int port);

/* The admin endpoint's port, or -1 when it is not enabled.  Any thread. */
RPC_API int rpc_server_admin_port(const rpc_server_t *s);

/* Registers the access-log interceptor: one JSON line per call (format in
 * the README: time, peer, method, status, cause, duration, deadline on
 * arrival, x-request-id, trace ids, bytes and messages in and out) written
 * to fd by a writer thread of its own.  Loops copy each record into a
 * bounded lock-free ring and never wait: when the ring is full the record
 * is dropped and counted (rpc_server_access_log_dropped()).  fd is not
 * closed by the server; it is written until rpc_server_free(), which
 * writes out what is queued.  Returns 0, RPC_ERR_INVAL, RPC_ERR_NOMEM or
 * RPC_ERR_STATE (started, or enabled already). */
RPC_API int rpc_server_enable_access_log(rpc_server_t *s, int fd);

/* Access-log records dropped because the ring was full.  Any thread. */
RPC_API uint64_t rpc_server_access_log_dropped(const rpc_server_t *s);

/* Extra Prometheus text appended to /metrics on each scrape (a program
 * that also runs a client adds rpc_client_metrics_text here).  fn writes
 * at most len bytes into buf and returns the full length it needed, like
 * snprintf; it runs on the admin thread and must not block.  Returns 0,
 * RPC_ERR_INVAL or RPC_ERR_STATE (admin not enabled, or a source set). */
RPC_API int rpc_server_admin_add_metrics(rpc_server_t *s,
                                         size_t (*fn)(char *buf, size_t len,
                                                      void *user_data),
                                         void *user_data);

#ifdef __cplusplus
}
#endif
#endif /* RPC_SERVER_H */
