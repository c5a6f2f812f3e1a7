/*
 * client_call.c -- the call object: creation (metadata copy plus
 * propagation from the context), the blocking API (send, close_send,
 * recv, finish, headers), cancellation, and the loop-side completion that
 * every ending goes through (rpc__call_complete).
 *
 * Threads.  User threads touch only the fields under call->mu and hand
 * everything else to the loop through rpc__client_queue().  Blocking
 * functions wait on call->cv; an operation context other than the call's
 * own wakes that condition through ctx_after_func().  The call's own
 * context is watched by one ctx_after_func() registration that queues
 * OP_CTX: the loop then resets the stream and completes the call.
 *
 * Status rules applied at completion (loop):
 *   - CANCELLED, or any status caused by a received RST_STREAM, once the
 *     deadline has passed -> DEADLINE_EXCEEDED (grpc-go#2211);
 *   - OK on a unary call with no response -> INTERNAL;
 *   - the context's cause is recorded when the context ended the call.
 */
#include "client_internal.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEND_HIGH (1u << 20) /* blocking send waits above this */

/* ---- references ---------------------------------------------------------- */

void rpc__call_ref(rpc_client_call_t *call)
{
    atomic_fetch_add(&call->refs, 1);
}

static void call_destroy(rpc_client_call_t *call)
{
    rpc_client_channel_t *ch = call->ch;
    for (struct msg *m = call->rq_head, *n; m; m = n) {
        n = m->next;
        free(m);
    }
    if (call->out)
        evbuffer_free(call->out);
    rpc__frame_decoder_reset(&call->dec);
    rpc_metadata_free(call->md);
    rpc_metadata_free(call->blk);
    rpc_metadata_free(call->headers);
    rpc_metadata_free(call->trailers);
    free(call->grpc_message);
    free(call->message);
    ctx_release(call->ctx); /* method and flat live in the call's block */
    pthread_cond_destroy(&call->cv);
    pthread_mutex_destroy(&call->mu);
    free(call);
    rpc__client_channel_unref(ch);
}

void rpc__call_unref(rpc_client_call_t *call)
{
    if (atomic_fetch_sub(&call->refs, 1) == 1)
        call_destroy(call);
}

/* ---- lists (loop) ----------------------------------------------------------- */

void rpc__call_list_add(struct call_list *l, rpc_client_call_t *call)
{
    call->list = l;
    call->lprev = NULL;
    call->lnext = l->head;
    if (l->head)
        l->head->lprev = call;
    l->head = call;
    l->n++;
}

void rpc__call_list_remove(rpc_client_call_t *call)
{
    struct call_list *l = call->list;
    if (l == NULL)
        return;
    if (call->lprev)
        call->lprev->lnext = call->lnext;
    else
        l->head = call->lnext;
    if (call->lnext)
        call->lnext->lprev = call->lprev;
    l->n--;
    call->list = NULL;
    call->lnext = call->lprev = NULL;
}

/* ---- completion (loop) --------------------------------------------------- */

static bool deadline_passed(rpc_client_call_t *call)
{
    return call->has_deadline && ctx_now() >= call->deadline;
}

void rpc__call_detach(rpc_client_call_t *call)
{
    if (call->state == CALL_DONE && call->stream_id == 0 &&
        call->list == NULL && !call->released) {
        call->released = true;
        rpc__call_unref(call); /* the loop's reference */
    }
}

