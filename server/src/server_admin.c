/*
 * server_admin.c -- the admin HTTP endpoint: /metrics (Prometheus text),
 * /ctxz (HTML) and /ctxz?format=json (also /ctxz.json), served by libevent's
 * evhttp on a thread and an event_base of its own, so a page view never
 * runs on a server loop.
 *
 * A /ctxz page is built in two steps, gather then render, so HTML and JSON
 * show the same data:
 *
 *   gather:  1. take references on up to ZMAX_REQ live calls (the
 *               registry's stripe mutexes, one at a time, held only while
 *               the references are taken) and copy what the page shows
 *            2. ctx_walk(server root, ZMAX_NODES): depth 1 = connections,
 *               depth 2 = requests, deeper = what handlers derived; each
 *               node is attributed to its request through its parent (the
 *               walk is breadth-first, parents come first)
 *            3. a request whose context has already ended is unlinked
 *               from its connection (the cancel unlinks it), so it is
 *               walked on its own (ZMAX_SUB nodes)
 *            4. drop the call references; copy the recent-ends ring
 *   render:  from the copies only.
 *
 * Work per page is bounded by ZMAX_REQ + ZMAX_NODES + ZMAX_REQ * ZMAX_SUB
 * nodes; ctx_walk holds one node lock at a time, only to copy its list of
 * children, so a cancel racing with a page view waits for a list copy at
 * most; nothing here blocks a loop.
 *
 * Stopping: a pipe written by obs_admin_free() wakes the admin loop, which
 * breaks out (no cross-thread libevent call).
 */
#include "server_obs_impl.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ZMAX_REQ 1000
#define ZMAX_NODES 4000
#define ZMAX_SUB 32

struct obs_admin {
    struct srv_obs *o;
    struct event_base *base;
    struct evhttp *http;
    struct event *stop_ev;
    int stop_pipe[2];
    int port;
    pthread_t thread;
    size_t (*extra)(char *buf, size_t len, void *user_data);
    void *extra_ud;
};

/* ---- gather ------------------------------------------------------------- */

struct znode {
    ctx_node_info_t i;
    int req;  /* index in reqs, -1: none */
    int conn; /* index in conns, -1: none */
    int next; /* next node of the same request */
};

struct zreq {
    uint64_t id;
    char method[96], request_id[64], traceparent[64], peer[64];
    int kind;
    int64_t arrival_ns, timeout_ns;
    int state, err, cause;
    const void *conn_id, *req_ctx;
    int conn, first, last, next_in_conn, found;
};

struct zconn {
    const void *id;
    char peer[64];
    int64_t start_ns;
    int streams, err, cause, first_req, last_req;
};

struct zview {
    int64_t now;
    struct znode *n;
    size_t nn, capn;
    struct zreq *r;
    size_t nr;
    struct zconn *c;
    size_t nc, capc;
    struct obs_recent rec[OBS_NRECENT];
    size_t nrec;
    size_t root_nodes;
    int truncated;
};

struct walk_ud {
    struct zview *v;
    int req;
};

static int collect(const ctx_node_info_t *i, void *ud)
{
    struct walk_ud *w = ud;
    struct zview *v = w->v;
    if (v->nn == v->capn) {
        size_t cap = v->capn ? v->capn * 2 : 256;
        struct znode *n = rpc__realloc(v->n, cap * sizeof *n);
        if (n == NULL)
            return 1;
        v->n = n;
        v->capn = cap;
    }
    v->n[v->nn++] = (struct znode){*i, w->req, -1, -1};
    return 0;
}

static int add_conn(struct zview *v, const void *id)
{
    for (size_t i = 0; i < v->nc; i++)
        if (v->c[i].id == id)
            return (int)i;
    if (v->nc == v->capc) {
        size_t cap = v->capc ? v->capc * 2 : 16;
        struct zconn *c = rpc__realloc(v->c, cap * sizeof *c);
        if (c == NULL)
            return -1;
        v->c = c;
        v->capc = cap;
    }
    v->c[v->nc] = (struct zconn){.id = id, .first_req = -1, .last_req = -1};
    return (int)v->nc++;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const struct znode *const *)a)[0]->i.node;
    uintptr_t y = (uintptr_t)((const struct znode *const *)b)[0]->i.node;
    return x < y ? -1 : x > y;
}

