/*
 * metadata_bench -- why a request carries its metadata in ONE context
 * value node (rpc/src/rpc_metadata.c) rather than one node per entry.
 *
 * For a request with N metadata entries, measures (ns per request, best
 * of 5 runs of 200,000 requests):
 *   build:  making the value node(s) under a request context and freeing
 *           them again;
 *   lookup: rpc_metadata_get()-style lookup of the LAST entry from a
 *           context 4 levels below the request's (a handler's sub-task).
 * "one node": an rpc_metadata_t of N entries in one node (what the server
 * does).  "per entry": N ctx_with_value nodes, each keyed by an interned
 * key address, each holding a copy of its key and value; a lookup by name
 * first maps the name to its interned key (linear scan of the N names).
 *
 *   metadata_bench [N...]      default N = 1 4 16
 */
#include "rpc_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQS 200000
#define REPS 5

static char keys[64][24];
static char interned[64]; /* per-entry design: one key address per name */

struct pair {
    char *value; /* points into data */
    char data[];
};

/* A per-entry node must copy its value out of nghttp2's buffer, as the
 * one-node set does. */
static struct pair *pair_new(const char *key, const char *value)
{
    size_t kl = strlen(key) + 1, vl = strlen(value) + 1;
    struct pair *p = malloc(sizeof *p + kl + vl);
    memcpy(p->data, key, kl);
    p->value = memcpy(p->data + kl, value, vl);
    return p;
}

/* Name -> interned key address: what a per-entry design must do for
 * every lookup by name (a linear scan: fine for the small tables here). */
static const void *intern(const char *name, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(keys[i], name) == 0)
            return &interned[i];
    return NULL;
}

static int64_t best(int64_t a, int64_t b) { return a < b ? a : b; }

static void run(int n)
{
    ctx_t *req = ctx_with_cancel(ctx_background());
    int64_t build1 = INT64_MAX, buildn = INT64_MAX, look1 = INT64_MAX,
            lookn = INT64_MAX;
    volatile const void *sink;
    for (int rep = 0; rep < REPS; rep++) {
        /* one node */
        int64_t t = ctx_now();
        for (int r = 0; r < REQS; r++) {
            rpc_metadata_t *md = rpc_metadata_new();
            for (int i = 0; i < n; i++)
                rpc_metadata_add(md, keys[i], "value-0123456789", 16);
            ctx_t *v = rpc__ctx_with_request_info(req, md, "/pkg.Svc/Method",
                                                  "ipv4:127.0.0.1:1");
            ctx_release(v);
        }
        build1 = best(build1, ctx_now() - t);
        /* per entry */
        t = ctx_now();
        for (int r = 0; r < REQS; r++) {
            ctx_t *c = ctx_retain(req);
            for (int i = 0; i < n; i++) {
                struct pair *p = pair_new(keys[i], "value-0123456789");
                ctx_t *v = ctx_with_value(c, &interned[i], p, free);
                ctx_release(c);
                c = v;
            }
            ctx_release(c);
        }
        buildn = best(buildn, ctx_now() - t);
    }
    /* lookups from 4 levels below */
    rpc_metadata_t *md = rpc_metadata_new();
    for (int i = 0; i < n; i++)
        rpc_metadata_add(md, keys[i], "value-0123456789", 16);
    ctx_t *one = rpc__ctx_with_request_info(req, md, "/p.S/M", "peer");
    ctx_t *per = ctx_retain(req);
    for (int i = 0; i < n; i++) {
        struct pair *p = pair_new(keys[i], "value-0123456789");
        ctx_t *v = ctx_with_value(per, &interned[i], p, free);
        ctx_release(per);
        per = v;
    }
    ctx_t *d1 = ctx_retain(one), *dn = ctx_retain(per);
    for (int i = 0; i < 4; i++) {
        ctx_t *x = ctx_with_cancel(d1), *y = ctx_with_cancel(dn);
        ctx_release(d1);
        ctx_release(dn);
        d1 = x;
        dn = y;
    }
    for (int rep = 0; rep < REPS; rep++) {
        int64_t t = ctx_now();
        for (int r = 0; r < REQS; r++)
            sink = rpc_metadata_get(d1, keys[n - 1], NULL);
        look1 = best(look1, ctx_now() - t);
        t = ctx_now();
        for (int r = 0; r < REQS; r++)
            sink = ((struct pair *)ctx_value(dn, intern(keys[n - 1], n)))->value;
        lookn = best(lookn, ctx_now() - t);
    }
    (void)sink;
    printf("N=%-3d build: one node %6.0f ns, per entry %6.0f ns | "
           "lookup from depth 4: one node %5.1f ns, per entry %5.1f ns\n",
           n, (double)build1 / REQS, (double)buildn / REQS,
           (double)look1 / REQS, (double)lookn / REQS);
    ctx_release(d1);
    ctx_release(dn);
    ctx_release(one);
    ctx_release(per);
    ctx_release(req);
}

int main(int argc, char **argv)
{
    for (int i = 0; i < 64; i++)
        snprintf(keys[i], sizeof keys[i], "x-key-%d", i);
    if (argc < 2) {
        run(1);
        run(4);
        run(16);
    }
    for (int i = 1; i < argc; i++) {
        int n = atoi(argv[i]);
        if (n >= 1 && n <= 64)
            run(n);
    }
    return 0;
}
