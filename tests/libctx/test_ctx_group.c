/*
 * test_ctx_group.c -- task groups (<ctx/group.h>): errgroup semantics (the
 * first error cancels the siblings with that error as cause, wait returns
 * it), 10,000 tasks cancelled mid-flight, the in-flight limit and TryGo,
 * parent cancellation and deadlines, backpressure from the pool, private
 * pools, the closed state after wait.
 *
 * Synchronisation is by conditions (latches, gate contexts, bounded spins
 * on atomics), never by sleeping.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctx/ctx.h>
#include <ctx/group.h>
#include <ctx/pool.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "runtime_test_util.h"

/* ---- helpers ------------------------------------------------------------ */

static ctx_group_t *make_group(ctx_t *parent, ctx_pool_t *pool, size_t limit)
{
    ctx_group_options_t o;
    ctx_group_options_init(&o);
    o.pool = pool;
    o.limit = limit;
    ctx_group_t *g = ctx_group_create(parent, &o);
    assert_non_null(g);
    return g;
}

static int ok_task(ctx_t *ctx, void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    return 0;
}

/* Blocks in ctx_wait until the group's context is done. */
struct blocker {
    struct latch *started;
    atomic_int result;
};

static int block_task(ctx_t *ctx, void *arg)
{
    struct blocker *b = arg;
    latch_arrive(b->started);
    return ctx_wait(ctx, -1);
}

static void blocker_done(int err, bool ran, void *arg, void *user_data)
{
    struct blocker *b = arg;
    atomic_store(&b->result, ran ? err : -err);
}

/* ---- basics ------------------------------------------------------------- */

static void test_all_succeed(void **state)
{
    ctx_pool_t *p = make_pool(4, 256);
    ctx_group_t *g = make_group(ctx_background(), p, 0);
    ctx_t *gc = ctx_group_ctx(g);
    assert_non_null(gc);
    assert_int_equal(ctx_err(gc), 0);
    atomic_int n = 0;
    for (int i = 0; i < 200; i++)
        assert_int_equal(ctx_group_go(g, ok_task, &n), 0);
    assert_int_equal(ctx_group_wait(g), 0);
    assert_int_equal(atomic_load(&n), 200);
    assert_int_equal(ctx_group_inflight(g), 0);
    /* errgroup: Wait cancels the context; the group is closed. */
    assert_int_equal(ctx_err(gc), CTX_CANCELED);
    assert_int_equal(ctx_group_go(g, ok_task, &n), EPIPE);
    assert_int_equal(ctx_group_wait(g), 0); /* again: same answer */
    ctx_group_destroy(g);
    ctx_group_destroy(NULL);
    ctx_pool_destroy(p);
}

static void test_invalid_arguments(void **state)
{
    errno = 0;
    assert_null(ctx_group_create(NULL, NULL));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(ctx_group_go(NULL, ok_task, NULL), EINVAL);
    assert_int_equal(ctx_group_wait(NULL), EINVAL);
    assert_null(ctx_group_ctx(NULL));
    ctx_group_t *g = ctx_group_create(ctx_background(), NULL); /* own pool */
    assert_non_null(g);
    assert_int_equal(ctx_group_go(g, NULL, NULL), EINVAL);
    ctx_group_destroy(g);
}

static void test_private_pool(void **state)
{
    ctx_group_t *g = ctx_group_create(ctx_background(), NULL);
    assert_non_null(g);
    atomic_int n = 0;
    for (int i = 0; i < 100; i++)
        assert_int_equal(ctx_group_go(g, ok_task, &n), 0);
    assert_int_equal(ctx_group_wait(g), 0);
    assert_int_equal(atomic_load(&n), 100);
    ctx_group_destroy(g);
}

/* ---- the first error ---------------------------------------------------- */

static int fail_task(ctx_t *ctx, void *arg)
{
    return *(int *)arg;
}

