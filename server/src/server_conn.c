/*
 * server_conn.c -- one HTTP/2 connection of the server: the nghttp2
 * server-session callbacks, validation of request headers, and the
 * connection's timers (handshake, keepalive ping + ack, idle).
 *
 * Everything here runs on the connection's loop thread.
 *
 * Connection lifecycle:
 *
 *   accept --> HANDSHAKE --client SETTINGS--> OPEN --GOAWAY (drain/idle/
 *                 |                             |     too_many_pings)--> CLOSING
 *                 +--timeout---+                +--EOF/error/keepalive--+    |
 *                              v                                        v    v
 *                           CLOSED: connection context cancelled (PEER_GONE or
 *                           KEEPALIVE), every open call's stream closed
 *                           with that cause, nghttp2 session and socket freed
 *
 * Requests: a HEADERS block is parsed into c->head (one block at a time:
 * HTTP/2 never interleaves them).  When it is complete it is validated
 * once; a bad request gets one clear answer from here (Trailers-Only with
 * a gRPC status, or HTTP 415/405 plus a status), one log line, and no call
 * object; a good one becomes a call (srv_call_new), which this file links
 * into c->calls and unlinks when nghttp2 closes its stream.
 *
 * Round trip: the time from our first SETTINGS to its ACK, and from each
 * keepalive PING to its ACK, is the connection's RTT, which the call uses
 * to tell a client's deadline RST_STREAM from a cancel.
 */
#include "server_internal.h"

#include "rpc_nv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static const uint8_t drain_ping[8];
static void drain_acked(struct srv_conn *c);

static struct timeval tv_of(int64_t ns)
{
    struct timeval tv = {(time_t)(ns / CTX_SECOND),
                         (suseconds_t)(ns % CTX_SECOND / 1000)};
    return tv;
}

static struct rpc_call *call_of(struct srv_conn *c, int32_t stream_id)
{
    return nghttp2_session_get_stream_user_data(c->sess, stream_id);
}

/* ---- calls of this connection -------------------------------------------- */

static void link_call(struct srv_conn *c, struct rpc_call *call)
{
    call->prev = NULL;
    call->next = c->calls;
    if (c->calls)
        c->calls->prev = call;
    c->calls = call;
    c->ncalls++;
    nghttp2_session_set_stream_user_data(c->sess, call->stream_id, call);
}

static void unlink_call(struct srv_conn *c, struct rpc_call *call)
{
    if (call->prev)
        call->prev->next = call->next;
    else
        c->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
    c->ncalls--;
    nghttp2_session_set_stream_user_data(c->sess, call->stream_id, NULL);
}

/* ---- headers ------------------------------------------------------------ */

static int eq(const uint8_t *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    return alen == blen && memcmp(a, b, blen) == 0;
}

static void head_clear(struct srv_head *h)
{
    if (h->path_owned)
        free(h->path);
    rpc_metadata_free(h->md);
    memset(h, 0, sizeof *h);
}

static void set_bad(struct srv_head *h, int status, const char *msg, int http)
{
    if (h->bad_status != 0)
        return; /* the first problem is the one reported */
    h->bad_status = status;
    h->bad_msg = msg;
    h->http_status = http;
}

/* The granularity of a grpc-timeout value's unit (its last byte). */
static int64_t timeout_unit(const uint8_t *v, size_t len)
{
    switch (len ? v[len - 1] : 0) {
    case 'H': return 3600 * CTX_SECOND;
    case 'M': return 60 * CTX_SECOND;
    case 'S': return CTX_SECOND;
    case 'm': return CTX_MS;
    case 'u': return 1000;
    default: return 1;
    }
}

static void conn_read_begins(void *user_data)
{
    struct srv_conn *c = user_data;
    srv_loop_read_begins(c->lp);
}

