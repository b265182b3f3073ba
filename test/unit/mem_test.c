/*
 * mem_test.c - unit tests for the RAM store in mem_backend.c: reads and
 * writes, zeroing, bounds, the allocation maps and prepare_write, the
 * memory reserve, `direct`, lazy and preallocated memory, the file-backed
 * store (what it allocates, what it finds on reopening, which files it
 * refuses to trust), the machine's memory figures and the backend
 * operations table.
 *
 * Memory use is measured two ways.  mincore() says which pages of one
 * mapping are present; it is exact, but it also counts the shared zero
 * page that a read of a never-written page maps, so it is only used
 * before such reads.  /proc/self/smaps_rollup gives the whole process's
 * Rss, which ignores the zero page but also sees everything else (the
 * sanitizer runtime, transparent huge pages elsewhere): those checks
 * assert a rise or a fall of most of what the store did, never closeness
 * to an earlier value.  A file store's memory is its file's st_blocks.
 *
 * Memory running short is simulated with a reserve larger than any
 * machine's memory: UINT64_MAX / 2 in the config, or put into the
 * store's `reserve` field after data was written.
 *
 * Each check prints one line, "ok - name", "FAIL - name: details
 * (line N)" or "skip - name: why".  Exit status: 0 all passed, 1 a check
 * failed.  Calls that fail on purpose print why on stderr: the tests
 * capture it, count its lines and show each as a "# stderr: " line.
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
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define KiB		(1ULL << 10)
#define MiB		(1ULL << 20)
#define GiB		(1ULL << 30)
#define THP_DIR		"/sys/kernel/mm/transparent_hugepage"
/* More than any machine has: every new allocation is refused. */
#define HUGE_RESERVE	(UINT64_MAX / 2)

/* ---- checks (the common ones are in check.h) ---- */

/* A check of one number against the value it should have. */
static bool check_eq(int line, long long got, long long want, const char *name)
{
	return check(line, got == want, name, "got %lld, want %lld", got, want);
}

#define CHECK_EQ(got, want, name) \
	check_eq(__LINE__, (long long)(got), (long long)(want), (name))

/*
 * Sanitizer reports go to fd 2, which capture_stderr() redirects for a
 * moment.  Give them a copy of the real stderr, so that a report made
 * while capturing is seen, not lost in a temporary file.  The function
 * is weak: a build without sanitizers does not have it.
 */
extern void __sanitizer_set_report_fd(void *fd) __attribute__((weak));

static void keep_sanitizer_reports(void)
{
	int fd;

	if (!__sanitizer_set_report_fd)
		return;
	fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 10);
	if (fd >= 0)
		__sanitizer_set_report_fd((void *)(intptr_t)fd);
}

/*
 * Capture what the next calls print on stderr, to count its lines.
 * Returns the saved stderr, or -1 if capturing failed.
 */
static int capture_stderr(void)
{
	FILE *f = tmpfile();
	int saved;

	if (!f)
		return -1;
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	if (saved < 0 || dup2(fileno(f), STDERR_FILENO) < 0) {
		if (saved >= 0)
			close(saved);
		fclose(f);
		return -1;
	}
	fclose(f);	/* fd 2 keeps the file open */
	return saved;
}

/*
 * Stop capturing (@saved from capture_stderr()): echo each captured line
 * as "# stderr: ..." and return how many there were, or -1.
 */
static int captured_lines(int saved)
{
	char line[1024];
	int lines = 0;
	FILE *f;
	int fd;

	if (saved < 0)
		return -1;
	fflush(stderr);
	fd = dup(STDERR_FILENO);
	dup2(saved, STDERR_FILENO);
	close(saved);
	f = fd >= 0 ? fdopen(fd, "r") : NULL;
	if (!f) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	rewind(f);
	while (fgets(line, sizeof(line), f)) {
		if (strchr(line, '\n'))
			lines++;
		printf("# stderr: %s", line);
	}
	fclose(f);
	return lines;
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

/*
 * Write @len random bytes at @off into the store and, if that succeeded,
 * into @model too.  Returns what mem_store_write() returned.
 */
static int write_model(struct mem_store *s, char *model, uint64_t off, uint32_t len)
{
	char *buf = malloc(len ? len : 1);
	int ret;

	if (!buf)
		return -ENOMEM;
	fill_random(buf, len);
	ret = mem_store_write(s, buf, off, len);
	if (ret == 0)
		memcpy(model + off, buf, len);
	free(buf);
	return ret;
}

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

/*
 * Bytes of transparent huge pages in the mapping that holds @addr, from
 * /proc/self/smaps; -1 when unknown.
 */
static long long anon_huge_bytes(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	unsigned long long start, end, kb;
	long long huge = -1;
	bool inside = false;
	char line[512];

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx-%llx ", &start, &end) == 2)
			inside = (uintptr_t)addr >= start && (uintptr_t)addr < end;
		else if (inside && sscanf(line, "AnonHugePages: %llu kB", &kb) == 1)
			huge = (long long)(kb * KiB);
	}
	fclose(f);
	return huge;
}

/* Is unit @u set in @map (a store's `backed` or `used`)? */
static bool unit_set(_Atomic uint64_t *map, uint64_t u)
{
	return atomic_load(&map[u / 64]) >> (u % 64) & 1;
}

/* How many units are set in @map. */
static uint64_t units_set(const struct mem_store *s, _Atomic uint64_t *map)
{
	uint64_t n = 0;

	for (uint64_t u = 0; u < s->nr_units; u++)
		n += unit_set(map, u);
	return n;
}

/* The `direct` operation for a read. */
static const void *direct_read(struct mem_store *s, uint64_t off, uint32_t len)
{
	return mem_backend_ops.direct(s, off, len, false);
}

/* Open a store as @cfg says, with a check line; returns 0 or -errno. */
static int open_store(struct mem_store *s, const struct mem_store_config *cfg,
		      const char *name)
{
	int ret = mem_store_open(s, cfg);

	CHECK_RES(ret, 0, name);
	return ret;
}

/* An anonymous store of @size in huge pages where there are, no reserve. */
static int open_anon(struct mem_store *s, uint64_t size, const char *name)
{
	const struct mem_store_config cfg = { .size = size };

	return open_store(s, &cfg, name);
}

/* A system call's result as 0 or -errno, for CHECK_RES(). */
static int sys_res(int ret)
{
	return ret < 0 ? -errno : 0;
}

/* A directory for store files: tmpfs if there is one, else /tmp; 0 or -errno. */
static int make_store_dir(char *dir, size_t len)
{
	static const char *const templates[] = {
		"/dev/shm/mem_test.XXXXXX", "/tmp/mem_test.XXXXXX",
	};
	int err = -ENOENT;

	for (unsigned i = 0; i < ARRAY_SIZE(templates); i++) {
		snprintf(dir, len, "%s", templates[i]);
		if (mkdtemp(dir))
			return 0;
		err = -errno;
	}
	return err;
}

/* Is there a file (of any kind) at @path? */
static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Blocks (of 512 bytes) the file at @path occupies, or -1. */
static long long file_blocks(const char *path)
{
	struct stat st;

	return lstat(path, &st) < 0 ? -1 : (long long)st.st_blocks;
}

/* The inode number of @path (not followed), or 0 if there is none. */
static unsigned long long file_ino(const char *path)
{
	struct stat st;

	return lstat(path, &st) < 0 ? 0 : (unsigned long long)st.st_ino;
}

/*
 * Make a store file as a user might leave one: @size bytes, mode @mode,
 * "planted" at its start.  Returns 0 or -errno.
 */
static int make_file(const char *path, uint64_t size, mode_t mode)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0 || pwrite(fd, "planted", 7, 0) != 7 ||
	    fchmod(fd, mode) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* Does the file at @path still start with "planted"? */
static bool file_planted(const char *path)
{
	char buf[8] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	bool ok = fd >= 0 && pread(fd, buf, 7, 0) == 7 && !memcmp(buf, "planted", 7);

	if (fd >= 0)
		close(fd);
	return ok;
}

/* The whole line of a small file, or "" when it cannot be read. */
static void read_first_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");

	buf[0] = '\0';
	if (f) {
		if (!fgets(buf, (int)len, f))
			buf[0] = '\0';
		fclose(f);
	}
}

/* The kernel's transparent huge page mode ("always", ...), "" without THP. */
static const char *thp_mode(char *buf, size_t len)
{
	char *l, *r;

	read_first_line(THP_DIR "/enabled", buf, len);
	l = strchr(buf, '[');
	r = l ? strchr(l, ']') : NULL;
	if (!r) {
		buf[0] = '\0';
		return buf;
	}
	*r = '\0';
	memmove(buf, l + 1, (size_t)(r - l));
	return buf;
}

/* ---- the tests: anonymous memory ---- */

static void test_open_anonymous(void)
{
	const uint64_t size = 64 * MiB;
	struct mem_store s;

	if (open_anon(&s, size, "mem_store_open: 64 MiB anonymous") < 0)
		return;
	CHECK(s.base && s.size == size && s.fd == -1 && !s.locked && !s.created &&
	      s.page == (unsigned)sysconf(_SC_PAGESIZE),
	      "anonymous store: base set, size 64 MiB, no fd, not locked",
	      "base %p, size %llu, fd %d, locked %d, created %d, page %u",
	      (void *)s.base, (unsigned long long)s.size, s.fd, s.locked, s.created,
	      s.page);
	CHECK(s.unit == (s.huge ? mem_huge_page_size() : s.page) &&
	      s.unit == 1ULL << s.unit_shift && s.nr_units == (size + s.unit - 1) / s.unit &&
	      s.backed && s.used,
	      "anonymous store: one bit per unit (a huge page, else a page) in each map",
	      "unit %llu (shift %u), %llu units, huge %d, maps %p %p",
	      (unsigned long long)s.unit, s.unit_shift, (unsigned long long)s.nr_units,
	      s.huge, (void *)s.backed, (void *)s.used);
	CHECK(units_set(&s, s.backed) == 0 && units_set(&s, s.used) == 0,
	      "a fresh store has no unit backed or used", "%llu backed, %llu used",
	      (unsigned long long)units_set(&s, s.backed),
	      (unsigned long long)units_set(&s, s.used));
	CHECK(s.zeros && s.zeros_len >= STORE_ZEROS_BYTES &&
	      first_nonzero(s.zeros, s.zeros_len) == s.zeros_len,
	      "the store's zeros cover the largest request and read as zeros",
	      "zeros %p, %zu bytes", (const void *)s.zeros, s.zeros_len);
	mem_store_close(&s);
	CHECK(!s.base && s.fd == -1 && !s.backed && !s.used && !s.zeros,
	      "mem_store_close clears the store", "base %p, fd %d, maps %p %p, zeros %p",
	      (void *)s.base, s.fd, (void *)s.backed, (void *)s.used, (const void *)s.zeros);
	mem_store_close(&s);	/* a second close must be harmless */
	CHECK(!s.base && s.fd == -1, "mem_store_close twice is harmless",
	      "base %p, fd %d", (void *)s.base, s.fd);
}

