/*
 * rpc_alog.c -- the access-log ring and its writer thread (rpc_alog.h),
 * used by the server's access-log interceptor and the client's observer.
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
 * the fd within about 20 ms.  rpc__alog_free() stops it after it has
 * written everything queued.
 *
 * Format: one JSON object per line, keys in this order (README, "Access
 * log"):
 *   time side call_id peer method type code status cause message
 *   duration_ms deadline_ms request_id trace_id span_id parent_span_id
 *   bytes_in bytes_out msgs_in msgs_out
 */
#include "rpc_alog.h"

#include <ctx/ctx.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ALOG_SLOTS 1024 /* power of two */

struct alog_slot {
    atomic_size_t seq;
    struct rpc__alog_rec r;
};

struct rpc__alog {
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

const char *rpc__code_name(int status)
{
    static const char *const names[17] = {
        "OK",           "Canceled",          "Unknown",
        "InvalidArgument", "DeadlineExceeded", "NotFound",
        "AlreadyExists", "PermissionDenied", "ResourceExhausted",
        "FailedPrecondition", "Aborted",     "OutOfRange",
        "Unimplemented", "Internal",         "Unavailable",
        "DataLoss",     "Unauthenticated",
    };
    return status >= 0 && status <= 16 ? names[status] : "Unknown";
}

void rpc__trace_ids(const char *tp, char trace[33], char span[17])
{
    trace[0] = span[0] = '\0';
    if (tp == NULL || strlen(tp) < 55 || tp[2] != '-' || tp[35] != '-' ||
        tp[52] != '-')
        return;
    memcpy(trace, tp + 3, 32);
    trace[32] = '\0';
    memcpy(span, tp + 36, 16);
    span[16] = '\0';
}

struct rpc__alog_rec *rpc__alog_claim(rpc__alog_t *a, void **slot)
{
    size_t pos = atomic_load_explicit(&a->tail, memory_order_relaxed);
    for (;;) {
        struct alog_slot *sl = &a->slots[pos & (ALOG_SLOTS - 1)];
        size_t seq = atomic_load_explicit(&sl->seq, memory_order_acquire);
        intptr_t diff = (intptr_t)seq - (intptr_t)pos;
        if (diff == 0) {
            if (atomic_compare_exchange_weak_explicit(
                    &a->tail, &pos, pos + 1, memory_order_relaxed,
                    memory_order_relaxed)) {
                *slot = sl;
                return &sl->r;
            }
        } else if (diff < 0) {
            atomic_fetch_add_explicit(&a->dropped, 1, memory_order_relaxed);
            return NULL;
        } else {
            pos = atomic_load_explicit(&a->tail, memory_order_relaxed);
        }
    }
}

void rpc__alog_commit(rpc__alog_t *a, void *slot)
{
    struct alog_slot *sl = slot;
    /* This slot's position: its sequence is still the position itself. */
    size_t pos = atomic_load_explicit(&sl->seq, memory_order_relaxed);
    (void)a;
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

#define ADD(...)                                                               \
    do {                                                                       \
        if (p < end)                                                           \
            p += snprintf(p, (size_t)(end - p), __VA_ARGS__);                  \
    } while (0)

static size_t format(const struct rpc__alog_rec *r, char *buf, size_t cap)
{
    char *p = buf, *end = buf + cap - 1;
    time_t sec = (time_t)(r->wall_ns / CTX_SECOND);
    struct tm tm;
    gmtime_r(&sec, &tm);
    p += strftime(p, (size_t)(end - p), "{\"time\":\"%Y-%m-%dT%H:%M:%S", &tm);
    ADD(".%06" PRId64 "Z\",\"side\":\"%s\",\"call_id\":%" PRIu64 ",\"peer\":",
        (r->wall_ns % CTX_SECOND) / 1000, r->side, r->id);
    put_str(&p, end, r->peer);
    ADD(",\"method\":");
    put_str(&p, end, r->method);
    ADD(",\"type\":\"%s\",\"code\":%d,\"status\":\"%s\",\"cause\":\"%s\","
        "\"message\":",
        r->type, r->status, rpc__code_name(r->status), r->cause);
    put_str(&p, end, r->message);
    ADD(",\"duration_ms\":%.3f,\"deadline_ms\":", (double)r->duration_ns / 1e6);
    if (r->timeout_ns >= 0)
        ADD("%.3f", (double)r->timeout_ns / 1e6);
    else
        ADD("null");
    ADD(",\"request_id\":");
    put_str(&p, end, r->request_id);
    ADD(",\"trace_id\":");
    put_str(&p, end, r->trace_id);
    ADD(",\"span_id\":");
    put_str(&p, end, r->span_id);
    ADD(",\"parent_span_id\":");
    put_str(&p, end, r->parent_span_id);
    ADD(",\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64 ",\"msgs_in\":%" PRIu64
        ",\"msgs_out\":%" PRIu64 "}\n",
        r->bytes_in, r->bytes_out, r->msgs_in, r->msgs_out);
    if (p >= end) { /* clipped: keep the line a line */
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
            return; /* a broken log must not stop the program */
        b += w;
        n -= (size_t)w;
    }
}

/* Formats and writes what is queued.  Returns the number of records. */
static size_t drain(rpc__alog_t *a)
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
        len += format(&sl->r, out + len, 1024);
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
    rpc__alog_t *a = arg;
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

rpc__alog_t *rpc__alog_new(int fd)
{
    rpc__alog_t *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->slots = calloc(ALOG_SLOTS, sizeof *a->slots);
    if (a->slots == NULL) {
        free(a);
        errno = ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < ALOG_SLOTS; i++)
        atomic_init(&a->slots[i].seq, i);
    a->fd = fd;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    int rc = pthread_create(&a->thread, NULL, writer, a);
    if (rc != 0) {
        pthread_mutex_destroy(&a->mu);
        pthread_cond_destroy(&a->cv);
        free(a->slots);
        free(a);
        errno = rc;
        return NULL;
    }
    return a;
}

uint64_t rpc__alog_dropped(const rpc__alog_t *a)
{
    return a ? (uint64_t)atomic_load(&((rpc__alog_t *)a)->dropped) : 0;
}

void rpc__alog_free(rpc__alog_t *a)
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
