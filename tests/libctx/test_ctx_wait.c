/*
 * test_ctx_wait.c -- blocking waits (ctx_wait) and the done fd
 * (ctx_done_fd) for event loops.
 *
 * Spec items covered: 13 (same fd on every call), C12 (fd readable when
 * done and stays readable, poll wakes, epoll EPOLLET gives one edge,
 * O_CLOEXEC|O_NONBLOCK, born-done readable at once, -1 for roots and
 * WithoutCancel, created on demand: 1e5 children use no fd, closed on
 * free, EMFILE), C13 (futex waits: 64 waiters woken by one cancel,
 * timeouts, deadline wake, a waiter expiring its own deadline), C17 (ctx_wait is not a cancellation point
 * and holds no lock while it blocks).
 */
#include "ctx_test_util.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/syscall.h>

static int key_a;

static bool fd_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* ---- ctx_wait ------------------------------------------------------------- */

/* A waiter on a descendant of a deadline's owner sleeps until the deadline
 * and expires the owner itself when the timer thread has not yet: the
 * same error and cause as the timer's, for the whole subtree, and the
 * owner's timer is disarmed.  Below a WithoutCancel nothing is expired. */
static void test_wait_expires_inherited_deadline(void **state)
{
    ctx_t *owner = ctx_with_timeout_cause(ctx_background(), 20 * CTX_MS, 4242);
    ctx_t *v = ctx_with_value(owner, &key_a, &key_a, NULL);
    ctx_t *c = ctx_with_cancel(v);
    ctx_t *sib = ctx_with_cancel(owner);
    int64_t d = 0;
    assert_true(ctx_deadline(c, &d));
    assert_int_equal(ctx_wait(c, -1), CTX_DEADLINE_EXCEEDED);
    assert_true(ctx_now() >= d);
    assert_int_equal(ctx_cause(c), 4242);
    assert_int_equal(ctx_err(owner), CTX_DEADLINE_EXCEEDED);
    assert_int_equal(ctx_cause(owner), 4242);
    assert_int_equal(ctx_err(sib), CTX_DEADLINE_EXCEEDED); /* whole subtree */
    assert_int_equal(ctx_debug_timers(), 0);
    /* A timeout shorter than the deadline still returns 0. */
    ctx_t *far = ctx_with_timeout(ctx_background(), 3600 * CTX_SECOND);
    ctx_t *w = ctx_without_cancel(far);
    ctx_t *near = ctx_with_timeout(w, 5 * CTX_MS);
    assert_int_equal(ctx_wait(far, CTX_MS), 0);
    assert_int_equal(ctx_wait(near, -1), CTX_DEADLINE_EXCEEDED);
    assert_int_equal(ctx_err(far), 0); /* not expired through the WITHOUT */
    ctx_release(near);
    ctx_release(w);
    ctx_release(far);
    ctx_release(sib);
    ctx_release(c);
    ctx_release(v);
    ctx_release(owner);
}

static void test_wait_timeout_and_check(void **state)
{
    ctx_t *c = ctx_with_cancel(ctx_background());
    assert_int_equal(ctx_wait(c, 0), 0);
    int64_t t0 = ctx_now();
    assert_int_equal(ctx_wait(c, 5 * CTX_MS), 0);
    assert_true(ctx_now() - t0 >= 5 * CTX_MS); /* a timeout is not early */
    ctx_cancel(c);
    assert_int_equal(ctx_wait(c, -1), CTX_CANCELED);
    assert_int_equal(ctx_wait(c, 0), CTX_CANCELED);
    ctx_release(c);
}

static void test_wait_never_done_sleeps(void **state)
{
    ctx_t *w = ctx_without_cancel(ctx_background());
    ctx_t *v = ctx_with_value(ctx_background(), &key_a, NULL, NULL);
    ctx_t *cs[] = {ctx_background(), ctx_todo(), w, v};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(ctx_wait(cs[i], 0), 0);
        int64_t t0 = ctx_now();
        assert_int_equal(ctx_wait(cs[i], 3 * CTX_MS), 0);
        assert_true(ctx_now() - t0 >= 3 * CTX_MS);
    }
    ctx_release(v);
    ctx_release(w);
}

static void test_wait_deadline(void **state)
{
    ctx_t *t = ctx_with_timeout(ctx_background(), 2 * CTX_MS);
    ctx_t *v = ctx_with_value(t, &key_a, NULL, NULL);
    assert_int_equal(ctx_wait(v, T_LONG), CTX_DEADLINE_EXCEEDED);
    ctx_release(v);
    ctx_release(t);
}

