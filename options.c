/*
 * options.c - the command line's words: see options.h.
 *
 * The options of a new device and of `recover` are one table: each entry
 * names the verbs that take it and a small function that stores its
 * value; parse_options() hands the table to getopt_long() and then checks
 * what only makes sense as a whole (a size the machine can hold, a
 * combination the protocol can serve).
 */
#define _GNU_SOURCE
#include "options.h"
#include "log.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * --poll without a value.  The spin must outlast the gap between one
 * answer and the next request at queue depth 1 - fio's completion, its
 * next submission and the kernel's dispatch - or the thread sleeps anyway
 * and nothing is won.  That gap is a few microseconds on hardware and a
 * few hundred in an emulated VM; bench.sh measured no gain at 200 us
 * under TCG and twice the IOPS at 1000 us.  A burst of I/O costs at most
 * this much CPU time after its last request.
 */
#define POLL_US_DEFAULT	1000
/* The recover synopsis, in two parts: --help puts them on two lines. */
#define RECOVER_USAGE_1	"ublk-mem recover ID [--store PATH] [--rebuild] [-D] [--pidfile PATH] [-v]"
#define RECOVER_USAGE_2	"[--poll[=US]] [--queue-threads N] [--reserve SIZE] [--prealloc]"
#define RECOVER_USAGE	RECOVER_USAGE_1 " " RECOVER_USAGE_2

static const char usage_text[] =
"usage: ublk-mem SIZE [options]     create a RAM block device and serve it\n"
"       ublk-mem list [--json]      list ublk devices (a table, or a JSON array)\n"
"       ublk-mem del [--force] ID   remove a device (e.g. one whose server died);\n"
"                                   --force: even if mounted or open\n"
"       " RECOVER_USAGE_1 "\n"
"                           " RECOVER_USAGE_2 "\n"
"                                   take over a --recoverable device whose server died\n"
"       ublk-mem features           what this kernel's ublk driver supports\n"
"       ublk-mem resize [--force] ID SIZE\n"
"                                   grow (or, with --force, shrink) a live device\n"
"       ublk-mem restart ID         replace a --recoverable device's server with a\n"
"                                   fresh one, while the device stays in use\n"
"       ublk-mem stats [--json] ID  what a device holds and has served: memory,\n"
"                                   compression, requests (zram's names)\n"
"       ublk-mem chown [ID]         give the nodes of a device a user made to that\n"
"                                   user (run by udev or mdev, or by root)\n"
"\n"
"SIZE is bytes, with an optional K, M, G or T suffix (powers of 1024): 64M, 1G.\n"
"The device path (/dev/ublkbN) is printed on stdout once it is live;\n"
"SIGINT, SIGTERM, SIGHUP or SIGQUIT removes the device and exits; while the\n"
"device is in use (mounted, open) a second signal within 10 s is needed.\n"
"With NOTIFY_SOCKET set (systemd Type=notify) READY=1 is sent once it is live.\n"
"\n"
"Without root: a user who may open /dev/ublk-control makes a device of their\n"
"own, without --recoverable, --zoned, user_copy or zero_copy.  Root sets this\n"
"up once: make install adds a udev rule that runs `ublk-mem chown` for each\n"
"new device node (the driver makes them root's) and opens /dev/ublk-control\n"
"to the group ublk (groupadd -r ublk).  Without udev, mdev takes two lines,\n"
"or root runs `ublk-mem chown ID` for each new device (man ublk-mem, Without\n"
"root, has the lines and what else a user's device lacks).\n"
"\n"
"options:\n"
"  -q, --queues N        hardware queues, one thread each (default 1, max CPUs)\n"
"  -d, --depth N         queue depth, 1..4096 (default 128)\n"
"      --queue-threads N\n"
"                        threads serving each queue, its tags dealt out among\n"
"                        them (default 1; more needs Linux 6.16)\n"
"  -b, --block-size N    logical block size: 512, 1024, 2048, 4096 (default 512)\n"
"  -n, --id N            device id (default: the first free one)\n"
"      --prealloc        allocate and lock all memory up front (without root,\n"
"                        lock no more than RLIMIT_MEMLOCK allows)\n"
"      --small-pages     allocate a page at a time, not whole huge pages (2 MiB\n"
"                        with 4 KiB pages)\n"
"      --reserve SIZE    memory to leave to the rest of the machine: writes that\n"
"                        need new memory fail with ENOSPC below it (default\n"
"                        1/32 of RAM, at least 64M, at most 1G)\n"
"      --copy-mode MODE  how data moves: get_data (default), user_copy, bounce,\n"
"                        zero_copy (io_uring copies between the request and\n"
"                        a tmpfs store, Linux 6.16)\n"
"      --io-path PATH    how requests reach the server: per-request (FETCH and\n"
"                        COMMIT per request), batch (batched commands, Linux\n"
"                        7.0; copy mode bounce unless given) or auto (default)\n"
"      --compress        keep each 4 KiB page LZ4-compressed, a page of one\n"
"                        repeated word as that word (as zram does)\n"
"      --mem-limit SIZE  with --compress: the store's memory at most; writes\n"
"                        that need more fail with ENOSPC (default: no limit)\n"
"      --zoned           a host-managed zoned device (user_copy mode), with:\n"
"      --zone-size SIZE  a power of two (default: the largest up to 256M that\n"
"                        divides SIZE into 8 or more zones)\n"
"      --zone-capacity SIZE  writable bytes of a zone (default its size)\n"
"      --conventional-zones N  the first N zones take random writes\n"
"      --max-open-zones N, --max-active-zones N  (default: no limit)\n"
"      --poll[=US]       spin up to US microseconds (default 1000) for the next\n"
"                        request before sleeping, even at queue depth 1: lower\n"
"                        latency for CPU time.  Without it the server spins\n"
"                        only while several requests are in flight; --poll=0\n"
"                        never spins\n"
"      --recoverable     survive a server crash: keep data in a tmpfs file and\n"
"                        let `ublk-mem recover ID` take over\n"
"      --store PATH      the recoverable store (default /dev/shm/ublk-mem-ID)\n"
"  -D, --daemon          serve in the background: return once the device is\n"
"                        live; errors go to syslog from then on\n"
"      --pidfile PATH    write the server's pid to PATH (removed when it stops)\n"
"  -v, --trace           print every control command and request on stderr\n"
"  -h, --help            this text\n"
"  -V, --version         print the version\n";

