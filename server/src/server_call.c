/*
 * server_call.c -- one gRPC call on the server: its state machine, its
 * context tree, the dispatch to its handler, the production of the
 * response, and every way the call can end.  The handler's side
 * (rpc_call_*) is server_call_api.c.
 *
 * The forward path of a request (each arrow a call into the next file or
 * function, never back):
 *
 *   server_conn.c  HEADERS block --parse--> struct srv_head --valid?--+
 *                                     (bad: conn answers Trailers-Only) |
 *   server_call.c  srv_call_new: request ctx (deadline = arrival +      |
 *                  grpc-timeout) + value ctx + watcher on the request <-+
 *                  ctx; streaming-request methods dispatch now
 *                  DATA --> srv_call_data --> frames --> request / inq
 *                  END_STREAM --> srv_call_remote_close --> dispatch
 *                  dispatch --> pool worker (blocking) or loop (non-blocking)
 *                  handler --> rpc_call_send --> outq --> srv_loop_notify
 *                  handler returns --> srv_call_complete: request ctx
 *                      cancelled (FINISHED), status decided, loop told
 *   server_loop.c  mailbox --> srv_call_pump: response HEADERS, DATA from
 *                  outq (read_cb), then trailers with grpc-status: ENDED
 *   server_conn.c  nghttp2 closes the stream --> unlink -->
 *                  srv_call_stream_closed: counted, CLOSED
 *
 * The cancel path -- one door.  Whatever ends a request early ends its
 * request context, and the status is decided from ctx_cause() and nothing
 * else.  The ends the loop itself causes (an RST, a closed connection,
 * shutdown, bad input) end the context and decide on the loop at once.
 * The one end that comes from elsewhere, the request context's own
 * deadline, reaches the loop the way the client learns of one: a watcher
 * (a ctx_after_func, made only for calls with a deadline) posts the call
 * to the loop's mailbox, and srv_call_pump() decides from the context;
 * a handler the pool skips because its context had ended is posted the
 * same way:
 *
 *   deadline        libctx's own timer        CTX_DEADLINE_EXCEEDED + DEADLINE
 *   RST_STREAM      loop: srv_call_stream_closed   CTX_CANCELED + CLIENT_CANCEL
 *                   (within rst_is_deadline()'s window of the deadline:
 *                    ctx_expire_cause, CTX_DEADLINE_EXCEEDED + DEADLINE)
 *   peer gone, keepalive   connection ctx     CTX_CANCELED + PEER_GONE/KEEPALIVE
 *   shutdown        server root               CTX_CANCELED + SHUTDOWN
 *   bad input       loop: srv_call_end        CTX_CANCELED + PROTOCOL
 *   completion      srv_call_complete         CTX_CANCELED + FINISHED
 *
 * There is no second timer: the request context's deadline is the only
 * one.  Sub-tasks see every one of these through their own contexts; the
 * handler's blocking waits (rpc_call_send/recv) are woken through call->cv
 * when the state reaches FINAL.
 *
 * Response production: handler threads append framed messages to outq
 * under call->mu and notify the loop; the loop attaches an nghttp2 data
 * provider whose read callback copies from outq and, once the queue is
 * empty and the status decided, ends the data with NO_END_STREAM and
 * submits the trailers.  A blocked sender waits on call->cv while outq
 * holds more than the send buffer.
 */
#include "server_internal.h"

#include "rpc_nv.h"

#include <stdlib.h>
#include <string.h>

static void consume(struct rpc_call *call, size_t more);
static void dispatch(struct rpc_call *call);
static void track_over_locked(struct rpc_call *call);

/* ---- state ------------------------------------------------------------- */

static enum srv_call_state state_of(struct rpc_call *call)
{
    return (enum srv_call_state)atomic_load_explicit(&call->state,
                                                     memory_order_acquire);
}

/* Moves the call forward to `to` (call->mu held).  Returns 1 if it moved:
 * states never go back, and a later state may be reached directly. */
