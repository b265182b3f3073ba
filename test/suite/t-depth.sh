#!/bin/sh
# Queue depth limits: -d 1 serves fio at QD32 one request at a time, -d 4096
# (the maximum) starts and serves; `ublk-mem list` reports the depth.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

for depth in 1 4096; do
	step "-d $depth"
	start_ublk 32M -d $depth
	expect_eq "$(run_with_timeout 30 "$UBLK_MEM" list | awk -v id="$SRV_ID" '$1 == id { print $6 }')" \
		$depth "depth of $DEV in ublk-mem list"
	fio_verify depth$depth --iodepth=32 --size=4M
	fio_verify depth$depth-mixed --rw=randwrite --bsrange=4k-128k --iodepth=32 --size=8M --offset=16M
	check_alive
	stop_ublk
done