static int on_begin_headers(nghttp2_session *sess, const nghttp2_frame *frame,
                            void *user_data)
{
    struct srv_conn *c = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct srv_head *h = &c->head;
    head_clear(h);
    if ((uint32_t)c->ncalls >= c->s->o.max_streams) {
        /* Past the limit we advertised: refuse this stream alone (the
         * client may retry it), keep the connection and its calls. */
        nghttp2_submit_rst_stream(sess, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_REFUSED_STREAM);
        return 0; /* head.stream_id is 0: its headers are ignored */
    }
    h->stream_id = frame->hd.stream_id;
    h->timeout_ns = -1;
    h->accept_mask = 1u << RPC__ENC_IDENTITY;
    h->arrival_ns = srv_loop_woke_ns(c->lp);
    if (c->idle_timer)
        evtimer_del(c->idle_timer);
    return 0;
}

/* Header bytes a connection may make us decode per second.  HPACK lets a
 * few wire bytes expand into large headers (a bomb); a connection past
 * this budget is costing the loop more than its share, whatever the
 * header list limit says about each request: GOAWAY ENHANCE_YOUR_CALM. */
#define HEADER_BUDGET_PER_SEC (32u * 1024 * 1024)

static void calm_down(struct srv_conn *c, const char *why)
{
    srv_log("%s: %s, closing (GOAWAY ENHANCE_YOUR_CALM)", c->peer, why);
    if (c->closing)
        return;
    c->closing = 1;
    nghttp2_submit_goaway(c->sess, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(c->sess),
                          NGHTTP2_ENHANCE_YOUR_CALM, (const uint8_t *)why,
                          strlen(why));
    rpc__h2_close_after_flush(c->h2);
}

static int over_header_budget(struct srv_conn *c, size_t bytes)
{
    int64_t now = c->last_recv_ns;
    if (now - c->hdr_window_ns > CTX_SECOND) {
        c->hdr_window_ns = now;
        c->hdr_window_bytes = 0;
    }
    c->hdr_window_bytes += bytes;
    if (c->hdr_window_bytes <= HEADER_BUDGET_PER_SEC)
        return 0;
    if (!c->closing)
        calm_down(c, "header decoding over budget");
    return 1;
}

