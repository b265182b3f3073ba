/*
 * main.c - ublk-mem's command line: `ublk-mem SIZE` and the other verbs.
 *
 * Read uring.c, the ublk files (ublk_ctrl.c, ublk_io.c, ublk.c) and
 * mem_backend.c first; this file puts them together.  `ublk-mem SIZE` is
 * the whole story in a few calls (cmd_serve() below):
 *
 *   parse_options()    options.c: the command line, checked as a whole
 *   service_start()    service.c: --daemon forks, --pidfile is written
 *   ublk_ctrl_open()   /dev/ublk-control, and what this driver offers
 *   ublk_add()         ADD_DEV + SET_PARAMS: the kernel picks the id
 *   open_new_store()   the RAM (for --recoverable, a tmpfs file named
 *                      after the id)
 *   serve()            serve.c: START_DEV, serve until a stop signal
 *                      (process.c), stop, and what becomes of the store
 *   ublk_remove()      DEL_DEV
 *
 * The other verbs manage devices from outside (admin.c: list, del,
 * features, resize) or take one over (recover.c: recover, restart).
 */
#define _GNU_SOURCE
#include "options.h"
#include "process.h"
#include "serve.h"
#include "service.h"
#include "ublk.h"
#include "verbs.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

/* `ublk-mem SIZE ...`: create, serve, remove. */
static int cmd_serve(int argc, char **argv)
{
	struct served_store st;
	struct ublk_ctrl *ctrl;
	struct ublk_dev *dev;
	struct options o;
	int ret;

	parse_options(VERB_SERVE, argc, argv, &o);
	if (service_start(&o.svc) < 0)
		return 1;
	if (ublk_ctrl_open(&ctrl, o.cfg.trace) < 0)
		return 1;
	protect_from_oom_killer();
	o.cfg.unprivileged = ublk_unprivileged(ctrl);
	/*
	 * Only root can swap to a device, and a user's locked memory is
	 * capped by RLIMIT_MEMLOCK: a user's server locks nothing.
	 */
	if (o.store.compress && !o.cfg.unprivileged) {
		lock_memory();
		o.store.locked = true;
		o.cfg.as_swap = true;
	}
	ret = refuse_config(&o.cfg, ublk_features(ctrl));
	/* The kernel picks the id; a recoverable store is named after it. */
	if (ret == 0)
		ret = ublk_add(ctrl, &o.cfg, store_backend(&o.store), &dev);
	if (ret == 0) {
		int id = ublk_dev_id(dev);

		ret = open_new_store(&o, dev, &st);
		if (ret == 0 && stop_signal_pending()) {
			/* Told to stop while the store was made: as asked. */
			ublk_remove(dev);
			store_done(&st, id, true);
		} else if (ret == 0) {
			ret = serve(dev, &st);
		} else {
			ublk_remove(dev);
		}
	}
	ublk_ctrl_close(ctrl);
	return ret < 0 ? 1 : 0;
}

/*
 * The verbs.  Serving ones take every signal themselves (take_signals());
 * the others leave Ctrl-C and SIGTERM their default action, so a client
 * never outlives the user's wish to stop it.
 */
static const struct verb {
	const char *name;
	int (*run)(int argc, char **argv);
	bool serves;
} verbs[] = {
	{ "list", cmd_list, false },
	{ "del", cmd_del, false },
	{ "recover", cmd_recover, true },
	{ "features", cmd_features, false },
	{ "resize", cmd_resize, false },
	{ "restart", cmd_restart, false },
	{ "stats", cmd_stats, false },
	{ "chown", cmd_chown, false },
};

int main(int argc, char **argv)
{
	hold_std_fds();
	for (unsigned i = 0; argc >= 2 && i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (strcmp(argv[1], verbs[i].name))
			continue;
		if (!verbs[i].serves) {
			signal(SIGPIPE, SIG_IGN);
			return verbs[i].run(argc, argv);
		}
		take_signals();
		return service_exit(verbs[i].run(argc, argv));
	}
	take_signals();
	return service_exit(cmd_serve(argc, argv));
}
