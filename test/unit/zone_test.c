/*
 * zone_test.c - unit tests for the zone model in zone.c: the zone
 * conditions and their transitions, write pointer and capacity checks,
 * the open and active limits, OPEN/CLOSE/FINISH/RESET/RESET_ALL, zone
 * append, zone reports field by field, conventional zones, what RESET
 * and FINISH give back, prepare_write and direct, the zone state after a
 * crash (kill -9) and reopening, and the limits under concurrent writers
 * and zone commands.
 *
 * The zoned backend wraps a plain array (struct ram below), shared with
 * a forked child so that the crash test sees what the child wrote.  The
 * device: 8 zones of 64 KiB, 48 KiB capacity, the first conventional,
 * at most 2 open and 3 active zones.
 *
 * Each check prints one line, "ok - name", "FAIL - name: details
 * (line N)" or "skip - name: why".  Exit status: 0 all passed, 1 a check
 * failed.  Calls that fail on purpose print why on stderr.
 */
#define _GNU_SOURCE
#include "zone.h"
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KiB		1024ULL
#define ZS		(64 * KiB)	/* zone size */
#define CAP		(48 * KiB)	/* zone capacity */
#define NZ		8
#define SIZE		(NZ * ZS)
#define BLK		(4 * KiB)
#define NO_CRASH	UINT64_MAX

/* A check of one number against the value it should have. */
static bool check_eq(int line, long long got, long long want, const char *name)
{
	return check(line, got == want, name, "got %lld, want %lld", got, want);
}

#define CHECK_EQ(got, want, name) \
	check_eq(__LINE__, (long long)(got), (long long)(want), (name))

/* ---- the inner store: a plain array ---- */

struct ram {
	unsigned char *buf;	/* MAP_SHARED: a forked child's writes are seen */
	atomic_uint prepares, discards;
	atomic_ullong last_discard_off, last_discard_len;
	int prepare_error;	/* what prepare_write returns */
	uint64_t crash_at;	/* a write there lands, then the process dies */
};

static struct ram ram;

static int ram_read(void *data, void *buf, uint64_t off, uint32_t len)
{
	struct ram *r = data;

	if (off > SIZE || len > SIZE - off)
		return -EIO;
	memcpy(buf, r->buf + off, len);
	return 0;
}

static int ram_write(void *data, const void *buf, uint64_t off, uint32_t len)
{
	struct ram *r = data;

	if (off > SIZE || len > SIZE - off)
		return -EIO;
	memcpy(r->buf + off, buf, len);
	if (off == r->crash_at)
		raise(SIGKILL);	/* the data is in, the write pointer not yet */
	return 0;
}

static int ram_discard(void *data, uint64_t off, uint64_t len)
{
	struct ram *r = data;

	memset(r->buf + off, 0, len);
	r->last_discard_off = off;
	r->last_discard_len = len;
	r->discards++;
	return 0;
}

static int ram_prepare_write(void *data, uint64_t off, uint32_t len)
{
	struct ram *r = data;

	(void)off;
	(void)len;
	r->prepares++;
	return r->prepare_error;
}

static void *ram_direct(void *data, uint64_t off, uint32_t len, bool for_write)
{
	struct ram *r = data;

	(void)len;
	(void)for_write;
	return r->buf + off;
}

static const struct backend_ops ram_ops = {
	.name = "ram",
	.read = ram_read,
	.write = ram_write,
	.discard = ram_discard,
	.write_zeroes = ram_discard,
	.prepare_write = ram_prepare_write,
	.direct = ram_direct,
};

/* ---- helpers ---- */

static struct zoned z;
static const struct backend_ops *ops = &zoned_backend_ops;

static struct zone_config small_config(int meta_fd, bool create)
{
	return (struct zone_config){
		.size = SIZE, .zone_size = ZS, .zone_capacity = CAP, .conventional = 1,
		.max_open = 2, .max_active = 3, .meta_fd = meta_fd, .create = create,
	};
}

/* Open the small device on a zeroed store. */
static int open_fresh(void)
{
	struct zone_config cfg = small_config(-1, true);

	memset(ram.buf, 0, SIZE);
	return zoned_open(&z, &cfg, &ram_ops, &ram);
}

static uint64_t zstart(unsigned zno)
{
	return zno * ZS;
}

/* The byte every write puts at device offset @off. */
static unsigned char pat(uint64_t off)
{
	return (unsigned char)(off * 131 + (off >> 12) + 7);
}

static void fill_pat(unsigned char *b, uint64_t off, uint64_t len)
{
	for (uint64_t i = 0; i < len; i++)
		b[i] = pat(off + i);
}

/* Write @len pattern bytes at @off through the zoned backend. */
static int wr(uint64_t off, uint32_t len)
{
	static unsigned char b[ZS];

	fill_pat(b, off, len);
	return ops->write(&z, b, off, len);
}

static int append(unsigned zno, uint32_t len, uint64_t expect_at, uint64_t *at)
{
	static unsigned char b[ZS];

	fill_pat(b, expect_at, len);
	*at = UINT64_MAX;
	return ops->zone_append(&z, b, zstart(zno), len, at);
}

static int mgmt(enum backend_zone_op op, unsigned zno)
{
	return ops->zone_mgmt(&z, op, zstart(zno));
}

/* Zone @zno's descriptor (len 0 if the report failed). */
static struct blk_zone rep(unsigned zno)
{
	struct blk_zone bz;

	if (ops->report_zones(&z, zstart(zno), 1, &bz, sizeof(bz)) != sizeof(bz))
		memset(&bz, 0, sizeof(bz));
	return bz;
}

static unsigned cond(unsigned zno)
{
	return rep(zno).cond;
}

/* The write pointer of @zno, in bytes from its start. */
static uint64_t wp(unsigned zno)
{
	struct blk_zone bz = rep(zno);

	return (bz.wp - bz.start) << 9;
}

