#!/bin/sh
# bench.sh: ublk-mem next to the kernel's own RAM-backed block devices.
#
# usage: ./bench.sh [OPTIONS]          boot the test VM and benchmark there
#        ./bench.sh --host [OPTIONS]   benchmark on this machine (root, ublk)
#        ./bench.sh --report DIR [--report DIR...] [--doc FILE]
#
#   --kernel KVER       the VM's kernel: lts (default; Debian 12's 6.12),
#                       newest, a series (7.3) or a version (7.3.4); see
#                       test/vm/kernel.sh. KVER in the environment works too
#   --cpu MODEL         the VM's CPU, qemu's -cpu (default: the tests' max);
#                       max,erms=off,fsrm=off makes the guest kernel copy
#                       with rep movsq, which qemu runs 7 times as fast as
#                       rep movsb (see "Reading the figures" in
#                       docs/performance.md). VM_CPU in the environment too
#   --quick             a smoke run: 1 round of 1 s per job
#   --zoned             the zoned matrix: ublk-mem 256M --zoned --zone-size
#                       16M (with --ublk-args) against the kernel's zoned
#                       null_blk of ublk-mem's geometry (the reference,
#                       null_blk-zoned), fio --zonemode=zbd; its own jobs:
#                       seqwrite-4k-qd1 seqwrite-128k-qd4 randwrite-4k-qd1
#                       randread-4k-qd1 randread-4k-qd32 seqread-128k-qd8
#   --compress          the compressed matrix: ublk-mem 256M --compress (with
#                       --ublk-args) against zram of the same size with
#                       comp_algorithm lz4 (the reference, zram), on two data
#                       sets each round: (a) ext4 holding a copy of the
#                       VM's /usr (EXT4_DATA), then a read of its files,
#                       ext4-read-128k-qd8; (b) fio data 50% compressible
#                       (--buffer_compress_percentage=50 --refill_buffers),
#                       then randread-4k-qd32 randrw70-4k-qd16
#                       randwrite-4k-qd1 randread-4k-qd1 seqread-128k-qd8;
#                       each device's compression ratio after each fill,
#                       from its own statistics, in compress.csv
#   --codec             the codec benchmark, on this machine: lz4.c
#                       (bench/lz4_bench, built here) against `lz4 -b1` on
#                       the same file, one thread each, 4 KiB pages and
#                       64 KiB blocks; writes DIR/codec.txt. Alone it runs
#                       only that (into --out DIR, which may be an earlier
#                       run's); with --compress (or --zoned) after the
#                       matrix, into the same directory
#   --codec-file FILE   the codec benchmark's input (default: 64 MiB of a
#                       tar of /usr/share/doc, then 96 MiB of a tar of
#                       /usr/bin, made in a scratch directory)
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
#   --ublk-user2 UID    ublk-mem-b is run by user UID, without root: an
#                       unprivileged device (Linux 6.3) next to root's;
#                       without --ublk-args2 it gets "-q 1", the default
#   --ublk-bin2 PATH    ublk-mem-b runs this program instead (an earlier
#                       build, say: the same options, two builds compared
#                       in the same boot); without --ublk-args2 it gets
#                       "-q 1", the default
#   --ublk-plain2       with --compress: ublk-mem-b stores its data
#                       uncompressed (--ublk-args2 without the --compress
#                       the matrix adds; "-q 1" without it): what
#                       compressing costs, in the same boot
#   --out DIR           results directory (default results/bench-DATE-TIME)
#   --report DIR        only redo the table and chart of an earlier run; may
#                       be given for several runs
#   --doc FILE          with --report: write FILE (docs/performance.md), the
#                       method and each run's tables, one section per run,
#                       and its chart next to it (bench-ratio.svg, then
#                       bench-ratio-2.svg...); DIR/codec.txt, when there,
#                       adds the codec benchmark's lines; a directory
#                       of --codec alone is a section of its own
#   -h, --help          this text
#
# What is measured and how (devices, jobs, rounds, paired ratios, server
# CPU, how to read figures from the emulated VM) is the method at the head
# of docs/performance.md, which --doc writes (doc_method below). In short:
# ublk-mem, brd, null_blk, loop over tmpfs and nbdkit's memory plugin,
# 64 MiB each and filled once; fio libaio O_DIRECT jobs; a round runs every
# job on every device, the devices interleaved; medians over the rounds,
# and the ratio to brd as the median of the rounds' paired ratios. The
# zoned matrix (--zoned) does the same with a zoned ublk-mem and null_blk,
# 256 MiB in 16 MiB zones, its ratios to null_blk-zoned; the compressed
# matrix (--compress) with ublk-mem --compress and zram, 256 MiB, its
# ratios to zram and, besides, each one's compression ratio; meta.txt's
# matrix= line tells a report which matrix a run was.
# bench/devices.sh sets the devices up, bench/*.awk are the report's awk
# programs, and test/suite/lib.sh lends its helpers.
#
# Results: a Markdown table on stdout and, in the results directory,
# summary.md, summary.csv (one row per job and device), raw.csv (one row per
# run), memory.csv, meta.txt and ratio.svg (ublk-mem's IOPS relative to brd,
# null_blk-zoned or zram); compress.csv (a row per data set, device and
# round) in a compressed run; codec.txt with --codec.
# test/checks/bench-check.sh DIR checks that such a directory is complete.
#
# Inside the VM test/vm/init runs "bench.sh --in-vm OPTIONS" (the image
# holds /bench.sh, /bench/ and /test/): that part runs the matrix in
# busybox sh and prints its CSV on the console between
# @@BENCH-CSV-BEGIN NAME and @@BENCH-CSV-END NAME lines, which the host part
# reads back from the console log. Progress lines on stderr start "bench: ".
#
# Environment: UBLK_MEM (the server binary), FIO (default /usr/bin/fio),
# NBDKIT and NBD_CLIENT (default /usr/bin/nbdkit, /usr/sbin/nbd-client),
# UBLKMEM_MODULES (directory of .ko files, used before modprobe), EXT4_DATA
# (the directory the compressed matrix copies into ext4; default /usr),
# LZ4 (the reference codec's tool, default lz4), CC (for lz4_bench), KVER, and
# for the VM the variables test/vm/vm.sh documents (VM_SMP, VM_TIMEOUT...).

set -u

ROUNDS=3
RUNTIME=5
UBLK_ARGS=
UBLK_ARGS2=
UBLK_BIN2=
UBLK_USER2=
UBLK_PLAIN2=
JOBS_ASKED=
OUT=
OUT_MADE=
MODE=vm
KERNEL_ASKED=
CPU_ASKED=
REPORT_DIRS=
DOC=
ZONED=
COMPRESS=
CODEC=
CODEC_FILE=

# The jobs of the two matrices (use_matrix picks one).
JOBS_STANDARD="ref-seqread-4k-qd1 randread-4k-qd1 randread-4k-qd32 randwrite-4k-qd1 seqread-128k-qd8"
JOBS_STANDARD="$JOBS_STANDARD randrw70-4k-qd16 randread-4k-qd32x2"
JOBS_ZONED="seqwrite-4k-qd1 seqwrite-128k-qd4 randwrite-4k-qd1 randread-4k-qd1 randread-4k-qd32"
JOBS_ZONED="$JOBS_ZONED seqread-128k-qd8"
JOBS_COMPRESS="ext4-read-128k-qd8 randread-4k-qd32 randrw70-4k-qd16 randwrite-4k-qd1"
JOBS_COMPRESS="$JOBS_COMPRESS randread-4k-qd1 seqread-128k-qd8"
# The compressed matrix's data sets, in round order: ext4 holding a copy of
# EXT4_DATA (its jobs, ext4-*, read the files), then fio's data of the
# compressibility FIO_BASE asks (every other job). The file system is made
# without lazy initialisation, so nothing writes to it in the background.
DATA_SETS="ext4 fio50"
EXT4_DATA=${EXT4_DATA:-/usr}
MKFS_ARGS="-q -F -E lazy_itable_init=0,lazy_journal_init=0"
# The zoned matrix's zone size (MiB), and the zones fio keeps open at once
# in its write jobs (lowered to the devices' limit when they have a lower one).
ZONE_MB=16
ZBD_OPEN=8
# The reference job, exactly as it is usually quoted (4 MiB, not timed).
REF_ARGS="--rw=read --bs=4k --iodepth=1 --size=4M"
FIO_REPORT="--group_reporting --unified_rw_reporting=both --output-format=json"

# use_matrix standard|zoned|compress: the matrix to run or report on, and what
# follows from it: MATRIX, SIZE_MB, JOBS_ALL (every job, in round order),
# DEVICES (every job runs on these, in this order, within a round), REF (the
# device the ratios are to), REPORT_DEVS (the rows of a job in the tables),
# SCALING_JOB (the job that also runs on a second server with two queues,
# ublk-mem-q2; none in the zoned matrix), FIO_BASE and FILL_ARGS (the
# options of every fio run before the job's own; the fill's).
use_matrix() {
	if [ "$1" = zoned ]; then
		MATRIX=zoned
		SIZE_MB=256
		JOBS_ALL=$JOBS_ZONED
		DEVICES="ublk-mem null_blk-zoned"
		REF=null_blk-zoned
		REPORT_DEVS="ublk-mem ublk-mem-b null_blk-zoned"
		SCALING_JOB=
		FIO_BASE="--ioengine=libaio --direct=1 --zonemode=zbd"
	elif [ "$1" = compress ]; then
		MATRIX='compress'
		SIZE_MB=256
		JOBS_ALL=$JOBS_COMPRESS
		DEVICES="ublk-mem zram"
		REF=zram
		REPORT_DEVS="ublk-mem ublk-mem-b zram"
		SCALING_JOB=
		FIO_BASE="--ioengine=libaio --direct=1 --buffer_compress_percentage=50 --refill_buffers"
	else
		MATRIX=standard
		SIZE_MB=64
		JOBS_ALL=$JOBS_STANDARD
		DEVICES="ublk-mem brd null_blk loop nbdkit"
		REF=brd
		REPORT_DEVS="ublk-mem ublk-mem-b ublk-mem-q2 brd null_blk loop nbdkit"
		SCALING_JOB=randread-4k-qd32x2
		FIO_BASE="--ioengine=libaio --direct=1"
		# The codec benchmark alone has no devices: the standard's
		# settings, unused.
		[ "$1" = codec ] && MATRIX=codec
	fi
	FILL_ARGS="--rw=write --bs=1M --iodepth=4 --size=${SIZE_MB}M"
}
use_matrix standard
JOBS=$JOBS_ALL

CSV_BEGIN=@@BENCH-CSV-BEGIN
CSV_END=@@BENCH-CSV-END
RAW_HEADER="device,job,round,iops,mib_s,p50_us,p99_us,ios,write_bytes,cpu_us_per_io"
MEM_HEADER="device,size_bytes,bytes_written,vmrss_kib,vmhwm_kib"
COMP_HEADER="device,data,round,orig_bytes,compr_bytes,mem_used_bytes,same_pages,huge_pages"

