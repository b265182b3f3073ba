#!/bin/sh
# On a kernel whose ublk driver lacks BATCH_IO (before Linux 7.0): an
# explicit --io-path batch is refused with one line naming the flag and its
# release, exit 1, no device left; --io-path auto (the default) serves on
# the per-request path without a word. Skipped where the driver has it
# (t-batch covers that).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

has_feature BATCH_IO && skip "this kernel's ublk driver has BATCH_IO: see t-batch"
case " ${UBLK_MEM_ARGS:-} " in
*" --io-path "*) skip "UBLK_MEM_ARGS ($UBLK_MEM_ARGS) chooses the path" ;;
esac

step "--io-path batch: refused"
refuse 1 "--io-path batch without BATCH_IO" 32M --io-path batch
grep -q 'lacks UBLK_F_BATCH_IO (Linux 7\.0)' "$T_TMP/r.err" ||
	fail "the refusal does not name BATCH_IO and Linux 7.0: $(cat "$T_TMP/r.err")"

for path in auto per-request; do
	step "--io-path $path: the per-request path, silently"
	start_ublk 32M --io-path $path
	fio_verify "$path" --size=8M
	check_alive
	stop_ublk
	if [ -s "$SRV_ERR" ]; then
		fail "the server said something: $(cat "$SRV_ERR")"
	fi
done
