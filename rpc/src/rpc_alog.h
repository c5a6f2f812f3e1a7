/*
 * rpc_alog.h -- the access-log ring shared by the server's and the
 * client's access logs: producers (loop threads) copy fixed-size records
 * into a bounded lock-free ring and never wait; a writer thread formats
 * them as JSON lines and writes them to a file descriptor.  Internal.
 */
#ifndef RPC_ALOG_H
#define RPC_ALOG_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* One line.  Strings are NUL-terminated and clipped to their arrays. */
struct rpc__alog_rec {
    const char *side;          /* static: "server" or "client" */
    const char *type;          /* static: "unary", "bidi_stream", ... */
    int64_t wall_ns;           /* CLOCK_REALTIME at the end */
    int64_t duration_ns;
    int64_t timeout_ns;        /* deadline budget on arrival/start; -1 none */
    uint64_t id;
    int status;
    const char *cause;         /* static word, see README */
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
    char peer[64];
    char method[96];
    char request_id[64];
    char trace_id[33], span_id[17], parent_span_id[17];
    char message[96];
};

typedef struct rpc__alog rpc__alog_t;

/* Starts a writer thread writing to fd (not closed here).  NULL with
 * errno on failure. */
rpc__alog_t *rpc__alog_new(int fd);
/* Claims a slot and returns it for the caller to fill, or NULL when the
 * ring is full (the record is counted as dropped).  The caller then calls
 * rpc__alog_commit(a, slot).  Any thread; never blocks. */
struct rpc__alog_rec *rpc__alog_claim(rpc__alog_t *a, void **slot);
void rpc__alog_commit(rpc__alog_t *a, void *slot);
uint64_t rpc__alog_dropped(const rpc__alog_t *a);
/* Writes out what is queued, stops the writer, frees.  NULL-safe. */
void rpc__alog_free(rpc__alog_t *a);

/* Splits a W3C traceparent "00-<trace>-<span>-<flags>" into its ids
 * (empty strings when malformed or NULL). */
void rpc__trace_ids(const char *tp, char trace[33], char span[17]);
/* Go's codes.Code.String(): "OK", "Canceled", ... ("Unknown" outside). */
const char *rpc__code_name(int status);

/* Copies src (NULL: "") into a record's field dst[cap], truncated and
 * NUL-terminated.  Any thread. */
static inline void rpc__alog_copy(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

#endif
