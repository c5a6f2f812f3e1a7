/*
 * test_codegen_interop.c -- the code protoc-gen-rpc-c generates for
 * grpc/testing/test.proto, end to end in one process: interop_server's
 * TestService handlers (server/interop/interop_service.c, registered with
 * the generated grpc_testing_test_service_register()) on 127.0.0.1:0, and
 * the generated client stubs of all four kinds, blocking and async.
 *
 * Async completions cancel a context the test waits on (ctx_wait with a
 * bound): no sleeps.
 */
#include "interop_service.h"

#include "grpc/testing/test.rpc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define WAIT (10 * CTX_SECOND)

typedef Grpc__Testing__StreamingOutputCallRequest out_req_t;
typedef Grpc__Testing__StreamingOutputCallResponse out_rsp_t;

static rpc_server_t *srv;
static rpc_client_channel_t *ch;

static int setup(void **state)
{
    char target[64];
    srv = rpc_server_new();
    assert_non_null(srv);
    assert_int_equal(interop_register(srv), 0);
    assert_int_equal(rpc_server_listen(srv, "127.0.0.1", 0), 0);
    assert_int_equal(rpc_server_start(srv), 0);
    snprintf(target, sizeof target, "127.0.0.1:%d", rpc_server_port(srv));
    assert_int_equal(rpc_client_channel_new(target, NULL, &ch), 0);
    return 0;
}

static int teardown(void **state)
{
    rpc_client_channel_free(ch);
    rpc_server_free(srv);
    /* Best effort, as the other tests: a call context's AfterFunc may
     * still be returning (EBUSY). */
    ctx_shutdown();
    return 0;
}

static void test_unary(void **state)
{
    ctx_t *ctx = ctx_with_timeout(ctx_background(), WAIT);
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__SimpleResponse *rsp = NULL;
    req.response_size = 10;
    assert_int_equal(grpc_testing_test_service_unary_call(ctx, ch, NULL, &req,
                                                          &rsp, NULL),
                     RPC_STATUS_OK);
    assert_non_null(rsp);
    assert_non_null(rsp->payload);
    assert_int_equal(rsp->payload->body.len, 10);
    grpc__testing__simple_response__free_unpacked(rsp, NULL);

    /* A status the handler returns, with its message, and no response. */
    Grpc__Testing__EchoStatus es = GRPC__TESTING__ECHO_STATUS__INIT;
    es.code = RPC_STATUS_NOT_FOUND;
    es.message = "nope";
    req.response_status = &es;
    rpc_client_call_t *call = NULL;
    assert_int_equal(grpc_testing_test_service_unary_call(ctx, ch, NULL, &req,
                                                          &rsp, &call),
                     RPC_STATUS_NOT_FOUND);
    assert_null(rsp);
    assert_string_equal(rpc_client_call_message(call), "nope");
    rpc_client_call_free(call);
    ctx_release(ctx);
}

/* A NULL handler leaves its method unregistered. */
static void test_unimplemented(void **state)
{
    ctx_t *ctx = ctx_with_timeout(ctx_background(), WAIT);
    Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT, *rsp = NULL;
    assert_int_equal(grpc_testing_test_service_unimplemented_call(
                         ctx, ch, NULL, &req, &rsp, NULL),
                     RPC_STATUS_UNIMPLEMENTED);
    assert_int_equal(grpc_testing_test_service_empty_call(ctx, ch, NULL, &req,
                                                          &rsp, NULL),
                     RPC_STATUS_OK);
    grpc__testing__empty__free_unpacked(rsp, NULL);
    ctx_release(ctx);
}

static void params(out_req_t *req, Grpc__Testing__ResponseParameters *p,
                   Grpc__Testing__ResponseParameters **pp, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        grpc__testing__response_parameters__init(&p[i]);
        p[i].size = (int32_t)(i + 1);
        pp[i] = &p[i];
    }
    req->response_parameters = pp;
    req->n_response_parameters = n;
}

static void test_server_streaming(void **state)
{
    ctx_t *ctx = ctx_with_timeout(ctx_background(), WAIT);
    out_req_t req = GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    Grpc__Testing__ResponseParameters p[3], *pp[3];
    params(&req, p, pp, 3);
    rpc_client_call_t *call = NULL;
    assert_int_equal(grpc_testing_test_service_streaming_output_call(
                         ctx, ch, NULL, &req, &call), 0);
    out_rsp_t *m;
    size_t n = 0;
    int rc;
    while ((rc = grpc_testing_test_service_streaming_output_call_read(ctx, call, &m)) == 0) {
        assert_int_equal(m->payload->body.len, ++n);
        grpc__testing__streaming_output_call_response__free_unpacked(m, NULL);
    }
    assert_int_equal(rc, RPC_ERR_EOF);
    assert_null(m);
    assert_int_equal(n, 3);
    assert_int_equal(rpc_client_call_finish(ctx, call), RPC_STATUS_OK);
    rpc_client_call_free(call);
    ctx_release(ctx);
}

