/*
 * store.c - a device's store, plain or compressed, zoned or not: see
 * store.h.
 */
#define _GNU_SOURCE
#include "store.h"
#include "fault.h"
#include "log.h"
#include "pinned.h"
#include "record.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool store_file_is_compressed(const char *path)
{
	/* Only a look: the open that follows checks the file and says why. */
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	bool yes;

	if (fd < 0)
		return false;
	yes = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && zstore_file_holds_store(fd);
	close(fd);
	return yes;
}

const struct backend_ops *store_backend(const struct store_config *cfg)
{
	if (cfg->zones.zone_size)
		return fault_backend(&zoned_backend_ops);
	return fault_backend(cfg->compress ? &compress_backend_ops : &mem_backend_ops);
}

/* The store the zones (if any) keep their data in. */
static const struct backend_ops *inner_ops(const struct store *s)
{
	return s->compressed ? &compress_backend_ops : &mem_backend_ops;
}

static void *inner_data(struct store *s)
{
	return s->compressed ? (void *)&s->cz : (void *)&s->mem;
}

void *store_data(struct store *s)
{
	return s->zoned ? (void *)&s->zones : inner_data(s);
}

/*
 * Remove a file made a moment ago, still empty, if the path still names
 * it (dev, ino): through its directory, as pinned.h says.
 */
static void unlink_made(const char *path, dev_t dev, ino_t ino)
{
	struct pinned_file pf;

	if (pinned_open(&pf, path) < 0)
		return;
	pf.dev = dev;
	pf.ino = ino;
	pinned_unlink(&pf);
	pinned_close(&pf);
}

/* Open the store of the data, plain or compressed. */
static int open_data(struct store *s, const struct store_config *cfg)
{
	const struct mem_store_config *m = &cfg->mem;
	int ret;

	if (!cfg->compress) {
		ret = mem_store_open(&s->mem, m);
		s->data_open = ret == 0;
		s->dev = s->mem.st_dev;
		s->ino = s->mem.st_ino;
		return ret;
	}
	ret = compress_store_open(&s->cz, &(struct compress_store_config){
		.size = m->size, .max_size = m->max_size, .path = m->path,
		.create = m->create, .expect_dev = m->expect_dev,
		.expect_ino = m->expect_ino, .reserve = m->reserve,
		.mem_limit = cfg->mem_limit, .locked = cfg->locked,
	});
	s->compressed = ret == 0;
	s->data_open = ret == 0;
	s->dev = s->cz.st_dev;
	s->ino = s->cz.st_ino;
	return ret;
}

static void close_data(struct store *s)
{
	if (!s->data_open)
		return;
	s->data_open = false;
	if (s->compressed)
		compress_store_close(&s->cz);
	else
		mem_store_close(&s->mem);
	s->compressed = false;
}

/*
 * Lay out the zones in front of the data, or find them again.  A file
 * store keeps their state in a file of its own beside it (record.h names
 * it): made here, or reopened and checked to be the file recorded.
 */
static int open_zones(struct store *s, const struct store_config *cfg)
{
	struct zone_config z = cfg->zones;
	char path[PATH_MAX + 8];
	struct pinned_file pf;
	int ret;

	s->zones_fd = -1;
	if (cfg->mem.path) {
		record_zones_path(path, sizeof(path), cfg->mem.path);
		s->zones_fd = pinned_open_private(&pf, path, cfg->mem.create, "zone state");
		pinned_close(&pf);
		if (s->zones_fd < 0)
			return s->zones_fd;
		if (!cfg->mem.create && cfg->zones_ino &&
		    (pf.dev != cfg->zones_dev || pf.ino != cfg->zones_ino)) {
			log_err("%s is not the zone state the device was created with; refusing it", path);
			close(s->zones_fd);
			return -ESTALE;
		}
		s->zones_dev = pf.dev;
		s->zones_ino = pf.ino;
	}
	z.size = cfg->mem.size;
	z.meta_fd = s->zones_fd;
	z.create = cfg->mem.create;
	ret = zoned_open(&s->zones, &z, inner_ops(s), inner_data(s));
	if (ret < 0) {
		if (s->zones_fd >= 0)
			close(s->zones_fd);
		if (cfg->mem.create && cfg->mem.path)
			unlink_made(path, s->zones_dev, s->zones_ino);
		return ret;
	}
	s->zoned = true;
	return 0;
}

int store_open(struct store *s, const struct store_config *cfg)
{
	int ret;

	memset(s, 0, sizeof(*s));
	s->zones_fd = -1;
	s->file = cfg->mem.path != NULL;
	ret = open_data(s, cfg);
	if (ret < 0)
		return ret;	/* a store file it made is gone already */
	if (cfg->zones.zone_size) {
		ret = open_zones(s, cfg);
		if (ret < 0) {
			close_data(s);
			if (cfg->mem.create && s->file)
				unlink_made(cfg->mem.path, s->dev, s->ino);
		}
	}
	return ret;
}

void store_close(struct store *s)
{
	if (s->zoned) {
		zoned_close(&s->zones);
		if (s->zones_fd >= 0)
			close(s->zones_fd);
		s->zones_fd = -1;
		s->zoned = false;
	}
	close_data(s);
}

uint64_t store_size(const struct store *s)
{
	return s->compressed ? compress_store_size(&s->cz) :
	       __atomic_load_n(&s->mem.size, __ATOMIC_ACQUIRE);
}

int store_resize(struct store *s, uint64_t new_size)
{
	if (s->zoned) {
		log_err("a zoned device's size is fixed");
		return -EINVAL;
	}
	return s->compressed ? compress_store_resize(&s->cz, new_size) :
	       mem_store_resize(&s->mem, new_size);
}

void store_stats(struct store *s, struct store_stats *st)
{
	struct zstore_stats z;

	memset(st, 0, sizeof(*st));
	if (!s->compressed) {
		/* Plain RAM: what it holds is what its data takes. */
		st->mem_used_total = mem_store_memory(&s->mem);
		st->orig_data_size = st->mem_used_total;
		st->compr_data_size = st->mem_used_total;
		return;
	}
	compress_store_stats(&s->cz, &z);
	st->compressed = true;
	st->orig_data_size = z.orig_data_size;
	st->compr_data_size = z.compr_data_size;
	st->mem_used_total = z.mem_used_total;
	st->mem_limit = z.mem_limit;
	st->mem_used_max = z.mem_used_max;
	st->same_pages = z.same_pages;
	st->pages_compacted = z.pages_compacted;
	st->huge_pages = z.huge_pages;
	st->huge_pages_since = z.huge_pages_since;
}