static struct znode *find_node(struct znode **idx, size_t n, const void *p)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uintptr_t m = (uintptr_t)idx[mid]->i.node;
        if (m == (uintptr_t)p)
            return idx[mid];
        if (m < (uintptr_t)p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static void link_node(struct zview *v, size_t ni)
{
    struct znode *n = &v->n[ni];
    if (n->req < 0)
        return;
    struct zreq *r = &v->r[n->req];
    if (r->first < 0)
        r->first = (int)ni;
    else
        v->n[r->last].next = (int)ni;
    r->last = (int)ni;
}

static int gather(struct srv_obs *o, struct zview *v)
{
    memset(v, 0, sizeof *v);
    v->now = ctx_now();
    struct rpc_call **calls = rpc__malloc(ZMAX_REQ * sizeof *calls);
    v->r = rpc__calloc(ZMAX_REQ, sizeof *v->r);
    if (calls == NULL || v->r == NULL) {
        free(calls);
        return -1;
    }
    size_t nc = obs_live_calls(o, calls, ZMAX_REQ);
    v->truncated = nc == ZMAX_REQ;
    for (size_t i = 0; i < nc; i++) {
        struct rpc_call *call = calls[i];
        struct zreq *r = &v->r[i];
        r->id = call->obs.id;
        copy(r->method, sizeof r->method, call->path);
        copy(r->request_id, sizeof r->request_id,
             rpc_metadata_get(call->vctx, "x-request-id", NULL));
        copy(r->traceparent, sizeof r->traceparent,
             rpc_metadata_get(call->vctx, "traceparent", NULL));
        copy(r->peer, sizeof r->peer, rpc_call_peer(call));
        r->kind = call->m->kind;
        r->arrival_ns = call->arrival_ns;
        r->timeout_ns = call->timeout_ns;
        r->state = atomic_load(&call->state);
        r->err = ctx_err(call->req_ctx);
        r->cause = r->err ? ctx_cause(call->req_ctx) : 0;
        r->conn_id = call->obs.conn_id;
        r->req_ctx = call->req_ctx;
        r->first = r->last = r->next_in_conn = -1;
        int ci = add_conn(v, r->conn_id);
        r->conn = ci;
        if (ci >= 0 && v->c[ci].streams++ == 0) {
            copy(v->c[ci].peer, sizeof v->c[ci].peer, r->peer);
            v->c[ci].start_ns = call->obs.conn_start_ns;
        }
    }
    v->nr = nc;

    /* The tree under the server root. */
    struct walk_ud w = {v, -1};
    v->root_nodes = ctx_walk(o->s->root, ZMAX_NODES, collect, &w);
    if (v->root_nodes == ZMAX_NODES)
        v->truncated = 1;
    size_t nroot = v->nn;
    struct znode **idx = rpc__malloc((nroot ? nroot : 1) * sizeof *idx);
    struct znode **ridx = rpc__malloc((v->nr ? v->nr : 1) * sizeof *ridx);
    struct znode *rkeys = rpc__calloc(v->nr ? v->nr : 1, sizeof *rkeys);
    if (idx && ridx && rkeys) {
        /* Requests by context pointer (keys reuse struct znode). */
        for (size_t i = 0; i < v->nr; i++) {
            rkeys[i].i.node = v->r[i].req_ctx;
            rkeys[i].req = (int)i;
            ridx[i] = &rkeys[i];
        }
        qsort(ridx, v->nr, sizeof *ridx, cmp_ptr);
        for (size_t i = 0; i < nroot; i++)
            idx[i] = &v->n[i];
        qsort(idx, nroot, sizeof *idx, cmp_ptr);
        for (size_t i = 0; i < nroot; i++) {
            struct znode *n = &v->n[i];
            if (n->i.depth == 1) {
                n->conn = add_conn(v, n->i.node);
                if (n->conn >= 0) {
                    v->c[n->conn].err = n->i.err;
                    v->c[n->conn].cause = n->i.cause;
                }
            } else if (n->i.depth >= 2) {
                struct znode *p = find_node(idx, nroot, n->i.parent);
                if (n->i.depth == 2) {
                    struct znode *k = find_node(ridx, v->nr, n->i.node);
                    n->req = k ? k->req : -1;
                } else {
                    n->req = p ? p->req : -1;
                }
                if (n->req >= 0)
                    v->r[n->req].found = 1;
            }
            link_node(v, i);
        }
    }
    free(idx);
    free(ridx);
    free(rkeys);
    /* Requests no longer linked under their connection (ended early,
     * handler still draining): walk them on their own. */
    for (size_t i = 0; i < v->nr; i++) {
        if (v->r[i].found)
            continue;
        size_t before = v->nn;
        struct walk_ud wr = {v, (int)i};
        ctx_walk((ctx_t *)calls[i]->req_ctx, ZMAX_SUB, collect, &wr);
        for (size_t k = before; k < v->nn; k++) {
            v->n[k].i.depth += 2; /* as if under root -> connection */
            link_node(v, k);
        }
    }
    for (size_t i = 0; i < nc; i++)
        srv_call_release(calls[i]);
    free(calls);
    /* Requests in their connection's list, in registry order. */
    for (size_t i = 0; i < v->nr; i++) {
        struct zconn *c = v->r[i].conn >= 0 ? &v->c[v->r[i].conn] : NULL;
        if (c == NULL)
            continue;
        if (c->first_req < 0)
            c->first_req = (int)i;
        else
            v->r[c->last_req].next_in_conn = (int)i;
        c->last_req = (int)i;
    }
    v->nrec = obs_recent_copy(o, v->rec, OBS_NRECENT);
    return 0;
}

static void view_free(struct zview *v)
{
    free(v->n);
    free(v->r);
    free(v->c);
}

/* ---- render: shared words ---------------------------------------------- */

static const char *state_name(int st)
{
    static const char *const names[] = {"open", "running", "final", "ended",
                                        "closed"};
    return st >= 0 && st <= SRV_CALL_CLOSED ? names[st] : "?";
}

static const char *err_name(int err)
{
    return err == CTX_DEADLINE_EXCEEDED ? "deadline_exceeded"
           : err == CTX_CANCELED        ? "canceled"
           : err                        ? "done"
                                        : "live";
}

void obs_json_str(struct evbuffer *b, const char *s)
{
    evbuffer_add(b, "\"", 1);
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            evbuffer_add_printf(b, "\\%c", ch);
        else if (ch < 0x20)
            evbuffer_add_printf(b, "\\u%04x", ch);
        else
            evbuffer_add(b, s, 1);
    }
    evbuffer_add(b, "\"", 1);
}

