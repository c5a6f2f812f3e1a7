/*
 * server_obs_impl.h -- the state behind server_observe.h, shared by
 * server_intercept.c, server_metrics.c, server_accesslog.c and
 * server_admin.c only.  Not installed.
 *
 * The whole struct srv_obs is built before rpc_server_start() (the public
 * enable/add functions refuse RPC_ERR_STATE afterwards), so its
 * configuration fields are read-only while loops run; the counters are
 * atomics, the registry and the recent ring have their own leaf mutexes.
 */
#ifndef SERVER_OBS_IMPL_H
#define SERVER_OBS_IMPL_H

#include "server_internal.h"

#include <stdio.h>

/* ---- histograms: non-cumulative bucket counts, cumulated at scrape ----- */

#define OBS_MAXB 12
struct obs_hist {
    atomic_uint_fast64_t b[OBS_MAXB + 1]; /* last: above every bound */
    atomic_uint_fast64_t sum_ns;
};
struct obs_bounds {
    int n;
    int64_t ns[OBS_MAXB];
    const char *le[OBS_MAXB]; /* their Prometheus spelling */
};
extern const struct obs_bounds obs_def_bounds;   /* prom.DefBuckets */
extern const struct obs_bounds obs_drain_bounds; /* 100 us .. 1 s */

static inline void obs_hist_add(struct obs_hist *h, const struct obs_bounds *bd,
                                int64_t ns)
{
    if (ns < 0)
        ns = 0;
    int i = 0;
    while (i < bd->n && ns > bd->ns[i])
        i++;
    atomic_fetch_add_explicit(&h->b[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, (uint_fast64_t)ns,
                              memory_order_relaxed);
}

/* ---- per method, indexed like s->methods (fixed once running) --------- */

struct obs_method {
    atomic_uint_fast64_t started, msg_recv, msg_sent;
    atomic_uint_fast64_t handled[17];
    struct obs_hist handling;
};

/* ---- interceptors ------------------------------------------------------ */

struct obs_ic {
    rpc_server_interceptor_t ic;
    void *user_data;
};

/* ---- the live registry and the recent ring ---------------------------- */

#define OBS_NREG 16 /* stripes, by loop index */
struct obs_reg {
    pthread_mutex_t mu;
    struct rpc_call *head; /* [mu] */
    char pad[64];
};

#define OBS_NRECENT 64
struct obs_recent {
    uint64_t id;
    char method[96];
    char request_id[48];
    char peer[48];
    int status, cause;
    int64_t ended_wall_ms;  /* CLOCK_REALTIME of the early end */
    int64_t duration_ns;    /* arrival -> stream closed */
    int64_t drain_ns;       /* early end -> handler returned, call freed */
};

struct obs_alog;
struct obs_admin;

struct srv_obs {
    rpc_server_t *s;
    struct obs_ic *ics;
    size_t nics;
    int metrics;              /* admin enabled: counters and registry on */
    int64_t start_ns;
    atomic_uint_fast64_t next_id;
    _Atomic(struct obs_method *) mm; /* built on first use once running */
    size_t nmm;
    atomic_uint_fast64_t cancels[SRV_NCAUSES];
    struct obs_hist deadline_left; /* grpc-timeout on arrival */
    struct obs_hist drain;         /* early end -> handler returned */
    struct obs_reg reg[OBS_NREG];
    pthread_mutex_t recent_mu;
    struct obs_recent recent[OBS_NRECENT]; /* [recent_mu] */
    uint64_t nrecent;                      /* [recent_mu] total pushed */
    struct obs_alog *alog;
    struct obs_admin *admin;
};

/* Creates s->obs if needed (before start only: RPC_ERR_STATE after). */
int obs_get(rpc_server_t *s, struct srv_obs **out);
/* The per-method array (NULL: out of memory or not running yet). */
struct obs_method *obs_methods(struct srv_obs *o);

/* "unary", "client_stream", "server_stream", "bidi_stream". */
const char *obs_kind_name(rpc_method_kind_t k);
/* Go's codes.Code.String(): "OK", "Canceled", ... */
const char *obs_code_name(int status);
/* "deadline", "client_cancel", "peer_gone", "keepalive", "shutdown",
 * "protocol", "finished", or "none". */
const char *obs_cause_name(int cause);
/* Splits "/pkg.Svc/Method" into service and method ("unknown" when not). */
void obs_split(const char *path, const char **svc, size_t *svclen,
               const char **meth);

/* Fills the public info of a call (end fields from its obs when end). */
void obs_fill_info(struct rpc_call *call, rpc_server_call_info_t *info,
                   int end);

/* Prometheus text of everything (server_metrics.c), appended to out. */
struct evbuffer;
void obs_metrics_render(struct srv_obs *o, struct evbuffer *out);

/* Copies up to max recent records, newest first (server_intercept.c). */
size_t obs_recent_copy(struct srv_obs *o, struct obs_recent *out, size_t max);
/* Takes a reference on up to max live calls (server_intercept.c); the
 * caller drops each with srv_call_release(). */
size_t obs_live_calls(struct srv_obs *o, struct rpc_call **out, size_t max);

void obs_alog_free(struct obs_alog *a);
uint64_t obs_alog_dropped(struct obs_alog *a);
void obs_admin_free(struct obs_admin *a);

/* JSON string escaping into an evbuffer (quotes included). */
void obs_json_str(struct evbuffer *b, const char *s);

#endif /* SERVER_OBS_IMPL_H */
