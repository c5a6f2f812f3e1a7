/*
 * test_ctx.c -- roots, constructors, reference counting and ownership,
 * values, WithoutCancel, argument checks, error texts.
 *
 * Spec items (shared/design/go-context-spec.md) covered here:
 *   roots 1-5, 32; values 54-60, 64, 110; WithoutCancel 93-96;
 *   argument checks 61 (NULL key), 65, 66; error texts 52, 53;
 *   C1 (1e6 create/release), C2 (parent released before child),
 *   C3 (release without cancel unlinks), C18 (EINVAL), C19 (keys by
 *   address, NULL key refused, NULL value shadows), C20 (destroy once, on
 *   the releasing thread, not on cancel), C22 (error identity and texts).
 *   Rendering items live in test_ctx_format.c, allocation failures in
 *   test_ctx_alloc.c.
 *
 * Not applicable to libctx (listed once, here, for the whole suite):
 *   67-78  user-implemented custom contexts with their own Done, watcher
 *          goroutines and the "register f / stop" hook of custom contexts:
 *          libctx has opaque handles only and no custom-context interface
 *          (C24 likewise).
 *   26, 41, 58 (wrapper part)  a "wrapper" forwarding Done/Value is a Go
 *          embedding idiom with no C counterpart; the nearest analogue, a
 *          value node between two cancelable nodes, is tested instead.
 *   61 (non-comparable key)    no C analogue: keys are addresses.
 *   62/63 (exact Go value formatting) keys and values are opaque pointers;
 *          test_ctx_format.c checks the WithValue(...) segment instead.
 *   101 (second stop() returns false)  in C a handle is freed by its one
 *          ctx_after_stop(); a second call would be a use after free.
 *   111 Go's allocation ceilings are checked in the libctx form in
 *          test_ctx_alloc.c (C27).
 *   C15 (fork) and C16 (signals) are documented restrictions ("only exec
 *          or _exit after fork", "not async-signal-safe"), nothing to run.
 */
#include "ctx_test_util.h"

static int key_a, key_b, key_c; /* keys are addresses of static objects */

/* ---- roots (1-5, 32) --------------------------------------------------- */

static void check_root(ctx_t *r)
{
    int64_t d = 12345;
    assert_non_null(r);
    assert_int_equal(ctx_err(r), 0);
    assert_int_equal(ctx_cause(r), 0);
    assert_false(ctx_deadline(r, &d));
    assert_false(ctx_deadline(r, NULL));
    assert_null(ctx_value(r, &key_a));
    assert_int_equal(ctx_wait(r, 0), 0);
    assert_int_equal(ctx_done_fd(r), -1);
    assert_int_equal(ctx_debug_children(r), 0);
}

static void test_roots_never_done(void **state)
{
    ctx_t *bg = ctx_background(), *todo = ctx_todo();
    check_root(bg);
    check_root(todo);
    assert_ptr_not_equal(bg, todo);
    assert_ptr_equal(ctx_background(), bg);
    assert_ptr_equal(ctx_todo(), todo);
}

static void test_roots_immortal(void **state)
{
    ctx_t *bg = ctx_background(), *todo = ctx_todo();
    for (int i = 0; i < 1000; i++) {
        assert_ptr_equal(ctx_retain(bg), bg);
        ctx_release(bg);
        ctx_release(bg); /* more releases than retains: still a no-op */
        ctx_release(todo);
    }
    ctx_cancel(bg);
    ctx_cancel_cause(todo, 77);
    check_root(bg);
    check_root(todo);
}

static void test_root_children_not_linked(void **state)
{
    /* 5, 32: children of a root are never registered in it. */
    ctx_t *bg = ctx_background();
    ctx_t *c = ctx_with_cancel(bg);
    ctx_t *t = ctx_with_timeout(ctx_todo(), CTX_SECOND * 3600);
    assert_non_null(c);
    assert_non_null(t);
    assert_int_equal(ctx_debug_children(bg), 0);
    assert_int_equal(ctx_debug_children(ctx_todo()), 0);
    ctx_cancel(c);
    assert_int_equal(ctx_err(bg), 0);
    ctx_release(c);
    ctx_release(t);
}

/* ---- fresh contexts (6) and value-node cancel no-op -------------------- */

