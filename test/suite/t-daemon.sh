#!/bin/sh
# -D/--daemon with --pidfile: the command returns only once the device is
# live, printing its path, exit 0; the server goes on detached (a session
# of its own, working from /, stdin and stdout on /dev/null, nothing of the
# caller's held open: a $(...) around it returns) and serves; the pid file
# holds its pid, and SIGTERM to that pid removes the device and the pid
# file. A pid file naming a running server is refused; a link planted at
# the pid file's path is replaced, not followed. A start that fails exits
# non-zero with one line on stderr and leaves no device, no pid file, no
# process and no store behind, and so does one whose parent gets SIGTERM
# while it starts. recover -D takes over a recoverable device the same
# way. --pidfile without -D works the same way.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

# proc_field PID N: field N of /proc/PID/stat after the command name
# (1 state, 2 ppid, 3 process group, 4 session).
proc_field() {
	_pf=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	_pn=$2
	# shellcheck disable=SC2086 # split the fields
	set -- ${_pf##*) }
	eval "echo \${$_pn}"
}

# servers: pids of running ublk-mem processes, one a line.
servers() {
	for _c in /proc/[0-9]*/comm; do
		[ "$(cat "$_c" 2>/dev/null)" = ublk-mem ] || continue
		_p=${_c#/proc/}
		_p=${_p%/comm}
		alive "$_p" && echo "$_p"
	done | sort
}

# start_daemon OUTNAME ARGS...: run `ublk-mem -D ARGS` and expect it to
# return 0 with one line, the live device; sets DEV, SRV_ID, and SRV_PID
# from the pid file given as --pidfile (the first ARG after it must be
# that path). The server is stopped at exit if the test does not.
start_daemon() {
	_name=$1
	shift
	run_with_timeout 60 "$UBLK_MEM" -D "$@" >"$T_TMP/$_name.out" 2>"$T_TMP/$_name.err" </dev/null
	_rc=$?
	[ $_rc = 0 ] || fail "ublk-mem -D $* exited with status $_rc: $(cat "$T_TMP/$_name.err")"
	expect_eq "$(grep -c '' "$T_TMP/$_name.out")" 1 "lines printed by ublk-mem -D $*"
	[ -s "$T_TMP/$_name.err" ] && fail "ublk-mem -D $* wrote on stderr: $(cat "$T_TMP/$_name.err")"
	DEV=$(cat "$T_TMP/$_name.out")
	case $DEV in /dev/ublkb[0-9]*) ;; *) fail "ublk-mem -D $* printed '$DEV'" ;; esac
	# No waiting: the device must be there when the command returns.
	[ -b "$DEV" ] || fail "$DEV is not a block device when ublk-mem -D returned"
	SRV_ID=${DEV#/dev/ublkb}
}

# pid_from FILE: the pid a pid file holds; it must be a running process.
pid_from() {
	[ -f "$1" ] || fail "no pid file $1"
	[ -L "$1" ] && fail "the pid file $1 is a symbolic link"
	_pid=$(cat "$1")
	case $_pid in '' | *[!0-9]*) fail "the pid file $1 holds '$_pid'" ;; esac
	echo "$_pid" >>"$T_TMP/pids"
	alive "$_pid" || fail "the pid file $1 names $_pid, which does not run"
	echo "$_pid"
}

# stop_daemon PID DEV PIDFILE: SIGTERM; the process ends, the device nodes
# and the pid file go.
stop_daemon() {
	kill -TERM "$1" || fail "cannot signal the daemon $1"
	wait_exit "$1" 30 "the daemon of $2" SIGTERM
	wait_gone "$2" "/dev/ublkc${2#/dev/ublkb}" || fail "$2 remains after SIGTERM to its daemon"
	[ -e "$3" ] && fail "the pid file $3 remains after a clean stop"
	say "daemon $1 stopped by SIGTERM: $2 and $3 gone"
}

before=$(ublk_nodes)
mkdir -p "$T_TMP/run"
pidf=$T_TMP/run/ublk.pid

step "ublk-mem -D --pidfile returns once the device is live"
# fd 9 open in the caller: the daemon must not keep it.
exec 9>"$T_TMP/held-by-caller"
start_daemon d1 64M --pidfile "$pidf"
exec 9>&-
pid=$(pid_from "$pidf")
expect_eq "$("$UBLK_MEM" list | awk -v id="$SRV_ID" '$1 == id { print $3 }')" "$pid" \
	"the server of $DEV in ublk-mem list"

step "the server is detached"
expect_eq "$(proc_field "$pid" 4)" "$pid" "session of the daemon (setsid)"
expect_eq "$(proc_field "$pid" 3)" "$pid" "process group of the daemon"
expect_eq "$(readlink "/proc/$pid/cwd")" / "working directory of the daemon"
expect_eq "$(readlink "/proc/$pid/fd/0")" /dev/null "stdin of the daemon"
expect_eq "$(readlink "/proc/$pid/fd/1")" /dev/null "stdout of the daemon"
for fd in /proc/"$pid"/fd/*; do
	case $(readlink "$fd") in "$T_TMP"/*)
		fail "the daemon holds the caller's $(readlink "$fd") as fd ${fd##*/}" ;;
	esac
