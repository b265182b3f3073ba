/*
 * mem_backend.c - the RAM store.
 *
 * Read uring.c and the ublk files first.  This file is what makes the
 * device a RAM disk: a struct backend_ops (backend.h) whose callbacks copy
 * to and from one big mapping.  Its `direct` callback hands out addresses
 * inside that mapping, which lets the kernel copy request data straight
 * into RAM (see the copy modes in ublk_io.c).  It depends on nothing of
 * the protocol: backend.h, log.h and pinned.h are all it includes.
 *
 * A RAM disk must also behave on the day memory runs out.  The kernel
 * copies a WRITE into our mapping with the server's page tables; if the
 * page it needs cannot be allocated, the driver cannot fail the request
 * and retries it for ever, and the machine's OOM killer may pick this
 * server - taking every byte of the device with it.  So the store
 * allocates before the copy (mem_store_prepare_write): it keeps a map of
 * what is allocated, and allocates a missing part only while the machine
 * keeps more than a reserve of memory available; otherwise the write
 * fails with ENOSPC and everything already written stays readable.
 */
#define _GNU_SOURCE
#include "mem_backend.h"
#include "log.h"
#include "memory.h"
#include "pinned.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23	/* Linux 5.14 */
#endif


/*
 * The store's size now.  Queue threads read it while the main thread may
 * change it (mem_store_resize): an atomic load, so never torn.
 */
static inline uint64_t size_now(const struct mem_store *s)
{
	return __atomic_load_n(&s->size, __ATOMIC_ACQUIRE);
}

/* ---- the allocation map ---- */

static inline bool map_test(_Atomic uint64_t *map, uint64_t u)
{
	/* Acquire pairs with map_set(): the memory is allocated before. */
	return atomic_load_explicit(&map[u / 64], memory_order_acquire) >> (u % 64) & 1;
}

static inline void map_set(_Atomic uint64_t *map, uint64_t u)
{
	atomic_fetch_or_explicit(&map[u / 64], 1ULL << (u % 64), memory_order_release);
}

static inline void map_clear(_Atomic uint64_t *map, uint64_t u)
{
	atomic_fetch_and_explicit(&map[u / 64], ~(1ULL << (u % 64)), memory_order_relaxed);
}

/* Is every unit of [off, off + len) set in @map?  (@len > 0) */
static bool map_all(_Atomic uint64_t *map, const struct mem_store *s,
		    uint64_t off, uint64_t len)
{
	for (uint64_t u = off >> s->unit_shift; u <= (off + len - 1) >> s->unit_shift; u++)
		if (!map_test(map, u))
			return false;
	return true;
}

/* Is no unit of [off, off + len) set in either map? */
static bool map_none(const struct mem_store *s, uint64_t off, uint64_t len)
{
	for (uint64_t u = off >> s->unit_shift; u <= (off + len - 1) >> s->unit_shift; u++)
		if (map_test(s->backed, u) || map_test(s->used, u))
			return false;
	return true;
}

/* Bytes [start, end) of the store that unit @u covers. */
static void unit_span(const struct mem_store *s, uint64_t u, uint64_t *start,
		      uint64_t *end)
{
	*start = u << s->unit_shift;
	*end = *start + s->unit;
	if (*end > s->map_len)
		*end = s->map_len;
}

/*
 * Allocate units [first, last] of the store now, in this thread, so that
 * nothing is allocated when the kernel copies into them.  Returns 0 or
 * -ENOSPC (tmpfs full, or memory could not be had).
 */
static int populate(struct mem_store *s, uint64_t first, uint64_t last)
{
	uint64_t start, end, unused;
	char why[160];
	int err = 0;

	unit_span(s, first, &start, &unused);
	unit_span(s, last, &unused, &end);
	if (s->fd >= 0) {
		/*
		 * tmpfs allocates its pages here and says ENOSPC when full.
		 * Not past the device's end: that would grow the file.
		 */
		if (end > size_now(s))
			end = size_now(s);
		if (fallocate(s->fd, 0, (off_t)start, (off_t)(end - start)) < 0)
			err = errno;
	} else if (madvise(s->base + start, end - start, MADV_POPULATE_WRITE) < 0) {
		err = errno;
		if (err == EINVAL) {	/* before Linux 5.14: touch each page */
			err = 0;
			/* Adding zero atomically is a write that changes nothing. */
			for (uint64_t p = start; p < end; p += s->page)
				__atomic_fetch_add(s->base + p, 0, __ATOMIC_RELAXED);
		}
	}
	if (!err)
		return 0;
	snprintf(why, sizeof(why), "cannot allocate the store's memory: %s%s",
		 strerror(err), s->named && err == ENOSPC ?
		 " (its file system is full)" : "");
	mem_budget_refused(&s->budget, why);
	return -ENOSPC;
}