static void test_with_cancel_fresh(void **state)
{
    ctx_t *c = ctx_with_cancel(ctx_background());
    assert_non_null(c);
    assert_int_equal(ctx_err(c), 0);
    assert_int_equal(ctx_cause(c), 0);
    assert_int_equal(ctx_wait(c, 0), 0);
    assert_false(ctx_deadline(c, NULL));
    assert_int_equal(ctx_debug_children(c), 0);
    ctx_cancel(c);
    assert_int_equal(ctx_err(c), CTX_CANCELED);
    ctx_release(c);
}

static void test_cancel_on_value_node_is_noop(void **state)
{
    /* Value and WithoutCancel nodes have no cancel function. */
    ctx_t *p = ctx_with_cancel(ctx_background());
    ctx_t *v = ctx_with_value(p, &key_a, &key_b, NULL);
    ctx_t *w = ctx_without_cancel(p);
    ctx_cancel(v);
    ctx_cancel_cause(v, 99);
    ctx_cancel(w);
    assert_int_equal(ctx_err(p), 0);
    assert_int_equal(ctx_err(v), 0);
    assert_int_equal(ctx_err(w), 0);
    ctx_cancel(p);
    assert_int_equal(ctx_err(v), CTX_CANCELED);
    assert_int_equal(ctx_err(w), 0);
    ctx_release(w);
    ctx_release(v);
    ctx_release(p);
}

/* ---- reference counting, NULL safety ----------------------------------- */

static void test_retain_release(void **state)
{
    ctx_t *p = ctx_with_cancel(ctx_background());
    ctx_t *c = ctx_with_cancel(p);
    assert_int_equal(ctx_debug_children(p), 1);
    assert_ptr_equal(ctx_retain(c), c);
    ctx_release(c); /* one reference left: still linked and usable */
    assert_int_equal(ctx_debug_children(p), 1);
    ctx_cancel(p);
    assert_int_equal(ctx_err(c), CTX_CANCELED);
    ctx_release(c);
    ctx_release(p);
}

static void test_null_safe(void **state)
{
    assert_null(ctx_retain(NULL));
    ctx_release(NULL);
    ctx_cancel(NULL);
    ctx_cancel_cause(NULL, 5);
    assert_false(ctx_after_stop(NULL));
}

/* ---- C1, C3: create and release, children set stays empty ------------- */

static void test_create_release_million(void **state)
{
    const int n = T_SCALE(1000000, 100000);
    ctx_t *p = ctx_with_cancel(ctx_background());
    size_t timers = ctx_debug_timers();
    for (int i = 0; i < n; i++) {
        ctx_t *c;
        switch (i % 4) {
        case 0: c = ctx_with_cancel(p); break;
        case 1: c = ctx_with_value(p, &key_a, &key_b, NULL); break;
        case 2: c = ctx_with_timeout(p, 3600 * CTX_SECOND); break;
        default: c = ctx_without_cancel(p); break;
        }
        if (c == NULL)
            fail_msg("constructor failed at %d: %s", i, strerror(errno));
        ctx_release(c); /* never cancelled: C3 */
        if (i % 65536 == 0)
            assert_int_equal(ctx_debug_children(p), 0);
    }
    assert_int_equal(ctx_debug_children(p), 0);
    assert_int_equal(ctx_debug_timers(), timers);
    assert_int_equal(ctx_err(p), 0);
    ctx_release(p);
}

static void test_release_unlinks_not_cancels(void **state)
{
    /* C3 / item 34: releasing a live cancelable child unlinks it; the
     * parent is not cancelled; the child's timer is disarmed. */
    ctx_t *p = ctx_with_cancel(ctx_background());
    size_t timers = ctx_debug_timers();
    ctx_t *a = ctx_with_cancel(p);
    ctx_t *b = ctx_with_timeout(p, 3600 * CTX_SECOND);
    assert_int_equal(ctx_debug_children(p), 2);
    assert_int_equal(ctx_debug_timers(), timers + 1);
    ctx_release(a);
    assert_int_equal(ctx_debug_children(p), 1);
    ctx_release(b);
    assert_int_equal(ctx_debug_children(p), 0);
    assert_int_equal(ctx_debug_timers(), timers);
    assert_int_equal(ctx_err(p), 0);
    ctx_release(p);
}

