/*
 * lz4_test.c - unit tests for the LZ4 block codec in lz4.c.
 *
 *   - round trips: zeros, one repeated byte, a repeated 8-byte word,
 *     patterns of every short period, random bytes, text, a binary from
 *     /bin, at the sizes where the format changes (0, 1, 12, 13, the
 *     length nibble's 15, 255 steps, 4095, 4096, 65536) and at random
 *     sizes; every block must keep the end-of-block rules and decode to
 *     its input in a buffer of exactly its size, and not in one less;
 *   - a block the reference lz4 made, byte for byte;
 *   - cap: lz4_compress() gives 0 below the block's size and the block at
 *     it, and writes nothing past cap (guard bytes, and exactly-sized heap
 *     buffers for AddressSanitizer);
 *   - the decoder against hand-made malformed blocks, then fuzzed: byte
 *     flips, truncations at every length, garbage, length fields of 255s,
 *     zero offsets and offsets before the output's start; and random
 *     well-formed blocks of sequences our compressor never writes, into
 *     every room near their size.  Each block and its output buffer are
 *     heap buffers of exactly their size, so under -fsanitize=address any
 *     stray read or write stops the test.
 *
 * Deterministic (check.h's fixed seed).  Build and run from the top:
 *   cc -std=gnu11 -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
 *      -I. -Itest -o /tmp/lz4_test test/unit/lz4_test.c lz4.c && /tmp/lz4_test
 * Exit status: 0 all passed, 1 a check failed.
 */
#include "lz4.h"
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned char u8;

enum kind { ZEROS, ONE_BYTE, WORD, PERIODIC, RANDOM, TEXT, BINARY, NR_KINDS };

static const char *const kind_name[NR_KINDS] = {
	"zeros", "one byte", "8-byte word", "periodic", "random", "text", "binary",
};

static struct lz4_table table;

/* Up to 1 MiB of a real program, read once: /bin/sh, else ourselves. */
static u8 *binary;
static size_t binary_len;

/* ---- buffers and inputs ---- */

/* malloc() or stop: a test without memory cannot say anything. */
static void *xmalloc(size_t len)
{
	void *p = malloc(len ? len : 1);

	if (!p) {
		fprintf(stderr, "lz4_test: out of memory for %zu bytes\n", len);
		exit(CHECK_EXIT_FAIL);
	}
	return p;
}

/*
 * A heap buffer of exactly @len bytes (malloc(0) when empty), so that
 * AddressSanitizer reports a read or write one byte outside it.
 */
static u8 *exact_alloc(size_t len)
{
	u8 *p = malloc(len);

	if (!p)
		p = xmalloc(1);
	return p;
}

/* The same, holding a copy of @src. */
static u8 *exact_copy(const void *src, size_t len)
{
	u8 *p = exact_alloc(len);

	if (len)
		memcpy(p, src, len);
	return p;
}

/* Read up to @max bytes of @path; 0 or -1. */
static int load_file(const char *path, u8 **buf, size_t *len, size_t max)
{
	FILE *f = fopen(path, "rb");

	if (!f)
		return -1;
	*buf = xmalloc(max);
	*len = fread(*buf, 1, max, f);
	fclose(f);
	if (*len < 65536) {
		free(*buf);
		return -1;
	}
	return 0;
}

/* Words strung into sentences: text that compresses like text. */
static void fill_text(u8 *buf, size_t len)
{
	static const char *const words[] = {
		"the", "of", "and", "to", "in", "a", "is", "that", "for", "it",
		"block", "device", "page", "memory", "compressed", "request",
		"queue", "kernel", "userspace", "ring", "with", "as", "on", "by",
	};
	size_t i = 0;

	while (i < len) {
		const char *w = words[rand_below(ARRAY_SIZE(words))];
		size_t n = strlen(w);

		for (size_t j = 0; j < n && i < len; j++)
			buf[i++] = (u8)w[j];
		if (i < len)
			buf[i++] = rand_below(12) ? ' ' : (rand_below(2) ? '.' : '\n');
	}
}