static int advance_locked(struct rpc_call *call, enum srv_call_state to)
{
    if (state_of(call) >= to)
        return 0;
    atomic_store_explicit(&call->state, (int)to, memory_order_release);
    pthread_cond_broadcast(&call->cv);
    return 1;
}

static void advance(struct rpc_call *call, enum srv_call_state to)
{
    pthread_mutex_lock(&call->mu);
    advance_locked(call, to);
    pthread_mutex_unlock(&call->mu);
}

int srv_call_decide_locked(struct rpc_call *call, int status, const char *msg,
                           int drop_output)
{
    if (!advance_locked(call, SRV_CALL_FINAL))
        return 0;
    call->status = status;
    if (msg != NULL) {
        free(call->status_msg);
        call->status_msg = rpc__strdup(msg);
    }
    if (drop_output) {
        /* A message nghttp2 has started sending cannot be cut. */
        struct out_chunk *keep = NULL;
        if (call->outq && call->outq->off > 0) {
            keep = call->outq;
            call->outq = keep->next;
            keep->next = NULL;
        }
        while (call->outq) {
            struct out_chunk *o = call->outq;
            call->outq = o->next;
            rpc__free(o);
        }
        call->outq = call->outq_tail = keep;
        call->out_bytes = keep ? keep->len - keep->off : 0;
    }
    return 1;
}

/* The grpc-message for a request that ended by `cause`. */
static const char *cause_message(int cause)
{
    return cause == RPC_CAUSE_DEADLINE ? "Deadline Exceeded"
                                       : rpc_cause_text(cause);
}

/* Decides the status from how the request context ended (it has). */
static void decide_from_ctx(struct rpc_call *call)
{
    int cause = ctx_cause(call->req_ctx);
    pthread_mutex_lock(&call->mu);
    srv_call_decide_locked(call, rpc_cause_status(cause), cause_message(cause),
                           1);
    pthread_mutex_unlock(&call->mu);
}

/* ---- lifetime ------------------------------------------------------------ */

/* The watcher: the request context has ended, for whatever reason.  Runs
 * on a libctx AfterFunc thread; tells the loop and drops its reference. */
static void req_done(void *arg)
{
    struct rpc_call *call = arg;
    srv_loop_notify(call);
    srv_call_release(call);
}

/* Stops the watcher (exactly once, whoever comes first); when that kept
 * it from firing, its reference is dropped here. */
static void stop_watch(struct rpc_call *call)
{
    ctx_after_t *a = atomic_exchange(&call->watch, NULL);
    if (a != NULL && ctx_after_stop(a))
        srv_call_release(call);
}

struct rpc_call *srv_call_new(struct srv_conn *c, struct srv_head *h)
{
    struct rpc_call *call = rpc__calloc(1, sizeof *call);
    if (call == NULL)
        return NULL;
    atomic_init(&call->refs, 1); /* the stream's */
    call->s = c->s;
    call->lp = c->lp;
    call->conn = c;
    call->stream_id = h->stream_id;
    call->m = h->m;
    call->path = h->m->path;
    call->arrival_ns = h->arrival_ns;
    call->timeout_ns = h->timeout_ns;
    call->timeout_unit_ns = h->timeout_unit_ns;
    call->req_enc = h->enc;
    call->accept_mask = h->accept_mask;
    rpc__frame_decoder_init(&call->dec, c->s->o.max_recv);
    pthread_mutex_init(&call->mu, NULL);
    pthread_cond_init(&call->cv, NULL);
    if (h->timeout_ns >= 0) {
        int64_t deadline = h->timeout_ns > INT64_MAX - h->arrival_ns
                               ? INT64_MAX
                               : h->arrival_ns + h->timeout_ns;
        call->req_ctx = ctx_with_deadline_cause(c->ctx, deadline,
                                                RPC_CAUSE_DEADLINE);
    } else {
        call->req_ctx = ctx_with_cancel(c->ctx);
    }
    if (call->req_ctx != NULL)
        call->vctx = rpc__ctx_with_request_info(call->req_ctx, h->md,
                                                call->path, c->peer);
    if (call->vctx != NULL)
        h->md = NULL; /* owned by the value node now */
    ctx_after_t *w = NULL;
    if (call->vctx != NULL && h->timeout_ns >= 0) {
        atomic_init(&call->refs, 2); /* + the watcher's */
        w = ctx_after_func(call->req_ctx, req_done, call);
    }
    if (call->vctx == NULL || (h->timeout_ns >= 0 && w == NULL)) {
        ctx_release(call->vctx);
        ctx_release(call->req_ctx);
        rpc__frame_decoder_reset(&call->dec);
        pthread_mutex_destroy(&call->mu);
        pthread_cond_destroy(&call->cv);
        rpc__free(call);
        return NULL;
    }
    atomic_store(&call->watch, w);
    srv_stat_add(c->s, RPC_STAT_CALLS_ACTIVE, 1);
    srv_obs_call_new(call, c); /* observe */
    if (srv_method_streaming_in(call->m))
        dispatch(call);
    return call;
}

