/*
 * test_ctx_timer.c -- deadlines and the shared timer service.
 *
 * Spec items covered: 24 (layers expiring by timer), 33 (expiry unlinks
 * from the parent), 39, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51;
 * C10 (one timer heap: 1e5 pending timers plus churn, cancel disarms,
 * 1 ms timers racing cancel end with exactly one reason and cause),
 * C11 (monotonic clock, saturating arithmetic, INT64_MAX never fires).
 * Item 40 (rendering) is in test_ctx_format.c; 41 (wrapper) is not
 * applicable (a value node between timer and observer is tested instead).
 */
#include "ctx_test_util.h"

static int key_a;
#define HOUR (3600 * CTX_SECOND)

/* Waits (bounded) for a condition on a context the timer thread changes
 * after publishing the error (unlink, disarm). */
struct children_zero {
    ctx_t *p;
    size_t want_timers;
};

static bool children_and_timers_back(void *arg)
{
    struct children_zero *z = arg;
    return ctx_debug_children(z->p) == 0 &&
           ctx_debug_timers() == z->want_timers;
}

/* ---- 39, 33, 41-analogue ----------------------------------------------- */

static void test_deadline_fires(void **state)
{
    ctx_t *p = ctx_with_cancel(ctx_background());
    size_t timers = ctx_debug_timers();
    int64_t dl = ctx_now() + CTX_MS;
    ctx_t *t = ctx_with_deadline(p, dl);
    ctx_t *v = ctx_with_value(t, &key_a, NULL, NULL);
    ctx_t *c = ctx_with_cancel(v);
    int64_t got = 0;
    assert_true(ctx_deadline(t, &got));
    assert_int_equal(got, dl);
    assert_int_equal(ctx_wait(v, T_LONG), CTX_DEADLINE_EXCEEDED);
    assert_true(ctx_now() >= dl); /* never early */
    assert_int_equal(ctx_err(t), CTX_DEADLINE_EXCEEDED);
    /* The timer thread finishes the subtree after publishing t's error:
     * a descendant is done by the time its own wait returns. */
    assert_int_equal(ctx_wait(c, T_LONG), CTX_DEADLINE_EXCEEDED);
    assert_int_equal(ctx_cause(c), CTX_DEADLINE_EXCEEDED);
    assert_int_equal(ctx_err(p), 0);
    /* 33: the expired child leaves its parent's set; its timer is gone */
    struct children_zero z = {p, timers};
    assert_true(t_spin_until(children_and_timers_back, &z, T_LONG));
    ctx_release(c);
    ctx_release(v);
    ctx_release(t);
    ctx_release(p);
}

static void test_timeout_fires(void **state)
{
    int64_t before = ctx_now();
    ctx_t *t = ctx_with_timeout(ctx_background(), 2 * CTX_MS);
    int64_t after = ctx_now(), dl = 0;
    assert_true(ctx_deadline(t, &dl)); /* 46: now + d */
    assert_true(dl >= before + 2 * CTX_MS && dl <= after + 2 * CTX_MS);
    assert_int_equal(ctx_wait(t, T_LONG), CTX_DEADLINE_EXCEEDED);
    assert_true(ctx_now() >= dl);
    assert_true(ctx_is_timeout(ctx_err(t)));
    ctx_release(t);
}

/* ---- 42, 43, 49: the earlier deadline wins ------------------------------ */

static void test_parent_deadline_earlier(void **state)
{
    size_t timers = ctx_debug_timers();
    ctx_t *p = ctx_with_timeout(ctx_background(), HOUR);
    int64_t pd = 0, cd = 0;
    assert_true(ctx_deadline(p, &pd));
    assert_int_equal(ctx_debug_timers(), timers + 1);
    ctx_t *v = ctx_with_value(p, &key_a, NULL, NULL);
    ctx_t *c = ctx_with_timeout(v, 1000 * HOUR);
    ctx_t *d = ctx_with_deadline(v, pd + 1);
    assert_int_equal(ctx_debug_timers(), timers + 1); /* 43: no timer */
    assert_true(ctx_deadline(c, &cd));
    assert_int_equal(cd, pd);
    assert_true(ctx_deadline(d, &cd));
    assert_int_equal(cd, pd);
    assert_true(ctx_deadline(v, &cd)); /* 49: every descendant */
    assert_int_equal(cd, pd);
    for (int i = 0; i < 10; i++) {
        assert_true(ctx_deadline(c, &cd));
        assert_int_equal(cd, pd);
    }
    ctx_cancel(c); /* 43: still its own cancel function */
    assert_int_equal(ctx_err(c), CTX_CANCELED);
    assert_int_equal(ctx_err(d), 0);
    assert_int_equal(ctx_err(p), 0);
    assert_int_equal(ctx_debug_children(p), 1);
    ctx_release(d);
    ctx_release(c);
    ctx_release(v);
    ctx_release(p);
    assert_int_equal(ctx_debug_timers(), timers);
}

