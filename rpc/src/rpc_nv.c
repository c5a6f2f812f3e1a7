/*
 * rpc_nv.c -- HTTP/2 header list builder (see rpc_nv.h).
 */
#include "rpc_nv.h"

#include "rpc_internal.h"

#include <stdlib.h>
#include <string.h>

void rpc__nv_init(rpc__nv_t *b)
{
    b->nv = b->stack;
    b->n = 0;
    b->cap = RPC__NV_STACK;
    b->owned = b->owned_stack;
    b->nowned = 0;
    b->capowned = RPC__NV_OWNED_STACK;
    b->failed = 0;
}

/* Doubles an array that starts in the builder itself. */
static int grow(void **arr, size_t *cap, size_t elem, const void *stack)
{
    size_t ncap = *cap * 2;
    void *v = rpc__malloc(ncap * elem);
    if (v == NULL)
        return -1;
    memcpy(v, *arr, *cap * elem);
    if (*arr != stack)
        free(*arr);
    *arr = v;
    *cap = ncap;
    return 0;
}

void rpc__nv_add(rpc__nv_t *b, const char *name, const void *value, size_t len)
{
    if (b->failed)
        return;
    if (b->n == b->cap &&
        grow((void **)&b->nv, &b->cap, sizeof *b->nv, b->stack) != 0) {
        b->failed = 1;
        return;
    }
    b->nv[b->n++] = (nghttp2_nv){(uint8_t *)name, (uint8_t *)value,
                                 strlen(name), len, NGHTTP2_NV_FLAG_NONE};
}

/* Adds name: value where value (malloc'd, NUL-terminated, may be NULL
 * after a failed allocation) becomes the builder's. */
static void add_owned(rpc__nv_t *b, const char *name, char *value, size_t len)
{
    if (value == NULL || b->failed ||
        (b->nowned == b->capowned &&
         grow((void **)&b->owned, &b->capowned, sizeof *b->owned,
              b->owned_stack) != 0)) {
        free(value);
        b->failed = 1;
        return;
    }
    b->owned[b->nowned++] = value;
    rpc__nv_add(b, name, value, len);
}

void rpc__nv_add_metadata(rpc__nv_t *b, const rpc_metadata_t *md)
{
    const char *k;
    const void *v;
    size_t len;
    for (size_t i = 0; rpc_metadata_at(md, i, &k, &v, &len); i++) {
        if (rpc_metadata_key_is_binary(k)) {
            char *enc = rpc__malloc(rpc__base64_encoded_len(len) + 1);
            size_t elen = enc ? rpc__base64_encode(v, len, enc) : 0;
            add_owned(b, k, enc, elen);
        } else {
            rpc__nv_add(b, k, v, len);
        }
    }
}

void rpc__nv_add_status(rpc__nv_t *b, int status, const char *msg)
{
    if (status < 0 || status > 99)
        status = RPC_STATUS_UNKNOWN;
    int n = 0;
    if (status >= 10)
        b->status[n++] = (char)('0' + status / 10);
    b->status[n++] = (char)('0' + status % 10);
    b->status[n] = '\0';
    rpc__nv_add(b, "grpc-status", b->status, (size_t)n);
    if (msg && *msg) {
        size_t len = strlen(msg);
        char *enc = rpc__malloc(rpc__percent_encoded_len(msg, len) + 1);
        size_t elen = enc ? rpc__percent_encode(msg, len, enc) : 0;
        add_owned(b, "grpc-message", enc, elen);
    }
}

int rpc__nv_failed(const rpc__nv_t *b)
{
    return b->failed;
}

void rpc__nv_free(rpc__nv_t *b)
{
    for (size_t i = 0; i < b->nowned; i++)
        free(b->owned[i]);
    if (b->owned != b->owned_stack)
        free(b->owned);
    if (b->nv != b->stack)
        free(b->nv);
    rpc__nv_init(b);
}
