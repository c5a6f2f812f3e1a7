/*
 * client_conn.c -- one client connection: name resolution (asynchronous,
 * client_resolve.c; skipped for a round_robin subchannel, which has its
 * one address), then a non-blocking connect (TCP or Unix) to each address
 * in turn, then with TLS the handshake (libevent's bufferevent_openssl:
 * certificate and name verified, ALPN h2 required) -- all of it bounded
 * by the connect timeout -- then an nghttp2 client session on the shared
 * rpc_h2 glue, with the callbacks that turn HEADERS/DATA/RST_STREAM/GOAWAY
 * into call results.  A failed handshake fails the attempt like a refused
 * connect ("TLS handshake with ADDR failed: <OpenSSL's reason>").
 *
 *   CONNECTING --connected--> READY --GOAWAY--> DRAINING
 *   (resolving,   |             |                  |
 *    connect,     +-- failed --> (destroyed by the channel)
 *    TLS)                                          +-- closed --> destroyed
 *
 * Outcomes go to the channel (rpc__client_conn_*), which hands those of a
 * round_robin subchannel's connection (c->sc) on to client_lb.c.
 *
 * While resolving, c->rq is the pending request and c->cev the deadline
 * timer; destroying the connection cancels the request (its callback then
 * frees only what it owns).  Addresses are evutil_addrinfo lists (the
 * native struct addrinfo here), freed with evutil_freeaddrinfo.
 *
 * Threads: loop thread only.  Calls attach to a connection when their
 * HEADERS are submitted (call->conn, call->stream_id, on c->calls) and
 * detach in on_stream_close or when the connection is destroyed.
 *
 * What we send: SETTINGS (no push, 1 MiB stream window) and an 8 MiB
 * connection window; per call `:method POST`, `:scheme http` (`https`
 * over TLS), `:path`,
 * `:authority`, `te: trailers`, `content-type: application/grpc`,
 * `user-agent`, `grpc-timeout` when the context has a deadline, then the
 * metadata (binary values base64, unpadded).  No compression is offered,
 * so a compressed response message is a protocol error (INTERNAL).
 */
#include "client_internal.h"
#include "rpc_nv.h"
#include "rpc_tls.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define USER_AGENT "grpc-c-ctx/0.1"
#define MAX_HEADER_BLOCK 16384 /* bytes, counted as HTTP/2 does */

enum { C_CONNECTING, C_READY, C_DRAINING };

struct conn {
    rpc_client_channel_t *ch;
    int state;
    struct addrinfo *ai, *cur;
    struct rpc__resolve *rq;  /* pending resolution, or NULL */
    int fd;
    struct event *cev;
    int64_t connect_deadline;
    rpc__h2_t *h2;
    struct call_list calls;
    struct conn *next;
    bool marked;              /* flush at the end of the op batch */
    bool plain;               /* a plain-TCP stream: write-through allowed */
    struct subch *sc;         /* round_robin's subchannel, or NULL */
    struct bufferevent *tls;  /* the TLS stream while handshaking */
    char name[120];           /* what error texts call the peer */
};

struct conn **rpc__conn_next(struct conn *c) { return &c->next; }
struct subch *rpc__conn_sub(const struct conn *c) { return c->sc; }
bool rpc__conn_ready(const struct conn *c) { return c->state == C_READY; }
size_t rpc__conn_calls(const struct conn *c) { return c->calls.n; }

static nghttp2_session *session_of(struct conn *c)
{
    return c->h2 ? rpc__h2_session(c->h2) : NULL;
}

/* ---- nghttp2 callbacks -------------------------------------------------- */

