/*
 * test_client_tls.c -- TLS end to end: the project's server
 * (rpc_server_set_tls) and client (rpc_client_options_set_tls_*), plus our
 * client against python3-grpcio and @grpc/grpc-js TLS servers.
 *
 * Certificates are made at setup by fixtures/gen_certs.sh into a temp dir
 * (CA, server for localhost/127.0.0.1, wrong name, expired, self-signed,
 * client, rogue client).  Covered: a verified call (CA file, IP SAN, name
 * override), each bad server certificate failing UNAVAILABLE with
 * OpenSSL's verify text, the system store not trusting the test CA,
 * cleartext to a TLS server and TLS to a cleartext server failing fast,
 * mTLS (identity seen by the handler; no / rogue certificate refused),
 * reload of the server certificate without restart, and the stock
 * servers.  Every server is in-process or a fixture stopped by PID.
 */
#include "client_test_util.h"

#include <rpc/client_pb.h>
#include <rpc/server.h>

#include "demo/v1/demo.pb-c.h"

#include <sys/stat.h>

static char dir[64];

static const char *cert(const char *name)
{
    static char buf[8][160];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 160, "%s/%s", dir, name);
    return b;
}

/* Answers Fanout with "identity|peer" in the payload. */
static int who(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *req,
               void *ud)
{
    char buf[400];
    const char *id = rpc_server_peer_identity(ctx);
    snprintf(buf, sizeof buf, "%s|%s", id ? id : "none",
             rpc_server_peer(ctx) ? rpc_server_peer(ctx) : "?");
    Demo__V1__FanoutReply r = DEMO__V1__FANOUT_REPLY__INIT;
    r.payload.data = (uint8_t *)buf;
    r.payload.len = strlen(buf);
    return rpc_call_send(call, &r.base) == 0 ? RPC_STATUS_OK
                                             : RPC_STATUS_INTERNAL;
}

static rpc_server_t *server(const char *crt, const char *key,
                            rpc_server_client_auth_t auth, int *port)
{
    rpc_server_t *s = rpc_server_new();
    assert_non_null(s);
    assert_int_equal(rpc_server_add_method(s, &demo__v1__demo__descriptor,
                                           "Fanout", RPC_UNARY, RPC_BLOCKING,
                                           who, NULL), 0);
    if (crt != NULL)
        assert_int_equal(rpc_server_set_tls(s, crt, key,
                                            auth ? cert("ca.pem") : NULL,
                                            auth), 0);
    assert_int_equal(rpc_server_listen(s, "127.0.0.1", 0), 0);
    assert_int_equal(rpc_server_start(s), 0);
    *port = rpc_server_port(s);
    return s;
}

/* One Fanout call; returns the status, the message or payload in out. */
static int call_once(rpc_client_channel_t *ch, char *out, size_t cap)
{
    Demo__V1__FanoutRequest req = DEMO__V1__FANOUT_REQUEST__INIT;
    uint8_t buf[64];
    size_t len = protobuf_c_message_pack(&req.base, buf);
    ctx_t *c = ctx_with_timeout(ctx_background(), 10 * CTX_SECOND);
    rpc_client_call_t *call = NULL;
    int st = rpc_client_unary(c, ch, "/demo.v1.Demo/Fanout", NULL, buf, len,
                              &call);
    ctx_cancel(c);
    ctx_release(c);
    out[0] = 0;
    if (st == RPC_STATUS_OK) {
        size_t n = 0;
        const void *p = rpc_client_call_response(call, &n);
        Demo__V1__FanoutReply *r = p ? demo__v1__fanout_reply__unpack(
                                            NULL, n, p)
                                     : NULL;
        if (r != NULL) {
            snprintf(out, cap, "%.*s", (int)r->payload.len,
                     (const char *)r->payload.data);
            demo__v1__fanout_reply__free_unpacked(r, NULL);
        }
    } else if (call != NULL) {
        snprintf(out, cap, "%s", rpc_client_call_message(call));
    }
    rpc_client_call_free(call);
    return st;
}

static rpc_client_channel_t *channel(int port, const char *ca,
                                     const char *name, bool client_cert,
                                     const char *which_cert)
{
    rpc_client_options_t *o = rpc_client_options_new();
    assert_int_equal(rpc_client_options_set_connect_timeout(o, 5 * CTX_SECOND), 0);
    if (ca != NULL)
        assert_int_equal(rpc_client_options_set_tls_ca_file(o, ca), 0);
    else
        assert_int_equal(rpc_client_options_set_tls(o, true), 0);
    if (name != NULL)
        assert_int_equal(rpc_client_options_set_tls_server_name(o, name), 0);
    if (client_cert) {
        char c[160], k[160];
        snprintf(c, sizeof c, "%s/%s.pem", dir, which_cert);
        snprintf(k, sizeof k, "%s/%s.key", dir, which_cert);
        assert_int_equal(rpc_client_options_set_tls_client_cert(o, c, k), 0);
    }
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    rpc_client_channel_t *ch;
    assert_int_equal(rpc_client_channel_new(target, o, &ch), 0);
    rpc_client_options_free(o);
    return ch;
}

