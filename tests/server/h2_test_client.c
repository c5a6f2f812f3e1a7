/*
 * h2_test_client.c -- see h2_test_client.h.  Blocking socket, poll() with
 * bounded timeouts, nghttp2 client session with mem_recv/mem_send.
 */
#include "h2_test_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct h2t_stream *find(h2t_t *c, int32_t id)
{
    for (int i = 0; i < c->nstreams; i++)
        if (c->streams[i].id == id)
            return &c->streams[i];
    return NULL;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f,
                     const uint8_t *name, size_t nl, const uint8_t *value,
                     size_t vl, uint8_t flags, void *ud)
{
    struct h2t_stream *st = find(ud, f->hd.stream_id);
    if (st == NULL)
        return 0;
    if (nl == 7 && memcmp(name, ":status", 7) == 0)
        st->http_status = atoi((const char *)value);
    else if (nl == 11 && memcmp(name, "grpc-status", 11) == 0)
        st->grpc_status = atoi((const char *)value);
    else if (nl == 12 && memcmp(name, "grpc-message", 12) == 0)
        snprintf(st->grpc_message, sizeof st->grpc_message, "%.*s", (int)vl,
                 (const char *)value);
    else if (st->trailer_key[0] && nl == strlen(st->trailer_key) &&
             memcmp(name, st->trailer_key, nl) == 0)
        snprintf(st->trailer_val, sizeof st->trailer_val, "%.*s", (int)vl,
                 (const char *)value);
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id,
                   const uint8_t *data, size_t len, void *ud)
{
    struct h2t_stream *st = find(ud, id);
    if (st) {
        size_t room = sizeof st->data - st->data_len;
        memcpy(st->data + st->data_len, data, len < room ? len : room);
        st->data_len += len < room ? len : room;
    }
    return 0;
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    struct h2t_stream *st = find(ud, id);
    if (st) {
        st->closed = 1;
        st->rst_code = code;
    }
    return 0;
}

static int on_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    h2t_t *c = ud;
    if (f->hd.type == NGHTTP2_GOAWAY) {
        if (c->goaway < 4)
            c->goaway_last_id[c->goaway] = f->goaway.last_stream_id;
        c->goaway++;
        c->goaway_code = f->goaway.error_code;
    }
    return 0;
}

int h2t_connect(h2t_t *c, int port)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
    int rv = nghttp2_session_client_new(&c->sess, cb, c);
    nghttp2_session_callbacks_del(cb);
    if (rv != 0)
        return -1;
    nghttp2_submit_settings(c->sess, NGHTTP2_FLAG_NONE, NULL, 0);
    return h2t_flush(c);
}

struct body {
    const uint8_t *p;
    size_t len, off;
    int end;
};

static ssize_t body_read(nghttp2_session *s, int32_t id, uint8_t *buf,
                         size_t len, uint32_t *flags, nghttp2_data_source *src,
                         void *ud)
{
    struct body *b = src->ptr;
    size_t n = b->len - b->off < len ? b->len - b->off : len;
    memcpy(buf, b->p + b->off, n);
    b->off += n;
    if (b->off == b->len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (!b->end)
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        free((void *)b->p);
        free(b);
    }
    return (ssize_t)n;
}

int h2t_call(h2t_t *c, const char *path, const void *msg, size_t len, int end,
             ...)
{
    if (c->nstreams == H2T_MAX_STREAMS)
        return -1;
    nghttp2_nv nv[16];
    size_t n = 0;
#define NV(k, v) nv[n++] = (nghttp2_nv){(uint8_t *)(k), (uint8_t *)(v), \
                                        strlen(k), strlen(v), 0}
    NV(":method", "POST");
    NV(":scheme", "http");
    NV(":authority", "localhost");
    NV(":path", path);
    NV("content-type", "application/grpc");
    NV("te", "trailers");
    va_list ap;
    va_start(ap, end);
    const char *k;
    while ((k = va_arg(ap, const char *)) != NULL && n < 16) {
        const char *v = va_arg(ap, const char *);
        NV(k, v);
    }
    va_end(ap);
    nghttp2_data_provider dp, *dpp = NULL;
    if (msg != NULL) {
        struct body *b = calloc(1, sizeof *b);
        uint8_t *p = malloc(len + 5);
        p[0] = 0;
        p[1] = (uint8_t)(len >> 24);
        p[2] = (uint8_t)(len >> 16);
        p[3] = (uint8_t)(len >> 8);
        p[4] = (uint8_t)len;
        memcpy(p + 5, msg, len);
        b->p = p;
        b->len = len + 5;
        b->end = end;
        dp.source.ptr = b;
        dp.read_callback = body_read;
        dpp = &dp;
    }
    int32_t id = nghttp2_submit_request(c->sess, NULL, nv, n, dpp, NULL);
    if (id < 0)
        return -1;
    struct h2t_stream *st = &c->streams[c->nstreams];
    memset(st, 0, sizeof *st);
    st->id = id;
    st->grpc_status = -1;
    return c->nstreams++;
}

int h2t_flush(h2t_t *c)
{
    /* Everything nghttp2 has queued goes out in one send(), as real
     * clients coalesce frames: 200 RST_STREAMs are one segment, not 200
     * system calls the server would see trickle in. */
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    const uint8_t *data;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(c->sess, &data)) > 0) {
        if (len + (size_t)n > cap) {
            size_t ncap = cap ? cap * 2 : 16384;
            while (ncap < len + (size_t)n)
                ncap *= 2;
            uint8_t *nb = realloc(buf, ncap);
            if (nb == NULL) {
                free(buf);
                return -1;
            }
            buf = nb;
            cap = ncap;
        }
        memcpy(buf + len, data, (size_t)n);
        len += (size_t)n;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(c->fd, buf + off, len - off, MSG_NOSIGNAL);
        if (w <= 0) {
            free(buf);
            return -1;
        }
        off += (size_t)w;
    }
    free(buf);
    return n < 0 ? -1 : 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int h2t_run(h2t_t *c, int timeout_ms, int (*cond)(h2t_t *, void *), void *arg)
{
    int64_t end = now_ms() + timeout_ms;
    while (!(cond && cond(c, arg))) {
        int64_t left = end - now_ms();
        if (left <= 0 || c->eof)
            return cond && cond(c, arg) ? 0 : -1;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        uint8_t buf[16384];
        ssize_t r = recv(c->fd, buf, sizeof buf, 0);
        if (r <= 0) {
            c->eof = 1;
            continue;
        }
        if (nghttp2_session_mem_recv(c->sess, buf, (size_t)r) < 0)
            return -1;
        h2t_flush(c);
    }
    return 0;
}

int h2t_closed(h2t_t *c, void *arg)
{
    return c->streams[*(int *)arg].closed;
}

int h2t_unary_status(int port, const char *path, int timeout_ms)
{
    h2t_t c;
    if (h2t_connect(&c, port) != 0)
        return -1;
    int i = h2t_call(&c, path, "", 0, 1, NULL);
    int st = -1;
    if (i >= 0 && h2t_flush(&c) == 0 &&
        h2t_run(&c, timeout_ms, h2t_closed, &i) == 0)
        st = c.streams[i].grpc_status;
    h2t_close(&c);
    return st;
}

void h2t_close(h2t_t *c)
{
    if (c->sess)
        nghttp2_session_del(c->sess);
    c->sess = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}