/* The handler's cancellable wait ends with the client's deadline. */
static void test_deadline(void **state)
{
    ctx_t *ctx = ctx_with_timeout(ctx_background(), 100 * CTX_MS);
    out_req_t req = GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    Grpc__Testing__ResponseParameters p[1], *pp[1];
    params(&req, p, pp, 1);
    p[0].interval_us = 30 * 1000 * 1000;
    rpc_client_call_t *call = NULL;
    int64_t t0 = ctx_now();
    assert_int_equal(grpc_testing_test_service_streaming_output_call(
                         ctx, ch, NULL, &req, &call), 0);
    out_rsp_t *m;
    /* The call ends with ctx: either the read or the call sees it first. */
    int rc = grpc_testing_test_service_streaming_output_call_read(ctx, call, &m);
    assert_true(rc == RPC_ERR_DEADLINE || rc == RPC_ERR_EOF);
    assert_null(m);
    ctx_t *fin = ctx_with_timeout(ctx_background(), WAIT);
    assert_int_equal(rpc_client_call_finish(fin, call), RPC_STATUS_DEADLINE_EXCEEDED);
    assert_true(ctx_now() - t0 < 5 * CTX_SECOND);
    rpc_client_call_free(call);
    ctx_release(fin);
    ctx_release(ctx);
}

static void test_client_streaming(void **state)
{
    ctx_t *ctx = ctx_with_timeout(ctx_background(), WAIT);
    rpc_client_call_t *call = NULL;
    assert_int_equal(grpc_testing_test_service_streaming_input_call(ctx, ch, NULL, &call), 0);
    static uint8_t bytes[30];
    for (size_t i = 1; i <= 3; i++) {
        Grpc__Testing__StreamingInputCallRequest req =
            GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
        Grpc__Testing__Payload pl = GRPC__TESTING__PAYLOAD__INIT;
        pl.body.data = bytes, pl.body.len = 10 * i;
        req.payload = &pl;
        assert_int_equal(grpc_testing_test_service_streaming_input_call_write(ctx, call, &req), 0);
    }
    Grpc__Testing__StreamingInputCallResponse *rsp = NULL;
    assert_int_equal(grpc_testing_test_service_streaming_input_call_close_and_read(
                         ctx, call, &rsp), RPC_STATUS_OK);
    assert_int_equal(rsp->aggregated_payload_size, 60);
    grpc__testing__streaming_input_call_response__free_unpacked(rsp, NULL);
    rpc_client_call_free(call);
    ctx_release(ctx);
}

static void test_bidi(void **state)
{
    ctx_t *ctx = ctx_with_timeout(ctx_background(), WAIT);
    rpc_client_call_t *call = NULL;
    assert_int_equal(grpc_testing_test_service_full_duplex_call(ctx, ch, NULL, &call), 0);
    for (size_t round = 1; round <= 2; round++) {
        out_req_t req = GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
        Grpc__Testing__ResponseParameters p[2], *pp[2];
        params(&req, p, pp, round);
        assert_int_equal(grpc_testing_test_service_full_duplex_call_write(ctx, call, &req), 0);
        for (size_t i = 1; i <= round; i++) { /* answers before we close */
            out_rsp_t *m = NULL;
            assert_int_equal(grpc_testing_test_service_full_duplex_call_read(ctx, call, &m), 0);
            assert_int_equal(m->payload->body.len, i);
            grpc__testing__streaming_output_call_response__free_unpacked(m, NULL);
        }
    }
    assert_int_equal(rpc_client_call_close_send(call), 0);
    out_rsp_t *m = NULL;
    assert_int_equal(grpc_testing_test_service_full_duplex_call_read(ctx, call, &m), RPC_ERR_EOF);
    assert_int_equal(rpc_client_call_finish(ctx, call), RPC_STATUS_OK);
    rpc_client_call_free(call);
    ctx_release(ctx);
}

/* ---- async: each completion cancels `done` ------------------------------- */

/* Cancels and releases the callback's own reference on r->done: the test
 * thread may release its reference (and leave r) as soon as it sees the
 * cancellation. */
