#!/bin/bash
# lz4.c's blocks against the reference LZ4, Debian's `lz4` tool:
#  (a) files compressed by lz4_compress() a 4 KiB page at a time, as the
#      compressed RAM store does, and put in an LZ4 frame by lz4_frame,
#      come back byte for byte from `lz4 -d`;
#  (b) the same files compressed by `lz4 -1` in independent 64 KiB blocks
#      (and in 4 KiB blocks with block and content checksums) decode with
#      lz4_decompress() to the same bytes; and lz4_compress() stores those
#      blocks in at most 2% more than `lz4 -1` does.
# Files: binaries, text, 1 MiB of random bytes, 1 MiB of zeros, sizes
# that end in part of a page, 3 bytes, empty.
# Run from the top of the tree (or anywhere: it goes there); $CC builds
# the helper (default cc).  Needs the lz4 tool and installs it if missing.
# Exit 0 pass, 1 fail, 77 skip if lz4 cannot be had.
set -u
cd "$(dirname "$0")/../.." || exit 1
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! command -v lz4 >/dev/null; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq lz4 >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null 2>&1 &&
		  apt-get install -y -qq lz4 >/dev/null 2>&1; }
fi
if ! command -v lz4 >/dev/null; then
	echo "skip - lz4_interop: no lz4 tool, and apt-get install -y lz4 failed"
	exit 77
fi

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

helper=$tmp/lz4_frame
if ! "${CC:-cc}" -std=gnu11 -O2 -Wall -Wextra -I. -o "$helper" \
	test/unit/lz4_frame.c lz4.c; then
	echo "FAIL - lz4_interop: cannot build test/unit/lz4_frame.c with ${CC:-cc}"
	exit 1
fi

# ---- the files ----
files=()
data=$tmp/data
mkdir "$data"

# Copy $1 as $data/$2 if it is there and not empty.
add() {
	[ -s "$1" ] && cp -- "$1" "$data/$2" && files+=("$2")
}

# Up to $2 bytes of the files found by find "$1" ... (sorted: the same
# files on every run of one machine).
gather() {
	local dir=$1 max=$2
	shift 2
	find "$dir" -type f -size +8k "$@" -print0 2>/dev/null | LC_ALL=C sort -z |
		xargs -0 cat 2>/dev/null | head -c "$max"
}

add "$(readlink -f /bin/sh)" bin-sh
add "$(command -v lz4)" bin-lz4
add "$helper" bin-lz4_frame
gather /usr/bin 4194304 -maxdepth 1 >"$tmp/bin-mix" && add "$tmp/bin-mix" bin-mix
gather /usr/share 4194304 \( -name '*.txt' -o -name '*.html' -o -name '*.py' \
	-o -name '*.xml' -o -name '*.pl' \) >"$tmp/text-mix" &&
	add "$tmp/text-mix" text-mix
add README.md text-readme
add lz4.c text-lz4.c
add /usr/share/common-licenses/GPL-3 text-gpl3
"$helper" random 1048576 "$data/random-1M" && files+=(random-1M)
head -c 1048576 /dev/zero >"$data/zeros-1M" && files+=(zeros-1M)
head -c 10001 "$data/bin-sh" >"$data/odd-10001" && files+=(odd-10001)
printf 'abc' >"$data/tiny-3" && files+=(tiny-3)
: >"$data/empty" && files+=(empty)

# ---- (a) our pages through lz4 -d ----
ours_to_lz4() {
	"$helper" pack "$1" "$1.ours.lz4" >>"$tmp/pack.log" &&
		lz4 -q -d -c "$1.ours.lz4" >"$1.back" && cmp -- "$1" "$1.back"
}

# ---- (b) lz4 -1 blocks through lz4_decompress(); $2 names the log ----
lz4_to_ours() {
	local f=$1 log=$2
	shift 2
	lz4 -q -1 "$@" -c "$f" >"$f.$log.lz4" &&
		"$helper" unpack "$f.$log.lz4" "$f" >>"$tmp/$log.log"
}

for f in "${files[@]}"; do
	check "lz4 -d reads $f from our 4 KiB pages" ours_to_lz4 "$data/$f"
	check "our decoder reads $f from lz4 -1 -BI -B4 --no-frame-crc" \
		lz4_to_ours "$data/$f" ref64k -BI -B4 --no-frame-crc
	check "our decoder reads $f from lz4 -1 -BI -B4096 -BX" \
		lz4_to_ours "$data/$f" ref4k -BI -B4096 -BX
done

# ---- what was checked ----
# Sum the key=value fields of the lines of log $1 (pack, ref64k, ref4k).
sums() {
	awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); s[kv[1]] += kv[2] } }
	END { for (k in s) printf "%s=%s\n", k, s[k] }' "$tmp/$1.log" 2>/dev/null
}

# The value of key $2 in the sums of log $1 (0 if none).
sum() {
	sums "$1" | awk -F= -v key="$2" '$1 == key { v = $2 } END { print v + 0 }'
}

# $1 / $2 to 4 places.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", a / b }'
}

echo "# lz4 -d read ${#files[@]} files from our 4 KiB pages: $(sum pack blocks)" \
	"pages ($(sum pack raw) raw), $(sum pack bytes) bytes"
for log in ref64k ref4k; do
	ref=$(sum $log ref_stored) ours=$(sum $log our_stored) bytes=$(sum $log bytes)
	if [ "$ref" -eq 0 ] || [ "$ours" -eq 0 ]; then
		continue
	fi
	echo "# $log: our decoder read $(sum $log blocks) blocks ($(sum $log raw) raw)," \
		"$bytes bytes; stored by lz4 -1 in $ref bytes (ratio $(ratio "$bytes" "$ref"))," \
		"by us in $ours (ratio $(ratio "$bytes" "$ours")); $(sum $log identical)" \
		"of $(sum $log compared) blocks identical"
done
echo "# lz4_interop: ${#files[@]} files, $fails failed"
[ "$fails" -eq 0 ]
