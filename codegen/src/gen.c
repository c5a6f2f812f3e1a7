/*
 * gen.c -- one requested .proto to its `.rpc.h` and `.rpc.c`.
 *
 *   for the file:    prologue, the descriptor getter and adder
 *   for a service:   per method the handler type (and its recv/send
 *                    helpers), the handlers table and _register(), then
 *                    per method the client stubs of its kind
 *   at the end:      the embedded descriptors of the file and of its
 *                    transitive imports, in protoc's (topological) order
 *
 * Every name the file will define is collected first and checked for
 * clashes (two methods lowering to one name, a method called "style");
 * a clash, a type protoc-c would not have generated, or a bad file name
 * is reported as CodeGeneratorResponse.error, never as broken C.
 */
#include "codegen.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

enum { UNARY, SERVER_STREAM, CLIENT_STREAM, BIDI };

static const char *const kind_enum[] = {"RPC_UNARY", "RPC_SERVER_STREAMING",
                                        "RPC_CLIENT_STREAMING",
                                        "RPC_BIDI_STREAMING"};
static const char *const kind_text[] = {"unary", "server streaming",
                                        "client streaming", "bidi streaming"};

static char *upper(const char *s)
{
    char *u = xstrdup(s);
    for (char *p = u; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    return u;
}

/* s as the body of a C string literal. */
static char *c_escape(const char *s)
{
    sb_t b = {0};
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            sb_printf(&b, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            sb_printf(&b, "\\%03o", c);
        else
            sb_putn(&b, (const char *)&c, 1);
    }
    return sb_take(&b);
}

/* The names a file defines, for the clash check. */
typedef struct names {
    char **v;
    size_t n;
} names_t;

static const char *names_add(names_t *ns, char *name)
{
    for (size_t i = 0; i < ns->n; i++)
        if (strcmp(ns->v[i], name) == 0) {
            free(name);
            return ns->v[i];
        }
    char **v = realloc(ns->v, (ns->n + 1) * sizeof *v);
    if (v == NULL)
        abort();
    ns->v = v;
    ns->v[ns->n++] = name;
    return NULL;
}

static void names_free(names_t *ns)
{
    for (size_t i = 0; i < ns->n; i++)
        free(ns->v[i]);
    free(ns->v);
}

/* One method, resolved. */
typedef struct method {
    const method_proto_t *mp;
    int kind;
    char *m, *M, *path, *closing, *async_req, *cb_may;
    char *member; /* its field in the handlers table: m, or m_ for a keyword */
    const type_info_t *req, *rsp;
} method_t;

/* What a method kind generates, by suffix (for the clash check). */
static const char *const method_suffixes[] = {
    "", "_fn", "_send", "_recv", "_write", "_read", "_close_and_read",
    "_async", "_done_cb", "_message_cb", "_handler", "_on_message",
    "_on_done", NULL};

static char *check_names(const char *fid, const char *p, method_t *ms,
                         size_t n, names_t *ns)
{
    static const char *const own[] = {"_handlers", "_handlers_t",
                                      "_register", NULL};
    for (size_t i = 0; own[i]; i++) {
        const char *dup = names_add(ns, xasprintf("%s%s", p, own[i]));
        if (dup)
            return xasprintf("%s: generated name %s is defined twice", fid, dup);
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ms[i].member, "style") == 0 ||
            strcmp(ms[i].member, "user_data") == 0)
            return xasprintf("method %s: its C name \"%s\" is a member of "
                             "%s_handlers_t already; rename the method",
                             ms[i].mp->name, ms[i].m, p);
        for (size_t j = 0; method_suffixes[j]; j++) {
            const char *dup = names_add(
                ns, xasprintf("%s_%s%s", p, ms[i].m, method_suffixes[j]));
            if (dup)
                return xasprintf("method %s: generated name %s clashes with "
                                 "another method's", ms[i].mp->name, dup);
        }
    }
    return NULL;
}

static void method_free(method_t *m)
{
    free(m->m);
    free(m->M);
    free(m->path);
    free(m->closing);
    free(m->async_req);
    free(m->cb_may);
    free(m->member);
}

/* C keywords (C11, and C23's new ones): not usable as a member name. */
static bool is_keyword(const char *s)
{
    static const char *const kw[] = {
        "auto", "break", "case", "char", "const", "continue", "default", "do",
        "double", "else", "enum", "extern", "float", "for", "goto", "if",
        "inline", "int", "long", "register", "restrict", "return", "short",
        "signed", "sizeof", "static", "struct", "switch", "typedef", "union",
        "unsigned", "void", "volatile", "while", "alignas", "alignof", "bool",
        "constexpr", "false", "nullptr", "static_assert", "thread_local",
        "true", "typeof", "typeof_unqual", NULL};
    for (size_t i = 0; kw[i]; i++)
        if (strcmp(s, kw[i]) == 0)
            return true;
    return false;
}

