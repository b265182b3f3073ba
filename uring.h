/*
 * uring.h - a small io_uring wrapper built directly on the system calls.
 *
 * io_uring is a pair of ring buffers shared between a process and the
 * kernel.  The process writes submission queue entries (SQEs) into the
 * submission queue (SQ) and moves its tail; the kernel consumes them and
 * posts completion queue entries (CQEs) into the completion queue (CQ),
 * moving that ring's tail, which the process follows with the head.
 * One system call, io_uring_enter(), both hands new SQEs to the kernel and
 * waits for completions.
 *
 * This header carries the kernel ABI definitions the project needs (the
 * subset of <linux/io_uring.h>), so the project builds against any libc,
 * including musl without kernel headers.  uring.c implements the rings.
 */
#ifndef UBLK_MEM_URING_H
#define UBLK_MEM_URING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- kernel ABI (include/uapi/linux/io_uring.h) ---- */

/*
 * One submission queue entry.  A normal ring has 64-byte SQEs; a ring
 * created with IORING_SETUP_SQE128 has 128-byte SQEs whose second half
 * extends the command area (cmd[]) used by IORING_OP_URING_CMD.
 */
struct io_uring_sqe {
	uint8_t opcode;		/* IORING_OP_* */
	uint8_t flags;		/* IOSQE_* */
	uint16_t ioprio;
	int32_t fd;		/* file the operation works on */
	union {
		uint64_t off;	/* file offset */
		struct {
			uint32_t cmd_op;	/* URING_CMD: driver opcode */
			uint32_t __pad1;
		};
	};
	uint64_t addr;		/* buffer address */
	uint32_t len;		/* buffer length */
	union {
		uint32_t rw_flags;
		uint32_t uring_cmd_flags;	/* URING_CMD: IORING_URING_CMD_* */
	};
	uint64_t user_data;	/* echoed back in the CQE */
	union {
		uint16_t buf_index;
		uint16_t buf_group;	/* IOSQE_BUFFER_SELECT: pick from this group */
	};
	uint16_t personality;
	int32_t splice_fd_in;
	union {
		uint64_t addr3;
		uint8_t cmd[0];	/* URING_CMD payload: 16 bytes, 80 with SQE128 */
	};
	uint64_t __pad2[1];
};

/* One completion queue entry; CQE32 rings append 16 more bytes (big_cqe). */
struct io_uring_cqe {
	uint64_t user_data;	/* copied from the SQE */
	int32_t res;		/* result: >= 0 success, -errno failure */
	uint32_t flags;		/* IORING_CQE_F_* */
	uint64_t big_cqe[];
};

enum {
	IORING_OP_NOP = 0,
	IORING_OP_READ_FIXED = 4,	/* read into registered buffer buf_index */
	IORING_OP_WRITE_FIXED = 5,	/* write from registered buffer buf_index */
	IORING_OP_ASYNC_CANCEL = 14,
	IORING_OP_READ = 22,
	IORING_OP_WRITE = 23,
	IORING_OP_URING_CMD = 46,
};

/* io_uring_sqe.flags */
#define IOSQE_IO_LINK			(1U << 2)	/* the next SQE runs after this
							   one, and only if it succeeds */
#define IOSQE_ASYNC			(1U << 4)	/* run it in a worker thread */
#define IOSQE_BUFFER_SELECT		(1U << 5)	/* the kernel picks the buffer */
#define IOSQE_CQE_SKIP_SUCCESS		(1U << 6)	/* no CQE unless it fails */

/* io_uring_sqe.uring_cmd_flags */
#define IORING_URING_CMD_MULTISHOT	(1U << 1)	/* one SQE, many CQEs; needs
							   IOSQE_BUFFER_SELECT */

/*
 * io_uring_cqe.flags.  A request that stays armed after posting a CQE
 * (multishot) sets F_MORE; its last CQE comes without.  A CQE whose data
 * went into a provided buffer sets F_BUFFER and names the buffer's id in
 * the upper 16 bits.
 */
#define IORING_CQE_F_BUFFER		(1U << 0)
#define IORING_CQE_F_MORE		(1U << 1)
#define IORING_CQE_BUFFER_SHIFT		16

