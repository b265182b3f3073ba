#!/bin/sh
# Recovery refuses what it cannot do, clearly and without changing anything:
# a live device, an unknown id, a device made without --recoverable, a
# missing store, a store smaller than its device (naming the truncate that
# serves the lost end as zeros). A store larger than its device (a resize
# that did not finish) is cut to the device's size, the data below its end
# kept. A device can be recovered twice in a row.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

start_ublk 32M --recoverable
id=$SRV_ID
dev=$DEV
rec_pid=$SRV_PID
store=/dev/shm/ublk-mem-$id
size=$((32 * MiB))
# Data at the start, 1 MiB below the device's end, and in its last MiB.
random_file "$T_TMP/data" $((4 * MiB))
write_at "$dev" "$T_TMP/data" 0
want=$(sha_of "$T_TMP/data")
random_file "$T_TMP/below" $((1 * MiB))
write_at "$dev" "$T_TMP/below" $((size - 2 * MiB))
random_file "$T_TMP/last" $((1 * MiB))
write_at "$dev" "$T_TMP/last" $((size - 1 * MiB))

# refused_for WHAT TEXT: the refusal refuse just saw gives TEXT as its reason.
refused_for() {
	grep -q -F -- "$2" "$T_TMP/r.err" || fail "$1: the refusal does not say '$2': $(cat "$T_TMP/r.err")"
}

# data_kept WHAT: the data at the start and 1 MiB below the end read back.
data_kept() {
	expect_eq "$(dev_sha "$dev" 0 $((4 * MiB)))" "$want" "the first 4 MiB $1"
	expect_eq "$(dev_sha "$dev" $((size - 2 * MiB)) $((1 * MiB)))" "$(sha_of "$T_TMP/below")" \
		"the MiB below the last $1"
}

step "refusals"
refuse 1 "a live device" recover "$id"
refused_for "a live device" "another ublk-mem server is using this store"
check_alive
refuse 1 "an unknown id" recover 999
refused_for "an unknown id" "device 999: no such ublk device"
start_ublk 16M
plain=$SRV_ID
plain_pid=$SRV_PID
plain_dev=$DEV
refuse 1 "a device without --recoverable" recover "$plain"
refused_for "a device without --recoverable" "device $plain was not created with --recoverable"
stop_server "$plain_pid" "$plain_dev"

step "a missing store"
kill -KILL "$rec_pid"
wait "$rec_pid" 2>/dev/null
# Moved within its file system, the store keeps its identity.
mv "$store" "$store.away"
refuse 1 "a missing store" recover "$id"
refused_for "a missing store" "$store: No such file or directory (it is gone"
mv "$store.away" "$store"
"$UBLK_MEM" list | awk -v id="$id" '$1 == id' | grep -q recoverable ||
	fail "the refusals changed device $id: $("$UBLK_MEM" list)"

# The store's own file, made larger and smaller with truncate (mv or cp
# would make it another file, refused for that).
step "a store larger than its device is cut to the device's size"
truncate -s $((size + 16 * MiB)) "$store" || fail "cannot grow $store"
start_ublk recover "$id"
expect_eq "$DEV" "$dev" "device after the refusals"
grep -q -F "$store: the store was $((size + 16 * MiB)) bytes, the device $size (a resize did not finish): cut to the device's size" "$SRV_ERR" ||
	fail "the server did not say it cut the store: $(cat "$SRV_ERR")"
expect_eq "$(stat -c %s "$store")" "$size" "the size of the store after the cut"
data_kept "after the cut"
expect_eq "$(dev_sha "$dev" $((size - 1 * MiB)) $((1 * MiB)))" "$(sha_of "$T_TMP/last")" \
	"the last MiB after the cut"

step "a store smaller than its device is refused, naming the fix"
kill -KILL "$SRV_PID"
wait "$SRV_PID" 2>/dev/null
truncate -s $((size - 1 * MiB)) "$store" || fail "cannot shrink $store"
refuse 1 "a store 1 MiB short" recover "$id"
fix="truncate -s $size $store"
refused_for "a store 1 MiB short" "$store: the store is $((size - 1 * MiB)) bytes but the device is $size: its last $((1 * MiB)) bytes are missing; to serve the device with zeros there: $fix"
expect_eq "$(stat -c %s "$store")" $((size - 1 * MiB)) "the size of the refused store"
# As the refusal says.
$fix || fail "$fix failed"
start_ublk recover "$id"
expect_eq "$DEV" "$dev" "device after the store was made whole"
data_kept "after the store was made whole"
expect_eq "$(dev_sha "$dev" $((size - 1 * MiB)) $((1 * MiB)))" "$(zero_sha $((1 * MiB)))" \
	"the last MiB, lost with the store's end"

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
