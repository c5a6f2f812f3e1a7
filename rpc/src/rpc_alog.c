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
 * The writer drains without sleeping while records come; once the ring is
 * empty it sleeps on a condition variable with a 20 ms timeout, and a
 * producer signals it only when its record lands on a multiple of
 * ALOG_KICK positions while the writer is asleep (one syscall per 256
 * records at most, so a burst does not overrun the ring while the writer
 * naps).  Lines reach the fd within about 20 ms.  rpc__alog_free() stops it after it has
 * written everything queued.
 *
 * Format: one JSON object per line, keys in this order (README, "Access
 * log"):
 *   time side call_id peer method type code status cause message
 *   duration_ms deadline_ms request_id trace_id span_id parent_span_id
 *   bytes_in bytes_out msgs_in msgs_out
 */
#include "rpc_alog.h"
#include "rpc_internal.h" /* rpc__calloc: fault injection */

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

#define ALOG_SLOTS 4096 /* power of two: ~2 MB of records */
#define ALOG_KICK 256   /* wake a sleeping writer every this many records */

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
    atomic_int asleep;        /* the writer is (about to be) waiting */
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
    atomic_store_explicit(&sl->seq, pos + 1, memory_order_release);
    if ((pos & (ALOG_KICK - 1)) == 0 &&
        atomic_load_explicit(&a->asleep, memory_order_relaxed))
        pthread_cond_signal(&a->cv); /* no mutex: a lost wake-up costs 20 ms */
}

/* ---- the writer ----------------------------------------------------------- */

static void put_str(char **p, char *end, const char *s)
{
    char *o = *p;
    if (o < end)
        *o++ = '"';
    while (*s && o + 7 < end) {
        /* a run of characters that need no escaping, copied at once */
        size_t n = 0;
        while (s[n] && (unsigned char)s[n] >= 0x20 && s[n] != '"' && s[n] != '\\')
            n++;
        if (n > (size_t)(end - o) - 7)
            n = (size_t)(end - o) - 7;
        memcpy(o, s, n);
        o += n;
        s += n;
        unsigned char ch = (unsigned char)*s;
        if (ch == 0 || o + 7 >= end)
            break;
        if (ch == '"' || ch == '\\') {
            *o++ = '\\';
            *o++ = (char)ch;
        } else {
            o += snprintf(o, (size_t)(end - o), "\\u%04x", ch);
        }
        s++;
    }
    if (o < end)
        *o++ = '"';
    *p = o;
}

/* Fast appenders (the writer formats ~100k lines/s on a busy server):
 * no printf on the per-line path except for the clipped-line guard. */
static void put_raw(char **p, char *end, const char *s, size_t n)
{
    if (*p + n > end)
        n = (size_t)(end - *p);
    memcpy(*p, s, n);
    *p += n;
}
#define PUT(lit) put_raw(&p, end, lit, sizeof lit - 1)

static void put_u64(char **p, char *end, uint64_t v)
{
    char t[24];
    int i = 24;
    do
        t[--i] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    put_raw(p, end, t + i, (size_t)(24 - i));
}

/* Nanoseconds as milliseconds with 3 decimals ("12.345"). */
static void put_ms(char **p, char *end, int64_t ns)
{
    if (ns < 0) {
        put_raw(p, end, "-", 1);
        ns = -ns;
    }
    uint64_t us = (uint64_t)ns / 1000;
    put_u64(p, end, us / 1000);
    char f[4] = {'.', (char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10),
                 (char)('0' + us % 10)};
    put_raw(p, end, f, 4);
}

struct tcache {
    int64_t sec;
    char prefix[32]; /* "{\"time\":\"2026-12-04T19:45:01" */
    size_t len;
};

static size_t format(struct tcache *tc, const struct rpc__alog_rec *r,
                     char *buf, size_t cap)
{
    char *p = buf, *end = buf + cap - 1;
    int64_t sec = r->wall_ns / CTX_SECOND;
    if (sec != tc->sec) { /* one gmtime per second, not per line */
        time_t t = (time_t)sec;
        struct tm tm;
        gmtime_r(&t, &tm);
        tc->len = strftime(tc->prefix, sizeof tc->prefix,
                           "{\"time\":\"%Y-%m-%dT%H:%M:%S", &tm);
        tc->sec = sec;
    }
    put_raw(&p, end, tc->prefix, tc->len);
    uint64_t usec = (uint64_t)(r->wall_ns % CTX_SECOND) / 1000;
    char frac[8] = {'.'};
    for (int i = 6; i >= 1; i--, usec /= 10)
        frac[i] = (char)('0' + usec % 10);
    frac[7] = 'Z';
    put_raw(&p, end, frac, 8);
    PUT("\",\"side\":\"");
    put_raw(&p, end, r->side, strlen(r->side));
    PUT("\",\"call_id\":");
    put_u64(&p, end, r->id);
    PUT(",\"peer\":");
    put_str(&p, end, r->peer);
    PUT(",\"method\":");
    put_str(&p, end, r->method);
    PUT(",\"type\":\"");
    put_raw(&p, end, r->type, strlen(r->type));
    PUT("\",\"code\":");
    put_u64(&p, end, (uint64_t)(r->status >= 0 ? r->status : 2));
    PUT(",\"status\":\"");
    const char *cn = rpc__code_name(r->status);
    put_raw(&p, end, cn, strlen(cn));
    PUT("\",\"cause\":\"");
    put_raw(&p, end, r->cause, strlen(r->cause));
    PUT("\",\"message\":");
    put_str(&p, end, r->message);
    PUT(",\"duration_ms\":");
    put_ms(&p, end, r->duration_ns);
    PUT(",\"deadline_ms\":");
    if (r->timeout_ns >= 0)
        put_ms(&p, end, r->timeout_ns);
    else
        PUT("null");
    PUT(",\"request_id\":");
    put_str(&p, end, r->request_id);
    PUT(",\"trace_id\":");
    put_str(&p, end, r->trace_id);
    PUT(",\"span_id\":");
    put_str(&p, end, r->span_id);
    PUT(",\"parent_span_id\":");
    put_str(&p, end, r->parent_span_id);
    PUT(",\"bytes_in\":");
    put_u64(&p, end, r->bytes_in);
    PUT(",\"bytes_out\":");
    put_u64(&p, end, r->bytes_out);
    PUT(",\"msgs_in\":");
    put_u64(&p, end, r->msgs_in);
    PUT(",\"msgs_out\":");
    put_u64(&p, end, r->msgs_out);
    PUT("}\n");
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
    static _Thread_local struct tcache tc; /* the writer thread's */
    size_t len = 0, n = 0;
    for (;;) {
        struct alog_slot *sl = &a->slots[a->head & (ALOG_SLOTS - 1)];
        if (atomic_load_explicit(&sl->seq, memory_order_acquire) != a->head + 1)
            break;
        if (len + 1024 > sizeof out) {
            write_all(a->fd, out, len);
            len = 0;
        }
        len += format(&tc, &sl->r, out + len, 1024);
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
            atomic_store(&a->asleep, 1);
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 20 * 1000 * 1000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&a->cv, &a->mu, &ts);
            atomic_store(&a->asleep, 0);
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
    rpc__alog_t *a = rpc__calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->slots = rpc__calloc(ALOG_SLOTS, sizeof *a->slots);
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
