#!/bin/sh
# 4 KiB random writes at queue depth 32 (libaio, O_DIRECT) come back intact,
# both in fio's own verify pass and in a second, separate fio run.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

start_ublk 64M
step "write 32 MiB in random 4 KiB blocks at QD32, then verify"
fio_verify rand4k --size=32M
step "verify the same data again from a new fio process"
drop_caches
fio_verify_only rand4k --size=32M
check_alive
stop_ublk
