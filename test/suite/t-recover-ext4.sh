#!/bin/sh
# An ext4 file system mounted on a --recoverable device survives kill -9 of
# the server: after `ublk-mem recover`, the files are intact, new writes
# work, and e2fsck finds the file system clean.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
need_tool "$MKFS_EXT4" mkfs.ext4
need_tool "$E2FSCK" e2fsck

start_ublk 64M --recoverable
id=$SRV_ID
dev=$DEV
"$MKFS_EXT4" -q -F "$dev" || fail "mkfs.ext4 $dev failed"
mount_dev "$dev" "$T_TMP/mnt"
random_file "$T_TMP/a" $((5 * MiB))
cp "$T_TMP/a" "$T_TMP/mnt/a" || fail "cannot write to the file system"
sync

step "kill -9 the server while the file system is mounted"
kill -KILL "$SRV_PID"
# Written while no server runs: it must wait, then land.
random_file "$T_TMP/b" $((3 * MiB))
(cp "$T_TMP/b" "$T_TMP/mnt/b" && sync) &
writer=$!
wait_blocked $writer 30 || fail "the write issued during the crash did not wait for a server"
start_ublk recover "$id"
wait_exit $writer 60 "a write issued during the crash" "the recovery"
wait $writer || fail "the write issued during the crash failed"

step "files intact, then e2fsck"
drop_caches
expect_eq "$(sha_of "$T_TMP/mnt/a")" "$(sha_of "$T_TMP/a")" "file written before the crash"
expect_eq "$(sha_of "$T_TMP/mnt/b")" "$(sha_of "$T_TMP/b")" "file written during the crash"
umount "$T_TMP/mnt" || fail "cannot unmount $dev"
"$E2FSCK" -fn "$dev" >"$T_TMP/fsck.log" 2>&1 || { cat "$T_TMP/fsck.log"; fail "e2fsck found errors after the recovery"; }
stop_ublk
