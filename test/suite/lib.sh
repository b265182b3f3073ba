# shellcheck shell=sh
# Shared helpers for the shell tests of test/suite (busybox ash, dash, bash).
#
# A test is a script t-NAME.sh that sources this file and exits
#   0  passed        (reaching the end of the script)
#   77 skipped       skip "why"
#   1  failed        fail "what went wrong"
# test/suite/run.sh runs every test in its own session under a timeout and
# cleans up what a test leaves behind; a test may also run on its own:
#   sudo sh test/suite/t-size.sh
#
# Variables a test may use after start_ublk: DEV (/dev/ublkbN), SRV_ID (N),
# SRV_PID, SRV_ERR (file holding the server's stderr), and T_TMP, a private
# scratch directory removed at exit. Sizes are in bytes unless named _kb.
# RUN_AS, when set (as_user), runs the servers, fio and refuse's commands
# as an ordinary user.
# shellcheck disable=SC2034 # variables set here are for the tests

SKIP=77
KiB=1024
MiB=1048576

# The test/ directory; outside the VM the server is the repository's ./ublk-mem.
: "${TEST_ROOT:=$(cd "$(dirname "$0")/.." && pwd)}"
if [ -z "${UBLK_MEM:-}" ]; then
	if [ "${UBLKMEM_VM:-0}" = 1 ]; then
		UBLK_MEM=ublk-mem
	else
		UBLK_MEM=$(cd "$TEST_ROOT/.." && pwd)/ublk-mem
	fi
fi
UBLKMEM_MODULES=${UBLKMEM_MODULES:-/lib/modules}
FIO=${FIO:-/usr/bin/fio}

# Print the first of the given paths that is executable.
first_tool() {
	for _t in "$@"; do
		[ -x "$_t" ] && { echo "$_t"; return 0; }
	done
	return 1
}
# util-linux and e2fsprogs by full path: busybox sh runs its own applets
# (which lack options such as blkdiscard -z) before looking at PATH.
BLKDISCARD=$(first_tool /usr/sbin/blkdiscard /sbin/blkdiscard /usr/bin/blkdiscard) || BLKDISCARD=
BLOCKDEV=$(first_tool /usr/sbin/blockdev /sbin/blockdev) || BLOCKDEV=blockdev
MKFS_EXT4=$(first_tool /usr/sbin/mkfs.ext4 /sbin/mkfs.ext4) || MKFS_EXT4=
E2FSCK=$(first_tool /usr/sbin/e2fsck /sbin/e2fsck) || E2FSCK=
RESIZE2FS=$(first_tool /usr/sbin/resize2fs /sbin/resize2fs) || RESIZE2FS=

STEP=
_nsrv=0

# --- reporting -------------------------------------------------------------

say() { echo "# $*"; }

# Name what the test is doing now; fail reports it.
step() {
	STEP=$*
	echo "== [$(($(date +%s) - T_START))s] $*"
}

# Print what helps to understand a failure: the step, the servers' stderr,
# the kernel's last words.
context() {
	[ -n "$STEP" ] && echo "  during: $STEP"
	for _f in "$T_TMP"/srv*.err; do
		[ -s "$_f" ] || continue
		echo "  server stderr ($_f):"
		tail -n 15 "$_f" | sed 's/^/    /'
	done
	if [ "${UBLKMEM_VM:-0}" = 1 ]; then
		echo "  dmesg:"
		dmesg | tail -n 10 | sed 's/^/    /'
	fi
}

# fail MESSAGE: stop the test as failed. The message also goes to
# $T_OUT/fail (for run.sh) and $T_TMP/failed (for _cleanup, when the test
# runs on its own), so a fail inside a subshell, a $(...) say, still fails
# the test; it is written on stderr, which $(...) does not capture.
fail() {
	{
		echo "FAIL: $*"
		[ -n "${T_OUT:-}" ] && echo "$*" >>"$T_OUT/fail"
		[ -n "${T_TMP:-}" ] && [ -d "$T_TMP" ] && echo "$*" >>"$T_TMP/failed"
		context
	} >&2
	exit 1
}

# skip REASON: stop the test as skipped.
skip() {
	echo "SKIP: $*"
	[ -n "${T_OUT:-}" ] && echo "$*" >"$T_OUT/skip"
	exit "$SKIP"
}

