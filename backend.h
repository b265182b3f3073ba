/*
 * backend.h - the seam between the ublk protocol and where data lives.
 *
 * ublk.c and ublk_io.c speak to the kernel and never know what holds the
 * device's bytes; a backend does, behind this table of operations.  The
 * RAM store (mem_backend.c) is one; others wrap or replace it (fault.c
 * wraps one to inject errors).  A backend is a `const struct backend_ops`
 * with designated initializers, plus a `void *data` it gets back in every
 * call.
 *
 * Contract, for every callback: offsets and lengths are in bytes and lie
 * inside the device (a request beyond its end, possible for a moment
 * after a shrink, must fail with -EIO, never touch memory that is gone);
 * the result is 0 (or what the callback says) or -errno, and a failure
 * fails that one request with that error and nothing else.  Callbacks of
 * different queues run concurrently, on different threads; those of one
 * queue thread one at a time.
 */
#ifndef UBLK_MEM_BACKEND_H
#define UBLK_MEM_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

/* Zone management operations (zoned devices, see zone_mgmt below). */
enum backend_zone_op {
	BACKEND_ZONE_OPEN,
	BACKEND_ZONE_CLOSE,
	BACKEND_ZONE_FINISH,
	BACKEND_ZONE_RESET,
	BACKEND_ZONE_RESET_ALL,
};

struct backend_ops {
	const char *name;
	/* Required: copy @len bytes at @off into @buf. */
	int (*read)(void *data, void *buf, uint64_t off, uint32_t len);
	/* Required: store @len bytes from @buf at @off. */
	int (*write)(void *data, const void *buf, uint64_t off, uint32_t len);
	/* Optional: make written data durable (no-op when absent). */
	int (*flush)(void *data);
	/* Optional: forget a range; it must read back as zeros. */
	int (*discard)(void *data, uint64_t off, uint64_t len);
	/* Optional: make a range read as zeros (required if discard is). */
	int (*write_zeroes)(void *data, uint64_t off, uint64_t len);
	/*
	 * Optional: a range that will be written before it is read again (a
	 * zone's RESET: nothing beyond a write pointer is read).  Its memory
	 * goes back as by discard, but may go back lazily, for the kernel to
	 * take when it needs it, so that a rewrite soon after finds it in
	 * place.  Without it, discard.
	 */
	int (*forget)(void *data, uint64_t off, uint64_t len);
	/*
	 * Optional: make sure a WRITE of [@off, @off + @len) can land without
	 * allocating anything, before any byte of it is copied.  Called for
	 * every WRITE before `direct` or `write`; -ENOSPC (or another error)
	 * fails the request there.  Needed because in the copy modes where
	 * the kernel copies into our memory it cannot fail the request when
	 * that memory cannot be allocated: it retries for ever.
	 */
	int (*prepare_write)(void *data, uint64_t off, uint32_t len);
	/*
	 * Optional: the address where bytes [@off, @off + @len) of the device
	 * live contiguously in this process, or NULL.  With it, the copy
	 * modes other than "bounce" let the kernel copy straight between a
	 * request and the backend's memory: one copy instead of two.  For a
	 * read the memory must be readable without allocating anything; for
	 * a write it is asked only after prepare_write() succeeded, and the
	 * write is then complete without a call to `write`.
	 */
	void *(*direct)(void *data, uint64_t off, uint32_t len, bool for_write);
	/*
	 * Optional: a file whose bytes at the device's offsets are the
	 * backend's, which io_uring reads and writes without blocking, or
	 * -1.  The zero_copy mode needs it: io_uring copies between it and
	 * the request's own pages.  A write is still prepared first.
	 */
	int (*file)(void *data);

	/*
	 * Zoned devices (all three, or none).  A zoned backend's `write`
	 * (and prepare_write) must check that a write starts at its zone's
	 * write pointer, fits its capacity and the open/active zone limits,
	 * failing it with the error a zoned drive gives (-EIO for an
	 * unaligned or full-zone write, -ETOOMANYREFS beyond max open zones,
	 * -EOVERFLOW beyond max active zones: the kernel turns these into
	 * BLK_STS_IOERR, _ZONE_OPEN_RESOURCE and _ZONE_ACTIVE_RESOURCE).
	 *
	 * report_zones: fill @buf (@len bytes) with up to @nr_zones struct
	 * blk_zone (zone.h) describing the zones from the one starting at
	 * @off; returns the bytes filled (a multiple of the struct's size).
	 * zone_mgmt: do @op on the zone starting at @off (@off ignored for
	 * RESET_ALL).  zone_append: write @len bytes from @buf at the write
	 * pointer of the zone starting at @zone_off, and say in *@written
	 * where they went (a byte offset).
	 */
	int (*report_zones)(void *data, uint64_t off, unsigned nr_zones, void *buf, uint32_t len);
	int (*zone_mgmt)(void *data, enum backend_zone_op op, uint64_t off);
	int (*zone_append)(void *data, const void *buf, uint64_t zone_off, uint32_t len,
			   uint64_t *written);
};

#endif
