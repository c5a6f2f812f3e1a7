/*
 * rpcurl -- a grpcurl for this stack: lists, describes and calls any gRPC
 * method, learning the schema from the server (reflection v1, falling back
 * to v1alpha) or from -protoset / -proto files, and transcoding JSON to
 * protobuf through the descriptors (cli_json.c).
 *
 *   rpcurl [flags] ADDR list [SERVICE]
 *   rpcurl [flags] ADDR describe [SYMBOL]
 *   rpcurl [flags] ADDR package.Service/Method    (or package.Service.Method)
 *   rpcurl [flags] -protoset F | -proto F  list|describe [SYMBOL]   (no ADDR)
 *
 * Flags take one or two dashes, as Go's flag package (and grpcurl) allow;
 * run `rpcurl -help` for the list.
 *
 * Exit codes (grpcurl's): 0 success; 1 failure (bad input such as
 * malformed JSON, unknown service/method/symbol, no connection, reflection
 * failure); 2 usage error; 64 + status for a call that ended with a non-OK
 * gRPC status (68 DeadlineExceeded, 69 NotFound, 65 Canceled...).  In
 * --repeat mode: that of the most frequent non-OK status, or 0.
 *
 * Threads and signals: SIGINT/SIGTERM are blocked in every thread and taken
 * by one signal thread (sigwait), which cancels the root context: the call
 * in flight is reset (RST_STREAM CANCEL) and ends Canceled.  A second
 * signal exits at once (130).  --repeat runs C worker threads on one
 * channel; everything else runs on the main thread.
 *
 * TLS: any of -tls, -insecure, -cacert, -cert, -key, -servername turns it
 * on (the system's trust store unless -cacert); without them rpcurl speaks
 * h2c, as -plaintext asks.  (grpcurl defaults to TLS; rpcurl keeps h2c the
 * default because this project's servers and scripts speak it.)  -unix
 * takes ADDR as a Unix socket path.
 */
#include "cli_desc.h"
#include "cli_json.h"
#include "cli_reflect.h"
#include "cli_repeat.h"

#include <rpc/client.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define STATUS_OFFSET 64
#define CAUSE_SIGNAL 130
#define RPCURL_VERSION "0.2.0"
#define MAX_LIST 16
#define MAX_HEADERS 64

extern char **environ;

static const char *prog = "rpcurl";

static void usage(FILE *o)
{
    fprintf(o,
"Usage:\n"
"  %s [flags] ADDR list [SERVICE]\n"
"  %s [flags] ADDR describe [SYMBOL]\n"
"  %s [flags] ADDR package.Service/Method\n"
"  %s [flags] -protoset FILE | -proto FILE  list|describe [SYMBOL]\n\n"
"The schema comes from server reflection (grpc.reflection.v1, then v1alpha)\n"
"unless -proto or -protoset is given.\n\n"
"Flags (one or two dashes; 'name value' or 'name=value'):\n"
"  -d DATA               request JSON; '@' reads stdin; several concatenated\n"
"                        messages for client/bidi streams; none = empty message\n"
"  -format json|text     output format (input is JSON in both)\n"
"  -emit-defaults        print fields that hold their default value\n"
"  -allow-unknown-fields ignore unknown fields in the request JSON\n"
"  -H 'name: value'      header for the RPC and reflection (repeatable;\n"
"                        names lowercased)\n"
"  -rpc-header H         header for the RPC only (repeatable)\n"
"  -reflect-header H     header for reflection requests only (repeatable)\n"
"  -expand-headers       replace ${NAME} in header values with the environment\n"
"                        variable's value\n"
"  -proto FILE           .proto source (repeatable); needs protoc on PATH\n"
"  -import-path DIR      where -proto files and their imports live (repeatable;\n"
"                        default '.')\n"
"  -protoset FILE        FileDescriptorSet (protoc --descriptor_set_out\n"
"                        --include_imports) (repeatable)\n"
"  -max-time SECONDS     deadline for the whole operation\n"
"  --timeout DURATION    the same in Go syntax: 250ms, 1.5s, 2m, 1h30m\n"
"  -connect-timeout SECONDS  per connection attempt (default 10)\n"
"  -keepalive-time SECONDS   accepted; the client sends no keepalive pings yet\n"
"  -max-msg-sz BYTES     largest response message (default 4194304)\n"
"  -authority NAME       :authority to send (default ADDR)\n"
"  -user-agent S         prepended to the user-agent\n"
"  -plaintext            h2c (the default unless a TLS flag is given)\n"
"  -tls                  TLS, verified against the system's trust store\n"
"  -insecure             TLS without verifying the server's certificate\n"
"  -cacert FILE          TLS, verified against the CAs in FILE\n"
"  -cert FILE -key FILE  TLS client certificate (mTLS)\n"
"  -servername NAME      TLS: the name to verify (and send as SNI)\n"
"  -unix                 ADDR is a Unix socket path (or unix-abstract:NAME)\n"
"  -v                    verbose: method, metadata, headers, trailers, counts\n"
"  -vv                   -v plus timing data\n"
"  --repeat N --concurrency C  (unary only) make the call N times on C threads\n"
"                        and print p50/p90/p99\n"
"  -version, -help\n\n"
"Exit codes: 0 OK; 1 failure (bad input, unknown method, no connection);\n"
"2 usage error; 64+code for a non-OK gRPC status (68 DeadlineExceeded,\n"
"69 NotFound, 76 Unimplemented, 78 Unavailable, ...).\n"
"Ctrl-C cancels the call in flight (it ends Canceled).\n",
            prog, prog, prog, prog);
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry '%s -help' for more details.\n", prog);
    return EXIT_USAGE;
}

