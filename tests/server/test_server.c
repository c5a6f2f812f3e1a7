/* Tests for server.c and the handler API of server_call.c: lifecycle and
 * option errors, non-blocking handlers completed from another thread,
 * cardinality rules, and back-pressure on a peer that stops reading. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdatomic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

#include "server_fixture.h"

static int noop(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *req,
                void *ud)
{
    return RPC_STATUS_OK;
}

static void test_api_errors(void **state)
{
    const ProtobufCServiceDescriptor *svc = &demo__v1__demo__descriptor;
    rpc_server_t *s = rpc_server_new();
    assert_non_null(s);
    assert_int_equal(rpc_server_set_option(s, RPC_SERVER_LOOP_THREADS, -1), RPC_ERR_INVAL);
    assert_int_equal(rpc_server_set_option(s, (rpc_server_opt_t)999, 1), RPC_ERR_INVAL);
    assert_int_equal(rpc_server_set_option(s, RPC_SERVER_MAX_HEADER_LIST, 10), RPC_ERR_INVAL);
    assert_int_equal(rpc_server_add_method(s, svc, "NoSuch", RPC_UNARY, RPC_BLOCKING,
                                           noop, NULL), RPC_ERR_INVAL);
    assert_int_equal(rpc_server_add_method(s, svc, "Fanout", RPC_UNARY, RPC_BLOCKING,
                                           NULL, NULL), RPC_ERR_INVAL);
    assert_int_equal(rpc_server_add_method(s, svc, "Fanout", RPC_UNARY, RPC_BLOCKING,
                                           noop, NULL), 0);
    assert_int_equal(rpc_server_add_method(s, svc, "Fanout", RPC_UNARY, RPC_BLOCKING,
                                           noop, NULL), RPC_ERR_EXISTS);
    assert_int_equal(rpc_server_start(s), RPC_ERR_STATE); /* no listener */
    assert_int_equal(rpc_server_shutdown(s, 0), RPC_ERR_STATE);
    assert_int_equal(rpc_server_port(s), -1);
    assert_int_equal(rpc_server_listen(s, "127.0.0.1", 70000), RPC_ERR_INVAL);
    assert_int_equal(rpc_server_listen(s, "127.0.0.1", 0), 0);
    int port = rpc_server_port(s);
    assert_true(port > 0);
    /* The same port again: the kernel says no, and we say why. */
    rpc_server_t *s2 = rpc_server_new();
    errno = 0;
    assert_int_equal(rpc_server_listen(s2, "127.0.0.1", port), RPC_ERR_SYSTEM);
    assert_int_equal(errno, EADDRINUSE);
    rpc_server_free(s2);
    assert_int_equal(rpc_server_start(s), 0);
    assert_int_equal(rpc_server_start(s), RPC_ERR_STATE);
    assert_int_equal(rpc_server_set_option(s, RPC_SERVER_LOOP_THREADS, 2), RPC_ERR_STATE);
    assert_int_equal(rpc_server_add_method(s, svc, "Ticks", RPC_SERVER_STREAMING,
                                           RPC_BLOCKING, noop, NULL), RPC_ERR_STATE);
    assert_non_null(rpc_server_ctx(s));
    assert_int_equal(ctx_err(rpc_server_ctx(s)), 0);
    assert_int_equal(rpc_server_shutdown(s, 0), 0);
    assert_int_equal(rpc_server_shutdown(s, 0), 0); /* idempotent */
    assert_int_equal(ctx_cause(rpc_server_ctx(s)), RPC_CAUSE_SHUTDOWN);
    rpc_server_free(s);
    rpc_server_free(NULL);
    assert_string_equal(rpc_cause_text(RPC_CAUSE_PEER_GONE), "peer gone (connection closed)");
    assert_int_equal(rpc_cause_status(RPC_CAUSE_DEADLINE), RPC_STATUS_DEADLINE_EXCEEDED);
    assert_int_equal(rpc_cause_status(RPC_CAUSE_SHUTDOWN), RPC_STATUS_UNAVAILABLE);
    assert_int_equal(rpc_cause_status(RPC_CAUSE_CLIENT_CANCEL), RPC_STATUS_CANCELLED);
}

