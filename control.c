/*
 * control.c - the control socket of a running server, and its clients.
 *
 * Read main.c first.  A device's size and its server can change while it
 * is in use: `ublk-mem resize ID SIZE` and `ublk-mem restart ID` ask the
 * running server through a Unix socket (the protocol is in control.h).
 * The server is root and the device holds data, so the socket lives in a
 * directory only root can enter, and the server answers only a peer of
 * its own user, as the kernel reports it (SO_PEERCRED), never as the peer
 * claims.  The server of an ordinary user's device is that user's, and
 * may not write in root's directory: it listens in the user's runtime
 * directory, which is the user's alone (user_dir()), and answers the user
 * and root; a client checks that the server it reached is the device's
 * owner's.  A client never waits without a limit: a server that does not
 * even acknowledge a request within CONTROL_ACK_MS is named as stuck.
 */
#define _GNU_SOURCE
#include "control.h"
#include "log.h"
#include "owner.h"
#include "record.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define REQUEST_TIMEOUT_S	2	/* a client that says nothing is dropped */
#define HANDOVER_TIMEOUT_MS	10000	/* QUIESCE_DEV's wait for in-flight I/O */
#define CONTROL_ACK_MS		5000	/* "accepted" must come within this */
#define USER_SUBDIR		"ublk-mem"	/* in a user's runtime directory */

/* Send one line to the client on @fd. */
static void send_line(int fd, const char *fmt, va_list ap)
{
	char line[PATH_MAX + 128];
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);

	if (n < 0)
		n = 0;
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (send(fd, line, (size_t)n, MSG_NOSIGNAL) < 0) {
		/* The client went away: nothing to tell it. */
	}
}

/* Tell the client something; the connection stays open. */
static void __attribute__((format(printf, 2, 3))) say_line(int fd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	send_line(fd, fmt, ap);
	va_end(ap);
}

/* Answer the client with a last line, then hang up. */
static void __attribute__((format(printf, 2, 3))) reply(int fd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	send_line(fd, fmt, ap);
	va_end(ap);
	close(fd);
}

/* The socket of device @dev_id's server in directory @dir; 0 or -ENAMETOOLONG. */
static int socket_path(struct sockaddr_un *a, const char *dir, int dev_id)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if ((size_t)snprintf(a->sun_path, sizeof(a->sun_path), "%s/%d.sock", dir, dev_id) >=
	    sizeof(a->sun_path))
		return -ENAMETOOLONG;
	return 0;
}

/* Is @path a directory of @uid's that nobody else may enter or change? */
static bool private_dir(const char *path, uid_t uid)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == uid &&
	       !(st.st_mode & 077);
}

/*
 * USER_SUBDIR in the runtime directory of user @uid, into @dir: @xdg (its
 * XDG_RUNTIME_DIR, or NULL) if that is the user's alone, else
 * /run/user/UID if it is, as logind makes it.  With @make, the
 * subdirectory is made (mode 0700).  0, or -ENOENT when there is none.
 */
