#!/bin/sh
# fio keeps writing (crc32c-verified random writes, QD16) while the server of
# a --recoverable device is killed and a new one recovers it within a
# second: fio finishes with no error and every block verifies.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

start_ublk 64M --recoverable
id=$SRV_ID
dev=$DEV

step "fio verify running across kill -9 and recover"
fio_across crash "$dev"
kill -KILL "$SRV_PID"
start_ublk recover "$id"
expect_eq "$DEV" "$dev" "device of the recovered server"
fio_across_done crash "the crash and recovery"

step "a second kill and recovery, then verify only"
kill -KILL "$SRV_PID"
start_ublk recover "$id"
fio_verify_only again --rw=randwrite --bs=4k --iodepth=16 --size=32M --filename="$dev"
stop_ublk
wait_gone "/dev/shm/ublk-mem-$id" || fail "store remains after a clean stop"
