#!/bin/bash
# Everything `make test` checks: run-all.sh [UNIT_TEST...]
#
#  1. each host unit test given (a program: exit 0 pass, 77 skip, else fail);
#  then, for each kernel of KVERS (default "lts newest": Debian 12's 6.12 and
#  the newest Debian cloud kernel that boots with ublk_drv, see
#  test/vm/kernel.sh), in the test VM:
#  2. the integration suite with ./ublk-mem (test/vm/vm.sh test);
#  3. the data-integrity tests again once per other copy mode (user_copy,
#     bounce, and zero_copy from Linux 6.16), so every way data can travel
#     is verified;
#  and on the first kernel only:
#  4. when ./ublk-mem-asan exists (the AddressSanitizer + UBSan build), the
#     data-path part of the suite again with it;
#  5. a quick run of bench.sh, whose output must parse (speed is not judged),
#     on a CPU model of its choosing (--cpu), which the VM must have had;
#  6. the swap test, in a VM of 768 MiB (SWAP_TESTS).
# Ends with one line per part, its kernel in its name, then one line
# "N passed, M failed[, K skipped]" over all of them and the time taken; the
# exit status is non-zero when anything failed or a VM did not finish.
#
# Environment: KVERS (the kernels, in order), or KVER (one kernel), or
# KERNEL and MODULES (one kernel of your own); VM_TESTS (tests for step 2,
# default all), MODE_TESTS and ASAN_TESTS (tests for steps 3 and 4; "none"
# skips a step), MODE_TESTS_NEXT (step 3 on the kernels after the first),
# SWAP_TESTS (step 6, default t-swap; "none" skips it; SWAP_VM_TIMEOUT and
# SWAP_VM_SILENCE its VM's limits),
# BENCH=0 skips step 5, plus what test/vm/vm.sh reads.
set -u
cd "$(dirname "$0")/.." || exit 1

ASAN_TESTS=${ASAN_TESTS:-t-fio-rand4k t-fio-mixed t-copy-modes t-discard t-signals
	t-sigkill t-recover t-bad-args t-enospc t-stray-signals t-runtime-error t-store-safety
	t-daemon t-resize t-restart t-zoned t-compress t-compress-recover
	t-unpriv t-unpriv-others}
MODE_TESTS=${MODE_TESTS:-t-fio-rand4k t-fio-mixed t-fio-seq t-scattered t-zero t-discard
	t-ext4 t-block-sizes t-queues t-recover-fio t-enospc t-recover-tmpfs t-read-error}
# On the kernels after the first, the copy-mode passes run the core of it.
MODE_TESTS_NEXT=${MODE_TESTS_NEXT:-t-fio-rand4k t-fio-mixed t-fio-seq t-scattered t-discard
	t-ext4 t-recover-fio t-enospc t-read-error}
# The tests that need a VM of their own, with little memory ("# suite: alone").
SWAP_TESTS=${SWAP_TESTS:-t-swap}
UNIT_TIMEOUT=${UNIT_TIMEOUT:-300}
KVERS=${KVERS:-${KVER:-lts newest}}

passed=0 failed=0 skipped=0
parts=()
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

section() {
	echo
	echo "################ $* ################"
}

# duration SECONDS: "12m34s".
duration() {
	printf '%dm%02ds' $(($1 / 60)) $(($1 % 60))
}

# Count a part's "N passed, M failed[, K skipped]" line into the totals;
# START is when the part began.
add_summary() {
	local name=$1 line=$2 start=$3 p f s
	if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)?$ ]]; then
		p=${BASH_REMATCH[1]} f=${BASH_REMATCH[2]} s=${BASH_REMATCH[4]:-0}
	else
		p=0 f=1 s=0
		line="no result line (counted as 1 failure)"
	fi
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
	parts+=("$name: $line ($(duration $((SECONDS - start))))")
}

# cpu_model_reached META: the benchmark's meta.txt shows the VM booted with
# erms=off,fsrm=off and its kernel saw neither flag; says what it saw if not.
cpu_model_reached() {
	grep -q '^machine=.*-cpu max,erms=off,fsrm=off' "$1" && grep -qx 'string_ops=none' "$1" && return 0
	echo "bench smoke: the VM did not get --cpu max,erms=off,fsrm=off: $(grep -E '^(machine|string_ops)=' "$1" | tr '\n' ' ')" >&2
	return 1
}

