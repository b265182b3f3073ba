#!/bin/sh
# bench-check.sh RESULTS_DIR: check that a results directory of bench.sh is
# complete and parses; it does not judge speed.
#
# Checks: every file is there and not empty; summary.csv and raw.csv have
# their header, a row for every job (of meta.txt's jobs) on every device (ublk-mem, brd,
# null_blk, loop, nbdkit, ublk-mem-q2 for the two-job run, and ublk-mem-b
# when a second setting was compared with --ublk-args2) and as many
# raw rows as rounds, with numbers where numbers belong (the ratio to brd
# inside its min-max range); memory.csv holds the servers' resident memory
# (ublk-mem's, and nbdkit's when it ran); ratio.svg is an SVG with bars;
# summary.md has the table. A zoned run (meta.txt: matrix=zoned, from
# bench.sh --zoned) has its own jobs, the devices ublk-mem and
# null_blk-zoned (and ublk-mem-b), and its ratios to null_blk-zoned. A
# compressed run (matrix=compress, from bench.sh --compress) has its own
# jobs, the devices ublk-mem and zram (and ublk-mem-b), its ratios to zram,
# and compress.csv: a row per data set (ext4, fio50), device and round with
# the device's statistics, and their table in summary.md. codec.txt, when
# there (bench.sh --codec), has lz4.c's line and the reference's for each
# block size, with speeds and lz4.c's over the reference's; a directory of
# the codec benchmark alone (matrix=codec) has codec.txt, meta.txt and
# summary.md only. A VM run's meta.txt names the CPU model, and on x86 what
# a 4 KiB copy took with rep movsb and with rep movsq.
# On a host run (bench.sh --host) devices listed as skipped in meta.txt may
# be missing; in the VM nothing may be skipped.
#
# Exit status: 0 when everything checks out, 1 otherwise (each problem is
# printed on stderr).
set -u

RAW_HEADER="device,job,round,iops,mib_s,p50_us,p99_us,ios,write_bytes,cpu_us_per_io"
MEM_HEADER="device,size_bytes,bytes_written,vmrss_kib,vmhwm_kib"
COMP_HEADER="device,data,round,orig_bytes,compr_bytes,mem_used_bytes,same_pages,huge_pages"

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
	echo "usage: test/checks/bench-check.sh RESULTS_DIR (a directory bench.sh wrote)" >&2
	exit 1
fi
DIR=$1
PROBLEMS=0

bad() {
	echo "bench-check: $DIR: $*" >&2
	PROBLEMS=$((PROBLEMS + 1))
}

# meta KEY: a value of meta.txt.
meta() {
	sed -n "s/^$1=//p" "$DIR/meta.txt" | head -n 1
}

