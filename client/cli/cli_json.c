/*
 * cli_json.c -- JSON <-> protobuf-c through descriptors (see cli_json.h).
 *
 * The reader is a recursive-descent parser that writes straight into the
 * message structs at the offsets the descriptors give; everything it
 * allocates uses malloc, so protobuf_c_message_free_unpacked(m, NULL)
 * frees a parsed message.  Nesting is bounded (64) so hostile input cannot
 * exhaust the stack.
 */
#include "cli_json.h"

#include "rpc_internal.h" /* base64 */

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

struct rd {
    const char *p;
    char *err;
    size_t errlen;
    int depth;
};

static bool fail(struct rd *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, r->errlen, fmt, ap);
    va_end(ap);
    return false;
}

static void ws(struct rd *r)
{
    while (*r->p && isspace((unsigned char)*r->p))
        r->p++;
}

int cli_json_at_end(const char *p)
{
    while (*p && isspace((unsigned char)*p))
        p++;
    return *p == '\0';
}

static void put_utf8(char **o, unsigned cp)
{
    char *d = *o;
    if (cp < 0x80) {
        *d++ = (char)cp;
    } else if (cp < 0x800) {
        *d++ = (char)(0xC0 | cp >> 6);
        *d++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *d++ = (char)(0xE0 | cp >> 12);
        *d++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *d++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *d++ = (char)(0xF0 | cp >> 18);
        *d++ = (char)(0x80 | (cp >> 12 & 0x3F));
        *d++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *d++ = (char)(0x80 | (cp & 0x3F));
    }
    *o = d;
}

static int hex4(const char *s, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int c = (unsigned char)s[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        *v = *v << 4 | (unsigned)d;
    }
    return 0;
}

/* A JSON string at r->p -> malloc'ed UTF-8 (NUL-terminated), length. */
static char *str(struct rd *r, size_t *len)
{
    if (*r->p != '"') {
        fail(r, "expected a string");
        return NULL;
    }
    const char *s = ++r->p;
    size_t n = 0;
    while (s[n] && s[n] != '"')
        n += s[n] == '\\' && s[n + 1] ? 2 : 1;
    if (s[n] != '"') {
        fail(r, "unterminated string");
        return NULL;
    }
    char *out = malloc(n * 2 + 1), *o = out;
    if (out == NULL) {
        fail(r, "out of memory");
        return NULL;
    }
    while (*r->p != '"') {
        char c = *r->p++;
        if (c != '\\') {
            *o++ = c;
            continue;
        }
        c = *r->p++;
        unsigned cp;
        switch (c) {
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 'r': *o++ = '\r'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'u':
            if (hex4(r->p, &cp) != 0) {
                free(out);
                fail(r, "bad \\u escape");
                return NULL;
            }
            r->p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && r->p[0] == '\\' &&
                r->p[1] == 'u') {
                unsigned lo;
                if (hex4(r->p + 2, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    r->p += 6;
                }
            }
            put_utf8(&o, cp);
            break;
        default: *o++ = c; break; /* \" \\ \/ */
        }
    }
    r->p++;
    *o = 0;
    *len = (size_t)(o - out);
    return out;
}

/* A number (or a string holding one) as text in buf. */
static bool numtext(struct rd *r, char *buf, size_t cap)
{
    if (*r->p == '"') {
        size_t n;
        char *s = str(r, &n);
        if (s == NULL)
            return false;
        snprintf(buf, cap, "%s", s);
        free(s);
        return true;
    }
    size_t n = strspn(r->p, "+-0123456789.eE");
    if (n == 0 || n >= cap)
        return fail(r, "expected a number");
    memcpy(buf, r->p, n);
    buf[n] = 0;
    r->p += n;
    return true;
}

static bool literal(struct rd *r, const char *lit)
{
    size_t n = strlen(lit);
    if (strncmp(r->p, lit, n) != 0)
        return false;
    r->p += n;
    return true;
}

static bool parse_message_into(struct rd *r, ProtobufCMessage *m);

static size_t scalar_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    default:
        return 4;
    }
}

