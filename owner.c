/*
 * owner.c - whose a device is, and `ublk-mem chown`: see owner.h.
 *
 * A user who may open /dev/ublk-control makes devices of their own
 * (UBLK_F_UNPRIVILEGED_DEV).  The driver records the user's uid and gid
 * in the device (owner_uid, owner_gid), answers commands on it from them
 * and from root only, and lets only them open its disk.  But it makes
 * the device's nodes, /dev/ublkcN and /dev/ublkbN, root's, like any
 * other: until they are the owner's, the owner's server can neither send
 * the device commands (the driver checks them against /dev/ublkcN) nor
 * serve it.  Handing them over is root's: `ublk-mem chown`, run by udev
 * (dist/ublk-mem.rules) or mdev when a node appears, reads the owner
 * from the kernel and gives the node to that user.
 */
#define _GNU_SOURCE
#include "log.h"
#include "options.h"
#include "owner.h"
#include "verbs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define NAME_MAX_LEN	32		/* useradd's limit */
#define NODE_MODE	0600		/* the owner's alone, like root's nodes */

/* Where names are read (a variable for the unit tests). */
static const char *passwd_path = "/etc/passwd";

/* ---- names ---- */

/* A user name as useradd makes them: [A-Za-z0-9._-], a trailing '$'. */
static bool name_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > NAME_MAX_LEN || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-' || (c == '$' && i == n - 1)))
			return false;
	}
	return true;
}

/*
 * /etc/passwd's lines are "name:password:uid:gid:...": the first line
 * with @uid names it, as the C library's files lookup would.  Lines too
 * long for the buffer are skipped whole.
 */
bool owner_name(uint32_t uid, char *buf, size_t len)
{
	FILE *f = fopen(passwd_path, "re");
	char line[1024];
	bool named = false;

	snprintf(buf, len, "%u", uid);
	if (!f)
		return false;
	while (!named && fgets(line, sizeof(line), f)) {
		char *pass, *num, *end;
		unsigned long v;
		int ch;

		if (!strchr(line, '\n') && !feof(f)) {
			while ((ch = fgetc(f)) != EOF && ch != '\n')
				;
			continue;
		}
		pass = strchr(line, ':');
		num = pass ? strchr(pass + 1, ':') : NULL;
		if (!num || num[1] < '0' || num[1] > '9')
			continue;
		v = strtoul(num + 1, &end, 10);
		if (*end != ':' || v != uid)
			continue;
		*pass = '\0';
		if (name_ok(line) && strlen(line) < len) {
			snprintf(buf, len, "%s", line);
			named = true;
		}
		break;	/* the first line for @uid is the one */
	}
	fclose(f);
	return named;
}

/* ---- in `list` ---- */

/* Names pass name_ok(): nothing in them needs escaping in JSON. */
void owner_json(FILE *f, uint32_t uid, uint32_t gid, bool gid_known)
{
	char name[64];

	fprintf(f, ",\"owner_uid\":%u,\"owner_gid\":", uid);
	if (gid_known)
		fprintf(f, "%u", gid);
	else
		fputs("null", f);
	if (owner_name(uid, name, sizeof(name)))
		fprintf(f, ",\"owner\":\"%s\"", name);
	else
		fputs(",\"owner\":null", f);
}

void owner_list_private(FILE *f, int id, uint32_t uid, bool json)
{
	char name[64];

	if (!json) {
		owner_name(uid, name, sizeof(name));
		fprintf(f, "%-4d %-15s %-8s %-8s %-6s %-5s %-8s %s\n", id, "private", "-", "-",
			"-", "-", name, "only its owner and root may query it");
		return;
	}
	fprintf(f, "{\"id\":%d,\"device\":\"/dev/ublkb%d\",\"state\":\"private\",\"pid\":null",
		id, id);
	owner_json(f, uid, 0, false);
	fputs(",\"size\":null,\"block_size\":null,\"queues\":null,\"depth\":null,\"copy_mode\":null,\"recoverable\":null,\"flags\":[],\"zoned\":null,\"store\":null,\"stats\":null}",
	      f);
}

/* ---- refusals ---- */

uint32_t owner_of_node(int id, int err)
{
	char path[64];
	struct stat st;

	if (err == -EPERM)
		return 0;	/* the driver's answer for a device root made */
	snprintf(path, sizeof(path), "/dev/ublkc%d", id);
	return stat(path, &st) == 0 ? (uint32_t)st.st_uid : 0;
}

int owner_get_info(struct ublk_ctrl *ctrl, int id, const char *doing,
		   struct ublksrv_ctrl_dev_info *info, struct ublk_params *params)
{
	int ret = ublk_get_info(ctrl, id, info, params);
	char name[64];
	uint32_t uid;

	if (ret == 0)
		return 0;
	if (ret == -ENODEV) {
		log_err("device %d: no such ublk device", id);
	} else if (ret == -EPERM || ret == -EACCES) {
		uid = owner_of_node(id, ret);
		owner_name(uid, name, sizeof(name));
		if (ret == -EPERM)
			log_err("cannot %s device %d: root made it, and only root may %s it",
				doing, id, doing);
		else if (uid == 0)
			log_err("cannot %s device %d: its node /dev/ublkc%d is root's, so only root may %s it",
				doing, id, id, doing);
		else
			log_err("cannot %s device %d: it belongs to %s (uid %u); only its owner and root may %s it",
				doing, id, name, uid, doing);
	} else {
		log_err("device %d: %s", id, strerror(-ret));
	}
	return ret;
}