# The repository (the image's root in the VM), and the awk programs.
HERE=$(cd "$(dirname "$0")" && pwd)
HERE=${HERE%/}
AWK_DIR=$HERE/bench
START=$(date +%s)
COMMAND="./bench.sh $(
	for _a in "$@"; do
		case $_a in
		'' | *[!A-Za-z0-9_./=,:+@%-]*) _a="'$(printf '%s' "$_a" | sed "s/'/'\\\\''/g")'" ;;
		esac
		printf '%s ' "$_a"
	done
)"
COMMAND=${COMMAND% }

# The integration suite's helpers (alive, load_module, wait_for, wait_until,
# first_tool, rss_kb, mem_kb, run_with_timeout...), without its scratch
# directory and traps. lib.sh gives UBLK_MEM and FIO the suite's defaults;
# run_matrix picks bench.sh's own, so what the caller set is kept.
_ub=${UBLK_MEM:-} _fio=${FIO:-}
TEST_ROOT=$HERE/test
UBLKMEM_LIB_ONLY=1
# shellcheck source-path=SCRIPTDIR source=test/suite/lib.sh
. "$TEST_ROOT/suite/lib.sh"
UBLK_MEM=$_ub FIO=$_fio
# The devices: setup_*, teardown, dev_path, dev_pid, warn, skip_device.
# shellcheck source-path=SCRIPTDIR source=bench/devices.sh
. "$HERE/bench/devices.sh"

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

# =========================================================================
# The jobs.
# =========================================================================

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
	seqwrite-4k-qd1) echo "seq write 4k QD1" ;;
	seqwrite-128k-qd4) echo "seq write 128k QD4" ;;
	ext4-read-128k-qd8) echo "ext4: read the files 128k QD8" ;;
	*) echo "$1" ;;
	esac
}

# job_labels: "job=label|job=label..." for the awk programs.
job_labels() {
	for _jl2_j in $JOBS; do
		printf '%s=%s|' "$_jl2_j" "$(job_label "$_jl2_j")"
	done
}

# job_args JOB [SECONDS]: fio options of JOB besides the common ones
# (FIO_BASE), status 1 when the matrix has no JOB; a timed job runs
# SECONDS (default RUNTIME). In the zoned matrix a write job keeps at most
# ZBD_OPEN zones open, and fio resets a full zone before writing it again.
# An ext4-* job runs on the files of the device's file system (fio
# --opendir, which leaves symbolic links out), not on the device.
job_args() {
	case " $JOBS_ALL " in *" $1 "*) ;; *) return 1 ;; esac
	_ja_timed="--time_based --runtime=${2:-$RUNTIME} --norandommap"
	_ja_open=
	[ "$MATRIX" = zoned ] && _ja_open=" --max_open_zones=$ZBD_OPEN"
	case $1 in
	ref-seqread-4k-qd1) echo "$REF_ARGS" ;;
	seqwrite-4k-qd1) echo "--rw=write --bs=4k --iodepth=1 $_ja_timed$_ja_open" ;;
	seqwrite-128k-qd4) echo "--rw=write --bs=128k --iodepth=4 $_ja_timed$_ja_open" ;;
	randread-4k-qd1) echo "--rw=randread --bs=4k --iodepth=1 $_ja_timed" ;;
	randread-4k-qd32) echo "--rw=randread --bs=4k --iodepth=32 $_ja_timed" ;;
	randwrite-4k-qd1) echo "--rw=randwrite --bs=4k --iodepth=1 $_ja_timed$_ja_open" ;;
	seqread-128k-qd8) echo "--rw=read --bs=128k --iodepth=8 $_ja_timed" ;;
	randrw70-4k-qd16) echo "--rw=randrw --rwmixread=70 --bs=4k --iodepth=16 $_ja_timed" ;;
	randread-4k-qd32x2) echo "--rw=randread --bs=4k --iodepth=32 --numjobs=2 $_ja_timed" ;;
	ext4-read-128k-qd8) echo "--rw=read --bs=128k --iodepth=8 $_ja_timed" ;;
	*) return 1 ;;
	esac
}

# devices_of JOB: the devices JOB runs on, in round order.
devices_of() {
	_do_b=
	[ -n "$UBLK_ARGS2" ] && _do_b=" ublk-mem-b"
	if [ -n "$SCALING_JOB" ] && [ "$1" = "$SCALING_JOB" ]; then
		echo "ublk-mem$_do_b ublk-mem-q2 ${DEVICES#ublk-mem }"
	else
		echo "ublk-mem$_do_b ${DEVICES#ublk-mem }"
	fi
}

# =========================================================================
# The matrix: runs where the devices are (inside the VM, or with --host).
# =========================================================================

WORK=
FAILURES=0

# cpu_ticks PID: utime + stime of the whole process, in clock ticks
# (/proc/PID/stat fields 14 and 15; the name in field 2 may hold spaces).
cpu_ticks() {
	_ct_s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	echo "${_ct_s##*) }" | awk '{ print $12 + $13 }'
}

# run_fio NAME TARGET JSON FIO-OPTIONS...: one fio run, JSON output in
# JSON; TARGET is a device, or a directory whose files fio reads.
run_fio() {
	_rf_name=$1 _rf_target=--filename=$2 _rf_json=$3
	[ -d "$2" ] && _rf_target=--opendir=$2
	shift 3
	# A run longer than this has hung (a dead server, say).
	# shellcheck disable=SC2086 # FIO_BASE, FIO_REPORT: options, one word each
	(cd "$WORK" && run_with_timeout $((RUNTIME * 4 + 120)) "$FIO" --name="$_rf_name" \
		"$_rf_target" $FIO_BASE "$@" $FIO_REPORT --output="$_rf_json") \
		>"$WORK/fio.err" 2>&1
}

# fill NAME: write the whole device once, so reads find data.
fill() {
	_fil_dev=$(dev_path "$1")
	progress "filling $1 ($_fil_dev, $SIZE_MB MiB)"
	# shellcheck disable=SC2086 # the fill's options, one word each
	if ! run_fio fill "$_fil_dev" "$WORK/fill.json" $FILL_ARGS; then
		warn "filling $1 failed: $(tail -n 5 "$WORK/fio.err")"
		return 1
	fi
	add_written "$1" $((SIZE_MB * 1048576))
}

# bench_one ROUND JOB NAME: run JOB on device NAME and add a row to raw.csv.
bench_one() {
	_bo_round=$1 _bo_job=$2 _bo_name=$3
	_bo_dev=$(dev_path "$_bo_name")
	case $_bo_job in ext4-*) _bo_dev=$(mount_dir "$_bo_name") ;; esac
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
	set -- $(awk -f "$AWK_DIR/fio-json.awk" "$WORK/run.json")
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

# mem_row NAME: a memory.csv row for a server (ublk-mem, nbdkit) that runs.
mem_row() {
	_mr_pid=$(dev_pid "$1")
	[ -n "$_mr_pid" ] && alive "$_mr_pid" || return 0
	_mr_hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$_mr_pid/status")
	echo "$1,$((SIZE_MB * 1048576)),$(dev_written "$1"),$(rss_kb "$_mr_pid"),$_mr_hwm" >>"$MEMCSV"
}

# queue_attr NAME ATTR: a queue attribute of device NAME, from sysfs.
queue_attr() {
	_qa_dev=$(dev_path "$1")
	cat "/sys/class/block/${_qa_dev##*/}/queue/$2" 2>/dev/null
}

# string_ops: the x86 fast string copy flags (erms, fsrm) the CPU offers, or
# "none"; the kernel copies with rep movsb when they are there. Nothing on
# other architectures (their /proc/cpuinfo has no "flags" line).
string_ops() {
	awk '/^flags/ {
		x86 = 1
		for (i = 3; i <= NF; i++)
			if ($i == "erms" || $i == "fsrm")
				s = s (s == "" ? "" : " ") $i
		exit
	}
	END { if (x86) print (s == "" ? "none" : s) }' /proc/cpuinfo 2>/dev/null
}

# copy_cost: what a 4 KiB copy costs this CPU with rep movsb and with rep
# movsq ("rep_movsb_us=6.73 rep_movsq_us=0.90", from bench/copy_cost, when
# it is there and built for this machine; nothing otherwise).
copy_cost() {
	[ -x "$AWK_DIR/copy_cost" ] && "$AWK_DIR/copy_cost" 2>/dev/null
}

# schedulers: "NAME:SCHEDULER ..." for the active devices (the one in use).
schedulers() {
	_sch_all=
	for _sch_d in $ACTIVE; do
		_sch_s=$(queue_attr "$_sch_d" scheduler | sed -n 's/.*\[\(.*\)\].*/\1/p')
		_sch_all="${_sch_all:+$_sch_all }$_sch_d:${_sch_s:-none}"
	done
	echo "$_sch_all"
}

# zbd_open_limit: lower ZBD_OPEN to the devices' open and active zone
# limits, where one is lower: fio refuses a --max_open_zones above the
# device's, and keeps each zone it writes open until it is full.
zbd_open_limit() {
	for _zol_d in $ACTIVE; do
		for _zol_a in max_open_zones max_active_zones; do
			_zol_n=$(queue_attr "$_zol_d" $_zol_a)
			is_uint "$_zol_n" || continue
			if [ "$_zol_n" = 0 ] || [ "$_zol_n" -ge "$ZBD_OPEN" ]; then
				continue
			fi
			progress "$_zol_d allows $_zol_n open zones ($_zol_a): fio keeps at most $_zol_n open"
			ZBD_OPEN=$_zol_n
		done
	done
}

# setup_devices: the matrix's devices (ACTIVE), each SIZE_MB MiB.
setup_devices() {
	if [ "$MATRIX" = compress ]; then
		progress "setting up: ublk-mem ${SIZE_MB}M $UBLK_ARGS${UBLK_ARGS2:+, ublk-mem ${SIZE_MB}M $UBLK_ARGS2}, zram lz4"
		setup_ublk || die "no ublk-mem to measure; nothing to compare"
		setup_zram
		return
	fi
	if [ "$MATRIX" = zoned ]; then
		progress "setting up: ublk-mem ${SIZE_MB}M $UBLK_ARGS${UBLK_ARGS2:+, ublk-mem ${SIZE_MB}M $UBLK_ARGS2}, null_blk zoned"
		setup_ublk || die "no ublk-mem to measure; nothing to compare"
		setup_null_blk_zoned
		zbd_open_limit
		return
	fi
	progress "setting up: ublk-mem ${SIZE_MB}M${UBLK_ARGS:+ $UBLK_ARGS}${UBLK_ARGS2:+, ublk-mem ${SIZE_MB}M $UBLK_ARGS2}, brd, null_blk, loop on tmpfs, nbdkit memory"
	setup_ublk || die "no ublk-mem to measure; nothing to compare"
	setup_brd
	setup_null_blk
	setup_loop
	setup_nbdkit
}

# run_jobs ROUND JOB...: a round of these jobs, each on its devices in turn.
run_jobs() {
	_rj_r=$1
	shift
	for _rj_job in "$@"; do
		for _rj_d in $(devices_of "$_rj_job"); do
			is_active "$_rj_d" || continue
			RUN=$((RUN + 1))
			bench_one "$_rj_r" "$_rj_job" "$_rj_d"
		done
	done
}

# --- the compressed matrix's data sets -----------------------------------------

# mount_dir NAME: where device NAME's file system is mounted.
mount_dir() {
	echo "$WORK/mnt-$1"
}

