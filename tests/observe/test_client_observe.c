/* Tests for client_observe.c: a new span per hop (the propagated
 * traceparent keeps its trace id and gets a fresh parent-id that the
 * server sees), the observer's grpc_client_* metrics and interceptor
 * order, a call refused by a client interceptor (never sent), and the
 * client's access-log lines naming both spans; then the
 * same observer's text served through a server's /metrics
 * (rpc_server_admin_add_metrics). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <rpc/client.h>
#include <rpc/server.h>

#include "demo/v1/demo.pb-c.h"
#include "obs_test_util.h"

#include <fcntl.h>

#define TRACE "4bf92f3577b34da6a3ce929d0e0e4736"
#define SPAN "00f067aa0ba902b7"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static char seen_tp[128];
static char order[64];
static int ends;

static int handler(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *req, void *ud)
{
    const char *tp = rpc_metadata_get(ctx, "traceparent", NULL);
    pthread_mutex_lock(&mu);
    snprintf(seen_tp, sizeof seen_tp, "%s", tp ? tp : "");
    pthread_mutex_unlock(&mu);
    Demo__V1__FanoutReply rep = DEMO__V1__FANOUT_REPLY__INIT;
    rpc_call_send(call, &rep.base);
    return RPC_STATUS_OK;
}

static int on_start(const rpc_client_call_info_t *i, void *ud)
{
    pthread_mutex_lock(&mu);
    strcat(order, (const char *)ud);
    strcat(order, "+");
    pthread_mutex_unlock(&mu);
    /* A refuses calls whose context carries x-deny. */
    if (strcmp(ud, "A") == 0 && rpc_metadata_get(i->ctx, "x-deny", NULL))
        return RPC_STATUS_PERMISSION_DENIED;
    return 0;
}
static void on_end(const rpc_client_call_info_t *i, void *ud)
{
    pthread_mutex_lock(&mu);
    strcat(order, (const char *)ud);
    strcat(order, "-");
    if (strcmp(ud, "A") == 0) {
        ends++;
        pthread_cond_broadcast(&cv);
    }
    pthread_mutex_unlock(&mu);
}