int mem_store_prepare_write(void *data, uint64_t off, uint32_t len)
{
	struct mem_store *s = data;
	uint64_t first, last, u, run, size = size_now(s);
	int ret;

	if (off > size || len > size - off)
		return -EIO;
	if (!len || map_all(s->backed, s, off, len))
		return 0;	/* the common case: written before */
	first = off >> s->unit_shift;
	last = (off + len - 1) >> s->unit_shift;
	/* Allocate each run of missing units with one call. */
	for (u = first; u <= last; u += run) {
		run = 1;
		if (map_test(s->backed, u))
			continue;
		while (u + run <= last && !map_test(s->backed, u + run))
			run++;
		if (!mem_budget_take(&s->budget, run << s->unit_shift))
			return -ENOSPC;
		ret = populate(s, u, u + run - 1);
		if (ret < 0)
			return ret;
		for (uint64_t i = u; i < u + run; i++) {
			map_set(s->used, i);
			map_set(s->backed, i);
		}
	}
	mem_budget_resumed(&s->budget);
	return 0;
}

/* ---- setting up the store ---- */

/* Is there room for @need more bytes on the file system of @fd? */
static uint64_t fs_free_bytes(int fd)
{
	struct statvfs v;

	if (fstatvfs(fd, &v) < 0 || v.f_blocks == 0)
		return UINT64_MAX;	/* unknown, or a tmpfs without a limit */
	return (uint64_t)v.f_bavail * v.f_frsize;
}

/*
 * A reused store may be larger than its device: a resize that did not
 * finish (growing makes the file larger first; shrinking leaves it so
 * until no request can reach the bytes cut off).  Those bytes are beyond
 * the device's end, where nothing can read them: cut them off.  A store
 * smaller than its device has lost data; that is the user's call.
 */
static int fit_store(struct mem_store *s, const char *path, uint64_t file_size)
{
	if (file_size < s->size) {
		log_err("%s: the store is %llu bytes but the device is %llu: its last %llu bytes are missing; to serve the device with zeros there: truncate -s %llu %s",
			 path, (unsigned long long)file_size, (unsigned long long)s->size,
			 (unsigned long long)(s->size - file_size),
			 (unsigned long long)s->size, path);
		return -EINVAL;
	}
	if (file_size == s->size)
		return 0;
	if (ftruncate(s->fd, (off_t)s->size) < 0) {
		log_err("%s: cannot cut the store to the device's %llu bytes: %s", path,
			 (unsigned long long)s->size, strerror(errno));
		return -errno;
	}
	log_err("%s: the store was %llu bytes, the device %llu (a resize did not finish): cut to the device's size",
		 path, (unsigned long long)file_size, (unsigned long long)s->size);
	return 0;
}

/*
 * Open (or create) the store file, a private file in a directory that may
 * be shared (pinned.h), lock it, check it is the one recorded, and cut it
 * to the device's size.
 */
static int open_store_file(struct mem_store *s, const struct mem_store_config *cfg)
{
	struct stat st;

	s->fd = pinned_open_store(&s->dir, cfg->path, cfg->create, cfg->expect_dev,
				  cfg->expect_ino);
	if (s->fd < 0)
		return s->fd;
	s->created = cfg->create;
	s->named = true;
	s->st_dev = s->dir.dev;
	s->st_ino = s->dir.ino;
	if (cfg->create)
		return 0;
	if (fstat(s->fd, &st) < 0) {
		log_err("%s: %s", cfg->path, strerror(errno));
		return -errno;
	}
	return fit_store(s, cfg->path, (uint64_t)st.st_size);
}