/* Go's time.ParseDuration: [-+]? ( number unit )+, units ns us µs ms s m h. */
static int parse_duration(const char *s, int64_t *out)
{
    double total = 0;
    if (*s == '+')
        s++;
    if (*s == '-' || *s == 0)
        return -1;
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    while (*s) {
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (end == s || errno || v < 0 || (*s != '.' && (*s < '0' || *s > '9')))
            return -1;
        s = end;
        double unit;
        if (strncmp(s, "ns", 2) == 0) unit = 1, s += 2;
        else if (strncmp(s, "us", 2) == 0) unit = 1e3, s += 2;
        else if (strncmp(s, "\xc2\xb5s", 3) == 0) unit = 1e3, s += 3;
        else if (strncmp(s, "ms", 2) == 0) unit = 1e6, s += 2;
        else if (*s == 's') unit = 1e9, s += 1;
        else if (*s == 'm') unit = 60e9, s += 1;
        else if (*s == 'h') unit = 3600e9, s += 1;
        else return -1;
        total += v * unit;
    }
    if (total > 9.2e18)
        return -1;
    *out = (int64_t)total;
    return 0;
}

static char *read_all(FILE *f)
{
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    while (b) {
        size_t k = fread(b + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0)
            break;
        if (n + 1 == cap) {
            char *nb = realloc(b, cap *= 2);
            if (nb == NULL) {
                free(b);
                return NULL;
            }
            b = nb;
        }
    }
    if (b)
        b[n] = 0;
    return b;
}

static void print_md(const char *title, const rpc_metadata_t *md)
{
    printf("\n%s\n", title);
    size_t n = rpc_metadata_count(md);
    if (n == 0)
        printf("(empty)\n");
    for (size_t i = 0; i < n; i++) {
        const char *k;
        const void *v;
        size_t len;
        rpc_metadata_at(md, i, &k, &v, &len);
        if (rpc_metadata_key_is_binary(k)) {
            printf("%s: ", k);
            for (size_t j = 0; j < len; j++)
                printf("%02x", ((const unsigned char *)v)[j]);
            printf("\n");
        } else {
            printf("%s: %s\n", k, (const char *)v);
        }
    }
}


static int exit_for(int status)
{
    return status == 0 ? 0 : STATUS_OFFSET + status;
}

/* ---- options ---------------------------------------------------------- */

/* TLS settings, handed to open_channel(): the seam for the transport. */
struct cli_tls {
    bool enabled;
    bool insecure;
    const char *cacert, *cert, *key, *servername;
};

struct opts {
    const char *target, *verb, *symbol, *data;
    rpc_metadata_t *md_rpc, *md_refl;
    int64_t timeout;      /* 0: none */
    int64_t connect_timeout;
    size_t max_msg;
    int verbose;
    bool plaintext, emit_defaults, allow_unknown, expand_headers, unix_addr;
    char unix_target[512];
    struct { const char *val; int where; /* 1 rpc, 2 reflection */ } headers[64];
    int nheaders;
    cli_format_t fmt;
    const char *authority, *user_agent;
    const char *protosets[MAX_LIST], *protos[MAX_LIST], *imports[MAX_LIST];
    int nprotosets, nprotos, nimports;
    struct cli_tls tls;
    long repeat, concurrency;
};

static ctx_t *root; /* cancelled by the signal thread */

static void *signal_thread(void *arg)
{
    sigset_t *set = arg;
    int sig, n = 0;
    while (sigwait(set, &sig) == 0) {
        if (++n > 1)
            _exit(CAUSE_SIGNAL);
        ctx_cancel_cause(root, CAUSE_SIGNAL);
    }
    return NULL;
}

static bool flag_is(const char *arg, const char *name)
{
    if (arg[0] != '-')
        return false;
    arg += arg[1] == '-' ? 2 : 1;
    return strcmp(arg, name) == 0;
}

/* ${NAME} -> the environment variable's value (-expand-headers); NULL
 * (with a message) when a variable is unset or the result too long. */
static const char *expand(const char *val, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = val; *p;) {
        const char *end;
        if (p[0] == '$' && p[1] == '{' && (end = strchr(p + 2, '}')) != NULL) {
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(end - p - 2), p + 2);
            const char *v = getenv(name);
            if (v == NULL) {
                fprintf(stderr, "%s: no value for environment variable %s\n", prog, name);
                return NULL;
            }
            size_t n = strlen(v);
            if (o + n >= cap)
                return NULL;
            memcpy(out + o, v, n);
            o += n;
            p = end + 1;
        } else {
            if (o + 1 >= cap)
                return NULL;
            out[o++] = *p++;
        }
    }
    out[o] = 0;
    return out;
}

