/*
 * zone.c - host-managed zoned devices: the zone state machine in front
 * of a plain data backend.  Read zone.h first, then null_blk's zoned.c:
 * the conditions, limits and errors here are its.
 *
 * A sequential zone goes EMPTY -> IMP_OPEN (a write) or EXP_OPEN (an
 * OPEN) -> CLOSED (a CLOSE, or an implicit close to make room) -> FULL
 * (its write pointer reached the capacity, or a FINISH) -> EMPTY (a
 * RESET).  Open zones are IMP_OPEN and EXP_OPEN; active ones are those
 * plus CLOSED.  When a write or an OPEN needs a zone opened beyond
 * max_open, an implicitly open zone is closed, round robin, if the
 * active limit allows; otherwise the command fails with -ETOOMANYREFS
 * (BLK_STS_ZONE_OPEN_RESOURCE), or -EOVERFLOW (_ZONE_ACTIVE_RESOURCE) for
 * an EMPTY zone beyond max_active.  A write off the write pointer, past
 * the capacity or into a FULL zone fails with -EIO, as does a zone
 * command on a conventional zone.
 *
 * Where this differs from null_blk: a zone that is copying a write's
 * data is not picked for an implicit close (null_blk could close it
 * under the writer's feet); reads beyond a write pointer return zeros
 * (null_blk fills 0xff), like discarded data; FINISH gives back the
 * memory beyond the write pointer (RESET gives back the zone's, as
 * null_blk).  As in null_blk's zoned mode there is no discard nor
 * write_zeroes at all (see zone.h).
 *
 * Persistence.  Each zone's condition and write pointer are in the meta
 * mapping, shared with a tmpfs file for a recoverable device.  A write
 * pointer moves only after the inner store holds the data, and a
 * condition is stored after the write pointer it goes with, so a crash
 * leaves each zone either before or after a command, or between the two
 * stores, which zone_recover() can tell apart.
 */
#define _GNU_SOURCE
#include "zone.h"
#include "log.h"
#include "memory.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECTOR_SHIFT		9
#define MIN_ZONE_SIZE		4096ULL
#define ZONE_LOCKS		64	/* zones share these, zone % ZONE_LOCKS */
#define ZONE_META_MAGIC		0x656e6f7a6b6c6275ULL	/* "ublkzone" */
#define ZONE_META_VERSION	1

/* The start of the meta mapping: what the zones below were made for. */
struct zone_meta_header {
	uint64_t magic;		/* ZONE_META_MAGIC, stored last at creation */
	uint32_t version;
	uint32_t nr_zones;
	uint64_t size;
	uint64_t zone_size;
	uint64_t zone_capacity;
	uint32_t conventional;
	uint32_t max_open;
	uint32_t max_active;
	uint32_t reserved[3];
};

_Static_assert(sizeof(struct zone_meta_header) == 64, "zone state header layout");

/* One zone's state, after the header. */
struct zone_meta {
	uint64_t wp;		/* bytes written from the zone's start */
	uint32_t cond;		/* enum blk_zone_cond */
	uint32_t reserved;
};

/* ---- geometry and state helpers ---- */

/* The zone holding byte @off. */
static unsigned zone_no(const struct zoned *z, uint64_t off)
{
	return (unsigned)(off >> z->zone_shift);
}

/* The first byte of zone @zno. */
static uint64_t zone_start(const struct zoned *z, unsigned zno)
{
	return (uint64_t)zno << z->zone_shift;
}

/* Whether zone @zno is conventional: written anywhere, no write pointer. */
static bool zone_is_conv(const struct zoned *z, unsigned zno)
{
	return zno < z->nr_conv;
}

/* Whether [@off, @off + @len) lies inside the device (@len may be 0). */
static bool in_device(const struct zoned *z, uint64_t off, uint64_t len)
{
	return off < z->size && len <= z->size - off;
}

/* Whether all of [@off, @off + @len), @len > 0, is in conventional zones. */
static bool all_conv(const struct zoned *z, uint64_t off, uint64_t len)
{
	return zone_is_conv(z, zone_no(z, off + len - 1));
}

/* The lock serializing everything done to zone @zno (shared with others). */
static pthread_mutex_t *zone_lock(struct zoned *z, unsigned zno)
{
	return &z->locks[zno % z->nr_locks];
}