static rpc_client_call_t *stream_call(nghttp2_session *s, int32_t id)
{
    return nghttp2_session_get_stream_user_data(s, id);
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f,
                            void *ud)
{
    rpc_client_call_t *call = stream_call(s, f->hd.stream_id);
    if (call == NULL || f->hd.type != NGHTTP2_HEADERS)
        return 0;
    rpc_metadata_free(call->blk);
    call->blk = rpc_metadata_new();
    call->hdr_bytes = 0;
    if (call->blk == NULL) {
        call->fail_status = RPC_STATUS_RESOURCE_EXHAUSTED;
        snprintf(call->fail_msg, sizeof call->fail_msg, "out of memory");
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
}

static bool eq(const uint8_t *s, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

static int parse_status(const uint8_t *v, size_t n)
{
    if (n == 0 || n > 9 || (n > 1 && v[0] == '0'))
        return -1;
    int x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    return x;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f,
                     const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud)
{
    rpc_client_call_t *call = stream_call(s, f->hd.stream_id);
    if (call == NULL || call->blk == NULL || call->state == CALL_DONE)
        return 0;
    call->hdr_bytes += namelen + valuelen + 32;
    if (call->hdr_bytes > MAX_HEADER_BLOCK) {
        call->fail_status = RPC_STATUS_INTERNAL;
        snprintf(call->fail_msg, sizeof call->fail_msg,
                 "response header list larger than %d bytes",
                 MAX_HEADER_BLOCK);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (namelen > 0 && name[0] == ':') {
        if (eq(name, namelen, ":status"))
            call->http_status = parse_status(value, valuelen);
        return 0;
    }
    if (eq(name, namelen, "content-type")) {
        if (valuelen < 16 || memcmp(value, "application/grpc", 16) != 0 ||
            (valuelen > 16 && value[16] != '+' && value[16] != ';'))
            call->bad_content_type = true;
        return 0;
    }
    if (eq(name, namelen, "grpc-status")) {
        int st = parse_status(value, valuelen);
        if (st < 0)
            call->bad_grpc_status = true;
        else
            call->grpc_status = st;
        return 0;
    }
    if (eq(name, namelen, "grpc-message")) {
        free(call->grpc_message);
        call->grpc_message = rpc__malloc(valuelen + 1);
        if (call->grpc_message)
            rpc__percent_decode((const char *)value, valuelen,
                                call->grpc_message);
        return 0;
    }
    /* Transport headers are not metadata (grpc-go and grpc-js strip them);
     * grpc-status-details-bin is kept for the application. */
    if (eq(name, namelen, "grpc-encoding") ||
        eq(name, namelen, "grpc-accept-encoding") ||
        eq(name, namelen, "content-length"))
        return 0;
    int rc = rpc__metadata_add_wire(call->blk, (const char *)name, namelen,
                                    (const char *)value, valuelen);
    if (rc == RPC_ERR_MALFORMED) {
        call->fail_status = RPC_STATUS_INTERNAL;
        snprintf(call->fail_msg, sizeof call->fail_msg,
                 "malformed base64 in binary metadata %.*s", (int)namelen,
                 name);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    /* RPC_ERR_INVAL (a key outside the gRPC alphabet): dropped. */
    return 0;
}

static int on_message(int compressed, const uint8_t *data, size_t len,
                      void *arg)
{
    rpc_client_call_t *call = arg;
    if (compressed) {
        call->fail_status = RPC_STATUS_INTERNAL;
        snprintf(call->fail_msg, sizeof call->fail_msg,
                 "compressed message received but no compression was "
                 "negotiated");
        return 1;
    }
    rpc__call_deliver(call, data, len);
    return call->state == CALL_DONE ? 1 : 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id,
                         const uint8_t *data, size_t len, void *ud)
{
    rpc_client_call_t *call = stream_call(s, id);
    if (call == NULL || call->state == CALL_DONE)
        return 0;
    int rc = rpc__frame_feed(&call->dec, data, len, on_message, call);
    if (rc == 0 || call->state == CALL_DONE)
        return 0;
    if (rc == RPC_ERR_TOO_LARGE) {
        snprintf(call->fail_msg, sizeof call->fail_msg,
                 "received message larger than max (%zu bytes)",
                 call->ch->opts.max_recv);
        rpc__call_complete(call, RPC_STATUS_RESOURCE_EXHAUSTED,
                           call->fail_msg);
    } else if (rc == RPC_ERR_MALFORMED) {
        rpc__call_complete(call, RPC_STATUS_INTERNAL,
                           "malformed message prefix (flag not 0 or 1)");
    } else if (call->fail_status != 0) {
        rpc__call_complete(call, call->fail_status, call->fail_msg);
    } else {
        rpc__call_complete(call, RPC_STATUS_RESOURCE_EXHAUSTED,
                           "out of memory receiving a message");
    }
    nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct conn *c = ud;
    if (f->hd.type == NGHTTP2_GOAWAY) {
        c->state = C_DRAINING;
        rpc__client_conn_goaway(c->ch, c);
        return 0;
    }
    if (f->hd.stream_id == 0)
        return 0;
    rpc_client_call_t *call = stream_call(s, f->hd.stream_id);
    if (call == NULL)
        return 0;
    bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (f->hd.type == NGHTTP2_HEADERS && call->blk != NULL) {
        rpc_metadata_t *blk = call->blk;
        call->blk = NULL;
        if (!call->got_headers && !end) {
            call->got_headers = true;
            rpc__call_set_headers(call, blk); /* takes blk */
        } else {
            if (!call->got_headers) {
                call->got_headers = true;
                rpc__call_set_headers(call, NULL); /* Trailers-Only */
            }
            pthread_mutex_lock(&call->mu);
            rpc_metadata_free(call->trailers);
            call->trailers = blk;
            pthread_mutex_unlock(&call->mu);
        }
    }
    if (end && (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA)) {
        /* The server is done: finish now; if we are still sending, free
         * the stream with RST_STREAM NO_ERROR (PROTOCOL-HTTP2). */
        rpc__call_stream_closed(call, NGHTTP2_NO_ERROR);
        if (!nghttp2_session_get_stream_local_close(s, f->hd.stream_id))
            nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id,
                                      NGHTTP2_NO_ERROR);
    }
    return 0;
}

/* Takes `call` off its connection.  A call already done is detached here
 * and false returned; otherwise true: the caller completes it (which
 * detaches it). */
static bool unlink_call(rpc_client_call_t *call)
{
    rpc__call_list_remove(call);
    call->conn = NULL;
    call->stream_id = 0;
    if (call->state != CALL_DONE)
        return true;
    rpc__call_detach(call);
    return false;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t error,
                           void *ud)
{
    rpc_client_call_t *call = stream_call(s, id);
    if (call == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(s, id, NULL);
    if (unlink_call(call))
        rpc__call_stream_closed(call, error); /* completes and detaches */
    return 0;
}

static ssize_t read_out(nghttp2_session *s, int32_t id, uint8_t *buf,
                        size_t len, uint32_t *flags, nghttp2_data_source *src,
                        void *ud)
{
    return rpc__call_read_out(src->ptr, buf, len, flags);
}

/* ---- connecting --------------------------------------------------------- */

static void h2_closed(rpc__h2_t *h2, int reason, void *arg)
{
    struct conn *c = arg;
    const char *detail = rpc__h2_close_detail(h2);
    snprintf(c->ch->last_error, sizeof c->ch->last_error,
             "connection closed: %s%s%.80s", rpc__h2_close_reason_name(reason),
             detail[0] ? ": " : "", detail);
    rpc__client_conn_closed(c->ch, c);
}

static int start_session(struct conn *c, struct bufferevent *bev)
{
    rpc_client_channel_t *ch = c->ch;
    nghttp2_session_callbacks *cbs;
    nghttp2_session *s = NULL;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return -1;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs,
                                                            on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs,
                                                              on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs,
                                                           on_stream_close);
    int rc = nghttp2_session_client_new3(&s, cbs, c, NULL, rpc__h2_mem());
    nghttp2_session_callbacks_del(cbs);
    if (rc != 0)
        return -1;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
    };
    if (nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, 2) != 0 ||
        nghttp2_session_set_local_window_size(s, NGHTTP2_FLAG_NONE, 0,
                                              8 << 20) != 0) {
        nghttp2_session_del(s);
        return -1;
    }
    bool plain = bev == NULL;
    if (plain && (bev = rpc__stream_plain(ch->base, c->fd)) == NULL) {
        nghttp2_session_del(s);
        return -1;
    }
    c->fd = -1; /* the bufferevent owns it now */
    c->tls = NULL;
    c->h2 = rpc__h2_new(bev, s, 0, h2_closed, c);
    if (c->h2 == NULL) {
        nghttp2_session_del(s);
        bufferevent_free(bev);
        return -1;
    }
    c->plain = plain; /* no TLS under the bufferevent: write-through ok */
    c->state = C_READY;
    /* Bytes that arrived with the end of the TLS handshake (the server's
     * SETTINGS) wait in the input: have the read callback see them. */
    if (!plain && evbuffer_get_length(bufferevent_get_input(bev)) > 0)
        bufferevent_trigger(bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
    return 0;
}

static void try_next(struct conn *c);

/* What is left of the connect deadline (at least 1 us). */
static struct timeval time_left(const struct conn *c)
{
    int64_t left = c->connect_deadline - ctx_now();
    if (left < 1000)
        left = 1000;
    return (struct timeval){(time_t)(left / CTX_SECOND),
                            (suseconds_t)(left % CTX_SECOND / 1000)};
}

static void session_up(struct conn *c, struct bufferevent *bev)
{
    if (start_session(c, bev) != 0) {
        rpc__client_conn_failed(c->ch, c, "out of memory starting HTTP/2");
        return;
    }
    rpc__client_conn_ready(c->ch, c);
}

static void tls_failed(struct conn *c, const char *why)
{
    rpc_client_channel_t *ch = c->ch;
    snprintf(ch->last_error, sizeof ch->last_error,
             "TLS handshake with %.60s failed: %.70s", c->name, why);
    rpc__client_conn_failed(ch, c, ch->last_error);
}

/* The TLS handshake's outcome (libevent runs it on the loop). */
static void tls_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    event_del(c->cev);
    if (what & BEV_EVENT_CONNECTED) {
        if (!rpc__tls_alpn_h2(rpc__stream_ssl(bev))) {
            tls_failed(c, "the server did not negotiate ALPN \"h2\"");
            return;
        }
        bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
        session_up(c, bev);
        return;
    }
    char why[200];
    if (what & BEV_EVENT_EOF)
        snprintf(why, sizeof why, "the server closed the connection");
    else
        rpc__tls_error_text(bev, why, sizeof why);
    tls_failed(c, why);
}

static void tls_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    tls_failed(arg, "timed out");
}

