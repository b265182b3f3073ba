/*
 * compress_backend.h - the compressed RAM store behind `--compress`.
 *
 * The device's pages are kept as zram keeps them (zstore.h): compressed
 * with LZ4, a page of one repeated word as that word, a page that does not
 * compress as it is.  This file makes that store a backend (backend.h):
 * it asks the machine's memory budget (memory.h) before the store grows,
 * keeps an optional limit of its own (--mem-limit), compacts the store's
 * memory in a thread of its own when fragmentation grows, keeps a
 * reserve of resident memory for swap-out writes when it may be swapped
 * to (see compress_backend.c), and, given a
 * path, keeps the whole store in a tmpfs file that outlives the server
 * (--recoverable).
 *
 * It serves READ, WRITE, DISCARD and WRITE_ZEROES, in the copy modes that
 * copy through a buffer of ours (get_data, user_copy, bounce): there is
 * no memory where a request's bytes lie as they are, so it has neither a
 * `direct` nor a `file` callback, and zero_copy cannot serve it.
 */
#ifndef UBLK_MEM_COMPRESS_BACKEND_H
#define UBLK_MEM_COMPRESS_BACKEND_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend.h"
#include "memory.h"
#include "pinned.h"
#include "zstore.h"

struct compress_store_config {
	uint64_t size;		/* bytes */
	uint64_t max_size;	/* what compress_store_resize() may grow to (0: size) */
	const char *path;	/* a tmpfs file for the store, or NULL: anonymous memory */
	bool create;		/* with a path: make it (else: reopen the store in it) */
	dev_t expect_dev;	/* reopening: it must be this file (0: any) */
	ino_t expect_ino;
	uint64_t reserve;	/* memory the machine keeps (memory.h) */
	uint64_t mem_limit;	/* the store's memory at most (0: no limit) */
	/*
	 * The server locks its memory (lock_memory()): the device may be
	 * swapped to.  The store then keeps a reserve for swap-out writes
	 * (compress_backend.c) and only MemAvailable is its budget.
	 */
	bool locked;
};

struct compress_store {
	struct zstore z;
	struct mem_budget budget;
	int fd;				/* the store's file, or -1 */
	struct pinned_file dir;		/* while opening: its directory */
	bool created;
	dev_t st_dev;			/* the file's identity */
	ino_t st_ino;

	/*
	 * The compactor, which also tops the reserve up: woken when memory
	 * may have come loose, or the reserve ran short.
	 */
	pthread_t compactor;
	bool compactor_started;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool wanted, stop;
	_Atomic unsigned writes;	/* since the compactor last looked */
};

/*
 * Set up a store: 0, or -errno after printing why.  A file it created is
 * removed again on failure.
 */
int compress_store_open(struct compress_store *c, const struct compress_store_config *cfg);
void compress_store_close(struct compress_store *c);

/* Change the size while served: see zstore_resize().  0 or -errno. */
int compress_store_resize(struct compress_store *c, uint64_t new_size);

/* zram's mm_stat, for `ublk-mem stats` (zstore.h). */
void compress_store_stats(struct compress_store *c, struct zstore_stats *st);

/* The size now, which a resize changes. */
uint64_t compress_store_size(const struct compress_store *c);

extern const struct backend_ops compress_backend_ops;

#endif
