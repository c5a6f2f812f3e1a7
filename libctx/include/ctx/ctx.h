/*
 * <ctx/ctx.h> -- Go's context package, in C.
 *
 * A context carries a cancellation signal, a deadline and request-scoped
 * values across API boundaries and between threads.  Contexts form a tree:
 * every context except the two roots has a parent, and cancelling a context
 * cancels every context derived from it (never its ancestors or siblings).
 *
 *   ctx_background()/ctx_todo()          immortal roots, never done
 *     +- ctx_with_cancel(parent)         done when cancelled or parent done
 *     +- ctx_with_deadline/timeout(...)  ... or when the deadline passes
 *     +- ctx_with_value(parent, k, v)    adds a value; done when parent done
 *     +- ctx_without_cancel(parent)      keeps values, never done
 *
 * Ownership.  Every constructor returns one reference that the caller owns
 * and must give back with ctx_release() exactly once (ctx_retain() takes
 * another).  A child holds a reference on its parent, so releasing a parent
 * while children are alive is safe: the parent lives on (its values stay
 * readable, cancelling the grandparent still reaches the children).
 * Releasing the last reference to a cancelable context unlinks it from its
 * parent and disarms its timer: unlike Go, forgetting to cancel leaks
 * nothing.  The roots are immortal: retain, release and cancel on them are
 * no-ops.
 *
 * Threads.  Every function here may be called from any thread, on the same
 * context, concurrently, unless its comment says otherwise.  No function
 * here is async-signal-safe: from a signal handler, write to a self-pipe or
 * use signalfd and cancel from the thread that reads it.  After fork() the
 * child may only call exec or _exit (the library's threads do not exist in
 * the child).  ctx_wait() is not a pthread cancellation point and holds no
 * lock while it blocks.
 *
 * Errors.  Constructors return NULL and set errno to EINVAL (NULL parent,
 * NULL key, bad handle) or ENOMEM; a failed constructor leaves nothing
 * behind (the parent is untouched).  ctx_err() returns 0, CTX_CANCELED or
 * CTX_DEADLINE_EXCEEDED; ctx_strerror() gives Go's texts for them.
 *
 * Causes (Go 1.20's WithCancelCause/Cause) are plain ints chosen by the
 * application; 0 means "no cause".  libctx never interprets them.  The first
 * cancellation along a context's ancestry fixes its cause; see ctx_cause().
 *
 * Clock.  Deadlines are absolute CLOCK_MONOTONIC times in nanoseconds
 * (ctx_now()), so wall-clock jumps neither fire nor delay them.  One shared
 * timer thread (a min-heap, started on the first deadline) serves every
 * deadline; no context owns a thread or, unless ctx_done_fd() is called,
 * a file descriptor.
 */
#ifndef CTX_CTX_H
#define CTX_CTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && !defined(CTX_STATIC_DEFINE)
#define CTX_API __attribute__((visibility("default")))
#else
#define CTX_API
#endif

/* Opaque context handle. */
typedef struct ctx ctx_t;
/* Opaque AfterFunc registration handle. */
typedef struct ctx_after ctx_after_t;

/* The two errors of a done context (Go's Canceled and DeadlineExceeded). */
#define CTX_CANCELED 1
#define CTX_DEADLINE_EXCEEDED 2

/* A duration that never expires: ctx_with_timeout(p, CTX_FOREVER) has a
 * deadline (INT64_MAX) that never fires. */
#define CTX_FOREVER INT64_MAX

/* Handy duration units, in nanoseconds. */
#define CTX_NS INT64_C(1)
#define CTX_US INT64_C(1000)
#define CTX_MS INT64_C(1000000)
#define CTX_SECOND INT64_C(1000000000)

/* ---- roots -------------------------------------------------------------- */

/* The root of every context tree: never done, no deadline, no values.
 * Immortal: retain, release and cancel on it do nothing. */
CTX_API ctx_t *ctx_background(void);
/* Like ctx_background(); use it where the right context is not known yet. */
CTX_API ctx_t *ctx_todo(void);

/* ---- derived contexts --------------------------------------------------- */

/* A child of `parent` that is done when ctx_cancel() is called on it or
 * when `parent` is done, whichever happens first.  A child of a parent that
 * is already done is born done, with the parent's error and cause.
 * Returns a new reference (release it), or NULL with errno EINVAL (NULL
 * parent) or ENOMEM.  O(1): no thread, no fd, one allocation. */
