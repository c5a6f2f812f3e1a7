/*
 * h2_test_client.h -- a tiny blocking HTTP/2 client for the server's C
 * tests: an nghttp2 client session over a loopback socket, driven by hand
 * so a test can do what well-behaved clients never do (stop reading, never
 * answer pings, reset streams, vanish).  Test code only.
 */
#ifndef H2_TEST_CLIENT_H
#define H2_TEST_CLIENT_H

#include <nghttp2/nghttp2.h>
#include <stddef.h>
#include <stdint.h>

#define H2T_MAX_STREAMS 256

struct h2t_stream {
    int32_t id;
    int http_status;
    int grpc_status;      /* -1 until seen */
    char grpc_message[256];
    char trailer_key[64]; /* one trailer to look for */
    char trailer_val[256];
    size_t data_len;
    uint8_t data[1024];
    int closed;
    uint32_t rst_code;
};

typedef struct h2t {
    int fd;
    nghttp2_session *sess;
    struct h2t_stream streams[H2T_MAX_STREAMS];
    int nstreams;
    int goaway;           /* GOAWAYs received */
    uint32_t goaway_code;
    int32_t goaway_last_id[4]; /* last-stream-id of the first four */
    int eof;              /* the server closed the connection */
} h2t_t;

/* Connects to 127.0.0.1:port and queues the preface + SETTINGS.  0 or -1. */
int h2t_connect(h2t_t *c, int port);
/* Starts a gRPC request to path with one message (body of len bytes,
 * framed here) unless body is NULL; extra headers as "name", "value"
 * pairs, NULL-terminated.  end: half-close after the message.  Returns the
 * stream index or -1. */
int h2t_call(h2t_t *c, const char *path, const void *body, size_t len,
             int end, ...);
/* Sends what is queued.  0 or -1. */
int h2t_flush(h2t_t *c);
/* Reads and processes frames until cond(c, arg) is true or timeout_ms
 * passes; sends responses (acks) as nghttp2 queues them unless no_ack.
 * Returns 0 when cond became true, -1 on timeout/error. */
int h2t_run(h2t_t *c, int timeout_ms, int (*cond)(h2t_t *, void *), void *arg);
/* Condition: stream index *(int *)arg is closed. */
int h2t_closed(h2t_t *c, void *arg);
void h2t_close(h2t_t *c);
/* One unary call with an empty message on a fresh connection to `port`:
 * its grpc-status, or -1 (connect failed, or no answer in timeout_ms). */
int h2t_unary_status(int port, const char *path, int timeout_ms);

#endif
