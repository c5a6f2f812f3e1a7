/*
 * <rpc/client.h> -- the gRPC client: channels, calls, deadlines and
 * cancellation carried by a ctx_t.
 *
 * A channel is one logical connection to a target (host:port, a DNS name
 * with several addresses, a static address list or a Unix-domain
 * socket): gRPC over cleartext HTTP/2 (h2c, prior knowledge) or over TLS
 * with ALPN h2.  It owns one event-loop thread that does all network I/O;
 * many calls are multiplexed on its connection(s), and the load-balancing
 * policy (pick_first or round_robin) chooses one for each call.  It
 * connects lazily (on the first call), fails calls with UNAVAILABLE when it
 * cannot connect, and reconnects with exponential backoff after failures
 * (gRPC's connection-backoff rules: 1 s initial, x1.6, +/-20 % jitter,
 * 120 s max, all configurable).
 *
 * Every call takes a ctx_t * first, and the context governs the call:
 *   - its deadline is sent as `grpc-timeout` (the time remaining when the
 *     request HEADERS are built, rounded up; a context already past its
 *     deadline fails the call locally with DEADLINE_EXCEEDED and sends
 *     nothing);
 *   - cancelling it resets the stream (RST_STREAM CANCEL) and the call ends
 *     CANCELLED; rpc_client_call_cause() then returns ctx_cause();
 *   - a CANCELLED status or a reset that arrives once the deadline has
 *     passed is reported as DEADLINE_EXCEEDED, as real gRPC clients do;
 *   - metadata keys from the channel's propagation set (by default
 *     "x-request-id" and "traceparent") found with rpc_metadata_get(ctx,
 *     key) -- i.e. on a server request's context -- are forwarded unless
 *     the caller's own metadata already has the key.
 * So a handler that passes its request context (or one derived from it) to
 * a downstream call passes on the remaining deadline, the cancellation and
 * the trace metadata.  ctx_without_cancel() detaches a follow-up call from
 * the request's deadline and cancellation but keeps its metadata.
 *
 * Calls.  A call handle (rpc_client_call_t) serves every kind: unary,
 * server streaming, client streaming and bidi have the same wire shape and
 * differ only in how many messages each side sends.  Two styles:
 *   - blocking: rpc_client_call_send / close_send / recv / finish, and the
 *     one-shot rpc_client_unary(); callable from any thread except the
 *     channel's loop thread (they return RPC_ERR_STATE there);
 *   - asynchronous: rpc_client_call_start_async() and
 *     rpc_client_unary_async(), whose callbacks run on the channel's loop
 *     thread.  send/close_send/cancel never block and may be used from
 *     callbacks.
 * Messages are opaque bytes (serialized protobuf); <rpc/client_pb.h> adds
 * protobuf-c helpers.
 *
 * Status.  A finished call has a status (RPC_STATUS_*, 0..16), a message
 * (percent-decoded grpc-message), response headers and trailers.  Status
 * values the library produces itself: CANCELLED (context cancelled, call
 * cancelled, channel destroyed), DEADLINE_EXCEEDED (deadline passed),
 * UNAVAILABLE (cannot connect, connection lost, REFUSED_STREAM, GOAWAY),
 * RESOURCE_EXHAUSTED (response message over the limit, ENHANCE_YOUR_CALM),
 * INTERNAL (protocol violations: malformed grpc-status or -bin metadata,
 * compressed message without encoding, wrong number of responses for a
 * unary call, RST_STREAM errors), UNKNOWN (no grpc-status at all) and the
 * HTTP-status mapping of gRPC's http-grpc-status-mapping.md.
 *
 * Errors.  Library functions return 0 or a negative RPC_ERR_* code
 * (<rpc/rpc.h>, rpc_strerror()); functions returning a status return it
 * as a non-negative int, so a negative value is always a library error.
 *
 * Threads.  Every function may be called from any thread unless its
 * comment says otherwise; a call handle may be used by two threads at once
 * (one sending, one receiving).  Callbacks never run with a library lock
 * held.
 */
#ifndef RPC_CLIENT_H
#define RPC_CLIENT_H

#include <ctx/ctx.h>
#include <rpc/rpc.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rpc_client_options rpc_client_options_t;
typedef struct rpc_client_channel rpc_client_channel_t;
typedef struct rpc_client_call rpc_client_call_t;

/* ---- options --------------------------------------------------------- */