static struct timeval time_left(const struct conn *c);

static void connected(struct conn *c)
{
    rpc_client_channel_t *ch = c->ch;
    event_del(c->cev);
    rpc__ai_name(c->cur, c->name, sizeof c->name); /* the address itself */
    if (ch->ssl_ctx == NULL) {
        session_up(c, NULL);
        return;
    }
    const char *name = ch->opts.tls_server_name ? ch->opts.tls_server_name
                                                : ch->host;
    SSL *ssl = rpc__tls_client_ssl((SSL_CTX *)ch->ssl_ctx, name);
    struct bufferevent *bev =
        ssl ? rpc__stream_tls(ch->base, c->fd, ssl, 0) : NULL;
    if (bev == NULL) {
        tls_failed(c, "out of memory");
        return;
    }
    c->fd = -1; /* the bufferevent owns it now */
    c->tls = bev;
    bufferevent_setcb(bev, NULL, NULL, tls_event_cb, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    /* The handshake shares the connect deadline. */
    struct timeval tv = time_left(c);
    event_assign(c->cev, ch->base, -1, 0, tls_timeout_cb, c);
    event_add(c->cev, &tv);
}

static void connect_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    rpc_client_channel_t *ch = c->ch;
    if (what & EV_TIMEOUT) {
        snprintf(ch->last_error, sizeof ch->last_error,
                 "connect to %s: timed out", c->name);
        close(c->fd);
        c->fd = -1;
        rpc__client_conn_failed(ch, c, ch->last_error);
        return;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err == 0) {
        connected(c);
        return;
    }
    snprintf(ch->last_error, sizeof ch->last_error, "connect to %s: %s",
             c->name, strerror(err));
    close(c->fd);
    c->fd = -1;
    c->cur = c->cur->ai_next;
    try_next(c);
}

