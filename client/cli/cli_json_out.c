/*
 * cli_json_out.c -- protobuf wire -> JSON tree -> protojson or text format
 * (see cli_json.h).
 *
 *   decode(msg, bytes):
 *     split the bytes into records (field number, wire type, value)
 *     for each field of msg in field-number order:
 *       repeated: every record, packed or not; map entries become members
 *       message:  the records' payloads concatenated (protobuf's merge)
 *       scalar:   the last record
 *       absent:   omitted, or its default with emit_defaults (never for
 *                 oneof members or fields with explicit presence)
 *     unknown field numbers are skipped
 *   JSON mode turns well-known types into their special forms and uses
 *   json_name; text mode keeps plain messages and proto names.
 */
#include "cli_json.h"
#include "cli_jv.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct rec {
    int32_t num;
    int wt;
    uint64_t u;        /* varint / fixed */
    const uint8_t *p;  /* LEN */
    size_t n;
};

struct dec {
    cli_pool_t *pool;
    cli_format_t fmt;
    bool emit_defaults;
    char *err;
    size_t errlen;
    int depth;
};

static int errf(struct dec *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err, d->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int s = 0; s < 70 && *p < end; s += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7F) << s;
        if (!(b & 0x80))
            return 0;
    }
    return -1;
}

/* Splits b into records (malloc'ed array in *out). */
static long split(const uint8_t *b, size_t len, struct rec **out)
{
    const uint8_t *p = b, *end = b + len;
    size_t n = 0, cap = 16;
    struct rec *r = malloc(cap * sizeof *r);
    while (r && p < end) {
        uint64_t tag, v = 0;
        if (get_varint(&p, end, &tag) || (tag >> 3) == 0 || (tag >> 3) > INT32_MAX)
            goto bad;
        struct rec x = {.num = (int32_t)(tag >> 3), .wt = (int)(tag & 7)};
        switch (x.wt) {
        case 0: if (get_varint(&p, end, &x.u)) goto bad; break;
        case 1: case 5: {
            size_t k = x.wt == 1 ? 8 : 4;
            if ((size_t)(end - p) < k) goto bad;
            for (size_t i = 0; i < k; i++) v |= (uint64_t)p[i] << (8 * i);
            x.u = v;
            p += k;
            break;
        }
        case 2:
            if (get_varint(&p, end, &v) || v > (uint64_t)(end - p)) goto bad;
            x.p = p;
            x.n = (size_t)v;
            p += v;
            break;
        default: goto bad; /* groups are not supported */
        }
        if (n == cap) {
            struct rec *nr = realloc(r, (cap *= 2) * sizeof *r);
            if (nr == NULL) goto bad;
            r = nr;
        }
        r[n++] = x;
    }
    if (r == NULL)
        return -1;
    *out = r;
    return (long)n;
bad:
    free(r);
    return -1;
}

static int set_num(cli_jv_t *v, const char *fmt, ...)
{
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return cli_jv_setstr(v, J_NUM, buf, strlen(buf));
}

static int set_str(cli_jv_t *v, const char *s)
{
    return cli_jv_setstr(v, J_STR, s, strlen(s));
}

