#!/bin/bash
# scenario.sh - the body of test_maildrop.sh, run inside its private network namespace. Do not
# run it directly. Environment: M_ROOT (repository), M_TERN (tern binary), M_KIT (testkit),
# M_WORK (an empty work directory, mode 755). Exit 0: all passed, 3: a check failed.
# shellcheck disable=SC2015,SC2317
set -u
T=$M_WORK
kit=$M_KIT
# pass, fail, check, wait_for, has, hasnt
# shellcheck source=tests/integration/scenario-lib.sh
. "$M_ROOT/tests/integration/scenario-lib.sh"

# The commands as installed: tern and its sendmail link, reachable by every user.
mkdir -p "$T/bin" "$T/spool" "$T/mail"
cp "$M_TERN" "$T/bin/tern"
ln -s tern "$T/bin/sendmail"
ln -s tern "$T/bin/mailq"
export PATH="$T/bin:$PATH" TERN_CONFIG="$T/tern.conf"
if id tern >/dev/null 2>&1; then user=tern; else user=nobody; fi
nobody_uid=$(id -u nobody)
# An unprivileged user running sendmail, as cron or PHP would (HOME has no dead.letter).
as_nobody() { runuser -u nobody -- env PATH="$PATH" TERN_CONFIG="$TERN_CONFIG" HOME=/nonexistent "$@"; }

write_conf() { # FILE PORT [extra lines]
    local f=$1 port=$2
    shift 2
    cat >"$f" <<CONF
hostname tern.local.test
user $user
listen 127.0.0.1:$port smtp
local_domain local.test
mailbox alice@local.test bob@local.test nobody@local.test
spool $T/spool
maildir $T/mail/%d/%u
workers 1
relay_networks 127.0.0.0/8 ::1/128
trusted_users daemon
log stderr
CONF
    for l in "$@"; do echo "$l" >>"$f"; done
    chmod 644 "$f"
}
write_conf "$T/tern.conf" 2525
# The same spool, a listener nobody serves: sendmail with -C this finds no server.
write_conf "$T/down.conf" 2599
chown -R "$user" "$T/spool" "$T/mail"

inbox() { ls "$T/mail/local.test/$1/new" 2>/dev/null | wc -l; }
newest() { ls -t "$T/mail/local.test/$1/new/"* 2>/dev/null | head -1; }
drops() { find "$T/spool/maildrop" -maxdepth 1 -type f ! -name '.*' | wc -l; }

start_tern() { # CONFIG
    tern serve -c "$1" >>"$T/tern.log" 2>&1 &
    tern_pid=$!
    "$kit/wait-listen" 127.0.0.1 2525 && wait_for 20 test -S "$T/spool/control"
}
stop_tern() {
    kill -TERM "$tern_pid" 2>/dev/null
    wait "$tern_pid" 2>/dev/null
    tern_pid=
}

# ---- first start: tern creates the maildrop ------------------------------------------------
start_tern "$T/tern.conf" || { fail maildrop-start "$(tail -c 800 "$T/tern.log")"; exit 3; }
check maildrop-mode "$(stat -c '%a %U' "$T/spool/maildrop" "$T/spool")" \
    eval '[ "$(stat -c %a "$T/spool/maildrop")" = 1733 ] && [ "$(stat -c %U "$T/spool/maildrop")" = "$user" ] &&
          [ "$(stat -c %a "$T/spool")" = 711 ] && [ "$(stat -c %a "$T/spool/maildrop/corrupt")" = 700 ]'
check maildrop-private "nobody can list the maildrop or the queue" \
    eval '! runuser -u nobody -- ls "$T/spool/maildrop" >/dev/null 2>&1 &&
          ! runuser -u nobody -- ls "$T/spool/queue" >/dev/null 2>&1'
stop_tern

# ---- the server is down: sendmail -t -i as nobody ----------------------------------------
printf 'To: alice@local.test\nSubject: dropped while down\n\nhello from the maildrop\n.\nafter the dot\n' |
    as_nobody sendmail -t -i >"$T/out" 2>"$T/err"
rc=$?
check sendmail-down-exit-0 "rc=$rc $(cat "$T/err")" \
    eval '[ $rc = 0 ] && has "$T/err" "not running" && has "$T/err" "maildrop"'
f=$(find "$T/spool/maildrop" -maxdepth 1 -type f ! -name '.*' | head -1)
check sendmail-down-file "$(ls -la "$T/spool/maildrop")" \
    eval '[ "$(drops)" = 1 ] && [ "$(stat -c %u "$f")" = "$nobody_uid" ] && [ "$(stat -c %a "$f")" = 644 ] &&
          head -1 "$f" | grep -qx "tern-maildrop 1"'
