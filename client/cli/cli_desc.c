/*
 * cli_desc.c -- the descriptor pool (see cli_desc.h).
 *
 * Files are unpacked once and kept; the symbol table is a flat array
 * sorted lazily (after adds) and searched with bsearch.  Enum values are
 * indexed as siblings of their enum, as protoc scopes them.
 */
#include "cli_desc.h"

#include "rpc_internal.h"

#include <stdlib.h>
#include <string.h>

struct cli_pool {
    cli_file_t **files;
    size_t nfiles, capfiles;
    cli_sym_t *syms;
    size_t nsyms, capsyms;
    bool sorted;
};

cli_pool_t *cli_pool_new(void)
{
    return calloc(1, sizeof(cli_pool_t));
}

void cli_pool_free(cli_pool_t *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->nfiles; i++)
        google__protobuf__file_descriptor_proto__free_unpacked(p->files[i], NULL);
    for (size_t i = 0; i < p->nsyms; i++)
        free(p->syms[i].name);
    free(p->files);
    free(p->syms);
    free(p);
}

static int grow(void **v, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 64;
    void *nv = realloc(*v, c * size);
    if (nv == NULL)
        return -1;
    *v = nv;
    *cap = c;
    return 0;
}

static int add(cli_pool_t *p, const char *scope, const char *name,
               cli_sym_kind_t kind, const void *desc, const void *parent,
               const cli_file_t *file)
{
    if (grow((void **)&p->syms, &p->capsyms, p->nsyms, sizeof *p->syms))
        return -1;
    char *n = rpc__dotted_name(scope, name);
    if (n == NULL)
        return -1;
    p->syms[p->nsyms++] = (cli_sym_t){.name = n, .kind = kind, .desc = desc,
                                      .parent = parent, .file = file};
    p->sorted = false;
    return 0;
}

static int add_enum(cli_pool_t *p, const char *scope, const cli_enum_t *e,
                    const cli_file_t *f)
{
    int rc = add(p, scope, e->name, CLI_SYM_ENUM, e, NULL, f);
    for (size_t i = 0; rc == 0 && i < e->n_value; i++)
        rc = add(p, scope, e->value[i]->name, CLI_SYM_ENUM_VALUE, e->value[i],
                 e, f);
    return rc;
}

static int add_msg(cli_pool_t *p, const char *scope, const cli_msg_t *m,
                   const cli_file_t *f)
{
    if (add(p, scope, m->name, CLI_SYM_MESSAGE, m, NULL, f))
        return -1;
    char *me = rpc__dotted_name(scope, m->name);
    if (me == NULL)
        return -1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < m->n_field; i++)
        rc = add(p, me, m->field[i]->name, CLI_SYM_FIELD, m->field[i], m, f);
    for (size_t i = 0; rc == 0 && i < m->n_oneof_decl; i++)
        rc = add(p, me, m->oneof_decl[i]->name, CLI_SYM_ONEOF,
                 m->oneof_decl[i], m, f);
    for (size_t i = 0; rc == 0 && i < m->n_extension; i++)
        rc = add(p, me, m->extension[i]->name, CLI_SYM_EXTENSION,
                 m->extension[i], m, f);
    for (size_t i = 0; rc == 0 && i < m->n_enum_type; i++)
        rc = add_enum(p, me, m->enum_type[i], f);
    for (size_t i = 0; rc == 0 && i < m->n_nested_type; i++)
        rc = add_msg(p, me, m->nested_type[i], f);
    free(me);
    return rc;
}

/* Descriptors come from servers: every name the rest of rpcurl reads must
 * be there (proto2 optional strings unpack to NULL when absent). */
static bool valid_enum(const cli_enum_t *e)
{
    if (e->name == NULL)
        return false;
    for (size_t i = 0; i < e->n_value; i++)
        if (e->value[i]->name == NULL)
            return false;
    return true;
}

static bool valid_fields(cli_field_t *const *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int t = (int)f[i]->type;
        if (f[i]->name == NULL ||
            ((t == 11 || t == 14 || t == 10) && f[i]->type_name == NULL))
            return false;
    }
    return true;
}

