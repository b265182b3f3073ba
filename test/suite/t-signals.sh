#!/bin/sh
# SIGTERM and SIGINT stop the server cleanly: exit 0 and both device nodes
# gone, also while the block device is held open and while I/O runs.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
need_ublk

for sig in TERM INT; do
	step "SIG$sig on an idle device"
	start_ublk 64M
	stop_server "$SRV_PID" "$DEV" $sig
done

step "SIGTERM while a process holds the block device open"
start_ublk 64M
(exec 3<"$DEV" && exec sleep 600) &
holder=$!
i=0
until [ "$(readlink "/proc/$holder/fd/3" 2>/dev/null)" = "$DEV" ]; do
	alive $holder || fail "could not hold $DEV open"
	[ $i -ge 300 ] && fail "$DEV not held open after 30 s"
	sleep 0.1
	i=$((i + 1))
done
stop_server "$SRV_PID" "$DEV" TERM
kill $holder
wait $holder 2>/dev/null

step "SIGTERM while fio writes"
start_ublk 64M
fio_background busy --rw=randwrite
stop_server "$SRV_PID" "$DEV" TERM
wait_exit $FIO_PID 30 fio "its device was removed"
wait $FIO_PID
say "fio ended with status $? once its device was gone"
