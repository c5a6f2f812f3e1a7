/*
 * test_rpc_tls.c -- rpc_tls.c on its own: the contexts it builds (and the
 * reasons it gives when it cannot), ALPN "h2" on both sides, host and IP
 * checks, and the peer identity, with handshakes run in memory (a BIO
 * pair, pumped from one thread: no sockets, no timing).  The certificates
 * come from tests/client/fixtures/gen_certs.sh at setup.
 */
#include "rpc_tls.h"

#include <ctx/ctx.h>

#include <openssl/err.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[64];

static const char *f(const char *name)
{
    static char buf[8][160];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 160, "%s/%s", dir, name);
    return b;
}

/* ---- in-memory handshakes ------------------------------------------------- */

/* Runs client and server SSL_do_handshake over a BIO pair until both are
 * done or one fails (bounded number of rounds).  1: both done. */
static int handshake(SSL *c, SSL *s)
{
    BIO *bc, *bs;
    if (BIO_new_bio_pair(&bc, 0, &bs, 0) != 1)
        return 0;
    SSL_set_bio(c, bc, bc);
    SSL_set_bio(s, bs, bs);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    int cd = 0, sd = 0;
    for (int round = 0; round < 64 && !(cd && sd); round++) {
        if (!cd) {
            int r = SSL_do_handshake(c);
            if (r == 1)
                cd = 1;
            else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ)
                return 0;
        }
        if (!sd) {
            int r = SSL_do_handshake(s);
            if (r == 1)
                sd = 1;
            else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ)
                return 0;
        }
    }
    /* TLS 1.3: the server's verdict on a client certificate reaches the
     * client with the first read; one exchange of app data settles it. */
    char b = 'x';
    if (SSL_write(c, &b, 1) != 1 || SSL_read(s, &b, 1) != 1)
        return 0;
    return cd && sd;
}

static SSL_CTX *server_ctx(const char *cert, int auth)
{
    char err[512];
    char c[160], k[160];
    snprintf(c, sizeof c, "%s/%s.pem", dir, cert);
    snprintf(k, sizeof k, "%s/%s.key", dir, cert);
    SSL_CTX *ctx = rpc__tls_server_ctx(c, k, auth ? f("ca.pem") : NULL, auth,
                                       err, sizeof err);
    if (ctx == NULL)
        fail_msg("server ctx: %s", err);
    return ctx;
}

static SSL_CTX *client_ctx(const char *cert)
{
    char err[512], c[160], k[160];
    snprintf(c, sizeof c, "%s/%s.pem", dir, cert ? cert : "");
    snprintf(k, sizeof k, "%s/%s.key", dir, cert ? cert : "");
    SSL_CTX *ctx = rpc__tls_client_ctx(f("ca.pem"), 0, cert ? c : NULL,
                                       cert ? k : NULL, err, sizeof err);
    if (ctx == NULL)
        fail_msg("client ctx: %s", err);
    return ctx;
}

