/*
 * test_ctx_cancel.c -- cancellation: propagation, isolation, the children
 * set, causes, races, deep chains and wide fan-out.
 *
 * Spec items covered: 6, 8, 9, 11, 12, 14, 15, 16, 17, 18, 19, 20, 21,
 * 22, 23, 27, 28, 29, 30, 31, 35, 36, 37, 38, 79-92, 109;
 * C4 (cancel racing release), C5 (deep chains on a 64 KiB stack),
 * C6 (wide fan-out, linear), C7 (lock order: 35/36 under TSan),
 * C14 (Err/Cause/Done published together: 10, 38).
 * (Item 10 with the done fd lives here too; 13 is in test_ctx_wait.c.)
 *
 * Race tests run hundreds to thousands of bounded iterations; worker
 * threads report through T_CHECK (see ctx_test_util.h).
 */
#include "ctx_test_util.h"

#include <poll.h>

#include "ctx_internal.h" /* ctx__set_cancel_order() */

static int key_a;

static void noop_fn(void *arg) { (void)arg; }

static bool fd_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* ---- 8, 9, 15-18: synchronous propagation and the children set -------- */

static void test_cancel_propagates_synchronously(void **state)
{
    ctx_t *p = ctx_with_cancel(ctx_background());
    ctx_t *c = ctx_with_cancel(p);
    ctx_t *v = ctx_with_value(p, &key_a, &key_a, NULL);
    ctx_t *g = ctx_with_timeout(v, 3600 * CTX_SECOND);
    ctx_t *gv = ctx_with_value(g, &key_a, NULL, NULL);
    assert_int_equal(ctx_debug_children(p), 2); /* 16: c and g, not v */
    assert_int_equal(ctx_debug_children(v), 0);
    ctx_after_t *a = ctx_after_func(p, noop_fn, NULL);
    assert_non_null(a);
    assert_int_equal(ctx_debug_children(p), 3); /* 17 */
    assert_true(ctx_after_stop(a));             /* 31 */
    assert_int_equal(ctx_debug_children(p), 2);
    ctx_t *all[] = {p, c, v, g, gv};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(ctx_err(all[i]), 0);
        assert_int_equal(ctx_wait(all[i], 0), 0);
    }
    ctx_cancel(p);
    for (size_t i = 0; i < 5; i++) { /* 8, 15: done when cancel returns */
        assert_int_equal(ctx_err(all[i]), CTX_CANCELED);
        assert_int_equal(ctx_cause(all[i]), CTX_CANCELED);
        assert_int_equal(ctx_wait(all[i], 0), CTX_CANCELED);
    }
    assert_int_equal(ctx_debug_children(p), 0); /* 18 */
    for (int k = 0; k < 10; k++)                 /* 9: stable */
        assert_int_equal(ctx_err(g), CTX_CANCELED);
    for (size_t i = 0; i < 5; i++)
        ctx_release(all[i]);
}

static void test_children_of_canceled_parent_born_done(void **state)
{
    /* 19, 20, 21: born done, with the parent's error and cause, and not
     * registered in the parent. */
    ctx_t *p = ctx_with_cancel(ctx_background());
    ctx_cancel_cause(p, 501);
    ctx_t *v = ctx_with_value(p, &key_a, NULL, NULL);
    ctx_t *c = ctx_with_cancel(p);
    ctx_t *t = ctx_with_timeout(v, 3600 * CTX_SECOND);
    ctx_t *cs[] = {v, c, t};
    for (int i = 0; i < 3; i++) {
        assert_non_null(cs[i]);
        assert_int_equal(ctx_err(cs[i]), CTX_CANCELED);
        assert_int_equal(ctx_cause(cs[i]), 501);
    }
    assert_int_equal(ctx_debug_children(p), 0);
    for (int i = 0; i < 3; i++)
        ctx_release(cs[i]);
    ctx_release(p);
}

static void test_cancel_idempotent(void **state)
{
    /* 11, 92 */
    ctx_t *p = ctx_with_cancel(ctx_background());
    ctx_t *c = ctx_with_cancel(p);
    ctx_cancel_cause(c, 600);
    ctx_cancel(c);
    ctx_cancel_cause(c, 601);
    assert_int_equal(ctx_err(c), CTX_CANCELED);
    assert_int_equal(ctx_cause(c), 600);
    ctx_cancel(p);
    ctx_cancel_cause(p, 602);
    assert_int_equal(ctx_cause(p), CTX_CANCELED);
    assert_int_equal(ctx_cause(c), 600);
    ctx_release(c);
    ctx_release(p);
}

/* ---- 27-30: isolation, removal from the parent -------------------------- */

static void test_child_cancel_isolated(void **state)
{
    ctx_t *p = ctx_with_cancel(ctx_background());
    ctx_t *a = ctx_with_cancel(p);
    ctx_t *b = ctx_with_cancel(p);
    ctx_t *t = ctx_with_timeout(p, 3600 * CTX_SECOND);
    ctx_t *bc = ctx_with_cancel(b);
    size_t timers = ctx_debug_timers();
    assert_int_equal(ctx_debug_children(p), 3);
    ctx_cancel(a); /* 27, 28, 29 */
    assert_int_equal(ctx_err(a), CTX_CANCELED);
    assert_int_equal(ctx_err(p), 0);
    assert_int_equal(ctx_err(b), 0);
    assert_int_equal(ctx_err(bc), 0);
    assert_int_equal(ctx_err(t), 0);
    assert_int_equal(ctx_debug_children(p), 2);
    ctx_cancel(t); /* 30: and its timer is disarmed */
    assert_int_equal(ctx_err(t), CTX_CANCELED);
    assert_int_equal(ctx_debug_children(p), 1);
    assert_int_equal(ctx_debug_timers(), timers - 1);
    ctx_cancel(bc);
    assert_int_equal(ctx_err(b), 0);
    assert_int_equal(ctx_debug_children(b), 0);
    assert_int_equal(ctx_debug_children(p), 1);
    ctx_cancel(b);
    assert_int_equal(ctx_debug_children(p), 0);
    assert_int_equal(ctx_err(p), 0);
    /* 27 with a root parent */
    ctx_t *r = ctx_with_cancel(ctx_background());
    ctx_cancel(r);
    assert_int_equal(ctx_err(ctx_background()), 0);
    ctx_release(r);
    ctx_release(bc);
    ctx_release(t);
    ctx_release(b);
    ctx_release(a);
    ctx_release(p);
}