/* Whether zone @zno reads as the pattern up to @data bytes, then zeros. */
static bool zone_reads(unsigned zno, uint64_t data, struct first_error *e)
{
	static unsigned char b[ZS], want[ZS];

	fill_pat(want, zstart(zno), data);
	memset(want + data, 0, ZS - data);
	if (ops->read(&z, b, zstart(zno), ZS)) {
		note(e, "zone %u: read failed", zno);
		return false;
	}
	if (memcmp(b, want, ZS)) {
		note(e, "zone %u: byte %zu differs", zno, first_diff(b, want, ZS));
		return false;
	}
	return true;
}

#define CHECK_READS(zno, data, name) do {				\
	struct first_error e_ = { 0 };					\
	zone_reads((zno), (data), &e_);					\
	CHECK_NO_ERROR(e_, (name));					\
} while (0)

/* Whether a descriptor says what it should, or why not in @e. */
static void expect_zone(const struct blk_zone *bz, unsigned zno, uint64_t wp_bytes,
			unsigned want_cond, struct first_error *e)
{
	bool conv = zno == 0;
	struct blk_zone want = {
		.start = zstart(zno) >> 9, .len = ZS >> 9,
		.wp = (zstart(zno) + wp_bytes) >> 9,
		.type = conv ? BLK_ZONE_TYPE_CONVENTIONAL : BLK_ZONE_TYPE_SEQWRITE_REQ,
		.cond = (uint8_t)want_cond, .capacity = (conv ? ZS : CAP) >> 9,
	};

	if (memcmp(bz, &want, sizeof(want)))
		note(e, "zone %u: start %llu len %llu wp %llu type %u cond %u capacity %llu, want %llu %llu %llu %u %u %llu",
		     zno, (unsigned long long)bz->start, (unsigned long long)bz->len,
		     (unsigned long long)bz->wp, bz->type, bz->cond,
		     (unsigned long long)bz->capacity, (unsigned long long)want.start,
		     (unsigned long long)want.len, (unsigned long long)want.wp, want.type,
		     want.cond, (unsigned long long)want.capacity);
}

/* Check every zone against @wps and @conds. */
static void check_all_zones(const uint64_t wps[NZ], const unsigned conds[NZ], const char *name)
{
	struct blk_zone bz[NZ];
	struct first_error e = { 0 };

	if (ops->report_zones(&z, 0, NZ, bz, sizeof(bz)) != (int)sizeof(bz))
		note(&e, "report failed");
	for (unsigned i = 0; i < NZ && !e.set; i++)
		expect_zone(&bz[i], i, wps[i], conds[i], &e);
	CHECK_NO_ERROR(e, name);
}

/* ---- the state machine ---- */

static void test_config_refused(void)
{
	struct zone_config bad[] = {
		{ .size = SIZE, .zone_size = 48 * KiB, .meta_fd = -1 },
		{ .size = SIZE, .zone_size = 2 * KiB, .meta_fd = -1 },
		{ .size = SIZE + BLK, .zone_size = ZS, .meta_fd = -1 },
		{ .size = SIZE, .zone_size = ZS, .zone_capacity = ZS + BLK, .meta_fd = -1 },
		{ .size = SIZE, .zone_size = ZS, .zone_capacity = 6 * KiB, .meta_fd = -1 },
		{ .size = SIZE, .zone_size = ZS, .conventional = NZ, .meta_fd = -1 },
	};
	struct first_error e = { 0 };

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int ret = zoned_open(&z, &bad[i], &ram_ops, &ram);

		if (ret != -EINVAL)
			note(&e, "config %zu: got %d, want -EINVAL", i, ret);
	}
	CHECK_NO_ERROR(e, "impossible geometries are refused with EINVAL");
}

static void test_initial_report(void)
{
	uint64_t wps[NZ] = { ZS };
	unsigned conds[NZ] = { BLK_ZONE_COND_NOT_WP };

	for (unsigned i = 1; i < NZ; i++)
		conds[i] = BLK_ZONE_COND_EMPTY;
	check_all_zones(wps, conds, "fresh device: conventional zone 0, EMPTY zones after");
}

static void test_fill_to_full(void)
{
	struct first_error e = { 0 };

	CHECK_RES(wr(zstart(1), BLK), 0, "write at the write pointer");
	CHECK_EQ(cond(1), BLK_ZONE_COND_IMP_OPEN, "a write opens the zone implicitly");
	CHECK_EQ(wp(1), BLK, "the write pointer advances");
	for (uint64_t off = BLK; off < CAP; off += BLK) {
		int ret = wr(zstart(1) + off, BLK);

		if (ret)
			note(&e, "write at %llu: %d", (unsigned long long)off, ret);
		else if (off + BLK < CAP && cond(1) != BLK_ZONE_COND_IMP_OPEN)
			note(&e, "at %llu: condition %u", (unsigned long long)off, cond(1));
	}
	CHECK_NO_ERROR(e, "sequential writes up to the capacity");
	CHECK_EQ(cond(1), BLK_ZONE_COND_FULL, "a zone written to its capacity is FULL");
	CHECK_EQ(wp(1), CAP, "FULL: the write pointer at the capacity");
	CHECK_EQ(z.nr_imp_open, 0, "a FULL zone is no longer open");
	CHECK_READS(1, CAP, "a full zone reads back, zeros beyond the capacity");
}