static int add_header(rpc_metadata_t *a, rpc_metadata_t *b, const char *val,
                      bool expand_env)
{
    char buf[8192];
    if (expand_env && (val = expand(val, buf, sizeof buf)) == NULL)
        return EXIT_FAIL;
    const char *colon = strchr(val, ':');
    if (colon == NULL || colon == val)
        return usage_error("header must be 'name: value': %s", val);
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)(colon - val), val);
    for (char *k = key; *k; k++)
        if (*k >= 'A' && *k <= 'Z')
            *k = (char)(*k - 'A' + 'a');
    const char *v = colon + 1;
    while (*v == ' ')
        v++;
    if ((a && rpc_metadata_add(a, key, v, strlen(v)) != 0) ||
        (b && rpc_metadata_add(b, key, v, strlen(v)) != 0))
        return usage_error("invalid header: %s", val);
    return 0;
}

static int seconds(const char *val, int64_t *ns)
{
    char *end;
    errno = 0;
    double s = strtod(val, &end);
    if (*val == 0 || *end || errno || s < 0 || s > 9e9)
        return -1;
    *ns = (int64_t)(s * 1e9);
    return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    const char *pos[4];
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char name[64];
        const char *val = NULL;
        if (a[0] != '-' || a[1] == 0) {
            if (npos == 4)
                return usage_error("too many arguments: %s", a);
            pos[npos++] = a;
            continue;
        }
        snprintf(name, sizeof name, "%s", a);
        char *eq = strchr(name, '=');
        if (eq) {
            *eq = 0;
            val = a + (eq - name) + 1;
        }
        a = name;
#define NEED_VAL()                                                      \
    do {                                                                \
        if (val == NULL) {                                              \
            if (i + 1 >= argc)                                          \
                return usage_error("flag needs an argument: %s", a);    \
            val = argv[++i];                                            \
        }                                                               \
    } while (0)
#define LIST_ADD(arr, n)                                                \
    do {                                                                \
        NEED_VAL();                                                     \
        if ((n) == MAX_LIST)                                            \
            return usage_error("too many %s flags", a);                 \
        (arr)[(n)++] = val;                                             \
    } while (0)
        int rc = 0;
        if (flag_is(a, "help") || flag_is(a, "h")) {
            usage(stdout);
            exit(0);
        } else if (flag_is(a, "version")) {
            fprintf(stderr, "%s %s\n", prog, RPCURL_VERSION);
            exit(0);
        } else if (flag_is(a, "v")) {
            o->verbose = o->verbose > 1 ? o->verbose : 1;
        } else if (flag_is(a, "vv")) {
            o->verbose = 2;
        } else if (flag_is(a, "plaintext")) {
            o->plaintext = true;
        } else if (flag_is(a, "tls")) {
            o->tls.enabled = true;
        } else if (flag_is(a, "unix")) {
            o->unix_addr = true;
        } else if (flag_is(a, "emit-defaults")) {
            o->emit_defaults = true;
        } else if (flag_is(a, "allow-unknown-fields")) {
            o->allow_unknown = true;
        } else if (flag_is(a, "insecure")) {
            o->tls.insecure = o->tls.enabled = true;
        } else if (flag_is(a, "cacert") || flag_is(a, "cert") ||
                   flag_is(a, "key") || flag_is(a, "servername")) {
            NEED_VAL();
            const char **slot = flag_is(a, "cacert") ? &o->tls.cacert
                               : flag_is(a, "cert") ? &o->tls.cert
                               : flag_is(a, "key")  ? &o->tls.key
                                                    : &o->tls.servername;
            *slot = val;
            o->tls.enabled = true;
        } else if (flag_is(a, "d")) {
            NEED_VAL();
            o->data = val;
        } else if (flag_is(a, "format")) {
            NEED_VAL();
            if (strcmp(val, "json") == 0)
                o->fmt = CLI_FORMAT_JSON;
            else if (strcmp(val, "text") == 0)
                o->fmt = CLI_FORMAT_TEXT;
            else
                return usage_error("the -format option must be 'json' or 'text': %s", val);
        } else if (flag_is(a, "H") || flag_is(a, "rpc-header") ||
                   flag_is(a, "reflect-header")) {
            NEED_VAL();
            if (o->nheaders == MAX_HEADERS)
                return usage_error("too many header flags (%d at most)", "64");
            o->headers[o->nheaders].val = val;
            o->headers[o->nheaders++].where = flag_is(a, "H") ? 3
                                            : flag_is(a, "rpc-header") ? 1 : 2;
        } else if (flag_is(a, "expand-headers")) {
            o->expand_headers = true;
        } else if (flag_is(a, "proto")) {
            LIST_ADD(o->protos, o->nprotos);
        } else if (flag_is(a, "import-path")) {
            LIST_ADD(o->imports, o->nimports);
        } else if (flag_is(a, "protoset")) {
            LIST_ADD(o->protosets, o->nprotosets);
        } else if (flag_is(a, "authority")) {
            NEED_VAL();
            o->authority = val;
        } else if (flag_is(a, "user-agent")) {
            NEED_VAL();
            o->user_agent = val;
        } else if (flag_is(a, "timeout")) {
            NEED_VAL();
            if (parse_duration(val, &o->timeout) != 0)
                return usage_error("invalid duration (Go syntax, e.g. 250ms): %s", val);
            if (o->timeout == 0)
                o->timeout = 1; /* already expired, as Go's WithTimeout(0) */
        } else if (flag_is(a, "max-time") || flag_is(a, "connect-timeout") ||
                   flag_is(a, "keepalive-time")) {
            NEED_VAL();
            int64_t ns;
            if (seconds(val, &ns) != 0)
                return usage_error("invalid number of seconds: %s", val);
            if (flag_is(a, "max-time"))
                o->timeout = ns > 0 ? ns : 1;
            else if (flag_is(a, "connect-timeout"))
                o->connect_timeout = ns;
        } else if (flag_is(a, "max-msg-sz")) {
            NEED_VAL();
            char *end;
            long long v = strtoll(val, &end, 10);
            if (*end || v <= 0)
                return usage_error("invalid -max-msg-sz: %s", val);
            o->max_msg = (size_t)v;
        } else if (flag_is(a, "repeat") || flag_is(a, "concurrency")) {
            bool rep = flag_is(a, "repeat");
            NEED_VAL();
            char *end;
            long v = strtol(val, &end, 10);
            if (*end || v <= 0 || v > 100000000)
                return usage_error("invalid count: %s", val);
            if (rep)
                o->repeat = v;
            else
                o->concurrency = v;
        } else {
            return usage_error("flag provided but not defined: %s", a);
        }
        if (rc)
            return rc;
    }
    for (int h = 0; h < o->nheaders; h++) {
        int rc = add_header(o->headers[h].where & 1 ? o->md_rpc : NULL,
                            o->headers[h].where & 2 ? o->md_refl : NULL,
                            o->headers[h].val, o->expand_headers);
        if (rc)
            return rc;
    }
    if (o->nprotos && o->nprotosets)
        return usage_error("use either -proto or -protoset, not both%s", "");
    if (o->tls.enabled && o->plaintext)
        return usage_error("the -plaintext flag cannot be used with TLS flags%s", "");
    if ((o->tls.cert == NULL) != (o->tls.key == NULL))
        return usage_error("the -cert and -key flags must be used together%s", "");
    bool files = o->nprotos || o->nprotosets;
    int k = 0;
    if (npos > 0 && files && (!strcmp(pos[0], "list") || !strcmp(pos[0], "describe"))) {
        o->target = NULL;
    } else {
        if (npos == 0)
            return usage_error("too few arguments%s", "");
        o->target = pos[k++];
        if (o->unix_addr && strncmp(o->target, "unix", 4) != 0) {
            snprintf(o->unix_target, sizeof o->unix_target, "unix:%s", o->target);
            o->target = o->unix_target;
        }
    }
    if (k >= npos)
        return usage_error("too few arguments: need 'list', 'describe' or a method%s", "");
    o->verb = pos[k++];
    if (strcmp(o->verb, "list") == 0 || strcmp(o->verb, "describe") == 0) {
        if (k < npos)
            o->symbol = pos[k++];
    } else {
        o->symbol = o->verb;
        o->verb = "invoke";
    }
    if (k < npos)
        return usage_error("too many arguments: %s", pos[k]);
    if (o->concurrency > 0 && o->repeat == 0)
        o->repeat = o->concurrency;
    if (o->repeat > 0 && o->concurrency == 0)
        o->concurrency = 1;
    if (o->concurrency > 1024)
        return usage_error("concurrency above 1024%s", "");
    return 0;
}

