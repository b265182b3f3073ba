#!/bin/sh
# The server runs as root and keeps recoverable stores in /dev/shm, where
# any local user may plant files. A store that is a symbolic link, belongs
# to someone else, can be read by others, has other links, or is not the
# file the device was created with is refused with one line, exit 1, and
# nothing changed; `del` removes only a store ublk-mem made itself.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk

start_ublk 16M --recoverable
id=$SRV_ID
dev=$DEV
store=/dev/shm/ublk-mem-$id
random_file "$T_TMP/data" $((2 * MiB))
write_at "$dev" "$T_TMP/data" 0
want=$(sha_of "$T_TMP/data")
kill -KILL "$SRV_PID"
wait "$SRV_PID" 2>/dev/null
owner=$(stat -c %u:%g "$store")
mode=$(stat -c %a "$store")

# refused_for WHAT TEXT: the refusal refuse just saw gives TEXT as its reason.
refused_for() {
	grep -q -F -- "$2" "$T_TMP/r.err" || fail "$1: the refusal does not say '$2': $(cat "$T_TMP/r.err")"
}

step "the real store, made unsafe, is refused"
# The very file the device was made with, so that only the check named
# fails (a copy would be refused as another file whatever its owner).
chown 65534 "$store"
refuse 1 "the store owned by another user" recover "$id"
refused_for "the store owned by another user" "belongs to uid 65534"
chown "$owner" "$store"
chmod 644 "$store"
refuse 1 "the store others can read" recover "$id"
refused_for "the store others can read" "others may read or write it (mode 0644)"
chmod 606 "$store"
refuse 1 "the store others can write" recover "$id"
refused_for "the store others can write" "others may read or write it (mode 0606)"
chmod "$mode" "$store"
ln "$store" "$store.link"
refuse 1 "the store with a second link" recover "$id"
refused_for "the store with a second link" "it has 2 links"
rm -f "$store.link"

step "planted stores are refused"
# The real store steps aside within its file system, keeping its identity.
mv "$store" "$store.real"
ln -s "$store.real" "$store"
refuse 1 "a symbolic link" recover "$id"
refused_for "a symbolic link" "it is a symbolic link"
rm -f "$store"
cp "$store.real" "$store"
chmod 600 "$store"
refuse 1 "a copy, not the file the device was made with" recover "$id"
refused_for "a copy" "is not the store the device was created with"
rm -f "$store"
mkdir "$store"
refuse 1 "a directory" recover "$id"
rmdir "$store"
"$UBLK_MEM" list | awk -v id="$id" '$1 == id' | grep -q recoverable ||
	fail "the refusals changed device $id: $("$UBLK_MEM" list)"

step "the real store is taken"
mv "$store.real" "$store"
start_ublk recover "$id"
expect_eq "$(dev_sha "$dev" 0 $((2 * MiB)))" "$want" "data after the refusals"

step "del leaves a file it did not make"
kill -KILL "$SRV_PID"
wait "$SRV_PID" 2>/dev/null
mv "$store" "$store.real"
printf 'not ublk-mem data\n' >"$store"
chmod 600 "$store"
run_with_timeout 30 "$UBLK_MEM" del "$id" >"$T_TMP/del.out" 2>"$T_TMP/del.err" ||
	fail "ublk-mem del $id failed: $(cat "$T_TMP/del.err")"
wait_gone "$dev" "/dev/ublkc$id" || fail "del left $dev behind"
expect_eq "$(cat "$store")" "not ublk-mem data" "the planted file after del"
say "del said: $(cat "$T_TMP/del.err")"
rm -f "$store" "$store.real"

step "--store: a symbolic link or a planted file is refused at create"
ln -s /dev/null "$T_TMP/link"
before=$(ublk_nodes)
refuse 1 "--store on a symbolic link" 16M --recoverable --store "$T_TMP/link"
printf x >"$T_TMP/planted"
refuse 1 "--store on an existing file" 16M --recoverable --store "$T_TMP/planted"
expect_eq "$(cat "$T_TMP/planted")" x "the existing file after the refusal"
expect_eq "$(ublk_nodes)" "$before" "ublk devices after the refusals"

step "del keeps a --store of the user's own; a clean stop removes it"
start_ublk 16M --recoverable --store "$T_TMP/mystore"
kill -KILL "$SRV_PID"
wait "$SRV_PID" 2>/dev/null
run_with_timeout 30 "$UBLK_MEM" del "$SRV_ID" 2>"$T_TMP/del.err" || fail "del failed"
[ -f "$T_TMP/mystore" ] || fail "del removed the --store file $T_TMP/mystore"
say "del said: $(cat "$T_TMP/del.err")"
rm -f "$T_TMP/mystore"
start_ublk 16M --recoverable --store "$T_TMP/mystore"
stop_ublk
[ -e "$T_TMP/mystore" ] && fail "a clean stop left its --store file"
true
