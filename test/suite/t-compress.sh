#!/bin/sh
# --compress: data written in every copy mode that can serve a compressed
# store (random, sequential, 70/30, two queues, zoned) reads back verified; the
# stats count what was written as zram would (zero pages as same_pages,
# random data as huge pages, text compressed); discard and write-zeroes
# give the memory back, to the empty store's size; what cannot work with
# --compress is refused in one line.
# suite: timeout 600 (about 90 s on an idle machine under TCG: many devices)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
case " ${UBLK_MEM_ARGS:-} " in *" --copy-mode "*) skip "this test picks its copy modes" ;; esac

modes="get_data user_copy bounce"
has_feature BATCH_IO && modes="$modes batch"
for mode in $modes; do
	step "fio verify on a compressed device, $mode"
	if [ "$mode" = batch ]; then
		start_ublk 64M --compress --io-path batch
	else
		start_ublk 64M --compress --copy-mode "$mode"
	fi
	fio_verify "rand-$mode" --size=16M
	fio_verify "seq-$mode" --rw=write --bs=128k --iodepth=4 --offset=16M --size=16M
	fio_verify "mixed-$mode" --rw=randrw --rwmixread=70 --iodepth=16 --offset=32M \
		--size=16M --buffer_compress_percentage=50 --refill_buffers
	expect_eq "$(stat_of "$SRV_ID" compressed)" 1 "compressed, in stats"
	expect_eq "$(stat_of "$SRV_ID" failed_writes)" 0 "failed writes"
	expect_eq "$(stat_of "$SRV_ID" failed_reads)" 0 "failed reads"
	check_alive
	stop_ublk
done

step "two queues, two fio jobs at once"
start_ublk 64M --compress -q 2
fio_verify two-queues --numjobs=2 --offset_increment=24M --size=24M
check_alive
stop_ublk

if has_feature ZONED; then
	step "a zoned compressed device: fio in zoned mode, verified"
	start_ublk 64M --compress --zoned --zone-size 4M
	fio_run zbd-compressed --zonemode=zbd --rw=write --bs=64k --iodepth=4 --size=64M \
		--max_open_zones=4 --buffer_compress_percentage=50 --refill_buffers \
		--verify=crc32c --do_verify=1 --verify_fatal=1
	[ "$FIO_READS" -gt 0 ] || fail "fio zbd-compressed verified nothing"
	expect_eq "$(stat_of "$SRV_ID" compressed)" 1 "a zoned device's store is compressed"
	check_alive
	stop_ublk
fi

step "stats: zeros are same pages, random data is stored raw, text compresses"
# A small queue depth: the requests' buffers (16 x 512 KiB) are soon all
# in use, and their memory stays put while the store's is measured.
start_ublk 64M --compress -d 16
empty=$(stat_of "$SRV_ID" mem_used_total)
say "an empty compressed store holds $empty bytes"
[ "$empty" -le 65536 ] || fail "an empty store holds $empty bytes"
expect_eq "$(stat_of "$SRV_ID" orig_data_size)" 0 "orig_data_size of an empty store"
head -c $((100 * 4096)) /dev/zero >"$T_TMP/zeros"
random_file "$T_TMP/random" $((4 * MiB))
text_file "$T_TMP/text" $((4 * MiB))
w0=$(stat_of "$SRV_ID" writes)
write_at "$DEV" "$T_TMP/zeros" 0
write_at "$DEV" "$T_TMP/random" $((8 * MiB))
write_at "$DEV" "$T_TMP/text" $((16 * MiB))
expect_eq "$(stat_of "$SRV_ID" same_pages)" 100 "same_pages after 100 pages of zeros"
expect_eq "$(stat_of "$SRV_ID" huge_pages)" 1024 "huge_pages after 4 MiB of random data"
expect_eq "$(stat_of "$SRV_ID" orig_data_size)" $(((100 + 2048) * 4096)) "orig_data_size"
compr=$(stat_of "$SRV_ID" compr_data_size)
text=$((compr - 4 * MiB))
say "4 MiB of text compressed to $text bytes"
{ [ "$text" -gt 0 ] && [ "$text" -lt $((3 * MiB)) ]; } || fail "4 MiB of text compressed to $text bytes"
[ "$(stat_of "$SRV_ID" writes)" -gt "$w0" ] || fail "the stats counted no writes"
expect_eq "$(dev_sha "$DEV" $((8 * MiB)) $((4 * MiB)))" "$(sha_of "$T_TMP/random")" "the random data"
expect_eq "$(dev_sha "$DEV" $((16 * MiB)) $((4 * MiB)))" "$(sha_of "$T_TMP/text")" "the text"
[ "$(stat_of "$SRV_ID" read_bytes)" -ge $((8 * MiB)) ] || fail "the stats counted too few bytes read"

