#!/bin/bash
# Which kernels ublk-mem works on: test/kernels.sh [KVER...]
#
# Boots the newest bootable release of every Debian cloud kernel series from
# the LTS (6.12) to the newest (test/vm/kernel.sh --series), or the kernels
# named (lts, newest, 7.3, 7.3.4...), one VM each, and runs there the core
# tests (CORE_TESTS: start and size, fio verify, fio verify in each copy
# mode, ext4, discard, signals, kill -9 under load, recovery). Each boot first
# asks the kernel what its ublk driver offers (`ublk-mem features`: the
# GET_FEATURES answer by flag name) and starts a default `ublk-mem 64M` to
# see the copy mode it uses (`ublk-mem list`).
#
# Prints a compatibility table in Markdown, one row per kernel, and saves it
# in results/kernels-DATE-TIME/: table.md, table.csv and each kernel's VM
# output (RELEASE.log). Exit status 0 when every kernel passed every test.
#
# Environment: CORE_TESTS, UBLK_MEM_BIN (the server, default ./ublk-mem),
# plus what test/vm/vm.sh and test/vm/kernel.sh read.
set -u
cd "$(dirname "$0")/.." || exit 1

CORE_TESTS=${CORE_TESTS:-t-size t-fio-rand4k t-copy-modes t-ext4 t-discard t-signals
	t-sigkill t-recover t-recover-fio}
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=results/kernels-$STAMP
mkdir -p "$OUT" || exit 1
start_all=$SECONDS

log() { echo "kernels.sh: $*" >&2; }
# words TEXT: TEXT on one line, single spaces between words.
words() { printf '%s\n' "$*" | tr -s ' \t\n' '   ' | sed 's/^ //; s/ $//'; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The kernels: the arguments, or the newest release of every series.
if [ $# -gt 0 ]; then
	kvers="$*"
else
	kvers=$(test/vm/kernel.sh --series | awk '{ print $2 }') || exit 1
	[ -n "$kvers" ] || { log "test/vm/kernel.sh --series found no kernel"; exit 1; }
fi
log "kernels: $(words "$kvers")"
log "tests on each: $(words "$CORE_TESTS")"

# The probe block of a console log: "features" (GET_FEATURES hex, then the
# flags offered, then those not), "mode" (the default server's copy mode).
# shellcheck disable=SC2016 # awk's own $fields
PROBE_AWK='
/^probe-features: GET_FEATURES / { hex = $3 }
/^probe-features: [A-Z0-9_]+ (yes|no)( |$)/ {
	if ($3 == "yes") yes = yes (yes == "" ? "" : " ") $2
	else no = no (no == "" ? "" : " ") $2
}
/^probe-list: ID / { for (i = 1; i <= NF; i++) if ($i == "FLAGS") col = i; next }
/^probe-list: [0-9]/ && col && mode == "" { split($col, f, ","); mode = f[1] }
END {
	if (hex == "") hex = "?"
	if (hex == "?") yes = no = "?"
	print (hex) "\t" (yes == "" ? "-" : yes) "\t" (no == "" ? "-" : no) "\t" (mode == "" ? "?" : mode)
}'

csv=$OUT/table.csv
echo "release,passed,failed,skipped,get_features,offered,not_offered,copy_mode,seconds,notes" >"$csv"
failures=0
for kv in $kvers; do
	kstart=$SECONDS
	echo
	echo "######## KVER=$kv ########"
	if ! out=$(KERNEL='' MODULES='' KVER=$kv test/vm/kernel.sh 2>"$tmp/kernel.err"); then
		cat "$tmp/kernel.err" >&2
		why=$(tail -n 1 "$tmp/kernel.err" | sed 's/^kernel\.sh: //' | tr ',' ';')
		echo "$kv,0,1,0,?,?,?,?,$((SECONDS - kstart)),not booted: $why" >>"$csv"
		failures=$((failures + 1))
		continue
	fi
	cat "$tmp/kernel.err" >&2
	eval "$out"
	export KERNEL MODULES KVERSION
	# shellcheck disable=SC2086 # the test list is space separated
	VM_PROBE=1 test/vm/vm.sh test $CORE_TESTS >"$tmp/vm.log" 2>&1 &
	vm=$!
	# Show the progress: the tests as they finish, and the verdict.
	tail -n +1 -f --pid=$vm "$tmp/vm.log" 2>/dev/null | awk '
		/^======== VM / { results = 1 }
		results && /^(PASS|SKIP) / { next }
		/^(vm\.sh: booting|PASS |FAIL |SKIP |vm: |[0-9]+ passed|note: |probe-)/ { print; fflush() }'
	wait $vm
	rc=$?
	cp "$tmp/vm.log" "$OUT/$KVERSION.log"
	summary=$(grep -a -E '^[0-9]+ passed, [0-9]+ failed' "$tmp/vm.log" | tail -n 1)
	p=$(sed -n -E 's/^([0-9]+) passed.*/\1/p' <<<"$summary")
	f=$(sed -n -E 's/.* ([0-9]+) failed.*/\1/p' <<<"$summary")
	s=$(sed -n -E 's/.* ([0-9]+) skipped$/\1/p' <<<"$summary")
	p=${p:-0} f=${f:-1} s=${s:-0}
	[ "$rc" != 0 ] && [ "$f" = 0 ] && f=1
	[ "$f" != 0 ] && failures=$((failures + 1))
	IFS=$'\t' read -r hex yes no mode < <(tr -d '\r' <"$tmp/vm.log" | awk "$PROBE_AWK")
	# The tests that failed, once each, and a VM that did not finish.
	notes=$(sed -n -E 's/^FAIL (t-[a-z0-9-]+|vm|kernel)[: ].*/\1/p' "$tmp/vm.log" | sort -u | tr '\n' ' ')
	notes=${notes:+failed: ${notes% }}
	echo "$KVERSION,$p,$f,$s,$hex,$yes,$no,$mode,$((SECONDS - kstart)),$notes" >>"$csv"
done

# The table, in Markdown.
{
	echo "## ublk-mem on Debian cloud kernels, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "Server built from $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(
		[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && echo ' with uncommitted changes'
	); tests on each kernel: $(words "$CORE_TESTS")."
	echo "Flags: GET_FEATURES by name, as \`ublk-mem features\` reports them (\"?\": no answer)."
	echo "Copy mode: the one a default \`ublk-mem 64M\` uses there (\`ublk-mem list\`)."
	echo
	echo "| kernel | tests passed | failed | GET_FEATURES | flags offered | not offered | default copy mode | time | notes |"
	echo "|---|--:|--:|---|---|---|---|--:|---|"
	awk -F, 'NR > 1 {
		printf "| %s | %d | %d | %s | %s | %s | %s | %dm%02ds | %s |\n", $1, $2, $3, $5, $6, $7, $8,
			$9 / 60, $9 % 60, $10
	}' "$csv"
} >"$OUT/table.md"
echo
cat "$OUT/table.md"
echo
echo "saved in $OUT/; time: $(((SECONDS - start_all) / 60))m$(((SECONDS - start_all) % 60))s"
[ "$failures" = 0 ]
