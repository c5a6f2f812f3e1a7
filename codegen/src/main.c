/*
 * protoc-gen-rpc-c -- the protoc plugin that writes typed gRPC code for
 * this project's server and client libraries:
 *
 *   protoc -I. --c_out=OUT --rpc-c_out=OUT kv/v1/kv.proto
 *
 * writes OUT/kv/v1/kv.rpc.h and kv.rpc.c next to protoc-c's kv.pb-c.h/.c
 * (see gen_templates.c for what they hold).  The plugin protocol: one
 * CodeGeneratorRequest on stdin, one CodeGeneratorResponse on stdout.
 * Problems with the .proto go back in CodeGeneratorResponse.error (protoc
 * prints them and fails); problems with the protocol itself (unreadable
 * input) go to stderr with exit status 1.  Options (--rpc-c_opt=...): none
 * yet; any is refused, so that a typo is not silently ignored.
 */
#include "codegen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Google__Protobuf__Compiler__CodeGeneratorRequest request_t;
typedef Google__Protobuf__Compiler__CodeGeneratorResponse response_t;
typedef Google__Protobuf__Compiler__CodeGeneratorResponse__File rfile_t;

static uint8_t *read_all(FILE *in, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = xmalloc(cap);
    for (;;) {
        n += fread(buf + n, 1, cap - n, in);
        if (n < cap)
            break;
        uint8_t *b = realloc(buf, cap *= 2);
        if (b == NULL) {
            free(buf);
            return NULL;
        }
        buf = b;
    }
    if (ferror(in)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static const file_proto_t *find_file(const request_t *req, const char *name)
{
    for (size_t i = 0; i < req->n_proto_file; i++)
        if (strcmp(req->proto_file[i]->name, name) == 0)
            return req->proto_file[i];
    return NULL;
}

static rfile_t *new_rfile(char *name, char *content)
{
    rfile_t *f = xmalloc(sizeof *f);
    google__protobuf__compiler__code_generator_response__file__init(f);
    f->name = name;
    f->content = content;
    return f;
}

/* Fills rsp's files (or its error) from req. */
static void generate(const request_t *req, response_t *rsp)
{
    if (req->parameter != NULL && req->parameter[0] != '\0') {
        rsp->error = xasprintf("protoc-gen-rpc-c takes no options (got \"%s\")",
                               req->parameter);
        return;
    }
    type_index_t types = {0};
    for (size_t i = 0; i < req->n_proto_file; i++)
        types_add_file(&types, req->proto_file[i]);
    rsp->file = xmalloc(2 * req->n_file_to_generate * sizeof *rsp->file);
    for (size_t i = 0; i < req->n_file_to_generate && !rsp->error; i++) {
        const file_proto_t *f = find_file(req, req->file_to_generate[i]);
        if (f == NULL) {
            rsp->error = xasprintf("%s: not in the request's proto_file",
                                   req->file_to_generate[i]);
            break;
        }
        gen_out_t out;
        rsp->error = gen_file(f, req->proto_file, req->n_proto_file, &types, &out);
        if (rsp->error == NULL) {
            rsp->file[rsp->n_file++] = new_rfile(out.h_name, out.h_text);
            rsp->file[rsp->n_file++] = new_rfile(out.c_name, out.c_text);
        }
    }
    types_free(&types);
}

int main(void)
{
    size_t len = 0;
    uint8_t *in = read_all(stdin, &len);
    if (in == NULL) {
        fputs("protoc-gen-rpc-c: cannot read the request from stdin\n", stderr);
        return 1;
    }
    request_t *req =
        google__protobuf__compiler__code_generator_request__unpack(NULL, len, in);
    free(in);
    if (req == NULL) {
        fputs("protoc-gen-rpc-c: stdin is not a CodeGeneratorRequest (run me "
              "from protoc: protoc --rpc-c_out=DIR file.proto)\n", stderr);
        return 1;
    }
    response_t rsp = GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__INIT;
    rsp.has_supported_features = 1;
    rsp.supported_features =
        GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__FEATURE__FEATURE_PROTO3_OPTIONAL;
    generate(req, &rsp);
    if (rsp.error != NULL) {
        for (size_t i = 0; i < rsp.n_file; i++) {
            free(rsp.file[i]->name);
            free(rsp.file[i]->content);
            free(rsp.file[i]);
        }
        rsp.n_file = 0;
    }
    size_t n = google__protobuf__compiler__code_generator_response__get_packed_size(&rsp);
    uint8_t *buf = xmalloc(n);
    google__protobuf__compiler__code_generator_response__pack(&rsp, buf);
    int rc = fwrite(buf, 1, n, stdout) == n && fflush(stdout) == 0 ? 0 : 1;
    if (rc != 0)
        fputs("protoc-gen-rpc-c: cannot write the response\n", stderr);
    free(buf);
    for (size_t i = 0; i < rsp.n_file; i++) {
        free(rsp.file[i]->name);
        free(rsp.file[i]->content);
        free(rsp.file[i]);
    }
    free(rsp.file);
    free(rsp.error);
    google__protobuf__compiler__code_generator_request__free_unpacked(req, NULL);
    return rc;
}
