/*
 * zstore.c - a compressed RAM store that survives a kill -9: see zstore.h.
 *
 * The layout.  One mapping holds everything, and every reference inside
 * it is an offset from its start, never a pointer, so that a file store
 * can be mapped anywhere when it is reopened.  With G the machine page:
 *
 *   [0, G)             the header: magic, version, page, slab and class
 *                      sizes, max_size, size, where the regions start
 *   [index_off, +I)    the index: one 64-bit entry per device page, for
 *                      max_size (I = 8 bytes a page, rounded up to G)
 *   [fill_off, +I)     fill words: the word a same-filled page repeats,
 *                      at the same place as the page's entry
 *   [arena_off, ...)   slabs of objects (zalloc.c); room for 2 x max_size
 *
 * A page of index (with its page of fill words, if a same-filled page
 * needed one) is allocated when an entry in it is first used, and given
 * back when no entry in it is: an empty store costs its header page.
 * Anonymous stores map MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE; file
 * stores MAP_SHARED, the file growing with the slabs and never shrinking
 * while mapped: what the store gives back becomes holes.
 *
 * The entry.  One word per page, read and changed atomically:
 *
 *   63      lock     the page is being read or written: a spin lock
 *   62..60  type     EMPTY (never written, or zeroed; the word is 0),
 *                    ZERO (written zeros), SAME (one word repeated: in the
 *                    fill words), COMPRESSED (an LZ4 block), RAW (as is)
 *   59..47  len      bytes of the object's data: the block, or 4096
 *   46..0   off/16   where the object starts in the mapping
 *
 * A write compresses the page into a buffer of its own, takes the page's
 * lock, allocates an object (or writes the fill word), copies the bytes
 * in, switches the entry with one release store that also drops the
 * lock, and then frees the old object.  A read takes the lock, so no
 * object is freed or moved under it.
 *
 * The crash rule: in a file store the index is the truth, and nothing
 * else is believed after a crash.  Bytes reach an object before an entry
 * names it, and an object is freed only once no entry names it, so every
 * entry a killed process leaves names a whole object, old or new.  A SAME
 * page's fill word is written before its entry switches (so a SAME page
 * being rewritten SAME may come back with the new word: the write under
 * way).  The allocator's state lives in private memory and is rebuilt on
 * reopen by a scan of the index (rebuild()): every object an entry names
 * is in use, everything else is free and its slabs are given back; lock
 * bits a killed process left are cleared; entries past the size, left by
 * a shrink under way, are dropped.  An entry that cannot be (a bad offset,
 * two entries naming one object) fails the open with EUCLEAN rather than
 * serve garbage.
 *
 * The allocator (zalloc.c): 113 size classes of compressed objects, 32 to
 * 3616 bytes, and one of raw pages, each with its own mutex and 64 KiB
 * slabs; an emptied slab goes back to the machine at once.  An object's
 * owner word names its page, so compaction can find the entry to switch;
 * it moves an object only with that page's lock taken and the entry seen
 * to name the object.
 *
 * Locks, outermost first: a page's lock bit; a class mutex; the slab lock
 * or ilock (index pages).  Compaction holds a class mutex, so it only
 * tries page locks, never waits for one.
 */
#define _GNU_SOURCE
#include "zstore.h"
#include "log.h"
#include "lz4.h"
#include "memory.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECTOR		512u
#define ZSTORE_MAGIC	0x313065726f74737aULL	/* "zstore01" */
#define ZSTORE_VERSION	1

/* The header, at offset 0 of the mapping. */
struct zstore_header {
	_Atomic uint64_t magic;		/* written last when laying out */
	uint32_t version;
	uint32_t page_size;		/* ZPAGE */
	uint32_t gran;			/* the machine page */
	uint32_t slab_size;
	uint32_t raw_limit;		/* ZRAW_LIMIT and ZCLASS_STEP: the classes */
	uint32_t class_step;
	uint64_t max_size;
	_Atomic uint64_t size;		/* changed by zstore_resize() */
	uint64_t index_off, fill_off, arena_off;
	uint64_t max_slabs;
};

/* ---- the entry ---- */

enum { T_EMPTY, T_ZERO, T_SAME, T_COMPRESSED, T_RAW };

#define E_LOCK		(1ULL << 63)
#define E_TYPE_SHIFT	60
#define E_LEN_SHIFT	47
#define E_LEN_MASK	0x1fffULL
#define E_OFF_MASK	((1ULL << E_LEN_SHIFT) - 1)
#define OBJ_ALIGN	16u

/* An entry's fields, in and out. */
static inline uint64_t entry_make(unsigned type, uint32_t len, uint64_t off)
{
	return (uint64_t)type << E_TYPE_SHIFT | (uint64_t)len << E_LEN_SHIFT | off / OBJ_ALIGN;
}

static inline unsigned entry_type(uint64_t e)
{
	return (unsigned)(e >> E_TYPE_SHIFT) & 7;
}

static inline uint32_t entry_len(uint64_t e)
{
	return (uint32_t)(e >> E_LEN_SHIFT & E_LEN_MASK);
}

static inline uint64_t entry_off(uint64_t e)
{
	return (e & E_OFF_MASK) * OBJ_ALIGN;
}