/* ---- schema sources ------------------------------------------------------- */

static int load_file(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    char *b = read_all(f);
    long n = ftell(f);
    fclose(f);
    if (b == NULL || n < 0) {
        free(b);
        return -1;
    }
    *out = (uint8_t *)b;
    *len = (size_t)n;
    return 0;
}

/* Runs protoc on the -proto files, adding its FileDescriptorSet. */
static int load_protos(const struct opts *o, cli_pool_t *pool)
{
    char tmpl[] = "/tmp/rpcurl-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0) {
        perror("rpcurl: temporary file");
        return -1;
    }
    close(fd);
    char outarg[64];
    snprintf(outarg, sizeof outarg, "--descriptor_set_out=%s", tmpl);
    const char *argv[3 + 2 * MAX_LIST + MAX_LIST + 2];
    int n = 0;
    argv[n++] = "protoc";
    argv[n++] = outarg;
    argv[n++] = "--include_imports";
    char ibuf[MAX_LIST][4096];
    for (int i = 0; i < o->nimports; i++) {
        snprintf(ibuf[i], sizeof ibuf[i], "-I%s", o->imports[i]);
        argv[n++] = ibuf[i];
    }
    if (o->nimports == 0)
        argv[n++] = "-I.";
    for (int i = 0; i < o->nprotos; i++)
        argv[n++] = o->protos[i];
    argv[n] = NULL;
    pid_t pid;
    int rc = posix_spawnp(&pid, "protoc", NULL, NULL, (char *const *)argv, environ);
    int st = 0;
    if (rc != 0) {
        fprintf(stderr, "Failed to process proto source files: cannot run protoc "
                        "(-proto needs protoc on PATH): %s\n", strerror(rc));
    } else if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
        fprintf(stderr, "Failed to process proto source files: protoc failed\n");
        rc = -1;
    } else {
        uint8_t *b;
        size_t len;
        rc = load_file(tmpl, &b, &len);
        if (rc == 0) {
            rc = cli_pool_add_set(pool, b, len);
            free(b);
        }
        if (rc)
            fprintf(stderr, "Failed to process proto source files: bad protoc output\n");
    }
    unlink(tmpl);
    return rc ? -1 : 0;
}

