/*
 * pinned.h - files in directories other users may write to.
 *
 * The server runs as root and keeps files at paths the user chose: a
 * recoverable device's store (in /dev/shm by default), a pid file.  A
 * directory on such a path may belong to someone else, who could swap it
 * for a symbolic link between the moment we check a file and the moment
 * we remove it, and make root remove a file of their choosing.  So the
 * directory is opened once, when the file is made or found, and every
 * later step works relative to that descriptor: the directory itself is
 * pinned, whatever happens to the path that led to it.
 */
#ifndef UBLK_MEM_PINNED_H
#define UBLK_MEM_PINNED_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

struct pinned_file {
	int dir_fd;			/* the directory, or -1 */
	char name[NAME_MAX + 1];	/* the file's name in it */
	dev_t dev;			/* the file's identity, once known */
	ino_t ino;
};

/*
 * Pin the directory of @path (which names a file, not a directory) and
 * remember the file's name.  Returns 0 or -errno.
 */
int pinned_open(struct pinned_file *f, const char *path);

/* Remember which file the name stands for (from fstat of an open fd). */
void pinned_set_identity(struct pinned_file *f, int fd);

/*
 * Remove the file if the name still stands for the file remembered:
 * a regular file with the same device and inode numbers.  Returns true
 * when it was removed.
 */
bool pinned_unlink(struct pinned_file *f);

void pinned_close(struct pinned_file *f);

/*
 * Open @path as a private file of ours, in a directory that may be shared:
 * the directory is pinned in @f (left open; pinned_close() it) and must be
 * root's or ours, not writable by others unless sticky; the file is made
 * anew (@create: O_EXCL, mode 0600) or, reopened, must be a regular file
 * of ours that nobody else may read or write, with one link.  Never
 * through a symbolic link, never as a controlling terminal.  @what names
 * the file in messages ("store").  Returns the descriptor, or -errno after
 * saying why in one line.
 */
int pinned_open_private(struct pinned_file *f, const char *path, bool create, const char *what);

/*
 * A store file, opened as pinned_open_private() does, that must be the
 * very file recorded (@expect_ino nonzero: its device and inode numbers;
 * else -ESTALE), and that is held with an exclusive lock (flock) while
 * this process uses it: no second server may map a store another one
 * serves.  A reopened store's lock is waited for up to 10 s (a server
 * that just handed the device over, or crashed, may take a moment to let
 * go).  A file made here and then refused is removed again.  Returns the
 * descriptor, its identity in @f, or -errno after one line saying why.
 */
int pinned_open_store(struct pinned_file *f, const char *path, bool create,
		      dev_t expect_dev, ino_t expect_ino);

#endif
