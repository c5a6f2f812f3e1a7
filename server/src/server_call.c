/*
 * server_call.c -- one gRPC call on the server: its context tree, the
 * dispatch to its handler, the production of the response, and every way
 * the call can end.  The handler's side (rpc_call_*) is server_call_api.c.
 *
 * States of a call (loop's view):
 *
 *   HEADERS --valid--> OPEN --dispatch--> RUNNING --handler returns--> FINAL
 *      |                 |                   |                           |
 *      +--bad input------+---deadline/abort--+-------> FINAL (server)    |
 *                                                           |            |
 *             trailers (or Trailers-Only) sent: END_STREAM <-+------------+
 *             stream closed by nghttp2 (after END_STREAM, RST or
 *             connection loss): the stream's reference is dropped
 *
 * "final" (under call->mu) means the status is decided; from then on
 * everything the handler sends is dropped ("closed") and the loop only has
 * to deliver what was queued before and the trailers.  The first to decide
 * wins: the handler returning, the deadline timer, bad input, shutdown, or
 * the client going away.
 *
 * Cancellation: whatever ends a call early cancels its request context
 * with the cause (ctx_cancel_cause), then wakes a handler blocked in
 * rpc_call_recv/rpc_call_send through call->cv.  Sub-tasks see the
 * cancellation through their contexts.  A call that completes normally has
 * its request context cancelled with RPC_CAUSE_FINISHED when the stream
 * closes, so detached work never outlives the call by accident.
 *
 * Response production: handler threads append framed messages to outq
 * under call->mu and notify the loop; the loop attaches an nghttp2 data
 * provider whose read callback copies from outq and, once the queue is
 * empty and the status final, ends the data with NO_END_STREAM and submits
 * the trailers.  A blocked sender waits on call->cv while outq holds more
 * than the send buffer.
 */
#include "server_internal.h"

#include <stdlib.h>
#include <string.h>


static void consume(struct rpc_call *call, size_t more);

/* ---- lifetime ------------------------------------------------------------ */

struct rpc_call *srv_call_new(struct srv_conn *c, int32_t stream_id)
{
    struct rpc_call *call = calloc(1, sizeof *call);
    if (call == NULL)
        return NULL;
    atomic_init(&call->refs, 1); /* the stream's */
    call->s = c->s;
    call->lp = c->lp;
    call->conn = c;
    call->stream_id = stream_id;
    call->timeout_ns = -1;
    call->accept_mask = 1u << RPC__ENC_IDENTITY;
    call->arrival_ns = ctx_now();
    rpc__frame_decoder_init(&call->dec, c->s->o.max_recv);
    pthread_mutex_init(&call->mu, NULL);
    pthread_cond_init(&call->cv, NULL);
    srv_stat_add(c->s, RPC_STAT_CALLS_ACTIVE, 1);
    srv_stat_add(c->s, RPC_STAT_CALLS_TOTAL, 1);
    return call;
}

static void free_queues(struct rpc_call *call)
{
    while (call->inq) {
        struct in_msg *m = call->inq;
        call->inq = m->next;
        free(m);
    }
    call->inq_tail = NULL;
    call->inq_bytes = 0;
    while (call->outq) {
        struct out_chunk *o = call->outq;
        call->outq = o->next;
        free(o);
    }
    call->outq_tail = NULL;
    call->out_bytes = 0;
}

void srv_call_release(struct rpc_call *call)
{
    if (atomic_fetch_sub(&call->refs, 1) != 1)
        return;
    rpc_server_t *s = call->s;
    free_queues(call);
    if (call->path_owned)
        free(call->path);
    free(call->req);
    free(call->status_msg);
    rpc_metadata_free(call->md);
    rpc_metadata_free(call->rsp_headers);
    rpc_metadata_free(call->rsp_trailers);
    rpc__frame_decoder_reset(&call->dec);
    ctx_release(call->vctx);
    ctx_release(call->req_ctx);
    pthread_mutex_destroy(&call->mu);
    pthread_cond_destroy(&call->cv);
    free(call);
    srv_call_freed(s);
}

int srv_call_on_loop_thread(struct rpc_call *call)
{
    return pthread_equal(pthread_self(), call->lp->thread);
}