static int load_sources(const struct opts *o, cli_pool_t *pool)
{
    for (int i = 0; i < o->nprotosets; i++) {
        uint8_t *b;
        size_t len;
        if (load_file(o->protosets[i], &b, &len) != 0) {
            fprintf(stderr, "Failed to process proto descriptor sets: %s: %s\n",
                    o->protosets[i], strerror(errno));
            return -1;
        }
        int rc = cli_pool_add_set(pool, b, len);
        free(b);
        if (rc) {
            fprintf(stderr, "Failed to process proto descriptor sets: %s: not a "
                            "FileDescriptorSet\n", o->protosets[i]);
            return -1;
        }
    }
    return o->nprotos ? load_protos(o, pool) : 0;
}

/* Where symbols come from: the pool (files) or reflection filling it. */
struct schema {
    cli_pool_t *pool;
    cli_refl_t *refl; /* NULL with -proto/-protoset */
};

static int resolve(struct schema *s, const char *sym, char *err, size_t errlen)
{
    if (cli_pool_find(s->pool, sym))
        return 0;
    if (s->refl)
        return cli_refl_symbol(s->refl, s->pool, sym, err, errlen);
    snprintf(err, errlen, "Symbol not found: %s", sym[0] == '.' ? sym + 1 : sym);
    return -1;
}

/* ---- channel ---------------------------------------------------------------- */

static int open_channel(const struct opts *o, const struct cli_tls *tls,
                        rpc_client_channel_t **ch)
{
    rpc_client_options_t *co = rpc_client_options_new();
    if (co == NULL)
        return -1;
    int rc = 0;
    if (tls->enabled) {
        rc = rpc_client_options_set_tls(co, true);
        if (rc == 0 && tls->insecure)
            rc = rpc_client_options_set_tls_insecure(co, true);
        if (rc == 0 && tls->cacert)
            rc = rpc_client_options_set_tls_ca_file(co, tls->cacert);
        if (rc == 0 && tls->servername)
            rc = rpc_client_options_set_tls_server_name(co, tls->servername);
        if (rc == 0 && tls->cert)
            rc = rpc_client_options_set_tls_client_cert(co, tls->cert, tls->key);
        if (rc != 0) {
            fprintf(stderr, "Failed to dial target host \"%s\": TLS setup: %s\n",
                    o->target, rpc_strerror(rc));
            rpc_client_options_free(co);
            return -1;
        }
    }
    rc = rpc_client_options_set_connect_timeout(
        co, o->connect_timeout > 0 ? o->connect_timeout : 10 * CTX_SECOND);
    if (rc == 0 && o->max_msg > 0)
        rc = rpc_client_options_set_max_recv_message(co, o->max_msg);
    if (rc == 0 && (o->authority || o->unix_addr))
        rc = rpc_client_options_set_authority(co, o->authority ? o->authority
                                                               : "localhost");
    if (rc == 0)
        rc = rpc_client_channel_new(o->target, co, ch);
    rpc_client_options_free(co);
    if (rc != 0) {
        fprintf(stderr, "Failed to dial target host \"%s\": %s\n", o->target,
                rpc_strerror(rc));
        return -1;
    }
    return 0;
}

/* ---- list and describe -------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every service's full name, sorted, from reflection or the loaded
 * descriptors: *names (the caller frees it and each name).  Returns the
 * count, or -1 after saying why on stderr. */
static long service_names(struct schema *s, char ***names)
{
    char err[1024];
    long n;
    *names = NULL;
    if (s->refl) {
        n = cli_refl_list(s->refl, names, err, sizeof err);
        if (n < 0) {
            fprintf(stderr, "Failed to list services: %s\n", err);
            return -1;
        }
    } else {
        const cli_sym_t **svcs;
        n = cli_pool_services(s->pool, &svcs);
        if (n < 0)
            return -1;
        *names = calloc((size_t)n + 1, sizeof **names);
        for (long i = 0; *names && i < n; i++)
            (*names)[i] = strdup(svcs[i]->name);
        free(svcs);
        if (*names == NULL)
            return -1;
    }
    qsort(*names, (size_t)n, sizeof **names, cmp_str);
    return n;
}

