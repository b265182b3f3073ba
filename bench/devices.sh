# shellcheck shell=sh
# bench/devices.sh: the block devices bench.sh measures, set up and taken
# down. Sourced by bench.sh after test/suite/lib.sh, whose alive,
# load_module, wait_for, wait_until, ended and first_tool it uses; it runs
# under busybox sh in the test VM and under sh on a host.
#
# Each setup_NAME adds NAME to ACTIVE once the device is ready, or leaves it
# out with skip_device (a warning, and "NAME: why" in SKIPPED): a device
# that cannot be had here is a gap in the table, not the end of the run.
# setup_ublk alone returns 1 when it fails: without ublk-mem there is
# nothing to compare. teardown undoes whatever was set up, and may run at
# any point. dev_path NAME and dev_pid NAME give a device's node and its
# server's pid.
#
# The devices, SIZE_MB MiB each:
#   ublk-mem     ublk-mem SIZE_MB M $UBLK_ARGS (in the zoned matrix, bench.sh
#                puts --zoned and the zone size there)
#   ublk-mem-b   ublk-mem SIZE_MB M $UBLK_ARGS2 (only with UBLK_ARGS2)
#   ublk-mem-q2  ublk-mem SIZE_MB M $UBLK_ARGS -q 2 (only when JOBS holds
#                SCALING_JOB, the one job it serves)
#   brd          rd_nr=1 rd_size=SIZE_MB*1024
#   null_blk     made through configfs: size=SIZE_MB, memory_backed=1,
#                blocksize=512
#   null_blk-zoned  the same, zoned=1 and ublk-mem's geometry: its block
#                size, zone size and capacity, conventional zones, open and
#                active limits (the zoned matrix's reference device)
#   loop         over a file on a tmpfs of its own (buffered: tmpfs has no
#                O_DIRECT)
#   nbdkit       nbdkit -U SOCKET memory SIZE_MB M, attached with
#                nbd-client -u SOCKET /dev/nbdN
#   zram         zram with comp_algorithm lz4 and disksize SIZE_MB M: zram0
#                of a zram module loaded here (num_devices=1), or one added
#                through /sys/class/zram-control where zram is loaded already
#                (the compressed matrix's reference device)
#
# comp_stats NAME gives what a compressed device (ublk-mem --compress,
# zram) holds, from its own statistics; dev_mount NAME DIR [OPTIONS] and
# dev_umount NAME mount a device's file system (teardown unmounts it).
#
# The caller sets SIZE_MB, WORK (a scratch directory; teardown removes it),
# MODE (in-vm: an already loaded brd may be reloaded), UBLK_MEM (the server
# binary), UBLK_ARGS and UBLK_ARGS2 (server options, space separated),
# JOBS and SCALING_JOB (empty for none), and optionally NBDKIT, NBD_CLIENT
# and BLKZONE (the tools' paths).

UBLK1_PID='' UBLK1_DEV='' UBLK1_WBYTES=0
UBLK2_PID='' UBLK2_DEV='' UBLK2_WBYTES=0
UBLK3_PID='' UBLK3_DEV='' UBLK3_WBYTES=0
BRD_DEV='' BRD_LOADED=''
NULLB_DEV='' NULLB_DIR='' NULLB_LOADED='' NULLB_CONFIG=''
LOOP_DEV='' LOOP_MNT=''
NBDKIT_PID='' NBD_DEV='' NBD_LOADED='' NBDKIT_WBYTES=0
ZRAM_DEV='' ZRAM_LOADED='' ZRAM_ADDED='' ZRAM_ALGORITHMS=''
MOUNTED=
ACTIVE=
SKIPPED=

# warn MESSAGE: a warning on stderr (bench.sh's too).
warn() { echo "bench: warning: $*" >&2; }

# skip_device NAME REASON: leave NAME out of the run and say why.
skip_device() {
	warn "skipping $1: $2"
	SKIPPED="${SKIPPED:+$SKIPPED; }$1: $2"
}

is_active() {
	case " $ACTIVE " in *" $1 "*) return 0 ;; esac
	return 1
}

