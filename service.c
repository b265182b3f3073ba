/*
 * service.c - running as a service.  What init systems and service managers expect of a server, each part
 * asked for separately:
 *
 *   --daemon       fork.  The parent waits on a pipe until the child says
 *                  its device is live (then prints the path and exits 0)
 *                  or the child exits (then exits with its status: the
 *                  child said why on the shared stderr).  The child leaves
 *                  the caller's session (setsid), works from /, keeps no
 *                  inherited file open; once live its stdin and stdout are
 *                  /dev/null and its stderr a pipe to a thread that hands
 *                  every line to syslog(3), or to the kernel log (dmesg)
 *                  while no syslog daemon listens on /dev/log.
 *   --pidfile      the server's pid, written before any device is made,
 *                  as a fresh file renamed over the path: a reader never
 *                  sees half of it, and a link planted at the path is
 *                  replaced, never followed.  Removed when the server
 *                  exits (only SIGKILL or a crash leaves it).
 *   NOTIFY_SOCKET  systemd's readiness protocol, sd_notify(3) without
 *                  libsystemd: a datagram of NAME=VALUE lines to an
 *                  AF_UNIX socket (a leading '@' names the abstract
 *                  namespace).  READY=1 once live, STOPPING=1 on the way
 *                  out.
 */

#define _GNU_SOURCE
#include "service.h"
#include "log.h"
#include "pinned.h"
#include "process.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>
struct service_state {
	int ready_fd;		/* daemon child: the pipe to the waiting parent */
	bool live;		/* the device went live and has not stopped */
	char dev_path[32];	/* /dev/ublkbN, once live */
	char pidfile[PATH_MAX];	/* the pid file we wrote, or "" */
	dev_t pid_dev;		/* ... and which file that is */
	ino_t pid_ino;
	bool logging;		/* stderr is the pipe to the logger thread */
	int log_fd;		/* the pipe's read end */
	int kmsg_fd;		/* /dev/kmsg, for when no syslog daemon listens */
	pthread_t logger;
};

static struct service_state service = {
	.ready_fd = -1, .log_fd = -1, .kmsg_fd = -1,
};

/* Make @fd refer to /dev/null. */
static void to_dev_null(int fd)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (null >= 0 && null != fd) {
		dup2(null, fd);
		close(null);
	}
}

/*
 * The pid a pid file names, if that process is a ublk-mem server still
 * running (not us); 0 otherwise: no file, a stale one, or someone else's.
 */
