#!/bin/sh
# --prealloc takes and locks all the memory at start; the data still verifies.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
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
