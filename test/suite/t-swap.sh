#!/bin/sh
# A --compress device as swap under real memory pressure, with zram as the
# reference in the same boot: on a machine of less than 1 GiB, swap_check
# dirties 1.5x its RAM in pages of known, compressible contents and reads
# them all back, once swapping to zram, once to `ublk-mem --compress`. It
# must complete with every page correct; the OOM killer must not run, no
# task may hang, the server must live on, its stats must show the swapped
# pages compressed, and swapoff must bring every page back.
# suite: alone (run-all.sh boots a VM of 768 MiB for it)
# suite: timeout 2400
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

total_kb=$(mem_kb MemTotal)
[ "$total_kb" -lt 1048576 ] ||
	skip "needs less than 1 GiB of RAM to swap, this machine has $((total_kb / 1024)) MiB (run-all.sh boots a VM with VM_MEM=768 for it)"
[ "$(grep -c '' /proc/swaps)" -le 1 ] || skip "swap is on already: $(tail -n +2 /proc/swaps | tr -s ' ' | tr '\n' ';')"

SWAP_CHECK=$TEST_ROOT/suite/swap_check
[ -x "$SWAP_CHECK" ] || fail "no $SWAP_CHECK (make test/suite/swap_check)"
MKSWAP=$(first_tool /usr/sbin/mkswap /sbin/mkswap) || MKSWAP=
SWAPON=$(first_tool /usr/sbin/swapon /sbin/swapon) || SWAPON=
SWAPOFF=$(first_tool /usr/sbin/swapoff /sbin/swapoff) || SWAPOFF=
need_tool "$MKSWAP" mkswap
need_tool "$SWAPON" swapon
need_tool "$SWAPOFF" swapoff
# busybox's swapon (the VM's) has no -p; util-linux's has.
PRIO=
"$SWAPON" --help 2>&1 | grep -q -e '--priority' -e ' -p' && PRIO="-p 100"

# 1.5x RAM, and a swap device that holds all of it.
MIB=$((total_kb * 3 / 2 / 1024))
SWAP_SIZE=1536M
# Seconds swap_check may take to dirty its pages, then to check them:
# bounds for a slow machine, not expectations (zram under TCG on 2 CPUs
# takes about 10 s and 120 s). A swap that deadlocks is caught sooner, by
# the kernel's hung-task report below.
FILL_SECS=600
CHECK_SECS=900

# A swap device that deadlocks stops every task that needs memory, this
# shell and run.sh among them, and the VM would only end when vm.sh finds
# its console silent (VM_SILENCE). In the VM, have the kernel report the
# first task blocked for two minutes and stop there: vm.sh fails the run
# and shows the report.
if [ "${UBLKMEM_VM:-0}" = 1 ]; then
	set_sysctl /proc/sys/kernel/hung_task_timeout_secs 120 ||
		fail "cannot set kernel.hung_task_timeout_secs"
	set_sysctl /proc/sys/kernel/hung_task_panic 1 || fail "cannot set kernel.hung_task_panic"
fi

say "MemTotal $((total_kb / 1024)) MiB, MemAvailable $(($(mem_kb MemAvailable) / 1024)) MiB: swap_check $MIB MiB"

# --- helpers ---------------------------------------------------------------

SWAP_DEV=
CHECK_PID=
ZRAM=/sys/block/zram0

# At exit, before lib.sh's clean-up stops the server: end swap_check and
# take the swap device out of use, so no page is left on a device that goes.
swap_cleanup() {
	_sc_rc=$?
	if [ -n "$CHECK_PID" ] && alive "$CHECK_PID"; then
		kill -KILL "$CHECK_PID" 2>/dev/null
		wait_until 60 ended "$CHECK_PID"
	fi
	if [ -n "$SWAP_DEV" ]; then
		timeout 120 "$SWAPOFF" "$SWAP_DEV" 2>/dev/null
	fi
	[ -e $ZRAM/reset ] && echo 1 >$ZRAM/reset 2>/dev/null
	(exit "$_sc_rc")
	_cleanup
}
trap swap_cleanup EXIT

# kernel_log_since N: the kernel log after its first N lines.
kernel_log_since() {
	dmesg | tail -n +$(($1 + 1))
}

# check_kernel_log N WHAT: no OOM kill and no hung task since line N.
check_kernel_log() {
	_ck=$(kernel_log_since "$1" | grep -i -E -m 3 'out of memory|oom-kill|invoked oom-killer')
	[ -z "$_ck" ] || fail "$2: the OOM killer ran: $(echo "$_ck" | tr '\n' ' ')"
	_ck=$(kernel_log_since "$1" | grep -E -m 3 'blocked for more than|hung_task')
	[ -z "$_ck" ] || fail "$2: a task hung: $(echo "$_ck" | tr '\n' ' ')"
	_ck=$(kernel_log_since "$1" | grep -i -E -m 3 'write-error on swap|read-error on swap|I/O error')
	[ -z "$_ck" ] || say "$2: the kernel logged: $(echo "$_ck" | tr '\n' ' ')"
}

