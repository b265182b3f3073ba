/*
 * lz4.c - the LZ4 block format, compressor and hardened decoder.
 *
 * An LZ4 block is a series of sequences.  Each sequence says: copy some
 * bytes from the block (literals), then copy some bytes from earlier in
 * the output (a match):
 *
 *   token       1 byte: high 4 bits literal length, low 4 bits match
 *               length - 4 (a match is never shorter than 4 bytes)
 *   [lit len]   if the high nibble is 15: more length bytes follow, each
 *               added; a byte of 255 means another byte follows
 *   literals    that many bytes, copied to the output as they are
 *   offset      2 bytes little endian: the match starts this far back in
 *               the output (1..65535; 0 is invalid)
 *   [match len] if the low nibble is 15: more length bytes, as above
 *
 * Offsets of less than the match length are allowed and mean a repeating
 * pattern: offset 1, length 100 writes the previous byte 100 times.
 *
 * The end of the block is the end of a literal run: the last sequence has
 * literals only (token, lengths, literals, no offset).  An encoder must
 * keep two more rules, which let the reference decoder copy in wide
 * unchecked strides until close to the end:
 *   - the last 5 bytes (LASTLITERALS) are literals;
 *   - the last match starts at least 12 bytes (MFLIMIT) before the end.
 * So an input of less than 13 bytes is a single run of literals.
 *
 * The compressor is the reference's LZ4_compress_fast at acceleration 1,
 * step for step, so it writes the same bytes: hash the 4 bytes at each
 * position, look up where the same hash was seen last (one probe, no
 * chains), and when those 4 bytes really match, extend the match forward
 * 8 bytes at a time and backward into the pending literals.  After a run
 * of misses the search skips ahead faster: incompressible data is crossed
 * quickly, at the price of missing a few matches in it.  The table holds
 * 16-bit positions, hence inputs of at most 64 KiB, whose offsets always
 * fit their 2 bytes.
 *
 * The decoder checks every length and offset against both buffers before
 * it copies.  Where there is room it copies in 8 or 16 byte strides that
 * may run past the end of the run into bytes that later copies overwrite;
 * close to either buffer's end it copies exactly.  Each such shortcut
 * says at its function why it stays within the buffers.  All loads and
 * stores of more than a byte are memcpy()s of a constant size: one
 * unaligned move, without the undefined behaviour of a cast pointer.
 */
#include "lz4.h"
#include "memory.h"	/* mem_zero(): inline, libc only */

#include <limits.h>
#include <stdbool.h>
#include <string.h>

#define MINMATCH	4	/* the shortest match */
#define LASTLITERALS	5	/* the block ends with this many literals */
#define MFLIMIT		12	/* no match starts in the last 12 bytes */
#define MIN_INPUT	(MFLIMIT + 1)	/* shorter inputs are all literals */
#define RUN_MASK	15	/* a nibble of 15: length bytes follow */
#define SKIP_TRIGGER	6	/* 2^6 misses in a row add 1 to the step */

typedef uint8_t u8;

