#!/bin/sh
# A recoverable device's data survives every way a recovery can fail: the
# store is removed only after a clean stop of a device that was live.
# (The faults are made with the test hook UBLK_MEM_TEST_FAULT.)
#  - a recovery stopped by SIGTERM while the kernel waits for its FETCHes;
#  - a recovery whose FETCH the driver refuses;
#  - a device the kernel has lost (deleted): `recover` names --rebuild, and
#    a rebuild whose start fails keeps both the store and the new device;
# after each, the store is unchanged, the device is still listed, and the
# next recovery brings every byte back.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

start_ublk 32M --recoverable
id=$SRV_ID
dev=$DEV
random_file "$T_TMP/data" $((4 * MiB))
write_at "$dev" "$T_TMP/data" $((8 * MiB))
want=$(sha_of "$T_TMP/data")

# crash: kill the server; remember its store's checksum.
crash() {
	kill -KILL "$SRV_PID"
	wait "$SRV_PID" 2>/dev/null
	wait_until 30 listed_recoverable || fail "device $id is not recoverable after kill -9: $("$UBLK_MEM" list)"
	store=$(store_sha "$id")
}

listed_recoverable() {
	"$UBLK_MEM" list | awk -v id="$id" '$1 == id && $2 == "recoverable" { f = 1 } END { exit !f }'
}

# kept WHAT ERRFILE: after WHAT failed, the store is unchanged, the device
# listed, and the server said how to get the data back.
kept() {
	expect_eq "$(store_sha "$id")" "$store" "the store after $1"
	listed "$id" || fail "device $id is gone after $1 ($(cat "$2")): $("$UBLK_MEM" list)"
	grep -q "ublk-mem recover $id" "$2" || fail "after $1 the server did not say how to recover: $(cat "$2")"
	say "$1: store and device kept: $(grep -m 1 "recover $id" "$2")"
}

# back: recover the device; every byte must be there.
back() {
	recover_dev "$id"
	expect_eq "$(dev_sha "$dev" $((8 * MiB)) $((4 * MiB)))" "$want" "data after $1"
}

# threads_up PID: the recovery runs its queue thread (it waits in
# END_USER_RECOVERY for the FETCH the hook holds back); fail if it ended.
threads_up() {
	alive "$1" || fail "the recovery ended early: $(cat "$T_TMP/a.err")"
	# shellcheck disable=SC2046 # one word per thread
	[ $(set -- /proc/"$1"/task/*; echo $#) -ge 2 ]
}

step "a recovery stopped by SIGTERM while the kernel waits for its FETCHes"
crash
UBLK_MEM_TEST_FAULT=fetch-missing "$UBLK_MEM" recover "$id" >"$T_TMP/a.out" 2>"$T_TMP/a.err" &
pid=$!
echo $pid >>"$T_TMP/pids"
wait_until 30 threads_up $pid || fail "the recovery started no queue thread in 30 s"
kill -TERM $pid
wait_exit $pid 30 "the stopped recovery" SIGTERM
wait $pid
say "exit $?: $(cat "$T_TMP/a.err")"
[ -s "$T_TMP/a.out" ] && fail "a recovery that never served printed a device: $(cat "$T_TMP/a.out")"
kept "the stopped recovery" "$T_TMP/a.err"
back "the stopped recovery"

step "a recovery whose FETCH the driver refuses"
crash
run_with_timeout 60 env UBLK_MEM_TEST_FAULT=fetch-rejected "$UBLK_MEM" recover "$id" \
	>"$T_TMP/b.out" 2>"$T_TMP/b.err"
expect_eq "$?" 1 "exit status of the failed recovery"
kept "the failed recovery" "$T_TMP/b.err"
back "the failed recovery"

step "a device the kernel lost: recover names --rebuild"
crash
record=/run/ublk-mem/$id
cp -p "$record" "$T_TMP/record" || fail "no record $record"
mv "/dev/shm/ublk-mem-$id" "/dev/shm/ublk-mem-$id.away"
run_with_timeout 30 "$UBLK_MEM" del "$id" >/dev/null 2>&1 || fail "del $id failed"
wait_gone "/dev/ublkc$id" || fail "del left /dev/ublkc$id"
# The store and its record come back (mv within /dev/shm keeps the
# store's identity).
mv "/dev/shm/ublk-mem-$id.away" "/dev/shm/ublk-mem-$id"
cp -p "$T_TMP/record" "$record"
refuse 1 "recover of a device the kernel lost" recover "$id"
grep -q -- "recover $id --rebuild" "$T_TMP/r.err" || fail "the refusal does not name --rebuild"

step "a rebuild whose start fails keeps the store and the device"
run_with_timeout 60 env UBLK_MEM_TEST_FAULT=fetch-rejected "$UBLK_MEM" recover "$id" --rebuild \
	>"$T_TMP/c.out" 2>"$T_TMP/c.err"
expect_eq "$?" 1 "exit status of the failed rebuild"
kept "the failed rebuild" "$T_TMP/c.err"
grep -q -- "recover $id --rebuild" "$T_TMP/c.err" || fail "the failed rebuild does not name --rebuild"
back "the failed rebuild"
fio_verify after --size=8M --offset=16M
stop_ublk
wait_gone "/dev/shm/ublk-mem-$id" || fail "the store remains after a clean stop"