# diagnose: what a stuck swap leaves to see: the server's threads and
# swap_check, where they wait, memory, swap, requests in flight.
diagnose() {
	echo "--- diagnosis ($(date +%s)s)"
	grep -E '^(MemFree|MemAvailable|SwapTotal|SwapFree|Mlocked|Unevictable):' /proc/meminfo |
		tr -s ' ' | tr '\n' ' '
	echo
	grep -E '^(pswpin|pswpout|oom_kill|allocstall_normal|pgmajfault) ' /proc/vmstat | tr '\n' ' '
	echo
	for _f in /sys/block/ublkb*/inflight /sys/block/zram0/inflight; do
		[ -e "$_f" ] && echo "inflight ${_f#/sys/block/}: $(cat "$_f")"
	done
	for _p in ${SRV_PID:-} $CHECK_PID; do
		for _t in /proc/"$_p"/task/*; do
			[ -d "$_t" ] || continue
			_s=$(cat "$_t/stat" 2>/dev/null)
			_s=${_s##*) }
			echo "task ${_t##*/} ($(cat "$_t/comm" 2>/dev/null)) state ${_s%% *}"
			echo "  wchan $(cat "$_t/wchan" 2>/dev/null):" \
				"$(head -n 6 "$_t/stack" 2>/dev/null | sed 's/^.*\] //; s/+0x.*//' | tr '\n' ' ')"
		done
	done
	[ -w /proc/sysrq-trigger ] && echo w >/proc/sysrq-trigger
	dmesg | grep -v 'sysrq' | tail -n 8
}

# swap_load WHAT: mkswap and swapon SWAP_DEV, run swap_check across it and
# stop it once every page is dirtied, run STATS_CMD (the device's stats)
# then, let it check every page, and swapoff. Fails on a bad page, a
# killed swap_check, an OOM kill, a hung task, a swapoff that fails.
swap_load() {
	_what=$1
	step "$_what: mkswap and swapon $SWAP_DEV"
	"$MKSWAP" "$SWAP_DEV" >"$T_TMP/mkswap.out" 2>&1 ||
		fail "mkswap $SWAP_DEV failed: $(cat "$T_TMP/mkswap.out")"
	# shellcheck disable=SC2086 # PRIO is an option and its value, or nothing
	"$SWAPON" $PRIO -d "$SWAP_DEV" 2>"$T_TMP/swapon.err" ||
		fail "swapon $SWAP_DEV failed: $(cat "$T_TMP/swapon.err")"
	grep -q "^$SWAP_DEV " /proc/swaps || fail "$SWAP_DEV is not in /proc/swaps after swapon"
	drop_caches
	_log0=$(dmesg | wc -l)

	step "$_what: swap_check dirties $MIB MiB"
	_out=$T_TMP/check-$_what.out
	rm -f "$T_TMP/go"
	mkfifo "$T_TMP/go" || fail "cannot make a fifo"
	# Open for reading and writing: no wait for the other end.
	exec 3<>"$T_TMP/go"
	# shellcheck disable=SC2086 # CHECK_ARGS: options, one word each
	"$SWAP_CHECK" --wait $CHECK_ARGS "$MIB" <"$T_TMP/go" >"$_out" 2>&1 &
	CHECK_PID=$!
	_t0=$(date +%s)
	if ! wait_until $FILL_SECS grep -q '^waiting' "$_out"; then
		if alive "$CHECK_PID"; then
			diagnose
			fail "$_what: swap_check did not dirty $MIB MiB within ${FILL_SECS}s: $(tail -n 1 "$_out")"
		fi
		wait "$CHECK_PID"
		_rc=$?
		check_kernel_log "$_log0" "$_what"
		fail "$_what: swap_check ended with status $_rc while dirtying: $(tail -n 2 "$_out" | tr '\n' ' ')"
	fi
	_t1=$(date +%s)
	say "$_what: $(grep '^dirtied all' "$_out") (${_what} as swap, $((_t1 - _t0)) s here)"
	swap_used=$((($(mem_kb SwapTotal) - $(mem_kb SwapFree)) / 1024))
	say "$_what: swap used $swap_used MiB of $(($(mem_kb SwapTotal) / 1024)), MemAvailable $(($(mem_kb MemAvailable) / 1024)) MiB"
	[ "$swap_used" -gt 0 ] || fail "$_what: nothing was swapped out"
	"$STATS_CMD"

	step "$_what: swap_check reads every page back"
	echo go >&3
	exec 3>&-
	if ! wait_until $CHECK_SECS ended "$CHECK_PID"; then
		diagnose
		fail "$_what: swap_check still checks pages ${CHECK_SECS}s on: $(tail -n 1 "$_out")"
	fi
	wait "$CHECK_PID"
	_rc=$?
	CHECK_PID=
	_t2=$(date +%s)
	tail -n 3 "$_out" | sed "s/^/# $_what: /"
	check_kernel_log "$_log0" "$_what"
	[ "$_rc" = 0 ] ||
		fail "$_what: swap_check exited with status $_rc: $(tail -n 2 "$_out" | tr '\n' ' ')"
	say "$_what: every page read back right ($((_t2 - _t1)) s for both passes)"

	step "$_what: swapoff $SWAP_DEV"
	timeout 120 "$SWAPOFF" "$SWAP_DEV" 2>"$T_TMP/swapoff.err" ||
		fail "swapoff $SWAP_DEV failed: $(cat "$T_TMP/swapoff.err")"
	grep -q "^$SWAP_DEV " /proc/swaps && fail "$SWAP_DEV is still in /proc/swaps after swapoff"
	SWAP_DEV=
	say "$_what: swapoff done in $(($(date +%s) - _t2)) s"
}

