#!/bin/bash
# Make a Debian kernel with the ublk driver available for the test VM.
#
# usage: kernel.sh              fetch the kernel KVER names (once) and print, for eval:
#                                 KERNEL=/path/to/vmlinuz
#                                 MODULES=/path/to/dir/of/decompressed/*.ko
#                                 KVERSION=its release, as uname -r prints it
#        kernel.sh --resolve    print the release KVER names, without fetching it
#        kernel.sh --series     the newest bootable release of each series from the
#                               LTS up, one "SERIES RELEASE" a line, oldest first
#        kernel.sh --list       every cloud kernel the package indexes offer,
#                               bootable or not and why
#
# KVER (default lts; newest for another ARCH than this machine's) is one of
#   lts      the newest Debian 12 6.12 cloud kernel, from this machine's own apt
#   newest   the newest Debian kernel of the flavour that boots with its modules
#   7.3      the newest bootable point release of a series
#   7.3.4    a version (or a whole release: 7.3.4+deb13-cloud-amd64)
# The flavour is KFLAVOUR's (common.sh): cloud-amd64 for ARCH=x86_64;
# arm64 (4 KiB pages) or arm64-16k (16 KiB pages) for ARCH=arm64.
#
# Kernels other than the LTS, and every kernel of another architecture than
# this machine's, come from Debian's sid and trixie-backports suites
# through an apt configuration of our own under $UBLK_MEM_CACHE/apt/DEB_ARCH:
# its own sources list (naming the Debian archive this machine's apt uses),
# package lists and cache, so the machine's apt set-up is left as it is.
# A kernel is bootable when its packages hold both the kernel and its
# modules: one self-contained linux-image-RELEASE, or the linux-binary- and
# linux-modules-RELEASE packages a linux-image-RELEASE depends on, all of
# them in the archive. Once unpacked, vmlinuz and ublk_drv.ko must be there.
#
# Each kernel is cached by release in $UBLK_MEM_CACHE/kernels/RELEASE:
# vmlinuz, and modules/ with the decompressed .ko files the VM loads (a
# file "preload" there lists the dependencies to load first). Several are
# kept. With KERNEL and MODULES set in the environment, those are used
# (MODULES may be a flat directory of .ko/.ko.xz files or a lib/modules tree).
#
# Environment: KVER, KERNEL, MODULES, UBLK_MEM_CACHE, ARCH, KFLAVOUR (common.sh),
# UBLK_MEM_SUITES (default "sid trixie-backports"), UBLK_MEM_MIRROR (the
# Debian archive's URI, when this machine's apt configuration names none),
# UBLK_MEM_INDEX_HOURS (refresh our package lists when older, default 24).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

# Modules the VM needs, by name (drivers/block/..., fs/configfs), plus nbd
# for the benchmark's nbdkit device, dm_mod for device-mapper targets
# stacked on a ublk device, zram (the compressed RAM disk ublk-mem is
# measured against), btrfs and zonefs (file systems for zoned devices) and
# xfs. Their dependencies come along; a kernel without one of them runs
# without it (the tests needing it say so).
WANTED="ublk_drv brd loop null_blk configfs nbd dm_mod zram btrfs zonefs xfs"
# Debian's cloud kernels have ext4 built in, its arm64 and arm64-16k
# flavours as a module.
case $KFLAVOUR in cloud-*) ;; *) WANTED="$WANTED ext4" ;; esac
# The series "lts" names; it comes from this machine's own apt sources.
LTS_SERIES=6.12
SUITES=${UBLK_MEM_SUITES:-sid trixie-backports}
if [ "$FOREIGN" = 1 ]; then
	KVER=${KVER:-newest}
else
	KVER=${KVER:-lts}
fi
KDIR=$CACHE/kernels

# ---- modules -----------------------------------------------------------------

