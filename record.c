/*
 * record.c - which store file belongs to which recoverable device: see
 * record.h.  A record is three lines:
 *
 *   /dev/shm/ublk-mem-0                           the store's path
 *   44 12345                                      its device and inode
 *   size=67108864 block=512 queues=1 depth=128 flags=0x1c4
 *   zone=8388608 cap=8388608 conv=1 open=0 active=0 zdev=44 zino=12346
 *
 * (the last line for zoned devices only: their geometry and the identity
 * of the file holding their zones' state, STORE.zones)
 * written to a new file and renamed over the old one, so a reader never
 * sees half of one.  The path may hold any byte but a newline (the
 * command line refuses those).
 */
#define _GNU_SOURCE
#include "record.h"
#include "log.h"
#include "pinned.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Is @st something only we could have written: ours, and nobody else's to change? */
static bool ours_alone(const struct stat *st, mode_t forbidden)
{
	return st->st_uid == geteuid() && !(st->st_mode & forbidden);
}

int record_dir(void)
{
	struct stat st;

	if (mkdir(RECORD_DIR, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (lstat(RECORD_DIR, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || !ours_alone(&st, 077))
		return -EPERM;
	return 0;
}

static void record_path(char *buf, size_t len, int dev_id)
{
	snprintf(buf, len, RECORD_DIR "/%d", dev_id);
}

void record_default_store(char *buf, size_t len, int dev_id)
{
	snprintf(buf, len, DEFAULT_STORE, dev_id);
}

void record_write(int dev_id, const struct record *r)
{
	char path[64], tmp[80];
	int ret = record_dir();
	FILE *f = NULL;
	int fd = -1;

	if (ret < 0) {
		log_err("warning: %s: %s (a directory only root may enter is needed); the store's record is not kept",
			 RECORD_DIR, strerror(-ret));
		return;
	}
	record_path(path, sizeof(path), dev_id);
	snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		log_err("warning: %s: %s (ublk-mem del will leave the store in place)",
			 tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	fprintf(f, "%s\n%llu %llu\n", r->path, r->dev, r->ino);
	if (r->has_geometry)
		fprintf(f, "size=%llu block=%u queues=%u depth=%u flags=0x%llx\n",
			(unsigned long long)r->geo.size, r->geo.block_size, r->geo.queues,
			r->geo.depth, (unsigned long long)r->geo.flags);
	if (r->has_geometry && r->geo.zone_size)
		fprintf(f, "zone=%llu cap=%llu conv=%u open=%u active=%u zdev=%llu zino=%llu\n",
			(unsigned long long)r->geo.zone_size,
			(unsigned long long)r->geo.zone_capacity, r->geo.conventional,
			r->geo.max_open, r->geo.max_active, r->zones_dev, r->zones_ino);
	if (r->has_geometry && r->geo.compress)
		fprintf(f, "compress=1 mem_limit=%llu\n", (unsigned long long)r->geo.mem_limit);
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		log_err("warning: %s: %s", path, strerror(errno));
		unlink(tmp);
	}
}

bool record_read(int dev_id, struct record *r)
{
	unsigned long long size, flags;
	struct stat st;
	char path[64];
	FILE *f;
	bool ok;
	int fd;

	memset(r, 0, sizeof(*r));
	/* Records are trusted only from a directory nobody else may write. */
	if (lstat(RECORD_DIR, &st) < 0 || !S_ISDIR(st.st_mode) || !ours_alone(&st, 077))
		return false;
	record_path(path, sizeof(path), dev_id);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || !ours_alone(&st, 022) ||
	    !(f = fdopen(fd, "r"))) {
		close(fd);
		return false;
	}
	ok = fgets(r->path, sizeof(r->path), f) &&
	     fscanf(f, "%llu %llu\n", &r->dev, &r->ino) == 2;
	r->has_geometry = ok &&
		fscanf(f, "size=%llu block=%u queues=%u depth=%u flags=0x%llx", &size,
		       &r->geo.block_size, &r->geo.queues, &r->geo.depth, &flags) == 5;
	if (r->has_geometry) {
		unsigned long long zone, cap, limit;
		unsigned compress;

		r->geo.size = size;
		r->geo.flags = flags;
		if (fscanf(f, " zone=%llu cap=%llu conv=%u open=%u active=%u zdev=%llu zino=%llu",
			   &zone, &cap, &r->geo.conventional, &r->geo.max_open, &r->geo.max_active,
			   &r->zones_dev, &r->zones_ino) == 7) {
			r->geo.zone_size = zone;
			r->geo.zone_capacity = cap;
		}
		if (fscanf(f, " compress=%u mem_limit=%llu", &compress, &limit) == 2) {
			r->geo.compress = compress == 1;
			r->geo.mem_limit = limit;
		}
	}
	fclose(f);
	r->path[strcspn(r->path, "\n")] = '\0';
	return ok && r->path[0] == '/';
}

void record_set_size(int dev_id, uint64_t size)
{
	struct record r;

	if (!record_read(dev_id, &r) || !r.has_geometry)
		return;
	r.geo.size = size;
	record_write(dev_id, &r);
}

void record_remove(int dev_id)
{
	char path[64];

	record_path(path, sizeof(path), dev_id);
	unlink(path);
}

bool record_remove_store(const struct record *r)
{
	struct pinned_file f;
	bool removed;

	if (pinned_open(&f, r->path) < 0)
		return false;
	f.dev = (dev_t)r->dev;
	f.ino = (ino_t)r->ino;
	removed = pinned_unlink(&f);
	pinned_close(&f);
	return removed;
}

void record_zones_path(char *buf, size_t len, const char *store)
{
	snprintf(buf, len, "%s.zones", store);
}

bool record_remove_zones(const struct record *r)
{
	struct pinned_file f;
	char path[PATH_MAX + 8];
	bool removed;

	record_zones_path(path, sizeof(path), r->path);
	if (!r->zones_ino || pinned_open(&f, path) < 0)
		return false;
	f.dev = (dev_t)r->zones_dev;
	f.ino = (ino_t)r->zones_ino;
	removed = pinned_unlink(&f);
	pinned_close(&f);
	return removed;
}
