/*
 * server_intercept.c -- the interceptor chain and the per-call hooks that
 * server_call.c calls at the four moments of a call's life:
 *
 *   srv_obs_call_new       loop   id, started counter, deadline-left
 *                                 histogram, live registry insert
 *   srv_obs_call_dispatch  loop   interceptors' on_start, in order; the
 *                                 first nonzero status refuses the call
 *   srv_obs_call_closed    loop   handled/messages counters, handling
 *                                 histogram, cancellations by cause,
 *                                 registry removal, on_end in reverse order
 *   srv_obs_call_freed     any    drain histogram (early end -> handler
 *                                 returned) and the ring of recently ended
 *                                 requests, for calls that ended early
 *
 * The live registry is striped by loop (OBS_NREG mutexes); a loop takes
 * only its own stripe, so the only contention is with a /ctxz page view,
 * which holds a stripe only while it takes references on its calls.
 * Registry links are guarded by the stripe's mutex; `registered` is
 * loop-only.  The recent ring (64 records) has its own mutex, taken only
 * for calls that ended early.
 */
#include "server_obs_impl.h"

#include "rpc_alog.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- names ---------------------------------------------------------------- */

const char *obs_kind_name(rpc_method_kind_t k)
{
    switch (k) {
    case RPC_UNARY:
        return "unary";
    case RPC_CLIENT_STREAMING:
        return "client_stream";
    case RPC_SERVER_STREAMING:
        return "server_stream";
    default:
        return "bidi_stream";
    }
}

const char *obs_code_name(int status)
{
    return rpc__code_name(status);
}

const char *obs_cause_name(int cause)
{
    switch (cause) {
    case RPC_CAUSE_DEADLINE:
        return "deadline";
    case RPC_CAUSE_CLIENT_CANCEL:
        return "client_cancel";
    case RPC_CAUSE_PEER_GONE:
        return "peer_gone";
    case RPC_CAUSE_KEEPALIVE:
        return "keepalive";
    case RPC_CAUSE_SHUTDOWN:
        return "shutdown";
    case RPC_CAUSE_PROTOCOL:
        return "protocol";
    case RPC_CAUSE_FINISHED:
        return "finished";
    default:
        return "none";
    }
}

void obs_split(const char *path, const char **svc, size_t *svclen,
               const char **meth)
{
    const char *slash = path && path[0] == '/' ? strchr(path + 1, '/') : NULL;
    if (slash == NULL) {
        *svc = "unknown";
        *svclen = 7;
        *meth = "unknown";
        return;
    }
    *svc = path + 1;
    *svclen = (size_t)(slash - path - 1);
    *meth = slash + 1;
}

/* ---- configuration ------------------------------------------------------- */

const struct obs_bounds obs_def_bounds = {
    11,
    {5 * CTX_MS, 10 * CTX_MS, 25 * CTX_MS, 50 * CTX_MS, 100 * CTX_MS,
     250 * CTX_MS, 500 * CTX_MS, CTX_SECOND, 2500 * CTX_MS, 5 * CTX_SECOND,
     10 * CTX_SECOND},
    {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
     "10"},
};
const struct obs_bounds obs_drain_bounds = {
    10,
    {100 * CTX_US, 250 * CTX_US, 500 * CTX_US, CTX_MS, 2500 * CTX_US,
     5 * CTX_MS, 10 * CTX_MS, 25 * CTX_MS, 100 * CTX_MS, CTX_SECOND},
    {"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
     "0.025", "0.1", "1"},
};

int obs_get(rpc_server_t *s, struct srv_obs **out)
{
    pthread_mutex_lock(&s->mu);
    int started = s->state != SRV_NEW;
    pthread_mutex_unlock(&s->mu);
    if (started)
        return RPC_ERR_STATE;
    if (s->obs == NULL) {
        struct srv_obs *o = rpc__calloc(1, sizeof *o);
        if (o == NULL)
            return RPC_ERR_NOMEM;
        o->s = s;
        o->start_ns = ctx_now();
        atomic_init(&o->next_id, 1);
        for (int i = 0; i < OBS_NREG; i++)
            pthread_mutex_init(&o->reg[i].mu, NULL);
        pthread_mutex_init(&o->recent_mu, NULL);
        s->obs = o;
    }
    *out = s->obs;
    return 0;
}

int rpc_server_add_interceptor(rpc_server_t *s,
                               const rpc_server_interceptor_t *ic,
                               void *user_data)
{
    if (s == NULL || ic == NULL)
        return RPC_ERR_INVAL;
    struct srv_obs *o;
    int rc = obs_get(s, &o);
    if (rc != 0)
        return rc;
    struct obs_ic *n = rpc__realloc(o->ics, (o->nics + 1) * sizeof *n);
    if (n == NULL)
        return RPC_ERR_NOMEM;
    n[o->nics].ic = *ic;
    n[o->nics].user_data = user_data;
    o->ics = n;
    o->nics++;
    return 0;
}

