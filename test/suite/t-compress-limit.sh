#!/bin/sh
# --mem-limit: once a compressed store holds that much memory, writes that
# need more fail with ENOSPC, said once on stderr; everything written
# before reads back, the server keeps serving, and once memory is freed
# (a discard) writes succeed again.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
case " ${UBLK_MEM_ARGS:-} " in *" zero_copy "*) skip "--compress does not serve zero_copy" ;; esac

start_ublk 64M --compress --mem-limit 8M
random_file "$T_TMP/a" $((4 * MiB))
random_file "$T_TMP/b" $((8 * MiB))

step "writes within the limit succeed"
write_at "$DEV" "$T_TMP/a" 0
expect_eq "$(stat_of "$SRV_ID" mem_limit)" $((8 * MiB)) "mem_limit in stats"

step "writes beyond it fail with ENOSPC; what was written stays"
dd if="$T_TMP/b" of="$DEV" bs=1M seek=16 oflag=direct conv=notrunc 2>"$T_TMP/dd.err" &&
	fail "8 MiB more of random data fit in an 8 MiB limit"
grep -q "No space left on device" "$T_TMP/dd.err" || fail "the refused write said: $(cat "$T_TMP/dd.err")"
used=$(stat_of "$SRV_ID" mem_used_total)
say "the store holds $used bytes under its 8 MiB limit"
[ "$used" -le $((8 * MiB)) ] || fail "the store holds $used bytes, more than its limit"
[ "$(stat_of "$SRV_ID" failed_writes)" -gt 0 ] || fail "stats counted no failed write"
expect_eq "$(dev_sha "$DEV" 0 $((4 * MiB)))" "$(sha_of "$T_TMP/a")" "the data written before the limit"
check_alive
grep -q "mem-limit" "$SRV_ERR" || fail "the server did not say why writes fail: $(cat "$SRV_ERR")"
expect_eq "$(grep -c "mem-limit" "$SRV_ERR")" 1 "lines saying the limit is reached"

step "after a discard, writes succeed again"
"$BLKDISCARD" -o 0 -l $((4 * MiB)) "$DEV" || fail "blkdiscard failed"
write_at "$DEV" "$T_TMP/a" $((32 * MiB))
expect_eq "$(dev_sha "$DEV" $((32 * MiB)) $((4 * MiB)))" "$(sha_of "$T_TMP/a")" "data written after the discard"
grep -q "writes succeed again" "$SRV_ERR" || fail "the server did not say writes succeed again"
check_alive
stop_ublk