/* Fill @buf with @len bytes of @kind; @period for PERIODIC (1..). */
static void make_input(enum kind kind, u8 *buf, size_t len, size_t period)
{
	uint64_t word = rand64();

	switch (kind) {
	case ZEROS:
		memset(buf, 0, len);
		break;
	case ONE_BYTE:
		memset(buf, 0xab, len);
		break;
	case WORD:
		for (size_t i = 0; i < len; i++)
			buf[i] = (u8)(word >> (i % 8 * 8));
		break;
	case PERIODIC:
		fill_random(buf, len < period ? len : period);
		for (size_t i = period; i < len; i++)
			buf[i] = buf[i - period];
		break;
	case RANDOM:
		fill_random(buf, len);
		break;
	case TEXT:
		fill_text(buf, len);
		break;
	case BINARY:
		memcpy(buf, binary + rand_below(binary_len - len + 1), len);
		break;
	default:
		break;
	}
}

/* ---- block rules ---- */

/* Read a length's extra bytes at comp[*p]; false if they run out. */
static bool parse_length(const u8 *comp, size_t n, size_t *p, size_t *len)
{
	u8 b;

	do {
		if (*p >= n)
			return false;
		b = comp[(*p)++];
		*len += b;
	} while (b == 255);
	return true;
}

/*
 * Walk the sequences of a block we made of @len bytes and check what the
 * reference decoder relies on: offsets within what was written, no match
 * starting in the last 12 bytes nor reaching into the last 5, the last
 * sequence literals only, the sizes adding up.  NULL if all hold.
 */
static const char *block_rules(const u8 *comp, size_t n, size_t len)
{
	size_t p = 0, pos = 0;

	for (;;) {
		size_t lit, off, ml;
		u8 token;

		if (p >= n)
			return "ends without a last literal run";
		token = comp[p++];
		lit = token >> 4;
		if (lit == 15 && !parse_length(comp, n, &p, &lit))
			return "literal length runs out";
		if (lit > n - p)
			return "literals run out";
		p += lit;
		pos += lit;
		if (p == n)
			break;
		if (n - p < 2)
			return "offset runs out";
		off = comp[p] | (size_t)comp[p + 1] << 8;
		p += 2;
		if (off == 0 || off > pos)
			return "offset outside the output";
		if (pos + 12 > len)
			return "a match starts in the last 12 bytes";
		ml = token & 15;
		if (ml == 15 && !parse_length(comp, n, &p, &ml))
			return "match length runs out";
		pos += ml + 4;
		if (pos + 5 > len)
			return "a match reaches into the last 5 bytes";
	}
	if (pos != len)
		return "decodes to a different size";
	if (len < 13 && n != 1 + len)
		return "a short input is not all literals";
	return NULL;
}

/* ---- round trips ---- */

/*
 * Compress @in (from a heap copy of exactly @len bytes) with room for the
 * worst case, check the block, and decode it into exactly @len bytes (and
 * fail to into one less); notes the first problem in @e.  Returns the
 * compressed size.
 */
static size_t round_trip(struct first_error *e, const char *what, const u8 *in,
			 size_t len)
{
	size_t bound = lz4_bound(len), n;
	u8 *src = exact_copy(in, len), *comp = xmalloc(bound), *block;
	u8 *out = exact_alloc(len);
	const char *broken;
	long got;

	n = lz4_compress(&table, src, len, comp, bound);
	if (n == 0 || n > bound) {
		note(e, "%s, %zu bytes: compressed to %zu (bound %zu)", what, len, n,
		     bound);
		goto out;
	}
	broken = block_rules(comp, n, len);
	if (broken) {
		note(e, "%s, %zu bytes: block breaks a rule: %s", what, len, broken);
		goto out;
	}
	block = exact_copy(comp, n);
	got = lz4_decompress(block, n, out, len);
	if (got != (long)len || memcmp(out, in, len))
		note(e, "%s, %zu bytes: decoded %ld bytes, first difference at %zu",
		     what, len, got, got < 0 ? 0 : first_diff(out, in, len));
	else if (len && lz4_decompress(block, n, out, len - 1) != -1)
		note(e, "%s, %zu bytes: decoded into %zu bytes of room", what, len,
		     len - 1);
	free(block);
out:
	free(out);
	free(comp);
	free(src);
	return n;
}

