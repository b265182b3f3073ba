# codec-table.awk: a codec benchmark's lines (bench/lz4_bench prints
#   mode=page4k block=4096 bytes=N compressed=N ratio=R compress_MBps=C ...
# one per mode) as a Markdown table, its columns the keys in the order they
# first appear. Lines that are not all KEY=VALUE words follow the table
# verbatim, in a code block; blank lines are left out.
#   awk -f codec-table.awk codec.txt
NF == 0 { next }
{
	for (i = 1; i <= NF; i++)
		if (index($i, "=") < 2) {
			other[++nother] = $0
			next
		}
	nrow++
	for (i = 1; i <= NF; i++) {
		p = index($i, "=")
		k = substr($i, 1, p - 1)
		if (!(k in col)) {
			col[k] = ++ncol
			key[ncol] = k
		}
		cell[nrow, k] = substr($i, p + 1)
	}
}
END {
	if (nrow) {
		line = "|"
		rule = "|"
		for (c = 1; c <= ncol; c++) {
			line = line " " key[c] " |"
			rule = rule "---|"
		}
		print line
		print rule
		for (r = 1; r <= nrow; r++) {
			line = "|"
			for (c = 1; c <= ncol; c++)
				line = line " " cell[r, key[c]] " |"
			print line
		}
	}
	if (nother) {
		if (nrow)
			print ""
		print "```"
		for (i = 1; i <= nother; i++)
			print other[i]
		print "```"
	}
}
