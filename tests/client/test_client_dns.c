/*
 * test_client_dns.c -- name resolution in the client (client_resolve.c):
 * asynchronous on the channel's loop (evdns), covered by the connect
 * timeout, and abandoned cleanly when the channel goes away.
 *
 * No real DNS is reachable here, so a fake nameserver runs in this
 * process: a UDP socket on 127.0.0.1 served by one thread, which counts
 * the queries and, by mode, never answers, answers NXDOMAIN, or answers
 * 127.0.0.1 for A (and "no data" for AAAA).  Channels created after
 * rpc__client_set_nameserver() send their queries there.  The server the
 * calls reach is the project's own, in-process on 127.0.0.1.
 *
 * Each channel has its own loop thread, so "does not block the loop" is
 * checked within one channel: while its connection is still resolving, an
 * asynchronous call with a short deadline must finish on time -- its
 * completion runs on the loop, which a blocking getaddrinfo() would have
 * held until the resolver gave up.  Every wait is bounded; none sleeps.
 * ASan (the dns-asan build) checks that abandoned resolutions leak nothing.
 */
#include "client_test_util.h"

#include <rpc/server.h>

#include "client_internal.h"
#include "demo/v1/demo.pb-c.h"

#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>

/* ---- the in-process server --------------------------------------------- */

static rpc_server_t *srv;
static int srv_port;

static int get_stats(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *req,
                     void *ud)
{
    Demo__V1__Stats r = DEMO__V1__STATS__INIT;
    rpc_call_send(call, &r.base);
    return RPC_STATUS_OK;
}

#define METHOD "/demo.v1.Demo/GetStats"

/* ---- the fake nameserver ----------------------------------------------- */

enum { DNS_SILENT, DNS_NXDOMAIN, DNS_LOOPBACK, DNS_MULTI };

static struct {
    int fd, port;
    int stop[2]; /* a byte on stop[1] ends the thread */
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int queries; /* mu */
    int mode;    /* mu */
    int records; /* mu: DNS_MULTI answers 127.0.0.1 .. 127.0.0.<records> */
} dns = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* Builds the answer to query q[0..n) into out; returns its length or 0
 * (no answer). */
static size_t dns_answer(const uint8_t *q, size_t n, int mode, int records,
                         uint8_t *out)
{
    if (mode == DNS_SILENT || n < 12)
        return 0;
    size_t p = 12; /* the question: labels, then qtype and qclass */
    while (p < n && q[p] != 0)
        p += (size_t)q[p] + 1;
    if (p + 5 > n)
        return 0;
    p += 5;
    int qtype = q[p - 4] << 8 | q[p - 3];
    memcpy(out, q, p);
    out[2] = 0x81; /* QR, RD */
    out[3] = 0x80; /* RA, NOERROR */
    memset(out + 4, 0, 8);
    out[5] = 1; /* QDCOUNT */
    if (mode == DNS_NXDOMAIN) {
        out[3] |= 3;
        return p;
    }
    if (qtype != 1)
        return p; /* AAAA: no data */
    static const uint8_t a[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60,
                                0,    4,    127, 0, 0, 1};
    int k = mode == DNS_MULTI ? records : 1;
    for (int i = 0; i < k; i++) {
        memcpy(out + p, a, sizeof a);
        out[p + sizeof a - 1] = (uint8_t)(i + 1);
        p += sizeof a;
    }
    out[7] = (uint8_t)k; /* ANCOUNT */
    return p;
}

static void *dns_main(void *arg)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = dns.fd, .events = POLLIN},
                              {.fd = dns.stop[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            break;
        uint8_t q[512], out[600];
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(dns.fd, q, sizeof q, 0, (struct sockaddr *)&from,
                             &fl);
        if (n <= 0)
            continue;
        pthread_mutex_lock(&dns.mu);
        dns.queries++;
        int mode = dns.mode, records = dns.records;
        pthread_cond_broadcast(&dns.cv);
        pthread_mutex_unlock(&dns.mu);
        size_t k = dns_answer(q, (size_t)n, mode, records, out);
        if (k > 0)
            sendto(dns.fd, out, k, 0, (struct sockaddr *)&from, fl);
    }
    return NULL;
}

