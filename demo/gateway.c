/*
 * demo_gateway -- the middle tier of the demo stack: serves demo.v1.Demo
 * and forwards every call to one of N backends, through one client
 * channel with the round_robin policy and health checking (the client
 * library spreads the calls and skips backends that are down or
 * NOT_SERVING).
 *
 *   demo_gateway --port N --backend HOST:PORT [--backend HOST:PORT]...
 *   demo_gateway --port N --backend dns:///NAME:PORT  (every A/AAAA record
 *                of NAME is a backend: compose's --scale)
 *                [--host ADDR] [--name NAME] [--grace-ms N]
 *                [--loops N] [--workers N]
 *                [--admin-port N [--admin-host ADDR]] [--access-log PATH]
 *
 *   lb (nginx) --> demo_gateway --rpc_client--> backend (interop_server)
 *
 * Propagation is the point of the program.  Each handler passes its own
 * request context -- the one the server built from the wire -- to the
 * client call it makes downstream, so:
 *   - the deadline left (from the caller's grpc-timeout) goes on as the
 *     downstream grpc-timeout;
 *   - a caller that cancels (RST_STREAM) or disconnects, a deadline that
 *     passes, or this gateway shutting down cancels the request context,
 *     and the client library resets the downstream stream, so the backend's
 *     handler and all its sub-tasks see it too;
 *   - x-request-id and traceparent are forwarded (the client library's
 *     default propagation keys, read from the request context).
 *
 * Methods:
 *   Fanout    unary, forwarded as is; response headers x-gateway (this
 *             gateway's --name) and x-backend (the balanced target).
 *   Ticks     server streaming, forwarded message by message.
 *   GetStats  the SUM of every backend's Stats (asked with the request's
 *             context, so bounded by its deadline); fails with the first
 *             backend's error if any backend cannot answer.  The gateway's
 *             own counters travel in the trailer x-gateway-stats.
 * grpc.health.v1.Health reports SERVING for the gateway itself.
 *
 * Logging: one line per request on stderr -- time, gateway name, method,
 * x-request-id, deadline left on arrival, backend, final status, the cause
 * when the request context ended early (deadline, client cancel, peer gone,
 * shutdown) and the time taken.
 *
 * Threads: the server's loop threads and handler pool (handlers block in
 * client calls, one pool thread per call in flight), one loop thread per
 * backend channel, and the main thread, which only waits for SIGINT/SIGTERM
 * (blocked in every thread, taken with sigwait) and then shuts the server
 * down: calls still running after --grace-ms are cancelled (cause
 * "server shutting down"), which resets their downstream streams.
 * Counters are relaxed atomics; there is no other shared mutable state.
 */
#include <rpc/server.h>

#include "demo/v1/demo.rpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <fcntl.h> /* observe: --access-log */
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Generated at build time (proto/CMakeLists.txt, rpc_embed_descriptors). */
int rpc_demo_descriptors_register(rpc_server_t *s);

#define MAX_BACKENDS 16
/* GetStats asks every backend; a caller without a deadline gets this one. */
#define STATS_TIMEOUT (2 * CTX_SECOND)

static const char *prog = "demo_gateway";

struct backend {
    const char *target; /* "host:port", from argv */
    rpc_client_channel_t *ch;
};

/* Indexes of the per-cause counters (RPC_CAUSE_CLIENT_CANCEL + i). */
enum { N_CAUSES = 5 };
static const char *const cause_names[N_CAUSES] = {
    "client_cancel", "peer_gone", "deadline", "shutdown", "keepalive"};

struct gateway {
    const char *name;
    struct backend be[MAX_BACKENDS];
    int nbe;
    struct backend lb; /* round_robin over every backend: calls go here */
    char lb_target[MAX_BACKENDS * 48 + 8];
    atomic_llong requests, inflight, ok, failed, cancelled;
    atomic_llong cause[N_CAUSES];
};

/* ---- logging ------------------------------------------------------------ */

/* One line on stderr, prefixed with UTC time and the gateway's name.  The
 * line is formatted first and written with one call, so lines from
 * concurrent handlers never interleave. */
