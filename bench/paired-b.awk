# paired-b.awk: from raw.csv, a line per job comparing the second server
# (ublk-mem-b, B) with the first (ublk-mem, A): the median over the rounds
# of B's IOPS over A's in the same round, with the range, and both servers'
# median CPU per I/O. Needs lib.awk; -v jobs="JOB..." sets the order,
# -v labels="job=label|..." the names.
#   awk -F, -v jobs=... -v labels=... -f lib.awk -f paired-b.awk raw.csv

BEGIN {
	labels_from(labels)
}
FNR == 1 { next }
$1 == "ublk-mem" { a[$2, $3] = $4; ca[$2, $3] = $10 }
$1 == "ublk-mem-b" { b[$2, $3] = $4; cb[$2, $3] = $10 }
END {
	nj = split(jobs, J, " ")
	for (j = 1; j <= nj; j++) {
		m = 0; mc = 0
		for (k in b) {
			split(k, kk, SUBSEP)
			if (kk[1] != J[j] || !(k in a) || a[k] <= 0)
				continue
			r[++m] = b[k] / a[k]
			if (ca[k] != "" && cb[k] != "") {
				x[++mc] = ca[k]; y[mc] = cb[k]
			}
		}
		if (!m)
			continue
		med = median(r, m)
		cpu = ""
		if (mc)
			cpu = sprintf("; server CPU %.1f (A) and %.1f (B) µs/IO", median(x, mc), median(y, mc))
		printf "- B over A, %s: %.2f (%.2f-%.2f over %d rounds)%s\n", label[J[j]], med,
			r[1], r[m], m, cpu
	}
}
