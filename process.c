/*
 * process.c - the process around a server: see process.h.
 */
#define _GNU_SOURCE
#include "process.h"
#include "control.h"
#include "holders.h"
#include "log.h"
#include "ublk.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define ERRORS_SHOWN		10		/* stray signals reported */
#define FORCE_WINDOW_S		10		/* see may_stop() */
/*
 * The server's oom_score_adj.  A RAM disk's server holds every byte of
 * the device: if the OOM killer picks it, all of it is lost.  -900 makes
 * it the last choice (its score only counts once nothing else is left);
 * -1000 would exempt it entirely, which can leave the kernel nothing to
 * kill but a panic.  A value someone already set (systemd's
 * OOMScoreAdjust=, say) is left alone.
 */
#define OOM_SCORE_ADJ		-900

/*
 * Make fds 0, 1 and 2 valid.  Started with one of them closed, the first
 * file we open would take its number, and printing the device path would
 * write into, say, /dev/ublk-control.
 */
void hold_std_fds(void)
{
	for (int fd = 0; fd <= 2; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
			exit(1);
}

/* ---- signals ---- */

/*
 * What the server does with each asynchronous signal.  All of them are
 * blocked in every thread and taken one at a time by the main thread with
 * sigwaitinfo(), so none can kill the process in the middle of something:
 *
 *   SIGINT SIGTERM SIGHUP SIGQUIT   stop cleanly (a dropped ssh session
 *                                   sends SIGHUP)
 *   every other signal that would   ignored, with a line on stderr: a
 *   kill by default (SIGUSR1/2      stray "reopen your logs" must not
 *   from outside, SIGALRM, ...)     take a disk away
 *
 * SIGPIPE and the terminal's SIGTTOU/SIGTTIN are ignored outright: a
 * closed stdout or a background job writing to a terminal must not kill
 * or freeze the server.
 */
static const int stop_signal_list[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
static const int stray_signals[] = {
	SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGIO, SIGPWR,
	SIGXCPU, SIGXFSZ, SIGSTKFLT,
};

static bool is_stop_signal(int sig)
{
	for (unsigned i = 0; i < sizeof(stop_signal_list) / sizeof(stop_signal_list[0]); i++)
		if (sig == stop_signal_list[i])
			return true;
	return false;
}

void stop_signals(sigset_t *set)
{
	sigemptyset(set);
	for (unsigned i = 0; i < sizeof(stop_signal_list) / sizeof(stop_signal_list[0]); i++)
		sigaddset(set, stop_signal_list[i]);
}

/* Every signal handled by the main thread (see the table above). */
static void handled_signals(sigset_t *set)
{
	stop_signals(set);
	for (unsigned i = 0; i < sizeof(stray_signals) / sizeof(stray_signals[0]); i++)
		sigaddset(set, stray_signals[i]);
	for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
		sigaddset(set, sig);
}

static void report_stray_signal(int sig, pid_t pid)
{
	static unsigned reported;

	if (reported++ < ERRORS_SHOWN)
		log_err("ignoring signal %d (%s) from pid %d: only SIGINT, SIGTERM, SIGHUP or SIGQUIT stop the server",
			 sig, strsignal(sig), (int)pid);
}

/* ---- the control channel ---- */

void take_signals(void)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGTTOU, SIG_IGN);
	signal(SIGTTIN, SIG_IGN);
	handled_signals(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/*
 * Did a stop signal come while the server was busy starting (a long
 * --prealloc)?  It is still pending: all signals are taken only once
 * the device starts.
 */
bool stop_signal_pending(void)
{
	sigset_t pending, stop;

	if (sigpending(&pending) < 0)
		return false;
	stop_signals(&stop);
	sigandset(&stop, &stop, &pending);
	return !sigisemptyset(&stop);
}

bool stop_asked(void *arg)
{
	static bool asked;
	struct timespec zero = { 0, 0 };
	siginfo_t si;
	sigset_t set;
	int sig;

	(void)arg;
	handled_signals(&set);
	while ((sig = sigtimedwait(&set, &si, &zero)) > 0) {
		if (is_stop_signal(sig))
			asked = true;
		else
			report_stray_signal(sig, si.si_pid);
	}
	return asked;
}

/* ---- while the device serves ---- */

/*
 * Is /dev/ublkbN still stopped as asked?  A stop signal to the server of a
 * device that is in use (a file system mounted on it, a program holding
 * it open) would pull the disk from under it: its data gone, its users
 * faced with I/O errors.  So the first stop signal then only says what
 * holds the device, and a second one within FORCE_WINDOW_S stops it
 * anyway.  With UBLK_F_SAFE_STOP_DEV (Linux 7.0) TRY_STOP_DEV stops the
 * device in one step if nobody has it open; elsewhere holders.c tells.
 */
static bool may_stop(struct ublk_dev *dev, time_t *refused_at)
{
	int id = ublk_dev_id(dev), ret = ublk_try_stop(dev);
	char who[256];
	struct timespec t;

	if (ret == -EBUSY)
		disk_in_use(id, who, sizeof(who));
	else if (ret != -EOPNOTSUPP || !disk_in_use(id, who, sizeof(who)))
		return true;	/* stopped, free to stop, or let STOP_DEV say why not */
	clock_gettime(CLOCK_MONOTONIC, &t);
	if (*refused_at && t.tv_sec - *refused_at <= FORCE_WINDOW_S) {
		log_err("stopping /dev/ublkb%d although it is in use, as asked twice: its users get I/O errors",
			id);
		return true;
	}
	log_err("/dev/ublkb%d is in use (%s): not stopping; unmount or close it first, or send the signal again within %d s to stop it anyway",
		id, who[0] ? who : "open by a program", FORCE_WINDOW_S);
	*refused_at = t.tv_sec ? t.tv_sec : 1;
	return false;
}

/*
 * Serve until a signal, a control request or the end of a queue thread
 * says otherwise.  A stop signal asks for a clean stop (returns 0),
 * unless the device is in use (may_stop()); a queue thread that ended by
 * itself means the device was removed from outside or serving failed.
 * Any other signal is reported and ignored.
 */
int serve_until_stopped(struct ublk_dev *dev, struct control *ctl)
{
	struct signalfd_siginfo si;
	struct pollfd p[3];
	time_t refused_at = 0;
	bool stop = false;
	sigset_t set;
	int ret;

	/*
	 * The signals arrive as reads of a signalfd, so that one poll() also
	 * waits for a control request and for a queue thread's end.
	 */
	handled_signals(&set);
	p[0].fd = signalfd(-1, &set, SFD_CLOEXEC);
	p[1].fd = ublk_event_fd(dev);
	p[2].fd = ctl->fd;
	p[0].events = p[1].events = p[2].events = POLLIN;
	if (p[0].fd < 0) {
		ret = -errno;
		log_err("signalfd: %s", strerror(-ret));
		return ret;
	}
	for (;;) {
		if (poll(p, ctl->fd >= 0 ? 3 : 2, -1) < 0)
			continue;	/* EINTR */
		if (p[1].revents & POLLIN)
			break;
		if (ctl->fd >= 0 && (p[2].revents & POLLIN)) {
			control_serve(ctl, dev);
			if (ctl->handed_over)
				break;
		}
		if (!(p[0].revents & POLLIN) ||
		    read(p[0].fd, &si, sizeof(si)) != (ssize_t)sizeof(si))
			continue;
		if (!is_stop_signal((int)si.ssi_signo))
			report_stray_signal((int)si.ssi_signo, (pid_t)si.ssi_pid);
		else if ((stop = may_stop(dev, &refused_at)))
			break;
	}
	close(p[0].fd);
	/* A stop may have ended the queues already (TRY_STOP_DEV): as asked. */
	ret = stop || ctl->handed_over ? 0 : ublk_serving_status(dev);
	if (ret == -ENODEV)
		log_err("/dev/ublkb%d was stopped by someone else; exiting", ublk_dev_id(dev));
	return ret;
}

/*
 * Lock every page this process has or will touch, as it touches it
 * (MCL_ONFAULT: reserved but untouched memory costs nothing).  A device
 * used as swap must never wait for its own memory to come back from swap,
 * which is itself: a queue thread faulting on a swapped-out page of the
 * store, or of its own stack, would wait for a read only it can serve.
 * The compressed store gives pages back with MADV_DONTNEED_LOCKED, which
 * locked pages allow.
 */
void lock_memory(void)
{
	if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) < 0)
		log_err("warning: cannot lock the server's memory: %s (used as swap, the device could wait for itself)",
			strerror(errno));
}

void protect_from_oom_killer(void)
{
	char buf[16] = "";
	int fd = open("/proc/self/oom_score_adj", O_RDWR | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	/*
	 * An ordinary user may raise the score but not lower it (that takes
	 * CAP_SYS_RESOURCE): its server stays an ordinary candidate, as the
	 * README says, with nothing to warn about.
	 */
	if (n > 0 && atoi(buf) == 0 && dprintf(fd, "%d\n", OOM_SCORE_ADJ) < 0 &&
	    !(errno == EACCES && geteuid() != 0))
		log_err("warning: cannot set oom_score_adj to %d: %s (the OOM killer may pick this server and its data)",
			OOM_SCORE_ADJ, strerror(errno));
	close(fd);
}