void usage_error(const char *fmt, ...)
{
	va_list ap;
	char line[256];

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "ublk-mem: %s (see ublk-mem --help)\n", line);
	exit(EXIT_USAGE);
}

/* A whole decimal number in [min, max], or a usage error naming @what. */
unsigned long parse_num(const char *s, const char *what, unsigned long min,
			unsigned long max)
{
	unsigned long v = 0;
	const char *p = s;

	for (; *p >= '0' && *p <= '9' && v <= max; p++)
		v = v * 10 + (unsigned long)(*p - '0');
	if (p == s || *p || v < min || v > max)
		usage_error("invalid %s '%s': expected a number from %lu to %lu",
			    what, s, min, max);
	return v;
}

int parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	unsigned shift = 0;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		uint64_t digit = (uint64_t)(*p - '0');

		if (v > (UINT64_MAX - digit) / 10)
			return -EINVAL;
		v = v * 10 + digit;
	}
	switch (*p) {
	case 'K': case 'k': shift = 10; p++; break;
	case 'M': case 'm': shift = 20; p++; break;
	case 'G': case 'g': shift = 30; p++; break;
	case 'T': case 't': shift = 40; p++; break;
	}
	if (*p || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = v << shift;
	return 0;
}

static enum ublk_copy_mode parse_copy_mode(const char *s)
{
	if (!strcmp(s, "bounce"))
		return UBLK_COPY_BOUNCE;
	if (!strcmp(s, "get_data"))
		return UBLK_COPY_GET_DATA;
	if (!strcmp(s, "user_copy"))
		return UBLK_COPY_USER;
	if (!strcmp(s, "zero_copy"))
		return UBLK_COPY_ZERO;
	usage_error("invalid copy mode '%s': expected get_data, user_copy, bounce or zero_copy", s);
}

static enum ublk_io_path parse_io_path(const char *s)
{
	if (!strcmp(s, "per-request"))
		return UBLK_IO_PATH_PER_REQUEST;
	if (!strcmp(s, "batch"))
		return UBLK_IO_PATH_BATCH;
	if (!strcmp(s, "auto"))
		return UBLK_IO_PATH_AUTO;
	usage_error("invalid I/O path '%s': expected per-request, batch or auto", s);
}

