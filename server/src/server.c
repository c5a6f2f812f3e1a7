/*
 * server.c -- the server object: options, the method table, listeners, the
 * event-loop threads and their mailbox, shutdown, counters.
 *
 * Loops.  rpc_server_start() creates N event_bases (with precise timers:
 * timerfd, so per-call deadline timers fire within tens of microseconds
 * instead of epoll's millisecond rounding) and one thread each.  Loop 0
 * also owns the listeners; accepted sockets are dealt round-robin: loop 0
 * keeps its own, the others get theirs through their inbox and a wake-up
 * event.  The same mailbox carries "call has handler output" notices from
 * worker threads and shutdown commands from the thread calling
 * rpc_server_shutdown().
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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void srv_log(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
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
    default: return RPC_STATUS_UNKNOWN;
    }
}

rpc_server_t *rpc_server_new(void)
{
    rpc__libevent_init();
    rpc_server_t *s = calloc(1, sizeof *s);
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
    if (style == RPC_NONBLOCKING &&
        (kind == RPC_CLIENT_STREAMING || kind == RPC_BIDI_STREAMING))
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
    char *path = malloc(plen);
    if (path == NULL)
        return RPC_ERR_NOMEM;
    snprintf(path, plen, "/%s/%s", svc->name, method);
    if (srv_find_method(s, path, strlen(path)) != NULL) {
        free(path);
        return RPC_ERR_EXISTS;
    }
    if (s->nmethods == s->capmethods) {
        size_t cap = s->capmethods ? s->capmethods * 2 : 16;
        struct srv_method *v = realloc(s->methods, cap * sizeof *v);
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

/* ---- loops -------------------------------------------------------------- */

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
    struct srv_loop *lp0 = arg;
    rpc_server_t *s = lp0->s;
    unsigned i = atomic_fetch_add(&s->next_loop, 1) % (unsigned)s->nloops;
    if (i == 0) {
        srv_conn_accept(lp0, fd);
        return;
    }
    struct srv_loop *lp = &s->loops[i];
    pthread_mutex_lock(&lp->mu);
    if (lp->ninbox == lp->capinbox) {
        size_t cap = lp->capinbox ? lp->capinbox * 2 : 16;
        int *v = realloc(lp->inbox, cap * sizeof *v);
        if (v == NULL) {
            pthread_mutex_unlock(&lp->mu);
            close(fd);
            return;
        }
        lp->inbox = v;
        lp->capinbox = cap;
    }
    lp->inbox[lp->ninbox++] = fd;
    pthread_mutex_unlock(&lp->mu);
    event_active(lp->wake, EV_READ, 0);
}

/* accept() failed (typically EMFILE/ENFILE: out of descriptors).  The
 * listening socket stays readable, so retrying at once would spin: pause
 * accepting for 100 ms, log once per pause, keep serving the
 * connections we have. */
static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    struct srv_loop *lp = arg;
    int err = EVUTIL_SOCKET_ERROR();
    srv_log("accept failed: %s; pausing accepts for 100 ms",
            evutil_socket_error_to_string(err));
    for (int i = 0; i < lp->nlisteners; i++)
        evconnlistener_disable(lp->listeners[i]);
    struct timeval tv = {0, 100000};
    evtimer_add(lp->accept_retry, &tv);
}

static void accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct srv_loop *lp = arg;
    if (lp->stopping || lp->cmds_seen_drain)
        return;
    for (int i = 0; i < lp->nlisteners; i++)
        evconnlistener_enable(lp->listeners[i]);
}

static void stop_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct srv_loop *lp = arg;
    srv_conn_close_all(lp);
}

