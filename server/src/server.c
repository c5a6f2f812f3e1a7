/*
 * server.c -- the server object: options, the method table, listeners,
 * start, shutdown, counters.  The loop threads and their mailbox are
 * server_loop.c.
 *
 * Shutdown (rpc_server_shutdown):
 *   1. state DRAINING; health NOT_SERVING; each loop stops accepting and
 *      sends GOAWAY on every connection (calls in flight continue);
 *   2. wait until no call is alive or the grace period ends;
 *   3. cancel the server root (RPC_CAUSE_SHUTDOWN): every remaining
 *      handler and sub-task sees it; loops answer open calls UNAVAILABLE
 *      and close their connections (after a short flush);
 *   4. join the loops, then wait for the last handler to return (they all
 *      observe the cancelled root) and stop the server's own pool.
 */
#include "server_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/thread.h>
#include <netdb.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* A token bucket shared by every thread: now is CLOCK_MONOTONIC ns, the
 * bucket allows `rate` events per second with bursts of `burst`.  GCRA:
 * *tat is the theoretical arrival time of the next event; an event is
 * allowed when tat is at most burst intervals ahead of now.  Lock-free. */
bool srv_rate_allow(atomic_int_fast64_t *tat, int64_t now, int64_t rate,
                    int64_t burst)
{
    int64_t interval = CTX_SECOND / (rate > 0 ? rate : 1);
    int64_t old = atomic_load_explicit(tat, memory_order_relaxed);
    for (;;) {
        int64_t base = old > now ? old : now;
        if (base - now > burst * interval)
            return false;
        if (atomic_compare_exchange_weak_explicit(tat, &old, base + interval,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    }
}

/* Log lines: 20 a second, bursts of 50, process-wide; what is dropped is
 * counted and reported with the next line that gets through, so a flood
 * of bad input (a PING or reset storm) cannot flood the log. */
static atomic_int_fast64_t log_tat;
static atomic_int_fast64_t log_dropped;

void srv_log(const char *fmt, ...)
{
    if (!srv_rate_allow(&log_tat, ctx_now(), 20, 50)) {
        atomic_fetch_add_explicit(&log_dropped, 1, memory_order_relaxed);
        return;
    }
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    int64_t dropped = atomic_exchange(&log_dropped, 0);
    if (dropped > 0)
        fprintf(stderr, "rpc_server: (%lld log lines suppressed)\n",
                (long long)dropped);
    fprintf(stderr, "rpc_server: %s\n", buf);
}

const char *rpc_cause_text(int cause)
{
    switch (cause) {
    case 0: return "none";
#define TEXT(name, num, text) case num: return text;
        RPC_CAUSE_MAP(TEXT)
#undef TEXT
    default: return "unknown cause";
    }
}

int rpc_cause_status(int cause)
{
    switch (cause) {
    case 0:
    case RPC_CAUSE_FINISHED: return RPC_STATUS_OK;
    case RPC_CAUSE_CLIENT_CANCEL:
    case RPC_CAUSE_PEER_GONE:
    case RPC_CAUSE_KEEPALIVE: return RPC_STATUS_CANCELLED;
    case RPC_CAUSE_DEADLINE: return RPC_STATUS_DEADLINE_EXCEEDED;
    case RPC_CAUSE_SHUTDOWN: return RPC_STATUS_UNAVAILABLE;
    case RPC_CAUSE_PROTOCOL: return RPC_STATUS_INTERNAL;
    case RPC_CAUSE_STALLED: return RPC_STATUS_RESOURCE_EXHAUSTED;
    default: return RPC_STATUS_UNKNOWN;
    }
}

rpc_server_t *rpc_server_new(void)
{
    rpc__libevent_init();
    rpc_server_t *s = rpc__calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->root = ctx_with_cancel(ctx_background());
    if (s->root == NULL) {
        free(s);
        return NULL;
    }
    s->o.loop_threads = 0;
    s->o.worker_threads = 32;
    s->o.max_recv = RPC__DEFAULT_MAX_RECV;
    s->o.max_streams = 100;
    s->o.max_header_list = 16 * 1024;
    s->o.keepalive_ns = 60 * CTX_SECOND;
    s->o.keepalive_timeout_ns = 20 * CTX_SECOND;
    s->o.permit_ping_ns = 60 * CTX_SECOND;
    s->o.max_ping_strikes = 2;
    s->o.handshake_ns = 10 * CTX_SECOND;
    s->o.idle_ns = 300 * CTX_SECOND;
    s->o.write_timeout_ns = 30 * CTX_SECOND;
    s->o.send_buffer = 1024 * 1024;
    s->o.send_stall_ns = 20 * CTX_SECOND;
    s->o.max_blocked_sends = 16;
    s->o.max_conns = 0; /* the fd limit, at start */
    s->o.max_pending_hs = 256;
    s->o.max_resets_per_sec = 2000;
    s->o.worker_sched_batch = 1;
    s->port = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->state = SRV_NEW;
    return s;
}

int rpc_server_set_option(rpc_server_t *s, rpc_server_opt_t opt, int64_t v)
{
    if (s == NULL || v < 0)
        return RPC_ERR_INVAL;
    if (s->state != SRV_NEW)
        return RPC_ERR_STATE;
    switch (opt) {
    case RPC_SERVER_LOOP_THREADS: s->o.loop_threads = (int)v; break;
    case RPC_SERVER_WORKER_THREADS:
        if (v == 0) return RPC_ERR_INVAL;
        s->o.worker_threads = (int)v; break;
    case RPC_SERVER_MAX_RECV_MESSAGE:
        if (v > UINT32_MAX) return RPC_ERR_INVAL;
        s->o.max_recv = (uint32_t)v; break;
    case RPC_SERVER_MAX_CONCURRENT_STREAMS:
        if (v == 0 || v > UINT32_MAX) return RPC_ERR_INVAL;
        s->o.max_streams = (uint32_t)v; break;
    case RPC_SERVER_MAX_HEADER_LIST:
        if (v < 1024 || v > UINT32_MAX) return RPC_ERR_INVAL;
        s->o.max_header_list = (uint32_t)v; break;
    case RPC_SERVER_KEEPALIVE_TIME_MS: s->o.keepalive_ns = v * CTX_MS; break;
    case RPC_SERVER_KEEPALIVE_TIMEOUT_MS:
        if (v == 0) return RPC_ERR_INVAL;
        s->o.keepalive_timeout_ns = v * CTX_MS; break;
    case RPC_SERVER_PERMIT_PING_MS: s->o.permit_ping_ns = v * CTX_MS; break;
    case RPC_SERVER_MAX_PING_STRIKES: s->o.max_ping_strikes = (int)v; break;
    case RPC_SERVER_HANDSHAKE_TIMEOUT_MS: s->o.handshake_ns = v * CTX_MS; break;
    case RPC_SERVER_IDLE_TIMEOUT_MS: s->o.idle_ns = v * CTX_MS; break;
    case RPC_SERVER_WRITE_TIMEOUT_MS: s->o.write_timeout_ns = v * CTX_MS; break;
    case RPC_SERVER_SEND_BUFFER:
        if (v == 0) return RPC_ERR_INVAL;
        s->o.send_buffer = (size_t)v; break;
    case RPC_SERVER_SEND_STALL_TIMEOUT_MS: s->o.send_stall_ns = v * CTX_MS; break;
    case RPC_SERVER_MAX_BLOCKED_SENDS:
        if (v == 0 || v > INT32_MAX) return RPC_ERR_INVAL;
        s->o.max_blocked_sends = (int)v; break;
    case RPC_SERVER_MAX_CONNECTIONS:
        if (v == 0 || v > INT32_MAX) return RPC_ERR_INVAL;
        s->o.max_conns = (int)v; break;
    case RPC_SERVER_MAX_PENDING_HANDSHAKES:
        if (v == 0 || v > INT32_MAX) return RPC_ERR_INVAL;
        s->o.max_pending_hs = (int)v; break;
    case RPC_SERVER_MAX_WORKER_THREADS:
        if (v == 0 || v > INT32_MAX) return RPC_ERR_INVAL;
        s->o.max_workers = (int)v; break;
    case RPC_SERVER_MAX_RESETS_PER_SEC:
        if (v == 0 || v > INT32_MAX) return RPC_ERR_INVAL;
        s->o.max_resets_per_sec = (int)v; break;
    case RPC_SERVER_WORKER_SCHED_BATCH:
        if (v > 1) return RPC_ERR_INVAL;
        s->o.worker_sched_batch = (int)v; break;
    default: return RPC_ERR_INVAL;
    }
    return 0;
}

int rpc_server_set_pool(rpc_server_t *s, ctx_pool_t *pool)
{
    if (s == NULL || pool == NULL)
        return RPC_ERR_INVAL;
    if (s->state != SRV_NEW)
        return RPC_ERR_STATE;
    s->pool = pool;
    s->own_pool = 0;
    return 0;
}

ctx_t *rpc_server_ctx(rpc_server_t *s)
{
    return s ? s->root : NULL;
}

/* ---- methods ------------------------------------------------------------ */

static int cmp_method(const void *a, const void *b)
{
    return strcmp(((const struct srv_method *)a)->path,
                  ((const struct srv_method *)b)->path);
}

const struct srv_method *srv_find_method(const rpc_server_t *s,
                                         const char *path, size_t len)
{
    size_t lo = 0, hi = s->nmethods;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *p = s->methods[mid].path;
        int c = strncmp(p, path, len);
        if (c == 0 && p[len] != '\0')
            c = 1;
        if (c == 0)
            return &s->methods[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int rpc_server_add_method(rpc_server_t *s,
                          const struct ProtobufCServiceDescriptor *svc,
                          const char *method, rpc_method_kind_t kind,
                          rpc_handler_style_t style, rpc_handler_fn fn,
                          void *user_data)
{
    if (s == NULL || svc == NULL || method == NULL || fn == NULL ||
        kind > RPC_BIDI_STREAMING || style > RPC_NONBLOCKING)
        return RPC_ERR_INVAL;
    if (s->state != SRV_NEW)
        return RPC_ERR_STATE;
    const ProtobufCMethodDescriptor *md = NULL;
    for (unsigned i = 0; i < svc->n_methods; i++)
        if (strcmp(svc->methods[i].name, method) == 0)
            md = &svc->methods[i];
    if (md == NULL)
        return RPC_ERR_INVAL;
    size_t plen = strlen(svc->name) + strlen(method) + 3;
    char *path = rpc__malloc(plen);
    if (path == NULL)
        return RPC_ERR_NOMEM;
    snprintf(path, plen, "/%s/%s", svc->name, method);
    if (srv_find_method(s, path, strlen(path)) != NULL) {
        free(path);
        return RPC_ERR_EXISTS;
    }
    if (s->nmethods == s->capmethods) {
        size_t cap = s->capmethods ? s->capmethods * 2 : 16;
        struct srv_method *v = rpc__realloc(s->methods, cap * sizeof *v);
        if (v == NULL) {
            free(path);
            return RPC_ERR_NOMEM;
        }
        s->methods = v;
        s->capmethods = cap;
    }
    s->methods[s->nmethods++] = (struct srv_method){
        .path = path, .desc = md, .kind = kind, .style = style, .fn = fn,
        .user_data = user_data};
    qsort(s->methods, s->nmethods, sizeof *s->methods, cmp_method);
    return 0;
}

/* ---- listening ---------------------------------------------------------- */

int rpc_server_listen(rpc_server_t *s, const char *host, int port)
{
    if (s == NULL || port < 0 || port > 65535)
        return RPC_ERR_INVAL;
    if (s->state != SRV_NEW)
        return RPC_ERR_STATE;
    if (s->nlisten == (int)(sizeof s->listen_fds / sizeof *s->listen_fds))
        return RPC_ERR_INVAL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    char ps[8];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo *ai;
    if (getaddrinfo(host && *host ? host : NULL, ps, &hints, &ai) != 0) {
        errno = EINVAL;
        return RPC_ERR_SYSTEM;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 1024) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        errno = err;
        return RPC_ERR_SYSTEM;
    }
    evutil_make_socket_nonblocking(fd);
    s->listen_fds[s->nlisten++] = fd;
    if (s->port < 0) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        getsockname(fd, (struct sockaddr *)&ss, &sl);
        s->port = ss.ss_family == AF_INET6
                      ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                      : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    return 0;
}

int rpc_server_port(const rpc_server_t *s)
{
    return s ? s->port : -1;
}

/* The CPUs this process may run on (its affinity mask, as Go sizes
 * GOMAXPROCS): a server pinned to one core gets one loop. */
static int usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int srv_make_pool(rpc_server_t *s)
{
    if (s->pool != NULL)
        return 0;
    ctx_pool_options_t po;
    ctx_pool_options_init(&po);
    po.threads = s->o.worker_threads;
    po.max_threads = s->o.max_workers >= s->o.worker_threads ? s->o.max_workers
                                                             : 0;
    po.queue_capacity = 4096;
    po.stack_size = 256 * 1024;
    po.sched_batch = s->o.worker_sched_batch != 0;
    s->pool = ctx_pool_create(&po);
    if (s->pool == NULL)
        return RPC_ERR_NOMEM;
    s->own_pool = 1;
    return 0;
}

int rpc_server_start(rpc_server_t *s)
{
    if (s == NULL)
        return RPC_ERR_INVAL;
    if (s->state != SRV_NEW || s->nlisten == 0)
        return RPC_ERR_STATE;
    int n = s->o.loop_threads > 0 ? s->o.loop_threads : usable_cpus();
    if (srv_make_pool(s) != 0)
        return RPC_ERR_NOMEM;
    if (s->o.max_conns == 0) {
        struct rlimit rl;
        rlim_t lim = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
        s->o.max_conns = lim > 64 + 16 && lim < (rlim_t)INT32_MAX
                             ? (int)(lim - 64) : lim >= (rlim_t)INT32_MAX ? INT32_MAX : 16;
    }
    int rc = srv_loop_start_all(s, n);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&s->mu);
    s->state = SRV_RUNNING;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void srv_stat_add(rpc_server_t *s, rpc_server_stat_t st, int64_t d)
{
    atomic_fetch_add_explicit(&s->stats[st], d, memory_order_relaxed);
}

void srv_stat_ended(rpc_server_t *s, int status, int cause)
{
    static const rpc_server_stat_t legacy[SRV_NCAUSES] = {
        [SRV_CAUSE_INDEX(RPC_CAUSE_CLIENT_CANCEL)] = RPC_STAT_CANCEL_CLIENT,
        [SRV_CAUSE_INDEX(RPC_CAUSE_PEER_GONE)] = RPC_STAT_CANCEL_PEER_GONE,
        [SRV_CAUSE_INDEX(RPC_CAUSE_DEADLINE)] = RPC_STAT_CANCEL_DEADLINE,
        [SRV_CAUSE_INDEX(RPC_CAUSE_SHUTDOWN)] = RPC_STAT_CANCEL_SHUTDOWN,
        [SRV_CAUSE_INDEX(RPC_CAUSE_KEEPALIVE)] = RPC_STAT_CANCEL_KEEPALIVE,
    };
    if (status < 0 || status > 16)
        status = RPC_STATUS_UNKNOWN;
    atomic_fetch_add_explicit(&s->by_status[status], 1, memory_order_relaxed);
    srv_stat_add(s, status == 0 ? RPC_STAT_CALLS_OK : RPC_STAT_CALLS_FAILED, 1);
    int i = SRV_CAUSE_INDEX(cause);
    if (cause != 0 && i >= 0 && i < SRV_NCAUSES) {
        atomic_fetch_add_explicit(&s->by_cause[i], 1, memory_order_relaxed);
        if (legacy[i] != 0)
            srv_stat_add(s, legacy[i], 1);
    }
}

int64_t rpc_server_stat(const rpc_server_t *s, rpc_server_stat_t st)
{
    if (s == NULL || st < 1 || st > RPC_STAT_CALLS_REJECTED)
        return 0;
    return atomic_load_explicit(&((rpc_server_t *)s)->stats[st],
                                memory_order_relaxed);
}

int64_t rpc_server_stat_status(const rpc_server_t *s, int status)
{
    if (s == NULL || status < 0 || status > 16)
        return 0;
    return atomic_load_explicit(&((rpc_server_t *)s)->by_status[status],
                                memory_order_relaxed);
}

int64_t rpc_server_stat_cause(const rpc_server_t *s, int cause)
{
    int i = SRV_CAUSE_INDEX(cause);
    if (s == NULL || cause == 0 || i < 0 || i >= SRV_NCAUSES)
        return 0;
    return atomic_load_explicit(&((rpc_server_t *)s)->by_cause[i],
                                memory_order_relaxed);
}

void srv_call_freed(rpc_server_t *s)
{
    if (atomic_fetch_sub(&s->stats[RPC_STAT_CALLS_ACTIVE], 1) == 1) {
        pthread_mutex_lock(&s->mu);
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
}

/* Waits until no call is alive, or until deadline (CLOCK_MONOTONIC ns;
 * INT64_MAX: forever).  Returns true when none is alive. */
static bool wait_calls(rpc_server_t *s, int64_t deadline)
{
    pthread_mutex_lock(&s->mu);
    while (rpc_server_stat(s, RPC_STAT_CALLS_ACTIVE) > 0) {
        int64_t now = ctx_now();
        if (now >= deadline)
            break;
        /* The condvar uses CLOCK_REALTIME; wait in short slices so the
         * monotonic deadline rules. */
        int64_t slice = deadline - now < 50 * CTX_MS ? deadline - now
                                                     : 50 * CTX_MS;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + slice;
        ts.tv_sec += ns / CTX_SECOND;
        ts.tv_nsec = ns % CTX_SECOND;
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    bool none = rpc_server_stat(s, RPC_STAT_CALLS_ACTIVE) == 0;
    pthread_mutex_unlock(&s->mu);
    return none;
}

int rpc_server_shutdown(rpc_server_t *s, int64_t grace_ns)
{
    if (s == NULL)
        return RPC_ERR_INVAL;
    pthread_mutex_lock(&s->mu);
    enum srv_state st = s->state;
    if (st == SRV_RUNNING)
        s->state = SRV_DRAINING;
    pthread_mutex_unlock(&s->mu);
    if (st == SRV_NEW)
        return RPC_ERR_STATE;
    if (st != SRV_RUNNING) {
        /* Someone else is shutting down or has: wait for the end. */
        while (1) {
            pthread_mutex_lock(&s->mu);
            st = s->state;
            pthread_mutex_unlock(&s->mu);
            if (st == SRV_STOPPED)
                return 0;
            ctx_wait(ctx_background(), 10 * CTX_MS);
        }
    }
    srv_health_all_not_serving(s);
    srv_loop_post_all(s, LOOP_CMD_DRAIN);
    int64_t deadline = grace_ns > 0 && grace_ns < INT64_MAX - ctx_now()
                           ? ctx_now() + grace_ns
                           : grace_ns > 0 ? INT64_MAX : 0;
    wait_calls(s, deadline);
    ctx_cancel_cause(s->root, RPC_CAUSE_SHUTDOWN);
    srv_loop_post_all(s, LOOP_CMD_ABORT);
    srv_loop_join_all(s);
    /* Handlers still running have seen the cancelled root; wait for them
     * (their output is dropped: the loops are gone). */
    wait_calls(s, INT64_MAX);
    if (s->own_pool) {
        ctx_pool_destroy(s->pool);
        s->pool = NULL;
    }
    pthread_mutex_lock(&s->mu);
    s->state = SRV_STOPPED;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void rpc_server_free(rpc_server_t *s)
{
    if (s == NULL)
        return;
    if (s->state == SRV_RUNNING || s->state == SRV_DRAINING)
        rpc_server_shutdown(s, 0);
    srv_obs_free(s); /* observe: admin thread and log writer first */
    srv_loop_free_all(s);
    for (int i = 0; i < s->nlisten; i++)
        close(s->listen_fds[i]);
    for (size_t i = 0; i < s->nmethods; i++)
        free(s->methods[i].path);
    free(s->methods);
    srv_health_free(s->health);
    srv_reflection_free(s->reflection);
    srv_transport_free(s);
    if (s->own_pool)
        ctx_pool_destroy(s->pool);
    ctx_release(s->root);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
