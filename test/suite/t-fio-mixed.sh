#!/bin/sh
# Random reads and writes of mixed sizes, from one logical block to 128 KiB,
# then a full verify; with 512-byte and with 4 KiB logical blocks.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

for bs in 512 4096; do
	start_ublk 64M -b $bs
	step "randrw --bsrange=$bs-128k on a -b $bs device"
	fio_verify mixed-$bs --rw=randrw --rwmixread=30 --bsrange=$bs-128k --blockalign=$bs \
		--iodepth=16 --size=32M
	check_alive
	stop_ublk
done
