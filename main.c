/*
 * main.c - ublk-mem's command line: the verbs (serve, list, del, recover,
 * features), their options, and the rules of the process around them:
 * signals, the OOM killer, and running as a service (daemon mode, pid
 * file, readiness for systemd, errors to syslog after detaching).
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
 * With --daemon the process forks before any of this; the parent waits
 * until the child's device is live (or its start failed) and exits with
 * the outcome, so `ublk-mem -D 64M` in a boot script returns with a
 * usable /dev/ublkbN or a one-line error.
 *
 * The server runs as root and opens files in shared directories, so a
 * recoverable device's store is checked before it is trusted (see
 * mem_backend.c), a record of which store belongs to which device is
 * kept where only root can write (RECORD_DIR), and a pid file is
 * written without following anything planted at its path.
 */
#define _GNU_SOURCE
#include "control.h"
#include "mem_backend.h"
#include "pinned.h"
#include "record.h"
#include "ublk.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
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
/* The recover synopsis, in two parts: --help puts them on two lines. */
#define RECOVER_USAGE_1	"ublk-mem recover ID [--store PATH] [--rebuild] [-D] [--pidfile PATH] [-v]"
#define RECOVER_USAGE_2	"[--poll[=US]] [--queue-threads N] [--reserve SIZE] [--prealloc]"
/* Client limits: a resize (a --prealloc store locks its new memory), a restart. */
#define RESIZE_TIMEOUT_MS	300000
#define HANDOVER_LINE_MS	60000	/* the old server's queues finish */
#define TAKEOVER_MS		120000	/* the new server starts */
#define RECOVER_USAGE	RECOVER_USAGE_1 " " RECOVER_USAGE_2

/* ---- the command line ---- */

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
"\n"
"SIZE is bytes, with an optional K, M, G or T suffix (powers of 1024): 64M, 1G.\n"
"The device path (/dev/ublkbN) is printed on stdout once it is live;\n"
"SIGINT, SIGTERM, SIGHUP or SIGQUIT removes the device and exits; while the\n"
"device is in use (mounted, open) a second signal within 10 s is needed.\n"
"With NOTIFY_SOCKET set (systemd Type=notify) READY=1 is sent once it is live.\n"
"\n"
"options:\n"
"  -q, --queues N        hardware queues, one thread each (default 1, max CPUs)\n"
"  -d, --depth N         queue depth, 1..4096 (default 128)\n"
"      --queue-threads N\n"
"                        threads serving each queue, its tags dealt out among\n"
"                        them (default 1; more needs Linux 6.16)\n"
"  -b, --block-size N    logical block size: 512, 1024, 2048, 4096 (default 512)\n"
"  -n, --id N            device id (default: the first free one)\n"
"      --prealloc        allocate and lock all memory up front\n"
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

/* How the server runs: in the foreground, or detached, and its pid file. */
struct service {
	bool daemon;			/* -D: fork; return once the device is live */
	char pidfile[PATH_MAX];		/* --pidfile, made absolute; "" for none */
};

struct options {
	struct ublk_config cfg;
	struct mem_store_config store;
	bool reserve_set;
	char store_path[PATH_MAX];	/* --store, made absolute */
	struct service svc;
};

