#!/bin/sh
# BLKZEROOUT (blkdiscard -z) and discard read back as zeros over exactly their
# range, ranges aligned to 512 bytes but not to pages; data around them stays.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
need_tool "$BLKDISCARD" "util-linux blkdiscard"

size=$((16 * MiB))
start_ublk 16M
random_file "$T_TMP/model" $size
step "fill the device with random data"
write_at "$DEV" "$T_TMP/model" 0
expect_eq "$(dev_sha "$DEV")" "$(sha_of "$T_TMP/model")" "device after the fill"

# zero_range MODE OFFSET LENGTH: blkdiscard the range (MODE -z zeroes it out),
# zero the model the same way, and compare the whole device with the model.
zero_range() {
	step "blkdiscard $1 -o $2 -l $3"
	# shellcheck disable=SC2086 # $1 is an option or nothing
	"$BLKDISCARD" -f $1 -o "$2" -l "$3" "$DEV" >"$T_TMP/bd.out" 2>&1 ||
		fail "blkdiscard $1 -o $2 -l $3 $DEV failed: $(cat "$T_TMP/bd.out")"
	dd if=/dev/zero of="$T_TMP/model" bs=512 seek=$(($2 / 512)) count=$(($3 / 512)) \
		conv=notrunc 2>/dev/null
	expect_eq "$(dev_sha "$DEV" "$2" "$3")" "$(zero_sha "$3")" "the range after blkdiscard $1"
	expect_eq "$(dev_sha "$DEV")" "$(sha_of "$T_TMP/model")" \
		"the whole device after blkdiscard $1 -o $2 -l $3"
}

zero_range -z $((1 * MiB + 512)) $((2 * MiB + 1024))
zero_range -z $((4 * MiB)) 512
zero_range "" $((5 * MiB + 3584)) $((3 * MiB + 1536))
zero_range "" $((9 * MiB)) $((1 * MiB))
zero_range "" $((12 * MiB + 512)) 1024
step "buffered read agrees"
drop_caches
expect_eq "$(sha_of "$DEV")" "$(sha_of "$T_TMP/model")" "buffered read of the whole device"
step "discard everything"
"$BLKDISCARD" -f "$DEV" || fail "blkdiscard of the whole device failed"
expect_eq "$(dev_sha "$DEV")" "$(zero_sha $size)" "the device after a full discard"
check_alive
stop_ublk
