/*
 * rpc_metadata.c -- the metadata multimap and its binding to contexts.
 *
 * A set is a growable array of entries; each entry is one allocation
 * holding the key, a NUL and the value (plus a NUL, so ASCII values read as
 * C strings).  Sets are small (a handful of entries), so lookups are
 * linear scans; nothing here is worth a hash table.
 *
 * Binding: the server attaches ONE value node per request carrying the
 * method, the peer and the whole metadata set (rpc__request_info_t),
 * rather than one node per entry: one allocation instead of n, and a
 * lookup that walks the context chain once and then scans a flat array.
 * rpc_metadata_get() therefore costs one ctx_value() plus a scan, whatever
 * the depth of the context it is called with.
 *
 * Threads: a set is built by one owner, then frozen when bound; reads of a
 * frozen set need no lock.
 */
#include "rpc_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct md_entry {
    size_t key_len;
    size_t len;
    char data[]; /* key NUL value NUL */
};

struct rpc_metadata {
    struct md_entry **v;       /* inl until more than 4 entries */
    size_t n, cap;
    struct md_entry *inl[4];
};

const char rpc__request_info_key = 0;

rpc_metadata_t *rpc_metadata_new(void)
{
    rpc_metadata_t *md = rpc__calloc(1, sizeof(rpc_metadata_t));
    if (md != NULL) {
        md->v = md->inl;
        md->cap = sizeof md->inl / sizeof *md->inl;
    }
    return md;
}

void rpc_metadata_free(rpc_metadata_t *md)
{
    if (md == NULL)
        return;
    for (size_t i = 0; i < md->n; i++)
        rpc__free(md->v[i]);
    if (md->v != md->inl)
        free(md->v);
    rpc__free(md);
}

