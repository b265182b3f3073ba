#!/bin/bash
# The integration suite on arm64: test/arm64.sh [FLAVOUR...]
#
# For each Debian arm64 kernel flavour, arm64 (4 KiB pages) and arm64-16k
# (16 KiB pages) unless named, boots the newest kernel of it that boots with
# ublk_drv (KVER, default newest; see test/vm/kernel.sh) in
# qemu-system-aarch64 under TCG, with an arm64 userland (busybox, fio,
# e2fsprogs, util-linux, jq from Debian's arm64 packages, see
# test/vm/initramfs.sh), and runs there, against the cross-built server,
# what test/run-all.sh runs on a kernel: the integration suite, then the
# data-integrity tests once per other copy mode (user_copy, bounce,
# zero_copy). No
# sanitizer build, no benchmark.
#
# `make test-arm64` builds build/arm64/ublk-mem and the suite's helpers and
# runs this. Ends with one line per flavour, then one line
# "N passed, M failed[, K skipped]" over all of them and the time taken;
# the exit status is non-zero when anything failed or a VM did not finish.
#
# Environment: KVER, VM_TESTS, MODE_TESTS (as for test/run-all.sh),
# UBLK_MEM_BIN (default build/arm64/ublk-mem), UBLK_MEM_HELPERS (default
# build/arm64/test), plus what test/vm/vm.sh reads.
set -u
cd "$(dirname "$0")/.." || exit 1

flavours=${*:-arm64 arm64-16k}
export UBLK_MEM_BIN=${UBLK_MEM_BIN:-$PWD/build/arm64/ublk-mem}
export UBLK_MEM_HELPERS=${UBLK_MEM_HELPERS:-$PWD/build/arm64/test}
if [ ! -f "$UBLK_MEM_BIN" ]; then
	echo "arm64.sh: no $UBLK_MEM_BIN: run make test-arm64 (or make build/arm64/ublk-mem)" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0 skipped=0
lines=()

for flavour in $flavours; do
	start=$SECONDS
	echo
	echo "################################ ARCH=arm64 KFLAVOUR=$flavour ################################"
	ARCH=arm64 KFLAVOUR=$flavour KVERS=${KVER:-newest} KERNEL='' MODULES='' \
		ASAN_TESTS=none BENCH=0 test/run-all.sh 2>&1 | tee "$tmp/run.log"
	line=$(grep -a -E '^[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$tmp/run.log" | tail -n 1)
	kernels=$(sed -n 's/^total time: .*, kernels: //p' "$tmp/run.log" | tail -n 1)
	if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)?$ ]]; then
		passed=$((passed + BASH_REMATCH[1]))
		failed=$((failed + BASH_REMATCH[2]))
		skipped=$((skipped + ${BASH_REMATCH[4]:-0}))
	else
		failed=$((failed + 1))
		line="no result line (counted as 1 failure)"
	fi
	secs=$((SECONDS - start))
	lines+=("$flavour (${kernels:-no kernel}): $line ($((secs / 60))m$(printf %02d $((secs % 60)))s)")
done

echo
echo "################ arm64 summary ################"
for l in "${lines[@]}"; do echo "  $l"; done
line="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && line="$line, $skipped skipped"
echo "$line"
echo "total time: $((SECONDS / 60))m$(printf %02d $((SECONDS % 60)))s"
[ "$failed" -eq 0 ]