# codec_ok: codec.txt has, for each block size, lz4.c's line with its
# speeds over the reference's and the reference's line, with numbers.
codec_ok() {
	awk '
	function num(x) { return x ~ /^[0-9]+(\.[0-9]+)?$/ }
	function bad(msg) { print "bench-check: codec.txt line " FNR ": " msg > "/dev/stderr"; errs++ }
	/^#/ || NF == 0 { next }
	{
		delete v
		for (i = 1; i <= NF; i++) {
			p = index($i, "=")
			if (p < 2) { bad("not KEY=VALUE: " $i); next }
			v[substr($i, 1, p - 1)] = substr($i, p + 1)
		}
		who = v["codec"] == "lz4.c" ? "ours" : v["codec"] ~ /^lz4-/ ? "ref" : ""
		if (who == "") { bad("unknown codec \"" v["codec"] "\""); next }
		seen[who, v["mode"]] = 1
		for (k in v)
			if (k != "codec" && k != "mode" && !num(v[k]))
				bad(k " is \"" v[k] "\", not a number")
		if (!(v["compress_MBps"] > 0) || !(v["decompress_MBps"] > 0) || !(v["ratio"] > 0))
			bad("no speed or ratio")
		if (who == "ours" && !("compress_vs_ref" in v && "decompress_vs_ref" in v))
			bad("lz4.c without its speed over the reference'"'"'s")
	}
	END {
		n = split("page4k block64k", M, " ")
		for (i = 1; i <= n; i++)
			if (!(("ours", M[i]) in seen) || !(("ref", M[i]) in seen)) {
				print "bench-check: codec.txt: no line of lz4.c and of the reference for " M[i] > "/dev/stderr"
				errs++
			}
		exit errs > 0
	}' "$DIR/codec.txt"
}

# The codec benchmark alone: its lines, and nothing of a matrix.
if [ "$(meta matrix)" = codec ]; then
	for f in codec.txt meta.txt summary.md; do
		[ -s "$DIR/$f" ] || bad "$f is missing or empty"
	done
	if [ "$PROBLEMS" = 0 ]; then
		codec_ok || bad "codec.txt is incomplete or malformed"
		grep -q '^| codec | mode |' "$DIR/summary.md" || bad "summary.md has no codec table"
	fi
	if [ "$PROBLEMS" -gt 0 ]; then
		echo "bench-check: $DIR: FAIL ($PROBLEMS problems)" >&2
		exit 1
	fi
	echo "bench-check: $DIR: OK (the codec benchmark: $(grep -c '^codec=' "$DIR/codec.txt") lines)"
	exit 0
fi

FILES="summary.csv raw.csv memory.csv meta.txt summary.md ratio.svg"
[ "$(meta matrix)" = compress ] && FILES="$FILES compress.csv"
for f in $FILES; do
	[ -s "$DIR/$f" ] || bad "$f is missing or empty"
done
if [ "$PROBLEMS" -gt 0 ]; then
	echo "bench-check: $DIR: FAIL ($PROBLEMS problems)" >&2
	exit 1
fi

# The matrix the run was (bench.sh's use_matrix): its jobs, devices, the
# job that also ran on ublk-mem-q2, and the device the ratios are to.
if [ "$(meta matrix)" = compress ]; then
	JOBS="ext4-read-128k-qd8 randread-4k-qd32 randrw70-4k-qd16 randwrite-4k-qd1 randread-4k-qd1"
	JOBS="$JOBS seqread-128k-qd8"
	DEVICES="ublk-mem zram"
	SCALING_JOB=
	REF=zram
elif [ "$(meta matrix)" = zoned ]; then
	JOBS="seqwrite-4k-qd1 seqwrite-128k-qd4 randwrite-4k-qd1 randread-4k-qd1 randread-4k-qd32"
	JOBS="$JOBS seqread-128k-qd8"
	DEVICES="ublk-mem null_blk-zoned"
	SCALING_JOB=
	REF=null_blk-zoned
else
	JOBS="ref-seqread-4k-qd1 randread-4k-qd1 randread-4k-qd32 randwrite-4k-qd1 seqread-128k-qd8"
	JOBS="$JOBS randrw70-4k-qd16 randread-4k-qd32x2"
	DEVICES="ublk-mem brd null_blk loop nbdkit"
	SCALING_JOB=randread-4k-qd32x2
	REF=brd
fi
RATIO=$(echo "ratio_$REF" | tr -c 'A-Za-z0-9_\n' '_')
SUMMARY_HEADER="job,device,rounds,iops,iops_min,iops_max,mib_s,p50_us,p99_us,$RATIO,${RATIO}_min,${RATIO}_max,cpu_us_per_io"

[ "$(head -n 1 "$DIR/summary.csv")" = "$SUMMARY_HEADER" ] || bad "summary.csv: unexpected header"
[ "$(head -n 1 "$DIR/raw.csv")" = "$RAW_HEADER" ] || bad "raw.csv: unexpected header"
[ "$(head -n 1 "$DIR/memory.csv")" = "$MEM_HEADER" ] || bad "memory.csv: unexpected header"

# A run of some jobs only (bench.sh --jobs) names them in meta.txt.
[ -n "$(meta jobs)" ] && JOBS=$(meta jobs)
ROUNDS=$(meta rounds)
case $ROUNDS in '' | *[!0-9]*) bad "meta.txt: rounds is '$ROUNDS', not a number"; ROUNDS=1 ;; esac
[ "$(meta failures)" = 0 ] || bad "meta.txt: $(meta failures) runs failed"
SKIPPED=$(meta skipped)
# A VM run skips no device and names the CPU model it booted; an x86 one
# (its kernel's CPU has string_ops) measured what a 4 KiB copy costs it
# (bench/copy_cost).
case $(meta machine) in
VM*)
	[ -z "$SKIPPED" ] || bad "devices were skipped in the VM: $SKIPPED"
	case $(meta machine) in *"-cpu "*) ;; *) bad "meta.txt: the machine line names no CPU model" ;; esac
	if [ -n "$(meta string_ops)" ] &&
		! meta copy_4k | grep -Eq '^rep_movsb_us=[0-9]+\.[0-9]+ rep_movsq_us=[0-9]+\.[0-9]+$'; then
		bad "meta.txt: copy_4k is '$(meta copy_4k)', not bench/copy_cost's two copy times"
	fi
	;;
