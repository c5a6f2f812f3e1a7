/*
 * rpc_h2.c -- an nghttp2 session driven by a libevent bufferevent (see
 * rpc_h2.h for the contract).
 *
 * Read path: the bufferevent read callback hands every contiguous chunk of
 * the input buffer to nghttp2_session_mem_recv(), which runs the owner's
 * frame/header/data callbacks synchronously; then one flush writes every
 * frame those callbacks produced (one write per read batch, which is what
 * keeps the per-call syscall count low).
 *
 * Write path: rpc__h2_flush() pulls frames with nghttp2_session_mem_send()
 * (which returns pointers into nghttp2's own buffer, valid until the next
 * call) and appends them to the output evbuffer, stopping at the high-water
 * mark; the write callback fires when the kernel has taken the output down
 * to the low-water mark and flushes again.
 *
 * Closing never happens inside a flush or inside nghttp2: it activates a
 * zero-delay event whose callback calls on_close, so the owner can free
 * everything from there.
 */
#include "rpc_h2.h"
#include "rpc_internal.h"
#include "rpc_tls.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <event2/buffer.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>

struct rpc__h2 {
    struct bufferevent *bev;
    nghttp2_session *session;
    struct event *close_ev;
    struct evbuffer *stage; /* plain sockets: frames on their way out */
    int fd;                 /* ... and that socket */
    rpc__h2_close_cb on_close;
    void (*on_read)(void *user_data);
    void *user_data;
    size_t out_high;
    int closing;       /* close scheduled or flushing before close */
    int close_reason;
    int flush_then_close;
    int proto_error;   /* a fatal nghttp2 error: the GOAWAY it queued (if
                          any) goes out, then RPC__H2_PROTOCOL */
    char detail[160];  /* why the stream failed (TLS), or "" */
    /* Server sessions: the input scanner (see scan_feed). */
    int scan;              /* active */
    size_t preface_left;   /* client magic bytes still to pass */
    size_t payload_left;   /* of the current frame, to pass */
    size_t drop_left;      /* of the current frame, to drop */
    uint8_t hdr[9];        /* a frame header split across reads */
    size_t hdr_len;
    uint32_t max_stream;   /* highest client stream a HEADERS opened */
    uint64_t idle_rst_dropped;
};

uint64_t rpc__h2_idle_resets_dropped(const rpc__h2_t *h2)
{
    return h2->idle_rst_dropped;
}

const char *rpc__h2_close_reason_name(int reason)
{
    switch (reason) {
    case RPC__H2_EOF: return "peer closed the connection";
    case RPC__H2_IO_ERROR: return "socket error";
    case RPC__H2_TIMEOUT: return "timeout (peer not reading or silent)";
    case RPC__H2_PROTOCOL: return "HTTP/2 protocol error";
    case RPC__H2_DONE: return "connection finished";
    default: return "unknown";
    }
}

static void schedule_close(rpc__h2_t *h2, int reason)
{
    if (h2->close_reason != 0)
        return;
    h2->closing = 1;
    h2->close_reason = reason;
    bufferevent_disable(h2->bev, EV_READ | EV_WRITE);
    event_active(h2->close_ev, EV_TIMEOUT, 0);
}

static void close_cb(evutil_socket_t fd, short what, void *arg)
{
    rpc__h2_t *h2 = arg;
    h2->on_close(h2, h2->close_reason, h2->user_data);
}

/* Writes what `stage` holds straight to the socket (MSG_NOSIGNAL: a peer
 * that vanished is an error, not a SIGPIPE).  What the kernel does not
 * take now goes to the bufferevent, which writes it when the socket is
 * writable; a socket error closes the connection (RPC__H2_IO_ERROR).
 * Returns true when everything went out. */