# expect_eq GOT WANT WHAT
expect_eq() {
	[ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"
}

# --- cleanup ---------------------------------------------------------------

_cleanup() {
	_rc=$?
	trap - EXIT
	# A fail in a subshell ended only the subshell: the test failed all the same.
	if [ -s "$T_TMP/failed" ] && { [ "$_rc" = 0 ] || [ "$_rc" = "$SKIP" ]; }; then
		echo "FAIL (in a subshell): $(head -n 1 "$T_TMP/failed")" >&2
		_rc=1
	fi
	if [ -s "$T_TMP/mounts" ]; then
		sort -r "$T_TMP/mounts" | while read -r _m; do
			umount "$_m" 2>/dev/null || umount -l "$_m" 2>/dev/null
		done
	fi
	_pids=$(cat "$T_TMP/pids" 2>/dev/null)
	for _p in $_pids; do
		alive "$_p" && kill -TERM "$_p" 2>/dev/null
	done
	for _p in $_pids; do
		_i=0
		while alive "$_p" && [ $_i -lt 50 ]; do
			sleep 0.1
			_i=$((_i + 1))
		done
		alive "$_p" && kill -KILL "$_p" 2>/dev/null
	done
	# Kernel settings a test changed (set_sysctl), put back newest first.
	if [ -s "$T_TMP/sysctls" ]; then
		sed '1!G;h;$!d' "$T_TMP/sysctls" | while read -r _f _v; do
			echo "$_v" >"$_f" 2>/dev/null
		done
	fi
	# What a test set up for its end (undo_at_exit), newest first.
	if [ -s "$T_TMP/undo" ]; then
		sed '1!G;h;$!d' "$T_TMP/undo" | while read -r _u; do
			sh -c "$_u" 2>/dev/null
		done
	fi
	cd /
	rm -rf "$T_TMP"
	exit "$_rc"
}

# --- processes and devices -------------------------------------------------

# alive PID: the process exists and is not a zombie.
alive() {
	_s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	_s=${_s##*) }
	[ "${_s%% *}" != Z ]
}

# wait_until SECS CMD [ARG...]: run CMD every 0.1 s until it succeeds
# (status 0), or SECS seconds have passed (status 1). A condition, not a
# delay: it holds on any machine's speed. CMD may end the test early with
# fail (a process it waits on died, say); it must not itself wait_until.
wait_until() {
	_wu_left=$(($1 * 10))
	shift
	until "$@"; do
		[ "$_wu_left" -le 0 ] && return 1
		sleep 0.1
		_wu_left=$((_wu_left - 1))
	done
}

# ended PID: the process has exited (the negation of alive, for wait_until).
ended() { ! alive "$1"; }

# wait_exit PID SECS WHAT [AFTER]: wait up to SECS seconds for PID to end;
# otherwise fail with "WHAT (pid PID) still runs SECSs after AFTER" (or
# "... still runs after SECSs" without AFTER). The caller still reaps PID
# with wait to learn its status.
wait_exit() {
	wait_until "$2" ended "$1" && return 0
	[ -n "${4:-}" ] && fail "$3 (pid $1) still runs ${2}s after $4"
	fail "$3 (pid $1) still runs after ${2}s"
}

# run_with_timeout SECS CMD...: CMD's status, or non-zero when it took too long.
run_with_timeout() {
	_secs=$1
	shift
	timeout "$_secs" "$@"
}

# none_exist PATH...: none of the paths exist.
none_exist() {
	for _p in "$@"; do
		[ -e "$_p" ] && return 1
	done
	return 0
}

# wait_gone PATH... [-t SECS]: wait until none of the paths exist (default 10 s).
wait_gone() {
	_secs=10
	_paths=
	while [ $# -gt 0 ]; do
		if [ "$1" = -t ]; then
			_secs=$2
			shift 2
		else
			_paths="$_paths $1"
			shift
		fi
	done
	# shellcheck disable=SC2086 # one word per path
	wait_until "$_secs" none_exist $_paths
}

# dev_ios DEV: read and write requests completed on DEV so far.
dev_ios() {
	awk '{ print $1 + $5 }' "/sys/block/${1##*/}/stat"
}

# wait_io DEV BASE N [PID] [SECS]: wait until N requests more than BASE (a
# dev_ios reading) have completed on DEV; with PID, that process must still
# run then. Fails (status 1) after SECS seconds (default 60) or when PID
# ends first. A condition, not a delay: it holds on any machine's speed.
wait_io() {
	_wi_i=0
	while [ $(($(dev_ios "$1") - $2)) -lt "$3" ]; do
		[ -n "${4:-}" ] && ! alive "$4" && return 1
		[ $_wi_i -ge $((${5:-60} * 10)) ] && return 1
		sleep 0.1
		_wi_i=$((_wi_i + 1))
	done
	[ -z "${4:-}" ] || alive "$4"
}

# wait_state PID STATE SECS: wait until process PID is in STATE (the third
# field of /proc/PID/stat: T stopped, S sleeping, ...).
wait_state() {
	_ws_i=0
	while :; do
		_ws=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
		_ws=${_ws##*) }
		[ "${_ws%% *}" = "$2" ] && return 0
		[ $_ws_i -ge $(($3 * 10)) ] && return 1
		sleep 0.1
		_ws_i=$((_ws_i + 1))
	done
}

# blocked_in_io PID: is PID, or a child of it, asleep in the kernel waiting
# for I/O (state D)?
blocked_in_io() {
	for _bi in /proc/[0-9]*/stat; do
		_bs=$(cat "$_bi" 2>/dev/null) || continue
		_bp=${_bs%% *}
		_bs=${_bs##*) }
		case $_bs in "D $1 "*) return 0 ;; esac
		[ "$_bp" = "$1" ] && case $_bs in "D "*) return 0 ;; esac
	done
	return 1
}

# wait_blocked PID SECS: wait until PID (or a child) waits for I/O; a
# request to a device without a server waits so until one takes over.
wait_blocked() {
	_wb_i=0
	until blocked_in_io "$1"; do
		alive "$1" || return 1
		[ $_wb_i -ge $(($2 * 10)) ] && return 1
		sleep 0.1
		_wb_i=$((_wb_i + 1))
	done
}

# set_sysctl FILE VALUE: write VALUE to a /proc/sys FILE for this test;
# the old value comes back when the test ends.
set_sysctl() {
	echo "$1 $(cat "$1")" >>"$T_TMP/sysctls" || return 1
	echo "$2" >"$1"
}

# undo_at_exit COMMAND: a shell command line to run when the test ends, to
# put back what it changed (the newest first, after set_sysctl's).
undo_at_exit() {
	echo "$*" >>"$T_TMP/undo"
}

# mem_kb NAME: a /proc/meminfo field (MemAvailable, MemTotal...), in KiB.
mem_kb() {
	awk -v f="$1:" '$1 == f { print $2 }' /proc/meminfo
}

# hpage_kb: the size of a transparent huge page in KiB (2048 with 4 KiB
# pages, 32768 with arm64's 16 KiB pages), or 0 where THP is off or absent,
# as the server sees it (mem_backend.c).
hpage_kb() {
	_t=/sys/kernel/mm/transparent_hugepage
	if [ ! -r $_t/enabled ] || grep -q '\[never\]' $_t/enabled; then
		echo 0
		return
	fi
	_b=$(cat $_t/hpage_pmd_size 2>/dev/null)
	echo $((${_b:-2097152} / 1024))
}

# dev_size DEV: size in bytes.
dev_size() {
	"$BLOCKDEV" --getsize64 "$1"
}

# queue_attr DEV NAME: /sys/block/<dev>/queue/NAME.
queue_attr() {
	cat "/sys/block/${1##*/}/queue/$2"
}

# ublk_nodes: the ublk device nodes present now, one a line.
ublk_nodes() {
	for _n in /dev/ublkb[0-9]* /dev/ublkc[0-9]*; do
		[ -e "$_n" ] && echo "$_n"
	done | sort
}

# rss_kb PID / lck_kb PID: resident and locked memory of a process, in KiB.
rss_kb() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}
lck_kb() {
	awk '/^VmLck:/ { print $2 }' "/proc/$1/status"
}

# store_kb PID: the server's memory, in KiB: its resident memory, where a
# zero_copy store (an unnamed tmpfs file, "/memfd:ublk-mem") counts by the
# pages the file holds, whether mapped or not.
store_kb() {
	_kb=$(awk '/^VmRSS:/ { r = $2 } /^RssShmem:/ { s = $2 } END { print r - s }' \
		"/proc/$1/status")
	for _fd in "/proc/$1/fd/"*; do
		case $(readlink "$_fd") in
		/memfd:ublk-mem*) _kb=$((_kb + $(stat -L -c %b "$_fd") / 2)) ;;
		esac
	done
	echo "$_kb"
}

# copy_mode_of ID: the device's copy mode from `ublk-mem list --json`.
copy_mode_of() {
	run_with_timeout 30 "$UBLK_MEM" list --json |
		grep "\"id\":$1," | sed 's/.*"copy_mode":"\([a-z_]*\)".*/\1/'
}

# Does the device started last serve zero_copy (asked for, or the default
# from Linux 6.16)?  Its store is a tmpfs file, allocated a page at a time
# (no huge pages).
serves_zero_copy() {
	[ "$(copy_mode_of "$SRV_ID")" = zero_copy ]
}

# drop_caches: forget cached pages so reads go to the device.
drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# load_module NAME [PARAM=VALUE...]: load a kernel module unless it is there.
# In the VM modules are plain .ko files in $UBLKMEM_MODULES; elsewhere modprobe.
load_module() {
	_m=$1
	shift
	[ -d "/sys/module/$_m" ] && return 0
	if [ -f "$UBLKMEM_MODULES/$_m.ko" ]; then
		insmod "$UBLKMEM_MODULES/$_m.ko" "$@"
	else
		modprobe "$_m" "$@"
	fi
}
# load_brd [rd_size=KiB rd_nr=N ...]: RAM disks /dev/ram0...
load_brd() {
	load_module brd "$@" || fail "cannot load brd"
	wait_for /dev/ram0 10 || fail "brd loaded but /dev/ram0 did not appear"
}
# load_null_blk [PARAM=VALUE...]: /dev/nullb0 (configfs comes first).
load_null_blk() {
	load_module configfs 2>/dev/null
	load_module null_blk "$@" || fail "cannot load null_blk"
	wait_for /dev/nullb0 10 || fail "null_blk loaded but /dev/nullb0 did not appear"
}

# wait_for PATH SECS: wait until PATH exists.
wait_for() {
	wait_until "$2" test -e "$1"
}

# need_ublk: skip unless the kernel offers ublk.
need_ublk() {
	if [ ! -e /dev/ublk-control ] && load_module ublk_drv 2>/dev/null; then
		wait_for /dev/ublk-control 5
	fi
	if [ ! -e /dev/ublk-control ]; then
		# The VM is made for ublk: there, a missing driver is a failure.
		[ "${UBLKMEM_VM:-0}" = 1 ] && fail "no /dev/ublk-control in the test VM"
		skip "no /dev/ublk-control (ublk_drv not available)"
	fi
	command -v "$UBLK_MEM" >/dev/null 2>&1 || fail "no server binary: $UBLK_MEM (UBLK_MEM)"
}

# need_tool PATH NAME: skip unless PATH (found above) is set. The VM's
# image has every tool the tests use: there, a missing one is a failure.
need_tool() {
	if [ -z "$1" ] || [ ! -x "$1" ]; then
		[ "${UBLKMEM_VM:-0}" = 1 ] && fail "$2 is missing in the test VM (test/vm/initramfs.sh adds it)"
		skip "$2 is not installed"
	fi
}

# --- the server ------------------------------------------------------------

# start_ublk SIZE [OPTIONS...]: start ublk-mem in the background and wait up
# to START_TIMEOUT seconds (default 30) for the line naming its device.
# $UBLK_MEM_ARGS, when set, is added to the options of every new device;
# $UBLK_MEM_ENV, NAME=VALUE words, to the server's environment.
# Sets DEV, SRV_ID, SRV_PID, SRV_OUT, SRV_ERR.
start_ublk() {
	_nsrv=$((_nsrv + 1))
	SRV_OUT=$T_TMP/srv$_nsrv.out
	SRV_ERR=$T_TMP/srv$_nsrv.err
	: >"$SRV_OUT"
	# UBLK_MEM_ARGS: options for every new device (e.g. a copy mode).
	if [ "$1" != recover ] && [ -n "${UBLK_MEM_ARGS:-}" ]; then
		# shellcheck disable=SC2086 # a list of options
		set -- "$@" $UBLK_MEM_ARGS
	fi
	# shellcheck disable=SC2086 # RUN_AS: words; UBLK_MEM_ENV: NAME=VALUE words for env
	${RUN_AS:-} env ${UBLK_MEM_ENV:-} "$UBLK_MEM" "$@" >"$SRV_OUT" 2>"$SRV_ERR" &
	SRV_PID=$!
	echo "$SRV_PID" >>"$T_TMP/pids"
	_i=0
	_limit=$((${START_TIMEOUT:-30} * 10))
	while :; do
		DEV=$(grep -m 1 -E '^/dev/ublkb[0-9]+$' "$SRV_OUT")
		[ -n "$DEV" ] && break
		if ! alive "$SRV_PID"; then
			wait "$SRV_PID"
			_rc=$?
			fail "ublk-mem $* exited with status $_rc before its device was live: $(head -c 500 "$SRV_ERR")"
		fi
		if [ $_i -ge $_limit ]; then
			fail "ublk-mem $* printed no /dev/ublkbN line within ${START_TIMEOUT:-30}s"
		fi
		sleep 0.1
		_i=$((_i + 1))
	done
	SRV_ID=${DEV#/dev/ublkb}
	[ -b "$DEV" ] || fail "ublk-mem printed $DEV, which is not a block device"
	say "${UBLK_MEM##*/} $* -> $DEV (pid $SRV_PID)"
	# A copy mode UBLK_MEM_ARGS asks for must be the one the device uses.
	if [ "$1" != recover ]; then
		# shellcheck disable=SC2086 # a list of options
		_mode=$(args_copy_mode ${UBLK_MEM_ARGS:-})
		[ -z "$_mode" ] || expect_eq "$(copy_mode_of "$SRV_ID")" "$_mode" \
			"copy mode of $DEV (UBLK_MEM_ARGS=$UBLK_MEM_ARGS)"
	fi
}

# args_copy_mode ARG...: the mode the last --copy-mode among ARGs names.
args_copy_mode() {
	_acm=
	while [ $# -gt 0 ]; do
		case $1 in
		--copy-mode=*) _acm=${1#--copy-mode=} ;;
		--copy-mode) _acm=${2:-}; [ $# -gt 1 ] && shift ;;
		esac
		shift
	done
	echo "$_acm"
}

# recover_dev ID: take device ID over with `ublk-mem recover ID`, or, where
# the kernel refuses that (Linux 6.12 after a recovery that ended half-way,
# or a device that never started), with `recover ID --rebuild`, which the
# refusal must name. Sets what start_ublk sets.
recover_dev() {
	_nsrv=$((_nsrv + 1))
	SRV_OUT=$T_TMP/srv$_nsrv.out
	SRV_ERR=$T_TMP/srv$_nsrv.err
	"$UBLK_MEM" recover "$1" >"$SRV_OUT" 2>"$SRV_ERR" &
	SRV_PID=$!
	echo "$SRV_PID" >>"$T_TMP/pids"
	wait_until 30 recover_settled || fail "recover $1 neither came up nor gave up in 30 s: $(cat "$SRV_ERR")"
	if alive "$SRV_PID"; then
		DEV=$(grep -m 1 -E '^/dev/ublkb[0-9]+$' "$SRV_OUT")
		SRV_ID=${DEV#/dev/ublkb}
		say "recover $1 -> $DEV (pid $SRV_PID)"
		return 0
	fi
	wait "$SRV_PID"
	_rc=$?
	say "recover $1 refused (exit $_rc): $(cat "$SRV_ERR")"
	expect_eq "$_rc" 1 "exit status of the refused recovery"
	grep -q -- "recover $1 --rebuild" "$SRV_ERR" || fail "the refusal does not name --rebuild"
	start_ublk recover "$1" --rebuild
}

# recover_settled: the recovery recover_dev started serves (its device is
# printed) or has ended.
recover_settled() {
	grep -q '^/dev/ublkb' "$SRV_OUT" || ! alive "$SRV_PID"
}

# store_sha ID: sha256 of device ID's default store file (fails if there is none).
store_sha() {
	[ -f "/dev/shm/ublk-mem-$1" ] || fail "the store /dev/shm/ublk-mem-$1 is gone"
	sha_of "/dev/shm/ublk-mem-$1"
}

# listed ID: `ublk-mem list` shows device ID.
listed() {
	"$UBLK_MEM" list | awk -v id="$1" '$1 == id { found = 1 } END { exit !found }'
}

# stop_server PID DEV [SIGNAL]: stop a server (default TERM); it must exit 0
# within 30 s and its device nodes must go.
stop_server() {
	_pid=$1
	_dev=$2
	_sig=${3:-TERM}
	alive "$_pid" || fail "the server of $_dev (pid $_pid) is not running"
	kill -"$_sig" "$_pid" || fail "cannot send SIG$_sig to $_pid"
	wait_exit "$_pid" 30 ublk-mem "SIG$_sig"
	wait "$_pid"
	_rc=$?
	[ "$_rc" = 0 ] || fail "ublk-mem of $_dev exited with status $_rc after SIG$_sig"
	wait_gone "$_dev" "/dev/ublkc${_dev#/dev/ublkb}" ||
		fail "$_dev or /dev/ublkc${_dev#/dev/ublkb} still exists after a clean stop"
	say "ublk-mem pid $_pid stopped by SIG$_sig, exit 0, $_dev gone"
}

# hold_open DEV: a process holding DEV open (read-only, fd 3) until killed;
# returns once it does, with HOLDER set to its pid.
hold_open() {
	(exec 3<"$1" && exec sleep 600) &
	HOLDER=$!
	echo "$HOLDER" >>"$T_TMP/pids"
	_i=0
	until [ "$(readlink "/proc/$HOLDER/fd/3" 2>/dev/null)" = "$1" ]; do
		alive "$HOLDER" || fail "could not hold $1 open"
		[ $_i -ge 300 ] && fail "$1 not held open after 30 s"
		sleep 0.1
		_i=$((_i + 1))
	done
}

# refused_stop PID ERRFILE SIGNAL: send SIGNAL to the server PID of a device
# in use; it must answer with a line on its stderr (ERRFILE) saying the
# device is in use, and keep running.
refused_stop() {
	kill -"$3" "$1" || fail "cannot send SIG$3 to $1"
	_i=0
	until grep -q "is in use" "$2"; do
		alive "$1" || fail "the server (pid $1) stopped on SIG$3 although its device is in use"
		[ $_i -ge 300 ] && fail "the server (pid $1) said nothing 30 s after SIG$3"
		sleep 0.1
		_i=$((_i + 1))
	done
	alive "$1" || fail "the server (pid $1) stopped although its device is in use"
	say "SIG$3 refused: $(grep -m 1 'is in use' "$2")"
}

# stop_in_use PID DEV ERRFILE [SIGNAL]: stop the server of a device that is
# in use (mounted, held open): the first signal (default TERM) must be
# refused (refused_stop); a second one then stops it anyway, exit 0.
stop_in_use() {
	alive "$1" || fail "the server of $2 (pid $1) is not running"
	refused_stop "$1" "$3" "${4:-TERM}"
	stop_server "$1" "$2" "${4:-TERM}"
}

# refuse STATUS WHAT ARGS...: `ublk-mem ARGS` must fail with exit status
# STATUS ("any" for any failure) and one line on stderr, within 30 s,
# printing nothing on stdout and adding or removing no device.
refuse() {
	_want=$1 _what=$2
	shift 2
	_before=$(ublk_nodes)
	# shellcheck disable=SC2086 # RUN_AS: words
	run_with_timeout 30 ${RUN_AS:-} "$UBLK_MEM" "$@" >"$T_TMP/r.out" 2>"$T_TMP/r.err"
	_rc=$?
	[ $_rc != 124 ] || fail "$_what: ublk-mem $* hung"
	[ $_rc != 0 ] || fail "$_what: ublk-mem $* succeeded"
	[ "$_want" = any ] || [ $_rc = "$_want" ] ||
		fail "$_what: ublk-mem $* exited with status $_rc, want $_want: $(cat "$T_TMP/r.err")"
	expect_eq "$(grep -c '' "$T_TMP/r.err")" 1 "lines on stderr for $_what"
	say "$_what: exit $_rc: $(cat "$T_TMP/r.err")"
	[ ! -s "$T_TMP/r.out" ] || fail "$_what: it printed $(cat "$T_TMP/r.out")"
	expect_eq "$(ublk_nodes)" "$_before" "ublk devices after the refusal ($_what)"
}

# has_feature NAME: the kernel's ublk driver offers UBLK_F_NAME.
has_feature() {
	"$UBLK_MEM" features | grep -q "^$1 *yes"
}

# stat_of ID NAME: one field of `ublk-mem stats ID` (zram's names); a
# failed stats request fails the test.
stat_of() {
	run_with_timeout 30 "$UBLK_MEM" stats "$1" >"$T_TMP/stats" 2>"$T_TMP/stats.err" ||
		fail "ublk-mem stats $1 failed: $(cat "$T_TMP/stats.err")"
	_so=$(awk -v n="$2" '$1 == n { print $2 }' "$T_TMP/stats")
	[ -n "$_so" ] || fail "ublk-mem stats $1 has no $2: $(tr '\n' ' ' <"$T_TMP/stats")"
	echo "$_so"
}

# text_file PATH BYTES: compressible text (words and numbers in lines, as
# logs and source code are), BYTES long, a multiple of 4096.
text_file() {
	awk -v n="$2" 'BEGIN {
		split("the of and a to in is that for it as with was on by block device page memory server kernel request queue write read", w, " ")
		srand(7)
		while (t < n) {
			l = sprintf("%06d %s %s %s %d %s\n", i++, w[int(rand() * 26) + 1],
				w[int(rand() * 26) + 1], w[int(rand() * 26) + 1], int(rand() * 100000),
				w[int(rand() * 26) + 1])
			printf "%s", l
			t += length(l)
		}
	}' | head -c "$2" >"$1" || fail "cannot write $1"
	[ "$(stat -c %s "$1")" = "$2" ] || fail "$1 is not $2 bytes long"
}

# server_of DEV: the pid of the server of DEV, from `ublk-mem list`.
server_of() {
	"$UBLK_MEM" list | awk -v id="${1#/dev/ublkb}" '$1 == id { print $3 }'
}

# stop_ublk: stop_server with SIGTERM for the last started server.
stop_ublk() {
	stop_server "$SRV_PID" "$DEV" TERM
}

# check_alive: fail unless the last started server still runs.
check_alive() {
	alive "$SRV_PID" || fail "ublk-mem (pid $SRV_PID, $DEV) died"
}

# --- data ------------------------------------------------------------------

# sha_stream WHAT BYTES CMD [ARG...]: sha256 of what CMD writes on stdout.
# CMD must exit 0 having written BYTES bytes (any number when BYTES is
# empty); otherwise the test fails: two reads that both failed must not
# compare equal.
sha_stream() {
	_ss_what=$1 _ss_want=$2
	shift 2
	_ss_d=$(mktemp -d "$T_TMP/sha.XXXXXX") || fail "cannot make a directory in $T_TMP"
	mkfifo "$_ss_d/fifo" || fail "cannot make a fifo in $_ss_d"
	# Count the bytes on the way to sha256sum.
	wc -c <"$_ss_d/fifo" >"$_ss_d/bytes" &
	_ss_wc=$!
	{
		"$@" 2>"$_ss_d/err"
		echo $? >"$_ss_d/rc"
	} | tee "$_ss_d/fifo" | sha256sum >"$_ss_d/sha"
	wait "$_ss_wc"
	_ss_rc=$(cat "$_ss_d/rc") _ss_got=$(($(cat "$_ss_d/bytes")))
	_ss_err=$(head -n 3 "$_ss_d/err")
	[ "$_ss_rc" = 0 ] ||
		fail "reading $_ss_what: $1 exited with status $_ss_rc${_ss_err:+: $_ss_err}"
	[ -z "$_ss_want" ] || [ "$_ss_got" = "$_ss_want" ] ||
		fail "reading $_ss_what: $_ss_got bytes read of $_ss_want${_ss_err:+: $_ss_err}"
	cut -d' ' -f1 "$_ss_d/sha"
	rm -rf "$_ss_d"
}

# sha_of FILE [BYTES]: sha256 of a file (or a device, read through the page
# cache), or of its first BYTES; a failed or short read fails the test.
sha_of() {
	if [ -n "${2:-}" ]; then
		sha_stream "the first $2 bytes of $1" "$2" head -c "$2" "$1"
	elif [ -b "$1" ]; then
		sha_stream "$1" "$(dev_size "$1")" cat "$1"
	else
		sha_stream "$1" "$(stat -L -c %s "$1" 2>/dev/null)" cat "$1"
	fi
}

# dev_sha DEV [OFFSET LENGTH]: sha256 of a device range read with O_DIRECT
# (default: the whole device). OFFSET and LENGTH are multiples of the
# logical block size. A read error or a short read fails the test.
dev_sha() {
	if [ $# -ge 3 ]; then
		sha_stream "$3 bytes of $1 at $2" "$3" \
			dd if="$1" bs=1M skip="$2" count="$3" iflag=skip_bytes,count_bytes,direct
	else
		_ds_size=$(dev_size "$1") || fail "cannot read the size of $1"
		sha_stream "$1" "$_ds_size" dd if="$1" bs=1M iflag=direct
	fi
}

# zero_sha BYTES: sha256 of BYTES zero bytes.
zero_sha() {
	head -c "$1" /dev/zero | sha256sum | cut -d' ' -f1
}

# random_file PATH BYTES: incompressible data, different on every call. fio's
# generator makes it twice as fast as /dev/urandom in the emulated VM.
random_file() {
	if [ $(($2 % 65536)) = 0 ] && [ -x "$FIO" ]; then
		"$FIO" --name=random_file --filename="$1" --rw=write --bs=64k --size="$2" \
			--ioengine=psync --refill_buffers=1 --randrepeat=0 >/dev/null 2>&1 ||
			fail "cannot write $1"
	else
		head -c "$2" /dev/urandom >"$1" || fail "cannot write $1"
	fi
	[ "$(stat -c %s "$1")" = "$2" ] || fail "$1 is not $2 bytes long"
}

# write_at DEV FILE OFFSET: write FILE at byte OFFSET of DEV with O_DIRECT.
# FILE's size and OFFSET must be multiples of the logical block size.
write_at() {
	dd if="$2" of="$1" bs="$(stat -c %s "$2")" count=1 seek="$3" \
		oflag=seek_bytes,direct conv=notrunc 2>"$T_TMP/dd.err" ||
		fail "dd to $1 at $3 failed: $(cat "$T_TMP/dd.err")"
}

# mount_dev DEV DIR [OPTIONS]: mount, and unmount at exit if still mounted.
mount_dev() {
	mkdir -p "$2"
	mount ${3:+-o "$3"} "$1" "$2" || fail "cannot mount $1 on $2"
	echo "$2" >>"$T_TMP/mounts"
}

# zone_field ZONE FIELD: a field of zone ZONE (counted from 0) of $DEV in
# blkzone's report ($BLKZONE; zones of $ZONE_SECTORS sectors): start, len, cap, wptr (sectors, from hex; wptr from the zone start)
# or zcond (its short name).
zone_field() {
	"$BLKZONE" report -o $(($1 * ZONE_SECTORS)) -c 1 "$DEV" | awk -v f="$2" '{
		if (f == "zcond") {
			if (match($0, /zcond: *[0-9]+\([a-z]+\)/)) {
				v = substr($0, RSTART, RLENGTH)
				sub(/.*\(/, "", v)
				sub(/\)/, "", v)
				print v
			}
			exit
		}
		for (i = 1; i <= NF; i++) {
			k = $i
			sub(/:$/, "", k)
			if (k == f) {
				v = $(i + 1)
				sub(/,$/, "", v)
				printf "%d\n", v
			}
		}
	}'
}

# --- fio -------------------------------------------------------------------

# fio_run NAME [FIO OPTIONS...]: run one fio job against $DEV with libaio and
# O_DIRECT (the options given override these defaults). It must exit 0 and
# must have moved data; sets FIO_READS, FIO_WRITES and FIO_TRIMS (I/Os issued).
fio_run() {
	_name=$1
	shift
	_log=$T_TMP/fio-$_name.log
	# shellcheck disable=SC2086 # RUN_AS: words
	(cd "$T_TMP" && ${RUN_AS:-} "$FIO" --name="$_name" --filename="$DEV" --ioengine=libaio \
		--direct=1 --verify_state_save=0 --group_reporting "$@") >"$_log" 2>&1
	_rc=$?
	if [ $_rc -ne 0 ]; then
		# What went wrong first (a verify mismatch names offset and
		# checksums), then how the job ended; not the JSON report
		# (fio_verify asks for one), which names options such as verify.
		awk '/^\{$/ { j = 1 } !j { print } /^\}$/ { j = 0 }' "$_log" >"$_log.text"
		grep -m 10 -iE 'verify|bad magic|crc|error|err=' "$_log.text"
		tail -n 12 "$_log.text"
		_why=$(grep -m 1 -iE 'verify.*fail|bad magic|crc32c|error' "$_log.text")
		fail "fio $_name exited with status $_rc${_why:+: $_why}"
	fi
	# "issued rwts: total=R,W,T,S" (one line with --group_reporting).
	FIO_READS=$(awk -F'[=,]' '/issued rwts/ { r += $2 } END { print r + 0 }' "$_log")
	FIO_WRITES=$(awk -F'[=,]' '/issued rwts/ { w += $3 } END { print w + 0 }' "$_log")
	FIO_TRIMS=$(awk -F'[=,]' '/issued rwts/ { t += $4 } END { print t + 0 }' "$_log")
	_trims=
	[ "$FIO_TRIMS" = 0 ] || _trims=", $FIO_TRIMS trims"
	say "fio $_name: $FIO_READS reads, $FIO_WRITES writes$_trims"
	[ $((FIO_READS + FIO_WRITES + FIO_TRIMS)) -gt 0 ] || fail "fio $_name issued no I/O"
}

# fio_verify NAME [FIO OPTIONS...]: write with crc32c checksums, then read
# everything back and check it (defaults: 4 KiB random writes at QD32 over
# the first 16 MiB). Both phases must have happened: the verify phase must
# have read back every byte written. fio counts its reads together, so a
# job that also reads (--rw=randrw), which moves SIZE bytes per job before
# it verifies, must have read SIZE bytes per job at least: SIZE less what
# it wrote in the mix, plus the verify's reads of all that it wrote.
fio_verify() {
	_name=$1
	shift
	fio_run "$_name" --rw=randwrite --bs=4k --iodepth=32 --size=16M \
		--verify=crc32c --do_verify=1 --verify_fatal=1 --output-format=normal,json "$@"
	[ "$FIO_WRITES" -gt 0 ] || fail "fio $_name wrote nothing"
	_fv_rw=randwrite _fv_size=16M _fv_io='' _fv_jobs=1
	for _fv_a in "$@"; do
		case $_fv_a in
		--rw=* | --readwrite=*) _fv_rw=${_fv_a#*=} ;;
		--size=*) _fv_size=${_fv_a#*=} ;;
		--io_size=* | --io_limit=*) _fv_io=${_fv_a#*=} ;;
		--numjobs=*) _fv_jobs=${_fv_a#*=} ;;
		esac
	done
	# Bytes read and written, exact, from fio's JSON report.
	_fv_rw_bytes=$(awk '/^\{$/ { j = 1 } j && /^ *"read" : \{/ { d = "r" }
		j && /^ *"write" : \{/ { d = "w" } j && /^ *"trim" : \{/ { d = "" }
		d && /^ *"io_bytes" :/ { gsub(/[^0-9]/, "", $3); b[d] += $3; d = "" }
		/^\}$/ { j = 0 } END { print b["r"] + 0, b["w"] + 0 }' "$T_TMP/fio-$_name.log")
	_fv_read=${_fv_rw_bytes% *} _fv_written=${_fv_rw_bytes#* }
	[ "$_fv_written" -gt 0 ] || fail "fio $_name: no bytes written in its JSON report"
	case ${_fv_rw%%:*} in
	write | randwrite) _fv_mixed=0 ;;
	*)
		_fv_mixed=$(fio_bytes "${_fv_io:-$_fv_size}") ||
			fail "fio_verify $_name: cannot tell the bytes of --size/--io_size ${_fv_io:-$_fv_size}"
		_fv_mixed=$((_fv_mixed * _fv_jobs - _fv_written))
		;;
	esac
	_fv_verified=$((_fv_read - _fv_mixed))
	[ "$_fv_verified" -ge "$_fv_written" ] ||
		fail "fio $_name verified $_fv_verified of the $_fv_written bytes it wrote ($_fv_read bytes read)"
}

# fio_bytes SIZE: a fio size (16M, 4k, 1G, 4096) in bytes (fio's K is 1024).
fio_bytes() {
	_fb=${1%[kKmMgG]}
	case $_fb in '' | *[!0-9]*) return 1 ;; esac
	case $1 in
	*[kK]) echo $((_fb * 1024)) ;;
	*[mM]) echo $((_fb * 1048576)) ;;
	*[gG]) echo $((_fb * 1073741824)) ;;
	*) echo "$_fb" ;;
	esac
}

