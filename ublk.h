/*
 * ublk.h - the ublk protocol: kernel ABI, the backend interface, and the
 * functions that create, serve, recover and remove a ublk device.
 *
 * ublk splits a block device in two.  The kernel driver (ublk_drv) owns
 * /dev/ublkbN and turns every block request into a small descriptor; a
 * server process (this program) fetches those descriptors through io_uring
 * commands on /dev/ublkcN, does the I/O however it likes, and commits the
 * result back.  ublk.c speaks that protocol and knows nothing about where
 * the data lives: a backend (mem_backend.c) supplies it through
 * struct ublk_backend_ops.
 *
 * The ABI definitions mirror include/uapi/linux/ublk_cmd.h (Linux 6.12);
 * the project carries its own copy so it builds without kernel headers.
 */
#ifndef UBLK_MEM_UBLK_H
#define UBLK_MEM_UBLK_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- kernel ABI: control commands on /dev/ublk-control ---- */

/* The command payload, in the 80-byte command area of a 128-byte SQE. */
struct ublksrv_ctrl_cmd {
	uint32_t dev_id;	/* target device, or ~0U with ADD_DEV: any */
	uint16_t queue_id;	/* ~0 for device-wide commands */
	uint16_t len;		/* length of the buffer at addr */
	uint64_t addr;		/* in/out buffer */
	uint64_t data[1];	/* inline argument */
	uint16_t dev_path_len;	/* unprivileged devices only */
	uint16_t pad;
	uint32_t reserved;
};

struct ublksrv_ctrl_dev_info {
	uint16_t nr_hw_queues;
	uint16_t queue_depth;
	uint16_t state;		/* UBLK_S_DEV_* */
	uint16_t pad0;
	uint32_t max_io_buf_bytes;
	uint32_t dev_id;
	int32_t ublksrv_pid;
	uint32_t pad1;
	uint64_t flags;		/* UBLK_F_* */
	uint64_t ublksrv_flags;	/* the server's own; the kernel keeps it */
	uint32_t owner_uid;
	uint32_t owner_gid;
	uint64_t reserved1;
	uint64_t reserved2;
};

/*
 * Control opcodes, ioctl-encoded: _IOR/_IOWR('u', nr, struct
 * ublksrv_ctrl_cmd).  The kernel compares only the nr byte, except for
 * GET_FEATURES, which it compares whole.
 */
#define UBLK_U_CMD_GET_QUEUE_AFFINITY	0x80207501U
#define UBLK_U_CMD_GET_DEV_INFO		0x80207502U
#define UBLK_U_CMD_ADD_DEV		0xC0207504U
#define UBLK_U_CMD_DEL_DEV		0xC0207505U
#define UBLK_U_CMD_START_DEV		0xC0207506U
#define UBLK_U_CMD_STOP_DEV		0xC0207507U
#define UBLK_U_CMD_SET_PARAMS		0xC0207508U
#define UBLK_U_CMD_GET_PARAMS		0x80207509U
#define UBLK_U_CMD_START_USER_RECOVERY	0xC0207510U
#define UBLK_U_CMD_END_USER_RECOVERY	0xC0207511U
#define UBLK_U_CMD_GET_DEV_INFO2	0x80207512U
#define UBLK_U_CMD_GET_FEATURES		0x80207513U
#define UBLK_U_CMD_DEL_DEV_ASYNC	0x80207514U
#define UBLK_U_CMD_UPDATE_SIZE		0xC0207515U
#define UBLK_U_CMD_QUIESCE_DEV		0xC0207516U
#define UBLK_U_CMD_TRY_STOP_DEV		0xC0207517U

/*
 * Device flags (dev_info.flags), also the GET_FEATURES answer.  The
 * kernel rejects ADD_DEV with a flag it does not know, so each is asked
 * for only where GET_FEATURES lists it.
 */
