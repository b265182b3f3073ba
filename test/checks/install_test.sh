#!/bin/bash
# `make install` and `make uninstall` into a temporary DESTDIR, with the
# default PREFIX and with PREFIX=/usr: exactly the expected files, with
# their modes, the binary unchanged, the paths inside the unit, the man
# page, the init examples and the udev rules made to match PREFIX, rules
# of udev's syntax (KEY=="value", ... on each line), a unit systemd accepts
# (when systemd-analyze is here); uninstall leaves no file behind.
# Exit 0 pass, 1 fail, 77 when a check could not run here (and none
# failed), like the C unit tests.
set -u
cd "$(dirname "$0")/../.." || exit 1
fails=0
skips=
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok() { echo "ok - $1"; }
bad() {
	echo "FAIL - $1"
	[ -s "$tmp/why" ] && sed 's/^/    | /' "$tmp/why" | head -n 20
	fails=$((fails + 1))
}
# not_here NAME WHY: a check that cannot run on this machine, counted.
not_here() {
	echo "skip - $1: $2"
	skips="$skips $1;"
}
# verdict NAME: pass when $tmp/why is empty.
verdict() {
	if [ -s "$tmp/why" ]; then bad "$1"; else ok "$1"; fi
	: >"$tmp/why"
}

[ -x ./ublk-mem ] || { echo "FAIL - ./ublk-mem is not built (make)"; exit 1; }
: >"$tmp/why"

