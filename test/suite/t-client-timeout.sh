#!/bin/sh
# The client commands never hang and never ignore Ctrl-C. Against a server
# that is stuck (here: stopped with SIGSTOP, so it never answers its
# control socket), `resize` and `restart` give up within seconds with one
# line naming the server and its pid; what they asked is not carried out
# once the server runs again. A stop signal ends a waiting client at once
# (SIGTERM here: a shell starts background jobs with SIGINT ignored).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

start_ublk 64M --recoverable
id=$SRV_ID
size=$(dev_size "$DEV")
kill -STOP "$SRV_PID" || fail "cannot stop the server"

# gives_up WHAT ARGS...: `ublk-mem ARGS` must fail within 60 s (its own
# limit is a few seconds), with one line naming the server's pid.
gives_up() {
	_what=$1
	shift
	start=$(date +%s)
	run_with_timeout 60 "$UBLK_MEM" "$@" >"$T_TMP/c.out" 2>"$T_TMP/c.err"
	rc=$?
	took=$(($(date +%s) - start))
	say "$_what: exit $rc after ${took}s: $(cat "$T_TMP/c.err")"
	[ $rc = 124 ] && fail "$_what hung"
	expect_eq "$rc" 1 "exit status of $_what"
	expect_eq "$(grep -c '' "$T_TMP/c.err")" 1 "lines on stderr of $_what"
	grep -q "pid $SRV_PID" "$T_TMP/c.err" || fail "$_what does not name the server's pid"
	grep -q "did not answer" "$T_TMP/c.err" || fail "$_what does not say the server did not answer"
}

step "resize and restart against a server that does not answer"
gives_up "resize of a stuck server" resize "$id" 128M
gives_up "restart of a stuck server" restart "$id"

step "SIGTERM ends a waiting client"
"$UBLK_MEM" resize "$id" 96M >"$T_TMP/i.out" 2>"$T_TMP/i.err" &
client=$!
# connected: the client holds its connection to the server's socket.
connected() {
	alive $client || fail "the client ended by itself: $(cat "$T_TMP/i.err")"
	for _fd in "/proc/$client/fd/"*; do
		case $(readlink "$_fd") in socket:*) return 0 ;; esac
	done
	return 1
}
wait_until 30 connected || fail "the client did not connect"
kill -TERM $client
wait_exit $client 10 "the client" SIGTERM
wait $client
expect_eq "$?" 143 "exit status of a client ended by SIGTERM"

step "the server runs again: nothing it was asked while stuck is done"
kill -CONT "$SRV_PID"
# An answer to a request of ours shows it has read the old ones (without
# UPDATE_SIZE, before Linux 6.16, the answer is a refusal).
if ! run_with_timeout 60 "$UBLK_MEM" resize "$id" 64M >"$T_TMP/r.out" 2>"$T_TMP/r.err"; then
	grep -q "UPDATE_SIZE" "$T_TMP/r.err" || fail "the server did not answer: $(cat "$T_TMP/r.err")"
fi
check_alive
expect_eq "$(server_of "$DEV")" "$SRV_PID" "the server of $DEV"
expect_eq "$(dev_size "$DEV")" "$size" "device size"
stop_ublk