static void test_first_error_cancels_siblings(void **state)
{
    enum { SIBS = 3 };
    ctx_pool_t *p = make_pool(SIBS + 1, 16);
    ctx_t *parent = ctx_with_cancel(ctx_background());
    ctx_group_t *g = make_group(parent, p, 0);
    struct latch started;
    latch_init(&started, SIBS);
    struct blocker b[SIBS];
    for (int i = 0; i < SIBS; i++) {
        b[i].started = &started;
        atomic_init(&b[i].result, 0);
        assert_int_equal(ctx_group_go_cb(g, block_task, &b[i], blocker_done,
                                         NULL), 0);
    }
    latch_wait(&started); /* the siblings are blocked in ctx_wait */
    int err42 = 42;
    assert_int_equal(ctx_group_go(g, fail_task, &err42), 0);
    assert_int_equal(ctx_group_wait(g), 42);
    for (int i = 0; i < SIBS; i++)
        assert_int_equal(atomic_load(&b[i].result), CTX_CANCELED);
    assert_int_equal(ctx_err(ctx_group_ctx(g)), CTX_CANCELED);
    assert_int_equal(ctx_cause(ctx_group_ctx(g)), 42); /* cancel cause */
    assert_int_equal(ctx_err(parent), 0); /* never upwards */
    ctx_group_destroy(g);
    ctx_release(parent);
    ctx_pool_destroy(p);
    latch_destroy(&started);
}

/* ---- 10,000 tasks cancelled mid-flight ---------------------------------- */

#define FAN 10000
#define FAILER 1500 /* the task that fails, some way into the run */
#define FAIL_ERR 77

enum { ST_NONE, ST_STARTED, ST_COMPLETED, ST_OBSERVED, ST_FAILED };

struct fan {
    atomic_int waited;     /* set once ctx_group_wait() has returned */
    atomic_int late;       /* tasks that started after that: must be 0 */
    atomic_int started;
    atomic_int completed;
    atomic_int observed;
    atomic_int skipped;
    atomic_int bad_cb;     /* callbacks disagreeing with what fn did */
    atomic_int cb_calls;
    struct latch blocked;
    atomic_int st[FAN];
};

struct fan_arg {
    struct fan *f;
    int i;
    bool fails;  /* returns FAIL_ERR instead of working */
    bool blocks; /* arrives at f->blocked, then waits for cancellation */
};

static _Thread_local volatile unsigned sink; /* the CPU loop's output, per thread */

static int fan_task(ctx_t *ctx, void *arg)
{
    struct fan_arg *a = arg;
    struct fan *f = a->f;
    if (atomic_load(&f->waited))
        atomic_fetch_add(&f->late, 1);
    atomic_fetch_add(&f->started, 1);
    atomic_store(&f->st[a->i], ST_STARTED);
    if (a->fails) {
        atomic_store(&f->st[a->i], ST_FAILED);
        return FAIL_ERR;
    }
    if (a->blocks) { /* holds its worker until the request is cancelled */
        latch_arrive(&f->blocked);
        int err = ctx_wait(ctx, -1);
        atomic_fetch_add(&f->observed, 1);
        atomic_store(&f->st[a->i], ST_OBSERVED);
        return err;
    }
    /* A short CPU loop that polls for cancellation. */
    for (int k = 0; k < 2000; k++) {
        if ((k & 63) == 0 && ctx_err(ctx) != 0) {
            atomic_fetch_add(&f->observed, 1);
            atomic_store(&f->st[a->i], ST_OBSERVED);
            return ctx_err(ctx);
        }
        sink += (unsigned)k * 2654435761u;
    }
    atomic_fetch_add(&f->completed, 1);
    atomic_store(&f->st[a->i], ST_COMPLETED);
    return 0;
}

static void fan_done(int err, bool ran, void *arg, void *user_data)
{
    struct fan_arg *a = arg;
    struct fan *f = a->f;
    int st = atomic_load(&f->st[a->i]);
    bool ok;
    if (!ran) {
        atomic_fetch_add(&f->skipped, 1);
        ok = st == ST_NONE && err == CTX_CANCELED;
    } else if (st == ST_COMPLETED) {
        ok = err == 0;
    } else if (st == ST_OBSERVED) {
        ok = err == CTX_CANCELED;
    } else {
        ok = st == ST_FAILED && err == FAIL_ERR;
    }
    if (!ok)
        atomic_fetch_add(&f->bad_cb, 1);
    atomic_fetch_add(&f->cb_calls, 1);
}

/* mode FAIL: task FAILER returns FAIL_ERR, which cancels the group, while
 * the tasks just before it hold every other worker;
 * mode PARENT: the request (the group's parent) is cancelled from outside
 * while tasks 3000.. hold every worker (blocked in ctx_wait), so the
 * cancellation lands mid-flight whatever the scheduling. */
#define BLOCKER 3000
enum fan_mode { FAN_FAIL, FAN_PARENT };

