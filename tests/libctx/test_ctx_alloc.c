/*
 * test_ctx_alloc.c -- out-of-memory paths, walked with the library's
 * fault-injection hook ctx__test_fail_alloc(n) (the n-th allocation from
 * now fails).
 *
 * Spec items covered: C18 (for each constructor, fail allocation 1, 2, 3,
 * ... until it succeeds: NULL + ENOMEM, parent's children count and the
 * timer count unchanged, the value's destroy not called, nothing leaked
 * under ASan), C27 and the libctx form of item 111 (allocation counts:
 * one per WithCancel/WithValue, none for Err/Value/Wait/cancel), and
 * cancellation that never fails even when allocations would.
 */
#include "ctx_test_util.h"

#include "ctx_internal.h" /* ctx__test_fail_alloc() */

static int key_a;
static _Atomic int destroyed;

static void count_destroy(void *v)
{
    (void)v;
    atomic_fetch_add(&destroyed, 1);
}

enum { MAX_SITES = 64 };

typedef ctx_t *(*ctor_fn)(ctx_t *parent);

static ctx_t *mk_cancel(ctx_t *p) { return ctx_with_cancel(p); }
static ctx_t *mk_deadline(ctx_t *p)
{
    return ctx_with_deadline(p, ctx_now() + 3600 * CTX_SECOND);
}
static ctx_t *mk_timeout(ctx_t *p)
{
    return ctx_with_timeout(p, 3600 * CTX_SECOND);
}
static ctx_t *mk_deadline_cause(ctx_t *p)
{
    return ctx_with_deadline_cause(p, ctx_now() + 3600 * CTX_SECOND, 5);
}
static ctx_t *mk_timeout_cause(ctx_t *p)
{
    return ctx_with_timeout_cause(p, 3600 * CTX_SECOND, 6);
}
static ctx_t *mk_value(ctx_t *p)
{
    return ctx_with_value(p, &key_a, &key_a, count_destroy);
}
static ctx_t *mk_without(ctx_t *p) { return ctx_without_cancel(p); }

/* Fails allocation 1, 2, ... of `make(parent)` until it succeeds; every
 * failure must leave the parent and the timer service as they were. */
static void walk_ctor(ctor_fn make, ctx_t *parent, bool born_done)
{
    size_t kids = ctx_debug_children(parent);
    size_t timers = ctx_debug_timers();
    int failures = 0;
    for (long n = 1; n <= MAX_SITES; n++) {
        atomic_store(&destroyed, 0);
        ctx__test_fail_alloc(n);
        errno = 0;
        ctx_t *c = make(parent);
        long left = ctx__test_fail_alloc(0);
        if (c == NULL) {
            assert_int_equal(errno, ENOMEM);
            assert_int_equal(left, 0); /* the injected failure, no other */
            assert_int_equal(ctx_debug_children(parent), kids);
            assert_int_equal(ctx_debug_timers(), timers);
            assert_int_equal(atomic_load(&destroyed), 0);
            failures++;
            continue;
        }
        /* success: the n-th allocation was never reached */
        assert_true(left > 0);
        assert_int_equal(ctx_err(c), born_done ? CTX_CANCELED : 0);
        ctx_t *k = ctx_with_cancel(c); /* the new node works */
        assert_non_null(k);
        ctx_cancel(k);
        ctx_release(k);
        ctx_release(c);
        assert_int_equal(ctx_debug_children(parent), kids);
        assert_int_equal(ctx_debug_timers(), timers);
        assert_true(failures >= 1); /* every constructor allocates */
        return;
    }
    fail_msg("constructor still failing after %d injected failures",
             MAX_SITES);
}

static const ctor_fn ctors[] = {mk_cancel, mk_deadline, mk_timeout,
                                mk_deadline_cause, mk_timeout_cause,
                                mk_value, mk_without};

static void test_ctors_fail_each_allocation(void **state)
{
    ctx_t *parents[3];
    parents[0] = ctx_background();
    parents[1] = ctx_with_cancel(ctx_background());
    parents[2] = ctx_with_value(parents[1], &key_a, NULL, NULL);
    for (size_t i = 0; i < sizeof ctors / sizeof ctors[0]; i++)
        for (int p = 0; p < 3; p++)
            walk_ctor(ctors[i], parents[p], false);
    ctx_release(parents[2]);
    ctx_release(parents[1]);
}

static void test_ctors_fail_on_done_parent(void **state)
{
    ctx_t *p = ctx_with_cancel(ctx_background());
    ctx_cancel(p);
    for (size_t i = 0; i < sizeof ctors / sizeof ctors[0]; i++) {
        if (ctors[i] == mk_without)
            continue; /* never done */
        walk_ctor(ctors[i], p, true);
    }
    ctx_release(p);
}

struct after_rec {
    _Atomic long runs;
};

static void after_count(void *arg)
{
    atomic_fetch_add(&((struct after_rec *)arg)->runs, 1);
}

static void test_after_func_fail_each_allocation(void **state)
{
    for (int done = 0; done < 2; done++) {
        ctx_t *p = ctx_with_cancel(ctx_background());
        if (done)
            ctx_cancel(p);
        size_t kids = ctx_debug_children(p);
        struct after_rec r = {0};
        ctx_after_t *a = NULL;
        int failures = 0;
        for (long n = 1; n <= MAX_SITES && !a; n++) {
            ctx__test_fail_alloc(n);
            errno = 0;
            a = ctx_after_func(p, after_count, &r);
            long left = ctx__test_fail_alloc(0);
            if (!a) {
                assert_int_equal(errno, ENOMEM);
                assert_int_equal(left, 0);
                assert_int_equal(ctx_debug_children(p), kids);
                failures++;
            }
        }
        assert_non_null(a);
        assert_true(failures >= 1);
        ctx_cancel(p);
        assert_true(t_quiesce(T_LONG));
        assert_int_equal(atomic_load(&r.runs), 1); /* failures never ran */
        assert_false(ctx_after_stop(a));
        ctx_release(p);
    }
}

