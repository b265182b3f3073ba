/*
 * mem_test.c - unit tests for the RAM store in mem_backend.c: reads and
 * writes, zeroing, bounds, lazy and preallocated memory, the file-backed
 * store, parse_size() and the backend operations table.
 *
 * Memory use is measured two ways.  mincore() says which pages of one
 * mapping are present; it is exact, but it also counts the shared zero
 * page that a read of a never-written page maps, so it is only used
 * before such reads.  /proc/self/smaps_rollup gives the whole process's
 * Rss, which ignores the zero page but also sees everything else; those
 * checks leave wide margins.
 *
 * Each check prints one line, "ok - name" or "FAIL - name: details
 * (line N)".  Exit status: 0 all passed, 1 a check failed.  Some failures
 * are expected and print a "ublk-mem: ..." line on stderr; a "#" line
 * announces each.
 */
#define _GNU_SOURCE
#include "mem_backend.h"
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define KiB		(1ULL << 10)
#define MiB		(1ULL << 20)
#define GiB		(1ULL << 30)

/* ---- checks (the common ones are in check.h) ---- */

/* Say that the next call will print an error on stderr on purpose. */
static void expect_stderr(const char *what)
{
	printf("# expected on stderr: %s\n", what);
}

/* ---- helpers ---- */

/* Index of the first byte of @p that is not @c, or @len if all are. */
static size_t first_not(const void *p, size_t len, unsigned char c)
{
	const unsigned char *b = p;
	size_t i = 0;

	while (i < len && b[i] == c)
		i++;
	return i;
}

static size_t first_nonzero(const void *p, size_t len)
{
	return first_not(p, len, 0);
}

/*
 * Read the whole store and compare it with @model.  Returns the offset of
 * the first byte that differs, @s->size if none, or UINT64_MAX if a read
 * failed.
 */
static uint64_t store_diff(struct mem_store *s, const char *model)
{
	const uint32_t chunk = 1 << 20;
	char *buf = malloc(chunk);
	uint64_t off = 0;

	while (buf && off < s->size) {
		uint32_t len = s->size - off < chunk ? (uint32_t)(s->size - off) : chunk;
		size_t d;

		if (mem_store_read(s, buf, off, len) < 0)
			break;
		d = first_diff(buf, model + off, len);
		if (d < len) {
			free(buf);
			return off + d;
		}
		off += len;
	}
	free(buf);
	return off == s->size ? off : UINT64_MAX;
}

/* Check that the store holds exactly @model, naming the first difference. */
static bool check_store(int line, struct mem_store *s, const char *model,
			const char *name)
{
	uint64_t d = store_diff(s, model);

	if (d == UINT64_MAX)
		return check(line, false, name, "mem_store_read failed");
	return check(line, d == s->size, name, "first difference at byte %llu",
		     (unsigned long long)d);
}

#define CHECK_STORE(s, model, name)	check_store(__LINE__, (s), (model), (name))

/* Bytes of [p, p + len) present in memory, by mincore(); -1 on error. */
static long long resident_bytes(const void *p, uint64_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t pages = (size_t)((len + page - 1) / page);
	unsigned char *vec = malloc(pages ? pages : 1);
	long long n = 0;

	if (!vec || mincore((void *)p, (size_t)len, vec) < 0) {
		free(vec);
		return -1;
	}
	for (size_t i = 0; i < pages; i++)
		n += vec[i] & 1;
	free(vec);
	return n * (long long)page;
}

/* This process's resident memory in bytes, or -1 when unknown. */
static long long process_rss(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	unsigned long long kb;
	long long rss = -1;
	char line[128];

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Rss: %llu kB", &kb) == 1)
			rss = (long long)(kb * KiB);
	fclose(f);
	return rss;
}

/* Open an anonymous store of @size, with a check line; returns 0 or -errno. */
static int open_anon(struct mem_store *s, uint64_t size, unsigned flags,
		     const char *name)
{
	int ret = mem_store_open(s, size, flags, NULL);

	CHECK_RES(ret, 0, name);
	return ret;
}

/* ---- the tests ---- */

