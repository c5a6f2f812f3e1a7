/*
 * rpc_internal.h -- the codec pieces shared by the server and the client:
 * gRPC message framing, grpc-timeout, grpc-message percent-encoding, base64
 * for -bin metadata, and the request-info context value.  Not installed.
 *
 * All functions here are pure (no I/O, no global state) and thread-safe on
 * distinct objects.  Errors are RPC_ERR_* codes from <rpc/rpc.h>.
 */
#ifndef RPC_INTERNAL_H
#define RPC_INTERNAL_H

#include <rpc/rpc.h>

#include <stddef.h>
#include <stdint.h>

/* ---- length-prefixed message framing (rpc_frame.c) -------------------- */

#define RPC__FRAME_HDR 5
/* The de-facto default receive limit of every gRPC implementation. */
#define RPC__DEFAULT_MAX_RECV (4u * 1024u * 1024u)

/* Writes the 5-byte prefix (flag, big-endian length) into out. */
void rpc__frame_header(uint8_t out[RPC__FRAME_HDR], int compressed,
                       uint32_t len);

/* Called once per complete message.  `data` is borrowed for the duration
 * of the call only.  Return 0 to go on, anything else to stop: the decoder
 * then returns that value from rpc__frame_feed. */
typedef int (*rpc__frame_cb)(int compressed, const uint8_t *data, size_t len,
                             void *user_data);

/* An incremental decoder: feed it bytes as DATA chunks arrive, in any
 * split; it calls back once per message.  Messages that lie whole inside
 * one chunk are passed without copying; others are assembled in a buffer
 * sized from the prefix (never larger than max_len). */
typedef struct rpc__frame_decoder {
    uint32_t max_len;   /* receive limit */
    uint8_t hdr[RPC__FRAME_HDR];
    size_t hdr_have;    /* bytes of the prefix seen so far */
    uint8_t *buf;       /* message being assembled, or NULL */
    uint32_t msg_len;   /* length from the prefix */
    size_t msg_have;    /* bytes of the body seen so far */
    int flag;           /* compressed flag of the message */
    int error;          /* sticky: once an error is returned, always it */
} rpc__frame_decoder_t;

void rpc__frame_decoder_init(rpc__frame_decoder_t *d, uint32_t max_len);
/* Frees the assembly buffer.  The decoder may be re-initialised. */
void rpc__frame_decoder_reset(rpc__frame_decoder_t *d);
/* Feeds len bytes.  Returns 0, RPC_ERR_TOO_LARGE (a prefix announced more
 * than max_len: checked before any buffering), RPC_ERR_MALFORMED (flag
 * byte not 0 or 1), RPC_ERR_NOMEM, or the callback's non-zero value.
 * Errors are sticky. */
int rpc__frame_feed(rpc__frame_decoder_t *d, const uint8_t *data, size_t len,
                    rpc__frame_cb cb, void *user_data);
/* True when no partial message is pending (a clean end of stream). */
int rpc__frame_idle(const rpc__frame_decoder_t *d);

/* ---- grpc-timeout (rpc_timeout.c) ------------------------------------- */

/* Longest formatted value: 8 digits + unit + NUL. */
#define RPC__TIMEOUT_MAX 10

/* Parses `TimeoutValue TimeoutUnit` (1..8 ASCII digits then one of
 * H M S m u n; nothing else, no spaces) from s[0..len) into nanoseconds
 * (saturating at INT64_MAX, which only 99999999H comes near).  Returns 0 or
 * RPC_ERR_MALFORMED. */
int rpc__timeout_parse(const char *s, size_t len, int64_t *ns);

/* Formats a remaining duration the way grpc-go does: the finest unit among
 * n u m S M H whose value, rounded up, fits in 8 digits.  A duration <= 0
 * is "0n".  Writes a NUL-terminated string; returns its length. */
size_t rpc__timeout_format(int64_t ns, char out[RPC__TIMEOUT_MAX]);

/* ---- grpc-message percent-encoding (rpc_percent.c) --------------------- */

/* Encoded length of src[0..len) (bytes 0x20..0x7E except '%' kept, every
 * other byte as %XX, upper-case hex). */
size_t rpc__percent_encoded_len(const void *src, size_t len);
/* Encodes into dst (room for rpc__percent_encoded_len + 1); NUL-terminates;
 * returns the length written. */
size_t rpc__percent_encode(const void *src, size_t len, char *dst);
/* Decodes src into dst (room for len + 1 always suffices); NUL-terminates.
 * Never fails: a '%' not followed by two hex digits is kept literally, as
 * the spec asks.  Returns the decoded length. */
size_t rpc__percent_decode(const char *src, size_t len, char *dst);

/* ---- base64 for -bin metadata (rpc_base64.c) --------------------------- */

/* Unpadded length of the encoding of len bytes. */
size_t rpc__base64_encoded_len(size_t len);
/* Encodes unpadded (RFC 4648 section 4 alphabet) into dst (room for
 * rpc__base64_encoded_len + 1); NUL-terminates; returns the length. */
size_t rpc__base64_encode(const void *src, size_t len, char *dst);
/* Upper bound of the decoded length of len characters. */
size_t rpc__base64_decoded_max(size_t len);
/* Decodes padded or unpadded base64 into dst (room for
 * rpc__base64_decoded_max(len)).  Returns the decoded length, or
 * RPC_ERR_MALFORMED (character outside the alphabet, a lone trailing
 * character, padding in the middle, non-zero trailing bits). */
long rpc__base64_decode(const char *src, size_t len, uint8_t *dst);

/* ---- message compression (rpc_compress.c) ----------------------------- */

