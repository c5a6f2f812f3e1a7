/*
 * observe_bench_server -- bench/observe_bench.sh's server: the non-blocking
 * 16-byte echo of rpc_bench_server (demo.v1.Demo/Fanout, one loop), with
 * the observability of issue 12 off or on:
 *
 *   observe_bench_server PORT off|metrics|on [LOG_PATH]
 *
 * "metrics": the admin endpoint only (no access log).
 * "on": the admin endpoint (metrics, live-call registry, /ctxz) on an
 * ephemeral loopback port (printed as "admin on port N") and the access
 * log appended to LOG_PATH (default /dev/null).  SIGINT/SIGTERM stop it.
 */
#include <rpc/server.h>

#include "demo/v1/demo.pb-c.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int echo(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *m, void *ud)
{
    const Demo__V1__FanoutRequest *req = (const void *)m;
    Demo__V1__FanoutReply rsp = DEMO__V1__FANOUT_REPLY__INIT;
    rsp.payload = req->payload;
    return rpc_call_send(call, &rsp.base) == 0 ? RPC_STATUS_OK : RPC_STATUS_CANCELLED;
}

int main(int argc, char **argv)
{
    int on = argc >= 3 && strcmp(argv[2], "on") == 0;
    int metrics = argc >= 3 && strcmp(argv[2], "metrics") == 0;
    if (argc < 3 || (!on && !metrics && strcmp(argv[2], "off") != 0)) {
        fprintf(stderr, "usage: observe_bench_server PORT off|metrics|on [LOG_PATH]\n");
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    rpc_server_t *s = rpc_server_new();
    int fd = -1, rc = s ? 0 : RPC_ERR_NOMEM;
    if (rc == 0 && on) {
        fd = open(argc > 3 ? argv[3] : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
        rc = fd < 0 ? RPC_ERR_IO : rpc_server_enable_access_log(s, fd);
    }
    if (rc == 0 && (on || metrics))
        rc = rpc_server_enable_admin(s, "127.0.0.1", 0);
    if (rc || (rc = rpc_server_set_option(s, RPC_SERVER_LOOP_THREADS, 1)) ||
        (rc = rpc_server_set_option(s, RPC_SERVER_MAX_CONCURRENT_STREAMS, 1000)) ||
        (rc = rpc_server_add_method(s, &demo__v1__demo__descriptor, "Fanout", RPC_UNARY,
                                    RPC_NONBLOCKING, echo, NULL)) ||
        (rc = rpc_server_listen(s, "127.0.0.1", atoi(argv[1]))) ||
        (rc = rpc_server_start(s))) {
        fprintf(stderr, "observe_bench_server: setup: %s\n", rpc_strerror(rc));
        return 1;
    }
    printf("listening on port %d\n", rpc_server_port(s));
    if (on || metrics)
        printf("admin on port %d\n", rpc_server_admin_port(s));
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    rpc_server_shutdown(s, 0);
    rpc_server_free(s);
    if (fd >= 0)
        close(fd);
    return 0;
}
