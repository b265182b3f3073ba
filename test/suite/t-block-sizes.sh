#!/bin/sh
# Each logical block size: the device reports it, keeps its size, and fio
# I/O in units of exactly that size verifies.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

for bs in 512 1024 2048 4096; do
	step "-b $bs"
	start_ublk 32M -b $bs
	expect_eq "$(queue_attr "$DEV" logical_block_size)" $bs "logical block size of $DEV"
	expect_eq "$(dev_size "$DEV")" $((32 * MiB)) "size of $DEV with -b $bs"
	fio_verify bs$bs --bs=$bs --iodepth=16 --size=4M
	check_alive
	stop_ublk
done
