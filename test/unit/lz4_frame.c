/*
 * lz4_frame.c - the LZ4 frame format around lz4.c's blocks, for
 * lz4_interop.sh to check them against the reference `lz4` tool.
 *
 *   lz4_frame pack FILE OUT     FILE in 4 KiB pages, each compressed by
 *                               lz4_compress(), as a frame for `lz4 -d`
 *   lz4_frame unpack FRAME FILE decode every block of a frame `lz4` made
 *                               with lz4_decompress() and compare with
 *                               FILE; compress each block's data again
 *                               with lz4_compress() and compare sizes
 *   lz4_frame random N OUT      N bytes of fixed pseudo-random data
 *
 * A frame (lz4's doc/lz4_Frame_format.md): magic 0x184D2204; FLG (version
 * 01, block independence, block checksum, content size, content
 * checksum, dictionary id); BD (the largest block: 4 = 64 KiB ... 7 = 4
 * MiB); the optional fields; HC, the second byte of the xxh32 of the
 * descriptor.  Then blocks: a little-endian 32-bit size, the high bit set
 * for a block stored raw, 0 for the end; after each block its xxh32 if
 * FLG asks.  After the end mark the xxh32 of the content if FLG asks.
 *
 * Prints one line per file, key=value, for the script to add up.  Exit
 * status 0, or 1 after saying what went wrong.
 */
#include "lz4.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint8_t u8;

#define FRAME_MAGIC	0x184D2204U
#define PAGE		4096
#define RAW_BLOCK	0x80000000U

enum {
	FLG_VERSION = 0x40,	/* bits 7-6: 01 */
	FLG_INDEP = 0x20,
	FLG_BLOCK_SUM = 0x10,
	FLG_SIZE = 0x08,
	FLG_CONTENT_SUM = 0x04,
	FLG_DICT = 0x01,
};

