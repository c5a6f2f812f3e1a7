/*
 * test_client_cli.c -- rpcurl (the command-line client) against the
 * python3-grpcio fixture: JSON in and out, -v headers/trailers, exit codes
 * (OK, each status as 64+code, usage 2, failure 1), --timeout with Go
 * durations, Ctrl-C (SIGINT) cancelling the call in flight -- the server
 * observes the cancellation -- and the --repeat/--concurrency summary.
 */
#include "client_test_util.h"

static fixture_t fx;
static rpc_client_channel_t *ch;

static int setup(void **state)
{
    char *argv[] = {"/usr/bin/python3", FIXTURE_DIR "/py_server.py",
                    TESTING_PB, NULL};
    if (fx_start(&fx, argv, 30000) != 0)
        return -1;
    return rpc_client_channel_new(fx.target, NULL, &ch);
}

static int teardown(void **state)
{
    rpc_client_channel_free(ch);
    fx_stop(&fx);
    ctx_shutdown();
    return 0;
}

/* Reads fd to EOF (bounded) into a malloc'ed string. */
static char *slurp(int fd, int timeout_ms)
{
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    int64_t end = ctx_now() + (int64_t)timeout_ms * CTX_MS;
    for (;;) {
        int left = (int)((end - ctx_now()) / CTX_MS);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        if (n + 1 >= cap)
            b = realloc(b, cap *= 2);
        ssize_t k = read(fd, b + n, cap - n - 1);
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    b[n] = 0;
    return b;
}

struct run {
    pid_t pid;
    int out, err;
};

static void spawn(struct run *r, char *const argv[])
{
    int o[2], e[2];
    assert_int_equal(pipe2(o, O_CLOEXEC), 0);
    assert_int_equal(pipe2(e, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, o[1], 1);
    posix_spawn_file_actions_adddup2(&fa, e[1], 2);
    assert_int_equal(posix_spawn(&r->pid, argv[0], &fa, NULL, argv, environ),
                     0);
    posix_spawn_file_actions_destroy(&fa);
    close(o[1]);
    close(e[1]);
    r->out = o[0];
    r->err = e[0];
}

static int finish(struct run *r, char **out, char **err)
{
    char *o = slurp(r->out, 20000), *e = slurp(r->err, 5000);
    close(r->out);
    close(r->err);
    int st;
    if (fx_wait_exit(r->pid, 20000, &st) != 0) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, &st, 0);
        fail_msg("rpcurl did not exit");
    }
    if (out)
        *out = o;
    else
        free(o);
    if (err)
        *err = e;
    else
        free(e);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Runs rpcurl with up to 8 arguments after the binary. */
static int rpcurl(char **out, char **err, ...)
{
    /* py_server has no reflection: rpcurl reads the .proto (via protoc). */
    char *argv[24] = {RPCURL, "-import-path", "/usr/share/grpc-proto",
                      "-proto", "grpc/testing/test.proto"};
    va_list ap;
    va_start(ap, err);
    int n = 5;
    char *a;
    while (n < 23 && (a = va_arg(ap, char *)) != NULL)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    struct run r;
    spawn(&r, argv);
    return finish(&r, out, err);
}

#define TS "grpc.testing.TestService/"

static void test_unary_json(void **state)
{
    char *out, *err;
    int rc = rpcurl(&out, &err, "-plaintext", "-d",
                    "{\"responseSize\": 3, \"payload\": {\"body\": \"AAE=\"}}",
                    fx.target, TS "UnaryCall", NULL);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\"body\": \"AAAA\""));
    free(out);
    free(err);
    /* -v: metadata sent, headers, trailers, counts. */
    rc = rpcurl(&out, &err, "-v", "-H", "x-grpc-test-echo-initial: hi",
                "-d", "{\"response_size\": 1}", fx.target, TS "UnaryCall",
                NULL);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "Request metadata to send:\n"
                                "x-grpc-test-echo-initial: hi"));
    assert_non_null(strstr(out, "Response headers received:\n"
                                "x-grpc-test-echo-initial: hi"));
    assert_non_null(strstr(out, "Response trailers received:"));
    assert_non_null(strstr(out, "Sent 1 request and received 1 response"));
    free(out);
    free(err);
    /* Client streaming: several JSON objects in -d. */
    rc = rpcurl(&out, &err, "-d",
                "{\"payload\":{\"body\":\"AAA=\"}} {\"payload\":{\"body\":\"AA==\"}}",
                fx.target, TS "StreamingInputCall", NULL);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\"aggregatedPayloadSize\": 3"));
    free(out);
    free(err);
}