static void free_queues_locked(struct rpc_call *call)
{
    while (call->inq) {
        struct in_msg *m = call->inq;
        call->inq = m->next;
        rpc__free(m);
    }
    call->inq_tail = NULL;
    call->inq_bytes = 0;
    while (call->outq) {
        struct out_chunk *o = call->outq;
        call->outq = o->next;
        rpc__free(o);
    }
    call->outq_tail = NULL;
    call->out_bytes = 0;
}

void srv_call_release(struct rpc_call *call)
{
    if (atomic_fetch_sub(&call->refs, 1) != 1)
        return;
    rpc_server_t *s = call->s;
    srv_obs_call_freed(call); /* observe */
    /* A watcher that fired has dropped its reference but its handle is
     * still ours to free. */
    ctx_after_stop(atomic_exchange(&call->watch, NULL));
    free_queues_locked(call);
    rpc__free(call->req);
    free(call->status_msg);
    rpc_metadata_free(call->rsp_headers);
    rpc_metadata_free(call->rsp_trailers);
    rpc__frame_decoder_reset(&call->dec);
    ctx_release(call->vctx);
    ctx_release(call->req_ctx);
    pthread_mutex_destroy(&call->mu);
    pthread_cond_destroy(&call->cv);
    rpc__free(call);
    srv_call_freed(s);
}

int srv_call_on_loop_thread(struct rpc_call *call)
{
    return pthread_equal(pthread_self(), call->lp->thread);
}

/* ---- ends ------------------------------------------------------------------ */

void srv_call_complete(struct rpc_call *call, int status)
{
    if (status < 0 || status > 16)
        status = RPC_STATUS_UNKNOWN;
    /* The loop hears of this through the caller's notify, not through the
     * watcher: stop it first so completion costs no extra wake-up. */
    stop_watch(call);
    ctx_cancel_cause(call->req_ctx, RPC_CAUSE_FINISHED);
    int cause = ctx_cause(call->req_ctx);
    pthread_mutex_lock(&call->mu);
    if (cause != RPC_CAUSE_FINISHED) {
        /* The request had ended before the handler returned: that end is
         * the answer (and what ctx_err told the handler). */
        srv_call_decide_locked(call, rpc_cause_status(cause),
                               cause_message(cause), 1);
    } else if (status == RPC_STATUS_OK && srv_method_unary_out(call->m) &&
               call->sent_msgs == 0) {
        srv_call_decide_locked(call, RPC_STATUS_INTERNAL,
                               "handler returned no response", 1);
    } else {
        srv_call_decide_locked(call, status, NULL, 0);
    }
    pthread_mutex_unlock(&call->mu);
}

void srv_call_end(struct rpc_call *call, int status, const char *msg,
                  int cause)
{
    ctx_cancel_cause(call->req_ctx, cause ? cause : RPC_CAUSE_FINISHED);
    pthread_mutex_lock(&call->mu);
    srv_call_decide_locked(call, status, msg, 1);
    pthread_mutex_unlock(&call->mu);
    srv_call_pump(call);
}

