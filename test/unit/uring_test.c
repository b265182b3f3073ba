/*
 * uring_test.c - unit tests for the io_uring wrapper in uring.c, run
 * against the real kernel: NOPs, reads and writes on a temporary file,
 * errors, the ring indexes wrapping, and setup and teardown.
 *
 * Each check prints one line, "ok - name" or "FAIL - name: details
 * (line N)".  Exit status: 0 all passed, 1 a check failed, 77 skipped
 * because io_uring is not available (disabled by the kernel.io_uring_disabled
 * sysctl, filtered by seccomp, or not built into the kernel).
 */
#define _GNU_SOURCE
#include "uring.h"
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BOGUS_FLAG	(1U << 31)	/* a setup flag no kernel knows */

/* ---- checks (the common ones are in check.h) ---- */

/* A check of one number against the value it should have. */
static bool check_eq(int line, long long got, long long want, const char *name)
{
	return check(line, got == want, name, "got %lld, want %lld", got, want);
}

#define CHECK_EQ(got, want, name) \
	check_eq(__LINE__, (long long)(got), (long long)(want), (name))

/* Compare @len bytes and check they match, naming the first difference. */
static bool check_bytes(int line, const void *got, const void *want,
			size_t len, const char *name)
{
	size_t i = first_diff(got, want, len);

	return check(line, i == len, name,
		     "first difference at byte %zu of %zu: got 0x%02x, want 0x%02x",
		     i, len, i < len ? ((const unsigned char *)got)[i] : 0,
		     i < len ? ((const unsigned char *)want)[i] : 0);
}

#define CHECK_BYTES(got, want, len, name) \
	check_bytes(__LINE__, (got), (want), (len), (name))

/* ---- helpers ---- */

/* An index the kernel shares with us, read while the ring is idle. */
static unsigned peek_index(const unsigned *k)
{
	/* Nothing is in flight, so no ordering is needed: relaxed is enough. */
	return __atomic_load_n(k, __ATOMIC_RELAXED);
}

static bool fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* Create a ring of @entries or print why not; returns 0 or -errno. */
static int ring_open(struct uring *r, unsigned entries, unsigned flags,
		     const char *what)
{
	char name[96];
	int ret = uring_init(r, entries, flags);

	snprintf(name, sizeof(name), "uring_init: %s", what);
	CHECK(ret == 0, name, "%s", res_name(ret));
	return ret;
}

/* Queue @n NOPs with user_data first, first + 1, ...; returns how many fit. */
static unsigned queue_nops(struct uring *r, unsigned n, uint64_t first)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = uring_get_sqe(r);

		if (!sqe)
			break;
		uring_prep_nop(sqe, first + i);
	}
	return i;
}

struct completion {
	uint64_t user_data;
	int res;
};

/* Wait for @n CQEs one by one and copy them out; returns 0 or -errno. */
static int reap(struct uring *r, struct completion *out, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct io_uring_cqe *cqe;
		int ret = uring_wait_cqe(r, &cqe);

		if (ret < 0)
			return ret;
		out[i].user_data = cqe->user_data;
		out[i].res = cqe->res;
		uring_cq_advance(r, 1);
	}
	return 0;
}

/* Submit one read or write, wait for it, return its result (or -errno). */
static int rw_once(struct uring *r, int op, int fd, void *buf, uint32_t len,
		   uint64_t off)
{
	struct io_uring_sqe *sqe = uring_get_sqe(r);
	struct completion c = { 0 };
	int ret;

	if (!sqe)
		return -EBUSY;
	uring_prep_rw(sqe, op, fd, buf, len, off, 0);
	ret = reap(r, &c, 1);	/* uring_wait_cqe() submits it first */
	return ret < 0 ? ret : c.res;
}

/* A file in /tmp that disappears when closed; returns its fd or -1. */
static int temp_file(void)
{
	char path[] = "/tmp/uring_test.XXXXXX";
	int fd = mkstemp(path);

	if (fd >= 0)
		unlink(path);
	else
		printf("# mkstemp %s: %s\n", path, strerror(errno));
	return fd;
}

/* ---- the tests ---- */

/* The structures this project declares must match the kernel's ABI. */
static void test_abi_layout(void)
{
	CHECK(sizeof(struct io_uring_sqe) == 64 &&
	      offsetof(struct io_uring_sqe, off) == 8 &&
	      offsetof(struct io_uring_sqe, addr) == 16 &&
	      offsetof(struct io_uring_sqe, len) == 24 &&
	      offsetof(struct io_uring_sqe, user_data) == 32 &&
	      offsetof(struct io_uring_sqe, cmd) == 48,
	      "struct io_uring_sqe matches the kernel layout",
	      "size %zu, user_data at %zu, cmd at %zu",
	      sizeof(struct io_uring_sqe),
	      offsetof(struct io_uring_sqe, user_data),
	      offsetof(struct io_uring_sqe, cmd));
	CHECK(sizeof(struct io_uring_cqe) == 16 &&
	      offsetof(struct io_uring_cqe, res) == 8,
	      "struct io_uring_cqe matches the kernel layout",
	      "size %zu, res at %zu", sizeof(struct io_uring_cqe),
	      offsetof(struct io_uring_cqe, res));
	CHECK(sizeof(struct io_uring_params) == 120,
	      "struct io_uring_params matches the kernel layout",
	      "size %zu", sizeof(struct io_uring_params));
	CHECK(offsetof(struct io_uring_sqe, uring_cmd_flags) == 28 &&
	      offsetof(struct io_uring_sqe, buf_group) == 40,
	      "uring_cmd_flags and buf_group sit where the kernel reads them",
	      "uring_cmd_flags at %zu, buf_group at %zu",
	      offsetof(struct io_uring_sqe, uring_cmd_flags),
	      offsetof(struct io_uring_sqe, buf_group));
	CHECK(sizeof(struct io_uring_buf) == 16 &&
	      offsetof(struct io_uring_buf, resv) == IO_URING_BUF_TAIL_OFF &&
	      sizeof(struct io_uring_buf_reg) == 40,
	      "provided-buffer ring entry and registration match the kernel layout",
	      "entry %zu bytes, tail at %zu, reg %zu bytes", sizeof(struct io_uring_buf),
	      offsetof(struct io_uring_buf, resv), sizeof(struct io_uring_buf_reg));
}

