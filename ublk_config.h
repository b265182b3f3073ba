/*
 * ublk_config.h - the flags and data path of a device's configuration
 * (ublk_config.c), for ublk.c; ublk_config_check() itself is in ublk.h.
 */
#ifndef UBLK_MEM_UBLK_CONFIG_H
#define UBLK_MEM_UBLK_CONFIG_H

#include "ublk.h"

#include <stdint.h>

/* The UBLK_F_* flags @cfg needs. */
uint64_t config_flags(const struct ublk_config *cfg);

/* Flags asked for wherever @features offers them (partition scan off...). */
uint64_t config_optional_flags(const struct ublk_config *cfg, uint64_t features);

/* Settle @cfg's data path and, where the user did not pick one, copy mode. */
void config_choose_io_path(uint64_t features, struct ublk_config *cfg);

/* The lowest UBLK_F_* flag of @want that @features lacks, or 0. */
uint64_t config_missing_flag(uint64_t features, uint64_t want);

#endif
