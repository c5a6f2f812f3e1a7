/*
 * test_client_interop.c -- the client against an independent gRPC server:
 * a python3-grpcio (C-core) server or an @grpc/grpc-js server, chosen at
 * build time (FIXTURE_PYTHON / FIXTURE_NODE).  Both fixtures implement
 * grpc.testing.TestService and the raw ctxtest.Probe service (see
 * fixtures/py_server.py).
 *
 * Covered: unary, server/client streaming, bidi ping-pong, empty stream,
 * metadata round trips (ASCII and -bin), status codes and percent-encoded
 * messages, unimplemented methods, deadlines (what the server saw, what
 * the client reports, the server observing the end), cancellation (the
 * server observes it), already-expired contexts (nothing sent),
 * propagation from a request-like context, async calls and multiplexing.
 */
#include "client_test_util.h"

#include <rpc/client_pb.h>

#include "grpc/testing/empty.pb-c.h"
#include "grpc/testing/messages.pb-c.h"

#include <pthread.h>

static fixture_t fx;
static rpc_client_channel_t *ch;

#define TS "/grpc.testing.TestService/"

static int setup(void **state)
{
#ifdef FIXTURE_PYTHON
    char *argv[] = {"/usr/bin/python3", FIXTURE_DIR "/py_server.py",
                    TESTING_PB, NULL};
#else
    char *argv[] = {NODE_BIN, FIXTURE_DIR "/node_server.js", NULL};
#endif
    if (fx_start(&fx, argv, 30000) != 0)
        return -1;
    return rpc_client_channel_new(fx.target, NULL, &ch) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    rpc_client_channel_free(ch);
    fx_stop(&fx);
    ctx_shutdown();
    return 0;
}

static Grpc__Testing__SimpleRequest simple_req(int32_t resp_size,
                                               size_t body,
                                               Grpc__Testing__Payload *p,
                                               uint8_t *buf)
{
    Grpc__Testing__SimpleRequest r = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    grpc__testing__payload__init(p);
    p->body.data = buf;
    p->body.len = body;
    r.response_size = resp_size;
    r.payload = p;
    return r;
}

static void test_empty_unary(void **state)
{
    rpc_client_call_t *call;
    int st = rpc_client_unary(ctx_background(), ch, TS "EmptyCall", NULL,
                              NULL, 0, &call);
    assert_int_equal(st, RPC_STATUS_OK);
    size_t len = 99;
    assert_non_null(rpc_client_call_response(call, &len));
    assert_int_equal(len, 0);
    assert_non_null(rpc_client_call_message(call)); /* grpc-js says "OK" */
    rpc_client_call_free(call);
}

static void test_large_unary(void **state)
{
    static uint8_t body[271828];
    Grpc__Testing__Payload p;
    Grpc__Testing__SimpleRequest r = simple_req(314159, sizeof body, &p, body);
    ProtobufCMessage *resp;
    int st = rpc_client_unary_pb(ctx_background(), ch, TS "UnaryCall", NULL,
                                 &r.base,
                                 &grpc__testing__simple_response__descriptor,
                                 &resp, NULL);
    assert_int_equal(st, RPC_STATUS_OK);
    Grpc__Testing__SimpleResponse *sr = (Grpc__Testing__SimpleResponse *)resp;
    assert_non_null(sr->payload);
    assert_int_equal(sr->payload->body.len, 314159);
    protobuf_c_message_free_unpacked(resp, NULL);
}