/* The write pointer; stable under the zone's lock or res_lock. */
static uint64_t wp_get(const struct zoned *z, unsigned zno)
{
	/* ACQUIRE: pairs with wp_set(): the data below it is in the store. */
	return __atomic_load_n(&z->meta[zno].wp, __ATOMIC_ACQUIRE);
}

/* Move the write pointer (zone lock and res_lock held). */
static void wp_set(struct zoned *z, unsigned zno, uint64_t wp)
{
	/* RELEASE: the data below @wp is stored before @wp is. */
	__atomic_store_n(&z->meta[zno].wp, wp, __ATOMIC_RELEASE);
}

/* Count one zone more (@add) or less in @cond, if it is counted. */
static void count_cond(struct zoned *z, unsigned cond, bool add)
{
	unsigned *n = cond == BLK_ZONE_COND_IMP_OPEN ? &z->nr_imp_open :
		      cond == BLK_ZONE_COND_EXP_OPEN ? &z->nr_exp_open :
		      cond == BLK_ZONE_COND_CLOSED ? &z->nr_closed : NULL;

	if (n)
		*n = add ? *n + 1 : *n - 1;
}

/* Move a zone to @cond, keeping the counters (res_lock held). */
static void set_cond(struct zoned *z, unsigned zno, unsigned cond)
{
	count_cond(z, z->meta[zno].cond, false);
	/* RELEASE: a write pointer stored before is stored first (zone_recover). */
	__atomic_store_n(&z->meta[zno].cond, cond, __ATOMIC_RELEASE);
	count_cond(z, cond, true);
}

/* What a zone closes to: EMPTY if nothing was written in it. */
static unsigned closed_cond(const struct zoned *z, unsigned zno)
{
	return wp_get(z, zno) ? BLK_ZONE_COND_CLOSED : BLK_ZONE_COND_EMPTY;
}

/* Forget [@off, @off + @len) in the inner store, if it can. */
static int inner_discard(struct zoned *z, uint64_t off, uint64_t len)
{
	if (!z->inner->discard || !len)
		return 0;
	return z->inner->discard(z->inner_data, off, len);
}

/* The same for a zone reset: it will be written before it is read. */
static int inner_forget(struct zoned *z, uint64_t off, uint64_t len)
{
	if (z->inner->forget && len)
		return z->inner->forget(z->inner_data, off, len);
	return inner_discard(z, off, len);
}

/* ---- zone resources (res_lock held), as null_blk's ---- */

/*
 * Close one implicitly open zone to make room for another, round robin
 * from where the last one was found.  A zone copying a write's data is
 * left alone.  Whether one was closed.
 */
static bool close_imp_open_zone(struct zoned *z)
{
	unsigned zno = z->imp_close_next;

	for (unsigned i = z->nr_conv; i < z->nr_zones; i++) {
		unsigned cur;

		if (zno >= z->nr_zones)
			zno = z->nr_conv;
		cur = zno++;
		if (z->meta[cur].cond != BLK_ZONE_COND_IMP_OPEN || z->writing[cur])
			continue;
		set_cond(z, cur, closed_cond(z, cur));
		z->imp_close_next = zno;
		return true;
	}
	return false;
}

/* Room for one more active zone: 0 or -EOVERFLOW. */
static int check_active(const struct zoned *z)
{
	if (!z->max_active ||
	    z->nr_imp_open + z->nr_exp_open + z->nr_closed < z->max_active)
		return 0;
	return -EOVERFLOW;
}

/*
 * Room for one more open zone, closing an implicitly open one if need be:
 * 0 or -ETOOMANYREFS.  Like null_blk, an implicit close also needs room
 * in the active limit, even when the zone to open is already CLOSED.
 */
static int check_open(struct zoned *z)
{
	if (!z->max_open || z->nr_imp_open + z->nr_exp_open < z->max_open)
		return 0;
	if (z->nr_imp_open && !check_active(z) && close_imp_open_zone(z))
		return 0;
	return -ETOOMANYREFS;
}

