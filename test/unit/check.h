/*
 * check.h - the check and report helpers shared by the host unit tests
 * (uring_test.c, mem_test.c, cli_test.c), plus a few helpers for random
 * test data.
 *
 * It provides:
 *   - CHECK(ok, name, fmt, ...): one result line, "ok - name" or
 *     "FAIL - name: details (line N)"; CHECK_RES() for a result that is
 *     >= 0 or -errno against the one expected; res_name() to spell one out;
 *   - skip(name, why): a "skip - name: why" line for one check that
 *     cannot run here (counted apart: a skip is never a pass);
 *   - check_prefix: put before every name, for a test run more than once
 *     ("small pages: "), "" by default;
 *   - struct first_error, note() and CHECK_NO_ERROR(): a loop of many
 *     small checks keeps only its first failure and reports it as one line;
 *   - check_summary(prog): the closing "# prog: N checks, M failed,
 *     K skipped" line, returning the exit status;
 *   - rand64(), rand_below(), fill_random(): xorshift64* from a fixed seed,
 *     so every run draws the same numbers;
 *   - first_diff(), ARRAY_SIZE().
 *
 * Exit status convention of every test program: 0 all checks passed
 * (CHECK_EXIT_PASS), 1 a check failed (CHECK_EXIT_FAIL), 77 the whole
 * test was skipped because what it tests is not available here
 * (CHECK_EXIT_SKIP; test/run-all.sh counts it as a skip).
 *
 * Everything is static, for one test program per translation unit; the
 * functions are inline so that a program need not use all of them.
 */
#ifndef UBLK_MEM_TEST_CHECK_H
#define UBLK_MEM_TEST_CHECK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define CHECK_EXIT_PASS	0
#define CHECK_EXIT_FAIL	1
#define CHECK_EXIT_SKIP	77

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

/* ---- checks ---- */

static unsigned n_checks, n_failed, n_skipped;
static const char *check_prefix = "";

/* Print one result line; on failure @fmt says what was seen instead. */
static inline bool __attribute__((format(printf, 4, 5)))
check(int line, bool ok, const char *name, const char *fmt, ...)
{
	va_list ap;

	n_checks++;
	if (ok) {
		printf("ok - %s%s\n", check_prefix, name);
		return true;
	}
	n_failed++;
	printf("FAIL - %s%s: ", check_prefix, name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" (line %d)\n", line);
	return false;
}

#define CHECK(ok, name, ...)	check(__LINE__, (ok), (name), __VA_ARGS__)

static inline const char *res_name(int res)
{
	return res < 0 ? strerror(-res) : "success";
}

/* A check of a result that is >= 0 or -errno against the one expected. */
static inline bool check_res(int line, int got, int want, const char *name)
{
	return check(line, got == want, name, "got %d (%s), want %d (%s)",
		     got, res_name(got), want, res_name(want));
}

#define CHECK_RES(got, want, name) \
	check_res(__LINE__, (got), (want), (name))

static inline void skip(const char *name, const char *why)
{
	n_skipped++;
	printf("skip - %s%s: %s\n", check_prefix, name, why);
}

/*
 * Loops make many small checks; they record only the first thing that
 * went wrong, which then becomes the details of one check line.
 */
struct first_error {
	bool set;
	char text[200];
};

static inline void __attribute__((format(printf, 2, 3)))
note(struct first_error *e, const char *fmt, ...)
{
	va_list ap;

	if (e->set)
		return;
	e->set = true;
	va_start(ap, fmt);
	vsnprintf(e->text, sizeof(e->text), fmt, ap);
	va_end(ap);
}

#define CHECK_NO_ERROR(e, name)	CHECK(!(e).set, (name), "%s", (e).text)

/* Print the closing count for @prog; returns the exit status to use. */
static inline int check_summary(const char *prog)
{
	printf("# %s: %u checks, %u failed, %u skipped\n", prog, n_checks, n_failed,
	       n_skipped);
	return n_failed ? CHECK_EXIT_FAIL : CHECK_EXIT_PASS;
}

/* ---- random data and comparisons ---- */

/* xorshift64*: a fixed seed, so every run draws the same numbers. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static inline uint64_t rand64(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static inline uint64_t rand_below(uint64_t n)
{
	return rand64() % n;
}

static inline void fill_random(void *buf, size_t len)
{
	unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)rand64();
}

/* Index of the first byte where @a and @b differ, or @len if none. */
static inline size_t first_diff(const void *a, const void *b, size_t len)
{
	const unsigned char *x = a, *y = b;
	size_t i = 0;

	while (i < len && x[i] == y[i])
		i++;
	return i;
}

#endif /* UBLK_MEM_TEST_CHECK_H */
