/*
 * server_tls.c -- the server's transport options: TLS (the certificate,
 * its reload, client certificates and the peer identity they carry) and
 * Unix-domain listeners.  Everything else in the server sees only a
 * bufferevent (srv_transport_stream) and listening fds.
 *
 * TLS.  The configuration is one SSL_CTX, built from the files by
 * rpc_server_set_tls() and rebuilt by rpc_server_reload_tls(); each
 * accepted connection takes an SSL from the current one under tp->mu
 * (OpenSSL counts references, so a reload never disturbs a connection).
 *
 * Peer identity.  A TLS connection's context gets one value node holding
 * a struct peer_id (owned by the node).  The SSL's info callback fills it
 * when the handshake completes, on the loop thread, before any HTTP/2
 * byte is read -- so before any request context exists; handler threads
 * read it later through rpc_server_peer_identity(), ordered by the
 * dispatch of the call.  The node's destroy function frees it after the
 * SSL is gone (the connection frees its stream before its context).
 *
 * Threads: rpc_server_set_tls/listen_unix are setup calls (one thread,
 * before start); rpc_server_reload_tls and srv_transport_stream may run on
 * any thread, and meet only under tp->mu, which guards `ctx`.
 */
#include "server_internal.h"

#include "rpc_tls.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_UNIX 8

struct srv_transport {
    pthread_mutex_t mu;
    SSL_CTX *ctx;             /* [mu] current TLS context, NULL: plain */
    char *cert, *key, *ca;    /* setup-time: the files, for reload */
    int client_auth;
    char *unix_paths[MAX_UNIX]; /* setup-time: socket files to remove */
    int nunix;
    /* Failed-handshake log lines: at most LOG_BURST per second. */
    atomic_llong log_second;
    atomic_int log_count;
};

#define LOG_BURST 10

struct peer_id {
    int set;
    char id[256];
    char peer[64];            /* for the log of a failed handshake */
    struct srv_transport *tp;
};

static const char peer_id_key = 0;

static struct srv_transport *tp_of(rpc_server_t *s)
{
    if (s->transport == NULL) {
        struct srv_transport *tp = rpc__calloc(1, sizeof *tp);
        if (tp == NULL)
            return NULL;
        pthread_mutex_init(&tp->mu, NULL);
        atomic_init(&tp->log_second, 0);
        atomic_init(&tp->log_count, 0);
        s->transport = tp;
    }
    return s->transport;
}

static int started(rpc_server_t *s)
{
    pthread_mutex_lock(&s->mu);
    int st = s->state != SRV_NEW;
    pthread_mutex_unlock(&s->mu);
    return st;
}

static SSL_CTX *build(const char *cert, const char *key, const char *ca,
                      int client_auth)
{
    char err[512];
    SSL_CTX *ctx = rpc__tls_server_ctx(cert, key, ca, client_auth, err,
                                       sizeof err);
    if (ctx == NULL)
        srv_log("TLS: %s", err);
    return ctx;
}

int rpc_server_set_tls(rpc_server_t *s, const char *cert_file,
                       const char *key_file, const char *client_ca_file,
                       rpc_server_client_auth_t client_auth)
{
    if (s == NULL || cert_file == NULL || key_file == NULL ||
        client_auth < RPC_SERVER_CLIENT_AUTH_NONE ||
        client_auth > RPC_SERVER_CLIENT_AUTH_REQUIRE ||
        (client_auth != RPC_SERVER_CLIENT_AUTH_NONE && client_ca_file == NULL))
        return RPC_ERR_INVAL;
    if (started(s))
        return RPC_ERR_STATE;
    struct srv_transport *tp = tp_of(s);
    if (tp == NULL)
        return RPC_ERR_NOMEM;
    SSL_CTX *ctx = build(cert_file, key_file, client_ca_file,
                         (int)client_auth);
    if (ctx == NULL)
        return RPC_ERR_INVAL; /* nothing changed */
    char *cert = rpc__strdup(cert_file), *key = rpc__strdup(key_file);
    char *ca = client_ca_file ? rpc__strdup(client_ca_file) : NULL;
    if (cert == NULL || key == NULL || (client_ca_file && ca == NULL)) {
        free(cert);
        free(key);
        free(ca);
        SSL_CTX_free(ctx);
        return RPC_ERR_NOMEM;
    }
    free(tp->cert);
    free(tp->key);
    free(tp->ca);
    tp->cert = cert;
    tp->key = key;
    tp->ca = ca;
    tp->client_auth = (int)client_auth;
    pthread_mutex_lock(&tp->mu);
    SSL_CTX *old = tp->ctx;
    tp->ctx = ctx;
    pthread_mutex_unlock(&tp->mu);
    SSL_CTX_free(old);
    return 0;
}

