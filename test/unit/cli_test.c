/*
 * cli_test.c - unit tests for the command line (options.c, service.c,
 * admin.c, recover.c, serve.c, main.c): parse_size(),
 * the option parser on valid command lines, the small parsers and
 * formatters it uses, the names `list` and `features` print, the rule
 * that only the recorded store file is ever removed, and the service
 * parts: the pid file, the sd_notify datagrams, the JSON of
 * `list --json` and the priorities of what goes to syslog.
 *
 * Their functions are static, so this file includes those files
 * themselves, main() renamed.  What exits the process (usage errors, --help) is
 * not tested here but by the VM suite (t-bad-args).
 *
 * Each check prints one line, "ok - name", "FAIL - name: details
 * (line N)" or "skip - name: why".  Exit status: 0 all passed, 1 a check
 * failed.
 */
#include "../../options.c"
#include "../../owner.c"
#include "../../service.c"
#include "../../serve.c"
#include "../../admin.c"
#include "../../recover.c"
#define main ublk_mem_main
#include "../../main.c"
#undef main

#include "check.h"

#define KiB	(1ULL << 10)
#define MiB	(1ULL << 20)
#define GiB	(1ULL << 30)
#define TiB	(1ULL << 40)

/* ---- checks (the common ones are in check.h) ---- */

/* A check of one number against the value it should have. */
static bool check_eq(int line, long long got, long long want, const char *name)
{
	return check(line, got == want, name, "got %lld, want %lld", got, want);
}

#define CHECK_EQ(got, want, name) \
	check_eq(__LINE__, (long long)(got), (long long)(want), (name))

/* A check of a string against the one it should be. */
static bool check_str(int line, const char *got, const char *want, const char *name)
{
	return check(line, got && !strcmp(got, want), name, "got \"%s\", want \"%s\"",
		     got ? got : "(NULL)", want);
}

#define CHECK_STR(got, want, name)	check_str(__LINE__, (got), (want), (name))

/* @s as a C string literal would spell it, "\n" for a newline (for names). */
static const char *spelled(const char *s, char *buf, size_t len)
{
	size_t n = 0;

	for (; *s && n + 3 < len; s++) {
		if (*s == '\n') {
			buf[n++] = '\\';
			buf[n++] = 'n';
		} else {
			buf[n++] = *s;
		}
	}
	buf[n] = '\0';
	return buf;
}

/* ---- parse_size() ---- */

/* Decimal numbers with one K, M, G or T suffix (powers of 1024), in 64 bits. */
struct size_case {
	const char *text;
	bool ok;
	uint64_t value;
};

static void test_parse_size(void)
{
	static const struct size_case cases[] = {
		{ "64M", true, 64 * MiB },
		{ "1G", true, GiB },
		{ "65536", true, 65536 },
		{ "4k", true, 4 * KiB },
		{ "4K", true, 4 * KiB },
		{ "64m", true, 64 * MiB },
		{ "1T", true, TiB },
		{ "2t", true, 2 * TiB },
		{ "0", true, 0 },
		{ "0K", true, 0 },
		{ "007", true, 7 },
		{ "512g", true, 512 * GiB },
		{ "16777215T", true, 16777215ULL << 40 },	/* the largest in T */
		{ "17179869183G", true, 17179869183ULL << 30 },	/* the largest in G */
		{ "18446744073709551615", true, UINT64_MAX },	/* 2^64 - 1 */
		{ "", false, 0 },
		{ "abc", false, 0 },
		{ "M", false, 0 },
		{ "12Q", false, 0 },
		{ "-5", false, 0 },
		{ "+5", false, 0 },
		{ " 64M", false, 0 },
		{ "64 M", false, 0 },
		{ "64M ", false, 0 },
		{ "64\n", false, 0 },
		{ "0x10", false, 0 },
		{ "1e3", false, 0 },
		{ "1.5G", false, 0 },
		{ "1,5G", false, 0 },
		{ "64M5", false, 0 },
		{ "64MM", false, 0 },
		{ "64i", false, 0 },
		{ "64Mi", false, 0 },	/* exactly one suffix letter: */
		{ "64MiB", false, 0 },	/* "64MB" could mean 10^6 too */
		{ "64MB", false, 0 },
		{ "64P", false, 0 },
		{ "18446744073709551616", false, 0 },	/* exactly 2^64 */
		{ "99999999999999999999", false, 0 },
		{ "184467440737095516150", false, 0 },
		{ "20000000T", false, 0 },
		{ "16777216T", false, 0 },	/* exactly 2^64 */
		{ "17179869184G", false, 0 },	/* exactly 2^64 */
		{ "18014398509481984K", false, 0 },	/* exactly 2^64 */
	};

	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct size_case *c = &cases[i];
		uint64_t v = 12345;	/* must stay untouched on failure */
		int ret = parse_size(c->text, &v);
		char name[96], text[32];

		spelled(c->text, text, sizeof(text));
		if (c->ok) {
			snprintf(name, sizeof(name), "parse_size(\"%s\") = %llu", text,
				 (unsigned long long)c->value);
			CHECK(ret == 0 && v == c->value, name, "returned %d, value %llu",
			      ret, (unsigned long long)v);
		} else {
			snprintf(name, sizeof(name), "parse_size(\"%s\") is rejected", text);
			CHECK(ret == -EINVAL && v == 12345, name,
			      "returned %d, value %llu", ret, (unsigned long long)v);
		}
	}
}

/* ---- the option parser, on command lines it accepts ---- */

/*
 * Run parse_options() on @args (a NULL-terminated list after the program
 * name).  getopt permutes argv, so it gets a copy, and its state is reset
 * (optind = 0) for each command line.
 */
static void parse(struct options *o, const char *const *args)
{
	char *argv[16] = { (char *)"ublk-mem" };
	int argc = 1;

	while (args[argc - 1] && argc < (int)ARRAY_SIZE(argv) - 1) {
		argv[argc] = (char *)args[argc - 1];
		argc++;
	}
	argv[argc] = NULL;
	optind = 0;
	parse_options(VERB_SERVE, argc, argv, o);
}

