#!/bin/bash
# Build the test VM's initramfs: initramfs.sh OUT
#
# OUT is two gzip'd cpio archives back to back (the kernel unpacks both):
#  - a base holding busybox, fio, e2fsprogs, util-linux tools (setpriv
#    runs the tests' ordinary users), jq, nbdkit
#    with its memory plugin and nbd-client (for bench.sh), cached in
#    $UBLK_MEM_CACHE/initramfs and rebuilt only when one of its inputs
#    changes; it does not depend on the kernel;
#  - an overlay, rebuilt every time (a second or two): /init, the kernel's
#    modules at /lib/modules, the test/ tree at /test, bench.sh, the
#    init examples at /dist, and ublk-mem at /usr/local/bin.
#
# The base's tools are this machine's own, installed with apt-get when
# missing. For a guest of another architecture (ARCH=arm64 on an x86_64
# machine, see common.sh) they come from that architecture's packages of
# this machine's Debian release instead (USERLAND_PKGS below, and what they
# depend on), fetched through an apt configuration of our own under
# $UBLK_MEM_CACHE/apt/DEB_ARCH-RELEASE and unpacked once into
# $UBLK_MEM_CACHE/userland/DEB_ARCH-RELEASE; such a base has no nbdkit or
# nbd-client (no benchmark), and busybox makes its applets' links at boot.
# Programs of the test/ tree built for another architecture than the
# guest's are left out; UBLK_MEM_HELPERS brings the guest's own.
#
# Environment:
#   UBLK_MEM_BIN    the server binary (default: ublk-mem at the repository
#                   root); it must be built for the guest's architecture
#   UBLK_MEM_EXTRA  more binaries for /usr/local/bin, space separated, each
#                   with its shared libraries (e.g. a sanitizer build)
#   UBLK_MEM_HELPERS  the test/ tree's helper programs built for the guest,
#                   in a tree of test/'s shape, taking the place of those
#                   there (default build/ARCH/test, where make test-arm64
#                   puts them, when it exists)
#   UBLK_MEM_USERLAND_SUITE  the Debian release a foreign userland comes
#                   from (default: this machine's, from /etc/os-release)
#   KERNEL, MODULES, ARCH as for kernel.sh
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

