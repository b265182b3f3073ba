#!/bin/sh
# `ublk-mem restart` keeps how the server was run, and where. A pid file
# whose path holds a space, --reserve and --prealloc reach the new server
# exactly (the pid file then names it). The old server starts the new one
# itself, so the new one runs in the old one's cgroup (a systemd unit's,
# say) and tells the service manager its pid (READY=1 with MAINPID=); the
# old one sends no STOPPING=1, which would tell the manager the service
# ends.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

LISTEN=$TEST_ROOT/suite/notify_listen
[ -x "$LISTEN" ] || fail "no $LISTEN: build it with 'make test/suite/notify_listen' (make test does)"
LOG=$T_TMP/notify.log
: >"$LOG"
"$LISTEN" "$T_TMP/notify.sock" "$LOG" >"$T_TMP/listen.out" 2>&1 &
echo $! >>"$T_TMP/pids"
wait_until 10 grep -q '^listening$' "$T_TMP/listen.out" || fail "notify_listen is not listening"

# A cgroup for the server, as a service manager would make one.
CG=/sys/fs/cgroup
if [ ! -e $CG/cgroup.procs ]; then
	mkdir -p $CG
	mount -t cgroup2 none $CG || fail "cannot mount cgroup2"
	echo $CG >>"$T_TMP/mounts"
fi
unit=$CG/ublk-restart-test
mkdir -p $unit || fail "cannot make a cgroup"

pidfile="$T_TMP/a b.pid"
UBLK_MEM_ENV="NOTIFY_SOCKET=$T_TMP/notify.sock" start_ublk 64M --recoverable \
	--pidfile "$pidfile" --reserve 96M --prealloc
id=$SRV_ID
old=$SRV_PID
echo "$old" >$unit/cgroup.procs || fail "cannot move the server into $unit"
expect_eq "$(cat "$pidfile")" "$old" "the pid file before the restart"
random_file "$T_TMP/data" $((4 * MiB))
write_at "$DEV" "$T_TMP/data" $((20 * MiB))

# ready_from PID: the number of a READY=1 datagram PID sent, if any.
ready_from() {
	awk -v p="$1" '$2 == p && $3 == "READY=1" { print $1; exit }' "$LOG"
}

step "restart"
run_with_timeout 120 "$UBLK_MEM" restart "$id" >"$T_TMP/r.out" 2>"$T_TMP/r.err" ||
	fail "restart failed: $(cat "$T_TMP/r.err")"
say "$(cat "$T_TMP/r.err")"
wait_exit "$old" 30 "the old server" "the restart"
wait "$old"
expect_eq "$?" 0 "exit status of the old server"
new=$(server_of "$DEV")
if [ -z "$new" ] || [ "$new" = "$old" ] || ! alive "$new"; then
	fail "no new server: $("$UBLK_MEM" list)"
fi
echo "$new" >>"$T_TMP/pids"

step "the new server runs as the old one did"
expect_eq "$(cat "$pidfile")" "$new" "the pid file after the restart"
tr '\0' '\n' <"/proc/$new/cmdline" >"$T_TMP/cmdline"
say "the new server: $(tr '\n' ' ' <"$T_TMP/cmdline")"
grep -q -x -F -- "$pidfile" "$T_TMP/cmdline" || fail "the new server was not given the pid file"
grep -q -x -- "--reserve=$((96 * MiB))" "$T_TMP/cmdline" || fail "the new server was not given --reserve 96M"
grep -q -x -- "--prealloc" "$T_TMP/cmdline" || fail "the new server was not given --prealloc"
locked=$(lck_kb "$new")
[ "$locked" -ge $((64 * 1024)) ] || fail "the new server locks $locked KiB, not the device's 64 MiB"
expect_eq "$(dev_sha "$DEV" $((20 * MiB)) $((4 * MiB)))" "$(sha_of "$T_TMP/data")" "data after the restart"

step "where the old one ran, and the service manager told"
expect_eq "$(cat "/proc/$new/cgroup")" "0::/ublk-restart-test" "the new server's cgroup"
wait_until 10 test -n "$(ready_from "$new")" || fail "no READY=1 from the new server: $(cat "$LOG")"
seq=$(ready_from "$new")
awk -v s="$seq" '$1 == s { print $3 }' "$LOG" | grep -q -x "MAINPID=$new" ||
	fail "READY=1 of the new server lacks MAINPID=$new: $(cat "$LOG")"
if awk -v p="$old" '$2 == p && $3 == "STOPPING=1" { f = 1 } END { exit !f }' "$LOG"; then
	fail "the old server told the manager it stops: $(cat "$LOG")"
fi

step "a clean stop removes the pid file"
kill -TERM "$new"
wait_exit "$new" 30 "the new server" SIGTERM
wait_gone "$DEV" "$pidfile" || fail "$DEV or the pid file remains after a clean stop"
rmdir $unit
