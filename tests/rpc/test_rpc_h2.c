/* Tests for rpc/src/rpc_h2.c and rpc_stream.c: the nghttp2-on-bufferevent
 * glue closes with the right reason for bytes that are not HTTP/2, for a
 * peer that hangs up, for a finished GOAWAY exchange, and for a read
 * timeout; peer names are formatted; an I/O thread that blocked SIGPIPE
 * gets EPIPE from a vanished peer instead of dying.  Real sockets (socketpair and
 * loopback TCP), a real nghttp2 server session, a real event loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rpc_h2.h"
#include "rpc_internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>

struct fx {
    struct event_base *base;
    rpc__h2_t *h2;
    int peer;      /* the test's end of the socket */
    int closed;
    int reason;
};

static void on_close(rpc__h2_t *h2, int reason, void *ud)
{
    struct fx *f = ud;
    f->closed = 1;
    f->reason = reason;
    rpc__h2_free(h2);
    f->h2 = NULL;
}

static void setup(struct fx *f)
{
    memset(f, 0, sizeof *f);
    rpc__libevent_init();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    f->peer = sv[1];
    f->base = event_base_new();
    struct bufferevent *bev = rpc__stream_plain(f->base, sv[0]);
    assert_non_null(bev);
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session *sess;
    assert_int_equal(nghttp2_session_server_new(&sess, cb, f), 0);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(sess, NGHTTP2_FLAG_NONE, NULL, 0);
    f->h2 = rpc__h2_new(bev, sess, 0, on_close, f);
    assert_non_null(f->h2);
    assert_int_equal(rpc__h2_flush(f->h2), 0);
}

/* Runs the loop until the connection closed (bounded: 5 s). */
static void run_until_closed(struct fx *f)
{
    struct timeval limit = {5, 0};
    event_base_loopexit(f->base, &limit);
    while (!f->closed && event_base_loop(f->base, EVLOOP_ONCE) == 0)
        ;
    assert_true(f->closed);
}

static void teardown(struct fx *f)
{
    rpc__h2_free(f->h2);
    close(f->peer);
    event_base_free(f->base);
}

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
static const uint8_t empty_settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};

static void test_not_http2(void **state)
{
    struct fx f;
    setup(&f);
    const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(write(f.peer, junk, sizeof junk - 1), (ssize_t)sizeof junk - 1);
    run_until_closed(&f);
    assert_int_equal(f.reason, RPC__H2_PROTOCOL);
    teardown(&f);
}

static void test_peer_hangs_up(void **state)
{
    struct fx f;
    setup(&f);
    assert_true(write(f.peer, preface, 24) == 24);
    assert_true(write(f.peer, empty_settings, 9) == 9);
    shutdown(f.peer, SHUT_WR);
    run_until_closed(&f);
    assert_int_equal(f.reason, RPC__H2_EOF);
    teardown(&f);
}

static void test_close_after_flush_sends_goaway(void **state)
{
    struct fx f;
    setup(&f);
    assert_true(write(f.peer, preface, 24) == 24);
    assert_true(write(f.peer, empty_settings, 9) == 9);
    nghttp2_submit_goaway(rpc__h2_session(f.h2), NGHTTP2_FLAG_NONE, 0,
                          NGHTTP2_NO_ERROR, NULL, 0);
    rpc__h2_close_after_flush(f.h2);
    assert_true(rpc__h2_closing(f.h2));
    run_until_closed(&f);
    assert_int_equal(f.reason, RPC__H2_DONE);
    /* What reached the peer: our SETTINGS first, a GOAWAY (type 7) last. */
    uint8_t buf[256];
    ssize_t n = read(f.peer, buf, sizeof buf);
    assert_true(n >= 9 + 17);
    assert_int_equal(buf[3], NGHTTP2_SETTINGS);
    int saw_goaway = 0;
    for (ssize_t off = 0; off + 9 <= n;) {
        size_t len = (size_t)buf[off] << 16 | (size_t)buf[off + 1] << 8 | buf[off + 2];
        if (buf[off + 3] == NGHTTP2_GOAWAY)
            saw_goaway = 1;
        off += 9 + (ssize_t)len;
    }
    assert_true(saw_goaway);
    teardown(&f);
}

static void test_read_timeout(void **state)
{
    struct fx f;
    setup(&f);
    rpc__h2_set_timeouts(f.h2, 50 * 1000 * 1000, 0); /* 50 ms of silence */
    run_until_closed(&f);
    assert_int_equal(f.reason, RPC__H2_TIMEOUT);
    teardown(&f);
}

static void test_peer_names(void **state)
{
    char buf[64];
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    rpc__stream_peer_name(sv[0], buf, sizeof buf);
    assert_string_equal(buf, "unix:");
    close(sv[0]);
    close(sv[1]);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 1), 0);
    getsockname(l, (struct sockaddr *)&a, &al);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof a), 0);
    int s = accept(l, NULL, NULL);
    struct sockaddr_in ca;
    socklen_t cl = sizeof ca;
    getsockname(c, (struct sockaddr *)&ca, &cl);
    rpc__stream_peer_name(s, buf, sizeof buf);
    char want[64];
    snprintf(want, sizeof want, "ipv4:127.0.0.1:%u", ntohs(ca.sin_port));
    assert_string_equal(buf, want);
    rpc__stream_peer_name(-1, buf, sizeof buf);
    assert_string_equal(buf, "unknown");
    close(s);
    close(c);
    close(l);
    assert_string_equal(rpc__h2_close_reason_name(RPC__H2_EOF),
                        "peer closed the connection");
}

/* rpc__block_sigpipe(): on a thread that called it, a write to a socket
 * whose peer has gone fails with EPIPE and the process lives, although
 * SIGPIPE keeps its default action (terminate) process-wide. */
static void *write_to_gone_peer(void *arg)
{
    int *res = arg;
    rpc__block_sigpipe();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        res[0] = -2;
        return NULL;
    }
    close(sv[1]);
    res[0] = (int)write(sv[0], "x", 1);
    res[1] = errno;
    close(sv[0]);
    return NULL;
}

static void test_block_sigpipe(void **state)
{
    struct sigaction old, dfl = {0};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    assert_int_equal(sigaction(SIGPIPE, &dfl, &old), 0);
    int res[2] = {0, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, write_to_gone_peer, res), 0);
    pthread_join(t, NULL);
    assert_int_equal(res[0], -1);
    assert_int_equal(res[1], EPIPE);
    sigaction(SIGPIPE, &old, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_http2),
        cmocka_unit_test(test_peer_hangs_up),
        cmocka_unit_test(test_close_after_flush_sends_goaway),
        cmocka_unit_test(test_block_sigpipe),
        cmocka_unit_test(test_read_timeout),
        cmocka_unit_test(test_peer_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
