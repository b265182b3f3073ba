/*
 * zstore_test.c - tests of the compressed RAM store (zstore.c, zalloc.c).
 *
 *   - round trips, in anonymous memory and in a tmpfs file: random data,
 *     text, zeros, same-filled pages of several words, writes of parts of
 *     pages at odd 512-byte offsets, a page changing type (raw ->
 *     compressed -> same -> zero -> empty), bad requests; a file store
 *     closed and reopened holds the same;
 *   - stats against known writes: zeros and same-filled pages cost no
 *     arena, random pages are huge, text compresses;
 *   - memory goes back: 32 MiB written then zeroed leaves the header page
 *     only, in the store's count, in the mapping's resident pages and the
 *     process's RSS (anonymous) or the file's blocks (tmpfs);
 *   - mem_limit and may_grow: writes past them fail with ENOSPC, change
 *     nothing, and the store goes on working;
 *   - the reserve (a store used as swap): with the index resident and
 *     4 slabs in reserve, writes go on while may_grow() refuses, until
 *     the reserve runs dry (ENOSPC); neither is counted; zeroed, the
 *     slabs go back to the reserve, and a file store reopens whole;
 *   - compaction: half the pages zeroed, compacted, memory drops, the
 *     data stays;
 *   - resize; a 1 TiB store with three pages written costs three index
 *     pages and a slab; files that are not stores, damaged or left locked;
 *   - 4 threads on shared pages: writes, reads, zeros, compaction; a read
 *     sees a whole page of some write, never a mix; writes of parts of
 *     one page by different threads lose nothing;
 *   - crash safety: a child writing to a file store is killed (SIGKILL)
 *     20 times at different moments, some during compaction; reopened,
 *     every page holds its last write (or the one under way), the stats
 *     match and nothing leaked.
 *
 * Deterministic data (check.h's fixed seed; the kills land where they
 * land, and every landing must pass).  Build and run from the top:
 *   gcc -std=gnu11 -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
 *       -Wall -Wextra -D_FILE_OFFSET_BITS=64 -I. -Itest -o /tmp/zstore_test \
 *       test/unit/zstore_test.c zstore.c zalloc.c lz4.c log.c -pthread && /tmp/zstore_test
 * Arguments name the tests to run (default: all); ZSTORE_BENCH=1 measures
 * write and read speed instead (build with -O2 and no sanitizer for that).
 * Exit status: 0 all passed, 1 a check failed.
 */
#define _GNU_SOURCE
#include "zstore.h"
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KiB	1024ULL
#define MiB	(1024 * KiB)
#define PG	ZPAGE

typedef unsigned char u8;

#ifdef __SANITIZE_THREAD__
#define UNDER_TSAN	1
#else
#define UNDER_TSAN	0
#endif

static size_t gran;	/* the machine page */
static bool have_shm;	/* /dev/shm takes files: the file tests can run */

/* ---- helpers ---- */

static void *xmalloc(size_t len)
{
	void *p = malloc(len);

	if (!p) {
		fprintf(stderr, "zstore_test: out of memory for %zu bytes\n", len);
		exit(CHECK_EXIT_FAIL);
	}
	return p;
}

static void *xcalloc(size_t len)
{
	void *p = xmalloc(len);

	memset(p, 0, len);
	return p;
}

/* Words strung into sentences: text that compresses like text. */
static void fill_text(u8 *buf, size_t len)
{
	static const char *const words[] = {
		"the", "of", "and", "to", "in", "a", "is", "that", "for", "it",
		"block", "device", "page", "memory", "compressed", "request",
		"queue", "kernel", "userspace", "ring", "with", "as", "on", "by",
	};
	size_t i = 0;

	while (i < len) {
		const char *w = words[rand_below(ARRAY_SIZE(words))];

		for (size_t j = 0; w[j] && i < len; j++)
			buf[i++] = (u8)w[j];
		if (i < len)
			buf[i++] = rand_below(12) ? ' ' : (rand_below(2) ? '.' : '\n');
	}
}

static void fill_word(u8 *buf, size_t len, uint64_t word)
{
	for (size_t i = 0; i < len; i += 8)
		memcpy(buf + i, &word, 8);
}

enum kind { K_RANDOM, K_TEXT, K_ZERO, K_SAME, NR_KINDS };

static void fill_kind(u8 *buf, size_t len, enum kind k)
{
	static const uint64_t words[] = {
		0x0101010101010101ULL, 0xdeadbeefcafef00dULL, ~0ULL, 1, 1ULL << 63,
	};

	switch (k) {
	case K_RANDOM:
		fill_random(buf, len);
		break;
	case K_TEXT:
		fill_text(buf, len);
		break;
	case K_ZERO:
		memset(buf, 0, len);
		break;
	default:
		fill_word(buf, len, words[rand_below(ARRAY_SIZE(words))]);
		break;
	}
}

/* A store under test: anonymous, or in a new file of /dev/shm. */
struct tstore {
	struct zstore z;
	int fd;
	char path[64];
};

struct topts {
	uint64_t size, max_size, mem_limit;
	bool (*may_grow)(void *ctx, uint64_t bytes);
	void *ctx;
};

static int tstore_new(struct tstore *t, bool file, const struct topts *o)
{
	t->fd = -1;
	t->path[0] = '\0';
	memset(&t->z, 0, sizeof(t->z));
	if (file) {
		snprintf(t->path, sizeof(t->path), "/dev/shm/zstore_test.XXXXXX");
		t->fd = mkstemp(t->path);
		if (t->fd < 0)
			return -errno;
	}
	return zstore_open(&t->z, &(struct zstore_config){
		.size = o->size, .max_size = o->max_size, .fd = t->fd, .create = true,
		.mem_limit = o->mem_limit, .may_grow = o->may_grow, .ctx = o->ctx,
	});
}

/* Close a file store and open it again from its file. */
static int tstore_reopen(struct tstore *t)
{
	zstore_close(&t->z);
	return zstore_open(&t->z, &(struct zstore_config){ .fd = t->fd });
}

static void tstore_free(struct tstore *t)
{
	zstore_close(&t->z);
	if (t->fd >= 0) {
		close(t->fd);
		unlink(t->path);
	}
	t->fd = -1;
}

static struct zstore_stats stats(struct zstore *z)
{
	struct zstore_stats st;

	zstore_stats(z, &st);
	return st;
}

/* Compare the whole device with @shadow, 1 MiB at a time. */
static void verify_all(struct zstore *z, const u8 *shadow, uint64_t size,
		       struct first_error *e)
{
	u8 *buf = xmalloc(MiB);

	for (uint64_t off = 0; off < size; off += MiB) {
		uint32_t n = size - off < MiB ? (uint32_t)(size - off) : (uint32_t)MiB;
		int ret = zstore_read(z, buf, off, n);
		size_t d;

		if (ret < 0) {
			note(e, "read at %llu: %s", (unsigned long long)off, res_name(ret));
			break;
		}
		d = first_diff(buf, shadow + off, n);
		if (d < n) {
			note(e, "byte %llu differs", (unsigned long long)(off + d));
			break;
		}
	}
	free(buf);
}

/* Write to the store and to @shadow. */
static int twrite(struct zstore *z, u8 *shadow, const u8 *buf, uint64_t off, uint32_t len)
{
	int ret = zstore_write(z, buf, off, len);

	if (ret == 0)
		memcpy(shadow + off, buf, len);
	return ret;
}

/* Resident pages of the store's mapping (mincore). */
static uint64_t resident_bytes(struct zstore *z)
{
	size_t n = (z->a.map_len + gran - 1) / gran;
	unsigned char *vec = xmalloc(n);
	uint64_t count = 0;

	if (mincore(z->a.base, z->a.map_len, vec) == 0)
		for (size_t i = 0; i < n; i++)
			count += vec[i] & 1;
	free(vec);
	return count * gran;
}

