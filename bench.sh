#!/bin/sh
# bench.sh: ublk-mem next to the kernel's own RAM-backed block devices.
#
# usage: ./bench.sh [OPTIONS]          boot the test VM and benchmark there
#        ./bench.sh --host [OPTIONS]   benchmark on this machine (root, ublk)
#
#   --kernel KVER       the VM's kernel: lts (default; Debian 12's 6.12),
#                       newest, a series (7.3) or a version (7.3.4); see
#                       test/vm/kernel.sh. KVER in the environment works too
#   --quick             a smoke run: 1 round of 1 s per job
#   --rounds N          rounds over the whole matrix (default 3; medians)
#   --runtime SECONDS   length of each timed job run (default 5)
#   --jobs LIST         run only these jobs (names as in summary.csv; spaces
#                       or commas between them), e.g. "randread-4k-qd32"
#   --ublk-args "ARGS"  options for the ublk-mem server (e.g. "--copy-mode
#                       user_copy" or "--poll"); spaces or commas between words
#   --ublk-args2 "ARGS" also measure a second ublk-mem server with these
#                       options, on every job next to the first (device
#                       ublk-mem-b), e.g. "--io-path batch": two settings
#                       compared in the same boot
#   --out DIR           results directory (default results/bench-DATE-TIME)
#   --report DIR        only redo the table and chart of an earlier run
#   -h, --help          this text
#
# Devices, 64 MiB each and filled once before measuring: ublk-mem (SIZE and
# ARGS), brd (rd_size=65536), null_blk made through configfs (size=64 MB,
# memory_backed=1, blocksize=512), loop over a file on tmpfs (buffered:
# tmpfs has no O_DIRECT) and nbdkit's memory plugin (nbdkit -U SOCKET memory
# 64M, attached with nbd-client -u SOCKET /dev/nbdN: the userspace RAM disk
# people use today). The job with two fio jobs also runs on a second
# ublk-mem started with -q 2, to show queue scaling. With --ublk-args2 a
# third, ublk-mem-b, runs every job right after ublk-mem.
#
# All jobs are fio --ioengine=libaio --direct=1. A round runs every job on
# every device, the devices interleaved (A B C D E, A B C D E, ...); the
# report gives medians over the rounds, the IOPS spread (min-max), p50 and
# p99 completion latency, the ratio to brd, the servers' (ublk-mem's,
# nbdkit's) CPU time per I/O and their resident memory after the run. The
# ratio to brd is the median of the rounds' paired ratios, each the device's
# IOPS over brd's in the same round, with their range: the host's speed may
# change from round to round, and it changes for every device alike.
#
# Results: a Markdown table on stdout and, in the results directory,
# summary.md, summary.csv (one row per job and device), raw.csv (one row per
# run), memory.csv, meta.txt and ratio.svg (ublk-mem's IOPS relative to brd).
# test/checks/bench-check.sh DIR checks that such a directory is complete.
#
# Inside the VM test/vm/init runs "bench.sh --in-vm OPTIONS": that part runs
# the matrix in busybox sh and prints its CSV on the console between
# @@BENCH-CSV-BEGIN NAME and @@BENCH-CSV-END NAME lines, which the host part
# reads back from the console log. Progress lines on stderr start "bench: ".
#
# Environment: UBLK_MEM (the server binary), FIO (default /usr/bin/fio),
# NBDKIT and NBD_CLIENT (default /usr/bin/nbdkit, /usr/sbin/nbd-client),
# UBLKMEM_MODULES (directory of .ko files, used before modprobe), KVER, and
# for the VM the variables test/vm/vm.sh documents (VM_SMP, VM_TIMEOUT...).

set -u

SIZE_MB=64
ROUNDS=3
RUNTIME=5
UBLK_ARGS=
UBLK_ARGS2=
JOBS_ASKED=
OUT=
OUT_MADE=
MODE=vm
KERNEL_ASKED=

JOBS="ref-seqread-4k-qd1 randread-4k-qd1 randread-4k-qd32 randwrite-4k-qd1 seqread-128k-qd8"
JOBS="$JOBS randrw70-4k-qd16 randread-4k-qd32x2"
# Every job runs on these, in this order, within a round.
DEVICES="ublk-mem brd null_blk loop nbdkit"
# The job that also runs on a second server with two queues (ublk-mem-q2).
SCALING_JOB=randread-4k-qd32x2
# The reference job, exactly as it is usually quoted (4 MiB, not timed).
REF_ARGS="--rw=read --bs=4k --iodepth=1 --size=4M"

CSV_BEGIN=@@BENCH-CSV-BEGIN
CSV_END=@@BENCH-CSV-END
RAW_HEADER="device,job,round,iops,mib_s,p50_us,p99_us,ios,write_bytes,cpu_us_per_io"
MEM_HEADER="device,size_bytes,bytes_written,vmrss_kib,vmhwm_kib"

HERE=$(cd "$(dirname "$0")" && pwd)
START=$(date +%s)

# usage [STATUS]: the help text at the head of this file.
usage() {
	sed -n '4,/^$/s/^# \{0,1\}//p' "$0" >&2
	exit "${1:-2}"
}

# progress MESSAGE: one line on stderr, with the time since the start.
progress() {
	_pro_el=$(($(date +%s) - START))
	printf 'bench: [%dm%02ds] %s\n' $((_pro_el / 60)) $((_pro_el % 60)) "$*" >&2
}

warn() { echo "bench: warning: $*" >&2; }
die() {
	echo "bench: $*" >&2
	# Leave no empty results directory of ours behind.
	[ -n "$OUT_MADE" ] && rmdir "$OUT" 2>/dev/null
	exit 1
}

# is_uint VALUE: VALUE is a whole number.
is_uint() {
	case $1 in '' | *[!0-9]*) return 1 ;; esac
	return 0
}

# job_label JOB: the name people read in the table and the chart.
job_label() {
	case $1 in
	ref-seqread-4k-qd1) echo "seq read 4k QD1, 4 MiB (reference)" ;;
	randread-4k-qd1) echo "rand read 4k QD1" ;;
	randread-4k-qd32) echo "rand read 4k QD32" ;;
	randwrite-4k-qd1) echo "rand write 4k QD1" ;;
	seqread-128k-qd8) echo "seq read 128k QD8" ;;
	randrw70-4k-qd16) echo "rand 70/30 read/write 4k QD16" ;;
	randread-4k-qd32x2) echo "rand read 4k QD32, 2 jobs" ;;
	*) echo "$1" ;;
	esac
}

# job_args JOB: fio options of JOB besides the common ones.
job_args() {
	_ja_timed="--time_based --runtime=$RUNTIME --norandommap"
	case $1 in
	ref-seqread-4k-qd1) echo "$REF_ARGS" ;;
	randread-4k-qd1) echo "--rw=randread --bs=4k --iodepth=1 $_ja_timed" ;;
	randread-4k-qd32) echo "--rw=randread --bs=4k --iodepth=32 $_ja_timed" ;;
	randwrite-4k-qd1) echo "--rw=randwrite --bs=4k --iodepth=1 $_ja_timed" ;;
	seqread-128k-qd8) echo "--rw=read --bs=128k --iodepth=8 $_ja_timed" ;;
	randrw70-4k-qd16) echo "--rw=randrw --rwmixread=70 --bs=4k --iodepth=16 $_ja_timed" ;;
	randread-4k-qd32x2) echo "--rw=randread --bs=4k --iodepth=32 --numjobs=2 $_ja_timed" ;;
	*) return 1 ;;
	esac
}

