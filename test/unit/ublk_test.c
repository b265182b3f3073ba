/*
 * ublk_test.c - unit tests for the kernel-facing rules in ublk.c and
 * ublk_io.c that need no kernel: what a GET_FEATURES answer allows and
 * what no driver serves, the flags ADD_DEV asks for, the feature tables,
 * the bounce buffer sizes, the user_data packing and the USER_COPY
 * offsets.
 *
 * The GET_FEATURES answers are those of real releases (from the driver's
 * history): 6.5 answered 0xfe, 6.6 to 6.12 0x1fe, 7.3 0x1fffff; and a
 * driver without a flag a backport left out.  ublk.c and ublk_io.c are
 * included whole, so their static functions can be called.
 *
 * Each check prints one line; exit status 0 all passed, 1 a check failed.
 */
#include "../../ublk.c"
#include "../../ublk_io.c"
#include "check.h"

/* A check of one number against the value it should have. */
static bool check_eq(int line, long long got, long long want, const char *name)
{
	return check(line, got == want, name, "got %lld, want %lld", got, want);
}

#define CHECK_EQ(got, want, name) \
	check_eq(__LINE__, (long long)(got), (long long)(want), (name))

#define FEATURES_6_5	0xfeULL
#define FEATURES_6_12	0x1feULL
#define FEATURES_7_3	0x1fffffULL

/* ublk_config_check() on @cfg and @features: the conflict, *missing set. */
static enum ublk_conflict check_cfg(struct ublk_config cfg, uint64_t features, uint64_t *missing)
{
	if (!cfg.depth)
		cfg.depth = 128;
	*missing = 0;
	return ublk_config_check(&cfg, features, missing);
}

/*
 * ublk_config_check(): what a GET_FEATURES answer allows, and what no
 * driver serves, whatever it offers.  (The words for each are options.c's,
 * tested in cli_test.)
 */
static void test_config_check(void)
{
	const struct ublk_config get_data = { .copy_mode = UBLK_COPY_GET_DATA };
	const struct ublk_config user_copy = { .copy_mode = UBLK_COPY_USER };
	const struct ublk_config zero_copy = { .copy_mode = UBLK_COPY_ZERO, .copy_mode_set = true };
	const struct ublk_config rec = { .copy_mode = UBLK_COPY_GET_DATA, .recoverable = true };
	const struct ublk_config threads = { .copy_mode = UBLK_COPY_GET_DATA, .queue_threads = 2 };
	const struct ublk_config batch = { .copy_mode = UBLK_COPY_GET_DATA,
					   .io_path = UBLK_IO_PATH_BATCH };
	struct ublk_config c;
	uint64_t missing;

	CHECK_EQ(check_cfg(get_data, FEATURES_6_12, &missing), UBLK_CONFIG_OK, "6.12 serves get_data");
	CHECK_EQ(check_cfg(rec, FEATURES_6_12, &missing), UBLK_CONFIG_OK, "6.12 serves --recoverable");
	CHECK_EQ(check_cfg(user_copy, FEATURES_6_5, &missing), UBLK_CONFIG_OK, "6.5 serves user_copy");
	/* A driver whose backport left USER_COPY out. */
	CHECK(check_cfg(user_copy, FEATURES_6_12 & ~UBLK_F_USER_COPY, &missing) == UBLK_LACKS_FLAG &&
	      missing == UBLK_F_USER_COPY, "no USER_COPY: user_copy lacks exactly that flag",
	      "missing %#llx", (unsigned long long)missing);
	CHECK(check_cfg(rec, FEATURES_6_12 & ~UBLK_F_USER_RECOVERY, &missing) == UBLK_LACKS_FLAG &&
	      missing == UBLK_F_USER_RECOVERY, "no USER_RECOVERY: --recoverable lacks it",
	      "missing %#llx", (unsigned long long)missing);
	CHECK(check_cfg(zero_copy, FEATURES_6_12, &missing) == UBLK_LACKS_FLAG &&
	      missing == UBLK_F_AUTO_BUF_REG, "6.12: zero_copy lacks AUTO_BUF_REG",
	      "missing %#llx", (unsigned long long)missing);
	CHECK_EQ(check_cfg(zero_copy, FEATURES_7_3, &missing), UBLK_CONFIG_OK, "7.3 serves zero_copy");
	CHECK(check_cfg(threads, FEATURES_6_12, &missing) == UBLK_LACKS_FLAG &&
	      missing == UBLK_F_PER_IO_DAEMON, "6.12: two threads per queue lack PER_IO_DAEMON",
	      "missing %#llx", (unsigned long long)missing);
	/* The batched path: bounce unless told, and what it never takes. */
	CHECK_EQ(check_cfg(batch, FEATURES_7_3, &missing), UBLK_CONFIG_OK,
		 "7.3: --io-path batch alone is served (in bounce mode)");
	CHECK(check_cfg(batch, FEATURES_6_12, &missing) == UBLK_LACKS_FLAG &&
	      missing == UBLK_F_BATCH_IO, "6.12: --io-path batch lacks BATCH_IO",
	      "missing %#llx", (unsigned long long)missing);
	c = batch;
	c.copy_mode_set = true;
	CHECK_EQ(check_cfg(c, ~0ULL, &missing), UBLK_BATCH_NO_GET_DATA,
		 "batch with an explicit get_data: no driver serves it");
	c.copy_mode = UBLK_COPY_ZERO;
	CHECK_EQ(check_cfg(c, ~0ULL, &missing), UBLK_BATCH_NO_ZERO_COPY,
		 "batch with zero_copy: no driver serves it");
	c = batch;
	c.queue_threads = 2;
	CHECK_EQ(check_cfg(c, ~0ULL, &missing), UBLK_BATCH_NO_THREADS,
		 "batch with two threads per queue: no driver serves it");
	c = batch;
	c.depth = 1;
	CHECK_EQ(check_cfg(c, ~0ULL, &missing), UBLK_BATCH_DEPTH_1, "batch at depth 1: refused");
	c = threads;
	c.queue_threads = 3;
	c.depth = 2;
	CHECK_EQ(check_cfg(c, ~0ULL, &missing), UBLK_THREADS_OVER_DEPTH,
		 "three threads on a queue of depth 2: refused");
}

