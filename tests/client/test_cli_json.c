/*
 * test_cli_json.c -- rpcurl's descriptor-driven JSON <-> protobuf
 * transcoder (client/cli/cli_json.c, cli_json_out.c) on
 * tests/fixtures/cli_json/types.proto: JSON in -> wire -> JSON out round
 * trips for the proto3 JSON rules, the errors bad input must give, and
 * the text format.  No network.
 */
#include "cli_desc.h"
#include "cli_json.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static cli_pool_t *pool;
static const cli_msg_t *all;

static int setup(void **state)
{
    (void)state;
    FILE *f = fopen(TYPES_PB, "rb");
    assert_non_null(f);
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    pool = cli_pool_new();
    assert_int_equal(cli_pool_add_set(pool, buf, n), 0);
    all = cli_pool_message(pool, ".jt.All");
    assert_non_null(all);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cli_pool_free(pool);
    return 0;
}

/* White space outside strings removed. */
static char *compact(const char *s)
{
    char *o = malloc(strlen(s) + 1), *p = o;
    bool in = false;
    for (; *s; s++) {
        if (in) {
            *p++ = *s;
            if (*s == '\\' && s[1])
                *p++ = *++s;
            else if (*s == '"')
                in = false;
        } else if (*s == '"') {
            in = true;
            *p++ = *s;
        } else if (*s != ' ' && *s != '\n') {
            *p++ = *s;
        }
    }
    *p = 0;
    return o;
}

/* JSON in -> wire -> output; returns the output (malloc'ed) or NULL with
 * err set. */
static char *transcode(const char *in, bool allow_unknown, bool emit_defaults,
                       cli_format_t fmt, char *err, size_t errlen)
{
    const char *p = in;
    cli_jv_t *v = cli_jv_parse(&p, err, errlen);
    if (v == NULL)
        return NULL;
    cli_buf_t b = {0};
    int rc = cli_json_encode(pool, all, v, allow_unknown, &b, err, errlen);
    cli_jv_free(v);
    if (rc != 0) {
        free(b.b);
        return NULL;
    }
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    rc = cli_json_print(f, pool, all, b.b, b.n, fmt, emit_defaults, err, errlen);
    fclose(f);
    free(b.b);
    if (rc != 0) {
        free(out);
        return NULL;
    }
    return out;
}

static void rt(const char *in, const char *want)
{
    char err[512] = "";
    char *out = transcode(in, false, false, CLI_FORMAT_JSON, err, sizeof err);
    if (out == NULL)
        fail_msg("%s: %s", in, err);
    char *c = compact(out);
    if (strcmp(c, want) != 0)
        fail_msg("%s:\n got  %s\n want %s", in, c, want);
    free(c);
    free(out);
}

static void bad(const char *in, const char *why)
{
    char err[512] = "";
    char *out = transcode(in, false, false, CLI_FORMAT_JSON, err, sizeof err);
    if (out != NULL)
        fail_msg("%s: accepted (%s)", in, out);
    if (strstr(err, why) == NULL)
        fail_msg("%s: error \"%s\" lacks \"%s\"", in, err, why);
}

static void test_integers(void **state)
{
    (void)state;
    rt("{\"i32\":-5,\"i64\":\"-9007199254740993\",\"u32\":4294967295,"
       "\"u64\":\"18446744073709551615\",\"s32\":-3,\"s64\":\"-4\",\"f32\":7,"
       "\"f64\":\"8\",\"sf32\":-9,\"sf64\":\"-10\"}",
       "{\"i32\":-5,\"i64\":\"-9007199254740993\",\"u32\":4294967295,"
       "\"u64\":\"18446744073709551615\",\"s32\":-3,\"s64\":\"-4\",\"f32\":7,"
       "\"f64\":\"8\",\"sf32\":-9,\"sf64\":\"-10\"}");
    /* numbers for 64-bit, strings for 32-bit, exponents, zero fractions */
    rt("{\"i64\":12,\"i32\":\"1e2\",\"u32\":3.0,\"sf64\":-2E1}",
       "{\"i32\":100,\"i64\":\"12\",\"u32\":3,\"sf64\":\"-20\"}");
    bad("{\"i32\":1.5}", "invalid integer");
    bad("{\"i32\":2147483648}", "out of range");
    bad("{\"u32\":-1}", "negative");
    bad("{\"i32\":\"\"}", "expected an integer");
    bad("{\"u64\":\"18446744073709551616\"}", "invalid integer");
    bad("{\"i32\":true}", "expected an integer");
}

