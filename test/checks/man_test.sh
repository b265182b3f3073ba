#!/bin/bash
# The man page, ublk-mem.8: it passes mandoc's lint and groff's warnings,
# and it documents the same verbs and options as `ublk-mem --help`, no more
# and no fewer, each short option with its long one.
# Exit 0 pass, 1 fail, like the C unit tests.
set -u
cd "$(dirname "$0")/../.." || exit 1
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok() { echo "ok - $1"; }
bad() {
	echo "FAIL - $1"
	[ -s "$tmp/why" ] && sed 's/^/    | /' "$tmp/why" | head -n 20
	fails=$((fails + 1))
}

[ -x ./ublk-mem ] || { echo "FAIL - ./ublk-mem is not built (make)"; exit 1; }
if ! command -v mandoc >/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mandoc >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null 2>&1 &&
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mandoc >/dev/null 2>&1; }
fi

# Lint: every message counts but one that depends on what this machine has
# installed (a page named in SEE ALSO that is not here).
if command -v mandoc >/dev/null; then
	mandoc -T lint ublk-mem.8 2>&1 | grep -v -e 'referenced manual not found' \
		-e 'outdated mandoc.db' >"$tmp/why"
	if [ -s "$tmp/why" ]; then bad "mandoc -T lint ublk-mem.8"; else ok "mandoc -T lint ublk-mem.8"; fi
	mandoc -T ascii ublk-mem.8 2>/dev/null | col -b >"$tmp/man.txt"
else
	echo "# no mandoc: checking with groff alone"
	groff -mandoc -T ascii -P -c ublk-mem.8 2>/dev/null | col -b >"$tmp/man.txt"
fi
if command -v groff >/dev/null; then
	groff -mandoc -ww -z ublk-mem.8 >"$tmp/why" 2>&1
	if [ -s "$tmp/why" ]; then bad "groff -ww (man --warnings) on ublk-mem.8"; else ok "groff -ww (man --warnings) on ublk-mem.8"; fi
fi
: >"$tmp/why"
if [ -s "$tmp/man.txt" ] && grep -q '^SYNOPSIS' "$tmp/man.txt"; then
	ok "the page renders"
else
	bad "the page renders"
fi

./ublk-mem --help >"$tmp/help.txt" 2>&1 || { echo "FAIL - ublk-mem --help failed"; exit 1; }

# long_opts FILE: every --option named, one a line. Options of other
# programs in the page's examples (systemctl enable --now) are not ours.
long_opts() {
	grep -oE -- '--[a-z][a-z-]*[a-z]' "$1" | grep -v -x -e '--now' | sort -u
}
# pairs FILE: "-x --long" for each option given both ways ("-q, --queues").
pairs() {
	grep -oE -- '(^|[[:space:]])-[a-zA-Z], --[a-z][a-z-]*' "$1" |
		sed -E 's/^[[:space:]]*//; s/, / /' | sort -u
}
# compare WHAT: the --help list against the page's (which must not be
# empty: two empty lists agree on nothing).
compare() {
	if [ ! -s "$tmp/help.$1" ]; then
		: >"$tmp/why"
		bad "the man page and --help agree on $2: --help names none"
		return
	fi
	diff "$tmp/help.$1" "$tmp/man.$1" | sed -n 's/^</only in --help:/p; s/^>/only in the man page:/p' >"$tmp/why"
	if [ -s "$tmp/why" ]; then bad "the man page and --help agree on $2"; else ok "the man page and --help agree on $2 ($(grep -c '' "$tmp/help.$1"))"; fi
}

long_opts "$tmp/help.txt" >"$tmp/help.long"
long_opts "$tmp/man.txt" >"$tmp/man.long"
compare long "the long options"
pairs "$tmp/help.txt" >"$tmp/help.pairs"
pairs "$tmp/man.txt" >"$tmp/man.pairs"
compare pairs "each short option's long form"
# Short options alone, as the usage lines give them (-D, -v of recover).
grep -oE -- '\[-[a-zA-Z]\]' "$tmp/help.txt" | tr -d '[]' | sort -u >"$tmp/help.short"
: >"$tmp/why"
[ -s "$tmp/help.short" ] || echo "--help shows no short option alone ([-x])" >>"$tmp/why"
while read -r s; do
	# -v as an option of its own, not inside --version or -vv.
	grep -q -E -- "(^|[^-[:alnum:]])$s([^-[:alnum:]]|\$)" "$tmp/man.txt" ||
		echo "$s is not in the man page" >>"$tmp/why"
done <"$tmp/help.short"
if [ -s "$tmp/why" ]; then bad "the man page names the usage lines' short options"; else ok "the man page names the usage lines' short options"; fi

# The verbs: each usage line's, in the page's synopsis.
sed -n '/^SYNOPSIS/,/^DESCRIPTION/p' "$tmp/man.txt" >"$tmp/synopsis"
: >"$tmp/why"
sed -nE 's/^(usage:)? +ublk-mem ([a-z]+).*/\2/p' "$tmp/help.txt" >"$tmp/help.verbs"
[ -s "$tmp/help.verbs" ] || echo "--help shows no verb (ublk-mem VERB ...)" >>"$tmp/why"
while read -r verb; do
	grep -q -E "ublk-mem $verb( |\$)" "$tmp/synopsis" || echo "ublk-mem $verb is not in SYNOPSIS" >>"$tmp/why"
done <"$tmp/help.verbs"
if [ -s "$tmp/why" ]; then bad "every verb of --help is in the synopsis"; else ok "every verb of --help is in the synopsis"; fi

# The sections an admin looks for.
: >"$tmp/why"
for sec in NAME SYNOPSIS DESCRIPTION ENVIRONMENT FILES "EXIT STATUS" EXAMPLES "SEE ALSO" \
	"   Signals" "   Kernel versions" "   Running as a service" "   Memory"; do
	grep -q "^$sec\$" "$tmp/man.txt" || echo "no section '$sec'" >>"$tmp/why"
done
for file in /dev/ublk-control /dev/shm/ublk-mem-ID /run/ublk-mem/ID; do
	sed -n '/^FILES/,/^EXIT STATUS/p' "$tmp/man.txt" | grep -q -- "$file" ||
		echo "FILES does not name $file" >>"$tmp/why"
done
if [ -s "$tmp/why" ]; then bad "the sections and files are there"; else ok "the sections and files are there"; fi

echo "# man_test: $fails failed"
[ "$fails" = 0 ]
