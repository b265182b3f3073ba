#!/bin/bash
# Boot the test VM: vm.sh MODE [ARGS...]
#
#   vm.sh test [t-NAME...]   run the integration suite (all tests, or those named)
#   vm.sh shell              interactive shell on the VM console (Ctrl-A X quits)
#   vm.sh demo               create, format, use and remove a device
#   vm.sh bench [OPTIONS]    run bench.sh --in-vm OPTIONS
#
# The VM is qemu under TCG (this machine's KVM cannot run it) with the Debian
# kernel KVER names (kernel.sh: lts, newest, 7.3, 7.3.4...) and an initramfs
# built by initramfs.sh; test/vm/init runs the mode. The console goes to the
# terminal and to a log file in $UBLK_MEM_CACHE/logs/. Afterwards the log is checked for the guest's
# results and for kernel oopses, warnings and hangs.
#
# Environment:
#   KVER            the kernel (default lts, Debian 12's 6.12; see kernel.sh)
#   ARCH, KFLAVOUR  the guest: x86_64 or arm64 (default this machine's); an
#                   arm64 guest runs in qemu-system-aarch64 with KFLAVOUR arm64
#                   (4 KiB pages, default) or arm64-16k (see common.sh). The
#                   server must be built for it (make ARCH=arm64)
#   VM_TIMEOUT      seconds the whole VM may run (default 1500; arm64 3600)
#   VM_SILENCE      seconds the console may stay quiet before the VM is
#                   killed as hung (default 420; arm64 600)
#   VM_MEM, VM_SMP  guest memory in MiB (2048) and CPUs (2)
#   VM_APPEND       more kernel parameters
#   VM_CPU          qemu's -cpu (default max; on arm64 max,pauth-impdef=on)
#   UBLK_MEM_GUEST  name of the server binary in the guest's /usr/local/bin
#                   (default ublk-mem; see UBLK_MEM_EXTRA in initramfs.sh)
#   UBLK_MEM_ARGS   options the tests add to every server they start
#                   (e.g. "--copy-mode user_copy")
#   VM_PROBE=1      first print what the kernel's ublk offers (see init)
#   SUITE_SAY=1     show what passing tests said (their "# ..." lines)
#   UBLK_MEM_BIN, UBLK_MEM_EXTRA, KERNEL, MODULES, UBLK_MEM_CACHE
# Exit status: 0 when the VM finished and everything passed, 1 otherwise.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

usage() {
	sed -n '2,8s/^# \{0,1\}//p' "$0" >&2
	exit 2
}
[ $# -ge 1 ] || usage
MODE=$1
shift
case $MODE in
test | shell | demo | bench) ;;
*) usage ;;
esac

VM_TIMEOUT=${VM_TIMEOUT:-$VM_TIMEOUT_DEFAULT}
VM_SILENCE=${VM_SILENCE:-$VM_SILENCE_DEFAULT}
VM_MEM=${VM_MEM:-2048}
VM_SMP=${VM_SMP:-2}

ensure_pkgs "$QEMU_SYSTEM:$QEMU_PKG"
KVERSION=
eval "$("$VM_DIR/kernel.sh")"
export KERNEL MODULES KVERSION

LOGDIR=$CACHE/logs
mkdir -p "$LOGDIR" "$CACHE/initramfs"
LOG=$LOGDIR/vm-$MODE-$(date +%Y%m%d-%H%M%S)-$$.log
# Keep the 30 newest logs.
find "$LOGDIR" -name 'vm-*.log' -printf '%T@ %p\n' | sort -rn | tail -n +31 |
	cut -d' ' -f2- | xargs -r rm -f

