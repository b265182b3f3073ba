#!/bin/bash
# Build checks: the server is one static binary, builds warning-free with
# gcc (-Werror) and with musl-gcc (libc only, no kernel headers needed),
# and, cross-compiled, for arm64.
# Exit 0 pass, 1 fail, 77 when a check could not run here (and none
# failed), like the C unit tests.
set -u
cd "$(dirname "$0")/../.." || exit 1
fails=0
skips=
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

check() {
	local name=$1
	shift
	if "$@" >"$tmp/out" 2>&1; then
		echo "ok - $name"
	else
		echo "FAIL - $name"
		sed 's/^/    | /' "$tmp/out" | tail -n 20
		fails=$((fails + 1))
	fi
}

# The program's sources, as the Makefile lists them (make reads its own
# continued lines).
# shellcheck disable=SC2207,SC2016 # file names without spaces; $(SRCS) is make's
srcs=($(make -s --no-print-directory --eval='print-srcs: ; @echo $(SRCS)' print-srcs))
[ ${#srcs[@]} -gt 0 ] || { echo "FAIL - no SRCS line in the Makefile"; exit 1; }
warn=(-std=gnu11 -Wall -Wextra -Wshadow -Wformat=2 -Werror -D_FILE_OFFSET_BITS=64)

# Static: no program interpreter and no shared library needed. readelf
# must read the file: a missing or broken one is not static.
is_static() {
	local headers dynamic
	headers=$(readelf -lW "$1") && dynamic=$(readelf -dW "$1") || return 1
	! grep -q 'Requesting program interpreter' <<<"$headers" &&
		! grep -q NEEDED <<<"$dynamic"
}

check "ublk-mem is statically linked" is_static ./ublk-mem
check "gcc -O2 -Werror builds it" \
	gcc -O2 "${warn[@]}" -o "$tmp/gcc" "${srcs[@]}" -static -pthread
if ! command -v musl-gcc >/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq musl-tools >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null 2>&1 &&
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq musl-tools >/dev/null 2>&1; }
fi
check "musl-gcc -Werror builds it, statically" \
	bash -c "musl-gcc -O2 ${warn[*]} -o '$tmp/musl' ${srcs[*]} -static -pthread &&
		'$tmp/musl' --version" && check "the musl build is static" is_static "$tmp/musl"

# The arm64 drop-in: make ARCH=arm64 in a copy of the sources (the tree's
# ./ublk-mem stays this machine's), warning-free, static, aarch64.
arm64_cc=aarch64-linux-gnu-gcc
if ! command -v $arm64_cc >/dev/null; then
	pkgs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null 2>&1 &&
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null 2>&1; }
fi
is_aarch64() {
	readelf -hW "$1" | grep -q 'Machine:.*AArch64'
}
if command -v $arm64_cc >/dev/null; then
	mkdir -p "$tmp/arm64"
	cp Makefile ./*.c ./*.h "$tmp/arm64/"
	check "make ARCH=arm64 builds it with $arm64_cc -Werror" \
		env CFLAGS="-O2 -Werror" make -s -C "$tmp/arm64" ARCH=arm64 ublk-mem &&
		check "the arm64 build is an aarch64 program" is_aarch64 "$tmp/arm64/ublk-mem" &&
		check "the arm64 build is static" is_static "$tmp/arm64/ublk-mem"
else
	echo "skip - make ARCH=arm64: no $arm64_cc, and apt-get cannot install gcc-aarch64-linux-gnu"
	skips="$skips make ARCH=arm64;"
fi
echo "# build_test: $fails failed"
[ "$fails" = 0 ] || exit 1
# A check that could not run is not a pass: the last line says which.
[ -z "$skips" ] || { echo "skipped:$skips"; exit 77; }
