/*
 * client_bench -- client-side cost of unary calls with <rpc/client.h>:
 * N calls of demo.v1.Demo/Fanout (a 16-byte FanoutRequest{payload: 14
 * bytes}, echoed back by the server) over C channels (one connection and
 * one loop thread each) with M calls in flight per channel.
 *
 *   client_bench HOST:PORT async|blocking C M N [WARMUP]
 *
 * async     M calls per channel started with rpc_client_unary_async(); each
 *           on_done (on the channel's loop thread) records the latency and
 *           starts the next call on the same channel: no user thread at all.
 * blocking  M user threads per channel, each looping rpc_client_unary().
 *
 * Calls use ctx_background() (no deadline), as the grpc-go client in
 * bench/peers/go_client uses context.Background().  WARMUP calls (default
 * N/10, at most 5000) run first and are not measured.  Prints one line:
 *
 *   calls=N secs=S calls_per_s=R p50_us=A p99_us=B cpu_us_per_call=X errors=E
 *
 * where cpu_us_per_call is the process's utime+stime (getrusage, every
 * thread: loop threads, user threads, libctx's timer) over the measured
 * phase divided by N.  Every call's status and response bytes are checked;
 * a non-OK call counts as an error (exit 1).  The whole run is bounded:
 * a phase not finished after 300 s aborts with exit 3.
 */
#include <rpc/client.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define METHOD "/demo.v1.Demo/Fanout"
#define PHASE_LIMIT_S 300

/* FanoutRequest{payload = "bench-payload!"}: field 3, length 14. */
static const unsigned char req[16] = {0x1a, 0x0e, 'b', 'e', 'n', 'c', 'h', '-',
                                      'p', 'a', 'y', 'l', 'o', 'a', 'd', '!'};
/* FanoutReply{payload = same}: field 2. */
static const unsigned char rsp[16] = {0x12, 0x0e, 'b', 'e', 'n', 'c', 'h', '-',
                                      'p', 'a', 'y', 'l', 'o', 'a', 'd', '!'};

