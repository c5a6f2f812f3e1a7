/*
 * rpc_percent.c -- percent-encoding of grpc-message (PROTOCOL-HTTP2.md):
 * bytes 0x20..0x7E except '%' travel as themselves, every other byte (UTF-8
 * included) as %XX with upper-case hex.  Decoding never fails: an escape
 * that is not '%' plus two hex digits is passed through literally, because
 * a malformed status message must not turn into a failed call.
 */
#include "rpc_internal.h"

static int keep(uint8_t c)
{
    return c >= 0x20 && c <= 0x7E && c != '%';
}

size_t rpc__percent_encoded_len(const void *src, size_t len)
{
    const uint8_t *s = src;
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += keep(s[i]) ? 1 : 3;
    return n;
}

size_t rpc__percent_encode(const void *src, size_t len, char *dst)
{
    static const char hex[] = "0123456789ABCDEF";
    const uint8_t *s = src;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (keep(s[i])) {
            dst[n++] = (char)s[i];
        } else {
            dst[n++] = '%';
            dst[n++] = hex[s[i] >> 4];
            dst[n++] = hex[s[i] & 15];
        }
    }
    dst[n] = '\0';
    return n;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

size_t rpc__percent_decode(const char *src, size_t len, char *dst)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '%' && i + 2 < len) {
            int hi = hexval(src[i + 1]);
            int lo = hexval(src[i + 2]);
            if (hi >= 0 && lo >= 0) {
                dst[n++] = (char)(hi << 4 | lo);
                i += 2;
                continue;
            }
        }
        dst[n++] = src[i];
    }
    dst[n] = '\0';
    return n;
}
