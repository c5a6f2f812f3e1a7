/* Fuzz target: the client's response path.  The harness plays the server:
 * each input is what that server sends after its own first SETTINGS
 * frame (which the harness writes first) -- HEADERS/CONTINUATION with
 * :status, content-type, grpc-status, grpc-message and metadata, DATA with
 * gRPC message framing, trailers, RST_STREAM, GOAWAY, PING, SETTINGS,
 * WINDOW_UPDATE -- against three calls in flight, so it reaches response
 * header validation, grpc-status and trailers parsing, message framing and
 * limits, and every way a call ends.
 *
 * The first byte of an input is not sent: its bits choose what the
 * application does once the rest has been written, before the server
 * half-closes --
 *   0x1  cancel call B (rpc_client_call_cancel)
 *   0x2  cancel call A's context
 *   0x4  free the channel, calls still in flight
 *
 * One input (the channel has its loop thread; the harness is the server
 * on a loopback listener made once per process):
 *
 *   new channel --> call A (unary, async, no callbacks) --> accept the
 *   connection, read until A's HEADERS (stream 1) --> call B (server
 *   streaming, async, on_message; a deadline, so grpc-timeout is sent)
 *   --> stream 3 --> call C (blocking style, one message, not
 *   half-closed) --> stream 5 --> write SETTINGS + input, reading what the
 *   client sends --> [cancel B, cancel A's context, free the channel] -->
 *   half-close --> read until the client closes the connection --> each
 *   call has finished: check its results --> free.
 *
 * Starting each call only once the previous one's HEADERS are on the wire
 * keeps the stream ids fixed (1, 3, 5: the seeds address them), whatever
 * the thread timing.
 *
 * What fails an input besides a sanitizer report: the client not closing
 * the connection within 10 s of the server half-closing, a call not
 * finished once its connection is gone, a status outside 0..16, missing
 * message or trailers on a finished call, a unary call finished OK
 * without its single response, or a response message over the receive
 * limit handed to the application. */
#include <ctx/ctx.h>
#include <rpc/client.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_RECV 1024
#define WAIT_MS 10000

static int listen_fd = -1;
static int port;

static __attribute__((noreturn)) void fail(const char *what)
{
    fprintf(stderr, "fuzz_client_response: %s\n", what);
    abort();
}

/* poll(2) for up to WAIT_MS, resumed after signals (libFuzzer's timeout
 * alarm interrupts it).  Returns poll's result, 0 on timeout. */
static int wait_fd(struct pollfd *pf)
{
    int64_t end = ctx_now() + (int64_t)WAIT_MS * CTX_MS;
    for (;;) {
        int64_t left = (end - ctx_now()) / CTX_MS;
        int n = poll(pf, 1, left > 0 ? (int)left : 0);
        if (n >= 0 || errno != EINTR)
            return n;
    }
}

static void listen_once(void)
{
    if (listen_fd >= 0)
        return;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(listen_fd, 16) != 0 ||
        getsockname(listen_fd, (struct sockaddr *)&a, &al) != 0)
        fail("cannot listen on loopback");
    port = ntohs(a.sin_port);
}