void rpc__call_complete(rpc_client_call_t *call, int status, const char *msg)
{
    if (call->state == CALL_DONE)
        return;
    if (call->state == CALL_WAITING)
        rpc__call_list_remove(call);
    call->state = CALL_DONE;
    char buf[96];
    if (status == RPC_STATUS_CANCELLED && deadline_passed(call)) {
        snprintf(buf, sizeof buf, "deadline exceeded (%s)",
                 msg && msg[0] ? msg : "cancelled after the deadline");
        status = RPC_STATUS_DEADLINE_EXCEEDED;
        msg = buf;
    }
    if (status == RPC_STATUS_OK && call->unary && call->nmsgs != 1) {
        status = RPC_STATUS_INTERNAL;
        msg = "unary call ended OK without a response message";
    }
    int cause = 0;
    if ((status == RPC_STATUS_CANCELLED ||
         status == RPC_STATUS_DEADLINE_EXCEEDED) && ctx_err(call->ctx) != 0)
        cause = ctx_cause(call->ctx);
    if (call->after != NULL) {
        if (ctx_after_stop(call->after))
            rpc__call_unref(call); /* the watcher's reference */
        call->after = NULL;
    }
    /* headers and trailers are written by the loop only, so reading them
     * here needs no lock; allocate empty sets only where none arrived, and
     * no message copy for an empty message (rpc_client_call_message()
     * returns "" for NULL). */
    rpc_metadata_t *empty_h = call->headers ? NULL : rpc_metadata_new();
    rpc_metadata_t *empty_t = call->trailers ? NULL : rpc_metadata_new();
    char *m = msg && msg[0] ? rpc__strdup(msg) : NULL;
    pthread_mutex_lock(&call->mu);
    call->done = true;
    call->status = status;
    call->message = m;
    call->cause = cause;
    if (call->headers == NULL) {
        call->headers = empty_h;
        empty_h = NULL;
    }
    if (call->trailers == NULL) {
        call->trailers = empty_t;
        empty_t = NULL;
    }
    call->headers_ready = true;
    bool wake = call->wants != 0; /* done satisfies every waiter */
    call->wants = 0;
    pthread_mutex_unlock(&call->mu);
    if (wake) /* after unlocking: the waiter does not wake into our lock */
        pthread_cond_broadcast(&call->cv);
    rpc_metadata_free(empty_h);
    rpc_metadata_free(empty_t);
    rpc__client_obs_end(call, status, cause, msg); /* observe */

    if (call->on_done)
        call->on_done(call, status, call->user_data);
    if (call->auto_free)
        rpc__call_unref(call); /* the handle nobody holds */
    rpc__call_detach(call);
}

/* Completes from our side and resets the stream if one is open. */
static void call_abort(rpc_client_call_t *call, int status, const char *msg)
{
    if (call->state == CALL_DONE)
        return;
    bool open = call->state == CALL_OPEN;
    rpc__call_complete(call, status, msg);
    if (open)
        rpc__conn_reset(call);
}

static int map_h2_error(uint32_t e, char *msg, size_t n)
{
    snprintf(msg, n, "stream reset by the server: %s (%u)",
             nghttp2_http2_strerror(e), e);
    switch (e) {
    case NGHTTP2_REFUSED_STREAM: return RPC_STATUS_UNAVAILABLE;
    case NGHTTP2_CANCEL: return RPC_STATUS_CANCELLED;
    case NGHTTP2_ENHANCE_YOUR_CALM: return RPC_STATUS_RESOURCE_EXHAUSTED;
    case NGHTTP2_INADEQUATE_SECURITY: return RPC_STATUS_PERMISSION_DENIED;
    default: return RPC_STATUS_INTERNAL;
    }
}

static int map_http(int code)
{
    switch (code) {
    case 400: return RPC_STATUS_INTERNAL;
    case 401: return RPC_STATUS_UNAUTHENTICATED;
    case 403: return RPC_STATUS_PERMISSION_DENIED;
    case 404: return RPC_STATUS_UNIMPLEMENTED;
    case 429: case 502: case 503: case 504: return RPC_STATUS_UNAVAILABLE;
    default: return RPC_STATUS_UNKNOWN;
    }
}

