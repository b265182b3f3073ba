/*
 * holders.c - who uses a ublk disk: see holders.h.
 *
 * The kernel knows: an exclusive open of the whole disk fails while a
 * file system is mounted on it or on a partition (in any mount namespace)
 * or a device is stacked on either.  Who it is takes looking: this mount
 * namespace's mount table, the disk's and its partitions' holders in
 * sysfs, and every process's open files.
 */
#define _GNU_SOURCE
#include "holders.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define MAX_DEVTS	16	/* the disk and its first partitions */

/* Add "what" to the description in @who (comma separated, truncated). */
static void add_user(char *who, size_t len, const char *what)
{
	size_t n = strlen(who);

	if (n + 3 < len)
		snprintf(who + n, len - n, "%s%s", n ? ", " : "", what);
}

/* The device number in the sysfs file @path ("259:0"); false if none. */
static bool read_devt(const char *path, dev_t *devt)
{
	unsigned maj, min;
	FILE *f = fopen(path, "re");
	bool ok;

	if (!f)
		return false;
	ok = fscanf(f, "%u:%u", &maj, &min) == 2;
	fclose(f);
	if (ok)
		*devt = makedev(maj, min);
	return ok;
}

/*
 * The device numbers of /dev/ublkbN, first, and of its partitions.
 * Returns how many, 0 when there is no such disk.
 */
static int disk_devts(int dev_id, dev_t *devts)
{
	char dir[64], path[PATH_MAX];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "/sys/block/ublkb%d", dev_id);
	snprintf(path, sizeof(path), "%s/dev", dir);
	if (!read_devt(path, &devts[n]))
		return 0;
	n++;
	d = opendir(dir);
	if (!d)
		return n;
	while (n < MAX_DEVTS && (e = readdir(d))) {
		if (strncmp(e->d_name, "ublkb", 5))
			continue;	/* ublkbNpM: a partition */
		snprintf(path, sizeof(path), "%s/%s/dev", dir, e->d_name);
		n += read_devt(path, &devts[n]);
	}
	closedir(d);
	return n;
}

static bool is_one_of(dev_t d, const dev_t *devts, int n)
{
	for (int i = 0; i < n; i++)
		if (devts[i] == d)
			return true;
	return false;
}

/* File systems mounted from the device: "mounted on /mnt". */
static void find_mounts(const dev_t *devts, int n, char *who, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[1024], mnt[512], what[600];
	unsigned maj, min;

	if (!f)
		return;
	/* "36 35 259:0 / /mnt rw,... - ext4 /dev/ublkb0 rw" */
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%*u %*u %u:%u %*s %511s", &maj, &min, mnt) == 3 &&
		    is_one_of(makedev(maj, min), devts, n)) {
			snprintf(what, sizeof(what), "mounted on %s", mnt);
			add_user(who, len, what);
		}
	fclose(f);
}

/* Devices stacked on the sysfs entry @dir (its holders/): "held by dm-0". */
static void find_holders_of(const char *dir, char *who, size_t len)
{
	char path[PATH_MAX], what[300];
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "%s/holders", dir);
	d = opendir(path);
	if (!d)
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(what, sizeof(what), "held by %s", e->d_name);
			add_user(who, len, what);
		}
	closedir(d);
}

/* Devices stacked on the disk or on one of its partitions (dm, md). */
static void find_holders(int dev_id, char *who, size_t len)
{
	char dir[64], part[PATH_MAX];
	struct dirent *e;
	DIR *d;

	snprintf(dir, sizeof(dir), "/sys/block/ublkb%d", dev_id);
	find_holders_of(dir, who, len);
	d = opendir(dir);
	if (!d)
		return;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "ublkb", 5)) {	/* a partition, ublkbNpM */
			snprintf(part, sizeof(part), "%s/%s", dir, e->d_name);
			find_holders_of(part, who, len);
		}
	closedir(d);
}

/*
 * Is the disk claimed: a file system mounted on it or on a partition, in
 * any mount namespace (a container, a service with PrivateMounts), or a
 * device (dm, md) stacked on either?  The kernel then refuses an
 * exclusive open of the whole disk with EBUSY; no scan of this
 * namespace's tables sees all of those.  Opened read-only, so closing it
 * makes udev do nothing.
 */
static bool disk_claimed(int dev_id, dev_t disk)
{
	char path[64];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "/dev/ublkb%d", dev_id);
	if (stat(path, &st) < 0 || !S_ISBLK(st.st_mode) || st.st_rdev != disk)
		return false;	/* no node for this disk: the scans below tell */
	fd = open(path, O_RDONLY | O_EXCL | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return errno == EBUSY;
	close(fd);
	return false;
}

/* Processes with the device open: "open by pid 123 (dd)". */
static void find_openers(const dev_t *devts, int n, char *who, size_t len)
{
	char path[PATH_MAX], comm[64] = "", what[384];
	DIR *procs = opendir("/proc"), *fds;
	struct dirent *p, *fd;
	struct stat st;
	FILE *f;

	while (procs && (p = readdir(procs))) {
		if (p->d_name[0] < '0' || p->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/fd", p->d_name);
		fds = opendir(path);
		while (fds && (fd = readdir(fds))) {
			snprintf(path, sizeof(path), "/proc/%s/fd/%s", p->d_name, fd->d_name);
			if (fd->d_name[0] == '.' || stat(path, &st) < 0 ||
			    !S_ISBLK(st.st_mode) || !is_one_of(st.st_rdev, devts, n))
				continue;
			snprintf(path, sizeof(path), "/proc/%s/comm", p->d_name);
			f = fopen(path, "re");

			if (!f || !fgets(comm, sizeof(comm), f))
				comm[0] = '\0';
			if (f)
				fclose(f);
			comm[strcspn(comm, "\n")] = '\0';
			snprintf(what, sizeof(what), "open by pid %s (%s)", p->d_name, comm);
			add_user(who, len, what);
			break;
		}
		if (fds)
			closedir(fds);
	}
	if (procs)
		closedir(procs);
}

bool disk_in_use(int dev_id, char *who, size_t len)
{
	dev_t devts[MAX_DEVTS];
	int n = disk_devts(dev_id, devts);
	bool claimed;

	who[0] = '\0';
	if (!n)
		return false;	/* no block device (any more) */
	claimed = disk_claimed(dev_id, devts[0]);
	find_mounts(devts, n, who, len);
	find_holders(dev_id, who, len);
	find_openers(devts, n, who, len);
	if (claimed && !who[0])
		add_user(who, len, "claimed by a file system or a device stacked on it that this mount namespace does not show");
	return claimed || who[0] != '\0';
}