/* ---- a non-blocking handler finished from another thread ---------------- */

static void *finisher(void *arg)
{
    rpc_call_t *call = arg;
    Demo__V1__FanoutReply rsp = DEMO__V1__FANOUT_REPLY__INIT;
    rsp.tasks_done = 42;
    rpc_call_set_trailer(call, "x-done-bin", "\x00\x01", 2);
    rpc_call_send(call, &rsp.base);
    rpc_call_finish(call, RPC_STATUS_OK, NULL);
    return NULL;
}

static int pending(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *req,
                   void *ud)
{
    pthread_t t;
    pthread_create(&t, NULL, finisher, call);
    pthread_detach(t);
    return RPC_PENDING;
}

static int twice(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *req,
                 void *ud)
{
    Demo__V1__FanoutReply rsp = DEMO__V1__FANOUT_REPLY__INIT;
    int *second = ud;
    rpc_call_send(call, &rsp.base);
    *second = rpc_call_send(call, &rsp.base);
    return RPC_STATUS_OK;
}

/* ---- event-driven bidi calls: no thread held while waiting ------------- */

static atomic_int ev_done, ev_done_cause_ok;

static void ev_message(rpc_call_t *call, ProtobufCMessage *msg, void *ud)
{
    Demo__V1__FanoutRequest *req = (Demo__V1__FanoutRequest *)msg;
    Demo__V1__FanoutReply rsp = DEMO__V1__FANOUT_REPLY__INIT;
    rsp.tasks_done = req->tasks + 1;
    rpc_call_send(call, &rsp.base);
    protobuf_c_message_free_unpacked(msg, NULL);
}

static void ev_half_close(rpc_call_t *call, void *ud)
{
    rpc_call_finish(call, RPC_STATUS_OK, NULL);
}

static void ev_on_done(rpc_call_t *call, void *ud)
{
    if (ctx_cause(rpc_call_ctx(call)) == RPC_CAUSE_CLIENT_CANCEL &&
        ctx_err(rpc_call_ctx(call)) == CTX_CANCELED)
        atomic_fetch_add(&ev_done_cause_ok, 1);
    atomic_fetch_add(&ev_done, 1);
    assert_int_equal(rpc_call_finish(call, RPC_STATUS_CANCELLED, NULL), RPC_ERR_CLOSED);
}

static int ev_reply(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *req,
                    void *ud)
{
    Demo__V1__FanoutReply rsp = DEMO__V1__FANOUT_REPLY__INIT;
    return rpc_call_send(call, &rsp.base) == 0 ? RPC_STATUS_OK
                                                : RPC_STATUS_INTERNAL;
}

static int ev_handler(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *req,
                      void *ud)
{
    static const rpc_call_events_t ev = {ev_message, ev_half_close, NULL,
                                         ev_on_done};
    assert_null(req);
    assert_int_equal(rpc_call_set_events(call, &ev, NULL), 0);
    return RPC_PENDING;
}

static int all_got_reply(h2t_t *c, void *arg)
{
    for (int i = 0; i < c->nstreams; i++)
        if (c->streams[i].data_len < 7)
            return 0;
    return 1;
}

static rpc_server_t *start(const char *method, rpc_method_kind_t kind,
                           rpc_handler_style_t style, rpc_handler_fn fn, void *ud);

/* RPC_SERVER_IDLE_TIMEOUT_MS 0 (never close idle connections): a
 * connection comes and goes without its missing idle timer being freed
 * (that crashed every close; found by fuzz_server_h2). */
static void test_idle_timeout_zero(void **state)
{
    rpc_server_t *s = rpc_server_new();
    rpc_server_set_option(s, RPC_SERVER_LOOP_THREADS, 1);
    assert_int_equal(rpc_server_set_option(s, RPC_SERVER_IDLE_TIMEOUT_MS, 0), 0);
    assert_int_equal(rpc_server_add_method(s, &demo__v1__demo__descriptor,
                                           "Fanout", RPC_UNARY, RPC_NONBLOCKING,
                                           ev_reply, NULL), 0);
    assert_int_equal(rpc_server_listen(s, "127.0.0.1", 0), 0);
    assert_int_equal(rpc_server_start(s), 0);
    for (int k = 0; k < 3; k++)
        assert_int_equal(h2t_unary_status(rpc_server_port(s),
                                          "/demo.v1.Demo/Fanout", 5000),
                         RPC_STATUS_OK);
    for (int k = 0; k < 5000 && rpc_server_stat(s, RPC_STAT_CONNECTIONS) > 0; k++)
        ctx_wait(ctx_background(), CTX_MS);
    assert_int_equal(rpc_server_stat(s, RPC_STAT_CONNECTIONS), 0);
    rpc_server_free(s);
}

