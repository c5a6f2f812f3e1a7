/*
 * cli_methods.h -- the methods rpcurl knows: path, streaming kind and the
 * protobuf-c descriptors of request and response (there is no reflection
 * client; the table is built from the generated code at compile time).
 */
#ifndef CLI_METHODS_H
#define CLI_METHODS_H

#include <protobuf-c/protobuf-c.h>

#include <stdio.h>

enum cli_kind { CLI_UNARY, CLI_SERVER_STREAM, CLI_CLIENT_STREAM, CLI_BIDI };

typedef struct cli_method {
    const char *path; /* "/pkg.Service/Method" */
    enum cli_kind kind;
    const ProtobufCMessageDescriptor *input, *output;
} cli_method_t;

/* Looks up "pkg.Service/Method", "/pkg.Service/Method" or
 * "pkg.Service.Method"; NULL when unknown. */
const cli_method_t *cli_methods_find(const char *name);

/* Prints every known method, one "pkg.Service/Method" per line. */
void cli_methods_list(FILE *out);

#endif /* CLI_METHODS_H */
