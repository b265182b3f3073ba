/*
 * fault.c - failures on demand, for the tests: see fault.h.
 *
 * A fault that is a backend's behaviour is a backend of its own, wrapped
 * around the real one, as the kernel selftests' fault_inject target: the
 * request path does not know about it.  The protocol's own failures
 * (a FETCH held back or refused, a queue thread breaking down) have no
 * backend to live in and are hooks at the one place each happens.
 */
#define _GNU_SOURCE
#include "fault.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool fault_at(const char *point)
{
	static const char *fault = "";

	if (fault && !*fault)
		fault = getenv("UBLK_MEM_TEST_FAULT");	/* read once */
	return fault && !strcmp(fault, point);
}

/* The wrapped backend's own operations. */
static const struct backend_ops *inner;
/* The wrapper: inner's operations, but for these two. */
static struct backend_ops faulty;

static int fault_read(void *data, void *buf, uint64_t off, uint32_t len)
{
	if (off == FAULT_OFFSET)
		return -EIO;	/* as if the backend had failed */
	return inner->read(data, buf, off, len);
}

/* A read of the faulty range must come through fault_read(). */
static void *fault_direct(void *data, uint64_t off, uint32_t len, bool for_write)
{
	if (!for_write && off == FAULT_OFFSET)
		return NULL;
	return inner->direct(data, off, len, for_write);
}

const struct backend_ops *fault_backend(const struct backend_ops *ops)
{
	if (!fault_at("read-error"))
		return ops;
	inner = ops;
	faulty = *ops;
	faulty.name = "fault";
	faulty.read = fault_read;
	if (ops->direct)
		faulty.direct = fault_direct;
	return &faulty;
}
