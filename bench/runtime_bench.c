/*
 * runtime_bench.c -- the worker runtime (ctx_pool, ctx_group) measured the
 * way bench/go_runtime measures goroutines and an errgroup.  Each row prints
 * one TSV line "row<TAB>value<TAB>unit"; bench/runtime_bench.sh runs C and
 * Go alternately and tabulates medians.
 *
 * Rows:
 *   latency_p50/p99   submit-to-start latency, one task at a time (N =
 *                     CPUs): submit one task, the task notes when it started
 *                     and posts a semaphore, the submitter waits, repeat.
 *                     The worker that ran the last task is still polling.
 *   cold_p50/p99      the same after 200 us of quiet before each submit:
 *                     the workers sleep, so this is a futex wake each time.
 *   burst_p50/p99     submit-to-start latency with 100,000 tasks submitted
 *                     back to back (queueing delay included).
 *   pool_tasks_s      empty tasks per second through ctx_pool_submit (one
 *                     submitter, retrying with sched_yield on EAGAIN).
 *   group_tasks_s     the same through ctx_group_go (an errgroup).
 *   fanout_*          10,000 tasks in one group, each blocked in ctx_wait
 *                     on the group's context; cancel the parent; time until
 *                     the last task has returned (fanout_last) and until
 *                     ctx_group_wait() returns (fanout_wait).  10,000 tasks
 *                     blocked at once need 10,000 threads: this row uses a
 *                     pool of 10,000 threads with 64 KiB stacks (a pool of N
 *                     = CPUs threads cannot hold them).
 *   fanout_q_wait     the server's configuration instead: a pool of N = CPUs
 *                     threads, N tasks blocked in ctx_wait and 10,000 - N
 *                     queued; cancel; time until ctx_group_wait() returns
 *                     (the queued ones are skipped at pickup).
 *
 *   cpu_one_N         process CPU time per task, one task at a time (20 us
 *                     apart), growing pools of N = 2, 64, 256 threads: must
 *                     not grow with N (the LIFO wake-up, one waker).
 *   cpu_burst_N       the same for bursts of 1,000 back-to-back tasks;
 *   threads_N         the most threads the pool had meanwhile.
 *   starve_p50/p99    submit-to-start latency, one at a time, on a growing
 *                     pool of 2 whose first 4 tasks block for the whole row.
 *   wake400_p50/p99   200 contexts with 2 tasks parked in ctx_wait on each:
 *                     cancel all 200, time to the last task's return.
 *   wake400_floor_*   the same wake-ups with bare threads and futex words
 *                     (no libctx, no pool): what 400 thread wake-ups cost on
 *                     this machine.
 *   deadline_p50/p99  a thread in ctx_wait on a 1 ms timeout: deadline to
 *                     return (the waiter wakes by its own kernel timer and
 *                     expires the context itself unless the timer thread
 *                     was first).
 * The fixed-pool rows above use max_threads = threads (no growth), as
 * before growth existed.
 *
 * Usage: runtime_bench [--quick]
 *        [--rows=all|latency|throughput|fanout|size|starve|wake|deadline]
 */
#include <ctx/ctx.h>
#include <ctx/group.h>
#include <ctx/pool.h>
#include <ctx/waitgroup.h>

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static bool quick;

