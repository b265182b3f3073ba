/*
 * batch_test.c - the pure parts of the batched data path (ublk_batch.c):
 * the ABI of the batch commands, how PREP / COMMIT elements are packed,
 * the sizes of the FETCH buffers, and how fetched tags are taken.
 * Exit status: 0 all passed, 1 a check failed.
 */
#include "check.h"
#include "ublk_queue.h"

#include <errno.h>

#define CHECK_EQ(got, want, name) \
	CHECK((got) == (want), (name), "got %llu, want %llu", \
	      (unsigned long long)(got), (unsigned long long)(want))

/* _IOWR('u', nr, 16 bytes), spelled out. */
static uint32_t iowr_u16(unsigned nr)
{
	return 3U << 30 | 16U << 16 | (uint32_t)'u' << 8 | nr;
}

static void test_abi(void)
{
	CHECK(sizeof(struct ublk_batch_io) == 16 &&
	      offsetof(struct ublk_batch_io, flags) == 2 &&
	      offsetof(struct ublk_batch_io, nr_elem) == 4 &&
	      offsetof(struct ublk_batch_io, elem_bytes) == 6 &&
	      offsetof(struct ublk_batch_io, reserved2) == 8,
	      "struct ublk_batch_io matches the kernel layout",
	      "size %zu, nr_elem at %zu, elem_bytes at %zu", sizeof(struct ublk_batch_io),
	      offsetof(struct ublk_batch_io, nr_elem), offsetof(struct ublk_batch_io, elem_bytes));
	CHECK(sizeof(struct ublk_elem_header) == 8 &&
	      offsetof(struct ublk_elem_header, buf_index) == 2 &&
	      offsetof(struct ublk_elem_header, result) == 4,
	      "struct ublk_elem_header matches the kernel layout", "size %zu",
	      sizeof(struct ublk_elem_header));
	CHECK(UBLK_U_IO_PREP_IO_CMDS == iowr_u16(0x25) &&
	      UBLK_U_IO_COMMIT_IO_CMDS == iowr_u16(0x26) &&
	      UBLK_U_IO_FETCH_IO_CMDS == iowr_u16(0x27),
	      "batch opcodes are _IOWR('u', 0x25..0x27, struct ublk_batch_io)",
	      "PREP %#x, want %#x", UBLK_U_IO_PREP_IO_CMDS, iowr_u16(0x25));
	CHECK(UBLK_F_BATCH_IO == 1ULL << 15, "UBLK_F_BATCH_IO is bit 15", "%#llx",
	      (unsigned long long)UBLK_F_BATCH_IO);
}

static void test_elem_bytes(void)
{
	CHECK_EQ(batch_elem_bytes(0), 8, "an element is 8 bytes without flags");
	CHECK_EQ(batch_elem_bytes(UBLK_BATCH_F_HAS_BUF_ADDR), 16,
		 "HAS_BUF_ADDR adds 8 bytes");
	CHECK_EQ(batch_elem_bytes(UBLK_BATCH_F_HAS_BUF_ADDR | UBLK_BATCH_F_HAS_ZONE_LBA), 24,
		 "HAS_ZONE_LBA adds 8 more");
}

static void test_elem_put(void)
{
	struct ublk_elem_header h;
	unsigned char buf[64];
	uint64_t addr;

	memset(buf, 0xaa, sizeof(buf));
	batch_elem_put(buf, 0, 0, 3, 4096, 0xdead);
	batch_elem_put(buf, 0, 1, 4095, -5, 0xdead);
	memcpy(&h, buf + 8, sizeof(h));
	CHECK(h.tag == 4095 && h.buf_index == 0 && h.result == -5,
	      "element 1 of 8-byte elements: tag, no buffer index, result",
	      "tag %u, buf_index %u, result %d", h.tag, h.buf_index, h.result);
	memcpy(&h, buf, sizeof(h));
	CHECK(h.tag == 3 && h.result == 4096, "element 0 untouched by element 1",
	      "tag %u, result %d", h.tag, h.result);
	CHECK(buf[16] == 0xaa, "no address is written without HAS_BUF_ADDR",
	      "byte 16 is %#x", buf[16]);

	memset(buf, 0xaa, sizeof(buf));
	batch_elem_put(buf, UBLK_BATCH_F_HAS_BUF_ADDR, 2, 7, 512, 0x123456789abcdef0ULL);
	memcpy(&h, buf + 32, sizeof(h));
	memcpy(&addr, buf + 40, sizeof(addr));
	CHECK(h.tag == 7 && h.result == 512 && addr == 0x123456789abcdef0ULL,
	      "element 2 of 16-byte elements: header, then the address",
	      "tag %u, result %d, addr %#llx", h.tag, h.result, (unsigned long long)addr);
	CHECK(buf[31] == 0xaa && buf[48] == 0xaa, "the neighbours are untouched",
	      "bytes %#x %#x", buf[31], buf[48]);
}

