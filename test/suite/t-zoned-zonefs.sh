#!/bin/sh
# zonefs on a zoned device: mkzonefs (zonefs-tools) formats it and the
# kernel's zonefs mounts it, one file per zone. A sequential zone's file
# takes direct writes at its end only and reads back what they wrote, its
# size the zone's write pointer; truncating it to 0 resets the zone, to
# its capacity finishes it; the conventional zone's file takes writes
# anywhere; after a remount every file has its size and its data.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
BLKZONE=$(first_tool /usr/sbin/blkzone /sbin/blkzone) || BLKZONE=
MKZONEFS=$(first_tool /usr/sbin/mkzonefs) || MKZONEFS=
need_tool "$BLKZONE" blkzone
# initramfs.sh fetches zonefs-tools for an x86_64 guest only (a foreign
# userland comes from Debian 12, which has none).
[ -n "$MKZONEFS" ] || [ "$(uname -m)" = x86_64 ] || skip "no mkzonefs in this $(uname -m) VM"
need_tool "$MKZONEFS" "mkzonefs (zonefs-tools: test/vm/initramfs.sh fetches it)"
has_feature ZONED || fail "this kernel's driver lacks ZONED, which every kernel the VM boots has"
case " ${UBLK_MEM_ARGS:-} " in *" --copy-mode "*) skip "--zoned chooses its own copy mode" ;; esac
grep -qw zonefs /proc/filesystems || load_module zonefs 2>/dev/null ||
	skip "this kernel has no zonefs module"

# 16 zones of 4 MiB: zone 0 (conventional) holds the super block, zone 1
# (conventional) is cnv/0, zones 2-15 are seq/0-13.
start_ublk 64M --zoned --zone-size 4M --conventional-zones 2
ZONE_SECTORS=8192
mnt=$T_TMP/mnt
random_file "$T_TMP/data" $((4 * MiB))

# append FILE MIB_AT MIB: MIB MiB of the data, at MIB_AT, with O_DIRECT.
append() {
	dd if="$T_TMP/data" of="$1" bs=1M skip="$2" seek="$2" count="$3" oflag=direct conv=notrunc \
		2>"$T_TMP/dd.err"
}

step "mkzonefs and mount"
"$MKZONEFS" -f "$DEV" >"$T_TMP/mkzonefs.log" 2>&1 ||
	fail "mkzonefs failed: $(tail -n 5 "$T_TMP/mkzonefs.log")"
mkdir -p "$mnt"
mount -t zonefs "$DEV" "$mnt" || fail "mount -t zonefs failed: $(dmesg | tail -n 3)"
echo "$mnt" >>"$T_TMP/mounts"	# unmounted at exit
expect_eq "$(find "$mnt/seq" -type f | wc -l)" 14 "files in seq/"
expect_eq "$(find "$mnt/cnv" -type f | wc -l)" 1 "files in cnv/"
expect_eq "$(stat -c %s "$mnt/seq/0")" 0 "seq/0's size, empty"

step "direct writes at a sequential file's end"
append "$mnt/seq/0" 0 1 || fail "writing seq/0 at 0 failed: $(cat "$T_TMP/dd.err")"
append "$mnt/seq/0" 1 1 || fail "appending to seq/0 at 1 MiB failed: $(cat "$T_TMP/dd.err")"
expect_eq "$(stat -c %s "$mnt/seq/0")" $((2 * MiB)) "seq/0's size after two appends"
expect_eq "$(zone_field 2 wptr)" $((2 * MiB / 512)) "zone 2's write pointer"
if append "$mnt/seq/0" 3 1; then
	fail "a write past seq/0's end (a gap) succeeded"
fi
if dd if="$T_TMP/data" of="$mnt/seq/0" bs=1M seek=2 count=1 conv=notrunc 2>/dev/null; then
	sync
	[ "$(stat -c %s "$mnt/seq/0")" = $((2 * MiB)) ] ||
		fail "a buffered write to a sequential file went in"
fi
expect_eq "$(stat -c %s "$mnt/seq/0")" $((2 * MiB)) "seq/0's size after the refused writes"
expect_eq "$(sha_of "$mnt/seq/0")" "$(sha_of "$T_TMP/data" $((2 * MiB)))" "seq/0 read back"
check_alive

step "truncate: to 0 resets the zone, to its capacity finishes it"
append "$mnt/seq/1" 0 3 || fail "writing seq/1 failed: $(cat "$T_TMP/dd.err")"
expect_eq "$(zone_field 3 zcond)" oi "zone 3 written"
truncate -s 0 "$mnt/seq/1" || fail "truncating seq/1 to 0 failed"
expect_eq "$(zone_field 3 zcond)" em "zone 3 after truncating seq/1 to 0"
expect_eq "$(stat -c %s "$mnt/seq/1")" 0 "seq/1's size after the reset"
append "$mnt/seq/1" 0 1 || fail "writing seq/1 after its reset failed: $(cat "$T_TMP/dd.err")"
append "$mnt/seq/2" 0 1 || fail "writing seq/2 failed: $(cat "$T_TMP/dd.err")"
truncate -s $((4 * MiB)) "$mnt/seq/2" || fail "truncating seq/2 to its capacity failed"
expect_eq "$(zone_field 4 zcond)" fu "zone 4 after truncating seq/2 to its capacity"
expect_eq "$(stat -c %s "$mnt/seq/2")" $((4 * MiB)) "seq/2's size when full"

step "the conventional file takes writes anywhere"
for at in 2 0 1; do
	dd if="$T_TMP/data" of="$mnt/cnv/0" bs=1M skip=$at seek=$at count=1 conv=notrunc \
		2>"$T_TMP/dd.err" || fail "writing cnv/0 at $at MiB failed: $(cat "$T_TMP/dd.err")"
done
sync

step "unmount, mount again: sizes and data kept"
umount "$mnt" || fail "umount failed"
drop_caches
mount -t zonefs "$DEV" "$mnt" || fail "the second mount failed: $(dmesg | tail -n 3)"
expect_eq "$(stat -c %s "$mnt/seq/0")" $((2 * MiB)) "seq/0's size after the remount"
expect_eq "$(sha_of "$mnt/seq/0")" "$(sha_of "$T_TMP/data" $((2 * MiB)))" "seq/0 after the remount"
expect_eq "$(sha_of "$mnt/seq/1")" "$(sha_of "$T_TMP/data" $((1 * MiB)))" "seq/1 after the remount"
expect_eq "$(head -c $((3 * MiB)) "$mnt/cnv/0" | sha256sum | cut -d' ' -f1)" \
	"$(head -c $((3 * MiB)) "$T_TMP/data" | sha256sum | cut -d' ' -f1)" "cnv/0 after the remount"
expect_eq "$(stat -c %s "$mnt/seq/2")" $((4 * MiB)) "seq/2's size after the remount"
umount "$mnt" || fail "the last umount failed"
check_alive
stop_ublk