static void test_bad_writes(void)
{
	CHECK_RES(wr(zstart(2) + BLK, BLK), -EIO, "a write off the write pointer fails with EIO");
	CHECK_EQ(cond(2), BLK_ZONE_COND_EMPTY, "... and leaves the zone EMPTY");
	CHECK_EQ(z.nr_imp_open, 0, "... and opens nothing");
	CHECK_RES(wr(zstart(2), CAP + BLK), -EIO, "a write past the capacity fails with EIO");
	CHECK_EQ(wp(2), 0, "... and moves nothing");
	CHECK_RES(wr(zstart(2), BLK), 0, "a write at the write pointer then works");
	CHECK_RES(wr(zstart(2), BLK), -EIO, "a write behind the write pointer fails");
	CHECK_RES(wr(zstart(2) + 2 * BLK, BLK), -EIO, "a write ahead of the write pointer fails");
	CHECK_EQ(wp(2), BLK, "... and moves nothing");
	CHECK_RES(wr(zstart(1) + CAP, BLK), -EIO, "a write at a FULL zone's write pointer fails");
	CHECK_RES(wr(zstart(1), BLK), -EIO, "a write into a FULL zone fails");
	CHECK_RES(wr(zstart(1) - BLK, 2 * BLK), -EIO, "a write from a conventional zone into a sequential one fails");
	CHECK_RES(wr(SIZE - BLK, 2 * BLK), -EIO, "a write beyond the device fails");
	CHECK_RES(mgmt(BACKEND_ZONE_RESET_ALL, 0), 0, "RESET_ALL");
}

/* The brief's scenario: 2 open, 3 active. */
static void test_limits(void)
{
	unsigned counts[ZONE_COND_COUNT];

	CHECK_RES(wr(zstart(1), BLK), 0, "write zone 1");
	CHECK_RES(wr(zstart(2), BLK), 0, "write zone 2");
	CHECK_RES(wr(zstart(3), BLK), 0, "a 3rd zone beyond max_open: written");
	CHECK_EQ(cond(1), BLK_ZONE_COND_CLOSED, "... zone 1 was closed implicitly");
	CHECK_EQ(cond(2), BLK_ZONE_COND_IMP_OPEN, "... zone 2 stays open");
	CHECK_EQ(cond(3), BLK_ZONE_COND_IMP_OPEN, "... zone 3 is open");
	CHECK_RES(wr(zstart(4), BLK), -EOVERFLOW, "a 4th zone beyond max_active fails with EOVERFLOW");
	CHECK_RES(mgmt(BACKEND_ZONE_OPEN, 4), -EOVERFLOW, "OPEN beyond max_active fails with EOVERFLOW");
	CHECK_EQ(cond(4), BLK_ZONE_COND_EMPTY, "... zone 4 stays EMPTY");
	CHECK_RES(wr(zstart(1) + BLK, BLK), -ETOOMANYREFS,
		  "writing a CLOSED zone at both limits fails with ETOOMANYREFS (null_blk)");
	zoned_counts(&z, counts);
	CHECK(counts[BLK_ZONE_COND_CLOSED] == 1 && counts[BLK_ZONE_COND_IMP_OPEN] == 2 &&
	      counts[BLK_ZONE_COND_EMPTY] == 4 && counts[BLK_ZONE_COND_NOT_WP] == 1,
	      "zoned_counts: 1 closed, 2 open, 4 empty, 1 conventional",
	      "closed %u open %u empty %u not_wp %u", counts[BLK_ZONE_COND_CLOSED],
	      counts[BLK_ZONE_COND_IMP_OPEN], counts[BLK_ZONE_COND_EMPTY],
	      counts[BLK_ZONE_COND_NOT_WP]);
	CHECK_RES(mgmt(BACKEND_ZONE_CLOSE, 2), 0, "CLOSE zone 2");
	CHECK_RES(wr(zstart(1) + BLK, BLK), 0, "then the CLOSED zone 1 takes a write");
	CHECK_EQ(cond(1), BLK_ZONE_COND_IMP_OPEN, "... and is open again");
	CHECK_RES(mgmt(BACKEND_ZONE_RESET_ALL, 0), 0, "RESET_ALL");

	CHECK_RES(mgmt(BACKEND_ZONE_OPEN, 1), 0, "OPEN zone 1");
	CHECK_RES(mgmt(BACKEND_ZONE_OPEN, 2), 0, "OPEN zone 2");
	CHECK_RES(mgmt(BACKEND_ZONE_OPEN, 3), -ETOOMANYREFS, "OPEN beyond max_open fails with ETOOMANYREFS");
	CHECK_RES(wr(zstart(3), BLK), -ETOOMANYREFS, "a write beyond max_open with no implicitly open zone fails");
	CHECK_EQ(cond(3), BLK_ZONE_COND_EMPTY, "... zone 3 stays EMPTY");
	CHECK(z.nr_exp_open == 2 && z.nr_imp_open == 0 && z.nr_closed == 0,
	      "the counters: 2 explicitly open", "exp %u imp %u closed %u", z.nr_exp_open,
	      z.nr_imp_open, z.nr_closed);
	CHECK_RES(mgmt(BACKEND_ZONE_CLOSE, 2), 0, "CLOSE zone 2");
	CHECK_RES(wr(zstart(2), BLK), 0, "write zone 2 (implicitly open)");
	CHECK_RES(wr(zstart(3), BLK), 0, "write zone 3: closes zone 2, not the explicitly open zone 1");
	CHECK(cond(1) == BLK_ZONE_COND_EXP_OPEN && cond(2) == BLK_ZONE_COND_CLOSED,
	      "... zone 1 EXP_OPEN, zone 2 CLOSED", "conditions %u %u", cond(1), cond(2));
	CHECK_RES(mgmt(BACKEND_ZONE_RESET_ALL, 0), 0, "RESET_ALL");
	CHECK(z.nr_exp_open + z.nr_imp_open + z.nr_closed == 0, "RESET_ALL frees every resource",
	      "exp %u imp %u closed %u", z.nr_exp_open, z.nr_imp_open, z.nr_closed);
}