/* One NOP at a time: each CQE carries back the SQE's user_data. */
static void test_nop_round_trip(void)
{
	static const uint64_t values[] = {
		0, 1, 0x8000000000000000ULL, 0xdeadbeefcafef00dULL, UINT64_MAX,
	};
	struct uring r;
	struct first_error e = { 0 };

	if (ring_open(&r, 8, 0, "8 entries") < 0)
		return;
	CHECK(r.sq.ring_entries == 8 && r.cq.ring_entries == 16,
	      "8-entry ring has an 8-entry SQ and a 16-entry CQ",
	      "SQ %u, CQ %u", r.sq.ring_entries, r.cq.ring_entries);
	CHECK(r.sqe_size == 64 && r.cqe_size == 16, "plain ring entry sizes",
	      "SQE %u bytes, CQE %u bytes", r.sqe_size, r.cqe_size);
	CHECK(!(r.features & IORING_FEAT_SINGLE_MMAP) || r.cq_map == r.sq_map,
	      "SINGLE_MMAP: one mapping holds both rings",
	      "sq_map %p, cq_map %p", r.sq_map, r.cq_map);

	for (unsigned i = 0; i < ARRAY_SIZE(values); i++) {
		struct io_uring_sqe *sqe = uring_get_sqe(&r);
		struct completion c = { 0 };
		int ret;

		if (!sqe) {
			note(&e, "uring_get_sqe returned NULL on an idle ring");
			break;
		}
		uring_prep_nop(sqe, values[i]);
		ret = uring_submit(&r);
		if (ret != 1) {
			note(&e, "uring_submit returned %d, want 1", ret);
			break;
		}
		ret = reap(&r, &c, 1);
		if (ret < 0 || c.user_data != values[i] || c.res != 0)
			note(&e, "NOP %#llx: wait %d, user_data %#llx, res %d",
			     (unsigned long long)values[i], ret,
			     (unsigned long long)c.user_data, c.res);
	}
	CHECK_NO_ERROR(e, "NOP round trips echo user_data (0 .. UINT64_MAX)");
	CHECK(uring_sq_pending(&r) == 0 && uring_cq_ready(&r) == 0,
	      "nothing left over after the round trips",
	      "%u SQEs pending, %u CQEs ready", uring_sq_pending(&r),
	      uring_cq_ready(&r));
	uring_exit(&r);
}

/*
 * Check one batch of @n CQEs at the CQ head: NOPs whose user_data are
 * first .. first + n - 1, each exactly once.  NOPs happen to complete in
 * order, but the kernel does not promise completion order, so this does
 * not rely on it.  Consumes the batch with one uring_cq_advance().
 */
static void check_nop_batch(struct uring *r, unsigned n, uint64_t first,
			    struct first_error *e)
{
	bool seen[64] = { false };
	unsigned ready = uring_cq_ready(r);

	if (ready != n) {
		note(e, "batch at user_data %llu: %u CQEs ready, want %u",
		     (unsigned long long)first, ready, n);
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		const struct io_uring_cqe *cqe = uring_cqe_at(r, i);
		uint64_t k = cqe->user_data - first;

		if (k >= n || seen[k] || cqe->res != 0) {
			note(e, "batch at user_data %llu: CQE %u has user_data %llu, res %d%s",
			     (unsigned long long)first, i,
			     (unsigned long long)cqe->user_data, cqe->res,
			     k < n && seen[k] ? " (seen twice)" : "");
			return;
		}
		seen[k] = true;
	}
	uring_cq_advance(r, n);
}

/*
 * 100000 NOPs through an 8-entry SQ and 16-entry CQ: both rings wrap
 * thousands of times.  Batch sizes cycle through 1..8, so batches start
 * at every slot and straddle the end of the ring in every way.
 */
static void test_nop_many_wraps(void)
{
	enum { TOTAL = 100000 };
	struct first_error e = { 0 };
	struct uring r;
	uint64_t done = 0;

	if (ring_open(&r, 8, 0, "8 entries, for the wrap test") < 0)
		return;
	for (unsigned round = 0; done < TOTAL && !e.set; round++) {
		unsigned want = 1 + round % 8, n;
		int ret;

		if (want > TOTAL - done)
			want = (unsigned)(TOTAL - done);
		n = queue_nops(&r, want, done);
		if (n != want) {
			note(&e, "round %u: got %u SQEs, want %u", round, n, want);
			break;
		}
		ret = uring_submit_and_wait(&r, n);
		if (ret != (int)n) {
			note(&e, "round %u: uring_submit_and_wait returned %d, want %u",
			     round, ret, n);
			break;
		}
		check_nop_batch(&r, n, done, &e);
		done += n;
	}
	CHECK_NO_ERROR(e, "100000 NOPs in batches of 1..8 on an 8-entry ring");
	CHECK(peek_index(r.sq.khead) == TOTAL && peek_index(r.sq.ktail) == TOTAL &&
	      peek_index(r.cq.khead) == TOTAL && peek_index(r.cq.ktail) == TOTAL,
	      "each ring index moved by exactly 100000 (12500 SQ wraps)",
	      "SQ head %u tail %u, CQ head %u tail %u",
	      peek_index(r.sq.khead), peek_index(r.sq.ktail),
	      peek_index(r.cq.khead), peek_index(r.cq.ktail));
	uring_exit(&r);
}

/*
 * The 32-bit ring indexes are free-running: they are never reduced modulo
 * the ring size, only masked when used, and they wrap from 2^32 - 1 to 0.
 * The wrapper is wrap-safe because it only ever compares them by unsigned
 * difference (tail - head), which stays right across the wrap.
 *
 * A real ring cannot show this in a unit test: the kernel starts every
 * index at 0 and keeps private copies of the ones it moves (storing into
 * the shared ones would only desynchronise it), and reaching 2^32 takes
 * 2^32 submissions, many minutes even for NOPs.  So this test builds a ring in ordinary memory
 * whose indexes start 16 below 2^32, and plays the kernel's part itself:
 * it consumes the SQEs the wrapper publishes and posts a CQE for each.
 * Every wrapper function then runs its real index arithmetic across the
 * wrap.  The fake ring's fd is -1: uring_submit() publishes the SQ tail
 * and then its io_uring_enter() fails with EBADF, which is all this model
 * needs from it.
 */
enum { FAKE_SQ = 8, FAKE_CQ = 16 };

struct fake_ring {
	struct uring r;
	unsigned sq_head, sq_tail, sq_flags, sq_dropped, sq_array[FAKE_SQ];
	unsigned cq_head, cq_tail, cq_overflow;
	_Alignas(64) char sqes[FAKE_SQ * 64];
	_Alignas(64) char cqes[FAKE_CQ * 16];
};

static void fake_ring_init(struct fake_ring *f, unsigned start)
{
	struct uring *r = &f->r;

	memset(f, 0, sizeof(*f));
	r->fd = -1;
	r->sqe_size = 64;
	r->cqe_size = 16;
	r->sq = (struct uring_sq){
		.khead = &f->sq_head, .ktail = &f->sq_tail,
		.kflags = &f->sq_flags, .kdropped = &f->sq_dropped,
		.karray = f->sq_array, .ring_mask = FAKE_SQ - 1,
		.ring_entries = FAKE_SQ, .sqe_head = start, .sqe_tail = start,
		.sqes = f->sqes,
	};
	r->cq = (struct uring_cq){
		.khead = &f->cq_head, .ktail = &f->cq_tail,
		.koverflow = &f->cq_overflow, .cqes = f->cqes,
		.ring_mask = FAKE_CQ - 1, .ring_entries = FAKE_CQ,
	};
	for (unsigned i = 0; i < FAKE_SQ; i++)
		f->sq_array[i] = i;
	f->sq_head = f->sq_tail = start;
	f->cq_head = f->cq_tail = start;
}

