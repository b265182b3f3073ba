#!/bin/sh
# After -D detaches, what the server says goes to syslog (facility daemon,
# tag ublk-mem[PID]) or, while no syslog daemon listens on /dev/log, to the
# kernel log (dmesg): a stray signal's notice, and, when its device is
# deleted from outside, why it stopped (it removes its pid file then too).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
SYSLOGD=$(first_tool /sbin/syslogd /usr/sbin/syslogd /bin/syslogd) || SYSLOGD=
[ "${UBLKMEM_VM:-0}" = 1 ] || skip "this test starts its own syslogd on /dev/log: run it in the VM"
[ -e /dev/log ] && fail "the test VM has a /dev/log already"
need_tool "$SYSLOGD" "syslogd (busybox)"

# wait_line FILE_OR_CMD PATTERN SECS WHAT: wait until PATTERN (grep -E)
# is in FILE, or in the output of `dmesg -r` when FILE is "dmesg".
wait_line() {
	wait_until "$3" has_line "$1" "$2" || fail "$4 not found within $3 s (pattern: $2)"
}

# has_line FILE_OR_CMD PATTERN: PATTERN is in FILE (or the kernel log).
has_line() {
	if [ "$1" = dmesg ]; then
		dmesg -r >"$T_TMP/dmesg"
		grep -E -q "$2" "$T_TMP/dmesg"
	else
		grep -E -q "$2" "$1" 2>/dev/null
	fi
}

step "a daemon, with no syslog daemon running"
pidf=$T_TMP/ublk.pid
run_with_timeout 60 "$UBLK_MEM" -D 16M --pidfile "$pidf" >"$T_TMP/out" 2>"$T_TMP/err" </dev/null ||
	fail "ublk-mem -D failed: $(cat "$T_TMP/err")"
DEV=$(cat "$T_TMP/out")
pid=$(cat "$pidf")
echo "$pid" >>"$T_TMP/pids"
alive "$pid" || fail "the daemon $pid does not run"

step "no syslog daemon: the kernel log"
kill -USR1 "$pid"
# <29>: facility daemon (3 << 3) | notice (5).
wait_line dmesg "^<29>.*ublk-mem\[$pid\]: ignoring signal 10 " 10 \
	"the stray SIGUSR1 notice in the kernel log"
alive "$pid" || fail "the daemon died of SIGUSR1"

step "a syslog daemon: syslog"
"$SYSLOGD" -n -O "$T_TMP/messages" &
slpid=$!
echo "$slpid" >>"$T_TMP/pids"
# syslog_up: syslogd made /dev/log; fail if it died.
syslog_up() {
	[ -S /dev/log ] && return 0
	alive "$slpid" || fail "syslogd did not start"
	return 1
}
wait_until 10 syslog_up || fail "syslogd made no /dev/log within 10 s"
kill -USR2 "$pid"
wait_line "$T_TMP/messages" "daemon\.notice ublk-mem\[$pid\]: ignoring signal 12 " 10 \
	"the stray SIGUSR2 notice in syslog"
dmesg | grep -q "ublk-mem\[$pid\]: ignoring signal 12" &&
	fail "with syslog running, the notice went to the kernel log too"

step "the device deleted from outside: why, in syslog; the pid file goes"
run_with_timeout 60 "$UBLK_MEM" del "${DEV#/dev/ublkb}" >/dev/null 2>&1 || fail "ublk-mem del failed"
wait_exit "$pid" 30 "the daemon" "its device was deleted"
wait_line "$T_TMP/messages" "daemon\.err ublk-mem\[$pid\]: $DEV was stopped by someone else" 10 \
	"why the daemon stopped, in syslog"
[ -e "$pidf" ] && fail "the pid file remains after the daemon exited"
sed -n "s/^/    /; /ublk-mem\[$pid\]/p" "$T_TMP/messages"

kill -TERM "$slpid"
wait "$slpid"
rm -f /dev/log
