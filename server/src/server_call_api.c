/*
 * server_call_api.c -- the handler side of a call (<rpc/server.h>'s
 * rpc_call_* functions): request metadata, response headers, trailers and
 * status message, sending (with back-pressure and optional compression),
 * receiving (with flow control), and finishing a pending non-blocking call.
 *
 * Threads: these run on handler threads (blocking handlers), on the loop
 * (non-blocking handlers) or on any thread holding a pending call.  They
 * touch only the fields of struct rpc_call marked [mu], under call->mu,
 * and hand everything else to the loop with srv_loop_notify(); they never
 * call nghttp2.  Blocking waits (send over the buffer, recv with nothing
 * queued) sleep on call->cv, which the loop signals whenever the queue
 * drains or the call ends for any reason.
 */
#include "server_internal.h"

#include <stdlib.h>
#include <string.h>

/* The call has been answered: whatever the handler does now is dropped. */
static int answered(rpc_call_t *call)
{
    return atomic_load_explicit(&call->state, memory_order_acquire) >=
           SRV_CALL_FINAL;
}

/* ---- the handler API -------------------------------------------------------- */

ctx_t *rpc_call_ctx(rpc_call_t *call)
{
    return call ? call->vctx : NULL;
}

const rpc_metadata_t *rpc_call_metadata(rpc_call_t *call)
{
    return call ? rpc_metadata_from_ctx(call->vctx) : NULL;
}

const char *rpc_call_method(rpc_call_t *call)
{
    return call ? call->path : NULL;
}

const char *rpc_call_peer(rpc_call_t *call)
{
    const rpc__request_info_t *info = call ? rpc__request_info(call->vctx) : NULL;
    return info ? info->peer : NULL;
}

const char *rpc_server_method(ctx_t *c)
{
    const rpc__request_info_t *info = rpc__request_info(c);
    return info ? info->method : NULL;
}

const char *rpc_server_peer(ctx_t *c)
{
    const rpc__request_info_t *info = rpc__request_info(c);
    return info ? info->peer : NULL;
}

static int add_md(rpc_call_t *call, rpc_metadata_t **mdp, int headers,
                  const char *key, const void *value, size_t len)
{
    if (call == NULL || key == NULL)
        return RPC_ERR_INVAL;
    int rc;
    pthread_mutex_lock(&call->mu);
    if (answered(call))
        rc = RPC_ERR_CLOSED;
    else if (headers && call->hdrs_frozen)
        rc = RPC_ERR_STATE;
    else if (*mdp == NULL && (*mdp = rpc_metadata_new()) == NULL)
        rc = RPC_ERR_NOMEM;
    else
        rc = rpc_metadata_add(*mdp, key, value, len);
    pthread_mutex_unlock(&call->mu);
    return rc;
}

int rpc_call_set_header(rpc_call_t *call, const char *key, const void *value,
                        size_t len)
{
    return add_md(call, call ? &call->rsp_headers : NULL, 1, key, value, len);
}

int rpc_call_set_trailer(rpc_call_t *call, const char *key, const void *value,
                         size_t len)
{
    return add_md(call, call ? &call->rsp_trailers : NULL, 0, key, value, len);
}

int rpc_call_set_status_message(rpc_call_t *call, const char *msg)
{
    if (call == NULL)
        return RPC_ERR_INVAL;
    char *copy = msg ? rpc__strdup(msg) : NULL;
    if (msg && copy == NULL)
        return RPC_ERR_NOMEM;
    pthread_mutex_lock(&call->mu);
    int rc = answered(call) ? RPC_ERR_CLOSED : 0;
    if (rc == 0) {
        free(call->status_msg);
        call->status_msg = copy;
        copy = NULL;
    }
    pthread_mutex_unlock(&call->mu);
    free(copy);
    return rc;
}

static int closed_err(rpc_call_t *call)
{
    int e = rpc_err_from_ctx(call->vctx);
    return e ? e : RPC_ERR_CLOSED;
}