# find_module SRC NAME: the file of module NAME below SRC ("" when none).
find_module() {
	local alt=${2//_/-}
	find "$1" \( -name "$2.ko" -o -name "$2.ko.xz" -o -name "$2.ko.zst" -o -name "$2.ko.gz" \
		-o -name "$alt.ko" -o -name "$alt.ko.xz" -o -name "$alt.ko.zst" -o -name "$alt.ko.gz" \) \
		-print -quit
}

# module_deps KO: the modules KO depends on, from its .modinfo section.
module_deps() {
	tr '\0' '\n' <"$1" | sed -n 's/^depends=//p' | head -n 1 | tr , ' '
}

# collect_modules SRC DST: copy each wanted module found below SRC, and the
# modules those depend on, into DST decompressed. DST/preload lists the
# dependencies that are not wanted themselves, in an order insmod accepts.
# Fails when ublk_drv is neither a module nor built in.
collect_modules() {
	local src=$1 dst=$2 queue name f d seen=" " order=()
	mkdir -p "$dst"
	queue=$WANTED
	while [ -n "${queue// /}" ]; do
		read -r name queue <<<"$queue"
		case $seen in *" $name "*) continue ;; esac
		seen="$seen$name "
		f=$(find_module "$src" "$name")
		if [ -z "$f" ]; then
			# Built into the kernel: nothing to load.
			if find "$src" -name modules.builtin -exec grep -q -E "/${name//_/[_-]}\.ko$" {} + 2>/dev/null; then
				continue
			fi
			[ "$name" = ublk_drv ] && { log "no ublk_drv module below $src"; return 1; }
			log "warning: $name.ko not found below $src"
			continue
		fi
		case $f in
		*.xz) xz -dc "$f" >"$dst/$name.ko" ;;
		*.zst) zstd -qdc "$f" >"$dst/$name.ko" ;;
		*.gz) gzip -dc "$f" >"$dst/$name.ko" ;;
		*) cp "$f" "$dst/$name.ko" ;;
		esac
		order+=("$name")
		for d in $(module_deps "$dst/$name.ko"); do
			queue="$queue $d"
		done
	done
	# A dependency found after the module needing it: list it deepest first.
	: >"$dst/preload"
	for ((d = ${#order[@]} - 1; d >= 0; d--)); do
		case " $WANTED " in *" ${order[d]} "*) ;; *) echo "${order[d]}" >>"$dst/preload" ;; esac
	done
}

# bzimage_release FILE: the release string an x86 bzImage carries ("" if none).
bzimage_release() {
	local off
	[ "$(dd if="$1" bs=1 skip=$((0x202)) count=4 2>/dev/null)" = HdrS ] || return 0
	off=$(od -An -tu2 -j $((0x20E)) -N2 "$1" | tr -d ' ')
	dd if="$1" bs=1 skip=$((off + 0x200)) count=256 2>/dev/null | tr '\0' '\n' | head -n 1 |
		awk '{ print $1 }'
}

# ---- KERNEL and MODULES given ---------------------------------------------------

use_given() {
	local key flat release
	[ -f "${KERNEL:-}" ] || die "KERNEL=${KERNEL:-} is not a file"
	[ -d "${MODULES:-}" ] || die "MODULES=${MODULES:-} is not a directory"
	if ! find "$MODULES" -maxdepth 1 -name 'ublk_drv.ko' | grep -q .; then
		# Not a flat directory of decompressed modules: build one.
		key=$(readlink -f "$MODULES" | sha256sum | cut -c1-16)
		flat=$CACHE/modules-$key
		if [ ! -f "$flat/.done" ]; then
			rm -rf "$flat"
			collect_modules "$MODULES" "$flat" || die "MODULES=$MODULES has no ublk_drv module"
			touch "$flat/.done"
		fi
		MODULES=$flat
	fi
	release=$(bzimage_release "$KERNEL")
	# An uncompressed kernel (arm64's Image) carries its banner in clear.
	[ -n "$release" ] ||
		release=$(grep -a -o -m 1 'Linux version [^ ]*' "$KERNEL" 2>/dev/null | head -n 1 | cut -d' ' -f3 || true)
	printf 'KERNEL=%q\nMODULES=%q\nKVERSION=%q\n' "$(readlink -f "$KERNEL")" \
		"$(readlink -f "$MODULES")" "${release:-custom}"
}