/* Shortest decimal text that reads back as the same value. */
static int set_float(struct dec *d, cli_jv_t *v, double x, bool is_float)
{
    if (isnan(x))
        return d->fmt == CLI_FORMAT_TEXT ? (v->bare = 1, set_str(v, "nan")) : set_str(v, "NaN");
    if (isinf(x)) {
        if (d->fmt == CLI_FORMAT_TEXT) {
            v->bare = 1;
            return set_str(v, x > 0 ? "inf" : "-inf");
        }
        return set_str(v, x > 0 ? "Infinity" : "-Infinity");
    }
    /* The fewest significant digits that read back as the same value,
     * laid out as ES6 (and Go's protojson) does: fixed notation for
     * 1e-6 <= |x| < 1e21, else exponent notation. */
    char buf[64], e[48];
    int prec = 1;
    for (; prec < 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, x);
        if (is_float ? (float)strtod(e, NULL) == (float)x : strtod(e, NULL) == x)
            break;
    }
    snprintf(e, sizeof e, "%.*e", prec - 1, x);
    double ax = fabs(x);
    if (x != 0 && (ax < 1e-6 || ax >= 1e21)) {
        snprintf(buf, sizeof buf, "%s", e);
    } else {
        char digits[32];
        size_t nd = 0;
        const char *q = e + (e[0] == '-');
        for (; *q && *q != 'e'; q++)
            if (*q != '.')
                digits[nd++] = *q;
        digits[nd] = 0;
        int exp = atoi(q + 1);
        size_t o = 0;
        if (x < 0)
            buf[o++] = '-';
        if (exp >= 0) {
            for (int i = 0; i <= exp; i++)
                buf[o++] = (size_t)i < nd ? digits[i] : '0';
            if ((size_t)exp + 1 < nd) {
                buf[o++] = '.';
                for (size_t i = (size_t)exp + 1; i < nd; i++)
                    buf[o++] = digits[i];
            }
        } else {
            buf[o++] = '0';
            buf[o++] = '.';
            for (int i = 0; i < -exp - 1; i++)
                buf[o++] = '0';
            for (size_t i = 0; i < nd; i++)
                buf[o++] = digits[i];
        }
        buf[o] = 0;
    }
    return cli_jv_setstr(v, J_NUM, buf, strlen(buf));
}

static int dec_message(struct dec *d, const cli_msg_t *m, const uint8_t *b,
                       size_t len, cli_jv_t *out);
static int dec_value_msg(struct dec *d, const uint8_t *b, size_t len, cli_jv_t *out);

static const char *field_key(struct dec *d, const cli_field_t *f, char *buf,
                             size_t cap)
{
    return d->fmt == CLI_FORMAT_TEXT ? f->name : cli_json_name(f, buf, cap);
}

/* One scalar/message value of f from record r into v. */
static int dec_value(struct dec *d, const cli_field_t *f, const struct rec *r,
                     cli_jv_t *v)
{
    bool text = d->fmt == CLI_FORMAT_TEXT;
    uint64_t u = r->u;
    int want = 0; /* expected wire type */
    switch ((int)f->type) {
    case T_DOUBLE: case T_FIXED64: case T_SFIXED64: want = 1; break;
    case T_FLOAT: case T_FIXED32: case T_SFIXED32: want = 5; break;
    case T_STRING: case T_BYTES: case T_MESSAGE: want = 2; break;
    default: want = 0;
    }
    if (r->wt != want)
        return errf(d, "field %s: wire type %d, expected %d", f->name, r->wt, want);
    switch ((int)f->type) {
    case T_INT32: return set_num(v, "%" PRId32, (int32_t)u);
    case T_SFIXED32: return set_num(v, "%" PRId32, (int32_t)(uint32_t)u);
    case T_SINT32: return set_num(v, "%" PRId32, (int32_t)((uint32_t)(u >> 1) ^ -(uint32_t)(u & 1)));
    case T_UINT32: case T_FIXED32: return set_num(v, "%" PRIu32, (uint32_t)u);
    case T_INT64: case T_SFIXED64: case T_SINT64: case T_UINT64: case T_FIXED64: {
        char buf[32];
        if ((int)f->type == T_UINT64 || (int)f->type == T_FIXED64)
            snprintf(buf, sizeof buf, "%" PRIu64, u);
        else if ((int)f->type == T_SINT64)
            snprintf(buf, sizeof buf, "%" PRId64, (int64_t)((u >> 1) ^ -(u & 1)));
        else
            snprintf(buf, sizeof buf, "%" PRId64, (int64_t)u);
        return cli_jv_setstr(v, text ? J_NUM : J_STR, buf, strlen(buf));
    }
    case T_DOUBLE: {
        double x;
        memcpy(&x, &u, 8);
        return set_float(d, v, x, false);
    }
    case T_FLOAT: {
        uint32_t b32 = (uint32_t)u;
        float x;
        memcpy(&x, &b32, 4);
        return set_float(d, v, x, true);
    }
    case T_BOOL:
        v->t = J_BOOL;
        v->b = u != 0;
        return 0;
    case T_STRING:
        return cli_jv_setstr(v, J_STR, (const char *)r->p, r->n);
    case T_BYTES: {
        if (text)
            return cli_jv_setstr(v, J_STR, (const char *)r->p, r->n);
        char *s = cli_b64enc(r->p, r->n);
        if (s == NULL)
            return errf(d, "out of memory");
        v->t = J_STR;
        v->s = s;
        v->slen = strlen(s);
        return 0;
    }
    case T_ENUM: {
        const cli_enum_t *en = cli_pool_enum(d->pool, f->type_name);
        int32_t n = (int32_t)u;
        if (!text && f->type_name && !strcmp(f->type_name, ".google.protobuf.NullValue")) {
            v->t = J_NULL;
            return 0;
        }
        for (size_t i = 0; en && i < en->n_value; i++)
            if (en->value[i]->number == n) {
                v->bare = 1;
                return set_str(v, en->value[i]->name);
            }
        return set_num(v, "%" PRId32, n);
    }
    case T_MESSAGE: {
        const cli_msg_t *m = cli_pool_message(d->pool, f->type_name);
        if (m == NULL)
            return errf(d, "field %s: unknown message type %s", f->name, f->type_name);
        return dec_message(d, m, r->p, r->n, v);
    }
    }
    return errf(d, "field %s: unsupported type %d", f->name, f->type);
}

