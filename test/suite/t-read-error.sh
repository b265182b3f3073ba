#!/bin/sh
# A READ the backend fails (made to happen with the test hook
# UBLK_MEM_TEST_FAULT=read-error, for reads at byte 1 MiB) fails alone:
# the reader gets an I/O error, the server says why and keeps serving,
# and every other block reads back intact.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
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
expect_eq "$(dev_sha "$DEV" 0 $((1 * MiB)))" "$(sha_of "$T_TMP/data" $((1 * MiB)))" "the first MiB"
expect_eq "$(dd if="$DEV" bs=1M skip=2 count=2 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)" \
	"$(dd if="$T_TMP/data" bs=1M skip=2 count=2 2>/dev/null | sha256sum | cut -d' ' -f1)" "MiB 2 and 3"
fio_verify after --size=8M --offset=8M
check_alive
stop_ublk
