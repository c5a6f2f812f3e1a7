/*
 * test_client_unix.c -- Unix-domain sockets end to end: the server's
 * rpc_server_listen_unix() (path and abstract) and the client's unix:,
 * unix:/// and unix-abstract: targets; the peer string handlers see; a
 * stale socket file replaced and the file removed at rpc_server_free();
 * TLS over a Unix socket (the name checked is "localhost"); bad paths.
 */
#include "client_test_util.h"

#include <rpc/client_pb.h>
#include <rpc/server.h>

#include "demo/v1/demo.pb-c.h"

#include <sys/stat.h>
#include <sys/un.h>

static char dir[64];

/* Answers Fanout with "peer|authority" in the payload. */
static int who(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *req,
               void *ud)
{
    char buf[300];
    const char *peer = rpc_server_peer(ctx);
    snprintf(buf, sizeof buf, "%s", peer ? peer : "?");
    Demo__V1__FanoutReply r = DEMO__V1__FANOUT_REPLY__INIT;
    r.payload.data = (uint8_t *)buf;
    r.payload.len = strlen(buf);
    return rpc_call_send(call, &r.base) == 0 ? RPC_STATUS_OK
                                             : RPC_STATUS_INTERNAL;
}

static rpc_server_t *server(const char *where, bool tls)
{
    rpc_server_t *s = rpc_server_new();
    assert_non_null(s);
    assert_int_equal(rpc_server_add_method(s, &demo__v1__demo__descriptor,
                                           "Fanout", RPC_UNARY, RPC_BLOCKING,
                                           who, NULL), 0);
    if (tls) {
        char c[128], k[128];
        snprintf(c, sizeof c, "%s/server.pem", dir);
        snprintf(k, sizeof k, "%s/server.key", dir);
        assert_int_equal(rpc_server_set_tls(s, c, k, NULL, 0), 0);
    }
    assert_int_equal(rpc_server_listen_unix(s, where), 0);
    assert_int_equal(rpc_server_start(s), 0);
    return s;
}

static int call_once(const char *target, const rpc_client_options_t *o,
                     char *out, size_t cap)
{
    rpc_client_channel_t *ch;
    assert_int_equal(rpc_client_channel_new(target, o, &ch), 0);
    Demo__V1__FanoutRequest req = DEMO__V1__FANOUT_REQUEST__INIT;
    uint8_t buf[32];
    size_t len = protobuf_c_message_pack(&req.base, buf);
    ctx_t *c = ctx_with_timeout(ctx_background(), 10 * CTX_SECOND);
    rpc_client_call_t *call = NULL;
    int st = rpc_client_unary(c, ch, "/demo.v1.Demo/Fanout", NULL, buf, len,
                              &call);
    out[0] = 0;
    if (st == RPC_STATUS_OK) {
        size_t n = 0;
        const void *p = rpc_client_call_response(call, &n);
        Demo__V1__FanoutReply *r = demo__v1__fanout_reply__unpack(NULL, n, p);
        assert_non_null(r);
        snprintf(out, cap, "%.*s", (int)r->payload.len,
                 (const char *)r->payload.data);
        demo__v1__fanout_reply__free_unpacked(r, NULL);
    } else if (call != NULL) {
        snprintf(out, cap, "%s", rpc_client_call_message(call));
    }
    rpc_client_call_free(call);
    ctx_release(c);
    rpc_client_channel_free(ch);
    return st;
}

static void test_path(void **state)
{
    char path[128], target[160], out[300], want[160];
    snprintf(path, sizeof path, "%s/s.sock", dir);
    /* A stale socket file from an earlier run is replaced. */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    assert_true(strlen(path) < sizeof sa.sun_path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    rpc_server_t *s = server(path, false);
    snprintf(want, sizeof want, "unix:%s", path);
    snprintf(target, sizeof target, "unix:%s", path);
    assert_int_equal(call_once(target, NULL, out, sizeof out), RPC_STATUS_OK);
    assert_string_equal(out, want);
    snprintf(target, sizeof target, "unix://%s", path); /* unix:///abs */
    assert_int_equal(call_once(target, NULL, out, sizeof out), RPC_STATUS_OK);
    assert_string_equal(out, want);
    rpc_server_free(s);
    struct stat st;
    assert_int_not_equal(lstat(path, &st), 0); /* removed */
    /* Nothing listening: UNAVAILABLE with the path in the text. */
    snprintf(target, sizeof target, "unix:%s", path);
    assert_int_equal(call_once(target, NULL, out, sizeof out),
                     RPC_STATUS_UNAVAILABLE);
    assert_non_null(strstr(out, "No such file or directory"));
}

static void test_abstract(void **state)
{
    char name[64], target[96], out[300], want[96];
    snprintf(name, sizeof name, "unix-abstract:rpc-test-%d", (int)getpid());
    rpc_server_t *s = server(name, false);
    snprintf(target, sizeof target, "%s", name);
    snprintf(want, sizeof want, "%s", name);
    assert_int_equal(call_once(target, NULL, out, sizeof out), RPC_STATUS_OK);
    assert_string_equal(out, want);
    rpc_server_free(s);
}

static void test_tls_over_unix(void **state)
{
    char path[128], target[160], out[300], ca[128];
    snprintf(path, sizeof path, "%s/t.sock", dir);
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    rpc_server_t *s = server(path, true);
    rpc_client_options_t *o = rpc_client_options_new();
    assert_int_equal(rpc_client_options_set_tls_ca_file(o, ca), 0);
    snprintf(target, sizeof target, "unix:%s", path);
    assert_int_equal(call_once(target, o, out, sizeof out), RPC_STATUS_OK);
    rpc_client_options_free(o);
    /* Cleartext to the TLS socket fails. */
    assert_int_equal(call_once(target, NULL, out, sizeof out),
                     RPC_STATUS_UNAVAILABLE);
    rpc_server_free(s);
}

static void test_bad_paths(void **state)
{
    rpc_server_t *s = rpc_server_new();
    char longp[200];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = 0;
    assert_int_equal(rpc_server_listen_unix(s, longp), RPC_ERR_INVAL);
    assert_int_equal(rpc_server_listen_unix(s, ""), RPC_ERR_INVAL);
    assert_int_equal(rpc_server_listen_unix(s, "unix://rel"), RPC_ERR_INVAL);
    assert_int_equal(rpc_server_listen_unix(s, NULL), RPC_ERR_INVAL);
    assert_int_equal(rpc_server_listen_unix(s, "/nonexistent-dir/x.sock"),
                     RPC_ERR_SYSTEM);
    rpc_server_free(s);
    char t[220];
    snprintf(t, sizeof t, "unix:%s", longp);
    rpc_client_channel_t *ch = NULL;
    assert_int_equal(rpc_client_channel_new(t, NULL, &ch), RPC_ERR_INVAL);
}

static int setup(void **state)
{
    return fx_cert_dir(dir, sizeof dir, "rpc-unix");
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
        cmocka_unit_test(test_path),
        cmocka_unit_test(test_abstract),
        cmocka_unit_test(test_tls_over_unix),
        cmocka_unit_test(test_bad_paths),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