/*
 * An ordinary user's device: what the driver refuses or drops for it is
 * refused before ADD_DEV, on every driver; the default path is served,
 * and ADD_DEV asks for UNPRIVILEGED_DEV.
 */
static void test_unprivileged(void)
{
	const struct ublk_config plain = { .copy_mode = UBLK_COPY_GET_DATA, .unprivileged = true };
	struct ublk_config c;
	uint64_t missing;

	CHECK_EQ(check_cfg(plain, FEATURES_6_12, &missing), UBLK_CONFIG_OK,
		 "6.12 serves a user's get_data device");
	CHECK_EQ(check_cfg(plain, FEATURES_7_3, &missing), UBLK_CONFIG_OK,
		 "7.3 serves a user's get_data device");
	CHECK(config_flags(&plain) & UBLK_F_UNPRIVILEGED_DEV, "ADD_DEV asks for UNPRIVILEGED_DEV",
	      "flags %#llx", (unsigned long long)config_flags(&plain));
	c = plain;
	c.unprivileged = false;
	CHECK(!(config_flags(&c) & UBLK_F_UNPRIVILEGED_DEV), "root's device is not unprivileged",
	      "flags %#llx", (unsigned long long)config_flags(&c));
	c = plain;
	c.copy_mode = UBLK_COPY_BOUNCE;
	CHECK_EQ(check_cfg(c, FEATURES_6_12, &missing), UBLK_CONFIG_OK, "a user's bounce device");
	c.io_path = UBLK_IO_PATH_BATCH;
	CHECK_EQ(check_cfg(c, FEATURES_7_3, &missing), UBLK_CONFIG_OK,
		 "7.3: a user's device on the batched path");
	c = plain;
	c.recoverable = true;
	CHECK_EQ(check_cfg(c, FEATURES_7_3, &missing), UBLK_UNPRIV_NO_RECOVERY,
		 "a user's --recoverable: refused (the driver drops USER_RECOVERY)");
	c = plain;
	c.copy_mode = UBLK_COPY_USER;
	CHECK_EQ(check_cfg(c, FEATURES_6_12, &missing), UBLK_UNPRIV_NO_USER_COPY,
		 "a user's user_copy: refused (the driver refuses USER_COPY)");
	c.copy_mode = UBLK_COPY_ZERO;
	c.copy_mode_set = true;
	CHECK_EQ(check_cfg(c, FEATURES_7_3, &missing), UBLK_UNPRIV_NO_ZERO_COPY,
		 "7.3: a user's zero_copy: refused (the driver refuses AUTO_BUF_REG)");
	c = plain;
	c.zone_size = 8 << 20;
	CHECK_EQ(check_cfg(c, FEATURES_7_3, &missing), UBLK_UNPRIV_NO_ZONED,
		 "a user's --zoned: refused (zones are served in user_copy mode)");
	CHECK(check_cfg(plain, FEATURES_6_12 & ~UBLK_F_UNPRIVILEGED_DEV, &missing) ==
	      UBLK_LACKS_FLAG && missing == UBLK_F_UNPRIVILEGED_DEV,
	      "a driver without UNPRIVILEGED_DEV: a user lacks exactly that flag",
	      "missing %#llx", (unsigned long long)missing);
	CHECK((UBLK_ROOT_ONLY_FLAGS & (UBLK_F_USER_COPY | UBLK_F_AUTO_BUF_REG |
				       UBLK_F_USER_RECOVERY)) ==
	      (UBLK_F_USER_COPY | UBLK_F_AUTO_BUF_REG | UBLK_F_USER_RECOVERY) &&
	      !(UBLK_ROOT_ONLY_FLAGS & (UBLK_F_NEED_GET_DATA | UBLK_F_BATCH_IO |
					UBLK_F_UPDATE_SIZE | UBLK_F_UNPRIVILEGED_DEV)),
	      "root-only flags: user copy, zero copy, recovery; not get_data, batches, resizing",
	      "%#llx", (unsigned long long)UBLK_ROOT_ONLY_FLAGS);
}

