/*
 * lz4.h - an LZ4 block codec for the compressed RAM store: one 4 KiB page
 * (or any block up to 64 KiB) in, one LZ4 block out, and back.
 *
 * The blocks are the standard LZ4 block format: the reference lz4 library
 * and tool, and the kernel's lz4 (zram, zswap), read what lz4_compress()
 * writes, and lz4_decompress() reads theirs.  The compressor is the
 * reference's fast one (LZ4_compress_fast, acceleration 1: `lz4 -1`), so
 * its output, and so its ratio, match the reference's.  The decoder
 * treats its input as hostile: a corrupt block gives -1, never a read or
 * write outside the buffers it was given.
 *
 * Only libc; no allocation; the functions keep no state of their own, so
 * any number of threads may use them, each with its own struct lz4_table.
 * See lz4.c for the format and how it is made fast.
 */
#ifndef UBLK_MEM_LZ4_H
#define UBLK_MEM_LZ4_H

#include <stddef.h>
#include <stdint.h>

/*
 * log2 of the compressor's hash table entries.  13 is what the reference
 * uses for blocks under 64 KiB (LZ4_MEMORY_USAGE 14: 16 KiB of 16-bit
 * positions, also the kernel's LZ4_MEM_COMPRESS); with the same table the
 * compressor finds the same matches and writes the same bytes as the
 * reference.  12 would halve the table cleared for each block, but was
 * no faster and lost 0.2% of ratio on 4 KiB pages and 1.6% on 64 KiB
 * blocks of programs and text (see bench/lz4_bench.c).
 */
#define LZ4_HASH_LOG	13

/* The largest input lz4_compress() takes: positions must fit 16 bits. */
#define LZ4_MAX_INPUT	65536

/*
 * The compressor's working memory: for every hash of 4 input bytes, the
 * position where they were last seen.  One per thread, allocated by the
 * caller (16 KiB, fine on a thread's stack); lz4_compress() initialises
 * it, so it needs no setup and holds nothing between calls.
 */
struct lz4_table {
	uint16_t pos[1 << LZ4_HASH_LOG];
};

/*
 * Compress src[0, len) into dst[0, cap) as one LZ4 block.
 *
 * Returns the compressed size, or 0 if the block would be larger than
 * cap (exactly: it fits in a cap of its own size), or if len is over
 * LZ4_MAX_INPUT.  The caller passes as cap the largest size worth keeping
 * (e.g. 3/4 of a page) and stores the data raw when it gets 0; with cap
 * >= lz4_bound(len) it never gets 0.  Writes nothing outside dst[0, cap),
 * but anything in it (also past the returned size, and when returning 0).
 */
size_t lz4_compress(struct lz4_table *t, const void *src, size_t len,
		    void *dst, size_t cap);

/*
 * Decode the LZ4 block src[0, srclen) into dst[0, cap).
 *
 * Returns the number of bytes decoded (<= cap), or -1 if the block is
 * malformed in any way: truncated, ending in a match rather than
 * literals, a literal run past its end, a match offset of 0 or before the
 * start of dst, or output that would not fit in cap.  It never reads
 * outside src[0, srclen) nor writes outside dst[0, cap); bytes of dst past
 * the returned length may have been written.  src and dst must not
 * overlap.
 */
long lz4_decompress(const void *src, size_t srclen, void *dst, size_t cap);

/*
 * The largest block lz4_compress() can make of len bytes (the reference's
 * LZ4_compressBound): incompressible input grows by one byte in 255, plus
 * the token and length bytes of its one sequence.
 */
size_t lz4_bound(size_t len);

#endif /* UBLK_MEM_LZ4_H */
