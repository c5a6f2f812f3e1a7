/*
 * ctx_pool.c -- worker pool: a growing set of threads, one bounded FIFO
 * queue.
 *
 * Purpose.  Run fn(ctx, arg) tasks on threads, the way Go runs goroutines:
 * a few threads do the work while it is CPU work, and another thread
 * starts whenever every thread is taken and work waits (Go adds an M when
 * a goroutine blocks in a syscall; grpc C++'s sync server grows its pool
 * the same way).  The queue is a ring allocated once: submit never
 * allocates and never waits (EAGAIN when full).
 *
 * Worker states (one thread):
 *
 *      spawn --> COMING --takes a task--> RUNNING --done, queue empty--+
 *                  ^                        ^  |                       |
 *                  |                        |  +--done, queue non-empty+
 *       woken by   |                        |                          v
 *       a waker    +---- PARKED <--poll ran out-- SPINNING (poll <= 10 us)
 *                          |
 *                          +--idle_timeout, above `threads`--> RETIRED
 *
 * Waking (Go's scheduler rule).  A waker -- submit, or a worker that took
 * a task and left more behind -- wakes a thread only when none is already
 * spinning or coming: one thread on its way per burst, and that thread,
 * when it takes a task and leaves more behind, wakes the next.  The parked
 * threads form a LIFO stack: the most recently idle thread (warm caches,
 * its stack in memory) is woken first, and the ones at the bottom retire.
 * Each parked thread sleeps on its own futex word, so waking one costs one
 * FUTEX_WAKE and never wakes another; idle threads cost the hot path
 * nothing, whatever their number.  A thread that has just finished a task
 * polls the queue for SPIN_NS before it parks, at most max_spinners()
 * threads poll at once, and only while polling pays: `spin_credit` grows
 * when a poll finds a task (or when a thread that was denied the poll is
 * woken within SPIN_NS of parking) and shrinks twice as fast when a poll
 * runs out, so tasks that come one at a time, far apart, cost no poll.
 *
 * Growth.  When a waker finds no thread spinning, coming or parked, and
 * work is queued, it starts a thread (up to `max_threads`) -- every queued
 * task always has a thread on its way, so a pool whose threads all block
 * in long tasks still runs new ones.  pthread_create runs outside the lock.
 * A thread parked for `idle_timeout_ns` while more than `threads` are alive
 * retires: it leaves, and the next thread to leave (or shutdown) joins it.
 *
 * Data.  One mutex `mu` guards everything mutable in struct ctx_pool: the
 * ring (`ring`, `head`, `count`), the counters, the parked stack, the
 * worker lists and the lifecycle flags.  A worker's `wake` word is written
 * under `mu` (set by its waker when popped off the stack) and read without
 * it by its own thread.  Worker records are never freed before the pool:
 * a waker may call FUTEX_WAKE on one after dropping `mu`, and a retired
 * thread's record is reused by the next spawn.
 *
 * Invariants.
 *   - Every task in the ring holds one reference on its context; the worker
 *     (or the shutdown thread, for discarded tasks) releases it after the
 *     completion callback has returned.
 *   - A task accepted by submit gets exactly one callback: it is either
 *     popped by a worker (ran or skipped) or popped by shutdown(CANCEL)
 *     (discarded).
 *   - count > 0 implies: a thread is spinning or coming, or no thread is
 *     parked and live == max_threads (or a spawn failed): then the next
 *     thread to finish a task takes it.
 *   - accepting == false from the moment shutdown starts; the ring only
 *     shrinks after that and shutdown terminates.
 *   - No user code (task, callback) and no ctx call runs under `mu`.
 *
 * Exit.  A leaving thread (retired, or stopping) swaps itself into
 * `zombie` and joins the thread it found there, so every thread is joined
 * exactly once: by the next one to leave, or by shutdown, which waits for
 * `live` to reach 0 and joins the last.  Workers block every signal and
 * run with a 1 us timer slack (a task's ctx_wait wakes at its deadline).  A
 * thread-local pointer tells a worker which pool it belongs to, so
 * shutdown/destroy from inside a task is refused instead of deadlocking.
 *
 * Lock order: `mu` is the only lock here; nothing else is taken under it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* PTHREAD_MUTEX_ADAPTIVE_NP */
#endif
#include <ctx/pool.h>