static void test_events_bidi(void **state)
{
    /* One worker thread: 50 open bidi calls hold none of it. */
    rpc_server_t *s = start("Fanout", RPC_BIDI_STREAMING, RPC_NONBLOCKING,
                            ev_handler, NULL);
    h2t_t c;
    assert_int_equal(h2t_connect(&c, rpc_server_port(s)), 0);
    /* FanoutRequest{tasks: 41}: the reply says 42. */
    const uint8_t msg[] = {0x08, 41};
    int done = h2t_call(&c, "/demo.v1.Demo/Fanout", msg, sizeof msg, 1, NULL);
    assert_int_equal(h2t_flush(&c), 0);
    assert_int_equal(h2t_run(&c, 5000, h2t_closed, &done), 0);
    assert_int_equal(c.streams[done].grpc_status, RPC_STATUS_OK);
    assert_int_equal(c.streams[done].data_len, 7);
    assert_int_equal(c.streams[done].data[6], 42);
    h2t_close(&c);

    assert_int_equal(h2t_connect(&c, rpc_server_port(s)), 0);
    for (int i = 0; i < 50; i++)
        assert_int_equal(h2t_call(&c, "/demo.v1.Demo/Fanout", msg, sizeof msg, 0,
                                  NULL), i);
    assert_int_equal(h2t_flush(&c), 0);
    assert_int_equal(h2t_run(&c, 5000, all_got_reply, NULL), 0);
    atomic_store(&ev_done, 0);
    atomic_store(&ev_done_cause_ok, 0);
    for (int i = 0; i < 50; i++)
        nghttp2_submit_rst_stream(c.sess, NGHTTP2_FLAG_NONE, c.streams[i].id,
                                  NGHTTP2_CANCEL);
    assert_int_equal(h2t_flush(&c), 0);
    for (int i = 0; i < 5000 && rpc_server_stat(s, RPC_STAT_CALLS_ACTIVE) > 0; i++)
        ctx_wait(ctx_background(), CTX_MS);
    assert_int_equal(rpc_server_stat(s, RPC_STAT_CALLS_ACTIVE), 0);
    assert_int_equal(atomic_load(&ev_done), 50);
    assert_int_equal(atomic_load(&ev_done_cause_ok), 50);
    h2t_close(&c);
    rpc_server_free(s);
}

static rpc_server_t *start(const char *method, rpc_method_kind_t kind,
                           rpc_handler_style_t style, rpc_handler_fn fn, void *ud)
{
    rpc_server_t *s = rpc_server_new();
    rpc_server_set_option(s, RPC_SERVER_LOOP_THREADS, 1);
    rpc_server_set_option(s, RPC_SERVER_WORKER_THREADS, 1);
    rpc_server_set_option(s, RPC_SERVER_SEND_BUFFER, 128 * 1024);
    assert_int_equal(rpc_server_add_method(s, &demo__v1__demo__descriptor, method,
                                           kind, style, fn, ud), 0);
    assert_int_equal(rpc_server_listen(s, "127.0.0.1", 0), 0);
    assert_int_equal(rpc_server_start(s), 0);
    return s;
}

static void test_nonblocking_finish_elsewhere(void **state)
{
    rpc_server_t *s = start("Fanout", RPC_UNARY, RPC_NONBLOCKING, pending, NULL);
    h2t_t c;
    assert_int_equal(h2t_connect(&c, rpc_server_port(s)), 0);
    int i = h2t_call(&c, "/demo.v1.Demo/Fanout", "", 0, 1, NULL);
    strcpy(c.streams[i].trailer_key, "x-done-bin");
    h2t_flush(&c);
    assert_int_equal(h2t_run(&c, 5000, h2t_closed, &i), 0);
    assert_int_equal(c.streams[i].grpc_status, 0);
    /* one message: 5-byte prefix + field 1 varint 42 */
    assert_int_equal(c.streams[i].data_len, 7);
    assert_int_equal(c.streams[i].data[6], 42);
    assert_string_equal(c.streams[i].trailer_val, "AAE"); /* base64, unpadded */
    h2t_close(&c);
    rpc_server_free(s);
}

