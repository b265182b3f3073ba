/*
 * log.c - one-line messages for people: see log.h.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

void log_err(const char *fmt, ...)
{
	va_list ap;
	char line[512];

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write per line, so lines of concurrent threads do not mix. */
	dprintf(STDERR_FILENO, "ublk-mem: %s\n", line);
}
