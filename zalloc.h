/*
 * zalloc.h - the memory of a compressed store (zstore.c): what it costs,
 * and the allocator of the objects that hold its compressed pages.
 *
 * The store is one mapping, addressed by offsets from its start.  This
 * file's half of it is the arena: slabs of ZSLAB bytes (64 KiB, or the
 * machine page if larger), each holding objects of one size class.  An
 * object is a slot of its class's size:
 *
 *   compressed page   [owner word, 8 bytes][LZ4 block]  classes 0..112,
 *                     32 to 3616 bytes, every 32 bytes
 *   raw page          [4096 bytes]                       class 113: 16 a slab
 *
 * The owner word names the device page whose index entry points at the
 * object (page << 1 | 1); compaction uses it to find the entry to switch.
 * A raw page has no room for one in its slab, so raw objects keep their
 * owner words in a private table (zsmalloc keeps a huge object's handle
 * out of line for the same reason).  A free slot's word holds the next
 * free slot of its slab instead, with bit 0 clear.
 *
 * Nothing here is believed after a crash: zstore.c rebuilds it all from
 * the index (zalloc_rebuild_*).  The allocator's own metadata (struct
 * zslab, the raw owners) lives in private memory reserved for the largest
 * arena and touched only where slabs are: 16 bytes a slab, plus 128 for a
 * slab of raw pages, not counted in the store's memory.
 *
 * Memory accounting is here too, because everything the store allocates
 * (slabs here, index pages in zstore.c) goes through zalloc_grow(): it
 * asks the limit and the caller's may_grow() first, and on a file
 * allocates the file's blocks (fallocate) before anything touches them,
 * so that a full tmpfs is an ENOSPC rather than a SIGBUS.
 *
 * The reserve.  A server used as swap serves the kernel's swap-out
 * writes from queue threads that may not wait for I/O (PR_SET_IO_FLUSHER):
 * when such a thread touches memory never touched before, the kernel must
 * find a free page without swapping, and under the very pressure that
 * makes it swap there is none; it never OOM-kills for such a fault
 * either, so the thread waits for ever, and the kernel with it, for the
 * write it is serving.  zram allocates from the kernel's own reserves
 * there; a userspace server needs one of its own.  So a backend may ask
 * for a reserve (zalloc_reserve_set()): free slabs whose memory is
 * already resident (touched, hence locked under mlockall; on a file,
 * allocated too), which a new slab is taken from first; a thread that
 * may wait fills it (zalloc_reserve_fill()), holding no lock while it
 * touches memory; an emptied slab goes back to it rather than to the
 * machine while it is short.  Its slabs are not in the store's memory
 * (mem_used_total) until taken: they count as the private metadata does.
 *
 * Locks: a mutex per class; a slab lock under it, held only to take or
 * return a slab.  Callers take a class lock while holding nothing of
 * this file's.
 */
#ifndef UBLK_MEM_ZALLOC_H
#define UBLK_MEM_ZALLOC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#define ZPAGE		4096u			/* a device page */
#define ZOBJ_HDR	8u			/* owner word of a compressed object */
#define ZCLASS_STEP	32u			/* class sizes: multiples of this */
/*
 * Longer LZ4 blocks are stored raw: 7/8 of a page, close to zram's
 * threshold (zsmalloc's huge class, 3632 bytes with 4 KiB pages and its
 * default chains of up to 8 pages), so the two store the same pages raw.
 */
#define ZRAW_LIMIT	(ZPAGE / 8 * 7)
#define ZSLAB		65536u			/* slab bytes, at least */
#define ZRAW_CLASS	((ZRAW_LIMIT + ZOBJ_HDR - 1) / ZCLASS_STEP + 1)
#define ZNR_CLASSES	(ZRAW_CLASS + 1)
#define ZNR_GROUPS	8			/* fullness groups of a class */

/* One slab, in private memory (see above). */
struct zslab {
	uint32_t prev, next;	/* in its class's group, or the free slabs */
	uint16_t used;		/* objects allocated */
	uint16_t fresh;		/* slots [fresh, per_slab) never handed out */
	uint16_t free;		/* first slot of the free list */
	uint8_t cls;
	uint8_t group;		/* fullness group; in_use says if any */
	bool in_use;		/* holds objects of class cls */
};

