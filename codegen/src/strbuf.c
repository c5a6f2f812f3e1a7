/*
 * strbuf.c -- the plugin's string builder and its `${name}` template
 * expander.  Out of memory ends the process: protoc then reports the
 * plugin's failure, which is all a build tool can do.
 */
#include "codegen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(void)
{
    fputs("protoc-gen-rpc-c: out of memory\n", stderr);
    exit(1);
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom();
    return p;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

static void grow(sb_t *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (s == NULL)
        oom();
    b->s = s;
    b->cap = cap;
}

void sb_putn(sb_t *b, const char *s, size_t n)
{
    grow(b, n);
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void sb_puts(sb_t *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

static void sb_vprintf(sb_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        oom();
    grow(b, (size_t)n);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void sb_printf(sb_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(b, fmt, ap);
    va_end(ap);
}

char *xasprintf(const char *fmt, ...)
{
    sb_t b = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&b, fmt, ap);
    va_end(ap);
    return sb_take(&b);
}

char *sb_take(sb_t *b)
{
    char *s = b->s ? b->s : xstrdup("");
    *b = (sb_t){0};
    return s;
}

void sb_free(sb_t *b)
{
    free(b->s);
    *b = (sb_t){0};
}

void sb_template(sb_t *b, const char *t, const char *const *vars)
{
    for (;;) {
        const char *open = strstr(t, "${");
        if (open == NULL) {
            sb_puts(b, t);
            return;
        }
        sb_putn(b, t, (size_t)(open - t));
        const char *name = open + 2, *close = strchr(name, '}');
        size_t n = close ? (size_t)(close - name) : 0;
        const char *val = NULL;
        for (size_t i = 0; close && vars[i]; i += 2)
            if (strlen(vars[i]) == n && memcmp(vars[i], name, n) == 0)
                val = vars[i + 1];
        if (val == NULL) {
            fprintf(stderr, "protoc-gen-rpc-c: bug: template variable %.*s\n",
                    (int)n, name);
            abort();
        }
        sb_puts(b, val);
        t = close + 1;
    }
}