static void test_parent_expiry_reaches_long_child(void **state)
{
    /* 42: a +1000 h child below a short-lived parent expires with it. */
    ctx_t *p = ctx_with_timeout(ctx_background(), 5 * CTX_MS);
    ctx_t *v = ctx_with_value(p, &key_a, NULL, NULL);
    ctx_t *c = ctx_with_timeout(v, 1000 * HOUR);
    assert_int_equal(ctx_wait(c, T_LONG), CTX_DEADLINE_EXCEEDED);
    assert_int_equal(ctx_cause(c), CTX_DEADLINE_EXCEEDED);
    ctx_release(c);
    ctx_release(v);
    ctx_release(p);
}

static void test_child_deadline_earlier(void **state)
{
    ctx_t *p = ctx_with_timeout(ctx_background(), HOUR);
    int64_t want = ctx_now() + 2 * CTX_MS, got = 0;
    ctx_t *c = ctx_with_deadline(p, want);
    assert_true(ctx_deadline(c, &got));
    assert_int_equal(got, want);
    assert_int_equal(ctx_wait(c, T_LONG), CTX_DEADLINE_EXCEEDED);
    assert_int_equal(ctx_err(p), 0);
    ctx_release(c);
    ctx_release(p);
}

/* ---- 44-47: born expired ----------------------------------------------- */

static void check_born_expired(ctx_t *p, ctx_t *c)
{
    assert_non_null(c);
    assert_int_equal(ctx_err(c), CTX_DEADLINE_EXCEEDED);
    assert_int_equal(ctx_cause(c), CTX_DEADLINE_EXCEEDED);
    assert_int_equal(ctx_wait(c, 0), CTX_DEADLINE_EXCEEDED);
    assert_int_equal(ctx_debug_children(p), 0);
    ctx_cancel(c); /* 47 */
    assert_int_equal(ctx_err(c), CTX_DEADLINE_EXCEEDED);
    assert_int_equal(ctx_cause(c), CTX_DEADLINE_EXCEEDED);
    ctx_release(c);
}

static void test_deadline_in_past_or_now(void **state)
{
    ctx_t *p = ctx_with_cancel(ctx_background());
    size_t timers = ctx_debug_timers();
    check_born_expired(p, ctx_with_deadline(p, ctx_now() - CTX_MS)); /* 44 */
    check_born_expired(p, ctx_with_deadline(p, ctx_now()));          /* 45 */
    check_born_expired(p, ctx_with_deadline(p, INT64_MIN));
    check_born_expired(p, ctx_with_timeout(p, 0)); /* 46 */
    check_born_expired(p, ctx_with_timeout(p, -5));
    check_born_expired(p, ctx_with_timeout(p, INT64_MIN));
    ctx_t *c = ctx_with_timeout_cause(p, 0, 4500);
    assert_int_equal(ctx_err(c), CTX_DEADLINE_EXCEEDED);
    assert_int_equal(ctx_cause(c), 4500);
    ctx_release(c);
    c = ctx_with_deadline_cause(p, ctx_now() - CTX_SECOND, 4501);
    assert_int_equal(ctx_err(c), CTX_DEADLINE_EXCEEDED);
    assert_int_equal(ctx_cause(c), 4501);
    ctx_release(c);
    assert_int_equal(ctx_debug_timers(), timers);
    assert_int_equal(ctx_err(p), 0);
    ctx_release(p);
}

/* ---- 48, 50: cancel before expiry ---------------------------------------- */

static void test_cancel_before_expiry(void **state)
{
    size_t timers = ctx_debug_timers();
    ctx_t *outer = ctx_with_timeout(ctx_background(), CTX_SECOND);
    ctx_t *v = ctx_with_value(outer, &key_a, NULL, NULL);
    ctx_t *t = ctx_with_timeout(v, 500 * CTX_MS);
    assert_int_equal(ctx_debug_timers(), timers + 2);
    ctx_cancel(t);
    assert_int_equal(ctx_err(t), CTX_CANCELED); /* 48: synchronously */
    assert_int_equal(ctx_cause(t), CTX_CANCELED);
    assert_int_equal(ctx_debug_timers(), timers + 1); /* 50: disarmed */
    assert_int_equal(ctx_err(outer), 0);
    ctx_cancel(outer);
    assert_int_equal(ctx_debug_timers(), timers);
    assert_int_equal(ctx_err(t), CTX_CANCELED);
    ctx_release(t);
    ctx_release(v);
    ctx_release(outer);
}