static void test_exit_codes(void **state)
{
    char *out, *err;
    int rc = rpcurl(&out, &err, "-d",
                    "{\"response_status\":{\"code\":5,\"message\":\"nope\"}}",
                    fx.target, TS "UnaryCall", NULL);
    assert_int_equal(rc, 64 + RPC_STATUS_NOT_FOUND);
    assert_non_null(strstr(err, "Code: NotFound"));
    assert_non_null(strstr(err, "Message: nope"));
    free(out);
    free(err);
    assert_int_equal(rpcurl(NULL, NULL, fx.target, TS "UnimplementedCall",
                            NULL), 64 + RPC_STATUS_UNIMPLEMENTED);
    assert_int_equal(rpcurl(NULL, NULL, "--timeout", "2x", fx.target,
                            TS "EmptyCall", NULL), 2);
    assert_int_equal(rpcurl(NULL, NULL, "--bogus", fx.target, TS "EmptyCall",
                            NULL), 2);
    assert_int_equal(rpcurl(NULL, NULL, fx.target, NULL), 2);
    assert_int_equal(rpcurl(NULL, NULL, "-d", "{\"nosuch\": 1}", fx.target,
                            TS "UnaryCall", NULL), 1);
    assert_int_equal(rpcurl(NULL, NULL, fx.target, "no.Such/Method", NULL), 1);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", fx_closed_port());
    assert_int_equal(rpcurl(NULL, &err, target, TS "EmptyCall", NULL),
                     64 + RPC_STATUS_UNAVAILABLE);
    assert_non_null(strstr(err, "Unavailable"));
    free(err);
}

static const char *slow_stream =
    "{\"response_parameters\":[{\"size\":1},{\"size\":1,\"interval_us\":"
    "3000000},{\"size\":1,\"interval_us\":3000000}]}";

static void test_timeout(void **state)
{
    char *err;
    int64_t t0 = ctx_now();
    int rc = rpcurl(NULL, &err, "--timeout", "300ms", "-d", slow_stream,
                    fx.target, TS "StreamingOutputCall", NULL);
    int64_t took = ctx_now() - t0;
    assert_int_equal(rc, 64 + RPC_STATUS_DEADLINE_EXCEEDED);
    assert_non_null(strstr(err, "DeadlineExceeded"));
    assert_true(took >= 300 * CTX_MS && took < 2500 * CTX_MS);
    free(err);
    /* Already expired: fails locally. */
    assert_int_equal(rpcurl(NULL, NULL, "--timeout", "0s", fx.target,
                            TS "EmptyCall", NULL),
                     64 + RPC_STATUS_DEADLINE_EXCEEDED);
}

static void test_ctrl_c(void **state)
{
    char *argv[] = {RPCURL, "-import-path", "/usr/share/grpc-proto", "-proto",
                    "grpc/testing/test.proto", "-H", "x-test-id: cli-sigint", "-d",
                    (char *)slow_stream, fx.target,
                    TS "StreamingOutputCall", NULL};
    struct run r;
    spawn(&r, argv);
    /* The first response is out: the call is in flight. */
    char line[256];
    assert_true(fx_read_line(r.out, line, sizeof line, 20000) >= 0);
    assert_string_equal(line, "{");
    kill(r.pid, SIGINT);
    char *err;
    int64_t t0 = ctx_now();
    int rc = finish(&r, NULL, &err);
    assert_true(ctx_now() - t0 < 2 * CTX_SECOND); /* not the 3 s sleep */
    assert_int_equal(rc, 64 + RPC_STATUS_CANCELLED);
    assert_non_null(strstr(err, "Canceled"));
    free(err);
    /* The server saw the call cancelled. */
    rpc_client_call_t *call;
    ctx_t *c = ctx_with_timeout(ctx_background(), 15 * CTX_SECOND);
    assert_int_equal(rpc_client_unary(c, ch, "/ctxtest.Probe/Events", NULL,
                                      "cli-sigint", 10, &call), 0);
    size_t n;
    assert_string_equal(rpc_client_call_response(call, &n), "cancelled");
    rpc_client_call_free(call);
    ctx_release(c);
}

static void test_repeat(void **state)
{
    char *out;
    int rc = rpcurl(&out, NULL, "--repeat", "200", "--concurrency", "4",
                    fx.target, TS "EmptyCall", NULL);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "calls: 200  ok: 200"));
    assert_non_null(strstr(out, "p50"));
    assert_non_null(strstr(out, "p99"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary_json),
        cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_ctrl_c),
        cmocka_unit_test(test_repeat),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