static void glog(const struct gateway *gw, const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    struct tm tm;
    size_t n = 0;
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0 &&
        gmtime_r(&ts.tv_sec, &tm) != NULL)
        n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    int k = snprintf(line + n, sizeof line - n, ".%03ldZ %s ",
                     ts.tv_nsec / 1000000L, gw->name);
    if (k > 0 && (size_t)k < sizeof line - n)
        n += (size_t)k;
    va_list ap;
    va_start(ap, fmt);
    k = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    if (k > 0)
        n += (size_t)k < sizeof line - n - 1 ? (size_t)k : sizeof line - n - 2;
    line[n++] = '\n';
    if (fwrite(line, 1, n, stderr) != n) {
        /* Nowhere left to report it: a log line is lost, the call is not. */
    }
}

/* "299.7ms" or "none": the time left before ctx's deadline. */
static void fmt_left(ctx_t *ctx, char *buf, size_t len)
{
    int64_t dl;
    if (!ctx_deadline(ctx, &dl))
        snprintf(buf, len, "none");
    else
        snprintf(buf, len, "%.1fms", (double)(dl - ctx_now()) / CTX_MS);
}

/* ---- per-request bookkeeping ------------------------------------------- */

struct req_log {
    const char *method;
    char rid[80];
    char left[32];
    int64_t t0;
};

static void req_begin(struct gateway *gw, struct req_log *r, ctx_t *ctx,
                      const char *method)
{
    r->method = method;
    const char *rid = rpc_metadata_get(ctx, "x-request-id", NULL);
    snprintf(r->rid, sizeof r->rid, "%s", rid != NULL ? rid : "-");
    fmt_left(ctx, r->left, sizeof r->left);
    r->t0 = ctx_now();
    atomic_fetch_add_explicit(&gw->requests, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&gw->inflight, 1, memory_order_relaxed);
}

/* Counts and logs the outcome; returns the status the handler returns.
 * When the request context ended early, the status is what its cause
 * stands for (the server has already answered the caller with it). */
static int req_end(struct gateway *gw, struct req_log *r, ctx_t *ctx,
                   const char *backend, int status)
{
    int cause = ctx_err(ctx) != 0 ? ctx_cause(ctx) : 0;
    if (cause != 0) {
        status = rpc_cause_status(cause);
        atomic_fetch_add_explicit(&gw->cancelled, 1, memory_order_relaxed);
        int i = cause - RPC_CAUSE_CLIENT_CANCEL;
        if (i >= 0 && i < N_CAUSES)
            atomic_fetch_add_explicit(&gw->cause[i], 1, memory_order_relaxed);
    } else if (status == RPC_STATUS_OK) {
        atomic_fetch_add_explicit(&gw->ok, 1, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&gw->failed, 1, memory_order_relaxed);
    }
    atomic_fetch_sub_explicit(&gw->inflight, 1, memory_order_relaxed);
    glog(gw, "%s rid=%s deadline=%s backend=%s status=%s cause=\"%s\" "
             "took=%.1fms",
         r->method, r->rid, r->left, backend, rpc_status_name(status),
         cause != 0 ? rpc_cause_text(cause) : "none",
         (double)(ctx_now() - r->t0) / CTX_MS);
    return status;
}

static struct backend *pick(struct gateway *gw)
{
    return &gw->lb; /* the channel's round_robin picks the backend */
}

/* Response headers naming the path the call took.  Cosmetic: a failure
 * (out of memory) is logged and the call goes on. */
static void set_route_headers(struct gateway *gw, rpc_call_t *call,
                              const struct backend *b)
{
    int rc = rpc_call_set_header(call, "x-gateway", gw->name, strlen(gw->name));
    if (rc == 0)
        rc = rpc_call_set_header(call, "x-backend", b->target,
                                 strlen(b->target));
    if (rc != 0)
        glog(gw, "warning: response headers: %s", rpc_strerror(rc));
}

/* Sets the grpc-message of our answer; the status goes out without it
 * when that fails (out of memory), which is logged. */
static void set_message(struct gateway *gw, rpc_call_t *call, const char *m)
{
    int rc = rpc_call_set_status_message(call, m);
    if (rc != 0)
        glog(gw, "warning: status message \"%s\" dropped: %s", m,
             rpc_strerror(rc));
}

/* Copies a finished downstream call's status message to our answer. */
static void pass_message(struct gateway *gw, rpc_call_t *call,
                         rpc_client_call_t *dc)
{
    const char *m = dc != NULL ? rpc_client_call_message(dc) : NULL;
    if (m != NULL && *m != '\0')
        set_message(gw, call, m);
}