static void test_floats_bools_strings(void **state)
{
    (void)state;
    rt("{\"fl\":1.5,\"db\":\"NaN\",\"b\":true,\"str\":\"h\\u00e9\\n\\\"\"}",
       "{\"fl\":1.5,\"db\":\"NaN\",\"b\":true,\"str\":\"h\xc3\xa9\\n\\\"\"}");
    rt("{\"db\":\"-Infinity\",\"fl\":\"Infinity\"}",
       "{\"fl\":\"Infinity\",\"db\":\"-Infinity\"}");
    rt("{\"db\":0.1,\"fl\":0.1}", "{\"fl\":0.1,\"db\":0.1}");
    rt("{\"db\":\"2.5e3\"}", "{\"db\":2500}");
    rt("{\"db\":-1e21,\"fl\":1.5e-7}", "{\"fl\":1.5e-07,\"db\":-1e+21}");
    rt("{\"db\":123456.789,\"fl\":0.000125}", "{\"fl\":0.000125,\"db\":123456.789}");
    rt("{\"db\":-0.5}", "{\"db\":-0.5}");
    bad("{\"fl\":1e39}", "out of float range");
    bad("{\"db\":1e999}", "invalid number");
    bad("{\"b\":\"true\"}", "expected true or false");
    bad("{\"str\":5}", "expected a string");
}

static void test_enums_bytes_names(void **state)
{
    (void)state;
    rt("{\"color\":\"RED\",\"rc\":[\"GREEN\",1,9]}",
       "{\"color\":\"RED\",\"rc\":[\"GREEN\",\"RED\",9]}");
    rt("{\"color\":2}", "{\"color\":\"GREEN\"}");
    bad("{\"color\":\"BLUE\"}", "unknown value \"BLUE\" for enum jt.Color");
    rt("{\"by\":\"AAE=\"}", "{\"by\":\"AAE=\"}");
    rt("{\"by\":\"-_8\"}", "{\"by\":\"+/8=\"}"); /* URL-safe, unpadded */
    rt("{\"by\":\"AAE\"}", "{\"by\":\"AAE=\"}");
    bad("{\"by\":\"!!\"}", "invalid base64");
    /* proto name and json_name both accepted; json_name printed */
    rt("{\"snake_case_name\":\"x\"}", "{\"snakeCaseName\":\"x\"}");
    rt("{\"snakeCaseName\":\"y\"}", "{\"snakeCaseName\":\"y\"}");
    /* duplicate keys: the last wins */
    rt("{\"i32\":1,\"i32\":2}", "{\"i32\":2}");
}

static void test_messages_maps_oneofs(void **state)
{
    (void)state;
    rt("{\"inner\":{\"a\":1},\"ri\":[1,2,3],\"rm\":[{\"a\":1},{\"s\":\"q\"}]}",
       "{\"inner\":{\"a\":1},\"ri\":[1,2,3],\"rm\":[{\"a\":1},{\"s\":\"q\"}]}");
    rt("{\"inner\":{}}", "{\"inner\":{}}");
    rt("{\"ms\":{\"k\":{\"a\":1},\"e\":{}},\"mi\":{\"-5\":\"x\"},\"mb\":{\"true\":\"RED\"}}",
       "{\"ms\":{\"k\":{\"a\":1},\"e\":{}},\"mi\":{\"-5\":\"x\"},\"mb\":{\"true\":\"RED\"}}");
    bad("{\"mi\":{\"x\":\"y\"}}", "invalid integer");
    bad("{\"ms\":[1]}", "expected a JSON object (map)");
    bad("{\"ri\":{}}", "expected a JSON array");
    bad("{\"ri\":[null]}", "null in a repeated field");
    /* oneof members have presence: an empty string is printed */
    rt("{\"ps\":\"\"}", "{\"ps\":\"\"}");
    rt("{\"pm\":{}}", "{\"pm\":{}}");
    bad("{\"ps\":\"a\",\"pm\":{}}", "oneof pick has more than one field set");
    /* proto3 optional keeps presence; implicit-presence defaults vanish */
    rt("{\"opt\":0,\"i32\":0,\"str\":\"\",\"b\":false}", "{\"opt\":0}");
    rt("{\"i32\":null,\"inner\":null}", "{}");
    bad("{\"nope\":1}", "message type jt.All has no known field named nope");
    bad("{\"inner\":5}", "expected a JSON object for message jt.Inner");
}

