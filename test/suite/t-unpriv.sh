#!/bin/sh
# An ordinary user makes a RAM disk of their own (UBLK_F_UNPRIVILEGED_DEV).
# With /dev/ublk-control open to the user's group and `ublk-mem chown` run
# for each new ublk node as the udev rule runs it, `ublk-mem 64M` run by the
# user serves a device whose nodes are the user's alone; what the user
# writes reads back (fio crc32c verify, as the user); `list` names the
# owner, to the user and to root; `features` marks what only root gets;
# SIGTERM removes the device. The other paths open to a user's device
# (bounce; the batched commands, Linux 7.0) verify too. An ext4 the user
# makes passes fsck after root mounted it and wrote to it. The user's server prints nothing on
# stderr: what only root may do (the OOM score, I/O flushers) is not
# reported as a failure.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
need_tool "$MKFS_EXT4" mkfs.ext4
need_tool "$E2FSCK" e2fsck
users_setup
start_udev "$UBLK_MEM" chown

# list_field ID N [AS]: field N of device ID's line in `ublk-mem list`, as
# user AS (default root).
list_field() {
	if [ -n "${3:-}" ]; then
		user_run "$3" "$UBLK_MEM" list >"$T_TMP/list" 2>&1
	else
		"$UBLK_MEM" list >"$T_TMP/list" 2>&1
	fi || fail "ublk-mem list failed: $(cat "$T_TMP/list")"
	awk -v id="$1" -v n="$2" '$1 == id { print $n }' "$T_TMP/list"
}

step "features, as $USER1"
user_run $UID1 "$UBLK_MEM" features >"$T_TMP/features" 2>"$T_TMP/features.err" ||
	fail "ublk-mem features failed for $USER1: $(cat "$T_TMP/features.err")"
grep -q '^not root: ' "$T_TMP/features" || fail "features does not say the user's devices are unprivileged"
awk '$1 == "UNPRIVILEGED_DEV" && $2 == "yes"' "$T_TMP/features" | grep -q . ||
	fail "features: UNPRIVILEGED_DEV not offered: $(grep UNPRIVILEGED "$T_TMP/features")"
for f in USER_COPY USER_RECOVERY ZONED; do
	awk -v f=$f '$1 == f' "$T_TMP/features" | grep -q '(root only)$' ||
		fail "features does not mark $f root only: $(grep "^$f " "$T_TMP/features")"
done
awk '$1 == "NEED_GET_DATA"' "$T_TMP/features" | grep -q 'root only' &&
	fail "features marks NEED_GET_DATA, the default path, root only"

step "$USER1 makes a 64M device"
as_user $UID1
start_ublk 64M
cdev=/dev/ublkc$SRV_ID
expect_eq "$(stat -c %u "/proc/$SRV_PID")" $UID1 "uid of the server"
expect_eq "$(node_owner "$DEV")" "$UID1:$UID1 600" "owner and mode of $DEV"
expect_eq "$(node_owner "$cdev")" "$UID1:$UID1 600" "owner and mode of $cdev"
[ -s "$SRV_ERR" ] && fail "the user's server said: $(cat "$SRV_ERR")"
expect_eq "$(cat "/proc/$SRV_PID/oom_score_adj")" 0 "oom_score_adj of a user's server"
grep -q "ublkc$SRV_ID exit 0" "$T_TMP/udev.log" || fail "chown did not run for $cdev: $(cat "$T_TMP/udev.log")"

step "list names the owner"
expect_eq "$(list_field "$SRV_ID" 7 $UID1)" "$USER1" "owner in $USER1's list"
expect_eq "$(list_field "$SRV_ID" 7)" "$USER1" "owner in root's list"
list_field "$SRV_ID" 8 | grep -q unprivileged || fail "list does not flag the device unprivileged: $(cat "$T_TMP/list")"
"$UBLK_MEM" list --json >"$T_TMP/list.json" || fail "list --json failed"
grep "\"id\":$SRV_ID," "$T_TMP/list.json" | grep -q "\"owner_uid\":$UID1,\"owner_gid\":$UID1,\"owner\":\"$USER1\"" ||
	fail "list --json does not name the owner: $(cat "$T_TMP/list.json")"

step "fio verify, as $USER1"
fio_verify user
check_alive

step "SIGTERM removes it"
stop_ublk
"$UBLK_MEM" list | awk -v id="$SRV_ID" '$1 == id' | grep -q . && fail "list still shows device $SRV_ID"

step "the other paths a user's device may take"
start_ublk 32M --copy-mode bounce
fio_verify bounce --size=8M
stop_ublk
if has_feature BATCH_IO; then
	start_ublk 32M --io-path batch
	fio_verify batch --size=8M
	stop_ublk
fi

step "ext4 made by $USER1, mounted by root, passes fsck"
start_ublk 64M
user_run $UID1 "$MKFS_EXT4" -q -F "$DEV" >"$T_TMP/mkfs.out" 2>&1 ||
	fail "mkfs.ext4 as $USER1 failed: $(cat "$T_TMP/mkfs.out")"
as_user root
mount_dev "$DEV" "$T_TMP/mnt"
random_file "$T_TMP/file" $((8 * MiB))
cp "$T_TMP/file" "$T_TMP/mnt/file" || fail "cannot write to the file system"
umount "$T_TMP/mnt" || fail "cannot unmount"
"$E2FSCK" -f -n "$DEV" >"$T_TMP/fsck.out" 2>&1 || fail "e2fsck: $(tail -n 5 "$T_TMP/fsck.out")"
mount_dev "$DEV" "$T_TMP/mnt" ro
drop_caches
expect_eq "$(sha_of "$T_TMP/mnt/file")" "$(sha_of "$T_TMP/file")" "the file read back"
umount "$T_TMP/mnt" || fail "cannot unmount"
stop_ublk