/* ---- Fanout -------------------------------------------------------------- */

static int fanout(ctx_t *ctx, rpc_call_t *call,
                  const Demo__V1__FanoutRequest *req, void *ud)
{
    struct gateway *gw = ud;
    struct req_log r;
    req_begin(gw, &r, ctx, "Fanout");
    struct backend *b = pick(gw);
    set_route_headers(gw, call, b);
    Demo__V1__FanoutReply *resp = NULL;
    rpc_client_call_t *dc = NULL;
    /* The request context goes straight into the downstream call. */
    int st = demo_v1_demo_fanout(ctx, b->ch, NULL, req, &resp, &dc);
    if (st < 0) {
        set_message(gw, call, rpc_strerror(st));
        st = RPC_STATUS_INTERNAL;
    } else if (st == RPC_STATUS_OK) {
        int rc = demo_v1_demo_fanout_send(call, resp);
        if (rc != 0 && ctx_err(ctx) == 0) {
            set_message(gw, call, rpc_strerror(rc));
            st = RPC_STATUS_INTERNAL;
        }
    } else {
        pass_message(gw, call, dc);
    }
    if (resp != NULL)
        demo__v1__fanout_reply__free_unpacked(resp, NULL);
    rpc_client_call_free(dc);
    return req_end(gw, &r, ctx, b->target, st);
}

/* ---- Ticks --------------------------------------------------------------- */

/* Relays the downstream stream; returns a status (>= 0). */
static int relay_ticks(struct gateway *gw, ctx_t *ctx, rpc_call_t *call,
                       rpc_client_call_t *dc)
{
    for (;;) {
        Demo__V1__Tick *m = NULL;
        int rc = demo_v1_demo_ticks_read(ctx, dc, &m);
        if (rc == RPC_ERR_EOF)
            break;
        if (rc == RPC_ERR_MALFORMED) {
            rpc_client_call_cancel(dc);
            set_message(gw, call, "backend sent a malformed Tick");
            return RPC_STATUS_INTERNAL;
        }
        if (rc != 0)
            break; /* our context ended: the finish below reports it */
        rc = demo_v1_demo_ticks_send(call, m);
        demo__v1__tick__free_unpacked(m, NULL);
        if (rc != 0) {
            rpc_client_call_cancel(dc);
            break;
        }
    }
    int st = rpc_client_call_finish(ctx, dc);
    if (st < 0)
        return RPC_STATUS_CANCELLED; /* ctx ended; req_end() says why */
    if (st != RPC_STATUS_OK)
        pass_message(gw, call, dc);
    return st;
}

static int ticks(ctx_t *ctx, rpc_call_t *call,
                 const Demo__V1__TickRequest *req, void *ud)
{
    struct gateway *gw = ud;
    struct req_log r;
    req_begin(gw, &r, ctx, "Ticks");
    struct backend *b = pick(gw);
    set_route_headers(gw, call, b);
    rpc_client_call_t *dc = NULL;
    int st;
    /* Opened even when the call finished at once (context done, or
     * refused): relay_ticks() collects its status. */
    int rc = demo_v1_demo_ticks(ctx, b->ch, NULL, req, &dc);
    if (rc == 0) {
        st = relay_ticks(gw, ctx, call, dc);
    } else {
        set_message(gw, call, rpc_strerror(rc));
        st = RPC_STATUS_INTERNAL;
    }
    rpc_client_call_free(dc);
    return req_end(gw, &r, ctx, b->target, st);
}

/* ---- GetStats ------------------------------------------------------------ */

static void add_stats(Demo__V1__Stats *sum, const Demo__V1__Stats *s)
{
    sum->handlers_started += s->handlers_started;
    sum->handlers_cancelled += s->handlers_cancelled;
    sum->subtasks_started += s->subtasks_started;
    sum->subtasks_cancelled += s->subtasks_cancelled;
    sum->cause_client_cancel += s->cause_client_cancel;
    sum->cause_peer_gone += s->cause_peer_gone;
    sum->cause_deadline += s->cause_deadline;
    sum->cause_shutdown += s->cause_shutdown;
    sum->cause_keepalive += s->cause_keepalive;
    sum->inflight += s->inflight;
    sum->subtasks_inflight += s->subtasks_inflight;
}

