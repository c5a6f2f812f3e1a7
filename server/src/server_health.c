/*
 * server_health.c -- grpc.health.v1.Health (doc/health-checking.md).
 *
 * A registry name -> status ("" is the whole server) under one mutex, and
 * the list of Watch streams.  Check and Watch are non-blocking handlers
 * (they run on the loop thread and never block).  A Watch call stays
 * pending: it is finished by an AfterFunc on its request context, so a
 * client cancel, a disconnect, a deadline or shutdown all end it the same
 * way, without a worker thread parked per watcher.
 *
 * Lock: h->mu guards the registry and the watcher list.  It is never held
 * while calling rpc_call_send/rpc_call_finish (which take call->mu and may
 * wake a loop): status changes collect the watchers to notify first.
 */
#include "server_internal.h"

#include "grpc/health/v1/health.pb-c.h"

#include <stdlib.h>
#include <string.h>

struct entry {
    struct entry *next;
    int status;
    char name[];
};

struct watcher {
    struct watcher *next;
    rpc_call_t *call;
    ctx_after_t *after;
    struct srv_health *h;
    int last;       /* last status sent */
    char name[];
};

struct srv_health {
    pthread_mutex_t mu;
    struct entry *entries;
    struct watcher *watchers;
};

static struct entry *find(struct srv_health *h, const char *name)
{
    for (struct entry *e = h->entries; e; e = e->next)
        if (strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

static int send_status(rpc_call_t *call, int status)
{
    Grpc__Health__V1__HealthCheckResponse rsp =
        GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    rsp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
    return rpc_call_send(call, &rsp.base);
}

static int check(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *req,
                 void *ud)
{
    struct srv_health *h = ud;
    const Grpc__Health__V1__HealthCheckRequest *r = (const void *)req;
    pthread_mutex_lock(&h->mu);
    struct entry *e = find(h, r->service ? r->service : "");
    int status = e ? e->status : -1;
    pthread_mutex_unlock(&h->mu);
    if (status < 0) {
        rpc_call_set_status_message(call, "unknown service");
        return RPC_STATUS_NOT_FOUND;
    }
    send_status(call, status);
    return RPC_STATUS_OK;
}

/* AfterFunc: the Watch call's context is done. */
static void watch_done(void *arg)
{
    struct watcher *w = arg;
    struct srv_health *h = w->h;
    pthread_mutex_lock(&h->mu);
    for (struct watcher **p = &h->watchers; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    pthread_mutex_unlock(&h->mu);
    int cause = ctx_cause(rpc_call_ctx(w->call));
    rpc_call_finish(w->call, rpc_cause_status(cause), rpc_cause_text(cause));
    ctx_after_stop(w->after);
    free(w);
}

static int watch(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *req,
                 void *ud)
{
    struct srv_health *h = ud;
    const Grpc__Health__V1__HealthCheckRequest *r = (const void *)req;
    const char *name = r->service ? r->service : "";
    struct watcher *w = rpc__calloc(1, sizeof *w + strlen(name) + 1);
    if (w == NULL)
        return RPC_STATUS_RESOURCE_EXHAUSTED;
    strcpy(w->name, name);
    w->call = call;
    w->h = h;
    pthread_mutex_lock(&h->mu);
    struct entry *e = find(h, name);
    w->last = e ? e->status
                : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
    w->next = h->watchers;
    h->watchers = w;
    int first = w->last;
    /* Registered under the lock so a concurrent status change either sees
     * this watcher or happened before `first` was read. */
    w->after = ctx_after_func(ctx, watch_done, w);
    if (w->after == NULL) {
        h->watchers = w->next;
        pthread_mutex_unlock(&h->mu);
        free(w);
        return RPC_STATUS_RESOURCE_EXHAUSTED;
    }
    pthread_mutex_unlock(&h->mu);
    send_status(call, first);
    return RPC_PENDING;
}

int rpc_server_add_health(rpc_server_t *s)
{
    if (s == NULL)
        return RPC_ERR_INVAL;
    if (s->state != SRV_NEW || s->health)
        return RPC_ERR_STATE;
    struct srv_health *h = rpc__calloc(1, sizeof *h);
    if (h == NULL)
        return RPC_ERR_NOMEM;
    pthread_mutex_init(&h->mu, NULL);
    int rc = rpc_server_add_method(s, &grpc__health__v1__health__descriptor,
                                   "Check", RPC_UNARY, RPC_NONBLOCKING, check, h);
    if (rc == 0)
        rc = rpc_server_add_method(s, &grpc__health__v1__health__descriptor,
                                   "Watch", RPC_SERVER_STREAMING,
                                   RPC_NONBLOCKING, watch, h);
    s->health = h; /* even on failure: freed with the server */
    if (rc == 0)
        rc = rpc_server_set_health(s, "", RPC_HEALTH_SERVING);
    return rc;
}

int rpc_server_set_health(rpc_server_t *s, const char *service,
                          rpc_health_status_t status)
{
    if (s == NULL || service == NULL || status > RPC_HEALTH_NOT_SERVING)
        return RPC_ERR_INVAL;
    struct srv_health *h = s->health;
    if (h == NULL)
        return RPC_ERR_STATE;
    pthread_mutex_lock(&h->mu);
    struct entry *e = find(h, service);
    if (e == NULL) {
        e = rpc__malloc(sizeof *e + strlen(service) + 1);
        if (e == NULL) {
            pthread_mutex_unlock(&h->mu);
            return RPC_ERR_NOMEM;
        }
        strcpy(e->name, service);
        e->next = h->entries;
        h->entries = e;
    }
    e->status = (int)status;
    /* Send under the lock: watchers cannot be freed meanwhile (watch_done
     * takes the lock to unlink), and rpc_call_send on a tiny message never
     * blocks for long.  Lock order: h->mu before call->mu, never reversed
     * (the server never calls into health with call->mu held). */
    for (struct watcher *w = h->watchers; w; w = w->next)
        if (strcmp(w->name, service) == 0 && w->last != (int)status) {
            w->last = (int)status;
            send_status(w->call, (int)status);
        }
    pthread_mutex_unlock(&h->mu);
    return 0;
}

void srv_health_all_not_serving(rpc_server_t *s)
{
    struct srv_health *h = s->health;
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->mu);
    size_t n = 0;
    for (struct entry *e = h->entries; e; e = e->next)
        n++;
    char **names = rpc__calloc(n ? n : 1, sizeof *names);
    n = 0;
    for (struct entry *e = h->entries; e && names; e = e->next)
        names[n++] = rpc__strdup(e->name);
    pthread_mutex_unlock(&h->mu);
    for (size_t i = 0; i < n; i++) {
        if (names[i])
            rpc_server_set_health(s, names[i], RPC_HEALTH_NOT_SERVING);
        free(names[i]);
    }
    free(names);
}

void srv_health_free(struct srv_health *h)
{
    if (h == NULL)
        return;
    while (h->entries) {
        struct entry *e = h->entries;
        h->entries = e->next;
        free(e);
    }
    pthread_mutex_destroy(&h->mu);
    free(h);
}
