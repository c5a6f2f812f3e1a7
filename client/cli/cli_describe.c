/*
 * cli_describe.c -- rpcurl's `describe` output: a symbol from the pool
 * printed as .proto source, in the form grpcurl prints it ("<name> is a
 * message:" then the element; type references fully qualified with a
 * leading dot; methods sorted by name, fields by number).
 */
#include "cli_desc.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *scalar_name(int type)
{
    static const char *const n[] = {"", "double", "float", "int64", "uint64",
        "int32", "fixed64", "fixed32", "bool", "string", "group", "message",
        "bytes", "uint32", "enum", "sfixed32", "sfixed64", "sint32", "sint64"};
    return type > 0 && type <= 18 ? n[type] : "?";
}

static void print_field(cli_pool_t *pool, const cli_field_t *f, int ind)
{
    const cli_msg_t *entry = f->type == 11 ? cli_pool_message(pool, f->type_name) : NULL;
    printf("%*s", ind, "");
    if (cli_is_map_entry(entry)) {
        const cli_field_t *k = cli_field_by_number(entry, 1), *v = cli_field_by_number(entry, 2);
        printf("map<%s, %s> %s = %d;\n", k ? scalar_name(k->type) : "?",
               v ? (v->type_name ? v->type_name : scalar_name(v->type)) : "?",
               f->name, f->number);
        return;
    }
    bool p3opt = f->has_proto3_optional && f->proto3_optional;
    const char *label = f->label == 3 ? "repeated " : p3opt ? "optional " : "";
    if (f->label == 2)
        label = "required ";
    printf("%s%s %s = %d;\n", label,
           f->type_name ? f->type_name : scalar_name(f->type), f->name, f->number);
}

static void print_enum(const cli_enum_t *e, int ind)
{
    printf("%*senum %s {\n", ind, "", e->name);
    for (size_t i = 0; i < e->n_value; i++)
        printf("%*s%s = %d;\n", ind + 2, "", e->value[i]->name, e->value[i]->number);
    printf("%*s}\n", ind, "");
}

static void print_message(cli_pool_t *pool, const cli_msg_t *m, int ind)
{
    printf("%*smessage %s {\n", ind, "", m->name);
    const cli_field_t **fs = calloc(m->n_field + 1, sizeof *fs);
    size_t nf = 0;
    for (size_t i = 0; fs && i < m->n_field; i++)
        fs[nf++] = m->field[i];
    for (size_t i = 1; i < nf; i++) /* by number (insertion sort) */
        for (size_t j = i; j > 0 && fs[j]->number < fs[j - 1]->number; j--) {
            const cli_field_t *t = fs[j];
            fs[j] = fs[j - 1];
            fs[j - 1] = t;
        }
    for (size_t i = 0; i < nf; i++) {
        const cli_field_t *f = fs[i];
        /* (an index past the oneofs -- a broken descriptor -- prints plainly) */
        bool real_oneof = f->has_oneof_index && f->oneof_index >= 0 &&
                          (size_t)f->oneof_index < m->n_oneof_decl &&
                          !(f->has_proto3_optional && f->proto3_optional);
        if (!real_oneof) {
            print_field(pool, f, ind + 2);
            continue;
        }
        /* a oneof block, printed at its first member */
        bool first = true;
        for (size_t j = 0; j < i; j++)
            if (fs[j]->has_oneof_index && fs[j]->oneof_index == f->oneof_index)
                first = false;
        if (!first)
            continue;
        printf("%*soneof %s {\n", ind + 2, "", m->oneof_decl[f->oneof_index]->name);
        for (size_t j = i; j < nf; j++)
            if (fs[j]->has_oneof_index && fs[j]->oneof_index == f->oneof_index)
                print_field(pool, fs[j], ind + 4);
        printf("%*s}\n", ind + 2, "");
    }
    free(fs);
    for (size_t i = 0; i < m->n_nested_type; i++)
        if (!cli_is_map_entry(m->nested_type[i]))
            print_message(pool, m->nested_type[i], ind + 2);
    for (size_t i = 0; i < m->n_enum_type; i++)
        print_enum(m->enum_type[i], ind + 2);
    printf("%*s}\n", ind, "");
}

void cli_print_method(const cli_method_t *m, int ind)
{
    printf("%*srpc %s ( %s%s ) returns ( %s%s );\n", ind, "", m->name,
           m->client_streaming ? "stream " : "", m->input_type,
           m->server_streaming ? "stream " : "", m->output_type);
}

static void print_service(const cli_service_t *s)
{
    printf("service %s {\n", s->name);
    const cli_method_t **ms = calloc(s->n_method + 1, sizeof *ms);
    for (size_t i = 0; ms && i < s->n_method; i++)
        ms[i] = s->method[i];
    for (size_t i = 1; ms && i < s->n_method; i++)
        for (size_t j = i; j > 0 && strcmp(ms[j]->name, ms[j - 1]->name) < 0; j--) {
            const cli_method_t *t = ms[j];
            ms[j] = ms[j - 1];
            ms[j - 1] = t;
        }
    for (size_t i = 0; ms && i < s->n_method; i++)
        cli_print_method(ms[i], 2);
    free(ms);
    printf("}\n");
}

void cli_describe(cli_pool_t *pool, const cli_sym_t *s)
{
    static const char *const what[] = {"", "a message", "an enum", "a service",
        "a method", "a field", "a one-of", "an enum value", "an extension"};
    printf("%s is %s:\n", s->name, what[s->kind]);
    switch (s->kind) {
    case CLI_SYM_MESSAGE: print_message(pool, s->desc, 0); break;
    case CLI_SYM_ENUM: print_enum(s->desc, 0); break;
    case CLI_SYM_SERVICE: print_service(s->desc); break;
    case CLI_SYM_METHOD: cli_print_method(s->desc, 0); break;
    case CLI_SYM_FIELD: case CLI_SYM_EXTENSION: print_field(pool, s->desc, 0); break;
    case CLI_SYM_ONEOF: {
        const Google__Protobuf__OneofDescriptorProto *od = s->desc;
        printf("oneof %s {\n", od->name);
        const cli_msg_t *m = s->parent;
        for (size_t i = 0; i < m->n_field; i++)
            if (m->field[i]->has_oneof_index && m->field[i]->oneof_index >= 0 &&
                (size_t)m->field[i]->oneof_index < m->n_oneof_decl &&
                m->oneof_decl[m->field[i]->oneof_index] == od)
                print_field(pool, m->field[i], 2);
        printf("}\n");
        break;
    }
    case CLI_SYM_ENUM_VALUE: {
        const Google__Protobuf__EnumValueDescriptorProto *v = s->desc;
        printf("%s = %d;\n", v->name, v->number);
        break;
    }
    }
}