static bool packable(const cli_field_t *f)
{
    return (int)f->type != T_STRING && (int)f->type != T_BYTES && (int)f->type != T_MESSAGE &&
           (int)f->type != T_GROUP;
}

/* Values of a packed record, appended to arr. */
static int dec_packed(struct dec *d, const cli_field_t *f, const struct rec *r,
                      cli_jv_t *arr)
{
    const uint8_t *p = r->p, *end = r->p + r->n;
    while (p < end) {
        struct rec x = {.num = r->num};
        if ((int)f->type == T_DOUBLE || (int)f->type == T_FIXED64 || (int)f->type == T_SFIXED64 ||
            (int)f->type == T_FLOAT || (int)f->type == T_FIXED32 || (int)f->type == T_SFIXED32) {
            size_t k = ((int)f->type == T_FLOAT || (int)f->type == T_FIXED32 || (int)f->type == T_SFIXED32) ? 4 : 8;
            if ((size_t)(end - p) < k)
                return errf(d, "field %s: truncated packed value", f->name);
            for (size_t i = 0; i < k; i++)
                x.u |= (uint64_t)p[i] << (8 * i);
            x.wt = k == 4 ? 5 : 1;
            p += k;
        } else if (get_varint(&p, end, &x.u)) {
            return errf(d, "field %s: bad packed varint", f->name);
        }
        cli_jv_t *e = cli_jv_push(arr, NULL);
        if (e == NULL || dec_value(d, f, &x, e))
            return e ? -1 : errf(d, "out of memory");
    }
    return 0;
}

static int default_value(struct dec *d, const cli_field_t *f, cli_jv_t *v)
{
    struct rec r = {.num = f->number};
    switch ((int)f->type) {
    case T_DOUBLE: case T_FIXED64: case T_SFIXED64: r.wt = 1; break;
    case T_FLOAT: case T_FIXED32: case T_SFIXED32: r.wt = 5; break;
    case T_STRING: case T_BYTES: r.wt = 2; r.p = (const uint8_t *)""; break;
    case T_MESSAGE: case T_GROUP: return 1; /* omitted */
    default: r.wt = 0;
    }
    return dec_value(d, f, &r, v);
}

