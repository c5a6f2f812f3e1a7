/*
 * kv_client HOST:PORT -- Put (with x-writer metadata), Get, Get of a
 * missing key, then a Watch with a 1.5 s timeout that sees the current
 * value and a Put made meanwhile.  Exits 0 when every answer is right.
 */
#include "kv/v1/kv.rpc.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int put(ctx_t *ctx, rpc_client_channel_t *ch, const rpc_metadata_t *md,
               uint8_t *value, size_t len)
{
    Kv__V1__PutRequest req = KV__V1__PUT_REQUEST__INIT;
    Kv__V1__PutResponse *rsp = NULL;
    req.key = "greeting", req.value.data = value, req.value.len = len;
    int st = kv_v1_store_put(ctx, ch, md, &req, &rsp, NULL);
    printf("put: %s version %" PRId64 "\n", rpc_status_name(st), rsp ? rsp->version : -1);
    kv__v1__put_response__free_unpacked(rsp, NULL);
    return st == RPC_STATUS_OK;
}

int main(int argc, char **argv)
{
    static uint8_t hello[] = "hello", bye[] = "bye";
    rpc_client_channel_t *ch = NULL;
    rpc_metadata_t *md = rpc_metadata_new();
    if (argc != 2 || !md || rpc_client_channel_new(argv[1], NULL, &ch) ||
        rpc_metadata_add(md, "x-writer", "kv_client", 9))
        return fprintf(stderr, "usage: kv_client HOST:PORT\n"), 2;
    ctx_t *ctx = ctx_with_timeout(ctx_background(), 5 * CTX_SECOND);
    Kv__V1__GetRequest get = KV__V1__GET_REQUEST__INIT;
    Kv__V1__GetResponse *got = NULL;
    int ok = put(ctx, ch, md, hello, 5), st, events = 0;
    get.key = "greeting";
    st = kv_v1_store_get(ctx, ch, NULL, &get, &got, NULL);
    printf("get: %s writer %s\n", rpc_status_name(st), got ? got->writer : "-");
    ok &= got && got->value.len == 5 && !strcmp(got->writer, "kv_client");
    kv__v1__get_response__free_unpacked(got, NULL);
    get.key = "missing";
    st = kv_v1_store_get(ctx, ch, NULL, &get, &got, NULL);
    printf("get missing: %s\n", rpc_status_name(st));
    ok &= st == RPC_STATUS_NOT_FOUND;

    ctx_t *wctx = ctx_with_timeout(ctx, 1500 * CTX_MS);
    Kv__V1__WatchRequest wr = KV__V1__WATCH_REQUEST__INIT;
    rpc_client_call_t *call = NULL;
    Kv__V1__Event *ev;
    wr.key = "greeting";
    ok &= kv_v1_store_watch(wctx, ch, NULL, &wr, &call) == 0;
    while (call && kv_v1_store_watch_read(wctx, call, &ev) == 0) {
        printf("event: version %" PRId64 "\n", ev->version);
        if (++events == 1) /* the current value: now change it */
            ok &= put(ctx, ch, md, bye, 3);
        kv__v1__event__free_unpacked(ev, NULL);
    }
    st = call ? rpc_client_call_finish(ctx, call) : -1;
    printf("watch: %s after %d events\n", rpc_status_name(st), events);
    ok &= st == RPC_STATUS_DEADLINE_EXCEEDED && events == 2;
    rpc_client_call_free(call);
    ctx_release(wctx), ctx_release(ctx);
    rpc_client_channel_free(ch), rpc_metadata_free(md);
    return ok ? 0 : 1;
}