/* The optional flags: asked for exactly where the driver offers them. */
static void test_optional_flags(void)
{
	const struct ublk_config plain = { .copy_mode = UBLK_COPY_GET_DATA };
	const struct ublk_config rec = { .copy_mode = UBLK_COPY_GET_DATA, .recoverable = true };

	CHECK(config_optional_flags(&plain, FEATURES_6_12) == 0 &&
	      config_optional_flags(&rec, FEATURES_6_12) == 0,
	      "6.12: no optional flag is asked for", "plain %#llx, recoverable %#llx",
	      (unsigned long long)config_optional_flags(&plain, FEATURES_6_12),
	      (unsigned long long)config_optional_flags(&rec, FEATURES_6_12));
	CHECK(config_optional_flags(&plain, FEATURES_7_3) ==
	      (UBLK_F_NO_AUTO_PART_SCAN | UBLK_F_UPDATE_SIZE),
	      "7.3: NO_AUTO_PART_SCAN and UPDATE_SIZE for a plain device", "%#llx",
	      (unsigned long long)config_optional_flags(&plain, FEATURES_7_3));
	CHECK(config_optional_flags(&rec, FEATURES_7_3) ==
	      (UBLK_F_NO_AUTO_PART_SCAN | UBLK_F_UPDATE_SIZE | UBLK_F_QUIESCE),
	      "7.3: and QUIESCE for a recoverable one", "%#llx",
	      (unsigned long long)config_optional_flags(&rec, FEATURES_7_3));
}

/* Every known flag has a name and a release; unknown bits have neither. */
static void test_feature_tables(void)
{
	unsigned named = 0, bad = 64;

	for (unsigned bit = 0; bit < 64; bit++) {
		const char *name = ublk_feature_name(bit), *since = ublk_feature_since(bit);

		named += name != NULL;
		if (bad == 64 && (name != NULL) != (strcmp(since, "?") != 0))
			bad = bit;
	}
	CHECK(bad == 64, "a release for every named flag, none for unnamed bits",
	      "bit %u: name %s, release %s", bad, bad < 64 && ublk_feature_name(bad) ?
	      ublk_feature_name(bad) : "-", bad < 64 ? ublk_feature_since(bad) : "-");
	CHECK(named == 21 && (FEATURES_7_3 >> named) == 0,
	      "the tables cover every flag of 7.3's GET_FEATURES", "%u named", named);
	CHECK(!strcmp(ublk_feature_name(7), "USER_COPY") && !strcmp(ublk_feature_since(7), "6.5") &&
	      !strcmp(ublk_feature_name(17), "SAFE_STOP_DEV") && !strcmp(ublk_feature_since(17), "7.0"),
	      "names and releases line up", "bit 7 %s %s, bit 17 %s %s", ublk_feature_name(7),
	      ublk_feature_since(7), ublk_feature_name(17), ublk_feature_since(17));
}

