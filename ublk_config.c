/*
 * ublk_config.c - what a device's configuration asks of the driver: its
 * UBLK_F_* flags, the data path it takes, and whether this kernel can
 * serve it at all.
 *
 * ublk_config_check() (ublk.h) is the one place that decides whether a
 * configuration is valid: copy mode x data path x what the driver offers
 * x who runs the server.  The command line asks it before ADD_DEV, and
 * ublk_add() sends the flags worked out here.
 */
#include "ublk.h"
#include "ublk_config.h"

#include <stdbool.h>
#include <stdint.h>

/* --io-path auto: see config_choose_io_path() and docs/performance.md. */
#define BATCH_BY_DEFAULT	false
#define BATCH_COPY_MODE		UBLK_COPY_BOUNCE

/*
 * Flags ublk-mem asks for wherever the driver offers them: no partition
 * scan at START_DEV (a fresh RAM disk has no partition table, and the
 * scan's reads race the start), live resizing, and quiescing a
 * recoverable device for a planned restart.
 */
uint64_t config_optional_flags(const struct ublk_config *cfg, uint64_t features)
{
	uint64_t f = UBLK_F_NO_AUTO_PART_SCAN | UBLK_F_UPDATE_SIZE;

	if (cfg->recoverable)
		f |= UBLK_F_QUIESCE;
	return f & features;
}

/* The UBLK_F_* flags a configuration needs. */
uint64_t config_flags(const struct ublk_config *cfg)
{
	uint64_t f = UBLK_F_CMD_IOCTL_ENCODE;

	if (cfg->copy_mode == UBLK_COPY_GET_DATA)
		f |= UBLK_F_NEED_GET_DATA;
	if (cfg->copy_mode == UBLK_COPY_USER)
		f |= UBLK_F_USER_COPY;
	if (cfg->copy_mode == UBLK_COPY_ZERO)
		f |= UBLK_F_AUTO_BUF_REG;
	if (cfg->recoverable)
		f |= UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_REISSUE;
	if (cfg->io_path == UBLK_IO_PATH_BATCH)
		f |= UBLK_F_BATCH_IO;
	if (cfg->queue_threads > 1)
		f |= UBLK_F_PER_IO_DAEMON;
	if (cfg->zone_size)
		f |= UBLK_F_ZONED;
	if (cfg->unprivileged)
		f |= UBLK_F_UNPRIVILEGED_DEV;
	return f;
}

/*
 * Settle the data path of a new device and, where the user did not pick
 * one, its copy mode.  "auto" takes the batched path where the driver
 * offers it, if BATCH_BY_DEFAULT; an explicit "batch" the driver lacks
 * is refused by ublk_config_check().  The batched path has no NEED_GET_DATA:
 * it copies in BATCH_COPY_MODE unless told otherwise.  Nor does it take
 * queue depth 1: the driver's batch queue (a kfifo) needs two slots.
 */
void config_choose_io_path(uint64_t features, struct ublk_config *cfg)
{
	/* These need the per-request commands (the driver has no PER_IO_DAEMON with batches). */
	bool per_request = (cfg->copy_mode_set && (cfg->copy_mode == UBLK_COPY_GET_DATA ||
						   cfg->copy_mode == UBLK_COPY_ZERO)) ||
			   cfg->queue_threads > 1;

	if (cfg->io_path == UBLK_IO_PATH_AUTO)
		cfg->io_path = BATCH_BY_DEFAULT && (features & UBLK_F_BATCH_IO) &&
			       !per_request && cfg->depth >= 2 ?
			       UBLK_IO_PATH_BATCH : UBLK_IO_PATH_PER_REQUEST;
	if (cfg->io_path == UBLK_IO_PATH_BATCH && !cfg->copy_mode_set)
		cfg->copy_mode = BATCH_COPY_MODE;
	/* A zoned device's copy mode, unless told: the one the driver takes. */
	if (cfg->zone_size && !cfg->copy_mode_set)
		cfg->copy_mode = UBLK_COPY_USER;
}

/* The UBLK_F_* flags @cfg needs that @features lacks, the lowest first. */
uint64_t config_missing_flag(uint64_t features, uint64_t want)
{
	uint64_t missing = want & ~features;

	return missing & -missing;
}

enum ublk_conflict ublk_config_check(const struct ublk_config *given, uint64_t features,
				     uint64_t *missing)
{
	struct ublk_config cfg = *given;
	bool batch;

	config_choose_io_path(features, &cfg);
	batch = cfg.io_path == UBLK_IO_PATH_BATCH;
	/*
	 * An ordinary user's device may not be recovered (the driver drops
	 * USER_RECOVERY: a server that never comes back would hold its I/O
	 * for ever), nor have the server touch a request's pages (USER_COPY,
	 * AUTO_BUF_REG and SUPPORT_ZERO_COPY are refused: a server that did
	 * not fill a READ's pages could read kernel memory).
	 */
	if (cfg.unprivileged && cfg.zone_size)
		return UBLK_UNPRIV_NO_ZONED;
	if (cfg.unprivileged && cfg.recoverable)
		return UBLK_UNPRIV_NO_RECOVERY;
	if (cfg.unprivileged && cfg.copy_mode == UBLK_COPY_USER)
		return UBLK_UNPRIV_NO_USER_COPY;
	if (cfg.unprivileged && cfg.copy_mode == UBLK_COPY_ZERO)
		return UBLK_UNPRIV_NO_ZERO_COPY;
	if (batch && cfg.copy_mode == UBLK_COPY_GET_DATA)
		return UBLK_BATCH_NO_GET_DATA;
	if (batch && cfg.copy_mode == UBLK_COPY_ZERO)
		return UBLK_BATCH_NO_ZERO_COPY;
	if (batch && cfg.queue_threads > 1)
		return UBLK_BATCH_NO_THREADS;
	if (batch && cfg.depth < 2)
		return UBLK_BATCH_DEPTH_1;
	if (cfg.queue_threads > cfg.depth)
		return UBLK_THREADS_OVER_DEPTH;
	/*
	 * The driver returns a zone append's sector in the COMMIT's addr,
	 * which only USER_COPY leaves free (a device of 6.12 to 7.3).
	 */
	if (cfg.zone_size && cfg.copy_mode != UBLK_COPY_USER)
		return UBLK_ZONED_NEEDS_USER_COPY;
	if (cfg.zone_size && batch)
		return UBLK_ZONED_NO_BATCH;
	*missing = config_missing_flag(features, config_flags(&cfg));
	return *missing ? UBLK_LACKS_FLAG : UBLK_CONFIG_OK;
}
