/*
 * memory.c - the machine's memory, and a store's budget of it: see
 * memory.h.
 */
#define _GNU_SOURCE
#include "memory.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MiB			(1ULL << 20)
#define DEFAULT_HUGE_PAGE	(2ULL << 20)	/* x86-64's, when sysfs says nothing */
#define THP_DIR			"/sys/kernel/mm/transparent_hugepage"
/*
 * How often the free memory is read again while there is plenty, and how
 * close to the reserve it is read before every allocation.
 */
#define AVAIL_REFRESH_NS	(50 * 1000000LL)
#define AVAIL_MARGIN		(64 * MiB)

/* ---- what the machine has ---- */

/* Read one "Name: N kB" line of /proc/meminfo text, in bytes (0 if absent). */
static uint64_t meminfo_field(const char *text, const char *name)
{
	const char *p = strstr(text, name);
	unsigned long long kb;

	if (!p || sscanf(p + strlen(name), " %llu kB", &kb) != 1)
		return 0;
	return (uint64_t)kb * 1024;
}

/* /proc/meminfo from an open descriptor, NUL-terminated; 0 or -errno. */
static int read_meminfo(int fd, char *buf, size_t len)
{
	ssize_t n = pread(fd, buf, len - 1, 0);

	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	buf[n] = '\0';
	return 0;
}

/* Field @name of /proc/meminfo now, plus field @also if given; 0 if unknown. */
static uint64_t meminfo_now(const char *name, const char *also)
{
	char buf[4096];
	uint64_t v = 0;
	int fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	if (read_meminfo(fd, buf, sizeof(buf)) == 0)
		v = meminfo_field(buf, name) + (also ? meminfo_field(buf, also) : 0);
	close(fd);
	return v;
}

uint64_t mem_total_bytes(void)
{
	uint64_t total = meminfo_now("MemTotal:", "SwapTotal:");

	return total ? total : UINT64_MAX;	/* unknown: do not refuse */
}

uint64_t mem_default_reserve(void)
{
	uint64_t r = meminfo_now("MemTotal:", NULL) / 32;

	return r < 64 * MiB ? 64 * MiB : r > 1024 * MiB ? 1024 * MiB : r;
}

uint64_t mem_available_now(void)
{
	return meminfo_now("MemAvailable:", NULL);
}

uint64_t mem_spare_now(void)
{
	return meminfo_now("MemAvailable:", "SwapFree:");
}

/* A small sysfs file's first line, or "" when it cannot be read. */
static void read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");

	buf[0] = '\0';
	if (f) {
		if (!fgets(buf, (int)len, f))
			buf[0] = '\0';
		fclose(f);
	}
}

uint64_t mem_huge_page_size(void)
{
	char line[128];
	unsigned long long v;

	/* "always [madvise] never": the bracket marks the mode in force. */
	read_line(THP_DIR "/enabled", line, sizeof(line));
	if (!line[0] || strstr(line, "[never]"))
		return 0;
	read_line(THP_DIR "/hpage_pmd_size", line, sizeof(line));
	return sscanf(line, "%llu", &v) == 1 && v ? v : DEFAULT_HUGE_PAGE;
}

/* ---- a store's budget ---- */

static int64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

void mem_budget_init(struct mem_budget *b, uint64_t reserve, bool file, bool locked)
{
	memset(b, 0, sizeof(*b));
	b->reserve = reserve;
	b->file = file;
	b->locked = locked;
	pthread_mutex_init(&b->lock, NULL);
	atomic_init(&b->starved, false);
	atomic_init(&b->noted, false);
	b->meminfo_fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
}

void mem_budget_close(struct mem_budget *b)
{
	if (b->meminfo_fd >= 0)
		close(b->meminfo_fd);
	b->meminfo_fd = -1;
}

/*
 * Memory a new allocation may use: MemAvailable (free memory plus what
 * the kernel can reclaim) and free swap, which a RAM disk may spill to,
 * unless it is locked.
 */
static int read_available(struct mem_budget *b, uint64_t *avail)
{
	char buf[4096];
	int ret = read_meminfo(b->meminfo_fd, buf, sizeof(buf));

	if (ret < 0)
		return ret;
	*avail = meminfo_field(buf, "MemAvailable:");
	if (!b->locked)
		*avail += meminfo_field(buf, "SwapFree:");
	return 0;
}

/* Say @text now, or, for a locked store, keep it for mem_budget_say(). */
static void tell(struct mem_budget *b, const char *text)
{
	if (!b->locked) {
		log_err("%s", text);
		return;
	}
	pthread_mutex_lock(&b->lock);
	snprintf(b->note, sizeof(b->note), "%s", text);
	atomic_store(&b->noted, true);
	pthread_mutex_unlock(&b->lock);
}

void mem_budget_say(struct mem_budget *b)
{
	char text[sizeof(b->note)];

	if (!atomic_load(&b->noted))
		return;
	pthread_mutex_lock(&b->lock);
	snprintf(text, sizeof(text), "%s", b->note);
	atomic_store(&b->noted, false);
	pthread_mutex_unlock(&b->lock);
	log_err("%s", text);
}

/*
 * Say once why writes that need new memory fail, until one succeeds
 * again (mem_budget_resumed()); not once per refused write.
 */
void mem_budget_refused(struct mem_budget *b, const char *why)
{
	char text[sizeof(b->note)];

	if (!atomic_exchange(&b->starved, true)) {
		snprintf(text, sizeof(text),
			 "%s; writes to parts of the device not yet allocated fail with ENOSPC until %s",
			 why, b->file ? "memory or room on its file system is freed" :
			 "memory is freed");
		tell(b, text);
	}
}

void mem_budget_resumed(struct mem_budget *b)
{
	if (atomic_load_explicit(&b->starved, memory_order_relaxed) &&
	    atomic_exchange(&b->starved, false))
		tell(b, "memory for new writes is available again: writes succeed again");
}

/*
 * The free memory is read again when the last reading is old or close to
 * the reserve; in between, what was taken is subtracted from it.
 */
bool mem_budget_take(struct mem_budget *b, uint64_t bytes)
{
	int64_t now = now_ns();
	uint64_t avail;
	char why[160];
	bool ok;

	if (b->meminfo_fd < 0)
		return true;
	pthread_mutex_lock(&b->lock);
	if (now - b->avail_ns > AVAIL_REFRESH_NS ||
	    mem_beyond_reserve(b->avail, b->reserve) < bytes + AVAIL_MARGIN) {
		if (read_available(b, &b->avail) == 0)
			b->avail_ns = now;
	}
	ok = mem_beyond_reserve(b->avail, b->reserve) >= bytes;
	if (ok)
		b->avail -= bytes;
	avail = b->avail;
	pthread_mutex_unlock(&b->lock);

	if (!ok) {
		snprintf(why, sizeof(why),
			 "memory is running out: %llu MiB available, %llu MiB kept in reserve",
			 (unsigned long long)(avail >> 20),
			 (unsigned long long)(b->reserve >> 20));
		mem_budget_refused(b, why);
	}
	return ok;
}

void mem_budget_returned(struct mem_budget *b)
{
	pthread_mutex_lock(&b->lock);
	b->avail_ns = 0;
	pthread_mutex_unlock(&b->lock);
}