static void test_open_anonymous(void)
{
	struct mem_store s;

	if (open_anon(&s, 64 * MiB, 0, "mem_store_open: 64 MiB anonymous") < 0)
		return;
	CHECK(s.base && s.size == 64 * MiB && s.fd == -1 && !s.locked &&
	      s.page == (unsigned)sysconf(_SC_PAGESIZE),
	      "anonymous store: base set, size 64 MiB, no fd, not locked",
	      "base %p, size %llu, fd %d, locked %d, page %u", (void *)s.base,
	      (unsigned long long)s.size, s.fd, s.locked, s.page);
	mem_store_close(&s);
	CHECK(!s.base && s.fd == -1, "mem_store_close clears the store",
	      "base %p, fd %d", (void *)s.base, s.fd);
	mem_store_close(&s);	/* a second close must be harmless */
	CHECK(!s.base && s.fd == -1, "mem_store_close twice is harmless",
	      "base %p, fd %d", (void *)s.base, s.fd);
}

/* The kernel's transparent huge page mode, "" when it has none. */
static const char *thp_mode(char *buf, size_t len)
{
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	char *l, *r;

	buf[0] = 0;
	if (!f)
		return buf;
	if (fgets(buf, (int)len, f) && (l = strchr(buf, '[')) && (r = strchr(l, ']'))) {
		*r = 0;
		memmove(buf, l + 1, (size_t)(r - l));
	} else {
		buf[0] = 0;
	}
	fclose(f);
	return buf;
}

/*
 * Huge pages: the store starts on a 2 MiB boundary and, where the kernel
 * has THP, is advised so; a 2 MiB write then makes one huge page resident.
 * --small-pages (MEM_STORE_SMALL_PAGES) asks for none.
 */
static void test_huge_pages(void)
{
	const uint64_t huge = 2 * MiB;
	char mode[64], *buf = malloc(huge);
	struct mem_store s;
	long long res;

	if (!buf || open_anon(&s, 8 * MiB, 0, "mem_store_open: 8 MiB, huge pages") < 0)
		goto out;
	CHECK(((uintptr_t)s.base & (huge - 1)) == 0, "the store starts on a 2 MiB boundary",
	      "base %p", (void *)s.base);
	thp_mode(mode, sizeof(mode));
	if (!mode[0] || !strcmp(mode, "never")) {
		skip("the store is advised MADV_HUGEPAGE", "this kernel has THP off");
	} else {
		CHECK(s.huge, "the store is advised MADV_HUGEPAGE", "THP mode %s", mode);
		memset(buf, 0x3c, 4096);
		mem_store_write(&s, buf, 2 * MiB, 4096);
		res = resident_bytes(s.base + 2 * MiB, huge);
		if (res == 4096)	/* no free 2 MiB block: the kernel fell back */
			skip("a 4 KiB write faults in its whole 2 MiB page",
			     "the kernel gave a small page (memory fragmented?)");
		else
			CHECK(res == (long long)huge,
			      "a 4 KiB write faults in its whole 2 MiB page",
			      "%lld bytes resident", res);
	}
	mem_store_close(&s);
	if (open_anon(&s, 8 * MiB, MEM_STORE_SMALL_PAGES,
		      "mem_store_open: 8 MiB, small pages") < 0)
		goto out;
	CHECK(!s.huge, "MEM_STORE_SMALL_PAGES: not advised MADV_HUGEPAGE", "huge %d", s.huge);
	memset(buf, 0x3c, 4096);
	mem_store_write(&s, buf, 2 * MiB, 4096);
	res = resident_bytes(s.base + 2 * MiB, huge);
	CHECK(res == 4096, "MEM_STORE_SMALL_PAGES: a 4 KiB write faults in 4 KiB",
	      "%lld bytes resident", res);
	mem_store_close(&s);
out:
	free(buf);
}

/* Never-written space reads as zeros: 4 KiB here and there, then 16 MiB. */
static void test_unwritten_reads_zero(void)
{
	static const uint64_t offsets[] = { 0, 12345 * 512, 64 * MiB - 4096 };
	const uint32_t big = 16 * MiB;
	char *buf = malloc(big);
	struct mem_store s;
	size_t nz;
	int ret;

	if (!buf || open_anon(&s, 64 * MiB, 0, "mem_store_open: 64 MiB, for zero reads") < 0) {
		free(buf);
		return;
	}
	for (unsigned i = 0; i < ARRAY_SIZE(offsets); i++) {
		char name[96];

		memset(buf, 0xa5, 4096);
		ret = mem_store_read(&s, buf, offsets[i], 4096);
		nz = first_nonzero(buf, 4096);
		snprintf(name, sizeof(name), "unwritten 4 KiB at %llu reads as zeros",
			 (unsigned long long)offsets[i]);
		CHECK(ret == 0 && nz == 4096, name, "read returned %d, byte %zu not zero",
		      ret, nz);
	}
	memset(buf, 0xa5, big);
	ret = mem_store_read(&s, buf, 8 * MiB + 512, big);
	nz = first_nonzero(buf, big);
	CHECK(ret == 0 && nz == big, "unwritten 16 MiB at 8 MiB + 512 reads as zeros",
	      "read returned %d, byte %zu not zero", ret, nz);
	mem_store_close(&s);
	free(buf);
}

