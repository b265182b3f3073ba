/*
 * zalloc.c - the memory of a compressed store and its object allocator:
 * see zalloc.h for the slabs, classes and owner words.
 *
 * A slab hands out its slots first in order (fresh), then from the free
 * list its freed slots form; so a new slab's memory is touched only as it
 * fills.  A class keeps its slabs in fullness groups, like zsmalloc: it
 * allocates from the fullest slab that has room, which keeps slabs full,
 * and the moment a slab's last object is freed the slab's memory goes
 * back to the machine (MADV_DONTNEED, or a hole punched in the file) and
 * its place in the arena is reused by the next slab any class needs.
 * What frees fragmented slabs, those with a few objects left, is
 * compaction, which zstore.c drives through zalloc_compact_*().
 */
#define _GNU_SOURCE
#include "zalloc.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#define NO_SLAB		UINT32_MAX
#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED	24	/* Linux 5.18 */
#endif
#define NO_SLOT		0xffffu
#define OWNED		1ULL	/* bit 0 of an owner word: an allocated slot */

/* ---- memory accounting ---- */

/* Remember the highest use seen (mem_used_max). */
static void note_max(struct zalloc *a, uint64_t used)
{
	uint64_t max = atomic_load_explicit(&a->used_max, memory_order_relaxed);

	while (used > max &&
	       !atomic_compare_exchange_weak_explicit(&a->used_max, &max, used,
						      memory_order_relaxed,
						      memory_order_relaxed))
		;
}

/*
 * Count @bytes more if the limit allows it and, if @ask, the caller
 * agrees.  The compare-exchange keeps concurrent growers from passing the
 * limit together; may_grow() is asked after, and refused bytes are
 * uncounted.
 */
static bool charge(struct zalloc *a, uint64_t bytes, bool ask)
{
	uint64_t used = atomic_load_explicit(&a->used, memory_order_relaxed);

	do {
		if (a->limit && used + bytes > a->limit)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(&a->used, &used, used + bytes,
							memory_order_relaxed,
							memory_order_relaxed));
	if (ask && a->may_grow && !a->may_grow(a->ctx, bytes)) {
		atomic_fetch_sub_explicit(&a->used, bytes, memory_order_relaxed);
		return false;
	}
	note_max(a, used + bytes);
	return true;
}

void zalloc_count(struct zalloc *a, uint64_t bytes)
{
	note_max(a, atomic_fetch_add_explicit(&a->used, bytes, memory_order_relaxed) + bytes);
}

int zalloc_charge(struct zalloc *a, uint64_t len)
{
	return charge(a, len, false) ? 0 : -ENOSPC;
}

void zalloc_uncount(struct zalloc *a, uint64_t len)
{
	atomic_fetch_sub_explicit(&a->used, len, memory_order_relaxed);
}

int zalloc_grow(struct zalloc *a, uint64_t off, uint64_t len)
{
	if (!charge(a, len, true))
		return -ENOSPC;
	/*
	 * tmpfs allocates the blocks now, or says ENOSPC; touching a hole
	 * of a full tmpfs through the mapping would be a SIGBUS instead.
	 * Beyond the end of the file this also makes it longer.
	 */
	if (a->fd >= 0 && fallocate(a->fd, 0, (off_t)off, (off_t)len) < 0) {
		int err = errno;

		atomic_fetch_sub_explicit(&a->used, len, memory_order_relaxed);
		return err == ENOSPC || err == EFBIG ? -ENOSPC : -err;
	}
	return 0;
}

/*
 * Give anonymous pages back.  A server used as swap locks its memory
 * (mlockall, MCL_ONFAULT: see lock_memory() in process.c), and
 * MADV_DONTNEED refuses locked pages; MADV_DONTNEED_LOCKED (Linux 5.18)
 * drops them too, and they lock again when next touched.
 */
static int drop_pages(void *p, uint64_t len)
{
	int ret = madvise(p, len, MADV_DONTNEED_LOCKED);

	if (ret < 0 && errno == EINVAL)
		ret = madvise(p, len, MADV_DONTNEED);
	return ret;
}

