#!/bin/bash
# Build checks: the server is one static binary, builds warning-free with
# gcc (-Werror) and with musl-gcc (libc only, no kernel headers needed).
# Exit 0 pass, 1 fail, like the C unit tests.
set -u
cd "$(dirname "$0")/.." || exit 1
fails=0
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

srcs=(uring.c ublk.c mem_backend.c main.c)
warn=(-std=gnu11 -Wall -Wextra -Wshadow -Wformat=2 -Werror -D_FILE_OFFSET_BITS=64)

# Static: no program interpreter and no shared library needed.
is_static() {
	! readelf -lW "$1" | grep -q 'Requesting program interpreter' &&
		! readelf -dW "$1" | grep -q NEEDED
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
echo "# build_test: $fails failed"
[ "$fails" = 0 ]