/* The gateway's own counters as one trailer value. */
static void set_gateway_trailer(struct gateway *gw, rpc_call_t *call)
{
    char v[512];
    int n = snprintf(v, sizeof v, "requests=%lld inflight=%lld ok=%lld "
                                  "failed=%lld cancelled=%lld",
                     (long long)atomic_load(&gw->requests),
                     (long long)atomic_load(&gw->inflight),
                     (long long)atomic_load(&gw->ok),
                     (long long)atomic_load(&gw->failed),
                     (long long)atomic_load(&gw->cancelled));
    for (int i = 0; i < N_CAUSES && n > 0 && (size_t)n < sizeof v; i++)
        n += snprintf(v + n, sizeof v - (size_t)n, " %s=%lld", cause_names[i],
                      (long long)atomic_load(&gw->cause[i]));
    if (n <= 0 || (size_t)n >= sizeof v ||
        rpc_call_set_trailer(call, "x-gateway-stats", v, (size_t)n) != 0)
        glog(gw, "warning: could not set x-gateway-stats");
}

/* A dns:///NAME:PORT backend is every address NAME has now: each is asked
 * on a channel of its own (a blocking getaddrinfo: this is a handler
 * thread).  Returns a status; sets the message on failure. */
static int stats_of_name(struct gateway *gw, ctx_t *sub, rpc_call_t *call,
                         const Demo__V1__StatsRequest *req, const char *target,
                         Demo__V1__Stats *sum)
{
    const char *hp = target + 4; /* "dns:" */
    if (strncmp(hp, "//", 2) == 0 && (hp = strchr(hp + 2, '/')) != NULL)
        hp++;
    const char *colon = hp ? strrchr(hp, ':') : NULL;
    char host[256];
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (colon == NULL || (size_t)(colon - hp) >= sizeof host) {
        set_message(gw, call, "bad backend target");
        return RPC_STATUS_INTERNAL;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - hp), hp);
    int g = getaddrinfo(host, colon + 1, &hints, &ai);
    if (g != 0) {
        char m[300];
        snprintf(m, sizeof m, "backend %s: %s", target, gai_strerror(g));
        set_message(gw, call, m);
        return RPC_STATUS_UNAVAILABLE;
    }
    int st = RPC_STATUS_OK;
    for (struct addrinfo *a = ai; a && st == RPC_STATUS_OK; a = a->ai_next) {
        char ip[INET6_ADDRSTRLEN], t[INET6_ADDRSTRLEN + 16];
        const void *addr =
            a->ai_family == AF_INET
                ? (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr
                : (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
        inet_ntop(a->ai_family, addr, ip, sizeof ip);
        snprintf(t, sizeof t, a->ai_family == AF_INET ? "%s:%s" : "[%s]:%s",
                 ip, colon + 1);
        rpc_client_channel_t *ch = NULL;
        int rc = rpc_client_channel_new(t, NULL, &ch);
        Demo__V1__Stats *resp = NULL;
        rpc_client_call_t *dc = NULL;
        st = rc != 0 ? RPC_STATUS_INTERNAL
                     : demo_v1_demo_get_stats(sub, ch, NULL, req, &resp, &dc);
        if (st == RPC_STATUS_OK) {
            add_stats(sum, resp);
        } else {
            char m[300];
            snprintf(m, sizeof m, "backend %s: %s", t,
                     dc ? rpc_client_call_message(dc) : rpc_strerror(rc));
            set_message(gw, call, m);
            if (st < 0)
                st = RPC_STATUS_INTERNAL;
        }
        if (resp != NULL)
            demo__v1__stats__free_unpacked(resp, NULL);
        rpc_client_call_free(dc);
        rpc_client_channel_free(ch);
    }
    freeaddrinfo(ai);
    return st;
}

static int get_stats(ctx_t *ctx, rpc_call_t *call,
                     const Demo__V1__StatsRequest *req, void *ud)
{
    struct gateway *gw = ud;
    struct req_log r;
    req_begin(gw, &r, ctx, "GetStats");
    /* Bounded even when the caller sent no deadline. */
    ctx_t *sub = ctx_with_timeout(ctx, STATS_TIMEOUT);
    if (sub == NULL) {
        set_message(gw, call, "out of memory");
        return req_end(gw, &r, ctx, "all", RPC_STATUS_RESOURCE_EXHAUSTED);
    }
    Demo__V1__Stats sum = DEMO__V1__STATS__INIT;
    int st = RPC_STATUS_OK;
    for (int i = 0; i < gw->nbe && st == RPC_STATUS_OK; i++) {
        if (strncmp(gw->be[i].target, "dns:", 4) == 0) {
            st = stats_of_name(gw, sub, call, req, gw->be[i].target, &sum);
            continue;
        }
        Demo__V1__Stats *resp = NULL;
        rpc_client_call_t *dc = NULL;
        st = demo_v1_demo_get_stats(sub, gw->be[i].ch, NULL, req, &resp, &dc);
        if (st == RPC_STATUS_OK) {
            add_stats(&sum, resp);
        } else if (st > 0) {
            char m[256];
            snprintf(m, sizeof m, "backend %s: %s", gw->be[i].target,
                     dc ? rpc_client_call_message(dc) : "");
            set_message(gw, call, m);
        } else {
            set_message(gw, call, rpc_strerror(st));
            st = RPC_STATUS_INTERNAL;
        }
        if (resp != NULL)
            demo__v1__stats__free_unpacked(resp, NULL);
        rpc_client_call_free(dc);
    }
    ctx_release(sub);
    if (st == RPC_STATUS_OK) {
        set_gateway_trailer(gw, call);
        int rc = demo_v1_demo_get_stats_send(call, &sum);
        if (rc != 0 && ctx_err(ctx) == 0) {
            set_message(gw, call, rpc_strerror(rc));
            st = RPC_STATUS_INTERNAL;
        }
    }
    return req_end(gw, &r, ctx, "all", st);
}

/* ---- setup ---------------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr,
            "usage: %s --port N --backend HOST:PORT [--backend HOST:PORT]...\n"
            "       [--host ADDR] [--name NAME] [--grace-ms N] [--loops N] "
            "[--workers N] [--admin-port N] [--admin-host ADDR] [--access-log PATH]\n"
            "  --port 0 picks a free port; \"listening on port N\" goes to "
            "stdout.\n"
            "  --host defaults to 127.0.0.1 (0.0.0.0 in a container).\n",
            prog);
    return 2;
}

/* Matches "--name VALUE" or "--name=VALUE"; advances *i over a separate
 * value.  Returns the value, or NULL when argv[*i] is not this flag. */
static const char *flag(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "%s: %s needs a value\n", prog, name);
        exit(usage());
    }
    return argv[++*i];
}

