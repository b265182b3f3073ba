/*
 * control.h - how other ublk-mem commands reach a running server.
 *
 * A server listens on a Unix socket, RECORD_DIR/ID.sock, in a directory
 * only root can enter, and accepts requests only from a peer of its own
 * user (SO_PEERCRED).  One request, one answer, one line each:
 *
 *   resize BYTES [force]   ->  ok OLD_BYTES NEW_BYTES | error WHY
 *   handover               ->  ok HELD_REQUESTS PIDFILE POLL_US THREADS
 *                              | error WHY
 * (POLL_US and THREADS, how the server was run, for the next one to serve
 * the same way; servers before them answered without.)
 *
 * `ublk-mem resize` and `ublk-mem restart` are the clients.
 */
#ifndef UBLK_MEM_CONTROL_H
#define UBLK_MEM_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include "mem_backend.h"
#include "ublk.h"

#define CONTROL_DIR	"/run/ublk-mem"

/*
 * CONTROL_DIR, made if needed (mode 0700), and refused (-EPERM) unless it
 * is a directory of ours that nobody else may enter: it holds the control
 * sockets and the store records.  Returns 0 or -errno.
 */
int control_dir(void);

/* What a server's control socket acts on. */
struct control {
	int fd;				/* the listening socket, or -1 */
	int handover_fd;		/* a handover waiting for its answer */
	int dev_id;
	struct mem_store *store;	/* resized along with the device */
	unsigned block_size;		/* a new size must be a multiple */
	const char *pidfile;		/* told to the next server at handover */
	unsigned poll_us;		/* ... and so are these */
	unsigned queue_threads;
};

/*
 * Listen for device @c->dev_id.  Without a control socket the device is
 * served all the same; a warning says what cannot work then.
 */
void control_open(struct control *c);
void control_close(struct control *c);

/* ublk_set_control() callback: take one request and answer it. */
void control_serve(struct ublk_dev *dev, void *arg);

/*
 * After ublk_run() returned from a handover: tell the client how many
 * requests the old server still held (the kernel re-issues them).
 */
void control_handed_over(struct control *c, unsigned held);

/*
 * Send @request to the server of device @dev_id and read its one-line
 * answer into @reply.  Returns 0, or -errno after saying why.
 */
int control_request(int dev_id, const char *request, char *reply, size_t len);

#endif