int rpc_server_reload_tls(rpc_server_t *s)
{
    if (s == NULL)
        return RPC_ERR_INVAL;
    struct srv_transport *tp = s->transport;
    if (tp == NULL || tp->cert == NULL)
        return RPC_ERR_STATE;
    SSL_CTX *ctx = build(tp->cert, tp->key, tp->ca, tp->client_auth);
    if (ctx == NULL)
        return RPC_ERR_INVAL;
    pthread_mutex_lock(&tp->mu);
    SSL_CTX *old = tp->ctx;
    tp->ctx = ctx;
    pthread_mutex_unlock(&tp->mu);
    SSL_CTX_free(old); /* connections hold their own references */
    return 0;
}

const char *rpc_server_peer_identity(ctx_t *c)
{
    struct peer_id *p = c ? ctx_value(c, &peer_id_key) : NULL;
    return p && p->set ? p->id : NULL;
}

/* A fatal alert during the handshake, either way: one log line (an
 * operator's only view of clients with the wrong CA, no certificate, ...),
 * at most LOG_BURST per second for the whole server. */
static void log_alert(struct peer_id *p, int where, int ret)
{
    struct srv_transport *tp = p->tp;
    long long now = (long long)(ctx_now() / CTX_SECOND);
    long long was = atomic_load(&tp->log_second);
    if (was != now && atomic_compare_exchange_strong(&tp->log_second, &was,
                                                     now))
        atomic_store(&tp->log_count, 0);
    if (atomic_fetch_add(&tp->log_count, 1) >= LOG_BURST)
        return;
    srv_log("%s: TLS handshake failed: %s alert \"%s\"", p->peer,
            (where & SSL_CB_WRITE) ? "sent" : "received",
            SSL_alert_desc_string_long(ret));
}

/* Loop thread, inside the handshake: record who the client proved to be,
 * and log why a handshake failed. */
static void info_cb(const SSL *ssl, int where, int ret)
{
    struct peer_id *p = SSL_get_app_data(ssl);
    if ((where & SSL_CB_ALERT) && p != NULL && (ret >> 8) == SSL3_AL_FATAL &&
        !SSL_is_init_finished(ssl)) {
        log_alert(p, where, ret);
        return;
    }
    if (!(where & SSL_CB_HANDSHAKE_DONE))
        return;
    if (p != NULL && !p->set &&
        rpc__tls_peer_identity((SSL *)ssl, p->id, sizeof p->id) == 0)
        p->set = 1;
}

