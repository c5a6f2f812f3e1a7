/*
 * cli_reflect.c -- the server-reflection client (see cli_reflect.h).
 *
 * One stream stays open for the whole run; each request is one send and
 * one receive.  When the v1 stream ends before answering with
 * UNIMPLEMENTED (a server with only v1alpha, e.g. grpc-go 1.33), the same
 * request is retried once on a v1alpha stream, which is kept from then on.
 * v1 and v1alpha are wire-identical, so the v1 generated code serves both.
 */
#include "cli_reflect.h"

#include "grpc/reflection/v1/reflection.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Grpc__Reflection__V1__ServerReflectionRequest req_t;
typedef Grpc__Reflection__V1__ServerReflectionResponse rsp_t;

static const char *const paths[2] = {
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
};

struct cli_refl {
    ctx_t *ctx;
    rpc_client_channel_t *ch;
    const rpc_metadata_t *md;
    rpc_client_call_t *call;
    int version; /* index into paths */
};

cli_refl_t *cli_refl_new(ctx_t *ctx, rpc_client_channel_t *ch,
                         const rpc_metadata_t *md)
{
    cli_refl_t *r = calloc(1, sizeof *r);
    if (r) {
        r->ctx = ctx;
        r->ch = ch;
        r->md = md;
    }
    return r;
}

void cli_refl_free(cli_refl_t *r)
{
    if (r == NULL)
        return;
    if (r->call) {
        rpc_client_call_close_send(r->call);
        rpc_client_call_free(r->call);
    }
    free(r);
}

/* Sends q, returns the response (free with ..._free_unpacked) or NULL. */
static rsp_t *ask(cli_refl_t *r, req_t *q, char *err, size_t errlen)
{
    size_t n = grpc__reflection__v1__server_reflection_request__get_packed_size(q);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    grpc__reflection__v1__server_reflection_request__pack(q, buf);
    rsp_t *rsp = NULL;
    for (;;) {
        int rc = 0;
        if (r->call == NULL)
            rc = rpc_client_call_start(r->ctx, r->ch, paths[r->version], r->md,
                                       &r->call);
        if (rc != 0) {
            snprintf(err, errlen, "%s", rpc_strerror(rc));
            break;
        }
        rc = rpc_client_call_send(r->ctx, r->call, buf, n);
        void *data = NULL;
        size_t len = 0;
        if (rc == 0)
            rc = rpc_client_call_recv(r->ctx, r->call, &data, &len);
        if (rc == 0) {
            rsp = grpc__reflection__v1__server_reflection_response__unpack(NULL, len, data);
            free(data);
            if (rsp == NULL)
                snprintf(err, errlen, "malformed reflection response");
            break;
        }
        int status = rpc_client_call_finish(r->ctx, r->call);
        const char *msg = rpc_client_call_message(r->call);
        if (status == RPC_STATUS_UNIMPLEMENTED && r->version == 0) {
            rpc_client_call_free(r->call);
            r->call = NULL;
            r->version = 1; /* fall back to v1alpha */
            continue;
        }
        if (status == RPC_STATUS_UNIMPLEMENTED)
            snprintf(err, errlen, "server does not support the reflection API");
        else if (status > 0)
            snprintf(err, errlen, "rpc error: code = %s desc = %s",
                     rpc_status_name(status), msg ? msg : "");
        else
            snprintf(err, errlen, "%s", rpc_strerror(rc));
        rpc_client_call_free(r->call);
        r->call = NULL;
        break;
    }
    free(buf);
    return rsp;
}

long cli_refl_list(cli_refl_t *r, char ***names, char *err, size_t errlen)
{
    req_t q = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    q.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
    q.list_services = "*";
    rsp_t *rsp = ask(r, &q, err, errlen);
    if (rsp == NULL)
        return -1;
    long n = -1;
    if (rsp->message_response_case ==
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE) {
        const Grpc__Reflection__V1__ListServiceResponse *l = rsp->list_services_response;
        char **v = calloc(l->n_service + 1, sizeof *v);
        if (v) {
            n = 0;
            for (size_t i = 0; i < l->n_service; i++)
                if ((v[n] = strdup(l->service[i]->name ? l->service[i]->name : "")))
                    n++;
            *names = v;
        } else {
            snprintf(err, errlen, "out of memory");
        }
    } else if (rsp->message_response_case ==
               GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE) {
        snprintf(err, errlen, "%s", rsp->error_response->error_message);
    } else {
        snprintf(err, errlen, "unexpected reflection response");
    }
    grpc__reflection__v1__server_reflection_response__free_unpacked(rsp, NULL);
    return n;
}

/* One file request (by symbol or by name); adds what comes back. */
static int fetch(cli_refl_t *r, cli_pool_t *pool, const char *symbol,
                 const char *file, char *err, size_t errlen)
{
    req_t q = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    if (symbol) {
        q.message_request_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
        q.file_containing_symbol = (char *)symbol;
    } else {
        q.message_request_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME;
        q.file_by_filename = (char *)file;
    }
    rsp_t *rsp = ask(r, &q, err, errlen);
    if (rsp == NULL)
        return -1;
    int rc = -1;
    if (rsp->message_response_case ==
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE) {
        const Grpc__Reflection__V1__FileDescriptorResponse *f = rsp->file_descriptor_response;
        rc = 0;
        for (size_t i = 0; rc == 0 && i < f->n_file_descriptor_proto; i++)
            rc = cli_pool_add_file(pool, f->file_descriptor_proto[i].data,
                                   f->file_descriptor_proto[i].len);
        if (rc)
            snprintf(err, errlen, "bad FileDescriptorProto from the server");
    } else if (rsp->message_response_case ==
               GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE) {
        const char *m = rsp->error_response->error_message;
        if (symbol)
            snprintf(err, errlen, "Symbol not found: %s (%s)", symbol, m ? m : "");
        else
            snprintf(err, errlen, "File not found: %s (%s)", file, m ? m : "");
    } else {
        snprintf(err, errlen, "unexpected reflection response");
    }
    grpc__reflection__v1__server_reflection_response__free_unpacked(rsp, NULL);
    return rc;
}

int cli_refl_symbol(cli_refl_t *r, cli_pool_t *pool, const char *symbol,
                    char *err, size_t errlen)
{
    if (symbol[0] == '.')
        symbol++;
    if (cli_pool_find(pool, symbol) == NULL &&
        fetch(r, pool, symbol, NULL, err, errlen) != 0)
        return -1;
    /* Imports the server skipped (sent earlier on the stream, or not
     * sent at all): fetch them by name until the pool is closed. */
    for (size_t i = 0; i < cli_pool_nfiles(pool); i++) {
        const cli_file_t *f = cli_pool_file(pool, i);
        for (size_t j = 0; j < f->n_dependency; j++)
            if (!cli_pool_has_file(pool, f->dependency[j]) &&
                fetch(r, pool, NULL, f->dependency[j], err, errlen) != 0)
                return -1;
    }
    return 0;
}