# fio_verify_only NAME [FIO OPTIONS...]: check data an earlier fio_verify
# with the same options wrote, without writing.
fio_verify_only() {
	_name=$1
	shift
	fio_run "$_name" --rw=randwrite --bs=4k --iodepth=32 --size=16M \
		--verify=crc32c --verify_only --verify_fatal=1 "$@"
	[ "$FIO_READS" -gt 0 ] || fail "fio $_name verified nothing"
}

# fio_background NAME [FIO OPTIONS...]: start a two-minute 4 KiB QD32 fio
# load on $DEV in the background (the options given override these), wait
# until it has completed 200 I/Os on the device while still running, and
# set FIO_PID. The test ends it by taking the device away; fio's output is
# in $T_TMP/fio-NAME.log.
fio_background() {
	_name=$1
	shift
	_log=$T_TMP/fio-$_name.log
	_ios0=$(dev_ios "$DEV")
	(cd "$T_TMP" && "$FIO" --name="$_name" --filename="$DEV" --ioengine=libaio \
		--direct=1 --bs=4k --iodepth=32 --size=32M --time_based --runtime=120 \
		"$@") >"$_log" 2>&1 &
	FIO_PID=$!
	wait_io "$DEV" "$_ios0" 200 "$FIO_PID" ||
		fail "fio $_name did not get going: $(tail -n 5 "$_log")"
}

