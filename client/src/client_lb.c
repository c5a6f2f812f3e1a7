/*
 * client_lb.c -- the round_robin policy: one subchannel (connection,
 * backoff, health) per resolved address, calls spread over the ready ones.
 * pick_first stays in client_channel.c (one connection that tries the
 * addresses in order); a channel uses this file only when its options ask
 * for round_robin (ch->lb != NULL).
 *
 * Subchannel states (gRPC's connectivity semantics):
 *
 *          connect                connected (+ first SERVING when
 *   IDLE ------------> CONNECTING ------------------ health checks are on)
 *    ^                   |                       |
 *    |    backoff timer  | failed                v
 *    +-- TRANSIENT_FAILURE <------ NOT_SERVING -- READY
 *    |                                            |
 *    +---------- connection closed / GOAWAY ------+ (reconnects at once)
 *
 * The walk for one call (rpc__lb_dispatch):
 *   pinned (a health Watch)  -> its subchannel's connection, or UNAVAILABLE
 *   a READY subchannel       -> the next one after the last pick
 *   every subchannel failing -> UNAVAILABLE "connections to all backends
 *                               failing; last error: ..." (unless
 *                               wait-for-ready)
 *   otherwise                -> ch->waiting, and kick(): resolve when
 *                               there are no addresses, connect IDLE ones;
 *                               a subchannel turning READY drains the list.
 *
 * Resolution.  The first call resolves the target (rpc__resolve_start);
 * each answer replaces the subchannel list, keeping the subchannels of
 * addresses still present (their connections untouched), creating the new
 * ones and dropping the vanished ones (their calls end UNAVAILABLE).  A
 * host name is re-resolved when a connection fails or closes (at most
 * once a second) and every 30 s; a failed resolution is retried after 1 s.
 *
 * Health (optional, gRFC A17): on each new connection the subchannel
 * starts grpc.health.v1.Health/Watch pinned to it, and is READY only while
 * the last status was SERVING.  UNIMPLEMENTED counts as healthy; any
 * other end of the Watch makes the subchannel not ready and it retries
 * after 1 s (while connected).
 *
 * Threads: the loop thread only, except rpc__lb_new/free (creation and
 * destruction, when no loop runs) and rpc_client_channel_ready_count()
 * (an atomic).
 */
#include "client_internal.h"

#include <event2/event.h>
#include <event2/util.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESOLVE_MIN_NS (1 * CTX_SECOND)
#define RESOLVE_PERIOD_NS (30 * CTX_SECOND)
#define HEALTH_RETRY_NS (1 * CTX_SECOND)

enum { SC_IDLE, SC_CONNECTING, SC_READY, SC_TF };

struct subch {
    struct lb *lb;
    rpc_client_channel_t *ch;
    struct addrinfo *addr;     /* this subchannel's one address (owned) */
    char name[120];
    struct conn *conn;         /* connecting or connected, or NULL */
    bool up;                   /* conn is connected (HTTP/2 running) */
    int state;                 /* SC_* */
    int failures;              /* consecutive failed attempts */
    struct event *timer;       /* backoff (no conn) or health retry */
    rpc_client_call_t *hc;     /* the current health Watch, or NULL */
    int hc_live;               /* Watch calls not yet done (they point at
                                  this subchannel: it outlives them) */
    bool healthy;              /* last Watch status SERVING (or none) */
    bool removed;              /* dropped by re-resolution: free when the
                                  Watch has ended */
    bool closing;              /* inside sub_close: hc_done must not free */
    bool fresh;                /* made by the resolution being applied */
};

struct lb {
    rpc_client_channel_t *ch;
    struct subch **subs;
    size_t n;
    size_t next;               /* where the next pick starts */
    struct conn *draining;     /* GOAWAY'd connections finishing calls */
    struct rpc__resolve *rq;   /* pending resolution */
    struct event *resolve_ev;  /* deferred / periodic re-resolution */
    int64_t last_resolve;
    bool resolve_failed;       /* the last resolution failed */
    bool resolved;             /* an answer has arrived once */
    atomic_int ready;          /* READY subchannels (any thread reads) */
};

static void sub_connect(struct subch *sc);
static void start_watch(struct subch *sc);

