# ratio-svg.awk: the chart, from summary.csv: ublk-mem's median ratio to
# the reference device per job, a whisker for the range of the rounds'
# ratios, loop and nbdkit as markers for scale, and the 1.0 line. Needs
# lib.awk (labels_from). -v ref=NAME the reference device (brd;
# null_blk-zoned for the zoned matrix), labels="job=label|...", subtitle
# and subtitle2 (the lines under the title), scaling (the job that also
# ran on ublk-mem-q2; empty for none), two=1 when a second setting
# (ublk-mem-b) was measured, scale=1 to give loop's and nbdkit's markers
# a place in the legend.
#   awk -v ref=brd -v labels=... -v subtitle=... -v subtitle2=... -v scaling=JOB \
#       -v two=0|1 -v scale=0|1 -f lib.awk -f ratio-svg.awk summary.csv

function esc(s) {
	gsub(/&/, "\\&amp;", s)
	gsub(/</, "\\&lt;", s)
	return s
}

function x(r) {
	return X0 + r / xmax * (X1 - X0)
}

BEGIN {
	FS = ","
	if (ref == "") {
		print "ratio-svg.awk: no reference device (-v ref=NAME)" > "/dev/stderr"
		exit 2
	}
	labels_from(labels)
}
FNR == 1 { next }
$2 == "loop" && $10 != "" { loopr[$1] = $10 }
$2 == "nbdkit" && $10 != "" { nbdr[$1] = $10 }
$2 ~ /^ublk-mem/ && $10 != "" {
	rows++
	rjob[rows] = $1
	rdev[rows] = $2
	ratio[rows] = $10
	rlo[rows] = $11
	rhi[rows] = $12
}
END {
	if (ref == "")
		exit 2
	X0 = 270; X1 = 700; W = 800
	TOP = 96; BAR = 22; GAP = 12
	xmax = 1.25
	for (i = 1; i <= rows; i++) {
		if (rhi[i] > xmax) xmax = rhi[i]
		if ((rjob[i] in loopr) && loopr[rjob[i]] > xmax) xmax = loopr[rjob[i]]
		if ((rjob[i] in nbdr) && nbdr[rjob[i]] > xmax) xmax = nbdr[rjob[i]]
	}
	step = xmax > 3 ? 1 : (xmax > 1.5 ? 0.5 : 0.25)
	xmax = int(xmax / step + 0.999) * step
	H = TOP + rows * (BAR + GAP) + 70 + (two ? 20 : 0)
	printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"13\">\n", W, H, W, H
	printf "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H
	# The title fits the width at about 85 characters.
	title = "ublk-mem IOPS relative to " ref " (1.0 = as fast as " ref "; higher is better)"
	if (length(title) > 85)
		title = "ublk-mem IOPS relative to " ref " (1.0 = as fast; higher is better)"
	printf "<text x=\"%d\" y=\"24\" font-size=\"16\" font-weight=\"bold\">%s</text>\n", 12, esc(title)
	printf "<text x=\"%d\" y=\"44\" fill=\"#555\">%s</text>\n", 12, esc(subtitle)
	printf "<text x=\"%d\" y=\"62\" fill=\"#555\">%s</text>\n", 12, esc(subtitle2)
	if (rows == 0)
		printf "<text x=\"%d\" y=\"%d\" fill=\"#c0392b\">%s was not measured: no ratios to show</text>\n", X0, TOP + 10, esc(ref)
	bottom = TOP + rows * (BAR + GAP)
	for (g = 0; g <= xmax + 1e-9; g += step) {
		printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>\n", x(g), TOP - 6, x(g), bottom
		printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">%g</text>\n", x(g), bottom + 16, g
	}
	for (i = 1; i <= rows; i++) {
		y = TOP + (i - 1) * (BAR + GAP)
		lab = label[rjob[i]]
		if (rdev[i] == "ublk-mem-q2")
			lab = lab ", -q 2"
		else if (rjob[i] == scaling)
			lab = lab ", -q 1"
		if (two && rdev[i] == "ublk-mem")
			lab = lab ", A"
		else if (rdev[i] == "ublk-mem-b")
			lab = lab ", B"
		fill = rdev[i] == "ublk-mem-q2" ? "#7fa8dc" : rdev[i] == "ublk-mem-b" ? "#3a9a5b" : "#2f6db5"
		printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", X0 - 8, y + BAR / 2 + 5, esc(lab)
		printf "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n", X0, y, x(ratio[i]) - X0, BAR, fill
		lo = rlo[i]; hi = rhi[i]
		if (hi - lo > 0.005)
			printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#222\" stroke-width=\"1.5\"/>\n", x(lo), y + BAR / 2, x(hi), y + BAR / 2
		if (rjob[i] in loopr) {
			lx = x(loopr[rjob[i]]); ly = y + BAR / 2
			printf "<path d=\"M%.1f %.1fl5 5l-5 5l-5 -5z\" fill=\"#888\" stroke=\"white\"/>\n", lx, ly - 5
		}
		if (rjob[i] in nbdr)
			printf "<circle cx=\"%.1f\" cy=\"%d\" r=\"4.5\" fill=\"#e67e22\" stroke=\"white\"/>\n", x(nbdr[rjob[i]]), y + BAR / 2
		# The value right of everything drawn on the row, clear of the 1.0 line.
		tx = x(hi > ratio[i] ? hi : ratio[i]) + 8
		if (rjob[i] in loopr && x(loopr[rjob[i]]) + 14 > tx) tx = x(loopr[rjob[i]]) + 14
		if (rjob[i] in nbdr && x(nbdr[rjob[i]]) + 14 > tx) tx = x(nbdr[rjob[i]]) + 14
		if (tx < x(1) + 4 && tx + 34 > x(1)) tx = x(1) + 6
		printf "<text x=\"%.1f\" y=\"%d\" font-weight=\"bold\">%.2f</text>\n", tx, y + BAR / 2 + 5, ratio[i]
	}
	printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#c0392b\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>\n", x(1), TOP - 12, x(1), bottom + 2
	printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#c0392b\">%s = 1.0</text>\n", x(1), TOP - 16, esc(ref)
	ly = bottom + 40
	printf "<rect x=\"12\" y=\"%d\" width=\"14\" height=\"12\" fill=\"#2f6db5\"/><text x=\"32\" y=\"%d\">ublk-mem median (line: min-max of the rounds)</text>\n", ly - 10, ly
	if (scaling != "")
		printf "<rect x=\"350\" y=\"%d\" width=\"14\" height=\"12\" fill=\"#7fa8dc\"/><text x=\"370\" y=\"%d\">second server, -q 2</text>\n", ly - 10, ly
	if (two)
		printf "<rect x=\"12\" y=\"%d\" width=\"14\" height=\"12\" fill=\"#3a9a5b\"/><text x=\"32\" y=\"%d\">B: ublk-mem-b, the --ublk-args2 setting (A: the first)</text>\n", ly + 10, ly + 20
	if (scale) {
		printf "<path d=\"M%d %dl5 5l-5 5l-5 -5z\" fill=\"#888\"/><text x=\"%d\" y=\"%d\">loop on tmpfs</text>\n", 530, ly - 9, 542, ly
		printf "<circle cx=\"%d\" cy=\"%d\" r=\"4.5\" fill=\"#e67e22\"/><text x=\"%d\" y=\"%d\">nbdkit memory</text>\n", 650, ly - 4, 662, ly
	}
	print "</svg>"
}
