/*
 * ctx_bench.c -- what libctx's operations cost, row for row with Go 1.19's
 * context package (bench/go_ctx/context_bench_test.go measures the same
 * rows the same way; bench/ctx_bench.sh runs both and prints the table).
 *
 * Three kinds of output:
 *
 *   rows   ns/op, bytes/op and allocs/op.  Each row runs a calibrated
 *          number of iterations (>= 0.3 s of timed work, like Go's
 *          -benchtime), then a second, untimed pass with the allocation
 *          counters on gives B/op and allocs/op.  Only the timed part of an
 *          op is counted (Go's b.StopTimer excludes allocations too): for
 *          the fan-out and chain rows that is the cancel alone, per node.
 *   wake   cancel -> blocked waiter wakes, p50/p99 over many reps, for
 *          ctx_wait() and poll() on ctx_done_fd(), next to the floors: a
 *          bare futex, a pthread condvar and an eventfd between the same
 *          two threads (waiter pinned to CPU 0, canceller to CPU 1 when the
 *          process may use both).
 *   order  the breadth-first vs depth-first study (ctx__set_cancel_order):
 *          time to the last descendant done, heap and RSS growth during the
 *          walk, and when the first-level children are reached.
 *
 * Allocation counting.  This binary interposes malloc, calloc, realloc,
 * free and the aligned allocators with wrappers around glibc's __libc_*
 * entry points; libctx is linked statically, so its allocations go through
 * them.  The counters (calls, requested bytes, live usable bytes and their
 * peak) are global atomics updated only while g_count_on is set, so timed
 * passes pay one relaxed load per call and nothing more.  libctx recycles
 * small blocks through per-thread caches (libctx/src/ctx_mcache.c); its
 * hooks report those blocks here too (set for the counting passes only),
 * so B/op and allocs/op still count every node made, cached or not.
 *
 * Threads: the main thread, plus 1-7 workers for the shared-parent rows, one
 * waiter per wake-up row and one watcher in the order study.  The library
 * starts its own timer thread on the first deadline; ctx_shutdown() joins
 * it before exit.
 *
 * Usage: ctx_bench [--quick] [--tsv] [--rows=NAME,...] [--list]
 * Names are row names (see --list) or groups: single (rows for one core),
 * dual (parallel2, shared1..shared8 and the wake rows: two cores), wake,
 * order, all.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctx/ctx.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Internal bench hook (libctx/src/ctx_internal.h): 0 breadth-first, 1
 * depth-first.  Not thread-safe against running cancels. */
void ctx__set_cancel_order(int depth_first);
/* Internal hook (libctx/src/ctx_mcache.h): libctx recycles small blocks
 * through per-thread caches; the blocks it hands out or takes back there
 * are counted like malloc/free calls. */
void ctx__mc_set_hooks(void (*on_alloc)(void *p, size_t n),
                       void (*on_free)(void *p));

/* ---- allocation counters ------------------------------------------------ */

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);
extern void *__libc_memalign(size_t align, size_t n);

static _Atomic int g_count_on;
static _Atomic uint64_t g_allocs, g_bytes;
static _Atomic int64_t g_live, g_peak;

static void counters_reset(void)
{
    atomic_store(&g_allocs, 0);
    atomic_store(&g_bytes, 0);
    atomic_store(&g_live, 0);
    atomic_store(&g_peak, 0);
}

static inline int counting(void)
{
    return atomic_load_explicit(&g_count_on, memory_order_relaxed);
}

