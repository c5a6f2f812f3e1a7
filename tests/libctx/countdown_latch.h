/*
 * countdown_latch.h -- a countdown latch for the worker-runtime tests:
 * latch_wait() returns once latch_arrive() has been called `n` times.
 * (The ctest timeout bounds every wait.)
 */
#ifndef CTX_TEST_COUNTDOWN_LATCH_H
#define CTX_TEST_COUNTDOWN_LATCH_H

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

#endif