/* Unaligned loads in the machine's byte order, for comparing bytes. */
static inline uint32_t load32(const u8 *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t load64(const u8 *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* The offset field is little endian whatever the machine. */
static inline void store_le16(u8 *p, size_t v)
{
	p[0] = (u8)v;
	p[1] = (u8)(v >> 8);
}

static inline size_t load_le16(const u8 *p)
{
	return (size_t)p[0] | (size_t)p[1] << 8;
}

/*
 * The reference's hash of 4 bytes for blocks under 64 KiB: multiply by a
 * large odd constant (Knuth's 2654435761) and keep the top LZ4_HASH_LOG
 * bits, which depend on all 32 input bits.  Unsigned, so it wraps.
 */
static inline unsigned hash4(const u8 *p)
{
	return (load32(p) * 2654435761U) >> (32 - LZ4_HASH_LOG);
}

/*
 * How many low-addressed bytes two 8-byte words have in common, from
 * their XOR (not 0): the lowest set bit on a little-endian machine, the
 * highest on a big-endian one.  The test folds to a constant.
 */
static inline unsigned common_bytes(uint64_t diff)
{
	if (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
		return (unsigned)__builtin_ctzll(diff) >> 3;
	return (unsigned)__builtin_clzll(diff) >> 3;
}

/*
 * How many bytes from p equal those from m (m < p), up to limit: 8 at a
 * time while 8 remain, the XOR of two words giving the first difference
 * at once; the last few one at a time.  Never reads at or past limit.
 */
static size_t match_length(const u8 *p, const u8 *m, const u8 *limit)
{
	const u8 *start = p;

	while (limit - p >= 8) {
		uint64_t diff = load64(p) ^ load64(m);

		if (diff)
			return (size_t)(p - start) + common_bytes(diff);
		p += 8;
		m += 8;
	}
	while (p < limit && *p == *m) {
		p++;
		m++;
	}
	return (size_t)(p - start);
}

/* ---- compressor ---- */

/* Bytes a length needs after its nibble: 0 under 15, else 1 per 255. */
static inline size_t length_bytes(size_t n)
{
	return n < RUN_MASK ? 0 : (n - RUN_MASK) / 255 + 1;
}

/*
 * Write the length bytes of n >= 15 (the nibble holds 15 of it): 255
 * while 255 or more remain, then the rest, which may be 0.
 */
static inline u8 *put_length(u8 *op, size_t n)
{
	size_t full = (n - RUN_MASK) / 255;

	memset(op, 255, full);
	op += full;
	*op++ = (u8)(n - RUN_MASK - full * 255);
	return op;
}

/* Start a sequence: a token holding lit's nibble, lit's length bytes. */
static inline u8 *put_token(u8 *op, size_t lit)
{
	*op++ = (u8)((lit < RUN_MASK ? lit : RUN_MASK) << 4);
	return lit < RUN_MASK ? op : put_length(op, lit);
}

/*
 * Search forward from ip for 4 bytes seen before, remembering each
 * position tried.  Returns the position found, with *match the earlier
 * one, or NULL once the next position to try would lie past limit.
 *
 * step, the distance to the next position tried, grows by one every 64
 * misses in a row: a 4 KiB page of random bytes is crossed in about 700
 * probes instead of 4000.  A fresh table's zeros point at position 0,
 * which is harmless: the 4 bytes there are compared like any others.
 */
static const u8 *find_match(uint16_t *table, const u8 *base, const u8 *ip,
			    const u8 *limit, const u8 **match)
{
	unsigned h_next = hash4(ip), step = 1;
	unsigned misses = 1U << SKIP_TRIGGER;

	for (;;) {
		unsigned h = h_next;
		const u8 *m = base + table[h];

		if ((size_t)(limit - ip) < step)
			return NULL;
		h_next = hash4(ip + step);
		table[h] = (uint16_t)(ip - base);
		if (load32(m) == load32(ip)) {
			*match = m;
			return ip;
		}
		ip += step;
		step = misses++ >> SKIP_TRIGGER;
	}
}

/*
 * Start a sequence with the literals anchor[0, ip - anchor), if there is
 * room for them and the least that can follow (an offset, the last token
 * and 5 last literals); else NULL: the block will not fit.  Returns where
 * the offset goes.  The literals are copied 8 bytes at a time, which may
 * write up to 7 bytes past them (the room check covers those, and the
 * next fields overwrite them) and read up to 7 past ip (at least 12
 * before the input's end).
 */
static u8 *put_literals(u8 *op, const u8 *oend, const u8 *anchor,
			const u8 *ip)
{
	size_t lit = (size_t)(ip - anchor);
	u8 *end;

	if ((size_t)(oend - op) < 1 + length_bytes(lit) + lit + 2 + 1 + LASTLITERALS)
		return NULL;
	op = put_token(op, lit);
	end = op + lit;
	do {
		memcpy(op, anchor, 8);
		op += 8;
		anchor += 8;
	} while (op < end);
	return end;
}

/*
 * End a sequence with a match of ml bytes at distance off, completing
 * its token; NULL if its length bytes and the least that can follow
 * (the last token, 5 last literals) do not fit.
 */
static u8 *put_match(u8 *op, const u8 *oend, u8 *token, size_t off, size_t ml)
{
	size_t code = ml - MINMATCH;

	if ((size_t)(oend - op) < 2 + length_bytes(code) + 1 + LASTLITERALS)
		return NULL;
	store_le16(op, off);
	op += 2;
	*token |= (u8)(code < RUN_MASK ? code : RUN_MASK);
	return code < RUN_MASK ? op : put_length(op, code);
}

/*
 * The last sequence: the literals from anchor to the end, copied
 * exactly.  Returns the end of the block, or NULL if it does not fit.
 */
static u8 *put_last_literals(u8 *op, const u8 *oend, const u8 *anchor,
			     const u8 *iend)
{
	size_t lit = (size_t)(iend - anchor);

	if ((size_t)(oend - op) < 1 + length_bytes(lit) + lit)
		return NULL;
	op = put_token(op, lit);
	memcpy(op, anchor, lit);
	return op + lit;
}

/*
 * Compress base[0, len), len >= MIN_INPUT, into op..oend: every sequence
 * but the last.  Returns the output's end, with *anchor where the last
 * literals start, or NULL if the block will not fit.
 *
 * A match may start no later than iend - MFLIMIT and extends at most to
 * iend - LASTLITERALS: the end-of-block rules.  After each match the
 * table learns the position 2 bytes before its end, and the position
 * right after it is tried at once: matches often follow each other.
 */
static u8 *compress_sequences(uint16_t *table, const u8 *base, size_t len,
			      u8 *op, const u8 *oend, const u8 **anchor)
{
	const u8 *iend = base + len;
	const u8 *limit = iend - MFLIMIT;
	const u8 *ip = base, *match;
	u8 *token;

	*anchor = base;
	table[hash4(ip)] = 0;
	ip++;
	for (;;) {
		ip = find_match(table, base, ip, limit + 1, &match);
		if (!ip)
			return op;
		while (ip > *anchor && match > base && ip[-1] == match[-1]) {
			ip--;
			match--;
		}
		token = op;
		op = put_literals(op, oend, *anchor, ip);
		if (!op)
			return NULL;
		for (;;) {
			const u8 *mlimit = iend - LASTLITERALS;
			size_t ml = MINMATCH + match_length(ip + MINMATCH,
							   match + MINMATCH, mlimit);
			unsigned h;

			op = put_match(op, oend, token, (size_t)(ip - match), ml);
			if (!op)
				return NULL;
			ip += ml;
			*anchor = ip;
			if (ip > limit)
				return op;
			table[hash4(ip - 2)] = (uint16_t)(ip - 2 - base);
			h = hash4(ip);
			match = base + table[h];
			table[h] = (uint16_t)(ip - base);
			if (load32(match) != load32(ip))
				break;
			/*
			 * A match right away: a sequence without literals.  Its
			 * token fits: put_match() left room for the last one.
			 */
			token = op;
			op = put_token(op, 0);
		}
		ip++;
	}
}

/*
 * One block (see lz4.h): a cleared table, the sequences, the last
 * literals.  The table is cleared every time: positions left by a longer
 * input could point past the end of this one, and the reference starts
 * from zeros too.  On hardware that is about 1% of the time a page takes.
 * It is cleared with mem_zero(), in pieces: one memset() of 16 KiB is a
 * `rep stosb` in glibc on x86, which emulators run a byte at a time
 * (under qemu's TCG it took longer than compressing the page; memory.h).
 */
size_t lz4_compress(struct lz4_table *t, const void *src, size_t len,
		    void *dst, size_t cap)
{
	const u8 *base = src, *anchor = base;
	u8 *op = dst, *oend = op + cap;

	if (len > LZ4_MAX_INPUT)
		return 0;
	if (len >= MIN_INPUT) {
		mem_zero(t->pos, sizeof(t->pos));
		op = compress_sequences(t->pos, base, len, op, oend, &anchor);
		if (!op)
			return 0;
	}
	op = put_last_literals(op, oend, anchor, base + len);
	return op ? (size_t)(op - (u8 *)dst) : 0;
}

/* LZ4_COMPRESSBOUND(): one byte in 255 more, and 16 for the lengths. */
size_t lz4_bound(size_t len)
{
	return len + len / 255 + 16;
}

/* ---- decoder ---- */

/*
 * Complete a length *len read from its nibble: if that is 15, add the
 * length bytes at ip, not reading past iend.  Returns where the length
 * ends, or NULL on running out of input or once the length is over max:
 * it could not fit anyway, and stopping there keeps the sum from
 * wrapping however long the run of 255s.
 */
static inline const u8 *get_length(const u8 *ip, const u8 *iend, size_t *len,
				   size_t max)
{
	unsigned b;

	if (*len < RUN_MASK)
		return ip;
	do {
		if (ip == iend || *len > max)
			return NULL;
		b = *ip++;
		*len += b;
	} while (b == 255);
	return ip;
}

/*
 * Copy lit literals from ip to op.  A short run, with 16 bytes to spare
 * past it in both buffers, is copied 16 at a time (what is written past
 * op + lit is overwritten by the next sequence); a long run (64 bytes or
 * more), or one without room past it, exactly, by memcpy(), whose wide
 * loop costs fewer steps for a long run.
 */
static inline void copy_literals(u8 *op, const u8 *ip, size_t lit,
				 size_t in_room, size_t out_room)
{
	u8 *end = op + lit;

	if (lit >= 64 || in_room < lit + 16 || out_room < lit + 16) {
		memcpy(op, ip, lit);
		return;
	}
	do {
		memcpy(op, ip, 16);
		op += 16;
		ip += 16;
	} while (op < end);
}

/*
 * Copy a match of ml bytes from off bytes back, with room for 16 bytes
 * past its end.  A long match (64 bytes or more) that does not overlap
 * what it copies (off >= ml) is one memcpy(), as a long literal run is.
 * Else each chunk reads only bytes written before it: with off
 * >= 16 in 16 byte chunks, with off >= 8 in 8 byte chunks.  A shorter
 * offset repeats a pattern of off bytes; after its first 8 bytes are
 * copied one at a time, any multiple of off that is >= 8 is a distance
 * with the same bytes, and 8 byte chunks copy from there.
 */
static inline void copy_match_wild(u8 *op, size_t off, size_t ml)
{
	/* The smallest multiple of off that is >= 8, for off < 8. */
	static const u8 period[8] = { 0, 8, 8, 9, 8, 10, 12, 14 };
	const u8 *m = op - off;
	u8 *end = op + ml;

	if (off >= ml && ml >= 64) {
		memcpy(op, m, ml);
		return;
	}
	if (off >= 16) {
		do {
			memcpy(op, m, 16);
			op += 16;
			m += 16;
		} while (op < end);
		return;
	}
	if (off < 8) {
		for (int i = 0; i < 8; i++)
			op[i] = m[i];
		op += 8;
		m = op - period[off];
	}
	while (op < end) {
		memcpy(op, m, 8);
		op += 8;
		m += 8;
	}
}

/*
 * Copy a match of ml bytes from off bytes back into op[0, room), room >=
 * ml.  Wide strides while 16 bytes remain past them, then one byte at a
 * time: a long match at the end of a page (a page of zeros) is still
 * copied fast, yet nothing is written past room.
 */
static inline void copy_match(u8 *op, size_t off, size_t ml, size_t room)
{
	const u8 *m;

	if (room - ml >= 16) {
		copy_match_wild(op, off, ml);
		return;
	}
	if (room > 16) {
		copy_match_wild(op, off, room - 16);
		op += room - 16;
		ml -= room - 16;
	}
	for (m = op - off; ml; ml--)
		*op++ = *m++;
}

/*
 * The common sequence in one go: both lengths within the token (up to 14
 * literals, a match of up to 18), an offset of 8 or more, 16 bytes of
 * input and 32 of output ahead.  Then fixed-size copies do it, with no
 * loops and few branches: 16 bytes of literals (the offset is among
 * them, read first), and the match in chunks of 8, 8 and 2 bytes, each
 * reading only bytes already written.  Returns false, having done
 * nothing, for any other sequence.
 */
static inline bool decode_short(const u8 **ipp, u8 **opp, unsigned token,
				const u8 *iend, const u8 *oend, const u8 *dst)
{
	const u8 *ip = *ipp, *m;
	u8 *op = *opp;
	size_t lit = token >> 4, off;

	if (lit == RUN_MASK || (token & RUN_MASK) == RUN_MASK ||
	    iend - ip < 16 || oend - op < 32)
		return false;
	off = load_le16(ip + lit);
	if (off < 8 || off > (size_t)(op - dst) + lit)
		return false;
	memcpy(op, ip, 16);
	op += lit;
	m = op - off;
	memcpy(op, m, 8);
	memcpy(op + 8, m + 8, 8);
	memcpy(op + 16, m + 16, 2);
	*ipp = ip + lit + 2;
	*opp = op + (token & RUN_MASK) + MINMATCH;
	return true;
}

/*
 * Decode one block (see lz4.h), walking its sequences and checking each
 * length and offset against what is left of both buffers before copying.
 * Nothing is trusted: any field may hold anything.
 */
long lz4_decompress(const void *src, size_t srclen, void *dst, size_t cap)
{
	const u8 *ip = src, *iend = ip + srclen;
	u8 *op = dst, *oend;

	if (cap > LONG_MAX)
		cap = LONG_MAX;
	oend = op + cap;
	for (;;) {
		size_t lit, off, ml;
		unsigned token;

		/* A block ends with literals: no input left here is an error. */
		if (ip == iend)
			return -1;
		token = *ip++;
		if (decode_short(&ip, &op, token, iend, oend, dst))
			continue;
		lit = token >> 4;
		ip = get_length(ip, iend, &lit, cap);
		if (!ip || lit > (size_t)(iend - ip) || lit > (size_t)(oend - op))
			return -1;
		if (lit == (size_t)(iend - ip)) {
			memcpy(op, ip, lit);
			return (long)(op + lit - (u8 *)dst);
		}
		copy_literals(op, ip, lit, (size_t)(iend - ip), (size_t)(oend - op));
		ip += lit;
		op += lit;

		if (iend - ip < 2)
			return -1;
		off = load_le16(ip);
		ip += 2;
		if (off == 0 || off > (size_t)(op - (u8 *)dst))
			return -1;
		ml = token & RUN_MASK;
		ip = get_length(ip, iend, &ml, cap);
		if (!ip)
			return -1;
		ml += MINMATCH;
		if (ml > (size_t)(oend - op))
			return -1;
		copy_match(op, off, ml, (size_t)(oend - op));
		op += ml;
	}
}