/* io_uring_params.flags */
#define IORING_SETUP_CLAMP		(1U << 4)
#define IORING_SETUP_SUBMIT_ALL		(1U << 7)
#define IORING_SETUP_COOP_TASKRUN	(1U << 8)
#define IORING_SETUP_SQE128		(1U << 10)
#define IORING_SETUP_CQE32		(1U << 11)
#define IORING_SETUP_SINGLE_ISSUER	(1U << 12)
#define IORING_SETUP_DEFER_TASKRUN	(1U << 13)

/* io_uring_params.features */
#define IORING_FEAT_SINGLE_MMAP		(1U << 0)
#define IORING_FEAT_NODROP		(1U << 1)
#define IORING_FEAT_EXT_ARG		(1U << 8)
#define IORING_FEAT_CQE_SKIP		(1U << 11)	/* IOSQE_CQE_SKIP_SUCCESS */

/* io_uring_enter() flags */
#define IORING_ENTER_GETEVENTS		(1U << 0)
#define IORING_ENTER_EXT_ARG		(1U << 3)

/* io_uring_enter()'s argument with IORING_ENTER_EXT_ARG (Linux 5.11+). */
struct io_uring_getevents_arg {
	uint64_t sigmask;	/* sigset_t *, or 0 */
	uint32_t sigmask_sz;
	uint32_t min_wait_usec;
	uint64_t ts;		/* struct uring_timespec *: longest wait */
};

/* io_uring_register() opcodes */
enum {
	IORING_REGISTER_BUFFERS2 = 15,
	IORING_REGISTER_PBUF_RING = 22,
	IORING_UNREGISTER_PBUF_RING = 23,
};

/*
 * A ring of provided buffers (Linux 5.19): an array of these in memory we
 * share with the kernel.  The ring's tail, written by us, overlays the
 * resv field of entry 0 (struct io_uring_buf_ring in the kernel header),
 * so entry 0 is written field by field, never whole.
 */
struct io_uring_buf {
	uint64_t addr;
	uint32_t len;
	uint16_t bid;		/* the id a CQE names the buffer by */
	uint16_t resv;		/* entry 0: the ring's tail */
};

#define IO_URING_BUF_TAIL_OFF	14	/* offsetof(struct io_uring_buf, resv) */

/* IORING_REGISTER_PBUF_RING's argument. */
struct io_uring_buf_reg {
	uint64_t ring_addr;	/* page-aligned memory for the entries */
	uint32_t ring_entries;	/* a power of two, below 65536 */
	uint16_t bgid;		/* the group SQEs name in buf_group */
	uint16_t flags;
	uint64_t resv[3];
};

/*
 * IORING_REGISTER_BUFFERS2's argument.  With IORING_RSRC_REGISTER_SPARSE
 * it makes a table of @nr empty fixed-buffer slots (Linux 5.19).
 */
struct io_uring_rsrc_register {
	uint32_t nr;
	uint32_t flags;
	uint64_t resv2;
	uint64_t data;		/* an array of struct iovec, or 0 */
	uint64_t tags;
};

#define IORING_RSRC_REGISTER_SPARSE	(1U << 0)

struct uring_timespec {		/* struct __kernel_timespec */
	int64_t tv_sec;
	int64_t tv_nsec;
};

/* mmap offsets of the three regions */
#define IORING_OFF_SQ_RING		0ULL
#define IORING_OFF_CQ_RING		0x8000000ULL
#define IORING_OFF_SQES			0x10000000ULL

struct io_sqring_offsets {
	uint32_t head, tail, ring_mask, ring_entries, flags, dropped, array;
	uint32_t resv1;
	uint64_t user_addr;
};

struct io_cqring_offsets {
	uint32_t head, tail, ring_mask, ring_entries, overflow, cqes, flags;
	uint32_t resv1;
	uint64_t user_addr;
};

struct io_uring_params {
	uint32_t sq_entries;
	uint32_t cq_entries;
	uint32_t flags;
	uint32_t sq_thread_cpu;
	uint32_t sq_thread_idle;
	uint32_t features;
	uint32_t wq_fd;
	uint32_t resv[3];
	struct io_sqring_offsets sq_off;
	struct io_cqring_offsets cq_off;
};

/* ---- the wrapper ---- */