void rpc__call_stream_closed(rpc_client_call_t *call, uint32_t h2_error)
{
    if (call->state == CALL_DONE)
        return;
    char msg[200];
    if (call->fail_status != 0) {
        rpc__call_complete(call, call->fail_status, call->fail_msg);
    } else if (call->grpc_status >= 0) {
        int st = call->grpc_status;
        const char *m = call->grpc_message ? call->grpc_message : "";
        if (st > 16) {
            snprintf(msg, sizeof msg, "unknown grpc-status %d: %s", st, m);
            st = RPC_STATUS_UNKNOWN;
            m = msg;
        } else if (st == 0 && !rpc__frame_idle(&call->dec)) {
            st = RPC_STATUS_INTERNAL;
            m = "stream ended inside a message";
        }
        rpc__call_complete(call, st, m);
    } else if (call->bad_grpc_status) {
        rpc__call_complete(call, RPC_STATUS_INTERNAL,
                           "malformed grpc-status in the response");
    } else if (h2_error != NGHTTP2_NO_ERROR) {
        int st = map_h2_error(h2_error, msg, sizeof msg);
        if (deadline_passed(call))
            st = RPC_STATUS_DEADLINE_EXCEEDED;
        rpc__call_complete(call, st, msg);
    } else if (call->http_status != 200) {
        snprintf(msg, sizeof msg, "unexpected HTTP status %d, no grpc-status",
                 call->http_status);
        rpc__call_complete(call, map_http(call->http_status), msg);
    } else {
        rpc__call_complete(call, RPC_STATUS_UNKNOWN,
                           call->bad_content_type
                               ? "not a gRPC response (content-type), no "
                                 "grpc-status"
                               : "stream ended without a grpc-status");
    }
}

void rpc__call_deliver(rpc_client_call_t *call, const uint8_t *data,
                       size_t len)
{
    call->nmsgs++;
    call->obs.bytes_in += RPC__FRAME_HDR + len; /* observe */
    if (call->unary && call->nmsgs > 1) {
        call_abort(call, RPC_STATUS_INTERNAL,
                   "unary call received more than one response message");
        return;
    }
    if (call->on_message) {
        call->on_message(call, data, len, call->user_data);
        return;
    }
    struct msg *m = rpc__malloc(sizeof *m + len + 1);
    if (m == NULL) {
        call_abort(call, RPC_STATUS_RESOURCE_EXHAUSTED,
                   "out of memory queueing a response message");
        return;
    }
    m->next = NULL;
    m->len = len;
    if (len)
        memcpy(m->data, data, len);
    m->data[len] = 0;
    pthread_mutex_lock(&call->mu);
    if (call->rq_tail)
        call->rq_tail->next = m;
    else
        call->rq_head = m;
    call->rq_tail = m;
    bool wake = (call->wants & WANT_MSG) != 0;
    if (wake)
        call->wants = 0;
    pthread_mutex_unlock(&call->mu);
    if (wake)
        pthread_cond_broadcast(&call->cv);
}

void rpc__call_set_headers(rpc_client_call_t *call, rpc_metadata_t *md)
{
    if (md == NULL)
        md = rpc_metadata_new();
    pthread_mutex_lock(&call->mu);
    rpc_metadata_free(call->headers);
    call->headers = md;
    call->headers_ready = true;
    bool wake = (call->wants & WANT_HEADERS) != 0;
    if (wake)
        call->wants = 0;
    pthread_mutex_unlock(&call->mu);
    if (wake)
        pthread_cond_broadcast(&call->cv);
}

ssize_t rpc__call_read_out(rpc_client_call_t *call, uint8_t *buf, size_t len,
                           uint32_t *flags)
{
    pthread_mutex_lock(&call->mu);
    size_t want = len < call->out_len ? len : call->out_len;
    int n;
    if (call->flat != NULL) { /* a unary request, framed at creation */
        if (want)
            memcpy(buf, call->flat + call->flat_off, want);
        call->flat_off += want;
        n = (int)want;
    } else {
        n = want ? evbuffer_remove(call->out, buf, want) : 0;
    }
    if (n < 0)
        n = 0;
    bool was_high = call->out_len > SEND_HIGH;
    call->out_len -= (size_t)n;
    bool wake = was_high && call->out_len <= SEND_HIGH &&
                (call->wants & WANT_ROOM) != 0;
    if (wake)
        call->wants = 0;
    bool eof = call->out_len == 0 && call->send_closed;
    pthread_mutex_unlock(&call->mu);
    if (wake)
        pthread_cond_broadcast(&call->cv);
    if (eof) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return n;
    }
    if (n == 0) {
        call->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return n;
}