/* ---- C2: the parent outlives its handle while a child lives ------------ */

static void test_parent_released_before_child(void **state)
{
    ctx_t *root = ctx_with_cancel(ctx_background());
    ctx_t *mid = ctx_with_cancel(root);
    ctx_t *val = ctx_with_value(mid, &key_a, &key_c, NULL);
    ctx_t *leaf = ctx_with_cancel(val);
    ctx_release(val);
    ctx_release(mid);
    assert_ptr_equal(ctx_value(leaf, &key_a), &key_c);
    assert_int_equal(ctx_err(leaf), 0);
    ctx_cancel_cause(root, 31);
    assert_int_equal(ctx_err(leaf), CTX_CANCELED);
    assert_int_equal(ctx_cause(leaf), 31);
    assert_ptr_equal(ctx_value(leaf, &key_a), &key_c);
    ctx_release(root);
    assert_ptr_equal(ctx_value(leaf, &key_a), &key_c);
    ctx_release(leaf);
}

/* ---- values (54-60, 64, 110; C19, C20) --------------------------------- */

static void test_values_shadowing(void **state)
{
    int v1 = 1, v2 = 2, v3 = 3;
    ctx_t *bg = ctx_background();
    ctx_t *c1 = ctx_with_value(bg, &key_a, &v1, NULL);
    ctx_t *c2 = ctx_with_value(c1, &key_b, &v2, NULL);
    ctx_t *c3 = ctx_with_value(c2, &key_a, &v3, NULL);  /* shadows a */
    ctx_t *c4 = ctx_with_value(c3, &key_a, NULL, NULL); /* NULL shadows */
    assert_ptr_equal(ctx_value(c1, &key_a), &v1);
    assert_null(ctx_value(c1, &key_b));
    assert_ptr_equal(ctx_value(c2, &key_a), &v1);
    assert_ptr_equal(ctx_value(c2, &key_b), &v2);
    assert_ptr_equal(ctx_value(c3, &key_a), &v3);
    assert_ptr_equal(ctx_value(c3, &key_b), &v2);
    assert_null(ctx_value(c4, &key_a)); /* 55: does not fall through */
    assert_ptr_equal(ctx_value(c4, &key_b), &v2);
    assert_null(ctx_value(c4, &key_c)); /* 57 */
    for (int i = 0; i < 100; i++) /* 64 */
        assert_ptr_equal(ctx_value(c3, &key_a), &v3);
    ctx_release(c4);
    ctx_release(c3);
    ctx_release(c2);
    ctx_release(c1);
}

static void test_values_keys_by_address(void **state)
{
    /* 56, C19: two distinct key objects holding equal contents are two
     * different keys. */
    static const int k1 = 1, k2 = 1;
    int va = 10, vb = 20;
    ctx_t *a = ctx_with_value(ctx_background(), &k1, &va, NULL);
    ctx_t *b = ctx_with_value(a, &k2, &vb, NULL);
    assert_ptr_equal(ctx_value(b, &k1), &va);
    assert_ptr_equal(ctx_value(b, &k2), &vb);
    assert_ptr_equal(ctx_value(a, &k1), &va);
    assert_null(ctx_value(a, &k2));
    ctx_release(b);
    ctx_release(a);
}

static void test_values_fresh_pointer_keys(void **state)
{
    /* 60: each freshly allocated key object is its own key; all are found
     * from the leaf, through cancel and timer nodes (59). */
    enum { N = 40 };
    void *keys[N];
    ctx_t *c = ctx_retain(ctx_background());
    for (int i = 0; i < N; i++) {
        keys[i] = malloc(1);
        assert_non_null(keys[i]);
        ctx_t *n = ctx_with_value(c, keys[i], (void *)(uintptr_t)(i + 1),
                                  NULL);
        ctx_release(c);
        c = (i % 3 == 0) ? ctx_with_cancel(n)
            : (i % 3 == 1) ? ctx_with_timeout(n, 3600 * CTX_SECOND)
                           : ctx_retain(n);
        ctx_release(n);
        assert_non_null(c);
    }
    for (int i = 0; i < N; i++)
        assert_int_equal((uintptr_t)ctx_value(c, keys[i]), i + 1);
    ctx_release(c);
    for (int i = 0; i < N; i++)
        free(keys[i]);
}

