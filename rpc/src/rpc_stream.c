/*
 * rpc_stream.c -- the byte-stream seam under the HTTP/2 glue: the plain
 * constructor (TCP or a Unix-domain socket); the TLS one, over the same
 * fd, is rpc__stream_tls() in rpc_tls.c, and nothing above changes.  Also
 * the one-time libevent setup and peer-address formatting.
 */
#include "rpc_h2.h"

#include <arpa/inet.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

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
    } else if (ss.ss_family == AF_UNIX) {
        struct sockaddr_un *un = (struct sockaddr_un *)&ss;
        size_t n = sl > offsetof(struct sockaddr_un, sun_path)
                       ? sl - offsetof(struct sockaddr_un, sun_path)
                       : 0;
        if (n == 0) { /* an unnamed client socket: name our end */
            sl = sizeof ss;
            if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
                sl = 0;
            n = sl > offsetof(struct sockaddr_un, sun_path)
                    ? sl - offsetof(struct sockaddr_un, sun_path)
                    : 0;
        }
        if (n > 0 && un->sun_path[0] == '\0') /* abstract: no NUL end */
            snprintf(buf, len, "unix-abstract:%.*s", (int)(n - 1),
                     un->sun_path + 1);
        else
            snprintf(buf, len, "unix:%.*s", (int)strnlen(un->sun_path, n),
                     un->sun_path);
    } else {
        snprintf(buf, len, "unknown");
    }
}