# devices_of JOB: the devices JOB runs on, in round order.
devices_of() {
	_do_b=
	[ -n "$UBLK_ARGS2" ] && _do_b=" ublk-mem-b"
	if [ "$1" = "$SCALING_JOB" ]; then
		echo "ublk-mem$_do_b ublk-mem-q2 ${DEVICES#ublk-mem }"
	else
		echo "ublk-mem$_do_b ${DEVICES#ublk-mem }"
	fi
}

# ublk_words / ublk_words2: the --ublk-args / --ublk-args2 words, split on
# spaces and commas.
ublk_words() {
	printf '%s\n' "$UBLK_ARGS" | tr ',' ' '
}
ublk_words2() {
	printf '%s\n' "$UBLK_ARGS2" | tr ',' ' '
}

# =========================================================================
# The matrix: runs where the devices are (inside the VM, or with --host).
# =========================================================================

WORK=
UBLK1_PID='' UBLK1_DEV='' UBLK1_WBYTES=0
UBLK2_PID='' UBLK2_DEV='' UBLK2_WBYTES=0
UBLK3_PID='' UBLK3_DEV='' UBLK3_WBYTES=0
BRD_DEV='' BRD_LOADED=''
NULLB_DEV='' NULLB_DIR='' NULLB_LOADED=''
LOOP_DEV='' LOOP_MNT=''
NBDKIT_PID='' NBD_DEV='' NBD_LOADED='' NBDKIT_WBYTES=0
ACTIVE=
SKIPPED=
FAILURES=0

# alive PID: the process exists and is not a zombie.
alive() {
	_ali_s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	_ali_s=${_ali_s##*) }
	[ "${_ali_s%% *}" != Z ]
}

# skip_device NAME REASON: leave NAME out of the run and say why.
skip_device() {
	warn "skipping $1: $2"
	SKIPPED="${SKIPPED:+$SKIPPED; }$1: $2"
}

# load_module NAME [PARAM=VALUE...]: load NAME unless it is there. The VM
# has plain .ko files in $UBLKMEM_MODULES and no modules.dep; elsewhere
# modprobe.
load_module() {
	_lm_m=$1
	shift
	[ -d "/sys/module/$_lm_m" ] && return 0
	for _lm_ko in "${UBLKMEM_MODULES:-/lib/modules}/$_lm_m.ko" "/lib/$_lm_m.ko"; do
		if [ -f "$_lm_ko" ]; then
			insmod "$_lm_ko" "$@"
			return
		fi
	done
	modprobe "$_lm_m" "$@" 2>/dev/null
}

# wait_for PATH SECONDS: wait until PATH exists.
wait_for() {
	_wf_i=0
	while [ ! -e "$1" ]; do
		[ $_wf_i -ge $(($2 * 10)) ] && return 1
		sleep 0.1
		_wf_i=$((_wf_i + 1))
	done
}

# dev_bytes DEV: size of a block device in bytes, from sysfs.
dev_bytes() {
	_db_sectors=$(cat "/sys/class/block/${1##*/}/size" 2>/dev/null) || return 1
	echo $((_db_sectors * 512))
}

# start_ublk N ARGS...: start a ublk-mem server for slot N (1 to 3) and wait
# for its device. Sets UBLK<N>_PID and UBLK<N>_DEV.
start_ublk() {
	_su_slot=$1
	shift
	"$UBLK_MEM" "${SIZE_MB}M" "$@" >"$WORK/ublk$_su_slot.out" 2>"$WORK/ublk$_su_slot.err" &
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

# stop_ublk PID: SIGTERM, then wait up to 30 s for a clean exit.
stop_ublk() {
	[ -n "$1" ] && alive "$1" || return 0
	kill -TERM "$1" 2>/dev/null
	_su2_i=0
	while alive "$1" && [ $_su2_i -lt 300 ]; do
		sleep 0.1
		_su2_i=$((_su2_i + 1))
	done
	if alive "$1"; then
		warn "ublk-mem (pid $1) still runs 30 s after SIGTERM; killing it"
		kill -KILL "$1" 2>/dev/null
	fi
	wait "$1" 2>/dev/null
}

setup_ublk() {
	[ -e /dev/ublk-control ] || load_module ublk_drv
	wait_for /dev/ublk-control 5 ||
		die "no /dev/ublk-control: this kernel has no ublk (no ublk_drv module?); without --host the benchmark runs in the test VM"
	# shellcheck disable=SC2046 # the server's options, one word each
	if start_ublk 1 $(ublk_words); then
		ACTIVE="$ACTIVE ublk-mem"
	else
		die "ublk-mem did not start; nothing to compare"
	fi
	if [ -n "$UBLK_ARGS2" ]; then
		# shellcheck disable=SC2046 # the second setting's options
		if start_ublk 3 $(ublk_words2); then
			ACTIVE="$ACTIVE ublk-mem-b"
		else
			die "ublk-mem $(ublk_words2) (--ublk-args2) did not start; nothing to compare"
		fi
	fi
	# The second server serves the scaling job only.
	case " $JOBS " in *" $SCALING_JOB "*) ;; *) return 0 ;; esac
	# shellcheck disable=SC2046
	if start_ublk 2 $(ublk_words) -q 2; then
		ACTIVE="$ACTIVE ublk-mem-q2"
	else
		skip_device ublk-mem-q2 "ublk-mem -q 2 did not start"
	fi
}

# brd with one 64 MiB disk. Inside the VM an already loaded brd is
# reloaded; on a host its disks may hold someone's data, so it is left alone.
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