# sectors_written NAME: the sectors written to device NAME so far (field 7
# of its stat in sysfs).
sectors_written() {
	awk '{ print $7 }' "/sys/class/block/$(dev_path "$1" | sed 's|.*/||')/stat" 2>/dev/null
}

# jobs_of_set SET: the jobs (of JOBS) that run on data set SET.
jobs_of_set() {
	for _jos_j in $JOBS; do
		case $_jos_j in ext4-*) _jos_s=ext4 ;; *) _jos_s=fio50 ;; esac
		[ "$_jos_s" = "$1" ] && echo "$_jos_j"
	done
	return 0
}

# comp_row NAME SET ROUND: add device NAME's compression after data set
# SET to compress.csv, as its statistics tell it.
comp_row() {
	# An uncompressed ublk-mem-b (--ublk-plain2) has no compression to tell.
	[ "$1" = ublk-mem-b ] && [ -n "$UBLK_PLAIN2" ] && return 0
	# shellcheck disable=SC2046 # five numbers
	set -- "$1" "$2" "$3" $(comp_stats "$1")
	if [ $# -ne 8 ]; then
		warn "no compression statistics from $1"
		FAILURES=$((FAILURES + 1))
		return 1
	fi
	echo "$1,$2,$3,$4,$5,$6,$7,$8" >>"$COMPCSV"
	progress "round $3/$ROUNDS $2 on $1: $(awk -v o="$4" -v c="$5" -v m="$6" -v s="$7" -v h="$8" 'BEGIN {
		printf "%.1f MiB held in %.1f MiB compressed, ratio %.3f; %.1f MiB of memory;" \
			" %d same-filled and %d incompressible pages",
			o / 1048576, c / 1048576, (c > 0 ? o / c : 0), m / 1048576, s, h }')"
}

# discard NAME: give all of device NAME's data back (a fresh start for a
# data set).
discard() {
	# -f: util-linux asks for it when the device holds a file system (the
	# ext4 data set).
	if [ -z "$BLKDISCARD" ] || ! "$BLKDISCARD" -f "$(dev_path "$1")" 2>"$WORK/discard.err"; then
		warn "cannot discard $1: $(cat "$WORK/discard.err" 2>/dev/null)"
		return 1
	fi
}

# make_ext4_set ROUND NAME: device NAME, emptied, holds an ext4 file
# system with a copy of EXT4_DATA, unmounted (all of it written), then
# mounted read-only for the ext4 jobs.
make_ext4_set() {
	_me_dev=$(dev_path "$2")
	_me_mnt=$(mount_dir "$2")
	progress "round $1/$ROUNDS ext4 on $2: mkfs.ext4, cp -a $EXT4_DATA, umount"
	dev_umount "$2"
	discard "$2" || return 1
	_me_s0=$(sectors_written "$2")
	# shellcheck disable=SC2086 # mkfs's options, one word each
	if ! "$MKFS_EXT4" $MKFS_ARGS "$_me_dev" >"$WORK/mkfs.err" 2>&1; then
		warn "mkfs.ext4 on $2 failed: $(tail -n 3 "$WORK/mkfs.err")"
		return 1
	fi
	dev_mount "$2" "$_me_mnt" || {
		warn "cannot mount $2's ext4 on $_me_mnt"
		return 1
	}
	if ! cp -a "$EXT4_DATA" "$_me_mnt/" 2>"$WORK/cp.err"; then
		warn "cp -a $EXT4_DATA to $2 failed: $(tail -n 3 "$WORK/cp.err")"
		dev_umount "$2"
		return 1
	fi
	dev_umount "$2" || {
		warn "cannot unmount $2's ext4"
		return 1
	}
	add_written "$2" $((($(sectors_written "$2") - _me_s0) * 512))
	comp_row "$2" ext4 "$1"
	[ -n "$(jobs_of_set ext4)" ] || return 0
	dev_mount "$2" "$_me_mnt" ro || {
		warn "cannot mount $2's ext4 again"
		return 1
	}
}

# make_fio50_set ROUND NAME: device NAME, emptied, written whole by fio with
# the compressibility FIO_BASE asks.
make_fio50_set() {
	dev_umount "$2"
	discard "$2" || return 1
	fill "$2" || return 1
	comp_row "$2" fio50 "$1"
}

# make_data_set SET ROUND NAME: data set SET (of DATA_SETS) on device NAME.
make_data_set() {
	case $1 in
	ext4) make_ext4_set "$2" "$3" ;;
	fio50) make_fio50_set "$2" "$3" ;;
	*) return 1 ;;
	esac
}

# compress_round ROUND: a round of the compressed matrix: each data set made
# on every device in turn, then its jobs.
compress_round() {
	for _cr_set in $DATA_SETS; do
		for _cr_d in $ACTIVE; do
			if ! make_data_set "$_cr_set" "$1" "$_cr_d"; then
				warn "round $1: no $_cr_set data set on $_cr_d"
				FAILURES=$((FAILURES + 1))
			fi
		done
		# shellcheck disable=SC2046 # job names, one word each
		run_jobs "$1" $(jobs_of_set "$_cr_set")
	done
}

# ext4_data_line: what EXT4_DATA holds, for meta.txt.
ext4_data_line() {
	echo "$EXT4_DATA ($(find "$EXT4_DATA" -type f | wc -l) files, $(find "$EXT4_DATA" -type l |
		wc -l) symbolic links, $(du -sk "$EXT4_DATA" | awk '{ printf "%.1f", $1 / 1024 }') MiB)"
}

# run_matrix DIR: set up the devices, run every round, and write raw.csv,
# memory.csv and meta.txt into DIR (and compress.csv in the compressed
# matrix).
run_matrix() {
	RAW=$1/raw.csv
	MEMCSV=$1/memory.csv
	META=$1/meta.txt
	COMPCSV=$1/compress.csv
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
	# USER_HZ is 100 on every architecture Linux runs fio on; getconf knows.
	CLK_TCK=$(getconf CLK_TCK 2>/dev/null) || CLK_TCK=100
	is_uint "$CLK_TCK" || CLK_TCK=100

	# A zoned matrix's servers are zoned, whatever else they are asked for.
	if [ "$MATRIX" = zoned ]; then
		UBLK_ARGS="--zoned --zone-size ${ZONE_MB}M${UBLK_ARGS:+ $UBLK_ARGS}"
		[ -n "$UBLK_ARGS2" ] && UBLK_ARGS2="--zoned --zone-size ${ZONE_MB}M $UBLK_ARGS2"
	fi
	# A compressed matrix's servers compress, and the file system fits.
	if [ "$MATRIX" = compress ]; then
		UBLK_ARGS="--compress${UBLK_ARGS:+ $UBLK_ARGS}"
		[ -n "$UBLK_ARGS2" ] && [ -z "$UBLK_PLAIN2" ] && UBLK_ARGS2="--compress $UBLK_ARGS2"
		[ -n "$MKFS_EXT4" ] || die "no mkfs.ext4 (e2fsprogs) for the ext4 data set"
		[ -n "$BLKDISCARD" ] || die "no blkdiscard (util-linux) to empty the devices between data sets"
		[ -d "$EXT4_DATA" ] || die "EXT4_DATA: $EXT4_DATA is no directory"
		_rm_kb=$(du -sk "$EXT4_DATA" | awk '{ print $1 }')
		if [ "$_rm_kb" -gt $((SIZE_MB * 1024 * 3 / 5)) ]; then
			die "EXT4_DATA: $EXT4_DATA holds $((_rm_kb / 1024)) MiB, more than an ext4 of $SIZE_MB MiB" \
				"takes with room to spare (3/5 of it): set EXT4_DATA to a smaller directory"
		fi
	fi

	WORK=$(mktemp -d "${TMPDIR:-/tmp}/ublkmem-bench.XXXXXX") || die "cannot make a work directory"
	trap teardown EXIT
	trap 'exit 130' INT TERM

	setup_devices
	progress "devices:$(for _rm_d in $ACTIVE; do printf ' %s=%s' "$_rm_d" "$(dev_path "$_rm_d")"; done)"
	for _rm_d in $ACTIVE; do
		_rm_bytes=$(dev_bytes "$(dev_path "$_rm_d")")
		if [ "$_rm_bytes" != $((SIZE_MB * 1048576)) ]; then
			warn "$_rm_d is ${_rm_bytes:-?} bytes, not $SIZE_MB MiB"
		fi
	done
	# The compressed matrix fills its devices in each round, data set by
	# data set.
	if [ "$MATRIX" != compress ]; then
		for _rm_d in $ACTIVE; do
			fill "$_rm_d" || die "cannot fill $_rm_d"
		done
	fi

	echo "$RAW_HEADER" >"$RAW"
	[ "$MATRIX" = compress ] && echo "$COMP_HEADER" >"$COMPCSV"
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
		if [ "$MATRIX" = compress ]; then
			compress_round "$_rm_r"
		else
			# shellcheck disable=SC2086 # job names, one word each
			run_jobs "$_rm_r" $JOBS
		fi
		_rm_r=$((_rm_r + 1))
	done

	echo "$MEM_HEADER" >"$MEMCSV"
	for _rm_d in ublk-mem ublk-mem-q2 ublk-mem-b nbdkit; do
		mem_row "$_rm_d"
	done

	{
		echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
		echo "kernel=$(uname -r)"
		echo "cpus=$(nproc 2>/dev/null || echo '?')"
		echo "string_ops=$(string_ops)"
		echo "copy_4k=$(copy_cost)"
		echo "mem_mib=$(($(mem_kb MemTotal) / 1024))"
		echo "fio=$("$FIO" --version 2>/dev/null)"
		echo "nbdkit=$("${NBDKIT:-nbdkit}" --version 2>/dev/null | head -n 1)"
		echo "server=$("$UBLK_MEM" -V 2>/dev/null | head -n 1), sha256 $(sha256sum <"$UBLK_MEM" | cut -c1-12)"
		echo "size_mb=$SIZE_MB"
		echo "rounds=$ROUNDS"
		echo "runtime=$RUNTIME"
		echo "ublk_args=$UBLK_ARGS"
		echo "ublk_args2=$UBLK_ARGS2"
		[ -n "$UBLK_USER2" ] && echo "user2=$UBLK_USER2"
		[ -n "$UBLK_PLAIN2" ] && echo "plain2=1"
		[ -n "$UBLK_BIN2" ] &&
			echo "server2=$("$UBLK_BIN2" -V 2>/dev/null | head -n 1), sha256 $(sha256sum <"$UBLK_BIN2" | cut -c1-12)"
		echo "jobs=$JOBS"
		echo "devices=${ACTIVE# }"
		echo "skipped=$SKIPPED"
		echo "failures=$FAILURES"
		echo "clk_tck=$CLK_TCK"
		echo "matrix=$MATRIX"
		echo "schedulers=$(schedulers)"
		if [ "$MATRIX" = zoned ]; then
			echo "null_blk_zoned=$NULLB_CONFIG"
			echo "zbd_max_open=$ZBD_OPEN"
		fi
		if [ "$MATRIX" = compress ]; then
			echo "zram_algorithms=$ZRAM_ALGORITHMS"
			echo "ext4_data=$(ext4_data_line)"
			echo "mkfs=mkfs.ext4 $MKFS_ARGS ($("$MKFS_EXT4" -V 2>&1 | head -n 1))"
		fi
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
	for _miv_f in raw memory compress meta; do
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

# meta KEY: a value of $OUT/meta.txt.
meta() {
	sed -n "s/^$1=//p" "$OUT/meta.txt" | head -n 1
}

# use_run DIR: report on the run in DIR: OUT, its matrix (meta.txt's;
# standard for a run that names none; codec for a directory of the codec
# benchmark alone) and JOBS.
use_run() {
	OUT=$1
	use_matrix "$(meta matrix)"
	JOBS=$(meta jobs)
}

# bench_awk PROGRAM [AWK ARGS...]: run bench/PROGRAM.awk after the shared
# functions of bench/lib.awk.
bench_awk() {
	_ba_prog=$1
	shift
	awk -f "$AWK_DIR/lib.awk" -f "$AWK_DIR/$_ba_prog.awk" "$@"
}

# where_line: the machine a run was on, for people.
where_line() {
	echo "$(meta machine), kernel $(meta kernel)$(
		[ -n "$(meta kver)" ] && echo " (KVER=$(meta kver))"
	), $(meta cpus) CPUs, $(meta mem_mib) MiB$(
		[ -n "$(meta string_ops)" ] && echo "; fast string copies the CPU offers: $(meta string_ops)"
	)$(copy_4k_words)"
}

# copy_4k_words: meta.txt's copy_4k in words ("; a 4 KiB copy took 6.7 µs
# with rep movsb, 0.9 µs with rep movsq"), or nothing.
copy_4k_words() {
	meta copy_4k | awk '{
		for (i = 1; i <= NF; i++) {
			split($i, kv, "=")
			us[kv[1]] = kv[2]
		}
		if (("rep_movsb_us" in us) && ("rep_movsq_us" in us))
			printf "; a 4 KiB copy took %.1f µs with rep movsb, %.1f µs with rep movsq", \
				us["rep_movsb_us"], us["rep_movsq_us"]
	}'
}

