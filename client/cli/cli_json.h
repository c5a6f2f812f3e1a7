/*
 * cli_json.h -- a descriptor-driven JSON <-> protobuf wire transcoder for
 * rpcurl (protobuf-c has no dynamic messages, so rpcurl encodes and decodes
 * the wire format itself from DescriptorProtos in a cli_pool_t).
 *
 * JSON in (the proto3 JSON mapping): fields by json_name or proto name;
 * null = unset; 64-bit integers as strings or numbers; integers with an
 * exponent or a zero fraction; enums by name or number; bytes as standard
 * or URL-safe base64, padded or not; floats as numbers or "NaN",
 * "Infinity", "-Infinity"; maps as objects; oneofs (two members set is an
 * error); the well-known types Timestamp, Duration, the wrappers, Struct,
 * Value, ListValue, FieldMask, Empty and Any (its @type resolved in the
 * pool).  Unknown fields are an error unless allow_unknown.
 *
 * Out: protojson as grpcurl prints it (json_name keys in field-number
 * order, 2-space indent, 64-bit integers quoted, enums by name, bytes as
 * padded standard base64, defaults omitted unless emit_defaults), or the
 * protobuf text format.
 *
 * Single-threaded; no globals.
 */
#ifndef CLI_JSON_H
#define CLI_JSON_H

#include "cli_desc.h"

#include <stdbool.h>
#include <stdio.h>

typedef struct cli_jv cli_jv_t;

/* Parses the next JSON value at *p (leading white space skipped) and
 * advances *p past it.  NULL on a syntax error, with a reason in err. */
cli_jv_t *cli_jv_parse(const char **p, char *err, size_t errlen);
void cli_jv_free(cli_jv_t *v);
/* True when only white space is left at p. */
int cli_json_at_end(const char *p);

typedef struct cli_buf {
    uint8_t *b;
    size_t n, cap;
} cli_buf_t;

/* Encodes JSON value v as a message of type m, appending the wire bytes
 * to out (free out->b).  0, or -1 with a reason in err. */
int cli_json_encode(cli_pool_t *p, const cli_msg_t *m, const cli_jv_t *v,
                    bool allow_unknown, cli_buf_t *out, char *err,
                    size_t errlen);

typedef enum cli_format { CLI_FORMAT_JSON = 0, CLI_FORMAT_TEXT = 1 } cli_format_t;

/* Decodes wire bytes of type m and prints them (with a final newline).
 * 0, or -1 with a reason in err (nothing printed). */
int cli_json_print(FILE *out, cli_pool_t *p, const cli_msg_t *m,
                   const uint8_t *b, size_t len, cli_format_t fmt,
                   bool emit_defaults, char *err, size_t errlen);

#endif /* CLI_JSON_H */
