/*
 * <ctx/group.h> -- task groups: Go's golang.org/x/sync/errgroup on a
 * ctx_pool.  This is how a request fans out to sub-tasks.
 *
 *   ctx_group_t *g = ctx_group_create(req_ctx, &opts);   child ctx of req
 *   for (i = 0; i < n; i++)
 *       if ((rc = ctx_group_go(g, fetch_shard, &shard[i])) != 0)
 *           break;                      EAGAIN: pool full, shed the request
 *   int err = ctx_group_wait(g);        first task error, or 0
 *   ctx_group_destroy(g);
 *
 * The group owns a child context of the caller's (ctx_with_cancel(parent)),
 * ctx_group_ctx().  Every task runs fn(group_ctx, arg) on the pool.  The
 * first task to fail (return non-zero) cancels the group's context with that
 * error as its cause -- ctx_cancel_cause(group_ctx, err) -- so its siblings
 * stop (see <ctx/pool.h> for the three ways a task observes that); tasks
 * still queued when it happens are skipped by the pool and count as having
 * returned ctx_err(group_ctx).  ctx_group_wait() returns the first error.
 * Cancelling the parent cancels the group too; the group's error is then
 * whatever its tasks return (by convention CTX_CANCELED).
 *
 * Differences from errgroup, all on purpose:
 *   - ctx_group_go() can fail: EAGAIN when the pool's queue is full
 *     (backpressure reaches the caller instead of growing memory).  The
 *     task was not queued; the group is unaffected; nothing is cancelled.
 *   - ctx_group_go_cb() adds a completion callback, called for every queued
 *     task whether or not fn ran, so `arg` can always be freed.
 *   - After ctx_group_wait() has returned the group is closed: go fails with
 *     EPIPE.  Like errgroup, wait cancels the group's context on return.
 *
 * Errors are int codes: task errors are the application's (any non-zero
 * int; CTX_CANCELED/CTX_DEADLINE_EXCEEDED for ctx errors, ECANCELED for a
 * task discarded by ctx_pool_shutdown(CTX_POOL_CANCEL)); API errors are
 * errno values as documented per function.
 *
 * Threads.  All functions may be called from any thread.  Task functions and
 * callbacks run on pool threads, with no group or pool lock held; they may
 * call ctx_group_go() on their own group (nested fan-out) -- but with a
 * limit, a task blocking in go while every slot is held by such tasks
 * deadlocks, so tasks should use ctx_group_try_go() -- and must not call
 * ctx_group_wait()/ctx_group_destroy() on it.
 */
#ifndef CTX_GROUP_H
#define CTX_GROUP_H

#include <ctx/ctx.h>
#include <ctx/pool.h>

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque group handle. */
typedef struct ctx_group ctx_group_t;

/* Creation options.  Initialise with ctx_group_options_init(); copied at
 * creation. */
typedef struct ctx_group_options {
    ctx_pool_t *pool; /* pool to run on (borrowed: must outlive the group);
                         NULL: the group creates a private pool with
                         ctx_pool_create(NULL) and destroys it with itself */
    size_t limit;     /* max tasks in flight (queued or running); 0: none
                         (errgroup's SetLimit) */
} ctx_group_options_t;

/* Fills *opts with the defaults (NULL pool, no limit).  NULL-safe. */
CTX_API void ctx_group_options_init(ctx_group_options_t *opts);

/* Creates a group whose context is a new child of `parent` (the group takes
 * its own references; the caller keeps its own on `parent`).  `opts` may be
 * NULL.  The caller owns the group and must give it to ctx_group_destroy().
 * Returns NULL with errno EINVAL (NULL parent), ENOMEM, or, for a private
 * pool, ctx_pool_create()'s errno.  Any thread; does not block (beyond
 * starting a private pool's threads). */
CTX_API ctx_group_t *ctx_group_create(ctx_t *parent,
                                      const ctx_group_options_t *opts);

/* The group's context (borrowed: valid until ctx_group_destroy(); retain it
 * to keep it longer).  Pass it to work started outside the group that should
 * stop with it.  ctx_cancel() on it is allowed and cancels the group's tasks
 * (without recording an error). */
CTX_API ctx_t *ctx_group_ctx(ctx_group_t *g);

/* Runs fn(group_ctx, arg) on the group's pool, then, if `done` is not NULL,
 * done(err, ran, arg, user_data) (see ctx_task_done_fn in <ctx/pool.h>: a
 * skipped task has ran == false and err == ctx_err(group_ctx)).  The callback
 * runs after the group has recorded the task's error and before the task
 * stops counting as in flight, so ctx_group_wait() returns after it.
 * With a limit, blocks while `limit` tasks are in flight (errgroup's Go).
 * Returns 0 (done will be called exactly once), or, with nothing started:
 * EINVAL (NULL group or fn), EAGAIN (the pool's queue is full), EPIPE
 * (ctx_group_wait() has returned, or the pool is shut down), ENOMEM. */
CTX_API int ctx_group_go_cb(ctx_group_t *g, ctx_task_fn fn, void *arg,
                            ctx_task_done_fn done, void *user_data);

/* ctx_group_go_cb() without a callback. */
CTX_API int ctx_group_go(ctx_group_t *g, ctx_task_fn fn, void *arg);

/* As ctx_group_go_cb(), but never blocks: returns EAGAIN when the limit is
 * reached (errgroup's TryGo) as well as when the pool's queue is full.  Safe
 * from an event loop and from tasks. */
CTX_API int ctx_group_try_go_cb(ctx_group_t *g, ctx_task_fn fn, void *arg,
                                ctx_task_done_fn done, void *user_data);

/* Blocks until every task started with go has finished (fn returned or was
 * skipped, and its callback returned), then cancels the group's context and
 * returns the first non-zero task error, or 0.  After it returns, no task of
 * the group runs or will run.  May be called more than once and from several
 * threads; every call returns the same error.  Not from the group's own
 * tasks (deadlock).  Returns EINVAL for a NULL group. */
CTX_API int ctx_group_wait(ctx_group_t *g);

/* Cancels the group's context, waits as ctx_group_wait() does if it has not
 * been called, releases the group's context and frees the group (and its
 * private pool).  No other call on `g` may be in progress or follow.
 * NULL-safe. */
CTX_API void ctx_group_destroy(ctx_group_t *g);

/* Tasks in flight (queued or running, callbacks included); a snapshot. */
CTX_API size_t ctx_group_inflight(ctx_group_t *g);

#ifdef __cplusplus
}
#endif
#endif /* CTX_GROUP_H */
