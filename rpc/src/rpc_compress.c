/*
 * rpc_compress.c -- gRPC message compression (grpc/grpc doc/compression.md):
 * the `grpc-encoding` names we know, parsing of `grpc-accept-encoding`
 * lists, and per-message gzip/deflate with zlib.
 *
 * Each message is compressed on its own (a fresh zlib stream per message),
 * which is what the spec requires.  Decompression is bounded: a message
 * that inflates past the receive limit fails with RPC_ERR_TOO_LARGE as
 * soon as the limit is crossed, so a small "zip bomb" cannot make us
 * allocate more than the limit.  "deflate" is the zlib format (RFC 1950),
 * as grpc-go, grpc-js and C-core use it.
 */
#include "rpc_internal.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int rpc__encoding_parse(const char *s, size_t len)
{
    if (len == 8 && memcmp(s, "identity", 8) == 0)
        return RPC__ENC_IDENTITY;
    if (len == 4 && memcmp(s, "gzip", 4) == 0)
        return RPC__ENC_GZIP;
    if (len == 7 && memcmp(s, "deflate", 7) == 0)
        return RPC__ENC_DEFLATE;
    return -1;
}

const char *rpc__encoding_name(int enc)
{
    switch (enc) {
    case RPC__ENC_GZIP: return "gzip";
    case RPC__ENC_DEFLATE: return "deflate";
    default: return "identity";
    }
}

unsigned rpc__accept_encoding_parse(const char *s, size_t len)
{
    unsigned mask = 1u << RPC__ENC_IDENTITY;
    size_t i = 0;
    while (i < len) {
        while (i < len && (s[i] == ' ' || s[i] == ','))
            i++;
        size_t start = i;
        while (i < len && s[i] != ',' && s[i] != ' ')
            i++;
        int e = rpc__encoding_parse(s + start, i - start);
        if (e >= 0)
            mask |= 1u << e;
    }
    return mask;
}

static int window_bits(int enc)
{
    return enc == RPC__ENC_GZIP ? 15 + 16 : 15;
}

int rpc__compress(int enc, const uint8_t *in, size_t len, uint8_t **out,
                  size_t *out_len)
{
    if (enc != RPC__ENC_GZIP && enc != RPC__ENC_DEFLATE)
        return RPC_ERR_UNSUPPORTED;
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, window_bits(enc),
                     8, Z_DEFAULT_STRATEGY) != Z_OK)
        return RPC_ERR_NOMEM;
    size_t cap = deflateBound(&z, (uLong)len);
    uint8_t *buf = rpc__malloc(cap ? cap : 1);
    if (buf == NULL) {
        deflateEnd(&z);
        return RPC_ERR_NOMEM;
    }
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = buf;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(buf);
        return RPC_ERR_NOMEM;
    }
    *out = buf;
    *out_len = cap - z.avail_out;
    return 0;
}

int rpc__decompress(int enc, const uint8_t *in, size_t len, size_t max,
                    uint8_t **out, size_t *out_len)
{
    if (enc != RPC__ENC_GZIP && enc != RPC__ENC_DEFLATE)
        return RPC_ERR_UNSUPPORTED;
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, window_bits(enc)) != Z_OK)
        return RPC_ERR_NOMEM;
    size_t cap = len * 4 + 64 < max ? len * 4 + 64 : max + 1;
    uint8_t *buf = rpc__malloc(cap);
    int rc = buf ? 0 : RPC_ERR_NOMEM;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    size_t have = 0;
    while (rc == 0) {
        z.next_out = buf + have;
        z.avail_out = (uInt)(cap - have);
        int zr = inflate(&z, Z_NO_FLUSH);
        have = cap - z.avail_out;
        if (have > max) {
            rc = RPC_ERR_TOO_LARGE;
        } else if (zr == Z_STREAM_END) {
            if (z.avail_in != 0)
                rc = RPC_ERR_MALFORMED; /* trailing garbage */
            break;
        } else if (zr == Z_BUF_ERROR && z.avail_in == 0) {
            rc = RPC_ERR_MALFORMED; /* truncated */
        } else if (zr != Z_OK && zr != Z_BUF_ERROR) {
            rc = zr == Z_MEM_ERROR ? RPC_ERR_NOMEM : RPC_ERR_MALFORMED;
        } else if (z.avail_out == 0) {
            size_t ncap = cap * 2 < max + 1 ? cap * 2 : max + 1;
            uint8_t *nb = ncap > cap ? rpc__realloc(buf, ncap) : NULL;
            if (nb == NULL)
                rc = ncap > cap ? RPC_ERR_NOMEM : RPC_ERR_TOO_LARGE;
            else {
                buf = nb;
                cap = ncap;
            }
        }
    }
    inflateEnd(&z);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *out_len = have;
    return 0;
}
