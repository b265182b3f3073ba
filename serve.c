/*
 * serve.c - serving one device from its store, start to end: see serve.h.
 *
 * The one rule of a store's data lives here: a store file that held data
 * is removed only after a clean stop of a device that went live in this
 * process; every other ending keeps it and says how to get the data back.
 */
#define _GNU_SOURCE
#include "serve.h"
#include "control.h"
#include "fault.h"
#include "log.h"
#include "pinned.h"
#include "process.h"
#include "service.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * After serving: close the store and, if @remove, delete its file and
 * record.  A store file that held data goes only after a clean stop of
 * a device that was live here (see serve()); otherwise it stays, and the
 * user is told where the data is.
 */
void store_done(struct served_store *st, int dev_id, bool remove)
{
	store_close(&st->store);
	if (!st->file || !remove)
		return;
	record_remove_zones(&st->rec);
	record_remove_store(&st->rec);
	record_remove(dev_id);
}

/*
 * How this server was run, for the server that takes its device over
 * (`ublk-mem restart`): the successor is started with these options.
 */
struct successor {
	char *argv[20];
	char id[16], store[PATH_MAX], pidfile[PATH_MAX], poll[32], threads[40], reserve[40];
	char mem_limit[40];
};

static void successor_args(struct successor *sc, const char *program, int id,
			   const struct ublk_dev *dev, const struct served_store *st)
{
	unsigned n = 0, poll_us = ublk_poll_us(dev);

	snprintf(sc->id, sizeof(sc->id), "%d", id);
	snprintf(sc->store, sizeof(sc->store), "%s", st->rec.path);
	snprintf(sc->pidfile, sizeof(sc->pidfile), "%s", service_pidfile());
	snprintf(sc->poll, sizeof(sc->poll), "--poll=%u", poll_us == UBLK_POLL_OFF ? 0 : poll_us);
	snprintf(sc->threads, sizeof(sc->threads), "--queue-threads=%u", ublk_queue_threads(dev));
	snprintf(sc->reserve, sizeof(sc->reserve), "--reserve=%llu",
		 (unsigned long long)(st->store.compressed ? st->store.cz.budget.reserve :
				      st->store.mem.budget.reserve));
	sc->argv[n++] = (char *)program;
	sc->argv[n++] = "recover";
	sc->argv[n++] = sc->id;
	sc->argv[n++] = "-D";
	sc->argv[n++] = "--store";
	sc->argv[n++] = sc->store;
	if (sc->pidfile[0]) {
		sc->argv[n++] = "--pidfile";
		sc->argv[n++] = sc->pidfile;
	}
	if (poll_us)
		sc->argv[n++] = sc->poll;
	sc->argv[n++] = sc->threads;
	sc->argv[n++] = sc->reserve;
	if (!st->store.compressed && st->store.mem.locked)
		sc->argv[n++] = "--prealloc";
	if (st->store.compressed && st->store.cz.z.a.limit) {
		snprintf(sc->mem_limit, sizeof(sc->mem_limit), "--mem-limit=%llu",
			 (unsigned long long)st->store.cz.z.a.limit);
		sc->argv[n++] = sc->mem_limit;
	}
	sc->argv[n] = NULL;
}

/*
 * Start the server that takes the device over after a handover: @sc's
 * program, `recover ID -D` with this server's settings, its output on
 * the restart client's connection @client.  Started from here, it runs
 * where this server ran: its service's cgroup, its limits (a unit's
 * LimitMEMLOCK), its environment (NOTIFY_SOCKET).  Only async-signal-safe
 * calls between fork and exec: queue threads may still run.
 */
static void start_successor(struct successor *sc, int client)
{
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

		if (null >= 0)
			dup2(null, STDIN_FILENO);
		dup2(client, STDOUT_FILENO);
		dup2(client, STDERR_FILENO);
		execv(sc->argv[0], sc->argv);
		dprintf(STDERR_FILENO, "ublk-mem: cannot run %s: %s\n", sc->argv[0],
			strerror(errno));
		_exit(1);
	}
	if (pid < 0)
		dprintf(client, "ublk-mem: cannot start a new server: %s\n", strerror(errno));
	close(client);
}

/*
 * Serve @dev from @st until stopped, then remove the device and, unless
 * the device was kept for recovery, its store.  After a handover, start
 * the server that takes it over.  Returns 0 or -errno.
 */
