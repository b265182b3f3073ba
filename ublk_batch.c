/*
 * ublk_batch.c - the batched data path (UBLK_F_BATCH_IO, Linux 7.0).
 * Read ublk.c first: this file replaces only its queue loop.
 *
 * ublk.c's queue thread keeps one command per tag in the kernel: each
 * request costs a CQE (the FETCH completing) and an SQE (the
 * COMMIT_AND_FETCH that answers it and waits for the next), and a WRITE
 * with NEED_GET_DATA a round trip more.  A device made with
 * UBLK_F_BATCH_IO takes none of those commands.  Instead, per queue:
 *
 *   PREP_IO_CMDS     once, at start: one command lists every tag ("these
 *                    slots are ready"), with each tag's buffer in bounce
 *                    mode.  START_DEV waits for it as for the FETCHes.
 *   FETCH_IO_CMDS    multishot: armed once, it posts a CQE whenever the
 *                    driver has requests, the CQE naming a provided buffer
 *                    (uring.c) into which it wrote their tags, 16 bits each.
 *   COMMIT_IO_CMDS   one command answers every request served since the
 *                    last: an array of {tag, result, buffer} elements.
 *
 * So one pass of the loop is: wait; take the tags of every FETCH CQE and
 * give the buffers back to the ring; serve each request as ublk.c does
 * (queue_serve()); answer them all with one COMMIT, submitted with the
 * next wait.  However many requests a batch holds, it costs one CQE in,
 * one SQE out and one CQE for the COMMIT's answer.
 *
 * Copy modes: the driver has no NEED_GET_DATA here.  In bounce mode it
 * copies WRITE data into the tag's buffer before the tag is fetched, and
 * READ data out of the buffer the COMMIT names, which is also where the
 * tag's next WRITE lands - so, as in ublk.c's bounce mode, it is always
 * the tag's own buffer.  USER_COPY works as in ublk.c.
 *
 * Ending: STOP_DEV (and QUIESCE_DEV) complete the FETCHes with
 * UBLK_IO_RES_ABORT once the requests in flight are answered; the loop
 * then ends, as ublk.c's does when every tag is retired.  The driver does
 * not abort a FETCH that is busy delivering at that moment, so two are
 * armed: at least one reports the end.  Closing the ring cancels the other.
 * A recovering server does what a new one does (PREP, FETCH): the kernel
 * re-issues the requests the dead one held, as in ublk.c.
 */
#define _GNU_SOURCE
#include "fault.h"
#include "log.h"
#include "ublk_queue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* FETCH_IO_CMDS kept armed per queue (see "Ending" above). */
#define BATCH_FETCHES		2
/* The buffer group of the tags; each ring has its own groups. */
#define BATCH_BGID		0
/* The driver writes at most this many tags per CQE (MAX_NR_TAG, 7.0-7.3). */
#define BATCH_TAGS_PER_CQE	128
#define BATCH_MAX_BUFS		128
#define BATCH_UNUSED_TAG	0xffff

/* Per-queue state of the batched path. */
struct ublk_batch {
	struct uring_buf_ring br;	/* where FETCH writes tags */
	uint16_t *tag_bufs;		/* nbufs buffers, buf_len bytes each */
	size_t tag_bufs_len;
	unsigned nbufs;
	unsigned buf_len;
	bool armed[BATCH_FETCHES];	/* this FETCH is in the kernel */
	bool rearm[BATCH_FETCHES];	/* ... it ended and goes again */
	bool retired;			/* a FETCH answered ABORT */
	uint16_t elem_flags;		/* UBLK_BATCH_F_* of PREP and COMMIT */
	unsigned elem_bytes;
	char *elems;			/* the PREP / COMMIT array */
	bool commit_busy;		/* the kernel has not answered it yet */
	uint16_t *ready;		/* tags fetched, not yet served */
	unsigned nr_ready;
};

/*
 * user_data of the batch commands: the kind in bits 16-23, and in bits
 * 0-15 the FETCH's slot or the number of elements of a PREP or COMMIT.
 */
enum batch_kind { B_PREP = 1, B_FETCH = 2, B_COMMIT = 3, B_STOP = 4 };

static inline uint64_t batch_user_data(enum batch_kind kind, unsigned arg)
{
	_Static_assert(UBLK_MAX_QUEUE_DEPTH <= 0x10000, "an element count fits 16 bits");
	return (uint64_t)(arg & 0xffff) | (uint64_t)kind << 16;
}