void zalloc_shrink(struct zalloc *a, uint64_t off, uint64_t len)
{
	int ret;

	if (a->fd >= 0)
		ret = fallocate(a->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				(off_t)off, (off_t)len);
	else
		ret = drop_pages(a->base + off, len);
	if (ret < 0 && !atomic_exchange(&a->punch_failed, true))
		log_err("compressed store: cannot give %llu bytes back to the machine: %s",
			(unsigned long long)len, strerror(errno));
	zalloc_uncount(a, len);
}

int zalloc_prefault(struct zalloc *a, uint64_t off, uint64_t len)
{
	/* As in zalloc_grow(): a hole of a full tmpfs would be a SIGBUS. */
	if (a->fd >= 0 && fallocate(a->fd, 0, (off_t)off, (off_t)len) < 0)
		return errno == ENOSPC || errno == EFBIG ? -ENOSPC : -errno;
	/*
	 * Page by page, not MADV_POPULATE_WRITE: that holds the process's
	 * mmap lock through the reclaim a fault may wait in, and a queue
	 * thread's mmap() would then wait for it, and the kernel for them.
	 */
	for (uint64_t at = off; at < off + len; at += a->gran)
		atomic_fetch_add_explicit((_Atomic uint64_t *)(void *)(a->base + at), 0,
					  memory_order_relaxed);
	return 0;
}

/* ---- slabs ---- */

/* Where slab @n starts in the mapping, and which slab holds @off. */
static inline uint64_t slab_off(const struct zalloc *a, uint32_t n)
{
	return a->arena + (uint64_t)n * a->slab_size;
}

static inline uint32_t slab_of(const struct zalloc *a, uint64_t off)
{
	return (uint32_t)((off - a->arena) / a->slab_size);
}

/* Take slab @n off the reserve's list, or put it on (under the slab lock). */
static uint32_t warm_pop(struct zalloc *a)
{
	uint32_t n = a->warm;

	a->warm = a->slab[n].next;
	atomic_fetch_sub_explicit(&a->nr_warm, 1, memory_order_relaxed);
	return n;
}

static void warm_push(struct zalloc *a, uint32_t n)
{
	a->slab[n].next = a->warm;
	a->warm = n;
	atomic_fetch_add_explicit(&a->nr_warm, 1, memory_order_relaxed);
}

/*
 * A slab of memory for some class: one of the reserve's if it holds any
 * (resident already: only the limit is asked), else a released one, else
 * the next after the highest used, whose memory is asked for first (and
 * touched only as the class fills it).  0 or -ENOSPC.
 */
static int slab_get(struct zalloc *a, uint32_t *n)
{
	uint32_t s;
	int ret = -ENOSPC;

	pthread_mutex_lock(&a->slab_lock);
	if (a->warm != NO_SLAB) {
		ret = zalloc_charge(a, a->slab_size);
		if (ret == 0)
			*n = warm_pop(a);
		pthread_mutex_unlock(&a->slab_lock);
		return ret;
	}
	s = a->free_slabs != NO_SLAB ? a->free_slabs : a->nr_slabs;
	if (s < a->max_slabs)
		ret = zalloc_grow(a, slab_off(a, s), a->slab_size);
	if (ret == 0) {
		if (s == a->free_slabs)
			a->free_slabs = a->slab[s].next;
		else
			a->nr_slabs++;
		*n = s;
	}
	pthread_mutex_unlock(&a->slab_lock);
	return ret;
}

/*
 * An empty slab: into the reserve, resident, if it is short; else its
 * memory goes back and its place is kept for reuse.
 */
static void slab_put(struct zalloc *a, uint32_t n)
{
	pthread_mutex_lock(&a->slab_lock);
	if (atomic_load_explicit(&a->nr_warm, memory_order_relaxed) < a->warm_target) {
		warm_push(a, n);
		pthread_mutex_unlock(&a->slab_lock);
		zalloc_uncount(a, a->slab_size);
		return;
	}
	pthread_mutex_unlock(&a->slab_lock);
	zalloc_shrink(a, slab_off(a, n), a->slab_size);
	pthread_mutex_lock(&a->slab_lock);
	a->slab[n].next = a->free_slabs;
	a->free_slabs = n;
	pthread_mutex_unlock(&a->slab_lock);
}

/* ---- the reserve ---- */

