/*
 * cancel_styles.c -- the three ways a worker task observes cancellation,
 * running side by side in one task group cut short by a deadline:
 *
 *   crunch      a CPU loop that polls ctx_err() every 4096 iterations;
 *   backoff     a retry loop whose sleep is ctx_wait(ctx, timeout);
 *   event_loop  a poll(2) loop with ctx_done_fd() beside a (silent) pipe.
 *
 * Each prints how it noticed, and the group's wait returns the context's
 * error.  Usage: cancel_styles [deadline-ms] (default 100).  Exit 0 when all
 * three tasks stopped with CTX_DEADLINE_EXCEEDED.
 */
#include <ctx/ctx.h>
#include <ctx/group.h>
#include <ctx/pool.h>

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile uint64_t sink; /* keeps the loop's work from being elided */

static int crunch(ctx_t *ctx, void *arg)
{
    for (uint64_t i = 0;; i++) {
        if ((i & 4095) == 0 && ctx_err(ctx) != 0) {
            printf("crunch:     stopped after %llu iterations: %s\n",
                   (unsigned long long)i, ctx_strerror(ctx_err(ctx)));
            return ctx_err(ctx);
        }
        sink += i * i;
    }
}

static int backoff(ctx_t *ctx, void *arg)
{
    for (int attempt = 0;; attempt++) {
        /* try_once() would go here; pretend it keeps failing */
        int err = ctx_wait(ctx, 10 * CTX_MS); /* a cancellable sleep */
        if (err != 0) {
            printf("backoff:    gave up in attempt %d: %s\n", attempt,
                   ctx_strerror(err));
            return err;
        }
    }
}

static int event_loop(ctx_t *ctx, void *arg)
{
    int sock = *(int *)arg; /* stands in for a socket: never readable */
    int dfd = ctx_done_fd(ctx);
    if (dfd < 0)
        return errno;
    struct pollfd p[2] = {{.fd = sock, .events = POLLIN},
                          {.fd = dfd, .events = POLLIN}};
    for (int wakeups = 1;; wakeups++) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (p[1].revents & POLLIN) { /* never read or close the done fd */
            /* ctx_wait(ctx, -1), not ctx_err(): the fd can turn readable an
             * instant before the error is published (libctx core, commit
             * 89149cf); ctx_wait returns as soon as it is. */
            int err = ctx_wait(ctx, -1);
            printf("event_loop: done fd readable after %d wakeup(s): %s\n",
                   wakeups, ctx_strerror(err));
            return err;
        }
        if (p[0].revents & POLLIN) {
            char buf[64];
            if (read(sock, buf, sizeof buf) <= 0)
                return EIO;
        }
    }
}

int main(int argc, char **argv)
{
    long ms = argc > 1 ? strtol(argv[1], NULL, 10) : 100;
    if (ms <= 0) {
        fprintf(stderr, "usage: %s [deadline-ms]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    int pipefd[2];
    if (pipe(pipefd) != 0) {
        perror("pipe");
        return 1;
    }
    ctx_pool_options_t po;
    ctx_pool_options_init(&po);
    po.threads = 3; /* each style holds its thread until cancelled */
    ctx_pool_t *pool = ctx_pool_create(&po);
    ctx_t *dl = ctx_with_timeout(ctx_background(), ms * CTX_MS);
    ctx_group_options_t go;
    ctx_group_options_init(&go);
    go.pool = pool;
    ctx_group_t *g = pool && dl ? ctx_group_create(dl, &go) : NULL;
    if (g == NULL) {
        perror("setup");
        ctx_release(dl);
        ctx_pool_destroy(pool);
        return 1;
    }
    int rc = ctx_group_go(g, crunch, NULL);
    if (rc == 0)
        rc = ctx_group_go(g, backoff, NULL);
    if (rc == 0)
        rc = ctx_group_go(g, event_loop, &pipefd[0]);
    int err = ctx_group_wait(g);
    printf("group:      %s\n", ctx_strerror(err));
    ctx_group_destroy(g);
    ctx_release(dl);
    ctx_pool_destroy(pool);
    close(pipefd[0]);
    close(pipefd[1]);
    if (rc != 0) {
        fprintf(stderr, "ctx_group_go: %s\n", strerror(rc));
        return 1;
    }
    return err == CTX_DEADLINE_EXCEEDED ? 0 : 1;
}
