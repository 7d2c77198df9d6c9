#!/bin/bash
# cases.sh - the body of tests/integration/test_send.sh. Runs inside `netns-run -r 127.0.0.53`
# (a private network namespace whose /etc/resolv.conf names 127.0.0.53): starts the DNS
# server, the SMTP servers and the HTTPS policy server, then runs `tern send` and
# `tern check` against them and prints "PASS name" / "FAIL name: reason" lines.
# Environment: ST_ROOT (repository), ST_BIN (binary with send/check), ST_KIT (testkit),
# ST_SERVE (binary with serve; its tests are skipped with a FAIL line if it cannot start).
# "A && pass || fail" is fine here (pass only echoes); capture file names are our own.
# shellcheck disable=SC2015,SC2012
set -u
R=$ST_ROOT
T=$ST_BIN
K=$ST_KIT
S=$R/tests/integration/send
PY=/usr/bin/python3
W=$(mktemp -d /tmp/test_send.XXXXXX)
chmod 755 "$W"
# shellcheck disable=SC2046
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT

# ---- helpers ------------------------------------------------------------------------------

pass() { echo "PASS $1"; }
fail() {
    echo "FAIL $1: $2"
    [ -f "$W/out" ] && sed 's/^/    | /' "$W/out" | head -80
}

# has NAME PATTERN...: every pattern (grep -E) must be in the last output; "!PAT" must not.
has() {
    local name=$1 p
    shift
    for p in "$@"; do
        case $p in
            '!'*)
                if grep -qE -- "${p#!}" "$W/out"; then
                    fail "$name" "output has /${p#!}/"
                    return 1
                fi ;;
            *)
                if ! grep -qE -- "$p" "$W/out"; then
                    fail "$name" "output lacks /$p/"
                    return 1
                fi ;;
        esac
    done
    pass "$name"
}

# t NAME STATUS PATTERN... -- ARGS...: run "$T ARGS", want exit STATUS and the patterns.
t() {
    local name=$1 want=$2 rc
    shift 2
    local pats=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        pats+=("$1")
        shift
    done
    shift
    "$T" "$@" >"$W/out" 2>&1 </dev/null
    rc=$?
    if [ "$rc" != "$want" ]; then
        fail "$name" "exit status $rc, want $want"
        return 1
    fi
    has "$name" "${pats[@]}"
}

