/*
 * codegen.h -- internals of protoc-gen-rpc-c, the protoc plugin that writes
 * typed server and client code over <rpc/server.h> and <rpc/client.h> next
 * to protoc-c's output.
 *
 * The plugin is a filter: main.c reads one CodeGeneratorRequest from
 * stdin, gen_*.c turn each requested file into a `.rpc.h` and a `.rpc.c`,
 * and main.c writes one CodeGeneratorResponse to stdout.  Everything is
 * single-threaded and allocation failures end the process (it is a build
 * tool that lives for milliseconds).
 *
 * Names.  protoc-c's names are rebuilt exactly (names.c), because the
 * generated code refers to its message types and descriptors; our own
 * names use single underscores only (kv_v1_store_get), so they never meet
 * protoc-c's, which always join the pieces of a full name with "__".
 */
#ifndef CODEGEN_H
#define CODEGEN_H

#include "google/protobuf/compiler/plugin.pb-c.h"
#include "google/protobuf/descriptor.pb-c.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

typedef Google__Protobuf__FileDescriptorProto file_proto_t;
typedef Google__Protobuf__ServiceDescriptorProto service_proto_t;
typedef Google__Protobuf__MethodDescriptorProto method_proto_t;
typedef Google__Protobuf__DescriptorProto message_proto_t;

/* ---- strbuf.c: a growable NUL-terminated string ------------------------ */

typedef struct sb {
    char *s;
    size_t len, cap;
} sb_t;

void sb_putn(sb_t *b, const char *s, size_t n);
void sb_puts(sb_t *b, const char *s);
void sb_printf(sb_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The string (owned by the caller: free()), leaving b empty. */
char *sb_take(sb_t *b);
void sb_free(sb_t *b);
/* xmalloc-style helpers: abort the plugin on out of memory. */
void *xmalloc(size_t n);
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A `${name}` template expander: vars is a NULL-terminated list of
 * name, value pairs.  An unknown name is a bug in the plugin: abort. */
void sb_template(sb_t *b, const char *tmpl, const char *const *vars);

/* ---- names.c: protoc-c's naming and ours -------------------------------- */

/* protoc-c's ToCamel: "foo_bar" -> "FooBar" (first letter and every letter
 * after '_' upper-cased, '_' dropped). */
char *name_to_camel(const char *s);
/* protoc-c's CamelToLower: "GetHTTPThing" -> "get_httpthing" ('_' before
 * an upper-case letter whose predecessor is not upper-case, all lowered). */
char *name_camel_to_lower(const char *s);
/* Our identifier for a dotted name: pieces lowered as above and joined
 * with one '_' ("kv.v1" + "Store" -> "kv_v1_store"); runs of '_' fold
 * into one. */
char *name_ours(const char *package, const char *name);
/* A C identifier from a path: every non-alphanumeric byte becomes '_'
 * ("kv/v1/kv.proto" -> "kv_v1_kv_proto"). */
char *name_from_path(const char *path);
/* "kv/v1/kv.proto" -> "kv/v1/kv" (the name protoc-c's outputs start with). */
char *name_strip_proto(const char *path);

/* The package protoc-c names f's C identifiers after: the file option
 * (pb-c file).c_package when set, else the .proto package ("" if none).
 * Owned by the caller. */
char *name_c_package(const file_proto_t *f);

/* Every message type of the request, by full name, with protoc-c's names. */
typedef struct type_info {
    char *full;      /* ".kv.v1.GetRequest" */
    char *c_type;    /* "Kv__V1__GetRequest" */
    char *c_lower;   /* "kv__v1__get_request" (+ "__descriptor", ...) */
} type_info_t;

typedef struct type_index {
    type_info_t *v;
    size_t n, cap;
} type_index_t;

void types_add_file(type_index_t *ix, const file_proto_t *f);
const type_info_t *types_find(const type_index_t *ix, const char *full);
void types_free(type_index_t *ix);

/* ---- gen.c: one requested file -> its .rpc.h and .rpc.c ----------------- */

typedef struct gen_out {
    char *h_name, *h_text; /* "kv/v1/kv.rpc.h" and its content */
    char *c_name, *c_text;
} gen_out_t;

/* Generates both files for `f`.  all/n_all: every file of the request
 * (for embedding f's transitive imports).  Returns NULL and *out, or an
 * error text (malloc'ed) for CodeGeneratorResponse.error. */
char *gen_file(const file_proto_t *f, file_proto_t *const *all, size_t n_all,
               const type_index_t *types, gen_out_t *out);
void gen_out_free(gen_out_t *o);

/* gen_templates.c: the generated text, as ${name} templates. */
extern const char gen_h_prologue[];
extern const char gen_h_file[];
extern const char gen_h_service_head[];
extern const char gen_h_server_req[];
extern const char gen_h_server_noreq[];
extern const char gen_h_server_send[];
extern const char gen_h_handlers_head[];
extern const char gen_h_handlers_field[];
extern const char gen_h_handlers_mid[];
extern const char gen_h_handlers_style[];
extern const char gen_h_handlers_tail[];
extern const char gen_h_client_unary[];
extern const char gen_h_client_open_req[];
extern const char gen_h_client_open_noreq[];
extern const char gen_h_client_read[];
extern const char gen_h_client_close_and_read[];
extern const char gen_h_client_async_stream[];
extern const char gen_h_epilogue[];
extern const char gen_c_prologue[];
extern const char gen_c_descriptor_tail[];
extern const char gen_c_service_head[];
extern const char gen_c_server_req[];
extern const char gen_c_server_noreq[];
extern const char gen_c_server_send[];
extern const char gen_c_register_head[];
extern const char gen_c_register_method[];
extern const char gen_c_register_tail[];
extern const char gen_c_client_unary[];
extern const char gen_c_client_open_req[];
extern const char gen_c_client_open_noreq[];
extern const char gen_c_client_read[];
extern const char gen_c_client_close_and_read[];
extern const char gen_c_client_async_stream[];
extern const char gen_c_async_send_req[];

#endif
