/*
 * ublk.h - the ublk protocol's API: create, serve, recover and remove a
 * ublk device, with a backend (backend.h) holding its data.
 *
 * ublk splits a block device in two.  The kernel driver (ublk_drv) owns
 * /dev/ublkbN and turns every block request into a small descriptor; a
 * server process (this program) fetches those descriptors through io_uring
 * commands on /dev/ublkcN, does the I/O however it likes, and commits the
 * result back.  The files behind this header speak that protocol and know
 * nothing about where the data lives (a backend does), nor about signals,
 * the command line or the process (the caller does: main.c, process.c).
 * Read uring.c first, then ublk_ctrl.c, ublk_io.c, ublk.c.
 *
 * The kernel's definitions are in ublk_cmd.h.
 */
#ifndef UBLK_MEM_UBLK_H
#define UBLK_MEM_UBLK_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "ublk_cmd.h"
#include "ublk_io.h"

/* What the user asked for. */
struct ublk_config {
	uint64_t size;		/* bytes */
	unsigned block_size;	/* logical block size */
	unsigned nr_queues;
	unsigned depth;
	/*
	 * Threads serving each queue, its tags dealt out among them (tag t
	 * to thread t % queue_threads); more than 1 needs PER_IO_DAEMON.
	 * 0 means 1.
	 */
	unsigned queue_threads;
	int dev_id;		/* -1: the kernel picks a free one */
	enum ublk_copy_mode copy_mode;
	bool copy_mode_set;	/* given by the user: kept on either path */
	enum ublk_io_path io_path;
	/*
	 * Spin for the next request before sleeping: 0 spins briefly while
	 * the device is busy, UBLK_POLL_OFF never, other values always spin
	 * up to that many microseconds.
	 */
	unsigned poll_us;
	bool recoverable;	/* UBLK_F_USER_RECOVERY(_REISSUE) */
	/*
	 * Made by an ordinary user (UBLK_F_UNPRIVILEGED_DEV, see
	 * ublk_unprivileged()): a device of that user's own.
	 */
	bool unprivileged;
	/*
	 * A host-managed zoned device (UBLK_F_ZONED): its zone size in bytes
	 * (a power of two; 0 for a plain device) and its limits on open and
	 * active zones (0: none).  The backend keeps the zones (zone.h).
	 */
	uint64_t zone_size;
	unsigned max_open_zones, max_active_zones;
	/*
	 * The backend already holds data (a device rebuilt from its store):
	 * a recoverable device that fails to start is kept, not deleted.
	 */
	bool holds_data;
	/*
	 * The device may serve as swap (the server locked its memory,
	 * lock_memory()).  A queue thread may not wait for I/O
	 * (PR_SET_IO_FLUSHER), and under the pressure that makes the kernel
	 * swap, a page first touched could wait for a free page for ever,
	 * and a write to a log on tmpfs for a page swapped out to this very
	 * device: so the request buffers are allocated at start, as in
	 * bounce mode, and queue threads say nothing of failed requests
	 * (counted in the stats all the same).
	 */
	bool as_swap;
	bool trace;		/* print every command and request */
};

/*
 * Why a configuration cannot be served (ublk_config_check()).  The caller
 * says it in its own words: these name the rule, not the option.
 */
enum ublk_conflict {
	UBLK_CONFIG_OK,
	UBLK_BATCH_NO_GET_DATA,		/* batched commands have no NEED_GET_DATA */
	UBLK_BATCH_NO_ZERO_COPY,	/* ... nor AUTO_BUF_REG */
	UBLK_BATCH_NO_THREADS,		/* the driver deals batches out by queue */
	UBLK_BATCH_DEPTH_1,		/* the driver's batch queue needs 2 slots */
	UBLK_THREADS_OVER_DEPTH,	/* a thread would have no tags */
	UBLK_ZONED_NEEDS_USER_COPY,	/* a zone append's sector rides in addr */
	UBLK_ZONED_NO_BATCH,		/* zones are served per request here */
	/* What the driver keeps from an ordinary user's devices: */
	UBLK_UNPRIV_NO_RECOVERY,	/* USER_RECOVERY is dropped */
	UBLK_UNPRIV_NO_USER_COPY,	/* USER_COPY is refused */
	UBLK_UNPRIV_NO_ZERO_COPY,	/* so are AUTO_BUF_REG and SUPPORT_ZERO_COPY */
	UBLK_UNPRIV_NO_ZONED,		/* zones need USER_COPY here */
	UBLK_LACKS_FLAG,		/* this driver lacks a flag it needs */
};

