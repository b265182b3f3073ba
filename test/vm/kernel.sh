#!/bin/bash
# Make a kernel with the ublk driver available for the test VM.
#
# Prints two shell assignments on stdout, for eval:
#   KERNEL=/path/to/vmlinuz
#   MODULES=/path/to/dir/with/decompressed/*.ko
#
# With KERNEL and MODULES already set in the environment, those are used
# (MODULES may be a flat directory of .ko/.ko.xz files or a lib/modules tree).
# Otherwise the newest Debian linux-image-6.12.*-cloud-amd64-unsigned is
# fetched with apt-get download into the cache (UBLK_MEM_CACHE, default
# /var/cache/ublk-mem) and unpacked once; later runs reuse it.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

# Modules the VM needs (drivers/block/..., fs/configfs/configfs), by name.
WANTED="ublk_drv brd loop null_blk configfs"

# Copy each wanted module found below $1 into $2, decompressed.
collect_modules() {
	local src=$1 dst=$2 name f
	mkdir -p "$dst"
	for name in $WANTED; do
		f=$(find "$src" \( -name "$name.ko" -o -name "$name.ko.xz" \
			-o -name "$name.ko.zst" -o -name "$name.ko.gz" \) -print -quit)
		if [ -z "$f" ]; then
			# Built into the kernel: nothing to load.
			if find "$src" -name modules.builtin -exec grep -q "/$name.ko$" {} + 2>/dev/null; then
				continue
			fi
			[ "$name" = ublk_drv ] && die "ublk_drv.ko not found below $src"
			log "warning: $name.ko not found below $src"
			continue
		fi
		case $f in
		*.xz) xz -dc "$f" >"$dst/$name.ko" ;;
		*.zst) zstd -qdc "$f" >"$dst/$name.ko" ;;
		*.gz) gzip -dc "$f" >"$dst/$name.ko" ;;
		*) cp "$f" "$dst/$name.ko" ;;
		esac
	done
}

# Newest linux-image-6.12.*-cloud-amd64-unsigned package known to apt.
newest_package() {
	apt-cache search --names-only '^linux-image-6\.12\..*-cloud-amd64-unsigned$' 2>/dev/null |
		awk '{ print $1 }' | sort -V | tail -n 1
}

if [ -n "${KERNEL:-}" ] || [ -n "${MODULES:-}" ]; then
	[ -f "${KERNEL:-}" ] || die "KERNEL=${KERNEL:-} is not a file"
	[ -d "${MODULES:-}" ] || die "MODULES=${MODULES:-} is not a directory"
	if ! find "$MODULES" -maxdepth 1 -name 'ublk_drv.ko' | grep -q .; then
		# Not a flat directory of decompressed modules: build one.
		key=$(readlink -f "$MODULES" | sha256sum | cut -c1-16)
		flat=$CACHE/modules-$key
		if [ ! -f "$flat/.done" ]; then
			rm -rf "$flat"
			collect_modules "$MODULES" "$flat"
			touch "$flat/.done"
		fi
		MODULES=$flat
	fi
	printf 'KERNEL=%q\nMODULES=%q\n' "$(readlink -f "$KERNEL")" "$(readlink -f "$MODULES")"
	exit 0
fi

command -v apt-get >/dev/null || die "apt-get not found: set KERNEL and MODULES"
ensure_pkgs dpkg-deb:dpkg xz:xz-utils
mkdir -p "$CACHE/kernel"
pkg=$(newest_package)
if [ -z "$pkg" ]; then
	log "updating the apt package lists"
	apt-get update -qq >&2 || log "warning: apt-get update failed"
	pkg=$(newest_package)
fi
if [ -z "$pkg" ]; then
	# Offline: fall back to the newest kernel already in the cache.
	pkg=$(find "$CACHE/kernel" -mindepth 2 -maxdepth 2 -name .done -printf '%h\n' 2>/dev/null |
		xargs -r -n1 basename | sort -V | tail -n 1)
	[ -n "$pkg" ] || die "no linux-image-6.12.*-cloud-amd64-unsigned package in apt and none cached"
	log "apt knows no 6.12 cloud kernel; using cached $pkg"
fi

dir=$CACHE/kernel/$pkg
if [ ! -f "$dir/.done" ]; then
	log "fetching $pkg into $dir"
	rm -rf "$dir"
	mkdir -p "$dir/dl"
	# apt drops privileges to _apt for downloads when it can write there.
	chown _apt "$dir/dl" 2>/dev/null || true
	if ! (cd "$dir/dl" && apt-get download -q "$pkg" >&2); then
		# Stale package lists name a file the mirror no longer has.
		log "apt-get download $pkg failed; updating the package lists"
		apt-get update -qq >&2 || true
		(cd "$dir/dl" && apt-get download -q "$pkg" >&2) || die "apt-get download $pkg failed"
	fi
	deb=$(find "$dir/dl" -name '*.deb' -print -quit)
	dpkg-deb -x "$deb" "$dir/root"
	vmlinuz=$(find "$dir/root/boot" -name 'vmlinuz-*' -print -quit)
	[ -n "$vmlinuz" ] || die "no boot/vmlinuz-* in $deb"
	cp "$vmlinuz" "$dir/vmlinuz"
	collect_modules "$dir/root/lib/modules" "$dir/modules"
	rm -rf "$dir/root" "$dir/dl"
	touch "$dir/.done"
	# Keep only this kernel.
	find "$CACHE/kernel" -mindepth 1 -maxdepth 1 -type d ! -name "$pkg" -exec rm -rf {} +
fi
printf 'KERNEL=%q\nMODULES=%q\n' "$dir/vmlinuz" "$dir/modules"