static long num(const char *name, const char *v, long lo, long hi)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < lo || x > hi) {
        fprintf(stderr, "%s: bad value for %s: %s\n", prog, name, v);
        exit(usage());
    }
    return x;
}

/* observe: --admin-port serves /metrics (server and client side) and
 * /ctxz on 127.0.0.1:N; --access-log writes both sides' JSON lines. */
static rpc_client_observer_t *observer;

static int open_backends(struct gateway *gw)
{
    rpc_client_options_t *o = rpc_client_options_new();
    if (o == NULL)
        return RPC_ERR_NOMEM;
    /* Backends may start after us (compose) or restart: retry quickly. */
    int rc = rpc_client_options_set_connect_timeout(o, 2 * CTX_SECOND);
    if (rc == 0)
        rc = rpc_client_options_set_backoff(o, 100 * CTX_MS, 2 * CTX_SECOND,
                                            1.6, 0.2);
    if (rc == 0 && observer != NULL) /* observe */
        rc = rpc_client_options_set_observer(o, observer);
    for (int i = 0; rc == 0 && i < gw->nbe; i++)
        rc = rpc_client_channel_new(gw->be[i].target, o, &gw->be[i].ch);
    /* The balanced channel: one target naming every backend -- the one
     * --backend as given (a dns:/// name with several records), or the
     * numeric addresses as an "ipv4:a:p,b:p" list. */
    if (rc == 0 && gw->nbe == 1) {
        snprintf(gw->lb_target, sizeof gw->lb_target, "%s", gw->be[0].target);
    } else if (rc == 0) {
        size_t n = (size_t)snprintf(gw->lb_target, sizeof gw->lb_target,
                                    "ipv4:");
        for (int i = 0; i < gw->nbe; i++) {
            char ip[64];
            const char *t = gw->be[i].target, *colon = strrchr(t, ':');
            struct in_addr a;
            snprintf(ip, sizeof ip, "%.*s", colon ? (int)(colon - t) : 0, t);
            if (colon == NULL || inet_pton(AF_INET, ip, &a) != 1) {
                fprintf(stderr, "%s: with several --backend each must be "
                        "IPv4:PORT (for a name with several addresses give "
                        "one --backend dns:///NAME:PORT): %s\n", prog, t);
                rc = RPC_ERR_INVAL;
                break;
            }
            n += (size_t)snprintf(gw->lb_target + n, sizeof gw->lb_target - n,
                                  "%s%s", i ? "," : "", t);
        }
    }
    if (rc == 0)
        rc = rpc_client_options_set_lb_policy(o, "round_robin");
    /* A backend shutting down says NOT_SERVING first: stop sending to it
     * then, not when its connection closes. */
    if (rc == 0)
        rc = rpc_client_options_set_health_check(o, true, NULL);
    if (rc == 0) {
        gw->lb.target = gw->lb_target;
        rc = rpc_client_channel_new(gw->lb_target, o, &gw->lb.ch);
    }
    rpc_client_options_free(o);
    return rc;
}

