# console-section.awk: the lines of one CSV section of the VM's console
# log, those between "BEGIN NAME" and "END NAME rows=N" (-v b="BEGIN NAME"
# -v e="END NAME", with bench.sh's markers). The end marker tells how many
# lines the guest printed; a kernel message spliced into the data shows as
# a difference, which is warned about on stderr.
#   awk -v b="@@BENCH-CSV-BEGIN raw" -v e="@@BENCH-CSV-END raw" -f console-section.awk console.log
{ sub(/\r$/, "") }
index($0, e) == 1 {
	want = $0
	sub(/.*rows=/, "", want)
	if (want + 0 != n)
		printf "bench: warning: %s: %d lines in the console log, the VM printed %d\n",
			substr(b, index(b, " ") + 1), n, want > "/dev/stderr"
	exit
}
on { print; n++ }
$0 == b { on = 1 }