# ratio ORIG COMPR: ORIG/COMPR with two decimals.
ratio() {
	awk -v o="$1" -v c="$2" 'BEGIN { if (c > 0) printf "%.2f", o / c; else print "inf" }'
}

# zram_stats: zram's mm_stat and io_stat under load, as swap_check waits.
zram_stats() {
	# orig_data_size compr_data_size mem_used_total mem_limit mem_used_max
	# same_pages pages_compacted huge_pages ...
	read -r z_orig z_compr z_used _ _ z_same _ z_huge _ <$ZRAM/mm_stat
	read -r _ z_failed_writes _ <$ZRAM/io_stat
	say "zram: orig_data_size $z_orig compr_data_size $z_compr mem_used_total $z_used same_pages $z_same huge_pages ${z_huge:-?} failed_writes $z_failed_writes"
	[ "$z_orig" -gt 0 ] || fail "zram holds no data although swap is in use"
	z_ratio=$(ratio "$z_orig" "$z_compr")
}

# ublk_stats: the server's stats under load, as swap_check waits.
ublk_stats() {
	run_with_timeout 60 "$UBLK_MEM" stats "$SRV_ID" >"$T_TMP/ustats" 2>&1 ||
		{ diagnose; fail "ublk-mem stats $SRV_ID failed under load: $(cat "$T_TMP/ustats")"; }
	for _n in orig_data_size compr_data_size mem_used_total same_pages huge_pages failed_writes; do
		_v=$(awk -v n="$_n" '$1 == n { print $2 }' "$T_TMP/ustats")
		[ -n "$_v" ] || fail "ublk-mem stats $SRV_ID has no $_n: $(tr '\n' ' ' <"$T_TMP/ustats")"
		eval "u_$_n=\$_v"
	done
	# shellcheck disable=SC2154 # set by the eval above
	{
		say "ublk-mem: orig_data_size $u_orig_data_size compr_data_size $u_compr_data_size mem_used_total $u_mem_used_total same_pages $u_same_pages huge_pages $u_huge_pages failed_writes $u_failed_writes"
		say "ublk-mem: server RSS $(rss_kb "$SRV_PID") KiB, locked $(lck_kb "$SRV_PID") KiB"
		[ "$u_orig_data_size" -gt 0 ] || fail "the server holds no data although swap is in use"
		[ "$u_compr_data_size" -lt "$u_orig_data_size" ] ||
			fail "the swapped pages are not compressed: compr_data_size $u_compr_data_size, orig_data_size $u_orig_data_size"
		u_ratio=$(ratio "$u_orig_data_size" "$u_compr_data_size")
	}
	check_alive
}

# --- zram, the reference ---------------------------------------------------

step "zram: load, lz4, $SWAP_SIZE"
load_module zram num_devices=1 || fail "cannot load zram"
wait_for $ZRAM/disksize 10 || fail "zram loaded but $ZRAM did not appear"
echo 1 >$ZRAM/reset || fail "cannot reset zram0"
if grep -q -w lz4 $ZRAM/comp_algorithm; then
	zalg=lz4
else
	zalg=lzo-rle
	say "zram offers no lz4 ($(cat $ZRAM/comp_algorithm)): using $zalg"
fi
echo $zalg >$ZRAM/comp_algorithm || fail "zram refused comp_algorithm $zalg"
echo $SWAP_SIZE >$ZRAM/disksize || fail "zram refused disksize $SWAP_SIZE"
SWAP_DEV=/dev/zram0
wait_for $SWAP_DEV 10 || fail "no $SWAP_DEV"
STATS_CMD=zram_stats
# The reference reads its pages back once, in order; ublk-mem twice.
CHECK_ARGS=--one-pass
swap_load zram
CHECK_ARGS=
echo 1 >$ZRAM/reset || fail "cannot reset zram0 after swapoff"

# --- ublk-mem --compress ---------------------------------------------------

step "ublk-mem: a $SWAP_SIZE compressed device"
start_ublk $SWAP_SIZE --compress
SWAP_DEV=$DEV
STATS_CMD=ublk_stats
swap_load ublk-mem
check_alive
say "ublk-mem after swapoff: orig_data_size $(stat_of "$SRV_ID" orig_data_size), mem_used_total $(stat_of "$SRV_ID" mem_used_total), failed_writes $(stat_of "$SRV_ID" failed_writes)"
say "compression ratio (orig/compr) under load: zram ($zalg) $z_ratio, ublk-mem $u_ratio"
stop_ublk