#include "ctx_internal.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_QUEUE 1024u
/* How long a worker that has just finished a task polls for the next one
 * before it parks.  About what a futex wake-up costs the two threads
 * involved: longer windows bought no latency in bench/runtime_bench but
 * cost their whole length in CPU per task whenever the next task came
 * later (50 us: 78 us of CPU per lone task, 10 us: 38 us, none: 28 us). */
#define SPIN_NS (10 * 1000)
/* Most poll credit a pool banks (see worker_main). */
#define SPIN_CREDIT_MAX 8
#define MAX_THREADS 100000
#define MAX_QUEUE (SIZE_MAX / 2 / sizeof(struct task))

struct task {
    ctx_task_fn fn;
    void *arg;
    ctx_t *ctx; /* one reference, owned by the task */
    ctx_task_done_fn done;
    void *user_data;
};

struct worker {
    _Atomic uint32_t wake;     /* 1: popped off the parked stack [mu]    */
    struct worker *up, *down;  /* parked stack links (up: newer) [mu]     */
    struct worker *next;       /* free list / zombie chain [mu]           */
    struct worker *all;        /* every record, for free_pool; fixed      */
    pthread_t tid;             /* written by the thread itself [mu]       */
    ctx_pool_t *pool;
};

struct ctx_pool {
    pthread_mutex_t mu;
    pthread_cond_t state_cv; /* shutdown: live reached 0; joined was set */

    struct task *ring; /* [cap] */
    size_t cap;
    size_t head;  /* index of the oldest task */
    size_t count; /* tasks in the ring */
    atomic_size_t queued; /* == count, for the pollers (no lock) */

    size_t running; /* tasks popped by workers and not finished */
    int live;       /* threads started and not yet left */
    int parked;     /* threads on the parked stack */
    int spinning;   /* threads polling `queued` */
    int spin_credit; /* polls worth trying: +1 for a poll that found work
                        or a park that a task ended within SPIN_NS, -2 for
                        a poll that ran out (see worker_main) */
    int coming;     /* threads woken or started, not yet at the queue */
    int peak;       /* most threads alive at once */
    uint64_t started, retired;

    struct worker *top;    /* parked stack: most recently idle first */
    struct worker *free;   /* records of joined threads, for reuse */
    struct worker *zombie; /* the last thread to leave, not yet joined */
    struct worker *all;    /* every record */

    bool accepting;        /* submit allowed */
    bool stopping;         /* workers should exit when the queue is empty */
    bool discard;          /* ... or at once: shutdown pops the queue */
    bool shutdown_started; /* one shutdown call owns the join */
    bool joined;           /* every worker has been joined */

    int min_threads; /* fixed */
    int max_threads; /* fixed */
    int64_t idle_timeout_ns; /* fixed */
    size_t stack_size;       /* fixed */
    bool sched_batch;        /* fixed */
};

static _Thread_local const ctx_pool_t *current_pool;

void ctx_pool_options_init(ctx_pool_options_t *opts)
{
    if (opts == NULL)
        return;
    opts->threads = 0;
    opts->queue_capacity = 0;
    opts->stack_size = 0;
    opts->max_threads = 0;
    opts->idle_timeout_ns = 0;
    opts->sched_batch = false;
}

int ctx_pool_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    if (n > MAX_THREADS)
        return MAX_THREADS;
    return (int)n;
}

/* ---- futex words -------------------------------------------------------- */