/*
 * Writes at odd multiples of 512 (never page-aligned), from 512 bytes to
 * 3 pages long, land exactly where asked: each reads back, and at the end
 * the whole store matches a model that got the same writes, so no write
 * spilled into its neighbours.
 */
static void test_write_read_back(void)
{
	const uint64_t size = 16 * MiB;
	char *model = calloc(1, size), *buf = NULL, *back = NULL;
	struct first_error e = { 0 };
	struct mem_store s;
	uint64_t page;

	if (!model || open_anon(&s, size, 0, "mem_store_open: 16 MiB, for writes") < 0)
		goto out_free;
	page = s.page;
	buf = malloc(3 * page);
	back = malloc(3 * page);
	if (!buf || !back)
		goto out_close;
	for (unsigned i = 0; i < 200; i++) {
		/* An odd multiple of 512, with room for 3 pages after it. */
		uint64_t off = (2 * rand_below((size - 4 * page) / 1024) + 1) * 512;
		/* The first write is exactly 3 pages: it touches 4. */
		uint32_t len = i == 0 ? (uint32_t)(3 * page) :
			(uint32_t)(512 * (1 + rand_below(3 * page / 512)));
		int wret, rret;
		size_t d;

		fill_random(buf, len);
		wret = mem_store_write(&s, buf, off, len);
		memcpy(model + off, buf, len);
		memset(back, 0, len);
		rret = mem_store_read(&s, back, off, len);
		d = first_diff(back, buf, len);
		if (wret || rret || d < len)
			note(&e, "write %d, read %d of %u bytes at %llu, first difference at %zu",
			     wret, rret, len, (unsigned long long)off, d);
	}
	CHECK_NO_ERROR(e, "200 writes at odd multiples of 512, up to 3 pages long, read back");
	CHECK_STORE(&s, model, "the whole store matches: no write spilled over");
out_close:
	mem_store_close(&s);
out_free:
	free(back);
	free(buf);
	free(model);
}

/*
 * mem_store_zero() on ranges with ragged ends: exactly [off, off + len)
 * becomes zero, the bytes around it keep their data.  Offsets and lengths
 * are given in pages plus bytes so the cases hold for any page size.
 */
struct zero_case {
	long long off_pages, off_bytes, len_pages, len_bytes;
	const char *what;
};

static void test_zero_ranges(void)
{
	static const struct zero_case cases[] = {
		{ 0, 100, 0, 50, "50 bytes inside one page" },
		{ 1, 0, 0, 0, "an empty range" },
		{ 2, -10, 0, 20, "20 bytes across a page boundary" },
		{ 3, 7, 5, 0, "5 pages at +7: 4 whole pages and ragged edges" },
		{ 10, 0, 4, 0, "exactly 4 whole pages" },
		{ 16, 1, 1, -2, "a page but its first and last byte" },
		{ 20, 512, 2, 0, "2 pages at +512 (sector aligned, page unaligned)" },
		{ 0, 0, 1, 1, "the first page and one more byte" },
		{ 63, -50, 0, 100, "100 bytes across the last page boundary" },
		{ 64, -96, 0, 96, "the last 96 bytes" },
	};
	struct mem_store s;
	long long size, page;
	char *model;

	if (open_anon(&s, 64 * sysconf(_SC_PAGESIZE), 0,
		      "mem_store_open: 64 pages, for zeroing") < 0)
		return;
	size = s.size;
	page = s.page;
	model = malloc(size);
	if (!model)
		goto out;
	fill_random(model, size);
	mem_store_write(&s, model, 0, (uint32_t)size);
	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct zero_case *c = &cases[i];
		long long off = c->off_pages * page + c->off_bytes;
		long long len = c->len_pages * page + c->len_bytes;
		char name[128];
		int ret;

		ret = mem_store_zero(&s, (uint64_t)off, (uint64_t)len);
		memset(model + off, 0, (size_t)len);
		snprintf(name, sizeof(name), "zero %s [%lld, +%lld)", c->what, off, len);
		if (ret)
			CHECK_RES(ret, 0, name);
		else
			CHECK_STORE(&s, model, name);
	}
	free(model);
