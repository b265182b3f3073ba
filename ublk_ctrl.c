/*
 * ublk_ctrl.c - the control channel: commands on /dev/ublk-control.
 *
 * Read uring.c first.  A ublk device is made, started, stopped and
 * recovered by control commands: io_uring URING_CMD requests on the
 * control device, each carrying a struct ublksrv_ctrl_cmd in the second
 * half of a 128-byte SQE (ublk_cmd.h).  The driver runs each in an
 * io_uring worker, where it may block (START_DEV waits for the queues'
 * FETCHes), so a command that may wait long is waited for in slices and
 * can be cancelled.
 *
 *   GET_FEATURES          what this driver supports (Linux 6.5)
 *   ADD_DEV, SET_PARAMS   a new device: /dev/ublkcN, no disk yet
 *   START_DEV, STOP_DEV   the disk /dev/ublkbN appears, goes
 *   START/END_USER_RECOVERY   a new server takes a device over
 *   DEL_DEV(_ASYNC)       the device and its id go
 *   GET_DEV_INFO(2), GET_PARAMS, GET_QUEUE_AFFINITY, UPDATE_SIZE,
 *   QUIESCE_DEV, TRY_STOP_DEV
 *
 * ublk.c puts them together into a device's life.
 *
 * A user without root may make devices too, if allowed to open the
 * control device: ADD_DEV with UBLK_F_UNPRIVILEGED_DEV makes one that
 * user owns.  The driver then checks every later command on it, from the
 * owner or from root, against the device's node: the command's buffer
 * starts with the path of /dev/ublkcN (dev_path_len bytes, the real
 * buffer after them), and the caller must be allowed to read it, or for
 * a command that changes the device to read and write it.  ctrl_cmd()
 * adds the path for the devices it knows to be unprivileged.
 */
#define _GNU_SOURCE
#include "log.h"
#include "ublk.h"
#include "ublk_ctrl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CTRL_DEV		"/dev/ublk-control"
#define SYSFS_CHAR_DIR		"/sys/class/ublk-char"
#define CTRL_SLICE_MS		100		/* see ctrl_cmd_abortable() */
#define CANCEL_LIMIT_MS		10000		/* a cancelled command's answer */

const char *ctrl_cmd_name(uint32_t op)
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

/* ---- unprivileged devices: the node's path in front of the buffer ---- */

static bool path_known(const struct ublk_ctrl *c, int dev_id)
{
	for (unsigned i = 0; i < c->n_path_ids && i < CTRL_PATH_IDS; i++)
		if (c->path_ids[i] == dev_id)
			return true;
	return false;
}

void ctrl_note_device(struct ublk_ctrl *c, int dev_id, uint64_t flags)
{
	bool unprivileged = flags & UBLK_F_UNPRIVILEGED_DEV;

	if (unprivileged == path_known(c, dev_id))
		return;
	if (unprivileged) {
		/* The oldest is forgotten first: it would be asked about again. */
		c->path_ids[c->n_path_ids++ % CTRL_PATH_IDS] = dev_id;
		return;
	}
	for (unsigned i = 0; i < c->n_path_ids && i < CTRL_PATH_IDS; i++)
		if (c->path_ids[i] == dev_id)
			c->path_ids[i] = -1;
}

/*
 * Does command @op on device @dev_id carry the device's path?  GET_DEV_INFO2
 * always does: the driver checks it against the path whatever the device.
 */