void zalloc_reserve_set(struct zalloc *a, uint32_t slabs)
{
	pthread_mutex_lock(&a->slab_lock);
	a->warm_target = slabs;
	pthread_mutex_unlock(&a->slab_lock);
}

bool zalloc_reserve_short(const struct zalloc *a)
{
	return atomic_load_explicit(&a->nr_warm, memory_order_relaxed) < a->warm_target;
}

/*
 * Make slab @n resident: its memory and, in private memory, its
 * metadata and raw owner words, which a class starting on it writes.
 * Nobody else uses the slab meanwhile.
 */
static int warm_up(struct zalloc *a, uint32_t n)
{
	unsigned raw = a->slab_size / ZPAGE;
	int ret = zalloc_prefault(a, slab_off(a, n), a->slab_size);

	if (ret < 0)
		return ret;
	memset(&a->raw_owner[(uint64_t)n * raw], 0, raw * sizeof(*a->raw_owner));
	a->slab[n].in_use = false;
	return 0;
}

int zalloc_reserve_fill(struct zalloc *a)
{
	int added = 0, ret = 0;

	while (ret == 0 && zalloc_reserve_short(a)) {
		uint32_t n = NO_SLAB;

		/* A place in the arena, taken under the lock... */
		pthread_mutex_lock(&a->slab_lock);
		if (a->free_slabs != NO_SLAB) {
			n = a->free_slabs;
			a->free_slabs = a->slab[n].next;
		} else if (a->nr_slabs < a->max_slabs) {
			n = a->nr_slabs++;
		}
		pthread_mutex_unlock(&a->slab_lock);
		if (n == NO_SLAB)
			return added ? added : -ENOSPC;
		/* ...its memory touched without it, then into the reserve. */
		ret = warm_up(a, n);
		pthread_mutex_lock(&a->slab_lock);
		if (ret == 0) {
			warm_push(a, n);
			added++;
		} else {
			a->slab[n].next = a->free_slabs;
			a->free_slabs = n;
		}
		pthread_mutex_unlock(&a->slab_lock);
	}
	return ret < 0 && !added ? ret : added;
}

/* ---- a class's slabs, by fullness ---- */

/* The fullness group of a slab of @c holding @used objects. */
static unsigned group_of(const struct zclass *c, unsigned used)
{
	return used >= c->per_slab ? ZNR_GROUPS - 1 : used * (ZNR_GROUPS - 1) / c->per_slab;
}

/* Take slab @n out of its group's list, or put it at the head of its own. */
static void unlink_slab(struct zalloc *a, struct zclass *c, uint32_t n)
{
	struct zslab *s = &a->slab[n];

	if (s->prev != NO_SLAB)
		a->slab[s->prev].next = s->next;
	else
		c->group[s->group] = s->next;
	if (s->next != NO_SLAB)
		a->slab[s->next].prev = s->prev;
}

static void link_slab(struct zalloc *a, struct zclass *c, uint32_t n)
{
	struct zslab *s = &a->slab[n];

	s->group = (uint8_t)group_of(c, s->used);
	s->prev = NO_SLAB;
	s->next = c->group[s->group];
	if (s->next != NO_SLAB)
		a->slab[s->next].prev = n;
	c->group[s->group] = n;
}

/* Move a slab whose use changed to the group it now belongs to. */
static void regroup(struct zalloc *a, struct zclass *c, uint32_t n)
{
	if (group_of(c, a->slab[n].used) != a->slab[n].group) {
		unlink_slab(a, c, n);
		link_slab(a, c, n);
	}
}

/* The fullest slab with a free slot, other than @not; NO_SLAB if none. */
static uint32_t fullest(const struct zalloc *a, const struct zclass *c, uint32_t not)
{
	for (int g = ZNR_GROUPS - 2; g >= 0; g--) {
		uint32_t n = c->group[g];

		if (n != NO_SLAB && n == not)
			n = a->slab[n].next;
		if (n != NO_SLAB)
			return n;
	}
	return NO_SLAB;
}

/* A slab of the emptiest non-empty group. */
static uint32_t emptiest(const struct zclass *c)
{
	for (unsigned g = 0; g < ZNR_GROUPS - 1; g++)
		if (c->group[g] != NO_SLAB)
			return c->group[g];
	return NO_SLAB;
}

/* ---- objects ---- */

