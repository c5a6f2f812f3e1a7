/*
 * <rpc/rpc.h> -- what the gRPC server and client share: status codes, the
 * library's error table, request metadata and its lookup from a context.
 *
 * Layering: libctx <- rpc <- server/client.  This header includes only
 * <ctx/ctx.h> and the C library; no libevent, nghttp2 or protobuf-c type
 * appears here.
 *
 * Threads.  Every function here may be called from any thread.  A metadata
 * set is immutable once a server has attached it to a request context, so
 * any number of threads may read it concurrently; while a caller is still
 * building one (rpc_metadata_add), that caller must own it exclusively.
 *
 * Errors.  Functions that can fail return an int from the RPC_ERR_* table
 * below (0 on success, negative on failure); rpc_strerror() names them.
 * gRPC status codes are a separate space (RPC_STATUS_*, 0..16): a status is
 * what a call ends with on the wire, an error is why a library call failed.
 */
#ifndef RPC_RPC_H
#define RPC_RPC_H

#include <ctx/ctx.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && !defined(RPC_STATIC_DEFINE)
#define RPC_API __attribute__((visibility("default")))
#else
#define RPC_API
#endif

/* ---- status codes (google/rpc/code.proto) ------------------------------- */

#define RPC_STATUS_MAP(X)                                                     \
    X(OK, 0)                                                                  \
    X(CANCELLED, 1)                                                           \
    X(UNKNOWN, 2)                                                             \
    X(INVALID_ARGUMENT, 3)                                                    \
    X(DEADLINE_EXCEEDED, 4)                                                   \
    X(NOT_FOUND, 5)                                                           \
    X(ALREADY_EXISTS, 6)                                                      \
    X(PERMISSION_DENIED, 7)                                                   \
    X(RESOURCE_EXHAUSTED, 8)                                                  \
    X(FAILED_PRECONDITION, 9)                                                 \
    X(ABORTED, 10)                                                            \
    X(OUT_OF_RANGE, 11)                                                       \
    X(UNIMPLEMENTED, 12)                                                      \
    X(INTERNAL, 13)                                                           \
    X(UNAVAILABLE, 14)                                                        \
    X(DATA_LOSS, 15)                                                          \
    X(UNAUTHENTICATED, 16)

typedef enum rpc_status {
#define RPC__STATUS_ENUM(name, num) RPC_STATUS_##name = num,
    RPC_STATUS_MAP(RPC__STATUS_ENUM)
#undef RPC__STATUS_ENUM
} rpc_status_t;

/* The canonical upper-case name of a status ("DEADLINE_EXCEEDED"), or
 * "UNKNOWN_STATUS" for a number outside 0..16.  Static storage. */
RPC_API const char *rpc_status_name(int status);

/* ---- library errors ------------------------------------------------------ */

#define RPC_ERR_MAP(X)                                                        \
    X(NOMEM, -1, "out of memory")                                             \
    X(INVAL, -2, "invalid argument")                                          \
    X(MALFORMED, -3, "malformed input")                                       \
    X(TOO_LARGE, -4, "message larger than the configured limit")              \
    X(UNSUPPORTED, -5, "unsupported feature")                                 \
    X(CLOSED, -6, "call or connection closed")                                \
    X(EOF, -7, "end of stream")                                               \
    X(CANCELED, -8, "context canceled")                                       \
    X(DEADLINE, -9, "context deadline exceeded")                              \
    X(IO, -10, "input/output error")                                          \
    X(STATE, -11, "operation not allowed in this state")                      \
    X(NOT_FOUND, -12, "not found")                                            \
    X(EXISTS, -13, "already exists")                                          \
    X(SYSTEM, -14, "system call failed (see errno)")

enum {
#define RPC__ERR_ENUM(name, num, text) RPC_ERR_##name = num,
    RPC_ERR_MAP(RPC__ERR_ENUM)
#undef RPC__ERR_ENUM
};

/* A fixed English text for an RPC_ERR_* code ("success" for 0, "unknown
 * error" for anything not in the table).  Static storage. */
RPC_API const char *rpc_strerror(int err);

/* RPC_ERR_CANCELED or RPC_ERR_DEADLINE for a done context's ctx_err(), 0
 * for a live one: the error a blocking call returns when its context ends. */
RPC_API int rpc_err_from_ctx(ctx_t *c);

/* ---- metadata ------------------------------------------------------------ */

/* An ordered multimap of metadata entries: keys are lower-case ASCII
 * (0-9 a-z _ - .); values of keys ending in "-bin" are raw bytes (decoded
 * from base64 on receipt, encoded again when sent), others printable
 * ASCII.  Order is preserved.  Owned by whoever created it. */
typedef struct rpc_metadata rpc_metadata_t;

/* A new empty set, or NULL (out of memory).  Free with rpc_metadata_free. */
RPC_API rpc_metadata_t *rpc_metadata_new(void);

/* Frees the set and every entry.  NULL-safe. */
RPC_API void rpc_metadata_free(rpc_metadata_t *md);

/* Appends a copy of key and of value[0..len).  Returns 0, RPC_ERR_INVAL
 * (NULL md/key, empty key, a key with characters outside 0-9 a-z _ - ., or
 * a non-binary value with bytes outside 0x20..0x7E) or RPC_ERR_NOMEM. */
RPC_API int rpc_metadata_add(rpc_metadata_t *md, const char *key,
                             const void *value, size_t len);

/* Number of entries (0 for NULL). */
RPC_API size_t rpc_metadata_count(const rpc_metadata_t *md);

/* Entry i (0-based) in insertion order: *key and *value are borrowed
 * (valid while md lives), *value is NUL-terminated as a convenience.
 * Returns false when i is out of range.  Any out-parameter may be NULL. */
RPC_API bool rpc_metadata_at(const rpc_metadata_t *md, size_t i,
                             const char **key, const void **value,
                             size_t *len);

/* The first value stored under key (exact, case-sensitive match), its
 * length in *len (may be NULL), or NULL when absent.  Borrowed. */
RPC_API const void *rpc_metadata_find(const rpc_metadata_t *md,
                                      const char *key, size_t *len);

/* True when key ends in "-bin" (a binary metadata key). */
RPC_API bool rpc_metadata_key_is_binary(const char *key);

/* The request metadata of the call `c` belongs to: looks up the value the
 * server attached to the request context, through any number of derived
 * contexts.  Returns the first value under key (NUL-terminated, its length
 * in *len when len is not NULL), or NULL when the key is absent or c was
 * not derived from a request context.  Borrowed: valid while the caller
 * holds a reference on c.  Never blocks; any thread. */
RPC_API const char *rpc_metadata_get(ctx_t *c, const char *key, size_t *len);

/* The whole request metadata set visible from c, or NULL.  Borrowed, as
 * above; read-only. */
RPC_API const rpc_metadata_t *rpc_metadata_from_ctx(ctx_t *c);

/* Binds md to a child of parent so that rpc_metadata_get() finds it from
 * every context derived from the result.  Takes ownership of md on success
 * (it is freed with the node); on failure (NULL, errno EINVAL/ENOMEM) the
 * caller still owns md.  Used by the server for each request; a program may
 * use it too (tests, in-process calls). */
RPC_API ctx_t *rpc_ctx_with_metadata(ctx_t *parent, rpc_metadata_t *md);

#ifdef __cplusplus
}
#endif
#endif /* RPC_RPC_H */
