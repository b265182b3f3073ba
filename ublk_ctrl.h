/*
 * ublk_ctrl.h - the control channel inside the protocol's files: what
 * ublk.c needs of ublk_ctrl.c beyond the API (ublk.h).
 */
#ifndef UBLK_MEM_UBLK_CTRL_H
#define UBLK_MEM_UBLK_CTRL_H

#include <stdbool.h>
#include <stdint.h>

#include "uring.h"

/* Unprivileged devices a handle has met, remembered (see ctrl_note_device()). */
#define CTRL_PATH_IDS	64

/* A handle on /dev/ublk-control and the ring that talks to it. */
struct ublk_ctrl {
	int fd;			/* /dev/ublk-control */
	struct uring ring;	/* SQE128: the command needs 32 bytes */
	uint64_t features;	/* GET_FEATURES answer */
	bool trace;
	bool unprivileged;	/* the driver does not count us as root */
	/*
	 * Ids of devices made with UBLK_F_UNPRIVILEGED_DEV: every command on
	 * one carries the path of its /dev/ublkcN (ctrl_cmd() adds it).
	 */
	int path_ids[CTRL_PATH_IDS];
	unsigned n_path_ids;
};

/*
 * Note what device @dev_id is, from its UBLK_F_* @flags: an unprivileged
 * one's commands name its node from now on.
 */
void ctrl_note_device(struct ublk_ctrl *c, int dev_id, uint64_t flags);

/* Send one control command and wait for its answer (0/-errno or data). */
int ctrl_cmd(struct ublk_ctrl *c, uint32_t op, uint32_t dev_id, void *buf, uint16_t len,
	     uint64_t data0);

/*
 * The same, but waiting in slices: after each, @give_up(@arg) is asked,
 * and when it says yes the command is cancelled (-ECANCELED).
 */
int ctrl_cmd_abortable(struct ublk_ctrl *c, uint32_t op, uint32_t dev_id, void *buf,
		       uint16_t len, uint64_t data0, bool (*give_up)(void *arg), void *arg);

/* "START_DEV": the name of control opcode @op, for messages. */
const char *ctrl_cmd_name(uint32_t op);

#endif