static void test_unary_cardinality(void **state)
{
    int second = 0;
    rpc_server_t *s = start("Fanout", RPC_UNARY, RPC_BLOCKING, twice, &second);
    h2t_t c;
    assert_int_equal(h2t_connect(&c, rpc_server_port(s)), 0);
    int i = h2t_call(&c, "/demo.v1.Demo/Fanout", "", 0, 1, NULL);
    h2t_flush(&c);
    assert_int_equal(h2t_run(&c, 5000, h2t_closed, &i), 0);
    /* A second response on a unary call fails the call, not OK with a
     * message lost. */
    assert_int_equal(c.streams[i].grpc_status, RPC_STATUS_INTERNAL);
    assert_string_equal(c.streams[i].grpc_message,
                        "handler sent a second response message on a unary call");
    h2t_close(&c);
    rpc_server_free(s); /* joins the handler: `second` is written */
    assert_int_equal(second, RPC_ERR_STATE);

    s = start("Fanout", RPC_UNARY, RPC_BLOCKING, noop, NULL);
    assert_int_equal(h2t_connect(&c, rpc_server_port(s)), 0);
    i = h2t_call(&c, "/demo.v1.Demo/Fanout", "", 0, 1, NULL);
    h2t_flush(&c);
    assert_int_equal(h2t_run(&c, 5000, h2t_closed, &i), 0);
    assert_int_equal(c.streams[i].grpc_status, RPC_STATUS_INTERNAL);
    assert_string_equal(c.streams[i].grpc_message, "handler returned no response");
    h2t_close(&c);
    rpc_server_free(s);
}

/* ---- back-pressure: a client that stops reading ------------------------- */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int sent, result, done;
} bp = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static int flood(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *req,
                 void *ud)
{
    static uint8_t big[64 * 1024];
    Demo__V1__FanoutReply rsp = DEMO__V1__FANOUT_REPLY__INIT;
    rsp.payload.data = big;
    rsp.payload.len = sizeof big;
    int rc;
    while ((rc = rpc_call_send(call, &rsp.base)) == 0) {
        pthread_mutex_lock(&bp.mu);
        bp.sent++;
        pthread_cond_broadcast(&bp.cv);
        pthread_mutex_unlock(&bp.mu);
    }
    pthread_mutex_lock(&bp.mu);
    bp.result = rc;
    bp.done = 1;
    pthread_cond_broadcast(&bp.cv);
    pthread_mutex_unlock(&bp.mu);
    return RPC_STATUS_CANCELLED;
}

