# shellcheck shell=bash
# Helpers shared by the host-side VM scripts (kernel.sh, initramfs.sh, vm.sh).
# Variables set here are used by the scripts that source this file.
# shellcheck disable=SC2034

CACHE=${UBLK_MEM_CACHE:-/var/cache/ublk-mem}
VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$VM_DIR/../.." && pwd)

log() { echo "${0##*/}: $*" >&2; }
die() { log "$*"; exit 1; }

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
