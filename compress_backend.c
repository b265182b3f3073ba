/*
 * compress_backend.c - the compressed RAM store as a backend: see
 * compress_backend.h.  Read mem_backend.c first: this store keeps the
 * same rules (ask before allocating, fail one write with ENOSPC rather
 * than take the machine's last memory, give memory back on discard), with
 * zstore.c doing the compressing and zalloc.c the allocating.
 *
 * Used as swap.  The kernel swaps to the device when memory is short, and
 * waits for those writes to free memory; the queue threads serving them
 * may not wait for I/O themselves (PR_SET_IO_FLUSHER), so a write that
 * touched memory never touched before could wait for a free page for
 * ever (zalloc.h says why).  A store that may be swapped to (the server
 * locked its memory) therefore keeps the whole index resident when it is
 * small (zstore_prefault_index()) and a reserve of RESERVE_SLABS slabs
 * resident and free (zalloc_reserve_*), which the compactor thread, free
 * to wait for memory, tops up as writes use it.  Its budget counts
 * MemAvailable only, since its memory is locked and cannot spill to
 * swap: when that is short the store grows only from the reserve; when
 * the reserve runs dry too, a write needing a new slab fails with ENOSPC
 * at once (said once on stderr, by the compactor: a queue thread writing
 * to a log on tmpfs would need fresh memory too) and the kernel keeps the
 * page to try again later.  The reserve is topped up while MemAvailable
 * and SwapFree together exceed the machine's reserve: swapping to this
 * store is what frees memory, so free swap counts there.
 */
#define _GNU_SOURCE
#include "compress_backend.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MiB		(1ULL << 20)
/* A write in this many wakes the compactor to look (besides discards). */
#define COMPACT_EVERY	4096
/*
 * Compact when the store's memory exceeds what its pages need (their
 * compressed bytes, and an eighth for the index, the objects' headers and
 * the rounding to size classes) by more than this.
 */
#define COMPACT_SLACK	(4 * MiB)
/*
 * The reserve: 32 MiB, room for some 100 MiB of swapped pages compressed
 * 3x while the compactor tops it up.  Not counted in mem_used_total.
 */
#define RESERVE_SLABS	512

/* ---- memory ---- */

/* zalloc asks before the store grows: the machine's reserve decides. */
static bool may_grow(void *ctx, uint64_t bytes)
{
	struct compress_store *c = ctx;

	return mem_budget_take(&c->budget, bytes);
}

/*
 * A write failed with ENOSPC.  The budget says so itself when it refused;
 * otherwise it was the store's own limit, or a full file system: say
 * which, once, until a write succeeds again.
 */
static void write_refused(struct compress_store *c)
{
	struct zstore_stats st;
	char why[160];

	if (atomic_load(&c->budget.starved))
		return;
	zstore_stats(&c->z, &st);
	if (st.mem_limit && st.mem_used_total + 2 * ZSLAB > st.mem_limit)
		snprintf(why, sizeof(why), "the compressed store holds %llu MiB, its --mem-limit",
			 (unsigned long long)(st.mem_used_total >> 20));
	else
		snprintf(why, sizeof(why), "the compressed store's file system is full");
	mem_budget_refused(&c->budget, why);
}

/* ---- the reserve for swap-out writes ---- */

/* Fill the reserve up, unless that takes the machine's reserve. */
static void top_up(struct compress_store *c)
{
	uint64_t need = (uint64_t)RESERVE_SLABS * c->z.a.slab_size;

	if (zalloc_reserve_short(&c->z.a) &&
	    mem_beyond_reserve(mem_spare_now(), c->budget.reserve) >= need)
		zalloc_reserve_fill(&c->z.a);
}

/*
 * Get ready to be swapped to: the index resident if it is no larger than
 * the default reserve (1/32 of RAM: 16 bytes of it per 4 KiB of device),
 * and the reserve filled, before the first request.
 */
static void prepare_for_swap(struct compress_store *c)
{
	uint64_t index = c->z.a.arena - c->z.index_off;

	if (index <= mem_default_reserve() && zstore_prefault_index(&c->z) < 0)
		log_err("warning: compressed store: cannot make its %llu MiB index resident; used as swap, the device could wait for itself",
			(unsigned long long)(index >> 20));
	zalloc_reserve_set(&c->z.a, RESERVE_SLABS);
	top_up(c);
}

/* ---- compaction ---- */

/* Does the store hold much more memory than its pages need? */
static bool fragmented(struct compress_store *c)
{
	struct zstore_stats st;
	uint64_t need;

	zstore_stats(&c->z, &st);
	need = st.compr_data_size + st.compr_data_size / 8;
	return st.mem_used_total > need + COMPACT_SLACK;
}

/* Wake the compactor to look at the store. */
static void compactor_poke(struct compress_store *c)
{
	pthread_mutex_lock(&c->lock);
	c->wanted = true;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
}

/*
 * The compactor: when poked, top the reserve up, and, if the store's
 * memory is fragmented, move objects out of the emptiest slabs until it
 * is not (zstore_compact()).  Beside the queue threads, so that no
 * request waits for it, and free to wait for memory, which they are not.
 */
