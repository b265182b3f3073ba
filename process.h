/*
 * process.h - the process around a server: its signals, the loop it waits
 * in while the device serves, when a device in use may stop, and its
 * standing with the OOM killer.
 *
 * The protocol (ublk.h) knows none of this: it starts and stops devices.
 * Here is what a process that serves one is to do when a signal, a
 * control request or the end of a queue thread comes.
 */
#ifndef UBLK_MEM_PROCESS_H
#define UBLK_MEM_PROCESS_H

#include <signal.h>
#include <stdbool.h>

struct control;
struct ublk_dev;

/* Make fds 0, 1 and 2 valid (see process.c); first thing in main(). */
void hold_std_fds(void);

/*
 * Take the signals a server handles: block them in this thread and every
 * thread made later, ignore SIGPIPE, SIGTTOU and SIGTTIN.  Before any
 * thread exists.
 */
void take_signals(void);

/* The signals that stop a server: SIGINT, SIGTERM, SIGHUP, SIGQUIT. */
void stop_signals(sigset_t *set);

/* Has a stop signal come (and is it still pending)? */
bool stop_signal_pending(void);

/*
 * ublk_start()'s give-up callback: take the signals that came, report
 * stray ones; true once a stop signal came.
 */
bool stop_asked(void *arg);

/*
 * Serve until told to stop: wait for a signal, a request on @ctl's
 * socket (answered at once), or the end of a queue thread.  A stop signal
 * to a device in use only says who holds it; a second one within 10 s
 * stops it anyway.  Returns 0 after a stop that may go ahead (or a
 * handover), or the -errno serving ended with, having said why.
 */
int serve_until_stopped(struct ublk_dev *dev, struct control *ctl);

/*
 * Keep all of this process's memory in RAM, locked as it is touched: for
 * a compressed device, which is what a machine swaps to (see process.c).
 */
void lock_memory(void);

/* Make the OOM killer pick this server last (see OOM_SCORE_ADJ). */
void protect_from_oom_killer(void);

#endif