enum { WAITERS = 64 };

struct waiters {
    ctx_t *c;
    _Atomic long started;
    _Atomic long done;
    _Atomic pid_t tid[WAITERS];
    _Atomic int slot;
};

static void *waiter_thread(void *arg)
{
    struct waiters *w = arg;
    int me = atomic_fetch_add(&w->slot, 1);
    atomic_store(&w->tid[me], (pid_t)syscall(SYS_gettid));
    atomic_fetch_add(&w->started, 1);
    T_CHECK(ctx_wait(w->c, 30 * CTX_SECOND) == CTX_CANCELED);
    atomic_fetch_add(&w->done, 1);
    return NULL;
}

static char task_state(pid_t tid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return '?';
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : '?';
}

static bool all_sleeping(void *arg)
{
    struct waiters *w = arg;
    for (int i = 0; i < WAITERS; i++)
        if (task_state(atomic_load(&w->tid[i])) != 'S')
            return false;
    return true;
}

static void test_wait_64_waiters_one_cancel(void **state)
{
    /* C13: any number of waiters; one cancel wakes them all. */
    struct waiters w = {.c = ctx_with_cancel(ctx_background())};
    ctx_t *v = ctx_with_value(w.c, &key_a, NULL, NULL);
    ctx_t *kid = ctx_with_cancel(v);
    pthread_t th[WAITERS];
    for (int i = 0; i < WAITERS; i++) {
        struct waiters *arg = &w;
        th[i] = t_thread(waiter_thread, arg, 0);
    }
    assert_true(t_wait_atomic_ge(&w.started, WAITERS, T_LONG));
    /* Best effort: let them reach the kernel so the wake is exercised
     * (a waiter that is late simply sees the error at once). */
    (void)t_spin_until(all_sleeping, &w, 2 * CTX_SECOND);
    assert_int_equal(atomic_load(&w.done), 0);
    /* no lock is held while they sleep: the tree stays usable */
    ctx_t *sib = ctx_with_cancel(v);
    ctx_cancel(sib);
    ctx_release(sib);
    assert_int_equal(atomic_load(&w.done), 0);
    ctx_cancel(w.c);
    assert_true(t_wait_atomic_ge(&w.done, WAITERS, T_LONG));
    for (int i = 0; i < WAITERS; i++)
        t_join(th[i]);
    T_NO_FAILURES();
    ctx_release(kid);
    ctx_release(v);
    ctx_release(w.c);
}

struct cancel_point {
    ctx_t *c;
    _Atomic long started;
    _Atomic int result;
};

static void *uncancelable_waiter(void *arg)
{
    struct cancel_point *cp = arg;
    atomic_store(&cp->started, 1);
    atomic_store(&cp->result, ctx_wait(cp->c, 30 * CTX_SECOND));
    pthread_testcancel(); /* the pending pthread_cancel acts here */
    atomic_store(&cp->result, -1);
    return NULL;
}

static void test_wait_not_a_cancellation_point(void **state)
{
    /* C17: pthread_cancel does not interrupt ctx_wait; the wait returns
     * on the context's cancel, leaves no lock held, and the thread then
     * honours the pending cancellation at its next cancellation point. */
    struct cancel_point cp = {.c = ctx_with_cancel(ctx_background())};
    pthread_t t = t_thread(uncancelable_waiter, &cp, 0);
    assert_true(t_wait_atomic_ge(&cp.started, 1, T_LONG));
    assert_int_equal(pthread_cancel(t), 0);
    ctx_t *kid = ctx_with_cancel(cp.c); /* registry lock is free */
    assert_non_null(kid);
    ctx_cancel(cp.c);
    void *ret = t_join(t);
    assert_ptr_equal(ret, PTHREAD_CANCELED);
    assert_int_equal(atomic_load(&cp.result), CTX_CANCELED);
    assert_int_equal(ctx_err(kid), CTX_CANCELED);
    assert_int_equal(ctx_wait(cp.c, 0), CTX_CANCELED);
    ctx_release(kid);
    ctx_release(cp.c);
    /* other contexts still work (nothing left locked) */
    ctx_t *c2 = ctx_with_timeout(ctx_background(), CTX_MS);
    assert_int_equal(ctx_wait(c2, T_LONG), CTX_DEADLINE_EXCEEDED);
    ctx_release(c2);
}

/* ---- ctx_done_fd ------------------------------------------------------- */