# check_tree ROOT PREFIX: what `make install` put below ROOT for PREFIX.
check_tree() {
	local root=$1 prefix=$2 unit
	unit="$root$prefix/lib/systemd/system/ublk-mem@.service"
	find "$root" -type f -printf '%P %m\n' | sort >"$tmp/got"
	sort >"$tmp/want" <<WANT
${prefix#/}/sbin/ublk-mem 755
${prefix#/}/share/man/man8/ublk-mem.8 644
${prefix#/}/lib/systemd/system/ublk-mem@.service 644
${prefix#/}/share/doc/ublk-mem/ublk-mem.openrc 644
${prefix#/}/share/doc/ublk-mem/ublk-mem.init 644
${prefix#/}/lib/udev/rules.d/70-ublk-mem.rules 644
WANT
	diff "$tmp/want" "$tmp/got" | sed -n 's/^</missing:/p; s/^>/unexpected:/p' >"$tmp/why"
	verdict "PREFIX=$prefix: the files and their modes"

	# The installed binary is ./ublk-mem stripped: the same code, no symbols.
	strip -o "$tmp/stripped" ublk-mem
	cmp -s "$tmp/stripped" "$root$prefix/sbin/ublk-mem" ||
		echo "the installed binary is not ./ublk-mem stripped" >>"$tmp/why"
	if readelf -S "$root$prefix/sbin/ublk-mem" | grep -q -e '\.debug_info' -e '\.symtab'; then
		echo "the installed binary keeps debug info or symbols" >>"$tmp/why"
	fi
	grep -q "^ExecStart=$prefix/sbin/ublk-mem %i " "$unit" ||
		echo "ExecStart is not $prefix/sbin/ublk-mem: $(grep ExecStart "$unit")" >>"$tmp/why"
	grep -q "^command=$prefix/sbin/ublk-mem\$" "$root$prefix/share/doc/ublk-mem/ublk-mem.openrc" ||
		echo "the OpenRC script does not run $prefix/sbin/ublk-mem" >>"$tmp/why"
	grep -q "UBLK_MEM:-$prefix/sbin/ublk-mem}" "$root$prefix/share/doc/ublk-mem/ublk-mem.init" ||
		echo "the init script does not run $prefix/sbin/ublk-mem" >>"$tmp/why"
	# Each rule: comma-separated KEY{attr}=="value" / = / += / != items.
	grep -v -e '^#' -e '^$' "$root$prefix/lib/udev/rules.d/70-ublk-mem.rules" |
		grep -v -E '^[A-Z]+(\{[A-Za-z_]+\})?(==|!=|=|\+=)"[^"]*"(, *[A-Z]+(\{[A-Za-z_]+\})?(==|!=|=|\+=)"[^"]*")*$' |
		sed 's/^/not a udev rule: /' >>"$tmp/why"
	# Both rules that hand a user's nodes over run the installed binary.
	[ "$(grep -c "RUN+=\"$prefix/sbin/ublk-mem chown\"" "$root$prefix/lib/udev/rules.d/70-ublk-mem.rules")" = 2 ] ||
		echo "the udev rules do not run $prefix/sbin/ublk-mem chown: $(grep RUN "$root$prefix/lib/udev/rules.d/70-ublk-mem.rules")" >>"$tmp/why"
	grep -q -F "$prefix/lib/systemd/system/ublk\-mem@.service" "$root$prefix/share/man/man8/ublk-mem.8" ||
		echo "the man page does not name the unit's path" >>"$tmp/why"
	grep -q -F "$prefix/share/doc/ublk-mem" "$root$prefix/share/man/man8/ublk-mem.8" ||
		echo "the man page does not name the examples' directory" >>"$tmp/why"
	if [ "$prefix" != /usr/local ]; then
		grep -l /usr/local -r "$root" >>"$tmp/why"
	fi
	verdict "PREFIX=$prefix: the paths inside the files"

	if command -v systemd-analyze >/dev/null; then
		# ExecStart must exist on this machine: point it at the copy.
		mkdir -p "$tmp/unit"
		sed "s|^ExecStart=[^ ]*|ExecStart=$root$prefix/sbin/ublk-mem|" "$unit" \
			>"$tmp/unit/ublk-mem@64M.service"
		systemd-analyze verify --man=no "$tmp/unit/ublk-mem@64M.service" >"$tmp/why" 2>&1
		verdict "PREFIX=$prefix: systemd-analyze verify accepts the unit"
	else
		not_here "PREFIX=$prefix: systemd-analyze verify" "no systemd-analyze"
	fi
	if command -v mandoc >/dev/null; then
		mandoc -T lint "$root$prefix/share/man/man8/ublk-mem.8" 2>&1 |
			grep -v -e 'referenced manual not found' -e 'outdated mandoc.db' >"$tmp/why"
		verdict "PREFIX=$prefix: the installed man page passes mandoc -T lint"
	else
		not_here "PREFIX=$prefix: mandoc -T lint" "no mandoc"
	fi
}

# install_into ROOT [PREFIX]: make install there; the tree is checked after.
install_into() {
	make -s --no-print-directory install DESTDIR="$1" ${2:+PREFIX="$2"} >"$tmp/why" 2>&1 ||
		{ bad "make install DESTDIR=$1 ${2:+PREFIX=$2}"; return 1; }
	: >"$tmp/why"
	ok "make install DESTDIR=TMP${2:+ PREFIX=$2}"
}

# uninstall_from ROOT [PREFIX]: make uninstall leaves no file (and no
# directory of ublk-mem's own).
uninstall_from() {
	make -s --no-print-directory uninstall DESTDIR="$1" ${2:+PREFIX="$2"} >"$tmp/why" 2>&1 ||
		{ bad "make uninstall DESTDIR=$1 ${2:+PREFIX=$2}"; return 1; }
	find "$1" -type f >"$tmp/why"
	find "$1" -name ublk-mem -type d >>"$tmp/why"
	verdict "make uninstall ${2:+PREFIX=$2 }removes every file it installed"
}

install_into "$tmp/default" && check_tree "$tmp/default" /usr/local &&
	uninstall_from "$tmp/default"
install_into "$tmp/usr" /usr && check_tree "$tmp/usr" /usr && uninstall_from "$tmp/usr" /usr

echo "# install_test: $fails failed"
[ "$fails" = 0 ] || exit 1
# A check that could not run is not a pass: the last line says which.
[ -z "$skips" ] || { echo "skipped:$skips"; exit 77; }
