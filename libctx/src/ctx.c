/*
 * ctx.c -- constructors, reference counting and the lock-free observers.
 *
 * A node is created fully initialised, then (for CANCEL nodes) linked into
 * its registry under the registry's lock; from then on `parent`, `canc`,
 * `kind`, `flags`, the value part and the deadline never change, which is
 * why ctx_value(), ctx_deadline() and ctx_err() need no lock: the caller's
 * reference keeps the whole ancestry alive (each child owns a reference on
 * its parent).
 *
 * A CANCEL child of a CANCEL parent takes its reference on the parent in
 * ctx__register() (in a shard when the parent is sharded); every other
 * node takes it here with ctx_retain().
 *
 * Release is a loop, not a recursion: freeing a node drops its reference on
 * its parent, which may free the parent, and so on up a chain of any depth.
 *
 * Global state: the two static roots, and the fault-injection countdown
 * (tests only; a relaxed load of a read-mostly word on the allocation path).
 */
#include "ctx_internal.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static struct ctx background_node = {.refs = 1, .kind = CTX_KIND_ROOT};
static struct ctx todo_node = {.refs = 1, .kind = CTX_KIND_ROOT};

ctx_t *ctx_background(void) { return &background_node; }
ctx_t *ctx_todo(void) { return &todo_node; }

/* ---- allocation with fault injection ---------------------------------- */

_Atomic long ctx__alloc_fail_countdown;

void *ctx__malloc_slow(size_t n)
{
    long left = atomic_load(&ctx__alloc_fail_countdown);
    while (left > 0) {
        if (atomic_compare_exchange_weak(&ctx__alloc_fail_countdown, &left,
                                         left - 1)) {
            if (left == 1) {
                errno = ENOMEM;
                return NULL;
            }
            break;
        }
    }
    return ctx__mc_alloc(n);
}

long ctx__test_fail_alloc(long n)
{
    return atomic_exchange(&ctx__alloc_fail_countdown, n < 0 ? 0 : n);
}

/* ---- the futex lock (Drepper, "Futexes are tricky", mutex #2) ---------- */

