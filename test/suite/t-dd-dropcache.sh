#!/bin/sh
# Data written through the page cache survives dropping the caches: read back
# buffered and with O_DIRECT, it matches; the untouched rest stays zero.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

start_ublk 64M
len=$((24 * MiB))
random_file "$T_TMP/pattern" $len
want=$(sha_of "$T_TMP/pattern")
step "buffered dd of 24 MiB, fsync, drop caches"
dd if="$T_TMP/pattern" of="$DEV" bs=1M conv=notrunc,fsync 2>"$T_TMP/dd.err" ||
	fail "dd failed: $(cat "$T_TMP/dd.err")"
drop_caches
step "read back"
expect_eq "$(sha_of "$DEV" $len)" "$want" "buffered read after drop_caches"
expect_eq "$(dev_sha "$DEV" 0 $len)" "$want" "O_DIRECT read"
expect_eq "$(dev_sha "$DEV" $len $((64 * MiB - len)))" "$(zero_sha $((64 * MiB - len)))" \
	"the unwritten rest of the device"
step "the same pattern again at an odd 512-byte offset with O_DIRECT"
off=$((36 * MiB + 3 * 512))
write_at "$DEV" "$T_TMP/pattern" $off
drop_caches
expect_eq "$(dev_sha "$DEV" $off $len)" "$want" "O_DIRECT read at offset $off"
expect_eq "$(dev_sha "$DEV" 0 $len)" "$want" "the first copy, after the second write"
check_alive
stop_ublk
