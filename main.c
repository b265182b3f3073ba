/*
 * main.c - ublk-mem's command line: the verbs (serve, list, del, recover,
 * features), their options, and the rules of the process around them.
 *
 * Read uring.c, ublk.c and mem_backend.c first; this file puts them
 * together.  `ublk-mem SIZE` is the whole story in a few calls:
 *
 *   ublk_add()         ADD_DEV + SET_PARAMS: the kernel picks the id
 *   mem_store_open()   the RAM (for --recoverable, a tmpfs file named
 *                      after the id)
 *   ublk_run()         queue threads, START_DEV, serve until a stop signal
 *   ublk_remove()      DEL_DEV
 *
 * The server runs as root and opens files in shared directories, so a
 * recoverable device's store is checked before it is trusted (see
 * mem_backend.c), and a record of which store belongs to which device is
 * kept where only root can write: RECORD_DIR.
 */
#define _GNU_SOURCE
#include "mem_backend.h"
#include "ublk.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define VERSION		"0.2.0"
#define EXIT_USAGE	2
#define MAX_ID		((1UL << 20) - 1)
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
/*
 * The server's oom_score_adj.  A RAM disk's server holds every byte of
 * the device: if the OOM killer picks it, all of it is lost.  -900 makes
 * it the last choice (its score only counts once nothing else is left);
 * -1000 would exempt it entirely, which can leave the kernel nothing to
 * kill but a panic.  A value someone already set (systemd's
 * OOMScoreAdjust=, say) is left alone.
 */
#define OOM_SCORE_ADJ	-900
#define RECORD_DIR	"/run/ublk-mem"
#define DEFAULT_STORE	"/dev/shm/ublk-mem-%d"

/* ---- the command line ---- */

static const char usage_text[] =
"usage: ublk-mem SIZE [options]     create a RAM block device and serve it\n"
"       ublk-mem list               list ublk devices\n"
"       ublk-mem del ID             remove a device (e.g. one whose server died)\n"
"       ublk-mem recover ID [--store PATH] [--rebuild] [-v]\n"
"                                   take over a --recoverable device whose server died\n"
"       ublk-mem features           what this kernel's ublk driver supports\n"
"\n"
"SIZE is bytes, with an optional K, M, G or T suffix (powers of 1024): 64M, 1G.\n"
"The device path (/dev/ublkbN) is printed on stdout once it is live;\n"
"SIGINT, SIGTERM, SIGHUP or SIGQUIT removes the device and exits.\n"
"\n"
"options:\n"
"  -q, --queues N        hardware queues, one thread each (default 1, max CPUs)\n"
"  -d, --depth N         queue depth, 1..4096 (default 128)\n"
"  -b, --block-size N    logical block size: 512, 1024, 2048, 4096 (default 512)\n"
"  -n, --id N            device id (default: the first free one)\n"
"      --prealloc        allocate and lock all memory up front\n"
"      --small-pages     allocate 4 KiB at a time, not in 2 MiB huge pages\n"
"      --reserve SIZE    memory to leave to the rest of the machine: writes that\n"
"                        need new memory fail with ENOSPC below it (default\n"
"                        1/32 of RAM, at least 64M, at most 1G)\n"
"      --copy-mode MODE  how data moves: get_data (default), user_copy, bounce\n"
"      --poll[=US]       spin up to US microseconds (default 1000) for the next\n"
"                        request before sleeping, even at queue depth 1: lower\n"
"                        latency for CPU time.  Without it the server spins\n"
"                        only while several requests are in flight; --poll=0\n"
"                        never spins\n"
"      --recoverable     survive a server crash: keep data in a tmpfs file and\n"
"                        let `ublk-mem recover ID` take over\n"
"      --store PATH      the recoverable store (default /dev/shm/ublk-mem-ID)\n"
"  -v, --trace           print every control command and request on stderr\n"
"  -h, --help            this text\n"
"  -V, --version         print the version\n";

struct options {
	struct ublk_config cfg;
	struct mem_store_config store;
	bool reserve_set;
};

