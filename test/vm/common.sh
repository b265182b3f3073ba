# shellcheck shell=bash
# Helpers shared by the host-side VM scripts (kernel.sh, initramfs.sh, vm.sh).
# Variables set here are used by the scripts that source this file.
# shellcheck disable=SC2034

CACHE=${UBLK_MEM_CACHE:-/var/cache/ublk-mem}
VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$VM_DIR/../.." && pwd)

log() { echo "${0##*/}: $*" >&2; }
die() { log "$*"; exit 1; }

# The guest's architecture, ARCH (x86_64 or arm64, default this machine's),
# and what follows from it: Debian's name for it (DEB_ARCH), its multiarch triplet
# (TRIPLET: library directories, cross compiler prefix), the e_machine of
# its ELF programs, the qemu that runs it with its machine and CPU options,
# the console device, and the kernel flavour the VM boots (KFLAVOUR:
# cloud-amd64; arm64, or arm64-16k for 16 KiB pages).
HOST_DEB_ARCH=$(dpkg --print-architecture 2>/dev/null) ||
	case $(uname -m) in x86_64) HOST_DEB_ARCH=amd64 ;; aarch64) HOST_DEB_ARCH=arm64 ;; *) HOST_DEB_ARCH=$(uname -m) ;; esac
ARCH=${ARCH:-$HOST_DEB_ARCH}
case $ARCH in
x86_64 | amd64 | x86)
	ARCH=x86_64
	DEB_ARCH=amd64
	TRIPLET=x86_64-linux-gnu
	QEMU_SYSTEM=qemu-system-x86_64
	QEMU_PKG=qemu-system-x86
	QEMU_MACHINE=(-cpu "${VM_CPU:-max}")
	CONSOLE=ttyS0
	ELF_MACHINE=62
	DEFAULT_KFLAVOUR=cloud-amd64
	# vm.sh's limits (VM_TIMEOUT, VM_SILENCE), in seconds.
	VM_TIMEOUT_DEFAULT=1500
	VM_SILENCE_DEFAULT=420
	;;
arm64 | aarch64)
	ARCH=arm64
	DEB_ARCH=arm64
	TRIPLET=aarch64-linux-gnu
	QEMU_SYSTEM=qemu-system-aarch64
	QEMU_PKG=qemu-system-arm
	# pauth-impdef: pointer authentication with the CPU's own cheap
	# algorithm instead of QARMA, which costs TCG much of its speed.
	# shellcheck disable=SC2054 # commas belong to qemu options
	QEMU_MACHINE=(-M virt -cpu "${VM_CPU:-max,pauth-impdef=on}")
	CONSOLE=ttyAMA0
	ELF_MACHINE=183
	DEFAULT_KFLAVOUR=arm64
	# Emulated on x86_64, the whole suite takes about 1.5 times as long.
	VM_TIMEOUT_DEFAULT=3600
	VM_SILENCE_DEFAULT=600
	;;
*) die "ARCH=$ARCH: the test VM runs x86_64 or arm64 guests" ;;
esac
KFLAVOUR=${KFLAVOUR:-$DEFAULT_KFLAVOUR}
case $KFLAVOUR in
*-"$DEB_ARCH" | "$DEB_ARCH" | "$DEB_ARCH"-*) ;;
*) die "KFLAVOUR=$KFLAVOUR is not a kernel flavour of ARCH=$ARCH ($DEB_ARCH)" ;;
esac
# FOREIGN=1: the guest runs programs this machine cannot (its userland
# comes from the archive's $DEB_ARCH packages, see initramfs.sh).
FOREIGN=0
[ "$DEB_ARCH" = "$HOST_DEB_ARCH" ] || FOREIGN=1

KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# private_apt DIR SUITES: use an apt configuration of our own for the
# Debian SUITES (space separated) of $DEB_ARCH: sources, lists and cache
# under DIR, the machine's preferences (pins) ignored, and a dpkg status
# of its own (empty: nothing counts as installed, and its lock is ours),
# so the machine's apt set-up is left as it is. Sets APT_DIR, APT_SUITES
# and PAPT, the options that make apt-get and apt-cache use it. The binary
# package cache is kept (some machines turn it off): it makes apt-cache fast.
private_apt() {
	APT_DIR=$1
	APT_SUITES=$2
	PAPT=(-o "Dir::Etc::sourcelist=$APT_DIR/sources.list" -o Dir::Etc::sourceparts=/nonexistent
		-o "Dir::State::Lists=$APT_DIR/lists" -o "Dir::Cache=$APT_DIR/cache"
		-o Dir::Cache::pkgcache=pkgcache.bin -o Dir::Cache::srcpkgcache=
		-o Dir::Etc::preferences=/nonexistent -o "Dir::Etc::preferencesparts=$APT_DIR/preferences.d"
		-o "Dir::State::status=$APT_DIR/dpkg/status"
		-o "APT::Architecture=$DEB_ARCH" -o "APT::Architectures=$DEB_ARCH"
		-o Acquire::Languages=none)
}

# debian_uri: the URI of the Debian archive this machine's apt takes "main"
# from, as apt itself reads its sources (sources.list and deb822 files).
debian_uri() {
	if [ -n "${UBLK_MEM_MIRROR:-}" ]; then
		echo "$UBLK_MEM_MIRROR"
		return
	fi
	apt-get indextargets 'Identifier: Packages' 'Component: main' 2>/dev/null | awk '
		/^Repo-URI: / { uri = $2 }
		/^Release: / { rel = $2 }
		/^Label: / { label = $2 }
		/^$/ { flush() }
		END { flush(); print best != "" ? best : fallback }
		function flush() {
			if (uri != "") {
				if (label == "Debian" && best == "") best = uri
				if (rel !~ /-security$/ && uri !~ /security/ && fallback == "") fallback = uri
			}
			uri = rel = label = ""
		}'
}

# private_index [force]: make the package lists of private_apt exist and be
# no older than UBLK_MEM_INDEX_HOURS; with "force", refresh them now.
# Returns non-zero when there are none.
private_index() {
	local uri suite sources fresh force=${1:-}
	mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/preferences.d" \
		"$APT_DIR/dpkg/updates"
	[ -f "$APT_DIR/dpkg/status" ] || : >"$APT_DIR/dpkg/status"
	uri=$(debian_uri)
	[ -n "$uri" ] || { log "this machine's apt names no Debian archive: set UBLK_MEM_MIRROR"; return 1; }
	[ -f "$KEYRING" ] || ensure_pkgs "$KEYRING:debian-archive-keyring"
	sources=$(for suite in $APT_SUITES; do echo "deb [signed-by=$KEYRING] $uri $suite main"; done)
	if [ "$sources" != "$(cat "$APT_DIR/sources.list" 2>/dev/null)" ]; then
		echo "$sources" >"$APT_DIR/sources.list.tmp"
		mv "$APT_DIR/sources.list.tmp" "$APT_DIR/sources.list"
		force=force
	fi
	# The lists' own times are the archive's: "updated" keeps ours.
	fresh=$(find "$APT_DIR/updated" -mmin "-$((${UBLK_MEM_INDEX_HOURS:-24} * 60))" 2>/dev/null || true)
	if [ -z "$fresh" ] || [ "$force" = force ]; then
		log "updating the package lists of $APT_SUITES (in $APT_DIR)"
		if apt-get "${PAPT[@]}" update -qq >&2; then
			touch "$APT_DIR/updated"
		else
			log "warning: apt-get update of $APT_SUITES failed"
		fi
	fi
	find "$APT_DIR/lists" -maxdepth 1 -name '*_Packages*' | grep -q .
}

# ensure_pkgs CMD:PACKAGE...: install the packages whose command is missing.
# The package lists are refreshed first, as a fresh machine has none.
ensure_pkgs() {
	local missing=() p
	for p in "$@"; do
		command -v "${p%%:*}" >/dev/null 2>&1 || [ -x "${p%%:*}" ] || missing+=("${p#*:}")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
	log "installing ${missing[*]}"
	apt-get update -qq >&2 || log "warning: apt-get update failed"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >&2 || die "cannot install ${missing[*]}"
}
