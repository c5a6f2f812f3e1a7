/*
 * interop_service.c -- grpc.testing.TestService, the standard interop
 * service (grpc/grpc doc/interop-test-descriptions.md, "Server"), written
 * as blocking handlers on the server's worker pool.
 *
 * Server features implemented: payloads of response_size zero bytes (type
 * COMPRESSABLE), Echo Status (response_status with a non-zero code ends the
 * call with that code and message), Echo Metadata (x-grpc-test-echo-initial
 * into the response headers, x-grpc-test-echo-trailing-bin into the
 * trailers), interval_us sleeps that end at once when the call is
 * cancelled (ctx_wait on the request context), aggregated payload sizes
 * for client streaming, full- and half-duplex bidi.  UnimplementedCall and
 * grpc.testing.UnimplementedService are deliberately not registered.
 * Compression (CompressedRequest / CompressedResponse features): a request
 * carrying expect_compressed must have arrived compressed exactly when it
 * says so, else INVALID_ARGUMENT (as the C++ reference server checks);
 * response_compressed / ResponseParameters.compressed turn compression of
 * the next responses on or off (gzip, or deflate if that is all the client
 * accepts).  Handlers, their registration and the typed send/recv helpers
 * are generated from grpc/testing/test.proto (protoc-gen-rpc-c).
 */
#include "interop_service.h"

#include "grpc/testing/test.rpc.h"

#include <stdlib.h>
#include <string.h>

typedef Grpc__Testing__StreamingOutputCallRequest output_request_t;

/* Copies the echo metadata keys from the request to the response. */
static void echo_metadata(rpc_call_t *call)
{
    const rpc_metadata_t *md = rpc_call_metadata(call);
    size_t len;
    const void *v = rpc_metadata_find(md, "x-grpc-test-echo-initial", &len);
    if (v)
        rpc_call_set_header(call, "x-grpc-test-echo-initial", v, len);
    v = rpc_metadata_find(md, "x-grpc-test-echo-trailing-bin", &len);
    if (v)
        rpc_call_set_trailer(call, "x-grpc-test-echo-trailing-bin", v, len);
}

/* The CompressedRequest check: 0, or INVALID_ARGUMENT with a message. */
static int check_compressed(rpc_call_t *call, const Grpc__Testing__BoolValue *want)
{
    if (want == NULL || (bool)want->value == rpc_call_received_compressed(call))
        return RPC_STATUS_OK;
    rpc_call_set_status_message(call, want->value ? "expected a compressed request"
                                                  : "expected an uncompressed request");
    return RPC_STATUS_INVALID_ARGUMENT;
}

static void want_compressed(rpc_call_t *call, const Grpc__Testing__BoolValue *v)
{
    if (v != NULL)
        rpc_call_set_compression(call, v->value); /* best effort */
}

static int echo_status(rpc_call_t *call, const Grpc__Testing__EchoStatus *st)
{
    if (st == NULL || st->code == 0)
        return RPC_STATUS_OK;
    rpc_call_set_status_message(call, st->message);
    return st->code;
}

/* A zero-filled payload of `size` bytes (owned by the caller: free
 * p->body.data). */
static int make_payload(Grpc__Testing__Payload *p, int32_t size)
{
    grpc__testing__payload__init(p);
    p->type = GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE;
    if (size < 0)
        return -1;
    p->body.len = (size_t)size;
    p->body.data = calloc(1, size ? (size_t)size : 1);
    return p->body.data ? 0 : -1;
}

static int empty_call(ctx_t *ctx, rpc_call_t *call,
                      const Grpc__Testing__Empty *req, void *ud)
{
    Grpc__Testing__Empty rsp = GRPC__TESTING__EMPTY__INIT;
    return grpc_testing_test_service_empty_call_send(call, &rsp) == 0
               ? RPC_STATUS_OK
               : RPC_STATUS_CANCELLED;
}

static int unary_call(ctx_t *ctx, rpc_call_t *call,
                      const Grpc__Testing__SimpleRequest *req, void *ud)
{
    echo_metadata(call);
    if (req->response_status && req->response_status->code != 0)
        return echo_status(call, req->response_status);
    int st = check_compressed(call, req->expect_compressed);
    if (st != RPC_STATUS_OK)
        return st;
    want_compressed(call, req->response_compressed);
    if (req->response_size < 0) {
        rpc_call_set_status_message(call, "negative response_size");
        return RPC_STATUS_INVALID_ARGUMENT;
    }
    Grpc__Testing__SimpleResponse rsp = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
    Grpc__Testing__Payload p;
    if (make_payload(&p, req->response_size) != 0)
        return RPC_STATUS_RESOURCE_EXHAUSTED;
    rsp.payload = &p;
    int rc = grpc_testing_test_service_unary_call_send(call, &rsp);
    free(p.body.data);
    return rc == 0 ? RPC_STATUS_OK : rpc_cause_status(ctx_cause(ctx));
}

