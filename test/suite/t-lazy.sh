#!/bin/sh
# Memory is taken only for data written: a fresh 1 GiB device and reads of
# unwritten areas keep the server small, and with --small-pages a 4 KiB
# write takes one page (and, where the kernel has THP, a huge page by
# default); a size beyond RAM and swap is refused before any device exists.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

limit_kb=$((16 * 1024))
start_ublk 1G
step "a fresh 1 GiB device"
rss=$(store_kb "$SRV_PID")
say "RSS of a fresh 1 GiB device: $rss KiB"
[ "$rss" -lt $limit_kb ] || fail "RSS of a fresh 1 GiB device is $rss KiB"
step "read 128 MiB that were never written"
expect_eq "$(dev_sha "$DEV" $((512 * MiB)) $((128 * MiB)))" "$(zero_sha $((128 * MiB)))" \
	"unwritten area"
rss=$(store_kb "$SRV_PID")
[ "$rss" -lt $limit_kb ] || fail "RSS is $rss KiB after reading 128 MiB of holes"
# 8 MiB at 300 MiB take the huge pages they touch: 8 MiB with 2 MiB pages,
# one 32 MiB page with arm64's 16 KiB pages.
hp_kb=$(hpage_kb)
span_kb=$((8 * 1024))
if [ "$hp_kb" -gt 0 ]; then
	first=$((300 * 1024 / hp_kb)) last=$(((308 * 1024 - 1) / hp_kb))
	span_kb=$(((last - first + 1) * hp_kb))
fi
step "write 8 MiB"
rss0=$rss
dd if=/dev/urandom of="$DEV" bs=1M count=8 seek=300 oflag=direct 2>/dev/null ||
	fail "dd failed"
rss=$(store_kb "$SRV_PID")
say "RSS after writing 8 MiB: $rss KiB (huge pages of $hp_kb KiB)"
[ $((rss - rss0)) -ge $((7 * 1024)) ] || fail "RSS grew by only $((rss - rss0)) KiB for 8 MiB written"
[ "$rss" -lt $((limit_kb + span_kb)) ] || fail "RSS is $rss KiB after writing 8 MiB"
stop_ublk

# A 4 KiB write at a huge-page boundary (32 MiB is one for 2 MiB and 32 MiB
# pages): with huge pages (the default, where the kernel has them) it takes
# a whole huge page; --small-pages, zero_copy's store, or a kernel without
# THP take one page (4 or 16 KiB), and a little more for the server's first
# request perhaps, but not a huge page's worth. Either way the write takes
# memory, and reads back.
page_kb=$(awk '/^KernelPageSize:/ { print $2; exit }' /proc/self/smaps)
[ -n "$page_kb" ] || page_kb=4
random_file "$T_TMP/4k" 4096
for opt in "" --small-pages; do
	step "a 4 KiB write, ${opt:-default pages}"
	# shellcheck disable=SC2086 # no option for the default
	start_ublk 64M $opt
	rss0=$(store_kb "$SRV_PID")
	write_at "$DEV" "$T_TMP/4k" $((32 * MiB))
	grown=$(($(store_kb "$SRV_PID") - rss0))
	say "RSS grew by $grown KiB (pages of $page_kb KiB, huge pages of $hp_kb KiB)"
	[ "$grown" -ge "$page_kb" ] ||
		fail "with ${opt:-default pages} a 4 KiB write grew RSS by only $grown KiB (a page is $page_kb KiB)"
	if [ -n "$opt" ] || serves_zero_copy || [ "$hp_kb" = 0 ]; then
		why=${opt:-zero_copy}
		[ "$hp_kb" = 0 ] && why="${opt:-default pages} without THP"
		[ "$grown" -lt 1024 ] || fail "with $why a 4 KiB write grew RSS by $grown KiB"
	else
		[ "$grown" -ge "$hp_kb" ] ||
			fail "with THP ($hp_kb KiB pages) a 4 KiB write grew RSS by only $grown KiB"
	fi
	expect_eq "$(dev_sha "$DEV" $((32 * MiB)) 4096)" "$(sha_of "$T_TMP/4k")" "the 4 KiB written"
	stop_ublk
done

step "64G, more than RAM and swap, is refused"
mem_kb=$(awk '/^(MemTotal|SwapTotal):/ { s += $2 } END { print s }' /proc/meminfo)
[ "$mem_kb" -lt $((64 * 1024 * 1024)) ] || skip "this machine has 64 GiB of RAM and swap"
before=$(ublk_nodes)
timeout 60 "$UBLK_MEM" 64G >"$T_TMP/big.out" 2>"$T_TMP/big.err"
rc=$?
case $rc in
1 | 2) ;;
*) fail "ublk-mem 64G exited with status $rc (want 1 or 2): $(cat "$T_TMP/big.err")" ;;
esac
[ -s "$T_TMP/big.err" ] || fail "ublk-mem 64G said nothing on stderr"
say "ublk-mem 64G: exit $rc: $(cat "$T_TMP/big.err")"
grep -q ublkb "$T_TMP/big.out" && fail "ublk-mem 64G printed a device: $(cat "$T_TMP/big.out")"
expect_eq "$(ublk_nodes)" "$before" "ublk devices after the refused 64G"
