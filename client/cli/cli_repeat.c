/*
 * cli_repeat.c -- rpcurl's --repeat/--concurrency mode: one unary call
 * made N times by C worker threads sharing one channel, then a latency
 * summary (p50/p90/p99).  Workers take call numbers from an atomic
 * counter and write only their own slots of the result arrays; the main
 * thread reads them after pthread_join.  A terminal gets a progress line
 * (the main thread polls the counter every 200 ms, display only).
 */
#include "cli_repeat.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* grpc-go's Code.String() names, as grpcurl prints them. */
const char *cli_code_name(int s)
{
    static const char *const n[] = {"OK", "Canceled", "Unknown",
        "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists",
        "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
        "Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable",
        "DataLoss", "Unauthenticated"};
    return s >= 0 && s <= 16 ? n[s] : "Unknown";
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

struct bench {
    ctx_t *root;
    rpc_client_channel_t *ch;
    const char *path;
    const rpc_metadata_t *md;
    const uint8_t *req;
    size_t req_len;
    long repeat;
    int64_t timeout;
    atomic_long next, done;
    int64_t *lat;
    int *status;
};

static void *bench_worker(void *arg)
{
    struct bench *b = arg;
    for (;;) {
        long i = atomic_fetch_add(&b->next, 1);
        if (i >= b->repeat || ctx_err(b->root))
            break;
        ctx_t *c = b->timeout > 0 ? ctx_with_timeout(b->root, b->timeout)
                                     : ctx_retain(b->root);
        int64_t t0 = ctx_now();
        int st = c ? rpc_client_unary(c, b->ch, b->path, b->md,
                                      b->req ? b->req : (const uint8_t *)"",
                                      b->req_len, NULL)
                   : RPC_STATUS_RESOURCE_EXHAUSTED;
        b->lat[i] = ctx_now() - t0;
        b->status[i] = st < 0 ? RPC_STATUS_INTERNAL : st;
        ctx_release(c);
        atomic_fetch_add(&b->done, 1);
    }
    return NULL;
}

int cli_repeat(ctx_t *root, rpc_client_channel_t *ch, const char *path,
               const rpc_metadata_t *md, const uint8_t *req, size_t len,
               long repeat, long concurrency, int64_t timeout)
{
    struct bench b = {.root = root, .ch = ch, .path = path, .md = md,
                      .req = req, .req_len = len, .repeat = repeat,
                      .timeout = timeout};
    b.lat = calloc((size_t)repeat, sizeof *b.lat);
    b.status = calloc((size_t)repeat, sizeof *b.status);
    pthread_t *th = calloc((size_t)concurrency, sizeof *th);
    if (!b.lat || !b.status || !th) {
        free(b.lat);
        free(b.status);
        free(th);
        fprintf(stderr, "out of memory\n");
        return RPC_STATUS_RESOURCE_EXHAUSTED;
    }
    for (long i = 0; i < repeat; i++)
        b.status[i] = -1;
    int64_t t0 = ctx_now();
    long started = 0;
    for (; started < concurrency; started++)
        if (pthread_create(&th[started], NULL, bench_worker, &b) != 0)
            break;
    bool tty = isatty(2);
    /* Progress: poll the counter every 200 ms on a terminal (display only;
     * the join below is the synchronisation). */
    while (tty && atomic_load(&b.done) < repeat && !ctx_err(b.root)) {
        long d = atomic_load(&b.done);
        fprintf(stderr, "\r%ld/%ld calls (%.0f%%)", d, repeat,
                100.0 * (double)d / (double)repeat);
        ctx_wait(b.root, 200 * CTX_MS);
    }
    for (long i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    double secs = (double)(ctx_now() - t0) / 1e9;
    if (tty)
        fprintf(stderr, "\r%*s\r", 40, "");
    long n = 0, counts[17] = {0};
    for (long i = 0; i < repeat; i++) {
        if (b.status[i] < 0)
            continue;
        b.lat[n++] = b.lat[i];
        counts[b.status[i] <= 16 ? b.status[i] : RPC_STATUS_UNKNOWN]++;
    }
    qsort(b.lat, (size_t)n, sizeof *b.lat, cmp64);
#define PCT(p) (n ? (double)b.lat[(size_t)((double)(n - 1) * (p))] / 1e6 : 0.0)
    printf("calls: %ld  ok: %ld  time: %.3f s  rate: %.0f calls/s  "
           "concurrency: %ld\n",
           n, counts[0], secs, secs > 0 ? (double)n / secs : 0.0, concurrency);
    printf("latency ms: p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n", PCT(0.50),
           PCT(0.90), PCT(0.99), n ? (double)b.lat[n - 1] / 1e6 : 0.0);
    int worst = 0;
    long most = 0;
    for (int st = 1; st <= 16; st++)
        if (counts[st]) {
            printf("status %s: %ld\n", cli_code_name(st), counts[st]);
            if (counts[st] > most) {
                most = counts[st];
                worst = st;
            }
        }
    if (ctx_err(b.root) && n < repeat) {
        printf("interrupted after %ld of %ld calls\n", n, repeat);
        if (worst == 0)
            worst = RPC_STATUS_CANCELLED;
    }
    free(b.lat);
    free(b.status);
    free(th);
    return worst;
}

