/*
 * cli_desc.h -- rpcurl's descriptor pool: FileDescriptorProtos (from server
 * reflection, a -protoset file or protoc's output for -proto) unpacked with
 * protobuf-c's descriptor.proto code, and a symbol table over them.
 *
 * protobuf-c has no dynamic messages, so everything rpcurl knows about a
 * service it was not built with lives here.  Single-threaded; no globals.
 */
#ifndef CLI_DESC_H
#define CLI_DESC_H

#include "google/protobuf/descriptor.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef Google__Protobuf__FileDescriptorProto cli_file_t;
typedef Google__Protobuf__DescriptorProto cli_msg_t;
typedef Google__Protobuf__FieldDescriptorProto cli_field_t;
typedef Google__Protobuf__EnumDescriptorProto cli_enum_t;
typedef Google__Protobuf__ServiceDescriptorProto cli_service_t;
typedef Google__Protobuf__MethodDescriptorProto cli_method_t;

typedef enum cli_sym_kind {
    CLI_SYM_MESSAGE = 1,
    CLI_SYM_ENUM,
    CLI_SYM_SERVICE,
    CLI_SYM_METHOD,
    CLI_SYM_FIELD,
    CLI_SYM_ONEOF,
    CLI_SYM_ENUM_VALUE,
    CLI_SYM_EXTENSION,
} cli_sym_kind_t;

typedef struct cli_sym {
    char *name;           /* fully qualified, no leading dot */
    cli_sym_kind_t kind;
    const void *desc;     /* cli_msg_t, cli_enum_t, ... by kind */
    const void *parent;   /* message of a field/oneof, service of a
                             method, enum of a value; else NULL */
    const cli_file_t *file;
} cli_sym_t;

typedef struct cli_pool cli_pool_t;

cli_pool_t *cli_pool_new(void);
void cli_pool_free(cli_pool_t *p);

/* Adds one serialized FileDescriptorProto; a file name already present is
 * ignored.  Returns 0 or -1 (undecodable, a name missing, out of
 * memory). */
int cli_pool_add_file(cli_pool_t *p, const uint8_t *bytes, size_t len);
/* Adds every file of a serialized FileDescriptorSet.  0 or -1. */
int cli_pool_add_set(cli_pool_t *p, const uint8_t *bytes, size_t len);
bool cli_pool_has_file(const cli_pool_t *p, const char *name);
/* The files' count and i-th file, in the order they were added. */
size_t cli_pool_nfiles(const cli_pool_t *p);
const cli_file_t *cli_pool_file(const cli_pool_t *p, size_t i);

/* Looks a symbol up ("pkg.Msg", ".pkg.Msg", "pkg.Svc.Method"); NULL if
 * unknown. */
const cli_sym_t *cli_pool_find(cli_pool_t *p, const char *name);
/* A message / enum by type_name (".pkg.Msg"), or NULL. */
const cli_msg_t *cli_pool_message(cli_pool_t *p, const char *name);
const cli_enum_t *cli_pool_enum(cli_pool_t *p, const char *name);
/* The fully qualified name (no dot) of a message or enum in the pool. */
const char *cli_pool_name_of(cli_pool_t *p, const void *desc);
/* Whether msg's file is proto3. */
bool cli_pool_is_proto3(cli_pool_t *p, const cli_msg_t *msg);

/* Every service, sorted by name: *out (malloc'ed array of borrowed
 * symbols; free it).  Returns the count or -1. */
long cli_pool_services(cli_pool_t *p, const cli_sym_t ***out);

/* The JSON name of a field (json_name, else protoc's rule); written into
 * buf (cap bytes). */
const char *cli_json_name(const cli_field_t *f, char *buf, size_t cap);
/* Whether a message type is a map entry. */
bool cli_is_map_entry(const cli_msg_t *m);
/* A field by number / by JSON or proto name; NULL if none. */
const cli_field_t *cli_field_by_number(const cli_msg_t *m, int32_t num);
const cli_field_t *cli_field_by_name(const cli_msg_t *m, const char *name);

/* ---- printing as .proto source (cli_describe.c), to stdout ---- */

/* "<name> is a message:" (a service, a method, ...) and the element. */
void cli_describe(cli_pool_t *p, const cli_sym_t *s);
/* "rpc M ( .pkg.In ) returns ( stream .pkg.Out );" indented by ind. */
void cli_print_method(const cli_method_t *m, int ind);

#endif /* CLI_DESC_H */