static void test_well_known_types(void **state)
{
    (void)state;
    rt("{\"ts\":\"2023-11-14T22:13:20.5Z\"}", "{\"ts\":\"2023-11-14T22:13:20.500Z\"}");
    rt("{\"ts\":\"2023-11-14T23:13:20+01:00\"}", "{\"ts\":\"2023-11-14T22:13:20Z\"}");
    rt("{\"ts\":\"1969-12-31T23:59:59.000000001Z\"}",
       "{\"ts\":\"1969-12-31T23:59:59.000000001Z\"}");
    rt("{\"ts\":\"0001-01-01T00:00:00Z\"}", "{\"ts\":\"0001-01-01T00:00:00Z\"}");
    bad("{\"ts\":\"2023-11-14 22:13:20Z\"}", "google.protobuf.Timestamp: invalid");
    bad("{\"ts\":\"10000-01-01T00:00:00Z\"}", "google.protobuf.Timestamp: invalid");
    rt("{\"dur\":\"1.5s\"}", "{\"dur\":\"1.500s\"}");
    rt("{\"dur\":\"-0.000001s\"}", "{\"dur\":\"-0.000001s\"}");
    rt("{\"dur\":\"3s\"}", "{\"dur\":\"3s\"}");
    bad("{\"dur\":\"3\"}", "google.protobuf.Duration: invalid");
    rt("{\"w64\":5,\"wstr\":\"\",\"wb\":false,\"wd\":\"NaN\",\"wby\":\"AQ==\"}",
       "{\"w64\":\"5\",\"wstr\":\"\",\"wb\":false,\"wd\":\"NaN\",\"wby\":\"AQ==\"}");
    rt("{\"st\":{\"a\":[1,\"x\",null,true,{\"b\":{}}]}}",
       "{\"st\":{\"a\":[1,\"x\",null,true,{\"b\":{}}]}}");
    rt("{\"val\":3.25}", "{\"val\":3.25}");
    rt("{\"val\":null}", "{\"val\":null}");
    rt("{\"val\":{\"k\":\"v\"}}", "{\"val\":{\"k\":\"v\"}}");
    rt("{\"lv\":[1,[2]]}", "{\"lv\":[1,[2]]}");
    rt("{\"any\":{\"a\":3,\"@type\":\"type.googleapis.com/jt.Inner\"}}",
       "{\"any\":{\"@type\":\"type.googleapis.com/jt.Inner\",\"a\":3}}");
    rt("{\"any\":{\"@type\":\"type.googleapis.com/google.protobuf.Duration\",\"value\":\"2s\"}}",
       "{\"any\":{\"@type\":\"type.googleapis.com/google.protobuf.Duration\",\"value\":\"2s\"}}");
    bad("{\"any\":{\"@type\":\"type.googleapis.com/no.Such\"}}", "unknown type");
    rt("{\"fm\":\"fooBar,x.yZ\"}", "{\"fm\":\"fooBar,x.yZ\"}");
    rt("{\"em\":{}}", "{\"em\":{}}");
}

static void test_unknown_and_defaults(void **state)
{
    (void)state;
    char err[256];
    char *out = transcode("{\"nope\":{\"deep\":[1]},\"i32\":4}", true, false,
                          CLI_FORMAT_JSON, err, sizeof err);
    assert_non_null(out);
    char *c = compact(out);
    assert_string_equal(c, "{\"i32\":4}");
    free(c);
    free(out);
    out = transcode("{}", false, true, CLI_FORMAT_JSON, err, sizeof err);
    assert_non_null(out);
    c = compact(out);
    assert_non_null(strstr(c, "\"i32\":0,\"i64\":\"0\""));
    assert_non_null(strstr(c, "\"color\":\"COLOR_UNSPECIFIED\""));
    assert_non_null(strstr(c, "\"ri\":[]"));
    assert_non_null(strstr(c, "\"ms\":{}"));
    assert_non_null(strstr(c, "\"by\":\"\""));
    assert_null(strstr(c, "\"ps\"")); /* oneof members never filled */
    assert_null(strstr(c, "\"opt\""));
    free(c);
    free(out);
    /* pretty printing, 2 spaces */
    out = transcode("{\"inner\":{\"a\":1},\"ri\":[1]}", false, false,
                    CLI_FORMAT_JSON, err, sizeof err);
    assert_string_equal(out, "{\n  \"inner\": {\n    \"a\": 1\n  },\n"
                             "  \"ri\": [\n    1\n  ]\n}\n");
    free(out);
}

