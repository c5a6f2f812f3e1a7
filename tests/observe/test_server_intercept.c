/* Tests for server_intercept.c, server_metrics.c and server_accesslog.c:
 * the interceptor chain's order, a refusal with a clear status (unary,
 * and bidi at its headers), an
 * out-of-range status from an interceptor, on_end for every call with its
 * final status and cause (completion, refusal, deadline, client cancel),
 * and the same calls as /metrics and the access log count them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <rpc/server.h>

#include "demo/v1/demo.pb-c.h"
#include "h2_test_client.h"
#include "obs_test_util.h"

#include <fcntl.h>

struct st {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char order[256];      /* "A+B+C+C-B-A-" ... */
    int handlers;         /* handlers that ran */
    int ends;             /* on_end calls of interceptor A */
    int last_status[16], last_cause[16];
    int dispatched[16];
    uint64_t bytes_out[16];
};

static struct st G;

static void note(const char *s)
{
    pthread_mutex_lock(&G.mu);
    strncat(G.order, s, sizeof G.order - strlen(G.order) - 1);
    pthread_mutex_unlock(&G.mu);
}

static int a_start(const rpc_server_call_info_t *i, void *ud)
{
    note("A+");
    return 0;
}
static void a_end(const rpc_server_call_info_t *i, void *ud)
{
    note("A-");
    pthread_mutex_lock(&G.mu);
    if (G.ends < 16) {
        G.last_status[G.ends] = i->status;
        G.last_cause[G.ends] = i->cause;
        G.dispatched[G.ends] = i->dispatched;
        G.bytes_out[G.ends] = i->bytes_out;
    }
    G.ends++;
    pthread_cond_broadcast(&G.cv);
    pthread_mutex_unlock(&G.mu);
}
/* B: auth.  Refuses without "authorization: Bearer good". */
static int b_start(const rpc_server_call_info_t *i, void *ud)
{
    note("B+");
    const char *tok = rpc_metadata_get(i->ctx, "authorization", NULL);
    if (tok == NULL || strcmp(tok, "Bearer good") != 0) {
        rpc_call_set_status_message(i->call, "missing or bad token");
        return RPC_STATUS_UNAUTHENTICATED;
    }
    return 0;
}
static void b_end(const rpc_server_call_info_t *i, void *ud) { note("B-"); }
/* C: returns a status out of range when asked to (x-break). */
static int c_start(const rpc_server_call_info_t *i, void *ud)
{
    note("C+");
    return rpc_metadata_get(i->ctx, "x-break", NULL) ? 1234 : 0;
}
static void c_end(const rpc_server_call_info_t *i, void *ud) { note("C-"); }

/* Replies at once, or waits for its context when sleep_ms > 0. */
static int fanout(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *req,
                  void *ud)
{
    const Demo__V1__FanoutRequest *r = (const Demo__V1__FanoutRequest *)req;
    pthread_mutex_lock(&G.mu);
    G.handlers++;
    pthread_cond_broadcast(&G.cv);
    pthread_mutex_unlock(&G.mu);
    if (r->sleep_ms > 0) {
        ctx_wait(ctx, -1);
        return rpc_cause_status(ctx_cause(ctx));
    }
    Demo__V1__FanoutReply rep = DEMO__V1__FANOUT_REPLY__INIT;
    rep.tasks_done = 7;
    rpc_call_send(call, &rep.base);
    return RPC_STATUS_OK;
}

/* Bidi (Ticks registered as RPC_BIDI_STREAMING): one Tick per request
 * message until the client half-closes. */
static int bidi(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *req, void *ud)
{
    pthread_mutex_lock(&G.mu);
    G.handlers++;
    pthread_cond_broadcast(&G.cv);
    pthread_mutex_unlock(&G.mu);
    ProtobufCMessage *m;
    int n = 0, rc;
    while ((rc = rpc_call_recv(call, &m)) == 0) {
        protobuf_c_message_free_unpacked(m, NULL);
        Demo__V1__Tick t = DEMO__V1__TICK__INIT;
        t.seq = ++n;
        rpc_call_send(call, &t.base);
    }
    return rc == RPC_ERR_EOF ? RPC_STATUS_OK : rpc_cause_status(ctx_cause(ctx));
}

