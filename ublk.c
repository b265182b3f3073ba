/*
 * ublk.c - the ublk protocol, from the control commands that create a
 * device to the loop that serves its requests.  Read uring.c first.
 *
 * Life of a device (control commands, on /dev/ublk-control):
 *
 *   GET_FEATURES     what this kernel's driver supports
 *   ADD_DEV          creates /dev/ublkcN (the server's channel); no disk yet
 *   SET_PARAMS       size, block size, discard limits
 *   open + mmap      /dev/ublkcN; each queue's descriptor array
 *   FETCH_REQ x all  each queue thread hands one command per tag to the
 *                    kernel: "give me a request for this slot"
 *   START_DEV        the driver creates /dev/ublkbN; I/O starts flowing
 *   ... serve ...
 *   STOP_DEV         removes /dev/ublkbN once in-flight I/O is done; every
 *                    pending FETCH completes with UBLK_IO_RES_ABORT
 *   close /dev/ublkcN, DEL_DEV_ASYNC   the device id is freed
 *
 * A device made with UBLK_F_USER_RECOVERY outlives its server: when the
 * server dies the kernel quiesces the device and holds its I/O, and a new
 * server takes over with START_USER_RECOVERY, its own FETCHes and
 * END_USER_RECOVERY instead of ADD_DEV ... START_DEV.
 *
 * Life of one request (I/O commands, on /dev/ublkcN, in a queue thread):
 *
 *   1. A program writes to /dev/ublkbN.  The block layer hands the
 *      request to ublk_drv, which picks the queue and tag (slot) and fills
 *      descriptor [tag] in the array we mapped: op, offset, length.
 *   2. For a WRITE in bounce mode the driver first copies the data into
 *      the buffer we gave for that tag.
 *   3. The driver completes our pending FETCH (or COMMIT_AND_FETCH) for
 *      that tag: a CQE appears on the queue's ring.
 *   4. We read the descriptor and do the work with the backend.
 *   5. We send COMMIT_AND_FETCH for the tag with the result.  The driver
 *      completes the block request (copying READ data out of our buffer)
 *      and keeps the command as the FETCH for the tag's next request.
 *
 * The copy modes change steps 2 and 5; see enum ublk_copy_mode and
 * queue_read() / queue_write() below.  In zero_copy mode
 * (UBLK_F_AUTO_BUF_REG, Linux 6.16) the driver copies nothing: at step 3
 * it lends the request's own pages to our ring as a fixed buffer, and at
 * step 4 io_uring itself reads or writes them from or to the backend's
 * file (queue_zc_serve()); the COMMIT takes them back.
 *
 * A queue has one thread by default.  From Linux 6.16 (PER_IO_DAEMON)
 * the driver keeps track of which thread fetched each tag and sends the
 * tag's requests there, so --queue-threads N splits a queue's tags among
 * N threads, each with its own ring (see struct ublk_queue).
 *
 * That is the per-request path, which every 6.x driver has.  A device made
 * with UBLK_F_BATCH_IO (Linux 7.0) takes other I/O commands, each carrying
 * many tags: its queue threads run ublk_batch.c's loop instead of
 * queue_loop(), and serve each request with the same queue_serve().
 *
 * Where the kernel copies into our memory (steps 2 and 5, and
 * NEED_GET_DATA) it cannot fail the request if that memory cannot be
 * allocated: it requeues the request and tries again, for ever.  So every
 * address we hand the kernel for a WRITE is memory that exists already:
 * the backend's, after its prepare_write() said yes, or a buffer of ours
 * that was allocated at start.
 */
#define _GNU_SOURCE
#include "ublk.h"
#include "ublk_queue.h"
#include "uring.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

#define CTRL_DEV		"/dev/ublk-control"
#define SYSFS_CHAR_DIR		"/sys/class/ublk-char"
#define SIG_QUEUE_EXIT		SIGUSR1		/* a queue thread has ended */
#define BUSY_SPIN_US		100		/* see spin_time() */
#define CTRL_SLICE_MS		100		/* see ctrl_cmd_abortable() */
#define START_LIMIT_MS		30000		/* START_DEV, END_USER_RECOVERY */
#define CANCEL_LIMIT_MS		10000		/* a cancelled command's answer */
#define STOP_CLOSE_MS		1000		/* see stop_give_up() */
#define FORCE_WINDOW_S		10		/* see dev_may_stop() */
/* Bounce mode allocates every tag's buffer at start: at most this much. */
#define BOUNCE_BYTES_PER_QUEUE	(32U << 20)
#define ERRORS_SHOWN		10		/* per queue thread */
/* --io-path auto: see choose_io_path() and the README's measurements. */
#define BATCH_BY_DEFAULT	false
#define BATCH_COPY_MODE		UBLK_COPY_BOUNCE

/* ---- messages ---- */

void ublk_err(const char *fmt, ...)
{
	va_list ap;
	char line[512];

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write per line, so lines of concurrent threads do not mix. */
	dprintf(STDERR_FILENO, "ublk-mem: %s\n", line);
}

/*
 * A test hook: is the fault named @point asked for in UBLK_MEM_TEST_FAULT?
 * The integration tests use it to reach failure paths no outside event
 * can reach on demand; nothing else should set it.
 */
bool test_fault(const char *point)
{
	static const char *fault = "";

	if (fault && !*fault)
		fault = getenv("UBLK_MEM_TEST_FAULT");	/* read once */
	return fault && !strcmp(fault, point);
}

/* ---- signals ---- */

/*
 * What the server does with each asynchronous signal.  All of them are
 * blocked in every thread and taken one at a time by the main thread with
 * sigwaitinfo(), so none can kill the process in the middle of something:
 *
 *   SIGINT SIGTERM SIGHUP SIGQUIT   stop cleanly (a dropped ssh session
 *                                   sends SIGHUP)
 *   SIGUSR1 from our own threads    a queue thread has ended
 *   every other signal that would   ignored, with a line on stderr: a
 *   kill by default (SIGUSR1/2      stray "reopen your logs" must not
 *   from outside, SIGALRM, ...)     take a disk away
 *
 * SIGPIPE and the terminal's SIGTTOU/SIGTTIN are ignored outright (see
 * main.c): a closed stdout or a background job writing to a terminal
 * must not kill or freeze the server.
 */
static const int stop_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
static const int stray_signals[] = {
	SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGIO, SIGPWR,
	SIGXCPU, SIGXFSZ, SIGSTKFLT,
};

static bool is_stop_signal(int sig)
{
	for (unsigned i = 0; i < sizeof(stop_signals) / sizeof(stop_signals[0]); i++)
		if (sig == stop_signals[i])
			return true;
	return false;
}

void ublk_stop_signals(sigset_t *set)
{
	sigemptyset(set);
	for (unsigned i = 0; i < sizeof(stop_signals) / sizeof(stop_signals[0]); i++)
		sigaddset(set, stop_signals[i]);
}

/* Every signal handled by the main thread (see the table above). */
static void handled_signals(sigset_t *set)
{
	ublk_stop_signals(set);
	for (unsigned i = 0; i < sizeof(stray_signals) / sizeof(stray_signals[0]); i++)
		sigaddset(set, stray_signals[i]);
	for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
		sigaddset(set, sig);
}

