/* Tests for ctx_walk() (libctx/src/ctx_format.c): what a walk visits
 * (cancelable nodes, breadth-first, depths, parents, deadlines, children
 * and AfterFunc counts), its bound, stopping early, a done subtree, and a
 * walk racing with cancels and releases on other threads (TSan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctx/ctx.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

struct seen {
    ctx_node_info_t n[64];
    int count;
    int stop_at;
};

static int rec(const ctx_node_info_t *i, void *ud)
{
    struct seen *s = ud;
    if (s->count < 64)
        s->n[s->count] = *i;
    s->count++;
    return s->stop_at && s->count >= s->stop_at;
}

static void noop(void *arg) { (void)arg; }

static void test_shape(void **state)
{
    ctx_t *root = ctx_with_cancel(ctx_background());
    ctx_t *val = ctx_with_value(root, "k", "v", NULL);  /* not registered */
    ctx_t *a = ctx_with_timeout(val, 60 * CTX_SECOND);   /* under root */
    ctx_t *b = ctx_with_cancel(root);
    ctx_t *a1 = ctx_with_cancel(a);
    ctx_after_t *af = ctx_after_func(b, noop, NULL);
    struct seen s = {0};
    /* From a value node: its nearest cancelable ancestor. */
    assert_int_equal(ctx_walk(val, 100, rec, &s), 4);
    assert_int_equal(s.count, 4);
    assert_ptr_equal(s.n[0].node, root);
    assert_null(s.n[0].parent);
    assert_int_equal(s.n[0].depth, 0);
    assert_int_equal(s.n[0].children, 2);
    assert_int_equal(s.n[0].deadline, INT64_MAX);
    assert_false(s.n[0].own_deadline);
    /* Breadth-first: root's two children, then a's. */
    assert_int_equal(s.n[1].depth, 1);
    assert_int_equal(s.n[2].depth, 1);
    assert_ptr_equal(s.n[3].node, a1);
    assert_ptr_equal(s.n[3].parent, a);
    assert_int_equal(s.n[3].depth, 2);
    for (int i = 1; i < 3; i++) {
        if (s.n[i].node == a) {
            assert_true(s.n[i].own_deadline);
            assert_true(s.n[i].deadline > ctx_now());
            assert_int_equal(s.n[i].children, 1);
        } else {
            assert_ptr_equal(s.n[i].node, b);
            assert_int_equal(s.n[i].afterfuncs, 1);
            assert_int_equal(s.n[i].children, 0);
        }
    }
    /* The deadline is inherited by a1. */
    assert_true(s.n[3].deadline < INT64_MAX);
    assert_false(s.n[3].own_deadline);

    /* Bounded, and stoppable. */
    memset(&s, 0, sizeof s);
    assert_int_equal(ctx_walk(root, 2, rec, &s), 2);
    memset(&s, 0, sizeof s);
    s.stop_at = 1;
    assert_int_equal(ctx_walk(root, 100, rec, &s), 1);
    assert_int_equal(ctx_walk(root, 0, rec, &s), 0);
    assert_int_equal(ctx_walk(ctx_background(), 10, rec, &s), 0);
    assert_int_equal(ctx_walk(NULL, 10, rec, &s), 0);

    /* A cancelled subtree shows as its done root (children unlinked). */
    ctx_cancel_cause(a, 42);
    memset(&s, 0, sizeof s);
    assert_int_equal(ctx_walk(a1, 10, rec, &s), 1);
    assert_int_equal(s.n[0].err, CTX_CANCELED);
    assert_int_equal(s.n[0].cause, 42);
    memset(&s, 0, sizeof s);
    assert_int_equal(ctx_walk(root, 10, rec, &s), 2); /* a unlinked too */

    ctx_after_stop(af);
    ctx_release(a1);
    ctx_release(b);
    ctx_release(a);
    ctx_release(val);
    ctx_release(root);
}

/* Walkers and cancellers race: 4 walker threads walk a tree of 64
 * requests x 4 children while the main thread cancels and releases them. */
#define NREQ 64
static ctx_t *groot;
static atomic_int stop_walk;
static atomic_long walked, walks;

static int count_cb(const ctx_node_info_t *i, void *ud)
{
    (void)ud;
    if (i->err)
        (void)i->cause;
    return 0;
}

static void *walker(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_walk)) {
        atomic_fetch_add(&walked, (long)ctx_walk(groot, 1000, count_cb, NULL));
        atomic_fetch_add(&walks, 1);
    }
    return NULL;
}

static void test_race(void **state)
{
    groot = ctx_with_cancel(ctx_background());
    for (int round = 0; round < 20; round++) {
        ctx_t *req[NREQ], *kid[NREQ][4];
        for (int i = 0; i < NREQ; i++) {
            req[i] = ctx_with_timeout(groot, 60 * CTX_SECOND);
            for (int k = 0; k < 4; k++)
                kid[i][k] = ctx_with_cancel(req[i]);
        }
        /* The whole tree: groot, its requests and their children, whether
         * groot's list was split into shards (by registrations that found
         * its lock held by a walker in an earlier round) or not. */
        assert_int_equal(ctx_walk(groot, 1000, count_cb, NULL), 1 + NREQ * 5);
        pthread_t t[4];
        atomic_store(&stop_walk, 0);
        long w0 = atomic_load(&walks);
        for (int i = 0; i < 4; i++)
            pthread_create(&t[i], NULL, walker, NULL);
        /* The walkers are running before the cancels start (bounded). */
        int64_t end = ctx_now() + 10 * CTX_SECOND;
        while (atomic_load(&walks) < w0 + 4 && ctx_now() < end)
            sched_yield();
        for (int i = 0; i < NREQ; i++) {
            ctx_cancel(req[i]);
            for (int k = 0; k < 4; k++)
                ctx_release(kid[i][k]);
            ctx_release(req[i]);
        }
        atomic_store(&stop_walk, 1);
        for (int i = 0; i < 4; i++)
            pthread_join(t[i], NULL);
        assert_int_equal(ctx_debug_children(groot), 0);
    }
    assert_true(atomic_load(&walked) > 0);
    ctx_release(groot);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape),
        cmocka_unit_test(test_race),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ctx_shutdown();
    return rc;
}