if [ $# -gt 0 ]; then
	section "host unit tests"
	ustart=$SECONDS
	up=0 uf=0 us=0
	for t in "$@"; do
		case $t in */*) bin=$t ;; *) bin=./$t ;; esac
		start=$SECONDS
		timeout "$UNIT_TIMEOUT" "$bin" >"$tmp/unit.log" 2>&1
		rc=$?
		secs=$((SECONDS - start))
		case $rc in
		0) up=$((up + 1)); echo "PASS $t (${secs}s)" ;;
		77) us=$((us + 1)); echo "SKIP $t: $(tail -n 1 "$tmp/unit.log")" ;;
		*)
			uf=$((uf + 1))
			if [ $rc = 124 ]; then
				echo "FAIL $t: timed out after ${UNIT_TIMEOUT}s"
			else
				echo "FAIL $t: exit status $rc"
			fi
			tail -n 30 "$tmp/unit.log" | sed 's/^/    | /'
			;;
		esac
	done
	line="$up passed, $uf failed"
	[ $us -gt 0 ] && line="$line, $us skipped"
	add_summary "host unit tests" "$line" "$ustart"
fi

# run_vm NAME [ARGS...]: the VM suite, its summary counted as part NAME.
run_vm() {
	local name=$1 start=$SECONDS
	shift
	section "$name"
	test/vm/vm.sh test "$@" 2>&1 | tee "$tmp/vm.log"
	local rc=${PIPESTATUS[0]}
	local line
	line=$(grep -a -E '^[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$tmp/vm.log" | tail -n 1)
	add_summary "$name" "$line" "$start"
	# vm.sh's own verdict covers what the counts may not (no summary, bad exit).
	if [ "$rc" != 0 ] && [[ $line =~ \ 0\ failed ]]; then
		failed=$((failed + 1))
		parts+=("$name: vm.sh exited with status $rc")
	fi
}

# use_kernel KVER: fetch the kernel KVER names and make the parts boot it
# (KERNEL, MODULES, KVERSION exported); a kernel of one's own when KVER is
# "custom". Sets KSHORT, the version part names carry.
use_kernel() {
	local out
	if [ "$1" = custom ]; then
		out=$(test/vm/kernel.sh) || return 1
	else
		out=$(KERNEL='' MODULES='' KVER=$1 test/vm/kernel.sh) || return 1
	fi
	eval "$out"
	export KERNEL MODULES KVERSION
	KSHORT=${KVERSION%%[+-]*}
}

if [ -n "${KERNEL:-}" ] || [ -n "${MODULES:-}" ]; then
	KVERS=custom
fi
first=1
seen=" "
for kv in $KVERS; do
	kstart=$SECONDS
	if ! use_kernel "$kv"; then
		section "kernel $kv"
		echo "FAIL kernel $kv: test/vm/kernel.sh cannot provide it (see above)"
		add_summary "kernel $kv" "0 passed, 1 failed" "$kstart"
		continue
	fi
	# lts and newest are the same kernel when nothing newer can be had.
	case $seen in *" $KVERSION "*)
		echo "run-all.sh: KVER=$kv is $KVERSION again; not repeating it" >&2
		continue
		;;
	esac
	seen="$seen$KVERSION "
	echo
	echo "======== kernel $KVERSION (KVER=$kv) ========"

	# shellcheck disable=SC2086 # the test lists are space separated
	run_vm "VM integration tests (ublk-mem, $KSHORT)" ${VM_TESTS:-}
	mode_tests=$MODE_TESTS
	[ $first = 1 ] || mode_tests=$MODE_TESTS_NEXT
	if [ "$mode_tests" != none ]; then
		modes="user_copy bounce"
		# zero_copy needs the driver's AUTO_BUF_REG (Linux 6.16).
		IFS=. read -r kmajor kminor _ <<<"$KSHORT"
		if ((kmajor > 6 || (kmajor == 6 && kminor >= 16))); then
			modes="$modes zero_copy"
		fi
		for mode in $modes; do
			# shellcheck disable=SC2086
			UBLK_MEM_ARGS="--copy-mode $mode" \
				run_vm "VM data-integrity tests (--copy-mode $mode, $KSHORT)" $mode_tests
		done
	fi
	if [ $first = 1 ] && [ -f ublk-mem-asan ] && [ "$ASAN_TESTS" != none ]; then
		# shellcheck disable=SC2086
		UBLK_MEM_EXTRA="$PWD/ublk-mem-asan ${UBLK_MEM_EXTRA:-}" UBLK_MEM_GUEST=ublk-mem-asan \
			run_vm "VM integration tests (ublk-mem-asan, $KSHORT)" $ASAN_TESTS
	fi
	# Swap needs a machine short of memory: a VM of its own, on the first
	# kernel (6.12 swaps fastest under TCG; t-swap passes on 7.3 too).
	# Its console stays quiet for minutes while it swaps (a hang is the
	# kernel's hung-task report, which t-swap makes fatal).
	if [ $first = 1 ] && [ "$SWAP_TESTS" != none ]; then
		# shellcheck disable=SC2086
		VM_MEM=768 VM_TIMEOUT=${SWAP_VM_TIMEOUT:-3000} VM_SILENCE=${SWAP_VM_SILENCE:-1500} \
			run_vm "VM swap tests (768 MiB, $KSHORT)" $SWAP_TESTS
	fi
	if [ $first = 1 ] && [ "${BENCH:-1}" != 0 ]; then
		name="benchmark smoke run (bench.sh --quick, $KSHORT)"
		section "$name"
		bstart=$SECONDS
		# On qemu's CPU without fast string copies (--cpu): the model
		# must reach the VM, whose kernel then sees neither flag.
		if KVER=$kv ./bench.sh --quick --cpu max,erms=off,fsrm=off --out "$tmp/bench" &&
			test/checks/bench-check.sh "$tmp/bench" && cpu_model_reached "$tmp/bench/meta.txt"; then
			add_summary "$name" "1 passed, 0 failed" "$bstart"
		else
			add_summary "$name" "0 passed, 1 failed" "$bstart"
		fi
	fi
	first=0
done

section "summary"
for p in "${parts[@]}"; do echo "  $p"; done
line="$passed passed, $failed failed"
[ $skipped -gt 0 ] && line="$line, $skipped skipped"
echo "$line"
kernels=${seen# }
echo "total time: $(duration "$SECONDS"), kernels: ${kernels% }"
[ $failed -eq 0 ]