#define UBLK_F_SUPPORT_ZERO_COPY	(1ULL << 0)
#define UBLK_F_URING_CMD_COMP_IN_TASK	(1ULL << 1)
#define UBLK_F_NEED_GET_DATA		(1ULL << 2)
#define UBLK_F_USER_RECOVERY		(1ULL << 3)
#define UBLK_F_USER_RECOVERY_REISSUE	(1ULL << 4)
#define UBLK_F_UNPRIVILEGED_DEV		(1ULL << 5)
#define UBLK_F_CMD_IOCTL_ENCODE		(1ULL << 6)
#define UBLK_F_USER_COPY		(1ULL << 7)
#define UBLK_F_ZONED			(1ULL << 8)
#define UBLK_F_USER_RECOVERY_FAIL_IO	(1ULL << 9)
#define UBLK_F_UPDATE_SIZE		(1ULL << 10)
#define UBLK_F_AUTO_BUF_REG		(1ULL << 11)
#define UBLK_F_QUIESCE			(1ULL << 12)
#define UBLK_F_PER_IO_DAEMON		(1ULL << 13)
#define UBLK_F_BUF_REG_OFF_DAEMON	(1ULL << 14)
#define UBLK_F_BATCH_IO			(1ULL << 15)
#define UBLK_F_INTEGRITY		(1ULL << 16)
#define UBLK_F_SAFE_STOP_DEV		(1ULL << 17)
#define UBLK_F_NO_AUTO_PART_SCAN	(1ULL << 18)
#define UBLK_F_SHMEM_ZC			(1ULL << 19)
#define UBLK_F_IO_DESC_SIZE		(1ULL << 20)

/* dev_info.state */
#define UBLK_S_DEV_DEAD		0
#define UBLK_S_DEV_LIVE		1
#define UBLK_S_DEV_QUIESCED	2
#define UBLK_S_DEV_FAIL_IO	3

struct ublk_param_basic {
	uint32_t attrs;			/* UBLK_ATTR_* */
	uint8_t logical_bs_shift;
	uint8_t physical_bs_shift;
	uint8_t io_opt_shift;
	uint8_t io_min_shift;
	uint32_t max_sectors;		/* largest request, in 512-byte units */
	uint32_t chunk_sectors;
	uint64_t dev_sectors;		/* capacity, in 512-byte units */
	uint64_t virt_boundary_mask;
};

#define UBLK_ATTR_READ_ONLY		(1U << 0)
#define UBLK_ATTR_ROTATIONAL		(1U << 1)
#define UBLK_ATTR_VOLATILE_CACHE	(1U << 2)
#define UBLK_ATTR_FUA			(1U << 3)

struct ublk_param_discard {
	uint32_t discard_alignment;
	uint32_t discard_granularity;
	uint32_t max_discard_sectors;
	uint32_t max_write_zeroes_sectors;
	uint16_t max_discard_segments;
	uint16_t reserved0;
};

struct ublk_param_devt {		/* read-only: filled by GET_PARAMS */
	uint32_t char_major;
	uint32_t char_minor;
	uint32_t disk_major;
	uint32_t disk_minor;
};

struct ublk_param_zoned {
	uint32_t max_open_zones;
	uint32_t max_active_zones;
	uint32_t max_zone_append_sectors;
	uint8_t reserved[20];
};

struct ublk_params {
	uint32_t len;			/* sizeof(struct ublk_params) */
	uint32_t types;			/* UBLK_PARAM_TYPE_*: parts present */
	struct ublk_param_basic basic;
	struct ublk_param_discard discard;
	struct ublk_param_devt devt;
	struct ublk_param_zoned zoned;
};

#define UBLK_PARAM_TYPE_BASIC	(1U << 0)
#define UBLK_PARAM_TYPE_DISCARD	(1U << 1)
#define UBLK_PARAM_TYPE_DEVT	(1U << 2)
#define UBLK_PARAM_TYPE_ZONED	(1U << 3)

/* ---- kernel ABI: I/O commands on /dev/ublkcN ---- */

/* The payload of FETCH / COMMIT_AND_FETCH / NEED_GET_DATA (16 bytes). */
struct ublksrv_io_cmd {
	uint16_t q_id;
	uint16_t tag;		/* which request slot of the queue */
	int32_t result;		/* COMMIT: bytes done, or -errno */
	uint64_t addr;		/* buffer the kernel copies to/from */
};

#define UBLK_U_IO_FETCH_REQ		0xC0107520U
#define UBLK_U_IO_COMMIT_AND_FETCH_REQ	0xC0107521U
#define UBLK_U_IO_NEED_GET_DATA		0xC0107522U

/* CQE results of the I/O commands. */
#define UBLK_IO_RES_OK			0
#define UBLK_IO_RES_NEED_GET_DATA	1
#define UBLK_IO_RES_ABORT		(-19)	/* -ENODEV: tag is retired */