/*
 * The kernel's half: consume every published SQE and post a CQE for it,
 * as io_submit_sqes() does for NOPs.  Single-threaded: plain accesses do.
 */
static void fake_kernel(struct fake_ring *f)
{
	while (f->sq_head != f->sq_tail) {
		unsigned idx = f->sq_array[f->sq_head & (FAKE_SQ - 1)];
		const struct io_uring_sqe *sqe =
			(const struct io_uring_sqe *)(f->sqes + idx * 64);
		struct io_uring_cqe *cqe = (struct io_uring_cqe *)
			(f->cqes + (f->cq_tail & (FAKE_CQ - 1)) * 16);

		cqe->user_data = sqe->user_data;
		cqe->res = sqe->opcode == IORING_OP_NOP ? 0 : -EINVAL;
		cqe->flags = 0;
		f->cq_tail++;
		f->sq_head++;
	}
}

static void test_index_wrap_at_2_32(void)
{
	const unsigned start = UINT32_MAX - 15;
	struct fake_ring *f = calloc(1, sizeof(*f));
	struct first_error e = { 0 };
	uint64_t done = 0;

	if (!f) {
		CHECK(false, "fake ring allocated", "out of memory");
		return;
	}

	/* Counting across the wrap, with the indexes set by hand. */
	fake_ring_init(f, start);
	f->cq_head = UINT32_MAX - 2;
	f->cq_tail = 2;
	CHECK_EQ(uring_cq_ready(&f->r), 5,
		 "uring_cq_ready across the wrap (head 2^32-3, tail 2)");
	CHECK((char *)uring_cqe_at(&f->r, 0) == f->cqes + 13 * 16 &&
	      (char *)uring_cqe_at(&f->r, 3) == f->cqes + 0 * 16 &&
	      (char *)uring_cqe_at(&f->r, 4) == f->cqes + 1 * 16,
	      "uring_cqe_at masks head + i across the wrap",
	      "CQE 0 in slot %td, CQE 3 in slot %td, want 13 and 0",
	      ((char *)uring_cqe_at(&f->r, 0) - f->cqes) / 16,
	      ((char *)uring_cqe_at(&f->r, 3) - f->cqes) / 16);
	uring_cq_advance(&f->r, 5);
	CHECK(f->cq_head == 2 && uring_cq_ready(&f->r) == 0,
	      "uring_cq_advance wraps the CQ head to 2",
	      "head %u, ready %u", f->cq_head, uring_cq_ready(&f->r));

	/* A full SQ whose tail has wrapped: 4 slots before 2^32, 4 after. */
	fake_ring_init(f, UINT32_MAX - 3);
	CHECK_EQ(queue_nops(&f->r, FAKE_SQ + 1, 0), FAKE_SQ,
		 "uring_get_sqe hands out 8 SQEs across the wrap, then NULL");
	CHECK_EQ(uring_sq_pending(&f->r), FAKE_SQ,
		 "uring_sq_pending counts 8 across the wrap");
	CHECK_RES(uring_submit(&f->r), -EBADF,
		  "uring_submit on the fake ring reports io_uring_enter's error");
	CHECK_EQ(f->sq_tail, 4, "uring_submit published the wrapped SQ tail");
	fake_kernel(f);
	CHECK(uring_sq_pending(&f->r) == 0 && uring_get_sqe(&f->r) != NULL,
	      "SQ usable again once the kernel consumed it",
	      "%u pending", uring_sq_pending(&f->r));

	/* The full cycle, 12 batches of 1..8 NOPs, both rings crossing 2^32. */
	fake_ring_init(f, start);
	for (unsigned round = 0; round < 12 && !e.set; round++) {
		unsigned n = 1 + round % 8;

		if (queue_nops(&f->r, n, done) != n ||
		    uring_sq_pending(&f->r) != n) {
			note(&e, "round %u: could not queue %u NOPs (%u pending)",
			     round, n, uring_sq_pending(&f->r));
			break;
		}
		uring_submit(&f->r);
		fake_kernel(f);
		if (uring_sq_pending(&f->r) != 0)
			note(&e, "round %u: %u SQEs still pending", round,
			     uring_sq_pending(&f->r));
		check_nop_batch(&f->r, n, done, &e);
		done += n;
	}
	CHECK_NO_ERROR(e, "NOPs in batches of 1..8 through a ring whose indexes cross 2^32");
	CHECK(f->sq_head == start + (unsigned)done && f->cq_head == start + (unsigned)done &&
	      f->sq_head < start,
	      "SQ and CQ heads wrapped past 2^32",
	      "SQ head %u, CQ head %u, want %u", f->sq_head, f->cq_head,
	      start + (unsigned)done);
	free(f);
}

/*
 * Rings with big entries.  ublk's control ring uses 128-byte SQEs; CQE32
 * rings have 32-byte CQEs, so uring_cqe_at() must step by cqe_size.
 * Five batches of 8 NOPs also wrap the 16-entry CQ twice.
 */
static void test_big_entries(const char *what, unsigned flags,
			     unsigned sqe_size, unsigned cqe_size)
{
	struct first_error e = { 0 };
	struct io_uring_sqe *a, *b;
	struct uring r;
	char name[128];
	size_t nonzero = 0;

	if (ring_open(&r, 8, flags, what) < 0)
		return;
	snprintf(name, sizeof(name), "%s: SQE and CQE sizes", what);
	CHECK(r.sqe_size == sqe_size && r.cqe_size == cqe_size, name,
	      "SQE %u, CQE %u, want %u and %u", r.sqe_size, r.cqe_size,
	      sqe_size, cqe_size);
	snprintf(name, sizeof(name), "%s: command area", what);
	CHECK_EQ(uring_cmd_area(&r), sqe_size - 48, name);

	/* Dirty the whole SQE array: uring_get_sqe() must clear all of it. */
	memset(r.sqe_map, 0xa5, r.sqe_map_len);
	a = uring_get_sqe(&r);
	b = uring_get_sqe(&r);
	for (unsigned i = 0; i < sqe_size; i++)
		nonzero += ((unsigned char *)a)[i] != 0;
	snprintf(name, sizeof(name), "%s: uring_get_sqe clears all %u bytes", what, sqe_size);
	CHECK(nonzero == 0, name, "%zu bytes not zero", nonzero);
	snprintf(name, sizeof(name), "%s: SQEs are %u bytes apart", what, sqe_size);
	CHECK_EQ((char *)b - (char *)a, sqe_size, name);
	uring_prep_nop(a, 0);
	uring_prep_nop(b, 1);

	for (unsigned round = 0; round < 5 && !e.set; round++) {
		uint64_t first = round * 8;
		/* Round 0 already holds the two NOPs above. */
		unsigned queued = round ? 0 : 2;
		int ret;

		queued += queue_nops(&r, 8 - queued, first + queued);
		ret = uring_submit_and_wait(&r, 8);
		if (queued != 8 || ret != 8) {
			note(&e, "round %u: %u queued, submit returned %d",
			     round, queued, ret);
			break;
		}
		if (round == 0 && (char *)uring_cqe_at(&r, 1) -
		    (char *)uring_cqe_at(&r, 0) != cqe_size)
			note(&e, "CQEs are %td bytes apart, want %u",
			     (char *)uring_cqe_at(&r, 1) - (char *)uring_cqe_at(&r, 0),
			     cqe_size);
		check_nop_batch(&r, 8, first, &e);
	}
	snprintf(name, sizeof(name), "%s: 40 NOPs, every CQE's user_data read right", what);
	CHECK_NO_ERROR(e, name);
	uring_exit(&r);
}

