/*
 * serve.h - serving one device from its store, start to end: the store
 * and its record, the control socket, ublk_start(), the wait
 * (process.c), ublk_finish(), and what becomes of the store and of a
 * handover's successor.
 */
#ifndef UBLK_MEM_SERVE_H
#define UBLK_MEM_SERVE_H

#include <stdbool.h>

#include "options.h"
#include "record.h"
#include "ublk.h"
#include "store.h"

/* A store opened for a device: what it is and whether it must go. */
struct served_store {
	struct store store;
	struct record rec;
	bool file;		/* a file that outlives the process */
	bool fresh;		/* made by this process for a new device */
	bool rebuilt;		/* served by a device made anew (--rebuild) */
};

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