static unsigned parse_poll(const char *s)
{
	unsigned us = s ? (unsigned)parse_num(s, "poll time (us)", 0, 1000000) :
		      POLL_US_DEFAULT;

	return us ? us : UBLK_POLL_OFF;
}

/*
 * @path made absolute into @out: a daemon works from / (chdir), and a
 * store's record must name it wherever `recover` or `del` run from.
 * Returns 0, or -errno when the current directory is unknown or the
 * result does not fit.
 */
static int absolute_path(const char *path, char *out, size_t len)
{
	char cwd[PATH_MAX];
	int n;

	if (path[0] == '/')
		n = snprintf(out, len, "%s", path);
	else if (getcwd(cwd, sizeof(cwd)))
		n = snprintf(out, len, "%s/%s", strcmp(cwd, "/") ? cwd : "", path);
	else
		return -errno;
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/*
 * The file argument of @opt (--store, --pidfile): a file to make in a
 * directory that exists.  Its absolute path goes to @out.
 */
static void check_file_arg(const char *opt, const char *path, char *out, size_t len)
{
	char dir[PATH_MAX];
	struct stat st;
	char *slash;
	int ret;

	if (!*path || path[strlen(path) - 1] == '/')
		usage_error("%s needs the path of a file", opt);
	if (strchr(path, '\n'))
		usage_error("%s: the path may not hold a newline", opt);
	ret = absolute_path(path, out, len);
	if (ret == -ENAMETOOLONG)
		usage_error("%s: the path is too long", opt);
	if (ret < 0)
		usage_error("%s %s: cannot tell the current directory (%s): give an absolute path",
			    opt, path, strerror(-ret));
	if (stat(out, &st) == 0 && S_ISDIR(st.st_mode))
		usage_error("%s %s is a directory: give the path of a file to make in it",
			    opt, path);
	snprintf(dir, sizeof(dir), "%s", out);
	slash = strrchr(dir, '/');
	if (slash != dir) {
		*slash = '\0';
		if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
			usage_error("%s %s: there is no directory %s", opt, path, dir);
	}
}

static long cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? n : 1;
}

/* The option that getopt() did not know, as the user typed it. */
static void unknown_option(char **argv)
{
	if (optopt)
		usage_error("unknown option '-%c'", optopt);
	usage_error("unknown option '%s'", argv[optind - 1]);
}

/*
 * The largest size a store of @size bytes is prepared to grow to: what
 * the machine could ever hold (the address space it reserves costs no
 * memory).
 */
uint64_t max_store_size(uint64_t size)
{
	uint64_t total = mem_total_bytes();

	return total == UINT64_MAX || total < size ? size : total;
}

/* Parse SIZE and options; exits with status 2 on any usage error. */

/* ---- one function per option ---- */

static void opt_queues(struct options *o, const char *v)
{
	o->cfg.nr_queues = (unsigned)parse_num(v, "queue count", 1, (unsigned long)cpu_count());
}

static void opt_depth(struct options *o, const char *v)
{
	o->cfg.depth = (unsigned)parse_num(v, "queue depth", 1, UBLK_MAX_QUEUE_DEPTH);
}

static void opt_block_size(struct options *o, const char *v)
{
	o->cfg.block_size = (unsigned)parse_num(v, "block size", 512, 4096);
	if (o->cfg.block_size & (o->cfg.block_size - 1))
		usage_error("invalid block size '%s': expected 512, 1024, 2048 or 4096", v);
}

static void opt_id(struct options *o, const char *v)
{
	o->cfg.dev_id = (int)parse_num(v, "device id", 0, MAX_ID);
}

static void opt_prealloc(struct options *o, const char *v)
{
	(void)v;
	o->store.mem.prealloc = true;
}

static void opt_small_pages(struct options *o, const char *v)
{
	(void)v;
	o->store.mem.small_pages = true;
}

static void opt_reserve(struct options *o, const char *v)
{
	if (parse_size(v, &o->store.mem.reserve) < 0)
		usage_error("invalid --reserve '%s': expected a size such as 256M, or 0", v);
	o->reserve_set = true;
}

static void opt_copy_mode(struct options *o, const char *v)
{
	o->cfg.copy_mode = parse_copy_mode(v);
	o->cfg.copy_mode_set = true;
}

