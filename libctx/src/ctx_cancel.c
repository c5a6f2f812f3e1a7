/*
 * ctx_cancel.c -- the children lists and the cancellation walk.
 *
 * Every CANCEL node keeps an intrusive doubly linked list of the CANCEL and
 * AFTER nodes registered under it (its nearest cancelable descendants), so
 * registration and removal are O(1) and a cancel is O(descendants).  The
 * list links (next/prev) and the `linked` flag of a child belong to the
 * registry's lock while the child is linked.
 *
 * Cancelling walks the subtree iteratively, with a work list threaded
 * through the same `next` links, so neither the stack nor the heap grows
 * with the depth or the width of the tree:
 *
 *   cancel(c):  lock c; mark c done; finish_children(c); unlock c
 *   finish_children(n), n locked and done:
 *               for each child k:  unlink k;  lock k (parent before child);
 *               mark k done (cause, done fd, error, futex wake, disarm);
 *               unlock k;  if k has children of its own, queue k (with a
 *               reference) -- its children are finished when it is popped
 *   then, for each queued n:  lock n; finish_children(n); unlock n; release
 *
 * So each node is touched once, at most two locks are held (a node and
 * one child), and a node's children are only ever walked under its own lock
 * (they cannot be freed meanwhile: a dying child unlinks itself under that
 * lock first).  A node on the work list is kept alive by the reference
 * taken for it; its `next` link belongs to the walk (nobody else touches
 * links of an unlinked node).  AfterFunc callbacks are queued to their
 * threads after the locks are dropped; no user code runs in a cancel.
 *
 * A done node's children stay linked to it until the walk reaches it; new
 * children cannot join (they are born done), leaving ones unlink
 * themselves as usual.
 *
 * Order: breadth-first by default (each level is finished before the next
 * one starts; siblings newest first, the order of the list); depth-first is
 * kept behind ctx__set_cancel_order() for the measurement in the README.
 * Both use the same O(1) extra memory.
 */
#include "ctx_internal.h"

static int depth_first;

void ctx__set_cancel_order(int df) { depth_first = df != 0; }

uint32_t ctx__register(struct ctx *reg, struct ctx *n, int *cause_out)
{
    ctx__lock(&reg->u.c.lock);
    uint32_t err = atomic_load_explicit(&reg->u.c.word, memory_order_relaxed) &
                   CTX__ERR_MASK;
    if (err) {
        *cause_out = reg->u.c.cause;
    } else if (n->kind == CTX_KIND_AFTER ||
               !(atomic_load_explicit(&n->u.c.word, memory_order_acquire) &
                 CTX__ERR_MASK)) {
        struct ctx *h = reg->u.c.children;
        n->u.c.prev = NULL;
        n->u.c.next = h;
        if (h)
            h->u.c.prev = n;
        reg->u.c.children = n;
        atomic_store_explicit(&n->linked, 1, memory_order_relaxed);
    }
    ctx__unlock(&reg->u.c.lock);
    return err;
}

static void unlink_locked(struct ctx *reg, struct ctx *n)
{
    if (n->u.c.prev)
        n->u.c.prev->u.c.next = n->u.c.next;
    else
        reg->u.c.children = n->u.c.next;
    if (n->u.c.next)
        n->u.c.next->u.c.prev = n->u.c.prev;
    n->u.c.next = n->u.c.prev = NULL;
    atomic_store_explicit(&n->linked, 0, memory_order_release);
}

void ctx__unregister(struct ctx *n)
{
    if (!atomic_load_explicit(&n->linked, memory_order_acquire))
        return;
    struct ctx *reg = n->parent->canc;
    ctx__lock(&reg->u.c.lock);
    if (atomic_load_explicit(&n->linked, memory_order_relaxed))
        unlink_locked(reg, n);
    ctx__unlock(&reg->u.c.lock);
}

/* The work list: singly linked through u.c.next. */
struct work {
    struct ctx *head, *tail;
};

/* Marks `k` (locked by the caller) done.  Returns 1 if this call did it,
 * 0 if `k` was already done.  The done fd is written before the error is
 * published, so whoever sees the error finds the fd readable (Go: Err
 * implies Done); the PUBLISHING bit set meanwhile makes ctx_err() wait for
 * the error (the fd readable implies Err); futex sleepers are woken after. */
