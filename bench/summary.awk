# summary.awk: raw.csv (a row per run) to summary.csv (a row per job and
# device): medians over the rounds, the IOPS range, and the ratio to the
# reference device, paired by round: the median, min and max of the
# device's IOPS over the reference's in each round. Needs lib.awk;
# -v jobs="JOB..." devs="DEVICE..." set the order of the rows, -v ref=NAME
# the reference device (brd; null_blk-zoned for the zoned matrix), which
# names the ratio columns: ratio_brd, ratio_null_blk_zoned...
#   awk -v jobs=... -v devs=... -v ref=brd -f lib.awk -f summary.awk raw.csv

# column c of the rows of key k, sorted into t; returns how many
function collect(k, c,    i, m) {
	m = 0
	for (i = 1; i <= cnt[k]; i++)
		if (cell[k, i, c] != "")
			t[++m] = cell[k, i, c] + 0
	return m
}

# the paired ratios of key k to key kb, sorted into t; returns how many
function paired(k, kb,    i, m, r) {
	m = 0
	for (i = 1; i <= cnt[k]; i++) {
		r = round[k, i]
		if ((kb, r) in by_round && by_round[kb, r] > 0)
			t[++m] = cell[k, i, 4] / by_round[kb, r]
	}
	return m
}

BEGIN {
	FS = ","
	if (ref == "") {
		print "summary.awk: no reference device (-v ref=NAME)" > "/dev/stderr"
		exit 2
	}
	nj = split(jobs, J, " ")
	nd = split(devs, D, " ")
}
FNR == 1 { next }
{
	k = $2 SUBSEP $1
	i = ++cnt[k]
	for (c = 4; c <= 10; c++)
		cell[k, i, c] = $c
	round[k, i] = $3
	by_round[k, $3] = $4
}
END {
	if (ref == "")
		exit 2
	col = "ratio_" ref
	gsub(/[^A-Za-z0-9_]/, "_", col)
	print "job,device,rounds,iops,iops_min,iops_max,mib_s,p50_us,p99_us," col "," col "_min," col "_max,cpu_us_per_io"
	for (j = 1; j <= nj; j++) {
		kb = J[j] SUBSEP ref
		for (d = 1; d <= nd; d++) {
			k = J[j] SUBSEP D[d]
			if (!(k in cnt))
				continue
			m = collect(k, 4); iops = median(t, m); lo = t[1]; hi = t[m]
			m = collect(k, 5); mib = median(t, m)
			m = collect(k, 6); p50 = median(t, m)
			m = collect(k, 7); p99 = median(t, m)
			m = collect(k, 10); cpu = m ? sprintf("%.2f", median(t, m)) : ""
			ratio = rlo = rhi = ""
			if (kb in cnt && (m = paired(k, kb)) > 0) {
				ratio = sprintf("%.3f", median(t, m))
				rlo = sprintf("%.3f", t[1])
				rhi = sprintf("%.3f", t[m])
			}
			printf "%s,%s,%d,%.1f,%.1f,%.1f,%.2f,%.1f,%.1f,%s,%s,%s,%s\n", J[j], D[d], cnt[k],
				iops, lo, hi, mib, p50, p99, ratio, rlo, rhi, cpu
		}
	}
}