/* ---- state ------------------------------------------------------------------ */

static void update_state(struct lb *lb)
{
    int ready = 0, connecting = 0, idle = 0;
    for (size_t i = 0; i < lb->n; i++) {
        int s = lb->subs[i]->state;
        ready += s == SC_READY;
        connecting += s == SC_CONNECTING;
        idle += s == SC_IDLE;
    }
    atomic_store(&lb->ready, ready);
    rpc_client_state_t st = ready        ? RPC_CLIENT_READY
                            : connecting ? RPC_CLIENT_CONNECTING
                            : idle || (lb->n == 0 && !lb->resolve_failed)
                                ? RPC_CLIENT_IDLE
                                : RPC_CLIENT_TRANSIENT_FAILURE;
    if (atomic_load(&lb->ch->state) != RPC_CLIENT_SHUTDOWN)
        atomic_store(&lb->ch->state, (int)st);
}

/* True when no call can hope for a connection soon: the resolver failed
 * with no addresses, or every subchannel is in TRANSIENT_FAILURE. */
static bool all_failing(const struct lb *lb)
{
    if (lb->n == 0)
        return lb->resolve_failed;
    for (size_t i = 0; i < lb->n; i++)
        if (lb->subs[i]->state != SC_TF)
            return false;
    return true;
}

/* The UNAVAILABLE message for calls that no backend can take. */
static void failing_message(const struct lb *lb, char *msg, size_t len)
{
    const char *last = lb->ch->last_error;
    if (lb->n == 0)
        snprintf(msg, len, "%s", last);
    else
        snprintf(msg, len,
                 "connections to all backends failing; last error: %s", last);
}

static void fail_waiting(struct lb *lb)
{
    rpc_client_channel_t *ch = lb->ch;
    if (ch->opts.wait_for_ready)
        return;
    char msg[300];
    failing_message(lb, msg, sizeof msg);
    while (ch->waiting.head != NULL) {
        rpc_client_call_t *c = ch->waiting.head;
        rpc__call_list_remove(c);
        rpc__call_complete(c, RPC_STATUS_UNAVAILABLE, msg);
    }
}

/* The next READY subchannel after the last pick, or NULL. */
static struct subch *pick(struct lb *lb)
{
    for (size_t i = 0; i < lb->n; i++) {
        size_t k = (lb->next + i) % lb->n;
        struct subch *sc = lb->subs[k];
        if (sc->state == SC_READY) {
            lb->next = k + 1;
            return sc;
        }
    }
    return NULL;
}

static void submit(struct subch *sc, rpc_client_call_t *call)
{
    int st = rpc__conn_submit(sc->conn, call);
    if (st != 0)
        rpc__call_complete(call, st, call->fail_msg);
    else
        rpc__conn_mark(sc->conn);
}

/* A subchannel became READY: the waiting calls go out, spread. */
static void drain_waiting(struct lb *lb)
{
    rpc_client_channel_t *ch = lb->ch;
    while (ch->waiting.head != NULL) {
        struct subch *sc = pick(lb);
        if (sc == NULL)
            break;
        rpc_client_call_t *call = ch->waiting.head;
        rpc__call_list_remove(call);
        submit(sc, call);
    }
    rpc__lb_flush_marked(ch);
}

static void set_state(struct subch *sc, int state)
{
    sc->state = state;
    update_state(sc->lb);
    if (state == SC_READY)
        drain_waiting(sc->lb);
    else if (all_failing(sc->lb))
        fail_waiting(sc->lb);
}

/* ---- resolution --------------------------------------------------------------- */

static void resolve_now(struct lb *lb);

static void resolve_cb(evutil_socket_t fd, short what, void *arg)
{
    resolve_now(arg);
}

static void arm_resolve(struct lb *lb, int64_t delay)
{
    if (lb->resolve_ev == NULL &&
        (lb->resolve_ev = evtimer_new(lb->ch->base, resolve_cb, lb)) == NULL)
        return; /* out of memory: the next failure asks again */
    struct timeval tv = {(time_t)(delay / CTX_SECOND),
                         (suseconds_t)(delay % CTX_SECOND / 1000)};
    event_add(lb->resolve_ev, &tv);
}

