/* Fuzz target: the server's HTTP/2 entry.  Each input is what a client
 * sends after the connection preface (which the harness writes first):
 * SETTINGS, HEADERS, CONTINUATION, DATA, RST_STREAM, PING, GOAWAY, ...
 * A fresh server takes it through nghttp2, request-header validation,
 * message framing, call creation and dispatch to real handlers of every
 * kind and style, and then through the connection's teardown.
 *
 * The first byte of an input is not sent: its bits choose when the
 * server's own shutdown steps (server_fuzz.h) run --
 *   0x1  drain (GOAWAY notice + PING) at once, before the client's bytes
 *   0x2  drain once the input has settled
 *   0x4  abort (calls answered UNAVAILABLE, cause SHUTDOWN; close after
 *        flush) once the input has settled, after any drain
 *
 * One input, in-process, on this thread (server_fuzz.h):
 *
 *   rpc_server_new + methods --> rpc__server_fuzz_start (one loop, run
 *   here) --> socketpair: one end to rpc__server_fuzz_accept, the other
 *   is the client --> write preface + input, reading whatever the server
 *   answers --> settle: the server has read every byte, and no handler
 *   is running except ones waiting for the client (in rpc_call_recv or a
 *   blocked rpc_call_send) --> [drain, abort] --> half-close the client
 *   --> run until the connection is closed and every call freed --> check
 *   the counters balance --> rpc_server_free.
 *
 * Handlers (grpc.testing.TestService, request fields steer them):
 *   UnaryCall            non-blocking unary: echo, response_size,
 *                        response_status, response_compressed, request
 *                        metadata echoed as response headers and trailers
 *   CacheableUnaryCall   the same, blocking, on a 2-thread pool
 *   StreamingOutputCall  non-blocking server streaming
 *   StreamingInputCall   blocking client streaming (rpc_call_recv)
 *   FullDuplexCall       non-blocking, event-driven bidi
 *   HalfDuplexCall       blocking bidi (recv, echo back)
 *   EmptyCall            blocking, returns OK without a response (the
 *                        server must answer INTERNAL)
 *   grpc.health.v1       Check and Watch
 *
 * What fails an input besides a sanitizer report: a connection or call
 * still alive 10 s after the client went quiet (a hang or a leaked
 * reference), or counters that do not balance as <rpc/server.h> says they
 * do once no call is in flight. */
#include "server_fuzz.h"

#include <ctx/pool.h>
#include <event2/event.h>
#include <protobuf-c/protobuf-c.h>
#include <rpc/server.h>

#include "grpc/testing/test.pb-c.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/sockios.h>

#define MAX_SIZE 8192     /* largest response payload a request may ask */
#define MAX_PARAMS 8      /* response_parameters honoured per request */
#define MAX_ECHO_MD 8     /* request metadata entries echoed */
#define LIMIT_NS (10 * CTX_SECOND)

static const uint8_t zeros[MAX_SIZE];
static ctx_pool_t *pool;
/* Blocking handlers now waiting for the client: in rpc_call_recv or in an
 * rpc_call_send that may wait for the peer's flow-control window. */
static atomic_int waiting;

/* ---- handlers -------------------------------------------------------------- */

static int clamp_size(int32_t n)
{
    return n < 0 ? 0 : n > MAX_SIZE ? MAX_SIZE : n;
}

static int status_of(const Grpc__Testing__EchoStatus *st)
{
    /* Out of range codes are the server's to map; RPC_PENDING (-1) from a
     * non-blocking handler would leave the call unfinished forever. */
    return st->code < 0 ? RPC_STATUS_UNKNOWN : st->code;
}

static int send_counted(rpc_call_t *call, const ProtobufCMessage *m)
{
    atomic_fetch_add(&waiting, 1);
    int rc = rpc_call_send(call, m);
    atomic_fetch_sub(&waiting, 1);
    return rc;
}

static int recv_counted(rpc_call_t *call, ProtobufCMessage **m)
{
    atomic_fetch_add(&waiting, 1);
    int rc = rpc_call_recv(call, m);
    atomic_fetch_sub(&waiting, 1);
    return rc;
}