static void try_next(struct conn *c)
{
    rpc_client_channel_t *ch = c->ch;
    for (; c->cur != NULL; c->cur = c->cur->ai_next) {
        struct addrinfo *a = c->cur;
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK |
                        SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            snprintf(ch->last_error, sizeof ch->last_error, "socket: %s",
                     strerror(errno));
            continue;
        }
        c->fd = fd;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            connected(c);
            return;
        }
        if (errno == EINPROGRESS) {
            struct timeval tv = time_left(c);
            event_assign(c->cev, ch->base, fd, EV_WRITE, connect_cb, c);
            event_add(c->cev, &tv);
            return;
        }
        snprintf(ch->last_error, sizeof ch->last_error, "connect to %s: %s",
                 c->name, strerror(errno));
        close(fd);
        c->fd = -1;
    }
    rpc__client_conn_failed(ch, c, ch->last_error);
}

static void conn_resolved(void *arg, struct addrinfo *ai, const char *why)
{
    struct conn *c = arg;
    c->rq = NULL;
    event_del(c->cev); /* the resolve deadline, if it was armed */
    if (why != NULL) {
        rpc__client_conn_failed(c->ch, c, why);
        return;
    }
    c->ai = c->cur = ai;
    try_next(c);
}

static void resolve_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    rpc_client_channel_t *ch = c->ch;
    rpc__resolve_cancel(c->rq);
    c->rq = NULL;
    snprintf(ch->last_error, sizeof ch->last_error,
             "resolve %s: timed out", ch->target);
    rpc__client_conn_failed(ch, c, ch->last_error);
}