# b_label: ublk-mem-b's options as its rows show them, with who ran it
# (--ublk-user2), that it was another build (--ublk-bin2) or that it stored
# its data uncompressed in the compressed matrix (--ublk-plain2).
b_label() {
	_bl=$(meta ublk_args2)
	[ -n "$(meta plain2)" ] && _bl="$_bl, uncompressed"
	[ -n "$(meta user2)" ] && _bl="$_bl, as uid $(meta user2)"
	[ -n "$(meta server2)" ] && _bl="$_bl, build B"
	echo "$_bl"
}

# b_server: ublk-mem-b's command line, as reports name the second server,
# and that it stored its data uncompressed (--ublk-plain2).
b_server() {
	echo "\`ublk-mem $(meta size_mb)M $(meta ublk_args2)\`$([ -n "$(meta plain2)" ] && echo ', uncompressed')"
}

# summary_table: the Markdown table of $OUT/summary.csv.
summary_table() {
	bench_awk table -v ref="$REF" -v labels="$(job_labels)" -v args1="$(meta ublk_args)" \
		-v args2="$(b_label)" "$OUT/summary.csv"
}

# summary_lines: the list under the table: the servers' memory and, when a
# second setting was measured, how B did against A job by job.
summary_lines() {
	awk -F, -v size="$(meta size_mb)" -v args1="$(meta ublk_args)" -v args2="$(b_label)" \
		-f "$AWK_DIR/memory-lines.awk" "$OUT/memory.csv"
	[ -z "$(meta ublk_args2)" ] ||
		bench_awk paired-b -F, -v jobs="$JOBS" -v labels="$(job_labels)" "$OUT/raw.csv"
}

# data_labels: "set=label|..." for compress-table.awk.
data_labels() {
	echo "ext4=ext4 holding a copy of $(meta ext4_data | sed 's/ (.*//')|fio50=fio data, 50% compressible"
}

# compress_table: the Markdown table of $OUT/compress.csv.
compress_table() {
	bench_awk compress-table -v ref="$REF" -v sets="$DATA_SETS" -v devs="$REPORT_DEVS" \
		-v labels="$(data_labels)" "$OUT/compress.csv"
}

# compress_lines: the compressed matrix's table of compression and how it
# was measured, for summary.md and the document.
compress_lines() {
	echo "Compression, from each device's own statistics after each data set was written, median" \
		"over the rounds: \"data held\" is orig_data_size, \"compressed\" compr_data_size (zram's" \
		"mm_stat fields 1 and 2; \`ublk-mem stats\`), same-filled pages held but not compressed;" \
		"\"ratio\" is the one over the other and \"vs $REF\" the median of the rounds' paired ratios" \
		"of ratios; \"memory used\" is mem_used_total, what the store takes with its allocator's" \
		"overhead; \"same\" counts the pages stored as their fill word (same_pages) and \"huge\"" \
		"those stored whole, as compressing them saved too little (huge_pages)."
	echo
	compress_table
}

# codec_lines: the codec benchmark's table, when DIR/codec.txt is there.
codec_lines() {
	[ -s "$OUT/codec.txt" ] || return 0
	echo
	echo "### Codec"
	echo
	echo "The lines of \`codec.txt\` in the results directory, as the codec benchmark wrote them:"
	echo
	awk -f "$AWK_DIR/codec-table.awk" "$OUT/codec.txt"
}

# report_title: the heading of a run's section, without the date.
report_title() {
	if [ "$MATRIX" = zoned ]; then
		echo "zoned: ublk-mem --zoned vs null_blk zoned"
	elif [ "$MATRIX" = compress ]; then
		echo "compressed: ublk-mem --compress vs zram"
	elif [ "$MATRIX" = codec ]; then
		echo "codec: lz4.c vs the lz4 tool"
	else
		echo "ublk-mem vs the kernel's RAM disks"
	fi
}

# report_devices: the lines of summary.md on how the devices were made.
report_devices() {
	if [ "$MATRIX" = compress ]; then
		echo "- Devices: zram with comp_algorithm lz4 (the kernel offered: $(meta zram_algorithms))," \
			"disksize $(meta size_mb)M, other settings default."
		echo "- Data sets, made afresh on each device in every round after a discard of the whole" \
			"device: (a) ext4, \`$(meta mkfs | sed 's/ (.*//')\`, mounted, \`cp -a\` of" \
			"$(meta ext4_data), unmounted; then mounted read-only for the ext4 job, which reads the" \
			"files with fio --opendir; (b) \`fio $FILL_ARGS $FIO_BASE\`, then the other jobs."
		return
	fi
	if [ "$MATRIX" = zoned ]; then
		echo "- Devices: null_blk zoned via configfs ($(meta null_blk_zoned | sed 's/ /, /g'), other" \
			"settings default), the geometry of ublk-mem's device; I/O schedulers: $(meta schedulers)."
		echo "- Fill: \`fio $FILL_ARGS $FIO_BASE\` leaves every zone full. Write jobs write at" \
			"the write pointers of at most $(meta zbd_max_open) open zones (--max_open_zones) and fio" \
			"resets a full zone before writing it again; read jobs read below the write pointers."
		return
	fi
	echo "- Devices: brd rd_size=$(($(meta size_mb) * 1024)); null_blk via configfs" \
		"(size=$(meta size_mb), memory_backed=1, blocksize=512, other settings default);" \
		"loop over a file on tmpfs (buffered; tmpfs has no O_DIRECT);" \
		"nbdkit \`nbdkit -U SOCKET memory $(meta size_mb)M\` ($(meta nbdkit)) attached with" \
		"\`nbd-client -u SOCKET /dev/nbdN\` (the kernel's nbd driver, default settings);" \
		"ublk-mem -q 2 is a second server, for the 2-job run only."
	echo "- Reference job: \`fio --name=ref --filename=DEV $REF_ARGS $FIO_BASE\`" \
		"(1024 reads, not timed)."
}

# report: summary.csv, summary.md, ratio.svg in $OUT; the table on stdout.
# For the codec benchmark alone, summary.md with its table.
report() {
	if [ "$MATRIX" = codec ]; then
		{
			echo "## $(report_title), $(meta date)"
			echo
			echo "$(meta machine), kernel $(meta kernel), $(meta cpus) CPUs, $(meta mem_mib) MiB."
			[ -n "$(meta host)" ] && echo "Host: $(meta host)."
			codec_lines
		} >"$OUT/summary.md"
		cat "$OUT/summary.md"
		return
	fi
	bench_awk summary -v jobs="$JOBS" -v devs="$REPORT_DEVS" -v ref="$REF" \
		"$OUT/raw.csv" >"$OUT/summary.csv" || die "cannot write summary.csv"
	_rep_rounds=$(meta rounds)
	_rep_runtime=$(meta runtime)
	_rep_args=$(meta ublk_args)
	_rep_args2=$(meta ublk_args2)
	_rep_second=
	if [ -n "$_rep_args2" ]; then
		_rep_second="; second server (ublk-mem-b, B in the chart): $(b_server), measured right after the first"
	fi
	_rep_what="$(meta size_mb) MiB devices"
	_rep_fio="libaio O_DIRECT"
	_rep_servers="ublk-mem, nbdkit"
	if [ "$MATRIX" = compress ]; then
		_rep_what="$(meta size_mb) MiB compressed devices"
		_rep_fio="libaio O_DIRECT, 50% compressible data"
		_rep_servers=ublk-mem
	fi
	if [ "$MATRIX" = zoned ]; then
		_rep_what="$(meta size_mb) MiB host-managed zoned devices"
		_rep_fio="libaio O_DIRECT --zonemode=zbd"
		_rep_servers=ublk-mem
	fi
	{
		echo "## $(report_title), $(meta date)"
		echo
		echo "$_rep_what, fio $(meta fio | sed 's/^fio-//') $_rep_fio, median of" \
			"$_rep_rounds round(s) of $_rep_runtime s per job (devices interleaved in each round);" \
			"IOPS min-max over the rounds; p50/p99 are completion latency;" \
			"\"vs $REF\" is the median over the rounds of the device's IOPS over $REF's in the same" \
			"round, \"vs $REF min-max\" the range of those ratios. $(where_line)." \
			"Server: \`ublk-mem $(meta size_mb)M${_rep_args:+ $_rep_args}\`$_rep_second."
		echo
		summary_table
		echo
		if [ "$MATRIX" = compress ]; then
			compress_lines
			echo
		fi
		summary_lines
		report_devices
		echo "- Server CPU: utime+stime of the server process ($_rep_servers) over the run (/proc/PID/stat," \
			"1/$(meta clk_tck) s ticks) divided by the I/Os; coarse for short runs."
		[ -n "$(meta server)" ] && echo "- Server build: $(meta server); $(meta source)."
		[ -n "$(meta server2)" ] && echo "- ublk-mem-b's build: $(meta server2)."
		[ -n "$(meta user2)" ] && echo "- ublk-mem-b was run by uid $(meta user2), without root: an unprivileged device."
		[ -n "$(meta host)" ] && echo "- Host: $(meta host)."
		[ -n "$(meta skipped)" ] && echo "- Skipped: $(meta skipped)"
		[ "$(meta failures)" != 0 ] && echo "- Failed runs: $(meta failures) (see the log)"
		codec_lines
	} >"$OUT/summary.md"
	_rep_sub="$(meta date); $(meta machine), kernel $(meta kernel), $(meta cpus) CPUs"
	_rep_sub2="${_rep_args2:+A: }ublk-mem $(meta size_mb)M${_rep_args:+ $_rep_args}${_rep_args2:+, B: ublk-mem $(meta size_mb)M $_rep_args2}; fio $_rep_fio;"
	_rep_sub2="$_rep_sub2 median of $_rep_rounds round(s), $_rep_runtime s per job"
	bench_awk ratio-svg -v ref="$REF" -v labels="$(job_labels)" -v subtitle="$_rep_sub" \
		-v subtitle2="$_rep_sub2" -v scaling="$SCALING_JOB" \
		-v two="$([ -n "$_rep_args2" ] && echo 1 || echo 0)" \
		-v scale="$([ "$MATRIX" = standard ] && echo 1 || echo 0)" \
		"$OUT/summary.csv" >"$OUT/ratio.svg" || die "cannot write ratio.svg"
	cat "$OUT/summary.md"
}

