/*
 * test_ctx_after.c -- AfterFunc: callbacks run once, on a library thread,
 * after the context is done; stop; the growing pool.
 *
 * Spec items covered: 17, 31 (registration in the children set), 98-100,
 * 101 (except "a second stop returns false": in C the one stop frees the
 * handle), 102-108, C8 (callbacks run with no lock held and may release
 * their own context and cancel its parent), C9 (100 callbacks that block
 * until all 100 have started: the pool grows), C26 (re-entrancy).
 *
 * "fn never runs" is proved with t_quiesce(): ctx_shutdown() returns 0
 * only when no callback is pending or running, so a callback that was
 * going to run has run by then.
 */
#include "ctx_test_util.h"

#include <poll.h>

struct rec {
    _Atomic long runs;
    _Atomic int on_main; /* ran on the test thread: forbidden */
    pthread_t main_thread;
    struct t_latch ran;
};

static void rec_init(struct rec *r)
{
    atomic_store(&r->runs, 0);
    atomic_store(&r->on_main, 0);
    r->main_thread = pthread_self();
    t_latch_init(&r->ran);
}

static void rec_fn(void *arg)
{
    struct rec *r = arg;
    if (pthread_equal(pthread_self(), r->main_thread))
        atomic_store(&r->on_main, 1);
    atomic_fetch_add(&r->runs, 1);
    t_latch_add(&r->ran, 1);
}

/* ---- 98-101, 17, 31 ---------------------------------------------------- */

static void test_after_called_after_cancel(void **state)
{
    struct rec r;
    rec_init(&r);
    ctx_t *c = ctx_with_cancel(ctx_background());
    ctx_after_t *a = ctx_after_func(c, rec_fn, &r);
    assert_non_null(a);
    assert_int_equal(ctx_debug_children(c), 1); /* 17 */
    /* 98: not while live (nothing should happen in this interval) */
    assert_int_equal(ctx_wait(c, 5 * CTX_MS), 0);
    assert_int_equal(atomic_load(&r.runs), 0);
    ctx_cancel(c);
    assert_true(t_latch_wait(&r.ran, 1, T_LONG));
    assert_false(ctx_after_stop(a));
    assert_true(t_quiesce(T_LONG));
    assert_int_equal(atomic_load(&r.runs), 1);
    assert_int_equal(atomic_load(&r.on_main), 0);
    assert_int_equal(ctx_debug_children(c), 0);
    ctx_release(c);
    t_latch_destroy(&r.ran);
}

static void test_after_called_after_timeout(void **state)
{
    struct rec r;
    rec_init(&r);
    ctx_t *c = ctx_with_timeout(ctx_background(), 2 * CTX_MS);
    ctx_after_t *a = ctx_after_func(c, rec_fn, &r);
    ctx_release(c); /* the handle holds its own reference */
    assert_true(t_latch_wait(&r.ran, 1, T_LONG)); /* 99 */
    assert_false(ctx_after_stop(a));
    assert_true(t_quiesce(T_LONG));
    assert_int_equal(atomic_load(&r.runs), 1);
    t_latch_destroy(&r.ran);
}

static void test_after_called_immediately(void **state)
{
    /* 100: already done: runs at once, on a library thread. */
    struct rec r;
    rec_init(&r);
    ctx_t *c = ctx_with_cancel(ctx_background());
    ctx_cancel(c);
    ctx_after_t *a = ctx_after_func(c, rec_fn, &r);
    assert_non_null(a);
    assert_int_equal(ctx_debug_children(c), 0);
    assert_true(t_latch_wait(&r.ran, 1, T_LONG));
    assert_int_equal(atomic_load(&r.on_main), 0);
    assert_false(ctx_after_stop(a));
    ctx_release(c);
    assert_true(t_quiesce(T_LONG));
    assert_int_equal(atomic_load(&r.runs), 1);
    t_latch_destroy(&r.ran);
}