static int cmp_field(const void *a, const void *b)
{
    int32_t x = (*(const cli_field_t *const *)a)->number,
            y = (*(const cli_field_t *const *)b)->number;
    return x < y ? -1 : x > y;
}

static int dec_wkt(struct dec *d, const char *w, const cli_msg_t *m,
                   const struct rec *r, long n, cli_jv_t *out);

static int dec_fields(struct dec *d, const cli_msg_t *m, const struct rec *r,
                      long nr, cli_jv_t *out)
{
    out->t = J_OBJ;
    bool proto3 = cli_pool_is_proto3(d->pool, m);
    const cli_field_t **fs = malloc((m->n_field + 1) * sizeof *fs);
    if (fs == NULL)
        return errf(d, "out of memory");
    if (m->n_field) {
        memcpy(fs, m->field, m->n_field * sizeof *fs);
        qsort(fs, m->n_field, sizeof *fs, cmp_field);
    }
    int rc = 0;
    char kb[256];
    for (size_t i = 0; rc == 0 && i < m->n_field; i++) {
        const cli_field_t *f = fs[i];
        long cnt = 0, last = -1;
        for (long j = 0; j < nr; j++)
            if (r[j].num == f->number) {
                cnt++;
                last = j;
            }
        bool presence = (int)f->type == T_MESSAGE || f->has_oneof_index ||
                        (f->has_proto3_optional && f->proto3_optional) || !proto3;
        const char *key = field_key(d, f, kb, sizeof kb);
        if (f->label == L_REPEATED) {
            if (cnt == 0 && !(d->emit_defaults && d->fmt == CLI_FORMAT_JSON))
                continue;
            const cli_msg_t *entry = (int)f->type == T_MESSAGE
                ? cli_pool_message(d->pool, f->type_name) : NULL;
            bool map = cli_is_map_entry(entry) && d->fmt == CLI_FORMAT_JSON;
            cli_jv_t *arr = cli_jv_push(out, key);
            if (arr == NULL) {
                rc = errf(d, "out of memory");
                break;
            }
            arr->t = map ? J_OBJ : J_ARR;
            for (long j = 0; rc == 0 && j < nr; j++) {
                if (r[j].num != f->number)
                    continue;
                if (map) {
                    cli_jv_t ent = {0};
                    rc = dec_message(d, entry, r[j].p, r[j].n, &ent);
                    if (rc == 0) {
                        const cli_field_t *kf = cli_field_by_number(entry, 1),
                                          *vf = cli_field_by_number(entry, 2);
                        char kb2[256];
                        const cli_jv_t *k = kf ? (const cli_jv_t *)NULL : NULL;
                        const cli_jv_t *val = NULL;
                        for (size_t q = 0; q < ent.n; q++) {
                            if (kf && !strcmp(ent.k[q], cli_json_name(kf, kb2, sizeof kb2)))
                                k = &ent.v[q];
                            if (vf && !strcmp(ent.k[q], cli_json_name(vf, kb2, sizeof kb2)))
                                val = &ent.v[q];
                        }
                        const char *ks = k ? (k->t == J_BOOL ? (k->b ? "true" : "false")
                                                             : k->s)
                                           : (kf && (int)kf->type == T_BOOL ? "false"
                                              : kf && (int)kf->type == T_STRING ? "" : "0");
                        cli_jv_t *slot = cli_jv_push(arr, ks);
                        if (slot == NULL) {
                            rc = errf(d, "out of memory");
                        } else if (val) {
                            *slot = *val; /* move */
                            memset((cli_jv_t *)val, 0, sizeof *val);
                        } else if (vf) {
                            if (default_value(d, vf, slot) == 1)
                                slot->t = J_OBJ;
                        }
                    }
                    cli_jv_clear(&ent);
                } else if (r[j].wt == 2 && packable(f)) {
                    rc = dec_packed(d, f, &r[j], arr);
                } else {
                    cli_jv_t *e = cli_jv_push(arr, NULL);
                    rc = e ? dec_value(d, f, &r[j], e) : errf(d, "out of memory");
                }
            }
            continue;
        }
        if (cnt == 0) {
            if (!d->emit_defaults || d->fmt != CLI_FORMAT_JSON || presence)
                continue;
            cli_jv_t tmp = {0};
            rc = default_value(d, f, &tmp);
            if (rc == 1) {
                rc = 0;
                continue;
            }
            cli_jv_t *slot = rc ? NULL : cli_jv_push(out, key);
            if (slot)
                *slot = tmp;
            else
                cli_jv_clear(&tmp);
            continue;
        }
        cli_jv_t *slot = cli_jv_push(out, key);
        if (slot == NULL) {
            rc = errf(d, "out of memory");
            break;
        }
        if ((int)f->type == T_MESSAGE && cnt > 1) {
            /* merge: decode the concatenation */
            size_t tot = 0;
            for (long j = 0; j < nr; j++)
                if (r[j].num == f->number)
                    tot += r[j].n;
            uint8_t *cat = malloc(tot ? tot : 1);
            if (cat == NULL) {
                rc = errf(d, "out of memory");
                break;
            }
            size_t o = 0;
            for (long j = 0; j < nr; j++)
                if (r[j].num == f->number && r[j].wt == 2) {
                    if (r[j].n)
                        memcpy(cat + o, r[j].p, r[j].n);
                    o += r[j].n;
                }
            struct rec x = {.num = f->number, .wt = 2, .p = cat, .n = o};
            rc = dec_value(d, f, &x, slot);
            free(cat);
        } else {
            rc = dec_value(d, f, &r[last], slot);
        }
        /* implicit presence: a default value on the wire is not shown */
        if (rc == 0 && !presence && !d->emit_defaults &&
            (r[last].wt == 2 ? r[last].n == 0 : r[last].u == 0)) {
            cli_jv_clear(slot);
            out->n--;
            free(out->k[out->n]);
        }
    }
    free(fs);
    return rc;
}