/* ZBC's "manage open zone resources" for an EMPTY or CLOSED zone. */
static int check_resources(struct zoned *z, unsigned zno)
{
	int ret;

	switch (z->meta[zno].cond) {
	case BLK_ZONE_COND_EMPTY:
		ret = check_active(z);
		if (ret)
			return ret;
		/* fallthrough */
	case BLK_ZONE_COND_CLOSED:
		return check_open(z);
	default:
		return -EIO;
	}
}

/* ---- writes ---- */

/*
 * Check a write of @len bytes at @zoff in sequential zone @zno and open
 * the zone implicitly if need be; with @writing, mark it as copying data
 * until write_end().  Zone lock held.  0 or -errno.
 */
static int write_begin(struct zoned *z, unsigned zno, uint64_t zoff, uint32_t len,
		       bool writing)
{
	uint64_t wp = wp_get(z, zno);
	unsigned cond;
	int ret = 0;

	if (zoff != wp || wp + len > z->zone_capacity)
		return -EIO;	/* off the write pointer, past capacity, or FULL */
	pthread_mutex_lock(&z->res_lock);
	cond = z->meta[zno].cond;
	if (cond == BLK_ZONE_COND_FULL) {
		ret = -EIO;
	} else if (cond == BLK_ZONE_COND_EMPTY || cond == BLK_ZONE_COND_CLOSED) {
		ret = check_resources(z, zno);
		if (!ret)
			set_cond(z, zno, BLK_ZONE_COND_IMP_OPEN);
	}
	if (!ret && writing)
		z->writing[zno] = true;
	pthread_mutex_unlock(&z->res_lock);
	return ret;
}

/*
 * After write_begin(..., true): if the data is in (@landed), advance the
 * write pointer by @len, and the zone is FULL at its capacity.
 */
static void write_end(struct zoned *z, unsigned zno, uint32_t len, bool landed)
{
	uint64_t wp = wp_get(z, zno) + len;

	pthread_mutex_lock(&z->res_lock);
	z->writing[zno] = false;
	if (landed) {
		wp_set(z, zno, wp);
		if (wp == z->zone_capacity)
			set_cond(z, zno, BLK_ZONE_COND_FULL);
	}
	pthread_mutex_unlock(&z->res_lock);
}

/*
 * Write @len bytes of @buf at *@zoff in sequential zone @zno, or with
 * @append at its write pointer, which *@zoff then says.  0 or -errno.
 */
static int seq_write(struct zoned *z, unsigned zno, const void *buf, uint64_t *zoff,
		     uint32_t len, bool append)
{
	pthread_mutex_t *lock = zone_lock(z, zno);
	int ret;

	pthread_mutex_lock(lock);
	if (append)
		*zoff = wp_get(z, zno);
	ret = write_begin(z, zno, *zoff, len, true);
	if (!ret) {
		ret = z->inner->write(z->inner_data, buf, zone_start(z, zno) + *zoff, len);
		write_end(z, zno, len, ret == 0);
	}
	pthread_mutex_unlock(lock);
	return ret;
}

/* ---- zone commands (zone lock held) ---- */

/* OPEN: make the zone explicitly open, as null_open_zone(). */
static int zone_open(struct zoned *z, unsigned zno)
{
	int ret = 0;

	pthread_mutex_lock(&z->res_lock);
	switch (z->meta[zno].cond) {
	case BLK_ZONE_COND_EXP_OPEN:
		break;
	case BLK_ZONE_COND_EMPTY:
	case BLK_ZONE_COND_CLOSED:
		ret = check_resources(z, zno);
		/* fallthrough */
	case BLK_ZONE_COND_IMP_OPEN:
		if (!ret)
			set_cond(z, zno, BLK_ZONE_COND_EXP_OPEN);
		break;
	default:
		ret = -EIO;	/* FULL */
	}
	pthread_mutex_unlock(&z->res_lock);
	return ret;
}

/* CLOSE: an open zone becomes CLOSED, or EMPTY if never written. */
static int zone_close(struct zoned *z, unsigned zno)
{
	int ret = 0;

	pthread_mutex_lock(&z->res_lock);
	switch (z->meta[zno].cond) {
	case BLK_ZONE_COND_CLOSED:
		break;
	case BLK_ZONE_COND_IMP_OPEN:
	case BLK_ZONE_COND_EXP_OPEN:
		set_cond(z, zno, closed_cond(z, zno));
		break;
	default:
		ret = -EIO;	/* EMPTY or FULL */
	}
	pthread_mutex_unlock(&z->res_lock);
	return ret;
}

