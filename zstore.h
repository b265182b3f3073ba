/*
 * zstore.h - a compressed RAM store, like Linux's zram, that survives its
 * server being killed when its memory is a shared mapping of a tmpfs file.
 *
 * A store holds a device of `size` bytes in 4 KiB pages.  A page of one
 * repeated 64-bit word (zeros among them) costs no memory beyond its index
 * entry; any other page is compressed with LZ4, or kept raw when that
 * does not get it under 7/8 of a page.  Memory grows as pages are
 * written and is given back as they are zeroed or compacted.
 *
 * Given a tmpfs file, the store lives in it, whole: a process killed at
 * any moment (kill -9) leaves a file from which zstore_open() with
 * create=false gets back every page as its last completed write left it
 * (a write under way when the process died reads either as before or as
 * after it, never torn).  See zstore.c for how.
 *
 * Memory (mem_used_total) is the header page, the index pages in use
 * (a machine page of index covers 512 device pages), a page of fill
 * words beside an index page once one of its pages was same-filled, and
 * the slabs.  All of it is asked for (mem_limit, may_grow) before it is
 * touched, and given back as soon as it holds nothing (a page of fill
 * words with its index page).  So once every page is zeroed the store
 * holds its header page again, exactly.  Not counted: private metadata,
 * 4 bytes per index page of max_size (at open) and 16 per 64 KiB slab
 * ever used (144 for a slab of raw pages), kept until close.
 *
 * All calls may be made by many threads at once, on the same or other
 * pages, except zstore_open() and zstore_close().  Requests are in bytes:
 * offsets and lengths multiples of 512, inside the device (else -EINVAL
 * for a misaligned or oversized request, -EIO for one past the end).
 */
#ifndef UBLK_MEM_ZSTORE_H
#define UBLK_MEM_ZSTORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zalloc.h"

/* The largest device: 2^32 pages, 16 TiB. */
#define ZSTORE_MAX_SIZE		(1ULL << 44)
/* The longest read or write. */
#define ZSTORE_MAX_IO		(1u << 20)

struct zstore_config {
	uint64_t size;		/* device bytes (a multiple of 512) */
	/*
	 * What zstore_resize() may grow to (>= size; 0: size).  The index
	 * is reserved for it: 8 bytes of address space per page, costing
	 * memory only where pages are written.
	 */
	uint64_t max_size;
	/*
	 * -1: anonymous memory.  Else an open tmpfs file (the caller opened
	 * it read-write, locked and checked it) holding the whole store.
	 */
	int fd;
	/*
	 * With fd: lay out a new store (the file must be empty); else reopen
	 * the one in the file, after a crash or a clean close.  Reopening,
	 * size and max_size must be those stored, or 0 to take them.
	 */
	bool create;
	/*
	 * 0: none; else the store's memory (mem_used_total: header, index
	 * pages, slabs) never grows beyond it: writes that need more fail
	 * with -ENOSPC and change nothing.
	 */
	uint64_t mem_limit;
	/*
	 * Asked before the store's memory grows by @bytes (a slab, 64 KiB,
	 * or an index page): false fails that write with -ENOSPC, changing
	 * nothing.  NULL: always yes.  Called with store locks held: it must
	 * not call back into the store.
	 */
	bool (*may_grow)(void *ctx, uint64_t bytes);
	void *ctx;
};

/* Everything a store is; the caller provides it, zstore_open() fills it. */
struct zstore_header;
struct zstore {
	struct zalloc a;		/* the mapping, and the objects in it */
	int fd;				/* the file, or -1 (not ours to close) */
	struct zstore_header *hdr;	/* at a.base: the size lives there */
	_Atomic uint64_t *index;	/* one entry per page (zstore.c) */
	_Atomic uint64_t *fill;		/* the word of each same-filled page */
	uint64_t index_off, fill_off;
	uint64_t max_pages;
	uint32_t per_ipage;		/* entries in one machine page of index */
	/* Per machine page of index: entries in use, references, presence. */
	_Atomic uint32_t *ipage;
	uint64_t nr_ipages;
	pthread_mutex_t ilock;		/* makes index pages present or absent */
	bool index_resident;		/* zstore_prefault_index() was called */
	pthread_mutex_t resize_lock;
	/* What zstore_stats() says (rebuilt on reopen). */
	_Atomic uint64_t stored_pages, compr_bytes, same_pages, huge_pages, huge_since;
	_Atomic bool said_corrupt;
};