static void test_round_trips(void)
{
	static const size_t sizes[] = {
		0, 1, 2, 4, 5, 11, 12, 13, 14, 15, 16, 17, 31, 32, 64, 100,
		269, 270, 271, 524, 525, 1000, 4095, 4096, 4097, 65535, 65536,
	};
	static u8 in[65536];
	struct first_error e = { 0 };
	char name[80];

	for (enum kind k = 0; k < NR_KINDS; k++) {
		for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
			make_input(k, in, sizes[i], 3);
			round_trip(&e, kind_name[k], in, sizes[i]);
		}
		snprintf(name, sizeof(name), "round trips of %s at the edge sizes",
			 kind_name[k]);
		CHECK_NO_ERROR(e, name);
		e.set = false;
	}

	/* Every short period: matches that overlap their own output. */
	for (size_t period = 1; period <= 40; period++) {
		size_t len = 13 + rand_below(8192);

		make_input(PERIODIC, in, len, period);
		round_trip(&e, "periodic", in, len);
		make_input(PERIODIC, in, 4096, period);
		round_trip(&e, "periodic", in, 4096);
	}
	CHECK_NO_ERROR(e, "round trips of patterns of period 1 to 40");

	for (int i = 0; i < 400; i++) {
		enum kind k = (enum kind)rand_below(NR_KINDS);
		size_t len = rand_below(4) ? rand_below(4097) : rand_below(65537);

		make_input(k, in, len, 1 + rand_below(300));
		round_trip(&e, kind_name[k], in, len);
	}
	CHECK_NO_ERROR(e, "round trips of 400 random kinds and sizes");
}

/*
 * Matches of the lengths where the length field changes (the nibble's
 * 15 + 4, then each 255 more), in random bytes that match nowhere else.
 */
static void test_match_lengths(void)
{
	static const size_t lengths[] = {
		4, 5, 18, 19, 20, 273, 274, 275, 528, 529, 530, 2000,
	};
	static u8 in[8192];
	struct first_error e = { 0 };

	for (size_t i = 0; i < ARRAY_SIZE(lengths); i++) {
		size_t ml = lengths[i], at = 2500 + rand_below(100);

		fill_random(in, sizeof(in));
		memcpy(in + at, in + rand_below(2000), ml);
		round_trip(&e, "one match", in, at + ml + rand_below(40));
	}
	CHECK_NO_ERROR(e, "round trips of single matches of edge lengths");
}

/* A block the reference made (lz4 -1 v1.9.4): we make the same bytes. */
static void test_reference_block(void)
{
	static const char text[] = "LZ4 compresses this sentence, and this "
		"sentence, and this sentence again; the end.";
	static const u8 want[] = {
		0xff, 0x12, 0x4c, 0x5a, 0x34, 0x20, 0x63, 0x6f, 0x6d, 0x70, 0x72, 0x65,
		0x73, 0x73, 0x65, 0x73, 0x20, 0x74, 0x68, 0x69, 0x73, 0x20, 0x73, 0x65,
		0x6e, 0x74, 0x65, 0x6e, 0x63, 0x65, 0x2c, 0x20, 0x61, 0x6e, 0x64, 0x13,
		0x00, 0x0e, 0xf0, 0x01, 0x20, 0x61, 0x67, 0x61, 0x69, 0x6e, 0x3b, 0x20,
		0x74, 0x68, 0x65, 0x20, 0x65, 0x6e, 0x64, 0x2e,
	};
	u8 comp[128], out[sizeof(text)];
	size_t n = lz4_compress(&table, text, sizeof(text) - 1, comp, sizeof(comp));
	long got;

	CHECK(n == sizeof(want) && !memcmp(comp, want, n),
	      "the reference's block for a sentence, byte for byte",
	      "%zu bytes, first difference at %zu", n, first_diff(comp, want, n));
	got = lz4_decompress(want, sizeof(want), out, sizeof(out));
	CHECK(got == (long)sizeof(text) - 1 && !memcmp(out, text, sizeof(text) - 1),
	      "the reference's block decodes", "got %ld", got);
}

