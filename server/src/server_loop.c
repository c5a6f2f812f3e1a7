/*
 * server_loop.c -- the server's event-loop threads and their mailbox.
 *
 * rpc_server_start() creates N event_bases (precise timers: timerfd) and
 * one thread each.  Loop 0 also owns the listeners; accepted sockets are
 * dealt round-robin: loop 0 keeps its own, the others get theirs through
 * their inbox.
 *
 * The mailbox is the one door into a loop from other threads.  Under
 * loop->mu it holds:
 *   - inbox: accepted fds for this loop;
 *   - ready: calls with news (srv_loop_notify: a handler sent, finished or
 *     took messages; a request context ended);
 *   - cmds:  DRAIN and ABORT from rpc_server_shutdown().
 * Posting to it activates the loop's `wake` event; wake_cb() empties it
 * under the lock and then, without the lock: accepts the fds, pumps every
 * ready call (srv_call_pump), flushes each touched connection once, and
 * carries out the commands.
 *
 * Threads: everything here runs on the loop thread except
 * srv_loop_notify() and srv_loop_post_all() (any thread) and
 * srv_loop_start_all/join_all/free_all (the thread starting or stopping
 * the server).
 */
#include "server_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
    struct srv_loop *lp0 = arg;
    rpc_server_t *s = lp0->s;
    if (rpc_server_stat(s, RPC_STAT_CONNECTIONS) >= s->o.max_conns) {
        srv_log("connection limit (%d) reached, closing a new connection",
                s->o.max_conns);
        close(fd);
        return;
    }
    unsigned i = atomic_fetch_add(&s->next_loop, 1) % (unsigned)s->nloops;
    if (i == 0) {
        srv_conn_accept(lp0, fd);
        return;
    }
    struct srv_loop *lp = &s->loops[i];
    pthread_mutex_lock(&lp->mu);
    if (lp->ninbox == lp->capinbox) {
        size_t cap = lp->capinbox ? lp->capinbox * 2 : 16;
        int *v = rpc__realloc(lp->inbox, cap * sizeof *v);
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
    if ((err == EMFILE || err == ENFILE) && lp->spare_fd >= 0) {
        /* Give up the spare descriptor to take the waiting connection
         * and close it at once: that client is refused now instead of
         * hanging in the backlog. */
        close(lp->spare_fd);
        int fd = accept(evconnlistener_get_fd(l), NULL, NULL);
        if (fd >= 0)
            close(fd);
        lp->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    for (int i = 0; i < lp->nlisteners; i++)
        evconnlistener_disable(lp->listeners[i]);
    struct timeval tv = {0, 100000};
    evtimer_add(lp->accept_retry, &tv);
}

static void accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct srv_loop *lp = arg;
    if (lp->stopping || lp->draining)
        return;
    for (int i = 0; i < lp->nlisteners; i++)
        evconnlistener_enable(lp->listeners[i]);
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    srv_conn_sweep(arg, ctx_now());
}

static void stop_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    srv_conn_close_all(arg);
}

static void maybe_exit(struct srv_loop *lp)
{
    if (lp->stopping && lp->nconns == 0)
        event_base_loopbreak(lp->base);
}

/* Takes the ready list into calls[] (the caller's array, grown on the
 * heap past cap) under loop->mu.  The list is copied out while the lock
 * is held: once a call's ready_queued is cleared, another thread may
 * queue it again (rewriting ready_next) at any moment. */
static size_t take_ready(struct srv_loop *lp, struct rpc_call ***callsp,
                         size_t cap)
{
    struct rpc_call **calls = *callsp;
    size_t n = 0;
    for (struct rpc_call *c = lp->ready; c; c = c->ready_next) {
        if (n == cap) {
            struct rpc_call **v = rpc__malloc(2 * cap * sizeof *v);
            if (v == NULL)
                break; /* the rest stay queued for the next wake-up */
            memcpy(v, calls, n * sizeof *v);
            if (calls != *callsp)
                free(calls);
            calls = v;
            cap *= 2;
        }
        calls[n++] = c;
    }
    lp->ready = n ? calls[n - 1]->ready_next : lp->ready;
    for (size_t i = 0; i < n; i++)
        calls[i]->ready_queued = 0;
    *callsp = calls;
    return n;
}

