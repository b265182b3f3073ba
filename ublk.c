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
 * queue_read() / queue_write() below.
 */
#define _GNU_SOURCE
#include "ublk.h"
#include "uring.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

#define CTRL_DEV		"/dev/ublk-control"
#define SYSFS_CHAR_DIR		"/sys/class/ublk-char"
#define MAX_IO_BYTES		(512U << 10)	/* largest request we accept */
#define SIG_QUEUE_EXIT		SIGUSR1		/* a queue thread has ended */
#define BUSY_SPIN_US		100		/* see spin_time() */

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
	default: return "?";
	}
}

/*
 * Send one control command and wait for its answer.  The driver runs
 * control commands in an io_uring worker thread, where they may block
 * (START_DEV waits for every FETCH), so this may take a while.
 */
static int ctrl_cmd(struct ublk_ctrl *c, uint32_t op, uint32_t dev_id,
		    void *buf, uint16_t len, uint64_t data0)
{
	struct ublksrv_ctrl_cmd cmd = {
		.dev_id = dev_id,
		.queue_id = (uint16_t)-1,
		.len = len,
		.addr = (uint64_t)(uintptr_t)buf,
		.data = { data0 },
	};
	struct io_uring_sqe *sqe = uring_get_sqe(&c->ring);
	struct io_uring_cqe *cqe;
	int ret;

	if (!sqe)
		return -EBUSY;	/* cannot happen: one command at a time */
	uring_prep_cmd(sqe, c->fd, op, &cmd, sizeof(cmd), op);
	ret = uring_wait_cqe(&c->ring, &cqe);
	if (ret == 0) {
		ret = cqe->res;
		uring_cq_advance(&c->ring, 1);
	}
	if (c->trace)
		ublk_err("ctrl %s dev %d -> %d%s%s", ctrl_cmd_name(op),
			 (int)dev_id, ret, ret < 0 ? " " : "",
			 ret < 0 ? strerror(-ret) : "");
	return ret;
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
	ret = ctrl_cmd(c, UBLK_U_CMD_GET_FEATURES, 0, &c->features,
		       sizeof(c->features), 0);
	if (ret < 0) {
		ublk_err("%s: GET_FEATURES: %s (the kernel's ublk driver is too old; Linux 6.5 or newer is needed)",
			 CTRL_DEV, strerror(-ret));
		goto err_ring;
	}
	if (!(c->features & UBLK_F_CMD_IOCTL_ENCODE)) {
		ublk_err("%s: the driver lacks ioctl-encoded commands (Linux 6.5 or newer is needed)",
			 CTRL_DEV);
		ret = -EOPNOTSUPP;
		goto err_ring;
	}
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

/* Does device @dev_id still exist (its channel is still registered)? */
static bool dev_exists(int dev_id)
{
	char path[64];

	snprintf(path, sizeof(path), SYSFS_CHAR_DIR "/ublkc%d", dev_id);
	return access(path, F_OK) == 0;
}

int ublk_delete(struct ublk_ctrl *c, int dev_id, unsigned timeout_ms)
{
	/*
	 * The synchronous DEL_DEV waits until the last user of the device
	 * lets go, which can be never (a filesystem still mounted); the
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
	for (unsigned ms = 0; dev_exists(dev_id) && ms < timeout_ms; ms += 10)
		usleep(10000);
	return dev_exists(dev_id) ? -EBUSY : 0;
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

/* ---- a device being served ---- */

/*
 * Per-tag state.  A tag is a request slot: the kernel and we pass it back
 * and forth, and at any moment exactly one side owns it.
 */
struct ublk_tag {
	bool data_direct;	/* NEED_GET_DATA gave the backend's memory */
};

struct ublk_dev;

struct ublk_queue {
	struct ublk_dev *dev;
	unsigned q_id;
	unsigned depth;
	struct uring ring;		/* this queue's own ring */
	const struct ublksrv_io_desc *descs;	/* kernel-written, by tag */
	size_t descs_len;
	char *bufs;			/* bounce buffers, MAX_IO_BYTES a tag */
	size_t bufs_len;
	struct ublk_tag *tags;
	unsigned live_tags;		/* tags not yet retired */
	unsigned errors_reported;
	cpu_set_t affinity;
	pthread_t thread;
	bool started;
	int err;			/* why the thread ended, or 0 */
};

struct ublk_dev {
	struct ublk_ctrl *ctrl;
	const struct ublk_backend_ops *ops;
	void *data;
	struct ublksrv_ctrl_dev_info info;
	struct ublk_params params;
	enum ublk_copy_mode copy_mode;
	unsigned poll_us;
	bool trace;
	int id;
	int cdev_fd;
	struct ublk_queue *queues;
	pthread_t main_thread;
	sem_t setup_done;		/* posted once by each queue thread */
	atomic_bool stopping;		/* main thread has begun teardown */
};

/*
 * user_data of an I/O command: the tag in bits 0-15, the command kind in
 * bits 16-23.  Each queue has its own ring, so the queue is implied.
 */
enum io_kind { IO_FETCH = 1, IO_COMMIT = 2, IO_GET_DATA = 3 };

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

static const char *copy_mode_name(enum ublk_copy_mode m)
{
	return m == UBLK_COPY_GET_DATA ? "get_data" :
	       m == UBLK_COPY_USER ? "user_copy" : "bounce";
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
}

static inline char *tag_buf(const struct ublk_queue *q, unsigned tag)
{
	return q->bufs + (size_t)tag * MAX_IO_BYTES;
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
 * buffer the kernel should copy the data from at COMMIT time.
 */
static int queue_read(struct ublk_queue *q, unsigned tag, uint64_t off,
		      uint32_t len, void **addr)
{
	const struct ublk_dev *dev = q->dev;
	void *src = NULL;
	int ret;

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

/* Serve a WRITE whose data the kernel has already copied (bounce/get_data). */
static int queue_write(struct ublk_queue *q, unsigned tag, uint64_t off,
		       uint32_t len)
{
	const struct ublk_dev *dev = q->dev;
	void *dst = NULL;
	int ret;

	if (dev->copy_mode == UBLK_COPY_USER) {
		if (dev->ops->direct)
			dst = dev->ops->direct(dev->data, off, len, true);
		ret = user_copy(q, tag, dst ? dst : tag_buf(q, tag), len, false);
		if (ret < 0 || dst)
			return ret < 0 ? ret : (int)len;
	} else if (q->tags[tag].data_direct) {
		return (int)len;	/* already in the backend */
	}
	ret = dev->ops->write(dev->data, tag_buf(q, tag), off, len);
	return ret < 0 ? ret : (int)len;
}

/*
 * NEED_GET_DATA: the kernel holds a WRITE for @tag and asks where to copy
 * its data.  Answer with the backend's own memory when it has some.
 */
static void queue_get_data(struct ublk_queue *q, unsigned tag,
			   const struct ublksrv_io_desc *iod)
{
	const struct ublk_dev *dev = q->dev;
	uint64_t off = iod->start_sector << 9;
	uint32_t len = iod->nr_sectors << 9;
	void *dst = NULL;

	if (dev->ops->direct)
		dst = dev->ops->direct(dev->data, off, len, true);
	q->tags[tag].data_direct = dst != NULL;
	queue_io_cmd(q, tag, UBLK_U_IO_NEED_GET_DATA, IO_GET_DATA, 0,
		     dst ? dst : tag_buf(q, tag));
}

/* Say why a request failed; a queue reports its first few failures only. */
static void queue_report_error(struct ublk_queue *q, unsigned tag, unsigned op,
			       uint64_t off, uint64_t len, int res)
{
	if (q->errors_reported >= 10)
		return;
	ublk_err("queue %u tag %u: %s of %llu bytes at %llu failed: %s%s",
		 q->q_id, tag, io_op_name(op), (unsigned long long)len,
		 (unsigned long long)off, strerror(-res),
		 ++q->errors_reported == 10 ? " (further failures not shown)" : "");
}

/* Serve the request now owned by @tag and queue its COMMIT_AND_FETCH. */
static void queue_serve_request(struct ublk_queue *q, unsigned tag,
				const struct ublksrv_io_desc *iod)
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
	if (res < 0 && op != UBLK_IO_OP_FLUSH)
		queue_report_error(q, tag, op, off, len, res);
	if (__builtin_expect(dev->trace, 0))
		ublk_err("q%u tag %u %s off %llu len %llu -> %d (%s)",
			 q->q_id, tag, io_op_name(op), (unsigned long long)off,
			 (unsigned long long)len, res,
			 copy_mode_name(dev->copy_mode));
	/*
	 * Bounce mode: the address also names the buffer for the tag's next
	 * WRITE, so it is always the tag's buffer unless a READ says else.
	 */
	if (dev->copy_mode == UBLK_COPY_BOUNCE && !addr)
		addr = tag_buf(q, tag);
	queue_io_cmd(q, tag, UBLK_U_IO_COMMIT_AND_FETCH_REQ, IO_COMMIT, res,
		     addr);
}

/* Handle one CQE of the queue's ring. Returns 0 or -errno (fatal). */
static int queue_handle_cqe(struct ublk_queue *q,
			    const struct io_uring_cqe *cqe)
{
	unsigned tag = user_data_tag(cqe->user_data);
	enum io_kind kind = user_data_kind(cqe->user_data);
	struct ublksrv_io_desc iod;

	if (tag >= q->depth)
		return -EPROTO;
	if (cqe->res == UBLK_IO_RES_ABORT) {
		/* The device is going away: this tag gets no more requests. */
		q->live_tags--;
		return 0;
	}
	if (cqe->res < 0) {
		ublk_err("queue %u tag %u: %s failed: %s", q->q_id, tag,
			 kind == IO_FETCH ? "FETCH_REQ" :
			 kind == IO_COMMIT ? "COMMIT_AND_FETCH_REQ" :
			 "NEED_GET_DATA", strerror(-cqe->res));
		return cqe->res;
	}
	/*
	 * The kernel filled the descriptor before posting this CQE, and
	 * uring_cq_ready()'s acquire of the CQ tail ordered our reads after
	 * it; the kernel does not touch it again until we commit, so a
	 * plain copy is enough.
	 */
	iod = q->descs[tag];
	if (cqe->res == UBLK_IO_RES_NEED_GET_DATA)
		queue_get_data(q, tag, &iod);
	else
		queue_serve_request(q, tag, &iod);
	return 0;
}

/* Hand every tag to the kernel with a FETCH_REQ. */
static int queue_fetch_all(struct ublk_queue *q)
{
	bool bounce = q->dev->copy_mode == UBLK_COPY_BOUNCE;
	int ret;

	for (unsigned tag = 0; tag < q->depth; tag++)
		queue_io_cmd(q, tag, UBLK_U_IO_FETCH_REQ, IO_FETCH, 0,
			     bounce ? tag_buf(q, tag) : NULL);
	q->live_tags = q->depth;
	/* The kernel registers each FETCH as it is submitted. */
	while (uring_sq_pending(&q->ring)) {
		ret = uring_submit(&q->ring);
		if (ret < 0 && ret != -EAGAIN && ret != -EBUSY)
			return ret;
	}
	return 0;
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
 */
static unsigned spin_time(unsigned poll_us, bool busy)
{
	if (poll_us == UBLK_POLL_OFF)
		return 0;
	if (poll_us)
		return poll_us;
	return busy ? BUSY_SPIN_US : 0;
}

/*
 * Submit queued commits and wait for at least one CQE, first spinning for
 * up to @spin_us: entering the kernel without sleeping runs its pending
 * work and catches a request that arrives soon, at the cost of a busy CPU.
 * Returns 1 when the spin caught a CQE, 0 after a sleep, or -errno.
 */
static int queue_wait(struct ublk_queue *q, unsigned spin_us)
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
 * command in flight and the ring has one SQE per tag.
 */
static int queue_loop(struct ublk_queue *q)
{
	bool busy = false;

	while (q->live_tags) {
		unsigned n;
		int ret = queue_wait(q, spin_time(q->dev->poll_us, busy));

		if (ret < 0)
			return ret;
		n = uring_cq_ready(&q->ring);
		busy = ret == 1 || n > 1;
		for (unsigned i = 0; i < n; i++) {
			ret = queue_handle_cqe(q, uring_cqe_at(&q->ring, i));
			if (ret < 0) {
				uring_cq_advance(&q->ring, n);
				return ret;
			}
		}
		uring_cq_advance(&q->ring, n);
	}
	return 0;
}

/* Per-thread setup: memory-reclaim safety, CPU placement, own ring. */
static int queue_setup(struct ublk_queue *q)
{
	/* DEFER_TASKRUN needs SINGLE_ISSUER; drop it first if refused. */
	static const unsigned wished[] = {
		IORING_SETUP_DEFER_TASKRUN, IORING_SETUP_SINGLE_ISSUER,
		IORING_SETUP_COOP_TASKRUN,
	};
	int ret;

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
	/* The ring is created by the thread that uses it (SINGLE_ISSUER). */
	ret = uring_init_best(&q->ring, q->depth, 0, wished,
			      sizeof(wished) / sizeof(wished[0]));
	if (ret < 0) {
		ublk_err("queue %u: io_uring_setup: %s", q->q_id, strerror(-ret));
		return ret;
	}
	ret = queue_fetch_all(q);
	if (ret < 0)
		ublk_err("queue %u: submitting FETCH_REQ: %s", q->q_id,
			 strerror(-ret));
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
		ret = queue_loop(q);
	/* Closing the ring cancels any command still pending. */
	uring_exit(&q->ring);
	q->err = ret;
	if (ret < 0)
		ublk_err("queue %u of /dev/ublkb%d stopped: %s", q->q_id,
			 dev->id, strerror(-ret));
	/* Wake the main thread unless it is the one shutting us down. */
	if (!atomic_load(&dev->stopping))
		pthread_kill(dev->main_thread, SIG_QUEUE_EXIT);
	return NULL;
}

/* ---- device setup and teardown ---- */

static int round_up(int v, int to)
{
	return (v + to - 1) / to * to;
}

/* Map queue @qi's descriptor array and allocate its per-tag state. */
static int queue_prepare(struct ublk_dev *dev, unsigned qi)
{
	struct ublk_queue *q = &dev->queues[qi];
	int page = (int)sysconf(_SC_PAGESIZE);
	/* Each queue's array starts at a page-rounded, maximum-depth slot. */
	off_t off = UBLKSRV_CMD_BUF_OFFSET + (off_t)qi *
		round_up(UBLK_MAX_QUEUE_DEPTH * (int)sizeof(struct ublksrv_io_desc), page);
	uint64_t mask[16] = { 0 };	/* up to 1024 CPUs */
	cpu_set_t allowed;
	void *p;
	int ret;

	q->dev = dev;
	q->q_id = qi;
	q->depth = dev->info.queue_depth;
	q->ring.fd = -1;
	q->descs_len = (size_t)round_up(q->depth * (int)sizeof(struct ublksrv_io_desc), page);
	p = mmap(NULL, q->descs_len, PROT_READ, MAP_SHARED | MAP_POPULATE,
		 dev->cdev_fd, off);
	if (p == MAP_FAILED) {
		ublk_err("queue %u: mmap of /dev/ublkc%d: %s", qi, dev->id,
			 strerror(errno));
		return -errno;
	}
	q->descs = p;
	/* Bounce buffers: reserved address space, touched only when used. */
	q->bufs_len = (size_t)q->depth * MAX_IO_BYTES;
	p = mmap(NULL, q->bufs_len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
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
	if (q->descs)
		munmap((void *)q->descs, q->descs_len);
	if (q->bufs)
		munmap(q->bufs, q->bufs_len);
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

/*
 * Open the channel, map the queues and start one thread per queue; wait
 * until every queue has posted its FETCHes (or failed).
 */
static int dev_start_queues(struct ublk_dev *dev)
{
	unsigned nq = dev->info.nr_hw_queues;
	int ret;

	dev->cdev_fd = open_cdev(dev->id);
	if (dev->cdev_fd < 0)
		return dev->cdev_fd;
	dev->queues = calloc(nq, sizeof(*dev->queues));
	if (!dev->queues)
		return -ENOMEM;
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
 * Undo dev_start_queues() in the order that never hangs: STOP_DEV makes
 * the kernel finish in-flight I/O and retire every tag, so the threads
 * end; then close the channel, so DEL_DEV has nothing to wait for.
 */
static void dev_stop_queues(struct ublk_dev *dev)
{
	atomic_store(&dev->stopping, true);
	ctrl_cmd(dev->ctrl, UBLK_U_CMD_STOP_DEV, (uint32_t)dev->id, NULL, 0, 0);
	for (unsigned i = 0; dev->queues && i < dev->info.nr_hw_queues; i++) {
		struct ublk_queue *q = &dev->queues[i];

		if (q->started)
			pthread_join(q->thread, NULL);
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

/* The UBLK_F_* flags a configuration needs. */
static uint64_t config_flags(const struct ublk_config *cfg)
{
	uint64_t f = UBLK_F_CMD_IOCTL_ENCODE;

	if (cfg->copy_mode == UBLK_COPY_GET_DATA)
		f |= UBLK_F_NEED_GET_DATA;
	if (cfg->copy_mode == UBLK_COPY_USER)
		f |= UBLK_F_USER_COPY;
	if (cfg->recoverable)
		f |= UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_REISSUE;
	return f;
}

static int check_features(const struct ublk_ctrl *c, uint64_t want)
{
	static const struct { uint64_t flag; const char *what; } names[] = {
		{ UBLK_F_NEED_GET_DATA, "NEED_GET_DATA (--copy-mode get_data)" },
		{ UBLK_F_USER_COPY, "USER_COPY (--copy-mode user_copy)" },
		{ UBLK_F_USER_RECOVERY, "USER_RECOVERY (--recoverable)" },
		{ UBLK_F_USER_RECOVERY_REISSUE, "USER_RECOVERY_REISSUE (--recoverable)" },
	};

	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if ((want & names[i].flag) && !(c->features & names[i].flag)) {
			ublk_err("this kernel's ublk driver lacks %s", names[i].what);
			return -EOPNOTSUPP;
		}
	return 0;
}

/* Block the signals the main thread waits for; threads inherit this. */
static void block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIG_QUEUE_EXIT);
	pthread_sigmask(SIG_BLOCK, set, NULL);
}

/*
 * Serve until a signal: SIGINT/SIGTERM ask for a clean stop (returns 0);
 * SIG_QUEUE_EXIT means a queue thread ended by itself: either the device
 * was removed from outside or serving failed.
 */
static int dev_wait(struct ublk_dev *dev, const sigset_t *set)
{
	int sig;

	do {
		sig = sigwaitinfo(set, NULL);
	} while (sig < 0 && errno == EINTR);
	if (sig != SIG_QUEUE_EXIT)
		return 0;
	for (unsigned i = 0; i < dev->info.nr_hw_queues; i++)
		if (dev->queues[i].err)
			return dev->queues[i].err;
	ublk_err("/dev/ublkb%d was stopped by someone else; exiting", dev->id);
	return -ENODEV;
}

static int dev_init(struct ublk_dev *dev, struct ublk_ctrl *ctrl,
		    const struct ublk_config *cfg,
		    const struct ublk_backend_ops *ops, void *data)
{
	memset(dev, 0, sizeof(*dev));
	dev->ctrl = ctrl;
	dev->ops = ops;
	dev->data = data;
	dev->copy_mode = cfg->copy_mode;
	dev->poll_us = cfg->poll_us;
	dev->trace = cfg->trace;
	dev->cdev_fd = -1;
	dev->id = -1;
	dev->main_thread = pthread_self();
	atomic_init(&dev->stopping, false);
	return sem_init(&dev->setup_done, 0, 0) < 0 ? -errno : 0;
}

/* After the device is live: tell the caller, serve, then stop it. */
static int dev_run(struct ublk_dev *dev, const sigset_t *set,
		   void (*on_live)(int dev_id, void *arg), void *arg)
{
	int ret;

	if (on_live)
		on_live(dev->id, arg);
	ret = dev_wait(dev, set);
	dev_stop_queues(dev);
	return ret;
}

int ublk_serve(struct ublk_ctrl *ctrl, const struct ublk_config *cfg,
	       const struct ublk_backend_ops *ops, void *data,
	       void (*on_live)(int dev_id, void *arg), void *arg)
{
	struct ublk_dev dev;
	sigset_t set;
	int ret, del;

	ret = check_features(ctrl, config_flags(cfg));
	if (ret < 0)
		return ret;
	ret = dev_init(&dev, ctrl, cfg, ops, data);
	if (ret < 0)
		return ret;
	block_signals(&set);

	dev.info.nr_hw_queues = (uint16_t)cfg->nr_queues;
	dev.info.queue_depth = (uint16_t)cfg->depth;
	dev.info.max_io_buf_bytes = MAX_IO_BYTES;
	dev.info.dev_id = cfg->dev_id < 0 ? UINT32_MAX : (uint32_t)cfg->dev_id;
	dev.info.flags = config_flags(cfg);
	ret = ctrl_cmd(ctrl, UBLK_U_CMD_ADD_DEV, dev.info.dev_id, &dev.info,
		       sizeof(dev.info), 0);
	if (ret < 0) {
		if (ret == -EEXIST && cfg->dev_id >= 0)
			ublk_err("device id %d is already in use (see: ublk-mem list)",
				 cfg->dev_id);
		else
			ublk_err("ADD_DEV: %s", strerror(-ret));
		goto out;
	}
	dev.id = (int)dev.info.dev_id;	/* the kernel wrote back the id */

	dev_fill_params(&dev, cfg);
	ret = ctrl_cmd(ctrl, UBLK_U_CMD_SET_PARAMS, (uint32_t)dev.id,
		       &dev.params, sizeof(dev.params), 0);
	if (ret < 0) {
		ublk_err("SET_PARAMS for /dev/ublkb%d: %s", dev.id, strerror(-ret));
		goto del;
	}
	ret = dev_start_queues(&dev);
	if (ret < 0)
		goto err_stop;
	ret = ctrl_cmd(ctrl, UBLK_U_CMD_START_DEV, (uint32_t)dev.id, NULL, 0,
		       (uint64_t)getpid());
	if (ret < 0) {
		ublk_err("START_DEV for /dev/ublkb%d: %s", dev.id, strerror(-ret));
		goto err_stop;
	}
	ret = dev_run(&dev, &set, on_live, arg);
	goto del;

err_stop:
	dev_stop_queues(&dev);
del:
	/* A recoverable device's crash leaves it; any exit through here does not. */
	del = ublk_delete(ctrl, dev.id, 5000);
	if (del == -EBUSY)
		ublk_err("/dev/ublkb%d is removed; its id is freed when its last user lets go",
			 dev.id);
	else if (del < 0 && del != -ENODEV)	/* ENODEV: someone removed it */
		ublk_err("DEL_DEV for device %d: %s", dev.id, strerror(-del));
out:
	sem_destroy(&dev.setup_done);
	return ret;
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

/*
 * START_USER_RECOVERY is accepted once the old server is gone and the
 * kernel has quiesced the device.  Right after a crash the kernel may
 * still be tearing the old server down: wait for that, bounded.
 */
static int start_recovery(struct ublk_ctrl *ctrl,
			  struct ublksrv_ctrl_dev_info *info, int dev_id)
{
	int ret;

	for (int ms = 0;; ms += 50) {
		/* A server killed a moment ago may take a little to be gone. */
		if (info->state == UBLK_S_DEV_LIVE && ublk_server_running(info) &&
		    ms >= 1000) {
			ublk_err("device %d is live (server pid %d); nothing to recover",
				 dev_id, info->ublksrv_pid);
			return -EBUSY;
		}
		if (info->state == UBLK_S_DEV_DEAD) {
			ublk_err("device %d is stopped; it cannot be recovered (remove it: ublk-mem del %d)",
				 dev_id, dev_id);
			return -ENODEV;
		}
		ret = -EBUSY;
		if (info->state == UBLK_S_DEV_QUIESCED)
			ret = ctrl_cmd(ctrl, UBLK_U_CMD_START_USER_RECOVERY,
				       (uint32_t)dev_id, NULL, 0, 0);
		if (ret != -EBUSY || ms >= 10000)
			break;
		usleep(50000);
		ret = ctrl_cmd(ctrl, UBLK_U_CMD_GET_DEV_INFO, (uint32_t)dev_id,
			       info, sizeof(*info), 0);
		if (ret < 0)
			break;
	}
	if (ret < 0)
		ublk_err("START_USER_RECOVERY for device %d: %s%s", dev_id,
			 strerror(-ret), ret == -EBUSY ?
			 " (its old server has not finished exiting)" : "");
	return ret;
}

int ublk_recover(struct ublk_ctrl *ctrl, int dev_id, struct ublk_config *cfg,
		 const struct ublk_backend_ops *ops, void *data,
		 void (*on_live)(int dev_id, void *arg), void *arg)
{
	struct ublk_dev dev;
	sigset_t set;
	int ret;

	ret = dev_init(&dev, ctrl, cfg, ops, data);
	if (ret < 0)
		return ret;
	block_signals(&set);
	dev.id = dev_id;
	ret = ublk_get_info(ctrl, dev_id, &dev.info, &dev.params);
	if (ret < 0)
		goto out;
	dev.copy_mode = (dev.info.flags & UBLK_F_USER_COPY) ? UBLK_COPY_USER :
			(dev.info.flags & UBLK_F_NEED_GET_DATA) ? UBLK_COPY_GET_DATA :
			UBLK_COPY_BOUNCE;
	ret = start_recovery(ctrl, &dev.info, dev_id);
	if (ret < 0)
		goto out;
	ret = dev_start_queues(&dev);
	if (ret == 0)
		ret = ctrl_cmd(ctrl, UBLK_U_CMD_END_USER_RECOVERY,
			       (uint32_t)dev_id, NULL, 0, (uint64_t)getpid());
	if (ret < 0) {
		/*
		 * No STOP_DEV: the device stays recoverable.  The caller
		 * exits, and closing our rings and channel hands the device
		 * back to the kernel for the next attempt.
		 */
		ublk_err("recovering device %d: %s", dev_id, strerror(-ret));
		atomic_store(&dev.stopping, true);
		goto out;
	}
	ret = dev_run(&dev, &set, on_live, arg);
	ublk_delete(ctrl, dev_id, 5000);
out:
	sem_destroy(&dev.setup_done);
	return ret;
}
