# memory-lines.awk: from memory.csv, a Markdown list line per server: its
# resident memory after the run and the bytes written to its device.
# -v size=MiB (the devices' size), args1 and args2 (the --ublk-args and
# --ublk-args2 settings: with both, each server is named by its options).
#   awk -F, -v size=64 [-v args1=... -v args2=...] -f memory-lines.awk memory.csv
FNR > 1 {
	who = $1
	if (who == "ublk-mem-q2")
		who = "ublk-mem -q 2"
	else if (who == "ublk-mem-b")
		who = "ublk-mem " args2
	else if (who == "ublk-mem" && args2 != "" && args1 != "")
		who = "ublk-mem " args1
	printf "- %s memory after the run: VmRSS %.1f MiB (peak %.1f MiB) for a %d MiB device;" \
		" %.1f MiB written to it in all (the fill and the write jobs)\n",
		who, $4 / 1024, $5 / 1024, size,
		$3 / 1048576
}
