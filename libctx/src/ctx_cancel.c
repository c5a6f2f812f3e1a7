/*
 * ctx_cancel.c -- the children lists and the cancellation walk.
 *
 * Every CANCEL node keeps intrusive doubly linked lists of the CANCEL and
 * AFTER nodes registered under it (its nearest cancelable descendants):
 * the main list under its main lock, and, once registrations have
 * contended on that lock, one list per shard under the shard's lock (see
 * ctx_internal.h).  Registration and removal are O(1) and touch one list
 * lock; a cancel is O(descendants + shards).  The list links (next/prev)
 * and the `linked` flag of a child belong to the lock of the list it is
 * linked in.
 *
 * Cancelling walks the subtree iteratively, with a work list threaded
 * through the same `next` links, so neither the stack nor the heap grows
 * with the depth or the width of the tree:
 *
 *   cancel(c):  mark c done (claim, cause, done fd, error, disarm: no
 *               lock); if c has children: lock c; finish_list(c's main
 *               list); note c's shards; unlock c; wake c's sleepers;
 *               finish_shards(c)
 *   finish_shards(n):  for each shard s of n: lock s; finish_list(s); unlock s
 *   finish_list(l), n done and l's lock held:
 *               for each child k:  unlink k;  mark k done;
 *               if threads sleep on k, note k (with a reference) to wake;
 *               if k has children of its own, queue k (with a reference)
 *               -- its children are finished when it is popped
 *   after every unlock of a list lock: wake the noted sleepers (FUTEX_WAKE,
 *               no lock held), queue the fired AfterFuncs
 *   then, for each queued n:  lock n; finish_list(n's main list); note
 *               n's shards; unlock n; finish_shards(n); release n
 *
 * So each node is touched once, at most one lock is held at a time (a
 * list's), and a list is only ever walked under its own lock (its
 * children cannot be freed meanwhile: a dying child unlinks itself under
 * that lock first).  A node on the work list is
 * kept alive by the reference taken for it; its `next` link belongs to
 * the walk, and so does its `prev` link, which threads the wake list
 * (nobody else touches links of an unlinked node).  AfterFunc
 * callbacks are queued to their threads after the locks are dropped; no
 * user code runs in a cancel.
 *
 * Marking takes no lock: one CAS claims the node (CTX__CLAIMED: the one
 * canceller that wins writes the cause; the others wait until it has
 * published the error), one exchange publishes the error.  A leaf -- most
 * contexts: a request, a sub-task -- is therefore cancelled with two
 * atomic operations and no lock of its own.
 *
 * Why no child is missed: the canceller publishes the error (seq_cst) and
 * then reads the node's `kids` word (seq_cst); a registration links the
 * child under its list lock, drops the lock (an exchange) and then reads
 * the node's error word (seq_cst).  So either the canceller sees the link
 * and walks the list under its lock, or the registration sees the error
 * and takes its child back out (if no walk took it) and cancels it, as if
 * it had come after the cancel (ctx__register's recheck()).  A
 * registration that sees the error before linking never links.  The shard
 * array is published under the main lock before any child joins a shard,
 * so a canceller that sees children finds the shards under the main lock.
 *
 * A done node's children stay linked to it until the walk reaches their
 * list; new children cannot join (they are born done), leaving ones unlink
 * themselves as usual.  A second cancel of a node that a walk has marked
 * but not finished returns at once (mark() says it is done): the walk that
 * marked it finishes its children.
 *
 * Order: breadth-first by default (each level is finished before the next
 * one starts; siblings newest first within a list, lists in order: main,
 * then shards); depth-first is kept behind ctx__set_cancel_order() for the
 * measurement in the README.  Both use the same O(1) extra memory.
 *
 * Sharded references (ctx__shard_put, ctx__shards_collapse) are described
 * in ctx_internal.h; they live here beside the shards they count in.
 */
#include "ctx_internal.h"

static int depth_first;

void ctx__set_cancel_order(int df) { depth_first = df != 0; }

/* This thread's shard: threads are dealt shards round-robin on first use,
 * so up to CTX__NSHARDS registering threads never share a list lock. */
static unsigned my_shard(void)
{
    static _Atomic unsigned next;
    static _Thread_local unsigned mine; /* index + 1; 0: not dealt yet */
    if (__builtin_expect(mine == 0, 0))
        mine = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) %
                   CTX__NSHARDS + 1;
    return mine - 1;
}

