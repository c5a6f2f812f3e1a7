/*
 * ctx_pool.c -- worker pool: N threads, one bounded FIFO queue.
 *
 * Purpose.  Run fn(ctx, arg) tasks on a fixed set of threads, the way Go runs
 * goroutines on its Ps, with backpressure instead of unbounded growth: the
 * queue is a ring allocated once, submit never allocates and never waits.
 *
 * Data.  One mutex `mu` guards everything mutable in struct ctx_pool: the
 * ring (`ring`, `head`, `count`), `running`, `idle`, and the lifecycle flags
 * (`accepting`, `stopping`, `discard`, `shutdown_started`, `joined`).  The
 * thread array is written only by create and read only by the one thread
 * that runs shutdown (the `shutdown_started` flag elects it).
 *
 * Invariants.
 *   - Every task in the ring holds one reference on its context; the worker
 *     (or the shutdown thread, for discarded tasks) releases it after the
 *     completion callback has returned.
 *   - A task accepted by submit gets exactly one callback: it is either
 *     popped by a worker (ran or skipped) or popped by shutdown(CANCEL)
 *     (discarded).  Nothing else removes tasks from the ring.
 *   - accepting == false from the moment shutdown starts; so the ring only
 *     shrinks after that and shutdown terminates.
 *   - No user code (task, callback) and no ctx call runs under `mu`.
 *
 * Threads.  `threads` workers loop: wait on `work_cv` for a task, pop it,
 * unlock, run it, relock.  A worker that has just run a task and finds the
 * queue empty polls `queued` (a lock-free mirror of `count`) for
 * CTX__POLL_NS before it sleeps, if fewer than max_spinners() others are
 * polling, so back-to-back submits reach a worker without a wake-up.
 * Submit still signals whenever a worker sleeps: holding that back while
 * one polls left the other asleep through a burst (100k back-to-back
 * submits queued for 2.4 ms at the median instead of 0.1 ms).
 * Workers exit when `stopping` is set and the queue is empty (DRAIN) or
 * immediately (CANCEL: `discard`, the shutdown thread pops the rest).
 * Workers block every signal, so process signals go to the application's
 * threads.  A thread-local pointer tells a worker which pool it belongs to,
 * so shutdown/destroy from inside a task is refused instead of deadlocking
 * on a self-join.
 *
 * Lock order: `mu` is the only lock here; nothing else is taken under it.
 */
#include <ctx/pool.h>

#include "ctx_internal.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define DEFAULT_QUEUE 1024u
#define MAX_THREADS 100000
#define MAX_QUEUE (SIZE_MAX / 2 / sizeof(struct task))

struct task {
    ctx_task_fn fn;
    void *arg;
    ctx_t *ctx; /* one reference, owned by the task */
    ctx_task_done_fn done;
    void *user_data;
};

struct ctx_pool {
    pthread_mutex_t mu;
    pthread_cond_t work_cv;  /* workers: a task arrived or stopping was set */
    pthread_cond_t state_cv; /* later shutdown callers: joined was set */

    struct task *ring; /* [cap] */
    size_t cap;
    size_t head;  /* index of the oldest task */
    size_t count; /* tasks in the ring */

    size_t running; /* tasks popped by workers and not finished */
    int idle;       /* workers blocked on work_cv */
    int spinning;   /* workers polling `queued` */
    atomic_size_t queued; /* == count, for the pollers (no lock) */

    bool accepting;        /* submit allowed */
    bool stopping;         /* workers should exit when the queue is empty */
    bool discard;          /* ... or at once: shutdown pops the queue */
    bool shutdown_started; /* one shutdown call owns the join */
    bool joined;           /* every worker has been joined */

    int nthreads;
    pthread_t *threads;
};

static _Thread_local const ctx_pool_t *current_pool;

