#!/bin/sh
# A filesystem: mkfs.ext4, copy files in, unmount, e2fsck finds it clean,
# mount again and every file matches.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
need_tool "$MKFS_EXT4" "mkfs.ext4 (e2fsprogs)"
need_tool "$E2FSCK" "e2fsck (e2fsprogs)"

start_ublk 96M
mnt=$T_TMP/mnt
random_file "$T_TMP/random" $((20 * MiB))
files="$T_TMP/random $FIO"
[ -f /bin/busybox ] && files="$files /bin/busybox"
step "mkfs.ext4"
"$MKFS_EXT4" -q -F "$DEV" >"$T_TMP/mkfs.log" 2>&1 || fail "mkfs.ext4 failed: $(cat "$T_TMP/mkfs.log")"
step "mount and copy files"
mount_dev "$DEV" "$mnt"
mkdir "$mnt/dir"
for f in $files; do
	cp "$f" "$mnt/dir/" || fail "cp $f failed"
	sha256sum "$f" | sed "s|  .*/|  $mnt/dir/|" >>"$T_TMP/sums"
done
sync
umount "$mnt" || fail "umount failed"
step "e2fsck -fn"
"$E2FSCK" -fn "$DEV" >"$T_TMP/fsck.log" 2>&1 || fail "e2fsck -fn found problems: $(tail -n 5 "$T_TMP/fsck.log")"
step "mount again and compare"
drop_caches
mount "$DEV" "$mnt" || fail "second mount failed"
sha256sum -c "$T_TMP/sums" || fail "files differ after remount"
expect_eq "$(wc -l <"$T_TMP/sums")" "$(echo "$files" | wc -w)" "files checked"
umount "$mnt" || fail "second umount failed"
"$E2FSCK" -fn "$DEV" >"$T_TMP/fsck.log" 2>&1 || fail "e2fsck -fn after reading: $(tail -n 5 "$T_TMP/fsck.log")"
check_alive
stop_ublk
