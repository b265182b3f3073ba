#!/bin/sh
# SIGKILL of the server under fio load: fio ends with errors instead of
# hanging, `ublk-mem del` removes the dead device, `list` forgets it, and a
# new server can take the same id right away.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

start_ublk 64M
id=$SRV_ID
step "fio load, then SIGKILL the server"
fio_background load --rw=randrw
check_alive
kill -KILL "$SRV_PID"
wait "$SRV_PID" 2>/dev/null

step "fio ends within 30 s"
killed=$(date +%s)
wait_exit $FIO_PID 30 fio "the server was killed"
wait $FIO_PID
rc=$?
say "fio ended after $(($(date +%s) - killed))s with status $rc"
[ $rc != 0 ] || fail "fio reported success although its server was killed"

step "ublk-mem del $id"
run_with_timeout 60 "$UBLK_MEM" del "$id" >"$T_TMP/del.out" 2>&1
rc=$?
[ $rc = 0 ] || fail "ublk-mem del $id exited with status $rc: $(cat "$T_TMP/del.out")"
wait_gone "/dev/ublkb$id" "/dev/ublkc$id" -t 30 || fail "device $id nodes remain after del"
run_with_timeout 30 "$UBLK_MEM" list >"$T_TMP/list" 2>&1 || fail "ublk-mem list failed: $(cat "$T_TMP/list")"
awk -v id="$id" '$1 == id' "$T_TMP/list" | grep -q . && fail "ublk-mem list still shows $id: $(cat "$T_TMP/list")"

step "a new server on the same id"
start_ublk 64M -n "$id"
expect_eq "$DEV" "/dev/ublkb$id" "device of the new server"
fio_verify after --size=8M
stop_ublk
