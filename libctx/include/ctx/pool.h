/*
 * <ctx/pool.h> -- a pool of worker threads with a bounded queue: the C
 * stand-in for "go f()" in libctx's worker runtime.
 *
 *   ctx_pool_t *pool = ctx_pool_create(NULL);          N = online CPUs
 *   int rc = ctx_pool_submit(pool, req_ctx, work, arg); 0, EAGAIN, EPIPE
 *   ...
 *   ctx_pool_destroy(pool);                            drains and joins
 *
 * Threads.  The pool starts `threads` workers and grows when its workers
 * block: whenever a task is queued while every worker is busy (none idle,
 * none already on its way to the queue), it starts another thread, up to
 * `max_threads` (default CTX_POOL_DEFAULT_MAX_THREADS).  So tasks that
 * block for a long time (a streaming handler, a task waiting for another
 * task) never starve the ones queued behind them, as goroutines never do.
 * A thread beyond the first `threads` that stays idle for `idle_timeout_ns`
 * (default CTX_POOL_DEFAULT_IDLE_TIMEOUT) exits.  An idle worker costs
 * nothing: a task wakes the most recently idle worker (LIFO), and only
 * when no worker is already polling for work or on its way, so the CPU
 * per task does not depend on how many threads the pool has.  Set
 * max_threads = threads for a fixed pool (the behaviour before growth).
 *
 * A task is fn(ctx, arg) plus an optional completion callback.  The pool
 * takes a reference on the task's context while the task is queued or
 * running and gives it back after the completion callback has returned.
 * When a worker picks a task up whose context is already done, fn is not
 * run: the completion callback gets ctx_err(ctx) and ran == false instead.
 * The pool never cancels a context itself; cancel the contexts you own.
 *
 * Backpressure.  The queue is a fixed ring allocated at creation.  Submitting
 * to a full queue fails at once with EAGAIN: ctx_pool_submit() never waits
 * for space, so an event loop may call it (it takes one short internal lock).
 *
 * Lifecycle (one per pool):
 *
 *   create --> RUNNING --shutdown(DRAIN)---> DRAINING --queue empty--+
 *                 |                                                 |
 *                 +----shutdown(CANCEL): queued tasks discarded-----+--> JOINED
 *                                                                   (threads
 *   submit succeeds only in RUNNING (else EPIPE).        joined) --> destroy
 *
 * Writing a task: three ways to observe cancellation.  A task owns its
 * thread until fn returns, so a long task must notice that its context is
 * done and return early (conventionally with ctx_err(ctx)):
 *
 *   1. CPU loop: poll ctx_err() (one atomic load) every few iterations.
 *
 *        static int crunch(ctx_t *ctx, void *arg) {
 *            struct job *j = arg;
 *            for (size_t i = 0; i < j->n; i++) {
 *                if ((i & 1023) == 0 && ctx_err(ctx) != 0)
 *                    return ctx_err(ctx);
 *                j->sum += j->data[i];
 *            }
 *            return 0;
 *        }
 *
 *   2. Cancellable sleep: block in ctx_wait() with a timeout.  It returns 0
 *      when the timeout passed, the context's error when it was cancelled.
 *
 *        static int retry_later(ctx_t *ctx, void *arg) {
 *            for (int attempt = 0; attempt < 5; attempt++) {
 *                if (try_once(arg) == 0)
 *                    return 0;
 *                int err = ctx_wait(ctx, 100 * CTX_MS);  (backoff)
 *                if (err != 0)
 *                    return err;
 *            }
 *            return ETIMEDOUT;
 *        }
 *
 *   3. Event loop: put ctx_done_fd() in the poll set beside your sockets.
 *
 *        struct pollfd p[2] = {{.fd = sock, .events = POLLIN},
 *                              {.fd = ctx_done_fd(ctx), .events = POLLIN}};
 *        while (poll(p, 2, -1) >= 0) {
 *            if (p[1].revents & POLLIN)        never read or close that fd
 *                return ctx_wait(ctx, -1);   done: returns ctx's error
 *            if (p[0].revents & POLLIN)
 *                handle_readable(sock);
 *        }
 *
 *   examples/cancel_styles.c runs all three; tests/libctx/test_ctx_pool.c
 *   checks them.
 *
 * Threads.  Every function may be called from any thread unless its comment
 * says otherwise.  Task functions and completion callbacks run on a pool
 * thread with no pool lock held and may call any libctx function, including
 * ctx_pool_submit() on their own pool, but not ctx_pool_shutdown() or
 * ctx_pool_destroy() on it.
 *
 * Errors are errno values: EINVAL (bad argument), ENOMEM, EAGAIN (queue full
 * or, at creation, no more threads), EPIPE (pool shut down), EDEADLK
 * (shutdown from one of the pool's own threads).
 */