static void test_parse_args_defaults(void)
{
	static const char *const args[] = { "64M", NULL };
	struct options o;

	parse(&o, args);
	CHECK(o.cfg.size == 64 * MiB && o.store.mem.size == 64 * MiB,
	      "ublk-mem 64M: a 64 MiB device and store", "device %llu, store %llu",
	      (unsigned long long)o.cfg.size, (unsigned long long)o.store.mem.size);
	CHECK(o.cfg.nr_queues == 1 && o.cfg.depth == 128 && o.cfg.block_size == 512 &&
	      o.cfg.dev_id == -1 && o.cfg.copy_mode == UBLK_COPY_GET_DATA,
	      "defaults: 1 queue, depth 128, 512-byte blocks, any id, get_data",
	      "queues %u, depth %u, block size %u, id %d, copy mode %d", o.cfg.nr_queues,
	      o.cfg.depth, o.cfg.block_size, o.cfg.dev_id, (int)o.cfg.copy_mode);
	CHECK(o.cfg.poll_us == 0 && !o.cfg.recoverable && !o.cfg.trace,
	      "defaults: spin only while busy, not recoverable, no trace",
	      "poll_us %u, recoverable %d, trace %d", o.cfg.poll_us, o.cfg.recoverable,
	      o.cfg.trace);
	CHECK(!o.store.mem.path && !o.store.mem.create && !o.store.mem.prealloc && !o.store.mem.small_pages,
	      "defaults: anonymous memory, allocated lazily, in huge pages",
	      "path %s, create %d, prealloc %d, small_pages %d",
	      o.store.mem.path ? o.store.mem.path : "(none)", o.store.mem.create, o.store.mem.prealloc,
	      o.store.mem.small_pages);
	CHECK(!o.reserve_set && o.store.mem.reserve == mem_default_reserve(),
	      "defaults: the reserve is mem_default_reserve()", "reserve %llu (set %d), want %llu",
	      (unsigned long long)o.store.mem.reserve, o.reserve_set,
	      (unsigned long long)mem_default_reserve());
}

static void test_parse_args_options(void)
{
	static const char *const shorts[] = {
		"-q", "1", "-d", "4096", "-b", "4096", "-n", "1048575", "-v", "8M", NULL,
	};
	static const char *const longs[] = {
		"--queues=1", "--depth", "1", "--block-size=1024", "--id", "0", "--trace",
		"--copy-mode", "user_copy", "1048576", NULL,
	};
	static const char *const after_size[] = {
		"8M", "--reserve", "0", "--copy-mode=bounce", "--prealloc", "--small-pages", NULL,
	};
	static const char *const poll_default[] = { "--poll", "8M", NULL };
	static const char *const poll_off[] = { "--poll=0", "8M", NULL };
	static const char *const poll_us[] = { "8M", "--poll=250", "--reserve=256M", NULL };
	static const char *const lower[] = { "4k", "-b", "4096", NULL };
	static const char *const threads[] = { "8M", "-d", "2", "--queue-threads=2", NULL };
	struct options o;

	parse(&o, shorts);
	CHECK(o.cfg.nr_queues == 1 && o.cfg.depth == 4096 && o.cfg.block_size == 4096 &&
	      o.cfg.dev_id == 1048575 && o.cfg.trace && o.cfg.size == 8 * MiB,
	      "-q 1 -d 4096 -b 4096 -n 1048575 -v 8M",
	      "queues %u, depth %u, block size %u, id %d, trace %d, size %llu",
	      o.cfg.nr_queues, o.cfg.depth, o.cfg.block_size, o.cfg.dev_id, o.cfg.trace,
	      (unsigned long long)o.cfg.size);

	parse(&o, longs);
	CHECK(o.cfg.nr_queues == 1 && o.cfg.depth == 1 && o.cfg.block_size == 1024 &&
	      o.cfg.dev_id == 0 && o.cfg.trace && o.cfg.copy_mode == UBLK_COPY_USER &&
	      o.cfg.size == MiB,
	      "--queues=1 --depth 1 --block-size=1024 --id 0 --trace --copy-mode user_copy 1048576",
	      "queues %u, depth %u, block size %u, id %d, trace %d, copy mode %d, size %llu",
	      o.cfg.nr_queues, o.cfg.depth, o.cfg.block_size, o.cfg.dev_id, o.cfg.trace,
	      (int)o.cfg.copy_mode, (unsigned long long)o.cfg.size);

	parse(&o, after_size);
	CHECK(o.cfg.size == 8 * MiB && o.reserve_set && o.store.mem.reserve == 0 &&
	      o.cfg.copy_mode == UBLK_COPY_BOUNCE && o.store.mem.prealloc && o.store.mem.small_pages,
	      "options after SIZE: 8M --reserve 0 --copy-mode=bounce --prealloc --small-pages",
	      "size %llu, reserve %llu (set %d), copy mode %d, prealloc %d, small_pages %d",
	      (unsigned long long)o.cfg.size, (unsigned long long)o.store.mem.reserve,
	      o.reserve_set, (int)o.cfg.copy_mode, o.store.mem.prealloc, o.store.mem.small_pages);

	parse(&o, poll_default);
	CHECK_EQ(o.cfg.poll_us, POLL_US_DEFAULT, "--poll: spin 1000 us");
	parse(&o, poll_off);
	CHECK_EQ(o.cfg.poll_us, UBLK_POLL_OFF, "--poll=0: never spin");
	parse(&o, poll_us);
	CHECK(o.cfg.poll_us == 250 && o.reserve_set && o.store.mem.reserve == 256 * MiB,
	      "8M --poll=250 --reserve=256M", "poll_us %u, reserve %llu (set %d)",
	      o.cfg.poll_us, (unsigned long long)o.store.mem.reserve, o.reserve_set);
	parse(&o, threads);
	CHECK(o.cfg.queue_threads == 2 && o.cfg.depth == 2,
	      "8M -d 2 --queue-threads=2", "queue_threads %u, depth %u",
	      o.cfg.queue_threads, o.cfg.depth);
	parse(&o, poll_default);
	CHECK_EQ(o.cfg.queue_threads, 0, "no --queue-threads: 0 (one thread)");
	parse(&o, lower);
	CHECK(o.cfg.size == 4 * KiB && o.cfg.block_size == 4096,
	      "4k -b 4096: one block", "size %llu, block size %u",
	      (unsigned long long)o.cfg.size, o.cfg.block_size);
}

