/*
 * rpc_timeout.c -- the grpc-timeout header: `TimeoutValue TimeoutUnit`,
 * 1 to 8 ASCII digits followed by one unit letter (H hours, M minutes,
 * S seconds, m milliseconds, u microseconds, n nanoseconds).
 *
 * Parsing is strict (as grpc-go and grpc-js are): anything else -- empty,
 * 9 digits, a sign, spaces, an unknown unit -- is malformed and the server
 * answers INTERNAL.  Formatting follows grpc-go: the finest unit whose
 * value, rounded up so the callee never sees less time than remains, fits
 * 8 digits; non-positive durations become "0n".
 */
#include "rpc_internal.h"

#include <stdio.h>

static int64_t unit_ns(char u)
{
    switch (u) {
    case 'H': return INT64_C(3600000000000);
    case 'M': return INT64_C(60000000000);
    case 'S': return INT64_C(1000000000);
    case 'm': return INT64_C(1000000);
    case 'u': return INT64_C(1000);
    case 'n': return 1;
    default: return 0;
    }
}

int rpc__timeout_parse(const char *s, size_t len, int64_t *ns)
{
    if (s == NULL || len < 2 || len > 9)
        return RPC_ERR_MALFORMED;
    int64_t mult = unit_ns(s[len - 1]);
    if (mult == 0)
        return RPC_ERR_MALFORMED;
    int64_t v = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return RPC_ERR_MALFORMED;
        v = v * 10 + (s[i] - '0');
    }
    /* v < 10^8, so overflow is possible only for H and M. */
    if (v > INT64_MAX / mult)
        *ns = INT64_MAX;
    else
        *ns = v * mult;
    return 0;
}

size_t rpc__timeout_format(int64_t ns, char out[RPC__TIMEOUT_MAX])
{
    static const char units[] = {'n', 'u', 'm', 'S', 'M', 'H'};
    const int64_t max = 99999999;
    if (ns <= 0)
        return (size_t)snprintf(out, RPC__TIMEOUT_MAX, "0n");
    for (size_t i = 0; i < sizeof units; i++) {
        int64_t m = unit_ns(units[i]);
        int64_t v = ns / m + (ns % m != 0);
        if (v <= max)
            return (size_t)snprintf(out, RPC__TIMEOUT_MAX, "%lld%c",
                                    (long long)v, units[i]);
    }
    /* More than 99999999 hours: cap, as C-core does. */
    return (size_t)snprintf(out, RPC__TIMEOUT_MAX, "99999999H");
}
