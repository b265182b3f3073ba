#!/bin/sh
# --zoned: a host-managed zoned device served from RAM. The kernel sees the
# geometry asked for (zone size and capacity, conventional zones, open and
# active limits); blkzone's report follows what is written; a write off the
# write pointer, past a zone's capacity or beyond the open limit fails
# with the error a zoned drive gives and the device keeps serving; OPEN,
# CLOSE, FINISH and RESET move zones as ZBC says, and a reset gives the
# zone's memory back; fio in zoned mode writes and verifies across zones,
# with resets; a recoverable zoned device keeps its zones across kill -9.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
BLKZONE=$(first_tool /usr/sbin/blkzone /sbin/blkzone) || BLKZONE=
need_tool "$BLKZONE" blkzone
has_feature ZONED || fail "this kernel's driver lacks ZONED, which every kernel the VM boots has"
case " ${UBLK_MEM_ARGS:-} " in *" --copy-mode "*) skip "--zoned chooses its own copy mode" ;; esac

MB=$((1024 * 1024 / 512))	# sectors in a MiB

# zwrite ZONE OFFSET_MIB MIB: write MIB MiB at OFFSET_MIB into zone ZONE, the
# same MiB of the data file; status of dd.
zwrite() {
	dd if="$T_TMP/data" of="$DEV" bs=1M count="$3" skip="$2" seek=$(($1 * ZONE_MIB + $2)) \
		oflag=direct conv=notrunc 2>"$T_TMP/dd.err"
}

step "a zoned device: 16 zones of 8 MiB, 6 MiB writable, 1 conventional, at most 3 open, 5 active"
start_ublk 128M --zoned --zone-size 8M --zone-capacity 6M --conventional-zones 1 \
	--max-open-zones 3 --max-active-zones 5
