#!/bin/sh
# A server that fails while serving (here made to fail by the test hook
# UBLK_MEM_TEST_FAULT=queue-error at the first request for byte 1 MiB):
# a --recoverable device keeps its data and its store and waits for
# `ublk-mem recover`, which completes the write that was in flight; a
# plain device is removed, the failed request ends with an error, and
# nothing is left behind.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

step "a recoverable server fails while serving"
UBLK_MEM_ENV=UBLK_MEM_TEST_FAULT=queue-error
start_ublk 32M --recoverable
UBLK_MEM_ENV=
id=$SRV_ID
dev=$DEV
store=/dev/shm/ublk-mem-$id
random_file "$T_TMP/a" $((1 * MiB))
random_file "$T_TMP/b" $((1 * MiB))
write_at "$dev" "$T_TMP/a" 0
(dd if="$T_TMP/b" of="$dev" bs=1M seek=1 oflag=direct conv=notrunc 2>"$T_TMP/w.err" &&
	echo ok >"$T_TMP/w.ok") &
writer=$!
wait_exit "$SRV_PID" 30 ublk-mem "the failure"
wait "$SRV_PID"
expect_eq "$?" 1 "exit status of the failed server"
grep -q "ublk-mem recover $id" "$SRV_ERR" ||
	fail "the server did not say how to recover: $(cat "$SRV_ERR")"
[ -f "$store" ] || fail "the store $store went with the failed server"
[ -b "$dev" ] || fail "$dev went with the failed server"
i=0
until "$UBLK_MEM" list | awk -v id="$id" '$1 == id' | grep -q recoverable; do
	[ $i -ge 300 ] && fail "device $id is not recoverable: $("$UBLK_MEM" list)"
	sleep 0.1
	i=$((i + 1))
done
alive $writer || fail "the write in flight did not wait for a new server: $(cat "$T_TMP/w.err")"

step "recover: the data, and the write that was in flight"
start_ublk recover "$id"
wait_exit $writer 60 "the write in flight" "the recovery"
[ -f "$T_TMP/w.ok" ] || fail "the write in flight failed: $(cat "$T_TMP/w.err")"
expect_eq "$(dev_sha "$dev" 0 $((2 * MiB)))" \
	"$(cat "$T_TMP/a" "$T_TMP/b" | sha256sum | cut -d' ' -f1)" "data after the recovery"
stop_ublk
wait_gone "$store" || fail "$store remains after a clean stop"

step "a plain server fails while serving: its device goes"
UBLK_MEM_ENV=UBLK_MEM_TEST_FAULT=queue-error
start_ublk 32M
UBLK_MEM_ENV=
dd if="$T_TMP/b" of="$DEV" bs=1M seek=1 oflag=direct conv=notrunc 2>"$T_TMP/w2.err" &&
	fail "the write that made the server fail succeeded"
say "the write failed: $(tail -n 1 "$T_TMP/w2.err")"
wait_exit "$SRV_PID" 30 ublk-mem "the failure"
wait "$SRV_PID"
expect_eq "$?" 1 "exit status of the failed server"
wait_gone "$DEV" "/dev/ublkc$SRV_ID" || fail "the failed server left $DEV behind"