static bool needs_path(const struct ublk_ctrl *c, uint32_t op, uint32_t dev_id)
{
	if (op == UBLK_U_CMD_GET_DEV_INFO2)
		return true;
	return op != UBLK_U_CMD_ADD_DEV && op != UBLK_U_CMD_GET_FEATURES &&
	       dev_id <= INT32_MAX && path_known(c, (int)dev_id);
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
int ctrl_cmd_abortable(struct ublk_ctrl *c, uint32_t op, uint32_t dev_id, void *buf,
		       uint16_t len, uint64_t data0, bool (*give_up)(void *arg), void *arg)
{
	struct ublksrv_ctrl_cmd cmd = {
		.dev_id = dev_id,
		.queue_id = (uint16_t)-1,
		.len = len,
		.addr = (uint64_t)(uintptr_t)buf,
		.data = { data0 },
	};
	struct io_uring_sqe *sqe;
	char path[32], *with_path = NULL;
	size_t path_len = 0;
	int ret, res = 0;

	if (needs_path(c, op, dev_id)) {
		/* "/dev/ublkcN" and then the buffer: see the top of this file. */
		path_len = (size_t)snprintf(path, sizeof(path), "/dev/ublkc%u", dev_id);
		if (path_len + len > UINT16_MAX)
			return -E2BIG;
		with_path = malloc(path_len + len);
		if (!with_path)
			return -ENOMEM;
		memcpy(with_path, path, path_len);
		if (len)
			memcpy(with_path + path_len, buf, len);
		cmd.addr = (uint64_t)(uintptr_t)with_path;
		cmd.len = (uint16_t)(path_len + len);
		cmd.dev_path_len = (uint16_t)path_len;
	}
	sqe = uring_get_sqe(&c->ring);
	if (!sqe) {
		free(with_path);
		return -EBUSY;	/* cannot happen: one command at a time */
	}
	uring_prep_cmd(sqe, c->fd, op, &cmd, sizeof(cmd), op);
	ret = uring_submit(&c->ring);
	if (ret < 0) {
		free(with_path);
		return ret;
	}
	for (;;) {
		ret = ctrl_wait_answer(c, op, give_up ? CTRL_SLICE_MS : 60000, &res);
		if (ret == 0)
			break;
		if (ret != -ETIME) {
			free(with_path);
			return ret;
		}
		if (!give_up || give_up(arg)) {
			res = ctrl_cancel(c, op);
			break;
		}
	}
	if (c->trace)
		log_err("ctrl %s dev %d%s%s -> %d%s%s", ctrl_cmd_name(op),
			 (int)dev_id, with_path ? " " : "", with_path ? path : "", res,
			 res < 0 ? " " : "", res < 0 ? strerror(-res) : "");
	if (with_path && res >= 0 && len)
		memcpy(buf, with_path + path_len, len);
	/* Unanswered even when cancelled: the driver may still read it. */
	if (res != -ETIME)
		free(with_path);
	return res;
}

int ctrl_cmd(struct ublk_ctrl *c, uint32_t op, uint32_t dev_id, void *buf, uint16_t len,
	     uint64_t data0)
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
 * The one flag every later command needs: ioctl-encoded opcodes (Linux
 * 6.4; every driver that answers GET_FEATURES has it, but kernels with a
 * driver built from other trees exist).
 */
static int check_ioctl_encode(uint64_t features)
{
	if (features & UBLK_F_CMD_IOCTL_ENCODE)
		return 0;
	log_err("%s: this kernel's ublk driver lacks UBLK_F_CMD_IOCTL_ENCODE (Linux %s)",
		CTRL_DEV, ublk_feature_since(6));
	return -EOPNOTSUPP;
}

/*
 * Does the driver count this process as root?  It asks capable(
 * CAP_SYS_ADMIN), which holds in the first user namespace only: root of
 * a container's own user namespace is an ordinary user to it.
 */
static bool counted_as_root(void)
{
	unsigned long long cap = 0, inside, outside, count;
	bool known = false, first_ns = true;
	char line[256];
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return geteuid() == 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &cap) == 1)
			known = true;
	fclose(f);
	if (!known)
		return geteuid() == 0;
	/* The first namespace maps every id to itself: "0 0 4294967295". */
	f = fopen("/proc/self/uid_map", "re");
	if (f) {
		first_ns = fscanf(f, "%llu %llu %llu", &inside, &outside, &count) == 3 &&
			   inside == 0 && outside == 0 && count == 4294967295ULL;
		fclose(f);
	}
	return first_ns && (cap >> 21 & 1);	/* CAP_SYS_ADMIN */
}