/*
 * Open a store as @cfg says: 0, or -errno after one log_err() line saying
 * why (-EINVAL: a bad config or a file that is not a store of this
 * machine's page size; -EUCLEAN: a store file damaged beyond what a crash
 * can leave; -ENOMEM: no address space).  A reopened store is checked
 * and its allocator rebuilt from its index, which takes a pass over the
 * index pages in use; mem_limit may be below what it already holds (then
 * only writes that need no more memory succeed).
 */
int zstore_open(struct zstore *z, const struct zstore_config *cfg);
/* Unmap the store; a file store's data stays in its file.  No I/O may run. */
void zstore_close(struct zstore *z);

/*
 * Read @len bytes at @off into @buf (any alignment of @buf; @off and
 * @len multiples of 512, @len <= ZSTORE_MAX_IO).  Never allocates.
 * 0, -EINVAL, -EIO (past the end, or a damaged page).
 */
int zstore_read(struct zstore *z, void *buf, uint64_t off, uint32_t len);
/*
 * Write @len bytes from @buf at @off.  Pages are written one at a time,
 * each atomically: a reader or a crash sees a page as before or after.
 * A part of a page is read, merged and written back under the page's
 * lock.  0, -EINVAL, -EIO, -ENOSPC (memory refused: the pages not yet
 * written keep their old data).
 */
int zstore_write(struct zstore *z, const void *buf, uint64_t off, uint32_t len);
/*
 * Discard and write-zeroes: [@off, @off + @len) reads as zeros afterwards;
 * whole pages are forgotten and their memory given back (the index page
 * too when none of its entries is left).  Parts of pages are written
 * zeros, which can need memory: -ENOSPC then.  0, -EINVAL, -EIO, -ENOSPC.
 */
int zstore_zero(struct zstore *z, uint64_t off, uint64_t len);
/*
 * Change the size to @new_size (a multiple of 512, <= max_size).  Growing
 * adds zeros; shrinking forgets the pages beyond the new end and frees
 * them.  Writes past the new end fail with -EIO from the moment the size
 * changed.  0, -EINVAL, -ENOSPC (growing past a partial last page needs
 * its tail rewritten as zeros).
 */
int zstore_resize(struct zstore *z, uint64_t new_size);
/*
 * Move objects out of the emptiest slabs of each size class into the
 * fullest, and give the emptied slabs back, until no slab of any class
 * could be emptied so.  Runs beside reads and writes; an object whose
 * page is busy ends its class's pass (the next call continues).  Only
 * when a write needs memory that is refused does the store compact by
 * itself; otherwise calling this is the caller's choice (zram too leaves
 * it to the user).  Returns the objects (pages) moved; -errno is kept
 * for the future: it cannot fail today.
 */
int zstore_compact(struct zstore *z);

/*
 * Make the whole index (and the fill words beside it) resident, and keep
 * it so, counting only the pages in use as before: a write then never
 * needs fresh memory for the index (a store used as swap must not: see
 * the reserve in zalloc.h).  It costs 16 bytes of memory for each 4 KiB
 * of max_size, for good.  Call it before any I/O.  0 or -errno (-ENOSPC:
 * the file system is full); on failure nothing is kept resident.
 */
int zstore_prefault_index(struct zstore *z);

/*
 * Does the file @fd begin as a store laid out by zstore_open() does?  (For
 * a store file found without its record: a plain store's data could begin
 * so too, but only by holding such a store.)
 */
bool zstore_file_holds_store(int fd);

/* The device's size now (zstore_resize() changes it). */
uint64_t zstore_size(const struct zstore *z);

/* Names and meanings of zram's mm_stat (admin-guide/blockdev/zram.rst). */
struct zstore_stats {
	uint64_t orig_data_size;	/* bytes of pages holding data, same-filled ones included */
	uint64_t compr_data_size;	/* their bytes compressed (raw pages: 4096) */
	uint64_t mem_used_total;	/* the store's memory: header, index pages, slabs */
	uint64_t mem_limit;		/* 0: none */
	uint64_t mem_used_max;		/* the most mem_used_total was since open */
	uint64_t same_pages;		/* same-filled pages written, zeros included */
	uint64_t pages_compacted;	/* 4 KiB pages compaction gave back, since open */
	uint64_t huge_pages;		/* pages stored raw (incompressible) now */
	uint64_t huge_pages_since;	/* pages stored raw since open */
};

void zstore_stats(struct zstore *z, struct zstore_stats *st);

#endif /* UBLK_MEM_ZSTORE_H */
