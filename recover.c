/*
 * recover.c - a device taken over by a new server: `recover` after a
 * crash (or a device made anew from its store, --rebuild), and `restart`,
 * which has the running server hand its device over.
 */
#define _GNU_SOURCE
#include "control.h"
#include "log.h"
#include "mem_backend.h"
#include "options.h"
#include "owner.h"
#include "process.h"
#include "record.h"
#include "serve.h"
#include "service.h"
#include "ublk.h"
#include "verbs.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* restart's limits: the old server's queues finish, the new server starts. */
#define HANDOVER_LINE_MS	60000
#define TAKEOVER_MS		120000

/* How device @info was made, as the kernel has it. */
static void geometry_of(const struct ublksrv_ctrl_dev_info *info,
			const struct ublk_params *params, struct record_geometry *g)
{
	g->size = params->basic.dev_sectors << 9;
	g->block_size = 1U << params->basic.logical_bs_shift;
	g->queues = info->nr_hw_queues;
	g->depth = info->queue_depth;
	g->flags = info->flags;
	if (info->flags & UBLK_F_ZONED) {
		g->zone_size = (uint64_t)params->basic.chunk_sectors << 9;
		g->max_open = params->zoned.max_open_zones;
		g->max_active = params->zoned.max_active_zones;
	}
}

/* The configuration that serves device @id, made as @g, again. */
static void config_of(const struct record_geometry *g, int id, struct ublk_config *cfg)
{
	cfg->size = g->size;
	cfg->block_size = g->block_size;
	cfg->nr_queues = g->queues;
	cfg->depth = g->depth;
	cfg->dev_id = id;
	cfg->copy_mode = ublk_copy_mode_of(g->flags);
	cfg->copy_mode_set = true;
	cfg->io_path = (g->flags & UBLK_F_BATCH_IO) ? UBLK_IO_PATH_BATCH :
		       UBLK_IO_PATH_PER_REQUEST;
	cfg->recoverable = true;
	cfg->zone_size = g->zone_size;
	cfg->max_open_zones = g->max_open;
	cfg->max_active_zones = g->max_active;
}

/*
 * `recover --rebuild`: the kernel will not recover device @cfg->dev_id
 * (or has lost it), so delete what is left of it and create it again,
 * with the same id and settings, from its store.  The data survives;
 * programs that held the old /dev/ublkbN get errors.
 */
static int rebuild(struct ublk_ctrl *ctrl, struct ublk_config *cfg,
		   const struct store_config *scfg, struct served_store *st)
{
	struct ublk_dev *dev;
	int id = cfg->dev_id, ret;

	ret = ublk_delete(ctrl, id, 10000);
	if (ret < 0 && ret != -ENODEV) {
		log_err("device %d: cannot make it anew: %s%s; its data is safe in %s", id,
			 strerror(-ret), ret == -EBUSY ?
			 " (the kernel keeps its id while a file system on it is mounted: unmount it, then run this again)" : "",
			 st->rec.path);
		store_close(&st->store);
		return ret;
	}
	/* Should this start fail, the device is kept for another try. */
	cfg->holds_data = true;
	ret = ublk_add(ctrl, cfg, store_backend(scfg), &dev);
	if (ret < 0) {
		log_err("device %d could not be made anew, but its data is safe in %s: ublk-mem recover %d --rebuild once the cause is fixed",
			 id, st->rec.path, id);
		store_close(&st->store);
		return ret;
	}
	st->rebuilt = true;
	return serve(dev, st);
}

/*
 * How device @id was made: from the kernel, or, for `--rebuild` of a
 * device the kernel no longer has, from its store's record @rec.  Sets
 * *exists.  Returns 0 or -errno after saying why.
 */
static int find_geometry(struct ublk_ctrl *ctrl, const struct options *ro,
			 const struct record *rec, bool recorded,
			 struct record_geometry *geo, bool *exists)
{
	struct ublksrv_ctrl_dev_info info;
	struct ublk_params params;
	int id = ro->id, ret = ublk_get_info(ctrl, id, &info, &params);

