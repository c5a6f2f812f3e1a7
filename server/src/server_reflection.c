/*
 * server_reflection.c -- gRPC server reflection (grpc.reflection.v1 and
 * grpc.reflection.v1alpha ServerReflection/ServerReflectionInfo), answered
 * from the serialized FileDescriptorProtos registered with
 * rpc_server_add_file_descriptor().
 *
 * The registry (struct srv_reflection, hung off rpc_server.reflection) is
 * built before the server starts and only read afterwards, so handlers
 * take no lock:
 *
 *   rpc_server_add_file_descriptor(name, bytes)
 *       unpack the FileDescriptorProto (descriptor.pb-c) and index every
 *       symbol it declares -> file: packages-qualified services, methods,
 *       messages (nested too), fields, oneofs, enums, enum values (scoped
 *       to the enum's parent, as protoc scopes them) and extensions.
 *
 *   ServerReflectionInfo (a blocking bidi handler), per request:
 *       list_services         -> the services of the method table, sorted
 *       file_by_filename      -> that file + its transitive imports
 *       file_containing_symbol-> the symbol's file + its transitive imports
 *       file_containing_extension, all_extension_numbers_of_type
 *       unknown name          -> error_response NOT_FOUND; stream goes on
 *       no request set        -> the call ends INVALID_ARGUMENT
 *   A file response lists the target file first (always), then, breadth
 *   first, each import not yet sent on this stream (one `sent` flag per
 *   registered file per call), as grpc-go does.
 *
 * v1alpha is field-for-field identical to v1, so both paths use the v1
 * generated messages; the v1alpha service descriptor is v1's with another
 * name.
 */
#include "server_internal.h"

#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The reflection protos' own FileDescriptorProtos (build-time generated:
 * static const uint8_t refl_v1[], refl_v1alpha[], refl_health[]). */
#include "reflection_v1.inc"
#include "reflection_v1alpha.inc"
#include "health_v1.inc" /* refl_health: rpc_server_add_health() serves it */

typedef Grpc__Reflection__V1__ServerReflectionRequest req_t;
typedef Grpc__Reflection__V1__ServerReflectionResponse rsp_t;
typedef Google__Protobuf__FileDescriptorProto fdp_t;
typedef Google__Protobuf__DescriptorProto msg_t;
typedef Google__Protobuf__EnumDescriptorProto enum_t;
typedef Google__Protobuf__FieldDescriptorProto field_t;

enum sym_kind { SYM_OTHER, SYM_MESSAGE };

struct rfile {
    char *name;
    const uint8_t *bytes; /* borrowed */
    size_t len;
    fdp_t *fd;
};

struct rsym {
    char *name; /* "pkg.Msg.field", no leading dot */
    size_t file;
    enum sym_kind kind;
};

struct rext {
    char *extendee; /* no leading dot */
    int32_t number;
    size_t file;
};

struct srv_reflection {
    struct rfile *files;
    size_t nfiles, capfiles;
    struct rsym *syms;
    size_t nsyms, capsyms;
    struct rext *exts;
    size_t nexts, capexts;
    int service_added;
};

static int grow(void **v, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 32;
    void *nv = rpc__realloc(*v, c * size);
    if (nv == NULL)
        return RPC_ERR_NOMEM;
    *v = nv;
    *cap = c;
    return 0;
}

static struct srv_reflection *registry(rpc_server_t *s)
{
    if (s->reflection == NULL)
        s->reflection = rpc__calloc(1, sizeof *s->reflection);
    return s->reflection;
}

void srv_reflection_free(struct srv_reflection *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nfiles; i++) {
        free(r->files[i].name);
        google__protobuf__file_descriptor_proto__free_unpacked(r->files[i].fd,
                                                               NULL);
    }
    for (size_t i = 0; i < r->nsyms; i++)
        free(r->syms[i].name);
    for (size_t i = 0; i < r->nexts; i++)
        free(r->exts[i].extendee);
    free(r->files);
    free(r->syms);
    free(r->exts);
    free(r);
}

/* ---- indexing ----------------------------------------------------------- */

static int add_sym(struct srv_reflection *r, const char *scope,
                   const char *name, size_t file, enum sym_kind kind)
{
    if (grow((void **)&r->syms, &r->capsyms, r->nsyms, sizeof *r->syms))
        return RPC_ERR_NOMEM;
    char *n = rpc__dotted_name(scope, name);
    if (n == NULL)
        return RPC_ERR_NOMEM;
    r->syms[r->nsyms++] = (struct rsym){.name = n, .file = file, .kind = kind};
    return 0;
}