static void fan_out_and_cancel(enum fan_mode mode)
{
    struct fan *f = calloc(1, sizeof(*f));
    struct fan_arg *args = calloc(FAN, sizeof(*args));
    assert_non_null(f);
    assert_non_null(args);
    ctx_pool_t *p = make_pool(0, FAN); /* default: one thread per CPU */
    ctx_t *req = ctx_with_cancel(ctx_background());
    ctx_group_t *g = make_group(req, p, 0);
    int nthreads = ctx_pool_threads(p);
    latch_init(&f->blocked, nthreads);

    for (int i = 0; i < FAN; i++) {
        /* FAIL: tasks FAILER-(n-1) .. FAILER-1 hold the other workers, so
         * nothing else runs between the failure and the cancellation. */
        bool blocks = mode == FAN_PARENT
                          ? i >= BLOCKER && i < BLOCKER + nthreads
                          : i >= FAILER - (nthreads - 1) && i < FAILER;
        args[i] = (struct fan_arg){f, i, mode == FAN_FAIL && i == FAILER,
                                   blocks};
        assert_int_equal(ctx_group_go_cb(g, fan_task, &args[i], fan_done,
                                         NULL), 0);
    }
    if (mode == FAN_PARENT) {
        latch_wait(&f->blocked); /* every worker holds a blocker */
        ctx_cancel(req);
    }
    int err = ctx_group_wait(g);
    atomic_store(&f->waited, 1);
    int started_at_wait = atomic_load(&f->started);

    if (mode == FAN_FAIL) {
        assert_int_equal(err, FAIL_ERR); /* the first error */
        assert_int_equal(ctx_cause(ctx_group_ctx(g)), FAIL_ERR);
        assert_int_equal(ctx_err(req), 0);
    } else {
        assert_int_equal(err, CTX_CANCELED);
        assert_int_equal(ctx_err(ctx_group_ctx(g)), CTX_CANCELED);
    }
    assert_int_equal(ctx_group_inflight(g), 0);
    assert_int_equal(ctx_group_go(g, fan_task, &args[0]), EPIPE);

    /* Join every thread: nothing may start after wait returned. */
    ctx_group_destroy(g);
    ctx_pool_destroy(p);
    assert_int_equal(atomic_load(&f->late), 0);
    assert_int_equal(atomic_load(&f->started), started_at_wait);

    /* Every task ran to completion, observed cancellation, failed (the one
     * in FAIL mode), or was skipped because the context was done when it
     * was picked up. */
    int started = atomic_load(&f->started);
    int completed = atomic_load(&f->completed);
    int observed = atomic_load(&f->observed);
    int skipped = atomic_load(&f->skipped);
    int failed = mode == FAN_FAIL ? 1 : 0;
    /* FIFO: every task before the failer / the last blocker ran; every
     * task after it was skipped. */
    int last = mode == FAN_FAIL ? FAILER : BLOCKER + nthreads - 1;
    assert_int_equal(started, last + 1);
    assert_int_equal(observed, nthreads - failed);
    assert_int_equal(completed + observed + failed, started);
    assert_int_equal(started + skipped, FAN);
    assert_int_equal(atomic_load(&f->cb_calls), FAN);
    assert_int_equal(atomic_load(&f->bad_cb), 0);
    assert_true(started > (mode == FAN_FAIL ? FAILER : BLOCKER));
    assert_true(skipped > 0); /* cancelled mid-flight: the rest cut short */
    int none = 0;
    for (int i = 0; i < FAN; i++)
        none += atomic_load(&f->st[i]) == ST_NONE;
    assert_int_equal(none, skipped);
    print_message("    %s: started %d (completed %d, observed %d, failed %d),"
                  " skipped %d\n", mode == FAN_FAIL ? "first error" :
                  "parent cancel", started, completed, observed, failed,
                  skipped);

    ctx_release(req);
    latch_destroy(&f->blocked);
    free(args);
    free(f);
}

static void test_10000_tasks_first_error_mid_flight(void **state)
{
    fan_out_and_cancel(FAN_FAIL);
}

static void test_10000_tasks_parent_cancelled_mid_flight(void **state)
{
    fan_out_and_cancel(FAN_PARENT);
}

/* ---- cancellation from above: parent, deadline --------------------------- */