'') bad "meta.txt: no machine line" ;;
esac

# A second setting compared (bench.sh --ublk-args2) adds ublk-mem-b.
[ -n "$(meta ublk_args2)" ] && DEVICES="ublk-mem ublk-mem-b ${DEVICES#ublk-mem }"

# The rows there must be: "job device" lines.
expected() {
	for j in $JOBS; do
		devs=$DEVICES
		[ -n "$SCALING_JOB" ] && [ "$j" = "$SCALING_JOB" ] && devs="$devs ublk-mem-q2"
		for d in $devs; do
			case "; $SKIPPED" in *"; $d: "*) continue ;; esac
			echo "$j $d"
		done
	done
}
EXPECTED=$(expected)
REF_SKIPPED=0
case "; $SKIPPED" in *"; $REF: "*) REF_SKIPPED=1 ;; esac

# The start of both CSV checks: num(), bad() naming the file and line, the
# expected "job device" rows in want[], and the header skipped.
CSV_CHECK_START='
function num(x) { return x ~ /^[0-9]+(\.[0-9]+)?$/ }
function bad(msg) { print "bench-check: " file " line " FNR ": " msg > "/dev/stderr"; errs++ }
# Every expected key (count[KEY] rows seen) has one row per round.
function rows_per_round(  k) {
	for (k in want)
		if (count[k] != rounds) {
			print "bench-check: " file ": " count[k] + 0 " rows for " k ", not " rounds > "/dev/stderr"
			errs++
		}
}
BEGIN {
	n = split(expected, E, "\n")
	for (i = 1; i <= n; i++)
		want[E[i]] = 1
}
FNR == 1 { next }
'

# summary.csv: one row per job and device, numbers in their columns.
awk -F, -v file=summary.csv -v expected="$EXPECTED" -v rounds="$ROUNDS" \
	-v noref="$REF_SKIPPED" -v ref="$REF" "$CSV_CHECK_START"'
{
	k = $1 " " $2
	if (NF != 13) { bad("has " NF " fields, not 13"); next }
	if (!(k in want)) bad("unexpected row " k)
	if (k in seen) bad("second row for " k)
	seen[k] = 1
	if ($3 != rounds) bad(k ": " $3 " rounds, meta.txt says " rounds)
	for (c = 4; c <= 9; c++)
		if (!num($c)) bad(k ": column " c " is \"" $c "\", not a number")
	if ($4 <= 0) bad(k ": no IOPS")
	if ($5 > $4 || $4 > $6) bad(k ": median IOPS " $4 " outside min-max " $5 "-" $6)
	if (!noref) {
		for (c = 10; c <= 12; c++)
			if (!num($c)) bad(k ": ratio to " ref " (column " c ") is \"" $c "\"")
		if ($11 > $10 || $10 > $12) bad(k ": ratio to " ref " " $10 " outside min-max " $11 "-" $12)
	}
	if ($2 ~ /^(ublk-mem|nbdkit)/ && !num($13)) bad(k ": server CPU per I/O is \"" $13 "\"")
	if ($2 !~ /^(ublk-mem|nbdkit)/ && $13 != "") bad(k ": CPU per I/O for a kernel device")
}
END {
	for (k in want)
		if (!(k in seen)) {
			print "bench-check: summary.csv: no row for " k > "/dev/stderr"
			errs++
		}
	exit errs > 0
}' "$DIR/summary.csv" || bad "summary.csv is incomplete or malformed"

# raw.csv: ROUNDS rows per job and device, numbers in their columns.
awk -F, -v file=raw.csv -v expected="$EXPECTED" -v rounds="$ROUNDS" \
	"$CSV_CHECK_START"'
{
	k = $2 " " $1
	if (NF != 10) { bad("has " NF " fields, not 10"); next }
	if (!(k in want)) bad("unexpected row " k)
	count[k]++
	for (c = 3; c <= 9; c++)
		if (!num($c)) bad(k ": column " c " is \"" $c "\", not a number")
	if ($1 ~ /^(ublk-mem|nbdkit)/ && !num($10)) bad(k ": server CPU per I/O is \"" $10 "\"")
}
END {
	rows_per_round()
	exit errs > 0
}' "$DIR/raw.csv" || bad "raw.csv is incomplete or malformed"