static inline bool has_object(uint64_t e)
{
	return entry_type(e) == T_COMPRESSED || entry_type(e) == T_RAW;
}

static inline unsigned entry_class(uint64_t e)
{
	return entry_type(e) == T_RAW ? ZRAW_CLASS : zalloc_class(entry_len(e));
}

/* Let the other hardware thread run while we spin on a page's lock. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/*
 * Take page @p's lock and return its entry as it was.  The holder only
 * compresses or copies one page, so spinning is short; past a while
 * (the holder may wait for memory, or have been preempted) we yield.
 */
static uint64_t entry_lock(struct zstore *z, uint64_t p)
{
	_Atomic uint64_t *e = &z->index[p];
	uint64_t v = atomic_load_explicit(e, memory_order_relaxed);

	for (unsigned spins = 0;; spins++) {
		/* Acquire pairs with entry_unlock(): the object is whole. */
		if (!(v & E_LOCK) &&
		    atomic_compare_exchange_weak_explicit(e, &v, v | E_LOCK, memory_order_acquire,
							  memory_order_relaxed))
			return v;
		if (v & E_LOCK) {
			if (spins < 100)
				cpu_relax();
			else
				sched_yield();
			v = atomic_load_explicit(e, memory_order_relaxed);
		}
	}
}

/*
 * Store @v, unlocked, as page @p's entry.  Release: the object's bytes
 * and a SAME page's fill word are written before the entry names them,
 * for the next holder of the lock and, in a file, for a reopen after a
 * kill (a store the process made is in the page cache once done).
 */
static inline void entry_unlock(struct zstore *z, uint64_t p, uint64_t v)
{
	atomic_store_explicit(&z->index[p], v, memory_order_release);
}

/*
 * Lock page @p only if its entry names the object at @off and nobody
 * holds it: compaction must not wait for a page while it holds a class.
 */
static bool entry_trylock_object(struct zstore *z, uint64_t p, uint64_t off, uint64_t *old)
{
	uint64_t v = atomic_load_explicit(&z->index[p], memory_order_relaxed);

	if ((v & E_LOCK) || !has_object(v) || entry_off(v) != off)
		return false;
	*old = v;
	return atomic_compare_exchange_strong_explicit(&z->index[p], &v, v | E_LOCK,
						       memory_order_acquire, memory_order_relaxed);
}

/* ---- index pages: allocated while used ---- */

/*
 * Each machine page of index has a word of state, in private memory:
 * whether it is present (allocated and counted), whether its page of fill
 * words is, and a count of its entries in use plus the references of the
 * calls working in it.  The count going to 0 gives both pages back.
 * Sequentially consistent: see the note at zstore_resize().
 */
#define IP_PRESENT	(1u << 31)
#define IP_FILL		(1u << 30)
#define IP_COUNT	(IP_FILL - 1)

/* The state of the index page holding page @p's entry. */
static inline _Atomic uint32_t *ipage_of(struct zstore *z, uint64_t p)
{
	return &z->ipage[p / z->per_ipage];
}

/* Where index page @ip (or its fill words: @region) lies in the mapping. */
static inline uint64_t ipage_off(const struct zstore *z, uint64_t region, uint64_t ip)
{
	return region + ip * z->a.gran;
}

/*
 * Count the index or fill page at @off as the store's memory, or stop.
 * Normally it is allocated then, and given back after; once the whole
 * index was made resident (zstore_prefault_index()) it stays resident,
 * and only the count changes: then a write needs no fresh memory for it.
 */
static int ipage_grow(struct zstore *z, uint64_t off)
{
	return z->index_resident ? zalloc_charge(&z->a, z->a.gran) :
				   zalloc_grow(&z->a, off, z->a.gran);
}

static void ipage_shrink(struct zstore *z, uint64_t off)
{
	if (z->index_resident)
		zalloc_uncount(&z->a, z->a.gran);
	else
		zalloc_shrink(&z->a, off, z->a.gran);
}

/*
 * Take a reference on the index page of page @p, which keeps it from
 * being given back.  1; 0 if it is absent (every entry in it EMPTY) and
 * @grow is false; with @grow an absent one is allocated first, or
 * -ENOSPC.  Making a page present or absent happens under ilock; taking a
 * reference on a present one is a compare-exchange.
 */
static int ipage_get(struct zstore *z, uint64_t p, bool grow)
{
	_Atomic uint32_t *st = ipage_of(z, p);
	uint32_t v = atomic_load(st);
	int ret = 0;

	while (v & IP_PRESENT)
		if (atomic_compare_exchange_weak(st, &v, v + 1))
			return 1;
	if (!grow)
		return 0;
	pthread_mutex_lock(&z->ilock);
	v = atomic_load(st);
	if (!(v & IP_PRESENT))
		ret = ipage_grow(z, ipage_off(z, z->index_off, p / z->per_ipage));
	if (ret == 0)
		atomic_fetch_add(st, v & IP_PRESENT ? 1 : IP_PRESENT | 1);
	pthread_mutex_unlock(&z->ilock);
	return ret < 0 ? ret : 1;
}