	*exists = ret == 0;
	if (ret == -ENODEV && recorded && rec->has_geometry && ro->rebuild) {
		*geo = rec->geo;
		return 0;
	}
	if (ret == -ENODEV && recorded) {
		log_err("device %d is gone, but its store %s is recorded: `ublk-mem recover %d --rebuild` makes the device again from it",
			 id, rec->path, id);
		return ret;
	}
	if (ret < 0) {
		log_err("device %d: %s", id, ret == -ENODEV ? "no such ublk device" : strerror(-ret));
		return ret;
	}
	if (!(info.flags & UBLK_F_USER_RECOVERY)) {
		log_err("device %d was not created with --recoverable; it cannot be recovered (remove it: ublk-mem del %d)",
			 id, id);
		return -EINVAL;
	}
	geometry_of(&info, &params, geo);
	if (recorded && rec->has_geometry) {
		/* The kernel does not know how the store keeps its data. */
		geo->compress = rec->geo.compress;
		geo->mem_limit = rec->geo.mem_limit;
	}
	if (geo->zone_size) {
		/* The kernel knows the zone size and limits; the record the rest. */
		if (!recorded || rec->geo.zone_size != geo->zone_size) {
			log_err("device %d is zoned, but its store's record of the zones is missing: they cannot be found again",
				id);
			return -ENOENT;
		}
		geo->zone_capacity = rec->geo.zone_capacity;
		geo->conventional = rec->geo.conventional;
	}
	return 0;
}

/*
 * Open the store of device @ro->id, made as @geo: the one given, else the
 * recorded one, else where it is by default.  A recorded store must still
 * be the recorded file.  The record is then brought up to date.
 */
static int open_recorded_store(const struct options *ro, bool recorded,
			       struct record_geometry *geo, struct served_store *st,
			       struct store_config *scfg)
{
	struct mem_store_config *m = &scfg->mem;
	struct zone_config *z = &scfg->zones;

	if (ro->store_path[0])
		snprintf(st->rec.path, sizeof(st->rec.path), "%s", ro->store_path);
	else if (!recorded)
		record_default_store(st->rec.path, sizeof(st->rec.path), ro->id);
	st->file = true;
	memset(scfg, 0, sizeof(*scfg));
	m->size = geo->size;
	m->max_size = max_store_size(geo->size);
	m->path = st->rec.path;
	m->reserve = ro->store.mem.reserve;
	m->prealloc = ro->store.mem.prealloc;
	m->file_io = ublk_copy_mode_of(geo->flags) == UBLK_COPY_ZERO;
	if (recorded) {
		m->expect_dev = (dev_t)st->rec.dev;
		m->expect_ino = (ino_t)st->rec.ino;
		scfg->zones_dev = (dev_t)st->rec.zones_dev;
		scfg->zones_ino = (ino_t)st->rec.zones_ino;
	} else if (store_file_is_compressed(st->rec.path)) {
		log_err("%s holds a compressed store (its record is gone): recovering it as one",
			st->rec.path);
		geo->compress = true;
	}
	scfg->compress = geo->compress;
	if (ro->store.mem_limit)
		geo->mem_limit = ro->store.mem_limit;
	scfg->mem_limit = geo->mem_limit;
	if (geo->compress && m->prealloc) {
		log_err("--prealloc does not apply to a compressed store");
		return -1;
	}
	scfg->locked = geo->compress;	/* cmd_recover() locks its memory */
	z->zone_size = geo->zone_size;
	z->zone_capacity = geo->zone_capacity;
	z->conventional = geo->conventional;
	z->max_open = geo->max_open;
	z->max_active = geo->max_active;
	if (store_open(&st->store, scfg) < 0)
		return -1;
	record_store(ro->id, st, geo);
	return 0;
}

