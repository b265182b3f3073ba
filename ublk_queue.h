/*
 * ublk_queue.h - a device being served, as the request path sees it: the
 * state of the device, of each queue thread and of each tag, and the
 * functions the two loops share.  Nothing outside the protocol's files
 * sees it (they see ublk.h):
 *
 *   ublk_io.c     one request, in every copy mode, and the per-request
 *                 loop of a queue thread (FETCH_REQ, COMMIT_AND_FETCH_REQ)
 *   ublk_batch.c  the batched loop (UBLK_F_BATCH_IO), serving each
 *                 request with ublk_io.c's queue_serve()
 *   ublk.c        a device's life: queue threads, add, start, stop,
 *                 recover (and, through ublk_ctrl.h, the control channel)
 *
 * Calls go down: ublk.c calls ublk_batch.c, ublk_io.c and ublk_ctrl.c;
 * ublk_batch.c calls ublk_io.c; ublk_io.c and ublk_ctrl.c call none.
 */
#ifndef UBLK_MEM_UBLK_QUEUE_H
#define UBLK_MEM_UBLK_QUEUE_H

#include "backend.h"
#include "ublk_cmd.h"
#include "ublk_io.h"
#include "uring.h"

#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <time.h>

/* ---- a device being served ---- */

/*
 * Per-tag state.  A tag is a request slot: the kernel and we pass it back
 * and forth, and at any moment exactly one side owns it.
 */
struct ublk_tag {
	bool owned;		/* we hold its request and owe the COMMIT */
	bool data_direct;	/* NEED_GET_DATA gave the backend's memory */
	int write_err;		/* NEED_GET_DATA: the WRITE was refused */
	/* zero_copy: the READ or WRITE handed to io_uring (see ublk.c). */
	bool zc_retried;	/* resubmitted once after -EAGAIN */
	uint8_t zc_op;		/* UBLK_IO_OP_READ or _WRITE */
	uint32_t zc_len;
	uint64_t zc_off;
};

struct ublk_dev;
struct ublk_batch;

/*
 * What a serving thread has served (ublk_io_stats()).  Its thread alone
 * writes them; another thread may read them at any time, so they are
 * atomics, updated without a locked instruction (relaxed load and store).
 */
struct queue_counts {
	_Atomic uint64_t reads, writes, discards, write_zeroes, flushes;
	_Atomic uint64_t read_bytes, written_bytes;
	_Atomic uint64_t failed_reads, failed_writes;
};

/*
 * One serving thread.  Usually a queue has one, which owns all its tags;
 * with PER_IO_DAEMON a queue may have several (dev->lanes), and thread
 * `lane` owns the tags t with t % lanes == lane.  Each has its own ring:
 * the driver sends a tag's requests to the thread that fetched it.
 */
struct ublk_queue {
	struct ublk_dev *dev;
	unsigned q_id;
	unsigned lane;			/* its first tag; the step is dev->lanes */
	unsigned depth;
	struct uring ring;		/* this queue's own ring */
	const struct ublksrv_io_desc *descs;	/* kernel-written, by tag */
	size_t descs_len;
	char *bufs;			/* per-tag buffers, dev->buf_bytes each */
	size_t bufs_len;
	char *sink;			/* where refused WRITE data is dropped */
	struct ublk_tag *tags;
	unsigned live_tags;		/* tags not yet retired */
	unsigned errors_reported;
	int stop_fd;			/* eventfd: "end now, stop nothing" */
	uint64_t stop_val;		/* the eventfd read lands here */
	unsigned held;			/* requests still ours when it ended */
	struct queue_counts counts;
	struct ublk_batch *batch;	/* ublk_batch.c's state, or NULL */
	int store_fd;			/* zero_copy: the backend's file */
	cpu_set_t affinity;
	pthread_t thread;
	bool started;
	int err;			/* why the thread ended, or 0 */
};