[ $# -eq 1 ] || die "usage: initramfs.sh OUT"
OUT=$1

if [ "$FOREIGN" = 0 ]; then
	ensure_pkgs /bin/busybox:busybox-static fio:fio mke2fs:e2fsprogs e2fsck:e2fsprogs \
		blkdiscard:util-linux blockdev:util-linux cpio:cpio gzip:gzip ldd:libc-bin \
		/usr/bin/nbdkit:nbdkit /usr/sbin/nbd-client:nbd-client /usr/bin/jq:jq \
		/usr/sbin/dmsetup:dmsetup /usr/sbin/sfdisk:fdisk /usr/sbin/mkfs.btrfs:btrfs-progs \
		/usr/sbin/blkzone:util-linux /usr/bin/lz4:lz4 /usr/sbin/mkfs.xfs:xfsprogs /usr/bin/setpriv:util-linux
else
	ensure_pkgs cpio:cpio gzip:gzip readelf:binutils dpkg-deb:dpkg
fi

if [ -z "${MODULES:-}" ]; then
	eval "$("$VM_DIR/kernel.sh")"
fi

# ---- where the base's programs come from -----------------------------------------

# ROOT: the tree the base's programs are taken from: / (this machine), or
# a foreign userland unpacked from packages. Paths below are absolute
# paths inside ROOT.
ROOT=
# The packages of a foreign userland; util-linux has blkdiscard and blockdev.
USERLAND_PKGS="busybox-static fio e2fsprogs util-linux jq dmsetup fdisk btrfs-progs lz4 xfsprogs"

# fetch_packages DIR APT_DIR SUITES PKGS: unpack the packages PKGS and
# their dependencies, for DEB_ARCH, from the Debian SUITES (space
# separated; our own apt configuration in APT_DIR, see private_apt), into
# DIR/root (once; DIR/packages lists the .deb files).
fetch_packages() {
	local dir=$1 suites=$3 pkgs=$4 tmp deb
	[ -f "$dir/.done" ] && [ "$(cat "$dir/.done")" = "$pkgs" ] && return 0
	private_apt "$2" "$suites"
	# shellcheck disable=SC2119 # lists no older than a day will do
	private_index || die "no package lists for $suites ($DEB_ARCH)"
	log "fetching $DEB_ARCH packages ($pkgs, from $suites) into $dir"
	mkdir -p "$(dirname "$dir")"
	tmp=$(mktemp -d "$dir.XXXXXX")
	chmod 755 "$tmp"
	mkdir -p "$tmp/debs/partial"
	# apt drops privileges to _apt for downloads when it can write there.
	chown -R _apt "$tmp/debs" 2>/dev/null || true
	# Our dpkg status is empty: apt fetches the whole dependency closure.
	# shellcheck disable=SC2086 # one package a word
	if ! DEBIAN_FRONTEND=noninteractive apt-get "${PAPT[@]}" -o "Dir::Cache::archives=$tmp/debs/" \
		install --download-only -y -q --no-install-recommends $pkgs >&2; then
		rm -rf "$tmp"
		log "cannot fetch the $DEB_ARCH packages $pkgs from $suites"
		return 1
	fi
	for deb in "$tmp"/debs/*.deb; do
		dpkg-deb -x "$deb" "$tmp/root"
	done
	(cd "$tmp/debs" && ls -- *.deb) >"$tmp/packages"
	rm -rf "$tmp/debs"
	echo "$pkgs" >"$tmp/.done"
	rm -rf "$dir"
	mv "$tmp" "$dir"
}

# in_root PATH: PATH as a path on this machine, inside ROOT, with the
# symbolic links in ROOT followed as the guest would follow them (an
# absolute target is inside ROOT too). A path below /usr that ROOT has
# outside /usr (packages made before the /usr merge) is found there.
in_root() {
	local p=$1 t n=0
	[ -z "$ROOT" ] && { echo "$p"; return 0; }
	[ -e "$ROOT$p" ] || [ -L "$ROOT$p" ] || case $p in /usr/*) p=${p#/usr} ;; esac
	while [ -L "$ROOT$p" ]; do
		t=$(readlink "$ROOT$p")
		case $t in /*) p=$t ;; *) p=$(dirname "$p")/$t ;; esac
		n=$((n + 1))
		[ $n -le 40 ] || return 1
	done
	[ -e "$ROOT$p" ] || return 1
	echo "$ROOT$p"
}

if [ "$FOREIGN" = 0 ]; then
	# Tools in the base image, by absolute path on this machine.
	# nbdkit loads its plugins from the directory it was built with.
	NBDKIT_PLUGINS=$(/usr/bin/nbdkit --dump-config | sed -n 's/^plugindir=//p')
	TOOLS="/bin/busybox /usr/bin/fio /usr/sbin/mke2fs /usr/sbin/mkfs.ext4 /usr/sbin/e2fsck
	       /usr/sbin/resize2fs /usr/sbin/blkdiscard /usr/sbin/blockdev /usr/bin/nbdkit /usr/sbin/nbd-client
	       $NBDKIT_PLUGINS/nbdkit-memory-plugin.so /usr/bin/jq /usr/sbin/dmsetup /usr/sbin/sfdisk
	       /usr/sbin/mkfs.btrfs /usr/bin/btrfs /usr/sbin/blkzone /usr/sbin/zramctl /usr/bin/lz4
	       /usr/sbin/mkfs.xfs /usr/sbin/xfs_repair /usr/bin/setpriv"
else
	USERLAND_SUITE=${UBLK_MEM_USERLAND_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-}")}
	[ -n "$USERLAND_SUITE" ] || die "no VERSION_CODENAME in /etc/os-release: set UBLK_MEM_USERLAND_SUITE"
	USERLAND=$CACHE/userland/$DEB_ARCH-$USERLAND_SUITE
	(exec 9>"$CACHE/.lock-userland-$DEB_ARCH" && flock 9 &&
		fetch_packages "$USERLAND" "$CACHE/apt/$DEB_ARCH-$USERLAND_SUITE" "$USERLAND_SUITE" \
			"$USERLAND_PKGS") ||
		die "no $DEB_ARCH userland"
	ROOT=$USERLAND/root
	TOOLS="/bin/busybox /usr/bin/fio /usr/sbin/mke2fs /usr/sbin/mkfs.ext4 /usr/sbin/e2fsck
	       /usr/sbin/resize2fs /usr/sbin/blkdiscard /usr/sbin/blockdev /usr/bin/jq /usr/sbin/dmsetup
	       /usr/sbin/sfdisk /usr/sbin/mkfs.btrfs /usr/bin/btrfs /usr/sbin/blkzone /usr/sbin/zramctl
	       /usr/bin/lz4 /usr/sbin/mkfs.xfs /usr/sbin/xfs_repair /usr/bin/setpriv"
fi
CONFIGS="/etc/mke2fs.conf"

# mkzonefs (zonefs-tools, for t-zoned-zonefs) is in no Debian release
# before 14: it comes from the suites the kernels come from (kernel.sh),
# with the C library it was built against, into /opt/zonefs of the base,
# where /usr/sbin/mkzonefs runs it with that library's own loader. This
# machine's architecture only; without it the test says it cannot run.
ZONEFS=
if [ "$FOREIGN" = 0 ]; then
	ZONEFS=$CACHE/userland/$DEB_ARCH-zonefs
	(exec 9>"$CACHE/.lock-zonefs-$DEB_ARCH" && flock 9 &&
		fetch_packages "$ZONEFS" "$CACHE/apt/$DEB_ARCH" "${UBLK_MEM_SUITES:-sid trixie-backports}" \
			zonefs-tools) || { log "warning: no zonefs-tools: t-zoned-zonefs cannot run"; ZONEFS=; }
fi

# put_zonefs STAGE: mkzonefs, its libraries and their loader in
# /opt/zonefs/lib, and the /usr/sbin/mkzonefs that runs them.
put_zonefs() {
	local stage=$1 lib f loader=
	[ -n "$ZONEFS" ] || return 0
	mkdir -p "$stage/opt/zonefs/lib"
	cp -L "$ZONEFS/root/usr/sbin/mkzonefs" "$stage/opt/zonefs/mkzonefs"
	for lib in $(ROOT=$ZONEFS/root libs_of "$ZONEFS/root/usr/sbin/mkzonefs"); do
		# A merged-/usr tree: /lib64/ld-linux... is in /usr/lib64.
		f=$(ROOT=$ZONEFS/root in_root "$lib") || f=$(ROOT=$ZONEFS/root in_root "/usr$lib") ||
			die "mkzonefs needs $lib, which zonefs-tools' packages lack"
		cp -L "$f" "$stage/opt/zonefs/lib/${lib##*/}"
		case $lib in */ld-linux*) loader=/opt/zonefs/lib/${lib##*/} ;; esac
	done
	[ -n "$loader" ] || die "mkzonefs names no program interpreter"
	printf '#!/bin/sh\n# mkzonefs of zonefs-tools, with its own C library (initramfs.sh)\nexec %s --library-path /opt/zonefs/lib /opt/zonefs/mkzonefs "$@"\n' \
		"$loader" >"$stage/usr/sbin/mkzonefs"
	chmod 755 "$stage/usr/sbin/mkzonefs"
}