static void test_open_close(void)
{
	CHECK_RES(mgmt(BACKEND_ZONE_OPEN, 1), 0, "OPEN an EMPTY zone");
	CHECK_EQ(cond(1), BLK_ZONE_COND_EXP_OPEN, "... EXP_OPEN");
	CHECK_RES(mgmt(BACKEND_ZONE_OPEN, 1), 0, "OPEN an EXP_OPEN zone: no error");
	CHECK_RES(mgmt(BACKEND_ZONE_CLOSE, 1), 0, "CLOSE it unwritten");
	CHECK_EQ(cond(1), BLK_ZONE_COND_EMPTY, "... EMPTY again");
	CHECK_RES(mgmt(BACKEND_ZONE_CLOSE, 1), -EIO, "CLOSE an EMPTY zone fails with EIO");
	CHECK_RES(wr(zstart(2), BLK), 0, "write zone 2");
	CHECK_RES(mgmt(BACKEND_ZONE_CLOSE, 2), 0, "CLOSE a written zone");
	CHECK_EQ(cond(2), BLK_ZONE_COND_CLOSED, "... CLOSED");
	CHECK_RES(mgmt(BACKEND_ZONE_CLOSE, 2), 0, "CLOSE a CLOSED zone: no error");
	CHECK_RES(mgmt(BACKEND_ZONE_OPEN, 2), 0, "OPEN a CLOSED zone");
	CHECK_RES(wr(zstart(2) + BLK, CAP - BLK), 0, "fill it");
	CHECK_EQ(cond(2), BLK_ZONE_COND_FULL, "an explicitly open zone also becomes FULL");
	CHECK_EQ(z.nr_exp_open, 0, "... and is no longer counted open");
	CHECK_RES(mgmt(BACKEND_ZONE_CLOSE, 2), -EIO, "CLOSE a FULL zone fails with EIO");
	CHECK_RES(mgmt(BACKEND_ZONE_OPEN, 2), -EIO, "OPEN a FULL zone fails with EIO");
	CHECK_RES(wr(zstart(3), BLK), 0, "write zone 3");
	CHECK_RES(mgmt(BACKEND_ZONE_OPEN, 3), 0, "OPEN an implicitly open zone");
	CHECK(cond(3) == BLK_ZONE_COND_EXP_OPEN && z.nr_exp_open == 1 && z.nr_imp_open == 0,
	      "... it is explicitly open", "cond %u exp %u imp %u", cond(3), z.nr_exp_open,
	      z.nr_imp_open);
	CHECK_RES(mgmt(BACKEND_ZONE_RESET_ALL, 0), 0, "RESET_ALL");
}

static void test_finish_reset(void)
{
	unsigned before;

	CHECK_RES(wr(zstart(1), 2 * BLK), 0, "write 8 KiB");
	before = ram.discards;
	CHECK_RES(mgmt(BACKEND_ZONE_FINISH, 1), 0, "FINISH an open zone");
	CHECK_EQ(cond(1), BLK_ZONE_COND_FULL, "... FULL");
	CHECK_EQ(wp(1), ZS, "... its write pointer at the zone's end (null_blk)");
	CHECK_EQ(z.nr_imp_open, 0, "... no longer open");
	CHECK(ram.discards == before + 1 && ram.last_discard_off == zstart(1) + 2 * BLK &&
	      ram.last_discard_len == ZS - 2 * BLK,
	      "FINISH gives back the memory beyond the write pointer only",
	      "%u discards, last %llu+%llu", ram.discards - before,
	      (unsigned long long)ram.last_discard_off, (unsigned long long)ram.last_discard_len);
	CHECK_READS(1, 2 * BLK, "a finished zone keeps its data, zeros after");
	CHECK_RES(wr(zstart(1) + 2 * BLK, BLK), -EIO, "a finished zone refuses writes");
	CHECK_RES(mgmt(BACKEND_ZONE_FINISH, 1), 0, "FINISH a FULL zone: no error");
	CHECK_RES(mgmt(BACKEND_ZONE_FINISH, 2), 0, "FINISH an EMPTY zone");
	CHECK(cond(2) == BLK_ZONE_COND_FULL && wp(2) == ZS, "... FULL", "cond %u", cond(2));
	CHECK_READS(2, 0, "... reads as zeros");

	before = ram.discards;
	CHECK_RES(mgmt(BACKEND_ZONE_RESET, 1), 0, "RESET a zone");
	CHECK(cond(1) == BLK_ZONE_COND_EMPTY && wp(1) == 0, "... EMPTY, write pointer at its start",
	      "cond %u wp %llu", cond(1), (unsigned long long)wp(1));
	CHECK(ram.discards == before + 1 && ram.last_discard_off == zstart(1) &&
	      ram.last_discard_len == ZS, "RESET gives back the whole zone's memory",
	      "%u discards, last %llu+%llu", ram.discards - before,
	      (unsigned long long)ram.last_discard_off, (unsigned long long)ram.last_discard_len);
	CHECK_READS(1, 0, "a reset zone reads as zeros");
	CHECK_RES(wr(zstart(1), BLK), 0, "a reset zone takes a write at its start");

	CHECK_RES(wr(0, BLK), 0, "write the conventional zone");
	CHECK_RES(wr(zstart(3), BLK), 0, "write zone 3");
	before = ram.discards;
	CHECK_RES(mgmt(BACKEND_ZONE_RESET_ALL, 0), 0, "RESET_ALL");
	CHECK_EQ(ram.discards - before, 3, "RESET_ALL discards the non-EMPTY zones only (1, 2, 3)");
	CHECK(cond(1) == BLK_ZONE_COND_EMPTY && cond(2) == BLK_ZONE_COND_EMPTY &&
	      cond(3) == BLK_ZONE_COND_EMPTY, "... all EMPTY", "%u %u %u", cond(1), cond(2), cond(3));
	CHECK_READS(0, BLK, "RESET_ALL leaves the conventional zone's data");
	for (enum backend_zone_op op = BACKEND_ZONE_OPEN; op <= BACKEND_ZONE_RESET; op++)
		CHECK_RES(mgmt(op, 0), -EIO, "a zone command on a conventional zone fails with EIO");
	CHECK_RES(ops->zone_mgmt(&z, BACKEND_ZONE_OPEN, SIZE), -EIO, "a zone command beyond the device fails");
}