int rpc_call_send(rpc_call_t *call, const struct ProtobufCMessage *msg)
{
    if (call == NULL || msg == NULL)
        return RPC_ERR_INVAL;
    int loop = srv_call_on_loop_thread(call);
    size_t len = protobuf_c_message_get_packed_size(msg);
    if (len > UINT32_MAX)
        return RPC_ERR_INVAL;
    /* compress_on is set only after send_enc, both under mu. */
    int enc = atomic_load_explicit(&call->compress_on, memory_order_acquire)
                  ? call->send_enc : 0;
    struct out_chunk *o;
    if (enc) {
        uint8_t *plain = rpc__malloc(len ? len : 1), *z;
        size_t zl;
        if (plain == NULL)
            return RPC_ERR_NOMEM;
        protobuf_c_message_pack(msg, plain);
        int zrc = rpc__compress(enc, plain, len, &z, &zl);
        free(plain);
        if (zrc != 0)
            return zrc;
        o = rpc__malloc(sizeof *o + RPC__FRAME_HDR + zl);
        if (o == NULL) {
            free(z);
            return RPC_ERR_NOMEM;
        }
        rpc__frame_header(o->data, 1, (uint32_t)zl);
        memcpy(o->data + RPC__FRAME_HDR, z, zl);
        free(z);
        len = zl;
    } else {
        o = rpc__malloc(sizeof *o + RPC__FRAME_HDR + len);
        if (o == NULL)
            return RPC_ERR_NOMEM;
        rpc__frame_header(o->data, 0, (uint32_t)len);
        protobuf_c_message_pack(msg, o->data + RPC__FRAME_HDR);
    }
    o->len = RPC__FRAME_HDR + len;
    o->off = 0;
    o->next = NULL;
    int rc = 0;
    int notify = 0;
    pthread_mutex_lock(&call->mu);
    if (srv_method_unary_out(call->m) && call->sent_msgs > 0 &&
        !answered(call)) {
        /* A second response on a unary call is a handler bug: the call
         * fails rather than ending OK with a message lost. */
        rc = RPC_ERR_STATE;
        srv_call_decide_locked(call, RPC_STATUS_INTERNAL,
                               "handler sent a second response message on "
                               "a unary call", 1);
        notify = 1;
    }
    while (rc == 0 && !loop && !answered(call) &&
           call->out_bytes > call->s->o.send_buffer)
        pthread_cond_wait(&call->cv, &call->mu);
    if (rc == 0 && answered(call))
        rc = closed_err(call);
    if (rc == 0) {
        if (call->outq_tail)
            call->outq_tail->next = o;
        else
            call->outq = o;
        call->outq_tail = o;
        call->out_bytes += o->len;
        call->sent_msgs++;
        o = NULL;
        notify = 1;
    }
    pthread_mutex_unlock(&call->mu);
    rpc__free(o);
    /* From the non-blocking handler running inline on the loop, the loop
     * pumps as soon as it returns; from anywhere else, wake the loop. */
    if (rc == 0 && loop && call->evented) {
        pthread_mutex_lock(&call->mu);
        if (call->out_bytes > call->s->o.send_buffer)
            call->ev_ready_wanted = 1;
        pthread_mutex_unlock(&call->mu);
    }
    if (notify && !(loop && call->on_loop_handler))
        srv_loop_notify(call);
    return rc;
}

int rpc_call_recv(rpc_call_t *call, struct ProtobufCMessage **msg)
{
    if (call == NULL || msg == NULL)
        return RPC_ERR_INVAL;
    if (!srv_method_streaming_in(call->m) || srv_call_on_loop_thread(call))
        return RPC_ERR_STATE;
    *msg = NULL;
    int reopen = 0;
    pthread_mutex_lock(&call->mu);
    while (call->inq == NULL && !call->in_eof && !answered(call))
        pthread_cond_wait(&call->cv, &call->mu);
    struct in_msg *m = NULL;
    int rc;
    if (answered(call)) {
        rc = closed_err(call);
    } else if (call->inq) {
        m = call->inq;
        call->inq = m->next;
        if (call->inq == NULL)
            call->inq_tail = NULL;
        size_t before = call->inq_bytes;
        call->inq_bytes -= m->len + RPC__FRAME_HDR;
        reopen = before > INQ_HIGH && call->inq_bytes <= INQ_HIGH;
        rc = 0;
    } else {
        rc = RPC_ERR_EOF;
    }
    pthread_mutex_unlock(&call->mu);
    if (reopen)
        srv_loop_notify(call); /* the loop gives the window back */
    if (m == NULL)
        return rc;
    int drc = srv_call_decode(call, m->flag, m->data, m->len, msg);
    rpc__free(m);
    return drc;
}

bool rpc_call_received_compressed(rpc_call_t *call)
{
    return call && call->last_in_compressed;
}

int rpc_call_set_compression(rpc_call_t *call, bool on)
{
    if (call == NULL)
        return RPC_ERR_INVAL;
    int enc = call->accept_mask & (1u << RPC__ENC_GZIP)      ? RPC__ENC_GZIP
              : call->accept_mask & (1u << RPC__ENC_DEFLATE) ? RPC__ENC_DEFLATE
                                                             : 0;
    int rc = 0;
    pthread_mutex_lock(&call->mu);
    if (answered(call))
        rc = RPC_ERR_CLOSED;
    else if (!on)
        atomic_store_explicit(&call->compress_on, 0, memory_order_release);
    else if (enc == 0)
        rc = RPC_ERR_UNSUPPORTED;
    else if (call->send_enc == 0 && call->hdrs_frozen)
        rc = RPC_ERR_STATE;
    else {
        if (call->send_enc == 0)
            call->send_enc = enc;
        atomic_store_explicit(&call->compress_on, 1, memory_order_release);
    }
    pthread_mutex_unlock(&call->mu);
    return rc;
}

int rpc_call_finish(rpc_call_t *call, int status, const char *msg)
{
    if (call == NULL)
        return RPC_ERR_INVAL;
    if (call->evented) {
        /* An event-driven call finishes on its loop (its events are
         * loop-only): from anywhere else, events could still be running. */
        if (!srv_call_on_loop_thread(call))
            return RPC_ERR_STATE;
        call->evented = 0;
    }
    int rc = 0;
    if (msg)
        rc = rpc_call_set_status_message(call, msg);
    if (answered(call))
        rc = RPC_ERR_CLOSED;
    srv_call_complete(call, status);
    ProtobufCMessage *req = call->nb_req;
    call->nb_req = NULL;
    if (req)
        protobuf_c_message_free_unpacked(req, NULL);
    srv_loop_notify(call);
    srv_call_release(call);
    return rc;
}