/* A connection failed or closed: ask the name again, at most once per
 * RESOLVE_MIN_NS (a static list never changes). */
static void request_resolve(struct lb *lb)
{
    if (!lb->ch->dns_name || lb->rq != NULL || lb->ch->stopping)
        return;
    int64_t wait = lb->last_resolve + RESOLVE_MIN_NS - ctx_now();
    if (wait > 0)
        arm_resolve(lb, wait);
    else
        resolve_now(lb);
}

static struct subch *sub_new(struct lb *lb, const struct addrinfo *a)
{
    struct subch *sc = rpc__calloc(1, sizeof *sc);
    if (sc == NULL)
        return NULL;
    struct addrinfo one = *a;
    one.ai_next = NULL;
    if ((sc->addr = rpc__ai_copy(&one)) == NULL) {
        free(sc);
        return NULL;
    }
    sc->lb = lb;
    sc->ch = lb->ch;
    sc->healthy = !lb->ch->opts.health_check;
    rpc__ai_name(a, sc->name, sizeof sc->name);
    return sc;
}

static void sub_free(struct subch *sc)
{
    if (sc->timer)
        event_free(sc->timer);
    evutil_freeaddrinfo(sc->addr);
    free(sc);
}

/* Closes everything a subchannel has (its calls end with status/why). */
static void sub_close(struct subch *sc, int status, const char *why)
{
    struct lb *lb = sc->lb;
    if (sc->timer)
        event_del(sc->timer);
    if (sc->conn != NULL) {
        struct conn *c = sc->conn;
        sc->conn = NULL;
        sc->up = false;
        rpc__conn_destroy(c, status, why); /* ends the Watch too */
    }
    for (struct conn **p = &lb->draining; *p;) {
        struct conn *c = *p;
        if (rpc__conn_sub(c) == sc) {
            *p = *rpc__conn_next(c);
            rpc__conn_destroy(c, status, why);
        } else {
            p = rpc__conn_next(c);
        }
    }
}

static void on_resolved(void *arg, struct addrinfo *ai, const char *why)
{
    struct lb *lb = arg;
    rpc_client_channel_t *ch = lb->ch;
    lb->rq = NULL;
    lb->last_resolve = ctx_now();
    if (why != NULL) {
        lb->resolve_failed = true;
        if (lb->n == 0) {
            update_state(lb);
            fail_waiting(lb);
        }
        if (!ch->stopping)
            arm_resolve(lb, RESOLVE_MIN_NS);
        return;
    }
    size_t cnt = 0;
    for (struct addrinfo *a = ai; a; a = a->ai_next)
        cnt++;
    struct subch **subs = rpc__calloc(cnt ? cnt : 1, sizeof *subs);
    size_t n = 0;
    bool oom = subs == NULL;
    for (struct addrinfo *a = ai; a && !oom; a = a->ai_next) {
        struct subch *sc = NULL;
        for (size_t i = 0; i < lb->n && sc == NULL; i++)
            if (lb->subs[i] != NULL && rpc__ai_same(lb->subs[i]->addr, a)) {
                sc = lb->subs[i];
                lb->subs[i] = NULL; /* kept */
            }
        bool dup = false;
        for (size_t i = 0; i < n && sc == NULL && !dup; i++)
            dup = rpc__ai_same(subs[i]->addr, a);
        if (dup)
            continue; /* the same address twice in the answer */
        if (sc == NULL) {
            if ((sc = sub_new(lb, a)) == NULL) {
                oom = true;
                break;
            }
            sc->fresh = true;
        }
        subs[n++] = sc;
    }
    evutil_freeaddrinfo(ai);
    if (oom) { /* keep what we had; try again later */
        for (size_t i = 0, j = 0; subs != NULL && i < n; i++) {
            if (subs[i]->fresh) {
                sub_free(subs[i]);
                continue;
            }
            while (lb->subs[j] != NULL) /* back into a slot it left */
                j++;
            lb->subs[j] = subs[i];
        }
        free(subs);
        arm_resolve(lb, RESOLVE_MIN_NS);
        return;
    }
    for (size_t i = 0; i < n; i++)
        subs[i]->fresh = false;
    /* What is left in the old list has vanished from the answer. */
    for (size_t i = 0; i < lb->n; i++) {
        struct subch *sc = lb->subs[i];
        if (sc == NULL)
            continue;
        sc->removed = true;
        sc->closing = true;
        sub_close(sc, RPC_STATUS_UNAVAILABLE,
                  "backend removed by name resolution");
        sc->closing = false;
        if (sc->hc_live == 0)
            sub_free(sc);
    }
    free(lb->subs);
    lb->subs = subs;
    lb->n = n;
    lb->resolve_failed = false;
    lb->resolved = true;
    if (lb->next >= n)
        lb->next = 0;
    for (size_t i = 0; i < n; i++)
        if (subs[i]->state == SC_IDLE && subs[i]->conn == NULL)
            sub_connect(subs[i]);
    update_state(lb);
    if (ch->waiting.head != NULL) {
        drain_waiting(lb);
        if (all_failing(lb))
            fail_waiting(lb);
    }
    if (ch->dns_name && !ch->stopping)
        arm_resolve(lb, RESOLVE_PERIOD_NS);
}

