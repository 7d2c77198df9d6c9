#!/bin/bash
# scenario.sh - the body of test_outbound.sh, run inside its private network namespace
# (only loopback exists; /etc/resolv.conf names 127.0.0.53). Do not run it directly.
# Environment: OB_ROOT (repository), OB_TERN (tern binary), OB_INJECT (outbound_inject),
# OB_KIT (testkit), OB_WORK (an empty work directory). Exit 0: all passed, 3: a check failed.
# "check && pass NAME || fail NAME ...": pass only echoes, so this is an if/else.
# shellcheck disable=SC2015,SC2317,SC2012
set -u
T=$OB_WORK
kit=$OB_KIT
tern_bin=$OB_TERN prefix=outbound
# shellcheck source=tests/integration/scenario-lib.sh
. "$OB_ROOT/tests/integration/scenario-lib.sh"

# ---- the user tern runs as, and the tree it owns ----------------------------------------
if id tern >/dev/null 2>&1; then user=tern; else user=nobody; fi
mkdir -p "$T/spool" "$T/mail" "$T/cap" "$T/tls"
printf 'secret\n' >"$T/pass"
chmod 600 "$T/pass"

# ---- DNS ------------------------------------------------------------------------------------
"$OB_ROOT/tests/lib/dns-server" 127.0.0.53 53 "$OB_ROOT/tests/integration/outbound/out.test.zone" \
    2>"$T/dns.log" &
if ! "$kit/wait-listen" -u 127.0.0.53 53; then
    fail outbound-dns "the DNS server did not start: $(head -c 500 "$T/dns.log")"
    exit 3
fi

# ---- remote servers -------------------------------------------------------------------------
"$kit/mkcerts" "$T/tls" mx-tls.out.test relay.out.test 127.0.0.27 127.0.0.28 >/dev/null 2>&1 ||
    fail outbound-certs "mkcerts failed"
capture good 127.0.0.22 25
capture retry 127.0.0.23 25 --fail "rcpt:451:4.7.1 Greylisted, try again"
capture reject 127.0.0.24 25 --fail "rcpt:550:5.1.1 <frank@reject.out.test>: no such user"
capture nomx 127.0.0.25 25
capture v6 ::1 25
capture restart 127.0.0.26 25 --fail rcpt:451
capture tls 127.0.0.27 25 --chunking --tls-cert "$T/tls/server-chain.crt" --tls-key "$T/tls/server.key"
capture auth 127.0.0.28 587 --tls-cert "$T/tls/server-chain.crt" --tls-key "$T/tls/server.key" \
    --auth relayuser:secret --auth-required
capture slow 127.0.0.29 25 --greeting-delay 30
# without 8BITMIME (and SMTPUTF8): smtp-capture wrapped, see smtp-capture-no8bit
mkdir -p "$T/cap/nobit"
"$OB_ROOT/tests/integration/outbound/smtp-capture-no8bit" "$kit" -l 127.0.0.32:25 -o "$T/cap/nobit" \
    --hostname nobit.capture.test >>"$T/cap-nobit.log" 2>&1 &
cap_pid[nobit]=$!
"$kit/wait-listen" 127.0.0.32 25 || fail outbound-capture-nobit "did not start"

# ---- tern -------------------------------------------------------------------------------------
cat >"$T/tern.conf" <<EOF
hostname tern.local.test
user $user
listen 127.0.0.1:2525 smtp
local_domain local.test
mailbox alice@local.test postmaster@local.test
spool $T/spool
maildir $T/mail/%d/%u
workers 1
retry_schedule 1s 1s 2s
delay_warning 4s
queue_lifetime 1h
resolver 127.0.0.53
outbound_concurrency 1
outbound_idle 3s
outbound_timeout_connect 5s
outbound_timeout_command 3s
transport auth.out.test relay.out.test:587 starttls=required auth=relayuser:$T/pass
log stderr
log_level debug
EOF
chown -R "$user" "$T/spool" "$T/mail" "$T/pass"
start_tern

