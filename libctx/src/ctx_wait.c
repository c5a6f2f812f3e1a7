/*
 * ctx_wait.c -- blocking until a context is done: futex waits and the
 * pollable done fd.
 *
 * A CANCEL node's 32-bit `word` holds its error in the low bits and, in
 * bit 31, a flag saying that some thread sleeps on it.  Waiters set the flag
 * with a CAS and sleep in FUTEX_WAIT_BITSET on the word (absolute
 * CLOCK_MONOTONIC timeout); the canceller swaps the error in and, only when
 * the old value had the flag, wakes every sleeper.  So a cancel with nobody
 * waiting costs no system call, and waiting costs no fd and no allocation.
 *
 * The done fd is an eventfd made on first request, under the node's lock.
 * Either it exists when the node is cancelled (the canceller writes it,
 * under the same lock, before publishing the error) or it is made after
 * (the maker sees the error and writes it before handing the fd out).
 * While the canceller is between the write and the error, the word carries
 * CTX__PUBLISHING and ctx_err() waits on the lock: a readable fd always
 * means a non-zero ctx_err().  Nobody ever reads the fd: it stays readable.
 *
 * Deadlines.  A waiter on a context with a deadline sleeps at most until
 * the deadline, and if it wakes then with the context still live, it
 * expires the deadline's owner itself (the node whose own deadline it is),
 * exactly as the timer thread would: same error, same cause, and whichever
 * of the two comes first does it.  So the waiter is woken by its own
 * kernel timer (one wake-up), not by the timer thread's timer and then the
 * timer thread's FUTEX_WAKE (two wake-ups: on a mostly idle machine each
 * costs the wake-up of an idle CPU, ~100 us on a VM).
 */
#include "ctx_internal.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void to_timespec(int64_t ns, struct timespec *ts)
{
    ts->tv_sec = (time_t)(ns / CTX_SECOND);
    ts->tv_nsec = (long)(ns % CTX_SECOND);
}

void ctx__fd_signal(int fd)
{
    uint64_t one = 1;
    ssize_t r;
    do
        r = write(fd, &one, sizeof one);
    while (r < 0 && errno == EINTR);
    /* EAGAIN: the counter is already non-zero, which is all we need. */
}

void ctx__wake(struct ctx *c)
{
    syscall(SYS_futex, &c->u.c.word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

int ctx_done_fd(ctx_t *c)
{
    struct ctx *k = c ? c->canc : NULL;
    if (!k)
        return -1;
    /* The lock makes one eventfd per node.  The canceller does not take
     * it: it publishes the error, then reads `fd` (both seq_cst); here the
     * fd is stored, then the word read (seq_cst): one of the two sees the
     * other, and whoever sees both signals (twice is harmless). */
    ctx__lock(&k->u.c.lock);
    int fd = atomic_load_explicit(&k->u.c.fd, memory_order_relaxed), made = 0;
    if (fd < 0) {
        fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd < 0) {
            int e = errno;
            ctx__unlock(&k->u.c.lock);
            errno = e;
            return -1;
        }
        atomic_store_explicit(&k->u.c.fd, fd, memory_order_seq_cst);
        made = 1;
    }
    uint32_t w = atomic_load_explicit(&k->u.c.word, memory_order_seq_cst);
    ctx__unlock(&k->u.c.lock);
    if (made && (w & (CTX__ERR_MASK | CTX__CLAIMED))) {
        /* Claimed: the canceller may have read fd before it was set. */
        ctx__await_published(k, w);
        ctx__fd_signal(fd);
    }
    return fd;
}

/* The node whose own deadline `k` has (k's deadline is its nearest
 * ancestor-or-self's own deadline, copied down), or NULL.  The caller's
 * reference on k keeps the whole ancestry alive; these fields are fixed. */
static struct ctx *deadline_owner(struct ctx *k)
{
    int64_t d = k->u.c.deadline;
    for (struct ctx *n = k; n && n->kind != CTX_KIND_WITHOUT; n = n->parent)
        if (n->kind == CTX_KIND_CANCEL && (n->flags & CTX__F_OWNDL) &&
            n->u.c.deadline == d)
            return n;
    return NULL;
}

/* Sleeps until `abs` (CLOCK_MONOTONIC ns; INT64_MAX: forever) without a
 * context: the wait of contexts that can never be done. */
static void sleep_until(int64_t abs)
{
    if (abs == INT64_MAX) {
        for (;;)
            pause();
    }
    struct timespec ts;
    to_timespec(abs, &ts);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

int ctx_wait(ctx_t *c, int64_t timeout_ns)
{
    if (!c)
        return 0;
    int64_t abs = INT64_MAX;
    if (timeout_ns >= 0) {
        int64_t now = ctx_now();
        abs = timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
    }
    struct ctx *k = c->canc;
    if (!k) {
        if (timeout_ns != 0)
            sleep_until(abs);
        return 0;
    }
    _Atomic uint32_t *word = &k->u.c.word;
    struct ctx *owner = (k->flags & CTX__F_DEADLINE) ? deadline_owner(k) : NULL;
    int64_t dl = owner ? k->u.c.deadline : INT64_MAX;
    for (;;) {
        uint32_t w = atomic_load_explicit(word, memory_order_acquire);
        if (w & CTX__ERR_MASK)
            return (int)(w & CTX__ERR_MASK);
        if (timeout_ns == 0)
            return 0;
        if (!(w & CTX__WAITERS)) {
            if (!atomic_compare_exchange_weak_explicit(word, &w, w | CTX__WAITERS,
                                                       memory_order_acq_rel,
                                                       memory_order_acquire))
                continue;
            w |= CTX__WAITERS;
        }
        struct timespec ts, *tsp = NULL;
        int64_t until = abs < dl ? abs : dl;
        if (until != INT64_MAX) {
            int64_t now = ctx_now();
            if (now >= dl) {
                /* Our deadline: expire it here rather than wait for the
                 * timer thread (a no-op if it got there first). */
                ctx__cancel(owner, CTX_DEADLINE_EXCEEDED,
                            owner->u.c.timer_cause, 1);
                dl = INT64_MAX;
                continue;
            }
            if (now >= abs)
                return 0;
            to_timespec(until, &ts);
            tsp = &ts;
        }
        syscall(SYS_futex, word, FUTEX_WAIT_BITSET_PRIVATE, w, tsp, NULL,
                FUTEX_BITSET_MATCH_ANY);
    }
}
