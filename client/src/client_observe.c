/*
 * client_observe.c -- the client's observability: a new trace span per hop
 * (the traceparent a call propagates gets a fresh parent-id), and the
 * observer -- grpc_client_* metrics, interceptors, an access log.
 *
 * Metrics are lock-free: an observer has a fixed open-addressing table of
 * OBS_CSLOTS method slots; a call finds its (method, unary) slot by hash
 * and linear probing, and a new method is inserted with a compare-and-swap
 * of the slot's pointer (the loser frees its copy and uses the winner's).
 * Slots are never removed; a full table leaves further methods uncounted
 * (rpc_client_methods_overflow_total says how many calls).  Counters and
 * histograms are relaxed atomics; rendering reads them one by one.
 *
 * Threads: start hooks run on the caller's thread, end hooks on the
 * channel's loop thread, the metrics text on whichever thread asks (the
 * server's admin thread in a gateway).  Interceptors and the log are
 * configured before the observer is attached to options and read-only
 * afterwards.
 */
#include "client_internal.h"

#include "rpc_alog.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define OBS_CSLOTS 256
#define NB 11

static const int64_t bounds_ns[NB] = {
    5 * CTX_MS,   10 * CTX_MS,   25 * CTX_MS, 50 * CTX_MS,
    100 * CTX_MS, 250 * CTX_MS,  500 * CTX_MS, CTX_SECOND,
    2500 * CTX_MS, 5 * CTX_SECOND, 10 * CTX_SECOND};
static const char *const bounds_le[NB] = {"0.005", "0.01", "0.025", "0.05",
                                          "0.1",   "0.25", "0.5",   "1",
                                          "2.5",   "5",    "10"};

struct obs_cmethod {
    char *path;
    int unary;
    atomic_uint_fast64_t started, msg_recv, msg_sent, handled[17];
    atomic_uint_fast64_t b[NB + 1], sum_ns;
};

struct cic {
    rpc_client_interceptor_t ic;
    void *user_data;
};

struct rpc_client_observer {
    struct cic *ics;
    size_t nics;
    rpc__alog_t *log;
    atomic_uint_fast64_t next_id;
    atomic_uint_fast64_t overflow;
    _Atomic(struct obs_cmethod *) tab[OBS_CSLOTS];
};

/* ---- span ids -------------------------------------------------------------- */

static _Thread_local uint64_t rng_state;