static void opt_io_path(struct options *o, const char *v)
{
	o->cfg.io_path = parse_io_path(v);
}

static void opt_poll(struct options *o, const char *v)
{
	o->cfg.poll_us = parse_poll(v);
}

static void opt_queue_threads(struct options *o, const char *v)
{
	o->cfg.queue_threads = (unsigned)parse_num(v, "thread count", 1, UBLK_MAX_QUEUE_DEPTH);
}

static void opt_recoverable(struct options *o, const char *v)
{
	(void)v;
	o->cfg.recoverable = true;
}

static void opt_store(struct options *o, const char *v)
{
	check_file_arg("--store", v, o->store_path, sizeof(o->store_path));
}

static void opt_compress(struct options *o, const char *v)
{
	(void)v;
	o->store.compress = true;
}

static void opt_mem_limit(struct options *o, const char *v)
{
	if (parse_size(v, &o->store.mem_limit) < 0 || o->store.mem_limit < (1 << 20))
		usage_error("invalid --mem-limit '%s': expected a size of 1M or more, such as 256M", v);
}

static void opt_zoned(struct options *o, const char *v)
{
	(void)v;
	o->zoned = true;
}

/* --zone-size and --zone-capacity: a size, a multiple of 4 KiB. */
static uint64_t zone_bytes(const char *opt, const char *v)
{
	uint64_t n;

	if (parse_size(v, &n) < 0 || !n || n % 4096)
		usage_error("invalid %s '%s': expected a size in whole 4 KiB, such as 8M", opt, v);
	return n;
}

static void opt_zone_size(struct options *o, const char *v)
{
	o->store.zones.zone_size = zone_bytes("--zone-size", v);
	if (o->store.zones.zone_size & (o->store.zones.zone_size - 1))
		usage_error("invalid --zone-size '%s': a zone's size must be a power of two", v);
}

static void opt_zone_capacity(struct options *o, const char *v)
{
	o->store.zones.zone_capacity = zone_bytes("--zone-capacity", v);
}

static void opt_conventional(struct options *o, const char *v)
{
	o->store.zones.conventional = (unsigned)parse_num(v, "number of conventional zones", 0, 1U << 20);
}

static void opt_max_open(struct options *o, const char *v)
{
	o->store.zones.max_open = (unsigned)parse_num(v, "number of open zones", 1, 1U << 20);
}

static void opt_max_active(struct options *o, const char *v)
{
	o->store.zones.max_active = (unsigned)parse_num(v, "number of active zones", 1, 1U << 20);
}

static void opt_rebuild(struct options *o, const char *v)
{
	(void)v;
	o->rebuild = true;
}

static void opt_daemon(struct options *o, const char *v)
{
	(void)v;
	o->svc.daemon = true;
}

static void opt_pidfile(struct options *o, const char *v)
{
	check_file_arg("--pidfile", v, o->svc.pidfile, sizeof(o->svc.pidfile));
}

static void opt_trace(struct options *o, const char *v)
{
	(void)v;
	o->cfg.trace = true;
}

static void opt_help(struct options *o, const char *v)
{
	(void)o;
	(void)v;
	fputs(usage_text, stdout);
	exit(0);
}

static void opt_version(struct options *o, const char *v)
{
	(void)o;
	(void)v;
	puts("ublk-mem " VERSION);
	exit(0);
}

#define BOTH	(VERB_SERVE | VERB_RECOVER)