static void futex_wait(_Atomic uint32_t *w, uint32_t val)
{
    syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *w, int n)
{
    syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

void ctx__lock_slow(_Atomic uint32_t *l)
{
    /* Critical sections are short: spin a little before sleeping. */
    for (int i = 0; i < 100; i++) {
        uint32_t z = 0;
        if (atomic_load_explicit(l, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(l, &z, 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return;
        __builtin_ia32_pause();
    }
    while (atomic_exchange_explicit(l, 2, memory_order_acquire) != 0)
        futex_wait(l, 2);
}

void ctx__unlock_slow(_Atomic uint32_t *l)
{
    futex_wake(l, 1);
}

/* ---- construction ------------------------------------------------------ */

static struct ctx *cancel_node_new(struct ctx *parent)
{
    struct ctx *n = ctx__malloc(sizeof *n);
    if (!n)
        return NULL;
    atomic_init(&n->refs, 1);
    n->kind = CTX_KIND_CANCEL;
    atomic_init(&n->linked, 0);
    n->flags = 0;
    n->shard = 0;
    n->parent = parent;
    n->canc = n;
    atomic_init(&n->u.c.word, 0);
    atomic_init(&n->u.c.lock, 0);
    n->u.c.cause = 0;
    atomic_init(&n->u.c.heap_idx, -1);
    atomic_init(&n->u.c.kids, 0);
    n->u.c.next = n->u.c.prev = NULL;
    n->u.c.deadline = INT64_MAX;
    n->u.c.timer_cause = 0;
    atomic_init(&n->u.c.fd, -1);
    struct ctx *pc = parent->canc;
    if (pc && (pc->flags & CTX__F_DEADLINE)) {
        n->flags |= CTX__F_DEADLINE;
        n->u.c.deadline = pc->u.c.deadline;
    }
    return n;
}

/* Takes n's reference on its parent and links n under its parent's
 * registry; a node whose registry is already done is born done with the
 * registry's error and cause.  When the parent is the registry itself, the
 * registration takes the reference (maybe in a shard, see ctx_internal.h). */
static void link_or_inherit(struct ctx *n)
{
    struct ctx *reg = n->parent->canc;
    int take_ref = reg != NULL && reg == n->parent;
    if (!take_ref)
        ctx_retain(n->parent);
    if (!reg)
        return;
    int cause = 0;
    uint32_t err = ctx__register(reg, n, &cause, take_ref);
    if (err)
        ctx__cancel(n, err, cause, 0);
}

/* The timer is armed before the node is linked, so that running out of
 * memory leaves nothing to undo; a timer that fires before the link makes
 * ctx__register() leave the (done) node unlinked. */
static ctx_t *with_deadline(ctx_t *parent, int64_t deadline, int cause,
                            int has_deadline, int64_t now)
{
    if (!parent) {
        errno = EINVAL;
        return NULL;
    }
    struct ctx *n = cancel_node_new(parent);
    if (!n)
        return NULL;
    int own = has_deadline &&
              (!(n->flags & CTX__F_DEADLINE) || deadline < n->u.c.deadline);
    int arm = 0;
    if (own) {
        n->flags |= CTX__F_DEADLINE | CTX__F_OWNDL;
        n->u.c.deadline = deadline;
        n->u.c.timer_cause = cause;
        arm = deadline != INT64_MAX && deadline > (now ? now : ctx_now());
    }
    if (arm) {
        n->flags |= CTX__F_TIMER;
        if (ctx__timer_arm(n) != 0) {
            ctx__free(n);
            errno = ENOMEM;
            return NULL;
        }
    }
    link_or_inherit(n);
    if (own && !arm && deadline != INT64_MAX)
        ctx__cancel(n, CTX_DEADLINE_EXCEEDED, cause, 1);
    return n;
}

ctx_t *ctx_with_cancel(ctx_t *parent)
{
    return with_deadline(parent, 0, 0, 0, 0);
}

ctx_t *ctx_with_deadline(ctx_t *parent, int64_t deadline_ns)
{
    return with_deadline(parent, deadline_ns, 0, 1, 0);
}

ctx_t *ctx_with_deadline_cause(ctx_t *parent, int64_t deadline_ns, int cause)
{
    return with_deadline(parent, deadline_ns, cause, 1, 0);
}

static int64_t add_sat(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

ctx_t *ctx_with_timeout(ctx_t *parent, int64_t timeout_ns)
{
    int64_t now = ctx_now();
    int64_t d = timeout_ns == INT64_MAX ? INT64_MAX : add_sat(now, timeout_ns);
    return with_deadline(parent, d, 0, 1, now);
}

ctx_t *ctx_with_timeout_cause(ctx_t *parent, int64_t timeout_ns, int cause)
{
    int64_t now = ctx_now();
    int64_t d = timeout_ns == INT64_MAX ? INT64_MAX : add_sat(now, timeout_ns);
    return with_deadline(parent, d, cause, 1, now);
}

/* VALUE and WITHOUT nodes are allocated short (only the header and their
 * own part of the union); nothing ever reads the CANCEL part of them. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
static struct ctx *plain_node(ctx_t *parent, enum ctx_kind kind, size_t size)
{
    if (!parent) {
        errno = EINVAL;
        return NULL;
    }
    struct ctx *n = ctx__malloc(size);
    if (!n)
        return NULL;
    atomic_init(&n->refs, 1);
    n->kind = (uint8_t)kind;
    atomic_init(&n->linked, 0);
    n->flags = 0;
    n->shard = 0;
    n->parent = ctx_retain(parent);
    n->canc = kind == CTX_KIND_WITHOUT ? NULL : parent->canc;
    return n;
}

ctx_t *ctx_with_value(ctx_t *parent, const void *key, void *value,
                      void (*destroy)(void *value))
{
    if (!key) {
        errno = EINVAL;
        return NULL;
    }
    struct ctx *n = plain_node(parent, CTX_KIND_VALUE, CTX__VALUE_SIZE);
    if (n) {
        n->u.v.key = key;
        n->u.v.value = value;
        n->u.v.destroy = destroy;
    }
    return n;
}

ctx_t *ctx_without_cancel(ctx_t *parent)
{
    return plain_node(parent, CTX_KIND_WITHOUT, offsetof(struct ctx, u));
}
#pragma GCC diagnostic pop

/* ---- reference counting ----------------------------------------------- */

ctx_t *ctx_retain(ctx_t *c)
{
    if (c && c->kind != CTX_KIND_ROOT)
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

/* Whether the caller's reference to the CANCEL node `c` is the only one
 * and nobody can take another: other threads take references to a node
 * they hold none of only through a list it is linked in (a cancel walk,
 * ctx_walk) or the timer heap, each before it unlinks or unheaps the node
 * (release), so a node that is neither, with refs == 1 read after both
 * (acquire), is ours alone and needs no atomic decrement.  The common
 * "cancel, then release" of a leaf saves one atomic operation. */
static bool sole_owner(struct ctx *c)
{
    return c->kind == CTX_KIND_CANCEL &&
           !atomic_load_explicit(&c->linked, memory_order_acquire) &&
           atomic_load_explicit(&c->u.c.heap_idx, memory_order_acquire) < 0 &&
           atomic_load_explicit(&c->refs, memory_order_acquire) == 1;
}

void ctx_release(ctx_t *c)
{
    while (c && c->kind != CTX_KIND_ROOT) {
        uint32_t old;
        if (sole_owner(c))
            old = 1;
        else /* acq_rel rather than release + fence: same code on x86, and
              * ThreadSanitizer understands it. */
            old = atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel);
        if (old != 1) {
            /* Down to the bias of a sharded node: only children's
             * references in its shards are left; fold them into refs. */
            if (old != CTX__SHARD_BIAS + 1 || c->kind != CTX_KIND_CANCEL ||
                !ctx__shards_of(c) ||
                !ctx__shards_collapse(c))
                return;
        }
        struct ctx *parent = c->parent;
        uint8_t shard = c->shard;
        switch (c->kind) {
        case CTX_KIND_CANCEL:
            if (c->flags & CTX__F_TIMER)
                ctx__timer_disarm(c);
            /* fall through */
        case CTX_KIND_AFTER:
            if (atomic_load_explicit(&c->linked, memory_order_acquire))
                ctx__unregister(c);
            if (c->kind == CTX_KIND_CANCEL) {
                if (c->u.c.fd >= 0)
                    close(c->u.c.fd);
                ctx__shards_free(c);
            }
            break;
        case CTX_KIND_VALUE:
            if (c->u.v.destroy)
                c->u.v.destroy(c->u.v.value);
            break;
        default:
            break;
        }
        ctx__free(c);
        /* A reference counted in a live shard is given back there. */
        if ((shard & CTX__SH_REF) &&
            ctx__shard_put(parent, (shard & CTX__SH_LIST) - 1u))
            return;
        c = parent;
    }
}

/* ---- cancellation entry points ---------------------------------------- */

void ctx_cancel(ctx_t *c)
{
    if (c && c->kind == CTX_KIND_CANCEL)
        ctx__cancel(c, CTX_CANCELED, 0, 1);
}

void ctx_cancel_cause(ctx_t *c, int cause)
{
    if (c && c->kind == CTX_KIND_CANCEL)
        ctx__cancel(c, CTX_CANCELED, cause, 1);
}

void ctx_expire_cause(ctx_t *c, int cause)
{
    if (c && c->kind == CTX_KIND_CANCEL)
        ctx__cancel(c, CTX_DEADLINE_EXCEEDED, cause, 1);
}

/* ---- observers ---------------------------------------------------------- */

/* The error word of `k`, settled: while a canceller is between making the
 * done fd readable and publishing the error (CTX__PUBLISHING), wait for the
 * error, so that "the fd is readable" implies "ctx_err() is non-zero" as
 * well as the converse. */
static uint32_t settled_word(struct ctx *k)
{
    uint32_t w = atomic_load_explicit(&k->u.c.word, memory_order_acquire);
    if (__builtin_expect(w & CTX__PUBLISHING, 0))
        w = ctx__await_published(k, w);
    return w;
}

int ctx_err(ctx_t *c)
{
    struct ctx *k = c ? c->canc : NULL;
    if (!k)
        return 0;
    return (int)(settled_word(k) & CTX__ERR_MASK);
}

int ctx_cause(ctx_t *c)
{
    struct ctx *k = c ? c->canc : NULL;
    if (!k)
        return 0;
    int err = (int)(settled_word(k) & CTX__ERR_MASK);
    if (!err)
        return 0;
    return k->u.c.cause ? k->u.c.cause : err;
}

bool ctx_deadline(ctx_t *c, int64_t *deadline_ns)
{
    struct ctx *k = c ? c->canc : NULL;
    if (!k || !(k->flags & CTX__F_DEADLINE))
        return false;
    if (deadline_ns)
        *deadline_ns = k->u.c.deadline;
    return true;
}

void *ctx_value(ctx_t *c, const void *key)
{
    for (struct ctx *n = c; n; n = n->parent)
        if (n->kind == CTX_KIND_VALUE && n->u.v.key == key)
            return n->u.v.value;
    return NULL;
}

int64_t ctx_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * CTX_SECOND + ts.tv_nsec;
}

const char *ctx_strerror(int err)
{
    switch (err) {
    case 0:
        return "";
    case CTX_CANCELED:
        return "context canceled";
    case CTX_DEADLINE_EXCEEDED:
        return "context deadline exceeded";
    default:
        return "unknown context error";
    }
}

bool ctx_is_timeout(int err) { return err == CTX_DEADLINE_EXCEEDED; }

size_t ctx_debug_children(ctx_t *c)
{
    if (!c || c->kind != CTX_KIND_CANCEL)
        return 0;
    size_t n = 0;
    ctx__lock(&c->u.c.lock);
    for (struct ctx *k = ctx__main_head(c); k; k = k->u.c.next)
        n++;
    struct ctx__shards *sh = ctx__shards_of(c);
    ctx__unlock(&c->u.c.lock);
    for (unsigned i = 0; sh && i < CTX__NSHARDS; i++) {
        ctx__lock(&sh->s[i].lock);
        for (struct ctx *k = sh->s[i].head; k; k = k->u.c.next)
            n++;
        ctx__unlock(&sh->s[i].lock);
    }
    return n;
}

int ctx_shutdown(void)
{
    int rc = ctx__timer_shutdown();
    if (rc)
        return rc;
    return ctx__after_shutdown();
}
