#!/bin/sh
# A device stopped while a file system on it is still mounted: the first
# SIGTERM is refused, naming the mount; a second one stops it, and the kernel
# keeps its id until the file system is unmounted. The server says so,
# `list` shows the id as held, a new device (--recoverable too) gets
# another id instead of failing, and after umount the id is free again.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
need_tool "$MKFS_EXT4" mkfs.ext4

start_ublk 64M
id=$SRV_ID
"$MKFS_EXT4" -q -F "$DEV" || fail "mkfs.ext4 failed"
mount_dev "$DEV" "$T_TMP/mnt"
echo hello >"$T_TMP/mnt/hello"
sync

step "SIGTERM with the file system mounted: refused, then forced"
refused_stop "$SRV_PID" "$SRV_ERR" TERM
grep -q "mounted on $T_TMP/mnt" "$SRV_ERR" || fail "the refusal did not name the mount: $(cat "$SRV_ERR")"
# From the device, not the page cache.
drop_caches
expect_eq "$(cat "$T_TMP/mnt/hello")" hello "the file system after the refused stop"
kill -TERM "$SRV_PID"
wait_exit "$SRV_PID" 60 ublk-mem "the second SIGTERM"
wait "$SRV_PID"
rc=$?
say "the server exited with status $rc: $(cat "$SRV_ERR")"
expect_eq "$rc" 0 "exit status of the server stopped by a second SIGTERM"
grep -q "keeps its id" "$SRV_ERR" || fail "the server did not say the id stays held: $(cat "$SRV_ERR")"
"$UBLK_MEM" list >"$T_TMP/list" || fail "list failed"
awk -v id="$id" '$1 == id' "$T_TMP/list" | grep -q "removed" ||
	fail "list does not show the held id $id: $(cat "$T_TMP/list")"

step "a new --recoverable device gets another id"
start_ublk 16M --recoverable
[ "$SRV_ID" != "$id" ] || fail "the new device got the held id $id"
stop_ublk

step "after umount the id is free"
umount "$T_TMP/mnt" || fail "cannot unmount"
start_ublk 16M -n "$id"
expect_eq "$DEV" "/dev/ublkb$id" "device with the freed id"
stop_ublk
