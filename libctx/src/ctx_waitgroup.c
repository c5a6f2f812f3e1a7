/*
 * ctx_waitgroup.c -- Go's sync.WaitGroup: a counter, and waiters released
 * when it reaches zero.
 *
 * Purpose.  The seed's first coordination tool: "Add first, Done
 * concurrently, Wait last", reusable in cycles.
 *
 * State, all guarded by `mu`:
 *   counter   the count of outstanding Done calls (>= 0 always);
 *   waiters   threads blocked in Wait on the current cycle;
 *   leaving   threads released by the end of a cycle that have not yet
 *             re-acquired `mu` to return from Wait;
 *   gen       bumped each time a cycle ends with waiters; a waiter sleeps
 *             until gen moves past the value it saw (no lost or spurious
 *             wakeups).
 *
 *   counter > 0 --Add(-n) reaches 0--> counter == 0: waiters -> leaving,
 *        ^                                   |       gen++, broadcast
 *        +-- Add(+n): allowed only when leaving == 0 (else abort: the
 *            next cycle would start before the previous Wait returned)
 *
 * Invariants: waiters > 0 implies counter > 0 (a Wait on a zero counter
 * returns at once, and the transition to zero moves waiters to leaving).
 * Misuse aborts with a message (Go panics): negative counter; Add from zero
 * while leaving > 0.
 *
 * Threads: any.  Locks: `mu` only; no callback, no other lock under it.
 */
#include <ctx/waitgroup.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ctx_waitgroup {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t counter;
    int waiters;
    int leaving;
    uint64_t gen;
};

/* Misuse is a bug: say what happened and abort (Go's panic). */
static void die(const char *msg)
{
    /* write(2), not stdio: nothing buffered can be lost by abort(). */
    size_t n = strlen(msg);
    ssize_t w = write(STDERR_FILENO, msg, n);
    w = write(STDERR_FILENO, "\n", 1);
    (void)w;
    abort();
}

ctx_waitgroup_t *ctx_waitgroup_create(void)
{
    ctx_waitgroup_t *wg = calloc(1, sizeof(*wg));
    if (wg == NULL)
        return NULL;
    pthread_mutex_init(&wg->mu, NULL);
    pthread_cond_init(&wg->cv, NULL);
    return wg;
}

void ctx_waitgroup_destroy(ctx_waitgroup_t *wg)
{
    if (wg == NULL)
        return;
    pthread_mutex_lock(&wg->mu);
    if (wg->waiters + wg->leaving > 0)
        die("ctx_waitgroup: destroyed while a Wait is in progress");
    pthread_mutex_unlock(&wg->mu);
    pthread_cond_destroy(&wg->cv);
    pthread_mutex_destroy(&wg->mu);
    free(wg);
}

void ctx_waitgroup_add(ctx_waitgroup_t *wg, int64_t delta)
{
    if (wg == NULL)
        die("ctx_waitgroup: NULL wait group");
    pthread_mutex_lock(&wg->mu);
    int64_t v;
    if (__builtin_add_overflow(wg->counter, delta, &v))
        die("ctx_waitgroup: counter overflow");
    if (v < 0)
        die("ctx_waitgroup: negative counter");
    if (delta > 0 && wg->counter == 0 && wg->waiters + wg->leaving > 0)
        die("ctx_waitgroup: misuse: Add called concurrently with Wait: "
            "WaitGroup is reused before previous Wait has returned");
    wg->counter = v;
    if (v == 0 && wg->waiters > 0) {
        wg->leaving += wg->waiters;
        wg->waiters = 0;
        wg->gen++;
        pthread_cond_broadcast(&wg->cv);
    }
    pthread_mutex_unlock(&wg->mu);
}

void ctx_waitgroup_done(ctx_waitgroup_t *wg)
{
    ctx_waitgroup_add(wg, -1);
}

void ctx_waitgroup_wait(ctx_waitgroup_t *wg)
{
    if (wg == NULL)
        die("ctx_waitgroup: NULL wait group");
    pthread_mutex_lock(&wg->mu);
    if (wg->counter == 0) {
        pthread_mutex_unlock(&wg->mu);
        return;
    }
    uint64_t gen = wg->gen;
    wg->waiters++;
    while (wg->gen == gen)
        pthread_cond_wait(&wg->cv, &wg->mu);
    wg->leaving--;
    pthread_mutex_unlock(&wg->mu);
}

int64_t ctx_waitgroup_count(ctx_waitgroup_t *wg)
{
    if (wg == NULL)
        return 0;
    pthread_mutex_lock(&wg->mu);
    int64_t v = wg->counter;
    pthread_mutex_unlock(&wg->mu);
    return v;
}

int ctx_waitgroup_waiters(ctx_waitgroup_t *wg)
{
    if (wg == NULL)
        return 0;
    pthread_mutex_lock(&wg->mu);
    int n = wg->waiters + wg->leaving;
    pthread_mutex_unlock(&wg->mu);
    return n;
}