static void test_peer_stops_reading(void **state)
{
    rpc_server_t *s = start("Fanout", RPC_SERVER_STREAMING, RPC_BLOCKING, flood, NULL);
    h2t_t c;
    assert_int_equal(h2t_connect(&c, rpc_server_port(s)), 0);
    /* Small receive buffer, and we never read: the HTTP/2 windows and the
     * socket fill up, then the server's send buffer, then the handler
     * blocks in rpc_call_send (it must not queue without bound). */
    int i = h2t_call(&c, "/demo.v1.Demo/Fanout", "", 0, 1, NULL);
    h2t_flush(&c);
    struct timespec ts;
    int last = -1;
    for (;;) { /* wait until the handler stops making progress */
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_mutex_lock(&bp.mu);
        int rc = 0;
        while (bp.sent == last && rc == 0)
            rc = pthread_cond_timedwait(&bp.cv, &bp.mu, &ts);
        int stalled = bp.sent == last;
        last = bp.sent;
        pthread_mutex_unlock(&bp.mu);
        if (stalled)
            break;
        assert_true(last < 1000); /* 64 MiB would mean no back-pressure */
    }
    assert_false(bp.done);
    /* The client gives up: the blocked send returns with the cancel. */
    nghttp2_submit_rst_stream(c.sess, NGHTTP2_FLAG_NONE, c.streams[i].id,
                              NGHTTP2_CANCEL);
    h2t_flush(&c);
    pthread_mutex_lock(&bp.mu);
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    while (!bp.done)
        if (pthread_cond_timedwait(&bp.cv, &bp.mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&bp.mu);
    assert_true(bp.done);
    assert_int_equal(bp.result, RPC_ERR_CANCELED);
    h2t_close(&c);
    rpc_server_free(s);
}

/* ---- inbound flow control: a handler that does not read ----------------- */

static int sit(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *req,
               void *ud)
{
    ctx_wait(ctx, -1); /* never calls rpc_call_recv */
    return rpc_cause_status(ctx_cause(ctx));
}

static size_t flood_sent;

/* An endless byte stream of 1029-byte framed messages (FanoutRequest
 * with a 1021-byte payload), cut wherever the window says. */
static ssize_t flood_read(nghttp2_session *sess, int32_t id, uint8_t *buf,
                          size_t len, uint32_t *flags,
                          nghttp2_data_source *src, void *ud)
{
    static const uint8_t head[8] = {0, 0, 0, 0x04, 0x00, 0x1a, 0xfd, 0x07};
    for (size_t i = 0; i < len; i++) {
        size_t off = (flood_sent + i) % 1029;
        buf[i] = off < sizeof head ? head[off] : 0;
    }
    flood_sent += len;
    return (ssize_t)len;
}

static int stalled(h2t_t *c, void *arg)
{
    return nghttp2_session_get_stream_remote_window_size(c->sess, *(int32_t *)arg) == 0;
}

static void test_inbound_flow_control(void **state)
{
    rpc_server_t *s = start("Fanout", RPC_BIDI_STREAMING, RPC_BLOCKING, sit, NULL);
    h2t_t c;
    assert_int_equal(h2t_connect(&c, rpc_server_port(s)), 0);
    nghttp2_nv nv[] = {
        {(uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
        {(uint8_t *)":authority", (uint8_t *)"x", 10, 1, 0},
        {(uint8_t *)":path", (uint8_t *)"/demo.v1.Demo/Fanout", 5, 20, 0},
        {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, 0},
        {(uint8_t *)"te", (uint8_t *)"trailers", 2, 8, 0},
    };
    nghttp2_data_provider dp = {.read_callback = flood_read};
    int32_t id = nghttp2_submit_request(c.sess, NULL, nv, 6, &dp, NULL);
    assert_true(id > 0);
    h2t_flush(&c);
    /* The server stops opening the stream's window once its queue for the
     * handler is full: the client runs out of window and must stop. */
    assert_int_equal(h2t_run(&c, 5000, stalled, &id), 0);
    size_t at_stall = flood_sent;
    assert_true(at_stall < 4 * 1024 * 1024); /* 1 MiB window + 256 KiB queue */
    nghttp2_submit_rst_stream(c.sess, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    h2t_flush(&c);
    h2t_close(&c);
    rpc_server_free(s);
}

/* ---- graceful drain: double GOAWAY, calls in flight finish ------------- */

static int slow_echo(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *req,
                     void *ud)
{
    if (ctx_wait(ctx, 300 * CTX_MS) != 0)
        return rpc_cause_status(ctx_cause(ctx));
    Demo__V1__FanoutReply rsp = DEMO__V1__FANOUT_REPLY__INIT;
    rsp.tasks_done = 7;
    return rpc_call_send(call, &rsp.base) == 0 ? RPC_STATUS_OK : RPC_STATUS_CANCELLED;
}

static void *shutdown_thread(void *arg)
{
    rpc_server_shutdown(arg, 10 * CTX_SECOND);
    return NULL;
}

static int two_goaways(h2t_t *c, void *arg)
{
    return c->goaway >= 2 && h2t_closed(c, arg);
}

static void test_graceful_drain(void **state)
{
    rpc_server_t *s = start("Fanout", RPC_UNARY, RPC_BLOCKING, slow_echo, NULL);
    h2t_t c;
    assert_int_equal(h2t_connect(&c, rpc_server_port(s)), 0);
    int i = h2t_call(&c, "/demo.v1.Demo/Fanout", "", 0, 1, NULL);
    h2t_flush(&c);
    /* Wait for the server to have the call (its SETTINGS ack is enough of
     * a round trip), then shut down with a generous grace period. */
    while (rpc_server_stat(s, RPC_STAT_CALLS_ACTIVE) == 0)
        h2t_run(&c, 10, NULL, NULL);
    pthread_t t;
    pthread_create(&t, NULL, shutdown_thread, s);
    assert_int_equal(h2t_run(&c, 5000, two_goaways, &i), 0);
    assert_int_equal(c.goaway_last_id[0], 0x7fffffff); /* the notice */
    assert_int_equal(c.goaway_last_id[1], c.streams[i].id); /* the real one */
    assert_int_equal(c.streams[i].grpc_status, 0); /* finished normally */
    assert_int_equal(c.streams[i].data[6], 7);
    pthread_join(t, NULL);
    assert_int_equal(rpc_server_stat(s, RPC_STAT_CANCEL_SHUTDOWN), 0);
    h2t_close(&c);
    rpc_server_free(s);
}

/* ---- health: Watch sees status changes; cancelling it frees it --------- */

static int data_at_least(h2t_t *c, void *arg)
{
    return c->streams[0].data_len >= *(size_t *)arg;
}

static void test_health_watch(void **state)
{
    rpc_server_t *s = rpc_server_new();
    rpc_server_set_option(s, RPC_SERVER_LOOP_THREADS, 1);
    assert_int_equal(rpc_server_add_health(s), 0);
    assert_int_equal(rpc_server_listen(s, "127.0.0.1", 0), 0);
    assert_int_equal(rpc_server_start(s), 0);
    h2t_t c;
    assert_int_equal(h2t_connect(&c, rpc_server_port(s)), 0);
    /* HealthCheckRequest{service: "svc"} */
    int i = h2t_call(&c, "/grpc.health.v1.Health/Watch", "\x0a\x03svc", 5, 1, NULL);
    h2t_flush(&c);
    size_t want = 7; /* prefix + {status: SERVICE_UNKNOWN} */
    assert_int_equal(h2t_run(&c, 5000, data_at_least, &want), 0);
    assert_int_equal(c.streams[i].data[6], 3);
    assert_int_equal(rpc_server_set_health(s, "svc", RPC_HEALTH_SERVING), 0);
    want = 14;
    assert_int_equal(h2t_run(&c, 5000, data_at_least, &want), 0);
    assert_int_equal(c.streams[i].data[13], 1);
    assert_int_equal(rpc_server_set_health(s, "svc", RPC_HEALTH_SERVING), 0); /* no change */
    assert_int_equal(rpc_server_set_health(s, "svc", RPC_HEALTH_NOT_SERVING), 0);
    want = 21;
    assert_int_equal(h2t_run(&c, 5000, data_at_least, &want), 0);
    assert_int_equal(c.streams[i].data[20], 2);
    /* The client goes away: the watcher ends (AfterFunc) and is freed. */
    nghttp2_submit_rst_stream(c.sess, NGHTTP2_FLAG_NONE, c.streams[i].id, NGHTTP2_CANCEL);
    h2t_flush(&c);
    for (int k = 0; k < 500 && rpc_server_stat(s, RPC_STAT_CALLS_ACTIVE) > 0; k++)
        h2t_run(&c, 10, NULL, NULL);
    assert_int_equal(rpc_server_stat(s, RPC_STAT_CALLS_ACTIVE), 0);
    assert_int_equal(rpc_server_set_health(s, NULL, RPC_HEALTH_SERVING), RPC_ERR_INVAL);
    h2t_close(&c);
    rpc_server_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_errors),
        cmocka_unit_test(test_nonblocking_finish_elsewhere),
        cmocka_unit_test(test_unary_cardinality),
        cmocka_unit_test(test_events_bidi),
        cmocka_unit_test(test_idle_timeout_zero),
        cmocka_unit_test(test_peer_stops_reading),
        cmocka_unit_test(test_inbound_flow_control),
        cmocka_unit_test(test_graceful_drain),
        cmocka_unit_test(test_health_watch),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ctx_shutdown();
    return rc;
}