static int dec_message(struct dec *d, const cli_msg_t *m, const uint8_t *b,
                       size_t len, cli_jv_t *out)
{
    if (++d->depth > MAX_DEPTH)
        return errf(d, "nesting deeper than %d", MAX_DEPTH);
    struct rec *r = NULL;
    long n = split(b, len, &r);
    if (n < 0) {
        d->depth--;
        return errf(d, "malformed %s message", cli_pool_name_of(d->pool, m));
    }
    const char *name = cli_pool_name_of(d->pool, m);
    const char *w = strncmp(name, "google.protobuf.", 16) == 0 ? name + 16 : NULL;
    int rc;
    if (d->fmt == CLI_FORMAT_JSON && w && !strcmp(w, "Value"))
        rc = dec_value_msg(d, b, len, out);
    else if (d->fmt == CLI_FORMAT_JSON && cli_special_json(w))
        rc = dec_wkt(d, w, m, r, n, out);
    else
        rc = dec_fields(d, m, r, n, out);
    free(r);
    d->depth--;
    return rc;
}

/* ---- well-known types out ------------------------------------------------------ */

/* The last record of field num with wire type wt (others are ignored). */
static const struct rec *last_rec(const struct rec *r, long n, int32_t num,
                                  int wt)
{
    const struct rec *x = NULL;
    for (long i = 0; i < n; i++)
        if (r[i].num == num && r[i].wt == wt)
            x = &r[i];
    return x;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static void frac(char *buf, size_t cap, int32_t nanos)
{
    if (nanos == 0)
        buf[0] = 0;
    else if (nanos % 1000000 == 0)
        snprintf(buf, cap, ".%03d", nanos / 1000000);
    else if (nanos % 1000 == 0)
        snprintf(buf, cap, ".%06d", nanos / 1000);
    else
        snprintf(buf, cap, ".%09d", nanos);
}


static int dec_struct(struct dec *d, const struct rec *r, long n, cli_jv_t *out)
{
    out->t = J_OBJ;
    for (long i = 0; i < n; i++) {
        if (r[i].num != 1 || r[i].wt != 2)
            continue;
        struct rec *er = NULL;
        long en = split(r[i].p, r[i].n, &er);
        if (en < 0)
            return errf(d, "malformed google.protobuf.Struct");
        const struct rec *k = last_rec(er, en, 1, 2), *v = last_rec(er, en, 2, 2);
        char *key = k ? strndup((const char *)k->p, k->n) : strdup("");
        cli_jv_t *slot = key ? cli_jv_push(out, key) : NULL;
        int rc = slot ? dec_value_msg(d, v ? v->p : NULL, v ? v->n : 0, slot)
                      : errf(d, "out of memory");
        free(key);
        free(er);
        if (rc)
            return -1;
    }
    return 0;
}

static int dec_list(struct dec *d, const struct rec *r, long n, cli_jv_t *out)
{
    out->t = J_ARR;
    for (long i = 0; i < n; i++) {
        if (r[i].num != 1 || r[i].wt != 2)
            continue;
        cli_jv_t *slot = cli_jv_push(out, NULL);
        if (slot == NULL || dec_value_msg(d, r[i].p, r[i].n, slot))
            return slot ? -1 : errf(d, "out of memory");
    }
    return 0;
}

static int dec_value_msg(struct dec *d, const uint8_t *b, size_t len, cli_jv_t *out)
{
    if (++d->depth > MAX_DEPTH)
        return errf(d, "nesting deeper than %d", MAX_DEPTH);
    struct rec *r = NULL;
    long n = b ? split(b, len, &r) : 0;
    if (n < 0)
        return errf(d, "malformed google.protobuf.Value");
    /* the kind oneof: the last member with its proper wire type */
    static const int wt[7] = {-1, 0, 1, 2, 0, 2, 2};
    const struct rec *x = NULL;
    for (long i = 0; i < n; i++)
        if (r[i].num >= 1 && r[i].num <= 6 && r[i].wt == wt[r[i].num])
            x = &r[i];
    int rc = 0;
    if (x == NULL || x->num == 1) {
        out->t = J_NULL;
    } else if (x->num == 2) {
        double v;
        memcpy(&v, &x->u, 8);
        rc = set_float(d, out, v, false);
    } else if (x->num == 3) {
        rc = cli_jv_setstr(out, J_STR, (const char *)x->p, x->n);
    } else if (x->num == 4) {
        out->t = J_BOOL;
        out->b = x->u != 0;
    } else {
        struct rec *sr = NULL;
        long sn = split(x->p, x->n, &sr);
        if (sn < 0)
            rc = errf(d, "malformed google.protobuf.Value");
        else
            rc = x->num == 5 ? dec_struct(d, sr, sn, out) : dec_list(d, sr, sn, out);
        free(sr);
    }
    free(r);
    d->depth--;
    return rc;
}

static int dec_wkt(struct dec *d, const char *w, const cli_msg_t *m,
                   const struct rec *r, long n, cli_jv_t *out)
{
    if (!strcmp(w, "Timestamp") || !strcmp(w, "Duration")) {
        const struct rec *s = last_rec(r, n, 1, 0), *ns = last_rec(r, n, 2, 0);
        int64_t secs = s ? (int64_t)s->u : 0;
        int32_t nanos = ns ? (int32_t)ns->u : 0;
        char fr[16], buf[64];
        if (w[0] == 'T') {
            if (secs < -62135596800LL || secs > 253402300799LL || nanos < 0 ||
                nanos > 999999999)
                return errf(d, "google.protobuf.Timestamp out of range");
            int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
            int64_t rem = secs - days * 86400, y;
            unsigned mo, dd;
            civil_from_days(days, &y, &mo, &dd);
            frac(fr, sizeof fr, nanos);
            snprintf(buf, sizeof buf, "%04" PRId64 "-%02u-%02uT%02d:%02d:%02d%sZ", y,
                     mo, dd, (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), fr);
        } else {
            if ((secs < 0 && nanos > 0) || (secs > 0 && nanos < 0) ||
                nanos > 999999999 || nanos < -999999999)
                return errf(d, "google.protobuf.Duration: invalid value");
            bool neg = secs < 0 || nanos < 0;
            frac(fr, sizeof fr, nanos < 0 ? -nanos : nanos);
            snprintf(buf, sizeof buf, "%s%" PRIu64 "%ss", neg ? "-" : "",
                     (uint64_t)(secs < 0 ? -(uint64_t)secs : (uint64_t)secs), fr);
        }
        return set_str(out, buf);
    }
    if (cli_is_wrapper(w)) {
        const cli_field_t *f = cli_field_by_number(m, 1);
        const struct rec *x = NULL;
        for (long i = 0; i < n; i++)
            if (r[i].num == 1)
                x = &r[i];
        if (f == NULL)
            return errf(d, "google.protobuf.%s: no field 1", w);
        return x ? dec_value(d, f, x, out) : default_value(d, f, out);
    }
    if (!strcmp(w, "Struct"))
        return dec_struct(d, r, n, out);
    if (!strcmp(w, "ListValue"))
        return dec_list(d, r, n, out);
    if (!strcmp(w, "FieldMask")) {
        size_t cap = 1;
        for (long i = 0; i < n; i++)
            cap += r[i].n + 1;
        char *s = malloc(cap), *o = s;
        if (s == NULL)
            return errf(d, "out of memory");
        for (long i = 0; i < n; i++) {
            if (r[i].num != 1 || r[i].wt != 2)
                continue;
            if (o != s)
                *o++ = ',';
            bool up = false;
            for (size_t j = 0; j < r[i].n; j++) {
                char c = (char)r[i].p[j];
                if (c == '_') {
                    up = true;
                    continue;
                }
                *o++ = up && c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
                up = false;
            }
        }
        *o = 0;
        int rc = set_str(out, s);
        free(s);
        return rc;
    }
    /* Any */
    const struct rec *t = last_rec(r, n, 1, 2), *v = last_rec(r, n, 2, 2);
    out->t = J_OBJ;
    if (t == NULL)
        return 0;
    char *url = strndup((const char *)t->p, t->n);
    if (url == NULL)
        return errf(d, "out of memory");
    const char *slash = strrchr(url, '/');
    const cli_msg_t *im = cli_pool_message(d->pool, slash ? slash + 1 : url);
    cli_jv_t *ty = cli_jv_push(out, "@type");
    int rc = ty ? set_str(ty, url) : errf(d, "out of memory");
    if (rc == 0 && im == NULL) {
        cli_jv_t *e = cli_jv_push(out, "@error");
        cli_jv_t *b = cli_jv_push(out, "@value");
        char *b64 = cli_b64enc(v ? v->p : (const uint8_t *)"", v ? v->n : 0);
        rc = e && b && b64 ? set_str(e, "unknown message type") : errf(d, "out of memory");
        if (rc == 0) {
            b->t = J_STR;
            b->s = b64;
            b->slen = strlen(b64);
        } else {
            free(b64);
        }
    } else if (rc == 0) {
        cli_jv_t inner = {0};
        rc = dec_message(d, im, v ? v->p : (const uint8_t *)"", v ? v->n : 0, &inner);
        const char *iname = cli_pool_name_of(d->pool, im);
        if (rc == 0 && !strncmp(iname, "google.protobuf.", 16) &&
            cli_special_json(iname + 16)) {
            cli_jv_t *slot = cli_jv_push(out, "value");
            if (slot) {
                *slot = inner;
                memset(&inner, 0, sizeof inner);
            } else {
                rc = errf(d, "out of memory");
            }
        } else if (rc == 0) {
            for (size_t i = 0; rc == 0 && i < inner.n; i++) {
                cli_jv_t *slot = cli_jv_push(out, inner.k[i]);
                if (slot == NULL) {
                    rc = errf(d, "out of memory");
                    break;
                }
                *slot = inner.v[i];
                memset(&inner.v[i], 0, sizeof inner.v[i]);
            }
        }
        cli_jv_clear(&inner);
    }
    free(url);
    return rc;
}

/* ---- printing -------------------------------------------------------------------- */

static void json_str(FILE *o, const char *s, size_t n)
{
    fputc('"', o);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", o); break;
        case '\\': fputs("\\\\", o); break;
        case '\n': fputs("\\n", o); break;
        case '\t': fputs("\\t", o); break;
        case '\r': fputs("\\r", o); break;
        case '\b': fputs("\\b", o); break;
        case '\f': fputs("\\f", o); break;
        default:
            if (c < 0x20)
                fprintf(o, "\\u%04x", c);
            else
                fputc(c, o);
        }
    }
    fputc('"', o);
}