/* --recoverable --store PATH: the path is kept; the store is made later. */
static void test_parse_args_store(void)
{
	char dir[] = "/tmp/cli_test.XXXXXX", path[64];
	const char *args[] = { "--recoverable", "--store", path, "8M", NULL };
	static const char *const bare[] = { "--recoverable", "8M", NULL };
	struct options o;

	if (!CHECK(mkdtemp(dir) != NULL, "a temporary directory for --store", "%s",
		   "mkdtemp failed"))
		return;
	snprintf(path, sizeof(path), "%s/store", dir);
	parse(&o, args);
	CHECK(o.cfg.recoverable && o.store.mem.path && !strcmp(o.store.mem.path, path) &&
	      !o.store.mem.create && !o.store.mem.small_pages,
	      "--recoverable --store DIR/store 8M: that path, created later",
	      "recoverable %d, path %s, create %d", o.cfg.recoverable,
	      o.store.mem.path ? o.store.mem.path : "(none)", o.store.mem.create);
	CHECK(access(path, F_OK) < 0, "parsing --store creates no file", "%s exists", path);
	parse(&o, bare);
	CHECK(o.cfg.recoverable && !o.store.mem.path,
	      "--recoverable 8M: the default store path is chosen later",
	      "recoverable %d, path %s", o.cfg.recoverable, o.store.mem.path ? o.store.mem.path : "(none)");
	rmdir(dir);
}

/* ---- the small parsers, on what they accept ---- */

static void test_small_parsers(void)
{
	static const struct {
		const char *text;
		enum ublk_copy_mode mode;
	} modes[] = {
		{ "get_data", UBLK_COPY_GET_DATA },
		{ "user_copy", UBLK_COPY_USER },
		{ "bounce", UBLK_COPY_BOUNCE },
		{ "zero_copy", UBLK_COPY_ZERO },
	};

	for (unsigned i = 0; i < ARRAY_SIZE(modes); i++) {
		char name[64];

		snprintf(name, sizeof(name), "parse_copy_mode(\"%s\")", modes[i].text);
		CHECK_EQ(parse_copy_mode(modes[i].text), modes[i].mode, name);
	}
	CHECK_EQ(parse_poll(NULL), POLL_US_DEFAULT, "parse_poll(no value) = 1000 us");
	CHECK_EQ(parse_poll("0"), UBLK_POLL_OFF, "parse_poll(\"0\") = never spin");
	CHECK_EQ(parse_poll("1"), 1, "parse_poll(\"1\") = 1 us");
	CHECK_EQ(parse_poll("1000000"), 1000000, "parse_poll(\"1000000\"): the largest");
	CHECK_EQ(parse_num("0", "n", 0, 10), 0, "parse_num(\"0\") in [0, 10]");
	CHECK_EQ(parse_num("10", "n", 0, 10), 10, "parse_num(\"10\") in [0, 10]: the largest");
	CHECK_EQ(parse_num("0010", "n", 1, 10), 10, "parse_num(\"0010\"): leading zeros");
	CHECK_EQ(parse_num("1048575", "n", 0, MAX_ID), MAX_ID,
		 "parse_num(\"1048575\"): the largest device id");
}

/* ---- what `list`, `features` and the store records print ---- */

static void test_format_size(void)
{
	static const struct {
		uint64_t bytes;
		const char *text;
	} cases[] = {
		{ 0, "0B" },
		{ 512, "512B" },
		{ 1024, "1K" },
		{ 1536, "1536B" },
		{ 4097 * KiB, "4097K" },
		{ 64 * MiB, "64M" },
		{ 64 * MiB + 512, "67109376B" },
		{ GiB, "1G" },
		{ 3 * GiB / 2, "1536M" },
		{ TiB, "1T" },
		{ 1024 * TiB, "1024T" },
	};

	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		char buf[32], name[64];

		format_size(buf, sizeof(buf), cases[i].bytes);
		snprintf(name, sizeof(name), "format_size(%llu) = %s",
			 (unsigned long long)cases[i].bytes, cases[i].text);
		CHECK_STR(buf, cases[i].text, name);
	}
}

static void test_state_name(void)
{
	struct ublksrv_ctrl_dev_info info = { .state = UBLK_S_DEV_LIVE };

	info.ublksrv_pid = getpid();
	CHECK_STR(state_name(&info), "live", "a live device whose server runs: live");
	info.ublksrv_pid = 0;
	CHECK_STR(state_name(&info), "live,no-server", "a live device with no server");
	info.state = UBLK_S_DEV_QUIESCED;
	CHECK_STR(state_name(&info), "quiesced", "a quiesced device: quiesced");
	info.flags = UBLK_F_USER_RECOVERY;
	CHECK_STR(state_name(&info), "recoverable", "a quiesced --recoverable device: recoverable");
	info.state = UBLK_S_DEV_FAIL_IO;
	CHECK_STR(state_name(&info), "fail-io", "a device failing I/O: fail-io");
	info.state = UBLK_S_DEV_DEAD;
	CHECK_STR(state_name(&info), "dead", "a stopped device: dead");
	info.state = 99;
	CHECK_STR(state_name(&info), "dead", "an unknown state: dead");
}

/* refuse_config() on @cfg and @features, its one line in @msg. */
static int refusal(const struct ublk_config *cfg, uint64_t features, char *msg, size_t len)
{
	FILE *f = tmpfile();
	int saved = dup(STDERR_FILENO), ret;
	size_t n = 0;

	if (f)
		dup2(fileno(f), STDERR_FILENO);
	ret = refuse_config(cfg, features);
	dup2(saved, STDERR_FILENO);
	close(saved);
	msg[0] = '\0';
	if (f) {
		rewind(f);
		n = fread(msg, 1, len - 1, f);
		msg[n] = '\0';
		fclose(f);
	}
	return ret;
}

