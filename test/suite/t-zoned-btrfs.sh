#!/bin/sh
# A file system on a zoned device: mkfs.btrfs in zoned mode, which writes
# its metadata with zone append, copy files in, unmount, btrfs check finds
# it clean, mount again and every file matches; then delete and rewrite
# until btrfs has reclaimed zones, and check again.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
MKFS_BTRFS=$(first_tool /usr/sbin/mkfs.btrfs /sbin/mkfs.btrfs) || MKFS_BTRFS=
BTRFS=$(first_tool /usr/bin/btrfs /bin/btrfs) || BTRFS=
need_tool "$MKFS_BTRFS" "mkfs.btrfs (btrfs-progs)"
need_tool "$BTRFS" "btrfs (btrfs-progs)"
has_feature ZONED || fail "this kernel's driver lacks ZONED, which every kernel the VM boots has"
case " ${UBLK_MEM_ARGS:-} " in *" --copy-mode "*) skip "--zoned chooses its own copy mode" ;; esac
grep -qw btrfs /proc/filesystems || load_module btrfs 2>/dev/null ||
	fail "cannot load btrfs (test/vm/kernel.sh puts it in the VM)"

start_ublk 512M --zoned --zone-size 16M
mnt=$T_TMP/mnt
random_file "$T_TMP/random" $((40 * MiB))
files="$T_TMP/random $FIO"
[ -f /bin/busybox ] && files="$files /bin/busybox"

step "mkfs.btrfs -O zoned"
"$MKFS_BTRFS" -f -O zoned -d single -m single "$DEV" >"$T_TMP/mkfs.log" 2>&1 ||
	fail "mkfs.btrfs failed: $(tail -n 5 "$T_TMP/mkfs.log")"
grep -qiE "zoned( device)?: *yes" "$T_TMP/mkfs.log" || fail "mkfs.btrfs did not make a zoned file system: $(cat "$T_TMP/mkfs.log")"

step "mount and copy files"
mount_dev "$DEV" "$mnt"
mkdir "$mnt/dir"
for f in $files; do
	cp "$f" "$mnt/dir/" || fail "cp $f failed"
	sha256sum "$f" | sed "s|  .*/|  $mnt/dir/|" >>"$T_TMP/sums"
done
sync
umount "$mnt" || fail "umount failed"

step "btrfs check, mount again and compare"
"$BTRFS" check --readonly "$DEV" >"$T_TMP/check.log" 2>&1 ||
	fail "btrfs check found problems: $(tail -n 5 "$T_TMP/check.log")"
drop_caches
mount "$DEV" "$mnt" || fail "second mount failed"
sha256sum -c "$T_TMP/sums" >/dev/null || fail "files differ after remount"
expect_eq "$(wc -l <"$T_TMP/sums")" "$(echo "$files" | wc -w)" "files checked"

step "rewrite the space four times over: btrfs resets zones and reuses them"
# 4 x 200 MiB through a 512 MiB device: without zone resets the zones
# would run out. A balance of half-empty block groups helps btrfs reclaim
# (its own status does not matter: the writes that follow are the check).
for round in 1 2 3 4; do
	for i in 1 2 3 4 5; do
		cp "$T_TMP/random" "$mnt/r$i" || fail "round $round: writing file $i failed"
	done
	sync
	rm -f "$mnt"/r?
	sync
	"$BTRFS" balance start -dusage=50 "$mnt" >/dev/null 2>&1
done
sha256sum -c "$T_TMP/sums" >/dev/null || fail "the first files differ after the rewrites"
umount "$mnt" || fail "umount after the rewrites failed"
"$BTRFS" check --readonly "$DEV" >"$T_TMP/check.log" 2>&1 ||
	fail "btrfs check after the rewrites: $(tail -n 5 "$T_TMP/check.log")"
check_alive
stop_ublk