static void test_read_beyond_wp(void)
{
	unsigned char b[2 * BLK];

	CHECK_RES(wr(zstart(5), 2 * BLK), 0, "write 8 KiB");
	/* Bytes beyond the write pointer, as a failed or cut write leaves. */
	memset(ram.buf + zstart(5) + 2 * BLK, 0xaa, 2 * BLK);
	CHECK_READS(5, 2 * BLK, "beyond the write pointer reads zeros, whatever the store holds");
	CHECK(ops->read(&z, b, zstart(5) + 3 * BLK, BLK) == 0 && b[0] == 0 && b[BLK - 1] == 0,
	      "a read wholly beyond the write pointer: zeros", "byte %u", b[0]);
	CHECK(ops->direct(&z, zstart(5), 2 * BLK, false) == ram.buf + zstart(5),
	      "direct: a read below the write pointer is the store's memory", "no");
	CHECK(!ops->direct(&z, zstart(5) + BLK, 2 * BLK, false),
	      "direct: none for a read across the write pointer", "a pointer");
	CHECK(!ops->direct(&z, zstart(5) + 2 * BLK, BLK, true),
	      "direct: none for a write of a sequential zone", "a pointer");
	CHECK(ops->direct(&z, BLK, BLK, true) == ram.buf + BLK,
	      "direct: a write of the conventional zone is the store's memory", "no");
	CHECK_RES(mgmt(BACKEND_ZONE_RESET, 5), 0, "RESET");
}

static void test_append(void)
{
	uint64_t at;

	CHECK_RES(append(5, BLK, zstart(5), &at), 0, "append to an EMPTY zone");
	CHECK_EQ(at, zstart(5), "... lands at the zone's start");
	CHECK_EQ(cond(5), BLK_ZONE_COND_IMP_OPEN, "... and opens it implicitly");
	CHECK_RES(append(5, 2 * BLK, zstart(5) + BLK, &at), 0, "append 8 KiB more");
	CHECK_EQ(at, zstart(5) + BLK, "... lands at the write pointer");
	CHECK_EQ(rep(5).wp, (zstart(5) + 3 * BLK) >> 9, "the report's write pointer follows, in sectors");
	CHECK_RES(append(5, CAP - 2 * BLK, zstart(5) + 3 * BLK, &at), -EIO, "an append past the capacity fails");
	CHECK_EQ(wp(5), 3 * BLK, "... and moves nothing");
	CHECK_RES(ops->zone_append(&z, ram.buf, zstart(5) + BLK, 0, &at), 0,
		  "an append names its zone by any offset in it");
	CHECK_RES(append(5, CAP - 3 * BLK, zstart(5) + 3 * BLK, &at), 0, "append up to the capacity");
	CHECK_EQ(cond(5), BLK_ZONE_COND_FULL, "... FULL");
	CHECK_READS(5, CAP, "the appended data reads back in order");
	CHECK_RES(append(5, BLK, zstart(5) + CAP, &at), -EIO, "an append to a FULL zone fails");
	CHECK_RES(append(0, BLK, 0, &at), -EIO, "an append to a conventional zone fails (null_blk)");
	CHECK_RES(ops->zone_append(&z, ram.buf, SIZE, BLK, &at), -EIO, "an append beyond the device fails");
	CHECK_RES(mgmt(BACKEND_ZONE_RESET_ALL, 0), 0, "RESET_ALL");
}

/* Zones 1..5: FULL, IMP_OPEN, EXP_OPEN, CLOSED, EMPTY (resets first). */
static void set_mixed_zones(void)
{
	mgmt(BACKEND_ZONE_RESET_ALL, 0);
	wr(zstart(1), CAP);
	wr(zstart(4), BLK);
	mgmt(BACKEND_ZONE_CLOSE, 4);
	wr(zstart(2), 2 * BLK);
	mgmt(BACKEND_ZONE_OPEN, 3);
	wr(zstart(3), 3 * BLK);
}

static void test_report(void)
{
	static const uint64_t wps[NZ] = { ZS, CAP, 2 * BLK, 3 * BLK, BLK };
	static const unsigned conds[NZ] = {
		BLK_ZONE_COND_NOT_WP, BLK_ZONE_COND_FULL, BLK_ZONE_COND_IMP_OPEN,
		BLK_ZONE_COND_EXP_OPEN, BLK_ZONE_COND_CLOSED, BLK_ZONE_COND_EMPTY,
		BLK_ZONE_COND_EMPTY, BLK_ZONE_COND_EMPTY,
	};
	static const struct blk_zone zero;
	struct blk_zone bz[5];
	struct first_error e = { 0 };
	unsigned counts[ZONE_COND_COUNT];
	int n;

	set_mixed_zones();
	check_all_zones(wps, conds, "a full report, field by field");

	memset(bz, 0xff, sizeof(bz));
	n = ops->report_zones(&z, zstart(3), 2, bz, 2 * sizeof(bz[0]));
	CHECK_EQ(n, 2 * sizeof(bz[0]), "a report of 2 zones from zone 3: 128 bytes");
	expect_zone(&bz[0], 3, wps[3], conds[3], &e);
	expect_zone(&bz[1], 4, wps[4], conds[4], &e);
	CHECK_NO_ERROR(e, "... zones 3 and 4");

	memset(bz, 0xff, sizeof(bz));
	n = ops->report_zones(&z, zstart(6), 5, bz, sizeof(bz));
	CHECK_EQ(n, 2 * sizeof(bz[0]), "5 zones asked from zone 6: the 2 there are");
	expect_zone(&bz[0], 6, 0, BLK_ZONE_COND_EMPTY, &e);
	expect_zone(&bz[1], 7, 0, BLK_ZONE_COND_EMPTY, &e);
	CHECK_NO_ERROR(e, "... zones 6 and 7");
	CHECK(!memcmp(&bz[2], &zero, sizeof(zero)) && bz[3].len == UINT64_MAX,
	      "... then one zeroed descriptor, nothing more", "not so");

	n = ops->report_zones(&z, zstart(2) + 3 * BLK, 1, bz, sizeof(bz));
	expect_zone(&bz[0], 2, wps[2], conds[2], &e);
	CHECK(n == sizeof(bz[0]) && !e.set, "a report from inside a zone starts at that zone", "%d", n);
	CHECK_EQ(ops->report_zones(&z, 0, NZ, bz, 3 * sizeof(bz[0])), 3 * sizeof(bz[0]),
		 "a report no larger than its buffer");
	CHECK_EQ(ops->report_zones(&z, SIZE, 1, bz, sizeof(bz)), 0, "a report from beyond the device is empty");

	zoned_counts(&z, counts);
	CHECK(counts[BLK_ZONE_COND_NOT_WP] == 1 && counts[BLK_ZONE_COND_FULL] == 1 &&
	      counts[BLK_ZONE_COND_IMP_OPEN] == 1 && counts[BLK_ZONE_COND_EXP_OPEN] == 1 &&
	      counts[BLK_ZONE_COND_CLOSED] == 1 && counts[BLK_ZONE_COND_EMPTY] == 3,
	      "zoned_counts: one of each, 3 EMPTY", "not so");
	mgmt(BACKEND_ZONE_RESET_ALL, 0);
}

