/*
 * admin.c - the verbs that look at devices from outside: list, del,
 * features, resize.  None serves a device; resize asks the one that does
 * (control.c).
 */
#define _GNU_SOURCE
#include "control.h"
#include "holders.h"
#include "log.h"
#include "options.h"
#include "owner.h"
#include "record.h"
#include "ublk.h"
#include "verbs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How long resize waits for the server to finish (a --prealloc store locks its new memory). */
#define RESIZE_TIMEOUT_MS	300000
/* How long stats may take: a compressed store sums its counters at once. */
#define STATS_TIMEOUT_MS	5000
/* How long list waits for each server's stats before showing null. */
#define STATS_QUERY_MS		1000

static const char *state_name(const struct ublksrv_ctrl_dev_info *info)
{
	switch (info->state) {
	case UBLK_S_DEV_LIVE:
		return ublk_server_running(info) ? "live" : "live,no-server";
	case UBLK_S_DEV_QUIESCED:
		return (info->flags & UBLK_F_USER_RECOVERY) ? "recoverable" : "quiesced";
	case UBLK_S_DEV_FAIL_IO:
		return "fail-io";
	default:
		return "dead";
	}
}

static void format_size(char *buf, size_t len, uint64_t bytes)
{
	static const char units[] = "BKMGT";
	unsigned u = 0;

	while (u < 4 && bytes >= 1024 && bytes % 1024 == 0) {
		bytes /= 1024;
		u++;
	}
	snprintf(buf, len, "%llu%c", (unsigned long long)bytes, units[u]);
}

/*
 * Ids of removed devices the kernel still holds because a file system on
 * them is mounted: /dev/ublkbN in the mount table without a device.
 */
static int held_ids(const int *live, int n_live, int *ids, int max)
{
	FILE *f = fopen("/proc/self/mounts", "re");
	char line[512];
	int n = 0, id;

	if (!f)
		return 0;
	while (n < max && fgets(line, sizeof(line), f)) {
		bool known = false;

		if (sscanf(line, "/dev/ublkb%d ", &id) != 1)
			continue;
		for (int i = 0; i < n_live; i++)
			known |= live[i] == id;
		for (int i = 0; i < n; i++)
			known |= ids[i] == id;
		if (!known)
			ids[n++] = id;
	}
	fclose(f);
	return n;
}