static void test_server_streaming(void **state)
{
    static const int sizes[] = {31415, 9, 2653, 58979};
    Grpc__Testing__ResponseParameters rp[4], *rpp[4];
    for (int i = 0; i < 4; i++) {
        grpc__testing__response_parameters__init(&rp[i]);
        rp[i].size = sizes[i];
        rpp[i] = &rp[i];
    }
    Grpc__Testing__StreamingOutputCallRequest r =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    r.n_response_parameters = 4;
    r.response_parameters = rpp;
    rpc_client_call_t *call;
    assert_int_equal(rpc_client_call_start(ctx_background(), ch,
                                           TS "StreamingOutputCall", NULL,
                                           &call), 0);
    assert_int_equal(rpc_client_call_send_pb(ctx_background(), call, &r.base),
                     0);
    /* A server may answer a server-streaming call -- every message and the
     * trailers -- as soon as it has the request, without waiting for our
     * half-close (python's grpcio does).  If this thread is preempted for
     * that long, the call has already finished and close_send says so
     * (RPC_ERR_CLOSED, as documented); the messages and the status are
     * checked below either way. */
    int cs = rpc_client_call_close_send(call);
    if (cs != 0 && cs != RPC_ERR_CLOSED)
        fail_msg("close_send: %d (%s)", cs, rpc_strerror(cs));
    assert_true(cs == 0 || rpc_client_call_done(call));
    for (int i = 0; i < 4; i++) {
        ProtobufCMessage *m;
        assert_int_equal(rpc_client_call_recv_pb(
                             ctx_background(), call,
                             &grpc__testing__streaming_output_call_response__descriptor,
                             &m), 0);
        Grpc__Testing__StreamingOutputCallResponse *o = (void *)m;
        assert_int_equal(o->payload->body.len, sizes[i]);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    void *d;
    size_t n;
    assert_int_equal(rpc_client_call_recv(ctx_background(), call, &d, &n),
                     RPC_ERR_EOF);
    assert_int_equal(rpc_client_call_finish(ctx_background(), call),
                     RPC_STATUS_OK);
    rpc_client_call_free(call);
}

static void test_client_streaming(void **state)
{
    static const int sizes[] = {27182, 8, 1828, 45904};
    static uint8_t body[45904];
    rpc_client_call_t *call;
    assert_int_equal(rpc_client_call_start(ctx_background(), ch,
                                           TS "StreamingInputCall", NULL,
                                           &call), 0);
    for (int i = 0; i < 4; i++) {
        Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
        p.body.data = body;
        p.body.len = (size_t)sizes[i];
        Grpc__Testing__StreamingInputCallRequest r =
            GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
        r.payload = &p;
        assert_int_equal(rpc_client_call_send_pb(ctx_background(), call,
                                                 &r.base), 0);
    }
    assert_int_equal(rpc_client_call_close_send(call), 0);
    /* (A second close_send is checked in test_cancel, on a call the server
     * cannot have finished: here the server answers right after our
     * half-close, and close_send on a finished call is RPC_ERR_CLOSED.) */
    ProtobufCMessage *m;
    assert_int_equal(rpc_client_call_recv_pb(
                         ctx_background(), call,
                         &grpc__testing__streaming_input_call_response__descriptor,
                         &m), 0);
    assert_int_equal(((Grpc__Testing__StreamingInputCallResponse *)m)
                         ->aggregated_payload_size, 74922);
    protobuf_c_message_free_unpacked(m, NULL);
    assert_int_equal(rpc_client_call_finish(ctx_background(), call), 0);
    rpc_client_call_free(call);
}

static void test_ping_pong(void **state)
{
    static const int rs[] = {31415, 9, 2653, 58979};
    static const int bs[] = {27182, 8, 1828, 45904};
    static uint8_t body[45904];
    rpc_client_call_t *call;
    assert_int_equal(rpc_client_call_start(ctx_background(), ch,
                                           TS "FullDuplexCall", NULL, &call),
                     0);
    for (int i = 0; i < 4; i++) {
        Grpc__Testing__ResponseParameters rp =
            GRPC__TESTING__RESPONSE_PARAMETERS__INIT;
        Grpc__Testing__ResponseParameters *rpp = &rp;
        rp.size = rs[i];
        Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
        p.body.data = body;
        p.body.len = (size_t)bs[i];
        Grpc__Testing__StreamingOutputCallRequest r =
            GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
        r.n_response_parameters = 1;
        r.response_parameters = &rpp;
        r.payload = &p;
        assert_int_equal(rpc_client_call_send_pb(ctx_background(), call,
                                                 &r.base), 0);
        /* Full duplex: the reply comes before we half-close. */
        ProtobufCMessage *m;
        assert_int_equal(rpc_client_call_recv_pb(
                             ctx_background(), call,
                             &grpc__testing__streaming_output_call_response__descriptor,
                             &m), 0);
        assert_int_equal(((Grpc__Testing__StreamingOutputCallResponse *)m)
                             ->payload->body.len, rs[i]);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    assert_int_equal(rpc_client_call_close_send(call), 0);
    assert_int_equal(rpc_client_call_finish(ctx_background(), call), 0);
    rpc_client_call_free(call);
}

static void test_empty_stream(void **state)
{
    rpc_client_call_t *call;
    assert_int_equal(rpc_client_call_start(ctx_background(), ch,
                                           TS "FullDuplexCall", NULL, &call),
                     0);
    assert_int_equal(rpc_client_call_close_send(call), 0);
    void *d;
    size_t n;
    assert_int_equal(rpc_client_call_recv(ctx_background(), call, &d, &n),
                     RPC_ERR_EOF);
    assert_int_equal(rpc_client_call_finish(ctx_background(), call), 0);
    rpc_client_call_free(call);
}

static void test_custom_metadata(void **state)
{
    static uint8_t body[271828];
    static const uint8_t bin[] = {0xab, 0xab, 0xab};
    rpc_metadata_t *md = rpc_metadata_new();
    rpc_metadata_add(md, "x-grpc-test-echo-initial", "test_initial_metadata_value",
                     27);
    rpc_metadata_add(md, "x-grpc-test-echo-trailing-bin", bin, 3);
    Grpc__Testing__Payload p;
    Grpc__Testing__SimpleRequest r = simple_req(314159, sizeof body, &p, body);
    ProtobufCMessage *resp;
    rpc_client_call_t *call;
    int st = rpc_client_unary_pb(ctx_background(), ch, TS "UnaryCall", md,
                                 &r.base,
                                 &grpc__testing__simple_response__descriptor,
                                 &resp, &call);
    assert_int_equal(st, 0);
    protobuf_c_message_free_unpacked(resp, NULL);
    assert_string_equal(md_get(rpc_client_call_headers(ctx_background(), call),
                               "x-grpc-test-echo-initial"),
                        "test_initial_metadata_value");
    size_t n = 0;
    const uint8_t *v = rpc_metadata_find(rpc_client_call_trailers(call),
                                         "x-grpc-test-echo-trailing-bin", &n);
    assert_non_null(v);
    assert_int_equal(n, 3);
    assert_memory_equal(v, bin, 3);
    rpc_client_call_free(call);

    /* The same through a bidi call. */
    assert_int_equal(rpc_client_call_start(ctx_background(), ch,
                                           TS "FullDuplexCall", md, &call), 0);
    assert_int_equal(rpc_client_call_close_send(call), 0);
    assert_int_equal(rpc_client_call_finish(ctx_background(), call), 0);
    assert_string_equal(md_get(rpc_client_call_headers(ctx_background(), call),
                               "x-grpc-test-echo-initial"),
                        "test_initial_metadata_value");
    v = rpc_metadata_find(rpc_client_call_trailers(call),
                          "x-grpc-test-echo-trailing-bin", &n);
    assert_non_null(v);
    assert_memory_equal(v, bin, 3);
    rpc_client_call_free(call);
    rpc_metadata_free(md);
}

static void status_case(const char *text)
{
    Grpc__Testing__EchoStatus es = GRPC__TESTING__ECHO_STATUS__INIT;
    es.code = 2;
    es.message = (char *)text;
    Grpc__Testing__SimpleRequest r = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    r.response_status = &es;
    ProtobufCMessage *resp;
    rpc_client_call_t *call;
    int st = rpc_client_unary_pb(ctx_background(), ch, TS "UnaryCall", NULL,
                                 &r.base,
                                 &grpc__testing__simple_response__descriptor,
                                 &resp, &call);
    assert_int_equal(st, RPC_STATUS_UNKNOWN);
    assert_null(resp);
    assert_string_equal(rpc_client_call_message(call), text);
    rpc_client_call_free(call);
}

static void test_status_and_message(void **state)
{
    status_case("test status message");
    status_case("\t\ntest with whitespace\r\nand Unicode BMP \xe2\x98\xba and "
                "non-BMP \xf0\x9f\x98\x88\t\n");
}

static void test_unimplemented(void **state)
{
    assert_int_equal(rpc_client_unary(ctx_background(), ch,
                                      TS "UnimplementedCall", NULL, NULL, 0,
                                      NULL),
                     RPC_STATUS_UNIMPLEMENTED);
    assert_int_equal(rpc_client_unary(ctx_background(), ch,
                                      "/grpc.testing.UnimplementedService/"
                                      "UnimplementedCall", NULL, NULL, 0,
                                      NULL),
                     RPC_STATUS_UNIMPLEMENTED);
}

/* Asks the fixture how the call tagged `tag` ended (it waits up to 10 s). */
static void expect_event(const char *tag, const char *want1,
                         const char *want2)
{
    rpc_client_call_t *call;
    ctx_t *c = ctx_with_timeout(ctx_background(), 15 * CTX_SECOND);
    int st = rpc_client_unary(c, ch, "/ctxtest.Probe/Events", NULL, tag,
                              strlen(tag), &call);
    assert_int_equal(st, 0);
    size_t n;
    const char *ev = rpc_client_call_response(call, &n);
    if (strcmp(ev, want1) != 0 && (want2 == NULL || strcmp(ev, want2) != 0))
        fail_msg("server saw %s for %s, wanted %s", ev, tag, want1);
    rpc_client_call_free(call);
    ctx_release(c);
}

static rpc_metadata_t *tag_md(const char *tag)
{
    rpc_metadata_t *md = rpc_metadata_new();
    rpc_metadata_add(md, "x-test-id", tag, strlen(tag));
    return md;
}

static void test_deadline(void **state)
{
    const int64_t budget = 300 * CTX_MS;
    rpc_metadata_t *md = tag_md("deadline-1");
    int64_t t0 = ctx_now(); /* before the deadline is set: a preemption
                               in between must not make `took` look short */
    ctx_t *c = ctx_with_timeout(ctx_background(), budget);
    rpc_client_call_t *call;
    int st = rpc_client_unary(c, ch, "/ctxtest.Probe/Sleep", md, "x", 1,
                              &call);
    int64_t took = ctx_now() - t0;
    assert_int_equal(st, RPC_STATUS_DEADLINE_EXCEEDED);
    assert_true(took >= budget - CTX_MS);
    assert_true(took < budget + T_SCALE(2000, 4000) * CTX_MS);
    /* What went on the wire: the remaining time, rounded up, <= 8 digits. */
    const char *sent = rpc_client_call_sent_timeout(call);
    long long v = 0;
    char unit = 0;
    assert_int_equal(sscanf(sent, "%lld%c", &v, &unit), 2);
    assert_true(strlen(sent) <= 9);
    assert_true(unit == 'u' || unit == 'm' || unit == 'n');
    /* What the server saw (sent with the headers, before the deadline). */
    const char *rem = md_get(rpc_client_call_headers(ctx_background(), call),
                             "x-remaining-ms");
    if (rem != NULL) {
        long ms = atol(rem);
        assert_true(ms > 100 && ms <= 300);
    }
    /* The server's own status 4 may win the race with our timer (cause 0
     * then: the context had not ended yet). */
    int cause = rpc_client_call_cause(call);
    assert_true(cause == 0 || cause == CTX_DEADLINE_EXCEEDED);
    rpc_client_call_free(call);
    ctx_release(c);
    rpc_metadata_free(md);
    /* The server observed the end of the call. */
    expect_event("deadline-1", "deadline", "cancelled");
}

static void test_cancel(void **state)
{
    rpc_metadata_t *md = tag_md("cancel-1");
    ctx_t *c = ctx_with_cancel(ctx_background());
    rpc_client_call_t *call;
    assert_int_equal(rpc_client_call_start(c, ch, "/ctxtest.Probe/Sleep", md,
                                           &call), 0);
    assert_int_equal(rpc_client_call_send(c, call, "x", 1), 0);
    assert_int_equal(rpc_client_call_close_send(call), 0);
    /* The handler runs once it has sent its headers. */
    ctx_t *w = ctx_with_timeout(ctx_background(), 10 * CTX_SECOND);
    assert_non_null(rpc_client_call_headers(w, call));
    ctx_release(w);
    /* Still running (the handler waits 30 s): a second half-close is a
     * state error. */
    assert_int_equal(rpc_client_call_close_send(call), RPC_ERR_STATE);
    int64_t t0 = ctx_now();
    ctx_cancel_cause(c, 4242);
    assert_int_equal(rpc_client_call_finish(ctx_background(), call),
                     RPC_STATUS_CANCELLED);
    assert_true(ctx_now() - t0 < 2 * CTX_SECOND);
    assert_int_equal(rpc_client_call_cause(call), 4242);
    rpc_client_call_free(call);
    ctx_release(c);
    rpc_metadata_free(md);
    expect_event("cancel-1", "cancelled", NULL);
}

static void test_expired_sends_nothing(void **state)
{
    /* A fresh channel: if anything were sent it would have to connect. */
    rpc_client_channel_t *c2;
    assert_int_equal(rpc_client_channel_new(fx.target, NULL, &c2), 0);
    ctx_t *c = ctx_with_timeout(ctx_background(), 0);
    rpc_client_call_t *call;
    int st = rpc_client_unary(c, c2, TS "EmptyCall", NULL, NULL, 0, &call);
    assert_int_equal(st, RPC_STATUS_DEADLINE_EXCEEDED);
    assert_string_equal(rpc_client_call_sent_timeout(call), "");
    rpc_client_call_free(call);
    ctx_release(c);
    c = ctx_with_cancel(ctx_background());
    ctx_cancel(c);
    assert_int_equal(rpc_client_unary(c, c2, TS "EmptyCall", NULL, NULL, 0,
                                      NULL), RPC_STATUS_CANCELLED);
    ctx_release(c);
    assert_int_equal(rpc_client_channel_connects(c2), 0);
    rpc_client_channel_free(c2);
}

static void test_propagation(void **state)
{
    /* A request-like context: deadline 2 s, request metadata bound to it,
     * as the server does for each request. */
    ctx_t *req = ctx_with_timeout(ctx_background(), 2 * CTX_SECOND);
    rpc_metadata_t *rmd = rpc_metadata_new();
    rpc_metadata_add(rmd, "x-request-id", "req-77", 6);
    rpc_metadata_add(rmd, "traceparent",
                     "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                     55);
    rpc_metadata_add(rmd, "x-private", "no", 2);
    ctx_t *rc = rpc_ctx_with_metadata(req, rmd);
    assert_non_null(rc);
    ctx_t *child = ctx_with_timeout(rc, 10 * CTX_SECOND); /* later: ignored */

    rpc_client_call_t *call;
    assert_int_equal(rpc_client_unary(child, ch, "/ctxtest.Probe/Echo", NULL,
                                      "hi", 2, &call), 0);
    const rpc_metadata_t *h = rpc_client_call_headers(ctx_background(), call);
    assert_string_equal(md_get(h, "x-request-id"), "req-77");
    assert_non_null(md_get(h, "traceparent"));
    assert_null(md_get(h, "x-private"));
    long ms = atol(md_get(h, "x-remaining-ms"));
    assert_true(ms > 0 && ms <= 2000); /* the remaining time, never more */
    rpc_client_call_free(call);

    /* Detached follow-up work keeps the metadata, drops the deadline. */
    ctx_t *det = ctx_without_cancel(child);
    assert_int_equal(rpc_client_unary(det, ch, "/ctxtest.Probe/Echo", NULL,
                                      "hi", 2, &call), 0);
    h = rpc_client_call_headers(ctx_background(), call);
    assert_string_equal(md_get(h, "x-request-id"), "req-77");
    assert_string_equal(md_get(h, "x-remaining-ms"), "none");
    rpc_client_call_free(call);
    ctx_release(det);

    /* Cancelling upstream resets the downstream stream. */
    rpc_metadata_t *md = tag_md("prop-cancel");
    assert_int_equal(rpc_client_call_start(child, ch, "/ctxtest.Probe/Sleep",
                                           md, &call), 0);
    rpc_client_call_send(child, call, "x", 1);
    rpc_client_call_close_send(call);
    ctx_t *w = ctx_with_timeout(ctx_background(), 10 * CTX_SECOND);
    assert_non_null(rpc_client_call_headers(w, call));
    ctx_release(w);
    ctx_cancel(req);
    assert_int_equal(rpc_client_call_finish(ctx_background(), call),
                     RPC_STATUS_CANCELLED);
    rpc_client_call_free(call);
    rpc_metadata_free(md);
    ctx_release(child);
    ctx_release(rc);
    ctx_release(req);
    expect_event("prop-cancel", "cancelled", NULL);
}

struct async_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, ok, on_loop_bad;
    rpc_client_channel_t *ch;
};

static void async_done(rpc_client_call_t *call, int status, void *ud)
{
    struct async_state *s = ud;
    size_t n = 0;
    const char *r = rpc_client_call_response(call, &n);
    /* Blocking calls are refused on the loop thread. */
    bool refused = rpc_client_call_finish(ctx_background(), call) ==
                   RPC_ERR_STATE;
    pthread_mutex_lock(&s->mu);
    if (status == 0 && n == 4 && memcmp(r, "ping", 4) == 0)
        s->ok++;
    if (!refused)
        s->on_loop_bad++;
    s->done++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void test_async_many(void **state)
{
    enum { N = 64 };
    struct async_state s = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                            0, 0, 0, ch};
    uint64_t before = rpc_client_channel_connects(ch);
    for (int i = 0; i < N; i++)
        assert_int_equal(rpc_client_unary_async(ctx_background(), ch,
                                                "/ctxtest.Probe/Echo", NULL,
                                                "ping", 4, async_done, &s,
                                                NULL), 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 20;
    pthread_mutex_lock(&s.mu);
    while (s.done < N)
        if (pthread_cond_timedwait(&s.cv, &s.mu, &ts) != 0)
            break;
    int done = s.done, ok = s.ok, bad = s.on_loop_bad;
    pthread_mutex_unlock(&s.mu);
    assert_int_equal(done, N);
    assert_int_equal(ok, N);
    assert_int_equal(bad, 0);
    /* All multiplexed on the connection we already had. */
    assert_int_equal(rpc_client_channel_connects(ch), before);
}

static void *blocking_worker(void *arg)
{
    int *ok = arg;
    for (int i = 0; i < 10; i++) {
        rpc_client_call_t *call;
        ctx_t *c = ctx_with_timeout(ctx_background(), 10 * CTX_SECOND);
        if (rpc_client_unary(c, ch, "/ctxtest.Probe/Echo", NULL, "abc", 3,
                             &call) == 0) {
            size_t n;
            const char *r = rpc_client_call_response(call, &n);
            if (n == 3 && memcmp(r, "abc", 3) == 0)
                (*ok)++;
        }
        rpc_client_call_free(call);
        ctx_release(c);
    }
    return NULL;
}

static void test_threads_multiplex(void **state)
{
    enum { T = 6 };
    pthread_t th[T];
    int ok[T] = {0};
    uint64_t before = rpc_client_channel_connects(ch);
    for (int i = 0; i < T; i++)
        pthread_create(&th[i], NULL, blocking_worker, &ok[i]);
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(ok[i], 10);
    }
    assert_int_equal(rpc_client_channel_connects(ch), before);
    assert_int_equal(rpc_client_channel_state(ch), RPC_CLIENT_READY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_unary),
        cmocka_unit_test(test_large_unary),
        cmocka_unit_test(test_server_streaming),
        cmocka_unit_test(test_client_streaming),
        cmocka_unit_test(test_ping_pong),
        cmocka_unit_test(test_empty_stream),
        cmocka_unit_test(test_custom_metadata),
        cmocka_unit_test(test_status_and_message),
        cmocka_unit_test(test_unimplemented),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_expired_sends_nothing),
        cmocka_unit_test(test_propagation),
        cmocka_unit_test(test_async_many),
        cmocka_unit_test(test_threads_multiplex),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
