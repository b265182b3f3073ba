#!/bin/sh
# The README's examples work as written: each fenced block after a line
# "<!-- example: NAME -->" runs under `sh -e` (with ./ublk-mem meaning the
# server under test), must exit 0, and must leave no device behind.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
need_tool "$MKFS_EXT4" mkfs.ext4

readme=
for f in "$TEST_ROOT/../README.md" /README.md; do
	[ -f "$f" ] && { readme=$f; break; }
done
[ -n "$readme" ] || fail "no README.md next to test/ (nor at /README.md in the VM)"
names=$(sed -n 's/^<!-- example: \([a-z0-9-]*\) -->$/\1/p' "$readme")
[ -n "$names" ] || fail "no examples found in $readme"

# nodes_as_before: the ublk device nodes are those there before the example.
nodes_as_before() {
	[ "$(ublk_nodes)" = "$before" ]
}

for name in $names; do
	step "README example '$name'"
	# The block: from the fence after the marker to the closing fence.
	awk -v name="$name" '
		$0 == "<!-- example: " name " -->" { found = 1; next }
		found && /^```/ { if (inblock) exit; inblock = 1; next }
		inblock { print }
	' "$readme" | sed "s|\./ublk-mem|$UBLK_MEM|g" >"$T_TMP/$name.sh"
	[ -s "$T_TMP/$name.sh" ] || fail "example '$name' is empty"
	before=$(ublk_nodes)
	(cd "$T_TMP" && PATH="$(dirname "$MKFS_EXT4"):$PATH" run_with_timeout 120 sh -e "$T_TMP/$name.sh") \
		>"$T_TMP/$name.out" 2>&1
	rc=$?
	sed 's/^/    | /' "$T_TMP/$name.out"
	[ $rc = 0 ] || fail "README example '$name' exited with status $rc: $(tail -n 3 "$T_TMP/$name.out")"
	# A device the example stopped may take a moment to go, whatever its id.
	wait_until 10 nodes_as_before ||
		expect_eq "$(ublk_nodes)" "$before" "ublk devices 10 s after example '$name'"
	say "example '$name' ran clean"
done