/*
 * Huge pages: the store starts on a huge page boundary and, where the
 * kernel has THP, is advised so; its unit is then a huge page, which one
 * small write allocates whole.  small_pages asks for none.
 */
static void test_huge_pages(void)
{
	const uint64_t hpage = mem_huge_page_size();
	struct mem_store_config cfg = { .size = 8 * MiB };
	char mode[64], *buf = malloc(4096);
	struct mem_store s;
	long long res, huge;

	if (!buf)
		return;
	thp_mode(mode, sizeof(mode));
	if (hpage > cfg.size / 4) {
		skip("huge pages", "huge pages larger than 2 MiB: these checks assume 2 MiB");
		goto small;
	}
	if (open_store(&s, &cfg, "mem_store_open: 8 MiB, huge pages") < 0)
		goto out;
	if (!hpage) {
		skip("the store is advised MADV_HUGEPAGE", "this kernel has THP off");
		CHECK(!s.huge && s.unit == s.page, "without THP the unit is a page",
		      "huge %d, unit %llu", s.huge, (unsigned long long)s.unit);
		mem_store_close(&s);
		goto small;
	}
	CHECK(((uintptr_t)s.base & (hpage - 1)) == 0, "the store starts on a huge page boundary",
	      "base %p, huge page %llu", (void *)s.base, (unsigned long long)hpage);
	CHECK(s.huge && s.unit == hpage, "the store is advised MADV_HUGEPAGE; its unit is a huge page",
	      "THP mode %s, huge %d, unit %llu", mode, s.huge, (unsigned long long)s.unit);
	memset(buf, 0x3c, 4096);
	CHECK_RES(mem_store_write(&s, buf, hpage + 8192, 4096), 0,
		  "a 4 KiB write into the second huge page");
	res = resident_bytes(s.base + hpage, hpage);
	CHECK(res == (long long)hpage, "a 4 KiB write allocates its whole huge page",
	      "%lld bytes resident", res);
	huge = anon_huge_bytes(s.base);
	if (huge < 0)
		skip("the kernel backs it with a huge page", "no /proc/self/smaps");
	else if (huge == 0)
		skip("the kernel backs it with a huge page",
		     "the kernel gave small pages (memory fragmented?)");
	else
		CHECK(huge == (long long)hpage, "the kernel backs it with one huge page",
		      "AnonHugePages %lld KiB", huge >> 10);
	mem_store_close(&s);
small:
	cfg.small_pages = true;
	if (open_store(&s, &cfg, "mem_store_open: 8 MiB, small pages") < 0)
		goto out;
	CHECK(!s.huge && s.unit == s.page, "small_pages: no huge pages; the unit is a page",
	      "huge %d, unit %llu", s.huge, (unsigned long long)s.unit);
	memset(buf, 0x3c, 4096);
	mem_store_write(&s, buf, 2 * MiB, 4096);
	res = resident_bytes(s.base, cfg.size);
	CHECK(res == s.page, "small_pages: a 4 KiB write allocates one page",
	      "%lld bytes resident", res);
	CHECK(anon_huge_bytes(s.base) <= 0, "small_pages: no huge page in the mapping",
	      "AnonHugePages %lld KiB", anon_huge_bytes(s.base) >> 10);
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

	if (!buf || open_anon(&s, 64 * MiB, "mem_store_open: 64 MiB, for zero reads") < 0) {
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
	CHECK(units_set(&s, s.backed) == 0 && units_set(&s, s.used) == 0,
	      "reads mark no unit backed or used", "%llu backed, %llu used",
	      (unsigned long long)units_set(&s, s.backed),
	      (unsigned long long)units_set(&s, s.used));
	mem_store_close(&s);
	free(buf);
}

/*
 * Writes at odd multiples of 512 (never page-aligned), from 512 bytes to
 * 3 pages long, land exactly where asked: each reads back, and at the end
 * the whole store matches a model that got the same writes, so no write
 * spilled into its neighbours.
 */
/*
 * mem_copy() and mem_zero() (memory.h) work in pieces: every length
 * around a piece's edge copies or clears exactly its bytes, not one
 * byte more, from any alignment.
 */
static void test_copy_in_pieces(void)
{
	static const size_t lens[] = { 0, 1, MEM_PIECE - 1, MEM_PIECE, MEM_PIECE + 1,
				       3 * MEM_PIECE + 7, 128 * 1024 + 3 };
	static unsigned char src[128 * 1024 + 64], dst[128 * 1024 + 64];
	int bad = 0;

	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (unsigned char)(i * 131 + 7);
	for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
		for (size_t at = 0; at < 3; at++) {
			size_t n = lens[l];

			memset(dst, 0xa5, sizeof(dst));
			mem_copy(dst + at, src + 5, n);
			for (size_t i = 0; i < sizeof(dst); i++)
				bad += dst[i] != (i >= at && i < at + n ? src[5 + i - at] : 0xa5);
			mem_zero(dst + at, n);
			for (size_t i = 0; i < sizeof(dst); i++)
				bad += dst[i] != (i >= at && i < at + n ? 0 : 0xa5);
		}
	}
	CHECK(bad == 0, "mem_copy/mem_zero: exactly the bytes asked for", "%d bytes wrong", bad);
}

