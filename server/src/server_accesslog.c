/*
 * server_accesslog.c -- the server's access log: an interceptor whose
 * on_end (loop thread) copies one record per call into the shared
 * lock-free ring of rpc_alog.c, whose writer thread formats it as a JSON
 * line and writes it to the log's fd.  A full ring drops the record and
 * counts it; a loop never waits for the disk.
 *
 * A server line (README, "Access log"):
 *   {"time":"2026-12-04T19:45:01.123456Z","side":"server","call_id":17,
 *    "peer":"ipv4:127.0.0.1:40000","method":"/demo.v1.Demo/Fanout",
 *    "type":"unary","code":4,"status":"DeadlineExceeded",
 *    "cause":"deadline","message":"Deadline Exceeded",
 *    "duration_ms":50.113,"deadline_ms":50.000,"request_id":"r-1",
 *    "trace_id":"4bf9...","span_id":"00f0...","parent_span_id":"",
 *    "bytes_in":12,"bytes_out":0,"msgs_in":1,"msgs_out":0}
 * deadline_ms is the grpc-timeout on arrival (null: none); trace_id and
 * span_id come from the request's traceparent: the span the calling
 * client opened for this hop ("" when absent).
 */
#include "server_obs_impl.h"

#include "rpc_alog.h"

#include <string.h>
#include <time.h>

struct obs_alog {
    rpc__alog_t *ring;
};

static void on_end(const rpc_server_call_info_t *info, void *ud)
{
    struct obs_alog *a = ud;
    void *slot;
    struct rpc__alog_rec *r = rpc__alog_claim(a->ring, &slot);
    if (r == NULL)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r->side = "server";
    r->type = obs_kind_name(info->kind);
    r->wall_ns = (int64_t)ts.tv_sec * CTX_SECOND + ts.tv_nsec;
    r->duration_ns = info->duration_ns;
    r->timeout_ns = info->timeout_ns;
    r->id = info->id;
    r->status = info->status;
    r->cause = obs_cause_name(info->cause);
    r->msgs_in = info->msgs_in;
    r->msgs_out = info->msgs_out;
    r->bytes_in = info->bytes_in;
    r->bytes_out = info->bytes_out;
    rpc__alog_copy(r->peer, sizeof r->peer, info->peer);
    rpc__alog_copy(r->method, sizeof r->method, info->method);
    rpc__alog_copy(r->request_id, sizeof r->request_id,
         rpc_metadata_get(info->ctx, "x-request-id", NULL));
    rpc__trace_ids(rpc_metadata_get(info->ctx, "traceparent", NULL),
                   r->trace_id, r->span_id);
    r->parent_span_id[0] = '\0';
    rpc__alog_copy(r->message, sizeof r->message, info->status_message);
    rpc__alog_commit(a->ring, slot);
}

int rpc_server_enable_access_log(rpc_server_t *s, int fd)
{
    if (s == NULL || fd < 0)
        return RPC_ERR_INVAL;
    struct srv_obs *o;
    int rc = obs_get(s, &o);
    if (rc != 0)
        return rc;
    if (o->alog != NULL)
        return RPC_ERR_STATE;
    struct obs_alog *a = rpc__calloc(1, sizeof *a);
    if (a == NULL || (a->ring = rpc__alog_new(fd)) == NULL) {
        free(a);
        return RPC_ERR_NOMEM;
    }
    rpc_server_interceptor_t ic = {.on_end = on_end};
    rc = rpc_server_add_interceptor(s, &ic, a);
    if (rc != 0) {
        rpc__alog_free(a->ring);
        free(a);
        return rc;
    }
    o->alog = a;
    return 0;
}

uint64_t obs_alog_dropped(struct obs_alog *a)
{
    return a ? rpc__alog_dropped(a->ring) : 0;
}

uint64_t rpc_server_access_log_dropped(const rpc_server_t *s)
{
    return s && s->obs ? obs_alog_dropped(s->obs->alog) : 0;
}

void obs_alog_free(struct obs_alog *a)
{
    if (a == NULL)
        return;
    rpc__alog_free(a->ring);
    free(a);
}
