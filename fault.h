/*
 * fault.h - failures on demand, for the tests.
 *
 * UBLK_MEM_TEST_FAULT=POINT in the server's environment turns one fault
 * on.  The integration tests use them to reach failure paths that no
 * outside event reaches on demand; nothing else should set it.
 *
 *   read-error        a READ starting at byte 1 MiB fails with EIO: the backend
 *                     fails it (fault_backend()); in zero_copy, where
 *                     io_uring reads the store itself, its read fails
 *   queue-error       the queue thread that gets a request starting at 1 MiB fails
 *                     for good, as if serving had broken down
 *   fetch-missing     tag 0's FETCH is held back: the driver waits for it
 *                     (the start's time limit is cut to 5 s)
 *   fetch-rejected    a FETCH for a tag the queue lacks, which the driver
 *                     refuses
 *   recovery-started  a recovery stops itself (SIGSTOP) right after
 *                     START_USER_RECOVERY
 *   batch-one-buffer  the batched path gets a single FETCH buffer
 */
#ifndef UBLK_MEM_FAULT_H
#define UBLK_MEM_FAULT_H

#include <stdbool.h>

#include "backend.h"

/* Where read-error and queue-error strike: byte 1 MiB of the device. */
#define FAULT_OFFSET	(1ULL << 20)

/* Is the fault @point asked for? */
bool fault_at(const char *point);

/*
 * The backend to serve with: @ops itself, or, with read-error asked for,
 * a backend that is @ops but fails READs at FAULT_OFFSET (its data is
 * @ops's own).  One per process.
 */
const struct backend_ops *fault_backend(const struct backend_ops *ops);

#endif
