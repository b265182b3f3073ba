#!/bin/sh
# Every --copy-mode moves data correctly: fio verify with mixed sizes.
# zero_copy runs where the driver has AUTO_BUF_REG (Linux 6.16); before it
# the mode is refused with one line naming the flag, and no device is left.
# Without --copy-mode a device serves get_data from anonymous memory, on
# every kernel (zero_copy's memfd store only when asked for).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
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

case " ${UBLK_MEM_ARGS:-} " in
*" --copy-mode "*) say "UBLK_MEM_ARGS ($UBLK_MEM_ARGS) names the copy mode: the default is not checked" ;;
*)
	step "no --copy-mode: get_data"
	start_ublk 32M
	expect_eq "$(copy_mode_of "$SRV_ID")" get_data "the copy mode of a device made without --copy-mode"
	for fd in "/proc/$SRV_PID/fd/"*; do
		case $(readlink "$fd") in
		/memfd:ublk-mem*) fail "a get_data server keeps its store in a memfd, zero_copy's store" ;;
		esac
	done
	"$UBLK_MEM" features | grep -q "^NEED_GET_DATA .*get_data (the default)" ||
		fail "ublk-mem features does not call get_data the default: $("$UBLK_MEM" features | grep "^NEED_GET_DATA")"
	fio_verify default --rw=randrw --bsrange=512-128k --iodepth=16 --size=16M
	stop_ublk
	;;
esac

for mode in $modes; do
	step "--copy-mode $mode"
	start_ublk 32M --copy-mode "$mode"
	# The mode the kernel's device flags show (a --copy-mode in
	# UBLK_MEM_ARGS comes after this one, and wins).
	# shellcheck disable=SC2086 # a list of options
	want=$(args_copy_mode --copy-mode "$mode" ${UBLK_MEM_ARGS:-})
	expect_eq "$(copy_mode_of "$SRV_ID")" "$want" "the copy mode of a device made with --copy-mode $mode"
	fio_verify "$mode" --rw=randwrite --bsrange=512-256k --iodepth=16 --size=16M
	check_alive
	stop_ublk
done