/* The process's resident set, in bytes (/proc/self/statm). */
static uint64_t rss_bytes(void)
{
	unsigned long long size, rss = 0;
	FILE *f = fopen("/proc/self/statm", "re");

	if (f) {
		if (fscanf(f, "%llu %llu", &size, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * gran;
}

static uint64_t file_bytes(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? (uint64_t)st.st_blocks * 512 : UINT64_MAX;
}

/* ---- patterns: a page that says which write made it ---- */

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/*
 * The page that write @gen (>= 1) of page @p writes: its first word is
 * p << 32 | gen, and the rest follows from it; by gen % 3 the page is
 * same-filled, compressible or incompressible, so a page's type changes
 * from one write to the next.
 */
static void pattern(u8 *page, uint64_t p, uint64_t gen)
{
	uint64_t tag = p << 32 | gen, w;

	for (unsigned i = 0; i < PG / 8; i++) {
		if (gen % 3 == 0 || i == 0)
			w = tag;
		else if (gen % 3 == 1)
			w = 0x2020202020202000ULL | (mix64(tag + i / 8) & 3);
		else
			w = mix64(tag + i);
		memcpy(page + i * 8, &w, 8);
	}
}

/* Which write made @page (of page @p): its gen, 0 for zeros, -1 if none. */
static int64_t pattern_gen(const u8 *page, uint64_t p)
{
	u8 want[PG];
	uint64_t tag;

	memcpy(&tag, page, 8);
	if (!tag) {
		memset(want, 0, PG);
		return memcmp(page, want, PG) ? -1 : 0;
	}
	if (tag >> 32 != p)
		return -1;
	pattern(want, p, tag & 0xffffffff);
	return memcmp(page, want, PG) ? -1 : (int64_t)(tag & 0xffffffff);
}

/* ---- round trips ---- */

/* One page through raw, compressed, same, zero, empty: data and counts. */
static void test_type_changes(struct zstore *z, u8 *shadow, uint64_t size)
{
	static const struct { enum kind kind; const char *name; } steps[] = {
		{ K_RANDOM, "raw" }, { K_TEXT, "compressed" }, { K_SAME, "same" },
		{ K_ZERO, "zero" }, { K_RANDOM, "raw again" },
	};
	uint64_t off = size - 2 * PG;
	struct zstore_stats st0, st;
	u8 page[PG], back[PG];
	struct first_error e = { 0 };

	zstore_zero(z, off, PG);
	memset(shadow + off, 0, PG);
	st0 = stats(z);

	for (unsigned i = 0; i < ARRAY_SIZE(steps); i++) {
		enum kind k = steps[i].kind;

		fill_kind(page, PG, k);
		if (zstore_write(z, page, off, PG) || zstore_read(z, back, off, PG) ||
		    memcmp(page, back, PG)) {
			note(&e, "%s: does not read back", steps[i].name);
			break;
		}
		st = stats(z);
		if (st.huge_pages - st0.huge_pages != (k == K_RANDOM) ||
		    st.same_pages - st0.same_pages != (k == K_SAME || k == K_ZERO) ||
		    st.orig_data_size - st0.orig_data_size != PG)
			note(&e, "%s: counted huge %+lld same %+lld orig %+lld", steps[i].name,
			     (long long)(st.huge_pages - st0.huge_pages),
			     (long long)(st.same_pages - st0.same_pages),
			     (long long)(st.orig_data_size - st0.orig_data_size));
	}
	zstore_zero(z, off, PG);
	st = stats(z);
	if (zstore_read(z, back, off, PG) || first_diff(back, (u8[PG]){ 0 }, PG) < PG)
		note(&e, "zeroed: does not read zeros");
	else if (st.huge_pages != st0.huge_pages || st.same_pages != st0.same_pages ||
		 st.orig_data_size != st0.orig_data_size)
		note(&e, "zeroed: counts not back");
	CHECK_NO_ERROR(e, "a page changes type raw -> compressed -> same -> zero -> empty");
}

static void test_bad_requests(struct zstore *z, uint64_t size)
{
	u8 *buf = xcalloc(2 * MiB);

	CHECK_RES(zstore_read(z, buf, 100, 512), -EINVAL, "a misaligned read fails");
	CHECK_RES(zstore_write(z, buf, 512, 100), -EINVAL, "a misaligned write fails");
	CHECK_RES(zstore_read(z, buf, 0, 2 * MiB), -EINVAL, "a read over 1 MiB fails");
	CHECK_RES(zstore_write(z, buf, size, 512), -EIO, "a write past the end fails");
	CHECK_RES(zstore_read(z, buf, size - 512, 1024), -EIO, "a read over the end fails");
	CHECK_RES(zstore_zero(z, size - 512, 1024), -EIO, "a zero over the end fails");
	CHECK_RES(zstore_zero(z, 0, 100), -EINVAL, "a misaligned zero fails");
	free(buf);
}

static void test_round_trip(bool file)
{
	const uint64_t size = 8 * MiB;
	u8 *shadow = xcalloc(size), *buf = xmalloc(MiB);
	struct first_error e = { 0 };
	struct zstore_stats before, after;
	struct tstore t;
	int ret;

	check_prefix = file ? "file: " : "anonymous: ";
	ret = tstore_new(&t, file, &(struct topts){ .size = size });
	if (!CHECK_RES(ret, 0, "open a new store"))
		goto out;

	/* 1 MiB of each kind, then the same in parts. */
	for (unsigned k = 0; k < NR_KINDS; k++) {
		if (k == K_SAME)	/* pages of different words */
			for (unsigned i = 0; i < MiB / PG; i++)
				fill_kind(buf + i * PG, PG, K_SAME);
		else
			fill_kind(buf, MiB, k);
		if ((ret = twrite(&t.z, shadow, buf, k * MiB, MiB)))
			note(&e, "writing kind %u: %s", k, res_name(ret));
	}
	verify_all(&t.z, shadow, size, &e);
	CHECK_NO_ERROR(e, "random, text, zero and same-filled pages read back");

	for (unsigned i = 0; i < 400 && !e.set; i++) {
		uint64_t off = rand_below(size / 512) * 512;
		uint32_t len = (uint32_t)(1 + rand_below(24)) * 512;

		if (off + len > size)
			len = (uint32_t)(size - off);
		fill_kind(buf, len, rand_below(NR_KINDS));
		if ((ret = twrite(&t.z, shadow, buf, off, len)))
			note(&e, "write %u bytes at %llu: %s", len, (unsigned long long)off,
			     res_name(ret));
	}
	verify_all(&t.z, shadow, size, &e);
	CHECK_NO_ERROR(e, "writes of parts of pages at odd 512-byte offsets read back");

	for (unsigned i = 0; i < 400 && !e.set; i++) {
		uint64_t off = rand_below(size / 512) * 512;
		uint32_t len = (uint32_t)(1 + rand_below(40)) * 512;

		if (off + len > size)
			len = (uint32_t)(size - off);
		if (zstore_read(&t.z, buf, off, len) || memcmp(buf, shadow + off, len))
			note(&e, "read %u bytes at %llu", len, (unsigned long long)off);
	}
	CHECK_NO_ERROR(e, "reads of parts of pages at odd 512-byte offsets");

	for (unsigned i = 0; i < 100 && !e.set; i++) {
		uint64_t off = rand_below(size / 512) * 512;
		uint64_t len = (1 + rand_below(40)) * 512;

		if (off + len > size)
			len = size - off;
		if ((ret = zstore_zero(&t.z, off, len)))
			note(&e, "zero %llu bytes at %llu: %s", (unsigned long long)len,
			     (unsigned long long)off, res_name(ret));
		memset(shadow + off, 0, len);
	}
	verify_all(&t.z, shadow, size, &e);
	CHECK_NO_ERROR(e, "zeroing parts of pages and whole pages");

	test_type_changes(&t.z, shadow, size);
	test_bad_requests(&t.z, size);

	if (file) {
		before = stats(&t.z);
		ret = tstore_reopen(&t);
		if (CHECK_RES(ret, 0, "reopen after a clean close")) {
			after = stats(&t.z);
			verify_all(&t.z, shadow, size, &e);
			CHECK_NO_ERROR(e, "a reopened store reads the same");
			CHECK(before.orig_data_size == after.orig_data_size &&
			      before.compr_data_size == after.compr_data_size &&
			      before.same_pages == after.same_pages &&
			      before.huge_pages == after.huge_pages &&
			      before.mem_used_total == after.mem_used_total,
			      "a reopened store counts the same",
			      "orig %llu/%llu compr %llu/%llu same %llu/%llu huge %llu/%llu mem %llu/%llu",
			      (unsigned long long)before.orig_data_size,
			      (unsigned long long)after.orig_data_size,
			      (unsigned long long)before.compr_data_size,
			      (unsigned long long)after.compr_data_size,
			      (unsigned long long)before.same_pages,
			      (unsigned long long)after.same_pages,
			      (unsigned long long)before.huge_pages,
			      (unsigned long long)after.huge_pages,
			      (unsigned long long)before.mem_used_total,
			      (unsigned long long)after.mem_used_total);
		}
	}
out:
	tstore_free(&t);
	free(shadow);
	free(buf);
	check_prefix = "";
}

/* ---- stats ---- */

static void test_stats(void)
{
	const uint64_t n = 1024, ipages = n * 8 / gran;	/* index pages for n pages */
	struct zstore_stats st0, st;
	u8 *buf = xmalloc(n * PG);
	uint64_t mem, slabs;
	struct tstore t;

	if (!CHECK_RES(tstore_new(&t, false, &(struct topts){ .size = 64 * MiB }), 0,
		       "stats: open"))
		goto out;
	st0 = stats(&t.z);
	CHECK(st0.mem_used_total == gran && st0.mem_used_max == gran,
	      "stats: an empty store holds its header page only", "%llu bytes",
	      (unsigned long long)st0.mem_used_total);

	memset(buf, 0, n * PG);
	for (uint64_t i = 0; i < n; i += 256)
		zstore_write(&t.z, buf + i * PG, i * PG, 256 * PG);
	st = stats(&t.z);
	CHECK(st.same_pages == n && st.orig_data_size == n * PG && st.compr_data_size == 0 &&
	      st.mem_used_total == st0.mem_used_total + ipages * gran,
	      "stats: zero pages count as same_pages and take no arena",
	      "same %llu orig %llu compr %llu mem +%llu",
	      (unsigned long long)st.same_pages, (unsigned long long)st.orig_data_size,
	      (unsigned long long)st.compr_data_size,
	      (unsigned long long)(st.mem_used_total - st0.mem_used_total));

	mem = st.mem_used_total;
	for (uint64_t i = 0; i < n; i++)
		fill_word(buf + i * PG, PG, 0x5555aaaa00000000ULL + i);
	for (uint64_t i = 0; i < n; i += 256)
		zstore_write(&t.z, buf + i * PG, (n + i) * PG, 256 * PG);
	st = stats(&t.z);
	/* Index pages, and as many pages of fill words. */
	CHECK(st.same_pages == 2 * n && st.orig_data_size == 2 * n * PG &&
	      st.mem_used_total == mem + 2 * ipages * gran,
	      "stats: same-filled pages count as same_pages and take no arena",
	      "same %llu orig %llu mem +%llu", (unsigned long long)st.same_pages,
	      (unsigned long long)st.orig_data_size,
	      (unsigned long long)(st.mem_used_total - mem));

	mem = st.mem_used_total;
	fill_random(buf, n * PG);
	for (uint64_t i = 0; i < n; i += 256)
		zstore_write(&t.z, buf + i * PG, (2 * n + i) * PG, 256 * PG);
	st = stats(&t.z);
	slabs = (n + ZSLAB / PG - 1) / (ZSLAB / PG);
	CHECK(st.huge_pages == n && st.huge_pages_since == n && st.orig_data_size == 3 * n * PG &&
	      st.compr_data_size == n * PG &&
	      st.mem_used_total == mem + ipages * gran + slabs * ZSLAB,
	      "stats: random pages are huge, stored raw 16 to a 64 KiB slab",
	      "huge %llu since %llu orig %llu compr %llu mem +%llu",
	      (unsigned long long)st.huge_pages, (unsigned long long)st.huge_pages_since,
	      (unsigned long long)st.orig_data_size, (unsigned long long)st.compr_data_size,
	      (unsigned long long)(st.mem_used_total - mem));

	st0 = st;
	/* 4n pages of text: the last slab of each class matters less. */
	for (uint64_t j = 0; j < 4; j++) {
		fill_text(buf, n * PG);
		for (uint64_t i = 0; i < n; i += 256)
			zstore_write(&t.z, buf + i * PG, ((3 + j) * n + i) * PG, 256 * PG);
	}
	st = stats(&t.z);
	{
		uint64_t orig = st.orig_data_size - st0.orig_data_size;
		uint64_t compr = st.compr_data_size - st0.compr_data_size;
		uint64_t used = st.mem_used_total - st0.mem_used_total - 4 * ipages * gran;

		CHECK(orig == 4 * n * PG && compr < orig * 3 / 4 && used >= compr &&
		      used <= compr + compr / 10,
		      "stats: text compresses, and its memory is close to its compressed size",
		      "orig %llu compr %llu memory %llu", (unsigned long long)orig,
		      (unsigned long long)compr, (unsigned long long)used);
		printf("# text: %llu bytes -> %llu compressed (%.2fx), %llu of memory (%.1f%% over)\n",
		       (unsigned long long)orig, (unsigned long long)compr, (double)orig / compr,
		       (unsigned long long)used, 100.0 * (double)(used - compr) / compr);
	}
	CHECK(st.mem_used_max == st.mem_used_total, "stats: mem_used_max follows the growth",
	      "max %llu used %llu", (unsigned long long)st.mem_used_max,
	      (unsigned long long)st.mem_used_total);
	zstore_zero(&t.z, 0, 7 * n * PG);
	st = stats(&t.z);
	CHECK(st.same_pages == 0 && st.orig_data_size == 0 && st.compr_data_size == 0 &&
	      st.huge_pages == 0 && st.huge_pages_since == n && st.mem_used_total == gran,
	      "stats: zeroing everything brings every count back",
	      "same %llu orig %llu compr %llu huge %llu mem %llu",
	      (unsigned long long)st.same_pages, (unsigned long long)st.orig_data_size,
	      (unsigned long long)st.compr_data_size, (unsigned long long)st.huge_pages,
	      (unsigned long long)st.mem_used_total);
out:
	tstore_free(&t);
	free(buf);
}

/* ---- memory goes back ---- */

static void test_memory_returns(bool file)
{
	const uint64_t size = 32 * MiB;
	u8 *buf = xmalloc(MiB);
	uint64_t rss0 = 0, rss1 = 0, rss2 = 0, used;
	struct zstore_stats st;
	struct tstore t;
	int ret = 0;

	check_prefix = file ? "file: " : "anonymous: ";
	if (!CHECK_RES(tstore_new(&t, file, &(struct topts){ .size = size }), 0,
		       "memory: open"))
		goto out;
	memset(buf, 1, MiB);
	rss0 = rss_bytes();
	for (uint64_t off = 0; off < size && !ret; off += MiB) {
		fill_kind(buf, MiB, off / MiB % 2 ? K_RANDOM : K_TEXT);
		ret = zstore_write(&t.z, buf, off, MiB);
	}
	st = stats(&t.z);
	used = st.mem_used_total;
	rss1 = rss_bytes();
	CHECK(ret == 0 && used > 16 * MiB, "memory: 32 MiB of text and random data written",
	      "%s, %llu bytes used", res_name(ret), (unsigned long long)used);
	ret = zstore_zero(&t.z, 0, size);
	st = stats(&t.z);
	CHECK(ret == 0 && st.mem_used_total == gran,
	      "memory: all of it zeroed, the store holds its header page only",
	      "%s, %llu bytes", res_name(ret), (unsigned long long)st.mem_used_total);
	rss2 = rss_bytes();
	if (file) {
		CHECK(file_bytes(t.fd) <= gran, "memory: the file's blocks are back to one page",
		      "%llu bytes", (unsigned long long)file_bytes(t.fd));
	} else {
		CHECK(resident_bytes(&t.z) <= gran, "memory: the mapping's resident pages are back to one",
		      "%llu bytes", (unsigned long long)resident_bytes(&t.z));
		if (UNDER_TSAN)		/* its shadow of the mapping stays */
			skip("memory: the process's RSS rose and came back",
			     "under ThreadSanitizer");
		else
			CHECK(rss1 >= rss0 + used / 2 && rss2 <= rss0 + 2 * MiB,
			      "memory: the process's RSS rose and came back",
			      "before %llu MiB, written %llu MiB, zeroed %llu MiB",
			      (unsigned long long)(rss0 >> 20), (unsigned long long)(rss1 >> 20),
			      (unsigned long long)(rss2 >> 20));
	}

	/* Again, page by page in a shuffled order. */
	for (uint64_t off = 0; off < size && !ret; off += MiB) {
		fill_kind(buf, MiB, off / MiB % 2 ? K_TEXT : K_RANDOM);
		ret = zstore_write(&t.z, buf, off, MiB);
	}
	for (uint64_t i = 0, n = size / PG; i < n && !ret; i++)
		ret = zstore_zero(&t.z, (i * 2654435761ULL % n) * PG, PG);
	st = stats(&t.z);
	CHECK(ret == 0 && st.mem_used_total == gran,
	      "memory: zeroed a page at a time in a shuffled order, back to the header page",
	      "%s, %llu bytes", res_name(ret), (unsigned long long)st.mem_used_total);
out:
	tstore_free(&t);
	free(buf);
	check_prefix = "";
}

/* ---- mem_limit and may_grow ---- */

struct budget {
	uint64_t left;
	bool asked_slab, asked_page, asked_other;
};

/* A may_grow() with a fixed budget, noting what it was asked. */
static bool budget_grow(void *ctx, uint64_t bytes)
{
	struct budget *b = ctx;

	b->asked_slab |= bytes == ZSLAB;
	b->asked_page |= bytes == gran;
	b->asked_other |= bytes != ZSLAB && bytes != gran;
	if (bytes > b->left)
		return false;
	b->left -= bytes;
	return true;
}

/*
 * Fill a store that can grow only so far with random pages after a text
 * page at 0; the write that fails and all before it are checked.
 */
static void fill_until_refused(struct zstore *z, const char *what, uint64_t limit)
{
	const uint64_t size = 16 * MiB;
	u8 *shadow = xcalloc(size), page[PG];
	struct first_error e = { 0 };
	struct zstore_stats st;
	uint64_t p, ok = 0;
	char name[160];
	int ret = 0;

	fill_text(page, PG);
	twrite(z, shadow, page, 0, PG);
	for (p = 1; p < size / PG; p++) {
		fill_random(page, PG);
		ret = twrite(z, shadow, page, p * PG, PG);
		if (ret)
			break;
		ok++;
	}
	st = stats(z);
	snprintf(name, sizeof(name), "%s: writes past it fail with ENOSPC", what);
	CHECK(ret == -ENOSPC && ok > 64 && (!limit || st.mem_used_total <= limit), name,
	      "%s after %llu pages, %llu bytes used", res_name(ret), (unsigned long long)ok,
	      (unsigned long long)st.mem_used_total);

	/* Text -> raw needs a new slab: refused, the text stays. */
	fill_random(page, PG);
	ret = zstore_write(z, page, 0, PG);
	snprintf(name, sizeof(name), "%s: a refused overwrite leaves the old data", what);
	CHECK(ret == -ENOSPC, name, "%s", res_name(ret));
	verify_all(z, shadow, size, &e);
	snprintf(name, sizeof(name), "%s: everything written before reads back", what);
	CHECK_NO_ERROR(e, name);

	/* Zero a few: their slots are reused without asking for more. */
	zstore_zero(z, 8 * PG, 8 * PG);
	memset(shadow + 8 * PG, 0, 8 * PG);
	for (unsigned i = 0; i < 8 && !ret; i++) {
		fill_random(page, PG);
		ret = twrite(z, shadow, page, (p + i) * PG, PG);
	}
	ret = 0;
	for (unsigned i = 0; i < 8 && !ret; i++) {
		fill_random(page, PG);
		ret = twrite(z, shadow, page, (p + i) * PG, PG);
	}
	verify_all(z, shadow, size, &e);
	snprintf(name, sizeof(name), "%s: after zeroing some pages, writes work again", what);
	CHECK(ret == 0 && !e.set, name, "%s %s", res_name(ret), e.text);
	free(shadow);
}

static void test_mem_limit(void)
{
	const uint64_t limit = 2 * MiB;
	struct budget b = { .left = 2 * MiB };
	struct tstore t;

	if (CHECK_RES(tstore_new(&t, false, &(struct topts){ .size = 16 * MiB, .mem_limit = limit }),
		      0, "mem_limit: open"))
		fill_until_refused(&t.z, "mem_limit", limit);
	CHECK(stats(&t.z).mem_limit == limit, "mem_limit: reported", "%llu",
	      (unsigned long long)stats(&t.z).mem_limit);
	tstore_free(&t);

	if (CHECK_RES(tstore_new(&t, have_shm, &(struct topts){ .size = 16 * MiB,
			.may_grow = budget_grow, .ctx = &b }), 0, "may_grow: open"))
		fill_until_refused(&t.z, "may_grow", 0);
	CHECK(b.asked_slab && b.asked_page && !b.asked_other,
	      "may_grow: asked for slabs and index pages, nothing else",
	      "slab %d page %d other %d", b.asked_slab, b.asked_page, b.asked_other);
	tstore_free(&t);
}

/* ---- the reserve ---- */

/* A may_grow() that says yes until told no. */
static bool grow_until(void *ctx, uint64_t bytes)
{
	(void)bytes;
	return !*(bool *)ctx;
}

/* Write random (raw) pages from @p on until one fails; how many did not. */
static uint64_t write_until_refused(struct zstore *z, u8 *shadow, uint64_t p, uint64_t n,
				    int *ret)
{
	u8 page[PG];
	uint64_t ok = 0;

	for (*ret = 0; p + ok < n; ok++) {
		fill_random(page, PG);
		*ret = twrite(z, shadow, page, (p + ok) * PG, PG);
		if (*ret)
			break;
	}
	return ok;
}

static void test_reserve(bool file)
{
	const uint64_t size = 16 * MiB, n = size / PG, raw = ZSLAB / PG;
	const char *kind = file ? "file" : "anon";
	u8 *shadow = xcalloc(size);
	struct first_error e = { 0 };
	bool refuse = false;
	struct tstore t;
	uint64_t used0, ok;
	int ret;

	if (!CHECK_RES(tstore_new(&t, file, &(struct topts){ .size = size,
			.may_grow = grow_until, .ctx = &refuse }), 0, "reserve: open"))
		goto out;
	used0 = stats(&t.z).mem_used_total;
	CHECK_RES(zstore_prefault_index(&t.z), 0, "reserve: the index made resident");
	zalloc_reserve_set(&t.z.a, 4);
	ret = zalloc_reserve_fill(&t.z.a);
	CHECK(ret == 4 && stats(&t.z).mem_used_total == used0 &&
	      resident_bytes(&t.z) >= used0 + 4 * ZSLAB + (t.z.a.arena - t.z.index_off),
	      "reserve: 4 slabs and the index resident, not counted",
	      "%s: filled %d, used %llu (was %llu), resident %llu", kind, ret,
	      (unsigned long long)stats(&t.z).mem_used_total, (unsigned long long)used0,
	      (unsigned long long)resident_bytes(&t.z));

	/* Memory refused: raw pages fill the reserve's 4 slabs, then ENOSPC. */
	refuse = true;
	ok = write_until_refused(&t.z, shadow, 0, n, &ret);
	CHECK(ret == -ENOSPC && ok == 4 * raw && zalloc_reserve_short(&t.z.a),
	      "reserve: writes go on from it while memory is refused, then fail",
	      "%s: %s after %llu pages", kind, res_name(ret), (unsigned long long)ok);
	verify_all(&t.z, shadow, size, &e);
	CHECK_NO_ERROR(e, "reserve: what was written from it reads back");

	/* Zeroed, the slabs go back to the reserve, and the count to the start. */
	zstore_zero(&t.z, 0, size);
	memset(shadow, 0, size);
	CHECK(stats(&t.z).mem_used_total == used0 && !zalloc_reserve_short(&t.z.a),
	      "reserve: zeroed, its slabs come back to it, uncounted",
	      "%s: used %llu (was %llu), short %d", kind,
	      (unsigned long long)stats(&t.z).mem_used_total, (unsigned long long)used0,
	      zalloc_reserve_short(&t.z.a));
	ok = write_until_refused(&t.z, shadow, 8, n, &ret);
	CHECK(ret == -ENOSPC && ok == 4 * raw, "reserve: and serve writes again",
	      "%s: %s after %llu pages", kind, res_name(ret), (unsigned long long)ok);
	if (file) {
		CHECK_RES(tstore_reopen(&t), 0, "reserve: the file store reopens");
		verify_all(&t.z, shadow, size, &e);
		CHECK_NO_ERROR(e, "reserve: and reads back what was written from it");
	}
out:
	tstore_free(&t);
	free(shadow);
}

/* ---- compaction ---- */

static void test_compaction(bool file)
{
	const uint64_t size = 32 * MiB, n = size / PG;
	u8 *shadow = xcalloc(size);
	struct zstore_stats st1, st2, st3;
	struct first_error e = { 0 };
	struct tstore t;
	int moved;

	check_prefix = file ? "file: " : "anonymous: ";
	if (!CHECK_RES(tstore_new(&t, file, &(struct topts){ .size = size }), 0,
		       "compaction: open"))
		goto out;
	for (uint64_t p = 0; p < n; p++)
		fill_kind(shadow + p * PG, PG, p % 8 < 2 ? K_RANDOM : K_TEXT);
	for (uint64_t off = 0; off < size; off += MiB)
		zstore_write(&t.z, shadow + off, off, MiB);
	st1 = stats(&t.z);
	for (uint64_t p = 1; p < n; p += 2) {
		zstore_zero(&t.z, p * PG, PG);
		memset(shadow + p * PG, 0, PG);
	}
	st2 = stats(&t.z);
	moved = zstore_compact(&t.z);
	st3 = stats(&t.z);
	verify_all(&t.z, shadow, size, &e);
	/* Slack: the class rounding, a few slab ends, a partial slab per class. */
	CHECK(moved > 0 && st3.mem_used_total < st2.mem_used_total * 3 / 4 &&
	      st3.mem_used_total < st3.compr_data_size * 11 / 10 + 16 * ZSLAB &&
	      st3.pages_compacted * PG == st2.mem_used_total - st3.mem_used_total,
	      "compaction: every other page zeroed, compacting gives the memory back",
	      "moved %d; memory written %llu, zeroed %llu, compacted %llu for %llu of data; pages_compacted %llu",
	      moved, (unsigned long long)st1.mem_used_total,
	      (unsigned long long)st2.mem_used_total, (unsigned long long)st3.mem_used_total,
	      (unsigned long long)st3.compr_data_size, (unsigned long long)st3.pages_compacted);
	printf("# compaction: moved %d, memory %llu -> zeroed half %llu -> compacted %llu, for %llu compressed\n",
	       moved, (unsigned long long)st1.mem_used_total,
	       (unsigned long long)st2.mem_used_total, (unsigned long long)st3.mem_used_total,
	       (unsigned long long)st3.compr_data_size);
	CHECK_NO_ERROR(e, "compaction: the data stays");
	CHECK_RES(zstore_compact(&t.z), 0, "compaction: a second one finds nothing to move");
	if (file)
		CHECK(file_bytes(t.fd) <= st3.mem_used_total,
		      "compaction: the file holds no more than the store counts",
		      "%llu bytes in the file, %llu counted",
		      (unsigned long long)file_bytes(t.fd),
		      (unsigned long long)st3.mem_used_total);
	if (file && CHECK_RES(tstore_reopen(&t), 0, "compaction: reopen")) {
		verify_all(&t.z, shadow, size, &e);
		CHECK(!e.set && stats(&t.z).mem_used_total == st3.mem_used_total,
		      "compaction: reopened, the same data and memory", "%s, %llu bytes", e.text,
		      (unsigned long long)stats(&t.z).mem_used_total);
	}
out:
	tstore_free(&t);
	free(shadow);
	check_prefix = "";
}

/* ---- resize ---- */

static void test_resize(bool file)
{
	const uint64_t max = 4 * MiB;
	uint64_t size = MiB + 512;
	u8 *shadow = xcalloc(max), *buf = xmalloc(max);
	struct first_error e = { 0 };
	struct tstore t;
	uint64_t mem;
	int ret;

	check_prefix = file ? "file: " : "anonymous: ";
	if (!CHECK_RES(tstore_new(&t, file, &(struct topts){ .size = size, .max_size = max }), 0,
		       "resize: open with a partial last page"))
		goto out;
	fill_random(buf, size);
	twrite(&t.z, shadow, buf, 0, MiB);
	twrite(&t.z, shadow, buf + MiB, MiB, 512);
	CHECK_RES(zstore_resize(&t.z, 2 * MiB), 0, "resize: grow");
	size = 2 * MiB;
	verify_all(&t.z, shadow, size, &e);
	CHECK_NO_ERROR(e, "resize: grown, the old data stays and the rest reads zeros");
	fill_text(buf, MiB);
	twrite(&t.z, shadow, buf, MiB, MiB);
	mem = stats(&t.z).mem_used_total;
	size = 512 * KiB + 1024;
	CHECK_RES(zstore_resize(&t.z, size), 0, "resize: shrink to a partial page");
	CHECK(stats(&t.z).mem_used_total < mem / 2, "resize: shrunk, the pages past the end are freed",
	      "%llu -> %llu bytes", (unsigned long long)mem,
	      (unsigned long long)stats(&t.z).mem_used_total);
	CHECK_RES(zstore_write(&t.z, buf, size, 512), -EIO, "resize: a write past the new end fails");
	memset(shadow + size, 0, max - size);
	if (file) {
		ret = tstore_reopen(&t);
		CHECK_RES(ret, 0, "resize: reopen after the shrink");
		CHECK_RES(zstore_read(&t.z, buf, size, 512), -EIO, "resize: the size was kept");
	}
	CHECK_RES(zstore_resize(&t.z, max), 0, "resize: grow to the maximum");
	verify_all(&t.z, shadow, max, &e);
	CHECK_NO_ERROR(e, "resize: grown again, past the old end only zeros");
	CHECK_RES(zstore_resize(&t.z, max + 512), -EINVAL, "resize: not past max_size");
	CHECK_RES(zstore_resize(&t.z, 1000), -EINVAL, "resize: not to a part of a sector");
out:
	tstore_free(&t);
	free(shadow);
	free(buf);
	check_prefix = "";
}

/* ---- a large sparse store ---- */

/*
 * 1 TiB of index reserved, three pages written far apart: the store costs
 * what they use; a reopen and a zero of the whole 1 TiB step over the
 * index pages never used.
 */
static void test_large(bool file)
{
	const uint64_t max = 1ULL << 40, offs[] = { 0, (1ULL << 30) - PG, max - PG };
	struct first_error e = { 0 };
	u8 page[PG], back[PG];
	struct tstore t;
	uint64_t mem;

	check_prefix = file ? "file: " : "anonymous: ";
	if (!CHECK_RES(tstore_new(&t, file, &(struct topts){ .size = 1ULL << 30, .max_size = max }),
		       0, "large: open 1 GiB that may grow to 1 TiB"))
		goto out;
	CHECK_RES(zstore_resize(&t.z, max), 0, "large: grow to 1 TiB");
	fill_text(page, PG);
	for (unsigned i = 0; i < ARRAY_SIZE(offs); i++)
		if (zstore_write(&t.z, page, offs[i], PG))
			note(&e, "cannot write at %llu", (unsigned long long)offs[i]);
	if (file && tstore_reopen(&t))
		note(&e, "cannot reopen");
	for (unsigned i = 0; i < ARRAY_SIZE(offs) && !e.set; i++)
		if (zstore_read(&t.z, back, offs[i], PG) || memcmp(page, back, PG))
			note(&e, "page at %llu does not read back", (unsigned long long)offs[i]);
	mem = stats(&t.z).mem_used_total;
	CHECK(!e.set && mem == gran + 3 * gran + ZSLAB,
	      file ? "large: three pages written far apart, reopened, cost three index pages and a slab" :
	      "large: three pages written far apart cost three index pages and a slab",
	      "%s; %llu bytes", e.text, (unsigned long long)mem);
	CHECK(zstore_zero(&t.z, 0, max) == 0 && stats(&t.z).mem_used_total == gran,
	      "large: zeroing the whole 1 TiB leaves the header page", "%llu bytes",
	      (unsigned long long)stats(&t.z).mem_used_total);
out:
	tstore_free(&t);
	check_prefix = "";
}

/* ---- files that are not what they should be ---- */

/* Put @v as entry @p of the store in @fd, as a damaged file would have. */
static void poke_entry(int fd, uint64_t p, uint64_t v)
{
	if (pwrite(fd, &v, 8, (off_t)(gran + p * 8)) != 8)
		perror("pwrite");
}

static uint64_t peek_entry(int fd, uint64_t p)
{
	uint64_t v = 0;

	if (pread(fd, &v, 8, (off_t)(gran + p * 8)) != 8)
		perror("pread");
	return v;
}

static void test_bad_files(void)
{
	u8 page[PG], back[PG];
	uint64_t e0;
	struct tstore t;
	int ret;

	if (!CHECK_RES(tstore_new(&t, true, &(struct topts){ .size = MiB }), 0, "files: open"))
		goto out;
	fill_text(page, PG);
	zstore_write(&t.z, page, 0, PG);
	zstore_write(&t.z, page, PG, PG);
	zstore_close(&t.z);
	ret = zstore_open(&t.z, &(struct zstore_config){ .fd = t.fd, .create = true, .size = MiB });
	CHECK_RES(ret, -EINVAL, "files: a new store is not laid over a used file");
	ret = zstore_open(&t.z, &(struct zstore_config){ .fd = t.fd, .size = 2 * MiB });
	CHECK_RES(ret, -EINVAL, "files: a store of another size is not taken");

	/* Lock bits a killed process left are cleared. */
	e0 = peek_entry(t.fd, 0);
	poke_entry(t.fd, 0, e0 | 1ULL << 63);
	ret = zstore_open(&t.z, &(struct zstore_config){ .fd = t.fd, .size = MiB });
	CHECK(ret == 0 && zstore_read(&t.z, back, 0, PG) == 0 && !memcmp(page, back, PG) &&
	      peek_entry(t.fd, 0) == e0, "files: a lock left set is cleared on reopen", "%s",
	      res_name(ret));
	zstore_close(&t.z);

	poke_entry(t.fd, 1, e0);
	ret = zstore_open(&t.z, &(struct zstore_config){ .fd = t.fd });
	CHECK_RES(ret, -EUCLEAN, "files: two entries naming one object: damaged");
	poke_entry(t.fd, 1, 7ULL << 60);
	ret = zstore_open(&t.z, &(struct zstore_config){ .fd = t.fd });
	CHECK_RES(ret, -EUCLEAN, "files: an entry of no type: damaged");
	poke_entry(t.fd, 1, e0 + 1);
	ret = zstore_open(&t.z, &(struct zstore_config){ .fd = t.fd });
	CHECK_RES(ret, -EUCLEAN, "files: an entry between two objects: damaged");
	poke_entry(t.fd, 1, 0);
	ret = zstore_open(&t.z, &(struct zstore_config){ .fd = t.fd });
	CHECK_RES(ret, 0, "files: repaired, it opens");
	zstore_close(&t.z);

	memset(page, 'x', PG);
	if (pwrite(t.fd, page, PG, 0) != PG)
		perror("pwrite");
	ret = zstore_open(&t.z, &(struct zstore_config){ .fd = t.fd });
	CHECK_RES(ret, -EINVAL, "files: a file that holds no store is refused");
out:
	tstore_free(&t);
}

/* ---- threads ---- */

#define HOT_PAGES	512	/* pages every thread writes, reads and zeros */
#define PART_PAGE	600	/* pages of parts: thread i owns sectors 2i, 2i+1 */
#define PART_PAGES	8
#define THREADS		4

struct worker {
	pthread_t thread;
	struct zstore *z;
	unsigned id, ops;
	_Atomic uint64_t *gen;
	_Atomic bool *done;
	uint64_t rng;
	uint64_t last[PART_PAGES][2];	/* what it last wrote in its sectors */
	struct first_error e;
	unsigned moved;
};

static uint64_t wrand(struct worker *w)
{
	w->rng = mix64(w->rng);
	return w->rng;
}

/* Each page read must be one write's whole page, or zeros. */
static void check_pages(struct worker *w, const u8 *buf, uint64_t p, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (pattern_gen(buf + i * PG, p + i) < 0)
			note(&w->e, "thread %u: page %llu is a mix or garbage", w->id,
			     (unsigned long long)(p + i));
}

/* Write this thread's sector of a shared page and read it back. */
static void part_write(struct worker *w, unsigned k)
{
	unsigned pg = k % PART_PAGES, half = k / PART_PAGES % 2;
	uint64_t off = (PART_PAGE + pg) * PG + (w->id * 2 + half) * 512;
	uint64_t v = (uint64_t)w->id << 56 | k;
	u8 sector[512], back[512] = { 0 };
	int ret;

	fill_word(sector, 512, v);
	ret = zstore_write(w->z, sector, off, 512);
	if (ret == 0)
		ret = zstore_read(w->z, back, off, 512);
	if (ret < 0 || memcmp(sector, back, 512))
		note(&w->e, "thread %u: its sector at %llu was lost (%s)", w->id,
		     (unsigned long long)off, res_name(ret));
	w->last[pg][half] = v;
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	u8 *buf = xmalloc(2 * PG);

	for (unsigned k = 0; k < w->ops; k++) {
		unsigned op = (unsigned)(wrand(w) % 100), n = 1 + (op % 7 == 0);
		uint64_t p = wrand(w) % (HOT_PAGES - 1);
		int ret = 0;

		if (op < 40) {
			for (unsigned i = 0; i < n; i++)
				pattern(buf + i * PG, p + i, atomic_fetch_add(w->gen, 1) + 1);
			ret = zstore_write(w->z, buf, p * PG, n * PG);
		} else if (op < 80) {
			ret = zstore_read(w->z, buf, p * PG, n * PG);
			if (ret == 0)
				check_pages(w, buf, p, n);
		} else if (op < 88) {
			ret = zstore_zero(w->z, p * PG, n * PG);
		} else if (op < 98 || w->id) {
			part_write(w, k);
		} else {
			ret = zstore_compact(w->z);
			w->moved += ret > 0 ? (unsigned)ret : 0;
			ret = ret < 0 ? ret : 0;
		}
		if (ret < 0)
			note(&w->e, "thread %u: op %u on page %llu: %s", w->id, op,
			     (unsigned long long)p, res_name(ret));
	}
	free(buf);
	return NULL;
}

/* Compact over and over while the workers run. */
static void *compactor_run(void *arg)
{
	struct worker *w = arg;

	while (!atomic_load(w->done)) {
		int ret = zstore_compact(w->z);

		if (ret < 0)
			note(&w->e, "compaction: %s", res_name(ret));
		w->moved += ret > 0 ? (unsigned)ret : 0;
	}
	return NULL;
}

static void test_threads(void)
{
	struct worker w[THREADS + 1];
	_Atomic uint64_t gen = 0;
	_Atomic bool done = false;
	struct first_error e = { 0 };
	unsigned moved = 0;
	u8 *buf = xmalloc(PART_PAGES * PG);
	struct tstore t;

	if (!CHECK_RES(tstore_new(&t, false, &(struct topts){ .size = 4 * MiB }), 0,
		       "threads: open"))
		goto out;
	for (unsigned i = 0; i <= THREADS; i++) {
		w[i] = (struct worker){ .z = &t.z, .id = i, .ops = 30000, .gen = &gen,
					.done = &done, .rng = 1000 + i };
		pthread_create(&w[i].thread, NULL, i < THREADS ? worker_run : compactor_run, &w[i]);
	}
	for (unsigned i = 0; i <= THREADS; i++) {
		if (i == THREADS)
			atomic_store(&done, true);
		pthread_join(w[i].thread, NULL);
		if (w[i].e.set)
			note(&e, "%s", w[i].e.text);
		moved += w[i].moved;
	}
	CHECK_NO_ERROR(e, "threads: reads see whole pages of one write while 4 threads write and zero and a 5th compacts");
	printf("# threads: %llu writes, %u objects moved by compaction meanwhile\n",
	       (unsigned long long)gen, moved);

	zstore_read(&t.z, buf, PART_PAGE * PG, PART_PAGES * PG);
	for (unsigned i = 0; i < THREADS; i++)
		for (unsigned pg = 0; pg < PART_PAGES; pg++)
			for (unsigned half = 0; half < 2; half++) {
				uint64_t v, want = w[i].last[pg][half];
				size_t at = pg * PG + (i * 2 + half) * 512;

				memcpy(&v, buf + at, 8);
				if (want && v != want)
					note(&e, "sector %zu holds %#llx, not %#llx", at,
					     (unsigned long long)v, (unsigned long long)want);
			}
	CHECK_NO_ERROR(e, "threads: writes of parts of the same pages by 4 threads lose nothing");
	zstore_zero(&t.z, 0, 4 * MiB);
	CHECK(stats(&t.z).mem_used_total == gran && stats(&t.z).same_pages == 0,
	      "threads: all zeroed after, the header page only is left", "%llu bytes",
	      (unsigned long long)stats(&t.z).mem_used_total);
out:
	tstore_free(&t);
	free(buf);
}

/* ---- crash safety ---- */

#define CRASH_PAGES	2048
#define CRASH_RUNS	20
#define COMPACTING	UINT64_MAX	/* a message's page: compaction starts */
#define COMPACTED	(UINT64_MAX - 1)	/* it ended, gen objects moved */

struct msg {
	uint64_t page, gen;	/* gen 0: zeroed */
};

static void send_msg(int fd, uint64_t page, uint64_t gen)
{
	struct msg m = { page, gen };

	if (write(fd, &m, sizeof(m)) != sizeof(m))
		_exit(4);
}

/*
 * The child: write, zero and compact a new store in @fd for ever, saying
 * on @out what it is about to do before it does it.  Every 400 steps it
 * zeros every other page of a window, then compacts.
 */
static void __attribute__((noreturn)) crash_child(int fd, int out, uint64_t seed)
{
	struct zstore z;
	u8 page[PG];
	uint64_t rng = seed;

	if (zstore_open(&z, &(struct zstore_config){ .size = CRASH_PAGES * PG, .fd = fd,
						     .create = true }))
		_exit(2);
	for (uint64_t gen = 1;; gen++) {
		uint64_t p;

		rng = mix64(rng);
		p = rng % CRASH_PAGES;
		if (gen % 400 == 0) {
			for (uint64_t q = p & ~255ULL; q < (p & ~255ULL) + 256; q += 2) {
				send_msg(out, q, 0);
				zstore_zero(&z, q * PG, PG);
			}
			send_msg(out, COMPACTING, 0);
			send_msg(out, COMPACTED, (uint64_t)zstore_compact(&z));
		} else if (rng >> 32 & 1 && (rng >> 33) % 8 == 0) {
			send_msg(out, p, 0);
			zstore_zero(&z, p * PG, PG);
		} else {
			send_msg(out, p, gen);
			pattern(page, p, gen);
			if (zstore_write(&z, page, p * PG, PG))
				_exit(3);
		}
	}
}

/*
 * Append to @m what can be read from @fd now (@block: until EOF), whole
 * messages only; how many there are.  *@eof when the child is gone.
 */
static size_t read_msgs(int fd, struct msg *m, size_t have, size_t cap, bool block, bool *eof)
{
	static u8 part[sizeof(struct msg)];
	static size_t npart;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	if (!block && poll(&pfd, 1, 1000) <= 0)
		return have;
	while (have < cap) {
		ssize_t n = read(fd, part + npart, sizeof(part) - npart);

		if (n <= 0) {
			*eof = n == 0 || (errno != EAGAIN && errno != EINTR);
			break;
		}
		npart += (size_t)n;
		if (npart == sizeof(part)) {
			memcpy(&m[have++], part, sizeof(part));
			npart = 0;
		}
	}
	if (*eof)
		npart = 0;
	return have;
}

/* Check the reopened store against what the child said; 0 or a note. */
static void crash_verify(struct zstore *z, const struct msg *m, size_t n,
			 struct first_error *e, struct first_error *se)
{
	static uint64_t last[CRASH_PAGES];
	uint64_t same = 0, huge = 0, stored = 0;
	struct zstore_stats st;
	u8 page[PG];

	memset(last, 0, sizeof(last));
	for (size_t i = 0; i + 1 < n; i++)
		if (m[i].page < CRASH_PAGES)
			last[m[i].page] = m[i].gen;
	for (uint64_t p = 0; p < CRASH_PAGES; p++) {
		int64_t g;
		bool under_way = n && m[n - 1].page == p;

		if (zstore_read(z, page, p * PG, PG)) {
			note(e, "page %llu does not read", (unsigned long long)p);
			return;
		}
		g = pattern_gen(page, p);
		if (g < 0 || ((uint64_t)g != last[p] && !(under_way && (uint64_t)g == m[n - 1].gen))) {
			note(e, "page %llu holds write %lld, not %llu%s", (unsigned long long)p,
			     (long long)g, (unsigned long long)last[p],
			     under_way ? " nor the one under way" : "");
			return;
		}
		same += g && g % 3 == 0;
		huge += g % 3 == 2;
		stored += g % 3 != 0;
	}
	st = stats(z);
	if (st.same_pages != same || st.huge_pages != huge ||
	    st.orig_data_size != (stored + same) * PG)
		note(se, "same %llu/%llu huge %llu/%llu orig %llu/%llu",
		     (unsigned long long)st.same_pages, (unsigned long long)same,
		     (unsigned long long)st.huge_pages, (unsigned long long)huge,
		     (unsigned long long)st.orig_data_size, (unsigned long long)((stored + same) * PG));
}

static void test_crash(void)
{
	const size_t cap = 1 << 20;
	struct msg *m = xmalloc(cap * sizeof(*m));
	struct first_error e = { 0 }, se = { 0 }, le = { 0 };
	unsigned in_compaction = 0, runs = 0;
	uint64_t moved = 0;
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned run = 0; run < CRASH_RUNS; run++) {
		size_t n = 0, compactions = 0, want, stop_at;
		struct tstore t = { .fd = -1 };
		bool eof = false;
		int pipefd[2], status;
		pid_t pid;

		snprintf(t.path, sizeof(t.path), "/dev/shm/zstore_test.XXXXXX");
		t.fd = mkstemp(t.path);
		if (t.fd < 0 || pipe(pipefd) < 0) {
			note(&e, "run %u: cannot set up: %s", run, strerror(errno));
			break;
		}
		fflush(stdout);
		pid = fork();
		if (pid == 0) {
			close(pipefd[0]);
			crash_child(t.fd, pipefd[1], run + 1);
		}
		close(pipefd[1]);
		fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
		/*
		 * Kill after some number of messages; or, every 3rd run, while
		 * the child compacts: when the last message it sent says a
		 * compaction starts and nothing came after.
		 */
		want = 50 + rand_below(12000);
		stop_at = run % 3 == 2 ? 1 + rand_below(8) : 0;
		while (!eof) {
			size_t had = n;

			n = read_msgs(pipefd[0], m, n, cap, false, &eof);
			for (size_t i = had; i < n; i++)
				compactions += m[i].page == COMPACTING;
			for (size_t i = had; i < n; i++)
				moved += m[i].page == COMPACTED ? m[i].gen : 0;
			if (stop_at ? compactions >= stop_at && n && m[n - 1].page == COMPACTING :
			    n >= want)
				break;
		}
		kill(pid, SIGKILL);
		fcntl(pipefd[0], F_SETFL, 0);
		n = read_msgs(pipefd[0], m, n, cap, true, &eof);
		close(pipefd[0]);
		waitpid(pid, &status, 0);
		if (!WIFSIGNALED(status)) {
			note(&e, "run %u: the child ended by itself (status %d)", run, status);
			tstore_free(&t);
			continue;
		}
		runs++;
		in_compaction += n && m[n - 1].page == COMPACTING;
		if (zstore_open(&t.z, &(struct zstore_config){ .fd = t.fd })) {
			note(&e, "run %u: the store does not reopen", run);
			tstore_free(&t);
			continue;
		}
		crash_verify(&t.z, m, n, &e, &se);
		zstore_zero(&t.z, 0, CRASH_PAGES * PG);
		if (stats(&t.z).mem_used_total != gran || file_bytes(t.fd) > gran)
			note(&le, "run %u after %zu messages: zeroed, %llu bytes counted, %llu in the file",
			     run, n, (unsigned long long)stats(&t.z).mem_used_total,
			     (unsigned long long)file_bytes(t.fd));
		tstore_free(&t);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK_NO_ERROR(e, "crash: killed 20 times, every page reads its last write or the one under way");
	CHECK_NO_ERROR(se, "crash: reopened, the stats match the data");
	CHECK_NO_ERROR(le, "crash: reopened, no object leaked: zeroing all gives all back");
	printf("# crash: %u kills, %u of them during a compaction (%llu objects moved by the children's compactions), %.1f s\n",
	       runs, in_compaction, (unsigned long long)moved,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	free(m);
}

/* ---- benchmark ---- */

static double seconds(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ZSTORE_BENCH=1: one thread writes and reads 256 MiB of text-like data. */
static int bench(void)
{
	const uint64_t size = 256 * MiB, chunk = 128 * KiB, text = 16 * MiB;
	u8 *src = xmalloc(text), *buf = xmalloc(chunk);
	struct zstore_stats st;
	struct tstore t;
	double t0, tw, tr;

	fill_text(src, text);
	if (tstore_new(&t, false, &(struct topts){ .size = size })) {
		printf("bench: cannot open a store\n");
		return CHECK_EXIT_FAIL;
	}
	t0 = seconds();
	for (uint64_t off = 0; off < size; off += chunk)
		zstore_write(&t.z, src + off % text, off, chunk);
	tw = seconds() - t0;
	t0 = seconds();
	for (uint64_t off = 0; off < size; off += chunk)
		zstore_read(&t.z, buf, off, chunk);
	tr = seconds() - t0;
	st = stats(&t.z);
	printf("bench: 256 MiB of text, 128 KiB requests, one thread: write %.0f MB/s, read %.0f MB/s; %.2fx compressed, %llu MiB of memory\n",
	       size / tw / 1e6, size / tr / 1e6,
	       (double)st.orig_data_size / (double)st.compr_data_size,
	       (unsigned long long)(st.mem_used_total >> 20));
	tstore_free(&t);
	free(src);
	free(buf);
	return 0;
}

/* ---- main ---- */

static bool wanted(int argc, char **argv, const char *name)
{
	if (argc < 2)
		return true;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], name))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	char path[] = "/dev/shm/zstore_test.XXXXXX";
	int fd = mkstemp(path);

	gran = (size_t)sysconf(_SC_PAGESIZE);
	have_shm = fd >= 0;
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	if (getenv("ZSTORE_BENCH"))
		return bench();
	alarm(300);	/* a page lock left held would hang: fail instead */
	for (int file = 0; file < 2; file++) {
		if (file && !have_shm) {
			skip("file stores", "cannot make a file in /dev/shm");
			break;
		}
		if (wanted(argc, argv, "round"))
			test_round_trip(file);
		if (wanted(argc, argv, "memory"))
			test_memory_returns(file);
		if (wanted(argc, argv, "reserve"))
			test_reserve(file);
		if (wanted(argc, argv, "compaction"))
			test_compaction(file);
		if (wanted(argc, argv, "resize"))
			test_resize(file);
		if (wanted(argc, argv, "large"))
			test_large(file);
	}
	if (wanted(argc, argv, "stats"))
		test_stats();
	if (wanted(argc, argv, "limit"))
		test_mem_limit();
	if (have_shm && wanted(argc, argv, "files"))
		test_bad_files();
	if (wanted(argc, argv, "threads"))
		test_threads();
	if (have_shm && wanted(argc, argv, "crash"))
		test_crash();
	return check_summary("zstore_test");
}
