#!/bin/sh
# Every --copy-mode moves data correctly: fio verify with mixed sizes.
# zero_copy runs where the driver has AUTO_BUF_REG (Linux 6.16); before it
# the mode is refused with one line naming the flag, and no device is left.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
need_ublk

modes="get_data user_copy bounce"
if has_feature AUTO_BUF_REG; then
	modes="$modes zero_copy"
else
	before=$(ublk_nodes)
	step "--copy-mode zero_copy: refused without AUTO_BUF_REG"
	run_with_timeout 30 "$UBLK_MEM" 32M --copy-mode zero_copy >"$T_TMP/z.out" 2>"$T_TMP/z.err"
	rc=$?
	say "exit $rc: $(cat "$T_TMP/z.err")"
	expect_eq "$rc" 1 "exit status of --copy-mode zero_copy without AUTO_BUF_REG"
	expect_eq "$(wc -l <"$T_TMP/z.err")" 1 "lines on stderr"
	grep -q 'lacks UBLK_F_AUTO_BUF_REG (Linux 6\.16): use another --copy-mode' "$T_TMP/z.err" ||
		fail "the refusal does not name AUTO_BUF_REG and Linux 6.16: $(cat "$T_TMP/z.err")"
	[ -s "$T_TMP/z.out" ] && fail "a device was announced: $(cat "$T_TMP/z.out")"
	expect_eq "$(ublk_nodes)" "$before" "ublk devices after the refusal"
fi

for mode in $modes; do
	step "--copy-mode $mode"
	start_ublk 32M --copy-mode "$mode"
	fio_verify "$mode" --rw=randwrite --bsrange=512-256k --iodepth=16 --size=16M
	check_alive
	stop_ublk
done