static int mark(struct ctx *k, uint32_t err, int cause)
{
    if (atomic_load_explicit(&k->u.c.word, memory_order_relaxed) & CTX__ERR_MASK)
        return 0;
    k->u.c.cause = cause;
    if (k->u.c.fd >= 0) {
        atomic_fetch_or_explicit(&k->u.c.word, CTX__PUBLISHING,
                                 memory_order_relaxed);
        ctx__fd_signal(k->u.c.fd);
    }
    uint32_t old = atomic_exchange_explicit(&k->u.c.word, err,
                                            memory_order_acq_rel);
    if (old & CTX__WAITERS)
        ctx__wake(k);
    if (k->flags & CTX__F_TIMER)
        ctx__timer_disarm(k);
    return 1;
}

/* With `n` locked and already marked: marks every child of `n` done (each
 * under its own lock, nested inside n's: parent before child), unlinks it,
 * and queues the children that have children of their own (with a
 * reference) on the work list, and fired AfterFuncs on *fire.  A child
 * whose count reached zero is being freed by a thread blocked on n's lock:
 * it is marked and unlinked, which is all that thread needs, and is not
 * queued (a dying node has no children: they would hold references). */
static void finish_children(struct ctx *n, uint32_t err, int cause,
                            struct work *w, struct ctx_after **fire)
{
    struct ctx *k = n->u.c.children;
    n->u.c.children = NULL;
    while (k) {
        struct ctx *next = k->u.c.next;
        if (next)
            __builtin_prefetch(next, 1);
        k->u.c.next = k->u.c.prev = NULL;
        int held = 0;
        if (k->kind == CTX_KIND_AFTER) {
            /* Reference first, then the once-state: a stop that wins the
             * state leaves us a reference to drop in fire_all(). */
            held = ctx__tryref(k);
            if (held) {
                uint32_t armed = CTX__AFTER_ARMED;
                atomic_compare_exchange_strong(&k->u.c.word, &armed,
                                               CTX__AFTER_FIRED);
            }
        } else {
            ctx__lock(&k->u.c.lock);
            int queue = mark(k, err, cause) && k->u.c.children != NULL;
            ctx__unlock(&k->u.c.lock);
            held = queue && ctx__tryref(k);
        }
        /* Last touch of k unless we hold a reference: a dying k that sees
         * linked == 0 frees itself at once. */
        atomic_store_explicit(&k->linked, 0, memory_order_release);
        if (held && k->kind == CTX_KIND_AFTER) {
            struct ctx_after *a = (struct ctx_after *)k;
            a->qnext = *fire;
            *fire = a;
        } else if (held) {
            if (depth_first || !w->head) {
                k->u.c.next = w->head;
                w->head = k;
                if (!w->tail)
                    w->tail = k;
            } else {
                w->tail->u.c.next = k;
                w->tail = k;
            }
        }
        k = next;
    }
}

/* Queues each fired registration (handing over our reference), and drops
 * our reference on those a concurrent ctx_after_stop() won. */
static void fire_all(struct ctx_after *a)
{
    while (a) {
        struct ctx_after *next = a->qnext;
        if (atomic_load(&a->n.u.c.word) == CTX__AFTER_FIRED)
            ctx__after_fire(&a->n);
        else
            ctx_release(&a->n);
        a = next;
    }
}

void ctx__cancel(struct ctx *c, uint32_t err, int cause, int unlink)
{
    struct work w = {NULL, NULL};
    struct ctx_after *fire = NULL;
    ctx__lock(&c->u.c.lock);
    if (!mark(c, err, cause)) {
        ctx__unlock(&c->u.c.lock);
        return;
    }
    finish_children(c, err, cause, &w, &fire);
    ctx__unlock(&c->u.c.lock);
    fire_all(fire);
    if (unlink)
        ctx__unregister(c);
    while (w.head) {
        struct ctx *n = w.head;
        w.head = n->u.c.next;
        if (!w.head)
            w.tail = NULL;
        n->u.c.next = NULL;
        fire = NULL;
        ctx__lock(&n->u.c.lock);
        finish_children(n, err, cause, &w, &fire);
        ctx__unlock(&n->u.c.lock);
        fire_all(fire);
        ctx_release(n);
    }
}