/* uring_get_sqe() returns NULL when all SQ slots are handed out. */
static void test_sq_full(void)
{
	struct completion c[9];
	struct uring r;
	unsigned n;
	int ret;

	if (ring_open(&r, 8, 0, "8 entries, for the full-SQ test") < 0)
		return;
	n = queue_nops(&r, 8, 100);
	CHECK(n == 8 && uring_get_sqe(&r) == NULL && uring_get_sqe(&r) == NULL,
	      "uring_get_sqe: 8 SQEs, then NULL (and NULL again)",
	      "%u SQEs before NULL", n);
	CHECK_EQ(uring_sq_pending(&r), 8,
		 "uring_sq_pending is 8 on a full SQ (NULLs took nothing)");
	ret = uring_submit(&r);
	CHECK_EQ(ret, 8, "uring_submit hands all 8 to the kernel");
	CHECK_EQ(uring_sq_pending(&r), 0, "uring_sq_pending is 0 after submit");
	n = queue_nops(&r, 1, 108);
	CHECK_EQ(n, 1, "uring_get_sqe works again after submit");
	ret = reap(&r, c, 9);
	CHECK_RES(ret, 0, "all 9 NOPs complete");
	uring_exit(&r);
}

/*
 * Queue NOP, bad, NOP, NOP with user_data 1..4, where "bad" is an SQE with
 * an opcode no kernel has: the kernel fails it before it starts.
 */
static void queue_with_bad_opcode(struct uring *r)
{
	for (uint64_t i = 1; i <= 4; i++) {
		struct io_uring_sqe *sqe = uring_get_sqe(r);

		uring_prep_nop(sqe, i);
		if (i == 2)
			sqe->opcode = 0xff;
	}
}

/* Reap the 4 CQEs of queue_with_bad_opcode() and check each result. */
static void check_bad_opcode_results(struct uring *r, const char *name)
{
	struct completion c[4];
	struct first_error e = { 0 };
	unsigned seen = 0;	/* bit n: user_data n arrived */
	int ret = reap(r, c, 4);

	if (ret < 0)
		note(&e, "reaping 4 CQEs: %s", res_name(ret));
	for (unsigned i = 0; ret == 0 && i < 4; i++) {
		int want = c[i].user_data == 2 ? -EINVAL : 0;

		if (c[i].user_data < 1 || c[i].user_data > 4 || c[i].res != want ||
		    (seen & (1U << c[i].user_data)))
			note(&e, "CQE %u: user_data %llu, res %d", i,
			     (unsigned long long)c[i].user_data, c[i].res);
		else
			seen |= 1U << c[i].user_data;
	}
	CHECK_NO_ERROR(e, name);
}

/*
 * Short submits.  Without IORING_SETUP_SUBMIT_ALL the kernel stops at the
 * first SQE it cannot even start, fails that one with a CQE, and leaves
 * the rest in the SQ.  uring_submit() returns how many it took, and the
 * rest go with the next call.
 */
static void test_short_submit(void)
{
	struct uring r;
	int ret, first, second;
	unsigned pending;

	if (ring_open(&r, 8, 0, "8 entries, for short submits") < 0)
		return;
	queue_with_bad_opcode(&r);
	CHECK_EQ(uring_sq_pending(&r), 4,
		 "uring_sq_pending counts SQEs not yet submitted");
	first = uring_submit(&r);
	pending = uring_sq_pending(&r);
	second = uring_submit(&r);
	CHECK(first == 2 && pending == 2,
	      "bad opcode: the kernel takes the NOP and the bad SQE, leaves 2",
	      "first submit took %d, then %u pending", first, pending);
	CHECK(second == 2 && uring_sq_pending(&r) == 0,
	      "the next uring_submit sends the 2 left over",
	      "second submit took %d, then %u pending", second,
	      uring_sq_pending(&r));
	check_bad_opcode_results(&r, "bad opcode fails with -EINVAL, the 3 NOPs succeed");
	uring_exit(&r);

	/* With SUBMIT_ALL the kernel goes on past the failed SQE. */
	ret = uring_init(&r, 8, IORING_SETUP_SUBMIT_ALL);
	if (ret == -EINVAL) {
		skip("SUBMIT_ALL", "this kernel lacks IORING_SETUP_SUBMIT_ALL");
		return;
	}
	if (!CHECK_RES(ret, 0, "uring_init: SUBMIT_ALL"))
		return;
	queue_with_bad_opcode(&r);
	ret = uring_submit(&r);
	CHECK(ret == 4 && uring_sq_pending(&r) == 0,
	      "SUBMIT_ALL: all 4 taken despite the bad SQE",
	      "submit took %d, %u pending", ret, uring_sq_pending(&r));
	check_bad_opcode_results(&r, "SUBMIT_ALL: bad opcode fails, the 3 NOPs succeed");
	uring_exit(&r);
}

/* One NOP through @r, to show a ring works; returns true on success. */
static bool nop_works(struct uring *r)
{
	struct completion c = { 0 };

	return queue_nops(r, 1, 77) == 1 && reap(r, &c, 1) == 0 &&
	       c.user_data == 77 && c.res == 0;
}

