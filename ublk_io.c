/*
 * ublk_io.c - one request, from the CQE that brings it to the COMMIT that
 * answers it, in every copy mode; and the loop of a queue thread.
 *
 * Read uring.c and ublk_ctrl.c first.  Life of one request (I/O commands,
 * on /dev/ublkcN, in a queue thread):
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
 * The copy modes change steps 2 and 5 (enum ublk_copy_mode in ublk.h):
 *
 *   bounce     as above: the kernel copies between the request and a
 *              buffer of ours for each tag, we copy between that buffer
 *              and the backend: two copies
 *   get_data   (UBLK_F_NEED_GET_DATA) the driver first asks where a WRITE's
 *              data should go (a CQE with UBLK_IO_RES_NEED_GET_DATA): we
 *              answer with the backend's own memory, and for a READ commit
 *              with the address of the backend's bytes: one copy, by the
 *              kernel (queue_get_data(), queue_read())
 *   user_copy  (UBLK_F_USER_COPY) no buffer at all: we pread/pwrite the
 *              request's data on /dev/ublkcN, straight from and into the
 *              backend (user_copy())
 *   zero_copy  (UBLK_F_AUTO_BUF_REG, Linux 6.16) the driver lends the
 *              request's own pages to our ring as a fixed buffer, and
 *              io_uring reads or writes them from or to the backend's file,
 *              kernel to kernel; the COMMIT takes them back
 *              (queue_zc_serve())
 *
 * Where the kernel copies into our memory (steps 2 and 5, and
 * NEED_GET_DATA) it cannot fail the request if that memory cannot be
 * allocated: it requeues the request and tries again, for ever.  So every
 * address we hand the kernel for a WRITE is memory that exists already:
 * the backend's, after its prepare_write() said yes, or a buffer of ours
 * that was allocated at start.
 *
 * A device made with UBLK_F_BATCH_IO (Linux 7.0) takes other I/O
 * commands, each carrying many tags: its queue threads run ublk_batch.c's
 * loop instead of queue_loop(), and serve each request with the same
 * queue_serve().
 */
#define _GNU_SOURCE
#include "fault.h"
#include "log.h"
#include "ublk_queue.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BUSY_SPIN_US		100		/* see spin_time() */
#define ERRORS_SHOWN		10		/* per queue thread */

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

const char *ublk_io_path_name(enum ublk_io_path path)
{
	return path == UBLK_IO_PATH_BATCH ? "batch" :
	       path == UBLK_IO_PATH_PER_REQUEST ? "per-request" : "auto";
}

/* ---- the queue threads ---- */

