/* Fuzz target: one header field as it arrives from the wire (key, a NUL,
 * value) into a metadata set: bad keys and bad base64 must be refused
 * cleanly, and what is stored must be findable. */
#include "rpc_internal.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    if (nul == NULL)
        return 0;
    size_t klen = (size_t)(nul - data);
    rpc_metadata_t *md = rpc_metadata_new();
    int rc = rpc__metadata_add_wire(md, (const char *)data, klen,
                                    (const char *)nul + 1, size - klen - 1);
    if (rc == 0 && klen > 0 && rpc_metadata_count(md) > 0) {
        char key[256];
        if (klen < sizeof key) {
            memcpy(key, data, klen);
            key[klen] = 0;
            if (rpc_metadata_find(md, key, NULL) == NULL)
                abort();
        }
    }
    rpc_metadata_free(md);
    return 0;
}