/* True when an RST_STREAM arriving now is the client's deadline rather
 * than a cancel.  The client's deadline is the time it computed the
 * grpc-timeout it sent plus that timeout, which it rounds up (grpc C-core
 * sends "51m" for a 50 ms deadline: up to two units of slack).  Ours is our
 * arrival time plus that timeout, later than the client's by the time from
 * its computing the timeout to our loop waking for the request (its own
 * queueing, the request's transit, our loop being descheduled); its RST,
 * sent at its deadline, reaches us later than that by the RST's transit
 * time.  So the RST of a client's deadline arrives at about our deadline,
 * early by the difference, which the connection's measured round trip
 * bounds on an idle path and scheduling delays widen on a busy host.  The
 * window is
 *
 *     2 units + max(4 x RTT, 5 ms),  capped at min(20 ms, timeout / 5)
 *
 * before our deadline (and anything after it).  A real cancel inside the
 * window is reported as the deadline; one outside it never is
 * (bench/rst_window.py measures both). */
static int rst_is_deadline(struct rpc_call *call, int64_t now)
{
    if (call->timeout_ns < 0)
        return 0;
    int64_t left = call->arrival_ns + call->timeout_ns - now;
    if (left <= 0)
        return 1;
    int64_t rtt = call->conn ? call->conn->rtt_ns : 0;
    int64_t w = 4 * rtt > 5 * CTX_MS ? 4 * rtt : 5 * CTX_MS;
    w += 2 * call->timeout_unit_ns;
    int64_t cap = call->timeout_ns / 5 < 20 * CTX_MS ? call->timeout_ns / 5
                                                     : 20 * CTX_MS;
    return left <= (w < cap ? w : cap);
}

void srv_call_stream_closed(struct rpc_call *call, uint32_t error_code,
                            int conn_cause)
{
    if (state_of(call) < SRV_CALL_FINAL) {
        /* The stream went away before the call was answered. */
        int cause = conn_cause ? conn_cause : RPC_CAUSE_CLIENT_CANCEL;
        if (cause == RPC_CAUSE_CLIENT_CANCEL && rst_is_deadline(call, ctx_now()))
            ctx_expire_cause(call->req_ctx, RPC_CAUSE_DEADLINE);
        else
            ctx_cancel_cause(call->req_ctx, cause);
        decide_from_ctx(call);
        if (call->evented)
            srv_call_events(call); /* on_done */
    }
    stop_watch(call);
    pthread_mutex_lock(&call->mu);
    free_queues_locked(call);
    track_over_locked(call);
    advance_locked(call, SRV_CALL_CLOSED);
    int status = call->status;
    int sent = call->sent_msgs; /* observe */
    pthread_mutex_unlock(&call->mu);
    srv_stat_ended(call->s, status, ctx_cause(call->req_ctx));
    srv_obs_call_closed(call, status, ctx_cause(call->req_ctx), sent); /* observe */
    call->conn = NULL;
    srv_call_release(call);
}

/* ---- response production (loop thread) ---------------------------------- */

/* Tracks whether the call has more output queued than the send buffer
 * (call->mu held; loop thread), for the connection's count of blocked
 * senders and the stall check. */
static void track_over_locked(struct rpc_call *call)
{
    int over = call->out_bytes > call->s->o.send_buffer;
    if (over == call->over || call->conn == NULL)
        return;
    call->over = over;
    call->conn->nover += over ? 1 : -1;
    if (over)
        call->out_progress_ns = ctx_now();
}

void srv_call_stall(struct rpc_call *call, const char *msg)
{
    struct srv_conn *c = call->conn;
    if (c == NULL || state_of(call) >= SRV_CALL_ENDED)
        return;
    srv_log("%s from %s: %s", call->path, c->peer, msg);
    srv_call_end(call, RPC_STATUS_RESOURCE_EXHAUSTED, msg, RPC_CAUSE_STALLED);
    nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, call->stream_id,
                              NGHTTP2_CANCEL);
}