/* A store opened for a device: what it is and whether it must go. */
struct served_store {
	struct mem_store mem;
	struct record rec;
	bool file;		/* a file that outlives the process */
	bool fresh;		/* made by this process for a new device */
	bool rebuilt;		/* served by a device made anew (--rebuild) */
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

/* --queue-threads N, for a new device and for recover. */
static unsigned parse_queue_threads(const char *s)
{
	return (unsigned)parse_num(s, "thread count", 1, UBLK_MAX_QUEUE_DEPTH);
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
static uint64_t max_store_size(uint64_t size)
{
	uint64_t total = mem_total_bytes();

	return total == UINT64_MAX || total < size ? size : total;
}

/* Parse SIZE and options; exits with status 2 on any usage error. */
static void parse_args(int argc, char **argv, struct options *o)
{
	enum {
		OPT_PREALLOC = 256, OPT_SMALL_PAGES, OPT_RESERVE, OPT_COPY,
		OPT_POLL, OPT_QUEUE_THREADS, OPT_RECOVERABLE, OPT_STORE, OPT_PIDFILE, OPT_IO_PATH,
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
		{ "io-path", required_argument, NULL, OPT_IO_PATH },
		{ "poll", optional_argument, NULL, OPT_POLL },
		{ "queue-threads", required_argument, NULL, OPT_QUEUE_THREADS },
		{ "recoverable", no_argument, NULL, OPT_RECOVERABLE },
		{ "store", required_argument, NULL, OPT_STORE },
		{ "daemon", no_argument, NULL, 'D' },
		{ "pidfile", required_argument, NULL, OPT_PIDFILE },
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
	while ((c = getopt_long(argc, argv, ":q:d:b:n:DvhV", longopts, NULL)) != -1) {
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
			o->cfg.copy_mode_set = true;
			break;
		case OPT_IO_PATH:
			o->cfg.io_path = parse_io_path(optarg);
			break;
		case OPT_POLL:
			o->cfg.poll_us = parse_poll(optarg);
			break;
		case OPT_QUEUE_THREADS:
			o->cfg.queue_threads = parse_queue_threads(optarg);
			break;
		case OPT_RECOVERABLE:
			o->cfg.recoverable = true;
			break;
		case OPT_STORE:
			check_file_arg("--store", optarg, o->store_path, sizeof(o->store_path));
			o->store.path = o->store_path;
			break;
		case 'D':
			o->svc.daemon = true;
			break;
		case OPT_PIDFILE:
			check_file_arg("--pidfile", optarg, o->svc.pidfile, sizeof(o->svc.pidfile));
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
	if (o->svc.daemon && o->cfg.trace)
		usage_error("--trace prints on stderr, which --daemon leaves: trace in the foreground");
	if (o->cfg.io_path == UBLK_IO_PATH_BATCH && o->cfg.copy_mode_set &&
	    o->cfg.copy_mode == UBLK_COPY_GET_DATA)
		usage_error("--copy-mode get_data needs --io-path per-request: batched commands have no NEED_GET_DATA");
	if (o->cfg.io_path == UBLK_IO_PATH_BATCH && o->cfg.copy_mode_set &&
	    o->cfg.copy_mode == UBLK_COPY_ZERO)
		usage_error("--copy-mode zero_copy needs --io-path per-request");
	if (o->cfg.io_path == UBLK_IO_PATH_BATCH && o->cfg.queue_threads > 1)
		usage_error("--queue-threads needs --io-path per-request: the driver deals batched commands out by queue");
	if (o->cfg.queue_threads > o->cfg.depth)
		usage_error("--queue-threads %u is more than the queue depth %u: a thread would have no tags",
			    o->cfg.queue_threads, o->cfg.depth);
	if (o->cfg.io_path == UBLK_IO_PATH_BATCH && o->cfg.depth < 2)
		usage_error("--io-path batch needs --depth 2 or more: the driver's batched queues refuse depth 1");
	o->store.size = o->cfg.size;
	o->store.file_io = o->cfg.copy_mode == UBLK_COPY_ZERO;
	/* Room to grow (ublk-mem resize): up to what the machine could hold. */
	o->store.max_size = max_store_size(o->cfg.size);
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

/*
 * Did a stop signal come while the server was busy starting (a long
 * --prealloc)?  It is still pending: all signals are taken only once
 * the device starts.
 */
static bool stop_pending(void)
{
	sigset_t pending, stop;

	if (sigpending(&pending) < 0)
		return false;
	ublk_stop_signals(&stop);
	sigandset(&stop, &stop, &pending);
	return !sigisemptyset(&stop);
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

/* ---- running as a service ---- */

/*
 * What init systems and service managers expect of a server, each part
 * asked for separately:
 *
 *   --daemon       fork.  The parent waits on a pipe until the child says
 *                  its device is live (then prints the path and exits 0)
 *                  or the child exits (then exits with its status: the
 *                  child said why on the shared stderr).  The child leaves
 *                  the caller's session (setsid), works from /, keeps no
 *                  inherited file open; once live its stdin and stdout are
 *                  /dev/null and its stderr a pipe to a thread that hands
 *                  every line to syslog(3), or to the kernel log (dmesg)
 *                  while no syslog daemon listens on /dev/log.
 *   --pidfile      the server's pid, written before any device is made,
 *                  as a fresh file renamed over the path: a reader never
 *                  sees half of it, and a link planted at the path is
 *                  replaced, never followed.  Removed when the server
 *                  exits (only SIGKILL or a crash leaves it).
 *   NOTIFY_SOCKET  systemd's readiness protocol, sd_notify(3) without
 *                  libsystemd: a datagram of NAME=VALUE lines to an
 *                  AF_UNIX socket (a leading '@' names the abstract
 *                  namespace).  READY=1 once live, STOPPING=1 on the way
 *                  out.
 */
struct service_state {
	int ready_fd;		/* daemon child: the pipe to the waiting parent */
	bool live;		/* the device went live and has not stopped */
	char dev_path[32];	/* /dev/ublkbN, once live */
	char pidfile[PATH_MAX];	/* the pid file we wrote, or "" */
	dev_t pid_dev;		/* ... and which file that is */
	ino_t pid_ino;
	bool logging;		/* stderr is the pipe to the logger thread */
	int log_fd;		/* the pipe's read end */
	int kmsg_fd;		/* /dev/kmsg, for when no syslog daemon listens */
	pthread_t logger;
};

static struct service_state service = { .ready_fd = -1, .log_fd = -1, .kmsg_fd = -1 };

/* Make @fd refer to /dev/null. */
static void to_dev_null(int fd)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (null >= 0 && null != fd) {
		dup2(null, fd);
		close(null);
	}
}

/*
 * The pid a pid file names, if that process is a ublk-mem server still
 * running (not us); 0 otherwise: no file, a stale one, or someone else's.
 */
static pid_t pidfile_owner(const char *path)
{
	char buf[32] = "", proc[48], comm[32] = "";
	struct stat st;
	ssize_t n = -1;
	char *end;
	long pid;
	int fd;

	/* O_NONBLOCK: a FIFO planted at the path must not hang the start. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	pid = strtol(buf, &end, 10);
	if (end == buf || (*end && *end != '\n') || pid <= 0 || pid > INT_MAX ||
	    pid == getpid())
		return 0;
	snprintf(proc, sizeof(proc), "/proc/%ld/comm", pid);
	fd = open(proc, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, comm, sizeof(comm) - 1);
	close(fd);
	return n > 0 && !strncmp(comm, "ublk-mem", 8) ? (pid_t)pid : 0;
}

/*
 * Write our pid to @path: into a new file beside it (mkostemp creates
 * with O_EXCL, so it never opens what someone planted), then rename(2)
 * over the path, which replaces whatever is there without following it.
 * Returns 0 or -errno after saying why.
 */
static int pidfile_write(const char *path)
{
	char tmp[PATH_MAX + 8];
	struct stat st;
	int fd, ret = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp)) {
		ublk_err("--pidfile %s: the path is too long", path);
		return -ENAMETOOLONG;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		ublk_err("--pidfile %s: cannot create a file in its directory: %s", path,
			 strerror(-ret));
		return ret;
	}
	if (fchmod(fd, 0644) < 0 || dprintf(fd, "%d\n", (int)getpid()) < 0 ||
	    fstat(fd, &st) < 0)
		ret = -errno;
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	if (ret) {
		unlink(tmp);
		ublk_err("--pidfile %s: %s", path, strerror(-ret));
		return ret;
	}
	snprintf(service.pidfile, sizeof(service.pidfile), "%s", path);
	service.pid_dev = st.st_dev;
	service.pid_ino = st.st_ino;
	return 0;
}

/* Remove our pid file, if it is still the file we wrote. */
static void pidfile_remove(void)
{
	struct stat st;

	if (!service.pidfile[0])
		return;
	if (lstat(service.pidfile, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_dev == service.pid_dev && st.st_ino == service.pid_ino)
		unlink(service.pidfile);
	service.pidfile[0] = '\0';
}

/*
 * Tell the service manager something (sd_notify(3)): @fmt makes
 * NAME=VALUE lines, sent as one datagram to $NOTIFY_SOCKET.  Without
 * that variable, nothing is sent.  A failure is reported, not fatal: the
 * device serves either way.
 */
static void __attribute__((format(printf, 1, 2))) notify(const char *fmt, ...)
{
	const char *where = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = where ? strlen(where) : 0;
	char msg[512];
	va_list ap;
	int fd, err = 0;

	if (!n)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (where[0] != '/' && where[0] != '@') {
		ublk_err("warning: NOTIFY_SOCKET=%s is not an AF_UNIX socket path: the service manager is not told how the device is",
			 where);
		return;
	}
	/* A path needs its NUL; an abstract name ('@' -> '\0') does not. */
	if (n + (where[0] == '/') > sizeof(sa.sun_path)) {
		ublk_err("warning: NOTIFY_SOCKET=%s: the path is too long", where);
		return;
	}
	memcpy(sa.sun_path, where, n);
	if (where[0] == '@')
		sa.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
			     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
		err = errno;
	if (fd >= 0)
		close(fd);
	if (err)
		ublk_err("warning: NOTIFY_SOCKET=%s: %s (the service manager is not told how the device is)",
			 where, strerror(err));
}

/* ---- errors after detaching: syslog, or the kernel log ---- */

/* The syslog priority of a line the server wrote on stderr. */
static int log_priority(const char *msg)
{
	if (!strncmp(msg, "warning: ", 9) || strstr(msg, "is running out"))
		return LOG_WARNING;
	if (!strncmp(msg, "ignoring signal", 15) || strstr(msg, "available again"))
		return LOG_NOTICE;
	return LOG_ERR;
}

/* Does a syslog daemon listen on /dev/log (datagram or stream)? */
static bool syslog_listening(void)
{
	static const int types[] = { SOCK_DGRAM, SOCK_STREAM };
	struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "/dev/log" };

	for (unsigned i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		int fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0);
		bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;

		if (fd >= 0)
			close(fd);
		if (ok)
			return true;
	}
	return false;
}

/*
 * Hand one line of stderr on: to syslog (facility daemon, tag ublk-mem),
 * or, on a machine with no syslog daemon, to the kernel log, so that
 * `dmesg` still shows why a server stopped.
 */
static void log_line(const char *line)
{
	const char *msg = strncmp(line, "ublk-mem: ", 10) ? line : line + 10;
	int prio = log_priority(msg), n;
	char rec[1100];

	if (!*msg)
		return;
	if (syslog_listening()) {
		syslog(prio, "%s", msg);
		return;
	}
	if (service.kmsg_fd < 0)
		return;
	/* One write(2) per record; dprintf() would first lseek() and fail. */
	n = snprintf(rec, sizeof(rec), "<%d>ublk-mem[%d]: %s\n", LOG_DAEMON | prio,
		     (int)getpid(), msg);
	if (n > (int)sizeof(rec) - 1)
		n = (int)sizeof(rec) - 1;
	if (write(service.kmsg_fd, rec, (size_t)n) < 0)
		return;	/* nowhere else to say it */
}

/* The logger thread: stderr's pipe, line by line, until it is closed. */
static void *logger_thread(void *arg)
{
	char buf[1024];
	size_t n = 0;

	(void)arg;
	for (;;) {
		ssize_t r = read(service.log_fd, buf + n, sizeof(buf) - 1 - n);
		char *start = buf, *nl;

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		while ((nl = memchr(start, '\n', n - (size_t)(start - buf)))) {
			*nl = '\0';
			log_line(start);
			start = nl + 1;
		}
		n -= (size_t)(start - buf);
		memmove(buf, start, n);
		if (n == sizeof(buf) - 1) {	/* a line too long: in pieces */
			buf[n] = '\0';
			log_line(buf);
			n = 0;
		}
	}
	if (n) {
		buf[n] = '\0';
		log_line(buf);
	}
	return NULL;
}

/*
 * From now on, what the server writes on stderr goes to syslog: stderr
 * becomes a pipe, read by a thread of ours.  (ublk.c and mem_backend.c
 * report on stderr and need not know.)  Returns 0 or -errno.
 */
static int log_start(void)
{
	int fds[2], ret;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	openlog("ublk-mem", LOG_PID, LOG_DAEMON);
	service.kmsg_fd = open("/dev/kmsg", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	service.log_fd = fds[0];
	/* Created from the main thread, it inherits its blocked signals. */
	ret = pthread_create(&service.logger, NULL, logger_thread, NULL);
	if (ret) {
		close(fds[0]);
		close(fds[1]);
		service.log_fd = -1;
		return -ret;
	}
	service.logging = true;
	dup2(fds[1], STDERR_FILENO);
	close(fds[1]);
	return 0;
}

/* Close stderr's pipe and wait until the logger has passed on every line. */
static void log_stop(void)
{
	if (!service.logging)
		return;
	to_dev_null(STDERR_FILENO);
	pthread_join(service.logger, NULL);
	close(service.log_fd);
	if (service.kmsg_fd >= 0)
		close(service.kmsg_fd);
	closelog();
	service.logging = false;
}

/* ---- the daemon ---- */

/* Close every file descriptor from 3 up, but @keep. */
static void close_inherited_fds(int keep)
{
	/* close_range(2) is Linux 5.9; ublk-mem needs 6.5 anyway. */
	if (keep > 3)
		syscall(SYS_close_range, 3U, (unsigned)keep - 1, 0U);
	syscall(SYS_close_range, (unsigned)keep + 1, ~0U, 0U);
}

/*
 * The parent of a daemon: wait until the child writes its device's path
 * on @fd (print it, exit 0) or exits (exit as it did).  A stop signal
 * meanwhile (Ctrl-C while a big --prealloc starts, an init system's
 * timeout) is passed on: the child gives up starting, or stops right
 * after, removes what it made and exits; the parent then exits 1.
 */
static void __attribute__((noreturn)) daemon_parent(pid_t child, int fd)
{
	bool stop_passed = false;
	char line[64];
	size_t n = 0;
	sigset_t set;
	int sfd, status;

	ublk_stop_signals(&set);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);	/* blocked since main() */
	for (;;) {
		struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
		struct signalfd_siginfo si;
		ssize_t r;

		if (poll(p, sfd >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (sfd >= 0 && (p[1].revents & POLLIN) &&
		    read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			kill(child, (int)si.ssi_signo);
			stop_passed = true;
		}
		if (!p[0].revents)
			continue;
		r = read(fd, line + n, sizeof(line) - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;	/* the child exited without a device */
		n += (size_t)r;
		if (stop_passed) {
			n = 0;	/* live, but told to stop: wait for the end */
		} else if (memchr(line, '\n', n) || n == sizeof(line) - 1) {
			/* Live: a closed stdout does not change that. */
			fwrite(line, 1, n, stdout);
			fflush(stdout);
			exit(0);
		}
	}
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status))
		exit(WEXITSTATUS(status));
	if (WIFSIGNALED(status))
		ublk_err("the server (pid %d) was killed by signal %d (%s) before its device was live",
			 (int)child, WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		ublk_err("stopped as asked while starting: no device");
	exit(1);
}

/*
 * --daemon: fork.  The parent waits for the outcome and exits; the child
 * returns, detached from the caller, and tells the parent through
 * service.ready_fd once its device is live (see service_live()).
 * Returns 0 in the child, or -errno when it cannot fork.
 */
static int daemonize(void)
{
	int fds[2], ret;
	pid_t pid;

	fflush(NULL);
	if (pipe2(fds, O_CLOEXEC) < 0)
		goto err;
	pid = fork();
	if (pid < 0) {
		ret = errno;
		close(fds[0]);
		close(fds[1]);
		errno = ret;
		goto err;
	}
	if (pid > 0) {
		close(fds[1]);
		daemon_parent(pid, fds[0]);
	}
	close(fds[0]);
	service.ready_fd = fds[1];
	/*
	 * A session of its own: no terminal, and the caller's Ctrl-C or
	 * hang-up is not ours.  Stdin and stdout go now: a caller reading
	 * `$(ublk-mem -D 64M)` must see the end of it when the parent exits.
	 * Stderr stays until the device is live, to carry a failure's reason.
	 */
	setsid();
	umask(022);
	if (chdir("/") < 0)
		ublk_err("warning: chdir /: %s", strerror(errno));
	to_dev_null(STDIN_FILENO);
	to_dev_null(STDOUT_FILENO);
	close_inherited_fds(service.ready_fd);
	return 0;
err:
	ret = -errno;
	ublk_err("cannot start a daemon: %s", strerror(-ret));
	return ret;
}

/*
 * Before serving: refuse a pid file another running server owns, become
 * a daemon if asked, write the pid file.  Returns 0 (in the daemon, with
 * --daemon) or -errno after saying why.
 */
static int service_start(const struct service *svc)
{
	pid_t owner = svc->pidfile[0] ? pidfile_owner(svc->pidfile) : 0;
	int ret;

	if (owner > 0) {
		ublk_err("--pidfile %s names ublk-mem pid %d, which is running: stop it first, or use another pid file",
			 svc->pidfile, (int)owner);
		return -EEXIST;
	}
	if (svc->daemon) {
		ret = daemonize();
		if (ret < 0)
			return ret;
	}
	return svc->pidfile[0] ? pidfile_write(svc->pidfile) : 0;
}

/*
 * ublk_run()'s on_live: the device is live.  Say so: READY=1 to a
 * service manager, then the path on stdout, or, for a daemon, to the
 * parent waiting for it, once stderr has been handed to syslog.
 */
static void service_live(int dev_id, void *arg)
{
	const struct served_store *st = arg;
	char *path = service.dev_path;
	int ret;

	if (st && st->rebuilt)
		ublk_err("device %d rebuilt from its store %s: the data is intact, but programs that had /dev/ublkb%d open got I/O errors",
			 dev_id, st->rec.path, dev_id);
	snprintf(path, sizeof(service.dev_path), "/dev/ublkb%d", dev_id);
	service.live = true;
	if (service.ready_fd < 0) {
		notify("READY=1\nSTATUS=serving %s\n", path);
		/* A closed stdout must not stop the server: the error is ignored. */
		printf("%s\n", path);
		fflush(stdout);
		return;
	}
	/* MAINPID: the process the manager started is about to exit. */
	notify("READY=1\nSTATUS=serving %s\nMAINPID=%d\n", path, (int)getpid());
	ret = log_start();
	if (ret < 0) {
		ublk_err("warning: cannot pass messages to syslog (%s): the daemon's errors are lost",
			 strerror(-ret));
		to_dev_null(STDERR_FILENO);
	}
	dprintf(service.ready_fd, "%s\n", path);
	close(service.ready_fd);
	service.ready_fd = -1;
}

/* The device stops serving (@ret: 0, or the -errno it failed with). */
static void service_stopping(int ret)
{
	if (!service.live)
		return;
	service.live = false;
	if (ret < 0)
		notify("STOPPING=1\nSTATUS=%s failed: %s\nERRNO=%d\n", service.dev_path,
		       strerror(-ret), -ret);
	else
		notify("STOPPING=1\nSTATUS=stopping %s\n", service.dev_path);
}

/* On the way out: remove the pid file, let the logger finish. */
static int service_exit(int status)
{
	pidfile_remove();
	log_stop();
	return status;
}

/* ---- verbs ---- */

/*
 * After serving: close the store and, if @remove, delete its file and
 * record.  A store file that held data goes only after a clean stop of
 * a device that was live here (see serve()); otherwise it stays, and the
 * user is told where the data is.
 */
static void store_done(struct served_store *st, int dev_id, bool remove)
{
	mem_store_close(&st->mem);
	if (!st->file)
		return;
	if (remove) {
		record_remove_store(&st->rec);
		record_remove(dev_id);
		return;
	}
}

/*
 * How this server was run, for the server that takes its device over
 * (`ublk-mem restart`): the successor is started with these options.
 */
struct successor {
	char *argv[20];
	char id[16], store[PATH_MAX], pidfile[PATH_MAX], poll[32], threads[40], reserve[40];
};

static void successor_args(struct successor *sc, const char *program, int id,
			   const struct ublk_dev *dev, const struct served_store *st)
{
	unsigned n = 0, poll_us = ublk_poll_us(dev);

	snprintf(sc->id, sizeof(sc->id), "%d", id);
	snprintf(sc->store, sizeof(sc->store), "%s", st->rec.path);
	snprintf(sc->pidfile, sizeof(sc->pidfile), "%s", service.pidfile);
	snprintf(sc->poll, sizeof(sc->poll), "--poll=%u", poll_us == UBLK_POLL_OFF ? 0 : poll_us);
	snprintf(sc->threads, sizeof(sc->threads), "--queue-threads=%u", ublk_queue_threads(dev));
	snprintf(sc->reserve, sizeof(sc->reserve), "--reserve=%llu",
		 (unsigned long long)st->mem.reserve);
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
	if (st->mem.locked)
		sc->argv[n++] = "--prealloc";
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
static int serve(struct ublk_dev *dev, struct served_store *st)
{
	int id = ublk_dev_id(dev), ret, client;
	struct control ctl = {
		.dev_id = id,
		.store = &st->mem,
		.block_size = ublk_block_size(dev),
		.recorded = st->file,
	};
	struct successor sc = { 0 };
	bool kept, remove, live, rebuild;

	/* resize and restart reach the server through its control socket. */
	control_open(&ctl);
	if (ctl.fd >= 0)
		ublk_set_control(dev, ctl.fd, control_serve, &ctl);
	ret = ublk_run(dev, &st->mem, service_live, st);
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
		pidfile_remove();
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
		ublk_err("device %d keeps its data in %s and waits for a new server: ublk-mem recover %d%s",
			 id, st->rec.path, id, rebuild ? " --rebuild" : "");
	else if (st->file && !remove)
		ublk_err("the store %s keeps the data of device %d, which is gone: ublk-mem recover %d --rebuild makes the device again",
			 st->rec.path, id, id);
	store_done(st, id, remove);
	return ret;
}

/* Record @st as the store of device @id, made as @geo. */
static void record_store(int id, struct served_store *st, const struct record_geometry *geo)
{
	st->rec.dev = (unsigned long long)st->mem.st_dev;
	st->rec.ino = (unsigned long long)st->mem.st_ino;
	st->rec.has_geometry = true;
	st->rec.geo = *geo;
	record_write(id, &st->rec);
}

/* Open the store of a new device @dev_id (a file for --recoverable). */
static int open_new_store(struct options *o, const struct ublk_dev *dev,
			  struct served_store *st)
{
	int dev_id = ublk_dev_id(dev), ret;

	memset(st, 0, sizeof(*st));
	if (o->cfg.recoverable) {
		if (o->store.path)
			snprintf(st->rec.path, sizeof(st->rec.path), "%s", o->store.path);
		else
			record_default_store(st->rec.path, sizeof(st->rec.path), dev_id);
		o->store.path = st->rec.path;
		o->store.create = true;
		st->file = true;
	}
	ret = mem_store_open(&st->mem, &o->store);
	if (ret < 0)
		return ret;
	if (st->file) {
		const struct ublksrv_ctrl_dev_info *info = ublk_info(dev);
		struct record_geometry geo = {
			.size = o->cfg.size, .block_size = o->cfg.block_size,
			.queues = info->nr_hw_queues, .depth = info->queue_depth,
			.flags = info->flags,
		};

		record_store(ublk_dev_id(dev), st, &geo);
	}
	st->fresh = true;
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
	if (service_start(&o.svc) < 0)
		return 1;
	if (ublk_ctrl_open(&ctrl, o.cfg.trace) < 0)
		return 1;
	protect_from_oom_killer();
	/* The kernel picks the id; a recoverable store is named after it. */
	ret = ublk_add(ctrl, &o.cfg, &mem_backend_ops, &dev);
	if (ret == 0) {
		int id = ublk_dev_id(dev);

		ret = open_new_store(&o, dev, &st);
		if (ret == 0 && stop_pending()) {
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
 * One device as a JSON object, for `list --json`.  @info is NULL for an
 * id the kernel still holds for a removed device: only id and state.
 */
static void json_device(FILE *f, int id, const struct ublksrv_ctrl_dev_info *info,
			const struct ublk_params *params, const char *store)
{
	bool sized = info && (params->types & UBLK_PARAM_TYPE_BASIC);
	bool first = true;

	fprintf(f, "{\"id\":%d,\"device\":\"/dev/ublkb%d\",\"state\":", id, id);
	json_string(f, info ? state_name(info) : "removed");
	if (!info) {
		fputs(",\"pid\":null,\"size\":null,\"block_size\":null,\"queues\":null,\"depth\":null,\"copy_mode\":null,\"recoverable\":null,\"flags\":[],\"store\":null}",
		      f);
		return;
	}
	fprintf(f, ",\"pid\":%d", info->ublksrv_pid);
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
	fputs("],\"store\":", f);
	if (store)
		json_string(f, store);
	else
		fputs("null", f);
	fputc('}', f);
}

/* One device as a line of the `list` table; @info NULL: removed. */
static void table_device(int id, const struct ublksrv_ctrl_dev_info *info,
			 const struct ublk_params *params)
{
	char size[32] = "-";

	if (!info) {
		printf("%-4d %-15s %-8s %-8s %-6s %-5s %s\n", id, "removed", "-",
		       "-", "-", "-", "still mounted: its id is free after umount");
		return;
	}
	if (params->types & UBLK_PARAM_TYPE_BASIC)
		format_size(size, sizeof(size), params->basic.dev_sectors << 9);
	printf("%-4d %-15s %-8d %-8s %-6u %-5u %s%s%s%s\n", id,
	       state_name(info), info->ublksrv_pid, size,
	       info->nr_hw_queues, info->queue_depth,
	       ublk_copy_mode_name(ublk_copy_mode_of(info->flags)),
	       (info->flags & UBLK_F_USER_RECOVERY) ? ",recoverable" : "",
	       (info->flags & UBLK_F_USER_RECOVERY_REISSUE) ? ",reissue" : "",
	       (info->flags & UBLK_F_UNPRIVILEGED_DEV) ? ",unprivileged" : "");
}

/*
 * `ublk-mem list [--json]`: one line per device, or, for scripts and
 * monitoring, one JSON array of objects, one a line.
 */
static int cmd_list(int argc, char **argv)
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
		printf("%-4s %-15s %-8s %-8s %-6s %-5s %s\n", "ID", "STATE", "PID",
		       "SIZE", "QUEUES", "DEPTH", "FLAGS");
	for (int i = 0; i < n; i++) {
		struct ublksrv_ctrl_dev_info info;
		struct ublk_params params;
		struct record r;
		bool stored;

		if (ublk_get_info(ctrl, ids[i], &info, &params) < 0)
			continue;	/* went away meanwhile */
		if (!json) {
			table_device(ids[i], &info, &params);
			continue;
		}
		stored = (info.flags & UBLK_F_USER_RECOVERY) && record_read(ids[i], &r);
		fputs(shown++ ? ",\n" : "\n", stdout);
		json_device(stdout, ids[i], &info, &params, stored ? r.path : NULL);
	}
	n_held = held_ids(ids, n > 0 ? n : 0, held, 64);
	for (int i = 0; i < n_held; i++) {
		if (!json) {
			table_device(held[i], NULL, NULL);
			continue;
		}
		fputs(shown++ ? ",\n" : "\n", stdout);
		json_device(stdout, held[i], NULL, NULL, NULL);
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
			ublk_err("left %s in place: there is no record that ublk-mem made it", def);
		return;
	}
	if (strcmp(r.path, def))
		ublk_err("left the store %s in place: a --store path is the user's to remove",
			 r.path);
	else if (record_remove_store(&r))
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
	ret = ublk_get_info(ctrl, id, &info, NULL);
	if (ret < 0) {
		ublk_err("device %d: %s", id, ret == -ENODEV ? "no such ublk device" : strerror(-ret));
		ublk_ctrl_close(ctrl);
		return 1;
	}
	/* Pulling a disk from under a mounted file system loses its data. */
	if (!force && ublk_in_use(id, who, sizeof(who))) {
		ublk_err("/dev/ublkb%d is in use (%s): not deleting; unmount or close it first, or: ublk-mem del --force %d (its users then get I/O errors)",
			 id, who, id);
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

/* How device @info was made, as the kernel has it. */
static void geometry_of(const struct ublksrv_ctrl_dev_info *info,
			const struct ublk_params *params, struct record_geometry *g)
{
	g->size = params->basic.dev_sectors << 9;
	g->block_size = 1U << params->basic.logical_bs_shift;
	g->queues = info->nr_hw_queues;
	g->depth = info->queue_depth;
	g->flags = info->flags;
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
}

/*
 * `recover --rebuild`: the kernel will not recover device @cfg->dev_id
 * (or has lost it), so delete what is left of it and create it again,
 * with the same id and settings, from its store.  The data survives;
 * programs that held the old /dev/ublkbN get errors.
 */
static int rebuild(struct ublk_ctrl *ctrl, struct ublk_config *cfg,
		   struct served_store *st)
{
	struct ublk_dev *dev;
	int id = cfg->dev_id, ret;

	ret = ublk_delete(ctrl, id, 10000);
	if (ret < 0 && ret != -ENODEV) {
		ublk_err("device %d: cannot make it anew: %s%s; its data is safe in %s", id,
			 strerror(-ret), ret == -EBUSY ?
			 " (the kernel keeps its id while a file system on it is mounted: unmount it, then run this again)" : "",
			 st->rec.path);
		mem_store_close(&st->mem);
		return ret;
	}
	/* Should this start fail, the device is kept for another try. */
	cfg->holds_data = true;
	ret = ublk_add(ctrl, cfg, &mem_backend_ops, &dev);
	if (ret < 0) {
		ublk_err("device %d could not be made anew, but its data is safe in %s: ublk-mem recover %d --rebuild once the cause is fixed",
			 id, st->rec.path, id);
		mem_store_close(&st->mem);
		return ret;
	}
	st->rebuilt = true;
	return serve(dev, st);
}

/* What `ublk-mem recover` was asked to do. */
struct recover_options {
	int id;
	bool rebuild;
	char store[PATH_MAX];		/* --store, made absolute; "" if not given */
	struct ublk_config cfg;		/* how to serve: poll, threads, trace */
	uint64_t reserve;
	bool prealloc;
	struct service svc;
};

/* The value of option @name at argv[*i]: "--name=V" or "--name V". */
static const char *option_value(int argc, char **argv, int *i, const char *name)
{
	size_t n = strlen(name);

	if (!strncmp(argv[*i], name, n) && argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (!strcmp(argv[*i], name) && *i + 1 < argc)
		return argv[++*i];
	return NULL;
}

static void parse_recover_args(int argc, char **argv, struct recover_options *ro)
{
	const char *v;

	memset(ro, 0, sizeof(*ro));
	ro->id = -1;
	ro->reserve = mem_default_reserve();
	for (int i = 2; i < argc; i++) {
		if ((v = option_value(argc, argv, &i, "--store"))) {
			check_file_arg("--store", v, ro->store, sizeof(ro->store));
		} else if (!strcmp(argv[i], "--rebuild")) {
			ro->rebuild = true;
		} else if (!strcmp(argv[i], "--poll") || !strncmp(argv[i], "--poll=", 7)) {
			ro->cfg.poll_us = parse_poll(argv[i][6] ? argv[i] + 7 : NULL);
		} else if ((v = option_value(argc, argv, &i, "--queue-threads"))) {
			ro->cfg.queue_threads = parse_queue_threads(v);
		} else if ((v = option_value(argc, argv, &i, "--reserve"))) {
			if (parse_size(v, &ro->reserve) < 0)
				usage_error("invalid --reserve '%s': expected a size such as 256M, or 0", v);
		} else if (!strcmp(argv[i], "--prealloc")) {
			ro->prealloc = true;
		} else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--trace")) {
			ro->cfg.trace = true;
		} else if (!strcmp(argv[i], "-D") || !strcmp(argv[i], "--daemon")) {
			ro->svc.daemon = true;
		} else if ((v = option_value(argc, argv, &i, "--pidfile"))) {
			check_file_arg("--pidfile", v, ro->svc.pidfile, sizeof(ro->svc.pidfile));
		} else if (ro->id < 0 && argv[i][0] != '-') {
			ro->id = (int)parse_num(argv[i], "device id", 0, MAX_ID);
		} else {
			usage_error("unexpected argument '%s' (usage: " RECOVER_USAGE ")", argv[i]);
		}
	}
	if (ro->id < 0)
		usage_error("usage: " RECOVER_USAGE);
	if (ro->svc.daemon && ro->cfg.trace)
		usage_error("--trace prints on stderr, which --daemon leaves: trace in the foreground");
}

/*
 * How device @id was made: from the kernel, or, for `--rebuild` of a
 * device the kernel no longer has, from its store's record @rec.  Sets
 * *exists.  Returns 0 or -errno after saying why.
 */
static int find_geometry(struct ublk_ctrl *ctrl, const struct recover_options *ro,
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
		ublk_err("device %d is gone, but its store %s is recorded: `ublk-mem recover %d --rebuild` makes the device again from it",
			 id, rec->path, id);
		return ret;
	}
	if (ret < 0) {
		ublk_err("device %d: %s", id, ret == -ENODEV ? "no such ublk device" : strerror(-ret));
		return ret;
	}
	if (!(info.flags & UBLK_F_USER_RECOVERY)) {
		ublk_err("device %d was not created with --recoverable; it cannot be recovered (remove it: ublk-mem del %d)",
			 id, id);
		return -EINVAL;
	}
	geometry_of(&info, &params, geo);
	return 0;
}

/*
 * Open the store of device @ro->id, made as @geo: the one given, else the
 * recorded one, else where it is by default.  A recorded store must still
 * be the recorded file.  The record is then brought up to date.
 */
static int open_recorded_store(const struct recover_options *ro, bool recorded,
			       const struct record_geometry *geo, struct served_store *st,
			       struct mem_store_config *scfg)
{
	if (ro->store[0])
		snprintf(st->rec.path, sizeof(st->rec.path), "%s", ro->store);
	else if (!recorded)
		record_default_store(st->rec.path, sizeof(st->rec.path), ro->id);
	st->file = true;
	memset(scfg, 0, sizeof(*scfg));
	scfg->size = geo->size;
	scfg->max_size = max_store_size(geo->size);
	scfg->path = st->rec.path;
	scfg->reserve = ro->reserve;
	scfg->prealloc = ro->prealloc;
	scfg->file_io = ublk_copy_mode_of(geo->flags) == UBLK_COPY_ZERO;
	if (recorded) {
		scfg->expect_dev = (dev_t)st->rec.dev;
		scfg->expect_ino = (ino_t)st->rec.ino;
	}
	if (mem_store_open(&st->mem, scfg) < 0)
		return -1;
	record_store(ro->id, st, geo);
	return 0;
}

/* `ublk-mem recover ID ...`: take a device over, or make it anew. */
static int cmd_recover(int argc, char **argv)
{
	struct recover_options ro;
	struct record_geometry geo;
	struct mem_store_config scfg;
	struct served_store st = { 0 };
	struct ublk_ctrl *ctrl;
	struct ublk_dev *dev;
	bool recorded, exists;
	int ret = -1;

	parse_recover_args(argc, argv, &ro);
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
	if (!exists) {
		ret = rebuild(ctrl, &ro.cfg, &st);
		goto out;
	}
	ret = ublk_attach(ctrl, ro.id, &ro.cfg, &mem_backend_ops, &dev);
	if (ret < 0) {
		mem_store_close(&st.mem);
		goto out;
	}
	ret = serve(dev, &st);
	if (ret == -ENOTRECOVERABLE && ro.rebuild) {
		ret = mem_store_open(&st.mem, &scfg);
		if (ret == 0)
			ret = rebuild(ctrl, &ro.cfg, &st);
	} else if (ret == -ENOTRECOVERABLE) {
		ublk_err("its data is safe in %s. `ublk-mem recover %d --rebuild` creates the device again from it (programs holding /dev/ublkb%d get I/O errors); `ublk-mem del %d` would delete the data",
			 st.rec.path, ro.id, ro.id, ro.id);
	}
out:
	ublk_ctrl_close(ctrl);
	return ret < 0 ? 1 : 0;
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
	case UBLK_F_UNPRIVILEGED_DEV: return "not used: ublk-mem runs as root";
	case UBLK_F_ZONED: return "not used: a RAM disk is not zoned";
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

/* `ublk-mem resize [--force] ID SIZE`: grow or shrink a live device. */
static int cmd_resize(int argc, char **argv)
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
		ublk_err("%s", strncmp(answer, "error ", 6) ? answer : answer + 6);
		return 1;
	}
	printf("/dev/ublkb%d: %llu -> %llu bytes\n", id, old, new);
	return 0;
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
			ublk_err("the old server (pid %d) has not exited 30 s after handing over",
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
		ublk_err("cannot run %s: %s", program, strerror(errno));
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
		ublk_err("%s", strncmp(line, "error ", 6) ? line : line + 6);
		return -1;
	}
	if (ret < 0) {
		ublk_err("device %d's server did not hand the device over: %s", id,
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
		ublk_err("the new server of device %d did not come up within %d s", id,
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
static int cmd_restart(int argc, char **argv)
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
	if (ublk_get_info(ctrl, id, &info, NULL) < 0 || !ublk_server_running(&info)) {
		ublk_err("device %d has no running server to restart (see: ublk-mem list)", id);
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
		ublk_err("%s", strncmp(line, "error ", 6) ? line : line + 6);
		close(fd);
		ublk_ctrl_close(ctrl);
		return 1;
	}
	if (held < 0) {
		ublk_err("the new server did not take device %d over; its data is safe: ublk-mem recover %d",
			 id, id);
		ublk_ctrl_close(ctrl);
		return 1;
	}
	if (ublk_get_info(ctrl, id, &info, NULL) < 0)
		info.ublksrv_pid = 0;
	ublk_ctrl_close(ctrl);
	ublk_err("device %d restarted (server pid %d, was %d): I/O paused for %lld ms; %d request%s in flight %s re-issued to the new server",
		 id, info.ublksrv_pid, old_pid, now_ms() - t0, held, held == 1 ? "" : "s",
		 held == 1 ? "was" : "were");
	return 0;
}

/*
 * The verbs.  Serving ones take every signal themselves (see
 * set_signals()); the others leave Ctrl-C and SIGTERM their default
 * action, so a client never outlives the user's wish to stop it.
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
		set_signals();
		return service_exit(verbs[i].run(argc, argv));
	}
	set_signals();
	return service_exit(cmd_serve(argc, argv));
}