# dev_bytes DEV: size of a block device in bytes, from sysfs. Not lib.sh's
# dev_size (blockdev --getsize64): that opens the device, and opening an
# nbd device nothing is attached to yet logs kernel errors.
dev_bytes() {
	_db_sectors=$(cat "/sys/class/block/${1##*/}/size" 2>/dev/null) || return 1
	echo $((_db_sectors * 512))
}

# has_bytes DEV BYTES: DEV is BYTES long (a condition for wait_until).
has_bytes() {
	[ "$(dev_bytes "$1")" = "$2" ]
}

# --- ublk-mem ----------------------------------------------------------------

# start_ublk_slot N ARGS...: start a ublk-mem server of SIZE_MB MiB for
# slot N (1 ublk-mem, 2 ublk-mem-q2, 3 ublk-mem-b) and wait for its device;
# sets UBLK<N>_PID and UBLK<N>_DEV. Not lib.sh's start_ublk: that one ends
# a test with fail, where a benchmark skips the device and goes on, and it
# keeps its files in the test's T_TMP.
start_ublk_slot() {
	_su_slot=$1
	shift
	_su_bin=$UBLK_MEM _su_as=
	# ublk-mem-b (slot 3) may be another build (bench.sh --ublk-bin2), or
	# run by an ordinary user (--ublk-user2).
	[ "$_su_slot" = 3 ] && [ -n "${UBLK_BIN2:-}" ] && _su_bin=$UBLK_BIN2
	[ "$_su_slot" = 3 ] && [ -n "${UBLK_USER2:-}" ] && _su_as=$(bench_user_words "$UBLK_USER2")
	# shellcheck disable=SC2086 # _su_as: command words, or none
	$_su_as "$_su_bin" "${SIZE_MB}M" "$@" >"$WORK/ublk$_su_slot.out" 2>"$WORK/ublk$_su_slot.err" &
	_su_pid=$!
	_su_i=0
	while :; do
		_su_dev=$(grep -m 1 -E '^/dev/ublkb[0-9]+$' "$WORK/ublk$_su_slot.out")
		[ -n "$_su_dev" ] && break
		if ! alive "$_su_pid"; then
			wait "$_su_pid"
			warn "ublk-mem ${SIZE_MB}M $* exited with status $? before its device was live:"
			sed 's/^/    /' "$WORK/ublk$_su_slot.err" >&2
			return 1
		fi
		# A user's device: hand its nodes over, as the udev rule would.
		[ -n "$_su_as" ] && give_user_nodes
		if [ $_su_i -ge 300 ]; then
			warn "ublk-mem ${SIZE_MB}M $* printed no device within 30 s"
			kill -TERM "$_su_pid"
			return 1
		fi
		sleep 0.1
		_su_i=$((_su_i + 1))
	done
	wait_for "$_su_dev" 5 || {
		warn "ublk-mem printed $_su_dev, which does not exist"
		return 1
	}
	eval "UBLK${_su_slot}_PID=\$_su_pid UBLK${_su_slot}_DEV=\$_su_dev"
}

# bench_user_words UID: the command words that run a server as user UID,
# without capabilities, in the group that may open /dev/ublk-control
# (opened to it for the run, as dist/ublk-mem.rules does).
bench_user_words() {
	# shellcheck disable=SC2153 # UBLK_GID: lib.sh's group ublk
	echo "$SETPRIV --reuid=$1 --regid=$1 --groups=$UBLK_GID --inh-caps=-all --" \
		"env HOME=/ XDG_RUNTIME_DIR=$WORK/run-$1"
}

# user_setup UID: what a server of user UID needs that an administrator
# sets up once: /dev/ublk-control open to the group ublk, a runtime
# directory. teardown puts the node back.
user_setup() {
	[ -n "$SETPRIV" ] || die "--ublk-user2 needs util-linux's setpriv"
	{ mkdir -p "$WORK/run-$1" && chown "$1:$1" "$WORK/run-$1" && chmod 700 "$WORK/run-$1" &&
		chmod 711 "$WORK"; } || die "cannot make a runtime directory for uid $1"
	{ chgrp "$UBLK_GID" /dev/ublk-control && chmod 660 /dev/ublk-control; } ||
		die "cannot open /dev/ublk-control to the group ublk"
	CONTROL_OPENED=1
}