static void *compactor(void *arg)
{
	struct compress_store *c = arg;

	pthread_mutex_lock(&c->lock);
	while (!c->stop) {
		if (!c->wanted) {
			pthread_cond_wait(&c->wake, &c->lock);
			continue;
		}
		c->wanted = false;
		pthread_mutex_unlock(&c->lock);
		mem_budget_say(&c->budget);
		top_up(c);
		while (fragmented(c) && zstore_compact(&c->z) > 0)
			mem_budget_returned(&c->budget);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* ---- the backend ---- */

static int compress_read(void *data, void *buf, uint64_t off, uint32_t len)
{
	struct compress_store *c = data;
	char *p = buf;

	while (len) {
		uint32_t n = len < ZSTORE_MAX_IO ? len : ZSTORE_MAX_IO;
		int ret = zstore_read(&c->z, p, off, n);

		if (ret < 0)
			return ret;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int compress_write(void *data, const void *buf, uint64_t off, uint32_t len)
{
	struct compress_store *c = data;
	const char *p = buf;
	int ret = 0;

	while (len && ret == 0) {
		uint32_t n = len < ZSTORE_MAX_IO ? len : ZSTORE_MAX_IO;

		ret = zstore_write(&c->z, p, off, n);
		p += n;
		off += n;
		len -= n;
	}
	if (ret == -ENOSPC)
		write_refused(c);
	else if (ret == 0)
		mem_budget_resumed(&c->budget);
	/*
	 * Overwrites leave holes in slabs: now and then, have a look.  The
	 * reserve is topped up as soon as a write took from it, and what the
	 * budget has to say is said from the compactor's thread.
	 */
	if (atomic_fetch_add_explicit(&c->writes, 1, memory_order_relaxed) % COMPACT_EVERY ==
	    COMPACT_EVERY - 1 || zalloc_reserve_short(&c->z.a) || atomic_load(&c->budget.noted))
		compactor_poke(c);
	return ret;
}

/* DISCARD and WRITE_ZEROES: the pages are forgotten, their memory freed. */
static int compress_zero(void *data, uint64_t off, uint64_t len)
{
	struct compress_store *c = data;
	int ret = zstore_zero(&c->z, off, len);

	if (ret == -ENOSPC)
		write_refused(c);
	mem_budget_returned(&c->budget);
	compactor_poke(c);	/* and says what write_refused() may have noted */
	return ret;
}

const struct backend_ops compress_backend_ops = {
	.name = "compress",
	.read = compress_read,
	.write = compress_write,
	.discard = compress_zero,	/* forgotten data reads as zeros */
	.write_zeroes = compress_zero,
};

/* ---- setting up ---- */

/* The store's file: made (empty), or reopened; locked, and the one recorded. */
static int open_file(struct compress_store *c, const struct compress_store_config *cfg)
{
	c->fd = pinned_open_store(&c->dir, cfg->path, cfg->create, cfg->expect_dev,
				  cfg->expect_ino);
	if (c->fd < 0)
		return c->fd;
	c->created = cfg->create;
	c->st_dev = c->dir.dev;
	c->st_ino = c->dir.ino;
	return 0;
}

int compress_store_open(struct compress_store *c, const struct compress_store_config *cfg)
{
	struct zstore_config zc = {
		.size = cfg->size,
		.max_size = cfg->max_size > cfg->size ? cfg->max_size : cfg->size,
		.fd = -1,
		.create = cfg->create,
		.mem_limit = cfg->mem_limit,
		.may_grow = may_grow,
		.ctx = c,
	};
	int ret = 0;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->dir.dir_fd = -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->wake, NULL);
	mem_budget_init(&c->budget, cfg->reserve, cfg->path != NULL, cfg->locked);
	if (cfg->path)
		ret = open_file(c, cfg);
	if (ret == 0) {
		zc.fd = c->fd;
		ret = zstore_open(&c->z, &zc);
		if (ret < 0 && cfg->path)
			log_err("%s: cannot use it as the compressed store", cfg->path);
		if (ret == 0 && cfg->locked)
			prepare_for_swap(c);
	}
	if (ret == 0) {
		ret = -pthread_create(&c->compactor, NULL, compactor, c);
		if (ret < 0) {
			log_err("cannot start the compressed store's compactor: %s", strerror(-ret));
			zstore_close(&c->z);
		}
		c->compactor_started = ret == 0;
	}
	if (ret < 0) {
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
		if (c->created)
			pinned_unlink(&c->dir);	/* made here a moment ago */
		mem_budget_close(&c->budget);
	}
	pinned_close(&c->dir);
	return ret;
}

void compress_store_close(struct compress_store *c)
{
	if (c->compactor_started) {
		pthread_mutex_lock(&c->lock);
		c->stop = true;
		pthread_cond_signal(&c->wake);
		pthread_mutex_unlock(&c->lock);
		pthread_join(c->compactor, NULL);
		c->compactor_started = false;
		zstore_close(&c->z);
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	mem_budget_close(&c->budget);
}

int compress_store_resize(struct compress_store *c, uint64_t new_size)
{
	int ret = zstore_resize(&c->z, new_size);

	if (ret == 0)
		compactor_poke(c);
	return ret;
}

void compress_store_stats(struct compress_store *c, struct zstore_stats *st)
{
	zstore_stats(&c->z, st);
}

uint64_t compress_store_size(const struct compress_store *c)
{
	return zstore_size(&c->z);
}
