#!/bin/sh
# Discarding written data gives the memory back: the server's RSS falls.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
need_tool "$BLKDISCARD" "util-linux blkdiscard"

start_ublk 64M
rss0=$(store_kb "$SRV_PID")
step "write 48 MiB"
dd if=/dev/urandom of="$DEV" bs=1M count=48 oflag=direct 2>"$T_TMP/dd.err" ||
	fail "dd failed: $(cat "$T_TMP/dd.err")"
rss1=$(store_kb "$SRV_PID")
say "RSS: fresh ${rss0} KiB, after 48 MiB written ${rss1} KiB"
[ $((rss1 - rss0)) -ge $((40 * 1024)) ] ||
	fail "RSS grew by only $((rss1 - rss0)) KiB after writing 48 MiB"
step "discard the whole device"
"$BLKDISCARD" -f "$DEV" || fail "blkdiscard failed"
# The memory may come back a little after the discard completes.
freed() {
	rss2=$(store_kb "$SRV_PID")
	[ $((rss1 - rss2)) -ge $((32 * 1024)) ]
}
wait_until 30 freed ||
	fail "RSS went from ${rss1} KiB to only ${rss2} KiB after discarding 48 MiB"
say "RSS after the discard: ${rss2} KiB"
expect_eq "$(dev_sha "$DEV" 0 $((48 * MiB)))" "$(zero_sha $((48 * MiB)))" "discarded data"
check_alive
stop_ublk
