/*
 * <ctx/waitgroup.h> -- Go's sync.WaitGroup, with Go's misuse rules enforced.
 *
 * The standard pattern, "Add first, then Done concurrently, then Wait"
 * (coordinateWithWaitGroup in examples/coordinate.c runs it in batches):
 *
 *   ctx_waitgroup_t *wg = ctx_waitgroup_create();
 *   ctx_waitgroup_add(wg, n);                 before starting the n tasks
 *   for (i = 0; i < n; i++) start_task(..., wg);   each ends with done(wg)
 *   ctx_waitgroup_wait(wg);
 *   ctx_waitgroup_destroy(wg);
 *
 * A wait group may be reused, but each counting cycle must be complete: the
 * next cycle's first Add may only happen after every Wait of the current
 * cycle has returned.  Otherwise a Wait that was released by the counter
 * reaching zero could see the counter of the next cycle, and return or not
 * depending on timing.  Go panics on such misuse; this implementation
 * aborts the process with a message on stderr (a bug, not an error to
 * handle):
 *
 *   "ctx_waitgroup: negative counter"
 *       Add/Done brought the counter below zero (more Done than Add).
 *   "ctx_waitgroup: misuse: Add called concurrently with Wait: WaitGroup
 *    is reused before previous Wait has returned"
 *       Add raised the counter from zero while a Wait was still inside
 *       ctx_waitgroup_wait().  Go reports this as one of two panics
 *       depending on which side sees the race first ("Add called
 *       concurrently with Wait" in Add, "WaitGroup is reused before previous
 *       Wait has returned" in Wait), because its WaitGroup is lock-free.
 *       Here Add and Wait serialise on a mutex, so the race is one
 *       deterministic check in Add and the message carries both texts.
 *   "ctx_waitgroup: destroyed while a Wait is in progress"
 *
 * Unlike the other blocking calls of libctx, ctx_waitgroup_wait() takes no
 * context (it is Go's WaitGroup).  For a wait that a context can cut short,
 * use a task group (<ctx/group.h>), or cancel the tasks' context so they call
 * Done sooner.
 *
 * Threads.  Every function may be called from any thread, concurrently,
 * except ctx_waitgroup_destroy().  The usual memory guarantee holds: all that
 * a thread did before Done happens before the return of the Wait it
 * releases.
 */
#ifndef CTX_WAITGROUP_H
#define CTX_WAITGROUP_H

#include <ctx/ctx.h>

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque wait group handle. */
typedef struct ctx_waitgroup ctx_waitgroup_t;

/* A new wait group with counter 0.  The caller owns it and must give it to
 * ctx_waitgroup_destroy().  Returns NULL with errno ENOMEM.  Any thread. */
CTX_API ctx_waitgroup_t *ctx_waitgroup_create(void);

/* Frees `wg`.  The caller guarantees that no other call on it is in
 * progress or will follow (a counter above zero is allowed but means some
 * task still holds a pointer that it must not use).  Aborts if a Wait is in
 * progress.  NULL-safe. */
CTX_API void ctx_waitgroup_destroy(ctx_waitgroup_t *wg);

/* Adds `delta` (may be negative) to the counter.  When the counter reaches
 * zero, every thread blocked in ctx_waitgroup_wait() is released.  Never
 * blocks (one short internal lock).  Aborts on misuse (see above): counter
 * below zero, or raised from zero while a Wait of the previous cycle is
 * still in progress.  Call Add with a positive delta before starting the
 * task (not inside it), so a Wait cannot run before the Add.  NULL aborts. */
CTX_API void ctx_waitgroup_add(ctx_waitgroup_t *wg, int64_t delta);

/* ctx_waitgroup_add(wg, -1). */
CTX_API void ctx_waitgroup_done(ctx_waitgroup_t *wg);

/* Blocks until the counter is zero; returns at once when it already is.
 * Any number of threads may wait.  NULL aborts. */
CTX_API void ctx_waitgroup_wait(ctx_waitgroup_t *wg);

/* The counter's current value; a snapshot (tests, debugging). */
CTX_API int64_t ctx_waitgroup_count(ctx_waitgroup_t *wg);

/* Threads currently inside ctx_waitgroup_wait(); a snapshot (tests). */
CTX_API int ctx_waitgroup_waiters(ctx_waitgroup_t *wg);

#ifdef __cplusplus
}
#endif
#endif /* CTX_WAITGROUP_H */