void ublk_block_signals(void)
{
	sigset_t set;

	handled_signals(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/*
 * Did the signal come from one of this process's own threads?  The kernel
 * fills in the sender's pid for kill() and tgkill() (SI_USER, or SI_TKILL
 * on some kernels); another process can only forge si_pid along with a
 * negative si_code such as SI_QUEUE, which is not accepted here.
 */
static bool signal_from_us(int code, pid_t pid)
{
	return (code == SI_USER || code == SI_TKILL) && pid == getpid();
}

static void report_stray_signal(int sig, pid_t pid)
{
	static unsigned reported;

	if (reported++ < ERRORS_SHOWN)
		ublk_err("ignoring signal %d (%s) from pid %d: only SIGINT, SIGTERM, SIGHUP or SIGQUIT stop the server",
			 sig, strsignal(sig), (int)pid);
}

/* ---- the control channel ---- */

struct ublk_ctrl {
	int fd;			/* /dev/ublk-control */
	struct uring ring;	/* SQE128: the command needs 32 bytes */
	uint64_t features;	/* GET_FEATURES answer */
	bool trace;
};

static const char *ctrl_cmd_name(uint32_t op)
{
	switch (op) {
	case UBLK_U_CMD_GET_QUEUE_AFFINITY: return "GET_QUEUE_AFFINITY";
	case UBLK_U_CMD_GET_DEV_INFO: return "GET_DEV_INFO";
	case UBLK_U_CMD_ADD_DEV: return "ADD_DEV";
	case UBLK_U_CMD_DEL_DEV: return "DEL_DEV";
	case UBLK_U_CMD_START_DEV: return "START_DEV";
	case UBLK_U_CMD_STOP_DEV: return "STOP_DEV";
	case UBLK_U_CMD_SET_PARAMS: return "SET_PARAMS";
	case UBLK_U_CMD_GET_PARAMS: return "GET_PARAMS";
	case UBLK_U_CMD_START_USER_RECOVERY: return "START_USER_RECOVERY";
	case UBLK_U_CMD_END_USER_RECOVERY: return "END_USER_RECOVERY";
	case UBLK_U_CMD_GET_FEATURES: return "GET_FEATURES";
	case UBLK_U_CMD_DEL_DEV_ASYNC: return "DEL_DEV_ASYNC";
	case UBLK_U_CMD_GET_DEV_INFO2: return "GET_DEV_INFO2";
	case UBLK_U_CMD_UPDATE_SIZE: return "UPDATE_SIZE";
	case UBLK_U_CMD_QUIESCE_DEV: return "QUIESCE_DEV";
	case UBLK_U_CMD_TRY_STOP_DEV: return "TRY_STOP_DEV";
	default: return "?";
	}
}

/* user_data of the cancel request: no control opcode is 0. */
#define CANCEL_USER_DATA	0

/*
 * Wait for the CQE of the control command @op, skipping the answers of
 * cancel requests.  Returns 0 with *res set, or -errno (-ETIME after
 * @timeout_ms).
 */
static int ctrl_wait_answer(struct ublk_ctrl *c, uint32_t op, unsigned timeout_ms,
			    int *res)
{
	struct io_uring_cqe *cqe;
	int ret;

	for (;;) {
		/* Without EXT_ARG (before Linux 5.11) a wait has no limit. */
		if (c->ring.features & IORING_FEAT_EXT_ARG)
			ret = uring_wait_cqe_timeout(&c->ring, &cqe, timeout_ms);
		else
			ret = uring_wait_cqe(&c->ring, &cqe);
		if (ret < 0)
			return ret;
		if (cqe->user_data == op) {
			*res = cqe->res;
			uring_cq_advance(&c->ring, 1);
			return 0;
		}
		uring_cq_advance(&c->ring, 1);	/* a cancel's own answer */
	}
}

/*
 * Cancel the control command in flight and wait, bounded, for its answer.
 * The driver runs a control command in an io_uring worker; cancelling
 * interrupts the worker's wait (START_DEV and END_USER_RECOVERY wait
 * interruptibly), so the answer comes at once, mostly -EINTR.
 */
static int ctrl_cancel(struct ublk_ctrl *c, uint32_t op)
{
	struct io_uring_sqe *sqe = uring_get_sqe(&c->ring);
	int res, ret;

	if (sqe) {
		uring_prep_cancel(sqe, op, CANCEL_USER_DATA);
		uring_submit(&c->ring);
	}
	ret = ctrl_wait_answer(c, op, CANCEL_LIMIT_MS, &res);
	return ret < 0 ? ret : -ECANCELED;
}

/*
 * Send one control command and wait for its answer.  The driver runs
 * control commands in an io_uring worker thread, where they may block
 * (START_DEV waits for every FETCH).  With @give_up, the wait goes in
 * slices of CTRL_SLICE_MS and @give_up(@arg) is asked after each: when
 * it says yes, the command is cancelled and -ECANCELED returned.
 */
static int ctrl_cmd_abortable(struct ublk_ctrl *c, uint32_t op, uint32_t dev_id,
			      void *buf, uint16_t len, uint64_t data0,
			      bool (*give_up)(void *arg), void *arg)
{
	struct ublksrv_ctrl_cmd cmd = {
		.dev_id = dev_id,
		.queue_id = (uint16_t)-1,
		.len = len,
		.addr = (uint64_t)(uintptr_t)buf,
		.data = { data0 },
	};
	struct io_uring_sqe *sqe = uring_get_sqe(&c->ring);
	int ret, res = 0;

	if (!sqe)
		return -EBUSY;	/* cannot happen: one command at a time */
	uring_prep_cmd(sqe, c->fd, op, &cmd, sizeof(cmd), op);
	ret = uring_submit(&c->ring);
	if (ret < 0)
		return ret;
	for (;;) {
		ret = ctrl_wait_answer(c, op, give_up ? CTRL_SLICE_MS : 60000, &res);
		if (ret == 0)
			break;
		if (ret != -ETIME)
			return ret;
		if (!give_up || give_up(arg)) {
			res = ctrl_cancel(c, op);
			break;
		}
	}
	if (c->trace)
		ublk_err("ctrl %s dev %d -> %d%s%s", ctrl_cmd_name(op),
			 (int)dev_id, res, res < 0 ? " " : "",
			 res < 0 ? strerror(-res) : "");
	return res;
}

static int ctrl_cmd(struct ublk_ctrl *c, uint32_t op, uint32_t dev_id,
		    void *buf, uint16_t len, uint64_t data0)
{
	return ctrl_cmd_abortable(c, op, dev_id, buf, len, data0, NULL, NULL);
}

const char *ublk_feature_since(unsigned bit)
{
	/* First mainline release with each flag (from the driver's history). */
	static const char *const since[] = {
		"6.15", "6.0", "6.0", "6.1", "6.1", "6.3", "6.4", "6.5", "6.6",
		"6.13", "6.16", "6.16", "6.16", "6.16", "6.17", "7.0", "7.0", "7.0",
		"7.0", "7.1", "7.3",
	};

	return bit < sizeof(since) / sizeof(since[0]) ? since[bit] : "?";
}

const char *ublk_feature_name(unsigned bit)
{
	static const char *const names[] = {
		"SUPPORT_ZERO_COPY", "URING_CMD_COMP_IN_TASK", "NEED_GET_DATA",
		"USER_RECOVERY", "USER_RECOVERY_REISSUE", "UNPRIVILEGED_DEV",
		"CMD_IOCTL_ENCODE", "USER_COPY", "ZONED", "USER_RECOVERY_FAIL_IO",
		"UPDATE_SIZE", "AUTO_BUF_REG", "QUIESCE", "PER_IO_DAEMON",
		"BUF_REG_OFF_DAEMON", "BATCH_IO", "INTEGRITY", "SAFE_STOP_DEV",
		"NO_AUTO_PART_SCAN", "SHMEM_ZC", "IO_DESC_SIZE",
	};

	return bit < sizeof(names) / sizeof(names[0]) ? names[bit] : NULL;
}

/*
 * Refuse, naming what is missing and the first Linux release that has
 * it, a configuration whose flags this kernel's driver does not offer.
 * (Every flag ublk-mem needs is in 6.5, the oldest driver it accepts, but
 * kernels with a driver built from other trees exist.)
 */
static int check_features(uint64_t features, uint64_t want)
{
	for (unsigned bit = 0; bit < 64; bit++) {
		uint64_t flag = 1ULL << bit;

		if ((want & flag) && !(features & flag)) {
			ublk_err("this kernel's ublk driver lacks UBLK_F_%s (Linux %s)%s",
				 ublk_feature_name(bit), ublk_feature_since(bit),
				 flag & (UBLK_F_USER_COPY | UBLK_F_AUTO_BUF_REG) ?
				 ": use another --copy-mode" :
				 flag == UBLK_F_BATCH_IO ? ": use --io-path per-request" :
				 flag == UBLK_F_PER_IO_DAEMON ? ": use --queue-threads 1" :
				 flag & (UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_REISSUE) ?
				 ": --recoverable cannot work here" : "");
			return -EOPNOTSUPP;
		}
	}
	return 0;
}

int ublk_ctrl_open(struct ublk_ctrl **ctrlp, bool trace)
{
	struct ublk_ctrl *c = calloc(1, sizeof(*c));
	int ret;

	if (!c)
		return -ENOMEM;
	c->trace = trace;
	c->fd = open(CTRL_DEV, O_RDWR | O_CLOEXEC);
	if (c->fd < 0) {
		ret = -errno;
		ublk_err("%s: %s (%s)", CTRL_DEV, strerror(-ret),
			 ret == -ENOENT ? "is the ublk_drv module loaded? try: modprobe ublk_drv" :
			 ret == -EACCES || ret == -EPERM ? "run as root" :
			 "cannot talk to the ublk driver");
		goto err_free;
	}
	ret = uring_init(&c->ring, 4, IORING_SETUP_SQE128);
	if (ret < 0) {
		ublk_err("io_uring_setup: %s (%s)", strerror(-ret),
			 ret == -EPERM || ret == -ENOSYS ?
			 "io_uring is disabled: see sysctl kernel.io_uring_disabled" :
			 "cannot create an io_uring");
		goto err_close;
	}
	/*
	 * GET_FEATURES came in Linux 6.5.  Before it, the driver takes the
	 * command for one on device 0 and answers ENODEV or EOPNOTSUPP.
	 */
	ret = ctrl_cmd(c, UBLK_U_CMD_GET_FEATURES, 0, &c->features,
		       sizeof(c->features), 0);
	if (ret < 0) {
		ublk_err("%s: this kernel's ublk driver does not answer GET_FEATURES (%s): it is older than Linux 6.5, which ublk-mem needs",
			 CTRL_DEV, strerror(-ret));
		goto err_ring;
	}
	ret = check_features(c->features, UBLK_F_CMD_IOCTL_ENCODE);
	if (ret < 0)
		goto err_ring;
	*ctrlp = c;
	return 0;
err_ring:
	uring_exit(&c->ring);
err_close:
	close(c->fd);
err_free:
	free(c);
	return ret;
}

void ublk_ctrl_close(struct ublk_ctrl *c)
{
	if (!c)
		return;
	uring_exit(&c->ring);
	close(c->fd);
	free(c);
}

uint64_t ublk_features(const struct ublk_ctrl *c)
{
	return c->features;
}

int ublk_get_info(struct ublk_ctrl *c, int dev_id,
		  struct ublksrv_ctrl_dev_info *info, struct ublk_params *params)
{
	int ret = ctrl_cmd(c, UBLK_U_CMD_GET_DEV_INFO, (uint32_t)dev_id, info,
			   sizeof(*info), 0);

	if (ret < 0 || !params)
		return ret;
	memset(params, 0, sizeof(*params));
	params->len = sizeof(*params);
	return ctrl_cmd(c, UBLK_U_CMD_GET_PARAMS, (uint32_t)dev_id, params,
			sizeof(*params), 0);
}

/*
 * Does the kernel still hold id @dev_id?  A deleted device keeps its id
 * until the last user of its block device lets go (a mounted file system
 * holds it until unmounted), long after /dev/ublkcN and its sysfs entry
 * are gone; GET_DEV_INFO answers for it until then.
 */
static bool id_held(struct ublk_ctrl *c, int dev_id)
{
	struct ublksrv_ctrl_dev_info info;

	return ctrl_cmd(c, UBLK_U_CMD_GET_DEV_INFO, (uint32_t)dev_id, &info,
			sizeof(info), 0) != -ENODEV;
}

int ublk_delete(struct ublk_ctrl *c, int dev_id, unsigned timeout_ms)
{
	/*
	 * The synchronous DEL_DEV waits until the last user of the device
	 * lets go, which can be never (a file system still mounted); the
	 * asynchronous one removes it and returns.  Then wait, bounded, for
	 * the id to be freed so a caller can reuse it.
	 */
	int ret = ctrl_cmd(c, UBLK_U_CMD_DEL_DEV_ASYNC, (uint32_t)dev_id,
			   NULL, 0, 0);

	if (ret == -EOPNOTSUPP)
		ret = ctrl_cmd(c, UBLK_U_CMD_DEL_DEV, (uint32_t)dev_id,
			       NULL, 0, 0);
	if (ret < 0)
		return ret;
	for (unsigned ms = 0; id_held(c, dev_id) && ms < timeout_ms; ms += 20)
		usleep(20000);
	return id_held(c, dev_id) ? -EBUSY : 0;
}

/* ---- who uses a block device ---- */

#define MAX_DEVTS	16	/* the disk and its first partitions */

/* Add "what" to the description in @who (comma separated, truncated). */
static void add_user(char *who, size_t len, const char *what)
{
	size_t n = strlen(who);

	if (n + 3 < len)
		snprintf(who + n, len - n, "%s%s", n ? ", " : "", what);
}

/* The device number in the sysfs file @path ("259:0"); false if none. */
static bool read_devt(const char *path, dev_t *devt)
{
	unsigned maj, min;
	FILE *f = fopen(path, "re");
	bool ok;

	if (!f)
		return false;
	ok = fscanf(f, "%u:%u", &maj, &min) == 2;
	fclose(f);
	if (ok)
		*devt = makedev(maj, min);
	return ok;
}

/*
 * The device numbers of /dev/ublkbN, first, and of its partitions.
 * Returns how many, 0 when there is no such disk.
 */
static int disk_devts(int dev_id, dev_t *devts)
{
	char dir[64], path[PATH_MAX];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "/sys/block/ublkb%d", dev_id);
	snprintf(path, sizeof(path), "%s/dev", dir);
	if (!read_devt(path, &devts[n]))
		return 0;
	n++;
	d = opendir(dir);
	if (!d)
		return n;
	while (n < MAX_DEVTS && (e = readdir(d))) {
		if (strncmp(e->d_name, "ublkb", 5))
			continue;	/* ublkbNpM: a partition */
		snprintf(path, sizeof(path), "%s/%s/dev", dir, e->d_name);
		n += read_devt(path, &devts[n]);
	}
	closedir(d);
	return n;
}

static bool is_one_of(dev_t d, const dev_t *devts, int n)
{
	for (int i = 0; i < n; i++)
		if (devts[i] == d)
			return true;
	return false;
}

/* File systems mounted from the device: "mounted on /mnt". */
static void find_mounts(const dev_t *devts, int n, char *who, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[1024], mnt[512], what[600];
	unsigned maj, min;

	if (!f)
		return;
	/* "36 35 259:0 / /mnt rw,... - ext4 /dev/ublkb0 rw" */
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%*u %*u %u:%u %*s %511s", &maj, &min, mnt) == 3 &&
		    is_one_of(makedev(maj, min), devts, n)) {
			snprintf(what, sizeof(what), "mounted on %s", mnt);
			add_user(who, len, what);
		}
	fclose(f);
}

/* Devices stacked on the sysfs entry @dir (its holders/): "held by dm-0". */
static void find_holders_of(const char *dir, char *who, size_t len)
{
	char path[PATH_MAX], what[300];
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "%s/holders", dir);
	d = opendir(path);
	if (!d)
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(what, sizeof(what), "held by %s", e->d_name);
			add_user(who, len, what);
		}
	closedir(d);
}

