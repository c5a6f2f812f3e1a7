/*
 * server_metrics.c -- the Prometheus text (format 0.0.4) of the server's
 * counters, rendered on the admin thread from atomics that the loops
 * update without locks (server_intercept.c).
 *
 * Names: go-grpc-prometheus's grpc_server_* (labels grpc_type,
 * grpc_service, grpc_method [, grpc_code]), every registered method and
 * every code pre-initialised to zero as its InitializeMetrics does; plus
 * this project's rpc_server_* (cancellations by cause, the deadline left on
 * arrival, the drain time from an early end to the handler's return, live
 * requests, sub-tasks and context nodes, and the server's own totals).
 *
 * Reads are relaxed loads taken one by one: a scrape is not a snapshot,
 * but every counter is monotonic and a histogram's +Inf bucket is
 * computed from the same loads as its _count, so each series is
 * self-consistent.
 */
#include "server_obs_impl.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <string.h>

#define LOAD(x) ((uint64_t)atomic_load_explicit(&(x), memory_order_relaxed))

static void help(struct evbuffer *b, const char *name, const char *type,
                 const char *text)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name,
                        type);
}

/* Label values here are method paths and fixed words; escape anyway. */
static void label_value(struct evbuffer *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '\\' || ch == '"')
            evbuffer_add_printf(b, "\\%c", ch);
        else if (ch == '\n')
            evbuffer_add(b, "\\n", 2);
        else
            evbuffer_add(b, &ch, 1);
    }
}

static void method_labels(struct evbuffer *b, const struct srv_method *m)
{
    const char *svc, *meth;
    size_t svclen;
    obs_split(m->path, &svc, &svclen, &meth);
    evbuffer_add_printf(b, "grpc_type=\"%s\",grpc_service=\"",
                        obs_kind_name(m->kind));
    label_value(b, svc, svclen);
    evbuffer_add(b, "\",grpc_method=\"", 15);
    label_value(b, meth, strlen(meth));
    evbuffer_add(b, "\"", 1);
}

static void fmt_seconds(char *out, size_t cap, uint64_t ns)
{
    snprintf(out, cap, "%" PRIu64 ".%09" PRIu64, ns / 1000000000u,
             ns % 1000000000u);
}

/* One histogram's series; labels (may be "") go before le. */
static void hist(struct evbuffer *b, const char *name, const char *labels,
                 const struct obs_hist *h, const struct obs_bounds *bd)
{
    uint64_t cum = 0;
    const char *sep = labels[0] ? "," : "";
    for (int i = 0; i < bd->n; i++) {
        cum += LOAD(h->b[i]);
        evbuffer_add_printf(b, "%s_bucket{%s%sle=\"%s\"} %" PRIu64 "\n", name,
                            labels, sep, bd->le[i], cum);
    }
    cum += LOAD(h->b[bd->n]);
    char sum[40];
    fmt_seconds(sum, sizeof sum, LOAD(h->sum_ns));
    evbuffer_add_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name,
                        labels, sep, cum);
    if (labels[0]) {
        evbuffer_add_printf(b, "%s_sum{%s} %s\n%s_count{%s} %" PRIu64 "\n", name,
                            labels, sum, name, labels, cum);
    } else {
        evbuffer_add_printf(b, "%s_sum %s\n%s_count %" PRIu64 "\n", name, sum,
                            name, cum);
    }
}

static char *labels_of(const struct srv_method *m)
{
    struct evbuffer *t = evbuffer_new();
    if (t == NULL)
        return NULL;
    method_labels(t, m);
    evbuffer_add(t, "", 1);
    char *s = rpc__strdup((const char *)evbuffer_pullup(t, -1));
    evbuffer_free(t);
    return s;
}

static int count_node(const ctx_node_info_t *n, void *ud)
{
    (void)n;
    (void)ud;
    return 0;
}

#define CTX_NODES_MAX 20000