static bool valid_msg(const cli_msg_t *m, int depth)
{
    if (m->name == NULL || depth > 100 || !valid_fields(m->field, m->n_field) ||
        !valid_fields(m->extension, m->n_extension))
        return false;
    for (size_t i = 0; i < m->n_oneof_decl; i++)
        if (m->oneof_decl[i]->name == NULL)
            return false;
    for (size_t i = 0; i < m->n_enum_type; i++)
        if (!valid_enum(m->enum_type[i]))
            return false;
    for (size_t i = 0; i < m->n_nested_type; i++)
        if (!valid_msg(m->nested_type[i], depth + 1))
            return false;
    return true;
}

static bool valid_file(const cli_file_t *f)
{
    if (f->name == NULL || !valid_fields(f->extension, f->n_extension))
        return false;
    for (size_t i = 0; i < f->n_message_type; i++)
        if (!valid_msg(f->message_type[i], 0))
            return false;
    for (size_t i = 0; i < f->n_enum_type; i++)
        if (!valid_enum(f->enum_type[i]))
            return false;
    for (size_t i = 0; i < f->n_service; i++) {
        const cli_service_t *s = f->service[i];
        if (s->name == NULL)
            return false;
        for (size_t j = 0; j < s->n_method; j++)
            if (s->method[j]->name == NULL || s->method[j]->input_type == NULL ||
                s->method[j]->output_type == NULL)
                return false;
    }
    return true;
}

bool cli_pool_has_file(const cli_pool_t *p, const char *name)
{
    for (size_t i = 0; i < p->nfiles; i++)
        if (strcmp(p->files[i]->name, name) == 0)
            return true;
    return false;
}

size_t cli_pool_nfiles(const cli_pool_t *p) { return p->nfiles; }
const cli_file_t *cli_pool_file(const cli_pool_t *p, size_t i)
{
    return i < p->nfiles ? p->files[i] : NULL;
}

int cli_pool_add_file(cli_pool_t *p, const uint8_t *bytes, size_t len)
{
    cli_file_t *f = google__protobuf__file_descriptor_proto__unpack(NULL, len,
                                                                    bytes);
    if (f == NULL || !valid_file(f))
        goto bad;
    if (cli_pool_has_file(p, f->name)) {
        google__protobuf__file_descriptor_proto__free_unpacked(f, NULL);
        return 0;
    }
    if (grow((void **)&p->files, &p->capfiles, p->nfiles, sizeof *p->files))
        goto bad;
    p->files[p->nfiles++] = f;
    const char *pkg = f->package ? f->package : "";
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < f->n_message_type; i++)
        rc = add_msg(p, pkg, f->message_type[i], f);
    for (size_t i = 0; rc == 0 && i < f->n_enum_type; i++)
        rc = add_enum(p, pkg, f->enum_type[i], f);
    for (size_t i = 0; rc == 0 && i < f->n_extension; i++)
        rc = add(p, pkg, f->extension[i]->name, CLI_SYM_EXTENSION,
                 f->extension[i], NULL, f);
    for (size_t i = 0; rc == 0 && i < f->n_service; i++) {
        const cli_service_t *s = f->service[i];
        rc = add(p, pkg, s->name, CLI_SYM_SERVICE, s, NULL, f);
        char *sn = rc ? NULL : rpc__dotted_name(pkg, s->name);
        if (sn == NULL)
            rc = -1;
        for (size_t j = 0; rc == 0 && j < s->n_method; j++)
            rc = add(p, sn, s->method[j]->name, CLI_SYM_METHOD, s->method[j], s,
                     f);
        free(sn);
    }
    return rc; /* on failure the file stays, partly indexed */
bad:
    if (f)
        google__protobuf__file_descriptor_proto__free_unpacked(f, NULL);
    return -1;
}

