/*
 * client_observe.h -- the client's observability hooks (client_observe.c):
 * the per-hop trace span, the observer's metrics, interceptors and access
 * log.  Not installed; included by client_internal.h.
 */
#ifndef CLIENT_OBSERVE_H
#define CLIENT_OBSERVE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct rpc_client_call;
struct obs_cmethod;

/* Per call, inside struct rpc_client_call. */
struct rpc__ccall_obs {
    uint64_t id;                 /* set at start */
    int64_t start_ns;            /* set at start */
    struct obs_cmethod *m;       /* the observer's method slot, or NULL */
    atomic_uint_fast64_t msgs_out, bytes_out; /* user threads */
    uint64_t bytes_in;           /* loop */
    int refused;                 /* an on_start's status (set at start) */
    char trace_id[33], span_id[17], parent_span_id[17]; /* set before start */
    char request_id[64];         /* x-request-id sent, copied at start (the
                                    metadata is freed once on the wire) */
};

/* Propagation of key k (value v, n bytes) from the call's context: for
 * "traceparent", adds the value with a new span id to the call's metadata
 * and returns 1; for any other key returns 0 (the caller adds it).
 * RPC_ERR_NOMEM on failure. */
int rpc__client_obs_propagate(struct rpc_client_call *call, const char *k,
                              const char *v, size_t n);
/* The call is starting (caller's thread): ids, started counter, on_start. */
void rpc__client_obs_start(struct rpc_client_call *call);
/* The caller queued a message of len bytes (any thread). */
void rpc__client_obs_sent(struct rpc_client_call *call, size_t len);
/* Loop: the call is DONE with status/cause/msg. */
void rpc__client_obs_end(struct rpc_client_call *call, int status, int cause,
                         const char *msg);

#endif
