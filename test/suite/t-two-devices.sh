#!/bin/sh
# Two servers at once keep their data apart, and stopping one leaves the
# other working.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

start_ublk 32M
dev1=$DEV pid1=$SRV_PID
start_ublk 48M
dev2=$DEV pid2=$SRV_PID
[ "$dev1" != "$dev2" ] || fail "both servers report $dev1"
expect_eq "$(dev_size "$dev1")" $((32 * MiB)) "size of $dev1"
expect_eq "$(dev_size "$dev2")" $((48 * MiB)) "size of $dev2"

step "different data on each"
random_file "$T_TMP/a" $((16 * MiB))
random_file "$T_TMP/b" $((16 * MiB))
write_at "$dev1" "$T_TMP/a" 0 &
write_at "$dev2" "$T_TMP/b" 0
wait $! || fail "writing $dev1 failed"
expect_eq "$(dev_sha "$dev1" 0 $((16 * MiB)))" "$(sha_of "$T_TMP/a")" "data of $dev1"
expect_eq "$(dev_sha "$dev2" 0 $((16 * MiB)))" "$(sha_of "$T_TMP/b")" "data of $dev2"

step "stop the first; the second still serves"
stop_server "$pid1" "$dev1" TERM
expect_eq "$(dev_sha "$dev2" 0 $((16 * MiB)))" "$(sha_of "$T_TMP/b")" "data of $dev2 after $dev1 stopped"
fio_verify second --size=8M --offset=24M
stop_server "$pid2" "$dev2" TERM