/* uring_init_best() drops the optional flags the kernel refuses, in order. */
static void test_init_best(void)
{
	static const unsigned bogus_first[] = {
		BOGUS_FLAG, IORING_SETUP_COOP_TASKRUN,
	};
	static const unsigned defer_alone[] = { IORING_SETUP_DEFER_TASKRUN };
	/* The wish list ublk.c uses for its queue rings. */
	static const unsigned ublk_wishes[] = {
		IORING_SETUP_DEFER_TASKRUN, IORING_SETUP_SINGLE_ISSUER,
		IORING_SETUP_COOP_TASKRUN,
	};
	const unsigned all_three = IORING_SETUP_DEFER_TASKRUN |
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN;
	struct uring r;
	int ret;

	ret = uring_init(&r, 8, BOGUS_FLAG);
	CHECK_RES(ret, -EINVAL, "uring_init refuses an unknown flag (bit 31)");
	CHECK(r.fd == -1 && !r.sq_map, "a failed uring_init leaves nothing to release",
	      "fd %d, sq_map %p", r.fd, r.sq_map);
	uring_exit(&r);

	ret = uring_init_best(&r, 8, 0, bogus_first, ARRAY_SIZE(bogus_first));
	CHECK_RES(ret, 0, "uring_init_best drops the unknown flag");
	if (ret == 0) {
		CHECK(r.flags == IORING_SETUP_COOP_TASKRUN,
		      "uring_init_best keeps COOP_TASKRUN, listed after the unknown flag",
		      "flags %#x, want %#x", r.flags, IORING_SETUP_COOP_TASKRUN);
		CHECK(nop_works(&r), "ring from uring_init_best runs a NOP",
		      "the NOP did not complete with res 0");
		uring_exit(&r);
	}

	/* DEFER_TASKRUN on its own is invalid: it needs SINGLE_ISSUER. */
	ret = uring_init_best(&r, 8, 0, defer_alone, ARRAY_SIZE(defer_alone));
	CHECK(ret == 0 && r.flags == 0,
	      "uring_init_best drops DEFER_TASKRUN without SINGLE_ISSUER",
	      "returned %d (%s), flags %#x", ret, res_name(ret), r.flags);
	uring_exit(&r);

	ret = uring_init_best(&r, 8, 0, ublk_wishes, ARRAY_SIZE(ublk_wishes));
	CHECK(ret == 0 && r.flags == all_three,
	      "uring_init_best keeps DEFER_TASKRUN|SINGLE_ISSUER|COOP_TASKRUN together",
	      "returned %d (%s), flags %#x, want %#x", ret, res_name(ret),
	      r.flags, all_three);
	if (ret == 0)
		CHECK(nop_works(&r), "DEFER_TASKRUN ring runs a NOP",
		      "the NOP did not complete with res 0");
	uring_exit(&r);

	/* A required flag is never dropped: the call fails instead. */
	ret = uring_init_best(&r, 8, BOGUS_FLAG, bogus_first + 1, 1);
	CHECK(ret == -EINVAL && r.fd == -1,
	      "uring_init_best fails when a required flag is refused",
	      "returned %d (%s), fd %d", ret, res_name(ret), r.fd);
	uring_exit(&r);
}

/* Single reads and writes through the ring, checked with pread/pwrite. */
static void test_rw_single(void)
{
	const uint64_t far = (5ULL << 30) + 4095;	/* past 4 GiB, mid-page */
	static char buf[8192], want[8192];
	struct uring r;
	int fd = temp_file(), ret;

	if (!CHECK(fd >= 0, "temporary file for single reads and writes", "%s",
		   strerror(errno)))
		return;
	if (ring_open(&r, 8, 0, "8 entries, for file I/O") < 0)
		goto out_close;

	fill_random(want, 1000);
	ret = rw_once(&r, IORING_OP_WRITE, fd, want, 1000, 3 * 4096 + 123);
	CHECK_EQ(ret, 1000, "WRITE 1000 bytes at 12411");
	memset(buf, 0, sizeof(buf));
	CHECK_EQ(pread(fd, buf, 1000, 3 * 4096 + 123), 1000, "pread them back");
	CHECK_BYTES(buf, want, 1000, "WRITE put the bytes where pread finds them");

	fill_random(want, 5000);
	CHECK_EQ(pwrite(fd, want, 5000, 777777), 5000, "pwrite 5000 bytes at 777777");
	memset(buf, 0, sizeof(buf));
	ret = rw_once(&r, IORING_OP_READ, fd, buf, 5000, 777777);
	CHECK_EQ(ret, 5000, "READ 5000 bytes at 777777");
	CHECK_BYTES(buf, want, 5000, "READ returns what pwrite wrote");

	fill_random(want, sizeof(want));
	ret = rw_once(&r, IORING_OP_WRITE, fd, want, sizeof(want), far);
	CHECK_EQ(ret, (int)sizeof(want), "WRITE 8192 bytes at 5 GiB + 4095 (64-bit offset)");
	memset(buf, 0, sizeof(buf));
	CHECK_EQ(pread(fd, buf, sizeof(buf), (off_t)far), (int)sizeof(buf),
		 "pread 8192 bytes at 5 GiB + 4095");
	CHECK_BYTES(buf, want, sizeof(want), "the 64-bit offset reached the kernel intact");

	/* The file ends at far + 8192: a read across the end is short. */
	ret = rw_once(&r, IORING_OP_READ, fd, buf, 100, far + sizeof(want) - 40);
	CHECK_EQ(ret, 40, "READ across the end of the file returns the 40 bytes there");
	CHECK_BYTES(buf, want + sizeof(want) - 40, 40, "those 40 bytes are right");
	uring_exit(&r);
out_close:
	close(fd);
}

/*
 * What zero_copy relies on.  IOSQE_IO_LINK: the linked SQE runs only
 * after the first, and only if it did all its bytes; else it is cancelled
 * (-ECANCELED, or no CQE at all when the failed one had SKIP_SUCCESS).
 * IOSQE_CQE_SKIP_SUCCESS: no CQE unless it failed.  A
 * sparse table of fixed buffers: its slots exist but hold nothing, so a
 * READ_FIXED of an empty slot fails (the ublk driver fills the slots).
 */