ZONE_MIB=8
ZONE_SECTORS=$((8 * MB))
q=/sys/block/${DEV#/dev/}/queue
expect_eq "$(cat "$q"/zoned)" host-managed "the kernel's view of the device"
expect_eq "$(cat "$q"/chunk_sectors)" $ZONE_SECTORS "chunk_sectors"
expect_eq "$(cat "$q"/nr_zones)" 16 "nr_zones"
expect_eq "$(cat "$q"/max_open_zones)" 3 "max_open_zones"
expect_eq "$(cat "$q"/max_active_zones)" 5 "max_active_zones"
expect_eq "$(copy_mode_of "$SRV_ID")" user_copy "copy mode of a zoned device"
"$BLKZONE" report "$DEV" >"$T_TMP/report" || fail "blkzone report failed"
expect_eq "$(grep -c 'start:' "$T_TMP/report")" 16 "zones in the report"
expect_eq "$(zone_field 0 zcond)" nw "condition of the conventional zone"
expect_eq "$(zone_field 5 zcond)" em "condition of an unwritten zone"
expect_eq "$(zone_field 5 cap)" $((6 * MB)) "capacity of a sequential zone"
random_file "$T_TMP/data" $((8 * MiB))

step "writes move the write pointer; the data reads back"
zwrite 2 0 1 || fail "a write at zone 2's write pointer failed: $(cat "$T_TMP/dd.err")"
zwrite 2 1 2 || fail "a write at the new write pointer failed: $(cat "$T_TMP/dd.err")"
expect_eq "$(zone_field 2 wptr)" $((3 * MB)) "zone 2's write pointer (from the zone start)"
expect_eq "$(zone_field 2 zcond)" oi "zone 2 is implicitly open"
expect_eq "$(dev_sha "$DEV" $((16 * MiB)) $((3 * MiB)))" "$(sha_of "$T_TMP/data" $((3 * MiB)))" \
	"the 3 MiB written into zone 2"
expect_eq "$(dev_sha "$DEV" $((19 * MiB)) $((1 * MiB)))" "$(zero_sha $((1 * MiB)))" \
	"zone 2 beyond its write pointer"
zwrite 0 3 2 || fail "a write into the middle of the conventional zone failed"

step "a write off the write pointer, or past the capacity, fails; nothing moves"
zwrite 2 5 1 && fail "a write 2 MiB beyond the write pointer succeeded"
grep -q "Input/output error" "$T_TMP/dd.err" || fail "the unaligned write did not fail with EIO: $(cat "$T_TMP/dd.err")"
expect_eq "$(zone_field 2 wptr)" $((3 * MB)) "zone 2's write pointer after the refused write"
zwrite 2 3 3 || fail "filling zone 2 to its capacity failed"
expect_eq "$(zone_field 2 zcond)" fu "zone 2 is full at its capacity"
zwrite 2 6 1 && fail "a write to a full zone succeeded"
check_alive

step "the open limit: a fourth zone opened, explicitly or by a write, is refused"
for z in 3 4 5; do
	"$BLKZONE" open -o $((z * ZONE_SECTORS)) -c 1 "$DEV" || fail "opening zone $z failed"
done
expect_eq "$(zone_field 4 zcond)" oe "zone 4 is explicitly open"
"$BLKZONE" open -o $((6 * ZONE_SECTORS)) -c 1 "$DEV" 2>"$T_TMP/open.err" &&
	fail "a fourth explicit open succeeded"
say "the fourth open: $(cat "$T_TMP/open.err")"
zwrite 7 0 1 && fail "a write opening a fourth zone succeeded"
# After a failed write the kernel holds writes to that zone until a report
# tells it where the write pointer is, as a filesystem's recovery does.
expect_eq "$(zone_field 7 zcond)" em "zone 7 after the refused write"
"$BLKZONE" close -o $((3 * ZONE_SECTORS)) -c 1 "$DEV" || fail "closing zone 3 failed"
expect_eq "$(zone_field 3 zcond)" em "an explicitly opened zone closed unwritten is empty"
zwrite 7 0 1 || fail "a write opening zone 7 failed once zone 3 was closed"
check_alive

step "FINISH fills a zone, RESET empties it and gives its memory back"
"$BLKZONE" finish -o $((7 * ZONE_SECTORS)) -c 1 "$DEV" || fail "finishing zone 7 failed"
expect_eq "$(zone_field 7 zcond)" fu "zone 7 after FINISH"
expect_eq "$(dev_sha "$DEV" $((56 * MiB)) $((1 * MiB)))" "$(sha_of "$T_TMP/data" $((1 * MiB)))" \
	"zone 7's data after FINISH"
for z in 8 9 10 11 12 13 14 15; do
	"$BLKZONE" reset -o $((z * ZONE_SECTORS)) -c 1 "$DEV" || fail "resetting zone $z failed"
done
dd if=/dev/urandom of="$T_TMP/big" bs=1M count=6 2>/dev/null
for z in 8 9 10 11; do
	dd if="$T_TMP/big" of="$DEV" bs=1M seek=$((z * ZONE_MIB)) oflag=direct conv=notrunc 2>/dev/null ||
		fail "filling zone $z failed"
done
kb0=$(store_kb "$SRV_PID")
"$BLKZONE" reset -o $((8 * ZONE_SECTORS)) -c 4 "$DEV" || fail "resetting zones 8-11 failed"
# A reset may give memory back lazily (MADV_FREE): the kernel's to take.
lazy=$(awk '/^LazyFree:/ { print $2 }' "/proc/$SRV_PID/smaps_rollup")
kb1=$(($(store_kb "$SRV_PID") - ${lazy:-0}))
say "the server's memory: $kb0 KiB with zones 8-11 full, $kb1 KiB after resetting them (and ${lazy:-0} KiB lazily freed)"
[ $((kb0 - kb1)) -ge $((20 * 1024)) ] || fail "resetting 24 MiB of zones gave back only $((kb0 - kb1)) KiB"
expect_eq "$(zone_field 9 zcond)" em "zone 9 after RESET"
expect_eq "$(dev_sha "$DEV" $((72 * MiB)) $((6 * MiB)))" "$(zero_sha $((6 * MiB)))" "zone 9 after RESET"
# What a reset zone held never shows again: rewrite part of zone 9 (not
# a whole huge page), FINISH it; beyond the new data it reads zeros.
zwrite 9 0 1 || fail "rewriting zone 9 after RESET failed: $(cat "$T_TMP/dd.err")"
"$BLKZONE" finish -o $((9 * ZONE_SECTORS)) -c 1 "$DEV" || fail "finishing zone 9 failed"
expect_eq "$(dev_sha "$DEV" $((72 * MiB)) $((1 * MiB)))" "$(sha_of "$T_TMP/data" $((1 * MiB)))" \
	"zone 9 rewritten after RESET"
expect_eq "$(dev_sha "$DEV" $((73 * MiB)) $((5 * MiB)))" "$(zero_sha $((5 * MiB)))" \
	"zone 9 beyond the rewrite, after RESET and FINISH"

step "fio in zoned mode: sequential writes across zones, random writes with resets, verified"
"$BLKZONE" reset "$DEV" || fail "resetting every zone failed"
fio_run zbd-seq --zonemode=zbd --rw=write --bs=128k --iodepth=4 --offset=8M --size=120M \
	--max_open_zones=3 --verify=crc32c --do_verify=1 --verify_fatal=1
[ "$FIO_READS" -gt 0 ] || fail "fio zbd-seq verified nothing"
"$BLKZONE" reset "$DEV" || fail "resetting every zone failed"
fio_run zbd-rand --zonemode=zbd --rw=randwrite --bs=4k --iodepth=1 --offset=8M --size=120M \
	--max_open_zones=3 --io_size=12M --verify=crc32c --do_verify=1 --verify_fatal=1
[ "$FIO_READS" -gt 0 ] || fail "fio zbd-rand verified nothing"
# fio cannot verify what a reset throws away: this run checks that random
# writes with resets meet no error, and the zones' state stays sane.
fio_run zbd-reset --zonemode=zbd --rw=randwrite --bs=4k --iodepth=1 --offset=8M --size=120M \
	--max_open_zones=3 --zone_reset_threshold=0.3 --zone_reset_frequency=0.05 --io_size=40M
# Every zone stays within its capacity, and what the zones hold is less
# than fio wrote: the resets happened.
held=0
for z in $(seq 1 15); do
	wp=$(zone_field "$z" wptr)
	[ "$wp" -le $((6 * MB)) ] || fail "zone $z's write pointer $wp is past its capacity"
	held=$((held + wp))
done
say "the zones hold $((held / 2)) KiB after fio wrote $((FIO_WRITES * 4)) KiB"
[ $((held / 2)) -lt $((FIO_WRITES * 4)) ] || fail "fio's zone resets did not happen"
check_alive
stop_ublk

step "refused: zoned in another copy mode, and a resize"
refuse 2 "--zoned with get_data" 64M --zoned --copy-mode get_data
refuse 2 "a size that is no whole number of zones" 100M --zoned --zone-size 32M
refuse 2 "a capacity larger than the zone" 64M --zoned --zone-size 8M --zone-capacity 16M
if has_feature UPDATE_SIZE; then
	start_ublk 64M --zoned
	run_with_timeout 30 "$UBLK_MEM" resize "$SRV_ID" 128M >/dev/null 2>"$T_TMP/rs.err" &&
		fail "a zoned device was resized"
	grep -q "zoned device's size is fixed" "$T_TMP/rs.err" || fail "the resize refusal says: $(cat "$T_TMP/rs.err")"
	check_alive
	stop_ublk
fi

step "a recoverable zoned device keeps its zones across kill -9"
start_ublk 64M --zoned --zone-size 4M --recoverable
id=$SRV_ID
ZONE_MIB=4
ZONE_SECTORS=$((4 * MB))
zwrite 3 0 2 || fail "a write into zone 3 failed"
zwrite 5 0 4 || fail "filling zone 5 failed"
"$BLKZONE" report "$DEV" | sed 's/zcond: *2(oi)/zcond: 4(cl)/' >"$T_TMP/before"
ios0=$(dev_ios "$DEV")
(cd "$T_TMP" && "$FIO" --name=zbd-across --filename="$DEV" --ioengine=libaio --direct=1 \
	--zonemode=zbd --rw=write --bs=64k --iodepth=1 --offset=32M --size=32M --rate_iops=200 \
	--verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0) >"$T_TMP/fio-across.log" 2>&1 &
FIO_PID=$!
wait_io "$DEV" "$ios0" 100 "$FIO_PID" || fail "fio in zoned mode did not get going: $(tail -n 5 "$T_TMP/fio-across.log")"
kill -KILL "$SRV_PID"
wait "$SRV_PID" 2>/dev/null
start_ublk recover "$id"
fio_across_done across "kill -9 and recover of a zoned device"
"$BLKZONE" report -o 0 -c 8 "$DEV" | sed 's/zcond: *2(oi)/zcond: 4(cl)/' >"$T_TMP/after"
expect_eq "$(head -n 8 "$T_TMP/after")" "$(head -n 8 "$T_TMP/before")" "zones 0-7 after the recovery"
expect_eq "$(dev_sha "$DEV" $((12 * MiB)) $((2 * MiB)))" "$(sha_of "$T_TMP/data" $((2 * MiB)))" \
	"zone 3's data after the recovery"
stop_ublk
wait_gone "/dev/shm/ublk-mem-$id" "/dev/shm/ublk-mem-$id.zones" ||
	fail "the store or its zone state remains after a clean stop"