static void test_done_fd_never_done_is_minus_one(void **state)
{
    ctx_t *w = ctx_without_cancel(ctx_background());
    ctx_t *p = ctx_with_cancel(ctx_background());
    ctx_t *wp = ctx_without_cancel(p);
    ctx_t *v = ctx_with_value(ctx_background(), &key_a, NULL, NULL);
    ctx_t *wv = ctx_with_value(wp, &key_a, NULL, NULL);
    assert_int_equal(ctx_done_fd(ctx_background()), -1);
    assert_int_equal(ctx_done_fd(ctx_todo()), -1);
    assert_int_equal(ctx_done_fd(w), -1);
    assert_int_equal(ctx_done_fd(wp), -1);
    assert_int_equal(ctx_done_fd(v), -1);
    assert_int_equal(ctx_done_fd(wv), -1);
    ctx_release(wv);
    ctx_release(v);
    ctx_release(wp);
    ctx_release(p);
    ctx_release(w);
}

static void test_done_fd_basics(void **state)
{
    int fds0 = t_count_fds();
    ctx_t *p = ctx_with_cancel(ctx_background());
    ctx_t *v = ctx_with_value(p, &key_a, NULL, NULL);
    ctx_t *vv = ctx_with_value(v, &key_a, NULL, NULL);
    assert_int_equal(t_count_fds(), fds0); /* on demand only */
    int fd = ctx_done_fd(p);
    assert_true(fd >= 0);
    assert_int_equal(ctx_done_fd(p), fd); /* 13: same fd every call */
    assert_int_equal(ctx_done_fd(v), fd); /* value nodes share it */
    assert_int_equal(ctx_done_fd(vv), fd);
    assert_int_equal(t_count_fds(), fds0 + 1);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_false(fd_readable(fd));
    ctx_cancel(p);
    assert_true(fd_readable(fd)); /* readable when cancel returns */
    for (int i = 0; i < 5; i++)
        assert_true(fd_readable(fd)); /* and stays readable */
    assert_int_equal(ctx_done_fd(vv), fd);
    ctx_release(vv);
    ctx_release(v);
    assert_int_equal(t_count_fds(), fds0 + 1);
    ctx_release(p); /* closed when the owner is freed */
    assert_int_equal(t_count_fds(), fds0);
}

static void test_done_fd_born_done_and_expiry(void **state)
{
    ctx_t *p = ctx_with_cancel(ctx_background());
    ctx_cancel(p);
    ctx_t *c = ctx_with_cancel(p);
    int fd = ctx_done_fd(c);
    assert_true(fd >= 0);
    assert_true(fd_readable(fd)); /* already done: readable at once */
    ctx_release(c);
    ctx_release(p);
    ctx_t *t = ctx_with_timeout(ctx_background(), 2 * CTX_MS);
    fd = ctx_done_fd(t);
    assert_true(fd >= 0);
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&pf, 1, 10000), 1);
    assert_int_equal(ctx_err(t), CTX_DEADLINE_EXCEEDED);
    ctx_release(t);
}

struct poller {
    int fd;
    _Atomic long started;
    int rc;
    short revents;
};

static void *poll_thread(void *arg)
{
    struct poller *pl = arg;
    struct pollfd pf = {.fd = pl->fd, .events = POLLIN};
    atomic_store(&pl->started, 1);
    pl->rc = poll(&pf, 1, 10000);
    pl->revents = pf.revents;
    return NULL;
}

static void test_done_fd_poll_wakes(void **state)
{
    const int n = T_SCALE(200, 50);
    for (int i = 0; i < n; i++) {
        ctx_t *p = ctx_with_cancel(ctx_background());
        ctx_t *c = ctx_with_cancel(p);
        struct poller pl = {.fd = ctx_done_fd(c)};
        assert_true(pl.fd >= 0);
        pthread_t t = t_thread(poll_thread, &pl, 0);
        assert_true(t_wait_atomic_ge(&pl.started, 1, T_LONG));
        ctx_cancel(p);
        t_join(t);
        assert_int_equal(pl.rc, 1);
        assert_true(pl.revents & POLLIN);
        ctx_release(c);
        ctx_release(p);
    }
}