/* Give index page @ip (and its fill words) back, if still unused. */
static void ipage_release(struct zstore *z, uint64_t ip)
{
	_Atomic uint32_t *st = &z->ipage[ip];
	uint32_t v;

	pthread_mutex_lock(&z->ilock);
	v = atomic_load(st);
	/* A get that won the race keeps it: the exchange then fails. */
	if ((v & IP_PRESENT) && !(v & IP_COUNT) && atomic_compare_exchange_strong(st, &v, 0)) {
		ipage_shrink(z, ipage_off(z, z->index_off, ip));
		if (v & IP_FILL)
			ipage_shrink(z, ipage_off(z, z->fill_off, ip));
	}
	pthread_mutex_unlock(&z->ilock);
}

/* Drop a reference of ipage_get(); the last one gives an unused page back. */
static void ipage_put(struct zstore *z, uint64_t p)
{
	if (((atomic_fetch_sub(ipage_of(z, p), 1) - 1) & IP_COUNT) == 0)
		ipage_release(z, p / z->per_ipage);
}

/* Make page @p's fill word's page present; the caller holds a reference. */
static int fill_get(struct zstore *z, uint64_t p)
{
	_Atomic uint32_t *st = ipage_of(z, p);
	int ret = 0;

	if (atomic_load(st) & IP_FILL)
		return 0;
	pthread_mutex_lock(&z->ilock);
	if (!(atomic_load(st) & IP_FILL)) {
		ret = ipage_grow(z, ipage_off(z, z->fill_off, p / z->per_ipage));
		if (ret == 0)
			atomic_fetch_or(st, IP_FILL);
	}
	pthread_mutex_unlock(&z->ilock);
	return ret;
}

/* ---- pages ---- */

/* What a page is to become: see encode(). */
struct scratch {
	struct lz4_table table;
	unsigned char page[ZPAGE];	/* a page read back, to merge a part into */
	unsigned char out[ZRAW_LIMIT];	/* the page compressed */
	unsigned type;
	uint32_t len;			/* bytes of data */
	uint64_t word;			/* SAME: the word */
	const void *data;		/* COMPRESSED: out; RAW: the page */
};

/* The device's size now: it lives in the header, so a reopen finds it. */
static inline uint64_t size_now(const struct zstore *z)
{
	return atomic_load(&z->hdr->size);
}

/* Whether @page is one 64-bit word repeated; the word in *@word. */
static bool same_filled(const void *page, uint64_t *word)
{
	const unsigned char *b = page;
	uint64_t w, v;

	memcpy(&w, b, sizeof(w));
	for (size_t i = sizeof(w); i < ZPAGE; i += sizeof(v)) {
		memcpy(&v, b + i, sizeof(v));
		if (v != w)
			return false;
	}
	*word = w;
	return true;
}

/* Decide how @page is stored: same-filled, compressed into s->out, or raw. */
static void encode(struct scratch *s, const void *page)
{
	if (same_filled(page, &s->word)) {
		s->type = s->word ? T_SAME : T_ZERO;
		s->len = 0;
		return;
	}
	s->len = (uint32_t)lz4_compress(&s->table, page, ZPAGE, s->out, ZRAW_LIMIT);
	s->type = s->len ? T_COMPRESSED : T_RAW;
	s->data = s->len ? (const void *)s->out : page;
	if (!s->len)
		s->len = ZPAGE;
}

/* Say once that a page could not be decoded: the store is damaged. */
static int corrupt_page(struct zstore *z, uint64_t p)
{
	if (!atomic_exchange(&z->said_corrupt, true))
		log_err("compressed store: page %llu does not decompress: the store is damaged; reads of it fail with EIO",
			(unsigned long long)p);
	return -EIO;
}

/* The 4096 bytes of page @p, whose entry (held locked) is @e, into @dst. */
static int load_page(struct zstore *z, uint64_t e, uint64_t p, unsigned char *dst)
{
	uint64_t word;

	switch (entry_type(e)) {
	case T_SAME:
		word = atomic_load_explicit(&z->fill[p], memory_order_relaxed);
		for (size_t i = 0; i < ZPAGE; i += sizeof(word))
			memcpy(dst + i, &word, sizeof(word));
		return 0;
	case T_RAW:
		memcpy(dst, zalloc_data(&z->a, entry_off(e), ZRAW_CLASS), ZPAGE);
		return 0;
	case T_COMPRESSED:
		if (lz4_decompress(zalloc_data(&z->a, entry_off(e), entry_class(e)),
				   entry_len(e), dst, ZPAGE) != ZPAGE)
			return corrupt_page(z, p);
		return 0;
	default:
		mem_zero(dst, ZPAGE);
		return 0;
	}
}

/* Relaxed: the counts order nothing, a reader takes them as they come. */
static inline void count(_Atomic uint64_t *c, uint64_t v, bool add)
{
	if (add)
		atomic_fetch_add_explicit(c, v, memory_order_relaxed);
	else
		atomic_fetch_sub_explicit(c, v, memory_order_relaxed);
}

