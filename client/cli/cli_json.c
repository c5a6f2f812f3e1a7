/*
 * cli_json.c -- JSON <-> protobuf wire through DescriptorProtos (see
 * cli_json.h).
 *
 * Both directions go through a small JSON tree (struct cli_jv):
 *
 *   input:  text --parse--> tree --encode(DescriptorProto)--> wire bytes
 *   output: wire --decode(DescriptorProto)--> tree --print--> JSON | text
 *
 * The tree makes the awkward parts of proto3 JSON easy: an Any's "@type"
 * may come after its fields, duplicate keys resolve to the last one, and
 * the text format reuses the decoder (keys by proto name, well-known types
 * as plain messages).  The wire writer emits repeated scalars unpacked
 * (every parser accepts both forms).  Nesting is bounded (MAX_DEPTH) in
 * both directions.
 */
#include "cli_json.h"
#include "cli_jv.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int errf(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- the tree ------------------------------------------------------------- */

void cli_jv_clear(cli_jv_t *v)
{
    free(v->s);
    for (size_t i = 0; i < v->n; i++) {
        cli_jv_clear(&v->v[i]);
        if (v->k)
            free(v->k[i]);
    }
    free(v->v);
    free(v->k);
    memset(v, 0, sizeof *v);
}

void cli_jv_free(cli_jv_t *v)
{
    if (v) {
        cli_jv_clear(v);
        free(v);
    }
}

/* Appends a member/element; returns it (zeroed) or NULL. */
cli_jv_t *cli_jv_push(cli_jv_t *o, const char *key)
{
    if (o->n == o->cap) {
        size_t c = o->cap ? o->cap * 2 : 4;
        cli_jv_t *nv = realloc(o->v, c * sizeof *nv);
        if (nv == NULL)
            return NULL;
        o->v = nv;
        if (o->t == J_OBJ) {
            char **nk = realloc(o->k, c * sizeof *nk);
            if (nk == NULL)
                return NULL;
            o->k = nk;
        }
        o->cap = c;
    }
    if (o->t == J_OBJ) {
        o->k[o->n] = strdup(key);
        if (o->k[o->n] == NULL)
            return NULL;
    }
    cli_jv_t *e = &o->v[o->n++];
    memset(e, 0, sizeof *e);
    return e;
}

int cli_jv_setstr(cli_jv_t *v, int t, const char *s, size_t n)
{
    v->t = t;
    v->s = malloc(n + 1);
    if (v->s == NULL)
        return -1;
    if (n)
        memcpy(v->s, s, n);
    v->s[n] = 0;
    v->slen = n;
    return 0;
}

/* The last member named key (duplicates: last wins), or NULL. */
static const cli_jv_t *jv_get(const cli_jv_t *o, const char *key)
{
    for (size_t i = o->n; i-- > 0;)
        if (strcmp(o->k[i], key) == 0)
            return &o->v[i];
    return NULL;
}

/* ---- JSON parser ------------------------------------------------------------ */

struct rd {
    const char *p;
    char *err;
    size_t errlen;
    int depth;
};