static int do_list(const struct opts *o, struct schema *s)
{
    char err[1024];
    if (o->symbol) {
        if (resolve(s, o->symbol, err, sizeof err) != 0) {
            fprintf(stderr, "Failed to list methods for service \"%s\": %s\n",
                    o->symbol, err);
            return EXIT_FAIL;
        }
        const cli_sym_t *sym = cli_pool_find(s->pool, o->symbol);
        if (sym == NULL || sym->kind != CLI_SYM_SERVICE) {
            fprintf(stderr, "Failed to list methods for service \"%s\": Service "
                            "not found: %s\n", o->symbol, o->symbol);
            return EXIT_FAIL;
        }
        const cli_service_t *sv = sym->desc;
        char **names = calloc(sv->n_method + 1, sizeof *names);
        if (names == NULL)
            return EXIT_FAIL;
        for (size_t i = 0; i < sv->n_method; i++)
            names[i] = sv->method[i]->name;
        qsort(names, sv->n_method, sizeof *names, cmp_str);
        for (size_t i = 0; i < sv->n_method; i++)
            printf("%s.%s\n", sym->name, names[i]);
        if (sv->n_method == 0)
            printf("(No methods)\n");
        free(names);
        return 0;
    }
    char **names = NULL;
    long n = service_names(s, &names);
    if (n < 0)
        return EXIT_FAIL;
    for (long i = 0; i < n; i++) {
        printf("%s\n", names[i]);
        free(names[i]);
    }
    if (n == 0)
        printf("(No services)\n");
    free(names);
    return 0;
}

static int do_describe(const struct opts *o, struct schema *s)
{
    char err[1024];
    if (o->symbol) {
        const char *sym = o->symbol[0] == '.' ? o->symbol + 1 : o->symbol;
        if (resolve(s, sym, err, sizeof err) != 0) {
            fprintf(stderr, "Failed to resolve symbol \"%s\": %s\n", sym, err);
            return EXIT_FAIL;
        }
        const cli_sym_t *x = cli_pool_find(s->pool, sym);
        if (x == NULL) {
            fprintf(stderr, "Failed to resolve symbol \"%s\": Symbol not found: %s\n",
                    sym, sym);
            return EXIT_FAIL;
        }
        cli_describe(s->pool, x);
        return 0;
    }
    /* every service */
    char **names = NULL;
    long n = service_names(s, &names);
    if (n < 0)
        return EXIT_FAIL;
    int rc = 0;
    for (long i = 0; i < n; i++) {
        if (rc == 0 && resolve(s, names[i], err, sizeof err) != 0) {
            fprintf(stderr, "Failed to resolve symbol \"%s\": %s\n", names[i], err);
            rc = EXIT_FAIL;
        }
        const cli_sym_t *x = rc ? NULL : cli_pool_find(s->pool, names[i]);
        if (x)
            cli_describe(s->pool, x);
        free(names[i]);
    }
    free(names);
    return rc;
}

/* ---- invoke ------------------------------------------------------------------- */

struct target {
    char path[512];           /* "/pkg.Svc/Method" */
    const cli_method_t *m;
    const cli_msg_t *in, *out;
};

static int find_method(struct schema *s, const char *spec, struct target *t)
{
    char svc[400], err[1024];
    const char *sep = strrchr(spec, '/');
    if (sep == NULL)
        sep = strrchr(spec, '.');
    if (sep == NULL || sep == spec || sep[1] == 0 ||
        (size_t)(sep - spec) >= sizeof svc) {
        fprintf(stderr, "Invalid method name: \"%s\" (want package.Service/Method)\n",
                spec);
        return EXIT_FAIL;
    }
    snprintf(svc, sizeof svc, "%.*s", (int)(sep - spec), spec[0] == '.' ? spec + 1 : spec);
    if (spec[0] == '.')
        snprintf(svc, sizeof svc, "%.*s", (int)(sep - spec - 1), spec + 1);
    if (resolve(s, svc, err, sizeof err) != 0) {
        fprintf(stderr, "Error invoking method \"%s\": target server does not expose "
                        "service \"%s\": %s\n", spec, svc, err);
        return EXIT_FAIL;
    }
    const cli_sym_t *sym = cli_pool_find(s->pool, svc);
    if (sym == NULL || sym->kind != CLI_SYM_SERVICE) {
        fprintf(stderr, "Error invoking method \"%s\": \"%s\" is not a service\n",
                spec, svc);
        return EXIT_FAIL;
    }
    const cli_service_t *sv = sym->desc;
    for (size_t i = 0; i < sv->n_method; i++)
        if (strcmp(sv->method[i]->name, sep + 1) == 0)
            t->m = sv->method[i];
    if (t->m == NULL) {
        fprintf(stderr, "Error invoking method \"%s\": service \"%s\" does not "
                        "include a method named \"%s\"\n", spec, svc, sep + 1);
        return EXIT_FAIL;
    }
    t->in = cli_pool_message(s->pool, t->m->input_type);
    t->out = cli_pool_message(s->pool, t->m->output_type);
    if (t->in == NULL || t->out == NULL) {
        fprintf(stderr, "Error invoking method \"%s\": unknown message types\n", spec);
        return EXIT_FAIL;
    }
    snprintf(t->path, sizeof t->path, "/%s/%s", svc, t->m->name);
    return 0;
}

