/*
 * uring.c - io_uring from first principles: three system calls and two
 * shared ring buffers, no liburing.
 *
 * Read this file first.  ublk.c uses these rings twice: one ring with
 * 128-byte SQEs carries control commands to /dev/ublk-control, and one
 * ring per hardware queue carries the I/O commands that fetch block
 * requests from the kernel and commit their results.
 *
 * Life of a ring:
 *   io_uring_setup()  -> the kernel creates the rings, tells us their layout
 *   mmap() x 2 or 3   -> SQ ring (+ CQ ring, unless SINGLE_MMAP) + SQE array
 *   loop: fill SQEs, publish SQ tail, io_uring_enter(), read CQEs, move head
 *   munmap() + close()
 */
#include "uring.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * The io_uring system call numbers.  Since Linux 5.1 new system calls get
 * the same number on every architecture (alpha aside), so these hold for
 * x86_64, arm64, riscv64 and the rest.
 */
enum {
	NR_io_uring_setup = 425,
	NR_io_uring_enter = 426,
	NR_io_uring_register = 427,
};

/*
 * Memory ordering, in one place.
 *
 * The kernel and this process read and write the ring indexes concurrently,
 * on different CPUs.  Two guarantees make that safe:
 *   - store_release(p, v): every memory write before it (e.g. filling an
 *     SQE) is visible to whoever later load_acquire()s *p and sees v.
 *   - load_acquire(p): every read after it (e.g. reading a CQE) sees at
 *     least the memory the writer had written before its release store.
 * The kernel uses smp_load_acquire()/smp_store_release() on the other side
 * of each index, so each of our acquires pairs with one of its releases
 * and vice versa.  read_once() is a plain but untorn load for an index
 * only we write, or whose staleness is harmless.
 */