/* Gives `reg` its shards (once; under the main lock, see the top of the
 * file).  Returns them, or NULL when memory is short (then the main list
 * serves, as before). */
static struct ctx__shards *grow_shards(struct ctx *reg)
{
    struct ctx__shards *sh = NULL;
    if (posix_memalign((void **)&sh, 64, sizeof *sh) != 0)
        return NULL;
    for (unsigned i = 0; i < CTX__NSHARDS; i++) {
        atomic_init(&sh->s[i].lock, 0);
        sh->s[i].dead = 0;
        sh->s[i].count = 0;
        sh->s[i].head = NULL;
    }
    ctx__lock(&reg->u.c.lock);
    struct ctx__shards *cur = ctx__shards_of(reg);
    if (!cur) {
        /* The bias first: a count in a shard must never be the only
         * thing keeping refs above zero. */
        atomic_fetch_add_explicit(&reg->refs, CTX__SHARD_BIAS,
                                  memory_order_relaxed);
        sh->main = ctx__main_head(reg); /* still under the main lock */
        atomic_store_explicit(&reg->u.c.kids, (uintptr_t)sh | 1u,
                              memory_order_release);
        cur = sh;
        sh = NULL;
    }
    ctx__unlock(&reg->u.c.lock);
    free(sh);
    return cur;
}

/* Links `n` in front of `h`, the head of a list whose lock is held; the
 * caller makes n the new head. */
static void link_before(struct ctx *h, struct ctx *n)
{
    n->u.c.prev = NULL;
    n->u.c.next = h;
    if (h)
        h->u.c.prev = n;
    atomic_store_explicit(&n->linked, 1, memory_order_release);
}

/* Whether `n` should join a list of `reg`, whose word is `w`. */
static int joins(struct ctx *n, uint32_t w)
{
    if (w & CTX__ERR_MASK)
        return 0;
    return n->kind == CTX_KIND_AFTER ||
           !(atomic_load_explicit(&n->u.c.word, memory_order_acquire) &
             CTX__ERR_MASK);
}

/* Unlinks `n` from the list whose head is `head` (its lock held);
 * returns the list's new head. */
static struct ctx *unlink_from(struct ctx *head, struct ctx *n)
{
    if (n->u.c.prev)
        n->u.c.prev->u.c.next = n->u.c.next;
    else
        head = n->u.c.next;
    if (n->u.c.next)
        n->u.c.next->u.c.prev = n->u.c.prev;
    n->u.c.next = n->u.c.prev = NULL;
    atomic_store_explicit(&n->linked, 0, memory_order_release);
    return head;
}

/* After linking `n` into one of reg's lists (lock `l`; shard `s`, or NULL
 * for the main list) and dropping the lock (an exchange: a full barrier),
 * look at two error words once more (seq_cst):
 *   - reg's: a canceller of reg does not take that lock (mark() +
 *     has_kids()), so either its has_kids() saw the link or this sees its
 *     error.  Then, if no walk took n meanwhile, take n back out and report
 *     the error, as if n had come too late (the caller cancels it).
 *   - n's own (a CANCEL node): n may be cancelled while it registers (its
 *     timer fires before it is linked, say).  Its canceller publishes, then
 *     unregisters, which reads `linked`: either that read saw the link, or
 *     this sees the error and takes n back out itself.
 * Both are rare; the common path is two loads. */
static uint32_t recheck(struct ctx *reg, struct ctx *n, _Atomic uint32_t *l,
                        struct ctx__shard *s, int *cause_out)
{
    uint32_t w = atomic_load_explicit(&reg->u.c.word, memory_order_seq_cst);
    int own = n->kind == CTX_KIND_CANCEL &&
              (atomic_load_explicit(&n->u.c.word, memory_order_seq_cst) &
               CTX__ERR_MASK);
    if (__builtin_expect(!(w & CTX__ERR_MASK) && !own, 1))
        return 0;
    int took = 0;
    ctx__lock(l);
    if (atomic_load_explicit(&n->linked, memory_order_relaxed)) {
        if (s != NULL)
            s->head = unlink_from(s->head, n);
        else
            ctx__set_main_head(reg, unlink_from(ctx__main_head(reg), n));
        took = 1;
    }
    ctx__unlock(l);
    if (!took || !(w & CTX__ERR_MASK))
        return 0; /* n's own canceller has finished it */
    *cause_out = reg->u.c.cause;
    return w & CTX__ERR_MASK;
}