static struct conn *conn_new(rpc_client_channel_t *ch)
{
    struct conn *c = rpc__calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->cev = event_new(ch->base, -1, 0, resolve_timeout_cb, c);
    if (c->cev == NULL) {
        free(c);
        return NULL;
    }
    c->ch = ch;
    c->fd = -1;
    c->state = C_CONNECTING;
    /* One deadline for resolving, connecting and the TLS handshake. */
    c->connect_deadline = ctx_now() + ch->opts.connect_timeout_ns;
    snprintf(c->name, sizeof c->name, "%s", ch->target);
    return c;
}

void rpc__conn_connect_sub(rpc_client_channel_t *ch, struct subch *sc,
                           const struct addrinfo *ai)
{
    struct conn *c = conn_new(ch);
    struct addrinfo *copy = NULL;
    if (c != NULL && (copy = rpc__ai_copy(ai)) == NULL) {
        event_free(c->cev);
        free(c);
        c = NULL;
    }
    if (c == NULL) {
        rpc__lb_conn_failed(sc, NULL, "out of memory");
        return;
    }
    c->sc = sc;
    rpc__ai_name(ai, c->name, sizeof c->name);
    /* The subchannel owns c from here (rpc__lb_conn_*). */
    rpc__lb_conn_started(sc, c);
    c->ai = c->cur = copy;
    try_next(c);
}

void rpc__conn_connect(rpc_client_channel_t *ch)
{
    struct conn *c = conn_new(ch);
    if (c == NULL) {
        snprintf(ch->last_error, sizeof ch->last_error,
                 "connect to %s: out of memory", ch->target);
        rpc__client_conn_failed(ch, NULL, ch->last_error);
        return;
    }
    /* The channel owns c from here: whatever happens next (an answer or a
     * failure now or later, a connect, a timeout) goes through
     * rpc__client_conn_ready/failed, which then keep or destroy c. */
    ch->conn = c;
    struct rpc__resolve *rq = rpc__resolve_start(ch, conn_resolved, c);
    if (rq == NULL)
        return; /* answered at once: c was handed on or destroyed */
    c->rq = rq;
    struct timeval tv = time_left(c);
    event_add(c->cev, &tv); /* resolve_timeout_cb at the deadline */
}