ncap() { find "$W/cap-$1" -name '*.json' 2>/dev/null | wc -l; }
lastcap() { ls -t "$W/cap-$1"/*.json 2>/dev/null | head -1; }

# jcheck NAME FILE EXPR: a Python expression over d (the JSON document in FILE) must hold.
jcheck() {
    if $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' \
        "$2" "$3" 2>"$W/jerr"; then
        pass "$1"
    else
        fail "$1" "not true: $3 ($(head -c 300 "$W/jerr"))"
    fi
}

# ---- servers ------------------------------------------------------------------------------

"$K/mkcerts" "$W/tls" mx1.good.send.test mx2.good.send.test mta-sts.good.send.test \
    submit.send.test chunk.send.test tern.send.test lmtp.send.test certreq.send.test >/dev/null
mkdir -p "$W/tlsbad"
cp "$W/tls/ca.crt" "$W/tls/ca.key" "$W/tlsbad/"
"$K/mkcerts" "$W/tlsbad" other.send.test >/dev/null
CA=$W/tls/ca.crt
# client certificates: one from the test CA, one from a CA the servers do not trust
mkdir -p "$W/client"
cp "$W/tls/ca.crt" "$W/tls/ca.key" "$W/client/"
"$K/mkcerts" "$W/client" client.send.test >/dev/null
"$K/mkcerts" "$W/rogue" rogue.send.test >/dev/null
CERT=$W/tls/server-chain.crt
KEY=$W/tls/server.key

"$R/tests/lib/dns-server" 127.0.0.53 53 "$S"/zones/*.zone 2>"$W/dns.log" &
if ! "$K/wait-listen" -u 127.0.0.53 53; then
    echo "FAIL send-dns-server: not listening"
    cat "$W/dns.log"
    exit 1
fi

cap() {
    local name=$1
    shift
    mkdir -p "$W/cap-$name"
    $PY "$K/smtp-capture" -o "$W/cap-$name" "$@" >"$W/cap-$name.log" 2>&1 &
}
cap good -l 127.0.1.1:25 -l 127.0.1.11:25 --hostname mx1.good.send.test \
    --tls-cert "$CERT" --tls-key "$KEY"
cap reject -l 127.0.1.3:25 --fail rcpt:550
cap tempfail -l 127.0.1.4:25 --fail rcpt:451
cap submit -l 127.0.1.5:587 --tls-cert "$CERT" --tls-key "$KEY" --auth alice:s3cret-Pa55
cap chunk -l 127.0.1.6:25 --chunking
cap bad -l 127.0.1.7:25 --tls-cert "$W/tlsbad/server-chain.crt" --tls-key "$W/tlsbad/server.key"
cap busy -l 127.0.1.10:25 --fail connect:421
$PY "$S/smtp-scram" 127.0.1.12 587 alice s3cret-Pa55 >"$W/scram.log" 2>&1 &
$PY "$S/smtp-scram" 127.0.1.13 587 alice s3cret-Pa55 --bad-server-signature >"$W/scram2.log" 2>&1 &
$PY "$S/https-file" 127.0.1.8 443 "$CERT" "$KEY" /.well-known/mta-sts.txt "$S/mta-sts.txt" \
    >"$W/https.log" 2>&1 &
$PY "$S/tls-wrap" 127.0.1.6 465 "$CERT" "$KEY" 127.0.1.6 25 >"$W/wrap.log" 2>&1 &
$PY "$S/aio-servers" lmtp 127.0.1.20 24 "$W/cap-lmtp" >"$W/lmtp.log" 2>&1 &
$PY "$S/aio-servers" proxy 127.0.1.22 25 "$W/cap-proxy" >"$W/proxy.log" 2>&1 &
$PY "$S/aio-servers" clientcert 127.0.1.21 25 "$W/cap-cc" "$CERT" "$KEY" "$CA" >"$W/cc.log" 2>&1 &
$PY "$S/aio-servers" clientcert 127.0.1.21 465 "$W/cap-cci" "$CERT" "$KEY" "$CA" --implicit \
    >"$W/cci.log" 2>&1 &
for hp in 127.0.1.1:25 127.0.1.11:25 127.0.1.3:25 127.0.1.4:25 127.0.1.5:587 127.0.1.6:25 \
          127.0.1.7:25 127.0.1.10:25 127.0.1.8:443 127.0.1.6:465 127.0.1.12:587 \
          127.0.1.13:587 127.0.1.20:24 127.0.1.21:25 127.0.1.21:465 127.0.1.22:25; do
    if ! "$K/wait-listen" "${hp%:*}" "${hp##*:}"; then
        echo "FAIL send-servers: nothing on $hp"
        cat "$W"/*.log
        exit 1
    fi
done
echo "PASS send-servers-start"

# ST_DEMO="commands": run them here, with the servers up ($T, $CA, $W set), instead of the
# tests. For trying things by hand and for the transcripts in docs/send.md.
if [ -n "${ST_DEMO:-}" ]; then
    eval "$ST_DEMO"
    exit 0
fi

NS=(--nameserver 127.0.0.53 --timeout 5)
SEND=(send "${NS[@]}" --from alice@good.send.test)

# ---- tern send: plain sessions, MX lookup and fallback -------------------------------------

before=$(ncap good)
t send-mx-plain 0 'MX 10 mx1\.good\.send\.test' 'MX 20 mx2\.good\.send\.test' \
    '^<-  220 ' '^ -> EHLO ' '^ -> MAIL FROM:<alice@good\.send\.test>' \
    '^ -> RCPT TO:<bob@good\.send\.test>' '^<-  354 ' '^ -> \.$' '^<-  250 2\.0\.0 OK queued' \
    '^    ## 2xx done\. 250: message accepted' '^    ## 3xx more needed' \
    'Extensions: SIZE \(max 33554432 bytes\)' 'Result: the message was accepted' $'!\033\\[' \
    -- "${SEND[@]}" --to bob@good.send.test --header "Subject: plain-test"
if [ "$(ncap good)" = $((before + 1)) ] && grep -q '^Subject: plain-test' "$(lastcap good | sed 's/json$/eml/')"; then
    pass send-mx-plain-captured
else
    fail send-mx-plain-captured "no captured message with the subject"
fi
jcheck send-mx-plain-envelope "$(lastcap good)" \
    'd["mail_from"] == "alice@good.send.test" and d["rcpt_tos"] == ["bob@good.send.test"]'

# the system resolver configuration (/etc/resolv.conf in the namespace) instead of --nameserver
t send-resolv-conf 0 'Result: the message was accepted' \
    -- send --from a@good.send.test --to bob@good.send.test --timeout 5

t send-mx-fallback 0 'MX 10 dead\.send\.test' 'cannot connect to 127\.0\.1\.2:25' \
    'nothing listens' 'trying the next MX' 'Connected to 127\.0\.1\.1:25' \
    'Result: the message was accepted' -- "${SEND[@]}" --to bob@fallback.send.test

t send-greeting-421 0 '^<\*\* 421 ' '4xx temporary: retry later' 'trying the next MX' \
    'Connected to 127\.0\.1\.1:25' -- "${SEND[@]}" --to bob@greet421.send.test

t send-implicit-mx 0 'no MX records: using its own address \(implicit MX' \
    'Result: the message was accepted' -- "${SEND[@]}" --to bob@nomx.send.test

t send-nxdomain 1 'the domain nope\.send\.test does not exist' \
    -- "${SEND[@]}" --to bob@nope.send.test

t send-null-mx 1 'null MX' 'accepts no mail' -- "${SEND[@]}" --to bob@nullmx.send.test

t send-dead-server 2 'cannot connect to 127\.0\.1\.2:25' 'Result: not delivered' \
    -- "${SEND[@]}" --server dead.send.test --to bob@good.send.test

# ---- refusals and their explanations --------------------------------------------------------

t send-rcpt-550 1 '^<\*\* 550 5\.3\.0 ' \
    '## 5xx permanent: a bounce\. 550: mailbox unavailable' '5\.3\.0: other or undefined mail system status' \
    'no recipient was accepted' 'Result: refused' '!^ -> DATA' \
    -- "${SEND[@]}" --to bob@reject.send.test

t send-rcpt-451 2 '^<\*\* 451 4\.3\.0 ' '## 4xx temporary: retry later\. 451' \
    'Result: not delivered' '!^ -> DATA' -- "${SEND[@]}" --to bob@tempfail.send.test

t send-rcpt-hint 1 '550 5\.1\.1 No such user' \
    '5\.1\.1: addressing: bad destination mailbox address\. Check: the recipient address' \
    -- "${SEND[@]}" --to reject-me@good.send.test

before=$(ncap good)
t send-partial 1 '^<-  250 2\.1\.5' '^<\*\* 550 5\.1\.1' '^<-  250 2\.0\.0 OK queued' \
    'Result: accepted for 1 of 2 recipients; 1 refused' \
    -- "${SEND[@]}" --to ok@good.send.test,reject-x@good.send.test
[ "$(ncap good)" = $((before + 1)) ] && pass send-partial-delivered ||
    fail send-partial-delivered "the message was not captured"

# ---- STARTTLS, certificates, implicit TLS ---------------------------------------------------

before=$(ncap good)
t send-starttls 0 '^ -> STARTTLS' '^<-  220 ' 'ready to start TLS' \
    'TLS started: TLSv1\.[23], cipher ' 'Certificate: subject CN=mx1\.good\.send\.test' \
    'Certificate verified: trusted chain \(--cafile\)' 'sending EHLO again' '^ ~> EHLO ' \
    '^ ~> MAIL FROM' '^<~  250 2\.0\.0 OK queued' \
    -- "${SEND[@]}" --server mx1.good.send.test --starttls --cafile "$CA" --to bob@good.send.test
jcheck send-starttls-captured "$(lastcap good)" 'd["tls"] is not None'

t send-starttls-untrusted 2 'Certificate NOT verified for mx1\.good\.send\.test' \
    'not in the system trust store' 'stopping: the server.s identity is not proven' \
    '!^ ~> MAIL' -- "${SEND[@]}" --server mx1.good.send.test --starttls --to bob@good.send.test

t send-starttls-wrong-name 2 'Certificate NOT verified for mx\.bad\.send\.test' \
    'the certificate is for other\.send\.test, not for mx\.bad\.send\.test' '!^ ~> MAIL' \
    -- "${SEND[@]}" --server mx.bad.send.test --starttls --cafile "$CA" --to bob@bad.send.test

t send-starttls-insecure 0 'Certificate NOT verified' 'going on without a verified certificate' \
    '^<~  250 2\.0\.0 OK queued' -- "${SEND[@]}" --server mx.bad.send.test --starttls \
    --cafile "$CA" --insecure --to bob@bad.send.test

t send-starttls-not-offered 2 'the server does not offer STARTTLS' '!^ -> MAIL' \
    -- "${SEND[@]}" --server 127.0.1.3 --starttls --to bob@reject.send.test

t send-tls-optional-clear 0 'does not offer STARTTLS: going on without TLS' \
    '^<-  250 2\.0\.0 ' -- "${SEND[@]}" --server chunk.send.test --tls-optional \
    --to bob@chunk.send.test
t send-tls-optional-tls 0 'TLS started' '^<~  250 2\.0\.0 ' -- "${SEND[@]}" \
    --server mx1.good.send.test --tls-optional --cafile "$CA" --to bob@good.send.test

before=$(ncap chunk)
t send-implicit-tls 0 'implicit TLS \(RFC 8314\)' 'TLS started: TLSv1\.[23]' \
    'Certificate verified' '^<~  220 ' '^ ~> EHLO ' '^<~  250 2\.0\.0 OK queued' '!STARTTLS' \
    -- "${SEND[@]}" --server chunk.send.test:465 --tls --cafile "$CA" --to bob@chunk.send.test
[ "$(ncap chunk)" = $((before + 1)) ] && pass send-implicit-tls-captured ||
    fail send-implicit-tls-captured "the message was not captured"

# ---- AUTH -----------------------------------------------------------------------------------

SUB=("${SEND[@]}" --server submit.send.test:587 --starttls --cafile "$CA" --to bob@good.send.test)
PLAIN_B64=$(printf '\0alice\0s3cret-Pa55' | base64)
PASS_B64=$(printf 's3cret-Pa55' | base64)
t send-auth-plain 0 '^ ~> AUTH PLAIN \*\*\*$' '^<~  235 ' 'authentication succeeded' \
    '^<~  250 2\.0\.0 OK queued' '!s3cret' "!$PLAIN_B64" \
    -- "${SUB[@]}" --auth PLAIN --user alice --password s3cret-Pa55
jcheck send-auth-plain-captured "$(lastcap submit)" 'd["auth"] == "alice"'

# aiosmtpd asks "User Name\0" and "Password\0" (most servers say "Username:", "Password:")
t send-auth-login 0 '^ ~> AUTH LOGIN$' 'decodes to "User ?[Nn]ame' 'decodes to "Password' \
    '^ ~> \*\*\*$' '^<~  235 ' '!s3cret' "!$PASS_B64" \
    -- "${SUB[@]}" --auth LOGIN --user alice --password s3cret-Pa55

t send-auth-cram-md5 0 '^ ~> AUTH CRAM-MD5$' '^<~  334 ' '^ ~> \*\*\*$' '^<~  235 ' '!s3cret' \
    -- "${SUB[@]}" --auth CRAM-MD5 --user alice --password s3cret-Pa55

TERN_SEND_PASSWORD=s3cret-Pa55 t send-auth-auto 0 'using AUTH PLAIN' '^<~  235 ' \
    -- "${SUB[@]}" --user alice

t send-auth-wrong-password 1 '^<~\* 535 5\.7\.8 ' \
    '5\.7\.8: security or policy: authentication credentials invalid' '!^ ~> MAIL' \
    -- "${SUB[@]}" --auth PLAIN --user alice --password wrong

SCRAM=("${SEND[@]}" --to bob@good.send.test --user alice)
t send-auth-scram 0 '^ -> AUTH SCRAM-SHA-256 \*\*\*$' 'decodes to "r=[^,]+,s=[^,]+,i=4096"' \
    '^ -> \*\*\*$' 'decodes to "v=' 'signature is right' '^ -> \(empty response\)$' \
    '^<-  235 ' '^<-  250 2\.0\.0 ' '!s3cret' \
    -- "${SCRAM[@]}" --server 127.0.1.12:587 --auth SCRAM-SHA-256 --password s3cret-Pa55
t send-auth-scram-auto 0 'using AUTH SCRAM-SHA-256' '^<-  235 ' \
    -- "${SCRAM[@]}" --server 127.0.1.12:587 --password s3cret-Pa55
t send-auth-scram-wrong-password 1 '^<\*\* 535 ' '!^ -> MAIL' \
    -- "${SCRAM[@]}" --server 127.0.1.12:587 --auth SCRAM-SHA-256 --password wrong
t send-auth-scram-impostor 2 "SCRAM: the server's signature is wrong" '^ -> \*$' '!^ -> MAIL' \
    -- "${SCRAM[@]}" --server 127.0.1.13:587 --auth SCRAM-SHA-256 --password s3cret-Pa55

t send-auth-without-tls 2 'does not offer AUTH \(many servers offer it only after STARTTLS' \
    -- "${SEND[@]}" --server submit.send.test:587 --auth PLAIN --user alice \
    --password s3cret-Pa55 --to bob@good.send.test

# ---- message content, BDAT, PIPELINING, 8BITMIME ------------------------------------------

printf 'From: <alice@good.send.test>\nTo: <bob@good.send.test>\nSubject: dots\n\n.leading dot\n..two dots\n.\nlast line\n' \
    >"$W/dots.txt"
printf 'From: <alice@good.send.test>\r\nTo: <bob@good.send.test>\r\nSubject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nlast line\r\n' \
    >"$W/dots.crlf"
t send-dot-stuffing 0 '^ -> \.\.leading dot$' '^ -> \.\.\.two dots$' '^ -> \.\.$' \
    -- "${SEND[@]}" --server mx1.good.send.test --to bob@good.send.test --data "$W/dots.txt"
cmp -s "$(lastcap good | sed 's/json$/eml/')" "$W/dots.crlf" && pass send-dot-stuffing-content ||
    fail send-dot-stuffing-content "the captured message differs from the file"

"$T" "${SEND[@]}" --server mx1.good.send.test --to bob@good.send.test --data - \
    <"$W/dots.txt" >"$W/out" 2>&1
rc=$?
[ "$rc" = 0 ] && cmp -s "$(lastcap good | sed 's/json$/eml/')" "$W/dots.crlf" &&
    pass send-data-stdin || fail send-data-stdin "exit $rc or content differs"

t send-bdat 0 '^ -> BDAT 40$' '^ -> BDAT [0-9]+ LAST$' 'not dot-stuffed \(RFC 3030\)' \
    '^<-  250 2\.0\.0 OK queued' '!^ -> DATA' \
    -- "${SEND[@]}" --server chunk.send.test --to bob@chunk.send.test --bdat --chunk-size 40 \
    --data "$W/dots.txt"
cmp -s "$(lastcap chunk | sed 's/json$/eml/')" "$W/dots.crlf" && pass send-bdat-content ||
    fail send-bdat-content "the captured message differs from the file"

t send-bdat-pipelined 0 'pipelined' '^ -> BDAT 30$' '^<-  250 2\.0\.0 OK queued' \
    -- "${SEND[@]}" --server chunk.send.test --to bob@chunk.send.test --bdat --chunk-size 30 \
    --pipelining

t send-bdat-unsupported 2 'does not advertise CHUNKING \(RFC 3030\)' '!^ -> BDAT' \
    -- "${SEND[@]}" --server mx1.good.send.test --to bob@good.send.test --bdat

t send-pipelining 0 '\(pipelined: the 4 commands above went in one write' \
    '^ -> RCPT TO:<b1@good\.send\.test>' '^ -> RCPT TO:<b2@good\.send\.test>' \
    '^<-  250 2\.0\.0 OK queued' \
    -- "${SEND[@]}" --server mx1.good.send.test --to b1@good.send.test --to b2@good.send.test \
    --pipelining
jcheck send-pipelining-captured "$(lastcap good)" \
    'd["rcpt_tos"] == ["b1@good.send.test", "b2@good.send.test"]'

t send-8bitmime 0 '^ -> MAIL FROM:<alice@good\.send\.test> BODY=8BITMIME' \
    -- "${SEND[@]}" --server mx1.good.send.test --to bob@good.send.test --8bitmime \
    --body "caf$(printf '\303\251') au lait"
jcheck send-8bitmime-captured "$(lastcap good)" '"BODY=8BITMIME" in d["mail_options"]'

t send-8bit-warning 0 'has 8-bit bytes but is declared 7-bit' \
    -- "${SEND[@]}" --server mx1.good.send.test --to bob@good.send.test \
    --body "caf$(printf '\303\251')"

before=$(ncap good)
t send-quit-after-rcpt 0 '^ -> RCPT TO' '^ -> QUIT' 'stopped as asked' '!^ -> DATA' \
    -- "${SEND[@]}" --server mx1.good.send.test --to bob@good.send.test --quit-after rcpt
t send-quit-after-ehlo 0 '^ -> EHLO' '^ -> QUIT' '!MAIL FROM' \
    -- "${SEND[@]}" --server mx1.good.send.test --to bob@good.send.test --quit-after ehlo
t send-quit-after-data 0 '^<-  354 ' 'without sending the message' '!^ -> \.$' \
    -- "${SEND[@]}" --server mx1.good.send.test --to bob@good.send.test --quit-after data
[ "$(ncap good)" = "$before" ] && pass send-quit-after-nothing-sent ||
    fail send-quit-after-nothing-sent "a message was captured"

t send-helo 0 '^ -> HELO ' '!^ -> EHLO' -- "${SEND[@]}" --server mx1.good.send.test \
    --to bob@good.send.test --helo --ehlo client.send.test

# ---- attachments (RFC 2045/2046, RFC 2183, RFC 2231) -----------------------------------------

# mimecheck NAME EML TEXT [FILE TYPE [NAME]]...: Python's email package parses the message
# back; the text and every attachment's name, type and bytes must match.
mimecheck() {
    local name=$1
    shift
    if $PY "$S/mime-check" "$@" >"$W/mime.out" 2>&1; then
        pass "$name"
    else
        fail "$name" "$(head -c 300 "$W/mime.out")"
    fi
}

head -c 5000 /dev/urandom >"$W/blob.bin"
printf 'line one\nline two\n' >"$W/notes.txt"
E=$(printf '\303\251')
RESUME="$W/r${E}sum${E} 2.pdf"
head -c 777 /dev/urandom >"$RESUME"
LONGNAME="$W/$(for _ in $(seq 60); do printf '%s' "$E"; done).txt"
printf 'long name\n' >"$LONGNAME"

t send-attach 0 'Attaching .*/notes\.txt as text/plain, 18 octets' \
    'Attaching .*/blob\.bin as application/x-tern-test, 5000 octets' \
    'Attaching .*sum.* 2\.pdf as application/pdf, 777 octets' \
    '^ -> MIME-Version: 1\.0$' '^ -> Content-Type: multipart/mixed;$' '^ -> +boundary="=_tern_' \
    '^<-  250 2\.0\.0 OK queued' -- "${SEND[@]}" --server mx1.good.send.test \
    --to bob@good.send.test --body 'See the files.' --attach "$W/notes.txt" \
    --attach "$RESUME" --attach-type application/x-tern-test --attach "$W/blob.bin"
mimecheck send-attach-parsed "$(lastcap good | sed 's/json$/eml/')" 'See the files.' \
    "$W/notes.txt" text/plain "$RESUME" application/pdf "$W/blob.bin" application/x-tern-test
grep -q "filename\*=utf-8''r%C3%A9sum%C3%A9%202\.pdf" "$(lastcap good | sed 's/json$/eml/')" &&
    pass send-attach-rfc2231 || fail send-attach-rfc2231 "no RFC 2231 filename* parameter"

# BDAT (no dot-stuffing), a name long enough for RFC 2231 continuations, 8-bit text
t send-attach-bdat 0 '^ -> BDAT [0-9]+ LAST$' '^<-  250 2\.0\.0 OK queued' \
    -- "${SEND[@]}" --server chunk.send.test --to bob@chunk.send.test --bdat --8bitmime \
    --body "caf$E" --attach "$LONGNAME" --attach "$W/blob.bin"
mimecheck send-attach-bdat-parsed "$(lastcap chunk | sed 's/json$/eml/')" "caf$E" \
    "$LONGNAME" text/plain "$W/blob.bin" application/octet-stream
grep -q "filename\*1\*=" "$(lastcap chunk | sed 's/json$/eml/')" &&
    pass send-attach-continuations || fail send-attach-continuations "no filename*1*"

"$T" "${SEND[@]}" --server mx1.good.send.test --to bob@good.send.test --attach "$W/notes.txt" \
    --json >"$W/out" 2>&1
jcheck send-attach-json "$W/out" '(len(d["attachments"]) == 1 and
    d["attachments"][0]["type"] == "text/plain" and d["attachments"][0]["octets"] == 18 and
    d["attachments"][0]["file"].endswith("/notes.txt") and d["result"] == "accepted")'

