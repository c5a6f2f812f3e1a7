/*
 * rpc_alloc.c -- allocation with fault injection for rpc/, server/ and
 * client/ (see rpc_internal.h).  The countdown is one atomic: the fast path
 * is a relaxed load that reads 0.
 */
#include "rpc_internal.h"

#include <string.h>

_Atomic long rpc__alloc_fail_countdown;

int rpc__alloc_should_fail(void)
{
    long v = atomic_load(&rpc__alloc_fail_countdown);
    while (v > 0) {
        if (atomic_compare_exchange_weak(&rpc__alloc_fail_countdown, &v, v - 1))
            return v == 1;
    }
    return 0;
}

long rpc__test_fail_alloc(long n)
{
    return atomic_exchange(&rpc__alloc_fail_countdown, n < 0 ? 0 : n);
}

char *rpc__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = rpc__malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

char *rpc__strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = rpc__malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}


char *rpc__dotted_name(const char *scope, const char *name)
{
    size_t a = strlen(scope), b = strlen(name ? name : "");
    char *s = rpc__malloc(a + b + 2);
    if (s == NULL)
        return NULL;
    if (a) {
        memcpy(s, scope, a);
        s[a++] = '.';
    }
    memcpy(s + a, name ? name : "", b + 1);
    return s;
}