/* A new option set with the defaults: connect timeout 20 s, backoff 1 s
 * x1.6 up to 120 s, receive limit 4 MiB, wait-for-ready off, propagation
 * keys "x-request-id" and "traceparent".  NULL when out of memory.
 * Channels copy options at creation, so the set may be freed (or reused)
 * right after rpc_client_channel_new().  Not thread-safe: one thread
 * builds a set. */
RPC_API rpc_client_options_t *rpc_client_options_new(void);
/* Frees the set.  NULL-safe. */
RPC_API void rpc_client_options_free(rpc_client_options_t *o);

/* How long one connection attempt may take: resolving the host name and
 * the TCP connect to the first address that answers, together.  ns > 0,
 * else RPC_ERR_INVAL. */
RPC_API int rpc_client_options_set_connect_timeout(rpc_client_options_t *o,
                                                   int64_t ns);
/* Reconnect backoff: the first retry after initial_ns, each next one
 * multiplier times later, capped at max_ns, each randomised by
 * +/- jitter (0..1).  RPC_ERR_INVAL for initial_ns <= 0, max_ns <
 * initial_ns, multiplier < 1 or jitter outside 0..1. */
RPC_API int rpc_client_options_set_backoff(rpc_client_options_t *o,
                                           int64_t initial_ns,
                                           int64_t max_ns, double multiplier,
                                           double jitter);
/* Largest response message accepted (bytes); bigger ones fail the call
 * with RESOURCE_EXHAUSTED before they are buffered.  0 < bytes <= 2^31. */
RPC_API int rpc_client_options_set_max_recv_message(rpc_client_options_t *o,
                                                    size_t bytes);
/* When on, a call made while the channel is waiting to reconnect waits for
 * the next attempt (bounded by its context) instead of failing UNAVAILABLE
 * at once (gRPC's wait-for-ready). */
RPC_API int rpc_client_options_set_wait_for_ready(rpc_client_options_t *o,
                                                  bool on);
/* Replaces the set of metadata keys propagated from a call's context (see
 * the top of this file).  keys[0..n) are copied; n == 0 turns propagation
 * off.  RPC_ERR_INVAL for an invalid key. */
RPC_API int rpc_client_options_set_propagate_keys(rpc_client_options_t *o,
                                                  const char *const *keys,
                                                  size_t n);
/* The :authority to send (default: the target "host:port").  Copied. */
RPC_API int rpc_client_options_set_authority(rpc_client_options_t *o,
                                             const char *authority);

/* ---- TLS ---------------------------------------------------------------- */

/* TLS (1.2 or 1.3, ALPN "h2") instead of cleartext HTTP/2.  The server's
 * certificate is verified against the trust roots (the system store
 * unless a CA file is set) and the host name of the target (or the
 * override below; an IP literal is matched against IP SANs).  A failed
 * handshake fails the connection attempt like a refused connect: the
 * calls waiting for it end UNAVAILABLE with the reason, e.g. "TLS
 * handshake with localhost:443 failed: certificate verify failed:
 * certificate has expired" (OpenSSL's verify text), and the channel backs
 * off.  A server that does not select ALPN "h2" is refused likewise.
 * The setters check that OpenSSL can use the files; the channel reads
 * them again when it is created.
 *
 * rpc_client_options_set_tls(o, on): TLS with the system trust store.
 * rpc_client_options_set_tls_ca_file(o, path): trust only the CAs in the
 *   PEM file path (turns TLS on).  RPC_ERR_INVAL for a file that cannot be
 *   read or holds no certificate OpenSSL can load.
 * rpc_client_options_set_tls_server_name(o, name): the name the
 *   certificate must carry and the SNI sent, instead of the target's host
 *   (gRPC's ssl_target_name_override; turns TLS on).
 * rpc_client_options_set_tls_client_cert(o, cert, key): a client
 *   certificate chain and its key, PEM files, for servers that ask (mTLS;
 *   turns TLS on).  RPC_ERR_INVAL unless both are readable PEM files and
 *   the key is the certificate's.
 * rpc_client_options_set_tls_insecure(o, on): no certificate verification
 *   at all (grpcurl's -insecure; tests and debugging only; turns TLS on).
 * Each returns 0, RPC_ERR_INVAL (NULL o, bad argument) or RPC_ERR_NOMEM;
 * strings are copied. */
RPC_API int rpc_client_options_set_tls(rpc_client_options_t *o, bool on);
RPC_API int rpc_client_options_set_tls_ca_file(rpc_client_options_t *o,
                                               const char *ca_file);