/* Keep the counts of zstore_stats() as page entry @e comes or goes. */
static void account(struct zstore *z, uint64_t e, bool add)
{
	unsigned type = entry_type(e);

	if (type == T_ZERO || type == T_SAME)
		count(&z->same_pages, 1, add);
	if (!has_object(e))
		return;
	count(&z->stored_pages, 1, add);
	count(&z->compr_bytes, entry_len(e), add);
	if (type == T_RAW) {
		count(&z->huge_pages, 1, add);
		if (add)
			count(&z->huge_since, 1, true);
	}
}

/*
 * Put what encode() made of page @p where it lives: nowhere (ZERO), the
 * fill words (SAME), or a new object; the entry to switch to in *@entry.
 * When memory is refused, compacting may free a slab: that is tried once.
 */
static int place(struct zstore *z, struct scratch *s, uint64_t p, uint64_t *entry)
{
	unsigned cls;
	uint64_t off;
	int ret;

	if (s->type == T_ZERO || s->type == T_SAME) {
		if (s->type == T_SAME) {
			ret = fill_get(z, p);
			if (ret < 0)
				return ret;
			/* Ordered before the entry by entry_unlock()'s release. */
			atomic_store_explicit(&z->fill[p], s->word, memory_order_relaxed);
		}
		*entry = entry_make(s->type, 0, 0);
		return 0;
	}
	cls = zalloc_class(s->len);
	ret = zalloc_alloc(&z->a, cls, p, &off);
	if (ret == -ENOSPC && zstore_compact(z) > 0)
		ret = zalloc_alloc(&z->a, cls, p, &off);
	if (ret < 0)
		return ret;
	memcpy(zalloc_data(&z->a, off, cls), s->data, s->len);
	*entry = entry_make(s->type, s->len, off);
	return 0;
}

/*
 * Write @len bytes at @at of page @p from @src, or zeros if @src is NULL
 * (then @len < ZPAGE: whole pages are dropped instead).  A whole page is
 * encoded before the lock is taken; a part is merged under it.  On any
 * failure the page is left as it was.
 */
static int store_page(struct zstore *z, struct scratch *s, uint64_t p, const void *src,
		      unsigned at, unsigned len)
{
	uint64_t old, new;
	int ret;

	if (len == ZPAGE)
		encode(s, src);
	ret = ipage_get(z, p, src != NULL);
	if (ret <= 0)
		return ret;	/* zeroing part of a page never written */
	old = entry_lock(z, p);
	ret = -EIO;
	if (p >= (size_now(z) + ZPAGE - 1) / ZPAGE)
		goto unlock;	/* the device shrank under this write */
	if (len < ZPAGE) {
		ret = 0;
		if (!src && (entry_type(old) == T_EMPTY || entry_type(old) == T_ZERO))
			goto unlock;
		ret = load_page(z, old, p, s->page);
		if (ret < 0)
			goto unlock;
		if (src)
			memcpy(s->page + at, src, len);
		else
			memset(s->page + at, 0, len);
		encode(s, s->page);
	}
	ret = place(z, s, p, &new);
	if (ret < 0)
		goto unlock;
	/* Counted before the unlock: a zero of the page may follow at once. */
	if (entry_type(old) == T_EMPTY)
		atomic_fetch_add(ipage_of(z, p), 1);
	entry_unlock(z, p, new);
	account(z, old, false);
	account(z, new, true);
	if (has_object(old))
		zalloc_free(&z->a, entry_off(old));
	ipage_put(z, p);
	return 0;
unlock:
	entry_unlock(z, p, old);
	ipage_put(z, p);
	return ret;
}

/* Forget page @p: it reads as zeros and its memory goes back. */
static void drop_page(struct zstore *z, uint64_t p)
{
	uint64_t old;

	if (ipage_get(z, p, false) <= 0)
		return;
	old = entry_lock(z, p);
	if (entry_type(old) != T_EMPTY)
		atomic_fetch_sub(ipage_of(z, p), 1);
	entry_unlock(z, p, 0);
	account(z, old, false);
	if (has_object(old))
		zalloc_free(&z->a, entry_off(old));
	ipage_put(z, p);
}

/* Forget pages [@p, @end), stepping over index pages never used. */
static void drop_range(struct zstore *z, uint64_t p, uint64_t end)
{
	while (p < end) {
		if (atomic_load(ipage_of(z, p)) & IP_PRESENT)
			drop_page(z, p++);
		else
			p = (p / z->per_ipage + 1) * z->per_ipage;
	}
}

/* Read @len bytes at @at of page @p into @dst; @tmp holds a whole page. */
static int read_page(struct zstore *z, unsigned char *tmp, uint64_t p, unsigned char *dst,
		     unsigned at, unsigned len)
{
	uint64_t e;
	int ret = ipage_get(z, p, false);

	if (ret == 0) {
		mem_zero(dst, len);
		return 0;
	}
	e = entry_lock(z, p);
	if (len == ZPAGE) {
		ret = load_page(z, e, p, dst);
	} else {
		ret = load_page(z, e, p, tmp);
		memcpy(dst, tmp + at, len);
	}
	entry_unlock(z, p, e);
	ipage_put(z, p);
	return ret;
}