done

step "the daemon serves"
fio_verify daemon --size=16M
alive "$pid" || fail "the daemon died while serving"

step "a command substitution around ublk-mem -D returns"
(
	out=$("$UBLK_MEM" -D 32M --pidfile "$T_TMP/run/subst.pid" 2>&1)
	echo "$? $out" >"$T_TMP/subst"
) &
job=$!
wait_exit "$job" 60 "dev=\$(ublk-mem -D 32M)" "start"
wait "$job"
read -r rc dev2 <"$T_TMP/subst"
expect_eq "$rc" 0 "exit status of ublk-mem -D 32M inside \$(...)"
[ -b "$dev2" ] || fail "\$(ublk-mem -D 32M) gave '$dev2', not a block device"
pid2=$(pid_from "$T_TMP/run/subst.pid")

step "a pid file naming a running server is refused"
run_with_timeout 30 "$UBLK_MEM" -D 16M --pidfile "$pidf" >"$T_TMP/dup.out" 2>"$T_TMP/dup.err" </dev/null
rc=$?
say "second server on $pidf: exit $rc: $(cat "$T_TMP/dup.err")"
expect_eq "$rc" 1 "exit status of a second server with the same pid file"
expect_eq "$(grep -c '' "$T_TMP/dup.err")" 1 "lines on stderr of the refused start"
grep -q "is running" "$T_TMP/dup.err" || fail "the refusal does not say why: $(cat "$T_TMP/dup.err")"
[ -s "$T_TMP/dup.out" ] && fail "the refused start printed $(cat "$T_TMP/dup.out")"
expect_eq "$(cat "$pidf")" "$pid" "the pid file after the refused start"

step "SIGTERM to the pid in the pid file stops cleanly"
stop_daemon "$pid" "$DEV" "$pidf"
stop_daemon "$pid2" "$dev2" "$T_TMP/run/subst.pid"
expect_eq "$(ublk_nodes)" "$before" "ublk devices after both daemons stopped"

step "a link planted at the pid file's path is replaced, not followed"
echo precious >"$T_TMP/victim"
ln -s "$T_TMP/victim" "$T_TMP/run/link.pid"
start_daemon d2 16M --pidfile "$T_TMP/run/link.pid"
pid=$(pid_from "$T_TMP/run/link.pid")
expect_eq "$(cat "$T_TMP/victim")" precious "the planted link's target"
stop_daemon "$pid" "$DEV" "$T_TMP/run/link.pid"
expect_eq "$(cat "$T_TMP/victim")" precious "the planted link's target after the stop"

step "a start that fails leaves nothing behind"
start_ublk 16M
taken=$SRV_ID
servers_before=$(servers)
nodes_before=$(ublk_nodes)
records_before=$(ls /run/ublk-mem 2>/dev/null)
echo planted >"$T_TMP/planted"
# try_fail WHAT ARGS...: ublk-mem -D ARGS must fail, exit 1, one line.
try_fail() {
	_what=$1
	shift
	rm -f "$T_TMP/run/fail.pid"
	run_with_timeout 60 "$UBLK_MEM" -D --pidfile "$T_TMP/run/fail.pid" "$@" \
		>"$T_TMP/fail.out" 2>"$T_TMP/fail.err" </dev/null
	_rc=$?
	say "$_what: exit $_rc: $(cat "$T_TMP/fail.err")"
	expect_eq "$_rc" 1 "exit status of ublk-mem -D with $_what"
	expect_eq "$(grep -c '' "$T_TMP/fail.err")" 1 "lines on stderr with $_what"
	[ -s "$T_TMP/fail.out" ] && fail "ublk-mem -D with $_what printed $(cat "$T_TMP/fail.out")"
	[ -e "$T_TMP/run/fail.pid" ] && fail "ublk-mem -D with $_what left its pid file"
	for _f in "$T_TMP"/run/fail.pid.*; do
		[ -e "$_f" ] && fail "ublk-mem -D with $_what left a temporary pid file $_f"
	done
	expect_eq "$(ublk_nodes)" "$nodes_before" "ublk devices after ublk-mem -D with $_what"
	expect_eq "$(servers)" "$servers_before" "ublk-mem processes after ublk-mem -D with $_what"
	expect_eq "$(ls /run/ublk-mem 2>/dev/null)" "$records_before" "store records after ublk-mem -D with $_what"
}
try_fail "a device id in use" 16M -n "$taken"
try_fail "a planted store file" 16M --recoverable --store "$T_TMP/planted"
expect_eq "$(cat "$T_TMP/planted")" planted "the planted store file"
try_fail "more memory than can be locked" 1G --prealloc --reserve 1G
stop_ublk

