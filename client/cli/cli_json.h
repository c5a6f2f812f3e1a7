/*
 * cli_json.h -- protobuf-c messages from and to JSON (the proto3 JSON
 * mapping's common subset), driven only by protobuf-c descriptors, for the
 * command-line client.
 *
 * Reading accepts: objects keyed by the proto field name or its
 * lowerCamelCase JSON name; numbers (or strings holding numbers, as
 * protojson writes 64-bit integers); true/false; strings with JSON escapes;
 * bytes as standard or URL-safe base64, padded or not; enums by name or
 * number; nested messages; arrays for repeated fields; null (= unset).
 * Not supported (clear error): map fields, well-known-type special forms
 * (Any, Timestamp, Duration, wrappers) -- they read as plain messages.
 *
 * Writing follows protojson as grpcurl prints it: lowerCamelCase names,
 * two-space indentation, default values omitted, 64-bit integers as
 * strings, bytes as padded base64, enums by name.
 *
 * Single-threaded helpers; no global state.
 */
#ifndef CLI_JSON_H
#define CLI_JSON_H

#include <protobuf-c/protobuf-c.h>

#include <stdio.h>

/* Parses the next JSON object from *p (skipping leading white space) into
 * a new message of type desc.  On success returns the message (free with
 * protobuf_c_message_free_unpacked(m, NULL)) and advances *p past it.  On
 * failure returns NULL and writes a reason into err. */
ProtobufCMessage *cli_json_parse(const ProtobufCMessageDescriptor *desc,
                                 const char **p, char *err, size_t errlen);

/* True when only white space is left at p. */
int cli_json_at_end(const char *p);

/* Writes m as JSON followed by a newline. */
void cli_json_print(FILE *out, const ProtobufCMessage *m);

#endif /* CLI_JSON_H */