static void test_conventional(void)
{
	unsigned char b[3 * BLK], want[3 * BLK];

	CHECK_RES(wr(2 * BLK, BLK), 0, "a conventional zone takes a write anywhere");
	CHECK_RES(wr(0, BLK), 0, "... and behind it");
	CHECK_RES(wr(2 * BLK, BLK), 0, "... and over it again");
	fill_pat(want, 0, sizeof(want));
	memset(want + BLK, 0, BLK);
	CHECK(ops->read(&z, b, 0, sizeof(b)) == 0 && !memcmp(b, want, sizeof(b)),
	      "... which reads back", "byte %zu differs", first_diff(b, want, sizeof(b)));
	CHECK(cond(0) == BLK_ZONE_COND_NOT_WP && rep(0).type == BLK_ZONE_TYPE_CONVENTIONAL,
	      "a conventional zone reports NOT_WP", "cond %u", cond(0));
	memset(ram.buf, 0, ZS);
}

static void test_discard_and_prepare(void)
{
	unsigned before;

	CHECK(!ops->discard && !ops->write_zeroes,
	      "no discard nor write_zeroes, as null_blk's zoned mode", "present");
	CHECK_EQ(ops->file(&z), -1, "no file: no zero copy for zoned devices");
	CHECK_RES(ops->flush(&z), 0, "flush passes through (the store has none)");

	before = ram.prepares;
	CHECK_RES(ops->prepare_write(&z, zstart(1) + BLK, BLK), -EIO, "prepare_write off the write pointer: EIO");
	CHECK_EQ(ram.prepares, before, "... without asking the store");
	CHECK_RES(ops->prepare_write(&z, zstart(1), CAP + BLK), -EIO, "prepare_write past the capacity: EIO");
	CHECK_RES(ops->prepare_write(&z, zstart(1), BLK), 0, "prepare_write at the write pointer");
	CHECK(ram.prepares == before + 1 && cond(1) == BLK_ZONE_COND_IMP_OPEN && wp(1) == 0,
	      "... prepares the store, opens the zone, moves no write pointer",
	      "prepares %u cond %u wp %llu", ram.prepares - before, cond(1),
	      (unsigned long long)wp(1));
	CHECK_RES(wr(zstart(1), BLK), 0, "then the write");
	CHECK_EQ(wp(1), BLK, "... moves the write pointer");
	ram.prepare_error = -ENOSPC;
	CHECK_RES(ops->prepare_write(&z, zstart(1) + BLK, BLK), -ENOSPC, "the store's ENOSPC comes through");
	CHECK_RES(ops->prepare_write(&z, BLK, BLK), -ENOSPC, "... for a conventional zone too");
	ram.prepare_error = 0;
	CHECK_RES(ops->prepare_write(&z, zstart(1) - BLK, 2 * BLK), -EIO,
		  "prepare_write across a conventional and a sequential zone: EIO");
	mgmt(BACKEND_ZONE_RESET_ALL, 0);
}

/* ---- persistence ---- */

/* The meta file's layout (zone.c): a 64-byte header, then 16 bytes a zone. */
struct saved_zone {
	uint64_t wp;
	uint32_t cond;
	uint32_t reserved;
};

static void poke_zone(int fd, unsigned zno, uint64_t wpos, unsigned c)
{
	struct saved_zone s = { .wp = wpos, .cond = c };

	if (pwrite(fd, &s, sizeof(s), 64 + zno * sizeof(s)) != (ssize_t)sizeof(s))
		printf("# pwrite failed\n");
}

static int reopen(int fd, struct zone_config cfg)
{
	cfg.meta_fd = fd;
	cfg.create = false;
	return zoned_open(&z, &cfg, &ram_ops, &ram);
}

/* In a child: fill a few zones, then die in the middle of a write. */
static void crash_child(int fd)
{
	struct zone_config cfg = small_config(fd, true);

	if (zoned_open(&z, &cfg, &ram_ops, &ram))
		_exit(2);
	wr(zstart(1), CAP);			/* FULL */
	wr(zstart(2), 2 * BLK);			/* IMP_OPEN, closed by the next OPEN */
	mgmt(BACKEND_ZONE_OPEN, 3);
	wr(zstart(3), BLK);			/* EXP_OPEN */
	mgmt(BACKEND_ZONE_OPEN, 4);		/* EXP_OPEN, empty */
	ram.crash_at = zstart(3) + BLK;
	wr(zstart(3) + BLK, BLK);		/* lands, then SIGKILL */
	_exit(3);
}