# ---- the package indexes -------------------------------------------------------

# Our own apt configuration (common.sh) for $DEB_ARCH's kernels.
private_apt "$CACHE/apt/$DEB_ARCH" "$SUITES"

# host_catalogue: "RELEASE host ok PACKAGE" for each LTS cloud kernel this
# machine's apt offers. A fresh machine has no package lists: update them.
host_catalogue() {
	local series=${LTS_SERIES//./\\.} found
	# This machine's apt knows its own architecture's kernels only.
	[ "$FOREIGN" = 0 ] || return 0
	found=$(apt-cache search --names-only "^linux-image-$series\..*-$KFLAVOUR-unsigned\$" 2>/dev/null)
	if [ -z "$found" ]; then
		log "updating the apt package lists"
		apt-get update -qq >&2 </dev/null || log "warning: apt-get update failed"
		found=$(apt-cache search --names-only "^linux-image-$series\..*-$KFLAVOUR-unsigned\$" 2>/dev/null)
	fi
	[ -n "$found" ] || return 0
	awk '{ r = $1; sub(/^linux-image-/, "", r); sub(/-unsigned$/, "", r); print r, "host ok", $1 }' <<<"$found"
}

# debian_catalogue: one line per kernel release our package lists offer:
#   RELEASE debian ok PACKAGE...        (the packages that make it)
#   RELEASE debian no REASON...
# from the packages' records: which exist, and what linux-image depends on.
debian_catalogue() {
	local names
	names=$(apt-cache "${PAPT[@]}" pkgnames linux- 2>/dev/null |
		grep -E "^linux-(image|binary|modules)-[0-9][^-]*-$KFLAVOUR\$" || true)
	[ -n "$names" ] || return 0
	# shellcheck disable=SC2086 # one name a word
	apt-cache "${PAPT[@]}" show --no-all-versions $names 2>/dev/null | awk -v flavour="$KFLAVOUR" '
		/^Package: / { pkg = $2; real[pkg] = 1 }
		/^Depends: / { deps[pkg] = substr($0, 10) }
		END {
			for (p in real) {
				r = p
				if (!sub(/^linux-(image|binary)-/, "", r)) continue
				if (r in done) continue
				done[r] = 1
				img = "linux-image-" r; bin = "linux-binary-" r; mod = "linux-modules-" r
				if (img in real) {
					# What the image package pulls in that holds the kernel or modules.
					need = ""
					n = split(deps[img], D, /[ ,|()=]+/)
					for (i = 1; i <= n; i++)
						if (D[i] ~ /^linux-(binary|modules)-[0-9]/ && index(" " need " ", " " D[i] " ") == 0)
							need = need " " D[i]
					if (need == "") { print r, "debian ok", img; continue }
					miss = ""
					m = split(need, N, " ")
					for (i = 1; i <= m; i++)
						if (!(N[i] in real)) miss = miss " " N[i]
					if (miss == "") print r, "debian ok" need
					else print r, "debian no" miss, "(needed by " img ") not in the archive"
				} else if (mod in real) {
					print r, "debian ok", bin, mod
				} else {
					print r, "debian no", mod, "not in the archive"
				}
			}
		}'
}

# catalogue: both, newest release first.
catalogue() {
	{
		host_catalogue
		[ "$KVER" = lts ] || ! private_index || debian_catalogue
	} | sort -V -r -k1,1
}

# matches KVER RELEASE: RELEASE is one KVER names (lts is handled apart).
matches() {
	local want=$1 r=$2
	case $want in
	newest) return 0 ;;
	*+* | *-*) [ "$r" = "$want" ] ;;
	*.*.*) case $r in "$want"+* | "$want"-*) return 0 ;; *) return 1 ;; esac ;;
	*.*) case $r in "$want".*) return 0 ;; *) return 1 ;; esac ;;
	*) return 1 ;;
	esac
}