static int on_header(nghttp2_session *sess, const nghttp2_frame *frame,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *user_data)
{
    struct srv_conn *c = user_data;
    struct srv_head *h = &c->head;
    if (frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST ||
        frame->hd.stream_id != h->stream_id)
        return 0; /* client trailers carry nothing we use */
    h->bytes += namelen + valuelen + 32;
    if (over_header_budget(c, namelen + valuelen + 32))
        return NGHTTP2_ERR_CALLBACK_FAILURE; /* closes; GOAWAY queued */
    if (h->bytes > c->s->o.max_header_list) {
        set_bad(h, RPC_STATUS_RESOURCE_EXHAUSTED,
                "request header list too large", 0);
        return 0;
    }
    if (namelen > 0 && name[0] == ':') {
        if (eq(name, namelen, ":method")) {
            h->seen_post = eq(value, valuelen, "POST");
        } else if (eq(name, namelen, ":path")) {
            /* Registered paths point at the method table (no copy); an
             * unknown one is copied for the error answer. */
            if (h->path_owned)
                free(h->path);
            h->path_owned = 0;
            h->m = srv_find_method(c->s, (const char *)value, valuelen);
            if (h->m != NULL) {
                h->path = h->m->path;
            } else {
                h->path = rpc__strndup((const char *)value, valuelen);
                h->path_owned = h->path != NULL;
            }
        }
        return 0; /* :scheme, :authority: nothing to check for h2c */
    }
    if (eq(name, namelen, "content-type")) {
        const char *p = "application/grpc";
        size_t n = strlen(p);
        h->seen_ct = valuelen >= n && memcmp(value, p, n) == 0 &&
                     (valuelen == n || value[n] == '+' || value[n] == ';');
        if (!h->seen_ct)
            set_bad(h, RPC_STATUS_INVALID_ARGUMENT,
                    "invalid gRPC request content-type", 415);
        return 0;
    }
    if (eq(name, namelen, "te")) {
        h->seen_te = eq(value, valuelen, "trailers");
        return 0;
    }
    if (eq(name, namelen, "grpc-timeout")) {
        if (rpc__timeout_parse((const char *)value, valuelen,
                               &h->timeout_ns) != 0)
            set_bad(h, RPC_STATUS_INTERNAL, "malformed grpc-timeout", 0);
        else
            h->timeout_unit_ns = timeout_unit(value, valuelen);
        return 0;
    }
    if (eq(name, namelen, "grpc-encoding")) {
        int enc = rpc__encoding_parse((const char *)value, valuelen);
        if (enc < 0)
            set_bad(h, RPC_STATUS_UNIMPLEMENTED,
                    "unsupported grpc-encoding (this server accepts "
                    RPC__ACCEPT_ENCODING ")", 0);
        else
            h->enc = enc;
        return 0;
    }
    if (eq(name, namelen, "grpc-accept-encoding")) {
        h->accept_mask |=
            rpc__accept_encoding_parse((const char *)value, valuelen);
        return 0;
    }
    /* Transport headers and reserved grpc-* names are not metadata. */
    if ((namelen >= 5 && memcmp(name, "grpc-", 5) == 0) ||
        eq(name, namelen, "user-agent") || eq(name, namelen, "accept-encoding") ||
        eq(name, namelen, "host"))
        return 0;
    if (h->md == NULL && (h->md = rpc_metadata_new()) == NULL) {
        set_bad(h, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", 0);
        return 0;
    }
    if (rpc__metadata_add_wire(h->md, (const char *)name, namelen,
                               (const char *)value, valuelen) != 0)
        srv_log("%s: dropped unusable metadata entry %.*s", c->peer,
                (int)namelen, (const char *)name);
    return 0;
}

/* Answers a request refused at its headers (Trailers-Only, or an HTTP
 * error status plus a gRPC one) and counts it.  No call object exists. */
static void reject(struct srv_conn *c, struct srv_head *h, int status,
                   const char *msg, int http)
{
    srv_log("%s stream %d %s: %s (status %s%s)", c->peer, h->stream_id,
            h->path ? h->path : "-", msg, rpc_status_name(status),
            http == 415 ? ", HTTP 415" : http == 405 ? ", HTTP 405" : "");
    char st[8];
    snprintf(st, sizeof st, "%d", http ? http : 200);
    rpc__nv_t b;
    rpc__nv_init(&b);
    rpc__nv_add(&b, ":status", st, strlen(st));
    rpc__nv_add(&b, "content-type", "application/grpc", 16);
    rpc__nv_add(&b, "grpc-accept-encoding", RPC__ACCEPT_ENCODING,
                sizeof RPC__ACCEPT_ENCODING - 1);
    rpc__nv_add_status(&b, status, msg);
    if (rpc__nv_failed(&b))
        nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, h->stream_id,
                                  NGHTTP2_INTERNAL_ERROR);
    else
        nghttp2_submit_response(c->sess, h->stream_id, b.nv, b.n, NULL);
    rpc__nv_free(&b);
    if (status != RPC_STATUS_UNIMPLEMENTED)
        srv_stat_add(c->s, RPC_STAT_BAD_REQUESTS, 1);
    srv_stat_add(c->s, RPC_STAT_CALLS_REJECTED, 1);
    srv_stat_ended(c->s, status, 0);
}

