#!/bin/bash
# Build the test VM's initramfs: initramfs.sh OUT
#
# OUT is two gzip'd cpio archives back to back (the kernel unpacks both):
#  - a base holding busybox, fio, e2fsprogs, util-linux tools, jq, nbdkit
#    with its memory plugin and nbd-client (for bench.sh), cached in
#    $UBLK_MEM_CACHE/initramfs and rebuilt only when one of its inputs
#    changes; it does not depend on the kernel;
#  - an overlay, rebuilt every time (a second or two): /init, the kernel's
#    modules at /lib/modules, the test/ tree at /test, bench.sh, the
#    init examples at /dist, and ublk-mem at /usr/local/bin.
#
# Environment:
#   UBLK_MEM_BIN    the server binary (default: ublk-mem at the repository root)
#   UBLK_MEM_EXTRA  more binaries for /usr/local/bin, space separated, each
#                   with its shared libraries (e.g. a sanitizer build)
#   KERNEL, MODULES as for kernel.sh
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

[ $# -eq 1 ] || die "usage: initramfs.sh OUT"
OUT=$1

ensure_pkgs /bin/busybox:busybox-static fio:fio mke2fs:e2fsprogs e2fsck:e2fsprogs \
	blkdiscard:util-linux blockdev:util-linux cpio:cpio gzip:gzip ldd:libc-bin \
	/usr/bin/nbdkit:nbdkit /usr/sbin/nbd-client:nbd-client /usr/bin/jq:jq

if [ -z "${MODULES:-}" ]; then
	eval "$("$VM_DIR/kernel.sh")"
fi

# Tools in the base image, by absolute path on this machine.
# nbdkit loads its plugins from the directory it was built with.
NBDKIT_PLUGINS=$(/usr/bin/nbdkit --dump-config | sed -n 's/^plugindir=//p')
TOOLS="/bin/busybox /usr/bin/fio /usr/sbin/mke2fs /usr/sbin/mkfs.ext4 /usr/sbin/e2fsck
       /usr/sbin/blkdiscard /usr/sbin/blockdev /usr/bin/nbdkit /usr/sbin/nbd-client
       $NBDKIT_PLUGINS/nbdkit-memory-plugin.so /usr/bin/jq"
CONFIGS="/etc/mke2fs.conf"

# The shared libraries a binary needs, one absolute path a line.
libs_of() {
	# ldd fails on static binaries: they need nothing.
	ldd "$1" 2>/dev/null | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }' || true
}

# Copy FILE (following links) to the same path below STAGE. Paths below
# /bin, /sbin, /lib and /lib64 go to /usr, which those link to in the image:
# an overlay must not replace the links with directories.
put() {
	local stage=$1 f=$2 dst=${3:-$2}
	case $dst in /bin/* | /sbin/* | /lib/* | /lib64/*) dst=/usr$dst ;; esac
	mkdir -p "$stage$(dirname "$dst")"
	cp -L "$f" "$stage$dst"
}

# Copy a binary and its shared libraries below STAGE; DST defaults to its path.
put_bin() {
	local stage=$1 bin=$2 dst=${3:-$2} lib
	put "$stage" "$bin" "$dst"
	for lib in $(libs_of "$bin"); do
		put "$stage" "$lib"
	done
}

# Merged-/usr layout, as on Debian 12, so the paths ldd prints resolve.
make_skeleton() {
	local stage=$1 d
	mkdir -p "$stage"/usr/{bin,sbin,lib,lib64,local/bin} "$stage"/{dev,proc,sys,tmp,run,mnt,etc,root}
	for d in bin sbin lib lib64; do ln -s "usr/$d" "$stage/$d"; done
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$stage/etc/passwd"
	printf 'root:x:0:\n' >"$stage/etc/group"
	ln -s /proc/self/mounts "$stage/etc/mtab"
}

# Pack directory $1 into the gzip'd cpio $2.
pack() {
	(cd "$1" && find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc -R 0:0 --quiet) | gzip -1 >"$2"
}

build_base() {
	local stage=$1 t applet
	make_skeleton "$stage"
	for t in $TOOLS; do put_bin "$stage" "$t"; done
	for t in $CONFIGS; do [ -f "$t" ] && put "$stage" "$t"; done
	# Busybox applets fill in every name no real tool took.
	for applet in $(busybox --list-full); do
		[ -e "$stage/$applet" ] || [ -L "$stage/$applet" ] || {
			mkdir -p "$stage/$(dirname "$applet")"
			ln -s /bin/busybox "$stage/$applet"
		}
	done
}

# Everything the base is made of, with sizes and times: its cache key.
base_inputs() {
	local t
	sha256sum "$0"
	for t in $TOOLS; do
		stat -L -c '%n %s %Y' "$t"
		libs_of "$t" | xargs -r stat -L -c '%n %s %Y'
	done
	stat -L -c '%n %s %Y' $CONFIGS 2>/dev/null || true
}

mkdir -p "$CACHE/initramfs"
key=$(base_inputs | sha256sum | cut -c1-16)
base=$CACHE/initramfs/base-$key.cpio.gz
if [ ! -f "$base" ]; then
	log "building base image $base (once)"
	stage=$(mktemp -d "$CACHE/initramfs/stage.XXXXXX")
	build_base "$stage"
	pack "$stage" "$stage.cpio.gz"
	rm -rf "$stage"
	# Keep the three newest bases: checkouts of other versions may share the cache.
	find "$CACHE/initramfs" -name 'base-*.cpio.gz' -printf '%T@ %p\n' | sort -rn | tail -n +4 |
		cut -d' ' -f2- | xargs -r rm -f
	mv "$stage.cpio.gz" "$base"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
stage=$tmp/root
mkdir -p "$stage/usr/local/bin"
cp "$VM_DIR/init" "$stage/init"
chmod 755 "$stage/init"
mkdir -p "$stage/usr/lib/modules"
cp "$MODULES"/*.ko "$stage/usr/lib/modules/"
[ -f "$MODULES/preload" ] && cp "$MODULES/preload" "$stage/usr/lib/modules/"
cp -a "$REPO/test" "$stage/test"
[ -f "$REPO/bench.sh" ] && cp "$REPO/bench.sh" "$stage/bench.sh"
[ -f "$REPO/README.md" ] && cp "$REPO/README.md" "$stage/README.md"
[ -d "$REPO/dist" ] && cp -a "$REPO/dist" "$stage/dist"
bin=${UBLK_MEM_BIN:-$REPO/ublk-mem}
if [ -f "$bin" ]; then
	put_bin "$stage" "$bin" /usr/local/bin/ublk-mem
else
	log "warning: $bin does not exist (run make): the VM has no ublk-mem"
fi
for extra in ${UBLK_MEM_EXTRA:-}; do
	[ -f "$extra" ] || die "UBLK_MEM_EXTRA: $extra does not exist"
	put_bin "$stage" "$extra" "/usr/local/bin/${extra##*/}"
done
pack "$stage" "$tmp/overlay.cpio.gz"
cat "$base" "$tmp/overlay.cpio.gz" >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