# --- docs/performance.md -----------------------------------------------------

# shown_path PATH: PATH relative to the repository when it is inside it.
shown_path() {
	case $1 in
	"$HERE"/*) echo "${1#"$HERE"/}" ;;
	*) echo "$1" ;;
	esac
}

# doc_method: the method, what every run in the document shares.
doc_method() {
	sed -e "s|@SIZE@|$SIZE_MB|g" -e "s|@RD_SIZE@|$((SIZE_MB * 1024))|g" \
		-e "s|@FIO_BASE@|$FIO_BASE|g" -e "s|@FIO_REPORT@|$FIO_REPORT|g" \
		-e "s|@FILL_ARGS@|$FILL_ARGS|g" -e "s|@RUNTIME@|$RUNTIME_DEFAULT|g" <<'EOF'
## Method

### What is measured

`./bench.sh` measures ublk-mem next to the kernel's own RAM-backed block devices and next to
the userspace RAM disk people use today, all of @SIZE@ MiB, in one boot of the project's test
VM (or, with `--host`, on a machine whose kernel has ublk):

- **ublk-mem**: `ublk-mem @SIZE@M` with the run's options (`--ublk-args`). With `--ublk-args2`
  a second server, ublk-mem-b, runs every job right after the first: two settings compared in
  the same boot (A is the first, B the second, in the tables and the chart). `--ublk-bin2 PATH`
  makes B another build (an earlier one: old and new paired round by round), and
  `--ublk-user2 UID` has B run by an ordinary user, without root: an unprivileged device, its
  nodes handed over by `ublk-mem chown` as the udev rule does.
- **ublk-mem -q 2**: a second server with two queues, for the two-job run only, to show queue
  scaling.
- **brd**: `modprobe brd rd_nr=1 rd_size=@RD_SIZE@`.
- **null_blk**: made through configfs: size=@SIZE@ (MB), memory_backed=1, blocksize=512, other
  settings default.
- **loop**: over a file on a tmpfs of its own; buffered, as tmpfs has no O_DIRECT.
- **nbdkit**: nbdkit's memory plugin, `nbdkit -U SOCKET memory @SIZE@M`, attached with
  `nbd-client -u SOCKET /dev/nbdN` through the kernel's nbd driver (default settings). Every
  request travels over the socket as an NBD message, its data copied through it both ways.

Each device is written whole once before measuring, so that reads find data:
`fio @FILL_ARGS@`.

### The jobs

Every run is one fio process on the raw device:
`fio --name=JOB --filename=DEV @FIO_BASE@ OPTIONS @FIO_REPORT@`.
The timed jobs run for the run's `--runtime` (R seconds, @RUNTIME@ by default) with
`--time_based --runtime=R --norandommap`:

EOF
	echo "| Job | Name in summary.csv and raw.csv | OPTIONS |"
	echo "|---|---|---|"
	for _dm_j in $JOBS_ALL; do
		echo "| $(job_label "$_dm_j") | \`$_dm_j\` | \`$(job_args "$_dm_j" R)\` |"
	done
	sed -e "s|@FIO_BASE@|$FIO_BASE|g" -e "s|@REF_ARGS@|$REF_ARGS|g" \
		-e "s|@SCALING@|$(job_label "$SCALING_JOB")|g" -e "s|@ROUNDS@|$ROUNDS_DEFAULT|g" <<'EOF'

The reference job is the one usually quoted for a RAM disk, 1024 reads, not timed:
`fio --name=ref --filename=DEV @REF_ARGS@ @FIO_BASE@`. It is over in a fraction
of a second, so it varies more from round to round than the timed jobs. The job with
two fio jobs ("@SCALING@") also runs on ublk-mem -q 2.

### Rounds and paired ratios

A round runs every job on every device, the devices interleaved (ublk-mem, ublk-mem-b, brd,
null_blk, loop, nbdkit for one job, then the same for the next); a run is `--rounds` rounds
(@ROUNDS@ by default). The tables give, per job and device, the median over the rounds of
IOPS, MiB/s and fio's completion latency percentiles (p50 and p99, µs), and the range
(min-max) of the rounds' IOPS.

"vs brd" is the median of the rounds' paired ratios, each the device's IOPS over brd's in the
same round, and "vs brd min-max" their range. On a shared host one round can run 40% faster or
slower than the next, for every device alike: pairing by round cancels that, where a ratio of
medians taken in different rounds would not. With a second server, "B over A" lines give B's
IOPS over A's, paired the same way.

The chart (`ratio.svg` in the results directory) draws ublk-mem's paired ratio to brd per job as
a bar, the range of the rounds' ratios as a line across it, loop (grey diamond) and nbdkit
(orange dot) for scale, and brd at 1.0.

### Server CPU and memory

Server CPU µs/IO is the server process's utime+stime (ublk-mem's, nbdkit's) over one fio run,
from /proc/PID/stat in clock ticks (1/100 s), divided by the I/Os fio completed in that run:
coarse for short runs. The kernel's devices do their work in fio's own context and have no
server ("-").

The memory lines give each server's VmRSS and VmHWM after the last round, and the bytes written
to its device in all (the fill and the write jobs). A zero_copy server's store is an unnamed
tmpfs file it does not map, which VmRSS leaves out.

### Reading the figures

- The test VM runs under software emulation (qemu TCG), roughly ten times slower than hardware:
  the absolute figures are not hardware figures. What carries over is the ratios between devices
  measured in one boot. Compare figures within one run only, never across runs, boots or
  kernels: the same job on the same device may differ by tens of percent from boot to boot.
- The VM's CPU is qemu's `max` model unless a run says otherwise (`--cpu`, on its Machine line).
  That model offers ERMS, so the guest kernel copies with `rep movsb`, which TCG runs one byte
  per step. The Machine line gives the flags the guest kernel saw and what a 4 KiB copy took in
  that VM with `rep movsb` and with `rep movsq` (`bench/copy_cost`; 6.6-6.7 and 0.9 µs in the
  VMs here, 0.02 µs each on the host). The kernel copies every ublk request's data once, between
  the server's memory and the request's pages, in every copy mode; zram decompresses straight
  into the request's page, with no such copy. Where the server's queue thread is busy all the
  time the copy's cost comes off its speed: on 7.3.4 at 4 KiB random reads QD32, taking the flags
  away (`--cpu max,erms=off,fsrm=off`, or only the kernel's with `clearcpuid=erms,fsrm`) raised
  ublk-mem `--compress`, whose queue thread decodes besides, by 35-65% and cut its CPU per read
  by 6-8 µs, most of it the 5.8 µs the two copies differ by; plain ublk-mem, whose queue thread
  is not what limits it at that depth, did not move. Compare runs only with runs on the same model.
- Read a ratio with its range: where the min-max of the rounds holds 1.0, the devices are level
  within what this machine can tell. Under emulation brd's own QD32 speed varies widely from
  round to round and boot to boot, and so does any ratio to it at that depth.
- At queue depth 1 every request crosses to the server thread and back, which costs about what a
  loop device's round trip costs; with requests in flight the crossings are batched.
- Two jobs scale only with more CPUs than jobs plus queues. On the VM's 2 CPUs one fio job at
  QD32 already keeps both busy (fio one, the server most of the other), so a second job, or a
  second queue, only competes for them.
- Each run names its machine and how busy the host was before and after it (load average, other
  VMs): other work on the host makes the figures noisy.
- A run of one round (`--quick`) has no medians and no ranges: a smoke run, not figures to quote.

### Running it

    ./bench.sh [--kernel KVER] [--rounds N] [--runtime SECONDS] [--jobs LIST]
               [--ublk-args "ARGS"] [--ublk-args2 "ARGS"]
    ./bench.sh --report results/bench-DATE-TIME [--report ...] --doc docs/performance.md

A run writes `results/bench-DATE-TIME/`: summary.md, summary.csv (a row per job and device),
raw.csv (a row per fio run), memory.csv, meta.txt (the machine, kernel, versions, options and
the command) and ratio.svg; `test/checks/bench-check.sh DIR` checks that it is complete, and
`./bench.sh --help` documents the options. This document is written from such directories by
`--report DIR --doc FILE`, one section per run.
EOF
}

# doc_method_zoned: the method of the zoned matrix, after doc_method's
# when the document holds a zoned run.
doc_method_zoned() {
	use_matrix zoned
	sed -e "s|@SIZE@|$SIZE_MB|g" -e "s|@ZONE@|$ZONE_MB|g" -e "s|@REF@|$REF|g" \
		-e "s|@FIO_BASE@|$FIO_BASE|g" -e "s|@FILL_ARGS@|$FILL_ARGS|g" <<'EOF'

### The zoned matrix

`./bench.sh --zoned` measures a zoned ublk-mem next to the kernel's zoned null_blk, in a boot of
its own, with the rounds, paired ratios, server CPU and memory lines described above; its
sections below are titled "zoned: ublk-mem --zoned vs null_blk zoned". Both devices are
host-managed zoned, @SIZE@ MiB in zones of @ZONE@ MiB, written only at each zone's write
pointer:

- **ublk-mem**: `ublk-mem @SIZE@M --zoned --zone-size @ZONE@M` with the run's options
  (`--ublk-args`), which serves in user_copy mode; with `--ublk-args2`, ublk-mem-b as above.
- **@REF@**, the device the ratios are to: null_blk made through configfs with
  size=@SIZE@ (MB), memory_backed=1, zoned=1, zone_size=@ZONE@ (MB), zone_nr_conv=0 and no open
  or active zone limit (zone_max_open=0, zone_max_active=0), other settings default, in
  ublk-mem's logical block size (512 bytes unless `--ublk-args` has `-b`). These are read from
  ublk-mem's device once it is live, so that options changing its zones (`--max-open-zones`,
  `--conventional-zones`, `--zone-capacity`, `-b`) change null_blk's alike; each run's
  section lists what was set.

Every fio run has `--zonemode=zbd`, so fio reads the zones' state first and writes only at write
pointers: `fio --name=JOB --filename=DEV @FIO_BASE@ OPTIONS ...`. The fill,
`fio @FILL_ARGS@` with the same options, leaves every zone full. Then, in a round, each
job in this order:

EOF
	echo "| Job | Name in summary.csv and raw.csv | OPTIONS |"
	echo "|---|---|---|"
	for _dmz_j in $JOBS_ALL; do
		echo "| $(job_label "$_dmz_j") | \`$_dmz_j\` | \`$(job_args "$_dmz_j" R)\` |"
	done
	sed -e "s|@OPEN@|$ZBD_OPEN|g" <<'EOF'

A write job keeps at most @OPEN@ zones open (`--max_open_zones`; fewer when a device's open or
active limit is lower). When the zone a write goes to is full, fio resets it and writes from
its start, so a timed write job goes on for as long as it runs; it does not verify, which the
resets would defeat. A random write lands at the write pointer of one of the open zones: "rand
write" is as many sequential streams as zones are open, one picked at random for each write.
Reads stay below the write pointers, in the data the fill and the write jobs left. Both devices
start the rounds full, and after each job their zones differ only by what fio did to them,
which depends on how much each wrote in the time.

A zone reset gives ublk-mem's memory for the zone back, and null_blk discards the zone's pages,
so the write jobs also measure freeing and allocating memory. The run is

    ./bench.sh --zoned [--kernel KVER] [--rounds N] [--runtime SECONDS] [--jobs LIST]
               [--ublk-args "ARGS"] [--ublk-args2 "ARGS"]
EOF
}

# doc_method_compress: the method of the compressed matrix, after
# doc_method's when the document holds a compressed run.
doc_method_compress() {
	use_matrix compress
	sed -e "s|@SIZE@|$SIZE_MB|g" -e "s|@REF@|$REF|g" -e "s|@MKFS@|$MKFS_ARGS|g" \
		-e "s|@FIO_BASE@|$FIO_BASE|g" -e "s|@FILL_ARGS@|$FILL_ARGS|g" <<'EOF'

### The compressed matrix

`./bench.sh --compress` measures ublk-mem's compressed store next to zram, the kernel's
compressed RAM disk, in a boot of its own, with the rounds, paired ratios, server CPU and memory
lines described above; its sections below are titled "compressed: ublk-mem --compress vs zram".
Both devices are @SIZE@ MiB and keep each 4 KiB page LZ4-compressed, a page of one repeated
word as that word:

- **ublk-mem**: `ublk-mem @SIZE@M --compress` with the run's options (`--ublk-args`); with
  `--ublk-args2`, ublk-mem-b as above. With `--ublk-plain2` ublk-mem-b stores its data as it
  is, not compressed: what compressing costs the same server in the same boot (it has no
  compression to report, so no row in the compression table).
- **@REF@**, the device the ratios are to: the zram module loaded with num_devices=1,
  comp_algorithm lz4 (set before disksize, which fixes it), disksize @SIZE@M, other settings
  default. Each run's section lists the algorithms its kernel offered.

A round makes two data sets, each on every device in turn, and runs the jobs of each on it:

1. **ext4 holding a copy of /usr.** The whole device discarded, `mkfs.ext4 @MKFS@` (no
   initialisation left to a background thread), mounted, `cp -a /usr` (the VM's own: its
   programs, shared libraries and kernel modules; the environment's EXT4_DATA names another
   directory), unmounted, so that all of it is written. Mounted read-only again, it serves the
   ext4 job, which reads the files: `fio --name=JOB --opendir=MNT @FIO_BASE@ OPTIONS`, every
   regular file below MNT in turn, O_DIRECT through ext4 (symbolic links left out).
2. **fio data, 50% compressible.** The whole device discarded and written once,
   `fio @FILL_ARGS@ @FIO_BASE@`; then the other jobs on the device, with the same options: every
   buffer fio writes is new, each 512-byte piece of it half random bytes and half zeros (fio's
   default `--buffer_compress_chunk`).

The jobs, in round order (`OPTIONS` as above):

EOF
	echo "| Job | Name in summary.csv and raw.csv | Data set | OPTIONS |"
	echo "|---|---|---|---|"
	for _dmc_j in $JOBS_ALL; do
		_dmc_set="fio data"
		case $_dmc_j in ext4-*) _dmc_set="ext4" ;; esac
		echo "| $(job_label "$_dmc_j") | \`$_dmc_j\` | $_dmc_set | \`$(job_args "$_dmc_j" R)\` |"
	done
	cat <<'EOF'

After each data set is written, each device's own statistics tell how well it compressed:
orig_data_size (the data it holds, same-filled pages included), compr_data_size (that data
compressed; a same-filled page takes none) and mem_used_total (the memory its store takes, with
the allocator's overhead), same_pages (pages stored as their fill word) and huge_pages (pages
stored whole, as compressing them saved too little): zram's mm_stat fields 1, 2, 3, 6 and 8 and
the fields of the same names in `ublk-mem stats ID`. The compression ratio is orig_data_size over compr_data_size;
compress.csv in the results directory has a row per device, data set and round, and the
sections below their medians, with ublk-mem's ratio over zram's paired by round. zram
compresses in the context of the process that writes (fio's, here) and ublk-mem in its server
thread, whose CPU time the server CPU column counts. The run is

    ./bench.sh --compress [--kernel KVER] [--rounds N] [--runtime SECONDS] [--jobs LIST]
               [--ublk-args "ARGS"] [--ublk-args2 "ARGS"] [--codec]
EOF
}

# doc_method_codec: the method of the codec benchmark, when the document
# holds one.
doc_method_codec() {
	cat <<'EOF'

### The codec benchmark

`./bench.sh --codec` measures, on the machine it runs on rather than in the VM, how fast the
project's LZ4 codec (lz4.c) compresses and decompresses, next to the reference implementation's
own benchmark, on the same file and one thread each. `bench/lz4_bench`, built from
bench/lz4_bench.c and lz4.c with `cc -O2`, cuts the file into blocks, 4 KiB pages (as the
compressed store uses the codec) and 64 KiB blocks, compresses each block on its own into
`lz4_bound()` bytes of room and decodes it into its own size, and times passes over the whole
file for N seconds per direction; the fastest pass counts, and the decoded data is checked. The
reference is `lz4 -b1 -B4096 -iN FILE` and `lz4 -b1 -B65536 -iN FILE` (independent blocks,
timed the same way; `-T1` where the tool has threads). MB/s is 10^6 bytes of the original file
per second; "compress_vs_ref" and "decompress_vs_ref" are lz4.c's MB/s over the reference's on
the same block size. N is 3 (1 with `--quick`). The default file is 160 MiB: the first 64 MiB
of a tar of the machine's /usr/share/doc (text, much of it already gzip'd) followed by the
first 96 MiB of a tar of its /usr/bin (programs); `--codec-file FILE` picks another. With
`--compress` (or `--zoned`) it runs after the matrix and its lines join that run's section;
alone, it is a section of its own.
EOF
}

# doc_command: the run's command line; from the options in meta.txt where
# the run did not record it (an earlier bench.sh).
doc_command() {
	if [ -n "$(meta command)" ]; then
		echo "\`$(meta command)\`"
		return
	fi
	_dc="./bench.sh"
	[ -n "$(meta kver)" ] && _dc="$_dc --kernel $(meta kver)"
	_dc="$_dc --rounds $(meta rounds) --runtime $(meta runtime)"
	[ "$(meta jobs)" = "$JOBS_ALL" ] || _dc="$_dc --jobs $(meta jobs | tr ' ' ',')"
	[ -n "$(meta ublk_args)" ] && _dc="$_dc --ublk-args \"$(meta ublk_args)\""
	[ -n "$(meta ublk_args2)" ] && _dc="$_dc --ublk-args2 \"$(meta ublk_args2)\""
	[ -n "$(meta server2)" ] && _dc="$_dc --ublk-bin2 PATH"
	[ -n "$(meta user2)" ] && _dc="$_dc --ublk-user2 $(meta user2)"
	[ -n "$(meta plain2)" ] && _dc="$_dc --ublk-plain2"
	echo "\`$_dc\` (equivalent; this run did not record its command)"
}

# doc_run CHART: the section of the run in $OUT; its chart is CHART (a
# name next to the document).
doc_run() {
	_dr_args=$(meta ublk_args)
	_dr_args2=$(meta ublk_args2)
	if [ "$MATRIX" = standard ]; then
		echo "## Linux $(meta kernel), $(meta date)"
	else
		echo "## $(report_title), Linux $(meta kernel), $(meta date)"
	fi
	echo
	echo "- Command: $(doc_command); results: \`$(shown_path "$OUT")\`."
	echo "- Machine: $(where_line)."
	[ -n "$(meta host)" ] && echo "- Host: $(meta host)."
	if [ -n "$_dr_args2" ]; then
		echo "- Servers: A, \`ublk-mem $(meta size_mb)M${_dr_args:+ $_dr_args}\`, and B (ublk-mem-b)," \
			"$(b_server), measured right after A on every job."
	else
		echo "- Server: \`ublk-mem $(meta size_mb)M${_dr_args:+ $_dr_args}\`."
	fi
	if [ "$MATRIX" = zoned ]; then
		echo "- $REF: $(meta null_blk_zoned | sed 's/ /, /g'); fio kept at most" \
			"$(meta zbd_max_open) zones open; I/O schedulers: $(meta schedulers)."
	fi
	if [ "$MATRIX" = compress ]; then
		echo "- $REF: comp_algorithm lz4, of: $(meta zram_algorithms); I/O schedulers:" \
			"$(meta schedulers)."
		echo "- ext4 data set: $(meta ext4_data); $(meta mkfs)."
	fi
	[ -n "$(meta server)" ] && echo "- Server build: $(meta server); $(meta source)."
	[ -n "$(meta server2)" ] && echo "- ublk-mem-b's build: $(meta server2)."
	[ -n "$(meta user2)" ] && echo "- ublk-mem-b was run by uid $(meta user2), without root: an unprivileged device."
	_dr_tools="$(meta fio), $(meta nbdkit)"
	[ "$MATRIX" = standard ] || _dr_tools=$(meta fio)
	echo "- $_dr_tools; $(meta rounds) round(s) of $(meta runtime) s per timed job."
	[ "$(meta rounds)" = 1 ] && echo "- One round: a smoke run, not figures to quote."
	[ -n "$(meta skipped)" ] && echo "- Skipped: $(meta skipped)."
	[ "$(meta failures)" != 0 ] && echo "- Failed runs: $(meta failures) (see console.log there)."
	echo
	echo "![ublk-mem IOPS relative to $REF, per job, Linux $(meta kernel)]($1)"
	echo
	summary_table
	echo
	if [ "$MATRIX" = compress ]; then
		compress_lines
		echo
	fi
	summary_lines
	codec_lines
}

# doc_run_codec: the section of a directory of the codec benchmark alone.
doc_run_codec() {
	echo "## $(report_title), $(meta date)"
	echo
	echo "- Command: $(doc_command); results: \`$(shown_path "$OUT")\`."
	echo "- Machine: $(meta machine), kernel $(meta kernel), $(meta cpus) CPUs, $(meta mem_mib) MiB."
	[ -n "$(meta host)" ] && echo "- Host: $(meta host)."
	[ -n "$(meta source)" ] && echo "- Source: $(meta source)."
	codec_lines
}

# write_doc FILE DIR...: the document, from the runs in DIR... (absolute,
# their summaries redone); each run's chart is copied next to FILE.
write_doc() {
	_wd_file=$1
	shift
	_wd_dir=$(dirname "$_wd_file")
	mkdir -p "$_wd_dir" || die "cannot create $_wd_dir"
	_wd_from=
	for _wd_d in "$@"; do
		_wd_from="${_wd_from:+$_wd_from, }$(shown_path "$_wd_d")"
	done
	_wd_cmd="./bench.sh"
	for _wd_d in "$@"; do
		_wd_cmd="$_wd_cmd --report $(shown_path "$_wd_d")"
	done
	_wd_cmd="$_wd_cmd --doc $(shown_path "$(cd "$_wd_dir" && pwd)/${_wd_file##*/}")"
	{
		echo "# ublk-mem performance"
		echo
		echo "*Generated by bench.sh --report from $_wd_from on $(date -u '+%Y-%m-%d %H:%M UTC');"
		echo "do not edit: run \`$_wd_cmd\` again. Earlier runs are in this file's git history.*"
		echo
		use_matrix standard
		doc_method
		# The method of each other matrix the runs hold, once.
		_wd_kinds=
		for _wd_d in "$@"; do
			use_run "$_wd_d"
			_wd_kinds="$_wd_kinds $MATRIX"
		done
		case "$_wd_kinds " in *" zoned "*) doc_method_zoned ;; esac
		case "$_wd_kinds " in *" compress "*) doc_method_compress ;; esac
		case "$_wd_kinds " in *" codec "*) doc_method_codec ;; esac
		_wd_n=0
		_wd_charts=0
		for _wd_d in "$@"; do
			_wd_n=$((_wd_n + 1))
			use_run "$_wd_d"
			echo
			if [ "$MATRIX" = codec ]; then
				doc_run_codec
				continue
			fi
			_wd_charts=$((_wd_charts + 1))
			_wd_svg=bench-ratio.svg
			[ $_wd_charts -gt 1 ] && _wd_svg=bench-ratio-$_wd_charts.svg
			cp "$OUT/ratio.svg" "$_wd_dir/$_wd_svg" || die "cannot copy the chart to $_wd_dir/$_wd_svg"
			doc_run "$_wd_svg"
		done
	} >"$_wd_file.tmp" || die "cannot write $_wd_file.tmp"
	mv "$_wd_file.tmp" "$_wd_file" || die "cannot write $_wd_file"
	progress "wrote $_wd_file ($_wd_n run(s))"
}