t send-usage-attach-data 64 'excludes --data' -- send --to a@b.test --data "$W/dots.txt" \
    --attach "$W/notes.txt"
t send-usage-attach-type-last 64 'no --attach after it' -- send --to a@b.test \
    --attach "$W/notes.txt" --attach-type text/plain
t send-usage-attach-type-bad 64 'want type/subtype' -- send --to a@b.test \
    --attach-type 'text/plain; x=1' --attach "$W/notes.txt"
t send-usage-attach-header 64 'leave them out of --header' -- send --to a@b.test \
    --header 'Content-Type: text/html' --attach "$W/notes.txt"
t send-usage-attach-missing 64 'attach .*/no-such-file: No such file' -- send --to a@b.test \
    --server 127.0.0.1 --attach "$W/no-such-file"

# ---- client certificates, --tls-ca, --tls-verify ----------------------------------------------

CC=("${SEND[@]}" --to bob@good.send.test --tls-ca "$CA")
t send-client-cert-starttls 0 'The server asked for a client certificate: sent CN=client\.send\.test' \
    'Certificate verified' '^<~  250 2\.0\.0 OK client certificate CN=client\.send\.test' \
    -- "${CC[@]}" --server certreq.send.test --starttls --tls-verify \
    --tls-cert "$W/client/server.crt" --tls-key "$W/client/server.key"