/*
 * FINISH: the zone becomes FULL, its write pointer at its end (as
 * null_blk).  The data below the write pointer stays; the memory beyond
 * it is given back first: that part reads as zeros either way (see
 * zoned_read), so a crash before the state changes shows nothing.
 */
static int zone_finish(struct zoned *z, unsigned zno)
{
	uint64_t wp = wp_get(z, zno);
	int ret = 0;

	if (wp < z->zone_size) {
		ret = inner_discard(z, zone_start(z, zno) + wp, z->zone_size - wp);
		if (ret)
			return ret;
	}
	pthread_mutex_lock(&z->res_lock);
	switch (z->meta[zno].cond) {
	case BLK_ZONE_COND_FULL:
		goto out;
	case BLK_ZONE_COND_EMPTY:
	case BLK_ZONE_COND_CLOSED:
		ret = check_resources(z, zno);
		break;
	default:
		break;	/* IMP_OPEN, EXP_OPEN */
	}
	if (!ret) {
		wp_set(z, zno, z->zone_size);
		set_cond(z, zno, BLK_ZONE_COND_FULL);
	}
out:
	pthread_mutex_unlock(&z->res_lock);
	return ret;
}

/*
 * RESET: the zone becomes EMPTY and its memory is given back (lazily,
 * where the store can: mem_store_forget(); nothing beyond the write
 * pointer is ever read, so what it held does not matter).  With
 * @skip_empty (RESET_ALL), an EMPTY zone is left as it is.  A failed
 * discard is not the reset's failure: the zone reads as zeros below its
 * write pointer of 0 whatever the store still holds.
 */
static void zone_reset(struct zoned *z, unsigned zno, bool skip_empty)
{
	pthread_mutex_lock(&z->res_lock);
	if (skip_empty && z->meta[zno].cond == BLK_ZONE_COND_EMPTY) {
		pthread_mutex_unlock(&z->res_lock);
		return;
	}
	wp_set(z, zno, 0);
	set_cond(z, zno, BLK_ZONE_COND_EMPTY);
	pthread_mutex_unlock(&z->res_lock);
	(void)inner_forget(z, zone_start(z, zno), z->zone_size);
}

/* ---- the backend operations ---- */

/*
 * Read through the inner store; what lies beyond a sequential zone's
 * write pointer reads as zeros, even if a failed or interrupted write
 * left bytes there in the store.
 */