static void close_backends(struct gateway *gw)
{
    rpc_client_channel_free(gw->lb.ch);
    gw->lb.ch = NULL;
    for (int i = 0; i < gw->nbe; i++) {
        rpc_client_channel_free(gw->be[i].ch);
        gw->be[i].ch = NULL;
    }
}

static int add_methods(rpc_server_t *s, struct gateway *gw)
{
    /* Static: registered handler tables must outlive the server. */
    static demo_v1_demo_handlers_t h = {
        .fanout = fanout, .ticks = ticks, .get_stats = get_stats};
    h.user_data = gw;
    int rc = demo_v1_demo_register(s, &h);
    if (rc == 0)
        rc = rpc_server_add_health(s);
    if (rc == 0) /* server reflection: demo.v1.Demo's file, for rpcurl */
        rc = rpc_demo_descriptors_register(s);
    if (rc == 0)
        rc = rpc_server_add_reflection(s);
    return rc;
}

int main(int argc, char **argv)
{
    static struct gateway gw = {.name = "gateway"};
    long port = -1, loops = 0, workers = 64, grace_ms = 1000;
    const char *host = "127.0.0.1", *v;
    long admin_port = -1; /* observe */
    const char *access_log = NULL, *admin_host = "127.0.0.1";
    int log_fd = -1;
    for (int i = 1; i < argc; i++) {
        if ((v = flag(argc, argv, &i, "--port")) != NULL) {
            port = num("--port", v, 0, 65535);
        } else if ((v = flag(argc, argv, &i, "--backend")) != NULL) {
            if (gw.nbe == MAX_BACKENDS) {
                fprintf(stderr, "%s: at most %d backends\n", prog,
                        MAX_BACKENDS);
                return 2;
            }
            gw.be[gw.nbe++].target = v;
        } else if ((v = flag(argc, argv, &i, "--host")) != NULL) {
            host = v;
        } else if ((v = flag(argc, argv, &i, "--name")) != NULL) {
            gw.name = v;
        } else if ((v = flag(argc, argv, &i, "--grace-ms")) != NULL) {
            grace_ms = num("--grace-ms", v, 0, 600000);
        } else if ((v = flag(argc, argv, &i, "--loops")) != NULL) {
            loops = num("--loops", v, 0, 1024);
        } else if ((v = flag(argc, argv, &i, "--workers")) != NULL) {
            workers = num("--workers", v, 1, 4096);
        } else if ((v = flag(argc, argv, &i, "--admin-port")) != NULL ||
                   (v = flag(argc, argv, &i, "--admin_port")) != NULL) {
            admin_port = num("--admin-port", v, 0, 65535); /* observe */
        } else if ((v = flag(argc, argv, &i, "--access-log")) != NULL) {
            access_log = v;
        } else if ((v = flag(argc, argv, &i, "--admin-host")) != NULL) {
            admin_host = v;
        } else {
            return usage();
        }
    }
    if (port < 0 || gw.nbe == 0)
        return usage();

    /* Signals are taken synchronously by sigwait() below; block them
     * before any thread starts so every thread inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 ||
        signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        perror("demo_gateway: signals");
        return 1;
    }

    if (admin_port >= 0 || access_log != NULL) { /* observe */
        if ((observer = rpc_client_observer_new()) == NULL) {
            fprintf(stderr, "%s: out of memory\n", prog);
            return 1;
        }
        if (access_log != NULL &&
            ((log_fd = open(access_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                            0644)) < 0 ||
             rpc_client_observer_enable_access_log(observer, log_fd) != 0)) {
            fprintf(stderr, "%s: access log %s: %s\n", prog, access_log,
                    strerror(errno));
            return 1;
        }
    }
    int rc = open_backends(&gw);
    if (rc != 0) {
        fprintf(stderr, "%s: backend channels: %s\n", prog, rpc_strerror(rc));
        close_backends(&gw);
        return 1;
    }
    rpc_server_t *s = rpc_server_new();
    if (s == NULL) {
        fprintf(stderr, "%s: out of memory\n", prog);
        close_backends(&gw);
        return 1;
    }
    if ((rc = rpc_server_set_option(s, RPC_SERVER_LOOP_THREADS, loops)) ||
        (rc = rpc_server_set_option(s, RPC_SERVER_WORKER_THREADS, workers)) ||
        (rc = add_methods(s, &gw)) ||
        (log_fd >= 0 && (rc = rpc_server_enable_access_log(s, log_fd))) || /* observe */
        (admin_port >= 0 &&
         ((rc = rpc_server_enable_admin(s, admin_host, (int)admin_port)) ||
          (rc = rpc_server_admin_add_metrics(s, rpc_client_observer_metrics,
                                             observer))))) {
        fprintf(stderr, "%s: setup: %s\n", prog, rpc_strerror(rc));
        goto fail;
    }
    if ((rc = rpc_server_listen(s, host, (int)port)) != 0) {
        fprintf(stderr, "%s: listen on %s:%ld: %s (%s)\n", prog, host, port,
                rpc_strerror(rc), strerror(errno));
        goto fail;
    }
    if ((rc = rpc_server_start(s)) != 0) {
        fprintf(stderr, "%s: start: %s\n", prog, rpc_strerror(rc));
        goto fail;
    }
    if (printf("listening on port %d\n", rpc_server_port(s)) < 0 ||
        (admin_port >= 0 && /* observe */
         printf("admin on port %d\n", rpc_server_admin_port(s)) < 0) ||
        fflush(stdout) != 0) {
        perror("demo_gateway: stdout");
        goto fail;
    }
    for (int i = 0; i < gw.nbe; i++)
        glog(&gw, "listening on %s:%d, backend %d: %s", host,
             rpc_server_port(s), i + 1, gw.be[i].target);

    int sig = 0;
    if ((rc = sigwait(&set, &sig)) != 0) {
        fprintf(stderr, "%s: sigwait: %s\n", prog, strerror(rc));
        goto fail;
    }
    glog(&gw, "signal %d: shutting down (grace %ldms), %lld in flight", sig,
         grace_ms, (long long)atomic_load(&gw.inflight));
    /* Handlers still running after the grace period see their request
     * context cancelled (cause shutdown) and reset their downstream calls;
     * shutdown returns once every handler has returned. */
    if ((rc = rpc_server_shutdown(s, grace_ms * CTX_MS)) != 0)
        glog(&gw, "shutdown: %s", rpc_strerror(rc)); /* free() still stops it */
    rpc_server_free(s);
    close_backends(&gw);
    rpc_client_observer_free(observer); /* observe: after every channel */
    if (log_fd >= 0)
        close(log_fd);
    glog(&gw, "stopped: requests=%lld ok=%lld failed=%lld cancelled=%lld",
         (long long)atomic_load(&gw.requests), (long long)atomic_load(&gw.ok),
         (long long)atomic_load(&gw.failed),
         (long long)atomic_load(&gw.cancelled));
    /* Everything is released: a timer still armed would be a context
     * leaked somewhere, worth a non-zero exit.  AfterFunc callbacks queued
     * by the final cancellations (the client library's watchers) may still
     * be finishing on libctx's threads: give them a bounded moment. */
    for (int i = 0; (rc = ctx_shutdown()) == EBUSY && ctx_debug_timers() == 0 &&
                     i < 1000; i++) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    if (rc != 0) {
        fprintf(stderr, "%s: ctx_shutdown: %s (%zu timers armed)\n", prog,
                strerror(rc), ctx_debug_timers());
        return 1;
    }
    return 0;

fail:
    rpc_server_free(s);
    close_backends(&gw);
    rpc_client_observer_free(observer); /* observe */
    (void)ctx_shutdown(); /* exiting with 1 anyway */
    return 1;
}