/*
 * Check the store's file system has room: a new store must fit whole;
 * for a reused one, say so when the part not yet allocated does not.
 */
static int check_room(struct mem_store *s, const struct mem_store_config *cfg)
{
	uint64_t free_bytes = fs_free_bytes(s->fd);
	struct stat st;
	uint64_t need = s->size;

	if (!cfg->create && fstat(s->fd, &st) == 0) {
		uint64_t have = (uint64_t)st.st_blocks * 512;

		need = have < s->size ? s->size - have : 0;
		if (need > free_bytes)
			log_err("warning: %s: %llu MiB of the device are not allocated yet but its file system has %llu MiB free: writes there fail with ENOSPC when it fills",
				 cfg->path, (unsigned long long)(need >> 20),
				 (unsigned long long)(free_bytes >> 20));
		return 0;
	}
	if (need > free_bytes) {
		log_err("%s: its file system has %llu MiB free, too little for a %llu MiB store (a tmpfs grows with: mount -o remount,size=SIZE DIR)",
			 cfg->path, (unsigned long long)(free_bytes >> 20),
			 (unsigned long long)(s->size >> 20));
		return -ENOSPC;
	}
	return 0;
}

/*
 * Map the store file s->fd, as much as the store may grow to: beyond the
 * file's end the mapping is never touched, and growing then moves nothing.
 * Returns false with errno set on failure.
 */
static bool map_fd(struct mem_store *s)
{
	void *p = mmap(NULL, s->reserved_len, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);

	if (p == MAP_FAILED)
		return false;
	s->base = p;
	return true;
}

/* Map a file of @size bytes on tmpfs (the recoverable store). */
static int map_file(struct mem_store *s, const struct mem_store_config *cfg)
{
	int err;

	err = open_store_file(s, cfg);
	if (err)
		return err;
	err = check_room(s, cfg);
	if (err)
		return err;
	if ((cfg->create && ftruncate(s->fd, (off_t)s->size) < 0) || !map_fd(s)) {
		err = errno;
		log_err("%s: %s", cfg->path, strerror(err));
		return -err;
	}
	return 0;
}

/*
 * The zero_copy store without a path: an unnamed file on the kernel's
 * internal tmpfs (memfd), mapped like the recoverable store's file.  It
 * is gone when the server exits, as anonymous memory would be.
 */
static int map_memfd(struct mem_store *s)
{
	int err;

	s->fd = memfd_create("ublk-mem", MFD_CLOEXEC);
	if (s->fd < 0 || ftruncate(s->fd, (off_t)s->size) < 0 || !map_fd(s)) {
		err = errno;
		log_err("cannot make the store's memory file: %s", strerror(err));
		return -err;
	}
	return 0;
}

/*
 * The file once more, for io_uring.  io_uring runs a read or write at
 * once, in the submitting thread, only when the file promises not to
 * block; a tmpfs file makes no such promise, so every operation would go
 * to a worker thread and back.  O_NONBLOCK makes the promise for it:
 * tmpfs reads and writes never wait for a device, only, rarely, for a
 * page coming back from swap.  Buffered writes go to a worker even so
 * (tmpfs cannot start one asynchronously), unless the file is open
 * O_DIRECT, which tmpfs accepts and serves from its page cache as
 * always: the same pages the mapping shows.  A memfd cannot be switched
 * to O_DIRECT, so the file is opened anew through /proc/self/fd, which
 * names this very file whatever happens to its path.
 */
static int open_io_fd(struct mem_store *s)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", s->fd);
	s->io_fd = open(path, O_RDWR | O_CLOEXEC | O_DIRECT | O_NONBLOCK);
	if (s->io_fd >= 0)
		return 0;
	log_err("warning: %s: %s (is /proc mounted?): io_uring serves the store through worker threads, more slowly",
		 path, strerror(errno));
	s->io_fd = fcntl(s->fd, F_DUPFD_CLOEXEC, 0);
	if (s->io_fd >= 0)
		return 0;
	log_err("cannot duplicate the store's file: %s", strerror(errno));
	return -errno;
}

