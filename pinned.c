/*
 * pinned.c - files in directories other users may write to: see pinned.h.
 */
#define _GNU_SOURCE
#include "pinned.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int pinned_open(struct pinned_file *f, const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	char dir[PATH_MAX];

	f->dir_fd = -1;
	f->dev = 0;
	f->ino = 0;
	if (!*name || strlen(name) >= sizeof(f->name))
		return -ENAMETOOLONG;
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else if ((size_t)(slash - path) < sizeof(dir))
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	else
		return -ENAMETOOLONG;
	f->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->dir_fd < 0)
		return -errno;
	snprintf(f->name, sizeof(f->name), "%s", name);
	return 0;
}

void pinned_set_identity(struct pinned_file *f, int fd)
{
	struct stat st;

	if (fstat(fd, &st) == 0) {
		f->dev = st.st_dev;
		f->ino = st.st_ino;
	}
}

bool pinned_unlink(struct pinned_file *f)
{
	struct stat st;

	if (f->dir_fd < 0 || !f->ino)
		return false;
	if (fstatat(f->dir_fd, f->name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISREG(st.st_mode) || st.st_dev != f->dev || st.st_ino != f->ino)
		return false;
	return unlinkat(f->dir_fd, f->name, 0) == 0;
}

void pinned_close(struct pinned_file *f)
{
	if (f->dir_fd >= 0)
		close(f->dir_fd);
	f->dir_fd = -1;
}