struct phase {
    long n;                 /* calls in this phase */
    atomic_long to_start;   /* calls not yet started */
    atomic_long done;       /* calls finished */
    atomic_long errors;
    int64_t *lat;           /* ns, one per finished call */
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static rpc_client_channel_t **chans;

static bool response_ok(rpc_client_call_t *call, int status)
{
    size_t len = 0;
    const void *r = rpc_client_call_response(call, &len);
    return status == 0 && r != NULL && len == sizeof rsp &&
           memcmp(r, rsp, sizeof rsp) == 0;
}

static void record(struct phase *ph, int64_t t0, bool ok)
{
    long i = atomic_fetch_add(&ph->done, 1);
    if (i < ph->n)
        ph->lat[i] = ctx_now() - t0;
    if (!ok)
        atomic_fetch_add(&ph->errors, 1);
    if (i + 1 == ph->n) {
        pthread_mutex_lock(&ph->mu);
        pthread_cond_signal(&ph->cv);
        pthread_mutex_unlock(&ph->mu);
    }
}

/* ---- async ------------------------------------------------------------- */

/* One in-flight call position.  Each phase has its own phase and slots, so
 * a late on_done of the warm-up phase never starts a measured call. */
struct slot {
    struct phase *ph;
    rpc_client_channel_t *ch;
    int64_t t0;
};

static void start_async(struct slot *s);

static void on_done(rpc_client_call_t *call, int status, void *ud)
{
    struct slot *s = ud;
    record(s->ph, s->t0, response_ok(call, status));
    start_async(s);
}

static void start_async(struct slot *s)
{
    if (atomic_fetch_sub(&s->ph->to_start, 1) <= 0)
        return;
    s->t0 = ctx_now();
    int rc = rpc_client_unary_async(ctx_background(), s->ch, METHOD, NULL, req,
                                    sizeof req, on_done, s, NULL);
    if (rc != 0) {
        fprintf(stderr, "client_bench: start: %s\n", rpc_strerror(rc));
        exit(1);
    }
}

/* ---- blocking ---------------------------------------------------------- */

static void *blocking_worker(void *arg)
{
    struct slot *s = arg;
    rpc_client_channel_t *ch = s->ch;
    while (atomic_fetch_sub(&s->ph->to_start, 1) > 0) {
        int64_t t0 = ctx_now();
        rpc_client_call_t *call = NULL;
        int st = rpc_client_unary(ctx_background(), ch, METHOD, NULL, req,
                                  sizeof req, &call);
        if (st < 0) {
            fprintf(stderr, "client_bench: unary: %s\n", rpc_strerror(st));
            exit(1);
        }
        record(s->ph, t0, response_ok(call, st));
        rpc_client_call_free(call);
    }
    return NULL;
}

/* ---- driver ------------------------------------------------------------ */

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Runs n calls and returns the phase (latencies, errors, wall time).
 * The phase and its slots stay allocated (a late callback may read them). */
static struct phase *run_phase(bool async, int nc, int m, long n,
                               int64_t *wall)
{
    struct phase *ph = calloc(1, sizeof *ph);
    struct slot *slots = calloc((size_t)nc * m, sizeof *slots);
    pthread_t *th = calloc((size_t)nc * m, sizeof *th);
    if (ph == NULL || slots == NULL || th == NULL ||
        (ph->lat = calloc((size_t)n, sizeof *ph->lat)) == NULL)
        exit(1);
    pthread_mutex_init(&ph->mu, NULL);
    pthread_cond_init(&ph->cv, NULL);
    ph->n = n;
    atomic_init(&ph->to_start, n);
    atomic_init(&ph->done, 0);
    atomic_init(&ph->errors, 0);
    for (int i = 0; i < nc * m; i++) {
        slots[i].ph = ph;
        slots[i].ch = chans[i % nc];
    }
    int64_t t0 = ctx_now();
    for (int i = 0; i < nc * m; i++) {
        if (async)
            start_async(&slots[i]);
        else if (pthread_create(&th[i], NULL, blocking_worker, &slots[i])) {
            fprintf(stderr, "client_bench: pthread_create failed\n");
            exit(1);
        }
    }
    struct timespec lim;
    clock_gettime(CLOCK_REALTIME, &lim);
    lim.tv_sec += PHASE_LIMIT_S;
    pthread_mutex_lock(&ph->mu);
    while (atomic_load(&ph->done) < n)
        if (pthread_cond_timedwait(&ph->cv, &ph->mu, &lim) != 0 &&
            atomic_load(&ph->done) < n) {
            fprintf(stderr, "client_bench: phase not done after %d s "
                    "(%ld of %ld calls)\n", PHASE_LIMIT_S,
                    atomic_load(&ph->done), n);
            exit(3);
        }
    pthread_mutex_unlock(&ph->mu);
    *wall = ctx_now() - t0;
    if (!async)
        for (int i = 0; i < nc * m; i++)
            pthread_join(th[i], NULL);
    free(th);
    return ph;
}

int main(int argc, char **argv)
{
    if (argc < 6 || (strcmp(argv[2], "async") && strcmp(argv[2], "blocking"))) {
        fprintf(stderr, "usage: client_bench HOST:PORT async|blocking C M N "
                        "[WARMUP]\n");
        return 2;
    }
    bool async = strcmp(argv[2], "async") == 0;
    int nc = atoi(argv[3]), m = atoi(argv[4]);
    long n = atol(argv[5]);
    long warm = argc > 6 ? atol(argv[6]) : (n / 10 < 5000 ? n / 10 : 5000);
    if (nc < 1 || m < 1 || n < 1 || warm < 0 || nc > 1024 || m > 1024) {
        fprintf(stderr, "client_bench: bad C, M, N or WARMUP\n");
        return 2;
    }
    chans = calloc((size_t)nc, sizeof *chans);
    if (chans == NULL)
        return 1;
    for (int i = 0; i < nc; i++) {
        int rc = rpc_client_channel_new(argv[1], NULL, &chans[i]);
        if (rc != 0) {
            fprintf(stderr, "client_bench: channel: %s\n", rpc_strerror(rc));
            return 1;
        }
    }
    int64_t wall;
    if (warm > 0) {
        struct phase *w = run_phase(async, nc, m, warm, &wall);
        if (atomic_load(&w->errors) != 0) {
            fprintf(stderr, "client_bench: %ld warm-up calls failed\n",
                    atomic_load(&w->errors));
            return 1;
        }
    }
    double c0 = cpu_seconds();
    struct phase *ph = run_phase(async, nc, m, n, &wall);
    double c1 = cpu_seconds();
    long errors = atomic_load(&ph->errors);
    qsort(ph->lat, (size_t)n, sizeof *ph->lat, cmp64);
    printf("calls=%ld secs=%.3f calls_per_s=%.0f p50_us=%.1f p99_us=%.1f "
           "cpu_us_per_call=%.2f errors=%ld\n",
           n, wall / 1e9, n / (wall / 1e9), ph->lat[n / 2] / 1e3,
           ph->lat[(size_t)(n * 0.99)] / 1e3, (c1 - c0) * 1e6 / n, errors);
    fflush(stdout);
    for (int i = 0; i < nc; i++)
        rpc_client_channel_free(chans[i]);
    free(chans);
    return errors ? 1 : 0;
}