/* Devices stacked on the disk or on one of its partitions (dm, md). */
static void find_holders(int dev_id, char *who, size_t len)
{
	char dir[64], part[PATH_MAX];
	struct dirent *e;
	DIR *d;

	snprintf(dir, sizeof(dir), "/sys/block/ublkb%d", dev_id);
	find_holders_of(dir, who, len);
	d = opendir(dir);
	if (!d)
		return;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "ublkb", 5)) {	/* a partition, ublkbNpM */
			snprintf(part, sizeof(part), "%s/%s", dir, e->d_name);
			find_holders_of(part, who, len);
		}
	closedir(d);
}

/*
 * Is the disk claimed: a file system mounted on it or on a partition, in
 * any mount namespace (a container, a service with PrivateMounts), or a
 * device (dm, md) stacked on either?  The kernel then refuses an
 * exclusive open of the whole disk with EBUSY; no scan of this
 * namespace's tables sees all of those.  Opened read-only, so closing it
 * makes udev do nothing.
 */
static bool disk_claimed(int dev_id, dev_t disk)
{
	char path[64];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "/dev/ublkb%d", dev_id);
	if (stat(path, &st) < 0 || !S_ISBLK(st.st_mode) || st.st_rdev != disk)
		return false;	/* no node for this disk: the scans below tell */
	fd = open(path, O_RDONLY | O_EXCL | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return errno == EBUSY;
	close(fd);
	return false;
}

/* Processes with the device open: "open by pid 123 (dd)". */
static void find_openers(const dev_t *devts, int n, char *who, size_t len)
{
	char path[PATH_MAX], comm[64] = "", what[384];
	DIR *procs = opendir("/proc"), *fds;
	struct dirent *p, *fd;
	struct stat st;
	FILE *f;

	while (procs && (p = readdir(procs))) {
		if (p->d_name[0] < '0' || p->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/fd", p->d_name);
		fds = opendir(path);
		while (fds && (fd = readdir(fds))) {
			snprintf(path, sizeof(path), "/proc/%s/fd/%s", p->d_name, fd->d_name);
			if (fd->d_name[0] == '.' || stat(path, &st) < 0 ||
			    !S_ISBLK(st.st_mode) || !is_one_of(st.st_rdev, devts, n))
				continue;
			snprintf(path, sizeof(path), "/proc/%s/comm", p->d_name);
			f = fopen(path, "re");

			if (!f || !fgets(comm, sizeof(comm), f))
				comm[0] = '\0';
			if (f)
				fclose(f);
			comm[strcspn(comm, "\n")] = '\0';
			snprintf(what, sizeof(what), "open by pid %s (%s)", p->d_name, comm);
			add_user(who, len, what);
			break;
		}
		if (fds)
			closedir(fds);
	}
	if (procs)
		closedir(procs);
}

bool ublk_in_use(int dev_id, char *who, size_t len)
{
	dev_t devts[MAX_DEVTS];
	int n = disk_devts(dev_id, devts);
	bool claimed;

	who[0] = '\0';
	if (!n)
		return false;	/* no block device (any more) */
	claimed = disk_claimed(dev_id, devts[0]);
	find_mounts(devts, n, who, len);
	find_holders(dev_id, who, len);
	find_openers(devts, n, who, len);
	if (claimed && !who[0])
		add_user(who, len, "claimed by a file system or a device stacked on it that this mount namespace does not show");
	return claimed || who[0] != '\0';
}

int ublk_list_ids(int *ids, int max)
{
	DIR *d = opendir(SYSFS_CHAR_DIR);
	struct dirent *e;
	int n = 0;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d)) && n < max) {
		int id;

		if (sscanf(e->d_name, "ublkc%d", &id) == 1)
			ids[n++] = id;
	}
	closedir(d);
	/* insertion sort: a handful of ids */
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
			int t = ids[j];

			ids[j] = ids[j - 1];
			ids[j - 1] = t;
		}
	return n;
}