/* ---- cap ---- */

#define GUARD	64

/*
 * Compress @in into room of @cap bytes twice: followed by guard bytes
 * that must stay untouched, and in a heap buffer of exactly @cap bytes.
 * Below the block's size @n it must give 0, at or above it the same
 * block @want.
 */
static void try_cap(struct first_error *e, const char *what, const u8 *in,
		    size_t len, const u8 *want, size_t n, size_t cap)
{
	u8 *guarded = xmalloc(cap + GUARD), *exact = exact_alloc(cap);
	u8 *src = exact_copy(in, len);
	size_t expect = cap < n ? 0 : n, got1, got2;

	memset(guarded, 0xa5, cap + GUARD);
	got1 = lz4_compress(&table, src, len, guarded, cap);
	got2 = lz4_compress(&table, src, len, exact, cap);
	for (size_t i = cap; i < cap + GUARD; i++) {
		if (guarded[i] != 0xa5) {
			note(e, "%s, cap %zu: wrote byte %zu", what, cap, i);
			break;
		}
	}
	if (got1 != expect || got2 != expect)
		note(e, "%s, cap %zu: returned %zu and %zu, want %zu", what, cap, got1,
		     got2, expect);
	else if (expect && (memcmp(guarded, want, n) || memcmp(exact, want, n)))
		note(e, "%s, cap %zu: a different block", what, cap);
	free(src);
	free(exact);
	free(guarded);
}

static void test_cap(void)
{
	static const size_t lens[] = { 0, 5, 13, 40, 300, 4096, 65536 };
	static u8 in[65536], want[70000];
	struct first_error e = { 0 };

	for (enum kind k = 0; k < NR_KINDS; k++) {
		for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
			size_t len = lens[i], n, cap;

			make_input(k, in, len, 7);
			n = lz4_compress(&table, in, len, want, sizeof(want));
			for (cap = 0; cap <= n + 2; cap++) {
				if (cap > 40 && cap + 40 < n)
					cap = n - 40;
				try_cap(&e, kind_name[k], in, len, want, n, cap);
			}
			for (int j = 0; j < 20; j++)
				try_cap(&e, kind_name[k], in, len, want, n,
					rand_below(n + 1));
		}
	}
	CHECK_NO_ERROR(e, "cap: 0 below the block's size, the block at it, "
		       "no byte past cap");

	CHECK(lz4_compress(&table, in, LZ4_MAX_INPUT + 1, want, sizeof(want)) == 0,
	      "an input over LZ4_MAX_INPUT gives 0", "it did not");
	CHECK(lz4_bound(0) == 16 && lz4_bound(4096) == 4128 && lz4_bound(65536) == 65809,
	      "lz4_bound() is LZ4_compressBound()", "%zu %zu %zu", lz4_bound(0),
	      lz4_bound(4096), lz4_bound(65536));
}

/* ---- the decoder against bad blocks ---- */

/*
 * Decode @len bytes at @src into @cap bytes, both copied to heap buffers
 * of exactly that size; returns what lz4_decompress() did, after noting
 * in @e a result that is neither -1 nor within cap.
 */
static long decode_exact(struct first_error *e, const char *what,
			 const u8 *src, size_t len, size_t cap, u8 *copy_out)
{
	u8 *block = exact_copy(src, len), *out = exact_alloc(cap);
	long got = lz4_decompress(block, len, out, cap);

	if (got < -1 || got > (long)cap)
		note(e, "%s: returned %ld for room of %zu", what, got, cap);
	if (copy_out && got > 0)
		memcpy(copy_out, out, (size_t)got);
	free(out);
	free(block);
	return got;
}

/* One hand-made block and what decoding it into @cap bytes must give. */
struct bad_block {
	const char *name;
	u8 bytes[16];
	size_t len;
	size_t cap;
	long want;
};