/*
 * The UBLK_F_* flags the driver does not give an ordinary user's device
 * (it refuses them, or drops them), with ZONED, which ublk-mem serves in
 * user_copy mode only.
 */
#define UBLK_ROOT_ONLY_FLAGS	(UBLK_F_USER_COPY | UBLK_F_SUPPORT_ZERO_COPY | \
				 UBLK_F_AUTO_BUF_REG | UBLK_F_USER_RECOVERY | \
				 UBLK_F_USER_RECOVERY_REISSUE | UBLK_F_USER_RECOVERY_FAIL_IO | \
				 UBLK_F_QUIESCE | UBLK_F_ZONED | UBLK_F_INTEGRITY)

/*
 * Can @cfg be served by a driver offering @features (all ones: could any
 * driver serve it)?  On UBLK_LACKS_FLAG, *missing is the flag.  The one
 * place the rules of copy mode x I/O path x threads x kernel are kept.
 */
enum ublk_conflict ublk_config_check(const struct ublk_config *cfg, uint64_t features,
				     uint64_t *missing);

/* ---- the control channel (ublk_ctrl.c) ---- */

/* A handle on /dev/ublk-control and the ring that talks to it. */
struct ublk_ctrl;

/* Open the channel and ask GET_FEATURES (saying why on failure). */
int ublk_ctrl_open(struct ublk_ctrl **ctrl, bool trace);
void ublk_ctrl_close(struct ublk_ctrl *ctrl);

/* The driver's GET_FEATURES answer: UBLK_F_* flags. */
uint64_t ublk_features(const struct ublk_ctrl *ctrl);

/*
 * Does the driver take this process for an ordinary user (no
 * CAP_SYS_ADMIN in the first user namespace)?  Its devices are then
 * unprivileged ones (UBLK_F_UNPRIVILEGED_DEV): its own, with less on
 * offer (see ublk_config_check()).
 */
bool ublk_unprivileged(const struct ublk_ctrl *ctrl);

/* The name of feature flag bit @bit ("USER_COPY"), or NULL if unknown. */
const char *ublk_feature_name(unsigned bit);

/* The first Linux release whose driver has flag bit @bit ("6.5"), or "?". */
const char *ublk_feature_since(unsigned bit);

/* Read a device's settings and parameters (for `list`, `recover`). */
int ublk_get_info(struct ublk_ctrl *ctrl, int dev_id,
		  struct ublksrv_ctrl_dev_info *info, struct ublk_params *params);

/* Is the device's server process still running (not gone, not a zombie)? */
bool ublk_server_running(const struct ublksrv_ctrl_dev_info *info);

/*
 * Remove a device whatever its state and wait, up to @timeout_ms, until
 * the kernel has let go of its id (which waits for the last user of the
 * block device, e.g. a mounted file system).  Returns 0, -EBUSY when the
 * id is still held after the wait, or -errno.
 */
int ublk_delete(struct ublk_ctrl *ctrl, int dev_id, unsigned timeout_ms);

/* Ids of existing ublk devices, ascending; returns the count or -errno. */
int ublk_list_ids(int *ids, int max);

/* ---- serving a device (ublk.c) ---- */

/*
 * A device this process serves.  Its life, as the caller sees it:
 *
 *   ublk_add() or ublk_attach()   the device exists; its id is known
 *   ublk_start()                  queue threads, START_DEV (or recovery)
 *   ... the caller waits: for a stop signal, a control request, or
 *       ublk_event_fd() (a queue thread ended by itself) ...
 *   ublk_finish()                 stop it, or keep it for recovery
 *   ublk_remove()                 delete it (unless kept) and free it
 */
struct ublk_dev;

/* ADD_DEV and SET_PARAMS for a new device (not yet serving). */
int ublk_add(struct ublk_ctrl *ctrl, const struct ublk_config *cfg,
	     const struct backend_ops *ops, struct ublk_dev **dev);

/*
 * Prepare to take over device @dev_id, whose server died: its settings
 * come from the kernel, @cfg supplies trace, poll and thread settings.
 * Nothing is changed yet; ublk_start() starts the recovery.
 */
int ublk_attach(struct ublk_ctrl *ctrl, int dev_id, const struct ublk_config *cfg,
		const struct backend_ops *ops, struct ublk_dev **dev);

