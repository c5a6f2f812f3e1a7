/*
 * lifecycle_server.c -- a test server written against the public API only
 * (<rpc/server.h>, <ctx/ctx.h>), as a user would, for lifecycle_py.py:
 * demo.v1.Demo/Fanout reports on stdout what its request context says
 * when it ends.  FanoutRequest.tasks selects the behaviour:
 *
 *   1  wait: "ENTER id", block in ctx_wait() until the request ends, then
 *      "WAIT id <ctx_strerror(ctx_err)> | <rpc_cause_text(ctx_cause)>"
 *   2  reply at once, leaving a ctx_after_func watcher behind that prints
 *      "WATCH id <err> | <cause>" when the request context ends
 *
 * (id = FanoutRequest.payload.)  On SIGTERM it shuts down and prints the
 * counters; it exits 0 only if they add up.
 */
#include <rpc/server.h>

#include "demo/v1/demo.pb-c.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

static void say(const char *what, const char *id, ctx_t *ctx)
{
    pthread_mutex_lock(&out_mu);
    if (ctx)
        printf("%s %s %s | %s\n", what, id, ctx_strerror(ctx_err(ctx)),
               rpc_cause_text(ctx_cause(ctx)));
    else
        printf("%s %s\n", what, id);
    fflush(stdout);
    pthread_mutex_unlock(&out_mu);
}

struct watch {
    ctx_t *ctx;
    ctx_after_t *handle;
    pthread_mutex_t mu; /* handle is set after ctx_after_func returns */
    char id[64];
};

static void watched(void *arg)
{
    struct watch *w = arg;
    say("WATCH", w->id, w->ctx);
    pthread_mutex_lock(&w->mu);
    pthread_mutex_unlock(&w->mu);
    ctx_after_stop(w->handle);
    ctx_release(w->ctx);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static int fanout(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *msg,
                  void *ud)
{
    const Demo__V1__FanoutRequest *req = (const Demo__V1__FanoutRequest *)msg;
    char id[64];
    snprintf(id, sizeof id, "%.*s", (int)req->payload.len,
             (const char *)req->payload.data);
    if (req->tasks == 1) {
        say("ENTER", id, NULL);
        ctx_wait(ctx, -1);
        say("WAIT", id, ctx);
        return rpc_cause_status(ctx_cause(ctx));
    }
    struct watch *w = calloc(1, sizeof *w);
    if (w == NULL)
        return RPC_STATUS_RESOURCE_EXHAUSTED;
    snprintf(w->id, sizeof w->id, "%s", id);
    w->ctx = ctx_retain(ctx);
    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_lock(&w->mu);
    w->handle = ctx_after_func(ctx, watched, w);
    pthread_mutex_unlock(&w->mu);
    Demo__V1__FanoutReply rsp = DEMO__V1__FANOUT_REPLY__INIT;
    return rpc_call_send(call, &rsp.base) == 0 ? RPC_STATUS_OK
                                               : RPC_STATUS_INTERNAL;
}

int main(int argc, char **argv)
{
    int port = 0;
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--port=", 7) == 0)
            port = atoi(argv[i] + 7);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    rpc_server_t *s = rpc_server_new();
    if (s == NULL ||
        rpc_server_set_option(s, RPC_SERVER_WORKER_THREADS, 128) != 0 ||
        rpc_server_add_method(s, &demo__v1__demo__descriptor, "Fanout",
                              RPC_UNARY, RPC_BLOCKING, fanout, NULL) != 0 ||
        rpc_server_listen(s, "127.0.0.1", port) != 0 ||
        rpc_server_start(s) != 0) {
        fprintf(stderr, "lifecycle_server: could not start\n");
        return 1;
    }
    printf("listening on port %d\n", rpc_server_port(s));
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    rpc_server_shutdown(s, CTX_SECOND);
    int64_t total = rpc_server_stat(s, RPC_STAT_CALLS_TOTAL);
    int64_t by_status = 0, by_cause = rpc_server_stat(s, RPC_STAT_CALLS_REJECTED);
    for (int st = 0; st <= 16; st++)
        by_status += rpc_server_stat_status(s, st);
    for (int c = RPC_CAUSE_CLIENT_CANCEL; c <= RPC_CAUSE_STALLED; c++)
        by_cause += rpc_server_stat_cause(s, c);
    int ok = total == by_status && total == by_cause &&
             total == rpc_server_stat(s, RPC_STAT_CALLS_OK) +
                          rpc_server_stat(s, RPC_STAT_CALLS_FAILED);
    printf("COUNTERS total=%lld by_status=%lld by_cause=%lld %s\n",
           (long long)total, (long long)by_status, (long long)by_cause,
           ok ? "add-up" : "DO-NOT-ADD-UP");
    fflush(stdout);
    rpc_server_free(s);
    ctx_shutdown();
    return ok ? 0 : 3;
}