static void test_bad_blocks(void)
{
	static const struct bad_block blocks[] = {
		{ "an empty block", { 0 }, 0, 64, -1 },
		{ "a lone empty literal run", { 0x00 }, 1, 64, 0 },
		{ "one literal", { 0x10, 'a' }, 2, 64, 1 },
		{ "a match at distance 1, then an empty run",
		  { 0x10, 'a', 1, 0, 0x00 }, 5, 64, 5 },
		{ "the same into exactly 5 bytes", { 0x10, 'a', 1, 0, 0x00 }, 5, 5, 5 },
		{ "the same into 4 bytes", { 0x10, 'a', 1, 0, 0x00 }, 5, 4, -1 },
		{ "a block ending in a match", { 0x10, 'a', 1, 0 }, 4, 64, -1 },
		{ "an offset cut short", { 0x10, 'a', 1 }, 3, 64, -1 },
		{ "offset 0", { 0x10, 'a', 0, 0, 0x00 }, 5, 64, -1 },
		{ "offset 2 after 1 byte", { 0x10, 'a', 2, 0, 0x00 }, 5, 64, -1 },
		{ "offset 65535 after 1 byte", { 0x10, 'a', 0xff, 0xff, 0x00 }, 5, 64, -1 },
		{ "a literal run past the input", { 0x50, 'a', 'b' }, 3, 64, -1 },
		{ "a literal run past the output", { 0x30, 'a', 'b', 'c' }, 4, 2, -1 },
		{ "literal length bytes running out", { 0xf0, 255, 255 }, 3, 64, -1 },
		{ "match length bytes running out",
		  { 0x1f, 'a', 1, 0, 255, 255 }, 6, 1 << 20, -1 },
		{ "a match past the output", { 0x1f, 'a', 1, 0, 10, 0x00 }, 6, 29, -1 },
		{ "a match to the output's last byte",
		  { 0x1f, 'a', 1, 0, 10, 0x00 }, 6, 30, 30 },
		{ "a literal length of 15 + 255 + 0 with 1 byte",
		  { 0xf0, 255, 0, 'a' }, 4, 1 << 20, -1 },
	};
	struct first_error e = { 0 };

	for (size_t i = 0; i < ARRAY_SIZE(blocks); i++) {
		const struct bad_block *b = &blocks[i];
		long got = decode_exact(&e, b->name, b->bytes, b->len, b->cap, NULL);

		if (got != b->want)
			note(&e, "%s: got %ld, want %ld", b->name, got, b->want);
	}
	CHECK_NO_ERROR(e, "hand-made blocks: good ones decode, bad ones give -1");
}

/*
 * Blocks with long runs of 255 in their length fields: a match of
 * exactly the room (a page of one byte), one byte more, and literal
 * lengths far past the input, from 1 to 100000 length bytes.
 */
static void test_long_lengths(unsigned *count)
{
	static const size_t runs[] = { 1, 2, 16, 100, 1000, 100000 };
	struct first_error e = { 0 };
	u8 *block = xmalloc(100000 + 16);

	for (size_t i = 0; i < ARRAY_SIZE(runs); i++) {
		size_t n = runs[i], ml = 4 + 15 + 255 * n + 7, len;
		long got;

		/* 'a', then a match at distance 1 of ml bytes, then no literals. */
		block[0] = 0x1f;
		block[1] = 'a';
		block[2] = 1;
		block[3] = 0;
		memset(block + 4, 255, n);
		block[4 + n] = 7;
		block[5 + n] = 0x00;
		len = 6 + n;
		got = decode_exact(&e, "long match", block, len, 1 + ml, NULL);
		if (got != (long)(1 + ml))
			note(&e, "a match of %zu into its exact room: got %ld", ml, got);
		if (decode_exact(&e, "long match", block, len, ml, NULL) != -1)
			note(&e, "a match of %zu into one byte less: not -1", ml);

		/* A literal length of 15 + 255 * n, with one literal. */
		block[0] = 0xf0;
		memset(block + 1, 255, n);
		block[1 + n] = 0;
		block[2 + n] = 'a';
		if (decode_exact(&e, "long literals", block, 3 + n, 1 << 20, NULL) != -1)
			note(&e, "a literal run of %zu bytes with 1 byte: not -1", n);
		*count += 3;
	}
	free(block);
	CHECK_NO_ERROR(e, "length fields of long runs of 255");
}