void obs_metrics_render(struct srv_obs *o, struct evbuffer *b)
{
    rpc_server_t *s = o->s;
    struct obs_method *mm = obs_methods(o);
    size_t n = mm ? o->nmm : 0;
    char **lab = rpc__calloc(n ? n : 1, sizeof *lab);
    for (size_t i = 0; lab && i < n; i++)
        lab[i] = labels_of(&s->methods[i]);
#define EACH_METHOD for (size_t i = 0; lab && i < n; i++) if (lab[i])

    help(b, "grpc_server_started_total", "counter",
         "Total number of RPCs started on the server.");
    EACH_METHOD evbuffer_add_printf(b, "grpc_server_started_total{%s} %" PRIu64
                                    "\n", lab[i], LOAD(mm[i].started));
    help(b, "grpc_server_handled_total", "counter",
         "Total number of RPCs completed on the server, regardless of "
         "success or failure.");
    EACH_METHOD for (int c = 0; c <= 16; c++)
        evbuffer_add_printf(b, "grpc_server_handled_total{%s,grpc_code=\"%s\"} %"
                            PRIu64 "\n", lab[i], obs_code_name(c),
                            LOAD(mm[i].handled[c]));
    help(b, "grpc_server_msg_received_total", "counter",
         "Total number of RPC stream messages received on the server.");
    EACH_METHOD evbuffer_add_printf(b, "grpc_server_msg_received_total{%s} %"
                                    PRIu64 "\n", lab[i], LOAD(mm[i].msg_recv));
    help(b, "grpc_server_msg_sent_total", "counter",
         "Total number of gRPC stream messages sent by the server.");
    EACH_METHOD evbuffer_add_printf(b, "grpc_server_msg_sent_total{%s} %"
                                    PRIu64 "\n", lab[i], LOAD(mm[i].msg_sent));
    help(b, "grpc_server_handling_seconds", "histogram",
         "Histogram of response latency (seconds) of gRPC that had been "
         "application-level handled by the server.");
    EACH_METHOD hist(b, "grpc_server_handling_seconds", lab[i],
                     &mm[i].handling, &obs_def_bounds);
#undef EACH_METHOD
    for (size_t i = 0; lab && i < n; i++)
        free(lab[i]);
    free(lab);

    help(b, "rpc_server_cancellations_total", "counter",
         "Requests ended before their handler completed, by the cause of "
         "their request context.");
    static const int causes[] = {RPC_CAUSE_DEADLINE, RPC_CAUSE_CLIENT_CANCEL,
                                 RPC_CAUSE_PEER_GONE, RPC_CAUSE_KEEPALIVE,
                                 RPC_CAUSE_SHUTDOWN, RPC_CAUSE_PROTOCOL};
    for (size_t i = 0; i < sizeof causes / sizeof *causes; i++)
        evbuffer_add_printf(b, "rpc_server_cancellations_total{cause=\"%s\"} %"
                            PRIu64 "\n", obs_cause_name(causes[i]),
                            LOAD(o->cancels[SRV_CAUSE_INDEX(causes[i])]));
    help(b, "rpc_server_deadline_remaining_seconds", "histogram",
         "The deadline budget left on arrival (grpc-timeout) of requests "
         "that carried one.");
    hist(b, "rpc_server_deadline_remaining_seconds", "", &o->deadline_left,
         &obs_def_bounds);
    help(b, "rpc_server_cancel_drain_seconds", "histogram",
         "From a request's early end (deadline, cancel, disconnect, "
         "shutdown) to its handler having returned with every sub-task.");
    hist(b, "rpc_server_cancel_drain_seconds", "", &o->drain,
         &obs_drain_bounds);

    help(b, "rpc_server_live_requests", "gauge",
         "Call objects alive (a handler running or a stream open).");
    evbuffer_add_printf(b, "rpc_server_live_requests %" PRId64 "\n",
                        rpc_server_stat(s, RPC_STAT_CALLS_ACTIVE));
    help(b, "rpc_server_live_subtasks", "gauge",
         "Tasks running or queued on the server's worker pool (handlers "
         "and the sub-tasks they submit to it).");
    evbuffer_add_printf(b, "rpc_server_live_subtasks %zu\n",
                        ctx_pool_running(s->pool) + ctx_pool_queued(s->pool));
    help(b, "rpc_server_context_nodes", "gauge",
         "Cancelable contexts linked under the server root (connections, "
         "requests, their groups and sub-contexts), counted by a bounded "
         "walk at scrape time (at most 20000).");
    evbuffer_add_printf(b, "rpc_server_context_nodes %zu\n",
                        ctx_walk(s->root, CTX_NODES_MAX, count_node, NULL));
    help(b, "rpc_server_connections", "gauge", "Open connections.");
    evbuffer_add_printf(b, "rpc_server_connections %" PRId64 "\n",
                        rpc_server_stat(s, RPC_STAT_CONNECTIONS));
    help(b, "rpc_server_calls_rejected_total", "counter",
         "Requests refused at their headers (unknown method, bad headers, "
         "draining), never seen by interceptors.");
    evbuffer_add_printf(b, "rpc_server_calls_rejected_total %" PRId64 "\n",
                        rpc_server_stat(s, RPC_STAT_CALLS_REJECTED));
    if (o->alog) {
        help(b, "rpc_server_access_log_dropped_total", "counter",
             "Access-log records dropped because the ring was full.");
        evbuffer_add_printf(b, "rpc_server_access_log_dropped_total %" PRIu64
                            "\n", obs_alog_dropped(o->alog));
    }
}