static int add_exts(struct srv_reflection *r, field_t **f, size_t n,
                    const char *scope, size_t file)
{
    for (size_t i = 0; i < n; i++) {
        int rc = add_sym(r, scope, f[i]->name, file, SYM_OTHER);
        if (rc)
            return rc;
        if (f[i]->extendee == NULL)
            continue;
        if (grow((void **)&r->exts, &r->capexts, r->nexts, sizeof *r->exts))
            return RPC_ERR_NOMEM;
        const char *e = f[i]->extendee;
        char *copy = rpc__strdup(e[0] == '.' ? e + 1 : e);
        if (copy == NULL)
            return RPC_ERR_NOMEM;
        r->exts[r->nexts++] = (struct rext){
            .extendee = copy, .number = f[i]->number, .file = file};
    }
    return 0;
}

static int index_enum(struct srv_reflection *r, const enum_t *e,
                      const char *scope, size_t file)
{
    int rc = add_sym(r, scope, e->name, file, SYM_OTHER);
    /* Enum values are siblings of their enum (C++ scoping rules). */
    for (size_t i = 0; rc == 0 && i < e->n_value; i++)
        rc = add_sym(r, scope, e->value[i]->name, file, SYM_OTHER);
    return rc;
}

static int index_message(struct srv_reflection *r, const msg_t *m,
                         const char *scope, size_t file)
{
    int rc = add_sym(r, scope, m->name, file, SYM_MESSAGE);
    if (rc)
        return rc;
    char *me = rpc__dotted_name(scope, m->name);
    if (me == NULL)
        return RPC_ERR_NOMEM;
    for (size_t i = 0; rc == 0 && i < m->n_field; i++)
        rc = add_sym(r, me, m->field[i]->name, file, SYM_OTHER);
    for (size_t i = 0; rc == 0 && i < m->n_oneof_decl; i++)
        rc = add_sym(r, me, m->oneof_decl[i]->name, file, SYM_OTHER);
    for (size_t i = 0; rc == 0 && i < m->n_enum_type; i++)
        rc = index_enum(r, m->enum_type[i], me, file);
    for (size_t i = 0; rc == 0 && i < m->n_nested_type; i++)
        rc = index_message(r, m->nested_type[i], me, file);
    if (rc == 0)
        rc = add_exts(r, m->extension, m->n_extension, me, file);
    free(me);
    return rc;
}

static int index_file(struct srv_reflection *r, size_t file)
{
    const fdp_t *fd = r->files[file].fd;
    const char *pkg = fd->package ? fd->package : "";
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < fd->n_message_type; i++)
        rc = index_message(r, fd->message_type[i], pkg, file);
    for (size_t i = 0; rc == 0 && i < fd->n_enum_type; i++)
        rc = index_enum(r, fd->enum_type[i], pkg, file);
    for (size_t i = 0; rc == 0 && i < fd->n_service; i++) {
        const Google__Protobuf__ServiceDescriptorProto *sv = fd->service[i];
        rc = add_sym(r, pkg, sv->name, file, SYM_OTHER);
        char *sn = rc ? NULL : rpc__dotted_name(pkg, sv->name);
        if (rc == 0 && sn == NULL)
            rc = RPC_ERR_NOMEM;
        for (size_t j = 0; rc == 0 && j < sv->n_method; j++)
            rc = add_sym(r, sn, sv->method[j]->name, file, SYM_OTHER);
        free(sn);
    }
    if (rc == 0)
        rc = add_exts(r, fd->extension, fd->n_extension, pkg, file);
    return rc;
}

static int cmp_sym(const void *a, const void *b)
{
    return strcmp(((const struct rsym *)a)->name,
                  ((const struct rsym *)b)->name);
}

static ptrdiff_t find_file(const struct srv_reflection *r, const char *name)
{
    for (size_t i = 0; i < r->nfiles; i++)
        if (strcmp(r->files[i].name, name) == 0)
            return (ptrdiff_t)i;
    return -1;
}

