/*
 * client_test_util.h -- helpers for the client tests: start a fixture
 * server process (python3-grpcio, node, ...) that prints "PORT <n>" on
 * stdout, wait for that line with a bound, and stop the process by its PID
 * (SIGTERM, then SIGKILL after a bound, always reaped).
 *
 * Every wait is bounded (poll with a timeout, pidfd for exits); nothing
 * here sleeps to synchronise.
 */
#ifndef CLIENT_TEST_UTIL_H
#define CLIENT_TEST_UTIL_H

#include <rpc/client.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

extern char **environ;

#ifdef CTX_TSAN_BUILD
#define T_SCALE(plain, tsan) (tsan)
#else
#define T_SCALE(plain, tsan) (plain)
#endif

typedef struct fixture {
    pid_t pid;
    int out_fd; /* the child's stdout */
    int port;
    char target[64];
} fixture_t;

/* Reads one line from fd into buf within timeout_ms.  Returns its length
 * or -1. */
static inline int fx_read_line(int fd, char *buf, size_t cap, int timeout_ms)
{
    size_t n = 0;
    int64_t end = ctx_now() + (int64_t)timeout_ms * CTX_MS;
    while (n + 1 < cap) {
        int left = (int)((end - ctx_now()) / CTX_MS);
        if (left <= 0)
            return -1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        char ch;
        ssize_t k = read(fd, &ch, 1);
        if (k <= 0)
            return -1;
        if (ch == '\n')
            break;
        buf[n++] = ch;
    }
    buf[n] = 0;
    return (int)n;
}

/* Starts argv (argv[0] a path) with stdout piped; waits up to timeout_ms
 * for "PORT <n>".  Returns 0 or -1 (the process is stopped then). */
static inline void fx_stop(fixture_t *f);
static inline int fx_start(fixture_t *f, char *const argv[], int timeout_ms)
{
    memset(f, 0, sizeof *f);
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    int rc = posix_spawn(&f->pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    if (rc != 0) {
        close(p[0]);
        f->pid = 0;
        fprintf(stderr, "spawn %s: %s\n", argv[0], strerror(rc));
        return -1;
    }
    f->out_fd = p[0];
    char line[128];
    for (;;) {
        if (fx_read_line(f->out_fd, line, sizeof line, timeout_ms) < 0) {
            fprintf(stderr, "fixture %s: no PORT line\n", argv[0]);
            fx_stop(f);
            return -1;
        }
        if (sscanf(line, "PORT %d", &f->port) == 1)
            break;
    }
    snprintf(f->target, sizeof f->target, "127.0.0.1:%d", f->port);
    return 0;
}

/* Waits up to timeout_ms for pid to exit (pidfd + poll); reaps it. */
static inline int fx_wait_exit(pid_t pid, int timeout_ms, int *status)
{
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd >= 0) {
        struct pollfd p = {.fd = pfd, .events = POLLIN};
        int r;
        do
            r = poll(&p, 1, timeout_ms);
        while (r < 0 && errno == EINTR);
        close(pfd);
        if (r <= 0)
            return -1;
    }
    return waitpid(pid, status, 0) == pid ? 0 : -1;
}

static inline void fx_stop(fixture_t *f)
{
    if (f->pid > 0) {
        int st;
        kill(f->pid, SIGTERM);
        if (fx_wait_exit(f->pid, 5000, &st) != 0) {
            kill(f->pid, SIGKILL);
            waitpid(f->pid, &st, 0);
        }
        f->pid = 0;
    }
    if (f->out_fd > 0)
        close(f->out_fd);
    f->out_fd = 0;
}

/* A TCP listener on 127.0.0.1 that never answers (accepts nothing; the
 * kernel completes handshakes into the backlog).  Returns the fd, port in
 * *port. */
static inline int fx_silent_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) != 0)
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

/* A loopback port with nothing listening (bound then closed). */
static inline int fx_closed_port(void)
{
    int port = 0;
    int fd = fx_silent_listener(&port);
    close(fd);
    return port;
}

/* Metadata helpers. */
static inline const char *md_get(const rpc_metadata_t *md, const char *key)
{
    return md ? (const char *)rpc_metadata_find(md, key, NULL) : NULL;
}

#ifdef FIXTURE_DIR
/* A fresh /tmp/<prefix>-XXXXXX holding the test certificates
 * (FIXTURE_DIR/gen_certs.sh); the name goes to dir.  0 or -1. */
static inline int fx_cert_dir(char *dir, size_t len, const char *prefix)
{
    snprintf(dir, len, "/tmp/%s-XXXXXX", prefix);
    if (mkdtemp(dir) == NULL)
        return -1;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "%s/gen_certs.sh %s", FIXTURE_DIR, dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Removes what fx_cert_dir made. */
static inline void fx_cert_dir_remove(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)!system(cmd);
}
#endif /* FIXTURE_DIR */

#endif /* CLIENT_TEST_UTIL_H */