void rpc__call_run_ops(rpc_client_call_t *call, unsigned ops)
{
    struct conn *c = call->conn;
    if ((ops & OP_START) && call->state == CALL_NEW) {
        int e = ctx_err(call->ctx);
        if (e != 0)
            rpc__call_complete(call,
                               e == CTX_DEADLINE_EXCEEDED
                                   ? RPC_STATUS_DEADLINE_EXCEEDED
                                   : RPC_STATUS_CANCELLED,
                               ctx_strerror(e));
        else if (deadline_passed(call))
            rpc__call_complete(call, RPC_STATUS_DEADLINE_EXCEEDED,
                               "deadline exceeded before the call was sent");
        else if (call->obs.refused) /* observe */
            rpc__call_complete(call, call->obs.refused,
                               "refused by a client interceptor");
        else
            rpc__client_dispatch(call);
        c = call->conn;
    }
    if (call->state == CALL_NEW)
        return; /* not started yet: later ops arrive with OP_START */
    if (ops & OP_CTX) {
        int e = ctx_err(call->ctx);
        if (e != 0)
            call_abort(call,
                       e == CTX_DEADLINE_EXCEEDED
                           ? RPC_STATUS_DEADLINE_EXCEEDED
                           : RPC_STATUS_CANCELLED,
                       ctx_strerror(e));
    }
    if (ops & OP_CANCEL)
        call_abort(call, RPC_STATUS_CANCELLED, "cancelled by the application");
    if ((ops & OP_DATA) && call->state == CALL_OPEN)
        rpc__conn_resume(call);
    rpc__conn_mark(c); /* wake_cb flushes once per batch */
}

/* ---- creation ----------------------------------------------------------------- */

static void ctx_fired(void *arg)
{
    rpc_client_call_t *call = arg;
    rpc__client_queue(call, OP_CTX);
    rpc__call_unref(call);
}

/* call->md stays NULL when there is nothing to send (no allocation). */
static int copy_metadata(rpc_client_call_t *call, const rpc_metadata_t *md)
{
    if (rpc_metadata_count(md) > 0 && (call->md = rpc_metadata_new()) == NULL)
        return RPC_ERR_NOMEM;
    for (size_t i = 0; i < rpc_metadata_count(md); i++) {
        const char *k;
        const void *v;
        size_t n;
        rpc_metadata_at(md, i, &k, &v, &n);
        int rc = rpc_metadata_add(call->md, k, v, n);
        if (rc != 0)
            return rc;
    }
    /* Propagation: keys found on the context (a server request's
     * metadata) and not set by the caller. */
    const rpc_client_options_t *o = &call->ch->opts;
    for (size_t i = 0; i < o->n_prop; i++) {
        const char *k = o->prop_keys[i];
        if (rpc_metadata_find(call->md, k, NULL) != NULL)
            continue;
        size_t n;
        const char *v = rpc_metadata_get(call->ctx, k, &n);
        if (v == NULL)
            continue;
        int hop = rpc__client_obs_propagate(call, k, v, n); /* observe */
        if (hop != 0) {
            if (hop < 0)
                return hop;
            continue;
        }
        if (call->md == NULL && (call->md = rpc_metadata_new()) == NULL)
            return RPC_ERR_NOMEM;
        if (rpc_metadata_add(call->md, k, v, n) == RPC_ERR_NOMEM)
            return RPC_ERR_NOMEM;
    }
    return 0;
}

/* One allocation holds the call, its method and, for a unary call
 * (unary_len >= 0), the framed request: call->flat. */