int rpc_server_add_file_descriptor(rpc_server_t *s, const char *name,
                                   const uint8_t *bytes, size_t len)
{
    if (s == NULL || name == NULL || name[0] == '\0' ||
        (bytes == NULL && len > 0))
        return RPC_ERR_INVAL;
    if (s->state != SRV_NEW)
        return RPC_ERR_STATE;
    struct srv_reflection *r = registry(s);
    if (r == NULL)
        return RPC_ERR_NOMEM;
    if (find_file(r, name) >= 0)
        return 0;
    fdp_t *fd = google__protobuf__file_descriptor_proto__unpack(NULL, len,
                                                                bytes);
    if (fd == NULL)
        return RPC_ERR_INVAL; /* not a FileDescriptorProto (or no memory) */
    char *copy = rpc__strdup(name);
    if (copy == NULL ||
        grow((void **)&r->files, &r->capfiles, r->nfiles, sizeof *r->files)) {
        free(copy);
        google__protobuf__file_descriptor_proto__free_unpacked(fd, NULL);
        return RPC_ERR_NOMEM;
    }
    r->files[r->nfiles] =
        (struct rfile){.name = copy, .bytes = bytes, .len = len, .fd = fd};
    size_t nsyms = r->nsyms, nexts = r->nexts;
    int rc = index_file(r, r->nfiles);
    if (rc != 0) { /* roll back this file's entries */
        while (r->nsyms > nsyms)
            free(r->syms[--r->nsyms].name);
        while (r->nexts > nexts)
            free(r->exts[--r->nexts].extendee);
        free(copy);
        google__protobuf__file_descriptor_proto__free_unpacked(fd, NULL);
        return rc;
    }
    r->nfiles++;
    /* Sorted now, before start: handlers only read.  A stable order keeps
     * the first file that declared a duplicate name. */
    qsort(r->syms, r->nsyms, sizeof *r->syms, cmp_sym);
    return 0;
}

static const struct rsym *find_sym(const struct srv_reflection *r,
                                   const char *name)
{
    if (name[0] == '.')
        name++;
    if (r->nsyms == 0)
        return NULL;
    struct rsym key = {.name = (char *)name};
    return bsearch(&key, r->syms, r->nsyms, sizeof *r->syms, cmp_sym);
}

/* ---- answering ---------------------------------------------------------- */

/* Per-call state. */
struct stream {
    struct srv_reflection *r;
    rpc_server_t *s;
    unsigned char *sent; /* [nfiles] */
    size_t *queue;       /* [nfiles] */
    ProtobufCBinaryData *out; /* [nfiles] */
};

static void set_error(rsp_t *rsp, Grpc__Reflection__V1__ErrorResponse *er,
                      int code, const char *msg)
{
    er->error_code = code;
    er->error_message = (char *)msg;
    rsp->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    rsp->error_response = er;
}

