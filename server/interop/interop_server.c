/*
 * interop_server -- the standard gRPC interop server on our stack:
 * grpc.testing.TestService, grpc.health.v1.Health, and demo.v1.Demo.
 *
 *   interop_server --port=N [--host=ADDR] [--loops=N] [--workers=N]
 *                  [--keepalive_ms=N] [--keepalive_timeout_ms=N]
 *                  [--grace_ms=N] [--send_stall_ms=N] [--max_blocked_sends=N]
 *                  [--max_connections=N] [--max_pending_handshakes=N]
 *                  [--use_tls=true --tls_cert_file=F --tls_key_file=F]
 *                  [--unix=PATH]  (also listen on a Unix socket)
 *                  [--admin_port=N [--admin_host=ADDR]] [--access_log=PATH|-]
 *
 * --port=0 picks a free port.  Once listening it prints one line,
 * "listening on port N", to stdout (tests read it).  SIGINT/SIGTERM shut
 * it down gracefully: the listener closes at once, calls in flight get
 * --grace_ms (default 10000) to finish, then the rest are cancelled
 * (RPC_CAUSE_SHUTDOWN).  It then prints the demo service's counters
 * ("demo stats: ...") and exits 0.  --use_tls=true --tls_cert_file=F
 * --tls_key_file=F (the standard interop flags) serve TLS with ALPN h2.
 * --admin_port serves /metrics and /ctxz (127.0.0.1 unless --admin_host;
 * 0 picks a port) and prints "admin on port N" after the listening line;
 * --access_log writes JSON lines there ("-": stderr).
 */
#include "interop_service.h"

#include <errno.h>
#include <fcntl.h>
/* Generated at build time (proto/CMakeLists.txt, rpc_embed_descriptors):
 * register the served .proto files for server reflection. */
int rpc_descriptors_register(rpc_server_t *s);
int rpc_demo_descriptors_register(rpc_server_t *s);

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int opt_int(const char *arg, const char *name, long *out)
{
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0 || arg[n] != '=')
        return 0;
    char *end;
    *out = strtol(arg + n + 1, &end, 10);
    if (*end != '\0' || end == arg + n + 1) {
        fprintf(stderr, "interop_server: bad value in %s\n", arg);
        exit(2);
    }
    return 1;
}