/* The request messages from -d, encoded: *reqs (malloc'ed array of
 * buffers). */
static int build_requests(const struct opts *o, struct schema *s,
                          const struct target *t, cli_buf_t **reqs, size_t *nreq)
{
    char *stdin_data = NULL;
    const char *p = o->data ? o->data : "";
    if (o->data && strcmp(o->data, "@") == 0) {
        p = stdin_data = read_all(stdin);
        if (p == NULL) {
            fprintf(stderr, "Failed to read request data from stdin\n");
            return EXIT_FAIL;
        }
    }
    size_t n = 0, cap = 4;
    cli_buf_t *v = calloc(cap, sizeof *v);
    char err[1024];
    int rc = v ? 0 : EXIT_FAIL;
    while (rc == 0 && !cli_json_at_end(p)) {
        cli_jv_t *j = cli_jv_parse(&p, err, sizeof err);
        if (j == NULL) {
            fprintf(stderr, "Error invoking method \"%s\": error getting request "
                            "data: %s\n", o->symbol, err);
            rc = EXIT_FAIL;
            break;
        }
        if (n == cap) {
            cli_buf_t *nv = realloc(v, (cap *= 2) * sizeof *v);
            if (nv == NULL) {
                cli_jv_free(j);
                rc = EXIT_FAIL;
                break;
            }
            v = nv;
        }
        memset(&v[n], 0, sizeof v[n]);
        if (cli_json_encode(s->pool, t->in, j, o->allow_unknown, &v[n], err,
                            sizeof err) != 0) {
            fprintf(stderr, "Error invoking method \"%s\": error getting request "
                            "data: %s\n", o->symbol, err);
            rc = EXIT_FAIL;
        }
        n++;
        cli_jv_free(j);
    }
    free(stdin_data);
    bool single = !t->m->client_streaming;
    if (rc == 0 && single && n > 1) {
        fprintf(stderr, "Error invoking method \"%s\": method is not client-streaming "
                        "but %zu request messages were given\n", o->symbol, n);
        rc = EXIT_FAIL;
    }
    if (rc == 0 && single && n == 0) {
        memset(&v[0], 0, sizeof v[0]);
        n = 1; /* one empty message */
    }
    if (rc != 0) {
        for (size_t i = 0; v && i < n; i++)
            free(v[i].b);
        free(v);
        return rc;
    }
    *reqs = v;
    *nreq = n;
    return 0;
}

static void print_error(rpc_client_call_t *call, int status)
{
    const char *msg = call ? rpc_client_call_message(call) : "";
    fprintf(stderr, "ERROR:\n  Code: %s\n  Message: %s\n", cli_code_name(status),
            msg ? msg : "");
}

static int one_call(const struct opts *o, struct schema *s, ctx_t *c,
                    rpc_client_channel_t *ch, const struct target *t,
                    cli_buf_t *reqs, size_t nreq)
{
    int64_t t0 = ctx_now();
    if (o->verbose) {
        printf("\nResolved method descriptor:\n");
        cli_print_method(t->m, 0);
        print_md("Request metadata to send:", o->md_rpc);
    }
    rpc_client_call_t *call;
    int rc = rpc_client_call_start(c, ch, t->path, o->md_rpc, &call);
    if (rc != 0) {
        fprintf(stderr, "Failed to start the call: %s\n", rpc_strerror(rc));
        return EXIT_FAIL;
    }
    size_t sent = 0;
    for (size_t i = 0; i < nreq; i++) {
        if (rpc_client_call_send(c, call, reqs[i].b ? reqs[i].b : (uint8_t *)"",
                                 reqs[i].n) != 0)
            break;
        sent++;
    }
    rpc_client_call_close_send(call);
    bool shown_headers = false;
    size_t received = 0, bytes = 0;
    int bad = 0;
    for (;;) {
        void *data;
        size_t len;
        if (rpc_client_call_recv(c, call, &data, &len) != 0)
            break;
        if (o->verbose && !shown_headers) {
            print_md("Response headers received:", rpc_client_call_headers(c, call));
            printf("\nResponse contents:\n");
            shown_headers = true;
        }
        char err[1024];
        received++;
        bytes += len;
        if (o->fmt == CLI_FORMAT_TEXT && received > 1)
            fputc(0x1e, stdout); /* grpcurl's record separator */
        if (cli_json_print(stdout, s->pool, t->out, data, len, o->fmt,
                           o->emit_defaults, err, sizeof err) != 0) {
            fprintf(stderr, "Failed to format response message %zu: %s\n",
                    received, err);
            bad = 1;
        }
        free(data);
        fflush(stdout);
    }
    int status = rpc_client_call_finish(c, call);
    if (status < 0)
        status = RPC_STATUS_UNKNOWN;
    if (o->verbose) {
        if (!shown_headers)
            print_md("Response headers received:", rpc_client_call_headers(c, call));
        print_md("Response trailers received:", rpc_client_call_trailers(call));
        printf("Sent %zu request%s and received %zu response%s\n", sent,
               sent == 1 ? "" : "s", received, received == 1 ? "" : "s");
        if (o->verbose > 1)
            printf("Timing Data: %.3f ms total; estimated response size: %zu bytes\n",
                   (double)(ctx_now() - t0) / 1e6, bytes);
    }
    if (status != 0)
        print_error(call, status);
    rpc_client_call_free(call);
    return status ? exit_for(status) : bad ? EXIT_FAIL : 0;
}

