/*
 * ublk_ctrl.h - the control channel inside the protocol's files: what
 * ublk.c needs of ublk_ctrl.c beyond the API (ublk.h).
 */
#ifndef UBLK_MEM_UBLK_CTRL_H
#define UBLK_MEM_UBLK_CTRL_H

#include <stdbool.h>
#include <stdint.h>

#include "uring.h"

/* A handle on /dev/ublk-control and the ring that talks to it. */
struct ublk_ctrl {
	int fd;			/* /dev/ublk-control */
	struct uring ring;	/* SQE128: the command needs 32 bytes */
	uint64_t features;	/* GET_FEATURES answer */
	bool trace;
};

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
