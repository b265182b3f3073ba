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
	step "--copy-mode zero_copy: refused without AUTO_BUF_REG"
	refuse 1 "--copy-mode zero_copy without AUTO_BUF_REG" 32M --copy-mode zero_copy
	grep -q 'lacks UBLK_F_AUTO_BUF_REG (Linux 6\.16): use another --copy-mode' "$T_TMP/r.err" ||
		fail "the refusal does not name AUTO_BUF_REG and Linux 6.16: $(cat "$T_TMP/r.err")"
fi

for mode in $modes; do
	step "--copy-mode $mode"
	start_ublk 32M --copy-mode "$mode"
	fio_verify "$mode" --rw=randwrite --bsrange=512-256k --iodepth=16 --size=16M
	check_alive
	stop_ublk
done