uint32_t ctx__register(struct ctx *reg, struct ctx *n, int *cause_out,
                       int take_ref)
{
    struct ctx__shards *sh = ctx__shards_of(reg);
    if (!sh) {
        uint32_t z = 0;
        if (!atomic_compare_exchange_strong_explicit(&reg->u.c.lock, &z, 1,
                                                     memory_order_acquire,
                                                     memory_order_relaxed)) {
            /* Contended: shard, or wait for the lock if memory is short. */
            sh = grow_shards(reg);
            if (!sh)
                ctx__lock(&reg->u.c.lock);
        }
    }
    if (!sh) {
        if (take_ref)
            atomic_fetch_add_explicit(&reg->refs, 1, memory_order_relaxed);
        /* Acquire: the cause was written before the error was published. */
        uint32_t w = atomic_load_explicit(&reg->u.c.word, memory_order_acquire);
        int linked = 0;
        if (w & CTX__ERR_MASK)
            *cause_out = reg->u.c.cause;
        else if (joins(n, w)) {
            link_before(ctx__main_head(reg), n);
            ctx__set_main_head(reg, n);
            linked = 1;
        }
        ctx__unlock(&reg->u.c.lock);
        if (linked)
            return recheck(reg, n, &reg->u.c.lock, NULL, cause_out);
        return w & CTX__ERR_MASK;
    }
    unsigned i = my_shard();
    struct ctx__shard *s = &sh->s[i];
    ctx__lock(&s->lock);
    uint8_t where = (uint8_t)(i + 1);
    if (take_ref) {
        if (!s->dead) {
            s->count++;
            where |= CTX__SH_REF;
        } else {
            atomic_fetch_add_explicit(&reg->refs, 1, memory_order_relaxed);
        }
    }
    n->shard = where; /* before `linked` is published */
    /* Acquire: the cause was written before the error was published. */
    uint32_t w = atomic_load_explicit(&reg->u.c.word, memory_order_acquire);
    int linked = 0;
    if (w & CTX__ERR_MASK)
        *cause_out = reg->u.c.cause;
    else if (joins(n, w)) {
        link_before(s->head, n);
        s->head = n;
        linked = 1;
    }
    ctx__unlock(&s->lock);
    if (linked)
        return recheck(reg, n, &s->lock, s, cause_out);
    return w & CTX__ERR_MASK;
}

void ctx__unregister(struct ctx *n)
{
    /* seq_cst: read after this node's error was published, paired with
     * recheck() in a registration racing with the cancel. */
    if (!atomic_load_explicit(&n->linked, memory_order_seq_cst))
        return;
    struct ctx *reg = n->parent->canc;
    unsigned where = n->shard & CTX__SH_LIST;
    if (where) {
        struct ctx__shard *s = &ctx__shards_of(reg)->s[where - 1];
        ctx__lock(&s->lock);
        if (atomic_load_explicit(&n->linked, memory_order_relaxed))
            s->head = unlink_from(s->head, n);
        ctx__unlock(&s->lock);
        return;
    }
    ctx__lock(&reg->u.c.lock);
    if (atomic_load_explicit(&n->linked, memory_order_relaxed))
        ctx__set_main_head(reg, unlink_from(ctx__main_head(reg), n));
    ctx__unlock(&reg->u.c.lock);
}

int ctx__shard_put(struct ctx *p, unsigned i)
{
    struct ctx__shard *s = &ctx__shards_of(p)->s[i];
    ctx__lock(&s->lock);
    int live = !s->dead;
    if (live)
        s->count--;
    /* After this unlock p may be freed by a collapse at any moment. */
    ctx__unlock(&s->lock);
    return live;
}

int ctx__shards_collapse(struct ctx *p)
{
    struct ctx__shards *sh = ctx__shards_of(p);
    uint32_t sum = 0;
    for (unsigned i = 0; i < CTX__NSHARDS; i++) {
        struct ctx__shard *s = &sh->s[i];
        ctx__lock(&s->lock);
        if (s->dead) {
            /* Someone else is collapsing (a tryref brought refs back to
             * the bias and released it): our decrement is counted. */
            ctx__unlock(&s->lock);
            return 0;
        }
        s->dead = 1;
        sum += s->count;
        s->count = 0;
        ctx__unlock(&s->lock);
    }
    uint32_t drop = CTX__SHARD_BIAS - sum;
    return atomic_fetch_sub_explicit(&p->refs, drop, memory_order_acq_rel) ==
           drop;
}