/* The request HEADERS block is complete: reject it, or make it a call. */
static struct rpc_call *open_request(struct srv_conn *c)
{
    struct srv_head *h = &c->head;
    int status = 0, http = 0;
    const char *msg = NULL;
    char buf[160];
    srv_stat_add(c->s, RPC_STAT_CALLS_TOTAL, 1);
    if (!h->seen_post) {
        status = RPC_STATUS_INTERNAL;
        msg = "gRPC requires method POST";
        http = 405;
    } else if (!h->seen_ct && h->bad_status == 0) {
        status = RPC_STATUS_INVALID_ARGUMENT;
        msg = "missing gRPC content-type";
        http = 415;
    } else if (h->bad_status != 0) {
        status = h->bad_status;
        msg = h->bad_msg;
        http = h->http_status;
    } else if (!h->seen_te) {
        status = RPC_STATUS_INTERNAL;
        msg = "missing te: trailers";
    } else if (h->path == NULL || h->path[0] != '/') {
        status = RPC_STATUS_UNIMPLEMENTED;
        msg = "missing or malformed :path";
    } else if (h->m == NULL) {
        snprintf(buf, sizeof buf, "Method not found: %.100s", h->path);
        status = RPC_STATUS_UNIMPLEMENTED;
        msg = buf;
    }
    struct rpc_call *call = NULL;
    if (status == 0 && (call = srv_call_new(c, h)) == NULL) {
        status = RPC_STATUS_RESOURCE_EXHAUSTED;
        msg = "out of memory";
    }
    if (status != 0)
        reject(c, h, status, msg, http);
    else
        link_call(c, call);
    head_clear(h);
    return call;
}

/* ---- frames -------------------------------------------------------------- */

static void arm_idle(struct srv_conn *c)
{
    if (c->idle_timer && c->ncalls == 0 && !c->closing) {
        struct timeval tv = tv_of(c->s->o.idle_ns);
        evtimer_add(c->idle_timer, &tv);
    }
}

static void goaway_close(struct srv_conn *c, uint32_t code, const char *why)
{
    if (c->closing)
        return;
    c->closing = 1;
    nghttp2_submit_goaway(c->sess, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(c->sess),
                          code, (const uint8_t *)why, strlen(why));
    rpc__h2_close_after_flush(c->h2);
}

static int on_frame_recv(nghttp2_session *sess, const nghttp2_frame *frame,
                         void *user_data)
{
    struct srv_conn *c = user_data;
    c->last_recv_ns = srv_loop_woke_ns(c->lp);
    struct rpc_call *call;
    switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) && c->settings_sent_ns) {
            c->rtt_ns = c->last_recv_ns - c->settings_sent_ns;
            c->settings_sent_ns = 0;
        }
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK) && !c->got_settings) {
            c->got_settings = 1;
            c->lp->npending--;
            if (c->hs_timer)
                evtimer_del(c->hs_timer);
            arm_idle(c);
        }
        break;
    case NGHTTP2_PING:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK) {
            if (c->draining &&
                memcmp(frame->ping.opaque_data, drain_ping, 8) == 0) {
                drain_acked(c);
                break;
            }
            if (c->ping_outstanding)
                c->rtt_ns = c->last_recv_ns - c->ping_sent_ns;
            c->ping_outstanding = 0;
            evtimer_del(c->ack_timer);
        } else {
            /* too_many_pings (gRFC A8): a ping sooner than permitted after
             * the previous one, with no data sent in between, is a strike. */
            int64_t now = c->last_recv_ns;
            if (c->last_client_ping_ns != 0 &&
                now - c->last_client_ping_ns < c->s->o.permit_ping_ns &&
                ++c->strikes > c->s->o.max_ping_strikes) {
                srv_log("%s: too many pings, closing (GOAWAY ENHANCE_YOUR_CALM)",
                        c->peer);
                goaway_close(c, NGHTTP2_ENHANCE_YOUR_CALM, "too_many_pings");
            }
            c->last_client_ping_ns = now;
        }
        break;
    case NGHTTP2_HEADERS:
        call = frame->headers.cat == NGHTTP2_HCAT_REQUEST &&
                       frame->hd.stream_id == c->head.stream_id
                   ? open_request(c)
                   : call_of(c, frame->hd.stream_id);
        if (call && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            srv_call_remote_close(call);
        break;
    case NGHTTP2_DATA:
        call = call_of(c, frame->hd.stream_id);
        if (call && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            srv_call_remote_close(call);
        break;
    case NGHTTP2_RST_STREAM:
        /* Resets cost us a call each (Rapid Reset).  nghttp2 limits them
         * per connection; this bucket limits them for the whole server,
         * so many connections cannot add up to a flood. */
        if (!srv_rate_allow(&c->s->rst_tat, c->last_recv_ns,
                            c->s->o.max_resets_per_sec,
                            2 * (int64_t)c->s->o.max_resets_per_sec))
            calm_down(c, "too many stream resets");
        break;
    default:
        break;
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *sess, uint8_t flags,
                         int32_t stream_id, const uint8_t *data, size_t len,
                         void *user_data)
{
    struct srv_conn *c = user_data;
    /* The connection window is always given back at once; the stream's
     * only as its handler takes the messages (srv_call_data decides), so
     * a handler that stops reading stalls its own stream, not others. */
    nghttp2_session_consume_connection(sess, len);
    struct rpc_call *call = call_of(c, stream_id);
    if (call)
        srv_call_data(call, data, len);
    else
        nghttp2_session_consume_stream(sess, stream_id, len);
    return 0;
}

static int on_frame_send(nghttp2_session *sess, const nghttp2_frame *frame,
                         void *user_data)
{
    struct srv_conn *c = user_data;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA: {
        /* Sending data resets the ping policy (gRFC A8). */
        c->strikes = 0;
        c->last_client_ping_ns = 0;
        if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            break;
        /* We finished first: free the stream (PROTOCOL "early closure"). */
        if (!nghttp2_session_get_stream_remote_close(sess, frame->hd.stream_id))
            nghttp2_submit_rst_stream(sess, NGHTTP2_FLAG_NONE,
                                      frame->hd.stream_id, NGHTTP2_NO_ERROR);
        break;
    }
    case NGHTTP2_RST_STREAM:
        if (frame->rst_stream.error_code == NGHTTP2_REFUSED_STREAM)
            srv_stat_add(c->s, RPC_STAT_REFUSED_STREAMS, 1);
        break;
    default:
        break;
    }
    return 0;
}