/*
 * UBLK_F_AUTO_BUF_REG (Linux 6.16): the driver puts the pages of a tag's
 * next request in a fixed-buffer slot of the ring its FETCH_REQ or
 * COMMIT_AND_FETCH_REQ came from, and takes them out again at the COMMIT.
 * The slot is named in the SQE's own addr field (the command's addr must
 * be 0): bits 0-15 the slot, 16-23 UBLK_AUTO_BUF_REG_* flags, the rest 0.
 * Without FALLBACK a request whose pages cannot be put there fails with
 * an I/O error; with it, it arrives marked UBLK_IO_F_NEED_REG_BUF.
 */
#define UBLK_AUTO_BUF_REG_FALLBACK	(1U << 0)

static inline uint64_t ublk_auto_buf_reg_addr(uint16_t slot, uint8_t flags)
{
	return (uint64_t)slot | (uint64_t)flags << 16;
}

/*
 * Batched I/O commands (UBLK_F_BATCH_IO, Linux 7.0), which replace the
 * three above on a device made with that flag.  Each carries this 16-byte
 * header in the SQE's command area; PREP and COMMIT point sqe->addr at an
 * array of nr_elem elements of elem_bytes each, FETCH names a group of
 * provided buffers (IOSQE_BUFFER_SELECT) into which it writes tags.
 *
 *   PREP_IO_CMDS    hand tags to the driver at start: "these are ready"
 *   FETCH_IO_CMDS   multishot: each CQE is a batch of new requests, an
 *                   array of 16-bit tags in a provided buffer
 *   COMMIT_IO_CMDS  the results of many requests at once; each tag is then
 *                   ready for its next request.  Answers the bytes of the
 *                   array it handled (fewer on a bad element) or -errno
 */
struct ublk_batch_io {
	uint16_t q_id;
	uint16_t flags;		/* UBLK_BATCH_F_*: what each element holds */
	uint16_t nr_elem;	/* at most the queue depth */
	uint8_t elem_bytes;	/* 8, + 8 with HAS_BUF_ADDR; FETCH: 2 */
	uint8_t reserved;
	uint64_t reserved2;
};

#define UBLK_BATCH_F_HAS_ZONE_LBA		(1U << 0)
#define UBLK_BATCH_F_HAS_BUF_ADDR		(1U << 1)	/* u64 after the header */
#define UBLK_BATCH_F_AUTO_BUF_REG_FALLBACK	(1U << 2)

/* The head of each PREP / COMMIT element. */
struct ublk_elem_header {
	uint16_t tag;
	uint16_t buf_index;	/* AUTO_BUF_REG only */
	int32_t result;		/* COMMIT: bytes done, or -errno */
};

#define UBLK_U_IO_PREP_IO_CMDS		0xC0107525U
#define UBLK_U_IO_COMMIT_IO_CMDS	0xC0107526U
#define UBLK_U_IO_FETCH_IO_CMDS		0xC0107527U

/*
 * One request, as the kernel describes it in the read-only array mapped
 * from /dev/ublkcN; the array is indexed by tag.
 */
struct ublksrv_io_desc {
	uint32_t op_flags;	/* op in bits 0-7, UBLK_IO_F_* above */
	uint32_t nr_sectors;	/* length, in 512-byte units */
	uint64_t start_sector;	/* offset, in 512-byte units */
	uint64_t addr;		/* the buffer the server gave for this tag */
};

#define UBLK_IO_OP_READ		0
#define UBLK_IO_OP_WRITE	1
#define UBLK_IO_OP_FLUSH	2
#define UBLK_IO_OP_DISCARD	3
#define UBLK_IO_OP_WRITE_SAME	4
#define UBLK_IO_OP_WRITE_ZEROES	5

#define UBLK_IO_F_FUA		(1U << 13)
#define UBLK_IO_F_NOUNMAP	(1U << 15)
#define UBLK_IO_F_NEED_REG_BUF	(1U << 17)	/* AUTO_BUF_REG_FALLBACK */

/* Where queue q's descriptor array lives in the /dev/ublkcN mapping. */
#define UBLK_MAX_QUEUE_DEPTH	4096
#define UBLKSRV_CMD_BUF_OFFSET	0

/* USER_COPY: file offset of byte @off of the request (@q, @tag). */
#define UBLKSRV_IO_BUF_OFFSET	0x80000000ULL
#define UBLK_TAG_OFF		25
#define UBLK_QID_OFF		41