static void test_text_format(void **state)
{
    (void)state;
    char err[256];
    char *out = transcode("{\"str\":\"x\\n\",\"color\":\"RED\",\"inner\":{\"a\":1},"
                          "\"ri\":[1,2],\"i64\":\"7\",\"by\":\"AAE=\"}",
                          false, false, CLI_FORMAT_TEXT, err, sizeof err);
    assert_non_null(out);
    assert_string_equal(out, "i64: 7\nstr: \"x\\n\"\nby: \"\\000\\001\"\n"
                             "color: RED\ninner {\n  a: 1\n}\nri: 1\nri: 2\n");
    free(out);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    bad("{", "unexpected end of input");
    bad("{\"a\" 1}", "expected ':'");
    bad("{\"i32\":1,}", "expected a field name");
    bad("{\"ri\":[1,]}", "invalid character");
    bad("{\"str\":\"\\q\"}", "bad escape");
    bad("{\"str\":\"abc}", "unterminated string");
    bad("nul", "invalid character");
    char deep[512];
    size_t n = 0;
    for (int i = 0; i < 150; i++)
        deep[n++] = '[';
    deep[n] = 0;
    const char *p = deep;
    char err[128];
    assert_null(cli_jv_parse(&p, err, sizeof err));
    assert_non_null(strstr(err, "nesting deeper"));
    /* several concatenated messages (client streams) */
    p = " {\"i32\":1} {\"i32\":2}\n";
    cli_jv_t *a = cli_jv_parse(&p, err, sizeof err);
    cli_jv_t *b = cli_jv_parse(&p, err, sizeof err);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(cli_json_at_end(p));
    cli_jv_free(a);
    cli_jv_free(b);
}

static void test_malformed_wire(void **state)
{
    (void)state;
    char err[256];
    static const uint8_t trunc[] = {0x0a, 0x05, 'a'}; /* LEN past the end */
    FILE *f = fopen("/dev/null", "w");
    const cli_msg_t *inner = cli_pool_message(pool, "jt.Inner");
    assert_int_equal(cli_json_print(f, pool, inner, trunc, sizeof trunc,
                                    CLI_FORMAT_JSON, false, err, sizeof err), -1);
    assert_non_null(strstr(err, "malformed jt.Inner"));
    static const uint8_t wrongwt[] = {0x08 | 2, 0x00}; /* a=1 as LEN */
    assert_int_equal(cli_json_print(f, pool, inner, wrongwt, sizeof wrongwt,
                                    CLI_FORMAT_JSON, false, err, sizeof err), -1);
    /* unknown fields are skipped */
    static const uint8_t unk[] = {0x78, 0x01, 0x08, 0x02}; /* 15:1, a:2 */
    assert_int_equal(cli_json_print(f, pool, inner, unk, sizeof unk,
                                    CLI_FORMAT_JSON, false, err, sizeof err), 0);
    fclose(f);
}

/* Descriptors from a server are checked: a nameless field is refused, a
 * oneof index past the oneofs is harmless. */
static void test_hostile_descriptor(void **state)
{
    (void)state;
    Google__Protobuf__FieldDescriptorProto fd = GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__INIT;
    fd.has_number = 1;
    fd.number = 1;
    fd.has_type = 1;
    fd.type = GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_INT32;
    fd.has_oneof_index = 1;
    fd.oneof_index = 7; /* no such oneof */
    Google__Protobuf__FieldDescriptorProto *fields[] = {&fd};
    Google__Protobuf__DescriptorProto m = GOOGLE__PROTOBUF__DESCRIPTOR_PROTO__INIT;
    m.name = "M";
    m.n_field = 1;
    m.field = fields;
    Google__Protobuf__DescriptorProto *msgs[] = {&m};
    Google__Protobuf__FileDescriptorProto f = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
    f.name = "hostile.proto";
    f.package = "h";
    f.syntax = "proto3";
    f.n_message_type = 1;
    f.message_type = msgs;
    uint8_t buf[256];
    size_t n = google__protobuf__file_descriptor_proto__pack(&f, buf);
    cli_pool_t *p = cli_pool_new();
    assert_int_equal(cli_pool_add_file(p, buf, n), -1); /* field without a name */
    fd.name = "x";
    n = google__protobuf__file_descriptor_proto__pack(&f, buf);
    assert_int_equal(cli_pool_add_file(p, buf, n), 0);
    const cli_msg_t *hm = cli_pool_message(p, "h.M");
    assert_non_null(hm);
    const char *in = "{\"x\": 5}";
    char err[256];
    cli_jv_t *v = cli_jv_parse(&in, err, sizeof err);
    cli_buf_t b = {0};
    assert_int_equal(cli_json_encode(p, hm, v, false, &b, err, sizeof err), 0);
    FILE *o = fopen("/dev/null", "w");
    assert_int_equal(cli_json_print(o, p, hm, b.b, b.n, CLI_FORMAT_JSON, true, err,
                                    sizeof err), 0);
    cli_describe(p, cli_pool_find(p, "h.M")); /* prints; must not crash */
    fclose(o);
    free(b.b);
    cli_jv_free(v);
    cli_pool_free(p);
}