out:
	mem_store_close(&s);
}

/*
 * Zeroing gives whole pages back.  Write 64 MiB, then zero all of it but
 * 512 bytes at each end: every page but the first and last must be gone
 * from the mapping, and the process's Rss must fall back.
 */
static void test_zero_gives_memory_back(void)
{
	const uint64_t size = 64 * MiB;
	const uint32_t chunk = 1 << 20;
	char *buf = malloc(chunk), head[512], tail[512];
	long long rss0, rss1, rss2, res1, res2;
	struct mem_store s;
	uint64_t nz = size;

	if (!buf ||
	    open_anon(&s, size, 0, "mem_store_open: 64 MiB, for giving memory back") < 0)
		goto out_free;
	memset(buf, 0x5a, chunk);
	rss0 = process_rss();
	for (uint64_t off = 0; off < size; off += chunk)
		mem_store_write(&s, buf, off, chunk);
	rss1 = process_rss();
	res1 = resident_bytes(s.base, size);
	CHECK(res1 == (long long)size, "after writing 64 MiB, all of it is resident",
	      "%lld bytes resident", res1);

	CHECK_RES(mem_store_zero(&s, 512, size - 1024), 0,
		  "zero 64 MiB but 512 bytes at each end");
	rss2 = process_rss();
	res2 = resident_bytes(s.base, size);	/* before any read maps zero pages */
	CHECK(res2 == 2LL * s.page, "only the first and last page stay resident",
	      "%lld bytes resident, want %u", res2, 2 * s.page);
	if (rss0 < 0 || rss1 < 0 || rss2 < 0) {
		skip("Rss falls back after zeroing", "no /proc/self/smaps_rollup");
	} else {
		CHECK(rss1 - rss0 >= (long long)(60 * MiB) &&
		      rss2 - rss0 <= (long long)(4 * MiB),
		      "process Rss rises by 64 MiB and falls back after zeroing",
		      "Rss %lld KiB, then %lld KiB after writing, %lld KiB after zeroing",
		      rss0 >> 10, rss1 >> 10, rss2 >> 10);
	}

	mem_store_read(&s, head, 0, sizeof(head));
	mem_store_read(&s, tail, size - sizeof(tail), sizeof(tail));
	CHECK(first_not(head, sizeof(head), 0x5a) == sizeof(head) &&
	      first_not(tail, sizeof(tail), 0x5a) == sizeof(tail),
	      "the 512 bytes at each end kept their data",
	      "head differs at %zu, tail at %zu", first_not(head, sizeof(head), 0x5a),
	      first_not(tail, sizeof(tail), 0x5a));
	for (uint64_t off = 512; nz == size && off < size - 512; off += chunk) {
		uint32_t len = size - 512 - off < chunk ? (uint32_t)(size - 512 - off) : chunk;

		mem_store_read(&s, buf, off, len);
		if (first_nonzero(buf, len) < len)
			nz = off + first_nonzero(buf, len);
	}
	CHECK(nz == size, "everything between reads as zeros", "byte %llu not zero",
	      (unsigned long long)nz);
	mem_store_close(&s);
out_free:
	free(buf);
}

/*
 * Requests outside the store fail with -EIO and touch nothing, including
 * ones whose off + len wraps around 2^64; `direct` returns NULL for them.
 * Ranges inside, up to the last byte, work.
 */
struct range {
	uint64_t off, len;
	const char *what;
};

