/*
 * rpc_tls.c -- OpenSSL contexts and TLS byte streams for the HTTP/2 glue
 * (see rpc_tls.h for the contract).
 *
 * Policy, the same on both sides:
 *   - TLS 1.2 and 1.3 only; TLS compression and renegotiation off;
 *   - TLS 1.2 cipher suites limited to ECDHE with AEAD (every suite on
 *     RFC 9113's block list is left out); TLS 1.3 suites are OpenSSL's;
 *   - ALPN "h2": the server selects it or fails the handshake, the client
 *     offers only it and checks (rpc__tls_alpn_h2) that it was chosen.
 * A stream is libevent's bufferevent_openssl over the socket, with "dirty
 * shutdown" allowed (a peer that closes TCP without close_notify is an EOF,
 * as every gRPC peer does it, not an error).
 *
 * Threads: contexts are built once and then shared read-only; everything
 * on a stream runs on its loop thread.  OpenSSL >= 1.1 initialises itself
 * and is thread-safe without callbacks, so there is no global setup here.
 */
#include "rpc_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/bufferevent_ssl.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20"

static void ssl_err(char *err, size_t errlen, const char *what,
                    const char *file)
{
    unsigned long e = ERR_peek_last_error();
    char text[256] = "unknown error";
    if (e != 0)
        ERR_error_string_n(e, text, sizeof text);
    ERR_clear_error();
    if (err == NULL || errlen == 0)
        return;
    if (file != NULL)
        snprintf(err, errlen, "%s %s: %s", what, file, text);
    else
        snprintf(err, errlen, "%s: %s", what, text);
}

