/*
 * test_ctx_lifecycle.c -- library threads: started on demand, joined by
 * ctx_shutdown(), refused (EBUSY) while work is pending.
 *
 * Spec items covered: C25 (after releasing everything, ctx_shutdown()
 * joins the timer and AfterFunc threads: ctx_debug_threads() == 0 and
 * /proc/self/task back to the test's own count; EBUSY while a timer is
 * armed or a callback runs; threads restart on demand), and the part of
 * C10 that says the timer thread starts lazily, on the first deadline.
 *
 * The baseline task count is 1 (the test thread); ThreadSanitizer keeps a
 * background thread of its own, so under TSan the baseline is measured.
 */
#include "ctx_test_util.h"

static int baseline_tasks;

static void *nothing(void *arg) { return arg; }

static bool tasks_at_baseline(void *arg)
{
    (void)arg;
    return t_count_tasks() == baseline_tasks;
}

static int setup_baseline(void **state)
{
    /* a first pthread_create lets a sanitizer start its helper thread */
    t_join(t_thread(nothing, NULL, 0));
    if (!t_quiesce(T_LONG))
        return -1;
    int64_t end = t_mono() + T_LONG;
    int n = t_count_tasks(), prev = -1;
    while (n != prev && t_mono() < end) { /* exited threads may linger */
        prev = n;
        sched_yield();
        n = t_count_tasks();
    }
#ifdef CTX_TSAN_BUILD
    baseline_tasks = n;
#else
    baseline_tasks = 1;
#endif
    return 0;
}

static void test_no_thread_without_deadline(void **state)
{
    assert_int_equal(ctx_shutdown(), 0);
    assert_int_equal(ctx_debug_threads(), 0);
    ctx_t *c = ctx_with_cancel(ctx_background());
    ctx_t *v = ctx_with_value(c, &baseline_tasks, NULL, NULL);
    ctx_cancel(c);
    assert_int_equal(ctx_wait(v, 0), CTX_CANCELED);
    assert_int_equal(ctx_debug_threads(), 0); /* no thread per context */
    ctx_release(v);
    ctx_release(c);
    assert_true(t_spin_until(tasks_at_baseline, NULL, T_LONG));
}

static void test_shutdown_joins_timer_thread(void **state)
{
    ctx_t *t = ctx_with_timeout(ctx_background(), 3600 * CTX_SECOND);
    assert_true(ctx_debug_threads() >= 1); /* started by the first deadline */
    assert_int_equal(ctx_debug_timers(), 1);
    assert_int_equal(ctx_shutdown(), EBUSY); /* a timer is armed */
    assert_true(ctx_debug_threads() >= 1);   /* nothing stopped */
    assert_int_equal(ctx_err(t), 0);
    ctx_release(t);
    assert_int_equal(ctx_debug_timers(), 0);
    assert_int_equal(ctx_shutdown(), 0);
    assert_int_equal(ctx_debug_threads(), 0);
    assert_true(t_spin_until(tasks_at_baseline, NULL, T_LONG));
    assert_int_equal(ctx_shutdown(), 0); /* idempotent */
}

static void test_threads_restart_on_demand(void **state)
{
    for (int round = 0; round < 3; round++) {
        ctx_t *t = ctx_with_timeout(ctx_background(), CTX_MS);
        assert_int_equal(ctx_wait(t, T_LONG), CTX_DEADLINE_EXCEEDED);
        ctx_release(t);
        assert_true(t_quiesce(T_LONG));
        assert_int_equal(ctx_debug_threads(), 0);
        assert_true(t_spin_until(tasks_at_baseline, NULL, T_LONG));
    }
}

struct blocked {
    struct t_latch started, release;
};

static void blocked_fn(void *arg)
{
    struct blocked *b = arg;
    t_latch_add(&b->started, 1);
    (void)t_latch_wait(&b->release, 1, T_LONG);
}

struct shutdown_call {
    _Atomic int rc;
    _Atomic long returned;
};

static void *shutdown_thread(void *arg)
{
    struct shutdown_call *s = arg;
    atomic_store(&s->rc, ctx_shutdown());
    atomic_store(&s->returned, 1);
    return NULL;
}

static void test_shutdown_busy_while_callback_runs(void **state)
{
    struct blocked b;
    t_latch_init(&b.started);
    t_latch_init(&b.release);
    ctx_t *c = ctx_with_cancel(ctx_background());
    ctx_after_t *a = ctx_after_func(c, blocked_fn, &b);
    ctx_cancel(c);
    assert_true(t_latch_wait(&b.started, 1, T_LONG));
    assert_true(ctx_debug_threads() >= 1);
    /* shutdown must not wait for the callback: run it on a helper thread
     * so that a shutdown that blocks fails the test instead of hanging */
    struct shutdown_call s = {.rc = -1};
    pthread_t t = t_thread(shutdown_thread, &s, 0);
    bool returned = t_wait_atomic_ge(&s.returned, 1, 5 * CTX_SECOND);
    t_latch_add(&b.release, 1);
    t_join(t);
    assert_true(returned);
    assert_int_equal(atomic_load(&s.rc), EBUSY);
    assert_false(ctx_after_stop(a));
    ctx_release(c);
    assert_true(t_quiesce(T_LONG));
    assert_int_equal(ctx_debug_threads(), 0);
    assert_true(t_spin_until(tasks_at_baseline, NULL, T_LONG));
    t_latch_destroy(&b.started);
    t_latch_destroy(&b.release);
}

static void rec_fn(void *arg) { atomic_fetch_add((_Atomic long *)arg, 1); }

static void test_everything_released_no_threads(void **state)
{
    /* A mixed workload, then release everything: no thread survives. */
    _Atomic long runs = 0;
    ctx_t *p = ctx_with_cancel(ctx_background());
    ctx_t *kids[64];
    ctx_after_t *as[16];
    for (int i = 0; i < 64; i++)
        kids[i] = (i % 2) ? ctx_with_timeout(p, (i % 4 == 1) ? CTX_MS
                                                             : 3600 * CTX_SECOND)
                          : ctx_with_cancel(p);
    for (int i = 0; i < 16; i++)
        as[i] = ctx_after_func(kids[i * 4], rec_fn, &runs);
    assert_int_equal(ctx_wait(kids[1], T_LONG), CTX_DEADLINE_EXCEEDED);
    ctx_cancel(p);
    assert_true(t_wait_atomic_ge(&runs, 16, T_LONG));
    for (int i = 0; i < 16; i++)
        assert_false(ctx_after_stop(as[i]));
    for (int i = 0; i < 64; i++)
        ctx_release(kids[i]);
    ctx_release(p);
    assert_true(t_quiesce(T_LONG));
    assert_int_equal(ctx_debug_threads(), 0);
    assert_int_equal(ctx_debug_timers(), 0);
    assert_true(t_spin_until(tasks_at_baseline, NULL, T_LONG));
    assert_int_equal(atomic_load(&runs), 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_thread_without_deadline),
        cmocka_unit_test(test_shutdown_joins_timer_thread),
        cmocka_unit_test(test_threads_restart_on_demand),
        cmocka_unit_test(test_shutdown_busy_while_callback_runs),
        cmocka_unit_test(test_everything_released_no_threads),
    };
    return cmocka_run_group_tests(tests, setup_baseline, NULL);
}
