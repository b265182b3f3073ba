/*
 * serve.h - serving one device from its store, start to end: the store
 * and its record, the control socket, ublk_start(), the wait
 * (process.c), ublk_finish(), and what becomes of the store and of a
 * handover's successor.
 */
#ifndef UBLK_MEM_SERVE_H
#define UBLK_MEM_SERVE_H

#include <stdbool.h>

#include "mem_backend.h"
#include "options.h"
#include "record.h"
#include "ublk.h"
#include "zone.h"

/* A store opened for a device: what it is and whether it must go. */
struct served_store {
	struct mem_store mem;
	struct record rec;
	bool file;		/* a file that outlives the process */
	bool fresh;		/* made by this process for a new device */
	bool rebuilt;		/* served by a device made anew (--rebuild) */
	/* A zoned device: the zones in front of the store, and their file. */
	bool zoned;
	struct zoned zones;
	int zones_fd;		/* the zone state's tmpfs file, or -1 */
};

/* The backend a device of @cfg is served with (zoned or plain RAM). */
const struct backend_ops *store_backend(const struct ublk_config *cfg);

/* The backend's data for ublk_start(): the zones, or the store. */
void *store_data(struct served_store *st);

/*
 * With the store of a zoned device open: its zones, fresh (@create) or as
 * a crash left them, kept in a file next to a file store.  0 or -errno.
 */
int open_zones(struct served_store *st, const struct zone_config *zcfg, bool create);

/*
 * Open the store of a new device (a file for --recoverable, named after
 * its id, and recorded).  0 or -errno after saying why.
 */
int open_new_store(struct options *o, const struct ublk_dev *dev, struct served_store *st);

/* Record @st as the store of device @id, made as @geo. */
void record_store(int id, struct served_store *st, const struct record_geometry *geo);

/*
 * Serve @dev from @st until stopped, then remove the device and, unless
 * the device was kept for recovery, its store.  After a handover, start
 * the server that takes it over.  Returns 0 or -errno.
 */
int serve(struct ublk_dev *dev, struct served_store *st);

/* Close the store and, if @remove, delete its file and record. */
void store_done(struct served_store *st, int dev_id, bool remove);

#endif