void ctx__shards_free(struct ctx *p)
{
    struct ctx__shards *sh = ctx__shards_of(p);
    if (sh != NULL)
        free(sh);
}

/* The work list, singly linked through u.c.next, and the nodes whose
 * futex sleepers are still to be woken (each with a reference), through
 * u.c.prev: both links are free once a node is unlinked. */
struct work {
    struct ctx *head, *tail;
    struct ctx *wake;
};

#define MARKED 1 /* mark(): this call made the node done */
#define WAKE 2   /* ... and threads sleep on its word: wake them */

uint32_t ctx__await_published(struct ctx *k, uint32_t w)
{
    /* The canceller is a few instructions from publishing; it only waits
     * here if it was preempted in between. */
    for (unsigned i = 1; !(w & CTX__ERR_MASK); i++) {
        if ((i & 63) == 0)
            sched_yield();
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        w = atomic_load_explicit(&k->u.c.word, memory_order_acquire);
    }
    return w;
}

/* Elects the canceller of `k`: true for the one call whose CAS sets
 * CLAIMED; false once `k` is done, when another call claimed it first (then
 * after that call has published the error). */
static bool claim(struct ctx *k)
{
    uint32_t w = atomic_load_explicit(&k->u.c.word, memory_order_relaxed);
    for (;;) {
        if (w & CTX__ERR_MASK)
            return false;
        if (w & CTX__CLAIMED) {
            ctx__await_published(k, w);
            return false;
        }
        if (atomic_compare_exchange_weak_explicit(&k->u.c.word, &w,
                                                  w | CTX__CLAIMED,
                                                  memory_order_acquire,
                                                  memory_order_relaxed))
            return true;
    }
}

/* The claimer publishes: cause, done fd, error, timer.  Returns MARKED
 * (| WAKE when threads sleep in ctx_wait on k). */
static int publish(struct ctx *k, uint32_t err, int cause)
{
    k->u.c.cause = cause;
    int fd = atomic_load_explicit(&k->u.c.fd, memory_order_seq_cst);
    if (fd >= 0) {
        atomic_fetch_or_explicit(&k->u.c.word, CTX__PUBLISHING,
                                 memory_order_relaxed);
        ctx__fd_signal(fd);
    }
    uint32_t old = atomic_exchange_explicit(&k->u.c.word, err,
                                            memory_order_seq_cst);
    if (k->flags & CTX__F_TIMER)
        ctx__timer_disarm(k);
    return (old & CTX__WAITERS) ? MARKED | WAKE : MARKED;
}

/* mark(): marks `k` done; no lock needed.  Returns MARKED (| WAKE when threads
 * sleep in ctx_wait on it) if this call did it, 0 if `k` was already done
 * (when another canceller has claimed it, 0 once that one has published
 * the error, so that ctx_err() is non-zero when any cancel returns).
 *
 * The claim (CAS setting CLAIMED) elects one canceller; it writes the
 * cause, then publishes the error with a seq_cst exchange, after which
 * the caller reads `kids` (seq_cst) to find children registered meanwhile
 * (see ctx__register's re-check).  The done fd is written before the error
 * is published, so whoever sees the error finds the fd readable (Go: Err
 * implies Done); the PUBLISHING bit set meanwhile makes ctx_err() wait for
 * the error (the fd readable implies Err); ctx_done_fd() covers an fd made
 * after the claim.  The futex sleepers are woken by the caller once it
 * holds no lock: a woken thread that preempts the canceller must not find
 * it holding the locks its own release may need. */
static int mark(struct ctx *k, uint32_t err, int cause)
{
    if (claim(k))
        return publish(k, err, cause);
    /* Lost to another canceller of k: wait for its walk of k's main list
     * (it holds k's lock through it), as a cancel that lost does. */
    ctx__lock(&k->u.c.lock);
    ctx__unlock(&k->u.c.lock);
    return 0;
}