/* Is [@off, @off + @len) a request this store can take? */
static int check_io(struct zstore *z, uint64_t off, uint64_t len)
{
	uint64_t size = size_now(z);

	if (off % SECTOR || len % SECTOR)
		return -EINVAL;
	return off > size || len > size - off ? -EIO : 0;
}

/* Page by page; a page read whole decompresses straight into @buf. */
int zstore_read(struct zstore *z, void *buf, uint64_t off, uint32_t len)
{
	unsigned char tmp[ZPAGE], *dst = buf;
	int ret = len > ZSTORE_MAX_IO ? -EINVAL : check_io(z, off, len);

	while (ret == 0 && len) {
		unsigned at = off % ZPAGE, n = ZPAGE - at < len ? ZPAGE - at : len;

		ret = read_page(z, tmp, off / ZPAGE, dst, at, n);
		dst += n;
		off += n;
		len -= n;
	}
	return ret;
}

/* Page by page, with one scratch (24 KiB, on the stack): no allocation. */
int zstore_write(struct zstore *z, const void *buf, uint64_t off, uint32_t len)
{
	const unsigned char *src = buf;
	struct scratch s;
	int ret = len > ZSTORE_MAX_IO ? -EINVAL : check_io(z, off, len);

	while (ret == 0 && len) {
		unsigned at = off % ZPAGE, n = ZPAGE - at < len ? ZPAGE - at : len;

		ret = store_page(z, &s, off / ZPAGE, src, at, n);
		src += n;
		off += n;
		len -= n;
	}
	return ret;
}

/* Parts of pages at either end are written zeros; whole pages dropped. */
int zstore_zero(struct zstore *z, uint64_t off, uint64_t len)
{
	uint64_t end = off + len;
	struct scratch s;
	int ret = check_io(z, off, len);

	if (ret < 0 || !len)
		return ret;
	if (off % ZPAGE) {		/* the head: part of a page */
		unsigned at = off % ZPAGE, n = ZPAGE - at < len ? ZPAGE - at : (unsigned)len;

		ret = store_page(z, &s, off / ZPAGE, NULL, at, n);
		off += n;
	}
	if (ret == 0 && off < end && end % ZPAGE)	/* the tail */
		ret = store_page(z, &s, end / ZPAGE, NULL, 0, end % ZPAGE);
	if (ret == 0 && off < end)
		drop_range(z, off / ZPAGE, end / ZPAGE);
	return ret;
}

/*
 * A shrink stores the new size, then drops the pages past it; a write
 * checks the size with its page locked.  Either the write locked first
 * and the drop, waiting for the lock, undoes it; or the size was stored
 * first and the write sees it.  The drop steps over absent index pages:
 * a write that makes one present does so (sequentially consistent)
 * after the drop looked, and so after the size was stored.
 */
int zstore_resize(struct zstore *z, uint64_t new_size)
{
	uint64_t old;
	struct scratch s;
	int ret = 0;

	if (new_size % SECTOR || new_size > z->hdr->max_size) {
		log_err("compressed store: cannot resize to %llu bytes: a multiple of 512 up to %llu is needed",
			(unsigned long long)new_size, (unsigned long long)z->hdr->max_size);
		return -EINVAL;
	}
	pthread_mutex_lock(&z->resize_lock);
	old = size_now(z);
	/* Bytes past the end of a partial last page are not kept: zero them. */
	if (new_size > old && old % ZPAGE)
		ret = store_page(z, &s, old / ZPAGE, NULL, old % ZPAGE, ZPAGE - old % ZPAGE);
	if (ret == 0) {
		atomic_store(&z->hdr->size, new_size);
		drop_range(z, (new_size + ZPAGE - 1) / ZPAGE, (old + ZPAGE - 1) / ZPAGE);
	}
	pthread_mutex_unlock(&z->resize_lock);
	return ret;
}

/* ---- compaction ---- */

/*
 * Move one object as zalloc_compact_next() planned, if its page is free
 * and its entry still names it: copy it, then switch the entry.  A crash
 * in between leaves the entry naming the old copy, still whole.
 */
static bool move_object(struct zstore *z, unsigned cls, const struct zmove *mv)
{
	uint64_t p = mv->owner, e;
	bool moved = false;

	if (p >= z->max_pages || ipage_get(z, p, false) <= 0)
		return false;
	if (entry_trylock_object(z, p, mv->src, &e)) {
		memcpy(zalloc_data(&z->a, mv->dst, cls), zalloc_data(&z->a, mv->src, cls),
		       entry_len(e));
		entry_unlock(z, p, entry_make(entry_type(e), entry_len(e), mv->dst));
		moved = true;
	}
	ipage_put(z, p);
	return moved;
}

/* One pass over class @cls (see zalloc.h); the objects moved. */
static int compact_class(struct zstore *z, unsigned cls)
{
	struct zmove mv;
	int moved = 0;

	zalloc_compact_begin(&z->a, cls);
	while (zalloc_compact_next(&z->a, cls, &mv)) {
		bool ok = move_object(z, cls, &mv);

		zalloc_compact_done(&z->a, cls, &mv, ok);
		moved += ok;
	}
	zalloc_compact_end(&z->a, cls);
	return moved;
}