/* What the command line says when the driver cannot serve a configuration. */
static void test_refuse_config(void)
{
	struct ublk_config cfg = { .copy_mode = UBLK_COPY_USER, .copy_mode_set = true, .depth = 128 };
	char msg[512];
	int ret;

	ret = refusal(&cfg, 0x1feULL & ~UBLK_F_USER_COPY, msg, sizeof(msg));
	CHECK(ret == -EOPNOTSUPP && strstr(msg, "lacks UBLK_F_USER_COPY (Linux 6.5)") &&
	      strstr(msg, "another --copy-mode") && strchr(msg, '\n') == msg + strlen(msg) - 1,
	      "no USER_COPY: one line naming the flag, its release and what to do",
	      "returned %d, said: %s", ret, msg);
	cfg.copy_mode = UBLK_COPY_GET_DATA;
	cfg.recoverable = true;
	ret = refusal(&cfg, 0x1feULL & ~UBLK_F_USER_RECOVERY, msg, sizeof(msg));
	CHECK(ret == -EOPNOTSUPP && strstr(msg, "USER_RECOVERY (Linux 6.1)") &&
	      strstr(msg, "--recoverable cannot work here"),
	      "no USER_RECOVERY: --recoverable refused, naming Linux 6.1",
	      "returned %d, said: %s", ret, msg);
	cfg.recoverable = false;
	cfg.queue_threads = 2;
	ret = refusal(&cfg, 0x1feULL, msg, sizeof(msg));
	CHECK(ret == -EOPNOTSUPP && strstr(msg, "PER_IO_DAEMON (Linux 6.16)") &&
	      strstr(msg, "--queue-threads 1"), "6.12: --queue-threads 2 refused, saying what to do",
	      "returned %d, said: %s", ret, msg);
	cfg.queue_threads = 0;
	cfg.io_path = UBLK_IO_PATH_BATCH;
	ret = refusal(&cfg, ~0ULL, msg, sizeof(msg));
	CHECK(ret == -EINVAL && strstr(msg, "--copy-mode get_data needs --io-path per-request"),
	      "batch with get_data: refused in the options' words", "returned %d, said: %s",
	      ret, msg);
	/* What an ordinary user may not have: one line naming the option and why. */
	cfg.io_path = UBLK_IO_PATH_AUTO;
	cfg.unprivileged = true;
	cfg.recoverable = true;
	ret = refusal(&cfg, ~0ULL, msg, sizeof(msg));
	CHECK(ret == -EINVAL && strstr(msg, "--recoverable needs root") &&
	      strchr(msg, '\n') == msg + strlen(msg) - 1,
	      "a user's --recoverable: one line saying it needs root", "returned %d, said: %s",
	      ret, msg);
	cfg.recoverable = false;
	cfg.copy_mode = UBLK_COPY_USER;
	ret = refusal(&cfg, 0x1feULL, msg, sizeof(msg));
	CHECK(ret == -EINVAL && strstr(msg, "--copy-mode user_copy needs root") &&
	      strstr(msg, "get_data"), "a user's user_copy: refused, naming what works",
	      "returned %d, said: %s", ret, msg);
	cfg.copy_mode = UBLK_COPY_GET_DATA;
	ret = refusal(&cfg, 0x1feULL & ~UBLK_F_UNPRIVILEGED_DEV, msg, sizeof(msg));
	CHECK(ret == -EOPNOTSUPP && strstr(msg, "UNPRIVILEGED_DEV") && strstr(msg, "only root"),
	      "a driver without UNPRIVILEGED_DEV: a user is told only root can",
	      "returned %d, said: %s", ret, msg);
}

static void test_feature_use(void)
{
	static const struct {
		uint64_t flag;
		const char *what;
		bool used;
	} cases[] = {
		{ UBLK_F_NEED_GET_DATA, "NEED_GET_DATA", true },
		{ UBLK_F_USER_COPY, "USER_COPY", true },
		{ UBLK_F_AUTO_BUF_REG, "AUTO_BUF_REG", true },
		{ UBLK_F_USER_RECOVERY, "USER_RECOVERY", true },
		{ UBLK_F_USER_RECOVERY_REISSUE, "USER_RECOVERY_REISSUE", true },
		{ UBLK_F_CMD_IOCTL_ENCODE, "CMD_IOCTL_ENCODE", true },
		{ UBLK_F_PER_IO_DAEMON, "PER_IO_DAEMON", true },
		{ UBLK_F_SUPPORT_ZERO_COPY, "SUPPORT_ZERO_COPY", false },
		{ UBLK_F_UNPRIVILEGED_DEV, "UNPRIVILEGED_DEV", true },
		{ UBLK_F_ZONED, "ZONED", true },
		{ 1ULL << 63, "bit 63 (unknown)", false },
	};

	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *use = feature_use(cases[i].flag);
		bool used = !strncmp(use, "used", 4);
		char name[96];

		snprintf(name, sizeof(name), "features: %s is %s", cases[i].what,
			 cases[i].used ? "used" : "not used");
		CHECK(used == cases[i].used && (used || !strncmp(use, "not used", 8)), name,
		      "it says \"%s\"", use);
	}
}

/* `recover` rebuilds the device's settings from what the kernel says. */
static void test_config_of(void)
{
	struct ublksrv_ctrl_dev_info info = {
		.nr_hw_queues = 2, .queue_depth = 64, .dev_id = 7,
		.flags = UBLK_F_USER_RECOVERY | UBLK_F_USER_COPY,
	};
	struct ublk_params params = { 0 };
	struct ublk_config cfg = { 0 };
	struct record_geometry g;

	params.basic.dev_sectors = 64 * MiB >> 9;
	params.basic.logical_bs_shift = 12;
	geometry_of(&info, &params, &g);
	CHECK(g.size == 64 * MiB && g.block_size == 4096 && g.queues == 2 && g.depth == 64 &&
	      g.flags == info.flags, "geometry_of: size, block size, queues, depth, flags",
	      "size %llu, block size %u, queues %u, depth %u, flags 0x%llx",
	      (unsigned long long)g.size, g.block_size, g.queues, g.depth,
	      (unsigned long long)g.flags);
	config_of(&g, 7, &cfg);
	CHECK(cfg.size == 64 * MiB && cfg.block_size == 4096 && cfg.nr_queues == 2 &&
	      cfg.depth == 64 && cfg.dev_id == 7 && cfg.copy_mode == UBLK_COPY_USER &&
	      cfg.recoverable,
	      "config_of: size, block size, queues, depth, id, user_copy, recoverable",
	      "size %llu, block size %u, queues %u, depth %u, id %d, copy mode %d, recoverable %d",
	      (unsigned long long)cfg.size, cfg.block_size, cfg.nr_queues, cfg.depth,
	      cfg.dev_id, (int)cfg.copy_mode, cfg.recoverable);
	g.flags = UBLK_F_USER_RECOVERY | UBLK_F_NEED_GET_DATA;
	config_of(&g, 7, &cfg);
	CHECK_EQ(cfg.copy_mode, UBLK_COPY_GET_DATA, "config_of: NEED_GET_DATA is get_data");
	g.flags = UBLK_F_USER_RECOVERY | UBLK_F_AUTO_BUF_REG;
	config_of(&g, 7, &cfg);
	CHECK_EQ(cfg.copy_mode, UBLK_COPY_ZERO, "config_of: AUTO_BUF_REG is zero_copy");
	g.flags = UBLK_F_USER_RECOVERY | UBLK_F_BATCH_IO;
	config_of(&g, 7, &cfg);
	CHECK(cfg.copy_mode == UBLK_COPY_BOUNCE && cfg.io_path == UBLK_IO_PATH_BATCH,
	      "config_of: BATCH_IO alone is bounce on the batched path", "copy mode %d, path %d",
	      (int)cfg.copy_mode, (int)cfg.io_path);
}