/* The length of the valid UTF-8 sequence at @s, or 0 if there is none. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 :
		   s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : 0;
	uint32_t c;

	if (!n)
		return 0;
	c = s[0] & (0x7f >> n);
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	/* No overlong forms, no surrogates, nothing past U+10FFFF. */
	if ((n == 3 && c < 0x800) || (n == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	return n;
}

/*
 * @s as a JSON string.  A path is bytes, JSON is Unicode: bytes that are
 * not UTF-8 become U+FFFD, so the output always parses.
 */
static void json_string(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	fputc('"', f);
	while (*p) {
		size_t n;

		if (*p == '"' || *p == '\\') {
			fprintf(f, "\\%c", *p++);
		} else if (*p < 0x20 || *p == 0x7f) {
			fprintf(f, "\\u%04x", *p++);
		} else if (*p < 0x80) {
			fputc(*p++, f);
		} else if ((n = utf8_len(p))) {
			fwrite(p, 1, n, f);
			p += n;
		} else {
			fputs("\\ufffd", f);
			p++;
		}
	}
	fputc('"', f);
}

/*
 * A server's stats answer, "ok NAME=VALUE...", as a JSON object: numbers,
 * and "compressed" as true or false.
 */
static void json_stats(FILE *f, const char *answer)
{
	char buf[1024], *save = NULL, *word;
	bool first = true;

	snprintf(buf, sizeof(buf), "%s", answer + 3);
	fputc('{', f);
	for (word = strtok_r(buf, " ", &save); word; word = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(word, '=');

		if (!eq || eq == word)
			continue;
		*eq = '\0';
		fprintf(f, "%s\"%s\":", first ? "" : ",", word);
		first = false;
		if (!strcmp(word, "compressed"))
			fputs(strcmp(eq + 1, "1") ? "false" : "true", f);
		else
			fprintf(f, "%llu", strtoull(eq + 1, NULL, 10));
	}
	fputc('}', f);
}

/* Ask device @id's server for its stats, briefly: @answer, or false. */
static bool query_stats(int id, char *answer, size_t len)
{
	return control_query(id, "stats", answer, len, STATS_QUERY_MS) == 0 &&
	       !strncmp(answer, "ok ", 3);
}

/*
 * One device as a JSON object, for `list --json`.  @info is NULL for an
 * id the kernel still holds for a removed device: only id and state.
 */
static void json_device(FILE *f, int id, const struct ublksrv_ctrl_dev_info *info,
			const struct ublk_params *params, const char *store, const char *stats)
{
	bool sized = info && (params->types & UBLK_PARAM_TYPE_BASIC);
	bool first = true;

	fprintf(f, "{\"id\":%d,\"device\":\"/dev/ublkb%d\",\"state\":", id, id);
	json_string(f, info ? state_name(info) : "removed");
	if (!info) {
		fputs(",\"pid\":null,\"owner_uid\":null,\"owner_gid\":null,\"owner\":null,\"size\":null,\"block_size\":null,\"queues\":null,\"depth\":null,\"copy_mode\":null,\"recoverable\":null,\"flags\":[],\"zoned\":null,\"store\":null,\"stats\":null}",
		      f);
		return;
	}
	fprintf(f, ",\"pid\":%d", info->ublksrv_pid);
	owner_json(f, info->owner_uid, info->owner_gid, true);
	if (sized)
		fprintf(f, ",\"size\":%llu,\"block_size\":%u",
			(unsigned long long)(params->basic.dev_sectors << 9),
			1U << params->basic.logical_bs_shift);
	else
		fputs(",\"size\":null,\"block_size\":null", f);
	fprintf(f, ",\"queues\":%u,\"depth\":%u,\"copy_mode\":\"%s\",\"recoverable\":%s,\"flags\":[",
		info->nr_hw_queues, info->queue_depth,
		ublk_copy_mode_name(ublk_copy_mode_of(info->flags)),
		(info->flags & UBLK_F_USER_RECOVERY) ? "true" : "false");
	for (unsigned bit = 0; bit < 64; bit++) {
		const char *name = ublk_feature_name(bit);

		if (!(info->flags & (1ULL << bit)))
			continue;
		fputs(first ? "" : ",", f);
		first = false;
		if (name)
			json_string(f, name);
		else
			fprintf(f, "\"bit-%u\"", bit);
	}
	fputs("]", f);
	if ((info->flags & UBLK_F_ZONED) && (params->types & UBLK_PARAM_TYPE_ZONED))
		fprintf(f, ",\"zoned\":{\"zone_size\":%llu,\"max_open_zones\":%u,\"max_active_zones\":%u}",
			(unsigned long long)params->basic.chunk_sectors << 9,
			params->zoned.max_open_zones, params->zoned.max_active_zones);
	else
		fputs(",\"zoned\":null", f);
	fputs(",\"store\":", f);
	if (store)
		json_string(f, store);
	else
		fputs("null", f);
	fputs(",\"stats\":", f);
	if (stats)
		json_stats(f, stats);
	else
		fputs("null", f);
	fputc('}', f);
}

/* One device as a line of the `list` table; @info NULL: removed. */
static void table_device(int id, const struct ublksrv_ctrl_dev_info *info,
			 const struct ublk_params *params)
{
	char size[32] = "-", owner[64];

	if (!info) {
		printf("%-4d %-15s %-8s %-8s %-6s %-5s %-8s %s\n", id, "removed", "-",
		       "-", "-", "-", "-", "still mounted: its id is free after umount");
		return;
	}
	if (params->types & UBLK_PARAM_TYPE_BASIC)
		format_size(size, sizeof(size), params->basic.dev_sectors << 9);
	owner_name(info->owner_uid, owner, sizeof(owner));
	printf("%-4d %-15s %-8d %-8s %-6u %-5u %-8s %s%s%s%s\n", id,
	       state_name(info), info->ublksrv_pid, size,
	       info->nr_hw_queues, info->queue_depth, owner,
	       ublk_copy_mode_name(ublk_copy_mode_of(info->flags)),
	       (info->flags & UBLK_F_USER_RECOVERY) ? ",recoverable" : "",
	       (info->flags & UBLK_F_USER_RECOVERY_REISSUE) ? ",reissue" : "",
	       (info->flags & UBLK_F_UNPRIVILEGED_DEV) ? ",unprivileged" : "");
}

/*
 * `ublk-mem list [--json]`: one line per device, or, for scripts and
 * monitoring, one JSON array of objects, one a line.  An ordinary user
 * sees the devices of others (and root's) as private: the driver tells
 * only their owners and root about them.
 */
int cmd_list(int argc, char **argv)
{
	struct ublk_ctrl *ctrl;
	int ids[1024], held[64], n, n_held;
	bool json = argc == 3 && !strcmp(argv[2], "--json");
	unsigned shown = 0;

	if (argc != 2 && !json)
		usage_error("usage: ublk-mem list [--json]");
	if (ublk_ctrl_open(&ctrl, false) < 0)
		return 1;
	n = ublk_list_ids(ids, 1024);
	if (json)
		putchar('[');
	else
		printf("%-4s %-15s %-8s %-8s %-6s %-5s %-8s %s\n", "ID", "STATE", "PID",
		       "SIZE", "QUEUES", "DEPTH", "OWNER", "FLAGS");
	for (int i = 0; i < n; i++) {
		struct ublksrv_ctrl_dev_info info;
		struct ublk_params params;
		char stats[1024];
		struct record r;
		bool stored, counted;
		int ret = ublk_get_info(ctrl, ids[i], &info, &params);

		if (ret == -EPERM || ret == -EACCES) {
			uint32_t uid = owner_of_node(ids[i], ret);

			if (json)
				fputs(shown++ ? ",\n" : "\n", stdout);
			owner_list_private(stdout, ids[i], uid, json);
			continue;
		}
		if (ret < 0)
			continue;	/* went away meanwhile */
		if (!json) {
			table_device(ids[i], &info, &params);
			continue;
		}
		stored = (info.flags & UBLK_F_USER_RECOVERY) && record_read(ids[i], &r);
		counted = ublk_server_running(&info) && query_stats(ids[i], stats, sizeof(stats));
		fputs(shown++ ? ",\n" : "\n", stdout);
		json_device(stdout, ids[i], &info, &params, stored ? r.path : NULL,
			    counted ? stats : NULL);
	}
	n_held = held_ids(ids, n > 0 ? n : 0, held, 64);
	for (int i = 0; i < n_held; i++) {
		if (!json) {
			table_device(held[i], NULL, NULL);
			continue;
		}
		fputs(shown++ ? ",\n" : "\n", stdout);
		json_device(stdout, held[i], NULL, NULL, NULL, NULL);
	}
	if (json)
		fputs(shown ? "\n]\n" : "]\n", stdout);
	ublk_ctrl_close(ctrl);
	return n < 0 ? 1 : 0;
}

/*
 * Remove a deleted recoverable device's store: the recorded one, if it is
 * still that file and sits where ublk-mem puts stores by default.
 */
static void del_store(int id)
{
	char def[64];
	struct record r;

	record_default_store(def, sizeof(def), id);
	if (!record_read(id, &r)) {
		if (access(def, F_OK) == 0)
			log_err("left %s in place: there is no record that ublk-mem made it", def);
		return;
	}
	if (strcmp(r.path, def))
		log_err("left the store %s in place: a --store path is the user's to remove",
			 r.path);
	else if (record_remove_store(&r))
		log_err("removed the store %s, and with it the device's data", r.path);
	else if (access(r.path, F_OK) == 0)
		log_err("left %s in place: it is not the file device %d was created with",
			 r.path, id);
	record_remove(id);
}

/* `ublk-mem del ID`: remove a device, and its store if it had one. */
int cmd_del(int argc, char **argv)
{
	struct ublksrv_ctrl_dev_info info;
	struct ublk_ctrl *ctrl;
	bool force = false;
	char who[256];
	int id = -1, ret;

	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--force") || !strcmp(argv[i], "-f"))
			force = true;
		else if (id < 0 && argv[i][0] != '-')
			id = (int)parse_num(argv[i], "device id", 0, MAX_ID);
		else
			usage_error("unexpected argument '%s' (usage: ublk-mem del [--force] ID)", argv[i]);
	}
	if (id < 0)
		usage_error("usage: ublk-mem del [--force] ID");
	if (ublk_ctrl_open(&ctrl, false) < 0)
		return 1;
	ret = owner_get_info(ctrl, id, "delete", &info, NULL);
	if (ret < 0) {
		ublk_ctrl_close(ctrl);
		return 1;
	}
	/* Pulling a disk from under a mounted file system loses its data. */
	if (!force && disk_in_use(id, who, sizeof(who))) {
		log_err("/dev/ublkb%d is in use (%s): not deleting; unmount or close it first, or: ublk-mem del --force %d (its users then get I/O errors)",
			 id, who, id);
		ublk_ctrl_close(ctrl);
		return 1;
	}
	ret = ublk_delete(ctrl, id, 10000);
	if (ret == -EBUSY)
		log_err("device %d is removed, but the kernel keeps its id until its last user lets go (a file system still mounted on /dev/ublkb%d?)",
			 id, id);
	else if (ret < 0)
		log_err("deleting device %d: %s", id, strerror(-ret));
	if (ret == 0 || ret == -EBUSY)
		if (info.flags & UBLK_F_USER_RECOVERY)
			del_store(id);
	ublk_ctrl_close(ctrl);
	return ret < 0 && ret != -EBUSY ? 1 : 0;
}