struct zclass {
	pthread_mutex_t lock;
	uint32_t size;		/* bytes a slot */
	uint32_t hdr;		/* owner word in the slot: ZOBJ_HDR, or 0 */
	uint32_t per_slab;	/* slots a slab */
	/*
	 * Slabs by fullness: group g holds those with used * (ZNR_GROUPS - 1)
	 * / per_slab == g, the last one full slabs.  Allocation takes from
	 * the fullest, compaction empties the emptiest.
	 */
	uint32_t group[ZNR_GROUPS];
	uint64_t slabs, objects;
	/* Compaction in progress: the slab being emptied, where, and why not. */
	uint32_t src;
	uint32_t cursor;
	bool stop;
};

struct zalloc {
	char *base;		/* the store's mapping; offsets are from here */
	size_t map_len;
	int fd;			/* its file, or -1: anonymous memory */
	size_t gran;		/* the machine page: madvise/punch granule */
	uint64_t arena;		/* offset of slab 0 */
	uint32_t slab_size;
	uint32_t max_slabs;	/* the arena reserved */
	uint32_t nr_slabs;	/* slabs ever used: the file holds this many */
	uint32_t free_slabs;	/* released slabs below nr_slabs, a list */
	uint32_t warm;		/* the reserve: resident free slabs, a list */
	_Atomic uint32_t nr_warm;
	uint32_t warm_target;	/* slabs the reserve should hold; 0: none */
	pthread_mutex_t slab_lock;
	struct zslab *slab;	/* max_slabs of them */
	uint64_t *raw_owner;	/* owner words of raw slots, by arena page */
	size_t meta_len, owner_len;
	struct zclass cls[ZNR_CLASSES];

	_Atomic uint64_t used;		/* bytes of the store's memory */
	_Atomic uint64_t used_max;
	uint64_t limit;			/* 0: none */
	bool (*may_grow)(void *ctx, uint64_t bytes);
	void *ctx;
	_Atomic uint64_t compacted;	/* bytes compaction gave back */
	_Atomic bool punch_failed;	/* said once */
};

struct zalloc_config {
	int fd;			/* the store's file, or -1 */
	size_t gran;
	uint64_t map_len;	/* the whole store, reserved */
	uint64_t arena;
	uint32_t slab_size;
	uint32_t max_slabs;
	uint64_t limit;
	bool (*may_grow)(void *ctx, uint64_t bytes);
	void *ctx;
};

/*
 * Map the whole store, @cfg->map_len bytes of @cfg->fd (MAP_SHARED) or of
 * anonymous memory (MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE), and set up
 * an allocator with no slabs over its arena.  0, or -ENOMEM after a
 * log_err() line (no address space).
 */
int zalloc_init(struct zalloc *a, const struct zalloc_config *cfg);
/* Unmap the store: a file's data stays in the file. */
void zalloc_destroy(struct zalloc *a);

/*
 * Make [@off, @off + @len) of the mapping part of the store's memory:
 * ask the limit and may_grow(), then (file) allocate its blocks.  0, or
 * -ENOSPC (refused, or the file system is full) with nothing changed.
 */
int zalloc_grow(struct zalloc *a, uint64_t off, uint64_t len);
/* Give [@off, @off + @len) back to the machine and stop counting it. */
void zalloc_shrink(struct zalloc *a, uint64_t off, uint64_t len);
/* Count @bytes already there (the header; a store reopened). */
void zalloc_count(struct zalloc *a, uint64_t bytes);

/*
 * For memory made resident beforehand (zalloc_prefault()): count @len
 * bytes more if the limit allows, asking nothing else; 0 or -ENOSPC.
 * zalloc_uncount() stops counting them and leaves them resident.
 */
int zalloc_charge(struct zalloc *a, uint64_t len);
void zalloc_uncount(struct zalloc *a, uint64_t len);