static pid_t pidfile_owner(const char *path)
{
	char buf[32] = "", proc[48], comm[32] = "";
	struct stat st;
	ssize_t n = -1;
	char *end;
	long pid;
	int fd;

	/* O_NONBLOCK: a FIFO planted at the path must not hang the start. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	pid = strtol(buf, &end, 10);
	if (end == buf || (*end && *end != '\n') || pid <= 0 || pid > INT_MAX ||
	    pid == getpid())
		return 0;
	snprintf(proc, sizeof(proc), "/proc/%ld/comm", pid);
	fd = open(proc, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, comm, sizeof(comm) - 1);
	close(fd);
	return n > 0 && !strncmp(comm, "ublk-mem", 8) ? (pid_t)pid : 0;
}

/*
 * Write our pid to @path: into a new file beside it (created O_EXCL, so
 * it never opens what someone planted), then renamed over the path, which
 * replaces whatever is there without following it.  Both in the path's
 * directory as opened once (pinned.h); the directory is not kept open
 * (the daemon must not hold the caller's directories), and the removal at
 * exit opens it again, removing only the very file written.
 * Returns 0 or -errno after saying why.
 */
static int pidfile_write(const char *path)
{
	struct pinned_file pf, *p = &pf;
	char tmp[NAME_MAX + 1];
	int fd = -1, ret;

	ret = pinned_open(p, path);
	for (unsigned i = 0; ret == 0 && fd < 0 && i < 100; i++) {
		snprintf(tmp, sizeof(tmp), ".%.200s.%d.%u", p->name, (int)getpid(), i);
		fd = openat(p->dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			    0644);
		if (fd < 0 && errno != EEXIST)
			ret = -errno;
	}
	if (ret == 0 && fd < 0)
		ret = -EEXIST;
	if (ret < 0) {
		log_err("--pidfile %s: cannot create a file in its directory: %s", path,
			strerror(-ret));
		pinned_close(p);
		return ret;
	}
	if (fchmod(fd, 0644) < 0 || dprintf(fd, "%d\n", (int)getpid()) < 0)
		ret = -errno;
	pinned_set_identity(p, fd);
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (!ret && renameat(p->dir_fd, tmp, p->dir_fd, p->name) < 0)
		ret = -errno;
	if (ret) {
		unlinkat(p->dir_fd, tmp, 0);
		log_err("--pidfile %s: %s", path, strerror(-ret));
		pinned_close(p);
		return ret;
	}
	snprintf(service.pidfile, sizeof(service.pidfile), "%s", path);
	service.pid_dev = p->dev;
	service.pid_ino = p->ino;
	pinned_close(p);
	return 0;
}

/* Remove our pid file, if it is still the file we wrote. */
void service_drop_pidfile(void)
{
	struct pinned_file p;

	if (!service.pidfile[0])
		return;
	if (pinned_open(&p, service.pidfile) == 0) {
		p.dev = service.pid_dev;
		p.ino = service.pid_ino;
		pinned_unlink(&p);
		pinned_close(&p);
	}
	service.pidfile[0] = '\0';
}

const char *service_pidfile(void)
{
	return service.pidfile;
}

/*
 * Tell the service manager something (sd_notify(3)): @fmt makes
 * NAME=VALUE lines, sent as one datagram to $NOTIFY_SOCKET.  Without
 * that variable, nothing is sent.  A failure is reported, not fatal: the
 * device serves either way.
 */
static void __attribute__((format(printf, 1, 2))) notify(const char *fmt, ...)
{
	const char *where = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = where ? strlen(where) : 0;
	char msg[512];
	va_list ap;
	int fd, err = 0;

	if (!n)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (where[0] != '/' && where[0] != '@') {
		log_err("warning: NOTIFY_SOCKET=%s is not an AF_UNIX socket path: the service manager is not told how the device is",
			 where);
		return;
	}
	/* A path needs its NUL; an abstract name ('@' -> '\0') does not. */
	if (n + (where[0] == '/') > sizeof(sa.sun_path)) {
		log_err("warning: NOTIFY_SOCKET=%s: the path is too long", where);
		return;
	}
	memcpy(sa.sun_path, where, n);
	if (where[0] == '@')
		sa.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
			     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
		err = errno;
	if (fd >= 0)
		close(fd);
	if (err)
		log_err("warning: NOTIFY_SOCKET=%s: %s (the service manager is not told how the device is)",
			 where, strerror(err));
}

/* ---- errors after detaching: syslog, or the kernel log ---- */

/* The syslog priority of a line the server wrote on stderr. */
static int log_priority(const char *msg)
{
	if (!strncmp(msg, "warning: ", 9) || strstr(msg, "is running out"))
		return LOG_WARNING;
	if (!strncmp(msg, "ignoring signal", 15) || strstr(msg, "available again"))
		return LOG_NOTICE;
	return LOG_ERR;
}

/* Does a syslog daemon listen on /dev/log (datagram or stream)? */
static bool syslog_listening(void)
{
	static const int types[] = { SOCK_DGRAM, SOCK_STREAM };
	struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "/dev/log" };

	for (unsigned i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		int fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0);
		bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;

		if (fd >= 0)
			close(fd);
		if (ok)
			return true;
	}
	return false;
}

/*
 * Hand one line of stderr on: to syslog (facility daemon, tag ublk-mem),
 * or, on a machine with no syslog daemon, to the kernel log, so that
 * `dmesg` still shows why a server stopped.
 */