/* ---- 23: random layers ----------------------------------------------- */

static void test_layers_cancel(void **state)
{
    enum { LAYERS = 36, ROUNDS = 40 };
    uint64_t seed = 0x9e3779b97f4a7c15u;
    for (int round = 0; round < ROUNDS; round++) {
        ctx_t *layer[LAYERS];
        bool cancelable[LAYERS];
        void *keys[LAYERS];
        ctx_t *c = ctx_background();
        for (int i = 0; i < LAYERS; i++) {
            keys[i] = NULL;
            switch (t_rand(&seed) % 3) {
            case 0:
                keys[i] = malloc(1);
                layer[i] = ctx_with_value(c, keys[i], &layer[i], NULL);
                cancelable[i] = false;
                break;
            case 1:
                layer[i] = ctx_with_cancel(c);
                cancelable[i] = true;
                break;
            default:
                layer[i] = ctx_with_timeout(c, 3600 * CTX_SECOND);
                cancelable[i] = true;
                break;
            }
            assert_non_null(layer[i]);
            c = layer[i];
        }
        ctx_t *leaf = layer[LAYERS - 1];
        assert_int_equal(ctx_err(leaf), 0);
        for (int i = 0; i < LAYERS; i++)
            if (keys[i])
                assert_ptr_equal(ctx_value(leaf, keys[i]), &layer[i]);
        int k;
        do
            k = (int)(t_rand(&seed) % LAYERS);
        while (!cancelable[k]);
        ctx_cancel(layer[k]);
        assert_int_equal(ctx_err(leaf), CTX_CANCELED);
        for (int i = 0; i < LAYERS; i++)
            assert_int_equal(ctx_err(layer[i]), i >= k ? CTX_CANCELED : 0);
        for (int i = LAYERS - 1; i >= 0; i--)
            if (keys[i])
                assert_ptr_equal(ctx_value(leaf, keys[i]), &layer[i]);
        for (int i = 0; i < LAYERS; i++) { /* parents first: C2 */
            ctx_release(layer[i]);
            free(keys[i]);
        }
    }
}

/* ---- causes (79-92) --------------------------------------------------- */

static void test_cause_basics(void **state)
{
    ctx_t *a = ctx_with_cancel(ctx_background());
    assert_int_equal(ctx_cause(a), 0); /* 79 */
    ctx_cancel(a);                     /* 80 */
    assert_int_equal(ctx_err(a), CTX_CANCELED);
    assert_int_equal(ctx_cause(a), CTX_CANCELED);
    ctx_t *b = ctx_with_cancel(ctx_background());
    ctx_cancel_cause(b, 700); /* 81 */
    assert_int_equal(ctx_err(b), CTX_CANCELED);
    assert_int_equal(ctx_cause(b), 700);
    ctx_t *c = ctx_with_cancel(ctx_background());
    ctx_cancel_cause(c, 0); /* 82 */
    assert_int_equal(ctx_err(c), CTX_CANCELED);
    assert_int_equal(ctx_cause(c), CTX_CANCELED);
    ctx_release(a);
    ctx_release(b);
    ctx_release(c);
}

/* ctx_expire_cause: the error is DEADLINE_EXCEEDED for the node and every
 * descendant (a value node included), the cause is kept, the deadline timer
 * is disarmed, and a later cancel or expiry changes nothing. */
static void test_expire_cause(void **state)
{
    ctx_t *p = ctx_with_timeout(ctx_background(), 3600 * CTX_SECOND);
    ctx_t *c = ctx_with_cancel(p);
    static int key;
    ctx_t *v = ctx_with_value(c, &key, "x", NULL);
    assert_int_equal(ctx_debug_timers(), 1);
    ctx_expire_cause(p, 910);
    assert_int_equal(ctx_err(p), CTX_DEADLINE_EXCEEDED);
    assert_int_equal(ctx_err(c), CTX_DEADLINE_EXCEEDED);
    assert_int_equal(ctx_err(v), CTX_DEADLINE_EXCEEDED);
    assert_int_equal(ctx_cause(v), 910);
    assert_int_equal(ctx_wait(v, 0), CTX_DEADLINE_EXCEEDED);
    assert_int_equal(ctx_debug_timers(), 0);
    ctx_cancel_cause(p, 911);
    ctx_expire_cause(c, 912);
    assert_int_equal(ctx_err(p), CTX_DEADLINE_EXCEEDED);
    assert_int_equal(ctx_cause(c), 910);
    /* a cancelled context stays cancelled */
    ctx_t *d = ctx_with_cancel(ctx_background());
    ctx_cancel_cause(d, 913);
    ctx_expire_cause(d, 914);
    assert_int_equal(ctx_err(d), CTX_CANCELED);
    assert_int_equal(ctx_cause(d), 913);
    ctx_expire_cause(NULL, 1);
    ctx_expire_cause(ctx_background(), 1); /* no cancel function: no-op */
    assert_int_equal(ctx_err(ctx_background()), 0);
    ctx_release(d);
    ctx_release(v);
    ctx_release(c);
    ctx_release(p);
}