static int call_new(ctx_t *ctx, rpc_client_channel_t *ch, const char *method,
                    const rpc_metadata_t *md, int64_t unary_len,
                    rpc_client_call_t **out)
{
    if (ctx == NULL || ch == NULL || method == NULL || method[0] != '/' ||
        out == NULL)
        return RPC_ERR_INVAL;
    if (unary_len > (int64_t)UINT32_MAX)
        return RPC_ERR_TOO_LARGE;
    size_t mlen = strlen(method) + 1;
    size_t flat = unary_len >= 0 ? RPC__FRAME_HDR + (size_t)unary_len : 0;
    rpc_client_call_t *call = rpc__calloc(1, sizeof *call + mlen + flat);
    if (call == NULL)
        return RPC_ERR_NOMEM;
    call->method = (char *)(call + 1);
    memcpy(call->method, method, mlen);
    if (unary_len >= 0)
        call->flat = (uint8_t *)call->method + mlen;
    atomic_init(&call->refs, 1);
    atomic_fetch_add(&ch->refs, 1);
    call->ch = ch;
    call->ctx = ctx_retain(ctx);
    pthread_mutex_init(&call->mu, NULL);
    pthread_cond_init(&call->cv, NULL);
    call->status = -1;
    call->grpc_status = -1;
    call->state = CALL_NEW;
    call->has_deadline = ctx_deadline(ctx, &call->deadline);
    rpc__frame_decoder_init(&call->dec, (uint32_t)ch->opts.max_recv);
    /* Streaming calls buffer their messages in an evbuffer; unary calls
     * send call->flat. */
    if (unary_len < 0)
        call->out = evbuffer_new();
    int rc = (call->out || call->flat) ? copy_metadata(call, md)
                                       : RPC_ERR_NOMEM;
    if (rc != 0) {
        call_destroy(call);
        return rc;
    }
    *out = call;
    return 0;
}

/* Hands a new call to the loop.  On failure the call is destroyed. */
static int call_begin(rpc_client_call_t *call)
{
    rpc__client_obs_start(call); /* observe */
    rpc__call_ref(call); /* the loop's */
    if (call->ctx != ctx_background() && call->ctx != ctx_todo()) {
        rpc__call_ref(call); /* the watcher's */
        call->after = ctx_after_func(call->ctx, ctx_fired, call);
        if (call->after == NULL) {
            atomic_fetch_sub(&call->refs, 2);
            call_destroy(call);
            return RPC_ERR_NOMEM;
        }
    }
    if (!rpc__client_queue(call, OP_START)) {
        if (call->after && ctx_after_stop(call->after))
            rpc__call_unref(call);
        call->after = NULL;
        rpc__call_unref(call); /* loop's */
        rpc__call_unref(call); /* user's */
        return RPC_ERR_CLOSED;
    }
    return 0;
}

int rpc_client_call_start(ctx_t *ctx, rpc_client_channel_t *ch,
                          const char *method, const rpc_metadata_t *md,
                          rpc_client_call_t **out)
{
    rpc_client_call_t *call;
    int rc = call_new(ctx, ch, method, md, -1, &call);
    if (rc == 0 && (rc = call_begin(call)) == 0)
        *out = call;
    return rc;
}

int rpc_client_call_start_async(ctx_t *ctx, rpc_client_channel_t *ch,
                                const char *method, const rpc_metadata_t *md,
                                rpc_client_message_cb on_message,
                                rpc_client_done_cb on_done, void *user_data,
                                rpc_client_call_t **out)
{
    rpc_client_call_t *call;
    int rc = call_new(ctx, ch, method, md, -1, &call);
    if (rc != 0)
        return rc;
    call->on_message = on_message;
    call->on_done = on_done;
    call->user_data = user_data;
    if ((rc = call_begin(call)) == 0)
        *out = call;
    return rc;
}

/* ---- waiting --------------------------------------------------------------- */

