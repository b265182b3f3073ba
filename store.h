/*
 * store.h - a device's store: where its bytes live, of whichever kind.
 *
 * A device is served from plain RAM (mem_backend.c) or from compressed
 * RAM (compress_backend.c, --compress), and a zoned device has its zones
 * in front of either (zone.c).  The command's files above (serving,
 * recovery, the control socket) open, resize, measure and close a store
 * through this file, and never need to know which kind it is.
 */
#ifndef UBLK_MEM_STORE_H
#define UBLK_MEM_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend.h"
#include "compress_backend.h"
#include "mem_backend.h"
#include "zone.h"

/* What to open: the options and, when reopening, what was recorded. */
struct store_config {
	/*
	 * Size, path, create, the recorded identity and the reserve, for
	 * either kind; prealloc, small_pages and file_io for plain RAM only.
	 */
	struct mem_store_config mem;
	bool compress;		/* --compress */
	bool locked;		/* the server locks its memory: it may be swapped to */
	uint64_t mem_limit;	/* --mem-limit (compressed: 0, none) */
	/* A zoned device (zone_size 0: not zoned), and its zone state file. */
	struct zone_config zones;
	dev_t zones_dev;	/* reopening: it must be this file (0: any) */
	ino_t zones_ino;
};

struct store {
	bool data_open;			/* mem or cz is open */
	bool compressed;
	struct mem_store mem;
	struct compress_store cz;
	bool zoned;
	struct zoned zones;
	int zones_fd;			/* the zone state's file, or -1 */
	/* The files' identities (st_dev, st_ino), for the record. */
	dev_t dev, zones_dev;
	ino_t ino, zones_ino;
	bool file;			/* in a file that outlives the server */
};

/*
 * Is the store file at @path a compressed store?  For a store whose record
 * (which says so) is gone; false when it cannot be read (the open that
 * follows says why).
 */
bool store_file_is_compressed(const char *path);

/* The backend a store of @cfg is served with; ublk_add() needs it first. */
const struct backend_ops *store_backend(const struct store_config *cfg);

/*
 * Open (create, or find again) a store as @cfg says: 0, or -errno after
 * saying why.  Files it created are removed again on failure.
 */
int store_open(struct store *s, const struct store_config *cfg);

/* Unmap the store; its files, if any, keep the data. */
void store_close(struct store *s);

/* The backend's data, for ublk_start(). */
void *store_data(struct store *s);

/* The device's size as the store has it now. */
uint64_t store_size(const struct store *s);

/*
 * Grow or shrink a store that is being served (see mem_store_resize());
 * a zoned store's size is fixed.  0 or -errno after saying why.
 */
int store_resize(struct store *s, uint64_t new_size);

/* What `ublk-mem stats` says of a store, as zram's mm_stat names it. */
struct store_stats {
	bool compressed;
	uint64_t orig_data_size;	/* bytes of pages holding data */
	uint64_t compr_data_size;	/* compressed: their bytes so */
	uint64_t mem_used_total;	/* the store's memory */
	uint64_t mem_limit;		/* 0: none */
	uint64_t mem_used_max;
	uint64_t same_pages;		/* compressed: pages of one repeated word */
	uint64_t pages_compacted;
	uint64_t huge_pages;		/* compressed: pages kept as they are */
	uint64_t huge_pages_since;
};

void store_stats(struct store *s, struct store_stats *st);

#endif
