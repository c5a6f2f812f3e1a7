/*
 * cli_methods.c -- rpcurl's method table (see cli_methods.h).
 */
#include "cli_methods.h"

#include "demo/v1/demo.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc/testing/empty.pb-c.h"
#include "grpc/testing/messages.pb-c.h"

#include <string.h>

#define T "/grpc.testing.TestService/"
static const cli_method_t methods[] = {
    {T "EmptyCall", CLI_UNARY, &grpc__testing__empty__descriptor,
     &grpc__testing__empty__descriptor},
    {T "UnaryCall", CLI_UNARY, &grpc__testing__simple_request__descriptor,
     &grpc__testing__simple_response__descriptor},
    {T "StreamingOutputCall", CLI_SERVER_STREAM,
     &grpc__testing__streaming_output_call_request__descriptor,
     &grpc__testing__streaming_output_call_response__descriptor},
    {T "StreamingInputCall", CLI_CLIENT_STREAM,
     &grpc__testing__streaming_input_call_request__descriptor,
     &grpc__testing__streaming_input_call_response__descriptor},
    {T "FullDuplexCall", CLI_BIDI,
     &grpc__testing__streaming_output_call_request__descriptor,
     &grpc__testing__streaming_output_call_response__descriptor},
    {T "HalfDuplexCall", CLI_BIDI,
     &grpc__testing__streaming_output_call_request__descriptor,
     &grpc__testing__streaming_output_call_response__descriptor},
    {T "UnimplementedCall", CLI_UNARY, &grpc__testing__empty__descriptor,
     &grpc__testing__empty__descriptor},
    {"/demo.v1.Demo/Fanout", CLI_UNARY, &demo__v1__fanout_request__descriptor,
     &demo__v1__fanout_reply__descriptor},
    {"/demo.v1.Demo/Ticks", CLI_SERVER_STREAM,
     &demo__v1__tick_request__descriptor, &demo__v1__tick__descriptor},
    {"/demo.v1.Demo/GetStats", CLI_UNARY, &demo__v1__stats_request__descriptor,
     &demo__v1__stats__descriptor},
    {"/grpc.health.v1.Health/Check", CLI_UNARY,
     &grpc__health__v1__health_check_request__descriptor,
     &grpc__health__v1__health_check_response__descriptor},
    {"/grpc.health.v1.Health/Watch", CLI_SERVER_STREAM,
     &grpc__health__v1__health_check_request__descriptor,
     &grpc__health__v1__health_check_response__descriptor},
};

const cli_method_t *cli_methods_find(const char *name)
{
    char buf[256];
    if (name[0] == '/')
        name++;
    snprintf(buf, sizeof buf, "%s", name);
    if (strchr(buf, '/') == NULL) { /* pkg.Service.Method */
        char *dot = strrchr(buf, '.');
        if (dot == NULL)
            return NULL;
        *dot = '/';
    }
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strcmp(methods[i].path + 1, buf) == 0)
            return &methods[i];
    return NULL;
}

void cli_methods_list(FILE *out)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        fprintf(out, "%s\n", methods[i].path + 1);
}