RPC_API int rpc_client_options_set_tls_server_name(rpc_client_options_t *o,
                                                   const char *name);
RPC_API int rpc_client_options_set_tls_client_cert(rpc_client_options_t *o,
                                                   const char *cert_file,
                                                   const char *key_file);
RPC_API int rpc_client_options_set_tls_insecure(rpc_client_options_t *o,
                                                bool on);

/* ---- load balancing ------------------------------------------------------- */

/* How calls are spread over the target's addresses (gRPC's policies):
 *   "pick_first" (default): addresses are tried in order and every call
 *     goes to the first one that connects, until it fails;
 *   "round_robin": one connection per address, each with its own
 *     backoff; calls cycle over the connected ones, so an address that
 *     fails is skipped while others are ready.  The name is re-resolved
 *     when a connection fails or closes (at most once a second) and every
 *     30 s; new addresses get connections, vanished ones are drained.
 * Returns 0, RPC_ERR_INVAL (NULL) or RPC_ERR_UNSUPPORTED (another name). */
RPC_API int rpc_client_options_set_lb_policy(rpc_client_options_t *o,
                                             const char *policy);

/* round_robin only: watch each backend's grpc.health.v1.Health/Watch for
 * `service` (NULL or "": the whole server) and keep it out of the
 * rotation while it is not SERVING.  A backend that does not implement
 * the health service (UNIMPLEMENTED) counts as healthy (gRFC A17).
 * Returns 0, RPC_ERR_INVAL or RPC_ERR_NOMEM. */
RPC_API int rpc_client_options_set_health_check(rpc_client_options_t *o,
                                                bool on,
                                                const char *service);

/* ---- channel --------------------------------------------------------- */

/* Creates a channel to target and starts its loop thread; it does not
 * connect until the first call.  Targets (gRPC's naming):
 *   "host:port", "[v6addr]:port", "dns:///host:port" (also
 *     "dns://authority/host:port"; the authority is ignored): every A and
 *     AAAA record of host;
 *   "ipv4:1.2.3.4:5,1.2.3.5:6", "ipv6:[::1]:5,[::2]:6": a static list;
 *   "unix:/abs/path", "unix:rel/path", "unix:///abs/path",
 *   "unix-abstract:name" (Linux): a Unix-domain socket (the :authority
 *     sent is "localhost", and TLS checks that name unless overridden).
 * Copies target and opts (NULL: defaults).  Host names are resolved
 * without blocking the loop thread: numeric addresses at once, other
 * names asynchronously (libevent's evdns: /etc/hosts, then the
 * nameservers of /etc/resolv.conf), within the connect timeout.  A
 * failure ends the waiting calls UNAVAILABLE ("resolve HOST:PORT: ...").
 * Returns 0 and *out, or RPC_ERR_INVAL (NULL arguments, no port, a bad
 * target, TLS files OpenSSL cannot use), RPC_ERR_NOMEM, RPC_ERR_SYSTEM
 * (thread or event base creation failed). */
RPC_API int rpc_client_channel_new(const char *target,
                                   const rpc_client_options_t *opts,
                                   rpc_client_channel_t **out);

/* Shuts the channel down: every unfinished call ends CANCELLED ("channel
 * closed"), its completion callback runs, the connection is closed and the
 * loop thread joined; then the handle is gone.  Call handles the caller
 * still holds stay valid (finished) until rpc_client_call_free().  Blocks
 * until the loop thread has exited; must not be called from the loop
 * thread (a callback) -- that is a programming error and aborts.
 * NULL-safe. */
RPC_API void rpc_client_channel_free(rpc_client_channel_t *ch);

/* Connectivity state, as in gRPC. */
typedef enum rpc_client_state {
    RPC_CLIENT_IDLE = 0,              /* no connection, none wanted yet */
    RPC_CLIENT_CONNECTING = 1,        /* a connection attempt is running */
    RPC_CLIENT_READY = 2,             /* connected */
    RPC_CLIENT_TRANSIENT_FAILURE = 3, /* last attempt failed; backing off */
    RPC_CLIENT_SHUTDOWN = 4,
} rpc_client_state_t;

/* The channel's current state (a snapshot).  Any thread, never blocks. */
RPC_API rpc_client_state_t rpc_client_channel_state(rpc_client_channel_t *ch);

/* Number of TCP connections the channel has established so far (a
 * counter for tests and diagnostics).  Any thread. */
RPC_API uint64_t rpc_client_channel_connects(rpc_client_channel_t *ch);