static int user_dir(const char *xdg, uid_t uid, bool make, char *dir, size_t len)
{
	char base[PATH_MAX];

	if (xdg && xdg[0] == '/' && private_dir(xdg, uid))
		snprintf(base, sizeof(base), "%s", xdg);
	else if (snprintf(base, sizeof(base), "/run/user/%u", (unsigned)uid), !private_dir(base, uid))
		return -ENOENT;
	if ((size_t)snprintf(dir, len, "%s/" USER_SUBDIR, base) >= len)
		return -ENAMETOOLONG;
	if (make && mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	return private_dir(dir, uid) ? 0 : -EPERM;
}

/*
 * Where this process listens: RECORD_DIR for root, the user's runtime
 * directory for anyone else.  Says why on failure.
 */
static int server_dir(char *dir, size_t len)
{
	int ret;

	if (geteuid() == 0) {
		snprintf(dir, len, "%s", RECORD_DIR);
		ret = record_dir();
		if (ret < 0)
			log_err("warning: %s: %s (a directory only root may enter is needed); resize and restart cannot reach this server",
				 RECORD_DIR, strerror(-ret));
		return ret;
	}
	ret = user_dir(getenv("XDG_RUNTIME_DIR"), geteuid(), true, dir, len);
	if (ret < 0)
		log_err("warning: this user has no runtime directory of its own (XDG_RUNTIME_DIR, or /run/user/%u, mode 0700: %s); resize cannot reach this server",
			(unsigned)geteuid(), strerror(-ret));
	return ret;
}

void control_open(struct control *c)
{
	struct sockaddr_un a;
	struct stat st;
	char dir[PATH_MAX];

	c->fd = c->client_fd = -1;
	c->path[0] = '\0';
	if (server_dir(dir, sizeof(dir)) < 0)
		return;
	if (socket_path(&a, dir, c->dev_id) < 0) {
		log_err("warning: %s: the path is too long for a socket; resize cannot reach this server",
			dir);
		return;
	}
	snprintf(c->path, sizeof(c->path), "%s", a.sun_path);
	/* A socket left by a server that died: ours to replace, nothing else. */
	if (lstat(a.sun_path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(a.sun_path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0 || bind(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    chmod(a.sun_path, 0600) < 0 || listen(c->fd, 4) < 0) {
		log_err("warning: %s: %s; resize and restart cannot reach this server",
			 a.sun_path, strerror(errno));
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
	}
}

void control_close(struct control *c)
{
	if (c->client_fd >= 0)
		reply(c->client_fd, "error the server ended before handing over");
	c->client_fd = -1;
	if (c->fd < 0)
		return;
	close(c->fd);
	c->fd = -1;
	unlink(c->path);
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
	uint64_t old = store_size(c->store);
	char from[32], to[32];
	int ret;

	format_mib(from, sizeof(from), old);
	format_mib(to, sizeof(to), new_size);
	if (!(ublk_dev_features(dev) & UBLK_F_UPDATE_SIZE))
		return reply(fd, "error resizing needs the ublk driver's UPDATE_SIZE (Linux %s); this kernel has not got it",
			     ublk_feature_since(10));
	if (ublk_info(dev)->flags & UBLK_F_ZONED)
		return reply(fd, "error a zoned device's size is fixed: its zones are laid out for it");
	if (!new_size || new_size % c->block_size)
		return reply(fd, "error the size must be a multiple of the block size, %u", c->block_size);
	if (new_size < old && !force)
		return reply(fd, "error shrinking from %s to %s cuts off the data beyond %s (a file system on the device may be larger); give --force if you are sure",
			     from, to, to);
	if (new_size > old) {
		ret = store_resize(c->store, new_size);
		if (ret == 0) {
			ret = ublk_resize(dev, new_size);
			if (ret < 0)
				store_resize(c->store, old);
		}
	} else {
		ret = ublk_resize(dev, new_size);
		if (ret == 0)
			ret = store_resize(c->store, new_size);
	}
	if (ret < 0)
		return reply(fd, "error resizing /dev/ublkb%d to %s: %s (the server's log says more)",
			     c->dev_id, to, strerror(-ret));
	if (c->recorded)
		record_set_size(c->dev_id, new_size);
	log_err("/dev/ublkb%d resized from %s to %s", c->dev_id, from, to);
	reply(fd, "ok %llu %llu", (unsigned long long)old, (unsigned long long)new_size);
}

/*
 * stats: what the store holds and the queues served, as NAME=VALUE words
 * (zram's names; the compression's only for a compressed store).
 */
static void do_stats(struct ublk_dev *dev, struct control *c, int fd)
{
	struct store_stats s;
	struct ublk_io_stats io;
	char compr[512] = "";

	store_stats(c->store, &s);
	ublk_io_stats(dev, &io);
	if (s.compressed)
		snprintf(compr, sizeof(compr),
			 " compr_data_size=%llu mem_limit=%llu mem_used_max=%llu same_pages=%llu pages_compacted=%llu huge_pages=%llu huge_pages_since=%llu",
			 (unsigned long long)s.compr_data_size, (unsigned long long)s.mem_limit,
			 (unsigned long long)s.mem_used_max, (unsigned long long)s.same_pages,
			 (unsigned long long)s.pages_compacted, (unsigned long long)s.huge_pages,
			 (unsigned long long)s.huge_pages_since);
	reply(fd, "ok compressed=%d orig_data_size=%llu mem_used_total=%llu%s reads=%llu writes=%llu discards=%llu write_zeroes=%llu flushes=%llu read_bytes=%llu written_bytes=%llu failed_reads=%llu failed_writes=%llu",
	      s.compressed, (unsigned long long)s.orig_data_size,
	      (unsigned long long)s.mem_used_total, compr, (unsigned long long)io.reads,
	      (unsigned long long)io.writes, (unsigned long long)io.discards,
	      (unsigned long long)io.write_zeroes, (unsigned long long)io.flushes,
	      (unsigned long long)io.read_bytes, (unsigned long long)io.written_bytes,
	      (unsigned long long)io.failed_reads, (unsigned long long)io.failed_writes);
}

/*
 * handover PROGRAM: end serving and keep the device for PROGRAM, which
 * serve() starts once ublk_run() has returned.  PROGRAM must be a file
 * only root could have put there: the server runs it as root.
 */
static void do_handover(struct ublk_dev *dev, struct control *c, int fd, const char *program)
{
	struct stat st;

	if (!(ublk_info(dev)->flags & UBLK_F_USER_RECOVERY))
		return reply(fd, "error /dev/ublkb%d was not created --recoverable: no other server can take it over",
			     c->dev_id);
	if (program[0] != '/' || stat(program, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (st.st_uid != geteuid() && st.st_uid != 0) || (st.st_mode & 022) ||
	    !(st.st_mode & 0100))
		return reply(fd, "error %s is not a program only root may change", program);
	if (ublk_hand_over(dev, HANDOVER_TIMEOUT_MS) < 0)
		return reply(fd, "error /dev/ublkb%d is not recoverable: no other server can take it over",
			     c->dev_id);
	if (snprintf(c->program, sizeof(c->program), "%s", program) >= (int)sizeof(c->program))
		return reply(fd, "error the program's path is too long");
	c->handed_over = true;
	c->client_fd = fd;	/* answered once the queues ended */
}

/* The requester must be of our own user, or root; the kernel says who it is. */
static bool peer_trusted(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
	       (cred.uid == geteuid() || cred.uid == 0);
}

void control_serve(struct control *c, struct ublk_dev *dev)
{
	struct timeval tv = { .tv_sec = REQUEST_TIMEOUT_S };
	unsigned long long size;
	char req[PATH_MAX + 32], word[16] = "";
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
	req[strcspn(req, "\n")] = '\0';
	/*
	 * A client that gave up waiting (this server was stopped, or busy)
	 * has hung up: its request is not carried out later behind its back.
	 */
	if (recv(fd, &word[0], 1, MSG_PEEK | MSG_DONTWAIT) == 0)
		return (void)close(fd);
	say_line(fd, "accepted");
	if (sscanf(req, "resize %llu %15s", &size, word) >= 1)
		return do_resize(dev, c, fd, size, !strcmp(word, "force"));
	if (!strncmp(req, "handover ", 9) && !c->handed_over)
		return do_handover(dev, c, fd, req + 9);
	if (!strcmp(req, "stats"))
		return do_stats(dev, c, fd);
	reply(fd, "error unknown request");
}

int control_handed_over(struct control *c, unsigned held)
{
	int fd = c->client_fd;

	c->client_fd = -1;
	if (fd >= 0)
		say_line(fd, "handing-over %u", held);
	return fd;
}

/* Milliseconds on the monotonic clock. */
static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int control_read_line(int fd, char *line, size_t len, unsigned timeout_ms)
{
	long long end = now_ms() + timeout_ms;
	size_t n = 0;

	while (n + 1 < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long long left = end - now_ms();
		ssize_t r;
		char ch;

		if (left <= 0)
			return -ETIME;
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIME;
		r = recv(fd, &ch, 1, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0 || ch == '\n')
			break;
		line[n++] = ch;
	}
	line[n] = '\0';
	return n ? 0 : -EPIPE;
}

/* The pid of the server at the other end of @fd, or 0. */
static int peer_pid(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? (int)cred.pid : 0;
}

/* The uid of the peer at the other end of @fd, or -1. */
static long long peer_uid(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? (long long)cred.uid : -1;
}

/* The value of @name in process @pid's environment, into @buf; false if none. */
static bool env_of(pid_t pid, const char *name, char *buf, size_t len)
{
	char path[64], env[16384];
	size_t n = strlen(name);
	ssize_t got;
	bool found = false;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	got = read(fd, env, sizeof(env) - 1);
	close(fd);
	if (got <= 0)
		return false;
	env[got] = '\0';
	for (char *p = env; !found && p < env + got; p += strlen(p) + 1)
		if (!strncmp(p, name, n) && p[n] == '=' && strlen(p + n + 1) < len) {
			snprintf(buf, len, "%s", p + n + 1);
			found = true;
		}
	return found;
}

/*
 * The socket of device @info's server, for a client that would @doing it.
 * Root's device: in RECORD_DIR.  A user's: in the runtime directory its
 * server chose, found as the server found it: from the server's own
 * XDG_RUNTIME_DIR, else /run/user/UID (or the client's own, for the same
 * user).  0, or -errno after saying why (with @quiet, without).
 */
static int server_socket(int dev_id, const struct ublksrv_ctrl_dev_info *info,
			 struct sockaddr_un *a, bool quiet)
{
	uid_t owner = info->owner_uid;
	char xdg[PATH_MAX], dir[PATH_MAX], name[64];
	const char *tried[3] = { NULL, NULL, NULL };
	struct stat st;

	if (!(info->flags & UBLK_F_UNPRIVILEGED_DEV))
		return socket_path(a, RECORD_DIR, dev_id);
	if (info->ublksrv_pid > 0 && env_of(info->ublksrv_pid, "XDG_RUNTIME_DIR", xdg, sizeof(xdg)))
		tried[0] = xdg;
	if (geteuid() == owner)
		tried[1] = getenv("XDG_RUNTIME_DIR");
	for (int i = 0; i < 3; i++) {
		if ((i < 2 && !tried[i]) || user_dir(tried[i], owner, false, dir, sizeof(dir)) < 0 ||
		    socket_path(a, dir, dev_id) < 0)
			continue;
		if (lstat(a->sun_path, &st) == 0 && S_ISSOCK(st.st_mode))
			return 0;
	}
	if (quiet)
		return -ENOENT;
	owner_name(owner, name, sizeof(name));
	log_err("device %d's server (pid %d, of %s) has no control socket in its runtime directory (XDG_RUNTIME_DIR, or /run/user/%u): was it run without one?",
		dev_id, info->ublksrv_pid, name, (unsigned)owner);
	return -ENOENT;
}

/* What a client sending @request does, in the words of a refusal. */
static const char *request_doing(const char *request)
{
	if (!strncmp(request, "handover", 8))
		return "restart";
	if (!strncmp(request, "stats", 5))
		return "read the statistics of";
	return "resize";
}

/*
 * Connect to device @dev_id's server, send @request and read the first
 * line of its answer within @ack_ms; with @quiet, say nothing on failure.
 */
static int connect_quietly(int dev_id, const char *request, char *line, size_t len,
			   unsigned ack_ms, bool quiet)
{
	struct timeval tv = { .tv_sec = ack_ms / 1000, .tv_usec = ack_ms % 1000 * 1000 };
	struct ublksrv_ctrl_dev_info info;
	struct ublk_ctrl *ctrl;
	struct sockaddr_un a;
	int fd = -1, ret;

	/* Whose the device is tells where its server listens. */
	if (ublk_ctrl_open(&ctrl, false) < 0)
		return -ENODEV;
	if (quiet)
		ret = ublk_get_info(ctrl, dev_id, &info, NULL);
	else
		ret = owner_get_info(ctrl, dev_id, request_doing(request), &info, NULL);
	ublk_ctrl_close(ctrl);
	if (ret == 0)
		ret = server_socket(dev_id, &info, &a, quiet);
	if (ret < 0)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* A server that never accepts must not hold connect() for ever either. */
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		ret = -errno;
		if (!quiet)
			log_err("%s: %s (is device %d served by a running ublk-mem?)", a.sun_path,
				 strerror(-ret), dev_id);
		goto err;
	}
	/* A user's socket: its server must be that user's (or root's). */
	if ((info.flags & UBLK_F_UNPRIVILEGED_DEV) && peer_uid(fd) != (long long)info.owner_uid &&
	    peer_uid(fd) != 0) {
		ret = -EPERM;
		if (!quiet)
				log_err("%s: the server listening there is uid %lld's, not the device owner's (uid %u): not asking it",
				a.sun_path, peer_uid(fd), info.owner_uid);
		goto err;
	}
	/* One write: the server reads the request with one recv(). */
	if ((size_t)snprintf(line, len, "%s\n", request) >= len) {
		ret = -ENAMETOOLONG;
		if (!quiet)
			log_err("%s: the request is too long", a.sun_path);
		goto err;
	}
	if (send(fd, line, strlen(line), MSG_NOSIGNAL) < 0) {
		ret = -errno;
		if (!quiet)
			log_err("%s: %s", a.sun_path, strerror(-ret));
		goto err;
	}
	ret = control_read_line(fd, line, len, ack_ms);
	if (ret < 0 && !quiet) {
		if (ret == -ETIME || ret == -EAGAIN)
			log_err("the server of device %d (pid %d) did not answer within %u s: it may be stuck (see: ublk-mem list)",
				 dev_id, peer_pid(fd), ack_ms / 1000);
		else if (ret == -EPIPE)
			log_err("the server of device %d (pid %d) hung up without an answer",
				 dev_id, peer_pid(fd));
		else
			log_err("%s: %s", a.sun_path, strerror(-ret));
	}
	if (ret < 0)
		goto err;
	return fd;
err:
	if (fd >= 0)
		close(fd);
	return ret;
}

int control_connect(int dev_id, const char *request, char *line, size_t len)
{
	return connect_quietly(dev_id, request, line, len, CONTROL_ACK_MS, false);
}

int control_query(int dev_id, const char *request, char *line, size_t len, unsigned timeout_ms)
{
	int fd = connect_quietly(dev_id, request, line, len, timeout_ms, true);
	int ret = 0;

	if (fd < 0)
		return fd;
	if (!strcmp(line, "accepted"))
		ret = control_read_line(fd, line, len, timeout_ms);
	close(fd);
	return ret;
}

int control_request(int dev_id, const char *request, char *reply_line, size_t len,
		    unsigned timeout_ms)
{
	int fd = control_connect(dev_id, request, reply_line, len);
	int ret = 0;

	if (fd < 0)
		return fd;
	/* A server of ublk-mem 0.2 answers at once, without "accepted". */
	if (!strcmp(reply_line, "accepted"))
		ret = control_read_line(fd, reply_line, len, timeout_ms);
	if (ret == -ETIME)
		log_err("the server of device %d (pid %d) accepted the request but did not finish it within %u s",
			 dev_id, peer_pid(fd), timeout_ms / 1000);
	else if (ret == -EPIPE)
		log_err("the server of device %d hung up without an answer", dev_id);
	else if (ret < 0)
		log_err("device %d's server: %s", dev_id, strerror(-ret));
	close(fd);
	return ret;
}
