/*
 * client_options.c -- channel options: defaults, setters, deep copy.
 *
 * An option set is a plain value built by one thread; a channel keeps its
 * own deep copy, so nothing here is shared between threads.
 */
#include "client_internal.h"
#include "rpc_tls.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
        v = rpc__calloc(n, sizeof *v);
        if (v == NULL)
            return RPC_ERR_NOMEM;
        for (size_t i = 0; i < n; i++) {
            v[i] = rpc__strdup(keys[i]);
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
    rpc_client_options_t *o = rpc__malloc(sizeof *o);
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
    free(o->tls_ca);
    free(o->tls_server_name);
    free(o->tls_cert);
    free(o->tls_key);
    free(o->health_service);
    o->prop_keys = NULL;
    o->n_prop = 0;
    o->authority = NULL;
    o->tls_ca = o->tls_server_name = o->tls_cert = o->tls_key = NULL;
    o->health_service = NULL;
}

void rpc_client_options_free(rpc_client_options_t *o)
{
    if (o == NULL)
        return;
    rpc__client_options_clear(o);
    free(o);
}

/* *dst = a copy of src (NULL stays NULL).  0 or RPC_ERR_NOMEM. */
static int dup_opt(char **dst, const char *src)
{
    *dst = NULL;
    if (src != NULL && (*dst = rpc__strdup(src)) == NULL)
        return RPC_ERR_NOMEM;
    return 0;
}

/* Replaces *slot with a copy of s (NULL clears). */
static int set_str(char **slot, const char *s)
{
    char *c;
    if (dup_opt(&c, s) != 0)
        return RPC_ERR_NOMEM;
    free(*slot);
    *slot = c;
    return 0;
}

static bool readable(const char *path)
{
    return access(path, R_OK) == 0;
}

/* True when OpenSSL can use the files (a throwaway context built from
 * them), so a bad file fails its setter rather than the channel. */
static bool usable(const char *ca, const char *cert, const char *key)
{
    char err[256];
    SSL_CTX *ctx = rpc__tls_client_ctx(ca, ca == NULL, cert, key, err,
                                       sizeof err);
    SSL_CTX_free(ctx);
    return ctx != NULL;
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
    dst->tls_ca = dst->tls_server_name = dst->tls_cert = dst->tls_key = NULL;
    dst->health_service = NULL;
    if (set_keys(dst, (const char *const *)src->prop_keys, src->n_prop) != 0)
        return RPC_ERR_NOMEM;
    if (dup_opt(&dst->authority, src->authority) != 0 ||
        dup_opt(&dst->tls_ca, src->tls_ca) != 0 ||
        dup_opt(&dst->tls_server_name, src->tls_server_name) != 0 ||
        dup_opt(&dst->tls_cert, src->tls_cert) != 0 ||
        dup_opt(&dst->tls_key, src->tls_key) != 0 ||
        dup_opt(&dst->health_service, src->health_service) != 0) {
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
    char *a = rpc__strdup(authority);
    if (a == NULL)
        return RPC_ERR_NOMEM;
    free(o->authority);
    o->authority = a;
    return 0;
}

/* ---- TLS ----------------------------------------------------------------- */

int rpc_client_options_set_tls(rpc_client_options_t *o, bool on)
{
    if (o == NULL)
        return RPC_ERR_INVAL;
    o->tls = on;
    return 0;
}

int rpc_client_options_set_tls_ca_file(rpc_client_options_t *o,
                                       const char *ca_file)
{
    if (o == NULL ||
        (ca_file != NULL && (!readable(ca_file) || !usable(ca_file, NULL, NULL))))
        return RPC_ERR_INVAL;
    int rc = set_str(&o->tls_ca, ca_file);
    if (rc == 0)
        o->tls = true;
    return rc;
}

int rpc_client_options_set_tls_server_name(rpc_client_options_t *o,
                                           const char *name)
{
    if (o == NULL || (name != NULL && name[0] == '\0'))
        return RPC_ERR_INVAL;
    int rc = set_str(&o->tls_server_name, name);
    if (rc == 0)
        o->tls = true;
    return rc;
}

int rpc_client_options_set_tls_client_cert(rpc_client_options_t *o,
                                           const char *cert_file,
                                           const char *key_file)
{
    if (o == NULL || (cert_file == NULL) != (key_file == NULL) ||
        (cert_file != NULL && (!readable(cert_file) || !readable(key_file) ||
                               !usable(NULL, cert_file, key_file))))
        return RPC_ERR_INVAL;
    char *c = NULL, *k = NULL;
    if (dup_opt(&c, cert_file) != 0 || dup_opt(&k, key_file) != 0) {
        free(c);
        return RPC_ERR_NOMEM;
    }
    free(o->tls_cert);
    free(o->tls_key);
    o->tls_cert = c;
    o->tls_key = k;
    o->tls = true;
    return 0;
}

int rpc_client_options_set_tls_insecure(rpc_client_options_t *o, bool on)
{
    if (o == NULL)
        return RPC_ERR_INVAL;
    o->tls_insecure = on;
    if (on)
        o->tls = true;
    return 0;
}

/* ---- load balancing -------------------------------------------------------- */

int rpc_client_options_set_lb_policy(rpc_client_options_t *o,
                                     const char *policy)
{
    if (o == NULL || policy == NULL)
        return RPC_ERR_INVAL;
    if (strcmp(policy, "pick_first") == 0)
        o->lb_policy = RPC__LB_PICK_FIRST;
    else if (strcmp(policy, "round_robin") == 0)
        o->lb_policy = RPC__LB_ROUND_ROBIN;
    else
        return RPC_ERR_UNSUPPORTED;
    return 0;
}

int rpc_client_options_set_health_check(rpc_client_options_t *o, bool on,
                                        const char *service)
{
    if (o == NULL)
        return RPC_ERR_INVAL;
    int rc = set_str(&o->health_service, on ? service : NULL);
    if (rc == 0)
        o->health_check = on;
    return rc;
}
