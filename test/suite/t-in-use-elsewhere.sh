#!/bin/sh
# "In use" is what the kernel says, not what this mount namespace shows: a
# file system mounted on the device in another mount namespace (a
# container, a service with PrivateMounts), and a device-mapper target
# stacked on a partition of it, both hold the disk. A stop signal is then
# refused with one line saying why (the server keeps serving), and so is
# `del` without --force; once they let go, one signal stops the server.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
need_tool "$MKFS_EXT4" mkfs.ext4
SFDISK=$(first_tool /usr/sbin/sfdisk /sbin/sfdisk) || SFDISK=
DMSETUP=$(first_tool /usr/sbin/dmsetup /sbin/dmsetup) || DMSETUP=
need_tool "$SFDISK" sfdisk
need_tool "$DMSETUP" dmsetup

# refused_del WHAT: `ublk-mem del ID` without --force leaves the device.
refused_del() {
	refuse 1 "del while $1" del "$SRV_ID"
	grep -q "is in use" "$T_TMP/r.err" || fail "del did not say the device is in use: $(cat "$T_TMP/r.err")"
}

# serves: the server still answers reads of what was written.
serves() {
	check_alive
	expect_eq "$(dev_sha "$DEV" $((60 * MiB)) $((1 * MiB)))" "$(sha_of "$T_TMP/mark")" \
		"data read while the stop was refused"
}

start_ublk 64M
random_file "$T_TMP/mark" $((1 * MiB))
write_at "$DEV" "$T_TMP/mark" $((60 * MiB))

step "a file system mounted in another mount namespace"
"$MKFS_EXT4" -q -F "$DEV" 32M || fail "mkfs.ext4 failed"
mkdir -p "$T_TMP/mnt"
unshare -m sh -c "mount $DEV $T_TMP/mnt && echo mounted >$T_TMP/ns.ok && exec sleep 600" \
	>"$T_TMP/ns.log" 2>&1 &
ns=$!
echo $ns >>"$T_TMP/pids"
wait_until 30 test -s "$T_TMP/ns.ok" || fail "could not mount in a new namespace: $(cat "$T_TMP/ns.log")"
grep -q " $DEV " /proc/self/mountinfo && fail "the mount shows in this namespace: the test needs it elsewhere"
refused_stop "$SRV_PID" "$SRV_ERR" TERM
serves
refused_del "mounted in another namespace"
kill -TERM $ns
wait $ns 2>/dev/null
# The file system goes with its namespace's last process.
wait_gone "/proc/fs/ext4/${DEV#/dev/}" -t 30 || fail "the file system stayed mounted after its namespace ended"
stop_ublk
if grep -q "although it is in use" "$SRV_ERR"; then
	fail "the last stop was forced, not clean: $(cat "$SRV_ERR")"
fi

step "a device-mapper target on partition 1"
load_module dm_mod || fail "cannot load dm_mod"
wait_for /dev/mapper/control 10 || fail "no /dev/mapper/control"
start_ublk 64M
write_at "$DEV" "$T_TMP/mark" $((60 * MiB))
echo 'start=2048, size=61440, type=83' | "$SFDISK" -q "$DEV" >"$T_TMP/sfdisk.log" 2>&1 ||
	fail "sfdisk failed: $(cat "$T_TMP/sfdisk.log")"
"$BLOCKDEV" --rereadpt "$DEV" || fail "cannot reread the partition table"
wait_for "${DEV}p1" 10 || fail "no ${DEV}p1"
sectors=$("$BLOCKDEV" --getsz "${DEV}p1")
DM_DISABLE_UDEV=1 "$DMSETUP" create --noudevsync --noudevrules ublktest \
	--table "0 $sectors linear ${DEV}p1 0" >"$T_TMP/dm.log" 2>&1 ||
	fail "dmsetup create failed: $(cat "$T_TMP/dm.log")"
holders=$(ls "/sys/block/${DEV#/dev/}/${DEV#/dev/}p1/holders")
say "${DEV}p1 is held by $holders"
[ -n "$holders" ] || fail "the dm target does not hold ${DEV}p1"
refused_stop "$SRV_PID" "$SRV_ERR" TERM
grep -q "held by $holders" "$SRV_ERR" || fail "the refusal does not name $holders: $(tail -n 1 "$SRV_ERR")"
serves
refused_del "a dm target holds partition 1"
DM_DISABLE_UDEV=1 "$DMSETUP" remove --noudevsync ublktest || fail "dmsetup remove failed"
stop_ublk
if grep -q "although it is in use" "$SRV_ERR"; then
	fail "the last stop was forced, not clean: $(cat "$SRV_ERR")"
fi
