/*
 * server_accesslog.c -- the access log: an interceptor whose on_end copies
 * one record per call into a bounded ring, and a writer thread that
 * formats the records as JSON lines and writes them to the log's fd.
 *
 * The ring is a bounded multi-producer queue (every loop thread produces,
 * the writer consumes), lock-free: each slot carries a sequence number;
 * a producer claims position p by a compare-and-swap on `tail` when slot
 * p's sequence equals p, fills it, and publishes it by storing p + 1; the
 * writer reads slot `head` once its sequence is head + 1 and frees it for
 * the next lap by storing head + capacity.  A producer that finds the slot
 * of its position still unread (sequence < p) drops the record and counts
 * it: a loop never waits for the disk.
 *
 * The writer sleeps on a condition variable with a 20 ms timeout (no
 * producer signals: that would cost a syscall per call), so lines reach
 * the fd within about 20 ms.  rpc_server_free() stops it after it has
 * written everything queued.
 *
 * Format (one JSON object per line; README "Access log"):
 *   {"time":"2026-12-04T19:45:01.123456Z","side":"server","call_id":17,
 *    "peer":"127.0.0.1:40000","method":"/demo.v1.Demo/Fanout",
 *    "type":"unary","code":4,"status":"DeadlineExceeded",
 *    "cause":"deadline","message":"Deadline Exceeded",
 *    "duration_ms":50.113,"deadline_ms":50.000,"request_id":"r-1",
 *    "trace_id":"4bf9...","span_id":"00f0...","bytes_in":12,
 *    "bytes_out":0,"msgs_in":1,"msgs_out":0}
 * deadline_ms is the grpc-timeout on arrival (null: none); trace_id and
 * span_id come from the request's traceparent (the span the calling
 * client opened for this hop; "" when absent).
 */
#include "server_obs_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ALOG_SLOTS 1024 /* power of two */

struct alog_rec {
    int64_t wall_ns;
    int64_t duration_ns, timeout_ns;
    uint64_t id;
    int status, cause, kind;
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
    char peer[48];
    char method[96];
    char request_id[64];
    char traceparent[64];
    char message[96];
};

struct alog_slot {
    atomic_size_t seq;
    struct alog_rec r;
};

struct obs_alog {
    int fd;
    struct alog_slot *slots;
    atomic_size_t tail;       /* producers */
    size_t head;              /* writer only */
    atomic_uint_fast64_t dropped;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;                 /* [mu] */
};

static void copy(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

static void on_end(const rpc_server_call_info_t *info, void *ud)
{
    struct obs_alog *a = ud;
    size_t pos = atomic_load_explicit(&a->tail, memory_order_relaxed);
    struct alog_slot *sl;
    for (;;) {
        sl = &a->slots[pos & (ALOG_SLOTS - 1)];
        size_t seq = atomic_load_explicit(&sl->seq, memory_order_acquire);
        intptr_t diff = (intptr_t)seq - (intptr_t)pos;
        if (diff == 0) {
            if (atomic_compare_exchange_weak_explicit(
                    &a->tail, &pos, pos + 1, memory_order_relaxed,
                    memory_order_relaxed))
                break;
        } else if (diff < 0) {
            atomic_fetch_add_explicit(&a->dropped, 1, memory_order_relaxed);
            return;
        } else {
            pos = atomic_load_explicit(&a->tail, memory_order_relaxed);
        }
    }
    struct alog_rec *r = &sl->r;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r->wall_ns = (int64_t)ts.tv_sec * CTX_SECOND + ts.tv_nsec;
    r->duration_ns = info->duration_ns;
    r->timeout_ns = info->timeout_ns;
    r->id = info->id;
    r->status = info->status;
    r->cause = info->cause;
    r->kind = info->kind;
    r->msgs_in = info->msgs_in;
    r->msgs_out = info->msgs_out;
    r->bytes_in = info->bytes_in;
    r->bytes_out = info->bytes_out;
    copy(r->peer, sizeof r->peer, info->peer);
    copy(r->method, sizeof r->method, info->method);
    copy(r->request_id, sizeof r->request_id,
         rpc_metadata_get(info->ctx, "x-request-id", NULL));
    copy(r->traceparent, sizeof r->traceparent,
         rpc_metadata_get(info->ctx, "traceparent", NULL));
    copy(r->message, sizeof r->message, info->status_message);
    atomic_store_explicit(&sl->seq, pos + 1, memory_order_release);
}

/* ---- the writer ----------------------------------------------------------- */

static void put_str(char **p, char *end, const char *s)
{
    char *o = *p;
    if (o < end)
        *o++ = '"';
    for (; *s && o + 7 < end; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            *o++ = '\\';
            *o++ = (char)ch;
        } else if (ch < 0x20) {
            o += snprintf(o, (size_t)(end - o), "\\u%04x", ch);
        } else {
            *o++ = (char)ch;
        }
    }
    if (o < end)
        *o++ = '"';
    *p = o;
}