jcheck send-client-cert-starttls-seen "$(ls -t "$W"/cap-cc/*.json | head -1)" \
    'd["client_cn"] == "client.send.test"'

# implicit TLS; the key in the same PEM file as the certificate (no --tls-key)
t send-client-cert-implicit 0 'implicit TLS' 'sent CN=client\.send\.test' \
    '^<~  250 2\.0\.0 OK client certificate CN=client\.send\.test' \
    -- "${CC[@]}" --server certreq.send.test:465 --tls --tls-cert "$W/client/server.pem"

t send-client-cert-none 2 'The server asked for a client certificate; none was sent' \
    '^\*\*\* no reply' 'asked for a client certificate and then ended TLS' '!^ ~> MAIL' \
    -- "${CC[@]}" --server certreq.send.test:465 --tls

t send-client-cert-untrusted 2 'sent CN=rogue\.send\.test' '^\*\*\* no reply' \
    'this is how it refuses one' '!^ ~> MAIL' -- "${CC[@]}" --server certreq.send.test \
    --starttls --tls-cert "$W/rogue/server.crt" --tls-key "$W/rogue/server.key"

t send-client-cert-not-asked 0 'The server did not ask for a client certificate: CN=client\.send\.test was not sent' \
    '^<~  250 2\.0\.0 OK queued' -- "${CC[@]}" --server mx1.good.send.test --starttls \
    --tls-cert "$W/client/server.crt" --tls-key "$W/client/server.key"

