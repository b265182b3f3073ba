#!/bin/sh
# Recovery refuses what it cannot do, clearly and without changing anything:
# a live device, an unknown id, a device made without --recoverable, a
# missing or wrong-size store. A recovery killed half-way can be redone, and
# a device can be recovered twice in a row.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
need_ublk

start_ublk 32M --recoverable
id=$SRV_ID
dev=$DEV
rec_pid=$SRV_PID
random_file "$T_TMP/data" $((4 * MiB))
write_at "$dev" "$T_TMP/data" 0
want=$(sha_of "$T_TMP/data")

step "refusals"
refuse any "a live device" recover "$id"
check_alive
refuse any "an unknown id" recover 999
start_ublk 16M
plain=$SRV_ID
plain_pid=$SRV_PID
plain_dev=$DEV
refuse any "a device without --recoverable" recover "$plain"
stop_server "$plain_pid" "$plain_dev"

step "a missing store and a wrong-size store"
kill -KILL "$rec_pid"
store=/dev/shm/ublk-mem-$id
# Moved within its file system, the store keeps its identity.
mv "$store" "$store.away"
refuse any "a missing store" recover "$id"
head -c $((16 * MiB)) /dev/zero >"$store"
chmod 600 "$store"
refuse any "a wrong-size store" recover "$id"
rm -f "$store"
mv "$store.away" "$store"
"$UBLK_MEM" list | awk -v id="$id" '$1 == id' | grep -q recoverable ||
	fail "the refusals changed device $id: $("$UBLK_MEM" list)"
start_ublk recover "$id"
expect_eq "$DEV" "$dev" "device after the refusals"
expect_eq "$(dev_sha "$dev" 0 $((4 * MiB)))" "$want" "data after the refusals"

step "recovered twice in a row"
kill -KILL "$SRV_PID"
start_ublk recover "$id"
kill -KILL "$SRV_PID"
start_ublk recover "$id"
expect_eq "$(dev_sha "$dev" 0 $((4 * MiB)))" "$want" "data after two recoveries"

step "del removes a dead recoverable device and its store"
kill -KILL "$SRV_PID"
wait "$SRV_PID" 2>/dev/null
run_with_timeout 30 "$UBLK_MEM" del "$id" || fail "ublk-mem del $id failed"
wait_gone "$dev" "/dev/ublkc$id" "$store" || fail "del left $dev, /dev/ublkc$id or $store behind"