CTX_API ctx_t *ctx_with_cancel(ctx_t *parent);

/* A cancelable child that also becomes done with CTX_DEADLINE_EXCEEDED at
 * `deadline_ns` (CLOCK_MONOTONIC, see ctx_now()).  Its deadline is the
 * earlier of its parent's and `deadline_ns`; when the parent's is earlier
 * the child arms no timer.  A deadline at or before now gives a child born
 * done with CTX_DEADLINE_EXCEEDED.  Returns a new reference, or NULL with
 * errno EINVAL/ENOMEM. */
CTX_API ctx_t *ctx_with_deadline(ctx_t *parent, int64_t deadline_ns);

/* ctx_with_deadline(parent, ctx_now() + timeout_ns), saturating: a timeout
 * of INT64_MAX (CTX_FOREVER) or one that would overflow never fires, and a
 * timeout <= 0 gives a child born done with CTX_DEADLINE_EXCEEDED. */
CTX_API ctx_t *ctx_with_timeout(ctx_t *parent, int64_t timeout_ns);

/* As ctx_with_deadline/ctx_with_timeout, but when the deadline passes the
 * context's cause is `cause` instead of CTX_DEADLINE_EXCEEDED (Go's
 * WithDeadlineCause).  A ctx_cancel() before the deadline sets no cause. */
CTX_API ctx_t *ctx_with_deadline_cause(ctx_t *parent, int64_t deadline_ns,
                                       int cause);
CTX_API ctx_t *ctx_with_timeout_cause(ctx_t *parent, int64_t timeout_ns,
                                      int cause);

/* A child carrying `value` under `key`.  Keys compare by address: use the
 * address of a static object of your own (the C form of Go's unexported key
 * type).  `value` may be NULL (it then shadows an outer binding of `key`).
 * `destroy`, if not NULL, is called with `value` exactly once, when this
 * node is freed (not when it is cancelled), on whichever thread releases
 * the last reference, with no libctx lock held.  A value node is not
 * cancelable itself: it is done exactly when its parent is.  Returns a new
 * reference, or NULL with errno EINVAL (NULL parent or key) or ENOMEM; on
 * failure `destroy` is NOT called (the caller still owns `value`). */
CTX_API ctx_t *ctx_with_value(ctx_t *parent, const void *key, void *value,
                              void (*destroy)(void *value));

/* A child that keeps `parent`'s values but none of its cancellation or
 * deadline: never done, no deadline, ctx_err() and ctx_cause() always 0
 * (Go's WithoutCancel).  Use it for work that must outlive a request.
 * Returns a new reference, or NULL with errno EINVAL/ENOMEM. */
CTX_API ctx_t *ctx_without_cancel(ctx_t *parent);

/* ---- reference counting ----------------------------------------------- */

/* Takes another reference to `c` and returns `c`.  NULL-safe. */
CTX_API ctx_t *ctx_retain(ctx_t *c);

/* Gives back one reference.  Releasing the last one frees the node: it is
 * unlinked from its parent (which is never cancelled by this), its timer is
 * disarmed, its done fd closed (remove it from your poll set first), its
 * value destroyed, and its reference on its parent released.  Iterative: a
 * chain of a million nodes is freed without deep recursion.  NULL-safe. */
CTX_API void ctx_release(ctx_t *c);

/* ---- cancellation ----------------------------------------------------- */

/* Cancels `c` with CTX_CANCELED (Go's CancelFunc).  Every descendant is done
 * when this returns (synchronously, breadth-first, iteratively), `c` leaves
 * its parent's set of children, and its timer, if any, is disarmed.  When
 * `c` is already done, the call returns at once: if another thread's cancel
 * of `c` or of an ancestor is still running, that call finishes c's
 * descendants and they are done when it returns (Go would wait for it).
 * Idempotent; any thread; never waits for other threads' work and never runs
 * user code (AfterFunc callbacks run later on a library thread).  No effect
 * on contexts without a cancel function: roots, value nodes, WithoutCancel
 * nodes.  NULL-safe. */
CTX_API void ctx_cancel(ctx_t *c);

/* As ctx_cancel(), recording `cause` (0: none) as the cause of `c` and of
 * every descendant not already done (Go's CancelCauseFunc).  Works on every
 * cancelable context (WithCancel, WithDeadline, WithTimeout and their *Cause
 * forms).  A context already done keeps its cause. */