static void html_str(struct evbuffer *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': evbuffer_add(b, "&lt;", 4); break;
        case '>': evbuffer_add(b, "&gt;", 4); break;
        case '&': evbuffer_add(b, "&amp;", 5); break;
        case '"': evbuffer_add(b, "&quot;", 6); break;
        default: evbuffer_add(b, s, 1);
        }
    }
}

static double ms(int64_t ns) { return (double)ns / 1e6; }

/* Milliseconds of deadline left, into buf ("none" when no deadline). */
static const char *left_text(char *buf, size_t cap, int64_t deadline,
                             int64_t now)
{
    if (deadline == INT64_MAX)
        return "none";
    snprintf(buf, cap, "%.1f", ms(deadline - now));
    return buf;
}

/* ---- render: JSON ------------------------------------------------------- */

static void json_node(struct evbuffer *b, const struct znode *n, int base,
                      int64_t now)
{
    char dl[32];
    evbuffer_add_printf(b,
                        "{\"id\":\"%p\",\"parent\":\"%p\",\"depth\":%d,"
                        "\"state\":\"%s\",\"cause\":\"%s\",\"deadline_left_ms\":",
                        (const void *)n->i.node, (const void *)n->i.parent,
                        n->i.depth - base, err_name(n->i.err),
                        obs_cause_name(n->i.cause));
    if (n->i.deadline == INT64_MAX)
        evbuffer_add(b, "null", 4);
    else
        evbuffer_add_printf(b, "%s", left_text(dl, sizeof dl, n->i.deadline,
                                               now));
    evbuffer_add_printf(b, ",\"own_deadline\":%s,\"children\":%zu,"
                        "\"afterfuncs\":%zu}",
                        n->i.own_deadline ? "true" : "false", n->i.children,
                        n->i.afterfuncs);
}

