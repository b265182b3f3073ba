#!/bin/sh
# A resize cannot strand a recoverable store. A crash between growing the
# store and telling the kernel (or between shrinking the device and the
# store) leaves a store larger than its device: the next recovery cuts it
# to the device's size, data intact. A store smaller than its device has
# lost data: recover refuses, naming the command that makes it usable.
# Requests already on their way when the device shrinks may reach the
# store beyond its new end: a shrink/grow loop under fio, on a bounce-mode
# store and on zero_copy, keeps the server alive and the data that stayed
# in range intact.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

start_ublk 32M --recoverable
id=$SRV_ID
dev=$DEV
store=/dev/shm/ublk-mem-$id
random_file "$T_TMP/data" $((4 * MiB))
write_at "$dev" "$T_TMP/data" $((8 * MiB))
want=$(sha_of "$T_TMP/data")

step "a store larger than its device is cut to the device's size"
kill -KILL "$SRV_PID"
wait "$SRV_PID" 2>/dev/null
truncate -s 96M "$store" || fail "cannot grow the store"
start_ublk recover "$id"
grep -q "cut to the device's size" "$SRV_ERR" || fail "recover did not say it cut the store: $(cat "$SRV_ERR")"
expect_eq "$(stat -c %s "$store")" $((32 * MiB)) "store size after the recovery"
expect_eq "$(dev_size "$dev")" $((32 * MiB)) "device size after the recovery"
expect_eq "$(dev_sha "$dev" $((8 * MiB)) $((4 * MiB)))" "$want" "data after the recovery"

step "a store smaller than its device is refused, naming the fix"
kill -KILL "$SRV_PID"
wait "$SRV_PID" 2>/dev/null
truncate -s 16M "$store" || fail "cannot shrink the store"
refuse 1 "a store smaller than its device" recover "$id"
grep -q "truncate -s $((32 * MiB)) $store" "$T_TMP/r.err" || fail "the refusal does not name the fix"
truncate -s $((32 * MiB)) "$store" || fail "cannot apply the fix"
start_ublk recover "$id"
expect_eq "$(dev_sha "$dev" $((8 * MiB)) $((4 * MiB)))" "$want" "data below the cut"
expect_eq "$(dev_sha "$dev" $((16 * MiB)) $((16 * MiB)))" "$(zero_sha $((16 * MiB)))" "the part cut off"
stop_ublk

if ! has_feature UPDATE_SIZE; then
	say "no UPDATE_SIZE: no live resize to check"
	exit 0
fi

# shrink_grow_under_fio MODE: shrink a 64 MiB recoverable device in MODE to
# 32 MiB and grow it back, again and again while fio writes and verifies
# its first 32 MiB (fio_across) and a second fio keeps requests going to
# the part that is cut off and added again.
shrink_grow_under_fio() {
	start_ublk 64M --recoverable --copy-mode "$1"
	(cd "$T_TMP" && "$FIO" --name=edge --filename="$DEV" --ioengine=libaio --direct=1 \
		--rw=randrw --bs=4k --iodepth=16 --offset=32M --size=32M --time_based \
		--runtime=300 --continue_on_error=all) >"$T_TMP/edge.log" 2>&1 &
	edge=$!
	echo $edge >>"$T_TMP/pids"
	fio_across "stay-$1" "$DEV"
	i=0
	while alive "$FIO_PID" || [ $i -lt 3 ]; do
		i=$((i + 1))
		run_with_timeout 60 "$UBLK_MEM" resize "$SRV_ID" 32M --force >/dev/null 2>"$T_TMP/rs.err" ||
			fail "shrink $i failed: $(cat "$T_TMP/rs.err")"
		run_with_timeout 60 "$UBLK_MEM" resize "$SRV_ID" 64M >/dev/null 2>"$T_TMP/rs.err" ||
			fail "grow $i failed: $(cat "$T_TMP/rs.err")"
		check_alive
	done
	say "$i shrinks and grows ($1)"
	fio_across_done "stay-$1" "$i shrinks and grows ($1)"
	kill -TERM $edge 2>/dev/null
	wait $edge 2>/dev/null
	check_alive
	stop_ublk
}

step "shrink and grow under fio, bounce mode"
shrink_grow_under_fio bounce
if has_feature AUTO_BUF_REG; then
	step "shrink and grow under fio, zero_copy"
	shrink_grow_under_fio zero_copy
fi