static void test_fetch_sizes(void)
{
	static const struct { unsigned depth, nbufs, buf_len; } cases[] = {
		{ 1, 1, 8 }, { 3, 4, 8 }, { 4, 4, 8 }, { 100, 128, 200 },
		{ 128, 128, 256 }, { 129, 128, 256 }, { 4096, 128, 256 },
	};
	struct first_error e = { 0 };

	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		unsigned nbufs, buf_len;

		batch_fetch_sizes(cases[i].depth, &nbufs, &buf_len);
		if (nbufs != cases[i].nbufs || buf_len != cases[i].buf_len)
			note(&e, "depth %u: %u buffers of %u bytes, want %u of %u",
			     cases[i].depth, nbufs, buf_len, cases[i].nbufs, cases[i].buf_len);
	}
	CHECK_NO_ERROR(e, "FETCH buffers: a power of two, one per tag up to 128");
	for (unsigned depth = 1; depth <= UBLK_MAX_QUEUE_DEPTH; depth++) {
		unsigned nbufs, buf_len;

		batch_fetch_sizes(depth, &nbufs, &buf_len);
		if (nbufs & (nbufs - 1) || (depth <= 128 && nbufs < depth) || buf_len % 8 ||
		    buf_len / 2 < (depth < 128 ? depth : 128) ||
		    batch_ring_entries(depth) < nbufs + 4) {
			note(&e, "depth %u: %u buffers of %u bytes, %u SQEs", depth, nbufs,
			     buf_len, batch_ring_entries(depth));
			break;
		}
	}
	CHECK_NO_ERROR(e, "every depth: buffers hold a CQE's tags, the CQ one CQE per buffer");
}

static void test_take_tags(void)
{
	struct ublk_tag state[8];
	uint16_t ready[8];
	unsigned n = 0;
	int ret;

	memset(state, 0, sizeof(state));
	ret = batch_take_tags((const uint16_t[]){ 3, 0, 7 }, 3, 8, state, ready, &n);
	CHECK(ret == 0 && n == 3 && ready[0] == 3 && ready[1] == 0 && ready[2] == 7 &&
	      state[3].owned && state[0].owned && state[7].owned && !state[1].owned,
	      "three tags taken in order and marked owned", "ret %d, n %u", ret, n);
	ret = batch_take_tags((const uint16_t[]){ 0xffff, 5 }, 2, 8, state, ready, &n);
	CHECK(ret == 0 && n == 4 && ready[3] == 5 && state[5].owned,
	      "an unused slot (0xffff) is skipped", "ret %d, n %u", ret, n);
	ret = batch_take_tags((const uint16_t[]){ 7 }, 1, 8, state, ready, &n);
	CHECK(ret == -EPROTO && n == 4, "a tag already owned is refused",
	      "ret %d, n %u", ret, n);
	ret = batch_take_tags((const uint16_t[]){ 8 }, 1, 8, state, ready, &n);
	CHECK(ret == -EPROTO && n == 4, "a tag beyond the depth is refused",
	      "ret %d, n %u", ret, n);
	ret = batch_take_tags((const uint16_t[]){ 1, 1 }, 2, 8, state, ready, &n);
	CHECK(ret == -EPROTO && n == 5 && state[1].owned,
	      "a tag twice in one batch: the first taken, the second refused",
	      "ret %d, n %u", ret, n);
	ret = batch_take_tags(NULL, 0, 8, state, ready, &n);
	CHECK(ret == 0 && n == 5, "an empty batch takes nothing", "ret %d, n %u", ret, n);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_abi();
	test_elem_bytes();
	test_elem_put();
	test_fetch_sizes();
	test_take_tags();
	return check_summary("batch_test");
}
