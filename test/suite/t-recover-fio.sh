#!/bin/sh
# fio keeps writing (crc32c-verified random writes, QD16) while the server of
# a --recoverable device is killed and a new one recovers it within a
# second: fio finishes with no error and every block verifies.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
need_ublk

start_ublk 64M --recoverable
id=$SRV_ID
dev=$DEV

step "fio verify running across kill -9 and recover"
# The rate limit keeps fio writing for at least 4 s (8192 writes at 2000
# per second) however fast the machine: the crash below comes after 300
# writes, so it always lands in the middle of the run.
ios0=$(dev_ios "$dev")
(cd "$T_TMP" && "$FIO" --name=across --filename="$dev" --ioengine=libaio --direct=1 \
	--rw=randwrite --bs=4k --iodepth=16 --size=32M --rate_iops=2000 \
	--verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0) \
	>"$T_TMP/fio.log" 2>&1 &
fio_pid=$!
wait_io "$dev" "$ios0" 300 $fio_pid ||
	fail "fio did not get going before the crash: $(tail -n 5 "$T_TMP/fio.log")"
kill -KILL "$SRV_PID"
start_ublk recover "$id"
expect_eq "$DEV" "$dev" "device of the recovered server"

wait_exit $fio_pid 120 fio "the recovery"
wait $fio_pid
rc=$?
[ $rc = 0 ] || { tail -n 25 "$T_TMP/fio.log"; fail "fio across the crash exited with status $rc"; }
grep -q "err= 0" "$T_TMP/fio.log" || fail "fio reported errors: $(grep -m 3 err "$T_TMP/fio.log")"
reads=$(awk -F'[=,]' '/issued rwts/ { r += $2 } END { print r + 0 }' "$T_TMP/fio.log")
[ "$reads" -gt 0 ] || fail "fio verified nothing"
say "fio verified $reads blocks written across the crash"

step "a second kill and recovery, then verify only"
kill -KILL "$SRV_PID"
start_ublk recover "$id"
fio_verify_only again --rw=randwrite --bs=4k --iodepth=16 --size=32M --filename="$dev"
stop_ublk
wait_gone "/dev/shm/ublk-mem-$id" || fail "store remains after a clean stop"