/* What ublk-mem does with each feature flag (for `ublk-mem features`). */
static const char *feature_use(uint64_t flag)
{
	switch (flag) {
	case UBLK_F_NEED_GET_DATA: return "used: --copy-mode get_data (the default)";
	case UBLK_F_USER_COPY: return "used: --copy-mode user_copy";
	case UBLK_F_AUTO_BUF_REG: return "used: --copy-mode zero_copy";
	case UBLK_F_BATCH_IO: return "used: --io-path batch";
	case UBLK_F_USER_RECOVERY: return "used: --recoverable";
	case UBLK_F_USER_RECOVERY_REISSUE: return "used: --recoverable (requests in flight are re-issued)";
	case UBLK_F_CMD_IOCTL_ENCODE: return "used: required";
	case UBLK_F_SUPPORT_ZERO_COPY: return "not used: --copy-mode zero_copy lets the driver register buffers (AUTO_BUF_REG)";
	case UBLK_F_UNPRIVILEGED_DEV: return "used: run by another user than root (a device of that user's)";
	case UBLK_F_ZONED: return "used: --zoned (host-managed zones, in user_copy mode)";
	case UBLK_F_UPDATE_SIZE: return "used: ublk-mem resize";
	case UBLK_F_QUIESCE: return "used: ublk-mem restart drains a --recoverable device first";
	case UBLK_F_SAFE_STOP_DEV: return "used: a stop signal does not pull a device in use";
	case UBLK_F_NO_AUTO_PART_SCAN: return "used: no partition scan when a device starts";
	case UBLK_F_USER_RECOVERY_FAIL_IO: return "not used: a recoverable device holds its I/O for the next server";
	case UBLK_F_URING_CMD_COMP_IN_TASK: return "not used: set by the driver itself";
	case UBLK_F_PER_IO_DAEMON: return "used: --queue-threads N (several threads per queue)";
	default: return "not used";
	}
}