# memory.csv: a server's resident memory, numbers and not nothing.
# mem_row_ok NAME: memory.csv has a usable row for NAME.
mem_row_ok() {
	awk -F, -v name="$1" '
	function num(x) { return x ~ /^[0-9]+$/ }
	FNR == 1 { next }
	$1 == name {
		found = 1
		if (!num($2) || !num($3) || !num($4) || !num($5)) {
			print "bench-check: memory.csv: not numbers: " $0 > "/dev/stderr"
			err = 1
		} else if ($4 <= 0) {
			print "bench-check: memory.csv: no resident memory for " name > "/dev/stderr"
			err = 1
		}
	}
	END { exit err || !found }' "$DIR/memory.csv"
}
mem_row_ok ublk-mem || bad "memory.csv has no usable ublk-mem row"
if [ -n "$(meta ublk_args2)" ]; then
	mem_row_ok ublk-mem-b || bad "memory.csv has no usable ublk-mem-b row"
	grep -q '^- B over A, ' "$DIR/summary.md" || bad "summary.md does not compare B with A"
fi
# nbdkit's, when the matrix has it and it was not skipped.
case " $DEVICES ; $SKIPPED" in
*"; nbdkit: "*) ;;
*" nbdkit "*) mem_row_ok nbdkit || bad "memory.csv has no usable nbdkit row" ;;
esac

# ratio.svg: a whole SVG document with at least one bar and the 1.0 line.
svg=$DIR/ratio.svg
if ! grep -q '<svg' "$svg" || ! grep -q '</svg>' "$svg"; then
	bad "ratio.svg is not a complete SVG document"
fi
if [ "$REF_SKIPPED" = 0 ]; then
	grep -q '<rect x="270"' "$svg" || bad "ratio.svg has no bars"
	grep -q "$REF = 1.0" "$svg" || bad "ratio.svg has no $REF = 1.0 line"
fi

grep -q '^| Job | Device | IOPS' "$DIR/summary.md" || bad "summary.md has no table"
if [ "$(meta matrix)" = zoned ] && ! grep -q '^## zoned: ' "$DIR/summary.md"; then
	bad "summary.md does not title the run zoned"
fi

# compress.csv: a row per data set, device and round, with the device's
# statistics (data held, compressed, memory used: numbers, not nothing);
# and their table in summary.md.
if [ "$(meta matrix)" = compress ]; then
	[ "$(head -n 1 "$DIR/compress.csv")" = "$COMP_HEADER" ] || bad "compress.csv: unexpected header"
	COMP_EXPECTED=$(for s in ext4 fio50; do
		for d in $DEVICES; do
			case "; $SKIPPED" in *"; $d: "*) continue ;; esac
			# An uncompressed ublk-mem-b (--ublk-plain2) has no such row.
			[ "$d" = ublk-mem-b ] && [ -n "$(meta plain2)" ] && continue
			echo "$s $d"
		done
	done)
	awk -F, -v file=compress.csv -v expected="$COMP_EXPECTED" -v rounds="$ROUNDS" \
		"$CSV_CHECK_START"'
	{
		k = $2 " " $1
		if (NF != 8) { bad("has " NF " fields, not 8"); next }
		if (!(k in want)) bad("unexpected row " k)
		if (seen[k, $3]++) bad("second row for " k " in round " $3)
		count[k]++
		for (c = 3; c <= 8; c++)
			if ($c !~ /^[0-9]+$/) bad(k ": column " c " is \"" $c "\", not a whole number")
		if ($4 <= 0 || $5 <= 0 || $6 <= 0) bad(k ": nothing held, compressed or used")
	}
	END {
		rows_per_round()
		exit errs > 0
	}' "$DIR/compress.csv" || bad "compress.csv is incomplete or malformed"
	grep -q '^## compressed: ' "$DIR/summary.md" || bad "summary.md does not title the run compressed"
	grep -q '^| Data | Device |' "$DIR/summary.md" || bad "summary.md has no table of compression"
fi

if [ -e "$DIR/codec.txt" ]; then
	codec_ok || bad "codec.txt is incomplete or malformed"
fi

if [ "$PROBLEMS" -gt 0 ]; then
	echo "bench-check: $DIR: FAIL ($PROBLEMS problems)" >&2
	exit 1
fi
echo "bench-check: $DIR: OK ($(($(wc -l <"$DIR/summary.csv") - 1)) rows, $ROUNDS round(s))"
exit 0
