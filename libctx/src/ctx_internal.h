/*
 * ctx_internal.h -- the node layout and the internal interfaces shared by
 * libctx's source files.  Not installed.
 *
 * Node kinds:
 *
 *   ROOT     Background, TODO: static, immortal.
 *   CANCEL   WithCancel / WithDeadline / WithTimeout: has a lock, an error
 *            word, a list of registered children, maybe a timer.
 *   VALUE    WithValue: key, value, destroy; done when its `canc` is.
 *   WITHOUT  WithoutCancel: values pass through, cancellation does not.
 *   AFTER    an AfterFunc registration: sits in a CANCEL node's children
 *            list like a child; "cancelling" it schedules its function.
 *
 * Every node points at `canc`, its nearest cancelable ancestor-or-self
 * (NULL under a root or a WITHOUT), so ctx_err() of any node is one load of
 * canc->word.  A CANCEL or AFTER node registers in its parent's `canc`,
 * called its `reg`; value nodes never register (Go: they are transparent).
 *
 * Locks.  Each CANCEL node has a 4-byte futex lock (`lock`, the "main"
 * lock) guarding its error word's transitions, its done fd, its `kids`
 * word (the main children list, and the shards' publication).  A node that many
 * threads register children under grows a shard array (below); each shard
 * has its own lock guarding its own children list.  Whichever lock guards
 * the list a child is linked in also guards that child's `next`/`prev`
 * links and `linked` flag.  Lock order: a parent's list lock (main or
 * shard) before a child's main lock, and only one level deep -- the cancel
 * walk holds one list lock of a node and one child's main lock, nothing
 * else ever holds two node locks; creation and release take only one list
 * lock.  Leaf locks, taken inside a node lock but never holding one: the
 * timer heap lock (ctx_timer.c) and the AfterFunc queue lock (ctx_after.c).
 *
 * Shards.  A node starts with one list under its main lock.  The first
 * registration that finds that lock taken (two threads registering, or one
 * registering during a cancel) allocates CTX__NSHARDS shards, each on its
 * own cache line, and publishes them under the main lock in the word that
 * held the main list's head (`kids`, tagged with bit 0; the head moves into
 * the shards, still under the main lock), so a node stays 80 bytes; then a
 * thread registers in "its" shard (a thread-local index).  A CANCEL child
 * of a sharded CANCEL parent also keeps its reference on the parent in its
 * shard's `count` instead of the parent's `refs`, so creating and
 * releasing children from many threads writes no shared cache line.  The
 * parent's `refs` carries CTX__SHARD_BIAS while the shards hold counts:
 * when `refs` falls to the bias (no owner left but the children), the
 * releaser "collapses" the shards -- marks each dead under its lock, sums
 * their counts into `refs` and drops the bias -- and from then on children
 * release their reference on `refs` directly.  A child's `shard` byte says
 * where it is linked (CTX__SH_LIST: shard index + 1, 0 for the main list)
 * and whether its parent reference is in a shard (CTX__SH_REF).
 * No user code (destroy, AfterFunc) ever runs under any of these locks.
 */
#ifndef CTX_INTERNAL_H
#define CTX_INTERNAL_H

#include <ctx/ctx.h>
#include "ctx_mcache.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

enum ctx_kind {
    CTX_KIND_ROOT = 0,
    CTX_KIND_CANCEL,
    CTX_KIND_VALUE,
    CTX_KIND_WITHOUT,
    CTX_KIND_AFTER,
};

/* Bits of a CANCEL node's `word`: the error (0, CTX_CANCELED,
 * CTX_DEADLINE_EXCEEDED) in the low bits; CLAIMED once a canceller has
 * won the right to cancel the node (it then writes the cause and
 * publishes the error: see mark() in ctx_cancel.c); PUBLISHING while that
 * canceller has made the done fd readable and is about to publish the
 * error; and a flag telling the canceller that some thread sleeps on the
 * word (futex). */
#define CTX__ERR_MASK 0x3u
#define CTX__PUBLISHING 0x4u /* done fd written, error about to be set */
#define CTX__CLAIMED 0x8u    /* a canceller owns the cancel */
#define CTX__WAITERS 0x80000000u

