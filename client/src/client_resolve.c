/*
 * client_resolve.c -- the channel's target (gRPC naming: host:port,
 * dns:///host:port, ipv4:/ipv6: lists, unix:, unix-abstract:), parsed at
 * creation (rpc__target_parse), and turned into addresses for a
 * connection attempt or a round_robin resolution without ever blocking
 * the loop thread.  A static target (a list, a Unix socket) is copied at
 * once; a host name is resolved as below, every A and AAAA record.
 *
 * A numeric host ("127.0.0.1", "::1") is parsed on the spot: getaddrinfo
 * with AI_NUMERICHOST never touches the network; a name under "invalid."
 * fails on the spot (RFC 6761).  Any other name goes to
 * libevent's asynchronous resolver (evdns: /etc/hosts first, then the
 * nameservers of /etc/resolv.conf), which waits for the DNS answer on the
 * channel's own event base.  The resolver (ch->dns) is created the first
 * time a name needs it, so a channel to a numeric address never opens one,
 * and is freed by rpc__resolve_shutdown() when the loop ends.
 *
 * One resolution:
 *
 *   rpc__resolve_start --- answered at once (numeric, /etc/hosts, error):
 *        |                 rpc__conn_resolved() has run; returns NULL
 *        |
 *        +-- pending: returns r, which the connection keeps (c->rq)
 *              |-- answer or error --> on_resolved: r freed,
 *              |                       rpc__conn_resolved()
 *              +-- rpc__resolve_cancel (connect deadline, connection
 *                  destroyed): r->c = NULL, so the callback that evdns
 *                  still owes (EVUTIL_EAI_CANCEL) frees r and any result
 *                  and touches no connection.
 *
 * evdns answers every pending request, a cancelled one included, through
 * a deferred callback on the event base: it runs on a later loop
 * iteration.  ch->resolving counts the callbacks still due, and
 * rpc__resolve_shutdown() turns the loop until they have run before it
 * frees the resolver (whose requests they point into).
 *
 * Threads: the loop thread only, except rpc__client_set_nameserver() and
 * rpc__client_nameserver() (any thread, under ns_mu).
 */
#include "client_internal.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <stddef.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

struct rpc__resolve {
    rpc_client_channel_t *ch;
    rpc__resolved_fn fn;
    void *arg;                             /* NULL once cancelled */
    struct evdns_getaddrinfo_request *req; /* NULL until pending */
};

/* ---- the test hook: one documented piece of global state --------------- */

static pthread_mutex_t ns_mu = PTHREAD_MUTEX_INITIALIZER;
static char *ns_override; /* ns_mu: "ip[:port]" or NULL */

int rpc__client_set_nameserver(const char *addr)
{
    char *copy = NULL;
    if (addr != NULL && (copy = rpc__strdup(addr)) == NULL)
        return RPC_ERR_NOMEM;
    pthread_mutex_lock(&ns_mu);
    char *old = ns_override;
    ns_override = copy;
    pthread_mutex_unlock(&ns_mu);
    free(old);
    return 0;
}

int rpc__client_nameserver(char **out)
{
    *out = NULL;
    int err = 0;
    pthread_mutex_lock(&ns_mu);
    if (ns_override != NULL && (*out = rpc__strdup(ns_override)) == NULL)
        err = RPC_ERR_NOMEM;
    pthread_mutex_unlock(&ns_mu);
    return err;
}

/* ---- the channel's resolver --------------------------------------------- */

