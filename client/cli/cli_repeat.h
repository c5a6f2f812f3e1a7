/*
 * cli_repeat.h -- rpcurl's --repeat mode (cli_repeat.c) and gRPC status
 * names as grpc-go (and so grpcurl) prints them.
 */
#ifndef CLI_REPEAT_H
#define CLI_REPEAT_H

#include <rpc/client.h>

#include <stddef.h>
#include <stdint.h>

/* "OK", "Canceled", "Unknown", "InvalidArgument", ... (static). */
const char *cli_code_name(int status);

/* Makes the unary call `path` with request req[0..len) `repeat` times on
 * `concurrency` threads over ch (each call under a child of root with
 * timeout_ns, 0 = none; md borrowed), prints the summary to stdout and
 * returns the most frequent non-OK status (RPC_STATUS_CANCELLED when root
 * was cancelled before all calls ran), or 0.  Blocks until every worker
 * has returned. */
int cli_repeat(ctx_t *root, rpc_client_channel_t *ch, const char *path,
               const rpc_metadata_t *md, const uint8_t *req, size_t len,
               long repeat, long concurrency, int64_t timeout_ns);

#endif /* CLI_REPEAT_H */
