#!/bin/sh
# Every --copy-mode moves data correctly: fio verify with mixed sizes.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
need_ublk

for mode in get_data user_copy bounce; do
	step "--copy-mode $mode"
	start_ublk 32M --copy-mode $mode
	fio_verify $mode --rw=randwrite --bsrange=512-256k --iodepth=16 --size=16M
	check_alive
	stop_ublk
done