void srv_call_sweep(struct rpc_call *call, int64_t now)
{
    int64_t limit = call->s->o.send_stall_ns;
    if (call->over && limit > 0 && now - call->out_progress_ns > limit)
        srv_call_stall(call, "peer took none of the call's output within the "
                             "send stall timeout");
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
            rpc__free(o);
        }
    }
    size_t before = call->out_bytes;
    call->out_bytes -= n;
    call->obs.bytes_out += n; /* observe */
    if (n > 0)
        call->out_progress_ns = ctx_now();
    track_over_locked(call);
    if (before > call->s->o.send_buffer / 2 &&
        call->out_bytes <= call->s->o.send_buffer / 2)
        pthread_cond_broadcast(&call->cv);
    int end = call->outq == NULL && state_of(call) >= SRV_CALL_FINAL;
    int status = call->status;
    if (end)
        advance_locked(call, SRV_CALL_ENDED);
    int ready = call->ev_ready_wanted &&
                call->out_bytes <= call->s->o.send_buffer / 2;
    pthread_mutex_unlock(&call->mu);
    if (ready)
        srv_loop_notify(call); /* on_ready, from the pump */
    if (end) {
        /* FINAL: status, message and trailers no longer change. */
        rpc__nv_t b;
        rpc__nv_init(&b);
        rpc__nv_add_status(&b, status, call->status_msg);
        rpc__nv_add_metadata(&b, call->rsp_trailers);
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_submit_trailer(sess, stream_id, b.nv, b.n);
        rpc__nv_free(&b);
        call->provider = 0;
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
    enum srv_call_state st = state_of(call);
    if (st >= SRV_CALL_ENDED)
        return;
    /* The one door: the request context has ended.  FINISHED is the
     * handler completing: srv_call_complete() decides that one itself
     * (its status, with the response queued) and tells the loop again. */
    if (st < SRV_CALL_FINAL && ctx_err(call->req_ctx) != 0 &&
        ctx_cause(call->req_ctx) != RPC_CAUSE_FINISHED)
        decide_from_ctx(call);
    if (call->evented) {
        srv_call_events(call);
        if (call->conn == NULL || state_of(call) >= SRV_CALL_ENDED)
            return;
    }
    pthread_mutex_lock(&call->mu);
    int final = state_of(call) >= SRV_CALL_FINAL;
    int has_out = call->outq != NULL;
    int status = call->status;
    rpc_metadata_t *hdrs = NULL;
    int send_enc = call->send_enc;
    if (!call->headers_sent && (has_out || final)) {
        hdrs = call->rsp_headers;
        call->hdrs_frozen = 1;
    }
    if (!call->headers_sent && final && !has_out)
        advance_locked(call, SRV_CALL_ENDED); /* Trailers-Only below */
    int was_over = call->over;
    track_over_locked(call);
    pthread_mutex_unlock(&call->mu);
    if (!was_over && call->over && c->nover > call->s->o.max_blocked_sends) {
        srv_call_stall(call, "too many calls of this connection blocked on "
                             "output the peer does not read");
        return;
    }

    if (!call->headers_sent) {
        if (!has_out && !final)
            return;
        rpc__nv_t b;
        rpc__nv_init(&b);
        rpc__nv_add(&b, ":status", "200", 3);
        rpc__nv_add(&b, "content-type", "application/grpc", 16);
        rpc__nv_add(&b, "grpc-accept-encoding", RPC__ACCEPT_ENCODING,
                    sizeof RPC__ACCEPT_ENCODING - 1);
        if (send_enc)
            rpc__nv_add(&b, "grpc-encoding", rpc__encoding_name(send_enc),
                        strlen(rpc__encoding_name(send_enc)));
        rpc__nv_add_metadata(&b, hdrs);
        call->headers_sent = 1;
        if (!has_out) { /* Trailers-Only */
            rpc__nv_add_status(&b, status, call->status_msg);
            rpc__nv_add_metadata(&b, call->rsp_trailers);
            nghttp2_submit_response(c->sess, call->stream_id, b.nv, b.n, NULL);
        } else {
            nghttp2_data_provider dp = {.source.ptr = call,
                                        .read_callback = read_cb};
            call->provider = 1;
            nghttp2_submit_response(c->sess, call->stream_id, b.nv, b.n, &dp);
        }
        rpc__nv_free(&b);
        return;
    }
    if (call->provider && call->deferred) {
        call->deferred = 0;
        nghttp2_session_resume_data(c->sess, call->stream_id);
    }
}

