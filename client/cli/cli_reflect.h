/*
 * cli_reflect.h -- rpcurl's server-reflection client: one
 * ServerReflectionInfo stream, grpc.reflection.v1 first and
 * grpc.reflection.v1alpha when the server answers UNIMPLEMENTED (as
 * grpcurl does), feeding the files it receives into a cli_pool_t.
 *
 * Blocking, single-threaded; every call is bounded by the ctx given.
 */
#ifndef CLI_REFLECT_H
#define CLI_REFLECT_H

#include "cli_desc.h"

#include <rpc/client.h>

typedef struct cli_refl cli_refl_t;

/* A client on ch sending md (borrowed; both outlive it).  NULL: no memory. */
cli_refl_t *cli_refl_new(ctx_t *ctx, rpc_client_channel_t *ch,
                         const rpc_metadata_t *md);
void cli_refl_free(cli_refl_t *r);

/* The server's services (sorted as the server sent them): *names is a
 * malloc'ed array of malloc'ed strings.  Returns the count, or -1 with a
 * message in err; *status gets the gRPC status when the stream failed with
 * one (else 0). */
long cli_refl_list(cli_refl_t *r, char ***names, char *err, size_t errlen);

/* Adds the file declaring symbol (and every import, fetched by name when
 * the server skipped it) to pool.  0, or -1 with a message in err (the
 * server's NOT_FOUND text for unknown symbols). */
int cli_refl_symbol(cli_refl_t *r, cli_pool_t *pool, const char *symbol,
                    char *err, size_t errlen);

#endif /* CLI_REFLECT_H */