static void echo_metadata(rpc_call_t *call)
{
    const rpc_metadata_t *md = rpc_call_metadata(call);
    for (size_t i = 0; i < rpc_metadata_count(md) && i < MAX_ECHO_MD; i++) {
        const char *k;
        const void *v;
        size_t len;
        if (!rpc_metadata_at(md, i, &k, &v, &len))
            abort();
        rpc_call_set_header(call, k, v, len);
        rpc_call_set_trailer(call, k, v, len);
    }
}

static int unary(rpc_call_t *call, const ProtobufCMessage *m, int blocking)
{
    const Grpc__Testing__SimpleRequest *req = (const void *)m;
    echo_metadata(call);
    if (req->response_compressed != NULL)
        rpc_call_set_compression(call, req->response_compressed->value);
    if (req->response_status != NULL && req->response_status->code != 0) {
        rpc_call_set_status_message(call, req->response_status->message);
        return status_of(req->response_status);
    }
    Grpc__Testing__SimpleResponse rsp = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    if (req->payload != NULL && req->response_size == 0)
        p.body = req->payload->body;
    else
        p.body = (ProtobufCBinaryData){(size_t)clamp_size(req->response_size),
                                       (uint8_t *)zeros};
    rsp.payload = &p;
    if (blocking)
        send_counted(call, &rsp.base);
    else
        rpc_call_send(call, &rsp.base);
    return RPC_STATUS_OK;
}

static int unary_nb(ctx_t *ctx, rpc_call_t *call, const ProtobufCMessage *m,
                    void *ud)
{
    return unary(call, m, 0);
}

static int unary_blocking(ctx_t *ctx, rpc_call_t *call,
                          const ProtobufCMessage *m, void *ud)
{
    return unary(call, m, 1);
}

static int empty_blocking(ctx_t *ctx, rpc_call_t *call,
                          const ProtobufCMessage *m, void *ud)
{
    return RPC_STATUS_OK; /* no response: the server answers INTERNAL */
}

/* Sends what a StreamingOutputCallRequest asks for; returns the status it
 * asks for (0: none). */
static int stream_out(rpc_call_t *call, const ProtobufCMessage *m,
                      int blocking)
{
    const Grpc__Testing__StreamingOutputCallRequest *req = (const void *)m;
    for (size_t i = 0; i < req->n_response_parameters && i < MAX_PARAMS; i++) {
        const Grpc__Testing__ResponseParameters *rp = req->response_parameters[i];
        if (rp->compressed != NULL)
            rpc_call_set_compression(call, rp->compressed->value);
        Grpc__Testing__StreamingOutputCallResponse rsp =
            GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
        Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
        p.body = (ProtobufCBinaryData){(size_t)clamp_size(rp->size),
                                       (uint8_t *)zeros};
        rsp.payload = &p;
        int rc = blocking ? send_counted(call, &rsp.base)
                          : rpc_call_send(call, &rsp.base);
        if (rc != 0)
            break;
    }
    if (req->response_status != NULL && req->response_status->code != 0) {
        rpc_call_set_status_message(call, req->response_status->message);
        return status_of(req->response_status);
    }
    return 0;
}

static int server_stream_nb(ctx_t *ctx, rpc_call_t *call,
                            const ProtobufCMessage *m, void *ud)
{
    echo_metadata(call);
    return stream_out(call, m, 0);
}

static int client_stream_blocking(ctx_t *ctx, rpc_call_t *call,
                                  const ProtobufCMessage *m, void *ud)
{
    int32_t total = 0;
    for (;;) {
        ProtobufCMessage *in;
        int rc = recv_counted(call, &in);
        if (rc == RPC_ERR_EOF)
            break;
        if (rc == RPC_ERR_MALFORMED)
            return RPC_STATUS_INTERNAL;
        if (rc != 0)
            return RPC_STATUS_CANCELLED; /* the call has ended anyway */
        const Grpc__Testing__StreamingInputCallRequest *req = (const void *)in;
        if (req->payload != NULL)
            total += (int32_t)(req->payload->body.len & 0xffff);
        protobuf_c_message_free_unpacked(in, NULL);
    }
    Grpc__Testing__StreamingInputCallResponse rsp =
        GRPC__TESTING__STREAMING_INPUT_CALL_RESPONSE__INIT;
    rsp.aggregated_payload_size = total;
    send_counted(call, &rsp.base);
    return RPC_STATUS_OK;
}