static inline unsigned load_acquire(const unsigned *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void store_release(unsigned *p, unsigned v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline unsigned read_once(const unsigned *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* The same release, for the 16-bit tail of a provided-buffer ring. */
static inline void store_release16(uint16_t *p, uint16_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static int sys_io_uring_setup(unsigned entries, struct io_uring_params *p)
{
	long ret = syscall(NR_io_uring_setup, entries, p);

	return ret < 0 ? -errno : (int)ret;
}

static int sys_io_uring_enter(int fd, unsigned to_submit, unsigned min_complete,
			      unsigned flags, const void *arg, size_t argsz)
{
	long ret = syscall(NR_io_uring_enter, fd, to_submit, min_complete,
			   flags, arg, argsz);

	return ret < 0 ? -errno : (int)ret;
}

static int sys_io_uring_register(int fd, unsigned op, const void *arg,
				 unsigned nr_args)
{
	long ret = syscall(NR_io_uring_register, fd, op, arg, nr_args);

	return ret < 0 ? -errno : (int)ret;
}

/* Map one ring region; returns NULL (errno set) on failure. */
static void *map_region(int fd, size_t len, unsigned long long off)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_POPULATE, fd, (off_t)off);

	return p == MAP_FAILED ? NULL : p;
}

/* Byte sizes of the ring mappings, as the kernel lays them out. */
static size_t sq_ring_bytes(const struct io_uring_params *p)
{
	return p->sq_off.array + p->sq_entries * sizeof(unsigned);
}

static size_t cq_ring_bytes(const struct io_uring_params *p, unsigned cqe_size)
{
	return p->cq_off.cqes + (size_t)p->cq_entries * cqe_size;
}

/* Point the uring_sq/uring_cq fields into the mappings. */
static void attach_rings(struct uring *r, const struct io_uring_params *p)
{
	char *sq = r->sq_map, *cq = r->cq_map;

	r->sq.khead = (unsigned *)(sq + p->sq_off.head);
	r->sq.ktail = (unsigned *)(sq + p->sq_off.tail);
	r->sq.kflags = (unsigned *)(sq + p->sq_off.flags);
	r->sq.kdropped = (unsigned *)(sq + p->sq_off.dropped);
	r->sq.karray = (unsigned *)(sq + p->sq_off.array);
	/* The masks never change: read them once into plain fields. */
	r->sq.ring_mask = *(unsigned *)(sq + p->sq_off.ring_mask);
	r->sq.ring_entries = *(unsigned *)(sq + p->sq_off.ring_entries);
	r->sq.sqes = r->sqe_map;

	r->cq.khead = (unsigned *)(cq + p->cq_off.head);
	r->cq.ktail = (unsigned *)(cq + p->cq_off.tail);
	r->cq.koverflow = (unsigned *)(cq + p->cq_off.overflow);
	r->cq.cqes = cq + p->cq_off.cqes;
	r->cq.ring_mask = *(unsigned *)(cq + p->cq_off.ring_mask);
	r->cq.ring_entries = *(unsigned *)(cq + p->cq_off.ring_entries);

	/*
	 * The SQ ring holds indexes into the SQE array rather than SQEs.
	 * We always use SQE i for slot i, so fill the array once here.
	 */
	for (unsigned i = 0; i < r->sq.ring_entries; i++)
		r->sq.karray[i] = i;
	r->sq.sqe_head = r->sq.sqe_tail = read_once(r->sq.ktail);
}

/* Unmap whatever part of the three regions is mapped. */
static void unmap_rings(struct uring *r)
{
	if (r->sqe_map)
		munmap(r->sqe_map, r->sqe_map_len);
	if (r->cq_map && r->cq_map != r->sq_map)
		munmap(r->cq_map, r->cq_map_len);
	if (r->sq_map)
		munmap(r->sq_map, r->sq_map_len);
}

/* Forget everything: a released ring reads as "no ring" (fd -1). */
static void reset(struct uring *r)
{
	memset(r, 0, sizeof(*r));
	r->fd = -1;
}

int uring_init(struct uring *r, unsigned entries, unsigned flags)
{
	struct io_uring_params p;
	int ret;

	reset(r);
	memset(&p, 0, sizeof(p));
	p.flags = flags;

	ret = sys_io_uring_setup(entries, &p);
	if (ret < 0)
		return ret;
	r->fd = ret;
	r->flags = flags;
	r->features = p.features;
	r->sqe_size = (flags & IORING_SETUP_SQE128) ? 128 : 64;
	r->cqe_size = (flags & IORING_SETUP_CQE32) ? 32 : 16;

	r->sq_map_len = sq_ring_bytes(&p);
	r->cq_map_len = cq_ring_bytes(&p, r->cqe_size);
	/* With SINGLE_MMAP one mapping, as large as either ring, holds both. */
	if (p.features & IORING_FEAT_SINGLE_MMAP) {
		if (r->cq_map_len > r->sq_map_len)
			r->sq_map_len = r->cq_map_len;
		r->cq_map_len = 0;
	}

	r->sq_map = map_region(r->fd, r->sq_map_len, IORING_OFF_SQ_RING);
	if (!r->sq_map)
		goto err;
	if (p.features & IORING_FEAT_SINGLE_MMAP) {
		r->cq_map = r->sq_map;
	} else {
		r->cq_map = map_region(r->fd, r->cq_map_len, IORING_OFF_CQ_RING);
		if (!r->cq_map)
			goto err;
	}
	r->sqe_map_len = (size_t)p.sq_entries * r->sqe_size;
	r->sqe_map = map_region(r->fd, r->sqe_map_len, IORING_OFF_SQES);
	if (!r->sqe_map)
		goto err;

	attach_rings(r, &p);
	return 0;
err:
	/* The one unwind path for a half-built ring. */
	ret = -errno;
	unmap_rings(r);
	close(r->fd);
	reset(r);
	return ret;
}

int uring_init_best(struct uring *r, unsigned entries, unsigned required,
		    const unsigned *optional, unsigned n_optional)
{
	unsigned flags = required;
	int ret;

	for (unsigned i = 0; i < n_optional; i++)
		flags |= optional[i];
	/* Older kernels answer EINVAL to flags they do not know: drop one. */
	for (unsigned i = 0;; i++) {
		ret = uring_init(r, entries, flags);
		if (ret != -EINVAL || i == n_optional)
			return ret;
		flags &= ~optional[i];
	}
}

/*
 * A ring that uring_init() completed always has its SQ mapping, so a
 * zeroed or already released ring (no mapping) owns no descriptor: its
 * fd field, 0 or -1, is not ours to close.
 */
void uring_exit(struct uring *r)
{
	if (r->sq_map) {
		unmap_rings(r);
		close(r->fd);
	}
	reset(r);
}

struct io_uring_sqe *uring_get_sqe(struct uring *r)
{
	struct uring_sq *sq = &r->sq;
	/*
	 * Acquire pairs with the kernel's release of the SQ head after it
	 * has copied an SQE: only then may we overwrite that slot.
	 */
	unsigned head = load_acquire(sq->khead);
	struct io_uring_sqe *sqe;

	if (sq->sqe_tail - head >= sq->ring_entries)
		return NULL;
	sqe = (struct io_uring_sqe *)(sq->sqes +
		(size_t)(sq->sqe_tail & sq->ring_mask) * r->sqe_size);
	sq->sqe_tail++;
	memset(sqe, 0, r->sqe_size);
	return sqe;
}

unsigned uring_sq_pending(const struct uring *r)
{
	/* Only the kernel writes the head; a stale value overstates. */
	return r->sq.sqe_tail - read_once(r->sq.khead);
}

/* Make the SQEs filled since the last call visible to the kernel. */
static void publish_sqes(struct uring *r)
{
	struct uring_sq *sq = &r->sq;

	if (sq->sqe_head == sq->sqe_tail)
		return;
	/*
	 * Release pairs with the kernel's acquire of the SQ tail in
	 * io_submit_sqes(): the SQE contents are written before the tail.
	 */
	store_release(sq->ktail, sq->sqe_tail);
	sq->sqe_head = sq->sqe_tail;
}

/*
 * Publish pending SQEs and enter the kernel once (retrying EINTR).  @arg
 * is the extended argument that goes with IORING_ENTER_EXT_ARG, or NULL.
 */
static int submit(struct uring *r, unsigned wait_nr, unsigned flags,
		  const struct io_uring_getevents_arg *arg)
{
	unsigned to_submit;
	int ret;

	publish_sqes(r);
	/* Our tail minus the kernel's head: published, not yet consumed. */
	to_submit = r->sq.sqe_tail - load_acquire(r->sq.khead);
	if (!to_submit && !flags)
		return 0;
	do {
		ret = sys_io_uring_enter(r->fd, to_submit, wait_nr, flags, arg,
					 arg ? sizeof(*arg) : 0);
	} while (ret == -EINTR);
	return ret;
}

int uring_submit_and_wait(struct uring *r, unsigned wait_nr)
{
	return submit(r, wait_nr, wait_nr ? IORING_ENTER_GETEVENTS : 0, NULL);
}

int uring_submit_and_poll(struct uring *r)
{
	return submit(r, 0, IORING_ENTER_GETEVENTS, NULL);
}

unsigned uring_cq_ready(const struct uring *r)
{
	/*
	 * Acquire pairs with the kernel's release of the CQ tail when it
	 * posts a CQE: the CQE contents are visible once we see the tail.
	 * The head is ours alone, so a plain load is enough.
	 */
	return load_acquire(r->cq.ktail) - read_once(r->cq.khead);
}

struct io_uring_cqe *uring_cqe_at(const struct uring *r, unsigned i)
{
	unsigned head = read_once(r->cq.khead) + i;

	return (struct io_uring_cqe *)(r->cq.cqes +
		(size_t)(head & r->cq.ring_mask) * r->cqe_size);
}

void uring_cq_advance(struct uring *r, unsigned n)
{
	/*
	 * Release pairs with the kernel's acquire of the CQ head before it
	 * reuses a slot: our reads of the CQEs happen before it may
	 * overwrite them.
	 */
	if (n)
		store_release(r->cq.khead, read_once(r->cq.khead) + n);
}

int uring_wait_cqe(struct uring *r, struct io_uring_cqe **cqe)
{
	int ret;

	for (;;) {
		*cqe = uring_peek_cqe(r);
		if (*cqe)
			return 0;
		ret = uring_submit_and_wait(r, 1);
		if (ret < 0 && ret != -EAGAIN && ret != -EBUSY)
			return ret;
	}
}

int uring_wait_cqe_timeout(struct uring *r, struct io_uring_cqe **cqe,
			   unsigned timeout_ms)
{
	struct uring_timespec ts = {
		.tv_sec = timeout_ms / 1000,
		.tv_nsec = (int64_t)(timeout_ms % 1000) * 1000000,
	};
	struct io_uring_getevents_arg arg = { .ts = (uint64_t)(uintptr_t)&ts };
	int ret;

	if (!(r->features & IORING_FEAT_EXT_ARG))
		return -EOPNOTSUPP;
	*cqe = uring_peek_cqe(r);
	if (*cqe)
		return 0;
	/*
	 * One wait with a time limit.  The kernel answers -ETIME when it
	 * expires; a signal (-EINTR, retried by submit()) restarts the full
	 * wait, which only stretches a limit that is a safety net anyway.
	 */
	ret = submit(r, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg);
	*cqe = uring_peek_cqe(r);
	if (*cqe)
		return 0;
	return ret < 0 ? ret : -ETIME;
}

void uring_prep_nop(struct io_uring_sqe *sqe, uint64_t user_data)
{
	sqe->opcode = IORING_OP_NOP;
	sqe->fd = -1;
	sqe->user_data = user_data;
}

void uring_prep_rw(struct io_uring_sqe *sqe, int op, int fd, void *buf,
		   uint32_t len, uint64_t off, uint64_t user_data)
{
	sqe->opcode = (uint8_t)op;
	sqe->fd = fd;
	sqe->addr = (uint64_t)(uintptr_t)buf;
	sqe->len = len;
	sqe->off = off;
	sqe->user_data = user_data;
}

void uring_prep_cancel(struct io_uring_sqe *sqe, uint64_t target,
		       uint64_t user_data)
{
	sqe->opcode = IORING_OP_ASYNC_CANCEL;
	sqe->fd = -1;
	sqe->addr = target;	/* match on the target's user_data */
	sqe->user_data = user_data;
}

void uring_prep_cmd(struct io_uring_sqe *sqe, int fd, uint32_t cmd_op,
		    const void *cmd, size_t cmd_len, uint64_t user_data)
{
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = fd;
	sqe->cmd_op = cmd_op;
	sqe->user_data = user_data;
	memcpy(sqe->cmd, cmd, cmd_len);
}

void uring_prep_cmd_multishot(struct io_uring_sqe *sqe, int fd, uint32_t cmd_op,
			      const void *cmd, size_t cmd_len, uint16_t bgid,
			      uint64_t user_data)
{
	uring_prep_cmd(sqe, fd, cmd_op, cmd, cmd_len, user_data);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = bgid;
	sqe->uring_cmd_flags = IORING_URING_CMD_MULTISHOT;
}

/* ---- provided buffers ---- */

int uring_buf_ring_init(struct uring *r, struct uring_buf_ring *br,
			unsigned entries, uint16_t bgid)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	struct io_uring_buf_reg reg;
	void *p;
	int ret;

	memset(br, 0, sizeof(*br));
	if (!entries || entries & (entries - 1) || entries >= 65536)
		return -EINVAL;
	/* The kernel pins this memory and reads the entries from it. */
	br->map_len = (entries * sizeof(struct io_uring_buf) + page - 1) / page * page;
	p = mmap(NULL, br->map_len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p == MAP_FAILED) {
		ret = -errno;
		memset(br, 0, sizeof(*br));
		return ret;
	}
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)p;
	reg.ring_entries = entries;
	reg.bgid = bgid;
	ret = sys_io_uring_register(r->fd, IORING_REGISTER_PBUF_RING, &reg, 1);
	if (ret < 0) {
		munmap(p, br->map_len);
		memset(br, 0, sizeof(*br));
		return ret;
	}
	br->kbufs = p;
	br->ktail = (uint16_t *)((char *)p + IO_URING_BUF_TAIL_OFF);
	br->entries = entries;
	br->mask = entries - 1;
	br->bgid = bgid;
	return 0;
}