static void test_after_not_called_after_stop(void **state)
{
    /* 101, 31 */
    struct rec r;
    rec_init(&r);
    ctx_t *c = ctx_with_cancel(ctx_background());
    ctx_after_t *a = ctx_after_func(c, rec_fn, &r);
    assert_int_equal(ctx_debug_children(c), 1);
    assert_true(ctx_after_stop(a));
    assert_int_equal(ctx_debug_children(c), 0);
    ctx_cancel(c);
    assert_true(t_quiesce(T_LONG));
    assert_int_equal(atomic_load(&r.runs), 0);
    ctx_release(c);
    t_latch_destroy(&r.ran);
}

static void test_after_never_done_context(void **state)
{
    /* fn never runs for a context that can never be done */
    struct rec r;
    rec_init(&r);
    ctx_t *p = ctx_with_cancel(ctx_background());
    ctx_t *w = ctx_without_cancel(p);
    ctx_after_t *a = ctx_after_func(ctx_background(), rec_fn, &r);
    ctx_after_t *b = ctx_after_func(w, rec_fn, &r);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(ctx_debug_children(p), 0);
    ctx_cancel(p);
    assert_true(t_quiesce(T_LONG));
    assert_int_equal(atomic_load(&r.runs), 0);
    assert_true(ctx_after_stop(a));
    assert_true(ctx_after_stop(b));
    ctx_release(w);
    ctx_release(p);
    t_latch_destroy(&r.ran);
}

static void test_after_on_value_node(void **state)
{
    static int key;
    struct rec r;
    rec_init(&r);
    ctx_t *p = ctx_with_cancel(ctx_background());
    ctx_t *v = ctx_with_value(p, &key, NULL, NULL);
    ctx_after_t *a = ctx_after_func(v, rec_fn, &r);
    assert_int_equal(ctx_debug_children(p), 1); /* registers in p */
    ctx_release(v);
    ctx_cancel(p);
    assert_true(t_latch_wait(&r.ran, 1, T_LONG));
    assert_false(ctx_after_stop(a));
    ctx_release(p);
    assert_true(t_quiesce(T_LONG));
    t_latch_destroy(&r.ran);
}

/* ---- 102, 103: asynchronous; stop does not wait -------------------------- */

struct blocker {
    struct t_latch started, release, finished;
    _Atomic int timed_out;
};

static void blocker_init(struct blocker *b)
{
    t_latch_init(&b->started);
    t_latch_init(&b->release);
    t_latch_init(&b->finished);
    atomic_store(&b->timed_out, 0);
}

static void blocker_destroy(struct blocker *b)
{
    t_latch_destroy(&b->started);
    t_latch_destroy(&b->release);
    t_latch_destroy(&b->finished);
}

static void blocking_fn(void *arg)
{
    struct blocker *b = arg;
    t_latch_add(&b->started, 1);
    if (!t_latch_wait(&b->release, 1, T_LONG))
        atomic_store(&b->timed_out, 1);
    t_latch_add(&b->finished, 1);
}

static void test_after_called_asynchronously(void **state)
{
    struct blocker b;
    blocker_init(&b);
    ctx_t *c = ctx_with_cancel(ctx_background());
    ctx_after_t *a = ctx_after_func(c, blocking_fn, &b);
    ctx_cancel(c); /* 102: returns although fn blocks until we release it */
    assert_int_equal(atomic_load(&b.timed_out), 0);
    assert_int_equal(t_latch_get(&b.finished), 0);
    assert_true(t_latch_wait(&b.started, 1, T_LONG));
    /* 103: stop returns false at once while fn is still running */
    assert_false(ctx_after_stop(a));
    assert_int_equal(t_latch_get(&b.finished), 0);
    t_latch_add(&b.release, 1);
    assert_true(t_latch_wait(&b.finished, 1, T_LONG));
    assert_int_equal(atomic_load(&b.timed_out), 0);
    ctx_release(c);
    assert_true(t_quiesce(T_LONG));
    blocker_destroy(&b);
}

/* ---- 104: several AfterFuncs are independent -------------------------- */