static void test_cause_first_cancel_wins(void **state)
{
    /* 83: parent first */
    ctx_t *p = ctx_with_cancel(ctx_background());
    ctx_t *c = ctx_with_cancel(p);
    ctx_cancel_cause(p, 801);
    ctx_cancel_cause(c, 802);
    assert_int_equal(ctx_cause(c), 801);
    ctx_release(c);
    ctx_release(p);
    /* 84: child first */
    p = ctx_with_cancel(ctx_background());
    c = ctx_with_cancel(p);
    ctx_cancel_cause(c, 802);
    ctx_cancel_cause(p, 801);
    assert_int_equal(ctx_cause(c), 802);
    assert_int_equal(ctx_cause(p), 801);
    ctx_release(c);
    ctx_release(p);
    /* 85: plain child of a cause parent */
    p = ctx_with_cancel(ctx_background());
    c = ctx_with_cancel(p);
    ctx_cancel_cause(p, 851);
    ctx_cancel(c);
    assert_int_equal(ctx_cause(c), 851);
    ctx_release(c);
    ctx_release(p);
    p = ctx_with_cancel(ctx_background());
    c = ctx_with_cancel(p);
    ctx_cancel(c);
    ctx_cancel_cause(p, 851);
    assert_int_equal(ctx_cause(c), CTX_CANCELED);
    ctx_release(c);
    ctx_release(p);
    /* 86: cause child of a plain parent */
    p = ctx_with_cancel(ctx_background());
    c = ctx_with_cancel(p);
    ctx_cancel(p);
    ctx_cancel_cause(c, 861);
    assert_int_equal(ctx_cause(c), CTX_CANCELED);
    ctx_release(c);
    ctx_release(p);
    p = ctx_with_cancel(ctx_background());
    c = ctx_with_cancel(p);
    ctx_cancel_cause(c, 861);
    ctx_cancel(p);
    assert_int_equal(ctx_cause(c), 861);
    assert_int_equal(ctx_cause(p), CTX_CANCELED);
    ctx_release(c);
    ctx_release(p);
}

static void test_cause_timers(void **state)
{
    /* 87 */
    ctx_t *t = ctx_with_timeout(ctx_background(), CTX_MS);
    assert_int_equal(ctx_wait(t, T_LONG), CTX_DEADLINE_EXCEEDED);
    assert_int_equal(ctx_cause(t), CTX_DEADLINE_EXCEEDED);
    ctx_cancel(t); /* 47 */
    assert_int_equal(ctx_err(t), CTX_DEADLINE_EXCEEDED);
    assert_int_equal(ctx_cause(t), CTX_DEADLINE_EXCEEDED);
    ctx_release(t);
    t = ctx_with_timeout(ctx_background(), 3600 * CTX_SECOND);
    ctx_cancel(t);
    assert_int_equal(ctx_err(t), CTX_CANCELED);
    assert_int_equal(ctx_cause(t), CTX_CANCELED);
    ctx_release(t);
    /* 88 */
    t = ctx_with_timeout_cause(ctx_background(), CTX_MS, 880);
    assert_int_equal(ctx_wait(t, T_LONG), CTX_DEADLINE_EXCEEDED);
    assert_int_equal(ctx_cause(t), 880);
    ctx_release(t);
    t = ctx_with_deadline_cause(ctx_background(), ctx_now() + CTX_MS, 881);
    assert_int_equal(ctx_wait(t, T_LONG), CTX_DEADLINE_EXCEEDED);
    assert_int_equal(ctx_cause(t), 881);
    ctx_release(t);
    t = ctx_with_timeout_cause(ctx_background(), 3600 * CTX_SECOND, 882);
    ctx_cancel(t);
    assert_int_equal(ctx_err(t), CTX_CANCELED);
    assert_int_equal(ctx_cause(t), CTX_CANCELED);
    ctx_release(t);
    t = ctx_with_timeout_cause(ctx_background(), 3600 * CTX_SECOND, 882);
    ctx_cancel_cause(t, 883); /* works on every cancelable context */
    assert_int_equal(ctx_cause(t), 883);
    ctx_release(t);
    /* 89: expired child keeps its reason when the parent is cancelled */
    ctx_t *p = ctx_with_cancel(ctx_background());
    t = ctx_with_timeout_cause(p, CTX_MS, 890);
    assert_int_equal(ctx_wait(t, T_LONG), CTX_DEADLINE_EXCEEDED);
    ctx_cancel_cause(p, 891);
    assert_int_equal(ctx_err(t), CTX_DEADLINE_EXCEEDED);
    assert_int_equal(ctx_cause(t), 890);
    ctx_release(t);
    ctx_release(p);
    /* 90: live timer child of a parent cancelled with a cause */
    p = ctx_with_cancel(ctx_background());
    t = ctx_with_timeout_cause(p, 3600 * CTX_SECOND, 900);
    ctx_cancel_cause(p, 901);
    assert_int_equal(ctx_err(t), CTX_CANCELED);
    assert_int_equal(ctx_cause(t), 901);
    ctx_release(t);
    ctx_release(p);
}

static void test_cause_through_value_nodes(void **state)
{
    /* 91 */
    ctx_t *p = ctx_with_cancel(ctx_background());
    ctx_t *v = ctx_with_value(p, &key_a, NULL, NULL);
    ctx_t *vv = ctx_with_value(v, &key_a, NULL, NULL);
    ctx_t *c = ctx_with_cancel(vv);
    assert_int_equal(ctx_cause(vv), 0);
    ctx_cancel_cause(p, 910);
    assert_int_equal(ctx_cause(v), 910);
    assert_int_equal(ctx_cause(vv), 910);
    assert_int_equal(ctx_cause(c), 910);
    assert_int_equal(ctx_err(vv), CTX_CANCELED);
    ctx_release(c);
    ctx_release(vv);
    ctx_release(v);
    ctx_release(p);
    p = ctx_with_cancel(ctx_background());
    v = ctx_with_value(p, &key_a, NULL, NULL);
    ctx_cancel(p);
    assert_int_equal(ctx_cause(v), CTX_CANCELED);
    ctx_release(v);
    ctx_release(p);
}

/* ---- 10, 38, C14: Err, Cause and Done become visible together ---------- */

struct pub_race {
    ctx_t *c;
    int fd;
    _Atomic int go;
    int cause;
};

static void *err_poller(void *arg)
{
    struct pub_race *r = arg;
    int64_t end = t_mono() + T_LONG;
    while (!atomic_load(&r->go) && t_mono() < end)
        ;
    int e = 0;
    while ((e = ctx_err(r->c)) == 0 && t_mono() < end)
        ;
    T_CHECK(e == CTX_CANCELED);
    T_CHECK(ctx_wait(r->c, 0) == CTX_CANCELED);
    T_CHECK(fd_readable(r->fd)); /* 10 */
    T_CHECK(ctx_cause(r->c) == r->cause);
    return NULL;
}