static SSL_CTX *base_ctx(const SSL_METHOD *m, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(m);
    if (ctx == NULL) {
        ssl_err(err, errlen, "cannot create a TLS context", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
        ssl_err(err, errlen, "cannot set the TLS 1.2 cipher suites", NULL);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* A file OpenSSL would fail on with only "system lib": say why. */
static int unreadable(const char *what, const char *file, char *err,
                      size_t errlen)
{
    if (access(file, R_OK) == 0)
        return 0;
    snprintf(err, errlen, "cannot read %s %s: %s", what, file,
             strerror(errno));
    return -1;
}

static int load_pair(SSL_CTX *ctx, const char *cert_file,
                     const char *key_file, char *err, size_t errlen)
{
    if (unreadable("the certificate chain", cert_file, err, errlen) != 0 ||
        unreadable("the private key", key_file, err, errlen) != 0)
        return -1;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        ssl_err(err, errlen, "cannot load the certificate chain",
                cert_file);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        ssl_err(err, errlen, "cannot load the private key", key_file);
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_err(err, errlen, "the private key does not match the certificate",
                key_file);
        return -1;
    }
    return 0;
}

/* Picks "h2" from the client's list, or fails the handshake (an HTTP/2
 * server has nothing else to offer). */
static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    for (unsigned int i = 0; i < inlen;) {
        unsigned int n = in[i];
        if (i + 1 + n > inlen)
            break;
        if (n == 2 && memcmp(in + i + 1, "h2", 2) == 0) {
            *out = in + i + 1;
            *outlen = 2;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

SSL_CTX *rpc__tls_server_ctx(const char *cert_file, const char *key_file,
                             const char *client_ca_file, int client_auth,
                             char *err, size_t errlen)
{
    if (cert_file == NULL || key_file == NULL ||
        (client_auth != RPC__TLS_CLIENT_NONE && client_ca_file == NULL)) {
        snprintf(err, errlen, "a certificate, a key%s are required",
                 client_auth ? " and a client CA file" : "");
        return NULL;
    }
    SSL_CTX *ctx = base_ctx(TLS_server_method(), err, errlen);
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (load_pair(ctx, cert_file, key_file, err, errlen) != 0)
        goto fail;
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    /* Needed for session resumption when client certificates are
     * verified; harmless otherwise. */
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"rpc", 3);
    if (client_auth != RPC__TLS_CLIENT_NONE) {
        if (unreadable("the client CA file", client_ca_file, err, errlen))
            goto fail;
        if (SSL_CTX_load_verify_locations(ctx, client_ca_file, NULL) != 1) {
            ssl_err(err, errlen, "cannot load the client CA file",
                    client_ca_file);
            goto fail;
        }
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca_file);
        if (names == NULL) {
            ssl_err(err, errlen, "no CA names in", client_ca_file);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx,
                           SSL_VERIFY_PEER |
                               (client_auth == RPC__TLS_CLIENT_REQUIRE
                                    ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                    : 0),
                           NULL);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

SSL_CTX *rpc__tls_client_ctx(const char *ca_file, int insecure,
                             const char *cert_file, const char *key_file,
                             char *err, size_t errlen)
{
    if ((cert_file == NULL) != (key_file == NULL)) {
        snprintf(err, errlen, "a client certificate needs its key (and a "
                              "key its certificate)");
        return NULL;
    }
    SSL_CTX *ctx = base_ctx(TLS_client_method(), err, errlen);
    if (ctx == NULL)
        return NULL;
    static const unsigned char alpn[] = "\x02h2";
    if (SSL_CTX_set_alpn_protos(ctx, alpn, 3) != 0) { /* 0 is success */
        ssl_err(err, errlen, "cannot set ALPN", NULL);
        goto fail;
    }
    if (insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (ca_file != NULL) {
            if (unreadable("the CA file", ca_file, err, errlen))
                goto fail;
            if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
                ssl_err(err, errlen, "cannot load the CA file", ca_file);
                goto fail;
            }
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            ssl_err(err, errlen, "cannot load the system trust store",
                    NULL);
            goto fail;
        }
    }
    if (cert_file != NULL &&
        load_pair(ctx, cert_file, key_file, err, errlen) != 0)
        goto fail;
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

SSL *rpc__tls_client_ssl(SSL_CTX *ctx, const char *name)
{
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL)
        return NULL;
    char host[256];
    size_t n = strlen(name);
    if (n >= 2 && name[0] == '[' && name[n - 1] == ']') { /* [v6] */
        name++;
        n -= 2;
    }
    if (n >= sizeof host)
        n = sizeof host - 1;
    memcpy(host, name, n);
    host[n] = '\0';
    unsigned char ip[16];
    int ok;
    if (inet_pton(AF_INET, host, ip) == 1 ||
        inet_pton(AF_INET6, host, ip) == 1) {
        /* An IP literal: matched against IP SANs, never sent as SNI. */
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1;
    } else {
        ok = SSL_set_tlsext_host_name(ssl, host) == 1 &&
             SSL_set1_host(ssl, host) == 1;
    }
    if (!ok) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    return ssl;
}

struct bufferevent *rpc__stream_tls(struct event_base *base, int fd, SSL *ssl,
                                    int accepting)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    evutil_make_socket_nonblocking(fd);
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, fd, ssl,
        accepting ? BUFFEREVENT_SSL_ACCEPTING : BUFFEREVENT_SSL_CONNECTING,
        BEV_OPT_CLOSE_ON_FREE);
    if (bev != NULL)
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

SSL *rpc__stream_ssl(struct bufferevent *bev)
{
    return bev ? bufferevent_openssl_get_ssl(bev) : NULL;
}

void rpc__tls_error_text(struct bufferevent *bev, char *buf, size_t len)
{
    SSL *ssl = rpc__stream_ssl(bev);
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long e = bev ? bufferevent_get_openssl_error(bev) : 0;
    int sock = EVUTIL_SOCKET_ERROR();
    if (vr != X509_V_OK) {
        snprintf(buf, len, "certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
    } else if (e != 0) {
        const char *r = ERR_reason_error_string(e);
        if (r != NULL)
            snprintf(buf, len, "%s", r);
        else
            ERR_error_string_n(e, buf, len);
    } else if (sock != 0 && sock != EAGAIN) {
        snprintf(buf, len, "%s", evutil_socket_error_to_string(sock));
    } else {
        snprintf(buf, len, "connection closed during the TLS handshake");
    }
    while (bev && bufferevent_get_openssl_error(bev) != 0)
        ; /* drop the rest of the stream's queue */
}

int rpc__tls_alpn_h2(SSL *ssl)
{
    const unsigned char *p = NULL;
    unsigned int n = 0;
    SSL_get0_alpn_selected(ssl, &p, &n);
    return n == 2 && memcmp(p, "h2", 2) == 0;
}

int rpc__tls_peer_identity(SSL *ssl, char *buf, size_t len)
{
    X509 *cert = SSL_get0_peer_certificate(ssl);
    if (cert == NULL || SSL_get_verify_result(ssl) != X509_V_OK || len == 0)
        return -1;
    int found = 0;
    GENERAL_NAMES *names =
        X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; names && !found && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        const ASN1_STRING *s = g->type == GEN_DNS   ? g->d.dNSName
                               : g->type == GEN_URI ? g->d.uniformResourceIdentifier
                                                    : NULL;
        if (s != NULL) {
            snprintf(buf, len, "%.*s", ASN1_STRING_length(s),
                     (const char *)ASN1_STRING_get0_data(s));
            found = 1;
        }
    }
    GENERAL_NAMES_free(names);
    if (found)
        return 0;
    X509_NAME *subj = X509_get_subject_name(cert);
    int idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
    if (idx < 0)
        return -1;
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(
        &utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx)));
    if (n < 0)
        return -1;
    snprintf(buf, len, "%.*s", n, (const char *)utf8);
    OPENSSL_free(utf8);
    return 0;
}
