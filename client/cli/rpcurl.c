/*
 * rpcurl -- a grpcurl-style command-line client for the project's services
 * (grpc.testing.TestService, demo.v1.Demo, grpc.health.v1.Health), built on
 * <rpc/client.h>.
 *
 *   rpcurl [flags] host:port list
 *   rpcurl [flags] host:port package.Service/Method
 *
 * Flags take one or two dashes, as Go's flag package (and grpcurl) allow:
 *   -d DATA            request(s) as JSON; several objects for streaming
 *                      requests; '@' reads standard input
 *   -H 'key: value'    request metadata (repeatable)
 *   --timeout DUR      deadline, Go duration syntax (250ms, 1.5s, 2m, 1h30m)
 *   -max-time SECS     the same in seconds (grpcurl's flag)
 *   -connect-timeout SECS
 *   -max-msg-sz BYTES  largest response message (default 4 MiB)
 *   -plaintext         accepted for grpcurl compatibility (always h2c)
 *   -v                 print request metadata, response headers, trailers
 *   --repeat N --concurrency C
 *                      run the call N times on C threads (one channel) and
 *                      print a latency summary (p50/p90/p99); a progress
 *                      line goes to a terminal's stderr
 *
 * Output: each response message as JSON (protojson style) on stdout; on a
 * non-OK status, "ERROR:\n  Code: NAME\n  Message: text" on stderr.
 *
 * Exit codes: 0 success; 1 failure before any call (bad target, unknown
 * method, I/O); 2 usage error; 64 + status for a call that ended with a
 * non-OK gRPC status (65 CANCELLED, 68 DEADLINE_EXCEEDED, 76 UNIMPLEMENTED,
 * 78 UNAVAILABLE, ...) -- grpcurl's convention.  In --repeat mode the exit
 * code is that of the most frequent non-OK status, or 0.
 *
 * Signals: SIGINT/SIGTERM are blocked in every thread and taken by one
 * signal thread (sigwait), which cancels the root context: the in-flight
 * call is reset (RST_STREAM CANCEL) and ends CANCELLED.  A second signal
 * exits at once (130).
 */
#include "cli_json.h"
#include "cli_methods.h"

#include <rpc/client.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define STATUS_OFFSET 64
#define CAUSE_SIGNAL 130

static const char *prog = "rpcurl";

static void usage(FILE *o)
{
    fprintf(o,
            "Usage:\n"
            "  %s [flags] host:port list\n"
            "  %s [flags] host:port package.Service/Method\n\n"
            "Flags (one or two dashes):\n"
            "  -d DATA              request JSON ('@' = stdin); several objects for\n"
            "                       client/bidi streaming\n"
            "  -H 'key: value'      request metadata (repeatable)\n"
            "  --timeout DURATION   deadline, Go syntax: 250ms, 1.5s, 2m, 1h30m\n"
            "  -max-time SECONDS    deadline in seconds (grpcurl)\n"
            "  -connect-timeout SECONDS\n"
            "  -max-msg-sz BYTES    largest response message (default 4194304)\n"
            "  -plaintext           accepted; connections are always h2c\n"
            "  -v                   verbose: metadata, headers, trailers\n"
            "  --repeat N           make the call N times ...\n"
            "  --concurrency C      ... on C threads; prints p50/p90/p99\n"
            "  -help                this text\n\n"
            "Exit codes: 0 OK; 1 failure before the call; 2 usage error;\n"
            "64+code for a gRPC status (65 CANCELLED, 68 DEADLINE_EXCEEDED,\n"
            "76 UNIMPLEMENTED, 77 INTERNAL, 78 UNAVAILABLE, ...).\n"
            "Ctrl-C cancels the call in flight (it ends CANCELLED).\n",
            prog, prog);
}

