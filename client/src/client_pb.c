/*
 * client_pb.c -- protobuf-c helpers (<rpc/client_pb.h>): pack, call the
 * byte-level API, unpack.  No state, no threads of its own.
 */
#include <rpc/client_pb.h>

#include "rpc_internal.h"

#include <stdlib.h>

void *rpc_client_pb_pack(const ProtobufCMessage *msg, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = rpc__malloc(n ? n : 1);
    if (buf == NULL)
        return NULL;
    *len = protobuf_c_message_pack(msg, buf);
    return buf;
}

int rpc_client_unary_pb(ctx_t *ctx, rpc_client_channel_t *ch,
                        const char *method, const rpc_metadata_t *md,
                        const ProtobufCMessage *req,
                        const ProtobufCMessageDescriptor *resp_desc,
                        ProtobufCMessage **resp, rpc_client_call_t **out)
{
    if (req == NULL || resp_desc == NULL || resp == NULL)
        return RPC_ERR_INVAL;
    *resp = NULL;
    size_t n;
    void *buf = rpc_client_pb_pack(req, &n);
    if (buf == NULL)
        return RPC_ERR_NOMEM;
    rpc_client_call_t *call = NULL;
    int st = rpc_client_unary(ctx, ch, method, md, buf, n, &call);
    free(buf);
    if (st < 0)
        return st;
    if (st == RPC_STATUS_OK) {
        size_t len;
        const void *data = rpc_client_call_response(call, &len);
        *resp = protobuf_c_message_unpack(resp_desc, NULL, len, data);
        if (*resp == NULL)
            st = RPC_STATUS_INTERNAL;
    }
    if (out)
        *out = call;
    else
        rpc_client_call_free(call);
    return st;
}

int rpc_client_call_send_pb(ctx_t *ctx, rpc_client_call_t *call,
                            const ProtobufCMessage *msg)
{
    if (msg == NULL)
        return RPC_ERR_INVAL;
    size_t n;
    void *buf = rpc_client_pb_pack(msg, &n);
    if (buf == NULL)
        return RPC_ERR_NOMEM;
    int rc = rpc_client_call_send(ctx, call, buf, n);
    free(buf);
    return rc;
}

int rpc_client_call_recv_pb(ctx_t *ctx, rpc_client_call_t *call,
                            const ProtobufCMessageDescriptor *desc,
                            ProtobufCMessage **msg)
{
    if (desc == NULL || msg == NULL)
        return RPC_ERR_INVAL;
    void *data;
    size_t len;
    int rc = rpc_client_call_recv(ctx, call, &data, &len);
    if (rc != 0)
        return rc;
    *msg = protobuf_c_message_unpack(desc, NULL, len, data);
    free(data);
    return *msg ? 0 : RPC_ERR_MALFORMED;
}