static void test_crash(int fd)
{
	static const uint64_t wps[NZ] = { ZS, CAP, 2 * BLK, BLK };
	static const unsigned conds[NZ] = {
		BLK_ZONE_COND_NOT_WP, BLK_ZONE_COND_FULL, BLK_ZONE_COND_CLOSED,
		BLK_ZONE_COND_CLOSED, BLK_ZONE_COND_EMPTY, BLK_ZONE_COND_EMPTY,
		BLK_ZONE_COND_EMPTY, BLK_ZONE_COND_EMPTY,
	};
	unsigned char want[BLK];
	int status = 0;
	pid_t pid;

	memset(ram.buf, 0, SIZE);
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		crash_child(fd);
	waitpid(pid, &status, 0);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
	      "the child died by SIGKILL in the middle of a write", "status %#x", status);
	CHECK_RES(reopen(fd, small_config(fd, false)), 0, "reopen the zone state after the crash");
	check_all_zones(wps, conds, "after the crash: open zones CLOSED (or EMPTY), the rest as they were");
	CHECK(z.nr_imp_open == 0 && z.nr_exp_open == 0 && z.nr_closed == 2,
	      "the counters are recomputed", "imp %u exp %u closed %u", z.nr_imp_open,
	      z.nr_exp_open, z.nr_closed);
	fill_pat(want, zstart(3) + BLK, BLK);
	CHECK(!memcmp(ram.buf + zstart(3) + BLK, want, BLK),
	      "the cut write's data is in the store", "not there");
	CHECK_READS(3, BLK, "... but reads as zeros: the write pointer did not move");
	CHECK_RES(wr(zstart(3) + BLK, BLK), 0, "the kernel's re-sent write lands at the same write pointer");
	CHECK_EQ(wp(3), 2 * BLK, "... and moves it");
	CHECK_READS(1, CAP, "the FULL zone's data is there");
	CHECK_READS(2, 2 * BLK, "the closed zone's data is there");
	CHECK_RES(mgmt(BACKEND_ZONE_OPEN, 5), 0, "open resources are free again: OPEN zone 5");
	zoned_close(&z);
}

static void test_reopen(int fd)
{
	struct blk_zone a[NZ], b[NZ];
	struct zone_config cfg = small_config(fd, false);

	CHECK_RES(reopen(fd, cfg), 0, "reopen");
	set_mixed_zones();
	ops->report_zones(&z, 0, NZ, a, sizeof(a));
	a[2].cond = a[3].cond = BLK_ZONE_COND_CLOSED;	/* open zones come back closed */
	zoned_close(&z);
	CHECK_RES(reopen(fd, cfg), 0, "reopen after a clean close");
	ops->report_zones(&z, 0, NZ, b, sizeof(b));
	CHECK(!memcmp(a, b, sizeof(a)), "the report is the one before, open zones closed", "differs");
	zoned_close(&z);

	cfg.zone_capacity = 32 * KiB;
	CHECK_RES(reopen(fd, cfg), -EINVAL, "reopen with another capacity: EINVAL");
	cfg = small_config(fd, false);
	cfg.conventional = 2;
	CHECK_RES(reopen(fd, cfg), -EINVAL, "reopen with other conventional zones: EINVAL");
	cfg = small_config(fd, false);
	cfg.max_active = 4;
	CHECK_RES(reopen(fd, cfg), -EINVAL, "reopen with other limits: EINVAL");
	cfg = small_config(fd, false);
	cfg.zone_size = 32 * KiB;
	cfg.zone_capacity = 0;
	CHECK_RES(reopen(fd, cfg), -EINVAL, "reopen with another zone size: EINVAL");
	cfg = small_config(fd, false);
	cfg.size = 2 * SIZE;
	CHECK_RES(reopen(fd, cfg), -EINVAL, "reopen with another size: EINVAL");

	cfg = small_config(fd, false);
	poke_zone(fd, 5, BLK, BLK_ZONE_COND_EMPTY);
	CHECK_RES(reopen(fd, cfg), -EINVAL, "an EMPTY zone with data: EINVAL");
	poke_zone(fd, 5, ZS + BLK, BLK_ZONE_COND_CLOSED);
	CHECK_RES(reopen(fd, cfg), -EINVAL, "a write pointer beyond the zone: EINVAL");
	poke_zone(fd, 5, CAP, BLK_ZONE_COND_IMP_OPEN);	/* cut between two stores */
	poke_zone(fd, 6, 0, BLK_ZONE_COND_FULL);	/* a reset cut likewise */
	CHECK_RES(reopen(fd, cfg), 0, "states cut between a write pointer and a condition: reopened");
	CHECK(cond(5) == BLK_ZONE_COND_FULL && cond(6) == BLK_ZONE_COND_EMPTY,
	      "... the write pointer decides: FULL, EMPTY", "%u %u", cond(5), cond(6));
	zoned_close(&z);
	CHECK(pwrite(fd, "x", 1, 0) == 1 && reopen(fd, cfg) == -EINVAL,
	      "a file without the magic: EINVAL", "opened");
	cfg.create = true;
	CHECK_RES(zoned_open(&z, &cfg, &ram_ops, &ram), 0, "create lays out a fresh state over it");
	CHECK_EQ(cond(1), BLK_ZONE_COND_EMPTY, "... all EMPTY");
	zoned_close(&z);
}

/* ---- concurrency ---- */

/*
 * Two writers each fill two zones of their own, turn about, and a third
 * thread OPENs and CLOSEs two more: 6 zones wanted, 2 may be open and 3
 * active.  A write or OPEN refused for lack of resources is retried
 * (with the writer's other zone first); the limits and the zones'
 * consistency are checked after every call.
 */