/* Connections taking calls now: for round_robin the READY (and, with
 * health checks, SERVING) backends, for pick_first 1 when READY, else 0.
 * A snapshot for tests and diagnostics.  Any thread, never blocks. */
RPC_API int rpc_client_channel_ready_count(rpc_client_channel_t *ch);

/* ---- blocking calls -------------------------------------------------- */

/* Starts a call of method ("/package.Service/Method") on ch, governed by
 * ctx (see the top of this file), sending md (may be NULL; copied) plus
 * the propagated keys.  Does not block (the HEADERS go out from the loop
 * thread, when connected).  Returns 0 and *out, a handle the caller owns
 * and must give to rpc_client_call_free(); or RPC_ERR_INVAL (NULL
 * arguments, a method not starting with '/'), RPC_ERR_NOMEM,
 * RPC_ERR_CLOSED (channel shut down).  A call whose context is already
 * done is still returned: it is finished at once with DEADLINE_EXCEEDED or
 * CANCELLED and nothing is sent.  Received messages are queued for
 * rpc_client_call_recv(). */
RPC_API int rpc_client_call_start(ctx_t *ctx, rpc_client_channel_t *ch,
                                  const char *method,
                                  const rpc_metadata_t *md,
                                  rpc_client_call_t **out);

/* Queues one request message (copied).  From a user thread it blocks while
 * more than 1 MiB of earlier messages wait to be written (flow control),
 * until room is made, the call finishes, or ctx is done; from the loop
 * thread it never blocks.  Returns 0; RPC_ERR_CLOSED when the call has
 * finished (its status says why: see rpc_client_call_finish());
 * RPC_ERR_STATE after close_send; RPC_ERR_CANCELED / RPC_ERR_DEADLINE when
 * ctx ended while waiting (the call itself goes on unless ctx is its own
 * context); RPC_ERR_NOMEM; RPC_ERR_TOO_LARGE for len >= 4 GiB.
 * ctx may be the call's own context. */
RPC_API int rpc_client_call_send(ctx_t *ctx, rpc_client_call_t *call,
                                 const void *msg, size_t len);

/* Half-closes: no more messages will be sent (END_STREAM).  Never blocks.
 * Returns 0, RPC_ERR_STATE when already half-closed, RPC_ERR_CLOSED when
 * the call has finished. */
RPC_API int rpc_client_call_close_send(rpc_client_call_t *call);

/* Takes the next response message: blocks until one is there, the call
 * has finished (RPC_ERR_EOF: no more messages; the status tells whether
 * the stream ended well), or ctx is done (RPC_ERR_CANCELED /
 * RPC_ERR_DEADLINE).  On 0, *msg is a malloc'ed copy (the caller free()s
 * it; NUL-terminated for convenience) and *len its length.  Returns
 * RPC_ERR_STATE on the loop thread, or for a call started with an
 * on_message callback. */
RPC_API int rpc_client_call_recv(ctx_t *ctx, rpc_client_call_t *call,
                                 void **msg, size_t *len);

/* Waits until the call has finished and returns its status (0..16), or
 * RPC_ERR_CANCELED / RPC_ERR_DEADLINE when ctx ended first, RPC_ERR_STATE
 * on the loop thread.  Messages not yet received stay queued.  Does not
 * half-close: a client-streaming call must close_send first. */
RPC_API int rpc_client_call_finish(ctx_t *ctx, rpc_client_call_t *call);

/* Waits for the response headers (or the end of the call) and returns
 * them: borrowed, valid until rpc_client_call_free(); an empty set for a
 * Trailers-Only response or a call that never reached the server.  NULL
 * when ctx ended first or on the loop thread before they arrived. */
RPC_API const rpc_metadata_t *rpc_client_call_headers(ctx_t *ctx,
                                                      rpc_client_call_t *call);

/* Cancels the call: RST_STREAM CANCEL if it is on the wire, and it ends
 * CANCELLED ("cancelled by the application").  No effect on a finished
 * call.  Never blocks; any thread, callbacks included. */
RPC_API void rpc_client_call_cancel(rpc_client_call_t *call);

/* Gives up the caller's handle.  An unfinished call is cancelled first
 * (as rpc_client_call_cancel()); an async call's callbacks may still run
 * until its on_done.  Never blocks; any thread, callbacks included.
 * NULL-safe. */
RPC_API void rpc_client_call_free(rpc_client_call_t *call);

/* ---- results (valid once the call has finished) ------------------------ */