struct bufferevent *srv_transport_stream(rpc_server_t *s,
                                         struct event_base *base, int fd,
                                         ctx_t **conn_ctx)
{
    struct srv_transport *tp = s->transport;
    SSL *ssl = NULL;
    if (tp != NULL) {
        pthread_mutex_lock(&tp->mu);
        if (tp->ctx != NULL)
            ssl = SSL_new(tp->ctx);
        int tls = tp->ctx != NULL;
        pthread_mutex_unlock(&tp->mu);
        if (tls && ssl == NULL)
            return NULL;
    }
    if (ssl == NULL)
        return rpc__stream_plain(base, fd);
    /* conn_ctx becomes: cancel <- value(peer_id) <- the old conn_ctx. */
    struct peer_id *p = rpc__calloc(1, sizeof *p);
    ctx_t *vn = p ? ctx_with_value(*conn_ctx, &peer_id_key, p, free) : NULL;
    ctx_t *cc = vn ? ctx_with_cancel(vn) : NULL;
    if (cc == NULL) {
        if (vn != NULL)
            ctx_release(vn); /* frees p */
        else
            free(p);
        SSL_free(ssl);
        return NULL;
    }
    p->tp = tp;
    rpc__stream_peer_name(fd, p->peer, sizeof p->peer);
    SSL_set_app_data(ssl, p);
    SSL_set_info_callback(ssl, info_cb);
    struct bufferevent *bev = rpc__stream_tls(base, fd, ssl, 1);
    if (bev == NULL) { /* libevent has freed ssl */
        ctx_release(cc);
        ctx_release(vn);
        return NULL;
    }
    ctx_release(vn);        /* cc holds it */
    ctx_release(*conn_ctx); /* vn holds it */
    *conn_ctx = cc;
    return bev;
}

/* ---- Unix-domain listeners ------------------------------------------------ */

int rpc_server_listen_unix(rpc_server_t *s, const char *path)
{
    if (s == NULL || path == NULL)
        return RPC_ERR_INVAL;
    if (started(s))
        return RPC_ERR_STATE;
    if (s->nlisten == (int)(sizeof s->listen_fds / sizeof *s->listen_fds))
        return RPC_ERR_INVAL;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    socklen_t sl;
    int abstract = 0;
    if (strncmp(path, "unix-abstract:", 14) == 0) {
        abstract = 1;
        path += 14;
    } else if (strncmp(path, "unix://", 7) == 0) {
        path += 7; /* "unix:///abs": the path must be absolute */
        if (path[0] != '/')
            return RPC_ERR_INVAL;
    } else if (strncmp(path, "unix:", 5) == 0) {
        path += 5;
    }
    size_t n = strlen(path);
    if ((!abstract && n == 0) || n + 1 >= sizeof sa.sun_path)
        return RPC_ERR_INVAL;
    if (abstract) {
        memcpy(sa.sun_path + 1, path, n); /* sun_path[0] = NUL */
        sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    } else {
        memcpy(sa.sun_path, path, n + 1);
        sl = (socklen_t)sizeof sa;
    }
    struct srv_transport *tp = tp_of(s);
    char *copy = abstract ? NULL : rpc__strdup(path);
    if (tp == NULL || (!abstract && copy == NULL)) {
        free(copy);
        return RPC_ERR_NOMEM;
    }
    if (!abstract && tp->nunix == MAX_UNIX) {
        free(copy);
        return RPC_ERR_INVAL;
    }
    struct stat st;
    if (!abstract && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path); /* a stale socket from an earlier run */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sl) != 0 ||
        listen(fd, 1024) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        free(copy);
        errno = e;
        return RPC_ERR_SYSTEM;
    }
    evutil_make_socket_nonblocking(fd);
    s->listen_fds[s->nlisten++] = fd;
    if (copy != NULL)
        tp->unix_paths[tp->nunix++] = copy;
    return 0;
}

void srv_transport_free(rpc_server_t *s)
{
    struct srv_transport *tp = s->transport;
    if (tp == NULL)
        return;
    for (int i = 0; i < tp->nunix; i++) {
        unlink(tp->unix_paths[i]);
        free(tp->unix_paths[i]);
    }
    SSL_CTX_free(tp->ctx);
    free(tp->cert);
    free(tp->key);
    free(tp->ca);
    pthread_mutex_destroy(&tp->mu);
    free(tp);
    s->transport = NULL;
}
