/*
 * record.h - which store file belongs to which recoverable device.
 *
 * A --recoverable device keeps its data in a file that outlives the
 * server: its store.  RECORD_DIR/ID says which file that is (its path
 * and its identity, device and inode numbers) and how the device was
 * made.  `recover` finds the store there; `recover --rebuild` can make
 * the device again from it even after the kernel lost the device; and
 * only a store recorded so is ever removed by `del`: never a file that
 * another program or user put at the same path.
 */
#ifndef UBLK_MEM_RECORD_H
#define UBLK_MEM_RECORD_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RECORD_DIR	"/run/ublk-mem"
#define DEFAULT_STORE	"/dev/shm/ublk-mem-%d"

/* How the device was made: enough to make it again. */
struct record_geometry {
	uint64_t size;		/* bytes, as the kernel has it now */
	unsigned block_size;
	unsigned queues;
	unsigned depth;
	uint64_t flags;		/* the device's UBLK_F_* */
	/* A zoned device (zone_size 0 for a plain one): see zone.h. */
	uint64_t zone_size, zone_capacity;
	unsigned conventional, max_open, max_active;
	/* A compressed store (--compress), and its --mem-limit (0: none). */
	bool compress;
	uint64_t mem_limit;
};

struct record {
	char path[PATH_MAX];	/* the store file */
	unsigned long long dev, ino;
	bool has_geometry;	/* records before geometry was kept lack it */
	struct record_geometry geo;
	unsigned long long zones_dev, zones_ino;	/* the zone state file */
};

/* Where a zoned device's zone state is kept: next to its store. */
void record_zones_path(char *buf, size_t len, const char *store);

/* Remove the zone state file @r names if it is still the file recorded. */
bool record_remove_zones(const struct record *r);

/*
 * RECORD_DIR, made if needed (mode 0700), and refused (-EPERM) unless it
 * is a directory of ours that nobody else may enter: it holds the store
 * records and the control sockets.  Returns 0 or -errno.
 */
int record_dir(void);

/* Write (or replace) device @dev_id's record; a failure is a warning. */
void record_write(int dev_id, const struct record *r);

/*
 * Read device @dev_id's record: false when there is none, or when the
 * record or its directory could have been written by someone else.
 */
bool record_read(int dev_id, struct record *r);

/* After a resize: the size to make the device again with. */
void record_set_size(int dev_id, uint64_t size);

void record_remove(int dev_id);

/* Where a device's store is by default: DEFAULT_STORE. */
void record_default_store(char *buf, size_t len, int dev_id);

/*
 * Remove the store file @r names if it is still the file recorded, as a
 * regular file in the directory it was found in.  True when removed.
 */
bool record_remove_store(const struct record *r);

#endif