# null_blk through configfs, which takes the size in MB (module parameter
# gb only counts whole GiB).
setup_null_blk() {
	load_module configfs 2>/dev/null
	if ! grep -q ' /sys/kernel/config configfs' /proc/mounts; then
		mount -t configfs configfs /sys/kernel/config 2>/dev/null
	fi
	if [ ! -d /sys/module/null_blk ]; then
		if ! load_module null_blk nr_devices=0; then
			skip_device null_blk "cannot load the null_blk module"
			return
		fi
		NULLB_LOADED=1
	fi
	if [ ! -d /sys/kernel/config/nullb ]; then
		skip_device null_blk "no /sys/kernel/config/nullb (configfs not mounted?)"
		return
	fi
	NULLB_DIR=/sys/kernel/config/nullb/ublkmem-bench
	if ! mkdir "$NULLB_DIR" ||
		! echo "$SIZE_MB" >"$NULLB_DIR/size" ||
		! echo 1 >"$NULLB_DIR/memory_backed" ||
		! echo 512 >"$NULLB_DIR/blocksize" ||
		! echo 1 >"$NULLB_DIR/power"; then
		skip_device null_blk "cannot configure $NULLB_DIR"
		return
	fi
	# 6.12 names the disk after the configfs directory; older kernels nullbN.
	_snb_dev=/dev/${NULLB_DIR##*/}
	[ -e "$_snb_dev" ] || _snb_dev=/dev/nullb$(cat "$NULLB_DIR/index")
	if ! wait_for "$_snb_dev" 5; then
		skip_device null_blk "configured, but $_snb_dev did not appear"
		return
	fi
	NULLB_DEV=$_snb_dev
	ACTIVE="$ACTIVE null_blk"
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

# tool NAME PATH: PATH when it is executable, else NAME found on PATH.
# (The VM's busybox has applets by some of these names: the real tools are
# called by absolute path.)
tool() {
	if [ -x "$2" ]; then
		echo "$2"
	else
		command -v "$1"
	fi
}

# nbdkit's memory plugin, served over a Unix socket to the kernel's nbd
# driver: the userspace RAM disk people use today.
setup_nbdkit() {
	NBDKIT=$(tool nbdkit "${NBDKIT:-/usr/bin/nbdkit}") || {
		skip_device nbdkit "nbdkit is not installed (Debian package nbdkit)"
		return
	}
	NBD_CLIENT=$(tool nbd-client "${NBD_CLIENT:-/usr/sbin/nbd-client}") || {
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
	_snk_i=0
	while [ "$(dev_bytes "$NBD_DEV")" != $((SIZE_MB * 1048576)) ] && [ $_snk_i -lt 50 ]; do
		sleep 0.1
		_snk_i=$((_snk_i + 1))
	done
	ACTIVE="$ACTIVE nbdkit"
}

teardown() {
	stop_ublk "$UBLK1_PID"
	stop_ublk "$UBLK2_PID"
	stop_ublk "$UBLK3_PID"
	UBLK1_PID='' UBLK2_PID='' UBLK3_PID=''
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
	null_blk) echo "$NULLB_DEV" ;;
	loop) echo "$LOOP_DEV" ;;
	nbdkit) echo "$NBD_DEV" ;;
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

# add_written NAME BYTES: count bytes written to a server's device.
add_written() {
	case $1 in
	ublk-mem) UBLK1_WBYTES=$((UBLK1_WBYTES + $2)) ;;
	ublk-mem-q2) UBLK2_WBYTES=$((UBLK2_WBYTES + $2)) ;;
	ublk-mem-b) UBLK3_WBYTES=$((UBLK3_WBYTES + $2)) ;;
	nbdkit) NBDKIT_WBYTES=$((NBDKIT_WBYTES + $2)) ;;
	esac
}

is_active() {
	case " $ACTIVE " in *" $1 "*) return 0 ;; esac
	return 1
}

# cpu_ticks PID: utime + stime of the whole process, in clock ticks
# (/proc/PID/stat fields 14 and 15; the name in field 2 may hold spaces).
cpu_ticks() {
	_ct_s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	echo "${_ct_s##*) }" | awk '{ print $12 + $13 }'
}

