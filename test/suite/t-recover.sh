#!/bin/sh
# A --recoverable device outlives its server: after SIGKILL, I/O waits;
# `ublk-mem recover ID` takes over with the data intact and the waiting I/O
# completes; a clean stop then removes device and store.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

start_ublk 64M --recoverable
id=$SRV_ID
dev=$DEV
store=/dev/shm/ublk-mem-$id
random_file "$T_TMP/data" $((8 * MiB))
write_at "$DEV" "$T_TMP/data" $((4 * MiB))
want=$(sha_of "$T_TMP/data")

step "SIGKILL the server"
kill -KILL "$SRV_PID"
wait "$SRV_PID" 2>/dev/null
[ -f "$store" ] || fail "no store $store after the crash"
i=0
until run_with_timeout 30 "$UBLK_MEM" list | awk -v id="$id" '$1 == id' | grep -q recoverable; do
	[ $i -ge 300 ] && fail "device $id not recoverable 30s after the crash: $("$UBLK_MEM" list)"
	sleep 0.1
	i=$((i + 1))
done
[ -b "$dev" ] || fail "$dev went away with its server"

step "a read issued while no server runs waits for the recovery"
dd if="$dev" of="$T_TMP/waiting" bs=1M skip=4 count=8 iflag=direct 2>/dev/null &
reader=$!
wait_blocked $reader 30 || fail "a read of the quiesced device did not wait for a server"


step "ublk-mem recover $id"
start_ublk recover "$id"
expect_eq "$DEV" "$dev" "device of the recovered server"
wait_exit $reader 30 "the waiting read" "the recovery"
wait $reader
expect_eq "$(sha_of "$T_TMP/waiting")" "$want" "data read while the server was down"
expect_eq "$(dev_sha "$DEV" $((4 * MiB)) $((8 * MiB)))" "$want" "data after the recovery"
fio_verify recovered --size=8M --offset=32M
stop_ublk
wait_gone "$store" || fail "store $store remains after a clean stop"