t send-client-cert-wrong-key 64 'cannot load the client key \(--tls-key\): .*key values mismatch' \
    '!Trying' -- "${CC[@]}" --server certreq.send.test --starttls \
    --tls-cert "$W/client/server.crt" --tls-key "$W/rogue/server.key"
t send-client-cert-missing 64 'cannot load the client certificate' -- "${CC[@]}" \
    --server certreq.send.test --starttls --tls-cert "$W/nonexistent.crt"

t send-no-tls-verify 0 'Certificate NOT verified' 'going on without a verified certificate' \
    '^<~  250 2\.0\.0 OK queued' -- "${SEND[@]}" --server mx.bad.send.test --starttls \
    --to bob@bad.send.test --no-tls-verify
t send-tls-verify-default 2 'Certificate NOT verified' 'stopping' -- "${SEND[@]}" \
    --server mx.bad.send.test --starttls --tls-ca "$CA" --tls-verify --to bob@bad.send.test

"$T" "${CC[@]}" --server certreq.send.test --starttls --tls-cert "$W/client/server.pem" \
    --json >"$W/out" 2>&1
jcheck send-client-cert-json "$W/out" '(d["client_certificate"].endswith("/client/server.pem")
    and d["result"] == "accepted" and any("sent CN=client.send.test" in s["text"]
    for s in d["steps"] if s["dir"] == "info"))'

t send-usage-verify-both 64 'excludes' -- send --to a@b.test --tls-verify --no-tls-verify
t send-usage-cert-no-tls 64 'needs --starttls' -- send --to a@b.test --tls-cert "$CA"
t send-usage-key-no-cert 64 'needs --tls-cert' -- send --to a@b.test --starttls --tls-key "$CA"

# ---- LMTP (RFC 2033) against aiosmtpd's LMTP server -----------------------------------------

LM=("${SEND[@]}" --server lmtp.send.test --protocol lmtp)
before=$(ncap lmtp)
t send-lmtp 1 'Trying 127\.0\.1\.20:24 ' '^ -> LHLO ' '!^ -> EHLO' \
    '^<\*\* 550 5\.1\.1 No such mailbox' \
    '^<-  250 2\.0\.0 <ok@lmtp\.send\.test> Delivered' \
    'delivery status for <ok@lmtp\.send\.test> \(recipient 1 of 3 accepted' \
    '^<\*\* 452 4\.2\.2 <full@lmtp\.send\.test> Mailbox full' \
    '4xx temporary: retry later\. 452.*delivery status for <full@lmtp\.send\.test> \(recipient 2 of 3' \
    '^<\*\* 550 5\.1\.1 <gone@lmtp\.send\.test>' \
    'delivery status for <gone@lmtp\.send\.test> \(recipient 3 of 3' \
    'Result: accepted for 1 of 4 recipients; 2 refused \(they bounce\), 1 deferred' \
    -- "${LM[@]}" --to ok@lmtp.send.test --to full@lmtp.send.test \
    --to unknown@lmtp.send.test --to gone@lmtp.send.test
[ "$(ncap lmtp)" = $((before + 1)) ] && pass send-lmtp-captured ||
    fail send-lmtp-captured "the LMTP server saved no message"
jcheck send-lmtp-delivered "$(lastcap lmtp)" 'd["delivered"] == ["ok@lmtp.send.test"]'