static void test_parent_cancel_reaches_tasks(void **state)
{
    enum { N = 4 };
    ctx_pool_t *p = make_pool(N, 16);
    ctx_t *req = ctx_with_cancel(ctx_background());
    ctx_group_t *g = make_group(req, p, 0);
    struct latch started;
    latch_init(&started, N);
    struct blocker b[N];
    for (int i = 0; i < N; i++) {
        b[i].started = &started;
        atomic_init(&b[i].result, 0);
        assert_int_equal(ctx_group_go_cb(g, block_task, &b[i], blocker_done,
                                         NULL), 0);
    }
    latch_wait(&started);
    ctx_cancel(req); /* the request is cancelled */
    assert_int_equal(ctx_group_wait(g), CTX_CANCELED);
    for (int i = 0; i < N; i++)
        assert_int_equal(atomic_load(&b[i].result), CTX_CANCELED);
    ctx_group_destroy(g);
    ctx_release(req);
    ctx_pool_destroy(p);
    latch_destroy(&started);
}

static void test_deadline_cuts_work_short(void **state)
{
    enum { N = 4 };
    ctx_pool_t *p = make_pool(2, 16);
    ctx_t *dl = ctx_with_timeout(ctx_background(), 20 * CTX_MS);
    ctx_group_t *g = make_group(dl, p, 0);
    struct latch started;
    latch_init(&started, 0); /* not awaited: some never start */
    struct blocker b[N];
    for (int i = 0; i < N; i++) {
        b[i].started = &started;
        atomic_init(&b[i].result, 0);
        assert_int_equal(ctx_group_go_cb(g, block_task, &b[i], blocker_done,
                                         NULL), 0);
    }
    assert_int_equal(ctx_group_wait(g), CTX_DEADLINE_EXCEEDED);
    for (int i = 0; i < N; i++) {
        int r = atomic_load(&b[i].result);
        /* ran and saw the deadline, or skipped at pickup (negated) */
        assert_true(r == CTX_DEADLINE_EXCEEDED || r == -CTX_DEADLINE_EXCEEDED);
    }
    /* at most two ran (they held both threads until the deadline), so at
     * least two were skipped */
    int skipped = 0;
    for (int i = 0; i < N; i++)
        skipped += atomic_load(&b[i].result) < 0;
    assert_true(skipped >= 2);
    ctx_group_destroy(g);
    ctx_release(dl);
    ctx_pool_destroy(p);
    latch_destroy(&started);
}

/* Destroy without wait: cancels, waits, frees (no leak, no late task). */
static void test_destroy_without_wait(void **state)
{
    ctx_pool_t *p = make_pool(2, 16);
    ctx_group_t *g = make_group(ctx_background(), p, 0);
    struct latch started;
    latch_init(&started, 2);
    struct blocker b[2];
    for (int i = 0; i < 2; i++) {
        b[i].started = &started;
        atomic_init(&b[i].result, 0);
        assert_int_equal(ctx_group_go_cb(g, block_task, &b[i], blocker_done,
                                         NULL), 0);
    }
    latch_wait(&started);
    ctx_group_destroy(g);
    for (int i = 0; i < 2; i++)
        assert_int_equal(atomic_load(&b[i].result), CTX_CANCELED);
    assert_int_equal(ctx_pool_queued(p), 0);
    ctx_pool_destroy(p);
    latch_destroy(&started);
}

/* ---- limit -------------------------------------------------------------- */

struct conc {
    atomic_int now;
    atomic_int max;
};

static int conc_task(ctx_t *ctx, void *arg)
{
    struct conc *c = arg;
    int n = atomic_fetch_add(&c->now, 1) + 1;
    int m = atomic_load(&c->max);
    while (n > m && !atomic_compare_exchange_weak(&c->max, &m, n))
        ;
    for (int i = 0; i < 200; i++)
        sched_yield(); /* give the others a chance to overlap */
    atomic_fetch_sub(&c->now, 1);
    return 0;
}

static void test_limit_bounds_tasks_in_flight(void **state)
{
    ctx_pool_t *p = make_pool(8, 64);
    ctx_group_t *g = make_group(ctx_background(), p, 3);
    struct conc c = {0, 0};
    for (int i = 0; i < 60; i++)
        assert_int_equal(ctx_group_go(g, conc_task, &c), 0);
    assert_true(ctx_group_inflight(g) <= 3);
    assert_int_equal(ctx_group_wait(g), 0);
    assert_true(atomic_load(&c.max) >= 1);
    assert_true(atomic_load(&c.max) <= 3);
    ctx_group_destroy(g);
    ctx_pool_destroy(p);
}