/* `ublk-mem features`: the driver's GET_FEATURES answer, flag by flag. */
int cmd_features(int argc, char **argv)
{
	struct ublk_ctrl *ctrl;
	uint64_t f;

	(void)argv;
	if (argc != 2)
		usage_error("usage: ublk-mem features");
	if (ublk_ctrl_open(&ctrl, false) < 0)
		return 1;
	f = ublk_features(ctrl);
	printf("GET_FEATURES 0x%016llx\n", (unsigned long long)f);
	if (ublk_unprivileged(ctrl))
		printf("not root: this user's devices are unprivileged (UBLK_F_UNPRIVILEGED_DEV), without what is marked \"root only\"\n");
	for (unsigned bit = 0; bit < 64; bit++) {
		const char *name = ublk_feature_name(bit);
		uint64_t flag = 1ULL << bit;

		if (name)
			printf("%-24s %-3s since %-5s %s%s\n", name, (f & flag) ? "yes" : "no",
			       ublk_feature_since(bit), feature_use(flag),
			       (flag & UBLK_ROOT_ONLY_FLAGS) ? " (root only)" : "");
		else if (f & flag)
			printf("bit-%-20u %-3s %s\n", bit, "yes", "unknown to this ublk-mem");
	}
	ublk_ctrl_close(ctrl);
	return 0;
}