/* Counts, once per handler, the cause that ended its request before it
 * returned: called when the handler completes, so what is counted is
 * exactly what the handler could observe (ctx_cause of its context). */
static void count_cancel(struct rpc_call *call)
{
    static const rpc_server_stat_t by_cause[] = {
        [1] = RPC_STAT_CANCEL_CLIENT,   [2] = RPC_STAT_CANCEL_PEER_GONE,
        [3] = RPC_STAT_CANCEL_DEADLINE, [4] = RPC_STAT_CANCEL_SHUTDOWN,
        [5] = RPC_STAT_CANCEL_KEEPALIVE};
    if (call->req_ctx == NULL || ctx_err(call->req_ctx) == 0)
        return;
    int i = ctx_cause(call->req_ctx) - RPC_CAUSE_CLIENT_CANCEL + 1;
    if (i >= 1 && i <= 5)
        srv_stat_add(call->s, by_cause[i], 1);
}

/* ---- decisions ------------------------------------------------------------ */

/* Decides the final status (first decision wins).  Returns 1 if this call
 * decided it.  keep_partial: keep the part of a message already handed to
 * nghttp2 (a frame cannot be cut), drop the rest of the queue. */
static int decide(struct rpc_call *call, int status, const char *msg,
                  int drop_output)
{
    pthread_mutex_lock(&call->mu);
    if (call->final) {
        pthread_mutex_unlock(&call->mu);
        return 0;
    }
    call->final = 1;
    call->closed = 1;
    call->status = status;
    if (msg != NULL) {
        free(call->status_msg);
        call->status_msg = strdup(msg);
    }
    if (drop_output) {
        struct out_chunk *keep = NULL;
        if (call->outq && call->outq->off > 0) {
            keep = call->outq;
            call->outq = keep->next;
            keep->next = NULL;
        }
        while (call->outq) {
            struct out_chunk *o = call->outq;
            call->outq = o->next;
            free(o);
        }
        call->outq = call->outq_tail = keep;
        call->out_bytes = keep ? keep->len - keep->off : 0;
    }
    pthread_cond_broadcast(&call->cv);
    pthread_mutex_unlock(&call->mu);
    return 1;
}

void srv_call_abort(struct rpc_call *call, int status, const char *msg,
                    int cause)
{
    if (cause != 0 && call->req_ctx != NULL) {
        ctx_cancel_cause(call->req_ctx, cause);
    }
    if (!decide(call, status, msg, 1))
        return;
    if (call->conn == NULL)
        return;
    if (status != RPC_STATUS_DEADLINE_EXCEEDED &&
        status != RPC_STATUS_UNAVAILABLE && status != RPC_STATUS_UNIMPLEMENTED)
        srv_stat_add(call->s, RPC_STAT_BAD_REQUESTS, 1);
    srv_call_pump(call);
}

/* The handler's outcome: marks the handler done and decides the status
 * (unless the call already ended), in one critical section. */
void srv_call_complete(struct rpc_call *call, int status)
{
    count_cancel(call);
    if (status < 0 || status > 16)
        status = RPC_STATUS_UNKNOWN;
    pthread_mutex_lock(&call->mu);
    call->handler_done = 1;
    int unary_out = call->m->kind == RPC_UNARY ||
                    call->m->kind == RPC_CLIENT_STREAMING;
    if (!call->final) {
        call->final = 1;
        call->closed = 1;
        if (status == RPC_STATUS_OK && unary_out && call->sent_msgs == 0) {
            call->status = RPC_STATUS_INTERNAL;
            free(call->status_msg);
            call->status_msg = strdup("handler returned no response");
        } else {
            call->status = status;
        }
        pthread_cond_broadcast(&call->cv);
    }
    pthread_mutex_unlock(&call->mu);
}

/* ---- response production (loop thread) ---------------------------------- */

/* nv builder: a small array of name/value pairs plus the strings it
 * owns. */
struct nvb {
    nghttp2_nv nv[64];
    size_t n;
    char *owned[64];
    size_t nowned;
};

