/*
 * test_client_lb.c -- client-side load balancing (round_robin) over real
 * servers on loopback:
 *   - three interop_server processes behind one "ipv4:" target: calls
 *     spread over all three; one killed by PID: once the channel has seen
 *     it go, no new call fails and the other two take them all;
 *   - three in-process servers with grpc.health.v1 and health checking
 *     on: the one set NOT_SERVING leaves the rotation (no call reaches it)
 *     and comes back when SERVING again;
 *   - pick_first on the same list sends everything to one backend.
 * Waits are bounded loops on observable state (ready count, counters).
 */
#include "client_test_util.h"

#include <rpc/client_pb.h>
#include <rpc/server.h>

#include "demo/v1/demo.pb-c.h"

#include <pthread.h>
#include <stdatomic.h>

#define N 3

/* ---- interop_server processes ------------------------------------------- */

static int spawn_server(fixture_t *f)
{
    memset(f, 0, sizeof *f);
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    char *argv[] = {INTEROP_SERVER, "--port=0", "--loops=1", "--workers=4",
                    NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    int rc = posix_spawn(&f->pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    if (rc != 0) {
        close(p[0]);
        f->pid = 0;
        return -1;
    }
    f->out_fd = p[0];
    char line[128];
    if (fx_read_line(f->out_fd, line, sizeof line, 30000) < 0 ||
        sscanf(line, "listening on port %d", &f->port) != 1) {
        fx_stop(f);
        return -1;
    }
    return 0;
}

static int fanout_peer(rpc_client_channel_t *ch, char *msg, size_t cap,
                       char *peer, size_t pcap)
{
    Demo__V1__FanoutRequest req = DEMO__V1__FANOUT_REQUEST__INIT;
    uint8_t buf[32];
    size_t len = protobuf_c_message_pack(&req.base, buf);
    ctx_t *c = ctx_with_timeout(ctx_background(), 10 * CTX_SECOND);
    rpc_client_call_t *call = NULL;
    int st = rpc_client_unary(c, ch, "/demo.v1.Demo/Fanout", NULL, buf, len,
                              &call);
    if (msg != NULL)
        snprintf(msg, cap, "%s", call ? rpc_client_call_message(call) : "");
    if (peer != NULL)
        snprintf(peer, pcap, "%s", call ? rpc_client_call_peer(call) : "");
    rpc_client_call_free(call);
    ctx_cancel(c);
    ctx_release(c);
    return st;
}

/* handlers_started of one backend, asked directly. */
static int fanout(rpc_client_channel_t *ch, char *msg, size_t cap)
{
    return fanout_peer(ch, msg, cap, NULL, 0);
}

static int64_t started_on(int port)
{
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    rpc_client_channel_t *ch;
    assert_int_equal(rpc_client_channel_new(target, NULL, &ch), 0);
    Demo__V1__StatsRequest req = DEMO__V1__STATS_REQUEST__INIT;
    ctx_t *c = ctx_with_timeout(ctx_background(), 10 * CTX_SECOND);
    rpc_client_call_t *call = NULL;
    int st = rpc_client_unary(c, ch, "/demo.v1.Demo/GetStats", NULL, NULL, 0,
                              &call);
    (void)req;
    assert_int_equal(st, RPC_STATUS_OK);
    size_t n = 0;
    const void *p = rpc_client_call_response(call, &n);
    Demo__V1__Stats *s = demo__v1__stats__unpack(NULL, n, p);
    assert_non_null(s);
    int64_t v = s->handlers_started;
    demo__v1__stats__free_unpacked(s, NULL);
    rpc_client_call_free(call);
    ctx_release(c);
    rpc_client_channel_free(ch);
    return v;
}

/* Bounded wait for the channel's ready count to reach want. */
static bool wait_ready(rpc_client_channel_t *ch, int want, int64_t timeout)
{
    int64_t end = ctx_now() + timeout;
    while (rpc_client_channel_ready_count(ch) != want) {
        if (ctx_now() > end)
            return false;
        ctx_t *t = ctx_with_timeout(ctx_background(), 5 * CTX_MS);
        ctx_wait(t, -1); /* a bounded poll interval, not a sync point */
        ctx_release(t);
    }
    return true;
}

/* Bounded wait until a backend has started `want` handlers in all. */
static bool wait_started(int port, int64_t want, int64_t timeout)
{
    int64_t end = ctx_now() + timeout;
    while (started_on(port) < want) {
        if (ctx_now() > end)
            return false;
        ctx_t *t = ctx_with_timeout(ctx_background(), 5 * CTX_MS);
        ctx_wait(t, -1); /* a bounded poll interval */
        ctx_release(t);
    }
    return started_on(port) == want;
}

/* Slow calls in flight (Fanout: one sub-task sleeping 1.5 s), counted as
 * they end. */
struct inflight {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ok, failed;
};

static void slow_done(rpc_client_call_t *call, int status, void *ud)
{
    struct inflight *fl = ud;
    pthread_mutex_lock(&fl->mu);
    if (status == RPC_STATUS_OK)
        fl->ok++;
    else
        fl->failed++;
    pthread_cond_broadcast(&fl->cv);
    pthread_mutex_unlock(&fl->mu);
}

static void start_slow(rpc_client_channel_t *ch, struct inflight *fl)
{
    Demo__V1__FanoutRequest req = DEMO__V1__FANOUT_REQUEST__INIT;
    req.tasks = 1;
    req.sleep_ms = 1500;
    uint8_t buf[32];
    size_t len = protobuf_c_message_pack(&req.base, buf);
    ctx_t *c = ctx_with_timeout(ctx_background(), 10 * CTX_SECOND);
    assert_int_equal(rpc_client_unary_async(c, ch, "/demo.v1.Demo/Fanout",
                                            NULL, buf, len, slow_done, fl,
                                            NULL),
                     0);
    ctx_release(c); /* the call holds its own reference */
}

static rpc_client_channel_t *lb_channel(const char *target, const char *lb,
                                        bool health)
{
    rpc_client_options_t *o = rpc_client_options_new();
    assert_int_equal(rpc_client_options_set_lb_policy(o, lb), 0);
    assert_int_equal(rpc_client_options_set_backoff(o, 100 * CTX_MS,
                                                    500 * CTX_MS, 1.6, 0.2),
                     0);
    if (health)
        assert_int_equal(rpc_client_options_set_health_check(o, true, NULL),
                         0);
    rpc_client_channel_t *ch;
    assert_int_equal(rpc_client_channel_new(target, o, &ch), 0);
    rpc_client_options_free(o);
    return ch;
}

static void test_round_robin_and_kill(void **state)
{
    fixture_t f[N];
    char target[256] = "ipv4:";
    for (int i = 0; i < N; i++) {
        assert_int_equal(spawn_server(&f[i]), 0);
        snprintf(target + strlen(target), sizeof target - strlen(target),
                 "%s127.0.0.1:%d", i ? "," : "", f[i].port);
    }
    rpc_client_channel_t *ch = lb_channel(target, "round_robin", false);
    assert_int_equal(fanout(ch, NULL, 0), RPC_STATUS_OK);
    assert_true(wait_ready(ch, N, 10 * CTX_SECOND));
    int64_t base[N];
    for (int i = 0; i < N; i++)
        base[i] = started_on(f[i].port);
    for (int k = 0; k < 30; k++)
        assert_int_equal(fanout(ch, NULL, 0), RPC_STATUS_OK);
    for (int i = 0; i < N; i++) {
        int64_t d = started_on(f[i].port) - base[i];
        print_message("backend %d: %lld calls\n", i, (long long)d);
        assert_int_equal(d, 10); /* strict rotation over three */
    }
    /* Each call names the backend it went to: three in a row, three
     * different ones. */
    char peers[N][64];
    for (int k = 0; k < N; k++)
        assert_int_equal(fanout_peer(ch, NULL, 0, peers[k], sizeof peers[k]),
                         RPC_STATUS_OK);
    for (int k = 0; k < N; k++) {
        bool known = false;
        for (int i = 0; i < N; i++) {
            char want[64];
            snprintf(want, sizeof want, "127.0.0.1:%d", f[i].port);
            known = known || strcmp(peers[k], want) == 0;
        }
        assert_true(known);
        for (int j = 0; j < k; j++)
            assert_string_not_equal(peers[k], peers[j]);
    }
    for (int i = 0; i < N; i++)
        base[i] += 1;
    /* Kill the middle one with calls in flight on all three: only the
     * calls that were on it fail; once the channel has seen it go,
     * nothing new fails. */
    struct inflight fl = {.mu = PTHREAD_MUTEX_INITIALIZER,
                          .cv = PTHREAD_COND_INITIALIZER};
    for (int k = 0; k < 3 * N; k++)
        start_slow(ch, &fl);
    /* Every backend has its calls running before the kill. */
    for (int i = 0; i < N; i++)
        assert_true(wait_started(f[i].port, base[i] + 10 + 3,
                                 10 * CTX_SECOND));
    kill(f[1].pid, SIGKILL);
    int st;
    assert_int_equal(fx_wait_exit(f[1].pid, 10000, &st), 0);
    f[1].pid = 0;
    assert_true(wait_ready(ch, N - 1, 10 * CTX_SECOND));
    pthread_mutex_lock(&fl.mu);
    while (fl.ok + fl.failed < 3 * N)
        pthread_cond_wait(&fl.cv, &fl.mu); /* bounded: 10 s deadlines */
    pthread_mutex_unlock(&fl.mu);
    print_message("in flight at the kill: %d ok, %d failed\n", fl.ok,
                  fl.failed);
    assert_int_equal(fl.failed, 3);
    assert_int_equal(fl.ok, 3 * N - 3);
    base[0] = started_on(f[0].port);
    base[2] = started_on(f[2].port);
    char msg[300];
    for (int k = 0; k < 40; k++) {
        int s = fanout(ch, msg, sizeof msg);
        if (s != RPC_STATUS_OK)
            print_message("call %d: %d %s\n", k, s, msg);
        assert_int_equal(s, RPC_STATUS_OK);
    }
    int64_t d0 = started_on(f[0].port) - base[0];
    int64_t d2 = started_on(f[2].port) - base[2];
    assert_int_equal(d0 + d2, 40);
    assert_true(d0 >= 15 && d2 >= 15);
    assert_int_equal(rpc_client_channel_state(ch), RPC_CLIENT_READY);
    rpc_client_channel_free(ch);
    /* pick_first on the same list: one backend takes everything. */
    ch = lb_channel(target, "pick_first", false);
    base[0] = started_on(f[0].port);
    for (int k = 0; k < 10; k++)
        assert_int_equal(fanout(ch, NULL, 0), RPC_STATUS_OK);
    assert_int_equal(started_on(f[0].port) - base[0], 10);
    rpc_client_channel_free(ch);
    for (int i = 0; i < N; i++)
        fx_stop(&f[i]);
}

/* ---- health checking ---------------------------------------------------- */

static atomic_int served[N];

static int count_fanout(ctx_t *ctx, rpc_call_t *call,
                        const ProtobufCMessage *req, void *ud)
{
    atomic_fetch_add((atomic_int *)ud, 1);
    Demo__V1__FanoutReply r = DEMO__V1__FANOUT_REPLY__INIT;
    return rpc_call_send(call, &r.base) == 0 ? RPC_STATUS_OK
                                             : RPC_STATUS_INTERNAL;
}

static void test_health_not_serving_leaves(void **state)
{
    rpc_server_t *s[N];
    char target[256] = "ipv4:";
    for (int i = 0; i < N; i++) {
        s[i] = rpc_server_new();
        assert_int_equal(rpc_server_add_method(
                             s[i], &demo__v1__demo__descriptor, "Fanout",
                             RPC_UNARY, RPC_BLOCKING, count_fanout, &served[i]),
                         0);
        assert_int_equal(rpc_server_add_health(s[i]), 0);
        assert_int_equal(rpc_server_listen(s[i], "127.0.0.1", 0), 0);
        assert_int_equal(rpc_server_start(s[i]), 0);
        snprintf(target + strlen(target), sizeof target - strlen(target),
                 "%s127.0.0.1:%d", i ? "," : "", rpc_server_port(s[i]));
    }
    rpc_client_channel_t *ch = lb_channel(target, "round_robin", true);
    assert_int_equal(fanout(ch, NULL, 0), RPC_STATUS_OK);
    assert_true(wait_ready(ch, N, 10 * CTX_SECOND));
    for (int i = 0; i < N; i++)
        atomic_store(&served[i], 0);
    for (int k = 0; k < 30; k++)
        assert_int_equal(fanout(ch, NULL, 0), RPC_STATUS_OK);
    for (int i = 0; i < N; i++)
        assert_int_equal(atomic_load(&served[i]), 10);
    /* Backend 1 says NOT_SERVING: it leaves the rotation. */
    assert_int_equal(rpc_server_set_health(s[1], "", RPC_HEALTH_NOT_SERVING), 0);
    assert_true(wait_ready(ch, N - 1, 10 * CTX_SECOND));
    for (int i = 0; i < N; i++)
        atomic_store(&served[i], 0);
    for (int k = 0; k < 30; k++)
        assert_int_equal(fanout(ch, NULL, 0), RPC_STATUS_OK);
    assert_int_equal(atomic_load(&served[1]), 0);
    assert_int_equal(atomic_load(&served[0]) + atomic_load(&served[2]), 30);
    /* And back. */
    assert_int_equal(rpc_server_set_health(s[1], "", RPC_HEALTH_SERVING), 0);
    assert_true(wait_ready(ch, N, 10 * CTX_SECOND));
    /* All NOT_SERVING: calls fail fast with a clear text. */
    for (int i = 0; i < N; i++)
        rpc_server_set_health(s[i], "", RPC_HEALTH_NOT_SERVING);
    assert_true(wait_ready(ch, 0, 10 * CTX_SECOND));
    char msg[300];
    assert_int_equal(fanout(ch, msg, sizeof msg), RPC_STATUS_UNAVAILABLE);
    assert_non_null(strstr(msg, "connections to all backends failing"));
    rpc_client_channel_free(ch);
    for (int i = 0; i < N; i++)
        rpc_server_free(s[i]);
}

static void test_bad_policy_and_targets(void **state)
{
    rpc_client_options_t *o = rpc_client_options_new();
    assert_int_equal(rpc_client_options_set_lb_policy(o, "grpclb"),
                     RPC_ERR_UNSUPPORTED);
    assert_int_equal(rpc_client_options_set_lb_policy(o, NULL), RPC_ERR_INVAL);
    rpc_client_options_free(o);
    const char *bad[] = {"ipv4:", "ipv4:1.2.3.4", "ipv4:host:80", "ipv6:[::1]",
                         "unix:", "unix://rel", "dns://x", "noport"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        rpc_client_channel_t *ch = NULL;
        int rc = rpc_client_channel_new(bad[i], NULL, &ch);
        if (rc == 0) {
            print_message("accepted: %s\n", bad[i]);
            rpc_client_channel_free(ch);
        }
        assert_int_equal(rc, RPC_ERR_INVAL);
    }
}

static int teardown(void **state)
{
    ctx_shutdown();
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_robin_and_kill),
        cmocka_unit_test(test_health_not_serving_leaves),
        cmocka_unit_test(test_bad_policy_and_targets),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
