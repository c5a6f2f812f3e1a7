/*
 * coordinate.c -- the seed's demo67.go in C: "one goroutine dispatching,
 * many doing sub-tasks", coordinated three ways.
 *
 *   1. coordinateWithWaitGroup: total 12, stride 3; in each batch Add(3),
 *      start 3 tasks that each end with Done, Wait.  (ctx_waitgroup)
 *   2. coordinateWithContext: start 12 tasks; the last to finish cancels a
 *      WithCancel context; the dispatcher waits on Done.  (ctx_with_cancel,
 *      ctx_wait)
 *   3. coordinateWithGroup (the variant the seed hints at): the same job in
 *      a task group (errgroup) with a deadline that cuts it short, at most
 *      `stride` tasks in flight.  Prints how many finished and that the rest
 *      were cancelled, with the context error's text.  (ctx_group)
 *
 * Every task runs the seed's addNum: load the number, sleep, compare-and-
 * swap number+1, retry on conflict, print "The number: N [id-attempt]".
 * Goroutines all run at once, so the pool has one thread per task (12).
 *
 * Usage: coordinate [--sleep-ms N] [--deadline-ms N]
 *   --sleep-ms     addNum's sleep (default 200, as in the seed)
 *   --deadline-ms  section 3's deadline (default 5 * sleep-ms)
 * Exit status 0 on success, 1 on a failed call, 2 on bad usage.
 */
#include <ctx/ctx.h>
#include <ctx/group.h>
#include <ctx/pool.h>
#include <ctx/waitgroup.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOTAL 12
#define STRIDE 3

static int64_t sleep_ns = 200 * CTX_MS;

struct add_task {
    _Atomic int32_t *num;
    int id;
    /* section 1 */
    ctx_waitgroup_t *wg;
    /* section 2: the seed's deferFunc */
    ctx_t *cxt;
    atomic_int *finished;
};