static inline unsigned batch_ud_arg(uint64_t ud)
{
	return ud & 0xffff;
}

static inline enum batch_kind batch_ud_kind(uint64_t ud)
{
	return (enum batch_kind)((ud >> 16) & 0xff);
}

/* ---- the pure parts ---- */

unsigned batch_elem_bytes(uint16_t flags)
{
	return sizeof(struct ublk_elem_header) +
	       ((flags & UBLK_BATCH_F_HAS_BUF_ADDR) ? sizeof(uint64_t) : 0) +
	       ((flags & UBLK_BATCH_F_HAS_ZONE_LBA) ? sizeof(uint64_t) : 0);
}

void batch_elem_put(void *elems, uint16_t flags, unsigned i, unsigned tag,
		    int32_t result, uint64_t addr)
{
	char *e = (char *)elems + (size_t)i * batch_elem_bytes(flags);
	struct ublk_elem_header h = {
		.tag = (uint16_t)tag,
		.result = result,
	};

	memcpy(e, &h, sizeof(h));
	if (flags & UBLK_BATCH_F_HAS_BUF_ADDR)
		memcpy(e + sizeof(h), &addr, sizeof(addr));
}

static unsigned round_up_pow2(unsigned v)
{
	unsigned p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

/*
 * Every FETCH CQE takes one buffer, and each holds at least one tag we do
 * not yet own, so with a buffer per tag the ring can never run dry before
 * we read the CQEs; deeper queues get BATCH_MAX_BUFS and may run dry,
 * which only ends a FETCH with -ENOBUFS (it is armed again).
 */
void batch_fetch_sizes(unsigned depth, unsigned *nbufs, unsigned *buf_len)
{
	unsigned tags = depth < BATCH_TAGS_PER_CQE ? depth : BATCH_TAGS_PER_CQE;

	*nbufs = depth < BATCH_MAX_BUFS ? round_up_pow2(depth) : BATCH_MAX_BUFS;
	*buf_len = (tags * (unsigned)sizeof(uint16_t) + 7) / 8 * 8;
}

int batch_take_tags(const uint16_t *tags, unsigned n, unsigned depth,
		    struct ublk_tag *state, uint16_t *ready, unsigned *nr_ready)
{
	for (unsigned i = 0; i < n; i++) {
		unsigned tag = tags[i];

		if (tag == BATCH_UNUSED_TAG)
			continue;	/* a slot the driver took back */
		if (tag >= depth || state[tag].owned)
			return -EPROTO;
		state[tag].owned = true;
		ready[(*nr_ready)++] = (uint16_t)tag;
	}
	return 0;
}

unsigned batch_ring_entries(unsigned depth)
{
	unsigned nbufs, buf_len;

	/* The CQ, twice the SQ, holds a CQE per buffer and the rest. */
	batch_fetch_sizes(depth, &nbufs, &buf_len);
	return nbufs + 8;
}

/* ---- commands ---- */

static const char *batch_cmd_name(enum batch_kind kind)
{
	return kind == B_PREP ? "PREP_IO_CMDS" : kind == B_FETCH ? "FETCH_IO_CMDS" :
	       kind == B_COMMIT ? "COMMIT_IO_CMDS" : "stop";
}

static inline uint16_t *fetch_buf(const struct ublk_batch *b, unsigned bid)
{
	return b->tag_bufs + (size_t)bid * (b->buf_len / sizeof(uint16_t));
}

/* Queue a PREP or COMMIT of the first @nr elements of b->elems. */
static int batch_queue_elems(struct ublk_queue *q, enum batch_kind kind,
			     uint32_t op, unsigned nr)
{
	struct ublk_batch *b = q->batch;
	struct ublk_batch_io cmd = {
		.q_id = (uint16_t)q->q_id,
		.flags = b->elem_flags,
		.nr_elem = (uint16_t)nr,
		.elem_bytes = (uint8_t)b->elem_bytes,
	};
	struct io_uring_sqe *sqe = uring_get_sqe(&q->ring);

	if (!sqe)
		return -EBUSY;	/* cannot happen: see batch_ring_entries() */
	uring_prep_cmd(sqe, q->dev->cdev_fd, op, &cmd, sizeof(cmd),
		       batch_user_data(kind, nr));
	/* The array stays untouched until the command's CQE (commit_busy). */
	sqe->addr = (uint64_t)(uintptr_t)b->elems;
	sqe->len = nr * b->elem_bytes;
	return 0;
}

/* Arm FETCH number @slot: it stays in the kernel, posting tags. */
static int batch_arm_fetch(struct ublk_queue *q, unsigned slot)
{
	struct ublk_batch *b = q->batch;
	struct ublk_batch_io cmd = {
		.q_id = (uint16_t)q->q_id,
		.nr_elem = (uint16_t)(b->buf_len / sizeof(uint16_t)),
		.elem_bytes = sizeof(uint16_t),
	};
	struct io_uring_sqe *sqe = uring_get_sqe(&q->ring);

	if (!sqe)
		return -EBUSY;
	uring_prep_cmd_multishot(sqe, q->dev->cdev_fd, UBLK_U_IO_FETCH_IO_CMDS,
				 &cmd, sizeof(cmd), BATCH_BGID,
				 batch_user_data(B_FETCH, slot));
	b->armed[slot] = true;
	b->rearm[slot] = false;
	if (__builtin_expect(q->dev->trace, 0))
		log_err("q%u FETCH_IO_CMDS %u armed", q->q_id, slot);
	return 0;
}

/* ---- setup ---- */

/* The buffers, the arrays and the provided-buffer ring of a queue. */
static int batch_alloc(struct ublk_queue *q)
{
	struct ublk_batch *b = calloc(1, sizeof(*b));
	int ret;

	if (!b)
		return -ENOMEM;
	q->batch = b;
	batch_fetch_sizes(q->depth, &b->nbufs, &b->buf_len);
	if (fault_at("batch-one-buffer"))
		b->nbufs = 1;	/* FETCHes run dry and are armed again */
	b->elem_flags = q->dev->copy_mode == UBLK_COPY_BOUNCE ?
			UBLK_BATCH_F_HAS_BUF_ADDR : 0;
	b->elem_bytes = batch_elem_bytes(b->elem_flags);
	/* One element more: the test hook "fetch-rejected" adds a tag. */
	b->elems = calloc(q->depth + 1, b->elem_bytes);
	b->ready = calloc(q->depth, sizeof(*b->ready));
	b->tag_bufs_len = (size_t)b->nbufs * b->buf_len;
	b->tag_bufs = mmap(NULL, b->tag_bufs_len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (b->tag_bufs == MAP_FAILED) {
		b->tag_bufs = NULL;
		return -ENOMEM;
	}
	mlock(b->tag_bufs, b->tag_bufs_len);	/* best effort */
	if (!b->elems || !b->ready)
		return -ENOMEM;
	ret = uring_buf_ring_init(&q->ring, &b->br, b->nbufs, BATCH_BGID);
	if (ret < 0)
		return ret;
	for (unsigned bid = 0; bid < b->nbufs; bid++)
		uring_buf_ring_add(&b->br, fetch_buf(b, bid), b->buf_len, (uint16_t)bid);
	uring_buf_ring_publish(&b->br);
	return 0;
}

/* PREP every tag and wait for the answer; 0 or -errno (reported). */
static int batch_prep(struct ublk_queue *q)
{
	struct ublk_batch *b = q->batch;
	bool bounce = q->dev->copy_mode == UBLK_COPY_BOUNCE;
	struct io_uring_cqe *cqe;
	unsigned n = 0;
	int ret;

	for (unsigned tag = 0; tag < q->depth; tag++) {
		if (tag == 0 && fault_at("fetch-missing"))
			continue;	/* START_DEV then waits for ever */
		batch_elem_put(b->elems, b->elem_flags, n++, tag, 0,
			       bounce ? (uint64_t)(uintptr_t)tag_buf(q, tag) : 0);
	}
	if (fault_at("fetch-rejected"))	/* a tag the queue lacks */
		batch_elem_put(b->elems, b->elem_flags, n++, q->depth, 0,
			       bounce ? (uint64_t)(uintptr_t)tag_buf(q, 0) : 0);
	ret = batch_queue_elems(q, B_PREP, UBLK_U_IO_PREP_IO_CMDS, n);
	if (ret < 0)
		return ret;
	/* The driver handles PREP at once; nothing else is in flight yet. */
	ret = uring_wait_cqe(&q->ring, &cqe);
	if (ret < 0)
		return ret;
	ret = cqe->res;
	uring_cq_advance(&q->ring, 1);
	if (q->dev->trace)
		log_err("q%u PREP_IO_CMDS of %u tags -> %d", q->q_id, n, ret);
	if (ret < 0)
		log_err("/dev/ublkb%d queue %u: the driver refused PREP_IO_CMDS: %s",
			 q->dev->id, q->q_id, strerror(-ret));
	return ret < 0 ? ret : 0;
}

/*
 * The batched queue_fetch_all(): PREP the tags, then arm the FETCHes and
 * the stop eventfd's read.  FETCHes go after the PREP's answer: until a
 * queue's tags are all ready, a recovering device turns FETCHes away.  A
 * FETCH the driver refuses completes at once, so any CQE now is that.
 */
int batch_fetch_all(struct ublk_queue *q)
{
	const struct io_uring_cqe *refused;
	int ret;

	ret = batch_alloc(q);
	if (ret < 0) {
		log_err("/dev/ublkb%d queue %u: cannot set up batched commands: %s",
			 q->dev->id, q->q_id, strerror(-ret));
		return ret;
	}
	ret = batch_prep(q);
	if (ret < 0)
		return ret;
	for (unsigned slot = 0; slot < BATCH_FETCHES; slot++)
		batch_arm_fetch(q, slot);
	ret = queue_submit_first(q, batch_user_data(B_STOP, 0), &refused);
	if (ret == 0 && refused) {
		ret = refused->res < 0 ? refused->res : -EPROTO;
		log_err("/dev/ublkb%d queue %u: the driver refused %s: %s",
			 q->dev->id, q->q_id, batch_cmd_name(batch_ud_kind(refused->user_data)),
			 strerror(-ret));
	}
	return ret;
}

void batch_release(struct ublk_queue *q)
{
	struct ublk_batch *b = q->batch;

	if (!b)
		return;
	/* The ring is closed: nothing writes into the buffers any more. */
	uring_buf_ring_exit(&q->ring, &b->br);
	if (b->tag_bufs)
		munmap(b->tag_bufs, b->tag_bufs_len);
	free(b->elems);
	free(b->ready);
	free(b);
	q->batch = NULL;
}

/* ---- the loop ---- */

/*
 * A FETCH CQE: take its tags and give its buffer back to the ring (seen
 * by the kernel at the next uring_buf_ring_publish()).  Its last CQE (no
 * F_MORE) says why it ended: ABORT retires the queue, a dry buffer ring
 * (-ENOBUFS) only means arming it again.
 */
static int batch_fetched(struct ublk_queue *q, const struct io_uring_cqe *cqe)
{
	struct ublk_batch *b = q->batch;
	unsigned slot = batch_ud_arg(cqe->user_data);
	int ret = 0;

	if (slot >= BATCH_FETCHES)
		return -EPROTO;
	if (cqe->flags & IORING_CQE_F_BUFFER) {
		unsigned bid = uring_cqe_buf_id(cqe);

		if (bid >= b->nbufs)
			return -EPROTO;
		/*
		 * The kernel wrote the tags before posting the CQE, and
		 * uring_cq_ready()'s acquire of the CQ tail ordered these
		 * reads after it.
		 */
		if (cqe->res > 0)
			ret = batch_take_tags(fetch_buf(b, bid),
					      (unsigned)cqe->res / sizeof(uint16_t), q->depth,
					      q->tags, b->ready, &b->nr_ready);
		uring_buf_ring_add(&b->br, fetch_buf(b, bid), b->buf_len, (uint16_t)bid);
		if (ret < 0) {
			log_err("/dev/ublkb%d queue %u: the driver fetched a tag that is not free",
				 q->dev->id, q->q_id);
			return ret;
		}
		if (__builtin_expect(q->dev->trace, 0))
			log_err("q%u FETCH_IO_CMDS %u: %d tags", q->q_id, slot,
				 cqe->res / (int)sizeof(uint16_t));
	}
	if (cqe->flags & IORING_CQE_F_MORE)
		return 0;
	b->armed[slot] = false;
	if (cqe->res == UBLK_IO_RES_ABORT) {
		b->retired = true;	/* the device is going away */
	} else if (cqe->res == -ENOBUFS || cqe->res >= 0) {
		b->rearm[slot] = true;
		if (__builtin_expect(q->dev->trace, 0))
			log_err("q%u FETCH_IO_CMDS %u ended: %s", q->q_id, slot,
				 cqe->res < 0 ? "no buffer left" : "done");
	} else {
		log_err("/dev/ublkb%d queue %u: FETCH_IO_CMDS failed: %s",
			 q->dev->id, q->q_id, strerror(-cqe->res));
		return cqe->res;
	}
	return 0;
}

/* The answer to a COMMIT: every element handled, or a fatal error. */
static int batch_committed(struct ublk_queue *q, const struct io_uring_cqe *cqe)
{
	struct ublk_batch *b = q->batch;
	unsigned nr = batch_ud_arg(cqe->user_data);

	b->commit_busy = false;
	if (__builtin_expect(q->dev->trace, 0))
		log_err("q%u COMMIT_IO_CMDS of %u requests -> %d", q->q_id, nr, cqe->res);
	if (cqe->res == (int)(nr * b->elem_bytes))
		return 0;
	if (cqe->res < 0)
		log_err("/dev/ublkb%d queue %u: COMMIT_IO_CMDS of %u requests failed: %s",
			 q->dev->id, q->q_id, nr, strerror(-cqe->res));
	else
		log_err("/dev/ublkb%d queue %u: COMMIT_IO_CMDS: the driver took %u of %u requests",
			 q->dev->id, q->q_id, cqe->res / b->elem_bytes, nr);
	return cqe->res < 0 ? cqe->res : -EPROTO;
}

/* One CQE: 0, 1 when told to end (the stop eventfd), or -errno (fatal). */
static int batch_handle_cqe(struct ublk_queue *q, const struct io_uring_cqe *cqe)
{
	switch (batch_ud_kind(cqe->user_data)) {
	case B_STOP:
		return 1;
	case B_FETCH:
		return batch_fetched(q, cqe);
	case B_COMMIT:
		return batch_committed(q, cqe);
	default:
		return -EPROTO;
	}
}

/*
 * Serve every fetched request and queue one COMMIT for them all.  The
 * COMMIT array is the kernel's to read until its answer, so while one is
 * in flight (only when a submit fell short) the requests wait a pass.
 */
static int batch_serve_ready(struct ublk_queue *q)
{
	struct ublk_batch *b = q->batch;
	struct ublksrv_io_desc iod;
	unsigned n = b->nr_ready;
	void *addr;
	int res;

	if (!n || b->commit_busy)
		return 0;
	for (unsigned i = 0; i < n; i++) {
		unsigned tag = b->ready[i];

		/*
		 * The kernel filled the descriptor before posting the tag
		 * (see batch_fetched()) and leaves it alone until the COMMIT.
		 */
		iod = q->descs[tag];
		if (iod.start_sector == (1 << 20) >> 9 && fault_at("queue-error"))
			return -EIO;	/* as if serving had failed for good */
		res = queue_serve(q, tag, &iod, &addr);
		batch_elem_put(b->elems, b->elem_flags, i, tag, res,
			       (uint64_t)(uintptr_t)addr);
	}
	b->nr_ready = 0;
	res = batch_queue_elems(q, B_COMMIT, UBLK_U_IO_COMMIT_IO_CMDS, n);
	if (res < 0)
		return res;
	b->commit_busy = true;
	return 0;
}

/*
 * The batched queue_loop(): wait, take what every CQE brought, serve it,
 * queue one COMMIT (and the FETCHes that ended), and submit it all with
 * the next wait.  Ends when the driver retires the queue (ABORT), when
 * told to stop, or on an error.
 */
int batch_loop(struct ublk_queue *q)
{
	struct ublk_batch *b = q->batch;
	bool busy = false, several = false, told_to_end = false;
	int ret = 0;

	while (!b->retired && !told_to_end) {
		unsigned n;

		ret = queue_wait(q, spin_time(q->dev->poll_us, busy, several));
		if (ret < 0)
			return ret;
		busy = ret == 1;
		n = uring_cq_ready(&q->ring);
		for (unsigned i = 0; i < n; i++) {
			ret = batch_handle_cqe(q, uring_cqe_at(&q->ring, i));
			if (ret < 0) {
				uring_cq_advance(&q->ring, n);
				return ret;
			}
			told_to_end |= ret == 1;
		}
		uring_cq_advance(&q->ring, n);
		uring_buf_ring_publish(&b->br);
		several = b->nr_ready > 1;
		busy |= several;
		ret = batch_serve_ready(q);
		if (ret < 0)
			return ret;
		for (unsigned slot = 0; slot < BATCH_FETCHES && !b->retired; slot++)
			if (b->rearm[slot])
				batch_arm_fetch(q, slot);
	}
	/* Retired or told to end: answer what this pass served. */
	uring_submit(&q->ring);
	for (unsigned tag = 0; tag < q->depth; tag++)
		q->held += q->tags[tag].owned;
	return 0;
}