# main_report DIR...: redo each run's summary; with --doc, write the document.
main_report() {
	for _mr_d in "$@"; do
		if [ ! -s "$_mr_d/meta.txt" ]; then
			die "$_mr_d has no meta.txt from an earlier run"
		fi
		if grep -q '^matrix=codec$' "$_mr_d/meta.txt"; then
			[ -s "$_mr_d/codec.txt" ] || die "$_mr_d has no codec.txt from an earlier run"
		elif [ ! -s "$_mr_d/raw.csv" ]; then
			die "$_mr_d has no raw.csv and meta.txt from an earlier run"
		fi
	done
	for _mr_d in "$@"; do
		use_run "$(cd "$_mr_d" && pwd)"
		if [ -n "$DOC" ]; then
			report >/dev/null
		else
			report
		fi
	done
	[ -n "$DOC" ] || return 0
	set -f
	_mr_ifs=$IFS
	IFS='
'
	# shellcheck disable=SC2046 # one directory a line
	set -- $(for _mr_d in "$@"; do (cd "$_mr_d" && pwd); done)
	IFS=$_mr_ifs
	set +f
	write_doc "$DOC" "$@"
}

# =========================================================================
# The host's part of a VM run: boot it, read its console, report.
# =========================================================================

# section NAME: the lines between the markers of NAME in the console log.
section() {
	awk -v b="$CSV_BEGIN $1" -v e="$CSV_END $1" -f "$AWK_DIR/console-section.awk" "$OUT/console.log"
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

# host_lines: the meta.txt lines the host adds: this machine's load around
# the run, the source and the command.
host_lines() {
	echo "host=$(nproc) CPUs, load average ${LOAD_BEFORE:-?} before the run and" \
		"$(cut -d' ' -f1 /proc/loadavg) after; other VMs running: $VMS_BEFORE at the start," \
		"$(other_vms) at the end"
	source_line
	echo "command=$COMMAND"
}

# Default: run the matrix in the test VM and report on the host.
main_vm() {
	if [ -f "$HERE/Makefile" ] && command -v make >/dev/null 2>&1; then
		make -s -C "$HERE" ublk-mem bench/copy_cost >&2 || die "make ublk-mem bench/copy_cost failed"
	fi
	[ -f "$HERE/test/vm/vm.sh" ] || die "no test/vm/vm.sh: the VM harness is missing"
	_mv_args="--rounds=$ROUNDS --runtime=$RUNTIME --jobs=$(printf '%s' "$JOBS" | tr -s ' ' ',')"
	[ "$MATRIX" = zoned ] && _mv_args="$_mv_args --zoned"
	[ "$MATRIX" = compress ] && _mv_args="$_mv_args --compress"
	if [ -n "$UBLK_ARGS" ]; then
		case $UBLK_ARGS in *\"*) die "--ublk-args may not hold double quotes" ;; esac
		_mv_args="$_mv_args --ublk-args=$(printf '%s' "$UBLK_ARGS" | tr -s ' \t' ',,')"
	fi
	if [ -n "$UBLK_ARGS2" ]; then
		case $UBLK_ARGS2 in *\"*) die "--ublk-args2 may not hold double quotes" ;; esac
		_mv_args="$_mv_args --ublk-args2=$(printf '%s' "$UBLK_ARGS2" | tr -s ' \t' ',,')"
	fi
	# The second program goes into the image as /usr/local/bin/ublk-mem-b.
	if [ -n "$UBLK_BIN2" ]; then
		{ mkdir -p "$OUT/bin2" && cp "$UBLK_BIN2" "$OUT/bin2/ublk-mem-b"; } ||
			die "cannot copy $UBLK_BIN2"
		UBLK_MEM_EXTRA="$OUT/bin2/ublk-mem-b${UBLK_MEM_EXTRA:+ $UBLK_MEM_EXTRA}"
		export UBLK_MEM_EXTRA
		_mv_args="$_mv_args --ublk-bin2=/usr/local/bin/ublk-mem-b"
	fi
	[ -n "$UBLK_USER2" ] && _mv_args="$_mv_args --ublk-user2=$UBLK_USER2"
	[ -n "$UBLK_PLAIN2" ] && _mv_args="$_mv_args --ublk-plain2"
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
	# A compressed round makes its data sets afresh: about a minute a device.
	[ "$MATRIX" = compress ] && _mv_estimate=$((_mv_estimate + ROUNDS * 2 * 60))
	[ -z "${VM_TIMEOUT:-}" ] && [ $((_mv_estimate * 2)) -gt 1500 ] && VM_TIMEOUT=$((_mv_estimate * 2))
	[ -n "${VM_TIMEOUT:-}" ] && export VM_TIMEOUT
	# The console is quiet for one fio run at a time: keep vm.sh's hang
	# detector (VM_SILENCE, default 420 s) above that.
	[ -z "${VM_SILENCE:-}" ] && [ $((RUNTIME * 4 + 180)) -gt 420 ] && VM_SILENCE=$((RUNTIME * 4 + 180))
	[ -n "${VM_SILENCE:-}" ] && export VM_SILENCE
	KVER=${KVER:-lts}
	export KVER
	[ -n "${VM_CPU:-}" ] && export VM_CPU
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
	[ "$MATRIX" = compress ] && section compress >"$OUT/compress.csv"
	if [ "$(head -n 1 "$OUT/raw.csv")" != "$RAW_HEADER" ] || [ "$(wc -l <"$OUT/raw.csv")" -lt 2 ]; then
		echo "bench: the VM printed no results (exit status ${_mv_rc:-?}); its last words:" >&2
		tail -n 25 "$OUT/console.log" >&2
		die "see $OUT/console.log"
	fi
	# vm.sh names the qemu and the CPU model it booted.
	_mv_machine=$(sed -n 's/^vm\.sh: machine: //p' "$OUT/console.log" | head -n 1)
	{
		echo "machine=VM (${_mv_machine:-qemu TCG})"
		echo "kver=$KVER"
		host_lines
	} >>"$OUT/meta.txt"
	# The codec benchmark on this machine, now that the VM is gone.
	[ -n "$CODEC" ] && run_codec "$OUT"
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
		echo "machine=host ($(cpu_model))"
		host_lines
	} >>"$OUT/meta.txt"
	[ -n "$CODEC" ] && run_codec "$OUT"
	report
	return $_mh_rc
}

