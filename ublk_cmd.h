/*
 * ublk_cmd.h - the kernel's ublk ABI: what goes into the control and I/O
 * commands, and what the driver writes back.
 *
 * These definitions mirror include/uapi/linux/ublk_cmd.h (Linux 6.12, with
 * what later releases added: 7.3's flags, batched commands, zoned ops).
 * The project carries its own copy so it builds without kernel headers,
 * as liburing carries io_uring.h and ublksrv ublk_cmd.h: the ABI stands
 * apart from the API (ublk.h) built on it.
 */
#ifndef UBLK_MEM_UBLK_CMD_H
#define UBLK_MEM_UBLK_CMD_H

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
	/*
	 * The buffer the kernel copies to/from; with USER_COPY (no buffer),
	 * a ZONE_APPEND's COMMIT puts the sector it wrote at here instead.
	 */
	uint64_t addr;
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
/* Zoned devices (UBLK_F_ZONED): zone management and zone append. */
#define UBLK_IO_OP_ZONE_OPEN	10
#define UBLK_IO_OP_ZONE_CLOSE	11
#define UBLK_IO_OP_ZONE_FINISH	12
#define UBLK_IO_OP_ZONE_APPEND	13
#define UBLK_IO_OP_ZONE_RESET_ALL	14
#define UBLK_IO_OP_ZONE_RESET	15
/*
 * A zone report: start_sector is a zone's first sector, nr_sectors holds
 * how many zones at most; the server answers with an array of struct
 * blk_zone (zone.h) in the request's buffer.
 */
#define UBLK_IO_OP_REPORT_ZONES	18

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

#endif