static void test_done_fd_epoll_edge_once(void **state)
{
    ctx_t *p = ctx_with_cancel(ctx_background());
    ctx_t *c = ctx_with_cancel(p);
    int fd = ctx_done_fd(c);
    int ep = epoll_create1(EPOLL_CLOEXEC), lt = epoll_create1(EPOLL_CLOEXEC);
    assert_true(ep >= 0 && lt >= 0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET};
    assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
    ev.events = EPOLLIN;
    assert_int_equal(epoll_ctl(lt, EPOLL_CTL_ADD, fd, &ev), 0);
    struct epoll_event out[4];
    assert_int_equal(epoll_wait(ep, out, 4, 0), 0);
    ctx_cancel(p);
    assert_int_equal(epoll_wait(ep, out, 4, 10000), 1);
    assert_true(out[0].events & EPOLLIN);
    /* exactly one edge: cancels after the first write nothing more */
    ctx_cancel(c);
    ctx_cancel_cause(p, 9);
    assert_int_equal(ctx_done_fd(c), fd);
    assert_int_equal(epoll_wait(ep, out, 4, 0), 0);
    assert_int_equal(epoll_wait(ep, out, 4, 0), 0);
    /* level-triggered: reported on every call (never drained) */
    for (int i = 0; i < 3; i++)
        assert_int_equal(epoll_wait(lt, out, 4, 0), 1);
    assert_int_equal(epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL), 0);
    assert_int_equal(epoll_ctl(lt, EPOLL_CTL_DEL, fd, NULL), 0);
    close(ep);
    close(lt);
    ctx_release(c);
    ctx_release(p);
}

static void test_fanout_uses_no_fds(void **state)
{
    /* C12: 1e5 children and their cancel use no fd unless one is asked. */
    const long n = T_SCALE(100000, 20000);
    int fds0 = t_count_fds();
    ctx_t **k = malloc(sizeof *k * (size_t)n);
    assert_non_null(k);
    ctx_t *p = ctx_with_cancel(ctx_background());
    for (long i = 0; i < n; i++) {
        k[i] = (i % 10 == 0) ? ctx_with_timeout(p, 3600 * CTX_SECOND)
                             : ctx_with_cancel(p);
        assert_non_null(k[i]);
    }
    assert_int_equal(t_count_fds(), fds0);
    assert_true(ctx_done_fd(k[7]) >= 0);
    assert_int_equal(t_count_fds(), fds0 + 1);
    ctx_cancel(p);
    assert_int_equal(t_count_fds(), fds0 + 1);
    for (long i = 0; i < n; i++)
        ctx_release(k[i]);
    assert_int_equal(t_count_fds(), fds0);
    ctx_release(p);
    free(k);
}

static void test_done_fd_emfile(void **state)
{
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    int fds0 = t_count_fds();
    if (fds0 + 8 > 256)
        skip();
    lim = old;
    lim.rlim_cur = (rlim_t)fds0 + 8;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
    int dups[300], nd = 0;
    while (nd < 300) {
        int d = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (d < 0)
            break;
        dups[nd++] = d;
    }
    ctx_t *c = ctx_with_cancel(ctx_background());
    errno = 0;
    assert_int_equal(ctx_done_fd(c), -1);
    assert_int_equal(errno, EMFILE);
    for (int i = 0; i < nd; i++)
        close(dups[i]);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    int fd = ctx_done_fd(c); /* a later call succeeds */
    assert_true(fd >= 0);
    assert_int_equal(ctx_done_fd(c), fd);
    ctx_cancel(c);
    assert_true(fd_readable(fd));
    ctx_release(c);
}

static int teardown_quiesce(void **state)
{
    return t_quiesce(T_LONG) ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_wait_timeout_and_check, teardown_quiesce),
        cmocka_unit_test_teardown(test_wait_never_done_sleeps, teardown_quiesce),
        cmocka_unit_test_teardown(test_wait_deadline, teardown_quiesce),
        cmocka_unit_test_teardown(test_wait_64_waiters_one_cancel, teardown_quiesce),
        cmocka_unit_test_teardown(test_wait_not_a_cancellation_point, teardown_quiesce),
        cmocka_unit_test_teardown(test_wait_expires_inherited_deadline, teardown_quiesce),
        cmocka_unit_test_teardown(test_done_fd_never_done_is_minus_one, teardown_quiesce),
        cmocka_unit_test_teardown(test_done_fd_basics, teardown_quiesce),
        cmocka_unit_test_teardown(test_done_fd_born_done_and_expiry, teardown_quiesce),
        cmocka_unit_test_teardown(test_done_fd_poll_wakes, teardown_quiesce),
        cmocka_unit_test_teardown(test_done_fd_epoll_edge_once, teardown_quiesce),
        cmocka_unit_test_teardown(test_fanout_uses_no_fds, teardown_quiesce),
        cmocka_unit_test_teardown(test_done_fd_emfile, teardown_quiesce),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_quiesce);
}
