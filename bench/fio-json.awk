# fio-json.awk: the figures of one fio run, from its JSON output
# (pretty-printed, one key a line), on one line:
#   IOPS MiB/s P50_us P99_us IOS WRITE_BYTES ERROR
# or "none" when the output has no result. With --unified_rw_reporting=both
# the "mixed" section sums reads and writes and "write" still tells the
# bytes written. bench.sh runs fio with --group_reporting: there is one job.
# Each value is stored under its path of keys, "//jobs//mixed/iops" (array
# elements have an empty key).
{
	key = ""
	val = $0
	if (match($0, /"[^"]*"[ \t]*:/)) {
		key = substr($0, RSTART + 1, RLENGTH - 1)
		sub(/"[ \t]*:$/, "", key)
		val = substr($0, RSTART + RLENGTH)
	}
	gsub(/^[ \t]+/, "", val)
	gsub(/[ \t,]+$/, "", val)
	c = substr(val, 1, 1)
	if (val == "{" || val == "[") {
		path[++depth] = key
		next
	}
	if (c == "}" || c == "]") {
		depth--
		next
	}
	if (key == "")
		next
	p = ""
	for (i = 1; i <= depth; i++)
		p = p "/" path[i]
	v[p "/" key] = val
}
END {
	m = "//jobs//mixed/"
	if (!((m "iops") in v)) {
		print "none"
		exit
	}
	printf "%.1f %.2f %.1f %.1f %.0f %.0f %.0f\n", v[m "iops"], v[m "bw_bytes"] / 1048576,
		v[m "clat_ns/percentile/50.000000"] / 1000, v[m "clat_ns/percentile/99.000000"] / 1000,
		v[m "total_ios"], v["//jobs//write/io_bytes"], v["//jobs//error"]
}