struct ctx {
    _Atomic uint32_t refs;     /* owning references                        */
    uint8_t kind;              /* enum ctx_kind, fixed                      */
    _Atomic uint8_t linked;    /* in reg->children; written under reg->lock */
    uint8_t flags;             /* CTX__F_*, fixed after construction        */
    uint8_t shard;             /* CTX__SH_*: where linked / where the parent
                                * ref is; written under the list lock while
                                * linking, fixed after                      */
    struct ctx *parent;        /* owning ref; NULL for roots                */
    struct ctx *canc;          /* nearest cancelable ancestor-or-self       */
    union {
        struct {                    /* CANCEL and AFTER                      */
            _Atomic uint32_t word;  /* error | CTX__WAITERS (CANCEL)         */
            _Atomic uint32_t lock;  /* futex lock (CANCEL)                   */
            int cause;              /* written by the canceller that CLAIMED
                                     * the word, before it publishes the
                                     * error                                 */
            _Atomic int32_t heap_idx; /* timer heap slot, -1 when not armed;
                                       * written under the timer lock      */
            _Atomic uintptr_t kids; /* the main children list's head, or,
                                     * once sharded (set once, under lock),
                                     * the shards | 1: ctx__main_head(),
                                     * ctx__shards_of()                  */
            struct ctx *next, *prev;/* links in reg->children / work lists   */
            int64_t deadline;       /* effective deadline, INT64_MAX: none   */
            int timer_cause;        /* cause when the own timer fires        */
            _Atomic int fd;         /* done eventfd, -1 until requested;
                                     * set under the lock (ctx_done_fd),
                                     * read by the canceller without it     */
        } c;
        struct {                    /* VALUE                                 */
            const void *key;
            void *value;
            void (*destroy)(void *);
        } v;
    } u;
};

/* A shard: a children list with its own lock on its own cache line, and
 * the references on the node held by the CANCEL children counted here. */
#define CTX__NSHARDS 8
#define CTX__SHARD_BIAS (1u << 30)
#define CTX__SH_LIST 0x7f /* list index + 1; 0: the main list */
#define CTX__SH_REF 0x80  /* the parent reference is in the shard's count */
struct ctx__shard {
    _Atomic uint32_t lock;
    uint32_t dead;     /* [lock] collapsed: references go to refs directly */
    uint32_t count;    /* [lock] children's references counted here       */
    struct ctx *head;  /* [lock] children linked in this shard            */
    char pad_[64 - 2 * sizeof(uint32_t) - sizeof(uint32_t) - sizeof(struct ctx *)];
};
struct ctx__shards {
    _Alignas(64) struct ctx *main; /* [node's lock] the main list's head */
    _Alignas(64) struct ctx__shard s[CTX__NSHARDS];
};

/* The shards of CANCEL node `n`, NULL while it has none (any thread). */
static inline struct ctx__shards *ctx__shards_of(struct ctx *n)
{
    uintptr_t v = atomic_load_explicit(&n->u.c.kids, memory_order_acquire);
    return (v & 1u) ? (struct ctx__shards *)(v - 1u) : NULL;
}

/* The head of n's main children list, and setting it: under n's lock. */
static inline struct ctx *ctx__main_head(struct ctx *n)
{
    uintptr_t v = atomic_load_explicit(&n->u.c.kids, memory_order_relaxed);
    return (v & 1u) ? ((struct ctx__shards *)(v - 1u))->main
                    : (struct ctx *)v;
}

static inline void ctx__set_main_head(struct ctx *n, struct ctx *h)
{
    uintptr_t v = atomic_load_explicit(&n->u.c.kids, memory_order_relaxed);
    if (v & 1u)
        ((struct ctx__shards *)(v - 1u))->main = h;
    else
        atomic_store_explicit(&n->u.c.kids, (uintptr_t)h, memory_order_relaxed);
}

#define CTX__F_DEADLINE 0x1 /* u.c.deadline is a real deadline        */
#define CTX__F_TIMER 0x2    /* owns a timer (was armed at creation)     */
#define CTX__F_OWNDL 0x4    /* made by WithDeadline with its own deadline */

/* Bytes allocated for a VALUE node: the header and the value part only. */
#define CTX__VALUE_SIZE (offsetof(struct ctx, u) + sizeof(((struct ctx *)0)->u.v))

/* An AfterFunc registration: a node of kind AFTER (it sits in its
 * registry's children list like a child), plus the function.  Its
 * u.c.word is the once-state: 0 armed, 1 fired, 2 stopped. */
struct ctx_after {
    struct ctx n;
    void (*fn)(void *);
    void *arg;
    struct ctx_after *qnext;   /* executor queue link */
};
#define CTX__AFTER_ARMED 0u
#define CTX__AFTER_FIRED 1u
#define CTX__AFTER_STOPPED 2u

/* ---- allocation, with fault injection ---------------------------------- */

extern _Atomic long ctx__alloc_fail_countdown;
void *ctx__malloc_slow(size_t n);
static inline void *ctx__malloc(size_t n)
{
    if (__builtin_expect(atomic_load_explicit(&ctx__alloc_fail_countdown,
                                              memory_order_relaxed) != 0, 0))
        return ctx__malloc_slow(n);
    return ctx__mc_alloc(n);
}
/* Frees what ctx__malloc returned (any malloc block), through this
 * thread's small-block cache (ctx_mcache.h). */
static inline void ctx__free(void *p)
{
    ctx__mc_free(p);
}

/* Test hook: the n-th allocation libctx makes from now on fails (1: the
 * next one), and every one after it succeeds again; 0 disables.  Returns
 * how many of the countdown were left (0 when the failure happened). */
CTX_API long ctx__test_fail_alloc(long n);

