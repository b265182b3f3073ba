#!/bin/sh
# Every malformed command line is refused: exit status 2 (1 for a size the
# machine cannot hold), one line on stderr, nothing on stdout, no device.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

before=$(ublk_nodes)
n=0
# try WANT ARGS...: WANT is the exit status, or 1|2.
try() {
	want=$1
	shift
	n=$((n + 1))
	# Should it start serving after all, SIGTERM (exit 0) ends it.
	timeout 15 "$UBLK_MEM" "$@" >"$T_TMP/out" 2>"$T_TMP/err" </dev/null
	rc=$?
	say "ublk-mem $* -> $rc: $(cat "$T_TMP/err")"
	[ -s "$T_TMP/out" ] && fail "ublk-mem $* printed on stdout: $(head -c 200 "$T_TMP/out")"
	case "|$want|" in
	*"|$rc|"*) ;;
	*) fail "ublk-mem $* exited with status $rc, want $want; stderr: $(cat "$T_TMP/err")" ;;
	esac
	expect_eq "$(grep -c '' "$T_TMP/err")" 1 "lines on stderr for ublk-mem $*"
	expect_eq "$(ublk_nodes)" "$before" "ublk devices after ublk-mem $*"
}

try 2
try 2 0
try 2 abc
try 2 12Q
try 2 -5
try 2 1.5M
try 2 64MB
try 2 64Mi
try 2 ""
try 2 1000
try 2 $((64 * MiB + 512)) -b 4096
try 2 64M -b 3000
try 2 64M -b 256
try 2 64M -b 8192
try 2 64M -b abc
try 2 64M -d 0
try 2 64M -d 5000
try 2 64M -d -1
try 2 64M -q 0
try 2 64M -q abc
try 2 64M -n abc
try 2 64M -n -3
try 2 64M --bogus
try 2 64M -x
try 2 64M -b
try 2 64M 64M
try 2 99999999999999999999
try 2 99999999999T
try '1|2' 64G
try 2 -5M
grep -q "unknown option '-5'" "$T_TMP/err" || fail "ublk-mem -5M did not name the bad option: $(cat "$T_TMP/err")"
try 2 64M --bogus-long
grep -q "'--bogus-long'" "$T_TMP/err" || fail "the unknown long option was not named: $(cat "$T_TMP/err")"
try 2 64M --recoverable --store ""
try 2 64M --recoverable --store /tmp
try 2 64M --recoverable --store /nonexistent-dir/store
try 2 64M --recoverable --small-pages
try 2 64M --reserve abc
try 2 64M --reserve -1
try 2 64M --poll=abc
try 2 64M --queue-threads 0
try 2 64M --queue-threads abc
try 2 64M -d 4 --queue-threads 5
try 2 64M --queue-threads 2 --io-path batch
try 2 del
try 2 del abc
try 2 list extra
try 2 features extra
try 2 recover
try 2 recover abc
try 2 recover 0 --poll=abc
try 2 recover 0 --queue-threads 0
# A store path with a newline would break its record's format.
try 2 recover 0 --store "$(printf '/dev/shm/a\nb')"
try 2 recover 0 --reserve 12Q
expect_eq "$(ublk_nodes)" "$before" "ublk devices after all"
say "$n malformed command lines refused"