static void test_after_several_independent(void **state)
{
    struct rec r[3];
    ctx_after_t *a[3];
    ctx_t *c = ctx_with_cancel(ctx_background());
    for (int i = 0; i < 3; i++) {
        rec_init(&r[i]);
        a[i] = ctx_after_func(c, rec_fn, &r[i]);
    }
    assert_int_equal(ctx_debug_children(c), 3);
    assert_true(ctx_after_stop(a[1]));
    assert_int_equal(ctx_debug_children(c), 2);
    ctx_cancel(c);
    assert_true(t_latch_wait(&r[0].ran, 1, T_LONG));
    assert_true(t_latch_wait(&r[2].ran, 1, T_LONG));
    assert_false(ctx_after_stop(a[0]));
    assert_false(ctx_after_stop(a[2]));
    assert_true(t_quiesce(T_LONG));
    assert_int_equal(atomic_load(&r[0].runs), 1);
    assert_int_equal(atomic_load(&r[1].runs), 0);
    assert_int_equal(atomic_load(&r[2].runs), 1);
    for (int i = 0; i < 3; i++)
        t_latch_destroy(&r[i].ran);
    ctx_release(c);
}

/* ---- 105: stop racing cancel: exactly one outcome ---------------------- */

struct stop_race {
    ctx_t *c;
    ctx_after_t *a;
    _Atomic int go;
    bool stopped;
};

static _Atomic long race_runs[4000];

static void race_fn(void *arg)
{
    atomic_fetch_add(&race_runs[(uintptr_t)arg], 1);
}

static void *stop_thread(void *arg)
{
    struct stop_race *s = arg;
    int64_t end = t_mono() + T_LONG;
    while (!atomic_load(&s->go) && t_mono() < end)
        ;
    s->stopped = ctx_after_stop(s->a);
    return NULL;
}

static void test_after_stop_races_cancel(void **state)
{
    const int n = T_SCALE(2000, 300);
    long not_stopped = 0;
    for (int i = 0; i < n; i++)
        atomic_store(&race_runs[i], 0);
    for (int i = 0; i < n; i++) {
        struct stop_race s = {.c = ctx_with_cancel(ctx_background())};
        s.a = ctx_after_func(s.c, race_fn, (void *)(uintptr_t)i);
        assert_non_null(s.a);
        pthread_t t = t_thread(stop_thread, &s, 0);
        atomic_store(&s.go, 1);
        ctx_cancel(s.c);
        t_join(t);
        if (!s.stopped)
            not_stopped++;
        ctx_release(s.c);
    }
    assert_true(t_quiesce(T_LONG));
    long runs = 0;
    for (int i = 0; i < n; i++) {
        long r = atomic_load(&race_runs[i]);
        assert_true(r == 0 || r == 1); /* at most once */
        runs += r;
    }
    assert_int_equal(runs, not_stopped); /* started <=> stop said false */
}

/* ---- 106: AfterFunc wakes condition-variable waiters -------------------- */

struct cond_wait {
    pthread_mutex_t *m;
    pthread_cond_t *cv;
    int err;
};

static void broadcast_fn(void *arg)
{
    struct cond_wait *w = arg;
    /* take the lock so the waiter cannot miss the broadcast */
    pthread_mutex_lock(w->m);
    pthread_cond_broadcast(w->cv);
    pthread_mutex_unlock(w->m);
}

static void *cond_waiter(void *arg)
{
    struct cond_wait *w = arg;
    ctx_t *c = ctx_with_timeout(ctx_background(), CTX_MS);
    ctx_after_t *a = ctx_after_func(c, broadcast_fn, w);
    int64_t end = t_mono() + T_LONG;
    struct timespec ts = {(time_t)(end / CTX_SECOND),
                          (long)(end % CTX_SECOND)};
    pthread_mutex_lock(w->m);
    while (ctx_err(c) == 0) {
        if (pthread_cond_timedwait(w->cv, w->m, &ts) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(w->m);
    w->err = ctx_err(c);
    (void)ctx_after_stop(a); /* the test quiesces before cv goes away */
    ctx_release(c);
    return NULL;
}

static void test_after_cond_example(void **state)
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_condattr_t ca;
    pthread_cond_t cv;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cv, &ca);
    struct cond_wait w[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct cond_wait){&m, &cv, 0};
        t[i] = t_thread(cond_waiter, &w[i], 0);
    }
    for (int i = 0; i < 4; i++) {
        t_join(t[i]);
        assert_string_equal(ctx_strerror(w[i].err),
                            "context deadline exceeded");
    }
    /* a broadcast_fn still running must finish before cv goes away */
    assert_true(t_quiesce(T_LONG));
    pthread_cond_destroy(&cv);
    pthread_condattr_destroy(&ca);
}