static void json_print(FILE *o, const cli_jv_t *v, int ind)
{
    switch (v->t) {
    case J_NULL: fputs("null", o); break;
    case J_BOOL: fputs(v->b ? "true" : "false", o); break;
    case J_NUM: fputs(v->s, o); break;
    case J_STR: json_str(o, v->s, v->slen); break;
    case J_ARR: case J_OBJ: {
        bool obj = v->t == J_OBJ;
        if (v->n == 0) {
            fputs(obj ? "{}" : "[]", o);
            break;
        }
        fputc(obj ? '{' : '[', o);
        for (size_t i = 0; i < v->n; i++) {
            fprintf(o, "%s\n%*s", i ? "," : "", ind + 2, "");
            if (obj) {
                json_str(o, v->k[i], strlen(v->k[i]));
                fputs(": ", o);
            }
            json_print(o, &v->v[i], ind + 2);
        }
        fprintf(o, "\n%*s%c", ind, "", obj ? '}' : ']');
        break;
    }
    }
}

static void text_str(FILE *o, const char *s, size_t n)
{
    fputc('"', o);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(o, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", o);
        else if (c < 0x20 || c >= 0x7F)
            fprintf(o, "\\%03o", c);
        else
            fputc(c, o);
    }
    fputc('"', o);
}