static uint64_t rnd64(void)
{
    if (rng_state == 0) {
        uint64_t seed = 0;
        if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
            seed = (uint64_t)ctx_now() ^ (uint64_t)(uintptr_t)&seed;
        rng_state = seed | 1;
    }
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static int is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int rpc__client_obs_propagate(rpc_client_call_t *call, const char *k,
                              const char *v, size_t n)
{
    if (strcmp(k, "traceparent") != 0)
        return 0;
    /* version 00: "00-" 32 hex "-" 16 hex "-" 2 hex; anything else is
     * forwarded as it is (the caller adds it). */
    if (n < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' ||
        !is_hex(v + 3, 32) || !is_hex(v + 36, 16))
        return 0;
    char out[56];
    uint64_t span;
    do
        span = rnd64();
    while (span == 0); /* all-zero parent-id is invalid */
    snprintf(out, sizeof out, "%.2s-%.32s-%016" PRIx64 "-%.2s", v, v + 3, span,
             v + 53);
    memcpy(call->obs.trace_id, v + 3, 32);
    call->obs.trace_id[32] = '\0';
    memcpy(call->obs.parent_span_id, v + 36, 16);
    call->obs.parent_span_id[16] = '\0';
    memcpy(call->obs.span_id, out + 36, 16);
    call->obs.span_id[16] = '\0';
    if (call->md == NULL && (call->md = rpc_metadata_new()) == NULL)
        return RPC_ERR_NOMEM;
    int rc = rpc_metadata_add(call->md, k, out, 55);
    return rc == 0 ? 1 : rc;
}

/* ---- the observer ------------------------------------------------------------ */

rpc_client_observer_t *rpc_client_observer_new(void)
{
    rpc_client_observer_t *ob = rpc__calloc(1, sizeof *ob);
    if (ob != NULL)
        atomic_init(&ob->next_id, 1);
    return ob;
}

void rpc_client_observer_free(rpc_client_observer_t *ob)
{
    if (ob == NULL)
        return;
    rpc__alog_free(ob->log);
    for (int i = 0; i < OBS_CSLOTS; i++) {
        struct obs_cmethod *m = atomic_load(&ob->tab[i]);
        if (m) {
            free(m->path);
            free(m);
        }
    }
    free(ob->ics);
    free(ob);
}

int rpc_client_observer_add_interceptor(rpc_client_observer_t *ob,
                                        const rpc_client_interceptor_t *ic,
                                        void *user_data)
{
    if (ob == NULL || ic == NULL)
        return RPC_ERR_INVAL;
    struct cic *n = rpc__realloc(ob->ics, (ob->nics + 1) * sizeof *n);
    if (n == NULL)
        return RPC_ERR_NOMEM;
    n[ob->nics].ic = *ic;
    n[ob->nics].user_data = user_data;
    ob->ics = n;
    ob->nics++;
    return 0;
}

int rpc_client_observer_enable_access_log(rpc_client_observer_t *ob, int fd)
{
    if (ob == NULL || fd < 0)
        return RPC_ERR_INVAL;
    if (ob->log != NULL)
        return RPC_ERR_STATE;
    ob->log = rpc__alog_new(fd);
    return ob->log ? 0 : RPC_ERR_NOMEM;
}

int rpc_client_options_set_observer(rpc_client_options_t *o,
                                    rpc_client_observer_t *ob)
{
    if (o == NULL)
        return RPC_ERR_INVAL;
    o->observer = ob;
    return 0;
}

static struct obs_cmethod *slot_of(rpc_client_observer_t *ob, const char *path,
                                   int unary)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (const char *p = path; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211u;
    h ^= (uint64_t)unary;
    struct obs_cmethod *fresh = NULL;
    for (int i = 0; i < OBS_CSLOTS; i++) {
        _Atomic(struct obs_cmethod *) *s = &ob->tab[(h + (uint64_t)i) % OBS_CSLOTS];
        struct obs_cmethod *m = atomic_load_explicit(s, memory_order_acquire);
        while (m == NULL) {
            if (fresh == NULL) {
                fresh = rpc__calloc(1, sizeof *fresh);
                if (fresh == NULL || (fresh->path = rpc__strdup(path)) == NULL) {
                    free(fresh);
                    return NULL;
                }
                fresh->unary = unary;
            }
            if (atomic_compare_exchange_strong_explicit(
                    s, &m, fresh, memory_order_acq_rel, memory_order_acquire))
                return fresh;
        }
        if (m->unary == unary && strcmp(m->path, path) == 0) {
            if (fresh) {
                free(fresh->path);
                free(fresh);
            }
            return m;
        }
    }
    if (fresh) {
        free(fresh->path);
        free(fresh);
    }
    atomic_fetch_add_explicit(&ob->overflow, 1, memory_order_relaxed);
    return NULL;
}

/* ---- the hooks ------------------------------------------------------------- */

static void fill(rpc_client_call_t *call, rpc_client_call_info_t *i)
{
    memset(i, 0, sizeof *i);
    i->ctx = call->ctx;
    i->method = call->method;
    i->target = call->ch->target;
    i->id = call->obs.id;
    i->start_ns = call->obs.start_ns;
    i->timeout_ns = call->has_deadline ? call->deadline - call->obs.start_ns : -1;
    i->trace_id = call->obs.trace_id;
    i->span_id = call->obs.span_id;
    i->parent_span_id = call->obs.parent_span_id;
}

void rpc__client_obs_start(rpc_client_call_t *call)
{
    rpc_client_observer_t *ob = call->ch->opts.observer;
    if (ob == NULL)
        return;
    call->obs.start_ns = ctx_now();
    call->obs.id = atomic_fetch_add_explicit(&ob->next_id, 1, memory_order_relaxed);
    if (call->obs.trace_id[0] == '\0' && call->md != NULL) {
        /* A traceparent the caller set itself: logged as it is. */
        const char *tp = rpc_metadata_find(call->md, "traceparent", NULL);
        char span[17];
        rpc__trace_ids(tp, call->obs.trace_id, span);
        memcpy(call->obs.span_id, span, sizeof span);
    }
    const char *rid = call->md ? rpc_metadata_find(call->md, "x-request-id", NULL)
                               : NULL;
    rpc__alog_copy(call->obs.request_id, sizeof call->obs.request_id,
         rid ? rid : rpc_metadata_get(call->ctx, "x-request-id", NULL));
    call->obs.m = slot_of(ob, call->method, call->unary);
    if (call->obs.m)
        atomic_fetch_add_explicit(&call->obs.m->started, 1, memory_order_relaxed);
    if (call->unary && call->flat) { /* framed already, not yet queued */
        atomic_store_explicit(&call->obs.msgs_out, 1, memory_order_relaxed);
        atomic_store_explicit(&call->obs.bytes_out, call->out_len,
                              memory_order_relaxed);
    }
    if (ob->nics == 0)
        return;
    rpc_client_call_info_t info;
    fill(call, &info);
    info.metadata = call->md;
    for (size_t k = 0; k < ob->nics && call->obs.refused == 0; k++) {
        if (ob->ics[k].ic.on_start == NULL)
            continue;
        int st = ob->ics[k].ic.on_start(&info, ob->ics[k].user_data);
        if (st != 0) /* the loop fails the call at its start op */
            call->obs.refused = st > 0 && st <= 16 ? st : RPC_STATUS_UNKNOWN;
    }
}

void rpc__client_obs_sent(rpc_client_call_t *call, size_t len)
{
    if (call->ch->opts.observer == NULL)
        return;
    atomic_fetch_add_explicit(&call->obs.msgs_out, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&call->obs.bytes_out, len + 5, memory_order_relaxed);
}

/* The context's cause as a word.  A gateway's calls run under server
 * request contexts, whose causes are <rpc/server.h>'s RPC_CAUSE_*
 * (0x5250001 + i, in this order); the client does not include that
 * header, so the numbers are spelled here. */
static const char *cause_word(int cause)
{
    static const char *const words[] = {"client_cancel", "peer_gone", "deadline",
                                        "shutdown", "keepalive", "finished",
                                        "protocol"};
    if (cause == 0)
        return "none";
    if (cause >= 0x5250001 && cause < 0x5250001 + 7)
        return words[cause - 0x5250001];
    return "other";
}


void rpc__client_obs_end(rpc_client_call_t *call, int status, int cause,
                         const char *msg)
{
    rpc_client_observer_t *ob = call->ch->opts.observer;
    if (ob == NULL || call->obs.start_ns == 0)
        return;
    int64_t dur = ctx_now() - call->obs.start_ns;
    if (status < 0 || status > 16)
        status = RPC_STATUS_UNKNOWN;
    struct obs_cmethod *m = call->obs.m;
    uint64_t out = atomic_load_explicit(&call->obs.msgs_out, memory_order_relaxed);
    if (m) {
        atomic_fetch_add_explicit(&m->handled[status], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&m->msg_recv, call->nmsgs, memory_order_relaxed);
        atomic_fetch_add_explicit(&m->msg_sent, out, memory_order_relaxed);
        int b = 0;
        while (b < NB && dur > bounds_ns[b])
            b++;
        atomic_fetch_add_explicit(&m->b[b], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&m->sum_ns, (uint64_t)(dur > 0 ? dur : 0),
                                  memory_order_relaxed);
    }
    rpc_client_call_info_t info;
    fill(call, &info);
    info.status = status;
    info.cause = cause;
    info.status_message = msg ? msg : "";
    info.duration_ns = dur;
    info.msgs_in = call->nmsgs;
    info.msgs_out = out;
    info.bytes_in = call->obs.bytes_in;
    info.bytes_out = atomic_load_explicit(&call->obs.bytes_out, memory_order_relaxed);
    for (size_t k = ob->nics; k-- > 0;)
        if (ob->ics[k].ic.on_end)
            ob->ics[k].ic.on_end(&info, ob->ics[k].user_data);
    if (ob->log == NULL)
        return;
    void *slot;
    struct rpc__alog_rec *r = rpc__alog_claim(ob->log, &slot);
    if (r == NULL)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r->side = "client";
    r->type = call->unary ? "unary" : "bidi_stream";
    r->wall_ns = (int64_t)ts.tv_sec * CTX_SECOND + ts.tv_nsec;
    r->duration_ns = dur;
    r->timeout_ns = info.timeout_ns;
    r->id = info.id;
    r->status = status;
    r->cause = cause_word(cause);
    r->msgs_in = info.msgs_in;
    r->msgs_out = info.msgs_out;
    r->bytes_in = info.bytes_in;
    r->bytes_out = info.bytes_out;
    rpc__alog_copy(r->peer, sizeof r->peer, call->ch->target);
    rpc__alog_copy(r->method, sizeof r->method, call->method);
    rpc__alog_copy(r->request_id, sizeof r->request_id, call->obs.request_id);
    rpc__alog_copy(r->trace_id, sizeof r->trace_id, call->obs.trace_id);
    rpc__alog_copy(r->span_id, sizeof r->span_id, call->obs.span_id);
    rpc__alog_copy(r->parent_span_id, sizeof r->parent_span_id, call->obs.parent_span_id);
    rpc__alog_copy(r->message, sizeof r->message, msg);
    rpc__alog_commit(ob->log, slot);
}

/* ---- metrics text ------------------------------------------------------------ */

struct sb {
    char *p;
    size_t len, cap;
};

static void sbf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sbf(struct sb *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0,
                          fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 8192;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *q = rpc__realloc(b->p, cap);
        if (q == NULL)
            return;
        b->p = q;
        b->cap = cap;
    }
}

