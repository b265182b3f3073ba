#!/bin/sh
# 1 MiB sequential writes over the whole device, verified.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

start_ublk 64M
step "1 MiB sequential writes and verify over 64 MiB"
fio_verify seq1m --rw=write --bs=1M --iodepth=8 --size=64M
check_alive
stop_ublk