/* Bench hook: cancellation order, 0 breadth-first (default), 1 depth-first.
 * For measuring the choice only; not thread-safe against running cancels. */
CTX_API void ctx__set_cancel_order(int depth_first);

/* ---- the futex lock ---------------------------------------------------- */

void ctx__lock_slow(_Atomic uint32_t *l);
void ctx__unlock_slow(_Atomic uint32_t *l);

static inline void ctx__lock(_Atomic uint32_t *l)
{
    uint32_t z = 0;
    if (!atomic_compare_exchange_strong_explicit(l, &z, 1, memory_order_acquire,
                                                 memory_order_relaxed))
        ctx__lock_slow(l);
}

static inline void ctx__unlock(_Atomic uint32_t *l)
{
    if (atomic_exchange_explicit(l, 0, memory_order_release) != 1)
        ctx__unlock_slow(l);
}

/* ---- shared between files ---------------------------------------------- */

/* Cancels `c` (a CANCEL node) and every descendant with `err`/`cause`;
 * when `unlink` is set, removes `c` from its registry.  The caller holds a
 * reference on `c`. */
void ctx__cancel(struct ctx *c, uint32_t err, int cause, int unlink);
/* Returns once `k`'s error is published, when `w` (its word) shows a
 * canceller between CLAIMED and publishing; returns the word then. */
uint32_t ctx__await_published(struct ctx *k, uint32_t w);

/* Registers `n` (CANCEL or AFTER, refs set, fields initialised) under
 * `reg`.  With `take_ref` (only when n->parent == reg), also takes n's
 * reference on its parent (in a shard's count when reg is sharded),
 * whether or not n ends up linked.  Returns 0, or the registry's error
 * word when `reg` is already done (then `n` is not linked, and *cause_out
 * holds reg's cause). */
uint32_t ctx__register(struct ctx *reg, struct ctx *n, int *cause_out,
                       int take_ref);

/* Unlinks `n` from its registry if it is still linked. */
void ctx__unregister(struct ctx *n);

/* Release helpers for sharded nodes (ctx_cancel.c).  put: gives back a
 * reference counted in shard `i` of `p`; returns 1 when that was all, 0
 * when the shard is dead and the caller must drop a reference on p->refs
 * instead.  collapse: called by the release that brought p->refs to
 * CTX__SHARD_BIAS; returns 1 when p must now be freed.  free: frees p's
 * shards (p is being freed; no list is in use). */
int ctx__shard_put(struct ctx *p, unsigned i);
int ctx__shards_collapse(struct ctx *p);
void ctx__shards_free(struct ctx *p);

/* Timer service (ctx_timer.c).  arm: 0 or ENOMEM; disarm: no-op when not
 * armed.  The heap holds no reference: a node being freed disarms itself,
 * and expiry skips a node whose count already reached zero. */
int ctx__timer_arm(struct ctx *c);
void ctx__timer_disarm(struct ctx *c);
int ctx__timer_shutdown(void);

/* Wake-ups (ctx_wait.c).  ctx__wake: wakes every futex sleeper of `c`
 * after its error was published (no lock held).  ctx__fd_signal: makes a
 * done eventfd readable. */
void ctx__wake(struct ctx *c);
void ctx__fd_signal(int fd);

/* AfterFunc (ctx_after.c): schedule `a`'s function on a library thread;
 * the scheduler takes over one reference on `a`. */
void ctx__after_fire(struct ctx *a);
int ctx__after_shutdown(void);

/* Tries to take a reference on a node whose count may have reached zero
 * concurrently; false when the node is already being freed. */
static inline int ctx__tryref(struct ctx *c)
{
    uint32_t r = atomic_load_explicit(&c->refs, memory_order_relaxed);
    while (r != 0) {
        if (atomic_compare_exchange_weak_explicit(&c->refs, &r, r + 1,
                                                  memory_order_acquire,
                                                  memory_order_relaxed))
            return 1;
    }
    return 0;
}

/* Polling before sleeping (ctx_pool.c workers, ctx_after.c executor):
 * a thread that has just finished a piece of work watches `*queued` (a
 * lock-free mirror of its queue's length) for up to CTX__POLL_NS before it
 * sleeps on its condition variable, yielding every 64 polls so it never
 * keeps a runnable thread off a CPU.  Returns true if work showed up (it
 * may still be taken by another thread first). */
#define CTX__POLL_NS (50 * 1000)

static inline bool ctx__poll_queue_for(_Atomic size_t *queued, int64_t ns)
{
    int64_t end = ctx_now() + ns;
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(queued, memory_order_relaxed) > 0)
            return true;
        if ((i & 63) == 0) {
            if (ctx_now() > end)
                return false;
            sched_yield();
        }
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
}

static inline bool ctx__poll_queue(_Atomic size_t *queued)
{
    return ctx__poll_queue_for(queued, CTX__POLL_NS);
}

#endif /* CTX_INTERNAL_H */