# candidates: the bootable catalogue lines KVER names, best first.
candidates() {
	local r src ok rest
	catalogue | while read -r r src ok rest; do
		[ "$ok" = ok ] || continue
		if [ "$KVER" = lts ]; then
			[ "$src" = host ] || continue
		else
			matches "$KVER" "$r" || continue
		fi
		echo "$r $src $rest"
	done
}

# cached_release: the newest cached kernel KVER names, for offline use.
cached_release() {
	local r
	find "$KDIR" -mindepth 2 -maxdepth 2 -name .done -printf '%h\n' 2>/dev/null |
		xargs -r -n1 basename | sort -V -r | while read -r r; do
		if [ "$KVER" = lts ]; then
			case $r in "$LTS_SERIES".*) ;; *) continue ;; esac
		fi
		if matches "${KVER/#lts/newest}" "$r"; then
			echo "$r"
			break
		fi
	done
}

# ---- fetching ------------------------------------------------------------------

# download SRC DIR PACKAGE...: the .deb files into DIR, with this machine's
# apt (host) or ours (debian); on failure refresh the lists once and retry.
download() {
	local src=$1 dir=$2 opts=()
	shift 2
	[ "$src" = debian ] && opts=("${PAPT[@]}")
	# apt drops privileges to _apt for downloads when it can write there.
	chown _apt "$dir" 2>/dev/null || true
	(cd "$dir" && apt-get "${opts[@]}" download -q "$@" >&2) && return 0
	# Stale package lists name a file the mirror no longer has.
	log "apt-get download $* failed; updating the package lists"
	if [ "$src" = debian ]; then
		private_index force || true
	else
		apt-get update -qq >&2 || true
	fi
	(cd "$dir" && apt-get "${opts[@]}" download -q "$@" >&2)
}

# fetch RELEASE SRC PACKAGE...: unpack the packages into the cache as
# $KDIR/RELEASE/{vmlinuz,modules}. Fails when they hold no kernel or no
# ublk_drv.
fetch() {
	local release=$1 src=$2 dir tmp deb vmlinuz
	shift 2
	dir=$KDIR/$release
	[ -f "$dir/.done" ] && [ "$(cat "$dir/.done")" = "$WANTED" ] && return 0
	log "fetching $release ($*) into $dir"
	tmp=$(mktemp -d "$KDIR/.fetch.XXXXXX")
	chmod 755 "$tmp"
	mkdir -p "$tmp/dl"
	if ! download "$src" "$tmp/dl" "$@"; then
		rm -rf "$tmp"
		die "apt-get download $* failed"
	fi
	for deb in "$tmp"/dl/*.deb; do
		dpkg-deb -x "$deb" "$tmp/root"
	done
	vmlinuz=$(find "$tmp/root" \( -path '*/boot/vmlinuz-*' -o -path '*/lib/modules/*/vmlinuz' \) \
		-type f -print -quit)
	if [ -z "$vmlinuz" ]; then
		rm -rf "$tmp"
		log "$*: no vmlinuz in the package(s)"
		return 1
	fi
	cp "$vmlinuz" "$tmp/vmlinuz"
	if ! collect_modules "$tmp/root" "$tmp/modules"; then
		rm -rf "$tmp"
		log "$*: no ublk_drv module in the package(s): not bootable for ublk-mem"
		return 1
	fi
	(cd "$tmp/dl" && ls) >"$tmp/packages"
	rm -rf "$tmp/root" "$tmp/dl"
	echo "$WANTED" >"$tmp/.done"
	rm -rf "$dir"
	mv "$tmp" "$dir"
}

# retire_old_layout: the cache once kept one kernel in $CACHE/kernel/PACKAGE
# (without nbd.ko). Remove it once no VM boots from it.
retire_old_layout() {
	[ -d "$CACHE/kernel" ] || return 0
	if grep -qsF "$CACHE/kernel/" /proc/[0-9]*/cmdline; then
		return 0
	fi
	rm -rf "$CACHE/kernel"
}