static void resolve_now(struct lb *lb)
{
    if (lb->rq != NULL || lb->ch->stopping)
        return;
    if (lb->resolve_ev)
        event_del(lb->resolve_ev);
    lb->last_resolve = ctx_now();
    lb->rq = rpc__resolve_start(lb->ch, on_resolved, lb);
    /* NULL: answered already (on_resolved has run) */
}

/* ---- subchannels ------------------------------------------------------------------ */

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct subch *sc = arg;
    if (sc->ch->stopping)
        return;
    if (sc->conn == NULL) { /* backoff over: IDLE, and reconnect at once */
        sc->state = SC_IDLE;
        sub_connect(sc);
    } else if (sc->up && sc->hc == NULL) {
        start_watch(sc); /* health retry */
    }
}

static void arm_timer(struct subch *sc, int64_t d)
{
    if (sc->timer == NULL &&
        (sc->timer = evtimer_new(sc->ch->base, timer_cb, sc)) == NULL)
        return;
    struct timeval tv = {(time_t)(d / CTX_SECOND),
                         (suseconds_t)(d % CTX_SECOND / 1000)};
    event_add(sc->timer, &tv);
}

static int64_t backoff_delay(struct subch *sc)
{
    const rpc_client_options_t *o = &sc->ch->opts;
    double d = (double)o->backoff_initial_ns;
    for (int i = 1; i < sc->failures && d < (double)o->backoff_max_ns; i++)
        d *= o->backoff_mult;
    if (d > (double)o->backoff_max_ns)
        d = (double)o->backoff_max_ns;
    double r = (double)rand_r(&sc->ch->rng) / RAND_MAX;
    d *= 1.0 + o->backoff_jitter * (2.0 * r - 1.0);
    return d < 1 ? 1 : (int64_t)d;
}

static void sub_connect(struct subch *sc)
{
    if (sc->ch->stopping || sc->conn != NULL)
        return;
    sc->state = SC_CONNECTING;
    update_state(sc->lb);
    rpc__conn_connect_sub(sc->ch, sc, sc->addr);
}

void rpc__lb_conn_started(struct subch *sc, struct conn *c)
{
    sc->conn = c;
}

void rpc__lb_conn_ready(struct subch *sc, struct conn *c)
{
    sc->failures = 0;
    sc->up = true;
    atomic_fetch_add(&sc->ch->connects, 1);
    if (sc->ch->opts.health_check) {
        sc->healthy = false; /* CONNECTING until the first answer */
        start_watch(sc);
        rpc__conn_flush(c);
        return;
    }
    set_state(sc, SC_READY);
    rpc__conn_flush(c);
}

void rpc__lb_conn_failed(struct subch *sc, struct conn *c, const char *why)
{
    rpc_client_channel_t *ch = sc->ch;
    if (why != ch->last_error)
        snprintf(ch->last_error, sizeof ch->last_error, "%s", why);
    if (c != NULL) {
        if (sc->conn == c) {
            sc->conn = NULL;
            sc->up = false;
        }
        rpc__conn_destroy(c, RPC_STATUS_UNAVAILABLE, ch->last_error);
    }
    sc->failures++;
    if (!ch->stopping)
        arm_timer(sc, backoff_delay(sc));
    set_state(sc, SC_TF);
    request_resolve(sc->lb);
}

