#!/bin/sh
# SIGTERM and SIGINT stop the server cleanly: exit 0 and both device nodes
# gone. While the block device is held open or I/O runs, the first signal
# is refused with what holds the device, the device keeps working, and a
# second one stops it; once the holder lets go, one signal is enough.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

for sig in TERM INT; do
	step "SIG$sig on an idle device"
	start_ublk 64M
	stop_server "$SRV_PID" "$DEV" $sig
done

step "SIGTERM while a process holds the block device open"
start_ublk 64M
hold_open "$DEV"
stop_in_use "$SRV_PID" "$DEV" "$SRV_ERR" TERM
grep -q "open by pid $HOLDER" "$SRV_ERR" || fail "the refusal did not name the holder $HOLDER: $(cat "$SRV_ERR")"
kill $HOLDER
wait $HOLDER 2>/dev/null

step "SIGINT while held open, the holder lets go, SIGINT again"
start_ublk 64M
hold_open "$DEV"
refused_stop "$SRV_PID" "$SRV_ERR" INT
fio_verify still-serving --size=4M
kill $HOLDER
wait $HOLDER 2>/dev/null
# The holder is gone: the next signal stops the device, nothing forced.
stop_server "$SRV_PID" "$DEV" INT
grep -q "as asked twice" "$SRV_ERR" && fail "a device nobody held any more was stopped by force"
true

step "SIGTERM while fio writes"
start_ublk 64M
fio_background busy --rw=randwrite
stop_in_use "$SRV_PID" "$DEV" "$SRV_ERR" TERM
wait_exit $FIO_PID 30 fio "its device was removed"
wait $FIO_PID
say "fio ended with status $? once its device was gone"