int main(int argc, char **argv)
{
    long port = -1, loops = 0, workers = 64, ka = -1, kat = -1;
    long grace = 10000, stall = -1, blocked = 0, conns = 0, pending = 0;
    const char *host = "127.0.0.1";
    const char *unix_path = NULL; /* --unix=PATH: also a Unix socket */
    const char *tls_cert = NULL, *tls_key = NULL;
    int use_tls = 0;
    long admin_port = -1; /* observe */
    const char *admin_host = "127.0.0.1", *access_log = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (opt_int(a, "--port", &port) || opt_int(a, "--loops", &loops) ||
            opt_int(a, "--workers", &workers) ||
            opt_int(a, "--keepalive_ms", &ka) ||
            opt_int(a, "--keepalive_timeout_ms", &kat) ||
            opt_int(a, "--grace_ms", &grace) ||
            opt_int(a, "--send_stall_ms", &stall) ||
            opt_int(a, "--max_blocked_sends", &blocked) ||
            opt_int(a, "--max_connections", &conns) ||
            opt_int(a, "--max_pending_handshakes", &pending) ||
            opt_int(a, "--admin_port", &admin_port))
            continue;
        if (strncmp(a, "--admin_host=", 13) == 0) { /* observe */
            admin_host = a + 13;
            continue;
        }
        if (strncmp(a, "--access_log=", 13) == 0) {
            access_log = a + 13;
            continue;
        }
        if (strncmp(a, "--host=", 7) == 0) {
            host = a + 7;
        } else if (strncmp(a, "--unix=", 7) == 0) {
            unix_path = a + 7;
        } else if (strcmp(a, "--use_tls=false") == 0) {
        } else if (strcmp(a, "--use_tls=true") == 0) {
            use_tls = 1;
        } else if (strncmp(a, "--tls_cert_file=", 16) == 0) {
            tls_cert = a + 16;
        } else if (strncmp(a, "--tls_key_file=", 15) == 0) {
            tls_key = a + 15;
        } else {
            fprintf(stderr,
                    "usage: interop_server --port=N [--host=ADDR] [--loops=N] "
                    "[--workers=N] [--keepalive_ms=N] [--keepalive_timeout_ms=N] "
                    "[--grace_ms=N] [--send_stall_ms=N] [--max_blocked_sends=N] "
                    "[--max_connections=N] [--max_pending_handshakes=N] "
                    "[--use_tls=true --tls_cert_file=F --tls_key_file=F] [--unix=PATH] "
                    "[--admin_port=N] [--admin_host=ADDR] [--access_log=PATH]\n");
            return 2;
        }
    }
    if (port < 0 || port > 65535) {
        fprintf(stderr, "interop_server: --port=N is required\n");
        return 2;
    }
    /* Signals are taken synchronously by sigwait() below; block them
     * before any thread starts so every thread inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    rpc_server_t *s = rpc_server_new();
    demo_service_t *demo = demo_service_new(128);
    if (s == NULL || demo == NULL) {
        fprintf(stderr, "interop_server: out of memory\n");
        return 1;
    }
    int rc = 0;
    if ((rc = rpc_server_set_option(s, RPC_SERVER_LOOP_THREADS, loops)) ||
        (rc = rpc_server_set_option(s, RPC_SERVER_WORKER_THREADS, workers)) ||
        (ka >= 0 && (rc = rpc_server_set_option(s, RPC_SERVER_KEEPALIVE_TIME_MS, ka))) ||
        (kat > 0 && (rc = rpc_server_set_option(s, RPC_SERVER_KEEPALIVE_TIMEOUT_MS, kat))) ||
        (stall >= 0 && (rc = rpc_server_set_option(s, RPC_SERVER_SEND_STALL_TIMEOUT_MS, stall))) ||
        (blocked > 0 && (rc = rpc_server_set_option(s, RPC_SERVER_MAX_BLOCKED_SENDS, blocked))) ||
        (conns > 0 && (rc = rpc_server_set_option(s, RPC_SERVER_MAX_CONNECTIONS, conns))) ||
        (pending > 0 && (rc = rpc_server_set_option(s, RPC_SERVER_MAX_PENDING_HANDSHAKES, pending))) ||
        (rc = interop_register(s)) || (rc = demo_register(s, demo)) ||
        (rc = rpc_server_add_health(s)) ||
        (rc = rpc_descriptors_register(s)) ||
        (rc = rpc_demo_descriptors_register(s)) ||
        (rc = rpc_server_add_reflection(s))) {
        fprintf(stderr, "interop_server: setup: %s\n", rpc_strerror(rc));
        return 1;
    }
    if (use_tls && (tls_cert == NULL || tls_key == NULL)) {
        fprintf(stderr, "interop_server: --use_tls=true needs --tls_cert_file "
                        "and --tls_key_file\n");
        return 2;
    }
    if (use_tls && (rc = rpc_server_set_tls(s, tls_cert, tls_key, NULL,
                                            RPC_SERVER_CLIENT_AUTH_NONE))) {
        fprintf(stderr, "interop_server: TLS: %s\n", rpc_strerror(rc));
        return 1;
    }
    int log_fd = -1; /* observe: --access_log, --admin_port */
    if (access_log != NULL) {
        log_fd = strcmp(access_log, "-") == 0
                     ? 2
                     : open(access_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (log_fd < 0 || (rc = rpc_server_enable_access_log(s, log_fd)) != 0) {
            fprintf(stderr, "interop_server: access log %s: %s\n", access_log,
                    log_fd < 0 ? strerror(errno) : rpc_strerror(rc));
            return 1;
        }
    }
    if (admin_port >= 0 &&
        (rc = rpc_server_enable_admin(s, admin_host, (int)admin_port)) != 0) {
        fprintf(stderr, "interop_server: admin endpoint: %s\n", rpc_strerror(rc));
        return 1;
    }
    if (unix_path && (rc = rpc_server_listen_unix(s, unix_path)) != 0) {
        fprintf(stderr, "interop_server: --unix=%s: %s\n", unix_path,
                rpc_strerror(rc));
        return 1;
    }
    if ((rc = rpc_server_listen(s, host, (int)port)) != 0) {
        perror("interop_server: listen");
        return 1;
    }
    if ((rc = rpc_server_start(s)) != 0) {
        fprintf(stderr, "interop_server: start: %s\n", rpc_strerror(rc));
        return 1;
    }
    printf("listening on port %d\n", rpc_server_port(s));
    if (admin_port >= 0) /* observe */
        printf("admin on port %d\n", rpc_server_admin_port(s));
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "interop_server: signal %d, shutting down\n", sig);
    rpc_server_shutdown(s, grace * CTX_MS);
    /* Every handler and sub-task has returned: the counters are final. */
    demo_service_print(demo, stdout);
    fflush(stdout);
    rpc_server_free(s);
    if (log_fd > 2) /* observe */
        close(log_fd);
    demo_service_free(demo);
    ctx_shutdown();
    return 0;
}
