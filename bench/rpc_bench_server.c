/*
 * rpc_bench_server -- rpc_server configured for the benchmark: one event
 * loop, and demo.v1.Demo served by
 *   Fanout  a 16-byte echo (reply with the payload): non-blocking, on the
 *           loop thread, or blocking, on the worker pool -- the path most
 *           users write -- with WORKERS threads (0: the server's default);
 *   Ticks   a call that stays open until its context is done: non-blocking
 *           (finished by an AfterFunc; the 10,000-in-flight memory figure
 *           holds no thread per call), or in the blocking mode a handler
 *           that holds its worker (the starvation row).
 *
 *   rpc_bench_server PORT [LOOPS [nonblocking|blocking [WORKERS]]]
 *   (prints "listening on port N")
 * SIGTERM/SIGINT: shutdown, then prints the server counters to stdout.
 */
#include <rpc/server.h>

#include "demo/v1/demo.pb-c.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int echo(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *m,
                void *ud)
{
    const Demo__V1__FanoutRequest *req = (const void *)m;
    Demo__V1__FanoutReply rsp = DEMO__V1__FANOUT_REPLY__INIT;
    rsp.payload = req->payload;
    return rpc_call_send(call, &rsp.base) == 0 ? RPC_STATUS_OK
                                                : RPC_STATUS_CANCELLED;
}

struct pending {
    rpc_call_t *call;
    ctx_after_t *after;
};

static void pending_done(void *arg)
{
    struct pending *p = arg;
    int cause = ctx_cause(rpc_call_ctx(p->call));
    rpc_call_finish(p->call, rpc_cause_status(cause), NULL);
    ctx_after_stop(p->after);
    free(p);
}

/* Ticks, blocking style: a long-lived stream that holds its worker until
 * the call ends (what a Watch written as a blocking handler does). */
static int hold_blocking(ctx_t *ctx, rpc_call_t *call,
                         const ProtobufCMessage *m, void *ud)
{
    ctx_wait(ctx, -1);
    return rpc_cause_status(ctx_cause(ctx));
}

static int hold(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *m,
                void *ud)
{
    struct pending *p = malloc(sizeof *p);
    if (p == NULL)
        return RPC_STATUS_RESOURCE_EXHAUSTED;
    p->call = call;
    p->after = ctx_after_func(ctx, pending_done, p);
    if (p->after == NULL) {
        free(p);
        return RPC_STATUS_RESOURCE_EXHAUSTED;
    }
    return RPC_PENDING;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: rpc_bench_server PORT [LOOPS]\n");
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    rpc_server_t *s = rpc_server_new();
    const ProtobufCServiceDescriptor *svc = &demo__v1__demo__descriptor;
    int rc;
    int blocking = argc > 3 && strcmp(argv[3], "blocking") == 0;
    int workers = argc > 4 ? atoi(argv[4]) : blocking ? 0 : 2;
    if (!s || (rc = rpc_server_set_option(s, RPC_SERVER_LOOP_THREADS,
                                          argc > 2 ? atoi(argv[2]) : 1)) ||
        (workers > 0 &&
         (rc = rpc_server_set_option(s, RPC_SERVER_WORKER_THREADS, workers))) ||
        (rc = rpc_server_set_option(s, RPC_SERVER_MAX_CONCURRENT_STREAMS, 1000)) ||
        (rc = rpc_server_add_method(s, svc, "Fanout", RPC_UNARY,
                                    blocking ? RPC_BLOCKING : RPC_NONBLOCKING,
                                    echo, NULL)) ||
        (rc = rpc_server_add_method(s, svc, "Ticks", RPC_SERVER_STREAMING,
                                    blocking ? RPC_BLOCKING : RPC_NONBLOCKING,
                                    blocking ? hold_blocking : hold, NULL)) ||
        (rc = rpc_server_listen(s, "127.0.0.1", atoi(argv[1]))) ||
        (rc = rpc_server_start(s))) {
        fprintf(stderr, "rpc_bench_server: setup failed\n");
        return 1;
    }
    printf("listening on port %d\n", rpc_server_port(s));
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    rpc_server_shutdown(s, 0);
    printf("calls_total=%lld ok=%lld failed=%lld cancel_client=%lld "
           "cancel_peer_gone=%lld cancel_deadline=%lld\n",
           (long long)rpc_server_stat(s, RPC_STAT_CALLS_TOTAL),
           (long long)rpc_server_stat(s, RPC_STAT_CALLS_OK),
           (long long)rpc_server_stat(s, RPC_STAT_CALLS_FAILED),
           (long long)rpc_server_stat(s, RPC_STAT_CANCEL_CLIENT),
           (long long)rpc_server_stat(s, RPC_STAT_CANCEL_PEER_GONE),
           (long long)rpc_server_stat(s, RPC_STAT_CANCEL_DEADLINE));
    rpc_server_free(s);
    ctx_shutdown();
    return 0;
}
