#!/bin/sh
# A user's device is that user's: a second user can neither open it nor
# delete, resize or restart it, and is told whose it is in one line; the
# second user's `list` shows it as private, with its owner. The owner
# resizes it through the server's socket in the owner's runtime directory
# (where the driver has UPDATE_SIZE, Linux 6.16; before, the server
# answers why not), and so may root. Root deletes it, and its server ends.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
users_setup
start_udev "$UBLK_MEM" chown

# refused_to AS WHAT ARGS...: `ublk-mem ARGS` as user AS fails with exit
# status 1 and one line that names USER1 as the owner; the device stays.
refused_to() {
	_as=$1 _what=$2
	shift 2
	# shellcheck disable=SC2046 # words
	run_with_timeout 30 $(user_words "$_as") "$UBLK_MEM" "$@" >"$T_TMP/o.out" 2>"$T_TMP/o.err"
	_rc=$?
	say "$_what: exit $_rc: $(cat "$T_TMP/o.err")"
	expect_eq "$_rc" 1 "exit status of $_what"
	expect_eq "$(grep -c '' "$T_TMP/o.err")" 1 "lines on stderr of $_what"
	grep -q "belongs to $USER1 (uid $UID1)" "$T_TMP/o.err" || fail "$_what does not name the owner"
	[ -b "$DEV" ] || fail "$DEV is gone after $_what"
	check_alive
}

step "$USER1 makes a device and writes to it"
as_user $UID1
start_ublk 64M
random_file "$T_TMP/data" $((4 * MiB))
chmod 644 "$T_TMP/data"
user_run $UID1 dd if="$T_TMP/data" of="$DEV" bs=1M oflag=direct 2>"$T_TMP/dd.err" ||
	fail "$USER1 cannot write to $DEV: $(cat "$T_TMP/dd.err")"

step "$USER2 cannot open it"
user_run $UID2 dd if="$DEV" of=/dev/null bs=4k count=1 2>"$T_TMP/dd2.err" &&
	fail "$USER2 read $DEV"
say "$USER2 reading $DEV: $(cat "$T_TMP/dd2.err")"
user_run $UID2 dd if="$T_TMP/data" of="$DEV" bs=4k count=1 2>/dev/null &&
	fail "$USER2 wrote to $DEV"

step "$USER2 cannot delete, resize or restart it"
refused_to $UID2 "del by $USER2" del "$SRV_ID"
refused_to $UID2 "del --force by $USER2" del --force "$SRV_ID"
refused_to $UID2 "resize by $USER2" resize "$SRV_ID" 128M
refused_to $UID2 "restart by $USER2" restart "$SRV_ID"
user_run $UID2 "$UBLK_MEM" list >"$T_TMP/list2" 2>&1 || fail "list as $USER2 failed: $(cat "$T_TMP/list2")"
expect_eq "$(awk -v id="$SRV_ID" '$1 == id { print $2, $7 }' "$T_TMP/list2")" "private $USER1" \
	"device $SRV_ID in $USER2's list"

step "$USER1 and root resize it"
if has_feature UPDATE_SIZE; then
	# shellcheck disable=SC2046 # words
	run_with_timeout 60 $(user_words $UID1) "$UBLK_MEM" resize "$SRV_ID" 128M >"$T_TMP/rs.out" 2>"$T_TMP/rs.err" ||
		fail "resize by $USER1 failed: $(cat "$T_TMP/rs.err")"
	expect_eq "$(dev_size "$DEV")" $((128 * MiB)) "size after $USER1's resize"
	run_with_timeout 60 "$UBLK_MEM" resize "$SRV_ID" 192M >"$T_TMP/rs.out" 2>"$T_TMP/rs.err" ||
		fail "resize by root failed: $(cat "$T_TMP/rs.err")"
	expect_eq "$(dev_size "$DEV")" $((192 * MiB)) "size after root's resize"
else
	# The answer comes from the server: its socket was found.
	# shellcheck disable=SC2046 # words
	run_with_timeout 60 $(user_words $UID1) "$UBLK_MEM" resize "$SRV_ID" 128M >"$T_TMP/rs.out" 2>"$T_TMP/rs.err" &&
		fail "resize without UPDATE_SIZE succeeded"
	grep -q UPDATE_SIZE "$T_TMP/rs.err" || fail "the server did not answer $USER1: $(cat "$T_TMP/rs.err")"
fi
[ -S "/run/user/$UID1/ublk-mem/$SRV_ID.sock" ] ||
	fail "no control socket in $USER1's runtime directory: $(ls -l "/run/user/$UID1/ublk-mem")"
expect_eq "$(stat -c '%u %a' "/run/user/$UID1/ublk-mem")" "$UID1 700" \
	"owner and mode of the socket's directory"
expect_eq "$(dev_sha "$DEV" 0 $((4 * MiB)))" "$(sha_of "$T_TMP/data")" "data after the resizes"

step "root deletes it"
run_with_timeout 60 "$UBLK_MEM" del "$SRV_ID" >"$T_TMP/del.out" 2>"$T_TMP/del.err" ||
	fail "root's del failed: $(cat "$T_TMP/del.err")"
wait_gone "$DEV" "/dev/ublkc$SRV_ID" || fail "$DEV remains after root's del"
wait_exit "$SRV_PID" 30 "the server of the deleted device"
wait "$SRV_PID"
say "the server ended with status $?: $(tail -n 1 "$SRV_ERR")"
grep -q "stopped by someone else" "$SRV_ERR" || fail "the server does not say its device was taken: $(cat "$SRV_ERR")"
[ -e "/run/user/$UID1/ublk-mem/$SRV_ID.sock" ] && fail "the server left its socket behind"
true