# =========================================================================
# The codec benchmark: runs on this machine (--codec).
# =========================================================================

# need_tool_pkg TOOL PACKAGE: TOOL is there, installed with apt-get when
# missing (as root, where apt-get is); status 1 when it cannot be had.
need_tool_pkg() {
	command -v "$1" >/dev/null 2>&1 && return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		progress "installing $2 (for $1)"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >&2
	fi
	command -v "$1" >/dev/null 2>&1
}

# lz4_bench_bin: bench/lz4_bench, built from bench/lz4_bench.c and lz4.c
# (with the server's optimisation) when missing or older than they are.
lz4_bench_bin() {
	_lb=$HERE/bench/lz4_bench
	if [ ! -x "$_lb" ] ||
		[ -n "$(find "$HERE/bench/lz4_bench.c" "$HERE/lz4.c" "$HERE/lz4.h" -newer "$_lb")" ]; then
		progress "building bench/lz4_bench"
		"${CC:-cc}" -O2 -std=gnu11 -Wall -Wextra -D_FILE_OFFSET_BITS=64 -I"$HERE" -o "$_lb" \
			"$HERE/bench/lz4_bench.c" "$HERE/lz4.c" >&2 || return 1
	fi
	echo "$_lb"
}

# codec_input FILE: the default input, a mix of text and programs: the
# first 64 MiB of a tar of /usr/share/doc, then the first 96 MiB of a tar
# of /usr/bin (names sorted, so that the same machine makes the same file).
codec_input() {
	{
		tar -cf - --sort=name -C / usr/share/doc 2>/dev/null | head -c $((64 * 1048576))
		tar -cf - --sort=name -C / usr/bin 2>/dev/null | head -c $((96 * 1048576))
	} >"$1"
	[ -s "$1" ]
}

# lz4_ref BLOCK SECONDS FILE: the reference's benchmark of FILE in blocks
# of BLOCK bytes, as "bytes=N compressed=N ratio=R compress_MBps=C
# decompress_MBps=D"; its last progress line holds the result:
#   1#FILE : 167772160 -> 95123456 (1.764), 365.6 MB/s ,1694.9 MB/s
lz4_ref() {
	_lr_t=
	"$LZ4" -h 2>&1 | grep -q -- '-T#' && _lr_t=-T1
	# shellcheck disable=SC2086 # -T1, or nothing
	"$LZ4" -b1 -B"$1" -i"$2" $_lr_t "$3" 2>&1 | tr '\r' '\n' | grep -- '->.*MB/s.*MB/s' | tail -n 1 |
		sed -n 's/.*: *\([0-9][0-9]*\) *-> *\([0-9][0-9]*\) *(\([0-9.]*\)), *\([0-9.]*\) MB\/s *, *\([0-9.]*\) MB\/s.*/bytes=\1 compressed=\2 ratio=\3 compress_MBps=\4 decompress_MBps=\5/p' |
		grep .
}

