/*
 * ctx_timer.c -- the shared timer service: one thread, one min-heap.
 *
 * Every armed deadline is an entry in a binary min-heap ordered by
 * deadline; a node remembers its slot (heap_idx) so disarming is
 * O(log n).  One thread, started on the first arm, sleeps on a condition
 * variable (CLOCK_MONOTONIC, so precise: the kernel's hrtimers, not
 * millisecond ticks) until the earliest deadline, pops every expired node,
 * and cancels it outside the heap lock with CTX_DEADLINE_EXCEEDED.
 *
 * The heap holds no reference.  A node whose last reference goes away
 * disarms itself (ctx_release); the thread takes a reference on an expired
 * node only if its count has not reached zero (ctx__tryref), all under the
 * heap lock, so it never touches a node being freed.
 *
 * Wake-ups are lazy: the thread records the time it sleeps until
 * (`wake_at`), and arming signals it only when the new deadline is earlier.
 * Disarming never signals: at worst the thread wakes once, finds nothing
 * due, and sleeps again.  So create+cancel of far deadlines costs no
 * system call.
 *
 * Lock: `mu` guards every field below and every node's heap_idx.  It is
 * never held while taking a node lock, nor while cancelling.
 */
#include "ctx_internal.h"

#include <errno.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <stdbool.h>
#include <time.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;
static pthread_once_t cv_once = PTHREAD_ONCE_INIT;
static struct ctx **heap;
static size_t heap_len, heap_cap;
static pthread_t thread;
static bool running, stopping;
static int64_t wake_at = INT64_MAX;

static void cv_init(void)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&cv, &a);
    pthread_condattr_destroy(&a);
}

static void place(size_t i, struct ctx *n)
{
    heap[i] = n;
    atomic_store_explicit(&n->u.c.heap_idx, (int32_t)i, memory_order_relaxed);
}

static void sift_up(size_t i)
{
    struct ctx *n = heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (heap[p]->u.c.deadline <= n->u.c.deadline)
            break;
        place(i, heap[p]);
        i = p;
    }
    place(i, n);
}

static void sift_down(size_t i)
{
    struct ctx *n = heap[i];
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        int64_t best = n->u.c.deadline;
        if (l < heap_len && heap[l]->u.c.deadline < best) {
            m = l;
            best = heap[l]->u.c.deadline;
        }
        if (l + 1 < heap_len && heap[l + 1]->u.c.deadline < best)
            m = l + 1;
        if (m == i)
            break;
        place(i, heap[m]);
        i = m;
    }
    place(i, n);
}

static void remove_at(size_t i)
{
    struct ctx *gone = heap[i];
    /* Last touch of `gone`: its releaser may free it once it reads -1. */
    atomic_store_explicit(&gone->u.c.heap_idx, -1, memory_order_release);
    heap_len--;
    if (i == heap_len)
        return;
    place(i, heap[heap_len]);
    if (i > 0 && heap[(i - 1) / 2]->u.c.deadline > heap[i]->u.c.deadline)
        sift_up(i);
    else
        sift_down(i);
}

static void *timer_main(void *unused)
{
    enum { BATCH = 64 };
    struct ctx *due[BATCH];
    /* Deadlines are the one thing this thread does: no 50 us slack. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    pthread_mutex_lock(&mu);
    while (!stopping) {
        if (heap_len == 0) {
            wake_at = INT64_MAX;
            pthread_cond_wait(&cv, &mu);
            continue;
        }
        int64_t now = ctx_now();
        if (heap[0]->u.c.deadline > now) {
            wake_at = heap[0]->u.c.deadline;
            struct timespec ts = {(time_t)(wake_at / CTX_SECOND),
                                  (long)(wake_at % CTX_SECOND)};
            pthread_cond_timedwait(&cv, &mu, &ts);
            continue;
        }
        size_t n = 0;
        while (n < BATCH && heap_len > 0 && heap[0]->u.c.deadline <= now) {
            /* Reference first: once its slot reads -1, a dying node may
             * be freed by its releaser without taking our lock. */
            struct ctx *c = heap[0];
            if (ctx__tryref(c))
                due[n++] = c;
            remove_at(0);
        }
        pthread_mutex_unlock(&mu);
        for (size_t i = 0; i < n; i++) {
            ctx__cancel(due[i], CTX_DEADLINE_EXCEEDED, due[i]->u.c.timer_cause, 1);
            ctx_release(due[i]);
        }
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

int ctx__timer_arm(struct ctx *c)
{
    pthread_once(&cv_once, cv_init);
    pthread_mutex_lock(&mu);
    if (heap_len == heap_cap) {
        size_t cap = heap_cap ? heap_cap * 2 : 64;
        struct ctx **h = ctx__malloc(cap * sizeof *h);
        if (!h) {
            pthread_mutex_unlock(&mu);
            return ENOMEM;
        }
        for (size_t i = 0; i < heap_len; i++)
            h[i] = heap[i];
        free(heap);
        heap = h;
        heap_cap = cap;
    }
    if (!running) {
        if (pthread_create(&thread, NULL, timer_main, NULL) != 0) {
            pthread_mutex_unlock(&mu);
            return ENOMEM;
        }
        running = true;
    }
    heap[heap_len++] = c;
    sift_up(heap_len - 1);
    if (c->u.c.deadline < wake_at) {
        wake_at = c->u.c.deadline;
        pthread_cond_signal(&cv);
    }
    pthread_mutex_unlock(&mu);
    return 0;
}

void ctx__timer_disarm(struct ctx *c)
{
    /* A slot of -1 is final (a node is armed once, at creation), so it
     * can be trusted without the lock. */
    if (atomic_load_explicit(&c->u.c.heap_idx, memory_order_acquire) < 0)
        return;
    pthread_mutex_lock(&mu);
    int32_t i = atomic_load_explicit(&c->u.c.heap_idx, memory_order_relaxed);
    if (i >= 0)
        remove_at((size_t)i);
    pthread_mutex_unlock(&mu);
}

size_t ctx_debug_timers(void)
{
    pthread_mutex_lock(&mu);
    size_t n = heap_len;
    pthread_mutex_unlock(&mu);
    return n;
}

int ctx__timer_threads(void);
int ctx__timer_threads(void)
{
    pthread_mutex_lock(&mu);
    int n = running;
    pthread_mutex_unlock(&mu);
    return n;
}

int ctx__timer_shutdown(void)
{
    pthread_mutex_lock(&mu);
    if (heap_len > 0) {
        pthread_mutex_unlock(&mu);
        return EBUSY;
    }
    if (!running) {
        free(heap);
        heap = NULL;
        heap_cap = 0;
        pthread_mutex_unlock(&mu);
        return 0;
    }
    stopping = true;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(thread, NULL);
    pthread_mutex_lock(&mu);
    running = stopping = false;
    wake_at = INT64_MAX;
    free(heap);
    heap = NULL;
    heap_cap = 0;
    pthread_mutex_unlock(&mu);
    return 0;
}