static struct evdns_base *dns_of(rpc_client_channel_t *ch)
{
    if (ch->dns != NULL)
        return ch->dns;
    if (ch->nameserver == NULL) {
        /* resolv.conf (nameservers, search, options) and /etc/hosts. */
        ch->dns = evdns_base_new(ch->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
        return ch->dns;
    }
    /* The test hook: that nameserver only, and /etc/hosts (which
     * INITIALIZE_NAMESERVERS would have loaded). */
    struct evdns_base *d = evdns_base_new(ch->base, 0);
    if (d != NULL && evdns_base_nameserver_ip_add(d, ch->nameserver) != 0) {
        evdns_base_free(d, 0);
        return NULL;
    }
    if (d != NULL)
        (void)evdns_base_load_hosts(d, "/etc/hosts"); /* -1: localhost only */
    ch->dns = d;
    return d;
}

static void failed(rpc_client_channel_t *ch, rpc__resolved_fn fn, void *arg,
                   const char *why)
{
    snprintf(ch->last_error, sizeof ch->last_error, "resolve %s: %s",
             ch->target, why);
    fn(arg, NULL, ch->last_error);
}

/* evdns codes are the native EAI_* ones where the system has them (as
 * here); only the cancellation code is libevent's own.  The native text
 * keeps the messages what they were when getaddrinfo() was called. */
static const char *gai_text(int rc)
{
    return rc == EVUTIL_EAI_CANCEL ? evutil_gai_strerror(rc)
                                   : gai_strerror(rc);
}

static void on_resolved(int rc, struct evutil_addrinfo *res, void *arg)
{
    struct rpc__resolve *r = arg;
    rpc_client_channel_t *ch = r->ch;
    void *c = r->arg;
    rpc__resolved_fn fn = r->fn;
    if (r->req != NULL) /* it was pending (not answered inside start) */
        ch->resolving--;
    free(r);
    if (c == NULL) { /* cancelled: the requester is gone */
        if (res != NULL)
            evutil_freeaddrinfo(res);
        return;
    }
    if (rc != 0) {
        if (res != NULL)
            evutil_freeaddrinfo(res);
        failed(ch, fn, c, gai_text(rc));
        return;
    }
    if (res == NULL) {
        failed(ch, fn, c, "no addresses");
        return;
    }
    fn(c, res, NULL);
}

/* RFC 6761 section 6.4: names under "invalid." never resolve, and
 * resolver libraries should say so at once instead of asking a server. */
static bool special_invalid(const char *host)
{
    size_t n = strlen(host);
    if (n > 0 && host[n - 1] == '.')
        n--;
    static const char tld[] = "invalid";
    size_t t = sizeof tld - 1;
    if (n < t || strncasecmp(host + n - t, tld, t) != 0)
        return false;
    return n == t || host[n - t - 1] == '.';
}

struct rpc__resolve *rpc__resolve_start(rpc_client_channel_t *ch,
                                        rpc__resolved_fn fn, void *c)
{
    if (ch->static_ai != NULL) { /* ipv4:, ipv6:, unix: targets */
        struct addrinfo *copy = rpc__ai_copy(ch->static_ai);
        if (copy == NULL)
            failed(ch, fn, c, "out of memory");
        else
            fn(c, copy, NULL);
        return NULL;
    }
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST;
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(ch->host, ch->port, &hints, &ai);
    if (rc == 0) {
        fn(c, ai, NULL);
        return NULL;
    }
    if (rc != EAI_NONAME) { /* a bad port, say: no resolver will help */
        failed(ch, fn, c, gai_strerror(rc));
        return NULL;
    }
    if (special_invalid(ch->host)) {
        failed(ch, fn, c, gai_strerror(EAI_NONAME));
        return NULL;
    }
    struct evdns_base *dns = dns_of(ch);
    struct rpc__resolve *r = dns ? rpc__calloc(1, sizeof *r) : NULL;
    if (r == NULL) {
        failed(ch, fn, c,
               dns ? "out of memory" : "cannot start the DNS resolver");
        return NULL;
    }
    r->ch = ch;
    r->fn = fn;
    r->arg = c;
    struct evutil_addrinfo eh = {0};
    eh.ai_family = AF_UNSPEC;
    eh.ai_socktype = SOCK_STREAM;
    eh.ai_protocol = IPPROTO_TCP;
    struct evdns_getaddrinfo_request *req =
        evdns_getaddrinfo(dns, ch->host, ch->port, &eh, on_resolved, r);
    if (req == NULL)
        return NULL; /* on_resolved has run: r is freed, and c handed on
                      * to the requester, which may be gone: touch neither */
    r->req = req;
    ch->resolving++;
    return r;
}

void rpc__resolve_cancel(struct rpc__resolve *r)
{
    /* Detach first: whenever the callback runs, it must find no requester.
     * evdns defers it (cancellation included), and r belongs to it now. */
    r->arg = NULL;
    evdns_getaddrinfo_cancel(r->req);
}

void rpc__resolve_shutdown(rpc_client_channel_t *ch)
{
    /* Every pending resolution has been cancelled (the connections are
     * destroyed); their callbacks are due on this base.  Each non-blocking
     * pass runs every callback already due; a bound keeps a libevent
     * surprise from hanging the thread (a leak beats a hang). */
    for (int i = 0; i < 64 && ch->resolving > 0; i++)
        event_base_loop(ch->base, EVLOOP_NONBLOCK);
    if (ch->dns != NULL) {
        evdns_base_free(ch->dns, 1);
        ch->dns = NULL;
    }
}

/* ---- targets ---------------------------------------------------------------- */

/* One addrinfo and its address in one malloc block, as glibc's
 * getaddrinfo makes them, so evutil_freeaddrinfo (freeaddrinfo) frees it. */
static struct addrinfo *ai_new(const struct sockaddr *sa, socklen_t len)
{
    struct addrinfo *a = rpc__calloc(1, sizeof *a + (size_t)len);
    if (a == NULL)
        return NULL;
    a->ai_family = sa->sa_family;
    a->ai_socktype = SOCK_STREAM;
    a->ai_protocol = sa->sa_family == AF_UNIX ? 0 : IPPROTO_TCP;
    a->ai_addrlen = len;
    a->ai_addr = (struct sockaddr *)(a + 1);
    memcpy(a->ai_addr, sa, (size_t)len);
    return a;
}

struct addrinfo *rpc__ai_copy(const struct addrinfo *ai)
{
    struct addrinfo *head = NULL, **tail = &head;
    for (; ai != NULL; ai = ai->ai_next) {
        struct addrinfo *a = ai_new(ai->ai_addr, ai->ai_addrlen);
        if (a == NULL) {
            if (head != NULL)
                evutil_freeaddrinfo(head);
            return NULL;
        }
        *tail = a;
        tail = &a->ai_next;
    }
    return head;
}

void rpc__ai_name(const struct addrinfo *a, char *buf, size_t len)
{
    rpc__sockaddr_name(a->ai_addr, a->ai_addrlen, 0, buf, len);
}

bool rpc__ai_same(const struct addrinfo *a, const struct addrinfo *b)
{
    return a->ai_addrlen == b->ai_addrlen &&
           memcmp(a->ai_addr, b->ai_addr, a->ai_addrlen) == 0;
}

static int unix_target(rpc_client_channel_t *ch, const char *path,
                       bool abstract)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if ((!abstract && n == 0) || n + 1 >= sizeof sa.sun_path)
        return RPC_ERR_INVAL;
    socklen_t len;
    if (abstract) {
        memcpy(sa.sun_path + 1, path, n);
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    } else {
        memcpy(sa.sun_path, path, n + 1);
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    ch->static_ai = ai_new((struct sockaddr *)&sa, len);
    ch->host = rpc__strdup("localhost");
    ch->authority = rpc__strdup("localhost");
    return ch->static_ai && ch->host && ch->authority ? 0 : RPC_ERR_NOMEM;
}

/* "host:port" / "[v6]:port" into freshly allocated host and port. */
static int split_hostport(const char *s, size_t n, char **host, char **port)
{
    const char *end = s + n, *hs = s, *he, *colon;
    if (n > 0 && s[0] == '[') {
        he = memchr(s, ']', n);
        if (he == NULL || he + 1 >= end || he[1] != ':')
            return RPC_ERR_INVAL;
        hs = s + 1;
        colon = he + 1;
    } else {
        colon = NULL;
        for (const char *p = s; p < end; p++)
            if (*p == ':')
                colon = p;
        if (colon == NULL)
            return RPC_ERR_INVAL;
        he = colon;
    }
    if (colon + 1 >= end || he == hs)
        return RPC_ERR_INVAL;
    *host = rpc__strndup(hs, (size_t)(he - hs));
    *port = rpc__strndup(colon + 1, (size_t)(end - colon - 1));
    if (*host == NULL || *port == NULL) {
        free(*host);
        free(*port);
        *host = *port = NULL;
        return RPC_ERR_NOMEM;
    }
    return 0;
}

/* "ipv4:a:p,b:p" / "ipv6:[a]:p,[b]:p": numeric addresses only. */
static int list_target(rpc_client_channel_t *ch, const char *list, int family)
{
    struct addrinfo **tail = &ch->static_ai;
    const char *p = list;
    while (*p != '\0') {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char *host = NULL, *port = NULL;
        int rc = split_hostport(p, n, &host, &port);
        if (rc != 0)
            return rc;
        struct addrinfo hints = {.ai_family = family,
                                 .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
        struct addrinfo *ai = NULL;
        int g = getaddrinfo(host, port, &hints, &ai);
        if (g == 0 && ch->host == NULL) { /* the first names the channel */
            ch->authority = rpc__strndup(p, n);
            ch->host = host;
            host = NULL;
        }
        free(host);
        free(port);
        if (g != 0)
            return RPC_ERR_INVAL;
        *tail = ai_new(ai->ai_addr, ai->ai_addrlen);
        freeaddrinfo(ai);
        if (*tail == NULL || ch->authority == NULL)
            return RPC_ERR_NOMEM;
        tail = &(*tail)->ai_next;
        p = e ? e + 1 : p + n;
    }
    return ch->static_ai ? 0 : RPC_ERR_INVAL;
}

int rpc__target_parse(rpc_client_channel_t *ch, const char *target)
{
    if ((ch->target = rpc__strdup(target)) == NULL)
        return RPC_ERR_NOMEM;
    if (strncmp(target, "unix-abstract:", 14) == 0)
        return unix_target(ch, target + 14, true);
    if (strncmp(target, "unix://", 7) == 0)
        return target[7] == '/' ? unix_target(ch, target + 7, false)
                                : RPC_ERR_INVAL;
    if (strncmp(target, "unix:", 5) == 0)
        return unix_target(ch, target + 5, false);
    if (strncmp(target, "ipv4:", 5) == 0)
        return list_target(ch, target + 5, AF_INET);
    if (strncmp(target, "ipv6:", 5) == 0)
        return list_target(ch, target + 5, AF_INET6);
    const char *hp = target;
    if (strncmp(target, "dns:", 4) == 0) {
        hp = target + 4;
        if (strncmp(hp, "//", 2) == 0) { /* dns://[authority]/host:port */
            hp = strchr(hp + 2, '/');
            if (hp == NULL)
                return RPC_ERR_INVAL;
            hp++;
        }
    }
    ch->dns_name = true;
    int rc = split_hostport(hp, strlen(hp), &ch->host, &ch->port);
    if (rc == 0 && (ch->authority = rpc__strdup(hp)) == NULL)
        rc = RPC_ERR_NOMEM;
    return rc;
}
