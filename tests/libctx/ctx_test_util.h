/*
 * ctx_test_util.h -- small helpers shared by the libctx test files.
 *
 * cmocka's assertions may only be used on the thread running the test (they
 * longjmp), so worker threads record failures with T_CHECK() into a
 * per-file atomic counter and the test thread asserts T_NO_FAILURES().
 *
 * Every wait here is bounded: t_spin_until() polls a condition with
 * sched_yield() until a deadline, t_latch waits on a condvar with a timeout.
 * Sizes shrink under ThreadSanitizer (CTX_TSAN_BUILD) through T_SCALE().
 */
#ifndef CTX_TEST_UTIL_H
#define CTX_TEST_UTIL_H

#include <ctx/ctx.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#ifdef CTX_TSAN_BUILD
#define T_SCALE(plain, tsan) (tsan)
#else
#define T_SCALE(plain, tsan) (plain)
#endif

/* Loose bound for "this must happen": catches hangs, not slowness. */
#define T_LONG (10 * CTX_SECOND)

/* ---- failures recorded on worker threads ------------------------------ */

static _Atomic long t_failures __attribute__((unused));
static _Atomic int t_first_fail_line __attribute__((unused));

#define T_CHECK(cond)                                                      \
    do {                                                                   \
        if (!(cond)) {                                                     \
            int z_ = 0;                                                    \
            atomic_compare_exchange_strong(&t_first_fail_line, &z_,        \
                                           __LINE__);                      \
            atomic_fetch_add(&t_failures, 1);                              \
        }                                                                  \
    } while (0)

#define T_NO_FAILURES()                                                    \
    do {                                                                   \
        long f_ = atomic_exchange(&t_failures, 0);                         \
        int l_ = atomic_exchange(&t_first_fail_line, 0);                   \
        if (f_ != 0)                                                       \
            fail_msg("%ld worker-thread check(s) failed, first at line %d", \
                     f_, l_);                                              \
    } while (0)

/* ---- time ---------------------------------------------------------------- */

static inline int64_t t_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * CTX_SECOND + ts.tv_nsec;
}

/* Busy-waits (no sleep) for about `ns`; used to aim at a timer's expiry. */
static inline void t_spin_ns(int64_t ns)
{
    int64_t end = t_mono() + ns;
    while (t_mono() < end) {
    }
}

/* Polls `pred(arg)` until it is true or `timeout_ns` passes. */
static inline bool t_spin_until(bool (*pred)(void *), void *arg,
                                int64_t timeout_ns)
{
    int64_t end = t_mono() + timeout_ns;
    for (;;) {
        if (pred(arg))
            return true;
        if (t_mono() > end)
            return pred(arg);
        sched_yield();
    }
}

/* Polls an atomic long until it reaches `target` (bounded). */
static inline bool t_wait_atomic_ge(_Atomic long *v, long target,
                                    int64_t timeout_ns)
{
    int64_t end = t_mono() + timeout_ns;
    for (;;) {
        if (atomic_load(v) >= target)
            return true;
        if (t_mono() > end)
            return atomic_load(v) >= target;
        sched_yield();
    }
}

/* ---- latch: a counter with condvar waits (CLOCK_MONOTONIC timeouts) ---- */

struct t_latch {
    pthread_mutex_t m;
    pthread_cond_t cv;
    long count;
};

static inline void t_latch_init(struct t_latch *l)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_mutex_init(&l->m, NULL);
    pthread_cond_init(&l->cv, &a);
    pthread_condattr_destroy(&a);
    l->count = 0;
}

static inline void t_latch_destroy(struct t_latch *l)
{
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->m);
}

static inline void t_latch_add(struct t_latch *l, long n)
{
    pthread_mutex_lock(&l->m);
    l->count += n;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->m);
}

static inline long t_latch_get(struct t_latch *l)
{
    pthread_mutex_lock(&l->m);
    long v = l->count;
    pthread_mutex_unlock(&l->m);
    return v;
}

/* Waits until count >= target; false on timeout. */
static inline bool t_latch_wait(struct t_latch *l, long target,
                                int64_t timeout_ns)
{
    int64_t end = t_mono() + timeout_ns;
    struct timespec ts = {(time_t)(end / CTX_SECOND),
                          (long)(end % CTX_SECOND)};
    bool ok = true;
    pthread_mutex_lock(&l->m);
    while (l->count < target) {
        if (pthread_cond_timedwait(&l->cv, &l->m, &ts) == ETIMEDOUT) {
            ok = l->count >= target;
            break;
        }
    }
    pthread_mutex_unlock(&l->m);
    return ok;
}

/* ---- threads ------------------------------------------------------------- */

static inline pthread_t t_thread(void *(*fn)(void *), void *arg,
                                 size_t stack)
{
    pthread_attr_t a;
    pthread_t t;
    pthread_attr_init(&a);
    if (stack)
        pthread_attr_setstacksize(&a, stack);
    int rc = pthread_create(&t, &a, fn, arg);
    pthread_attr_destroy(&a);
    if (rc != 0)
        fail_msg("pthread_create: %s", strerror(rc));
    return t;
}

static inline void *t_join(pthread_t t)
{
    void *r = NULL;
    int rc = pthread_join(t, &r);
    if (rc != 0)
        fail_msg("pthread_join: %s", strerror(rc));
    return r;
}

/* Small stack for the deep-chain tests: recursion in the depth would
 * overflow it.  Sanitizers need more room for their own frames, still far
 * below what a recursion over 1e5 levels would use. */
#if defined(CTX_TSAN_BUILD) || defined(__SANITIZE_ADDRESS__)
#define T_SMALL_STACK ((size_t)256 * 1024)
#else
#define T_SMALL_STACK ((size_t)64 * 1024)
#endif

static inline void *t_run_small_stack(void *(*fn)(void *), void *arg)
{
    return t_join(t_thread(fn, arg, T_SMALL_STACK));
}

/* ---- /proc counters -------------------------------------------------------- */

static inline int t_count_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n;
}

/* Open fds, not counting the one opendir() itself uses. */
static inline int t_count_fds(void)
{
    return t_count_dir("/proc/self/fd") - 1;
}

static inline int t_count_tasks(void)
{
    return t_count_dir("/proc/self/task");
}

/* Deterministic PRNG (xorshift64*). */
static inline uint64_t t_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(2685821657736338717);
}

/* Waits (bounded) until every library callback has finished and every
 * library thread is joined: ctx_shutdown() returns 0 only then. */
static inline bool t_quiesce(int64_t timeout_ns)
{
    int64_t end = t_mono() + timeout_ns;
    for (;;) {
        if (ctx_shutdown() == 0)
            return true;
        if (t_mono() > end)
            return false;
        sched_yield();
    }
}

#endif /* CTX_TEST_UTIL_H */