static void test_paths(void)
{
	char buf[64];

	record_default_store(buf, sizeof(buf), 7);
	CHECK_STR(buf, "/dev/shm/ublk-mem-7", "the default store of device 7");
}

/* ---- removing a store ---- */

/* Make an empty file at @path and fill @r with its path and identity. */
static bool make_recorded_file(const char *path, struct record *r)
{
	struct stat st;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0)
		return false;
	close(fd);
	if (lstat(path, &st) < 0)
		return false;
	snprintf(r->path, sizeof(r->path), "%s", path);
	r->dev = (unsigned long long)st.st_dev;
	r->ino = (unsigned long long)st.st_ino;
	return true;
}

/*
 * record_remove_store() removes the file a record names only while it is still
 * that file: not one that replaced it, not a link planted in its place.
 */
static void test_record_remove_store(void)
{
	char dir[] = "/tmp/cli_test.XXXXXX", path[64], other[64];
	struct record r, old;
	bool removed;

	if (!CHECK(mkdtemp(dir) != NULL, "a temporary directory for store files", "%s",
		   "mkdtemp failed"))
		return;
	snprintf(path, sizeof(path), "%s/store", dir);
	snprintf(other, sizeof(other), "%s/other", dir);

	if (CHECK(make_recorded_file(path, &r), "a recorded store file", "%s",
		  "cannot create it")) {
		removed = record_remove_store(&r);
		CHECK(removed && access(path, F_OK) < 0, "store_remove removes the recorded file",
		      "it said %s, and the file is %s", removed ? "yes" : "no",
		      access(path, F_OK) == 0 ? "there" : "gone");
	}

	/* The recorded file is moved away and another put at its path. */
	if (CHECK(make_recorded_file(path, &old) && rename(path, other) == 0 &&
		  make_recorded_file(path, &r),
		  "a recorded store file, moved away and replaced", "%s", "cannot set it up")) {
		removed = record_remove_store(&old);
		CHECK(!removed && access(path, F_OK) == 0 && access(other, F_OK) == 0,
		      "store_remove leaves the file that replaced the recorded one",
		      "it said %s; the new file is %s, the recorded one %s",
		      removed ? "yes" : "no", access(path, F_OK) == 0 ? "there" : "gone",
		      access(other, F_OK) == 0 ? "there" : "gone");
	}
	unlink(path);

	/* A symbolic link to the recorded file, put at its path. */
	if (CHECK(symlink(other, path) == 0, "a symbolic link at the recorded path", "%s",
		  "cannot create it")) {
		removed = record_remove_store(&old);
		CHECK(!removed && access(path, F_OK) == 0 && access(other, F_OK) == 0,
		      "store_remove leaves a symbolic link at the recorded path, and its target",
		      "it said %s; the link is %s, the target %s", removed ? "yes" : "no",
		      access(path, F_OK) == 0 ? "there" : "gone",
		      access(other, F_OK) == 0 ? "there" : "gone");
	}
	unlink(path);
	unlink(other);

	snprintf(r.path, sizeof(r.path), "%s/missing", dir);
	CHECK(!record_remove_store(&r), "store_remove of a file that is gone: false", "%s",
	      "it said it removed it");
	rmdir(dir);
}

/* ---- the service options ---- */

/* -D, --daemon, --pidfile; relative paths are made absolute. */
static void test_parse_args_service(void)
{
	static const char *const shorts[] = { "-D", "8M", NULL };
	static const char *const longs[] = { "8M", "--daemon", "--pidfile", "/run/x.pid", NULL };
	static const char *const rel[] = {
		"--pidfile=x.pid", "--recoverable", "--store", "s", "8M", NULL,
	};
	char cwd[PATH_MAX], want[PATH_MAX + 8];
	struct options o;

	parse(&o, shorts);
	CHECK(o.svc.daemon && !o.svc.pidfile[0], "-D 8M: a daemon, no pid file",
	      "daemon %d, pidfile '%s'", o.svc.daemon, o.svc.pidfile);
	parse(&o, longs);
	CHECK(o.svc.daemon && !strcmp(o.svc.pidfile, "/run/x.pid"),
	      "8M --daemon --pidfile /run/x.pid", "daemon %d, pidfile '%s'", o.svc.daemon,
	      o.svc.pidfile);
	if (!CHECK(getcwd(cwd, sizeof(cwd)) != NULL, "the current directory", "%s",
		   strerror(errno)))
		return;
	parse(&o, rel);
	snprintf(want, sizeof(want), "%s/x.pid", strcmp(cwd, "/") ? cwd : "");
	CHECK_STR(o.svc.pidfile, want, "--pidfile=x.pid is made absolute (the daemon works from /)");
	snprintf(want, sizeof(want), "%s/s", strcmp(cwd, "/") ? cwd : "");
	CHECK_STR(o.store.mem.path, want, "--store s is made absolute (its record names it)");
	CHECK(!o.svc.daemon, "without -D: the foreground", "daemon %d", o.svc.daemon);
}

static void test_absolute_path(void)
{
	char buf[16], cwd[PATH_MAX], want[PATH_MAX + 8];

	CHECK_EQ(absolute_path("/a/b", buf, sizeof(buf)), 0, "absolute_path(\"/a/b\")");
	CHECK_STR(buf, "/a/b", "an absolute path stays as it is");
	CHECK_EQ(absolute_path("/0123456789abcdef", buf, sizeof(buf)), -ENAMETOOLONG,
		 "absolute_path: a path too long for the buffer is -ENAMETOOLONG");
	if (getcwd(cwd, sizeof(cwd))) {
		char big[PATH_MAX + 8];

		CHECK_EQ(absolute_path("f", big, sizeof(big)), 0, "absolute_path(\"f\")");
		snprintf(want, sizeof(want), "%s/f", strcmp(cwd, "/") ? cwd : "");
		CHECK_STR(big, want, "a relative path is taken from the current directory");
	}
}

/* ---- the pid file ---- */

/* The whole of a small file, or "" (for checks). */
static const char *slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : -1;

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* How many entries @dir holds (besides . and ..). */
static int entries(const char *dir)
{
	char cmd[128];
	int n = -1;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", dir);
	f = popen(cmd, "r");
	if (f) {
		if (fscanf(f, "%d", &n) != 1)
			n = -1;
		pclose(f);
	}
	return n;
}

