/*
 * rpc_h2.h -- the HTTP/2 transport glue shared by the server and the
 * client: an nghttp2 session driven by a libevent bufferevent.  Internal
 * (includes libevent and nghttp2); not installed.
 *
 * The byte stream is a bufferevent, made by rpc__stream_plain() today; a
 * TLS stream only needs another constructor returning a bufferevent
 * (bufferevent_openssl_socket_new): nothing below it changes.  That
 * function is the seam.
 *
 * The glue owns the read/write loop: input is fed to
 * nghttp2_session_mem_recv() in whole batches, and output is produced with
 * nghttp2_session_mem_send() once per batch, straight into the
 * bufferevent's output buffer, until that buffer holds `out_high` bytes
 * (a peer that stops reading stops the session's output: nghttp2 then keeps
 * its frames queued, and the write timeout eventually closes the
 * connection).  The caller creates the nghttp2 session with its own
 * callbacks (server or client side) and calls rpc__h2_flush() after
 * submitting anything from outside the glue's callbacks.
 *
 * Threads: everything here runs on the thread of the bufferevent's
 * event_base, never elsewhere.
 *
 * Lifecycle:
 *
 *   new --> OPEN --(EOF, error, timeout, bad bytes, nothing left to do)--> CLOSED
 *             |                                                  ^
 *             +--rpc__h2_close_after_flush()--> FLUSHING ---------+
 *
 * on_close runs exactly once, on entering CLOSED, from a libevent callback
 * with no nghttp2 call on the stack: it may (and should) rpc__h2_free().
 */
#ifndef RPC_H2_H
#define RPC_H2_H

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include <stddef.h>

/* Why a connection closed. */
enum rpc__h2_close_reason {
    RPC__H2_EOF = 1,      /* the peer closed the TCP connection */
    RPC__H2_IO_ERROR,     /* a socket error (reset, ...) */
    RPC__H2_TIMEOUT,      /* read/write timeout: the peer stopped reading */
    RPC__H2_PROTOCOL,     /* bytes that are not HTTP/2, or a fatal nghttp2
                             error; a GOAWAY was attempted */
    RPC__H2_DONE,         /* both sides finished (GOAWAY exchanged) or a
                             close after flush completed */
};

const char *rpc__h2_close_reason_name(int reason);

typedef struct rpc__h2 rpc__h2_t;
typedef void (*rpc__h2_close_cb)(rpc__h2_t *h2, int reason, void *user_data);

/* A plain-TCP byte stream on fd (closed with the bufferevent).  NULL on
 * failure.  The seam where TLS slots in: rpc__stream_tls() (rpc_tls.h)
 * makes the TLS stream, and nothing below changes. */
struct bufferevent *rpc__stream_plain(struct event_base *base, int fd);

/* Formats the peer of fd as "ipv4:1.2.3.4:5" / "ipv6:[::1]:5" into buf;
 * for a Unix-domain socket "unix:/path" or "unix-abstract:name" (the
 * server's own address when the peer's is unnamed, as clients' are). */
void rpc__stream_peer_name(int fd, char *buf, size_t len);

/* Formats the address sa (sl bytes long) as "1.2.3.4:5" / "[::1]:5" --
 * with family_prefix as gRPC names peers, "ipv4:..." / "ipv6:..." -- or
 * "unix:/path" / "unix-abstract:name", "unknown" for other families.
 * Writes at most len bytes to buf (NUL-terminated); any thread. */
void rpc__sockaddr_name(const struct sockaddr *sa, socklen_t sl,
                        int family_prefix, char *buf, size_t len);

/* Takes ownership of bev and session.  out_high: output high-water mark in
 * bytes (0: 256 KiB).  Starts reading at once.  NULL on out of memory (bev
 * and session are then still the caller's). */
/* The allocator to give nghttp2_session_*_new3(): libctx's per-thread
 * small-block cache (a session's streams and frames are made and freed in
 * batches on its loop thread).  Static; any thread. */
nghttp2_mem *rpc__h2_mem(void);

/* Calls fn(user_data) at the start of every read batch, before nghttp2
 * sees the bytes (the server stamps the loop's wake-up time once there).
 * NULL: none.  Loop thread. */
void rpc__h2_on_read(rpc__h2_t *h2, void (*fn)(void *user_data));

rpc__h2_t *rpc__h2_new(struct bufferevent *bev, nghttp2_session *session,
                       size_t out_high, rpc__h2_close_cb on_close,
                       void *user_data);

/* Sends whatever the session has to send, up to the high-water mark.
 * Returns 0, or -1 when the connection is (now) closing; in that case
 * on_close has been scheduled (it never runs inside this call). */
int rpc__h2_flush(rpc__h2_t *h2);

/* Stops reading; closes once pending output is written (GOAWAY first, if
 * the caller submitted one). */
void rpc__h2_close_after_flush(rpc__h2_t *h2);

/* Closes at once with `reason` (dropping pending output); on_close runs
 * later from the loop, as for every close. */
void rpc__h2_close_now(rpc__h2_t *h2, int reason);

/* Sets read/write timeouts on the stream (0: none).  The write timeout is
 * how long a peer may refuse to read pending output. */
void rpc__h2_set_timeouts(rpc__h2_t *h2, int64_t read_ns, int64_t write_ns);

/* Frees the session and the stream (closing the socket).  No callback runs
 * afterwards.  NULL-safe. */
void rpc__h2_free(rpc__h2_t *h2);

nghttp2_session *rpc__h2_session(rpc__h2_t *h2);
/* Why the stream failed, when the glue knows more than the close reason
 * (a TLS stream: "certificate verify failed: ...", an alert); "" when
 * not.  Valid until rpc__h2_free(). */
const char *rpc__h2_close_detail(const rpc__h2_t *h2);
struct bufferevent *rpc__h2_bev(rpc__h2_t *h2);
/* Server sessions: RST_STREAMs dropped because no HEADERS had opened
 * their stream (see scan_feed() in rpc_h2.c). */
uint64_t rpc__h2_idle_resets_dropped(const rpc__h2_t *h2);
/* True once the connection is closing or closed. */
int rpc__h2_closing(const rpc__h2_t *h2);
/* Bytes waiting in the stream's output buffer. */
size_t rpc__h2_pending_output(const rpc__h2_t *h2);

/* One-time process setup: libevent's pthread locking (needed before any
 * event_base is shared between threads).  Idempotent, thread-safe. */
void rpc__libevent_init(void);

#endif /* RPC_H2_H */