/* A pool of real blocks to mutate: text, binary, patterns, random. */
struct sample {
	u8 *in, *comp;
	size_t len, n;
};

static void make_samples(struct sample *s, size_t count)
{
	static const enum kind kinds[] = { TEXT, BINARY, PERIODIC, WORD, RANDOM, ZEROS };

	for (size_t i = 0; i < count; i++) {
		enum kind k = kinds[i % ARRAY_SIZE(kinds)];

		s[i].len = i < 4 ? 200 + rand_below(800) : 13 + rand_below(4096 - 12);
		s[i].in = xmalloc(s[i].len);
		make_input(k, s[i].in, s[i].len, 1 + rand_below(20));
		s[i].comp = xmalloc(lz4_bound(s[i].len));
		s[i].n = lz4_compress(&table, s[i].in, s[i].len, s[i].comp,
				      lz4_bound(s[i].len));
	}
}

/*
 * A prefix of a valid block is either malformed or a valid block of a
 * prefix of the data (cut right after some sequence's literals).
 */
static void truncations(struct first_error *e, const struct sample *s, unsigned *count)
{
	u8 *out = xmalloc(s->len);

	for (size_t cut = 0; cut < s->n; cut++) {
		long got = decode_exact(e, "truncated", s->comp, cut, s->len, out);

		if (got >= (long)s->len || (got > 0 && memcmp(out, s->in, (size_t)got)))
			note(e, "cut at %zu of %zu: decoded %ld bytes of %zu", cut, s->n,
			     got, s->len);
		(*count)++;
	}
	free(out);
}

/* Flip 1 to 4 random bytes of a valid block; decode into its size. */
static void flips(struct first_error *e, const struct sample *s, unsigned *count)
{
	u8 *block = exact_copy(s->comp, s->n);
	size_t nflips = 1 + rand_below(4);

	for (size_t i = 0; i < nflips; i++) {
		size_t at = rand_below(s->n);

		if (rand_below(4))
			block[at] = (u8)rand64();
		else
			block[at] ^= (u8)(1u << rand_below(8));
	}
	decode_exact(e, "flipped", block, s->n, s->len, NULL);
	(*count)++;
	free(block);
}

/*
 * Garbage: random bytes, or random sequences with plausible tokens,
 * offsets of 0 or just past the output written so far, and lengths of
 * 15 and 255s, decoded into random room.
 */
static void garbage(struct first_error *e, unsigned *count)
{
	u8 block[600];
	size_t len = rand_below(sizeof(block) + 1), cap = rand_below(4200);

	fill_random(block, len);
	if (rand_below(2)) {
		for (size_t p = 0; p + 4 <= len; p += 4 + rand_below(16)) {
			block[p] = (u8)(rand_below(16) << 4 | rand_below(16));
			block[p + 1] = rand_below(3) ? 0 : 255;
			block[p + 2] = (u8)rand_below(p + 2);
			block[p + 3] = rand_below(4) ? 0 : (u8)rand64();
		}
	}
	decode_exact(e, "garbage", block, len, cap, NULL);
	(*count)++;
}

/* Append a length's extra bytes for @n >= 15 (the nibble holds 15). */
static size_t put_length(u8 *block, size_t p, size_t n)
{
	for (n -= 15; n >= 255; n -= 255)
		block[p++] = 255;
	block[p++] = (u8)n;
	return p;
}

/* Mostly short, sometimes long: lengths around the nibble and the 255s. */
static size_t random_length(size_t min)
{
	return min + (rand_below(4) ? rand_below(24) : rand_below(600));
}