static void render_json(struct srv_obs *o, const struct zview *v,
                        struct evbuffer *b)
{
    rpc_server_t *s = o->s;
    evbuffer_add_printf(b,
                        "{\"server\":{\"uptime_s\":%.3f,\"live_requests\":%zu,"
                        "\"connections\":%" PRId64 ",\"calls_total\":%" PRId64
                        ",\"context_nodes\":%zu,\"truncated\":%s},"
                        "\"connections\":[",
                        (double)(v->now - o->start_ns) / 1e9, v->nr,
                        rpc_server_stat(s, RPC_STAT_CONNECTIONS),
                        rpc_server_stat(s, RPC_STAT_CALLS_TOTAL),
                        v->root_nodes, v->truncated ? "true" : "false");
    for (size_t ci = 0; ci < v->nc; ci++) {
        const struct zconn *c = &v->c[ci];
        evbuffer_add_printf(b, "%s{\"id\":\"%p\",\"peer\":", ci ? "," : "",
                            c->id);
        obs_json_str(b, c->peer);
        evbuffer_add(b, ",\"age_ms\":", 10);
        if (c->start_ns > 0)
            evbuffer_add_printf(b, "%.1f", ms(v->now - c->start_ns));
        else
            evbuffer_add(b, "null", 4);
        evbuffer_add_printf(b, ",\"streams\":%d,\"state\":\"%s\",\"cause\":"
                            "\"%s\",\"requests\":[",
                            c->streams, err_name(c->err),
                            obs_cause_name(c->cause));
        int first = 1;
        for (int ri = c->first_req; ri >= 0; ri = v->r[ri].next_in_conn) {
            const struct zreq *r = &v->r[ri];
            evbuffer_add_printf(b, "%s{\"call_id\":%" PRIu64 ",\"method\":",
                                first ? "" : ",", r->id);
            first = 0;
            obs_json_str(b, r->method);
            evbuffer_add(b, ",\"request_id\":", 14);
            obs_json_str(b, r->request_id);
            evbuffer_add(b, ",\"traceparent\":", 15);
            obs_json_str(b, r->traceparent);
            evbuffer_add_printf(b, ",\"type\":\"%s\",\"age_ms\":%.1f,"
                                "\"deadline_left_ms\":",
                                obs_kind_name((rpc_method_kind_t)r->kind),
                                ms(v->now - r->arrival_ns));
            if (r->timeout_ns >= 0)
                evbuffer_add_printf(b, "%.1f", ms(r->arrival_ns + r->timeout_ns -
                                                  v->now));
            else
                evbuffer_add(b, "null", 4);
            evbuffer_add_printf(b, ",\"state\":\"%s\",\"ctx\":\"%s\","
                                "\"cause\":\"%s\",\"contexts\":[",
                                state_name(r->state), err_name(r->err),
                                obs_cause_name(r->cause));
            int base = r->first >= 0 ? v->n[r->first].i.depth : 0;
            for (int ni = r->first; ni >= 0; ni = v->n[ni].next) {
                if (ni != r->first)
                    evbuffer_add(b, ",", 1);
                json_node(b, &v->n[ni], base, v->now);
            }
            evbuffer_add(b, "]}", 2);
        }
        evbuffer_add(b, "]}", 2);
    }
    evbuffer_add(b, "],\"recent\":[", 12);
    for (size_t i = 0; i < v->nrec; i++) {
        const struct obs_recent *e = &v->rec[i];
        evbuffer_add_printf(b, "%s{\"call_id\":%" PRIu64 ",\"method\":",
                            i ? "," : "", e->id);
        obs_json_str(b, e->method);
        evbuffer_add(b, ",\"request_id\":", 14);
        obs_json_str(b, e->request_id);
        evbuffer_add(b, ",\"peer\":", 8);
        obs_json_str(b, e->peer);
        evbuffer_add_printf(b, ",\"status\":\"%s\",\"cause\":\"%s\","
                            "\"lived_ms\":%.3f,\"drain_ms\":%.3f,"
                            "\"ended_unix_ms\":%" PRId64 "}",
                            obs_code_name(e->status), obs_cause_name(e->cause),
                            ms(e->duration_ns), ms(e->drain_ns),
                            e->ended_wall_ms);
    }
    evbuffer_add(b, "]}\n", 3);
}

