/*
 * rpc_stream.c -- the byte-stream seam under the HTTP/2 glue.  Today one
 * constructor, plain TCP; a TLS one (bufferevent_openssl_socket_new over
 * the same fd) would sit beside it and nothing above would change.  Also
 * the one-time libevent setup and peer-address formatting.
 */
#include "rpc_h2.h"

#include <arpa/inet.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static pthread_once_t libevent_once = PTHREAD_ONCE_INIT;

static void libevent_setup(void)
{
    evthread_use_pthreads();
}

void rpc__libevent_init(void)
{
    pthread_once(&libevent_once, libevent_setup);
}

struct bufferevent *rpc__stream_plain(struct event_base *base, int fd)
{
    int one = 1;
    /* gRPC traffic is request/response: never wait for Nagle. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    evutil_make_socket_nonblocking(fd);
    return bufferevent_socket_new(base, fd,
                                  BEV_OPT_CLOSE_ON_FREE);
}

void rpc__stream_peer_name(int fd, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0) {
        snprintf(buf, len, "unknown");
        return;
    }
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(buf, len, "ipv4:%s:%u", host, ntohs(in->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(buf, len, "ipv6:[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        snprintf(buf, len, "unix:");
    }
}