/* Fills fr with file `target` and its transitive imports not yet sent. */
static void file_response(struct stream *st, size_t target, rsp_t *rsp,
                          Grpc__Reflection__V1__FileDescriptorResponse *fr)
{
    struct srv_reflection *r = st->r;
    size_t head = 0, tail = 0, n = 0;
    st->queue[tail++] = target;
    st->sent[target] = 2; /* 2: queued on this request */
    while (head < tail) {
        size_t f = st->queue[head++];
        st->out[n++] = (ProtobufCBinaryData){.len = r->files[f].len,
                                             .data = (uint8_t *)r->files[f].bytes};
        const fdp_t *fd = r->files[f].fd;
        for (size_t i = 0; i < fd->n_dependency; i++) {
            ptrdiff_t d = find_file(r, fd->dependency[i]);
            if (d < 0 || st->sent[d]) /* unknown deps are skipped */
                continue;
            st->sent[d] = 2;
            st->queue[tail++] = (size_t)d;
        }
    }
    for (size_t i = 0; i < tail; i++)
        st->sent[st->queue[i]] = 1;
    fr->n_file_descriptor_proto = n;
    fr->file_descriptor_proto = st->out;
    rsp->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
    rsp->file_descriptor_response = fr;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The service names of the method table, sorted, unique (malloc'ed). */
static int list_services(const rpc_server_t *s, char ***out, size_t *n)
{
    char **names = rpc__calloc(s->nmethods ? s->nmethods : 1, sizeof *names);
    if (names == NULL)
        return RPC_ERR_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < s->nmethods; i++) {
        const char *p = s->methods[i].path + 1, *slash = strrchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        names[k] = rpc__strndup(p, len);
        if (names[k] == NULL) {
            while (k)
                free(names[--k]);
            free(names);
            return RPC_ERR_NOMEM;
        }
        k++;
    }
    qsort(names, k, sizeof *names, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < k; i++) {
        if (u > 0 && strcmp(names[u - 1], names[i]) == 0)
            free(names[i]);
        else
            names[u++] = names[i];
    }
    *out = names;
    *n = u;
    return 0;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

/* Answers one request; returns 0, a status to end the call with, or -1
 * when sending failed (the call is over). */
static int answer(struct stream *st, rpc_call_t *call, req_t *q)
{
    struct srv_reflection *r = st->r;
    rsp_t rsp = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
    Grpc__Reflection__V1__ErrorResponse er =
        GRPC__REFLECTION__V1__ERROR_RESPONSE__INIT;
    Grpc__Reflection__V1__FileDescriptorResponse fr =
        GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT;
    Grpc__Reflection__V1__ListServiceResponse lr =
        GRPC__REFLECTION__V1__LIST_SERVICE_RESPONSE__INIT;
    Grpc__Reflection__V1__ExtensionNumberResponse xr =
        GRPC__REFLECTION__V1__EXTENSION_NUMBER_RESPONSE__INIT;
    Grpc__Reflection__V1__ServiceResponse *svcs = NULL, **svcp = NULL;
    char **names = NULL;
    size_t nnames = 0;
    char msg[512];
    rsp.valid_host = q->host;
    rsp.original_request = q;

    switch (q->message_request_case) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
        if (list_services(st->s, &names, &nnames) != 0)
            return RPC_STATUS_RESOURCE_EXHAUSTED;
        svcs = rpc__calloc(nnames + 1, sizeof *svcs);
        svcp = rpc__calloc(nnames + 1, sizeof *svcp);
        if (svcs == NULL || svcp == NULL) {
            for (size_t i = 0; i < nnames; i++)
                free(names[i]);
            free(names);
            free(svcs);
            free(svcp);
            return RPC_STATUS_RESOURCE_EXHAUSTED;
        }
        for (size_t i = 0; i < nnames; i++) {
            grpc__reflection__v1__service_response__init(&svcs[i]);
            svcs[i].name = names[i];
            svcp[i] = &svcs[i];
        }
        lr.n_service = nnames;
        lr.service = svcp;
        rsp.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
        rsp.list_services_response = &lr;
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME: {
        ptrdiff_t f = find_file(r, q->file_by_filename);
        if (f < 0) {
            snprintf(msg, sizeof msg, "file not found: %s", q->file_by_filename);
            set_error(&rsp, &er, RPC_STATUS_NOT_FOUND, msg);
        } else {
            file_response(st, (size_t)f, &rsp, &fr);
        }
        break;
    }
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL: {
        const struct rsym *sym = find_sym(r, q->file_containing_symbol);
        if (sym == NULL) {
            snprintf(msg, sizeof msg, "symbol not found: %s",
                     q->file_containing_symbol);
            set_error(&rsp, &er, RPC_STATUS_NOT_FOUND, msg);
        } else {
            file_response(st, sym->file, &rsp, &fr);
        }
        break;
    }
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION: {
        const Grpc__Reflection__V1__ExtensionRequest *x =
            q->file_containing_extension;
        const char *type = x && x->containing_type ? x->containing_type : "";
        if (type[0] == '.')
            type++;
        ptrdiff_t f = -1;
        for (size_t i = 0; x && i < r->nexts && f < 0; i++)
            if (r->exts[i].number == x->extension_number &&
                strcmp(r->exts[i].extendee, type) == 0)
                f = (ptrdiff_t)r->exts[i].file;
        if (f < 0) {
            snprintf(msg, sizeof msg, "extension not found: %s(%d)", type,
                     x ? x->extension_number : 0);
            set_error(&rsp, &er, RPC_STATUS_NOT_FOUND, msg);
        } else {
            file_response(st, (size_t)f, &rsp, &fr);
        }
        break;
    }
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE: {
        const char *type = q->all_extension_numbers_of_type;
        const struct rsym *sym = find_sym(r, type);
        if (sym == NULL || sym->kind != SYM_MESSAGE) {
            snprintf(msg, sizeof msg, "message type not found: %s", type);
            set_error(&rsp, &er, RPC_STATUS_NOT_FOUND, msg);
            break;
        }
        int32_t *nums = rpc__calloc(r->nexts + 1, sizeof *nums);
        if (nums == NULL)
            return RPC_STATUS_RESOURCE_EXHAUSTED;
        size_t n = 0;
        for (size_t i = 0; i < r->nexts; i++)
            if (strcmp(r->exts[i].extendee, sym->name) == 0)
                nums[n++] = r->exts[i].number;
        qsort(nums, n, sizeof *nums, cmp_i32);
        xr.base_type_name = (char *)type;
        xr.n_extension_number = n;
        xr.extension_number = nums;
        rsp.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
        rsp.all_extension_numbers_response = &xr;
        break;
    }
    default:
        rpc_call_set_status_message(call, "invalid MessageRequest: no request set");
        return RPC_STATUS_INVALID_ARGUMENT;
    }
    int rc = rpc_call_send(call, &rsp.base);
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    free(svcs);
    free(svcp);
    free(xr.extension_number);
    return rc == 0 ? 0 : -1;
}

static int reflection_info(ctx_t *ctx, rpc_call_t *call,
                           const ProtobufCMessage *unused, void *ud)
{
    (void)ctx;
    (void)unused;
    rpc_server_t *s = ud;
    struct stream st = {.r = s->reflection, .s = s};
    size_t n = st.r->nfiles ? st.r->nfiles : 1;
    st.sent = rpc__calloc(n, 1);
    st.queue = rpc__calloc(n, sizeof *st.queue);
    st.out = rpc__calloc(n, sizeof *st.out);
    int status = RPC_STATUS_OK;
    if (st.sent == NULL || st.queue == NULL || st.out == NULL)
        status = RPC_STATUS_RESOURCE_EXHAUSTED;
    while (status == RPC_STATUS_OK) {
        ProtobufCMessage *m = NULL;
        int rc = rpc_call_recv(call, &m);
        if (rc == RPC_ERR_EOF)
            break;
        if (rc != 0) {
            status = rc == RPC_ERR_MALFORMED ? RPC_STATUS_INTERNAL
                   : rc == RPC_ERR_DEADLINE  ? RPC_STATUS_DEADLINE_EXCEEDED
                                             : RPC_STATUS_CANCELLED;
            break;
        }
        int a = answer(&st, call, (req_t *)m);
        protobuf_c_message_free_unpacked(m, NULL);
        if (a < 0)
            status = RPC_STATUS_CANCELLED; /* the call is already over */
        else if (a > 0)
            status = a;
    }
    free(st.sent);
    free(st.queue);
    free(st.out);
    return status;
}

/* grpc.reflection.v1alpha.ServerReflection: v1's descriptor, renamed. */
static ProtobufCServiceDescriptor v1alpha_desc;
static pthread_once_t v1alpha_once = PTHREAD_ONCE_INIT;

static void v1alpha_init(void)
{
    v1alpha_desc = grpc__reflection__v1__server_reflection__descriptor;
    v1alpha_desc.name = "grpc.reflection.v1alpha.ServerReflection";
    v1alpha_desc.c_name = "Grpc__Reflection__V1alpha__ServerReflection";
    v1alpha_desc.package = "grpc.reflection.v1alpha";
}

int rpc_server_add_reflection(rpc_server_t *s)
{
    if (s == NULL)
        return RPC_ERR_INVAL;
    if (s->state != SRV_NEW)
        return RPC_ERR_STATE;
    struct srv_reflection *r = registry(s);
    if (r == NULL)
        return RPC_ERR_NOMEM;
    if (r->service_added)
        return RPC_ERR_EXISTS;
    int rc = rpc_server_add_file_descriptor(
        s, "grpc/reflection/v1/reflection.proto", refl_v1, sizeof refl_v1);
    if (rc == 0)
        rc = rpc_server_add_file_descriptor(
            s, "grpc/reflection/v1alpha/reflection.proto", refl_v1alpha,
            sizeof refl_v1alpha);
    if (rc == 0)
        rc = rpc_server_add_file_descriptor(s, "grpc/health/v1/health.proto",
                                            refl_health, sizeof refl_health);
    pthread_once(&v1alpha_once, v1alpha_init);
    if (rc == 0)
        rc = rpc_server_add_method(
            s, &grpc__reflection__v1__server_reflection__descriptor,
            "ServerReflectionInfo", RPC_BIDI_STREAMING, RPC_BLOCKING,
            reflection_info, s);
    if (rc == 0)
        rc = rpc_server_add_method(s, &v1alpha_desc, "ServerReflectionInfo",
                                   RPC_BIDI_STREAMING, RPC_BLOCKING,
                                   reflection_info, s);
    if (rc == 0)
        r->service_added = 1;
    return rc;
}