uint64_t mem_store_memory(const struct mem_store *s)
{
	struct stat st;
	uint64_t units = 0, bytes;

	if (s->fd >= 0)
		return fstat(s->fd, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
	for (uint64_t w = 0; w < (s->nr_units + 63) / 64; w++)
		units += (uint64_t)__builtin_popcountll(atomic_load_explicit(&s->backed[w],
									  memory_order_relaxed));
	bytes = units << s->unit_shift;
	return bytes < s->map_len ? bytes : s->map_len;
}

int mem_store_file(void *data)
{
	return ((struct mem_store *)data)->io_fd;
}

/*
 * Reserve the anonymous store.  MAP_NORESERVE skips the overcommit charge,
 * and memory is allocated on first write.  With @huge the mapping starts
 * on a huge page boundary and is advised MADV_HUGEPAGE: filling 64 MiB then
 * takes 32 page faults instead of 16384, and the kernel's copy into the
 * store walks one page-table level less.  Under TCG a first write still
 * ran at an eighth of the speed of a rewrite with either page size (90-112
 * MiB/s with huge pages, 82-107 without, 680-910 rewriting): zeroing the
 * new memory is what costs there, and --prealloc pays it up front.  The
 * price of huge pages is granularity: one 4 KiB write holds 2 MiB (never
 * more than the device's size in all); --small-pages says
 * MADV_NOHUGEPAGE instead.
 */
static int map_anonymous(struct mem_store *s, uint64_t hpage)
{
	const size_t align = hpage ? hpage : s->page;
	char *p, *start, *end;

	/*
	 * Reserve address space for the largest size the store may grow to
	 * (it costs no memory), over-reserved by the alignment; then trim
	 * both ends.
	 */
	p = mmap(NULL, s->reserved_len + align, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		int err = errno;

		log_err("cannot reserve %llu bytes of address space: %s",
			 (unsigned long long)s->reserved_len, strerror(err));
		return -err;
	}
	start = (char *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
	end = start + s->reserved_len;
	if (start > p)
		munmap(p, (size_t)(start - p));
	munmap(end, (size_t)(p + s->reserved_len + align - end));
	s->base = start;
	/*
	 * Say which either way: a kernel whose THP mode is "always" would
	 * give huge pages unasked.  EINVAL means a kernel without THP.
	 */
	s->huge = madvise(s->base, s->reserved_len, hpage ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) == 0 &&
		  hpage;
	return 0;
}

/* The allocation maps, and the zeros reads of untouched parts come from. */
static int make_maps(struct mem_store *s)
{
	size_t words = (size_t)((s->nr_units + 63) / 64);

	s->backed = calloc(words, sizeof(*s->backed));
	s->used = calloc(words, sizeof(*s->used));
	/* Never written, so every page of it is the kernel's zero page. */
	s->zeros_len = STORE_ZEROS_BYTES;
	s->zeros = mmap(NULL, s->zeros_len, PROT_READ,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (s->zeros == MAP_FAILED)
		s->zeros = NULL;
	if (!s->backed || !s->used || !s->zeros) {
		log_err("cannot allocate the store's allocation map");
		return -ENOMEM;
	}
	return 0;
}

/*
 * A reused store file already holds data: mark what is allocated, found
 * with SEEK_DATA / SEEK_HOLE, so reads of its holes still touch nothing.
 */
static void map_existing_data(struct mem_store *s)
{
	off_t data = 0, hole;

	for (;;) {
		data = lseek(s->fd, data, SEEK_DATA);
		if (data < 0)
			return;	/* ENXIO: no more data */
		hole = lseek(s->fd, data, SEEK_HOLE);
		if (hole < 0)
			hole = (off_t)s->size;
		for (uint64_t u = (uint64_t)data >> s->unit_shift;
		     u < s->nr_units && (u << s->unit_shift) < (uint64_t)hole; u++) {
			uint64_t start, end;

			unit_span(s, u, &start, &end);
			map_set(s->used, u);
			if (start >= (uint64_t)data && end <= (uint64_t)hole)
				map_set(s->backed, u);
		}
		data = hole;
	}
}

/*
 * Memory an ordinary user may not lock (RLIMIT_MEMLOCK; root is not
 * bound by it): allocate it all the same, so that serving never
 * allocates, and say once that it may be swapped out.
 */
static int populate_unlocked(struct mem_store *s, uint64_t from, uint64_t len, int err)
{
	static bool said;
	struct rlimit rl;

	if (geteuid() == 0 || (err != ENOMEM && err != EPERM && err != EAGAIN) ||
	    getrlimit(RLIMIT_MEMLOCK, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return -err;
	if (madvise(s->base + from, len, MADV_POPULATE_WRITE) < 0)
		return -errno;
	if (!said)
		log_err("warning: --prealloc: %llu MiB allocated but not locked: this user may lock %llu KiB (RLIMIT_MEMLOCK: ulimit -l, LimitMEMLOCK=, memlock in limits.conf), so it may be swapped out",
			(unsigned long long)(len >> 20), (unsigned long long)(rl.rlim_cur >> 10));
	said = true;
	return 0;
}

/*
 * --prealloc: allocate and pin bytes [@from, @to) of the store now, so
 * that serving never allocates.  Refused up front when the machine cannot
 * spare it, rather than letting mlock() wake the OOM killer.
 */
static int lock_range(struct mem_store *s, uint64_t from, uint64_t to)
{
	uint64_t avail = mem_available_now(), len = to - from;
	int err;

	if (avail && len > mem_beyond_reserve(avail, s->budget.reserve)) {
		log_err("cannot allocate and lock %llu MiB of RAM for the store: %llu MiB is available and %llu MiB must stay in reserve",
			 (unsigned long long)(len >> 20),
			 (unsigned long long)(avail >> 20),
			 (unsigned long long)(s->budget.reserve >> 20));
		return -ENOMEM;
	}
	if (s->fd >= 0 && fallocate(s->fd, 0, (off_t)from, (off_t)len) < 0) {
		err = errno;
		log_err("cannot allocate %llu MiB for the store file: %s",
			 (unsigned long long)(len >> 20), strerror(err));
		return -err;
	}
	if (mlock(s->base + from, len) < 0 &&
	    (err = populate_unlocked(s, from, len, errno)) < 0) {
		log_err("cannot allocate and lock %llu bytes of RAM: %s",
			 (unsigned long long)len, strerror(-err));
		return err;
	}
	s->locked = true;	/* allocated for good, if not always locked */
	for (uint64_t u = from >> s->unit_shift; u < s->nr_units &&
	     (u << s->unit_shift) < to; u++)
		map_set(s->backed, u);
	return 0;
}

static size_t round_to(uint64_t v, uint64_t to)
{
	return (size_t)((v + to - 1) / to * to);
}

void mem_store_geometry(uint64_t size, uint64_t max_size, unsigned page,
			uint64_t hpage, struct mem_geometry *g)
{
	if (max_size < size)
		max_size = size;
	g->map_len = round_to(size, page);
	g->reserved_len = round_to(max_size, page);
	/* One bit per huge page when huge pages are used, else per page. */
	g->align = hpage ? (size_t)hpage : page;
	g->unit = g->align;
	g->unit_shift = (unsigned)__builtin_ctzll(g->unit);
	g->nr_units = (max_size + g->unit - 1) >> g->unit_shift;
}

/* Apply a geometry to the store. */
static void set_geometry(struct mem_store *s, const struct mem_geometry *g)
{
	s->map_len = g->map_len;
	s->reserved_len = g->reserved_len;
	s->unit = g->unit;
	s->unit_shift = g->unit_shift;
	s->nr_units = g->nr_units;
}

int mem_store_open(struct mem_store *s, const struct mem_store_config *cfg)
{
	struct mem_geometry g;
	uint64_t hpage;
	int ret;

	memset(s, 0, sizeof(*s));
	s->size = cfg->size;
	s->max_size = cfg->max_size > cfg->size ? cfg->max_size : cfg->size;
	s->fd = -1;
	s->io_fd = -1;
	s->dir.dir_fd = -1;
	s->page = (unsigned)sysconf(_SC_PAGESIZE);
	mem_budget_init(&s->budget, cfg->reserve, cfg->path != NULL, false);
	/* A tmpfs store's page size is its tmpfs's: pages, here. */
	hpage = cfg->path || cfg->file_io || cfg->small_pages ? 0 : mem_huge_page_size();
	mem_store_geometry(s->size, s->max_size, s->page, hpage, &g);
	set_geometry(s, &g);
	if (cfg->path)
		ret = map_file(s, cfg);
	else if (cfg->file_io)
		ret = map_memfd(s);
	else
		ret = map_anonymous(s, hpage);
	if (ret == 0 && cfg->file_io)
		ret = open_io_fd(s);
	if (ret == 0 && !cfg->path && !cfg->file_io && !s->huge && hpage) {
		/* The kernel took no advice: track pages, not huge pages. */
		mem_store_geometry(s->size, s->max_size, s->page, 0, &g);
		set_geometry(s, &g);
	}
	if (ret == 0)
		ret = make_maps(s);
	if (ret == 0 && cfg->path && !cfg->create)
		map_existing_data(s);
	if (ret == 0 && cfg->prealloc)
		ret = lock_range(s, 0, s->size);
	if (ret < 0) {
		/* The file is ours to remove: O_EXCL created it just now. */
		if (s->created)
			pinned_unlink(&s->dir);
		mem_store_close(s);
	}
	pinned_close(&s->dir);
	return ret;
}

void mem_store_close(struct mem_store *s)
{
	if (s->base)
		munmap(s->base, s->reserved_len);
	if (s->zeros)
		munmap((void *)s->zeros, s->zeros_len);
	if (s->fd >= 0)
		close(s->fd);
	if (s->io_fd >= 0)
		close(s->io_fd);
	mem_budget_close(&s->budget);
	free(s->backed);
	free(s->used);
	s->backed = s->used = NULL;
	s->zeros = NULL;
	s->base = NULL;
	s->fd = s->io_fd = -1;
}

/*
 * Make bytes [@from, @to) of the store zeros and give their memory back.
 * A shrink does it to what it cuts off, and a grow to what it adds again:
 * the kernel does not wait for the requests already on their way when the
 * device shrank (see shrink()), and one of them may still have written
 * there after the shrink.
 */
static int clear_range(struct mem_store *s, uint64_t from, uint64_t to)
{
	uint64_t start = round_to(from, s->page), end = round_to(to, s->page);

	if (from >= to)
		return 0;
	if (s->fd >= 0) {
		/* tmpfs zeroes the ragged ends itself and frees whole pages. */
		if (fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)from, (off_t)(to - from)) < 0)
			return -errno;
		return 0;
	}
	mem_zero(s->base + from, (start < to ? start : to) - from);
	if (start >= end)
		return 0;
	if (s->locked)
		munlock(s->base + start, end - start);
	return madvise(s->base + start, end - start, MADV_DONTNEED) < 0 ? -errno : 0;
}

/* The file's size now, or 0 for anonymous memory. */
static uint64_t file_size(const struct mem_store *s)
{
	struct stat st;

	return s->fd >= 0 && fstat(s->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/*
 * Grow the store to @new_size.  What is added reads as zeros; a store
 * file grows first, so the kernel never hears of a size the store does
 * not have.
 */
static int grow(struct mem_store *s, uint64_t old, uint64_t new_size)
{
	uint64_t had = file_size(s);
	int ret;

	if (s->fd >= 0 && new_size - old > fs_free_bytes(s->fd)) {
		log_err("cannot grow the store to %llu MiB: its file system has %llu MiB free",
			 (unsigned long long)(new_size >> 20),
			 (unsigned long long)(fs_free_bytes(s->fd) >> 20));
		return -ENOSPC;
	}
	ret = clear_range(s, old, new_size);
	if (ret == 0 && s->fd >= 0 && had < new_size && ftruncate(s->fd, (off_t)new_size) < 0)
		ret = -errno;
	if (ret < 0) {
		log_err("cannot grow the store: %s", strerror(-ret));
		return ret;
	}
	if (s->locked) {
		ret = lock_range(s, old, new_size);
		if (ret < 0)
			return ret;	/* the file may stay larger: see fit_store() */
	}
	s->map_len = round_to(new_size, s->page);
	__atomic_store_n(&s->size, new_size, __ATOMIC_RELEASE);
	return 0;
}

/*
 * Shrink the store to @new_size: forget everything from there on, so that
 * growing again later adds zeros, and give its memory back.  The kernel's
 * UPDATE_SIZE does not wait for requests already past its bounds check,
 * so one may still reach the store beyond the new end after this: it must
 * find memory there, never a hole in the mapping.  So the memory is given
 * back but the mapping, and a store file's size, stay as they were (the
 * file is cut to size by the next recovery, see fit_store()).  New
 * requests beyond the end fail from the moment the size is stored.
 */
static int shrink(struct mem_store *s, uint64_t old, uint64_t new_size)
{
	int ret;

	__atomic_store_n(&s->size, new_size, __ATOMIC_RELEASE);
	ret = clear_range(s, new_size, old);
	if (ret < 0)
		log_err("cannot give the memory beyond the new end back: %s", strerror(-ret));
	for (uint64_t u = new_size >> s->unit_shift; u < s->nr_units; u++) {
		map_clear(s->backed, u);
		if ((u << s->unit_shift) >= new_size)
			map_clear(s->used, u);	/* not the unit at the new end */
	}
	s->map_len = round_to(new_size, s->page);
	mem_budget_returned(&s->budget);
	return 0;
}

int mem_store_resize(struct mem_store *s, uint64_t new_size)
{
	uint64_t old = size_now(s);

	if (new_size > s->max_size) {
		log_err("cannot grow the store to %llu MiB: it was set up for at most %llu MiB (this machine's RAM + swap)",
			 (unsigned long long)(new_size >> 20),
			 (unsigned long long)(s->max_size >> 20));
		return -EFBIG;
	}
	if (new_size == old)
		return 0;
	return new_size > old ? grow(s, old, new_size) : shrink(s, old, new_size);
}

/* ---- serving ---- */

int mem_store_read(void *data, void *buf, uint64_t off, uint32_t len)
{
	const struct mem_store *s = data;
	uint64_t size = size_now(s);

	if (off > size || len > size - off)
		return -EIO;
	if (!len)
		return 0;
	/*
	 * Touching a hole of a shared tmpfs mapping allocates a page; pread()
	 * of a hole reads zeros and allocates nothing.
	 */
	if (s->fd >= 0 && !map_all(s->backed, s, off, len)) {
		ssize_t n = pread(s->fd, buf, len, (off_t)off);

		return n == (ssize_t)len ? 0 : n < 0 ? -errno : -EIO;
	}
	mem_copy(buf, s->base + off, len);
	return 0;
}

int mem_store_write(void *data, const void *buf, uint64_t off, uint32_t len)
{
	struct mem_store *s = data;
	int ret = mem_store_prepare_write(s, off, len);

	if (ret < 0)
		return ret;
	mem_copy(s->base + off, buf, len);
	return 0;
}

/* Give whole pages [off, off + len) of the anonymous store back. */
static int release_pages(struct mem_store *s, uint64_t off, uint64_t len)
{
	if (madvise(s->base + off, len, MADV_DONTNEED) < 0)
		return -errno;
	mem_budget_returned(&s->budget);
	return 0;
}

/*
 * Zero part of one page of the anonymous store, allocating nothing that
 * is not there: a unit never written is zeros already, and in a unit
 * that is partly given back only this page is made to exist.
 */
static int zero_in_page(struct mem_store *s, uint64_t off, uint64_t len)
{
	uint64_t u = off >> s->unit_shift;
	uint64_t page = off / s->page * s->page;

	if (!len || !map_test(s->used, u))
		return 0;
	if (!map_test(s->backed, u) &&
	    madvise(s->base + page, s->page, MADV_POPULATE_WRITE) < 0 &&
	    errno != EINVAL)
		return -ENOSPC;
	mem_zero(s->base + off, len);
	return 0;
}

/* Zero [off, off + len) of the anonymous store: ragged ends by hand. */
static int zero_anonymous(struct mem_store *s, uint64_t off, uint64_t len)
{
	uint64_t page = s->page;
	uint64_t first = (off + page - 1) / page * page;	/* page-aligned */
	uint64_t last = (off + len) / page * page;
	int ret;

	if (first >= last)	/* no whole page inside */
		return zero_in_page(s, off, len);
	/* The partial pages at the ends keep their other bytes. */
	ret = zero_in_page(s, off, first - off);
	if (ret == 0)
		ret = zero_in_page(s, last, off + len - last);
	if (ret < 0)
		return ret;
	return release_pages(s, first, last - first);
}

/* Units inside [off, off + len) are empty again; ones partly in it, not whole. */
static void unmap_range(struct mem_store *s, uint64_t off, uint64_t len)
{
	for (uint64_t u = off >> s->unit_shift; u <= (off + len - 1) >> s->unit_shift; u++) {
		uint64_t start, end;

		unit_span(s, u, &start, &end);
		map_clear(s->backed, u);
		if (start >= off && (end <= off + len || off + len >= size_now(s)))
			map_clear(s->used, u);
	}
}

int mem_store_zero(void *data, uint64_t off, uint64_t len)
{
	struct mem_store *s = data;
	uint64_t size = size_now(s);
	int ret;

	if (off > size || len > size - off)
		return -EIO;
	if (!len)
		return 0;
	if (s->locked) {
		/* Locked memory stays allocated: just clear it. */
		mem_zero(s->base + off, len);
		return 0;
	}
	if (s->fd >= 0) {
		/* tmpfs zeroes the ragged ends itself and frees whole pages. */
		if (fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)off, (off_t)len) < 0)
			return -errno;
		mem_budget_returned(&s->budget);
		ret = 0;
	} else {
		ret = zero_anonymous(s, off, len);
	}
	if (ret == 0)
		unmap_range(s, off, len);
	return ret;
}

/*
 * A zone's RESET: [off, off + len) will be written before it is read.
 * Whole units of the anonymous store go back with MADV_FREE: the kernel
 * takes their pages when it runs short of memory, without writing them
 * anywhere, and a zone written again before then finds its memory in
 * place, without a page fault and the kernel clearing each page (which
 * cost the sequential rewrite of a zone more than half its time in the
 * test VM).  The units are marked unused, so the next write asks the
 * budget and populates them as usual (making them the kernel's no longer
 * to take), and reads are served as from unwritten memory.  Anything
 * else (ragged ends, locked memory, a store file) is discarded.
 */
static int mem_store_forget(void *data, uint64_t off, uint64_t len)
{
	struct mem_store *s = data;
	uint64_t first = (off + s->unit - 1) / s->unit * s->unit;
	uint64_t last = (off + len) / s->unit * s->unit;
	uint64_t size = size_now(s);
	int ret;

	if (off > size || len > size - off)
		return -EIO;
	if (s->fd >= 0 || s->locked || first >= last)
		return mem_store_zero(s, off, len);
	ret = mem_store_zero(s, off, first - off);
	if (ret == 0)
		ret = mem_store_zero(s, last, off + len - last);
	if (ret < 0)
		return ret;
	if (madvise(s->base + first, last - first, MADV_FREE) < 0)
		return mem_store_zero(s, first, last - first);	/* before Linux 4.5 */
	unmap_range(s, first, last - first);
	mem_budget_returned(&s->budget);
	return 0;
}

/*
 * The kernel copies straight to or from here.  A write was prepared
 * first.  A read is served in place where that touches nothing new:
 * allocated parts, and untouched ones through the shared zeros; a tmpfs
 * store's partly allocated parts go through mem_store_read() instead.
 */
static void *mem_direct(void *data, uint64_t off, uint32_t len, bool for_write)
{
	const struct mem_store *s = data;
	uint64_t size = size_now(s);

	if (off > size || len > size - off || !len)
		return NULL;
	if (for_write || map_all(s->backed, s, off, len))
		return s->base + off;
	if (len <= s->zeros_len && map_none(s, off, len))
		return (void *)s->zeros;
	return s->fd >= 0 ? NULL : s->base + off;
}

const struct backend_ops mem_backend_ops = {
	.name = "mem",
	.read = mem_store_read,
	.write = mem_store_write,
	.discard = mem_store_zero,	/* forgotten data reads as zeros */
	.write_zeroes = mem_store_zero,
	.forget = mem_store_forget,
	.prepare_write = mem_store_prepare_write,
	.direct = mem_direct,
	.file = mem_store_file,
};
