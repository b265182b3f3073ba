/*
 * memory.h - the machine's memory, as a store sees it: how much there is,
 * the huge page size, and a budget that keeps a reserve of it for
 * everything else.
 *
 * A RAM store must not take the machine's last memory: then the kernel's
 * OOM killer picks a process, perhaps this server, and every byte of the
 * device goes with it.  So each store asks its budget before it allocates
 * (mem_budget_take()); the budget says no while the machine has less
 * than the reserve available, and the write that needed the memory fails
 * with ENOSPC instead.  The plain store (mem_backend.c) and the
 * compressed one (compress_backend.c) both work this way.
 */
#ifndef UBLK_MEM_MEMORY_H
#define UBLK_MEM_MEMORY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Bytes of RAM + swap on this machine: no store can ever be larger. */
uint64_t mem_total_bytes(void);

/* The default reserve: 1/32 of RAM, at least 64 MiB, at most 1 GiB. */
uint64_t mem_default_reserve(void);

/* The transparent huge page size (2 MiB on x86-64), or 0 without THP. */
uint64_t mem_huge_page_size(void);

/* What a new allocation may use now: MemAvailable (0 if unknown). */
uint64_t mem_available_now(void);

/* MemAvailable and SwapFree together, now (0 if unknown). */
uint64_t mem_spare_now(void);

/*
 * The memory a store may still take: the machine's available memory, as
 * last read, less what the store took since.
 */
struct mem_budget {
	uint64_t reserve;	/* bytes that must stay available */
	pthread_mutex_t lock;
	int meminfo_fd;		/* /proc/meminfo, or -1: do not limit */
	uint64_t avail;
	int64_t avail_ns;	/* when avail was read (CLOCK_MONOTONIC) */
	atomic_bool starved;	/* the last allocation was refused */
	bool file;		/* the store is a file: its file system may fill too */
	bool locked;		/* the store is locked in RAM: swap is no room for it */
	/*
	 * With @locked, the budget is asked from queue threads that must not
	 * wait for memory, which writing a message to a log on tmpfs can:
	 * its messages wait here for mem_budget_say(), from another thread.
	 */
	char note[256];
	atomic_bool noted;
};

/*
 * A budget keeping @reserve bytes; @file: for a store in a file;
 * @locked: for a store whose memory is locked, which free swap cannot
 * make room for: only MemAvailable counts then, not SwapFree.
 */
void mem_budget_init(struct mem_budget *b, uint64_t reserve, bool file, bool locked);
void mem_budget_close(struct mem_budget *b);

/*
 * Take @bytes, if that leaves the reserve: true, or false (said once on
 * stderr until allocations succeed again) when they must not be taken.
 */
bool mem_budget_take(struct mem_budget *b, uint64_t bytes);

/* Memory was given back: read the machine's memory afresh next time. */
void mem_budget_returned(struct mem_budget *b);

/*
 * An allocation failed for another reason (@why: a full file system, an
 * mmap error): say it once, as a refusal of the budget's is said.
 */
void mem_budget_refused(struct mem_budget *b, const char *why);

/* An allocation succeeded: if the last one was refused, say it is over. */
void mem_budget_resumed(struct mem_budget *b);

/*
 * A locked budget's message waiting to be said, if any: say it now (the
 * latest one: a refusal and its end both said later say only the end).
 */
void mem_budget_say(struct mem_budget *b);

/*
 * memcpy() and memset(dst, 0, ...) for a request's bytes, in pieces of
 * MEM_PIECE.  For larger blocks glibc on x86 uses `rep movsb` and `rep
 * stosb` when the CPU says they are fast (ERMS), and an emulator runs
 * them a byte at a time: under qemu's TCG a 128 KiB copy whole takes
 * twice as long as in pieces, a 16 KiB fill 20 times as long (glibc 2.36,
 * qemu 7.2).  On hardware the pieces cost nothing measurable for copies
 * to and from a store larger than the caches (memory is the limit); 10%
 * in the best case, both ends in the cache.
 */
#define MEM_PIECE	1024

static inline void mem_copy(void *dst, const void *src, size_t len)
{
	char *d = dst;
	const char *from = src;

	for (size_t n; len; d += n, from += n, len -= n) {
		n = len < MEM_PIECE ? len : MEM_PIECE;
		memcpy(d, from, n);
	}
}

static inline void mem_zero(void *dst, size_t len)
{
	char *d = dst;

	for (size_t n; len; d += n, len -= n) {
		n = len < MEM_PIECE ? len : MEM_PIECE;
		memset(d, 0, n);
	}
}

/* What may be allocated from @avail while keeping @reserve. */
static inline uint64_t mem_beyond_reserve(uint64_t avail, uint64_t reserve)
{
	return avail > reserve ? avail - reserve : 0;
}

#endif