static char *resolve(const service_proto_t *s, const char *svc_full,
                     const char *p, const type_index_t *types, method_t *ms)
{
    for (size_t i = 0; i < s->n_method; i++) {
        method_t *m = &ms[i];
        const method_proto_t *mp = s->method[i];
        m->mp = mp;
        bool cs = mp->has_client_streaming && mp->client_streaming;
        bool ss = mp->has_server_streaming && mp->server_streaming;
        m->kind = cs ? (ss ? BIDI : CLIENT_STREAM) : (ss ? SERVER_STREAM : UNARY);
        m->m = name_ours(NULL, mp->name);
        m->M = upper(m->m);
        m->member = is_keyword(m->m) ? xasprintf("%s_", m->m) : xstrdup(m->m);
        m->path = xasprintf("/%s/%s", svc_full, mp->name);
        m->req = types_find(types, mp->input_type ? mp->input_type : "");
        m->rsp = types_find(types, mp->output_type ? mp->output_type : "");
        if (m->kind == CLIENT_STREAM)
            m->closing = xasprintf("%s_%s_close_and_read() for the response "
                                   "and the status", p, m->m);
        else
            m->closing = xasprintf(
                "read with %s_%s_read() (rpc_client_call_close_send() when "
                "done sending) and take the status with "
                "rpc_client_call_finish()", p, m->m);
        m->cb_may = m->kind == SERVER_STREAM
                        ? xstrdup("rpc_client_call_cancel()")
                        : xasprintf("%s_%s_write() and rpc_client_call_cancel()",
                                    p, m->m);
        m->async_req = m->kind == SERVER_STREAM
                           ? xstrdup(" (sends req and half-closes)")
                           : xasprintf("; send with %s_%s_write()", p, m->m);
        if (m->req == NULL || m->rsp == NULL)
            return xasprintf("method %s.%s: type %s is not a message of this "
                             "request", svc_full, mp->name,
                             m->req == NULL ? mp->input_type : mp->output_type);
    }
    return NULL;
}

/* The variables of one method: the service's (sv, NULL-terminated) then
 * the method's, into v (room for 64 entries). */
static void method_vars(const char **v, const char *const *sv,
                        const method_t *m, const char *req_param)
{
    size_t n = 0;
    while (sv[n])
        v[n] = sv[n], n++;
    const char *mv[] = {
        "m", m->m, "M", m->M, "mm", m->member, "name", m->mp->name,
        "path", m->path,
        "kind", kind_enum[m->kind], "kindtext", kind_text[m->kind],
        "Req", m->req->c_type, "Rsp", m->rsp->c_type,
        "req_l", m->req->c_lower, "rsp_l", m->rsp->c_lower,
        "a_response", m->kind == UNARY || m->kind == CLIENT_STREAM
                          ? "the response" : "one response (once per message)",
        "closing", m->closing, "async_req", m->async_req, "cb_may", m->cb_may,
        "async_req_param", m->kind == SERVER_STREAM ? req_param : "",
        "async_req_check", m->kind == SERVER_STREAM ? " || req == NULL" : "",
        "async_send", m->kind == SERVER_STREAM ? gen_c_async_send_req : "",
        NULL};
    for (size_t i = 0; mv[i]; i++)
        v[n++] = mv[i];
    v[n] = NULL;
}