/* Where slot @slot of slab @n of class @c starts. */
static inline uint64_t slot_off(const struct zalloc *a, const struct zclass *c,
				uint32_t n, unsigned slot)
{
	return slab_off(a, n) + (uint64_t)slot * c->size;
}

/* The word that says who owns the slot at @off, or which slot is free next. */
static inline uint64_t *owner_word(const struct zalloc *a, const struct zclass *c,
				   uint64_t off)
{
	if (c->hdr)
		return (uint64_t *)(void *)(a->base + off);
	return &a->raw_owner[(off - a->arena) / ZPAGE];
}

unsigned zalloc_class(uint32_t len)
{
	return len > ZRAW_LIMIT ? ZRAW_CLASS : (len + ZOBJ_HDR - 1) / ZCLASS_STEP;
}

/* Start using slab @n for class @cls (under the class lock). */
static void init_slab(struct zalloc *a, unsigned cls, uint32_t n)
{
	struct zslab *s = &a->slab[n];

	s->in_use = true;
	s->cls = (uint8_t)cls;
	s->used = 0;
	s->fresh = 0;
	s->free = NO_SLOT;
	a->cls[cls].slabs++;
	link_slab(a, &a->cls[cls], n);
}

/* Hand out a slot of slab @n (which has one) to @owner; its offset. */
static uint64_t take_slot(struct zalloc *a, struct zclass *c, uint32_t n, uint64_t owner)
{
	struct zslab *s = &a->slab[n];
	unsigned slot;
	uint64_t off;

	if (s->free != NO_SLOT) {
		slot = s->free;
		s->free = (uint16_t)(*owner_word(a, c, slot_off(a, c, n, slot)) >> 1);
	} else {
		slot = s->fresh++;
	}
	off = slot_off(a, c, n, slot);
	*owner_word(a, c, off) = owner << 1 | OWNED;
	s->used++;
	c->objects++;
	regroup(a, c, n);
	return off;
}

/* Return a slot; true if that emptied its slab, which is then released. */
static bool put_slot(struct zalloc *a, struct zclass *c, uint64_t off)
{
	uint32_t n = slab_of(a, off);
	struct zslab *s = &a->slab[n];

	*owner_word(a, c, off) = (uint64_t)s->free << 1;
	s->free = (uint16_t)((off - slab_off(a, n)) / c->size);
	s->used--;
	c->objects--;
	if (s->used) {
		regroup(a, c, n);
		return false;
	}
	unlink_slab(a, c, n);
	s->in_use = false;
	c->slabs--;
	slab_put(a, n);
	return true;
}