static void test_done_fd_enomem(void **state)
{
    ctx_t *c = ctx_with_cancel(ctx_background());
    int fd = -1;
    for (long n = 1; n <= MAX_SITES && fd < 0; n++) {
        ctx__test_fail_alloc(n);
        errno = 0;
        fd = ctx_done_fd(c);
        long left = ctx__test_fail_alloc(0);
        if (fd < 0) {
            assert_int_equal(errno, ENOMEM);
            assert_int_equal(left, 0);
        }
    }
    assert_true(fd >= 0);
    assert_int_equal(ctx_done_fd(c), fd);
    ctx_cancel(c);
    ctx_release(c);
}

/* ---- cancel and expiry never fail ----------------------------------- */

static void test_cancel_with_failing_allocations(void **state)
{
    for (long n = 1; n <= 8; n++) {
        struct after_rec r = {0};
        ctx_t *p = ctx_with_cancel(ctx_background());
        ctx_t *v = ctx_with_value(p, &key_a, NULL, NULL);
        ctx_t *kids[10];
        for (int i = 0; i < 10; i++)
            kids[i] = (i & 1) ? ctx_with_timeout(v, 3600 * CTX_SECOND)
                              : ctx_with_cancel(i ? kids[i - 1] : v);
        int fd = ctx_done_fd(kids[4]);
        assert_true(fd >= 0);
        ctx_after_t *a = ctx_after_func(kids[8], after_count, &r);
        assert_non_null(a);
        ctx__test_fail_alloc(n);
        ctx_cancel(p);
        for (int i = 0; i < 10; i++)
            assert_int_equal(ctx_err(kids[i]), CTX_CANCELED);
        assert_int_equal(ctx_debug_children(p), 0);
        assert_int_equal(ctx_wait(kids[9], 0), CTX_CANCELED);
        assert_true(t_quiesce(T_LONG));
        ctx__test_fail_alloc(0);
        assert_int_equal(atomic_load(&r.runs), 1);
        assert_false(ctx_after_stop(a));
        for (int i = 9; i >= 0; i--)
            ctx_release(kids[i]);
        ctx_release(v);
        ctx_release(p);
    }
}

/* ---- C27 / 111: allocation counts ----------------------------------------- */

static long allocs_of(void (*op)(void *), void *arg)
{
    const long budget = 1000000;
    ctx__test_fail_alloc(budget);
    op(arg);
    return budget - ctx__test_fail_alloc(0);
}

struct ops {
    ctx_t *p, *c;
};

static void op_background(void *a) { (void)a; (void)ctx_background(); }
static void op_with_cancel(void *a)
{
    struct ops *o = a;
    o->c = ctx_with_cancel(o->p);
}
static void op_with_value(void *a)
{
    struct ops *o = a;
    o->c = ctx_with_value(o->p, &key_a, NULL, NULL);
}
static void op_observe(void *a)
{
    struct ops *o = a;
    (void)ctx_err(o->c);
    (void)ctx_cause(o->c);
    (void)ctx_value(o->c, &key_a);
    (void)ctx_deadline(o->c, NULL);
    (void)ctx_wait(o->c, 0);
}
static void op_cancel(void *a) { ctx_cancel(((struct ops *)a)->c); }
static void op_release(void *a) { ctx_release(((struct ops *)a)->c); }
static void op_timeout_cancel(void *a)
{
    struct ops *o = a;
    ctx_t *c = ctx_with_timeout(o->p, 5 * CTX_MS);
    ctx_cancel(c);
    (void)ctx_wait(c, T_LONG);
    ctx_release(c);
}

static void test_allocation_counts(void **state)
{
    struct ops o = {.p = ctx_with_cancel(ctx_background())};
    /* warm up the timer service (its first arm may size the heap) */
    ctx_t *w = ctx_with_timeout(o.p, 3600 * CTX_SECOND);
    ctx_release(w);
    assert_int_equal(allocs_of(op_background, &o), 0);
    assert_int_equal(allocs_of(op_with_cancel, &o), 1);
    assert_int_equal(allocs_of(op_observe, &o), 0);
    assert_int_equal(allocs_of(op_cancel, &o), 0);
    assert_int_equal(allocs_of(op_release, &o), 0);
    assert_true(allocs_of(op_with_value, &o) <= 1);
    assert_int_equal(allocs_of(op_observe, &o), 0);
    assert_int_equal(allocs_of(op_release, &o), 0);
    assert_true(allocs_of(op_timeout_cancel, &o) <= 8); /* Go's ceiling */
    ctx_release(o.p);
}

static int teardown_quiesce(void **state)
{
    ctx__test_fail_alloc(0);
    return t_quiesce(T_LONG) ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_ctors_fail_each_allocation, teardown_quiesce),
        cmocka_unit_test_teardown(test_ctors_fail_on_done_parent, teardown_quiesce),
        cmocka_unit_test_teardown(test_after_func_fail_each_allocation, teardown_quiesce),
        cmocka_unit_test_teardown(test_done_fd_enomem, teardown_quiesce),
        cmocka_unit_test_teardown(test_cancel_with_failing_allocations, teardown_quiesce),
        cmocka_unit_test_teardown(test_allocation_counts, teardown_quiesce),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_quiesce);
}