static void wake_fn(void *arg)
{
    rpc_client_call_t *call = arg;
    pthread_mutex_lock(&call->mu);
    pthread_cond_broadcast(&call->cv);
    pthread_mutex_unlock(&call->mu);
    rpc__call_unref(call);
}

typedef bool (*pred_fn)(rpc_client_call_t *);

/* Waits (call->mu held) until pred holds or ctx is done.  The call's own
 * context needs no watcher: the loop completes the call when it ends.
 * want: the WANT_* events (besides the end of the call) that may make pred
 * true; the loop wakes us only for those. */
static int wait_for(rpc_client_call_t *call, ctx_t *ctx, pred_fn pred,
                    unsigned want)
{
    bool own = ctx == NULL || ctx == call->ctx || ctx == ctx_background() ||
               ctx == ctx_todo();
    ctx_after_t *a = NULL;
    bool poll = false;
    int rc = 0;
    while (!pred(call)) {
        if (!own) {
            int e = ctx_err(ctx);
            if (e != 0) {
                rc = e == CTX_DEADLINE_EXCEEDED ? RPC_ERR_DEADLINE
                                                : RPC_ERR_CANCELED;
                break;
            }
            if (a == NULL && !poll) {
                rpc__call_ref(call);
                pthread_mutex_unlock(&call->mu);
                a = ctx_after_func(ctx, wake_fn, call);
                pthread_mutex_lock(&call->mu);
                if (a == NULL) {
                    atomic_fetch_sub(&call->refs, 1); /* user ref remains */
                    poll = true; /* out of memory: degrade to 10 ms polls */
                }
                continue;
            }
        }
        call->wants |= want | WANT_DONE;
        if (poll) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 10 * 1000 * 1000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&call->cv, &call->mu, &ts);
        } else {
            pthread_cond_wait(&call->cv, &call->mu);
        }
    }
    if (a != NULL) {
        pthread_mutex_unlock(&call->mu);
        if (ctx_after_stop(a))
            rpc__call_unref(call);
        pthread_mutex_lock(&call->mu);
    }
    return rc;
}

static bool p_send_room(rpc_client_call_t *c)
{
    return c->done || c->send_closed || c->out_len <= SEND_HIGH;
}
static bool p_recv(rpc_client_call_t *c) { return c->done || c->rq_head; }
static bool p_done(rpc_client_call_t *c) { return c->done; }
static bool p_headers(rpc_client_call_t *c) { return c->headers_ready; }

/* ---- the blocking API ---------------------------------------------------- */

int rpc_client_call_send(ctx_t *ctx, rpc_client_call_t *call, const void *msg,
                         size_t len)
{
    if (call == NULL || (msg == NULL && len > 0))
        return RPC_ERR_INVAL;
    if (len > UINT32_MAX)
        return RPC_ERR_TOO_LARGE;
    bool on_loop = rpc__client_on_loop(call->ch);
    uint8_t hdr[RPC__FRAME_HDR];
    rpc__frame_header(hdr, 0, (uint32_t)len);
    pthread_mutex_lock(&call->mu);
    int rc = on_loop ? 0 : wait_for(call, ctx, p_send_room, WANT_ROOM);
    if (rc == 0 && call->done)
        rc = RPC_ERR_CLOSED;
    else if (rc == 0 && call->send_closed)
        rc = RPC_ERR_STATE;
    if (rc == 0) {
        if (evbuffer_add(call->out, hdr, sizeof hdr) != 0 ||
            (len && evbuffer_add(call->out, msg, len) != 0))
            rc = RPC_ERR_NOMEM;
        else
            call->out_len += sizeof hdr + len;
    }
    pthread_mutex_unlock(&call->mu);
    if (rc == 0) {
        rpc__client_obs_sent(call, len); /* observe */
        rpc__client_queue(call, OP_DATA);
    }
    return rc;
}

