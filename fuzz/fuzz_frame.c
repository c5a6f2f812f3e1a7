/* Fuzz target: the gRPC message-framing decoder.  The first input byte
 * picks a chunk size, the rest is fed in chunks of that size, and every
 * delivered message is checked against the limit. */
#include "rpc_internal.h"

#include <stdlib.h>

static int on_msg(int flag, const uint8_t *data, size_t len, void *ud)
{
    if (flag > 1 || len > 4096)
        abort();
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < len; i++)
        sink ^= data[i];
    (void)sink;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t chunk = (size_t)data[0] % 17 + 1;
    data++;
    size--;
    rpc__frame_decoder_t d;
    rpc__frame_decoder_init(&d, 4096);
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (rpc__frame_feed(&d, data + off, n, on_msg, NULL) != 0)
            break;
    }
    rpc__frame_decoder_reset(&d);
    return 0;
}