static void labels(struct sb *b, const struct obs_cmethod *m, char *out, size_t cap)
{
    (void)b;
    const char *path = m->path;
    const char *slash = path[0] == '/' ? strchr(path + 1, '/') : NULL;
    if (slash == NULL)
        snprintf(out, cap, "grpc_type=\"%s\",grpc_service=\"unknown\","
                 "grpc_method=\"unknown\"", m->unary ? "unary" : "bidi_stream");
    else
        snprintf(out, cap, "grpc_type=\"%s\",grpc_service=\"%.*s\",grpc_method=\"%s\"",
                 m->unary ? "unary" : "bidi_stream", (int)(slash - path - 1),
                 path + 1, slash + 1);
}

#define L(x) ((uint64_t)atomic_load_explicit(&(x), memory_order_relaxed))

size_t rpc_client_observer_metrics(char *buf, size_t len, void *arg)
{
    rpc_client_observer_t *ob = arg;
    struct sb b = {0};
    struct obs_cmethod *ms[OBS_CSLOTS];
    int n = 0;
    for (int i = 0; ob && i < OBS_CSLOTS; i++) {
        struct obs_cmethod *m = atomic_load_explicit(&ob->tab[i], memory_order_acquire);
        if (m)
            ms[n++] = m;
    }
    char lab[256];
    static const char *const names[] = {"OK", "Canceled", "Unknown",
        "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists",
        "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
        "Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable",
        "DataLoss", "Unauthenticated"};
    sbf(&b, "# HELP grpc_client_started_total Total number of RPCs started on "
            "the client.\n# TYPE grpc_client_started_total counter\n");
    for (int i = 0; i < n; i++) {
        labels(&b, ms[i], lab, sizeof lab);
        sbf(&b, "grpc_client_started_total{%s} %" PRIu64 "\n", lab, L(ms[i]->started));
    }
    sbf(&b, "# HELP grpc_client_handled_total Total number of RPCs completed by "
            "the client, regardless of success or failure.\n"
            "# TYPE grpc_client_handled_total counter\n");
    for (int i = 0; i < n; i++) {
        labels(&b, ms[i], lab, sizeof lab);
        for (int c = 0; c <= 16; c++)
            sbf(&b, "grpc_client_handled_total{%s,grpc_code=\"%s\"} %" PRIu64 "\n",
                lab, names[c], L(ms[i]->handled[c]));
    }
    sbf(&b, "# HELP grpc_client_msg_received_total Total number of RPC stream "
            "messages received by the client.\n"
            "# TYPE grpc_client_msg_received_total counter\n");
    for (int i = 0; i < n; i++) {
        labels(&b, ms[i], lab, sizeof lab);
        sbf(&b, "grpc_client_msg_received_total{%s} %" PRIu64 "\n", lab,
            L(ms[i]->msg_recv));
    }
    sbf(&b, "# HELP grpc_client_msg_sent_total Total number of gRPC stream "
            "messages sent by the client.\n"
            "# TYPE grpc_client_msg_sent_total counter\n");
    for (int i = 0; i < n; i++) {
        labels(&b, ms[i], lab, sizeof lab);
        sbf(&b, "grpc_client_msg_sent_total{%s} %" PRIu64 "\n", lab,
            L(ms[i]->msg_sent));
    }
    sbf(&b, "# HELP grpc_client_handling_seconds Histogram of response latency "
            "(seconds) of the gRPC until it is finished by the application.\n"
            "# TYPE grpc_client_handling_seconds histogram\n");
    for (int i = 0; i < n; i++) {
        labels(&b, ms[i], lab, sizeof lab);
        uint64_t cum = 0;
        for (int k = 0; k < NB; k++) {
            cum += L(ms[i]->b[k]);
            sbf(&b, "grpc_client_handling_seconds_bucket{%s,le=\"%s\"} %" PRIu64 "\n",
                lab, bounds_le[k], cum);
        }
        cum += L(ms[i]->b[NB]);
        uint64_t s = L(ms[i]->sum_ns);
        sbf(&b, "grpc_client_handling_seconds_bucket{%s,le=\"+Inf\"} %" PRIu64 "\n"
                "grpc_client_handling_seconds_sum{%s} %" PRIu64 ".%09" PRIu64 "\n"
                "grpc_client_handling_seconds_count{%s} %" PRIu64 "\n",
            lab, cum, lab, s / 1000000000u, s % 1000000000u, lab, cum);
    }
    sbf(&b, "# HELP rpc_client_methods_overflow_total Calls not counted: the "
            "observer's method table was full.\n"
            "# TYPE rpc_client_methods_overflow_total counter\n"
            "rpc_client_methods_overflow_total %" PRIu64 "\n",
        ob ? L(ob->overflow) : 0);
    if (ob && ob->log)
        sbf(&b, "# HELP rpc_client_access_log_dropped_total Access-log records "
                "dropped because the ring was full.\n"
                "# TYPE rpc_client_access_log_dropped_total counter\n"
                "rpc_client_access_log_dropped_total %" PRIu64 "\n",
            rpc__alog_dropped(ob->log));
    size_t total = b.len;
    if (len > 0) {
        size_t k = total < len - 1 ? total : len - 1;
        if (k)
            memcpy(buf, b.p, k);
        buf[k] = '\0';
    }
    free(b.p);
    return total;
}