/* Closes connections left in the backlog (none are expected). */
static void drop_backlog(void)
{
    int fd;
    while ((fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
        close(fd);
}

static int accept_one(void)
{
    struct pollfd pf = {.fd = listen_fd, .events = POLLIN};
    if (wait_fd(&pf) != 1)
        fail("the channel did not connect");
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        fail("accept failed");
    return fd;
}

/* ---- what the client sends: just enough parsing to see its HEADERS ------ */

struct wire {
    uint8_t buf[65536];
    size_t len;
    int preface_done;
    int32_t last_headers; /* highest stream id with a HEADERS frame */
};

static void wire_parse(struct wire *w)
{
    size_t pos = 0;
    if (!w->preface_done) {
        if (w->len < 24)
            return;
        w->preface_done = 1;
        pos = 24;
    }
    while (w->len - pos >= 9) {
        const uint8_t *h = w->buf + pos;
        size_t flen = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
        if (w->len - pos < 9 + flen)
            break;
        int32_t sid = (int32_t)(((uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 |
                                 (uint32_t)h[7] << 8 | h[8]) & 0x7fffffffu);
        if (h[3] == 0x1 && sid > w->last_headers)
            w->last_headers = sid;
        pos += 9 + flen;
    }
    memmove(w->buf, w->buf + pos, w->len - pos);
    w->len -= pos;
}

/* Waits for the client's HEADERS on stream `id`. */
static void await_headers(int fd, struct wire *w, int32_t id)
{
    while (w->last_headers < id) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (wait_fd(&pf) != 1)
            fail("no HEADERS from the client");
        if (w->len == sizeof w->buf)
            fail("client frame larger than the harness buffer");
        ssize_t n = recv(fd, w->buf + w->len, sizeof w->buf - w->len, 0);
        if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR)))
            fail("the client closed before sending its HEADERS");
        if (n > 0) {
            w->len += (size_t)n;
            wire_parse(w);
        }
    }
}

/* Writes out[0..len) (len 0: none, then waits for the client to close)
 * while discarding what the client sends.  Returns 1 once the client has
 * closed the connection, 0 when everything is written. */
static int play(int fd, const uint8_t *out, size_t len)
{
    size_t off = 0;
    while (off < len || len == 0) {
        struct pollfd pf = {.fd = fd,
                            .events = (short)(POLLIN | (len ? POLLOUT : 0))};
        if (wait_fd(&pf) != 1)
            fail("the client did not close the connection");
        if (pf.revents & POLLOUT) {
            ssize_t n = send(fd, out + off, len - off, MSG_NOSIGNAL);
            if (n > 0)
                off += (size_t)n;
            else if (!(n < 0 && (errno == EAGAIN || errno == EINTR)))
                off = len; /* the client has gone: the rest is not wanted */
        }
        if (pf.revents & (POLLIN | POLLHUP | POLLERR)) {
            uint8_t buf[16384];
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                return 1;
        }
    }
    return 0;
}

/* ---- the calls ----------------------------------------------------------- */

static void on_message(rpc_client_call_t *call, const void *msg, size_t len,
                       void *ud)
{
    if (len > MAX_RECV)
        fail("a message over the receive limit was delivered");
    (*(int *)ud)++;
}