static void __attribute__((noreturn, format(printf, 1, 2)))
usage_error(const char *fmt, ...)
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
static unsigned long parse_num(const char *s, const char *what,
			       unsigned long min, unsigned long max)
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

static int parse_size(const char *s, uint64_t *out)
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
	usage_error("invalid copy mode '%s': expected get_data, user_copy or bounce", s);
}

static unsigned parse_poll(const char *s)
{
	unsigned us = s ? (unsigned)parse_num(s, "poll time (us)", 0, 1000000) :
		      POLL_US_DEFAULT;

	return us ? us : UBLK_POLL_OFF;
}

/* A --store path must name a file to create, in a directory that exists. */
static void check_store_arg(const char *path)
{
	char dir[PATH_MAX];
	struct stat st;
	char *slash;

	if (!*path)
		usage_error("--store needs the path of a file");
	if (strchr(path, '\n'))
		usage_error("--store: the path may not hold a newline");
	if (strlen(path) >= sizeof(dir))
		usage_error("--store: the path is too long");
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		usage_error("--store %s is a directory: give the path of a file to create in it",
			    path);
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
			usage_error("--store %s: there is no directory %s", path, dir);
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

/* Parse SIZE and options; exits with status 2 on any usage error. */
static void parse_args(int argc, char **argv, struct options *o)
{
	enum {
		OPT_PREALLOC = 256, OPT_SMALL_PAGES, OPT_RESERVE, OPT_COPY,
		OPT_POLL, OPT_RECOVERABLE, OPT_STORE,
	};
	static const struct option longopts[] = {
		{ "queues", required_argument, NULL, 'q' },
		{ "depth", required_argument, NULL, 'd' },
		{ "block-size", required_argument, NULL, 'b' },
		{ "id", required_argument, NULL, 'n' },
		{ "prealloc", no_argument, NULL, OPT_PREALLOC },
		{ "small-pages", no_argument, NULL, OPT_SMALL_PAGES },
		{ "reserve", required_argument, NULL, OPT_RESERVE },
		{ "copy-mode", required_argument, NULL, OPT_COPY },
		{ "poll", optional_argument, NULL, OPT_POLL },
		{ "recoverable", no_argument, NULL, OPT_RECOVERABLE },
		{ "store", required_argument, NULL, OPT_STORE },
		{ "trace", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *size_arg = NULL;
	int c;

	memset(o, 0, sizeof(*o));
	o->cfg.nr_queues = 1;
	o->cfg.depth = 128;
	o->cfg.block_size = 512;
	o->cfg.dev_id = -1;
	o->cfg.copy_mode = UBLK_COPY_GET_DATA;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":q:d:b:n:vhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'q':
			o->cfg.nr_queues = (unsigned)parse_num(optarg, "queue count", 1,
							      (unsigned long)cpu_count());
			break;
		case 'd':
			o->cfg.depth = (unsigned)parse_num(optarg, "queue depth", 1,
							  UBLK_MAX_QUEUE_DEPTH);
			break;
		case 'b':
			o->cfg.block_size = (unsigned)parse_num(optarg, "block size", 512, 4096);
			if (o->cfg.block_size & (o->cfg.block_size - 1))
				usage_error("invalid block size '%s': expected 512, 1024, 2048 or 4096",
					    optarg);
			break;
		case 'n':
			o->cfg.dev_id = (int)parse_num(optarg, "device id", 0, MAX_ID);
			break;
		case OPT_PREALLOC:
			o->store.prealloc = true;
			break;
		case OPT_SMALL_PAGES:
			o->store.small_pages = true;
			break;
		case OPT_RESERVE:
			if (parse_size(optarg, &o->store.reserve) < 0)
				usage_error("invalid --reserve '%s': expected a size such as 256M, or 0",
					    optarg);
			o->reserve_set = true;
			break;
		case OPT_COPY:
			o->cfg.copy_mode = parse_copy_mode(optarg);
			break;
		case OPT_POLL:
			o->cfg.poll_us = parse_poll(optarg);
			break;
		case OPT_RECOVERABLE:
			o->cfg.recoverable = true;
			break;
		case OPT_STORE:
			check_store_arg(optarg);
			o->store.path = optarg;
			break;
		case 'v':
			o->cfg.trace = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		case 'V':
			puts("ublk-mem " VERSION);
			exit(0);
		case ':':
			usage_error("option '%s' needs a value", argv[optind - 1]);
		default:
			unknown_option(argv);
		}
	}
	if (optind < argc)
		size_arg = argv[optind++];
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
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
	if (o->cfg.size > mem_total_bytes())
		usage_error("size %s is larger than this machine's RAM + swap (%llu MiB)",
			    size_arg, (unsigned long long)(mem_total_bytes() >> 20));
	if (o->store.path && !o->cfg.recoverable)
		usage_error("--store goes with --recoverable");
	if (o->store.small_pages && o->cfg.recoverable)
		usage_error("--small-pages does not apply to --recoverable: the page size of its store is its tmpfs's");
	o->store.size = o->cfg.size;
	if (!o->reserve_set)
		o->store.reserve = mem_default_reserve();
}

/* ---- the process ---- */

/*
 * Make fds 0, 1 and 2 valid.  Started with one of them closed, the first
 * file we open would take its number, and printing the device path would
 * write into, say, /dev/ublk-control.
 */
static void hold_std_fds(void)
{
	for (int fd = 0; fd <= 2; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
			exit(1);
}

/*
 * Signals, for the whole process (ublk.c says what each one does):
 * SIGPIPE is ignored, so a closed stdout (`ublk-mem 64M | true`) makes
 * printing the path fail instead of killing the server; SIGTTOU and
 * SIGTTIN too, so a background server writing to a terminal is not
 * stopped.  The rest are blocked now, before any thread exists.
 */
static void set_signals(void)
{
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTTOU, SIG_IGN);
	signal(SIGTTIN, SIG_IGN);
	ublk_block_signals();
}

/* Make the OOM killer pick this server last (see OOM_SCORE_ADJ). */
static void protect_from_oom_killer(void)
{
	char buf[16] = "";
	int fd = open("/proc/self/oom_score_adj", O_RDWR | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n > 0 && atoi(buf) == 0 &&
	    dprintf(fd, "%d\n", OOM_SCORE_ADJ) < 0)
		ublk_err("warning: cannot set oom_score_adj to %d: %s (the OOM killer may pick this server and its data)",
			 OOM_SCORE_ADJ, strerror(errno));
	close(fd);
}

static void print_path(int dev_id, void *arg)
{
	(void)arg;
	/* A closed stdout must not stop the server: the error is ignored. */
	printf("/dev/ublkb%d\n", dev_id);
	fflush(stdout);
}

/* ---- records: which store belongs to which device ---- */

/*
 * A recoverable device's store is recorded in RECORD_DIR/ID as its path
 * and its identity (device and inode numbers).  `recover` finds the store
 * there, and only a store recorded so is ever removed: never a file that
 * another program (or user) put at the same path.
 */
struct record {
	char path[PATH_MAX];
	unsigned long long dev, ino;
};

/* The record directory, made if needed, and refused if others can write it. */
static int record_dir(void)
{
	struct stat st;

	if (mkdir(RECORD_DIR, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (lstat(RECORD_DIR, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022)) {
		ublk_err("warning: %s is not a directory only we can write; store records are not kept",
			 RECORD_DIR);
		return -EPERM;
	}
	return 0;
}

static void record_path(char *buf, size_t len, int dev_id)
{
	snprintf(buf, len, RECORD_DIR "/%d", dev_id);
}

static void record_write(int dev_id, const char *store, const struct mem_store *s)
{
	char path[64], tmp[80];
	FILE *f;
	int fd;

	if (record_dir() < 0)
		return;
	record_path(path, sizeof(path), dev_id);
	snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		if (fd >= 0)
			close(fd);
		ublk_err("warning: %s: %s (ublk-mem del will leave the store in place)",
			 tmp, strerror(errno));
		return;
	}
	fprintf(f, "%s\n%llu %llu\n", store, (unsigned long long)s->st_dev,
		(unsigned long long)s->st_ino);
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		ublk_err("warning: %s: %s", path, strerror(errno));
		unlink(tmp);
	}
}

static bool record_read(int dev_id, struct record *r)
{
	char path[64];
	FILE *f;
	bool ok;
	int fd;

	record_path(path, sizeof(path), dev_id);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	f = fd >= 0 ? fdopen(fd, "r") : NULL;
	if (!f) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	ok = fgets(r->path, sizeof(r->path), f) &&
	     fscanf(f, "%llu %llu", &r->dev, &r->ino) == 2;
	fclose(f);
	r->path[strcspn(r->path, "\n")] = '\0';
	return ok && r->path[0];
}

static void record_remove(int dev_id)
{
	char path[64];

	record_path(path, sizeof(path), dev_id);
	unlink(path);
}

/* Remove the store at @path if it is still the file recorded in @r. */
static bool store_remove(const struct record *r)
{
	struct stat st;

	if (lstat(r->path, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (unsigned long long)st.st_dev != r->dev ||
	    (unsigned long long)st.st_ino != r->ino)
		return false;
	return unlink(r->path) == 0;
}

static void default_store_path(char *buf, size_t len, int dev_id)
{
	snprintf(buf, len, DEFAULT_STORE, dev_id);
}

/* ---- verbs ---- */

/* A store opened for a device: what it is and whether it must go. */
struct served_store {
	struct mem_store mem;
	struct record rec;
	bool file;
};

/* After serving: unless the device was kept, its store file goes too. */
static void store_done(struct served_store *st, int dev_id, bool kept)
{
	mem_store_close(&st->mem);
	if (!st->file || kept)
		return;
	store_remove(&st->rec);
	record_remove(dev_id);
}

/*
 * Serve @dev from @st until stopped, then remove the device and, unless
 * the device was kept for recovery, its store.  Returns 0 or -errno.
 */
static int serve(struct ublk_dev *dev, struct served_store *st)
{
	int id = ublk_dev_id(dev);
	int ret = ublk_run(dev, &st->mem, print_path, NULL);
	bool kept = ublk_kept(dev);

	ublk_remove(dev);
	store_done(st, id, kept);
	return ret;
}

/* Open the store of a new device @dev_id (a file for --recoverable). */
static int open_new_store(struct options *o, int dev_id, struct served_store *st)
{
	int ret;

	memset(st, 0, sizeof(*st));
	if (o->cfg.recoverable) {
		if (o->store.path)
			snprintf(st->rec.path, sizeof(st->rec.path), "%s", o->store.path);
		else
			default_store_path(st->rec.path, sizeof(st->rec.path), dev_id);
		o->store.path = st->rec.path;
		o->store.create = true;
		st->file = true;
	}
	ret = mem_store_open(&st->mem, &o->store);
	if (ret < 0)
		return ret;
	if (st->file) {
		st->rec.dev = (unsigned long long)st->mem.st_dev;
		st->rec.ino = (unsigned long long)st->mem.st_ino;
		record_write(dev_id, st->rec.path, &st->mem);
	}
	return 0;
}

/* `ublk-mem SIZE ...`: create, serve, remove. */
static int cmd_serve(int argc, char **argv)
{
	struct served_store st;
	struct ublk_ctrl *ctrl;
	struct ublk_dev *dev;
	struct options o;
	int ret;

	parse_args(argc, argv, &o);
	if (ublk_ctrl_open(&ctrl, o.cfg.trace) < 0)
		return 1;
	protect_from_oom_killer();
	/* The kernel picks the id; a recoverable store is named after it. */
	ret = ublk_add(ctrl, &o.cfg, &mem_backend_ops, &dev);
	if (ret == 0) {
		ret = open_new_store(&o, ublk_dev_id(dev), &st);
		if (ret == 0)
			ret = serve(dev, &st);
		else
			ublk_remove(dev);
	}
	ublk_ctrl_close(ctrl);
	return ret < 0 ? 1 : 0;
}

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

/* `ublk-mem list`: one line per device. */
static int cmd_list(void)
{
	struct ublk_ctrl *ctrl;
	int ids[1024], held[64], n, n_held;

	if (ublk_ctrl_open(&ctrl, false) < 0)
		return 1;
	n = ublk_list_ids(ids, 1024);
	printf("%-4s %-15s %-8s %-8s %-6s %-5s %s\n", "ID", "STATE", "PID",
	       "SIZE", "QUEUES", "DEPTH", "FLAGS");
	for (int i = 0; i < n; i++) {
		struct ublksrv_ctrl_dev_info info;
		struct ublk_params params;
		char size[32] = "-";

		if (ublk_get_info(ctrl, ids[i], &info, &params) < 0)
			continue;	/* went away meanwhile */
		if (params.types & UBLK_PARAM_TYPE_BASIC)
			format_size(size, sizeof(size), params.basic.dev_sectors << 9);
		printf("%-4d %-15s %-8d %-8s %-6u %-5u %s%s%s%s\n", ids[i],
		       state_name(&info), info.ublksrv_pid, size,
		       info.nr_hw_queues, info.queue_depth,
		       (info.flags & UBLK_F_USER_COPY) ? "user_copy" :
		       (info.flags & UBLK_F_NEED_GET_DATA) ? "get_data" : "bounce",
		       (info.flags & UBLK_F_USER_RECOVERY) ? ",recoverable" : "",
		       (info.flags & UBLK_F_USER_RECOVERY_REISSUE) ? ",reissue" : "",
		       (info.flags & UBLK_F_UNPRIVILEGED_DEV) ? ",unprivileged" : "");
	}
	n_held = held_ids(ids, n > 0 ? n : 0, held, 64);
	for (int i = 0; i < n_held; i++)
		printf("%-4d %-15s %-8s %-8s %-6s %-5s %s\n", held[i], "removed", "-",
		       "-", "-", "-", "still mounted: its id is free after umount");
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

	default_store_path(def, sizeof(def), id);
	if (!record_read(id, &r)) {
		if (access(def, F_OK) == 0)
			ublk_err("left %s in place: there is no record that ublk-mem made it", def);
		return;
	}
	if (strcmp(r.path, def))
		ublk_err("left the store %s in place: a --store path is the user's to remove",
			 r.path);
	else if (store_remove(&r))
		ublk_err("removed the store %s, and with it the device's data", r.path);
	else if (access(r.path, F_OK) == 0)
		ublk_err("left %s in place: it is not the file device %d was created with",
			 r.path, id);
	record_remove(id);
}

/* `ublk-mem del ID`: remove a device, and its store if it had one. */
static int cmd_del(int argc, char **argv)
{
	struct ublksrv_ctrl_dev_info info;
	struct ublk_ctrl *ctrl;
	int id, ret;

	if (argc != 3)
		usage_error("usage: ublk-mem del ID");
	id = (int)parse_num(argv[2], "device id", 0, MAX_ID);
	if (ublk_ctrl_open(&ctrl, false) < 0)
		return 1;
	ret = ublk_get_info(ctrl, id, &info, NULL);
	if (ret < 0) {
		ublk_err("device %d: %s", id, ret == -ENODEV ? "no such ublk device" : strerror(-ret));
		ublk_ctrl_close(ctrl);
		return 1;
	}
	ret = ublk_delete(ctrl, id, 10000);
	if (ret == -EBUSY)
		ublk_err("device %d is removed, but the kernel keeps its id until its last user lets go (a file system still mounted on /dev/ublkb%d?)",
			 id, id);
	else if (ret < 0)
		ublk_err("deleting device %d: %s", id, strerror(-ret));
	if (ret == 0 || ret == -EBUSY)
		if (info.flags & UBLK_F_USER_RECOVERY)
			del_store(id);
	ublk_ctrl_close(ctrl);
	return ret < 0 && ret != -EBUSY ? 1 : 0;
}

/* The configuration a device was created with, read back from the kernel. */
static void config_of(const struct ublksrv_ctrl_dev_info *info,
		      const struct ublk_params *params, struct ublk_config *cfg)
{
	cfg->size = params->basic.dev_sectors << 9;
	cfg->block_size = 1U << params->basic.logical_bs_shift;
	cfg->nr_queues = info->nr_hw_queues;
	cfg->depth = info->queue_depth;
	cfg->dev_id = (int)info->dev_id;
	cfg->copy_mode = (info->flags & UBLK_F_USER_COPY) ? UBLK_COPY_USER :
			 (info->flags & UBLK_F_NEED_GET_DATA) ? UBLK_COPY_GET_DATA :
			 UBLK_COPY_BOUNCE;
	cfg->recoverable = true;
}

/*
 * `recover --rebuild`: the kernel will not recover device @id, so delete
 * it and create it again, with the same id and settings, from its store.
 * The data survives; programs that held the old /dev/ublkbN get errors.
 */
static int rebuild(struct ublk_ctrl *ctrl, struct ublk_config *cfg,
		   struct served_store *st)
{
	struct ublk_dev *dev;
	int id = cfg->dev_id, ret;

	ret = ublk_delete(ctrl, id, 10000);
	if (ret < 0 && ret != -ENODEV) {
		ublk_err("device %d: cannot delete it to rebuild it: %s%s", id,
			 strerror(-ret), ret == -EBUSY ?
			 " (unmount the file system on it first)" : "");
		return ret;
	}
	ret = ublk_add(ctrl, cfg, &mem_backend_ops, &dev);
	if (ret < 0)
		return ret;
	ublk_err("device %d rebuilt from its store %s: the data is intact, but programs that had /dev/ublkb%d open got I/O errors",
		 id, st->rec.path, id);
	return serve(dev, st);
}

/* `ublk-mem recover ID [--store PATH] [--rebuild] [-v]`. */
static int cmd_recover(int argc, char **argv)
{
	struct ublksrv_ctrl_dev_info info;
	struct ublk_params params;
	struct mem_store_config scfg = { 0 };
	struct ublk_config cfg = { 0 };
	struct served_store st = { 0 };
	struct ublk_ctrl *ctrl;
	struct ublk_dev *dev;
	const char *store_arg = NULL;
	bool rebuild_asked = false, recorded;
	int id = -1, ret;

	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--store") && i + 1 < argc)
			store_arg = argv[++i];
		else if (!strcmp(argv[i], "--rebuild"))
			rebuild_asked = true;
		else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--trace"))
			cfg.trace = true;
		else if (id < 0 && argv[i][0] != '-')
			id = (int)parse_num(argv[i], "device id", 0, MAX_ID);
		else
			usage_error("unexpected argument '%s' (usage: ublk-mem recover ID [--store PATH] [--rebuild] [-v])",
				    argv[i]);
	}
	if (id < 0)
		usage_error("usage: ublk-mem recover ID [--store PATH] [--rebuild] [-v]");
	if (ublk_ctrl_open(&ctrl, cfg.trace) < 0)
		return 1;
	ret = ublk_get_info(ctrl, id, &info, &params);
	if (ret < 0) {
		ublk_err("device %d: %s", id, ret == -ENODEV ? "no such ublk device" : strerror(-ret));
		goto err;
	}
	if (!(info.flags & UBLK_F_USER_RECOVERY)) {
		ublk_err("device %d was not created with --recoverable; it cannot be recovered (remove it: ublk-mem del %d)",
			 id, id);
		goto err;
	}
	/* The store: as given, else as recorded, else where it is by default. */
	recorded = record_read(id, &st.rec);
	if (store_arg)
		snprintf(st.rec.path, sizeof(st.rec.path), "%s", store_arg);
	else if (!recorded)
		default_store_path(st.rec.path, sizeof(st.rec.path), id);
	st.file = true;
	scfg.size = params.basic.dev_sectors << 9;
	scfg.path = st.rec.path;
	scfg.reserve = mem_default_reserve();
	if (mem_store_open(&st.mem, &scfg) < 0)
		goto err;
	if (recorded && ((unsigned long long)st.mem.st_dev != st.rec.dev ||
			 (unsigned long long)st.mem.st_ino != st.rec.ino)) {
		ublk_err("%s is not the store device %d was created with (the file was replaced); refusing it",
			 st.rec.path, id);
		mem_store_close(&st.mem);
		goto err;
	}
	st.rec.dev = (unsigned long long)st.mem.st_dev;
	st.rec.ino = (unsigned long long)st.mem.st_ino;
	if (!recorded || store_arg)
		record_write(id, st.rec.path, &st.mem);
	protect_from_oom_killer();

	config_of(&info, &params, &cfg);
	if (ublk_attach(ctrl, id, &cfg, &mem_backend_ops, &dev) < 0) {
		mem_store_close(&st.mem);
		goto err;
	}
	ret = serve(dev, &st);
	if (ret == -ENOTRECOVERABLE && rebuild_asked) {
		ret = mem_store_open(&st.mem, &scfg);
		if (ret == 0)
			ret = rebuild(ctrl, &cfg, &st);
	} else if (ret == -ENOTRECOVERABLE) {
		ublk_err("its data is safe in %s. `ublk-mem recover %d --rebuild` creates the device again from it (programs holding /dev/ublkb%d get I/O errors); `ublk-mem del %d` would delete the data",
			 st.rec.path, id, id, id);
	}
	ublk_ctrl_close(ctrl);
	return ret < 0 ? 1 : 0;
err:
	ublk_ctrl_close(ctrl);
	return 1;
}

/* What ublk-mem does with each feature flag (for `ublk-mem features`). */
static const char *feature_use(uint64_t flag)
{
	switch (flag) {
	case UBLK_F_NEED_GET_DATA: return "used: --copy-mode get_data (the default)";
	case UBLK_F_USER_COPY: return "used: --copy-mode user_copy";
	case UBLK_F_USER_RECOVERY: return "used: --recoverable";
	case UBLK_F_USER_RECOVERY_REISSUE: return "used: --recoverable (requests in flight are re-issued)";
	case UBLK_F_CMD_IOCTL_ENCODE: return "used: required";
	case UBLK_F_SUPPORT_ZERO_COPY: return "not used: a RAM disk copies once already";
	case UBLK_F_UNPRIVILEGED_DEV: return "not used: ublk-mem runs as root";
	case UBLK_F_ZONED: return "not used: a RAM disk is not zoned";
	default: return "not used";
	}
}

/* `ublk-mem features`: the driver's GET_FEATURES answer, flag by flag. */
static int cmd_features(int argc, char **argv)
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
	for (unsigned bit = 0; bit < 64; bit++) {
		const char *name = ublk_feature_name(bit);
		uint64_t flag = 1ULL << bit;

		if (name)
			printf("%-24s %-3s since %-5s %s\n", name, (f & flag) ? "yes" : "no",
			       ublk_feature_since(bit), feature_use(flag));
		else if (f & flag)
			printf("bit-%-20u %-3s %s\n", bit, "yes", "unknown to this ublk-mem");
	}
	ublk_ctrl_close(ctrl);
	return 0;
}

int main(int argc, char **argv)
{
	hold_std_fds();
	set_signals();
	if (argc >= 2 && !strcmp(argv[1], "list")) {
		if (argc != 2)
			usage_error("usage: ublk-mem list");
		return cmd_list();
	}
	if (argc >= 2 && !strcmp(argv[1], "del"))
		return cmd_del(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "recover"))
		return cmd_recover(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "features"))
		return cmd_features(argc, argv);
	return cmd_serve(argc, argv);
}