static int on_stream_close(nghttp2_session *sess, int32_t stream_id,
                           uint32_t error_code, void *user_data)
{
    struct srv_conn *c = user_data;
    struct rpc_call *call = call_of(c, stream_id);
    if (call != NULL) {
        unlink_call(c, call);
        srv_call_stream_closed(call, error_code, 0);
        arm_idle(c);
    }
    return 0;
}

/* ---- timers --------------------------------------------------------------- */

static void keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
    struct srv_conn *c = arg;
    if (c->closing || c->ping_outstanding)
        return;
    if (ctx_now() - c->last_recv_ns < c->s->o.keepalive_ns * 9 / 10)
        return; /* heard from the peer recently enough */
    if (nghttp2_submit_ping(c->sess, NGHTTP2_FLAG_NONE, NULL) != 0)
        return;
    c->ping_outstanding = 1;
    c->ping_sent_ns = ctx_now();
    struct timeval tv = tv_of(c->s->o.keepalive_timeout_ns);
    evtimer_add(c->ack_timer, &tv);
    rpc__h2_flush(c->h2);
}

static void ack_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct srv_conn *c = arg;
    srv_log("%s: keepalive ping not acknowledged, dropping the connection",
            c->peer);
    c->close_cause = RPC_CAUSE_KEEPALIVE;
    ctx_cancel_cause(c->ctx, RPC_CAUSE_KEEPALIVE);
    rpc__h2_close_now(c->h2, RPC__H2_TIMEOUT);
}

static void handshake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct srv_conn *c = arg;
    srv_log("%s: no HTTP/2 preface/SETTINGS in time, closing", c->peer);
    rpc__h2_close_now(c->h2, RPC__H2_TIMEOUT);
}

static void idle_cb(evutil_socket_t fd, short what, void *arg)
{
    struct srv_conn *c = arg;
    if (c->ncalls == 0)
        goaway_close(c, NGHTTP2_NO_ERROR, "max_idle");
}

/* ---- lifecycle ------------------------------------------------------------- */

