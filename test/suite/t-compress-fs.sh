#!/bin/sh
# File systems on a compressed device: ext4 and xfs, files copied in and
# checked after a remount, fsck clean; then the files are deleted and
# fstrim gives their memory back.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
need_tool "$MKFS_EXT4" "mkfs.ext4 (e2fsprogs)"
need_tool "$E2FSCK" "e2fsck (e2fsprogs)"
MKFS_XFS=$(first_tool /usr/sbin/mkfs.xfs /sbin/mkfs.xfs) || MKFS_XFS=
XFS_REPAIR=$(first_tool /usr/sbin/xfs_repair /sbin/xfs_repair) || XFS_REPAIR=
need_tool "$MKFS_XFS" "mkfs.xfs (xfsprogs)"
need_tool "$XFS_REPAIR" "xfs_repair (xfsprogs)"
FSTRIM=$(first_tool /usr/sbin/fstrim /sbin/fstrim) || FSTRIM=
need_tool "$FSTRIM" "fstrim (util-linux)"
case " ${UBLK_MEM_ARGS:-} " in *" zero_copy "*) skip "--compress does not serve zero_copy" ;; esac

mnt=$T_TMP/mnt
random_file "$T_TMP/random" $((8 * MiB))
text_file "$T_TMP/text" $((8 * MiB))
files="$T_TMP/random $T_TMP/text $FIO"
[ -f /bin/busybox ] && files="$files /bin/busybox"

for fs in ext4 xfs; do
	step "$fs on a compressed device"
	start_ublk 320M --compress
	if [ $fs = ext4 ]; then
		"$MKFS_EXT4" -q -F "$DEV" >"$T_TMP/mkfs.log" 2>&1
	else
		grep -qw xfs /proc/filesystems || load_module xfs 2>/dev/null
		"$MKFS_XFS" -q -f "$DEV" >"$T_TMP/mkfs.log" 2>&1
	fi || fail "mkfs.$fs failed: $(tail -n 5 "$T_TMP/mkfs.log")"
	mount_dev "$DEV" "$mnt"
	mkdir "$mnt/dir"
	: >"$T_TMP/sums"
	for f in $files; do
		cp "$f" "$mnt/dir/" || fail "cp $f failed"
		sha256sum "$f" | sed "s|  .*/|  $mnt/dir/|" >>"$T_TMP/sums"
	done
	umount "$mnt" || fail "umount failed"
	if [ $fs = ext4 ]; then
		"$E2FSCK" -fn "$DEV" >"$T_TMP/fsck.log" 2>&1
	else
		"$XFS_REPAIR" -n "$DEV" >"$T_TMP/fsck.log" 2>&1
	fi || fail "the $fs check found problems: $(tail -n 5 "$T_TMP/fsck.log")"
	drop_caches
	mount "$DEV" "$mnt" || fail "second mount failed"
	sha256sum -c "$T_TMP/sums" >/dev/null || fail "files differ after the remount"
	orig=$(stat_of "$SRV_ID" orig_data_size)
	compr=$(stat_of "$SRV_ID" compr_data_size)
	used=$(stat_of "$SRV_ID" mem_used_total)
	say "$fs: $orig bytes of pages stored, $compr compressed, $used of memory"
	rm -rf "$mnt/dir"
	# The freed blocks can be trimmed once their transaction is on disk
	# (xfs skips "busy" extents until then): an unmount waits for that.
	umount "$mnt" || fail "umount failed"
	mount "$DEV" "$mnt" || fail "third mount failed"
	"$FSTRIM" "$mnt" || fail "fstrim failed"
	after=$(stat_of "$SRV_ID" mem_used_total)
	say "$fs: after rm and fstrim, $after bytes of memory"
	[ "$after" -lt $((used - 16 * MiB)) ] ||
		fail "deleting the files and fstrim gave back only $((used - after)) bytes"
	umount "$mnt" || fail "umount failed"
	check_alive
	stop_ublk
done