/* ---- 107: AfterFunc interrupts a blocking read ------------------------ */

static void write_byte_fn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char b = 1;
    while (write(fd, &b, 1) < 0 && errno == EINTR)
        ;
}

static void test_after_interrupts_blocking_read(void **state)
{
    int data[2], wake[2];
    assert_int_equal(pipe(data), 0);
    assert_int_equal(pipe(wake), 0);
    ctx_t *c = ctx_with_timeout(ctx_background(), CTX_MS);
    ctx_after_t *a = ctx_after_func(c, write_byte_fn,
                                    (void *)(intptr_t)wake[1]);
    /* "conn.Read": blocks on the data pipe, which never gets data */
    struct pollfd pf[2] = {{.fd = data[0], .events = POLLIN},
                           {.fd = wake[0], .events = POLLIN}};
    int rc = poll(pf, 2, 10000);
    assert_int_equal(rc, 1);
    assert_true(pf[1].revents & POLLIN);
    assert_false(pf[0].revents & POLLIN);
    assert_string_equal(ctx_strerror(ctx_err(c)), "context deadline exceeded");
    assert_false(ctx_after_stop(a));
    assert_true(t_quiesce(T_LONG)); /* fn done before the pipe closes */
    ctx_release(c);
    for (int i = 0; i < 2; i++) {
        close(data[i]);
        close(wake[i]);
    }
}

/* ---- 108: merging two cancellation sources ------------------------------ */

struct merge {
    ctx_t *merged, *src;
};

static void merge_fn(void *arg)
{
    struct merge *m = arg;
    ctx_cancel_cause(m->merged, ctx_cause(m->src));
}

static void test_after_merge_example(void **state)
{
    ctx_t *ctx1 = ctx_with_cancel(ctx_background());
    ctx_t *ctx2 = ctx_with_cancel(ctx_background());
    struct merge m = {ctx_with_cancel(ctx1), ctx2};
    ctx_after_t *a = ctx_after_func(ctx2, merge_fn, &m);
    ctx_cancel_cause(ctx2, 1080); /* "ctx2 canceled" */
    assert_int_equal(ctx_wait(m.merged, T_LONG), CTX_CANCELED);
    assert_int_equal(ctx_cause(m.merged), 1080);
    assert_int_equal(ctx_err(ctx1), 0);
    assert_false(ctx_after_stop(a));
    assert_true(t_quiesce(T_LONG));
    ctx_release(m.merged);
    ctx_release(ctx2);
    ctx_release(ctx1);
}

/* ---- C8, C26: a callback that releases its context and cancels its parent */

struct self_release {
    ctx_t *parent, *own;
    _Atomic int ok;
    struct t_latch done;
};

static void self_release_fn(void *arg)
{
    struct self_release *s = arg;
    static int key;
    /* create a child of the very context that fired, then drop it all */
    ctx_t *kid = ctx_with_value(s->own, &key, s, NULL);
    bool ok = kid && ctx_err(kid) == CTX_CANCELED && ctx_value(kid, &key) == s;
    ctx_release(kid);
    ctx_release(s->own); /* the test's reference, handed over */
    s->own = NULL;
    ctx_cancel_cause(s->parent, 808);
    ok = ok && ctx_err(s->parent) == CTX_CANCELED;
    atomic_store(&s->ok, ok ? 1 : -1);
    t_latch_add(&s->done, 1);
}