static int usage_error(const char *fmt, const char *arg)
{
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

/* ---- options ------------------------------------------------------------ */

struct opts {
    const char *target, *method, *data;
    rpc_metadata_t *md;
    int64_t timeout;      /* 0: none */
    int64_t connect_timeout;
    size_t max_msg;
    bool verbose, list;
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

static void print_error(rpc_client_call_t *call, int status)
{
    fprintf(stderr, "ERROR:\n  Code: %s\n  Message: %s\n",
            rpc_status_name(status), rpc_client_call_message(call));
}

/* ---- one call, printed ----------------------------------------------------- */

static int one_call(const struct opts *o, rpc_client_channel_t *ch,
                    const cli_method_t *m, ProtobufCMessage **reqs, size_t nreq)
{
    ctx_t *c = o->timeout > 0 ? ctx_with_timeout(root, o->timeout)
                              : ctx_with_cancel(root);
    if (c == NULL)
        return EXIT_FAIL;
    if (o->verbose)
        print_md("Request metadata to send:", o->md);
    rpc_client_call_t *call;
    int rc = rpc_client_call_start(c, ch, m->path, o->md, &call);
    if (rc != 0) {
        fprintf(stderr, "Failed to start the call: %s\n", rpc_strerror(rc));
        ctx_release(c);
        return EXIT_FAIL;
    }
    size_t sent = 0;
    for (size_t i = 0; i < nreq; i++) {
        size_t n = protobuf_c_message_get_packed_size(reqs[i]);
        uint8_t *buf = malloc(n ? n : 1);
        if (buf == NULL)
            break;
        protobuf_c_message_pack(reqs[i], buf);
        rc = rpc_client_call_send(c, call, buf, n);
        free(buf);
        if (rc != 0)
            break;
        sent++;
    }
    rpc_client_call_close_send(call);
    bool shown_headers = false;
    size_t received = 0;
    for (;;) {
        void *data;
        size_t len;
        rc = rpc_client_call_recv(c, call, &data, &len);
        if (rc != 0)
            break;
        if (o->verbose && !shown_headers) {
            print_md("Response headers received:",
                     rpc_client_call_headers(c, call));
            printf("\nResponse contents:\n");
            shown_headers = true;
        }
        ProtobufCMessage *resp =
            protobuf_c_message_unpack(m->output, NULL, len, data);
        free(data);
        received++;
        if (resp == NULL) {
            fprintf(stderr, "Failed to parse a response message as %s\n",
                    m->output->name);
            continue;
        }
        cli_json_print(stdout, resp);
        protobuf_c_message_free_unpacked(resp, NULL);
        fflush(stdout);
    }
    int status = rpc_client_call_finish(c, call);
    if (o->verbose) {
        if (!shown_headers)
            print_md("Response headers received:",
                     rpc_client_call_headers(c, call));
        print_md("Response trailers received:",
                 rpc_client_call_trailers(call));
        printf("Sent %zu request%s and received %zu response%s\n", sent,
               sent == 1 ? "" : "s", received, received == 1 ? "" : "s");
    }
    if (status != 0)
        print_error(call, status);
    rpc_client_call_free(call);
    ctx_release(c);
    return exit_for(status);
}

/* ---- repeat mode ------------------------------------------------------------- */

struct bench {
    const struct opts *o;
    rpc_client_channel_t *ch;
    const cli_method_t *m;
    uint8_t *req;
    size_t req_len;
    atomic_long next, done;
    int64_t *lat;
    int *status;
};

static void *bench_worker(void *arg)
{
    struct bench *b = arg;
    for (;;) {
        long i = atomic_fetch_add(&b->next, 1);
        if (i >= b->o->repeat || ctx_err(root))
            break;
        ctx_t *c = b->o->timeout > 0 ? ctx_with_timeout(root, b->o->timeout)
                                     : ctx_retain(root);
        int64_t t0 = ctx_now();
        int st = rpc_client_unary(c, b->ch, b->m->path, b->o->md, b->req,
                                  b->req_len, NULL);
        b->lat[i] = ctx_now() - t0;
        b->status[i] = st < 0 ? RPC_STATUS_INTERNAL : st;
        ctx_release(c);
        atomic_fetch_add(&b->done, 1);
    }
    return NULL;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int repeat_mode(const struct opts *o, rpc_client_channel_t *ch,
                       const cli_method_t *m, ProtobufCMessage *req)
{
    if (m->kind != CLI_UNARY) {
        fprintf(stderr, "--repeat supports unary methods only\n");
        return EXIT_USAGE;
    }
    struct bench b = {.o = o, .ch = ch, .m = m};
    b.req_len = protobuf_c_message_get_packed_size(req);
    b.req = malloc(b.req_len ? b.req_len : 1);
    b.lat = calloc((size_t)o->repeat, sizeof *b.lat);
    b.status = calloc((size_t)o->repeat, sizeof *b.status);
    pthread_t *th = calloc((size_t)o->concurrency, sizeof *th);
    if (!b.req || !b.lat || !b.status || !th) {
        fprintf(stderr, "out of memory\n");
        return EXIT_FAIL;
    }
    protobuf_c_message_pack(req, b.req);
    for (long i = 0; i < o->repeat; i++)
        b.status[i] = -1;
    int64_t t0 = ctx_now();
    long started = 0;
    for (; started < o->concurrency; started++)
        if (pthread_create(&th[started], NULL, bench_worker, &b) != 0)
            break;
    bool tty = isatty(2);
    /* Progress: poll the counter every 200 ms on a terminal (display only;
     * the join below is the synchronisation). */
    while (tty && atomic_load(&b.done) < o->repeat && !ctx_err(root)) {
        long d = atomic_load(&b.done);
        fprintf(stderr, "\r%ld/%ld calls (%.0f%%)", d, o->repeat,
                100.0 * (double)d / (double)o->repeat);
        ctx_wait(root, 200 * CTX_MS);
        if (atomic_load(&b.done) >= o->repeat)
            break;
    }
    for (long i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    double secs = (double)(ctx_now() - t0) / 1e9;
    if (tty)
        fprintf(stderr, "\r%*s\r", 40, "");
    long n = 0, counts[17] = {0};
    for (long i = 0; i < o->repeat; i++) {
        if (b.status[i] < 0)
            continue;
        b.lat[n++] = b.lat[i];
        counts[b.status[i] <= 16 ? b.status[i] : RPC_STATUS_UNKNOWN]++;
    }
    qsort(b.lat, (size_t)n, sizeof *b.lat, cmp64);
#define PCT(p) (n ? (double)b.lat[(size_t)((double)(n - 1) * (p))] / 1e6 : 0.0)
    printf("calls: %ld  ok: %ld  time: %.3f s  rate: %.0f calls/s  "
           "concurrency: %ld\n",
           n, counts[0], secs, secs > 0 ? (double)n / secs : 0.0,
           o->concurrency);
    printf("latency ms: p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n", PCT(0.50),
           PCT(0.90), PCT(0.99), n ? (double)b.lat[n - 1] / 1e6 : 0.0);
    int worst = 0;
    long most = 0;
    for (int s = 1; s <= 16; s++)
        if (counts[s]) {
            printf("status %s: %ld\n", rpc_status_name(s), counts[s]);
            if (counts[s] > most) {
                most = counts[s];
                worst = s;
            }
        }
    if (ctx_err(root) && n < o->repeat) {
        printf("interrupted after %ld of %ld calls\n", n, o->repeat);
        if (worst == 0)
            worst = RPC_STATUS_CANCELLED;
    }
    free(b.req);
    free(b.lat);
    free(b.status);
    free(th);
    return exit_for(worst);
}

/* ---- main --------------------------------------------------------------------- */

static bool flag_is(const char *arg, const char *name)
{
    if (arg[0] != '-')
        return false;
    arg += arg[1] == '-' ? 2 : 1;
    return strcmp(arg, name) == 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    const char *pos[2];
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char *eq = NULL;
        char name[64];
        const char *val = NULL;
        if (a[0] == '-' && a[1] != 0) {
            /* -flag=value and --flag=value */
            snprintf(name, sizeof name, "%s", a);
            if ((eq = strchr(name, '=')) != NULL) {
                *eq = 0;
                val = a + (eq - name) + 1;
            }
            a = name;
        } else {
            if (npos == 2)
                return usage_error("Too many arguments: %s", a);
            pos[npos++] = a;
            continue;
        }
#define NEED_VAL()                                                          \
    do {                                                                    \
        if (val == NULL) {                                                  \
            if (i + 1 >= argc)                                              \
                return usage_error("Flag %s needs a value", a);             \
            val = argv[++i];                                                \
        }                                                                   \
    } while (0)
        if (flag_is(a, "help") || flag_is(a, "h")) {
            usage(stdout);
            exit(0);
        } else if (flag_is(a, "v") || flag_is(a, "vv")) {
            o->verbose = true;
        } else if (flag_is(a, "plaintext")) {
            /* always */
        } else if (flag_is(a, "d")) {
            NEED_VAL();
            o->data = val;
        } else if (flag_is(a, "H") || flag_is(a, "rpc-header")) {
            NEED_VAL();
            const char *colon = strchr(val, ':');
            if (colon == NULL || colon == val)
                return usage_error("Header must be 'name: value': %s", val);
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)(colon - val), val);
            for (char *k = key; *k; k++)
                if (*k >= 'A' && *k <= 'Z')
                    *k = (char)(*k - 'A' + 'a');
            const char *v = colon + 1;
            while (*v == ' ')
                v++;
            if (rpc_metadata_add(o->md, key, v, strlen(v)) != 0)
                return usage_error("Invalid metadata: %s", val);
        } else if (flag_is(a, "timeout")) {
            NEED_VAL();
            if (parse_duration(val, &o->timeout) != 0)
                return usage_error("Invalid duration (Go syntax, e.g. 250ms): %s",
                                   val);
            if (o->timeout == 0)
                o->timeout = 1; /* already expired, as Go's WithTimeout(0) */
        } else if (flag_is(a, "max-time") || flag_is(a, "connect-timeout")) {
            bool mt = flag_is(a, "max-time");
            NEED_VAL();
            char *end;
            double s = strtod(val, &end);
            if (*end || s < 0)
                return usage_error("Invalid number of seconds: %s", val);
            int64_t ns = (int64_t)(s * 1e9);
            if (mt)
                o->timeout = ns > 0 ? ns : 1;
            else
                o->connect_timeout = ns;
        } else if (flag_is(a, "max-msg-sz")) {
            NEED_VAL();
            o->max_msg = (size_t)strtoull(val, NULL, 10);
        } else if (flag_is(a, "repeat") || flag_is(a, "concurrency")) {
            bool rep = flag_is(a, "repeat");
            NEED_VAL();
            char *end;
            long v = strtol(val, &end, 10);
            if (*end || v <= 0 || v > 100000000)
                return usage_error("Invalid count: %s", val);
            if (rep)
                o->repeat = v;
            else
                o->concurrency = v;
        } else {
            return usage_error("Unknown flag: %s", a);
        }
    }
    if (npos < 1)
        return usage_error("Too few arguments.%s", "");
    o->target = pos[0];
    if (npos < 2)
        return usage_error("Missing the method (package.Service/Method) or "
                           "'list'.%s", "");
    if (strcmp(pos[1], "list") == 0)
        o->list = true;
    else
        o->method = pos[1];
    if (o->concurrency > 0 && o->repeat == 0)
        o->repeat = o->concurrency;
    if (o->repeat > 0 && o->concurrency == 0)
        o->concurrency = 1;
    if (o->concurrency > 1024)
        return usage_error("Concurrency above 1024: %s", "");
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    o.md = rpc_metadata_new();
    int rc = parse_args(argc, argv, &o);
    if (rc != 0) {
        rpc_metadata_free(o.md);
        return rc;
    }
    if (o.list) {
        cli_methods_list(stdout);
        rpc_metadata_free(o.md);
        return 0;
    }
    const cli_method_t *m = cli_methods_find(o.method);
    if (m == NULL) {
        fprintf(stderr, "Unknown method %s (try '%s %s list')\n", o.method,
                prog, o.target);
        rpc_metadata_free(o.md);
        return EXIT_FAIL;
    }

    /* Requests from -d: one message (empty when no data) for unary and
     * server streaming; any number for client streaming and bidi. */
    char *stdin_data = NULL;
    const char *p = o.data ? o.data : "";
    if (o.data && strcmp(o.data, "@") == 0)
        p = stdin_data = read_all(stdin);
    ProtobufCMessage *reqs[1024];
    size_t nreq = 0;
    char err[256];
    rc = 0;
    while (p && !cli_json_at_end(p) && nreq < 1024) {
        reqs[nreq] = cli_json_parse(m->input, &p, err, sizeof err);
        if (reqs[nreq] == NULL) {
            fprintf(stderr, "Error parsing request data: %s\n", err);
            rc = EXIT_USAGE;
            break;
        }
        nreq++;
    }
    free(stdin_data);
    bool single = m->kind == CLI_UNARY || m->kind == CLI_SERVER_STREAM;
    if (rc == 0 && single && nreq > 1)
        rc = usage_error("Method takes exactly one request message.%s", "");
    if (rc == 0 && single && nreq == 0) {
        reqs[0] = malloc(m->input->sizeof_message);
        if (reqs[0] == NULL) {
            rc = EXIT_FAIL;
        } else {
            m->input->message_init(reqs[0]);
            nreq = 1;
        }
    }
    if (rc != 0) {
        for (size_t i = 0; i < nreq; i++)
            protobuf_c_message_free_unpacked(reqs[i], NULL);
        rpc_metadata_free(o.md);
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

    rpc_client_options_t *co = rpc_client_options_new();
    if (o.connect_timeout > 0)
        rpc_client_options_set_connect_timeout(co, o.connect_timeout);
    if (o.max_msg > 0)
        rpc_client_options_set_max_recv_message(co, o.max_msg);
    rpc_client_channel_t *ch;
    rc = rpc_client_channel_new(o.target, co, &ch);
    rpc_client_options_free(co);
    if (rc != 0) {
        fprintf(stderr, "Failed to dial target host \"%s\": %s\n", o.target,
                rpc_strerror(rc));
        for (size_t i = 0; i < nreq; i++)
            protobuf_c_message_free_unpacked(reqs[i], NULL);
        rpc_metadata_free(o.md);
        return EXIT_FAIL;
    }
    if (o.repeat > 0)
        rc = repeat_mode(&o, ch, m, reqs[0]);
    else
        rc = one_call(&o, ch, m, reqs, nreq);
    rpc_client_channel_free(ch);
    for (size_t i = 0; i < nreq; i++)
        protobuf_c_message_free_unpacked(reqs[i], NULL);
    rpc_metadata_free(o.md);
    fflush(stdout);
    return rc;
}