static void text_print(FILE *o, const cli_jv_t *obj, int ind)
{
    for (size_t i = 0; i < obj->n; i++) {
        const cli_jv_t *v = &obj->v[i];
        size_t cnt = v->t == J_ARR ? v->n : 1;
        for (size_t j = 0; j < cnt; j++) {
            const cli_jv_t *x = v->t == J_ARR ? &v->v[j] : v;
            fprintf(o, "%*s%s", ind, "", obj->k[i]);
            if (x->t == J_OBJ) {
                fputs(" {\n", o);
                text_print(o, x, ind + 2);
                fprintf(o, "%*s}\n", ind, "");
                continue;
            }
            fputs(": ", o);
            if (x->t == J_BOOL)
                fputs(x->b ? "true" : "false", o);
            else if (x->t == J_STR && !x->bare)
                text_str(o, x->s, x->slen);
            else if (x->t == J_NULL)
                fputs("NULL_VALUE", o);
            else
                fputs(x->s, o);
            fputc('\n', o);
        }
    }
}

int cli_json_print(FILE *out, cli_pool_t *p, const cli_msg_t *m,
                   const uint8_t *b, size_t len, cli_format_t fmt,
                   bool emit_defaults, char *err, size_t errlen)
{
    struct dec d = {.pool = p, .fmt = fmt, .emit_defaults = emit_defaults,
                    .err = err, .errlen = errlen};
    cli_jv_t v = {0};
    if (dec_message(&d, m, b, len, &v) != 0) {
        cli_jv_clear(&v);
        return -1;
    }
    if (fmt == CLI_FORMAT_TEXT) {
        text_print(out, &v, 0);
    } else {
        json_print(out, &v, 0);
        fputc('\n', out);
    }
    cli_jv_clear(&v);
    return 0;
}
