#!/bin/sh
# `ublk-mem resize`: a mounted ext4 grows with its device (resize2fs), files
# intact; shrinking needs --force and keeps the data below the new end,
# giving the memory beyond back; a --recoverable store file follows the
# size, across a crash and recovery. On a kernel without UPDATE_SIZE
# (before 6.16) the resize is refused with one line and nothing changes.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
need_tool "$MKFS_EXT4" mkfs.ext4
need_tool "$E2FSCK" e2fsck
need_tool "$RESIZE2FS" resize2fs

# resize ID SIZE [--force]: must succeed and leave DEV at SIZE bytes.
resize() {
	run_with_timeout 60 "$UBLK_MEM" resize "$@" >"$T_TMP/rs.out" 2>"$T_TMP/rs.err" ||
		fail "ublk-mem resize $* failed: $(cat "$T_TMP/rs.err")"
	say "resize $*: $(cat "$T_TMP/rs.out")"
}

start_ublk 64M
id=$SRV_ID
if ! has_feature UPDATE_SIZE; then
	step "no UPDATE_SIZE here: resize is refused and nothing changes"
	run_with_timeout 30 "$UBLK_MEM" resize "$id" 128M >"$T_TMP/rs.out" 2>"$T_TMP/rs.err"
	expect_eq "$?" 1 "exit status of resize without UPDATE_SIZE"
	grep -q "UPDATE_SIZE (Linux 6.16)" "$T_TMP/rs.err" ||
		fail "the refusal does not name UPDATE_SIZE and Linux 6.16: $(cat "$T_TMP/rs.err")"
	expect_eq "$(dev_size "$DEV")" $((64 * MiB)) "size after the refused resize"
	check_alive
	stop_ublk
	exit 0
fi

step "grow a mounted ext4 from 64M to 128M, then resize2fs"
"$MKFS_EXT4" -q -F "$DEV" || fail "mkfs.ext4 failed"
mount_dev "$DEV" "$T_TMP/mnt"
random_file "$T_TMP/a" $((8 * MiB))
cp "$T_TMP/a" "$T_TMP/mnt/a" || fail "cannot write a file"
resize "$id" 128M
expect_eq "$(dev_size "$DEV")" $((128 * MiB)) "device size after growing"
"$RESIZE2FS" "$DEV" >"$T_TMP/r2.log" 2>&1 || { cat "$T_TMP/r2.log"; fail "resize2fs failed"; }
random_file "$T_TMP/b" $((80 * MiB))
cp "$T_TMP/b" "$T_TMP/mnt/b" || fail "80 MiB more did not fit on the grown file system"
sync
drop_caches
expect_eq "$(sha_of "$T_TMP/mnt/a")" "$(sha_of "$T_TMP/a")" "file written before growing"
expect_eq "$(sha_of "$T_TMP/mnt/b")" "$(sha_of "$T_TMP/b")" "file written after growing"
umount "$T_TMP/mnt" || fail "cannot unmount"
"$E2FSCK" -fn "$DEV" >"$T_TMP/fsck.log" 2>&1 || { cat "$T_TMP/fsck.log"; fail "e2fsck found errors"; }

step "shrink: refused without --force; with it the data below stays"
run_with_timeout 30 "$UBLK_MEM" resize "$id" 32M >"$T_TMP/rs.out" 2>"$T_TMP/rs.err"
expect_eq "$?" 1 "exit status of a shrink without --force"
grep -q -- "--force" "$T_TMP/rs.err" || fail "the refusal does not mention --force: $(cat "$T_TMP/rs.err")"
expect_eq "$(dev_size "$DEV")" $((128 * MiB)) "size after the refused shrink"
want=$(dev_sha "$DEV" 0 $((32 * MiB)))
rss0=$(store_kb "$SRV_PID")
resize "$id" 32M --force
expect_eq "$(dev_size "$DEV")" $((32 * MiB)) "device size after shrinking"
expect_eq "$(dev_sha "$DEV" 0 $((32 * MiB)))" "$want" "the 32 MiB below the new end"
rss1=$(store_kb "$SRV_PID")
say "RSS $rss0 KiB before the shrink, $rss1 KiB after"
[ $((rss0 - rss1)) -ge $((48 * 1024)) ] || fail "shrinking gave only $((rss0 - rss1)) KiB back"
resize "$id" 64M
expect_eq "$(dev_sha "$DEV" $((32 * MiB)) $((32 * MiB)))" "$(zero_sha $((32 * MiB)))" \
	"the part added after shrinking"
expect_eq "$(dev_sha "$DEV" 0 $((32 * MiB)))" "$want" "the data below, after growing again"
check_alive
stop_ublk

step "--recoverable: the store file follows the size, across a crash"
start_ublk 32M --recoverable
id=$SRV_ID
store=/dev/shm/ublk-mem-$id
random_file "$T_TMP/c" $((4 * MiB))
write_at "$DEV" "$T_TMP/c" 0
resize "$id" 96M
expect_eq "$(stat -c %s "$store")" $((96 * MiB)) "store size after growing"
write_at "$DEV" "$T_TMP/c" $((80 * MiB))
kill -KILL "$SRV_PID"
wait "$SRV_PID" 2>/dev/null
start_ublk recover "$id"
expect_eq "$(dev_size "$DEV")" $((96 * MiB)) "recovered device size"
expect_eq "$(dev_sha "$DEV" 0 $((4 * MiB)))" "$(sha_of "$T_TMP/c")" "data at 0 after the recovery"
expect_eq "$(dev_sha "$DEV" $((80 * MiB)) $((4 * MiB)))" "$(sha_of "$T_TMP/c")" "data at 80 MiB after the recovery"
stop_ublk

step "the control socket is root's alone"
expect_eq "$(stat -c '%a %u' /run/ublk-mem)" "700 0" "mode and owner of /run/ublk-mem"
