/*
 * mem_backend.c - the RAM store, and ublk-mem's command line.
 *
 * Read uring.c and ublk.c first.  This file is what makes the device a RAM
 * disk: a struct ublk_backend_ops whose callbacks copy to and from one big
 * mapping.  Its `direct` callback hands out addresses inside that mapping,
 * which lets the kernel copy request data straight into RAM (see the copy
 * modes in ublk.h).
 *
 * The second half is main(): argument parsing and the `list`, `del` and
 * `recover` subcommands.
 */
#define _GNU_SOURCE
#include "mem_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define VERSION		"0.1.0"
#define EXIT_USAGE	2
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
#define HUGE_PAGE	(2ULL << 20)	/* x86-64's transparent huge page */

/* ---- the store ---- */

uint64_t mem_total_bytes(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	unsigned long long kb, total = 0;
	char line[128];

	if (!f)
		return UINT64_MAX;	/* unknown: do not refuse */
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemTotal: %llu kB", &kb) == 1 ||
		    sscanf(line, "SwapTotal: %llu kB", &kb) == 1)
			total += kb;
	fclose(f);
	return total ? (uint64_t)total * 1024 : UINT64_MAX;
}

int parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	unsigned shift = 0;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*p - '0');
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

/* Map a file of @size bytes on tmpfs (the recoverable store). */
static int map_file(struct mem_store *s, const char *path, unsigned flags)
{
	bool create = flags & MEM_STORE_CREATE;
	struct stat st;
	void *p;
	int err;

	s->fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0), 0600);
	if (s->fd < 0) {
		err = errno;
		ublk_err("%s: %s%s", path, strerror(err),
			 err == EEXIST ? " (the store of another device? remove it or pick --store)" :
			 err == ENOENT && !create ? " (the store is gone: the data cannot be recovered; ublk-mem del removes the device)" : "");
		return -err;
	}
	if (create) {
		if (ftruncate(s->fd, (off_t)s->size) < 0)
			goto err;
	} else {
		if (fstat(s->fd, &st) < 0)
			goto err;
		if ((uint64_t)st.st_size != s->size) {
			ublk_err("%s: the store is %lld bytes but the device is %llu bytes",
				 path, (long long)st.st_size, (unsigned long long)s->size);
			close(s->fd);
			s->fd = -1;
			return -EINVAL;
		}
	}
	p = mmap(NULL, s->size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
	if (p == MAP_FAILED)
		goto err;
	s->base = p;
	return 0;
err:
	err = errno;
	ublk_err("%s: %s", path, strerror(err));
	close(s->fd);
	s->fd = -1;
	if (create)
		unlink(path);
	return -err;
}

/* Fault in and pin every page now: no allocation while serving. */
static int lock_all(struct mem_store *s)
{
	if (mlock(s->base, s->size) < 0) {
		int err = errno;

		ublk_err("cannot allocate and lock %llu bytes of RAM: %s",
			 (unsigned long long)s->size, strerror(err));
		return -err;
	}
	s->locked = true;
	return 0;
}

/*
 * Reserve the anonymous store.  MAP_NORESERVE skips the overcommit charge,
 * and memory is allocated on first write.  With @huge the mapping starts
 * on a 2 MiB boundary and is advised MADV_HUGEPAGE: filling 64 MiB then
 * takes 32 page faults instead of 16384, and the kernel's copy into the
 * store walks one page-table level less.  Under TCG a first write still
 * ran at an eighth of the speed of a rewrite with either page size (90-112
 * MiB/s with huge pages, 82-107 without, 680-910 rewriting): zeroing the
 * new memory is what costs there, and --prealloc pays it up front.  The
 * price of huge pages is granularity: one 4 KiB write holds 2 MiB of RAM
 * (never more than the device's size in all); --small-pages says
 * MADV_NOHUGEPAGE instead.
 */
