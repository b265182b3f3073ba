/*
 * pinned.c - files in directories other users may write to: see pinned.h.
 */
#define _GNU_SOURCE
#include "pinned.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
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

/* Refuse a directory that someone else could change under us. */
static int check_dir(const struct pinned_file *f, const char *path, const char *what)
{
	struct stat st;

	if (fstat(f->dir_fd, &st) < 0) {
		log_err("%s: its directory: %s", path, strerror(errno));
		return -errno;
	}
	if ((st.st_uid == 0 || st.st_uid == geteuid()) &&
	    (!(st.st_mode & 022) || (st.st_mode & S_ISVTX)))
		return 0;
	log_err("%s: refusing a %s in a directory that %s (mode %04o, uid %u): another user could swap the file",
		path, what, st.st_uid != 0 && st.st_uid != geteuid() ? "another user owns" :
		"others may write to", (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
	return -EPERM;
}

/* Refuse a reused file that another user could have planted. */
static int check_file(int fd, const char *path, const char *what)
{
	const char *why = NULL;
	struct stat st;
	char buf[96];

	if (fstat(fd, &st) < 0) {
		log_err("%s: %s", path, strerror(errno));
		return -errno;
	}
	if (!S_ISREG(st.st_mode))
		why = "it is not a regular file";
	else if (st.st_uid != geteuid())
		why = buf, snprintf(buf, sizeof(buf), "it belongs to uid %u, not to uid %u",
				    (unsigned)st.st_uid, (unsigned)geteuid());
	else if (st.st_mode & 077)
		why = buf, snprintf(buf, sizeof(buf), "others may read or write it (mode %04o)",
				    (unsigned)(st.st_mode & 07777));
	else if (st.st_nlink != 1)
		why = buf, snprintf(buf, sizeof(buf), "it has %u links", (unsigned)st.st_nlink);
	if (!why)
		return 0;
	log_err("%s: refusing to use it as a %s: %s (a %s is a file only its owner can reach)",
		path, what, why, what);
	return -EPERM;
}

int pinned_open_private(struct pinned_file *f, const char *path, bool create, const char *what)
{
	int fd, err = pinned_open(f, path);

	if (err) {
		log_err("%s: its directory: %s", path, strerror(-err));
		return err;
	}
	err = check_dir(f, path, what);
	if (err)
		return err;
	/*
	 * O_NOFOLLOW: a symbolic link planted at the path is not followed.
	 * O_NOCTTY: a terminal at the path must not become ours.
	 */
	fd = openat(f->dir_fd, f->name, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY |
		    (create ? O_CREAT | O_EXCL : 0), 0600);
	if (fd < 0) {
		err = errno;
		log_err("%s: %s%s%s%s", path, strerror(err),
			err == EEXIST ? " (a file is already there: another device's, or not ours; remove it, or keep the " : "",
			err == EEXIST ? what : "",
			err == EEXIST ? " elsewhere)" :
			err == ELOOP ? " (it is a symbolic link: refusing to follow it)" :
			err == ENOENT && !create ? " (it is gone: the data it held cannot be recovered)" : "");
		return -err;
	}
	pinned_set_identity(f, fd);
	err = create ? 0 : check_file(fd, path, what);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

/* How long a reopened store's lock is waited for (see pinned_open_store()). */
#define STORE_LOCK_WAIT_MS	10000

/*
 * Hold the store file's lock (flock) while this process uses it: a second
 * server (a `recover` of the wrong id, a stray --store) must never map a
 * store another one serves.  A server that just handed the device over,
 * or crashed, may take a moment to let go: wait for that, bounded.
 */
static int lock_store(int fd, const char *path, bool wait)
{
	for (int ms = 0; flock(fd, LOCK_EX | LOCK_NB) < 0; ms += 50) {
		if (errno != EWOULDBLOCK) {
			log_err("%s: cannot lock it: %s", path, strerror(errno));
			return -errno;
		}
		if (!wait || ms >= STORE_LOCK_WAIT_MS) {
			log_err("%s: another ublk-mem server is using this store", path);
			return -EBUSY;
		}
		usleep(50000);
	}
	return 0;
}

int pinned_open_store(struct pinned_file *f, const char *path, bool create,
		      dev_t expect_dev, ino_t expect_ino)
{
	int fd = pinned_open_private(f, path, create, "store"), err;

	if (fd < 0)
		return fd;
	if (expect_ino && (f->dev != expect_dev || f->ino != expect_ino)) {
		log_err("%s is not the store the device was created with (the file was replaced); refusing it",
			path);
		err = -ESTALE;
	} else {
		err = lock_store(fd, path, !create);
	}
	if (err) {
		close(fd);
		if (create)
			pinned_unlink(f);	/* made a moment ago, empty */
		return err;
	}
	return fd;
}
