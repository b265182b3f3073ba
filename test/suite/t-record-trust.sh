#!/bin/sh
# A store's record (/run/ublk-mem/ID) names the file `del` may remove and
# `recover` takes: it is believed only when nobody but root could have
# written it. A record in a directory others may enter, or a record file
# of another user, is ignored; put right, it counts again.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

start_ublk 16M --recoverable
id=$SRV_ID
store=/dev/shm/ublk-mem-$id

# store_listed: the store `list --json` names for the device ("null" if none).
store_listed() {
	run_with_timeout 30 "$UBLK_MEM" list --json |
		grep "\"id\":$id," | sed -E 's/.*"store":(null|"[^"]*").*/\1/'
}

expect_eq "$(store_listed)" "\"$store\"" "the store of a recorded device"
step "a record directory others may enter is not believed"
chmod 0755 /run/ublk-mem || fail "cannot change /run/ublk-mem"
expect_eq "$(store_listed)" null "the store while /run/ublk-mem is 0755"
chmod 0700 /run/ublk-mem
expect_eq "$(store_listed)" "\"$store\"" "the store once /run/ublk-mem is 0700 again"
step "a record file of another user is not believed"
chown 65534 "/run/ublk-mem/$id" || fail "cannot change the record's owner"
expect_eq "$(store_listed)" null "the store of a record that is not root's"
chown 0 "/run/ublk-mem/$id"
expect_eq "$(store_listed)" "\"$store\"" "the store of a record that is root's again"
stop_ublk