static void gen_service(sb_t *h, sb_t *c, const char *const *fv,
                        const char *p, const char *svc_full,
                        const char *svc_c, method_t *ms, size_t n)
{
    char *P = upper(p);
    char *svc_desc = NULL;
    {
        /* protoc-c's service descriptor: the full name (with c_package)
         * lowered piece by piece, joined with "__". */
        sb_t b = {0};
        char *copy = xstrdup(svc_c), *save = NULL;
        for (char *t = strtok_r(copy, ".", &save); t; t = strtok_r(NULL, ".", &save)) {
            char *l = name_camel_to_lower(t);
            sb_printf(&b, "%s%s", b.len ? "__" : "", l);
            free(l);
        }
        free(copy);
        sb_puts(&b, "__descriptor");
        svc_desc = sb_take(&b);
    }
    const char *svc_vars[] = {fv[0], fv[1], fv[2], fv[3], fv[4], fv[5],
                              "p", p, "P", P, "svc", svc_full,
                              "svc_desc", svc_desc, NULL};
    const char *mv[64];
    sb_template(h, gen_h_service_head, svc_vars);
    sb_template(c, gen_c_service_head, svc_vars);
    for (size_t i = 0; i < n; i++) {
        char *req_param = xasprintf("const %s *req, ", ms[i].req->c_type);
        method_vars(mv, svc_vars, &ms[i], req_param);
        bool noreq = ms[i].kind == CLIENT_STREAM || ms[i].kind == BIDI;
        sb_template(h, noreq ? gen_h_server_noreq : gen_h_server_req, mv);
        sb_template(h, gen_h_server_send, mv);
        sb_template(c, noreq ? gen_c_server_noreq : gen_c_server_req, mv);
        sb_template(c, gen_c_server_send, mv);
        free(req_param);
    }
    sb_template(h, gen_h_handlers_head, svc_vars);
    for (size_t i = 0; i < n; i++) {
        const char *fieldv[] = {"p", p, "m", ms[i].m, "mm", ms[i].member, NULL};
        sb_template(h, gen_h_handlers_field, fieldv);
    }
    sb_template(h, gen_h_handlers_mid, svc_vars);
    for (size_t i = 0; i < n; i++) {
        const char *stylev[] = {"mm", ms[i].member, NULL};
        sb_template(h, gen_h_handlers_style, stylev);
    }
    if (n == 0)
        sb_puts(h, "        char no_methods_;\n");
    sb_template(h, gen_h_handlers_tail, svc_vars);
    sb_template(c, gen_c_register_head, svc_vars);
    for (size_t i = 0; i < n; i++) {
        char *req_param = xstrdup("");
        method_vars(mv, svc_vars, &ms[i], req_param);
        sb_template(c, gen_c_register_method, mv);
        free(req_param);
    }
    sb_template(c, gen_c_register_tail, svc_vars);
    for (size_t i = 0; i < n; i++) {
        char *req_param = xasprintf("const %s *req, ", ms[i].req->c_type);
        method_vars(mv, svc_vars, &ms[i], req_param);
        switch (ms[i].kind) {
        case UNARY:
            sb_template(h, gen_h_client_unary, mv);
            sb_template(c, gen_c_client_unary, mv);
            break;
        case SERVER_STREAM:
            sb_template(h, gen_h_client_open_req, mv);
            sb_template(h, gen_h_client_read, mv);
            sb_template(h, gen_h_client_async_stream, mv);
            sb_template(c, gen_c_client_open_req, mv);
            sb_template(c, gen_c_client_read, mv);
            sb_template(c, gen_c_client_async_stream, mv);
            break;
        case CLIENT_STREAM:
            sb_template(h, gen_h_client_open_noreq, mv);
            sb_template(h, gen_h_client_close_and_read, mv);
            sb_template(h, gen_h_client_async_stream, mv);
            sb_template(c, gen_c_client_open_noreq, mv);
            sb_template(c, gen_c_client_close_and_read, mv);
            sb_template(c, gen_c_client_async_stream, mv);
            break;
        case BIDI:
            sb_template(h, gen_h_client_open_noreq, mv);
            sb_template(h, gen_h_client_read, mv);
            sb_template(h, gen_h_client_async_stream, mv);
            sb_template(c, gen_c_client_open_noreq, mv);
            sb_template(c, gen_c_client_read, mv);
            sb_template(c, gen_c_client_async_stream, mv);
            break;
        }
        free(req_param);
    }
    free(svc_desc);
    free(P);
}

/* Marks f and, recursively, every file it imports. */
static void mark_deps(const char *name, file_proto_t *const *all, size_t n,
                      bool *need)
{
    for (size_t i = 0; i < n; i++) {
        if (need[i] || strcmp(all[i]->name, name) != 0)
            continue;
        need[i] = true;
        for (size_t d = 0; d < all[i]->n_dependency; d++)
            mark_deps(all[i]->dependency[d], all, n, need);
    }
}

/* The embedded descriptors: one static array per file, then the table.
 * *self gets the array name of f itself. */