check sendmail-down-no-tmp "$(ls -la "$T/spool/maildrop")" \
    eval '[ -z "$(find "$T/spool/maildrop" -maxdepth 1 -name ".tmp.*")" ]'
check sendmail-down-no-dead-letter "dead.letter written" eval '[ ! -e /nonexistent/dead.letter ]'
# nobody cannot remove or replace somebody else's file (sticky directory)

# A forged -f by an unprivileged user, and a trusted one by root.
printf 'Subject: forged\n\nforged body\n' | as_nobody sendmail -f ceo@local.test bob@local.test 2>"$T/err"
rc1=$?
printf 'Subject: root -f\n\nroot body\n' | sendmail -f alice@local.test bob@local.test 2>>"$T/err"
rc2=$?
check sendmail-down-f "rc=$rc1/$rc2 $(cat "$T/err")" eval '[ $rc1 = 0 ] && [ $rc2 = 0 ]'
# A trusted user (trusted_users daemon) may set -f without a warning.
printf 'Subject: daemon -f\n\ndaemon body\n' |
    runuser -u daemon -- env PATH="$PATH" TERN_CONFIG="$TERN_CONFIG" HOME=/nonexistent sendmail -f backup@local.test bob@local.test 2>>"$T/err"
# A recipient the server will refuse: the sender (alice, root's -f) is told.
printf 'Subject: to nobody known\n\nlost?\n' | sendmail -f alice@local.test nosuch@local.test 2>>"$T/err"

# Garbage, a symbolic link and a hard link, left by nobody.
as_nobody sh -c "printf 'garbage\n' >'$T/spool/maildrop/0000000001.garbage'"
as_nobody sh -c "printf 'tern-maildrop 1\nsender a@b\nrcpt alice@local.test\nsize 99\n\nshort\n' >'$T/spool/maildrop/0000000002.truncated'"
as_nobody ln -s /etc/passwd "$T/spool/maildrop/0000000003.symlink"
check maildrop-garbage-planted "$(ls -la "$T/spool/maildrop")" eval '[ "$(drops)" = 7 ]'

# ---- mailq while the pickup cannot submit (the spool is "full": 452) -----------------------
write_conf "$T/full.conf" 2525 "min_free_space 1000G"
start_tern "$T/full.conf" || { fail maildrop-start-full "$(tail -c 800 "$T/tern.log")"; exit 3; }
wait_for 20 has "$T/tern.log" "moved to .*0000000003.symlink"
tern queue >"$T/list" 2>&1; cp "$T/list" "$T/list.keep"
check mailq-waiting-for-pickup "$(cat "$T/list")" \
    eval 'has "$T/list" "<nobody@local.test>  waiting for pickup (uid $nobody_uid)" &&
          has "$T/list" "<alice@local.test> waiting for pickup" &&
          has "$T/list" "in the maildrop waiting for pickup"'
wait_for 20 has "$T/tern.log" "pickup: .*trying again later"  # the first 452 may come after mailq
check maildrop-kept-on-452 "$(grep pickup "$T/tern.log" | tail -3)" \
    eval 'has "$T/tern.log" "pickup: .*trying again later" && [ -n "$(find "$T/spool/maildrop" -maxdepth 1 -type f -name "*.*" ! -name ".*" ! -name "00000000*")" ]'
stop_tern

