# lib.awk: functions the bench/ awk programs share; give it first, as
#   awk -f bench/lib.awk -f bench/PROGRAM.awk
#
# median(a, n) sorts a[1..n] in place, so a[1] and a[n] are then the
# minimum and the maximum. labels_from(s) reads bench.sh's job labels,
# "job=label|job=label...", into the array label[job].

function sort_n(a, n,    i, j, t) {
	for (i = 2; i <= n; i++) {
		t = a[i]
		for (j = i - 1; j >= 1 && a[j] > t; j--)
			a[j + 1] = a[j]
		a[j + 1] = t
	}
}

function median(a, n) {
	sort_n(a, n)
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}

function labels_from(s,    L, n, i, p) {
	n = split(s, L, "|")
	for (i = 1; i <= n; i++) {
		p = index(L[i], "=")
		if (p)
			label[substr(L[i], 1, p - 1)] = substr(L[i], p + 1)
	}
}