/* `ublk-mem resize [--force] ID SIZE`: grow or shrink a live device. */
int cmd_resize(int argc, char **argv)
{
	const char *size_arg = NULL;
	char req[96], answer[512];
	unsigned long long old, new;
	bool force = false;
	uint64_t size;
	int id = -1;

	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--force") || !strcmp(argv[i], "-f"))
			force = true;
		else if (id < 0 && argv[i][0] != '-')
			id = (int)parse_num(argv[i], "device id", 0, MAX_ID);
		else if (!size_arg && argv[i][0] != '-')
			size_arg = argv[i];
		else
			usage_error("unexpected argument '%s' (usage: ublk-mem resize [--force] ID SIZE)",
				    argv[i]);
	}
	if (id < 0 || !size_arg)
		usage_error("usage: ublk-mem resize [--force] ID SIZE");
	if (parse_size(size_arg, &size) < 0 || !size)
		usage_error("invalid size '%s': expected a number with an optional K, M, G or T suffix, e.g. 128M",
			    size_arg);
	snprintf(req, sizeof(req), "resize %llu%s", (unsigned long long)size,
		 force ? " force" : "");
	if (control_request(id, req, answer, sizeof(answer), RESIZE_TIMEOUT_MS) < 0)
		return 1;
	if (sscanf(answer, "ok %llu %llu", &old, &new) != 2) {
		log_err("%s", strncmp(answer, "error ", 6) ? answer : answer + 6);
		return 1;
	}
	printf("/dev/ublkb%d: %llu -> %llu bytes\n", id, old, new);
	return 0;
}


/*
 * `ublk-mem stats [--json] ID`: what the server of device ID says of its
 * store and its requests, one NAME VALUE line each (zram's mm_stat and
 * io_stat names), or one JSON object.
 */
int cmd_stats(int argc, char **argv)
{
	char answer[1024], *save = NULL, *word;
	bool json = false;
	int id = -1;

	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (id < 0 && argv[i][0] != '-')
			id = (int)parse_num(argv[i], "device id", 0, MAX_ID);
		else
			usage_error("unexpected argument '%s' (usage: ublk-mem stats [--json] ID)",
				    argv[i]);
	}
	if (id < 0)
		usage_error("usage: ublk-mem stats [--json] ID");
	if (control_request(id, "stats", answer, sizeof(answer), STATS_TIMEOUT_MS) < 0)
		return 1;
	if (strncmp(answer, "ok ", 3)) {
		log_err("device %d: %s", id, strncmp(answer, "error ", 6) ? answer : answer + 6);
		return 1;
	}
	if (json) {
		json_stats(stdout, answer);
		putchar('\n');
		return 0;
	}
	printf("%-18s /dev/ublkb%d\n", "device", id);
	for (word = strtok_r(answer + 3, " ", &save); word; word = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(word, '=');

		if (eq) {
			*eq = '\0';
			printf("%-18s %s\n", word, eq + 1);
		}
	}
	return 0;
}