void rpc__lb_conn_closed(struct subch *sc, struct conn *c)
{
    struct lb *lb = sc->lb;
    rpc_client_channel_t *ch = sc->ch;
    for (struct conn **p = &lb->draining; *p; p = rpc__conn_next(*p))
        if (*p == c) {
            *p = *rpc__conn_next(c);
            rpc__conn_destroy(c, RPC_STATUS_UNAVAILABLE, ch->last_error);
            return;
        }
    if (sc->conn == c) {
        sc->conn = NULL;
        sc->up = false;
    }
    rpc__conn_destroy(c, RPC_STATUS_UNAVAILABLE, ch->last_error);
    /* A READY connection went away: reconnect at once (a dead backend
     * then fails the attempt and backs off); meanwhile not READY. */
    sc->state = SC_IDLE;
    update_state(lb);
    sub_connect(sc);
    request_resolve(lb);
}

void rpc__lb_conn_goaway(struct subch *sc, struct conn *c)
{
    if (sc->conn != c)
        return;
    struct lb *lb = sc->lb;
    sc->conn = NULL;
    sc->up = false;
    if (sc->hc != NULL) { /* the Watch would keep the old connection */
        rpc_client_call_cancel(sc->hc);
        sc->hc = NULL;
    }
    *rpc__conn_next(c) = lb->draining;
    lb->draining = c;
    sc->state = SC_IDLE;
    update_state(lb);
    sub_connect(sc);
}

/* ---- health checking (grpc.health.v1.Health/Watch) ------------------------------ */

/* HealthCheckResponse: field 1 (status, a varint).  -1 when malformed. */
static int health_status(const uint8_t *p, size_t n)
{
    int status = 0; /* UNKNOWN: an empty message */
    size_t i = 0;
    while (i < n) {
        uint8_t tag = p[i++];
        uint64_t v = 0;
        int shift = 0;
        if ((tag & 7) != 0)
            return -1; /* only varints here */
        do {
            if (i >= n || shift > 63)
                return -1;
            v |= (uint64_t)(p[i] & 0x7f) << shift;
            shift += 7;
        } while (p[i++] & 0x80);
        if (tag == 0x08)
            status = (int)v;
    }
    return status;
}

static void hc_message(rpc_client_call_t *call, const void *msg, size_t len,
                       void *arg)
{
    struct subch *sc = arg;
    if (sc->removed || sc->hc != call)
        return;
    sc->healthy = health_status(msg, len) == 1; /* SERVING */
    if (!sc->up)
        return;
    if (sc->healthy && sc->state != SC_READY)
        set_state(sc, SC_READY);
    else if (!sc->healthy && sc->state != SC_TF)
        set_state(sc, SC_TF);
}

static void hc_done(rpc_client_call_t *call, int status, void *arg)
{
    struct subch *sc = arg;
    bool mine = sc->hc == call;
    rpc_client_call_free(call);
    sc->hc_live--;
    if (mine)
        sc->hc = NULL;
    if (sc->removed) {
        if (sc->hc_live == 0 && !sc->closing) /* else on_resolved frees it */
            sub_free(sc);
        return;
    }
    if (!mine)
        return;
    if (!sc->up || sc->ch->stopping)
        return;
    if (status == RPC_STATUS_UNIMPLEMENTED) {
        sc->healthy = true; /* no health service: healthy (gRFC A17) */
        if (sc->state != SC_READY)
            set_state(sc, SC_READY);
        return;
    }
    sc->healthy = false;
    if (sc->state != SC_TF)
        set_state(sc, SC_TF);
    arm_timer(sc, HEALTH_RETRY_NS);
}

