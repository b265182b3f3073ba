/*
 * zone.h - host-managed zoned devices: a zone model in front of a plain
 * data backend (`ublk-mem --zoned`).
 *
 * A zoned device is cut into zones of one power-of-two size.  The first
 * few may be conventional: written anywhere, like any disk.  The others
 * are sequential-write-required: each has a write pointer, a write must
 * start exactly there, and only the zone's capacity (which may be less
 * than its size) can be written before the zone is FULL and must be
 * reset.  A device may also limit how many zones are open (being
 * written) and active (open or closed: written but not full) at once.
 * Linux's null_blk (drivers/block/null_blk/zoned.c) is the model this
 * follows, condition for condition and error for error.
 *
 * zoned_open() wraps a backend that holds the data (the RAM store) and
 * gives zoned_backend_ops, a backend whose writes and zone commands go
 * through the model first.  The zone conditions and write pointers live
 * in their own small mapping: anonymous memory, or a tmpfs file for a
 * recoverable device, so that they outlive the process.  After a restart
 * every zone is as it was, except that zones that were open come back
 * CLOSED (EMPTY if nothing was written), as a drive's do after a power
 * cycle; a write that was in flight is sent again by the kernel and
 * lands at the same write pointer.
 *
 * The struct blk_zone ABI mirrors include/uapi/linux/blkzoned.h; the
 * project carries its own copy so it builds without kernel headers.
 */
#ifndef UBLK_MEM_ZONE_H
#define UBLK_MEM_ZONE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"

/* ---- kernel ABI: zone descriptors (include/uapi/linux/blkzoned.h) ---- */

enum blk_zone_type {
	BLK_ZONE_TYPE_CONVENTIONAL	= 0x1,	/* written anywhere */
	BLK_ZONE_TYPE_SEQWRITE_REQ	= 0x2,	/* written at the write pointer */
	BLK_ZONE_TYPE_SEQWRITE_PREF	= 0x3,
};

enum blk_zone_cond {
	BLK_ZONE_COND_NOT_WP	= 0x0,	/* conventional: no write pointer */
	BLK_ZONE_COND_EMPTY	= 0x1,
	BLK_ZONE_COND_IMP_OPEN	= 0x2,	/* opened by a write */
	BLK_ZONE_COND_EXP_OPEN	= 0x3,	/* opened by an OPEN command */
	BLK_ZONE_COND_CLOSED	= 0x4,	/* written, not full, not open */
	BLK_ZONE_COND_READONLY	= 0xD,
	BLK_ZONE_COND_FULL	= 0xE,
	BLK_ZONE_COND_OFFLINE	= 0xF,
};

/* Conditions are 4-bit values: an array indexed by one has this many. */
#define ZONE_COND_COUNT		16

/* One zone in a report; positions and sizes in 512-byte sectors. */
struct blk_zone {
	uint64_t start;		/* first sector */
	uint64_t len;		/* sectors */
	uint64_t wp;		/* write pointer */
	uint8_t type;		/* enum blk_zone_type */
	uint8_t cond;		/* enum blk_zone_cond */
	uint8_t non_seq;
	uint8_t reset;		/* a reset is recommended */
	uint8_t resv[4];
	uint64_t capacity;	/* sectors that can be written */
	uint8_t reserved[24];
};

_Static_assert(sizeof(struct blk_zone) == 64, "struct blk_zone is 64 bytes in the kernel ABI");

/* ---- the zoned backend ---- */

struct zone_config {
	uint64_t size;		/* device bytes; a multiple of zone_size (the caller rounds it) */
	uint64_t zone_size;	/* bytes, a power of two, >= 4 KiB */
	uint64_t zone_capacity;	/* bytes, <= zone_size, a multiple of 4 KiB; 0: zone_size */
	unsigned conventional;	/* the first N zones are conventional (random writes, NOT_WP) */
	unsigned max_open, max_active;	/* 0: no limit */
	/*
	 * -1: zone state in anonymous memory; else an open tmpfs file for it
	 * (recoverable devices).  The caller keeps the descriptor and closes it.
	 */
	int meta_fd;
	bool create;		/* with meta_fd: lay out fresh state; else reopen after a crash */
};

struct zone_meta_header;
struct zone_meta;

/*
 * One zoned device.  Defined here so a caller can embed it; the fields
 * are zone.c's.  Locking: a zone's lock (locks[zone % nr_locks]) is held
 * across everything done to that zone, data copy included; res_lock,
 * taken inside it and only briefly, guards every zone's condition, the
 * open/active counters and `writing`.  A write pointer changes only with
 * both held, so it is stable under either; reads load it without locks.
 */
struct zoned {
	const struct backend_ops *inner;	/* where the data lives */
	void *inner_data;
	uint64_t size;			/* bytes */
	uint64_t zone_size;		/* bytes, a power of two */
	uint64_t zone_capacity;		/* bytes writable in a sequential zone */
	unsigned zone_shift;		/* log2(zone_size) */
	unsigned nr_zones;
	unsigned nr_conv;		/* zones [0, nr_conv) are conventional */
	unsigned max_open, max_active;	/* 0: no limit */
	struct zone_meta_header *hdr;	/* the mapping of zone states */
	struct zone_meta *meta;		/* its array, one per zone */
	size_t meta_len;
	pthread_mutex_t *locks;
	unsigned nr_locks;
	bool *writing;			/* a write is copying data into the zone */
	pthread_mutex_t res_lock;
	unsigned nr_imp_open, nr_exp_open, nr_closed;
	unsigned imp_close_next;	/* where an implicit close looks first */
};

/*
 * Lay out (or, with cfg->meta_fd and !cfg->create, find again) the zones
 * of @cfg in front of @inner / @inner_data, which must stay valid until
 * zoned_close().  0 or -errno; -EINVAL, with a message, for a geometry
 * that cannot be or a saved state that is not this geometry's.
 */
int zoned_open(struct zoned *z, const struct zone_config *cfg,
	       const struct backend_ops *inner, void *inner_data);

/* Unmap the zone state and free the locks; the inner backend is the caller's. */
void zoned_close(struct zoned *z);

/*
 * The zoned backend; data = struct zoned *.  Writes and zone appends of
 * sequential zones go through `write` and `zone_append` (never `direct`,
 * `file` is -1), so a write pointer moves only once the data is in.
 * prepare_write is for WRITEs only: a zone append checks its zone itself.
 * There is no discard nor write_zeroes, as in null_blk's zoned mode: the
 * kernel then refuses discards and zeroes a range by plain writes, which
 * the zone rules cover.
 */
extern const struct backend_ops zoned_backend_ops;

/* For `ublk-mem stats` / list --json: zones per condition. */
void zoned_counts(const struct zoned *z, unsigned counts[ZONE_COND_COUNT]);

#endif