/* True once the call has finished (its status is final).  Never blocks. */
RPC_API bool rpc_client_call_done(rpc_client_call_t *call);
/* The final status (0..16), or -1 while unfinished. */
RPC_API int rpc_client_call_status(rpc_client_call_t *call);
/* The status message (percent-decoded grpc-message, or the library's own
 * text), "" when none.  Borrowed, valid until rpc_client_call_free();
 * NULL while unfinished. */
RPC_API const char *rpc_client_call_message(rpc_client_call_t *call);
/* The trailers (empty when none arrived).  Borrowed, valid until
 * rpc_client_call_free(); NULL while unfinished. */
RPC_API const rpc_metadata_t *rpc_client_call_trailers(rpc_client_call_t *call);
/* ctx_cause() of the call's context when the call ended because that
 * context was done; 0 otherwise (and while unfinished). */
RPC_API int rpc_client_call_cause(rpc_client_call_t *call);
/* The grpc-timeout value the call sent ("1500000u"), or "" when it sent
 * none (no deadline, or nothing sent).  Borrowed, valid until free. */
RPC_API const char *rpc_client_call_sent_timeout(rpc_client_call_t *call);
/* The address of the server the call was sent to ("127.0.0.1:5001",
 * "[::1]:5001", "unix:/run/x.sock"; with round_robin, the backend
 * chosen), or "" when it was never sent.  Borrowed, valid until
 * rpc_client_call_free(); final once the call has finished. */
RPC_API const char *rpc_client_call_peer(rpc_client_call_t *call);
/* The single response of a finished unary call (first queued message),
 * its length in *len; NULL when there is none.  Borrowed, valid until
 * rpc_client_call_free() or rpc_client_call_recv(). */
RPC_API const void *rpc_client_call_response(rpc_client_call_t *call,
                                             size_t *len);

/* ---- one-shot unary ---------------------------------------------------- */

/* Makes a unary call and waits for it: sends req[0..len) and half-closes,
 * then waits until the call has finished (bounded by ctx, whose deadline
 * and cancellation end the call itself).  Returns the status (>= 0) and
 * *out, the finished call: read the response with rpc_client_call_response(),
 * then rpc_client_call_free() it.  out may be NULL when only the status
 * matters.  A response count other than one with status OK becomes
 * INTERNAL.  Negative RPC_ERR_* (nothing started, *out untouched) as for
 * rpc_client_call_start(), or RPC_ERR_STATE on the loop thread. */
RPC_API int rpc_client_unary(ctx_t *ctx, rpc_client_channel_t *ch,
                             const char *method, const rpc_metadata_t *md,
                             const void *req, size_t len,
                             rpc_client_call_t **out);

/* ---- asynchronous calls ------------------------------------------------ */

/* One response message, on the loop thread.  msg is borrowed for the
 * duration of the callback.  May call rpc_client_call_send, close_send,
 * cancel and free, and start other calls; must not call the blocking
 * functions (they return RPC_ERR_STATE) nor rpc_client_channel_free. */
typedef void (*rpc_client_message_cb)(rpc_client_call_t *call,
                                      const void *msg, size_t len,
                                      void *user_data);
/* The call has finished with status (0..16); runs exactly once, on the
 * loop thread, after the last on_message.  The results above are
 * readable.  Same rules as rpc_client_message_cb; the handle stays valid
 * until the caller frees it (which it may do here). */
typedef void (*rpc_client_done_cb)(rpc_client_call_t *call, int status,
                                   void *user_data);

/* As rpc_client_call_start(), with callbacks: on_message (may be NULL:
 * messages are then queued as for blocking calls and readable with
 * rpc_client_call_response()) and on_done (may be NULL).  The caller owns
 * *out as with rpc_client_call_start().  When ctx is already done, the
 * call finishes at once and on_done runs on the loop thread. */
RPC_API int rpc_client_call_start_async(ctx_t *ctx, rpc_client_channel_t *ch,
                                        const char *method,
                                        const rpc_metadata_t *md,
                                        rpc_client_message_cb on_message,
                                        rpc_client_done_cb on_done,
                                        void *user_data,
                                        rpc_client_call_t **out);

/* Unary, asynchronously: sends req (copied) and half-closes; on_done runs
 * on the loop thread with the response readable through
 * rpc_client_call_response().  *out as above (out may be NULL: the
 * library then frees the call after on_done returns).  Never blocks. */
