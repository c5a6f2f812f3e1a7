/* Fuzz target: grpc-timeout parsing; whatever parses must format back to
 * a value that parses to at least as much time. */
#include "rpc_internal.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t ns;
    if (rpc__timeout_parse((const char *)data, size, &ns) != 0)
        return 0;
    if (ns < 0)
        abort();
    char buf[RPC__TIMEOUT_MAX];
    size_t n = rpc__timeout_format(ns, buf);
    int64_t back;
    if (rpc__timeout_parse(buf, n, &back) != 0 || back < ns)
        abort();
    return 0;
}