/* ---- the backend interface ---- */

/*
 * What a backend provides.  Offsets and lengths are in bytes and always
 * lie inside the device.  Each callback returns 0 or -errno; a failure
 * fails that one request with that error and nothing else.  Callbacks of
 * different queues run concurrently, on different threads.
 */
struct ublk_backend_ops {
	const char *name;
	/* Required: copy @len bytes at @off into @buf. */
	int (*read)(void *data, void *buf, uint64_t off, uint32_t len);
	/* Required: store @len bytes from @buf at @off. */
	int (*write)(void *data, const void *buf, uint64_t off, uint32_t len);
	/* Optional: make written data durable (no-op when absent). */
	int (*flush)(void *data);
	/* Optional: forget a range; it must read back as zeros. */
	int (*discard)(void *data, uint64_t off, uint64_t len);
	/* Optional: make a range read as zeros (required if discard is). */
	int (*write_zeroes)(void *data, uint64_t off, uint64_t len);
	/*
	 * Optional: make sure a WRITE of [@off, @off + @len) can land without
	 * allocating anything, before any byte of it is copied.  Called for
	 * every WRITE before `direct` or `write`; -ENOSPC (or another error)
	 * fails the request there.  Needed because in the copy modes where
	 * the kernel copies into our memory it cannot fail the request when
	 * that memory cannot be allocated: it retries for ever.
	 */
	int (*prepare_write)(void *data, uint64_t off, uint32_t len);
	/*
	 * Optional: the address where bytes [@off, @off + @len) of the device
	 * live contiguously in this process, or NULL.  With it, the copy
	 * modes other than "bounce" let the kernel copy straight between a
	 * request and the backend's memory: one copy instead of two.  For a
	 * read the memory must be readable without allocating anything; for
	 * a write it is asked only after prepare_write() succeeded.
	 */
	void *(*direct)(void *data, uint64_t off, uint32_t len, bool for_write);
	/*
	 * Optional: a file whose bytes at the device's offsets are the
	 * backend's, which io_uring reads and writes without blocking, or
	 * -1.  The zero_copy mode needs it: io_uring copies between it and
	 * the request's own pages.  A write is still prepared first.
	 */
	int (*file)(void *data);
};

/* How request data travels between the kernel and the backend. */
enum ublk_copy_mode {
	UBLK_COPY_BOUNCE,	/* per-tag buffer; kernel copies, we copy */
	UBLK_COPY_GET_DATA,	/* NEED_GET_DATA: kernel copies to backend */
	UBLK_COPY_USER,		/* USER_COPY: pread/pwrite on /dev/ublkcN */
	UBLK_COPY_ZERO,		/* AUTO_BUF_REG: io_uring reads and writes a
				   file straight to the request's pages */
};

const char *ublk_copy_mode_name(enum ublk_copy_mode mode);
/* The copy mode of a device, from its UBLK_F_* flags. */
enum ublk_copy_mode ublk_copy_mode_of(uint64_t flags);

/* How requests travel between the driver and the queue threads. */
enum ublk_io_path {
	UBLK_IO_PATH_AUTO,		/* batch where offered and faster */
	UBLK_IO_PATH_PER_REQUEST,	/* FETCH / COMMIT_AND_FETCH per tag */
	UBLK_IO_PATH_BATCH,		/* UBLK_F_BATCH_IO (Linux 7.0) */
};

const char *ublk_io_path_name(enum ublk_io_path path);

/* ublk_config.poll_us: never spin, not even while the device is busy. */
#define UBLK_POLL_OFF	UINT_MAX

/* The largest request the server accepts, and its bounce buffer size. */
#define UBLK_MAX_IO_BYTES	(512U << 10)

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
	 * The backend already holds data (a device rebuilt from its store):
	 * a recoverable device that fails to start is kept, not deleted.
	 */
	bool holds_data;
	bool trace;		/* print every command and request */
};

/* ---- the control channel ---- */

/* A handle on /dev/ublk-control and the ring that talks to it. */
struct ublk_ctrl;

/* Open the channel and ask GET_FEATURES (printing why on failure). */
int ublk_ctrl_open(struct ublk_ctrl **ctrl, bool trace);
void ublk_ctrl_close(struct ublk_ctrl *ctrl);