/*
 * pidfile_write() writes "PID\n" by rename, replacing (never following) a
 * link planted at the path, leaves no temporary file; service_drop_pidfile()
 * removes only that file; pidfile_owner() names only a running ublk-mem.
 */
static void test_pidfile(void)
{
	char dir[] = "/tmp/cli_test.XXXXXX", path[64], victim[64], buf[64], want[32];
	struct stat st;

	if (!CHECK(mkdtemp(dir) != NULL, "a temporary directory for pid files", "%s",
		   "mkdtemp failed"))
		return;
	snprintf(path, sizeof(path), "%s/ublk.pid", dir);
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	snprintf(want, sizeof(want), "%d\n", (int)getpid());

	CHECK_EQ(pidfile_write(path), 0, "pidfile_write to a new path");
	CHECK_STR(slurp(path, buf, sizeof(buf)), want, "the pid file holds our pid and a newline");
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644,
	      "the pid file is mode 0644, for monitoring", "mode %o", st.st_mode & 0777);
	CHECK_EQ(entries(dir), 1, "no temporary file is left beside it");
	CHECK_EQ(pidfile_owner(path), 0, "pidfile_owner: our own pid is not another server");
	service_drop_pidfile();
	CHECK(access(path, F_OK) < 0, "service_drop_pidfile removes it", "%s", "it is still there");

	/* A link planted at the path: replaced, its target untouched. */
	if (CHECK(symlink(victim, path) == 0, "a symbolic link planted at the pid file's path",
		  "%s", strerror(errno))) {
		int fd = open(victim, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (fd >= 0) {
			CHECK(write(fd, "precious\n", 9) == 9, "the link's target", "%s",
			      "cannot write it");
			close(fd);
		}
		CHECK_EQ(pidfile_write(path), 0, "pidfile_write over a planted link");
		CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode),
		      "the link was replaced by a regular file", "%s", "it was not");
		CHECK_STR(slurp(victim, buf, sizeof(buf)), "precious\n",
			  "the link's target is untouched");
		/* Replaced by someone else meanwhile: not ours to remove. */
		unlink(path);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd >= 0)
			close(fd);
		service_drop_pidfile();
		CHECK(access(path, F_OK) == 0,
		      "service_drop_pidfile leaves a file that replaced ours", "%s", "it removed it");
		unlink(path);
	}

	/* Stale and foreign pid files name no running server. */
	if (CHECK(pidfile_write(path) == 0, "a pid file to tamper with", "%s", "cannot write")) {
		FILE *f = fopen(path, "w");

		if (f) {
			fprintf(f, "%d\n", (int)getppid());	/* running, not ublk-mem */
			fclose(f);
		}
		CHECK_EQ(pidfile_owner(path), 0, "pidfile_owner: a running process that is not ublk-mem");
		f = fopen(path, "w");
		if (f) {
			fputs("abc\n", f);
			fclose(f);
		}
		CHECK_EQ(pidfile_owner(path), 0, "pidfile_owner: not a number");
		service_drop_pidfile();
		unlink(path);
	}
	if (CHECK(mkfifo(path, 0600) == 0, "a FIFO planted at the path", "%s", strerror(errno))) {
		CHECK_EQ(pidfile_owner(path), 0, "pidfile_owner: a FIFO does not hang it");
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/no-such-dir/ublk.pid", dir);
	CHECK(pidfile_write(path) == -ENOENT, "pidfile_write in a missing directory: -ENOENT",
	      "%s", "it did not fail so");
	unlink(victim);
	rmdir(dir);
}

/* ---- sd_notify ---- */

