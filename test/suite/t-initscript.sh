#!/bin/sh
# dist/ublk-mem.init, the sysvinit/busybox script, used as an admin would:
# start returns with the device live and prints it, a second start finds
# it running, status tells running (0) from not running (3), stop is a
# clean stop (device and pid file gone), a stop with nothing running is
# fine, and a start that fails says so with a non-zero status.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

INIT=$TEST_ROOT/../dist/ublk-mem.init
[ -f "$INIT" ] || fail "no $INIT (the VM image carries dist/ at /dist)"
[ -e /etc/default/ublk-mem ] && skip "/etc/default/ublk-mem exists here and would override the test's settings"
export UBLK_MEM
export UBLK_MEM_SIZE=32M
export UBLK_MEM_OPTS="-d 64"
export UBLK_MEM_PIDFILE="$T_TMP/ublk-mem.pid"

# rc ACTION: run the script; its output in $T_TMP/ACTION.out, status echoed.
rc() {
	run_with_timeout 120 sh "$INIT" "$1" >"$T_TMP/$1.out" 2>&1
	echo $?
}

before=$(ublk_nodes)

step "status before start: not running"
expect_eq "$(rc status)" 3 "status before start"

step "start"
expect_eq "$(rc start)" 0 "start: $(cat "$T_TMP/start.out")"
DEV=$(grep -E '^/dev/ublkb[0-9]+$' "$T_TMP/start.out")
[ -b "$DEV" ] || fail "start printed no live device: $(cat "$T_TMP/start.out")"
pid=$(cat "$UBLK_MEM_PIDFILE")
echo "$pid" >>"$T_TMP/pids"
alive "$pid" || fail "the pid file names $pid, which does not run"
expect_eq "$("$UBLK_MEM" list | awk -v id="${DEV#/dev/ublkb}" '$1 == id { print $3, $6 }')" \
	"$pid 64" "server pid and depth (UBLK_MEM_OPTS) of $DEV"
fio_verify initscript --size=8M

step "start again: already running"
nodes=$(ublk_nodes)
expect_eq "$(rc start)" 0 "a second start"
grep -q "already running" "$T_TMP/start.out" || fail "a second start did not say so: $(cat "$T_TMP/start.out")"
expect_eq "$(ublk_nodes)" "$nodes" "ublk devices after a second start"

step "status: running"
expect_eq "$(rc status)" 0 "status while running"
grep -q "pid $pid" "$T_TMP/status.out" || fail "status does not name pid $pid: $(cat "$T_TMP/status.out")"

step "stop"
expect_eq "$(rc stop)" 0 "stop: $(cat "$T_TMP/stop.out")"
alive "$pid" && fail "the server $pid still runs after stop returned"
wait_gone "$DEV" "/dev/ublkc${DEV#/dev/ublkb}" || fail "$DEV remains after stop"
[ -e "$UBLK_MEM_PIDFILE" ] && fail "the pid file remains after stop"
expect_eq "$(rc status)" 3 "status after stop"
expect_eq "$(rc stop)" 0 "stop with nothing running"

step "a start that fails"
UBLK_MEM_SIZE=12Q
expect_eq "$(rc start)" 2 "start with a bad size"
grep -q "invalid size" "$T_TMP/start.out" || fail "start did not say why: $(cat "$T_TMP/start.out")"
expect_eq "$(ublk_nodes)" "$before" "ublk devices at the end"