static int map_anonymous(struct mem_store *s, bool huge)
{
	const size_t align = huge ? HUGE_PAGE : s->page;
	const size_t len = (s->size + s->page - 1) / s->page * s->page;
	char *p, *start, *end;

	/* Over-reserve by the alignment, then trim both ends. */
	p = mmap(NULL, len + align, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		int err = errno;

		ublk_err("cannot reserve %llu bytes of address space: %s",
			 (unsigned long long)s->size, strerror(err));
		return -err;
	}
	start = (char *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
	end = start + len;
	if (start > p)
		munmap(p, (size_t)(start - p));
	munmap(end, (size_t)(p + len + align - end));	/* never empty: start < p + align */
	s->base = start;
	/*
	 * Say which either way: a kernel whose THP mode is "always" would
	 * give huge pages unasked.  EINVAL means a kernel without THP.
	 */
	s->huge = madvise(s->base, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) == 0 &&
		  huge;
	return 0;
}

int mem_store_open(struct mem_store *s, uint64_t size, unsigned flags,
		   const char *path)
{
	int ret;

	memset(s, 0, sizeof(*s));
	s->size = size;
	s->fd = -1;
	s->page = (unsigned)sysconf(_SC_PAGESIZE);
	if (path) {
		ret = map_file(s, path, flags);
	} else {
		ret = map_anonymous(s, !(flags & MEM_STORE_SMALL_PAGES));
	}
	if (ret == 0 && (flags & MEM_STORE_PREALLOC)) {
		ret = lock_all(s);
		if (ret < 0) {
			mem_store_close(s);
			if (path && (flags & MEM_STORE_CREATE))
				unlink(path);
		}
	}
	return ret;
}

void mem_store_close(struct mem_store *s)
{
	if (s->base)
		munmap(s->base, s->size);
	if (s->fd >= 0)
		close(s->fd);
	s->base = NULL;
	s->fd = -1;
}

int mem_store_read(void *store, void *buf, uint64_t off, uint32_t len)
{
	const struct mem_store *s = store;

	if (off > s->size || len > s->size - off)
		return -EIO;
	memcpy(buf, s->base + off, len);
	return 0;
}

int mem_store_write(void *store, const void *buf, uint64_t off, uint32_t len)
{
	struct mem_store *s = store;

	if (off > s->size || len > s->size - off)
		return -EIO;
	memcpy(s->base + off, buf, len);
	return 0;
}

/* Give whole pages [off, off + len) back; they then read as zeros. */
static int release_pages(struct mem_store *s, uint64_t off, uint64_t len)
{
	if (s->locked) {
		/* Locked memory stays allocated: just clear it. */
		memset(s->base + off, 0, len);
		return 0;
	}
	if (s->fd >= 0)
		return fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				 (off_t)off, (off_t)len) < 0 ? -errno : 0;
	return madvise(s->base + off, len, MADV_DONTNEED) < 0 ? -errno : 0;
}

int mem_store_zero(void *store, uint64_t off, uint64_t len)
{
	struct mem_store *s = store;
	uint64_t page = s->page;
	uint64_t first = (off + page - 1) / page * page;	/* page-aligned */
	uint64_t last = (off + len) / page * page;

	if (off > s->size || len > s->size - off)
		return -EIO;
	if (first >= last) {	/* no whole page inside */
		memset(s->base + off, 0, len);
		return 0;
	}
	memset(s->base + off, 0, first - off);
	memset(s->base + last, 0, off + len - last);
	return release_pages(s, first, last - first);
}

static void *mem_direct(void *store, uint64_t off, uint32_t len, bool for_write)
{
	const struct mem_store *s = store;

	(void)for_write;
	if (off > s->size || len > s->size - off)
		return NULL;
	return s->base + off;
}

const struct ublk_backend_ops mem_backend_ops = {
	.name = "mem",
	.read = mem_store_read,
	.write = mem_store_write,
	.discard = mem_store_zero,	/* forgotten data reads as zeros */
	.write_zeroes = mem_store_zero,
	.direct = mem_direct,
};