static rpc_server_t *srv;
static int port, log_fd;
static char log_path[64];

static int setup(void **state)
{
    memset(&G, 0, sizeof G);
    pthread_mutex_init(&G.mu, NULL);
    pthread_cond_init(&G.cv, NULL);
    srv = rpc_server_new();
    rpc_server_set_option(srv, RPC_SERVER_LOOP_THREADS, 2);
    rpc_server_set_option(srv, RPC_SERVER_WORKER_THREADS, 4);
    assert_int_equal(rpc_server_add_method(srv, &demo__v1__demo__descriptor, "Fanout",
                                           RPC_UNARY, RPC_BLOCKING, fanout, NULL), 0);
    assert_int_equal(rpc_server_add_method(srv, &demo__v1__demo__descriptor, "Ticks",
                                           RPC_BIDI_STREAMING, RPC_BLOCKING, bidi, NULL),
                     0);
    rpc_server_interceptor_t a = {a_start, a_end}, b = {b_start, b_end},
                             c = {c_start, c_end};
    assert_int_equal(rpc_server_add_interceptor(srv, &a, NULL), 0);
    assert_int_equal(rpc_server_add_interceptor(srv, &b, NULL), 0);
    assert_int_equal(rpc_server_add_interceptor(srv, &c, NULL), 0);
    snprintf(log_path, sizeof log_path, "/tmp/obs-alog-%d.jsonl", (int)getpid());
    log_fd = open(log_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(log_fd >= 0);
    assert_int_equal(rpc_server_enable_access_log(srv, log_fd), 0);
    assert_int_equal(rpc_server_enable_access_log(srv, log_fd), RPC_ERR_STATE);
    assert_int_equal(rpc_server_admin_port(srv), -1);
    assert_int_equal(rpc_server_enable_admin(srv, NULL, 0), 0);
    assert_true(rpc_server_admin_port(srv) > 0);
    assert_int_equal(rpc_server_listen(srv, "127.0.0.1", 0), 0);
    assert_int_equal(rpc_server_start(srv), 0);
    port = rpc_server_port(srv);
    /* Configuration is closed once running. */
    assert_int_equal(rpc_server_add_interceptor(srv, &a, NULL), RPC_ERR_STATE);
    return 0;
}

static int teardown(void **state)
{
    rpc_server_free(srv);
    close(log_fd);
    unlink(log_path);
    ctx_shutdown();
    return 0;
}

static size_t pack(int sleep_ms, uint8_t *buf)
{
    Demo__V1__FanoutRequest r = DEMO__V1__FANOUT_REQUEST__INIT;
    r.sleep_ms = sleep_ms;
    return demo__v1__fanout_request__pack(&r, buf);
}

static void wait_ends(int n)
{
    assert_int_equal(obs_wait_int(&G.mu, &G.cv, &G.ends, n, 5000), 0);
}

static void test_chain(void **state)
{
    h2t_t c;
    uint8_t body[32];
    size_t len = pack(0, body);
    assert_int_equal(h2t_connect(&c, port), 0);

    /* 1: accepted: every on_start in order, the handler, every on_end in
     * reverse order. */
    int s1 = h2t_call(&c, "/demo.v1.Demo/Fanout", body, len, 1, "authorization",
                      "Bearer good", "x-request-id", "ok-1", "traceparent",
                      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", NULL);
    assert_int_equal(h2t_flush(&c), 0);
    assert_int_equal(h2t_run(&c, 5000, h2t_closed, &s1), 0);
    assert_int_equal(c.streams[s1].grpc_status, RPC_STATUS_OK);
    wait_ends(1);
    pthread_mutex_lock(&G.mu);
    assert_string_equal(G.order, "A+B+C+C-B-A-");
    assert_int_equal(G.handlers, 1);
    assert_int_equal(G.last_status[0], RPC_STATUS_OK);
    assert_int_equal(G.last_cause[0], RPC_CAUSE_FINISHED);
    assert_true(G.dispatched[0]);
    assert_true(G.bytes_out[0] > 5); /* one framed reply */
    G.order[0] = '\0';
    pthread_mutex_unlock(&G.mu);

    /* 2: refused by B: C's on_start and the handler never run, the client
     * gets B's status and message, every on_end still runs. */
    int s2 = h2t_call(&c, "/demo.v1.Demo/Fanout", body, len, 1, "x-request-id",
                      "de\"nied\\2", NULL); /* escaped in the log */
    assert_int_equal(h2t_flush(&c), 0);
    assert_int_equal(h2t_run(&c, 5000, h2t_closed, &s2), 0);
    assert_int_equal(c.streams[s2].grpc_status, RPC_STATUS_UNAUTHENTICATED);
    assert_string_equal(c.streams[s2].grpc_message, "missing or bad token");
    wait_ends(2);
    pthread_mutex_lock(&G.mu);
    assert_string_equal(G.order, "A+B+C-B-A-");
    assert_int_equal(G.handlers, 1);
    assert_int_equal(G.last_status[1], RPC_STATUS_UNAUTHENTICATED);
    assert_false(G.dispatched[1]);
    G.order[0] = '\0';
    pthread_mutex_unlock(&G.mu);

    /* 3: an interceptor's out-of-range status is answered UNKNOWN. */
    int s3 = h2t_call(&c, "/demo.v1.Demo/Fanout", body, len, 1, "authorization",
                      "Bearer good", "x-break", "1", NULL);
    assert_int_equal(h2t_flush(&c), 0);
    assert_int_equal(h2t_run(&c, 5000, h2t_closed, &s3), 0);
    assert_int_equal(c.streams[s3].grpc_status, RPC_STATUS_UNKNOWN);
    wait_ends(3);
    pthread_mutex_lock(&G.mu);
    assert_string_equal(G.order, "A+B+C+C-B-A-");
    assert_int_equal(G.handlers, 1);
    G.order[0] = '\0';
    pthread_mutex_unlock(&G.mu);

    /* 4: deadline: on_end sees DEADLINE_EXCEEDED and its cause. */
    len = pack(60000, body);
    int s4 = h2t_call(&c, "/demo.v1.Demo/Fanout", body, len, 1, "authorization",
                      "Bearer good", "grpc-timeout", "100m", "x-request-id", "dl-4",
                      NULL);
    assert_int_equal(h2t_flush(&c), 0);
    assert_int_equal(h2t_run(&c, 5000, h2t_closed, &s4), 0);
    assert_int_equal(c.streams[s4].grpc_status, RPC_STATUS_DEADLINE_EXCEEDED);
    wait_ends(4);
    pthread_mutex_lock(&G.mu);
    assert_int_equal(G.last_status[3], RPC_STATUS_DEADLINE_EXCEEDED);
    assert_int_equal(G.last_cause[3], RPC_CAUSE_DEADLINE);
    pthread_mutex_unlock(&G.mu);

    /* 5: client cancel (RST_STREAM once the handler runs). */
    int s5 = h2t_call(&c, "/demo.v1.Demo/Fanout", body, len, 1, "authorization",
                      "Bearer good", "x-request-id", "rst-5", NULL);
    assert_int_equal(h2t_flush(&c), 0);
    assert_int_equal(obs_wait_int(&G.mu, &G.cv, &G.handlers, 3, 5000), 0);
    nghttp2_submit_rst_stream(c.sess, NGHTTP2_FLAG_NONE, c.streams[s5].id,
                              NGHTTP2_CANCEL);
    assert_int_equal(h2t_flush(&c), 0);
    wait_ends(5);
    pthread_mutex_lock(&G.mu);
    assert_int_equal(G.last_status[4], RPC_STATUS_CANCELLED);
    assert_int_equal(G.last_cause[4], RPC_CAUSE_CLIENT_CANCEL);
    pthread_mutex_unlock(&G.mu);
    h2t_close(&c);

    /* /metrics counts the same five calls. */
    int code = 0;
    char *m = obs_http_get(rpc_server_admin_port(srv), "/metrics", &code, 5000);
    assert_non_null(m);
    assert_int_equal(code, 200);
#define L "grpc_type=\"unary\",grpc_service=\"demo.v1.Demo\",grpc_method=\"Fanout\""
    assert_true(obs_sample(m, "grpc_server_started_total{" L "}") == 5);
    assert_true(obs_sample(m, "grpc_server_handled_total{" L ",grpc_code=\"OK\"}") == 1);
    assert_true(obs_sample(m, "grpc_server_handled_total{" L
                              ",grpc_code=\"Unauthenticated\"}") == 1);
    assert_true(obs_sample(m, "grpc_server_handled_total{" L ",grpc_code=\"Unknown\"}") == 1);
    assert_true(obs_sample(m, "grpc_server_handled_total{" L
                              ",grpc_code=\"DeadlineExceeded\"}") == 1);
    assert_true(obs_sample(m, "grpc_server_handled_total{" L ",grpc_code=\"Canceled\"}") == 1);
    assert_true(obs_sample(m, "grpc_server_handled_total{" L ",grpc_code=\"NotFound\"}") == 0);
    assert_true(obs_sample(m, "grpc_server_msg_received_total{" L "}") == 5);
    assert_true(obs_sample(m, "grpc_server_msg_sent_total{" L "}") == 1);
    assert_true(obs_sample(m, "grpc_server_handling_seconds_count{" L "}") == 5);
    assert_true(obs_sample(m, "grpc_server_handling_seconds_bucket{" L ",le=\"+Inf\"}") == 5);
    assert_true(obs_sample(m, "rpc_server_cancellations_total{cause=\"deadline\"}") == 1);
    assert_true(obs_sample(m, "rpc_server_cancellations_total{cause=\"client_cancel\"}") == 1);
    assert_true(obs_sample(m, "rpc_server_cancellations_total{cause=\"shutdown\"}") == 0);
    /* one call carried a grpc-timeout, of 100 ms: bucket le=0.1 */
    assert_true(obs_sample(m, "rpc_server_deadline_remaining_seconds_bucket{le=\"0.05\"}") == 0);
    assert_true(obs_sample(m, "rpc_server_deadline_remaining_seconds_bucket{le=\"0.1\"}") == 1);
    assert_true(obs_sample(m, "rpc_server_deadline_remaining_seconds_count") == 1);
    assert_non_null(strstr(m, "# TYPE grpc_server_handling_seconds histogram\n"));
    free(m);
    m = obs_http_get(rpc_server_admin_port(srv), "/nothing", &code, 5000);
    assert_non_null(m);
    assert_int_equal(code, 404);
    free(m);
}

static char *read_log(void)
{
    FILE *f = fopen(log_path, "r");
    if (f == NULL)
        return NULL;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Streaming: a bidi call is intercepted at its headers (before any
 * message); a refusal there answers at once, and an accepted call's
 * messages are counted both ways. */
static void test_bidi(void **state)
{
    h2t_t c;
    Demo__V1__TickRequest tr = DEMO__V1__TICK_REQUEST__INIT;
    tr.count = 1;
    uint8_t body[16];
    size_t len = demo__v1__tick_request__pack(&tr, body);
    pthread_mutex_lock(&G.mu);
    int ends0 = G.ends, handlers0 = G.handlers;
    G.order[0] = '\0';
    pthread_mutex_unlock(&G.mu);
    assert_int_equal(h2t_connect(&c, port), 0);
    int s1 = h2t_call(&c, "/demo.v1.Demo/Ticks", body, len, 1, "x-request-id", "bidi-denied",
                      NULL);
    assert_int_equal(h2t_flush(&c), 0);
    assert_int_equal(h2t_run(&c, 5000, h2t_closed, &s1), 0);
    assert_int_equal(c.streams[s1].grpc_status, RPC_STATUS_UNAUTHENTICATED);
    assert_string_equal(c.streams[s1].grpc_message, "missing or bad token");
    assert_int_equal(obs_wait_int(&G.mu, &G.cv, &G.ends, ends0 + 1, 5000), 0);
    pthread_mutex_lock(&G.mu);
    assert_string_equal(G.order, "A+B+C-B-A-");
    assert_int_equal(G.handlers, handlers0);
    G.order[0] = '\0';
    pthread_mutex_unlock(&G.mu);

    int s2 = h2t_call(&c, "/demo.v1.Demo/Ticks", body, len, 1, "authorization",
                      "Bearer good", "x-request-id", "bidi-ok", NULL);
    assert_int_equal(h2t_flush(&c), 0);
    assert_int_equal(h2t_run(&c, 5000, h2t_closed, &s2), 0);
    assert_int_equal(c.streams[s2].grpc_status, RPC_STATUS_OK);
    assert_int_equal(obs_wait_int(&G.mu, &G.cv, &G.ends, ends0 + 2, 5000), 0);
    pthread_mutex_lock(&G.mu);
    assert_string_equal(G.order, "A+B+C+C-B-A-");
    assert_int_equal(G.handlers, handlers0 + 1);
    pthread_mutex_unlock(&G.mu);
    h2t_close(&c);

    int code = 0;
    char *m = obs_http_get(rpc_server_admin_port(srv), "/metrics", &code, 5000);
    assert_non_null(m);
#define B "grpc_type=\"bidi_stream\",grpc_service=\"demo.v1.Demo\",grpc_method=\"Ticks\""
    assert_true(obs_sample(m, "grpc_server_started_total{" B "}") == 2);
    assert_true(obs_sample(m, "grpc_server_handled_total{" B ",grpc_code=\"OK\"}") == 1);
    assert_true(obs_sample(m, "grpc_server_handled_total{" B
                              ",grpc_code=\"Unauthenticated\"}") == 1);
    /* the accepted call's message (the refused one's is dropped unread) */
    assert_true(obs_sample(m, "grpc_server_msg_received_total{" B "}") == 1);
    assert_true(obs_sample(m, "grpc_server_msg_sent_total{" B "}") == 1);
    free(m);
}

/* The access log: one JSON line per call, from the writer thread. */
static void test_log_lines(void **state)
{
    /* Bounded wait for the writer (it writes within ~20 ms). */
    char *t = NULL;
    for (int i = 0; i < 1000; i++) {
        t = read_log();
        if (t && obs_count(t, "\n") >= 7)
            break;
        struct pollfd none;
        poll(&none, 0, 5);
    }
    assert_non_null(t);
    assert_int_equal(obs_count(t, "\n"), 7);
    assert_int_equal(obs_count(t, "\"side\":\"server\""), 7);
    assert_non_null(strstr(t, "\"request_id\":\"bidi-ok\",\"trace_id\":\"\",\"span_id\":\"\","
                              "\"parent_span_id\":\"\",\"bytes_in\":"));
    assert_non_null(strstr(t, "\"request_id\":\"ok-1\""));
    assert_non_null(strstr(t, "\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\","
                              "\"span_id\":\"00f067aa0ba902b7\""));
    assert_non_null(strstr(t, "\"status\":\"Unauthenticated\",\"cause\":\"finished\","
                              "\"message\":\"missing or bad token\""));
    assert_non_null(strstr(t, "\"code\":4,\"status\":\"DeadlineExceeded\",\"cause\":"
                              "\"deadline\""));
    assert_non_null(strstr(t, "\"deadline_ms\":100.000"));
    assert_non_null(strstr(t, "\"cause\":\"client_cancel\""));
    assert_non_null(strstr(t, "\"method\":\"/demo.v1.Demo/Fanout\""));
    assert_non_null(strstr(t, "\"request_id\":\"de\\\"nied\\\\2\""));
    assert_int_equal(rpc_server_access_log_dropped(srv), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain),
        cmocka_unit_test(test_bidi),
        cmocka_unit_test(test_log_lines),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