# elf_machine FILE: the e_machine number of an ELF file ("" for any other).
elf_machine() {
	[ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ] || return 0
	od -An -tu2 -j 18 -N 2 "$1" | tr -d ' '
}

# needed FILE: the libraries an ELF file names as NEEDED, on one line.
needed() {
	readelf -dW "$1" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' '
}

# runpath FILE: the directories its RUNPATH or RPATH names, on one line.
runpath() {
	readelf -dW "$1" 2>/dev/null | sed -n 's/.*(\(RUNPATH\|RPATH\)).*\[\(.*\)\]/\2/p' | tr ':\n' '  '
}

# libs_of FILE: the shared libraries a binary of ROOT needs (its program
# interpreter too), one absolute path inside ROOT a line.
libs_of() {
	if [ -z "$ROOT" ]; then
		# ldd fails on static binaries: they need nothing.
		ldd "$1" 2>/dev/null | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }' || true
		return 0
	fi
	# A foreign binary cannot run here: read what it needs, recursively.
	# The search path: the system's, and every RUNPATH met on the way
	# (the guest's ld.so uses each where it applies; this finds the files).
	local queue seen=" " f name dir found dirs="/lib/$TRIPLET /usr/lib/$TRIPLET /lib /usr/lib"
	queue=$(readelf -lW "$1" 2>/dev/null | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
	for f in $queue; do echo "$f"; done
	queue="$queue $(needed "$1")"
	dirs="$dirs $(runpath "$1")"
	while [ -n "${queue// /}" ]; do
		read -r name queue <<<"$queue"
		case $seen in *" ${name##*/} "*) continue ;; esac
		seen="$seen${name##*/} "
		case $name in /*) continue ;; esac	# the interpreter, printed above
		found=
		for dir in $dirs; do
			if in_root "$dir/$name" >/dev/null; then
				found=$dir/$name
				break
			fi
		done
		[ -n "$found" ] || { log "warning: $1 needs $name, which is not in $ROOT"; continue; }
		echo "$found"
		f=$(in_root "$found")
		queue="$queue $(needed "$f")"
		dirs="$dirs $(runpath "$f")"
	done
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

# Copy a file of ROOT (following links there) to the same path below STAGE.
put_root() {
	local f
	f=$(in_root "$2") || die "$2 is not in ${ROOT:-/}"
	put "$1" "$f" "$2"
}

# Copy a binary of ROOT and its shared libraries below STAGE.
put_root_bin() {
	local stage=$1 bin lib
	bin=$(in_root "$2") || die "$2 is not in ${ROOT:-/}"
	put "$stage" "$bin" "$2"
	for lib in $(libs_of "$bin"); do
		put_root "$stage" "$lib"
	done
}

# Copy a binary of this machine's to DST below STAGE, with its shared
# libraries when the guest runs this machine's own architecture. It must
# be built for the guest.
put_bin() {
	local stage=$1 bin=$2 dst=$3 lib m
	m=$(elf_machine "$bin")
	if [ -n "$m" ] && [ "$m" != "$ELF_MACHINE" ]; then
		die "$bin is built for another architecture than the VM's ($ARCH): build it with make ARCH=$ARCH"
	fi
	put "$stage" "$bin" "$dst"
	[ "$FOREIGN" = 1 ] && return 0
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
	for t in $TOOLS; do put_root_bin "$stage" "$t"; done
	for t in $CONFIGS; do in_root "$t" >/dev/null && put_root "$stage" "$t"; done
	put_zonefs "$stage"
	if [ "$FOREIGN" = 1 ]; then
		# busybox cannot run here to list its applets: init has it make
		# their links at boot, and needs /bin/sh for that.
		ln -s busybox "$stage/usr/bin/sh"
		return 0
	fi
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
	sha256sum <"$0"
	echo "$ARCH"
	for t in $TOOLS; do
		t=$(in_root "$t") || continue
		stat -L -c '%n %s %Y' "$t"
		libs_of "$t" | while read -r t; do in_root "$t"; done | xargs -r stat -L -c '%n %s %Y'
	done
	for t in $CONFIGS; do
		t=$(in_root "$t") && stat -L -c '%n %s %Y' "$t"
	done
	[ -z "$ROOT" ] || cat "$USERLAND/packages"
	[ -z "$ZONEFS" ] || cat "$ZONEFS/packages"
}

# Bases are base-KEY.cpio.gz for this machine's architecture, as they
# always were, and DEB_ARCH-base-KEY.cpio.gz for another.
BASE_PREFIX=base
[ "$FOREIGN" = 0 ] || BASE_PREFIX=$DEB_ARCH-base
mkdir -p "$CACHE/initramfs"
key=$(base_inputs | sha256sum | cut -c1-16)
base=$CACHE/initramfs/$BASE_PREFIX-$key.cpio.gz
if [ ! -f "$base" ]; then
	log "building base image $base (once)"
	stage=$(mktemp -d "$CACHE/initramfs/stage.XXXXXX")
	build_base "$stage"
	pack "$stage" "$stage.cpio.gz"
	rm -rf "$stage"
	# Keep the three newest bases: checkouts of other versions may share the cache.
	find "$CACHE/initramfs" -name "$BASE_PREFIX-*.cpio.gz" -printf '%T@ %p\n' | sort -rn | tail -n +4 |
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
# The test tree's programs must run in the guest: those built for another
# architecture (host unit tests) stay out, and the helpers built for the
# guest, in a tree of the same shape, come in.
find "$stage/test" -type f -perm -u+x | while read -r f; do
	m=$(elf_machine "$f")
	[ -z "$m" ] || [ "$m" = "$ELF_MACHINE" ] || rm -f "$f"
done
helpers=${UBLK_MEM_HELPERS:-$REPO/build/$ARCH/test}
if [ -d "$helpers" ]; then
	(cd "$helpers" && find . -type f) | while read -r f; do
		put_bin "$stage" "$helpers/$f" "/test/${f#./}"
	done
fi
[ -f "$REPO/bench.sh" ] && cp "$REPO/bench.sh" "$stage/bench.sh"
# bench.sh's awk programs and device set-up, found next to it (not the
# codec benchmark's source or binary), and copy_cost when it was built for
# the guest.
if [ -d "$REPO/bench" ]; then
	mkdir -p "$stage/bench"
	find "$REPO/bench" -maxdepth 1 -type f \( -name '*.awk' -o -name '*.sh' \) -exec cp {} "$stage/bench/" \;
	if [ -f "$REPO/bench/copy_cost" ] && [ "$(elf_machine "$REPO/bench/copy_cost")" = "$ELF_MACHINE" ]; then
		put_bin "$stage" "$REPO/bench/copy_cost" /bench/copy_cost
	fi
fi
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