static void maybe_exit(struct srv_loop *lp)
{
    if (lp->stopping && lp->nconns == 0)
        event_base_loopbreak(lp->base);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct srv_loop *lp = arg;
    /* Take everything under the lock.  The ready list is copied out while
     * the lock is held: once a call's ready_queued is cleared, a worker
     * may queue it again (rewriting ready_next) at any moment. */
    struct rpc_call *stackv[64], **calls = stackv;
    size_t ncalls = 0, cap = 64;
    pthread_mutex_lock(&lp->mu);
    int *fds = lp->inbox;
    size_t nfds = lp->ninbox;
    lp->inbox = NULL;
    lp->ninbox = lp->capinbox = 0;
    for (struct rpc_call *c = lp->ready; c; c = c->ready_next) {
        if (ncalls == cap) {
            struct rpc_call **v = malloc(2 * cap * sizeof *v);
            if (v == NULL)
                break; /* the rest stay queued for the next wake-up */
            memcpy(v, calls, ncalls * sizeof *v);
            if (calls != stackv)
                free(calls);
            calls = v;
            cap *= 2;
        }
        calls[ncalls++] = c;
    }
    lp->ready = ncalls ? calls[ncalls - 1]->ready_next : lp->ready;
    for (size_t i = 0; i < ncalls; i++)
        calls[i]->ready_queued = 0;
    int cmds = lp->cmds;
    lp->cmds = 0;
    int more = lp->ready != NULL;
    pthread_mutex_unlock(&lp->mu);
    if (more)
        event_active(lp->wake, EV_READ, 0);

    for (size_t i = 0; i < nfds; i++) {
        if (lp->stopping)
            close(fds[i]);
        else
            srv_conn_accept(lp, fds[i]);
    }
    free(fds);
    /* Pump every call, then flush each connection once. */
    unsigned epoch = ++lp->flush_epoch;
    for (size_t i = 0; i < ncalls; i++)
        srv_call_pump(calls[i]);
    for (size_t i = 0; i < ncalls; i++) {
        struct srv_conn *conn = calls[i]->conn;
        if (conn && conn->flush_epoch != epoch) {
            conn->flush_epoch = epoch;
            srv_conn_flush(conn);
        }
    }
    for (size_t i = 0; i < ncalls; i++)
        srv_call_release(calls[i]);
    if (calls != stackv)
        free(calls);
    if (cmds & LOOP_CMD_DRAIN) {
        lp->cmds_seen_drain = 1;
        for (int i = 0; i < lp->nlisteners; i++)
            evconnlistener_disable(lp->listeners[i]);
        srv_conn_drain_all(lp);
    }
    if (cmds & LOOP_CMD_ABORT) {
        lp->stopping = 1;
        srv_conn_abort_all(lp);
        /* Give the answers 200 ms to leave, then close what is left. */
        struct timeval tv = {0, 200000};
        evtimer_add(lp->stop_timer, &tv);
    }
    maybe_exit(lp);
}

void srv_loop_notify(struct rpc_call *call)
{
    struct srv_loop *lp = call->lp;
    int wake = 0;
    pthread_mutex_lock(&lp->mu);
    if (!call->ready_queued && !lp->dead) {
        call->ready_queued = 1;
        atomic_fetch_add(&call->refs, 1);
        call->ready_next = lp->ready;
        wake = lp->ready == NULL;
        lp->ready = call;
    }
    pthread_mutex_unlock(&lp->mu);
    if (wake)
        event_active(lp->wake, EV_READ, 0);
}

void srv_loop_conn_gone(struct srv_loop *lp);
void srv_loop_conn_gone(struct srv_loop *lp)
{
    maybe_exit(lp);
}

static void post_cmd(struct srv_loop *lp, int cmd)
{
    pthread_mutex_lock(&lp->mu);
    lp->cmds |= cmd;
    pthread_mutex_unlock(&lp->mu);
    event_active(lp->wake, EV_READ, 0);
}