/*
 * Make [@off, @off + @len) resident without counting it: on a file,
 * allocate its blocks, then touch every machine page with an atomic add
 * of 0, which changes no byte even of memory in use.  0 or -errno.
 */
int zalloc_prefault(struct zalloc *a, uint64_t off, uint64_t len);

/* ---- the reserve (see the top) ---- */

/* Keep @slabs slabs in the reserve from now on (0: none). */
void zalloc_reserve_set(struct zalloc *a, uint32_t slabs);
/* Does the reserve hold fewer slabs than it should? */
bool zalloc_reserve_short(const struct zalloc *a);
/*
 * Top the reserve up, touching the slabs' memory with no lock held: the
 * slabs added (0: it was full), or -ENOSPC (the arena reserved is full,
 * or the file system).  From a thread that may wait for memory.
 */
int zalloc_reserve_fill(struct zalloc *a);

/* The class of an object holding @len bytes of page (ZPAGE: raw). */
unsigned zalloc_class(uint32_t len);

/* Where the data of the object at @off of class @cls starts. */
static inline char *zalloc_data(const struct zalloc *a, uint64_t off, unsigned cls)
{
	return a->base + off + a->cls[cls].hdr;
}

/*
 * Allocate an object of class @cls owned by device page @owner: its
 * offset in *@off.  A new slab comes from the reserve if it holds one
 * (only the limit is asked then), else from zalloc_grow().  0, or
 * -ENOSPC when a new slab is needed and refused (or the arena reserved
 * is full).
 */
int zalloc_alloc(struct zalloc *a, unsigned cls, uint64_t owner, uint64_t *off);
/* Free the object at @off; an emptied slab goes back to the machine. */
void zalloc_free(struct zalloc *a, uint64_t off);

/*
 * Compaction of one class, driven by zstore.c, which alone can switch
 * the index entries:
 *
 *   zalloc_compact_begin(a, cls);        takes the class lock
 *   while (zalloc_compact_next(a, cls, &mv))
 *       zalloc_compact_done(a, cls, &mv, move it: src -> dst, owner's entry);
 *   zalloc_compact_end(a, cls);          drops it
 *
 * next() picks an object of the emptiest slab and a slot for it in the
 * fullest other one, as long as the class has a whole slab of free slots
 * (else no slab can be emptied); done() frees the source slot if it was
 * moved, else the destination, and then ends the pass: an object that
 * cannot be moved now (its page busy) is left for the next compaction.
 */
struct zmove {
	uint64_t src, dst;	/* offsets of the object and of its new slot */
	uint64_t owner;		/* the device page said to own it */
};

void zalloc_compact_begin(struct zalloc *a, unsigned cls);
bool zalloc_compact_next(struct zalloc *a, unsigned cls, struct zmove *mv);
void zalloc_compact_done(struct zalloc *a, unsigned cls, const struct zmove *mv,
			 bool moved);
void zalloc_compact_end(struct zalloc *a, unsigned cls);

/*
 * Rebuilding after a reopen, single-threaded: begin() with the slabs the
 * file holds; claim() every object an index entry names (-EUCLEAN if it
 * cannot be an object of @cls, or is named twice); end() frees every slot
 * and slab nothing claimed, giving the slabs' memory back, and counts the
 * rest.
 */
int zalloc_rebuild_begin(struct zalloc *a, uint64_t nr_slabs);
/*
 * The next stretch [*@start, *@stop) of [*@pos, @end) of the file that
 * holds data, from machine page boundaries; it moves *@pos past it.  1, 0
 * when there is none, or -errno.  tmpfs knows its holes: a scan reads
 * only what was written, and reading a hole of a tmpfs mapping would
 * allocate it.
 */
int zalloc_next_data(struct zalloc *a, uint64_t *pos, uint64_t end, uint64_t *start,
		     uint64_t *stop);
int zalloc_rebuild_claim(struct zalloc *a, uint64_t off, unsigned cls, uint64_t owner);
void zalloc_rebuild_end(struct zalloc *a);

#endif /* UBLK_MEM_ZALLOC_H */