#ifndef CTX_POOL_H
#define CTX_POOL_H

#include <ctx/ctx.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque pool handle. */
typedef struct ctx_pool ctx_pool_t;

/* A task: runs on a pool thread with the context given at submission
 * (borrowed: valid until fn returns).  Returns 0 on success or an error code
 * of the application's choosing (by convention ctx_err(ctx) when it stopped
 * because the context was done).  The same type serves <ctx/group.h>. */
typedef int (*ctx_task_fn)(ctx_t *ctx, void *arg);

/* A completion callback, called exactly once for every task that
 * ctx_pool_submit() accepted, after fn returned or instead of fn:
 *   ran == true:  err is fn's return value;
 *   ran == false: fn never ran; err is ctx_err(ctx) (CTX_CANCELED or
 *                 CTX_DEADLINE_EXCEEDED) when the context was done at
 *                 pickup, or ECANCELED when ctx_pool_shutdown(CTX_POOL_CANCEL)
 *                 discarded the queued task.
 * Use it to free `arg`.  Runs on a pool thread (on the shutdown caller's
 * thread for discarded tasks), with no pool lock held; may call any libctx
 * function except ctx_pool_shutdown()/ctx_pool_destroy() on this pool. */
typedef void (*ctx_task_done_fn)(int err, bool ran, void *arg,
                                 void *user_data);

/* Defaults of ctx_pool_options_t.max_threads (when `threads` is smaller)
 * and .idle_timeout_ns. */
#define CTX_POOL_DEFAULT_MAX_THREADS 1024
#define CTX_POOL_DEFAULT_IDLE_TIMEOUT (10 * CTX_SECOND)

/* Creation options.  Initialise with ctx_pool_options_init(); the pool
 * copies them at creation. */
typedef struct ctx_pool_options {
    int threads;           /* worker threads started at creation and kept
                              until shutdown; 0: online CPUs (default) */
    size_t queue_capacity; /* max queued (not yet started) tasks;
                              0: 1024 (default) */
    size_t stack_size;     /* per-thread stack in bytes; 0: the system's
                              default.  Small stacks (64 KiB) let a pool
                              have thousands of threads. */
    int max_threads;       /* most threads alive at once, >= threads;
                              0: the larger of `threads` and
                              CTX_POOL_DEFAULT_MAX_THREADS (1024) */
    int64_t idle_timeout_ns; /* how long a thread beyond `threads` may stay
                              idle before it exits; 0: 10 s (default) */
    bool sched_batch;      /* run the threads under Linux's SCHED_BATCH
                              policy: a worker woken for a task does not
                              preempt the thread that submitted it (an
                              event loop finishes its batch of reads first,
                              then the worker runs the batch of tasks), at
                              the price of waiting for the current time
                              slice when the CPU is busy.  Threads that a
                              task creates inherit the policy.  Ignored
                              where the system refuses it.  false
                              (default): the creator's policy */
} ctx_pool_options_t;

/* Fills *opts with the defaults (all zero).  NULL-safe. */
CTX_API void ctx_pool_options_init(ctx_pool_options_t *opts);

/* Number of online CPUs (at least 1): the default thread count. */
CTX_API int ctx_pool_default_threads(void);

/* Creates a pool and starts its `threads` threads.  `opts` may be NULL
 * (defaults).  The caller owns the pool and must give it to
 * ctx_pool_destroy().  Returns NULL with errno EINVAL (negative threads,
 * max_threads below threads, negative idle timeout, absurd sizes), ENOMEM,
 * or EAGAIN (a thread could not be started: every thread already started
 * is joined, nothing is left behind).  Blocks only while starting threads.
 * Any thread. */
CTX_API ctx_pool_t *ctx_pool_create(const ctx_pool_options_t *opts);

