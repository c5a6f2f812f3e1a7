/*
 * test_ctx_waitgroup.c -- wait groups (<ctx/waitgroup.h>): Add/Done/Wait,
 * reuse in batches (the seed's coordinateWithWaitGroup), many waiters, the
 * memory guarantee, and Go's misuse rules as death tests.
 *
 * Death tests fork (no exec) a child that runs the misuse with its stderr on
 * a pipe; the parent checks that the child died of SIGABRT and that the
 * message is on stderr.  Fork happens while this process runs no threads of
 * its own (every test joins its threads).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctx/ctx.h>
#include <ctx/waitgroup.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- normal use --------------------------------------------------------- */

static void test_wait_on_zero_returns(void **state)
{
    ctx_waitgroup_t *wg = ctx_waitgroup_create();
    assert_non_null(wg);
    assert_int_equal(ctx_waitgroup_count(wg), 0);
    ctx_waitgroup_wait(wg); /* returns at once */
    ctx_waitgroup_add(wg, 2);
    assert_int_equal(ctx_waitgroup_count(wg), 2);
    ctx_waitgroup_done(wg);
    ctx_waitgroup_add(wg, -1);
    assert_int_equal(ctx_waitgroup_count(wg), 0);
    ctx_waitgroup_wait(wg);
    ctx_waitgroup_add(wg, 0); /* a zero delta is fine */
    ctx_waitgroup_destroy(wg);
    ctx_waitgroup_destroy(NULL);
}

struct worker {
    ctx_waitgroup_t *wg;
    int *slot; /* written before Done, read after Wait (no atomics) */
    int value;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    *w->slot = w->value;
    ctx_waitgroup_done(w->wg);
    return NULL;
}

/* coordinateWithWaitGroup: total 12, stride 3, Add/Done/Wait in batches,
 * repeated; each Wait makes the batch's plain writes visible (TSan checks
 * the happens-before edge). */
static void test_batches_reuse(void **state)
{
    enum { TOTAL = 12, STRIDE = 3, ROUNDS = 50 };
    ctx_waitgroup_t *wg = ctx_waitgroup_create();
    int slots[TOTAL];
    struct worker w[TOTAL];
    pthread_t th[TOTAL];
    for (int round = 0; round < ROUNDS; round++) {
        memset(slots, 0, sizeof slots);
        for (int i = 0; i < TOTAL; i += STRIDE) {
            ctx_waitgroup_add(wg, STRIDE);
            for (int j = 0; j < STRIDE; j++) {
                w[i + j] = (struct worker){wg, &slots[i + j],
                                           round * 100 + i + j + 1};
                assert_int_equal(pthread_create(&th[i + j], NULL,
                                                worker_main, &w[i + j]), 0);
            }
            ctx_waitgroup_wait(wg);
            for (int j = 0; j < STRIDE; j++)
                assert_int_equal(slots[i + j], round * 100 + i + j + 1);
            for (int j = 0; j < STRIDE; j++)
                pthread_join(th[i + j], NULL);
        }
    }
    assert_int_equal(ctx_waitgroup_count(wg), 0);
    ctx_waitgroup_destroy(wg);
}

struct waiter {
    ctx_waitgroup_t *wg;
    atomic_int *returned;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    ctx_waitgroup_wait(w->wg);
    atomic_fetch_add(w->returned, 1);
    return NULL;
}

/* Spins (bounded, yielding) until `n` threads are inside Wait. */
static void await_waiters(ctx_waitgroup_t *wg, int n)
{
    for (long i = 0; ctx_waitgroup_waiters(wg) < n; i++) {
        assert_true(i < 100000000L);
        sched_yield();
    }
}

static void test_many_waiters_released_together(void **state)
{
    enum { N = 8 };
    ctx_waitgroup_t *wg = ctx_waitgroup_create();
    atomic_int returned = 0;
    struct waiter w = {wg, &returned};
    pthread_t th[N];
    ctx_waitgroup_add(wg, 2);
    for (int i = 0; i < N; i++)
        assert_int_equal(pthread_create(&th[i], NULL, waiter_main, &w), 0);
    await_waiters(wg, N);
    ctx_waitgroup_done(wg);
    assert_int_equal(atomic_load(&returned), 0); /* counter still 1 */
    assert_int_equal(ctx_waitgroup_waiters(wg), N);
    ctx_waitgroup_done(wg);
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&returned), N);
    assert_int_equal(ctx_waitgroup_waiters(wg), 0);
    /* Reuse is fine once every Wait has returned. */
    ctx_waitgroup_add(wg, 1);
    ctx_waitgroup_done(wg);
    ctx_waitgroup_destroy(wg);
}

