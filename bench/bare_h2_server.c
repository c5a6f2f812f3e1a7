/*
 * bare_h2_server -- the floor of our own stack for the server benchmark: a
 * bare nghttp2 + libevent h2c server that answers every request with the
 * same canned gRPC response (HEADERS, one DATA with a 16-byte message,
 * trailers grpc-status 0).  No protobuf, no contexts, no handlers, one
 * thread.  Everything rpc_server adds is measured against this.
 *
 *   bare_h2_server PORT        (prints "listening on port N"; SIGTERM stops)
 *
 * Same I/O pattern as rpc/src/rpc_h2.c: feed every read batch to
 * nghttp2_session_mem_recv, then write once per batch.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <nghttp2/nghttp2.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 5-byte prefix + a 16-byte message (field 3, bytes, 14 bytes). */
static const uint8_t canned[21] = {0, 0, 0, 0, 16, 0x1a, 14, 'b', 'e', 'n',
                                   'c', 'h', '-', 'p', 'a', 'y', 'l', 'o',
                                   'a', 'd', '!'};

struct conn {
    struct bufferevent *bev;
    nghttp2_session *sess;
};

static ssize_t read_cb(nghttp2_session *s, int32_t id, uint8_t *buf,
                       size_t len, uint32_t *flags, nghttp2_data_source *src,
                       void *ud)
{
    memcpy(buf, canned, sizeof canned);
    *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    nghttp2_nv tr[] = {{(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, 0}};
    nghttp2_submit_trailer(s, id, tr, 1);
    return sizeof canned;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        nghttp2_nv hdrs[] = {
            {(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0},
            {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, 0},
        };
        nghttp2_data_provider dp = {.read_callback = read_cb};
        nghttp2_submit_response(s, f->hd.stream_id, hdrs, 2, &dp);
    }
    return 0;
}

static void flush(struct conn *c)
{
    const uint8_t *data;
    ssize_t n;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    while ((n = nghttp2_session_mem_send(c->sess, &data)) > 0)
        evbuffer_add(out, data, (size_t)n);
}

static void conn_free(struct conn *c)
{
    nghttp2_session_del(c->sess);
    bufferevent_free(c->bev);
    free(c);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    uint8_t *data = evbuffer_pullup(in, -1);
    if (nghttp2_session_mem_recv(c->sess, data, len) < 0) {
        conn_free(c);
        return;
    }
    evbuffer_drain(in, len);
    flush(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        conn_free(arg);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
    struct conn *c = calloc(1, sizeof *c);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->bev = bufferevent_socket_new(arg, fd, BEV_OPT_CLOSE_ON_FREE);
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_server_new(&c->sess, cb, c);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1000}};
    nghttp2_submit_settings(c->sess, NGHTTP2_FLAG_NONE, iv, 1);
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    flush(c);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: bare_h2_server PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = event_base_new();
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)atoi(argv[1]))};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct evconnlistener *l = evconnlistener_new_bind(
        base, on_accept, base, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
        (struct sockaddr *)&sin, sizeof sin);
    if (l == NULL) {
        perror("bare_h2_server: listen");
        return 1;
    }
    struct event *sig = evsignal_new(base, SIGTERM, on_signal, base);
    event_add(sig, NULL);
    struct sockaddr_in bound;
    socklen_t bl = sizeof bound;
    getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&bound, &bl);
    printf("listening on port %d\n", ntohs(bound.sin_port));
    fflush(stdout);
    event_base_dispatch(base);
    event_free(sig);
    evconnlistener_free(l);
    event_base_free(base);
    return 0;
}