/* Writes the server's first frames (SETTINGS, WINDOW_UPDATE) to bev
 * itself, telling the client MAX_CONCURRENT_STREAMS = max_streams while
 * the nghttp2 session was given no limit.  nghttp2 treats a client over
 * its acknowledged limit as a connection error (GOAWAY PROTOCOL_ERROR),
 * which would kill every call on the connection; RFC 9113 5.1.2 allows
 * refusing the extra streams alone, which on_begin_headers() does.
 * Returns 0 or -1. */
static int send_preface(nghttp2_session *sess, struct bufferevent *bev,
                        uint32_t max_streams)
{
    const uint8_t *data;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(sess, &data)) > 0) {
        uint8_t *buf = rpc__malloc((size_t)n);
        if (buf == NULL)
            return -1;
        memcpy(buf, data, (size_t)n);
        for (size_t off = 0; off + 9 <= (size_t)n;) {
            size_t len = (size_t)buf[off] << 16 | (size_t)buf[off + 1] << 8 |
                         buf[off + 2];
            if (buf[off + 3] == NGHTTP2_SETTINGS && !(buf[off + 4] & 1))
                for (size_t e = off + 9; e + 6 <= off + 9 + len && e + 6 <= (size_t)n;
                     e += 6)
                    if (buf[e] == 0 &&
                        buf[e + 1] == NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS) {
                        buf[e + 2] = (uint8_t)(max_streams >> 24);
                        buf[e + 3] = (uint8_t)(max_streams >> 16);
                        buf[e + 4] = (uint8_t)(max_streams >> 8);
                        buf[e + 5] = (uint8_t)max_streams;
                    }
            off += 9 + len;
        }
        int rc = bufferevent_write(bev, buf, (size_t)n);
        free(buf);
        if (rc != 0)
            return -1;
    }
    return n < 0 ? -1 : 0;
}

static void conn_closed(rpc__h2_t *h2, int reason, void *user_data)
{
    struct srv_conn *c = user_data;
    struct srv_loop *lp = c->lp;
    int cause = c->close_cause ? c->close_cause : RPC_CAUSE_PEER_GONE;
    if (reason == RPC__H2_PROTOCOL)
        srv_log("%s: %s, connection closed", c->peer,
                rpc__h2_close_reason_name(reason));
    if (!c->got_settings)
        lp->npending--;
    ctx_cancel_cause(c->ctx, cause);
    while (c->calls) {
        struct rpc_call *call = c->calls;
        unlink_call(c, call);
        srv_call_stream_closed(call, 0, cause);
    }
    head_clear(&c->head);
    /* A timer may be missing: not made (out of memory), or no idle timer
     * when RPC_SERVER_IDLE_TIMEOUT_MS is 0 (event_free() takes no NULL). */
    struct event *timers[] = {c->ka_timer, c->ack_timer, c->hs_timer,
                              c->idle_timer};
    for (size_t i = 0; i < sizeof timers / sizeof *timers; i++)
        if (timers[i] != NULL)
            event_free(timers[i]);
    if (c->prev)
        c->prev->next = c->next;
    else
        lp->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    lp->nconns--;
    rpc__h2_free(c->h2);
    ctx_release(c->ctx);
    srv_stat_add(c->s, RPC_STAT_CONNECTIONS, -1);
    free(c);
    if (lp->stopping && lp->nconns == 0)
        event_base_loopbreak(lp->base); /* the loop's last connection */
}

/* Makes room for one more connection in its handshake: past the loop's
 * share of the cap, the oldest connection still in its handshake is
 * closed, so silent connections cannot hold descriptors (and new clients)
 * hostage for the whole handshake timeout. */
static void evict_pending(struct srv_loop *lp)
{
    rpc_server_t *s = lp->s;
    int cap = s->o.max_pending_hs / s->nloops;
    if (cap < 1)
        cap = 1;
    if (lp->npending < cap)
        return;
    struct srv_conn *oldest = NULL;
    for (struct srv_conn *c = lp->conns; c; c = c->next)
        if (!c->got_settings && !c->closing)
            oldest = c; /* the list is newest first */
    if (oldest == NULL)
        return;
    srv_log("%s: handshake not done and %d others waiting, closing it",
            oldest->peer, lp->npending - 1);
    oldest->closing = 1;
    rpc__h2_close_now(oldest->h2, RPC__H2_TIMEOUT);
}