#define ROUNDS	100	/* fills of each writer's zone */

static atomic_bool stop, broken;
static atomic_uint retries, other_errors, opens;

/* Whether the limits hold and every zone's write pointer fits its condition. */
static void check_zones(void)
{
	struct blk_zone bz[NZ];
	unsigned open = 0, active = 0;

	if (ops->report_zones(&z, 0, NZ, bz, sizeof(bz)) != (int)sizeof(bz)) {
		broken = true;
		return;
	}
	for (unsigned i = 1; i < NZ; i++) {
		uint64_t w = (bz[i].wp - bz[i].start) << 9;
		unsigned c = bz[i].cond;
		bool open_cond = c == BLK_ZONE_COND_IMP_OPEN || c == BLK_ZONE_COND_EXP_OPEN;

		open += open_cond;
		active += open_cond || c == BLK_ZONE_COND_CLOSED;
		if ((c == BLK_ZONE_COND_EMPTY && w) || (open_cond && w >= CAP) ||
		    (c == BLK_ZONE_COND_CLOSED && (!w || w >= CAP)) ||
		    (c == BLK_ZONE_COND_FULL && w != CAP && w != ZS))
			broken = true;
	}
	if (open > 2 || active > 3)
		broken = true;
}

/* Fill zones 1 + 2 * @arg and the next ROUNDS times each, turn about. */
static void *writer(void *arg)
{
	unsigned first = 1 + 2 * (unsigned)(uintptr_t)arg;
	uint64_t off[2] = { 0, 0 };
	unsigned fills[2] = { 0, 0 }, turn = 0;
	unsigned char b[BLK];

	while (fills[0] < ROUNDS || fills[1] < ROUNDS) {
		unsigned i = turn++ % 2, zno = first + i;
		int ret;

		if (fills[i] == ROUNDS)
			continue;
		fill_pat(b, zstart(zno) + off[i], BLK);
		ret = ops->write(&z, b, zstart(zno) + off[i], BLK);
		if (ret == -ETOOMANYREFS || ret == -EOVERFLOW) {
			retries++;
			sched_yield();
		} else if (ret) {
			other_errors++;
			return NULL;
		} else if ((off[i] += BLK) == CAP && ++fills[i] < ROUNDS) {
			off[i] = 0;
			if (mgmt(BACKEND_ZONE_RESET, zno))
				other_errors++;
		}
		check_zones();
	}
	return NULL;
}

/* OPEN zones 5 and 6, then CLOSE them, until the writers are done. */
static void *opener(void *arg)
{
	(void)arg;
	while (!stop) {
		for (unsigned zno = 5; zno <= 6; zno++) {
			int ret = mgmt(BACKEND_ZONE_OPEN, zno);

			if (!ret)
				opens++;
			else if (ret != -ETOOMANYREFS && ret != -EOVERFLOW)
				other_errors++;
			check_zones();
		}
		for (unsigned zno = 5; zno <= 6; zno++) {
			int ret = mgmt(BACKEND_ZONE_CLOSE, zno);

			if (ret && ret != -EIO)	/* EIO: it was not open */
				other_errors++;
			check_zones();
		}
	}
	return NULL;
}

static void test_concurrency(void)
{
	pthread_t w[2], o;
	unsigned c[ZONE_COND_COUNT];
	struct timespec t0, t1;

	if (open_fresh()) {
		CHECK(false, "open for the concurrency test", "failed");
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_create(&o, NULL, opener, NULL);
	for (uintptr_t i = 0; i < 2; i++)
		pthread_create(&w[i], NULL, writer, (void *)i);
	for (int i = 0; i < 2; i++)
		pthread_join(w[i], NULL);
	stop = true;
	pthread_join(o, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("# concurrency: %u writes retried, %u OPENs, %.0f ms\n", (unsigned)retries,
	       (unsigned)opens,
	       (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
	CHECK_EQ(other_errors, 0, "two writers and an OPEN/CLOSE loop: no unexpected errors");
	CHECK(!broken, "the limits held and every zone stayed consistent", "not so");
	for (unsigned zno = 1; zno <= 4; zno++)
		CHECK_READS(zno, CAP, "each written zone holds its last fill");
	zoned_counts(&z, c);
	CHECK(z.nr_imp_open == c[BLK_ZONE_COND_IMP_OPEN] &&
	      z.nr_exp_open == c[BLK_ZONE_COND_EXP_OPEN] && z.nr_closed == c[BLK_ZONE_COND_CLOSED],
	      "the counters match the zones' conditions", "imp %u/%u exp %u/%u closed %u/%u",
	      z.nr_imp_open, c[BLK_ZONE_COND_IMP_OPEN], z.nr_exp_open,
	      c[BLK_ZONE_COND_EXP_OPEN], z.nr_closed, c[BLK_ZONE_COND_CLOSED]);
	zoned_close(&z);
}

int main(void)
{
	int fd;

	setvbuf(stdout, NULL, _IOLBF, 0);
	ram.buf = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ram.buf == MAP_FAILED) {
		perror("mmap");
		return CHECK_EXIT_FAIL;
	}
	ram.crash_at = NO_CRASH;
	test_config_refused();
	CHECK_RES(open_fresh(), 0, "open 8 zones of 64 KiB, 48 KiB capacity, 1 conventional");
	test_initial_report();
	test_fill_to_full();
	test_bad_writes();
	test_limits();
	test_open_close();
	test_finish_reset();
	test_read_beyond_wp();
	test_append();
	test_report();
	test_conventional();
	test_discard_and_prepare();
	zoned_close(&z);

	fd = memfd_create("zone-state", MFD_CLOEXEC);
	if (fd < 0) {
		skip("persistence", "no memfd_create here");
	} else {
		test_crash(fd);
		test_reopen(fd);
		close(fd);
	}
	test_concurrency();
	return check_summary("zone_test");
}