int cli_pool_add_set(cli_pool_t *p, const uint8_t *b, size_t len)
{
    Google__Protobuf__FileDescriptorSet *set =
        google__protobuf__file_descriptor_set__unpack(NULL, len, b);
    if (set == NULL)
        return -1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < set->n_file; i++) {
        size_t n = google__protobuf__file_descriptor_proto__get_packed_size(set->file[i]);
        uint8_t *buf = malloc(n ? n : 1);
        if (buf == NULL) {
            rc = -1;
            break;
        }
        google__protobuf__file_descriptor_proto__pack(set->file[i], buf);
        rc = cli_pool_add_file(p, buf, n);
        free(buf);
    }
    google__protobuf__file_descriptor_set__free_unpacked(set, NULL);
    return rc;
}

static int cmp_sym(const void *a, const void *b)
{
    return strcmp(((const cli_sym_t *)a)->name, ((const cli_sym_t *)b)->name);
}

const cli_sym_t *cli_pool_find(cli_pool_t *p, const char *name)
{
    if (name == NULL || p->nsyms == 0)
        return NULL;
    if (!p->sorted) {
        qsort(p->syms, p->nsyms, sizeof *p->syms, cmp_sym);
        p->sorted = true;
    }
    if (name[0] == '.')
        name++;
    cli_sym_t key = {.name = (char *)name};
    return bsearch(&key, p->syms, p->nsyms, sizeof *p->syms, cmp_sym);
}

const cli_msg_t *cli_pool_message(cli_pool_t *p, const char *name)
{
    const cli_sym_t *s = cli_pool_find(p, name);
    return s && s->kind == CLI_SYM_MESSAGE ? s->desc : NULL;
}

const cli_enum_t *cli_pool_enum(cli_pool_t *p, const char *name)
{
    const cli_sym_t *s = cli_pool_find(p, name);
    return s && s->kind == CLI_SYM_ENUM ? s->desc : NULL;
}

const char *cli_pool_name_of(cli_pool_t *p, const void *desc)
{
    for (size_t i = 0; i < p->nsyms; i++)
        if (p->syms[i].desc == desc)
            return p->syms[i].name;
    return "?";
}

bool cli_pool_is_proto3(cli_pool_t *p, const cli_msg_t *m)
{
    for (size_t i = 0; i < p->nsyms; i++)
        if (p->syms[i].desc == m)
            return p->syms[i].file->syntax &&
                   strcmp(p->syms[i].file->syntax, "proto3") == 0;
    return false;
}

long cli_pool_services(cli_pool_t *p, const cli_sym_t ***out)
{
    if (!p->sorted && p->nsyms > 0) {
        qsort(p->syms, p->nsyms, sizeof *p->syms, cmp_sym);
        p->sorted = true;
    }
    const cli_sym_t **v = calloc(p->nsyms + 1, sizeof *v);
    if (v == NULL)
        return -1;
    long n = 0;
    for (size_t i = 0; i < p->nsyms; i++)
        if (p->syms[i].kind == CLI_SYM_SERVICE)
            v[n++] = &p->syms[i];
    *out = v;
    return n;
}

const char *cli_json_name(const cli_field_t *f, char *buf, size_t cap)
{
    if (f->json_name && f->json_name[0])
        return f->json_name;
    size_t o = 0;
    bool up = false;
    for (const char *s = f->name; *s && o + 1 < cap; s++) {
        if (*s == '_') {
            up = true;
            continue;
        }
        buf[o++] = up && *s >= 'a' && *s <= 'z' ? (char)(*s - 32) : *s;
        up = false;
    }
    buf[o] = 0;
    return buf;
}

bool cli_is_map_entry(const cli_msg_t *m)
{
    return m && m->options && m->options->has_map_entry &&
           m->options->map_entry;
}

const cli_field_t *cli_field_by_number(const cli_msg_t *m, int32_t num)
{
    for (size_t i = 0; i < m->n_field; i++)
        if (m->field[i]->number == num)
            return m->field[i];
    return NULL;
}

const cli_field_t *cli_field_by_name(const cli_msg_t *m, const char *name)
{
    char buf[256];
    for (size_t i = 0; i < m->n_field; i++)
        if (strcmp(cli_json_name(m->field[i], buf, sizeof buf), name) == 0)
            return m->field[i];
    for (size_t i = 0; i < m->n_field; i++)
        if (strcmp(m->field[i]->name, name) == 0)
            return m->field[i];
    return NULL;
}
