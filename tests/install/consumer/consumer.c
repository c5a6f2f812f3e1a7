/* Uses the installed library: a timeout fires and cancels a child. */
#include <ctx/ctx.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    ctx_t *c = ctx_with_timeout(ctx_background(), 5 * CTX_MS);
    ctx_t *k = ctx_with_cancel(c);
    if (!c || !k)
        return 1;
    int err = ctx_wait(k, 10 * CTX_SECOND);
    printf("%s\n", ctx_strerror(err));
    ctx_release(k);
    ctx_release(c);
    return strcmp(ctx_strerror(err), "context deadline exceeded") != 0 ||
           ctx_shutdown() != 0;
}
