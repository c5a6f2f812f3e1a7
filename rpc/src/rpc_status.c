/*
 * rpc_status.c -- the names of the 17 gRPC status codes and the texts of
 * the library's error table, both generated from the X-macro tables in
 * <rpc/rpc.h> so the numbers and names cannot drift apart.
 */
#include "rpc_internal.h"

const char *rpc_status_name(int status)
{
    switch (status) {
#define NAME(name, num) case num: return #name;
        RPC_STATUS_MAP(NAME)
#undef NAME
    default: return "UNKNOWN_STATUS";
    }
}

const char *rpc_strerror(int err)
{
    switch (err) {
    case 0: return "success";
#define TEXT(name, num, text) case num: return text;
        RPC_ERR_MAP(TEXT)
#undef TEXT
    default: return "unknown error";
    }
}

int rpc_err_from_ctx(ctx_t *c)
{
    switch (ctx_err(c)) {
    case 0: return 0;
    case CTX_DEADLINE_EXCEEDED: return RPC_ERR_DEADLINE;
    default: return RPC_ERR_CANCELED;
    }
}
