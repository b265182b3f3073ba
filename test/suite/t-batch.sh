#!/bin/sh
# The batched data path (--io-path batch, UBLK_F_BATCH_IO, Linux 7.0): the
# device is made with BATCH_IO, data comes back intact in both of its copy
# modes, with two queues, at depth 2 and 4096 (depth 1 is refused: the
# driver cannot), and when the buffer ring of its FETCH commands runs dry
# (test hook batch-one-buffer: -v shows the FETCHes end with ENOBUFS and
# are armed again); -v shows the batched
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
# With one buffer a FETCH runs out of room for tags (-ENOBUFS) and ends;
# the server must arm it again, or the queue stops fetching. -v says both
# (ublk_batch.c): each slot armed once at start, then once per time it ran
# dry. Not the kernel's io_uring tracepoints: enabling them
# patches kernel text, which an emulated SMP guest has been seen to
# crash on (an int3 oops in __schedule).
UBLK_MEM_ENV=UBLK_MEM_TEST_FAULT=batch-one-buffer
start_ublk 32M --io-path batch -v
UBLK_MEM_ENV=
fio_verify batch-dry --iodepth=32 --size=8M
check_alive
grep -q 'COMMIT_IO_CMDS of [0-9]* requests -> ' "$SRV_ERR" ||
	fail "-v shows no COMMIT_IO_CMDS: $(head -c 300 "$SRV_ERR")"
grep -q 'FETCH_IO_CMDS [01]: [0-9]* tags' "$SRV_ERR" ||
	fail "-v shows no FETCH_IO_CMDS: $(head -c 300 "$SRV_ERR")"
dry=$(grep -c 'FETCH_IO_CMDS [01] ended: no buffer left' "$SRV_ERR")
armed=$(grep -c 'FETCH_IO_CMDS [01] armed' "$SRV_ERR")
say "$(grep -c 'FETCH_IO_CMDS' "$SRV_ERR") FETCH and $(grep -c 'COMMIT_IO_CMDS' "$SRV_ERR") COMMIT lines; FETCHes armed $armed times, ran dry $dry times"
[ "$dry" -gt 0 ] || fail "no FETCH ran dry with one buffer: $(grep 'FETCH_IO_CMDS' "$SRV_ERR" | tail -n 3)"
[ "$armed" -gt 2 ] || fail "the FETCHes were armed $armed times: never again after running dry"
[ "$armed" -ge $((dry + 2)) ] || fail "$dry FETCHes ran dry, but only $((armed - 2)) were armed again"
stop_ublk

step "the device deleted from outside: the server ends"
start_ublk 32M --io-path batch
run_with_timeout 60 "$UBLK_MEM" del "$SRV_ID" >/dev/null 2>&1 || fail "ublk-mem del $SRV_ID failed"
wait_exit "$SRV_PID" 30 ublk-mem "ublk-mem del"
grep -q "stopped by someone else" "$SRV_ERR" ||
	fail "the server did not say why it ended: $(cat "$SRV_ERR")"
wait_gone "$DEV" "/dev/ublkc$SRV_ID" || fail "$DEV remains after del"