int ublk_ctrl_open(struct ublk_ctrl **ctrlp, bool trace)
{
	struct ublk_ctrl *c = calloc(1, sizeof(*c));
	int ret;

	if (!c)
		return -ENOMEM;
	c->trace = trace;
	c->unprivileged = !counted_as_root();
	c->fd = open(CTRL_DEV, O_RDWR | O_CLOEXEC);
	if (c->fd < 0) {
		ret = -errno;
		log_err("%s: %s (%s)", CTRL_DEV, strerror(-ret),
			 ret == -ENOENT ? "is the ublk_drv module loaded? try: modprobe ublk_drv" :
			 ret == -EACCES || ret == -EPERM ?
			 "run as root, or have root let users make devices: see ublk-mem --help, without root" :
			 "cannot talk to the ublk driver");
		goto err_free;
	}
	ret = uring_init(&c->ring, 4, IORING_SETUP_SQE128);
	if (ret < 0) {
		log_err("io_uring_setup: %s (%s)", strerror(-ret),
			 ret == -EPERM || ret == -ENOSYS ?
			 "io_uring is disabled: see sysctl kernel.io_uring_disabled (with 1, only root and the group kernel.io_uring_group may use it)" :
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
		log_err("%s: this kernel's ublk driver does not answer GET_FEATURES (%s): it is older than Linux 6.5, which ublk-mem needs",
			 CTRL_DEV, strerror(-ret));
		goto err_ring;
	}
	ret = check_ioctl_encode(c->features);
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

bool ublk_unprivileged(const struct ublk_ctrl *c)
{
	return c->unprivileged;
}

int ublk_get_info(struct ublk_ctrl *c, int dev_id,
		  struct ublksrv_ctrl_dev_info *info, struct ublk_params *params)
{
	/*
	 * A device known to be unprivileged is asked with GET_DEV_INFO2,
	 * which names its node and is answered right for any device (a new
	 * one of root's may have taken the id since).  Otherwise plainly: a
	 * command without a path to an unprivileged device is EINVAL (one of
	 * root's is EPERM to a user), and then GET_DEV_INFO2 asks again.
	 */
	bool known = path_known(c, dev_id);
	int ret = ctrl_cmd(c, known ? UBLK_U_CMD_GET_DEV_INFO2 : UBLK_U_CMD_GET_DEV_INFO,
			   (uint32_t)dev_id, info, sizeof(*info), 0);

	if (ret == -EINVAL && !known) {
		ctrl_note_device(c, dev_id, UBLK_F_UNPRIVILEGED_DEV);
		ret = ctrl_cmd(c, UBLK_U_CMD_GET_DEV_INFO2, (uint32_t)dev_id, info,
			       sizeof(*info), 0);
		if (ret < 0 && ret != -EACCES)
			ctrl_note_device(c, dev_id, 0);
	}
	if (ret == 0)
		ctrl_note_device(c, dev_id, info->flags);
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

/* While a synchronous DEL_DEV waits: give up after the time allowed. */
struct del_wait {
	struct timespec t0;
	unsigned timeout_ms;
};

static bool del_give_up(void *arg)
{
	struct del_wait *w = arg;
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - w->t0.tv_sec) * 1000 + (t.tv_nsec - w->t0.tv_nsec) / 1000000 >=
	       (long)w->timeout_ms;
}

int ublk_delete(struct ublk_ctrl *c, int dev_id, unsigned timeout_ms)
{
	/*
	 * The synchronous DEL_DEV waits until the last user of the device
	 * lets go, which can be never (a file system still mounted); the
	 * asynchronous one removes it and returns.  Then wait, bounded, for
	 * the id to be freed so a caller can reuse it.
	 */
	struct del_wait w = { .timeout_ms = timeout_ms };
	int ret = ctrl_cmd(c, UBLK_U_CMD_DEL_DEV_ASYNC, (uint32_t)dev_id,
			   NULL, 0, 0);

	/*
	 * Drivers before 6.5 lack DEL_DEV_ASYNC; 7.x's refuse it (EINVAL)
	 * for an unprivileged device, leaving it out of the commands such a
	 * device takes.  There the synchronous one is cut short in time:
	 * by then it has removed the device, and only waits for its id.
	 */
	if (ret == -EOPNOTSUPP || (ret == -EINVAL && path_known(c, dev_id))) {
		clock_gettime(CLOCK_MONOTONIC, &w.t0);
		ret = ctrl_cmd_abortable(c, UBLK_U_CMD_DEL_DEV, (uint32_t)dev_id,
					 NULL, 0, 0, del_give_up, &w);
		if (ret == -ECANCELED || ret == -EINTR)
			ret = 0;	/* removed; its id is waited for below */
	}
	if (ret < 0)
		return ret;
	for (unsigned ms = 0; id_held(c, dev_id) && ms < timeout_ms; ms += 20)
		usleep(20000);
	return id_held(c, dev_id) ? -EBUSY : 0;
}

/* ---- who uses a block device ---- */

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
