/*
 * interop_service.h -- the services interop_server hosts: the standard
 * grpc.testing.TestService and our demo.v1.Demo (fan-out to sub-tasks with
 * cancellation counters).  Internal to the interop_server program.
 */
#ifndef INTEROP_SERVICE_H
#define INTEROP_SERVICE_H

#include <rpc/server.h>

#include <stdio.h>

/* Registers grpc.testing.TestService (every method but UnimplementedCall).
 * Returns 0 or an RPC_ERR_* code. */
int interop_register(rpc_server_t *s);

typedef struct demo_service demo_service_t;

/* Creates the demo service state: a sub-task pool of `subtask_threads`
 * threads and the counters.  NULL on failure. */
demo_service_t *demo_service_new(int subtask_threads);
/* Registers demo.v1.Demo on s.  Returns 0 or an RPC_ERR_* code. */
int demo_register(rpc_server_t *s, demo_service_t *d);
/* Prints the counters as one line, "demo stats: name=value ...". */
void demo_service_print(demo_service_t *d, FILE *out);
/* Stops the sub-task pool and frees the state (after the server stopped). */
void demo_service_free(demo_service_t *d);

#endif