static void test_h2_and_identity(void **state)
{
    SSL_CTX *sctx = server_ctx("server", RPC__TLS_CLIENT_REQUIRE);
    SSL_CTX *cctx = client_ctx("client");
    SSL *s = SSL_new(sctx);
    SSL *c = rpc__tls_client_ssl(cctx, "localhost");
    assert_non_null(c);
    assert_int_equal(handshake(c, s), 1);
    assert_true(rpc__tls_alpn_h2(c));
    assert_true(rpc__tls_alpn_h2(s));
    char id[256];
    assert_int_equal(rpc__tls_peer_identity(s, id, sizeof id), 0);
    assert_string_equal(id, "client1"); /* no SAN: the CN */
    assert_int_equal(rpc__tls_peer_identity(c, id, sizeof id), 0);
    assert_string_equal(id, "localhost"); /* the first DNS SAN */
    assert_true(SSL_version(c) >= TLS1_2_VERSION);
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

static void test_tls12_only_peer(void **state)
{
    SSL_CTX *sctx = server_ctx("server", 0);
    SSL_CTX *cctx = client_ctx(NULL);
    SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
    SSL *s = SSL_new(sctx);
    SSL *c = rpc__tls_client_ssl(cctx, "127.0.0.1");
    assert_int_equal(handshake(c, s), 1);
    assert_int_equal(SSL_version(c), TLS1_2_VERSION);
    assert_true(rpc__tls_alpn_h2(c));
    /* ECDHE with an AEAD, as RFC 9113 9.2.2 wants. */
    const char *cipher = SSL_get_cipher_name(c);
    assert_non_null(strstr(cipher, "ECDHE"));
    assert_true(strstr(cipher, "GCM") || strstr(cipher, "CHACHA20"));
    char id[64];
    assert_int_equal(rpc__tls_peer_identity(s, id, sizeof id), -1); /* none */
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

static void test_no_h2_refused(void **state)
{
    SSL_CTX *sctx = server_ctx("server", 0);
    SSL_CTX *cctx = client_ctx(NULL);
    static const unsigned char http11[] = "\x08http/1.1";
    assert_int_equal(SSL_CTX_set_alpn_protos(cctx, http11, 9), 0);
    SSL *s = SSL_new(sctx);
    SSL *c = rpc__tls_client_ssl(cctx, "localhost");
    assert_int_equal(handshake(c, s), 0);
    unsigned long e = ERR_peek_last_error();
    char text[256];
    ERR_error_string_n(e, text, sizeof text);
    print_message("http/1.1 only: %s\n", text);
    ERR_clear_error();
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

static void test_name_checks(void **state)
{
    struct {
        const char *cert, *name;
        long want;
    } cases[] = {
        {"server", "localhost", X509_V_OK},
        {"server", "127.0.0.1", X509_V_OK},
        {"server", "[::1]", X509_V_OK},
        {"server", "foo.test.google.fr", X509_V_OK},
        {"server", "other.example", X509_V_ERR_HOSTNAME_MISMATCH},
        {"server", "127.0.0.2", X509_V_ERR_IP_ADDRESS_MISMATCH},
        {"wrongname", "localhost", X509_V_ERR_HOSTNAME_MISMATCH},
        {"expired", "localhost", X509_V_ERR_CERT_HAS_EXPIRED},
        {"untrusted", "localhost", X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        SSL_CTX *sctx = server_ctx(cases[i].cert, 0);
        SSL_CTX *cctx = client_ctx(NULL);
        SSL *s = SSL_new(sctx);
        SSL *c = rpc__tls_client_ssl(cctx, cases[i].name);
        assert_non_null(c);
        int ok = handshake(c, s);
        long vr = SSL_get_verify_result(c);
        if (vr != cases[i].want)
            fail_msg("%s as %s: verify %ld (%s), want %ld", cases[i].cert,
                     cases[i].name, vr, X509_verify_cert_error_string(vr),
                     cases[i].want);
        assert_int_equal(ok, cases[i].want == X509_V_OK);
        ERR_clear_error();
        SSL_free(c);
        SSL_free(s);
        SSL_CTX_free(cctx);
        SSL_CTX_free(sctx);
    }
}

static void test_context_errors(void **state)
{
    char err[512];
    assert_null(rpc__tls_server_ctx(f("nope.pem"), f("server.key"), NULL, 0,
                                    err, sizeof err));
    print_message("%s\n", err);
    assert_non_null(strstr(err, "cannot read the certificate chain"));
    assert_non_null(strstr(err, "No such file or directory"));
    assert_null(rpc__tls_server_ctx(f("server.pem"), f("client.key"), NULL, 0,
                                    err, sizeof err));
    assert_non_null(strstr(err, "key values mismatch"));
    assert_null(rpc__tls_server_ctx(f("ca.key"), f("server.key"), NULL, 0,
                                    err, sizeof err));
    assert_non_null(strstr(err, "cannot load the certificate chain"));
    assert_null(rpc__tls_server_ctx(f("server.pem"), f("server.key"), NULL,
                                    RPC__TLS_CLIENT_REQUIRE, err, sizeof err));
    assert_non_null(strstr(err, "client CA"));
    assert_null(rpc__tls_client_ctx(NULL, 0, f("client.pem"), NULL, err,
                                    sizeof err));
    assert_non_null(strstr(err, "needs its key"));
    assert_null(rpc__tls_client_ctx(f("nope.pem"), 0, NULL, NULL, err,
                                    sizeof err));
    assert_non_null(strstr(err, "cannot read the CA file"));
    /* The system store loads. */
    SSL_CTX *ctx = rpc__tls_client_ctx(NULL, 0, NULL, NULL, err, sizeof err);
    assert_non_null(ctx);
    SSL_CTX_free(ctx);
}

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/rpc-tlsu-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "%s %s", GEN_CERTS, dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)!system(cmd);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_h2_and_identity),
        cmocka_unit_test(test_tls12_only_peer),
        cmocka_unit_test(test_no_h2_refused),
        cmocka_unit_test(test_name_checks),
        cmocka_unit_test(test_context_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
