/*
 * test_ctx_mcache.c -- the per-thread small-block cache (ctx_mcache.h):
 * blocks come back on the thread that freed them, calloc zeroes a reused
 * block, big blocks and foreign malloc blocks are handled, the per-thread
 * budget holds, and blocks freed on one thread reach another through the
 * shared depot (the loop-allocates, worker-frees pattern), under TSan too.
 *
 * Under AddressSanitizer the cache is documented as plain malloc/free: the
 * tests that look at cached bytes then check exactly that.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "ctx_mcache.h"

#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define CACHE_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CACHE_OFF 1
#endif
#endif
#ifdef CACHE_OFF
static const int cache_on = 0;
#else
static const int cache_on = 1;
#endif

static void test_round_trip_and_reuse(void **state)
{
    size_t before = ctx__mc_cached_bytes();
    unsigned char *p = ctx__mc_alloc(100);
    assert_non_null(p);
    assert_true(malloc_usable_size(p) >= 100);
    memset(p, 0xab, 100);
    ctx__mc_free(p);
    if (!cache_on) {
        assert_int_equal(ctx__mc_cached_bytes(), 0);
        return;
    }
    assert_true(ctx__mc_cached_bytes() > before);
    /* Same size class, same thread: the block comes back (LIFO). */
    unsigned char *q = ctx__mc_alloc(97);
    assert_ptr_equal(q, p);
    assert_int_equal(ctx__mc_cached_bytes(), before);
    ctx__mc_free(q);
}

static void test_calloc_zeroes_reused_block(void **state)
{
    unsigned char *p = ctx__mc_alloc(64);
    assert_non_null(p);
    memset(p, 0xff, 64);
    ctx__mc_free(p);
    unsigned char *q = ctx__mc_calloc(8, 8);
    assert_non_null(q);
    for (int i = 0; i < 64; i++)
        assert_int_equal(q[i], 0);
    ctx__mc_free(q);
    assert_null(ctx__mc_calloc(SIZE_MAX / 2, 4)); /* overflow */
}

static void test_big_and_foreign_blocks(void **state)
{
    size_t before = ctx__mc_cached_bytes();
    void *big = ctx__mc_alloc(64 * 1024);
    assert_non_null(big);
    memset(big, 1, 64 * 1024);
    ctx__mc_free(big); /* too big to cache: free() */
    assert_int_equal(ctx__mc_cached_bytes(), before);
    /* Any malloc block may be given to ctx__mc_free, and any cached block
     * may be given to free() or realloc(). */
    void *foreign = malloc(50);
    assert_non_null(foreign);
    ctx__mc_free(foreign);
    void *r = ctx__mc_alloc(40);
    assert_non_null(r);
    r = realloc(r, 4000);
    assert_non_null(r);
    free(r);
    ctx__mc_free(NULL);
}

static void test_budget_holds(void **state)
{
    enum { N = 2000 }; /* 2000 x 1016 bytes: far over 256 KiB */
    void **v = malloc(N * sizeof *v);
    assert_non_null(v);
    for (int i = 0; i < N; i++)
        assert_non_null(v[i] = ctx__mc_alloc(1000));
    for (int i = 0; i < N; i++)
        ctx__mc_free(v[i]);
    assert_true(ctx__mc_cached_bytes() <= 256 * 1024);
    free(v);
}

/* One thread allocates, another frees: the freeing thread's surplus goes
 * to the depot in batches, and the allocating thread takes them back. */
enum { BLOCKS = 4000, ROUNDS = 20 };

struct handoff {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void **v;
    int full;   /* v holds a round's blocks for the freer */
    int bad;    /* blocks the freer found overwritten */
};

static void *freer(void *arg)
{
    struct handoff *h = arg;
    for (int r = 0; r < ROUNDS; r++) {
        pthread_mutex_lock(&h->mu);
        while (!h->full)
            pthread_cond_wait(&h->cv, &h->mu);
        pthread_mutex_unlock(&h->mu);
        for (int i = 0; i < BLOCKS; i++) {
            /* The allocator wrote its index; the block is intact. */
            if (*(int *)((char *)h->v[i] + 8) != i)
                h->bad++;
            ctx__mc_free(h->v[i]);
        }
        pthread_mutex_lock(&h->mu);
        h->full = 0;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
    }
    return NULL;
}

static void test_cross_thread_depot(void **state)
{
    struct handoff h = {.full = 0, .bad = 0};
    pthread_mutex_init(&h.mu, NULL);
    pthread_cond_init(&h.cv, NULL);
    h.v = malloc(BLOCKS * sizeof *h.v);
    assert_non_null(h.v);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, freer, &h), 0);
    size_t depot_seen = 0;
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < BLOCKS; i++) {
            h.v[i] = ctx__mc_alloc(48);
            assert_non_null(h.v[i]);
            *(int *)((char *)h.v[i] + 8) = i;
        }
        pthread_mutex_lock(&h.mu);
        h.full = 1;
        pthread_cond_signal(&h.cv);
        while (h.full)
            pthread_cond_wait(&h.cv, &h.mu);
        pthread_mutex_unlock(&h.mu);
        size_t d = ctx__mc_depot_bytes();
        if (d > depot_seen)
            depot_seen = d;
    }
    pthread_join(t, NULL);
    assert_int_equal(h.bad, 0);
    if (cache_on) {
        assert_true(depot_seen > 0);
        /* The depot is bounded (4 MiB). */
        assert_true(depot_seen <= 4u * 1024 * 1024);
    } else {
        assert_int_equal(depot_seen, 0);
    }
    free(h.v);
    pthread_cond_destroy(&h.cv);
    pthread_mutex_destroy(&h.mu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_reuse),
        cmocka_unit_test(test_calloc_zeroes_reused_block),
        cmocka_unit_test(test_big_and_foreign_blocks),
        cmocka_unit_test(test_budget_holds),
        cmocka_unit_test(test_cross_thread_depot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
