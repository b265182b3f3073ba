#!/bin/sh
# Two fio processes at once, each writing and verifying its own half of the
# device: concurrent requests must not mix up their data.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

start_ublk 64M
step "two fio processes on the two halves"
for half in 0 1; do
	(cd "$T_TMP" && "$FIO" --name=half$half --filename="$DEV" --ioengine=libaio --direct=1 \
		--rw=randwrite --bs=4k --iodepth=16 --offset=$((half * 32))M --size=16M \
		--verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0) \
		>"$T_TMP/half$half.log" 2>&1 &
	echo $! >"$T_TMP/half$half.pid"
done
for half in 0 1; do
	wait "$(cat "$T_TMP/half$half.pid")"
	rc=$?
	[ $rc = 0 ] || { tail -n 20 "$T_TMP/half$half.log"; fail "fio on half $half exited with $rc"; }
	grep -q 'issued rwts: total=[1-9][0-9]*,[1-9]' "$T_TMP/half$half.log" ||
		fail "fio on half $half did not both write and verify"
done
step "each half again, verify only"
fio_verify_only half0 --iodepth=16 --offset=0 --size=16M
fio_verify_only half1 --iodepth=16 --offset=32M --size=16M
check_alive
stop_ublk