/* Queues fn(ctx, arg) and, if `done` is not NULL, done(err, ran, arg,
 * user_data) after it (see ctx_task_done_fn).  Takes a reference on `ctx`
 * until the callback has returned, so the caller may release its own at
 * once.  Never waits for queue space and never runs the task inline.
 * May start a thread (see "Threads" above; pthread_create runs on the
 * caller's thread, with no lock held); a failure to start one is not an
 * error: a running worker takes the task when it is free.
 * Returns 0 (done will be called exactly once), or, with nothing queued and
 * done never called: EINVAL (NULL pool, ctx or fn), EAGAIN (queue full:
 * backpressure, retry later or shed load), EPIPE (shutdown has begun).
 * A context that is already done is accepted: the task is skipped at
 * pickup as described above.  Any thread, including pool threads. */
CTX_API int ctx_pool_submit_cb(ctx_pool_t *pool, ctx_t *ctx, ctx_task_fn fn,
                               void *arg, ctx_task_done_fn done,
                               void *user_data);

/* ctx_pool_submit_cb() without a completion callback: fn's return value is
 * dropped, and a skipped task's `arg` is simply not used. */
CTX_API int ctx_pool_submit(ctx_pool_t *pool, ctx_t *ctx, ctx_task_fn fn,
                            void *arg);

/* How ctx_pool_shutdown() treats tasks still queued (not yet started). */
typedef enum ctx_pool_shutdown_mode {
    CTX_POOL_DRAIN = 0,  /* run them all (done contexts still skip fn) */
    CTX_POOL_CANCEL = 1, /* discard them: done(ECANCELED, false, ...) */
} ctx_pool_shutdown_mode_t;

/* Stops accepting tasks (submit fails with EPIPE from now on), drains (the
 * pool may still grow to run queued tasks while workers block) or
 * discards the queue as `mode` says, waits for running tasks to return and
 * joins every thread.  Running tasks are not interrupted: cancel their
 * contexts first if they must stop early.  Discarded tasks' callbacks run
 * on the calling thread.  Blocks.  Idempotent: a second call (even with the
 * other mode) waits for the first to finish and returns 0.  Returns 0,
 * EINVAL (NULL pool), or EDEADLK when called from one of the pool's own
 * threads (nothing is done then).  Any other thread. */
CTX_API int ctx_pool_shutdown(ctx_pool_t *pool, ctx_pool_shutdown_mode_t mode);

/* ctx_pool_shutdown(pool, CTX_POOL_DRAIN) if not done yet, then frees the
 * pool.  No other call on `pool` may be in progress or follow.  Must not be
 * called from one of the pool's own threads (aborts with a message: it
 * would join itself).  NULL-safe. */
CTX_API void ctx_pool_destroy(ctx_pool_t *pool);

/* ---- introspection (tests, metrics) ----------------------------------- */

/* Number of worker threads the pool was created with (and never goes
 * below until shutdown); 0 for NULL. */
CTX_API int ctx_pool_threads(const ctx_pool_t *pool);

/* The most threads the pool may have at once; 0 for NULL. */
CTX_API int ctx_pool_max_threads(const ctx_pool_t *pool);

/* A snapshot of the pool's threads and tasks (ctx_pool_stats()). */
typedef struct ctx_pool_stats {
    int live_threads;   /* threads alive now (idle or not) */
    int parked_threads; /* threads asleep waiting for work */
    int peak_threads;   /* most threads alive at once so far */
    uint64_t started;   /* threads started since creation */
    uint64_t retired;   /* threads that exited after the idle timeout */
    size_t running;     /* tasks running (fn or callback in progress) */
    size_t queued;      /* tasks queued, not yet picked up */
} ctx_pool_stats_t;

/* Fills *out with a consistent snapshot (taken under the pool's lock);
 * all zero for a NULL pool; does nothing when out is NULL.  Any thread;
 * never blocks beyond that short lock. */
CTX_API void ctx_pool_stats(ctx_pool_t *pool, ctx_pool_stats_t *out);

/* Queue capacity the pool was created with. */
CTX_API size_t ctx_pool_capacity(const ctx_pool_t *pool);

/* Tasks queued and not yet picked up; a snapshot. */
CTX_API size_t ctx_pool_queued(ctx_pool_t *pool);

/* Tasks currently running (fn or a completion callback in progress); a
 * snapshot. */
CTX_API size_t ctx_pool_running(ctx_pool_t *pool);

/* True when the calling thread is one of `pool`'s workers. */
CTX_API bool ctx_pool_on_worker(const ctx_pool_t *pool);

#ifdef __cplusplus
}
#endif
#endif /* CTX_POOL_H */