int rpc_client_call_close_send(rpc_client_call_t *call)
{
    if (call == NULL)
        return RPC_ERR_INVAL;
    int rc = 0;
    pthread_mutex_lock(&call->mu);
    if (call->done)
        rc = RPC_ERR_CLOSED;
    else if (call->send_closed)
        rc = RPC_ERR_STATE;
    else
        call->send_closed = true;
    /* send_closed satisfies p_send_room: a sender blocked on flow control
     * in another thread must see it (it then returns RPC_ERR_STATE) instead
     * of waiting for room that a stalled peer may never make. */
    bool wake = rc == 0 && (call->wants & WANT_ROOM) != 0;
    if (wake)
        call->wants = 0;
    pthread_mutex_unlock(&call->mu);
    if (wake)
        pthread_cond_broadcast(&call->cv);
    if (rc == 0)
        rpc__client_queue(call, OP_DATA);
    return rc;
}

int rpc_client_call_recv(ctx_t *ctx, rpc_client_call_t *call, void **msg,
                         size_t *len)
{
    if (call == NULL || msg == NULL)
        return RPC_ERR_INVAL;
    if (call->on_message != NULL || rpc__client_on_loop(call->ch))
        return RPC_ERR_STATE;
    pthread_mutex_lock(&call->mu);
    int rc = wait_for(call, ctx, p_recv, WANT_MSG);
    struct msg *m = NULL;
    if (rc == 0 && call->rq_head != NULL) {
        m = call->rq_head;
        call->rq_head = m->next;
        if (call->rq_head == NULL)
            call->rq_tail = NULL;
    } else if (rc == 0) {
        rc = RPC_ERR_EOF;
    }
    pthread_mutex_unlock(&call->mu);
    if (m != NULL) {
        /* Hand out the data in place: move it to the front of the block. */
        size_t n = m->len;
        memmove(m, m->data, n + 1);
        *msg = m;
        if (len)
            *len = n;
    }
    return rc;
}

int rpc_client_call_finish(ctx_t *ctx, rpc_client_call_t *call)
{
    if (call == NULL)
        return RPC_ERR_INVAL;
    if (rpc__client_on_loop(call->ch))
        return RPC_ERR_STATE;
    pthread_mutex_lock(&call->mu);
    int rc = wait_for(call, ctx, p_done, 0);
    if (rc == 0)
        rc = call->status;
    pthread_mutex_unlock(&call->mu);
    return rc;
}

const rpc_metadata_t *rpc_client_call_headers(ctx_t *ctx,
                                              rpc_client_call_t *call)
{
    if (call == NULL)
        return NULL;
    pthread_mutex_lock(&call->mu);
    int rc = rpc__client_on_loop(call->ch)
                 ? 0
                 : wait_for(call, ctx, p_headers, WANT_HEADERS);
    const rpc_metadata_t *h = rc == 0 && call->headers_ready ? call->headers
                                                              : NULL;
    pthread_mutex_unlock(&call->mu);
    return h;
}

void rpc_client_call_cancel(rpc_client_call_t *call)
{
    if (call == NULL)
        return;
    pthread_mutex_lock(&call->mu);
    bool done = call->done;
    pthread_mutex_unlock(&call->mu);
    if (!done)
        rpc__client_queue(call, OP_CANCEL);
}

void rpc_client_call_free(rpc_client_call_t *call)
{
    if (call == NULL)
        return;
    rpc_client_call_cancel(call);
    rpc__call_unref(call);
}

/* ---- results ------------------------------------------------------------------- */

bool rpc_client_call_done(rpc_client_call_t *call)
{
    pthread_mutex_lock(&call->mu);
    bool d = call->done;
    pthread_mutex_unlock(&call->mu);
    return d;
}

int rpc_client_call_status(rpc_client_call_t *call)
{
    pthread_mutex_lock(&call->mu);
    int s = call->done ? call->status : -1;
    pthread_mutex_unlock(&call->mu);
    return s;
}