# fio_across NAME DEV: start crc32c-verified 4 KiB random writes at QD16
# over 32 MiB of DEV in the background, to run across an event (a crash, a
# restart); return once 300 I/Os have completed, with FIO_PID set. The rate
# limit keeps fio writing for at least 4 s (8192 writes at 2000 a second)
# however fast the machine, so the event always lands mid-run. fio's
# output is in $T_TMP/fio-NAME.log; fio_across_done checks it.
fio_across() {
	_ios0=$(dev_ios "$2")
	(cd "$T_TMP" && "$FIO" --name="$1" --filename="$2" --ioengine=libaio --direct=1 \
		--rw=randwrite --bs=4k --iodepth=16 --size=32M --rate_iops=2000 \
		--verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0) \
		>"$T_TMP/fio-$1.log" 2>&1 &
	FIO_PID=$!
	wait_io "$2" "$_ios0" 300 "$FIO_PID" ||
		fail "fio $1 did not get going: $(tail -n 5 "$T_TMP/fio-$1.log")"
}

# fio_across_done NAME WHAT: wait for fio_across's fio to end; it must have
# verified every block with no error.
fio_across_done() {
	wait_exit "$FIO_PID" 120 fio "$2"
	wait "$FIO_PID" || { tail -n 20 "$T_TMP/fio-$1.log"; fail "fio failed across $2"; }
	grep -q "err= 0" "$T_TMP/fio-$1.log" || fail "fio saw errors: $(grep -m 3 err "$T_TMP/fio-$1.log")"
	_reads=$(awk -F'[=,]' '/issued rwts/ { r += $2 } END { print r + 0 }' "$T_TMP/fio-$1.log")
	[ "$_reads" -gt 0 ] || fail "fio verified nothing"
	say "fio verified $_reads blocks written across $2"
}