void ctx_pool_options_init(ctx_pool_options_t *opts)
{
    if (opts == NULL)
        return;
    opts->threads = 0;
    opts->queue_capacity = 0;
    opts->stack_size = 0;
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

/* Pops the oldest task.  Caller holds mu and has checked count > 0. */
static struct task pop_locked(ctx_pool_t *p)
{
    struct task t = p->ring[p->head];
    p->head = (p->head + 1) % p->cap;
    p->count--;
    atomic_store_explicit(&p->queued, p->count, memory_order_relaxed);
    return t;
}

/* At most half the CPUs poll at once (Go's rule for spinning Ms): a pool
 * of 10,000 threads woken together must not burn 10,000 poll windows. */
static int max_spinners(void)
{
    static atomic_int n;
    int v = atomic_load_explicit(&n, memory_order_relaxed);
    if (v == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        v = cpus >= 4 ? (int)(cpus / 2) : 1;
        atomic_store_explicit(&n, v, memory_order_relaxed);
    }
    return v;
}

static void *worker_main(void *argp)
{
    ctx_pool_t *p = argp;
    current_pool = p;

    pthread_mutex_lock(&p->mu);
    bool ran_one = false;
    for (;;) {
        if (ran_one && p->count == 0 && !p->stopping &&
            p->spinning < max_spinners()) {
            p->spinning++;
            pthread_mutex_unlock(&p->mu);
            ctx__poll_queue(&p->queued);
            pthread_mutex_lock(&p->mu);
            p->spinning--;
        }
        while (p->count == 0 && !p->stopping) {
            p->idle++;
            pthread_cond_wait(&p->work_cv, &p->mu);
            p->idle--;
        }
        if (p->stopping && (p->count == 0 || p->discard))
            break;
        struct task t = pop_locked(p);
        p->running++;
        pthread_mutex_unlock(&p->mu);

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
    }
    pthread_mutex_unlock(&p->mu);
    current_pool = NULL;
    return NULL;
}

/* Sets stopping, wakes every worker and joins the first n threads. */
static void stop_and_join(ctx_pool_t *p, int n)
{
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < n; i++)
        pthread_join(p->threads[i], NULL);
}

static void free_pool(ctx_pool_t *p)
{
    pthread_cond_destroy(&p->state_cv);
    pthread_cond_destroy(&p->work_cv);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p->ring);
    free(p);
}

ctx_pool_t *ctx_pool_create(const ctx_pool_options_t *opts)
{
    ctx_pool_options_t o;
    ctx_pool_options_init(&o);
    if (opts != NULL)
        o = *opts;
    if (o.threads < 0 || o.threads > MAX_THREADS ||
        o.queue_capacity > MAX_QUEUE ||
        (o.stack_size != 0 && o.stack_size < (size_t)PTHREAD_STACK_MIN)) {
        errno = EINVAL;
        return NULL;
    }
    if (o.threads == 0)
        o.threads = ctx_pool_default_threads();
    if (o.queue_capacity == 0)
        o.queue_capacity = DEFAULT_QUEUE;

    ctx_pool_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    atomic_init(&p->queued, 0);
    p->ring = calloc(o.queue_capacity, sizeof(struct task));
    p->threads = calloc((size_t)o.threads, sizeof(pthread_t));
    if (p->ring == NULL || p->threads == NULL) {
        free(p->ring);
        free(p->threads);
        free(p);
        errno = ENOMEM;
        return NULL;
    }
    p->cap = o.queue_capacity;
    p->accepting = true;
    p->nthreads = o.threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->state_cv, NULL);

    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc == 0 && o.stack_size != 0)
        rc = pthread_attr_setstacksize(&attr, o.stack_size);
    if (rc != 0) {
        free_pool(p);
        errno = rc == ENOMEM ? ENOMEM : EINVAL;
        return NULL;
    }

    /* Workers inherit this mask: they never take process signals. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int started = 0;
    for (; started < o.threads; started++) {
        rc = pthread_create(&p->threads[started], &attr, worker_main, p);
        if (rc != 0)
            break;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);

    if (started < o.threads) {
        stop_and_join(p, started);
        free_pool(p);
        errno = rc == ENOMEM ? ENOMEM : EAGAIN;
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
    if (pool->idle > 0)
        pthread_cond_signal(&pool->work_cv);
    pthread_mutex_unlock(&pool->mu);
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
    pool->stopping = true;
    pthread_cond_broadcast(&pool->work_cv);

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
    pthread_mutex_unlock(&pool->mu);

    for (int i = 0; i < pool->nthreads; i++)
        pthread_join(pool->threads[i], NULL);

    pthread_mutex_lock(&pool->mu);
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
    return pool == NULL ? 0 : pool->nthreads;
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

bool ctx_pool_on_worker(const ctx_pool_t *pool)
{
    return pool != NULL && current_pool == pool;
}