static bool write_direct(rpc__h2_t *h2)
{
    struct evbuffer_iovec v[16];
    int fd = h2->fd;
    while (evbuffer_get_length(h2->stage) > 0) {
        int n = evbuffer_peek(h2->stage, -1, NULL, v, 16);
        if (n > 16)
            n = 16;
        struct msghdr msg = {0};
        msg.msg_iov = (struct iovec *)v;
        msg.msg_iovlen = (size_t)n;
        ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            evbuffer_drain(h2->stage, evbuffer_get_length(h2->stage));
            schedule_close(h2, RPC__H2_IO_ERROR);
            return false;
        }
        if (w <= 0)
            break;
        evbuffer_drain(h2->stage, (size_t)w);
    }
    if (evbuffer_get_length(h2->stage) == 0)
        return true;
    bufferevent_write_buffer(h2->bev, h2->stage);
    return false;
}

int rpc__h2_flush(rpc__h2_t *h2)
{
    if (h2->close_reason != 0)
        return -1;
    struct evbuffer *out = bufferevent_get_output(h2->bev);
    /* A plain socket with nothing queued in the bufferevent: frames are
     * staged and written at once, which spares the loop a round of
     * EPOLLOUT and two epoll_ctl calls per flush. */
    bool direct = h2->stage != NULL && evbuffer_get_length(out) == 0;
    struct evbuffer *dst = direct ? h2->stage : out;
    for (;;) {
        bool more = false;
        while (evbuffer_get_length(dst) < h2->out_high) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(h2->session, &data);
            if (n < 0) {
                evbuffer_drain(dst, evbuffer_get_length(dst));
                schedule_close(h2, RPC__H2_PROTOCOL);
                return -1;
            }
            if (n == 0)
                break;
            if (evbuffer_add(dst, data, (size_t)n) != 0) {
                schedule_close(h2, RPC__H2_IO_ERROR);
                return -1;
            }
            more = evbuffer_get_length(dst) >= h2->out_high;
        }
        if (!direct || !write_direct(h2) || !more)
            break;
    }
    if (h2->close_reason != 0)
        return -1;
    if (evbuffer_get_length(out) == 0 &&
        (h2->flush_then_close || (!nghttp2_session_want_read(h2->session) &&
                                  !nghttp2_session_want_write(h2->session)))) {
        schedule_close(h2, h2->proto_error ? RPC__H2_PROTOCOL : RPC__H2_DONE);
        return -1;
    }
    return 0;
}

/* Feeds nghttp2; -1 when it failed (the connection is then closing). */
static int feed(rpc__h2_t *h2, const uint8_t *p, size_t n)
{
    if (n == 0)
        return 0;
    ssize_t r = nghttp2_session_mem_recv(h2->session, p, n);
    if (r < 0) {
        /* Bad client magic, a callback that gave up on the peer (GOAWAY
         * ENHANCE_YOUR_CALM) and friends: stop reading, let the GOAWAY
         * nghttp2 or the owner queued go out (bounded by the write
         * timeout), then close with RPC__H2_PROTOCOL. */
        struct evbuffer *in = bufferevent_get_input(h2->bev);
        evbuffer_drain(in, evbuffer_get_length(in));
        const uint8_t *data;
        ssize_t m;
        while ((m = nghttp2_session_mem_send(h2->session, &data)) > 0)
            bufferevent_write(h2->bev, data, (size_t)m);
        h2->proto_error = 1;
        h2->flush_then_close = 1;
        h2->closing = 1;
        bufferevent_disable(h2->bev, EV_READ);
        if (evbuffer_get_length(bufferevent_get_output(h2->bev)) == 0)
            schedule_close(h2, RPC__H2_PROTOCOL);
        return -1;
    }
    return 0;
}

/* The server's input scanner: it follows the frame boundaries and drops
 * an RST_STREAM for a client stream no HEADERS has opened yet (an "idle"
 * stream), which nghttp2 would answer with a connection error (GOAWAY
 * PROTOCOL_ERROR) that fails every call on the connection.  grpc C-core
 * clients send one when a call is cancelled between the moment its stream
 * id is assigned and the moment its HEADERS are written: the reset goes
 * out first, from the control-frame queue, and the HEADERS never do.
 * grpc-go and C-core servers ignore such a reset; so does this one.
 * Everything else passes through in runs as long as the reads, so the
 * scan costs one pass over 9-byte frame headers. */