bool ublk_server_running(const struct ublksrv_ctrl_dev_info *info)
{
	char path[64], buf[256], *p;
	ssize_t n;
	int fd;

	if (info->ublksrv_pid <= 0)
		return false;
	/* A killed server that nobody has reaped yet is a zombie: gone. */
	snprintf(path, sizeof(path), "/proc/%d/stat", info->ublksrv_pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	p = strrchr(buf, ')');	/* "pid (comm) S ...": comm may hold spaces */
	return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* ---- a device being served ---- */

/* struct ublk_tag, ublk_queue, ublk_dev: see ublk_queue.h. */

/*
 * user_data of an I/O command: the tag in bits 0-15, the command kind in
 * bits 16-23.  Each queue has its own ring, so the queue is implied.
 */
enum io_kind {
	IO_FETCH = 1, IO_COMMIT = 2, IO_GET_DATA = 3, IO_STOP = 4,
	IO_STORE = 5,	/* zero_copy: the read or write of the backend's file */
};

static inline uint64_t io_user_data(unsigned tag, enum io_kind kind)
{
	_Static_assert(UBLK_MAX_QUEUE_DEPTH <= 0x10000, "tag fits 16 bits");
	return (uint64_t)tag | (uint64_t)kind << 16;
}

static inline unsigned user_data_tag(uint64_t ud)
{
	return ud & 0xffff;
}

static inline enum io_kind user_data_kind(uint64_t ud)
{
	return (enum io_kind)((ud >> 16) & 0xff);
}

enum ublk_copy_mode ublk_copy_mode_of(uint64_t flags)
{
	return (flags & UBLK_F_USER_COPY) ? UBLK_COPY_USER :
	       (flags & UBLK_F_AUTO_BUF_REG) ? UBLK_COPY_ZERO :
	       (flags & UBLK_F_NEED_GET_DATA) ? UBLK_COPY_GET_DATA : UBLK_COPY_BOUNCE;
}

const char *ublk_copy_mode_name(enum ublk_copy_mode m)
{
	return m == UBLK_COPY_GET_DATA ? "get_data" :
	       m == UBLK_COPY_USER ? "user_copy" :
	       m == UBLK_COPY_ZERO ? "zero_copy" : "bounce";
}

static const char *io_op_name(unsigned op)
{
	static const char *const names[] = {
		[UBLK_IO_OP_READ] = "READ", [UBLK_IO_OP_WRITE] = "WRITE",
		[UBLK_IO_OP_FLUSH] = "FLUSH", [UBLK_IO_OP_DISCARD] = "DISCARD",
		[UBLK_IO_OP_WRITE_SAME] = "WRITE_SAME",
		[UBLK_IO_OP_WRITE_ZEROES] = "WRITE_ZEROES",
	};

	return op < sizeof(names) / sizeof(names[0]) && names[op] ?
	       names[op] : "?";
}

/* Queue an I/O command for @tag; room is guaranteed (see queue_loop). */
static void queue_io_cmd(struct ublk_queue *q, unsigned tag, uint32_t op,
			 enum io_kind kind, int32_t result, void *addr)
{
	struct ublksrv_io_cmd cmd = {
		.q_id = (uint16_t)q->q_id,
		.tag = (uint16_t)tag,
		.result = result,
		.addr = (uint64_t)(uintptr_t)addr,
	};
	struct io_uring_sqe *sqe = uring_get_sqe(&q->ring);

	uring_prep_cmd(sqe, q->dev->cdev_fd, op, &cmd, sizeof(cmd),
		       io_user_data(tag, kind));
	/* zero_copy: the tag's next request's pages go to its own slot. */
	if (q->dev->copy_mode == UBLK_COPY_ZERO)
		sqe->addr = ublk_auto_buf_reg_addr((uint16_t)tag, 0);
}

/*
 * USER_COPY: the /dev/ublkcN file offset of a request's first byte.  The
 * base must be added, not OR-ed: tag bit 6 lands on the base's bit 31.
 */
static inline off_t user_copy_pos(const struct ublk_queue *q, unsigned tag)
{
	return (off_t)(UBLKSRV_IO_BUF_OFFSET +
		       ((uint64_t)q->q_id << UBLK_QID_OFF) +
		       ((uint64_t)tag << UBLK_TAG_OFF));
}

/* pread/pwrite the whole range on /dev/ublkcN (USER_COPY mode). */
static int user_copy(const struct ublk_queue *q, unsigned tag, void *buf,
		     uint32_t len, bool to_request)
{
	off_t pos = user_copy_pos(q, tag);
	uint32_t done = 0;

	while (done < len) {
		ssize_t n = to_request ?
			pwrite(q->dev->cdev_fd, (char *)buf + done, len - done, pos + done) :
			pread(q->dev->cdev_fd, (char *)buf + done, len - done, pos + done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (uint32_t)n;
	}
	return 0;
}

/*
 * Serve a READ.  Returns the byte count or -errno, and in *addr the
 * buffer the kernel should copy the data from at COMMIT time.  The
 * address is always a valid buffer, even on failure: without USER_COPY
 * the driver refuses a COMMIT of a READ without one, and would tear the
 * whole device down.
 */
static int queue_read(struct ublk_queue *q, unsigned tag, uint64_t off,
		      uint32_t len, void **addr)
{
	const struct ublk_dev *dev = q->dev;
	void *src = NULL;
	int ret;

	*addr = tag_buf(q, tag);
	if (off == 1 << 20 && test_fault("read-error"))
		return -EIO;	/* as if the backend had failed */
	/* Copy once: let the kernel read straight from the backend. */
	if (dev->copy_mode != UBLK_COPY_BOUNCE && dev->ops->direct)
		src = dev->ops->direct(dev->data, off, len, false);
	if (!src) {
		src = tag_buf(q, tag);
		ret = dev->ops->read(dev->data, src, off, len);
		if (ret < 0)
			return ret;
	}
	if (dev->copy_mode == UBLK_COPY_USER) {
		ret = user_copy(q, tag, src, len, true);
		*addr = NULL;	/* USER_COPY: COMMIT carries no address */
		return ret < 0 ? ret : (int)len;
	}
	*addr = src;
	return (int)len;
}

/*
 * Serve a WRITE.  In bounce mode its data is in the tag's buffer; with
 * NEED_GET_DATA the kernel has already copied it where queue_get_data()
 * said; with USER_COPY it is still in the kernel and we read it now.
 */
static int queue_write(struct ublk_queue *q, unsigned tag, uint64_t off,
		       uint32_t len)
{
	const struct ublk_dev *dev = q->dev;
	struct ublk_tag *t = &q->tags[tag];
	void *dst = NULL;
	int ret;

	if (dev->copy_mode == UBLK_COPY_GET_DATA) {
		if (t->write_err)
			return t->write_err;	/* decided before the copy */
		if (t->data_direct)
			return (int)len;	/* already in the backend */
	} else if (dev->ops->prepare_write) {
		ret = dev->ops->prepare_write(dev->data, off, len);
		if (ret < 0)
			return ret;
	}
	if (dev->copy_mode == UBLK_COPY_USER) {
		if (dev->ops->direct)
			dst = dev->ops->direct(dev->data, off, len, true);
		ret = user_copy(q, tag, dst ? dst : tag_buf(q, tag), len, false);
		if (ret < 0 || dst)
			return ret < 0 ? ret : (int)len;
	}
	ret = dev->ops->write(dev->data, tag_buf(q, tag), off, len);
	return ret < 0 ? ret : (int)len;
}

/*
 * NEED_GET_DATA: the kernel holds a WRITE for @tag and asks where to copy
 * its data.  Answer with the backend's own memory when the backend can
 * take the write.  When it cannot, the data still has to land somewhere
 * that exists - the kernel knows no way to refuse here - so it goes to
 * the queue's sink, and the COMMIT that follows fails the request.
 */
static void queue_get_data(struct ublk_queue *q, unsigned tag,
			   const struct ublksrv_io_desc *iod)
{
	const struct ublk_dev *dev = q->dev;
	struct ublk_tag *t = &q->tags[tag];
	uint64_t off = iod->start_sector << 9;
	uint32_t len = iod->nr_sectors << 9;
	void *dst = NULL;

	t->write_err = dev->ops->prepare_write ?
		       dev->ops->prepare_write(dev->data, off, len) : 0;
	if (t->write_err) {
		dst = q->sink;
	} else if (dev->ops->direct) {
		dst = dev->ops->direct(dev->data, off, len, true);
		t->data_direct = dst != NULL;
	}
	queue_io_cmd(q, tag, UBLK_U_IO_NEED_GET_DATA, IO_GET_DATA, 0,
		     dst ? dst : tag_buf(q, tag));
}

/* "Q" or, with several threads per queue, "Q.LANE": for the trace. */
static const char *queue_label(const struct ublk_queue *q, char buf[16])
{
	if (q->dev->lanes > 1)
		snprintf(buf, 16, "%u.%u", q->q_id, q->lane);
	else
		snprintf(buf, 16, "%u", q->q_id);
	return buf;
}

/* Say why a request failed; a queue thread reports its first few failures only. */
static void queue_report_error(struct ublk_queue *q, unsigned tag, unsigned op,
			       uint64_t off, uint64_t len, int res)
{
	if (q->errors_reported >= ERRORS_SHOWN)
		return;
	ublk_err("/dev/ublkb%d queue %u tag %u: %s of %llu bytes at %llu failed: %s%s",
		 q->dev->id, q->q_id, tag, io_op_name(op), (unsigned long long)len,
		 (unsigned long long)off, strerror(-res),
		 ++q->errors_reported == ERRORS_SHOWN ?
		 " (further failures of this queue not shown)" : "");
}

int queue_serve(struct ublk_queue *q, unsigned tag,
		const struct ublksrv_io_desc *iod, void **addrp)
{
	const struct ublk_dev *dev = q->dev;
	unsigned op = iod->op_flags & 0xff;
	uint64_t off = iod->start_sector << 9;
	uint64_t len = (uint64_t)iod->nr_sectors << 9;
	void *addr = NULL;
	int res;

	switch (op) {
	case UBLK_IO_OP_READ:
		res = queue_read(q, tag, off, (uint32_t)len, &addr);
		break;
	case UBLK_IO_OP_WRITE:
		res = queue_write(q, tag, off, (uint32_t)len);
		break;
	case UBLK_IO_OP_FLUSH:
		res = dev->ops->flush ? dev->ops->flush(dev->data) : 0;
		break;
	case UBLK_IO_OP_DISCARD:
		res = dev->ops->discard ?
		      dev->ops->discard(dev->data, off, len) : -EOPNOTSUPP;
		break;
	case UBLK_IO_OP_WRITE_ZEROES:
		res = dev->ops->write_zeroes ?
		      dev->ops->write_zeroes(dev->data, off, len) : -EOPNOTSUPP;
		break;
	default:
		res = -EOPNOTSUPP;
		break;
	}
	q->tags[tag].data_direct = false;
	q->tags[tag].write_err = 0;
	q->tags[tag].owned = false;
	if (res < 0 && op != UBLK_IO_OP_FLUSH)
		queue_report_error(q, tag, op, off, len, res);
	if (__builtin_expect(dev->trace, 0)) {
		char label[16];

		ublk_err("q%s tag %u %s off %llu len %llu -> %d (%s)",
			 queue_label(q, label), tag, io_op_name(op), (unsigned long long)off,
			 (unsigned long long)len, res,
			 ublk_copy_mode_name(dev->copy_mode));
	}
	/*
	 * Bounce mode: the address also names the buffer for the tag's next
	 * WRITE, so it is always the tag's buffer.  USER_COPY: the driver
	 * refuses any address at all, even with a failed request.
	 */
	if (dev->copy_mode == UBLK_COPY_BOUNCE)
		addr = tag_buf(q, tag);
	else if (dev->copy_mode == UBLK_COPY_USER || dev->copy_mode == UBLK_COPY_ZERO)
		addr = NULL;
	*addrp = addr;
	return res;
}

/* Serve the request now owned by @tag and queue its COMMIT_AND_FETCH. */
static void queue_serve_request(struct ublk_queue *q, unsigned tag,
				const struct ublksrv_io_desc *iod)
{
	void *addr;
	int res = queue_serve(q, tag, iod, &addr);

	queue_io_cmd(q, tag, UBLK_U_IO_COMMIT_AND_FETCH_REQ, IO_COMMIT, res,
		     addr);
}

/*
 * zero_copy (UBLK_F_AUTO_BUF_REG): the driver has put the pages of @tag's
 * request in fixed-buffer slot @tag of this ring, so io_uring itself can
 * copy between them and the backend's file, kernel to kernel.  Queue that
 * read or write, and the COMMIT after it: IOSQE_IO_LINK starts the COMMIT
 * only once the store operation is done, and only if it did all its bytes;
 * IOSQE_CQE_SKIP_SUCCESS spares us a CQE when it did.  Both go in with the
 * next io_uring_enter(), and as the file is read and written without
 * blocking (see open_io_fd() in mem_backend.c) both usually complete
 * inside it.  When the store operation fails it posts its CQE, and the
 * COMMIT is dropped without one (a failed SKIP_SUCCESS request silences
 * the rest of its chain): queue_zc_failed() then commits the error.
 */
static void queue_zc_submit(struct ublk_queue *q, unsigned tag, bool async)
{
	struct ublk_tag *t = &q->tags[tag];
	struct io_uring_sqe *sqe = uring_get_sqe(&q->ring);
	bool rd = t->zc_op == UBLK_IO_OP_READ;

	/* addr: the offset in the request's pages, not a user address. */
	uring_prep_rw(sqe, rd ? IORING_OP_READ_FIXED : IORING_OP_WRITE_FIXED,
		      q->store_fd, NULL, t->zc_len, t->zc_off,
		      io_user_data(tag, IO_STORE));
	sqe->buf_index = (uint16_t)tag;
	/* The test hook: a slot the ring lacks, so io_uring fails the read. */
	if (rd && t->zc_off == 1 << 20 && test_fault("read-error"))
		sqe->buf_index = (uint16_t)q->depth;
	sqe->flags = IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS |
		     (async ? IOSQE_ASYNC : 0);
	queue_io_cmd(q, tag, UBLK_U_IO_COMMIT_AND_FETCH_REQ, IO_COMMIT,
		     (int32_t)t->zc_len, NULL);
}

/*
 * zero_copy: serve a READ or WRITE of @iod with the backend's file.
 * Returns false for the other operations, which queue_serve() does.
 */
static bool queue_zc_serve(struct ublk_queue *q, unsigned tag,
			   const struct ublksrv_io_desc *iod)
{
	const struct ublk_dev *dev = q->dev;
	struct ublk_tag *t = &q->tags[tag];
	unsigned op = iod->op_flags & 0xff;
	int res = 0;

	if (op != UBLK_IO_OP_READ && op != UBLK_IO_OP_WRITE)
		return false;
	t->zc_op = (uint8_t)op;
	t->zc_off = iod->start_sector << 9;
	t->zc_len = iod->nr_sectors << 9;
	t->zc_retried = false;
	if (op == UBLK_IO_OP_WRITE && dev->ops->prepare_write)
		res = dev->ops->prepare_write(dev->data, t->zc_off, t->zc_len);
	if (res < 0) {
		queue_report_error(q, tag, op, t->zc_off, t->zc_len, res);
		t->owned = false;
		queue_io_cmd(q, tag, UBLK_U_IO_COMMIT_AND_FETCH_REQ, IO_COMMIT, res, NULL);
		return true;
	}
	if (__builtin_expect(dev->trace, 0)) {
		char label[16];

		ublk_err("q%s tag %u %s off %llu len %u (zero_copy)", queue_label(q, label),
			 tag, io_op_name(op), (unsigned long long)t->zc_off, t->zc_len);
	}
	t->owned = false;	/* the COMMIT is on its way */
	queue_zc_submit(q, tag, false);
	return true;
}

/*
 * zero_copy: the store operation of @tag failed with @res, and its COMMIT
 * was dropped.  Commit the error instead; a read or write that did fewer
 * bytes than asked (beyond the end of a store just shrunk) fails with
 * EIO.  One that only could not run without blocking (-EAGAIN) is tried
 * once more, by an io_uring worker thread, which may block.
 */
static void queue_zc_failed(struct ublk_queue *q, unsigned tag, int res)
{
	struct ublk_tag *t = &q->tags[tag];
	int err = res < 0 ? res : -EIO;

	if (err == -EAGAIN && !t->zc_retried) {
		t->zc_retried = true;
		queue_zc_submit(q, tag, true);
		return;
	}
	queue_report_error(q, tag, t->zc_op, t->zc_off, t->zc_len, err);
	queue_io_cmd(q, tag, UBLK_U_IO_COMMIT_AND_FETCH_REQ, IO_COMMIT, err, NULL);
}

static const char *io_kind_name(enum io_kind kind)
{
	return kind == IO_FETCH ? "FETCH_REQ" :
	       kind == IO_COMMIT ? "COMMIT_AND_FETCH_REQ" :
	       kind == IO_GET_DATA ? "NEED_GET_DATA" :
	       kind == IO_STORE ? "store read/write" : "stop";
}

/*
 * Handle one CQE of the queue's ring.  Returns 0, 1 when the thread is
 * asked to end (its stop eventfd fired), or -errno (fatal).
 */
static int queue_handle_cqe(struct ublk_queue *q,
			    const struct io_uring_cqe *cqe)
{
	unsigned tag = user_data_tag(cqe->user_data);
	enum io_kind kind = user_data_kind(cqe->user_data);
	struct ublksrv_io_desc iod;

	if (kind == IO_STOP)
		return 1;
	if (tag >= q->depth)
		return -EPROTO;
	if (kind == IO_STORE) {
		/* Posted only when it failed, or did fewer bytes than asked. */
		if (cqe->res != (int32_t)q->tags[tag].zc_len)
			queue_zc_failed(q, tag, cqe->res);
		return 0;
	}
	if (cqe->res == UBLK_IO_RES_ABORT) {
		/* The device is going away: this tag gets no more requests. */
		q->live_tags--;
		return 0;
	}
	if (cqe->res < 0) {
		ublk_err("/dev/ublkb%d queue %u tag %u: %s failed: %s", q->dev->id,
			 q->q_id, tag, io_kind_name(kind), strerror(-cqe->res));
		return cqe->res;
	}
	/*
	 * The kernel filled the descriptor before posting this CQE, and
	 * uring_cq_ready()'s acquire of the CQ tail ordered our reads after
	 * it; the kernel does not touch it again until we commit, so a
	 * plain copy is enough.
	 */
	iod = q->descs[tag];
	q->tags[tag].owned = true;
	if (iod.start_sector == (1 << 20) >> 9 && test_fault("queue-error"))
		return -EIO;	/* as if serving had failed for good */
	if (cqe->res == UBLK_IO_RES_NEED_GET_DATA)
		queue_get_data(q, tag, &iod);
	else if (q->dev->copy_mode != UBLK_COPY_ZERO || !queue_zc_serve(q, tag, &iod))
		queue_serve_request(q, tag, &iod);
	return 0;
}

/*
 * Arm the stop eventfd's read (tagged @stop_data) after the commands
 * queued, and submit them all.  The kernel registers each FETCH as it is
 * submitted; one it refuses completes at once with an error, while a good
 * one stays pending.  So a CQE here is a refusal: *refused points at the
 * first, else NULL.  Returns 0, or -errno when submitting failed.
 */
int queue_submit_first(struct ublk_queue *q, uint64_t stop_data,
		       const struct io_uring_cqe **refused)
{
	struct io_uring_sqe *sqe = uring_get_sqe(&q->ring);
	int ret;

	*refused = NULL;
	uring_prep_rw(sqe, IORING_OP_READ, q->stop_fd, &q->stop_val,
		      sizeof(q->stop_val), 0, stop_data);
	while (uring_sq_pending(&q->ring)) {
		ret = uring_submit(&q->ring);
		if (ret < 0 && ret != -EAGAIN && ret != -EBUSY)
			return ret;
	}
	ret = uring_submit_and_poll(&q->ring);	/* post what failed inline */
	if (ret < 0 && ret != -EAGAIN && ret != -EBUSY)
		return ret;
	if (uring_cq_ready(&q->ring))
		*refused = uring_cqe_at(&q->ring, 0);
	return 0;
}

/*
 * Hand every tag to the kernel with a FETCH_REQ, and arm the stop eventfd.
 * A FETCH the driver refuses completes at once with an error; a good one
 * stays pending.  So any CQE here is a refusal, and it is reported now,
 * before START_DEV would wait for a FETCH that never comes.
 */
static int queue_fetch_all(struct ublk_queue *q)
{
	bool bounce = q->dev->copy_mode == UBLK_COPY_BOUNCE;
	const struct io_uring_cqe *refused;
	int ret;

	q->live_tags = 0;
	for (unsigned tag = first_tag(q); tag < q->depth; tag = next_tag(q, tag)) {
		q->live_tags++;
		if (tag == 0 && test_fault("fetch-missing"))
			continue;	/* START_DEV then waits for ever */
		queue_io_cmd(q, tag, UBLK_U_IO_FETCH_REQ, IO_FETCH, 0,
			     bounce ? tag_buf(q, tag) : NULL);
	}
	if (test_fault("fetch-rejected"))	/* a tag the queue lacks */
		queue_io_cmd(q, q->depth, UBLK_U_IO_FETCH_REQ, IO_FETCH, 0, NULL);
	ret = queue_submit_first(q, io_user_data(0, IO_STOP), &refused);
	if (ret == 0 && refused) {
		ret = refused->res < 0 ? refused->res : -EPROTO;
		ublk_err("/dev/ublkb%d queue %u tag %u: the driver refused %s: %s",
			 q->dev->id, q->q_id, user_data_tag(refused->user_data),
			 io_kind_name(user_data_kind(refused->user_data)), strerror(-ret));
	}
	return ret;
}

/*
 * How long to spin before the next sleep.  @busy: the last batch held more
 * than one request, or the last spin caught one.
 *
 * By default the thread spins only while the device is busy: with several
 * requests in flight more arrive within microseconds, and catching them
 * without sleeping spares the submitting CPU a wakeup of this thread.
 * Under TCG at QD32 the thread slept 0.3-0.5 times per request without
 * spinning and 0.06-0.14 times with it, and the median of six interleaved
 * runs rose from 14.1k to 18.2k IOPS, for a quarter more server CPU time
 * while busy.  A spin that catches nothing ends the busy spell, so an idle
 * device costs nothing.  Lone requests (queue depth 1) never start one;
 * --poll spins for them too.
 *
 * @several: the last batch held more than one request.  Then --poll spins
 * no longer than the busy spin: requests in flight come back within it,
 * and a longer spin only takes the CPU from the program submitting them
 * (with --poll=1000 always, 70/30 at QD16 ran at 0.81 times the default).
 */
unsigned spin_time(unsigned poll_us, bool busy, bool several)
{
	if (poll_us == UBLK_POLL_OFF)
		return 0;
	if (poll_us)
		return several && poll_us > BUSY_SPIN_US ? BUSY_SPIN_US : poll_us;
	return busy ? BUSY_SPIN_US : 0;
}

/*
 * Submit queued commits and wait for at least one CQE, first spinning for
 * up to @spin_us: entering the kernel without sleeping runs its pending
 * work and catches a request that arrives soon, at the cost of a busy CPU.
 * Returns 1 when the spin caught a CQE, 0 after a sleep, or -errno.
 */
int queue_wait(struct ublk_queue *q, unsigned spin_us)
{
	int ret;

	if (spin_us) {
		struct timespec t0, t;
		long spent_us;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		do {
			ret = uring_submit_and_poll(&q->ring);
			if (ret < 0 && ret != -EAGAIN && ret != -EBUSY)
				return ret;
			if (uring_cq_ready(&q->ring))
				return 1;
			clock_gettime(CLOCK_MONOTONIC, &t);
			spent_us = (t.tv_sec - t0.tv_sec) * 1000000L +
				   (t.tv_nsec - t0.tv_nsec) / 1000;
		} while (spent_us < (long)spin_us);
	}
	ret = uring_submit_and_wait(&q->ring, 1);
	return ret < 0 && ret != -EAGAIN && ret != -EBUSY ? ret : 0;
}

/*
 * The queue's service loop: reap every CQE there is, queue an answer for
 * each, and submit all answers with the next wait - one system call per
 * batch.  There is always room in the SQ: each tag has at most one
 * command in flight, the stop read is one more, and the ring has an SQE
 * for each.  Ends when every tag is retired (the device stopped), when
 * told to stop, or on an error.
 */
static int queue_loop(struct ublk_queue *q)
{
	bool busy = false, several = false, told_to_end = false;

	while (q->live_tags && !told_to_end) {
		unsigned n;
		int ret = queue_wait(q, spin_time(q->dev->poll_us, busy, several));

		if (ret < 0)
			return ret;
		n = uring_cq_ready(&q->ring);
		several = n > 1;
		busy = ret == 1 || several;
		for (unsigned i = 0; i < n; i++) {
			ret = queue_handle_cqe(q, uring_cqe_at(&q->ring, i));
			if (ret < 0) {
				uring_cq_advance(&q->ring, n);
				return ret;
			}
			told_to_end |= ret == 1;
		}
		uring_cq_advance(&q->ring, n);
	}
	/* Told to end: answer what the batch served before going. */
	if (told_to_end)
		uring_submit(&q->ring);
	for (unsigned tag = 0; tag < q->depth; tag++)
		q->held += q->tags[tag].owned;
	return 0;
}

/*
 * zero_copy: give the ring an empty fixed-buffer slot per tag, for the
 * driver to fill with each request's pages, and find the backend's file.
 */
static int queue_zc_setup(struct ublk_queue *q)
{
	const struct ublk_dev *dev = q->dev;
	int ret;

	q->store_fd = dev->ops->file ? dev->ops->file(dev->data) : -1;
	if (q->store_fd < 0) {
		ublk_err("queue %u: --copy-mode zero_copy needs a backend with a file", q->q_id);
		return -EINVAL;
	}
	if (!(q->ring.features & IORING_FEAT_CQE_SKIP)) {
		ublk_err("queue %u: --copy-mode zero_copy needs io_uring's IOSQE_CQE_SKIP_SUCCESS (Linux 5.17)",
			 q->q_id);
		return -EOPNOTSUPP;
	}
	ret = uring_register_sparse_buffers(&q->ring, q->depth);
	if (ret < 0)
		ublk_err("queue %u: cannot give its ring %u buffer slots: %s", q->q_id,
			 q->depth, strerror(-ret));
	return ret;
}

/* Per-thread setup: memory-reclaim safety, CPU placement, own ring. */
static int queue_setup(struct ublk_queue *q)
{
	/* DEFER_TASKRUN needs SINGLE_ISSUER; drop it first if refused. */
	static const unsigned wished[] = {
		IORING_SETUP_DEFER_TASKRUN, IORING_SETUP_SINGLE_ISSUER,
		IORING_SETUP_COOP_TASKRUN,
	};
	bool zero_copy = q->dev->copy_mode == UBLK_COPY_ZERO;
	char name[48], label[16];
	int ret;

	/*
	 * Named for top -H and ps -L: ublkbN-qQ, or ublkbN-qQ.L for lane L
	 * (the kernel keeps the first 15 characters).
	 */
	snprintf(name, sizeof(name), "ublkb%d-q%s", q->dev->id, queue_label(q, label));
	prctl(PR_SET_NAME, name, 0, 0, 0);
	/*
	 * Writing back dirty pages may need I/O on this very device; as an
	 * I/O flusher this thread's own allocations never wait for that.
	 */
	if (prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) < 0)
		ublk_err("queue %u: PR_SET_IO_FLUSHER: %s (reclaim may deadlock under memory pressure)",
			 q->q_id, strerror(errno));
	if (CPU_COUNT(&q->affinity) &&
	    sched_setaffinity(0, sizeof(q->affinity), &q->affinity) < 0)
		ublk_err("queue %u: sched_setaffinity: %s", q->q_id,
			 strerror(errno));
	/*
	 * The ring is created by the thread that uses it (SINGLE_ISSUER),
	 * with an SQE per tag (zero_copy: two, the store operation and its
	 * COMMIT) and one for the stop eventfd.
	 */
	ret = uring_init_best(&q->ring, q->dev->batch ? batch_ring_entries(q->depth) :
			      q->depth * (zero_copy ? 2 : 1) + 1, 0, wished,
			      sizeof(wished) / sizeof(wished[0]));
	if (ret < 0) {
		ublk_err("queue %u: io_uring_setup: %s", q->q_id, strerror(-ret));
		return ret;
	}
	if (zero_copy) {
		ret = queue_zc_setup(q);
		if (ret < 0)
			return ret;
	}
	ret = q->dev->batch ? batch_fetch_all(q) : queue_fetch_all(q);
	if (ret < 0)
		ublk_err("/dev/ublkb%d queue %u: cannot hand its tags to the driver: %s",
			 q->dev->id, q->q_id, strerror(-ret));
	return ret;
}

static void *queue_thread(void *arg)
{
	struct ublk_queue *q = arg;
	struct ublk_dev *dev = q->dev;
	int ret = queue_setup(q);

	q->err = ret;
	sem_post(&dev->setup_done);
	if (ret == 0)
		ret = dev->batch ? batch_loop(q) : queue_loop(q);
	/*
	 * Closing the ring cancels any command still pending: after a
	 * STOP_DEV there is none; otherwise the driver treats it as the
	 * server going away (a recoverable device waits for a new one).
	 */
	uring_exit(&q->ring);
	q->err = ret;
	if (ret < 0)
		ublk_err("queue %u of /dev/ublkb%d stopped: %s", q->q_id,
			 dev->id, strerror(-ret));
	/* Wake the main thread unless it is the one shutting us down. */
	if (!atomic_load(&dev->stopping)) {
		atomic_store(&dev->queue_ended, true);
		pthread_kill(dev->main_thread, SIG_QUEUE_EXIT);
	}
	return NULL;
}

/* ---- device setup and teardown ---- */

static size_t round_up(size_t v, size_t to)
{
	return (v + to - 1) / to * to;
}

/* Anonymous memory, allocated now and kept (never swapped out if we may). */
static void *map_resident(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	mlock(p, len);	/* best effort: RLIMIT_MEMLOCK may say no */
	return p;
}

/*
 * Prepare serving thread @i: lane i % lanes of queue i / lanes.  Map the
 * queue's descriptor array and allocate the thread's buffers and per-tag
 * state.  Bounce mode hands the kernel each tag's buffer up front for
 * WRITE data, so those buffers are allocated now; in the other modes they
 * only serve READs that cannot be served in place, and are allocated on
 * first use.
 */
static int queue_prepare(struct ublk_dev *dev, unsigned i)
{
	struct ublk_queue *q = &dev->queues[i];
	unsigned qi = i / dev->lanes;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	/* Each queue's array starts at a page-rounded, maximum-depth slot. */
	off_t off = UBLKSRV_CMD_BUF_OFFSET + (off_t)qi *
		(off_t)round_up(UBLK_MAX_QUEUE_DEPTH * sizeof(struct ublksrv_io_desc), page);
	uint64_t mask[16] = { 0 };	/* up to 1024 CPUs */
	cpu_set_t allowed;
	void *p;
	int ret;

	q->dev = dev;
	q->q_id = qi;
	q->lane = i % dev->lanes;
	q->depth = dev->info.queue_depth;
	q->ring.fd = -1;
	q->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (q->stop_fd < 0)
		return -errno;
	q->descs_len = round_up(q->depth * sizeof(struct ublksrv_io_desc), page);
	p = mmap(NULL, q->descs_len, PROT_READ, MAP_SHARED | MAP_POPULATE,
		 dev->cdev_fd, off);
	if (p == MAP_FAILED) {
		ret = -errno;
		ublk_err("queue %u: mmap of /dev/ublkc%d: %s", qi, dev->id,
			 strerror(-ret));
		return ret;
	}
	q->descs = p;
	/* A buffer for each tag this thread owns (see tag_buf()). */
	q->bufs_len = (size_t)((q->depth + dev->lanes - 1) / dev->lanes) * dev->buf_bytes;
	if (dev->copy_mode == UBLK_COPY_BOUNCE) {
		p = map_resident(q->bufs_len);
	} else {
		p = mmap(NULL, q->bufs_len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		p = p == MAP_FAILED ? NULL : p;
	}
	q->sink = map_resident(dev->buf_bytes);
	if (!p || !q->sink) {
		ublk_err("queue %u: cannot allocate its buffers: %s", qi,
			 strerror(errno));
		return -ENOMEM;
	}
	q->bufs = p;
	q->tags = calloc(q->depth, sizeof(*q->tags));
	if (!q->tags)
		return -ENOMEM;

	/*
	 * Run the thread on the CPUs whose I/O the kernel maps to it, within
	 * the CPUs this process may use (taskset, cgroups).  An empty result
	 * leaves the thread where it is.
	 */
	ret = ctrl_cmd(dev->ctrl, UBLK_U_CMD_GET_QUEUE_AFFINITY, (uint32_t)dev->id,
		       mask, sizeof(mask), qi);
	CPU_ZERO(&q->affinity);
	if (ret == 0)
		for (unsigned cpu = 0; cpu < 1024 && cpu < CPU_SETSIZE; cpu++)
			if (mask[cpu / 64] >> (cpu % 64) & 1)
				CPU_SET(cpu, &q->affinity);
	if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0)
		CPU_AND(&q->affinity, &q->affinity, &allowed);
	return 0;
}

static void queue_release(struct ublk_queue *q)
{
	batch_release(q);
	if (q->descs)
		munmap((void *)q->descs, q->descs_len);
	if (q->bufs)
		munmap(q->bufs, q->bufs_len);
	if (q->sink)
		munmap(q->sink, q->dev->buf_bytes);
	if (q->stop_fd >= 0)
		close(q->stop_fd);
	free(q->tags);
}

/* Open /dev/ublkcN; the node may appear a moment after ADD_DEV. */
static int open_cdev(int dev_id)
{
	char path[64];
	int fd = -1;

	snprintf(path, sizeof(path), "/dev/ublkc%d", dev_id);
	for (int i = 0; i < 200; i++) {
		fd = open(path, O_RDWR | O_CLOEXEC);
		/* EBUSY: a dead server's descriptor is still being released. */
		if (fd >= 0 || (errno != ENOENT && errno != EBUSY))
			break;
		usleep(10000);
	}
	if (fd < 0) {
		int err = errno;

		ublk_err("%s: %s", path, strerror(err));
		return -err;
	}
	return fd;
}

/* The serving threads: dev->lanes for each queue. */
static unsigned dev_threads(const struct ublk_dev *dev)
{
	return dev->info.nr_hw_queues * dev->lanes;
}

/*
 * Open the channel, map the queues and start their threads (one per
 * queue, or dev->lanes); wait until every thread has posted its FETCHes
 * (or failed).
 */
static int dev_start_queues(struct ublk_dev *dev)
{
	unsigned nq = dev_threads(dev);
	int ret;

	dev->cdev_fd = open_cdev(dev->id);
	if (dev->cdev_fd < 0)
		return dev->cdev_fd;
	dev->queues = calloc(nq, sizeof(*dev->queues));
	if (!dev->queues)
		return -ENOMEM;
	for (unsigned i = 0; i < nq; i++)
		dev->queues[i].stop_fd = -1;
	for (unsigned i = 0; i < nq; i++) {
		ret = queue_prepare(dev, i);
		if (ret < 0)
			return ret;
	}
	for (unsigned i = 0; i < nq; i++) {
		ret = pthread_create(&dev->queues[i].thread, NULL, queue_thread,
				     &dev->queues[i]);
		if (ret) {
			ublk_err("creating queue thread: %s", strerror(ret));
			return -ret;
		}
		dev->queues[i].started = true;
		while (sem_wait(&dev->setup_done) < 0 && errno == EINTR)
			;
		if (dev->queues[i].err)
			return dev->queues[i].err;
	}
	return 0;
}

/*
 * End the queue threads and close the channel.  Each thread is told
 * through its eventfd to end as it is (if it has not ended already):
 * closing its ring, and then the channel, hands whatever the server still
 * holds back to the kernel, which fails it, or for a recoverable device
 * requeues it and keeps the device for the next server.  With the channel
 * closed a DEL_DEV has nothing to wait for.
 */
static void dev_end_queues(struct ublk_dev *dev)
{
	atomic_store(&dev->stopping, true);
	for (unsigned i = 0; dev->queues && i < dev_threads(dev); i++) {
		struct ublk_queue *q = &dev->queues[i];
		uint64_t one = 1;

		if (q->started && write(q->stop_fd, &one, sizeof(one)) != sizeof(one))
			ublk_err("queue %u: cannot wake its thread: %s", i, strerror(errno));
	}
	for (unsigned i = 0; dev->queues && i < dev_threads(dev); i++) {
		struct ublk_queue *q = &dev->queues[i];

		if (q->started)
			pthread_join(q->thread, NULL);
		dev->held += q->held;
		queue_release(q);
	}
	free(dev->queues);
	dev->queues = NULL;
	if (dev->cdev_fd >= 0)
		close(dev->cdev_fd);
	dev->cdev_fd = -1;
}

/* The parameters the kernel needs: size, block sizes, discard limits. */
static void dev_fill_params(struct ublk_dev *dev, const struct ublk_config *cfg)
{
	struct ublk_params *p = &dev->params;
	unsigned lbs_shift = (unsigned)__builtin_ctz(cfg->block_size);
	unsigned pbs_shift = lbs_shift > 12 ? lbs_shift : 12;

	memset(p, 0, sizeof(*p));
	p->len = sizeof(*p);
	p->types = UBLK_PARAM_TYPE_BASIC;
	p->basic.logical_bs_shift = (uint8_t)lbs_shift;
	/* RAM works in pages: tell file systems to prefer whole pages. */
	p->basic.physical_bs_shift = (uint8_t)pbs_shift;
	p->basic.io_min_shift = (uint8_t)lbs_shift;
	p->basic.io_opt_shift = (uint8_t)pbs_shift;
	p->basic.max_sectors = dev->info.max_io_buf_bytes >> 9;
	p->basic.dev_sectors = cfg->size >> 9;
	/*
	 * No UBLK_ATTR_VOLATILE_CACHE: a write is in RAM when we commit it,
	 * so there is no cache to flush and the kernel sends no FLUSH.
	 */
	if (dev->ops->discard) {
		p->types |= UBLK_PARAM_TYPE_DISCARD;
		p->discard.discard_granularity = 1U << pbs_shift;
		p->discard.max_discard_sectors = UINT32_MAX >> 9;
		p->discard.max_discard_segments = 1;
	}
	if (dev->ops->write_zeroes) {
		p->types |= UBLK_PARAM_TYPE_DISCARD;
		if (!p->discard.discard_granularity)
			p->discard.discard_granularity = 1U << pbs_shift;
		p->discard.max_write_zeroes_sectors = UINT32_MAX >> 9;
	}
}

/*
 * Flags ublk-mem asks for wherever the driver offers them: no partition
 * scan at START_DEV (a fresh RAM disk has no partition table, and the
 * scan's reads race the start), live resizing, and quiescing a
 * recoverable device for a planned restart.
 */
static uint64_t optional_flags(const struct ublk_config *cfg, uint64_t features)
{
	uint64_t f = UBLK_F_NO_AUTO_PART_SCAN | UBLK_F_UPDATE_SIZE;

	if (cfg->recoverable)
		f |= UBLK_F_QUIESCE;
	return f & features;
}

/* The UBLK_F_* flags a configuration needs. */
static uint64_t config_flags(const struct ublk_config *cfg)
{
	uint64_t f = UBLK_F_CMD_IOCTL_ENCODE;

	if (cfg->copy_mode == UBLK_COPY_GET_DATA)
		f |= UBLK_F_NEED_GET_DATA;
	if (cfg->copy_mode == UBLK_COPY_USER)
		f |= UBLK_F_USER_COPY;
	if (cfg->copy_mode == UBLK_COPY_ZERO)
		f |= UBLK_F_AUTO_BUF_REG;
	if (cfg->recoverable)
		f |= UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_REISSUE;
	if (cfg->io_path == UBLK_IO_PATH_BATCH)
		f |= UBLK_F_BATCH_IO;
	if (cfg->queue_threads > 1)
		f |= UBLK_F_PER_IO_DAEMON;
	return f;
}

const char *ublk_io_path_name(enum ublk_io_path path)
{
	return path == UBLK_IO_PATH_BATCH ? "batch" :
	       path == UBLK_IO_PATH_PER_REQUEST ? "per-request" : "auto";
}

/*
 * Settle the data path of a new device and, where the user did not pick
 * one, its copy mode.  "auto" takes the batched path where the driver
 * offers it, if BATCH_BY_DEFAULT; an explicit "batch" the driver lacks
 * is refused by check_features().  The batched path has no NEED_GET_DATA:
 * it copies in BATCH_COPY_MODE unless told otherwise.  Nor does it take
 * queue depth 1: the driver's batch queue (a kfifo) needs two slots.
 */
static void choose_io_path(uint64_t features, struct ublk_config *cfg)
{
	/* These need the per-request commands (the driver has no PER_IO_DAEMON with batches). */
	bool per_request = (cfg->copy_mode_set && (cfg->copy_mode == UBLK_COPY_GET_DATA ||
						   cfg->copy_mode == UBLK_COPY_ZERO)) ||
			   cfg->queue_threads > 1;

	if (cfg->io_path == UBLK_IO_PATH_AUTO)
		cfg->io_path = BATCH_BY_DEFAULT && (features & UBLK_F_BATCH_IO) &&
			       !per_request && cfg->depth >= 2 ?
			       UBLK_IO_PATH_BATCH : UBLK_IO_PATH_PER_REQUEST;
	if (cfg->io_path == UBLK_IO_PATH_BATCH && !cfg->copy_mode_set)
		cfg->copy_mode = BATCH_COPY_MODE;
}

/*
 * The per-tag buffer size, which is also the largest request.  Bounce
 * mode allocates all of them at start, so a deep queue gets smaller ones.
 */
static unsigned buffer_bytes(enum ublk_copy_mode mode, unsigned depth)
{
	unsigned page = (unsigned)sysconf(_SC_PAGESIZE);
	unsigned b = UBLK_MAX_IO_BYTES;

	if (mode == UBLK_COPY_BOUNCE && depth * b > BOUNCE_BYTES_PER_QUEUE)
		b = BOUNCE_BYTES_PER_QUEUE / depth / page * page;
	return b < page ? page : b;
}

static struct ublk_dev *dev_new(struct ublk_ctrl *ctrl, const struct ublk_config *cfg,
				const struct ublk_backend_ops *ops)
{
	struct ublk_dev *dev = calloc(1, sizeof(*dev));

	if (!dev)
		return NULL;
	if (sem_init(&dev->setup_done, 0, 0) < 0) {
		free(dev);
		return NULL;
	}
	dev->ctrl = ctrl;
	dev->ops = ops;
	dev->copy_mode = cfg->copy_mode;
	dev->batch = cfg->io_path == UBLK_IO_PATH_BATCH;
	dev->poll_us = cfg->poll_us;
	dev->lanes = cfg->queue_threads ? cfg->queue_threads : 1;
	dev->trace = cfg->trace;
	dev->had_data = cfg->holds_data;
	dev->cdev_fd = -1;
	dev->control_fd = -1;
	dev->id = -1;
	atomic_init(&dev->stopping, false);
	atomic_init(&dev->queue_ended, false);
	return dev;
}

static void dev_free(struct ublk_dev *dev)
{
	sem_destroy(&dev->setup_done);
	free(dev);
}

int ublk_add(struct ublk_ctrl *ctrl, const struct ublk_config *cfg,
	     const struct ublk_backend_ops *ops, struct ublk_dev **devp)
{
	struct ublk_config chosen = *cfg;
	struct ublk_dev *dev;
	int ret;

	choose_io_path(ctrl->features, &chosen);
	cfg = &chosen;
	ret = check_features(ctrl->features, config_flags(cfg));
	if (ret < 0)
		return ret;
	dev = dev_new(ctrl, cfg, ops);
	if (!dev)
		return -ENOMEM;
	dev->buf_bytes = buffer_bytes(cfg->copy_mode, cfg->depth);
	dev->info.nr_hw_queues = (uint16_t)cfg->nr_queues;
	dev->info.queue_depth = (uint16_t)cfg->depth;
	dev->info.max_io_buf_bytes = dev->buf_bytes;
	dev->info.dev_id = cfg->dev_id < 0 ? UINT32_MAX : (uint32_t)cfg->dev_id;
	dev->info.flags = config_flags(cfg) | optional_flags(cfg, ctrl->features);
	ret = ctrl_cmd(ctrl, UBLK_U_CMD_ADD_DEV, dev->info.dev_id, &dev->info,
		       sizeof(dev->info), 0);
	if (ret < 0) {
		if (ret == -EEXIST && cfg->dev_id >= 0)
			ublk_err("device id %d is already in use (see: ublk-mem list; a removed device keeps its id while a file system on it is still mounted)",
				 cfg->dev_id);
		else
			ublk_err("ADD_DEV: %s", strerror(-ret));
		dev_free(dev);
		return ret;
	}
	dev->id = (int)dev->info.dev_id;	/* the kernel wrote back the id */
	dev->owned = true;
	/* The driver drops flags it does not know instead of failing. */
	ret = check_features(dev->info.flags, config_flags(cfg));
	if (ret < 0) {
		ublk_remove(dev);
		return ret;
	}

	dev_fill_params(dev, cfg);
	ret = ctrl_cmd(ctrl, UBLK_U_CMD_SET_PARAMS, (uint32_t)dev->id,
		       &dev->params, sizeof(dev->params), 0);
	if (ret < 0) {
		ublk_err("SET_PARAMS for /dev/ublkb%d: %s", dev->id, strerror(-ret));
		ublk_remove(dev);
		return ret;
	}
	*devp = dev;
	return 0;
}

int ublk_attach(struct ublk_ctrl *ctrl, int dev_id, const struct ublk_config *cfg,
		const struct ublk_backend_ops *ops, struct ublk_dev **devp)
{
	struct ublk_dev *dev = dev_new(ctrl, cfg, ops);
	int ret;

	if (!dev)
		return -ENOMEM;
	dev->id = dev_id;
	dev->recovering = true;
	ret = ublk_get_info(ctrl, dev_id, &dev->info, &dev->params);
	if (ret < 0) {
		dev_free(dev);
		return ret;
	}
	dev->copy_mode = ublk_copy_mode_of(dev->info.flags);
	dev->batch = dev->info.flags & UBLK_F_BATCH_IO;
	dev->buf_bytes = dev->info.max_io_buf_bytes;
	ret = dev->lanes > 1 ? check_features(dev->info.flags, UBLK_F_PER_IO_DAEMON) : 0;
	if (ret == 0 && dev->lanes > dev->info.queue_depth) {
		ublk_err("--queue-threads %u is more than /dev/ublkb%d's queue depth %u",
			 dev->lanes, dev_id, dev->info.queue_depth);
		ret = -EINVAL;
	}
	if (ret < 0) {
		dev_free(dev);
		return ret;
	}
	*devp = dev;
	return 0;
}

int ublk_dev_id(const struct ublk_dev *dev)
{
	return dev->id;
}

bool ublk_kept(const struct ublk_dev *dev)
{
	return dev->kept;
}

bool ublk_went_live(const struct ublk_dev *dev)
{
	return dev->went_live;
}

bool ublk_stopped_cleanly(const struct ublk_dev *dev)
{
	return dev->stopped_cleanly;
}

bool ublk_needs_rebuild(const struct ublk_dev *dev)
{
	return dev->needs_rebuild;
}

const struct ublksrv_ctrl_dev_info *ublk_info(const struct ublk_dev *dev)
{
	return &dev->info;
}

unsigned ublk_block_size(const struct ublk_dev *dev)
{
	return 1U << dev->params.basic.logical_bs_shift;
}

unsigned ublk_poll_us(const struct ublk_dev *dev)
{
	return dev->poll_us;
}

unsigned ublk_queue_threads(const struct ublk_dev *dev)
{
	return dev->lanes;
}

uint64_t ublk_dev_features(const struct ublk_dev *dev)
{
	return dev->ctrl->features;
}

void ublk_set_control(struct ublk_dev *dev, int fd,
		      void (*on_control)(struct ublk_dev *dev, void *arg), void *arg)
{
	dev->control_fd = fd;
	dev->on_control = on_control;
	dev->control_arg = arg;
}

int ublk_resize(struct ublk_dev *dev, uint64_t new_size)
{
	int ret;

	if (!(dev->ctrl->features & UBLK_F_UPDATE_SIZE)) {
		ublk_err("resizing needs the ublk driver's UPDATE_SIZE (Linux %s); this kernel has not got it",
			 ublk_feature_since(10));
		return -EOPNOTSUPP;
	}
	ret = ctrl_cmd(dev->ctrl, UBLK_U_CMD_UPDATE_SIZE, (uint32_t)dev->id,
		       NULL, 0, new_size >> 9);
	if (ret < 0)
		ublk_err("UPDATE_SIZE for /dev/ublkb%d: %s", dev->id, strerror(-ret));
	else
		dev->params.basic.dev_sectors = new_size >> 9;
	return ret;
}

/*
 * Hand a recoverable device over to the next server: with QUIESCE (Linux
 * 6.16) the driver first holds new requests back and waits, up to
 * @timeout_ms, for the ones in flight, so the queue threads answer them
 * all before they end.  Without it ublk_run() returns with the queue
 * threads still running, and the process must exit at once
 * (ublk_must_exit()): the kernel takes the device back as after a crash
 * and re-issues the requests in flight to the next server
 * (USER_RECOVERY_REISSUE).  Either way the device is kept.
 */
int ublk_hand_over(struct ublk_dev *dev, unsigned timeout_ms)
{
	int ret;

	if (!(dev->info.flags & UBLK_F_USER_RECOVERY)) {
		ublk_err("/dev/ublkb%d was not created --recoverable: no other server can take it over",
			 dev->id);
		return -EINVAL;
	}
	if (dev->info.flags & UBLK_F_QUIESCE) {
		ret = ctrl_cmd(dev->ctrl, UBLK_U_CMD_QUIESCE_DEV, (uint32_t)dev->id,
			       NULL, 0, timeout_ms);
		dev->quiesced = ret == 0;
		if (ret < 0)
			ublk_err("QUIESCE_DEV for /dev/ublkb%d: %s; handing over as after a crash",
				 dev->id, strerror(-ret));
	}
	dev->handed_over = true;
	return 0;
}

unsigned ublk_requests_held(const struct ublk_dev *dev)
{
	return dev->held;
}

bool ublk_must_exit(const struct ublk_dev *dev)
{
	return dev->queues != NULL;	/* threads still serve */
}

int ublk_remove(struct ublk_dev *dev)
{
	int ret = 0;

	if (!dev || ublk_must_exit(dev))
		return 0;	/* threads still use it: the exit frees it */
	if (!dev->kept && dev->owned) {
		ret = ublk_delete(dev->ctrl, dev->id, 5000);
		if (ret == -EBUSY)
			ublk_err("/dev/ublkb%d is removed, but the kernel keeps its id %d until its last user lets go (a file system still mounted on it?)",
				 dev->id, dev->id);
		else if (ret == -ENODEV)	/* someone else removed it */
			ret = 0;
		else if (ret < 0)
			ublk_err("DEL_DEV for device %d: %s", dev->id, strerror(-ret));
	}
	dev_free(dev);
	return ret;
}

/*
 * While START_DEV or END_USER_RECOVERY waits: give up when a queue thread
 * has ended (its FETCHes will never all arrive), when a stop signal came,
 * or after START_LIMIT_MS.
 */
struct start_wait {
	struct ublk_dev *dev;
	struct timespec t0;
};

static bool start_give_up(void *arg)
{
	struct start_wait *w = arg;
	struct timespec t, zero = { 0, 0 };
	sigset_t set;
	siginfo_t si;
	long limit_ms;
	int sig;

	handled_signals(&set);
	while ((sig = sigtimedwait(&set, &si, &zero)) > 0) {
		if (is_stop_signal(sig))
			w->dev->stop_asked = true;
		else if (sig != SIG_QUEUE_EXIT || !signal_from_us(si.si_code, si.si_pid))
			report_stray_signal(sig, si.si_pid);
	}
	/* The test hook that holds a FETCH back need not wait the full limit. */
	limit_ms = test_fault("fetch-missing") ? START_LIMIT_MS / 6 : START_LIMIT_MS;
	clock_gettime(CLOCK_MONOTONIC, &t);
	if ((t.tv_sec - w->t0.tv_sec) * 1000 + (t.tv_nsec - w->t0.tv_nsec) / 1000000 >
	    limit_ms) {
		ublk_err("/dev/ublkb%d: the driver did not start the device within %ld s",
			 w->dev->id, limit_ms / 1000);
		return true;
	}
	return w->dev->stop_asked || atomic_load(&w->dev->queue_ended);
}

/*
 * START_USER_RECOVERY is accepted once the old server is gone and the
 * kernel has quiesced the device.  Right after a crash the kernel may
 * still be tearing the old server down: wait for that, bounded.
 */
static int start_recovery(struct ublk_dev *dev)
{
	struct ublksrv_ctrl_dev_info *info = &dev->info;
	int ret, id = dev->id;

	for (int ms = 0;; ms += 50) {
		/* A server killed a moment ago may take a little to be gone. */
		if (info->state == UBLK_S_DEV_LIVE && ublk_server_running(info) &&
		    ms >= 1000) {
			ublk_err("device %d is live (server pid %d); nothing to recover",
				 id, info->ublksrv_pid);
			return -EBUSY;
		}
		if (info->state == UBLK_S_DEV_DEAD) {
			/* Never started (a rebuild that failed), or stopped. */
			ublk_err("device %d is not running: the driver recovers only a device whose server died",
				 id);
			return -ENOTRECOVERABLE;
		}
		ret = -EBUSY;
		if (info->state == UBLK_S_DEV_QUIESCED)
			ret = ctrl_cmd(dev->ctrl, UBLK_U_CMD_START_USER_RECOVERY,
				       (uint32_t)id, NULL, 0, 0);
		if (ret != -EBUSY || ms >= 10000)
			break;
		usleep(50000);
		ret = ctrl_cmd(dev->ctrl, UBLK_U_CMD_GET_DEV_INFO, (uint32_t)id,
			       info, sizeof(*info), 0);
		if (ret < 0)
			break;
	}
	if (ret == -EINVAL && info->state == UBLK_S_DEV_QUIESCED) {
		/*
		 * 6.12's driver refuses every START_USER_RECOVERY after one
		 * that ended before a whole queue had fetched its tags.
		 */
		ublk_err("device %d: the driver refuses to start a recovery: an earlier recovery ended half-way",
			 id);
		return -ENOTRECOVERABLE;
	} else if (ret < 0) {
		ublk_err("START_USER_RECOVERY for device %d: %s%s", id,
			 strerror(-ret), ret == -EBUSY ?
			 " (its old server has not finished exiting)" : "");
	}
	return ret;
}

/* Requests in flight on /dev/ublkbN, as the block layer counts them. */
static unsigned disk_inflight(int dev_id)
{
	unsigned r = 0, w = 0;
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/sys/block/ublkb%d/inflight", dev_id);
	f = fopen(path, "re");
	if (f) {
		if (fscanf(f, "%u %u", &r, &w) != 2)
			r = w = 0;
		fclose(f);
	}
	return r + w;
}

/* Start the queues and make the device live (or live again). */
static int dev_go_live(struct ublk_dev *dev)
{
	struct start_wait w = { .dev = dev };
	uint32_t op = dev->recovering ? UBLK_U_CMD_END_USER_RECOVERY :
		      UBLK_U_CMD_START_DEV;
	int ret;

	if (dev->recovering) {
		ret = start_recovery(dev);
		if (ret < 0)
			return ret;
		/* From here on the device is ours, and so is its data. */
		dev->owned = dev->had_data = true;
		if (test_fault("recovery-started"))
			raise(SIGSTOP);
	}
	ret = dev_start_queues(dev);
	if (ret < 0)
		return ret;
	clock_gettime(CLOCK_MONOTONIC, &w.t0);
	ret = ctrl_cmd_abortable(dev->ctrl, op, (uint32_t)dev->id, NULL, 0,
				 (uint64_t)getpid(), start_give_up, &w);
	dev->start_cancelled = ret == -ECANCELED;
	if (ret < 0 && !dev->stop_asked && !atomic_load(&dev->queue_ended))
		ublk_err("%s for /dev/ublkb%d: %s", ctrl_cmd_name(op), dev->id,
			 strerror(-ret));
	if (ret == 0)
		dev->had_data = dev->went_live = true;
	return ret;
}

/*
 * While STOP_DEV waits for the requests in flight: after a failure, the
 * server may hold requests it will never answer.  Linux up to 6.14 fails
 * them as soon as a queue's ring is closed; later ones only once the
 * channel is closed too, and until then STOP_DEV waits.  So if STOP_DEV
 * has not answered within STOP_CLOSE_MS, end the queues and close the
 * channel, and keep waiting.  (Doing that first instead races, on 6.12,
 * with the driver's own stop of the device.)
 */
struct stop_wait {
	struct ublk_dev *dev;
	struct timespec t0;
};

static bool stop_give_up(void *arg)
{
	struct stop_wait *w = arg;
	struct timespec t;
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &t);
	ms = (t.tv_sec - w->t0.tv_sec) * 1000 + (t.tv_nsec - w->t0.tv_nsec) / 1000000;
	if (ms >= STOP_CLOSE_MS && w->dev->cdev_fd >= 0)
		dev_end_queues(w->dev);
	return ms >= START_LIMIT_MS;
}

/*
 * STOP_DEV: remove /dev/ublkbN once the requests in flight are done.
 * After a requested stop the queue threads still serve and finish them,
 * however long that takes; after a @failure, see stop_give_up().
 */
static int dev_stop(struct ublk_dev *dev, bool failure)
{
	struct stop_wait w = { .dev = dev };

	clock_gettime(CLOCK_MONOTONIC, &w.t0);
	return ctrl_cmd_abortable(dev->ctrl, UBLK_U_CMD_STOP_DEV, (uint32_t)dev->id,
				  NULL, 0, 0, failure ? stop_give_up : NULL, &w);
}

/*
 * Is /dev/ublkbN still stopped as asked?  A stop signal to the server of a
 * device that is in use (a file system mounted on it, a program holding
 * it open) would pull the disk from under it: its data gone, its users
 * faced with I/O errors.  So the first stop signal then only says what
 * holds the device, and a second one within FORCE_WINDOW_S stops it
 * anyway.  With UBLK_F_SAFE_STOP_DEV (Linux 7.0) TRY_STOP_DEV stops the
 * device in one step if nobody has it open; elsewhere the mount table,
 * sysfs holders and every process's open files tell.
 */
static bool dev_may_stop(struct ublk_dev *dev)
{
	char who[256];
	struct timespec t;
	int ret;

	if (dev->ctrl->features & UBLK_F_SAFE_STOP_DEV) {
		ret = ctrl_cmd(dev->ctrl, UBLK_U_CMD_TRY_STOP_DEV, (uint32_t)dev->id,
			       NULL, 0, 0);
		dev->try_stopped = ret == 0;
		if (ret != -EBUSY)
			return true;	/* stopped, or let STOP_DEV say why not */
		ublk_in_use(dev->id, who, sizeof(who));
	} else if (!ublk_in_use(dev->id, who, sizeof(who))) {
		return true;
	}
	clock_gettime(CLOCK_MONOTONIC, &t);
	if (dev->refused_at && t.tv_sec - dev->refused_at <= FORCE_WINDOW_S) {
		ublk_err("stopping /dev/ublkb%d although it is in use, as asked twice: its users get I/O errors",
			 dev->id);
		return true;
	}
	ublk_err("/dev/ublkb%d is in use (%s): not stopping; unmount or close it first, or send the signal again within %d s to stop it anyway",
		 dev->id, who[0] ? who : "open by a program", FORCE_WINDOW_S);
	dev->refused_at = t.tv_sec ? t.tv_sec : 1;
	return false;
}

/*
 * Serve until a signal: a stop signal asks for a clean stop (returns 0),
 * unless the device is in use (dev_may_stop()); SIG_QUEUE_EXIT from one
 * of our threads means a queue thread ended by itself: either the device
 * was removed from outside or serving failed.  Any other signal is
 * reported and ignored.
 */
static int dev_wait(struct ublk_dev *dev)
{
	struct signalfd_siginfo si;
	struct pollfd p[2];
	sigset_t set;
	int sig;

	/*
	 * The signals arrive as reads of a signalfd, so that one poll() can
	 * also wait for a request on the control socket (ublk_set_control).
	 */
	handled_signals(&set);
	p[0].fd = signalfd(-1, &set, SFD_CLOEXEC);
	p[0].events = p[1].events = POLLIN;
	p[1].fd = dev->control_fd;
	if (p[0].fd < 0) {
		ublk_err("signalfd: %s", strerror(errno));
		return -errno;
	}
	while (!dev->stop_asked && !dev->handed_over && !atomic_load(&dev->queue_ended)) {
		if (poll(p, dev->control_fd >= 0 ? 2 : 1, -1) < 0)
			continue;	/* EINTR */
		if (dev->control_fd >= 0 && (p[1].revents & POLLIN))
			dev->on_control(dev, dev->control_arg);
		if (!(p[0].revents & POLLIN) ||
		    read(p[0].fd, &si, sizeof(si)) != (ssize_t)sizeof(si))
			continue;
		sig = (int)si.ssi_signo;
		if (is_stop_signal(sig) && dev_may_stop(dev)) {
			close(p[0].fd);
			return 0;	/* its queues may have ended already */
		}
		if (is_stop_signal(sig))
			continue;
		if (sig != SIG_QUEUE_EXIT || !signal_from_us(si.ssi_code, (pid_t)si.ssi_pid))
			report_stray_signal(sig, (pid_t)si.ssi_pid);
	}
	close(p[0].fd);
	if (dev->stop_asked || dev->handed_over || !atomic_load(&dev->queue_ended))
		return 0;
	for (unsigned i = 0; i < dev_threads(dev); i++)
		if (dev->queues[i].err)
			return dev->queues[i].err;
	ublk_err("/dev/ublkb%d was stopped by someone else; exiting", dev->id);
	return -ENODEV;
}

int ublk_run(struct ublk_dev *dev, void *data,
	     void (*on_live)(int dev_id, void *arg), void *arg)
{
	bool keep, clean;
	int ret;

	dev->data = data;
	dev->main_thread = pthread_self();
	ret = dev_go_live(dev);
	if (ret == 0) {
		if (on_live)
			on_live(dev->id, arg);
		ret = dev_wait(dev);
	} else if (dev->stop_asked) {
		ret = 0;	/* stopped while starting: as asked */
	}
	/*
	 * Only a device that went live and was stopped as asked is stopped
	 * for good.  A recoverable one whose data matters and that ended any
	 * other way (a failure, a start that never finished, a handover) is
	 * left as a crashed server would leave it: its data in the store,
	 * ready for `ublk-mem recover`.  A device we never took over is left
	 * as it was.  The rest is stopped.
	 */
	clean = ret == 0 && dev->went_live && !dev->handed_over;
	keep = (dev->info.flags & UBLK_F_USER_RECOVERY) &&
	       (dev->handed_over || (!clean && dev->had_data && ret != -ENODEV));
	if (dev->owned && !keep) {
		int stopped = dev_stop(dev, ret != 0);

		dev->stopped_cleanly = clean && (stopped == 0 || dev->try_stopped);
	} else if (keep && !dev->went_live && dev->start_cancelled &&
		   !(dev->ctrl->features & UBLK_F_PER_IO_DAEMON)) {
		/*
		 * A start given up while the driver still waited for FETCHes.
		 * Drivers before PER_IO_DAEMON (6.16) trip over FETCHes a
		 * server leaves half-way (a warning, commands never
		 * completed), and 6.12 refuses any later recovery in place
		 * anyway.  There the device is stopped instead, its data left
		 * in the store for `recover --rebuild`.
		 */
		dev_stop(dev, true);
		dev->stopped_kept = true;
	}
	dev->needs_rebuild = keep && (dev->stopped_kept || (!dev->recovering && !dev->went_live));
	/*
	 * A handover the driver could not quiesce leaves the queues to the
	 * process's exit: the kernel then takes the device back exactly as
	 * after a crash, its best-trodden path, and re-issues what was in
	 * flight.  (Ending the rings first, with the process still alive,
	 * can leave Linux 6.12 waiting for ever.)
	 */
	if (dev->handed_over && !dev->quiesced) {
		dev->held = disk_inflight(dev->id);
		dev->kept = true;
		return 0;
	}
	dev_end_queues(dev);
	dev->kept = keep || !dev->owned;
	return ret;
}
