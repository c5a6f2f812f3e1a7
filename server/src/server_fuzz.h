/*
 * server_fuzz.h -- an in-process driver for the server's connection code,
 * for fuzz targets (fuzz/fuzz_server_h2.c).  Not installed; not part of
 * <rpc/server.h>.
 *
 * rpc_server_start() runs each loop on a thread of its own and takes
 * connections from a listening socket.  A fuzz target wants neither: it
 * wants to hand the server one end of a socketpair and run the loop itself,
 * on its own thread, until the connection and its calls are gone.  This is
 * that door:
 *
 *   rpc_server_new -> options, methods (and a pool) -> rpc__server_fuzz_start
 *     -> rpc__server_fuzz_accept(fd) -> the caller runs
 *        rpc__server_fuzz_base() (and may _drain and _abort as shutdown
 *        would) until RPC_STAT_CONNECTIONS and RPC_STAT_CALLS_ACTIVE are
 *        0 -> rpc_server_free
 *
 * The server then has one loop (loop 0), owned by the calling thread: its
 * event_base, its mailbox (calls with news from handler threads and
 * context watchers are pumped when the caller runs the base) and every
 * connection accepted on it.  There is no listener, no loop thread and no
 * sweep timer (the send-stall check does not run).  The server stays in
 * its NEW state: never rpc_server_start() or rpc_server_shutdown() it;
 * rpc_server_free() frees the loop.
 */
#ifndef SERVER_FUZZ_H
#define SERVER_FUZZ_H

#include <rpc/server.h>

struct event_base;

/* Makes the server's single loop on the calling thread (which must be the
 * one that runs rpc__server_fuzz_base() from now on), and the server's own
 * worker pool unless rpc_server_set_pool() gave one.  Returns 0,
 * RPC_ERR_INVAL, RPC_ERR_STATE (not NEW, or already started this way) or
 * RPC_ERR_NOMEM (nothing is left made). */
int rpc__server_fuzz_start(rpc_server_t *s);

/* The loop's event_base (borrowed; freed by rpc_server_free()), or NULL
 * before rpc__server_fuzz_start(). */
struct event_base *rpc__server_fuzz_base(rpc_server_t *s);

/* A new connection on fd (a connected stream socket; the server owns it
 * from now on and closes it).  The loop's thread only. */
void rpc__server_fuzz_accept(rpc_server_t *s, int fd);

/* What rpc_server_shutdown() does on each loop, one step at a time, on
 * the loop's thread:
 *   _drain: health NOT_SERVING, then the shutdown notice on every
 *           connection (a first GOAWAY and a PING; its ACK brings the
 *           final GOAWAY); calls in flight go on;
 *   _abort: the root context cancelled (RPC_CAUSE_SHUTDOWN), every open
 *           call answered UNAVAILABLE, every connection closed after a
 *           flush.  The server takes no more connections. */
void rpc__server_fuzz_drain(rpc_server_t *s);
void rpc__server_fuzz_abort(rpc_server_t *s);

#endif /* SERVER_FUZZ_H */