/* ---- ublk-mem chown ---- */

/*
 * The node udev or mdev names (DEVNAME: "/dev/ublkc3", or "ublkc3" as the
 * kernel's own uevent has it; MDEV: "ublkc3"): its id, and whether it is
 * the char device.  A partition (ublkb3p1) is not one: the driver scans
 * no partition table of an unprivileged device.  0, 1 for a node that is
 * not ours to handle, or -EINVAL.
 */
static int parse_node(const char *name, int *id, bool *cdev)
{
	char kind;
	int n = -1;

	if (!strncmp(name, "/dev/", 5))
		name += 5;
	if (sscanf(name, "ublk%c%d%n", &kind, id, &n) != 2 || n < 0 ||
	    (kind != 'b' && kind != 'c') || *id < 0 || name[5] < '0' || name[5] > '9')
		return -EINVAL;
	*cdev = kind == 'c';
	if (name[n] == 'p' && kind == 'b')
		return 1;
	return name[n] ? -EINVAL : 0;
}

/*
 * Give node /dev/@name, which must be the device numbers @rdev of kind
 * @type (S_IFCHR, S_IFBLK), to @uid and @gid, mode NODE_MODE.  The node
 * is opened without following a link and checked before it is changed,
 * and changed through that descriptor: never another file.
 */
static int give_node(const char *name, mode_t type, dev_t rdev, uint32_t uid, uint32_t gid)
{
	char path[64];
	struct stat st;
	int fd, ret = 0;

	snprintf(path, sizeof(path), "/dev/%s", name);
	fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		log_err("%s: %s", path, strerror(-ret));
		return ret;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
	} else if ((st.st_mode & S_IFMT) != type || st.st_rdev != rdev) {
		log_err("%s is not the device's node (%u:%u): left as it is", path,
			major(rdev), minor(rdev));
		ret = -ESTALE;
	}
	/* An O_PATH descriptor takes fchownat(), and chmod() through /proc. */
	if (ret == 0 && fchownat(fd, "", uid, gid, AT_EMPTY_PATH) < 0)
		ret = -errno;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (ret == 0 && chmod(path, NODE_MODE) < 0)
		ret = -errno;
	if (ret < 0 && ret != -ESTALE)
		log_err("/dev/%s: cannot give it to uid %u: %s", name, uid, strerror(-ret));
	close(fd);
	return ret;
}

/*
 * `ublk-mem chown [ID]`: give the nodes of a device an ordinary user made
 * to that user.  Without ID, the node udev or mdev names in the
 * environment, for ACTION add or change (a change event puts back the
 * block device's default group and mode).  Root's own devices are left
 * alone.
 */
int cmd_chown(int argc, char **argv)
{
	const char *name = NULL, *action = getenv("ACTION");
	struct ublksrv_ctrl_dev_info info;
	struct ublk_params params;
	struct ublk_ctrl *ctrl;
	bool cdev = false, both = argc == 3;
	char node[32];
	int id = -1, ret;

	if (argc > 3 || (argc == 3 && argv[2][0] == '-'))
		usage_error("usage: ublk-mem chown [ID]");
	if (both) {
		id = (int)parse_num(argv[2], "device id", 0, MAX_ID);
	} else {
		name = getenv("DEVNAME");
		if (!name || !*name)
			name = getenv("MDEV");
		if (!name || !*name)
			usage_error("usage: ublk-mem chown ID (or, run by udev or mdev, with DEVNAME or MDEV set)");
		if (action && strcmp(action, "add") && strcmp(action, "change"))
			return 0;	/* a node that goes needs nothing */
		ret = parse_node(name, &id, &cdev);
		if (ret > 0)
			return 0;
		if (ret < 0) {
			log_err("%s is not a ublk device's node: left as it is", name);
			return 1;
		}
	}
	if (ublk_ctrl_open(&ctrl, false) < 0)
		return 1;
	ret = owner_get_info(ctrl, id, "hand over the nodes of", &info, &params);
	ublk_ctrl_close(ctrl);
	if (ret < 0)
		return 1;
	if (!(info.flags & UBLK_F_UNPRIVILEGED_DEV))
		return 0;	/* root's device: its nodes stay root's */
	if (both || cdev) {
		snprintf(node, sizeof(node), "ublkc%d", id);
		ret = give_node(node, S_IFCHR, makedev(params.devt.char_major, params.devt.char_minor),
				info.owner_uid, info.owner_gid);
	}
	/* The disk exists once the device started: none before (major 0). */
	if (ret == 0 && (both || !cdev) && (params.devt.disk_major || !both)) {
		snprintf(node, sizeof(node), "ublkb%d", id);
		ret = give_node(node, S_IFBLK, makedev(params.devt.disk_major, params.devt.disk_minor),
				info.owner_uid, info.owner_gid);
	}
	return ret < 0 ? 1 : 0;
}