void srv_loop_wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct srv_loop *lp = arg;
    struct rpc_call *stackv[64], **calls = stackv;
    pthread_mutex_lock(&lp->mu);
    int *fds = lp->inbox;
    size_t nfds = lp->ninbox;
    lp->inbox = NULL;
    lp->ninbox = lp->capinbox = 0;
    size_t ncalls = take_ready(lp, &calls, 64);
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
        /* Close the listening sockets at once: a new client's connect is
         * refused now instead of sitting in the backlog until exit. */
        lp->draining = 1;
        for (int i = 0; i < lp->nlisteners; i++)
            evconnlistener_free(lp->listeners[i]);
        lp->nlisteners = 0;
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

/* The time libevent cached at the start of the iteration (wall clock)
 * carried over to CLOCK_MONOTONIC, so the time the loop spent on the
 * requests before this one in the same batch (200 HEADERS in one read)
 * does not count as transit and push its deadline late.  Worked out once
 * per read batch: reading libevent's cached time takes the base's lock. */
int64_t srv_loop_woke_ns(struct srv_loop *lp)
{
    if (lp->woke_ns != 0)
        return lp->woke_ns;
    int64_t mono = ctx_now();
    struct timeval cached, now;
    if (event_base_gettimeofday_cached(lp->base, &cached) != 0 ||
        gettimeofday(&now, NULL) != 0)
        return mono;
    int64_t behind = (int64_t)(now.tv_sec - cached.tv_sec) * CTX_SECOND +
                     (int64_t)(now.tv_usec - cached.tv_usec) * 1000;
    lp->woke_ns = behind >= 0 && behind < CTX_SECOND ? mono - behind : mono;
    return lp->woke_ns;
}

void srv_loop_read_begins(struct srv_loop *lp)
{
    lp->woke_ns = 0;
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

void srv_loop_post_all(rpc_server_t *s, int cmd)
{
    for (int i = 0; i < s->nloops; i++) {
        struct srv_loop *lp = &s->loops[i];
        pthread_mutex_lock(&lp->mu);
        lp->cmds |= cmd;
        pthread_mutex_unlock(&lp->mu);
        event_active(lp->wake, EV_READ, 0);
    }
}

static void *loop_main(void *arg)
{
    struct srv_loop *lp = arg;
    rpc__block_sigpipe();
    event_base_loop(lp->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

void srv_loop_join_all(rpc_server_t *s)
{
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
}

void srv_loop_free_all(rpc_server_t *s)
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
        if (lp->sweep)
            event_free(lp->sweep);
        /* Freed bufferevents (TLS ones especially) are finalized from
         * deferred callbacks, which event_base_free() would cancel: run
         * them first. */
        for (int k = 0; lp->base && k < 4; k++)
            event_base_loop(lp->base, EVLOOP_NONBLOCK);
        if (lp->base)
            event_base_free(lp->base);
        for (size_t k = 0; k < lp->ninbox; k++)
            close(lp->inbox[k]);
        if (lp->spare_fd >= 0)
            close(lp->spare_fd);
        free(lp->inbox);
        pthread_mutex_destroy(&lp->mu);
    }
    free(s->loops);
    s->loops = NULL;
    s->nloops = 0;
}

int srv_loop_start_all(rpc_server_t *s, int n)
{
    s->loops = rpc__calloc((size_t)n, sizeof *s->loops);
    if (s->loops == NULL)
        return RPC_ERR_NOMEM;
    s->nloops = n;
    for (int i = 0; i < n; i++)
        s->loops[i].spare_fd = -1;
    struct event_config *cfg = event_config_new();
    if (cfg == NULL)
        return RPC_ERR_NOMEM;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        struct srv_loop *lp = &s->loops[i];
        lp->s = s;
        lp->idx = i;
        lp->spare_fd = i == 0 ? open("/dev/null", O_RDONLY | O_CLOEXEC) : -1;
        pthread_mutex_init(&lp->mu, NULL);
        lp->base = event_base_new_with_config(cfg);
        if (lp->base == NULL ||
            (lp->wake = event_new(lp->base, -1, 0, srv_loop_wake_cb, lp)) == NULL ||
            (lp->stop_timer = evtimer_new(lp->base, stop_timer_cb, lp)) == NULL ||
            (lp->accept_retry = evtimer_new(lp->base, accept_retry_cb, lp)) == NULL ||
            (lp->sweep = event_new(lp->base, -1, EV_PERSIST, sweep_cb, lp)) == NULL)
            rc = RPC_ERR_NOMEM;
        else {
            struct timeval tv = {1, 0};
            event_add(lp->sweep, &tv);
        }
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
        srv_loop_free_all(s);
    }
    return rc;
}
