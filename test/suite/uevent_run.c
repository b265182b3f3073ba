/*
 * uevent_run.c - udev's RUN+= for the tests (the test VM has no udev): listen
 * to the kernel's uevents and run a program for each device that matches,
 * with the event in its environment.
 *
 *   uevent_run [--kernel] PATTERN LOG PROGRAM [ARG...]
 *
 * For every uevent whose DEVNAME matches the shell PATTERN (fnmatch, on the
 * kernel's name: "ublkc3"), PROGRAM runs with the event's variables (ACTION,
 * DEVPATH, SUBSYSTEM, DEVNAME, DEVTYPE, MAJOR, MINOR, SEQNUM, ...) and a
 * PATH as its whole environment, one at a time, as udev runs a rule's RUN
 * programs: DEVNAME then names the node, "/dev/ublkc3".  With --kernel,
 * DEVNAME stays as the kernel sends it, as the kernel's own hotplug helper
 * (mdev) gets it.  Each program's stdout and stderr go to LOG, followed by a
 * line "ACTION DEVNAME exit N".
 *
 * Prints "listening" on stdout once it receives events; runs until SIGTERM
 * or SIGINT.  Exit status 0, or 1 when it cannot listen.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <linux/netlink.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_VARS	64

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

/* The value of @name in the event's NAME=VALUE strings, or NULL. */
static const char *event_var(char **vars, int n, const char *name)
{
	size_t len = strlen(name);

	for (int i = 0; i < n; i++)
		if (!strncmp(vars[i], name, len) && vars[i][len] == '=')
			return vars[i] + len + 1;
	return NULL;
}

/* Run @argv with the event @vars as its environment; log how it ended. */
static void run(char **argv, char **vars, int n, bool kernel_names, int log_fd)
{
	static char devname[300];
	char *env[MAX_VARS + 2];
	const char *name = event_var(vars, n, "DEVNAME"), *action = event_var(vars, n, "ACTION");
	int status = 0, e = 0;
	pid_t pid;

	for (int i = 0; i < n && e < MAX_VARS; i++) {
		if (!kernel_names && !strncmp(vars[i], "DEVNAME=", 8)) {
			snprintf(devname, sizeof(devname), "DEVNAME=/dev/%s", vars[i] + 8);
			env[e++] = devname;
		} else {
			env[e++] = vars[i];
		}
	}
	env[e++] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	env[e] = NULL;
	pid = fork();
	if (pid == 0) {
		dup2(log_fd, STDOUT_FILENO);
		dup2(log_fd, STDERR_FILENO);
		execve(argv[0], argv, env);
		dprintf(log_fd, "uevent_run: %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		status = -1;
	dprintf(log_fd, "%s %s exit %d\n", action ? action : "?", name,
		WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

int main(int argc, char **argv)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = 1 };
	bool kernel_names = argc > 1 && !strcmp(argv[1], "--kernel");
	char buf[8192], *vars[MAX_VARS];
	int fd, log_fd, size = 1 << 20;

	if (kernel_names) {
		argc--;
		argv++;
	}
	if (argc < 4) {
		fprintf(stderr, "usage: uevent_run [--kernel] PATTERN LOG PROGRAM [ARG...]\n");
		return 2;
	}
	/* No SA_RESTART: a stop signal must end the wait in recv(). */
	struct sigaction act = { .sa_handler = on_stop };

	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);
	log_fd = open(argv[2], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
	if (log_fd < 0 || fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "uevent_run: %s\n", strerror(errno));
		return 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
	printf("listening\n");
	fflush(stdout);
	while (!stop) {
		ssize_t len = recv(fd, buf, sizeof(buf) - 1, 0);
		const char *name;
		int n = 0;

		if (len <= 0)
			continue;	/* EINTR, or an overrun: go on */
		buf[len] = '\0';
		/* "ACTION@DEVPATH\0NAME=VALUE\0...": the header, then the variables. */
		for (char *p = buf + strlen(buf) + 1; p < buf + len && n < MAX_VARS;
		     p += strlen(p) + 1)
			if (strchr(p, '='))
				vars[n++] = p;
		name = event_var(vars, n, "DEVNAME");
		if (name && fnmatch(argv[1], name, 0) == 0)
			run(argv + 3, vars, n, kernel_names, log_fd);
	}
	return 0;
}