/* The options: getopt_long()'s entry, the verbs that take it, its setter. */
static const struct option_desc {
	struct option opt;
	unsigned verbs;
	void (*set)(struct options *o, const char *value);
} option_table[] = {
	{ { "queues", required_argument, NULL, 'q' }, VERB_SERVE, opt_queues },
	{ { "depth", required_argument, NULL, 'd' }, VERB_SERVE, opt_depth },
	{ { "block-size", required_argument, NULL, 'b' }, VERB_SERVE, opt_block_size },
	{ { "id", required_argument, NULL, 'n' }, VERB_SERVE, opt_id },
	{ { "prealloc", no_argument, NULL, 256 }, BOTH, opt_prealloc },
	{ { "small-pages", no_argument, NULL, 257 }, VERB_SERVE, opt_small_pages },
	{ { "reserve", required_argument, NULL, 258 }, BOTH, opt_reserve },
	{ { "copy-mode", required_argument, NULL, 259 }, VERB_SERVE, opt_copy_mode },
	{ { "io-path", required_argument, NULL, 260 }, VERB_SERVE, opt_io_path },
	{ { "poll", optional_argument, NULL, 261 }, BOTH, opt_poll },
	{ { "queue-threads", required_argument, NULL, 262 }, BOTH, opt_queue_threads },
	{ { "recoverable", no_argument, NULL, 263 }, VERB_SERVE, opt_recoverable },
	{ { "store", required_argument, NULL, 264 }, BOTH, opt_store },
	{ { "rebuild", no_argument, NULL, 265 }, VERB_RECOVER, opt_rebuild },
	{ { "compress", no_argument, NULL, 273 }, VERB_SERVE, opt_compress },
	{ { "mem-limit", required_argument, NULL, 274 }, BOTH, opt_mem_limit },
	{ { "zoned", no_argument, NULL, 267 }, VERB_SERVE, opt_zoned },
	{ { "zone-size", required_argument, NULL, 268 }, VERB_SERVE, opt_zone_size },
	{ { "zone-capacity", required_argument, NULL, 269 }, VERB_SERVE, opt_zone_capacity },
	{ { "conventional-zones", required_argument, NULL, 270 }, VERB_SERVE, opt_conventional },
	{ { "max-open-zones", required_argument, NULL, 271 }, VERB_SERVE, opt_max_open },
	{ { "max-active-zones", required_argument, NULL, 272 }, VERB_SERVE, opt_max_active },
	{ { "daemon", no_argument, NULL, 'D' }, BOTH, opt_daemon },
	{ { "pidfile", required_argument, NULL, 266 }, BOTH, opt_pidfile },
	{ { "trace", no_argument, NULL, 'v' }, BOTH, opt_trace },
	{ { "help", no_argument, NULL, 'h' }, VERB_SERVE, opt_help },
	{ { "version", no_argument, NULL, 'V' }, VERB_SERVE, opt_version },
};

#define N_OPTIONS	(sizeof(option_table) / sizeof(option_table[0]))

/*
 * getopt_long()'s view of the table for @verb: the long options, and the
 * short ones ("q:d:b:n:DvhV"), in @longs and @shorts.
 */
static void getopt_table(unsigned verb, struct option *longs, char *shorts)
{
	unsigned n = 0;
	char *p = shorts;

	*p++ = ':';	/* a missing value is ':', not '?' */
	for (unsigned i = 0; i < N_OPTIONS; i++) {
		const struct option *opt = &option_table[i].opt;

		if (!(option_table[i].verbs & verb))
			continue;
		longs[n++] = *opt;
		if (opt->val < 256) {
			*p++ = (char)opt->val;
			if (opt->has_arg == required_argument)
				*p++ = ':';
		}
	}
	memset(&longs[n], 0, sizeof(longs[n]));
	*p = '\0';
}

/* Defaults of a new device; `recover` takes the rest from the kernel. */
static void default_options(struct options *o)
{
	memset(o, 0, sizeof(*o));
	o->cfg.nr_queues = 1;
	o->cfg.depth = 128;
	o->cfg.block_size = 512;
	o->cfg.dev_id = -1;
	o->cfg.copy_mode = UBLK_COPY_GET_DATA;
	o->id = -1;
}