static void test_values_after_cancel_and_expiry(void **state)
{
    /* 59: values stay readable after cancel and after expiry. */
    int v = 7;
    ctx_t *p = ctx_with_cancel(ctx_background());
    ctx_t *val = ctx_with_value(p, &key_a, &v, NULL);
    ctx_t *t = ctx_with_timeout(val, CTX_MS);
    ctx_t *c = ctx_with_cancel(t);
    assert_int_equal(ctx_wait(c, T_LONG), CTX_DEADLINE_EXCEEDED);
    assert_ptr_equal(ctx_value(c, &key_a), &v);
    ctx_cancel(p);
    assert_ptr_equal(ctx_value(c, &key_a), &v);
    assert_ptr_equal(ctx_value(val, &key_a), &v);
    ctx_release(c);
    ctx_release(t);
    ctx_release(val);
    ctx_release(p);
}

static void test_values_example(void **state)
{
    /* 110: ExampleWithValue. */
    static const char favorite[] = "favorite color", color[] = "color";
    char go[] = "Go";
    ctx_t *c = ctx_with_value(ctx_background(), favorite, go, NULL);
    assert_string_equal((const char *)ctx_value(c, favorite), "Go");
    assert_null(ctx_value(c, color));
    ctx_release(c);
}

static _Atomic int destroyed;
static _Atomic(void *) destroyed_arg;
static pthread_t destroy_thread;

static void count_destroy(void *v)
{
    atomic_store(&destroyed_arg, v);
    destroy_thread = pthread_self();
    atomic_fetch_add(&destroyed, 1);
}

static void test_value_destroy_once_on_free(void **state)
{
    /* C20: destroy runs once, when the node is freed, not on cancel. */
    int v = 3;
    atomic_store(&destroyed, 0);
    ctx_t *p = ctx_with_cancel(ctx_background());
    ctx_t *val = ctx_with_value(p, &key_a, &v, count_destroy);
    ctx_t *child = ctx_with_cancel(val);
    ctx_cancel(p);
    assert_int_equal(atomic_load(&destroyed), 0);
    ctx_release(val); /* the child still holds it */
    assert_int_equal(atomic_load(&destroyed), 0);
    assert_ptr_equal(ctx_value(child, &key_a), &v);
    ctx_release(child);
    assert_int_equal(atomic_load(&destroyed), 1);
    assert_ptr_equal(atomic_load(&destroyed_arg), &v);
    ctx_release(p);
    assert_int_equal(atomic_load(&destroyed), 1);
}

static void *release_thread(void *arg)
{
    ctx_release(arg);
    return NULL;
}

static void test_value_destroy_on_releasing_thread(void **state)
{
    int v = 4;
    atomic_store(&destroyed, 0);
    ctx_t *val = ctx_with_value(ctx_background(), &key_a, &v, count_destroy);
    pthread_t t = t_thread(release_thread, val, 0);
    t_join(t);
    assert_int_equal(atomic_load(&destroyed), 1);
    assert_true(pthread_equal(destroy_thread, t));
}

static ctx_t *reentrant_parent;
static _Atomic int reentrant_ok;

static void reentrant_destroy(void *v)
{
    /* No libctx lock is held: any libctx call works here. */
    ctx_t *c = ctx_with_cancel(reentrant_parent);
    ctx_t *val = ctx_with_value(c, &key_b, v, NULL);
    bool ok = c && val && ctx_value(val, &key_b) == v;
    ctx_cancel(c);
    ok = ok && ctx_err(val) == CTX_CANCELED;
    ctx_release(val);
    ctx_release(c);
    atomic_store(&reentrant_ok, ok ? 1 : -1);
}

static void test_value_destroy_may_call_libctx(void **state)
{
    int v = 5;
    reentrant_parent = ctx_with_cancel(ctx_background());
    atomic_store(&reentrant_ok, 0);
    ctx_t *val = ctx_with_value(reentrant_parent, &key_a, &v,
                                reentrant_destroy);
    ctx_t *c = ctx_with_cancel(val);
    ctx_release(val);
    ctx_release(c); /* frees c, then val: destroy runs here */
    assert_int_equal(atomic_load(&reentrant_ok), 1);
    assert_int_equal(ctx_debug_children(reentrant_parent), 0);
    ctx_release(reentrant_parent);
}