/* ---- death tests -------------------------------------------------------- */

/* Runs fn in a forked child; returns its stderr in buf; asserts SIGABRT. */
static void expect_abort(void (*fn)(void), const char *must_contain)
{
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        dup2(pfd[1], STDERR_FILENO);
        close(pfd[0]);
        close(pfd[1]);
        fn();
        _exit(0); /* survived: the parent reports it */
    }
    close(pfd[1]);
    char buf[4096];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(pfd[0], buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof buf - 1)
            break;
    }
    buf[len] = '\0';
    close(pfd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        assert_int_equal(errno, EINTR);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
        fail_msg("child did not die of SIGABRT (status 0x%x); stderr: %s",
                 status, buf);
    if (strstr(buf, must_contain) == NULL)
        fail_msg("child's stderr lacks \"%s\": %s", must_contain, buf);
}

static void misuse_done_without_add(void)
{
    ctx_waitgroup_t *wg = ctx_waitgroup_create();
    ctx_waitgroup_done(wg);
}

static void misuse_add_negative(void)
{
    ctx_waitgroup_t *wg = ctx_waitgroup_create();
    ctx_waitgroup_add(wg, 1);
    ctx_waitgroup_add(wg, -2);
}

static void test_negative_counter_aborts(void **state)
{
    expect_abort(misuse_done_without_add, "ctx_waitgroup: negative counter");
    expect_abort(misuse_add_negative, "ctx_waitgroup: negative counter");
}

static void *plain_waiter(void *arg)
{
    ctx_waitgroup_wait(arg);
    return NULL;
}

/* The next cycle's Add comes before the previous cycle's Wait returned.
 * Done releases the waiter; the Add right after it runs before the waiter
 * has re-acquired the lock, almost always at the first try; the loop
 * repeats (bounded) for the rare schedule where the waiter wins. */
static void misuse_reuse_before_wait_returned(void)
{
    ctx_waitgroup_t *wg = ctx_waitgroup_create();
    for (int i = 0; i < 2000; i++) {
        pthread_t th;
        ctx_waitgroup_add(wg, 1);
        if (pthread_create(&th, NULL, plain_waiter, wg) != 0)
            _exit(3);
        for (long k = 0; ctx_waitgroup_waiters(wg) == 0; k++) {
            if (k > 100000000L)
                _exit(4);
            sched_yield();
        }
        ctx_waitgroup_done(wg); /* ends the cycle, releases the waiter */
        ctx_waitgroup_add(wg, 1); /* next cycle, too early: abort */
        ctx_waitgroup_done(wg);
        pthread_join(th, NULL);
    }
}

static void test_reuse_before_wait_returned_aborts(void **state)
{
    expect_abort(misuse_reuse_before_wait_returned,
                 "WaitGroup is reused before previous Wait has returned");
    expect_abort(misuse_reuse_before_wait_returned,
                 "misuse: Add called concurrently with Wait");
}

static void misuse_destroy_while_waiting(void)
{
    ctx_waitgroup_t *wg = ctx_waitgroup_create();
    pthread_t th;
    ctx_waitgroup_add(wg, 1);
    if (pthread_create(&th, NULL, plain_waiter, wg) != 0)
        _exit(3);
    for (long k = 0; ctx_waitgroup_waiters(wg) == 0; k++) {
        if (k > 100000000L)
            _exit(4);
        sched_yield();
    }
    ctx_waitgroup_destroy(wg);
}

static void test_destroy_while_waiting_aborts(void **state)
{
    expect_abort(misuse_destroy_while_waiting,
                 "ctx_waitgroup: destroyed while a Wait is in progress");
}

/* The checker itself: a child that does nothing wrong is reported. */
static void no_misuse(void)
{
    ctx_waitgroup_t *wg = ctx_waitgroup_create();
    ctx_waitgroup_add(wg, 1);
    ctx_waitgroup_done(wg);
    ctx_waitgroup_destroy(wg);
}

static void test_correct_use_survives(void **state)
{
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        no_misuse();
        _exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        assert_int_equal(errno, EINTR);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wait_on_zero_returns),
        cmocka_unit_test(test_batches_reuse),
        cmocka_unit_test(test_many_waiters_released_together),
        cmocka_unit_test(test_negative_counter_aborts),
        cmocka_unit_test(test_reuse_before_wait_returned_aborts),
        cmocka_unit_test(test_destroy_while_waiting_aborts),
        cmocka_unit_test(test_correct_use_survives),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
