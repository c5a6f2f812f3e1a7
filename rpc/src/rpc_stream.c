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

void rpc__sockaddr_name(const struct sockaddr *sa, socklen_t sl,
                        int family_prefix, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(buf, len, "%s%s:%u", family_prefix ? "ipv4:" : "", host,
                 ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(buf, len, "%s[%s]:%u", family_prefix ? "ipv6:" : "", host,
                 ntohs(in6->sin6_port));
    } else if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *un = (const void *)sa;
        size_t n = sl > offsetof(struct sockaddr_un, sun_path)
                       ? sl - offsetof(struct sockaddr_un, sun_path)
                       : 0;
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

void rpc__stream_peer_name(int fd, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0) {
        snprintf(buf, len, "unknown");
        return;
    }
    if (ss.ss_family == AF_UNIX &&
        sl <= offsetof(struct sockaddr_un, sun_path)) {
        /* An unnamed client socket: name our end. */
        sl = sizeof ss;
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
            sl = 0;
    }
    rpc__sockaddr_name((const struct sockaddr *)&ss, sl, 1, buf, len);
}