# run_codec DIR: the codec benchmark into DIR/codec.txt: comment lines on
# how, then for each block size lz4.c's line (with its speed over the
# reference's) and the reference's.
run_codec() {
	LZ4=${LZ4:-lz4}
	need_tool_pkg "$LZ4" lz4 || die "no $LZ4 (Debian package lz4) to compare the codec with"
	_rc_bench=$(lz4_bench_bin) || die "cannot build bench/lz4_bench"
	_rc_secs=3
	[ "$RUNTIME" = 1 ] && [ "$ROUNDS" = 1 ] && _rc_secs=1
	_rc_tmp=$(mktemp -d "${TMPDIR:-/tmp}/ublkmem-codec.XXXXXX") || die "cannot make a work directory"
	_rc_file=$CODEC_FILE
	_rc_what="$CODEC_FILE"
	if [ -z "$_rc_file" ]; then
		_rc_file=$_rc_tmp/input.tar
		progress "making the codec benchmark's input: tars of /usr/share/doc and /usr/bin"
		codec_input "$_rc_file" || { rm -rf "$_rc_tmp"; die "cannot make $_rc_file"; }
		_rc_what="the first 64 MiB of a tar of /usr/share/doc, then the first 96 MiB of a tar of /usr/bin"
	fi
	[ -s "$_rc_file" ] || { rm -rf "$_rc_tmp"; die "--codec-file: $_rc_file is missing or empty"; }
	_rc_load=$(cut -d' ' -f1 /proc/loadavg)
	progress "codec: lz4.c, ${_rc_secs} s per direction and block size"
	if ! "$_rc_bench" -t "$_rc_secs" "$_rc_file" >"$_rc_tmp/ours" 2>"$_rc_tmp/ours.err"; then
		rm -rf "$_rc_tmp"
		die "bench/lz4_bench failed: $(cat "$_rc_tmp/ours.err" 2>/dev/null)"
	fi
	_rc_ver=$("$LZ4" -V 2>&1 | sed -n 's/.* \(v[0-9][0-9.]*\).*/\1/p' | head -n 1)
	_rc_name="lz4-${_rc_ver#v}"
	{
		echo "# lz4.c (bench/lz4_bench) against lz4 ${_rc_ver:-?} (lz4 -b1 -B4096 and -B65536, -i$_rc_secs), one thread each, on the same file"
		echo "# file: $(wc -c <"$_rc_file" | tr -d ' ') bytes, sha256 $(sha256sum <"$_rc_file" | cut -c1-12): $_rc_what"
		echo "# machine: $(cpu_model), $(nproc) CPUs, Linux $(uname -r); load average $_rc_load before"
		for _rc_mode in page4k:4096 block64k:65536; do
			_rc_ours=$(grep "^mode=${_rc_mode%%:*} " "$_rc_tmp/ours")
			progress "codec: lz4 -b1 -B${_rc_mode#*:}"
			_rc_ref=$(lz4_ref "${_rc_mode#*:}" "$_rc_secs" "$_rc_file") ||
				warn "no result from $LZ4 -b1 -B${_rc_mode#*:}"
			_rc_x=$(printf '%s\n%s\n' "$_rc_ours" "$_rc_ref" | awk '
				{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[NR, kv[1]] = kv[2] } }
				END {
					if (v[2, "compress_MBps"] > 0 && v[2, "decompress_MBps"] > 0)
						printf " compress_vs_ref=%.2f decompress_vs_ref=%.2f",
							v[1, "compress_MBps"] / v[2, "compress_MBps"],
							v[1, "decompress_MBps"] / v[2, "decompress_MBps"]
				}')
			echo "codec=lz4.c $_rc_ours$_rc_x"
			[ -n "$_rc_ref" ] && echo "codec=$_rc_name mode=${_rc_mode%%:*} block=${_rc_mode#*:} $_rc_ref"
		done
	} >"$1/codec.txt.tmp"
	rm -rf "$_rc_tmp"
	mv "$1/codec.txt.tmp" "$1/codec.txt" || die "cannot write $1/codec.txt"
	progress "wrote $1/codec.txt"
}

# cpu_model: this machine's processor, for people.
cpu_model() {
	_cm=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo | head -n 1)
	echo "${_cm:-$(uname -m)}"
}

# --codec alone: the codec benchmark into OUT; a directory of an earlier
# run keeps its matrix and gains the codec's lines in its summary.
main_codec() {
	progress "results: $OUT"
	host_busy
	run_codec "$OUT"
	if [ -s "$OUT/meta.txt" ] && ! grep -q '^matrix=codec$' "$OUT/meta.txt"; then
		use_run "$OUT"
		report
		return
	fi
	{
		echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
		echo "matrix=codec"
		echo "machine=host ($(cpu_model))"
		echo "kernel=$(uname -r)"
		echo "cpus=$(nproc)"
		echo "mem_mib=$(($(mem_kb MemTotal) / 1024))"
		host_lines
	} >"$OUT/meta.txt"
	use_run "$OUT"
	report
}

# =========================================================================
# The options.
# =========================================================================

# need_value OPTION VALUE: die when VALUE is empty.
need_value() {
	[ -n "${2:-}" ] || die "$1 needs a value"
}

# The defaults, for the method in docs/performance.md.
ROUNDS_DEFAULT=$ROUNDS RUNTIME_DEFAULT=$RUNTIME
while [ $# -gt 0 ]; do
	_opt=$1
	_val=
	case $_opt in
	--*=*)
		_val=${_opt#*=}
		_opt=${_opt%%=*}
		;;
	--rounds | --runtime | --jobs | --ublk-args | --ublk-args2 | --ublk-bin2 | --ublk-user2 | \
		--out | --report | --doc | --kernel | --cpu | --codec-file)
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
	--zoned) ZONED=1 ;;
	--compress) COMPRESS=1 ;;
	--ublk-plain2) UBLK_PLAIN2=1 ;;
	--codec) CODEC=1 ;;
	--codec-file) CODEC_FILE=$_val ;;
	--rounds) ROUNDS=$_val ;;
	--runtime) RUNTIME=$_val ;;
	--jobs) JOBS_ASKED=$(printf '%s' "$_val" | tr ',' ' ') ;;
	--ublk-args) UBLK_ARGS=$_val ;;
	--ublk-args2) UBLK_ARGS2=$_val ;;
	--ublk-bin2) UBLK_BIN2=$_val ;;
	--ublk-user2) UBLK_USER2=$_val ;;
	--kernel) KVER=$_val KERNEL_ASKED=1 ;;
	--cpu) VM_CPU=$_val CPU_ASKED=1 ;;
	--out) OUT=$_val ;;
	--report)
		REPORT_DIRS="${REPORT_DIRS:+$REPORT_DIRS
}$_val"
		MODE=report
		;;
	--doc) DOC=$_val ;;
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
# The servers' options, one word each: commas and white space separate them.
UBLK_ARGS=$(printf '%s\n' "$UBLK_ARGS" | tr ',' ' ')
UBLK_ARGS2=$(printf '%s\n' "$UBLK_ARGS2" | tr ',' ' ')
if [ -n "$UBLK_USER2" ]; then
	{ is_uint "$UBLK_USER2" && [ "$UBLK_USER2" -gt 0 ]; } || die "--ublk-user2 takes a uid other than 0, not '$UBLK_USER2'"
	[ "$MODE" = report ] && die "--ublk-user2 is for a run; --report finds it in meta.txt"
fi
if [ -n "$UBLK_BIN2" ]; then
	{ [ -f "$UBLK_BIN2" ] && [ -x "$UBLK_BIN2" ]; } || die "--ublk-bin2: $UBLK_BIN2 is no program"
	[ "$MODE" = report ] && die "--ublk-bin2 is for a run; --report finds it in meta.txt"
fi
if [ -n "$UBLK_PLAIN2" ]; then
	[ -n "$COMPRESS" ] || die "--ublk-plain2 is for the compressed matrix (--compress)"
	[ "$MODE" = report ] && die "--ublk-plain2 is for a run; --report finds it in meta.txt"
fi
# A second server asked for by who runs it, what it runs or how it stores
# data alone has the default options.
if [ -n "$UBLK_USER2$UBLK_BIN2$UBLK_PLAIN2" ] && [ -z "$UBLK_ARGS2" ]; then
	UBLK_ARGS2="-q 1"
fi

[ -n "$ZONED" ] && [ -n "$COMPRESS" ] && die "--zoned and --compress are two matrices: one run each"
if [ -n "$ZONED" ] || [ -n "$COMPRESS" ]; then
	[ "$MODE" = report ] && die "--zoned and --compress pick the matrix of a run; --report finds it in meta.txt"
	if [ -n "$ZONED" ]; then
		use_matrix zoned
	else
		use_matrix compress
	fi
	JOBS=$JOBS_ALL
fi
if [ -n "$CODEC" ] || [ -n "$CODEC_FILE" ]; then
	case $MODE in report | in-vm) die "--codec runs the codec benchmark; --report finds its codec.txt" ;; esac
	[ -n "$CODEC" ] || die "--codec-file is the input of --codec"
	# Alone, the codec benchmark is the run.
	[ -z "$ZONED" ] && [ -z "$COMPRESS" ] && MODE=codec
fi
if [ -n "$JOBS_ASKED" ]; then
	for _j in $JOBS_ASKED; do
		job_args "$_j" >/dev/null || die "--jobs: no job named '$_j' (jobs: $JOBS)"
	done
	JOBS=$JOBS_ASKED
fi

if [ "$MODE" = codec ] && [ -n "$JOBS_ASKED$UBLK_ARGS$UBLK_ARGS2$KERNEL_ASKED" ]; then
	die "--codec alone runs on this machine, without devices: --jobs, --ublk-args and --kernel are for a matrix"
fi
if [ -n "$KERNEL_ASKED" ] && [ "$MODE" != vm ]; then
	die "--kernel picks the test VM's kernel; with --host the benchmark runs on this machine's"
fi
if [ -n "$CPU_ASKED" ] && [ "$MODE" != vm ]; then
	die "--cpu picks the test VM's CPU; with --host the benchmark runs on this machine's"
fi
if [ -n "$DOC" ] && [ "$MODE" != report ]; then
	die "--doc writes the document from earlier runs: give them with --report DIR"
fi

if [ "$MODE" = in-vm ]; then
	main_in_vm
	exit $?
fi

if [ "$MODE" = report ]; then
	_ifs=$IFS
	IFS='
'
	set -f
	# shellcheck disable=SC2086 # one directory a line
	set -- $REPORT_DIRS
	set +f
	IFS=$_ifs
	main_report "$@"
	exit $?
fi

OUT=${OUT:-$HERE/results/bench-$(date +%Y%m%d-%H%M%S)}
if [ ! -d "$OUT" ]; then
	mkdir -p "$OUT" || die "cannot create $OUT"
	OUT_MADE=1
fi
OUT=$(cd "$OUT" && pwd)
case $MODE in
host) main_host ;;
codec) main_codec ;;
*) main_vm ;;
esac
exit $?
