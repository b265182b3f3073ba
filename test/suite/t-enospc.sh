#!/bin/sh
# When memory runs short, a write that needs new memory fails with ENOSPC
# at once, the device stays up, everything written before reads back
# intact, and once memory is freed (here by a discard) writes work again.
# The shortage is made with --reserve (memory the server must leave to the
# rest of the machine), for the anonymous and the --recoverable store; the
# memory comes back from a discard and from another program's file.
# (t-oom runs the machine out of memory for real.)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
need_tool "$BLKDISCARD" "util-linux blkdiscard"

# The slice of $T_TMP/src from MiB $1, $2 MiB long, hashed.
src_sha() {
	dd if="$T_TMP/src" bs=1M skip="$1" count="$2" 2>/dev/null | sha256sum | cut -d' ' -f1
}

# available_kb KB: MemAvailable is at least KB.
available_kb() {
	[ "$(mem_kb MemAvailable)" -ge "$1" ]
}

# Memory is taken a huge page at a time: with arm64's 16 KiB pages that is
# 32 MiB, so there the budget is four of them and some, and how much fits
# may be off by two of them (the server's own memory, the rest of the
# machine moving); elsewhere the budget is 48 MiB.
unit_mb=$(($(hpage_kb) / 1024))
[ "$unit_mb" -ge 2 ] || unit_mb=2
budget_mb=48
[ $((4 * unit_mb + 16)) -gt $budget_mb ] && budget_mb=$((4 * unit_mb + 16))
least_mb=$((budget_mb - 2 * unit_mb - 16))
write_mb=$((budget_mb + 2 * unit_mb + 32))
random_file "$T_TMP/src" $((write_mb * MiB))
# Bounce mode allocates its 32 MiB of buffers at start, out of the same memory.
extra_kb=0
case " ${UBLK_MEM_ARGS:-} " in *" bounce "*) extra_kb=$((32 * 1024)) ;; esac

# The kernel keeps pages freed a moment ago on per-CPU lists (tens of MiB
# after a server stops), not counted in MemAvailable, and serves new
# allocations from them first: a reserve measured then leaves that much
# more room than planned. Keep the lists short while this test runs (a
# fraction of 100000 gives each the least the kernel allows), and before
# measuring wait until MemAvailable has stopped growing as they shrink.
set_sysctl /proc/sys/vm/percpu_pagelist_high_fraction 100000 ||
	fail "cannot set vm.percpu_pagelist_high_fraction"

# steady_memory: MemAvailable has not grown by 1 MiB or more since
# steady_since, at least 3 s ago (whole seconds of date +%s).
steady_memory() {
	_now=$(mem_kb MemAvailable)
	if [ "$_now" -ge $((steady_kb + 1024)) ]; then
		steady_kb=$_now
		steady_since=$(date +%s)
	fi
	[ $(($(date +%s) - steady_since)) -ge 4 ]
}

# wait_steady_memory: wait (up to 60 s) until steady_memory holds.
wait_steady_memory() {
	steady_kb=$(mem_kb MemAvailable)
	steady_since=$(date +%s)
	wait_until 60 steady_memory ||
		say "MemAvailable still grew after 60 s ($(mem_kb MemAvailable) KiB); going on"
}

