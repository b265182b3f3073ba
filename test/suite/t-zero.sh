#!/bin/sh
# A fresh device reads as zeros from its first byte to its last, with O_DIRECT
# and through the page cache.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

size=$((64 * MiB))
zeros=$(zero_sha $size)
start_ublk 64M
step "O_DIRECT read of the whole device"
expect_eq "$(dev_sha "$DEV")" "$zeros" "sha256 of a fresh device"
step "buffered read of the whole device, compared with /dev/zero"
drop_caches
cmp -n $size "$DEV" /dev/zero || fail "cmp found a non-zero byte"
stop_ublk