static int half_duplex_blocking(ctx_t *ctx, rpc_call_t *call,
                                const ProtobufCMessage *m, void *ud)
{
    for (;;) {
        ProtobufCMessage *in;
        int rc = recv_counted(call, &in);
        if (rc == RPC_ERR_EOF)
            return RPC_STATUS_OK;
        if (rc == RPC_ERR_MALFORMED)
            return RPC_STATUS_INTERNAL;
        if (rc != 0)
            return RPC_STATUS_CANCELLED;
        int st = stream_out(call, in, 1);
        protobuf_c_message_free_unpacked(in, NULL);
        if (st != 0)
            return st;
    }
}

/* FullDuplexCall: event-driven on the loop; each message is answered as it
 * comes, a response_status in one ends the call with it. */
static void fd_message(rpc_call_t *call, ProtobufCMessage *m, void *ud)
{
    int st = stream_out(call, m, 0);
    protobuf_c_message_free_unpacked(m, NULL);
    if (st != 0)
        rpc_call_finish(call, st, NULL);
}

static void fd_half_close(rpc_call_t *call, void *ud)
{
    rpc_call_finish(call, RPC_STATUS_OK, NULL);
}

static void fd_done(rpc_call_t *call, void *ud)
{
    if (rpc_call_finish(call, RPC_STATUS_OK, NULL) != RPC_ERR_CLOSED)
        abort(); /* on_done: the answer was already decided */
}

static int full_duplex_nb(ctx_t *ctx, rpc_call_t *call,
                          const ProtobufCMessage *m, void *ud)
{
    static const rpc_call_events_t ev = {fd_message, fd_half_close, NULL,
                                         fd_done};
    if (m != NULL || rpc_call_set_events(call, &ev, NULL) != 0)
        abort();
    echo_metadata(call);
    return RPC_PENDING;
}

static rpc_server_t *make_server(void)
{
    static const struct {
        const char *name;
        rpc_method_kind_t kind;
        rpc_handler_style_t style;
        rpc_handler_fn fn;
    } methods[] = {
        {"UnaryCall", RPC_UNARY, RPC_NONBLOCKING, unary_nb},
        {"CacheableUnaryCall", RPC_UNARY, RPC_BLOCKING, unary_blocking},
        {"EmptyCall", RPC_UNARY, RPC_BLOCKING, empty_blocking},
        {"StreamingOutputCall", RPC_SERVER_STREAMING, RPC_NONBLOCKING,
         server_stream_nb},
        {"StreamingInputCall", RPC_CLIENT_STREAMING, RPC_BLOCKING,
         client_stream_blocking},
        {"FullDuplexCall", RPC_BIDI_STREAMING, RPC_NONBLOCKING, full_duplex_nb},
        {"HalfDuplexCall", RPC_BIDI_STREAMING, RPC_BLOCKING,
         half_duplex_blocking},
    };
    static const struct {
        rpc_server_opt_t opt;
        int64_t v;
    } opts[] = {
        /* Small limits, so short inputs reach them; no timer (keepalive,
         * handshake, idle, write, stall) that would make an input's
         * outcome depend on time.  The idle timeout is an hour rather than
         * 0 (never): see fuzz/crashers/README.md. */
        {RPC_SERVER_MAX_RECV_MESSAGE, 4096},
        {RPC_SERVER_MAX_CONCURRENT_STREAMS, 8},
        {RPC_SERVER_MAX_HEADER_LIST, 2048},
        {RPC_SERVER_KEEPALIVE_TIME_MS, 0},
        {RPC_SERVER_HANDSHAKE_TIMEOUT_MS, 0},
        {RPC_SERVER_IDLE_TIMEOUT_MS, 3600 * 1000},
        {RPC_SERVER_WRITE_TIMEOUT_MS, 0},
        {RPC_SERVER_SEND_BUFFER, 4096},
        {RPC_SERVER_SEND_STALL_TIMEOUT_MS, 0},
        {RPC_SERVER_MAX_BLOCKED_SENDS, 2},
        {RPC_SERVER_MAX_RESETS_PER_SEC, 20},
    };
    rpc_server_t *s = rpc_server_new();
    if (s == NULL)
        abort();
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++)
        if (rpc_server_set_option(s, opts[i].opt, opts[i].v) != 0)
            abort();
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
        if (rpc_server_add_method(s, &grpc__testing__test_service__descriptor,
                                  methods[i].name, methods[i].kind,
                                  methods[i].style, methods[i].fn, NULL) != 0)
            abort();
    if (rpc_server_add_health(s) != 0 || rpc_server_set_pool(s, pool) != 0 ||
        rpc__server_fuzz_start(s) != 0)
        abort();
    return s;
}

