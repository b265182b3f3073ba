#!/bin/bash
# Which kernels ublk-mem works on: test/kernels.sh [KVER...]
#
# Boots the newest bootable release of every Debian cloud kernel series from
# the LTS (6.12) to the newest (test/vm/kernel.sh --series), or the kernels
# named (lts, newest, 7.3, 7.3.4...), one VM each, and runs there the core
# tests (CORE_TESTS: start and size, fio verify, fio verify in each copy
# mode, several threads per queue, ext4, discard, signals, kill -9 under
# load, recovery). Each boot first
# asks the kernel what its ublk driver offers (`ublk-mem features`: the
# GET_FEATURES answer by flag name) and starts a default `ublk-mem 64M` to
# see the copy mode it uses (`ublk-mem list`).
#
# Prints a compatibility table in Markdown, one row per kernel, and saves it
# in results/kernels-DATE-TIME/: table.md, table.csv and each kernel's VM
# output (RELEASE.log). Run on every series (no KVER given), it also writes
# docs/kernels.md (docs/kernels-arm64.md for ARCH=arm64): what the kernels
# are, the table, and what older kernels do; that file is not edited by
# hand. Exit status 0 when every kernel passed every test.
#
# Environment: CORE_TESTS, UBLK_MEM_BIN (the server, default ./ublk-mem),
# plus what test/vm/vm.sh and test/vm/kernel.sh read: ARCH=arm64 with
# KFLAVOUR=arm64 or arm64-16k makes the table for Debian's arm64 kernels
# (make test-kernels ARCH=arm64 builds ./ublk-mem for them).
set -u
cd "$(dirname "$0")/.." || exit 1

CORE_TESTS=${CORE_TESTS:-t-size t-fio-rand4k t-copy-modes t-queue-threads t-ext4 t-discard
	t-signals t-sigkill t-recover t-recover-fio}
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

# The probe block of a console log, as "HEX<tab>FLAGS<tab>MODE": the
# GET_FEATURES answer, each flag `ublk-mem features` names as NAME:yes or
# NAME:no in its order, and the copy mode of the default server ("?" for
# what is missing).
# shellcheck disable=SC2016 # awk's own $fields
PROBE_AWK='
/^probe-features: GET_FEATURES / { hex = $3 }
/^probe-features: [A-Za-z0-9_-]+ +(yes|no)( |$)/ { flags = flags (flags == "" ? "" : " ") $2 ":" $3 }
/^probe-list: ID / { for (i = 1; i <= NF; i++) if ($i == "FLAGS") col = i; next }
/^probe-list: [0-9]/ && col && mode == "" { split($col, f, ","); mode = f[1] }
END {
	if (hex == "") hex = flags = "?"
	print hex "\t" (flags == "" ? "-" : flags) "\t" (mode == "" ? "?" : mode)
}'

csv=$OUT/table.csv
echo "release,passed,failed,skipped,get_features,flags,copy_mode,seconds,notes" >"$csv"
failures=0
for kv in $kvers; do
	kstart=$SECONDS
	echo
	echo "######## KVER=$kv ########"
	if ! out=$(KERNEL='' MODULES='' KVER=$kv test/vm/kernel.sh 2>"$tmp/kernel.err"); then
		cat "$tmp/kernel.err" >&2
		why=$(tail -n 1 "$tmp/kernel.err" | sed -e 's/^kernel\.sh: KVER=[^:]*: //' \
			-e 's/; kernel\.sh --list shows what there is$//' | tr ',' ';')
		echo "$kv,0,1,0,?,?,?,$((SECONDS - kstart)),not booted: $why" >>"$csv"
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
		!results && /^[0-9]+ passed/ { next }
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
	IFS=$'\t' read -r hex flags mode < <(tr -d '\r' <"$tmp/vm.log" | awk "$PROBE_AWK")
	# The tests that failed, once each, and a VM that did not finish.
	notes=$(sed -n -E 's/^FAIL (t-[a-z0-9-]+|vm|kernel)[: ].*/\1/p' "$tmp/vm.log" | sort -u | tr '\n' ' ')
	notes=${notes:+failed: ${notes% }}
	echo "$KVERSION,$p,$f,$s,$hex,$flags,$mode,$((SECONDS - kstart)),$notes" >>"$csv"
done

# The table, in Markdown.
{
	case ${ARCH:-}:${KFLAVOUR:-} in
	arm64:* | aarch64:*) what="Debian's ${KFLAVOUR:-arm64} kernels (arm64)" ;;
	*) what="Debian cloud kernels" ;;
	esac
	echo "## ublk-mem on $what, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "Server built from $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(
		[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && echo ' with uncommitted changes'
	); tests on each kernel: $(words "$CORE_TESTS")."
	echo "GET_FEATURES: the driver's answer (\`ublk-mem features\`; \"?\": no answer), and how many"
	echo "of the flags ublk-mem knows it offers. Copy mode: the one a default \`ublk-mem 64M\` uses"
	echo "there (\`ublk-mem list\`)."
	echo
	echo "| kernel | tests passed | failed | GET_FEATURES | flags offered | default copy mode | time | notes |"
	echo "|---|--:|--:|---|--:|---|--:|---|"
	awk -F, 'NR > 1 {
		n = split($6, F, " ")
		yes = 0
		for (i = 1; i <= n; i++) yes += F[i] ~ /:yes$/
		offered = $6 == "?" ? "?" : yes " of " n
		printf "| %s | %d | %d | %s | %s | %s | %dm%02ds | %s |\n", $1, $2, $3, $5, offered, $7,
			$8 / 60, $8 % 60, $9
	}' "$csv"
	# The flags kernel by kernel: one row per flag, one column per kernel.
	awk -F, '
	NR == 1 { next }
	$6 != "?" {
		k = ++nk
		kern[k] = $1
		sub(/[+-].*/, "", kern[k])
		n = split($6, F, " ")
		for (i = 1; i <= n; i++) {
			split(F[i], nv, ":")
			if (!(nv[1] in row)) { row[nv[1]] = ++nf; flag[nf] = nv[1] }
			v[nv[1], k] = nv[2]
		}
	}
	END {
		if (nk == 0) exit
		printf "\n| flag |"
		for (k = 1; k <= nk; k++) printf " %s |", kern[k]
		printf "\n|---|"
		for (k = 1; k <= nk; k++) printf ":-:|"
		printf "\n"
		for (i = 1; i <= nf; i++) {
			printf "| %s |", flag[i]
			for (k = 1; k <= nk; k++) printf " %s |", ((flag[i], k) in v) ? v[flag[i], k] : "-"
			printf "\n"
		}
	}' "$csv"
} >"$OUT/table.md"
echo
cat "$OUT/table.md"
# The document, from the full run only.
if [ $# -eq 0 ]; then
	doc=docs/kernels.md
	case ${ARCH:-} in arm64 | aarch64) doc=docs/kernels-arm64.md ;; esac
	mkdir -p docs
	{
		echo "<!-- generated by test/kernels.sh (make test-kernels); do not edit -->"
		echo "# Kernels"
		echo
		cat test/kernels-intro.md
		echo
		sed 's/^## /## Run: /' "$OUT/table.md"
		echo
		cat test/kernels-older.md
	} >"$doc"
	log "wrote $doc"
fi
echo
echo "saved in $OUT/; time: $(((SECONDS - start_all) / 60))m$(((SECONDS - start_all) % 60))s"
[ "$failures" = 0 ]