/* ---- render: HTML ----------------------------------------------------- */

static void render_html(struct srv_obs *o, const struct zview *v,
                        struct evbuffer *b)
{
    rpc_server_t *s = o->s;
    evbuffer_add_printf(
        b,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        "<title>ctxz</title><style>"
        "body{font-family:sans-serif;font-size:14px;margin:1em}"
        "table{border-collapse:collapse;margin:.5em 0 1em}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}"
        ".live{color:#070}.canceled,.deadline_exceeded{color:#a00}"
        "ul{margin:0;padding-left:1.2em}code{font-size:12px}"
        "</style></head><body>\n<h1>ctxz: live context trees</h1>\n"
        "<p id=\"summary\">uptime %.1f s &middot; %zu live requests &middot; "
        "%" PRId64 " connections &middot; %" PRId64 " calls in all &middot; "
        "%zu cancelable contexts under the server root%s &middot; "
        "<a href=\"/ctxz?format=json\">JSON</a> &middot; "
        "<a href=\"/metrics\">metrics</a></p>\n",
        (double)(v->now - o->start_ns) / 1e9, v->nr,
        rpc_server_stat(s, RPC_STAT_CONNECTIONS),
        rpc_server_stat(s, RPC_STAT_CALLS_TOTAL), v->root_nodes,
        v->truncated ? " (truncated)" : "");
    for (size_t ci = 0; ci < v->nc; ci++) {
        const struct zconn *c = &v->c[ci];
        evbuffer_add_printf(b, "<h2 class=\"conn\">connection <code>%p</code> ",
                            c->id);
        html_str(b, c->peer[0] ? c->peer : "(no live request)");
        if (c->start_ns > 0)
            evbuffer_add_printf(b, " &middot; age %.1f s", (double)(v->now - c->start_ns) / 1e9);
        evbuffer_add_printf(b, " &middot; %d streams &middot; <span class=\"%s\">%s</span></h2>\n",
                            c->streams, err_name(c->err), err_name(c->err));
        if (c->first_req < 0)
            continue;
        evbuffer_add(b, "<table><tr><th>call</th><th>method</th><th>x-request-id</th>"
                        "<th>age ms</th><th>deadline left ms</th><th>state</th>"
                        "<th>contexts</th></tr>\n", 136);
        for (int ri = c->first_req; ri >= 0; ri = v->r[ri].next_in_conn) {
            const struct zreq *r = &v->r[ri];
            evbuffer_add_printf(b, "<tr class=\"req\" id=\"call-%" PRIu64
                                "\"><td>%" PRIu64 "</td><td>", r->id, r->id);
            html_str(b, r->method);
            evbuffer_add(b, "</td><td class=\"rid\">", 21);
            html_str(b, r->request_id);
            evbuffer_add_printf(b, "</td><td>%.1f</td><td class=\"left\">",
                                ms(v->now - r->arrival_ns));
            if (r->timeout_ns >= 0)
                evbuffer_add_printf(b, "%.1f", ms(r->arrival_ns + r->timeout_ns - v->now));
            else
                evbuffer_add(b, "none", 4);
            evbuffer_add_printf(b, "</td><td class=\"%s\">%s / %s%s%s</td><td><ul>",
                                err_name(r->err), state_name(r->state),
                                err_name(r->err), r->cause ? " by " : "",
                                r->cause ? obs_cause_name(r->cause) : "");
            int base = r->first >= 0 ? v->n[r->first].i.depth : 0;
            for (int ni = r->first; ni >= 0; ni = v->n[ni].next) {
                const struct znode *n = &v->n[ni];
                char dl[32];
                evbuffer_add_printf(
                    b, "<li style=\"margin-left:%dem\"><code>%p</code> "
                       "<span class=\"%s\">%s</span>%s%s &middot; deadline left %s ms"
                       " &middot; %zu children, %zu afterfuncs</li>",
                    n->i.depth - base, (const void *)n->i.node, err_name(n->i.err),
                    err_name(n->i.err), n->i.cause ? " by " : "",
                    n->i.cause ? obs_cause_name(n->i.cause) : "",
                    left_text(dl, sizeof dl, n->i.deadline, v->now),
                    n->i.children, n->i.afterfuncs);
            }
            evbuffer_add(b, "</ul></td></tr>\n", 16);
        }
        evbuffer_add(b, "</table>\n", 9);
    }
    evbuffer_add_printf(b, "<h2>recently ended early (%zu)</h2>\n<table><tr>"
                        "<th>call</th><th>method</th><th>x-request-id</th>"
                        "<th>peer</th><th>status</th><th>cause</th>"
                        "<th>lived ms</th><th>end &rarr; all done ms</th></tr>\n",
                        v->nrec);
    for (size_t i = 0; i < v->nrec; i++) {
        const struct obs_recent *e = &v->rec[i];
        evbuffer_add_printf(b, "<tr class=\"recent\"><td>%" PRIu64 "</td><td>", e->id);
        html_str(b, e->method);
        evbuffer_add(b, "</td><td>", 9);
        html_str(b, e->request_id);
        evbuffer_add(b, "</td><td>", 9);
        html_str(b, e->peer);
        evbuffer_add_printf(b, "</td><td>%s</td><td>%s</td><td>%.1f</td>"
                            "<td>%.3f</td></tr>\n",
                            obs_code_name(e->status), obs_cause_name(e->cause),
                            ms(e->duration_ns), ms(e->drain_ns));
    }
    evbuffer_add(b, "</table>\n</body></html>\n", 24);
}