# The figures of one fio run, from its JSON output (pretty-printed, one key
# a line): "IOPS MiB/s P50_us P99_us IOS WRITE_BYTES ERROR". With
# --unified_rw_reporting=both the "mixed" section sums reads and writes and
# "write" still tells the bytes written. The runs use --group_reporting, so
# there is one job.
# shellcheck disable=SC2016 # awk's own $fields
FIO_JSON_AWK='
{
	key = ""
	val = $0
	if (match($0, /"[^"]*"[ \t]*:/)) {
		key = substr($0, RSTART + 1, RLENGTH - 1)
		sub(/"[ \t]*:$/, "", key)
		val = substr($0, RSTART + RLENGTH)
	}
	gsub(/^[ \t]+/, "", val)
	gsub(/[ \t,]+$/, "", val)
	c = substr(val, 1, 1)
	if (val == "{" || val == "[") {
		path[++depth] = key
		next
	}
	if (c == "}" || c == "]") {
		depth--
		next
	}
	if (key == "")
		next
	p = ""
	for (i = 1; i <= depth; i++)
		p = p "/" path[i]
	v[p "/" key] = val
}
END {
	m = "//jobs//mixed/"
	if (!((m "iops") in v)) {
		print "none"
		exit
	}
	printf "%.1f %.2f %.1f %.1f %.0f %.0f %.0f\n", v[m "iops"], v[m "bw_bytes"] / 1048576,
		v[m "clat_ns/percentile/50.000000"] / 1000, v[m "clat_ns/percentile/99.000000"] / 1000,
		v[m "total_ios"], v["//jobs//write/io_bytes"], v["//jobs//error"]
}'

# with_timeout SECONDS CMD...: CMD, stopped after SECONDS when timeout exists.
with_timeout() {
	if [ -n "$TIMEOUT" ]; then
		timeout "$@"
	else
		shift
		"$@"
	fi
}

# run_fio NAME DEV JSON FIO-OPTIONS...: one fio run, JSON output in JSON.
run_fio() {
	_rf_name=$1 _rf_dev=$2 _rf_json=$3
	shift 3
	# A run longer than this has hung (a dead server, say).
	_rf_limit=$((RUNTIME * 4 + 120))
	(cd "$WORK" && with_timeout "$_rf_limit" "$FIO" --name="$_rf_name" --filename="$_rf_dev" \
		--ioengine=libaio --direct=1 "$@" --group_reporting \
		--unified_rw_reporting=both --output-format=json --output="$_rf_json") \
		>"$WORK/fio.err" 2>&1
}

# fill NAME: write the whole device once, so reads find data.
fill() {
	_fil_dev=$(dev_path "$1")
	progress "filling $1 ($_fil_dev, $SIZE_MB MiB)"
	if ! run_fio fill "$_fil_dev" "$WORK/fill.json" --rw=write --bs=1M --iodepth=4 \
		--size="${SIZE_MB}M"; then
		warn "filling $1 failed: $(tail -n 5 "$WORK/fio.err")"
		return 1
	fi
	add_written "$1" $((SIZE_MB * 1048576))
}

# bench_one ROUND JOB NAME: run JOB on device NAME and add a row to raw.csv.
bench_one() {
	_bo_round=$1 _bo_job=$2 _bo_name=$3
	_bo_dev=$(dev_path "$_bo_name")
	_bo_pid=$(dev_pid "$_bo_name")
	if [ -n "$_bo_pid" ] && ! alive "$_bo_pid"; then
		warn "the server of $_bo_name ($_bo_dev) is gone; skipping $_bo_job"
		FAILURES=$((FAILURES + 1))
		return 1
	fi
	_bo_t0=
	[ -n "$_bo_pid" ] && _bo_t0=$(cpu_ticks "$_bo_pid")
	# shellcheck disable=SC2046 # the job's options, one word each
	if ! run_fio "$_bo_job" "$_bo_dev" "$WORK/run.json" $(job_args "$_bo_job"); then
		warn "fio $_bo_job on $_bo_name ($_bo_dev) failed:"
		tail -n 5 "$WORK/fio.err" | sed 's/^/    /' >&2
		FAILURES=$((FAILURES + 1))
		return 1
	fi
	_bo_cpu=
	if [ -n "$_bo_pid" ]; then
		_bo_t1=$(cpu_ticks "$_bo_pid") || _bo_t1=$_bo_t0
		_bo_cpu=$((_bo_t1 - _bo_t0))
	fi
	# shellcheck disable=SC2046
	set -- $(awk "$FIO_JSON_AWK" "$WORK/run.json")
	if [ $# -ne 7 ] || [ "$7" != 0 ] || [ "$5" -le 0 ]; then
		warn "fio $_bo_job on $_bo_name: no usable result (error ${7:-?})"
		FAILURES=$((FAILURES + 1))
		return 1
	fi
	_bo_iops=$1 _bo_mib=$2 _bo_p50=$3 _bo_p99=$4 _bo_ios=$5 _bo_wb=$6
	add_written "$_bo_name" "$_bo_wb"
	_bo_cpuio=
	if [ -n "$_bo_cpu" ]; then
		_bo_cpuio=$(awk -v t="$_bo_cpu" -v hz="$CLK_TCK" -v n="$_bo_ios" \
			'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
	fi
	echo "$_bo_name,$_bo_job,$_bo_round,$_bo_iops,$_bo_mib,$_bo_p50,$_bo_p99,$_bo_ios,$_bo_wb,$_bo_cpuio" >>"$RAW"
	progress "[$RUN/$TOTAL] round $_bo_round/$ROUNDS $_bo_job on $_bo_name: $_bo_iops IOPS, $_bo_mib MiB/s," \
		"p50 $_bo_p50 us, p99 $_bo_p99 us${_bo_cpuio:+, server CPU $_bo_cpuio us/IO}"
}

# mem_row NAME PID BYTES: a memory.csv row for a server (ublk-mem, nbdkit).
mem_row() {
	[ -n "$2" ] && alive "$2" || return 0
	_mr_rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$2/status")
	_mr_hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$2/status")
	echo "$1,$((SIZE_MB * 1048576)),$3,$_mr_rss,$_mr_hwm" >>"$MEMCSV"
}

# run_matrix DIR: set up the devices, run every round, and write raw.csv,
# memory.csv and meta.txt into DIR.
run_matrix() {
	RAW=$1/raw.csv
	MEMCSV=$1/memory.csv
	META=$1/meta.txt
	[ "$(id -u)" = 0 ] || die "needs root: it loads modules and creates block devices"
	if [ -z "${FIO:-}" ]; then
		FIO=/usr/bin/fio
		[ -x "$FIO" ] || FIO=$(command -v fio) || die "fio is not installed"
	fi
	[ -x "$FIO" ] || die "fio: $FIO is not executable"
	if [ -z "${UBLK_MEM:-}" ]; then
		if [ "$MODE" = in-vm ]; then
			UBLK_MEM=$(command -v ublk-mem) || UBLK_MEM=/usr/local/bin/ublk-mem
		else
			UBLK_MEM=$HERE/ublk-mem
		fi
	fi
	[ -x "$UBLK_MEM" ] || die "no server binary at $UBLK_MEM (run make, or set UBLK_MEM)"
	TIMEOUT=
	command -v timeout >/dev/null 2>&1 && TIMEOUT=1
	# USER_HZ is 100 on every architecture Linux runs fio on; getconf knows.
	CLK_TCK=$(getconf CLK_TCK 2>/dev/null) || CLK_TCK=100
	is_uint "$CLK_TCK" || CLK_TCK=100

	WORK=$(mktemp -d "${TMPDIR:-/tmp}/ublkmem-bench.XXXXXX") || die "cannot make a work directory"
	trap teardown EXIT
	trap 'exit 130' INT TERM

	progress "setting up: ublk-mem ${SIZE_MB}M${UBLK_ARGS:+ $(ublk_words)}${UBLK_ARGS2:+, ublk-mem ${SIZE_MB}M $(ublk_words2)}, brd, null_blk, loop on tmpfs, nbdkit memory"
	setup_ublk
	setup_brd
	setup_null_blk
	setup_loop
	setup_nbdkit
	progress "devices:$(for _rm_d in $ACTIVE; do printf ' %s=%s' "$_rm_d" "$(dev_path "$_rm_d")"; done)"
	for _rm_d in $ACTIVE; do
		_rm_bytes=$(dev_bytes "$(dev_path "$_rm_d")")
		if [ "$_rm_bytes" != $((SIZE_MB * 1048576)) ]; then
			warn "$_rm_d is ${_rm_bytes:-?} bytes, not $SIZE_MB MiB"
		fi
	done
	for _rm_d in $ACTIVE; do
		fill "$_rm_d" || die "cannot fill $_rm_d"
	done

	echo "$RAW_HEADER" >"$RAW"
	TOTAL=0
	for _rm_job in $JOBS; do
		for _rm_d in $(devices_of "$_rm_job"); do
			is_active "$_rm_d" && TOTAL=$((TOTAL + 1))
		done
	done
	TOTAL=$((TOTAL * ROUNDS))
	RUN=0
	progress "$TOTAL runs: $ROUNDS round(s), ${RUNTIME} s per timed job"
	_rm_r=1
	while [ $_rm_r -le "$ROUNDS" ]; do
		for _rm_job in $JOBS; do
			for _rm_d in $(devices_of "$_rm_job"); do
				is_active "$_rm_d" || continue
				RUN=$((RUN + 1))
				bench_one "$_rm_r" "$_rm_job" "$_rm_d"
			done
		done
		_rm_r=$((_rm_r + 1))
	done

	echo "$MEM_HEADER" >"$MEMCSV"
	mem_row ublk-mem "$UBLK1_PID" "$UBLK1_WBYTES"
	mem_row ublk-mem-q2 "$UBLK2_PID" "$UBLK2_WBYTES"
	mem_row ublk-mem-b "$UBLK3_PID" "$UBLK3_WBYTES"
	mem_row nbdkit "$NBDKIT_PID" "$NBDKIT_WBYTES"

	{
		echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
		echo "kernel=$(uname -r)"
		echo "cpus=$(nproc 2>/dev/null || echo '?')"
		echo "mem_mib=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)"
		echo "fio=$("$FIO" --version 2>/dev/null)"
		echo "nbdkit=$("${NBDKIT:-nbdkit}" --version 2>/dev/null | head -n 1)"
		echo "server=$("$UBLK_MEM" -V 2>/dev/null | head -n 1), sha256 $(sha256sum <"$UBLK_MEM" | cut -c1-12)"
		echo "size_mb=$SIZE_MB"
		echo "rounds=$ROUNDS"
		echo "runtime=$RUNTIME"
		echo "ublk_args=$(ublk_words)"
		echo "ublk_args2=$(ublk_words2)"
		echo "jobs=$JOBS"
		echo "devices=${ACTIVE# }"
		echo "skipped=$SKIPPED"
		echo "failures=$FAILURES"
		echo "clk_tck=$CLK_TCK"
	} >"$META"
	teardown
	trap - EXIT INT TERM
	progress "matrix done: $RUN runs, $FAILURES failed"
	[ "$FAILURES" = 0 ]
}

# Inside the VM: run the matrix, then print what it wrote on the console.
main_in_vm() {
	_miv_dir=$(mktemp -d /tmp/bench-out.XXXXXX) || die "cannot make a directory in /tmp"
	_miv_klines=$(dmesg 2>/dev/null | wc -l)
	run_matrix "$_miv_dir"
	_miv_rc=$?
	for _miv_f in raw memory meta; do
		_miv_file=$_miv_dir/$_miv_f.csv
		[ "$_miv_f" = meta ] && _miv_file=$_miv_dir/meta.txt
		[ -f "$_miv_file" ] || continue
		echo "$CSV_BEGIN $_miv_f"
		cat "$_miv_file"
		echo "$CSV_END $_miv_f rows=$(wc -l <"$_miv_file")"
	done
	# Kernel complaints during the run, if any (warning level or worse).
	dmesg -r 2>/dev/null | tail -n +$((_miv_klines + 1)) | grep -E '^<[0-4]>' |
		sed 's/^<[0-9]>/bench: kernel: /' >&2
	rm -rf "$_miv_dir"
	return $_miv_rc
}

# =========================================================================
# The report: runs on the host, from raw.csv, memory.csv and meta.txt.
# =========================================================================

# meta KEY: a value of meta.txt.
meta() {
	sed -n "s/^$1=//p" "$OUT/meta.txt" | head -n 1
}

# Medians per job and device: summary.csv. The ratio to brd pairs the rounds:
# the median, min and max of this device's IOPS over brd's in each round.
# MEDIAN_AWK: awk functions both reports use. median() sorts a[1..n] in
# place, so a[1] and a[n] are then the minimum and the maximum.
MEDIAN_AWK='
function sort_n(a, n,    i, j, t) {
	for (i = 2; i <= n; i++) {
		t = a[i]
		for (j = i - 1; j >= 1 && a[j] > t; j--)
			a[j + 1] = a[j]
		a[j + 1] = t
	}
}
function median(a, n) {
	sort_n(a, n)
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
'
# shellcheck disable=SC2016 # awk's own $fields
SUMMARY_AWK=$MEDIAN_AWK'
# column c of the rows of key k, sorted into t; returns how many
function collect(k, c,    i, m) {
	m = 0
	for (i = 1; i <= cnt[k]; i++)
		if (cell[k, i, c] != "")
			t[++m] = cell[k, i, c] + 0
	return m
}
BEGIN {
	FS = ","
	nj = split(jobs, J, " ")
	nd = split(devs, D, " ")
}
FNR == 1 { next }
{
	k = $2 SUBSEP $1
	i = ++cnt[k]
	for (c = 4; c <= 10; c++)
		cell[k, i, c] = $c
	round[k, i] = $3
	by_round[k, $3] = $4
}
# the paired ratios of key k to key kb, sorted into t; returns how many
function paired(k, kb,    i, m, r) {
	m = 0
	for (i = 1; i <= cnt[k]; i++) {
		r = round[k, i]
		if ((kb, r) in by_round && by_round[kb, r] > 0)
			t[++m] = cell[k, i, 4] / by_round[kb, r]
	}
	return m
}
END {
	print "job,device,rounds,iops,iops_min,iops_max,mib_s,p50_us,p99_us,ratio_brd,ratio_brd_min,ratio_brd_max,cpu_us_per_io"
	for (j = 1; j <= nj; j++) {
		kb = J[j] SUBSEP "brd"
		for (d = 1; d <= nd; d++) {
			k = J[j] SUBSEP D[d]
			if (!(k in cnt))
				continue
			m = collect(k, 4); iops = median(t, m); lo = t[1]; hi = t[m]
			m = collect(k, 5); mib = median(t, m)
			m = collect(k, 6); p50 = median(t, m)
			m = collect(k, 7); p99 = median(t, m)
			m = collect(k, 10); cpu = m ? sprintf("%.2f", median(t, m)) : ""
			ratio = rlo = rhi = ""
			if (kb in cnt && (m = paired(k, kb)) > 0) {
				ratio = sprintf("%.3f", median(t, m))
				rlo = sprintf("%.3f", t[1])
				rhi = sprintf("%.3f", t[m])
			}
			printf "%s,%s,%d,%.1f,%.1f,%.1f,%.2f,%.1f,%.1f,%s,%s,%s,%s\n", J[j], D[d], cnt[k],
				iops, lo, hi, mib, p50, p99, ratio, rlo, rhi, cpu
		}
	}
}'

# The Markdown table from summary.csv; labels is "job=label|job=label...".
# shellcheck disable=SC2016 # awk's own $fields
TABLE_AWK='
function group(x,    s, r) {
	s = sprintf("%.0f", x)
	r = ""
	while (length(s) > 3) {
		r = "," substr(s, length(s) - 2) r
		s = substr(s, 1, length(s) - 3)
	}
	return s r
}
function us(x) {
	return x < 100 ? sprintf("%.1f", x) : sprintf("%.0f", x)
}
# a ratio: two decimals, three below 0.1 so that small ones do not read 0.00
function r2(x) {
	return x < 0.1 ? sprintf("%.3f", x) : sprintf("%.2f", x)
}
BEGIN {
	FS = ","
	n = split(labels, L, "|")
	for (i = 1; i <= n; i++) {
		p = index(L[i], "=")
		label[substr(L[i], 1, p - 1)] = substr(L[i], p + 1)
	}
	name["ublk-mem-q2"] = "ublk-mem -q 2"
	# Two settings compared: each server named by its options.
	if (args2 != "") {
		name["ublk-mem"] = "ublk-mem" (args1 != "" ? " " args1 : "")
		name["ublk-mem-b"] = "ublk-mem " args2
	}
	print "| Job | Device | IOPS | IOPS min-max | MiB/s | p50 µs | p99 µs | vs brd | vs brd min-max | server CPU µs/IO |"
	print "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"
}
FNR == 1 { next }
{
	job = ($1 == last) ? "" : label[$1]
	last = $1
	dev = ($2 in name) ? name[$2] : $2
	if ($2 ~ /^ublk-mem/)
		dev = "**" dev "**"
	ratio = $10 == "" ? "n/a" : r2($10)
	range = $11 == "" ? "-" : r2($11) "-" r2($12)
	cpu = $13 == "" ? "-" : sprintf("%.1f", $13)
	printf "| %s | %s | %s | %s-%s | %.1f | %s | %s | %s | %s | %s |\n", job, dev, group($4),
		group($5), group($6), $7, us($8), us($9), ratio, range, cpu
}'

# The chart: ublk-mem's median ratio to brd per job, whiskers for the range
# of the rounds' ratios, loop and nbdkit as markers for scale, the 1.0 line.
# shellcheck disable=SC2016 # awk's own $fields
SVG_AWK='
function esc(s) {
	gsub(/&/, "\\&amp;", s)
	gsub(/</, "\\&lt;", s)
	return s
}
function x(r) {
	return X0 + r / xmax * (X1 - X0)
}
BEGIN {
	FS = ","
	n = split(labels, L, "|")
	for (i = 1; i <= n; i++) {
		p = index(L[i], "=")
		label[substr(L[i], 1, p - 1)] = substr(L[i], p + 1)
	}
}
FNR == 1 { next }
$2 == "loop" && $10 != "" { loopr[$1] = $10 }
$2 == "nbdkit" && $10 != "" { nbdr[$1] = $10 }
$2 ~ /^ublk-mem/ && $10 != "" {
	rows++
	rjob[rows] = $1
	rdev[rows] = $2
	ratio[rows] = $10
	rlo[rows] = $11
	rhi[rows] = $12
}
END {
	X0 = 270; X1 = 700; W = 800
	TOP = 96; BAR = 22; GAP = 12
	xmax = 1.25
	for (i = 1; i <= rows; i++) {
		if (rhi[i] > xmax) xmax = rhi[i]
		if (loopr[rjob[i]] > xmax) xmax = loopr[rjob[i]]
		if (nbdr[rjob[i]] > xmax) xmax = nbdr[rjob[i]]
	}
	step = xmax > 3 ? 1 : (xmax > 1.5 ? 0.5 : 0.25)
	xmax = int(xmax / step + 0.999) * step
	H = TOP + rows * (BAR + GAP) + 70 + (two ? 20 : 0)
	printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"13\">\n", W, H, W, H
	printf "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H
	printf "<text x=\"%d\" y=\"24\" font-size=\"16\" font-weight=\"bold\">ublk-mem IOPS relative to brd (1.0 = as fast as brd; higher is better)</text>\n", 12
	printf "<text x=\"%d\" y=\"44\" fill=\"#555\">%s</text>\n", 12, esc(subtitle)
	printf "<text x=\"%d\" y=\"62\" fill=\"#555\">%s</text>\n", 12, esc(subtitle2)
	if (rows == 0)
		printf "<text x=\"%d\" y=\"%d\" fill=\"#c0392b\">brd was not measured: no ratios to show</text>\n", X0, TOP + 10
	bottom = TOP + rows * (BAR + GAP)
	for (g = 0; g <= xmax + 1e-9; g += step) {
		printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>\n", x(g), TOP - 6, x(g), bottom
		printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">%g</text>\n", x(g), bottom + 16, g
	}
	for (i = 1; i <= rows; i++) {
		y = TOP + (i - 1) * (BAR + GAP)
		lab = label[rjob[i]]
		if (rdev[i] == "ublk-mem-q2")
			lab = lab ", -q 2"
		else if (rjob[i] == scaling)
			lab = lab ", -q 1"
		if (two && rdev[i] == "ublk-mem")
			lab = lab ", A"
		else if (rdev[i] == "ublk-mem-b")
			lab = lab ", B"
		fill = rdev[i] == "ublk-mem-q2" ? "#7fa8dc" : rdev[i] == "ublk-mem-b" ? "#3a9a5b" : "#2f6db5"
		printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", X0 - 8, y + BAR / 2 + 5, esc(lab)
		printf "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n", X0, y, x(ratio[i]) - X0, BAR, fill
		lo = rlo[i]; hi = rhi[i]
		if (hi - lo > 0.005)
			printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#222\" stroke-width=\"1.5\"/>\n", x(lo), y + BAR / 2, x(hi), y + BAR / 2
		if (rjob[i] in loopr) {
			lx = x(loopr[rjob[i]]); ly = y + BAR / 2
			printf "<path d=\"M%.1f %.1fl5 5l-5 5l-5 -5z\" fill=\"#888\" stroke=\"white\"/>\n", lx, ly - 5
		}
		if (rjob[i] in nbdr)
			printf "<circle cx=\"%.1f\" cy=\"%d\" r=\"4.5\" fill=\"#e67e22\" stroke=\"white\"/>\n", x(nbdr[rjob[i]]), y + BAR / 2
		# The value right of everything drawn on the row, clear of the 1.0 line.
		tx = x(hi > ratio[i] ? hi : ratio[i]) + 8
		if (rjob[i] in loopr && x(loopr[rjob[i]]) + 14 > tx) tx = x(loopr[rjob[i]]) + 14
		if (rjob[i] in nbdr && x(nbdr[rjob[i]]) + 14 > tx) tx = x(nbdr[rjob[i]]) + 14
		if (tx < x(1) + 4 && tx + 34 > x(1)) tx = x(1) + 6
		printf "<text x=\"%.1f\" y=\"%d\" font-weight=\"bold\">%.2f</text>\n", tx, y + BAR / 2 + 5, ratio[i]
	}
	printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#c0392b\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>\n", x(1), TOP - 12, x(1), bottom + 2
	printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#c0392b\">brd = 1.0</text>\n", x(1), TOP - 16
	ly = bottom + 40
	printf "<rect x=\"12\" y=\"%d\" width=\"14\" height=\"12\" fill=\"#2f6db5\"/><text x=\"32\" y=\"%d\">ublk-mem median (line: min-max of the rounds)</text>\n", ly - 10, ly
	printf "<rect x=\"350\" y=\"%d\" width=\"14\" height=\"12\" fill=\"#7fa8dc\"/><text x=\"370\" y=\"%d\">second server, -q 2</text>\n", ly - 10, ly
	if (two)
		printf "<rect x=\"12\" y=\"%d\" width=\"14\" height=\"12\" fill=\"#3a9a5b\"/><text x=\"32\" y=\"%d\">B: ublk-mem-b, the --ublk-args2 setting (A: the first)</text>\n", ly + 10, ly + 20
	printf "<path d=\"M%d %dl5 5l-5 5l-5 -5z\" fill=\"#888\"/><text x=\"%d\" y=\"%d\">loop on tmpfs</text>\n", 530, ly - 9, 542, ly
	printf "<circle cx=\"%d\" cy=\"%d\" r=\"4.5\" fill=\"#e67e22\"/><text x=\"%d\" y=\"%d\">nbdkit memory</text>\n", 650, ly - 4, 662, ly
	print "</svg>"
}'

# paired_b RAW: a line per job comparing the second server with the first:
# the median over the rounds of B's IOPS over A's in the same round, with
# the range, and both servers' median CPU per I/O.
paired_b() {
	awk -F, -v jobs="$JOBS" -v labels="$(job_labels)" "$MEDIAN_AWK"'
	BEGIN {
		n = split(labels, L, "|")
		for (i = 1; i <= n; i++) {
			p = index(L[i], "=")
			label[substr(L[i], 1, p - 1)] = substr(L[i], p + 1)
		}
	}
	FNR == 1 { next }
	$1 == "ublk-mem" { a[$2, $3] = $4; ca[$2, $3] = $10 }
	$1 == "ublk-mem-b" { b[$2, $3] = $4; cb[$2, $3] = $10 }
	END {
		nj = split(jobs, J, " ")
		for (j = 1; j <= nj; j++) {
			m = 0; mc = 0
			for (k in b) {
				split(k, kk, SUBSEP)
				if (kk[1] != J[j] || !(k in a) || a[k] <= 0)
					continue
				r[++m] = b[k] / a[k]
				if (ca[k] != "" && cb[k] != "") {
					x[++mc] = ca[k]; y[mc] = cb[k]
				}
			}
			if (!m)
				continue
			med = median(r, m)
			cpu = ""
			if (mc)
				cpu = sprintf("; server CPU %.1f (A) and %.1f (B) µs/IO", median(x, mc), median(y, mc))
			printf "- B over A, %s: %.2f (%.2f-%.2f over %d rounds)%s\n", label[J[j]], med,
				r[1], r[m], m, cpu
		}
	}' "$1"
}

# job_labels: "job=label|job=label..." for the awk programs.
job_labels() {
	for _jl2_j in $JOBS; do
		printf '%s=%s|' "$_jl2_j" "$(job_label "$_jl2_j")"
	done
}

# report: summary.csv, summary.md, ratio.svg in $OUT; the table on stdout.
report() {
	awk -v jobs="$JOBS" -v devs="ublk-mem ublk-mem-b ublk-mem-q2 brd null_blk loop nbdkit" \
		"$SUMMARY_AWK" "$OUT/raw.csv" >"$OUT/summary.csv" || die "cannot write summary.csv"
	_rep_labels=$(job_labels)
	_rep_rounds=$(meta rounds)
	_rep_runtime=$(meta runtime)
	_rep_where="$(meta machine), kernel $(meta kernel)$(
		[ -n "$(meta kver)" ] && echo " (KVER=$(meta kver))"
	), $(meta cpus) CPUs, $(meta mem_mib) MiB"
	_rep_args=$(meta ublk_args)
	_rep_args2=$(meta ublk_args2)
	_rep_second=
	if [ -n "$_rep_args2" ]; then
		_rep_second="; second server (ublk-mem-b, B in the chart):"
		_rep_second="$_rep_second \`ublk-mem $(meta size_mb)M $_rep_args2\`, measured right after the first"
	fi
	{
		echo "## ublk-mem vs the kernel's RAM disks, $(meta date)"
		echo
		echo "$(meta size_mb) MiB devices, fio $(meta fio | sed 's/^fio-//') libaio O_DIRECT, median of" \
			"$_rep_rounds round(s) of $_rep_runtime s per job (devices interleaved in each round);" \
			"IOPS min-max over the rounds; p50/p99 are completion latency;" \
			"\"vs brd\" is the median over the rounds of the device's IOPS over brd's in the same" \
			"round, \"vs brd min-max\" the range of those ratios. $_rep_where." \
			"Server: \`ublk-mem $(meta size_mb)M${_rep_args:+ $_rep_args}\`$_rep_second."
		echo
		awk -v labels="$_rep_labels" -v args1="$_rep_args" -v args2="$_rep_args2" \
			"$TABLE_AWK" "$OUT/summary.csv"
		echo
		awk -F, -v size="$(meta size_mb)" -v args1="$_rep_args" -v args2="$_rep_args2" 'FNR > 1 {
			who = $1
			if (who == "ublk-mem-q2")
				who = "ublk-mem -q 2"
			else if (who == "ublk-mem-b")
				who = "ublk-mem " args2
			else if (who == "ublk-mem" && args2 != "" && args1 != "")
				who = "ublk-mem " args1
			printf "- %s memory after the run: VmRSS %.1f MiB (peak %.1f MiB) for a %d MiB device;" \
				" %.1f MiB written to it in all (the fill and the write jobs)\n",
				who, $4 / 1024, $5 / 1024, size,
				$3 / 1048576
		}' "$OUT/memory.csv"
		[ -n "$_rep_args2" ] && paired_b "$OUT/raw.csv"
		echo "- Devices: brd rd_size=$(($(meta size_mb) * 1024)); null_blk via configfs" \
			"(size=$(meta size_mb), memory_backed=1, blocksize=512, other settings default);" \
			"loop over a file on tmpfs (buffered; tmpfs has no O_DIRECT);" \
			"nbdkit \`nbdkit -U SOCKET memory $(meta size_mb)M\` ($(meta nbdkit)) attached with" \
			"\`nbd-client -u SOCKET /dev/nbdN\` (the kernel's nbd driver, default settings);" \
			"ublk-mem -q 2 is a second server, for the 2-job run only."
		echo "- Reference job: \`fio --name=ref --filename=DEV $REF_ARGS --ioengine=libaio --direct=1\`" \
			"(1024 reads, not timed)."
		echo "- Server CPU: utime+stime of the server process (ublk-mem, nbdkit) over the run (/proc/PID/stat," \
			"1/$(meta clk_tck) s ticks) divided by the I/Os; coarse for short runs."
		[ -n "$(meta server)" ] && echo "- Server build: $(meta server); $(meta source)."
		[ -n "$(meta host)" ] && echo "- Host: $(meta host)."
		[ -n "$(meta skipped)" ] && echo "- Skipped: $(meta skipped)"
		[ "$(meta failures)" != 0 ] && echo "- Failed runs: $(meta failures) (see the log)"
	} >"$OUT/summary.md"
	_rep_sub="$(meta date); $(meta machine), kernel $(meta kernel), $(meta cpus) CPUs"
	_rep_sub2="${_rep_args2:+A: }ublk-mem $(meta size_mb)M${_rep_args:+ $_rep_args}${_rep_args2:+, B: ublk-mem $(meta size_mb)M $_rep_args2}; fio libaio O_DIRECT;"
	_rep_sub2="$_rep_sub2 median of $_rep_rounds round(s), $_rep_runtime s per job"
	awk -v labels="$_rep_labels" -v subtitle="$_rep_sub" -v subtitle2="$_rep_sub2" \
		-v scaling="$SCALING_JOB" -v two="$([ -n "$_rep_args2" ] && echo 1 || echo 0)" \
		"$SVG_AWK" "$OUT/summary.csv" >"$OUT/ratio.svg" || die "cannot write ratio.svg"
	cat "$OUT/summary.md"
}

# section NAME: the lines between the markers of NAME in the console log.
# The end marker tells how many lines the guest printed; a kernel message
# spliced into the data would show as a difference.
section() {
	awk -v b="$CSV_BEGIN $1" -v e="$CSV_END $1" '
		{ sub(/\r$/, "") }
		index($0, e) == 1 {
			want = $0
			sub(/.*rows=/, "", want)
			if (want + 0 != n)
				printf "bench: warning: %s: %d lines in the console log, the VM printed %d\n",
					substr(b, index(b, " ") + 1), n, want > "/dev/stderr"
			exit
		}
		on { print; n++ }
		$0 == b { on = 1 }' "$OUT/console.log"
}

# relay: show the progress lines of the console output on stderr.
relay() {
	while IFS= read -r _rel_line; do
		case $_rel_line in
		bench:* | *.sh:* | init:* | FAIL* | vm:* | note:*) printf '%s\n' "$_rel_line" >&2 ;;
		esac
	done
}

# other_vms: how many qemu VMs run here besides ours (gone by the time it asks).
other_vms() {
	_ov_n=$(pgrep -c qemu-system 2>/dev/null)
	echo "${_ov_n:-0}"
}

# host_busy: note how busy this machine is before the run (LOAD_BEFORE,
# VMS_BEFORE), and warn when other work will skew the figures.
host_busy() {
	LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null)
	VMS_BEFORE=$(other_vms)
	if [ "$VMS_BEFORE" -gt 0 ]; then
		warn "$VMS_BEFORE other qemu VM(s) running here: they share the CPUs, the figures will be noisy"
	fi
	if awk -v l="${LOAD_BEFORE:-0}" -v n="$(nproc)" 'BEGIN { exit !(l >= n) }'; then
		warn "load average $LOAD_BEFORE on $(nproc) CPUs: the figures will be noisy"
	fi
}

