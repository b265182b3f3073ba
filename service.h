/*
 * service.h - running as a service: detaching (--daemon), the pid file,
 * telling a service manager how the device is (NOTIFY_SOCKET), and a
 * daemon's messages, which go to syslog once it has detached.
 */
#ifndef UBLK_MEM_SERVICE_H
#define UBLK_MEM_SERVICE_H

#include <limits.h>
#include <stdbool.h>

/* What the command line asked for. */
struct service {
	bool daemon;			/* -D: fork; return once the device is live */
	char pidfile[PATH_MAX];		/* --pidfile, made absolute; "" for none */
};

/*
 * Before serving: refuse a pid file another running server owns, become
 * a daemon if asked, write the pid file.  Returns 0 (in the daemon, with
 * --daemon) or -errno after saying why.
 */
int service_start(const struct service *svc);

/*
 * The device is live.  Say so: READY=1 to a service manager, then the
 * path on stdout, or, for a daemon, to the parent waiting for it, once
 * stderr has been handed to syslog.
 */
void service_live(int dev_id);

/* The device stops serving (@ret: 0, or the -errno it failed with). */
void service_stopping(int ret);

/* The pid file written ("" if none), and its removal (if still ours). */
const char *service_pidfile(void);
void service_drop_pidfile(void);

/* On the way out: remove the pid file, let the logger finish; @status. */
int service_exit(int status);

#endif
