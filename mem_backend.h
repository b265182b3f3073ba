/*
 * mem_backend.h - the RAM store behind a ublk-mem device.
 *
 * The store is one contiguous mapping as large as the device.  Memory is
 * allocated when a part is first written (a fresh device costs almost
 * nothing) and given back when discarded.  Anonymous stores ask for
 * transparent huge pages: one fault then fills 2 MiB instead of 4 KiB.
 * With a file path the mapping is a shared mapping of a file on tmpfs, so
 * the data outlives the process (used by --recoverable).  For zero_copy
 * the store is a file too, which io_uring reads and writes: the
 * recoverable one, or else an unnamed tmpfs file (memfd).
 *
 * The store knows which parts of it are allocated, and allocates before
 * the kernel copies a write in: when the machine runs short of memory (or
 * the tmpfs fills), a write that needs new memory fails with ENOSPC while
 * everything already written stays readable.
 */
#ifndef UBLK_MEM_MEM_BACKEND_H
#define UBLK_MEM_MEM_BACKEND_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend.h"
#include "memory.h"
#include "pinned.h"

/* What to make; see mem_store_open(). */
struct mem_store_config {
	uint64_t size;		/* bytes */
	uint64_t max_size;	/* what mem_store_resize() may grow to (0: size) */
	const char *path;	/* a file to map, or NULL for anonymous memory */
	bool create;		/* with a path: create it (else: reuse it) */
	/* Reusing a file: it must be this one (0: any; see record.h). */
	dev_t expect_dev;
	ino_t expect_ino;
	bool prealloc;		/* allocate and lock everything now */
	bool small_pages;	/* no huge pages: allocate a page at a time */
	/*
	 * Keep the store in a file that io_uring can read and write
	 * (mem_store_file()): without a path, an unnamed tmpfs file (memfd).
	 */
	bool file_io;
	/*
	 * Bytes of the machine's memory a new allocation must leave
	 * available to everything else (see mem_default_reserve()).
	 */
	uint64_t reserve;
};

/*
 * Where the store's bytes and bits lie, from the size and the machine's
 * page and huge page sizes: a pure function of them (mem_store_geometry),
 * so it can be checked for any page size.
 */
struct mem_geometry {
	size_t map_len;		/* the size rounded up to a page */
	size_t reserved_len;	/* the mapping: max_size rounded up to a page */
	size_t align;		/* where the mapping starts: huge page or page */
	uint64_t unit;		/* bytes per bit of the maps */
	unsigned unit_shift;
	uint64_t nr_units;	/* bits per map: enough for max_size */
};

/*
 * The geometry of a store of @size bytes that may grow to @max_size, with
 * pages of @page bytes and huge pages of @hpage bytes (0: none used).
 */
void mem_store_geometry(uint64_t size, uint64_t max_size, unsigned page,
			uint64_t hpage, struct mem_geometry *g);

struct mem_store {
	char *base;		/* the device's bytes, [0, size) */
	uint64_t size;		/* read and written atomically: it can change */
	uint64_t max_size;
	size_t map_len;		/* size rounded up to a page */
	size_t reserved_len;	/* the whole mapping, for max_size */
	int fd;			/* backing file, or -1 for anonymous memory */
	int io_fd;		/* file_io: the file again, for io_uring */
	bool named;		/* the file has a path (not a memfd) */
	bool created;		/* mem_store_open() created that file */
	dev_t st_dev;		/* the backing file's identity */
	ino_t st_ino;
	struct pinned_file dir;	/* while opening: its directory (pinned.h) */
	unsigned page;		/* system page size */
	bool locked;		/* prealloc: populated, and mlock()ed if allowed */
	bool huge;		/* allocated in transparent huge pages */

	/*
	 * Two bits per unit of the store (a huge page, or a page): `backed`,
	 * every byte of it is allocated, so writing it needs no memory;
	 * `used`, it may hold data (a unit neither backed nor used reads as
	 * zeros without being touched).
	 */
	uint64_t unit;
	unsigned unit_shift;
	uint64_t nr_units;
	_Atomic uint64_t *backed;
	_Atomic uint64_t *used;
	const char *zeros;	/* never written: reads as zeros, costs nothing */
	size_t zeros_len;

	/* What the store may still take of the machine's memory. */
	struct mem_budget budget;
};

/*
 * Set up a store.  Returns 0 or -errno after printing why (a file that
 * cannot be trusted, a file system too small, memory that cannot be
 * locked, ...).  A file it created is removed again on failure.
 */
int mem_store_open(struct mem_store *s, const struct mem_store_config *cfg);
void mem_store_close(struct mem_store *s);

int mem_store_read(void *data, void *buf, uint64_t off, uint32_t len);
int mem_store_write(void *data, const void *buf, uint64_t off, uint32_t len);
/* Allocate what a write of [off, off + len) needs; -ENOSPC if it cannot. */
int mem_store_prepare_write(void *data, uint64_t off, uint32_t len);
/* Make [off, off + len) read as zeros, giving whole pages back. */
int mem_store_zero(void *data, uint64_t off, uint64_t len);

/*
 * Change the store's size while it is served.  Bytes below the smaller of
 * the two sizes are untouched; growing adds zeros (a file store's file
 * grows), shrinking gives the memory beyond the new end back.  Returns 0
 * or -errno after printing why (beyond max_size, no room on the tmpfs,
 * memory that cannot be locked for a preallocated store).
 */
int mem_store_resize(struct mem_store *s, uint64_t new_size);

/*
 * The memory the store holds now: a file store's blocks, or the parts of
 * the anonymous store allocated (whole huge pages where it uses them).
 */
uint64_t mem_store_memory(const struct mem_store *s);

/*
 * file_io: the store file, opened once more so that io_uring never has to
 * hand its reads and writes to a worker thread (see open_io_fd()); else -1.
 */
int mem_store_file(void *data);

/* Reads of never-written parts come from this many shared zero bytes. */
#define STORE_ZEROS_BYTES	(512U << 10)

extern const struct backend_ops mem_backend_ops;

#endif
