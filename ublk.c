/*
 * ublk.c - a ublk device's life: its queue threads, and the control
 * commands that add, start, stop and recover it.
 *
 * Read uring.c, ublk_ctrl.c and ublk_io.c first.  Life of a device:
 *
 *   GET_FEATURES     what this kernel's driver supports (ublk_ctrl_open())
 *   ADD_DEV          creates /dev/ublkcN (the server's channel); no disk yet
 *   SET_PARAMS       size, block size, discard limits
 *   open + mmap      /dev/ublkcN; each queue's descriptor array
 *   FETCH_REQ x all  each queue thread hands one command per tag to the
 *                    kernel: "give me a request for this slot"
 *   START_DEV        the driver creates /dev/ublkbN; I/O starts flowing
 *   ... serve ...    ublk_io.c
 *   STOP_DEV         removes /dev/ublkbN once in-flight I/O is done; every
 *                    pending FETCH completes with UBLK_IO_RES_ABORT
 *   close /dev/ublkcN, DEL_DEV_ASYNC   the device id is freed
 *
 * A device made with UBLK_F_USER_RECOVERY outlives its server: when the
 * server dies the kernel quiesces the device and holds its I/O, and a new
 * server takes over with START_USER_RECOVERY, its own FETCHes and
 * END_USER_RECOVERY instead of ADD_DEV ... START_DEV.
 *
 * A device made by an ordinary user (UBLK_F_UNPRIVILEGED_DEV) is that
 * user's: only its owner and root may send it commands (each naming its
 * node, see ublk_ctrl.c) or open its disk.  The driver makes its nodes
 * root's, so the server waits for the administrator's udev rule to hand
 * them over (wait_node_ours()) before it uses them.
 *
 * A queue has one thread by default.  From Linux 6.16 (PER_IO_DAEMON)
 * the driver keeps track of which thread fetched each tag and sends the
 * tag's requests there, so --queue-threads N splits a queue's tags among
 * N threads, each with its own ring (see struct ublk_queue).
 *
 * What the caller does while the device serves - wait for signals, answer
 * control requests, decide whether a device in use may stop - is the
 * caller's (process.c); this file only says when a queue thread ended.
 */
#define _GNU_SOURCE
#include "fault.h"
#include "log.h"
#include "ublk.h"
#include "ublk_config.h"
#include "ublk_ctrl.h"
#include "ublk_queue.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

#define START_LIMIT_MS		30000		/* START_DEV, END_USER_RECOVERY */
#define STOP_CLOSE_MS		1000		/* see stop_give_up() */
/* Bounce mode allocates every tag's buffer at start: at most this much. */
#define BOUNCE_BYTES_PER_QUEUE	(32U << 20)
/*
 * So does a device that may be swapped to, within less: its buffers are
 * locked memory taken from a machine short of it when it swaps.
 */