static void test_link_skip_sparse(void)
{
	static char want[4096], buf[4096];
	struct completion c[2];
	struct io_uring_sqe *sqe;
	struct uring r;
	int fd = temp_file(), ret;

	if (!CHECK(fd >= 0, "temporary file for linked operations", "%s", strerror(errno)))
		return;
	if (ring_open(&r, 8, 0, "8 entries, for links") < 0)
		goto out_close;
	if (!(r.features & IORING_FEAT_CQE_SKIP)) {
		skip("linked operations and sparse buffers",
		     "this kernel lacks IORING_FEAT_CQE_SKIP (Linux 5.17)");
		goto out_exit;
	}
	fill_random(want, sizeof(want));
	sqe = uring_get_sqe(&r);
	uring_prep_rw(sqe, IORING_OP_WRITE, fd, want, sizeof(want), 0, 1);
	sqe->flags = IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
	sqe = uring_get_sqe(&r);
	uring_prep_rw(sqe, IORING_OP_READ, fd, buf, sizeof(buf), 0, 2);
	ret = reap(&r, c, 1);
	CHECK_EQ(ret, 0, "the linked pair completes");
	CHECK_EQ((int)c[0].user_data, 2, "only the READ posts a CQE: the WRITE succeeded silently");
	CHECK_EQ(c[0].res, (int)sizeof(buf), "the READ, run after the WRITE, read it all");
	CHECK_BYTES(buf, want, sizeof(want), "the READ saw the WRITE's bytes");
	CHECK_EQ(uring_cq_ready(&r), 0u, "no other CQE");

	/*
	 * A short READ (the file is 4096 bytes) counts as failed: it posts
	 * its CQE, and breaks the link.  The SQE linked after a failed
	 * SKIP_SUCCESS one is cancelled without a CQE of its own, so the
	 * next CQE after the READ's is that of a NOP submitted later.
	 */
	sqe = uring_get_sqe(&r);
	uring_prep_rw(sqe, IORING_OP_READ, fd, buf, sizeof(buf), 100, 3);
	sqe->flags = IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
	sqe = uring_get_sqe(&r);
	uring_prep_nop(sqe, 4);
	ret = reap(&r, c, 1);
	CHECK_EQ(ret, 0, "a short READ with a link completes");
	CHECK_EQ((int)c[0].user_data, 3, "the short READ posts a CQE despite SKIP_SUCCESS");
	CHECK_EQ(c[0].res, (int)sizeof(buf) - 100, "it read what there was");
	uring_prep_nop(uring_get_sqe(&r), 5);
	ret = reap(&r, c, 1);
	CHECK(ret == 0 && c[0].user_data == 5, "the NOP linked after it left no CQE",
	      "next CQE: user_data %llu res %d", (unsigned long long)c[0].user_data, c[0].res);

	ret = uring_register_sparse_buffers(&r, 4);
	CHECK_EQ(ret, 0, "a sparse table of 4 fixed buffers");
	if (ret == 0) {
		sqe = uring_get_sqe(&r);
		uring_prep_rw(sqe, IORING_OP_READ_FIXED, fd, NULL, 512, 0, 6);
		sqe->buf_index = 2;
		ret = reap(&r, c, 1);
		CHECK(ret == 0 && c[0].res == -EFAULT, "READ_FIXED into an empty slot fails with EFAULT",
		      "%s", res_name(ret < 0 ? ret : c[0].res));
	}
out_exit:
	uring_exit(&r);
out_close:
	close(fd);
}

/*
 * Queue depth 32: 64 batches of 32 reads and writes at random offsets and
 * lengths, all in flight at once.  In each batch every request gets its
 * own 64 KiB region of the file, so no two overlap and the result does
 * not depend on the order the kernel runs them in.  A copy of the file in
 * memory says what every read must return and what the file must hold.
 */
enum { QD = 32, REGION = 64 << 10, N_REGIONS = 128, MAX_IO = 16384 };

struct rw_req {
	int op;
	uint64_t off;
	uint32_t len;
	char buf[MAX_IO];
};

/* Prepare one batch: QD requests in distinct random regions. */
static void prep_batch(struct uring *r, int fd, struct rw_req *reqs)
{
	unsigned regions[N_REGIONS];

	for (unsigned i = 0; i < N_REGIONS; i++)
		regions[i] = i;
	for (unsigned i = 0; i < QD; i++) {	/* partial Fisher-Yates */
		unsigned j = i + (unsigned)rand_below(N_REGIONS - i), t = regions[i];
		struct rw_req *q = &reqs[i];

		regions[i] = regions[j];
		regions[j] = t;
		q->op = rand64() & 1 ? IORING_OP_WRITE : IORING_OP_READ;
		q->len = 1 + (uint32_t)rand_below(MAX_IO);
		q->off = (uint64_t)regions[i] * REGION + rand_below(REGION - q->len + 1);
		if (q->op == IORING_OP_WRITE)
			fill_random(q->buf, q->len);
		else
			memset(q->buf, 0xee, q->len);
		uring_prep_rw(uring_get_sqe(r), q->op, fd, q->buf, q->len,
			      q->off, i);
	}
}

/* Check the batch's CQEs against @model and apply its writes to it. */
static void finish_batch(struct uring *r, const struct rw_req *reqs,
			 char *model, unsigned batch, struct first_error *e)
{
	unsigned ready = uring_cq_ready(r);

	if (ready != QD) {
		note(e, "batch %u: %u CQEs ready after waiting for %u", batch, ready, QD);
		return;
	}
	for (unsigned i = 0; i < QD; i++) {
		const struct io_uring_cqe *cqe = uring_cqe_at(r, i);
		const struct rw_req *q;
		size_t d;

		if (cqe->user_data >= QD) {
			note(e, "batch %u: CQE with user_data %llu", batch,
			     (unsigned long long)cqe->user_data);
			return;
		}
		q = &reqs[cqe->user_data];
		if (cqe->res != (int)q->len) {
			note(e, "batch %u: %s of %u at %llu returned %d", batch,
			     q->op == IORING_OP_READ ? "READ" : "WRITE", q->len,
			     (unsigned long long)q->off, cqe->res);
			continue;
		}
		if (q->op == IORING_OP_WRITE) {
			memcpy(model + q->off, q->buf, q->len);
			continue;
		}
		d = first_diff(q->buf, model + q->off, q->len);
		if (d < q->len)
			note(e, "batch %u: READ of %u at %llu differs at byte %zu",
			     batch, q->len, (unsigned long long)q->off, d);
	}
	uring_cq_advance(r, QD);
}

static void test_rw_queue_depth(void)
{
	const size_t size = (size_t)N_REGIONS * REGION;	/* 8 MiB */
	struct rw_req *reqs = calloc(QD, sizeof(*reqs));
	char *model = malloc(size), *file = malloc(size);
	struct first_error e = { 0 };
	struct uring r;
	int fd = temp_file();

	if (!CHECK(reqs && model && file && fd >= 0,
		   "buffers and a temporary file for the queue-depth test",
		   "out of memory or mkstemp failed"))
		goto out_free;
	if (ring_open(&r, QD, 0, "32 entries") < 0)
		goto out_free;
	fill_random(model, size);
	if (!CHECK_EQ(pwrite(fd, model, size, 0), (long long)size,
		      "pwrite 8 MiB of random data"))
		goto out_exit;

	for (unsigned batch = 0; batch < 64 && !e.set; batch++) {
		int ret;

		prep_batch(&r, fd, reqs);
		ret = uring_submit_and_wait(&r, QD);
		if (ret != QD) {
			note(&e, "batch %u: uring_submit_and_wait returned %d (%s)",
			     batch, ret, res_name(ret));
			break;
		}
		finish_batch(&r, reqs, model, batch, &e);
	}
	CHECK_NO_ERROR(e, "2048 random READs and WRITEs, 32 in flight, all right");
	CHECK_EQ(pread(fd, file, size, 0), (long long)size, "pread the whole file");
	CHECK_BYTES(file, model, size,
		    "the file holds exactly what the WRITEs put there");
out_exit:
	uring_exit(&r);
out_free:
	if (fd >= 0)
		close(fd);
	free(file);
	free(model);
	free(reqs);
}