static void sleep_for(int64_t ns)
{
    struct timespec ts = {.tv_sec = ns / CTX_SECOND,
                          .tv_nsec = ns % CTX_SECOND};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The seed's addNum body: an optimistic increment that retries on conflict.
 * With ctx != NULL the sleep is cancellable (ctx_wait) and a done context
 * ends the task with its error; otherwise it is time.Sleep. */
static int add_num(_Atomic int32_t *num, int id, ctx_t *ctx)
{
    for (int i = 0;; i++) {
        int32_t cur = atomic_load(num);
        int32_t next = cur + 1;
        if (ctx != NULL) {
            int err = ctx_wait(ctx, sleep_ns);
            if (err != 0)
                return err;
        } else {
            sleep_for(sleep_ns);
        }
        if (atomic_compare_exchange_strong(num, &cur, next)) {
            printf("The number: %d [%d-%d]\n", (int)next, id, i);
            return 0;
        }
    }
}

static int fail(const char *what, int err)
{
    fprintf(stderr, "coordinate: %s: %s\n", what, strerror(err));
    return 1;
}

/* ---- 1. coordinateWithWaitGroup ----------------------------------------- */

static int task_with_waitgroup(ctx_t *ctx, void *arg)
{
    struct add_task *t = arg;
    add_num(t->num, t->id, NULL);
    ctx_waitgroup_done(t->wg); /* defer wg.Done() */
    return 0;
}

static int coordinate_with_waitgroup(ctx_pool_t *pool)
{
    _Atomic int32_t num = 0;
    struct add_task tasks[TOTAL];
    printf("The number: %d [with sync.WaitGroup]\n", (int)atomic_load(&num));
    ctx_waitgroup_t *wg = ctx_waitgroup_create();
    if (wg == NULL)
        return fail("ctx_waitgroup_create", errno);
    for (int i = 1; i <= TOTAL; i += STRIDE) {
        ctx_waitgroup_add(wg, STRIDE);
        for (int j = 0; j < STRIDE; j++) {
            struct add_task *t = &tasks[i + j - 1];
            *t = (struct add_task){.num = &num, .id = i + j, .wg = wg};
            int rc = ctx_pool_submit(pool, ctx_background(),
                                     task_with_waitgroup, t);
            if (rc != 0) {
                /* Undo the Add for the tasks that will never run, so Wait
                 * still returns for those that did start. */
                ctx_waitgroup_add(wg, -(STRIDE - j));
                ctx_waitgroup_wait(wg);
                ctx_waitgroup_destroy(wg);
                return fail("ctx_pool_submit", rc);
            }
        }
        ctx_waitgroup_wait(wg);
    }
    ctx_waitgroup_destroy(wg);
    printf("End.\n");
    return 0;
}

/* ---- 2. coordinateWithContext ------------------------------------------- */

static int task_with_context(ctx_t *ctx, void *arg)
{
    struct add_task *t = arg;
    ctx_t *cxt = t->cxt; /* `t` lives in the dispatcher's frame: after our
                            increment below, only the last task may use it */
    add_num(t->num, t->id, NULL);
    /* deferFunc: the seed checks num == total; counting finished tasks as
     * well makes "the last one to finish" exact, so every line is printed
     * before the dispatcher prints End. */
    if (atomic_fetch_add(t->finished, 1) + 1 == TOTAL &&
        atomic_load(t->num) == TOTAL)
        ctx_cancel(cxt);
    ctx_release(cxt); /* the closure's reference: cancel may still be
                            running here when the dispatcher wakes */
    return 0;
}

static int coordinate_with_context(ctx_pool_t *pool)
{
    _Atomic int32_t num = 0;
    atomic_int finished = 0;
    struct add_task tasks[TOTAL];
    printf("The number: %d [with context.Context]\n", (int)atomic_load(&num));
    ctx_t *cxt = ctx_with_cancel(ctx_background());
    if (cxt == NULL)
        return fail("ctx_with_cancel", errno);
    int started = 0;
    int rc = 0;
    for (int i = 1; i <= TOTAL; i++) {
        struct add_task *t = &tasks[i - 1];
        *t = (struct add_task){.num = &num, .id = i,
                               .cxt = ctx_retain(cxt),
                               .finished = &finished};
        rc = ctx_pool_submit(pool, ctx_background(), task_with_context, t);
        if (rc != 0) {
            ctx_release(t->cxt);
            break;
        }
        started++;
    }
    if (rc != 0) {
        /* Those started still run; let them finish before we return. */
        ctx_pool_shutdown(pool, CTX_POOL_DRAIN);
        ctx_release(cxt);
        return fail("ctx_pool_submit", rc);
    }
    ctx_wait(cxt, -1); /* <-cxt.Done() */
    printf("End.\n");
    ctx_release(cxt);
    return 0;
}

/* ---- 3. coordinateWithGroup: errgroup with a deadline -------------------- */

struct group_tally {
    atomic_int finished;  /* addNum succeeded */
    atomic_int stopped;   /* observed cancellation while running */
    atomic_int skipped;   /* context done before the task started */
};

static int task_in_group(ctx_t *ctx, void *arg)
{
    struct add_task *t = arg;
    return add_num(t->num, t->id, ctx);
}

static void task_in_group_done(int err, bool ran, void *arg, void *user_data)
{
    struct group_tally *tally = user_data;
    if (err == 0)
        atomic_fetch_add(&tally->finished, 1);
    else if (ran)
        atomic_fetch_add(&tally->stopped, 1);
    else
        atomic_fetch_add(&tally->skipped, 1);
}

static int coordinate_with_group(ctx_pool_t *pool, int64_t deadline_ns)
{
    _Atomic int32_t num = 0;
    struct add_task tasks[TOTAL];
    struct group_tally tally = {0};
    printf("The number: %d [with ctx_group, deadline %lld ms]\n",
           (int)atomic_load(&num), (long long)(deadline_ns / CTX_MS));

    ctx_t *dl = ctx_with_timeout(ctx_background(), deadline_ns);
    if (dl == NULL)
        return fail("ctx_with_timeout", errno);
    ctx_group_options_t opts;
    ctx_group_options_init(&opts);
    opts.pool = pool;
    opts.limit = STRIDE; /* at most 3 in flight, like the batches above */
    ctx_group_t *g = ctx_group_create(dl, &opts);
    if (g == NULL) {
        int e = errno;
        ctx_release(dl);
        return fail("ctx_group_create", e);
    }
    int rc = 0;
    int queued = 0;
    for (int i = 1; i <= TOTAL && rc == 0; i++) {
        struct add_task *t = &tasks[i - 1];
        *t = (struct add_task){.num = &num, .id = i};
        rc = ctx_group_go_cb(g, task_in_group, t, task_in_group_done, &tally);
        if (rc == 0)
            queued++;
    }
    int err = ctx_group_wait(g);
    int status = 0;
    if (rc != 0) {
        status = fail("ctx_group_go", rc);
    } else {
        int finished = atomic_load(&tally.finished);
        int stopped = atomic_load(&tally.stopped);
        int skipped = atomic_load(&tally.skipped);
        printf("Finished: %d of %d tasks; cancelled: %d (%d stopped while "
               "running, %d never started): %s\n",
               finished, queued, stopped + skipped, stopped, skipped,
               err != 0 ? ctx_strerror(err) : "none");
        printf("End.\n");
    }
    ctx_group_destroy(g);
    ctx_release(dl);
    return status;
}

static int parse_ms(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 ||
        v > INT64_MAX / CTX_MS)
        return -1;
    *out = (int64_t)v * CTX_MS;
    return 0;
}

int main(int argc, char **argv)
{
    int64_t deadline_ns = -1;
    for (int i = 1; i < argc; i += 2) {
        int64_t *dst = NULL;
        if (strcmp(argv[i], "--sleep-ms") == 0)
            dst = &sleep_ns;
        else if (strcmp(argv[i], "--deadline-ms") == 0)
            dst = &deadline_ns;
        if (dst == NULL || i + 1 == argc || parse_ms(argv[i + 1], dst) != 0) {
            fprintf(stderr,
                    "usage: %s [--sleep-ms N] [--deadline-ms N]\n", argv[0]);
            return 2;
        }
    }
    if (deadline_ns < 0)
        deadline_ns = 5 * sleep_ns;
    setvbuf(stdout, NULL, _IOLBF, 0);

    ctx_pool_options_t po;
    ctx_pool_options_init(&po);
    po.threads = TOTAL; /* one thread per task, as goroutines would run */
    ctx_pool_t *pool = ctx_pool_create(&po);
    if (pool == NULL)
        return fail("ctx_pool_create", errno);

    int status = coordinate_with_waitgroup(pool);
    if (status == 0)
        status = coordinate_with_context(pool);
    if (status == 0)
        status = coordinate_with_group(pool, deadline_ns);

    ctx_pool_destroy(pool);
    if (fflush(stdout) != 0)
        status = 1;
    return status;
}
