#!/bin/sh
# Run the integration tests: run.sh [t-NAME...]
#
# Runs every test/suite/t-*.sh (sorted), or the ones named, each in a session
# of its own under a timeout (TEST_TIMEOUT, default 240 s, or what the
# test's "# suite: timeout N" line says), and prints
#   PASS t-NAME (Ns) | FAIL t-NAME: reason | SKIP t-NAME: reason
# per test (a failure is followed by the end of the test's output), then one
# line "N passed, M failed[, K skipped]". Exit status 0 when none failed.
#
# After each test, its leftover processes are killed, and ublk devices and
# mounts it left are removed and reported as its failure, so one failure does
# not spill into the next test. In the VM (UBLKMEM_VM=1) the kernel log of
# each test is also checked for oopses and warnings.
#
# Works in the VM and on a host with ublk: UBLK_MEM names the server
# (default: ublk-mem on PATH in the VM, the repository's ./ublk-mem outside).

SUITE=$(cd "$(dirname "$0")" && pwd)
TEST_ROOT=$(dirname "$SUITE")
TEST_TIMEOUT=${TEST_TIMEOUT:-240}
UBLKMEM_LIB_ONLY=1
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$SUITE/lib.sh"
UBLKMEM_LIB_ONLY=0

# Run the server by absolute path, whatever directory a test is in.
case $UBLK_MEM in
/*) ;;
*/*) UBLK_MEM=$(cd "$(dirname "$UBLK_MEM")" && pwd)/${UBLK_MEM##*/} ;;
*) UBLK_MEM=$(command -v "$UBLK_MEM" || echo "$UBLK_MEM") ;;
esac
export UBLK_MEM TEST_ROOT UBLKMEM_LIB_ONLY

