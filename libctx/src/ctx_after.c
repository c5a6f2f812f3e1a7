/*
 * ctx_after.c -- AfterFunc: registrations and the threads that run them.
 *
 * A registration is a node of kind AFTER linked into its context's
 * registry like a cancelable child.  Its once-state (u.c.word) decides the
 * race between the cancel walk and ctx_after_stop(): the walk moves it
 * ARMED -> FIRED and queues it, stop moves it ARMED -> STOPPED; exactly one
 * of them wins.
 *
 *   ARMED --cancel walk--> FIRED --executor--> fn(arg) runs, ref dropped
 *     |
 *     +----after_stop----> STOPPED (unlinked, never runs)
 *
 * The executor is a pool of joinable threads that grows when work is
 * queued and no thread is on its way to the queue, so a callback that
 * blocks never delays another one (Go starts a goroutine per callback).
 * "On its way" means polling (a thread that just ran a callback polls the
 * queue for CTX__POLL_NS before it sleeps; one thread at a time), woken but not
 * yet running, or just created; while one is, a new item neither signals
 * nor spawns.  A thread that takes an item and leaves more behind first
 * makes sure another one is on its way (wake an idle thread, else spawn),
 * so every queued item has a thread coming even if every running callback
 * blocks.  Bursts -- a server cancelling many requests one after another --
 * thus cost one wake-up, not one per callback.  Threads stay until
 * ctx_shutdown() joins them.  A queued registration holds one reference,
 * dropped after fn returns.
 *
 * Lock: `mu` guards the queue and every counter below; fn runs without it.
 * `queued` mirrors q_head != NULL for the pollers, which watch it without
 * the lock and take the item under it.
 */
#include "ctx_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct ctx_after *q_head, *q_tail;
static pthread_t *threads;
static size_t nthreads, cap_threads;
static size_t nidle, pending; /* pending: queued + running */
static size_t nspin;          /* threads polling the queue */
static size_t ncoming;        /* signalled or created, not yet at the queue */
static bool stopping;
static _Atomic size_t queued; /* 1 while q_head != NULL, for pollers */

static void spawn_locked(void);

/* Called with mu held: makes sure a thread is on its way to the queue. */
static void summon_locked(void)
{
    if (nspin > 0 || ncoming > 0)
        return;
    if (nidle > 0) {
        ncoming++;
        pthread_cond_signal(&cv);
    } else {
        spawn_locked();
    }
}

/* Called with mu held and q_head != NULL. */
static struct ctx_after *take_locked(void)
{
    struct ctx_after *a = q_head;
    q_head = a->qnext;
    if (!q_head) {
        q_tail = NULL;
        atomic_store_explicit(&queued, 0, memory_order_relaxed);
    } else {
        summon_locked(); /* the rest must not wait behind fn */
    }
    return a;
}

static void *after_main(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&mu);
    if (ncoming > 0)
        ncoming--; /* created by spawn_locked */
    bool ran = false;
    for (;;) {
        if (!q_head && ran && !stopping && nspin == 0) {
            nspin++;
            pthread_mutex_unlock(&mu);
            ctx__poll_queue(&queued);
            pthread_mutex_lock(&mu);
            nspin--;
        }
        while (!q_head && !stopping) {
            nidle++;
            pthread_cond_wait(&cv, &mu);
            nidle--;
            if (ncoming > 0)
                ncoming--;
        }
        if (!q_head)
            break;
        struct ctx_after *a = take_locked();
        pthread_mutex_unlock(&mu);
        a->fn(a->arg);
        ctx_release(&a->n);
        pthread_mutex_lock(&mu);
        pending--;
        ran = true;
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* Called with mu held. */
static void spawn_locked(void)
{
    if (nthreads == cap_threads) {
        size_t cap = cap_threads ? cap_threads * 2 : 4;
        pthread_t *t = realloc(threads, cap * sizeof *t);
        if (!t)
            return; /* an existing thread will get to it */
        threads = t;
        cap_threads = cap;
    }
    ncoming++;
    if (pthread_create(&threads[nthreads], NULL, after_main, NULL) == 0)
        nthreads++;
    else
        ncoming--;
}

void ctx__after_fire(struct ctx *n)
{
    struct ctx_after *a = (struct ctx_after *)n;
    a->qnext = NULL;
    pthread_mutex_lock(&mu);
    if (q_tail)
        q_tail->qnext = a;
    else
        q_head = a;
    q_tail = a;
    atomic_store_explicit(&queued, 1, memory_order_relaxed);
    pending++;
    summon_locked();
    pthread_mutex_unlock(&mu);
}

ctx_after_t *ctx_after_func(ctx_t *c, void (*fn)(void *arg), void *arg)
{
    if (!c || !fn) {
        errno = EINVAL;
        return NULL;
    }
    struct ctx_after *a = ctx__malloc(sizeof *a);
    if (!a)
        return NULL;
    struct ctx *n = &a->n;
    atomic_init(&n->refs, 1);
    n->kind = CTX_KIND_AFTER;
    atomic_init(&n->linked, 0);
    n->flags = 0;
    n->shard = 0;
    n->parent = ctx_retain(c);
    n->canc = NULL;
    atomic_init(&n->u.c.word, CTX__AFTER_ARMED);
    atomic_init(&n->u.c.lock, 0);
    n->u.c.next = n->u.c.prev = NULL;
    atomic_init(&n->u.c.kids, 0);
    atomic_init(&n->u.c.heap_idx, -1);
    atomic_init(&n->u.c.fd, -1);
    a->fn = fn;
    a->arg = arg;
    a->qnext = NULL;
    struct ctx *reg = c->canc;
    if (reg) {
        int cause;
        if (ctx__register(reg, n, &cause, 0)) {
            atomic_store(&n->u.c.word, CTX__AFTER_FIRED);
            ctx_retain(n);
            ctx__after_fire(n);
        }
    }
    return a;
}

bool ctx_after_stop(ctx_after_t *a)
{
    if (!a)
        return false;
    struct ctx *n = &a->n;
    uint32_t armed = CTX__AFTER_ARMED;
    bool stopped = atomic_compare_exchange_strong(&n->u.c.word, &armed,
                                                  CTX__AFTER_STOPPED);
    if (stopped)
        ctx__unregister(n);
    ctx_release(n);
    return stopped;
}

int ctx__after_threads(void);
int ctx__after_threads(void)
{
    pthread_mutex_lock(&mu);
    int n = (int)nthreads;
    pthread_mutex_unlock(&mu);
    return n;
}

int ctx__after_shutdown(void)
{
    pthread_mutex_lock(&mu);
    if (pending > 0) {
        pthread_mutex_unlock(&mu);
        return EBUSY;
    }
    stopping = true;
    pthread_cond_broadcast(&cv);
    size_t n = nthreads;
    pthread_t *t = threads;
    threads = NULL;
    nthreads = cap_threads = 0;
    pthread_mutex_unlock(&mu);
    for (size_t i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    free(t);
    pthread_mutex_lock(&mu);
    stopping = false;
    ncoming = 0; /* every thread is joined: none is on its way */
    pthread_mutex_unlock(&mu);
    return 0;
}

int ctx__timer_threads(void);
int ctx_debug_threads(void)
{
    return ctx__timer_threads() + ctx__after_threads();
}
