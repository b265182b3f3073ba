#!/bin/sh
# `ublk-mem list --json` is one JSON array that jq parses, one object per
# device, agreeing with the plain table (still the default): id, device,
# state, pid, size in bytes, block size, queues, depth, copy mode,
# recoverable, flags, and the store of a recoverable device. A killed
# recoverable server shows as "recoverable"; an id held by a mounted file
# system as "removed"; no device at all is [].
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
JQ=$(first_tool /usr/bin/jq /bin/jq) || {
	[ "${UBLKMEM_VM:-0}" = 1 ] && fail "no jq in the test VM (test/vm/initramfs.sh adds it)"
	skip "jq is not installed"
}

# list_json: `ublk-mem list --json` into $T_TMP/list.json; it must parse
# as an array.
list_json() {
	run_with_timeout 30 "$UBLK_MEM" list --json >"$T_TMP/list.json" 2>"$T_TMP/list.err" ||
		fail "ublk-mem list --json failed: $(cat "$T_TMP/list.err")"
	"$JQ" -e 'type == "array"' "$T_TMP/list.json" >/dev/null ||
		fail "ublk-mem list --json is not a JSON array: $(head -c 500 "$T_TMP/list.json")"
}

# dev_json ID FILTER: FILTER applied to device ID's object (jq -c).
dev_json() {
	"$JQ" -c --argjson id "$1" ".[] | select(.id == \$id) | $2" "$T_TMP/list.json"
}

step "two devices, one of them recoverable"
start_ublk 64M -q 2 -d 64 -b 4096 --copy-mode bounce
a=$SRV_ID
a_pid=$SRV_PID
start_ublk 32M --recoverable --store "$T_TMP/store" --copy-mode get_data
b=$SRV_ID
b_pid=$SRV_PID
b_dev=$DEV
list_json
say "list --json: $(cat "$T_TMP/list.json")"
expect_eq "$(dev_json "$a" '[.device, .state, .pid, .size, .block_size, .queues, .depth, .copy_mode, .recoverable, .store]')" \
	"[\"/dev/ublkb$a\",\"live\",$a_pid,$((64 * MiB)),4096,2,64,\"bounce\",false,null]" \
	"device $a in list --json"
expect_eq "$(dev_json "$b" '[.device, .state, .pid, .size, .block_size, .queues, .depth, .copy_mode, .recoverable, .store]')" \
	"[\"/dev/ublkb$b\",\"live\",$b_pid,$((32 * MiB)),512,1,128,\"get_data\",true,\"$T_TMP/store\"]" \
	"device $b in list --json"
expect_eq "$(dev_json "$b" '.flags | map(select(. == "USER_RECOVERY" or . == "USER_RECOVERY_REISSUE" or . == "NEED_GET_DATA")) | sort')" \
	'["NEED_GET_DATA","USER_RECOVERY","USER_RECOVERY_REISSUE"]' "flags of device $b"
expect_eq "$(dev_json "$a" '.flags | map(select(test("RECOVERY|GET_DATA|USER_COPY")))')" '[]' \
	"flags of device $a (bounce, not recoverable)"
expect_eq "$(dev_json "$a" '.flags | all(type == "string")')" true "flags are names"

step "the JSON and the table list the same devices"
run_with_timeout 30 "$UBLK_MEM" list >"$T_TMP/list.txt" || fail "ublk-mem list failed"
head -n 1 "$T_TMP/list.txt" | grep -q '^ID  *STATE  *PID' || fail "the plain table is not the default: $(cat "$T_TMP/list.txt")"
expect_eq "$("$JQ" -r '.[] | "\(.id) \(.state) \(.pid)"' "$T_TMP/list.json")" \
	"$(awk 'NR > 1 { print $1, $2, $3 }' "$T_TMP/list.txt")" "id, state and pid in both lists"

step "a killed recoverable server: state recoverable, its store kept"
kill -KILL "$b_pid"
wait_exit "$b_pid" 30 "the recoverable server" SIGKILL
wait "$b_pid"
i=0
while list_json && [ "$(dev_json "$b" .state)" != '"recoverable"' ]; do
	[ $i -ge 100 ] && fail "device $b is not listed as recoverable 10 s after SIGKILL: $(cat "$T_TMP/list.json")"
	sleep 0.1
	i=$((i + 1))
done
expect_eq "$(dev_json "$b" '[.recoverable, .store]')" "[true,\"$T_TMP/store\"]" \
	"recoverable and store of the dead server's device"
run_with_timeout 60 "$UBLK_MEM" del "$b" >/dev/null 2>&1 || fail "ublk-mem del $b failed"
wait_gone "$b_dev" || fail "$b_dev remains after del"
list_json
expect_eq "$(dev_json "$b" .id)" "" "device $b in list --json after del"

step "an id held by a mounted file system: removed"
if [ -n "$MKFS_EXT4" ]; then
	start_ublk 16M
	c=$SRV_ID
	"$MKFS_EXT4" -q -F "$DEV" || fail "mkfs.ext4 failed"
	mount_dev "$DEV" "$T_TMP/mnt"
	# Mounted, the device takes two stop signals (see t-stop-mounted).
	refused_stop "$SRV_PID" "$SRV_ERR" TERM
	kill -TERM "$SRV_PID"
	wait_exit "$SRV_PID" 60 ublk-mem SIGTERM
	wait "$SRV_PID"
	list_json
	expect_eq "$(dev_json "$c" '[.device, .state, .pid, .size, .flags, .store]')" \
		"[\"/dev/ublkb$c\",\"removed\",null,null,[],null]" "the held id $c in list --json"
	umount "$T_TMP/mnt" || fail "cannot unmount"
else
	[ "${UBLKMEM_VM:-0}" = 1 ] && fail "no mkfs.ext4 in the test VM"
	say "no mkfs.ext4: not checking a held id"
fi

step "no devices: []"
stop_server "$a_pid" "/dev/ublkb$a" TERM
i=0
while [ -n "$(ublk_nodes)" ] && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
if [ -z "$(ublk_nodes)" ]; then
	list_json
	expect_eq "$("$JQ" -c . "$T_TMP/list.json")" '[]' "list --json without devices"
else
	# run.sh runs one test at a time: in the VM no other device exists.
	[ "${UBLKMEM_VM:-0}" = 1 ] && fail "devices remain in the test VM: $(ublk_nodes)"
	say "other devices exist: not checking the empty list"
fi

step "list takes no other argument"
run_with_timeout 30 "$UBLK_MEM" list --yaml >/dev/null 2>"$T_TMP/bad.err"
expect_eq "$?" 2 "exit status of ublk-mem list --yaml"