enum { RPC__ENC_IDENTITY = 0, RPC__ENC_GZIP = 1, RPC__ENC_DEFLATE = 2 };
/* What a server or client advertises in grpc-accept-encoding. */
#define RPC__ACCEPT_ENCODING "identity,deflate,gzip"

/* An encoding name ("identity", "gzip", "deflate") -> RPC__ENC_*, or -1
 * for anything else. */
int rpc__encoding_parse(const char *s, size_t len);
const char *rpc__encoding_name(int enc);
/* A grpc-accept-encoding list ("identity, deflate,gzip") -> bit mask of
 * the RPC__ENC_* it names (identity is always in). */
unsigned rpc__accept_encoding_parse(const char *s, size_t len);
/* Compresses one message; *out is malloc'd (caller frees).  Returns 0,
 * RPC_ERR_UNSUPPORTED (identity or unknown enc) or RPC_ERR_NOMEM. */
int rpc__compress(int enc, const uint8_t *in, size_t len, uint8_t **out,
                  size_t *out_len);
/* Decompresses one message into a malloc'd *out of at most max bytes.
 * Returns 0, RPC_ERR_TOO_LARGE (inflates past max: stops there),
 * RPC_ERR_MALFORMED (corrupt, truncated or trailing bytes),
 * RPC_ERR_UNSUPPORTED or RPC_ERR_NOMEM. */
int rpc__decompress(int enc, const uint8_t *in, size_t len, size_t max,
                    uint8_t **out, size_t *out_len);

/* ---- request info: one context value node per request (rpc_metadata.c) */

/* What the server attaches to each request context in one value node:
 * the method path, the peer address and the request metadata.  Owned by
 * the node (freed by its destroy function). */
typedef struct rpc__request_info {
    rpc_metadata_t *md;
    char *method; /* "/pkg.Service/Method", or NULL */
    char *peer;   /* "ipv4:127.0.0.1:5555" style, or NULL */
} rpc__request_info_t;

/* The key the request-info node is stored under. */
extern const char rpc__request_info_key;

/* A value child of parent carrying md, method and peer (copied strings);
 * takes ownership of md on success only.  NULL with errno on failure. */
ctx_t *rpc__ctx_with_request_info(ctx_t *parent, rpc_metadata_t *md,
                                  const char *method, const char *peer);
/* The request info visible from c, or NULL.  Borrowed. */
const rpc__request_info_t *rpc__request_info(ctx_t *c);

/* Appends an entry whose value arrives as wire text: -bin values are
 * split on ',' and base64-decoded (one entry per piece).  Returns 0,
 * RPC_ERR_INVAL (bad key), RPC_ERR_MALFORMED (bad base64) or
 * RPC_ERR_NOMEM. */
int rpc__metadata_add_wire(rpc_metadata_t *md, const char *key,
                           size_t key_len, const char *value,
                           size_t value_len);
/* True when key[0..len) is a valid metadata key. */
int rpc__metadata_key_valid(const char *key, size_t len);

/* ---- allocation, with fault injection -----------------------------------
 *
 * Every allocation in rpc/, server/ and client/ goes through these (nghttp2,
 * libevent and libctx have allocators of their own), so a test can fail
 * each one of a call's life in turn. */

#include <stdatomic.h>
#include <stdlib.h>

#include "../../libctx/src/ctx_mcache.h"

extern _Atomic long rpc__alloc_fail_countdown;
/* True when this allocation is the one to fail (counts down). */
int rpc__alloc_should_fail(void);
static inline int rpc__alloc_fails(void)
{
    return __builtin_expect(atomic_load_explicit(&rpc__alloc_fail_countdown,
                                                 memory_order_relaxed) != 0, 0) &&
           rpc__alloc_should_fail();
}
/* rpc__malloc/rpc__calloc go through libctx's per-thread small-block
 * cache (libctx/src/ctx_mcache.h): the blocks are plain malloc blocks,
 * and rpc__free() puts one back on the freeing thread's cache. */
static inline void *rpc__malloc(size_t n)
{
    return rpc__alloc_fails() ? NULL : ctx__mc_alloc(n);
}
static inline void *rpc__calloc(size_t n, size_t size)
{
    return rpc__alloc_fails() ? NULL : ctx__mc_calloc(n, size);
}
static inline void rpc__free(void *p)
{
    ctx__mc_free(p);
}
static inline void *rpc__realloc(void *p, size_t n)
{
    return rpc__alloc_fails() ? NULL : realloc(p, n);
}
char *rpc__strdup(const char *s);
/* Blocks SIGPIPE in the calling thread.  Every I/O loop thread (server
 * loops, the admin endpoint, client channels) calls it first: a write to a
 * peer that vanished then fails with EPIPE instead of raising SIGPIPE,
 * which kills a process that does not ignore it -- libevent's bufferevents
 * write with writev(), not send(MSG_NOSIGNAL).  The signal stays pending on
 * that thread, never delivered; nothing process-wide changes. */
void rpc__block_sigpipe(void);
/* "scope.name" (just name when scope is ""; name NULL counts as ""), for
 * protobuf full names; the caller frees it.  NULL on out of memory. */
char *rpc__dotted_name(const char *scope, const char *name);
char *rpc__strndup(const char *s, size_t n);

/* Test hook: the n-th allocation rpc/server/client make from now on fails
 * (1: the next one), and every one after it succeeds again; 0 disables.
 * Returns how many of the countdown were left (0 once the failure has
 * happened).  Any thread. */
RPC_API long rpc__test_fail_alloc(long n);

#endif /* RPC_INTERNAL_H */
