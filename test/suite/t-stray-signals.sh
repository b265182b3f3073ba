#!/bin/sh
# Signals from outside: SIGUSR1, SIGUSR2 and SIGALRM (whose default action
# would kill) are ignored with a line on stderr, and the device keeps
# serving; SIGHUP (a dropped ssh session) and SIGQUIT stop cleanly like
# SIGTERM; a stdout closed before the path is printed does not kill the
# server.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

# ignored NUMBER: the server said it ignored signal NUMBER.
ignored() {
	grep -q "ignoring signal $1 " "$SRV_ERR"
}

step "SIGUSR1, SIGUSR2, SIGALRM while fio writes"
start_ublk 64M
# Checksummed writes that last seconds (fio_across), read back and
# checked once written: the signals come while they go on.
fio_across stray "$DEV"
for sig in USR1 USR2 ALRM; do
	kill -"$sig" "$SRV_PID" || fail "cannot send SIG$sig"
done
alive "$FIO_PID" || fail "fio ended before the signals were sent: $(tail -n 5 "$T_TMP/fio-stray.log")"
fio_across_done stray "SIGUSR1, SIGUSR2 and SIGALRM"
# The verify phase read back every block written, not only some.
reads=$(awk -F'[=,]' '/issued rwts/ { r += $2 } END { print r + 0 }' "$T_TMP/fio-stray.log")
writes=$(awk -F'[=,]' '/issued rwts/ { w += $3 } END { print w + 0 }' "$T_TMP/fio-stray.log")
if [ "$writes" -eq 0 ] || [ "$reads" -lt "$writes" ]; then
	fail "fio verified $reads of the $writes blocks it wrote while the signals came"
fi
check_alive
# Each signal has its line: SIGUSR1 10, SIGUSR2 12, SIGALRM 14.
for nr in 10 12 14; do
	wait_until 10 ignored $nr || fail "the server did not say it ignored signal $nr: $(cat "$SRV_ERR")"
done
fio_verify after-stray --size=8M
stop_ublk

for sig in HUP QUIT; do
	step "SIG$sig stops cleanly"
	start_ublk 64M
	stop_server "$SRV_PID" "$DEV" "$sig"
done

# new_device: set DEV to a device node that was not there before.
new_device() {
	DEV=$(ublk_nodes | grep '^/dev/ublkb' | grep -v -x -F "$before" | head -n 1)
	[ -n "$DEV" ]
}

# server_of_new_device ERRFILE: wait for a device that was not there
# before (in $before) and set DEV and SRV_PID to it and its server.
server_of_new_device() {
	wait_until 30 new_device || fail "no new device after 30 s: $(cat "$1")"
	SRV_PID=$("$UBLK_MEM" list | awk -v id="${DEV#/dev/ublkb}" '$1 == id { print $3 }')
	if [ -z "$SRV_PID" ] || ! alive "$SRV_PID"; then
		fail "the server of $DEV is not running: $("$UBLK_MEM" list)"
	fi
	echo "$SRV_PID" >>"$T_TMP/pids"
}

step "stdout a pipe whose reader is gone"
before=$(ublk_nodes)
{
	"$UBLK_MEM" 64M 2>"$T_TMP/pipe.err"
	echo $? >"$T_TMP/pipe.rc"
} | true &
job=$!
server_of_new_device "$T_TMP/pipe.err"
fio_verify piped --size=8M
check_alive
kill -TERM "$SRV_PID"
wait_exit "$SRV_PID" 30 "ublk-mem 64M | true" SIGTERM
wait $job
expect_eq "$(cat "$T_TMP/pipe.rc")" 0 "exit status of the server whose stdout was a broken pipe"
wait_gone "$DEV" || fail "$DEV remains after a clean stop"

step "stdout closed"
before=$(ublk_nodes)
"$UBLK_MEM" 64M >&- 2>"$T_TMP/closed.err" &
job=$!
server_of_new_device "$T_TMP/closed.err"
fio_verify closed --size=8M
stop_server "$job" "$DEV" TERM
