#!/bin/bash
# scenario.sh - the body of test_queue.sh, run inside its private network namespace (only
# loopback exists; /etc/resolv.conf names 127.0.0.53). Do not run it directly.
# Environment: Q_ROOT (repository), Q_TERN (tern binary), Q_KIT (testkit), Q_WORK (an empty
# work directory). Exit 0: all passed, 3: a check failed.
# shellcheck disable=SC2015,SC2317
set -u
T=$Q_WORK
kit=$Q_KIT
# pass, fail, check, wait_for, has, hasnt
# shellcheck source=tests/integration/scenario-lib.sh
. "$Q_ROOT/tests/integration/scenario-lib.sh"

# The commands as a user types them: tern, and the links make install creates.
mkdir -p "$T/bin" "$T/home" "$T/spool" "$T/mail" "$T/cap"
ln -s "$Q_TERN" "$T/bin/tern"
ln -s "$Q_TERN" "$T/bin/mailq"
ln -s "$Q_TERN" "$T/bin/sendmail"
export PATH="$T/bin:$PATH" HOME="$T/home" TERN_CONFIG="$T/tern.conf"
if id tern >/dev/null 2>&1; then user=tern; else user=nobody; fi

cat >"$T/tern.conf" <<EOF
hostname tern.local.test
user $user
listen 127.0.0.1:2525 smtp
local_domain local.test
mailbox alice@local.test postmaster@local.test
spool $T/spool
maildir $T/mail/%d/%u
workers 1
relay_networks 127.0.0.0/8 ::1/128
retry_schedule 1h
delay_warning 0
resolver 127.0.0.53
outbound_timeout_connect 5s
outbound_timeout_command 5s
log stderr
EOF
chown -R "$user" "$T/spool" "$T/mail"
inbox() { ls "$T/mail/local.test/alice/new" 2>/dev/null | wc -l; }
newest() { ls -t "$T"/mail/local.test/alice/new/* 2>/dev/null | head -1; }

# ---- the server is not running ----------------------------------------------------------
tern queue >"$T/out" 2>"$T/err"
rc=$?
check queue-not-running "rc=$rc $(cat "$T/err")" \
    eval '[ $rc = 1 ] && has "$T/err" "tern is not running (no control socket at $T/spool/control)"'
tern queue flush >"$T/out" 2>"$T/err"
rc=$?
check queue-flush-not-running "rc=$rc $(cat "$T/err")" eval '[ $rc = 1 ] && has "$T/err" "not running"'
mailq >"$T/out" 2>"$T/err"
rc=$?
check mailq-not-running "rc=$rc $(cat "$T/err")" eval '[ $rc = 1 ] && has "$T/err" "mailq: tern is not running"'
sendmail -bp >"$T/out" 2>"$T/err"
rc=$?
check sendmail-bp-not-running "rc=$rc $(cat "$T/err")" eval '[ $rc != 0 ] && has "$T/err" "not running"'
printf 'Subject: lost?\n\nnot lost\n' | sendmail alice@local.test >"$T/out" 2>"$T/err"
rc=$?
check sendmail-not-running "rc=$rc $(cat "$T/err")" \
    eval '[ $rc = 75 ] && has "$T/err" "is \`tern serve\` running" && has "$T/err" "NOT sent"'
check sendmail-dead-letter "$(cat "$T/err")" \
    eval 'has "$T/home/dead.letter" "^not lost$" && has "$T/home/dead.letter" "^Subject: lost?"'
rm -f "$T/home/dead.letter"

# ---- DNS, the remote MX (451 to every RCPT), tern -----------------------------------------
"$Q_ROOT/tests/lib/dns-server" 127.0.0.53 53 "$Q_ROOT/tests/integration/queue/q.test.zone" \
    2>"$T/dns.log" &
"$kit/wait-listen" -u 127.0.0.53 53 || { fail queue-dns "$(head -c 400 "$T/dns.log")"; exit 3; }
declare -A cap_pid
capture() { # NAME ADDR [smtp-capture options]
    local name=$1 addr=$2
    shift 2
    mkdir -p "$T/cap/$name"
    "$py" "$kit/smtp-capture" -l "$addr:25" -o "$T/cap/$name" --hostname "$name.q.test" "$@" \
        >>"$T/cap-$name.log" 2>&1 &
    cap_pid[$name]=$!
    "$kit/wait-listen" "$addr" 25 || fail "queue-capture-$name" "did not start"
}
capture slow 127.0.0.41 --fail "rcpt:451:4.7.1 Greylisted, try again"
capture other 127.0.0.42 --fail "rcpt:451:4.3.2 Busy"

tern serve -c "$T/tern.conf" >"$T/tern.log" 2>&1 &
tern_pid=$!
if ! "$kit/wait-listen" 127.0.0.1 2525 || ! wait_for 20 test -S "$T/spool/control"; then
    fail queue-tern-start "$(tail -c 800 "$T/tern.log")"
    exit 3
fi
check control-socket-mode "$(stat -c '%a %U' "$T/spool/control")" \
    eval '[ "$(stat -c %a "$T/spool/control")" = 660 ] && [ "$(stat -c %U "$T/spool/control")" = "$user" ]'

tern queue >"$T/out" 2>&1
check queue-empty "$(cat "$T/out")" eval '[ "$(cat "$T/out")" = "Mail queue is empty" ]'

# ---- sendmail as cron and PHP's mail() call it: sendmail -t -i, message on stdin --------------
n0=$(inbox)
printf 'To: Bob <bob@slow.q.test>, alice@local.test\nCc: "Carol, C." <carol@other.q.test>\nBcc: hidden@slow.q.test\nSubject: cron output\n\nfirst line\n.\nafter the dot\n' |
    sendmail -t -i -v 2>"$T/err"
rc=$?
qid1=$(sed -n 's/.*queued as \([0-9A-Z]*\).*/\1/p' "$T/err")
check sendmail-t-i "rc=$rc $(cat "$T/err")" eval '[ $rc = 0 ] && [ -n "$qid1" ]'
wait_for 20 eval '[ "$(inbox)" -gt "$n0" ]'
m=$(newest)
check sendmail-t-local "no message for alice" eval '[ -n "$m" ] && has "$m" "^Subject: cron output"'
check sendmail-t-bcc-removed "$(head -c 600 "$m")" eval 'hasnt "$m" "^Bcc:" && hasnt "$m" "hidden@"'
check sendmail-i-dot-kept "$(tail -c 200 "$m")" eval 'has "$m" "^after the dot" && has "$m" "^\.\$"'
check sendmail-adds-headers "$(head -c 800 "$m")" \
    eval 'has "$m" "^Date: " && has "$m" "^Message-ID: <.*@tern.local.test>" && has "$m" "^From: root@local.test"'
check sendmail-t-envelope "$(head -c 300 "$m")" eval 'has "$m" "^Return-Path: <root@local.test>"'

# The remote recipients stay deferred with the MX's 451.
deferred() { tern queue show "$1" | grep -q "Recipient: <$2> pending, $3 attempt"; }
wait_for 30 deferred "$qid1" bob@slow.q.test 1
wait_for 30 deferred "$qid1" carol@other.q.test 1
wait_for 30 deferred "$qid1" hidden@slow.q.test 1
tern queue list >"$T/list" 2>&1
rc=$?
check queue-list "rc=$rc $(cat "$T/list")" eval '[ $rc = 0 ] && has "$T/list" "^$qid1 " &&
    has "$T/list" "<root@local.test>" &&
    has "$T/list" "<bob@slow.q.test> deferred (1 attempt, next try in .*): .*451.*4.7.1 Greylisted" &&
    has "$T/list" "<carol@other.q.test> deferred (1 attempt, .*4.3.2 Busy" &&
    has "$T/list" "<alice@local.test> delivered" && has "$T/list" "^-- 1 message (0 held), 3 recipients pending"'
check queue-list-size-age "$(grep "^$qid1" "$T/list")" \
    eval 'grep "^$qid1" "$T/list" | grep -Eq "^$qid1 +[0-9]+ +[0-9]+[smhd]"'
mailq >"$T/out" 2>&1
check mailq-lists "$(cat "$T/out")" eval 'cmp -s "$T/out" "$T/list" || has "$T/out" "^$qid1 "'
sendmail -bp >"$T/out" 2>&1
check sendmail-bp "$(cat "$T/out")" eval 'has "$T/out" "^$qid1 " && has "$T/out" "bob@slow.q.test"'
tern queue list -c "$T/tern.conf" >"$T/out" 2>&1
check queue-config-option "$(cat "$T/out")" eval 'has "$T/out" "^$qid1 "'
TERN_CONFIG= tern queue -c "$T/tern.conf" >"$T/out" 2>&1
check queue-config-option-first "$(cat "$T/out")" eval 'has "$T/out" "^$qid1 "'

# ---- show -----------------------------------------------------------------------------------
tern queue show "$qid1" >"$T/out" 2>&1
rc=$?
check queue-show "rc=$rc $(head -c 800 "$T/out")" eval '[ $rc = 0 ] && has "$T/out" "^Queue-ID: $qid1" &&
    has "$T/out" "^State: queued" && has "$T/out" "^Sender: <root@local.test>" &&
    has "$T/out" "^Recipient: <bob@slow.q.test> pending, 1 attempt, next try in" &&
    has "$T/out" "^Subject: cron output" && has "$T/out" "^after the dot" && has "$T/out" "^\.\$"'
tern queue show 0NOSUCHMESSAGE0 >"$T/out" 2>"$T/err"
rc=$?
check queue-show-unknown "rc=$rc $(cat "$T/err")" eval '[ $rc = 1 ] && has "$T/err" "no message 0NOSUCHMESSAGE0"'
tern queue frobnicate >"$T/out" 2>"$T/err"
rc=$?
check queue-unknown-command "rc=$rc $(cat "$T/err")" eval '[ $rc = 2 ] && has "$T/err" "unknown command"'

# ---- flush by domain: only that domain's recipients are retried, at once (retry in 1 h) ------
tern queue flush @other.q.test >"$T/out" 2>&1
rc=$?
check queue-flush-domain "rc=$rc $(cat "$T/out")" eval '[ $rc = 0 ] && has "$T/out" "1 message scheduled"'
check queue-flush-domain-retried "$(tern queue show "$qid1" | grep Recipient)" \
    wait_for 30 deferred "$qid1" carol@other.q.test 2
check queue-flush-domain-only "$(tern queue show "$qid1" | grep Recipient)" deferred "$qid1" bob@slow.q.test 1
tern queue flush @nowhere.q.test >"$T/out" 2>&1
check queue-flush-domain-none "$(cat "$T/out")" has "$T/out" "0 messages scheduled"
sendmail -qRother.q.test >"$T/out" 2>&1
rc=$?
check sendmail-qR "rc=$rc $(cat "$T/out")" eval '[ $rc = 0 ] && has "$T/out" "1 message scheduled"'
check sendmail-qR-retried "$(tern queue show "$qid1" | grep Recipient)" wait_for 30 deferred "$qid1" carol@other.q.test 3
tern queue flush @.q.test >"$T/out" 2>&1
check queue-flush-subdomains "$(cat "$T/out")" has "$T/out" "1 message scheduled"
check queue-flush-subdomains-retried "$(tern queue show "$qid1" | grep Recipient)" \
    wait_for 30 deferred "$qid1" bob@slow.q.test 2

# ---- hold and release -------------------------------------------------------------------
tern queue hold "$qid1" >"$T/out" 2>&1
rc=$?
check queue-hold "rc=$rc $(cat "$T/out")" eval '[ $rc = 0 ] && [ -f "$T/spool/hold/$qid1" ] && [ ! -e "$T/spool/queue/$qid1" ]'
tern queue >"$T/out" 2>&1
check queue-list-held "$(cat "$T/out")" eval 'has "$T/out" "^$qid1 .*<root@local.test>  HELD" && has "$T/out" "(1 held)"'
tern queue show "$qid1" >"$T/out" 2>&1
check queue-show-held "$(head -3 "$T/out")" has "$T/out" "^State: held"
tern queue flush "$qid1" >"$T/out" 2>"$T/err"
rc=$?
check queue-flush-held-refused "rc=$rc $(cat "$T/err")" eval '[ $rc = 1 ] && has "$T/err" "is held; release it first"'
tern queue hold "$qid1" >"$T/out" 2>"$T/err"
rc=$?
check queue-hold-twice "rc=$rc $(cat "$T/err")" eval '[ $rc = 1 ] && has "$T/err" "already held"'
tern queue release "$qid1" >"$T/out" 2>&1
rc=$?
check queue-release "rc=$rc $(cat "$T/out")" eval '[ $rc = 0 ] && [ -f "$T/spool/queue/$qid1" ] && [ ! -e "$T/spool/hold/$qid1" ]'
check queue-release-retries "$(tern queue show "$qid1" | grep Recipient)" \
    wait_for 30 deferred "$qid1" bob@slow.q.test 3
tern queue release "$qid1" >"$T/out" 2>"$T/err"
rc=$?
check queue-release-not-held "rc=$rc $(cat "$T/err")" eval '[ $rc = 1 ] && has "$T/err" "is not held"'

# ---- sendmail flags ---------------------------------------------------------------------
# -f and -F: envelope sender and the From: header's name; recipients after --
n0=$(inbox)
printf 'Subject: with a name\n\nbody\n' | sendmail -f alice@local.test -F 'Cron "Daemon"' -- alice@local.test 2>"$T/err"
rc=$?
wait_for 20 eval '[ "$(inbox)" -gt "$n0" ]'
m=$(newest)
check sendmail-f "rc=$rc $(cat "$T/err") $(head -c 600 "$m")" eval '[ $rc = 0 ] && has "$m" "^Return-Path: <alice@local.test>"'
check sendmail-F "$(grep -i '^From:' "$m")" grep -qF 'From: "Cron \"Daemon\"" <alice@local.test>' "$m"
# Without -i a lone "." ends the message; no headers at all still makes a message.
n0=$(inbox)
printf 'just a body\n.\nnot part of it\n' | sendmail alice 2>"$T/err"
rc=$?
wait_for 20 eval '[ "$(inbox)" -gt "$n0" ]'
m=$(newest)
check sendmail-dot-ends "rc=$rc $(cat "$T/err")" eval '[ $rc = 0 ] && has "$m" "^just a body" && hasnt "$m" "not part of it"'
check sendmail-bare-name "$(head -c 300 "$m")" has "$m" "^Delivered-To: alice@local.test"
# Harmless flags sendmail programs pass are ignored (Postfix does the same).
n0=$(inbox)
printf 'Subject: flags\n\nx\n' | sendmail -oi -odi -oem -v -m -n -U -B8BITMIME -L tag -h 10 alice@local.test 2>"$T/err"
rc=$?
check sendmail-ignored-flags "rc=$rc $(cat "$T/err")" eval '[ $rc = 0 ] && wait_for 20 eval "[ \$(inbox) -gt $n0 ]"'
# -oi as the long form of -i
n0=$(inbox)
printf 'Subject: oi\n\nx\n.\ny-after\n' | sendmail -oi alice@local.test 2>"$T/err"
wait_for 20 eval '[ "$(inbox)" -gt "$n0" ]'
check sendmail-oi "$(tail -c 100 "$(newest)")" has "$(newest)" "^y-after"
# A recipient list in one argument, as some programs pass it; 8-bit content; a long line.
n0=$(inbox)
long=$(head -c 3000 /dev/zero | tr '\0' 'x')
printf 'Subject: caf\xc3\xa9\n\n%s\n' "$long" | sendmail 'Alice <alice@local.test>, postmaster' 2>"$T/err"
rc=$?
check sendmail-list-8bit-long "rc=$rc $(cat "$T/err")" eval '[ $rc = 0 ] && wait_for 20 eval "[ \$(inbox) -gt $n0 ]"'
m=$(newest)
check sendmail-long-line-split "$(awk '{ print length }' "$m" | sort -n | tail -1) octets" \
    eval 'awk "length > 1000 { exit 1 }" "$m" && [ "$(grep -v "^[A-Z]" "$m" | tr -cd x | wc -c)" = 3000 ] &&
    has "$m" "^Subject: caf"'
# PHP's mail(): sendmail -t -i with CRLF line ends and To: only in the headers.
n0=$(inbox)
printf 'To: alice@local.test\r\nSubject: php\r\nX-PHP-Originating-Script: 0:test.php\r\n\r\nHello from PHP\r\n' |
    sendmail -t -i 2>"$T/err"
rc=$?
wait_for 20 eval '[ "$(inbox)" -gt "$n0" ]'
check sendmail-php-crlf "rc=$rc $(cat "$T/err")" eval '[ $rc = 0 ] && has "$(newest)" "^Hello from PHP"'
# An unprivileged user (a web server's PHP, uid 54321 here) submits just as well.
n0=$(inbox)
printf 'To: alice@local.test\nSubject: from the web\n\nweb body\n' |
    setpriv --reuid 54321 --regid 54321 --clear-groups "$Q_TERN" sendmail -C "$T/tern.conf" -t -i 2>"$T/err"
rc=$?
wait_for 20 eval '[ "$(inbox)" -gt "$n0" ]'
check sendmail-unprivileged "rc=$rc $(cat "$T/err")" eval '[ $rc = 0 ] && has "$(newest)" "^web body"'
# Refused recipient: nothing is sent, non-zero exit, the message is kept in ~/dead.letter.
n0=$(inbox)
printf 'Subject: refused\n\nkeep me\n' | sendmail alice@local.test nobody@local.test 2>"$T/err"
rc=$?
check sendmail-refused "rc=$rc $(cat "$T/err")" eval '[ $rc = 67 ] && has "$T/err" "nobody@local.test> refused: 550" && has "$T/err" "NOT sent"'
check sendmail-refused-dead-letter "$(cat "$T/err")" has "$T/home/dead.letter" "^keep me"
check sendmail-refused-all-or-nothing "alice got it" eval '[ "$(inbox)" = "$n0" ]'
printf 'Subject: none\n\nx\n' | sendmail -t 2>"$T/err"
rc=$?
check sendmail-no-recipients "rc=$rc $(cat "$T/err")" eval '[ $rc = 64 ] && has "$T/err" "no recipients"'
sendmail -bd >"$T/out" 2>"$T/err"
rc=$?
check sendmail-unsupported-mode "rc=$rc $(cat "$T/err")" eval '[ $rc = 64 ] && has "$T/err" "not supported"'
# -bs: an SMTP session on stdin/stdout, through the server.
n0=$(inbox)
printf 'EHLO client.local.test\r\nMAIL FROM:<alice@local.test>\r\nRCPT TO:<alice@local.test>\r\nDATA\r\nSubject: over -bs\r\n\r\nbs body\r\n.\r\nQUIT\r\n' |
    sendmail -bs >"$T/out" 2>"$T/err"
rc=$?
check sendmail-bs "rc=$rc $(tr -d '\r' <"$T/out" | head -c 600)" eval '[ $rc = 0 ] && has "$T/out" "^220 " &&
    has "$T/out" "queued as" && has "$T/out" "^221"'
wait_for 20 eval '[ "$(inbox)" -gt "$n0" ]'
check sendmail-bs-delivered "no message" has "$(newest)" "^bs body"

# ---- flush one message, -qI, requeue after the MX recovers; -q -------------------------------
printf 'Subject: to dan\n\nfor dan\n' | sendmail -v -f alice@local.test dan@slow.q.test 2>"$T/err"
qid2=$(sed -n 's/.*queued as \([0-9A-Z]*\).*/\1/p' "$T/err")
wait_for 30 deferred "$qid2" dan@slow.q.test 1
printf 'Subject: to erin\n\nfor erin\n' | sendmail -v -f alice@local.test erin@other.q.test 2>"$T/err"
qid3=$(sed -n 's/.*queued as \([0-9A-Z]*\).*/\1/p' "$T/err")
wait_for 30 deferred "$qid3" erin@other.q.test 1
kill "${cap_pid[slow]}" "${cap_pid[other]}"
wait "${cap_pid[slow]}" "${cap_pid[other]}" 2>/dev/null
capture good 127.0.0.41
capture good2 127.0.0.42
delivered_to() { grep -rqs -- "$2" "$T/cap/$1"; }
tern queue flush "$qid2" >"$T/out" 2>&1
rc=$?
check queue-flush-id "rc=$rc $(cat "$T/out")" eval '[ $rc = 0 ] && has "$T/out" "1 message scheduled"'
check queue-flush-id-delivered "$(tail -5 "$T/tern.log")" wait_for 30 delivered_to good "for dan"
check queue-flush-id-removed "$(tern queue 2>&1)" wait_for 30 eval '! tern queue | grep -q "^$qid2 "'
check queue-flush-id-only "other messages were delivered too" \
    eval '! delivered_to good2 "for erin" && ! delivered_to good "cron output"'
sendmail -qI"$qid3" >"$T/out" 2>&1
rc=$?
check sendmail-qI "rc=$rc $(cat "$T/out")" eval '[ $rc = 0 ] && has "$T/out" "1 message scheduled"'
check sendmail-qI-delivered "$(tail -5 "$T/tern.log")" wait_for 30 delivered_to good2 "for erin"
check sendmail-qI-only "the cron message was delivered too" eval '! delivered_to good "cron output"'
# requeue: everything is read again and routed now (the cron message's retry is 1 h away).
tern queue requeue >"$T/out" 2>&1
rc=$?
check queue-requeue "rc=$rc $(cat "$T/out")" eval '[ $rc = 0 ] && has "$T/out" "queue re-read: 1 message" && has "$T/tern.log" "requeue: queue re-read"'
check queue-requeue-delivers "$(tern queue 2>&1 | head -5)" wait_for 30 delivered_to good "cron output"
check queue-requeue-bcc "hidden@ not delivered" wait_for 30 eval 'grep -rqs "hidden@slow.q.test" "$T/cap/good"'
check queue-empty-again "$(tern queue 2>&1 | head -5)" wait_for 30 eval '[ "$(tern queue)" = "Mail queue is empty" ]'

# delete: a message deferred (the MX answers 451 again) disappears without a bounce.
kill "${cap_pid[good]}"
wait "${cap_pid[good]}" 2>/dev/null
capture slow2 127.0.0.41 --fail "rcpt:451:4.7.1 Greylisted, try again"
printf 'Subject: q\n\nx\n' | sendmail -v alice@local.test ivan@slow.q.test 2>"$T/err"
qid5=$(sed -n 's/.*queued as \([0-9A-Z]*\).*/\1/p' "$T/err")
wait_for 30 deferred "$qid5" ivan@slow.q.test 1
sendmail -q >"$T/out" 2>&1
rc=$?
check sendmail-q "rc=$rc $(cat "$T/out")" eval '[ $rc = 0 ] && has "$T/out" "1 message scheduled"'
check sendmail-q-retried "$(tern queue show "$qid5" | grep Recipient)" wait_for 30 deferred "$qid5" ivan@slow.q.test 2
tern queue delete "$qid5" >/dev/null 2>&1
printf 'Subject: delete me\n\nx\n' | sendmail -v -f alice@local.test frank@slow.q.test 2>"$T/err"
qid4=$(sed -n 's/.*queued as \([0-9A-Z]*\).*/\1/p' "$T/err")
wait_for 30 deferred "$qid4" frank@slow.q.test 1
n0=$(inbox)
tern queue delete "$qid4" >"$T/out" 2>&1
rc=$?
check queue-delete "rc=$rc $(cat "$T/out")" eval '[ $rc = 0 ] && has "$T/out" "1 message deleted" &&
    [ ! -e "$T/spool/queue/$qid4" ] && [ ! -e "$T/spool/state/$qid4" ]'
check queue-delete-logged "$(grep "$qid4" "$T/tern.log" | tail -2)" has "$T/tern.log" "deleted qid=$qid4 from=<alice@local.test>"
tern queue delete "$qid4" >"$T/out" 2>"$T/err"
rc=$?
check queue-delete-unknown "rc=$rc $(cat "$T/err")" eval '[ $rc = 1 ] && has "$T/err" "no message $qid4"'
for s in one two; do
    printf 'Subject: %s\n\nx\n' "$s" | sendmail -f alice@local.test "$s@slow.q.test" 2>/dev/null
done
wait_for 30 eval '[ "$(tern queue | grep -c "deferred (1 attempt")" = 2 ]'
first=$(tern queue | awk '/^[0-9A-Z]+ / { print $1; exit }')
tern queue hold "$first" >/dev/null 2>&1
tern queue delete ALL >"$T/out" 2>&1
rc=$?
check queue-delete-all "rc=$rc $(cat "$T/out")" eval '[ $rc = 0 ] && has "$T/out" "2 messages deleted" &&
    [ "$(tern queue)" = "Mail queue is empty" ] && [ -z "$(ls "$T/spool/hold")" ]'
sleep 1 # a bounce, if one were (wrongly) queued, would reach alice's Maildir now
check queue-delete-no-bounce "$(inbox) vs $n0" eval '[ "$(inbox)" = "$n0" ]'

# ---- DSN flags: -N, -R, -V reach the envelope -------------------------------------------------
printf 'Subject: dsn\n\nx\n' | sendmail -v -N failure,delay -R hdrs -V env-42 -f alice@local.test jo@slow.q.test 2>"$T/err"
rc=$?
qid7=$(sed -n 's/.*queued as \([0-9A-Z]*\).*/\1/p' "$T/err")
tern queue show "$qid7" >"$T/out" 2>&1
check sendmail-N-R-V "rc=$rc $(head -12 "$T/out")" eval '[ $rc = 0 ] && has "$T/out" "^Envelope-ID: env-42" &&
    has "$T/out" "^Return: headers only" && has "$T/out" "^Recipient: <jo@slow.q.test> pending, [0-9]* attempts\?, notify failure delay"'
tern queue delete "$qid7" >/dev/null 2>&1

# ---- hold and delete while a delivery is in progress: done when the attempt ends ------------
capture busy 127.0.0.43 --greeting-delay 30
being_delivered() { tern queue show "$1" 2>/dev/null | grep -q "^State: being delivered"; }
printf 'Subject: busy\n\nx\n' | sendmail -v -f alice@local.test gus@busy.q.test 2>"$T/err"
qid6=$(sed -n 's/.*queued as \([0-9A-Z]*\).*/\1/p' "$T/err")
wait_for 20 being_delivered "$qid6"
tern queue hold "$qid6" >"$T/out" 2>&1
rc=$?
check queue-hold-busy "rc=$rc $(cat "$T/out")" eval '[ $rc = 0 ] && has "$T/out" "being delivered; held when this attempt ends"'
check queue-hold-busy-done "$(tail -3 "$T/tern.log")" wait_for 30 test -f "$T/spool/hold/$qid6"
tern queue release "$qid6" >/dev/null 2>&1
wait_for 20 being_delivered "$qid6"
tern queue delete "$qid6" >"$T/out" 2>&1
rc=$?
check queue-delete-busy "rc=$rc $(cat "$T/out")" eval '[ $rc = 0 ] && has "$T/out" "being delivered; deleted when this attempt ends"'
check queue-delete-busy-done "$(tail -3 "$T/tern.log")" \
    wait_for 30 eval '[ ! -e "$T/spool/queue/$qid6" ] && [ ! -e "$T/spool/state/$qid6" ] && has "$T/tern.log" "deleted qid=$qid6"'

# ---- a reload (SIGHUP) starts a new queue manager, which serves the socket again -----------
old_qmgr=$(grep -o 'queue manager started pid=[0-9]*' "$T/tern.log" | tail -1)
new_qmgr() { [ "$(grep -o 'queue manager started pid=[0-9]*' "$T/tern.log" | tail -1)" != "$old_qmgr" ]; }
queue_empty() { [ "$(tern queue)" = "Mail queue is empty" ]; }
kill -HUP "$tern_pid"
check queue-after-reload "$(tern queue 2>&1 | head -3)" eval 'wait_for 30 new_qmgr && wait_for 30 queue_empty'

# ---- access: only root and the mail user ----------------------------------------------------
setpriv --reuid 54321 --regid 54321 --clear-groups "$Q_TERN" queue -c "$T/tern.conf" >"$T/out" 2>"$T/err"
rc=$?
check queue-permission-denied "rc=$rc $(cat "$T/err")" eval '[ $rc = 1 ] && has "$T/err" "ermission denied"'

# ---- stop ---------------------------------------------------------------------------------
kill -TERM "$tern_pid"
wait_for 20 eval '! kill -0 "$tern_pid"'
check control-socket-removed "still there" eval '[ ! -e "$T/spool/control" ]'
tern queue >"$T/out" 2>"$T/err"
rc=$?
check queue-after-stop "rc=$rc $(cat "$T/err")" eval '[ $rc = 1 ] && has "$T/err" "not running"'
for p in "${cap_pid[@]}"; do kill "$p" 2>/dev/null; done
[ "$failed" = 0 ] && exit 0
exit 3