/* A server with certificate `name`, a client trusting the CA (checking
 * `override` when set): the call's status and text. */
static int try_cert(const char *name, const char *override, char *out,
                    size_t cap)
{
    char c[160], k[160];
    snprintf(c, sizeof c, "%s/%s.pem", dir, name);
    snprintf(k, sizeof k, "%s/%s.key", dir, name);
    int port;
    rpc_server_t *s = server(c, k, RPC_SERVER_CLIENT_AUTH_NONE, &port);
    rpc_client_channel_t *ch = channel(port, cert("ca.pem"), override, false,
                                       NULL);
    int st = call_once(ch, out, cap);
    rpc_client_channel_free(ch);
    rpc_server_free(s);
    return st;
}

static void test_verified(void **state)
{
    char out[512];
    assert_int_equal(try_cert("server", NULL, out, sizeof out), RPC_STATUS_OK);
    assert_non_null(strstr(out, "none|ipv4:127.0.0.1:"));
    assert_int_equal(try_cert("server", "localhost", out, sizeof out),
                     RPC_STATUS_OK);
    /* The override is the name checked: wrongname's only name. */
    assert_int_equal(try_cert("wrongname", "wrong.example", out, sizeof out),
                     RPC_STATUS_OK);
}

static void test_bad_server_certs(void **state)
{
    char out[512];
    int st = try_cert("wrongname", "localhost", out, sizeof out);
    print_message("wrong name: %s\n", out);
    assert_int_equal(st, RPC_STATUS_UNAVAILABLE);
    assert_non_null(strstr(out, "certificate verify failed: hostname mismatch"));
    st = try_cert("wrongname", NULL, out, sizeof out); /* IP target */
    assert_int_equal(st, RPC_STATUS_UNAVAILABLE);
    assert_non_null(strstr(out, "IP address mismatch"));
    st = try_cert("expired", NULL, out, sizeof out);
    print_message("expired: %s\n", out);
    assert_int_equal(st, RPC_STATUS_UNAVAILABLE);
    assert_non_null(strstr(out, "certificate has expired"));
    st = try_cert("untrusted", NULL, out, sizeof out);
    print_message("untrusted: %s\n", out);
    assert_int_equal(st, RPC_STATUS_UNAVAILABLE);
    assert_non_null(strstr(out, "self-signed certificate"));
    assert_non_null(strstr(out, "TLS handshake with 127.0.0.1:"));
}

static void test_system_store(void **state)
{
    /* Default trust roots: the test CA is not among them. */
    int port;
    rpc_server_t *s = server(cert("server.pem"), cert("server.key"), 0, &port);
    rpc_client_channel_t *ch = channel(port, NULL, "localhost", false, NULL);
    char out[512];
    assert_int_equal(call_once(ch, out, sizeof out), RPC_STATUS_UNAVAILABLE);
    assert_non_null(strstr(out, "certificate verify failed"));
    rpc_client_channel_free(ch);
    rpc_server_free(s);
}

static void test_plaintext_mismatch(void **state)
{
    char out[512];
    /* Cleartext client, TLS server: closed at the first bytes. */
    int port;
    rpc_server_t *s = server(cert("server.pem"), cert("server.key"), 0, &port);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    rpc_client_channel_t *ch;
    assert_int_equal(rpc_client_channel_new(target, NULL, &ch), 0);
    int64_t t0 = ctx_now();
    assert_int_equal(call_once(ch, out, sizeof out), RPC_STATUS_UNAVAILABLE);
    assert_true(ctx_now() - t0 < 2 * CTX_SECOND);
    rpc_client_channel_free(ch);
    rpc_server_free(s);
    /* TLS client, cleartext server. */
    s = server(NULL, NULL, 0, &port);
    ch = channel(port, cert("ca.pem"), NULL, false, NULL);
    t0 = ctx_now();
    assert_int_equal(call_once(ch, out, sizeof out), RPC_STATUS_UNAVAILABLE);
    print_message("tls to cleartext: %s\n", out);
    assert_non_null(strstr(out, "TLS handshake with"));
    assert_true(ctx_now() - t0 < 2 * CTX_SECOND);
    rpc_client_channel_free(ch);
    rpc_server_free(s);
}

/* The handshake is bounded: by the client's connect timeout against a
 * peer that never answers, by the server's handshake timeout against a
 * client that never speaks. */