void uring_buf_ring_add(struct uring_buf_ring *br, void *addr, uint32_t len,
			uint16_t bid)
{
	struct io_uring_buf *b = &br->kbufs[br->tail & br->mask];

	/* Field by field: entry 0's resv is the ring's tail. */
	b->addr = (uint64_t)(uintptr_t)addr;
	b->len = len;
	b->bid = bid;
	br->tail++;
}

void uring_buf_ring_publish(struct uring_buf_ring *br)
{
	/*
	 * Release pairs with the kernel's smp_load_acquire() of the tail in
	 * io_ring_buffer_select(): the entries are written before the tail
	 * that hands them over.
	 */
	store_release16(br->ktail, br->tail);
}

void uring_buf_ring_exit(struct uring *r, struct uring_buf_ring *br)
{
	struct io_uring_buf_reg reg;

	if (!br->kbufs)
		return;
	if (r->sq_map) {
		memset(&reg, 0, sizeof(reg));
		reg.bgid = br->bgid;
		sys_io_uring_register(r->fd, IORING_UNREGISTER_PBUF_RING, &reg, 1);
	}
	munmap(br->kbufs, br->map_len);
	memset(br, 0, sizeof(*br));
}

int uring_register_sparse_buffers(struct uring *r, unsigned nr)
{
	struct io_uring_rsrc_register reg;

	memset(&reg, 0, sizeof(reg));
	reg.nr = nr;
	reg.flags = IORING_RSRC_REGISTER_SPARSE;
	return sys_io_uring_register(r->fd, IORING_REGISTER_BUFFERS2, &reg,
				     sizeof(reg));
}