/* The driver's GET_FEATURES answer: UBLK_F_* flags. */
uint64_t ublk_features(const struct ublk_ctrl *ctrl);

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

/*
 * Is /dev/ublkbN (or a partition of it) in use: a file system mounted on
 * it, a device stacked on it, a process holding it open?  Says what in
 * @who ("mounted on /mnt, open by pid 12 (dd)").
 */
bool ublk_in_use(int dev_id, char *who, size_t len);

/* Ids of existing ublk devices, ascending; returns the count or -errno. */
int ublk_list_ids(int *ids, int max);

/* ---- serving a device ---- */

/*
 * A device this process serves.  Its life, as the caller sees it:
 *
 *   ublk_add() or ublk_attach()   the device exists; its id is known
 *   ublk_run()                    serve until told to stop, then stop it
 *   ublk_remove()                 delete it (unless kept for recovery)
 */
struct ublk_dev;

/* ADD_DEV and SET_PARAMS for a new device (not yet serving). */
int ublk_add(struct ublk_ctrl *ctrl, const struct ublk_config *cfg,
	     const struct ublk_backend_ops *ops, struct ublk_dev **dev);

/*
 * Prepare to take over device @dev_id, whose server died: its settings
 * come from the kernel, @cfg supplies trace and poll settings.  Nothing
 * is changed yet; ublk_run() starts the recovery.
 */
int ublk_attach(struct ublk_ctrl *ctrl, int dev_id, const struct ublk_config *cfg,
		const struct ublk_backend_ops *ops, struct ublk_dev **dev);

int ublk_dev_id(const struct ublk_dev *dev);

/*
 * Serve the device with backend data @data: start the queue threads, then
 * START_DEV (or, after ublk_attach(), START/END_USER_RECOVERY), call
 * @on_live, and serve until a stop signal (SIGINT, SIGTERM, SIGHUP,
 * SIGQUIT) or a failure.  Then stop the device: STOP_DEV, or, for a
 * recoverable device that failed while it held data, leave it quiesced
 * for `ublk-mem recover` (ublk_kept() says which).  Returns 0 after a
 * requested stop, or -errno after saying why on stderr.
 */
int ublk_run(struct ublk_dev *dev, void *data,
	     void (*on_live)(int dev_id, void *arg), void *arg);

/* Was the device left for recovery instead of stopped? */
bool ublk_kept(const struct ublk_dev *dev);

/* Did the device go live (START_DEV or END_USER_RECOVERY) in ublk_run()? */
bool ublk_went_live(const struct ublk_dev *dev);

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
 * While ublk_run() serves, call @on_control in its thread whenever @fd is
 * readable (a listening socket for commands such as resize).
 */
void ublk_set_control(struct ublk_dev *dev, int fd,
		      void (*on_control)(struct ublk_dev *dev, void *arg), void *arg);

/*
 * Tell the kernel the device's new size (UPDATE_SIZE, Linux 6.16): what
 * `blockdev --getsize64` and file systems see.  The backend must already
 * hold that much (growing) or no longer need it (shrinking).  0 or -errno.
 */
int ublk_resize(struct ublk_dev *dev, uint64_t new_size);

/*
 * From @on_control: end serving and leave the (recoverable) device, with
 * its data, to the next server (`ublk-mem recover`); ublk_run() returns 0
 * and ublk_kept() is true.  See ublk.c for what QUIESCE adds.
 */
int ublk_hand_over(struct ublk_dev *dev, unsigned timeout_ms);

/* Requests still held by the queue threads when they ended. */
unsigned ublk_requests_held(const struct ublk_dev *dev);

/*
 * After ublk_run(): must the process exit now, touching nothing the queue
 * threads use (its backend data)?  True after a handover without QUIESCE.
 */
bool ublk_must_exit(const struct ublk_dev *dev);

/*
 * Delete the device (unless it was kept for recovery) and free @dev.
 * Returns what ublk_delete() returns, or 0 when kept.
 */
int ublk_remove(struct ublk_dev *dev);

/*
 * Block the signals ublk_run() handles, in the calling thread and in
 * every thread it creates later: call it first thing in main().
 */
void ublk_block_signals(void);

/* Make @set the signals that stop the server (SIGINT, SIGTERM, SIGHUP, SIGQUIT). */
void ublk_stop_signals(sigset_t *set);

/* Report a failure on stderr as "ublk-mem: ...". */
void ublk_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
