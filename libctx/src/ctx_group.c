/*
 * ctx_group.c -- task groups (Go's errgroup) on top of ctx_pool.
 *
 * Purpose.  Fan a request out to sub-tasks that share one child context,
 * stop them all at the first failure, and wait for every one of them.
 *
 * How.  ctx_group_go() wraps (fn, arg, done, user_data) in a small record and
 * submits it to the pool with the group's context; the pool's completion
 * callback (task_done, on a worker) records the first error, cancels the
 * group context with that error as cause, calls the user's callback, frees
 * the record, and only then decrements `inflight`.  ctx_group_wait() sleeps
 * until `inflight` is zero.  So when wait returns, every task has either
 * run to completion or been skipped, every callback has returned, and no
 * task can start any more (the group is `closed`).
 *
 * Invariants.
 *   - inflight == tasks reserved by go and not yet finished; a reservation
 *     that fails to submit is undone before go returns.
 *   - first_err is written once (0 -> non-zero), under mu, and the thread
 *     that wrote it is the one that calls ctx_cancel_cause() with it.
 *   - closed is set only by wait, only when inflight == 0, so no task of a
 *     closed group is queued or running.
 *
 * Threads and locks.  One mutex `mu` guards inflight, sleepers, first_err,
 * closed, waited; `cv` wakes both go (a slot freed: limit) and wait
 * (inflight reached zero).  No user code and no pool or ctx call runs under
 * `mu`.  Lock order: group mu and pool mu are never held together.
 */
#include <ctx/group.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct ctx_group {
    pthread_mutex_t mu;
    pthread_cond_t cv;

    ctx_t *ctx;        /* ours: ctx_with_cancel(parent) */
    ctx_pool_t *pool;  /* borrowed, or owned when own_pool */
    bool own_pool;
    size_t limit;      /* 0: none */

    size_t inflight;   /* reserved by go, not finished */
    size_t sleepers;   /* threads blocked on cv */
    int first_err;
    bool closed;       /* wait has returned: go fails with EPIPE */
};

struct gtask {
    ctx_group_t *g;
    ctx_task_fn fn;
    void *arg;
    ctx_task_done_fn done;
    void *user_data;
};

void ctx_group_options_init(ctx_group_options_t *opts)
{
    if (opts == NULL)
        return;
    opts->pool = NULL;
    opts->limit = 0;
}

ctx_group_t *ctx_group_create(ctx_t *parent, const ctx_group_options_t *opts)
{
    if (parent == NULL) {
        errno = EINVAL;
        return NULL;
    }
    ctx_group_options_t o;
    ctx_group_options_init(&o);
    if (opts != NULL)
        o = *opts;

    ctx_group_t *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    g->ctx = ctx_with_cancel(parent);
    if (g->ctx == NULL) {
        int e = errno;
        free(g);
        errno = e;
        return NULL;
    }
    g->pool = o.pool;
    if (g->pool == NULL) {
        g->pool = ctx_pool_create(NULL);
        if (g->pool == NULL) {
            int e = errno;
            ctx_release(g->ctx);
            free(g);
            errno = e;
            return NULL;
        }
        g->own_pool = true;
    }
    g->limit = o.limit;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    return g;
}

ctx_t *ctx_group_ctx(ctx_group_t *g)
{
    return g == NULL ? NULL : g->ctx;
}

/* Gives back a task's in-flight slot and wakes whoever waits for one (a
 * limited go) or for the count to reach zero (wait).  After the unlock g
 * may be destroyed by a returning wait. */
static void release_slot(ctx_group_t *g)
{
    pthread_mutex_lock(&g->mu);
    g->inflight--;
    if (g->sleepers > 0)
        pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static int trampoline(ctx_t *ctx, void *arg)
{
    struct gtask *t = arg;
    return t->fn(ctx, t->arg);
}

/* Pool completion callback, on a worker (or the pool's shutdown thread). */
static void task_done(int err, bool ran, void *arg, void *user_data)
{
    struct gtask *t = arg;
    ctx_group_t *g = t->g;

    if (err != 0) {
        bool first = false;
        pthread_mutex_lock(&g->mu);
        if (g->first_err == 0) {
            g->first_err = err;
            first = true;
        }
        pthread_mutex_unlock(&g->mu);
        if (first)
            ctx_cancel_cause(g->ctx, err);
    }
    if (t->done != NULL)
        t->done(err, ran, t->arg, t->user_data);
    free(t);

    /* Last touch of g: after the unlock, wait may return and destroy it. */
    release_slot(g);
}

/* Reserves a slot (blocking on the limit unless try), allocates and submits.
 */
static int go(ctx_group_t *g, ctx_task_fn fn, void *arg,
              ctx_task_done_fn done, void *user_data, bool try)
{
    if (g == NULL || fn == NULL)
        return EINVAL;

    pthread_mutex_lock(&g->mu);
    while (!g->closed && g->limit != 0 && g->inflight >= g->limit) {
        if (try) {
            pthread_mutex_unlock(&g->mu);
            return EAGAIN;
        }
        g->sleepers++;
        pthread_cond_wait(&g->cv, &g->mu);
        g->sleepers--;
    }
    if (g->closed) {
        pthread_mutex_unlock(&g->mu);
        return EPIPE;
    }
    g->inflight++;
    pthread_mutex_unlock(&g->mu);

    int rc = ENOMEM;
    struct gtask *t = malloc(sizeof(*t));
    if (t != NULL) {
        *t = (struct gtask){g, fn, arg, done, user_data};
        rc = ctx_pool_submit_cb(g->pool, g->ctx, trampoline, t, task_done, t);
    }
    if (rc == 0)
        return 0;

    free(t);
    release_slot(g);
    return rc;
}

int ctx_group_go_cb(ctx_group_t *g, ctx_task_fn fn, void *arg,
                    ctx_task_done_fn done, void *user_data)
{
    return go(g, fn, arg, done, user_data, false);
}

int ctx_group_go(ctx_group_t *g, ctx_task_fn fn, void *arg)
{
    return go(g, fn, arg, NULL, NULL, false);
}

int ctx_group_try_go_cb(ctx_group_t *g, ctx_task_fn fn, void *arg,
                        ctx_task_done_fn done, void *user_data)
{
    return go(g, fn, arg, done, user_data, true);
}

int ctx_group_wait(ctx_group_t *g)
{
    if (g == NULL)
        return EINVAL;
    pthread_mutex_lock(&g->mu);
    while (g->inflight > 0) {
        g->sleepers++;
        pthread_cond_wait(&g->cv, &g->mu);
        g->sleepers--;
    }
    g->closed = true;
    int err = g->first_err;
    /* Wake go callers blocked on the limit: they now fail with EPIPE. */
    if (g->sleepers > 0)
        pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    ctx_cancel(g->ctx); /* errgroup: Wait cancels; keeps an earlier cause */
    return err;
}

void ctx_group_destroy(ctx_group_t *g)
{
    if (g == NULL)
        return;
    ctx_cancel(g->ctx);
    ctx_group_wait(g);
    if (g->own_pool)
        ctx_pool_destroy(g->pool);
    ctx_release(g->ctx);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

size_t ctx_group_inflight(ctx_group_t *g)
{
    if (g == NULL)
        return 0;
    pthread_mutex_lock(&g->mu);
    size_t n = g->inflight;
    pthread_mutex_unlock(&g->mu);
    return n;
}
