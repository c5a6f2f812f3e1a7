/*
 * names.c -- the C names protoc-c gives to a .proto's messages, rebuilt
 * so that generated code can name them, and the names we give ours.
 *
 * protoc-c (protobuf-c 1.x, c_helpers.cc) builds a message's C type by
 * splitting its full name at '.', turning each piece into CamelCase
 * ("foo_bar" -> "FooBar") and joining them with "__"
 * (".my_pkg.v2.HTTPRequest" -> "MyPkg__V2__HTTPRequest"); its function
 * and descriptor prefix lowers each piece instead ("HTTPRequest" ->
 * "httprequest", "ABc2Def" -> "abc2_def") and joins them with "__".
 * Observed with protoc-c 1.4.1; tests/codegen checks it against protoc-c's
 * real output.  The (pb-c file).c_package option is not supported.
 */
#include "codegen.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

char *name_to_camel(const char *s)
{
    sb_t b = {0};
    bool up = true;
    for (; *s; s++) {
        if (*s == '_') {
            up = true;
            continue;
        }
        char c = up ? (char)toupper((unsigned char)*s) : *s;
        sb_putn(&b, &c, 1);
        up = false;
    }
    return sb_take(&b);
}

char *name_camel_to_lower(const char *s)
{
    sb_t b = {0};
    for (size_t i = 0; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i > 0 && isupper(c) && !isupper((unsigned char)s[i - 1]))
            sb_putn(&b, "_", 1);
        char l = (char)tolower(c);
        sb_putn(&b, &l, 1);
    }
    return sb_take(&b);
}

/* Appends the pieces of a dotted name, transformed by fn, joined by sep. */
static void put_pieces(sb_t *b, const char *dotted, char *(*fn)(const char *),
                       const char *sep)
{
    char *copy = xstrdup(dotted);
    char *save = NULL;
    for (char *p = strtok_r(copy, ".", &save); p; p = strtok_r(NULL, ".", &save)) {
        char *t = fn(p);
        if (b->len > 0)
            sb_puts(b, sep);
        sb_puts(b, t);
        free(t);
    }
    free(copy);
}

char *name_ours(const char *package, const char *name)
{
    sb_t b = {0};
    put_pieces(&b, package ? package : "", name_camel_to_lower, "_");
    put_pieces(&b, name, name_camel_to_lower, "_");
    /* One underscore between words, never two: "__" is protoc-c's. */
    sb_t o = {0};
    for (size_t i = 0; i < b.len; i++)
        if (!(b.s[i] == '_' && o.len > 0 && o.s[o.len - 1] == '_'))
            sb_putn(&o, &b.s[i], 1);
    sb_free(&b);
    return sb_take(&o);
}

char *name_from_path(const char *path)
{
    char *s = xstrdup(path);
    for (char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p))
            *p = '_';
    return s;
}

char *name_strip_proto(const char *path)
{
    size_t n = strlen(path);
    if (n > 6 && strcmp(path + n - 6, ".proto") == 0)
        n -= 6;
    char *s = xmalloc(n + 1);
    memcpy(s, path, n);
    s[n] = '\0';
    return s;
}

static void add_type(type_index_t *ix, const char *package, const char *nested)
{
    if (ix->n == ix->cap) {
        ix->cap = ix->cap ? ix->cap * 2 : 64;
        type_info_t *v = realloc(ix->v, ix->cap * sizeof *v);
        if (v == NULL)
            abort();
        ix->v = v;
    }
    type_info_t *t = &ix->v[ix->n++];
    t->full = package && *package ? xasprintf(".%s.%s", package, nested)
                                  : xasprintf(".%s", nested);
    sb_t c = {0}, l = {0};
    put_pieces(&c, t->full, name_to_camel, "__");
    put_pieces(&l, t->full, name_camel_to_lower, "__");
    t->c_type = sb_take(&c);
    t->c_lower = sb_take(&l);
}

static void add_messages(type_index_t *ix, const char *package,
                         const char *outer, message_proto_t *const *m,
                         size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *nested = outer ? xasprintf("%s.%s", outer, m[i]->name)
                             : xstrdup(m[i]->name);
        add_type(ix, package, nested);
        add_messages(ix, package, nested, m[i]->nested_type,
                     m[i]->n_nested_type);
        free(nested);
    }
}

void types_add_file(type_index_t *ix, const file_proto_t *f)
{
    add_messages(ix, f->package, NULL, f->message_type, f->n_message_type);
}

const type_info_t *types_find(const type_index_t *ix, const char *full)
{
    for (size_t i = 0; i < ix->n; i++)
        if (strcmp(ix->v[i].full, full) == 0)
            return &ix->v[i];
    return NULL;
}

void types_free(type_index_t *ix)
{
    for (size_t i = 0; i < ix->n; i++) {
        free(ix->v[i].full);
        free(ix->v[i].c_type);
        free(ix->v[i].c_lower);
    }
    free(ix->v);
    *ix = (type_index_t){0};
}
