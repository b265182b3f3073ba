#!/bin/sh
# A READ the backend fails (made to happen with the test hook
# UBLK_MEM_TEST_FAULT=read-error, for reads at byte 1 MiB) fails alone:
# the reader gets an I/O error, the server says why and keeps serving,
# and every other block reads back intact.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

UBLK_MEM_ENV=UBLK_MEM_TEST_FAULT=read-error
start_ublk 16M
UBLK_MEM_ENV=
random_file "$T_TMP/data" $((4 * MiB))
write_at "$DEV" "$T_TMP/data" 0

step "read the failing block"
dd if="$DEV" of=/dev/null bs=4k skip=256 count=1 iflag=direct 2>"$T_TMP/dd.err" &&
	fail "the read the backend failed succeeded"
say "the read failed: $(tail -n 1 "$T_TMP/dd.err")"
check_alive
grep -q "READ of 4096 bytes at 1048576 failed" "$SRV_ERR" ||
	fail "the server did not say which read failed: $(cat "$SRV_ERR")"

step "everything else still reads back"
# data_sha OFFSET LENGTH: sha256 of that part of what was written.
data_sha() {
	sha_stream "$2 bytes of $T_TMP/data at $1" "$2" \
		dd if="$T_TMP/data" bs=4k skip="$1" count="$2" iflag=skip_bytes,count_bytes
}
expect_eq "$(dev_sha "$DEV" 0 $((1 * MiB)))" "$(data_sha 0 $((1 * MiB)))" "the first MiB"
# The rest of the failing block's MiB, read as one request after it.
expect_eq "$(dev_sha "$DEV" $((1 * MiB + 4096)) $((1 * MiB - 4096)))" \
	"$(data_sha $((1 * MiB + 4096)) $((1 * MiB - 4096)))" "the rest of MiB 1, after the failing block"
expect_eq "$(dev_sha "$DEV" $((2 * MiB)) $((2 * MiB)))" "$(data_sha $((2 * MiB)) $((2 * MiB)))" "MiB 2 and 3"
fio_verify after --size=8M --offset=8M
check_alive
stop_ublk
