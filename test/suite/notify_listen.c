/*
 * notify_listen.c - the service manager's end of the sd_notify protocol,
 * for the tests (the test VM has no systemd): bind an AF_UNIX datagram
 * socket and log every message that arrives.
 *
 *   notify_listen SOCKET LOG
 *
 * SOCKET is a path, or @NAME for the abstract namespace, as in
 * NOTIFY_SOCKET.  Datagram N (from 1), sent by process PID as the kernel
 * reports it (SO_PASSCRED, as systemd reads it), is appended to LOG as
 * one line "N PID FIELD" per NAME=VALUE field, then, for each /dev/ublkbN
 * named in a field, a line "N PID dev /dev/ublkbN block" or "... absent":
 * what that path was when the message arrived, so a test can tell that
 * READY=1 came no sooner than the device.
 *
 * Prints "listening" on stdout once bound; runs until SIGTERM or SIGINT
 * and then removes a socket file it bound.  Exit status 0, or 1 when it
 * cannot listen.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

/* Bind @where (a path or @NAME); returns the socket or -1. */
static int listen_at(const char *where)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(where);
	int fd, on = 1;

	if (!n || n >= sizeof(sa.sun_path)) {
		fprintf(stderr, "notify_listen: bad socket name '%s'\n", where);
		return -1;
	}
	memcpy(sa.sun_path, where, n);
	if (where[0] == '@')
		sa.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0) {
		fprintf(stderr, "notify_listen: %s: %s\n", where, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* The sender's pid from the SCM_CREDENTIALS the kernel attached, or 0. */
static pid_t sender_of(struct msghdr *mh)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
			struct ucred cred;

			memcpy(&cred, CMSG_DATA(c), sizeof(cred));
			return cred.pid;
		}
	}
	return 0;
}

/* For each /dev/ublkbN in @field: was it a block device just now? */
static void check_devices(FILE *log, unsigned seq, pid_t pid, const char *field)
{
	const char *p = field;

	while ((p = strstr(p, "/dev/ublkb"))) {
		char path[64];
		size_t n = strspn(p + 10, "0123456789");
		struct stat st;

		snprintf(path, sizeof(path), "%.*s", (int)(10 + n), p);
		fprintf(log, "%u %d dev %s %s\n", seq, (int)pid, path,
			stat(path, &st) == 0 && S_ISBLK(st.st_mode) ? "block" : "absent");
		p += 10 + n;
	}
}

/* Append datagram @seq, @len bytes at @msg, to @log, one field a line. */
static void log_message(FILE *log, unsigned seq, pid_t pid, char *msg, size_t len)
{
	char *field, *save = NULL;

	msg[len] = '\0';
	for (field = strtok_r(msg, "\n", &save); field; field = strtok_r(NULL, "\n", &save)) {
		fprintf(log, "%u %d %s\n", seq, (int)pid, field);
		check_devices(log, seq, pid, field);
	}
	fflush(log);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_stop };
	unsigned seq = 0;
	FILE *log;
	int fd;

	if (argc != 3) {
		fprintf(stderr, "usage: notify_listen SOCKET LOG\n");
		return 2;
	}
	log = fopen(argv[2], "ae");
	if (!log) {
		fprintf(stderr, "notify_listen: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	/* No SA_RESTART: a stop signal ends the wait in recvmsg(). */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	fd = listen_at(argv[1]);
	if (fd < 0) {
		fclose(log);
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
	while (!stop) {
		char buf[4096];
		union {
			struct cmsghdr align;
			char space[CMSG_SPACE(sizeof(struct ucred))];
		} ctl;
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = ctl.space, .msg_controllen = sizeof(ctl.space),
		};
		ssize_t n = recvmsg(fd, &mh, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "notify_listen: recvmsg: %s\n", strerror(errno));
			break;
		}
		log_message(log, ++seq, sender_of(&mh), buf, (size_t)n);
	}
	close(fd);
	if (argv[1][0] == '/')
		unlink(argv[1]);
	fclose(log);
	return 0;
}