static void log_line(const char *line)
{
	const char *msg = strncmp(line, "ublk-mem: ", 10) ? line : line + 10;
	int prio = log_priority(msg), n;
	char rec[1100];

	if (!*msg)
		return;
	if (syslog_listening()) {
		syslog(prio, "%s", msg);
		return;
	}
	if (service.kmsg_fd < 0)
		return;
	/* One write(2) per record; dprintf() would first lseek() and fail. */
	n = snprintf(rec, sizeof(rec), "<%d>ublk-mem[%d]: %s\n", LOG_DAEMON | prio,
		     (int)getpid(), msg);
	if (n > (int)sizeof(rec) - 1)
		n = (int)sizeof(rec) - 1;
	if (write(service.kmsg_fd, rec, (size_t)n) < 0)
		return;	/* nowhere else to say it */
}

/* The logger thread: stderr's pipe, line by line, until it is closed. */
static void *logger_thread(void *arg)
{
	char buf[1024];
	size_t n = 0;

	(void)arg;
	for (;;) {
		ssize_t r = read(service.log_fd, buf + n, sizeof(buf) - 1 - n);
		char *start = buf, *nl;

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		while ((nl = memchr(start, '\n', n - (size_t)(start - buf)))) {
			*nl = '\0';
			log_line(start);
			start = nl + 1;
		}
		n -= (size_t)(start - buf);
		memmove(buf, start, n);
		if (n == sizeof(buf) - 1) {	/* a line too long: in pieces */
			buf[n] = '\0';
			log_line(buf);
			n = 0;
		}
	}
	if (n) {
		buf[n] = '\0';
		log_line(buf);
	}
	return NULL;
}

/*
 * From now on, what the server writes on stderr goes to syslog: stderr
 * becomes a pipe, read by a thread of ours.  (ublk.c and mem_backend.c
 * report on stderr and need not know.)  Returns 0 or -errno.
 */