# ---- main ------------------------------------------------------------------------

case ${1:-} in
'' | --resolve | --series | --list) ;;
-h | --help) sed -n '2,21s/^# \{0,1\}//p' "$0"; exit 0 ;;
*) sed -n '2,21s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac

if [ -z "${1:-}" ] && { [ -n "${KERNEL:-}" ] || [ -n "${MODULES:-}" ]; }; then
	use_given
	exit 0
fi

case $KVER in
lts)
	# --list and --series look at every kernel, whatever KVER says.
	case $FOREIGN:${1:-} in
	1:--list | 1:--series | 0:*) ;;
	*) die "KVER=lts is Debian 12's $LTS_SERIES from this machine's own apt, which has no $DEB_ARCH kernels: use KVER=newest or a series" ;;
	esac
	;;
newest | [0-9]*.[0-9]*) ;;
*) die "KVER=$KVER: use lts, newest, a series (7.3), a version (7.3.4) or a release (7.3.4+deb13-$KFLAVOUR)" ;;
esac
command -v apt-get >/dev/null || die "apt-get not found: set KERNEL and MODULES"
ensure_pkgs dpkg-deb:dpkg xz:xz-utils zstd:zstd
mkdir -p "$KDIR"

case ${1:-} in
--list)
	printf '%-32s %-7s %-9s %s\n' RELEASE SOURCE BOOTABLE 'PACKAGES, OR WHY NOT'
	KVER=newest catalogue | while read -r r src ok rest; do
		[ -f "$KDIR/$r/.done" ] && rest="$rest (cached)"
		printf '%-32s %-7s %-9s %s\n' "$r" "$src" "${ok/ok/yes}" "$rest"
	done
	exit 0
	;;
--series)
	# Newest first: the first release seen of a series is its newest.
	KVER=newest candidates | awk -v lts="$LTS_SERIES" '
		function key(v,    a) { split(v, a, "."); return a[1] * 1000 + a[2] }
		{
			split($1, a, /[.+-]/)
			s = a[1] "." a[2]
			if (key(s) < key(lts) || (s in seen)) next
			seen[s] = 1
			out[++n] = s " " $1
		}
		END { for (i = n; i >= 1; i--) print out[i] }'
	exit 0
	;;
esac

# Try the candidates best first: one whose packages turn out not to hold a
# bootable kernel gives way to the next.
release=
while read -r r src pkgs; do
	if [ -n "${1:-}" ]; then
		release=$r
		break
	fi
	# shellcheck disable=SC2086 # one package a word
	if (exec 9>"$KDIR/.lock-$r" && flock 9 && fetch "$r" "$src" $pkgs) </dev/null; then
		release=$r
		break
	fi
done < <(candidates)

if [ -z "$release" ]; then
	release=$(cached_release)
	if [ -z "$release" ]; then
		# Name what is there but cannot boot, if anything.
		why=$(catalogue | while read -r r src ok rest; do
			if [ "$ok" = no ] && matches "$KVER" "$r"; then
				echo "$r: $rest"
				break
			fi
		done)
		die "KVER=$KVER: no bootable $KFLAVOUR kernel in the package indexes and none cached${why:+ ($why)}; kernel.sh --list shows what there is"
	fi
	log "KVER=$KVER: the package indexes offer none; using the cached $release"
fi
if [ "${1:-}" = --resolve ]; then
	echo "$release"
	exit 0
fi
retire_old_layout
printf 'KERNEL=%q\nMODULES=%q\nKVERSION=%q\n' "$KDIR/$release/vmlinuz" "$KDIR/$release/modules" "$release"
