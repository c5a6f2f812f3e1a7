/*
 * ctx_format.c -- Go-style rendering of a context chain, and ctx_walk(),
 * the bounded enumeration of a subtree (for /ctxz-style live views).
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

#include <errno.h>
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

/*
 * ctx_walk: breadth-first over an array that is both the queue and the
 * set of references held:
 *
 *   q[0] = retain(start); head = 0; tail = 1
 *   while head < tail:
 *       n = q[head++]
 *       for n's main list (under n's lock), then each of n's shard lists
 *       (under that shard's lock), one lock at a time:
 *         for each child k linked there:
 *           AFTER: count it;  CANCEL: count it, and if tail < max and
 *           tryref(k) succeeds (a dying child has refs 0 and is waiting
 *           for that list's lock to unlink itself: skip it), q[tail++] = k
 *       fn(info of n)            -- no lock held
 *       release n                -- may free it; it unlinks itself then
 *
 * One lock at a time, held only for the copy: lock order is trivially
 * respected and a concurrent cancel of n waits for the copy only.  A child
 * kept in q is alive (our reference) though it may be unlinked and
 * cancelled before its turn; it is then shown done, with no children.
 */
struct walk_item {
    struct ctx *n;
    const struct ctx *parent;
    int depth;
};

/* Counts one children list (its lock held) into info and queues the
 * CANCEL children it can take a reference on while q has room. */
static void take_list(struct ctx *k, struct ctx *n, int depth,
                      ctx_node_info_t *info, struct walk_item *q, size_t *tail,
                      size_t max_nodes)
{
    for (; k; k = k->u.c.next) {
        if (k->kind == CTX_KIND_AFTER) {
            info->afterfuncs++;
            continue;
        }
        info->children++;
        if (*tail < max_nodes && ctx__tryref(k))
            q[(*tail)++] = (struct walk_item){k, n, depth + 1};
    }
}

size_t ctx_walk(ctx_t *c, size_t max_nodes, ctx_walk_fn fn, void *user_data)
{
    if (c == NULL || max_nodes == 0)
        return 0;
    struct ctx *start = c->canc;
    if (start == NULL || start->kind != CTX_KIND_CANCEL)
        return 0;
    struct walk_item *q = ctx__malloc(max_nodes * sizeof *q);
    if (q == NULL) {
        errno = ENOMEM;
        return 0;
    }
    ctx_retain(start);
    q[0] = (struct walk_item){start, NULL, 0};
    size_t head = 0, tail = 1, visited = 0;
    int stop = 0;
    while (head < tail) {
        struct walk_item it = q[head++];
        struct ctx *n = it.n;
        if (stop) {
            ctx_release(n);
            continue;
        }
        ctx_node_info_t info = {
            .node = n,
            .parent = it.parent,
            .depth = it.depth,
            .deadline = n->u.c.deadline,
            .own_deadline = (n->flags & CTX__F_OWNDL) != 0,
        };
        /* The main list under the node's lock, then each shard's list
         * under that shard's lock (the shards live as long as the node,
         * which our reference keeps): one lock at a time. */
        ctx__lock(&n->u.c.lock);
        take_list(ctx__main_head(n), n, it.depth, &info, q, &tail, max_nodes);
        struct ctx__shards *sh = ctx__shards_of(n);
        ctx__unlock(&n->u.c.lock);
        for (unsigned i = 0; sh && i < CTX__NSHARDS; i++) {
            ctx__lock(&sh->s[i].lock);
            take_list(sh->s[i].head, n, it.depth, &info, q, &tail, max_nodes);
            ctx__unlock(&sh->s[i].lock);
        }
        info.err = ctx_err(n);
        info.cause = info.err ? ctx_cause(n) : 0;
        visited++;
        if (fn != NULL && fn(&info, user_data) != 0)
            stop = 1;
        ctx_release(n);
    }
    free(q);
    return visited;
}