/* ---- dispatch ------------------------------------------------------------- */

/* The peer, for log lines (the value node keeps it). */
static const char *peer_of(struct rpc_call *call)
{
    const rpc__request_info_t *info = rpc__request_info(call->vctx);
    return info && info->peer ? info->peer : "?";
}

static void *pb_alloc(void *unused, size_t size)
{
    return rpc__malloc(size);
}

static void pb_free(void *unused, void *p)
{
    rpc__free(p);
}

/* Requests are unpacked through rpc__malloc (fault injection); they are
 * freed with protobuf_c_message_free_unpacked(msg, NULL) like any other. */
static ProtobufCAllocator pb_allocator = {pb_alloc, pb_free, NULL};

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
                    peer_of(call), rpc__encoding_name(call->req_enc),
                    rpc_strerror(rc));
            return rc == RPC_ERR_TOO_LARGE ? rc : RPC_ERR_MALFORMED;
        }
        data = plain;
    }
    *out = protobuf_c_message_unpack(call->m->desc->input, &pb_allocator, plen,
                                     data);
    free(plain);
    if (*out == NULL) {
        srv_log("%s from %s: undecodable request message", call->path,
                peer_of(call));
        return RPC_ERR_MALFORMED;
    }
    return 0;
}

/* Decodes the unary request; on failure decides the status (any thread,
 * the request context ends with PROTOCOL) and returns NULL. */
static ProtobufCMessage *decode_request(struct rpc_call *call)
{
    ProtobufCMessage *req = NULL;
    int rc = srv_call_decode(call, call->req_flag, call->req, call->req_len,
                             &req);
    if (rc == 0)
        return req;
    srv_stat_add(call->s, RPC_STAT_BAD_REQUESTS, 1);
    stop_watch(call);
    ctx_cancel_cause(call->req_ctx, RPC_CAUSE_PROTOCOL);
    pthread_mutex_lock(&call->mu);
    if (rc == RPC_ERR_TOO_LARGE)
        srv_call_decide_locked(call, RPC_STATUS_RESOURCE_EXHAUSTED,
                               "decompressed message larger than max", 1);
    else
        srv_call_decide_locked(call, RPC_STATUS_INTERNAL,
                               "could not decode request", 1);
    pthread_mutex_unlock(&call->mu);
    return NULL;
}

static int run_handler(ctx_t *ctx, void *arg)
{
    struct rpc_call *call = arg;
    const struct srv_method *m = call->m;
    ProtobufCMessage *req = NULL;
    if (!srv_method_streaming_in(m) && (req = decode_request(call)) == NULL) {
        srv_loop_notify(call);
        return 0;
    }
    int status = m->fn(call->vctx, call, req, m->user_data);
    if (req)
        protobuf_c_message_free_unpacked(req, NULL);
    srv_call_complete(call, status);
    srv_loop_notify(call);
    return 0;
}

/* The pool is done with the call: ran says whether run_handler ran.  It
 * is skipped when the request context ended before a worker picked it up;
 * the loop is told, and decides the status from the context. */
static void handler_done(int err, bool ran, void *arg, void *user_data)
{
    if (!ran)
        srv_loop_notify(arg);
    srv_call_release(arg);
}