static int dns_start(void)
{
    dns.fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof a;
    if (dns.fd < 0 || bind(dns.fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(dns.fd, (struct sockaddr *)&a, &l) != 0 ||
        pipe2(dns.stop, O_CLOEXEC) != 0)
        return -1;
    dns.port = ntohs(a.sin_port);
    return pthread_create(&dns.th, NULL, dns_main, NULL) == 0 ? 0 : -1;
}

static void dns_stop(void)
{
    if (write(dns.stop[1], "x", 1) == 1)
        pthread_join(dns.th, NULL);
    close(dns.stop[0]);
    close(dns.stop[1]);
    close(dns.fd);
}

/* Sets the mode and zeroes the query count. */
static void dns_mode(int mode)
{
    pthread_mutex_lock(&dns.mu);
    dns.mode = mode;
    dns.queries = 0;
    pthread_mutex_unlock(&dns.mu);
}

static int dns_queries(void)
{
    pthread_mutex_lock(&dns.mu);
    int n = dns.queries;
    pthread_mutex_unlock(&dns.mu);
    return n;
}

static struct timespec abs_after(int64_t ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ns / CTX_SECOND);
    ts.tv_nsec += (long)(ns % CTX_SECOND);
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

/* Waits up to timeout for at least one query: the resolution is then
 * pending in the resolver, past any answer it could give by itself. */
static bool dns_wait_query(int64_t timeout)
{
    struct timespec ts = abs_after(timeout);
    pthread_mutex_lock(&dns.mu);
    while (dns.queries == 0)
        if (pthread_cond_timedwait(&dns.cv, &dns.mu, &ts) != 0)
            break;
    bool ok = dns.queries > 0;
    pthread_mutex_unlock(&dns.mu);
    return ok;
}

/* ---- asynchronous calls and their completion --------------------------- */

typedef struct done {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int status;
    char msg[256];
    int64_t at; /* ctx_now() when on_done ran */
} done_t;

static void done_init(done_t *d)
{
    memset(d, 0, sizeof *d);
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->status = -1;
}

static void done_destroy(done_t *d)
{
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
}

/* on_done: runs on the channel's loop thread. */
static void on_done(rpc_client_call_t *call, int status, void *ud)
{
    done_t *d = ud;
    pthread_mutex_lock(&d->mu);
    d->done = true;
    d->status = status;
    d->at = ctx_now();
    snprintf(d->msg, sizeof d->msg, "%s", rpc_client_call_message(call));
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static bool done_wait(done_t *d, int64_t timeout)
{
    struct timespec ts = abs_after(timeout);
    pthread_mutex_lock(&d->mu);
    while (!d->done)
        if (pthread_cond_timedwait(&d->cv, &d->mu, &ts) != 0)
            break;
    bool ok = d->done;
    pthread_mutex_unlock(&d->mu);
    return ok;
}

static bool done_now(done_t *d)
{
    pthread_mutex_lock(&d->mu);
    bool ok = d->done;
    pthread_mutex_unlock(&d->mu);
    return ok;
}

static rpc_client_call_t *start_async(ctx_t *x, rpc_client_channel_t *c,
                                      done_t *d)
{
    rpc_client_call_t *call = NULL;
    assert_int_equal(rpc_client_unary_async(x, c, METHOD, NULL, "", 0,
                                            on_done, d, &call),
                     0);
    return call;
}

/* A channel to host:<server port> with the given connect timeout. */
static rpc_client_channel_t *channel(const char *host, int port,
                                     int64_t connect_timeout)
{
    char target[128];
    snprintf(target, sizeof target, "%s:%d", host, port);
    rpc_client_options_t *o = rpc_client_options_new();
    assert_non_null(o);
    assert_int_equal(rpc_client_options_set_connect_timeout(o,
                                                            connect_timeout),
                     0);
    /* A failed attempt is followed by a backoff; keep it out of the way. */
    assert_int_equal(rpc_client_options_set_backoff(o, 100 * CTX_MS,
                                                    200 * CTX_MS, 2.0, 0.0),
                     0);
    rpc_client_channel_t *c = NULL;
    assert_int_equal(rpc_client_channel_new(target, o, &c), 0);
    rpc_client_options_free(o);
    return c;
}

/* One blocking unary call; returns the status, the message in msg. */
static int unary(rpc_client_channel_t *c, int64_t timeout, char *msg,
                 size_t cap)
{
    ctx_t *x = ctx_with_timeout(ctx_background(), timeout);
    rpc_client_call_t *call = NULL;
    int st = rpc_client_unary(x, c, METHOD, NULL, "", 0, &call);
    snprintf(msg, cap, "%s", call ? rpc_client_call_message(call) : "");
    rpc_client_call_free(call);
    ctx_release(x);
    return st;
}

#define BOUND (T_SCALE(2, 6) * CTX_SECOND)

/* ---- tests --------------------------------------------------------------- */

/* A name from /etc/hosts, with the system's resolver configuration (no
 * hook): answered without a DNS query, and the call completes. */
static void test_hosts_name_completes(void **state)
{
    assert_int_equal(rpc__client_set_nameserver(NULL), 0);
    rpc_client_channel_t *c = channel("localhost", srv_port, 5 * CTX_SECOND);
    char msg[256];
    int st = unary(c, 5 * CTX_SECOND, msg, sizeof msg);
    if (st != RPC_STATUS_OK)
        fail_msg("localhost: %s (%s)", rpc_status_name(st), msg);
    assert_int_equal(rpc_client_channel_connects(c), 1);
    rpc_client_channel_free(c);
}

/* A name only DNS knows: the query goes to the nameserver, the answer
 * (127.0.0.1) comes back asynchronously, and the call completes. */
static void test_dns_name_completes(void **state)
{
    dns_mode(DNS_LOOPBACK);
    rpc_client_channel_t *c = channel("backend1.test", srv_port,
                                      5 * CTX_SECOND);
    char msg[256];
    int st = unary(c, 5 * CTX_SECOND, msg, sizeof msg);
    if (st != RPC_STATUS_OK)
        fail_msg("backend1.test: %s (%s)", rpc_status_name(st), msg);
    assert_true(dns_queries() >= 1);
    rpc_client_channel_free(c);
}

/* NXDOMAIN: UNAVAILABLE at once, with the message getaddrinfo() gave. */
static void test_dns_nxdomain(void **state)
{
    dns_mode(DNS_NXDOMAIN);
    rpc_client_channel_t *c = channel("nxdomain.test", srv_port,
                                      5 * CTX_SECOND);
    char msg[256], want[256];
    int64_t t0 = ctx_now();
    assert_int_equal(unary(c, 5 * CTX_SECOND, msg, sizeof msg),
                     RPC_STATUS_UNAVAILABLE);
    assert_true(ctx_now() - t0 < BOUND);
    snprintf(want, sizeof want, "resolve nxdomain.test:%d: %s", srv_port,
             gai_strerror(EAI_NONAME));
    assert_string_equal(msg, want);
    assert_true(dns_queries() >= 1);
    rpc_client_channel_free(c);
}

/* While the connection is resolving (the nameserver never answers), the
 * loop keeps serving: an async call with a 200 ms deadline completes on
 * time (on_done runs on the loop), a call on another channel to a real
 * server completes, and cancelling the first call's context ends it at
 * once -- all while the resolution is still pending.  Closing the channel
 * then abandons the resolution (ASan: nothing leaks). */
/* RFC 6761: a name under "invalid." fails at once, without a query, even
 * when the nameserver would never answer. */
static void test_invalid_tld_never_queried(void **state)
{
    dns_mode(DNS_SILENT);
    int before = dns_queries();
    static const char *const names[] = {"no-such-host.invalid",
                                        "x.INVALID.", "invalid"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        rpc_client_channel_t *c = channel(names[i], srv_port, 5 * CTX_SECOND);
        char msg[256], want[256];
        int64_t t0 = ctx_now();
        assert_int_equal(unary(c, 5 * CTX_SECOND, msg, sizeof msg),
                         RPC_STATUS_UNAVAILABLE);
        assert_true(ctx_now() - t0 < BOUND);
        snprintf(want, sizeof want, "resolve %s:%d: %s", names[i], srv_port,
                 gai_strerror(EAI_NONAME));
        assert_string_equal(msg, want);
        rpc_client_channel_free(c);
    }
    assert_int_equal(dns_queries(), before);
}

static void test_pending_resolution_does_not_block_loop(void **state)
{
    dns_mode(DNS_SILENT);
    rpc_client_channel_t *c = channel("silent.test", srv_port,
                                      30 * CTX_SECOND);
    ctx_t *xa = ctx_with_cancel(ctx_background());
    done_t a;
    done_init(&a);
    rpc_client_call_t *ca = start_async(xa, c, &a);
    assert_true(dns_wait_query(BOUND));
    assert_int_equal(rpc_client_channel_state(c), RPC_CLIENT_CONNECTING);

    /* Same channel, same loop: the deadline is served on time. */
    ctx_t *xb = ctx_with_timeout(ctx_background(), 200 * CTX_MS);
    done_t b;
    done_init(&b);
    int64_t t0 = ctx_now();
    rpc_client_call_t *cb = start_async(xb, c, &b);
    assert_true(done_wait(&b, BOUND));
    assert_int_equal(b.status, RPC_STATUS_DEADLINE_EXCEEDED);
    assert_true(b.at - t0 >= 190 * CTX_MS); /* not early */
    assert_true(b.at - t0 < BOUND);

    /* Another channel, to a numeric address: served normally. */
    rpc_client_channel_t *c2 = channel("127.0.0.1", srv_port, 5 * CTX_SECOND);
    char msg[256];
    int st = unary(c2, 5 * CTX_SECOND, msg, sizeof msg);
    if (st != RPC_STATUS_OK)
        fail_msg("127.0.0.1: %s (%s)", rpc_status_name(st), msg);
    rpc_client_channel_free(c2);

    /* The first call is still waiting on the resolution; cancel it. */
    assert_false(done_now(&a));
    assert_int_equal(rpc_client_channel_state(c), RPC_CLIENT_CONNECTING);
    t0 = ctx_now();
    ctx_cancel(xa);
    assert_true(done_wait(&a, BOUND));
    assert_int_equal(a.status, RPC_STATUS_CANCELLED);
    assert_true(a.at - t0 < BOUND);

    /* The resolution is still pending (the channel keeps connecting, as
     * gRPC does); closing the channel abandons it. */
    t0 = ctx_now();
    rpc_client_channel_free(c);
    assert_true(ctx_now() - t0 < BOUND);
    rpc_client_call_free(ca);
    rpc_client_call_free(cb);
    ctx_release(xa);
    ctx_release(xb);
    done_destroy(&a);
    done_destroy(&b);
}

/* The connect timeout covers resolution: a nameserver that never answers
 * fails the attempt at the connect deadline, UNAVAILABLE, with a message
 * saying what timed out; the next attempt resolves again. */
static void test_resolve_times_out_at_connect_deadline(void **state)
{
    dns_mode(DNS_SILENT);
    int64_t timeout = 300 * CTX_MS;
    rpc_client_channel_t *c = channel("silent.test", srv_port, timeout);
    char msg[256], want[256];
    int64_t t0 = ctx_now();
    assert_int_equal(unary(c, 10 * CTX_SECOND, msg, sizeof msg),
                     RPC_STATUS_UNAVAILABLE);
    int64_t took = ctx_now() - t0;
    assert_true(took >= timeout - 10 * CTX_MS); /* not early */
    assert_true(took < BOUND);
    snprintf(want, sizeof want, "resolve silent.test:%d: timed out",
             srv_port);
    assert_string_equal(msg, want);
    assert_true(dns_queries() >= 1);
    assert_int_equal(rpc_client_channel_state(c),
                     RPC_CLIENT_TRANSIENT_FAILURE);
    rpc_client_channel_free(c);
}

/* Closing a channel while its connection is resolving: the waiting call
 * ends CANCELLED "channel closed", the close returns promptly, and the
 * abandoned request frees what it holds (ASan).  Repeated, and also
 * without waiting for the query to leave, so the close lands at different
 * points of the resolution. */
static void test_close_while_resolving(void **state)
{
    dns_mode(DNS_SILENT);
    for (int i = 0; i < 20; i++) {
        rpc_client_channel_t *c = channel("silent.test", srv_port,
                                          30 * CTX_SECOND);
        done_t d;
        done_init(&d);
        rpc_client_call_t *call = start_async(ctx_background(), c, &d);
        if (i == 0)
            assert_true(dns_wait_query(BOUND));
        int64_t t0 = ctx_now();
        rpc_client_channel_free(c);
        assert_true(ctx_now() - t0 < BOUND);
        assert_true(done_now(&d)); /* finished by the close */
        assert_int_equal(d.status, RPC_STATUS_CANCELLED);
        assert_string_equal(d.msg, "channel closed");
        rpc_client_call_free(call);
        done_destroy(&d);
    }
}

/* Three servers on 127.0.0.1, .2 and .3, one port; a name with three A
 * records; round_robin: every record gets a connection and a third of
 * the calls.  When one server goes, the name is asked again (and the
 * answer, now two records, replaces the list), and no call fails. */
static atomic_int rr_served[3];

static int rr_get_stats(ctx_t *ctx, rpc_call_t *call,
                        const ProtobufCMessage *req, void *ud)
{
    atomic_fetch_add((atomic_int *)ud, 1);
    return get_stats(ctx, call, req, NULL);
}

static bool wait_ready(rpc_client_channel_t *c, int want, int64_t timeout)
{
    int64_t end = ctx_now() + timeout;
    while (rpc_client_channel_ready_count(c) != want) {
        if (ctx_now() > end)
            return false;
        ctx_t *t = ctx_with_timeout(ctx_background(), 5 * CTX_MS);
        ctx_wait(t, -1); /* a bounded poll interval */
        ctx_release(t);
    }
    return true;
}

/* Three backends counting their GetStats calls in rr_served[], on
 * 127.0.0.1-3 and one port (returned); with health, each serves Health. */
static int start_backends(rpc_server_t *s[3], bool health)
{
    int port = 0;
    for (int i = 0; i < 3; i++) {
        char host[32];
        snprintf(host, sizeof host, "127.0.0.%d", i + 1);
        s[i] = rpc_server_new();
        assert_int_equal(rpc_server_add_method(s[i],
                                               &demo__v1__demo__descriptor,
                                               "GetStats", RPC_UNARY,
                                               RPC_BLOCKING, rr_get_stats,
                                               &rr_served[i]),
                         0);
        if (health)
            assert_int_equal(rpc_server_add_health(s[i]), 0);
        assert_int_equal(rpc_server_listen(s[i], host, port), 0);
        assert_int_equal(rpc_server_start(s[i]), 0);
        port = rpc_server_port(s[i]);
    }
    return port;
}

static void test_dns_round_robin_all_records(void **state)
{
    rpc_server_t *s[3];
    int port = start_backends(s, false);
    pthread_mutex_lock(&dns.mu);
    dns.mode = DNS_MULTI;
    dns.records = 3;
    pthread_mutex_unlock(&dns.mu);
    char target[64];
    snprintf(target, sizeof target, "dns:///multi.test:%d", port);
    rpc_client_options_t *o = rpc_client_options_new();
    assert_int_equal(rpc_client_options_set_lb_policy(o, "round_robin"), 0);
    assert_int_equal(rpc_client_options_set_backoff(o, 100 * CTX_MS,
                                                    200 * CTX_MS, 2.0, 0.0),
                     0);
    rpc_client_channel_t *c = NULL;
    assert_int_equal(rpc_client_channel_new(target, o, &c), 0);
    rpc_client_options_free(o);
    char msg[256];
    assert_int_equal(unary(c, BOUND, msg, sizeof msg), RPC_STATUS_OK);
    assert_true(wait_ready(c, 3, BOUND));
    for (int i = 0; i < 3; i++)
        atomic_store(&rr_served[i], 0);
    for (int k = 0; k < 30; k++)
        assert_int_equal(unary(c, BOUND, msg, sizeof msg), RPC_STATUS_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&rr_served[i]), 10);
    /* The third goes (and leaves DNS): re-resolution on the failure. */
    int q0 = dns_queries();
    pthread_mutex_lock(&dns.mu);
    dns.records = 2;
    pthread_mutex_unlock(&dns.mu);
    rpc_server_free(s[2]);
    assert_true(wait_ready(c, 2, BOUND));
    for (int k = 0; k < 20; k++)
        assert_int_equal(unary(c, BOUND, msg, sizeof msg), RPC_STATUS_OK);
    struct timespec ts = abs_after(BOUND);
    pthread_mutex_lock(&dns.mu);
    while (dns.queries <= q0)
        if (pthread_cond_timedwait(&dns.cv, &dns.mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&dns.mu);
    assert_true(dns_queries() > q0);
    rpc_client_channel_free(c);
    rpc_server_free(s[0]);
    rpc_server_free(s[1]);
}

/* With health checking: a backend that leaves the DNS answer while it is
 * up (its Watch running) is dropped at the next resolution -- here
 * triggered by another backend going away -- and the calls go on. */
static void test_dns_removal_with_health(void **state)
{
    rpc_server_t *s[3];
    int port = start_backends(s, true);
    pthread_mutex_lock(&dns.mu);
    dns.mode = DNS_MULTI;
    dns.records = 3;
    pthread_mutex_unlock(&dns.mu);
    char target[64];
    snprintf(target, sizeof target, "dns:///multi.test:%d", port);
    rpc_client_options_t *o = rpc_client_options_new();
    assert_int_equal(rpc_client_options_set_lb_policy(o, "round_robin"), 0);
    assert_int_equal(rpc_client_options_set_health_check(o, true, ""), 0);
    assert_int_equal(rpc_client_options_set_backoff(o, 100 * CTX_MS,
                                                    200 * CTX_MS, 2.0, 0.0),
                     0);
    rpc_client_channel_t *c = NULL;
    assert_int_equal(rpc_client_channel_new(target, o, &c), 0);
    rpc_client_options_free(o);
    char msg[256];
    assert_int_equal(unary(c, BOUND, msg, sizeof msg), RPC_STATUS_OK);
    assert_true(wait_ready(c, 3, BOUND));
    /* .3 leaves DNS but stays up; .1 goes away and triggers the
     * resolution that drops .3: only .2 is left. */
    int q0 = dns_queries();
    pthread_mutex_lock(&dns.mu);
    dns.records = 2;
    pthread_mutex_unlock(&dns.mu);
    rpc_server_free(s[0]);
    struct timespec ts = abs_after(BOUND);
    pthread_mutex_lock(&dns.mu);
    while (dns.queries <= q0)
        if (pthread_cond_timedwait(&dns.cv, &dns.mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&dns.mu);
    assert_true(dns_queries() > q0);
    assert_true(wait_ready(c, 1, BOUND));
    for (int i = 0; i < 3; i++)
        atomic_store(&rr_served[i], 0);
    for (int k = 0; k < 10; k++)
        assert_int_equal(unary(c, BOUND, msg, sizeof msg), RPC_STATUS_OK);
    assert_int_equal(atomic_load(&rr_served[1]), 10);
    assert_int_equal(atomic_load(&rr_served[2]), 0);
    rpc_client_channel_free(c);
    rpc_server_free(s[1]);
    rpc_server_free(s[2]);
}

/* ---- setup --------------------------------------------------------------- */

static int setup(void **state)
{
    srv = rpc_server_new();
    if (srv == NULL ||
        rpc_server_set_option(srv, RPC_SERVER_LOOP_THREADS, 1) != 0 ||
        rpc_server_set_option(srv, RPC_SERVER_WORKER_THREADS, 2) != 0 ||
        rpc_server_add_method(srv, &demo__v1__demo__descriptor, "GetStats",
                              RPC_UNARY, RPC_BLOCKING, get_stats, NULL) != 0 ||
        rpc_server_listen(srv, "127.0.0.1", 0) != 0 ||
        rpc_server_start(srv) != 0)
        return -1;
    srv_port = rpc_server_port(srv);
    if (dns_start() != 0)
        return -1;
    char ns[64];
    snprintf(ns, sizeof ns, "127.0.0.1:%d", dns.port);
    return rpc__client_set_nameserver(ns) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    rpc__client_set_nameserver(NULL);
    dns_stop();
    rpc_server_free(srv);
    ctx_shutdown();
    return 0;
}

/* Each test but the first uses the fake nameserver. */
static int use_fake_dns(void **state)
{
    char ns[64];
    snprintf(ns, sizeof ns, "127.0.0.1:%d", dns.port);
    return rpc__client_set_nameserver(ns) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hosts_name_completes),
        cmocka_unit_test_setup(test_dns_name_completes, use_fake_dns),
        cmocka_unit_test_setup(test_dns_nxdomain, use_fake_dns),
        cmocka_unit_test_setup(test_invalid_tld_never_queried, use_fake_dns),
        cmocka_unit_test_setup(test_pending_resolution_does_not_block_loop,
                               use_fake_dns),
        cmocka_unit_test_setup(test_resolve_times_out_at_connect_deadline,
                               use_fake_dns),
        cmocka_unit_test_setup(test_close_while_resolving, use_fake_dns),
        cmocka_unit_test_setup(test_dns_round_robin_all_records, use_fake_dns),
        cmocka_unit_test_setup(test_dns_removal_with_health, use_fake_dns),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
