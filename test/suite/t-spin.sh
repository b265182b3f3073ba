#!/bin/sh
# The queue thread's waiting modes all move data correctly: --poll (spin
# even at queue depth 1), the default (spin only while busy) and --poll=0
# (never spin), each with fio verify at QD1 and QD32.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

for opt in --poll --poll=0 ""; do
	step "ublk-mem ${opt:-(default)}"
	# shellcheck disable=SC2086 # no option for the default
	start_ublk 32M $opt
	fio_verify qd1 --iodepth=1 --size=4M
	fio_verify qd32 --iodepth=32 --offset=8M --size=16M
	check_alive
	stop_ublk
done