/* Splits "00-<trace>-<span>-<flags>"; empty strings when malformed. */
static void trace_ids(const char *tp, char trace[33], char span[17])
{
    trace[0] = span[0] = '\0';
    if (strlen(tp) < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-')
        return;
    memcpy(trace, tp + 3, 32);
    trace[32] = '\0';
    memcpy(span, tp + 36, 16);
    span[16] = '\0';
}

static size_t format(const struct alog_rec *r, char *buf, size_t cap)
{
    char *p = buf, *end = buf + cap - 1;
    time_t sec = (time_t)(r->wall_ns / CTX_SECOND);
    struct tm tm;
    gmtime_r(&sec, &tm);
    p += strftime(p, (size_t)(end - p), "{\"time\":\"%Y-%m-%dT%H:%M:%S", &tm);
    p += snprintf(p, (size_t)(end - p),
                  ".%06" PRId64 "Z\",\"side\":\"server\",\"call_id\":%" PRIu64
                  ",\"peer\":",
                  (r->wall_ns % CTX_SECOND) / 1000, r->id);
    put_str(&p, end, r->peer);
    p += snprintf(p, (size_t)(end - p), ",\"method\":");
    put_str(&p, end, r->method);
    p += snprintf(p, (size_t)(end - p),
                  ",\"type\":\"%s\",\"code\":%d,\"status\":\"%s\",\"cause\":"
                  "\"%s\",\"message\":",
                  obs_kind_name((rpc_method_kind_t)r->kind), r->status,
                  obs_code_name(r->status), obs_cause_name(r->cause));
    put_str(&p, end, r->message);
    p += snprintf(p, (size_t)(end - p), ",\"duration_ms\":%.3f,\"deadline_ms\":",
                  (double)r->duration_ns / 1e6);
    if (r->timeout_ns >= 0)
        p += snprintf(p, (size_t)(end - p), "%.3f",
                      (double)r->timeout_ns / 1e6);
    else
        p += snprintf(p, (size_t)(end - p), "null");
    char trace[33], span[17];
    trace_ids(r->traceparent, trace, span);
    p += snprintf(p, (size_t)(end - p), ",\"request_id\":");
    put_str(&p, end, r->request_id);
    p += snprintf(p, (size_t)(end - p), ",\"trace_id\":");
    put_str(&p, end, trace);
    p += snprintf(p, (size_t)(end - p), ",\"span_id\":");
    put_str(&p, end, span);
    p += snprintf(p, (size_t)(end - p),
                  ",\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64
                  ",\"msgs_in\":%" PRIu64 ",\"msgs_out\":%" PRIu64 "}\n",
                  r->bytes_in, r->bytes_out, r->msgs_in, r->msgs_out);
    if (p > end) { /* clipped: keep the line a line */
        p = end;
        p[-1] = '\n';
    }
    return (size_t)(p - buf);
}

static void write_all(int fd, const char *b, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* a broken log must not stop the server */
        b += w;
        n -= (size_t)w;
    }
}

/* Formats and writes what is queued.  Returns the number of records. */
static size_t drain(struct obs_alog *a)
{
    char out[32768];
    size_t len = 0, n = 0;
    for (;;) {
        struct alog_slot *sl = &a->slots[a->head & (ALOG_SLOTS - 1)];
        if (atomic_load_explicit(&sl->seq, memory_order_acquire) != a->head + 1)
            break;
        if (len + 1024 > sizeof out) {
            write_all(a->fd, out, len);
            len = 0;
        }
        len += format(&sl->r, out + len, sizeof out - len);
        atomic_store_explicit(&sl->seq, a->head + ALOG_SLOTS,
                              memory_order_release);
        a->head++;
        n++;
    }
    if (len)
        write_all(a->fd, out, len);
    return n;
}

static void *writer(void *arg)
{
    struct obs_alog *a = arg;
    for (;;) {
        if (drain(a) > 0)
            continue;
        pthread_mutex_lock(&a->mu);
        int stop = a->stop;
        if (!stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 20 * 1000 * 1000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&a->cv, &a->mu, &ts);
        }
        pthread_mutex_unlock(&a->mu);
        if (stop) {
            drain(a);
            return NULL;
        }
    }
}

int rpc_server_enable_access_log(rpc_server_t *s, int fd)
{
    if (s == NULL || fd < 0)
        return RPC_ERR_INVAL;
    struct srv_obs *o;
    int rc = obs_get(s, &o);
    if (rc != 0)
        return rc;
    if (o->alog != NULL)
        return RPC_ERR_STATE;
    struct obs_alog *a = calloc(1, sizeof *a);
    if (a == NULL)
        return RPC_ERR_NOMEM;
    a->slots = calloc(ALOG_SLOTS, sizeof *a->slots);
    if (a->slots == NULL) {
        free(a);
        return RPC_ERR_NOMEM;
    }
    for (size_t i = 0; i < ALOG_SLOTS; i++)
        atomic_init(&a->slots[i].seq, i);
    a->fd = fd;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    rpc_server_interceptor_t ic = {.on_end = on_end};
    rc = rpc_server_add_interceptor(s, &ic, a);
    if (rc == 0 && pthread_create(&a->thread, NULL, writer, a) != 0) {
        o->nics--; /* ours was the last one added */
        rc = RPC_ERR_SYSTEM;
    }
    if (rc != 0) {
        pthread_mutex_destroy(&a->mu);
        pthread_cond_destroy(&a->cv);
        free(a->slots);
        free(a);
        return rc;
    }
    o->alog = a;
    return 0;
}

uint64_t obs_alog_dropped(struct obs_alog *a)
{
    return a ? (uint64_t)atomic_load(&a->dropped) : 0;
}

uint64_t rpc_server_access_log_dropped(const rpc_server_t *s)
{
    return s && s->obs ? obs_alog_dropped(s->obs->alog) : 0;
}

void obs_alog_free(struct obs_alog *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->mu);
    a->stop = 1;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    free(a->slots);
    free(a);
}
