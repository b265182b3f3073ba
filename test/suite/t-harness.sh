#!/bin/sh
# The checks the other tests rely on do catch bad data: fio's crc32c verify
# and a sha256 comparison both notice one corrupted block, and dev_sha
# fails the test on a short read instead of hashing what it got (on a brd
# RAM disk, no ublk involved).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || skip "needs root"
# The VM has brd.ko: there, no RAM disk is a failure.
no_brd() {
	[ "${UBLKMEM_VM:-0}" = 1 ] && fail "$1 in the test VM"
	skip "$1"
}
[ -e /dev/ram0 ] || load_module brd rd_size=65536 rd_nr=1 2>/dev/null || no_brd "no brd module"
wait_for /dev/ram0 10 || no_brd "no /dev/ram0"
DEV=/dev/ram0

step "fio crc32c verify passes on good data"
fio_verify harness-write --size=8M
fio_verify_only harness-check --size=8M

step "fio verify fails after one 4 KiB block is overwritten"
random_file "$T_TMP/junk" 4096
write_at "$DEV" "$T_TMP/junk" $((1 * MiB))
if (cd "$T_TMP" && "$FIO" --name=corrupt --filename="$DEV" --ioengine=libaio --direct=1 \
	--rw=randwrite --bs=4k --iodepth=32 --size=8M --verify=crc32c --verify_only \
	--verify_fatal=1 --verify_state_save=0) >"$T_TMP/fio.log" 2>&1; then
	fail "fio verify did not notice a corrupted block"
fi
grep -q -i 'verify' "$T_TMP/fio.log" || fail "fio failed, but not on verify: $(tail -n 3 "$T_TMP/fio.log")"

step "sha256 of a device range notices the same block"
before=$(dev_sha "$DEV" 0 $((2 * MiB)))
first=$(dev_sha "$DEV" 0 512)
random_file "$T_TMP/junk2" 512
write_at "$DEV" "$T_TMP/junk2" $((1 * MiB + 512))
after=$(dev_sha "$DEV" 0 $((2 * MiB)))
[ "$before" != "$after" ] || fail "sha256 did not change after a write"
expect_eq "$(dev_sha "$DEV" 0 512)" "$first" "the first 512 bytes, not written"
expect_eq "$(dev_sha "$DEV" $((1 * MiB + 512)) 512)" "$(sha_of "$T_TMP/junk2")" "the 512 bytes written"

step "dev_sha fails the test on a short read"
# In a subshell with a scratch directory of its own, so that its fail
# ends the subshell only; it must leave its mark there.
size=$(dev_size "$DEV")
sub=$T_TMP/sub
mkdir "$sub"
# shellcheck disable=SC2030 # the subshell's own T_TMP is the point
(T_OUT='' T_TMP=$sub && dev_sha "$DEV" $((size - 4096)) 8192) >"$sub.out" 2>&1 &&
	fail "dev_sha of 8 KiB from 4 KiB before the end of $DEV succeeded: $(cat "$sub.out")"
grep -q "4096 bytes read of 8192" "$sub/failed" ||
	fail "dev_sha did not say it read too little: $(cat "$sub.out")"
say "dev_sha said: $(head -n 1 "$sub/failed")"