/* ---- HTTP --------------------------------------------------------------- */

static void reply(struct evhttp_request *req, int code, const char *ctype,
                  struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", ctype);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, code == 200 ? "OK" : "Not Found", body);
}

static void serve_metrics(struct obs_admin *a, struct evbuffer *b)
{
    obs_metrics_render(a->o, b);
    size_t (*fn)(char *, size_t, void *) =
        __atomic_load_n(&a->extra, __ATOMIC_ACQUIRE);
    if (fn == NULL)
        return;
    size_t need = fn(NULL, 0, a->extra_ud);
    char *t = rpc__malloc(need + 1);
    if (t == NULL)
        return;
    size_t got = fn(t, need + 1, a->extra_ud);
    evbuffer_add(b, t, got < need ? got : need);
    free(t);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct obs_admin *a = arg;
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    const char *query = u ? evhttp_uri_get_query(u) : NULL;
    struct evbuffer *b = evbuffer_new();
    if (b == NULL || path == NULL) {
        evhttp_send_error(req, 500, NULL);
        evbuffer_free(b);
        return;
    }
    if (strcmp(path, "/metrics") == 0) {
        serve_metrics(a, b);
        reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", b);
    } else if (strcmp(path, "/ctxz") == 0 || strcmp(path, "/ctxz.json") == 0) {
        int json = path[5] == '.' ||
                   (query && strstr(query, "format=json") != NULL);
        struct zview v;
        if (gather(a->o, &v) != 0) {
            evhttp_send_error(req, 500, NULL);
        } else {
            if (json)
                render_json(a->o, &v, b);
            else
                render_html(a->o, &v, b);
            reply(req, 200, json ? "application/json" : "text/html; charset=utf-8",
                  b);
        }
        view_free(&v);
    } else if (strcmp(path, "/") == 0) {
        evbuffer_add_printf(b, "<!DOCTYPE html><html><body><ul>"
                               "<li><a href=\"/metrics\">/metrics</a></li>"
                               "<li><a href=\"/ctxz\">/ctxz</a></li>"
                               "<li><a href=\"/ctxz?format=json\">/ctxz?format=json</a>"
                               "</li></ul></body></html>\n");
        reply(req, 200, "text/html; charset=utf-8", b);
    } else {
        evbuffer_add_printf(b, "not found\n");
        reply(req, 404, "text/plain", b);
    }
    evbuffer_free(b);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct obs_admin *a = arg;
    event_base_loopbreak(a->base);
}

