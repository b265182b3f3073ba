# table.awk: summary.csv as a Markdown table, a row per job and device.
# Needs lib.awk (labels_from); -v labels="job=label|..." names the
# jobs, -v ref=NAME the reference device the ratios are to, and with
# -v args2 (the --ublk-args2 setting) each server is named by its options
# (args1: the first's).
#   awk -v labels=... -v ref=brd [-v args1=... -v args2=...] -f lib.awk -f table.awk summary.csv

function group(x,    s, r) {
	s = sprintf("%.0f", x)
	r = ""
	while (length(s) > 3) {
		r = "," substr(s, length(s) - 2) r
		s = substr(s, 1, length(s) - 3)
	}
	return s r
}

function us(x) {
	return x < 100 ? sprintf("%.1f", x) : sprintf("%.0f", x)
}

# a ratio: two decimals, three below 0.1 so that small ones do not read 0.00
function r2(x) {
	return x < 0.1 ? sprintf("%.3f", x) : sprintf("%.2f", x)
}

BEGIN {
	FS = ","
	labels_from(labels)
	name["ublk-mem-q2"] = "ublk-mem -q 2"
	if (args2 != "") {
		name["ublk-mem"] = "ublk-mem" (args1 != "" ? " " args1 : "")
		name["ublk-mem-b"] = "ublk-mem " args2
	}
	if (ref == "") {
		print "table.awk: no reference device (-v ref=NAME)" > "/dev/stderr"
		exit 2
	}
	print "| Job | Device | IOPS | IOPS min-max | MiB/s | p50 µs | p99 µs | vs " ref " | vs " ref " min-max | server CPU µs/IO |"
	print "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"
}
FNR == 1 { next }
{
	job = ($1 == last) ? "" : label[$1]
	last = $1
	dev = ($2 in name) ? name[$2] : $2
	if ($2 ~ /^ublk-mem/)
		dev = "**" dev "**"
	ratio = $10 == "" ? "n/a" : r2($10)
	range = $11 == "" ? "-" : r2($11) "-" r2($12)
	cpu = $13 == "" ? "-" : sprintf("%.1f", $13)
	printf "| %s | %s | %s | %s-%s | %.1f | %s | %s | %s | %s | %s |\n", job, dev, group($4),
		group($5), group($6), $7, us($8), us($9), ratio, range, cpu
}