/* ---- the client end ---------------------------------------------------------- */

struct peer {
    int fd;
    uint8_t *out;
    size_t len, off;
    int eof;
    struct event *rev, *wev, *tick;
};

static void peer_read(evutil_socket_t fd, short what, void *arg)
{
    struct peer *p = arg;
    uint8_t buf[16384];
    for (int i = 0; i < 64; i++) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        p->eof = 1;
        event_del(p->rev);
        return;
    }
}

static void peer_write(evutil_socket_t fd, short what, void *arg)
{
    struct peer *p = arg;
    while (p->off < p->len) {
        ssize_t n = send(fd, p->out + p->off, p->len - p->off,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            p->off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        p->off = p->len; /* the server closed: the rest is not wanted */
    }
    event_del(p->wev);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

/* One pass of the loop, returning after 1 ms at most: pool threads drop
 * their last reference on a call without waking the loop. */
static void step(struct event_base *base, struct peer *p, int64_t deadline,
                 const char *phase)
{
    if (ctx_now() > deadline) {
        fprintf(stderr, "fuzz_server_h2: still %s after %d s\n", phase,
                (int)(LIMIT_NS / CTX_SECOND));
        abort();
    }
    struct timeval tv = {0, 1000};
    evtimer_add(p->tick, &tv);
    event_base_loop(base, EVLOOP_ONCE);
    evtimer_del(p->tick);
}

/* The server has read the whole input and nothing runs but handlers
 * waiting for the client.  Handlers still queued count as waiting too
 * when every worker is taken by one that waits (blocking handlers that
 * wait for the client can hold the whole pool: the queued ones start only
 * once the client lets one go). */
static int settled(struct peer *p)
{
    int unread = 0;
    if (p->off < p->len || ioctl(p->fd, SIOCOUTQ, &unread) != 0 || unread > 0)
        return 0;
    size_t running = ctx_pool_running(pool);
    return running <= (size_t)atomic_load(&waiting) &&
           (ctx_pool_queued(pool) == 0 ||
            running >= (size_t)ctx_pool_threads(pool));
}

static void check_counters(rpc_server_t *s)
{
    static const int causes[] = {
        RPC_CAUSE_CLIENT_CANCEL, RPC_CAUSE_PEER_GONE, RPC_CAUSE_DEADLINE,
        RPC_CAUSE_SHUTDOWN,      RPC_CAUSE_KEEPALIVE, RPC_CAUSE_FINISHED,
        RPC_CAUSE_PROTOCOL,      RPC_CAUSE_STALLED,
    };
    int64_t total = rpc_server_stat(s, RPC_STAT_CALLS_TOTAL);
    int64_t ok = rpc_server_stat(s, RPC_STAT_CALLS_OK);
    int64_t failed = rpc_server_stat(s, RPC_STAT_CALLS_FAILED);
    int64_t rejected = rpc_server_stat(s, RPC_STAT_CALLS_REJECTED);
    int64_t by_status = 0, by_cause = 0;
    for (int st = 0; st <= 16; st++)
        by_status += rpc_server_stat_status(s, st);
    for (size_t i = 0; i < sizeof causes / sizeof *causes; i++)
        by_cause += rpc_server_stat_cause(s, causes[i]);
    static int verbose = -1;
    if (verbose < 0)
        verbose = getenv("FUZZ_VERBOSE") != NULL;
    if (verbose) {
        fprintf(stderr, "calls %lld, rejected %lld, by status:", (long long)total,
                (long long)rejected);
        for (int st = 0; st <= 16; st++)
            if (rpc_server_stat_status(s, st) > 0)
                fprintf(stderr, " %s %lld", rpc_status_name(st),
                        (long long)rpc_server_stat_status(s, st));
        fprintf(stderr, "\n");
    }
    if (total != ok + failed || total != by_status ||
        total != rejected + by_cause) {
        fprintf(stderr,
                "fuzz_server_h2: counters do not balance: total %lld ok %lld "
                "failed %lld by-status %lld rejected %lld by-cause %lld\n",
                (long long)total, (long long)ok, (long long)failed,
                (long long)by_status, (long long)rejected, (long long)by_cause);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    enum { DRAIN_FIRST = 0x1, DRAIN_SETTLED = 0x2, ABORT_SETTLED = 0x4 };
    int mode = 0;
    if (size > 0) {
        mode = data[0];
        data++;
        size--;
    }
    if (pool == NULL) {
        ctx_pool_options_t po;
        ctx_pool_options_init(&po);
        po.threads = 2;
        po.queue_capacity = 16;
        if ((pool = ctx_pool_create(&po)) == NULL)
            abort();
    }
    rpc_server_t *s = make_server();
    struct event_base *base = rpc__server_fuzz_base(s);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    rpc__server_fuzz_accept(s, sv[0]);
    if (mode & DRAIN_FIRST)
        rpc__server_fuzz_drain(s);

    struct peer p = {.fd = sv[1], .len = sizeof preface - 1 + size};
    p.out = malloc(p.len);
    p.rev = event_new(base, p.fd, EV_READ | EV_PERSIST, peer_read, &p);
    p.wev = event_new(base, p.fd, EV_WRITE | EV_PERSIST, peer_write, &p);
    p.tick = evtimer_new(base, tick_cb, NULL);
    if (p.out == NULL || p.rev == NULL || p.wev == NULL || p.tick == NULL)
        abort();
    memcpy(p.out, preface, sizeof preface - 1);
    if (size > 0)
        memcpy(p.out + sizeof preface - 1, data, size);
    event_add(p.rev, NULL);
    event_add(p.wev, NULL);

    int64_t deadline = ctx_now() + LIMIT_NS;
    /* Feed the input; let the server and its handlers act on all of it. */
    while (rpc_server_stat(s, RPC_STAT_CONNECTIONS) > 0) {
        if (settled(&p)) {
            event_base_loop(base, EVLOOP_NONBLOCK);
            if (settled(&p))
                break;
        }
        step(base, &p, deadline, "taking the input");
    }
    if ((mode & DRAIN_SETTLED) && rpc_server_stat(s, RPC_STAT_CONNECTIONS) > 0)
        rpc__server_fuzz_drain(s);
    if ((mode & ABORT_SETTLED) && rpc_server_stat(s, RPC_STAT_CONNECTIONS) > 0)
        rpc__server_fuzz_abort(s);
    /* The client goes quiet: everything must end. */
    event_del(p.wev);
    shutdown(p.fd, SHUT_WR);
    while (rpc_server_stat(s, RPC_STAT_CONNECTIONS) > 0 ||
           rpc_server_stat(s, RPC_STAT_CALLS_ACTIVE) > 0)
        step(base, &p, deadline, "ending the connection and its calls");

    event_free(p.rev);
    event_free(p.wev);
    event_free(p.tick);
    check_counters(s);
    rpc_server_free(s);
    close(p.fd);
    free(p.out);
    return 0;
}