static int scan_feed(rpc__h2_t *h2, const uint8_t *p, size_t n)
{
    const uint8_t *run = p; /* bytes passed through but not yet fed */
    while (n > 0) {
        size_t k;
        if (h2->preface_left > 0) {
            k = n < h2->preface_left ? n : h2->preface_left;
            h2->preface_left -= k;
        } else if (h2->drop_left > 0) {
            k = n < h2->drop_left ? n : h2->drop_left;
            h2->drop_left -= k;
            p += k;
            n -= k;
            run = p;
            continue;
        } else if (h2->payload_left > 0) {
            k = n < h2->payload_left ? n : h2->payload_left;
            h2->payload_left -= k;
        } else {
            /* A frame header: whole in this read, or split across two. */
            const uint8_t *hd = p;
            if (h2->hdr_len > 0 || n < 9) {
                if (h2->hdr_len == 0 && feed(h2, run, (size_t)(p - run)) != 0)
                    return -1;
                k = 9 - h2->hdr_len < n ? 9 - h2->hdr_len : n;
                memcpy(h2->hdr + h2->hdr_len, p, k);
                h2->hdr_len += k;
                p += k;
                n -= k;
                run = p;
                if (h2->hdr_len < 9)
                    break;
                hd = h2->hdr;
                k = 0;
            } else {
                k = 9;
            }
            size_t len = (size_t)hd[0] << 16 | (size_t)hd[1] << 8 | hd[2];
            uint32_t sid = ((uint32_t)hd[5] << 24 | (uint32_t)hd[6] << 16 |
                            (uint32_t)hd[7] << 8 | hd[8]) & 0x7fffffffu;
            int split = hd == h2->hdr;
            h2->hdr_len = 0;
            if (hd[3] == NGHTTP2_HEADERS && (sid & 1) && sid > h2->max_stream)
                h2->max_stream = sid;
            if (hd[3] == NGHTTP2_RST_STREAM && len == 4 && (sid & 1) &&
                sid > h2->max_stream) {
                if (!split && feed(h2, run, (size_t)(p - run)) != 0)
                    return -1;
                h2->idle_rst_dropped++;
                h2->drop_left = 4;
                p += k;
                n -= k;
                run = p;
                continue;
            }
            if (split && feed(h2, h2->hdr, 9) != 0)
                return -1;
            h2->payload_left = len;
        }
        p += k;
        n -= k;
    }
    return feed(h2, run, (size_t)(p - run));
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    rpc__h2_t *h2 = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_iovec v[8];
    if (h2->on_read != NULL)
        h2->on_read(h2->user_data);
    while (h2->close_reason == 0 && evbuffer_get_length(in) > 0) {
        int n = evbuffer_peek(in, -1, NULL, v, 8);
        if (n > 8)
            n = 8;
        size_t used = 0;
        for (int i = 0; i < n; i++) {
            int rc = h2->scan ? scan_feed(h2, v[i].iov_base, v[i].iov_len)
                              : feed(h2, v[i].iov_base, v[i].iov_len);
            if (rc != 0)
                return; /* closing; the input was drained */
            used += v[i].iov_len;
        }
        evbuffer_drain(in, used);
    }
    rpc__h2_flush(h2);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    rpc__h2_flush(arg);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    rpc__h2_t *h2 = arg;
    if (what & BEV_EVENT_EOF)
        schedule_close(h2, RPC__H2_EOF);
    else if (what & BEV_EVENT_TIMEOUT)
        schedule_close(h2, RPC__H2_TIMEOUT);
    else if (what & BEV_EVENT_ERROR) {
        if (rpc__stream_ssl(bev) != NULL && h2->close_reason == 0)
            rpc__tls_error_text(bev, h2->detail, sizeof h2->detail);
        schedule_close(h2, RPC__H2_IO_ERROR);
    }
}

