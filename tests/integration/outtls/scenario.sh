#!/bin/bash
# scenario.sh - the body of test_outbound_tls.sh, run inside its private network namespace
# (only loopback exists; /etc/resolv.conf names 127.0.0.53). Do not run it directly.
# Environment: OB_ROOT (repository), OB_TERN (tern binary), OB_INJECT (outbound_inject),
# OB_KIT (testkit), OB_WORK (an empty work directory). Exit 0: all passed, 3: a check failed.
# shellcheck disable=SC2015,SC2317,SC2012
set -u
T=$OB_WORK
kit=$OB_KIT
tern_bin=$OB_TERN prefix=outtls
# shellcheck source=tests/integration/scenario-lib.sh
. "$OB_ROOT/tests/integration/scenario-lib.sh"

if id tern >/dev/null 2>&1; then user=tern; else user=nobody; fi
mkdir -p "$T/spool" "$T/mail" "$T/cap"

# ---- DNS ------------------------------------------------------------------------------------
"$OB_ROOT/tests/lib/dns-server" 127.0.0.53 53 "$OB_ROOT/tests/integration/outtls/tlsp.test.zone" \
    2>"$T/dns.log" &
if ! "$kit/wait-listen" -u 127.0.0.53 53; then
    fail outtls-dns "the DNS server did not start: $(head -c 500 "$T/dns.log")"
    exit 3
fi

# ---- certificates: CA "a" is trusted by tern, CA "b" is not ----------------------------------
mk() { # DIR CA-DIR NAME...: a leaf signed by the CA kept in CA-DIR
    local dir=$1 ca=$2
    shift 2
    mkdir -p "$T/tls/$dir"
    [ "$dir" = "$ca" ] || cp "$T/tls/$ca/ca.crt" "$T/tls/$ca/ca.key" "$T/tls/$dir/"
    "$kit/mkcerts" "$T/tls/$dir" "$@" >/dev/null 2>&1 || fail outtls-certs "mkcerts $dir failed"
}
mk good good mx-good.tlsp.test
mk wrong good other-host.tlsp.test
mk nexthop good vnexthop.tlsp.test
mk untrusted untrusted mx-untrusted.tlsp.test
cmp -s "$T/tls/good/ca.crt" "$T/tls/untrusted/ca.crt" && fail outtls-certs "one CA for both"

# ---- remote servers ---------------------------------------------------------------------------
tls_of() { echo --tls-cert "$T/tls/$1/server-chain.crt" --tls-key "$T/tls/$1/server.key"; }
# shellcheck disable=SC2046  # tls_of gives several words
{
    capture good 127.0.0.41 25 $(tls_of good)
    capture untrusted 127.0.0.42 25 $(tls_of untrusted)
    capture wrong 127.0.0.43 25 $(tls_of wrong)
    capture nexthop 127.0.0.44 25 $(tls_of nexthop)
}
capture plain 127.0.0.45 25
capture reject 127.0.0.46 25 --fail "rcpt:550:5.1.1 no such user here"

# ---- tern -------------------------------------------------------------------------------------
# write_conf [extra lines]: MX routes use the global level, verify; transports their own
write_conf() {
    cat >"$T/tern.conf" <<CONF
hostname tern.local.test
user $user
listen 127.0.0.1:2525 smtp
local_domain local.test
mailbox alice@local.test postmaster@local.test
spool $T/spool
maildir $T/mail/%d/%u
workers 1
retry_schedule 1s 1s 2s
delay_warning 0
queue_lifetime 1h
resolver 127.0.0.53
outbound_idle 1s
outbound_timeout_connect 5s
outbound_timeout_command 5s
outbound_tls verify
outbound_tls_ca_file $T/tls/good/ca.crt
transport enc-any.tlsp.test mx-untrusted.tlsp.test starttls=encrypt
transport enc-plain.tlsp.test mx-plain.tlsp.test starttls=encrypt
transport may-plain.tlsp.test mx-plain.tlsp.test starttls=may
transport none-good.tlsp.test mx-good.tlsp.test starttls=none
transport rej.tlsp.test mx-reject.tlsp.test starttls=may
log stderr
log_level debug
$1
CONF
}
write_conf ""
chmod 755 "$T" "$T/tls" "$T/tls/good"
chmod 644 "$T/tls/good/ca.crt"
chown -R "$user" "$T/spool" "$T/mail"
start_tern