/* `ublk-mem recover ID ...`: take a device over, or make it anew. */
int cmd_recover(int argc, char **argv)
{
	struct options ro;
	struct record_geometry geo;
	struct store_config scfg;
	struct served_store st = { 0 };
	struct ublk_ctrl *ctrl;
	struct ublk_dev *dev;
	bool recorded, exists;
	int ret = -1;

	parse_options(VERB_RECOVER, argc, argv, &ro);
	if (service_start(&ro.svc) < 0)
		return 1;
	if (ublk_ctrl_open(&ctrl, ro.cfg.trace) < 0)
		return 1;
	recorded = record_read(ro.id, &st.rec);
	if (find_geometry(ctrl, &ro, &st.rec, recorded, &geo, &exists) < 0 ||
	    open_recorded_store(&ro, recorded, &geo, &st, &scfg) < 0)
		goto out;
	protect_from_oom_killer();
	config_of(&geo, ro.id, &ro.cfg);
	if (refuse_config(&ro.cfg, ublk_features(ctrl)) < 0) {
		store_close(&st.store);
		goto out;
	}
	if (scfg.compress) {
		lock_memory();
		ro.cfg.as_swap = true;
	}
	if (!exists) {
		ret = rebuild(ctrl, &ro.cfg, &scfg, &st);
		goto out;
	}
	ret = ublk_attach(ctrl, ro.id, &ro.cfg, store_backend(&scfg), &dev);
	if (ret < 0) {
		store_close(&st.store);
		goto out;
	}
	ret = serve(dev, &st);
	if (ret == -ENOTRECOVERABLE && ro.rebuild) {
		ret = open_recorded_store(&ro, true, &geo, &st, &scfg);
		if (ret == 0)
			ret = rebuild(ctrl, &ro.cfg, &scfg, &st);
	} else if (ret == -ENOTRECOVERABLE) {
		log_err("its data is safe in %s. `ublk-mem recover %d --rebuild` creates the device again from it (programs holding /dev/ublkb%d get I/O errors); `ublk-mem del %d` would delete the data",
			 st.rec.path, ro.id, ro.id, ro.id);
	}
out:
	ublk_ctrl_close(ctrl);
	return ret < 0 ? 1 : 0;
}

/* Milliseconds on the monotonic clock. */
static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* This program's own path: `restart` has the new server run the binary it is. */
static void own_program(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);

	/* Replaced on disk while running: its path names the new binary. */
	if (n > 0) {
		buf[n] = '\0';
		if (n > 10 && !strcmp(buf + n - 10, " (deleted)"))
			buf[n - 10] = '\0';
	} else {
		snprintf(buf, len, "/proc/self/exe");
	}
}

/*
 * A server of ublk-mem 0.2 answered the handover with "ok HELD PIDFILE
 * POLL_US THREADS" and left: start the new server from here, as that
 * version's `restart` did.  Returns 0 once it serves, or -1.
 */
static int restart_from_here(int id, const char *answer, const struct ublksrv_ctrl_dev_info *info,
			     const char *program)
{
	char pidfile[PATH_MAX] = "-", idstr[16], pollarg[32], threadarg[40];
	const char *args[10] = { program, "recover", idstr, "-D" };
	unsigned held = 0, poll_us = 0, threads = 1, na = 4;
	int status;
	pid_t pid;

	sscanf(answer, "ok %u %4095s %u %u", &held, pidfile, &poll_us, &threads);
	for (int ms = 0; ublk_server_running(info); ms += 10) {
		if (ms >= 30000) {
			log_err("the old server (pid %d) has not exited 30 s after handing over",
				 info->ublksrv_pid);
			return -1;
		}
		usleep(10000);
	}
	snprintf(idstr, sizeof(idstr), "%d", id);
	if (strcmp(pidfile, "-")) {
		args[na++] = "--pidfile";
		args[na++] = pidfile;
	}
	if (poll_us) {
		snprintf(pollarg, sizeof(pollarg), "--poll=%u", poll_us == UBLK_POLL_OFF ? 0 : poll_us);
		args[na++] = pollarg;
	}
	snprintf(threadarg, sizeof(threadarg), "--queue-threads=%u", threads);
	args[na++] = threadarg;
	args[na] = NULL;
	pid = fork();
	if (pid == 0) {
		execv(program, (char *const *)args);
		log_err("cannot run %s: %s", program, strerror(errno));
		_exit(1);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status))
		return -1;
	return (int)held;
}