static void run_nonblocking(struct rpc_call *call)
{
    const struct srv_method *m = call->m;
    ProtobufCMessage *req = NULL;
    if (!srv_method_streaming_in(m) && (req = decode_request(call)) == NULL) {
        srv_call_pump(call);
        return;
    }
    call->nb_req = req;
    atomic_fetch_add(&call->refs, 1); /* the handler's, until complete */
    call->on_loop_handler = 1; /* sends need no wake-up: we pump below */
    int status = m->fn(call->vctx, call, req, m->user_data);
    call->on_loop_handler = 0;
    if (status != RPC_PENDING) {
        call->evented = 0;
        srv_call_complete(call, status);
        call->nb_req = NULL;
        if (req)
            protobuf_c_message_free_unpacked(req, NULL);
        srv_call_pump(call);
        srv_call_release(call);
    } else {
        srv_call_pump(call); /* what it sent before returning RPC_PENDING,
                                and the events already due */
    }
}

/* ---- event-driven calls (loop thread) -------------------------------------- */

int rpc_call_set_events(rpc_call_t *call, const rpc_call_events_t *ev,
                        void *user_data)
{
    if (call == NULL || ev == NULL)
        return RPC_ERR_INVAL;
    if (!call->on_loop_handler || !srv_call_on_loop_thread(call) ||
        state_of(call) >= SRV_CALL_FINAL)
        return RPC_ERR_STATE;
    call->ev = *ev;
    call->ev_ud = user_data;
    call->evented = 1;
    return 0;
}

void srv_call_events(struct rpc_call *call)
{
    /* Each step re-checks `evented`: an event may finish the call. */
    while (call->evented && state_of(call) < SRV_CALL_FINAL) {
        pthread_mutex_lock(&call->mu);
        struct in_msg *m = call->inq;
        if (m != NULL) {
            call->inq = m->next;
            if (call->inq == NULL)
                call->inq_tail = NULL;
            call->inq_bytes -= m->len + RPC__FRAME_HDR;
        }
        int eof = call->in_eof && call->inq == NULL;
        pthread_mutex_unlock(&call->mu);
        if (m == NULL) {
            if (eof && !call->ev_half_closed) {
                call->ev_half_closed = 1;
                if (call->ev.on_half_close)
                    call->ev.on_half_close(call, call->ev_ud);
            }
            break;
        }
        ProtobufCMessage *msg = NULL;
        int rc = srv_call_decode(call, m->flag, m->data, m->len, &msg);
        rpc__free(m);
        if (rc != 0) {
            srv_stat_add(call->s, RPC_STAT_BAD_REQUESTS, 1);
            srv_call_end(call, rc == RPC_ERR_TOO_LARGE
                                   ? RPC_STATUS_RESOURCE_EXHAUSTED
                                   : RPC_STATUS_INTERNAL,
                         rc == RPC_ERR_TOO_LARGE
                             ? "decompressed message larger than max"
                             : "could not decode request",
                         RPC_CAUSE_PROTOCOL);
            break;
        }
        if (call->ev.on_message)
            call->ev.on_message(call, msg, call->ev_ud);
        else
            protobuf_c_message_free_unpacked(msg, NULL);
    }
    if (call->evented && call->ev_ready_wanted && state_of(call) < SRV_CALL_FINAL) {
        pthread_mutex_lock(&call->mu);
        int ready = call->out_bytes <= call->s->o.send_buffer / 2;
        pthread_mutex_unlock(&call->mu);
        if (ready) {
            call->ev_ready_wanted = 0;
            if (call->ev.on_ready)
                call->ev.on_ready(call, call->ev_ud);
        }
    }
    if (call->evented && state_of(call) >= SRV_CALL_FINAL &&
        ctx_cause(call->req_ctx) != RPC_CAUSE_FINISHED) {
        call->evented = 0; /* on_done is the last event */
        if (call->ev.on_done)
            call->ev.on_done(call, call->ev_ud);
    }
}

static void dispatch(struct rpc_call *call)
{
    if (srv_obs_call_dispatch(call) != 0) /* observe: refused, and ended */
        return;
    advance(call, SRV_CALL_RUNNING);
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
                peer_of(call));
        srv_call_end(call, RPC_STATUS_RESOURCE_EXHAUSTED,
                     "server overloaded: worker queue full", 0);
    }
}

