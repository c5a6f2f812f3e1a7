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
 * real output.  The file option (pb-c file).c_package replaces the package
 * in all of them (not in the names on the wire).
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

/* The (pb-c file) extension of FileOptions and its c_package field, as
 * protobuf-c.proto numbers them.  The plugin's descriptor.proto does not
 * know the extension, so it arrives as an unknown field, whose bytes are a
 * ProtobufCFileOptions message: read field 6 from it by hand (protoc-c
 * does not generate code for its own protobuf-c.proto). */
#define PB_C_FILE_OPTIONS 1019
#define PB_C_C_PACKAGE 6

static bool varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

/* The last c_package in a serialized ProtobufCFileOptions, or NULL. */
static char *c_package_of(const uint8_t *p, size_t len)
{
    const uint8_t *end = p + len;
    char *found = NULL;
    uint64_t key, n;
    while (p < end && varint(&p, end, &key)) {
        switch (key & 7) {
        case 0: if (!varint(&p, end, &n)) goto bad; break;
        case 1: if (end - p < 8) goto bad; p += 8; break;
        case 5: if (end - p < 4) goto bad; p += 4; break;
        case 2:
            if (!varint(&p, end, &n) || n > (uint64_t)(end - p))
                goto bad;
            if (key >> 3 == PB_C_C_PACKAGE) {
                free(found);
                found = xmalloc(n + 1);
                memcpy(found, p, n);
                found[n] = '\0';
            }
            p += n;
            break;
        default: goto bad;
        }
    }
    return found;
bad:
    free(found);
    return NULL;
}

char *name_c_package(const file_proto_t *f)
{
    const Google__Protobuf__FileOptions *o = f->options;
    char *c = NULL;
    for (unsigned i = 0; o && i < o->base.n_unknown_fields; i++) {
        const ProtobufCMessageUnknownField *u = &o->base.unknown_fields[i];
        /* protobuf-c keeps a length-prefixed unknown field's length
         * varint in front of its bytes. */
        const uint8_t *p = u->data, *end = u->data + u->len;
        uint64_t n;
        if (u->tag == PB_C_FILE_OPTIONS &&
            u->wire_type == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED &&
            varint(&p, end, &n) && n == (uint64_t)(end - p)) {
            char *v = c_package_of(p, (size_t)n);
            if (v)
                free(c), c = v;
        }
    }
    return c && *c ? c : (free(c), xstrdup(f->package ? f->package : ""));
}

static void add_type(type_index_t *ix, const char *package,
                     const char *c_package, const char *nested)
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
    char *c_full = xasprintf("%s.%s", c_package, nested);
    sb_t c = {0}, l = {0};
    put_pieces(&c, c_full, name_to_camel, "__");
    put_pieces(&l, c_full, name_camel_to_lower, "__");
    free(c_full);
    t->c_type = sb_take(&c);
    t->c_lower = sb_take(&l);
}

static void add_messages(type_index_t *ix, const char *package,
                         const char *c_package, const char *outer,
                         message_proto_t *const *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *nested = outer ? xasprintf("%s.%s", outer, m[i]->name)
                             : xstrdup(m[i]->name);
        add_type(ix, package, c_package, nested);
        add_messages(ix, package, c_package, nested, m[i]->nested_type,
                     m[i]->n_nested_type);
        free(nested);
    }
}

void types_add_file(type_index_t *ix, const file_proto_t *f)
{
    char *c_package = name_c_package(f);
    add_messages(ix, f->package, c_package, NULL, f->message_type,
                 f->n_message_type);
    free(c_package);
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