RPC_API int rpc_client_unary_async(ctx_t *ctx, rpc_client_channel_t *ch,
                                   const char *method,
                                   const rpc_metadata_t *md, const void *req,
                                   size_t len, rpc_client_done_cb on_done,
                                   void *user_data, rpc_client_call_t **out);

/* ---- observability: interceptors, metrics, access log, trace spans -------
 *
 * Trace context.  When a call propagates "traceparent" from its context
 * (a server request's metadata, see rpc_client_options_set_propagate_keys)
 * the client opens a new span for the hop: the value sent keeps the trace
 * id and flags and carries a fresh random 16-hex-digit parent-id, so the
 * server's access log names this hop's span, and the client's log names
 * both it and the span it came from (parent_span_id).  A traceparent the
 * caller sets explicitly in md is sent unchanged.
 *
 * An observer collects what every call of the channels it is attached to
 * does: go-grpc-prometheus grpc_client_* metrics, interceptor callbacks and
 * an optional access log.  One observer may serve many channels; it is
 * borrowed by the options and channels (free it after them).
 */

typedef struct rpc_client_observer rpc_client_observer_t;

/* What a client interceptor sees.  Pointers are borrowed, valid during the
 * callback only. */
typedef struct rpc_client_call_info {
    ctx_t *ctx;                 /* the call's context */
    const char *method;         /* "/pkg.Service/Method" */
    const char *target;         /* the channel's target */
    const rpc_metadata_t *metadata; /* outgoing metadata (may be NULL) */
    uint64_t id;                /* unique per observer, from 1 */
    int64_t start_ns;           /* ctx_now() at start */
    int64_t timeout_ns;         /* the context's deadline - start; -1: none */
    const char *trace_id, *span_id, *parent_span_id; /* "" when none */
    /* on_end only: */
    int status;                 /* final RPC_STATUS_* */
    int cause;                  /* ctx_cause() when the context ended the
                                   call, else 0 */
    const char *status_message; /* may be "" */
    int64_t duration_ns;
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
} rpc_client_call_info_t;

typedef struct rpc_client_interceptor {
    /* The call is starting (the caller's thread, inside
     * rpc_client_call_start() or rpc_client_unary()).  Returns 0 to send
     * it, or an RPC_STATUS_* to fail it locally, before anything is sent:
     * the call then ends with that status and the message "refused by a
     * client interceptor", later interceptors' on_start are skipped, and
     * every on_end still runs.  An out-of-range value fails it UNKNOWN. */
    int (*on_start)(const rpc_client_call_info_t *info, void *user_data);
    /* The call has its final status (the channel's loop thread; must not
     * block or call back into the channel). */
    void (*on_end)(const rpc_client_call_info_t *info, void *user_data);
} rpc_client_interceptor_t;

/* A new observer with metrics on and no interceptor, or NULL (out of
 * memory).  Owned by the caller. */
RPC_API rpc_client_observer_t *rpc_client_observer_new(void);
/* Frees it (its access log written out first).  Every channel using it
 * must have been freed.  NULL-safe. */
RPC_API void rpc_client_observer_free(rpc_client_observer_t *ob);
/* Appends an interceptor (copied); chained in registration order for
 * on_start, reverse order for on_end.  Before the observer is attached to
 * any options.  Returns 0, RPC_ERR_INVAL or RPC_ERR_NOMEM. */
RPC_API int rpc_client_observer_add_interceptor(rpc_client_observer_t *ob,
                                                const rpc_client_interceptor_t *ic,
                                                void *user_data);
/* One JSON line per call to fd (same format as the server's, "side":
 * "client", peer = the channel's target), written by a thread of the
 * observer's; a full ring drops and counts.  Before use.  Returns 0,
 * RPC_ERR_INVAL, RPC_ERR_NOMEM or RPC_ERR_STATE (already enabled). */
RPC_API int rpc_client_observer_enable_access_log(rpc_client_observer_t *ob,
                                                  int fd);
/* The grpc_client_* metrics in Prometheus text format, snprintf-style:
 * writes at most len bytes (NUL-terminated when len > 0) and returns the
 * full length.  ob is a void * so that it plugs into
 * rpc_server_admin_add_metrics().  Any thread; takes no lock. */
RPC_API size_t rpc_client_observer_metrics(char *buf, size_t len, void *ob);
/* Attaches ob (borrowed) to every channel created with these options. */
RPC_API int rpc_client_options_set_observer(rpc_client_options_t *o,
                                            rpc_client_observer_t *ob);

#ifdef __cplusplus
}
#endif
#endif /* RPC_CLIENT_H */