/* Submission ring: k* fields point into memory shared with the kernel. */
struct uring_sq {
	unsigned *khead;	/* kernel advances: SQEs it has consumed */
	unsigned *ktail;	/* we advance: SQEs we have published */
	unsigned *kflags;
	unsigned *kdropped;
	unsigned *karray;	/* slot -> SQE index indirection */
	unsigned ring_mask;
	unsigned ring_entries;
	unsigned sqe_tail;	/* next SQE we will hand out (local) */
	unsigned sqe_head;	/* first SQE not yet published (local) */
	char *sqes;		/* SQE array, sqe_size bytes each */
};

/* Completion ring. */
struct uring_cq {
	unsigned *khead;	/* we advance: CQEs we have consumed */
	unsigned *ktail;	/* kernel advances: CQEs it has posted */
	unsigned *koverflow;
	char *cqes;		/* CQE array, cqe_size bytes each */
	unsigned ring_mask;
	unsigned ring_entries;
};

struct uring {
	int fd;
	unsigned flags;		/* IORING_SETUP_* the ring was made with */
	unsigned features;	/* IORING_FEAT_* the kernel reported */
	unsigned sqe_size;	/* 64, or 128 with SQE128 */
	unsigned cqe_size;	/* 16, or 32 with CQE32 */
	struct uring_sq sq;
	struct uring_cq cq;
	void *sq_map;		/* the three mappings, for teardown */
	size_t sq_map_len;
	void *cq_map;		/* == sq_map with IORING_FEAT_SINGLE_MMAP */
	size_t cq_map_len;
	void *sqe_map;
	size_t sqe_map_len;
};

/*
 * Create a ring with room for @entries SQEs (a power of two is not
 * required; the kernel rounds up).  @flags are IORING_SETUP_* flags.
 * Returns 0 or -errno; on failure @r holds nothing to release.
 */
int uring_init(struct uring *r, unsigned entries, unsigned flags);

/*
 * Like uring_init(), but @flags are wishes: flags the kernel rejects with
 * EINVAL are dropped one by one, in the order given in @optional, until it
 * accepts.  @required flags are always kept.
 */
int uring_init_best(struct uring *r, unsigned entries, unsigned required,
		    const unsigned *optional, unsigned n_optional);

/*
 * Unmap the rings and close the ring descriptor.  Safe on a zeroed ring,
 * after a failed uring_init(), and twice.
 */
void uring_exit(struct uring *r);

/* Next free SQE, zeroed, or NULL when the SQ is full (submit first). */
struct io_uring_sqe *uring_get_sqe(struct uring *r);

/* SQEs handed out by uring_get_sqe() but not yet accepted by the kernel. */
unsigned uring_sq_pending(const struct uring *r);

/*
 * Publish every prepared SQE and enter the kernel once: submit them and,
 * when @wait_nr > 0, sleep until at least @wait_nr CQEs are available.
 * Retries EINTR; returns the number of SQEs the kernel accepted (it may
 * accept fewer than were pending: the rest stay queued for the next
 * call), or -errno (-EAGAIN/-EBUSY mean: reap completions and call again).
 */
int uring_submit_and_wait(struct uring *r, unsigned wait_nr);

static inline int uring_submit(struct uring *r)
{
	return uring_submit_and_wait(r, 0);
}

/*
 * Submit, and let the kernel post whatever completions are ready, without
 * sleeping.  A ring made with IORING_SETUP_DEFER_TASKRUN only runs its
 * completion work inside io_uring_enter(GETEVENTS): polling needs this.
 */
int uring_submit_and_poll(struct uring *r);

/*
 * Completions: uring_peek_cqe() returns the oldest unconsumed CQE or NULL.
 * Consuming is two-step so a batch costs one shared-memory store: read as
 * many CQEs as wanted with uring_cqe_at(), then uring_cq_advance(r, n).
 */
unsigned uring_cq_ready(const struct uring *r);
struct io_uring_cqe *uring_cqe_at(const struct uring *r, unsigned i);
void uring_cq_advance(struct uring *r, unsigned n);

static inline struct io_uring_cqe *uring_peek_cqe(const struct uring *r)
{
	return uring_cq_ready(r) ? uring_cqe_at(r, 0) : NULL;
}

/*
 * Wait for one CQE (submitting anything pending first); returns 0 with
 * *cqe set, or -errno.  The caller consumes it with uring_cq_advance(r, 1).
 */
int uring_wait_cqe(struct uring *r, struct io_uring_cqe **cqe);