static void note_alloc(void *p, size_t req)
{
    if (!p)
        return;
    atomic_fetch_add_explicit(&g_allocs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_bytes, req, memory_order_relaxed);
    int64_t u = (int64_t)malloc_usable_size(p);
    int64_t live = atomic_fetch_add_explicit(&g_live, u, memory_order_relaxed) + u;
    int64_t pk = atomic_load_explicit(&g_peak, memory_order_relaxed);
    while (live > pk &&
           !atomic_compare_exchange_weak_explicit(&g_peak, &pk, live,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

static void note_free(void *p)
{
    if (p)
        atomic_fetch_sub_explicit(&g_live, (int64_t)malloc_usable_size(p),
                                  memory_order_relaxed);
}

void *malloc(size_t n)
{
    void *p = __libc_malloc(n);
    if (counting())
        note_alloc(p, n);
    return p;
}

void *calloc(size_t n, size_t size)
{
    void *p = __libc_calloc(n, size);
    if (counting())
        note_alloc(p, n * size);
    return p;
}

void *realloc(void *old, size_t n)
{
    if (counting()) {
        note_free(old);
        void *p = __libc_realloc(old, n);
        if (p)
            note_alloc(p, n);
        else if (old && n)
            atomic_fetch_add(&g_live, (int64_t)malloc_usable_size(old));
        return p;
    }
    return __libc_realloc(old, n);
}

void free(void *p)
{
    if (counting())
        note_free(p);
    __libc_free(p);
}

/* Blocks libctx's cache hands out or takes back (no malloc/free call). */
static void cache_alloc(void *p, size_t n)
{
    if (counting())
        note_alloc(p, n);
}

static void cache_free(void *p)
{
    if (counting())
        note_free(p);
}

void *memalign(size_t align, size_t n)
{
    void *p = __libc_memalign(align, n);
    if (counting())
        note_alloc(p, n);
    return p;
}

void *aligned_alloc(size_t align, size_t n) { return memalign(align, n); }

int posix_memalign(void **out, size_t align, size_t n)
{
    void *p = memalign(align, n);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "ctx_bench: %s: %s\n", what, strerror(errno));
    exit(1);
}

static ctx_t *must(ctx_t *c, const char *what)
{
    if (!c)
        die(what);
    return c;
}

static inline void cpu_relax(void) { __builtin_ia32_pause(); }

static volatile uintptr_t g_sink;

static int g_quick, g_tsv;
static int64_t g_target_ns = 300 * 1000 * 1000; /* timed work per row */
static int g_wake_reps = 2000;
static int g_order_reps = 5;

static cpu_set_t g_cpus0; /* the affinity we were started with */

static int cpu_allowed(int cpu) { return CPU_ISSET(cpu, &g_cpus0); }

static int pin_self(int cpu)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    return pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

static void unpin_self(void)
{
    pthread_setaffinity_np(pthread_self(), sizeof g_cpus0, &g_cpus0);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t pct(int64_t *v, size_t n, int p)
{
    qsort(v, n, sizeof *v, cmp_i64);
    size_t i = n * (size_t)p / 100;
    return v[i < n ? i : n - 1];
}

/* ---- the row harness ---------------------------------------------------- */

typedef struct bench {
    uint64_t n;      /* ops asked for                                  */
    uint64_t ops;    /* ops done (whole batches); 0 means n            */
    int64_t elapsed; /* timed ns                                       */
    int64_t t0;
    int count;       /* allocation-counting pass                       */
} bench_t;

static void b_start(bench_t *b)
{
    if (b->count) {
        ctx__mc_set_hooks(cache_alloc, cache_free);
        atomic_store(&g_count_on, 1);
    }
    b->t0 = now_ns();
}

static void b_stop(bench_t *b)
{
    b->elapsed += now_ns() - b->t0;
    if (b->count) {
        atomic_store(&g_count_on, 0);
        ctx__mc_set_hooks(NULL, NULL);
    }
}

/* WithCancel(Background) + cancel + release. */
static void row_cancel_bg(bench_t *b)
{
    ctx_t *bg = ctx_background();
    b_start(b);
    for (uint64_t i = 0; i < b->n; i++) {
        ctx_t *c = must(ctx_with_cancel(bg), "ctx_with_cancel");
        ctx_cancel(c);
        ctx_release(c);
    }
    b_stop(b);
}

/* WithCancel(live cancelable parent) + cancel + release. */
static void row_cancel_parent(bench_t *b)
{
    ctx_t *p = must(ctx_with_cancel(ctx_background()), "ctx_with_cancel");
    b_start(b);
    for (uint64_t i = 0; i < b->n; i++) {
        ctx_t *c = must(ctx_with_cancel(p), "ctx_with_cancel");
        ctx_cancel(c);
        ctx_release(c);
    }
    b_stop(b);
    ctx_cancel(p);
    ctx_release(p);
}

/* WithTimeout(1h) + cancel + release. */
static void row_timeout(bench_t *b)
{
    ctx_t *bg = ctx_background();
    b_start(b);
    for (uint64_t i = 0; i < b->n; i++) {
        ctx_t *c = must(ctx_with_timeout(bg, 3600 * CTX_SECOND),
                        "ctx_with_timeout");
        ctx_cancel(c);
        ctx_release(c);
    }
    b_stop(b);
}

static const char g_keys[10];
static const char g_key_missing;

static ctx_t *value_chain(void)
{
    ctx_t *c = ctx_background();
    for (int i = 0; i < 10; i++) {
        ctx_t *n = must(ctx_with_value(c, &g_keys[i], (void *)(uintptr_t)(i + 1),
                                       NULL), "ctx_with_value");
        ctx_release(c); /* the child holds its parent */
        c = n;
    }
    return c;
}

/* Value lookup from the leaf of a 10-deep chain: the key bound nearest the
 * root (10 nodes away). */
static void row_value_deepest(bench_t *b)
{
    ctx_t *c = value_chain();
    uintptr_t s = 0;
    b_start(b);
    for (uint64_t i = 0; i < b->n; i++)
        s += (uintptr_t)ctx_value(c, &g_keys[0]);
    b_stop(b);
    g_sink = s;
    if (s != b->n)
        fprintf(stderr, "ctx_bench: value_deepest: wrong value\n");
    ctx_release(c);
}

/* ... and a key bound nowhere. */
static void row_value_missing(bench_t *b)
{
    ctx_t *c = value_chain();
    uintptr_t s = 0;
    b_start(b);
    for (uint64_t i = 0; i < b->n; i++)
        s += (uintptr_t)ctx_value(c, &g_key_missing);
    b_stop(b);
    g_sink = s;
    ctx_release(c);
}

/* ctx_err() on a cancelled context. */
static void row_err_cancelled(bench_t *b)
{
    ctx_t *c = must(ctx_with_cancel(ctx_background()), "ctx_with_cancel");
    ctx_cancel(c);
    uintptr_t s = 0;
    b_start(b);
    for (uint64_t i = 0; i < b->n; i++)
        s += (uintptr_t)ctx_err(c);
    b_stop(b);
    g_sink = s;
    ctx_release(c);
}

/* "Is it done?" on a live context: ctx_err(c) != 0. */
static void row_done_check(bench_t *b)
{
    ctx_t *c = must(ctx_with_cancel(ctx_background()), "ctx_with_cancel");
    uintptr_t s = 0;
    b_start(b);
    for (uint64_t i = 0; i < b->n; i++)
        s += ctx_err(c) != 0;
    b_stop(b);
    g_sink = s;
    ctx_release(c);
}

/* Cancel a parent with `width` live children; only the cancel is timed;
 * one op = one child. */
static void fanout(bench_t *b, size_t width)
{
    ctx_t **kids = malloc(width * sizeof *kids);
    if (!kids)
        die("malloc");
    uint64_t batches = (b->n + width - 1) / width;
    for (uint64_t k = 0; k < batches; k++) {
        ctx_t *p = must(ctx_with_cancel(ctx_background()), "ctx_with_cancel");
        for (size_t i = 0; i < width; i++)
            kids[i] = must(ctx_with_cancel(p), "ctx_with_cancel");
        b_start(b);
        ctx_cancel(p);
        b_stop(b);
        for (size_t i = 0; i < width; i++) {
            if (ctx_err(kids[i]) != CTX_CANCELED) {
                fprintf(stderr, "ctx_bench: fanout: child %zu not cancelled\n", i);
                exit(1);
            }
            ctx_release(kids[i]);
        }
        ctx_release(p);
    }
    b->ops = batches * width;
    free(kids);
}

static void row_fanout_1000(bench_t *b) { fanout(b, 1000); }
static void row_fanout_100000(bench_t *b) { fanout(b, 100000); }

/* Cancel the root of a `depth`-deep chain of WithCancel contexts; only the
 * cancel is timed; one op = one node. */
static void row_deep_10000(bench_t *b)
{
    enum { DEPTH = 10000 };
    ctx_t **chain = malloc(DEPTH * sizeof *chain);
    if (!chain)
        die("malloc");
    uint64_t batches = (b->n + DEPTH - 1) / DEPTH;
    for (uint64_t k = 0; k < batches; k++) {
        ctx_t *c = ctx_background();
        for (size_t i = 0; i < DEPTH; i++)
            c = chain[i] = must(ctx_with_cancel(c), "ctx_with_cancel");
        b_start(b);
        ctx_cancel(chain[0]);
        b_stop(b);
        if (ctx_err(chain[DEPTH - 1]) != CTX_CANCELED) {
            fprintf(stderr, "ctx_bench: deep: leaf not cancelled\n");
            exit(1);
        }
        for (size_t i = DEPTH; i-- > 0;)
            ctx_release(chain[i]);
    }
    b->ops = batches * DEPTH;
    free(chain);
}

/* K threads creating and cancelling children of one shared parent;
 * ns/op = wall time / total ops (Go's RunParallel).  parallel2 is K = 2;
 * shared1..shared8 are K = 1, 2, 4, 8 on the CPUs the process may use
 * (more threads than CPUs measure preemption inside the critical
 * sections, the case a sharded parent is for). */
struct par {
    ctx_t *parent;
    uint64_t n;
    _Atomic int *go;
};

static void par_loop(ctx_t *p, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        ctx_t *c = must(ctx_with_cancel(p), "ctx_with_cancel");
        ctx_cancel(c);
        ctx_release(c);
    }
}

static void *par_worker(void *arg)
{
    struct par *w = arg;
    while (!atomic_load_explicit(w->go, memory_order_acquire))
        cpu_relax();
    par_loop(w->parent, w->n);
    return NULL;
}

static void row_shared(bench_t *b, int k)
{
    enum { MAXK = 8 };
    _Atomic int go = 0;
    ctx_t *p = must(ctx_with_cancel(ctx_background()), "ctx_with_cancel");
    struct par w[MAXK];
    pthread_t t[MAXK];
    uint64_t share = b->n / (uint64_t)k;
    for (int i = 1; i < k; i++) {
        w[i] = (struct par){p, share, &go};
        if ((errno = pthread_create(&t[i], NULL, par_worker, &w[i])) != 0)
            die("pthread_create");
    }
    b_start(b);
    atomic_store_explicit(&go, 1, memory_order_release);
    par_loop(p, b->n - share * (uint64_t)(k - 1));
    for (int i = 1; i < k; i++)
        pthread_join(t[i], NULL);
    b_stop(b);
    if (ctx_debug_children(p) != 0)
        fprintf(stderr, "ctx_bench: shared parent, %d threads: %zu children "
                        "left linked\n", k, ctx_debug_children(p));
    ctx_cancel(p);
    ctx_release(p);
}

static void row_parallel2(bench_t *b) { row_shared(b, 2); }
static void row_shared1(bench_t *b) { row_shared(b, 1); }
static void row_shared2(bench_t *b) { row_shared(b, 2); }
static void row_shared4(bench_t *b) { row_shared(b, 4); }
static void row_shared8(bench_t *b) { row_shared(b, 8); }

struct row {
    const char *name;
    const char *label;
    void (*fn)(bench_t *);
    int dual; /* needs two cores */
};

static const struct row g_rows[] = {
    {"cancel_bg", "WithCancel(Background) + cancel (+ release)", row_cancel_bg, 0},
    {"cancel_parent", "WithCancel(live cancelable parent) + cancel", row_cancel_parent, 0},
    {"timeout", "WithTimeout(1h) + cancel", row_timeout, 0},
    {"value_deepest", "Value: deepest key of a 10-deep chain", row_value_deepest, 0},
    {"value_missing", "Value: missing key, 10-deep chain", row_value_missing, 0},
    {"err_cancelled", "Err on a cancelled context", row_err_cancelled, 0},
    {"done_check", "Done check on a live context", row_done_check, 0},
    {"fanout_1000", "cancel fan-out, 1,000 children (per child)", row_fanout_1000, 0},
    {"fanout_100000", "cancel fan-out, 100,000 children (per child)", row_fanout_100000, 0},
    {"deep_10000", "cancel root of a 10,000-deep chain (per node)", row_deep_10000, 0},
    {"parallel2", "2 threads: create+cancel children of one parent", row_parallel2, 1},
    {"shared1", "1 thread: create+cancel children of one parent", row_shared1, 1},
    {"shared2", "2 threads: create+cancel children of one parent", row_shared2, 1},
    {"shared4", "4 threads: create+cancel children of one parent", row_shared4, 1},
    {"shared8", "8 threads: create+cancel children of one parent", row_shared8, 1},
};
#define NROWS (sizeof g_rows / sizeof g_rows[0])

static void run_row(const struct row *r)
{
    uint64_t n = 1;
    bench_t b;
    for (;;) {
        memset(&b, 0, sizeof b);
        b.n = n;
        r->fn(&b);
        if (!b.ops)
            b.ops = b.n;
        if (b.elapsed >= g_target_ns || n >= (UINT64_C(1) << 40))
            break;
        /* Go's predictor: aim 20% over the target, grow at most 100x. */
        double per = (double)(b.elapsed > 0 ? b.elapsed : 1) / (double)b.ops;
        uint64_t next = (uint64_t)((double)g_target_ns * 1.2 / per);
        if (next > 100 * n)
            next = 100 * n;
        if (next <= b.ops)
            next = b.ops + 1;
        n = next;
    }
    double ns_op = (double)b.elapsed / (double)b.ops;

    /* Counting pass: same code, counters on around the timed parts only. */
    bench_t m;
    memset(&m, 0, sizeof m);
    m.n = b.ops < 200000 ? b.ops : 200000;
    m.count = 1;
    counters_reset();
    r->fn(&m);
    if (!m.ops)
        m.ops = m.n;
    double b_op = (double)atomic_load(&g_bytes) / (double)m.ops;
    double a_op = (double)atomic_load(&g_allocs) / (double)m.ops;

    if (g_tsv)
        printf("row\t%s\t%.2f\t%.2f\t%.3f\t%llu\n", r->name, ns_op, b_op, a_op,
               (unsigned long long)b.ops);
    else
        printf("%-14s %-48s %10.2f ns/op %8.1f B/op %7.3f allocs/op  (%llu ops)\n",
               r->name, r->label, ns_op, b_op, a_op, (unsigned long long)b.ops);
    fflush(stdout);
}

/* ---- wake-up latency ---------------------------------------------------- */

enum wmode { W_CTX_WAIT, W_CTX_FD, W_FUTEX, W_CONDVAR, W_EVENTFD };

static const struct {
    const char *name, *label;
} g_wake[] = {
    {"wake_ctx_wait", "cancel -> ctx_wait() returns"},
    {"wake_ctx_fd", "cancel -> poll(ctx_done_fd()) returns"},
    {"wake_futex", "floor: FUTEX_WAKE -> FUTEX_WAIT returns"},
    {"wake_condvar", "floor: pthread_cond_signal -> cond_wait returns"},
    {"wake_eventfd", "floor: eventfd write -> poll returns"},
};

struct wake {
    enum wmode mode;
    _Atomic int phase; /* 0 idle, 1 armed, 2 about to block, 3 woke, 4 quit */
    _Atomic pid_t tid;
    ctx_t *c;
    int fd;
    _Atomic uint32_t fword;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int flag;
    int efd;
    int64_t t1;
    int pinned;
};

static long sys_futex(_Atomic uint32_t *a, int op, uint32_t v)
{
    return syscall(SYS_futex, a, op, v, NULL, NULL, 0);
}

static void *wake_waiter(void *arg)
{
    struct wake *w = arg;
    if (w->pinned)
        pin_self(0);
    atomic_store(&w->tid, (pid_t)syscall(SYS_gettid));
    for (;;) {
        int ph;
        while ((ph = atomic_load_explicit(&w->phase, memory_order_acquire)) != 1 &&
               ph != 4)
            cpu_relax();
        if (ph == 4)
            return NULL;
        atomic_store_explicit(&w->phase, 2, memory_order_release);
        int64_t t1 = 0;
        struct pollfd pf = {.events = POLLIN};
        switch (w->mode) {
        case W_CTX_WAIT:
            if (ctx_wait(w->c, -1) != CTX_CANCELED)
                fprintf(stderr, "ctx_bench: ctx_wait returned early\n");
            t1 = now_ns();
            break;
        case W_CTX_FD:
            pf.fd = w->fd;
            while (poll(&pf, 1, -1) != 1)
                ;
            t1 = now_ns();
            break;
        case W_FUTEX:
            while (atomic_load_explicit(&w->fword, memory_order_acquire) == 0)
                sys_futex(&w->fword, FUTEX_WAIT_PRIVATE, 0);
            t1 = now_ns();
            break;
        case W_CONDVAR:
            pthread_mutex_lock(&w->mu);
            while (!w->flag)
                pthread_cond_wait(&w->cv, &w->mu);
            t1 = now_ns();
            pthread_mutex_unlock(&w->mu);
            break;
        case W_EVENTFD: {
            pf.fd = w->efd;
            while (poll(&pf, 1, -1) != 1)
                ;
            t1 = now_ns();
            uint64_t v;
            if (read(w->efd, &v, sizeof v) != sizeof v)
                fprintf(stderr, "ctx_bench: eventfd read failed\n");
            break;
        }
        }
        w->t1 = t1;
        atomic_store_explicit(&w->phase, 3, memory_order_release);
        while (atomic_load_explicit(&w->phase, memory_order_acquire) == 3)
            cpu_relax();
    }
}

/* 1 when thread `tid` of this process is sleeping ('S'). */
static int thread_sleeping(pid_t tid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 1; /* cannot tell: trust the sleep */
    ssize_t k = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (k <= 0)
        return 1;
    buf[k] = 0;
    char *rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' && rp[2] == 'S';
}

static void sleep_ns(long ns)
{
    struct timespec ts = {0, ns};
    nanosleep(&ts, NULL);
}

enum { NWAKE = sizeof g_wake / sizeof g_wake[0] };

/* One wake-up of `mode`: arm, let the waiter block, signal, time it. */
static int64_t wake_once(struct wake *w, enum wmode mode, int *unsure)
{
    w->mode = mode;
    switch (mode) {
    case W_CTX_WAIT:
        w->c = must(ctx_with_cancel(ctx_background()), "ctx_with_cancel");
        break;
    case W_CTX_FD:
        w->c = must(ctx_with_cancel(ctx_background()), "ctx_with_cancel");
        if ((w->fd = ctx_done_fd(w->c)) < 0)
            die("ctx_done_fd");
        break;
    case W_FUTEX:
        atomic_store(&w->fword, 0);
        break;
    case W_CONDVAR:
        w->flag = 0;
        break;
    case W_EVENTFD:
        break;
    }
    atomic_store_explicit(&w->phase, 1, memory_order_release);
    while (atomic_load_explicit(&w->phase, memory_order_acquire) != 2)
        cpu_relax();
    /* Let it block, then make sure it did. */
    sleep_ns(50000);
    int tries = 0;
    while (!thread_sleeping(w->tid) && ++tries < 200)
        sleep_ns(20000);
    if (tries >= 200)
        (*unsure)++;

    int64_t t0 = now_ns();
    switch (mode) {
    case W_CTX_WAIT:
    case W_CTX_FD:
        ctx_cancel(w->c);
        break;
    case W_FUTEX:
        atomic_store_explicit(&w->fword, 1, memory_order_release);
        sys_futex(&w->fword, FUTEX_WAKE_PRIVATE, 1);
        break;
    case W_CONDVAR:
        pthread_mutex_lock(&w->mu);
        w->flag = 1;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        break;
    case W_EVENTFD: {
        uint64_t one = 1;
        if (write(w->efd, &one, sizeof one) != sizeof one)
            die("eventfd write");
        break;
    }
    }
    while (atomic_load_explicit(&w->phase, memory_order_acquire) != 3)
        cpu_relax();
    int64_t lat = w->t1 - t0;
    if (w->c) {
        ctx_release(w->c);
        w->c = NULL;
        w->fd = -1;
    }
    atomic_store_explicit(&w->phase, 0, memory_order_release);
    return lat;
}

/* Runs the selected mechanisms interleaved, rep by rep, so that drift in
 * the machine's speed hits them all alike. */
static void run_wake(const int *sel)
{
    struct wake w;
    memset(&w, 0, sizeof w);
    w.fd = -1;
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    w.pinned = cpu_allowed(0) && cpu_allowed(1);
    if ((w.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
        die("eventfd");
    if (w.pinned)
        pin_self(1);
    pthread_t t;
    if ((errno = pthread_create(&t, NULL, wake_waiter, &w)) != 0)
        die("pthread_create");
    while (!atomic_load(&w.tid))
        cpu_relax();

    int reps = g_wake_reps;
    int64_t *lat[NWAKE] = {0};
    int unsure[NWAKE] = {0};
    for (int k = 0; k < NWAKE; k++)
        if (sel[k] && !(lat[k] = malloc((size_t)reps * sizeof *lat[k])))
            die("malloc");
    for (int i = 0; i < reps; i++)
        for (int k = 0; k < NWAKE; k++)
            if (sel[k])
                lat[k][i] = wake_once(&w, (enum wmode)k, &unsure[k]);
    atomic_store(&w.phase, 4);
    pthread_join(t, NULL);
    close(w.efd);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    if (w.pinned)
        unpin_self();

    for (int k = 0; k < NWAKE; k++) {
        if (!sel[k])
            continue;
        int64_t p50 = pct(lat[k], (size_t)reps, 50);
        int64_t p99 = pct(lat[k], (size_t)reps, 99);
        if (unsure[k])
            fprintf(stderr, "ctx_bench: %s: waiter not seen asleep in %d reps\n",
                    g_wake[k].name, unsure[k]);
        if (g_tsv)
            printf("wake\t%s\t%lld\t%lld\t%d\t%s\n", g_wake[k].name,
                   (long long)p50, (long long)p99, reps,
                   w.pinned ? "pinned" : "unpinned");
        else
            printf("%-14s %-48s p50 %7.2f us  p99 %7.2f us  (%d reps, %s)\n",
                   g_wake[k].name, g_wake[k].label, (double)p50 / 1e3,
                   (double)p99 / 1e3, reps,
                   w.pinned ? "CPU 1 -> CPU 0" : "unpinned");
        free(lat[k]);
    }
    fflush(stdout);
}

/* ---- breadth-first vs depth-first --------------------------------------- */

/* A tree: nodes[0] is the root; probes are first-level children (all of
 * them, or an even sample of at most MAX_PROBES). */
enum { MAX_PROBES = 1000 };

struct tree {
    ctx_t **nodes;
    size_t n;
    ctx_t *probes[MAX_PROBES];
    size_t nprobes;
};

enum shape { S_1000x100, S_FLAT, S_CHAIN, S_10xCHAIN };

static const char *const g_shape_name[] = {
    "1,000 children x 100 grandchildren (101,001 nodes)",
    "flat: 100,000 children",
    "chain: 100,000 deep",
    "10 children x chain of 10,000 (100,001 nodes)",
};

static void tree_build(struct tree *t, enum shape s)
{
    size_t cap = 101001;
    t->nodes = malloc(cap * sizeof *t->nodes);
    if (!t->nodes)
        die("malloc");
    t->n = 0;
    t->nprobes = 0;
    ctx_t *root = must(ctx_with_cancel(ctx_background()), "ctx_with_cancel");
    t->nodes[t->n++] = root;
    size_t first = 0, nfirst = 0; /* first-level children: nodes[first..] */
    switch (s) {
    case S_1000x100:
        first = t->n;
        nfirst = 1000;
        for (size_t i = 0; i < 1000; i++)
            t->nodes[t->n++] = must(ctx_with_cancel(root), "ctx_with_cancel");
        for (size_t i = 0; i < 1000; i++)
            for (size_t j = 0; j < 100; j++)
                t->nodes[t->n++] = must(ctx_with_cancel(t->nodes[first + i]),
                                        "ctx_with_cancel");
        break;
    case S_FLAT:
        first = t->n;
        nfirst = 100000;
        for (size_t i = 0; i < 100000; i++)
            t->nodes[t->n++] = must(ctx_with_cancel(root), "ctx_with_cancel");
        break;
    case S_CHAIN:
        first = t->n;
        nfirst = 1;
        for (size_t i = 0; i < 100000; i++)
            t->nodes[t->n] = must(ctx_with_cancel(t->nodes[t->n - 1]),
                                  "ctx_with_cancel"), t->n++;
        break;
    case S_10xCHAIN:
        first = t->n;
        nfirst = 10;
        for (size_t i = 0; i < 10; i++)
            t->nodes[t->n++] = must(ctx_with_cancel(root), "ctx_with_cancel");
        for (size_t i = 0; i < 10; i++) {
            ctx_t *c = t->nodes[first + i];
            for (size_t j = 1; j < 10000; j++)
                c = t->nodes[t->n++] = must(ctx_with_cancel(c), "ctx_with_cancel");
        }
        break;
    }
    size_t step = (nfirst + MAX_PROBES - 1) / MAX_PROBES;
    for (size_t i = 0; i < nfirst; i += step)
        t->probes[t->nprobes++] = t->nodes[first + i];
    if (t->probes[t->nprobes - 1] != t->nodes[first + nfirst - 1] &&
        t->nprobes < MAX_PROBES)
        t->probes[t->nprobes++] = t->nodes[first + nfirst - 1];
}

static void tree_free(struct tree *t)
{
    for (size_t i = t->n; i-- > 0;)
        ctx_release(t->nodes[i]);
    free(t->nodes);
    t->nodes = NULL;
}

static int64_t status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return -1;
    char line[256];
    size_t len = strlen(field);
    int64_t v = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, len) && line[len] == ':') {
            v = strtoll(line + len + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* Resets VmHWM to the current RSS (Linux >= 4.0).  0 on success. */
static int reset_hwm(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int ok = write(fd, "5", 1) == 1;
    close(fd);
    return ok ? 0 : -1;
}

struct watch {
    struct tree *t;
    int64_t seen[MAX_PROBES];
    _Atomic int state; /* 0 start, 1 scanning, 2 stop */
};

static void *watcher(void *arg)
{
    struct watch *w = arg;
    pin_self(0);
    size_t left = w->t->nprobes;
    for (size_t i = 0; i < w->t->nprobes; i++)
        w->seen[i] = 0;
    int64_t deadline = now_ns() + 10 * CTX_SECOND;
    int first = 1;
    while (left && atomic_load_explicit(&w->state, memory_order_relaxed) != 2) {
        for (size_t i = 0; i < w->t->nprobes; i++)
            if (!w->seen[i] && ctx_err(w->t->probes[i])) {
                w->seen[i] = now_ns();
                left--;
            }
        if (first) {
            atomic_store(&w->state, 1);
            first = 0;
        }
        if (now_ns() > deadline)
            break;
    }
    return NULL;
}

struct order_res {
    int64_t total_ns;          /* no watcher                        */
    int64_t allocs, bytes;     /* during the cancel                 */
    int64_t peak_heap;         /* peak extra live heap bytes        */
    int64_t rss_kib;           /* VmHWM - VmRSS before; -1 unknown  */
    int64_t stack;             /* stack bytes used by the cancel thread */
    int64_t w_total_ns;        /* with watcher                      */
    int64_t first_all_ns;      /* every probe seen done             */
    int64_t first_med_ns;      /* median probe seen done            */
    int monotone;              /* probes reached in creation order: 1,
                                  reverse: -1, neither: 0            */
};

/* Runs ctx_cancel(root) on a fresh thread whose stack (STK bytes, mapped
 * once) is painted with a pattern, and returns how many bytes of it were
 * written: the stack high-water mark of the whole thread, cancel included.
 * The allocation counters are on around the cancel only. */
enum { STK = 8 << 20 };
static unsigned char *g_stk;

struct cancel_job {
    ctx_t *root;
    int64_t t0, t1;
    int pin;
};

static void *cancel_thread(void *arg)
{
    struct cancel_job *j = arg;
    if (j->pin)
        pin_self(1);
    ctx__mc_set_hooks(cache_alloc, cache_free);
    atomic_store(&g_count_on, 1);
    j->t0 = now_ns();
    ctx_cancel(j->root);
    j->t1 = now_ns();
    atomic_store(&g_count_on, 0);
    ctx__mc_set_hooks(NULL, NULL);
    return NULL;
}

static size_t cancel_on_painted_stack(ctx_t *root, int64_t *ns)
{
    if (!g_stk) {
        g_stk = mmap(NULL, STK, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (g_stk == MAP_FAILED)
            die("mmap");
    }
    memset(g_stk, 0xa5, STK);
    pthread_attr_t a;
    pthread_attr_init(&a);
    if ((errno = pthread_attr_setstack(&a, g_stk, STK)) != 0)
        die("pthread_attr_setstack");
    struct cancel_job j = {root, 0, 0, cpu_allowed(1)};
    pthread_t t;
    if ((errno = pthread_create(&t, &a, cancel_thread, &j)) != 0)
        die("pthread_create");
    pthread_join(t, NULL);
    pthread_attr_destroy(&a);
    *ns = j.t1 - j.t0;
    size_t i = 0;
    while (i < STK && g_stk[i] == 0xa5)
        i++;
    return STK - i;
}

static void order_once(enum shape s, int df, int use_watcher, struct order_res *r)
{
    struct tree t;
    ctx__set_cancel_order(df);

    /* Time and memory, no watcher. */
    tree_build(&t, s);
    int64_t rss0 = status_kib("VmRSS");
    int hwm_ok = reset_hwm() == 0;
    counters_reset();
    r->stack = (int64_t)cancel_on_painted_stack(t.nodes[0], &r->total_ns);
    int64_t hwm = status_kib("VmHWM");
    r->allocs = (int64_t)atomic_load(&g_allocs);
    r->bytes = (int64_t)atomic_load(&g_bytes);
    r->peak_heap = atomic_load(&g_peak);
    r->rss_kib = hwm_ok && rss0 >= 0 && hwm >= 0 ? hwm - rss0 : -1;
    for (size_t i = 0; i < t.n; i++)
        if (ctx_err(t.nodes[i]) != CTX_CANCELED) {
            fprintf(stderr, "ctx_bench: order: node %zu not cancelled\n", i);
            exit(1);
        }
    tree_free(&t);

    r->w_total_ns = r->first_all_ns = r->first_med_ns = -1;
    r->monotone = 0;
    if (!use_watcher)
        goto out;

    /* Fairness: a watcher thread on CPU 0 polls the first-level children
     * while this thread, on CPU 1, cancels the root. */
    tree_build(&t, s);
    struct watch w;
    w.t = &t;
    atomic_store(&w.state, 0);
    pin_self(1);
    pthread_t th;
    if ((errno = pthread_create(&th, NULL, watcher, &w)) != 0)
        die("pthread_create");
    while (atomic_load(&w.state) != 1)
        cpu_relax();
    int64_t t0 = now_ns();
    ctx_cancel(t.nodes[0]);
    int64_t t1 = now_ns();
    pthread_join(th, NULL);
    unpin_self();
    r->w_total_ns = t1 - t0;
    int64_t *d = malloc(t.nprobes * sizeof *d);
    if (!d)
        die("malloc");
    int inc = 1, dec = 1;
    for (size_t i = 0; i < t.nprobes; i++) {
        d[i] = w.seen[i] ? w.seen[i] - t0 : INT64_MAX;
        if (i && w.seen[i] < w.seen[i - 1])
            inc = 0;
        if (i && w.seen[i] > w.seen[i - 1])
            dec = 0;
    }
    r->monotone = t.nprobes > 1 ? (inc && !dec ? 1 : dec && !inc ? -1 : 0) : 1;
    r->first_all_ns = pct(d, t.nprobes, 100);
    r->first_med_ns = pct(d, t.nprobes, 50);
    free(d);
    tree_free(&t);
out:
    ctx__set_cancel_order(0);
}

static int cmp_res_total(const void *a, const void *b)
{
    const struct order_res *x = a, *y = b;
    return x->total_ns < y->total_ns ? -1 : x->total_ns > y->total_ns;
}

static void run_order(void)
{
    int use_watcher = cpu_allowed(0) && cpu_allowed(1);
    int reps = g_order_reps;
    struct order_res *res = calloc((size_t)reps, sizeof *res);
    if (!res)
        die("calloc");
    /* Baseline: a lone context (second try: the first thread start in a
     * process touches more stack). */
    size_t lone_stack = 0;
    for (int i = 0; i < 2; i++) {
        ctx_t *lone = must(ctx_with_cancel(ctx_background()), "ctx_with_cancel");
        int64_t lone_ns;
        lone_stack = cancel_on_painted_stack(lone, &lone_ns);
        ctx_release(lone);
    }
    printf("\n### Cancellation order: breadth-first (default) vs depth-first\n\n");
    printf("Each cell: median of %d reps (memory: the maximum).  \"all done\" = "
           "ctx_cancel(root) returned, i.e. every descendant is done; it runs "
           "on a fresh thread (CPU 1) with a painted stack.  Extra memory "
           "during the cancel: malloc calls and peak extra live heap bytes "
           "(counters), the thread's stack high-water mark (a lone context's "
           "cancel: %zu B, thread start included), and VmHWM growth (reset "
           "just before; the kernel's RSS counters are per-CPU approximations, "
           "good to a few hundred KiB).  First level: a watcher thread on "
           "CPU 0 polls the first-level children (at most %d, evenly sampled) "
           "while CPU 1 cancels the root of a second, identical tree; times "
           "are from the start of that cancel, and its share of that cancel's "
           "total.%s\n\n",
           reps, lone_stack, MAX_PROBES,
           use_watcher ? "" : "  (Only one CPU allowed: no watcher.)");
    printf("| tree | order | all done (ms) | ns/node | mallocs, peak heap B, "
           "stack B, RSS KiB | first level all done | first level median | "
           "first-level order |\n");
    printf("| --- | --- | ---: | ---: | --- | ---: | ---: | --- |\n");
    for (int s = 0; s < 4; s++) {
        size_t nodes = s == S_1000x100 ? 101001 : 100001;
        for (int df = 0; df <= 1; df++) {
            for (int i = 0; i < reps; i++)
                order_once((enum shape)s, df, use_watcher, &res[i]);
            int64_t mx_alloc = 0, mx_bytes = 0, mx_peak = 0, mx_rss = -1,
                    mx_stack = 0;
            int mono = res[0].monotone;
            int64_t *v = malloc((size_t)reps * sizeof *v);
            if (!v)
                die("malloc");
            for (int i = 0; i < reps; i++) {
                if (res[i].allocs > mx_alloc) mx_alloc = res[i].allocs;
                if (res[i].bytes > mx_bytes) mx_bytes = res[i].bytes;
                if (res[i].peak_heap > mx_peak) mx_peak = res[i].peak_heap;
                if (res[i].rss_kib > mx_rss) mx_rss = res[i].rss_kib;
                if (res[i].stack > mx_stack) mx_stack = res[i].stack;
                if (res[i].monotone != mono) mono = 2;
            }
            int64_t all_ms_med;
            qsort(res, (size_t)reps, sizeof *res, cmp_res_total);
            all_ms_med = res[reps / 2].total_ns;
            char fa[64] = "n/a", fm[64] = "n/a";
            if (use_watcher) {
                for (int i = 0; i < reps; i++)
                    v[i] = res[i].first_all_ns * 1000 / res[i].w_total_ns;
                int64_t pa = pct(v, (size_t)reps, 50);
                for (int i = 0; i < reps; i++)
                    v[i] = res[i].first_all_ns;
                int64_t ta = pct(v, (size_t)reps, 50);
                for (int i = 0; i < reps; i++)
                    v[i] = res[i].first_med_ns * 1000 / res[i].w_total_ns;
                int64_t pm = pct(v, (size_t)reps, 50);
                for (int i = 0; i < reps; i++)
                    v[i] = res[i].first_med_ns;
                int64_t tm = pct(v, (size_t)reps, 50);
                snprintf(fa, sizeof fa, "%.3f ms (%.1f%%)", (double)ta / 1e6,
                         (double)pa / 10);
                snprintf(fm, sizeof fm, "%.3f ms (%.1f%%)", (double)tm / 1e6,
                         (double)pm / 10);
            }
            const char *mo = !use_watcher ? "n/a"
                             : mono == 1   ? "creation order"
                             : mono == -1  ? "reverse"
                                           : "mixed (watcher resolution)";
            printf("| %s | %s | %.3f | %.1f | %lld, %lld B, %lld B, %lld KiB "
                   "| %s | %s | %s |\n",
                   g_shape_name[s], df ? "depth-first" : "breadth-first",
                   (double)all_ms_med / 1e6, (double)all_ms_med / (double)nodes,
                   (long long)mx_alloc, (long long)mx_peak, (long long)mx_stack,
                   (long long)mx_rss, fa, fm, mo);
            fflush(stdout);
            free(v);
        }
    }
    free(res);
}

/* ---- main --------------------------------------------------------------- */

static int selected(const char *list, const char *name, const char *group)
{
    if (!list)
        return 1;
    const char *p = list;
    size_t ln = strlen(name), lg = strlen(group);
    while (*p) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if ((l == ln && !strncmp(p, name, l)) || (l == lg && !strncmp(p, group, l)) ||
            (l == 3 && !strncmp(p, "all", 3)) ||
            (l == 4 && !strncmp(p, "dual", 4) && !strcmp(group, "wake")))
            return 1;
        p += l;
        if (*p == ',')
            p++;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *rows = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            g_quick = 1;
        } else if (!strcmp(argv[i], "--tsv")) {
            g_tsv = 1;
        } else if (!strncmp(argv[i], "--rows=", 7)) {
            rows = argv[i] + 7;
        } else if (!strcmp(argv[i], "--list")) {
            for (size_t r = 0; r < NROWS; r++)
                printf("%-14s %-6s %s\n", g_rows[r].name,
                       g_rows[r].dual ? "dual" : "single", g_rows[r].label);
            for (size_t k = 0; k < sizeof g_wake / sizeof g_wake[0]; k++)
                printf("%-14s %-6s %s\n", g_wake[k].name, "wake", g_wake[k].label);
            printf("%-14s %-6s %s\n", "order", "order",
                   "breadth-first vs depth-first study");
            return 0;
        } else {
            fprintf(stderr,
                    "usage: %s [--quick] [--tsv] [--rows=NAME|GROUP,...] [--list]\n"
                    "groups: single, dual (parallel2, sharedN + wake rows), wake, order, all\n",
                    argv[0]);
            return 2;
        }
    }
    if (g_quick) {
        g_target_ns = 20 * 1000 * 1000;
        g_wake_reps = 200;
        g_order_reps = 1;
    }
    if (sched_getaffinity(0, sizeof g_cpus0, &g_cpus0) != 0)
        die("sched_getaffinity");

    if (!g_tsv)
        printf("# ctx_bench%s: %d CPU(s) allowed\n", g_quick ? " --quick" : "",
               CPU_COUNT(&g_cpus0));
    for (size_t r = 0; r < NROWS; r++)
        if (selected(rows, g_rows[r].name, g_rows[r].dual ? "dual" : "single"))
            run_row(&g_rows[r]);
    int wsel[NWAKE], any = 0;
    for (int k = 0; k < NWAKE; k++)
        any |= wsel[k] = selected(rows, g_wake[k].name, "wake");
    if (any)
        run_wake(wsel);
    if (selected(rows, "order", "order"))
        run_order();

    int rc = ctx_shutdown();
    if (rc != 0) {
        fprintf(stderr, "ctx_bench: ctx_shutdown: %s\n", strerror(rc));
        return 1;
    }
    return 0;
}
