/*
 * test_client_bad.c -- the client against bad peers: nothing listening, a
 * listener that never answers, and fixtures/node_bad_server.js (Node's
 * built-in http2; one misbehaviour per path).  Each must end in a clear
 * status, within a bound, with no leak (run under ASan) and with the
 * channel still usable afterwards.  Also: the exact grpc-timeout a peer
 * receives, reconnecting after a lost connection, GOAWAY, and destroying a
 * channel under in-flight calls.
 */
#include "client_test_util.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

static fixture_t fx;
static rpc_client_channel_t *ch;

static int setup(void **state)
{
    char *argv[] = {NODE_BIN, FIXTURE_DIR "/node_bad_server.js", NULL};
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

/* One unary call with a timeout; returns the status, message copied. */
static int call_path(rpc_client_channel_t *c, const char *path,
                     int64_t timeout, char *msg, size_t cap,
                     rpc_client_call_t **out)
{
    ctx_t *x = ctx_with_timeout(ctx_background(), timeout);
    rpc_client_call_t *call = NULL;
    int st = rpc_client_unary(x, c, path, NULL, "q", 1, &call);
    if (msg)
        snprintf(msg, cap, "%s", call ? rpc_client_call_message(call) : "");
    if (out)
        *out = call;
    else
        rpc_client_call_free(call);
    ctx_release(x);
    return st;
}

static void expect(const char *path, int want)
{
    char msg[256];
    int64_t t0 = ctx_now();
    int st = call_path(ch, path, 5 * CTX_SECOND, msg, sizeof msg, NULL);
    if (st != want)
        fail_msg("%s: status %s (%s), wanted %s", path, rpc_status_name(st),
                 msg, rpc_status_name(want));
    assert_true(ctx_now() - t0 < 4 * CTX_SECOND); /* not by the deadline */
    /* A reason is given (the server's own UNIMPLEMENTED may have none). */
    assert_true(msg[0] != 0 || want == RPC_STATUS_UNIMPLEMENTED);
}

static void test_unreachable(void **state)
{
    char target[64], msg[256];
    snprintf(target, sizeof target, "127.0.0.1:%d", fx_closed_port());
    rpc_client_options_t *o = rpc_client_options_new();
    /* A backoff long enough that the second call surely lands inside it,
     * even on a loaded machine. */
    rpc_client_options_set_backoff(o, 2 * CTX_SECOND, 4 * CTX_SECOND, 2.0, 0.0);
    rpc_client_channel_t *c;
    assert_int_equal(rpc_client_channel_new(target, o, &c), 0);
    int64_t t0 = ctx_now();
    assert_int_equal(call_path(c, "/x.Y/Z", 5 * CTX_SECOND, msg, sizeof msg,
                               NULL), RPC_STATUS_UNAVAILABLE);
    assert_non_null(strstr(msg, "refused"));
    /* During the backoff: fail fast, without another attempt. */
    assert_int_equal(call_path(c, "/x.Y/Z", 5 * CTX_SECOND, msg, sizeof msg,
                               NULL), RPC_STATUS_UNAVAILABLE);
    assert_non_null(strstr(msg, "backing off"));
    assert_true(ctx_now() - t0 < 2 * CTX_SECOND);
    assert_int_equal(rpc_client_channel_state(c),
                     RPC_CLIENT_TRANSIENT_FAILURE);
    rpc_client_channel_free(c);

    /* Wait-for-ready: calls wait through the retries until their
     * deadline. */
    rpc_client_options_set_backoff(o, 200 * CTX_MS, 400 * CTX_MS, 2.0, 0.0);
    rpc_client_options_set_wait_for_ready(o, true);
    assert_int_equal(rpc_client_channel_new(target, o, &c), 0);
    t0 = ctx_now();
    assert_int_equal(call_path(c, "/x.Y/Z", 700 * CTX_MS, msg, sizeof msg,
                               NULL), RPC_STATUS_DEADLINE_EXCEEDED);
    assert_true(ctx_now() - t0 >= 690 * CTX_MS);
    rpc_client_channel_free(c);
    rpc_client_options_free(o);

    /* An unresolvable name. */
    assert_int_equal(rpc_client_channel_new("no-such-host.invalid:1", NULL,
                                            &c), 0);
    assert_int_equal(call_path(c, "/x.Y/Z", 5 * CTX_SECOND, msg, sizeof msg,
                               NULL), RPC_STATUS_UNAVAILABLE);
    rpc_client_channel_free(c);
    assert_int_equal(rpc_client_channel_new("nocolon", NULL, &c),
                     RPC_ERR_INVAL);
}

static void test_silent_server(void **state)
{
    int port = 0;
    int lfd = fx_silent_listener(&port);
    assert_true(lfd >= 0);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    rpc_client_channel_t *c;
    assert_int_equal(rpc_client_channel_new(target, NULL, &c), 0);
    int64_t t0 = ctx_now();
    assert_int_equal(call_path(c, "/x.Y/Z", 300 * CTX_MS, NULL, 0, NULL),
                     RPC_STATUS_DEADLINE_EXCEEDED);
    int64_t took = ctx_now() - t0;
    assert_true(took >= 299 * CTX_MS && took < T_SCALE(2, 4) * CTX_SECOND);
    /* A cancel on a call stuck on a silent server. */
    ctx_t *x = ctx_with_cancel(ctx_background());
    rpc_client_call_t *call;
    assert_int_equal(rpc_client_call_start(x, c, "/x.Y/Z", NULL, &call), 0);
    ctx_cancel_cause(x, 7);
    assert_int_equal(rpc_client_call_finish(ctx_background(), call),
                     RPC_STATUS_CANCELLED);
    assert_int_equal(rpc_client_call_cause(call), 7);
    rpc_client_call_free(call);
    ctx_release(x);
    rpc_client_channel_free(c);
    close(lfd);
}

static void test_statuses(void **state)
{
    expect("/bad/BadStatus", RPC_STATUS_INTERNAL);
    expect("/bad/NoStatus", RPC_STATUS_UNKNOWN);
    expect("/bad/BadBin", RPC_STATUS_INTERNAL);
    expect("/bad/RstCancel", RPC_STATUS_CANCELLED);
    expect("/bad/RstRefused", RPC_STATUS_UNAVAILABLE);
    expect("/bad/Http404", RPC_STATUS_UNIMPLEMENTED);
    expect("/bad/TwoMsgs", RPC_STATUS_INTERNAL);
    expect("/bad/Compressed", RPC_STATUS_INTERNAL);
    expect("/bad/Unknown", RPC_STATUS_UNIMPLEMENTED);
}

static void test_too_large(void **state)
{
    expect("/bad/Big", RPC_STATUS_RESOURCE_EXHAUSTED);
    /* A smaller configured limit applies too. */
    rpc_client_options_t *o = rpc_client_options_new();
    rpc_client_options_set_max_recv_message(o, 1000);
    rpc_client_channel_t *c;
    assert_int_equal(rpc_client_channel_new(fx.target, o, &c), 0);
    rpc_client_options_free(o);
    assert_int_equal(call_path(c, "/bad/Big", 5 * CTX_SECOND, NULL, 0, NULL),
                     RPC_STATUS_RESOURCE_EXHAUSTED);
    /* ... and the connection goes on serving. */
    assert_int_equal(call_path(c, "/bad/Timeout", 5 * CTX_SECOND, NULL, 0,
                               NULL), RPC_STATUS_OK);
    assert_int_equal(rpc_client_channel_connects(c), 1);
    rpc_client_channel_free(c);
}

static void test_hang_deadline(void **state)
{
    int64_t t0 = ctx_now();
    assert_int_equal(call_path(ch, "/bad/Hang", 200 * CTX_MS, NULL, 0, NULL),
                     RPC_STATUS_DEADLINE_EXCEEDED);
    assert_true(ctx_now() - t0 < T_SCALE(2, 4) * CTX_SECOND);
}

static void check_timeout(int64_t budget, char want_unit, long long lo,
                          long long hi)
{
    rpc_client_call_t *call;
    call_path(ch, "/bad/Timeout", budget, NULL, 0, &call);
    const char *seen = md_get(rpc_client_call_trailers(call), "x-grpc-timeout");
    assert_non_null(seen);
    assert_string_equal(seen, rpc_client_call_sent_timeout(call));
    long long v;
    char unit;
    assert_int_equal(sscanf(seen, "%lld%c", &v, &unit), 2);
    if (unit != want_unit || v < lo || v > hi)
        fail_msg("grpc-timeout %s for a budget of %lld ns", seen,
                 (long long)budget);
    rpc_client_call_free(call);
}

static void test_grpc_timeout_on_wire(void **state)
{
    /* The remaining time, rounded up, in the finest unit that fits 8
     * digits: 1.5 s -> ~1500000u; 90 s -> ~90000000u (8 digits);
     * 120 s -> ~120000m; 100 h -> 360000S. */
    check_timeout(1500 * CTX_MS, 'u', 1000000, 1500000);
    check_timeout(90 * CTX_SECOND, 'u', 80000000, 90000000);
    check_timeout(120 * CTX_SECOND, 'm', 110000, 120000);
    check_timeout(100LL * 3600 * CTX_SECOND, 'S', 359990, 360000);
    /* No deadline: no header. */
    rpc_client_call_t *call;
    rpc_client_unary(ctx_background(), ch, "/bad/Timeout", NULL, NULL, 0,
                     &call);
    assert_string_equal(md_get(rpc_client_call_trailers(call),
                               "x-grpc-timeout"), "none");
    rpc_client_call_free(call);
}

static void test_reset_and_reconnect(void **state)
{
    rpc_client_channel_t *c;
    assert_int_equal(rpc_client_channel_new(fx.target, NULL, &c), 0);
    char msg[256];
    assert_int_equal(call_path(c, "/bad/Reset", 5 * CTX_SECOND, msg,
                               sizeof msg, NULL), RPC_STATUS_UNAVAILABLE);
    assert_non_null(strstr(msg, "connection closed"));
    /* The next call reconnects at once (no backoff after a lost READY
     * connection). */
    assert_int_equal(call_path(c, "/bad/RstCancel", 5 * CTX_SECOND, NULL, 0,
                               NULL), RPC_STATUS_CANCELLED);
    assert_int_equal(rpc_client_channel_connects(c), 2);
    /* GOAWAY: the call in flight still finishes on the draining
     * connection; the next one opens a new connection. */
    assert_int_equal(call_path(c, "/bad/GoAway", 5 * CTX_SECOND, NULL, 0,
                               NULL), RPC_STATUS_OK);
    assert_int_equal(call_path(c, "/bad/RstCancel", 5 * CTX_SECOND, NULL, 0,
                               NULL), RPC_STATUS_CANCELLED);
    assert_int_equal(rpc_client_channel_connects(c), 3);
    rpc_client_channel_free(c);
}

struct waiter {
    rpc_client_call_t *call;
    int status;
};

static void *finish_thread(void *arg)
{
    struct waiter *w = arg;
    w->status = rpc_client_call_finish(ctx_background(), w->call);
    return NULL;
}

static _Atomic int async_status = -1;
static void on_done(rpc_client_call_t *call, int status, void *ud)
{
    atomic_store(&async_status, status);
}

static void test_free_channel_in_flight(void **state)
{
    rpc_client_channel_t *c;
    assert_int_equal(rpc_client_channel_new(fx.target, NULL, &c), 0);
    struct waiter w = {0};
    assert_int_equal(rpc_client_call_start(ctx_background(), c, "/bad/Hang",
                                           NULL, &w.call), 0);
    rpc_client_call_close_send(w.call);
    assert_non_null(rpc_client_call_headers(ctx_background(), w.call));
    pthread_t th;
    pthread_create(&th, NULL, finish_thread, &w);
    rpc_client_call_t *a;
    assert_int_equal(rpc_client_call_start_async(ctx_background(), c,
                                                 "/bad/Hang", NULL, NULL,
                                                 on_done, NULL, &a), 0);
    rpc_client_channel_free(c);
    pthread_join(th, NULL);
    assert_int_equal(w.status, RPC_STATUS_CANCELLED);
    assert_int_equal(atomic_load(&async_status), RPC_STATUS_CANCELLED);
    /* Handles outlive the channel. */
    assert_string_equal(rpc_client_call_message(w.call), "channel closed");
    assert_int_equal(rpc_client_call_send(ctx_background(), w.call, "x", 1),
                     RPC_ERR_CLOSED);
    rpc_client_call_free(w.call);
    rpc_client_call_free(a);
}

struct sender {
    rpc_client_call_t *call;
    int rc;
    _Atomic pid_t tid;
};

static void *blocked_send(void *arg)
{
    struct sender *s = arg;
    static const uint8_t more[1024];
    atomic_store(&s->tid, (pid_t)syscall(SYS_gettid));
    s->rc = rpc_client_call_send(ctx_background(), s->call, more, sizeof more);
    return NULL;
}

/* True once thread tid is asleep (state S in /proc: blocked in the kernel,
 * here on the call's condition variable). */
static bool thread_sleeping(pid_t tid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* "pid (comm) S ..." */
    return p != NULL && p[1] == ' ' && p[2] == 'S';
}

/* A sender blocked by flow control (the peer never reads) is released by a
 * close_send from another thread: RPC_ERR_STATE, long before the call's
 * deadline.  We wait (bounded, by polling /proc) until the sender sleeps,
 * so close_send comes while it waits rather than before. */
static void test_close_send_releases_sender(void **state)
{
    ctx_t *c = ctx_with_timeout(ctx_background(), 20 * CTX_SECOND);
    rpc_client_call_t *call;
    assert_int_equal(rpc_client_call_start(c, ch, "/bad/NoRead", NULL, &call),
                     0);
    assert_non_null(rpc_client_call_headers(ctx_background(), call));
    /* Above the 1 MiB high-water mark: the next send must wait. */
    size_t big = (size_t)2 << 20;
    uint8_t *buf = calloc(1, big);
    assert_non_null(buf);
    assert_int_equal(rpc_client_call_send(ctx_background(), call, buf, big),
                     0);
    free(buf);
    struct sender s = {call, 1, 0};
    pthread_t th;
    int64_t t0 = ctx_now();
    pthread_create(&th, NULL, blocked_send, &s);
    /* Two consecutive sightings asleep: not a passing lock hand-off. */
    for (int seen = 0; seen < 2 && ctx_now() - t0 < 5 * CTX_SECOND;) {
        pid_t tid = atomic_load(&s.tid);
        seen = tid != 0 && thread_sleeping(tid) ? seen + 1 : 0;
        sched_yield();
    }
    assert_int_equal(rpc_client_call_close_send(call), 0);
    pthread_join(th, NULL);
    assert_int_equal(s.rc, RPC_ERR_STATE);
    assert_true(ctx_now() - t0 < T_SCALE(5, 10) * CTX_SECOND);
    assert_false(rpc_client_call_done(call));
    rpc_client_call_free(call);
    ctx_release(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_silent_server),
        cmocka_unit_test(test_statuses),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_hang_deadline),
        cmocka_unit_test(test_grpc_timeout_on_wire),
        cmocka_unit_test(test_reset_and_reconnect),
        cmocka_unit_test(test_close_send_releases_sender),
        cmocka_unit_test(test_free_channel_in_flight),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