/*
 * The index and fill words together, at most some MiB for a device of
 * some GiB: made resident now, they stay so (ipage_grow()).  Their pages
 * not in use are not counted.
 */
int zstore_prefault_index(struct zstore *z)
{
	int ret = zalloc_prefault(&z->a, z->index_off, z->a.arena - z->index_off);

	if (ret == 0)
		z->index_resident = true;
	return ret;
}

/* Every class in turn: a class's lock is held only for its own pass. */
int zstore_compact(struct zstore *z)
{
	long moved = 0;

	for (unsigned cls = 0; cls < ZNR_CLASSES; cls++)
		moved += compact_class(z, cls);
	return moved > INT_MAX ? INT_MAX : (int)moved;
}

/* The counts, each read on its own: under writes, not one instant's. */
bool zstore_file_holds_store(int fd)
{
	uint64_t magic;

	return pread(fd, &magic, sizeof(magic), 0) == (ssize_t)sizeof(magic) &&
	       magic == ZSTORE_MAGIC;
}

uint64_t zstore_size(const struct zstore *z)
{
	return size_now(z);
}

void zstore_stats(struct zstore *z, struct zstore_stats *st)
{
	/* As zram counts it: every page that holds data, same-filled too. */
	st->orig_data_size = (atomic_load(&z->stored_pages) + atomic_load(&z->same_pages)) * ZPAGE;
	st->compr_data_size = atomic_load(&z->compr_bytes);
	st->mem_used_total = atomic_load(&z->a.used);
	st->mem_limit = z->a.limit;
	st->mem_used_max = atomic_load(&z->a.used_max);
	st->same_pages = atomic_load(&z->same_pages);
	st->pages_compacted = atomic_load(&z->a.compacted) / ZPAGE;
	st->huge_pages = atomic_load(&z->huge_pages);
	st->huge_pages_since = atomic_load(&z->huge_since);
}

/* ---- reopening: the index is the truth ---- */

/* Is @e a valid entry for page @p?  Claims its object; 0 or -EUCLEAN. */
static int check_entry(struct zstore *z, uint64_t p, uint64_t e)
{
	uint32_t len = entry_len(e);

	switch (entry_type(e)) {
	case T_EMPTY:
		return e ? -EUCLEAN : 0;
	case T_ZERO:
		return e == entry_make(T_ZERO, 0, 0) ? 0 : -EUCLEAN;
	case T_SAME:
		return e == entry_make(T_SAME, 0, 0) && atomic_load(ipage_of(z, p)) & IP_FILL ?
		       0 : -EUCLEAN;
	case T_COMPRESSED:
		if (!len || len > ZRAW_LIMIT)
			return -EUCLEAN;
		return zalloc_rebuild_claim(&z->a, entry_off(e), entry_class(e), p);
	case T_RAW:
		if (len != ZPAGE)
			return -EUCLEAN;
		return zalloc_rebuild_claim(&z->a, entry_off(e), ZRAW_CLASS, p);
	default:
		return -EUCLEAN;
	}
}

/* Check and claim the entries of index page @ip, which holds data. */
static int rebuild_ipage(struct zstore *z, uint64_t ip)
{
	uint64_t first = ip * z->per_ipage, end = first + z->per_ipage;
	uint64_t pages = (size_now(z) + ZPAGE - 1) / ZPAGE;
	uint32_t live = 0;

	if (end > z->max_pages)
		end = z->max_pages;
	for (uint64_t p = first; p < end; p++) {
		uint64_t was = atomic_load(&z->index[p]), e = was & ~E_LOCK;

		if (p >= pages)
			e = 0;		/* left by a shrink under way */
		if (check_entry(z, p, e) < 0) {
			log_err("compressed store: index entry %#llx of page %llu is not valid: the store file is damaged (remove it, or keep it to look into)",
				(unsigned long long)e, (unsigned long long)p);
			return -EUCLEAN;
		}
		if (e != was)
			atomic_store(&z->index[p], e);
		account(z, e, true);
		live += e != 0;
	}
	atomic_fetch_or(&z->ipage[ip], IP_PRESENT | live);
	return 0;
}

/* After rebuilding: count index and fill pages in use, give back the rest. */
static void settle_ipage(struct zstore *z, uint64_t ip)
{
	uint32_t v = atomic_load(&z->ipage[ip]);

	if (v & IP_PRESENT)
		zalloc_count(&z->a, z->a.gran);
	if (v & IP_FILL)
		zalloc_count(&z->a, z->a.gran);
	if (v & IP_COUNT)
		return;
	/* No entry in use: give back what the file holds there. */
	atomic_store(&z->ipage[ip], 0);
	if (v & IP_PRESENT)
		zalloc_shrink(&z->a, ipage_off(z, z->index_off, ip), z->a.gran);
	if (v & IP_FILL)
		zalloc_shrink(&z->a, ipage_off(z, z->fill_off, ip), z->a.gran);
}

/*
 * Rebuild everything but the index from the index of a file of
 * @file_size bytes: see the crash rule at the top.
 */