/*
 * Serve the device with backend data @data: start the queue threads, then
 * START_DEV (or START/END_USER_RECOVERY) and wait for the driver, asking
 * @give_up(@arg) every 100 ms meanwhile: when it says yes (a stop signal,
 * say), the start is given up (-ECANCELED).  It is given up too when a
 * queue thread fails, or after 30 s.  Returns 0 once the device is live,
 * or -errno after saying why (not for a give-up the caller asked).
 */
int ublk_start(struct ublk_dev *dev, void *data, bool (*give_up)(void *arg), void *arg);

/*
 * While it serves: a descriptor that becomes readable when a queue thread
 * ends by itself, and then why: the failing queue's -errno, or -ENODEV
 * when someone else stopped the device (0 while every queue serves).
 */
int ublk_event_fd(const struct ublk_dev *dev);
int ublk_serving_status(const struct ublk_dev *dev);

/*
 * TRY_STOP_DEV, where the driver has SAFE_STOP_DEV (Linux 7.0): stop the
 * device only if nobody has it open.  0 (stopped), -EBUSY (in use), or
 * -EOPNOTSUPP (the caller must look for users itself).
 */
int ublk_try_stop(struct ublk_dev *dev);

/*
 * End serving, with @status: 0 after a stop the caller asked for (or a
 * start it gave up), else the -errno serving ended with.  Then the rule
 * of a device's data: only a device that went live and was stopped as
 * asked is stopped for good; a recoverable one whose data matters and
 * that ended any other way (a failure, a start that never finished, a
 * handover) is kept as a crashed server would leave it, for the next
 * server.  Returns @status.
 */
int ublk_finish(struct ublk_dev *dev, int status);

/* After ublk_finish(): what became of the device. */
bool ublk_kept(const struct ublk_dev *dev);		/* left for recovery */
bool ublk_went_live(const struct ublk_dev *dev);	/* served in this process */
/*
 * Was the device live, stopped as asked (a stop signal, not a failure or
 * a handover), and did the kernel confirm the stop?  Only then may the
 * data behind it go: every other ending keeps a recoverable store.
 */
bool ublk_stopped_cleanly(const struct ublk_dev *dev);
/*
 * Was the device kept for its data, but in a state only a rebuild from
 * the store can serve (it never started, or had to be stopped)?
 */
bool ublk_needs_rebuild(const struct ublk_dev *dev);

int ublk_dev_id(const struct ublk_dev *dev);

/*
 * What the device's queues have served since this server started, as
 * `ublk-mem stats` shows it: requests by kind, the bytes they moved, and
 * those that failed (zram's io_stat names).
 */
struct ublk_io_stats {
	uint64_t reads, writes, discards, write_zeroes, flushes;
	uint64_t read_bytes, written_bytes;
	uint64_t failed_reads, failed_writes;
};

/* Sum every queue's counts; callable from any thread while serving. */
void ublk_io_stats(const struct ublk_dev *dev, struct ublk_io_stats *st);

/* The device's settings, as the kernel has them. */
const struct ublksrv_ctrl_dev_info *ublk_info(const struct ublk_dev *dev);

/* The device's logical block size in bytes. */
unsigned ublk_block_size(const struct ublk_dev *dev);

/* How it is served: ublk_config's poll_us, and threads per queue (>= 1). */
unsigned ublk_poll_us(const struct ublk_dev *dev);
unsigned ublk_queue_threads(const struct ublk_dev *dev);

/* The GET_FEATURES answer of the device's driver. */
uint64_t ublk_dev_features(const struct ublk_dev *dev);

/*
 * Tell the kernel the device's new size (UPDATE_SIZE, Linux 6.16): what
 * `blockdev --getsize64` and file systems see.  The backend must already
 * hold that much (growing) or no longer need it (shrinking).  0 or -errno.
 */
int ublk_resize(struct ublk_dev *dev, uint64_t new_size);

/*
 * Hand the (recoverable) device, with its data, to the next server: end
 * serving; ublk_finish() then keeps it.  See ublk.c for what QUIESCE adds.
 */
int ublk_hand_over(struct ublk_dev *dev, unsigned timeout_ms);

/* Requests still held by the queue threads when they ended. */
unsigned ublk_requests_held(const struct ublk_dev *dev);

/*
 * After ublk_finish(): must the process exit now, touching nothing the
 * queue threads use (its backend data)?  True after a handover without
 * QUIESCE.
 */
bool ublk_must_exit(const struct ublk_dev *dev);

/*
 * Delete the device (unless it was kept for recovery) and free @dev.
 * Returns what ublk_delete() returns, or 0 when kept.
 */
int ublk_remove(struct ublk_dev *dev);

#endif