/* ---- WithoutCancel (93-96) --------------------------------------------- */

static void test_without_cancel(void **state)
{
    int v = 9;
    size_t timers = ctx_debug_timers();
    ctx_t *p = ctx_with_timeout(ctx_background(), 3600 * CTX_SECOND);
    ctx_t *val = ctx_with_value(p, &key_a, &v, NULL);
    ctx_t *w = ctx_without_cancel(val);
    assert_non_null(w);
    assert_ptr_equal(ctx_value(w, &key_a), &v); /* 93 */
    assert_false(ctx_deadline(w, NULL));        /* 94 */
    assert_int_equal(ctx_err(w), 0);
    assert_int_equal(ctx_done_fd(w), -1);
    assert_int_equal(ctx_debug_children(p), 0); /* not registered */
    ctx_t *wc = ctx_with_cancel(w);
    ctx_t *wt = ctx_with_timeout(w, 7200 * CTX_SECOND);
    int64_t dp = 0, dt = 0;
    assert_true(ctx_deadline(p, &dp));
    assert_true(ctx_deadline(wt, &dt)); /* 96: only its own deadline */
    assert_true(dt > dp);
    assert_false(ctx_deadline(wc, NULL));
    assert_int_equal(ctx_debug_children(p), 0);
    ctx_cancel_cause(p, 44); /* 95 */
    assert_int_equal(ctx_err(val), CTX_CANCELED);
    assert_int_equal(ctx_err(w), 0);
    assert_int_equal(ctx_cause(w), 0);
    assert_int_equal(ctx_err(wc), 0);
    assert_int_equal(ctx_err(wt), 0);
    assert_int_equal(ctx_wait(w, 0), 0);
    assert_ptr_equal(ctx_value(wc, &key_a), &v);
    ctx_cancel(wc);
    assert_int_equal(ctx_err(wc), CTX_CANCELED);
    assert_int_equal(ctx_err(wt), 0);
    ctx_release(wt);
    ctx_release(wc);
    ctx_release(w);
    ctx_release(val);
    ctx_release(p);
    assert_int_equal(ctx_debug_timers(), timers);
}

static void test_without_cancel_parent_expires(void **state)
{
    /* 95: parent expiry does not reach a WithoutCancel node. */
    ctx_t *p = ctx_with_timeout(ctx_background(), CTX_MS);
    ctx_t *w = ctx_without_cancel(p);
    assert_int_equal(ctx_wait(p, T_LONG), CTX_DEADLINE_EXCEEDED);
    assert_int_equal(ctx_err(w), 0);
    assert_int_equal(ctx_cause(w), 0);
    ctx_t *c = ctx_with_cancel(w); /* not born done */
    assert_int_equal(ctx_err(c), 0);
    ctx_release(c);
    ctx_release(w);
    ctx_release(p);
}

/* ---- argument checks (61, 65, 66; C18) --------------------------------- */

static void noop_fn(void *arg) { (void)arg; }

#define EXPECT_EINVAL(expr)                                                \
    do {                                                                   \
        errno = 0;                                                         \
        assert_null(expr);                                                 \
        assert_int_equal(errno, EINVAL);                                   \
    } while (0)

static void test_null_parent_einval(void **state)
{
    EXPECT_EINVAL(ctx_with_cancel(NULL));
    EXPECT_EINVAL(ctx_with_deadline(NULL, ctx_now() + CTX_SECOND));
    EXPECT_EINVAL(ctx_with_timeout(NULL, CTX_SECOND));
    EXPECT_EINVAL(ctx_with_deadline_cause(NULL, ctx_now() + CTX_SECOND, 3));
    EXPECT_EINVAL(ctx_with_timeout_cause(NULL, CTX_SECOND, 3));
    EXPECT_EINVAL(ctx_with_value(NULL, &key_a, &key_b, NULL));
    EXPECT_EINVAL(ctx_without_cancel(NULL));
    EXPECT_EINVAL(ctx_after_func(NULL, noop_fn, NULL));
}

