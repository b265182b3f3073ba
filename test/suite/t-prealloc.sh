#!/bin/sh
# --prealloc takes and locks all the memory at start; the data still verifies.
# More than the machine can lock (beyond the reserve it keeps) is refused at
# start with one line and no device, without running the OOM killer.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

start_ublk 64M --prealloc
rss=$(rss_kb "$SRV_PID")
lck=$(lck_kb "$SRV_PID")
say "RSS $rss KiB, locked $lck KiB"
[ "$rss" -ge $((64 * 1024)) ] || fail "RSS is $rss KiB with --prealloc of 64 MiB"
[ "$lck" -ge $((64 * 1024)) ] || fail "only $lck KiB locked with --prealloc of 64 MiB"
fio_verify prealloc --size=32M
expect_eq "$(dev_sha "$DEV" $((48 * MiB)) $((16 * MiB)))" "$(zero_sha $((16 * MiB)))" \
	"unwritten part of a preallocated device"
check_alive
stop_ublk

step "--prealloc of more than can be locked"
size_kb=$(mem_kb MemAvailable)
before=$(ublk_nodes)
run_with_timeout 120 "$UBLK_MEM" "${size_kb}K" --prealloc >"$T_TMP/big.out" 2>"$T_TMP/big.err"
rc=$?
say "ublk-mem ${size_kb}K --prealloc: exit $rc: $(cat "$T_TMP/big.err")"
expect_eq "$rc" 1 "exit status of a --prealloc beyond what can be locked"
expect_eq "$(grep -c '' "$T_TMP/big.err")" 1 "lines on stderr"
[ -s "$T_TMP/big.out" ] && fail "a device was announced: $(cat "$T_TMP/big.out")"
expect_eq "$(ublk_nodes)" "$before" "ublk devices after the refusal"
dmesg | grep -q -i -E "out of memory|oom-kill" &&
	fail "the OOM killer ran: $(dmesg | grep -i -E -m 3 'out of memory|oom-kill')"
true