# give_user_nodes: every ublk device's nodes to its owner (ublk-mem chown,
# which leaves root's devices alone).
give_user_nodes() {
	for _gn in /dev/ublkc*; do
		[ -e "$_gn" ] && "$UBLK_MEM" chown "${_gn#/dev/ublkc}" >/dev/null 2>&1
	done
	return 0
}

# stop_ublk_pid PID: SIGTERM, then up to 30 s for the server to exit, and
# SIGKILL after that. Not lib.sh's stop_server, which fails the test when
# the exit is not clean: here the figures are taken already.
stop_ublk_pid() {
	[ -n "$1" ] && alive "$1" || return 0
	kill -TERM "$1" 2>/dev/null
	if ! wait_until 30 ended "$1"; then
		warn "ublk-mem (pid $1) still runs 30 s after SIGTERM; killing it"
		kill -KILL "$1" 2>/dev/null
	fi
	wait "$1" 2>/dev/null
}

# setup_ublk: ublk-mem, ublk-mem-b and ublk-mem-q2; status 1, said on
# stderr, when there is no ublk or ublk-mem or ublk-mem-b does not start.
setup_ublk() {
	[ -e /dev/ublk-control ] || load_module ublk_drv 2>/dev/null
	if ! wait_for /dev/ublk-control 5; then
		warn "no /dev/ublk-control: this kernel has no ublk (no ublk_drv module?); without --host the benchmark runs in the test VM"
		return 1
	fi
	# shellcheck disable=SC2086,SC2153 # the server's options (from bench.sh), one word each
	start_ublk_slot 1 $UBLK_ARGS || return 1
	ACTIVE="$ACTIVE ublk-mem"
	if [ -n "$UBLK_ARGS2" ]; then
		[ -n "${UBLK_USER2:-}" ] && user_setup "$UBLK_USER2"
		# shellcheck disable=SC2086 # the second setting's options
		start_ublk_slot 3 $UBLK_ARGS2 || return 1
		ACTIVE="$ACTIVE ublk-mem-b"
	fi
	# The second server serves the scaling job only.
	[ -n "$SCALING_JOB" ] || return 0
	case " $JOBS " in *" $SCALING_JOB "*) ;; *) return 0 ;; esac
	# shellcheck disable=SC2086
	if start_ublk_slot 2 $UBLK_ARGS -q 2; then
		ACTIVE="$ACTIVE ublk-mem-q2"
	else
		skip_device ublk-mem-q2 "ublk-mem -q 2 did not start"
	fi
}

# --- the kernel's devices ----------------------------------------------------

# brd with one disk. Inside the VM an already loaded brd is reloaded; on a
# host its disks may hold someone's data, so it is left alone. Not lib.sh's
# load_brd, which ends a test with fail.
setup_brd() {
	if [ -d /sys/module/brd ]; then
		if [ "$MODE" = in-vm ] && rmmod brd 2>/dev/null; then
			:
		else
			skip_device brd "brd is already loaded (its disks may be in use)"
			return
		fi
	fi
	if ! load_module brd rd_nr=1 rd_size=$((SIZE_MB * 1024)); then
		skip_device brd "cannot load the brd module"
		return
	fi
	BRD_LOADED=1
	if ! wait_for /dev/ram0 5; then
		skip_device brd "brd loaded but /dev/ram0 did not appear"
		return
	fi
	BRD_DEV=/dev/ram0
	ACTIVE="$ACTIVE brd"
}