/* ---- request stream (loop thread) ----------------------------------------- */

static int on_message(int flag, const uint8_t *data, size_t len, void *ud)
{
    struct rpc_call *call = ud;
    if (flag && call->req_enc == RPC__ENC_IDENTITY)
        return RPC_ERR_UNSUPPORTED;
    call->obs.msgs_in++; /* observe */
    if (!srv_method_streaming_in(call->m)) {
        if (++call->nreq > 1)
            return RPC_ERR_STATE;
        call->req_flag = flag;
        call->req = rpc__malloc(len ? len : 1);
        if (call->req == NULL)
            return RPC_ERR_NOMEM;
        memcpy(call->req, data, len);
        call->req_len = len;
        return 0;
    }
    struct in_msg *m = rpc__malloc(sizeof *m + len);
    if (m == NULL)
        return RPC_ERR_NOMEM;
    m->next = NULL;
    m->len = len;
    m->flag = flag;
    memcpy(m->data, data, len);
    pthread_mutex_lock(&call->mu);
    if (state_of(call) >= SRV_CALL_FINAL) {
        rpc__free(m);
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
    if (srv_method_streaming_in(call->m)) {
        pthread_mutex_lock(&call->mu);
        held = state_of(call) >= SRV_CALL_FINAL ? 0 : call->inq_bytes;
        pthread_mutex_unlock(&call->mu);
    }
    if (held > INQ_HIGH)
        return;
    nghttp2_session_consume_stream(c->sess, call->stream_id, call->unconsumed);
    call->unconsumed = 0;
}

/* Bad request framing: logged once, counted, and the call ends with the
 * request context's cause PROTOCOL. */
static void bad_input(struct rpc_call *call, int status, const char *msg)
{
    srv_log("%s from %s: %s", call->path, call->conn->peer, msg);
    srv_stat_add(call->s, RPC_STAT_BAD_REQUESTS, 1);
    srv_call_end(call, status, msg, RPC_CAUSE_PROTOCOL);
}

void srv_call_data(struct rpc_call *call, const uint8_t *data, size_t len)
{
    if (state_of(call) >= SRV_CALL_FINAL) {
        consume(call, len); /* nobody reads it: give the window back */
        return;
    }
    call->obs.bytes_in += len; /* observe */
    int rc = rpc__frame_feed(&call->dec, data, len, on_message, call);
    consume(call, len);
    if (rc == 0) {
        if (call->evented) {
            srv_call_events(call);
            consume(call, 0); /* what the events took */
        }
        return;
    }
    char msg[128];
    int status = RPC_STATUS_INTERNAL;
    switch (rc) {
    case RPC_ERR_TOO_LARGE:
        status = RPC_STATUS_RESOURCE_EXHAUSTED;
        snprintf(msg, sizeof msg,
                 "received message larger than max (%u vs. %u)",
                 (unsigned)((uint32_t)call->dec.hdr[1] << 24 |
                            (uint32_t)call->dec.hdr[2] << 16 |
                            (uint32_t)call->dec.hdr[3] << 8 | call->dec.hdr[4]),
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
    bad_input(call, status, msg);
}

void srv_call_remote_close(struct rpc_call *call)
{
    if (state_of(call) >= SRV_CALL_FINAL)
        return;
    if (!rpc__frame_idle(&call->dec)) {
        bad_input(call, RPC_STATUS_INTERNAL,
                  "truncated message at end of stream");
        return;
    }
    if (srv_method_streaming_in(call->m)) {
        pthread_mutex_lock(&call->mu);
        call->in_eof = 1;
        pthread_cond_broadcast(&call->cv);
        pthread_mutex_unlock(&call->mu);
        if (call->evented)
            srv_call_events(call);
        return;
    }
    if (call->nreq != 1) {
        bad_input(call, RPC_STATUS_UNIMPLEMENTED,
                  "expected exactly one request message, got none");
        return;
    }
    dispatch(call);
}