static int rebuild(struct zstore *z, uint64_t file_size, uint64_t index_len)
{
	uint64_t pos, start, stop, ip;
	int ret;

	ret = zalloc_rebuild_begin(&z->a, (file_size - z->a.arena) / z->a.slab_size);
	if (ret < 0) {
		log_err("compressed store: the file is larger than its store can be: it is damaged");
		return ret;
	}
	/* Fill pages first: a SAME entry must find its own. */
	pos = z->fill_off;
	while ((ret = zalloc_next_data(&z->a, &pos, z->fill_off + index_len, &start, &stop)) > 0)
		for (ip = (start - z->fill_off) / z->a.gran; ipage_off(z, z->fill_off, ip) < stop; ip++)
			atomic_fetch_or(&z->ipage[ip], IP_FILL);
	pos = z->index_off;
	while (ret == 0 && (ret = zalloc_next_data(&z->a, &pos, z->index_off + index_len, &start, &stop)) > 0) {
		ip = (start - z->index_off) / z->a.gran;
		for (ret = 0; ret == 0 && ipage_off(z, z->index_off, ip) < stop; ip++)
			ret = rebuild_ipage(z, ip);
	}
	if (ret < 0) {
		if (ret != -EUCLEAN)
			log_err("compressed store: cannot find the data in its file: %s", strerror(-ret));
		return ret;
	}
	zalloc_rebuild_end(&z->a);
	for (ip = 0; ip < z->nr_ipages; ip++)
		settle_ipage(z, ip);
	return 0;
}

/* ---- opening and closing ---- */

/* Where everything lies in a store of @max_size bytes; see the top. */
struct geometry {
	uint64_t max_pages, index_len, index_off, fill_off, arena_off, map_len;
	uint32_t slab_size, max_slabs;
};

/* A pure function of max_size and the machine page: a reopen checks it. */
static void geometry(uint64_t max_size, size_t gran, struct geometry *g)
{
	g->max_pages = (max_size + ZPAGE - 1) / ZPAGE;
	g->index_len = (g->max_pages * sizeof(uint64_t) + gran - 1) / gran * gran;
	g->slab_size = gran > ZSLAB ? (uint32_t)gran : ZSLAB;
	g->index_off = gran;
	g->fill_off = g->index_off + g->index_len;
	g->arena_off = g->fill_off + g->index_len;
	/* Room for every page raw, twice: compaction may come late. */
	g->max_slabs = (uint32_t)((2 * g->max_pages * ZPAGE + g->slab_size - 1) / g->slab_size +
				  2 * ZNR_CLASSES);
	g->map_len = g->arena_off + (uint64_t)g->max_slabs * g->slab_size;
}

/* Check the sizes asked for a new store; 0 or -EINVAL. */
static int check_sizes(uint64_t size, uint64_t max_size)
{
	if (size % SECTOR || max_size % SECTOR || !max_size || max_size < size ||
	    max_size > ZSTORE_MAX_SIZE) {
		log_err("compressed store: bad size %llu (max %llu): multiples of 512, up to %llu, are needed",
			(unsigned long long)size, (unsigned long long)max_size,
			(unsigned long long)ZSTORE_MAX_SIZE);
		return -EINVAL;
	}
	return 0;
}

/*
 * Read and check the header of the store in @cfg's file: it must be one
 * laid out by this code on a machine of this page size, and of the sizes
 * @cfg asks (0: any).  Its sizes in *@h; 0, -EINVAL or -EUCLEAN.
 */
static int read_header(const struct zstore_config *cfg, size_t gran, struct zstore_header *h)
{
	struct geometry g;

	if (pread(cfg->fd, h, sizeof(*h), 0) != (ssize_t)sizeof(*h) ||
	    atomic_load(&h->magic) != ZSTORE_MAGIC) {
		log_err("compressed store: the file holds no store (or its creation did not finish)");
		return -EINVAL;
	}
	if (h->version != ZSTORE_VERSION || h->page_size != ZPAGE || h->gran != gran ||
	    h->raw_limit != ZRAW_LIMIT || h->class_step != ZCLASS_STEP) {
		log_err("compressed store: the file's store is of version %u with %u-byte machine pages; this is version %u with %zu",
			h->version, h->gran, ZSTORE_VERSION, gran);
		return -EINVAL;
	}
	if ((cfg->size && cfg->size != h->size) || (cfg->max_size && cfg->max_size != h->max_size)) {
		log_err("compressed store: the file's store has %llu bytes (max %llu), not %llu (max %llu)",
			(unsigned long long)h->size, (unsigned long long)h->max_size,
			(unsigned long long)cfg->size, (unsigned long long)cfg->max_size);
		return -EINVAL;
	}
	if (check_sizes(h->size, h->max_size) < 0)
		return -EUCLEAN;
	geometry(h->max_size, gran, &g);
	if (h->slab_size != g.slab_size || h->index_off != g.index_off ||
	    h->fill_off != g.fill_off || h->arena_off != g.arena_off || h->max_slabs != g.max_slabs) {
		log_err("compressed store: the file's header disagrees with its sizes: it is damaged");
		return -EUCLEAN;
	}
	return 0;
}