t send-lmtp-all 0 'recipient 2 of 2 accepted' 'Result: the message was accepted' \
    -- "${LM[@]}" --to a1@lmtp.send.test --to a2@lmtp.send.test --attach "$W/notes.txt"
mimecheck send-lmtp-attach-parsed "$(lastcap lmtp | sed 's/json$/eml/')" \
    'This is a test message sent by tern send.' "$W/notes.txt" text/plain

t send-lmtp-deferred 2 '^<\*\* 452 4\.2\.2 ' 'Result: not delivered' \
    -- "${LM[@]}" --to full@lmtp.send.test

"$T" "${LM[@]}" --to ok@lmtp.send.test --to gone@lmtp.send.test --json >"$W/out" 2>&1
jcheck send-lmtp-json "$W/out" '(d["protocol"] == "lmtp" and d["exit"] == 1 and
    d["recipients"] == {"accepted": 1, "refused": 1, "deferred": 0} and
    [(s["rcpt"], s["code"]) for s in d["steps"] if "rcpt" in s] ==
    [("ok@lmtp.send.test", 250), ("gone@lmtp.send.test", 550)] and
    any(s["stage"] == "lhlo" for s in d["steps"] if s["dir"] == "client"))'

t send-lmtp-to-smtp 1 '^ -> LHLO ' 'LHLO refused: is this an LMTP server' '!^ -> MAIL' \
    -- "${SEND[@]}" --server mx1.good.send.test:25 --protocol lmtp --to bob@good.send.test

t send-usage-lmtp-no-server 64 'needs --server' -- send --to a@b.test --protocol lmtp
t send-usage-lmtp-helo 64 'has no HELO' -- send --to a@b.test --server x --protocol lmtp --helo
t send-usage-protocol 64 'smtp or lmtp' -- send --to a@b.test --protocol qmtp

# ---- PROXY protocol v1 (HAProxy) against aiosmtpd's PROXY support ------------------------------

t send-proxy 0 '^ -> PROXY TCP4 127\.0\.0\.1 127\.0\.1\.22 [0-9]+ 25$' \
    'PROXY protocol v1 header sent' '^<-  220 ' \
    '^<-  250 2\.0\.0 OK client 127\.0\.0\.1:[0-9]+ \(from the PROXY header\)' \
    -- "${SEND[@]}" --server proxied.send.test --to bob@good.send.test --proxy
t send-proxy-source 0 '^ -> PROXY TCP4 192\.0\.2\.7 198\.51\.100\.1 40000 25$' \
    '^<-  250 2\.0\.0 OK client 192\.0\.2\.7:40000 ' \
    -- "${SEND[@]}" --server proxied.send.test --to bob@good.send.test \
    --proxy-source 192.0.2.7:40000 --proxy-dest 198.51.100.1:25
jcheck send-proxy-seen "$(lastcap proxy)" '(d["proxy_src"] == "192.0.2.7:40000" and
    d["proxy_dst"] == "198.51.100.1:25" and d["proxy_version"] == 1)'
t send-proxy-ipv6 0 '^ -> PROXY TCP6 2001:db8::7 2001:db8::1 4000 25$' \
    '^<-  250 2\.0\.0 OK client 2001:db8::7:4000 ' -- "${SEND[@]}" --server proxied.send.test \
    --to bob@good.send.test --proxy-source '[2001:db8::7]:4000' --proxy-dest '[2001:db8::1]:25'
# the server waits for the header (60 s) longer than tern send for the greeting (2 s)
"$T" "${SEND[@]}" --server proxied.send.test --to bob@good.send.test --proxy --json >"$W/out" 2>&1
jcheck send-proxy-json "$W/out" '(d["proxy"] is True and d["xclient"] == [] and
    d["result"] == "accepted" and any(s["dir"] == "client" and s["text"].startswith(
    "PROXY TCP4 127.0.0.1 127.0.1.22 ") for s in d["steps"]))'
t send-proxy-missing 2 'no reply from the server: .*timed out' 'a PROXY protocol header \(--proxy' \
    '!^<-  220' -- "${SEND[@]}" --server proxied.send.test --to bob@good.send.test --timeout 2
t send-usage-proxy-family 64 'both be IPv4 or both IPv6' -- send --to a@b.test --server x \
    --proxy-source 192.0.2.1:1 --proxy-dest '[2001:db8::1]:25'
t send-usage-proxy-addr 64 'want IP:PORT' -- send --to a@b.test --server x \
    --proxy-source host.example:25

# ---- XCLIENT against the real Postfix ---------------------------------------------------------

if command -v postfix >/dev/null && bash "$S/postfix-xclient" "$W/postfix" 127.0.1.23 \
        >"$W/postfix.log" 2>&1 && "$K/wait-listen" 127.0.1.23 25; then
    PF=("${SEND[@]}" --server 127.0.1.23 --to bob@good.send.test)
    t send-xclient-baseline 0 '^<-  250 2\.0\.0 Ok: queued' '!^ -> XCLIENT' -- "${PF[@]}"
    t send-xclient-refused-client 1 '^<-  250-XCLIENT ' \
        '^ -> XCLIENT ADDR=192\.0\.2\.66 NAME=spam\.example$' '^<-  220 ' 'XCLIENT accepted' \
        '^<\*\* 554 5\.7\.1 <spam\.example\[192\.0\.2\.66\]>: Client host rejected' \
        -- "${PF[@]}" --xclient ADDR=192.0.2.66 --xclient NAME=spam.example
    t send-xclient-other-client 0 '^ -> XCLIENT ADDR=192\.0\.2\.10 HELO=a\+20b$' \
        '^<-  250 2\.0\.0 Ok: queued' -- "${PF[@]}" --xclient ADDR=192.0.2.10 --xclient 'HELO=a b'
    "$T" "${PF[@]}" --xclient ADDR=192.0.2.66 --json >"$W/out" 2>&1
    jcheck send-xclient-json "$W/out" '(d["xclient"] == ["ADDR=192.0.2.66"] and d["exit"] == 1
        and any(s["dir"] == "server" and s["code"] == 554 for s in d["steps"]))'
    grep -q 'client=unknown\[192\.0\.2\.10\]' "$W/postfix/syslog" &&
        pass send-xclient-postfix-log || fail send-xclient-postfix-log \
        "Postfix did not log the message as from 192.0.2.10"
