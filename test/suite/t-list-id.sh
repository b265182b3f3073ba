#!/bin/sh
# -n ID gives /dev/ublkbID; `ublk-mem list` shows id, pid and size of live
# devices; a second server asking for a taken id fails cleanly and leaves the
# first one alone.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

# list_line ID: the line of `ublk-mem list` for device ID.
list_line() {
	run_with_timeout 30 "$UBLK_MEM" list >"$T_TMP/list" 2>&1 ||
		fail "ublk-mem list failed: $(cat "$T_TMP/list")"
	awk -v id="$1" '$1 == id' "$T_TMP/list"
}

step "-n 7"
[ -e /dev/ublkc7 ] && skip "device 7 exists already"
start_ublk 64M -n 7
expect_eq "$DEV" /dev/ublkb7 "device for -n 7"
pid7=$SRV_PID
start_ublk 32M -q 2 -d 64
other=$SRV_ID
[ "$other" != 7 ] || fail "a second server also got id 7"

step "ublk-mem list"
line=$(list_line 7)
say "list: $line"
[ -n "$line" ] || fail "ublk-mem list does not show device 7: $(cat "$T_TMP/list")"
# shellcheck disable=SC2086 # split the fields
set -- $line
expect_eq "$3" "$pid7" "server pid of device 7 in list"
case $4 in 64M | 67108864 | 65536K) ;; *) fail "size of device 7 in list: '$4'" ;; esac
line=$(list_line "$other")
say "list: $line"
# shellcheck disable=SC2086 # split the fields
set -- $line
expect_eq "$3" "$SRV_PID" "server pid of device $other in list"
case $4 in 32M | 33554432 | 32768K) ;; *) fail "size of device $other in list: '$4'" ;; esac
expect_eq "$5 $6" "2 64" "queues and depth of device $other in list"

step "asking for id 7 again fails cleanly"
random_file "$T_TMP/data" $((4 * MiB))
write_at /dev/ublkb7 "$T_TMP/data" 0
before=$(ublk_nodes)
timeout 30 "$UBLK_MEM" 16M -n 7 >"$T_TMP/dup.out" 2>"$T_TMP/dup.err" </dev/null
rc=$?
say "second -n 7: exit $rc: $(cat "$T_TMP/dup.err")"
[ $rc = 1 ] || [ $rc = 2 ] || fail "a second -n 7 exited with status $rc"
[ -s "$T_TMP/dup.err" ] || fail "a second -n 7 said nothing on stderr"
grep -q ublkb "$T_TMP/dup.out" && fail "a second -n 7 printed a device: $(cat "$T_TMP/dup.out")"
expect_eq "$(ublk_nodes)" "$before" "ublk devices after the refused -n 7"
expect_eq "$(dev_sha /dev/ublkb7 0 $((4 * MiB)))" "$(sha_of "$T_TMP/data")" "data of device 7"
expect_eq "$(dev_size /dev/ublkb7)" $((64 * MiB)) "size of device 7"

stop_ublk
stop_server "$pid7" /dev/ublkb7 TERM
[ -z "$(list_line 7)" ] || fail "ublk-mem list still shows 7 after it stopped"