static void test_after_releases_own_and_cancels_parent(void **state)
{
    const int n = T_SCALE(200, 50);
    for (int i = 0; i < n; i++) {
        struct self_release s = {.ok = 0};
        t_latch_init(&s.done);
        s.parent = ctx_with_cancel(ctx_background());
        s.own = ctx_with_cancel(s.parent);
        ctx_t *sib = ctx_with_cancel(s.parent);
        ctx_after_t *a = ctx_after_func(s.own, self_release_fn, &s);
        assert_non_null(a);
        ctx_cancel(s.own);
        assert_true(t_latch_wait(&s.done, 1, T_LONG));
        assert_int_equal(atomic_load(&s.ok), 1);
        assert_int_equal(ctx_err(sib), CTX_CANCELED);
        assert_int_equal(ctx_cause(sib), 808);
        assert_false(ctx_after_stop(a)); /* frees the last ref on own */
        assert_int_equal(ctx_debug_children(s.parent), 0);
        ctx_release(sib);
        ctx_release(s.parent);
        t_latch_destroy(&s.done);
    }
    assert_true(t_quiesce(T_LONG));
}

/* ---- C9: 100 callbacks that block until all 100 have started ---------- */

enum { HUNDRED = 100 };

struct barrier100 {
    struct t_latch started, finished;
    _Atomic int timed_out;
};

static void barrier_fn(void *arg)
{
    struct barrier100 *b = arg;
    t_latch_add(&b->started, 1);
    if (!t_latch_wait(&b->started, HUNDRED, T_LONG))
        atomic_store(&b->timed_out, 1);
    t_latch_add(&b->finished, 1);
}

static void test_after_hundred_blocking(void **state)
{
    struct barrier100 b = {.timed_out = 0};
    t_latch_init(&b.started);
    t_latch_init(&b.finished);
    ctx_t *c = ctx_with_cancel(ctx_background());
    ctx_after_t *a[HUNDRED];
    for (int i = 0; i < HUNDRED; i++) {
        a[i] = ctx_after_func(c, barrier_fn, &b);
        assert_non_null(a[i]);
    }
    assert_int_equal(ctx_debug_children(c), HUNDRED);
    ctx_cancel(c);
    assert_true(t_latch_wait(&b.finished, HUNDRED, 2 * T_LONG));
    assert_int_equal(atomic_load(&b.timed_out), 0);
    assert_true(t_latch_get(&b.started) == HUNDRED);
    for (int i = 0; i < HUNDRED; i++)
        assert_false(ctx_after_stop(a[i]));
    ctx_release(c);
    assert_true(t_quiesce(2 * T_LONG));
    assert_int_equal(ctx_debug_threads(), 0);
    t_latch_destroy(&b.started);
    t_latch_destroy(&b.finished);
}

static int teardown_quiesce(void **state)
{
    return t_quiesce(T_LONG) ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_after_called_after_cancel, teardown_quiesce),
        cmocka_unit_test_teardown(test_after_called_after_timeout, teardown_quiesce),
        cmocka_unit_test_teardown(test_after_called_immediately, teardown_quiesce),
        cmocka_unit_test_teardown(test_after_not_called_after_stop, teardown_quiesce),
        cmocka_unit_test_teardown(test_after_never_done_context, teardown_quiesce),
        cmocka_unit_test_teardown(test_after_on_value_node, teardown_quiesce),
        cmocka_unit_test_teardown(test_after_called_asynchronously, teardown_quiesce),
        cmocka_unit_test_teardown(test_after_several_independent, teardown_quiesce),
        cmocka_unit_test_teardown(test_after_stop_races_cancel, teardown_quiesce),
        cmocka_unit_test_teardown(test_after_cond_example, teardown_quiesce),
        cmocka_unit_test_teardown(test_after_interrupts_blocking_read, teardown_quiesce),
        cmocka_unit_test_teardown(test_after_merge_example, teardown_quiesce),
        cmocka_unit_test_teardown(test_after_releases_own_and_cancels_parent, teardown_quiesce),
        cmocka_unit_test_teardown(test_after_hundred_blocking, teardown_quiesce),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_quiesce);
}