static void test_cancel_parent_disarms_children(void **state)
{
    size_t timers = ctx_debug_timers();
    ctx_t *p = ctx_with_cancel(ctx_background());
    ctx_t *kids[50];
    for (int i = 0; i < 50; i++)
        kids[i] = ctx_with_timeout(p, HOUR + i * CTX_SECOND);
    assert_int_equal(ctx_debug_timers(), timers + 50);
    ctx_cancel(p);
    assert_int_equal(ctx_debug_timers(), timers);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(ctx_err(kids[i]), CTX_CANCELED);
        ctx_release(kids[i]);
    }
    ctx_release(p);
}

/* ---- C11: saturation, "forever", clock ------------------------------------ */

static void test_forever_never_fires(void **state)
{
    int64_t d = 0;
    ctx_t *f = ctx_with_timeout(ctx_background(), CTX_FOREVER);
    assert_non_null(f);
    assert_true(ctx_deadline(f, &d));
    assert_int_equal(d, INT64_MAX);
    ctx_t *g = ctx_with_timeout(ctx_background(), INT64_MAX - 1); /* sat. */
    assert_true(ctx_deadline(g, &d));
    assert_int_equal(d, INT64_MAX);
    ctx_t *h = ctx_with_deadline(ctx_background(), INT64_MAX);
    assert_true(ctx_deadline(h, &d));
    assert_int_equal(d, INT64_MAX);
    int64_t before = ctx_now();
    ctx_t *k = ctx_with_timeout(ctx_background(), 1000 * HOUR);
    ctx_t *m = ctx_with_timeout(ctx_background(), 1000000 * CTX_SECOND);
    assert_true(ctx_deadline(k, &d));
    assert_true(d >= before + 1000 * HOUR && d < INT64_MAX);
    assert_true(ctx_deadline(m, &d));
    assert_true(d >= before + 1000000 * CTX_SECOND && d < INT64_MAX);
    ctx_t *all[] = {f, g, h, k, m};
    assert_int_equal(ctx_wait(f, 20 * CTX_MS), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ctx_err(all[i]), 0);
        ctx_release(all[i]);
    }
}

/* ---- 24: layers expiring by their own 1 ms timers ------------------------ */

static void test_layers_timeout(void **state)
{
    enum { LAYERS = 32, ROUNDS = 10 };
    uint64_t seed = 99;
    for (int r = 0; r < ROUNDS; r++) {
        ctx_t *layer[LAYERS];
        ctx_t *c = ctx_background();
        bool has_timer = false;
        for (int i = 0; i < LAYERS; i++) {
            unsigned kind = (unsigned)(t_rand(&seed) % 3);
            if (i == LAYERS / 2 && !has_timer)
                kind = 2;
            if (kind == 0)
                layer[i] = ctx_with_value(c, &key_a, &layer[i], NULL);
            else if (kind == 1)
                layer[i] = ctx_with_cancel(c);
            else {
                layer[i] = ctx_with_timeout(c, CTX_MS);
                has_timer = true;
            }
            assert_non_null(layer[i]);
            c = layer[i];
        }
        ctx_t *leaf = layer[LAYERS - 1];
        assert_int_equal(ctx_wait(leaf, T_LONG), CTX_DEADLINE_EXCEEDED);
        for (int i = 0; i < LAYERS; i++)
            ctx_release(layer[i]);
    }
}

/* ---- 51, C10: many pending timers plus churn -------------------------- */

static void test_many_pending_timers(void **state)
{
    const long n = T_SCALE(100000, 20000);
    size_t timers = ctx_debug_timers();
    ctx_t *p = ctx_with_cancel(ctx_background());
    ctx_t **ts = malloc(sizeof *ts * (size_t)n);
    assert_non_null(ts);
    for (long i = 0; i < n; i++) {
        ts[i] = ctx_with_timeout(p, HOUR + (i % 1000) * CTX_MS);
        assert_non_null(ts[i]);
    }
    for (long i = 0; i < n; i++) /* none of them fired or was touched */
        if (ctx_err(ts[i]) != 0)
            fail_msg("one-hour timer %ld is done: %d", i, ctx_err(ts[i]));
    assert_int_equal(ctx_debug_timers(), timers + (size_t)n);
    /* churn: create and cancel as many again, heap size stays flat */
    for (long i = 0; i < n; i++) {
        ctx_t *c = ctx_with_timeout(p, HOUR / 2 + (i % 777) * CTX_MS);
        ctx_cancel(c);
        ctx_release(c);
    }
    assert_int_equal(ctx_debug_timers(), timers + (size_t)n);
    /* release every other one without cancel: disarmed too */
    for (long i = 0; i < n; i += 2) {
        ctx_release(ts[i]);
        ts[i] = NULL;
    }
    assert_int_equal(ctx_debug_timers(), timers + (size_t)(n / 2));
    ctx_t *soon = ctx_with_timeout(p, CTX_MS); /* still fires on time */
    assert_int_equal(ctx_wait(soon, T_LONG), CTX_DEADLINE_EXCEEDED);
    ctx_release(soon);
    ctx_cancel(p);
    assert_int_equal(ctx_debug_timers(), timers);
    for (long i = 1; i < n; i += 2) {
        assert_int_equal(ctx_err(ts[i]), CTX_CANCELED);
        ctx_release(ts[i]);
    }
    free(ts);
    ctx_release(p);
}

