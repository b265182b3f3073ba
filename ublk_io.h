/*
 * ublk_io.h - the words of the data path, which the API (ublk.h) and the
 * request path (ublk_io.c) share: how data travels between the kernel and
 * the backend (copy modes), how requests reach the queue threads (I/O
 * paths), and the limits of a request.
 */
#ifndef UBLK_MEM_UBLK_IO_H
#define UBLK_MEM_UBLK_IO_H

#include <limits.h>
#include <stdint.h>

/* How request data travels between the kernel and the backend. */
enum ublk_copy_mode {
	UBLK_COPY_BOUNCE,	/* per-tag buffer; kernel copies, we copy */
	UBLK_COPY_GET_DATA,	/* NEED_GET_DATA: kernel copies to backend */
	UBLK_COPY_USER,		/* USER_COPY: pread/pwrite on /dev/ublkcN */
	UBLK_COPY_ZERO,		/* AUTO_BUF_REG: io_uring reads and writes a
				   file straight to the request's pages */
};

const char *ublk_copy_mode_name(enum ublk_copy_mode mode);
/* The copy mode of a device, from its UBLK_F_* flags. */
enum ublk_copy_mode ublk_copy_mode_of(uint64_t flags);

/* How requests travel between the driver and the queue threads. */
enum ublk_io_path {
	UBLK_IO_PATH_AUTO,		/* batch where offered and faster */
	UBLK_IO_PATH_PER_REQUEST,	/* FETCH / COMMIT_AND_FETCH per tag */
	UBLK_IO_PATH_BATCH,		/* UBLK_F_BATCH_IO (Linux 7.0) */
};

const char *ublk_io_path_name(enum ublk_io_path path);

/* ublk_config.poll_us: never spin, not even while the device is busy. */
#define UBLK_POLL_OFF	UINT_MAX

/* The largest request the server accepts, and its bounce buffer size. */
#define UBLK_MAX_IO_BYTES	(512U << 10)

#endif