# make_null_blk NAME ATTR=VALUE...: a memory-backed null_blk of SIZE_MB
# MiB through configfs, which takes the size in MB (module parameter gb
# only counts whole GiB), with these attributes besides; it joins ACTIVE
# as NAME. NULLB_CONFIG tells what was set.
make_null_blk() {
	_mnb_name=$1
	shift
	load_module configfs 2>/dev/null
	if ! grep -q ' /sys/kernel/config configfs' /proc/mounts; then
		mount -t configfs configfs /sys/kernel/config 2>/dev/null
	fi
	if [ ! -d /sys/module/null_blk ]; then
		if ! load_module null_blk nr_devices=0; then
			skip_device "$_mnb_name" "cannot load the null_blk module"
			return
		fi
		NULLB_LOADED=1
	fi
	if [ ! -d /sys/kernel/config/nullb ]; then
		skip_device "$_mnb_name" "no /sys/kernel/config/nullb (configfs not mounted?)"
		return
	fi
	NULLB_DIR=/sys/kernel/config/nullb/ublkmem-bench
	if ! mkdir "$NULLB_DIR"; then
		skip_device "$_mnb_name" "cannot make $NULLB_DIR"
		return
	fi
	NULLB_CONFIG=
	for _mnb_a in size="$SIZE_MB" memory_backed=1 "$@"; do
		if ! echo "${_mnb_a#*=}" >"$NULLB_DIR/${_mnb_a%%=*}"; then
			skip_device "$_mnb_name" "cannot set ${_mnb_a%%=*} to ${_mnb_a#*=} in $NULLB_DIR"
			return
		fi
		NULLB_CONFIG="${NULLB_CONFIG:+$NULLB_CONFIG }$_mnb_a"
	done
	if ! echo 1 >"$NULLB_DIR/power"; then
		skip_device "$_mnb_name" "cannot power $NULLB_DIR on (its settings: $NULLB_CONFIG)"
		return
	fi
	# 6.12 names the disk after the configfs directory; older kernels nullbN.
	_snb_dev=/dev/${NULLB_DIR##*/}
	[ -e "$_snb_dev" ] || _snb_dev=/dev/nullb$(cat "$NULLB_DIR/index")
	if ! wait_for "$_snb_dev" 5; then
		skip_device "$_mnb_name" "configured, but $_snb_dev did not appear"
		return
	fi
	NULLB_DEV=$_snb_dev
	ACTIVE="$ACTIVE $_mnb_name"
}

setup_null_blk() {
	make_null_blk null_blk blocksize=512
}

# null_blk zoned, with the geometry of ublk-mem's device as the kernel
# reports it: block size, zone size and open and active limits from sysfs,
# and from a zone report (blkzone, when there is one; else none and the
# whole zone) the conventional zones and the zone capacity. What
# --ublk-args changes there, null_blk gets too.
setup_null_blk_zoned() {
	_snz_q=/sys/class/block/${UBLK1_DEV##*/}/queue
	_snz_bs=$(cat "$_snz_q/logical_block_size" 2>/dev/null)
	_snz_zone=$(cat "$_snz_q/chunk_sectors" 2>/dev/null)
	_snz_open=$(cat "$_snz_q/max_open_zones" 2>/dev/null)
	_snz_active=$(cat "$_snz_q/max_active_zones" 2>/dev/null)
	if [ "$(cat "$_snz_q/zoned" 2>/dev/null)" != host-managed ] || [ -z "$_snz_bs" ] ||
		[ -z "$_snz_zone" ] || [ -z "$_snz_open" ] || [ -z "$_snz_active" ]; then
		skip_device null_blk-zoned "$UBLK1_DEV is not a host-managed zoned device, or its queue in sysfs is incomplete"
		return
	fi
	# null_blk takes the zone size and capacity in MB.
	if [ $((_snz_zone % 2048)) != 0 ]; then
		skip_device null_blk-zoned "ublk-mem's zones ($_snz_zone sectors) are no whole number of MiB"
		return
	fi
	_snz_conv=0 _snz_cap=$_snz_zone
	BLKZONE=$(first_tool "${BLKZONE:-/usr/sbin/blkzone}" /sbin/blkzone || command -v blkzone) || BLKZONE=
	if [ -n "$BLKZONE" ] && "$BLKZONE" report "$UBLK1_DEV" >"$WORK/zones" 2>/dev/null; then
		_snz_conv=$(grep -c CONVENTIONAL "$WORK/zones")
		_snz_c=$(awk '/SEQ_WRITE/ { for (i = 1; i < NF; i++) if ($i == "cap") { print $(i + 1); exit } }' \
			"$WORK/zones" | tr -d ,)
		[ -n "$_snz_c" ] && _snz_cap=$((_snz_c))
	fi
	if [ $((_snz_cap % 2048)) != 0 ]; then
		skip_device null_blk-zoned "ublk-mem's zone capacity ($_snz_cap sectors) is no whole number of MiB"
		return
	fi
	make_null_blk null_blk-zoned blocksize="$_snz_bs" zoned=1 zone_size=$((_snz_zone / 2048)) \
		zone_capacity=$((_snz_cap / 2048)) zone_nr_conv="$_snz_conv" zone_max_open="$_snz_open" \
		zone_max_active="$_snz_active"
}

# loop over a file on a tmpfs of its own.
setup_loop() {
	load_module loop 2>/dev/null
	LOOP_MNT=$WORK/tmpfs
	mkdir -p "$LOOP_MNT"
	if ! mount -t tmpfs -o size=$((SIZE_MB + 8))m ublkmem-bench "$LOOP_MNT"; then
		LOOP_MNT=
		skip_device loop "cannot mount a tmpfs"
		return
	fi
	if ! dd if=/dev/zero of="$LOOP_MNT/disk" bs=1M count=0 seek="$SIZE_MB" 2>/dev/null; then
		skip_device loop "cannot create $LOOP_MNT/disk"
		return
	fi
	_sl_dev=$(losetup -f 2>/dev/null)
	if [ -z "$_sl_dev" ] || ! losetup "$_sl_dev" "$LOOP_MNT/disk"; then
		skip_device loop "no free loop device"
		return
	fi
	LOOP_DEV=$_sl_dev
	ACTIVE="$ACTIVE loop"
}

# --- nbdkit ------------------------------------------------------------------

# nbdkit's memory plugin, served over a Unix socket to the kernel's nbd
# driver: the userspace RAM disk people use today. The tools are called by
# absolute path where they are installed: the VM's busybox has an
# nbd-client applet of its own.
setup_nbdkit() {
	NBDKIT=$(first_tool "${NBDKIT:-/usr/bin/nbdkit}" || command -v nbdkit) || {
		skip_device nbdkit "nbdkit is not installed (Debian package nbdkit)"
		return
	}
	NBD_CLIENT=$(first_tool "${NBD_CLIENT:-/usr/sbin/nbd-client}" || command -v nbd-client) || {
		skip_device nbdkit "nbd-client is not installed (Debian package nbd-client)"
		return
	}
	if [ ! -d /sys/module/nbd ]; then
		if ! load_module nbd; then
			skip_device nbdkit "cannot load the nbd module"
			return
		fi
		NBD_LOADED=1
	fi
	wait_for /sys/block/nbd0 5
	# The first nbd device nothing is connected to (a connected one has a pid).
	_snk_dev=
	for _snk_s in /sys/block/nbd[0-9]*; do
		if [ -e "$_snk_s" ] && [ ! -e "$_snk_s/pid" ]; then
			_snk_dev=/dev/${_snk_s##*/}
			break
		fi
	done
	if [ -z "$_snk_dev" ] || [ ! -b "$_snk_dev" ]; then
		skip_device nbdkit "no free nbd device"
		return
	fi
	_snk_sock=$WORK/nbdkit.sock
	"$NBDKIT" -f --exit-with-parent -U "$_snk_sock" memory "${SIZE_MB}M" \
		>"$WORK/nbdkit.out" 2>&1 &
	NBDKIT_PID=$!
	if ! wait_for "$_snk_sock" 10; then
		skip_device nbdkit "nbdkit made no socket: $(tail -n 3 "$WORK/nbdkit.out")"
		return
	fi
	if ! "$NBD_CLIENT" -u "$_snk_sock" "$_snk_dev" >"$WORK/nbd-client.out" 2>&1; then
		skip_device nbdkit "nbd-client -u $_snk_sock $_snk_dev failed: $(tail -n 3 "$WORK/nbd-client.out")"
		return
	fi
	NBD_DEV=$_snk_dev
	# The size shows a moment after nbd-client returns; the caller checks it.
	wait_until 5 has_bytes "$NBD_DEV" $((SIZE_MB * 1048576)) || :
	ACTIVE="$ACTIVE nbdkit"
}

# --- zram --------------------------------------------------------------------

# zram_sys: the sysfs directory of our zram device.
zram_sys() {
	echo "/sys/block/${ZRAM_DEV##*/}"
}

# zram, compressing with lz4, SIZE_MB MiB. Inside the VM the module is
# loaded with one device; where zram is loaded already (a host, its zram0
# perhaps swap) a device of our own is added through zram-control and
# removed at the end. comp_algorithm must be set before disksize: the
# algorithm of a device with a size is fixed. ZRAM_ALGORITHMS keeps what
# the kernel offered (comp_algorithm before ours was picked).
setup_zram() {
	_sz_n=0
	if [ -d /sys/module/zram ]; then
		if [ ! -r /sys/class/zram-control/hot_add ]; then
			skip_device zram "zram is loaded and this kernel cannot add a device to it (no zram-control)"
			return
		fi
		_sz_n=$(cat /sys/class/zram-control/hot_add) || {
			skip_device zram "cannot add a zram device through /sys/class/zram-control/hot_add"
			return
		}
		ZRAM_ADDED=$_sz_n
	else
		if ! load_module zram num_devices=1; then
			skip_device zram "cannot load the zram module"
			return
		fi
		ZRAM_LOADED=1
	fi
	ZRAM_DEV=/dev/zram$_sz_n
	_sz_sys=$(zram_sys)
	if ! wait_for "$_sz_sys/comp_algorithm" 5; then
		ZRAM_DEV=
		skip_device zram "no $_sz_sys/comp_algorithm"
		return
	fi
	ZRAM_ALGORITHMS=$(tr -s ' ' <"$_sz_sys/comp_algorithm" | sed 's/ $//')
	if ! echo lz4 >"$_sz_sys/comp_algorithm" 2>/dev/null; then
		skip_device zram "zram offers no lz4 here (comp_algorithm: $ZRAM_ALGORITHMS)"
		return
	fi
	if ! echo "${SIZE_MB}M" >"$_sz_sys/disksize"; then
		skip_device zram "cannot set $_sz_sys/disksize to ${SIZE_MB}M"
		return
	fi
	if ! wait_for "$ZRAM_DEV" 5; then
		skip_device zram "set up, but $ZRAM_DEV did not appear"
		return
	fi
	ACTIVE="$ACTIVE zram"
}

# zram_teardown: reset our zram device, remove it when it was added, and
# unload the module when it was loaded here.
zram_teardown() {
	if [ -n "$ZRAM_DEV" ] && [ -e "$(zram_sys)/reset" ]; then
		echo 1 >"$(zram_sys)/reset" 2>/dev/null
	fi
	[ -n "$ZRAM_ADDED" ] && echo "$ZRAM_ADDED" >/sys/class/zram-control/hot_remove 2>/dev/null
	[ -n "$ZRAM_LOADED" ] && rmmod zram 2>/dev/null
	ZRAM_DEV='' ZRAM_ADDED='' ZRAM_LOADED=''
}

# comp_stats NAME: what compressed device NAME holds, from its own
# statistics, as "ORIG COMPR MEM_USED SAME HUGE": the data written to it
# in bytes (same-filled pages included), that data compressed, the memory
# the store takes, and the pages stored as their fill word and stored
# whole (incompressible). zram's are mm_stat's fields 1, 2, 3, 6 and 8;
# ublk-mem's, the fields of the same names in `ublk-mem stats ID`.
# Status 1 when there are none.
comp_stats() {
	case $1 in
	zram) awk 'NF >= 8 { print $1, $2, $3, $6, $8; ok = 1 } END { exit !ok }' "$(zram_sys)/mm_stat" ;;
	ublk-mem*)
		_cs_dev=$(dev_path "$1")
		"$UBLK_MEM" stats "${_cs_dev#/dev/ublkb}" 2>/dev/null | awk '
			{ v[$1] = $2 }
			END {
				n = split("orig_data_size compr_data_size mem_used_total same_pages huge_pages", f, " ")
				for (i = 1; i <= n; i++)
					if (!(f[i] in v))
						exit 1
				print v[f[1]], v[f[2]], v[f[3]], v[f[4]], v[f[5]]
			}'
		;;
	*) return 1 ;;
	esac
}

