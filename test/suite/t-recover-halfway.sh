#!/bin/sh
# A recovery that dies half-way, after START_USER_RECOVERY and before its
# queue fetched any tag (the test hook UBLK_MEM_TEST_FAULT=recovery-started
# stops it there, then it is killed). The next recovery must bring the
# data back: directly where the kernel allows it, else (Linux 6.12 refuses
# every later recovery) through `recover --rebuild`, which the refusal must
# name, never pointing at `del` without saying it deletes the data. Where
# the rebuild is needed, one whose FETCH the driver refuses keeps the store
# and the device.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

start_ublk 32M --recoverable
id=$SRV_ID
dev=$DEV
random_file "$T_TMP/data" $((4 * MiB))
write_at "$dev" "$T_TMP/data" $((8 * MiB))
want=$(sha_of "$T_TMP/data")
kill -KILL "$SRV_PID"
wait "$SRV_PID" 2>/dev/null

step "a recovery stopped right after START_USER_RECOVERY, then killed"
UBLK_MEM_TEST_FAULT=recovery-started "$UBLK_MEM" recover "$id" >"$T_TMP/half.out" 2>"$T_TMP/half.err" &
half=$!
echo $half >>"$T_TMP/pids"
wait_state $half T 30 || fail "the recovery did not stop after START_USER_RECOVERY: $(cat "$T_TMP/half.err")"
kill -KILL $half
wait $half 2>/dev/null

step "the next recovery"
"$UBLK_MEM" recover "$id" >"$T_TMP/r.out" 2>"$T_TMP/r.err" &
pid=$!
echo $pid >>"$T_TMP/pids"
i=0
while alive $pid && ! grep -q '^/dev/ublkb' "$T_TMP/r.out"; do
	[ $i -ge 300 ] && fail "recover neither came up nor gave up in 30 s: $(cat "$T_TMP/r.err")"
	sleep 0.1
	i=$((i + 1))
done
if alive $pid; then
	say "the kernel accepted the next recovery"
	SRV_PID=$pid
else
	wait $pid
	rc=$?
	say "recover refused (exit $rc): $(cat "$T_TMP/r.err")"
	expect_eq "$rc" 1 "exit status of the refused recovery"
	grep -q -- "--rebuild" "$T_TMP/r.err" || fail "the refusal does not name --rebuild"
	if grep -q "ublk-mem del" "$T_TMP/r.err" && ! grep -q "delete the data" "$T_TMP/r.err"; then
		fail "the refusal points at del without saying it deletes the data"
	fi
	step "a rebuild whose FETCH the driver refuses keeps the store and the device"
	store=$(store_sha "$id")
	run_with_timeout 60 env UBLK_MEM_TEST_FAULT=fetch-rejected "$UBLK_MEM" recover "$id" --rebuild \
		>"$T_TMP/f.out" 2>"$T_TMP/f.err"
	expect_eq "$?" 1 "exit status of the failed rebuild"
	say "the failed rebuild: $(cat "$T_TMP/f.err")"
	expect_eq "$(store_sha "$id")" "$store" "the store after the failed rebuild"
	listed "$id" || fail "device $id is gone after the failed rebuild: $("$UBLK_MEM" list)"
	step "recover --rebuild"
	start_ublk recover "$id" --rebuild
	grep -q "rebuilt" "$SRV_ERR" || fail "--rebuild did not say what it did"
fi
expect_eq "$(dev_sha "$dev" $((8 * MiB)) $((4 * MiB)))" "$want" "data after the half-way recovery"
fio_verify after --size=8M --offset=16M
stop_ublk
wait_gone "/dev/shm/ublk-mem-$id" || fail "the store remains after a clean stop"
