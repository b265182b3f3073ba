# compress-table.awk: compress.csv (a row per device, data set and round:
# what the device's own statistics told after the data set was written) as
# a Markdown table, a row per data set and device: medians over the rounds
# of the data held, its compressed size, the compression ratio (data over
# compressed) and the memory used, the ratio by memory (data over memory
# used), the same-filled and the incompressible (huge) pages, and the compression ratio relative to the reference device's,
# paired by round (the median, min and max of the device's ratio over the
# reference's in each round). Needs lib.awk; -v sets="SET..." and
# devs="DEVICE..." set the order of the rows, -v labels="set=label|..."
# names the data sets, -v ref=NAME is the reference device (zram).
#   awk -v sets=... -v devs=... -v labels=... -v ref=zram -f lib.awk -f compress-table.awk compress.csv

# column c of the rows of key k, sorted into t; returns how many
function collect(k, c,    i, m) {
	m = 0
	for (i = 1; i <= cnt[k]; i++)
		t[++m] = cell[k, i, c]
	return m
}

# the rounds' ratios of key k over those of key kb, sorted into t
function paired(k, kb,    i, m, r) {
	m = 0
	for (i = 1; i <= cnt[k]; i++) {
		r = round[k, i]
		if ((kb, r) in ratio_by_round && ratio_by_round[kb, r] > 0)
			t[++m] = cell[k, i, "ratio"] / ratio_by_round[kb, r]
	}
	return m
}

function mib(x) {
	return sprintf("%.1f", x / 1048576)
}

BEGIN {
	FS = ","
	if (ref == "") {
		print "compress-table.awk: no reference device (-v ref=NAME)" > "/dev/stderr"
		exit 2
	}
	labels_from(labels)
	ns = split(sets, S, " ")
	nd = split(devs, D, " ")
}
FNR == 1 { next }
NF == 8 && $5 > 0 {
	k = $2 SUBSEP $1
	i = ++cnt[k]
	round[k, i] = $3
	cell[k, i, "orig"] = $4
	cell[k, i, "compr"] = $5
	cell[k, i, "mem"] = $6
	cell[k, i, "same"] = $7
	cell[k, i, "huge"] = $8
	cell[k, i, "ratio"] = $4 / $5
	cell[k, i, "bymem"] = $6 > 0 ? $4 / $6 : 0
	ratio_by_round[k, $3] = $4 / $5
}
END {
	if (ref == "")
		exit 2
	print "| Data | Device | Data held, MiB | Compressed, MiB | Ratio | vs " ref " | vs " ref " min-max | Memory used, MiB | Data / memory | Same pages | Huge pages |"
	print "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
	for (s = 1; s <= ns; s++) {
		kb = S[s] SUBSEP ref
		first = 1
		for (d = 1; d <= nd; d++) {
			k = S[s] SUBSEP D[d]
			if (!(k in cnt))
				continue
			m = collect(k, "orig"); orig = median(t, m)
			m = collect(k, "compr"); compr = median(t, m)
			m = collect(k, "mem"); mem = median(t, m)
			m = collect(k, "ratio"); ratio = median(t, m)
			m = collect(k, "bymem"); bymem = median(t, m)
			m = collect(k, "same"); same = median(t, m)
			m = collect(k, "huge"); huge = median(t, m)
			vs = "n/a"; range = "-"
			if (kb in cnt && (m = paired(k, kb)) > 0) {
				vs = sprintf("%.3f", median(t, m))
				range = sprintf("%.3f-%.3f", t[1], t[m])
			}
			dev = D[d] ~ /^ublk-mem/ ? "**" D[d] "**" : D[d]
			printf "| %s | %s | %s | %s | %.3f | %s | %s | %s | %.3f | %.0f | %.0f |\n",
				first ? ((S[s] in label) ? label[S[s]] : S[s]) : "", dev, mib(orig),
				mib(compr), ratio, vs, range, mib(mem), bymem, same, huge
			first = 0
		}
	}
}