/* One value of field f into dst. */
static bool value(struct rd *r, const ProtobufCFieldDescriptor *f, void *dst)
{
    char num[64];
    char *end;
    ws(r);
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: {
        if (!numtext(r, num, sizeof num))
            return false;
        errno = 0;
        long v = strtol(num, &end, 10);
        if (*end || errno || v < INT32_MIN || v > INT32_MAX)
            return fail(r, "%s: not an int32: %s", f->name, num);
        *(int32_t *)dst = (int32_t)v;
        return true;
    }
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32: {
        if (!numtext(r, num, sizeof num))
            return false;
        errno = 0;
        unsigned long v = strtoul(num, &end, 10);
        if (*end || errno || v > UINT32_MAX || num[0] == '-')
            return fail(r, "%s: not a uint32: %s", f->name, num);
        *(uint32_t *)dst = (uint32_t)v;
        return true;
    }
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: {
        if (!numtext(r, num, sizeof num))
            return false;
        errno = 0;
        long long v = strtoll(num, &end, 10);
        if (*end || errno)
            return fail(r, "%s: not an int64: %s", f->name, num);
        *(int64_t *)dst = v;
        return true;
    }
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: {
        if (!numtext(r, num, sizeof num))
            return false;
        errno = 0;
        unsigned long long v = strtoull(num, &end, 10);
        if (*end || errno || num[0] == '-')
            return fail(r, "%s: not a uint64: %s", f->name, num);
        *(uint64_t *)dst = v;
        return true;
    }
    case PROTOBUF_C_TYPE_FLOAT: case PROTOBUF_C_TYPE_DOUBLE: {
        if (!numtext(r, num, sizeof num))
            return false;
        double v = strtod(num, &end);
        if (*end)
            return fail(r, "%s: not a number: %s", f->name, num);
        if (f->type == PROTOBUF_C_TYPE_FLOAT)
            *(float *)dst = (float)v;
        else
            *(double *)dst = v;
        return true;
    }
    case PROTOBUF_C_TYPE_BOOL:
        if (literal(r, "true"))
            *(protobuf_c_boolean *)dst = 1;
        else if (literal(r, "false"))
            *(protobuf_c_boolean *)dst = 0;
        else
            return fail(r, "%s: expected true or false", f->name);
        return true;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *e = f->descriptor;
        if (*r->p == '"') {
            size_t n;
            char *s = str(r, &n);
            if (s == NULL)
                return false;
            const ProtobufCEnumValue *ev =
                protobuf_c_enum_descriptor_get_value_by_name(e, s);
            if (ev == NULL) {
                fail(r, "%s: no value %s in %s", f->name, s, e->name);
                free(s);
                return false;
            }
            free(s);
            *(int *)dst = ev->value;
            return true;
        }
        if (!numtext(r, num, sizeof num))
            return false;
        *(int *)dst = atoi(num);
        return true;
    }
    case PROTOBUF_C_TYPE_STRING: {
        size_t n;
        char *s = str(r, &n);
        if (s == NULL)
            return false;
        *(char **)dst = s;
        return true;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        size_t n;
        char *s = str(r, &n);
        if (s == NULL)
            return false;
        for (size_t i = 0; i < n; i++) /* URL-safe alphabet too */
            s[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
        while (n > 0 && s[n - 1] == '=')
            n--;
        uint8_t *b = malloc(rpc__base64_decoded_max(n) + 1);
        long k = b ? rpc__base64_decode(s, n, b) : -1;
        free(s);
        if (k < 0) {
            free(b);
            return fail(r, "%s: bad base64", f->name);
        }
        ProtobufCBinaryData *bd = dst;
        bd->data = b;
        bd->len = (size_t)k;
        return true;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessageDescriptor *d = f->descriptor;
        ProtobufCMessage *sub = malloc(d->sizeof_message);
        if (sub == NULL)
            return fail(r, "out of memory");
        d->message_init(sub);
        *(ProtobufCMessage **)dst = sub; /* owned by the parent from now */
        return parse_message_into(r, sub);
    }
    }
    return fail(r, "%s: unsupported type", f->name);
}

