/*
 * lz4_bench.c - how fast lz4.c compresses and decompresses, and how well.
 *
 * Usage: lz4_bench [-t SECONDS] FILE
 *
 * The file is read into memory and cut into blocks, twice: 4 KiB pages,
 * as the compressed RAM store uses the codec, and 64 KiB blocks, the size
 * `lz4 -b1 -B4` uses, for a like-for-like comparison with the reference
 * (`lz4 -b1 -B4096 FILE` for pages).  Like the reference's benchmark,
 * each block is compressed into lz4_bound() bytes of room and decoded
 * into exactly its own size; each pass over the file is timed and the
 * fastest pass counts, passes repeating for SECONDS (default 2) per
 * direction.  One thread.  The decoded data is checked against the file.
 *
 * One line per mode, for scripts; MB is 10^6 bytes, as lz4 prints it:
 *   mode=page4k block=4096 bytes=N compressed=N ratio=R compress_MBps=C decompress_MBps=D
 *
 * Build: cc -O2 -I. -o /tmp/lz4_bench bench/lz4_bench.c lz4.c
 * Exit status 0, or 1 on an error (said on stderr).
 */
#include "lz4.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The file in memory, its compressed blocks, and room to decode them. */
struct bench {
	const unsigned char *data;
	size_t len;
	size_t block;		/* bytes per block; the last may be shorter */
	size_t nblocks;
	size_t room;		/* lz4_bound(block): each block's slot */
	unsigned char *comp;	/* nblocks slots of room bytes */
	size_t *clen;		/* each block's compressed size */
	unsigned char *out;	/* len bytes */
	double seconds;		/* per direction */
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Read all of @path into *data (malloc'd); 0 or -errno. */
static int read_file(const char *path, unsigned char **data, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	size_t used = 0, size = 0, got;
	int ret = 0;

	if (!f)
		return -errno;
	for (;;) {
		if (used == size) {
			unsigned char *more = realloc(buf, size ? 2 * size : 1 << 20);

			if (!more) {
				ret = -ENOMEM;
				break;
			}
			buf = more;
			size = size ? 2 * size : 1 << 20;
		}
		got = fread(buf + used, 1, size - used, f);
		used += got;
		if (got == 0) {
			if (ferror(f))
				ret = -EIO;
			break;
		}
	}
	fclose(f);
	if (ret) {
		free(buf);
		return ret;
	}
	*data = buf;
	*len = used;
	return 0;
}

static size_t block_len(const struct bench *b, size_t i)
{
	size_t start = i * b->block;

	return b->len - start < b->block ? b->len - start : b->block;
}

/* One pass compressing every block; returns the total compressed size. */
static size_t compress_pass(struct bench *b, struct lz4_table *t)
{
	size_t total = 0;

	for (size_t i = 0; i < b->nblocks; i++) {
		b->clen[i] = lz4_compress(t, b->data + i * b->block, block_len(b, i),
					  b->comp + i * b->room, b->room);
		total += b->clen[i];
	}
	return total;
}

/* One pass decoding every block; 0, or -EILSEQ if one fails. */
static int decompress_pass(struct bench *b)
{
	for (size_t i = 0; i < b->nblocks; i++) {
		size_t len = block_len(b, i);
		long got = lz4_decompress(b->comp + i * b->room, b->clen[i],
					  b->out + i * b->block, len);

		if (got != (long)len)
			return -EILSEQ;
	}
	return 0;
}

/*
 * Time passes of compression (or decompression) for b->seconds and
 * return the fastest one's speed in MB/s; -1 if decoding failed.
 */
static double best_speed(struct bench *b, struct lz4_table *t, int decode)
{
	double start = now(), best = 1e30;

	do {
		double t0 = now(), dt;

		if (decode) {
			if (decompress_pass(b))
				return -1;
		} else {
			compress_pass(b, t);
		}
		dt = now() - t0;
		if (dt < best)
			best = dt;
	} while (now() - start < b->seconds);
	return (double)b->len / best / 1e6;
}

/* Benchmark one block size and print its line; 0 or -errno. */
static int bench_mode(struct bench *b, const char *mode, size_t block)
{
	struct lz4_table *t = malloc(sizeof(*t));
	double cspeed, dspeed;
	size_t total;
	int ret = -ENOMEM;

	b->block = block;
	b->nblocks = (b->len + block - 1) / block;
	b->room = lz4_bound(block);
	b->comp = malloc(b->nblocks * b->room);
	b->clen = malloc(b->nblocks * sizeof(*b->clen));
	if (!t || !b->comp || !b->clen)
		goto out;
	total = compress_pass(b, t);
	cspeed = best_speed(b, t, 0);
	dspeed = best_speed(b, t, 1);
	ret = -EILSEQ;
	if (dspeed < 0 || memcmp(b->out, b->data, b->len)) {
		fprintf(stderr, "lz4_bench: %s: decoded data differs from the file\n",
			mode);
		goto out;
	}
	printf("mode=%s block=%zu bytes=%zu compressed=%zu ratio=%.3f "
	       "compress_MBps=%.1f decompress_MBps=%.1f\n", mode, block, b->len,
	       total, (double)b->len / (double)total, cspeed, dspeed);
	fflush(stdout);
	ret = 0;
out:
	free(b->comp);
	free(b->clen);
	free(t);
	return ret;
}

int main(int argc, char **argv)
{
	struct bench b = { .seconds = 2 };
	unsigned char *data = NULL;
	int opt, ret;

	while ((opt = getopt(argc, argv, "t:")) != -1) {
		if (opt != 't' || (b.seconds = atof(optarg)) <= 0) {
			fprintf(stderr, "usage: lz4_bench [-t SECONDS] FILE\n");
			return 1;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: lz4_bench [-t SECONDS] FILE\n");
		return 1;
	}
	ret = read_file(argv[optind], &data, &b.len);
	if (ret) {
		fprintf(stderr, "lz4_bench: %s: %s\n", argv[optind], strerror(-ret));
		return 1;
	}
	if (!b.len) {
		fprintf(stderr, "lz4_bench: %s: empty file\n", argv[optind]);
		return 1;
	}
	b.data = data;
	b.out = malloc(b.len);
	if (!b.out) {
		fprintf(stderr, "lz4_bench: out of memory for %zu bytes\n", b.len);
		return 1;
	}
	ret = bench_mode(&b, "page4k", 4096);
	if (!ret)
		ret = bench_mode(&b, "block64k", 65536);
	free(b.out);
	free(data);
	return ret ? 1 : 0;
}
