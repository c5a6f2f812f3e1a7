/* Uses the installed rpc::health: a server with the standard health
 * service on 127.0.0.1:0, asked through the generated typed stub, in one
 * process; then a status change seen by the next Check. */
#include "grpc/health/v1/health.rpc.h"

#include <stdio.h>

static int check(rpc_client_channel_t *ch, char *service)
{
    ctx_t *ctx = ctx_with_timeout(ctx_background(), 5 * CTX_SECOND);
    Grpc__Health__V1__HealthCheckRequest req =
        GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    Grpc__Health__V1__HealthCheckResponse *rsp = NULL;
    req.service = service;
    int st = grpc_health_v1_health_check(ctx, ch, NULL, &req, &rsp, NULL);
    int serving = st == RPC_STATUS_OK ? rsp->status : -st;
    grpc__health__v1__health_check_response__free_unpacked(rsp, NULL);
    ctx_release(ctx);
    return serving;
}

int main(void)
{
    char target[64];
    rpc_server_t *s = rpc_server_new();
    rpc_client_channel_t *ch = NULL;
    if (!s || rpc_server_add_health(s) || rpc_server_listen(s, "127.0.0.1", 0) ||
        rpc_server_start(s))
        return 1;
    snprintf(target, sizeof target, "127.0.0.1:%d", rpc_server_port(s));
    if (rpc_client_channel_new(target, NULL, &ch))
        return 1;
    int a = check(ch, "");
    rpc_server_set_health(s, "", RPC_HEALTH_NOT_SERVING);
    int b = check(ch, "");
    int c = check(ch, "no.such.Service");
    printf("health: %d %d %d\n", a, b, c);
    rpc_client_channel_free(ch);
    rpc_server_free(s);
    return a == RPC_HEALTH_SERVING && b == RPC_HEALTH_NOT_SERVING &&
                   c == -RPC_STATUS_NOT_FOUND
               ? 0
               : 1;
}