static void *admin_thread(void *arg)
{
    struct obs_admin *a = arg;
    rpc__block_sigpipe();
    event_base_dispatch(a->base);
    return NULL;
}

static void admin_destroy(struct obs_admin *a)
{
    if (a->http)
        evhttp_free(a->http);
    if (a->stop_ev)
        event_free(a->stop_ev);
    if (a->base)
        event_base_free(a->base);
    if (a->stop_pipe[0] >= 0)
        close(a->stop_pipe[0]);
    if (a->stop_pipe[1] >= 0)
        close(a->stop_pipe[1]);
    free(a);
}

int rpc_server_enable_admin(rpc_server_t *s, const char *host, int port)
{
    if (s == NULL || port < 0 || port > 65535)
        return RPC_ERR_INVAL;
    struct srv_obs *o;
    int rc = obs_get(s, &o);
    if (rc != 0)
        return rc;
    if (o->admin != NULL)
        return RPC_ERR_STATE;
    struct obs_admin *a = rpc__calloc(1, sizeof *a);
    if (a == NULL)
        return RPC_ERR_NOMEM;
    a->o = o;
    a->stop_pipe[0] = a->stop_pipe[1] = -1;
    rc = RPC_ERR_NOMEM;
    if (pipe2(a->stop_pipe, O_CLOEXEC) != 0) {
        rc = RPC_ERR_SYSTEM;
        goto fail;
    }
    if ((a->base = event_base_new()) == NULL ||
        (a->http = evhttp_new(a->base)) == NULL ||
        (a->stop_ev = event_new(a->base, a->stop_pipe[0], EV_READ, on_stop,
                                a)) == NULL ||
        event_add(a->stop_ev, NULL) != 0)
        goto fail;
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(a->http, on_request, a);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(
        a->http, host ? host : "127.0.0.1", (ev_uint16_t)port);
    if (bs == NULL) {
        rc = RPC_ERR_IO;
        goto fail;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss,
                    &sl) != 0) {
        rc = RPC_ERR_SYSTEM;
        goto fail;
    }
    a->port = ss.ss_family == AF_INET6
                  ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                  : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    o->metrics = 1;
    if (pthread_create(&a->thread, NULL, admin_thread, a) != 0) {
        o->metrics = 0;
        rc = RPC_ERR_SYSTEM;
        goto fail;
    }
    o->admin = a;
    return 0;
fail:
    admin_destroy(a);
    return rc;
}

int rpc_server_admin_port(const rpc_server_t *s)
{
    return s && s->obs && s->obs->admin ? s->obs->admin->port : -1;
}

int rpc_server_admin_add_metrics(rpc_server_t *s,
                                 size_t (*fn)(char *buf, size_t len,
                                              void *user_data),
                                 void *user_data)
{
    if (s == NULL || fn == NULL)
        return RPC_ERR_INVAL;
    pthread_mutex_lock(&s->mu);
    int started = s->state != SRV_NEW;
    pthread_mutex_unlock(&s->mu);
    if (started || s->obs == NULL || s->obs->admin == NULL ||
        s->obs->admin->extra != NULL)
        return RPC_ERR_STATE;
    /* The admin thread may already serve: publish under no lock is not
     * enough, so the pair is written before it can be read -- scrapes
     * before start see the old (NULL) value or both fields. */
    s->obs->admin->extra_ud = user_data;
    __atomic_store_n(&s->obs->admin->extra, fn, __ATOMIC_RELEASE);
    return 0;
}

void obs_admin_free(struct obs_admin *a)
{
    if (a == NULL)
        return;
    char c = 1;
    while (write(a->stop_pipe[1], &c, 1) < 0 && errno == EINTR) {
    }
    pthread_join(a->thread, NULL);
    admin_destroy(a);
}
