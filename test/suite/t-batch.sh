#!/bin/sh
# The batched data path (--io-path batch, UBLK_F_BATCH_IO, Linux 7.0): the
# device is made with BATCH_IO, data comes back intact in both of its copy
# modes, with two queues, at depth 2 and 4096 (depth 1 is refused: the
# driver cannot), and when the buffer ring of its FETCH commands runs dry
# (test hook batch-one-buffer: the kernel's io_uring tracepoints show the
# FETCHes end with ENOBUFS and are armed again); -v shows the batched
# commands; a device deleted from outside ends the server.
# Skipped where the driver lacks BATCH_IO (t-batch-refused covers that).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

has_feature BATCH_IO ||
	skip "this kernel's ublk driver lacks BATCH_IO (Linux 7.0): the batched path cannot run here"
case " ${UBLK_MEM_ARGS:-} " in
*" --io-path "* | *" get_data "* | *" zero_copy "*)
	skip "UBLK_MEM_ARGS ($UBLK_MEM_ARGS) chooses the path or a per-request copy mode" ;;
esac

# flags_of ID: the device's flags as `ublk-mem list --json` names them.
flags_of() {
	run_with_timeout 30 "$UBLK_MEM" list --json |
		grep "\"id\":$1," | sed 's/.*"flags":\[\([^]]*\)\].*/\1/'
}

for mode in bounce user_copy; do
	step "--io-path batch, copy mode $mode: mixed sizes, QD32"
	if [ $mode = bounce ]; then
		start_ublk 64M --io-path batch	# bounce is the batched path's default
	else
		start_ublk 64M --io-path batch --copy-mode $mode
	fi
	flags=$(flags_of "$SRV_ID")
	case $flags in *'"BATCH_IO"'*) ;; *) fail "$DEV was made without BATCH_IO: $flags" ;; esac
	expect_eq "$(copy_mode_of "$SRV_ID")" $mode "copy mode of $DEV"
	fio_verify batch-$mode --rw=randwrite --bsrange=512-256k --iodepth=32 --size=32M
	fio_verify batch-$mode-rw --rw=randrw --rwmixread=70 --bs=4k --iodepth=16 \
		--size=16M --offset=32M
	check_alive
	stop_ublk
done

step "two queues, two fio jobs"
start_ublk 64M --io-path batch -q 2
fio_verify batch-q2 --numjobs=2 --size=16M --offset_increment=32M
check_alive
stop_ublk

step "depth 1: refused (the driver's batched queues need two slots)"
run_with_timeout 30 "$UBLK_MEM" 32M --io-path batch -d 1 >/dev/null 2>"$T_TMP/d1.err"
expect_eq "$?" 2 "exit status of --io-path batch -d 1"
say "$(cat "$T_TMP/d1.err")"

for depth in 2 4096; do
	step "depth $depth"
	start_ublk 32M --io-path batch -d $depth
	fio_verify batch-d$depth --rw=randwrite --bsrange=4k-128k --iodepth=32 --size=8M
	check_alive
	stop_ublk
done

step "a FETCH buffer ring of one buffer: FETCHes run dry and are armed again"
# The kernel's io_uring tracepoints show it: a FETCH (user_data 0x20000
# + its slot, 0 or 1; see ublk_batch.c) that ends with -ENOBUFS (-105)
# ran dry, and one armed more often than the two at the start was armed
# again. Only the server uses io_uring here (fio uses libaio).
tracing=/sys/kernel/tracing
if [ ! -e $tracing/events ] && mount -t tracefs tracefs $tracing 2>/dev/null; then
	echo $tracing >>"$T_TMP/mounts"
fi
ev=$tracing/events/io_uring
traced=0
if [ -e $ev/io_uring_complete/enable ] && [ -e $ev/io_uring_submit_req/enable ]; then
	traced=1
elif [ "${UBLKMEM_VM:-0}" = 1 ]; then
	fail "no io_uring tracepoints in $tracing in the test VM"
else
	say "no io_uring tracepoints in $tracing: the dry FETCHes are not counted"
fi
fetch_ud='user_data == 0x20000 || user_data == 0x20001'
if [ $traced = 1 ]; then
	set_sysctl $tracing/tracing_on 0
	: >$tracing/trace
	echo "($fetch_ud) && res == -105" >$ev/io_uring_complete/filter ||
		fail "cannot filter io_uring_complete"
	echo "$fetch_ud" >$ev/io_uring_submit_req/filter || fail "cannot filter io_uring_submit_req"
	set_sysctl $ev/io_uring_complete/enable 1
	set_sysctl $ev/io_uring_submit_req/enable 1
	echo 1 >$tracing/tracing_on
fi
UBLK_MEM_ENV=UBLK_MEM_TEST_FAULT=batch-one-buffer
start_ublk 32M --io-path batch -v
UBLK_MEM_ENV=
fio_verify batch-dry --iodepth=32 --size=8M
check_alive
grep -q 'COMMIT_IO_CMDS of [0-9]* requests -> ' "$SRV_ERR" ||
	fail "-v shows no COMMIT_IO_CMDS: $(head -c 300 "$SRV_ERR")"
grep -q 'FETCH_IO_CMDS [01]: [0-9]* tags' "$SRV_ERR" ||
	fail "-v shows no FETCH_IO_CMDS: $(head -c 300 "$SRV_ERR")"
say "$(grep -c 'FETCH_IO_CMDS' "$SRV_ERR") FETCH and $(grep -c 'COMMIT_IO_CMDS' "$SRV_ERR") COMMIT lines"
if [ $traced = 1 ]; then
	echo 0 >$tracing/tracing_on
	cp $tracing/trace "$T_TMP/trace"
	echo 0 >$ev/io_uring_complete/enable
	echo 0 >$ev/io_uring_submit_req/enable
	echo 0 >$ev/io_uring_complete/filter
	echo 0 >$ev/io_uring_submit_req/filter
	dry=$(grep -c 'io_uring_complete:.*result -105' "$T_TMP/trace")
	armed=$(grep -c 'io_uring_submit_req:.*opcode URING_CMD' "$T_TMP/trace")
	say "FETCHes armed $armed times, ran dry $dry times"
	[ "$dry" -gt 0 ] || fail "no FETCH ran dry with one buffer: $(tail -n 5 "$T_TMP/trace")"
	[ "$armed" -gt 2 ] || fail "the FETCHes were armed $armed times: never again after running dry"
	[ "$armed" -ge $((dry + 2)) ] || fail "$dry FETCHes ran dry, but only $((armed - 2)) were armed again"
fi
stop_ublk

step "the device deleted from outside: the server ends"
start_ublk 32M --io-path batch
run_with_timeout 60 "$UBLK_MEM" del "$SRV_ID" >/dev/null 2>&1 || fail "ublk-mem del $SRV_ID failed"
wait_exit "$SRV_PID" 30 ublk-mem "ublk-mem del"
grep -q "stopped by someone else" "$SRV_ERR" ||
	fail "the server did not say why it ended: $(cat "$SRV_ERR")"
wait_gone "$DEV" "/dev/ublkc$SRV_ID" || fail "$DEV remains after del"
