/*
 * ctx_mcache.c -- per-thread caches of small freed blocks (see
 * ctx_mcache.h for the contract).
 *
 * Why.  A server loop allocates and frees in batches: it reads 40 requests,
 * makes their calls, contexts and nghttp2 streams, then frees them all when
 * the responses are written.  glibc's tcache keeps 7 blocks per size; the
 * rest of a batch goes to the fastbins, and the next block of 1 KiB or
 * more (an evbuffer chain) consolidates them all.  This cache keeps a
 * whole batch per size, on the thread that freed it.
 *
 * Global state: the depot (a mutex and a stack of batches per size class,
 * with a byte count) and the bench hooks; nothing else outlives a thread.
 *
 * How.  Size classes by usable size: class k serves requests up to
 * 16k + 8 bytes and holds blocks whose malloc_usable_size() is exactly
 * 16k + 8 (every glibc chunk's usable size has that form), k = 1..63, so
 * up to 1016 bytes.  A freed block of a class goes on that class's list,
 * threaded through its first word, unless the thread already caches
 * MC_BUDGET bytes; anything else goes to free().  Blocks are plain malloc
 * blocks throughout, so free() and realloc() on them stay valid, and a
 * block may be freed on another thread than the one that allocated it (it
 * then joins that thread's cache).
 *
 * Lifetime.  The first cached free on a thread registers a pthread key
 * whose destructor empties the cache when the thread exits; frees after
 * that (later TLS destructors) go to free().  The main thread's cache is
 * left to the process exit.
 *
 * Sanitizers.  Under AddressSanitizer every call passes straight through
 * to malloc/free, so a use after free is still caught where it happens.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "ctx_mcache.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define MC_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define MC_OFF 1
#endif
#endif

#define MC_CLASSES 64
#define MC_MAX (16u * (MC_CLASSES - 1) + 8u) /* 1016 */
/* A thread keeps up to MC_LOCAL blocks of a class; past that it hands
 * MC_BATCH of them to the shared depot, where a thread whose list is empty
 * takes a whole batch (one lock per MC_BATCH blocks).  That is what lets a
 * loop that allocates and a worker that frees (or the other way round)
 * keep recycling the same blocks. */
#define MC_LOCAL 64u
#define MC_BATCH 32u
/* Bytes one thread may keep, and bytes the depot may keep. */
#define MC_BUDGET (256u * 1024u)
#define MC_DEPOT_BUDGET (4u * 1024u * 1024u)
#define MC_DEPOT_SLOTS 64u

enum { MC_NEW, MC_LIVE, MC_DEAD };

struct mcache {
    void *head[MC_CLASSES];
    uint32_t n[MC_CLASSES];
    size_t bytes;
    int state;
};

/* Per class: a stack of full batches (each a list of MC_BATCH blocks
 * threaded through their first word). */
struct depot {
    pthread_mutex_t mu;
    _Atomic unsigned n; /* written under mu; read without it to skip an
                           empty depot */
    void *batch[MC_DEPOT_SLOTS];
};

/* Bench hooks (ctx__mc_set_hooks): see every block the cache hands out or
 * takes back without calling malloc/free. */
typedef void (*mc_alloc_hook)(void *p, size_t n);
typedef void (*mc_free_hook)(void *p);
static _Atomic(mc_alloc_hook) hook_alloc;
static _Atomic(mc_free_hook) hook_free;

void ctx__mc_set_hooks(void (*on_alloc)(void *p, size_t n),
                       void (*on_free)(void *p))
{
    atomic_store(&hook_alloc, on_alloc);
    atomic_store(&hook_free, on_free);
}

#ifndef MC_OFF
static __thread struct mcache mc;
static pthread_key_t mc_key;
static pthread_once_t mc_once = PTHREAD_ONCE_INIT;
static int mc_key_ok;
static struct depot depot[MC_CLASSES];
static atomic_size_t depot_bytes;

static inline size_t class_size(unsigned k)
{
    return 16u * k + 8u;
}

static void free_list(void *p)
{
    while (p) {
        void *next = *(void **)p;
        free(p);
        p = next;
    }
}

static void mc_drain(void *arg)
{
    struct mcache *m = arg;
    for (unsigned k = 0; k < MC_CLASSES; k++) {
        free_list(m->head[k]);
        m->head[k] = NULL;
        m->n[k] = 0;
    }
    m->bytes = 0;
    m->state = MC_DEAD;
}

static void mc_init(void)
{
    for (unsigned k = 0; k < MC_CLASSES; k++)
        pthread_mutex_init(&depot[k].mu, NULL);
    mc_key_ok = pthread_key_create(&mc_key, mc_drain) == 0;
}

/* Registers the thread's cache for draining at thread exit; false when
 * this thread must not cache (exiting, or no key). */