/* ---- the command line ---- */

static const char usage_text[] =
"usage: ublk-mem SIZE [options]     create a RAM block device and serve it\n"
"       ublk-mem list               list ublk devices\n"
"       ublk-mem del ID             remove a device (e.g. one whose server died)\n"
"       ublk-mem recover ID         take over a --recoverable device whose server died\n"
"\n"
"SIZE is bytes, with an optional K, M, G or T suffix (powers of 1024): 64M, 1G.\n"
"The device path (/dev/ublkbN) is printed on stdout once it is live;\n"
"SIGINT or SIGTERM removes the device and exits.\n"
"\n"
"options:\n"
"  -q, --queues N        hardware queues, one thread each (default 1, max CPUs)\n"
"  -d, --depth N         queue depth, 1..4096 (default 128)\n"
"  -b, --block-size N    logical block size: 512, 1024, 2048, 4096 (default 512)\n"
"  -n, --id N            device id (default: first free)\n"
"      --prealloc        allocate and lock all memory up front\n"
"      --small-pages     allocate 4 KiB at a time, not in 2 MiB huge pages\n"
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
	bool prealloc;
	bool small_pages;
	const char *store_path;
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

static long cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? n : 1;
}

/* Parse SIZE and options; exits with status 2 on any usage error. */
static void parse_args(int argc, char **argv, struct options *o)
{
	enum { OPT_PREALLOC = 256, OPT_SMALL_PAGES, OPT_COPY, OPT_POLL, OPT_RECOVERABLE, OPT_STORE };
	static const struct option longopts[] = {
		{ "queues", required_argument, NULL, 'q' },
		{ "depth", required_argument, NULL, 'd' },
		{ "block-size", required_argument, NULL, 'b' },
		{ "id", required_argument, NULL, 'n' },
		{ "prealloc", no_argument, NULL, OPT_PREALLOC },
		{ "small-pages", no_argument, NULL, OPT_SMALL_PAGES },
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
			o->cfg.dev_id = (int)parse_num(optarg, "device id", 0, (1UL << 20) - 1);
			break;
		case OPT_PREALLOC:
			o->prealloc = true;
			break;
		case OPT_SMALL_PAGES:
			o->small_pages = true;
			break;
		case OPT_COPY:
			o->cfg.copy_mode = parse_copy_mode(optarg);
			break;
		case OPT_POLL:
			o->cfg.poll_us = optarg ? (unsigned)parse_num(optarg,
					"poll time (us)", 0, 1000000) : POLL_US_DEFAULT;
			if (o->cfg.poll_us == 0)
				o->cfg.poll_us = UBLK_POLL_OFF;
			break;
		case OPT_RECOVERABLE:
			o->cfg.recoverable = true;
			break;
		case OPT_STORE:
			o->store_path = optarg;
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
			usage_error("unknown option '%s'", argv[optind - 1]);
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
	if (o->store_path && !o->cfg.recoverable)
		usage_error("--store goes with --recoverable");
}

static void print_path(int dev_id, void *arg)
{
	(void)arg;
	printf("/dev/ublkb%d\n", dev_id);
	fflush(stdout);
}

static void default_store_path(char *buf, size_t len, int dev_id)
{
	snprintf(buf, len, "/dev/shm/ublk-mem-%d", dev_id);
}

/* `ublk-mem SIZE ...`: create, serve, remove. */
static int cmd_serve(int argc, char **argv)
{
	struct options o;
	struct ublk_ctrl *ctrl;
	struct mem_store store;
	char path[256];
	int ret;

	parse_args(argc, argv, &o);
	if (ublk_ctrl_open(&ctrl, o.cfg.trace) < 0)
		return 1;
	if (o.cfg.recoverable && o.cfg.dev_id < 0 && !o.store_path) {
		/* The default store is named after the id: fix the id now. */
		int ids[1024], n = ublk_list_ids(ids, 1024);

		o.cfg.dev_id = 0;
		for (int i = 0; i < n && ids[i] == o.cfg.dev_id; i++)
			o.cfg.dev_id++;
	}
	if (o.cfg.recoverable && !o.store_path) {
		default_store_path(path, sizeof(path), o.cfg.dev_id);
		o.store_path = path;
	}
	ret = mem_store_open(&store, o.cfg.size,
			     (o.prealloc ? MEM_STORE_PREALLOC : 0) |
			     (o.small_pages ? MEM_STORE_SMALL_PAGES : 0) | MEM_STORE_CREATE,
			     o.cfg.recoverable ? o.store_path : NULL);
	if (ret < 0) {
		ublk_ctrl_close(ctrl);
		return 1;
	}
	ret = ublk_serve(ctrl, &o.cfg, &mem_backend_ops, &store, print_path, NULL);
	mem_store_close(&store);
	/* A clean stop ends a recoverable device too: drop its store. */
	if (o.cfg.recoverable)
		unlink(o.store_path);
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

/* `ublk-mem list`: one line per device. */
static int cmd_list(void)
{
	struct ublk_ctrl *ctrl;
	int ids[1024], n;

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
	ublk_ctrl_close(ctrl);
	return n < 0 ? 1 : 0;
}

/* `ublk-mem del ID`: remove a device, and its store if it had one. */
static int cmd_del(int argc, char **argv)
{
	struct ublksrv_ctrl_dev_info info;
	struct ublk_ctrl *ctrl;
	char path[256];
	int id, ret;

	if (argc != 3)
		usage_error("usage: ublk-mem del ID");
	id = (int)parse_num(argv[2], "device id", 0, (1UL << 20) - 1);
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
		ublk_err("device %d is removed; its id is freed when its last user lets go", id);
	else if (ret < 0)
		ublk_err("deleting device %d: %s", id, strerror(-ret));
	if (info.flags & UBLK_F_USER_RECOVERY) {
		default_store_path(path, sizeof(path), id);
		unlink(path);
	}
	ublk_ctrl_close(ctrl);
	return ret < 0 && ret != -EBUSY ? 1 : 0;
}

/* `ublk-mem recover ID [--store PATH] [-v]`: take over a crashed server's device. */
static int cmd_recover(int argc, char **argv)
{
	struct ublksrv_ctrl_dev_info info;
	struct ublk_params params;
	struct ublk_config cfg;
	struct ublk_ctrl *ctrl;
	struct mem_store store;
	const char *store_path = NULL;
	char path[256];
	int id = -1, ret;

	memset(&cfg, 0, sizeof(cfg));
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--store") && i + 1 < argc)
			store_path = argv[++i];
		else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--trace"))
			cfg.trace = true;
		else if (id < 0 && argv[i][0] != '-')
			id = (int)parse_num(argv[i], "device id", 0, (1UL << 20) - 1);
		else
			usage_error("unexpected argument '%s' (usage: ublk-mem recover ID [--store PATH] [-v])",
				    argv[i]);
	}
	if (id < 0)
		usage_error("usage: ublk-mem recover ID [--store PATH] [-v]");
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
	if (!store_path) {
		default_store_path(path, sizeof(path), id);
		store_path = path;
	}
	cfg.size = params.basic.dev_sectors << 9;
	if (mem_store_open(&store, cfg.size, 0, store_path) < 0)
		goto err;
	ret = ublk_recover(ctrl, id, &cfg, &mem_backend_ops, &store, print_path, NULL);
	mem_store_close(&store);
	if (ret == 0)
		unlink(store_path);
	ublk_ctrl_close(ctrl);
	return ret < 0 ? 1 : 0;
err:
	ublk_ctrl_close(ctrl);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "list")) {
		if (argc != 2)
			usage_error("usage: ublk-mem list");
		return cmd_list();
	}
	if (argc >= 2 && !strcmp(argv[1], "del"))
		return cmd_del(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "recover"))
		return cmd_recover(argc, argv);
	return cmd_serve(argc, argv);
}