/* A datagram socket bound at @name (a path, or @abstract); -1 on failure. */
static int bind_notify(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(name);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	memcpy(sa.sun_path, name, n);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa,
			    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* The next datagram on @fd as a string, or "" when there is none. */
static const char *received(int fd, char *buf, size_t len)
{
	ssize_t n = recv(fd, buf, len - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void test_notify(void)
{
	char dir[] = "/tmp/cli_test.XXXXXX", path[64], name[64], buf[512];
	int fd;

	if (!CHECK(mkdtemp(dir) != NULL, "a temporary directory for a socket", "%s",
		   "mkdtemp failed"))
		return;
	unsetenv("NOTIFY_SOCKET");
	notify("READY=1\n");	/* nowhere to go: nothing happens */

	snprintf(path, sizeof(path), "%s/notify", dir);
	fd = bind_notify(path);
	if (CHECK(fd >= 0, "a notify socket at a path", "%s", strerror(errno))) {
		setenv("NOTIFY_SOCKET", path, 1);
		notify("READY=1\nSTATUS=serving %s\n", "/dev/ublkb3");
		CHECK_STR(received(fd, buf, sizeof(buf)), "READY=1\nSTATUS=serving /dev/ublkb3\n",
			  "notify: one datagram to a socket path");
		close(fd);
		unlink(path);
	}
	snprintf(name, sizeof(name), "@ublk-mem-cli-test-%d", (int)getpid());
	fd = bind_notify(name);
	if (CHECK(fd >= 0, "a notify socket in the abstract namespace", "%s", strerror(errno))) {
		setenv("NOTIFY_SOCKET", name, 1);
		notify("STOPPING=1\n");
		CHECK_STR(received(fd, buf, sizeof(buf)), "STOPPING=1\n",
			  "notify: '@' names an abstract socket");
		close(fd);
	}
	unsetenv("NOTIFY_SOCKET");
	rmdir(dir);
}

/* ---- list --json ---- */

/* What @print writes on a memory stream, for comparing. */
static const char *printed(char *buf, size_t len, void (*print)(FILE *, const void *),
			   const void *arg)
{
	FILE *f = fmemopen(buf, len, "w");

	buf[0] = '\0';
	if (f) {
		print(f, arg);
		fclose(f);
	}
	return buf;
}

static void print_json_string(FILE *f, const void *s)
{
	json_string(f, s);
}

static void test_json_string(void)
{
	static const struct {
		const char *in, *out, *what;
	} cases[] = {
		{ "/dev/shm/ublk-mem-0", "\"/dev/shm/ublk-mem-0\"", "plain ASCII" },
		{ "", "\"\"", "empty" },
		{ "a\"b\\c", "\"a\\\"b\\\\c\"", "quote and backslash escaped" },
		{ "tab\there\x01\x7f", "\"tab\\u0009here\\u0001\\u007f\"", "control characters" },
		{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\xbe", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\xbe\"",
		  "valid UTF-8 passes through" },
		{ "a\xff" "b", "\"a\\ufffdb\"", "a byte that is not UTF-8 becomes U+FFFD" },
		{ "\xc3", "\"\\ufffd\"", "a truncated sequence" },
		{ "\xc0\xaf", "\"\\ufffd\\ufffd\"", "an overlong form" },
		{ "\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"", "a surrogate" },
		{ "\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"", "past U+10FFFF" },
	};

	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		char buf[128], name[96];

		snprintf(name, sizeof(name), "json_string: %s", cases[i].what);
		CHECK_STR(printed(buf, sizeof(buf), print_json_string, cases[i].in),
			  cases[i].out, name);
	}
}

/* ---- owners ---- */

/*
 * A passwd file for owner_name(): names to find, a first line winning
 * over a second, a line too long to read, a name no user should have, a
 * last line without a newline.  owner_name() reads it until undone.
 */
static char test_passwd[64];

static void use_test_passwd(void)
{
	int fd;
	FILE *f;

	snprintf(test_passwd, sizeof(test_passwd), "/tmp/cli_test.passwd.XXXXXX");
	fd = mkstemp(test_passwd);
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		perror(test_passwd);
		exit(1);
	}
	fputs("root:x:0:0:root:/root:/bin/sh\n"
	      "alice:x:1000:1000::/home/alice:/bin/sh\n"
	      "evil\"\033[2J:x:1001:1001::/:/bin/sh\n"
	      "first:x:1002:1002::/:/bin/sh\n"
	      "second:x:1002:1002::/:/bin/sh\n", f);
	for (int i = 0; i < 1100; i++)
		fputc('l', f);
	fputs(":x:1003:1003::/:/bin/sh\n"
	      "#carol:x:1005\n"
	      "nouid:x::1006\n"
	      "bob:x:1004:1004::/:/bin/sh", f);
	fclose(f);
	passwd_path = test_passwd;
}

static void undo_test_passwd(void)
{
	unlink(test_passwd);
	passwd_path = "/etc/passwd";
}

static void test_owner_name(void)
{
	static const struct {
		uint32_t uid;
		bool named;
		const char *name, *what;
	} cases[] = {
		{ 1000, true, "alice", "a user's name" },
		{ 0, true, "root", "root" },
		{ 1001, false, "1001", "a name with a quote and an escape sequence: the number" },
		{ 1002, true, "first", "two lines for one uid: the first" },
		{ 1003, false, "1003", "a line too long to read: the number" },
		{ 1004, true, "bob", "after the long line, a last line without a newline" },
		{ 1006, false, "1006", "a line without a uid matches nothing" },
		{ 4000000000U, false, "4000000000", "no such user: the number" },
	};
	char name[64], what[128];

	use_test_passwd();
	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		bool named = owner_name(cases[i].uid, name, sizeof(name));

		snprintf(what, sizeof(what), "owner_name: %s", cases[i].what);
		CHECK(named == cases[i].named && !strcmp(name, cases[i].name), what,
		      "named %d, got \"%s\"", named, name);
	}
	CHECK(!owner_name(1000, name, 4) && !strcmp(name, "100"),
	      "owner_name: a name longer than the buffer is not cut", "got \"%s\"", name);
	undo_test_passwd();
	passwd_path = "/nonexistent/passwd";
	CHECK(!owner_name(0, name, sizeof(name)) && !strcmp(name, "0"),
	      "owner_name: without a passwd file, the number", "got \"%s\"", name);
	passwd_path = "/etc/passwd";
}

/* The nodes `chown` takes from udev's DEVNAME or mdev's MDEV. */
static void test_parse_node(void)
{
	static const struct {
		const char *name;
		int ret, id;
		bool cdev;
	} cases[] = {
		{ "/dev/ublkc3", 0, 3, true }, { "ublkc3", 0, 3, true },
		{ "/dev/ublkb12", 0, 12, false }, { "ublkb0", 0, 0, false },
		{ "ublkb3p1", 1, 3, false }, { "/dev/sda", -EINVAL, 0, false },
		{ "ublkc", -EINVAL, 0, false }, { "ublkc-1", -EINVAL, 0, false },
		{ "ublkc+1", -EINVAL, 0, false }, { "ublkc 1", -EINVAL, 0, false },
		{ "ublkc3x", -EINVAL, 0, false }, { "ublkc3p1", -EINVAL, 0, false },
		{ "../ublkc3", -EINVAL, 0, false }, { "/dev/../ublkc3", -EINVAL, 0, false },
		{ "ublkc3/../../etc/passwd", -EINVAL, 0, false }, { "ublk-control", -EINVAL, 0, false },
	};

	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		int id = -1, ret;
		bool cdev = false;
		char what[96];

		ret = parse_node(cases[i].name, &id, &cdev);
		snprintf(what, sizeof(what), "chown takes %s: %s", cases[i].name,
			 cases[i].ret == 0 ? "yes" : cases[i].ret > 0 ? "no, quietly" : "no");
		CHECK(ret == cases[i].ret && (ret || (id == cases[i].id && cdev == cases[i].cdev)),
		      what, "returned %d, id %d, cdev %d", ret, id, cdev);
	}
}

struct device_case {
	int id;
	const struct ublksrv_ctrl_dev_info *info;
	const struct ublk_params *params;
	const char *store;
	const char *stats;	/* a server's stats answer, or NULL */
};

static void print_json_device(FILE *f, const void *arg)
{
	const struct device_case *c = arg;

	json_device(f, c->id, c->info, c->params, c->store, c->stats);
}

static void print_json_private(FILE *f, const void *arg)
{
	(void)arg;
	owner_list_private(f, 5, 1000, true);
}

static void test_json_device(void)
{
	struct ublksrv_ctrl_dev_info info = {
		.nr_hw_queues = 2, .queue_depth = 64, .state = UBLK_S_DEV_QUIESCED,
		.ublksrv_pid = 4242, .dev_id = 3,
		.flags = UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_REISSUE |
			 UBLK_F_CMD_IOCTL_ENCODE | UBLK_F_USER_COPY | (1ULL << 62),
	};
	struct ublk_params params = { .types = UBLK_PARAM_TYPE_BASIC };
	struct device_case c = { 3, &info, &params, "/dev/shm/ublk-mem-3",
				 "ok compressed=1 orig_data_size=8192 mem_used_total=4096 reads=7" };
	char buf[1024], want[512];

	use_test_passwd();
	params.basic.dev_sectors = 64 * MiB >> 9;
	params.basic.logical_bs_shift = 12;
	CHECK_STR(printed(buf, sizeof(buf), print_json_device, &c),
		  "{\"id\":3,\"device\":\"/dev/ublkb3\",\"state\":\"recoverable\",\"pid\":4242,"
		  "\"owner_uid\":0,\"owner_gid\":0,\"owner\":\"root\",\"size\":67108864,\"block_size\":4096,\"queues\":2,\"depth\":64,"
		  "\"copy_mode\":\"user_copy\",\"recoverable\":true,\"flags\":[\"USER_RECOVERY\","
		  "\"USER_RECOVERY_REISSUE\",\"CMD_IOCTL_ENCODE\",\"USER_COPY\",\"bit-62\"],"
		  "\"zoned\":null,\"store\":\"/dev/shm/ublk-mem-3\",\"stats\":{\"compressed\":true,"
		  "\"orig_data_size\":8192,\"mem_used_total\":4096,\"reads\":7}}",
		  "json_device: a recoverable device with its store and its server's stats");
	info.flags = UBLK_F_NEED_GET_DATA;
	info.state = UBLK_S_DEV_LIVE;
	info.ublksrv_pid = getpid();
	params.types = 0;
	c.store = NULL;
	c.stats = NULL;
	snprintf(want, sizeof(want),
		 "{\"id\":3,\"device\":\"/dev/ublkb3\",\"state\":\"live\",\"pid\":%d,"
		 "\"owner_uid\":4000000000,\"owner_gid\":7,\"owner\":null,\"size\":null,\"block_size\":null,\"queues\":2,\"depth\":64,"
		 "\"copy_mode\":\"get_data\",\"recoverable\":false,"
		 "\"flags\":[\"NEED_GET_DATA\"],\"zoned\":null,\"store\":null,\"stats\":null}",
		 (int)getpid());
	info.owner_uid = 4000000000U;
	info.owner_gid = 7;
	CHECK_STR(printed(buf, sizeof(buf), print_json_device, &c), want,
		  "json_device: live, no size without parameters, no store, get_data");
	c.info = NULL;
	c.params = NULL;
	CHECK_STR(printed(buf, sizeof(buf), print_json_device, &c),
		  "{\"id\":3,\"device\":\"/dev/ublkb3\",\"state\":\"removed\",\"pid\":null,"
		  "\"owner_uid\":null,\"owner_gid\":null,\"owner\":null,\"size\":null,\"block_size\":null,\"queues\":null,\"depth\":null,"
		  "\"copy_mode\":null,\"recoverable\":null,\"flags\":[],\"zoned\":null,\"store\":null,"
		  "\"stats\":null}",
		  "json_device: an id held for a removed device");
	CHECK_STR(printed(buf, sizeof(buf), print_json_private, NULL),
		  "{\"id\":5,\"device\":\"/dev/ublkb5\",\"state\":\"private\",\"pid\":null,"
		  "\"owner_uid\":1000,\"owner_gid\":null,\"owner\":\"alice\",\"size\":null,"
		  "\"block_size\":null,\"queues\":null,\"depth\":null,\"copy_mode\":null,"
		  "\"recoverable\":null,\"flags\":[],\"zoned\":null,\"store\":null,\"stats\":null}",
		  "json: another user's device, its owner named");
	undo_test_passwd();
}

/* ---- what goes to syslog, at which priority ---- */

static void test_log_priority(void)
{
	static const struct {
		const char *msg;
		int prio;
	} cases[] = {
		{ "warning: cannot set oom_score_adj to -900: Permission denied", LOG_WARNING },
		{ "memory is running out: 60 MiB available, 64 MiB kept in reserve; ...", LOG_WARNING },
		{ "ignoring signal 10 (User defined signal 1) from pid 1: ...", LOG_NOTICE },
		{ "memory for new writes is available again: writes succeed again", LOG_NOTICE },
		{ "/dev/ublkb0 was stopped by someone else; exiting", LOG_ERR },
		{ "queue 0: io_uring_enter: Bad address", LOG_ERR },
	};

	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		char name[128];

		snprintf(name, sizeof(name), "log_priority(\"%.40s...\") = %d", cases[i].msg,
			 cases[i].prio);
		CHECK_EQ(log_priority(cases[i].msg), cases[i].prio, name);
	}
}

