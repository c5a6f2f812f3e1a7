/* Fuzz target: grpc-message percent-decoding (never fails, never grows)
 * and encode/decode round trip. */
#include "rpc_internal.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *dec = malloc(size + 1);
    size_t n = rpc__percent_decode((const char *)data, size, dec);
    if (n > size)
        abort();
    size_t elen = rpc__percent_encoded_len(data, size);
    char *enc = malloc(elen + 1);
    if (rpc__percent_encode(data, size, enc) != elen)
        abort();
    char *back = malloc(elen + 1);
    if (rpc__percent_decode(enc, elen, back) != size ||
        memcmp(back, data, size) != 0)
        abort();
    free(dec);
    free(enc);
    free(back);
    return 0;
}