/* ---- C10: 1 ms timers racing cancel ---------------------------------- */

static void test_expiry_races_cancel(void **state)
{
    const int n = T_SCALE(3000, 400);
    uint64_t seed = 5;
    int seen[3] = {0, 0, 0};
    size_t timers = ctx_debug_timers();
    for (int i = 0; i < n; i++) {
        bool with_cause = i & 1;
        ctx_t *c = with_cause ? ctx_with_timeout_cause(ctx_background(),
                                                       CTX_MS, 3100)
                              : ctx_with_timeout(ctx_background(), CTX_MS);
        ctx_t *kid = ctx_with_cancel(c);
        /* aim the cancel at 0.5 .. 1.5 ms */
        t_spin_ns(500 * CTX_US + (int64_t)(t_rand(&seed) % 1000) * CTX_US);
        ctx_cancel(c);
        int e = ctx_err(c), cause = ctx_cause(c);
        assert_true(e == CTX_CANCELED || e == CTX_DEADLINE_EXCEEDED);
        if (e == CTX_CANCELED)
            assert_int_equal(cause, CTX_CANCELED);
        else
            assert_int_equal(cause, with_cause ? 3100 : e);
        assert_int_equal(ctx_err(kid), e);
        assert_int_equal(ctx_cause(kid), cause);
        assert_int_equal(ctx_wait(c, 0), e);
        seen[e]++;
        ctx_release(kid);
        ctx_release(c);
        /* stays settled once seen */
    }
    assert_int_equal(seen[1] + seen[2], n);
    assert_int_equal(ctx_debug_timers(), timers);
}

struct cancel_at {
    ctx_t *c;
    int64_t at;
};

static void *cancel_at_thread(void *arg)
{
    struct cancel_at *x = arg;
    while (ctx_now() < x->at)
        ;
    ctx_cancel(x->c);
    return NULL;
}

static void test_expiry_races_cancel_other_thread(void **state)
{
    /* The same race with the cancel on another thread, and a waiter. */
    const int n = T_SCALE(800, 150);
    uint64_t seed = 17;
    size_t timers = ctx_debug_timers();
    for (int i = 0; i < n; i++) {
        ctx_t *p = ctx_with_cancel(ctx_background());
        struct cancel_at x;
        x.c = ctx_with_timeout_cause(p, CTX_MS, 3200);
        x.at = ctx_now() + 500 * CTX_US +
               (int64_t)(t_rand(&seed) % 1000) * CTX_US;
        pthread_t t = t_thread(cancel_at_thread, &x, 0);
        int e = ctx_wait(x.c, T_LONG);
        t_join(t);
        assert_true(e == CTX_CANCELED || e == CTX_DEADLINE_EXCEEDED);
        assert_int_equal(ctx_err(x.c), e);
        assert_int_equal(ctx_cause(x.c),
                         e == CTX_CANCELED ? CTX_CANCELED : 3200);
        struct children_zero z = {p, timers};
        assert_true(t_spin_until(children_and_timers_back, &z, T_LONG));
        ctx_release(x.c);
        ctx_release(p);
    }
}

static int teardown_quiesce(void **state)
{
    return t_quiesce(T_LONG) ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_deadline_fires, teardown_quiesce),
        cmocka_unit_test_teardown(test_timeout_fires, teardown_quiesce),
        cmocka_unit_test_teardown(test_parent_deadline_earlier, teardown_quiesce),
        cmocka_unit_test_teardown(test_parent_expiry_reaches_long_child, teardown_quiesce),
        cmocka_unit_test_teardown(test_child_deadline_earlier, teardown_quiesce),
        cmocka_unit_test_teardown(test_deadline_in_past_or_now, teardown_quiesce),
        cmocka_unit_test_teardown(test_cancel_before_expiry, teardown_quiesce),
        cmocka_unit_test_teardown(test_cancel_parent_disarms_children, teardown_quiesce),
        cmocka_unit_test_teardown(test_forever_never_fires, teardown_quiesce),
        cmocka_unit_test_teardown(test_layers_timeout, teardown_quiesce),
        cmocka_unit_test_teardown(test_many_pending_timers, teardown_quiesce),
        cmocka_unit_test_teardown(test_expiry_races_cancel, teardown_quiesce),
        cmocka_unit_test_teardown(test_expiry_races_cancel_other_thread, teardown_quiesce),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_quiesce);
}