static void test_out_of_range(void)
{
	const uint64_t size = 1 * MiB;
	const struct range bad[] = {
		{ size, 1, "1 byte at the end" },
		{ size + 1, 0, "empty, past the end" },
		{ size + 512, 512, "512 bytes past the end" },
		{ size - 512, 1024, "1 KiB crossing the end" },
		{ 0, size + 1, "the whole store and a byte" },
		{ UINT64_MAX - 10, 100, "off = 2^64 - 11: off + len wraps" },
		{ UINT64_MAX, 1, "off = 2^64 - 1" },
	};
	const struct range good[] = {
		{ size - 512, 512, "the last 512 bytes" },
		{ size, 0, "empty, at the end" },
		{ 0, size, "the whole store" },
	};
	char *buf = malloc(size + 1), *tail = malloc(512), *p;
	struct mem_store s;

	if (!buf || !tail || open_anon(&s, size, 0, "mem_store_open: 1 MiB, for bounds") < 0)
		goto out_free;
	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		const struct range *r = &bad[i];
		uint32_t len = (uint32_t)r->len;	/* all fit in 32 bits */
		char name[128];
		int ret;

		memset(buf, 0xab, size + 1);
		snprintf(name, sizeof(name), "read %s: -EIO", r->what);
		ret = mem_store_read(&s, buf, r->off, len);
		CHECK(ret == -EIO && first_not(buf, size + 1, 0xab) == size + 1, name,
		      "got %d (%s)%s", ret, res_name(ret),
		      first_not(buf, size + 1, 0xab) <= size ? ", and it wrote into the buffer" : "");

		snprintf(name, sizeof(name), "write %s: -EIO", r->what);
		ret = mem_store_write(&s, buf, r->off, len);
		mem_store_read(&s, tail, size - 512, 512);
		CHECK(ret == -EIO && first_nonzero(tail, 512) == 512, name,
		      "got %d (%s)%s", ret, res_name(ret),
		      first_nonzero(tail, 512) < 512 ? ", and it wrote the last bytes" : "");

		snprintf(name, sizeof(name), "zero %s: -EIO", r->what);
		CHECK_RES(mem_store_zero(&s, r->off, r->len), -EIO, name);

		snprintf(name, sizeof(name), "direct %s: NULL", r->what);
		p = mem_backend_ops.direct(&s, r->off, len, true);
		CHECK(!p, name, "got %p, base %p", (void *)p, (void *)s.base);
	}
	CHECK_RES(mem_store_zero(&s, 1, UINT64_MAX), -EIO,
		  "zero len = 2^64 - 1 at 1: off + len wraps: -EIO");
	for (unsigned i = 0; i < ARRAY_SIZE(good); i++) {
		const struct range *r = &good[i];
		char name[128];
		int rd, wr, zr;

		rd = mem_store_read(&s, buf, r->off, (uint32_t)r->len);
		wr = mem_store_write(&s, buf, r->off, (uint32_t)r->len);
		zr = mem_store_zero(&s, r->off, r->len);
		snprintf(name, sizeof(name), "read, write and zero %s succeed", r->what);
		CHECK(!rd && !wr && !zr, name, "read %d, write %d, zero %d", rd, wr, zr);

		snprintf(name, sizeof(name), "direct %s: base + off", r->what);
		p = mem_backend_ops.direct(&s, r->off, (uint32_t)r->len, false);
		CHECK(p == s.base + r->off, name, "got %p, base %p", (void *)p, (void *)s.base);
	}
	mem_store_close(&s);
out_free:
	free(tail);
	free(buf);
}

/* The backend table: RAM needs no flush; direct and discard work. */
static void test_backend_ops(void)
{
	const struct ublk_backend_ops *ops = &mem_backend_ops;
	const uint64_t size = 1 * MiB;
	struct mem_store s;
	char buf[512];
	char *p;

	CHECK(!strcmp(ops->name, "mem") && ops->read == mem_store_read &&
	      ops->write == mem_store_write && ops->write_zeroes == mem_store_zero &&
	      ops->discard && ops->direct && !ops->flush,
	      "mem_backend_ops: read, write, discard, write_zeroes, direct; no flush",
	      "name %s, read %d write %d discard %d write_zeroes %d direct %d flush %d",
	      ops->name, !!ops->read, !!ops->write, !!ops->discard,
	      !!ops->write_zeroes, !!ops->direct, !!ops->flush);
	if (open_anon(&s, size, 0, "mem_store_open: 1 MiB, for the ops table") < 0)
		return;

	memcpy(buf, "written through ops->write", 27);
	ops->write(&s, buf, 8192 + 512, 27);
	p = ops->direct(&s, 8192 + 512, 27, false);
	CHECK(p && !memcmp(p, buf, 27), "direct sees what ops->write stored",
	      "found \"%.27s\"", p ? p : "(NULL)");

	CHECK_RES(ops->discard(&s, 8192, 4096), 0, "ops->discard of one page");
	memset(buf, 0xff, sizeof(buf));
	ops->read(&s, buf, 8192 + 512, sizeof(buf));
	CHECK(first_nonzero(buf, sizeof(buf)) == sizeof(buf),
	      "discarded range reads back as zeros", "byte %zu not zero",
	      first_nonzero(buf, sizeof(buf)));
	mem_store_close(&s);
}