static void test_handshake_timeouts(void **state)
{
    int port = 0;
    int lfd = fx_silent_listener(&port); /* the kernel accepts, no one reads */
    assert_true(lfd >= 0);
    rpc_client_options_t *o = rpc_client_options_new();
    assert_int_equal(rpc_client_options_set_connect_timeout(o, 300 * CTX_MS), 0);
    assert_int_equal(rpc_client_options_set_tls_ca_file(o, cert("ca.pem")), 0);
    char target[64], out[512];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    rpc_client_channel_t *ch;
    assert_int_equal(rpc_client_channel_new(target, o, &ch), 0);
    rpc_client_options_free(o);
    int64_t t0 = ctx_now();
    assert_int_equal(call_once(ch, out, sizeof out), RPC_STATUS_UNAVAILABLE);
    int64_t took = ctx_now() - t0;
    print_message("silent server: %s (%lld ms)\n", out,
                  (long long)(took / CTX_MS));
    assert_non_null(strstr(out, "TLS handshake with"));
    assert_non_null(strstr(out, "timed out"));
    assert_true(took >= 250 * CTX_MS && took < T_SCALE(3, 6) * CTX_SECOND);
    rpc_client_channel_free(ch);
    close(lfd);
    /* Server side: a TCP client that never sends a ClientHello. */
    rpc_server_t *s = rpc_server_new();
    assert_int_equal(rpc_server_set_option(s, RPC_SERVER_HANDSHAKE_TIMEOUT_MS,
                                           300), 0);
    assert_int_equal(rpc_server_set_tls(s, cert("server.pem"),
                                        cert("server.key"), NULL, 0), 0);
    assert_int_equal(rpc_server_listen(s, "127.0.0.1", 0), 0);
    assert_int_equal(rpc_server_start(s), 0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)rpc_server_port(s))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    t0 = ctx_now();
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, T_SCALE(3000, 6000)), 1); /* closed */
    char b;
    assert_true(read(fd, &b, 1) <= 0);
    took = ctx_now() - t0;
    assert_true(took >= 250 * CTX_MS);
    close(fd);
    rpc_server_free(s);
}

