#!/bin/sh
# What an ordinary user's device cannot have is refused before any device
# is made, with one line saying why: --recoverable, --copy-mode user_copy
# and zero_copy, --zoned. Where the kernel or its set-up allows the user
# no device, one line says so and what would: /dev/ublk-control closed to
# the user, io_uring closed to users (kernel.io_uring_disabled), the
# driver's cap on unprivileged devices (ublks_max) reached, and nothing
# handing the new device's node to the user (no udev rule), where root is
# told how to remove what is left.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
users_setup
start_udev "$UBLK_MEM" chown
as_user $UID1
MAX=/sys/module/ublk_drv/parameters/ublks_max

# refused_why WHAT PATTERN ARGS...: refuse (exit 1, one line, no device
# added or left), the line matching PATTERN.
refused_why() {
	_rw_what=$1 _rw_pat=$2
	shift 2
	refuse 1 "$_rw_what" "$@"
	grep -q -- "$_rw_pat" "$T_TMP/r.err" || fail "$_rw_what: the line does not say '$_rw_pat'"
}

step "what the driver keeps from a user's device"
refused_why "--recoverable" "--recoverable needs root" 64M --recoverable
refused_why "--copy-mode user_copy" "user_copy needs root" 64M --copy-mode user_copy
refused_why "--copy-mode zero_copy" "zero_copy needs root" 64M --copy-mode zero_copy
refused_why "--zoned" "--zoned needs root" 64M --zoned

step "/dev/ublk-control closed to the user"
chmod 600 /dev/ublk-control
refused_why "no access to /dev/ublk-control" "Permission denied (run as root, or have root let users" 64M
chmod 660 /dev/ublk-control

step "io_uring closed to users"
if [ -e /proc/sys/kernel/io_uring_disabled ]; then
	set_sysctl /proc/sys/kernel/io_uring_disabled 1 || fail "cannot set kernel.io_uring_disabled"
	refused_why "kernel.io_uring_disabled=1" "io_uring is disabled" 64M
	set_sysctl /proc/sys/kernel/io_uring_disabled 0
else
	say "no kernel.io_uring_disabled here (before Linux 6.6)"
fi

step "the driver allows users no device (ublks_max=0)"
set_sysctl $MAX 0 || fail "cannot set $MAX"
refused_why "ublks_max=0" "lets no ordinary user make a device (its parameter ublks_max is 0)" 64M

step "the driver's cap reached (ublks_max=1)"
set_sysctl $MAX 1
start_ublk 16M
refused_why "a second device with ublks_max=1" "have made the 1 devices the ublk driver allows" 16M
stop_ublk
set_sysctl $MAX 64

step "nothing hands the node to the user"
stop_udev
before=$(ublk_nodes)
# shellcheck disable=SC2086 # RUN_AS: words
run_with_timeout 60 $RUN_AS "$UBLK_MEM" 16M >"$T_TMP/n.out" 2>"$T_TMP/n.err"
rc=$?
say "without the udev rule: exit $rc: $(cat "$T_TMP/n.err")"
expect_eq "$rc" 1 "exit status without the udev rule"
expect_eq "$(grep -c '' "$T_TMP/n.err")" 1 "lines on stderr without the udev rule"
grep -q "nothing hands users their devices' nodes" "$T_TMP/n.err" || fail "the line does not say what is missing"
[ -s "$T_TMP/n.out" ] && fail "it printed $(cat "$T_TMP/n.out")"
id=$(sed -n 's/.*root removes it: ublk-mem del \([0-9]*\)$/\1/p' "$T_TMP/n.err")
[ -n "$id" ] || fail "the line does not tell root how to remove the device"
[ -e "/dev/ublkc$id" ] || fail "the line names device $id, which does not exist"
expect_eq "$(node_owner "/dev/ublkc$id")" "0:0 600" "the node nobody handed over"
run_with_timeout 60 "$UBLK_MEM" del "$id" >/dev/null 2>"$T_TMP/del.err" ||
	fail "root cannot remove what was left: $(cat "$T_TMP/del.err")"
wait_gone "/dev/ublkc$id" || fail "/dev/ublkc$id remains after del"
expect_eq "$(ublk_nodes)" "$before" "ublk devices after root's del"