/* Failing requests complete with -errno in the CQE; the ring goes on. */
static void test_failing_ops(void)
{
	char buf[16];
	struct uring r;
	int fd;

	if (ring_open(&r, 8, 0, "8 entries, for failing requests") < 0)
		return;
	CHECK_RES(rw_once(&r, IORING_OP_READ, -1, buf, sizeof(buf), 0), -EBADF,
		  "READ on fd -1 fails with -EBADF");

	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	close(fd);
	CHECK_RES(rw_once(&r, IORING_OP_READ, fd, buf, sizeof(buf), 0), -EBADF,
		  "READ on a closed fd fails with -EBADF");

	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	CHECK_RES(rw_once(&r, IORING_OP_WRITE, fd, buf, sizeof(buf), 0), -EBADF,
		  "WRITE on a read-only fd fails with -EBADF");
	close(fd);

	CHECK(nop_works(&r), "the ring still works after failed requests",
	      "the NOP did not complete with res 0");
	uring_exit(&r);
}

/* uring_wait_cqe() submits what is pending and sleeps until a CQE comes. */
static void test_wait_cqe(void)
{
	struct io_uring_cqe *cqe;
	struct uring r;
	char buf[16] = "";
	int pipefd[2], ret;

	if (ring_open(&r, 8, 0, "8 entries, for uring_wait_cqe") < 0)
		return;
	queue_nops(&r, 1, 5);
	ret = uring_wait_cqe(&r, &cqe);
	CHECK(ret == 0 && cqe->user_data == 5 && uring_sq_pending(&r) == 0,
	      "uring_wait_cqe submits a pending NOP and returns its CQE",
	      "returned %d (%s), %u still pending", ret, res_name(ret),
	      uring_sq_pending(&r));
	if (ret == 0)
		uring_cq_advance(&r, 1);

	queue_nops(&r, 1, 6);
	uring_submit(&r);
	ret = uring_wait_cqe(&r, &cqe);
	CHECK(ret == 0 && cqe->user_data == 6 && uring_cq_ready(&r) == 1,
	      "uring_wait_cqe returns an already-posted CQE without consuming it",
	      "returned %d, %u ready", ret, uring_cq_ready(&r));
	if (ret == 0)
		uring_cq_advance(&r, 1);

	/*
	 * A READ of an empty pipe cannot complete until someone writes:
	 * no CQE after submit, then the write, then wait_cqe gets the data.
	 */
	if (!CHECK(pipe(pipefd) == 0, "pipe", "%s", strerror(errno)))
		goto out;
	uring_prep_rw(uring_get_sqe(&r), IORING_OP_READ, pipefd[0], buf,
		      sizeof(buf), 0, 7);
	CHECK_EQ(uring_submit(&r), 1, "READ of an empty pipe submitted");
	CHECK_EQ(uring_cq_ready(&r), 0, "no CQE while the pipe is empty");
	CHECK_EQ(write(pipefd[1], "hello", 5), 5, "write 5 bytes into the pipe");
	ret = uring_wait_cqe(&r, &cqe);
	CHECK(ret == 0 && cqe->user_data == 7 && cqe->res == 5 &&
	      !memcmp(buf, "hello", 5),
	      "uring_wait_cqe waits for the READ the write completed",
	      "returned %d, user_data %llu, res %d, buf \"%.5s\"", ret,
	      ret ? 0ULL : (unsigned long long)cqe->user_data,
	      ret ? 0 : cqe->res, buf);
	if (ret == 0)
		uring_cq_advance(&r, 1);
	close(pipefd[0]);
	close(pipefd[1]);
out:
	uring_exit(&r);
}

/*
 * With DEFER_TASKRUN the kernel posts completions only inside
 * io_uring_enter(GETEVENTS): a READ the pipe write made ready shows up
 * after uring_submit_and_poll(), and not before.
 */
static void test_submit_and_poll(void)
{
	const unsigned flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	struct uring r;
	char buf[16];
	int pipefd[2], ret;

	ret = uring_init(&r, 8, flags);
	if (ret == -EINVAL) {
		skip("uring_submit_and_poll", "this kernel lacks IORING_SETUP_DEFER_TASKRUN");
		return;
	}
	if (!CHECK_RES(ret, 0, "uring_init: SINGLE_ISSUER|DEFER_TASKRUN"))
		return;
	if (!CHECK(pipe(pipefd) == 0, "pipe", "%s", strerror(errno)))
		goto out;
	uring_prep_rw(uring_get_sqe(&r), IORING_OP_READ, pipefd[0], buf,
		      sizeof(buf), 0, 8);
	CHECK_EQ(uring_submit(&r), 1, "DEFER_TASKRUN: READ of an empty pipe submitted");
	CHECK_EQ(write(pipefd[1], "x", 1), 1, "DEFER_TASKRUN: write 1 byte");
	CHECK_EQ(uring_cq_ready(&r), 0,
		 "DEFER_TASKRUN: no CQE until the task enters the kernel");
	ret = uring_submit_and_poll(&r);
	CHECK(ret >= 0 && uring_cq_ready(&r) == 1 &&
	      uring_cqe_at(&r, 0)->user_data == 8 && uring_cqe_at(&r, 0)->res == 1,
	      "uring_submit_and_poll runs the deferred completion",
	      "returned %d (%s), %u CQEs ready", ret, res_name(ret),
	      uring_cq_ready(&r));
	uring_cq_advance(&r, uring_cq_ready(&r));
	close(pipefd[0]);
	close(pipefd[1]);
out:
	uring_exit(&r);
}

/*
 * uring_exit() is documented safe on a zeroed ring and safe to repeat.
 * Neither may close a descriptor the ring does not own.  A zeroed ring
 * has fd 0, so the first check makes sure fd 0 is open to be noticed.
 */
static void test_exit(void)
{
	struct uring r;
	int ret, reused;

	if (!fd_is_open(0) && open("/dev/null", O_RDONLY) != 0)
		printf("# cannot put /dev/null on fd 0: %s\n", strerror(errno));
	memset(&r, 0, sizeof(r));
	uring_exit(&r);
	CHECK(fd_is_open(0), "uring_exit on a zeroed ring closes nothing",
	      "it closed fd 0 (a zeroed ring has fd 0, which uring_exit takes as its own)");
	if (!fd_is_open(0))
		open("/dev/null", O_RDONLY);	/* put stdin back for the rest */
	CHECK(r.fd == -1 && !r.sq_map && !r.cq_map && !r.sqe_map,
	      "uring_exit leaves a zeroed ring with fd -1 and no mappings",
	      "fd %d", r.fd);

	if (ring_open(&r, 8, 0, "8 entries, for double exit") < 0)
		return;
	uring_exit(&r);
	CHECK(r.fd == -1 && !r.sq_map && !r.cq_map && !r.sqe_map,
	      "uring_exit resets the ring", "fd %d, sq_map %p", r.fd, r.sq_map);
	/* The ring's old number is likely reused now: it must survive. */
	reused = open("/dev/null", O_RDONLY | O_CLOEXEC);
	uring_exit(&r);
	CHECK(fd_is_open(reused), "a second uring_exit closes nothing",
	      "fd %d was closed", reused);
	close(reused);

	ret = uring_init(&r, 0, 0);
	CHECK_RES(ret, -EINVAL, "uring_init with 0 entries fails");
	uring_exit(&r);	/* must be a no-op: nothing was built */
}

