/*
 * runtime_test_util.h -- helpers shared by the worker-runtime tests: a
 * countdown latch (latch_wait() returns once latch_arrive() has been
 * called `n` times; the ctest timeout bounds every wait) and make_pool()
 * (a fixed-size pool).
 * Include after <cmocka.h> and <ctx/pool.h>.
 */
#ifndef CTX_TEST_RUNTIME_TEST_UTIL_H
#define CTX_TEST_RUNTIME_TEST_UTIL_H

#include <pthread.h>

struct latch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
};

static inline void latch_init(struct latch *l, int n)
{
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->n = n;
}

static inline void latch_arrive(struct latch *l)
{
    pthread_mutex_lock(&l->mu);
    if (--l->n <= 0)
        pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

static inline void latch_wait(struct latch *l)
{
    pthread_mutex_lock(&l->mu);
    while (l->n > 0)
        pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
}

static inline void latch_destroy(struct latch *l)
{
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
}

/* A fixed pool of `threads` workers (0: one per CPU; it does not grow, so
 * a blocked worker keeps tasks queued) and a queue of `cap`. */
static inline ctx_pool_t *make_pool(int threads, size_t cap)
{
    ctx_pool_options_t o;
    ctx_pool_options_init(&o);
    o.threads = threads;
    o.max_threads = threads > 0 ? threads : ctx_pool_default_threads();
    o.queue_capacity = cap;
    ctx_pool_t *p = ctx_pool_create(&o);
    assert_non_null(p);
    return p;
}

#endif
