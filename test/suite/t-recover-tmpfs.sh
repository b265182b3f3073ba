#!/bin/sh
# The --recoverable store lives on tmpfs. Reading parts of the device that
# were never written allocates nothing there; a store larger than its tmpfs
# has room for is refused at start; and a tmpfs that fills up turns the
# writes that need new space into ENOSPC failures while the server keeps
# serving and the data already written stays intact.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

# store_kb PATH: KiB the file occupies.
store_kb() {
	echo $(($(stat -c %b "$1") * $(stat -c %B "$1") / 1024))
}

step "reading a fresh 256 MiB device allocates nothing in its store"
start_ublk 256M --recoverable
store=/dev/shm/ublk-mem-$SRV_ID
dd if="$DEV" of=/dev/null bs=1M iflag=direct 2>/dev/null || fail "an O_DIRECT read of $DEV failed"
dd if="$DEV" of=/dev/null bs=1M 2>/dev/null || fail "a buffered read of $DEV failed"
expect_eq "$(dev_sha "$DEV" $((200 * MiB)) $((16 * MiB)))" "$(zero_sha $((16 * MiB)))" \
	"16 MiB of the fresh device"
expect_eq "$(store_kb "$store")" 0 "KiB of $store after reading the whole device"
random_file "$T_TMP/one" $((1 * MiB))
write_at "$DEV" "$T_TMP/one" $((100 * MiB))
drop_caches
expect_eq "$(dev_sha "$DEV" $((99 * MiB)) $((3 * MiB)))" \
	"$( (head -c $((1 * MiB)) /dev/zero; cat "$T_TMP/one"; head -c $((1 * MiB)) /dev/zero) |
	sha256sum | cut -d' ' -f1)" "1 MiB written between holes"
kb=$(store_kb "$store")
[ "$kb" -le 2048 ] || fail "$store holds $kb KiB after 1 MiB was written"
stop_ublk

step "a store larger than its tmpfs is refused"
mkdir -p "$T_TMP/small"
mount -t tmpfs -o size=64M tmpfs "$T_TMP/small" || fail "cannot mount a tmpfs"
echo "$T_TMP/small" >>"$T_TMP/mounts"
before=$(ublk_nodes)
run_with_timeout 30 "$UBLK_MEM" 128M --recoverable --store "$T_TMP/small/s" \
	>"$T_TMP/big.out" 2>"$T_TMP/big.err"
rc=$?
expect_eq "$rc" 1 "exit status for a 128 MiB store on a 64 MiB tmpfs"
expect_eq "$(grep -c '' "$T_TMP/big.err")" 1 "lines on stderr"
say "refused: $(cat "$T_TMP/big.err")"
[ -e "$T_TMP/small/s" ] && fail "the refused store file was left behind"
expect_eq "$(ublk_nodes)" "$before" "ublk devices after the refusal"

step "a tmpfs that fills up fails writes with ENOSPC"
start_ublk 48M --recoverable --store "$T_TMP/small/s"
head -c $((40 * MiB)) /dev/zero >"$T_TMP/small/filler" || fail "cannot fill the tmpfs"
random_file "$T_TMP/src" $((48 * MiB))
dd if="$T_TMP/src" of="$DEV" bs=1M oflag=direct conv=notrunc >"$T_TMP/dd.out" 2>&1 &&
	fail "48 MiB fitted into a tmpfs with 24 MiB free"
grep -q "No space left on device" "$T_TMP/dd.out" ||
	fail "the failed write did not say ENOSPC: $(cat "$T_TMP/dd.out")"
done_mb=$(sed -n 's/^\([0-9]*\)+[0-9]* records out.*/\1/p' "$T_TMP/dd.out")
say "$done_mb MiB written before the tmpfs filled"
[ "${done_mb:-0}" -ge 8 ] || fail "only ${done_mb:-0} MiB fitted: $(cat "$T_TMP/dd.out")"
check_alive
expect_eq "$(dev_sha "$DEV" 0 $((done_mb * MiB)))" "$(sha_of "$T_TMP/src" $((done_mb * MiB)))" \
	"the $done_mb MiB written before the tmpfs filled"

step "room again: the rest of the writes land"
rm -f "$T_TMP/small/filler"
dd if="$T_TMP/src" of="$DEV" bs=1M oflag=direct conv=notrunc >"$T_TMP/dd2.out" 2>&1 ||
	fail "writing once the tmpfs had room failed: $(cat "$T_TMP/dd2.out")"
drop_caches
expect_eq "$(dev_sha "$DEV")" "$(sha_of "$T_TMP/src")" "the whole device"
stop_ublk