static bool name_matches(const ProtobufCFieldDescriptor *f, const char *key)
{
    if (strcmp(f->name, key) == 0)
        return true;
    /* lowerCamelCase of the proto name. */
    const char *a = f->name, *b = key;
    while (*a && *b) {
        if (*a == '_' && a[1]) {
            a++;
            if (toupper((unsigned char)*a) != *b)
                return false;
        } else if (*a != *b) {
            return false;
        }
        a++;
        b++;
    }
    return *a == 0 && *b == 0;
}

static bool field(struct rd *r, ProtobufCMessage *m, const char *key)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const ProtobufCFieldDescriptor *f = NULL;
    for (unsigned i = 0; i < d->n_fields && f == NULL; i++)
        if (name_matches(&d->fields[i], key))
            f = &d->fields[i];
    if (f == NULL)
        return fail(r, "%s has no field %s", d->name, key);
    ws(r);
    if (literal(r, "null"))
        return true;
    char *base = (char *)m;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        if (*r->p != '[')
            return fail(r, "%s: expected an array", f->name);
        r->p++;
        size_t sz = scalar_size(f->type);
        size_t *count = (size_t *)(base + f->quantifier_offset);
        void **arr = (void **)(base + f->offset);
        ws(r);
        if (*r->p == ']') {
            r->p++;
            return true;
        }
        for (;;) {
            void *na = realloc(*arr, (*count + 1) * sz);
            if (na == NULL)
                return fail(r, "out of memory");
            *arr = na;
            memset((char *)na + *count * sz, 0, sz);
            (*count)++;
            if (!value(r, f, (char *)na + (*count - 1) * sz))
                return false;
            ws(r);
            if (*r->p == ',') {
                r->p++;
                continue;
            }
            if (*r->p == ']') {
                r->p++;
                return true;
            }
            return fail(r, "%s: expected , or ]", f->name);
        }
    }
    if (f->type == PROTOBUF_C_TYPE_MESSAGE && *(void **)(base + f->offset))
        return fail(r, "%s given twice", f->name);
    if (!value(r, f, base + f->offset))
        return false;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        *(uint32_t *)(base + f->quantifier_offset) = f->id;
    else if (f->label == PROTOBUF_C_LABEL_OPTIONAL &&
             f->type != PROTOBUF_C_TYPE_MESSAGE &&
             f->type != PROTOBUF_C_TYPE_STRING)
        *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
    return true;
}

static bool parse_message_into(struct rd *r, ProtobufCMessage *m)
{
    if (++r->depth > MAX_DEPTH)
        return fail(r, "nesting too deep");
    ws(r);
    if (*r->p != '{')
        return fail(r, "expected {");
    r->p++;
    ws(r);
    if (*r->p == '}') {
        r->p++;
        r->depth--;
        return true;
    }
    for (;;) {
        ws(r);
        size_t n;
        char *key = str(r, &n);
        if (key == NULL)
            return false;
        ws(r);
        if (*r->p != ':') {
            fail(r, "expected : after \"%s\"", key);
            free(key);
            return false;
        }
        r->p++;
        bool ok = field(r, m, key);
        free(key);
        if (!ok)
            return false;
        ws(r);
        if (*r->p == ',') {
            r->p++;
            continue;
        }
        if (*r->p == '}') {
            r->p++;
            r->depth--;
            return true;
        }
        return fail(r, "expected , or }");
    }
}