/*
 * One READ of a pipe into a provided buffer of group @bgid: its result,
 * and in *bid the buffer it went into (-1 when none).
 */
static int read_selected(struct uring *r, int fd, uint16_t bgid, int *bid)
{
	struct io_uring_sqe *sqe = uring_get_sqe(r);
	struct io_uring_cqe *cqe;
	int ret;

	*bid = -1;
	if (!sqe)
		return -EBUSY;
	uring_prep_rw(sqe, IORING_OP_READ, fd, NULL, 64, 0, 42);
	sqe->off = (uint64_t)-1;	/* a pipe: no offset */
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = bgid;
	ret = uring_wait_cqe(r, &cqe);
	if (ret < 0)
		return ret;
	ret = cqe->res;
	if (cqe->flags & IORING_CQE_F_BUFFER)
		*bid = (int)uring_cqe_buf_id(cqe);
	uring_cq_advance(r, 1);
	return ret;
}

/*
 * Provided buffers: reads take the ring's buffers in order and name them
 * in the CQE; an empty ring fails a read with -ENOBUFS; a buffer given
 * back is taken again; the 16-bit tail wraps.
 */
static void test_buf_ring(void)
{
	static char bufs[4][64];
	struct uring_buf_ring br;
	struct first_error e = { 0 };
	struct uring r;
	int p[2], ret, bid;

	if (ring_open(&r, 8, 0, "8 entries, for provided buffers") < 0)
		return;
	CHECK_RES(uring_buf_ring_init(&r, &br, 3, 8), -EINVAL,
		  "uring_buf_ring_init refuses 3 entries (not a power of two)");
	ret = uring_buf_ring_init(&r, &br, 4, 7);
	if (ret == -EINVAL) {
		skip("provided-buffer rings", "this kernel lacks IORING_REGISTER_PBUF_RING (5.19)");
		uring_exit(&r);
		return;
	}
	CHECK_RES(ret, 0, "uring_buf_ring_init: 4 buffers, group 7");
	if (ret < 0 || pipe(p) < 0) {
		uring_buf_ring_exit(&r, &br);
		uring_exit(&r);
		return;
	}
	for (unsigned i = 0; i < 4; i++)
		uring_buf_ring_add(&br, bufs[i], sizeof(bufs[i]), (uint16_t)(10 + i));
	uring_buf_ring_publish(&br);
	for (int i = 0; i < 4; i++) {
		char msg[16];

		snprintf(msg, sizeof(msg), "m%d", i);
		if (write(p[1], msg, 2) != 2)
			break;
		ret = read_selected(&r, p[0], 7, &bid);
		if (ret != 2 || bid != 10 + i || memcmp(bufs[i], msg, 2))
			note(&e, "read %d: %d bytes into buffer %d", i, ret, bid);
	}
	CHECK_NO_ERROR(e, "four reads take the four buffers in order, named in the CQE");
	if (write(p[1], "xy", 2) == 2) {
		ret = read_selected(&r, p[0], 7, &bid);
		CHECK(ret == -ENOBUFS && bid == -1, "with every buffer taken a read fails with -ENOBUFS",
		      "%d (%s), buffer %d", ret, res_name(ret), bid);
		uring_buf_ring_add(&br, bufs[2], sizeof(bufs[2]), 12);
		uring_buf_ring_publish(&br);
		ret = read_selected(&r, p[0], 7, &bid);
		CHECK(ret == 2 && bid == 12 && !memcmp(bufs[2], "xy", 2),
		      "a buffer given back is taken again", "%d, buffer %d", ret, bid);
	}
	uring_buf_ring_exit(&r, &br);
	CHECK(!br.kbufs, "uring_buf_ring_exit releases the ring", "kbufs %p", (void *)br.kbufs);
	uring_buf_ring_exit(&r, &br);	/* a second exit does nothing */

	/* One buffer, given back after every read: the tail wraps at 2^16. */
	memset(&e, 0, sizeof(e));
	ret = uring_buf_ring_init(&r, &br, 1, 9);
	if (CHECK_RES(ret, 0, "uring_buf_ring_init: 1 buffer, group 9")) {
		for (unsigned i = 0; i < 65536 + 10; i++) {
			uring_buf_ring_add(&br, bufs[0], sizeof(bufs[0]), 5);
			uring_buf_ring_publish(&br);
			if (write(p[1], "w", 1) != 1 ||
			    (ret = read_selected(&r, p[0], 9, &bid)) != 1 || bid != 5) {
				note(&e, "round %u: %d, buffer %d", i, ret, bid);
				break;
			}
		}
		CHECK_NO_ERROR(e, "one buffer given back 65546 times: the ring's tail wraps");
		uring_buf_ring_exit(&r, &br);
	}
	close(p[0]);
	close(p[1]);
	uring_exit(&r);
}

/*
 * A wrapper bug can leave uring_wait_cqe() sleeping for a CQE that never
 * comes.  The whole run takes well under a second, so after a minute the
 * test reports the hang and fails instead of stalling CI.
 */
static void on_watchdog(int sig)
{
	static const char msg[] = "FAIL - watchdog: still running after 60 s (a wait that never returns?)\n";

	ssize_t n = write(STDOUT_FILENO, msg, sizeof(msg) - 1);

	(void)sig;
	(void)n;	/* nothing more to do if even this fails */
	_exit(1);
}

int main(void)
{
	struct uring probe;
	int ret;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGALRM, on_watchdog);
	alarm(60);
	ret = uring_init(&probe, 8, 0);
	if (ret == -ENOSYS || ret == -EPERM) {
		printf("skip - io_uring_setup: %s (io_uring is disabled here; see sysctl kernel.io_uring_disabled)\n",
		       strerror(-ret));
		return CHECK_EXIT_SKIP;
	}
	uring_exit(&probe);

	test_abi_layout();
	test_nop_round_trip();
	test_nop_many_wraps();
	test_index_wrap_at_2_32();
	test_big_entries("SQE128", IORING_SETUP_SQE128, 128, 16);
	test_big_entries("CQE32", IORING_SETUP_CQE32, 64, 32);
	test_big_entries("SQE128|CQE32", IORING_SETUP_SQE128 | IORING_SETUP_CQE32,
			 128, 32);
	test_sq_full();
	test_short_submit();
	test_init_best();
	test_rw_single();
	test_link_skip_sparse();
	test_rw_queue_depth();
	test_failing_ops();
	test_wait_cqe();
	test_submit_and_poll();
	test_buf_ring();
	test_exit();

	return check_summary("uring_test");
}