step "discard and write-zeroes give the memory back"
fio_run warm-buffers --rw=randread --bs=512k --iodepth=16 --io_size=32M
used=$(stat_of "$SRV_ID" mem_used_total)
kb0=$(store_kb "$SRV_PID")
"$BLKDISCARD" -o $((8 * MiB)) -l $((4 * MiB)) "$DEV" || fail "blkdiscard failed"
"$BLKDISCARD" -z -o $((16 * MiB)) -l $((4 * MiB)) "$DEV" || fail "blkdiscard -z failed"
kb1=$(store_kb "$SRV_PID")
say "memory: $used bytes in the store and $kb0 KiB resident, then $(stat_of "$SRV_ID" mem_used_total) bytes and $kb1 KiB"
[ $((kb0 - kb1)) -ge $((4 * 1024)) ] || fail "discarding 8 MiB gave back only $((kb0 - kb1)) KiB"
expect_eq "$(stat_of "$SRV_ID" huge_pages)" 0 "huge_pages after the discard"
expect_eq "$(dev_sha "$DEV" $((8 * MiB)) $((12 * MiB)))" "$(zero_sha $((12 * MiB)))" "the discarded range"
"$BLKDISCARD" "$DEV" || fail "blkdiscard of the whole device failed"
expect_eq "$(stat_of "$SRV_ID" mem_used_total)" "$empty" "the store's memory after discarding everything"
expect_eq "$(stat_of "$SRV_ID" orig_data_size)" 0 "orig_data_size after discarding everything"
check_alive
stop_ublk

step "compaction: a store left sparse by discards gives its slabs back"
start_ublk 64M --compress
fio_run fill-compressible --rw=write --bs=64k --size=48M --buffer_compress_percentage=60 \
	--refill_buffers
used0=$(stat_of "$SRV_ID" mem_used_total)
# Every other page: each slab is left half full, and no slab empty.
fio_run trim-half --rw=trim:4k --bs=4k --size=48M
sum=$(dev_sha "$DEV" 0 $((48 * MiB)))
compr=$(stat_of "$SRV_ID" compr_data_size)
# compacted: the compactor has moved objects and the store's memory is
# back near what its pages need (their bytes, an eighth, and its slack).
compacted() {
	[ "$(stat_of "$SRV_ID" pages_compacted)" -gt 0 ] &&
		[ "$(stat_of "$SRV_ID" mem_used_total)" -le $((compr + compr / 8 + 4 * MiB)) ]
}
wait_until 60 compacted ||
	fail "no compaction: $(stat_of "$SRV_ID" mem_used_total) bytes of memory for $compr compressed, $(stat_of "$SRV_ID" pages_compacted) pages compacted"
say "48 MiB written: $used0 bytes of memory; half discarded: $compr compressed in $(stat_of "$SRV_ID" mem_used_total) after compacting $(stat_of "$SRV_ID" pages_compacted) pages"
expect_eq "$(dev_sha "$DEV" 0 $((48 * MiB)))" "$sum" "the data the compactor moved"
check_alive
stop_ublk

step "refused: what a compressed store cannot do"
refuse 2 "--compress with zero_copy" 64M --compress --copy-mode zero_copy
refuse 2 "--compress with --prealloc" 64M --compress --prealloc
refuse 2 "--mem-limit without --compress" 64M --mem-limit 32M
refuse 2 "a --mem-limit below 1M" 64M --compress --mem-limit 4K