/* Write the header of a new store; the magic last. */
static int lay_out(struct zstore *z, const struct geometry *g, uint64_t size, uint64_t max_size)
{
	struct zstore_header *h = z->hdr;
	int ret;

	if (z->fd >= 0 && ftruncate(z->fd, (off_t)g->arena_off) < 0) {
		ret = -errno;
		log_err("compressed store: cannot size its file: %s", strerror(-ret));
		return ret;
	}
	ret = zalloc_grow(&z->a, 0, z->a.gran);
	if (ret < 0) {
		log_err("compressed store: no memory for its first page (mem_limit, or the file system is full)");
		return ret;
	}
	h->version = ZSTORE_VERSION;
	h->page_size = ZPAGE;
	h->gran = (uint32_t)z->a.gran;
	h->slab_size = g->slab_size;
	h->raw_limit = ZRAW_LIMIT;
	h->class_step = ZCLASS_STEP;
	h->max_size = max_size;
	atomic_store(&h->size, size);
	h->index_off = g->index_off;
	h->fill_off = g->fill_off;
	h->arena_off = g->arena_off;
	h->max_slabs = g->max_slabs;
	atomic_store_explicit(&h->magic, ZSTORE_MAGIC, memory_order_release);
	return 0;
}

/* The file's size, checked to be a regular file (and empty if new). */
static int check_file(const struct zstore_config *cfg, uint64_t *file_size)
{
	struct stat st;

	if (fstat(cfg->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_err("compressed store: its file is not a regular file");
		return -EINVAL;
	}
	if (cfg->create && st.st_size) {
		log_err("compressed store: a new store needs an empty file; this one has %lld bytes",
			(long long)st.st_size);
		return -EINVAL;
	}
	*file_size = (uint64_t)st.st_size;
	return 0;
}

/*
 * Check what is asked (and a reopened file's header), map the store, then
 * lay out a new one or rebuild the allocator of a reopened one.
 */
int zstore_open(struct zstore *z, const struct zstore_config *cfg)
{
	size_t gran = (size_t)sysconf(_SC_PAGESIZE);
	bool reopen = cfg->fd >= 0 && !cfg->create;
	uint64_t size = cfg->size, max_size = cfg->max_size ? cfg->max_size : cfg->size;
	uint64_t file_size = 0;
	struct zstore_header h;
	struct geometry g;
	int ret;

	memset(z, 0, sizeof(*z));
	z->fd = cfg->fd;
	if (gran < ZPAGE || gran > ZSLAB || (gran & (gran - 1))) {
		log_err("compressed store: machine pages of %zu bytes are not supported", gran);
		return -EINVAL;
	}
	ret = cfg->fd >= 0 ? check_file(cfg, &file_size) : 0;
	if (ret == 0 && reopen)
		ret = read_header(cfg, gran, &h);
	if (ret == 0 && reopen) {
		size = h.size;
		max_size = h.max_size;
	}
	if (ret == 0)
		ret = check_sizes(size, max_size);
	if (ret < 0)
		return ret;
	geometry(max_size, gran, &g);
	if (reopen && file_size < g.arena_off) {
		log_err("compressed store: the file is shorter than its store's index: it is damaged");
		return -EUCLEAN;
	}
	ret = zalloc_init(&z->a, &(struct zalloc_config){
		.fd = z->fd, .gran = gran, .map_len = g.map_len, .arena = g.arena_off,
		.slab_size = g.slab_size, .max_slabs = g.max_slabs, .limit = cfg->mem_limit,
		.may_grow = cfg->may_grow, .ctx = cfg->ctx,
	});
	if (ret < 0)
		return ret;
	z->hdr = (struct zstore_header *)(void *)z->a.base;
	z->index = (_Atomic uint64_t *)(void *)(z->a.base + g.index_off);
	z->fill = (_Atomic uint64_t *)(void *)(z->a.base + g.fill_off);
	z->index_off = g.index_off;
	z->fill_off = g.fill_off;
	z->max_pages = g.max_pages;
	z->per_ipage = (uint32_t)(gran / sizeof(uint64_t));
	z->nr_ipages = g.index_len / gran;
	z->ipage = calloc(z->nr_ipages, sizeof(*z->ipage));
	if (!z->ipage) {
		log_err("compressed store: no memory for its index's map");
		ret = -ENOMEM;
		goto err_zalloc;
	}
	pthread_mutex_init(&z->ilock, NULL);
	pthread_mutex_init(&z->resize_lock, NULL);
	if (reopen) {
		zalloc_count(&z->a, gran);	/* the header */
		ret = rebuild(z, file_size, g.index_len);
	} else {
		ret = lay_out(z, &g, size, max_size);
	}
	if (ret < 0)
		goto err_free;
	atomic_store(&z->a.used_max, atomic_load(&z->a.used));
	return 0;

err_free:
	pthread_mutex_destroy(&z->ilock);
	pthread_mutex_destroy(&z->resize_lock);
	free(z->ipage);
err_zalloc:
	zalloc_destroy(&z->a);
	return ret;
}

/* Nothing to write: the file already holds everything, the index first. */
void zstore_close(struct zstore *z)
{
	if (!z->a.base)
		return;
	pthread_mutex_destroy(&z->ilock);
	pthread_mutex_destroy(&z->resize_lock);
	free(z->ipage);
	zalloc_destroy(&z->a);
}
