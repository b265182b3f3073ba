/*
 * mem_backend.h - the RAM store behind a ublk-mem device.
 *
 * The store is one contiguous mapping as large as the device.  Pages are
 * allocated by the kernel when first written (a fresh device costs almost
 * nothing) and given back when discarded.  Anonymous stores ask for
 * transparent huge pages: one fault then fills 2 MiB instead of 4 KiB.
 * With a file path the mapping is a shared mapping of a file on tmpfs, so
 * the data outlives the process (used by --recoverable).
 */
#ifndef UBLK_MEM_MEM_BACKEND_H
#define UBLK_MEM_MEM_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "ublk.h"

struct mem_store {
	char *base;		/* the device's bytes, [0, size) */
	uint64_t size;
	bool locked;		/* prealloc: populated and mlock()ed */
	bool huge;		/* the kernel took the MADV_HUGEPAGE advice */
	int fd;			/* backing file, or -1 for anonymous memory */
	unsigned page;		/* system page size */
};

enum mem_store_flags {
	MEM_STORE_PREALLOC = 1 << 0,	/* populate and lock everything now */
	MEM_STORE_CREATE = 1 << 1,	/* with a path: create (else: reuse) */
	MEM_STORE_SMALL_PAGES = 1 << 2,	/* no huge pages: allocate 4 KiB at a time */
};

/*
 * Set up a store of @size bytes; @path NULL means anonymous memory.
 * Returns 0 or -errno (after printing why).
 */
int mem_store_open(struct mem_store *s, uint64_t size, unsigned flags,
		   const char *path);
void mem_store_close(struct mem_store *s);

int mem_store_read(void *store, void *buf, uint64_t off, uint32_t len);
int mem_store_write(void *store, const void *buf, uint64_t off, uint32_t len);
/* Make [off, off + len) read as zeros, giving whole pages back. */
int mem_store_zero(void *store, uint64_t off, uint64_t len);

/* Bytes of RAM + swap on this machine: no store can ever be larger. */
uint64_t mem_total_bytes(void);

/* Parse "64M", "1G", "65536" (powers of 1024).  Returns 0 or -EINVAL. */
int parse_size(const char *s, uint64_t *out);

extern const struct ublk_backend_ops mem_backend_ops;

#endif