# The tests to run, by path.
if [ $# -gt 0 ]; then
	tests=
	for t in "$@"; do
		t=${t%.sh}
		t=t-${t#t-}
		[ -f "$SUITE/$t.sh" ] || { echo "run.sh: no test $t in $SUITE" >&2; exit 2; }
		tests="$tests $SUITE/$t.sh"
	done
else
	# A test marked "# suite: alone" needs a VM of its own (run-all.sh
	# boots one for it): it runs only when named.
	tests=$(for t in "$SUITE"/t-*.sh; do
		grep -q '^# suite: alone' "$t" || echo "$t"
	done)
fi

RUN_TMP=$(mktemp -d "${TMPDIR:-/tmp}/ublk-run.XXXXXX") || exit 1
trap 'rm -rf "$RUN_TMP"' EXIT

# Kernel log lines that mean the kernel is unwell.
KERNEL_TROUBLE='BUG:|Oops|WARNING:|Kernel panic|general protection fault|blocked for more than|hung_task|KASAN|UBSAN|kernel BUG|Unable to handle|refcount_t'
# Except these, the kernel's own and harmless:
# - the scheduler's deadline-server timer (dl_task_timer) warns in
#   hrtimer_forward when it fires far too late, which an emulated arm64 CPU
#   under TCG makes it do; no block device is on that path.
# - 7.2's io_uring fills a kernel buffer's bio_vec array before it sets the
#   count the array is annotated with (__counted_by), so UBSAN flags the
#   first write ("index 0 is out of range for type 'bio_vec [*]'") when
#   zero_copy's requests are registered; the array is allocated for them
#   all, and 7.3 sets the count first (io_kernel_buffer_init()).
KERNEL_NOT_OURS='WARNING: kernel/time/hrtimer\.c:[0-9]+ at hrtimer_forward|UBSAN: array-index-out-of-bounds in .*/linux-7\.2\.[0-9]+/io_uring/rsrc\.c:'

# kill_session SID: end every process of the session a test ran in.
kill_session() {
	for sig in TERM KILL; do
		found=
		for st in /proc/[0-9]*/stat; do
			s=$(cat "$st" 2>/dev/null) || continue
			pid=${s%% *}
			s=${s##*) }
			# state ppid pgrp session ...
			# shellcheck disable=SC2086
			set -- $s
			if [ "$4" != "$SID" ] || [ "$1" = Z ]; then
				continue
			fi
			kill -"$sig" "$pid" 2>/dev/null && found="$found $pid"
		done
		[ -z "$found" ] && return 0
		echo "stray processes of the test got SIG$sig:$found" >>"$OUT/leftover"
		sleep 2
	done
}

# remove_leftovers BEFORE: remove mounts of ublk devices and ublk devices not
# in the list BEFORE; say what was found in $OUT/leftover.
remove_leftovers() {
	grep '^/dev/ublkb' /proc/mounts | while read -r _dev mnt _rest; do
		echo "mounted $_dev on $mnt" >>"$OUT/leftover"
		umount "$mnt" 2>/dev/null || umount -l "$mnt"
	done
	ids=$(ublk_nodes | while read -r node; do
		grep -q -x -F "$node" "$1" || echo "${node#/dev/ublk?}"
	done | sort -u)
	for id in $ids; do
		echo "ublk device $id" >>"$OUT/leftover"
		timeout -k 5 60 "$UBLK_MEM" del "$id" >/dev/null 2>&1
		wait_gone "/dev/ublkb$id" "/dev/ublkc$id" -t 30 ||
			echo "ublk device $id could not be removed" >>"$OUT/leftover"
	done
}

echo "run.sh: server $UBLK_MEM, kernel $(uname -r), $(nproc) CPUs"
trouble=
passed=0
failed=0
skipped=0
for t in $tests; do
	name=$(basename "$t" .sh)
	OUT=$RUN_TMP/$name
	mkdir -p "$OUT"
	ublk_nodes >"$OUT/before"
	[ "${UBLKMEM_VM:-0}" = 1 ] && dmesg -c >/dev/null 2>&1
	echo "== $name"
	start=$(date +%s)
	# setsid: the test and all it starts share a session, killed as one.
	# "# suite: timeout N" in a test gives it N seconds instead.
	limit=$(sed -n 's/^# suite: timeout \([0-9][0-9]*\)$/\1/p' "$t")
	limit=${limit:-$TEST_TIMEOUT}
	# shellcheck disable=SC2016 # $$ is the test's shell
	T_OUT=$OUT timeout -s TERM -k 10 "$limit" \
		setsid sh -c 'echo $$ >"$1/sid"; exec sh "$2"' sh "$OUT" "$t" \
		>"$OUT/log" 2>&1 </dev/null
	rc=$?
	secs=$(($(date +%s) - start))
	if [ $secs -ge "$limit" ]; then
		# Say it now: the clean-up below may itself hang on a stuck device.
		echo "TIMEOUT $name after ${secs}s; requests still in flight (read write):"
		for f in /sys/block/ublkb*/inflight; do
			[ -e "$f" ] && echo "    ${f#/sys/block/}: $(cat "$f")"
		done
		tail -n 15 "$OUT/log" | sed 's/^/    | /'
	fi
	SID=$(cat "$OUT/sid" 2>/dev/null)
	[ -n "$SID" ] && kill_session
	remove_leftovers "$OUT/before"

	reason=
	if [ $secs -ge "$limit" ]; then
		reason="timed out after ${limit}s"
	elif [ -s "$OUT/fail" ]; then
		reason=$(head -n 1 "$OUT/fail")
	elif [ $rc = "$SKIP" ]; then
		:
	elif [ $rc != 0 ]; then
		reason="exit status $rc: $(grep -v '^[=#]' "$OUT/log" | tail -n 1)"
	fi
	if [ -s "$OUT/leftover" ]; then
		reason="${reason:+$reason; }left behind: $(awk '{ printf "%s%s", NR > 1 ? "; " : "", $0 }' "$OUT/leftover")"
	fi
	if [ "${UBLKMEM_VM:-0}" = 1 ]; then
		dmesg >"$OUT/dmesg" 2>/dev/null
		trouble=$(grep -E "$KERNEL_TROUBLE" "$OUT/dmesg" | grep -v -E "$KERNEL_NOT_OURS" | head -n 1)
		grep -E "$KERNEL_NOT_OURS" "$OUT/dmesg" | head -n 1 | sed 's/^/note: not counted: /'
		[ -n "$trouble" ] && reason="${reason:+$reason; }kernel: $trouble"
	fi

	if [ -n "$reason" ]; then
		failed=$((failed + 1))
		echo "FAIL $name: $reason"
		echo "    --- last lines of $name's output ---"
		tail -n 40 "$OUT/log" | sed 's/^/    | /'
		if [ -n "$trouble" ]; then
			echo "    --- kernel log ---"
			tail -n 60 "$OUT/dmesg" | sed 's/^/    | /'
		fi
	elif [ $rc = "$SKIP" ]; then
		skipped=$((skipped + 1))
		echo "SKIP $name: $(cat "$OUT/skip" 2>/dev/null || echo "exit status $SKIP")"
	else
		passed=$((passed + 1))
		echo "PASS $name (${secs}s)"
		# SUITE_SAY=1: what it said on the way (figures, messages seen).
		[ "${SUITE_SAY:-0}" = 1 ] && grep '^# ' "$OUT/log" | sed 's/^/    /'
	fi
	trouble=
done

line="$passed passed, $failed failed"
[ $skipped -gt 0 ] && line="$line, $skipped skipped"
echo "$line"
[ $failed -eq 0 ]