/*
 * The same, but give up after @timeout_ms milliseconds: returns -ETIME
 * when no CQE came in time.  Needs IORING_FEAT_EXT_ARG (Linux 5.11).
 */
int uring_wait_cqe_timeout(struct uring *r, struct io_uring_cqe **cqe,
			   unsigned timeout_ms);

/* Helpers that fill an SQE for the operations the project uses. */
void uring_prep_nop(struct io_uring_sqe *sqe, uint64_t user_data);
void uring_prep_rw(struct io_uring_sqe *sqe, int op, int fd, void *buf,
		   uint32_t len, uint64_t off, uint64_t user_data);
void uring_prep_cmd(struct io_uring_sqe *sqe, int fd, uint32_t cmd_op,
		    const void *cmd, size_t cmd_len, uint64_t user_data);
/*
 * Ask the kernel to cancel the request submitted with @target's
 * user_data.  Its own CQE says 0 (cancelled), -ENOENT (not found: it
 * already completed) or -EALREADY (running: it was told to stop); the
 * target still posts a CQE of its own.
 */
void uring_prep_cancel(struct io_uring_sqe *sqe, uint64_t target,
		       uint64_t user_data);

/*
 * A multishot IORING_OP_URING_CMD: like uring_prep_cmd(), but the command
 * stays armed and posts a CQE (with IORING_CQE_F_MORE) each time it has
 * something to say, into a buffer the kernel picks from group @bgid.
 */
void uring_prep_cmd_multishot(struct io_uring_sqe *sqe, int fd, uint32_t cmd_op,
			      const void *cmd, size_t cmd_len, uint16_t bgid,
			      uint64_t user_data);

/* The id of the provided buffer a CQE's data went into, if F_BUFFER. */
static inline unsigned uring_cqe_buf_id(const struct io_uring_cqe *cqe)
{
	return cqe->flags >> IORING_CQE_BUFFER_SHIFT;
}

/*
 * Provided buffers (Linux 5.19): instead of naming a buffer in each SQE,
 * hand the kernel a ring of buffers once; a request marked
 * IOSQE_BUFFER_SELECT takes the next one when it has data, and its CQE
 * says which (uring_cqe_buf_id()).  The kernel never gives a buffer back:
 * once its CQE is read, uring_buf_ring_add() returns it to the ring, and
 * uring_buf_ring_publish() makes every buffer added since visible.
 */
struct uring_buf_ring {
	struct io_uring_buf *kbufs;	/* shared: entries the kernel reads */
	uint16_t *ktail;		/* shared: we advance, the kernel reads */
	unsigned entries;
	unsigned mask;
	uint16_t tail;			/* next entry to fill (local) */
	uint16_t bgid;
	size_t map_len;
};

/*
 * Register an empty ring of @entries (a power of two, below 65536)
 * buffers as group @bgid of ring @r.  Returns 0 or -errno (-EINVAL from a
 * kernel older than 5.19).
 */
int uring_buf_ring_init(struct uring *r, struct uring_buf_ring *br,
			unsigned entries, uint16_t bgid);

/* Queue buffer @bid (@len bytes at @addr) for the kernel; see publish. */
void uring_buf_ring_add(struct uring_buf_ring *br, void *addr, uint32_t len,
			uint16_t bid);

/* Hand every buffer added since the last call to the kernel. */
void uring_buf_ring_publish(struct uring_buf_ring *br);

/*
 * Unregister the group (while @r is open) and unmap the ring.  Safe on a
 * zeroed ring and twice.  The buffers themselves stay the caller's.
 */
void uring_buf_ring_exit(struct uring *r, struct uring_buf_ring *br);

/*
 * Give ring @r a table of @nr empty fixed-buffer slots.  Something else
 * fills them: ublk's AUTO_BUF_REG puts each request's pages in the slot
 * its FETCH named, for IORING_OP_READ_FIXED / WRITE_FIXED with buf_index
 * set to the slot and addr to the byte offset in the request.  Returns 0
 * or -errno.
 */
int uring_register_sparse_buffers(struct uring *r, unsigned nr);

/* Size of the command area of an SQE of this ring: 16 or 80 bytes. */
static inline size_t uring_cmd_area(const struct uring *r)
{
	return r->sqe_size - offsetof(struct io_uring_sqe, cmd);
}

#endif