static void test_span_per_hop(void **state)
{
    rpc_server_t *s = rpc_server_new();
    rpc_server_set_option(s, RPC_SERVER_LOOP_THREADS, 1);
    rpc_server_set_option(s, RPC_SERVER_WORKER_THREADS, 2);
    assert_int_equal(rpc_server_add_method(s, &demo__v1__demo__descriptor, "Fanout",
                                           RPC_UNARY, RPC_BLOCKING, handler, NULL), 0);
    assert_int_equal(rpc_server_enable_admin(s, NULL, 0), 0);
    rpc_client_observer_t *ob = rpc_client_observer_new();
    assert_non_null(ob);
    assert_int_equal(rpc_server_admin_add_metrics(s, rpc_client_observer_metrics, ob), 0);
    assert_int_equal(rpc_server_listen(s, "127.0.0.1", 0), 0);
    assert_int_equal(rpc_server_start(s), 0);

    rpc_client_interceptor_t ic = {on_start, on_end};
    assert_int_equal(rpc_client_observer_add_interceptor(ob, &ic, "A"), 0);
    assert_int_equal(rpc_client_observer_add_interceptor(ob, &ic, "B"), 0);
    char path[64];
    snprintf(path, sizeof path, "/tmp/obs-clog-%d.jsonl", (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(rpc_client_observer_enable_access_log(ob, fd), 0);
    rpc_client_options_t *o = rpc_client_options_new();
    assert_int_equal(rpc_client_options_set_observer(o, ob), 0);
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%d", rpc_server_port(s));
    rpc_client_channel_t *ch;
    assert_int_equal(rpc_client_channel_new(target, o, &ch), 0);
    rpc_client_options_free(o);

    /* The context carries an upstream request's metadata, as a gateway's
     * handler context does. */
    rpc_metadata_t *md = rpc_metadata_new();
    rpc_metadata_add(md, "traceparent", "00-" TRACE "-" SPAN "-01", 55);
    rpc_metadata_add(md, "x-request-id", "hop-1", 5);
    ctx_t *up = rpc_ctx_with_metadata(ctx_background(), md);
    ctx_t *ctx = ctx_with_timeout(up, 5 * CTX_SECOND);
    rpc_client_call_t *call = NULL;
    int st = rpc_client_unary(ctx, ch, "/demo.v1.Demo/Fanout", NULL, "", 0, &call);
    assert_int_equal(st, RPC_STATUS_OK);
    rpc_client_call_free(call);
    assert_int_equal(obs_wait_int(&mu, &cv, &ends, 1, 5000), 0);

    pthread_mutex_lock(&mu);
    /* Same trace, same flags, a new 16-hex span that is not the upstream's. */
    assert_int_equal(strlen(seen_tp), 55);
    assert_memory_equal(seen_tp, "00-" TRACE "-", 36);
    assert_string_equal(seen_tp + 52, "-01");
    assert_memory_not_equal(seen_tp + 36, SPAN, 16);
    char span[17];
    memcpy(span, seen_tp + 36, 16);
    span[16] = '\0';
    assert_string_equal(order, "A+B+B-A-");
    pthread_mutex_unlock(&mu);

    char *m = NULL;
    int code = 0;
    m = obs_http_get(rpc_server_admin_port(s), "/metrics", &code, 5000);
    assert_non_null(m);
#define L "grpc_type=\"unary\",grpc_service=\"demo.v1.Demo\",grpc_method=\"Fanout\""
    assert_true(obs_sample(m, "grpc_client_started_total{" L "}") == 1);
    assert_true(obs_sample(m, "grpc_client_handled_total{" L ",grpc_code=\"OK\"}") == 1);
    assert_true(obs_sample(m, "grpc_client_msg_sent_total{" L "}") == 1);
    assert_true(obs_sample(m, "grpc_client_msg_received_total{" L "}") == 1);
    assert_true(obs_sample(m, "grpc_client_handling_seconds_count{" L "}") == 1);
    assert_true(obs_sample(m, "grpc_server_started_total{" L "}") == 1);
    free(m);

    /* Refused by the client's interceptor A: B's on_start is skipped, the
     * call fails locally, the server never sees it, every on_end runs. */
    pthread_mutex_lock(&mu);
    order[0] = '\0';
    pthread_mutex_unlock(&mu);
    rpc_metadata_t *dmd = rpc_metadata_new();
    rpc_metadata_add(dmd, "x-deny", "1", 1);
    ctx_t *deny = rpc_ctx_with_metadata(ctx, dmd);
    st = rpc_client_unary(deny, ch, "/demo.v1.Demo/Fanout", NULL, "", 0, &call);
    assert_int_equal(st, RPC_STATUS_PERMISSION_DENIED);
    assert_string_equal(rpc_client_call_message(call), "refused by a client interceptor");
    rpc_client_call_free(call);
    assert_int_equal(obs_wait_int(&mu, &cv, &ends, 2, 5000), 0);
    pthread_mutex_lock(&mu);
    assert_string_equal(order, "A+B-A-");
    pthread_mutex_unlock(&mu);
    m = obs_http_get(rpc_server_admin_port(s), "/metrics", &code, 5000);
    assert_non_null(m);
    assert_true(obs_sample(m, "grpc_server_started_total{" L "}") == 1);
    assert_true(obs_sample(m, "grpc_client_handled_total{" L
                              ",grpc_code=\"PermissionDenied\"}") == 1);
    free(m);
    ctx_release(deny);

    rpc_client_channel_free(ch);
    rpc_client_observer_free(ob); /* writes the log out */
    char buf[4096];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_int_equal(obs_count(buf, "\n"), 2);
    assert_non_null(strstr(buf, "\"side\":\"client\""));
    assert_non_null(strstr(buf, "\"request_id\":\"hop-1\""));
    char want[160];
    snprintf(want, sizeof want, "\"trace_id\":\"" TRACE "\",\"span_id\":\"%s\","
             "\"parent_span_id\":\"" SPAN "\"", span);
    assert_non_null(strstr(buf, want));
    assert_non_null(strstr(buf, "\"status\":\"OK\""));
    close(fd);
    unlink(path);
    ctx_release(ctx);
    ctx_release(up);
    rpc_server_free(s);
    ctx_shutdown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_span_per_hop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
