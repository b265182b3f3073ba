#!/bin/sh
# `ublk-mem features` tells what the running kernel's ublk driver offers,
# and the feature-gated tests believe it (has_feature). Here the answer is
# checked against what the kernel's release (uname -r) must offer, known
# from the kernel's own sources, not from ublk-mem: Linux 6.12's flags on
# every kernel the VM boots; AUTO_BUF_REG, PER_IO_DAEMON, UPDATE_SIZE and
# QUIESCE from 6.16 and never before; BATCH_IO and SAFE_STOP_DEV from 7.0
# and never before; nothing beyond 6.12's flags on 6.12. The GET_FEATURES
# value printed must be the flags listed as offered.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

# The release as one number: 6.12.57+deb12-cloud-amd64 -> 612, 7.3.4 -> 703.
rel=$(uname -r)
major=${rel%%.*}
minor=${rel#*.}
minor=${minor%%[!0-9]*}
case $major$minor in '' | *[!0-9]*) fail "cannot read the release of '$rel'" ;; esac
kv=$((major * 100 + minor))
say "kernel $rel ($kv)"

run_with_timeout 30 "$UBLK_MEM" features >"$T_TMP/features" 2>"$T_TMP/features.err" ||
	fail "ublk-mem features failed: $(cat "$T_TMP/features.err")"
sed 's/^/    /' "$T_TMP/features"

# release MAJOR.MINOR: as one number, like kv.
release() {
	echo $((${1%.*} * 100 + ${1#*.}))
}

# The flags, UBLK_F_NAME as include/uapi/linux/ublk_cmd.h numbers them
# (bit), each with the release from which every kernel offers it (in its
# UBLK_F_ALL, which GET_FEATURES answers) and the release before which
# none does; "-" where that is not certain (INTEGRITY depends on the
# kernel's configuration). Checked in the sources of 6.12, where
# GET_FEATURES is UBLK_F_ALL (bits 0-8) without SUPPORT_ZERO_COPY, and of
# 7.3, where UBLK_F_ALL holds bits 0-20. Between the two, a flag is
# expected from the release that added it where that is certain, else
# from 7.3.
cat >"$T_TMP/table" <<'EOF'
SUPPORT_ZERO_COPY        0  6.16 6.13
URING_CMD_COMP_IN_TASK   1  6.12 -
NEED_GET_DATA            2  6.12 -
USER_RECOVERY            3  6.12 -
USER_RECOVERY_REISSUE    4  6.12 -
UNPRIVILEGED_DEV         5  6.12 -
CMD_IOCTL_ENCODE         6  6.12 -
USER_COPY                7  6.12 -
ZONED                    8  6.12 -
USER_RECOVERY_FAIL_IO    9  6.16 6.13
UPDATE_SIZE              10 6.16 6.16
AUTO_BUF_REG             11 6.16 6.16
QUIESCE                  12 6.16 6.16
PER_IO_DAEMON            13 6.16 6.16
BUF_REG_OFF_DAEMON       14 7.0  6.16
BATCH_IO                 15 7.0  7.0
INTEGRITY                16 -    7.0
SAFE_STOP_DEV            17 7.0  7.0
NO_AUTO_PART_SCAN        18 7.3  6.16
SHMEM_ZC                 19 7.3  6.16
IO_DESC_SIZE             20 7.3  6.16
EOF

# offered NAME: print yes or no as `ublk-mem features` says, nothing if
# it does not name NAME.
offered() {
	awk -v n="$1" '$1 == n { print $2; exit }' "$T_TMP/features"
}

step "each flag against kernel $kv"
: >"$T_TMP/wrong"
sum=0
checked=0
while read -r name bit from before; do
	got=$(offered "$name")
	case $got in
	yes) sum=$((sum + (1 << bit))) ;;
	no) ;;
	*)
		echo "$name: not listed (got '$got')" >>"$T_TMP/wrong"
		continue
		;;
	esac
	want=
	[ "$from" != - ] && [ "$kv" -ge "$(release "$from")" ] && want=yes
	[ "$before" != - ] && [ "$kv" -lt "$(release "$before")" ] && want=no
	[ -n "$want" ] || continue
	checked=$((checked + 1))
	[ "$got" = "$want" ] ||
		echo "$name: ublk-mem says '$got', Linux $kv must say '$want' (offered from $from, never before $before)" >>"$T_TMP/wrong"
done <"$T_TMP/table"
[ -s "$T_TMP/wrong" ] && fail "ublk-mem features and kernel $kv disagree: $(cat "$T_TMP/wrong")"
# Every kernel the VM boots is 6.12 or later: all but a few flags are known.
[ "$checked" -ge 9 ] || fail "only $checked flags have a known answer for kernel $kv"
say "$checked flags as kernel $kv must have them"

step "GET_FEATURES is the flags listed as offered"
hex=$(sed -n 's/^GET_FEATURES \(0x[0-9a-f]*\)$/\1/p' "$T_TMP/features")
[ -n "$hex" ] || fail "no GET_FEATURES line: $(head -n 3 "$T_TMP/features")"
# Up to 7.3 every bit the driver sets has a name.
if [ "$kv" -le 703 ]; then
	grep '^bit-' "$T_TMP/features" &&
		fail "kernel $kv sets a bit ublk-mem does not know"
	expect_eq "$(printf '0x%016x' "$sum")" "$hex" "GET_FEATURES against the flags listed as offered"
fi