inject() { # SUBJECT [outbound_inject options...]: queue a message; prints the queue ID
    local subj=$1
    shift
    printf 'From: alice@local.test\nTo: someone\nSubject: %s\n\nHello %s.\n' "$subj" "$subj" |
        "$OB_INJECT" -s "$T/spool" "$@"
}
queue_empty() { [ -z "$(ls -A "$T/spool/queue")" ]; }

# sent_ok NAME CAPTURE RCPT QID TLS-PATTERN: delivered to CAPTURE, logged with tls=...
sent_ok() {
    local name=$1 cap=$2 rcpt=$3 q=$4 want=$5
    if ! wait_for 20 has_json "$cap" "\"$rcpt\""; then
        fail "$name" "not delivered: $(grep "qid=$q" "$T/tern.log" | tail -3)"
        return
    fi
    local j line
    j=$(json_with "$cap" "\"$rcpt\"")
    wait_for 10 logged "delivered qid=$q" "status=sent"
    line=$(grep "delivered qid=$q to=<$rcpt>" "$T/tern.log" | head -1)
    if [ "$want" = none ]; then
        grep -q '"tls": null' "$j" && [[ $line == *" tls=none "* ]] && pass "$name" ||
            fail "$name" "expected clear text and tls=none: $(grep '"tls"' "$j") / $line"
    else
        ! grep -q '"tls": null' "$j" && [[ $line =~ \ tls=TLSv1\.[23]/[^\ ]+/$want\  ]] &&
            pass "$name" || fail "$name" "expected TLS and tls=.../$want: $(grep '"tls"' "$j") / $line"
    fi
}
# deferred_ok NAME CAPTURE RCPT QID DSN REASON: deferred with DSN and REASON logged; the
# server never got the message, and it stays queued
deferred_ok() {
    local name=$1 cap=$2 rcpt=$3 q=$4 dsn=$5 why=$6
    if ! wait_for 20 logged "deferred qid=$q to=<$rcpt>" "dsn=$dsn"; then
        fail "$name" "no deferral with dsn=$dsn: $(grep "qid=$q" "$T/tern.log" | tail -3)"
        return
    fi
    # a second attempt, so a fallback to clear text would have happened by now
    wait_for 20 eval '[ "$(grep -c "deferred qid=$q to=<$rcpt>" "$T/tern.log")" -ge 2 ]'
    if has_json "$cap" "\"$rcpt\""; then
        fail "$name" "deferred, but the server got the message anyway"
    elif ! grep -qF -- "$why" "$T/tern.log"; then
        fail "$name" "the reason '$why' is not logged: $(grep "qid=$q" "$T/tern.log" | tail -2)"
    elif [ ! -e "$T/spool/queue/$q" ]; then
        fail "$name" "the message left the queue"
    else
        pass "$name"
    fi
}

# ---- 1. TLS levels ----------------------------------------------------------------------------
q_good=$(inject good -f alice@local.test -t ann@vgood.tlsp.test)
q_untr=$(inject untrusted -f alice@local.test -t bea@vuntrusted.tlsp.test)
q_wrong=$(inject wrong -f alice@local.test -t cid@vwrong.tlsp.test)
q_next=$(inject nexthop -f alice@local.test -t dan@vnexthop.tlsp.test)
q_encp=$(inject encplain -f alice@local.test -t eve@enc-plain.tlsp.test)
q_enca=$(inject encany -f alice@local.test -t fay@enc-any.tlsp.test)
q_may=$(inject mayplain -f alice@local.test -t gus@may-plain.tlsp.test)
q_none=$(inject none -f alice@local.test -t hal@none-good.tlsp.test)

sent_ok outtls-verify-trusted-ca good ann@vgood.tlsp.test "$q_good" verified
deferred_ok outtls-verify-untrusted-deferred untrusted bea@vuntrusted.tlsp.test "$q_untr" 4.7.5 \
    "certificate of mx-untrusted.tlsp.test[127.0.0.42]:25 not verified: self-signed certificate in certificate chain"
deferred_ok outtls-verify-wrong-name-deferred wrong cid@vwrong.tlsp.test "$q_wrong" 4.7.5 \
    "certificate of mx-wrong.tlsp.test[127.0.0.43]:25 not verified: hostname mismatch"
sent_ok outtls-verify-nexthop-name nexthop dan@vnexthop.tlsp.test "$q_next" verified
deferred_ok outtls-encrypt-no-starttls-deferred plain eve@enc-plain.tlsp.test "$q_encp" 4.7.4 \
    "4.7.4 TLS is required but the server does not offer STARTTLS"