static void test_try_go_at_limit(void **state)
{
    enum { LIMIT = 3 };
    ctx_pool_t *p = make_pool(LIMIT, 16);
    ctx_group_t *g = make_group(ctx_background(), p, LIMIT);
    struct latch started;
    latch_init(&started, LIMIT);
    struct blocker b[LIMIT];
    for (int i = 0; i < LIMIT; i++) {
        b[i].started = &started;
        atomic_init(&b[i].result, 0);
        assert_int_equal(ctx_group_try_go_cb(g, block_task, &b[i],
                                             blocker_done, NULL), 0);
    }
    latch_wait(&started);
    atomic_int n = 0;
    assert_int_equal(ctx_group_try_go_cb(g, ok_task, &n, NULL, NULL), EAGAIN);
    assert_int_equal(ctx_group_inflight(g), LIMIT);
    ctx_cancel(ctx_group_ctx(g)); /* allowed: stops the tasks */
    assert_int_equal(ctx_group_wait(g), CTX_CANCELED);
    assert_int_equal(atomic_load(&n), 0);
    ctx_group_destroy(g);
    ctx_pool_destroy(p);
    latch_destroy(&started);
}

/* ---- backpressure from the pool ------------------------------------------ */

static void test_full_pool_queue_fails_go(void **state)
{
    ctx_pool_t *p = make_pool(1, 2);
    ctx_group_t *g = make_group(ctx_background(), p, 0);
    struct latch started;
    latch_init(&started, 1);
    struct blocker b = {&started, 0};
    assert_int_equal(ctx_group_go_cb(g, block_task, &b, blocker_done, NULL),
                     0);
    latch_wait(&started); /* the only worker is busy */
    atomic_int n = 0;
    assert_int_equal(ctx_group_go(g, ok_task, &n), 0);
    assert_int_equal(ctx_group_go(g, ok_task, &n), 0);
    assert_int_equal(ctx_group_go(g, ok_task, &n), EAGAIN); /* queue full */
    assert_int_equal(ctx_group_inflight(g), 3);
    assert_int_equal(ctx_err(ctx_group_ctx(g)), 0); /* nothing cancelled */
    ctx_cancel(ctx_group_ctx(g));
    assert_int_equal(ctx_group_wait(g), CTX_CANCELED);
    assert_int_equal(atomic_load(&n), 0); /* skipped: ctx done at pickup */
    ctx_group_destroy(g);
    ctx_pool_destroy(p);
    latch_destroy(&started);
}

/* ---- nested fan-out ------------------------------------------------------ */

struct tree {
    ctx_group_t *g;
    atomic_int leaves;
    atomic_int go_err;
};

static int leaf(ctx_t *ctx, void *arg)
{
    atomic_fetch_add(&((struct tree *)arg)->leaves, 1);
    return 0;
}

static int branch(ctx_t *ctx, void *arg)
{
    struct tree *t = arg;
    for (int i = 0; i < 10; i++) {
        int rc = ctx_group_try_go_cb(t->g, leaf, t, NULL, NULL);
        if (rc != 0)
            atomic_store(&t->go_err, rc);
    }
    return 0;
}

static void test_tasks_may_fan_out_further(void **state)
{
    ctx_pool_t *p = make_pool(2, 256);
    struct tree t = {0};
    t.g = make_group(ctx_background(), p, 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(ctx_group_go(t.g, branch, &t), 0);
    assert_int_equal(ctx_group_wait(t.g), 0);
    assert_int_equal(atomic_load(&t.go_err), 0);
    assert_int_equal(atomic_load(&t.leaves), 100);
    ctx_group_destroy(t.g);
    ctx_pool_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_succeed),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_private_pool),
        cmocka_unit_test(test_first_error_cancels_siblings),
        cmocka_unit_test(test_10000_tasks_first_error_mid_flight),
        cmocka_unit_test(test_10000_tasks_parent_cancelled_mid_flight),
        cmocka_unit_test(test_parent_cancel_reaches_tasks),
        cmocka_unit_test(test_deadline_cuts_work_short),
        cmocka_unit_test(test_destroy_without_wait),
        cmocka_unit_test(test_limit_bounds_tasks_in_flight),
        cmocka_unit_test(test_try_go_at_limit),
        cmocka_unit_test(test_full_pool_queue_fails_go),
        cmocka_unit_test(test_tasks_may_fan_out_further),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ctx_shutdown();
    return rc;
}
