/*
 * client_resolve.c -- turning the channel's host and port into addresses
 * for a connection attempt without ever blocking the loop thread.
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
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

struct rpc__resolve {
    rpc_client_channel_t *ch;
    struct conn *c;                        /* NULL once cancelled */
    struct evdns_getaddrinfo_request *req; /* NULL until pending */
};

/* ---- the test hook: one documented piece of global state --------------- */

static pthread_mutex_t ns_mu = PTHREAD_MUTEX_INITIALIZER;
static char *ns_override; /* ns_mu: "ip[:port]" or NULL */

int rpc__client_set_nameserver(const char *addr)
{
    char *copy = NULL;
    if (addr != NULL && (copy = strdup(addr)) == NULL)
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
    if (ns_override != NULL && (*out = strdup(ns_override)) == NULL)
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

static void failed(rpc_client_channel_t *ch, struct conn *c, const char *why)
{
    snprintf(ch->last_error, sizeof ch->last_error, "resolve %s: %s",
             ch->target, why);
    rpc__conn_resolved(c, NULL, ch->last_error);
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
    struct conn *c = r->c;
    if (r->req != NULL) /* it was pending (not answered inside start) */
        ch->resolving--;
    free(r);
    if (c == NULL) { /* cancelled: the connection is gone */
        if (res != NULL)
            evutil_freeaddrinfo(res);
        return;
    }
    if (rc != 0) {
        if (res != NULL)
            evutil_freeaddrinfo(res);
        failed(ch, c, gai_text(rc));
        return;
    }
    if (res == NULL) {
        failed(ch, c, "no addresses");
        return;
    }
    rpc__conn_resolved(c, res, NULL);
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
                                        struct conn *c)
{
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST;
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(ch->host, ch->port, &hints, &ai);
    if (rc == 0) {
        rpc__conn_resolved(c, ai, NULL);
        return NULL;
    }
    if (rc != EAI_NONAME) { /* a bad port, say: no resolver will help */
        failed(ch, c, gai_strerror(rc));
        return NULL;
    }
    if (special_invalid(ch->host)) {
        failed(ch, c, gai_strerror(EAI_NONAME));
        return NULL;
    }
    struct evdns_base *dns = dns_of(ch);
    struct rpc__resolve *r = dns ? calloc(1, sizeof *r) : NULL;
    if (r == NULL) {
        failed(ch, c,
               dns ? "out of memory" : "cannot start the DNS resolver");
        return NULL;
    }
    r->ch = ch;
    r->c = c;
    struct evutil_addrinfo eh = {0};
    eh.ai_family = AF_UNSPEC;
    eh.ai_socktype = SOCK_STREAM;
    eh.ai_protocol = IPPROTO_TCP;
    struct evdns_getaddrinfo_request *req =
        evdns_getaddrinfo(dns, ch->host, ch->port, &eh, on_resolved, r);
    if (req == NULL)
        return NULL; /* on_resolved has run: r is freed, and c handed on
                      * to the connect step or destroyed; touch neither */
    r->req = req;
    ch->resolving++;
    return r;
}

void rpc__resolve_cancel(struct rpc__resolve *r)
{
    /* Detach first: whenever the callback runs, it must find no conn.
     * evdns defers it (cancellation included), and r belongs to it now. */
    r->c = NULL;
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