/* The words for a configuration the protocol refuses (ublk_config_check()). */
static const char *conflict_words(enum ublk_conflict c)
{
	switch (c) {
	case UBLK_BATCH_NO_GET_DATA:
		return "--copy-mode get_data needs --io-path per-request: batched commands have no NEED_GET_DATA";
	case UBLK_BATCH_NO_ZERO_COPY:
		return "--copy-mode zero_copy needs --io-path per-request";
	case UBLK_BATCH_NO_THREADS:
		return "--queue-threads needs --io-path per-request: the driver deals batched commands out by queue";
	case UBLK_BATCH_DEPTH_1:
		return "--io-path batch needs --depth 2 or more: the driver's batched queues refuse depth 1";
	case UBLK_THREADS_OVER_DEPTH:
		return "--queue-threads is more than the queue depth: a thread would have no tags";
	case UBLK_ZONED_NEEDS_USER_COPY:
		return "--zoned needs --copy-mode user_copy: the driver returns a zone append's sector where the other modes keep their buffer";
	case UBLK_ZONED_NO_BATCH:
		return "--zoned needs --io-path per-request";
	case UBLK_UNPRIV_NO_RECOVERY:
		return "--recoverable needs root: the ublk driver recovers no device an ordinary user made";
	case UBLK_UNPRIV_NO_USER_COPY:
		return "--copy-mode user_copy needs root: the ublk driver lets no ordinary user's server copy a request's data itself (get_data, the default, and bounce work)";
	case UBLK_UNPRIV_NO_ZERO_COPY:
		return "--copy-mode zero_copy needs root: the ublk driver lends no ordinary user's server a request's pages (get_data, the default, and bounce work)";
	case UBLK_UNPRIV_NO_ZONED:
		return "--zoned needs root: a zoned device is served in user_copy mode, which the ublk driver refuses an ordinary user";
	default:
		return "this configuration cannot be served";
	}
}

/* What else the user may do when the driver lacks @flag. */
static const char *flag_hint(uint64_t flag)
{
	if (flag & (UBLK_F_USER_COPY | UBLK_F_AUTO_BUF_REG))
		return ": use another --copy-mode";
	if (flag == UBLK_F_BATCH_IO)
		return ": use --io-path per-request";
	if (flag == UBLK_F_PER_IO_DAEMON)
		return ": use --queue-threads 1";
	if (flag & (UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_REISSUE))
		return ": --recoverable cannot work here";
	if (flag == UBLK_F_UNPRIVILEGED_DEV)
		return ": only root can make devices here";
	return "";
}

int refuse_config(const struct ublk_config *cfg, uint64_t features)
{
	uint64_t missing = 0;
	enum ublk_conflict c = ublk_config_check(cfg, features, &missing);
	unsigned bit;

	if (c == UBLK_CONFIG_OK)
		return 0;
	if (c != UBLK_LACKS_FLAG) {
		log_err("%s", conflict_words(c));
		return -EINVAL;
	}
	bit = (unsigned)__builtin_ctzll(missing);
	log_err("this kernel's ublk driver lacks UBLK_F_%s (Linux %s)%s", ublk_feature_name(bit),
		ublk_feature_since(bit), flag_hint(missing));
	return -EOPNOTSUPP;
}

/*
 * The default zone size for a device of @size: the largest power of two
 * up to 256 MiB that divides it into 8 zones or more (4 KiB at the least).
 */
static uint64_t default_zone_size(uint64_t size)
{
	uint64_t z = 256ULL << 20;

	while (z > 4096 && (z > size / 8 || size % z))
		z >>= 1;
	return z;
}

/* A zoned device's geometry, whole; usage errors for what cannot be. */
static void check_zoned(struct options *o)
{
	struct zone_config *z = &o->store.zones;
	uint64_t nr;

	if (!o->zoned) {
		if (z->zone_size || z->zone_capacity || z->conventional || z->max_open ||
		    z->max_active)
			usage_error("the zone options go with --zoned");
		return;
	}
	if (!z->zone_size)
		z->zone_size = default_zone_size(o->cfg.size);
	if (o->cfg.size % z->zone_size)
		usage_error("size %llu is not a whole number of zones of %llu bytes (see --zone-size)",
			    (unsigned long long)o->cfg.size, (unsigned long long)z->zone_size);
	if (z->zone_capacity > z->zone_size)
		usage_error("--zone-capacity is larger than the zone size (%llu bytes)",
			    (unsigned long long)z->zone_size);
	nr = o->cfg.size / z->zone_size;
	if (z->conventional >= nr)
		usage_error("--conventional-zones %u leaves none of the %llu zones sequential",
			    z->conventional, (unsigned long long)nr);
	if (z->max_open > nr - z->conventional || z->max_active > nr - z->conventional)
		usage_error("--max-open-zones and --max-active-zones are at most the %llu sequential zones",
			    (unsigned long long)(nr - z->conventional));
	if (z->max_open && z->max_active && z->max_open > z->max_active)
		usage_error("--max-open-zones is more than --max-active-zones: an open zone is active");
	o->cfg.zone_size = z->zone_size;
	o->cfg.max_open_zones = z->max_open;
	o->cfg.max_active_zones = z->max_active;
}

