/*
 * rpc_nv.h -- the one builder of HTTP/2 header lists (nghttp2_nv arrays)
 * for the server's responses and trailers and the client's requests.
 * Internal (includes nghttp2); not installed.
 *
 * A list lives on the caller's stack for up to RPC__NV_STACK entries and
 * moves to the heap past that.  Names and plain values are borrowed (they
 * must outlive the submit call); values the builder has to encode
 * (base64 for -bin metadata, percent-encoding for grpc-message, the
 * status digits) are owned by the builder and freed by rpc__nv_free().
 * Out of memory is sticky: entries are then dropped and rpc__nv_failed()
 * says so, so a caller checks once, before submitting.
 *
 * Threads: a builder belongs to the thread that made it.
 */
#ifndef RPC_NV_H
#define RPC_NV_H

#include <rpc/rpc.h>

#include <nghttp2/nghttp2.h>
#include <stddef.h>

enum { RPC__NV_STACK = 24, RPC__NV_OWNED_STACK = 8 };

typedef struct rpc__nv {
    nghttp2_nv *nv;           /* the list: nv[0..n) */
    size_t n, cap;
    char **owned;             /* strings freed by rpc__nv_free */
    size_t nowned, capowned;
    int failed;               /* an allocation failed */
    char status[4];           /* grpc-status digits */
    nghttp2_nv stack[RPC__NV_STACK];
    char *owned_stack[RPC__NV_OWNED_STACK];
} rpc__nv_t;

void rpc__nv_init(rpc__nv_t *b);
/* Appends name: value (both borrowed). */
void rpc__nv_add(rpc__nv_t *b, const char *name, const void *value, size_t len);
/* Appends every entry of md (borrowed), base64-encoding -bin values. */
void rpc__nv_add_metadata(rpc__nv_t *b, const rpc_metadata_t *md);
/* Appends grpc-status and, when msg is non-empty, grpc-message
 * (percent-encoded). */
void rpc__nv_add_status(rpc__nv_t *b, int status, const char *msg);
/* True when an entry was dropped for lack of memory. */
int rpc__nv_failed(const rpc__nv_t *b);
void rpc__nv_free(rpc__nv_t *b);

#endif /* RPC_NV_H */