/* ---- main --------------------------------------------------------------------- */

static int run(struct opts *o, rpc_client_channel_t *ch)
{
    struct schema s = {.pool = cli_pool_new()};
    int rc = s.pool ? 0 : EXIT_FAIL;
    ctx_t *c = NULL;
    if (rc == 0)
        c = o->timeout > 0 ? ctx_with_timeout(root, o->timeout) : ctx_with_cancel(root);
    if (c == NULL)
        rc = EXIT_FAIL;
    if (rc == 0 && load_sources(o, s.pool) != 0)
        rc = EXIT_FAIL;
    if (rc == 0 && ch && !o->nprotos && !o->nprotosets) {
        s.refl = cli_refl_new(c, ch, o->md_refl);
        if (s.refl == NULL)
            rc = EXIT_FAIL;
    }
    if (rc == 0 && strcmp(o->verb, "list") == 0) {
        rc = do_list(o, &s);
    } else if (rc == 0 && strcmp(o->verb, "describe") == 0) {
        rc = do_describe(o, &s);
    } else if (rc == 0) {
        struct target t;
        memset(&t, 0, sizeof t);
        cli_buf_t *reqs = NULL;
        size_t nreq = 0;
        rc = find_method(&s, o->symbol, &t);
        cli_refl_free(s.refl); /* done with reflection: close its stream */
        s.refl = NULL;
        if (rc == 0)
            rc = build_requests(o, &s, &t, &reqs, &nreq);
        if (rc == 0 && o->repeat > 0 &&
            (t.m->client_streaming || t.m->server_streaming)) {
            fprintf(stderr, "--repeat supports unary methods only\n");
            rc = EXIT_USAGE;
        } else if (rc == 0 && o->repeat > 0) {
            rc = exit_for(cli_repeat(root, ch, t.path, o->md_rpc, reqs[0].b,
                                     reqs[0].n, o->repeat, o->concurrency,
                                     o->timeout));
        }
        else if (rc == 0)
            rc = one_call(o, &s, c, ch, &t, reqs, nreq);
        for (size_t i = 0; i < nreq; i++)
            free(reqs[i].b);
        free(reqs);
    }
    cli_refl_free(s.refl);
    ctx_release(c);
    cli_pool_free(s.pool);
    return rc;
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    o.md_rpc = rpc_metadata_new();
    o.md_refl = rpc_metadata_new();
    if (o.md_rpc == NULL || o.md_refl == NULL)
        return EXIT_FAIL;
    int rc = parse_args(argc, argv, &o);
    if (rc == 0 && o.user_agent) {
        char ua[512];
        snprintf(ua, sizeof ua, "%s rpcurl/%s", o.user_agent, RPCURL_VERSION);
        if (rpc_metadata_add(o.md_rpc, "user-agent", ua, strlen(ua)) != 0 ||
            rpc_metadata_add(o.md_refl, "user-agent", ua, strlen(ua)) != 0)
            rc = usage_error("invalid -user-agent: %s", o.user_agent);
    }
    if (rc == 0 && o.target == NULL && strcmp(o.verb, "invoke") == 0)
        rc = usage_error("an address is needed to invoke %s", o.symbol);
    if (rc != 0) {
        rpc_metadata_free(o.md_rpc);
        rpc_metadata_free(o.md_refl);
        return rc;
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* inherited by all threads */
    root = ctx_with_cancel(ctx_background());
    pthread_t sig_th;
    pthread_create(&sig_th, NULL, signal_thread, &set);
    pthread_detach(sig_th);

    rpc_client_channel_t *ch = NULL;
    if (o.target && open_channel(&o, &o.tls, &ch) != 0)
        rc = EXIT_FAIL;
    if (rc == 0)
        rc = run(&o, ch);
    rpc_client_channel_free(ch);
    rpc_metadata_free(o.md_rpc);
    rpc_metadata_free(o.md_refl);
    fflush(stdout);
    return rc;
}
