/* Fuzz target: base64 decoding of -bin metadata; whatever decodes must
 * re-encode (unpadded) to the input minus its padding. */
#include "rpc_internal.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *out = malloc(rpc__base64_decoded_max(size));
    long n = rpc__base64_decode((const char *)data, size, out);
    if (n >= 0) {
        if ((size_t)n > rpc__base64_decoded_max(size))
            abort();
        char *enc = malloc(rpc__base64_encoded_len((size_t)n) + 1);
        size_t e = rpc__base64_encode(out, (size_t)n, enc);
        size_t unpadded = size;
        while (unpadded > 0 && data[unpadded - 1] == '=')
            unpadded--;
        if (e != unpadded || memcmp(enc, data, e) != 0)
            abort();
        free(enc);
    }
    free(out);
    return 0;
}