static void test_null_key_einval(void **state)
{
    ctx_t *p = ctx_with_cancel(ctx_background());
    int v = 1;
    atomic_store(&destroyed, 0);
    EXPECT_EINVAL(ctx_with_value(p, NULL, &v, count_destroy));
    EXPECT_EINVAL(ctx_with_value(ctx_background(), NULL, NULL, NULL));
    assert_int_equal(atomic_load(&destroyed), 0); /* caller keeps value */
    assert_int_equal(ctx_debug_children(p), 0);
    EXPECT_EINVAL(ctx_after_func(p, NULL, NULL));
    assert_int_equal(ctx_debug_children(p), 0);
    ctx_release(p);
}

/* ---- errors (52, 53, C22) ---------------------------------------------- */

static void test_strerror_and_timeout(void **state)
{
    assert_string_equal(ctx_strerror(CTX_CANCELED), "context canceled");
    assert_string_equal(ctx_strerror(CTX_DEADLINE_EXCEEDED),
                        "context deadline exceeded");
    assert_string_equal(ctx_strerror(0), "");
    assert_string_equal(ctx_strerror(3), "unknown context error");
    assert_string_equal(ctx_strerror(-1), "unknown context error");
    assert_true(ctx_is_timeout(CTX_DEADLINE_EXCEEDED));
    assert_false(ctx_is_timeout(CTX_CANCELED));
    assert_false(ctx_is_timeout(0));
    assert_false(ctx_is_timeout(42));
    assert_int_not_equal(CTX_CANCELED, CTX_DEADLINE_EXCEEDED);
    assert_int_not_equal(CTX_CANCELED, 0);
}

static void test_now_is_monotonic(void **state)
{
    /* C11: deadlines are CLOCK_MONOTONIC nanoseconds. */
    int64_t a = t_mono();
    int64_t n = ctx_now();
    int64_t b = t_mono();
    assert_true(a <= n && n <= b);
}

static int teardown_quiesce(void **state)
{
    return t_quiesce(T_LONG) ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_roots_never_done, teardown_quiesce),
        cmocka_unit_test_teardown(test_roots_immortal, teardown_quiesce),
        cmocka_unit_test_teardown(test_root_children_not_linked, teardown_quiesce),
        cmocka_unit_test_teardown(test_with_cancel_fresh, teardown_quiesce),
        cmocka_unit_test_teardown(test_cancel_on_value_node_is_noop, teardown_quiesce),
        cmocka_unit_test_teardown(test_retain_release, teardown_quiesce),
        cmocka_unit_test_teardown(test_null_safe, teardown_quiesce),
        cmocka_unit_test_teardown(test_create_release_million, teardown_quiesce),
        cmocka_unit_test_teardown(test_release_unlinks_not_cancels, teardown_quiesce),
        cmocka_unit_test_teardown(test_parent_released_before_child, teardown_quiesce),
        cmocka_unit_test_teardown(test_values_shadowing, teardown_quiesce),
        cmocka_unit_test_teardown(test_values_keys_by_address, teardown_quiesce),
        cmocka_unit_test_teardown(test_values_fresh_pointer_keys, teardown_quiesce),
        cmocka_unit_test_teardown(test_values_after_cancel_and_expiry, teardown_quiesce),
        cmocka_unit_test_teardown(test_values_example, teardown_quiesce),
        cmocka_unit_test_teardown(test_value_destroy_once_on_free, teardown_quiesce),
        cmocka_unit_test_teardown(test_value_destroy_on_releasing_thread, teardown_quiesce),
        cmocka_unit_test_teardown(test_value_destroy_may_call_libctx, teardown_quiesce),
        cmocka_unit_test_teardown(test_without_cancel, teardown_quiesce),
        cmocka_unit_test_teardown(test_without_cancel_parent_expires, teardown_quiesce),
        cmocka_unit_test_teardown(test_null_parent_einval, teardown_quiesce),
        cmocka_unit_test_teardown(test_null_key_einval, teardown_quiesce),
        cmocka_unit_test_teardown(test_strerror_and_timeout, teardown_quiesce),
        cmocka_unit_test_teardown(test_now_is_monotonic, teardown_quiesce),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_quiesce);
}