static void check_finished(rpc_client_call_t *call, const char *name)
{
    char what[128];
    snprintf(what, sizeof what, "call %s", name);
    if (!rpc_client_call_done(call))
        fail(strcat(what, " not finished once its connection closed"));
    int st = rpc_client_call_status(call);
    if (st < 0 || st > 16)
        fail(strcat(what, ": status out of range"));
    if (rpc_client_call_message(call) == NULL ||
        rpc_client_call_trailers(call) == NULL ||
        rpc_client_call_sent_timeout(call) == NULL)
        fail(strcat(what, ": results missing"));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t settings[9] = {0, 0, 0, 0x4, 0, 0, 0, 0, 0};
    static const uint8_t req[] = {0x0a, 0x03, 'a', 'b', 'c'};
    enum { CANCEL_B = 0x1, CANCEL_A_CTX = 0x2, FREE_CHANNEL = 0x4 };
    int mode = 0;
    if (size > 0) {
        mode = data[0];
        data++;
        size--;
    }
    listen_once();
    drop_backlog();

    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    rpc_client_options_t *o = rpc_client_options_new();
    rpc_client_channel_t *ch = NULL;
    if (o == NULL || rpc_client_options_set_max_recv_message(o, MAX_RECV) != 0 ||
        rpc_client_channel_new(target, o, &ch) != 0)
        fail("cannot make the channel");
    rpc_client_options_free(o);
    rpc_metadata_t *md = rpc_metadata_new();
    if (md == NULL || rpc_metadata_add(md, "x-fuzz", "1", 1) != 0 ||
        rpc_metadata_add(md, "x-fuzz-bin", "\0\1\2", 3) != 0)
        fail("out of memory");
    ctx_t *bg = ctx_background();
    ctx_t *dl = ctx_with_timeout(bg, 3600 * CTX_SECOND);
    ctx_t *actx = ctx_with_cancel(bg);
    if (dl == NULL || actx == NULL)
        fail("out of memory");

    struct wire *w = calloc(1, sizeof *w);
    rpc_client_call_t *a = NULL, *b = NULL, *c = NULL;
    int b_msgs = 0;
    if (w == NULL ||
        rpc_client_unary_async(actx, ch, "/grpc.testing.TestService/UnaryCall",
                               md, req, sizeof req, NULL, NULL, &a) != 0)
        fail("cannot start call A");
    int fd = accept_one();
    await_headers(fd, w, 1);
    if (rpc_client_call_start_async(dl, ch,
                                    "/grpc.testing.TestService/StreamingOutputCall",
                                    NULL, on_message, NULL, &b_msgs, &b) != 0 ||
        rpc_client_call_send(bg, b, req, sizeof req) != 0 ||
        rpc_client_call_close_send(b) != 0)
        fail("cannot start call B");
    await_headers(fd, w, 3);
    if (rpc_client_call_start(bg, ch, "/grpc.testing.TestService/FullDuplexCall",
                              md, &c) != 0 ||
        rpc_client_call_send(bg, c, req, sizeof req) != 0)
        fail("cannot start call C");
    await_headers(fd, w, 5);
    free(w);

    uint8_t *out = malloc(sizeof settings + size);
    if (out == NULL)
        fail("out of memory");
    memcpy(out, settings, sizeof settings);
    if (size > 0)
        memcpy(out + sizeof settings, data, size);
    int closed = play(fd, out, sizeof settings + size);
    free(out);
    if (mode & CANCEL_B)
        rpc_client_call_cancel(b);
    if (mode & CANCEL_A_CTX)
        ctx_cancel(actx);
    if (mode & FREE_CHANNEL) {
        rpc_client_channel_free(ch);
        ch = NULL;
    }
    shutdown(fd, SHUT_WR);
    /* A freed channel's socket is closed only once the last call handle
     * is gone (its event_base, which finalizes the socket, goes with the
     * channel's memory): wait for that below. */
    if (!closed && ch != NULL)
        closed = play(fd, NULL, 0);

    /* The client closed the connection (or the channel is freed): every
     * call on it has ended. */
    check_finished(a, "A");
    check_finished(b, "B");
    check_finished(c, "C");
    size_t len;
    if (rpc_client_call_status(a) == RPC_STATUS_OK &&
        rpc_client_call_response(a, &len) == NULL)
        fail("unary call OK without a response");
    if (rpc_client_call_response(a, &len) != NULL && len > MAX_RECV)
        fail("a message over the receive limit was delivered (A)");
    for (int i = 0;; i++) {
        void *m;
        int rc = rpc_client_call_recv(bg, c, &m, &len);
        if (rc == RPC_ERR_EOF)
            break;
        if (rc != 0 || len > MAX_RECV || i > 100000)
            fail("call C: bad receive after the end");
        free(m);
    }
    static int verbose = -1;
    if (verbose < 0)
        verbose = getenv("FUZZ_VERBOSE") != NULL;
    if (verbose)
        fprintf(stderr, "A %d \"%s\" | B %d \"%s\" (%d messages) | C %d \"%s\"\n",
                rpc_client_call_status(a), rpc_client_call_message(a),
                rpc_client_call_status(b), rpc_client_call_message(b), b_msgs,
                rpc_client_call_status(c), rpc_client_call_message(c));
    rpc_client_call_free(a);
    rpc_client_call_free(b);
    rpc_client_call_free(c);
    rpc_metadata_free(md);
    ctx_release(dl);
    ctx_release(actx);
    rpc_client_channel_free(ch);
    if (!closed)
        play(fd, NULL, 0);
    close(fd);
    return 0;
}