static void *cause_poller(void *arg)
{
    struct pub_race *r = arg;
    int64_t end = t_mono() + T_LONG;
    while (!atomic_load(&r->go) && t_mono() < end)
        ;
    int c;
    while ((c = ctx_cause(r->c)) == 0 && t_mono() < end)
        ;
    T_CHECK(c == r->cause); /* 38: nothing in between */
    T_CHECK(ctx_err(r->c) == CTX_CANCELED);
    return NULL;
}

static void test_err_cause_done_race(void **state)
{
    const int n = T_SCALE(3000, 300);
    for (int i = 0; i < n; i++) {
        struct pub_race r = {.cause = 1000 + i};
        ctx_t *p = ctx_with_cancel(ctx_background());
        r.c = ctx_with_value(p, &key_a, NULL, NULL);
        r.fd = ctx_done_fd(r.c);
        assert_true(r.fd >= 0);
        pthread_t a = t_thread(err_poller, &r, 0);
        pthread_t b = t_thread(cause_poller, &r, 0);
        atomic_store(&r.go, 1);
        ctx_cancel_cause(p, r.cause);
        t_join(a);
        t_join(b);
        ctx_release(r.c);
        ctx_release(p);
    }
    T_NO_FAILURES();
}

/* ---- 12: simultaneous cancels of one context ----------------------------- */

struct multi_cancel {
    ctx_t *c;
    int cause;
    struct t_latch *start;
    int nthreads;
};

static void *multi_cancel_thread(void *arg)
{
    struct multi_cancel *m = arg;
    t_latch_add(m->start, 1);
    T_CHECK(t_latch_wait(m->start, m->nthreads, T_LONG));
    ctx_cancel_cause(m->c, m->cause);
    T_CHECK(ctx_err(m->c) == CTX_CANCELED);
    return NULL;
}

static void test_simultaneous_cancel_same_context(void **state)
{
    enum { T = 4 };
    const int n = T_SCALE(500, 100);
    for (int i = 0; i < n; i++) {
        struct t_latch start;
        t_latch_init(&start);
        ctx_t *p = ctx_with_cancel(ctx_background());
        ctx_t *c = ctx_with_cancel(p);
        struct multi_cancel m[T];
        pthread_t th[T];
        for (int k = 0; k < T; k++) {
            m[k] = (struct multi_cancel){p, 2000 + k, &start, T};
            th[k] = t_thread(multi_cancel_thread, &m[k], 0);
        }
        for (int k = 0; k < T; k++)
            t_join(th[k]);
        int cause = ctx_cause(p);
        assert_true(cause >= 2000 && cause < 2000 + T);
        assert_int_equal(ctx_cause(c), cause);
        assert_int_equal(ctx_debug_children(p), 0);
        ctx_release(c);
        ctx_release(p);
        t_latch_destroy(&start);
    }
    T_NO_FAILURES();
}

/* ---- 14: every observer concurrently with cancel and release ---------- */

struct observers {
    ctx_t *c;
    _Atomic int stop;
};

static void *observer_thread(void *arg)
{
    struct observers *o = arg;
    char buf[128];
    int last = 0;
    for (long i = 0; i < 2000000 && !atomic_load(&o->stop); i++) {
        int e = ctx_err(o->c);
        T_CHECK(e == 0 || e == CTX_CANCELED);
        T_CHECK(last == 0 || e == last); /* 9: never changes once set */
        last = e;
        T_CHECK(ctx_value(o->c, &key_a) == &key_a);
        T_CHECK(ctx_deadline(o->c, NULL));
        ctx_format(o->c, buf, sizeof buf);
        ctx_t *k = ctx_with_cancel(o->c);
        T_CHECK(k != NULL);
        ctx_release(ctx_retain(o->c));
        ctx_release(k);
        if (e)
            break;
    }
    return NULL;
}

static void test_concurrent_methods(void **state)
{
    const int n = T_SCALE(200, 40);
    for (int i = 0; i < n; i++) {
        ctx_t *t = ctx_with_timeout(ctx_background(), 3600 * CTX_SECOND);
        struct observers o = {.c = ctx_with_value(t, &key_a, &key_a, NULL)};
        pthread_t a = t_thread(observer_thread, &o, 0);
        pthread_t b = t_thread(observer_thread, &o, 0);
        ctx_t *own = ctx_with_cancel(o.c);
        ctx_cancel(t);
        ctx_release(own);
        atomic_store(&o.stop, 1);
        t_join(a);
        t_join(b);
        assert_int_equal(ctx_debug_children(t), 0);
        ctx_release(o.c);
        ctx_release(t);
    }
    T_NO_FAILURES();
}

/* ---- 22: child created while the parent is cancelled ------------------ */

struct create_race {
    ctx_t *p;
    ctx_t *child;
    _Atomic int go;
};

static void *create_child_thread(void *arg)
{
    struct create_race *r = arg;
    int64_t end = t_mono() + T_LONG;
    while (!atomic_load(&r->go) && t_mono() < end)
        ;
    r->child = ctx_with_cancel(r->p);
    return NULL;
}

static void test_create_while_parent_canceled(void **state)
{
    const int n = T_SCALE(2000, 300);
    for (int i = 0; i < n; i++) {
        struct create_race r = {.p = ctx_with_cancel(ctx_background())};
        pthread_t t = t_thread(create_child_thread, &r, 0);
        atomic_store(&r.go, 1);
        ctx_cancel_cause(r.p, 2200);
        t_join(t);
        assert_non_null(r.child);
        assert_int_equal(ctx_err(r.child), CTX_CANCELED);
        assert_int_equal(ctx_cause(r.child), 2200);
        assert_int_equal(ctx_debug_children(r.p), 0);
        ctx_release(r.child);
        ctx_release(r.p);
    }
}