/* ---- calls on the connection -------------------------------------------- */

int rpc__conn_submit(struct conn *c, rpc_client_call_t *call)
{
    rpc_client_channel_t *ch = c->ch;
    int e = ctx_err(call->ctx);
    if (e != 0) {
        snprintf(call->fail_msg, sizeof call->fail_msg, "%s",
                 ctx_strerror(e));
        return e == CTX_DEADLINE_EXCEEDED ? RPC_STATUS_DEADLINE_EXCEEDED
                                          : RPC_STATUS_CANCELLED;
    }
    char timeout[RPC__TIMEOUT_MAX] = "";
    if (call->has_deadline) {
        int64_t left = call->deadline - ctx_now();
        if (left <= 0) {
            snprintf(call->fail_msg, sizeof call->fail_msg,
                     "deadline exceeded before the call was sent");
            return RPC_STATUS_DEADLINE_EXCEEDED;
        }
        rpc__timeout_format(left, timeout);
    }
    /* The header list lives on the stack (no allocation per call) unless
     * the metadata is long. */
    const char *auth = ch->opts.authority ? ch->opts.authority
                                          : ch->authority;
    rpc__nv_t b;
    rpc__nv_init(&b);
    rpc__nv_add(&b, ":method", "POST", 4);
    if (ch->ssl_ctx != NULL)
        rpc__nv_add(&b, ":scheme", "https", 5);
    else
        rpc__nv_add(&b, ":scheme", "http", 4);
    rpc__nv_add(&b, ":path", call->method, strlen(call->method));
    rpc__nv_add(&b, ":authority", auth, strlen(auth));
    if (timeout[0])
        rpc__nv_add(&b, "grpc-timeout", timeout, strlen(timeout));
    rpc__nv_add(&b, "te", "trailers", 8);
    rpc__nv_add(&b, "content-type", "application/grpc", 16);
    rpc__nv_add(&b, "user-agent", USER_AGENT, strlen(USER_AGENT));
    rpc__nv_add_metadata(&b, call->md);
    int status = rpc__nv_failed(&b) ? RPC_STATUS_RESOURCE_EXHAUSTED : 0;
    int32_t id = -1;
    if (status == 0) {
        nghttp2_data_provider prd = {.source.ptr = call,
                                     .read_callback = read_out};
        id = nghttp2_submit_request(session_of(c), NULL, b.nv, b.n, &prd, call);
    }
    rpc__nv_free(&b);
    if (status != 0) {
        snprintf(call->fail_msg, sizeof call->fail_msg, "out of memory");
        return status;
    }
    if (id < 0) {
        snprintf(call->fail_msg, sizeof call->fail_msg,
                 "cannot start a stream: %s", nghttp2_strerror(id));
        return id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE
                   ? RPC_STATUS_UNAVAILABLE
                   : RPC_STATUS_INTERNAL;
    }
    rpc_metadata_free(call->md);
    call->md = NULL;
    call->conn = c;
    call->stream_id = id;
    call->state = CALL_OPEN;
    rpc__call_list_add(&c->calls, call);
    pthread_mutex_lock(&call->mu);
    memcpy(call->timeout_sent, timeout, sizeof timeout);
    snprintf(call->peer, sizeof call->peer, "%.63s", c->name);
    pthread_mutex_unlock(&call->mu);
    return 0;
}

void rpc__conn_reset(rpc_client_call_t *call)
{
    if (call->conn == NULL || call->stream_id <= 0)
        return;
    nghttp2_submit_rst_stream(session_of(call->conn), NGHTTP2_FLAG_NONE,
                              call->stream_id, NGHTTP2_CANCEL);
}

