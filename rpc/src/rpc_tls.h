/*
 * rpc_tls.h -- TLS under the HTTP/2 glue (OpenSSL + libevent's
 * bufferevent_openssl), shared by the server and the client.  Internal
 * (includes OpenSSL and libevent); not installed.
 *
 * A TLS byte stream is just another bufferevent (rpc__stream_tls), so
 * rpc_h2.c runs unchanged over it: libevent does the handshake on the
 * loop without blocking, holds back what nghttp2 writes until it is done,
 * and reports the end of the handshake as BEV_EVENT_CONNECTED (or a
 * failure as BEV_EVENT_ERROR, whose reason rpc__tls_error_text() gives).
 *
 * Both sides insist on TLS 1.2 or later and ALPN "h2" (RFC 9113 9.2;
 * gRPC clients reject a peer that negotiated no protocol), and turn TLS
 * compression and renegotiation off.
 *
 * Threads: an SSL_CTX is immutable once built and may be shared by any
 * number of threads (OpenSSL reference-counts it); each SSL and its
 * bufferevent belong to one loop thread.
 */
#ifndef RPC_TLS_H
#define RPC_TLS_H

#include <event2/bufferevent.h>
#include <openssl/ssl.h>

#include <stddef.h>

/* Client-certificate policy of a server context. */
enum {
    RPC__TLS_CLIENT_NONE = 0,    /* never ask */
    RPC__TLS_CLIENT_OPTIONAL = 1, /* ask; verify one if sent */
    RPC__TLS_CLIENT_REQUIRE = 2, /* ask; fail the handshake without one */
};

/* A server context: certificate chain and key (PEM files), and for
 * client_auth != NONE the CA file that client certificates must chain to.
 * ALPN selects "h2" (a client offering only other protocols fails the
 * handshake with no_application_protocol).  NULL on failure, with the
 * reason (file name and OpenSSL text) in err. */
SSL_CTX *rpc__tls_server_ctx(const char *cert_file, const char *key_file,
                             const char *client_ca_file, int client_auth,
                             char *err, size_t errlen);

/* A client context: trust roots from ca_file (NULL: the system store),
 * no verification at all when insecure, and an optional client
 * certificate chain and key (both or neither).  Offers ALPN "h2".  NULL on
 * failure, with the reason in err. */
SSL_CTX *rpc__tls_client_ctx(const char *ca_file, int insecure,
                             const char *cert_file, const char *key_file,
                             char *err, size_t errlen);

/* A client SSL on ctx checking the server's certificate against name (a
 * DNS name, or an IPv4/IPv6 literal matched against IP SANs); sends name
 * as SNI unless it is an IP literal.  NULL on failure. */
SSL *rpc__tls_client_ssl(SSL_CTX *ctx, const char *name);

/* A TLS stream on the connected socket fd (closed with the bufferevent,
 * which also frees ssl): server side when accepting, else client side.
 * The handshake starts at once on the loop.  NULL on failure (ssl is then
 * freed; fd is not closed). */
struct bufferevent *rpc__stream_tls(struct event_base *base, int fd, SSL *ssl,
                                    int accepting);

/* The SSL under a TLS stream, or NULL for a plain one. */
SSL *rpc__stream_ssl(struct bufferevent *bev);

/* Why the TLS stream failed: "certificate verify failed: hostname
 * mismatch", the OpenSSL error queue of the stream, or the socket error.
 * Always NUL-terminates buf. */
void rpc__tls_error_text(struct bufferevent *bev, char *buf, size_t len);

/* True when the handshake negotiated ALPN "h2". */
int rpc__tls_alpn_h2(SSL *ssl);

/* The verified identity of the peer's certificate: the first DNS or URI
 * subjectAltName, else the subject CN.  0 and buf filled, or -1 when the
 * peer sent no certificate or it did not verify. */
int rpc__tls_peer_identity(SSL *ssl, char *buf, size_t len);

#endif /* RPC_TLS_H */