static void nvb_add(struct nvb *b, const char *name, const char *value,
                    size_t vlen)
{
    if (b->n == sizeof b->nv / sizeof *b->nv)
        return;
    b->nv[b->n++] = (nghttp2_nv){(uint8_t *)name, (uint8_t *)value,
                                 strlen(name), vlen, NGHTTP2_NV_FLAG_NONE};
}

static void nvb_own(struct nvb *b, const char *name, char *value)
{
    if (value == NULL || b->nowned == sizeof b->owned / sizeof *b->owned) {
        free(value);
        return;
    }
    b->owned[b->nowned++] = value;
    nvb_add(b, name, value, strlen(value));
}

static void nvb_metadata(struct nvb *b, const rpc_metadata_t *md)
{
    const char *k;
    const void *v;
    size_t len;
    for (size_t i = 0; rpc_metadata_at(md, i, &k, &v, &len); i++) {
        if (rpc_metadata_key_is_binary(k)) {
            char *enc = malloc(rpc__base64_encoded_len(len) + 1);
            if (enc)
                rpc__base64_encode(v, len, enc);
            nvb_own(b, k, enc);
        } else {
            nvb_add(b, k, v, len);
        }
    }
}

static void nvb_status(struct nvb *b, int status, const char *msg,
                       char sbuf[8])
{
    int n = 0;
    if (status >= 10)
        sbuf[n++] = (char)('0' + status / 10);
    sbuf[n++] = (char)('0' + status % 10);
    sbuf[n] = '\0';
    nvb_add(b, "grpc-status", sbuf, (size_t)n);
    if (msg && *msg) {
        size_t len = strlen(msg);
        char *enc = malloc(rpc__percent_encoded_len(msg, len) + 1);
        if (enc)
            rpc__percent_encode(msg, len, enc);
        nvb_own(b, "grpc-message", enc);
    }
}

static void nvb_free(struct nvb *b)
{
    for (size_t i = 0; i < b->nowned; i++)
        free(b->owned[i]);
}

static void count_status(struct rpc_call *call, int status)
{
    srv_stat_add(call->s, status == 0 ? RPC_STAT_CALLS_OK : RPC_STAT_CALLS_FAILED,
                 1);
}

