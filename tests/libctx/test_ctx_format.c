/*
 * test_ctx_format.c -- ctx_format(): Go-like rendering of a context.
 *
 * Spec items covered: 3, 7, 25, 40, 62/63 (the ".WithValue(key, value)"
 * segment with the key's address; Go's type-name rendering has no C
 * counterpart), 97, C23 (truncation, snprintf-like return, iterative for
 * a 1e6-deep chain on a small stack).
 */
#include "ctx_test_util.h"

#include <inttypes.h>

static int key_a;

/* Renders into a fresh buffer, checking the snprintf contract. */
static char *render(ctx_t *c)
{
    size_t n = ctx_format(c, NULL, 0);
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    memset(buf, 'X', n + 1);
    assert_int_equal(ctx_format(c, buf, n + 1), n);
    assert_int_equal(strlen(buf), n);
    return buf;
}

static bool starts(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

static bool ends(const char *s, const char *p)
{
    size_t a = strlen(s), b = strlen(p);
    return a >= b && strcmp(s + a - b, p) == 0;
}

static void test_format_roots(void **state)
{
    char buf[64];
    assert_int_equal(ctx_format(ctx_background(), buf, sizeof buf),
                     strlen("context.Background"));
    assert_string_equal(buf, "context.Background");
    assert_int_equal(ctx_format(ctx_todo(), buf, sizeof buf),
                     strlen("context.TODO"));
    assert_string_equal(buf, "context.TODO");
}

static void test_format_with_cancel(void **state)
{
    ctx_t *c = ctx_with_cancel(ctx_background());
    ctx_t *cc = ctx_with_cancel(c);
    ctx_t *t = ctx_with_cancel(ctx_todo());
    char *s = render(c);
    assert_string_equal(s, "context.Background.WithCancel");
    free(s);
    s = render(cc);
    assert_string_equal(s, "context.Background.WithCancel.WithCancel");
    free(s);
    s = render(t);
    assert_string_equal(s, "context.TODO.WithCancel");
    free(s);
    ctx_cancel(c); /* rendering does not depend on the state */
    s = render(cc);
    assert_string_equal(s, "context.Background.WithCancel.WithCancel");
    free(s);
    ctx_release(t);
    ctx_release(cc);
    ctx_release(c);
}

static void test_format_deadline(void **state)
{
    ctx_t *d = ctx_with_deadline(ctx_background(), ctx_now() + CTX_SECOND);
    ctx_t *t = ctx_with_timeout(ctx_background(), 3600 * CTX_SECOND);
    ctx_t *tc = ctx_with_timeout_cause(ctx_background(), CTX_SECOND, 4);
    ctx_t *k = ctx_with_cancel(t);
    ctx_t *all[] = {d, t, tc};
    for (int i = 0; i < 3; i++) { /* 40: WithTimeout renders as Go's */
        char *s = render(all[i]);
        assert_true(starts(s, "context.Background.WithDeadline("));
        assert_true(ends(s, ")"));
        free(s);
    }
    char *s = render(k);
    assert_true(starts(s, "context.Background.WithDeadline("));
    assert_true(ends(s, ").WithCancel"));
    free(s);
    ctx_release(k);
    ctx_release(tc);
    ctx_release(t);
    ctx_release(d);
}

static void test_format_value(void **state)
{
    int v = 1;
    char hex[32];
    snprintf(hex, sizeof hex, "%" PRIxPTR, (uintptr_t)&key_a);
    ctx_t *a = ctx_with_value(ctx_background(), &key_a, &v, NULL);
    ctx_t *b = ctx_with_value(a, &key_a, NULL, NULL);
    char *s = render(a);
    assert_true(starts(s, "context.Background.WithValue("));
    assert_true(ends(s, ")"));
    assert_non_null(strstr(s, hex)); /* the key, by address */
    assert_non_null(strstr(s, "0x"));
    free(s);
    s = render(b); /* chained nodes append further segments (63) */
    assert_true(starts(s, "context.Background.WithValue("));
    char *second = strstr(s + 1, ".WithValue(");
    assert_non_null(second);
    assert_non_null(strstr(second, hex));
    assert_true(ends(s, ")"));
    free(s);
    ctx_release(b);
    ctx_release(a);
}

static void test_format_without_cancel(void **state)
{
    ctx_t *c = ctx_with_cancel(ctx_background());
    ctx_t *w = ctx_without_cancel(c);
    ctx_t *k = ctx_with_cancel(w);
    char *s = render(w);
    assert_string_equal(s, "context.Background.WithCancel.WithoutCancel");
    free(s);
    s = render(k);
    assert_string_equal(s,
        "context.Background.WithCancel.WithoutCancel.WithCancel");
    free(s);
    ctx_release(k);
    ctx_release(w);
    ctx_release(c);
}

static void test_format_layers_prefix(void **state)
{
    /* 25 */
    uint64_t seed = 3;
    ctx_t *c = ctx_background();
    ctx_t *layer[30];
    for (int i = 0; i < 30; i++) {
        switch (t_rand(&seed) % 3) {
        case 0: layer[i] = ctx_with_value(c, &key_a, NULL, NULL); break;
        case 1: layer[i] = ctx_with_cancel(c); break;
        default: layer[i] = ctx_with_timeout(c, 3600 * CTX_SECOND); break;
        }
        c = layer[i];
    }
    char *s = render(c);
    assert_true(starts(s, "context.Background."));
    free(s);
    for (int i = 29; i >= 0; i--)
        ctx_release(layer[i]);
}

static void test_format_truncation(void **state)
{
    ctx_t *c = ctx_with_cancel(ctx_background());
    ctx_t *w = ctx_without_cancel(c);
    const char *full = "context.Background.WithCancel.WithoutCancel";
    size_t n = strlen(full);
    char buf[128];
    for (size_t len = 1; len <= n + 2; len++) {
        memset(buf, 'X', sizeof buf);
        assert_int_equal(ctx_format(w, buf, len), n);
        size_t got = len - 1 < n ? len - 1 : n;
        assert_int_equal(strlen(buf), got); /* NUL-terminated */
        assert_memory_equal(buf, full, got);
        assert_int_equal(buf[len], 'X'); /* never writes past len */
    }
    memset(buf, 'X', sizeof buf);
    assert_int_equal(ctx_format(w, buf, 0), n); /* len 0: writes nothing */
    assert_int_equal(buf[0], 'X');
    assert_int_equal(ctx_format(w, NULL, 0), n);
    ctx_release(w);
    ctx_release(c);
}

struct deep_fmt {
    long depth;
    int fail;
};

static void *deep_format_thread(void *arg)
{
    struct deep_fmt *d = arg;
    ctx_t *c = ctx_background();
    for (long i = 0; i < d->depth; i++) {
        ctx_t *n = (i % 2) ? ctx_with_cancel(c) : ctx_without_cancel(c);
        if (!n) {
            d->fail = __LINE__;
            break;
        }
        ctx_release(c);
        c = n;
    }
    size_t want = strlen("context.Background") +
                  (size_t)(d->depth / 2) * strlen(".WithoutCancel") +
                  (size_t)(d->depth / 2) * strlen(".WithCancel");
    size_t n = ctx_format(c, NULL, 0);
    if (n != want)
        d->fail = __LINE__;
    char *buf = malloc(n + 1);
    if (buf && ctx_format(c, buf, n + 1) == n) {
        if (strncmp(buf, "context.Background.WithoutCancel.WithCancel.", 44) ||
            strlen(buf) != n ||
            strcmp(buf + n - 25, ".WithoutCancel.WithCancel") != 0)
            d->fail = __LINE__;
    } else {
        d->fail = __LINE__;
    }
    char small[16];
    if (ctx_format(c, small, sizeof small) != n ||
        strcmp(small, "context.Backgro") != 0)
        d->fail = __LINE__;
    free(buf);
    ctx_release(c);
    return NULL;
}

static void test_format_deep_chain(void **state)
{
    struct deep_fmt d = {.depth = T_SCALE(1000000, 100000)};
    t_run_small_stack(deep_format_thread, &d);
    assert_int_equal(d.fail, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_roots),
        cmocka_unit_test(test_format_with_cancel),
        cmocka_unit_test(test_format_deadline),
        cmocka_unit_test(test_format_value),
        cmocka_unit_test(test_format_without_cancel),
        cmocka_unit_test(test_format_layers_prefix),
        cmocka_unit_test(test_format_truncation),
        cmocka_unit_test(test_format_deep_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