ProtobufCMessage *cli_json_parse(const ProtobufCMessageDescriptor *desc,
                                 const char **p, char *err, size_t errlen)
{
    struct rd r = {*p, err, errlen, 0};
    ProtobufCMessage *m = malloc(desc->sizeof_message);
    if (m == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    desc->message_init(m);
    if (!parse_message_into(&r, m)) {
        protobuf_c_message_free_unpacked(m, NULL);
        return NULL;
    }
    *p = r.p;
    return m;
}

/* ---- writer ---------------------------------------------------------------- */

static void camel(FILE *o, const char *name)
{
    for (const char *a = name; *a; a++) {
        if (*a == '_' && a[1])
            fputc(toupper((unsigned char)*++a), o);
        else
            fputc(*a, o);
    }
}

static void jstr(FILE *o, const char *s, size_t n)
{
    fputc('"', o);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(o, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", o);
        else if (c == '\t')
            fputs("\\t", o);
        else if (c == '\r')
            fputs("\\r", o);
        else if (c < 0x20)
            fprintf(o, "\\u%04x", c);
        else
            fputc(c, o);
    }
    fputc('"', o);
}

static void print_msg(FILE *o, const ProtobufCMessage *m, int ind);

static void print_value(FILE *o, const ProtobufCFieldDescriptor *f,
                        const void *v, int ind)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        fprintf(o, "%d", *(const int32_t *)v); break;
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
        fprintf(o, "%u", *(const uint32_t *)v); break;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        fprintf(o, "\"%lld\"", (long long)*(const int64_t *)v); break;
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        fprintf(o, "\"%llu\"", (unsigned long long)*(const uint64_t *)v);
        break;
    case PROTOBUF_C_TYPE_FLOAT: fprintf(o, "%.9g", *(const float *)v); break;
    case PROTOBUF_C_TYPE_DOUBLE: fprintf(o, "%.17g", *(const double *)v); break;
    case PROTOBUF_C_TYPE_BOOL:
        fputs(*(const protobuf_c_boolean *)v ? "true" : "false", o); break;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(
            f->descriptor, *(const int *)v);
        if (ev)
            fprintf(o, "\"%s\"", ev->name);
        else
            fprintf(o, "%d", *(const int *)v);
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)v;
        jstr(o, s ? s : "", s ? strlen(s) : 0);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = v;
        size_t n = rpc__base64_encoded_len(b->len);
        char *s = malloc(n + 4);
        if (s == NULL) {
            fputs("\"\"", o);
            break;
        }
        rpc__base64_encode(b->data, b->len, s);
        while (n % 4)
            s[n++] = '=';
        s[n] = 0;
        fprintf(o, "\"%s\"", s);
        free(s);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        print_msg(o, *(ProtobufCMessage *const *)v, ind);
        break;
    }
}

static bool is_default(const ProtobufCFieldDescriptor *f, const void *v)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)v;
        return s == NULL || s[0] == 0;
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)v)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(void *const *)v == NULL;
    default: {
        static const char zero[8];
        return memcmp(v, zero, scalar_size(f->type)) == 0;
    }
    }
}

static void print_msg(FILE *o, const ProtobufCMessage *m, int ind)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    bool first = true;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const void *v = base + f->offset;
        size_t count = 1;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            count = *(const size_t *)(base + f->quantifier_offset);
            if (count == 0)
                continue;
        } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(const uint32_t *)(base + f->quantifier_offset) != f->id)
                continue;
        } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL &&
                   f->type != PROTOBUF_C_TYPE_MESSAGE &&
                   f->type != PROTOBUF_C_TYPE_STRING) {
            if (!*(const protobuf_c_boolean *)(base + f->quantifier_offset))
                continue;
        } else if (is_default(f, v)) {
            continue;
        }
        fprintf(o, "%s\n%*s\"", first ? "{" : ",", ind + 2, "");
        first = false;
        camel(o, f->name);
        fputs("\": ", o);
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            const char *arr = *(char *const *)v;
            size_t sz = scalar_size(f->type);
            fputc('[', o);
            for (size_t k = 0; k < count; k++) {
                fprintf(o, "%s\n%*s", k ? "," : "", ind + 4, "");
                print_value(o, f, arr + k * sz, ind + 4);
            }
            fprintf(o, "\n%*s]", ind + 2, "");
        } else {
            print_value(o, f, v, ind + 2);
        }
    }
    if (first)
        fputs("{}", o);
    else
        fprintf(o, "\n%*s}", ind, "");
}

void cli_json_print(FILE *out, const ProtobufCMessage *m)
{
    print_msg(out, m, 0);
    fputc('\n', out);
}
