/*
 * test_codegen_names.c -- codegen/src/names.c and strbuf.c: protoc-c's
 * naming rules as protoc-c 1.4.1 applies them (the expected strings were
 * read off its output), our own prefixes, the (pb-c file).c_package
 * option read from FileOptions' unknown fields (malformed bytes included),
 * and the template expander.
 */
#include "codegen.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define EXPECT(call, want)                                                    \
    do {                                                                      \
        char *got_ = (call);                                                  \
        assert_string_equal(got_, want);                                      \
        free(got_);                                                           \
    } while (0)

static void test_protoc_c_rules(void **state)
{
    EXPECT(name_to_camel("foo_bar"), "FooBar");
    EXPECT(name_to_camel("my_pkg"), "MyPkg");
    EXPECT(name_to_camel("V2x"), "V2x");
    EXPECT(name_to_camel("inner_msg"), "InnerMsg");
    EXPECT(name_to_camel("Some_Svc"), "SomeSvc");
    EXPECT(name_camel_to_lower("GetHTTPThing"), "get_httpthing");
    EXPECT(name_camel_to_lower("HTTPRequest"), "httprequest");
    EXPECT(name_camel_to_lower("ABc2Def"), "abc2_def");
    EXPECT(name_camel_to_lower("Some_Svc"), "some__svc");
    EXPECT(name_camel_to_lower("foo_bar"), "foo_bar");
}

static void test_our_names(void **state)
{
    EXPECT(name_ours("kv.v1", "Store"), "kv_v1_store");
    EXPECT(name_ours("my_pkg.V2x", "Some_Svc"), "my_pkg_v2x_some_svc");
    EXPECT(name_ours(NULL, "GetHTTPThing"), "get_httpthing");
    EXPECT(name_ours("", "Echo"), "echo");
    EXPECT(name_ours("grpc.testing", "TestService"), "grpc_testing_test_service");
    EXPECT(name_from_path("kv/v1/kv.proto"), "kv_v1_kv_proto");
    EXPECT(name_strip_proto("kv/v1/kv.proto"), "kv/v1/kv");
    EXPECT(name_strip_proto("odd"), "odd");
}

static void test_type_index(void **state)
{
    Google__Protobuf__DescriptorProto inner = GOOGLE__PROTOBUF__DESCRIPTOR_PROTO__INIT;
    Google__Protobuf__DescriptorProto outer = GOOGLE__PROTOBUF__DESCRIPTOR_PROTO__INIT;
    Google__Protobuf__DescriptorProto *inners[] = {&inner}, *outers[] = {&outer};
    inner.name = "inner_msg";
    outer.name = "HTTPRequest";
    outer.nested_type = inners, outer.n_nested_type = 1;
    file_proto_t f = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
    f.name = "t.proto", f.package = "my_pkg.V2x";
    f.message_type = outers, f.n_message_type = 1;
    type_index_t ix = {0};
    types_add_file(&ix, &f);
    const type_info_t *t = types_find(&ix, ".my_pkg.V2x.HTTPRequest.inner_msg");
    assert_non_null(t);
    assert_string_equal(t->c_type, "MyPkg__V2x__HTTPRequest__InnerMsg");
    assert_string_equal(t->c_lower, "my_pkg__v2x__httprequest__inner_msg");
    assert_null(types_find(&ix, ".my_pkg.V2x.inner_msg"));
    types_free(&ix);
}

/* FileOptions carrying (pb-c file) = {c_package: "c_side.v9"} as protoc
 * sends it: field 1019, length-delimited, holding field 6. */
static char *c_package_from(const uint8_t *opts, size_t len)
{
    file_proto_t f = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
    f.package = "real.pkg";
    f.options = google__protobuf__file_options__unpack(NULL, len, opts);
    assert_non_null(f.options);
    char *c = name_c_package(&f);
    google__protobuf__file_options__free_unpacked(f.options, NULL);
    return c;
}

static void test_c_package(void **state)
{
    static const uint8_t ok[] = {0xda, 0x3f, 0x0b, 0x32, 0x09, 'c', '_', 's',
                                 'i',  'd',  'e',  '.',  'v',  '9'};
    EXPECT(c_package_from(ok, sizeof ok), "c_side.v9");
    /* Other pb-c options only (const_strings = true): the package. */
    static const uint8_t other[] = {0xda, 0x3f, 0x02, 0x20, 0x01};
    EXPECT(c_package_from(other, sizeof other), "real.pkg");
    /* A c_package whose length runs past its field: ignored. */
    static const uint8_t bad[] = {0xda, 0x3f, 0x03, 0x32, 0x09, 'c'};
    EXPECT(c_package_from(bad, sizeof bad), "real.pkg");
    /* No options at all; no package either. */
    file_proto_t f = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
    EXPECT(name_c_package(&f), "");
}

static void test_template(void **state)
{
    sb_t b = {0};
    const char *vars[] = {"p", "kv_v1_store", "m", "get", NULL};
    sb_template(&b, "int ${p}_${m}(void); /* ${m} */ $x {", vars);
    EXPECT(sb_take(&b), "int kv_v1_store_get(void); /* get */ $x {");
    sb_printf(&b, "%d-%s", 42, "x");
    EXPECT(sb_take(&b), "42-x");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protoc_c_rules),
        cmocka_unit_test(test_our_names),
        cmocka_unit_test(test_type_index),
        cmocka_unit_test(test_c_package),
        cmocka_unit_test(test_template),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