static void finish(ctx_t *done)
{
    ctx_cancel(done);
    ctx_release(done);
}

struct async_result {
    ctx_t *done;
    int status;
    size_t len, messages;
};

static void unary_done(rpc_client_call_t *call, int status,
                       const Grpc__Testing__SimpleResponse *rsp, void *ud)
{
    struct async_result *r = ud;
    r->status = status;
    r->len = rsp && rsp->payload ? rsp->payload->body.len : 0;
    finish(r->done);
}

static void test_async_unary(void **state)
{
    struct async_result r = {ctx_with_cancel(ctx_background()), -1, 0, 0};
    ctx_retain(r.done); /* the callback's */
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    req.response_size = 7;
    assert_int_equal(grpc_testing_test_service_unary_call_async(
                         ctx_background(), ch, NULL, &req, unary_done, &r, NULL), 0);
    assert_int_equal(ctx_wait(r.done, WAIT), CTX_CANCELED);
    assert_int_equal(r.status, RPC_STATUS_OK);
    assert_int_equal(r.len, 7);
    ctx_release(r.done);
}

static void stream_message(rpc_client_call_t *call, const out_rsp_t *m, void *ud)
{
    struct async_result *r = ud;
    r->len += m->payload->body.len;
    r->messages++;
}

static void stream_done(rpc_client_call_t *call, int status, void *ud)
{
    struct async_result *r = ud;
    r->status = status;
    finish(r->done);
}

static void test_async_streams(void **state)
{
    struct async_result r = {ctx_with_cancel(ctx_background()), -1, 0, 0};
    ctx_retain(r.done); /* the callback's */
    out_req_t req = GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    Grpc__Testing__ResponseParameters p[3], *pp[3];
    params(&req, p, pp, 3);
    rpc_client_call_t *call = NULL;
    assert_int_equal(grpc_testing_test_service_streaming_output_call_async(
                         ctx_background(), ch, NULL, &req, stream_message,
                         stream_done, &r, &call), 0);
    assert_int_equal(ctx_wait(r.done, WAIT), CTX_CANCELED);
    assert_int_equal(r.status, RPC_STATUS_OK);
    assert_int_equal(r.messages, 3);
    assert_int_equal(r.len, 1 + 2 + 3);
    rpc_client_call_free(call);
    ctx_release(r.done);

    /* Bidi, async: write from this thread, responses on the loop. */
    r = (struct async_result){ctx_with_cancel(ctx_background()), -1, 0, 0};
    ctx_retain(r.done);
    assert_int_equal(grpc_testing_test_service_full_duplex_call_async(
                         ctx_background(), ch, NULL, stream_message,
                         stream_done, &r, &call), 0);
    params(&req, p, pp, 2);
    assert_int_equal(grpc_testing_test_service_full_duplex_call_write(
                         ctx_background(), call, &req), 0);
    assert_int_equal(rpc_client_call_close_send(call), 0);
    assert_int_equal(ctx_wait(r.done, WAIT), CTX_CANCELED);
    assert_int_equal(r.status, RPC_STATUS_OK);
    assert_int_equal(r.messages, 2);
    rpc_client_call_free(call);
    ctx_release(r.done);
}

/* Registration: once per server, never after start. */
static void test_register_rules(void **state)
{
    assert_int_equal(interop_register(srv), RPC_ERR_STATE);
    rpc_server_t *s = rpc_server_new();
    assert_non_null(s);
    assert_int_equal(interop_register(s), 0);
    assert_int_equal(interop_register(s), RPC_ERR_EXISTS);
    assert_int_equal(grpc_testing_test_service_register(s, NULL), RPC_ERR_INVAL);
    /* The embedded descriptor is the file's, imports listed first. */
    size_t len = 0;
    const uint8_t *d = grpc_testing_test_proto_descriptor(&len);
    assert_non_null(d);
    assert_true(len > 100);
    assert_int_equal(d[0], 0x0a); /* field 1 (name), length-delimited */
    assert_int_equal(d[1], strlen("grpc/testing/test.proto"));
    assert_memory_equal(d + 2, "grpc/testing/test.proto", d[1]);
    rpc_server_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary),
        cmocka_unit_test(test_unimplemented),
        cmocka_unit_test(test_server_streaming),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_client_streaming),
        cmocka_unit_test(test_bidi),
        cmocka_unit_test(test_async_unary),
        cmocka_unit_test(test_async_streams),
        cmocka_unit_test(test_register_rules),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