/* ---- 35, C7: interlocked cancels -------------------------------------- */

struct interlock {
    ctx_t *parent, *child;
};

static void *interlock_thread(void *arg)
{
    struct interlock *x = arg;
    T_CHECK(ctx_wait(x->parent, T_LONG) == CTX_CANCELED);
    ctx_cancel(x->child);
    return NULL;
}

static void test_interlocked_cancels(void **state)
{
    const int n = T_SCALE(1000, 200);
    for (int i = 0; i < n; i++) {
        struct interlock x;
        x.parent = ctx_with_cancel(ctx_background());
        x.child = ctx_with_cancel(x.parent);
        ctx_t *grand = ctx_with_cancel(x.child);
        pthread_t t = t_thread(interlock_thread, &x, 0);
        ctx_cancel(x.parent);
        t_join(t);
        assert_int_equal(ctx_err(x.child), CTX_CANCELED);
        assert_int_equal(ctx_err(grand), CTX_CANCELED);
        ctx_release(grand);
        ctx_release(x.child);
        ctx_release(x.parent);
    }
    T_NO_FAILURES();
}

/* ---- 36, C7: a tree whose nodes are all cancelled at once -------------- */

enum { TREE = 101, TREE_THREADS = 4 };

struct tree_race {
    ctx_t *node[TREE];
    int order[TREE];
    _Atomic int next;
    struct t_latch start;
};

static void *tree_cancel_thread(void *arg)
{
    struct tree_race *r = arg;
    t_latch_add(&r->start, 1);
    T_CHECK(t_latch_wait(&r->start, TREE_THREADS, T_LONG));
    for (int i; (i = atomic_fetch_add(&r->next, 1)) < TREE;)
        ctx_cancel(r->node[r->order[i]]);
    return NULL;
}

static void test_simultaneous_cancels_tree(void **state)
{
    const int n = T_SCALE(400, 60);
    uint64_t seed = 42;
    for (int it = 0; it < n; it++) {
        struct tree_race r = {.next = 0};
        t_latch_init(&r.start);
        r.node[0] = ctx_with_cancel(ctx_background());
        for (int i = 1; i < TREE; i++) /* node i's parent: (i-1)/4 */
            r.node[i] = ctx_with_cancel(r.node[(i - 1) / 4]);
        for (int i = 0; i < TREE; i++)
            r.order[i] = i;
        for (int i = TREE - 1; i > 0; i--) {
            int j = (int)(t_rand(&seed) % (uint64_t)(i + 1));
            int tmp = r.order[i];
            r.order[i] = r.order[j];
            r.order[j] = tmp;
        }
        pthread_t th[TREE_THREADS];
        for (int k = 0; k < TREE_THREADS; k++)
            th[k] = t_thread(tree_cancel_thread, &r, 0);
        for (int k = 0; k < TREE_THREADS; k++)
            t_join(th[k]);
        for (int i = 0; i < TREE; i++) {
            assert_int_equal(ctx_err(r.node[i]), CTX_CANCELED);
            assert_int_equal(ctx_debug_children(r.node[i]), 0);
        }
        for (int i = TREE - 1; i >= 0; i--)
            ctx_release(r.node[i]);
        t_latch_destroy(&r.start);
    }
    T_NO_FAILURES();
}

/* ---- 37: common parent, concurrent create/cancel, value above ---------- */

struct common_parent {
    ctx_t *p;
    int iters;
};

static void *common_parent_thread(void *arg)
{
    struct common_parent *cp = arg;
    for (int i = 0; i < cp->iters; i++) {
        ctx_t *c = ctx_with_cancel(cp->p);
        T_CHECK(c != NULL);
        if (!c)
            break;
        T_CHECK(ctx_value(c, &key_a) == (void *)&key_a);
        ctx_cancel(c);
        T_CHECK(ctx_err(c) == CTX_CANCELED);
        ctx_release(c);
    }
    return NULL;
}

static void test_common_parent_cancel(void **state)
{
    enum { T = 4 };
    ctx_t *root = ctx_with_value(ctx_background(), &key_a, &key_a, NULL);
    struct common_parent cp = {ctx_with_cancel(root), T_SCALE(20000, 2000)};
    pthread_t th[T];
    for (int k = 0; k < T; k++)
        th[k] = t_thread(common_parent_thread, &cp, 0);
    for (int k = 0; k < T; k++)
        t_join(th[k]);
    T_NO_FAILURES();
    assert_int_equal(ctx_debug_children(cp.p), 0);
    assert_int_equal(ctx_err(cp.p), 0);
    ctx_release(cp.p);
    ctx_release(root);
}

/* ---- shared parent: 8 threads create, cancel and release children of one
 * parent while it is cancelled (the sharded children lists) ------------- */

enum { SP_THREADS = 8, SP_HELD = 16, SP_PCAUSE = 7001, SP_OWNCAUSE = 7002 };

struct shared_parent {
    ctx_t *p;
    _Atomic long ops;     /* children made so far, all threads */
    _Atomic int cancelled; /* ctx_cancel_cause(p) has returned */
};

/* Makes `p` grow its shards deterministically: a registration that finds
 * p's main lock taken shards p.  Holds the lock until a second thread's
 * registration is seen waiting on it (lock word 2), then lets it go. */
static void *sp_one_child(void *arg)
{
    ctx_release(ctx_with_cancel(arg));
    return NULL;
}

static void force_shards(ctx_t *p)
{
    ctx__lock(&p->u.c.lock);
    pthread_t t = t_thread(sp_one_child, p, 0);
    int64_t end = t_mono() + T_LONG;
    while (atomic_load(&p->u.c.lock) != 2 && t_mono() < end)
        sched_yield();
    ctx__unlock(&p->u.c.lock);
    t_join(t);
    assert_non_null(ctx__shards_of(p));
}

static void sp_check_done(ctx_t *k, bool own)
{
    int err = ctx_err(k), cause = ctx_cause(k);
    if (own) /* cancelled by us, maybe after the parent: either cause */
        T_CHECK(err == CTX_CANCELED &&
                (cause == SP_OWNCAUSE || cause == SP_PCAUSE));
    else
        T_CHECK(err == CTX_CANCELED && cause == SP_PCAUSE);
}