/* A store far larger than what is touched costs only what is touched. */
static void test_lazy_allocation(void)
{
	const uint64_t size = 1 * GiB;
	long long rss0 = process_rss(), rss1, res;
	struct mem_store s;
	char buf[512];
	int ret;

	ret = mem_store_open(&s, size, 0, NULL);
	if (ret == -ENOMEM) {
		skip("lazy allocation", "no 1 GiB of address space (strict overcommit?)");
		return;
	}
	if (!CHECK_RES(ret, 0, "mem_store_open: 1 GiB"))
		return;
	rss1 = process_rss();
	res = resident_bytes(s.base, size);
	CHECK(res == 0, "a fresh 1 GiB store has no resident pages",
	      "%lld bytes resident", res);
	if (rss0 < 0 || rss1 < 0)
		skip("Rss after opening 1 GiB", "no /proc/self/smaps_rollup");
	else
		CHECK(rss1 - rss0 < (long long)(1 * MiB),
		      "process Rss grows by under 1 MiB for a 1 GiB store",
		      "grew by %lld KiB", (rss1 - rss0) >> 10);

	memset(buf, 0x42, sizeof(buf));
	mem_store_write(&s, buf, 512 * MiB + 512, sizeof(buf));
	res = resident_bytes(s.base, size);
	/* One page; a transparent huge page would make it 2 MiB at most. */
	CHECK(res >= s.page && res <= (long long)(2 * MiB),
	      "one 512-byte write allocates about a page, not the store",
	      "%lld bytes resident", res);
	mem_store_close(&s);
}

/*
 * Whether mlock() really faults pages in here.  AddressSanitizer replaces
 * mlock() with a stub that returns 0 and does nothing, so in a sanitizer
 * build MEM_STORE_PREALLOC cannot show up in the resident set.
 */
