#!/bin/sh
# -h/--help print the usage and exit 0; -V/--version print a version.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
command -v "$UBLK_MEM" >/dev/null 2>&1 || fail "no server binary: $UBLK_MEM"

for opt in -h --help; do
	step "ublk-mem $opt"
	"$UBLK_MEM" $opt >"$T_TMP/out" 2>"$T_TMP/err"
	rc=$?
	expect_eq $rc 0 "exit status of ublk-mem $opt"
	grep -qi usage "$T_TMP/out" || fail "ublk-mem $opt printed no usage on stdout"
	for word in SIZE --queues --depth --block-size --id --prealloc list del; do
		grep -q -- "$word" "$T_TMP/out" || fail "ublk-mem $opt does not mention $word"
	done
done
for opt in -V --version; do
	step "ublk-mem $opt"
	"$UBLK_MEM" $opt >"$T_TMP/out" 2>"$T_TMP/err"
	rc=$?
	expect_eq $rc 0 "exit status of ublk-mem $opt"
	grep -q '[0-9]\.[0-9]' "$T_TMP/out" || fail "ublk-mem $opt printed no version: $(cat "$T_TMP/out")"
	expect_eq "$(grep -c '' "$T_TMP/out")" 1 "lines printed by ublk-mem $opt"
done