int rpc__metadata_key_valid(const char *key, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = key[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '_' ||
              c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

static bool key_is_binary(const char *key, size_t len)
{
    return len >= 4 && memcmp(key + len - 4, "-bin", 4) == 0;
}

bool rpc_metadata_key_is_binary(const char *key)
{
    return key != NULL && key_is_binary(key, strlen(key));
}

static int add(rpc_metadata_t *md, const char *key, size_t key_len,
               const void *value, size_t len)
{
    if (md->n == md->cap) {
        size_t cap = md->cap * 2;
        struct md_entry **v = md->v == md->inl ? rpc__malloc(cap * sizeof *v)
                                               : rpc__realloc(md->v, cap * sizeof *v);
        if (v == NULL)
            return RPC_ERR_NOMEM;
        if (md->v == md->inl)
            memcpy(v, md->inl, sizeof md->inl);
        md->v = v;
        md->cap = cap;
    }
    struct md_entry *e = rpc__malloc(sizeof *e + key_len + len + 2);
    if (e == NULL)
        return RPC_ERR_NOMEM;
    e->key_len = key_len;
    e->len = len;
    memcpy(e->data, key, key_len);
    e->data[key_len] = '\0';
    if (len)
        memcpy(e->data + key_len + 1, value, len);
    e->data[key_len + 1 + len] = '\0';
    md->v[md->n++] = e;
    return 0;
}

int rpc_metadata_add(rpc_metadata_t *md, const char *key, const void *value,
                     size_t len)
{
    if (md == NULL || key == NULL || (value == NULL && len > 0))
        return RPC_ERR_INVAL;
    size_t key_len = strlen(key);
    if (!rpc__metadata_key_valid(key, key_len))
        return RPC_ERR_INVAL;
    if (!key_is_binary(key, key_len)) {
        const uint8_t *p = value;
        for (size_t i = 0; i < len; i++)
            if (p[i] < 0x20 || p[i] > 0x7E)
                return RPC_ERR_INVAL;
    }
    return add(md, key, key_len, value, len);
}

int rpc__metadata_add_wire(rpc_metadata_t *md, const char *key,
                           size_t key_len, const char *value,
                           size_t value_len)
{
    if (!rpc__metadata_key_valid(key, key_len))
        return RPC_ERR_INVAL;
    if (!key_is_binary(key, key_len)) {
        /* Strip optional surrounding spaces; keep other bytes as they are
         * (legal HTTP values outside 0x20..0x7E must not fail the call). */
        while (value_len > 0 && value[0] == ' ') {
            value++;
            value_len--;
        }
        while (value_len > 0 && value[value_len - 1] == ' ')
            value_len--;
        return add(md, key, key_len, value, value_len);
    }
    /* Binary: values may arrive joined with ',' -- one entry per piece. */
    size_t start = 0;
    for (size_t i = 0; i <= value_len; i++) {
        if (i < value_len && value[i] != ',')
            continue;
        const char *piece = value + start;
        size_t plen = i - start;
        while (plen > 0 && piece[0] == ' ') {
            piece++;
            plen--;
        }
        while (plen > 0 && piece[plen - 1] == ' ')
            plen--;
        uint8_t stackbuf[256];
        size_t max = rpc__base64_decoded_max(plen);
        uint8_t *buf = max <= sizeof stackbuf ? stackbuf : rpc__malloc(max);
        if (buf == NULL)
            return RPC_ERR_NOMEM;
        long n = rpc__base64_decode(piece, plen, buf);
        int rc = n < 0 ? (int)n : add(md, key, key_len, buf, (size_t)n);
        if (buf != stackbuf)
            free(buf);
        if (rc != 0)
            return rc;
        start = i + 1;
    }
    return 0;
}

size_t rpc_metadata_count(const rpc_metadata_t *md)
{
    return md ? md->n : 0;
}

bool rpc_metadata_at(const rpc_metadata_t *md, size_t i, const char **key,
                     const void **value, size_t *len)
{
    if (md == NULL || i >= md->n)
        return false;
    struct md_entry *e = md->v[i];
    if (key)
        *key = e->data;
    if (value)
        *value = e->data + e->key_len + 1;
    if (len)
        *len = e->len;
    return true;
}

const void *rpc_metadata_find(const rpc_metadata_t *md, const char *key,
                              size_t *len)
{
    if (md == NULL || key == NULL)
        return NULL;
    size_t key_len = strlen(key);
    for (size_t i = 0; i < md->n; i++) {
        struct md_entry *e = md->v[i];
        if (e->key_len == key_len && memcmp(e->data, key, key_len) == 0) {
            if (len)
                *len = e->len;
            return e->data + key_len + 1;
        }
    }
    return NULL;
}

static void info_destroy(void *p)
{
    rpc__request_info_t *info = p;
    rpc_metadata_free(info->md);
    rpc__free(info);
}

ctx_t *rpc__ctx_with_request_info(ctx_t *parent, rpc_metadata_t *md,
                                  const char *method, const char *peer)
{
    size_t ml = method ? strlen(method) + 1 : 0;
    size_t pl = peer ? strlen(peer) + 1 : 0;
    /* One allocation: the struct, then the two strings. */
    rpc__request_info_t *info = rpc__malloc(sizeof *info + ml + pl);
    if (info == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    char *p = (char *)(info + 1);
    info->md = md;
    info->method = method ? memcpy(p, method, ml) : NULL;
    info->peer = peer ? memcpy(p + ml, peer, pl) : NULL;
    ctx_t *c = ctx_with_value(parent, &rpc__request_info_key, info,
                              info_destroy);
    if (c == NULL)
        free(info); /* md stays the caller's */
    return c;
}

const rpc__request_info_t *rpc__request_info(ctx_t *c)
{
    return c ? ctx_value(c, &rpc__request_info_key) : NULL;
}

ctx_t *rpc_ctx_with_metadata(ctx_t *parent, rpc_metadata_t *md)
{
    if (parent == NULL || md == NULL) {
        errno = EINVAL;
        return NULL;
    }
    return rpc__ctx_with_request_info(parent, md, NULL, NULL);
}

const rpc_metadata_t *rpc_metadata_from_ctx(ctx_t *c)
{
    const rpc__request_info_t *info = rpc__request_info(c);
    return info ? info->md : NULL;
}

const char *rpc_metadata_get(ctx_t *c, const char *key, size_t *len)
{
    return rpc_metadata_find(rpc_metadata_from_ctx(c), key, len);
}
