#!/bin/sh
# A stop that does not destroy a mounted file system: with ext4 mounted,
# SIGTERM is refused (the file system keeps working and fsck finds it
# clean after unmounting), `del` is refused without --force, and after
# umount one signal stops the server. `del --force` removes a device in
# use. Kernels with SAFE_STOP_DEV (7.0) decide in the kernel; older ones
# by the mount table and open files.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
need_tool "$MKFS_EXT4" mkfs.ext4
need_tool "$E2FSCK" e2fsck

start_ublk 64M
id=$SRV_ID
"$MKFS_EXT4" -q -F "$DEV" || fail "mkfs.ext4 failed"
mount_dev "$DEV" "$T_TMP/mnt"
random_file "$T_TMP/a" $((2 * MiB))
cp "$T_TMP/a" "$T_TMP/mnt/a" || fail "cannot write to the file system"

step "SIGTERM while mounted: refused"
refused_stop "$SRV_PID" "$SRV_ERR" TERM
grep -q "mounted on $T_TMP/mnt" "$SRV_ERR" || fail "the refusal does not name the mount point"
random_file "$T_TMP/b" $((1 * MiB))
cp "$T_TMP/b" "$T_TMP/mnt/b" || fail "the file system stopped working after the refused stop"
sync
drop_caches
expect_eq "$(sha_of "$T_TMP/mnt/a")" "$(sha_of "$T_TMP/a")" "a file written before the refused stop"
expect_eq "$(sha_of "$T_TMP/mnt/b")" "$(sha_of "$T_TMP/b")" "a file written after it"

step "del while mounted: refused without --force"
refuse 1 "del of a mounted device" del "$id"
grep -q "in use" "$T_TMP/r.err" || fail "del did not say why: $(cat "$T_TMP/r.err")"
# The device still serves: a read of it, and the files from the device.
check_alive
dev_sha "$DEV" 0 $((4 * MiB)) >/dev/null
drop_caches
expect_eq "$(sha_of "$T_TMP/mnt/a")" "$(sha_of "$T_TMP/a")" "a file after the refused del"
expect_eq "$(sha_of "$T_TMP/mnt/b")" "$(sha_of "$T_TMP/b")" "the other file after the refused del"
check_alive

step "umount, e2fsck, then one SIGTERM stops it"
umount "$T_TMP/mnt" || fail "cannot unmount"
"$E2FSCK" -fn "$DEV" >"$T_TMP/fsck.log" 2>&1 || { cat "$T_TMP/fsck.log"; fail "e2fsck found errors"; }
stop_server "$SRV_PID" "$DEV" TERM

step "del --force removes a device in use"
start_ublk 16M
hold_open "$DEV"
run_with_timeout 30 "$UBLK_MEM" del "$SRV_ID" 2>"$T_TMP/del2.err" &&
	fail "del of a device held open succeeded without --force"
run_with_timeout 60 "$UBLK_MEM" del --force "$SRV_ID" 2>"$T_TMP/del3.err" ||
	fail "del --force failed: $(cat "$T_TMP/del3.err")"
wait_exit "$SRV_PID" 30 ublk-mem "del --force"
wait "$SRV_PID"
rc=$?
# Its device taken away, the server could not go on serving: a failure
# at run time, said in one line.
expect_eq "$rc" 1 "exit status of the server whose device del --force removed"
grep -q "/dev/ublkb$SRV_ID was stopped by someone else" "$SRV_ERR" ||
	fail "the server did not say why it ended: $(cat "$SRV_ERR")"
kill $HOLDER
wait $HOLDER 2>/dev/null
wait_gone "$DEV" "/dev/ublkc$SRV_ID" -t 30 || fail "del --force left the device"