static void die(const char *what, int err)
{
    fprintf(stderr, "runtime_bench: %s: %s\n", what, strerror(err));
    exit(1);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t pct(int64_t *v, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

static void row(const char *name, double value, const char *unit)
{
    printf("%s\t%.1f\t%s\n", name, value, unit);
    fflush(stdout);
}

/* A pool of `threads` (0: CPUs); fixed unless `grow_max` > 0, then
 * growing up to that many threads. */
static ctx_pool_t *pool_new_grow(int threads, size_t cap, size_t stack,
                                 int grow_max)
{
    ctx_pool_options_t o;
    ctx_pool_options_init(&o);
    o.threads = threads;
    o.max_threads = grow_max > 0 ? grow_max
                    : threads > 0 ? threads
                                  : ctx_pool_default_threads();
    o.queue_capacity = cap;
    o.stack_size = stack;
    ctx_pool_t *p = ctx_pool_create(&o);
    if (p == NULL)
        die("ctx_pool_create", errno);
    return p;
}

static ctx_pool_t *pool_new(int threads, size_t cap, size_t stack)
{
    return pool_new_grow(threads, cap, stack, 0);
}

/* ---- latency ------------------------------------------------------------ */

struct lat {
    int64_t submitted;
    int64_t started;
    sem_t *done;
};

static int lat_task(ctx_t *ctx, void *arg)
{
    struct lat *l = arg;
    l->started = ctx_now();
    if (l->done != NULL)
        sem_post(l->done);
    return 0;
}

/* One task at a time on `p`: `warm` rounds, then `n` measured, each after
 * `gap_ns` of quiet (0: submit as soon as the last task has started).
 * Prints NAME_p50 and NAME_p99. */
static void one_at_a_time(ctx_pool_t *p, const char *name, size_t n,
                          size_t warm, long gap_ns)
{
    int64_t *v = malloc(n * sizeof(*v));
    sem_t done;
    sem_init(&done, 0, 0);
    struct lat l = {0, 0, &done};
    for (size_t i = 0; i < n + warm; i++) {
        if (gap_ns > 0) {
            struct timespec gap = {0, gap_ns};
            nanosleep(&gap, NULL);
        }
        l.submitted = ctx_now();
        int rc = ctx_pool_submit(p, ctx_background(), lat_task, &l);
        if (rc != 0)
            die("ctx_pool_submit", rc);
        while (sem_wait(&done) != 0)
            ;
        if (i >= warm)
            v[i - warm] = l.started - l.submitted;
    }
    qsort(v, n, sizeof(*v), cmp_i64);
    char key[32];
    snprintf(key, sizeof key, "%s_p50", name);
    row(key, (double)pct(v, n, 0.50), "ns");
    snprintf(key, sizeof key, "%s_p99", name);
    row(key, (double)pct(v, n, 0.99), "ns");
    sem_destroy(&done);
    free(v);
}

static void bench_latency(void)
{
    size_t n = quick ? 2000 : 20000;
    ctx_pool_t *p = pool_new(0, 1024, 0);
    one_at_a_time(p, "latency", n, 100, 0);
    /* cold: 200 us of quiet before each submit, so the workers have
     * stopped polling and sleep (the submit pays a futex wake) */
    one_at_a_time(p, "cold", n / 10, 10, 200 * 1000);
    ctx_pool_destroy(p);

    /* burst: n tasks back to back, queue large enough for all */
    size_t b = quick ? 10000 : 100000;
    struct lat *ls = calloc(b, sizeof(*ls));
    p = pool_new(0, b, 0);
    for (size_t i = 0; i < b; i++) {
        ls[i].submitted = ctx_now();
        int rc = ctx_pool_submit(p, ctx_background(), lat_task, &ls[i]);
        if (rc != 0)
            die("ctx_pool_submit", rc);
    }
    ctx_pool_destroy(p); /* drains: every task has run */
    int64_t *w = malloc(b * sizeof(*w));
    for (size_t i = 0; i < b; i++)
        w[i] = ls[i].started - ls[i].submitted;
    qsort(w, b, sizeof(*w), cmp_i64);
    row("burst_p50", (double)pct(w, b, 0.50), "ns");
    row("burst_p99", (double)pct(w, b, 0.99), "ns");
    free(w);
    free(ls);
}

/* ---- throughput --------------------------------------------------------- */

static atomic_long remaining;
static sem_t all_done;

static int count_task(ctx_t *ctx, void *arg)
{
    if (atomic_fetch_sub_explicit(&remaining, 1, memory_order_acq_rel) == 1)
        sem_post(&all_done);
    return 0;
}

static int empty_task(ctx_t *ctx, void *arg)
{
    return 0;
}

static void bench_throughput(void)
{
    long n = quick ? 100000 : 1000000;
    sem_init(&all_done, 0, 0);

    ctx_pool_t *p = pool_new(0, 65536, 0);
    /* warm-up: threads running, ring pages touched */
    for (long i = 0; i < 65536; i++)
        while (ctx_pool_submit(p, ctx_background(), empty_task, NULL) ==
               EAGAIN)
            sched_yield();
    while (ctx_pool_queued(p) > 0)
        sched_yield();
    atomic_store(&remaining, n);
    int64_t t0 = ctx_now();
    for (long i = 0; i < n; i++) {
        int rc;
        while ((rc = ctx_pool_submit(p, ctx_background(), count_task,
                                     NULL)) == EAGAIN)
            sched_yield();
        if (rc != 0)
            die("ctx_pool_submit", rc);
    }
    while (sem_wait(&all_done) != 0)
        ;
    int64_t t1 = ctx_now();
    row("pool_tasks_s", (double)n / ((double)(t1 - t0) / 1e9), "tasks/s");

    ctx_group_options_t go;
    ctx_group_options_init(&go);
    go.pool = p;
    ctx_group_t *g = ctx_group_create(ctx_background(), &go);
    if (g == NULL)
        die("ctx_group_create", errno);
    t0 = ctx_now();
    for (long i = 0; i < n; i++) {
        int rc;
        while ((rc = ctx_group_go(g, empty_task, NULL)) == EAGAIN)
            sched_yield();
        if (rc != 0)
            die("ctx_group_go", rc);
    }
    int err = ctx_group_wait(g);
    t1 = ctx_now();
    if (err != 0)
        die("ctx_group_wait", err);
    row("group_tasks_s", (double)n / ((double)(t1 - t0) / 1e9), "tasks/s");
    ctx_group_destroy(g);
    ctx_pool_destroy(p);
    sem_destroy(&all_done);
}

/* ---- fan-out cancel ----------------------------------------------------- */

struct fan {
    ctx_waitgroup_t *started;
    _Atomic int64_t last; /* latest return time from ctx_wait */
};

static int blocked_task(ctx_t *ctx, void *arg)
{
    struct fan *f = arg;
    ctx_waitgroup_done(f->started);
    int err = ctx_wait(ctx, -1);
    int64_t now = ctx_now();
    int64_t prev = atomic_load(&f->last);
    while (now > prev && !atomic_compare_exchange_weak(&f->last, &prev, now))
        ;
    return err;
}

/* One round: `blocked` tasks block in ctx_wait, `total - blocked` queue. */
static void fanout_round(ctx_pool_t *p, int total, int blocked,
                         int64_t *last_ns, int64_t *wait_ns,
                         int64_t *cancel_ns)
{
    struct fan f;
    f.started = ctx_waitgroup_create();
    atomic_init(&f.last, 0);
    ctx_t *req = ctx_with_cancel(ctx_background());
    ctx_group_options_t go;
    ctx_group_options_init(&go);
    go.pool = p;
    ctx_group_t *g = ctx_group_create(req, &go);
    if (f.started == NULL || req == NULL || g == NULL)
        die("setup", errno);
    ctx_waitgroup_add(f.started, blocked);
    for (int i = 0; i < total; i++) {
        int rc = ctx_group_go(g, blocked_task, &f);
        if (rc != 0)
            die("ctx_group_go", rc);
    }
    ctx_waitgroup_wait(f.started); /* `blocked` tasks are in ctx_wait */
    int64_t t0 = ctx_now();
    ctx_cancel(req);
    int64_t t1 = ctx_now();
    ctx_group_wait(g);
    int64_t t2 = ctx_now();
    *cancel_ns = t1 - t0;
    *wait_ns = t2 - t0;
    *last_ns = atomic_load(&f.last) - t0;
    ctx_group_destroy(g);
    ctx_release(req);
    /* exactly `blocked` tasks ran before the cancel (they held every
     * worker); the rest were skipped, so the counter is back at zero */
    ctx_waitgroup_destroy(f.started);
}

static void bench_fanout(void)
{
    enum { TOTAL = 10000 };
    int rounds = quick ? 2 : 5;
    int64_t last[8], wait[8], canc[8];

    ctx_pool_t *p = pool_new(TOTAL, TOTAL, 64 * 1024);
    for (int r = 0; r < rounds; r++)
        fanout_round(p, TOTAL, TOTAL, &last[r], &wait[r], &canc[r]);
    ctx_pool_destroy(p);
    qsort(last, (size_t)rounds, sizeof(int64_t), cmp_i64);
    qsort(wait, (size_t)rounds, sizeof(int64_t), cmp_i64);
    qsort(canc, (size_t)rounds, sizeof(int64_t), cmp_i64);
    row("fanout_cancel", (double)canc[rounds / 2] / 1e3, "us");
    row("fanout_last", (double)last[rounds / 2] / 1e3, "us");
    row("fanout_wait", (double)wait[rounds / 2] / 1e3, "us");

    int n = ctx_pool_default_threads();
    p = pool_new(n, TOTAL, 0);
    for (int r = 0; r < rounds; r++)
        fanout_round(p, TOTAL, n, &last[r], &wait[r], &canc[r]);
    ctx_pool_destroy(p);
    qsort(wait, (size_t)rounds, sizeof(int64_t), cmp_i64);
    row("fanout_q_wait", (double)wait[rounds / 2] / 1e3, "us");
}

/* ---- pool size, growth, mass wake-ups, deadlines ------------------------ */

static double cpu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* CPU time of the whole process per task, for pools of 2, 64 and 256
 * threads: one task at a time (each submitted once the last one started,
 * 20 us apart, so workers poll and park as in a server under light load),
 * and bursts of 1,000 back to back.  Growing pools (default maximum). */
static void bench_size(void)
{
    static const int sizes[] = {2, 64, 256};
    size_t n = quick ? 2000 : 20000;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        ctx_pool_t *p = pool_new_grow(sizes[k], 4096, 256 * 1024,
                                      CTX_POOL_DEFAULT_MAX_THREADS);
        sem_t done;
        sem_init(&done, 0, 0);
        struct lat l = {0, 0, &done};
        double c0 = cpu_now_ns();
        for (size_t i = 0; i < n; i++) {
            struct timespec gap = {0, 20 * 1000};
            nanosleep(&gap, NULL);
            int rc = ctx_pool_submit(p, ctx_background(), lat_task, &l);
            if (rc != 0)
                die("ctx_pool_submit", rc);
            while (sem_wait(&done) != 0)
                ;
        }
        double c1 = cpu_now_ns();
        char key[32];
        snprintf(key, sizeof key, "cpu_one_%d", sizes[k]);
        row(key, (c1 - c0) / (double)n, "ns");
        sem_destroy(&done);

        sem_init(&all_done, 0, 0);
        size_t rounds = quick ? 20 : 200, burst = 1000;
        c0 = cpu_now_ns();
        for (size_t r = 0; r < rounds; r++) {
            atomic_store(&remaining, (long)burst);
            for (size_t i = 0; i < burst; i++) {
                int rc;
                while ((rc = ctx_pool_submit(p, ctx_background(), count_task,
                                             NULL)) == EAGAIN)
                    sched_yield();
                if (rc != 0)
                    die("ctx_pool_submit", rc);
            }
            while (sem_wait(&all_done) != 0)
                ;
        }
        c1 = cpu_now_ns();
        snprintf(key, sizeof key, "cpu_burst_%d", sizes[k]);
        row(key, (c1 - c0) / (double)(rounds * burst), "ns");
        ctx_pool_stats_t st;
        ctx_pool_stats(p, &st);
        snprintf(key, sizeof key, "threads_%d", sizes[k]);
        row(key, (double)st.peak_threads, "threads");
        sem_destroy(&all_done);
        ctx_pool_destroy(p);
    }
}

/* Starvation: a growing pool of 2 (the CPUs) with 4 tasks blocked for the
 * whole row; short tasks one at a time still start (a fixed pool of 2
 * would never run them).  submit-to-start latency. */
static void bench_starve(void)
{
    ctx_pool_t *p = pool_new_grow(2, 1024, 256 * 1024,
                                  CTX_POOL_DEFAULT_MAX_THREADS);
    ctx_t *hold = ctx_with_cancel(ctx_background());
    struct fan f;
    f.started = ctx_waitgroup_create();
    atomic_init(&f.last, 0);
    ctx_waitgroup_add(f.started, 4);
    for (int i = 0; i < 4; i++)
        if (ctx_pool_submit(p, hold, blocked_task, &f) != 0)
            die("ctx_pool_submit", EAGAIN);
    ctx_waitgroup_wait(f.started);
    one_at_a_time(p, "starve", quick ? 2000 : 20000, 100, 0);
    ctx_cancel(hold);
    ctx_pool_destroy(p);
    ctx_release(hold);
    ctx_waitgroup_destroy(f.started);
}

static _Atomic uint32_t floor_words[200];
static _Atomic uint32_t floor_gen;
static _Atomic int floor_parked, floor_ran, floor_quit;
static _Atomic int64_t floor_last;

struct floor_thread {
    _Atomic uint32_t *word;
};

static void *floor_main(void *arg)
{
    struct floor_thread *t = arg;
    for (;;) {
        uint32_t g = atomic_load(&floor_gen);
        atomic_fetch_add(&floor_parked, 1);
        while (atomic_load(t->word) == 0)
            syscall(SYS_futex, t->word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
        if (atomic_load(&floor_quit))
            return NULL;
        int64_t now = ctx_now(), prev = atomic_load(&floor_last);
        while (now > prev &&
               !atomic_compare_exchange_weak(&floor_last, &prev, now))
            ;
        atomic_fetch_add(&floor_ran, 1);
        while (atomic_load(&floor_gen) == g)
            syscall(SYS_futex, &floor_gen, FUTEX_WAIT_PRIVATE, g, NULL, NULL, 0);
    }
}

/* Mass wake-up: 200 request contexts, each with 2 tasks parked in ctx_wait
 * on it (400 threads of a growing pool); cancel the 200 one after another
 * and time until the last task returns.  p50/p99 over rounds. */
static void bench_mass_wake(void)
{
    enum { CALLS = 200, SUB = 2 };
    int rounds = quick ? 10 : 50;
    int64_t *v = malloc((size_t)rounds * sizeof(*v));
    ctx_pool_t *p = pool_new_grow(2, 4096, 256 * 1024, CALLS * SUB + 16);
    for (int r = 0; r < rounds; r++) {
        ctx_t *req[CALLS];
        struct fan f;
        f.started = ctx_waitgroup_create();
        atomic_init(&f.last, 0);
        ctx_waitgroup_add(f.started, CALLS * SUB);
        for (int i = 0; i < CALLS; i++) {
            req[i] = ctx_with_cancel(ctx_background());
            for (int j = 0; j < SUB; j++)
                if (ctx_pool_submit_cb(p, req[i], blocked_task, &f, NULL,
                                       NULL) != 0)
                    die("ctx_pool_submit", EAGAIN);
        }
        ctx_waitgroup_wait(f.started);
        int64_t t0 = ctx_now();
        for (int i = 0; i < CALLS; i++)
            ctx_cancel(req[i]);
        while (ctx_pool_running(p) > 0)
            sched_yield();
        v[r] = atomic_load(&f.last) - t0;
        for (int i = 0; i < CALLS; i++)
            ctx_release(req[i]);
        ctx_waitgroup_destroy(f.started);
    }
    ctx_pool_destroy(p);
    qsort(v, (size_t)rounds, sizeof(*v), cmp_i64);
    row("wake400_p50", (double)pct(v, (size_t)rounds, 0.50), "ns");
    row("wake400_p99", (double)pct(v, (size_t)rounds, 0.99), "ns");

    /* The floor on this machine: 400 bare threads parked in FUTEX_WAIT on
     * 200 words, 2 per word; one FUTEX_WAKE per word, time to the last
     * thread running.  No libctx, no pool. */
    pthread_t th[CALLS * SUB];
    struct floor_thread ft[CALLS * SUB];
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 64 * 1024);
    for (int i = 0; i < CALLS * SUB; i++) {
        ft[i].word = &floor_words[i % CALLS];
        if (pthread_create(&th[i], &at, floor_main, &ft[i]) != 0)
            die("pthread_create", errno);
    }
    pthread_attr_destroy(&at);
    for (int r = 0; r < rounds; r++) {
        while (atomic_load(&floor_parked) < CALLS * SUB)
            sched_yield();
        atomic_store(&floor_parked, 0);
        atomic_store(&floor_ran, 0);
        atomic_store(&floor_last, 0);
        int64_t t0 = ctx_now();
        for (int i = 0; i < CALLS; i++) {
            atomic_store(&floor_words[i], 1);
            syscall(SYS_futex, &floor_words[i], FUTEX_WAKE_PRIVATE, INT_MAX,
                    NULL, NULL, 0);
        }
        while (atomic_load(&floor_ran) < CALLS * SUB)
            sched_yield();
        v[r] = atomic_load(&floor_last) - t0;
        for (int i = 0; i < CALLS; i++)
            atomic_store(&floor_words[i], 0);
        /* next round: let every thread park again */
        atomic_fetch_add(&floor_gen, 1);
        syscall(SYS_futex, &floor_gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL,
                NULL, 0);
    }
    while (atomic_load(&floor_parked) < CALLS * SUB)
        sched_yield();
    atomic_store(&floor_quit, 1);
    for (int i = 0; i < CALLS; i++) {
        atomic_store(&floor_words[i], 1);
        syscall(SYS_futex, &floor_words[i], FUTEX_WAKE_PRIVATE, INT_MAX, NULL,
                NULL, 0);
    }
    for (int i = 0; i < CALLS * SUB; i++)
        pthread_join(th[i], NULL);
    qsort(v, (size_t)rounds, sizeof(*v), cmp_i64);
    row("wake400_floor_p50", (double)pct(v, (size_t)rounds, 0.50), "ns");
    row("wake400_floor_p99", (double)pct(v, (size_t)rounds, 0.99), "ns");
    free(v);
}

/* Deadline precision: a thread parked in ctx_wait on a context with a
 * 1 ms timeout; time from the deadline to its return. */
static void bench_deadline(void)
{
    size_t n = quick ? 100 : 1000;
    int64_t *v = malloc(n * sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        ctx_t *c = ctx_with_timeout(ctx_background(), CTX_MS);
        int64_t d = 0;
        ctx_deadline(c, &d);
        ctx_wait(c, -1);
        v[i] = ctx_now() - d;
        ctx_release(c);
    }
    qsort(v, n, sizeof(*v), cmp_i64);
    row("deadline_p50", (double)pct(v, n, 0.50), "ns");
    row("deadline_p99", (double)pct(v, n, 0.99), "ns");
    free(v);
}

int main(int argc, char **argv)
{
    const char *rows = "all";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (strncmp(argv[i], "--rows=", 7) == 0)
            rows = argv[i] + 7;
        else {
            fprintf(stderr, "usage: %s [--quick] "
                            "[--rows=all|latency|throughput|fanout|size|starve|wake|"
                            "deadline]\n",
                    argv[0]);
            return 2;
        }
    }
    bool all = strcmp(rows, "all") == 0;
    if (all || strcmp(rows, "latency") == 0)
        bench_latency();
    if (all || strcmp(rows, "throughput") == 0)
        bench_throughput();
    if (all || strcmp(rows, "fanout") == 0)
        bench_fanout();
    if (all || strcmp(rows, "size") == 0)
        bench_size();
    if (all || strcmp(rows, "starve") == 0)
        bench_starve();
    if (all || strcmp(rows, "wake") == 0)
        bench_mass_wake();
    if (all || strcmp(rows, "deadline") == 0)
        bench_deadline();
    ctx_shutdown();
    return 0;
}