struct obs_method *obs_methods(struct srv_obs *o)
{
    struct obs_method *mm = atomic_load_explicit(&o->mm, memory_order_acquire);
    if (mm != NULL)
        return mm;
    rpc_server_t *s = o->s;
    pthread_mutex_lock(&s->mu);
    int running = s->state != SRV_NEW;
    pthread_mutex_unlock(&s->mu);
    if (!running) /* methods may still be added */
        return NULL;
    /* Methods are fixed from start on: whoever comes first builds it. */
    mm = rpc__calloc(s->nmethods ? s->nmethods : 1, sizeof *mm);
    if (mm == NULL)
        return NULL;
    struct obs_method *expected = NULL;
    if (!atomic_compare_exchange_strong(&o->mm, &expected, mm)) {
        free(mm);
        return expected;
    }
    o->nmm = s->nmethods; /* read by the renderer after the acquire load */
    return mm;
}

/* ---- the hooks ---------------------------------------------------------------- */

void obs_fill_info(struct rpc_call *call, rpc_server_call_info_t *info, int end)
{
    memset(info, 0, sizeof *info);
    info->ctx = call->vctx;
    info->method = call->path;
    info->kind = call->m->kind;
    info->peer = rpc_call_peer(call);
    info->metadata = rpc_call_metadata(call);
    info->id = call->obs.id;
    info->arrival_ns = call->arrival_ns;
    info->timeout_ns = call->timeout_ns;
    if (!end) {
        info->call = call;
        return;
    }
    info->dispatched = call->obs.dispatched;
    info->status = call->obs.status;
    info->cause = call->obs.cause;
    info->status_message = call->status_msg; /* fixed from FINAL on */
    info->duration_ns = ctx_now() - call->arrival_ns;
    info->msgs_in = call->obs.msgs_in;
    info->msgs_out = (uint64_t)(call->sent_msgs > 0 ? call->sent_msgs : 0);
    info->bytes_in = call->obs.bytes_in;
    info->bytes_out = call->obs.bytes_out;
}

static size_t method_index(struct rpc_call *call)
{
    return (size_t)(call->m - call->s->methods);
}

void srv_obs_call_new(struct rpc_call *call, struct srv_conn *c)
{
    struct srv_obs *o = call->s->obs;
    if (o == NULL)
        return;
    call->obs.id = atomic_fetch_add_explicit(&o->next_id, 1,
                                             memory_order_relaxed);
    if (c->obs_first_call_ns == 0)
        c->obs_first_call_ns = call->arrival_ns;
    call->obs.conn_start_ns = c->obs_first_call_ns;
    call->obs.conn_id = c->ctx;
    if (!o->metrics)
        return;
    struct obs_method *mm = obs_methods(o);
    if (mm != NULL)
        atomic_fetch_add_explicit(&mm[method_index(call)].started, 1,
                                  memory_order_relaxed);
    if (call->timeout_ns >= 0)
        obs_hist_add(&o->deadline_left, &obs_def_bounds, call->timeout_ns);
    struct obs_reg *r = &o->reg[call->lp->idx % OBS_NREG];
    pthread_mutex_lock(&r->mu);
    call->obs.rprev = NULL;
    call->obs.rnext = r->head;
    if (r->head)
        r->head->obs.rprev = call;
    r->head = call;
    pthread_mutex_unlock(&r->mu);
    call->obs.registered = 1;
}

int srv_obs_call_dispatch(struct rpc_call *call)
{
    struct srv_obs *o = call->s->obs;
    if (o == NULL || o->nics == 0) {
        call->obs.dispatched = 1;
        return 0;
    }
    rpc_server_call_info_t info;
    obs_fill_info(call, &info, 0);
    for (size_t i = 0; i < o->nics; i++) {
        if (o->ics[i].ic.on_start == NULL)
            continue;
        int st = o->ics[i].ic.on_start(&info, o->ics[i].user_data);
        if (st == 0)
            continue;
        if (st < 0 || st > 16)
            st = RPC_STATUS_UNKNOWN;
        srv_call_end(call, st, NULL, 0);
        return st;
    }
    call->obs.dispatched = 1;
    return 0;
}