static void test_write_read_back(void)
{
	const uint64_t size = 16 * MiB;
	char *model = calloc(1, size), *buf = NULL, *back = NULL;
	struct first_error e = { 0 };
	struct mem_store s;
	uint64_t page;

	if (!model || open_anon(&s, size, "mem_store_open: 16 MiB, for writes") < 0)
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

	if (open_anon(&s, 64 * (uint64_t)sysconf(_SC_PAGESIZE),
		      "mem_store_open: 64 pages, for zeroing") < 0)
		return;
	size = (long long)s.size;
	page = s.page;
	model = malloc((size_t)size);
	if (!model)
		goto out;
	fill_random(model, (size_t)size);
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
 * from the mapping, and the process's Rss must fall by most of 64 MiB.
 */
static void test_zero_gives_memory_back(void)
{
	const uint64_t size = 64 * MiB;
	const uint32_t chunk = 1 << 20;
	char *buf = malloc(chunk), head[512], tail[512];
	long long rss0, rss1, rss2, res1, res2;
	struct mem_store s;
	uint64_t nz = size, last;

	if (!buf || open_anon(&s, size, "mem_store_open: 64 MiB, for giving memory back") < 0)
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
	/*
	 * Rss also counts the sanitizer runtime and whatever else the process
	 * does meanwhile (megabytes, on some machines): what must hold is that
	 * it rose and fell by most of the 64 MiB the store took and gave back.
	 */
	if (rss0 < 0 || rss1 < 0 || rss2 < 0) {
		skip("Rss rises and falls by the 64 MiB", "no /proc/self/smaps_rollup");
	} else {
		CHECK(rss1 - rss0 >= (long long)(56 * MiB),
		      "process Rss rises by at least 56 of the 64 MiB written",
		      "Rss %lld KiB, then %lld KiB after writing", rss0 >> 10, rss1 >> 10);
		CHECK(rss1 - rss2 >= (long long)(56 * MiB),
		      "process Rss falls by at least 56 of the 64 MiB zeroed",
		      "Rss %lld KiB after writing, %lld KiB after zeroing",
		      rss1 >> 10, rss2 >> 10);
	}
	last = s.nr_units - 1;
	CHECK(units_set(&s, s.backed) == 0 && units_set(&s, s.used) == 2 &&
	      unit_set(s.used, 0) && unit_set(s.used, last),
	      "zeroing clears the maps: no unit backed, the two ragged end units still used",
	      "%llu backed, %llu used", (unsigned long long)units_set(&s, s.backed),
	      (unsigned long long)units_set(&s, s.used));

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
 * Zeroing space that was never written has nothing to give back, and
 * must take nothing either: not a page of memory, and no memory at all
 * when the machine has none to spare.  Nor may a second unaligned
 * discard take back what the first one gave.
 */
static void test_zero_unwritten(void)
{
	struct mem_store_config cfg = { .size = 8 * MiB };
	char *buf = malloc(MiB);
	struct mem_store s;
	int saved, ret, lines;
	long long res;

	if (!buf || open_store(&s, &cfg, "mem_store_open: 8 MiB, for zeroing unwritten space") < 0)
		goto out;
	CHECK_RES(mem_store_zero(&s, 512, 1024), 0,
		  "zero 1 KiB at 512 (inside a page) of never-written space");
	CHECK_RES(mem_store_zero(&s, 4 * MiB - 512, 2 * MiB + 1024), 0,
		  "zero 2 MiB + 1 KiB at 4 MiB - 512 (ragged ends) of never-written space");
	res = resident_bytes(s.base, cfg.size);
	CHECK(res == 0 && units_set(&s, s.backed) == 0 && units_set(&s, s.used) == 0,
	      "zeroing never-written space allocates nothing and marks nothing",
	      "%lld bytes resident, %llu units backed, %llu used", res,
	      (unsigned long long)units_set(&s, s.backed),
	      (unsigned long long)units_set(&s, s.used));
	if (!s.huge) {
		skip("a second unaligned discard does not take back what the first gave",
		     "no huge pages: a unit is one page");
		goto close;
	}
	/* Write one unit, discard most of it, then discard more of it. */
	memset(buf, 0x77, MiB);
	for (uint64_t off = 0; off < s.unit; off += MiB)
		mem_store_write(&s, buf, off, (uint32_t)(s.unit - off < MiB ? s.unit - off : MiB));
	mem_store_zero(&s, 512, s.unit / 2);
	mem_store_zero(&s, s.unit / 2 + 1024, s.unit / 4);
	res = resident_bytes(s.base, s.unit);
	/* Left: page 0 and the page at unit/2 (ragged ends), the last quarter. */
	CHECK(res == (long long)(s.unit / 4 + 2 * s.page),
	      "a second unaligned discard does not take back what the first gave",
	      "%lld of the unit's %llu bytes resident, want %llu", res,
	      (unsigned long long)s.unit, (unsigned long long)(s.unit / 4 + 2 * s.page));
close:
	mem_store_close(&s);

	cfg.reserve = HUGE_RESERVE;
	if (open_store(&s, &cfg, "mem_store_open: 8 MiB, reserve 2^63") < 0)
		goto out;
	saved = capture_stderr();
	ret = mem_store_zero(&s, 512, 1024);
	lines = captured_lines(saved);
	CHECK(ret == 0 && lines == 0,
	      "with no memory to spare, zeroing never-written space still succeeds",
	      "got %d (%s), %d stderr lines", ret, res_name(ret), lines);
	mem_store_close(&s);
out:
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

	if (!buf || !tail || open_anon(&s, size, "mem_store_open: 1 MiB, for bounds") < 0)
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

		snprintf(name, sizeof(name), "prepare_write %s: -EIO", r->what);
		CHECK_RES(mem_store_prepare_write(&s, r->off, len), -EIO, name);

		snprintf(name, sizeof(name), "zero %s: -EIO", r->what);
		CHECK_RES(mem_store_zero(&s, r->off, r->len), -EIO, name);

		snprintf(name, sizeof(name), "direct %s: NULL", r->what);
		p = mem_backend_ops.direct(&s, r->off, len, true);
		CHECK(!p, name, "got %p, base %p", (void *)p, (void *)s.base);
	}
	CHECK(units_set(&s, s.backed) == 0 && units_set(&s, s.used) == 0,
	      "the refused requests allocated nothing", "%llu units backed, %llu used",
	      (unsigned long long)units_set(&s, s.backed),
	      (unsigned long long)units_set(&s, s.used));
	CHECK_RES(mem_store_zero(&s, 1, UINT64_MAX), -EIO,
		  "zero len = 2^64 - 1 at 1: off + len wraps: -EIO");
	for (unsigned i = 0; i < ARRAY_SIZE(good); i++) {
		const struct range *r = &good[i];
		char name[128];
		int rd, pw, wr, zr;

		rd = mem_store_read(&s, buf, r->off, (uint32_t)r->len);
		pw = mem_store_prepare_write(&s, r->off, (uint32_t)r->len);
		wr = mem_store_write(&s, buf, r->off, (uint32_t)r->len);
		zr = mem_store_zero(&s, r->off, r->len);
		snprintf(name, sizeof(name), "read, prepare_write, write and zero %s succeed",
			 r->what);
		CHECK(!rd && !pw && !wr && !zr, name, "read %d, prepare_write %d, write %d, zero %d",
		      rd, pw, wr, zr);

		if (!r->len)
			continue;	/* nothing to point at: NULL is right too */
		snprintf(name, sizeof(name), "direct for a write of %s: base + off", r->what);
		p = mem_backend_ops.direct(&s, r->off, (uint32_t)r->len, true);
		CHECK(p == s.base + r->off, name, "got %p, base %p", (void *)p, (void *)s.base);
	}
	mem_store_close(&s);
out_free:
	free(tail);
	free(buf);
}

/* The backend table: RAM needs no flush; every other operation is there. */
static void test_backend_ops(void)
{
	const struct backend_ops *ops = &mem_backend_ops;
	const uint64_t size = 1 * MiB;
	struct mem_store s;
	char buf[512];
	char *p;

	CHECK(!strcmp(ops->name, "mem") && ops->read == mem_store_read &&
	      ops->write == mem_store_write && ops->write_zeroes == mem_store_zero &&
	      ops->discard == mem_store_zero && ops->prepare_write == mem_store_prepare_write &&
	      ops->direct && !ops->flush,
	      "mem_backend_ops: read, write, discard, write_zeroes, prepare_write, direct; no flush",
	      "name %s, read %d write %d discard %d write_zeroes %d prepare_write %d "
	      "direct %d flush %d",
	      ops->name, !!ops->read, !!ops->write, !!ops->discard, !!ops->write_zeroes,
	      !!ops->prepare_write, !!ops->direct, !!ops->flush);
	if (open_anon(&s, size, "mem_store_open: 1 MiB, for the ops table") < 0)
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

/*
 * prepare_write() allocates the units a write needs, and marks them
 * backed and used, before anything is copied; a range it allocated once
 * needs nothing more, even when memory has run out meanwhile.
 */
static void test_prepare_write(bool small_pages)
{
	const struct mem_store_config cfg = { .size = 8 * MiB, .small_pages = small_pages };
	struct mem_store s;
	uint64_t unit;
	long long res;
	int saved, ret, lines;

	if (open_store(&s, &cfg, "mem_store_open: 8 MiB, for prepare_write") < 0)
		return;
	unit = s.unit;
	CHECK_RES(mem_store_prepare_write(&s, unit + 512, 1024), 0,
		  "prepare_write of 1 KiB in the second unit");
	CHECK(unit_set(s.backed, 1) && unit_set(s.used, 1) &&
	      units_set(&s, s.backed) == 1 && units_set(&s, s.used) == 1,
	      "prepare_write marks that unit backed and used, and no other",
	      "unit 1: backed %d used %d; %llu backed, %llu used in all",
	      unit_set(s.backed, 1), unit_set(s.used, 1),
	      (unsigned long long)units_set(&s, s.backed),
	      (unsigned long long)units_set(&s, s.used));
	res = resident_bytes(s.base, cfg.size);
	CHECK(res == (long long)unit && resident_bytes(s.base + unit, unit) == (long long)unit,
	      "prepare_write allocates exactly that unit", "%lld bytes resident, unit %llu",
	      res, (unsigned long long)unit);
	CHECK(first_nonzero(s.base + unit, unit) == unit,
	      "the prepared unit still reads as zeros", "byte %zu not zero",
	      first_nonzero(s.base + unit, unit));

	s.budget.reserve = HUGE_RESERVE;	/* memory runs out */
	saved = capture_stderr();
	ret = mem_store_prepare_write(&s, unit, (uint32_t)unit);
	lines = captured_lines(saved);
	CHECK(ret == 0 && lines == 0,
	      "a second prepare_write of the unit is a no-op: with no memory to spare, it succeeds silently",
	      "got %d (%s), %d stderr lines", ret, res_name(ret), lines);
	CHECK_RES(mem_store_prepare_write(&s, 3 * unit, 0), 0,
		  "prepare_write of 0 bytes is a no-op, even with no memory to spare");

	saved = capture_stderr();
	ret = mem_store_prepare_write(&s, unit - 512, 1024);
	lines = captured_lines(saved);
	CHECK(ret == -ENOSPC && lines == 1,
	      "with no memory to spare, prepare_write across units 0 and 1: -ENOSPC, saying why",
	      "got %d (%s), %d stderr lines", ret, res_name(ret), lines);
	CHECK(!unit_set(s.backed, 0) && !unit_set(s.used, 0) && unit_set(s.backed, 1) &&
	      resident_bytes(s.base, unit) == 0,
	      "the refused unit is neither marked nor allocated; the prepared one stays",
	      "unit 0 backed %d used %d, %lld bytes resident; unit 1 backed %d",
	      unit_set(s.backed, 0), unit_set(s.used, 0), resident_bytes(s.base, unit),
	      unit_set(s.backed, 1));

	s.budget.reserve = 0;	/* memory is back */
	saved = capture_stderr();
	ret = mem_store_prepare_write(&s, 0, (uint32_t)(3 * unit));
	lines = captured_lines(saved);
	CHECK(ret == 0 && lines == 1,
	      "once memory is back, prepare_write of units 0-2 succeeds, saying so once",
	      "got %d (%s), %d stderr lines", ret, res_name(ret), lines);
	res = resident_bytes(s.base, cfg.size);
	CHECK(units_set(&s, s.backed) == 3 && res == (long long)(3 * unit),
	      "units 0-2 are backed and allocated, the rest not",
	      "%llu units backed, %lld bytes resident",
	      (unsigned long long)units_set(&s, s.backed), res);
	mem_store_close(&s);
}

/*
 * The reserve: with no memory to spare, a write that needs new memory
 * fails with -ENOSPC before copying anything (saying why once), while
 * writes to allocated parts succeed and the data stays intact.  Zeroing
 * gives memory back, so writing there needs new memory again.
 */
static void test_reserve(bool small_pages)
{
	struct mem_store_config cfg = {
		.size = 8 * MiB, .small_pages = small_pages, .reserve = HUGE_RESERVE,
	};
	char *model = calloc(1, cfg.size), buf[4096];
	struct mem_store s;
	int saved, r1, r2, lines;
	uint64_t unit;
	long long res;

	if (!model ||
	    open_store(&s, &cfg, "mem_store_open: 8 MiB, reserve 2^63 (opening needs no memory)") < 0)
		goto out;
	memset(buf, 0x11, sizeof(buf));
	saved = capture_stderr();
	r1 = mem_store_write(&s, buf, 0, sizeof(buf));
	r2 = mem_store_write(&s, buf, 5 * MiB + 512, sizeof(buf));
	lines = captured_lines(saved);
	CHECK(r1 == -ENOSPC && r2 == -ENOSPC,
	      "reserve 2^63: writes to never-written space fail with -ENOSPC",
	      "got %d (%s) and %d (%s)", r1, res_name(r1), r2, res_name(r2));
	CHECK_EQ(lines, 1, "stderr says why once, not once per write");
	res = resident_bytes(s.base, cfg.size);
	CHECK(res == 0 && units_set(&s, s.used) == 0 && units_set(&s, s.backed) == 0,
	      "the refused writes allocated nothing and marked nothing",
	      "%lld bytes resident, %llu units used", res,
	      (unsigned long long)units_set(&s, s.used));
	CHECK_STORE(&s, model, "the refused writes copied nothing: the store reads as zeros");
	mem_store_close(&s);

	cfg.reserve = UINT64_MAX;
	if (open_store(&s, &cfg, "mem_store_open: 8 MiB, reserve 2^64 - 1") == 0) {
		saved = capture_stderr();
		r1 = mem_store_write(&s, buf, 0, sizeof(buf));
		captured_lines(saved);
		CHECK_RES(r1, -ENOSPC, "reserve 2^64 - 1 refuses too (no overflow)");
		mem_store_close(&s);
	}

	cfg.reserve = 0;
	if (open_store(&s, &cfg, "mem_store_open: 8 MiB, reserve 0") < 0)
		goto out;
	unit = s.unit;
	CHECK(write_model(&s, model, 0, 1024) == 0 &&
	      write_model(&s, model, unit - 1024, 1024) == 0 &&
	      write_model(&s, model, 2 * unit + 512, 1024) == 0 &&
	      write_model(&s, model, 3 * unit + 1024, 1024) == 0,
	      "reserve 0: writes to units 0, 2 and 3 succeed", "a write failed");

	s.budget.reserve = HUGE_RESERVE;	/* memory runs out */
	saved = capture_stderr();
	r1 = write_model(&s, model, 512, 1024);
	r2 = write_model(&s, model, 2 * unit + 2048, 1024);
	CHECK(r1 == 0 && r2 == 0, "with no memory to spare, writes to allocated units succeed",
	      "got %d (%s) and %d (%s)", r1, res_name(r1), r2, res_name(r2));
	r1 = write_model(&s, model, unit + 512, 1024);
	r2 = write_model(&s, model, unit - 512, 1024);
	lines = captured_lines(saved);
	CHECK(r1 == -ENOSPC && r2 == -ENOSPC,
	      "a write to a never-written unit, or partly into one, fails with -ENOSPC",
	      "got %d (%s) and %d (%s)", r1, res_name(r1), r2, res_name(r2));
	CHECK_EQ(lines, 1, "stderr says why once");
	CHECK_STORE(&s, model, "earlier data is intact; the failed writes copied nothing");

	CHECK_RES(mem_store_zero(&s, 2 * unit, unit), 0,
		  "with no memory to spare, zeroing a whole written unit succeeds");
	memset(model + 2 * unit, 0, unit);
	CHECK_RES(mem_store_write(&s, buf, 2 * unit + 512, 512), -ENOSPC,
		  "the zeroed unit gave its memory back: writing it needs memory again");
	CHECK_RES(mem_store_zero(&s, 3 * unit + 1024, 512), 0,
		  "zeroing 512 bytes inside a written unit succeeds");
	memset(model + 3 * unit + 1024, 0, 512);
	CHECK_STORE(&s, model, "after zeroing, the other data is intact");

	s.budget.reserve = 0;	/* memory is back */
	saved = capture_stderr();
	r1 = write_model(&s, model, unit + 512, 1024);
	lines = captured_lines(saved);
	CHECK(r1 == 0 && lines == 1, "once memory is back, the write succeeds, saying so once",
	      "got %d (%s), %d stderr lines", r1, res_name(r1), lines);
	CHECK_STORE(&s, model, "the store holds every write that succeeded");
	mem_store_close(&s);
out:
	free(model);
}

/*
 * `direct` for reads hands out memory that reading allocates nothing
 * from: the store where it is allocated, the shared zeros where nothing
 * was ever written.  For writes it is always the store.
 */
static void test_direct_anonymous(bool small_pages)
{
	const struct mem_store_config cfg = { .size = 8 * MiB, .small_pages = small_pages };
	struct mem_store s;
	const void *p;
	char buf[1024];
	uint64_t unit;

	if (open_store(&s, &cfg, "mem_store_open: 8 MiB, for direct") < 0)
		return;
	unit = s.unit;
	p = direct_read(&s, 4096, 4096);
	CHECK(p == s.zeros, "direct read of never-written space: the shared zeros",
	      "got %p, zeros %p, base %p", p, (const void *)s.zeros, (void *)s.base);
	p = direct_read(&s, s.size - s.zeros_len, (uint32_t)s.zeros_len);
	CHECK(p == s.zeros, "direct read of the largest request, never written: the zeros",
	      "got %p, zeros %p", p, (const void *)s.zeros);
	p = mem_backend_ops.direct(&s, 512, 4096, true);
	CHECK(p == s.base + 512, "direct for a write of never-written space: the store",
	      "got %p, base %p", p, (void *)s.base);

	memset(buf, 0x42, sizeof(buf));
	mem_store_write(&s, buf, unit + 512, sizeof(buf));
	p = direct_read(&s, unit + 512, sizeof(buf));
	CHECK(p == s.base + unit + 512 && !memcmp(p, buf, sizeof(buf)),
	      "direct read of a written range: the store, holding the data",
	      "got %p, want %p", p, (void *)(s.base + unit + 512));
	p = direct_read(&s, unit - 512, 1024);
	CHECK(p == s.base + unit - 512,
	      "direct read half in a written unit: the store (reading allocates nothing)",
	      "got %p, want %p", p, (void *)(s.base + unit - 512));
	CHECK(resident_bytes(s.base, unit) == 0, "that read left unit 0 unallocated",
	      "%lld bytes resident", resident_bytes(s.base, unit));

	mem_store_zero(&s, unit, unit);
	p = direct_read(&s, unit + 512, sizeof(buf));
	CHECK(p == s.zeros, "after zeroing the whole unit, direct read: the zeros again",
	      "got %p, zeros %p", p, (const void *)s.zeros);
	mem_store_close(&s);
}

/*
 * The lazy store: a store far larger than what is touched costs only
 * the units touched.
 */
static void test_lazy_allocation(void)
{
	const struct mem_store_config cfg = { .size = 1 * GiB };
	long long rss0 = process_rss(), rss1, res;
	struct mem_store s;
	char buf[512];
	int ret;

	ret = mem_store_open(&s, &cfg);
	if (ret == -ENOMEM) {
		skip("lazy allocation", "no 1 GiB of address space (strict overcommit?)");
		return;
	}
	if (!CHECK_RES(ret, 0, "mem_store_open: 1 GiB"))
		return;
	rss1 = process_rss();
	res = resident_bytes(s.base, cfg.size);
	CHECK(res == 0, "a fresh 1 GiB store has no resident pages",
	      "%lld bytes resident", res);
	/* The store itself is res, exactly; Rss also sees the maps and the runtime. */
	if (rss0 < 0 || rss1 < 0)
		skip("Rss after opening 1 GiB", "no /proc/self/smaps_rollup");
	else
		CHECK(rss1 - rss0 < (long long)(16 * MiB),
		      "process Rss grows by under 16 MiB for a 1 GiB store",
		      "grew by %lld KiB", (rss1 - rss0) >> 10);

	memset(buf, 0x42, sizeof(buf));
	mem_store_write(&s, buf, 512 * MiB + 512, sizeof(buf));
	res = resident_bytes(s.base, cfg.size);
	CHECK(res == (long long)s.unit,
	      "one 512-byte write allocates its unit, not the store",
	      "%lld bytes resident, unit %llu", res, (unsigned long long)s.unit);
	mem_store_close(&s);
}

/*
 * Whether mlock() really faults pages in here.  AddressSanitizer replaces
 * mlock() with a stub that returns 0 and does nothing, so in a sanitizer
 * build prealloc cannot show up in the resident set.
 */
static bool mlock_populates(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	void *p = mmap(NULL, page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	bool populated;
	int saved;

	if (p == MAP_FAILED)
		return false;
	saved = capture_stderr();	/* the stub says it ignores mlock() */
	populated = mlock(p, page) == 0 && resident_bytes(p, page) == (long long)page;
	captured_lines(saved);
	munmap(p, page);
	return populated;
}

/*
 * prealloc allocates and locks everything at open, marks every unit
 * backed, and zeroing then clears memory instead of giving it back.
 */
static void test_prealloc(void)
{
	const struct mem_store_config cfg = { .size = 8 * MiB, .prealloc = true };
	const uint64_t size = cfg.size;
	long long rss0 = process_rss(), rss1, res;
	char *model = malloc(size);
	struct mem_store s;
	struct rlimit lim;
	int ret;

	if (!model)
		return;
	ret = mem_store_open(&s, &cfg);
	if (ret == -EPERM || ret == -EAGAIN) {
		getrlimit(RLIMIT_MEMLOCK, &lim);
		printf("# RLIMIT_MEMLOCK is %llu bytes\n", (unsigned long long)lim.rlim_cur);
		skip("prealloc", "cannot mlock 8 MiB here");
		free(model);
		return;
	}
	if (!CHECK_RES(ret, 0, "mem_store_open: 8 MiB, prealloc"))
		goto out;
	rss1 = process_rss();
	res = resident_bytes(s.base, size);
	CHECK(s.locked, "prealloc: the store is marked locked", "locked %d", s.locked);
	CHECK(units_set(&s, s.backed) == s.nr_units, "prealloc: every unit is backed",
	      "%llu of %llu", (unsigned long long)units_set(&s, s.backed),
	      (unsigned long long)s.nr_units);
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
	CHECK(units_set(&s, s.backed) == s.nr_units, "prealloc: every unit stays backed",
	      "%llu of %llu", (unsigned long long)units_set(&s, s.backed),
	      (unsigned long long)s.nr_units);
	CHECK_STORE(&s, model, "prealloc: the range reads as zeros, the ends kept");
	CHECK_RES(mem_store_zero(&s, 0, size), 0, "prealloc: zero everything");
	memset(model, 0, size);
	CHECK_STORE(&s, model, "prealloc: the whole store reads as zeros");
	mem_store_close(&s);
out:
	free(model);
}

/*
 * prealloc is refused up front, with -ENOMEM, when the store would eat
 * into the reserve: nothing is allocated, and a store file it created is
 * gone again, while one it was given is left as it was.
 */
static void test_prealloc_refused(void)
{
	struct mem_store_config cfg = {
		.size = 64 * MiB, .prealloc = true, .reserve = HUGE_RESERVE,
	};
	long long rss0 = process_rss(), rss1, blocks;
	char dir[64], path[96];
	struct mem_store s;
	int saved, ret, lines;

	saved = capture_stderr();
	ret = mem_store_open(&s, &cfg);
	lines = captured_lines(saved);
	rss1 = process_rss();
	CHECK(ret == -ENOMEM && lines == 1 && !s.base && s.fd == -1,
	      "prealloc of 64 MiB with reserve 2^63: -ENOMEM, saying why, holding nothing",
	      "got %d (%s), %d stderr lines, base %p", ret, res_name(ret), lines,
	      (void *)s.base);
	if (ret == 0)
		mem_store_close(&s);
	if (rss0 < 0 || rss1 < 0)
		skip("the refused prealloc allocated nothing", "no /proc/self/smaps_rollup");
	else
		CHECK(rss1 - rss0 < (long long)(32 * MiB),
		      "the refused prealloc allocated nothing (Rss grew by far less than 64 MiB)",
		      "grew by %lld KiB", (rss1 - rss0) >> 10);

	if (!CHECK_RES(make_store_dir(dir, sizeof(dir)), 0, "temporary directory for prealloc files"))
		return;
	snprintf(path, sizeof(path), "%s/store", dir);
	cfg.size = 4 * MiB;
	cfg.path = path;
	cfg.create = true;
	saved = capture_stderr();
	ret = mem_store_open(&s, &cfg);
	captured_lines(saved);
	CHECK(ret == -ENOMEM && !exists(path),
	      "a store file created for a refused prealloc is removed again",
	      "got %d (%s), the file %s", ret, res_name(ret),
	      exists(path) ? "is there" : "is gone");
	if (ret == 0)
		mem_store_close(&s);
	unlink(path);

	cfg.create = false;
	if (CHECK_RES(make_file(path, cfg.size, 0600), 0, "a 4 MiB store file to reuse")) {
		blocks = file_blocks(path);
		saved = capture_stderr();
		ret = mem_store_open(&s, &cfg);
		captured_lines(saved);
		CHECK(ret == -ENOMEM && file_planted(path) && file_blocks(path) == blocks,
		      "a refused prealloc of a reused file leaves it in place, unallocated",
		      "got %d (%s), data %s, %lld blocks (were %lld)", ret, res_name(ret),
		      file_planted(path) ? "kept" : "lost", file_blocks(path), blocks);
		if (ret == 0)
			mem_store_close(&s);
	}
	unlink(path);
	rmdir(dir);
}

/* ---- the tests: the file store ---- */

/*
 * The file-backed store: created, closed, reopened with the same data;
 * reopening with another size or creating over it fails and harms nothing.
 */
static void test_file_store(void)
{
	const uint64_t size = 4 * MiB, page = (uint64_t)sysconf(_SC_PAGESIZE);
	struct mem_store_config cfg = { .size = size, .create = true };
	struct first_error e = { 0 };
	char dir[64], path[96];
	char *model = malloc(size);
	struct mem_store s;
	struct stat st = { 0 };
	int saved, ret, lines;

	if (!model || !CHECK_RES(make_store_dir(dir, sizeof(dir)), 0,
				 "temporary directory for store files")) {
		free(model);
		return;
	}
	snprintf(path, sizeof(path), "%s/store", dir);
	printf("# store file %s\n", path);
	cfg.path = path;

	if (open_store(&s, &cfg, "mem_store_open: create a 4 MiB store file") < 0)
		goto out_rmdir;
	if (stat(path, &st) < 0)
		memset(&st, 0, sizeof(st));
	CHECK(s.fd >= 0 && s.created && (uint64_t)st.st_size == size &&
	      (st.st_mode & 07777) == 0600 && s.st_dev == st.st_dev && s.st_ino == st.st_ino,
	      "the store file exists: 4 MiB, mode 0600, its identity recorded",
	      "fd %d, created %d, size %lld, mode %04o, ino %llu (recorded %llu)", s.fd,
	      s.created, (long long)st.st_size, (unsigned)(st.st_mode & 07777),
	      (unsigned long long)st.st_ino, (unsigned long long)s.st_ino);
	CHECK(s.unit == s.page && units_set(&s, s.backed) == 0,
	      "a new store file: the unit is a page, none backed", "unit %llu, %llu backed",
	      (unsigned long long)s.unit, (unsigned long long)units_set(&s, s.backed));
	memset(model, 0, size);
	CHECK_STORE(&s, model, "a new store file reads as zeros");
	for (unsigned i = 0; i < 16; i++) {
		uint64_t off = 512 * rand_below(size / 512 - 64);
		uint32_t len = (uint32_t)(512 * (1 + rand_below(64)));

		ret = write_model(&s, model, off, len);
		if (ret)
			note(&e, "write of %u bytes at %llu: %d", len, (unsigned long long)off, ret);
	}
	CHECK_NO_ERROR(e, "16 writes to the store file");
	CHECK_RES(mem_store_zero(&s, page + 100, 3 * page), 0,
		  "zero an unaligned range of the store file");
	memset(model + page + 100, 0, 3 * page);
	CHECK_STORE(&s, model, "store file holds the writes and the zeroed range");
	mem_store_close(&s);

	cfg.create = false;
	ret = mem_store_open(&s, &cfg);
	if (CHECK_RES(ret, 0, "mem_store_open: reopen the store file")) {
		CHECK(!s.created, "a reopened store file is not marked created", "created %d",
		      s.created);
		CHECK_STORE(&s, model, "reopened store has the same data");
		mem_store_close(&s);
	}

	cfg.size = size + page;
	saved = capture_stderr();
	ret = mem_store_open(&s, &cfg);
	lines = captured_lines(saved);
	CHECK(ret == -EINVAL && !s.base && s.fd == -1 && lines == 1,
	      "reopen with another size fails with -EINVAL, saying why, holding nothing",
	      "got %d (%s), base %p, fd %d, %d stderr lines", ret, res_name(ret),
	      (void *)s.base, s.fd, lines);
	if (ret == 0)
		mem_store_close(&s);
	cfg.size = size;

	cfg.create = true;
	saved = capture_stderr();
	ret = mem_store_open(&s, &cfg);
	lines = captured_lines(saved);
	CHECK(ret == -EEXIST && !s.base && s.fd == -1 && lines == 1,
	      "create over an existing store fails with -EEXIST, saying why, holding nothing",
	      "got %d (%s), base %p, fd %d, %d stderr lines", ret, res_name(ret),
	      (void *)s.base, s.fd, lines);
	if (ret == 0)
		mem_store_close(&s);
	cfg.create = false;

	ret = mem_store_open(&s, &cfg);
	if (CHECK_RES(ret, 0, "mem_store_open: reopen after the failed opens")) {
		CHECK_STORE(&s, model, "the failed opens left the data alone");
		CHECK(file_blocks(path) > 0, "the written store file occupies blocks",
		      "%lld blocks", file_blocks(path));
		CHECK_RES(mem_store_zero(&s, 0, size), 0, "zero the whole store file");
		CHECK(file_blocks(path) == 0,
		      "zeroing the whole store file frees its blocks (punched hole)",
		      "%lld blocks left", file_blocks(path));
		CHECK(units_set(&s, s.backed) == 0 && units_set(&s, s.used) == 0,
		      "zeroing the whole store file clears the maps", "%llu backed, %llu used",
		      (unsigned long long)units_set(&s, s.backed),
		      (unsigned long long)units_set(&s, s.used));
		memset(model, 0, size);
		CHECK_STORE(&s, model, "the zeroed store file reads as zeros");
		mem_store_close(&s);
	}
	unlink(path);

	saved = capture_stderr();
	ret = mem_store_open(&s, &cfg);
	lines = captured_lines(saved);
	CHECK(ret == -ENOENT && lines == 1,
	      "opening a missing store without create fails with -ENOENT, saying why",
	      "got %d (%s), %d stderr lines", ret, res_name(ret), lines);
	if (ret == 0)
		mem_store_close(&s);
out_rmdir:
	unlink(path);
	rmdir(dir);
	free(model);
}

/*
 * Reading a store file allocates nothing: never-written parts come from
 * the shared zeros or pread() of a hole, never through the mapping (which
 * would allocate a page).  Partly allocated parts are read with pread()
 * and come back right.
 */
static void test_file_reads(void)
{
	struct mem_store_config cfg = { .size = 4 * MiB, .create = true };
	char dir[64], path[96], *model = calloc(1, cfg.size), *buf = malloc(MiB);
	struct mem_store s;
	long long unit_blocks;
	const void *p;
	uint64_t page;
	int ret;

	if (!model || !buf ||
	    !CHECK_RES(make_store_dir(dir, sizeof(dir)), 0, "temporary directory for file reads"))
		goto out_free;
	snprintf(path, sizeof(path), "%s/store", dir);
	cfg.path = path;
	if (open_store(&s, &cfg, "mem_store_open: create a 4 MiB store file, for reads") < 0)
		goto out_rmdir;
	page = s.page;
	unit_blocks = (long long)(s.unit / 512);

	ret = mem_store_read(&s, buf, 0, MiB);
	p = direct_read(&s, MiB, 64 * 1024);
	CHECK(ret == 0 && first_nonzero(buf, MiB) == MiB && p == s.zeros,
	      "never-written: mem_store_read gives zeros, direct the shared zeros",
	      "read %d, byte %zu not zero, direct %p (zeros %p)", ret,
	      first_nonzero(buf, MiB), p, (const void *)s.zeros);
	CHECK(file_blocks(path) == 0, "reading never-written space allocates no file blocks",
	      "%lld blocks", file_blocks(path));
	CHECK_STORE(&s, model, "the whole new store reads as zeros");
	CHECK(file_blocks(path) == 0, "reading the whole new store allocates no file blocks",
	      "%lld blocks", file_blocks(path));

	CHECK_RES(write_model(&s, model, 4 * page, (uint32_t)page), 0,
		  "write one page at page 4");
	CHECK_EQ(file_blocks(path), unit_blocks, "the write allocated its unit's blocks");
	p = direct_read(&s, 4 * page, (uint32_t)page);
	CHECK(p == s.base + 4 * page && !memcmp(p, model + 4 * page, page),
	      "direct read of the written page: the store, holding the data",
	      "got %p, want %p", p, (void *)(s.base + 4 * page));
	p = direct_read(&s, 3 * page, (uint32_t)(3 * page));
	ret = mem_store_read(&s, buf, 3 * page, (uint32_t)(3 * page));
	CHECK(!p && ret == 0 && !memcmp(buf, model + 3 * page, 3 * page),
	      "a range half written: direct gives NULL, mem_store_read the right bytes",
	      "direct %p, read %d, first difference at %zu", p, ret,
	      first_diff(buf, model + 3 * page, 3 * page));
	CHECK_EQ(file_blocks(path), unit_blocks, "reading around the written page allocated nothing");

	CHECK_RES(mem_store_zero(&s, 4 * page + 100, 200), 0,
		  "zero 200 bytes inside the written page");
	memset(model + 4 * page + 100, 0, 200);
	CHECK(!unit_set(s.backed, 4) && unit_set(s.used, 4),
	      "that page is now used but not wholly backed", "backed %d, used %d",
	      unit_set(s.backed, 4), unit_set(s.used, 4));
	p = direct_read(&s, 4 * page, (uint32_t)page);
	ret = mem_store_read(&s, buf, 4 * page, (uint32_t)page);
	CHECK(!p && ret == 0 && !memcmp(buf, model + 4 * page, page),
	      "the partly zeroed page: direct gives NULL, pread the data and the zeros",
	      "direct %p, read %d, first difference at %zu", p, ret,
	      first_diff(buf, model + 4 * page, page));
	CHECK_STORE(&s, model, "the store file holds the write and the zeroed bytes");
	CHECK(file_blocks(path) <= unit_blocks, "reading it all allocated nothing more",
	      "%lld blocks, want at most %lld", file_blocks(path), unit_blocks);
	mem_store_close(&s);
out_rmdir:
	unlink(path);
	rmdir(dir);
out_free:
	free(buf);
	free(model);
}

/*
 * Reopening a store file finds its data (SEEK_DATA / SEEK_HOLE) and marks
 * it in the maps: the data reads back, in place, and the holes still read
 * as zeros without being allocated.  Data written before the reopening
 * can be overwritten with no memory to spare; holes cannot be filled.
 */
static void test_file_reopen(void)
{
	struct mem_store_config cfg = { .size = 4 * MiB, .create = true };
	char dir[64], path[96], *model = calloc(1, cfg.size);
	struct first_error e = { 0 };
	struct mem_store s;
	long long blocks;
	const void *p;
	uint64_t page;
	int saved, r1, r2, lines;

	if (!model ||
	    !CHECK_RES(make_store_dir(dir, sizeof(dir)), 0, "temporary directory for reopening"))
		goto out_free;
	snprintf(path, sizeof(path), "%s/store", dir);
	cfg.path = path;
	if (open_store(&s, &cfg, "mem_store_open: create a 4 MiB store file, to reopen") < 0)
		goto out_rmdir;
	page = s.page;
	/* Pages 0-2 written, page 1 zeroed again, 512 bytes in page 5, the last page. */
	if (write_model(&s, model, 0, (uint32_t)(3 * page)) ||
	    write_model(&s, model, 5 * page + 1024, 512) ||
	    write_model(&s, model, cfg.size - page, (uint32_t)page) ||
	    mem_store_zero(&s, page, page))
		note(&e, "a write or the zeroing failed");
	memset(model + page, 0, page);
	CHECK_NO_ERROR(e, "write pages 0-2, 512 bytes of page 5 and the last page; zero page 1");
	mem_store_close(&s);
	blocks = file_blocks(path);

	cfg.create = false;
	cfg.reserve = HUGE_RESERVE;
	if (open_store(&s, &cfg, "mem_store_open: reopen it, with no memory to spare") < 0)
		goto out_rmdir;
	CHECK(unit_set(s.backed, 0) && unit_set(s.backed, 2) && unit_set(s.backed, 5) &&
	      unit_set(s.backed, s.nr_units - 1) && units_set(&s, s.backed) == 4 &&
	      units_set(&s, s.used) == 4,
	      "reopening marks the pages holding data, and only them, backed and used",
	      "%llu backed, %llu used; backed 0:%d 1:%d 2:%d 5:%d last:%d",
	      (unsigned long long)units_set(&s, s.backed),
	      (unsigned long long)units_set(&s, s.used), unit_set(s.backed, 0),
	      unit_set(s.backed, 1), unit_set(s.backed, 2), unit_set(s.backed, 5),
	      unit_set(s.backed, s.nr_units - 1));
	p = direct_read(&s, 5 * page, (uint32_t)page);
	CHECK(p == s.base + 5 * page && !memcmp(p, model + 5 * page, page),
	      "direct read of data found on reopening: the store, holding it",
	      "got %p, want %p", p, (void *)(s.base + 5 * page));
	p = direct_read(&s, page, (uint32_t)page);
	CHECK(p == s.zeros, "direct read of a hole found on reopening: the zeros",
	      "got %p, zeros %p", p, (const void *)s.zeros);
	CHECK_STORE(&s, model, "the reopened store reads back what was written");
	CHECK_EQ(file_blocks(path), blocks, "reading it allocated no file blocks");

	saved = capture_stderr();
	r1 = write_model(&s, model, 5 * page, 512);
	r2 = write_model(&s, model, page + 512, 512);
	lines = captured_lines(saved);
	CHECK(r1 == 0 && r2 == -ENOSPC && lines == 1,
	      "with no memory to spare, data found on reopening can be overwritten, a hole not",
	      "overwrite %d (%s), fill a hole %d (%s), %d stderr lines", r1, res_name(r1),
	      r2, res_name(r2), lines);
	CHECK_STORE(&s, model, "the reopened store holds the overwrite, nothing else");
	mem_store_close(&s);
out_rmdir:
	unlink(path);
	rmdir(dir);
out_free:
	free(model);
}

/*
 * A device's size is a multiple of 512, not of the page size: the store
 * file must keep that size when its last, partial page is written, or
 * it can never be reopened for the device.
 */
static void test_file_odd_size(void)
{
	struct mem_store_config cfg = { .size = 4 * MiB + 512, .create = true };
	char dir[64], path[96], *model = calloc(1, cfg.size);
	struct mem_store s;
	struct stat st = { 0 };
	int saved, ret;

	if (!model ||
	    !CHECK_RES(make_store_dir(dir, sizeof(dir)), 0, "temporary directory for an odd size"))
		goto out_free;
	snprintf(path, sizeof(path), "%s/store", dir);
	cfg.path = path;
	if (open_store(&s, &cfg, "mem_store_open: create a 4 MiB + 512 store file") < 0)
		goto out_rmdir;
	CHECK_RES(write_model(&s, model, cfg.size - 512, 512), 0, "write its last 512 bytes");
	if (stat(path, &st) < 0)
		memset(&st, 0, sizeof(st));
	CHECK((uint64_t)st.st_size == cfg.size,
	      "the store file stays 4 MiB + 512 bytes", "%lld bytes", (long long)st.st_size);
	mem_store_close(&s);
	cfg.create = false;
	saved = capture_stderr();
	ret = mem_store_open(&s, &cfg);
	captured_lines(saved);
	if (CHECK_RES(ret, 0, "the 4 MiB + 512 store file reopens")) {
		CHECK_STORE(&s, model, "the reopened 4 MiB + 512 store holds its last 512 bytes");
		mem_store_close(&s);
	}
out_rmdir:
	unlink(path);
	rmdir(dir);
out_free:
	free(model);
}

/*
 * Open @path as a store of @size (@create or reuse) expecting it refused
 * with @want and one line on stderr, holding nothing.
 */
static bool check_refused(int line, const char *path, uint64_t size, bool create,
			  int want, const char *name)
{
	const struct mem_store_config cfg = { .size = size, .path = path, .create = create };
	struct mem_store s;
	int saved = capture_stderr();
	int ret = mem_store_open(&s, &cfg);
	int lines = captured_lines(saved);

	if (ret == 0)
		mem_store_close(&s);
	return check(line, ret == want && lines == 1 && !s.base && s.fd == -1, name,
		     "got %d (%s), %d stderr lines, base %p, fd %d", ret, res_name(ret),
		     lines, (void *)s.base, s.fd);
}

#define CHECK_REFUSED(path, size, create, want, name) \
	check_refused(__LINE__, (path), (size), (create), (want), (name))

/*
 * A reused store file is trusted only if it is a regular file, not a
 * symbolic link, owned by us, reachable by nobody else, with one name.
 * Refused files are left as they were; so is a file that a create finds.
 */
static void test_store_file_refusals(void)
{
	const uint64_t size = 1 * MiB;
	char dir[64], path[96], other[96], target[96];
	unsigned long long ino;

	if (!CHECK_RES(make_store_dir(dir, sizeof(dir)), 0, "temporary directory for refusals"))
		return;
	snprintf(path, sizeof(path), "%s/store", dir);
	snprintf(other, sizeof(other), "%s/other", dir);
	snprintf(target, sizeof(target), "%s/target", dir);

	/* The control: a file as a store should be is accepted. */
	if (CHECK_RES(make_file(path, size, 0600), 0, "a 1 MiB file, mode 0600, ours")) {
		const struct mem_store_config cfg = { .size = size, .path = path };
		struct mem_store s;

		if (open_store(&s, &cfg, "mem_store_open: a file as a store should be is reused") == 0)
			mem_store_close(&s);
		ino = file_ino(path);
		CHECK_REFUSED(path, size, true, -EEXIST,
			      "create over an existing file: -EEXIST, saying why");
		CHECK(file_ino(path) == ino && file_planted(path),
		      "the existing file is still there, data and all", "ino %llu (was %llu), data %s",
		      file_ino(path), ino, file_planted(path) ? "kept" : "lost");
	}
	unlink(path);

	make_file(target, size, 0600);
	if (CHECK_RES(sys_res(symlink(target, path)), 0, "a symbolic link to a good store file")) {
		CHECK_REFUSED(path, size, false, -ELOOP,
			      "reuse through a symbolic link: -ELOOP, saying why");
		CHECK(file_planted(target), "the link's target is untouched", "its data is %s",
		      file_planted(target) ? "kept" : "lost");
		CHECK_REFUSED(path, size, true, -EEXIST,
			      "create at a symbolic link: -EEXIST, saying why");
	}
	unlink(path);
	unlink(target);
	if (CHECK_RES(sys_res(symlink(target, path)), 0, "a dangling symbolic link")) {
		CHECK_REFUSED(path, size, true, -EEXIST,
			      "create at a dangling symbolic link: -EEXIST");
		CHECK(!exists(target), "the link's target was not created", "%s exists", target);
		CHECK(file_ino(path) != 0, "the link is left in place", "it is gone");
	}
	unlink(path);
	unlink(target);

	make_file(path, size, 0644);
	CHECK_REFUSED(path, size, false, -EPERM, "reuse a file of mode 0644: -EPERM, saying why");
	CHECK(file_planted(path), "the refused file is left as it was", "its data is lost");
	unlink(path);
	make_file(path, size, 0660);
	CHECK_REFUSED(path, size, false, -EPERM, "reuse a file of mode 0660: -EPERM");
	unlink(path);
	make_file(path, size, 0602);
	CHECK_REFUSED(path, size, false, -EPERM, "reuse a file of mode 0602: -EPERM");
	unlink(path);

	make_file(path, size, 0600);
	if (chown(path, 65534, 65534) < 0)
		skip("reuse a file owned by uid 65534", "chown to uid 65534 needs root");
	else
		CHECK_REFUSED(path, size, false, -EPERM,
			      "reuse a file owned by uid 65534: -EPERM, saying why");
	unlink(path);

	make_file(path, size, 0600);
	if (CHECK_RES(sys_res(link(path, other)), 0, "a second hard link to a store file")) {
		CHECK_REFUSED(path, size, false, -EPERM,
			      "reuse a file with two links: -EPERM, saying why");
		CHECK(file_planted(path) && file_planted(other), "both names are left in place",
		      "one is gone or changed");
	}
	unlink(other);
	unlink(path);

	if (CHECK_RES(sys_res(mkdir(path, 0700)), 0, "a directory at the store path")) {
		CHECK_REFUSED(path, size, false, -EISDIR, "reuse a directory: -EISDIR");
		CHECK_REFUSED(path, size, true, -EEXIST, "create at a directory: -EEXIST");
		CHECK_RES(sys_res(rmdir(path)), 0, "the directory is left in place (rmdir works)");
	}

	if (CHECK_RES(sys_res(mkfifo(path, 0600)), 0, "a FIFO at the store path"))
		CHECK_REFUSED(path, size, false, -EPERM, "reuse a FIFO: -EPERM, saying why");
	unlink(path);
	rmdir(dir);
}

/*
 * A tmpfs too small: creating a store larger than its free space fails
 * with -ENOSPC and leaves no file; a reused store that outgrows it fails
 * writes to new parts with -ENOSPC (saying why once) and keeps its data.
 */
static void test_tmpfs_full(void)
{
	const uint64_t size = 4 * MiB;
	const uint32_t chunk = 64 * 1024;
	char dir[64], path[96], *model = calloc(1, size);
	struct mem_store_config cfg = { .size = size, .create = true };
	struct mem_store s;
	uint64_t off;
	int saved, ret = 0, r1, r2, lines;

	snprintf(dir, sizeof(dir), "/tmp/mem_test.XXXXXX");
	if (!model || !CHECK_RES(mkdtemp(dir) ? 0 : -errno, 0, "a mount point for a small tmpfs"))
		goto out_free;
	if (mount("tmpfs", dir, "tmpfs", 0, "size=1M,mode=0700") < 0) {
		char why[96];

		snprintf(why, sizeof(why), "cannot mount a 1 MiB tmpfs: %s", strerror(errno));
		skip("stores on a full tmpfs", why);
		goto out_rmdir;
	}
	snprintf(path, sizeof(path), "%s/store", dir);
	cfg.path = path;
	saved = capture_stderr();
	ret = mem_store_open(&s, &cfg);
	lines = captured_lines(saved);
	CHECK(ret == -ENOSPC && lines == 1 && !exists(path),
	      "create a 4 MiB store on a 1 MiB tmpfs: -ENOSPC, saying why, no file left",
	      "got %d (%s), %d stderr lines, the file %s", ret, res_name(ret), lines,
	      exists(path) ? "is there" : "is gone");
	if (ret == 0)
		mem_store_close(&s);
	unlink(path);

	cfg.create = false;
	if (!CHECK_RES(make_file(path, size, 0600), 0, "a sparse 4 MiB store file on it"))
		goto out_umount;
	memcpy(model, "planted", 7);
	saved = capture_stderr();
	ret = mem_store_open(&s, &cfg);
	lines = captured_lines(saved);
	CHECK(ret == 0 && lines == 1, "reuse it: it opens, with a warning",
	      "got %d (%s), %d stderr lines", ret, res_name(ret), lines);
	if (ret < 0)
		goto out_umount;
	saved = capture_stderr();
	for (off = 0; off < size; off += chunk) {
		ret = write_model(&s, model, off, chunk);
		if (ret)
			break;
	}
	lines = captured_lines(saved);
	printf("# %llu KiB written before the tmpfs filled\n", (unsigned long long)(off >> 10));
	CHECK(ret == -ENOSPC && off >= 512 * KiB && off <= MiB,
	      "writes fill the 1 MiB tmpfs, then fail with -ENOSPC",
	      "got %d (%s) after %llu KiB", ret, res_name(ret), (unsigned long long)(off >> 10));
	saved = capture_stderr();
	r1 = write_model(&s, model, off + chunk, 512);
	r2 = write_model(&s, model, size - 512, 512);
	lines += captured_lines(saved);
	CHECK(r1 == -ENOSPC && r2 == -ENOSPC && lines == 1,
	      "more writes to new parts fail too; stderr said why once",
	      "got %d (%s) and %d (%s), %d stderr lines in all", r1, res_name(r1), r2,
	      res_name(r2), lines);
	CHECK_RES(write_model(&s, model, 4096, 512), 0, "a write to a written part succeeds");
	CHECK_STORE(&s, model, "the store holds everything written, the rest reads as zeros");
	mem_store_close(&s);
out_umount:
	unlink(path);
	umount(dir);
out_rmdir:
	rmdir(dir);
out_free:
	free(model);
}

/* ---- the tests: the machine ---- */

static void test_machine_memory(void)
{
	uint64_t total = mem_total_bytes(), reserve = mem_default_reserve();
	uint64_t hpage = mem_huge_page_size(), want_hpage = 0;
	unsigned long long kb = 0;
	char line[128], mode[64];
	FILE *f;

	printf("# mem_total_bytes() = %llu MiB\n", (unsigned long long)(total >> 20));
	CHECK(total > 0, "mem_total_bytes() > 0", "got 0");
	CHECK(access("/proc/meminfo", R_OK) != 0 || total != UINT64_MAX,
	      "mem_total_bytes() reads /proc/meminfo", "got UINT64_MAX (unknown)");

	f = fopen("/proc/meminfo", "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	if (!kb) {
		skip("mem_default_reserve() is 1/32 of MemTotal, in [64 MiB, 1 GiB]",
		     "no MemTotal in /proc/meminfo");
	} else {
		uint64_t want = kb * KiB / 32;

		want = want < 64 * MiB ? 64 * MiB : want > GiB ? GiB : want;
		printf("# mem_default_reserve() = %llu MiB\n", (unsigned long long)(reserve >> 20));
		CHECK(reserve == want, "mem_default_reserve() is 1/32 of MemTotal, in [64 MiB, 1 GiB]",
		      "got %llu, want %llu", (unsigned long long)reserve,
		      (unsigned long long)want);
	}

	thp_mode(mode, sizeof(mode));
	if (mode[0] && strcmp(mode, "never")) {
		read_first_line(THP_DIR "/hpage_pmd_size", line, sizeof(line));
		want_hpage = strtoull(line, NULL, 10);
		if (!want_hpage)
			want_hpage = 2 * MiB;
	}
	printf("# THP mode \"%s\", mem_huge_page_size() = %llu\n", mode,
	       (unsigned long long)hpage);
	CHECK(hpage == want_hpage,
	      "mem_huge_page_size() agrees with " THP_DIR " (0 when THP is never)",
	      "got %llu, want %llu", (unsigned long long)hpage, (unsigned long long)want_hpage);
}

/*
 * The store's arithmetic for the page sizes Linux uses: 4 KiB (x86-64,
 * arm64), 16 KiB (arm64-16k, whose huge page is 32 MiB) and 64 KiB (arm64
 * and ppc64le with 64 KiB pages, huge page 512 MiB), with and without
 * huge pages, for a device whose size is not a page multiple.
 */
struct geometry_case {
	unsigned page;
	uint64_t hpage;
};

static void test_geometry(void)
{
	static const struct geometry_case cases[] = {
		{ 4096, 0 }, { 4096, 2 * MiB },
		{ 16384, 0 }, { 16384, 32 * MiB },
		{ 65536, 0 }, { 65536, 512 * MiB },
	};
	const uint64_t size = 100 * MiB + 512, max = 3 * GiB;

	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct geometry_case *c = &cases[i];
		uint64_t unit = c->hpage ? c->hpage : c->page;
		struct mem_geometry g;
		char name[128];

		mem_store_geometry(size, max, c->page, c->hpage, &g);
		snprintf(name, sizeof(name), "geometry, %u-byte pages, huge pages of %llu KiB",
			 c->page, (unsigned long long)(c->hpage >> 10));
		CHECK(g.map_len % c->page == 0 && g.map_len >= size && g.map_len - size < c->page &&
		      g.reserved_len % c->page == 0 && g.reserved_len >= max &&
		      g.align == unit && g.unit == unit && (1ULL << g.unit_shift) == unit &&
		      g.nr_units == (max + unit - 1) / unit,
		      name, "map_len %zu reserved_len %zu align %zu unit %llu shift %u units %llu",
		      g.map_len, g.reserved_len, g.align, (unsigned long long)g.unit,
		      g.unit_shift, (unsigned long long)g.nr_units);
	}
	/* A store that may not grow reserves exactly its own pages. */
	{
		struct mem_geometry g;

		mem_store_geometry(size, 0, 16384, 32 * MiB, &g);
		CHECK(g.reserved_len == g.map_len && g.nr_units == (size + 32 * MiB - 1) / (32 * MiB),
		      "geometry without room to grow", "reserved_len %zu map_len %zu units %llu",
		      g.reserved_len, g.map_len, (unsigned long long)g.nr_units);
	}
}

/*
 * mem_store_resize(): growing adds zeros and keeps the data; shrinking
 * keeps the data below the new end and gives the rest back; the store
 * cannot grow beyond what it reserved.
 */
static void test_resize(void)
{
	const uint64_t size = 8 * MiB, max = 32 * MiB;
	struct mem_store_config cfg = { .size = size, .max_size = max };
	char *buf = malloc(2 * MiB), *back = malloc(2 * MiB);
	struct mem_store s;
	long long res;

	if (!buf || !back || !CHECK_RES(mem_store_open(&s, &cfg), 0,
					"mem_store_open: 8 MiB, room for 32 MiB")) {
		free(buf);
		free(back);
		return;
	}
	fill_random(buf, 2 * MiB);
	CHECK_RES(mem_store_write(&s, buf, 6 * MiB, 2 * MiB), 0, "write the last 2 MiB");
	CHECK_RES(mem_store_write(&s, buf, 16 * MiB, 512), -EIO, "a write beyond the end fails");
	CHECK_RES(mem_store_resize(&s, 24 * MiB), 0, "grow to 24 MiB");
	CHECK(s.size == 24 * MiB, "the size is 24 MiB", "%llu", (unsigned long long)s.size);
	mem_store_read(&s, back, 6 * MiB, 2 * MiB);
	CHECK(!memcmp(back, buf, 2 * MiB), "the data before growing stays", "differs");
	mem_store_read(&s, back, 20 * MiB, 2 * MiB);
	CHECK(first_nonzero(back, 2 * MiB) == 2 * MiB, "the grown part reads as zeros",
	      "byte %zu not zero", first_nonzero(back, 2 * MiB));
	CHECK_RES(mem_store_write(&s, buf, 20 * MiB, 2 * MiB), 0, "write in the grown part");
	CHECK_RES(mem_store_resize(&s, 7 * MiB + 512), 0, "shrink to 7 MiB + 512");
	res = resident_bytes(s.base + 8 * MiB, 16 * MiB);
	CHECK(res == 0, "nothing beyond the new end stays resident", "%lld bytes", res);
	mem_store_read(&s, back, 6 * MiB, MiB + 512);
	CHECK(!memcmp(back, buf, MiB + 512), "the data below the new end stays", "differs");
	CHECK_RES(mem_store_read(&s, back, 7 * MiB + 512, 512), -EIO, "a read beyond the new end fails");
	CHECK_RES(mem_store_resize(&s, 24 * MiB), 0, "grow again to 24 MiB");
	mem_store_read(&s, back, 7 * MiB + 512, 2 * MiB);
	CHECK(first_nonzero(back, 2 * MiB) == 2 * MiB,
	      "what was cut off reads as zeros after growing again", "byte %zu not zero",
	      first_nonzero(back, 2 * MiB));
	{
		int saved = capture_stderr();
		int ret = mem_store_resize(&s, 64 * MiB);

		CHECK(ret == -EFBIG && captured_lines(saved) == 1,
		      "growing beyond max_size is refused, with one line", "got %d", ret);
	}
	mem_store_close(&s);
	free(buf);
	free(back);
}

/*
 * A shrink gives the memory beyond the new end back but keeps the
 * mapping (and a store file's size): a request already on its way when
 * the device shrank may still touch the store there, and must find
 * memory, never a hole that kills the server (SIGBUS) or grows a file.
 * Growing again clears what such a request left.
 */
static void test_resize_stragglers(bool file)
{
	struct mem_store_config cfg = { .size = 8 * MiB, .max_size = 32 * MiB };
	const char *what = file ? "file" : "anonymous";
	char dir[64], path[96], name[128], *buf = malloc(MiB);
	struct mem_store s;
	struct stat st;

	if (!buf)
		return;
	if (file) {
		if (!CHECK_RES(make_store_dir(dir, sizeof(dir)), 0, "a directory for stragglers"))
			goto out_free;
		snprintf(path, sizeof(path), "%s/store", dir);
		cfg.path = path;
		cfg.create = true;
	}
	snprintf(name, sizeof(name), "mem_store_open: an 8 MiB %s store, room for 32", what);
	if (open_store(&s, &cfg, name) < 0)
		goto out_dir;
	fill_random(buf, MiB);
	mem_store_write(&s, buf, 5 * MiB, MiB);
	snprintf(name, sizeof(name), "%s: shrink to 4 MiB", what);
	CHECK_RES(mem_store_resize(&s, 4 * MiB), 0, name);
	/* What a request checked before the shrink may still do. */
	memcpy(s.base + 5 * MiB, buf, MiB);
	snprintf(name, sizeof(name), "%s: a write beyond the new end, as a late request makes, lands", what);
	CHECK(!memcmp(s.base + 5 * MiB, buf, MiB), name, "it did not");
	if (file) {
		CHECK(fstat(s.fd, &st) == 0 && st.st_size == (off_t)(8 * MiB),
		      "file: a shrink keeps the file's size (see fit_store)", "%lld bytes",
		      (long long)st.st_size);
	}
	snprintf(name, sizeof(name), "%s: grow back to 8 MiB", what);
	CHECK_RES(mem_store_resize(&s, 8 * MiB), 0, name);
	mem_store_read(&s, buf, 4 * MiB, MiB);
	snprintf(name, sizeof(name), "%s: after growing, what the late request wrote is gone", what);
	CHECK(first_nonzero(buf, MiB) == MiB, name, "byte %zu not zero", first_nonzero(buf, MiB));
	mem_store_read(&s, buf, 5 * MiB, MiB);
	CHECK(first_nonzero(buf, MiB) == MiB, name, "byte %zu not zero", first_nonzero(buf, MiB));
	mem_store_close(&s);
out_dir:
	if (file) {
		unlink(path);
		rmdir(dir);
	}
out_free:
	free(buf);
}

/*
 * A reused store larger than its device (a resize that did not finish) is
 * cut to the device's size, keeping the data below; one smaller than its
 * device is refused, naming the fix, and left as it is.
 */
static void test_store_fit(void)
{
	const uint64_t size = 4 * MiB;
	struct mem_store_config cfg = { .size = size, .path = NULL };
	char dir[64], path[96], buf[16];
	struct mem_store s;
	int saved, ret, lines;

	if (!CHECK_RES(make_store_dir(dir, sizeof(dir)), 0, "a directory for store sizes"))
		return;
	snprintf(path, sizeof(path), "%s/store", dir);
	cfg.path = path;
	if (CHECK_RES(make_file(path, 3 * size, 0600), 0, "a store three times the device's size")) {
		saved = capture_stderr();
		ret = mem_store_open(&s, &cfg);
		lines = captured_lines(saved);
		CHECK(ret == 0 && lines == 1 && file_blocks(path) >= 0,
		      "reusing it cuts it to the device's size, saying so", "got %d (%s), %d lines",
		      ret, res_name(ret), lines);
		if (ret == 0) {
			struct stat st;

			CHECK(fstat(s.fd, &st) == 0 && st.st_size == (off_t)size,
			      "the store is the device's size now", "%lld bytes", (long long)st.st_size);
			mem_store_read(&s, buf, 0, 7);
			CHECK(!memcmp(buf, "planted", 7), "the data below the device's end stays",
			      "it is gone");
			mem_store_close(&s);
		}
	}
	unlink(path);
	if (CHECK_RES(make_file(path, size / 2, 0600), 0, "a store half the device's size")) {
		CHECK_REFUSED(path, size, false, -EINVAL,
			      "reusing a store smaller than its device: -EINVAL, naming the fix");
		CHECK_EQ(file_blocks(path) >= 0 && file_planted(path), 1,
			 "the smaller store is left as it was");
	}
	unlink(path);
	rmdir(dir);
}

/* Open @path (reuse) in a child that holds it @hold_ms; returns the child. */
static pid_t hold_store(const char *path, uint64_t size, unsigned hold_ms, int ready)
{
	pid_t pid = fork();

	if (pid == 0) {
		const struct mem_store_config cfg = { .size = size, .path = path };
		struct mem_store s;
		int ret = mem_store_open(&s, &cfg);

		if (write(ready, "x", 1) != 1 || ret < 0)
			_exit(1);
		usleep(hold_ms * 1000);
		mem_store_close(&s);
		_exit(0);
	}
	return pid;
}

/*
 * One store, one server: a store another process has open is refused
 * (after waiting a while for it to let go), and taken once it does.
 */
static void test_store_lock(void)
{
	const uint64_t size = MiB;
	const struct mem_store_config cfg = { .size = size, .path = NULL };
	char dir[64], path[96], x;
	struct mem_store_config c = cfg;
	struct mem_store s;
	int fds[2], status, ret;
	pid_t pid;

	if (!CHECK_RES(make_store_dir(dir, sizeof(dir)), 0, "a directory for store locks") ||
	    pipe(fds) < 0)
		return;
	snprintf(path, sizeof(path), "%s/store", dir);
	c.path = path;
	make_file(path, size, 0600);
	pid = hold_store(path, size, 500, fds[1]);
	if (read(fds[0], &x, 1) == 1) {
		ret = mem_store_open(&s, &c);
		CHECK_RES(ret, 0, "a store another process lets go of within a moment is taken");
		if (ret == 0)
			mem_store_close(&s);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the other process had the store",
	      "status %d", status);
	pid = hold_store(path, size, 15000, fds[1]);
	if (read(fds[0], &x, 1) == 1)
		CHECK_REFUSED(path, size, false, -EBUSY,
			      "a store another process keeps is refused: -EBUSY, saying why");
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	close(fds[0]);
	close(fds[1]);
	unlink(path);
	rmdir(dir);
}

/*
 * A store found at the recorded path must be the recorded file: another
 * one is refused before anything in it changes (not even cut to size).
 */
static void test_store_identity(void)
{
	struct mem_store_config cfg = { .size = MiB };
	char dir[64], path[96], other[96];
	struct mem_store s;
	int saved, ret, lines;

	if (!CHECK_RES(make_store_dir(dir, sizeof(dir)), 0, "a directory for store identity"))
		return;
	snprintf(path, sizeof(path), "%s/store", dir);
	snprintf(other, sizeof(other), "%s/other", dir);
	make_file(other, MiB, 0600);
	make_file(path, 2 * MiB, 0600);
	cfg.path = path;
	cfg.expect_dev = 1;
	cfg.expect_ino = (ino_t)file_ino(other);
	saved = capture_stderr();
	ret = mem_store_open(&s, &cfg);
	lines = captured_lines(saved);
	CHECK(ret == -ESTALE && lines == 1, "another file than the recorded one is refused",
	      "got %d (%s), %d lines", ret, res_name(ret), lines);
	if (ret == 0)
		mem_store_close(&s);
	CHECK(file_blocks(path) >= 0 && file_planted(path), "the other file is left as it was",
	      "it changed");
	{
		struct stat st;

		CHECK(lstat(path, &st) == 0 && st.st_size == (off_t)(2 * MiB),
		      "... not cut to the device's size either", "%lld bytes", (long long)st.st_size);
	}
	unlink(path);
	unlink(other);
	rmdir(dir);
}

/*
 * A store's directory must be one nobody else can change: not writable by
 * others unless sticky (as /dev/shm and /tmp), not someone else's.
 */
static void test_store_dir_trust(void)
{
	const uint64_t size = MiB;
	char dir[64], path[96];

	if (!CHECK_RES(make_store_dir(dir, sizeof(dir)), 0, "a directory for store trust"))
		return;
	snprintf(path, sizeof(path), "%s/store", dir);
	if (CHECK_RES(sys_res(chmod(dir, 0777)), 0, "a directory anyone may write, not sticky"))
		CHECK_REFUSED(path, size, true, -EPERM,
			      "a store in a directory others may write: -EPERM, saying why");
	if (CHECK_RES(sys_res(chmod(dir, 01777)), 0, "the same directory, sticky")) {
		const struct mem_store_config cfg = { .size = size, .path = path, .create = true };
		struct mem_store s;

		if (open_store(&s, &cfg, "a store in a sticky directory (as /dev/shm) is taken") == 0)
			mem_store_close(&s);
		unlink(path);
	}
	if (geteuid() == 0 && chmod(dir, 0755) == 0 && chown(dir, 65534, 65534) == 0)
		CHECK_REFUSED(path, size, true, -EPERM,
			      "a store in another user's directory: -EPERM, saying why");
	unlink(path);
	rmdir(dir);
}

/*
 * A terminal given as a store path is refused, and never becomes the
 * server's controlling terminal (a daemon has none, and opening a tty
 * without O_NOCTTY would make it its own).
 */
static void test_store_not_a_tty(void)
{
	int status, master = posix_openpt(O_RDWR | O_NOCTTY);
	const char *pts = NULL;
	pid_t pid;

	if (master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0)
		pts = ptsname(master);
	if (!pts) {
		skip("a terminal as a store", "no pseudo-terminal here");
		if (master >= 0)
			close(master);
		return;
	}
	pid = fork();
	if (pid == 0) {
		const struct mem_store_config cfg = { .size = MiB, .path = pts };
		struct mem_store s;
		int saved, ret, tty;

		setsid();	/* a session without a terminal, as a daemon's */
		saved = capture_stderr();
		ret = mem_store_open(&s, &cfg);
		captured_lines(saved);
		tty = open("/dev/tty", O_RDWR | O_CLOEXEC);
		_exit(ret == -EPERM && tty < 0 ? 0 : 1 + (tty >= 0));
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "a terminal as a store is refused and does not become the server's",
	      "%s", WIFEXITED(status) && WEXITSTATUS(status) == 2 ?
	      "the server got a controlling terminal" : "it was not refused");
	close(master);
}

/*
 * pinned_unlink() removes the file in the directory it pinned, even when
 * the path to that directory now leads somewhere else, and only while the
 * name still stands for the file it remembered.
 */
static void test_pinned_unlink(void)
{
	char dir[64], a[96], b[96], evil[96], f[128], fb[128], fe[128];
	struct pinned_file pf;
	int fd;

	if (!CHECK_RES(make_store_dir(dir, sizeof(dir)), 0, "a directory for pinned files"))
		return;
	snprintf(a, sizeof(a), "%s/a", dir);
	snprintf(b, sizeof(b), "%s/b", dir);
	snprintf(evil, sizeof(evil), "%s/evil", dir);
	snprintf(f, sizeof(f), "%s/x", a);
	snprintf(fb, sizeof(fb), "%s/x", b);
	snprintf(fe, sizeof(fe), "%s/x", evil);
	mkdir(a, 0700);
	mkdir(evil, 0700);
	make_file(fe, 4096, 0600);
	fd = open(f, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (!CHECK(fd >= 0 && pinned_open(&pf, f) == 0, "pin a file's directory", "%s",
		   strerror(errno)))
		goto out;
	pinned_set_identity(&pf, fd);
	close(fd);
	/* The directory is swapped for a link elsewhere, with an "x" in it. */
	rename(a, b);
	symlink(evil, a);
	CHECK(pinned_unlink(&pf) && !exists(fb) && exists(fe),
	      "pinned_unlink removes the file in the pinned directory, not where the path now leads",
	      "%s: %s, %s: %s", fb, exists(fb) ? "still there" : "gone", fe,
	      exists(fe) ? "still there" : "gone");
	make_file(fb, 4096, 0600);	/* another file under the name */
	CHECK(!pinned_unlink(&pf) && exists(fb), "pinned_unlink leaves another file of that name",
	      "it removed it");
	pinned_close(&pf);
out:
	unlink(fb);
	unlink(fe);
	unlink(a);
	rmdir(b);
	rmdir(evil);
	rmdir(dir);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	keep_sanitizer_reports();
	test_open_anonymous();
	test_huge_pages();
	test_unwritten_reads_zero();
	test_copy_in_pieces();
	test_write_read_back();
	test_zero_ranges();
	test_zero_gives_memory_back();
	test_zero_unwritten();
	test_out_of_range();
	test_backend_ops();
	/* The maps, the reserve and direct, by huge pages and by pages. */
	for (int small = 0; small <= 1; small++) {
		check_prefix = small ? "small pages: " : "";
		test_prepare_write(small);
		test_reserve(small);
		test_direct_anonymous(small);
	}
	check_prefix = "";
	test_geometry();
	test_resize();
	test_resize_stragglers(false);
	test_resize_stragglers(true);
	test_lazy_allocation();
	test_prealloc();
	test_prealloc_refused();
	test_file_store();
	test_file_reads();
	test_file_reopen();
	test_file_odd_size();
	test_store_file_refusals();
	test_store_fit();
	test_store_lock();
	test_store_identity();
	test_store_dir_trust();
	test_store_not_a_tty();
	test_pinned_unlink();
	test_tmpfs_full();
	test_machine_memory();

	return check_summary("mem_test");
}