static void *loop_main(void *arg)
{
    struct srv_loop *lp = arg;
    event_base_loop(lp->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void free_loops(rpc_server_t *s)
{
    for (int i = 0; i < s->nloops; i++) {
        struct srv_loop *lp = &s->loops[i];
        for (int j = 0; j < lp->nlisteners; j++)
            evconnlistener_free(lp->listeners[j]);
        if (lp->wake)
            event_free(lp->wake);
        if (lp->stop_timer)
            event_free(lp->stop_timer);
        if (lp->accept_retry)
            event_free(lp->accept_retry);
        if (lp->base)
            event_base_free(lp->base);
        for (size_t k = 0; k < lp->ninbox; k++)
            close(lp->inbox[k]);
        free(lp->inbox);
        pthread_mutex_destroy(&lp->mu);
    }
    free(s->loops);
    s->loops = NULL;
    s->nloops = 0;
}

int rpc_server_start(rpc_server_t *s)
{
    if (s == NULL)
        return RPC_ERR_INVAL;
    if (s->state != SRV_NEW || s->nlisten == 0)
        return RPC_ERR_STATE;
    int n = s->o.loop_threads > 0 ? s->o.loop_threads
                                  : ctx_pool_default_threads();
    if (s->pool == NULL) {
        ctx_pool_options_t po;
        ctx_pool_options_init(&po);
        po.threads = s->o.worker_threads;
        po.queue_capacity = 4096;
        po.stack_size = 256 * 1024;
        s->pool = ctx_pool_create(&po);
        if (s->pool == NULL)
            return RPC_ERR_NOMEM;
        s->own_pool = 1;
    }
    s->loops = calloc((size_t)n, sizeof *s->loops);
    if (s->loops == NULL)
        return RPC_ERR_NOMEM;
    s->nloops = n;
    struct event_config *cfg = event_config_new();
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        struct srv_loop *lp = &s->loops[i];
        lp->s = s;
        lp->idx = i;
        pthread_mutex_init(&lp->mu, NULL);
        lp->base = event_base_new_with_config(cfg);
        if (lp->base == NULL ||
            (lp->wake = event_new(lp->base, -1, 0, wake_cb, lp)) == NULL ||
            (lp->stop_timer = evtimer_new(lp->base, stop_timer_cb, lp)) == NULL ||
            (lp->accept_retry = evtimer_new(lp->base, accept_retry_cb, lp)) == NULL)
            rc = RPC_ERR_NOMEM;
    }
    event_config_free(cfg);
    for (int j = 0; rc == 0 && j < s->nlisten; j++) {
        struct srv_loop *lp0 = &s->loops[0];
        lp0->listeners[j] = evconnlistener_new(
            lp0->base, accept_cb, lp0, LEV_OPT_CLOSE_ON_FREE, -1,
            s->listen_fds[j]);
        if (lp0->listeners[j] == NULL) {
            rc = RPC_ERR_NOMEM;
        } else {
            evconnlistener_set_error_cb(lp0->listeners[j], accept_error_cb);
            lp0->nlisteners++;
        }
    }
    if (rc == 0)
        s->nlisten = 0; /* the listeners own the fds now */
    int started = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        if (pthread_create(&s->loops[i].thread, NULL, loop_main,
                           &s->loops[i]) != 0)
            rc = RPC_ERR_SYSTEM;
        else
            started++;
    }
    if (rc != 0) {
        for (int i = 0; i < started; i++) {
            event_base_loopbreak(s->loops[i].base);
            pthread_join(s->loops[i].thread, NULL);
        }
        free_loops(s);
        return rc;
    }
    pthread_mutex_lock(&s->mu);
    s->state = SRV_RUNNING;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void srv_stat_add(rpc_server_t *s, rpc_server_stat_t st, int64_t d)
{
    atomic_fetch_add_explicit(&s->stats[st], d, memory_order_relaxed);
}

int64_t rpc_server_stat(const rpc_server_t *s, rpc_server_stat_t st)
{
    if (s == NULL || st < 1 || st > RPC_STAT_REFUSED_STREAMS)
        return 0;
    return atomic_load_explicit(&((rpc_server_t *)s)->stats[st],
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
    for (int i = 0; i < s->nloops; i++)
        post_cmd(&s->loops[i], LOOP_CMD_DRAIN);
    int64_t deadline = grace_ns > 0 && grace_ns < INT64_MAX - ctx_now()
                           ? ctx_now() + grace_ns
                           : grace_ns > 0 ? INT64_MAX : 0;
    wait_calls(s, deadline);
    ctx_cancel_cause(s->root, RPC_CAUSE_SHUTDOWN);
    for (int i = 0; i < s->nloops; i++)
        post_cmd(&s->loops[i], LOOP_CMD_ABORT);
    for (int i = 0; i < s->nloops; i++) {
        struct srv_loop *lp = &s->loops[i];
        pthread_join(lp->thread, NULL);
        /* Nobody will pump these any more: drop the mailbox's refs. */
        pthread_mutex_lock(&lp->mu);
        lp->dead = 1;
        struct rpc_call *ready = lp->ready;
        lp->ready = NULL;
        for (struct rpc_call *c = ready; c; c = c->ready_next)
            c->ready_queued = 0;
        pthread_mutex_unlock(&lp->mu);
        while (ready) {
            struct rpc_call *c = ready;
            ready = c->ready_next;
            srv_call_release(c);
        }
    }
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
    free_loops(s);
    for (int i = 0; i < s->nlisten; i++)
        close(s->listen_fds[i]);
    for (size_t i = 0; i < s->nmethods; i++)
        free(s->methods[i].path);
    free(s->methods);
    srv_health_free(s->health);
    srv_transport_free(s);
    if (s->own_pool)
        ctx_pool_destroy(s->pool);
    ctx_release(s->root);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
