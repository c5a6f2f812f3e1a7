/*
 * cli_jv.h -- the JSON tree shared by cli_json.c (parse, encode) and
 * cli_json_out.c (decode, print).  Private to rpcurl.
 */
#ifndef CLI_JV_H
#define CLI_JV_H

#include "cli_json.h"

#define MAX_DEPTH 100

enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct cli_jv {
    int t;
    int bare;      /* text format: print the string unquoted (enum names) */
    int b;         /* J_BOOL */
    char *s;       /* J_NUM text, J_STR bytes (NUL-terminated) */
    size_t slen;
    size_t n, cap; /* J_ARR, J_OBJ */
    struct cli_jv *v;
    char **k;      /* J_OBJ keys */
};

/* descriptor.proto FieldDescriptorProto.Type numbers (compare with
 * (int)f->type) */
#define T_DOUBLE 1
#define T_FLOAT 2
#define T_INT64 3
#define T_UINT64 4
#define T_INT32 5
#define T_FIXED64 6
#define T_FIXED32 7
#define T_BOOL 8
#define T_STRING 9
#define T_GROUP 10
#define T_MESSAGE 11
#define T_BYTES 12
#define T_UINT32 13
#define T_ENUM 14
#define T_SFIXED32 15
#define T_SFIXED64 16
#define T_SINT32 17
#define T_SINT64 18
#define L_REPEATED 3


/* Appends a member (key for objects) / element, zeroed; NULL: no memory. */
cli_jv_t *cli_jv_push(cli_jv_t *o, const char *key);
/* Makes v a J_NUM/J_STR holding a copy of s[0..n).  0 or -1. */
int cli_jv_setstr(cli_jv_t *v, int t, const char *s, size_t n);
/* Frees what v holds (not v itself). */
void cli_jv_clear(cli_jv_t *v);
/* Padded standard base64 of d[0..n) (malloc'ed) or NULL. */
char *cli_b64enc(const uint8_t *d, size_t n);
/* Well-known types by short name ("Timestamp"): a wrapper; one with a
 * special JSON form. */
bool cli_is_wrapper(const char *w);
bool cli_special_json(const char *w);

#endif /* CLI_JV_H */