int zalloc_alloc(struct zalloc *a, unsigned cls, uint64_t owner, uint64_t *off)
{
	struct zclass *c = &a->cls[cls];
	uint32_t n;
	int ret;

	pthread_mutex_lock(&c->lock);
	n = fullest(a, c, NO_SLAB);
	if (n == NO_SLAB) {
		/* Not under the class lock: may_grow() may take its time. */
		pthread_mutex_unlock(&c->lock);
		ret = slab_get(a, &n);
		if (ret < 0)
			return ret;
		pthread_mutex_lock(&c->lock);
		init_slab(a, cls, n);
	}
	*off = take_slot(a, c, n, owner);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

void zalloc_free(struct zalloc *a, uint64_t off)
{
	/* The slab cannot change class: the object being freed is in it. */
	struct zclass *c = &a->cls[a->slab[slab_of(a, off)].cls];

	pthread_mutex_lock(&c->lock);
	put_slot(a, c, off);
	pthread_mutex_unlock(&c->lock);
}

/* ---- compaction ---- */

/* The class stays locked from begin to end: nothing else changes it. */
void zalloc_compact_begin(struct zalloc *a, unsigned cls)
{
	struct zclass *c = &a->cls[cls];

	pthread_mutex_lock(&c->lock);
	c->src = NO_SLAB;
	c->stop = false;
}

void zalloc_compact_end(struct zalloc *a, unsigned cls)
{
	pthread_mutex_unlock(&a->cls[cls].lock);
}

bool zalloc_compact_next(struct zalloc *a, unsigned cls, struct zmove *mv)
{
	struct zclass *c = &a->cls[cls];
	uint32_t dst;
	uint64_t w;

	if (c->stop)
		return false;
	if (c->src == NO_SLAB) {
		/*
		 * The other slabs can take all of the emptiest one's objects
		 * only if the class has a whole slab of free slots.
		 */
		if (c->slabs * c->per_slab - c->objects < c->per_slab)
			return false;
		c->src = emptiest(c);
		c->cursor = 0;
		if (c->src == NO_SLAB)
			return false;
	}
	do {
		/* Not reached: a slab is released when its last object goes. */
		if (c->cursor >= a->slab[c->src].fresh)
			return false;
		mv->src = slot_off(a, c, c->src, c->cursor++);
		w = *owner_word(a, c, mv->src);
	} while (!(w & OWNED));
	dst = fullest(a, c, c->src);
	if (dst == NO_SLAB)
		return false;
	mv->owner = w >> 1;
	mv->dst = take_slot(a, c, dst, mv->owner);
	return true;
}

void zalloc_compact_done(struct zalloc *a, unsigned cls, const struct zmove *mv,
			 bool moved)
{
	struct zclass *c = &a->cls[cls];

	if (!moved) {
		put_slot(a, c, mv->dst);	/* never empties: dst had objects */
		c->stop = true;
	} else if (put_slot(a, c, mv->src)) {
		c->src = NO_SLAB;
		atomic_fetch_add_explicit(&a->compacted, a->slab_size, memory_order_relaxed);
	}
}

/* ---- rebuilding after a reopen ---- */

int zalloc_rebuild_begin(struct zalloc *a, uint64_t nr_slabs)
{
	if (nr_slabs > a->max_slabs)
		return -EUCLEAN;
	a->nr_slabs = (uint32_t)nr_slabs;
	return 0;
}

int zalloc_rebuild_claim(struct zalloc *a, uint64_t off, unsigned cls, uint64_t owner)
{
	struct zclass *c = &a->cls[cls];
	uint64_t rel = off - a->arena, in, *w;
	struct zslab *s;
	uint32_t n;

	if (off < a->arena || rel / a->slab_size >= a->nr_slabs)
		return -EUCLEAN;
	n = slab_of(a, off);
	in = rel % a->slab_size;
	if (in % c->size || in / c->size >= c->per_slab)
		return -EUCLEAN;
	s = &a->slab[n];
	if (!s->in_use) {
		/* The first object found in this slab: forget its old words. */
		s->in_use = true;
		s->cls = (uint8_t)cls;
		s->fresh = (uint16_t)c->per_slab;
		for (unsigned i = 0; i < c->per_slab; i++)
			*owner_word(a, c, slot_off(a, c, n, i)) = 0;
	} else if (s->cls != cls) {
		return -EUCLEAN;
	}
	w = owner_word(a, c, off);
	if (*w & OWNED)
		return -EUCLEAN;
	*w = owner << 1 | OWNED;
	s->used++;
	return 0;
}

int zalloc_next_data(struct zalloc *a, uint64_t *pos, uint64_t end, uint64_t *start,
		     uint64_t *stop)
{
	off_t d, h;

	if (*pos >= end)
		return 0;
	d = lseek(a->fd, (off_t)*pos, SEEK_DATA);
	if (d < 0)
		return errno == ENXIO ? 0 : -errno;
	h = lseek(a->fd, d, SEEK_HOLE);
	if (h < 0)
		return -errno;
	*start = (uint64_t)d / a->gran * a->gran;
	*stop = (uint64_t)h < end ? (uint64_t)h : end;
	*pos = *stop;
	return *start < end;
}

/* Punch [@from, @to) slabs, unused after a reopen, in one call. */
static void release_run(struct zalloc *a, uint32_t from, uint32_t to)
{
	if (from < to && a->fd >= 0 &&
	    fallocate(a->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)slab_off(a, from), (off_t)(to - from) * a->slab_size) < 0 &&
	    !atomic_exchange(&a->punch_failed, true))
		log_err("compressed store: cannot give unused slabs back: %s", strerror(errno));
}