static ssize_t read_cb(nghttp2_session *sess, int32_t stream_id, uint8_t *buf,
                       size_t length, uint32_t *flags,
                       nghttp2_data_source *source, void *user_data)
{
    struct rpc_call *call = source->ptr;
    size_t n = 0;
    pthread_mutex_lock(&call->mu);
    while (call->outq && n < length) {
        struct out_chunk *o = call->outq;
        size_t take = o->len - o->off;
        if (take > length - n)
            take = length - n;
        memcpy(buf + n, o->data + o->off, take);
        o->off += take;
        n += take;
        if (o->off == o->len) {
            call->outq = o->next;
            if (call->outq == NULL)
                call->outq_tail = NULL;
            free(o);
        }
    }
    size_t before = call->out_bytes;
    call->out_bytes -= n;
    if (before > call->s->o.send_buffer / 2 &&
        call->out_bytes <= call->s->o.send_buffer / 2)
        pthread_cond_broadcast(&call->cv);
    int end = call->outq == NULL && call->final;
    int status = call->status;
    pthread_mutex_unlock(&call->mu);
    if (end) {
        /* final is set: status, message and trailers no longer change. */
        struct nvb b = {.n = 0};
        char sbuf[8];
        nvb_status(&b, status, call->status_msg, sbuf);
        nvb_metadata(&b, call->rsp_trailers);
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_submit_trailer(sess, stream_id, b.nv, b.n);
        nvb_free(&b);
        call->provider = 0;
        count_status(call, status);
        return (ssize_t)n;
    }
    if (n == 0) {
        call->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

void srv_call_pump(struct rpc_call *call)
{
    struct srv_conn *c = call->conn;
    if (c == NULL)
        return;
    if (call->unconsumed > 0)
        consume(call, 0); /* the handler took messages: reopen the window */
    if (call->ended)
        return;
    pthread_mutex_lock(&call->mu);
    int final = call->final;
    int has_out = call->outq != NULL;
    int status = call->status;
    rpc_metadata_t *hdrs = NULL;
    int send_enc = call->send_enc;
    if (!call->headers_sent && (has_out || final)) {
        hdrs = call->rsp_headers;
        call->hdrs_frozen = 1;
    }
    pthread_mutex_unlock(&call->mu);

    if (!call->headers_sent) {
        if (!has_out && !final)
            return;
        struct nvb b = {.n = 0};
        char st[8], sbuf[8];
        if (call->http_status)
            snprintf(st, sizeof st, "%d", call->http_status);
        else
            memcpy(st, "200", 4);
        nvb_add(&b, ":status", st, strlen(st));
        nvb_add(&b, "content-type", "application/grpc", 16);
        nvb_add(&b, "grpc-accept-encoding", RPC__ACCEPT_ENCODING,
                sizeof RPC__ACCEPT_ENCODING - 1);
        if (send_enc)
            nvb_add(&b, "grpc-encoding", rpc__encoding_name(send_enc),
                    strlen(rpc__encoding_name(send_enc)));
        nvb_metadata(&b, hdrs);
        call->headers_sent = 1;
        if (!has_out) { /* Trailers-Only */
            nvb_status(&b, status, call->status_msg, sbuf);
            nvb_metadata(&b, call->rsp_trailers);
            nghttp2_submit_response(c->sess, call->stream_id, b.nv, b.n, NULL);
            call->ended = 1;
            count_status(call, status);
        } else {
            nghttp2_data_provider dp = {.source.ptr = call,
                                        .read_callback = read_cb};
            call->provider = 1;
            nghttp2_submit_response(c->sess, call->stream_id, b.nv, b.n, &dp);
        }
        nvb_free(&b);
        return;
    }
    if (call->provider && call->deferred) {
        call->deferred = 0;
        nghttp2_session_resume_data(c->sess, call->stream_id);
    }
}

/* ---- dispatch ------------------------------------------------------------- */


/* Decodes a received message (decompressing it first when its flag says
 * so).  Returns 0, RPC_ERR_MALFORMED or RPC_ERR_TOO_LARGE. */
int srv_call_decode(struct rpc_call *call, int flag, const uint8_t *data,
                    size_t len, ProtobufCMessage **out)
{
    uint8_t *plain = NULL;
    size_t plen = len;
    call->last_in_compressed = flag;
    if (flag) {
        int rc = rpc__decompress(call->req_enc, data, len, call->s->o.max_recv,
                                 &plain, &plen);
        if (rc != 0) {
            srv_log("%s from %s: %s compressed message: %s", call->path,
                    rpc_call_peer(call), rpc__encoding_name(call->req_enc),
                    rpc_strerror(rc));
            return rc == RPC_ERR_TOO_LARGE ? rc : RPC_ERR_MALFORMED;
        }
        data = plain;
    }
    *out = protobuf_c_message_unpack(call->m->desc->input, NULL, plen, data);
    free(plain);
    if (*out == NULL) {
        srv_log("%s from %s: undecodable request message", call->path,
                rpc_call_peer(call));
        return RPC_ERR_MALFORMED;
    }
    return 0;
}

static int decode_status(int rc, const char **msg)
{
    *msg = rc == RPC_ERR_TOO_LARGE ? "decompressed message larger than max"
                                   : "could not decode request";
    return rc == RPC_ERR_TOO_LARGE ? RPC_STATUS_RESOURCE_EXHAUSTED
                                   : RPC_STATUS_INTERNAL;
}

static int run_handler(ctx_t *ctx, void *arg)
{
    struct rpc_call *call = arg;
    const struct srv_method *m = call->m;
    ProtobufCMessage *req = NULL;
    if (!srv_method_streaming_in(m)) {
        int rc = srv_call_decode(call, call->req_flag, call->req, call->req_len, &req);
        if (rc != 0) {
            const char *msg;
            int st = decode_status(rc, &msg);
            srv_stat_add(call->s, RPC_STAT_BAD_REQUESTS, 1);
            pthread_mutex_lock(&call->mu);
            call->handler_done = 1;
            pthread_mutex_unlock(&call->mu);
            decide(call, st, msg, 1);
            srv_loop_notify(call);
            return 0;
        }
    }
    int status = m->fn(call->vctx, call, req, m->user_data);
    if (req)
        protobuf_c_message_free_unpacked(req, NULL);
    srv_call_complete(call, status);
    srv_loop_notify(call);
    return 0;
}

static void handler_done(int err, bool ran, void *arg, void *user_data)
{
    struct rpc_call *call = arg;
    if (!ran) {
        pthread_mutex_lock(&call->mu);
        call->handler_done = 1;
        pthread_mutex_unlock(&call->mu);
        /* Skipped: the request was done before a worker picked it up. */
        int cause = ctx_cause(call->req_ctx);
        decide(call, rpc_cause_status(cause), rpc_cause_text(cause), 1);
        srv_loop_notify(call);
    }
    srv_call_release(call);
}

static void run_nonblocking(struct rpc_call *call)
{
    const struct srv_method *m = call->m;
    ProtobufCMessage *req = NULL;
    int rc = srv_call_decode(call, call->req_flag, call->req, call->req_len, &req);
    if (rc != 0) {
        const char *msg;
        int st = decode_status(rc, &msg);
        srv_call_abort(call, st, msg, 0);
        return;
    }
    call->nb_req = req;
    atomic_fetch_add(&call->refs, 1); /* the handler's, until complete */
    call->on_loop_handler = 1; /* sends need no wake-up: we pump below */
    int status = m->fn(call->vctx, call, req, m->user_data);
    call->on_loop_handler = 0;
    if (status != RPC_PENDING) {
        srv_call_complete(call, status);
        call->nb_req = NULL;
        protobuf_c_message_free_unpacked(req, NULL);
        srv_call_pump(call);
        srv_call_release(call);
    } else {
        srv_call_pump(call); /* what it sent before returning RPC_PENDING */
    }
}

static void dispatch(struct rpc_call *call)
{
    call->dispatched = 1;
    if (call->m->style == RPC_NONBLOCKING) {
        run_nonblocking(call);
        return;
    }
    atomic_fetch_add(&call->refs, 1); /* the handler's */
    int rc = ctx_pool_submit_cb(call->s->pool, call->vctx, run_handler, call,
                                handler_done, NULL);
    if (rc != 0) {
        atomic_fetch_sub(&call->refs, 1);
        srv_log("%s from %s: worker pool full, call refused", call->path,
                rpc_call_peer(call));
        call->dispatched = 0;
        srv_call_abort(call, RPC_STATUS_RESOURCE_EXHAUSTED,
                       "server overloaded: worker queue full", 0);
    }
}

/* Arms deadline_ev for what is left until call->deadline_ns, rounded up to
 * the microsecond.  libevent adds the timeout to the time it cached when
 * the loop iteration began, which lags ctx_now() by however long this
 * iteration has run so far; refreshing the cache first keeps the timer
 * from firing that much early. */
static void arm_deadline(struct rpc_call *call, int64_t left)
{
    int64_t us = (left + 999) / 1000;
    struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
    event_base_update_cache_time(call->lp->base);
    evtimer_add(call->deadline_ev, &tv);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rpc_call *call = arg;
    struct srv_conn *c = call->conn;
    int64_t left = call->deadline_ns - ctx_now();
    if (left > 0) { /* never before the deadline the client asked for */
        arm_deadline(call, left);
        return;
    }
    srv_call_abort(call, RPC_STATUS_DEADLINE_EXCEEDED, "Deadline Exceeded",
                   RPC_CAUSE_DEADLINE);
    if (c)
        srv_conn_flush(c);
}

void srv_call_headers_done(struct rpc_call *call)
{
    struct srv_conn *c = call->conn;
    int64_t deadline = 0;
    if (call->timeout_ns >= 0) {
        deadline = call->timeout_ns > INT64_MAX - call->arrival_ns
                       ? INT64_MAX
                       : call->arrival_ns + call->timeout_ns;
        call->req_ctx = ctx_with_deadline_cause(c->ctx, deadline,
                                                RPC_CAUSE_DEADLINE);
    } else {
        call->req_ctx = ctx_with_cancel(c->ctx);
    }
    if (call->req_ctx != NULL)
        call->vctx = rpc__ctx_with_request_info(call->req_ctx, call->md,
                                                call->path, c->peer);
    if (call->vctx == NULL) {
        srv_call_abort(call, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", 0);
        return;
    }
    call->md = NULL; /* owned by the value node now */
    if (call->timeout_ns >= 0) {
        int64_t left = deadline - ctx_now();
        if (left <= 0) {
            srv_call_abort(call, RPC_STATUS_DEADLINE_EXCEEDED,
                           "Deadline Exceeded", RPC_CAUSE_DEADLINE);
            return;
        }
        if (deadline != INT64_MAX && left < INT64_C(1) << 60) {
            call->deadline_ev = evtimer_new(call->lp->base, deadline_cb, call);
            if (call->deadline_ev == NULL) {
                srv_call_abort(call, RPC_STATUS_RESOURCE_EXHAUSTED,
                               "out of memory", 0);
                return;
            }
            call->deadline_ns = deadline;
            arm_deadline(call, left);
        }
    }
    if (srv_method_streaming_in(call->m))
        dispatch(call);
}

static int on_message(int flag, const uint8_t *data, size_t len, void *ud)
{
    struct rpc_call *call = ud;
    if (flag && call->req_enc == RPC__ENC_IDENTITY)
        return RPC_ERR_UNSUPPORTED;
    if (!srv_method_streaming_in(call->m)) {
        if (++call->nreq > 1)
            return RPC_ERR_STATE;
        call->req_flag = flag;
        call->req = malloc(len ? len : 1);
        if (call->req == NULL)
            return RPC_ERR_NOMEM;
        memcpy(call->req, data, len);
        call->req_len = len;
        return 0;
    }
    struct in_msg *m = malloc(sizeof *m + len);
    if (m == NULL)
        return RPC_ERR_NOMEM;
    m->next = NULL;
    m->len = len;
    m->flag = flag;
    memcpy(m->data, data, len);
    pthread_mutex_lock(&call->mu);
    if (call->closed) {
        free(m);
    } else {
        if (call->inq_tail)
            call->inq_tail->next = m;
        else
            call->inq = m;
        call->inq_tail = m;
        call->inq_bytes += len + RPC__FRAME_HDR;
        pthread_cond_broadcast(&call->cv);
    }
    pthread_mutex_unlock(&call->mu);
    return 0;
}

/* Gives the stream's window back for bytes the handler has taken (or
 * that are not held for it), unless its queue is above INQ_HIGH. */
static void consume(struct rpc_call *call, size_t more)
{
    struct srv_conn *c = call->conn;
    call->unconsumed += more;
    if (c == NULL || call->unconsumed == 0)
        return;
    size_t held = 0;
    if (call->m && srv_method_streaming_in(call->m)) {
        pthread_mutex_lock(&call->mu);
        held = call->final ? 0 : call->inq_bytes; /* nobody reads after */
        pthread_mutex_unlock(&call->mu);
    }
    if (held > INQ_HIGH)
        return;
    nghttp2_session_consume_stream(c->sess, call->stream_id, call->unconsumed);
    call->unconsumed = 0;
}

void srv_call_data(struct rpc_call *call, const uint8_t *data, size_t len)
{
    if (call->vctx == NULL || call->ended) {
        consume(call, len); /* rejected: nghttp2 still delivers data */
        return;
    }
    pthread_mutex_lock(&call->mu);
    int final = call->final;
    pthread_mutex_unlock(&call->mu);
    if (final) {
        consume(call, len);
        return;
    }
    int rc = rpc__frame_feed(&call->dec, data, len, on_message, call);
    consume(call, len);
    if (rc == 0)
        return;
    char msg[128];
    int status = RPC_STATUS_INTERNAL;
    switch (rc) {
    case RPC_ERR_TOO_LARGE:
        status = RPC_STATUS_RESOURCE_EXHAUSTED;
        snprintf(msg, sizeof msg,
                 "received message larger than max (%u vs. %u)",
                 (unsigned)(call->dec.hdr[1] << 24 | call->dec.hdr[2] << 16 |
                            call->dec.hdr[3] << 8 | call->dec.hdr[4]),
                 (unsigned)call->s->o.max_recv);
        break;
    case RPC_ERR_UNSUPPORTED:
        snprintf(msg, sizeof msg,
                 "compressed message without an agreed grpc-encoding");
        break;
    case RPC_ERR_STATE:
        status = RPC_STATUS_UNIMPLEMENTED;
        snprintf(msg, sizeof msg, "more than one request message for a "
                                  "unary or server-streaming method");
        break;
    case RPC_ERR_NOMEM:
        status = RPC_STATUS_RESOURCE_EXHAUSTED;
        snprintf(msg, sizeof msg, "out of memory");
        break;
    default:
        snprintf(msg, sizeof msg, "malformed message framing");
    }
    srv_log("%s from %s: %s", call->path, call->conn->peer, msg);
    srv_call_abort(call, status, msg, RPC_CAUSE_PROTOCOL);
}

void srv_call_remote_close(struct rpc_call *call)
{
    call->remote_closed = 1;
    if (call->vctx == NULL || call->ended)
        return;
    pthread_mutex_lock(&call->mu);
    int final = call->final;
    if (!final && srv_method_streaming_in(call->m) &&
        rpc__frame_idle(&call->dec)) {
        call->in_eof = 1;
        pthread_cond_broadcast(&call->cv);
    }
    pthread_mutex_unlock(&call->mu);
    if (final)
        return;
    if (!rpc__frame_idle(&call->dec)) {
        srv_log("%s from %s: stream ended inside a message", call->path,
                call->conn->peer);
        srv_call_abort(call, RPC_STATUS_INTERNAL,
                       "truncated message at end of stream", RPC_CAUSE_PROTOCOL);
        return;
    }
    if (srv_method_streaming_in(call->m))
        return;
    if (call->nreq != 1) {
        srv_log("%s from %s: no request message", call->path, call->conn->peer);
        srv_call_abort(call, RPC_STATUS_UNIMPLEMENTED,
                       "expected exactly one request message, got none",
                       RPC_CAUSE_PROTOCOL);
        return;
    }
    dispatch(call);
}

void srv_call_stream_closed(struct rpc_call *call, uint32_t error_code,
                            int conn_cause)
{
    struct srv_conn *c = call->conn;
    int cause = call->ended_sent ? RPC_CAUSE_FINISHED
                : conn_cause   ? conn_cause
                               : RPC_CAUSE_CLIENT_CANCEL;
    if (cause == RPC_CAUSE_CLIENT_CANCEL && call->timeout_ns >= 0) {
        /* A client cancels at its own deadline, which is never later than
         * ours: ours is our arrival time plus the time the client had left
         * when it sent (rounded up), so ours trails the client's by the
         * request's transit time, and the client's RST_STREAM at its
         * deadline lands before our timer by up to that much.  An RST this
         * close to our deadline is the deadline, not a user's cancel.  The
         * window allows for transit and queueing on a loaded host (a demo
         * hop under ASan missed a 4 ms window): 5 ms + 5% of the timeout,
         * the percentage capped at 50 ms. */
        int64_t left = call->arrival_ns + call->timeout_ns - ctx_now();
        int64_t pct = call->timeout_ns / 20;
        if (left <= 5 * CTX_MS + (pct < 50 * CTX_MS ? pct : 50 * CTX_MS))
            cause = RPC_CAUSE_DEADLINE;
    }
    if (call->req_ctx != NULL) {
        if (cause != RPC_CAUSE_FINISHED)
            ctx_cancel_cause(call->req_ctx, cause);
    }
    int eff = call->req_ctx ? ctx_cause(call->req_ctx) : cause;
    decide(call, rpc_cause_status(eff), rpc_cause_text(eff), 1);
    pthread_mutex_lock(&call->mu);
    free_queues(call);
    pthread_cond_broadcast(&call->cv);
    pthread_mutex_unlock(&call->mu);
    if (call->deadline_ev) {
        event_free(call->deadline_ev);
        call->deadline_ev = NULL;
    }
    if (c) {
        if (call->prev)
            call->prev->next = call->next;
        else
            c->calls = call->next;
        if (call->next)
            call->next->prev = call->prev;
        c->ncalls--;
        nghttp2_session_set_stream_user_data(c->sess, call->stream_id, NULL);
    }
    call->conn = NULL;
    srv_call_release(call);
}