/*
 * After "accepted": wait for the old server to hand over, then relay what
 * the new server says until it prints its device (it serves) or hangs up
 * (it failed, having said why).  Returns the requests the old server
 * held, or -1.
 */
static int follow_takeover(int fd, int id)
{
	char line[PATH_MAX + 128];
	unsigned held = 0;
	bool live = false;
	int ret;

	ret = control_read_line(fd, line, sizeof(line), HANDOVER_LINE_MS);
	if (ret == 0 && sscanf(line, "handing-over %u", &held) != 1) {
		log_err("%s", strncmp(line, "error ", 6) ? line : line + 6);
		return -1;
	}
	if (ret < 0) {
		log_err("device %d's server did not hand the device over: %s", id,
			 ret == -ETIME ? "no answer in time" : strerror(-ret));
		return -1;
	}
	while (!live && (ret = control_read_line(fd, line, sizeof(line), TAKEOVER_MS)) == 0) {
		if (!strncmp(line, "/dev/ublkb", 10))
			live = true;
		else
			fprintf(stderr, "%s\n", line);	/* the new server says why */
	}
	if (ret == -ETIME)
		log_err("the new server of device %d did not come up within %d s", id,
			 TAKEOVER_MS / 1000);
	return live ? (int)held : -1;
}

/*
 * `ublk-mem restart ID`: replace the server of a --recoverable device with
 * a fresh process of this ublk-mem binary, while the device stays in use.
 * The old server hands the device over (quiescing it where the kernel
 * can) and starts the new one, `ublk-mem recover ID -D` with its own
 * settings, in its own place (see control.h).
 */
int cmd_restart(int argc, char **argv)
{
	struct ublksrv_ctrl_dev_info info;
	char program[PATH_MAX], req[PATH_MAX + 16], line[PATH_MAX + 128];
	struct ublk_ctrl *ctrl;
	int id, fd, held, old_pid;
	long long t0;

	if (argc != 3)
		usage_error("usage: ublk-mem restart ID");
	id = (int)parse_num(argv[2], "device id", 0, MAX_ID);
	if (ublk_ctrl_open(&ctrl, false) < 0)
		return 1;
	if (owner_get_info(ctrl, id, "restart", &info, NULL) < 0) {
		ublk_ctrl_close(ctrl);
		return 1;
	}
	if (!ublk_server_running(&info)) {
		log_err("device %d has no running server to restart (see: ublk-mem list)", id);
		ublk_ctrl_close(ctrl);
		return 1;
	}
	old_pid = info.ublksrv_pid;
	own_program(program, sizeof(program));
	snprintf(req, sizeof(req), "handover %s", program);
	t0 = now_ms();
	fd = control_connect(id, req, line, sizeof(line));
	if (fd < 0) {
		ublk_ctrl_close(ctrl);
		return 1;	/* nothing was handed over */
	} else if (!strncmp(line, "ok ", 3)) {
		close(fd);
		held = restart_from_here(id, line, &info, program);
	} else if (!strcmp(line, "accepted")) {
		held = follow_takeover(fd, id);
		close(fd);
	} else {
		log_err("%s", strncmp(line, "error ", 6) ? line : line + 6);
		close(fd);
		ublk_ctrl_close(ctrl);
		return 1;
	}
	if (held < 0) {
		log_err("the new server did not take device %d over; its data is safe: ublk-mem recover %d",
			 id, id);
		ublk_ctrl_close(ctrl);
		return 1;
	}
	if (ublk_get_info(ctrl, id, &info, NULL) < 0)
		info.ublksrv_pid = 0;
	ublk_ctrl_close(ctrl);
	log_err("device %d restarted (server pid %d, was %d): I/O paused for %lld ms; %d request%s in flight %s re-issued to the new server",
		 id, info.ublksrv_pid, old_pid, now_ms() - t0, held, held == 1 ? "" : "s",
		 held == 1 ? "was" : "were");
	return 0;
}

