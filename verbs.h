/*
 * verbs.h - the verbs besides `ublk-mem SIZE` (main.c): each takes the
 * whole command line and returns the exit status.
 *
 *   admin.c     list, del, features, resize, stats: devices seen from outside
 *   recover.c   recover, restart: a device taken over by a new server
 *   owner.c     chown: an ordinary user's device's nodes handed to that user
 */
#ifndef UBLK_MEM_VERBS_H
#define UBLK_MEM_VERBS_H

int cmd_list(int argc, char **argv);
int cmd_del(int argc, char **argv);
int cmd_features(int argc, char **argv);
int cmd_resize(int argc, char **argv);
int cmd_recover(int argc, char **argv);
int cmd_restart(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_chown(int argc, char **argv);

#endif