void rpc__conn_resume(rpc_client_call_t *call)
{
    if (call->conn == NULL || call->stream_id <= 0 || !call->deferred)
        return;
    call->deferred = false;
    nghttp2_session_resume_data(session_of(call->conn), call->stream_id);
}

/* Write-through.  When the bufferevent holds no output, the frames
 * nghttp2 has ready go straight to the socket with one send(2): the
 * bufferevent path would add the write event (epoll_ctl), wait for epoll
 * to report the socket writable (epoll_wait), write, and remove the event
 * again (epoll_ctl) -- three more system calls per flush, which is most of
 * a small call's syscalls.  Whatever the kernel does not take at once, and
 * everything after it, is queued in the bufferevent as before, so the
 * order of bytes is kept.  Plain TCP only (a TLS stream must go through
 * its bufferevent); at most WT_MAX bytes per flush, the rest through the
 * bufferevent. */
#define WT_BUF 16384
#define WT_MAX (256 * 1024)

/* Sends buf[0..n) without blocking; queues what the kernel did not take
 * (a socket error is then found by the bufferevent).  False when it had to
 * queue anything: everything after must be queued too. */
static bool wt_send(struct evbuffer *out, int fd, const uint8_t *buf,
                    size_t n)
{
    ssize_t w = send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0)
        w = 0;
    if ((size_t)w == n)
        return true;
    evbuffer_add(out, buf + w, n - (size_t)w);
    return false;
}

static void write_through(struct conn *c)
{
    struct bufferevent *bev = rpc__h2_bev(c->h2);
    struct evbuffer *out = bufferevent_get_output(bev);
    int fd = bufferevent_getfd(bev);
    if (!c->plain || fd < 0 || rpc__h2_closing(c->h2) ||
        evbuffer_get_length(out) != 0)
        return;
    nghttp2_session *s = rpc__h2_session(c->h2);
    uint8_t buf[WT_BUF];
    size_t n = 0, total = 0;
    while (total < WT_MAX) {
        const uint8_t *data;
        ssize_t k = nghttp2_session_mem_send(s, &data);
        if (k < 0) {
            rpc__h2_close_now(c->h2, RPC__H2_PROTOCOL);
            return;
        }
        if (k == 0)
            break;
        total += (size_t)k;
        if (n + (size_t)k > sizeof buf) {
            if (n > 0 && !wt_send(out, fd, buf, n)) {
                evbuffer_add(out, data, (size_t)k);
                return; /* rpc__h2_flush queues the rest */
            }
            n = 0;
            if ((size_t)k > sizeof buf) {
                if (!wt_send(out, fd, data, (size_t)k))
                    return;
                continue;
            }
        }
        memcpy(buf + n, data, (size_t)k);
        n += (size_t)k;
    }
    if (n > 0)
        wt_send(out, fd, buf, n);
}

void rpc__conn_flush(struct conn *c)
{
    if (c != NULL && c->h2 != NULL) {
        write_through(c);
        rpc__h2_flush(c->h2); /* the rest, and the close-when-done check */
    }
}

void rpc__conn_mark(struct conn *c)
{
    if (c != NULL)
        c->marked = true;
}

void rpc__conn_flush_marked(struct conn *c)
{
    if (c->marked) {
        c->marked = false;
        rpc__conn_flush(c);
    }
}

void rpc__conn_destroy(struct conn *c, int status, const char *why)
{
    char msg[200];
    snprintf(msg, sizeof msg, "%s", why);
    while (c->calls.head != NULL) {
        rpc_client_call_t *call = c->calls.head;
        if (unlink_call(call))
            rpc__call_complete(call, status, msg); /* and detaches */
    }
    if (c->rq)
        rpc__resolve_cancel(c->rq); /* its callback frees what it holds */
    if (c->cev) {
        event_del(c->cev);
        event_free(c->cev);
    }
    if (c->fd >= 0)
        close(c->fd);
    if (c->tls)
        bufferevent_free(c->tls); /* closes the socket, frees the SSL */
    if (c->ai)
        evutil_freeaddrinfo(c->ai);
    rpc__h2_free(c->h2);
    free(c);
}