sent_ok outtls-encrypt-any-certificate untrusted fay@enc-any.tlsp.test "$q_enca" unverified
sent_ok outtls-may-clear-text plain gus@may-plain.tlsp.test "$q_may" none
sent_ok outtls-none-no-starttls good hal@none-good.tlsp.test "$q_none" none

# The deferred messages would wait for an hour: they go, so the queue can empty below.
stop_tern
for q in "$q_untr" "$q_wrong" "$q_encp"; do rm -f "$T/spool/queue/$q" "$T/spool/state/$q"*; done
start_tern

# ---- 2. the double bounce -------------------------------------------------------------------
pm=$T/mail/local.test/postmaster/new
pm_with() { mail_in "$pm" "$@"; } # the postmaster's message containing every string
# The message bounces (550), and its bounce to a sender the same server refuses bounces too.
q_db=$(inject doublebounce -f bob@rej.tlsp.test -t ida@rej.tlsp.test)
if wait_for 30 pm_with "Subject: Undeliverable Delivery Notification (double bounce)" \
        "Final-Recipient: rfc822; bob@rej.tlsp.test" "ida@rej.tlsp.test" >/dev/null; then
    f=$(pm_with "Subject: Undeliverable Delivery Notification (double bounce)" \
        "Final-Recipient: rfc822; bob@rej.tlsp.test")
    if grep -q "^Return-Path: <>" "$f" 2>/dev/null || ! grep -q "^Return-Path:" "$f"; then
        pass outtls-double-bounce-to-postmaster
    else
        fail outtls-double-bounce-to-postmaster "the notice is not from <>: $(grep ^Return-Path "$f")"
    fi
else
    fail outtls-double-bounce-to-postmaster "no notice for the postmaster: $(grep -E "dsn|double" "$T/tern.log" | tail -4)"
fi
# once: when the queue is empty, one bounce and one double bounce were made, nothing more
wait_for 30 queue_empty
nb=$(grep -c "dsn qid=$q_db kind=failure to=<bob@rej.tlsp.test>" "$T/tern.log")
nd=$(grep -c "kind=double-bounce to=<postmaster@local.test>" "$T/tern.log")
[ "$nb" = 1 ] && [ "$nd" = 1 ] && queue_empty && pass outtls-double-bounce-once ||
    fail outtls-double-bounce-once "bounces $nb, double bounces $nd, queue: $(ls "$T/spool/queue")"

# A notice that fails in turn (the postmaster's address is refused) is only logged, once.
stop_tern
write_conf "double_bounce_recipient pm@rej.tlsp.test"
start_tern
q_loop=$(inject loop -f "" -t jo@rej.tlsp.test)
if wait_for 30 logged "double-bounce qid=" "dropped: a double-bounce notice is never reported again" &&
    wait_for 30 queue_empty; then
    nd=$(grep -c "kind=double-bounce to=<pm@rej.tlsp.test>" "$T/tern.log")
    nx=$(grep -c "dropped: a double-bounce notice is never reported again" "$T/tern.log")
    first=$(grep "dsn qid=$q_loop kind=double-bounce to=<pm@rej.tlsp.test>" "$T/tern.log" | head -1)
    [ "$nd" = 1 ] && [ "$nx" = 1 ] && [ -n "$first" ] && pass outtls-double-bounce-no-loop ||
        fail outtls-double-bounce-no-loop "notices $nd, drops $nx: $(grep double "$T/tern.log" | tail -4)"
else
    fail outtls-double-bounce-no-loop "no drop logged or the queue never emptied: $(grep -E "double|dsn" "$T/tern.log" | tail -4)"
fi

# double_bounce_recipient none: logged and dropped
stop_tern
write_conf "double_bounce_recipient none"
start_tern
q_none2=$(inject dropped -f "" -t kim@rej.tlsp.test)
if wait_for 30 logged "double-bounce qid=$q_none2" "dropped: no double_bounce_recipient" &&
    wait_for 30 queue_empty; then
    ! grep -q "dsn qid=$q_none2" "$T/tern.log" && pass outtls-double-bounce-none ||
        fail outtls-double-bounce-none "a report was queued anyway"
else
    fail outtls-double-bounce-none "no drop logged: $(grep "qid=$q_none2" "$T/tern.log" | tail -3)"
fi
stop_tern

[ "$failed" = 0 ] && exit 0
exit 3