# ---- start tern: everything is picked up -------------------------------------------------
a0=$(inbox alice) b0=$(inbox bob)
start_tern "$T/tern.conf" || { fail maildrop-start-2 "$(tail -c 800 "$T/tern.log")"; exit 3; }
wait_for 30 eval '[ "$(inbox alice)" -ge $((a0 + 2)) ] && [ "$(inbox bob)" -ge $((b0 + 3)) ]'
m=$(grep -l "^Subject: dropped while down" "$T"/mail/local.test/alice/new/* 2>/dev/null | head -1)
check pickup-delivered "$(tail -c 600 "$T/tern.log")" eval '[ -n "$m" ]'
check pickup-sender "$(head -c 600 "$m")" \
    eval 'has "$m" "^Return-Path: <nobody@local.test>" && has "$m" "^From: nobody@local.test" &&
          has "$m" "tern pickup, from userid $nobody_uid" && hasnt "$m" "^X-Authentication-Warning"'
check pickup-content "$(tail -c 200 "$m")" eval 'has "$m" "^hello from the maildrop" && has "$m" "^after the dot"'
m=$(grep -l "^Subject: forged" "$T"/mail/local.test/bob/new/* 2>/dev/null | head -1)
check pickup-forged-f "$(head -c 800 "$m")" \
    eval '[ -n "$m" ] && has "$m" "^Return-Path: <ceo@local.test>" &&
          has "$m" "^X-Authentication-Warning: tern.local.test: nobody set sender to <ceo@local.test> using -f"'
m=$(grep -l "^Subject: root -f" "$T"/mail/local.test/bob/new/* 2>/dev/null | head -1)
check pickup-trusted-f "$(head -c 800 "$m")" \
    eval '[ -n "$m" ] && has "$m" "^Return-Path: <alice@local.test>" && hasnt "$m" "^X-Authentication-Warning" &&
          has "$m" "from userid 0)"'
m=$(grep -l "^Subject: daemon -f" "$T"/mail/local.test/bob/new/* 2>/dev/null | head -1)
check pickup-trusted-users "$(head -c 800 "$m")" \
    eval '[ -n "$m" ] && has "$m" "^Return-Path: <backup@local.test>" && hasnt "$m" "^X-Authentication-Warning" &&
          has "$m" "from userid $(id -u daemon))"'
m=$(grep -l "^Subject: Undelivered Mail Returned to Sender" "$T"/mail/local.test/alice/new/* 2>/dev/null | head -1)
check pickup-refused-told "$(grep pickup "$T/tern.log" | tail -5)" \
    eval '[ -n "$m" ] && has "$m" "nosuch@local.test" && has "$m" "^Subject: to nobody known" && has "$m" "^Return-Path: <>"'
check pickup-garbage-aside "$(ls -la "$T/spool/maildrop/corrupt")" \
    eval '[ -f "$T/spool/maildrop/corrupt/0000000001.garbage" ] && [ -f "$T/spool/maildrop/corrupt/0000000002.truncated" ] &&
          [ -L "$T/spool/maildrop/corrupt/0000000003.symlink" ] && has "$T/tern.log" "0000000001.garbage: malformed"'
wait_for 10 eval '[ "$(drops)" = 0 ]'
check pickup-drained "$(ls -la "$T/spool/maildrop")" eval '[ "$(drops)" = 0 ]'
n=$(grep -Hc "^Subject: dropped while down" "$T"/mail/local.test/alice/new/* | grep -c ':1$')
check pickup-once "delivered $n times" eval '[ "$n" = 1 ]'

# ---- pickup while tern runs: sendmail finds no server at down.conf's port ---------------------
a0=$(inbox alice)
printf 'To: alice@local.test\nSubject: while running\n\nlive pickup\n' |
    as_nobody sendmail -C "$T/down.conf" -t -i 2>"$T/err"
rc=$?
check sendmail-other-port "rc=$rc $(cat "$T/err")" eval '[ $rc = 0 ] && has "$T/err" "maildrop"'
wait_for 20 eval '[ "$(inbox alice)" -gt "$a0" ]'
m=$(grep -l "^Subject: while running" "$T"/mail/local.test/alice/new/* 2>/dev/null | head -1)
check pickup-while-running "$(tail -c 600 "$T/tern.log")" eval '[ -n "$m" ] && [ "$(drops)" = 0 ]'
# garbage while running: set aside, the server keeps working
as_nobody sh -c "printf 'tern-maildrop 1\nsender \nrcpt a b\nsize 0\n\n' >'$T/spool/maildrop/.tmp.x' &&
                 mv '$T/spool/maildrop/.tmp.x' '$T/spool/maildrop/0000000004.bad-rcpt'"
wait_for 20 test -f "$T/spool/maildrop/corrupt/0000000004.bad-rcpt"
check pickup-garbage-running "$(grep pickup "$T/tern.log" | tail -3)" \
    eval '[ -f "$T/spool/maildrop/corrupt/0000000004.bad-rcpt" ] && kill -0 $tern_pid'
printf 'Subject: still fine\n\nyes\n' | sendmail alice@local.test 2>"$T/err"
check server-still-fine "rc=$? $(cat "$T/err")" eval 'hasnt "$T/err" "maildrop"'

# ---- the server down and the maildrop unusable: dead.letter and 75 as before --------------
stop_tern
chmod 700 "$T/spool/maildrop"
mkdir -p "$T/home" && chown nobody "$T/home"
printf 'Subject: nowhere\n\nkept\n' |
    runuser -u nobody -- env PATH="$PATH" TERN_CONFIG="$TERN_CONFIG" HOME="$T/home" sendmail alice@local.test 2>"$T/err"
rc=$?
check sendmail-maildrop-unusable "rc=$rc $(cat "$T/err")" \
    eval '[ $rc = 75 ] && has "$T/err" "maildrop either" && has "$T/home/dead.letter" "^kept"'
chmod 1733 "$T/spool/maildrop"

[ "$failed" = 0 ] && exit 0
exit 3