static uint32_t get_le32(const u8 *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(u8 *p, uint32_t v)
{
	p[0] = (u8)v;
	p[1] = (u8)(v >> 8);
	p[2] = (u8)(v >> 16);
	p[3] = (u8)(v >> 24);
}

/* ---- xxh32, the frame's checksum (xxHash's XXH32 with its 5 primes) ---- */

#define P1	2654435761U
#define P2	2246822519U
#define P3	3266489917U
#define P4	668265263U
#define P5	374761393U

static uint32_t rotl32(uint32_t x, int r)
{
	return x << r | x >> (32 - r);
}

static uint32_t xxh32_round(uint32_t acc, uint32_t input)
{
	return rotl32(acc + input * P2, 13) * P1;
}

/* XXH32 of p[0, len) with a seed: four lanes of 4 bytes, then the tail. */
static uint32_t xxh32(const u8 *p, size_t len, uint32_t seed)
{
	const u8 *end = p + len;
	uint32_t h;

	if (len >= 16) {
		uint32_t v[4] = { seed + P1 + P2, seed + P2, seed, seed - P1 };

		for (; end - p >= 16; p += 16)
			for (int i = 0; i < 4; i++)
				v[i] = xxh32_round(v[i], get_le32(p + 4 * i));
		h = rotl32(v[0], 1) + rotl32(v[1], 7) + rotl32(v[2], 12) +
		    rotl32(v[3], 18);
	} else {
		h = seed + P5;
	}
	h += (uint32_t)len;
	for (; end - p >= 4; p += 4)
		h = rotl32(h + get_le32(p) * P3, 17) * P4;
	for (; p < end; p++)
		h = rotl32(h + *p * P5, 11) * P1;
	h ^= h >> 15;
	h *= P2;
	h ^= h >> 13;
	h *= P3;
	return h ^ h >> 16;
}

/* ---- files ---- */

/* Read all of @path into *buf (malloc'd, at least 1 byte); 0 or -errno. */
static int read_all(const char *path, u8 **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");
	size_t size = 1 << 16, got;
	int ret = 0;

	if (!f)
		return -errno;
	*len = 0;
	*buf = malloc(size);
	while (*buf && (got = fread(*buf + *len, 1, size - *len, f)) > 0) {
		*len += got;
		if (*len == size) {
			u8 *more = realloc(*buf, 2 * size);

			if (!more)
				free(*buf);
			*buf = more;
			size *= 2;
		}
	}
	if (!*buf)
		ret = -ENOMEM;
	else if (ferror(f))
		ret = -EIO;
	fclose(f);
	if (ret && *buf)
		free(*buf);
	return ret;
}

static int write_all(const char *path, const u8 *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	int ret = 0;

	if (!f)
		return -errno;
	if (fwrite(buf, 1, len, f) != len)
		ret = -EIO;
	if (fclose(f) && !ret)
		ret = -EIO;
	return ret;
}

/* ---- pack: our blocks in a frame ---- */

/*
 * A frame of @len bytes of @in in 4 KiB pages: block independence, 64 KiB
 * largest block, no checksums but the header's.  A page that does not
 * compress to less than its size is stored raw, as the RAM store would.
 */
static int pack(const char *in_path, const char *out_path)
{
	static struct lz4_table table;
	size_t len, o = 0, raw = 0, blocks = 0;
	u8 *in, *out;
	int ret = read_all(in_path, &in, &len);

	if (ret)
		return ret;
	out = malloc(7 + len + len / PAGE * 8 + 16);
	if (!out) {
		free(in);
		return -ENOMEM;
	}
	put_le32(out, FRAME_MAGIC);
	out[4] = FLG_VERSION | FLG_INDEP;
	out[5] = 4 << 4;
	out[6] = (u8)(xxh32(out + 4, 2, 0) >> 8);
	o = 7;
	for (size_t at = 0; at < len; at += PAGE, blocks++) {
		size_t n = len - at < PAGE ? len - at : PAGE;
		size_t c = lz4_compress(&table, in + at, n, out + o + 4, n - 1);

		if (c) {
			put_le32(out + o, (uint32_t)c);
		} else {
			put_le32(out + o, (uint32_t)n | RAW_BLOCK);
			memcpy(out + o + 4, in + at, n);
			c = n;
			raw++;
		}
		o += 4 + c;
	}
	put_le32(out + o, 0);
	o += 4;
	ret = write_all(out_path, out, o);
	if (!ret)
		printf("pack file=%s blocks=%zu raw=%zu bytes=%zu frame=%zu\n", in_path,
		       blocks, raw, len, o);
	free(out);
	free(in);
	return ret;
}

/* ---- unpack: the reference's blocks through our decoder ---- */

struct frame {
	const u8 *p, *end;	/* what is left to parse */
	u8 flg;
	size_t block_max;
};

/* Parse and check the frame header; -EINVAL if it is not one we read. */
static int parse_header(struct frame *f)
{
	const u8 *start = f->p + 4;
	size_t hlen;

	if (f->end - f->p < 7 || get_le32(f->p) != FRAME_MAGIC)
		return -EINVAL;
	f->flg = start[0];
	if ((f->flg & 0xc2) != FLG_VERSION || (f->flg & FLG_DICT) || (start[1] & 0x8f))
		return -EINVAL;
	if ((start[1] >> 4) < 4)
		return -EINVAL;
	f->block_max = (size_t)1 << (8 + 2 * (start[1] >> 4));
	hlen = 2 + (f->flg & FLG_SIZE ? 8 : 0);
	if ((size_t)(f->end - start) < hlen + 1 ||
	    start[hlen] != (u8)(xxh32(start, hlen, 0) >> 8))
		return -EINVAL;
	f->p = start + hlen + 1;
	return 0;
}

/* What was found in a frame, and how our compressor does on its blocks. */
struct unpack_stats {
	size_t blocks, raw;
	size_t compared;		/* blocks compressed again */
	size_t ref_stored, our_stored;	/* their sizes; raw ones count whole */
	size_t identical;
};

/*
 * Our compressor on one block's data, as the reference tool does it:
 * room for one byte less than the data, else stored raw.  Counts the
 * sizes, and the blocks where both wrote the same bytes.  Blocks over
 * LZ4_MAX_INPUT (lz4 -B5 and up) are not compared.
 */
static void recompress(struct unpack_stats *s, const u8 *data, size_t n,
		       const u8 *ref, size_t ref_len, int ref_raw)
{
	static struct lz4_table table;
	static u8 mine[LZ4_MAX_INPUT];
	size_t c;

	if (n > LZ4_MAX_INPUT)
		return;
	c = lz4_compress(&table, data, n, mine, n - 1);
	s->compared++;
	s->ref_stored += ref_len;
	s->our_stored += c ? c : n;
	if (ref_raw ? !c : c == ref_len && !memcmp(mine, ref, c))
		s->identical++;
}

/*
 * Decode one block at f->p into @out (block_max bytes) and compare it
 * with @orig[*at, ...); 1 at the end mark, 0 for a block, -EINVAL.
 */
static int unpack_block(struct frame *f, u8 *out, const u8 *orig, size_t orig_len,
			size_t *at, struct unpack_stats *s)
{
	uint32_t word;
	size_t size, sum = f->flg & FLG_BLOCK_SUM ? 4 : 0;
	long n;

	if (f->end - f->p < 4)
		return -EINVAL;
	word = get_le32(f->p);
	f->p += 4;
	if (!word)
		return 1;
	size = word & ~RAW_BLOCK;
	if ((size_t)(f->end - f->p) < size + sum || size > f->block_max)
		return -EINVAL;
	if (sum && get_le32(f->p + size) != xxh32(f->p, size, 0))
		return -EINVAL;
	if (word & RAW_BLOCK) {
		memcpy(out, f->p, size);
		n = (long)size;
		s->raw++;
	} else {
		n = lz4_decompress(f->p, size, out, f->block_max);
	}
	if (n <= 0 || (size_t)n > orig_len - *at || memcmp(out, orig + *at, (size_t)n))
		return -EINVAL;
	recompress(s, orig + *at, (size_t)n, f->p, size, !!(word & RAW_BLOCK));
	f->p += size + sum;
	*at += (size_t)n;
	s->blocks++;
	return 0;
}

/*
 * After the end mark: the content's checksum if FLG asks for it, then
 * the end of the file, with all of @orig decoded.  0 or -EINVAL.
 */
static int check_end(struct frame *f, const u8 *orig, size_t olen, size_t at)
{
	if (f->flg & FLG_CONTENT_SUM) {
		if (f->end - f->p < 4 || get_le32(f->p) != xxh32(orig, olen, 0))
			return -EINVAL;
		f->p += 4;
	}
	return at == olen && f->p == f->end ? 0 : -EINVAL;
}

/*
 * Parse a frame @frame_path and check that it holds exactly @orig_path,
 * every compressed block decoded by lz4_decompress().  Our compressor
 * must then store the same blocks in no more than 2% over the
 * reference's size.
 */
static int unpack(const char *frame_path, const char *orig_path)
{
	struct unpack_stats s = { 0 };
	struct frame f;
	size_t flen, olen, at = 0;
	u8 *frame, *orig, *out = NULL;
	int ret;

	ret = read_all(frame_path, &frame, &flen);
	if (ret)
		return ret;
	ret = read_all(orig_path, &orig, &olen);
	if (ret)
		goto out_frame;
	f.p = frame;
	f.end = frame + flen;
	ret = parse_header(&f);
	if (ret) {
		fprintf(stderr, "lz4_frame: %s: not a frame this reads\n", frame_path);
		goto out_orig;
	}
	out = malloc(f.block_max);
	if (!out) {
		ret = -ENOMEM;
		goto out_orig;
	}
	while (!ret)
		ret = unpack_block(&f, out, orig, olen, &at, &s);
	if (ret == 1)
		ret = check_end(&f, orig, olen, at);
	if (ret) {
		fprintf(stderr, "lz4_frame: %s: block %zu (byte %zu of %s): malformed, "
			"or not decoded to the same bytes\n", frame_path, s.blocks, at,
			orig_path);
		goto out_orig;
	}
	printf("unpack frame=%s block_max=%zu blocks=%zu raw=%zu bytes=%zu "
	       "compared=%zu ref_stored=%zu our_stored=%zu identical=%zu\n",
	       frame_path, f.block_max, s.blocks, s.raw, olen, s.compared,
	       s.ref_stored, s.our_stored, s.identical);
	if (s.our_stored > s.ref_stored + s.ref_stored / 50) {
		fprintf(stderr, "lz4_frame: %s: our blocks are over 2%% larger than "
			"the reference's\n", frame_path);
		ret = -ERANGE;
	}
out_orig:
	free(out);
	free(orig);
out_frame:
	free(frame);
	return ret;
}

/* N bytes of xorshift64* from a fixed seed: the same file every run. */
static int make_random(const char *count, const char *path)
{
	size_t len = strtoul(count, NULL, 0);
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	u8 *buf = malloc(len ? len : 1);
	int ret;

	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		buf[i] = (u8)((x * 0x2545f4914f6cdd1dULL) >> 56);
	}
	ret = write_all(path, buf, len);
	free(buf);
	return ret;
}

int main(int argc, char **argv)
{
	int ret;

	if (argc != 4) {
		fprintf(stderr, "usage: lz4_frame pack FILE OUT | unpack FRAME FILE | "
			"random N OUT\n");
		return 1;
	}
	if (!strcmp(argv[1], "pack")) {
		ret = pack(argv[2], argv[3]);
	} else if (!strcmp(argv[1], "unpack")) {
		ret = unpack(argv[2], argv[3]);
	} else if (!strcmp(argv[1], "random")) {
		ret = make_random(argv[2], argv[3]);
	} else {
		fprintf(stderr, "lz4_frame: unknown command %s\n", argv[1]);
		return 1;
	}
	/* unpack says itself what was wrong with a frame. */
	if (ret && ret != -EINVAL && ret != -ERANGE)
		fprintf(stderr, "lz4_frame: %s %s: %s\n", argv[1], argv[2],
			strerror(-ret));
	return ret ? 1 : 0;
}