static int log_start(void)
{
	int fds[2], ret;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	openlog("ublk-mem", LOG_PID, LOG_DAEMON);
	service.kmsg_fd = open("/dev/kmsg", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	service.log_fd = fds[0];
	/* Created from the main thread, it inherits its blocked signals. */
	ret = pthread_create(&service.logger, NULL, logger_thread, NULL);
	if (ret) {
		close(fds[0]);
		close(fds[1]);
		service.log_fd = -1;
		return -ret;
	}
	service.logging = true;
	dup2(fds[1], STDERR_FILENO);
	close(fds[1]);
	return 0;
}

/* Close stderr's pipe and wait until the logger has passed on every line. */
static void log_stop(void)
{
	if (!service.logging)
		return;
	to_dev_null(STDERR_FILENO);
	pthread_join(service.logger, NULL);
	close(service.log_fd);
	if (service.kmsg_fd >= 0)
		close(service.kmsg_fd);
	closelog();
	service.logging = false;
}

/* ---- the daemon ---- */

/* Close every file descriptor from 3 up, but @keep. */
static void close_inherited_fds(int keep)
{
	/* close_range(2) is Linux 5.9; ublk-mem needs 6.5 anyway. */
	if (keep > 3)
		syscall(SYS_close_range, 3U, (unsigned)keep - 1, 0U);
	syscall(SYS_close_range, (unsigned)keep + 1, ~0U, 0U);
}

/*
 * The parent of a daemon: wait until the child writes its device's path
 * on @fd (print it, exit 0) or exits (exit as it did).  A stop signal
 * meanwhile (Ctrl-C while a big --prealloc starts, an init system's
 * timeout) is passed on: the child gives up starting, or stops right
 * after, removes what it made and exits; the parent then exits 1.
 */
static void __attribute__((noreturn)) daemon_parent(pid_t child, int fd)
{
	bool stop_passed = false;
	char line[64];
	size_t n = 0;
	sigset_t set;
	int sfd, status;

	stop_signals(&set);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);	/* blocked since main() */
	for (;;) {
		struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
		struct signalfd_siginfo si;
		ssize_t r;

		if (poll(p, sfd >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (sfd >= 0 && (p[1].revents & POLLIN) &&
		    read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			kill(child, (int)si.ssi_signo);
			stop_passed = true;
		}
		if (!p[0].revents)
			continue;
		r = read(fd, line + n, sizeof(line) - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;	/* the child exited without a device */
		n += (size_t)r;
		if (stop_passed) {
			n = 0;	/* live, but told to stop: wait for the end */
		} else if (memchr(line, '\n', n) || n == sizeof(line) - 1) {
			/* Live: a closed stdout does not change that. */
			fwrite(line, 1, n, stdout);
			fflush(stdout);
			exit(0);
		}
	}
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status))
		exit(WEXITSTATUS(status));
	if (WIFSIGNALED(status))
		log_err("the server (pid %d) was killed by signal %d (%s) before its device was live",
			 (int)child, WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		log_err("stopped as asked while starting: no device");
	exit(1);
}

/*
 * --daemon: fork.  The parent waits for the outcome and exits; the child
 * returns, detached from the caller, and tells the parent through
 * service.ready_fd once its device is live (see service_live()).
 * Returns 0 in the child, or -errno when it cannot fork.
 */
static int daemonize(void)
{
	int fds[2], ret;
	pid_t pid;

	fflush(NULL);
	if (pipe2(fds, O_CLOEXEC) < 0)
		goto err;
	pid = fork();
	if (pid < 0) {
		ret = errno;
		close(fds[0]);
		close(fds[1]);
		errno = ret;
		goto err;
	}
	if (pid > 0) {
		close(fds[1]);
		daemon_parent(pid, fds[0]);
	}
	close(fds[0]);
	service.ready_fd = fds[1];
	/*
	 * A session of its own: no terminal, and the caller's Ctrl-C or
	 * hang-up is not ours.  Stdin and stdout go now: a caller reading
	 * `$(ublk-mem -D 64M)` must see the end of it when the parent exits.
	 * Stderr stays until the device is live, to carry a failure's reason.
	 */
	setsid();
	umask(022);
	if (chdir("/") < 0)
		log_err("warning: chdir /: %s", strerror(errno));
	to_dev_null(STDIN_FILENO);
	to_dev_null(STDOUT_FILENO);
	close_inherited_fds(service.ready_fd);
	return 0;
err:
	ret = -errno;
	log_err("cannot start a daemon: %s", strerror(-ret));
	return ret;
}

/*
 * Before serving: refuse a pid file another running server owns, become
 * a daemon if asked, write the pid file.  Returns 0 (in the daemon, with
 * --daemon) or -errno after saying why.
 */
int service_start(const struct service *svc)
{
	pid_t owner = svc->pidfile[0] ? pidfile_owner(svc->pidfile) : 0;
	int ret;

	if (owner > 0) {
		log_err("--pidfile %s names ublk-mem pid %d, which is running: stop it first, or use another pid file",
			 svc->pidfile, (int)owner);
		return -EEXIST;
	}
	if (svc->daemon) {
		ret = daemonize();
		if (ret < 0)
			return ret;
	}
	return svc->pidfile[0] ? pidfile_write(svc->pidfile) : 0;
}

void service_live(int dev_id)
{
	char *path = service.dev_path;
	int ret;

	snprintf(path, sizeof(service.dev_path), "/dev/ublkb%d", dev_id);
	service.live = true;
	if (service.ready_fd < 0) {
		notify("READY=1\nSTATUS=serving %s\n", path);
		/* A closed stdout must not stop the server: the error is ignored. */
		printf("%s\n", path);
		fflush(stdout);
		return;
	}
	/* MAINPID: the process the manager started is about to exit. */
	notify("READY=1\nSTATUS=serving %s\nMAINPID=%d\n", path, (int)getpid());
	ret = log_start();
	if (ret < 0) {
		log_err("warning: cannot pass messages to syslog (%s): the daemon's errors are lost",
			 strerror(-ret));
		to_dev_null(STDERR_FILENO);
	}
	dprintf(service.ready_fd, "%s\n", path);
	close(service.ready_fd);
	service.ready_fd = -1;
}

void service_stopping(int ret)
{
	if (!service.live)
		return;
	service.live = false;
	if (ret < 0)
		notify("STOPPING=1\nSTATUS=%s failed: %s\nERRNO=%d\n", service.dev_path,
		       strerror(-ret), -ret);
	else
		notify("STOPPING=1\nSTATUS=stopping %s\n", service.dev_path);
}

int service_exit(int status)
{
	service_drop_pidfile();
	log_stop();
	return status;
}

