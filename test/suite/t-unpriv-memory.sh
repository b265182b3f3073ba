#!/bin/sh
# Memory for a server an ordinary user runs. --prealloc beyond what the
# user may lock (RLIMIT_MEMLOCK) still takes all the store's memory up
# front, unlocked, with one line saying so; within the limit it is locked,
# silently. The server cannot lower its oom_score_adj and does not try to
# say it failed. Without a runtime directory, its one line says resize
# cannot reach it, and the device serves all the same.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_ublk
users_setup
start_udev "$UBLK_MEM" chown

# A wrapper that lowers RLIMIT_MEMLOCK to 4 MiB, then runs its arguments.
cat >"$T_TMP/memlock4m" <<'EOF'
#!/bin/sh
ulimit -l 4096 && exec "$@"
EOF
chmod 755 "$T_TMP/memlock4m"

step "--prealloc of 64M with 4 MiB lockable"
RUN_AS="$(user_words $UID1) $T_TMP/memlock4m"
start_ublk 64M --prealloc --small-pages
say "the server: $(cat "$SRV_ERR")"
expect_eq "$(grep -c '' "$SRV_ERR")" 1 "lines on stderr"
grep -q "64 MiB allocated but not locked" "$SRV_ERR" || fail "the line does not say the memory is not locked"
grep -q "RLIMIT_MEMLOCK" "$SRV_ERR" || fail "the line does not name RLIMIT_MEMLOCK"
store=$(store_kb "$SRV_PID")
say "resident $store KiB, locked $(lck_kb "$SRV_PID") KiB"
[ "$store" -ge $((64 * 1024)) ] || fail "only $store KiB of the 64 MiB store are resident"
[ "$(lck_kb "$SRV_PID")" -le 4096 ] || fail "more than the limit is locked: $(lck_kb "$SRV_PID") KiB"
fio_verify prealloc --size=32M
stop_ublk

step "--prealloc within the limit: locked, silently"
start_ublk 2M --prealloc --small-pages
[ -s "$SRV_ERR" ] && fail "the server said: $(cat "$SRV_ERR")"
[ "$(lck_kb "$SRV_PID")" -ge 2048 ] || fail "the 2 MiB store is not locked: $(lck_kb "$SRV_PID") KiB"
stop_ublk

step "the OOM score: left as it is, silently"
as_user $UID1
start_ublk 16M
expect_eq "$(cat "/proc/$SRV_PID/oom_score_adj")" 0 "oom_score_adj of the user's server"
[ -s "$SRV_ERR" ] && fail "the server said: $(cat "$SRV_ERR")"
stop_ublk

step "no runtime directory: served all the same, without resize"
RUN_AS="$SETPRIV --reuid=$UID1 --regid=$UID1 --groups=$UBLK_GID --inh-caps=-all -- env -u XDG_RUNTIME_DIR"
rm -rf "/run/user/$UID1"
start_ublk 16M
expect_eq "$(grep -c '' "$SRV_ERR")" 1 "lines on stderr"
grep -q "resize cannot reach this server" "$SRV_ERR" || fail "the server does not say resize cannot reach it"
fio_verify noruntime --size=8M
# shellcheck disable=SC2046 # words
run_with_timeout 30 $(user_words $UID1) "$UBLK_MEM" resize "$SRV_ID" 32M >"$T_TMP/rs.out" 2>"$T_TMP/rs.err" &&
	fail "resize reached a server without a socket"
expect_eq "$(grep -c '' "$T_TMP/rs.err")" 1 "lines on stderr of resize"
grep -q "no control socket" "$T_TMP/rs.err" || fail "resize does not say why: $(cat "$T_TMP/rs.err")"
stop_ublk
