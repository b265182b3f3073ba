# shellcheck shell=bash
# Helpers shared by the host-side VM scripts (kernel.sh, initramfs.sh, vm.sh).
# Variables set here are used by the scripts that source this file.
# shellcheck disable=SC2034

CACHE=${UBLK_MEM_CACHE:-/var/cache/ublk-mem}
VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$VM_DIR/../.." && pwd)

log() { echo "${0##*/}: $*" >&2; }
die() { log "$*"; exit 1; }

# The guest's architecture, ARCH (default x86_64): Debian's name for it, the
# kernel flavour the VM boots and the qemu that runs it. Only x86_64 is done;
# arm64 would add DEB_ARCH=arm64, KFLAVOUR cloud-arm64 (or arm64, arm64-16k)
# and qemu-system-aarch64 here.
ARCH=${ARCH:-x86_64}
case $ARCH in
x86_64 | amd64 | x86)
	ARCH=x86_64
	DEB_ARCH=amd64
	QEMU_SYSTEM=qemu-system-x86_64
	QEMU_PKG=qemu-system-x86
	;;
*) die "ARCH=$ARCH: the test VM runs x86_64 guests only (for now)" ;;
esac
KFLAVOUR=${KFLAVOUR:-cloud-$DEB_ARCH}

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