/* Bounce buffers are all allocated at start: at most 32 MiB a queue. */
static void test_buffer_bytes(void)
{
	unsigned page = (unsigned)sysconf(_SC_PAGESIZE);

	CHECK(buffer_bytes(UBLK_COPY_GET_DATA, false, 4096) == UBLK_MAX_IO_BYTES &&
	      buffer_bytes(UBLK_COPY_USER, false, 128) == UBLK_MAX_IO_BYTES,
	      "get_data and user_copy keep 512 KiB requests", "%u, %u",
	      buffer_bytes(UBLK_COPY_GET_DATA, false, 4096), buffer_bytes(UBLK_COPY_USER, false, 128));
	CHECK(buffer_bytes(UBLK_COPY_BOUNCE, false, 64) == UBLK_MAX_IO_BYTES &&
	      buffer_bytes(UBLK_COPY_BOUNCE, false, 128) == 256 * 1024 &&
	      buffer_bytes(UBLK_COPY_BOUNCE, false, 4096) == 8192,
	      "bounce: 32 MiB a queue, in whole pages", "64: %u, 128: %u, 4096: %u",
	      buffer_bytes(UBLK_COPY_BOUNCE, false, 64), buffer_bytes(UBLK_COPY_BOUNCE, false, 128),
	      buffer_bytes(UBLK_COPY_BOUNCE, false, 4096));
	CHECK(buffer_bytes(UBLK_COPY_BOUNCE, false, 4096) % page == 0 &&
	      buffer_bytes(UBLK_COPY_BOUNCE, false, 4096) >= page,
	      "bounce buffers are at least a page", "%u", buffer_bytes(UBLK_COPY_BOUNCE, false, 4096));
	CHECK(buffer_bytes(UBLK_COPY_GET_DATA, true, 128) == 64 * 1024 &&
	      buffer_bytes(UBLK_COPY_USER, true, 16) == UBLK_MAX_IO_BYTES,
	      "a device that may be swapped to: 8 MiB a queue", "128: %u, 16: %u",
	      buffer_bytes(UBLK_COPY_GET_DATA, true, 128), buffer_bytes(UBLK_COPY_USER, true, 16));
}

/* user_data and the USER_COPY file offset keep their fields apart. */
static void test_packing(void)
{
	struct ublk_dev dev = { 0 };
	struct ublk_queue q = { .dev = &dev, .q_id = 3 };
	uint64_t ud = io_user_data(4095, IO_COMMIT);

	CHECK(user_data_tag(ud) == 4095 && user_data_kind(ud) == IO_COMMIT,
	      "user_data: tag and kind come back", "tag %u kind %d", user_data_tag(ud),
	      (int)user_data_kind(ud));
	/* Tag 64 sets bit 31 of the tag field's offset: added, not OR-ed. */
	CHECK(user_copy_pos(&q, 64) == (off_t)(0x80000000ULL + (3ULL << 41) + (64ULL << 25)),
	      "USER_COPY offset of queue 3, tag 64", "%#llx",
	      (unsigned long long)user_copy_pos(&q, 64));
	CHECK(spin_time(UBLK_POLL_OFF, true, true) == 0 && spin_time(0, false, false) == 0 &&
	      spin_time(0, true, false) == BUSY_SPIN_US && spin_time(500, true, false) == 500,
	      "spin_time: off, idle, busy, --poll for a lone request", "%u %u %u %u",
	      spin_time(UBLK_POLL_OFF, true, true), spin_time(0, false, false),
	      spin_time(0, true, false), spin_time(500, true, false));
	CHECK(spin_time(500, true, true) == BUSY_SPIN_US && spin_time(50, true, true) == 50,
	      "spin_time: --poll after several requests spins no longer than the busy spin",
	      "%u %u", spin_time(500, true, true), spin_time(50, true, true));
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_config_check();
	test_unprivileged();
	test_optional_flags();
	test_feature_tables();
	test_buffer_bytes();
	test_packing();
	return check_summary("ublk_test");
}