else
    echo "FAIL send-xclient-postfix: Postfix did not start ($(tail -3 "$W/postfix.log" | tr '\n' ' '))"
fi
t send-xclient-not-offered 2 'does not offer XCLIENT' '!^ -> XCLIENT' -- "${SEND[@]}" \
    --server mx1.good.send.test --to bob@good.send.test --xclient ADDR=192.0.2.1
t send-usage-xclient 64 'want NAME=VALUE' -- send --to a@b.test --xclient 192.0.2.1

# ---- JSON, colour, usage --------------------------------------------------------------------

"$T" "${SEND[@]}" --to bob@reject.send.test --json >"$W/out" 2>&1
rc=$?
if [ "$rc" = 1 ] && $PY -m json.tool "$W/out" >/dev/null 2>&1; then
    pass send-json-valid
else
    fail send-json-valid "exit $rc, or not valid JSON"
fi
jcheck send-json-refused "$W/out" 'd["result"] == "refused" and d["exit"] == 1 and any(
    s["dir"] == "server" and s["code"] == 550 and s["enhanced"] == "5.3.0" and
    "permanent" in s["explanation"] and s["stage"] == "rcpt" for s in d["steps"])'
jcheck send-json-summary "$W/out" 'd["recipients"] == {"accepted": 0, "refused": 1,
    "deferred": 0} and d["delivered"] is False'
jcheck send-json-client-steps "$W/out" 'any(s["dir"] == "client" and
    s["text"] == "RCPT TO:<bob@reject.send.test>" for s in d["steps"])'

"$T" "${SEND[@]}" --server submit.send.test:587 --starttls --cafile "$CA" --auth LOGIN \
    --user alice --password s3cret-Pa55 --to 'q"uo\te@good.send.test' --json >"$W/out" 2>&1
$PY -m json.tool "$W/out" >/dev/null 2>&1 && ! grep -q 's3cret' "$W/out" &&
    pass send-json-escaping || fail send-json-escaping "invalid JSON or password shown"

if $PY - "$T" "${SEND[@]}" --server mx1.good.send.test --to bob@good.send.test \
    --quit-after ehlo >"$W/out" 2>&1 <<'EOF'
import os, pty, sys
def run(env):
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(sys.argv[1], sys.argv[1:], env)
    out = b""
    while True:
        try:
            b = os.read(fd, 4096)
        except OSError:
            break
        if not b:
            break
        out += b
    os.waitpid(pid, 0)
    return out
env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
coloured = run(env)
plain = run(dict(env, NO_COLOR="1"))
sys.exit(0 if b"\x1b[32m<-  220" in coloured and b"\x1b[" not in plain else 1)
EOF
then pass send-color-terminal-only; else fail send-color-terminal-only "colour wrong on a pty"; fi

t send-usage-no-to 64 'required' -- send --server 127.0.0.1
t send-usage-quit-after 64 'quit-after' -- send --to a@b.test --quit-after nonsense
t send-usage-tls-both 64 'exclude each other' -- send --to a@b.test --starttls --tls

# ---- tern check -----------------------------------------------------------------------------

CHK=(check "${NS[@]}" --cafile "$CA")
t check-good 0 '^OK +mx +2 MX records: 10 mx1\.good\.send\.test, 20 mx2\.good\.send\.test' \
    '^OK +mx +MX 10 mx1\.good\.send\.test has address 127\.0\.1\.1' \
    '^OK +smtp +mx1\.good\.send\.test \[127\.0\.1\.1:25\]: answers' \
    '^OK +tls +mx1\.good\.send\.test \[127\.0\.1\.1:25\]: TLSv1\.[23], certificate valid' \
    '^OK +rdns +127\.0\.1\.1 -> mx1\.good\.send\.test, which resolves back' \
    '^OK +spf +"v=spf1 mx include:_spf\.good\.send\.test -all" \(2 of 10 DNS lookups\)' \
    '^OK +dmarc +p=reject' '^OK +dkim +s1\._domainkey\.good\.send\.test: 2048-bit RSA key' \
    '^OK +mta-sts +record present, id=20240101T000000' \
    '^OK +mta-sts +policy: mode enforce, max_age 86400' \
    '^OK +tls-rpt +reports go to mailto:tlsrpt@good\.send\.test' \
    '^[0-9]+ OK, 0 WARN, 0 FAIL$' '!^(WARN|FAIL)' \
    -- "${CHK[@]}" --dkim-selector s1 --https-port 443 good.send.test

t check-bad 1 '^FAIL +tls +mx\.bad\.send\.test .*not valid for mx\.bad\.send\.test' \
    '^WARN +mx +only one MX' '^WARN +rdns +127\.0\.1\.7 has no PTR record' \
    '^FAIL +spf +syntax error: ip4:300\.1\.2\.3 is not an IPv4 address' \
    '^WARN +dmarc +no DMARC record' '^WARN +dkim +s1\._domainkey\.bad\.send\.test: 1024-bit' \
    '^FAIL +mta-sts +invalid record' '^FAIL +tls-rpt +2 records' '^[0-9]+ OK, [0-9]+ WARN, [0-9]+ FAIL$' \
    -- "${CHK[@]}" --dkim-selector s1 bad.send.test

t check-spf-lookups 1 '^FAIL +spf +needs 12 DNS lookups; RFC 7208 4\.6\.4 allows 10' \
    -- "${CHK[@]}" --no-connect lookups.send.test

t check-two-spf 1 '^FAIL +spf +twospf\.send\.test has 2 SPF records' '^WARN +dmarc +p=none' \
    -- "${CHK[@]}" --no-connect twospf.send.test

t check-dead-mx 1 '^FAIL +smtp +dead\.send\.test \[127\.0\.1\.2:25\]: cannot connect' \
    '^OK +smtp +mx1\.good\.send\.test' -- "${CHK[@]}" fallback.send.test

t check-rdns-not-confirmed 1 '^WARN +rdns +127\.0\.1\.3 -> nowhere\.send\.test, but' \
    -- "${CHK[@]}" --no-connect reject.send.test
t check-rdns-confirmed 1 '^OK +rdns +127\.0\.1\.4 -> mx\.tempfail\.send\.test, which resolves back' \
    -- "${CHK[@]}" --no-connect tempfail.send.test

t check-nxdomain 1 '^FAIL +mx +the domain nope\.send\.test does not exist' '!^.... +spf' \
    -- "${CHK[@]}" nope.send.test