static void *shared_parent_thread(void *arg)
{
    struct shared_parent *sp = arg;
    ctx_t *held[SP_HELD] = {0};
    bool own[SP_HELD] = {0};
    unsigned seed = (unsigned)(uintptr_t)&held;
    int64_t end = t_mono() + T_LONG;
    long after_done = 0;
    for (long i = 0; after_done < 64 && t_mono() < end; i++) {
        /* Err may be set before the walk reaches every list; once the
         * cancel has returned, every child is done. */
        bool was_done = atomic_load(&sp->cancelled) != 0;
        if (was_done)
            T_CHECK(ctx_err(sp->p) == CTX_CANCELED);
        seed = seed * 1103515245u + 12345u;
        unsigned r = seed >> 16;
        ctx_t *k = (r & 1) ? ctx_with_cancel(sp->p)
                           : ctx_with_timeout(sp->p, 3600 * CTX_SECOND);
        T_CHECK(k != NULL);
        if (!k)
            break;
        atomic_fetch_add(&sp->ops, 1);
        if (was_done) { /* born done with the parent's error and cause */
            sp_check_done(k, false);
            after_done++;
        }
        ctx_t *g = (r & 6) == 0 ? ctx_with_cancel(k) : NULL; /* grandchild */
        bool cancel_own = (r & 8) != 0;
        if (cancel_own)
            ctx_cancel_cause(k, SP_OWNCAUSE);
        if (g) {
            /* Our cancel finished k's subtree if it was the one that
             * marked k; if the parent's walk marked k first, that walk
             * finishes k's children (by the time it returns). */
            T_CHECK(!cancel_own || ctx_cause(k) != SP_OWNCAUSE ||
                    ctx_err(g) == CTX_CANCELED);
            ctx_release(g);
        }
        int slot = (int)((r >> 4) % SP_HELD);
        if (held[slot]) {
            if (was_done)
                sp_check_done(held[slot], own[slot]);
            ctx_release(held[slot]);
        }
        held[slot] = k;
        own[slot] = cancel_own;
    }
    /* The parent's cancel has returned: every child we hold is done. */
    T_CHECK(atomic_load(&sp->cancelled));
    for (int j = 0; j < SP_HELD; j++) {
        if (held[j]) {
            sp_check_done(held[j], own[j]);
            ctx_release(held[j]);
        }
    }
    ctx_release(sp->p); /* the thread's own reference */
    return NULL;
}

static void test_shared_parent_cancel_under_load(void **state)
{
    const int iters = T_SCALE(60, 8);
    for (int it = 0; it < iters; it++) {
        struct shared_parent sp = {.p = ctx_with_cancel(ctx_background())};
        assert_non_null(sp.p);
        if (it % 4 < 2)
            force_shards(sp.p); /* else: sharded, or not, by contention */
        pthread_t th[SP_THREADS];
        for (int k = 0; k < SP_THREADS; k++) {
            ctx_retain(sp.p); /* the thread's, released by it */
            th[k] = t_thread(shared_parent_thread, &sp, 0);
        }
        /* Cancel once the threads are under way. */
        assert_true(t_wait_atomic_ge(&sp.ops, T_SCALE(4000, 400), T_LONG));
        ctx_cancel_cause(sp.p, SP_PCAUSE);
        atomic_store(&sp.cancelled, 1);
        assert_int_equal(ctx_debug_children(sp.p), 0);
        bool drop_first = it & 1;
        if (drop_first) /* the last child or thread frees the parent */
            ctx_release(sp.p);
        for (int k = 0; k < SP_THREADS; k++)
            t_join(th[k]);
        T_NO_FAILURES();
        if (!drop_first) {
            assert_int_equal(ctx_debug_children(sp.p), 0);
            assert_int_equal(ctx_cause(sp.p), SP_PCAUSE);
            ctx_release(sp.p);
        }
    }
}

/* Children of one parent made by many threads all get cancelled, and a
 * sharded parent with live children is freed by its last child. */
static void *sp_make_children(void *arg)
{
    ctx_t **out = arg;
    for (int i = 0; i < 64; i++)
        out[i] = ctx_with_cancel(out[64]);
    return NULL;
}

static void test_shared_parent_children_outlive_it(void **state)
{
    ctx_t *p = ctx_with_cancel(ctx_background());
    force_shards(p);
    ctx_t *kids[SP_THREADS][65];
    pthread_t th[SP_THREADS];
    for (int k = 0; k < SP_THREADS; k++) {
        kids[k][64] = p;
        th[k] = t_thread(sp_make_children, kids[k], 0);
    }
    for (int k = 0; k < SP_THREADS; k++)
        t_join(th[k]);
    assert_int_equal(ctx_debug_children(p), SP_THREADS * 64);
    ctx_release(p); /* the children keep it alive */
    ctx_cancel(kids[0][0]);
    assert_int_equal(ctx_err(kids[1][0]), 0);
    for (int k = 0; k < SP_THREADS; k++)
        for (int i = 0; i < 64; i++) {
            assert_non_null(kids[k][i]);
            ctx_release(kids[k][i]);
        }
}

/* ---- C4: cancel racing release ---------------------------------------- */

enum { C4_KIDS = 32 };

struct rel_race {
    ctx_t *kids[C4_KIDS];
    _Atomic int go;
};

static void *release_kids_thread(void *arg)
{
    struct rel_race *r = arg;
    int64_t end = t_mono() + T_LONG;
    while (!atomic_load(&r->go) && t_mono() < end)
        ;
    for (int i = 0; i < C4_KIDS; i++)
        ctx_release(r->kids[i]);
    return NULL;
}