/* Deterministic mutation fuzzing (xorshift PRNG): mutated JSON through
 * parse -> encode -> print, and mutated wire bytes through print (JSON and
 * text); nothing may crash, leak or read out of bounds (run under ASan). */
static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static void mutate(char *b, size_t *n, size_t cap)
{
    static const char alphabet[] = "{}[]\",:0123456789.eE-+ntrufals\\@AZaz ";
    int k = 1 + (int)(rnd() % 4);
    while (k--) {
        size_t at = *n ? rnd() % *n : 0;
        switch (rnd() % 4) {
        case 0: if (*n) b[at] = alphabet[rnd() % (sizeof alphabet - 1)]; break;
        case 1: if (*n + 1 < cap) { memmove(b + at + 1, b + at, *n - at); b[at] = alphabet[rnd() % (sizeof alphabet - 1)]; (*n)++; } break;
        case 2: if (*n) { memmove(b + at, b + at + 1, *n - at - 1); (*n)--; } break;
        default: *n = at; break;
        }
    }
    b[*n] = 0;
}

static void test_mutations(void **state)
{
    (void)state;
    static const char *const seeds[] = {
        "{\"i32\":-5,\"i64\":\"7\",\"fl\":1.5,\"db\":\"NaN\",\"by\":\"AAE=\"}",
        "{\"inner\":{\"a\":1},\"ri\":[1,2],\"rm\":[{\"s\":\"q\"}],\"color\":\"RED\"}",
        "{\"ms\":{\"k\":{\"a\":1}},\"mi\":{\"-5\":\"x\"},\"mb\":{\"true\":\"RED\"}}",
        "{\"ts\":\"2023-11-14T22:13:20.5Z\",\"dur\":\"1.5s\",\"w64\":5,\"wb\":false}",
        "{\"st\":{\"a\":[1,\"x\",null,true,{\"b\":{}}]},\"val\":3,\"lv\":[1]}",
        "{\"any\":{\"@type\":\"type.googleapis.com/jt.Inner\",\"a\":3},\"fm\":\"a.bC\"}",
    };
    char buf[512], err[256];
    size_t ok = 0;
    for (int round = 0; round < 20000; round++) {
        const char *seed = seeds[round % (sizeof seeds / sizeof *seeds)];
        size_t n = strlen(seed);
        memcpy(buf, seed, n + 1);
        mutate(buf, &n, sizeof buf);
        char *out = transcode(buf, round % 2, round % 3 == 0,
                              round % 5 ? CLI_FORMAT_JSON : CLI_FORMAT_TEXT,
                              err, sizeof err);
        ok += out != NULL;
        free(out);
    }
    assert_true(ok > 0); /* some mutations stay valid */
    /* wire: valid encodings, mutated */
    for (int round = 0; round < 20000; round++) {
        const char *seed = seeds[round % (sizeof seeds / sizeof *seeds)];
        const char *p = seed;
        cli_jv_t *v = cli_jv_parse(&p, err, sizeof err);
        assert_non_null(v);
        cli_buf_t b = {0};
        assert_int_equal(cli_json_encode(pool, all, v, false, &b, err, sizeof err), 0);
        cli_jv_free(v);
        int k = 1 + (int)(rnd() % 3);
        while (k-- && b.n) {
            size_t at = rnd() % b.n;
            if (rnd() % 2)
                b.b[at] = (uint8_t)rnd();
            else
                b.n = at;
        }
        FILE *f = fopen("/dev/null", "w");
        cli_json_print(f, pool, all, b.b, b.n, round % 2 ? CLI_FORMAT_TEXT : CLI_FORMAT_JSON,
                       round % 3 == 0, err, sizeof err);
        fclose(f);
        free(b.b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_floats_bools_strings),
        cmocka_unit_test(test_enums_bytes_names),
        cmocka_unit_test(test_messages_maps_oneofs),
        cmocka_unit_test(test_well_known_types),
        cmocka_unit_test(test_unknown_and_defaults),
        cmocka_unit_test(test_text_format),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_malformed_wire),
        cmocka_unit_test(test_hostile_descriptor),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