/*
 * A random well-formed block, such as our compressor never writes: up to
 * 12 sequences of any literal length (also 0), offsets anywhere in what
 * was decoded so far (often under 16: overlapping copies), any match
 * length, a last literal run of 0 to 19 bytes (the end-of-block rules do
 * not hold).  @out gets what it decodes to, built byte by byte; returns
 * the block's size.
 */
static size_t random_block(u8 *block, u8 *out, size_t *out_len)
{
	size_t nseq = rand_below(13), p = 0, pos = 0;

	for (size_t i = 0; i <= nseq; i++) {
		size_t lit = i == nseq ? rand_below(20) : random_length(pos == 0);
		size_t ml = random_length(4), off;
		u8 *token = &block[p++];

		*token = (u8)((lit < 15 ? lit : 15) << 4);
		if (lit >= 15)
			p = put_length(block, p, lit);
		fill_random(block + p, lit);
		memcpy(out + pos, block + p, lit);
		p += lit;
		pos += lit;
		if (i == nseq)
			break;
		off = 1 + rand_below(rand_below(2) && pos > 16 ? 16 : pos);
		block[p++] = (u8)off;
		block[p++] = (u8)(off >> 8);
		*token |= (u8)(ml - 4 < 15 ? ml - 4 : 15);
		if (ml - 4 >= 15)
			p = put_length(block, p, ml - 4);
		for (size_t j = 0; j < ml; j++, pos++)
			out[pos] = out[pos - off];
	}
	*out_len = pos;
	return p;
}

/*
 * Decode random well-formed blocks into every room from 40 bytes short
 * of their size to 8 past it: short of it -1, else exactly their bytes.
 * This walks every copy of the decoder up to the end of its buffer.
 */
static void room_sweep(struct first_error *e, unsigned *count)
{
	static u8 block[12 * 1300 + 64], want[12 * 1300], got_out[12 * 1300];
	size_t len, n = random_block(block, want, &len);

	for (size_t cap = len > 40 ? len - 40 : 0; cap <= len + 8; cap++) {
		long got = decode_exact(e, "random block", block, n, cap, got_out);

		if (cap < len ? got != -1 : got != (long)len || memcmp(got_out, want, len))
			note(e, "a random block of %zu bytes into %zu: got %ld", len,
			     cap, got);
		(*count)++;
	}
}

static void test_fuzz(void)
{
	enum { NR_SAMPLES = 40 };
	static struct sample samples[NR_SAMPLES];
	struct first_error e = { 0 };
	unsigned count = 0;

	make_samples(samples, NR_SAMPLES);
	for (size_t i = 0; i < 8; i++)
		truncations(&e, &samples[i], &count);
	CHECK_NO_ERROR(e, "truncations at every length of 8 blocks");
	for (int i = 0; i < 100000; i++)
		flips(&e, &samples[rand_below(NR_SAMPLES)], &count);
	CHECK_NO_ERROR(e, "100000 blocks with bytes flipped");
	for (int i = 0; i < 50000; i++)
		garbage(&e, &count);
	CHECK_NO_ERROR(e, "50000 blocks of garbage");
	for (int i = 0; i < 2000; i++)
		room_sweep(&e, &count);
	CHECK_NO_ERROR(e, "2000 random well-formed blocks into every room near "
		       "their size");
	test_long_lengths(&count);
	CHECK(count >= 20000, "fuzz: at least 20000 blocks decoded", "only %u", count);
	printf("# fuzz: %u blocks decoded, malformed or into too little room\n", count);
	for (size_t i = 0; i < NR_SAMPLES; i++) {
		free(samples[i].in);
		free(samples[i].comp);
	}
}

int main(void)
{
	if (load_file("/bin/sh", &binary, &binary_len, 1 << 20) &&
	    load_file("/proc/self/exe", &binary, &binary_len, 1 << 20)) {
		printf("lz4_test: no binary to read (/bin/sh, /proc/self/exe)\n");
		return CHECK_EXIT_FAIL;
	}
	test_round_trips();
	test_match_lengths();
	test_reference_block();
	test_cap();
	test_bad_blocks();
	test_fuzz();
	free(binary);
	return check_summary("lz4_test");
}