int serve(struct ublk_dev *dev, struct served_store *st)
{
	int id = ublk_dev_id(dev), ret, client;
	struct control ctl = {
		.dev_id = id,
		.store = &st->store,
		.block_size = ublk_block_size(dev),
		.recorded = st->file,
	};
	struct successor sc = { 0 };
	bool kept, remove, live, rebuild;

	/* resize and restart reach the server through its control socket. */
	control_open(&ctl);
	ret = ublk_start(dev, store_data(&st->store), stop_asked, NULL);
	if (ret == 0) {
		if (st->rebuilt)
			log_err("device %d rebuilt from its store %s: the data is intact, but programs that had /dev/ublkb%d open got I/O errors",
				id, st->rec.path, id);
		service_live(id);
		ret = serve_until_stopped(dev, &ctl);
	} else if (ret == -ECANCELED) {
		ret = 0;	/* stopped while starting: as asked */
	}
	ret = ublk_finish(dev, ret);
	kept = ublk_kept(dev);
	/*
	 * The store's data goes only with a device that was live here and
	 * stopped as asked; a store made here for a device that never went
	 * live holds nothing yet.
	 */
	live = ublk_went_live(dev);
	remove = ublk_stopped_cleanly(dev) || (st->fresh && !live);
	rebuild = ublk_needs_rebuild(dev);
	if (ctl.handed_over) {
		/*
		 * Let go of everything the next server takes: the control
		 * socket's path, the pid file, the store (and its lock).
		 */
		successor_args(&sc, ctl.program, id, dev, st);
		client = control_handed_over(&ctl, ublk_requests_held(dev));
		control_close(&ctl);
		service_drop_pidfile();
		if (ublk_must_exit(dev)) {
			/* Without QUIESCE: this process's exit ends the queues. */
			start_successor(&sc, client);
			_exit(0);
		}
		ublk_remove(dev);
		store_done(st, id, false);
		start_successor(&sc, client);
		return ret;
	}
	control_close(&ctl);
	service_stopping(ret);
	ublk_remove(dev);
	if (st->file && kept)
		log_err("device %d keeps its data in %s and waits for a new server: ublk-mem recover %d%s",
			 id, st->rec.path, id, rebuild ? " --rebuild" : "");
	else if (st->file && !remove)
		log_err("the store %s keeps the data of device %d, which is gone: ublk-mem recover %d --rebuild makes the device again",
			 st->rec.path, id, id);
	store_done(st, id, remove);
	return ret;
}

/* Record @st as the store of device @id, made as @geo. */
void record_store(int id, struct served_store *st, const struct record_geometry *geo)
{
	st->rec.dev = (unsigned long long)st->store.dev;
	st->rec.ino = (unsigned long long)st->store.ino;
	st->rec.zones_dev = (unsigned long long)st->store.zones_dev;
	st->rec.zones_ino = (unsigned long long)st->store.zones_ino;
	st->rec.has_geometry = true;
	st->rec.geo = *geo;
	record_write(id, &st->rec);
}

/* Open the store of a new device @dev_id (a file for --recoverable). */
int open_new_store(struct options *o, const struct ublk_dev *dev, struct served_store *st)
{
	int ret;

	memset(st, 0, sizeof(*st));
	if (o->cfg.recoverable) {
		if (o->store_path[0])
			snprintf(st->rec.path, sizeof(st->rec.path), "%s", o->store_path);
		else
			record_default_store(st->rec.path, sizeof(st->rec.path), ublk_dev_id(dev));
		o->store.mem.path = st->rec.path;
		o->store.mem.create = true;
		st->file = true;
	}
	ret = store_open(&st->store, &o->store);
	if (ret < 0)
		return ret;	/* files it made are gone already */
	if (st->file) {
		const struct ublksrv_ctrl_dev_info *info = ublk_info(dev);
		const struct zone_config *z = &o->store.zones;
		struct record_geometry geo = {
			.size = o->cfg.size, .block_size = o->cfg.block_size,
			.queues = info->nr_hw_queues, .depth = info->queue_depth,
			.flags = info->flags, .zone_size = z->zone_size,
			.zone_capacity = z->zone_capacity, .conventional = z->conventional,
			.max_open = z->max_open, .max_active = z->max_active,
			.compress = o->store.compress, .mem_limit = o->store.mem_limit,
		};

		record_store(ublk_dev_id(dev), st, &geo);
	}
	st->fresh = true;
	return 0;
}