# source_line: the meta.txt line naming the source the server was built from.
source_line() {
	if _sl2_rev=$(git -C "$HERE" rev-parse --short HEAD 2>/dev/null); then
		if [ -n "$(git -C "$HERE" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
			_sl2_rev="$_sl2_rev with uncommitted changes"
		fi
		echo "source=git $_sl2_rev"
	else
		echo "source=unknown (not a git checkout)"
	fi
}

# host_line: the meta.txt line about this machine's load around the run.
host_line() {
	echo "host=$(nproc) CPUs, load average ${LOAD_BEFORE:-?} before the run and" \
		"$(cut -d' ' -f1 /proc/loadavg) after; other VMs running: $VMS_BEFORE at the start," \
		"$(other_vms) at the end"
}

# Default: run the matrix in the test VM and report on the host.
main_vm() {
	if [ -f "$HERE/Makefile" ] && command -v make >/dev/null 2>&1; then
		make -s -C "$HERE" ublk-mem >&2 || die "make ublk-mem failed"
	fi
	[ -f "$HERE/test/vm/vm.sh" ] || die "no test/vm/vm.sh: the VM harness is missing"
	_mv_args="--rounds=$ROUNDS --runtime=$RUNTIME --jobs=$(printf '%s' "$JOBS" | tr -s ' ' ',')"
	if [ -n "$UBLK_ARGS" ]; then
		case $UBLK_ARGS in *\"*) die "--ublk-args may not hold double quotes" ;; esac
		_mv_args="$_mv_args --ublk-args=$(printf '%s' "$UBLK_ARGS" | tr -s ' \t' ',,')"
	fi
	if [ -n "$UBLK_ARGS2" ]; then
		case $UBLK_ARGS2 in *\"*) die "--ublk-args2 may not hold double quotes" ;; esac
		_mv_args="$_mv_args --ublk-args2=$(printf '%s' "$UBLK_ARGS2" | tr -s ' \t' ',,')"
	fi
	# Allow the VM the run's length, twice over, and at least vm.sh's default.
	# Under TCG each fio run costs about 2 s besides its runtime.
	_mv_runs=0
	for _mv_j in $JOBS; do
		for _mv_d in $(devices_of "$_mv_j"); do
			_mv_runs=$((_mv_runs + 1))
		done
	done
	_mv_runs=$((_mv_runs * ROUNDS))
	_mv_estimate=$((_mv_runs * (RUNTIME + 2) + 60))
	[ -z "${VM_TIMEOUT:-}" ] && [ $((_mv_estimate * 2)) -gt 1500 ] && VM_TIMEOUT=$((_mv_estimate * 2))
	[ -n "${VM_TIMEOUT:-}" ] && export VM_TIMEOUT
	# The console is quiet for one fio run at a time: keep vm.sh's hang
	# detector (VM_SILENCE, default 420 s) above that.
	[ -z "${VM_SILENCE:-}" ] && [ $((RUNTIME * 4 + 180)) -gt 420 ] && VM_SILENCE=$((RUNTIME * 4 + 180))
	[ -n "${VM_SILENCE:-}" ] && export VM_SILENCE
	KVER=${KVER:-lts}
	export KVER
	progress "booting the test VM (KVER=$KVER) for $_mv_runs runs (about $(((_mv_estimate + 59) / 60)) min under TCG)"
	progress "results: $OUT"
	host_busy
	set -f
	# shellcheck disable=SC2086 # the options, one word each
	{
		bash "$HERE/test/vm/vm.sh" bench $_mv_args
		echo $? >"$OUT/vm.rc"
	} 2>&1 | tee "$OUT/console.log" | relay
	set +f
	_mv_rc=$(cat "$OUT/vm.rc" 2>/dev/null)
	rm -f "$OUT/vm.rc"
	section raw >"$OUT/raw.csv"
	section memory >"$OUT/memory.csv"
	section meta >"$OUT/meta.txt"
	if [ "$(head -n 1 "$OUT/raw.csv")" != "$RAW_HEADER" ] || [ "$(wc -l <"$OUT/raw.csv")" -lt 2 ]; then
		echo "bench: the VM printed no results (exit status ${_mv_rc:-?}); its last words:" >&2
		tail -n 25 "$OUT/console.log" >&2
		die "see $OUT/console.log"
	fi
	_mv_qemu=$(qemu-system-x86_64 --version 2>/dev/null | head -n 1 | sed 's/.*version \([^ ]*\).*/\1/')
	{
		echo "machine=VM (qemu ${_mv_qemu:-?} TCG)"
		echo "kver=$KVER"
		host_line
		source_line
	} >>"$OUT/meta.txt"
	report
	if [ "${_mv_rc:-1}" != 0 ]; then
		warn "the VM run reported a failure (exit status ${_mv_rc:-?}): see $OUT/console.log"
		return 1
	fi
}

# --host: the same matrix on this machine.
main_host() {
	if [ ! -x "$HERE/ublk-mem" ] && [ -z "${UBLK_MEM:-}" ] && [ -f "$HERE/Makefile" ]; then
		make -s -C "$HERE" ublk-mem >&2 || die "make ublk-mem failed"
	fi
	progress "results: $OUT"
	host_busy
	run_matrix "$OUT"
	_mh_rc=$?
	[ -s "$OUT/raw.csv" ] || die "no results"
	{
		echo "machine=host $(uname -n)"
		host_line
		source_line
	} >>"$OUT/meta.txt"
	report
	return $_mh_rc
}

# --- options -----------------------------------------------------------------

# need_value OPTION VALUE: die when VALUE is empty.
need_value() {
	[ -n "${2:-}" ] || die "$1 needs a value"
}

while [ $# -gt 0 ]; do
	_opt=$1
	_val=
	case $_opt in
	--*=*)
		_val=${_opt#*=}
		_opt=${_opt%%=*}
		;;
	--rounds | --runtime | --jobs | --ublk-args | --ublk-args2 | --out | --report | --kernel)
		need_value "$1" "${2:-}"
		_val=$2
		shift
		;;
	esac
	case $_opt in
	--quick)
		ROUNDS=1
		RUNTIME=1
		;;
	--rounds) ROUNDS=$_val ;;
	--runtime) RUNTIME=$_val ;;
	--jobs) JOBS_ASKED=$(printf '%s' "$_val" | tr ',' ' ') ;;
	--ublk-args) UBLK_ARGS=$_val ;;
	--ublk-args2) UBLK_ARGS2=$_val ;;
	--kernel) KVER=$_val KERNEL_ASKED=1 ;;
	--out) OUT=$_val ;;
	--report)
		OUT=$_val
		MODE=report
		;;
	--host) MODE=host ;;
	--in-vm) MODE=in-vm ;;
	-h | --help) usage 0 ;;
	*)
		echo "bench: unknown option: $1" >&2
		usage
		;;
	esac
	shift