static void test_cancel_races_release(void **state)
{
    const int n = T_SCALE(2000, 300);
    for (int it = 0; it < n; it++) {
        struct rel_race r = {.go = 0};
        ctx_t *p = ctx_with_cancel(ctx_background());
        for (int i = 0; i < C4_KIDS; i++) {
            r.kids[i] = (i & 1) ? ctx_with_cancel(p)
                                : ctx_with_timeout(p, 3600 * CTX_SECOND);
            if (i % 4 == 0) /* some with an fd, freed under the cancel */
                assert_true(ctx_done_fd(r.kids[i]) >= 0);
        }
        pthread_t t = t_thread(release_kids_thread, &r, 0);
        atomic_store(&r.go, 1);
        ctx_cancel(p);
        t_join(t);
        assert_int_equal(ctx_debug_children(p), 0);
        ctx_release(p);
    }
}

/* ---- C5: deep chains on a small stack ----------------------------------- */

struct deep {
    long depth;
    int order; /* ctx__set_cancel_order() argument */
    int fail;
};

static void *deep_chain_thread(void *arg)
{
    struct deep *d = arg;
    int64_t dl = ctx_now() + 3600 * CTX_SECOND;
    ctx_t *root = ctx_with_deadline(ctx_background(), dl);
    ctx_t *top = ctx_with_value(root, &key_a, &key_a, NULL);
    ctx_t *c = ctx_retain(top);
    for (long i = 0; i < d->depth; i++) {
        ctx_t *n = ctx_with_cancel(c);
        if (!n) {
            d->fail = __LINE__;
            ctx_release(c);
            goto out;
        }
        ctx_release(c); /* the child owns its parent: a pure chain */
        c = n;
    }
    int64_t got = 0;
    if (ctx_value(c, &key_a) != &key_a)
        d->fail = __LINE__;
    if (!ctx_deadline(c, &got) || got != dl)
        d->fail = __LINE__;
    if (ctx_err(c) != 0)
        d->fail = __LINE__;
    ctx_cancel_cause(root, 5005);
    if (ctx_err(c) != CTX_CANCELED || ctx_cause(c) != 5005)
        d->fail = __LINE__;
    if (ctx_debug_children(root) != 0)
        d->fail = __LINE__;
    ctx_release(c); /* frees the whole chain, iteratively */
out:
    ctx_release(top);
    ctx_release(root);
    return NULL;
}

static void *deep_release_live_thread(void *arg)
{
    /* Release a live chain leaf-first (no cancel): unlink cascade. */
    struct deep *d = arg;
    ctx_t *root = ctx_with_cancel(ctx_background());
    ctx_t *c = ctx_retain(root);
    for (long i = 0; i < d->depth && !d->fail; i++) {
        ctx_t *n = (i % 2) ? ctx_with_cancel(c)
                           : ctx_with_value(c, &key_a, NULL, NULL);
        if (!n)
            d->fail = __LINE__;
        else {
            ctx_release(c);
            c = n;
        }
    }
    ctx_release(c);
    if (ctx_debug_children(root) != 0 || ctx_err(root) != 0)
        d->fail = __LINE__;
    ctx_release(root);
    return NULL;
}

static void test_deep_chain_1e5(void **state)
{
    struct deep d = {.depth = 100000};
    t_run_small_stack(deep_chain_thread, &d);
    assert_int_equal(d.fail, 0);
    t_run_small_stack(deep_release_live_thread, &d);
    assert_int_equal(d.fail, 0);
}

static void test_deep_chain_1e6(void **state)
{
    struct deep d = {.depth = T_SCALE(1000000, 100000)};
    t_run_small_stack(deep_chain_thread, &d);
    assert_int_equal(d.fail, 0);
}

static void test_deep_chain_depth_first(void **state)
{
    /* The bench hook's depth-first order must be iterative too. */
    struct deep d = {.depth = 100000, .order = 1};
    ctx__set_cancel_order(1);
    t_run_small_stack(deep_chain_thread, &d);
    ctx__set_cancel_order(0);
    assert_int_equal(d.fail, 0);
}

static void test_cancel_order_same_result(void **state)
{
    for (int order = 0; order < 2; order++) {
        ctx__set_cancel_order(order);
        ctx_t *n[TREE];
        n[0] = ctx_with_cancel(ctx_background());
        for (int i = 1; i < TREE; i++)
            n[i] = (i % 3 == 0)
                ? ctx_with_timeout(n[(i - 1) / 4], 3600 * CTX_SECOND)
                : ctx_with_cancel(n[(i - 1) / 4]);
        ctx_cancel_cause(n[1], 77);
        ctx_cancel_cause(n[0], 78);
        for (int i = 0; i < TREE; i++) {
            int want = 78;
            for (int j = i; j > 0; j = (j - 1) / 4)
                if (j == 1)
                    want = 77;
            assert_int_equal(ctx_err(n[i]), CTX_CANCELED);
            assert_int_equal(ctx_cause(n[i]), want);
            assert_int_equal(ctx_debug_children(n[i]), 0);
        }
        for (int i = TREE - 1; i >= 0; i--)
            ctx_release(n[i]);
    }
    ctx__set_cancel_order(0);
}

/* ---- C6: wide fan-out ---------------------------------------------------- */

static void test_wide_fanout_cancel_parent(void **state)
{
    const long n = T_SCALE(100000, 20000);
    ctx_t **kids = malloc(sizeof *kids * (size_t)n);
    assert_non_null(kids);
    ctx_t *p = ctx_with_cancel(ctx_background());
    for (long i = 0; i < n; i++) {
        kids[i] = ctx_with_cancel(p);
        assert_non_null(kids[i]);
    }
    assert_int_equal(ctx_debug_children(p), n);
    ctx_cancel(p);
    assert_int_equal(ctx_debug_children(p), 0);
    for (long i = 0; i < n; i++) {
        if (ctx_err(kids[i]) != CTX_CANCELED)
            fail_msg("child %ld not cancelled", i);
        ctx_release(kids[i]);
    }
    ctx_release(p);
    free(kids);
}

/* Creates n children, cancels them one by one in random order; returns
 * the time the cancels took. */
