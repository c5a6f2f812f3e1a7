/*
 * <rpc/client_pb.h> -- optional protobuf-c helpers over <rpc/client.h>.
 *
 * Separate from <rpc/client.h> so that the core client API stays free of
 * protobuf-c types; link rpc::client_pb (which links libprotobuf-c) to use
 * it.  Same threads, blocking and ownership rules as the byte-level
 * functions they wrap.
 */
#ifndef RPC_CLIENT_PB_H
#define RPC_CLIENT_PB_H

#include <rpc/client.h>

#include <protobuf-c/protobuf-c.h>

#ifdef __cplusplus
extern "C" {
#endif

/* rpc_client_unary() with a packed req; on status OK unpacks the response
 * as resp_desc into *resp (free with protobuf_c_message_free_unpacked(*resp,
 * NULL)); *resp is NULL otherwise.  An OK response that does not unpack
 * returns RPC_STATUS_INTERNAL (the call's own status stays OK).  out as
 * for rpc_client_unary() (may be NULL).  Negative RPC_ERR_* as there, plus
 * RPC_ERR_NOMEM when packing fails. */
RPC_API int rpc_client_unary_pb(ctx_t *ctx, rpc_client_channel_t *ch,
                                const char *method, const rpc_metadata_t *md,
                                const ProtobufCMessage *req,
                                const ProtobufCMessageDescriptor *resp_desc,
                                ProtobufCMessage **resp,
                                rpc_client_call_t **out);

/* rpc_client_call_send() of a packed message. */
RPC_API int rpc_client_call_send_pb(ctx_t *ctx, rpc_client_call_t *call,
                                    const ProtobufCMessage *msg);

/* rpc_client_call_recv(), unpacked as desc into *msg (free with
 * protobuf_c_message_free_unpacked).  RPC_ERR_MALFORMED when the bytes do
 * not unpack (the message is consumed; the call goes on). */
RPC_API int rpc_client_call_recv_pb(ctx_t *ctx, rpc_client_call_t *call,
                                    const ProtobufCMessageDescriptor *desc,
                                    ProtobufCMessage **msg);

/* Packs msg into a malloc'ed buffer (*len bytes; free()).  NULL on out of
 * memory. */
RPC_API void *rpc_client_pb_pack(const ProtobufCMessage *msg, size_t *len);

#ifdef __cplusplus
}
#endif
#endif /* RPC_CLIENT_PB_H */
