/*
 * rpc_base64.c -- base64 (RFC 4648 section 4, '+' and '/') for the values
 * of "-bin" metadata keys.  gRPC senders emit it unpadded; receivers must
 * accept both padded and unpadded input (PROTOCOL-HTTP2.md), so the
 * decoder takes either and rejects everything else: characters outside
 * the alphabet, '=' anywhere but at the end, a lone final character (6
 * bits cannot make a byte) and non-zero leftover bits (so that every byte
 * string has exactly one accepted unpadded spelling).
 */
#include "rpc_internal.h"

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t rpc__base64_encoded_len(size_t len)
{
    return len / 3 * 4 + (len % 3 == 0 ? 0 : len % 3 + 1);
}

size_t rpc__base64_encode(const void *src, size_t len, char *dst)
{
    const uint8_t *s = src;
    size_t n = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        dst[n++] = alphabet[v >> 18];
        dst[n++] = alphabet[(v >> 12) & 63];
        dst[n++] = alphabet[(v >> 6) & 63];
        dst[n++] = alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        dst[n++] = alphabet[v >> 18];
        dst[n++] = alphabet[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        dst[n++] = alphabet[v >> 18];
        dst[n++] = alphabet[(v >> 12) & 63];
        dst[n++] = alphabet[(v >> 6) & 63];
    }
    dst[n] = '\0';
    return n;
}

size_t rpc__base64_decoded_max(size_t len)
{
    return len / 4 * 3 + 3;
}

static int val(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

long rpc__base64_decode(const char *src, size_t len, uint8_t *dst)
{
    /* Strip padding: at most two '=' and only when the padded length is a
     * multiple of four. */
    if (len > 0 && src[len - 1] == '=') {
        if (len % 4 != 0)
            return RPC_ERR_MALFORMED;
        len--;
        if (len > 0 && src[len - 1] == '=')
            len--;
    }
    if (len % 4 == 1)
        return RPC_ERR_MALFORMED;
    long n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = val(src[i]);
        if (v < 0)
            return RPC_ERR_MALFORMED;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            dst[n++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* leftover bits must be zero */
        return RPC_ERR_MALFORMED;
    return n;
}
