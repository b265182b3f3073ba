/*
 * swap_check.c - fill more anonymous memory than the machine has with
 * pages of known contents, then read every page back, for the swap test.
 *
 *   swap_check [--wait] [--one-pass] MIB
 *
 * Maps MIB MiB of private anonymous memory and writes every 4 KiB page
 * of it: its first half is a line naming the page's index followed by
 * text (words and numbers in lines, as logs are) taken from a place that
 * depends on the index, its second half zeros but for the index in its
 * last 8 bytes. Such a page compresses 3-4x and is never one repeated
 * word, so a compressing swap device stores it compressed. With more
 * pages than RAM, the kernel has to swap most of them out.
 *
 * Then every page is read back and compared with what was written, twice:
 * in order, then in a strided order that visits all pages far apart
 * (--one-pass: in order only). It
 * prints a line per 128 MiB dirtied and per pass ("dirtied N MiB",
 * "verified N pages"). With --wait it stops once every page is dirtied,
 * says "waiting", and goes on when a line (or end of file) arrives on
 * stdin: a test reads the swap device's statistics in between.
 *
 * Exit status 0 when every page read back as written; 1 naming the first
 * page that did not (its index and the first byte offset that differs),
 * or when the memory cannot be had; 2 on a usage error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE 4096u
#define TEXT_BYTES (PAGE / 2)
#define CORPUS_BYTES (64u * 1024)
#define REPORT_MIB 128u

static char corpus[CORPUS_BYTES];

/* A fixed xorshift generator: the same text on every run. */
static uint64_t next_random(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Fill corpus[] with lines of words and numbers. */
static void make_corpus(void)
{
	static const char *const words[] = {
		"the", "of", "and", "a", "to", "in", "is", "that", "for", "it", "as",
		"with", "was", "on", "by", "block", "device", "page", "memory", "swap",
		"kernel", "request", "queue", "write", "read", "server", "compressed",
	};
	const size_t nwords = sizeof(words) / sizeof(words[0]);
	uint64_t s = 0x9e3779b97f4a7c15u;
	size_t at = 0;
	unsigned line = 0;

	while (at < CORPUS_BYTES) {
		char buf[128];
		int n = snprintf(buf, sizeof(buf), "%06u %s %s %s %" PRIu64 " %s\n", line++,
				 words[next_random(&s) % nwords], words[next_random(&s) % nwords],
				 words[next_random(&s) % nwords], next_random(&s) % 100000,
				 words[next_random(&s) % nwords]);
		size_t len = (size_t)n < CORPUS_BYTES - at ? (size_t)n : CORPUS_BYTES - at;

		memcpy(corpus + at, buf, len);
		at += len;
	}
}

/* The contents of page @i. */
static void make_page(unsigned char *p, uint64_t i)
{
	size_t start = (size_t)((i * 2654435761u) % (CORPUS_BYTES - TEXT_BYTES));
	uint64_t tag = i ^ 0x5357415043484bULL;	/* "SWAPCHK" */
	int n;

	n = snprintf((char *)p, TEXT_BYTES, "page %012" PRIu64 "\n", i);
	memcpy(p + n, corpus + start, TEXT_BYTES - (size_t)n);
	memset(p + TEXT_BYTES, 0, PAGE - TEXT_BYTES - sizeof(tag));
	memcpy(p + PAGE - sizeof(tag), &tag, sizeof(tag));
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Check page @i at @p; on a difference say where and return -1. */
static int check_page(const unsigned char *p, uint64_t i, const char *pass)
{
	unsigned char want[PAGE];
	size_t off;

	make_page(want, i);
	if (memcmp(p, want, PAGE) == 0)
		return 0;
	/* They differ: if the first PAGE - 1 bytes agree, the last does not. */
	for (off = 0; off < PAGE - 1 && p[off] == want[off]; off++)
		;
	fprintf(stderr,
		"swap_check: %s pass: page %" PRIu64 " (offset %" PRIu64 " in the mapping) "
		"differs at byte %zu: read 0x%02x, wrote 0x%02x\n",
		pass, i, i * PAGE, off, p[off], want[off]);
	printf("bad page %" PRIu64 " at byte %zu\n", i, off);
	return -1;
}

/* A stride coprime with @n, near 1/64 of it: consecutive visits far apart. */
static uint64_t stride_for(uint64_t n)
{
	uint64_t s = n / 64 | 1;

	for (;; s += 2) {
		uint64_t a = n, b = s;

		while (b) {
			uint64_t t = a % b;

			a = b;
			b = t;
		}
		if (a == 1)
			return s;
	}
}

/* Wait for a line or end of file on stdin. */
static void wait_for_go(void)
{
	int c;

	printf("waiting\n");
	fflush(stdout);
	do
		c = getchar();
	while (c != '\n' && c != EOF);
}

int main(int argc, char **argv)
{
	int wait = 0, one_pass = 0, a = 1;
	uint64_t mib, pages, i, k, stride;
	unsigned char *mem;
	char *end;
	double t0;

	for (; a < argc && argv[a][0] == '-'; a++) {
		if (strcmp(argv[a], "--wait") == 0)
			wait = 1;
		else if (strcmp(argv[a], "--one-pass") == 0)
			one_pass = 1;
		else
			break;
	}
	if (argc != a + 1) {
		fprintf(stderr, "usage: swap_check [--wait] [--one-pass] MIB\n");
		return 2;
	}
	errno = 0;
	mib = strtoull(argv[a], &end, 10);
	if (errno || *end || mib == 0 || mib > (SIZE_MAX >> 21)) {
		fprintf(stderr, "swap_check: bad size '%s' (MiB)\n", argv[a]);
		return 2;
	}
	pages = mib * (1024 * 1024 / PAGE);
	mem = mmap(NULL, (size_t)(mib << 20), PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED) {
		fprintf(stderr, "swap_check: cannot map %" PRIu64 " MiB: %s\n", mib, strerror(errno));
		return 1;
	}
	make_corpus();

	t0 = now();
	for (i = 0; i < pages; i++) {
		make_page(mem + i * PAGE, i);
		if ((i + 1) % (REPORT_MIB * 256) == 0 || i + 1 == pages) {
			printf("dirtied %" PRIu64 " MiB\n", (i + 1) / 256);
			fflush(stdout);
		}
	}
	printf("dirtied all %" PRIu64 " pages in %.1f s\n", pages, now() - t0);
	if (wait)
		wait_for_go();

	t0 = now();
	for (i = 0; i < pages; i++)
		if (check_page(mem + i * PAGE, i, "forward"))
			return 1;
	printf("verified %" PRIu64 " pages in order in %.1f s\n", pages, now() - t0);
	fflush(stdout);
	if (one_pass)
		return 0;

	t0 = now();
	stride = stride_for(pages);
	for (k = 0, i = 0; k < pages; k++, i = (i + stride) % pages)
		if (check_page(mem + i * PAGE, i, "strided"))
			return 1;
	printf("verified %" PRIu64 " pages with a stride of %" PRIu64 " in %.1f s\n",
	       pages, stride, now() - t0);
	return 0;
}