CTX_API void ctx_cancel_cause(ctx_t *c, int cause);

/* As ctx_cancel_cause(), but `c` and its descendants report
 * CTX_DEADLINE_EXCEEDED from ctx_err(), exactly as if `c`'s own deadline
 * timer had fired.  For a program that learns of a deadline outside libctx
 * before its timer fires (the RPC server does when a client's RST_STREAM
 * arrives at the client's deadline, which leads the server's by the
 * request's transit time).  Go has no equivalent.  Same rules as
 * ctx_cancel_cause(): idempotent, any thread, NULL-safe, a context already
 * done keeps its error and cause. */
CTX_API void ctx_expire_cause(ctx_t *c, int cause);

/* ---- observing -------------------------------------------------------- */

/* 0 while `c` is live; CTX_CANCELED or CTX_DEADLINE_EXCEEDED once it is
 * done, the same value on every later call.  Lock-free (one atomic load);
 * when it returns non-zero, the done fd is readable and waiters are woken
 * or being woken, and ctx_cause() returns the final cause. */
CTX_API int ctx_err(ctx_t *c);

/* 0 while `c` is live.  Once done: the cause given to the first
 * cancellation along its ancestry (ctx_cancel_cause(), or the *Cause
 * constructors' timers); when that cancellation gave none, ctx_err(c). */
CTX_API int ctx_cause(ctx_t *c);

/* True and the deadline (CLOCK_MONOTONIC ns) in *deadline_ns when `c` or
 * an ancestor up to the nearest WithoutCancel has one; false otherwise.
 * `deadline_ns` may be NULL. */
CTX_API bool ctx_deadline(ctx_t *c, int64_t *deadline_ns);

/* The value bound to `key` by the nearest ctx_with_value() ancestor of `c`
 * (or `c` itself), NULL when there is none.  Borrowed: valid while the
 * caller holds its reference on `c`.  Lock-free, O(depth), iterative. */
CTX_API void *ctx_value(ctx_t *c, const void *key);

/* A file descriptor that becomes readable, and stays readable, when `c` is
 * done: register it with poll/epoll/libevent for reading, never read from
 * it or close it.  The same fd on every call for `c` (a value node shares
 * its cancelable ancestor's fd).  Created on first request (O_CLOEXEC,
 * O_NONBLOCK), closed when the owning node is freed, so remove it from your
 * poll set before you release your last reference.  -1 for contexts that
 * can never be done (roots, WithoutCancel), or with errno EMFILE/ENFILE/
 * ENOMEM when no fd could be made. */
CTX_API int ctx_done_fd(ctx_t *c);

/* Blocks until `c` is done or `timeout_ns` has passed (negative: no
 * timeout; 0: just check).  Returns ctx_err(c): 0 on timeout.  A context
 * that can never be done simply sleeps for `timeout_ns` (forever when
 * negative).  Any number of threads may wait on one context; one cancel
 * wakes them all.  Uses no fd and no allocation (futex).  When `c` has a
 * deadline, the caller wakes at it and, if the timer service has not yet
 * expired the context, expires it itself (CTX_DEADLINE_EXCEEDED with the
 * deadline's cause, exactly as the timer would, cancelling the subtree of
 * the context that owns the deadline on the calling thread); this saves a
 * second thread wake-up. */
CTX_API int ctx_wait(ctx_t *c, int64_t timeout_ns);

/* ---- AfterFunc ---------------------------------------------------------- */

/* Arranges for fn(arg) to run once, on a library thread, after `c` is done
 * (at once, on that thread, when `c` is already done).  Never runs inside
 * ctx_cancel() and never under a libctx lock; fn may call any libctx
 * function, including releasing `c`.  The handle holds a reference on `c`.
 * Every handle must be passed to ctx_after_stop() exactly once, which
 * frees it.  For a context that can never be done, fn never runs.
 * Returns NULL with errno EINVAL/ENOMEM on failure.
 *
 * AfterFunc threads: a small pool that grows when every thread is busy
 * (blocked callbacks never starve others) and is joined by ctx_shutdown(). */
CTX_API ctx_after_t *ctx_after_func(ctx_t *c, void (*fn)(void *arg),
                                    void *arg);

/* Stops `a` from running fn and frees the handle.  Returns true if that kept
 * fn from running, false if fn has already been started (stop does not wait
 * for it to finish: synchronise with fn yourself).  NULL-safe (false). */
