#!/bin/sh
# `ublk-mem restart` replaces the server of a --recoverable device with a
# fresh process while the device is in use: fio verify keeps running
# across it with no error, and a mounted ext4 keeps its files. Where the
# kernel has QUIESCE (6.16) the old server drains its requests first;
# before it, the kernel re-issues the ones in flight. The pause is said.
# The new server is run as the old one was (--poll, --queue-threads).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
need_tool "$MKFS_EXT4" mkfs.ext4
need_tool "$E2FSCK" e2fsck

# restart_dev ID [CHILD]: restart the server of device ID; set SRV_PID to
# the new one. With CHILD, the old server is this shell's child, whose
# exit status is checked.
restart_dev() {
	_old=$SRV_PID
	run_with_timeout 120 "$UBLK_MEM" restart "$1" >"$T_TMP/restart.out" 2>"$T_TMP/restart.err" ||
		fail "ublk-mem restart $1 failed: $(cat "$T_TMP/restart.err")"
	say "restart: $(cat "$T_TMP/restart.err")"
	grep -q "paused for [0-9]* ms" "$T_TMP/restart.err" || fail "restart did not say how long I/O paused"
	wait_exit "$_old" 30 "the old server" "the restart"
	if [ -n "${2:-}" ]; then
		wait "$_old"
		expect_eq "$?" 0 "exit status of the old server"
	fi
	SRV_PID=$(server_of "/dev/ublkb$1")
	if [ -z "$SRV_PID" ] || [ "$SRV_PID" = "$_old" ] || ! alive "$SRV_PID"; then
		fail "no new server for device $1: $("$UBLK_MEM" list)"
	fi
	echo "$SRV_PID" >>"$T_TMP/pids"
}

# stop_daemon: stop the (daemon, not our child) server of $DEV.
stop_daemon() {
	kill -TERM "$SRV_PID" || fail "cannot signal $SRV_PID"
	wait_exit "$SRV_PID" 30 ublk-mem SIGTERM
	wait_gone "$DEV" || fail "$DEV remains after a clean stop"
}

# How the first server runs, for the new one to keep: a --poll time, and
# two threads per queue where the driver allows it (unless UBLK_MEM_ARGS
# says otherwise).
keep=
case " ${UBLK_MEM_ARGS:-} " in *" --poll"*) ;; *) keep="--poll=300" ;; esac
case " ${UBLK_MEM_ARGS:-} " in
*" --io-path "* | *" --queue-threads"*) ;;
*) has_feature PER_IO_DAEMON && keep="$keep --queue-threads=2" ;;
esac
# shellcheck disable=SC2086 # a list of options
start_ublk 64M --recoverable $keep
id=$SRV_ID
dev=$DEV
if has_feature QUIESCE; then
	say "the kernel has QUIESCE"
else
	say "no QUIESCE: requests in flight are re-issued"
fi

step "restart while fio verify runs"
fio_across restart "$dev"
restart_dev "$id" child
expect_eq "$(server_of "$dev")" "$SRV_PID" "server of $dev"
args=" $(tr '\0' ' ' <"/proc/$SRV_PID/cmdline")"
say "the new server: $args"
for opt in $keep; do
	case "$args" in
	*" $opt "*) ;;
	*) fail "the new server was not started with $opt: $args" ;;
	esac
done
case " $keep " in
*" --queue-threads=2 "*)
	threads=$(cat "/proc/$SRV_PID/task/"*/comm | grep -c "^ublkb$id-q0\.[01]$")
	expect_eq "$threads" 2 "queue threads of the new server"
	;;
esac
fio_across_done restart "the restart"

step "restart with ext4 mounted"
"$MKFS_EXT4" -q -F "$dev" || fail "mkfs.ext4 failed"
mount_dev "$dev" "$T_TMP/mnt"
random_file "$T_TMP/a" $((6 * MiB))
cp "$T_TMP/a" "$T_TMP/mnt/a" || fail "cannot write a file"
restart_dev "$id"
random_file "$T_TMP/b" $((2 * MiB))
cp "$T_TMP/b" "$T_TMP/mnt/b" || fail "cannot write after the restart"
sync
drop_caches
expect_eq "$(sha_of "$T_TMP/mnt/a")" "$(sha_of "$T_TMP/a")" "file written before the restart"
expect_eq "$(sha_of "$T_TMP/mnt/b")" "$(sha_of "$T_TMP/b")" "file written after it"
umount "$T_TMP/mnt" || fail "cannot unmount"
"$E2FSCK" -fn "$dev" >"$T_TMP/fsck.log" 2>&1 || { cat "$T_TMP/fsck.log"; fail "e2fsck found errors"; }

step "a device that is not recoverable cannot be restarted"
stop_daemon
start_ublk 16M
run_with_timeout 30 "$UBLK_MEM" restart "$SRV_ID" >"$T_TMP/r.out" 2>"$T_TMP/r.err"
expect_eq "$?" 1 "exit status of restart for a plain device"
say "refused: $(cat "$T_TMP/r.err")"
check_alive
stop_ublk