# --- file systems ------------------------------------------------------------

# dev_mount NAME DIR [OPTIONS]: mount device NAME's ext4 on DIR (made
# when missing); dev_umount NAME: unmount it, if it is mounted.
dev_mount() {
	mkdir -p "$2" || return 1
	mount -t ext4 ${3:+-o "$3"} "$(dev_path "$1")" "$2" || return 1
	MOUNTED="$MOUNTED $1=$2"
}
dev_umount() {
	_du_left=
	_du_rc=0
	for _du_m in $MOUNTED; do
		if [ "${_du_m%%=*}" = "$1" ]; then
			umount "${_du_m#*=}" || _du_rc=1
		else
			_du_left="$_du_left $_du_m"
		fi
	done
	MOUNTED=$_du_left
	return $_du_rc
}

# --- all of them -------------------------------------------------------------

# teardown: unmount what dev_mount mounted, stop the servers, detach and
# remove the devices, unload the modules loaded here, and remove WORK.
teardown() {
	for _td_m in $MOUNTED; do
		umount "${_td_m#*=}" 2>/dev/null
	done
	MOUNTED=
	stop_ublk_pid "$UBLK1_PID"
	stop_ublk_pid "$UBLK2_PID"
	stop_ublk_pid "$UBLK3_PID"
	UBLK1_PID='' UBLK2_PID='' UBLK3_PID=''
	if [ -n "${CONTROL_OPENED:-}" ]; then
		chgrp 0 /dev/ublk-control && chmod 600 /dev/ublk-control
		CONTROL_OPENED=
	fi
	[ -n "$LOOP_DEV" ] && losetup -d "$LOOP_DEV" 2>/dev/null
	[ -n "$LOOP_MNT" ] && umount "$LOOP_MNT" 2>/dev/null
	LOOP_DEV='' LOOP_MNT=''
	if [ -n "$NULLB_DIR" ] && [ -d "$NULLB_DIR" ]; then
		echo 0 >"$NULLB_DIR/power" 2>/dev/null
		rmdir "$NULLB_DIR" 2>/dev/null
	fi
	NULLB_DIR=
	[ -n "$NULLB_LOADED" ] && rmmod null_blk 2>/dev/null
	[ -n "$BRD_LOADED" ] && rmmod brd 2>/dev/null
	NULLB_LOADED='' BRD_LOADED=''
	[ -n "$NBD_DEV" ] && "$NBD_CLIENT" -d "$NBD_DEV" >/dev/null 2>&1
	if [ -n "$NBDKIT_PID" ]; then
		kill -TERM "$NBDKIT_PID" 2>/dev/null
		wait "$NBDKIT_PID" 2>/dev/null
	fi
	[ -n "$NBD_LOADED" ] && rmmod nbd 2>/dev/null
	NBD_DEV='' NBDKIT_PID='' NBD_LOADED=''
	zram_teardown
	[ -n "$WORK" ] && rm -rf "$WORK"
	WORK=
}