CTX_API bool ctx_after_stop(ctx_after_t *a);

/* ---- utilities -------------------------------------------------------- */

/* CLOCK_MONOTONIC now, in nanoseconds. */
CTX_API int64_t ctx_now(void);

/* Go's texts: "context canceled", "context deadline exceeded"; "" for 0;
 * "unknown context error" otherwise.  Static storage. */
CTX_API const char *ctx_strerror(int err);

/* True only for CTX_DEADLINE_EXCEEDED (Go's Timeout()). */
CTX_API bool ctx_is_timeout(int err);

/* Writes a Go-style description of `c` ("context.Background.WithCancel.
 * WithValue(0x..., 0x...)") into buf (at most len bytes, NUL-terminated when
 * len > 0).  Returns the full length, like snprintf.  Iterative. */
CTX_API size_t ctx_format(ctx_t *c, char *buf, size_t len);

/* ---- subtree enumeration (ctx_walk) ------------------------------------ */

/* One node as ctx_walk() saw it.  `node` and `parent` identify nodes
 * (compare them, print them); they are not references and must not be
 * dereferenced or passed to ctx_* after the callback returns. */
typedef struct ctx_node_info {
    const ctx_t *node;
    const ctx_t *parent; /* the node it is registered under; NULL: the start */
    int depth;           /* 0 for the start node */
    int err;             /* ctx_err() at the time of the visit */
    int cause;           /* ctx_cause() at the time of the visit */
    int64_t deadline;    /* effective deadline (CLOCK_MONOTONIC ns), or
                            INT64_MAX when none */
    bool own_deadline;   /* made by ctx_with_deadline/timeout itself */
    size_t children;     /* cancelable children linked under it */
    size_t afterfuncs;   /* AfterFunc registrations linked under it */
} ctx_node_info_t;

/* Called once per visited node, on the thread that called ctx_walk(), with
 * no libctx lock held: it may call any ctx_* function (even cancel the
 * node).  Return 0 to go on, nonzero to stop the walk. */
typedef int (*ctx_walk_fn)(const ctx_node_info_t *n, void *user_data);

/* Visits the cancelable contexts of the subtree under `c`, breadth-first,
 * at most `max_nodes` of them: `c`'s nearest cancelable ancestor-or-self
 * first (value and WithoutCancel nodes are not registered anywhere, so a
 * walk sees the cancelable nodes only), then every cancelable descendant
 * still linked (a cancelled node's children are unlinked by the cancel, so
 * a done subtree shows as its done root).  AfterFunc registrations are
 * counted on their node, not visited.
 *
 * Safe against concurrent cancels, creations and releases from any thread:
 * a node's lock (and each of its shard locks) is held only while that
 * children list is copied (with a reference taken on every child it
 * keeps), never across a callback and never two at once, so a cancel
 * waits at most for one list copy; the
 * references are dropped after the node's callback.  A node created or
 * cancelled during the walk may or may not be seen.  Work and memory are
 * bounded by max_nodes (one array of max_nodes pointers, allocated here).
 *
 * Returns the number of nodes visited; 0 when `c` has no cancelable
 * ancestor-or-self (a root or under WithoutCancel), when max_nodes is 0, or
 * with errno ENOMEM.  Any thread.  Never blocks beyond the list copies. */
CTX_API size_t ctx_walk(ctx_t *c, size_t max_nodes, ctx_walk_fn fn,
                        void *user_data);

/* Stops and joins the library's threads (the timer thread, AfterFunc
 * threads) once no timer is armed and no AfterFunc is pending; they restart
 * on demand.  For leak checkers and orderly exits: call it after releasing
 * every context.  Returns 0, or EBUSY when timers or callbacks are still
 * pending (nothing is stopped then).  Not to be called from an AfterFunc. */
CTX_API int ctx_shutdown(void);

/* ---- introspection (tests, debugging) --------------------------------- */

/* Number of cancelable children and AfterFunc registrations currently
 * linked under `c` (Go's len(children)); 0 for non-cancelable nodes. */
CTX_API size_t ctx_debug_children(ctx_t *c);

/* Number of timers armed in the shared timer service. */
CTX_API size_t ctx_debug_timers(void);

/* Number of library threads currently running (timer + AfterFunc). */
CTX_API int ctx_debug_threads(void);

#ifdef __cplusplus
}
#endif
#endif /* CTX_CTX_H */
