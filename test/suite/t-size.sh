#!/bin/sh
# The device has exactly the requested size and the default 512-byte
# logical blocks, for sizes given in bytes and with each suffix.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

for spec in 65536:65536 1000K:1024000 64M:67108864 1G:1073741824; do
	arg=${spec%%:*}
	bytes=${spec#*:}
	step "ublk-mem $arg"
	start_ublk "$arg"
	expect_eq "$(dev_size "$DEV")" "$bytes" "size of $DEV for $arg"
	expect_eq "$(($(cat "/sys/block/ublkb$SRV_ID/size") * 512))" "$bytes" "sysfs size of $DEV"
	expect_eq "$(queue_attr "$DEV" logical_block_size)" 512 "logical block size"
	stop_ublk
done
