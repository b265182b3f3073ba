#!/bin/sh
# Start-up that cannot finish never hangs (made to happen with the test
# hook UBLK_MEM_TEST_FAULT): a FETCH the driver rejects ends the server at
# once; a START_DEV that waits for a FETCH that never comes gives way to
# SIGTERM, and to its time limit without one. Each exits with one
# explanation and leaves no device behind.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

before=$(ublk_nodes)

# no_device_left: within 10 s, the ublk devices are those of before.
no_device_left() {
	wait_until 10 same_nodes || fail "devices left behind: $(ublk_nodes)"
}

# same_nodes: the ublk device nodes are those of before.
same_nodes() {
	[ "$(ublk_nodes)" = "$before" ]
}

step "a rejected FETCH"
run_with_timeout 60 env UBLK_MEM_TEST_FAULT=fetch-rejected "$UBLK_MEM" 64M \
	>"$T_TMP/1.out" 2>"$T_TMP/1.err"
rc=$?
say "exit $rc: $(cat "$T_TMP/1.err")"
expect_eq "$rc" 1 "exit status when a FETCH is rejected"
grep -q "refused FETCH_REQ" "$T_TMP/1.err" || fail "the server did not say what failed"
no_device_left

step "START_DEV waiting for a FETCH that never comes, then SIGTERM"
env UBLK_MEM_TEST_FAULT=fetch-missing "$UBLK_MEM" 64M >"$T_TMP/2.out" 2>"$T_TMP/2.err" &
pid=$!
echo $pid >>"$T_TMP/pids"
# two_threads: the server runs its queue thread; fail if it ended.
two_threads() {
	alive $pid || fail "the server ended early: $(cat "$T_TMP/2.err")"
	# shellcheck disable=SC2046 # one word per thread
	[ $(set -- /proc/"$pid"/task/*; echo $#) -ge 2 ]
}
wait_until 30 two_threads || fail "no queue thread after 30 s"
kill -TERM $pid
wait_exit $pid 20 ublk-mem SIGTERM
wait $pid
expect_eq "$?" 0 "exit status after SIGTERM during START_DEV"
[ -s "$T_TMP/2.out" ] && fail "a device that never started was announced: $(cat "$T_TMP/2.out")"
no_device_left

# Under the hook the time limit is 5 s, not 30.
step "START_DEV waiting for a FETCH that never comes, no signal"
start=$(date +%s)
run_with_timeout 90 env UBLK_MEM_TEST_FAULT=fetch-missing "$UBLK_MEM" 64M \
	>"$T_TMP/3.out" 2>"$T_TMP/3.err"
rc=$?
say "exit $rc after $(($(date +%s) - start)) s: $(cat "$T_TMP/3.err")"
expect_eq "$rc" 1 "exit status when START_DEV never completes"
grep -q "did not start" "$T_TMP/3.err" || fail "the server did not say what failed"
no_device_left