#define SWAP_BYTES_PER_QUEUE	(8U << 20)
/* How long an unprivileged device's node may stay root's: see wait_node_ours(). */
#define NODE_WAIT_MS		10000
#define UBLKS_MAX_PARAM		"/sys/module/ublk_drv/parameters/ublks_max"

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
	/* An ordinary user may not (it takes CAP_SYS_RESOURCE): see the README. */
	if (prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) < 0 &&
	    !(errno == EPERM && (q->dev->info.flags & UBLK_F_UNPRIVILEGED_DEV)))
		log_err("queue %u: PR_SET_IO_FLUSHER: %s (reclaim may deadlock under memory pressure)",
			 q->q_id, strerror(errno));
	if (CPU_COUNT(&q->affinity) &&
	    sched_setaffinity(0, sizeof(q->affinity), &q->affinity) < 0)
		log_err("queue %u: sched_setaffinity: %s", q->q_id,
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
		log_err("queue %u: io_uring_setup: %s", q->q_id, strerror(-ret));
		return ret;
	}
	if (zero_copy) {
		ret = queue_zc_setup(q);
		if (ret < 0)
			return ret;
	}
	ret = q->dev->batch ? batch_fetch_all(q) : queue_fetch_all(q);
	if (ret < 0)
		log_err("/dev/ublkb%d queue %u: cannot hand its tags to the driver: %s",
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
		log_err("queue %u of /dev/ublkb%d stopped: %s", q->q_id,
			 dev->id, strerror(-ret));
	/* Tell the caller, unless it is the one shutting us down. */
	if (!atomic_load(&dev->stopping)) {
		uint64_t one = 1;

		atomic_store(&dev->queue_ended, true);
		if (write(dev->event_fd, &one, sizeof(one)) != sizeof(one))
			log_err("queue %u: cannot say it ended: %s", q->q_id, strerror(errno));
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
		log_err("queue %u: mmap of /dev/ublkc%d: %s", qi, dev->id,
			 strerror(-ret));
		return ret;
	}
	q->descs = p;
	/* A buffer for each tag this thread owns (see tag_buf()). */
	q->bufs_len = (size_t)((q->depth + dev->lanes - 1) / dev->lanes) * dev->buf_bytes;
	if (dev->copy_mode == UBLK_COPY_BOUNCE || dev->as_swap) {
		p = map_resident(q->bufs_len);
	} else {
		p = mmap(NULL, q->bufs_len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		p = p == MAP_FAILED ? NULL : p;
	}
	q->sink = map_resident(dev->buf_bytes);
	if (!p || !q->sink) {
		log_err("queue %u: cannot allocate its buffers: %s", qi,
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

		log_err("%s: %s", path, strerror(err));
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
			log_err("creating queue thread: %s", strerror(ret));
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
			log_err("queue %u: cannot wake its thread: %s", i, strerror(errno));
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

/* ---- a new device ---- */

/* The parameters the kernel needs: size, block sizes, discard limits, zones. */
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
	if (cfg->zone_size) {
		/* Zones are chunks; appends may be as large as any request. */
		p->types |= UBLK_PARAM_TYPE_ZONED;
		p->basic.chunk_sectors = (uint32_t)(cfg->zone_size >> 9);
		p->zoned.max_open_zones = cfg->max_open_zones;
		p->zoned.max_active_zones = cfg->max_active_zones;
		p->zoned.max_zone_append_sectors = p->basic.max_sectors;
	}
	if (dev->ops->write_zeroes) {
		p->types |= UBLK_PARAM_TYPE_DISCARD;
		if (!p->discard.discard_granularity)
			p->discard.discard_granularity = 1U << pbs_shift;
		p->discard.max_write_zeroes_sectors = UINT32_MAX >> 9;
	}
}

/*
 * The per-tag buffer size, which is also the largest request.  Bounce
 * mode, and a device that may be swapped to, allocate all of them at
 * start, so a deep queue gets smaller ones.
 */
static unsigned buffer_bytes(enum ublk_copy_mode mode, bool as_swap, unsigned depth)
{
	unsigned page = (unsigned)sysconf(_SC_PAGESIZE);
	unsigned b = UBLK_MAX_IO_BYTES;
	unsigned most = as_swap ? SWAP_BYTES_PER_QUEUE :
			mode == UBLK_COPY_BOUNCE ? BOUNCE_BYTES_PER_QUEUE : 0;

	if (most && depth * b > most)
		b = most / depth / page * page;
	return b < page ? page : b;
}

static struct ublk_dev *dev_new(struct ublk_ctrl *ctrl, const struct ublk_config *cfg,
				const struct backend_ops *ops)
{
	struct ublk_dev *dev = calloc(1, sizeof(*dev));

	if (!dev)
		return NULL;
	dev->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (dev->event_fd < 0 || sem_init(&dev->setup_done, 0, 0) < 0) {
		if (dev->event_fd >= 0)
			close(dev->event_fd);
		free(dev);
		return NULL;
	}
	dev->ctrl = ctrl;
	dev->ops = ops;
	dev->copy_mode = cfg->copy_mode;
	dev->as_swap = cfg->as_swap;
	dev->batch = cfg->io_path == UBLK_IO_PATH_BATCH;
	dev->poll_us = cfg->poll_us;
	dev->lanes = cfg->queue_threads ? cfg->queue_threads : 1;
	dev->trace = cfg->trace;
	dev->had_data = cfg->holds_data;
	dev->cdev_fd = -1;
	dev->id = -1;
	atomic_init(&dev->stopping, false);
	atomic_init(&dev->queue_ended, false);
	return dev;
}

static void dev_free(struct ublk_dev *dev)
{
	sem_destroy(&dev->setup_done);
	close(dev->event_fd);
	free(dev);
}

/*
 * Wait, up to NODE_WAIT_MS, until this process may read and write @path.
 * An unprivileged device's nodes are root's when the driver makes them,
 * until the administrator's udev rule (or mdev line) has `ublk-mem chown`
 * give them to the device's owner.  0 or -errno.
 */
static int wait_node_ours(const char *path)
{
	for (int ms = 0;; ms += 10) {
		if (faccessat(AT_FDCWD, path, R_OK | W_OK, AT_EACCESS) == 0)
			return 0;
		if ((errno != EACCES && errno != EPERM && errno != ENOENT) || ms >= NODE_WAIT_MS)
			return -errno;
		usleep(10000);
	}
}

/* ADD_DEV refused: say why, with the fix. */
static void say_add_failed(const struct ublk_config *cfg, int err)
{
	unsigned max = 0;
	FILE *f;

	if (err == -EEXIST && cfg->dev_id >= 0) {
		log_err("device id %d is already in use (see: ublk-mem list; a removed device keeps its id while a file system on it is still mounted)",
			 cfg->dev_id);
		return;
	}
	if (err != -EACCES || !cfg->unprivileged) {
		log_err("ADD_DEV: %s", strerror(-err));
		return;
	}
	/* The driver's cap on unprivileged devices, all users together. */
	f = fopen(UBLKS_MAX_PARAM, "re");
	if (!f || fscanf(f, "%u", &max) != 1)
		max = 64;
	if (f)
		fclose(f);
	if (max == 0)
		log_err("ADD_DEV: %s: the ublk driver lets no ordinary user make a device (its parameter ublks_max is 0); root can allow some: echo 64 > %s",
			strerror(-err), UBLKS_MAX_PARAM);
	else
		log_err("ADD_DEV: %s: ordinary users have made the %u devices the ublk driver allows them (ublks_max): remove one (ublk-mem list), or root can raise it: echo %u > %s",
			strerror(-err), max, max * 2, UBLKS_MAX_PARAM);
}

/*
 * A new unprivileged device: wait for its node to be handed to us, or
 * say why it is not, and remove the device if the driver still lets us.
 */
static int wait_cdev_ours(struct ublk_ctrl *ctrl, int id)
{
	char path[96];
	int ret;

	snprintf(path, sizeof(path), "/dev/ublkc%d", id);
	ret = wait_node_ours(path);
	if (ret == 0)
		return 0;
	if (ublk_delete(ctrl, id, 1000) == 0)
		snprintf(path, sizeof(path), "the device is removed again");
	else
		snprintf(path, sizeof(path), "the device stays until root removes it: ublk-mem del %d", id);
	log_err("/dev/ublkc%d is not this user's %d s after ADD_DEV made it (%s): nothing hands users their devices' nodes (the udev rule or mdev line of ublk-mem --help, without root); %s",
		id, NODE_WAIT_MS / 1000, strerror(-ret), path);
	return ret;
}

int ublk_add(struct ublk_ctrl *ctrl, const struct ublk_config *cfg,
	     const struct backend_ops *ops, struct ublk_dev **devp)
{
	struct ublk_config chosen = *cfg;
	struct ublk_dev *dev;
	int ret;

	uint64_t missing = 0;

	/* The caller has said why (ublk_config_check()); just refuse. */
	if (ublk_config_check(cfg, ctrl->features, &missing) != UBLK_CONFIG_OK)
		return missing ? -EOPNOTSUPP : -EINVAL;
	config_choose_io_path(ctrl->features, &chosen);
	cfg = &chosen;
	dev = dev_new(ctrl, cfg, ops);
	if (!dev)
		return -ENOMEM;
	dev->buf_bytes = buffer_bytes(cfg->copy_mode, cfg->as_swap, cfg->depth);
	dev->info.nr_hw_queues = (uint16_t)cfg->nr_queues;
	dev->info.queue_depth = (uint16_t)cfg->depth;
	dev->info.max_io_buf_bytes = dev->buf_bytes;
	dev->info.dev_id = cfg->dev_id < 0 ? UINT32_MAX : (uint32_t)cfg->dev_id;
	dev->info.flags = config_flags(cfg) | config_optional_flags(cfg, ctrl->features);
	ret = ctrl_cmd(ctrl, UBLK_U_CMD_ADD_DEV, dev->info.dev_id, &dev->info,
		       sizeof(dev->info), 0);
	if (ret < 0) {
		say_add_failed(cfg, ret);
		dev_free(dev);
		return ret;
	}
	dev->id = (int)dev->info.dev_id;	/* the kernel wrote back the id */
	dev->owned = true;
	ctrl_note_device(ctrl, dev->id, dev->info.flags);
	if ((dev->info.flags & UBLK_F_UNPRIVILEGED_DEV) && wait_cdev_ours(ctrl, dev->id) < 0) {
		dev_free(dev);
		return -EACCES;
	}
	/*
	 * The driver drops flags it does not know instead of failing, and
	 * UNPRIVILEGED_DEV when root asks for it after all.
	 */
	missing = config_missing_flag(dev->info.flags, config_flags(cfg) & ~UBLK_F_UNPRIVILEGED_DEV);
	if (missing) {
		log_err("ADD_DEV for /dev/ublkb%d: the driver dropped UBLK_F_%s", dev->id,
			ublk_feature_name((unsigned)__builtin_ctzll(missing)));
		ublk_remove(dev);
		return -EOPNOTSUPP;
	}

	dev_fill_params(dev, cfg);
	ret = ctrl_cmd(ctrl, UBLK_U_CMD_SET_PARAMS, (uint32_t)dev->id,
		       &dev->params, sizeof(dev->params), 0);
	if (ret < 0) {
		log_err("SET_PARAMS for /dev/ublkb%d: %s", dev->id, strerror(-ret));
		ublk_remove(dev);
		return ret;
	}
	*devp = dev;
	return 0;
}

int ublk_attach(struct ublk_ctrl *ctrl, int dev_id, const struct ublk_config *cfg,
		const struct backend_ops *ops, struct ublk_dev **devp)
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
	ret = 0;
	if (dev->lanes > 1 && !(dev->info.flags & UBLK_F_PER_IO_DAEMON)) {
		log_err("/dev/ublkb%d was made without UBLK_F_PER_IO_DAEMON (Linux %s): it takes one thread per queue",
			dev_id, ublk_feature_since(13));
		ret = -EOPNOTSUPP;
	} else if (dev->lanes > dev->info.queue_depth) {
		log_err("%u threads per queue are more than /dev/ublkb%d's queue depth %u",
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

/* ---- what the caller may ask of a device ---- */

int ublk_dev_id(const struct ublk_dev *dev)
{
	return dev->id;
}

void ublk_io_stats(const struct ublk_dev *dev, struct ublk_io_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (unsigned i = 0; dev->queues && i < dev_threads(dev); i++) {
		const struct queue_counts *c = &dev->queues[i].counts;

		st->reads += atomic_load_explicit(&c->reads, memory_order_relaxed);
		st->writes += atomic_load_explicit(&c->writes, memory_order_relaxed);
		st->discards += atomic_load_explicit(&c->discards, memory_order_relaxed);
		st->write_zeroes += atomic_load_explicit(&c->write_zeroes, memory_order_relaxed);
		st->flushes += atomic_load_explicit(&c->flushes, memory_order_relaxed);
		st->read_bytes += atomic_load_explicit(&c->read_bytes, memory_order_relaxed);
		st->written_bytes += atomic_load_explicit(&c->written_bytes, memory_order_relaxed);
		st->failed_reads += atomic_load_explicit(&c->failed_reads, memory_order_relaxed);
		st->failed_writes += atomic_load_explicit(&c->failed_writes, memory_order_relaxed);
	}
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

int ublk_resize(struct ublk_dev *dev, uint64_t new_size)
{
	int ret;

	if (!(dev->ctrl->features & UBLK_F_UPDATE_SIZE)) {
		log_err("resizing needs the ublk driver's UPDATE_SIZE (Linux %s); this kernel has not got it",
			 ublk_feature_since(10));
		return -EOPNOTSUPP;
	}
	ret = ctrl_cmd(dev->ctrl, UBLK_U_CMD_UPDATE_SIZE, (uint32_t)dev->id,
		       NULL, 0, new_size >> 9);
	if (ret < 0)
		log_err("UPDATE_SIZE for /dev/ublkb%d: %s", dev->id, strerror(-ret));
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
		log_err("/dev/ublkb%d was not created --recoverable: no other server can take it over",
			 dev->id);
		return -EINVAL;
	}
	if (dev->info.flags & UBLK_F_QUIESCE) {
		ret = ctrl_cmd(dev->ctrl, UBLK_U_CMD_QUIESCE_DEV, (uint32_t)dev->id,
			       NULL, 0, timeout_ms);
		dev->quiesced = ret == 0;
		if (ret < 0)
			log_err("QUIESCE_DEV for /dev/ublkb%d: %s; handing over as after a crash",
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
			log_err("/dev/ublkb%d is removed, but the kernel keeps its id %d until its last user lets go (a file system still mounted on it?)",
				 dev->id, dev->id);
		else if (ret == -ENODEV)	/* someone else removed it */
			ret = 0;
		else if (ret < 0)
			log_err("DEL_DEV for device %d: %s", dev->id, strerror(-ret));
	}
	dev_free(dev);
	return ret;
}

/* ---- starting, and stopping ---- */

/*
 * While START_DEV or END_USER_RECOVERY waits: give up when a queue thread
 * has ended (its FETCHes will never all arrive), when the caller says so,
 * or after START_LIMIT_MS.
 */
struct start_wait {
	struct ublk_dev *dev;
	struct timespec t0;
	bool (*give_up)(void *arg);	/* the caller's */
	void *arg;
};

static bool start_give_up(void *arg)
{
	struct start_wait *w = arg;
	struct timespec t;
	long limit_ms;

	if (w->give_up && w->give_up(w->arg))
		w->dev->stop_asked = true;
	/* The test hook that holds a FETCH back need not wait the full limit. */
	limit_ms = fault_at("fetch-missing") ? START_LIMIT_MS / 6 : START_LIMIT_MS;
	clock_gettime(CLOCK_MONOTONIC, &t);
	if ((t.tv_sec - w->t0.tv_sec) * 1000 + (t.tv_nsec - w->t0.tv_nsec) / 1000000 >
	    limit_ms) {
		log_err("/dev/ublkb%d: the driver did not start the device within %ld s",
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
			log_err("device %d is live (server pid %d); nothing to recover",
				 id, info->ublksrv_pid);
			return -EBUSY;
		}
		if (info->state == UBLK_S_DEV_DEAD) {
			/* Never started (a rebuild that failed), or stopped. */
			log_err("device %d is not running: the driver recovers only a device whose server died",
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
		log_err("device %d: the driver refuses to start a recovery: an earlier recovery ended half-way",
			 id);
		return -ENOTRECOVERABLE;
	} else if (ret < 0) {
		log_err("START_USER_RECOVERY for device %d: %s%s", id,
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
static int dev_go_live(struct ublk_dev *dev, bool (*give_up)(void *arg), void *arg)
{
	struct start_wait w = { .dev = dev, .give_up = give_up, .arg = arg };
	uint32_t op = dev->recovering ? UBLK_U_CMD_END_USER_RECOVERY :
		      UBLK_U_CMD_START_DEV;
	int ret;

	if (dev->recovering) {
		ret = start_recovery(dev);
		if (ret < 0)
			return ret;
		/* From here on the device is ours, and so is its data. */
		dev->owned = dev->had_data = true;
		if (fault_at("recovery-started"))
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
		log_err("%s for /dev/ublkb%d: %s", ctrl_cmd_name(op), dev->id,
			 strerror(-ret));
	if (ret == 0)
		dev->had_data = dev->went_live = true;
	if (ret == 0 && (dev->info.flags & UBLK_F_UNPRIVILEGED_DEV)) {
		char path[64];
		int err;

		/* Its disk too is root's at first: announce it once it is ours. */
		snprintf(path, sizeof(path), "/dev/ublkb%d", dev->id);
		err = wait_node_ours(path);
		if (err < 0)
			log_err("warning: %s is not this user's %d s after it appeared (%s): does the udev rule of ublk-mem --help, without root, cover block devices?",
				path, NODE_WAIT_MS / 1000, strerror(-err));
	}
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

int ublk_start(struct ublk_dev *dev, void *data, bool (*give_up)(void *arg), void *arg)
{
	int ret;

	dev->data = data;
	ret = dev_go_live(dev, give_up, arg);
	if (ret < 0 && dev->stop_asked)
		return -ECANCELED;	/* given up as the caller asked */
	/* Given up by us: a queue thread failed, or the time limit passed. */
	if (ret == -ECANCELED)
		ret = atomic_load(&dev->queue_ended) ? ublk_serving_status(dev) : -ETIMEDOUT;
	return ret;
}

int ublk_event_fd(const struct ublk_dev *dev)
{
	return dev->event_fd;
}

int ublk_serving_status(const struct ublk_dev *dev)
{
	if (!atomic_load(&dev->queue_ended))
		return 0;
	for (unsigned i = 0; i < dev_threads(dev); i++)
		if (dev->queues[i].err)
			return dev->queues[i].err;
	return -ENODEV;	/* every tag retired: stopped from outside */
}

int ublk_try_stop(struct ublk_dev *dev)
{
	int ret;

	if (!(dev->ctrl->features & UBLK_F_SAFE_STOP_DEV))
		return -EOPNOTSUPP;
	ret = ctrl_cmd(dev->ctrl, UBLK_U_CMD_TRY_STOP_DEV, (uint32_t)dev->id, NULL, 0, 0);
	dev->try_stopped = ret == 0;
	return ret;
}

int ublk_finish(struct ublk_dev *dev, int status)
{
	bool keep, clean;

	clean = status == 0 && dev->went_live && !dev->handed_over;
	keep = (dev->info.flags & UBLK_F_USER_RECOVERY) &&
	       (dev->handed_over || (!clean && dev->had_data && status != -ENODEV));
	if (dev->owned && !keep) {
		int stopped = dev_stop(dev, status != 0);

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
		return status;
	}
	dev_end_queues(dev);
	dev->kept = keep || !dev->owned;
	return status;
}
