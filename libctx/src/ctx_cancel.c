/*
 * ctx_cancel.c -- the children lists and the cancellation walk.
 *
 * Every CANCEL node keeps an intrusive doubly linked list of the CANCEL and
 * AFTER nodes registered under it (its nearest cancelable descendants), so
 * registration and removal are O(1) and a cancel is O(descendants).  The
 * list links (next/prev) and the `linked` flag of a child belong to the
 * registry's lock while the child is linked.
 *
 * Cancelling walks the subtree iteratively with a work list threaded
 * through the same `next` links, so neither the stack nor the heap grows
 * with the depth or the width of the tree:
 *
 *   process(n):  lock n
 *                  already done?  -> unlock, skip (its subtree was or is
 *                                    being handled by whoever did it)
 *                  store cause, publish the error (release)
 *                  detach the children list: take a reference on each child
 *                  (a child whose count already reached zero is being freed
 *                  by another thread: unlink it and leave it alone), mark
 *                  each unlinked, and append them to the work list
 *                  (the done fd, if any, is written before the error is
 *                  published, so a thread that sees the error finds it
 *                  readable)
 *                unlock n; wake futex waiters, disarm the timer
 *
 * Only one node lock is ever held at a time.  A node on the work list is
 * kept alive by the reference taken for it, and its `next` link belongs to
 * the walk (nobody else touches links of an unlinked node).
 *
 * Order: breadth-first by default (each level is finished before the next
 * one starts, and siblings are reached oldest first); depth-first is kept
 * behind ctx__set_cancel_order() for the measurement in the README.  Both
 * use the same O(1) extra memory.
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

/* Marks `n` done and moves its children onto the work list.  Returns 1 if
 * this call did it (0: `n` was already done). */
static int process(struct ctx *n, uint32_t err, int cause, struct work *w)
{
    ctx__lock(&n->u.c.lock);
    if (atomic_load_explicit(&n->u.c.word, memory_order_relaxed) & CTX__ERR_MASK) {
        ctx__unlock(&n->u.c.lock);
        return 0;
    }
    n->u.c.cause = cause;
    /* The fd is made readable before the error is published, so whoever
     * sees the error also finds the fd readable (Go: Err implies Done). */
    if (n->u.c.fd >= 0)
        ctx__fd_signal(n->u.c.fd);
    uint32_t old = atomic_exchange_explicit(&n->u.c.word, err,
                                            memory_order_acq_rel);
    /* Detach the children, oldest first (the list is newest first). */
    struct ctx *seg_head = NULL, *seg_tail = NULL;
    struct ctx *k = n->u.c.children;
    n->u.c.children = NULL;
    while (k) {
        struct ctx *next = k->u.c.next;
        k->u.c.next = k->u.c.prev = NULL;
        atomic_store_explicit(&k->linked, 0, memory_order_release);
        if (ctx__tryref(k)) {
            k->u.c.next = seg_head;
            seg_head = k;
            if (!seg_tail)
                seg_tail = k;
        }
        k = next;
    }
    ctx__unlock(&n->u.c.lock);

    if (seg_head) {
        if (depth_first || !w->head) {
            seg_tail->u.c.next = w->head;
            w->head = seg_head;
            if (!w->tail)
                w->tail = seg_tail;
        } else {
            w->tail->u.c.next = seg_head;
            w->tail = seg_tail;
        }
    }
    if (old & CTX__WAITERS)
        ctx__wake(n);
    if (n->flags & CTX__F_TIMER)
        ctx__timer_disarm(n);
    return 1;
}

void ctx__cancel(struct ctx *c, uint32_t err, int cause, int unlink)
{
    struct work w = {NULL, NULL};
    if (!process(c, err, cause, &w))
        return;
    if (unlink)
        ctx__unregister(c);
    while (w.head) {
        struct ctx *n = w.head;
        w.head = n->u.c.next;
        if (!w.head)
            w.tail = NULL;
        n->u.c.next = NULL;
        if (n->kind == CTX_KIND_AFTER) {
            uint32_t armed = CTX__AFTER_ARMED;
            if (atomic_compare_exchange_strong(&n->u.c.word, &armed,
                                               CTX__AFTER_FIRED)) {
                ctx__after_fire(n); /* takes over our reference */
                continue;
            }
        } else {
            process(n, err, cause, &w);
        }
        ctx_release(n);
    }
}
