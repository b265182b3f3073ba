#!/bin/sh
# `ublk-mem chown`, run as udev's rule runs it (DEVNAME=/dev/ublkcN,
# ACTION=add, ...), hands the nodes of a user's device to that user as
# they appear, mode 0600, and the device's server waits for that before it
# uses them: /dev/ublkcN before SET_PARAMS, /dev/ublkbN before it prints
# the path. It hands the disk over again after a change event; it leaves
# remove events, partitions and root's devices alone; it refuses what is
# not a ublk device's node, and a link planted at one, leaving their
# targets as they were. `ublk-mem chown ID`, by hand, hands both nodes
# over. mdev, as the kernel's hotplug helper, with the lines the README
# gives, does it all the same, and opens /dev/ublk-control to the group.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
users_setup
MDEV=$(first_tool /sbin/mdev /bin/mdev /usr/sbin/mdev /usr/bin/mdev) || MDEV=
need_tool "$MDEV" mdev

# chown_as_udev ACTION NODE [VAR=VALUE...]: run `ublk-mem chown` with the
# environment udev gives a RUN+= program for NODE (and VARs); its status.
chown_as_udev() {
	_ca_action=$1 _ca_node=$2
	shift 2
	_ca_name=${_ca_node#/dev/}
	case $_ca_name in
	ublkc*) set -- SUBSYSTEM=ublk-char DEVPATH="/devices/virtual/ublk-char/$_ca_name" "$@" ;;
	*) set -- SUBSYSTEM=block DEVPATH="/devices/virtual/block/$_ca_name" "$@" ;;
	esac
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin ACTION="$_ca_action" DEVNAME="$_ca_node" \
		SEQNUM=1 "$@" "$UBLK_MEM" chown >"$T_TMP/chown.out" 2>"$T_TMP/chown.err"
}

# chowned NODE ACTION STATUS LINES: chown_as_udev ACTION NODE ended with
# STATUS, having printed LINES lines on stderr and nothing on stdout.
chowned() {
	chown_as_udev "$2" "$1"
	_cd_rc=$?
	say "chown for $2 of $1: exit $_cd_rc $(cat "$T_TMP/chown.err")"
	expect_eq "$_cd_rc" "$3" "exit status of chown for $2 of $1"
	expect_eq "$(grep -c '' "$T_TMP/chown.err")" "$4" "lines on stderr of chown for $2 of $1"
	[ -s "$T_TMP/chown.out" ] && fail "chown printed: $(cat "$T_TMP/chown.out")"
	true
}

# new_cdev: the /dev/ublkcN that is not in $before, if any.
new_cdev() {
	ublk_nodes | grep '^/dev/ublkc' | grep -v -x -F "$before" | head -n 1
}
has_new_cdev() { [ -n "$(new_cdev)" ]; }

