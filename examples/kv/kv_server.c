/*
 * kv_server -- kv.v1.Store, the service of the README's walkthrough.
 *
 *   kv_server [PORT]      (0 or none: any free port, printed on stdout)
 *
 * Get and Put are blocking handlers on the server's workers.  Watch is a
 * non-blocking handler that holds no thread while it waits: it sends the
 * current value, parks the call on the key's watcher list and returns
 * RPC_PENDING; Put sends each change to the watchers; an AfterFunc on the
 * request context ends the call when the client cancels, its deadline
 * passes or the server shuts down.  One mutex guards the store and the
 * watcher list (a watcher that reads nothing for 1 MiB of events slows
 * Put down: a real store would queue per watcher).  SIGINT/SIGTERM stop.
 */
#define _POSIX_C_SOURCE 200809L /* sigwait, pthread_sigmask */
#include "kv/v1/kv.rpc.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    struct entry *next;
    Kv__V1__Event ev; /* key, value, version, writer: all owned */
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
    if (e) {
        rsp.value = e->ev.value, rsp.version = e->ev.version;
        rsp.writer = e->ev.writer;
    }
    int rc = e ? kv_v1_store_get_send(call, &rsp) : 0;
    pthread_mutex_unlock(&st->mu);
    if (rc != 0)
        return rpc_cause_status(ctx_cause(ctx));
    return e ? RPC_STATUS_OK : RPC_STATUS_NOT_FOUND;
}

static int put(ctx_t *ctx, rpc_call_t *call, const Kv__V1__PutRequest *req,
               void *ud)
{
    struct store *st = ud;
    const char *writer = rpc_metadata_get(ctx, "x-writer", NULL);
    if (ctx_err(ctx) != 0) /* the caller gave up (deadline, cancel) */
        return rpc_cause_status(ctx_cause(ctx));
    pthread_mutex_lock(&st->mu);
    struct entry *e = find(st, req->key);
    if (e == NULL && (e = calloc(1, sizeof *e)) != NULL) {
        kv__v1__event__init(&e->ev); /* its strings are static "": */
        e->ev.key = strdup(req->key), e->ev.writer = NULL;
        e->next = st->entries, st->entries = e;
    }
    void *value = malloc(req->value.len + 1);
    char *w = strdup(writer ? writer : "");
    if (e == NULL || e->ev.key == NULL || value == NULL || w == NULL) {
        pthread_mutex_unlock(&st->mu);
        free(value), free(w);
        return RPC_STATUS_RESOURCE_EXHAUSTED;
    }
    free(e->ev.value.data), free(e->ev.writer);
    e->ev.value.data = memcpy(value, req->value.data, req->value.len);
    e->ev.value.len = req->value.len, e->ev.writer = w, e->ev.version++;
    for (struct watcher *x = st->watchers; x; x = x->next)
        if (strcmp(x->key, req->key) == 0)
            kv_v1_store_watch_send(x->call, &e->ev); /* a gone one: ignored */
    Kv__V1__PutResponse rsp = KV__V1__PUT_RESPONSE__INIT;
    rsp.version = e->ev.version;
    pthread_mutex_unlock(&st->mu);
    return kv_v1_store_put_send(call, &rsp) == 0
               ? RPC_STATUS_OK : rpc_cause_status(ctx_cause(ctx));
}

/* AfterFunc of a watcher's request context: unlink, answer, free. */
static void watch_end(void *arg)
{
    struct watcher *w = arg;
    pthread_mutex_lock(&w->st->mu);
    struct watcher **p = &w->st->watchers;
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
    w->end = ctx_after_func(ctx, watch_end, w); /* runs once we unlock */
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
    int rc = s ? kv_v1_store_register(s, &handlers) : RPC_ERR_NOMEM;
    if (rc == 0)
        rc = rpc_server_listen(s, "127.0.0.1", argc > 1 ? atoi(argv[1]) : 0);
    if (rc == 0)
        rc = rpc_server_start(s);
    if (rc != 0) {
        fprintf(stderr, "kv_server: %s\n", rpc_strerror(rc));
        return 1;
    }
    printf("listening on port %d\n", rpc_server_port(s));
    fflush(stdout);
    int sig;
    sigwait(&sigs, &sig);
    rpc_server_shutdown(s, CTX_SECOND); /* ends every Watch (watch_end) */
    rpc_server_free(s);
    for (struct entry *e = st.entries, *next; e; e = next) {
        next = e->next;
        free(e->ev.key), free(e->ev.value.data), free(e->ev.writer), free(e);
    }
    return ctx_shutdown() == 0 ? 0 : 1;
}