/*
 * The logger: lines written on stderr's pipe reach the kernel log as one
 * record each, "<facility|priority>ublk-mem[PID]: message", the prefix
 * "ublk-mem: " dropped, a last line without newline too.  (Run against a
 * file standing in for /dev/kmsg; skipped where a syslog daemon listens,
 * since lines then go to it.)
 */
static void test_logger(void)
{
	char path[] = "/tmp/cli_test.kmsg.XXXXXX", buf[512], want[512];
	int fds[2], fd = mkstemp(path);

	if (syslog_listening()) {
		skip("logger to the kernel log", "a syslog daemon listens on /dev/log here");
		if (fd >= 0) {
			close(fd);
			unlink(path);
		}
		return;
	}
	if (!CHECK(fd >= 0 && pipe(fds) == 0, "a file and a pipe for the logger", "%s",
		   strerror(errno)))
		return;
	service.kmsg_fd = fd;
	service.log_fd = fds[0];
	CHECK(write(fds[1], "ublk-mem: ignoring signal 10 (x)\nublk-mem: device 3 fa", 54) == 54 &&
	      write(fds[1], "iled\nno prefix", 14) == 14, "writing lines to the logger's pipe",
	      "%s", strerror(errno));
	close(fds[1]);
	logger_thread(NULL);	/* until the pipe's end, here and now */
	snprintf(want, sizeof(want),
		 "<29>ublk-mem[%d]: ignoring signal 10 (x)\n<27>ublk-mem[%d]: device 3 failed\n"
		 "<27>ublk-mem[%d]: no prefix\n", (int)getpid(), (int)getpid(), (int)getpid());
	CHECK_STR(slurp(path, buf, sizeof(buf)), want,
		  "the logger: one kernel log record per line, with priority and pid");
	close(fds[0]);
	close(fd);
	service.kmsg_fd = service.log_fd = -1;
	unlink(path);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_parse_size();
	test_refuse_config();
	test_parse_args_defaults();
	test_parse_args_options();
	test_parse_args_store();
	test_small_parsers();
	test_format_size();
	test_state_name();
	test_feature_use();
	test_config_of();
	test_paths();
	test_record_remove_store();
	test_parse_args_service();
	test_absolute_path();
	test_pidfile();
	test_notify();
	test_json_string();
	test_json_device();
	test_owner_name();
	test_parse_node();
	test_log_priority();
	test_logger();

	return check_summary("cli_test");
}
