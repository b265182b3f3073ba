#!/bin/sh
# A compressed --recoverable device keeps every byte across kill -9 of its
# server under fio verify (`recover`), across a planned `restart` (its
# --mem-limit kept), across a resize, and when its record is gone (the
# store is recognised as compressed by its header); a clean stop removes
# the store.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
case " ${UBLK_MEM_ARGS:-} " in *" zero_copy "*) skip "--compress does not serve zero_copy" ;; esac

start_ublk 64M --compress --recoverable --mem-limit 48M
id=$SRV_ID
store=/dev/shm/ublk-mem-$id

step "kill -9 under fio verify, then recover"
fio_across crash "$DEV"
kill -KILL "$SRV_PID"
wait "$SRV_PID" 2>/dev/null
recover_dev "$id"
fio_across_done crash "kill -9 and recover of a compressed device"
expect_eq "$(stat_of "$id" compressed)" 1 "the recovered store is compressed"
expect_eq "$(stat_of "$id" mem_limit)" $((48 * MiB)) "the recovered store's --mem-limit"
[ "$(stat_of "$id" orig_data_size)" -gt 0 ] || fail "the recovered store counts no data"

step "restart while fio verifies"
old=$SRV_PID
fio_across restart "$DEV"
run_with_timeout 120 "$UBLK_MEM" restart "$id" >"$T_TMP/restart.out" 2>"$T_TMP/restart.err" ||
	fail "ublk-mem restart $id failed: $(cat "$T_TMP/restart.err")"
say "restart: $(cat "$T_TMP/restart.err")"
wait_exit "$old" 30 "the old server" "the restart"
SRV_PID=$(server_of "$DEV")
{ [ -n "$SRV_PID" ] && [ "$SRV_PID" != "$old" ]; } || fail "no new server for $DEV"
echo "$SRV_PID" >>"$T_TMP/pids"
fio_across_done restart "a restart of a compressed device"
expect_eq "$(stat_of "$id" compressed)" 1 "the new server's store is compressed"
expect_eq "$(stat_of "$id" mem_limit)" $((48 * MiB)) "the new server's --mem-limit"

if has_feature UPDATE_SIZE; then
	step "grow to 128M, write past the old end, shrink to 96M"
	random_file "$T_TMP/tail" $((4 * MiB))
	before=$(dev_sha "$DEV" 0 $((32 * MiB)))
	run_with_timeout 60 "$UBLK_MEM" resize "$id" 128M >/dev/null 2>"$T_TMP/rs.err" ||
		fail "growing failed: $(cat "$T_TMP/rs.err")"
	expect_eq "$(dev_size "$DEV")" $((128 * MiB)) "the size after growing"
	write_at "$DEV" "$T_TMP/tail" $((100 * MiB))
	run_with_timeout 60 "$UBLK_MEM" resize --force "$id" 96M >/dev/null 2>"$T_TMP/rs.err" ||
		fail "shrinking failed: $(cat "$T_TMP/rs.err")"
	expect_eq "$(dev_size "$DEV")" $((96 * MiB)) "the size after shrinking"
	expect_eq "$(dev_sha "$DEV" 0 $((32 * MiB)))" "$before" "the data below the old end"
	run_with_timeout 60 "$UBLK_MEM" resize "$id" 128M >/dev/null 2>"$T_TMP/rs.err" ||
		fail "growing again failed: $(cat "$T_TMP/rs.err")"
	expect_eq "$(dev_sha "$DEV" $((100 * MiB)) $((4 * MiB)))" "$(zero_sha $((4 * MiB)))" \
		"what the shrink cut off reads as zeros after growing again"
fi

step "kill -9, the record lost: the store is found to be compressed"
sum=$(dev_sha "$DEV")
kill -KILL "$SRV_PID"
wait_exit "$SRV_PID" 30 "the server" "kill -9"
rm -f "/run/ublk-mem/$id" || fail "cannot remove the record"
recover_dev "$id"
grep -q "holds a compressed store" "$SRV_ERR" || fail "recover did not say it found a compressed store: $(cat "$SRV_ERR")"
expect_eq "$(dev_sha "$DEV")" "$sum" "the device after recovering without a record"
expect_eq "$(stat_of "$id" compressed)" 1 "compressed, after recovering without a record"

step "a clean stop removes the store"
kill -TERM "$SRV_PID"
wait_exit "$SRV_PID" 30 ublk-mem SIGTERM
wait_gone "$DEV" "$store" || fail "the device or its store remains after a clean stop"