void rpc__block_sigpipe(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void *mem_malloc(size_t size, void *ud)
{
    (void)ud;
    return ctx__mc_alloc(size);
}

static void mem_free(void *p, void *ud)
{
    (void)ud;
    ctx__mc_free(p);
}

static void *mem_calloc(size_t n, size_t size, void *ud)
{
    (void)ud;
    return ctx__mc_calloc(n, size);
}

static void *mem_realloc(void *p, size_t size, void *ud)
{
    (void)ud;
    return realloc(p, size);
}

nghttp2_mem *rpc__h2_mem(void)
{
    static nghttp2_mem mem = {NULL, mem_malloc, mem_free, mem_calloc,
                              mem_realloc};
    return &mem;
}

rpc__h2_t *rpc__h2_new(struct bufferevent *bev, nghttp2_session *session,
                       size_t out_high, rpc__h2_close_cb on_close,
                       void *user_data)
{
    rpc__h2_t *h2 = rpc__calloc(1, sizeof *h2);
    if (h2 == NULL)
        return NULL;
    h2->close_ev = event_new(bufferevent_get_base(bev), -1, 0, close_cb, h2);
    if (h2->close_ev == NULL) {
        free(h2);
        return NULL;
    }
    h2->bev = bev;
    h2->session = session;
    h2->on_close = on_close;
    h2->user_data = user_data;
    h2->out_high = out_high ? out_high : 256 * 1024;
    h2->fd = bufferevent_getfd(bev);
    if (rpc__stream_ssl(bev) == NULL && h2->fd >= 0) {
        h2->stage = evbuffer_new();
        if (h2->stage == NULL) {
            event_free(h2->close_ev);
            free(h2);
            return NULL;
        }
    }
    if (nghttp2_session_check_server_session(session)) {
        h2->scan = 1;
        h2->preface_left = NGHTTP2_CLIENT_MAGIC_LEN;
    }
    /* Write callback when the output has drained to a quarter. */
    bufferevent_setwatermark(bev, EV_WRITE, h2->out_high / 4, 0);
    bufferevent_setcb(bev, read_cb, write_cb, event_cb, h2);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    return h2;
}

void rpc__h2_on_read(rpc__h2_t *h2, void (*fn)(void *user_data))
{
    h2->on_read = fn;
}

void rpc__h2_close_after_flush(rpc__h2_t *h2)
{
    if (h2->close_reason != 0)
        return;
    h2->flush_then_close = 1;
    h2->closing = 1;
    bufferevent_disable(h2->bev, EV_READ);
    rpc__h2_flush(h2);
}

void rpc__h2_close_now(rpc__h2_t *h2, int reason)
{
    schedule_close(h2, reason);
}

void rpc__h2_set_timeouts(rpc__h2_t *h2, int64_t read_ns, int64_t write_ns)
{
    struct timeval r = {(time_t)(read_ns / 1000000000),
                        (suseconds_t)(read_ns % 1000000000 / 1000)};
    struct timeval w = {(time_t)(write_ns / 1000000000),
                        (suseconds_t)(write_ns % 1000000000 / 1000)};
    bufferevent_set_timeouts(h2->bev, read_ns > 0 ? &r : NULL,
                             write_ns > 0 ? &w : NULL);
}

void rpc__h2_free(rpc__h2_t *h2)
{
    if (h2 == NULL)
        return;
    event_free(h2->close_ev);
    nghttp2_session_del(h2->session);
    bufferevent_free(h2->bev);
    if (h2->stage)
        evbuffer_free(h2->stage);
    free(h2);
}

nghttp2_session *rpc__h2_session(rpc__h2_t *h2) { return h2->session; }
const char *rpc__h2_close_detail(const rpc__h2_t *h2) { return h2->detail; }
struct bufferevent *rpc__h2_bev(rpc__h2_t *h2) { return h2->bev; }
int rpc__h2_closing(const rpc__h2_t *h2) { return h2->closing; }

size_t rpc__h2_pending_output(const rpc__h2_t *h2)
{
    return evbuffer_get_length(bufferevent_get_output(h2->bev));
}