static int zoned_read(void *data, void *buf, uint64_t off, uint32_t len)
{
	struct zoned *z = data;
	char *p = buf;

	if (!in_device(z, off, len))
		return -EIO;
	while (len) {
		unsigned zno = zone_no(z, off);
		uint64_t zoff = off - zone_start(z, zno);
		uint32_t n = z->zone_size - zoff < len ? (uint32_t)(z->zone_size - zoff) : len;
		uint32_t valid = n;
		int ret;

		if (!zone_is_conv(z, zno)) {
			uint64_t wp = wp_get(z, zno);

			valid = wp <= zoff ? 0 : wp - zoff < n ? (uint32_t)(wp - zoff) : n;
		}
		if (valid) {
			ret = z->inner->read(z->inner_data, p, off, valid);
			if (ret)
				return ret;
		}
		mem_zero(p + valid, n - valid);
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* Conventional zones: through; sequential ones: at the write pointer. */
static int zoned_write(void *data, const void *buf, uint64_t off, uint32_t len)
{
	struct zoned *z = data;
	unsigned zno;
	uint64_t zoff;

	if (!in_device(z, off, len))
		return -EIO;
	zno = zone_no(z, off);
	if (zone_is_conv(z, zno)) {
		if (len && !all_conv(z, off, len))
			return -EIO;
		return z->inner->write(z->inner_data, buf, off, len);
	}
	zoff = off - zone_start(z, zno);
	return seq_write(z, zno, buf, &zoff, len, false);
}

/*
 * Check a WRITE before its data is copied (failing it early, and opening
 * its zone), then let the inner store allocate.  The write pointer moves
 * in zoned_write(), which checks again: the zone may have been closed
 * in between.
 */
static int zoned_prepare_write(void *data, uint64_t off, uint32_t len)
{
	struct zoned *z = data;
	unsigned zno;
	int ret;

	if (!in_device(z, off, len))
		return -EIO;
	zno = zone_no(z, off);
	if (!zone_is_conv(z, zno)) {
		pthread_mutex_lock(zone_lock(z, zno));
		ret = write_begin(z, zno, off - zone_start(z, zno), len, false);
		pthread_mutex_unlock(zone_lock(z, zno));
		if (ret)
			return ret;
	} else if (len && !all_conv(z, off, len)) {
		return -EIO;
	}
	if (!z->inner->prepare_write)
		return 0;
	return z->inner->prepare_write(z->inner_data, off, len);
}

/*
 * The inner store's memory for conventional zones, and for reads below
 * a write pointer; NULL for writes of sequential zones, which must go
 * through zoned_write() so the write pointer moves only once the data
 * is in, and for reads beyond a write pointer, which read as zeros.
 */
static void *zoned_direct(void *data, uint64_t off, uint32_t len, bool for_write)
{
	struct zoned *z = data;
	unsigned zno;

	if (!z->inner->direct || !len || !in_device(z, off, len))
		return NULL;
	zno = zone_no(z, off);
	if (!all_conv(z, off, len)) {
		if (for_write || zone_no(z, off + len - 1) != zno ||
		    off + len > zone_start(z, zno) + wp_get(z, zno))
			return NULL;
	}
	return z->inner->direct(z->inner_data, off, len, for_write);
}

/* Flush the inner store, if it has anything to flush. */
static int zoned_flush(void *data)
{
	struct zoned *z = data;

	return z->inner->flush ? z->inner->flush(z->inner_data) : 0;
}

/* No zero copy: io_uring would write behind the write pointer's back. */
static int zoned_file(void *data)
{
	(void)data;
	return -1;
}

/* Describe zone @zno as the kernel wants it (res_lock held). */
static void describe_zone(const struct zoned *z, unsigned zno, struct blk_zone *bz)
{
	uint64_t start = zone_start(z, zno);

	memset(bz, 0, sizeof(*bz));
	bz->start = start >> SECTOR_SHIFT;
	bz->len = z->zone_size >> SECTOR_SHIFT;
	if (zone_is_conv(z, zno)) {
		/* null_blk's: no write pointer, so one past the end. */
		bz->wp = bz->start + bz->len;
		bz->type = BLK_ZONE_TYPE_CONVENTIONAL;
		bz->cond = BLK_ZONE_COND_NOT_WP;
		bz->capacity = bz->len;
		return;
	}
	bz->wp = (start + wp_get(z, zno)) >> SECTOR_SHIFT;
	bz->type = BLK_ZONE_TYPE_SEQWRITE_REQ;
	bz->cond = (uint8_t)z->meta[zno].cond;
	bz->capacity = z->zone_capacity >> SECTOR_SHIFT;
}

/*
 * Fill @buf with up to @nr_zones descriptors from the zone holding @off,
 * as many as there are and as fit in @len; one snapshot of them all.
 * When that is fewer than asked and room is left, a zeroed descriptor
 * follows the last (ublk_cmd.h: UBLK_IO_OP_REPORT_ZONES).  Returns the
 * bytes of descriptors filled.
 */
static int zoned_report_zones(void *data, uint64_t off, unsigned nr_zones, void *buf,
			      uint32_t len)
{
	struct zoned *z = data;
	char *out = buf;
	struct blk_zone bz;
	unsigned first, n;

	if (off >= z->size)
		return 0;
	first = zone_no(z, off);
	n = nr_zones < z->nr_zones - first ? nr_zones : z->nr_zones - first;
	if (n > len / sizeof(bz))
		n = len / sizeof(bz);
	if (n > INT_MAX / sizeof(bz))
		n = INT_MAX / sizeof(bz);
	pthread_mutex_lock(&z->res_lock);
	for (unsigned i = 0; i < n; i++) {
		describe_zone(z, first + i, &bz);
		memcpy(out + i * sizeof(bz), &bz, sizeof(bz));	/* @buf may be unaligned */
	}
	pthread_mutex_unlock(&z->res_lock);
	if (n < nr_zones && (n + 1) * sizeof(bz) <= len)
		memset(out + n * sizeof(bz), 0, sizeof(bz));
	return (int)(n * sizeof(bz));
}

/* OPEN, CLOSE, FINISH, RESET of the zone holding @off, or RESET_ALL. */
static int zoned_zone_mgmt(void *data, enum backend_zone_op op, uint64_t off)
{
	struct zoned *z = data;
	unsigned zno;
	int ret = 0;

	if (op == BACKEND_ZONE_RESET_ALL) {
		for (zno = z->nr_conv; zno < z->nr_zones; zno++) {
			pthread_mutex_lock(zone_lock(z, zno));
			zone_reset(z, zno, true);
			pthread_mutex_unlock(zone_lock(z, zno));
		}
		return 0;
	}
	if (off >= z->size)
		return -EIO;
	zno = zone_no(z, off);
	if (zone_is_conv(z, zno))
		return -EIO;
	pthread_mutex_lock(zone_lock(z, zno));
	switch (op) {
	case BACKEND_ZONE_OPEN:
		ret = zone_open(z, zno);
		break;
	case BACKEND_ZONE_CLOSE:
		ret = zone_close(z, zno);
		break;
	case BACKEND_ZONE_FINISH:
		ret = zone_finish(z, zno);
		break;
	case BACKEND_ZONE_RESET:
		zone_reset(z, zno, false);
		break;
	default:
		ret = -EOPNOTSUPP;
	}
	pthread_mutex_unlock(zone_lock(z, zno));
	return ret;
}

/* Write at the write pointer of the zone holding @zone_off; *@written: where. */
static int zoned_zone_append(void *data, const void *buf, uint64_t zone_off, uint32_t len,
			     uint64_t *written)
{
	struct zoned *z = data;
	unsigned zno;
	uint64_t zoff;
	int ret;

	if (zone_off >= z->size)
		return -EIO;
	zno = zone_no(z, zone_off);
	if (zone_is_conv(z, zno))
		return -EIO;	/* as null_blk: appends need a write pointer */
	ret = seq_write(z, zno, buf, &zoff, len, true);
	if (!ret)
		*written = zone_start(z, zno) + zoff;
	return ret;
}

const struct backend_ops zoned_backend_ops = {
	.name = "zoned",
	.read = zoned_read,
	.write = zoned_write,
	.flush = zoned_flush,
	/* No .discard nor .write_zeroes, as null_blk in zoned mode: zone.h. */
	.prepare_write = zoned_prepare_write,
	.direct = zoned_direct,
	.file = zoned_file,
	.report_zones = zoned_report_zones,
	.zone_mgmt = zoned_zone_mgmt,
	.zone_append = zoned_zone_append,
};

/* ---- statistics ---- */

/* Zones per condition, in one snapshot (res_lock guards every condition). */
void zoned_counts(const struct zoned *z, unsigned counts[ZONE_COND_COUNT])
{
	/* The lock is not part of the device's value: take it on a const one. */
	pthread_mutex_t *lock = (pthread_mutex_t *)&z->res_lock;

	memset(counts, 0, ZONE_COND_COUNT * sizeof(counts[0]));
	pthread_mutex_lock(lock);
	for (unsigned zno = 0; zno < z->nr_zones; zno++)
		counts[z->meta[zno].cond % ZONE_COND_COUNT]++;
	pthread_mutex_unlock(lock);
}

/* ---- opening: the geometry and the zone state mapping ---- */

/* Refuse a geometry the kernel or this model cannot have: 0 or -EINVAL. */
static int check_config(const struct zone_config *cfg, uint64_t capacity)
{
	uint64_t zs = cfg->zone_size;

	if (zs < MIN_ZONE_SIZE || (zs & (zs - 1))) {
		log_err("zone size %llu bytes: it must be a power of two of at least %llu",
			(unsigned long long)zs, MIN_ZONE_SIZE);
		return -EINVAL;
	}
	if (!cfg->size || cfg->size % zs || cfg->size / zs > UINT_MAX) {
		log_err("device size %llu bytes: it must be a multiple of the zone size (%llu bytes), with at most %u zones",
			(unsigned long long)cfg->size, (unsigned long long)zs, UINT_MAX);
		return -EINVAL;
	}
	if (!capacity || capacity > zs || capacity % MIN_ZONE_SIZE) {
		log_err("zone capacity %llu bytes: it must be a multiple of 4 KiB, at most the zone size (%llu bytes)",
			(unsigned long long)capacity, (unsigned long long)zs);
		return -EINVAL;
	}
	if (cfg->conventional >= cfg->size / zs) {
		log_err("%u conventional zones of %llu: at least one zone must be sequential",
			cfg->conventional, (unsigned long long)(cfg->size / zs));
		return -EINVAL;
	}
	return 0;
}

/* Map the zone state: fresh memory, a file laid out anew, or one to reuse. */
static int map_meta(struct zoned *z, const struct zone_config *cfg)
{
	struct stat st;
	void *p;

	z->meta_len = sizeof(*z->hdr) + (size_t)z->nr_zones * sizeof(*z->meta);
	if (cfg->meta_fd < 0) {
		p = mmap(NULL, z->meta_len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	} else {
		if (cfg->create) {
			/* Truncating to 0 first: nothing of an older state stays. */
			if (ftruncate(cfg->meta_fd, 0) < 0 ||
			    ftruncate(cfg->meta_fd, (off_t)z->meta_len) < 0)
				return -errno;
		} else {
			if (fstat(cfg->meta_fd, &st) < 0)
				return -errno;
			if ((uint64_t)st.st_size != z->meta_len) {
				log_err("zone state file: %lld bytes, %zu expected for %u zones (made for another device? recreate it)",
					(long long)st.st_size, z->meta_len, z->nr_zones);
				return -EINVAL;
			}
		}
		p = mmap(NULL, z->meta_len, PROT_READ | PROT_WRITE, MAP_SHARED,
			 cfg->meta_fd, 0);
	}
	if (p == MAP_FAILED)
		return -errno;
	z->hdr = p;
	z->meta = (struct zone_meta *)(z->hdr + 1);
	return 0;
}

/* Lay out every zone EMPTY (or NOT_WP), then the header, magic last. */
static void lay_out(struct zoned *z)
{
	struct zone_meta_header *h = z->hdr;

	for (unsigned zno = 0; zno < z->nr_zones; zno++) {
		z->meta[zno].wp = 0;
		z->meta[zno].cond = zone_is_conv(z, zno) ? BLK_ZONE_COND_NOT_WP :
							   BLK_ZONE_COND_EMPTY;
	}
	memset(h, 0, sizeof(*h));
	h->version = ZONE_META_VERSION;
	h->nr_zones = z->nr_zones;
	h->size = z->size;
	h->zone_size = z->zone_size;
	h->zone_capacity = z->zone_capacity;
	h->conventional = z->nr_conv;
	h->max_open = z->max_open;
	h->max_active = z->max_active;
	/* RELEASE: a crash while laying out leaves no magic. */
	__atomic_store_n(&h->magic, ZONE_META_MAGIC, __ATOMIC_RELEASE);
}

/* A saved state must be this geometry's: 0, or -EINVAL with a message. */
static int check_header(const struct zoned *z)
{
	const struct zone_meta_header *h = z->hdr;

	if (h->magic != ZONE_META_MAGIC || h->version != ZONE_META_VERSION) {
		log_err("zone state file: no ublk-mem zone state (version %u) in it: recreate the device",
			ZONE_META_VERSION);
		return -EINVAL;
	}
	if (h->nr_zones != z->nr_zones || h->size != z->size ||
	    h->zone_size != z->zone_size || h->zone_capacity != z->zone_capacity ||
	    h->conventional != z->nr_conv || h->max_open != z->max_open ||
	    h->max_active != z->max_active) {
		log_err("zone state file: saved for zones of %llu bytes (capacity %llu, %u conventional, max open %u, max active %u): use the same settings or recreate the device",
			(unsigned long long)h->zone_size, (unsigned long long)h->zone_capacity,
			h->conventional, h->max_open, h->max_active);
		return -EINVAL;
	}
	return 0;
}

/*
 * A zone as it is found after a restart.  Open zones come back CLOSED
 * (EMPTY if never written), as a drive's after a power cycle, which
 * frees every open resource for the writes the kernel sends again.  The
 * write pointer decides: 0 is EMPTY, the capacity (or the zone's end,
 * after FINISH) is FULL, in between CLOSED.  A crash between the two
 * stores of a command leaves the old condition with the new write
 * pointer, which this repairs; what no command leaves is refused.
 */
static int zone_recover(struct zoned *z, unsigned zno)
{
	struct zone_meta *m = &z->meta[zno];
	uint64_t wp = m->wp;
	unsigned cond = m->cond;
	bool between = wp && wp < z->zone_capacity;

	if (zone_is_conv(z, zno)) {
		if (cond != BLK_ZONE_COND_NOT_WP)
			goto bad;
		return 0;
	}
	if (wp % (1U << SECTOR_SHIFT) || (wp > z->zone_capacity && wp != z->zone_size))
		goto bad;
	switch (cond) {
	case BLK_ZONE_COND_EMPTY:
	case BLK_ZONE_COND_FULL:
		if (between)
			goto bad;
		break;
	case BLK_ZONE_COND_IMP_OPEN:
	case BLK_ZONE_COND_EXP_OPEN:
	case BLK_ZONE_COND_CLOSED:
		break;
	default:
		goto bad;
	}
	m->cond = !wp ? BLK_ZONE_COND_EMPTY : between ? BLK_ZONE_COND_CLOSED :
							 BLK_ZONE_COND_FULL;
	count_cond(z, m->cond, true);
	return 0;
bad:
	log_err("zone state file: zone %u has condition %u and write pointer %llu, which cannot be: recreate the device",
		zno, cond, (unsigned long long)wp);
	return -EINVAL;
}

/* Find the zones again after a restart: 0 or -EINVAL. */
static int recover(struct zoned *z)
{
	int ret = check_header(z);

	for (unsigned zno = 0; !ret && zno < z->nr_zones; zno++)
		ret = zone_recover(z, zno);
	return ret;
}

/* Check the geometry, map the zone state (new or found again), make the locks. */
int zoned_open(struct zoned *z, const struct zone_config *cfg,
	       const struct backend_ops *inner, void *inner_data)
{
	uint64_t capacity = cfg->zone_capacity ? cfg->zone_capacity : cfg->zone_size;
	int ret = check_config(cfg, capacity);

	if (ret)
		return ret;
	memset(z, 0, sizeof(*z));
	z->inner = inner;
	z->inner_data = inner_data;
	z->size = cfg->size;
	z->zone_size = cfg->zone_size;
	z->zone_capacity = capacity;
	z->zone_shift = (unsigned)__builtin_ctzll(cfg->zone_size);
	z->nr_zones = (unsigned)(cfg->size / cfg->zone_size);
	z->nr_conv = cfg->conventional;
	z->max_open = cfg->max_open;
	z->max_active = cfg->max_active;
	z->imp_close_next = z->nr_conv;
	z->nr_locks = z->nr_zones < ZONE_LOCKS ? z->nr_zones : ZONE_LOCKS;

	ret = map_meta(z, cfg);
	if (ret)
		return ret;
	if (cfg->meta_fd < 0 || cfg->create) {
		lay_out(z);
	} else {
		ret = recover(z);
		if (ret)
			goto err_unmap;
	}

	ret = -ENOMEM;
	z->writing = calloc(z->nr_zones, sizeof(*z->writing));
	z->locks = calloc(z->nr_locks, sizeof(*z->locks));
	if (!z->writing || !z->locks)
		goto err_free;
	for (unsigned i = 0; i < z->nr_locks; i++)
		pthread_mutex_init(&z->locks[i], NULL);
	pthread_mutex_init(&z->res_lock, NULL);
	return 0;

err_free:
	free(z->locks);
	free(z->writing);
err_unmap:
	munmap(z->hdr, z->meta_len);
	z->hdr = NULL;
	return ret;
}

/* Undo zoned_open(); the zone state file, if any, keeps the zones. */
void zoned_close(struct zoned *z)
{
	if (!z->hdr)
		return;
	for (unsigned i = 0; i < z->nr_locks; i++)
		pthread_mutex_destroy(&z->locks[i]);
	pthread_mutex_destroy(&z->res_lock);
	free(z->locks);
	free(z->writing);
	munmap(z->hdr, z->meta_len);
	z->hdr = NULL;
	z->meta = NULL;
}
