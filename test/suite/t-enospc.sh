#!/bin/sh
# When memory runs short, a write that needs new memory fails with ENOSPC
# at once, the device stays up, everything written before reads back
# intact, and once memory is freed (here by a discard) writes work again.
# The shortage is made with --reserve (memory the server must leave to the
# rest of the machine), for the anonymous and the --recoverable store.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
need_ublk
need_tool "$BLKDISCARD" "util-linux blkdiscard"

random_file "$T_TMP/src" $((224 * MiB))

for store in anonymous --recoverable; do
	step "$store: a reserve that leaves about 128 MiB"
	# Measured after the source file exists: it lives in RAM too.
	reserve_kb=$(($(mem_kb MemAvailable) - 128 * 1024))
	[ "$reserve_kb" -gt 0 ] || skip "less than 128 MiB of memory available"
	opt=
	[ "$store" = --recoverable ] && opt=--recoverable
	# shellcheck disable=SC2086 # no option for the anonymous store
	start_ublk 256M --reserve "${reserve_kb}K" $opt

	step "$store: write 224 MiB; the writes beyond what fits must fail"
	dd if="$T_TMP/src" of="$DEV" bs=1M oflag=direct conv=notrunc >"$T_TMP/dd.out" 2>&1 &&
		fail "224 MiB fitted into about 128 MiB: $(tail -n 3 "$T_TMP/dd.out")"
	grep -q "No space left on device" "$T_TMP/dd.out" ||
		fail "the failed write did not say ENOSPC: $(cat "$T_TMP/dd.out")"
	done_mb=$(sed -n 's/^\([0-9]*\)+[0-9]* records out.*/\1/p' "$T_TMP/dd.out")
	say "$done_mb MiB written before ENOSPC"
	# Bounce mode's buffers take 32 MiB of the 128 before any write.
	[ "${done_mb:-0}" -ge 80 ] || fail "only ${done_mb:-0} MiB of about 128 fitted: $(cat "$T_TMP/dd.out")"
	check_alive
	grep -q "memory is running out" "$SRV_ERR" ||
		fail "the server did not say why writes fail: $(cat "$SRV_ERR")"
	expect_eq "$(dev_sha "$DEV" 0 $((done_mb * MiB)))" "$(sha_of "$T_TMP/src" $((done_mb * MiB)))" \
		"the $done_mb MiB written before memory ran out"

	# Freed pages may sit in the kernel's per-CPU lists for a while, not
	# yet counted as available: free four times what is written next.
	step "$store: free 64 MiB with a discard, then write 16 MiB again"
	"$BLKDISCARD" -f -o 0 -l $((64 * MiB)) "$DEV" || fail "blkdiscard failed"
	dd if="$T_TMP/src" of="$DEV" bs=1M count=16 skip="$done_mb" seek="$done_mb" \
		oflag=direct conv=notrunc >"$T_TMP/dd2.out" 2>&1 ||
		fail "writing after the discard failed: $(cat "$T_TMP/dd2.out")"
	expect_eq "$(dev_sha "$DEV" $((done_mb * MiB)) $((16 * MiB)))" \
		"$(dd if="$T_TMP/src" bs=1M skip="$done_mb" count=16 2>/dev/null | sha256sum | cut -d' ' -f1)" \
		"the 16 MiB written once memory was freed"
	expect_eq "$(dev_sha "$DEV" 0 $((64 * MiB)))" "$(zero_sha $((64 * MiB)))" "the discarded 64 MiB"
	expect_eq "$(dev_sha "$DEV" $((64 * MiB)) $(((done_mb - 64) * MiB)))" \
		"$(dd if="$T_TMP/src" bs=1M skip=64 count=$((done_mb - 64)) 2>/dev/null | sha256sum | cut -d' ' -f1)" \
		"the data written before, past the discard"
	grep -q "writes succeed again" "$SRV_ERR" ||
		fail "the server did not say memory is back: $(cat "$SRV_ERR")"
	stop_ublk
done