t check-implicit-mx 1 '^WARN +mx +no MX records' '^OK +mx +nomx\.send\.test has address' \
    '^FAIL +spf +no SPF record' -- "${CHK[@]}" --no-connect nomx.send.test
t check-null-mx 1 '^OK +mx +null MX \(RFC 7505\)' -- "${CHK[@]}" nullmx.send.test
t check-no-connect 0 '!^.... +smtp' '^WARN +mta-sts +policy file not fetched \(--no-connect\)' \
    -- "${CHK[@]}" --no-connect --dkim-selector s1 good.send.test
t check-default-selectors 0 '^OK +dkim +s1\._domainkey\.good\.send\.test: 2048-bit' \
    -- "${CHK[@]}" --no-connect good.send.test
t check-no-dkim 1 '^WARN +dkim +no DKIM key under the common selectors' \
    -- "${CHK[@]}" --no-connect twospf.send.test
t check-missing-selector 1 '^FAIL +dkim +no key at nokey\._domainkey\.good\.send\.test' \
    -- "${CHK[@]}" --no-connect --dkim-selector nokey good.send.test

"$T" "${CHK[@]}" --json bad.send.test >"$W/out" 2>&1
rc=$?
if [ "$rc" = 1 ] && $PY -m json.tool "$W/out" >/dev/null 2>&1; then
    pass check-json-valid
else
    fail check-json-valid "exit $rc, or not valid JSON"
fi
jcheck check-json-findings "$W/out" 'd["fail"] >= 3 and any(f["level"] == "FAIL" and
    f["area"] == "spf" for f in d["findings"]) and d["fail"] == sum(
    f["level"] == "FAIL" for f in d["findings"])'
t check-usage 64 'usage' -- check
t check-usage-bad-domain 64 'not a domain' -- check 'no domain'

# ---- against the real tern server -----------------------------------------------------------

if [ -x "$ST_SERVE" ]; then
    tw=$W/tern
    mkdir -p "$tw/spool" "$tw/mail"
    user=tern
    id tern >/dev/null 2>&1 || user=nobody
    chown -R "$user" "$tw"
    cat >"$tw/tern.conf" <<EOF
hostname tern.send.test
listen 127.0.1.9:25 smtp
listen 127.0.1.9:465 smtps
tls_certificate $CERT $KEY
spool $tw/spool
maildir $tw/mail/%d/%u
log stderr
log_level debug
user $user
workers 1
local_domain tern.send.test
mailbox demo@tern.send.test
EOF
    "$ST_SERVE" serve -c "$tw/tern.conf" >"$tw/log" 2>&1 &
    if "$K/wait-listen" -t $((10 * ${ST_SLOW:-1})) 127.0.1.9 25 &&
       "$K/wait-listen" -t $((5 * ${ST_SLOW:-1})) 127.0.1.9 465; then
        pass tern-serve-start
        t tern-send-mx 0 'MX 10 tern\.send\.test' '^<-  220 tern\.send\.test' \
            'PIPELINING' 'CHUNKING' '^<-  250 2\.0\.0 ' 'Result: the message was accepted' \
            -- "${SEND[@]}" --to demo@tern.send.test --header "Subject: to-tern-1"
        t tern-send-starttls 0 'Certificate verified' '^<~  250 2\.0\.0 ' \
            -- "${SEND[@]}" --to demo@tern.send.test --starttls --cafile "$CA"
        t tern-send-smtps 0 'implicit TLS' '^<~  220 ' '^<~  250 2\.0\.0 ' \
            -- "${SEND[@]}" --server tern.send.test:465 --tls --cafile "$CA" --to demo@tern.send.test
        t tern-send-bdat-pipelining 0 'pipelined' '^ -> BDAT [0-9]+ LAST' '^<-  250 2\.0\.0 ' \
            -- "${SEND[@]}" --to demo@tern.send.test --bdat --chunk-size 64 --pipelining
        t tern-send-unknown-user 1 '^<\*\* 550 5\.1\.1 ' 'bad destination mailbox address' \
            -- "${SEND[@]}" --to nobody@tern.send.test
        t tern-send-relay-denied 1 '^<\*\* 554 5\.7\.1 ' 'Check: relaying denied' \
            -- "${SEND[@]}" --server tern.send.test --to bob@good.send.test
        t tern-send-dot-stuffing 0 '^ -> \.\.leading dot$' '^<-  250 2\.0\.0 ' \
            -- "${SEND[@]}" --to demo@tern.send.test --data "$W/dots.txt"
        # the accepted messages reach the Maildir (the message with the subject above)
        for _ in $(seq $((100 * ${ST_SLOW:-1}))); do
            grep -rlq '^Subject: to-tern-1' "$tw/mail" 2>/dev/null && break
            sleep 0.1
        done
        if grep -rlq '^Subject: to-tern-1' "$tw/mail" 2>/dev/null; then
            pass tern-send-delivered
        else
            echo "" >"$W/out"
            fail tern-send-delivered "no delivered message in $tw/mail"
            tail -20 "$tw/log"
        fi
        # an attachment through tern to the Maildir, parsed back
        t tern-send-attach 0 'Attaching .*sum.* 2\.pdf as application/pdf' '^<-  250 2\.0\.0 ' \
            -- "${SEND[@]}" --to demo@tern.send.test --header "Subject: to-tern-attach" \
            --body 'with files' --attach "$RESUME" --attach "$W/blob.bin"
        for _ in $(seq $((100 * ${ST_SLOW:-1}))); do
            grep -rlq '^Subject: to-tern-attach' "$tw/mail" 2>/dev/null && break
            sleep 0.1
        done
        mimecheck tern-send-attach-delivered "$(grep -rl '^Subject: to-tern-attach' "$tw/mail" |
            head -1)" 'with files' "$RESUME" application/pdf "$W/blob.bin" application/octet-stream
        t tern-check 1 '^OK +smtp +tern\.send\.test \[127\.0\.1\.9:25\]: answers: 220 tern\.send\.test' \
            '^OK +tls +tern\.send\.test \[127\.0\.1\.9:25\]: TLSv1\.[23], certificate valid' \
            -- "${CHK[@]}" tern.send.test
    else
        echo "FAIL tern-serve-start: tern serve did not listen on 127.0.1.9:25 and :465"
        tail -20 "$tw/log"
    fi
else
    echo "FAIL tern-serve-start: $ST_SERVE is not built"
fi
exit 0