static void test_mtls(void **state)
{
    char out[512];
    int port;
    rpc_server_t *s = server(cert("server.pem"), cert("server.key"),
                             RPC_SERVER_CLIENT_AUTH_REQUIRE, &port);
    rpc_client_channel_t *ch = channel(port, cert("ca.pem"), NULL, true,
                                       "client");
    assert_int_equal(call_once(ch, out, sizeof out), RPC_STATUS_OK);
    assert_non_null(strstr(out, "client1|ipv4:127.0.0.1:"));
    rpc_client_channel_free(ch);
    ch = channel(port, cert("ca.pem"), NULL, false, NULL); /* no cert */
    int st = call_once(ch, out, sizeof out);
    print_message("no client cert: %s\n", out);
    assert_int_equal(st, RPC_STATUS_UNAVAILABLE);
    rpc_client_channel_free(ch);
    ch = channel(port, cert("ca.pem"), NULL, true, "rogue_client");
    st = call_once(ch, out, sizeof out);
    print_message("rogue client cert: %s\n", out);
    assert_int_equal(st, RPC_STATUS_UNAVAILABLE);
    rpc_client_channel_free(ch);
    rpc_server_free(s);
    /* Optional: no certificate is fine, and there is no identity. */
    s = server(cert("server.pem"), cert("server.key"),
               RPC_SERVER_CLIENT_AUTH_OPTIONAL, &port);
    ch = channel(port, cert("ca.pem"), NULL, false, NULL);
    assert_int_equal(call_once(ch, out, sizeof out), RPC_STATUS_OK);
    assert_non_null(strstr(out, "none|"));
    rpc_client_channel_free(ch);
    rpc_server_free(s);
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

static void test_reload(void **state)
{
    char out[512];
    copy_file(cert("server.pem"), cert("cur.pem"));
    copy_file(cert("server.key"), cert("cur.key"));
    int port;
    rpc_server_t *s = server(cert("cur.pem"), cert("cur.key"), 0, &port);
    rpc_client_channel_t *old = channel(port, cert("ca.pem"), "localhost",
                                        false, NULL);
    assert_int_equal(call_once(old, out, sizeof out), RPC_STATUS_OK);
    copy_file(cert("wrongname.pem"), cert("cur.pem"));
    copy_file(cert("wrongname.key"), cert("cur.key"));
    assert_int_equal(rpc_server_reload_tls(s), 0);
    rpc_client_channel_t *fresh = channel(port, cert("ca.pem"), "localhost",
                                          false, NULL);
    assert_int_equal(call_once(fresh, out, sizeof out),
                     RPC_STATUS_UNAVAILABLE);
    assert_non_null(strstr(out, "hostname mismatch"));
    /* The established connection keeps its session. */
    assert_int_equal(call_once(old, out, sizeof out), RPC_STATUS_OK);
    /* A broken file: the reload fails, the configuration stays. */
    FILE *f = fopen(cert("cur.key"), "w");
    fputs("not a key\n", f);
    fclose(f);
    assert_int_equal(rpc_server_reload_tls(s), RPC_ERR_INVAL);
    rpc_client_channel_free(fresh);
    fresh = channel(port, cert("ca.pem"), "wrong.example", false, NULL);
    assert_int_equal(call_once(fresh, out, sizeof out), RPC_STATUS_OK);
    rpc_client_channel_free(fresh);
    rpc_client_channel_free(old);
    rpc_server_free(s);
}

static void test_bad_setup(void **state)
{
    rpc_server_t *s = rpc_server_new();
    assert_int_equal(rpc_server_set_tls(s, cert("nope.pem"), cert("server.key"),
                                        NULL, 0), RPC_ERR_INVAL);
    assert_int_equal(rpc_server_set_tls(s, cert("server.pem"),
                                        cert("client.key"), NULL, 0),
                     RPC_ERR_INVAL); /* key of another certificate */
    assert_int_equal(rpc_server_set_tls(s, cert("server.pem"),
                                        cert("server.key"), NULL,
                                        RPC_SERVER_CLIENT_AUTH_REQUIRE),
                     RPC_ERR_INVAL); /* mTLS without a CA */
    assert_int_equal(rpc_server_reload_tls(s), RPC_ERR_STATE);
    rpc_server_free(s);
    rpc_client_options_t *o = rpc_client_options_new();
    assert_int_equal(rpc_client_options_set_tls_ca_file(o, cert("nope.pem")),
                     RPC_ERR_INVAL);
    assert_int_equal(rpc_client_options_set_tls_client_cert(o, cert("client.pem"),
                                                            NULL),
                     RPC_ERR_INVAL);
    assert_int_equal(rpc_client_options_set_tls_server_name(o, ""),
                     RPC_ERR_INVAL);
    /* Files OpenSSL cannot use fail their setter. */
    assert_int_equal(rpc_client_options_set_tls_ca_file(o, cert("ca.key")),
                     RPC_ERR_INVAL); /* no certificate in it */
    assert_int_equal(rpc_client_options_set_tls_client_cert(o, cert("client.pem"),
                                                            cert("server.key")),
                     RPC_ERR_INVAL); /* the key of another certificate */
    rpc_client_options_free(o);
}

/* Our client against a stock TLS server (python3-grpcio or grpc-js). */
static void stock(char *const argv[])
{
    fixture_t fx;
    assert_int_equal(fx_start(&fx, argv, 30000), 0);
    rpc_client_channel_t *ch = channel(fx.port, cert("ca.pem"), NULL, false,
                                       NULL);
    ctx_t *c = ctx_with_timeout(ctx_background(), 10 * CTX_SECOND);
    rpc_client_call_t *call = NULL;
    int st = rpc_client_unary(c, ch, "/grpc.testing.TestService/EmptyCall",
                              NULL, NULL, 0, &call);
    if (st != RPC_STATUS_OK)
        print_message("stock server: %s\n", rpc_client_call_message(call));
    assert_int_equal(st, RPC_STATUS_OK);
    rpc_client_call_free(call);
    ctx_release(c);
    rpc_client_channel_free(ch);
    fx_stop(&fx);
}

static void test_python_server(void **state)
{
    char *argv[] = {"/usr/bin/python3", FIXTURE_DIR "/py_server.py",
                    TESTING_PB, (char *)cert("server.pem"),
                    (char *)cert("server.key"), NULL};
    stock(argv);
}

static void test_node_server(void **state)
{
#ifdef NODE_BIN
    if (getenv("NODE_PATH") == NULL) {
        print_message("skipped: no NODE_PATH\n");
        return;
    }
    char *argv[] = {NODE_BIN, FIXTURE_DIR "/node_server.js",
                    (char *)cert("server.pem"), (char *)cert("server.key"),
                    NULL};
    stock(argv);
#else
    print_message("skipped: no node\n");
#endif
}

static int setup(void **state)
{
    return fx_cert_dir(dir, sizeof dir, "rpc-tls");
}

static int teardown(void **state)
{
    fx_cert_dir_remove(dir);
    ctx_shutdown();
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verified),
        cmocka_unit_test(test_bad_server_certs),
        cmocka_unit_test(test_system_store),
        cmocka_unit_test(test_plaintext_mismatch),
        cmocka_unit_test(test_handshake_timeouts),
        cmocka_unit_test(test_mtls),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_bad_setup),
        cmocka_unit_test(test_python_server),
        cmocka_unit_test(test_node_server),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
