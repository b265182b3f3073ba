/*
 * control.c - the control socket of a running server, and its clients.
 *
 * Read main.c first.  A device's size and its server can change while it
 * is in use: `ublk-mem resize ID SIZE` and `ublk-mem restart ID` ask the
 * running server through a Unix socket.  The server is root and the
 * device holds data, so the socket lives in a directory only root can
 * enter, and the server answers only a peer of its own user, as the
 * kernel reports it (SO_PEERCRED), never as the peer claims.
 */
#define _GNU_SOURCE
#include "control.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define REQUEST_TIMEOUT_S	2	/* a client that says nothing is dropped */
#define HANDOVER_TIMEOUT_MS	10000	/* QUIESCE_DEV's wait for in-flight I/O */

/* Answer the client on @fd with one line, then hang up. */
static void __attribute__((format(printf, 2, 3)))
reply(int fd, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (send(fd, line, (size_t)n, MSG_NOSIGNAL) < 0) {
		/* The client went away: nothing to tell it. */
	}
	close(fd);
}

static void socket_path(struct sockaddr_un *a, int dev_id)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	snprintf(a->sun_path, sizeof(a->sun_path), CONTROL_DIR "/%d.sock", dev_id);
}

int control_dir(void)
{
	struct stat st;

	if (mkdir(CONTROL_DIR, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (lstat(CONTROL_DIR, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
		return -EPERM;
	return 0;
}

void control_open(struct control *c)
{
	struct sockaddr_un a;
	struct stat st;
	int ret;

	c->fd = c->handover_fd = -1;
	ret = control_dir();
	if (ret < 0) {
		ublk_err("warning: %s: %s (a directory only root may enter is needed); resize and restart cannot reach this server",
			 CONTROL_DIR, strerror(-ret));
		return;
	}
	socket_path(&a, c->dev_id);
	/* A socket left by a server that died: ours to replace, nothing else. */
	if (lstat(a.sun_path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(a.sun_path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0 || bind(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    chmod(a.sun_path, 0600) < 0 || listen(c->fd, 4) < 0) {
		ublk_err("warning: %s: %s; resize and restart cannot reach this server",
			 a.sun_path, strerror(errno));
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
	}
}

void control_close(struct control *c)
{
	struct sockaddr_un a;

	if (c->handover_fd >= 0)
		reply(c->handover_fd, "error the server ended before handing over");
	c->handover_fd = -1;
	if (c->fd < 0)
		return;
	close(c->fd);
	c->fd = -1;
	socket_path(&a, c->dev_id);
	unlink(a.sun_path);
}

static void format_mib(char *buf, size_t len, uint64_t bytes)
{
	if (bytes % (1 << 20))
		snprintf(buf, len, "%llu bytes", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%llu MiB", (unsigned long long)(bytes >> 20));
}

/*
 * resize: grow the store first, then tell the kernel (no request may
 * reach beyond what the store holds); shrink the other way round.
 */
static void do_resize(struct ublk_dev *dev, struct control *c, int fd,
		      uint64_t new_size, bool force)
{
	uint64_t old = __atomic_load_n(&c->store->size, __ATOMIC_ACQUIRE);
	char from[32], to[32];
	int ret;

	format_mib(from, sizeof(from), old);
	format_mib(to, sizeof(to), new_size);
	if (!(ublk_dev_features(dev) & UBLK_F_UPDATE_SIZE))
		return reply(fd, "error resizing needs the ublk driver's UPDATE_SIZE (Linux %s); this kernel has not got it",
			     ublk_feature_since(10));
	if (!new_size || new_size % c->block_size)
		return reply(fd, "error the size must be a multiple of the block size, %u", c->block_size);
	if (new_size < old && !force)
		return reply(fd, "error shrinking from %s to %s cuts off the data beyond %s (a file system on the device may be larger); give --force if you are sure",
			     from, to, to);
	if (new_size > old) {
		ret = mem_store_resize(c->store, new_size);
		if (ret == 0) {
			ret = ublk_resize(dev, new_size);
			if (ret < 0)
				mem_store_resize(c->store, old);
		}
	} else {
		ret = ublk_resize(dev, new_size);
		if (ret == 0)
			ret = mem_store_resize(c->store, new_size);
	}
	if (ret < 0)
		return reply(fd, "error resizing /dev/ublkb%d to %s: %s (the server's log says more)",
			     c->dev_id, to, strerror(-ret));
	ublk_err("/dev/ublkb%d resized from %s to %s", c->dev_id, from, to);
	reply(fd, "ok %llu %llu", (unsigned long long)old, (unsigned long long)new_size);
}

/* The requester must be of our own user; the kernel says who it is. */
static bool peer_trusted(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
	       cred.uid == geteuid();
}

void control_serve(struct ublk_dev *dev, void *arg)
{
	struct control *c = arg;
	struct timeval tv = { .tv_sec = REQUEST_TIMEOUT_S };
	unsigned long long size;
	char req[128], word[16] = "";
	ssize_t n;
	int fd;

	fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (!peer_trusted(fd))
		return reply(fd, "error not allowed");
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	n = recv(fd, req, sizeof(req) - 1, 0);
	if (n <= 0)
		return reply(fd, "error no request");
	req[n] = '\0';
	if (sscanf(req, "resize %llu %15s", &size, word) >= 1)
		return do_resize(dev, c, fd, size, !strcmp(word, "force"));
	if (!strncmp(req, "handover", 8)) {
		if (ublk_hand_over(dev, HANDOVER_TIMEOUT_MS) < 0)
			return reply(fd, "error /dev/ublkb%d is not recoverable: no other server can take it over",
				     c->dev_id);
		c->handover_fd = fd;	/* answered once the queues ended */
		return;
	}
	reply(fd, "error unknown request");
}

void control_handed_over(struct control *c, unsigned held)
{
	if (c->handover_fd < 0)
		return;
	reply(c->handover_fd, "ok %u %s %u %u", held, c->pidfile && *c->pidfile ? c->pidfile : "-",
	      c->poll_us, c->queue_threads);
	c->handover_fd = -1;
}

int control_request(int dev_id, const char *request, char *answer, size_t len)
{
	struct sockaddr_un a;
	size_t got = 0;
	ssize_t n;
	int fd, ret;

	socket_path(&a, dev_id);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		ret = -errno;
		ublk_err("%s: %s (is device %d served by a running ublk-mem?)", a.sun_path,
			 strerror(-ret), dev_id);
		if (fd >= 0)
			close(fd);
		return ret;
	}
	if (send(fd, request, strlen(request), MSG_NOSIGNAL) < 0) {
		ret = -errno;
		ublk_err("%s: %s", a.sun_path, strerror(-ret));
		close(fd);
		return ret;
	}
	/* The answer may take a while: a handover waits for in-flight I/O. */
	while (got + 1 < len && (n = recv(fd, answer + got, len - 1 - got, 0)) > 0)
		got += (size_t)n;
	close(fd);
	answer[got] = '\0';
	answer[strcspn(answer, "\n")] = '\0';
	if (!got) {
		ublk_err("device %d's server hung up without an answer", dev_id);
		return -EPROTO;
	}
	return 0;
}
