#!/bin/sh
# --queue-threads N: N threads serve one queue (UBLK_F_PER_IO_DAEMON, Linux
# 6.16), thread L the tags t with t % N == L. fio verify keeps its data,
# the threads are there by name, and the trace shows every thread serving
# and only its own tags; after a kill -9 one thread per queue recovers it.
# On a driver without the flag it is refused with one line naming it and
# its release, exit 1, no device left.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

case " ${UBLK_MEM_ARGS:-} " in
*" --io-path batch "*) skip "UBLK_MEM_ARGS ($UBLK_MEM_ARGS) takes the batched path" ;;
esac

if ! has_feature PER_IO_DAEMON; then
	step "--queue-threads 2 without PER_IO_DAEMON: refused"
	refuse 1 "--queue-threads 2 without PER_IO_DAEMON" 32M --queue-threads 2
	grep -q 'lacks UBLK_F_PER_IO_DAEMON (Linux 6\.16): use --queue-threads 1' "$T_TMP/r.err" ||
		fail "the refusal does not name PER_IO_DAEMON and Linux 6.16: $(cat "$T_TMP/r.err")"
	step "--queue-threads 1: one thread per queue, as without it"
	start_ublk 32M --queue-threads 1
	fio_verify one --size=8M
	check_alive
	stop_ublk
	exit 0
fi

# queue_threads PID ID: the names of the server's queue threads, sorted.
queue_threads() {
	cat "/proc/$1/task/"*/comm 2>/dev/null | grep "^ublkb$2-q" | sort | tr '\n' ' '
}

# recoverable ID: `ublk-mem list` says device ID waits for a new server.
recoverable() {
	"$UBLK_MEM" list | awk -v id="$1" '$1 == id' | grep -q recoverable
}

step "three threads on one queue of depth 16, two queues: fio verify at QD16"
start_ublk 64M -q 2 -d 16 --queue-threads 3
expect_eq "$(queue_threads "$SRV_PID" "$SRV_ID")" \
	"ublkb$SRV_ID-q0.0 ublkb$SRV_ID-q0.1 ublkb$SRV_ID-q0.2 ublkb$SRV_ID-q1.0 ublkb$SRV_ID-q1.1 ublkb$SRV_ID-q1.2 " \
	"queue threads of $DEV"
fio_verify qt3 --rw=randrw --rwmixread=30 --iodepth=16 --numjobs=2 --offset_increment=32M \
	--cpus_allowed=0-1 --cpus_allowed_policy=split
check_alive
stop_ublk

step "the trace: each thread serves requests, and only its own tags"
start_ublk 16M -d 8 --queue-threads 2 -v
fio_verify trace --size=2M --iodepth=8
check_alive
stop_ublk
# "ublk-mem: q0.1 tag 5 WRITE off ... -> 4096 (get_data)"
awk '$2 ~ /^q0\.[01]$/ && $3 == "tag" {
		lane = substr($2, 4); n[lane]++
		if ($4 % 2 != lane) { bad++; if (!first) first = $0 }
	}
	END { printf "%d %d %d %s\n", n[0], n[1], bad, first }' "$SRV_ERR" >"$T_TMP/lanes"
read -r n0 n1 bad first <"$T_TMP/lanes"
say "traced requests: $n0 by thread q0.0, $n1 by q0.1, $bad on a tag not its own"
{ [ "$n0" -gt 0 ] && [ "$n1" -gt 0 ]; } || fail "a thread served nothing: q0.0 $n0, q0.1 $n1 requests"
[ "$bad" = 0 ] || fail "$bad requests served by a thread that does not own the tag: $first"

step "SIGKILL, then recover: one thread per queue takes over"
start_ublk 64M --recoverable -d 32 --queue-threads 2
id=$SRV_ID
fio_verify before --size=16M
want=$(dev_sha "$DEV" 0 $((16 * MiB)))
kill -KILL "$SRV_PID"
wait "$SRV_PID" 2>/dev/null
wait_until 30 recoverable "$id" ||
	fail "device $id not recoverable 30 s after the crash: $("$UBLK_MEM" list)"
start_ublk recover "$id"
expect_eq "$(queue_threads "$SRV_PID" "$id")" "ublkb$id-q0 " "queue threads after the recovery"
expect_eq "$(dev_sha "$DEV" 0 $((16 * MiB)))" "$want" "the first 16 MiB after the recovery"
fio_verify after --size=16M --offset=32M
check_alive
stop_ublk