# --- ordinary users ---------------------------------------------------------

# Two users without root, for unprivileged devices: USER1 (uid 5001) and
# USER2 (5002), each with a group of its own and both in the group ublk
# (5000), which may open /dev/ublk-control as dist/ublk-mem.rules has it.
USER1=ublktest1 UID1=5001
USER2=ublktest2 UID2=5002
UBLK_GID=5000
SETPRIV=$(first_tool /usr/bin/setpriv /bin/setpriv) || SETPRIV=
UEVENT_RUN=$TEST_ROOT/suite/uevent_run

# users_setup: the users and groups in /etc/passwd and /etc/group, their
# runtime directories (/run/user/UID, as a login makes them), T_TMP open
# to them, /dev/ublk-control open to the group ublk; all put back when the
# test ends.
users_setup() {
	need_tool "$SETPRIV" "util-linux's setpriv"
	for _f in /etc/passwd /etc/group; do
		cp "$_f" "$T_TMP/${_f##*/}.orig" || fail "cannot keep $_f"
		undo_at_exit "cat '$T_TMP/${_f##*/}.orig' >$_f"
	done
	printf '%s:x:%s:%s:ublk-mem test user:/tmp:/bin/sh\n' "$USER1" $UID1 $UID1 \
		"$USER2" $UID2 $UID2 >>/etc/passwd
	printf 'ublk:x:%s:%s,%s\n%s:x:%s:\n%s:x:%s:\n' $UBLK_GID "$USER1" "$USER2" \
		"$USER1" $UID1 "$USER2" $UID2 >>/etc/group
	for _u in $UID1 $UID2; do
		undo_at_exit "rm -rf /run/user/$_u"
		{ mkdir -p "/run/user/$_u" && chown "$_u:$_u" "/run/user/$_u" &&
			chmod 700 "/run/user/$_u"; } || fail "cannot make /run/user/$_u"
	done
	chmod 755 "$T_TMP"
	undo_at_exit "chgrp 0 /dev/ublk-control; chmod 600 /dev/ublk-control"
	{ chgrp "$UBLK_GID" /dev/ublk-control && chmod 660 /dev/ublk-control; } ||
		fail "cannot open /dev/ublk-control to the group ublk"
}