void srv_obs_call_closed(struct rpc_call *call, int status, int cause,
                         int sent)
{
    struct srv_obs *o = call->s->obs;
    if (o == NULL)
        return;
    int64_t now = ctx_now();
    call->obs.status = status;
    call->obs.cause = cause;
    if (cause != RPC_CAUSE_FINISHED && cause != 0) {
        int64_t end = now;
        if (cause == RPC_CAUSE_DEADLINE && call->timeout_ns >= 0 &&
            call->arrival_ns + call->timeout_ns < now)
            end = call->arrival_ns + call->timeout_ns;
        call->obs.end_ns = end;
    }
    if (o->metrics) {
        struct obs_method *mm = obs_methods(o);
        if (mm != NULL) {
            struct obs_method *m = &mm[method_index(call)];
            atomic_fetch_add_explicit(&m->handled[status], 1,
                                      memory_order_relaxed);
            if (call->obs.msgs_in)
                atomic_fetch_add_explicit(&m->msg_recv, call->obs.msgs_in,
                                          memory_order_relaxed);
            if (sent > 0)
                atomic_fetch_add_explicit(&m->msg_sent, (uint64_t)sent,
                                          memory_order_relaxed);
            obs_hist_add(&m->handling, &obs_def_bounds,
                         now - call->arrival_ns);
        }
        if (cause >= RPC_CAUSE_CLIENT_CANCEL &&
            cause < RPC_CAUSE_CLIENT_CANCEL + SRV_NCAUSES &&
            cause != RPC_CAUSE_FINISHED)
            atomic_fetch_add_explicit(&o->cancels[SRV_CAUSE_INDEX(cause)], 1,
                                      memory_order_relaxed);
    }
    if (call->obs.registered) {
        struct obs_reg *r = &o->reg[call->lp->idx % OBS_NREG];
        pthread_mutex_lock(&r->mu);
        if (call->obs.rprev)
            call->obs.rprev->obs.rnext = call->obs.rnext;
        else
            r->head = call->obs.rnext;
        if (call->obs.rnext)
            call->obs.rnext->obs.rprev = call->obs.rprev;
        pthread_mutex_unlock(&r->mu);
        call->obs.registered = 0;
    }
    if (o->nics == 0)
        return;
    rpc_server_call_info_t info;
    obs_fill_info(call, &info, 1);
    info.msgs_out = sent > 0 ? (uint64_t)sent : 0;
    for (size_t i = o->nics; i-- > 0;)
        if (o->ics[i].ic.on_end != NULL)
            o->ics[i].ic.on_end(&info, o->ics[i].user_data);
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

void srv_obs_call_freed(struct rpc_call *call)
{
    struct srv_obs *o = call->s->obs;
    if (o == NULL || call->obs.end_ns == 0)
        return;
    /* The stream closed before the handler returned, or after: either
     * way everything under the request has ended once the call goes
     * (the handler waits for its sub-tasks; the request context's
     * cancel reached them at end_ns). */
    int64_t drain = ctx_now() - call->obs.end_ns;
    if (drain < 0)
        drain = 0;
    if (o->metrics)
        obs_hist_add(&o->drain, &obs_drain_bounds, drain);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct obs_recent rec = {
        .id = call->obs.id,
        .status = call->obs.status,
        .cause = call->obs.cause,
        .ended_wall_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 -
                         (ctx_now() - call->obs.end_ns) / CTX_MS,
        .duration_ns = call->obs.end_ns - call->arrival_ns,
        .drain_ns = drain,
    };
    copy_str(rec.method, sizeof rec.method, call->path);
    copy_str(rec.request_id, sizeof rec.request_id,
             rpc_metadata_get(call->vctx, "x-request-id", NULL));
    copy_str(rec.peer, sizeof rec.peer, rpc_call_peer(call));
    pthread_mutex_lock(&o->recent_mu);
    o->recent[o->nrecent % OBS_NRECENT] = rec;
    o->nrecent++;
    pthread_mutex_unlock(&o->recent_mu);
}

size_t obs_recent_copy(struct srv_obs *o, struct obs_recent *out, size_t max)
{
    pthread_mutex_lock(&o->recent_mu);
    size_t have = o->nrecent < OBS_NRECENT ? (size_t)o->nrecent : OBS_NRECENT;
    size_t n = have < max ? have : max;
    for (size_t i = 0; i < n; i++)
        out[i] = o->recent[(o->nrecent - 1 - i) % OBS_NRECENT];
    pthread_mutex_unlock(&o->recent_mu);
    return n;
}

size_t obs_live_calls(struct srv_obs *o, struct rpc_call **out, size_t max)
{
    size_t n = 0;
    for (int i = 0; i < OBS_NREG && n < max; i++) {
        struct obs_reg *r = &o->reg[i];
        pthread_mutex_lock(&r->mu);
        for (struct rpc_call *c = r->head; c && n < max; c = c->obs.rnext) {
            /* Linked calls still hold their stream's reference. */
            atomic_fetch_add(&c->refs, 1);
            out[n++] = c;
        }
        pthread_mutex_unlock(&r->mu);
    }
    return n;
}

/* ---- teardown ------------------------------------------------------------- */

void srv_obs_free(rpc_server_t *s)
{
    struct srv_obs *o = s->obs;
    if (o == NULL)
        return;
    obs_admin_free(o->admin);
    obs_alog_free(o->alog);
    for (int i = 0; i < OBS_NREG; i++)
        pthread_mutex_destroy(&o->reg[i].mu);
    pthread_mutex_destroy(&o->recent_mu);
    free(atomic_load(&o->mm));
    free(o->ics);
    free(o);
    s->obs = NULL;
}