/* Whether the marked `k` has children to finish: read after the error was
 * published (seq_cst), so that a child linked before it is seen here, and
 * one linked after it sees the error in ctx__register's re-check. */
static int has_kids(struct ctx *k)
{
    return atomic_load_explicit(&k->u.c.kids, memory_order_seq_cst) != 0;
}

/* Wakes the sleepers of every node on w's wake list and drops the
 * references taken for them.  No lock held. */
static void wake_all(struct work *w)
{
    while (w->wake) {
        struct ctx *k = w->wake;
        w->wake = k->u.c.prev;
        k->u.c.prev = NULL;
        ctx__wake(k);
        ctx_release(k);
    }
}

/* With the lock of one of n's lists held, that list detached (its first
 * child `k`), and n already marked: marks every child in the list done
 * (mark() takes no lock), unlinks it,
 * and queues the children that have children of their own (with a
 * reference) on the work list, and fired AfterFuncs on *fire.  A child
 * whose count reached zero is being freed by a thread blocked on n's lock:
 * it is marked and unlinked, which is all that thread needs, and is not
 * queued (a dying node has no children: they would hold references). */
static void finish_list(struct ctx *k, uint32_t err, int cause,
                        struct work *w, struct ctx_after **fire)
{
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
            int m = mark(k, err, cause);
            int queue = m && has_kids(k);
            held = queue && ctx__tryref(k);
            /* A sleeper holds a reference, so a node with sleepers is not
             * dying: the reference is for waking it after the locks. */
            if ((m & WAKE) && ctx__tryref(k)) {
                k->u.c.prev = w->wake;
                w->wake = k;
            }
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

/* Finishes the lists of n's shards (n done; no lock held). */
static void finish_shards(struct ctx__shards *sh, uint32_t err, int cause,
                          struct work *w)
{
    if (!sh)
        return;
    for (unsigned i = 0; i < CTX__NSHARDS; i++) {
        struct ctx__shard *s = &sh->s[i];
        struct ctx_after *fire = NULL;
        ctx__lock(&s->lock);
        struct ctx *k = s->head;
        s->head = NULL;
        finish_list(k, err, cause, w, &fire);
        ctx__unlock(&s->lock);
        wake_all(w);
        fire_all(fire);
    }
}

/* Finishes n's main list under n's lock (n done) and returns its shards,
 * read under the same lock (see the top of the file). */
static struct ctx__shards *finish_main(struct ctx *n, uint32_t err, int cause,
                                       struct work *w, struct ctx_after **fire)
{
    struct ctx *k = ctx__main_head(n);
    ctx__set_main_head(n, NULL);
    finish_list(k, err, cause, w, fire);
    return ctx__shards_of(n);
}

void ctx__cancel(struct ctx *c, uint32_t err, int cause, int unlink)
{
    struct work w = {NULL, NULL, NULL};
    struct ctx_after *fire = NULL;
    /* A node without children (the common leaf: a request, a sub-task)
     * is done with one claim and one exchange; its lock is for its lists.
     * A node with children is published under its lock and its main list
     * finished before the lock is dropped, so a cancel that lost the claim
     * (it then waits for that lock) returns with the direct children done,
     * as it did when marking took the lock. */
    if (!claim(c)) {
        /* Not has_kids(): the winner detaches the list before it walks. */
        ctx__lock(&c->u.c.lock);
        ctx__unlock(&c->u.c.lock);
        return;
    }
    bool locked = has_kids(c);
    if (locked)
        ctx__lock(&c->u.c.lock);
    int m = publish(c, err, cause);
    if (!locked && has_kids(c)) { /* a child joined meanwhile */
        ctx__lock(&c->u.c.lock);
        locked = true;
    }
    struct ctx__shards *sh = NULL;
    if (locked) {
        sh = finish_main(c, err, cause, &w, &fire);
        ctx__unlock(&c->u.c.lock);
    }
    if (m & WAKE) /* the caller's reference keeps c */
        ctx__wake(c);
    wake_all(&w);
    fire_all(fire);
    finish_shards(sh, err, cause, &w);
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
        sh = finish_main(n, err, cause, &w, &fire);
        ctx__unlock(&n->u.c.lock);
        wake_all(&w);
        fire_all(fire);
        finish_shards(sh, err, cause, &w);
        ctx_release(n);
    }
}
