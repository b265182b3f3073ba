/*
 * options.h - the command line's words: the options of a new device and
 * of `recover` (one table, options.c), numbers, sizes and paths as the
 * user writes them, and usage errors.
 */
#ifndef UBLK_MEM_OPTIONS_H
#define UBLK_MEM_OPTIONS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "service.h"
#include "ublk.h"
#include "zone.h"

#define VERSION		"0.2.0"
#define EXIT_USAGE	2
#define MAX_ID		((1UL << 20) - 1)

/* Which verb's options (a verb takes those whose mask has its bit). */
enum verb_bits {
	VERB_SERVE = 1 << 0,	/* ublk-mem SIZE ... */
	VERB_RECOVER = 1 << 1,	/* ublk-mem recover ID ... */
};

/* What the command line asked for. */
struct options {
	struct ublk_config cfg;
	struct store_config store;	/* its store: kind, size, file, zones */
	bool reserve_set;
	char store_path[PATH_MAX];	/* --store, made absolute; "" if not given */
	struct service svc;
	bool zoned;			/* --zoned (the zones are in store.zones) */
	int id;				/* recover: the device */
	bool rebuild;			/* recover --rebuild */
};

/*
 * Parse `ublk-mem SIZE [options]` (@verb VERB_SERVE, @argv from the start)
 * or `ublk-mem recover ID [options]` (VERB_RECOVER): exits with status 2
 * and one line on any usage error, 0 after --help or --version.
 */
void parse_options(unsigned verb, int argc, char **argv, struct options *o);

/*
 * Can this kernel's driver (@features) serve @cfg?  If not, say why in
 * the command line's words and return -EOPNOTSUPP (or -EINVAL).
 */
int refuse_config(const struct ublk_config *cfg, uint64_t features);

/* Print "ublk-mem: MESSAGE (see ublk-mem --help)" and exit with status 2. */
void usage_error(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* A whole decimal number in [min, max], or a usage error naming @what. */
unsigned long parse_num(const char *s, const char *what, unsigned long min, unsigned long max);

/* "64M": bytes, with an optional K, M, G or T suffix; 0 or -EINVAL. */
int parse_size(const char *s, uint64_t *out);

/* The largest size a store of @size may grow to: what the machine holds. */
uint64_t max_store_size(uint64_t size);

#endif