/* --compress and what cannot go with it. */
static void check_compress(const struct options *o)
{
	if (!o->store.compress) {
		if (o->store.mem_limit)
			usage_error("--mem-limit goes with --compress");
		return;
	}
	if (o->cfg.copy_mode == UBLK_COPY_ZERO)
		usage_error("--compress cannot serve --copy-mode zero_copy: io_uring copies between the request and a file holding the data as it is");
	if (o->store.mem.prealloc)
		usage_error("--prealloc does not apply to --compress: its memory follows what the data compresses to");
	if (o->store.mem.small_pages)
		usage_error("--small-pages does not apply to --compress: it keeps pages in slabs of its own");
}

/* What only makes sense of a new device's options as a whole. */
static void check_serve(struct options *o, const char *size_arg)
{
	uint64_t missing;
	enum ublk_conflict c;

	if (!size_arg)
		usage_error("missing SIZE, e.g. ublk-mem 64M");
	if (parse_size(size_arg, &o->cfg.size) < 0)
		usage_error("invalid size '%s': expected a number with an optional K, M, G or T suffix, e.g. 64M",
			    size_arg);
	if (o->cfg.size == 0)
		usage_error("size must be larger than 0");
	if (o->cfg.size % o->cfg.block_size)
		usage_error("size %llu is not a multiple of the block size %u",
			    (unsigned long long)o->cfg.size, o->cfg.block_size);
	/* A compressed store holds more than its memory (--mem-limit caps it). */
	if (!o->store.compress && o->cfg.size > mem_total_bytes())
		usage_error("size %s is larger than this machine's RAM + swap (%llu MiB)",
			    size_arg, (unsigned long long)(mem_total_bytes() >> 20));
	if (o->store_path[0] && !o->cfg.recoverable)
		usage_error("--store goes with --recoverable");
	if (o->store.mem.small_pages && o->cfg.recoverable)
		usage_error("--small-pages does not apply to --recoverable: the page size of its store is its tmpfs's");
	check_zoned(o);
	check_compress(o);
	/* Rules of the protocol that hold on any kernel: checked now. */
	c = ublk_config_check(&o->cfg, ~0ULL, &missing);
	if (c != UBLK_CONFIG_OK)
		usage_error("%s", conflict_words(c));
	o->store.mem.size = o->cfg.size;
	/* Room to grow (ublk-mem resize): up to what the machine could hold. */
	o->store.mem.max_size = max_store_size(o->cfg.size);
}

void parse_options(unsigned verb, int argc, char **argv, struct options *o)
{
	struct option longs[N_OPTIONS + 1];
	char shorts[2 * N_OPTIONS + 2];
	const char *arg = NULL;
	int c;

	default_options(o);
	getopt_table(verb, longs, shorts);
	/* `recover ID ...` is parsed from "recover" on, as if it were argv[0]. */
	if (verb == VERB_RECOVER) {
		argc--;
		argv++;
	}
	opterr = 0;
	optind = 0;	/* start afresh (glibc and musl) */
	while ((c = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
		unsigned i;

		if (c == ':')
			usage_error("option '%s' needs a value", argv[optind - 1]);
		for (i = 0; i < N_OPTIONS; i++)
			if (option_table[i].opt.val == c && (option_table[i].verbs & verb))
				break;
		if (c == '?' || i == N_OPTIONS)
			unknown_option(argv);
		option_table[i].set(o, optarg);
	}
	if (optind < argc)
		arg = argv[optind++];
	if (optind < argc)
		usage_error("unexpected argument '%s'%s", argv[optind],
			    verb == VERB_RECOVER ? " (usage: " RECOVER_USAGE ")" : "");
	if (o->svc.daemon && o->cfg.trace)
		usage_error("--trace prints on stderr, which --daemon leaves: trace in the foreground");
	if (!o->reserve_set)
		o->store.mem.reserve = mem_default_reserve();
	if (verb == VERB_SERVE) {
		check_serve(o, arg);
	} else if (!arg) {
		usage_error("usage: " RECOVER_USAGE);
	} else {
		o->id = (int)parse_num(arg, "device id", 0, MAX_ID);
	}
	if (o->store_path[0])
		o->store.mem.path = o->store_path;
	o->store.mem.file_io = o->cfg.copy_mode == UBLK_COPY_ZERO;
}