void srv_conn_accept(struct srv_loop *lp, int fd)
{
    rpc_server_t *s = lp->s;
    evict_pending(lp);
    struct srv_conn *c = rpc__calloc(1, sizeof *c);
    struct bufferevent *bev = NULL;
    nghttp2_session_callbacks *cbs = NULL;
    nghttp2_option *opt = NULL;
    nghttp2_session *sess = NULL;
    if (c == NULL)
        goto fail;
    c->lp = lp;
    c->s = s;
    rpc__stream_peer_name(fd, c->peer, sizeof c->peer);
    c->ctx = ctx_with_cancel(s->root);
    bev = c->ctx ? srv_transport_stream(s, lp->base, fd, &c->ctx) : NULL;
    if (c->ctx == NULL || bev == NULL)
        goto fail;
    if (nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opt) != 0)
        goto fail;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_option_set_max_reserved_remote_streams(opt, 0);
    /* Closed streams are kept only for the priority tree, which gRPC does
     * not use; nghttp2 would keep as many as the local stream limit, and
     * that limit is unlimited here (send_preface): without this, a busy
     * connection's stream map grows by every call it ever had. */
    nghttp2_option_set_no_closed_streams(opt, 1);
    /* nghttp2's own Rapid Reset bucket (1,000 burst, 33/s per connection)
     * ends a connection whose client cancels more than 33 calls a second
     * for long (GOAWAY, every call on it failing UNAVAILABLE): too strict
     * for a busy client that cancels or times out legitimately.  Resets
     * are budgeted server-wide instead (on_frame_recv); this only stops
     * a single connection's flood early. */
    nghttp2_option_set_stream_reset_rate_limit(opt, 20000, 2000);
    /* Inbound flow control is ours (see on_data_chunk). */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    int rv = nghttp2_session_server_new3(&sess, cbs, c, opt, rpc__h2_mem());
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    cbs = NULL;
    opt = NULL;
    if (rv != 0)
        goto fail;
    /* nghttp2 keeps no stream limit; send_preface() advertises ours. */
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
         0xffffffffu},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1024 * 1024},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, s->o.max_header_list},
    };
    nghttp2_submit_settings(sess, NGHTTP2_FLAG_NONE, iv, 3);
    nghttp2_session_set_local_window_size(sess, NGHTTP2_FLAG_NONE, 0,
                                          16 * 1024 * 1024);
    if (send_preface(sess, bev, s->o.max_streams) != 0)
        goto fail;
    c->sess = sess;
    c->h2 = rpc__h2_new(bev, sess, 0, conn_closed, c);
    if (c->h2 == NULL) {
        c->sess = NULL;
        goto fail;
    }
    rpc__h2_on_read(c->h2, conn_read_begins);
    sess = NULL;
    bev = NULL;
    c->ka_timer = event_new(lp->base, -1, EV_PERSIST, keepalive_cb, c);
    c->ack_timer = evtimer_new(lp->base, ack_timeout_cb, c);
    c->hs_timer = evtimer_new(lp->base, handshake_cb, c);
    c->idle_timer = evtimer_new(lp->base, idle_cb, c);
    if (!c->ka_timer || !c->ack_timer || !c->hs_timer || !c->idle_timer) {
        /* Close through the normal path, which frees the timers made. */
        lp->nconns++;
        lp->npending++;
        c->next = lp->conns;
        lp->conns = c;
        srv_stat_add(s, RPC_STAT_CONNECTIONS, 1);
        rpc__h2_close_now(c->h2, RPC__H2_IO_ERROR);
        return;
    }
    if (s->o.idle_ns == 0) {
        event_free(c->idle_timer);
        c->idle_timer = NULL;
    }
    c->last_recv_ns = ctx_now();
    c->settings_sent_ns = c->last_recv_ns;
    if (s->o.keepalive_ns > 0) {
        struct timeval tv = tv_of(s->o.keepalive_ns);
        evtimer_add(c->ka_timer, &tv);
    }
    if (s->o.handshake_ns > 0) {
        struct timeval tv = tv_of(s->o.handshake_ns);
        evtimer_add(c->hs_timer, &tv);
    }
    rpc__h2_set_timeouts(c->h2, 0, s->o.write_timeout_ns);
    c->next = lp->conns;
    if (lp->conns)
        lp->conns->prev = c;
    lp->conns = c;
    lp->nconns++;
    lp->npending++;
    srv_stat_add(s, RPC_STAT_CONNECTIONS, 1);
    srv_stat_add(s, RPC_STAT_CONNECTIONS_TOTAL, 1);
    rpc__h2_flush(c->h2);
    return;