void zalloc_rebuild_end(struct zalloc *a)
{
	uint32_t run_end = a->nr_slabs;

	/* From the top down, so that the lowest free slab is reused first. */
	for (uint32_t n = a->nr_slabs; n-- > 0;) {
		struct zslab *s = &a->slab[n];
		struct zclass *c = &a->cls[s->cls];

		if (!s->in_use) {
			s->next = a->free_slabs;
			a->free_slabs = n;
			continue;
		}
		release_run(a, n + 1, run_end);
		run_end = n;
		s->free = NO_SLOT;
		for (unsigned i = c->per_slab; i-- > 0;) {
			uint64_t *w = owner_word(a, c, slot_off(a, c, n, i));

			if (!(*w & OWNED)) {
				*w = (uint64_t)s->free << 1;
				s->free = (uint16_t)i;
			}
		}
		c->slabs++;
		c->objects += s->used;
		link_slab(a, c, n);
		zalloc_count(a, a->slab_size);
	}
	release_run(a, 0, run_end);
}

/* ---- setting up ---- */

/*
 * No transparent huge pages for the store's anonymous memory: it grows
 * and shrinks 64 KiB at a time, and khugepaged, which fills a 2 MiB range
 * with one page in it, would hold memory the store has given back.
 */
static void no_huge_pages(void *p, size_t len)
{
	madvise(p, len, MADV_NOHUGEPAGE);	/* EINVAL: a kernel without THP */
}

/* Private memory for @len bytes of metadata, touched only where used. */
static void *map_private(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	no_huge_pages(p, len);
	return p;
}

int zalloc_init(struct zalloc *a, const struct zalloc_config *cfg)
{
	int flags = MAP_NORESERVE | (cfg->fd >= 0 ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS);
	void *base = MAP_FAILED;

	memset(a, 0, sizeof(*a));
	a->fd = cfg->fd;
	a->gran = cfg->gran;
	a->arena = cfg->arena;
	a->slab_size = cfg->slab_size;
	a->max_slabs = cfg->max_slabs;
	a->free_slabs = NO_SLAB;
	a->warm = NO_SLAB;
	a->limit = cfg->limit;
	a->may_grow = cfg->may_grow;
	a->ctx = cfg->ctx;
	pthread_mutex_init(&a->slab_lock, NULL);
	for (unsigned i = 0; i < ZNR_CLASSES; i++) {
		struct zclass *c = &a->cls[i];

		pthread_mutex_init(&c->lock, NULL);
		c->hdr = i == ZRAW_CLASS ? 0 : ZOBJ_HDR;
		c->size = i == ZRAW_CLASS ? ZPAGE : (i + 1) * ZCLASS_STEP;
		c->per_slab = a->slab_size / c->size;
		for (unsigned g = 0; g < ZNR_GROUPS; g++)
			c->group[g] = NO_SLAB;
	}
	if (cfg->map_len <= SIZE_MAX)
		base = mmap(NULL, (size_t)cfg->map_len, PROT_READ | PROT_WRITE, flags, cfg->fd, 0);
	if (base != MAP_FAILED) {
		a->base = base;
		a->map_len = (size_t)cfg->map_len;
		if (cfg->fd < 0)
			no_huge_pages(base, a->map_len);
	}
	a->meta_len = (size_t)cfg->max_slabs * sizeof(struct zslab);
	a->owner_len = (size_t)cfg->max_slabs * (cfg->slab_size / ZPAGE) * sizeof(uint64_t);
	a->slab = map_private(a->meta_len);
	a->raw_owner = map_private(a->owner_len);
	if (!a->base || !a->slab || !a->raw_owner) {
		log_err("compressed store: cannot reserve %llu MiB of address space: %s",
			(unsigned long long)((cfg->map_len + a->meta_len + a->owner_len) >> 20),
			strerror(errno));
		zalloc_destroy(a);
		return -ENOMEM;
	}
	return 0;
}

void zalloc_destroy(struct zalloc *a)
{
	pthread_mutex_destroy(&a->slab_lock);
	for (unsigned i = 0; i < ZNR_CLASSES; i++)
		pthread_mutex_destroy(&a->cls[i].lock);
	if (a->base)
		munmap(a->base, a->map_len);
	if (a->slab)
		munmap(a->slab, a->meta_len);
	if (a->raw_owner)
		munmap(a->raw_owner, a->owner_len);
	a->base = NULL;
	a->slab = NULL;
	a->raw_owner = NULL;
}