# dev_path NAME / dev_pid NAME: a device's node / its server's pid ("" for
# the kernel's devices).
dev_path() {
	case $1 in
	ublk-mem) echo "$UBLK1_DEV" ;;
	ublk-mem-q2) echo "$UBLK2_DEV" ;;
	ublk-mem-b) echo "$UBLK3_DEV" ;;
	brd) echo "$BRD_DEV" ;;
	null_blk | null_blk-zoned) echo "$NULLB_DEV" ;;
	loop) echo "$LOOP_DEV" ;;
	nbdkit) echo "$NBD_DEV" ;;
	zram) echo "$ZRAM_DEV" ;;
	esac
}
dev_pid() {
	case $1 in
	ublk-mem) echo "$UBLK1_PID" ;;
	ublk-mem-q2) echo "$UBLK2_PID" ;;
	ublk-mem-b) echo "$UBLK3_PID" ;;
	nbdkit) echo "$NBDKIT_PID" ;;
	esac
}

# add_written NAME BYTES / dev_written NAME: count the bytes written to a
# server's device / how many so far.
add_written() {
	case $1 in
	ublk-mem) UBLK1_WBYTES=$((UBLK1_WBYTES + $2)) ;;
	ublk-mem-q2) UBLK2_WBYTES=$((UBLK2_WBYTES + $2)) ;;
	ublk-mem-b) UBLK3_WBYTES=$((UBLK3_WBYTES + $2)) ;;
	nbdkit) NBDKIT_WBYTES=$((NBDKIT_WBYTES + $2)) ;;
	esac
}
dev_written() {
	case $1 in
	ublk-mem) echo "$UBLK1_WBYTES" ;;
	ublk-mem-q2) echo "$UBLK2_WBYTES" ;;
	ublk-mem-b) echo "$UBLK3_WBYTES" ;;
	nbdkit) echo "$NBDKIT_WBYTES" ;;
	*) echo 0 ;;
	esac
}