static int64_t fanout_random_cancel(long n, uint64_t seed)
{
    ctx_t **kids = malloc(sizeof *kids * (size_t)n);
    assert_non_null(kids);
    ctx_t *p = ctx_with_cancel(ctx_background());
    for (long i = 0; i < n; i++)
        kids[i] = ctx_with_cancel(p);
    for (long i = n - 1; i > 0; i--) {
        long j = (long)(t_rand(&seed) % (uint64_t)(i + 1));
        ctx_t *tmp = kids[i];
        kids[i] = kids[j];
        kids[j] = tmp;
    }
    int64_t t0 = t_mono();
    for (long i = 0; i < n; i++)
        ctx_cancel(kids[i]);
    int64_t dt = t_mono() - t0;
    assert_int_equal(ctx_debug_children(p), 0);
    assert_int_equal(ctx_err(p), 0);
    for (long i = 0; i < n; i++)
        ctx_release(kids[i]);
    ctx_release(p);
    free(kids);
    return dt;
}

static void test_wide_fanout_random_cancel_linear(void **state)
{
    /* O(1) removal: 5x the children takes about 5x the time (up to ~15x
     * when the bigger set no longer fits in cache, and ~70x was seen on a
     * machine loaded with 9 other test processes); a removal that scans the
     * set (O(n^2) total) takes 25x or more, and seconds: a removal made to
     * walk the list took 0.40 s and 18.9 s here.  So the bound sits below
     * 25x with a large fixed slack: it catches a quadratic removal, not a
     * slow machine.  Best of three runs of each size. */
    const long small = T_SCALE(20000, 4000), big = small * 5;
    int64_t ts = INT64_MAX, tb = INT64_MAX;
    for (int r = 0; r < 3; r++) {
        int64_t a = fanout_random_cancel(small, 7 + (uint64_t)r);
        int64_t b = fanout_random_cancel(big, 11 + (uint64_t)r);
        if (a < ts)
            ts = a;
        if (b < tb)
            tb = b;
    }
    if (tb > 20 * ts + 250 * CTX_MS)
        fail_msg("cancelling %ld children took %lld ns, %ld took %lld ns: "
                 "not linear", small, (long long)ts, big, (long long)tb);
}

/* ---- 109: ExampleWithCancel, a producer that exits on cancel ------------ */

struct producer {
    ctx_t *c;
    struct t_latch q; /* count = last value produced */
    _Atomic long consumed;
    int exit_err;
};

static void *producer_thread(void *arg)
{
    struct producer *pr = arg;
    for (long n = 1; n < 1000000; n++) {
        /* "select { case <-ctx.Done(): return; case dst <- n: }" */
        while (atomic_load(&pr->consumed) < n - 1) {
            if (ctx_wait(pr->c, CTX_MS) != 0) {
                pr->exit_err = ctx_err(pr->c);
                return NULL;
            }
        }
        t_latch_add(&pr->q, 1);
    }
    return NULL;
}

static void test_example_with_cancel_producer(void **state)
{
    struct producer pr = {.c = ctx_with_cancel(ctx_background())};
    t_latch_init(&pr.q);
    pthread_t t = t_thread(producer_thread, &pr, 0);
    for (long want = 1; want <= 5; want++) {
        assert_true(t_latch_wait(&pr.q, want, T_LONG));
        atomic_store(&pr.consumed, want);
    }
    ctx_cancel(pr.c);
    t_join(t); /* the producer exits: nothing leaks */
    assert_int_equal(pr.exit_err, CTX_CANCELED);
    assert_true(t_latch_get(&pr.q) <= 6);
    t_latch_destroy(&pr.q);
    ctx_release(pr.c);
}

static int teardown_quiesce(void **state)
{
    return t_quiesce(T_LONG) ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_cancel_propagates_synchronously, teardown_quiesce),
        cmocka_unit_test_teardown(test_children_of_canceled_parent_born_done, teardown_quiesce),
        cmocka_unit_test_teardown(test_cancel_idempotent, teardown_quiesce),
        cmocka_unit_test_teardown(test_child_cancel_isolated, teardown_quiesce),
        cmocka_unit_test_teardown(test_layers_cancel, teardown_quiesce),
        cmocka_unit_test_teardown(test_cause_basics, teardown_quiesce),
        cmocka_unit_test_teardown(test_cause_first_cancel_wins, teardown_quiesce),
        cmocka_unit_test_teardown(test_expire_cause, teardown_quiesce),
        cmocka_unit_test_teardown(test_cause_timers, teardown_quiesce),
        cmocka_unit_test_teardown(test_cause_through_value_nodes, teardown_quiesce),
        cmocka_unit_test_teardown(test_err_cause_done_race, teardown_quiesce),
        cmocka_unit_test_teardown(test_simultaneous_cancel_same_context, teardown_quiesce),
        cmocka_unit_test_teardown(test_concurrent_methods, teardown_quiesce),
        cmocka_unit_test_teardown(test_create_while_parent_canceled, teardown_quiesce),
        cmocka_unit_test_teardown(test_interlocked_cancels, teardown_quiesce),
        cmocka_unit_test_teardown(test_simultaneous_cancels_tree, teardown_quiesce),
        cmocka_unit_test_teardown(test_common_parent_cancel, teardown_quiesce),
        cmocka_unit_test_teardown(test_shared_parent_cancel_under_load, teardown_quiesce),
        cmocka_unit_test_teardown(test_shared_parent_children_outlive_it, teardown_quiesce),
        cmocka_unit_test_teardown(test_cancel_races_release, teardown_quiesce),
        cmocka_unit_test_teardown(test_deep_chain_1e5, teardown_quiesce),
        cmocka_unit_test_teardown(test_deep_chain_1e6, teardown_quiesce),
        cmocka_unit_test_teardown(test_deep_chain_depth_first, teardown_quiesce),
        cmocka_unit_test_teardown(test_cancel_order_same_result, teardown_quiesce),
        cmocka_unit_test_teardown(test_wide_fanout_cancel_parent, teardown_quiesce),
        cmocka_unit_test_teardown(test_wide_fanout_random_cancel_linear, teardown_quiesce),
        cmocka_unit_test_teardown(test_example_with_cancel_producer, teardown_quiesce),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_quiesce);
}
