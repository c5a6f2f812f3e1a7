/*
 * client_options.c -- channel options: defaults, setters, deep copy.
 *
 * An option set is a plain value built by one thread; a channel keeps its
 * own deep copy, so nothing here is shared between threads.
 */
#include "client_internal.h"

#include <stdlib.h>
#include <string.h>

static const char *const default_keys[] = {"x-request-id", "traceparent"};

void rpc__client_options_defaults(rpc_client_options_t *o)
{
    memset(o, 0, sizeof *o);
    o->connect_timeout_ns = 20 * CTX_SECOND;
    o->backoff_initial_ns = 1 * CTX_SECOND;
    o->backoff_max_ns = 120 * CTX_SECOND;
    o->backoff_mult = 1.6;
    o->backoff_jitter = 0.2;
    o->max_recv = RPC__DEFAULT_MAX_RECV;
}

static int set_keys(rpc_client_options_t *o, const char *const *keys, size_t n)
{
    char **v = NULL;
    if (n > 0) {
        v = calloc(n, sizeof *v);
        if (v == NULL)
            return RPC_ERR_NOMEM;
        for (size_t i = 0; i < n; i++) {
            v[i] = strdup(keys[i]);
            if (v[i] == NULL) {
                for (size_t j = 0; j < i; j++)
                    free(v[j]);
                free(v);
                return RPC_ERR_NOMEM;
            }
        }
    }
    for (size_t i = 0; i < o->n_prop; i++)
        free(o->prop_keys[i]);
    free(o->prop_keys);
    o->prop_keys = v;
    o->n_prop = n;
    return 0;
}

rpc_client_options_t *rpc_client_options_new(void)
{
    rpc_client_options_t *o = malloc(sizeof *o);
    if (o == NULL)
        return NULL;
    rpc__client_options_defaults(o);
    if (set_keys(o, default_keys, 2) != 0) {
        free(o);
        return NULL;
    }
    return o;
}

void rpc__client_options_clear(rpc_client_options_t *o)
{
    for (size_t i = 0; i < o->n_prop; i++)
        free(o->prop_keys[i]);
    free(o->prop_keys);
    free(o->authority);
    o->prop_keys = NULL;
    o->n_prop = 0;
    o->authority = NULL;
}

void rpc_client_options_free(rpc_client_options_t *o)
{
    if (o == NULL)
        return;
    rpc__client_options_clear(o);
    free(o);
}

int rpc__client_options_copy(rpc_client_options_t *dst,
                             const rpc_client_options_t *src)
{
    if (src == NULL) {
        rpc__client_options_defaults(dst);
        return set_keys(dst, default_keys, 2);
    }
    *dst = *src;
    dst->prop_keys = NULL;
    dst->n_prop = 0;
    dst->authority = NULL;
    if (set_keys(dst, (const char *const *)src->prop_keys, src->n_prop) != 0)
        return RPC_ERR_NOMEM;
    if (src->authority != NULL &&
        (dst->authority = strdup(src->authority)) == NULL) {
        rpc__client_options_clear(dst);
        return RPC_ERR_NOMEM;
    }
    return 0;
}

int rpc_client_options_set_connect_timeout(rpc_client_options_t *o, int64_t ns)
{
    if (o == NULL || ns <= 0)
        return RPC_ERR_INVAL;
    o->connect_timeout_ns = ns;
    return 0;
}

int rpc_client_options_set_backoff(rpc_client_options_t *o, int64_t initial_ns,
                                   int64_t max_ns, double multiplier,
                                   double jitter)
{
    if (o == NULL || initial_ns <= 0 || max_ns < initial_ns ||
        !(multiplier >= 1.0) || !(jitter >= 0.0 && jitter <= 1.0))
        return RPC_ERR_INVAL;
    o->backoff_initial_ns = initial_ns;
    o->backoff_max_ns = max_ns;
    o->backoff_mult = multiplier;
    o->backoff_jitter = jitter;
    return 0;
}

int rpc_client_options_set_max_recv_message(rpc_client_options_t *o,
                                            size_t bytes)
{
    if (o == NULL || bytes == 0 || bytes > (size_t)1 << 31)
        return RPC_ERR_INVAL;
    o->max_recv = bytes;
    return 0;
}

int rpc_client_options_set_wait_for_ready(rpc_client_options_t *o, bool on)
{
    if (o == NULL)
        return RPC_ERR_INVAL;
    o->wait_for_ready = on;
    return 0;
}

int rpc_client_options_set_propagate_keys(rpc_client_options_t *o,
                                          const char *const *keys, size_t n)
{
    if (o == NULL || (n > 0 && keys == NULL))
        return RPC_ERR_INVAL;
    for (size_t i = 0; i < n; i++)
        if (keys[i] == NULL ||
            !rpc__metadata_key_valid(keys[i], strlen(keys[i])))
            return RPC_ERR_INVAL;
    return set_keys(o, keys, n);
}

int rpc_client_options_set_authority(rpc_client_options_t *o,
                                     const char *authority)
{
    if (o == NULL || authority == NULL || authority[0] == '\0')
        return RPC_ERR_INVAL;
    char *a = strdup(authority);
    if (a == NULL)
        return RPC_ERR_NOMEM;
    free(o->authority);
    o->authority = a;
    return 0;
}
