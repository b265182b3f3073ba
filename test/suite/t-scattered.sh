#!/bin/sh
# Many small O_DIRECT writes at scattered, overlapping 512-byte-aligned
# offsets; the whole device then equals a model file written the same way.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

size=$((32 * MiB))
start_ublk 32M
random_file "$T_TMP/pool" $((1 * MiB))
truncate -s $size "$T_TMP/model" || fail "cannot make the model file"
# offset length pool-offset, all multiples of 512; the first and the last
# blocks of the device are among them.
awk -v size=$size 'BEGIN {
	srand(7)
	print 0, 512, 0
	print size - 4096, 4096, 512
	for (i = 0; i < 300; i++) {
		len = (1 + int(rand() * 64)) * 512
		off = int(rand() * (size - len) / 512) * 512
		src = int(rand() * (1048576 - len) / 512) * 512
		print off, len, src
	}
}' >"$T_TMP/plan"
step "300 scattered writes"
n=0
while read -r off len src; do
	dd if="$T_TMP/pool" of="$DEV" bs="$len" count=1 skip="$src" seek="$off" \
		iflag=skip_bytes oflag=seek_bytes,direct conv=notrunc 2>"$T_TMP/dd.err" ||
		fail "dd of $len bytes at $off failed: $(cat "$T_TMP/dd.err")"
	dd if="$T_TMP/pool" of="$T_TMP/model" bs="$len" count=1 skip="$src" seek="$off" \
		iflag=skip_bytes oflag=seek_bytes conv=notrunc 2>/dev/null ||
		fail "dd into the model failed"
	n=$((n + 1))
done <"$T_TMP/plan"
expect_eq $n 302 "writes done"
expect_eq "$(stat -c %s "$T_TMP/model")" $size "model size"
step "compare the device with the model"
want=$(sha_of "$T_TMP/model")
[ "$want" != "$(zero_sha $size)" ] || fail "the model is all zeros: the writes did nothing"
expect_eq "$(dev_sha "$DEV")" "$want" "device vs model (O_DIRECT)"
drop_caches
expect_eq "$(sha_of "$DEV")" "$want" "device vs model (buffered)"
check_alive
stop_ublk
