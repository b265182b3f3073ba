#!/bin/sh
# Two devices whose sizes together exceed the machine's memory, each alone
# fitting: the first is filled, then the second. The second's writes must
# start failing with ENOSPC while the machine keeps its reserve; the OOM
# killer must not run, the first server must live on with every byte
# intact, and once the first device is stopped the second takes writes
# again.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

avail_mb=$(($(mem_kb MemAvailable) / 1024))
a_mb=$((avail_mb * 45 / 100))
b_mb=$((avail_mb * 60 / 100))
say "MemAvailable $avail_mb MiB: devices of $a_mb and $b_mb MiB"
if [ "$a_mb" -lt 256 ]; then
	# The VM has 2 GiB (vm.sh, VM_MEM): there, this is a failure.
	[ "${UBLKMEM_VM:-0}" = 1 ] && fail "only $avail_mb MiB available in the test VM"
	skip "too little memory for this test ($avail_mb MiB available)"
fi

step "fill the first device ($a_mb MiB) with checksummed blocks"
start_ublk "${a_mb}M"
a_dev=$DEV a_pid=$SRV_PID a_err=$SRV_ERR
fio_run fill-a --rw=write --bs=1M --iodepth=4 --size="${a_mb}M" --verify=crc32c --do_verify=0

step "fill the second device ($b_mb MiB) until memory runs out"
start_ublk "${b_mb}M"
b_dev=$DEV
(cd "$T_TMP" && "$FIO" --name=fill-b --filename="$b_dev" --ioengine=libaio --direct=1 \
	--rw=write --bs=1M --iodepth=4 --size="${b_mb}M") >"$T_TMP/fill-b.log" 2>&1 &&
	fail "all $b_mb MiB fitted although the first device holds $a_mb of $avail_mb MiB"
grep -q -i -E "no space left|error=28|err=28" "$T_TMP/fill-b.log" ||
	fail "the second device's writes did not fail with ENOSPC: $(tail -n 8 "$T_TMP/fill-b.log")"
check_alive
alive "$a_pid" || fail "the first device's server died"
grep -q "memory is running out" "$SRV_ERR" ||
	fail "the second server did not say why: $(cat "$SRV_ERR")"
dmesg | grep -q -i -E "out of memory|oom-kill" &&
	fail "the OOM killer ran: $(dmesg | grep -i -E -m 3 'out of memory|oom-kill')"
say "MemAvailable now $(($(mem_kb MemAvailable) / 1024)) MiB"

step "the first device's data, all of it"
DEV=$a_dev
fio_run verify-a --rw=write --bs=1M --iodepth=4 --size="${a_mb}M" \
	--verify=crc32c --verify_only --verify_fatal=1
[ "$FIO_READS" -gt 0 ] || fail "nothing of the first device was verified"

step "stop the first device: its memory comes back and the second takes writes"
stop_server "$a_pid" "$a_dev"
[ ! -s "$a_err" ] || say "first server said: $(head -c 300 "$a_err")"
DEV=$b_dev
fio_verify after --rw=write --bs=1M --iodepth=4 --size=64M \
	--offset=$(((b_mb - 64) * MiB))
check_alive
stop_ublk
