/*
 * kv_server [PORT] -- kv.v1.Store, the README's walkthrough service.
 * Get and Put are blocking handlers (worker threads).  Watch holds no
 * thread while it waits: a non-blocking handler parks the call on the
 * watcher list and returns RPC_PENDING, Put sends each change to the
 * parked calls, and an AfterFunc on the request context finishes the call
 * on cancel, deadline or shutdown.  One mutex guards entries and watchers.
 */
#define _POSIX_C_SOURCE 200809L /* sigwait */
#include "kv/v1/kv.rpc.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    struct entry *next;
    Kv__V1__Event ev; /* pointing into data */
    char data[];
};
struct watcher {
    struct watcher *next;
    struct store *st;
    rpc_call_t *call;
    ctx_after_t *end;
    char *key;
};
struct store {
    pthread_mutex_t mu;
    struct entry *entries;
    struct watcher *watchers;
};

static struct entry *find(struct store *st, const char *key)
{
    struct entry *e = st->entries;
    while (e && strcmp(e->ev.key, key) != 0)
        e = e->next;
    return e;
}

static int get(ctx_t *ctx, rpc_call_t *call, const Kv__V1__GetRequest *req,
               void *ud)
{
    struct store *st = ud;
    Kv__V1__GetResponse rsp = KV__V1__GET_RESPONSE__INIT;
    pthread_mutex_lock(&st->mu);
    struct entry *e = find(st, req->key);
    if (e)
        rsp.value = e->ev.value, rsp.version = e->ev.version,
        rsp.writer = e->ev.writer;
    int rc = e ? kv_v1_store_get_send(call, &rsp) : 0;
    pthread_mutex_unlock(&st->mu);
    return rc ? rpc_cause_status(ctx_cause(ctx))
              : e ? RPC_STATUS_OK : RPC_STATUS_NOT_FOUND;
}

static int put(ctx_t *ctx, rpc_call_t *call, const Kv__V1__PutRequest *req,
               void *ud)
{
    struct store *st = ud;
    const char *writer = rpc_metadata_get(ctx, "x-writer", NULL);
    if (ctx_err(ctx) != 0) /* the caller gave up: deadline or cancel */
        return rpc_cause_status(ctx_cause(ctx));
    writer = writer ? writer : "";
    size_t k = strlen(req->key) + 1, w = strlen(writer) + 1;
    struct entry *n = malloc(sizeof *n + k + w + req->value.len), *old;
    if (n == NULL)
        return RPC_STATUS_RESOURCE_EXHAUSTED;
    kv__v1__event__init(&n->ev); /* one block: the event, then its data */
    n->ev.key = memcpy(n->data, req->key, k);
    n->ev.writer = memcpy(n->data + k, writer, w);
    n->ev.value.data = memcpy(n->data + k + w, req->value.data, req->value.len);
    n->ev.value.len = req->value.len, n->next = NULL;
    pthread_mutex_lock(&st->mu); /* the new entry replaces the old one */
    struct entry **p = &st->entries;
    while (*p && strcmp((*p)->ev.key, req->key) != 0)
        p = &(*p)->next;
    if ((old = *p) != NULL)
        n->ev.version = old->ev.version, n->next = old->next;
    int64_t version = ++n->ev.version;
    *p = n;
    for (struct watcher *x = st->watchers; x; x = x->next)
        if (strcmp(x->key, req->key) == 0)
            kv_v1_store_watch_send(x->call, &n->ev); /* a gone one: ignored */
    pthread_mutex_unlock(&st->mu);
    free(old);
    Kv__V1__PutResponse rsp = KV__V1__PUT_RESPONSE__INIT;
    rsp.version = version;
    return kv_v1_store_put_send(call, &rsp) ? rpc_cause_status(ctx_cause(ctx))
                                            : RPC_STATUS_OK;
}

/* AfterFunc of a parked Watch's request context: unlink, finish, free. */
static void watch_end(void *arg)
{
    struct watcher *w = arg, **p = &w->st->watchers;
    pthread_mutex_lock(&w->st->mu);
    while (*p != w)
        p = &(*p)->next;
    *p = w->next;
    pthread_mutex_unlock(&w->st->mu);
    int cause = ctx_cause(rpc_call_ctx(w->call));
    rpc_call_finish(w->call, rpc_cause_status(cause), rpc_cause_text(cause));
    ctx_after_stop(w->end);
    free(w->key), free(w);
}

static int watch(ctx_t *ctx, rpc_call_t *call, const Kv__V1__WatchRequest *req,
                 void *ud)
{
    struct watcher *w = calloc(1, sizeof *w);
    if (w == NULL || (w->key = strdup(req->key)) == NULL) {
        free(w);
        return RPC_STATUS_RESOURCE_EXHAUSTED;
    }
    w->st = ud, w->call = call;
    pthread_mutex_lock(&w->st->mu);
    struct entry *e = find(w->st, req->key);
    if (e && e->ev.version > req->after_version)
        kv_v1_store_watch_send(call, &e->ev);
    w->next = w->st->watchers, w->st->watchers = w;
    w->end = ctx_after_func(ctx, watch_end, w); /* runs after we unlock */
    if (w->end == NULL)
        w->st->watchers = w->next;
    pthread_mutex_unlock(&w->st->mu);
    if (w->end != NULL)
        return RPC_PENDING;
    free(w->key), free(w);
    return RPC_STATUS_RESOURCE_EXHAUSTED;
}

int main(int argc, char **argv)
{
    static struct store st = {.mu = PTHREAD_MUTEX_INITIALIZER};
    static const kv_v1_store_handlers_t handlers = {
        .get = get, .put = put, .watch = watch,
        .style.watch = RPC_NONBLOCKING, .user_data = &st};
    sigset_t sigs;
    sigemptyset(&sigs), sigaddset(&sigs, SIGINT), sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* before any thread starts */
    rpc_server_t *s = rpc_server_new();
    int sig, rc = s ? kv_v1_store_register(s, &handlers) : RPC_ERR_NOMEM;
    if (rc == 0)
        rc = rpc_server_listen(s, "127.0.0.1", argc > 1 ? atoi(argv[1]) : 0);
    if (rc == 0 && (rc = rpc_server_start(s)) == 0)
        printf("listening on port %d\n", rpc_server_port(s)), fflush(stdout);
    if (rc == 0)
        sigwait(&sigs, &sig);
    rpc_server_free(s); /* shuts down: every Watch ends (watch_end) */
    for (struct entry *e = st.entries, *next; e; e = next)
        next = e->next, free(e);
    if (rc != 0)
        fprintf(stderr, "kv_server: %s\n", rpc_strerror(rc));
    return rc == 0 ? 0 : 1; /* (no ctx_shutdown(): a watch_end() may still
                                 be returning on an AfterFunc thread) */
}