step "a user's device waits for its node"
before=$(ublk_nodes)
[ -n "$before" ] || before=none
as_user $UID1
SRV_OUT=$T_TMP/srv.out SRV_ERR=$T_TMP/srv.err
# shellcheck disable=SC2086 # RUN_AS: words
$RUN_AS "$UBLK_MEM" 64M >"$SRV_OUT" 2>"$SRV_ERR" &
SRV_PID=$!
echo "$SRV_PID" >>"$T_TMP/pids"
wait_until 10 has_new_cdev || fail "no new /dev/ublkcN 10 s after the user's ublk-mem started"
cdev=$(new_cdev)
id=${cdev#/dev/ublkc}
expect_eq "$(node_owner "$cdev")" "0:0 600" "owner of $cdev as the driver makes it"
check_alive
[ -e "/dev/ublkb$id" ] && fail "/dev/ublkb$id exists before the server could use $cdev"

step "chown as udev runs it: $cdev"
chowned "$cdev" add 0 0
expect_eq "$(node_owner "$cdev")" "$UID1:$UID1 600" "owner and mode of $cdev"

step "then the disk"
DEV=/dev/ublkb$id
wait_for "$DEV" 30 || fail "$DEV did not appear once $cdev was the user's: $(cat "$SRV_ERR")"
check_alive
[ -s "$SRV_OUT" ] && fail "the server printed $(cat "$SRV_OUT") before $DEV was the user's"
chowned "$DEV" add 0 0
expect_eq "$(node_owner "$DEV")" "$UID1:$UID1 600" "owner and mode of $DEV"
wait_until 10 grep -q -x "$DEV" "$SRV_OUT" || fail "the server did not print $DEV: $(cat "$SRV_ERR")"
[ -s "$SRV_ERR" ] && fail "the server said: $(cat "$SRV_ERR")"
random_file "$T_TMP/data" $((1 * MiB))
chmod 644 "$T_TMP/data"
user_run $UID1 dd if="$T_TMP/data" of="$DEV" bs=1M oflag=direct 2>/dev/null || fail "the user cannot write $DEV"
expect_eq "$(user_run $UID1 dd if="$DEV" bs=1M count=1 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)" \
	"$(sha_of "$T_TMP/data")" "what the user wrote, read back by the user"

step "a change event hands the disk over again"
chgrp 6 "$DEV" && chmod 660 "$DEV"	# what udev's default rules do on a change
chowned "$DEV" change 0 0
expect_eq "$(node_owner "$DEV")" "$UID1:$UID1 600" "owner and mode of $DEV after a change"

step "remove events and partitions: nothing to do"
chown 0:0 "$DEV"
chowned "$DEV" remove 0 0
expect_eq "$(node_owner "$DEV")" "0:0 600" "owner of $DEV after a remove event"
chowned "${DEV}p1" add 0 0

step "what is not a ublk device's node: refused, left as it is"
null_was=$(node_owner /dev/null)
chowned /dev/null add 1 1
expect_eq "$(node_owner /dev/null)" "$null_was" "/dev/null after chown"
passwd_was=$(node_owner /etc/passwd)
chowned /dev/../etc/passwd add 1 1
chowned "/dev/ublkc$id/../../etc/passwd" add 1 1
expect_eq "$(node_owner /etc/passwd)" "$passwd_was" "/etc/passwd after chown"

step "a link planted at the disk's node: refused, its target untouched"
mv "$DEV" "$DEV.real" || fail "cannot move $DEV"
undo_at_exit "[ -L $DEV ] && rm -f $DEV && mv $DEV.real $DEV"
ln -s /etc/passwd "$DEV"
chowned "$DEV" add 1 1
grep -q "not the device's node" "$T_TMP/chown.err" || fail "chown does not say the node is not the device's"
expect_eq "$(node_owner /etc/passwd)" "$passwd_was" "/etc/passwd after chown of a link to it"
{ rm -f "$DEV" && mv "$DEV.real" "$DEV"; } || fail "cannot put $DEV back"

step "by hand: ublk-mem chown $id"
chown 0:0 "$cdev" "$DEV"
run_with_timeout 30 "$UBLK_MEM" chown "$id" >"$T_TMP/c.out" 2>&1 || fail "ublk-mem chown $id: $(cat "$T_TMP/c.out")"
expect_eq "$(node_owner "$cdev") $(node_owner "$DEV")" "$UID1:$UID1 600 $UID1:$UID1 600" \
	"the nodes after ublk-mem chown $id"

step "root's own device: left root's"
as_user root
user_dev=$DEV user_pid=$SRV_PID
start_ublk 16M
root_nodes="$(node_owner "$DEV") $(node_owner "/dev/ublkc$SRV_ID")"
chowned "$DEV" add 0 0
chowned "/dev/ublkc$SRV_ID" add 0 0
run_with_timeout 30 "$UBLK_MEM" chown "$SRV_ID" || fail "ublk-mem chown $SRV_ID failed"
expect_eq "$(node_owner "$DEV") $(node_owner "/dev/ublkc$SRV_ID")" "$root_nodes" "root's device's nodes"
stop_ublk
stop_server "$user_pid" "$user_dev" TERM

step "mdev, as the kernel's hotplug helper, with the README's lines"
undo_at_exit "rm -f /etc/mdev.conf"
cat >/etc/mdev.conf <<EOF
ublk-control root:ublk 0660
ublk[bc][0-9]* root:root 0600 @$UBLK_MEM chown
EOF
UDEV_MATCH='ublk*' start_udev --kernel "$MDEV"
as_user $UID1
start_ublk 16M
expect_eq "$(node_owner "$DEV") $(node_owner "/dev/ublkc$SRV_ID")" "$UID1:$UID1 600 $UID1:$UID1 600" \
	"the nodes mdev handed over"
stop_ublk
chgrp 0 /dev/ublk-control && chmod 600 /dev/ublk-control
echo add >/sys/class/misc/ublk-control/uevent || fail "cannot ask for ublk-control's add event"
ctl_open() { [ "$(node_owner /dev/ublk-control)" = "0:$UBLK_GID 660" ]; }
wait_until 10 ctl_open || fail "mdev did not open /dev/ublk-control to the group: $(node_owner /dev/ublk-control)"
