/*
 * log.h - one-line messages for people, on standard error.
 *
 * Every message ublk-mem prints for a person is one line, "ublk-mem: ...",
 * saying what failed, where, and what to do.  A daemon's standard error
 * is a pipe to syslog (see service.c); nobody below needs to know.
 */
#ifndef UBLK_MEM_LOG_H
#define UBLK_MEM_LOG_H

/* Print "ublk-mem: MESSAGE" as one line, written whole. */
void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