static void ws(struct rd *r)
{
    while (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')
        r->p++;
}

int cli_json_at_end(const char *p)
{
    while (*p && isspace((unsigned char)*p))
        p++;
    return *p == '\0';
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

static size_t put_utf8(char *d, unsigned cp)
{
    if (cp < 0x80) { d[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        d[0] = (char)(0xC0 | cp >> 6); d[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xE0 | cp >> 12); d[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        d[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | cp >> 18); d[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    d[2] = (char)(0x80 | (cp >> 6 & 0x3F)); d[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int parse_str(struct rd *r, cli_jv_t *v)
{
    const char *s = ++r->p; /* past '"' */
    size_t n = 0;
    while (s[n] && s[n] != '"') {
        if ((unsigned char)s[n] < 0x20)
            return errf(r->err, r->errlen, "control character in string");
        n += s[n] == '\\' && s[n + 1] ? 2 : 1;
    }
    if (s[n] != '"')
        return errf(r->err, r->errlen, "unterminated string");
    char *out = malloc(n * 2 + 1), *o = out;
    if (out == NULL)
        return errf(r->err, r->errlen, "out of memory");
    while (*r->p != '"') {
        char c = *r->p++;
        if (c != '\\') {
            *o++ = c;
            continue;
        }
        unsigned cp;
        switch (c = *r->p++) {
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 'r': *o++ = '\r'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case '"': case '\\': case '/': *o++ = c; break;
        case 'u':
            if (hex4(r->p, &cp) != 0) {
                free(out);
                return errf(r->err, r->errlen, "bad \\u escape");
            }
            r->p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && r->p[0] == '\\' && r->p[1] == 'u') {
                unsigned lo;
                if (hex4(r->p + 2, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    r->p += 6;
                }
            }
            o += put_utf8(o, cp);
            break;
        default:
            free(out);
            return errf(r->err, r->errlen, "bad escape \\%c", c);
        }
    }
    r->p++;
    v->t = J_STR;
    v->s = out;
    v->slen = (size_t)(o - out);
    *o = 0;
    return 0;
}

static int parse_val(struct rd *r, cli_jv_t *v)
{
    ws(r);
    if (++r->depth > MAX_DEPTH)
        return errf(r->err, r->errlen, "nesting deeper than %d", MAX_DEPTH);
    int rc = 0;
    char c = *r->p;
    if (c == '{' || c == '[') {
        v->t = c == '{' ? J_OBJ : J_ARR;
        char close = c == '{' ? '}' : ']';
        r->p++;
        ws(r);
        if (*r->p == close) {
            r->p++;
        } else {
            for (;;) {
                cli_jv_t key = {0};
                ws(r);
                if (v->t == J_OBJ) {
                    if (*r->p != '"') {
                        rc = *r->p == 0
                            ? errf(r->err, r->errlen, "unexpected end of input")
                            : errf(r->err, r->errlen, "expected a field name at '%.10s'", r->p);
                        break;
                    }
                    if ((rc = parse_str(r, &key)) != 0)
                        break;
                    ws(r);
                    if (*r->p != ':') {
                        cli_jv_clear(&key);
                        rc = errf(r->err, r->errlen, "expected ':' after \"%s\"", key.s);
                        break;
                    }
                    r->p++;
                }
                cli_jv_t *e = cli_jv_push(v, key.s ? key.s : "");
                cli_jv_clear(&key);
                if (e == NULL) {
                    rc = errf(r->err, r->errlen, "out of memory");
                    break;
                }
                if ((rc = parse_val(r, e)) != 0)
                    break;
                ws(r);
                if (*r->p == ',') {
                    r->p++;
                    continue;
                }
                if (*r->p == close) {
                    r->p++;
                    break;
                }
                rc = *r->p == 0
                    ? errf(r->err, r->errlen, "unexpected end of input")
                    : errf(r->err, r->errlen, "expected ',' or '%c' at '%.10s'", close, r->p);
                break;
            }
        }
    } else if (c == '"') {
        rc = parse_str(r, v);
    } else if (strncmp(r->p, "true", 4) == 0 || strncmp(r->p, "false", 5) == 0) {
        v->t = J_BOOL;
        v->b = c == 't';
        r->p += v->b ? 4 : 5;
    } else if (strncmp(r->p, "null", 4) == 0) {
        v->t = J_NULL;
        r->p += 4;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        const char *s = r->p;
        if (*r->p == '-')
            r->p++;
        if (!isdigit((unsigned char)*r->p))
            return errf(r->err, r->errlen, "bad number");
        while (isdigit((unsigned char)*r->p)) r->p++;
        if (*r->p == '.') {
            r->p++;
            if (!isdigit((unsigned char)*r->p))
                return errf(r->err, r->errlen, "bad number");
            while (isdigit((unsigned char)*r->p)) r->p++;
        }
        if (*r->p == 'e' || *r->p == 'E') {
            r->p++;
            if (*r->p == '+' || *r->p == '-') r->p++;
            if (!isdigit((unsigned char)*r->p))
                return errf(r->err, r->errlen, "bad number");
            while (isdigit((unsigned char)*r->p)) r->p++;
        }
        if (cli_jv_setstr(v, J_NUM, s, (size_t)(r->p - s)) != 0)
            rc = errf(r->err, r->errlen, "out of memory");
    } else if (c == 0) {
        rc = errf(r->err, r->errlen, "unexpected end of input");
    } else {
        rc = errf(r->err, r->errlen, "invalid character '%c' looking for beginning of value", c);
    }
    r->depth--;
    return rc;
}

cli_jv_t *cli_jv_parse(const char **p, char *err, size_t errlen)
{
    struct rd r = {.p = *p, .err = err, .errlen = errlen};
    cli_jv_t *v = calloc(1, sizeof *v);
    if (v == NULL) {
        errf(err, errlen, "out of memory");
        return NULL;
    }
    if (parse_val(&r, v) != 0) {
        cli_jv_free(v);
        return NULL;
    }
    *p = r.p;
    return v;
}

/* ---- wire writing -------------------------------------------------------------- */

static int put(cli_buf_t *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap : 64;
        while (c < b->n + n)
            c *= 2;
        uint8_t *nb = realloc(b->b, c);
        if (nb == NULL)
            return -1;
        b->b = nb;
        b->cap = c;
    }
    if (n)
        memcpy(b->b + b->n, d, n);
    b->n += n;
    return 0;
}

static int put_varint(cli_buf_t *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    do {
        t[n++] = (uint8_t)((v & 0x7F) | (v >= 0x80 ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return put(b, t, n);
}

static int put_tag(cli_buf_t *b, int32_t num, int wt)
{
    return put_varint(b, (uint64_t)num << 3 | (uint64_t)wt);
}

static int put_len(cli_buf_t *b, int32_t num, const void *d, size_t n)
{
    return put_tag(b, num, 2) || put_varint(b, n) || put(b, d, n) ? -1 : 0;
}

static int put_fixed(cli_buf_t *b, uint64_t v, int bytes)
{
    uint8_t t[8];
    for (int i = 0; i < bytes; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    return put(b, t, (size_t)bytes);
}

/* ---- encoding -------------------------------------------------------------------- */

struct enc {
    cli_pool_t *pool;
    bool allow_unknown;
    char *err;
    size_t errlen;
    int depth;
};

static int enc_message(struct enc *e, const cli_msg_t *m, const cli_jv_t *v,
                       cli_buf_t *out);

static const char *numtext(const cli_jv_t *v)
{
    return v->t == J_NUM || v->t == J_STR ? v->s : NULL;
}

/* An integer from a JSON number or string: exponents and zero fractions
 * allowed, range checked. */
static int get_int(struct enc *e, const cli_jv_t *v, bool is_unsigned,
                   int bits, int64_t *si, uint64_t *ui, const char *what)
{
    const char *s = numtext(v);
    if (s == NULL || *s == 0 || isspace((unsigned char)*s))
        return errf(e->err, e->errlen, "%s: expected an integer", what);
    char *end;
    errno = 0;
    if (strpbrk(s, ".eE") == NULL) {
        if (is_unsigned) {
            if (*s == '-')
                return errf(e->err, e->errlen, "%s: %s is negative", what, s);
            *ui = strtoull(s, &end, 10);
        } else {
            *si = strtoll(s, &end, 10);
        }
        if (*end || errno)
            return errf(e->err, e->errlen, "%s: invalid integer %s", what, s);
    } else {
        long double d = strtold(s, &end);
        if (*end || errno || d != floorl(d))
            return errf(e->err, e->errlen, "%s: invalid integer %s", what, s);
        if (is_unsigned) {
            if (d < 0 || d >= 18446744073709551616.0L)
                return errf(e->err, e->errlen, "%s: %s out of range", what, s);
            *ui = (uint64_t)d;
        } else {
            if (d < -9223372036854775808.0L || d >= 9223372036854775808.0L)
                return errf(e->err, e->errlen, "%s: %s out of range", what, s);
            *si = (int64_t)d;
        }
    }
    if (bits == 32 && ((is_unsigned && *ui > UINT32_MAX) ||
                       (!is_unsigned && (*si < INT32_MIN || *si > INT32_MAX))))
        return errf(e->err, e->errlen, "%s: %s out of range", what, s);
    return 0;
}

static int get_float(struct enc *e, const cli_jv_t *v, bool is_float,
                     double *out, const char *what)
{
    const char *s = numtext(v);
    if (s == NULL || *s == 0)
        return errf(e->err, e->errlen, "%s: expected a number", what);
    if (v->t == J_STR && strcmp(s, "NaN") == 0) { *out = NAN; return 0; }
    if (v->t == J_STR && strcmp(s, "Infinity") == 0) { *out = INFINITY; return 0; }
    if (v->t == J_STR && strcmp(s, "-Infinity") == 0) { *out = -INFINITY; return 0; }
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (*end || isspace((unsigned char)*s) || !isfinite(d) ||
        (errno == ERANGE && fabs(d) > 1))
        return errf(e->err, e->errlen, "%s: invalid number %s", what, s);
    if (is_float && fabs(d) > FLT_MAX)
        return errf(e->err, e->errlen, "%s: %s out of float range", what, s);
    *out = d;
    return 0;
}

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

/* Standard or URL-safe base64, padded or not. */
static int b64dec(const char *s, size_t n, cli_buf_t *out)
{
    while (n && s[n - 1] == '=')
        n--;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int d = b64val((unsigned char)s[i]);
        if (d < 0)
            return -1;
        acc = acc << 6 | (uint32_t)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            uint8_t byte = (uint8_t)(acc >> bits);
            if (put(out, &byte, 1))
                return -1;
        }
    }
    return bits >= 6 ? -1 : 0;
}

static const char *b64chars =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *cli_b64enc(const uint8_t *d, size_t n)
{
    char *o = malloc((n + 2) / 3 * 4 + 1), *p = o;
    if (o == NULL)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) |
                     (i + 2 < n ? d[i + 2] : 0);
        *p++ = b64chars[v >> 18 & 63];
        *p++ = b64chars[v >> 12 & 63];
        *p++ = i + 1 < n ? b64chars[v >> 6 & 63] : '=';
        *p++ = i + 2 < n ? b64chars[v & 63] : '=';
    }
    *p = 0;
    return o;
}

static const char *wkt_name(struct enc *e, const cli_msg_t *m)
{
    const char *n = cli_pool_name_of(e->pool, m);
    return strncmp(n, "google.protobuf.", 16) == 0 ? n + 16 : NULL;
}

bool cli_is_wrapper(const char *w)
{
    static const char *const names[] = {"DoubleValue", "FloatValue",
        "Int64Value", "UInt64Value", "Int32Value", "UInt32Value", "BoolValue",
        "StringValue", "BytesValue", NULL};
    for (int i = 0; w && names[i]; i++)
        if (strcmp(w, names[i]) == 0)
            return true;
    return false;
}

bool cli_special_json(const char *w)
{
    return w && (cli_is_wrapper(w) || !strcmp(w, "Timestamp") ||
                 !strcmp(w, "Duration") || !strcmp(w, "Struct") ||
                 !strcmp(w, "Value") || !strcmp(w, "ListValue") ||
                 !strcmp(w, "FieldMask") || !strcmp(w, "Any"));
}

/* One non-repeated value of field f (number num) into out. */
static int enc_value(struct enc *e, const cli_field_t *f, int32_t num,
                     const cli_jv_t *v, cli_buf_t *out)
{
    int64_t si = 0;
    uint64_t ui = 0;
    double d = 0;
    const char *what = f->name;
    switch ((int)f->type) {
    case T_INT32: case T_SINT32: case T_SFIXED32:
    case T_INT64: case T_SINT64: case T_SFIXED64: {
        int bits = (int)f->type == T_INT32 || (int)f->type == T_SINT32 || (int)f->type == T_SFIXED32 ? 32 : 64;
        if (get_int(e, v, false, bits, &si, &ui, what))
            return -1;
        if ((int)f->type == T_SFIXED32)
            return put_tag(out, num, 5) || put_fixed(out, (uint32_t)si, 4);
        if ((int)f->type == T_SFIXED64)
            return put_tag(out, num, 1) || put_fixed(out, (uint64_t)si, 8);
        if ((int)f->type == T_SINT32 || (int)f->type == T_SINT64)
            return put_tag(out, num, 0) ||
                   put_varint(out, ((uint64_t)si << 1) ^ (uint64_t)(si >> 63));
        return put_tag(out, num, 0) || put_varint(out, (uint64_t)si);
    }
    case T_UINT32: case T_FIXED32: case T_UINT64: case T_FIXED64: {
        int bits = (int)f->type == T_UINT32 || (int)f->type == T_FIXED32 ? 32 : 64;
        if (get_int(e, v, true, bits, &si, &ui, what))
            return -1;
        if ((int)f->type == T_FIXED32)
            return put_tag(out, num, 5) || put_fixed(out, ui, 4);
        if ((int)f->type == T_FIXED64)
            return put_tag(out, num, 1) || put_fixed(out, ui, 8);
        return put_tag(out, num, 0) || put_varint(out, ui);
    }
    case T_DOUBLE: case T_FLOAT: {
        if (get_float(e, v, (int)f->type == T_FLOAT, &d, what))
            return -1;
        if ((int)f->type == T_DOUBLE) {
            uint64_t bitsv;
            memcpy(&bitsv, &d, 8);
            return put_tag(out, num, 1) || put_fixed(out, bitsv, 8);
        }
        float fl = (float)d;
        uint32_t b32;
        memcpy(&b32, &fl, 4);
        return put_tag(out, num, 5) || put_fixed(out, b32, 4);
    }
    case T_BOOL:
        if (v->t != J_BOOL)
            return errf(e->err, e->errlen, "%s: expected true or false", what);
        return put_tag(out, num, 0) || put_varint(out, (uint64_t)v->b);
    case T_STRING:
        if (v->t != J_STR)
            return errf(e->err, e->errlen, "%s: expected a string", what);
        return put_len(out, num, v->s, v->slen);
    case T_BYTES: {
        if (v->t != J_STR)
            return errf(e->err, e->errlen, "%s: expected base64 bytes", what);
        cli_buf_t tmp = {0};
        if (b64dec(v->s, v->slen, &tmp) != 0) {
            free(tmp.b);
            return errf(e->err, e->errlen, "%s: invalid base64: %s", what, v->s);
        }
        int rc = put_len(out, num, tmp.b, tmp.n);
        free(tmp.b);
        return rc;
    }
    case T_ENUM: {
        const cli_enum_t *en = cli_pool_enum(e->pool, f->type_name);
        if (v->t == J_NULL) /* google.protobuf.NullValue */
            return put_tag(out, num, 0) || put_varint(out, 0);
        if (v->t == J_STR && en) {
            for (size_t i = 0; i < en->n_value; i++)
                if (strcmp(en->value[i]->name, v->s) == 0)
                    return put_tag(out, num, 0) ||
                           put_varint(out, (uint64_t)(int64_t)en->value[i]->number);
            if (!strpbrk(v->s, "0123456789") || *v->s == 0)
                return errf(e->err, e->errlen, "%s: unknown value \"%s\" for enum %s",
                            what, v->s, f->type_name + 1);
        }
        if (get_int(e, v, false, 32, &si, &ui, what))
            return -1;
        return put_tag(out, num, 0) || put_varint(out, (uint64_t)si);
    }
    case T_MESSAGE: case T_GROUP: {
        const cli_msg_t *m = cli_pool_message(e->pool, f->type_name);
        if (m == NULL)
            return errf(e->err, e->errlen, "%s: unknown message type %s", what,
                        f->type_name);
        cli_buf_t tmp = {0};
        int rc = enc_message(e, m, v, &tmp);
        if (rc == 0)
            rc = put_len(out, num, tmp.b, tmp.n) ? errf(e->err, e->errlen, "out of memory") : 0;
        free(tmp.b);
        return rc;
    }
    }
    return errf(e->err, e->errlen, "%s: unsupported field type %d", what, f->type);
}

/* A map key (always a JSON string) as field f of an entry. */
static int enc_map_key(struct enc *e, const cli_field_t *kf, const char *key,
                       cli_buf_t *out)
{
    cli_jv_t k = {.t = J_STR, .s = (char *)key, .slen = strlen(key)};
    if ((int)kf->type == T_BOOL) {
        if (strcmp(key, "true") && strcmp(key, "false"))
            return errf(e->err, e->errlen, "invalid bool map key %s", key);
        k.t = J_BOOL;
        k.b = key[0] == 't';
    }
    return enc_value(e, kf, 1, &k, out);
}

static bool is_null_value_field(const cli_field_t *f)
{
    return f->type_name && (!strcmp(f->type_name, ".google.protobuf.Value") ||
                            !strcmp(f->type_name, ".google.protobuf.NullValue"));
}

static int enc_wkt(struct enc *e, const char *w, const cli_msg_t *m,
                   const cli_jv_t *v, cli_buf_t *out);

static int enc_message(struct enc *e, const cli_msg_t *m, const cli_jv_t *v,
                       cli_buf_t *out)
{
    if (++e->depth > MAX_DEPTH)
        return errf(e->err, e->errlen, "nesting deeper than %d", MAX_DEPTH);
    const char *w = wkt_name(e, m);
    int rc = 0;
    if (cli_special_json(w)) {
        rc = enc_wkt(e, w, m, v, out);
        e->depth--;
        return rc;
    }
    if (v->t != J_OBJ) {
        e->depth--;
        return errf(e->err, e->errlen, "expected a JSON object for message %s",
                    cli_pool_name_of(e->pool, m));
    }
    int32_t *oneof_seen = calloc(m->n_oneof_decl + 1, sizeof *oneof_seen);
    if (oneof_seen == NULL)
        return errf(e->err, e->errlen, "out of memory");
    for (size_t i = 0; rc == 0 && i < v->n; i++) {
        const char *key = v->k[i];
        const cli_jv_t *val = &v->v[i];
        /* duplicate keys: only the last counts */
        if (jv_get(v, key) != val)
            continue;
        const cli_field_t *f = cli_field_by_name(m, key);
        if (f == NULL) {
            if (e->allow_unknown)
                continue;
            rc = errf(e->err, e->errlen, "message type %s has no known field named %s",
                      cli_pool_name_of(e->pool, m), key);
            break;
        }
        if (val->t == J_NULL && !(is_null_value_field(f) && f->label != L_REPEATED))
            continue;
        if (f->has_oneof_index && f->oneof_index >= 0 &&
            (size_t)f->oneof_index < m->n_oneof_decl &&
            !(f->has_proto3_optional && f->proto3_optional)) {
            if (oneof_seen[f->oneof_index]) {
                rc = errf(e->err, e->errlen, "oneof %s has more than one field set (%s)",
                          m->oneof_decl[f->oneof_index]->name, key);
                break;
            }
            oneof_seen[f->oneof_index] = 1;
        }
        if (f->label != L_REPEATED) {
            rc = enc_value(e, f, f->number, val, out);
            continue;
        }
        const cli_msg_t *entry = (int)f->type == T_MESSAGE
            ? cli_pool_message(e->pool, f->type_name) : NULL;
        if (cli_is_map_entry(entry)) {
            const cli_field_t *kf = cli_field_by_number(entry, 1),
                              *vf = cli_field_by_number(entry, 2);
            if (val->t != J_OBJ || !kf || !vf) {
                rc = errf(e->err, e->errlen, "%s: expected a JSON object (map)", key);
                break;
            }
            for (size_t j = 0; rc == 0 && j < val->n; j++) {
                cli_buf_t tmp = {0};
                rc = enc_map_key(e, kf, val->k[j], &tmp);
                if (rc == 0 && val->v[j].t == J_NULL && !is_null_value_field(vf))
                    rc = errf(e->err, e->errlen, "%s: null map value", key);
                if (rc == 0)
                    rc = enc_value(e, vf, 2, &val->v[j], &tmp);
                if (rc == 0 && put_len(out, f->number, tmp.b, tmp.n))
                    rc = errf(e->err, e->errlen, "out of memory");
                free(tmp.b);
            }
            continue;
        }
        if (val->t != J_ARR) {
            rc = errf(e->err, e->errlen, "%s: expected a JSON array", key);
            break;
        }
        for (size_t j = 0; rc == 0 && j < val->n; j++) {
            if (val->v[j].t == J_NULL && !is_null_value_field(f))
                rc = errf(e->err, e->errlen, "%s: null in a repeated field", key);
            else
                rc = enc_value(e, f, f->number, &val->v[j], out);
        }
    }
    free(oneof_seen);
    e->depth--;
    return rc ? -1 : 0;
}

/* ---- well-known types in ---------------------------------------------------------- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* Fractional digits after '.' at *s (up to 9) -> nanos; advances *s. */
static int frac_nanos(const char **s, int32_t *nanos)
{
    int32_t n = 0;
    int k = 0;
    if (**s != '.')
        return 0;
    (*s)++;
    while (isdigit((unsigned char)**s)) {
        if (k == 9)
            return -1;
        n = n * 10 + (**s - '0');
        (*s)++;
        k++;
    }
    if (k == 0)
        return -1;
    while (k++ < 9)
        n *= 10;
    *nanos = n;
    return 0;
}

static int parse_timestamp(const char *s, int64_t *secs, int32_t *nanos)
{
    int Y, M, D, h, mi, se, used = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &Y, &M, &D, &h, &mi, &se, &used) != 6 ||
        used != 19 || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || mi > 59 || se > 59)
        return -1;
    const char *p = s + 19;
    *nanos = 0;
    if (frac_nanos(&p, nanos))
        return -1;
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2 || strlen(p) != 6)
            return -1;
        off = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -1;
    }
    if (*p)
        return -1;
    *secs = days_from_civil(Y, (unsigned)M, (unsigned)D) * 86400 + h * 3600 +
            mi * 60 + se - off;
    if (*secs < -62135596800LL || *secs > 253402300799LL)
        return -1;
    return 0;
}

static int parse_duration_json(const char *s, int64_t *secs, int32_t *nanos)
{
    bool neg = *s == '-';
    const char *p = s + neg;
    if (!isdigit((unsigned char)*p))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (errno || v > 315576000000LL)
        return -1;
    p = end;
    *nanos = 0;
    if (frac_nanos(&p, nanos) || strcmp(p, "s") != 0)
        return -1;
    *secs = neg ? -v : v;
    if (neg)
        *nanos = -*nanos;
    return 0;
}

static int enc_value_msg(struct enc *e, const cli_jv_t *v, cli_buf_t *out);

static int enc_struct(struct enc *e, const cli_jv_t *v, cli_buf_t *out)
{
    if (v->t != J_OBJ)
        return errf(e->err, e->errlen, "google.protobuf.Struct: expected an object");
    for (size_t i = 0; i < v->n; i++) {
        cli_buf_t entry = {0}, val = {0};
        int rc = put_len(&entry, 1, v->k[i], strlen(v->k[i])) ||
                 enc_value_msg(e, &v->v[i], &val) ||
                 put_len(&entry, 2, val.b, val.n) ||
                 put_len(out, 1, entry.b, entry.n);
        free(entry.b);
        free(val.b);
        if (rc)
            return -1;
    }
    return 0;
}

static int enc_list(struct enc *e, const cli_jv_t *v, cli_buf_t *out)
{
    if (v->t != J_ARR)
        return errf(e->err, e->errlen, "google.protobuf.ListValue: expected an array");
    for (size_t i = 0; i < v->n; i++) {
        cli_buf_t val = {0};
        int rc = enc_value_msg(e, &v->v[i], &val) || put_len(out, 1, val.b, val.n);
        free(val.b);
        if (rc)
            return -1;
    }
    return 0;
}

/* google.protobuf.Value from any JSON value. */
static int enc_value_msg(struct enc *e, const cli_jv_t *v, cli_buf_t *out)
{
    if (++e->depth > MAX_DEPTH)
        return errf(e->err, e->errlen, "nesting deeper than %d", MAX_DEPTH);
    int rc = 0;
    cli_buf_t sub = {0};
    switch (v->t) {
    case J_NULL: rc = put_tag(out, 1, 0) || put_varint(out, 0); break;
    case J_BOOL: rc = put_tag(out, 4, 0) || put_varint(out, (uint64_t)v->b); break;
    case J_STR: rc = put_len(out, 3, v->s, v->slen); break;
    case J_NUM: {
        double d = strtod(v->s, NULL);
        uint64_t b;
        memcpy(&b, &d, 8);
        rc = put_tag(out, 2, 1) || put_fixed(out, b, 8);
        break;
    }
    case J_OBJ: rc = enc_struct(e, v, &sub) || put_len(out, 5, sub.b, sub.n); break;
    case J_ARR: rc = enc_list(e, v, &sub) || put_len(out, 6, sub.b, sub.n); break;
    }
    free(sub.b);
    e->depth--;
    return rc ? -1 : 0;
}

static int enc_wkt(struct enc *e, const char *w, const cli_msg_t *m,
                   const cli_jv_t *v, cli_buf_t *out)
{
    int64_t secs;
    int32_t nanos;
    if (!strcmp(w, "Timestamp") || !strcmp(w, "Duration")) {
        bool ts = w[0] == 'T';
        if (v->t != J_STR || (ts ? parse_timestamp(v->s, &secs, &nanos)
                                 : parse_duration_json(v->s, &secs, &nanos)))
            return errf(e->err, e->errlen, "google.protobuf.%s: invalid value %s%s%s", w,
                        v->t == J_STR ? "\"" : "", v->s ? v->s : "(not a string)",
                        v->t == J_STR ? "\"" : "");
        if (secs)
            put_tag(out, 1, 0), put_varint(out, (uint64_t)secs);
        if (nanos)
            put_tag(out, 2, 0), put_varint(out, (uint64_t)(int64_t)nanos);
        return 0;
    }
    if (cli_is_wrapper(w)) {
        const cli_field_t *f = cli_field_by_number(m, 1);
        if (f == NULL)
            return errf(e->err, e->errlen, "google.protobuf.%s: no field 1", w);
        return enc_value(e, f, 1, v, out);
    }
    if (!strcmp(w, "Struct"))
        return enc_struct(e, v, out);
    if (!strcmp(w, "ListValue"))
        return enc_list(e, v, out);
    if (!strcmp(w, "Value"))
        return enc_value_msg(e, v, out);
    if (!strcmp(w, "FieldMask")) {
        if (v->t != J_STR)
            return errf(e->err, e->errlen, "google.protobuf.FieldMask: expected a string");
        const char *p = v->s;
        while (*p) {
            const char *c = strchr(p, ',');
            size_t n = c ? (size_t)(c - p) : strlen(p);
            char path[512];
            size_t o = 0;
            for (size_t i = 0; i < n && o + 2 < sizeof path; i++) {
                if (isupper((unsigned char)p[i])) {
                    path[o++] = '_';
                    path[o++] = (char)tolower((unsigned char)p[i]);
                } else {
                    path[o++] = p[i];
                }
            }
            if (put_len(out, 1, path, o))
                return -1;
            p += n + (c != NULL);
        }
        return 0;
    }
    /* Any */
    if (v->t != J_OBJ)
        return errf(e->err, e->errlen, "google.protobuf.Any: expected an object");
    const cli_jv_t *t = jv_get(v, "@type");
    if (v->n == 0)
        return 0;
    if (t == NULL || t->t != J_STR)
        return errf(e->err, e->errlen, "google.protobuf.Any: missing \"@type\"");
    const char *slash = strrchr(t->s, '/');
    const cli_msg_t *im = cli_pool_message(e->pool, slash ? slash + 1 : t->s);
    if (im == NULL)
        return errf(e->err, e->errlen, "google.protobuf.Any: unknown type %s", t->s);
    cli_buf_t inner = {0};
    int rc;
    if (cli_special_json(wkt_name(e, im))) {
        const cli_jv_t *val = jv_get(v, "value");
        if (val == NULL)
            return errf(e->err, e->errlen, "google.protobuf.Any: missing \"value\"");
        rc = enc_message(e, im, val, &inner);
    } else {
        cli_jv_t rest = *v; /* the object without "@type" */
        rest.v = calloc(v->n, sizeof *rest.v);
        rest.k = calloc(v->n, sizeof *rest.k);
        rest.n = 0;
        if (!rest.v || !rest.k) {
            free(rest.v);
            free(rest.k);
            return errf(e->err, e->errlen, "out of memory");
        }
        for (size_t i = 0; i < v->n; i++)
            if (strcmp(v->k[i], "@type")) {
                rest.k[rest.n] = v->k[i];
                rest.v[rest.n++] = v->v[i];
            }
        rc = enc_message(e, im, &rest, &inner);
        free(rest.v);
        free(rest.k);
    }
    if (rc == 0)
        rc = put_len(out, 1, t->s, t->slen) || put_len(out, 2, inner.b, inner.n);
    free(inner.b);
    return rc ? -1 : 0;
}

int cli_json_encode(cli_pool_t *p, const cli_msg_t *m, const cli_jv_t *v,
                    bool allow_unknown, cli_buf_t *out, char *err,
                    size_t errlen)
{
    struct enc e = {.pool = p, .allow_unknown = allow_unknown, .err = err,
                    .errlen = errlen};
    return enc_message(&e, m, v, out);
}