/* Sends one response per parameter, sleeping interval_us before each. */
static int send_params(ctx_t *ctx, rpc_call_t *call,
                       Grpc__Testing__ResponseParameters **params, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const Grpc__Testing__ResponseParameters *rp = params[i];
        if (rp->interval_us > 0 &&
            ctx_wait(ctx, (int64_t)rp->interval_us * CTX_US) != 0)
            return rpc_cause_status(ctx_cause(ctx));
        if (rp->size < 0) {
            rpc_call_set_status_message(call, "negative size");
            return RPC_STATUS_INVALID_ARGUMENT;
        }
        want_compressed(call, rp->compressed);
        Grpc__Testing__StreamingOutputCallResponse rsp =
            GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
        Grpc__Testing__Payload p;
        if (make_payload(&p, rp->size) != 0)
            return RPC_STATUS_RESOURCE_EXHAUSTED;
        rsp.payload = &p;
        /* The streaming methods share this response type and path. */
        int rc = grpc_testing_test_service_streaming_output_call_send(call, &rsp);
        free(p.body.data);
        if (rc != 0)
            return rpc_cause_status(ctx_cause(ctx));
    }
    return RPC_STATUS_OK;
}

static int streaming_output(ctx_t *ctx, rpc_call_t *call,
                            const output_request_t *req, void *ud)
{
    echo_metadata(call);
    int st = send_params(ctx, call, req->response_parameters,
                         req->n_response_parameters);
    if (st != RPC_STATUS_OK)
        return st;
    return echo_status(call, req->response_status);
}

static int streaming_input(ctx_t *ctx, rpc_call_t *call, void *ud)
{
    int32_t total = 0;
    for (;;) {
        Grpc__Testing__StreamingInputCallRequest *req;
        int rc = grpc_testing_test_service_streaming_input_call_recv(call, &req);
        if (rc == RPC_ERR_EOF)
            break;
        if (rc == RPC_ERR_MALFORMED)
            return RPC_STATUS_INTERNAL;
        if (rc != 0)
            return rpc_cause_status(ctx_cause(ctx));
        int st = check_compressed(call, req->expect_compressed);
        if (req->payload)
            total += (int32_t)req->payload->body.len;
        grpc__testing__streaming_input_call_request__free_unpacked(req, NULL);
        if (st != RPC_STATUS_OK)
            return st;
    }
    Grpc__Testing__StreamingInputCallResponse rsp =
        GRPC__TESTING__STREAMING_INPUT_CALL_RESPONSE__INIT;
    rsp.aggregated_payload_size = total;
    return grpc_testing_test_service_streaming_input_call_send(call, &rsp) == 0
               ? RPC_STATUS_OK
               : rpc_cause_status(ctx_cause(ctx));
}

static int full_duplex(ctx_t *ctx, rpc_call_t *call, void *ud)
{
    echo_metadata(call);
    for (;;) {
        output_request_t *req;
        int rc = grpc_testing_test_service_full_duplex_call_recv(call, &req);
        if (rc == RPC_ERR_EOF)
            return RPC_STATUS_OK;
        if (rc == RPC_ERR_MALFORMED)
            return RPC_STATUS_INTERNAL;
        if (rc != 0)
            return rpc_cause_status(ctx_cause(ctx));
        int st = RPC_STATUS_OK;
        if (req->response_status && req->response_status->code != 0)
            st = echo_status(call, req->response_status);
        else
            st = send_params(ctx, call, req->response_parameters,
                             req->n_response_parameters);
        grpc__testing__streaming_output_call_request__free_unpacked(req, NULL);
        if (st != RPC_STATUS_OK)
            return st;
    }
}

static int half_duplex(ctx_t *ctx, rpc_call_t *call, void *ud)
{
    output_request_t **held = NULL;
    size_t n = 0, cap = 0;
    int st = RPC_STATUS_OK;
    for (;;) {
        output_request_t *m;
        int rc = grpc_testing_test_service_half_duplex_call_recv(call, &m);
        if (rc == RPC_ERR_EOF)
            break;
        if (rc != 0) {
            st = rc == RPC_ERR_MALFORMED ? RPC_STATUS_INTERNAL
                                         : rpc_cause_status(ctx_cause(ctx));
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            output_request_t **v = realloc(held, cap * sizeof *v);
            if (v == NULL) {
                grpc__testing__streaming_output_call_request__free_unpacked(m, NULL);
                st = RPC_STATUS_RESOURCE_EXHAUSTED;
                break;
            }
            held = v;
        }
        held[n++] = m;
    }
    for (size_t i = 0; i < n; i++) {
        if (st == RPC_STATUS_OK)
            st = send_params(ctx, call, held[i]->response_parameters,
                             held[i]->n_response_parameters);
        grpc__testing__streaming_output_call_request__free_unpacked(held[i], NULL);
    }
    free(held);
    return st;
}

/* UnimplementedCall stays NULL: it must answer UNIMPLEMENTED. */
static const grpc_testing_test_service_handlers_t handlers = {
    .empty_call = empty_call,
    .unary_call = unary_call,
    .cacheable_unary_call = unary_call,
    .streaming_output_call = streaming_output,
    .streaming_input_call = streaming_input,
    .full_duplex_call = full_duplex,
    .half_duplex_call = half_duplex,
};

int interop_register(rpc_server_t *s)
{
    return grpc_testing_test_service_register(s, &handlers);
}
