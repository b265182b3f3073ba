#!/bin/sh
# -q 2 gives two hardware queues, and two fio jobs on them keep their data.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
if [ "$(nproc)" -lt 2 ]; then
	# The VM has two (vm.sh, VM_SMP).
	[ "${UBLKMEM_VM:-0}" = 1 ] && fail "the test VM has $(nproc) CPU, not 2"
	skip "needs 2 CPUs"
fi

start_ublk 64M -q 2
nq=$(find "/sys/block/ublkb$SRV_ID/mq" -mindepth 1 -maxdepth 1 -type d | wc -l)
expect_eq "$nq" 2 "hardware queues of $DEV"
step "two fio jobs, one per CPU, 16 MiB each"
fio_verify q2 --numjobs=2 --offset_increment=32M --size=16M --cpus_allowed_policy=split \
	--cpus_allowed=0-1
check_alive
stop_ublk

start_ublk 64M -q 1
nq=$(find "/sys/block/ublkb$SRV_ID/mq" -mindepth 1 -maxdepth 1 -type d | wc -l)
expect_eq "$nq" 1 "hardware queues of $DEV with -q 1"
stop_ublk