static void start_watch(struct subch *sc)
{
    rpc_client_channel_t *ch = sc->ch;
    const char *svc = ch->opts.health_service ? ch->opts.health_service : "";
    size_t n = strlen(svc);
    uint8_t req[8 + 256];
    size_t len = 0;
    if (n > 0) {
        if (n > 255)
            n = 255;
        req[len++] = 0x0a; /* field 1, length-delimited */
        if (n >= 0x80) {
            req[len++] = (uint8_t)(n | 0x80);
            req[len++] = (uint8_t)(n >> 7);
        } else {
            req[len++] = (uint8_t)n;
        }
        memcpy(req + len, svc, n);
        len += n;
    }
    rpc_client_call_t *call = NULL;
    if (rpc_client_call_start_async(ctx_background(), ch,
                                    "/grpc.health.v1.Health/Watch", NULL,
                                    hc_message, hc_done, sc, &call) != 0) {
        arm_timer(sc, HEALTH_RETRY_NS);
        return;
    }
    /* On the loop: the start op runs after we return, so the pin is seen
     * by rpc__lb_dispatch. */
    call->pin = sc;
    sc->hc = call;
    sc->hc_live++;
    rpc_client_call_send(ctx_background(), call, req, len);
    rpc_client_call_close_send(call);
}

/* ---- the channel's side -------------------------------------------------------------- */

void rpc__lb_dispatch(rpc_client_call_t *call)
{
    rpc_client_channel_t *ch = call->ch;
    struct lb *lb = ch->lb;
    if (call->pin != NULL) {
        struct subch *sc = call->pin;
        if (sc->up && sc->conn != NULL && rpc__conn_ready(sc->conn))
            submit(sc, call);
        else
            rpc__call_complete(call, RPC_STATUS_UNAVAILABLE,
                               "subchannel not connected");
        return;
    }
    struct subch *sc = pick(lb);
    if (sc != NULL) {
        submit(sc, call);
        return;
    }
    if (!ch->opts.wait_for_ready && all_failing(lb)) {
        char msg[300];
        failing_message(lb, msg, sizeof msg);
        rpc__call_complete(call, RPC_STATUS_UNAVAILABLE, msg);
        return;
    }
    call->state = CALL_WAITING;
    rpc__call_list_add(&ch->waiting, call);
    if (!lb->resolved || lb->n == 0) {
        resolve_now(lb);
        return;
    }
    for (size_t i = 0; i < lb->n; i++)
        if (lb->subs[i]->state == SC_IDLE)
            sub_connect(lb->subs[i]);
}

void rpc__lb_flush_marked(rpc_client_channel_t *ch)
{
    struct lb *lb = ch->lb;
    for (size_t i = 0; i < lb->n; i++)
        if (lb->subs[i]->conn != NULL)
            rpc__conn_flush_marked(lb->subs[i]->conn);
    for (struct conn *c = lb->draining; c != NULL; c = *rpc__conn_next(c))
        rpc__conn_flush_marked(c);
}

void rpc__lb_shutdown(rpc_client_channel_t *ch)
{
    struct lb *lb = ch->lb;
    if (lb->rq != NULL) {
        rpc__resolve_cancel(lb->rq);
        lb->rq = NULL;
    }
    if (lb->resolve_ev)
        event_del(lb->resolve_ev);
    for (size_t i = 0; i < lb->n; i++)
        sub_close(lb->subs[i], RPC_STATUS_CANCELLED, "channel closed");
    atomic_store(&lb->ready, 0);
}

int rpc__lb_new(rpc_client_channel_t *ch)
{
    struct lb *lb = rpc__calloc(1, sizeof *lb);
    if (lb == NULL)
        return RPC_ERR_NOMEM;
    lb->ch = ch;
    atomic_init(&lb->ready, 0);
    ch->lb = lb;
    return 0;
}

void rpc__lb_free(rpc_client_channel_t *ch)
{
    struct lb *lb = ch->lb;
    if (lb == NULL)
        return;
    for (size_t i = 0; i < lb->n; i++)
        sub_free(lb->subs[i]);
    free(lb->subs);
    if (lb->resolve_ev)
        event_free(lb->resolve_ev);
    free(lb);
    ch->lb = NULL;
}

int rpc_client_channel_ready_count(rpc_client_channel_t *ch)
{
    if (ch == NULL)
        return 0;
    if (ch->lb != NULL)
        return atomic_load(&ch->lb->ready);
    return atomic_load(&ch->state) == RPC_CLIENT_READY ? 1 : 0;
}