static void futex_wake_one(_Atomic uint32_t *w)
{
    syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Waits while *w == 0, until the absolute CLOCK_MONOTONIC time `abs`
 * (INT64_MAX: forever).  Returns true when *w became non-zero. */
static bool park_until(_Atomic uint32_t *w, int64_t abs)
{
    for (;;) {
        if (atomic_load_explicit(w, memory_order_acquire) != 0)
            return true;
        struct timespec ts, *tsp = NULL;
        if (abs != INT64_MAX) {
            if (ctx_now() >= abs)
                return false;
            ts.tv_sec = (time_t)(abs / CTX_SECOND);
            ts.tv_nsec = (long)(abs % CTX_SECOND);
            tsp = &ts;
        }
        syscall(SYS_futex, w, FUTEX_WAIT_BITSET_PRIVATE, 0, tsp, NULL,
                FUTEX_BITSET_MATCH_ANY);
    }
}

/* ---- the queue and the parked stack (mu held) ------------------------- */

/* Pops the oldest task.  Caller has checked count > 0. */
static struct task pop_locked(ctx_pool_t *p)
{
    struct task t = p->ring[p->head];
    p->head = (p->head + 1) % p->cap;
    p->count--;
    atomic_store_explicit(&p->queued, p->count, memory_order_relaxed);
    return t;
}

static void push_parked(ctx_pool_t *p, struct worker *w)
{
    w->up = NULL;
    w->down = p->top;
    if (p->top)
        p->top->up = w;
    p->top = w;
    p->parked++;
}

static void remove_parked(ctx_pool_t *p, struct worker *w)
{
    if (w->up)
        w->up->down = w->down;
    else
        p->top = w->down;
    if (w->down)
        w->down->up = w->up;
    w->up = w->down = NULL;
    p->parked--;
}

/* At most half the CPUs the process may run on poll at once (Go's rule
 * for spinning Ms): a pool of 10,000 threads must not burn 10,000 poll
 * windows.  Below 4 CPUs one thread polls: on one CPU its poll yields the
 * CPU to the thread that produces the next task (an event loop, say),
 * whose submit then finds a poller and makes no FUTEX_WAKE. */
static int max_spinners(void)
{
    static atomic_int n = -1;
    int v = atomic_load_explicit(&n, memory_order_relaxed);
    if (v < 0) {
        cpu_set_t set;
        long cpus = sched_getaffinity(0, sizeof set, &set) == 0
                        ? CPU_COUNT(&set)
                        : sysconf(_SC_NPROCESSORS_ONLN);
        v = cpus >= 4 ? (int)(cpus / 2) : 1;
        atomic_store_explicit(&n, v, memory_order_relaxed);
    }
    return v;
}

/* What a waker does once it has dropped mu. */
struct summon {
    struct worker *wake;  /* FUTEX_WAKE this one */
    struct worker *spawn; /* start a thread on this record */
};

static struct worker *record_locked(ctx_pool_t *p)
{
    struct worker *w = p->free;
    if (w) {
        p->free = w->next;
    } else {
        w = calloc(1, sizeof *w);
        if (!w)
            return NULL;
        w->pool = p;
        w->all = p->all;
        p->all = w;
    }
    w->next = w->up = w->down = NULL;
    atomic_store_explicit(&w->wake, 0, memory_order_relaxed);
    return w;
}

/* Makes sure a thread is on its way to the queue: none if one is spinning
 * or coming already; else the most recently parked one; else a new one,
 * below max_threads.  Call with mu held and count > 0, then act_summon()
 * after dropping mu. */
static void summon_locked(ctx_pool_t *p, struct summon *s)
{
    if (p->spinning > 0 || p->coming > 0)
        return;
    if (p->top) {
        struct worker *w = p->top;
        remove_parked(p, w);
        atomic_store_explicit(&w->wake, 1, memory_order_release);
        p->coming++;
        s->wake = w;
    } else if (p->live < p->max_threads && !p->discard) {
        struct worker *w = record_locked(p);
        if (!w)
            return; /* a running thread will get to the task */
        p->live++;
        p->coming++;
        if (p->live > p->peak)
            p->peak = p->live;
        s->spawn = w;
    }
}

static void *worker_main(void *argp);

/* Starts a thread on record `w` (counted in live and coming already);
 * undoes the counts if it cannot.  No lock held.  Returns 0 or an errno. */
static int start_thread(ctx_pool_t *p, struct worker *w)
{
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc == 0 && p->stack_size != 0)
        rc = pthread_attr_setstacksize(&attr, p->stack_size);
    if (rc == 0) {
        /* The thread inherits this mask: it never takes process signals. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_t tid;
        rc = pthread_create(&tid, &attr, worker_main, w);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
    }
    pthread_mutex_lock(&p->mu);
    if (rc == 0) {
        p->started++;
    } else {
        p->live--;
        p->coming--;
        w->next = p->free;
        p->free = w;
        if (p->live == 0)
            pthread_cond_broadcast(&p->state_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static void act_summon(ctx_pool_t *p, const struct summon *s)
{
    if (s->wake)
        futex_wake_one(&s->wake->wake);
    if (s->spawn)
        start_thread(p, s->spawn);
}

/* ---- the worker --------------------------------------------------------- */

/* Leaves the pool (mu held; returns with it dropped): hands itself to the
 * next joiner and joins the previous leaver. */
static void leave(ctx_pool_t *p, struct worker *w)
{
    w->tid = pthread_self();
    struct worker *prev = p->zombie;
    p->zombie = w;
    p->live--;
    if (p->live == 0)
        pthread_cond_broadcast(&p->state_cv);
    pthread_mutex_unlock(&p->mu);
    if (prev) {
        pthread_join(prev->tid, NULL);
        pthread_mutex_lock(&p->mu);
        prev->next = p->free;
        p->free = prev;
        pthread_mutex_unlock(&p->mu);
    }
}

static void *worker_main(void *argp)
{
    struct worker *w = argp;
    ctx_pool_t *p = w->pool;
    current_pool = p;
    /* Tasks wait for deadlines (ctx_wait sleeps until its context's
     * deadline): wake on time, not up to 50 us late. */
    prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
    if (p->sched_batch) {
        /* Not for new threads to inherit from pthread_create's caller: a
         * worker started by another worker has it already, any other
         * gets it here.  Best effort (a seccomp profile may refuse). */
        struct sched_param sp = {0};
        pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
    }

    pthread_mutex_lock(&p->mu);
    bool coming = true; /* counted by whoever started or woke us */
    bool ran_one = false;
    for (;;) {
        if (p->count > 0 && !p->discard) {
            if (coming) {
                p->coming--;
                coming = false;
            }
            struct task t = pop_locked(p);
            p->running++;
            struct summon s = {NULL, NULL};
            if (p->count > 0) /* the rest must not wait behind this task */
                summon_locked(p, &s);
            pthread_mutex_unlock(&p->mu);
            act_summon(p, &s);

            int err = ctx_err(t.ctx);
            bool ran = false;
            if (err == 0) {
                err = t.fn(t.ctx, t.arg);
                ran = true;
            }
            if (t.done != NULL)
                t.done(err, ran, t.arg, t.user_data);
            ctx_release(t.ctx);

            pthread_mutex_lock(&p->mu);
            p->running--;
            ran_one = true;
            continue;
        }
        if (coming) {
            p->coming--;
            coming = false;
        }
        if (p->stopping)
            break;
        /* Poll only while polling pays: tasks that come in bursts are caught
         * without a FUTEX_WAKE, but a task every 100 us (one client, one
         * call at a time) would pay the whole window for nothing, every
         * time.  A park that a task ends within the window earns the poll
         * back. */
        if (ran_one && p->spinning < max_spinners() && p->spin_credit > 0) {
            ran_one = false;
            p->spinning++;
            pthread_mutex_unlock(&p->mu);
            bool found = ctx__poll_queue_for(&p->queued, SPIN_NS);
            pthread_mutex_lock(&p->mu);
            p->spinning--;
            p->spin_credit = found ? (p->spin_credit < SPIN_CREDIT_MAX
                                          ? p->spin_credit + 1
                                          : SPIN_CREDIT_MAX)
                                   : p->spin_credit - 2;
            continue;
        }
        bool could_poll = ran_one;
        ran_one = false;

        /* Park: for at most the idle timeout while the pool has more
         * threads than it started with (any of them may retire: the ones
         * at the bottom of the stack time out first), else until woken. */
        atomic_store_explicit(&w->wake, 0, memory_order_relaxed);
        push_parked(p, w);
        /* Denied a poll for want of credit: time the park, to learn
         * whether the poll would have caught the next task. */
        int64_t parked_at = could_poll && p->spin_credit <= 0 ? ctx_now() : 0;
        int64_t until = INT64_MAX;
        if (p->live > p->min_threads) {
            int64_t now = ctx_now();
            if (p->idle_timeout_ns < INT64_MAX - now)
                until = now + p->idle_timeout_ns;
        }
        pthread_mutex_unlock(&p->mu);
        park_until(&w->wake, until);
        pthread_mutex_lock(&p->mu);
        if (atomic_load_explicit(&w->wake, memory_order_relaxed)) {
            coming = true; /* our waker took us off the stack */
            if (parked_at != 0 && ctx_now() - parked_at < SPIN_NS &&
                p->spin_credit < SPIN_CREDIT_MAX)
                p->spin_credit++;
            continue;
        }
        remove_parked(p, w);
        if (!p->stopping && p->count == 0 && p->live > p->min_threads &&
            ctx_now() >= until) {
            p->retired++;
            break;
        }
    }
    current_pool = NULL;
    leave(p, w);
    return NULL;
}

/* ---- lifecycle ---------------------------------------------------------- */

static void free_pool(ctx_pool_t *p)
{
    while (p->all) {
        struct worker *w = p->all;
        p->all = w->all;
        free(w);
    }
    pthread_cond_destroy(&p->state_cv);
    pthread_mutex_destroy(&p->mu);
    free(p->ring);
    free(p);
}

/* Stops every thread (mu held on entry and on return): wakes the parked
 * ones, waits for live == 0, joins the last leaver (who joined the one
 * before it, and so on). */
static void stop_all_locked(ctx_pool_t *p)
{
    p->stopping = true;
    while (p->top) {
        struct worker *w = p->top;
        remove_parked(p, w);
        atomic_store_explicit(&w->wake, 1, memory_order_release);
        p->coming++;
        /* Records outlive their threads: waking one after it left is a
         * harmless no-op, so mu may be held here. */
        futex_wake_one(&w->wake);
    }
    while (p->live > 0)
        pthread_cond_wait(&p->state_cv, &p->mu);
    struct worker *z = p->zombie;
    p->zombie = NULL;
    if (z) {
        pthread_mutex_unlock(&p->mu);
        pthread_join(z->tid, NULL);
        pthread_mutex_lock(&p->mu);
        z->next = p->free;
        p->free = z;
    }
}

ctx_pool_t *ctx_pool_create(const ctx_pool_options_t *opts)
{
    ctx_pool_options_t o;
    ctx_pool_options_init(&o);
    if (opts != NULL)
        o = *opts;
    if (o.threads < 0 || o.threads > MAX_THREADS || o.max_threads < 0 ||
        o.max_threads > MAX_THREADS || o.idle_timeout_ns < 0 ||
        o.queue_capacity > MAX_QUEUE ||
        (o.stack_size != 0 && o.stack_size < (size_t)PTHREAD_STACK_MIN)) {
        errno = EINVAL;
        return NULL;
    }
    if (o.threads == 0)
        o.threads = ctx_pool_default_threads();
    if (o.max_threads == 0)
        o.max_threads = o.threads > CTX_POOL_DEFAULT_MAX_THREADS
                            ? o.threads
                            : CTX_POOL_DEFAULT_MAX_THREADS;
    if (o.max_threads < o.threads) {
        errno = EINVAL;
        return NULL;
    }
    if (o.idle_timeout_ns == 0)
        o.idle_timeout_ns = CTX_POOL_DEFAULT_IDLE_TIMEOUT;
    if (o.queue_capacity == 0)
        o.queue_capacity = DEFAULT_QUEUE;

    ctx_pool_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    atomic_init(&p->queued, 0);
    p->ring = calloc(o.queue_capacity, sizeof(struct task));
    if (p->ring == NULL) {
        free(p);
        errno = ENOMEM;
        return NULL;
    }
    p->cap = o.queue_capacity;
    p->accepting = true;
    p->min_threads = o.threads;
    p->max_threads = o.max_threads;
    p->idle_timeout_ns = o.idle_timeout_ns;
    p->stack_size = o.stack_size;
    p->spin_credit = SPIN_CREDIT_MAX;
    p->sched_batch = o.sched_batch;
    /* Adaptive: critical sections are a few dozen instructions, and a
     * mass wake-up sends hundreds of threads through them at once; a
     * short spin beats a futex sleep and a second context switch. */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&p->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    pthread_cond_init(&p->state_cv, NULL);

    int rc = 0;
    for (int i = 0; i < o.threads && rc == 0; i++) {
        pthread_mutex_lock(&p->mu);
        struct worker *w = record_locked(p);
        if (w) {
            p->live++;
            p->coming++;
            p->peak = p->live;
        }
        pthread_mutex_unlock(&p->mu);
        rc = w ? start_thread(p, w) : ENOMEM;
    }
    if (rc != 0) {
        pthread_mutex_lock(&p->mu);
        p->accepting = false;
        stop_all_locked(p);
        pthread_mutex_unlock(&p->mu);
        free_pool(p);
        errno = rc == ENOMEM ? ENOMEM : rc == EINVAL ? EINVAL : EAGAIN;
        return NULL;
    }
    return p;
}

int ctx_pool_submit_cb(ctx_pool_t *pool, ctx_t *ctx, ctx_task_fn fn,
                       void *arg, ctx_task_done_fn done, void *user_data)
{
    if (pool == NULL || ctx == NULL || fn == NULL)
        return EINVAL;
    ctx_t *ref = ctx_retain(ctx); /* outside mu: no ctx call under it */
    int rc = 0;
    pthread_mutex_lock(&pool->mu);
    if (!pool->accepting)
        rc = EPIPE;
    else if (pool->count == pool->cap)
        rc = EAGAIN;
    if (rc != 0) {
        pthread_mutex_unlock(&pool->mu);
        ctx_release(ref);
        return rc;
    }
    struct task *t = &pool->ring[(pool->head + pool->count) % pool->cap];
    t->fn = fn;
    t->arg = arg;
    t->ctx = ref;
    t->done = done;
    t->user_data = user_data;
    pool->count++;
    atomic_store_explicit(&pool->queued, pool->count, memory_order_relaxed);
    struct summon s = {NULL, NULL};
    summon_locked(pool, &s);
    pthread_mutex_unlock(&pool->mu);
    act_summon(pool, &s);
    return 0;
}

int ctx_pool_submit(ctx_pool_t *pool, ctx_t *ctx, ctx_task_fn fn, void *arg)
{
    return ctx_pool_submit_cb(pool, ctx, fn, arg, NULL, NULL);
}

int ctx_pool_shutdown(ctx_pool_t *pool, ctx_pool_shutdown_mode_t mode)
{
    if (pool == NULL || (mode != CTX_POOL_DRAIN && mode != CTX_POOL_CANCEL))
        return EINVAL;
    if (current_pool == pool)
        return EDEADLK;

    pthread_mutex_lock(&pool->mu);
    if (pool->shutdown_started) {
        while (!pool->joined)
            pthread_cond_wait(&pool->state_cv, &pool->mu);
        pthread_mutex_unlock(&pool->mu);
        return 0;
    }
    pool->shutdown_started = true;
    pool->accepting = false;
    pool->discard = mode == CTX_POOL_CANCEL;

    /* CANCEL: workers leave the queue alone once `discard` is set; empty it
     * here, one task at a time, calling back with no lock held. */
    while (pool->discard && pool->count > 0) {
        struct task t = pop_locked(pool);
        pthread_mutex_unlock(&pool->mu);
        if (t.done != NULL)
            t.done(ECANCELED, false, t.arg, t.user_data);
        ctx_release(t.ctx);
        pthread_mutex_lock(&pool->mu);
    }
    /* DRAIN: workers run what is queued (growing if they must) before
     * they see `stopping` with an empty queue. */
    stop_all_locked(pool);
    pool->joined = true;
    pthread_cond_broadcast(&pool->state_cv);
    pthread_mutex_unlock(&pool->mu);
    return 0;
}

void ctx_pool_destroy(ctx_pool_t *pool)
{
    if (pool == NULL)
        return;
    if (current_pool == pool) {
        fputs("ctx_pool_destroy: called from one of the pool's own threads "
              "(it would join itself)\n", stderr);
        abort();
    }
    ctx_pool_shutdown(pool, CTX_POOL_DRAIN);
    free_pool(pool);
}

int ctx_pool_threads(const ctx_pool_t *pool)
{
    return pool == NULL ? 0 : pool->min_threads;
}

int ctx_pool_max_threads(const ctx_pool_t *pool)
{
    return pool == NULL ? 0 : pool->max_threads;
}

size_t ctx_pool_capacity(const ctx_pool_t *pool)
{
    return pool == NULL ? 0 : pool->cap;
}

size_t ctx_pool_queued(ctx_pool_t *pool)
{
    if (pool == NULL)
        return 0;
    pthread_mutex_lock(&pool->mu);
    size_t n = pool->count;
    pthread_mutex_unlock(&pool->mu);
    return n;
}

size_t ctx_pool_running(ctx_pool_t *pool)
{
    if (pool == NULL)
        return 0;
    pthread_mutex_lock(&pool->mu);
    size_t n = pool->running;
    pthread_mutex_unlock(&pool->mu);
    return n;
}

void ctx_pool_stats(ctx_pool_t *pool, ctx_pool_stats_t *out)
{
    if (out == NULL)
        return;
    *out = (ctx_pool_stats_t){0};
    if (pool == NULL)
        return;
    pthread_mutex_lock(&pool->mu);
    out->live_threads = pool->live;
    out->parked_threads = pool->parked;
    out->peak_threads = pool->peak;
    out->started = pool->started;
    out->retired = pool->retired;
    out->running = pool->running;
    out->queued = pool->count;
    pthread_mutex_unlock(&pool->mu);
}

bool ctx_pool_on_worker(const ctx_pool_t *pool)
{
    return pool != NULL && current_pool == pool;
}