INITRD=$(mktemp "$CACHE/initramfs/initrd.XXXXXX")
QEMU_PID=
cleanup() {
	[ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null
	rm -f "$INITRD"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"$VM_DIR/initramfs.sh" "$INITRD"

# Kernel arguments: the mode, its arguments and the server's name.
for a in "$@"; do
	case $a in *[\"\ ]*) die "arguments may hold neither spaces nor double quotes: $a" ;; esac
done
APPEND="console=$CONSOLE quiet panic=-1 mitigations=off ublkmem.mode=$MODE"
[ $# -gt 0 ] && APPEND="$APPEND ublkmem.args=\"$*\""
[ -n "${UBLK_MEM_GUEST:-}" ] && APPEND="$APPEND ublkmem.bin=$UBLK_MEM_GUEST"
[ -n "${UBLK_MEM_ARGS:-}" ] && APPEND="$APPEND ublkmem.srvargs=$(echo "$UBLK_MEM_ARGS" | tr ' ' ,)"
[ "${SUITE_SAY:-0}" = 1 ] && APPEND="$APPEND ublkmem.say=1"
[ "${VM_PROBE:-0}" = 1 ] && APPEND="$APPEND ublkmem.probe=1"
[ -n "${VM_APPEND:-}" ] && APPEND="$APPEND $VM_APPEND"

# shellcheck disable=SC2054 # commas belong to qemu options
QEMU=("$QEMU_SYSTEM" "${QEMU_MACHINE[@]}" -accel tcg,thread=multi -m "$VM_MEM" -smp "$VM_SMP"
	-no-reboot -display none -kernel "$KERNEL" -initrd "$INITRD" -append "$APPEND")

if [ "$MODE" = shell ]; then
	log "console log: $LOG"
	log "Ctrl-A X leaves the VM, Ctrl-A C switches to the qemu monitor"
	"${QEMU[@]}" -chardev "stdio,id=con,mux=on,signal=off,logfile=$LOG" \
		-serial chardev:con -mon chardev=con,mode=readline
	exit $?
fi

indent() { sed 's/^/    /'; }

# Make the console log readable: drop escape sequences and carriage returns.
clean() {
	sed -u -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1b[()][0-9A-Za-z]//g' \
		-e 's/\x1b[A-Za-z=>]//g' -e 's/\r//g'
}

# Seconds since this machine booted: unlike the wall clock, never stepped
# (by NTP, say), so a step cannot pass for a hang.
uptime_s() {
	local up
	read -r up _ </proc/uptime
	echo "${up%%.*}"
}

# Boot the VM once and watch it: overall time and silence on the console.
# Sets why_killed (empty unless it had to be killed) and elapsed.
boot() {
	log "console log: $LOG"
	log "booting $KVERSION: $APPEND"
	# The machine, for bench.sh's reports: "vm.sh: machine: qemu 7.2.22 TCG, -cpu max".
	log "machine: qemu $("$QEMU_SYSTEM" --version | sed -n '1s/.*version \([^ ]*\).*/\1/p') TCG, ${QEMU_MACHINE[*]}"
	: >"$LOG"
	"${QEMU[@]}" -monitor none -serial "file:$LOG" </dev/null &
	QEMU_PID=$!
	tail -n +1 -f --pid="$QEMU_PID" "$LOG" 2>/dev/null | clean &
	TAIL_PID=$!

	local start last_size=0 last_change now size
	start=$(uptime_s)
	last_change=$start
	why_killed=
	while kill -0 "$QEMU_PID" 2>/dev/null; do
		sleep 2
		now=$(uptime_s)
		size=$(stat -c %s "$LOG")
		if [ "$size" != "$last_size" ]; then
			last_size=$size
			last_change=$now
		fi
		if [ $((now - start)) -ge "$VM_TIMEOUT" ]; then
			why_killed="ran longer than VM_TIMEOUT=${VM_TIMEOUT}s"
		elif [ $((now - last_change)) -ge "$VM_SILENCE" ]; then
			why_killed="console silent for ${VM_SILENCE}s (VM_SILENCE): hung"
		fi
		if [ -n "$why_killed" ]; then
			kill "$QEMU_PID" 2>/dev/null || true
			break
		fi
	done
	wait "$QEMU_PID" 2>/dev/null || true
	QEMU_PID=
	wait "$TAIL_PID" 2>/dev/null || true
	elapsed=$(($(uptime_s) - start))
}

# Under TCG the kernel now and then crashes while it boots (seen: an int3
# Oops in sched_clock_cpu, in PID 1 before user space), before the guest
# has run anything of ours. Such a boot, one that never reached the
# guest's first UBLKMEM- line and did not finish, is tried once more; its
# log is kept next to the new one. A crash after that line counts.
boot
if ! grep -a -q 'UBLKMEM-' "$LOG"; then
	cp "$LOG" "$LOG.first-boot"
	log "the kernel died before the guest started (log: $LOG.first-boot); booting once more"
	boot
fi

CLEAN=$(clean <"$LOG")
TAG=$(echo "$MODE" | tr '[:lower:]' '[:upper:]')
end_line=$(grep -a -m1 "^UBLKMEM-$TAG-END rc=" <<<"$CLEAN" || true)
guest_rc=${end_line##*rc=}

echo
echo "======== VM $MODE on $KVERSION: results (console log: $LOG) ========"
failed_extra=0

# Kernel trouble anywhere in the log. Kernel lines carry a [ seconds.micro ]
# stamp, which keeps the tests' own words from matching.
KPAT='\[ *[0-9]+\.[0-9]+\] .*(BUG:|Oops|WARNING:.*ublk|Kernel panic|general protection fault|blocked for more than|hung_task|KASAN|UBSAN|kernel BUG|Unable to handle)'
# Known harmless, as test/suite/run.sh explains: 7.2's io_uring annotation.
KNOT='UBSAN: array-index-out-of-bounds in .*/linux-7\.2\.[0-9]+/io_uring/rsrc\.c:'
oops=$(grep -a -E "$KPAT" <<<"$CLEAN" | grep -a -v -E "$KNOT" | head -n 20 || true)
stalls=$(grep -a -E '\[ *[0-9]+\.[0-9]+\] .*rcu.*(stall|self-detected)' <<<"$CLEAN" | head -n 3 || true)

if [ "$MODE" = test ]; then
	grep -a -E '^(PASS|FAIL|SKIP) ' <<<"$CLEAN" || true
	summary=$(grep -a -E '^[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' <<<"$CLEAN" | tail -n 1 || true)
	if [ -n "$summary" ]; then
		passed=$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$summary")
		failed=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$summary")
		skipped=$(sed -E -n 's/.* ([0-9]+) skipped$/\1/p' <<<"$summary")
	else
		# No summary: count the result lines that made it out.
		passed=$(grep -a -c '^PASS ' <<<"$CLEAN" || true)
		failed=$(grep -a -c '^FAIL ' <<<"$CLEAN" || true)
		skipped=$(grep -a -c '^SKIP ' <<<"$CLEAN" || true)
	fi
	skipped=${skipped:-0}
fi

if [ -n "$oops" ]; then
	echo "FAIL kernel: oops, warning or hang in the console log:"
	indent <<<"$oops"
	failed_extra=$((failed_extra + 1))
fi
if [ -n "$stalls" ]; then
	echo "note: RCU stall reports (TCG may be starved of CPU):"
	indent <<<"$stalls"
fi
if [ -n "$why_killed" ]; then
	echo "FAIL vm: killed after ${elapsed}s: $why_killed"
	echo "    last console lines:"
	tail -n 15 <<<"$CLEAN" | indent
	failed_extra=$((failed_extra + 1))
elif [ -z "$end_line" ]; then
	echo "FAIL vm: the guest stopped after ${elapsed}s without finishing (panic or crash?)"
	echo "    last console lines:"
	tail -n 15 <<<"$CLEAN" | indent
	failed_extra=$((failed_extra + 1))
else
	echo "vm: finished in ${elapsed}s, guest exit status $guest_rc"
fi

if [ "$MODE" = test ]; then
	failed=$((failed + failed_extra))
	line="$passed passed, $failed failed"
	[ "$skipped" -gt 0 ] && line="$line, $skipped skipped"
	echo "$line"
	[ "$failed" -eq 0 ] && [ "${guest_rc:-1}" = 0 ] && [ "$passed" -gt 0 ]
	exit $?
fi
[ "$failed_extra" -eq 0 ] && [ "${guest_rc:-1}" = 0 ]
