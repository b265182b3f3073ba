/*
 * holders.h - who uses a ublk disk.
 *
 * Pulling a RAM disk from under a file system loses everything on it, so
 * a stop signal, or `del` without --force, first asks whether anyone
 * holds the disk.  (Where the driver has SAFE_STOP_DEV, Linux 7.0, the
 * kernel answers that atomically with TRY_STOP_DEV; this is for the rest,
 * and for naming who it is.)
 */
#ifndef UBLK_MEM_HOLDERS_H
#define UBLK_MEM_HOLDERS_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Is /dev/ublkbN (or a partition of it) in use: a file system mounted on
 * it in any mount namespace, a device stacked on it, a process holding it
 * open?  Says who in @who ("mounted on /mnt, held by dm-0, open by pid 12
 * (dd)").
 */
bool disk_in_use(int dev_id, char *who, size_t len);

#endif