fail:
    srv_log("out of memory accepting a connection");
    if (sess)
        nghttp2_session_del(sess);
    if (cbs)
        nghttp2_session_callbacks_del(cbs);
    if (opt)
        nghttp2_option_del(opt);
    if (bev)
        bufferevent_free(bev);
    else
        close(fd);
    if (c)
        ctx_release(c->ctx);
    free(c);
}

void srv_conn_flush(struct srv_conn *c)
{
    if (c && c->h2)
        rpc__h2_flush(c->h2);
}

void srv_conn_sweep(struct srv_loop *lp, int64_t now)
{
    for (struct srv_conn *c = lp->conns; c; c = c->next) {
        if (c->nover == 0)
            continue;
        for (struct rpc_call *call = c->calls; call; call = call->next)
            srv_call_sweep(call, now);
        rpc__h2_flush(c->h2);
    }
}

/* Graceful drain (gRFC A9, what grpc-go does): a first GOAWAY with the
 * maximum stream id announces the shutdown while streams the client has
 * already sent are still accepted; a PING marks the moment; its ACK
 * proves the client has seen the notice, and the second GOAWAY then
 * carries the real last stream id.  Calls in flight run on. */
static const uint8_t drain_ping[8] = {'r', 'p', 'c', 'd', 'r', 'a', 'i', 'n'};

void srv_conn_drain_all(struct srv_loop *lp)
{
    for (struct srv_conn *c = lp->conns; c; c = c->next) {
        if (c->closing || c->draining)
            continue;
        c->draining = 1;
        nghttp2_submit_shutdown_notice(c->sess);
        nghttp2_submit_ping(c->sess, NGHTTP2_FLAG_NONE, drain_ping);
        rpc__h2_flush(c->h2);
    }
}

/* The drain PING came back: send the final GOAWAY. */
static void drain_acked(struct srv_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    nghttp2_submit_goaway(c->sess, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(c->sess),
                          NGHTTP2_NO_ERROR, (const uint8_t *)"shutdown", 8);
}

void srv_conn_abort_all(struct srv_loop *lp)
{
    for (struct srv_conn *c = lp->conns; c; c = c->next) {
        for (struct rpc_call *call = c->calls; call; call = call->next)
            srv_call_end(call, RPC_STATUS_UNAVAILABLE,
                         rpc_cause_text(RPC_CAUSE_SHUTDOWN),
                         RPC_CAUSE_SHUTDOWN);
        if (!c->closing) {
            c->closing = 1;
            nghttp2_submit_goaway(c->sess, NGHTTP2_FLAG_NONE,
                                  nghttp2_session_get_last_proc_stream_id(c->sess),
                                  NGHTTP2_NO_ERROR, (const uint8_t *)"shutdown", 8);
        }
        c->close_cause = RPC_CAUSE_SHUTDOWN;
        rpc__h2_close_after_flush(c->h2);
    }
}

void srv_conn_close_all(struct srv_loop *lp)
{
    for (struct srv_conn *c = lp->conns; c; c = c->next) {
        c->close_cause = RPC_CAUSE_SHUTDOWN;
        rpc__h2_close_now(c->h2, RPC__H2_DONE);
    }
}