static bool mlock_populates(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	void *p = mmap(NULL, page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	bool populated;

	if (p == MAP_FAILED)
		return false;
	populated = mlock(p, page) == 0 && resident_bytes(p, page) == (long long)page;
	munmap(p, page);
	return populated;
}

/*
 * MEM_STORE_PREALLOC allocates and locks everything at open, and
 * zeroing then clears memory instead of giving it back.
 */
static void test_prealloc(void)
{
	const uint64_t size = 8 * MiB;
	long long rss0 = process_rss(), rss1, res;
	char *model = malloc(size);
	struct mem_store s;
	struct rlimit lim;
	int ret;

	if (!model)
		return;
	ret = mem_store_open(&s, size, MEM_STORE_PREALLOC, NULL);
	if (ret == -ENOMEM || ret == -EPERM || ret == -EAGAIN) {
		getrlimit(RLIMIT_MEMLOCK, &lim);
		printf("# RLIMIT_MEMLOCK is %llu bytes\n", (unsigned long long)lim.rlim_cur);
		skip("MEM_STORE_PREALLOC", "cannot mlock 8 MiB here");
		free(model);
		return;
	}
	if (!CHECK_RES(ret, 0, "mem_store_open: 8 MiB, MEM_STORE_PREALLOC"))
		goto out;
	rss1 = process_rss();
	res = resident_bytes(s.base, size);
	CHECK(s.locked, "prealloc: the store is marked locked", "locked %d", s.locked);
	if (!mlock_populates()) {
		skip("prealloc: all 8 MiB resident",
		     "mlock() does not populate memory in this build (AddressSanitizer stubs it out)");
	} else if (CHECK(res == (long long)size, "prealloc: all 8 MiB resident at open",
			 "%lld bytes resident", res)) {
		if (rss0 < 0 || rss1 < 0)
			skip("prealloc Rss", "no /proc/self/smaps_rollup");
		else
			CHECK(rss1 - rss0 >= (long long)(size - size / 16),
			      "prealloc: process Rss grows by the store's 8 MiB",
			      "grew by %lld KiB", (rss1 - rss0) >> 10);
	}

	fill_random(model, size);
	mem_store_write(&s, model, 0, (uint32_t)size);
	CHECK_RES(mem_store_zero(&s, 512, size - 1024), 0,
		  "prealloc: zero all but 512 bytes at each end");
	memset(model + 512, 0, size - 1024);
	res = resident_bytes(s.base, size);
	CHECK(res == (long long)size, "prealloc: zeroing keeps every page",
	      "%lld bytes resident", res);
	CHECK_STORE(&s, model, "prealloc: the range reads as zeros, the ends kept");
	CHECK_RES(mem_store_zero(&s, 0, size), 0, "prealloc: zero everything");
	memset(model, 0, size);
	CHECK_STORE(&s, model, "prealloc: the whole store reads as zeros");
	mem_store_close(&s);
out:
	free(model);
}

/* A directory for store files: tmpfs if there is one, else /tmp. */
static bool make_store_dir(char *dir, size_t len)
{
	snprintf(dir, len, "/dev/shm/mem_test.XXXXXX");
	if (mkdtemp(dir))
		return true;
	snprintf(dir, len, "/tmp/mem_test.XXXXXX");
	return mkdtemp(dir) != NULL;
}

/* Blocks the file at @path occupies, or -1. */
static long long file_blocks(const char *path)
{
	struct stat st;

	return stat(path, &st) < 0 ? -1 : (long long)st.st_blocks;
}

/*
 * The file-backed store: created, closed, reopened with the same data;
 * reopening with another size or creating over it fails and harms nothing.
 */
static void test_file_store(void)
{
	const uint64_t size = 4 * MiB, page = (uint64_t)sysconf(_SC_PAGESIZE);
	char dir[64], path[96];
	char *model = malloc(size);
	struct mem_store s;
	struct stat st = { 0 };
	int ret;

	if (!model || !CHECK(make_store_dir(dir, sizeof(dir)),
			     "temporary directory for store files", "%s", strerror(errno))) {
		free(model);
		return;
	}
	snprintf(path, sizeof(path), "%s/store", dir);
	printf("# store file %s\n", path);

	ret = mem_store_open(&s, size, MEM_STORE_CREATE, path);
	if (!CHECK_RES(ret, 0, "mem_store_open: create a 4 MiB store file"))
		goto out_rmdir;
	CHECK(s.fd >= 0 && stat(path, &st) == 0 && (uint64_t)st.st_size == size,
	      "the store file exists and is 4 MiB", "fd %d, size %lld", s.fd,
	      (long long)st.st_size);
	memset(model, 0, size);
	CHECK_STORE(&s, model, "a new store file reads as zeros");
	for (unsigned i = 0; i < 16; i++) {
		uint64_t off = 512 * rand_below(size / 512 - 64);
		uint32_t len = (uint32_t)(512 * (1 + rand_below(64)));

		fill_random(model + off, len);
		mem_store_write(&s, model + off, off, len);
	}
	CHECK_RES(mem_store_zero(&s, page + 100, 3 * page), 0,
		  "zero an unaligned range of the store file");
	memset(model + page + 100, 0, 3 * page);
	CHECK_STORE(&s, model, "store file holds the writes and the zeroed range");
	mem_store_close(&s);

	ret = mem_store_open(&s, size, 0, path);
	if (CHECK_RES(ret, 0, "mem_store_open: reopen the store file")) {
		CHECK_STORE(&s, model, "reopened store has the same data");
		mem_store_close(&s);
	}

	expect_stderr("a size mismatch for the store file");
	ret = mem_store_open(&s, size + page, 0, path);
	CHECK(ret == -EINVAL && !s.base && s.fd == -1,
	      "reopen with another size fails with -EINVAL, holding nothing",
	      "got %d (%s), base %p, fd %d", ret, res_name(ret), (void *)s.base, s.fd);
	if (ret == 0)
		mem_store_close(&s);

	expect_stderr("File exists for the store file");
	ret = mem_store_open(&s, size, MEM_STORE_CREATE, path);
	CHECK(ret == -EEXIST && !s.base && s.fd == -1,
	      "create over an existing store fails with -EEXIST, holding nothing",
	      "got %d (%s), base %p, fd %d", ret, res_name(ret), (void *)s.base, s.fd);
	if (ret == 0)
		mem_store_close(&s);

	ret = mem_store_open(&s, size, 0, path);
	if (CHECK_RES(ret, 0, "mem_store_open: reopen after the failed opens")) {
		CHECK_STORE(&s, model, "the failed opens left the data alone");
		CHECK(file_blocks(path) > 0, "the written store file occupies blocks",
		      "%lld blocks", file_blocks(path));
		CHECK_RES(mem_store_zero(&s, 0, size), 0, "zero the whole store file");
		CHECK(file_blocks(path) == 0,
		      "zeroing the whole store file frees its blocks (punched hole)",
		      "%lld blocks left", file_blocks(path));
		memset(model, 0, size);
		CHECK_STORE(&s, model, "the zeroed store file reads as zeros");
		mem_store_close(&s);
	}
	unlink(path);

	expect_stderr("No such file or directory for the store file");
	ret = mem_store_open(&s, size, 0, path);
	CHECK_RES(ret, -ENOENT, "opening a missing store without CREATE fails with -ENOENT");
	if (ret == 0)
		mem_store_close(&s);
out_rmdir:
	unlink(path);
	rmdir(dir);
	free(model);
}

/* parse_size(): decimal numbers with a K, M, G or T suffix (powers of 1024). */
struct size_case {
	const char *text;
	bool ok;
	uint64_t value;
};

static void test_parse_size(void)
{
	static const struct size_case cases[] = {
		{ "64M", true, 64 * MiB },
		{ "1G", true, GiB },
		{ "65536", true, 65536 },
		{ "4k", true, 4 * KiB },
		{ "4K", true, 4 * KiB },
		{ "1T", true, 1ULL << 40 },
		{ "0", true, 0 },
		{ "512g", true, 512 * GiB },
		{ "16777215T", true, 16777215ULL << 40 },
		{ "", false, 0 },
		{ "abc", false, 0 },
		{ "M", false, 0 },
		{ "12Q", false, 0 },
		{ "-5", false, 0 },
		{ "+5", false, 0 },
		{ " 64M", false, 0 },
		{ "64 M", false, 0 },
		{ "64M ", false, 0 },
		{ "0x10", false, 0 },
		{ "1.5G", false, 0 },
		{ "64M5", false, 0 },
		{ "64MM", false, 0 },
		{ "64i", false, 0 },
		{ "64Mi", false, 0 },	/* exactly one suffix letter: */
		{ "64MiB", false, 0 },	/* "64MB" could mean 10^6 too */
		{ "64MB", false, 0 },
		{ "99999999999999999999", false, 0 },
		{ "20000000T", false, 0 },
		{ "16777216T", false, 0 },	/* exactly 2^64 */
		{ "17179869184G", false, 0 },	/* exactly 2^64 */
	};

	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct size_case *c = &cases[i];
		uint64_t v = 12345;	/* must stay untouched on failure */
		int ret = parse_size(c->text, &v);
		char name[96];

		if (c->ok) {
			snprintf(name, sizeof(name), "parse_size(\"%s\") = %llu", c->text,
				 (unsigned long long)c->value);
			CHECK(ret == 0 && v == c->value, name, "returned %d, value %llu",
			      ret, (unsigned long long)v);
		} else {
			snprintf(name, sizeof(name), "parse_size(\"%s\") is rejected", c->text);
			CHECK(ret == -EINVAL && v == 12345, name,
			      "returned %d, value %llu", ret, (unsigned long long)v);
		}
	}
}

static void test_mem_total(void)
{
	uint64_t total = mem_total_bytes();

	printf("# mem_total_bytes() = %llu MiB\n", (unsigned long long)(total >> 20));
	CHECK(total > 0, "mem_total_bytes() > 0", "got 0");
	CHECK(access("/proc/meminfo", R_OK) != 0 || total != UINT64_MAX,
	      "mem_total_bytes() reads /proc/meminfo", "got UINT64_MAX (unknown)");
}

/*
 * The Makefile builds mem_backend.c with -Dmain=ublk_mem_main so that its
 * main() steps aside; the flag reaches this file too, so undo it here.
 */
#undef main

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_open_anonymous();
	test_huge_pages();
	test_unwritten_reads_zero();
	test_write_read_back();
	test_zero_ranges();
	test_zero_gives_memory_back();
	test_out_of_range();
	test_backend_ops();
	test_lazy_allocation();
	test_prealloc();
	test_file_store();
	test_parse_size();
	test_mem_total();

	return check_summary("mem_test");
}
