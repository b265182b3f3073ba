/*
 * control.h - how other ublk-mem commands reach a running server.
 *
 * A server listens on a Unix socket, RECORD_DIR/ID.sock, in a directory
 * only root can enter, and accepts requests only from a peer of its own
 * user or root (SO_PEERCRED).  The server of an ordinary user's device
 * (UBLK_F_UNPRIVILEGED_DEV) listens in that user's runtime directory
 * instead: $XDG_RUNTIME_DIR/ublk-mem/ID.sock, or /run/user/UID/ublk-mem/
 * where XDG_RUNTIME_DIR is not set (see control.c).  The client sends one request line.  The server
 * says "accepted" at once, so that a client can tell a server that is
 * stuck from an operation that takes time, and then answers:
 *
 *   resize BYTES [force]    ok OLD_BYTES NEW_BYTES | error WHY
 *   handover PROGRAM        handing-over HELD_REQUESTS | error WHY
 *   stats                   ok NAME=VALUE... (see do_stats())
 *
 * After "handing-over" the old server starts PROGRAM (the client's own
 * binary) as `PROGRAM recover ID -D ...` with the settings it was run
 * with, its stdout and stderr on the client's connection: the client then
 * reads the new server's error lines, or the /dev/ublkbN line it prints
 * once it serves.  Started by the old server, the new one runs where the
 * old one ran (its service's cgroup, its limits, its environment).
 *
 * Servers of ublk-mem 0.2 answer without "accepted", and a handover with
 * "ok HELD PIDFILE POLL_US THREADS", leaving the new server to the client.
 */
#ifndef UBLK_MEM_CONTROL_H
#define UBLK_MEM_CONTROL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "store.h"
#include "ublk.h"

/* What a server's control socket acts on. */
struct control {
	int fd;				/* the listening socket, or -1 */
	int client_fd;			/* a handover's client, or -1 */
	int dev_id;
	char path[108];			/* the socket's path (sun_path) */
	struct store *store;		/* resized along with the device */
	unsigned block_size;		/* a new size must be a multiple */
	bool recorded;			/* a recoverable store: record new sizes */
	bool handed_over;		/* a handover was asked for and begun */
	char program[PATH_MAX];		/* ... and the binary to start after it */
};

/*
 * Listen for device @c->dev_id.  Without a control socket the device is
 * served all the same; a warning says what cannot work then.
 */
void control_open(struct control *c);
void control_close(struct control *c);

/* A request is waiting on @c->fd: take it and answer it, for device @dev. */
void control_serve(struct control *c, struct ublk_dev *dev);

/*
 * After ublk_run() returned from a handover: tell the client how many
 * requests the old server still held (the kernel re-issues them), and
 * return its connection for the new server's output (the caller closes
 * it), or -1.
 */
int control_handed_over(struct control *c, unsigned held);

/*
 * Connect to the server of device @dev_id, send @request and read the
 * first line of the answer into @line within a few seconds.  Returns the
 * connection, or -errno after saying why (naming the server when it does
 * not answer).
 */
int control_connect(int dev_id, const char *request, char *line, size_t len);

/*
 * Read the next line of an answer into @line, waiting up to @timeout_ms.
 * Returns 0, -EPIPE when the server hung up, -ETIME, or -errno.
 */
int control_read_line(int fd, char *line, size_t len, unsigned timeout_ms);

/*
 * Send @request to the server of device @dev_id and read its final
 * one-line answer into @reply, allowing @timeout_ms for the work.
 * Returns 0, or -errno after saying why.
 */
int control_request(int dev_id, const char *request, char *reply, size_t len,
		    unsigned timeout_ms);

/*
 * control_request() for a quick look (list's stats): at most @timeout_ms
 * for each of the two lines, and nothing said when the server cannot
 * answer.  Returns 0 with the answer in @line, or -errno.
 */
int control_query(int dev_id, const char *request, char *line, size_t len,
		  unsigned timeout_ms);

#endif
