/* Fuzz target: bounded gzip/deflate decompression of a received message.
 * The first byte picks the encoding; whatever inflates must stay within
 * the limit, and must compress and inflate back to itself. */
#include "rpc_internal.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int enc = data[0] & 1 ? RPC__ENC_GZIP : RPC__ENC_DEFLATE;
    uint8_t *out;
    size_t len;
    if (rpc__decompress(enc, data + 1, size - 1, 65536, &out, &len) != 0)
        return 0;
    if (len > 65536)
        abort();
    uint8_t *z, *back;
    size_t zl, bl;
    if (rpc__compress(enc, out, len, &z, &zl) != 0 ||
        rpc__decompress(enc, z, zl, 65536, &back, &bl) != 0 || bl != len ||
        memcmp(back, out, len) != 0)
        abort();
    free(z);
    free(back);
    free(out);
    return 0;
}