step "SIGTERM to the waiting parent: the start is given up"
# A start that takes a while (locking 1 GiB), interrupted as Ctrl-C or an
# init system's timeout would: the parent passes the signal on, the child
# gives up, and nothing is left.
"$UBLK_MEM" -D 1G --prealloc --reserve 0 --pidfile "$T_TMP/run/slow.pid" \
	>"$T_TMP/slow.out" 2>"$T_TMP/slow.err" </dev/null &
parent=$!
child=
i=0
while [ -z "$child" ] && alive "$parent" && [ $i -lt 300 ]; do
	child=$(awk -v p="$parent" '{ sub(/.*\) /, ""); if ($2 == p) print FILENAME }' \
		/proc/[0-9]*/stat 2>/dev/null | head -n 1)
	child=${child#/proc/}
	child=${child%/stat}
	[ -z "$child" ] && sleep 0.1
	i=$((i + 1))
done
[ -n "$child" ] && echo "$child" >>"$T_TMP/pids"
kill -TERM "$parent" 2>/dev/null
wait_exit "$parent" 60 "ublk-mem -D 1G --prealloc" SIGTERM
wait "$parent"
rc=$?
if [ "$rc" = 0 ]; then
	# The device went live before the signal came: a fast machine.
	say "the 1 GiB start finished before SIGTERM reached it; stopping it"
	stop_daemon "$(cat "$T_TMP/run/slow.pid")" "$(cat "$T_TMP/slow.out")" "$T_TMP/run/slow.pid"
else
	say "interrupted start: exit $rc: $(cat "$T_TMP/slow.err")"
	expect_eq "$rc" 1 "exit status of an interrupted ublk-mem -D"
	[ -s "$T_TMP/slow.err" ] || fail "an interrupted start said nothing"
	[ -s "$T_TMP/slow.out" ] && fail "an interrupted start printed $(cat "$T_TMP/slow.out")"
	[ -n "$child" ] && wait_exit "$child" 30 "the interrupted daemon" "SIGTERM to its parent"
	[ -e "$T_TMP/run/slow.pid" ] && fail "an interrupted start left its pid file"
	expect_eq "$(ublk_nodes)" "$before" "ublk devices after an interrupted start"
fi

step "usage errors come before the fork: exit 2"
run_with_timeout 30 "$UBLK_MEM" -D 16M -v >"$T_TMP/u.out" 2>"$T_TMP/u.err" </dev/null
expect_eq "$?" 2 "exit status of ublk-mem -D -v"
run_with_timeout 30 "$UBLK_MEM" -D 16M --pidfile "$T_TMP/no-dir/x.pid" >"$T_TMP/u.out" 2>"$T_TMP/u.err" </dev/null
expect_eq "$?" 2 "exit status of --pidfile in a missing directory"
expect_eq "$(ublk_nodes)" "$before" "ublk devices after the usage errors"

step "recover -D: a new daemon takes over a recoverable device"
start_daemon d3 32M --recoverable --pidfile "$T_TMP/run/rec.pid"
pid=$(pid_from "$T_TMP/run/rec.pid")
random_file "$T_TMP/rdata" $((4 * MiB))
write_at "$DEV" "$T_TMP/rdata" 0
kill -KILL "$pid"
wait_exit "$pid" 30 "the recoverable daemon" SIGKILL
run_with_timeout 60 "$UBLK_MEM" recover "$SRV_ID" -D --pidfile "$T_TMP/run/rec.pid" \
	>"$T_TMP/rec.out" 2>"$T_TMP/rec.err" </dev/null
rc=$?
expect_eq "$rc" 0 "exit status of recover -D: $(cat "$T_TMP/rec.err")"
expect_eq "$(cat "$T_TMP/rec.out")" "$DEV" "the device recover -D printed"
pid=$(pid_from "$T_TMP/run/rec.pid")
expect_eq "$(proc_field "$pid" 4)" "$pid" "session of the recovering daemon"
expect_eq "$(dev_sha "$DEV" 0 $((4 * MiB)))" "$(sha_of "$T_TMP/rdata")" "data after recover -D"
stop_daemon "$pid" "$DEV" "$T_TMP/run/rec.pid"
[ -e "/dev/shm/ublk-mem-$SRV_ID" ] && fail "the store remains after a clean stop of recover -D"

step "--pidfile in the foreground"
start_ublk 16M --pidfile "$T_TMP/run/fg.pid"
expect_eq "$(cat "$T_TMP/run/fg.pid")" "$SRV_PID" "the foreground server's pid file"
stop_ublk
[ -e "$T_TMP/run/fg.pid" ] && fail "the foreground server's pid file remains after a clean stop"
expect_eq "$(ublk_nodes)" "$before" "ublk devices at the end"