static void gen_descriptors(sb_t *c, const file_proto_t *f, const char *fid,
                            file_proto_t *const *all, size_t n, char **self)
{
    bool *need = calloc(n ? n : 1, sizeof *need);
    if (need == NULL)
        abort();
    mark_deps(f->name, all, n, need);
    sb_t table = {0};
    sb_printf(&table,
              "\n/* %s and its imports, imports first. */\n"
              "static const struct {\n"
              "    const char *name;\n"
              "    const uint8_t *bytes;\n"
              "    size_t len;\n"
              "} %s_files[] = {\n", f->name, fid);
    sb_puts(c, "\n/* Serialized FileDescriptorProtos, without source info. */\n");
    for (size_t i = 0; i < n; i++) {
        if (!need[i])
            continue;
        file_proto_t *fp = all[i];
        /* Borrowed for the packing only: the request still owns it. */
        Google__Protobuf__SourceCodeInfo *sci = fp->source_code_info;
        fp->source_code_info = NULL;
        size_t len = google__protobuf__file_descriptor_proto__get_packed_size(fp);
        uint8_t *buf = xmalloc(len);
        google__protobuf__file_descriptor_proto__pack(fp, buf);
        fp->source_code_info = sci;
        char *esc = c_escape(fp->name);
        sb_printf(c, "\n/* %s */\nstatic const uint8_t %s_fd%zu[%zu] = {", esc,
                  fid, i, len);
        for (size_t k = 0; k < len; k++)
            sb_printf(c, "%s0x%02x,", k % 12 == 0 ? "\n    " : " ", buf[k]);
        sb_puts(c, "\n};\n");
        sb_printf(&table, "    {\"%s\", %s_fd%zu, sizeof %s_fd%zu},\n", esc,
                  fid, i, fid, i);
        if (fp == f)
            *self = xasprintf("%s_fd%zu", fid, i);
        free(esc);
        free(buf);
    }
    sb_puts(&table, "};\n");
    sb_puts(c, table.s);
    sb_free(&table);
    free(need);
}

char *gen_file(const file_proto_t *f, file_proto_t *const *all, size_t n_all,
               const type_index_t *types, gen_out_t *out)
{
    *out = (gen_out_t){0};
    if (f->name == NULL || strstr(f->name, "..") != NULL || f->name[0] == '/')
        return xasprintf("%s: a file name protoc-gen-rpc-c cannot write next "
                         "to it", f->name ? f->name : "(unnamed)");
    char *err = NULL;
    char *base = name_strip_proto(f->name);
    char *fid = name_from_path(f->name);
    char *ufid = upper(fid);
    char *guard = xasprintf("RPC_C_%s_RPC_H_INCLUDED", ufid);
    char *self = NULL;
    const char *fv[] = {"file", f->name, "base", base, "guard", guard, "fid",
                        fid, NULL};
    /* The file's variables a service passes on to its templates. */
    const char *fv_svc[] = {"file", f->name, "base", base, "fid", fid};
    names_t ns = {0};
    sb_t h = {0}, c = {0};
    names_add(&ns, xasprintf("%s_descriptor", fid));
    names_add(&ns, xasprintf("%s_add_descriptors", fid));

    sb_template(&h, gen_h_prologue, fv);
    sb_template(&h, gen_h_file, fv);
    sb_template(&c, gen_c_prologue, fv);
    gen_descriptors(&c, f, fid, all, n_all, &self);
    {
        const char *dv[] = {"fid", fid, "self", self, NULL};
        sb_template(&c, gen_c_descriptor_tail, dv);
    }
    for (size_t s = 0; s < f->n_service && err == NULL; s++) {
        const service_proto_t *sp = f->service[s];
        char *c_package = name_c_package(f);
        char *p = name_ours(c_package, sp->name);
        char *svc_full = f->package && *f->package
                             ? xasprintf("%s.%s", f->package, sp->name)
                             : xstrdup(sp->name);
        char *svc_c = xasprintf("%s.%s", c_package, sp->name);
        free(c_package);
        method_t *ms = calloc(sp->n_method ? sp->n_method : 1, sizeof *ms);
        if (ms == NULL)
            abort();
        err = resolve(sp, svc_full, p, types, ms);
        if (err == NULL)
            err = check_names(fid, p, ms, sp->n_method, &ns);
        if (err == NULL)
            gen_service(&h, &c, fv_svc, p, svc_full, svc_c, ms, sp->n_method);
        for (size_t i = 0; i < sp->n_method; i++)
            method_free(&ms[i]);
        free(ms);
        free(p);
        free(svc_full);
        free(svc_c);
    }
    sb_template(&h, gen_h_epilogue, fv);
    if (err == NULL) {
        out->h_name = xasprintf("%s.rpc.h", base);
        out->c_name = xasprintf("%s.rpc.c", base);
        out->h_text = sb_take(&h);
        out->c_text = sb_take(&c);
    }
    sb_free(&h);
    sb_free(&c);
    names_free(&ns);
    free(self);
    free(base);
    free(fid);
    free(ufid);
    free(guard);
    return err;
}

void gen_out_free(gen_out_t *o)
{
    free(o->h_name);
    free(o->h_text);
    free(o->c_name);
    free(o->c_text);
    *o = (gen_out_t){0};
}