done
if ! is_uint "$ROUNDS" || [ "$ROUNDS" -lt 1 ]; then
	die "--rounds takes a number >= 1, not '$ROUNDS'"
fi
if ! is_uint "$RUNTIME" || [ "$RUNTIME" -lt 1 ]; then
	die "--runtime takes whole seconds >= 1, not '$RUNTIME'"
fi

if [ -n "$JOBS_ASKED" ]; then
	for _j in $JOBS_ASKED; do
		job_args "$_j" >/dev/null || die "--jobs: no job named '$_j' (jobs: $JOBS)"
	done
	JOBS=$JOBS_ASKED
fi

if [ -n "$KERNEL_ASKED" ] && [ "$MODE" != vm ]; then
	die "--kernel picks the test VM's kernel; with --host the benchmark runs on this machine's"
fi

if [ "$MODE" = in-vm ]; then
	main_in_vm
	exit $?
fi

if [ "$MODE" = report ]; then
	if [ ! -s "$OUT/raw.csv" ] || [ ! -s "$OUT/meta.txt" ]; then
		die "$OUT has no raw.csv and meta.txt from an earlier run"
	fi
	JOBS=$(meta jobs)
	report
	exit $?
fi

OUT=${OUT:-$HERE/results/bench-$(date +%Y%m%d-%H%M%S)}
if [ ! -d "$OUT" ]; then
	mkdir -p "$OUT" || die "cannot create $OUT"
	OUT_MADE=1
fi
OUT=$(cd "$OUT" && pwd)
if [ "$MODE" = host ]; then
	main_host
else
	main_vm
fi
exit $?