# inject SUBJECT [inject options...]: queue a message from alice; prints the queue ID. The
# message is kept as $T/msg-SUBJECT.txt.
inject() {
    local subj=$1
    shift
    printf 'From: alice@local.test\nTo: someone\nSubject: %s\nMessage-ID: <%s@local.test>\n\nHello %s.\n.a line that starts with a dot\nbye\n' \
        "$subj" "$subj" "$subj" >"$T/msg-$subj.txt"
    "$OB_INJECT" -s "$T/spool" "$@" <"$T/msg-$subj.txt"
}
mailbox=$T/mail/local.test/alice/new
mail_with() { mail_in "$mailbox" "$@"; } # alice's message containing every string given
jsons() { ls "$T/cap/$1"/*.json 2>/dev/null | wc -l; }
queued() { [ -e "$T/spool/queue/$1" ]; }

# ---- 1. MX fallback and several recipients in one transaction ---------------------------------
q1=$(inject fallback -f alice@local.test -t bob@multi.out.test -t carol@multi.out.test)
if wait_for 15 has_json good '"bob@multi.out.test"'; then
    j=$(json_with good '"bob@multi.out.test"')
    if grep -qF '"carol@multi.out.test"' "$j"; then
        pass outbound-several-rcpts-one-transaction
    else
        fail outbound-several-rcpts-one-transaction "bob and carol went in separate transactions"
    fi
    if grep -q "qid=$q1 .*127.0.0.21" "$T/tern.log" || grep -q "127.0.0.21\]:25.*refused" "$T/tern.log"; then
        pass outbound-mx-fallback
    else
        fail outbound-mx-fallback "delivered, but no sign of trying the dead primary 127.0.0.21 first"
    fi
else
    fail outbound-mx-fallback "nothing reached the second MX 127.0.0.22: $(grep "$q1" "$T/tern.log" | tail -3)"
fi
if wait_for 5 logged "qid=$q1" "status=sent" &&
   grep "delivered qid=$q1 to=<bob@multi.out.test>" "$T/tern.log" |
       grep -q 'relay=mx-good.out.test\[127.0.0.22\]:25 delay=[0-9]* attempts=1 dsn=2.0.0 status=sent tls=[^ ]* reply=250 '; then
    pass outbound-log-line
else
    fail outbound-log-line "no 'delivered qid=... relay=host[ip]:port delay= ... status=sent reply=250' line: $(grep "qid=$q1" "$T/tern.log" | tail -2)"
fi
wait_for 5 bash -c "! test -e '$T/spool/queue/$q1'" && pass outbound-removed-after-delivery ||
    fail outbound-removed-after-delivery "$q1 still queued"

# ---- 2. implicit MX, IPv6, success DSN ----------------------------------------------------------
q2=$(inject implicit -f alice@local.test -t dave@nomx.out.test -n SUCCESS,FAILURE -o "rfc822;Dave+2BX@nomx.out.test")
wait_for 15 has_json nomx '"dave@nomx.out.test"' && pass outbound-implicit-mx ||
    fail outbound-implicit-mx "nothing reached 127.0.0.25 (A record of a domain without MX): $(grep "qid=$q2" "$T/tern.log" | tail -2)"
if wait_for 10 mail_with "Action: relayed" "Final-Recipient: rfc822; dave@nomx.out.test" \
        "Original-Recipient: rfc822; Dave+X@nomx.out.test" >/dev/null; then
    pass outbound-success-dsn-relayed
else
    fail outbound-success-dsn-relayed "no 'relayed' DSN for NOTIFY=SUCCESS in alice's Maildir"
fi
q3=$(inject ipv6 -f alice@local.test -t erin@v6.out.test)
if wait_for 15 has_json v6 '"erin@v6.out.test"'; then
    grep -q '"::1"' "$(json_with v6 '"erin@v6.out.test"')" && pass outbound-ipv6 ||
        fail outbound-ipv6 "delivered but the peer was not ::1"
else
    fail outbound-ipv6 "nothing reached [::1]:25: $(grep "qid=$q3" "$T/tern.log" | tail -2)"
fi

# ---- 3. bounces: 5xx from the server, null MX, unknown domain -------------------------------------
q4=$(inject rejected -f alice@local.test -R full -E "env+2Bid-4" -t frank@reject.out.test \
    -o "rfc822;frank@reject.out.test")
if wait_for 15 mail_with "Final-Recipient: rfc822; frank@reject.out.test" >/dev/null; then
    b=$(mail_with "Final-Recipient: rfc822; frank@reject.out.test")
    miss=""
    for p in "Content-Type: multipart/report; report-type=delivery-status;" \
             "Content-Type: message/delivery-status" "Action: failed" "Status: 5.1.1" \
             "Remote-MTA: dns; mx-reject.out.test" \
             "Diagnostic-Code: smtp; 550 5.1.1 <frank@reject.out.test>: no such user" \
             "Original-Envelope-Id: env+id-4" "Original-Recipient: rfc822; frank@reject.out.test" \
             "Content-Type: message/rfc822" "Subject: rejected" "Hello rejected." \
             "Return-Path: <>" "To: <alice@local.test>"; do
        grep -qF -- "$p" "$b" || miss="$miss [$p]"
    done
    [ -z "$miss" ] && pass outbound-bounce-5xx || fail outbound-bounce-5xx "bounce lacks:$miss"
    logged "bounced qid=$q4" "status=bounced" && pass outbound-bounce-logged ||
        fail outbound-bounce-logged "no 'bounced qid=$q4 ... status=bounced' line"
else
    fail outbound-bounce-5xx "no bounce for frank@reject.out.test in alice's Maildir: $(grep "qid=$q4" "$T/tern.log" | tail -3)"
fi
q5=$(inject nullmx -f alice@local.test -t x@nullmx.out.test)
if wait_for 10 mail_with "Final-Recipient: rfc822; x@nullmx.out.test" "Status: 5.1.10" >/dev/null; then
    pass outbound-null-mx-bounce
else
    fail outbound-null-mx-bounce "no 5.1.10 bounce: $(grep "qid=$q5" "$T/tern.log" | tail -2)"
fi
[ "$(jsons nomx)" -le 1 ] || fail outbound-null-mx-bounce "something was delivered to the null MX domain"
q6=$(inject nxdomain -f alice@local.test -t y@nosuch.out.test -n FAILURE)
wait_for 10 mail_with "Final-Recipient: rfc822; y@nosuch.out.test" "Status: 5.1.2" >/dev/null &&
    pass outbound-nxdomain-bounce ||
    fail outbound-nxdomain-bounce "no 5.1.2 bounce: $(grep "qid=$q6" "$T/tern.log" | tail -2)"
q7=$(inject nullsender -f "" -t z@reject.out.test)
if wait_for 10 logged "bounced qid=$q7" "status=bounced"; then
    sleep 0.5
    # only the double bounce, to the postmaster (docs/delivery.md), never a report to <>
    if grep "dsn qid=$q7" "$T/tern.log" | grep -qv "kind=double-bounce to=<postmaster@local.test>"; then
        fail outbound-no-bounce-to-null-sender "a DSN was queued for a message from <>"
    else
        pass outbound-no-bounce-to-null-sender
    fi
else
    fail outbound-no-bounce-to-null-sender "the message from <> was not bounced: $(grep "qid=$q7" "$T/tern.log" | tail -2)"
fi

# a message older than queue_lifetime (1h): bounced with 4.4.7, never attempted
q15=$(inject expired -f alice@local.test -A 7200 -t old@retry.out.test)
if wait_for 10 mail_with "Final-Recipient: rfc822; old@retry.out.test" "Status: 4.4.7" \
        "Action: failed" >/dev/null; then
    logged "bounced qid=$q15" "reply=4.4.7 queue lifetime exceeded" && pass outbound-lifetime-bounce ||
        fail outbound-lifetime-bounce "no 'bounced ... 4.4.7' log line"
else
    fail outbound-lifetime-bounce "no 4.4.7 bounce: $(grep "qid=$q15" "$T/tern.log" | tail -2)"
fi

# ---- 4. STARTTLS + CHUNKING, AUTH over a transport override ---------------------------------------
q8=$(inject tls -f alice@local.test -t ivan@tls.out.test)
if wait_for 15 has_json tls '"ivan@tls.out.test"'; then
    j=$(json_with tls '"ivan@tls.out.test"')
    grep -q '"tls": null' "$j" && fail outbound-starttls "delivered without TLS" || pass outbound-starttls
    eml=${j%.json}.eml
    if tail -c +1 "$eml" | grep -qF ".a line that starts with a dot" &&
       cmp -s <(sed 's/$/\r/' "$T/msg-tls.txt") "$eml"; then
        pass outbound-chunking-content
    else
        fail outbound-chunking-content "the content at the server differs from what was queued"
    fi
    grep -q "BDAT" "$T/tern.log" && pass outbound-chunking-used || fail outbound-chunking-used "no BDAT in the dialogue"
else
    fail outbound-starttls "nothing reached mx-tls: $(grep "qid=$q8" "$T/tern.log" | tail -3)"
fi
q9=$(inject auth -f alice@local.test -t judy@auth.out.test)
if wait_for 15 has_json auth '"judy@auth.out.test"'; then
    j=$(json_with auth '"judy@auth.out.test"')
    grep -q '"auth": "relayuser"' "$j" && pass outbound-transport-auth ||
        fail outbound-transport-auth "accepted without AUTH as relayuser"
else
    fail outbound-transport-auth "nothing reached the relay 127.0.0.28:587: $(grep "qid=$q9" "$T/tern.log" | tail -3)"
fi

# ---- 5. connection reuse -------------------------------------------------------------------------
q10=$(inject reuse1 -f alice@local.test -t k1@reuse.out.test)
wait_for 10 has_json good '"k1@reuse.out.test"' ||
    fail outbound-connection-reuse "first message not delivered: $(grep "qid=$q10" "$T/tern.log" | tail -2)"
q11=$(inject reuse2 -f alice@local.test -t k2@reuse.out.test)
if wait_for 10 has_json good '"k2@reuse.out.test"'; then
    p1=$(grep -A3 '"peer"' "$(json_with good '"k1@reuse.out.test"')" | tr -d ' \n')
    p2=$(grep -A3 '"peer"' "$(json_with good '"k2@reuse.out.test"')" | tr -d ' \n')
    [ -n "$p1" ] && [ "$p1" = "$p2" ] && pass outbound-connection-reuse ||
        fail outbound-connection-reuse "two connections: $p1 / $p2"
else
    fail outbound-connection-reuse "second message not delivered: $(grep "qid=$q11" "$T/tern.log" | tail -2)"
fi

# ---- 5b. 8-bit content to a server without 8BITMIME: converted to quoted-printable --------------
# A multipart message with an 8-bit text part (trailing space, '=', a long line), a nested
# 8-bit part, a base64 part and a 7-bit part. The server refuses BODY= and 8-bit octets, so
# only a converted message can arrive; its decoded parts must equal the original's.
printf 'From: alice@local.test\nTo: nb@nobit.out.test\nSubject: eightbit\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="==b 1"\n\n--==b 1\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nCaf\303\251 cr\303\250me = br\303\273l\303\251e \n.a line that starts with a dot\n%s\303\251\n--==b 1\nContent-Type: multipart/alternative; boundary=inner\n\n--inner\nContent-Type: text/plain; charset=iso-8859-1\n\nna\357ve\n--inner--\n--==b 1\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\nAAECAwQF\n--==b 1\nContent-Type: text/plain\n\nseven bit\n--==b 1--\n' \
    "$(printf 'x%.0s' $(seq 1 200))" >"$T/msg-eightbit.txt"
q16=$("$OB_INJECT" -s "$T/spool" -B 8bitmime -f alice@local.test -t nb@nobit.out.test <"$T/msg-eightbit.txt")
if wait_for 15 has_json nobit '"nb@nobit.out.test"'; then
    j=$(json_with nobit '"nb@nobit.out.test"')
    eml=${j%.json}.eml
    if "$py" - "$T/msg-eightbit.txt" "$eml" <<'PYEOF'; then
import email, email.policy, sys
def leaves(path):
    with open(path, "rb") as f:
        m = email.message_from_binary_file(f, policy=email.policy.compat32)
    return [(p.get_content_type(), p.get_payload(decode=True).replace(b"\r\n", b"\n"))
            for p in m.walk() if not p.is_multipart()]
orig, got = leaves(sys.argv[1]), leaves(sys.argv[2])
raw = open(sys.argv[2], "rb").read()
ok = orig == got and len(orig) == 4 and max(raw) < 0x80 and b"quoted-printable" in raw
ok = ok and all(len(l) <= 78 for l in raw.split(b"\n"))
if not ok:
    print("orig", orig, "\ngot", got, file=sys.stderr)
sys.exit(0 if ok else 1)
PYEOF
        pass outbound-8bit-converted-to-qp
    else
        fail outbound-8bit-converted-to-qp "the captured message does not decode to the original parts"
    fi
    grep -q '"BODY=' "$j" && fail outbound-8bit-no-body-param "BODY= sent to a server without 8BITMIME" ||
        pass outbound-8bit-no-body-param
    logged "qid=$q16" "conv=8bit-to-qp" && pass outbound-8bit-conversion-logged ||
        fail outbound-8bit-conversion-logged "no conv=8bit-to-qp log line"
else
    fail outbound-8bit-converted-to-qp "nothing reached the server without 8BITMIME: $(grep "qid=$q16" "$T/tern.log" | tail -3)"
fi
# not convertible (8-bit octets inside an attached message/rfc822): bounced with 5.6.3
printf 'From: alice@local.test\nSubject: attached\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\nSubject: inner\n\nd\303\251j\303\240 vu\n--b--\n' |
    "$OB_INJECT" -s "$T/spool" -B 8bitmime -f alice@local.test -t nc@nobit.out.test >"$T/q17"
if wait_for 15 mail_with "Final-Recipient: rfc822; nc@nobit.out.test" "Status: 5.6.3" >/dev/null; then
    pass outbound-8bit-unconvertible-bounced
else
    fail outbound-8bit-unconvertible-bounced "no 5.6.3 bounce: $(grep "qid=$(cat "$T/q17")" "$T/tern.log" | tail -2)"
fi

# ---- 6. a server that never greets: timeout, deferred -----------------------------------------------
q12=$(inject slow -f alice@local.test -t s@slow.out.test -n NEVER)
if wait_for 15 logged "deferred qid=$q12" "timeout"; then
    queued "$q12" && pass outbound-timeout-deferred ||
        fail outbound-timeout-deferred "left the queue after a timeout"
else
    fail outbound-timeout-deferred "no deferral with a timeout: $(grep "$q12" "$T/tern.log" | tail -2)"
fi

# ---- 7. 451 then accepted: retries, and the delay warning -------------------------------------------
q13=$(inject retry -f alice@local.test -t gina@retry.out.test -n DELAY,FAILURE)
if wait_for 10 logged "deferred qid=$q13" "status=deferred"; then
    grep "deferred qid=$q13" "$T/tern.log" | head -1 | grep -q "reply=451 4.7.1 Greylisted" &&
        pass outbound-4xx-deferred || fail outbound-4xx-deferred "deferral without the server's reply"
else
    fail outbound-4xx-deferred "no deferral after 451: $(grep "$q13" "$T/tern.log" | tail -2)"
fi
if wait_for 12 mail_with "Action: delayed" "Final-Recipient: rfc822; gina@retry.out.test" >/dev/null; then
    b=$(mail_with "Action: delayed" "Final-Recipient: rfc822; gina@retry.out.test")
    grep -qF "Diagnostic-Code: smtp; 451 4.7.1 Greylisted" "$b" && grep -qF "Will-Retry-Until:" "$b" &&
        pass outbound-delay-warning || fail outbound-delay-warning "delay DSN without the 451 reply or Will-Retry-Until"
else
    fail outbound-delay-warning "no delay DSN after delay_warning (4 s)"
fi
n=$(grep -c "deferred qid=$q13" "$T/tern.log")
[ "$n" -ge 2 ] && pass outbound-retried || fail outbound-retried "only $n attempt(s) logged"
stop_capture retry
capture retry2 127.0.0.23 25
if wait_for 15 has_json retry2 '"gina@retry.out.test"'; then
    wait_for 5 bash -c "! test -e '$T/spool/queue/$q13'"
    queued "$q13" && fail outbound-retry-then-accept "delivered but still queued" ||
        pass outbound-retry-then-accept
else
    fail outbound-retry-then-accept "not delivered once the server accepts: $(grep "$q13" "$T/tern.log" | tail -2)"
fi
[ "$(grep -c "dsn qid=$q13 kind=delay" "$T/tern.log")" = 1 ] && pass outbound-one-delay-warning ||
    fail outbound-one-delay-warning "$(grep -c "dsn qid=$q13 kind=delay" "$T/tern.log") delay warnings"

# ---- 8. a restart with deferred mail --------------------------------------------------------------
q14=$(inject restart -f alice@local.test -t kim@restart.out.test -n NEVER)
wait_for 10 logged "deferred qid=$q14" "status=deferred" ||
    fail outbound-restart "not deferred before the restart: $(grep "$q14" "$T/tern.log" | tail -2)"
before_good=$(jsons good) before_nomx=$(jsons nomx) before_v6=$(jsons v6) before_tls=$(jsons tls)
stop_tern
queued "$q14" || fail outbound-restart "the deferred message is gone after SIGTERM"
stop_capture restart
capture restart2 127.0.0.26 25
start_tern
if wait_for 20 has_json restart2 '"kim@restart.out.test"'; then
    sleep 2
    n=$(grep -lF '"kim@restart.out.test"' "$T/cap/restart2"/*.json | wc -l)
    [ "$n" = 1 ] && pass outbound-restart-deferred-delivered-once ||
        fail outbound-restart-deferred-delivered-once "delivered $n times"
else
    fail outbound-restart-deferred-delivered-once "not delivered after the restart: $(grep "$q14" "$T/tern.log" | tail -3)"
fi
sleep 1
if [ "$(jsons good)" = "$before_good" ] && [ "$(jsons nomx)" = "$before_nomx" ] &&
   [ "$(jsons v6)" = "$before_v6" ] && [ "$(jsons tls)" = "$before_tls" ]; then
    pass outbound-restart-nothing-sent-twice
else
    fail outbound-restart-nothing-sent-twice "deliveries repeated after the restart"
fi
wait_for 5 bash -c "! test -e '$T/spool/queue/$q14'" || fail outbound-restart "still queued after delivery"
stop_tern
grep -E "AddressSanitizer|LeakSanitizer|runtime error" "$T/tern.log" >/dev/null &&
    fail outbound-sanitizer "$(grep -E "AddressSanitizer|LeakSanitizer|runtime error" "$T/tern.log" | head -3)"
[ "$failed" = 0 ] || { echo "--- tern.log (tail) ---" >&2; tail -40 "$T/tern.log" >&2; exit 3; }
exit 0
