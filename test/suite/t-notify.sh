#!/bin/sh
# systemd's readiness protocol, with test/suite/notify_listen in systemd's place:
# with NOTIFY_SOCKET set, the server sends READY=1 with STATUS=serving
# /dev/ublkbN once the device is live (it is a block device when the
# message arrives), from its own pid, and STOPPING=1 after it when it stops
# cleanly. The same over an abstract socket ('@name'); in daemon mode the
# message also carries MAINPID=, the detached server's pid. A socket nobody
# listens on costs a warning, not the device.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

LISTEN=$TEST_ROOT/suite/notify_listen
[ -x "$LISTEN" ] || fail "no $LISTEN: build it with 'make test/suite/notify_listen' (make test does)"
LOG=$T_TMP/notify.log

# start_listener NAME: listen on NAME (a path or @abstract), log to $LOG.
start_listener() {
	: >"$LOG"
	"$LISTEN" "$1" "$LOG" >"$T_TMP/listen.out" 2>&1 &
	LPID=$!
	echo "$LPID" >>"$T_TMP/pids"
	wait_until 10 listening "$1" || fail "notify_listen $1 is not listening after 10 s"
}

# listening NAME: notify_listen says it listens; fail if it died.
listening() {
	grep -q '^listening$' "$T_TMP/listen.out" && return 0
	alive "$LPID" || fail "notify_listen $1 failed: $(cat "$T_TMP/listen.out")"
	return 1
}

stop_listener() {
	kill -TERM "$LPID"
	wait "$LPID"
}

# wait_field FIELD SECS: wait until a datagram with the line FIELD came;
# print "SEQ PID" of the first one.
wait_field() {
	wait_until "$2" field_came "$1" >/dev/null || fail "no $1 from the server within $2 s; got: $(cat "$LOG")"
	field_came "$1"
}

# field_came FIELD: print "SEQ PID" of the first datagram with the line
# FIELD; status 1 while none came.
field_came() {
	awk -v f="$1" '{ s = $1; p = $2; $1 = ""; $2 = ""; sub(/^  /, "") }
		$0 == f { print s, p; found = 1; exit } END { exit !found }' "$LOG"
}

# fields SEQ: the lines of datagram SEQ, without its number and pid.
fields() {
	awk -v s="$1" '$1 == s { $1 = ""; $2 = ""; sub(/^  /, ""); print }' "$LOG"
}

# check_ready SEQ PID WANT_PID DEV: the READY=1 datagram is from WANT_PID,
# names DEV in STATUS, and DEV was live when it came.
check_ready() {
	expect_eq "$2" "$3" "sender of READY=1"
	fields "$1" | grep -q -x "STATUS=serving $4" ||
		fail "READY=1 came without STATUS=serving $4: $(fields "$1")"
	fields "$1" | grep -q -x "dev $4 block" ||
		fail "READY=1 came before $4 was a block device: $(fields "$1")"
}

# check_stopping READY_SEQ PID: STOPPING=1 came after READY=1, from PID.
check_stopping() {
	# shellcheck disable=SC2046 # SEQ and PID
	set -- "$1" "$2" $(wait_field STOPPING=1 10)
	[ "$3" -gt "$1" ] || fail "STOPPING=1 (datagram $3) did not come after READY=1 (datagram $1)"
	expect_eq "$4" "$2" "sender of STOPPING=1"
}

step "a socket path: READY=1 once live, STOPPING=1 on SIGTERM"
start_listener "$T_TMP/notify.sock"
UBLK_MEM_ENV="NOTIFY_SOCKET=$T_TMP/notify.sock" start_ublk 32M
# shellcheck disable=SC2046 # SEQ and PID
set -- $(wait_field READY=1 10)
check_ready "$1" "$2" "$SRV_PID" "$DEV"
fields "$1" | grep -q '^MAINPID=' && fail "a server in the foreground sent MAINPID: $(fields "$1")"
ready=$1
fio_verify notified --size=8M
grep -q STOPPING "$LOG" && fail "STOPPING=1 came while serving: $(cat "$LOG")"
stop_ublk
check_stopping "$ready" "$SRV_PID"
stop_listener

step "an abstract socket (@name)"
name=@ublk-mem-test-$$
start_listener "$name"
UBLK_MEM_ENV="NOTIFY_SOCKET=$name" start_ublk 16M
# shellcheck disable=SC2046
set -- $(wait_field READY=1 10)
check_ready "$1" "$2" "$SRV_PID" "$DEV"
ready=$1
stop_ublk
check_stopping "$ready" "$SRV_PID"
stop_listener

step "daemon mode: MAINPID= names the detached server"
start_listener "$T_TMP/notify.sock"
NOTIFY_SOCKET=$T_TMP/notify.sock run_with_timeout 60 "$UBLK_MEM" -D 16M \
	--pidfile "$T_TMP/d.pid" >"$T_TMP/d.out" 2>"$T_TMP/d.err" </dev/null
rc=$?
expect_eq "$rc" 0 "exit status of ublk-mem -D: $(cat "$T_TMP/d.err")"
DEV=$(cat "$T_TMP/d.out")
pid=$(cat "$T_TMP/d.pid")
echo "$pid" >>"$T_TMP/pids"
# shellcheck disable=SC2046
set -- $(wait_field READY=1 10)
check_ready "$1" "$2" "$pid" "$DEV"
fields "$1" | grep -q -x "MAINPID=$pid" ||
	fail "READY=1 in daemon mode came without MAINPID=$pid: $(fields "$1")"
ready=$1
kill -TERM "$pid"
wait_exit "$pid" 30 "the daemon" SIGTERM
check_stopping "$ready" "$pid"
wait_gone "$DEV" || fail "$DEV remains after SIGTERM to its daemon"
stop_listener

step "nobody listening: the device serves anyway, with a warning"
UBLK_MEM_ENV="NOTIFY_SOCKET=$T_TMP/nobody.sock" start_ublk 16M
# The warning line itself, not any line that names the variable.
warning="ublk-mem: warning: NOTIFY_SOCKET=$T_TMP/nobody.sock: No such file or directory (the service manager is not told how the device is)"
grep -q -x -F "$warning" "$SRV_ERR" ||
	fail "the server did not say its notification failed: $(cat "$SRV_ERR")"
fio_verify unheard --size=8M
stop_ublk
