/*
 * owner.h - whose a device is: a device made by an ordinary user
 * (UBLK_F_UNPRIVILEGED_DEV) is that user's, and only its owner and root
 * may use it; and `ublk-mem chown`, which hands such a device's nodes to
 * its owner when they appear (udev, mdev, or root by hand).
 */
#ifndef UBLK_MEM_OWNER_H
#define UBLK_MEM_OWNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ublk.h"

/*
 * The name of user @uid as /etc/passwd has it, read directly (a static
 * binary has no NSS), into @buf; its number when there is none, or when
 * the name holds characters a user name should not.  True if named.
 */
bool owner_name(uint32_t uid, char *buf, size_t len);

/*
 * Who owns device @id, for a process the driver will not answer about it
 * (@err: -EPERM, a device root made; -EACCES, one whose node this
 * process may not use): root, or the owner of its node /dev/ublkcN.
 */
uint32_t owner_of_node(int id, int err);

/*
 * A device's owner in `list --json`, after its "pid": "owner_uid",
 * "owner_gid" (null unless @gid_known) and "owner", the name /etc/passwd
 * gives (null if none).
 */
void owner_json(FILE *f, uint32_t uid, uint32_t gid, bool gid_known);

/*
 * A device this process may not query (another user's, or root's to a
 * user) in `list`: its id, state "private", and owner @uid (a line of the
 * table, or with @json an object like the others, unknowns null).
 */
void owner_list_private(FILE *f, int id, uint32_t uid, bool json);

/*
 * ublk_get_info() for a command that would @doing ("delete") device @id:
 * a device of another user (or of root, to a user) is refused with one
 * line naming its owner, as is one that does not exist.  0 or -errno.
 */
int owner_get_info(struct ublk_ctrl *ctrl, int id, const char *doing,
		   struct ublksrv_ctrl_dev_info *info, struct ublk_params *params);

#endif