static const char *io_op_name(unsigned op)
{
	static const char *const names[] = {
		[UBLK_IO_OP_READ] = "READ", [UBLK_IO_OP_WRITE] = "WRITE",
		[UBLK_IO_OP_FLUSH] = "FLUSH", [UBLK_IO_OP_DISCARD] = "DISCARD",
		[UBLK_IO_OP_WRITE_SAME] = "WRITE_SAME",
		[UBLK_IO_OP_WRITE_ZEROES] = "WRITE_ZEROES",
		[UBLK_IO_OP_ZONE_OPEN] = "ZONE_OPEN", [UBLK_IO_OP_ZONE_CLOSE] = "ZONE_CLOSE",
		[UBLK_IO_OP_ZONE_FINISH] = "ZONE_FINISH",
		[UBLK_IO_OP_ZONE_APPEND] = "ZONE_APPEND",
		[UBLK_IO_OP_ZONE_RESET_ALL] = "ZONE_RESET_ALL",
		[UBLK_IO_OP_ZONE_RESET] = "ZONE_RESET",
		[UBLK_IO_OP_REPORT_ZONES] = "REPORT_ZONES",
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
const char *queue_label(const struct ublk_queue *q, char buf[16])
{
	if (q->dev->lanes > 1)
		snprintf(buf, 16, "%u.%u", q->q_id, q->lane);
	else
		snprintf(buf, 16, "%u", q->q_id);
	return buf;
}

/*
 * Say why a request failed; a queue thread reports its first few failures
 * only, and none on a device that may be swapped to (see as_swap).
 */
static void queue_report_error(struct ublk_queue *q, unsigned tag, unsigned op,
			       uint64_t off, uint64_t len, int res)
{
	if (q->errors_reported >= ERRORS_SHOWN || q->dev->as_swap)
		return;
	log_err("/dev/ublkb%d queue %u tag %u: %s of %llu bytes at %llu failed: %s%s",
		 q->dev->id, q->q_id, tag, io_op_name(op), (unsigned long long)len,
		 (unsigned long long)off, strerror(-res),
		 ++q->errors_reported == ERRORS_SHOWN ?
		 " (further failures of this queue not shown)" : "");
}

/*
 * A zone report: the backend fills the tag's buffer with struct blk_zone
 * descriptors, which go into the request with one pwrite of the whole
 * buffer.  The driver takes what fits, which is the request's length:
 * Linux 6.12 requeues a report completed with fewer bytes than that, so
 * the COMMIT names all of them (the kernel reads only the zones it asked
 * for).
 */
static int queue_report_zones(struct ublk_queue *q, unsigned tag, uint64_t off,
			      unsigned nr_zones)
{
	const struct ublk_dev *dev = q->dev;
	char *buf = tag_buf(q, tag);
	ssize_t n;
	int ret;

	memset(buf, 0, dev->buf_bytes);
	ret = dev->ops->report_zones(dev->data, off, nr_zones, buf, dev->buf_bytes);
	if (ret < 0)
		return ret;
	do {
		n = pwrite(dev->cdev_fd, buf, dev->buf_bytes, user_copy_pos(q, tag));
	} while (n < 0 && errno == EINTR);
	return n > 0 ? (int)n : n < 0 ? -errno : -EIO;
}

/*
 * Zoned devices (UBLK_F_ZONED, served in user_copy mode): zone commands
 * go to the backend as they are, and a report is built in the tag's
 * buffer.  A zone append's data is read from the request and written at
 * its zone's write pointer; the COMMIT then carries back, in its addr,
 * the sector the data landed at.
 */
static int queue_zone_op(struct ublk_queue *q, unsigned tag,
			 const struct ublksrv_io_desc *iod, void **addr)
{
	static const enum backend_zone_op mgmt[] = {
		[UBLK_IO_OP_ZONE_OPEN] = BACKEND_ZONE_OPEN,
		[UBLK_IO_OP_ZONE_CLOSE] = BACKEND_ZONE_CLOSE,
		[UBLK_IO_OP_ZONE_FINISH] = BACKEND_ZONE_FINISH,
		[UBLK_IO_OP_ZONE_RESET] = BACKEND_ZONE_RESET,
		[UBLK_IO_OP_ZONE_RESET_ALL] = BACKEND_ZONE_RESET_ALL,
	};
	const struct ublk_dev *dev = q->dev;
	unsigned op = iod->op_flags & 0xff;
	uint64_t off = iod->start_sector << 9, written;
	uint32_t len = iod->nr_sectors << 9;
	int ret;

	if (!dev->ops->zone_mgmt)
		return -EOPNOTSUPP;
	if (op == UBLK_IO_OP_REPORT_ZONES)
		return queue_report_zones(q, tag, off, iod->nr_sectors);	/* zones, here */
	if (op != UBLK_IO_OP_ZONE_APPEND)
		return dev->ops->zone_mgmt(dev->data, mgmt[op], off);
	ret = user_copy(q, tag, tag_buf(q, tag), len, false);
	if (ret == 0)
		ret = dev->ops->zone_append(dev->data, tag_buf(q, tag), off, len, &written);
	if (ret < 0)
		return ret;
	*addr = (void *)(uintptr_t)(written >> 9);
	return (int)len;
}

/* Add @v to a counter of this thread's own (see struct queue_counts). */
static inline void count_add(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

/* Count one request of @op, @len bytes, that ended with @res. */
static void queue_count(struct ublk_queue *q, unsigned op, uint64_t len, int res)
{
	struct queue_counts *c = &q->counts;

	switch (op) {
	case UBLK_IO_OP_READ:
		count_add(&c->reads, 1);
		count_add(res < 0 ? &c->failed_reads : &c->read_bytes, res < 0 ? 1 : len);
		break;
	case UBLK_IO_OP_WRITE:
		count_add(&c->writes, 1);
		count_add(res < 0 ? &c->failed_writes : &c->written_bytes, res < 0 ? 1 : len);
		break;
	case UBLK_IO_OP_DISCARD:
		count_add(&c->discards, 1);
		break;
	case UBLK_IO_OP_WRITE_ZEROES:
		count_add(&c->write_zeroes, 1);
		break;
	case UBLK_IO_OP_FLUSH:
		count_add(&c->flushes, 1);
		break;
	}
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
	case UBLK_IO_OP_ZONE_OPEN:
	case UBLK_IO_OP_ZONE_CLOSE:
	case UBLK_IO_OP_ZONE_FINISH:
	case UBLK_IO_OP_ZONE_APPEND:
	case UBLK_IO_OP_ZONE_RESET_ALL:
	case UBLK_IO_OP_ZONE_RESET:
	case UBLK_IO_OP_REPORT_ZONES:
		res = queue_zone_op(q, tag, iod, &addr);
		break;
	default:
		res = -EOPNOTSUPP;
		break;
	}
	q->tags[tag].data_direct = false;
	q->tags[tag].write_err = 0;
	q->tags[tag].owned = false;
	queue_count(q, op, len, res);
	if (res < 0 && op != UBLK_IO_OP_FLUSH)
		queue_report_error(q, tag, op, off, len, res);
	if (__builtin_expect(dev->trace, 0)) {
		char label[16];

		log_err("q%s tag %u %s off %llu len %llu -> %d (%s)",
			 queue_label(q, label), tag, io_op_name(op), (unsigned long long)off,
			 (unsigned long long)len, res,
			 ublk_copy_mode_name(dev->copy_mode));
	}
	/*
	 * Bounce mode: the address also names the buffer for the tag's next
	 * WRITE, so it is always the tag's buffer.  USER_COPY: the driver
	 * refuses any address at all, even with a failed request, but for a
	 * zone append's sector (queue_zone_op()).
	 */
	if (dev->copy_mode == UBLK_COPY_BOUNCE)
		addr = tag_buf(q, tag);
	else if ((dev->copy_mode == UBLK_COPY_USER && op != UBLK_IO_OP_ZONE_APPEND) ||
		 dev->copy_mode == UBLK_COPY_ZERO)
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
	if (rd && t->zc_off == FAULT_OFFSET && fault_at("read-error"))
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
	queue_count(q, op, t->zc_len, res);
	if (res < 0) {
		queue_report_error(q, tag, op, t->zc_off, t->zc_len, res);
		t->owned = false;
		queue_io_cmd(q, tag, UBLK_U_IO_COMMIT_AND_FETCH_REQ, IO_COMMIT, res, NULL);
		return true;
	}
	if (__builtin_expect(dev->trace, 0)) {
		char label[16];

		log_err("q%s tag %u %s off %llu len %u (zero_copy)", queue_label(q, label),
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
	/* Counted as served when it was submitted: now as failed. */
	count_add(t->zc_op == UBLK_IO_OP_READ ? &q->counts.failed_reads :
		  &q->counts.failed_writes, 1);
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
		log_err("/dev/ublkb%d queue %u tag %u: %s failed: %s", q->dev->id,
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
	if (iod.start_sector == FAULT_OFFSET >> 9 && fault_at("queue-error"))
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
int queue_fetch_all(struct ublk_queue *q)
{
	bool bounce = q->dev->copy_mode == UBLK_COPY_BOUNCE;
	const struct io_uring_cqe *refused;
	int ret;

	q->live_tags = 0;
	for (unsigned tag = first_tag(q); tag < q->depth; tag = next_tag(q, tag)) {
		q->live_tags++;
		if (tag == 0 && fault_at("fetch-missing"))
			continue;	/* START_DEV then waits for ever */
		queue_io_cmd(q, tag, UBLK_U_IO_FETCH_REQ, IO_FETCH, 0,
			     bounce ? tag_buf(q, tag) : NULL);
	}
	if (fault_at("fetch-rejected"))	/* a tag the queue lacks */
		queue_io_cmd(q, q->depth, UBLK_U_IO_FETCH_REQ, IO_FETCH, 0, NULL);
	ret = queue_submit_first(q, io_user_data(0, IO_STOP), &refused);
	if (ret == 0 && refused) {
		ret = refused->res < 0 ? refused->res : -EPROTO;
		log_err("/dev/ublkb%d queue %u tag %u: the driver refused %s: %s",
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
int queue_loop(struct ublk_queue *q)
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
int queue_zc_setup(struct ublk_queue *q)
{
	const struct ublk_dev *dev = q->dev;
	int ret;

	q->store_fd = dev->ops->file ? dev->ops->file(dev->data) : -1;
	if (q->store_fd < 0) {
		log_err("queue %u: --copy-mode zero_copy needs a backend with a file", q->q_id);
		return -EINVAL;
	}
	if (!(q->ring.features & IORING_FEAT_CQE_SKIP)) {
		log_err("queue %u: --copy-mode zero_copy needs io_uring's IOSQE_CQE_SKIP_SUCCESS (Linux 5.17)",
			 q->q_id);
		return -EOPNOTSUPP;
	}
	ret = uring_register_sparse_buffers(&q->ring, q->depth);
	if (ret < 0)
		log_err("queue %u: cannot give its ring %u buffer slots: %s", q->q_id,
			 q->depth, strerror(-ret));
	return ret;
}