struct ublk_dev {
	struct ublk_ctrl *ctrl;
	const struct backend_ops *ops;
	void *data;
	struct ublksrv_ctrl_dev_info info;
	struct ublk_params params;
	enum ublk_copy_mode copy_mode;
	bool as_swap;	/* ublk_config's */
	bool batch;			/* UBLK_F_BATCH_IO: ublk_batch.c serves */
	unsigned buf_bytes;		/* per-tag buffer, the largest request */
	unsigned poll_us;
	unsigned lanes;			/* threads per queue (PER_IO_DAEMON) */
	bool trace;
	bool recovering;		/* made by ublk_attach() */
	bool owned;			/* ours: added, or recovery started */
	/*
	 * Its data matters: it has been live, a recovery of it started, or
	 * the backend held data already (ublk_config.holds_data).
	 */
	bool had_data;
	bool went_live;			/* START_DEV / END_USER_RECOVERY done */
	bool stopped_cleanly;		/* see ublk_stopped_cleanly() */
	bool start_cancelled;		/* START_DEV / END_USER_RECOVERY given up */
	bool stopped_kept;		/* stopped, but kept (see ublk_run()) */
	bool needs_rebuild;		/* see ublk_needs_rebuild() */
	bool kept;			/* not stopped: left for recovery */
	int id;
	int cdev_fd;
	struct ublk_queue *queues;
	sem_t setup_done;		/* posted once by each queue thread */
	atomic_bool stopping;		/* main thread has begun teardown */
	atomic_bool queue_ended;	/* a queue thread ended by itself */
	int event_fd;			/* ... and said so here (ublk_event_fd()) */
	bool stop_asked;		/* the caller gave up the start */
	bool try_stopped;		/* TRY_STOP_DEV stopped it */
	bool handed_over;		/* ublk_hand_over(): end, keep it */
	bool quiesced;			/* ... after QUIESCE_DEV drained it */
	unsigned held;			/* requests ours when the queues ended */
};

/* Walk the tags thread @q owns: for (tag = first_tag(q); ...) */
static inline unsigned first_tag(const struct ublk_queue *q)
{
	return q->lane;
}

static inline unsigned next_tag(const struct ublk_queue *q, unsigned tag)
{
	return tag + q->dev->lanes;
}

/* Tag @tag's buffer: the thread keeps one for each tag it owns. */
static inline char *tag_buf(const struct ublk_queue *q, unsigned tag)
{
	return q->bufs + (size_t)(tag / q->dev->lanes) * q->dev->buf_bytes;
}

/* ---- in ublk_io.c, for both paths and for ublk.c ---- */

/*
 * Serve the request @tag now owned, described by @iod, with the backend:
 * returns the COMMIT result (bytes or -errno) and in *addr the address to
 * commit with (NULL where the copy mode takes none).  Reports failures.
 */
int queue_serve(struct ublk_queue *q, unsigned tag,
		const struct ublksrv_io_desc *iod, void **addr);

/*
 * Arm the stop eventfd and submit the queue's first commands; *refused is
 * the first CQE of one the driver refused at once, else NULL (see ublk.c).
 */
int queue_submit_first(struct ublk_queue *q, uint64_t stop_data,
		       const struct io_uring_cqe **refused);

/* How long to spin before sleeping (see ublk_io.c), and the wait itself. */
unsigned spin_time(unsigned poll_us, bool busy, bool several);
int queue_wait(struct ublk_queue *q, unsigned spin_us);

/*
 * The per-request path: hand every tag to the driver (FETCH_REQ), and
 * serve until every tag is retired or the thread is told to end.
 */
int queue_fetch_all(struct ublk_queue *q);
int queue_loop(struct ublk_queue *q);

/* zero_copy: the ring's buffer slots and the backend's file. */
int queue_zc_setup(struct ublk_queue *q);

/* "Q" or, with several threads per queue, "Q.LANE": for names and traces. */
const char *queue_label(const struct ublk_queue *q, char buf[16]);

/* ---- in ublk_batch.c, the batched path ---- */

/* SQEs for a batch queue's ring of depth @depth. */
unsigned batch_ring_entries(unsigned depth);

/* PREP every tag and arm the FETCHes (the batch queue_fetch_all()). */
int batch_fetch_all(struct ublk_queue *q);

/* Serve until the queue is retired or told to end (see queue_loop()). */
int batch_loop(struct ublk_queue *q);

/* Free the batch state; after the queue's ring is closed. */
void batch_release(struct ublk_queue *q);

/*
 * The pure parts, for the unit tests.  An element of PREP / COMMIT is a
 * struct ublk_elem_header, then the buffer address with HAS_BUF_ADDR.
 */
unsigned batch_elem_bytes(uint16_t flags);
void batch_elem_put(void *elems, uint16_t flags, unsigned i, unsigned tag,
		    int32_t result, uint64_t addr);
/* Provided buffers for FETCH: how many, and the bytes of each. */
void batch_fetch_sizes(unsigned depth, unsigned *nbufs, unsigned *buf_len);
/*
 * Take the @n tags a FETCH delivered: mark each owned and append it to
 * @ready (*nr_ready of them so far).  -EPROTO on a tag out of range or
 * one already owned, which leaves the rest untaken.
 */
int batch_take_tags(const uint16_t *tags, unsigned n, unsigned depth,
		    struct ublk_tag *state, uint16_t *ready, unsigned *nr_ready);

#endif