static bool mc_live(struct mcache *m)
{
    if (m->state == MC_LIVE)
        return true;
    if (m->state == MC_DEAD)
        return false;
    pthread_once(&mc_once, mc_init);
    if (!mc_key_ok || pthread_setspecific(mc_key, m) != 0)
        return false;
    m->state = MC_LIVE;
    return true;
}

/* Class for a request of n <= MC_MAX bytes. */
static inline unsigned class_of(size_t n)
{
    return n <= 24 ? 1u : (unsigned)((n - 8 + 15) / 16);
}

/* Takes a batch of class k from the depot into m's empty list; false when
 * the depot has none. */
static bool depot_take(struct mcache *m, unsigned k)
{
    struct depot *d = &depot[k];
    if (atomic_load_explicit(&d->n, memory_order_relaxed) == 0 ||
        !mc_live(m))
        return false;
    void *b = NULL;
    pthread_mutex_lock(&d->mu);
    unsigned n = atomic_load_explicit(&d->n, memory_order_relaxed);
    if (n > 0) {
        b = d->batch[n - 1];
        atomic_store_explicit(&d->n, n - 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&d->mu);
    if (b == NULL)
        return false;
    atomic_fetch_sub_explicit(&depot_bytes, MC_BATCH * class_size(k),
                              memory_order_relaxed);
    m->head[k] = b;
    m->n[k] = MC_BATCH;
    m->bytes += MC_BATCH * class_size(k);
    return true;
}

/* m holds MC_LOCAL blocks of class k: moves MC_BATCH of them to the depot
 * (or to free() when the depot is full). */
static void depot_give(struct mcache *m, unsigned k)
{
    void *b = m->head[k], *last = b;
    for (unsigned i = 1; i < MC_BATCH; i++)
        last = *(void **)last;
    m->head[k] = *(void **)last;
    *(void **)last = NULL;
    m->n[k] -= MC_BATCH;
    size_t bytes = MC_BATCH * class_size(k);
    m->bytes -= bytes;
    struct depot *d = &depot[k];
    bool kept = false;
    if (atomic_fetch_add_explicit(&depot_bytes, bytes, memory_order_relaxed) +
            bytes <= MC_DEPOT_BUDGET) {
        pthread_mutex_lock(&d->mu);
        unsigned n = atomic_load_explicit(&d->n, memory_order_relaxed);
        if (n < MC_DEPOT_SLOTS) {
            d->batch[n] = b;
            atomic_store_explicit(&d->n, n + 1, memory_order_relaxed);
            kept = true;
        }
        pthread_mutex_unlock(&d->mu);
    }
    if (!kept) {
        atomic_fetch_sub_explicit(&depot_bytes, bytes, memory_order_relaxed);
        free_list(b);
    }
}

#endif /* !MC_OFF */

void *ctx__mc_alloc(size_t n)
{
#ifdef MC_OFF
    return malloc(n);
#else
    if (n > MC_MAX)
        return malloc(n);
    unsigned k = class_of(n);
    struct mcache *m = &mc;
    if (m->head[k] == NULL && !depot_take(m, k))
        return malloc(class_size(k));
    void *p = m->head[k];
    m->head[k] = *(void **)p;
    m->n[k]--;
    m->bytes -= class_size(k);
    mc_alloc_hook h = atomic_load_explicit(&hook_alloc, memory_order_relaxed);
    if (__builtin_expect(h != NULL, 0))
        h(p, n);
    return p;
#endif
}

void *ctx__mc_calloc(size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    void *p = ctx__mc_alloc(n * size);
    if (p != NULL)
        memset(p, 0, n * size);
    return p;
}

void ctx__mc_free(void *p)
{
#ifdef MC_OFF
    free(p);
#else
    if (p == NULL)
        return;
    size_t u = malloc_usable_size(p);
    struct mcache *m = &mc;
    if (u < 24 || u > MC_MAX || (u - 8) % 16 != 0 ||
        m->bytes + u > MC_BUDGET || !mc_live(m)) {
        free(p);
        return;
    }
    mc_free_hook h = atomic_load_explicit(&hook_free, memory_order_relaxed);
    if (__builtin_expect(h != NULL, 0))
        h(p);
    unsigned k = (unsigned)((u - 8) / 16);
    *(void **)p = m->head[k];
    m->head[k] = p;
    m->bytes += u;
    if (++m->n[k] >= MC_LOCAL)
        depot_give(m, k);
#endif
}

size_t ctx__mc_cached_bytes(void)
{
#ifdef MC_OFF
    return 0;
#else
    return mc.bytes;
#endif
}

size_t ctx__mc_depot_bytes(void)
{
#ifdef MC_OFF
    return 0;
#else
    return atomic_load_explicit(&depot_bytes, memory_order_relaxed);
#endif
}
