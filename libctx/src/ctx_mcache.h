/*
 * ctx_mcache.h -- per-thread caches of small freed blocks, for the
 * libraries' own hot objects (context nodes; rpc calls, metadata and
 * buffers; nghttp2's streams and frames).  Internal: exported from libctx
 * for rpc/, server/ and client/ only, not part of the public API.
 *
 * Ownership.  Every block is an ordinary malloc() block: it may be
 * released with free() or ctx__mc_free(), resized with realloc(), and
 * ctx__mc_free() accepts any malloc() block.  ctx__mc_free() keeps blocks
 * of up to 1016 usable bytes on the calling thread's cache (at most
 * 256 KiB per thread; the rest goes to free()); ctx__mc_alloc() takes one
 * from there when it has a block of the size class.
 *
 * Thread-safety.  Each thread has its own cache; the functions are safe
 * from any thread, and a block may be freed on another thread than the one
 * that allocated it.  A thread's cache is emptied when the thread exits.
 * Under AddressSanitizer they are plain malloc/calloc/free.
 */
#ifndef CTX_MCACHE_H
#define CTX_MCACHE_H

#include <ctx/ctx.h> /* CTX_API */
#include <stddef.h>

/* malloc(n); NULL when out of memory. */
CTX_API void *ctx__mc_alloc(size_t n);
/* calloc(n, size); NULL on overflow or when out of memory. */
CTX_API void *ctx__mc_calloc(size_t n, size_t size);
/* free(p), keeping p on this thread's cache when it fits. */
CTX_API void ctx__mc_free(void *p);
/* Bytes this thread's cache holds, and the shared depot (tests). */
CTX_API size_t ctx__mc_cached_bytes(void);
CTX_API size_t ctx__mc_depot_bytes(void);
/* Bench hook: on_alloc(p, n) for every block handed out from a cache and
 * on_free(p) for every block a cache takes back (the others go through
 * malloc/free, which a bench counts by interposing them).  NULL: none.
 * Any thread; hooks run on the allocating/freeing thread. */
CTX_API void ctx__mc_set_hooks(void (*on_alloc)(void *p, size_t n),
                               void (*on_free)(void *p));

#endif