const char *rpc_client_call_message(rpc_client_call_t *call)
{
    pthread_mutex_lock(&call->mu);
    const char *m = call->done ? (call->message ? call->message : "") : NULL;
    pthread_mutex_unlock(&call->mu);
    return m;
}

const rpc_metadata_t *rpc_client_call_trailers(rpc_client_call_t *call)
{
    pthread_mutex_lock(&call->mu);
    const rpc_metadata_t *t = call->done ? call->trailers : NULL;
    pthread_mutex_unlock(&call->mu);
    return t;
}

int rpc_client_call_cause(rpc_client_call_t *call)
{
    pthread_mutex_lock(&call->mu);
    int c = call->done ? call->cause : 0;
    pthread_mutex_unlock(&call->mu);
    return c;
}

const char *rpc_client_call_sent_timeout(rpc_client_call_t *call)
{
    /* Written once by the loop before the call can finish. */
    pthread_mutex_lock(&call->mu);
    const char *t = call->timeout_sent;
    pthread_mutex_unlock(&call->mu);
    return t;
}

const char *rpc_client_call_peer(rpc_client_call_t *call)
{
    /* Written once by the loop when the call is sent, before it can
     * finish. */
    pthread_mutex_lock(&call->mu);
    const char *p = call->peer;
    pthread_mutex_unlock(&call->mu);
    return p;
}

const void *rpc_client_call_response(rpc_client_call_t *call, size_t *len)
{
    pthread_mutex_lock(&call->mu);
    struct msg *m = call->rq_head;
    pthread_mutex_unlock(&call->mu);
    if (len)
        *len = m ? m->len : 0;
    return m ? m->data : NULL;
}

/* ---- unary ------------------------------------------------------------------------ */

/* Frames req into call->flat (sized by call_new) and half-closes. */
static void unary_prepare(rpc_client_call_t *call, const void *req, size_t len)
{
    rpc__frame_header(call->flat, 0, (uint32_t)len);
    if (len)
        memcpy(call->flat + RPC__FRAME_HDR, req, len);
    call->out_len = RPC__FRAME_HDR + len;
    call->send_closed = true;
    call->unary = true;
}

/* The common start of both unary forms: a call sized for req, framed. */
static int unary_new(ctx_t *ctx, rpc_client_channel_t *ch, const char *method,
                     const rpc_metadata_t *md, const void *req, size_t len,
                     rpc_client_call_t **call)
{
    if (req == NULL && len > 0)
        return RPC_ERR_INVAL;
    int rc = call_new(ctx, ch, method, md,
                      len > UINT32_MAX ? (int64_t)UINT32_MAX + 1
                                       : (int64_t)len, call);
    if (rc == 0)
        unary_prepare(*call, req, len);
    return rc;
}

int rpc_client_unary(ctx_t *ctx, rpc_client_channel_t *ch, const char *method,
                     const rpc_metadata_t *md, const void *req, size_t len,
                     rpc_client_call_t **out)
{
    if (ch != NULL && rpc__client_on_loop(ch))
        return RPC_ERR_STATE;
    rpc_client_call_t *call;
    int rc = unary_new(ctx, ch, method, md, req, len, &call);
    if (rc != 0)
        return rc;
    if ((rc = call_begin(call)) != 0)
        return rc;
    int st = rpc_client_call_finish(call->ctx, call);
    if (out)
        *out = call;
    else
        rpc__call_unref(call);
    return st;
}

int rpc_client_unary_async(ctx_t *ctx, rpc_client_channel_t *ch,
                           const char *method, const rpc_metadata_t *md,
                           const void *req, size_t len,
                           rpc_client_done_cb on_done, void *user_data,
                           rpc_client_call_t **out)
{
    rpc_client_call_t *call;
    int rc = unary_new(ctx, ch, method, md, req, len, &call);
    if (rc != 0)
        return rc;
    call->on_done = on_done;
    call->user_data = user_data;
    call->auto_free = out == NULL;
    if ((rc = call_begin(call)) != 0)
        return rc;
    if (out)
        *out = call;
    return 0;
}
