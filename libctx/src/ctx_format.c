/*
 * ctx_format.c -- Go-style rendering of a context chain.
 *
 * Go renders a context as its ancestry, root first:
 * "context.Background.WithCancel.WithValue(k, v)".  A chain may be a million
 * nodes deep, so this walks twice, leaf to root, without recursion: once to
 * add up the length of every segment, once to write each segment at its
 * final offset (pos = total - length of everything below it), clipped to
 * the caller's buffer.  Both walks render with the same `now`, so deadline
 * segments have the same length in both.
 */
#include "ctx_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int segment(const struct ctx *n, int64_t now, char *out, size_t cap)
{
    switch (n->kind) {
    case CTX_KIND_ROOT:
        return snprintf(out, cap, "%s", n == ctx_background() ? "context.Background"
                                                              : "context.TODO");
    case CTX_KIND_CANCEL:
        if (n->flags & CTX__F_OWNDL) {
            int64_t left = n->u.c.deadline - now;
            return snprintf(out, cap, ".WithDeadline(%" PRId64 " [%" PRId64 ".%06" PRId64 "ms])",
                            n->u.c.deadline, left / CTX_MS,
                            (left < 0 ? -left : left) % CTX_MS);
        }
        return snprintf(out, cap, ".WithCancel");
    case CTX_KIND_VALUE:
        return snprintf(out, cap, ".WithValue(%p, %p)", n->u.v.key, n->u.v.value);
    case CTX_KIND_WITHOUT:
        return snprintf(out, cap, ".WithoutCancel");
    default:
        return snprintf(out, cap, ".AfterFunc");
    }
}

size_t ctx_format(ctx_t *c, char *buf, size_t len)
{
    char seg[128];
    int64_t now = ctx_now();
    size_t total = 0;
    for (const struct ctx *n = c; n; n = n->parent)
        total += (size_t)segment(n, now, seg, sizeof seg);
    if (len == 0)
        return total;
    size_t limit = len - 1; /* room for the NUL */
    size_t pos = total;
    for (const struct ctx *n = c; n; n = n->parent) {
        size_t sl = (size_t)segment(n, now, seg, sizeof seg);
        pos -= sl;
        if (pos < limit) {
            size_t k = sl < limit - pos ? sl : limit - pos;
            memcpy(buf + pos, seg, k);
        }
    }
    buf[total < limit ? total : limit] = '\0';
    return total;
}