# held_kb: the memory the last server's store holds, in KiB: the server's
# own (store_kb) for the anonymous store, the blocks of the file for a
# --recoverable one (its pages are the tmpfs file's, not the server's).
held_kb() {
	if [ "$store" = --recoverable ]; then
		_hk=$(stat -c '%b %B' "/dev/shm/ublk-mem-$SRV_ID") ||
			fail "cannot stat the store /dev/shm/ublk-mem-$SRV_ID"
		# blocks times the block unit
		echo $((${_hk% *} * ${_hk#* } / 1024))
	else
		store_kb "$SRV_PID"
	fi
}

for store in anonymous --recoverable; do
	opt=
	[ "$store" = --recoverable ] && opt=--recoverable
	attempt=1
	while :; do
		step "$store: a reserve that leaves about $budget_mb MiB for data"
		wait_steady_memory
		# Another program's memory, freed later on.
		head -c $((budget_mb * MiB)) /dev/zero >"$T_TMP/ballast" || fail "cannot make the ballast"
		# Measured after the source file exists: it lives in RAM too.
		reserve_kb=$(($(mem_kb MemAvailable) - budget_mb * 1024 - extra_kb))
		[ "$reserve_kb" -gt 0 ] || skip "less than $((2 * budget_mb)) MiB of memory available"
		# shellcheck disable=SC2086 # no option for the anonymous store
		start_ublk $((2 * budget_mb))M --reserve "${reserve_kb}K" $opt

		step "$store: write $write_mb MiB; the writes beyond what fits must fail"
		dd if="$T_TMP/src" of="$DEV" bs=1M oflag=direct conv=notrunc >"$T_TMP/dd.out" 2>&1 ||
			break
		# Everything fitted. If the server never came near its reserve, memory
		# the kernel did not count as available when the reserve was measured
		# (pages an earlier server freed, still on per-CPU lists) served the
		# write: measure again, once.
		if [ $attempt = 1 ] && ! grep -q "memory is running out" "$SRV_ERR"; then
			say "all $write_mb MiB fitted and the reserve was never reached: more memory was free than MemAvailable showed; once more"
			stop_ublk
			attempt=2
			continue
		fi
		fail "$write_mb MiB fitted into about $budget_mb MiB: $(tail -n 3 "$T_TMP/dd.out")"
	done
	grep -q "No space left on device" "$T_TMP/dd.out" ||
		fail "the failed write did not say ENOSPC: $(cat "$T_TMP/dd.out")"
	done_mb=$(sed -n 's/^\([0-9]*\)+[0-9]* records out.*/\1/p' "$T_TMP/dd.out")
	say "$done_mb MiB written before ENOSPC"
	if [ "${done_mb:-0}" -lt $least_mb ] || [ "$done_mb" -ge $write_mb ]; then
		fail "${done_mb:-no} MiB of about $budget_mb fitted: $(cat "$T_TMP/dd.out")"
	fi
	check_alive
	grep -q "memory is running out" "$SRV_ERR" ||
		fail "the server did not say why writes fail: $(cat "$SRV_ERR")"

	step "$store: a discard gives memory back"
	held0=$(held_kb)
	"$BLKDISCARD" -f -o 0 -l $((32 * MiB)) "$DEV" || fail "blkdiscard failed"
	held1=$(held_kb)
	say "the $store store held $held0 KiB before the discard, $held1 KiB after"
	[ $((held0 - held1)) -ge $((24 * 1024)) ] ||
		fail "discarding 32 MiB of the $store store gave only $((held0 - held1)) KiB back"

	# Freed pages may sit in the kernel's per-CPU lists for a while (on
	# newer kernels, many MiB of them), not yet counted in MemAvailable,
	# and come back from them as other allocations go on: wait until
	# MemAvailable shows room for the next write (8 MiB, the unit it
	# starts in) with 16 MiB to spare.
	step "$store: another program frees $budget_mb MiB; writes work again"
	rm -f "$T_TMP/ballast"
	wait_until 60 available_kb $((reserve_kb + (24 + unit_mb) * 1024)) ||
		fail "MemAvailable stayed at $(mem_kb MemAvailable) KiB after freeing memory (reserve ${reserve_kb} KiB)"
	dd if="$T_TMP/src" of="$DEV" bs=1M count=8 skip="$done_mb" seek="$done_mb" \
		oflag=direct conv=notrunc >"$T_TMP/dd2.out" 2>&1 ||
		fail "writing after the discard failed: $(cat "$T_TMP/dd2.out")"
	grep -q "writes succeed again" "$SRV_ERR" ||
		fail "the server did not say memory is back: $(cat "$SRV_ERR")"

	step "$store: every byte: the discarded, the kept and the new"
	expect_eq "$(dev_sha "$DEV" 0 $((32 * MiB)))" "$(zero_sha $((32 * MiB)))" "the discarded 32 MiB"
	expect_eq "$(dev_sha "$DEV" $((32 * MiB)) $(((done_mb - 32 + 8) * MiB)))" \
		"$(src_sha 32 $((done_mb - 32 + 8)))" \
		"the data written before memory ran out, and the 8 MiB written after"
	stop_ublk
done