# user_words UID: the command words that run what follows as user UID:
# its own group and the group ublk, no capabilities, its runtime
# directory in the environment, as after a login.
user_words() {
	echo "$SETPRIV --reuid=$1 --regid=$1 --groups=$UBLK_GID --inh-caps=-all --" \
		"env HOME=/tmp XDG_RUNTIME_DIR=/run/user/$1"
}

# as_user UID: run the servers, fio and refuse's commands as user UID from
# now on (RUN_AS); as_user root: as root again.
as_user() {
	if [ "$1" = root ]; then
		RUN_AS=
	else
		RUN_AS=$(user_words "$1")
	fi
}

# user_run UID CMD...: run CMD as user UID.
user_run() {
	_ur=$1
	shift
	# shellcheck disable=SC2046 # words
	$(user_words "$_ur") "$@"
}

# node_owner PATH: "UID:GID MODE" of a node (the mode in octal: 600).
node_owner() {
	stat -c '%u:%g %a' "$1"
}

# start_udev [--kernel] PROGRAM [ARG...]: run PROGRAM for every uevent of a
# ublk device node (of a node matching UDEV_MATCH, a shell pattern, if
# set) while the test runs, as udev runs a rule's RUN+= (with --kernel, as
# the kernel runs its hotplug helper: mdev); see uevent_run.c. What the
# programs print is in $T_TMP/udev.log. Returns once it listens.
start_udev() {
	[ -x "$UEVENT_RUN" ] ||
		fail "no $UEVENT_RUN: build it with 'make test/suite/uevent_run' (make test does)"
	_ud_opt=
	[ "$1" = --kernel ] && { _ud_opt=--kernel; shift; }
	"$UEVENT_RUN" $_ud_opt "${UDEV_MATCH:-ublk[bc][0-9]*}" "$T_TMP/udev.log" "$@" \
		>"$T_TMP/udev.out" 2>&1 &
	UDEV_PID=$!
	echo "$UDEV_PID" >>"$T_TMP/pids"
	wait_until 10 grep -q '^listening$' "$T_TMP/udev.out" ||
		fail "uevent_run is not listening: $(cat "$T_TMP/udev.out")"
}

# stop_udev: nothing hands nodes over any more.
stop_udev() {
	kill -TERM "$UDEV_PID" 2>/dev/null
	wait_exit "$UDEV_PID" 10 uevent_run
	wait "$UDEV_PID" 2>/dev/null
}

# --- setup -----------------------------------------------------------------

# A test gets a scratch directory and the cleanup trap; run.sh, which only
# borrows the helpers, sets UBLKMEM_LIB_ONLY=1.
if [ "${UBLKMEM_LIB_ONLY:-0}" != 1 ]; then
	T_TMP=$(mktemp -d "${TMPDIR:-/tmp}/ublk-test.XXXXXX") || exit 1
	T_START=$(date +%s)
	trap _cleanup EXIT
	trap 'exit 143' TERM
	trap 'exit 130' INT
fi
