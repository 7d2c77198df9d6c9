#!/bin/bash
# check_tls.sh - scan tern's TLS with testssl.sh: no finding of severity HIGH or CRITICAL.
#
#   bash tests/integration/check_tls.sh [-k ec|rsa] [BUILD]     (BUILD default: build)
#
# Starts BUILD/tern with a STARTTLS listener (smtp) and an implicit-TLS listener (smtps) on
# 127.0.0.1, with a throwaway certificate from testkit/mkcerts (-k: its key type, default ec;
# the scan of the other type is a second run), then runs Debian's testssl.sh 3.0.x on both:
#     testssl --starttls smtp 127.0.0.1:PORT          and          testssl 127.0.0.1:PORT2
# (all of testssl's default checks: protocols, ciphers, server preferences, certificate,
# vulnerabilities, client simulations), with JSON output. Everything runs inside
# testkit/netns-run: a private network namespace with only loopback, so testssl can neither
# look names up nor reach any other machine (it is also told --nodns=none). The test CA is
# given with --add-ca, so the chain of trust is judged as it would be with a real CA. tern
# staples an OCSP response made for the certificate (tls_ocsp_response), and the scan must see
# it ("OCSP stapling offered").
#
# Prints one line per scan, "PASS check-tls:<scan>" or "FAIL check-tls:<scan>: reason", then
# a summary table (findings by severity per scan, and every LOW/MEDIUM/HIGH/CRITICAL finding).
# Exit status 1 if any finding is HIGH or CRITICAL, if a scan could not run, or if tern did not
# stop cleanly (exit 0, no sanitizer report). Installs the testssl.sh package if missing (root).
# Environment: TERN_TESTKIT (default REPO/../shared/testkit), TERN_CHECK_TLS_KEEP=1 keeps the
# work directory (config, tern.log, testssl JSON and logs). See docs/tls.md.
set -euo pipefail

keytype=ec
while getopts "k:" o; do
    case $o in
        k) keytype=$OPTARG ;;
        *) echo "usage: bash tests/integration/check_tls.sh [-k ec|rsa] [BUILD]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
case $keytype in ec|rsa) ;; *) echo "check_tls: -k ec or -k rsa" >&2; exit 2 ;; esac

repo=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$repo/$build ;; esac
testkit=${TERN_TESTKIT:-$repo/../shared/testkit}
testkit=$(cd "$testkit" && pwd)

# ---- outside the namespace: install testssl.sh, then re-run this script inside one --------

if [ -z "${TERN_CHECK_TLS_INNER:-}" ]; then
    if ! command -v testssl >/dev/null 2>&1 && ! command -v testssl.sh >/dev/null 2>&1; then
        if [ "$(id -u)" != 0 ]; then
            echo "FAIL check-tls:setup: testssl.sh is not installed;" \
                 "as root: apt-get install testssl.sh"
            exit 1
        fi
        echo "check_tls: installing Debian's testssl.sh package"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            testssl.sh </dev/null >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null 2>&1 &&
              DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                  testssl.sh </dev/null >/dev/null; } ||
            { echo "FAIL check-tls:setup: cannot install testssl.sh"; exit 1; }
    fi
    if [ ! -x "$build/tern" ]; then
        echo "FAIL check-tls:setup: $build/tern is not built (make, or make BUILD=$build ...)"
        exit 1
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "FAIL check-tls:setup: needs root for testkit/netns-run (a private network namespace)"
        exit 1
    fi
    export TERN_CHECK_TLS_INNER=1 TERN_TESTKIT="$testkit"
    exec "$testkit/netns-run" -- bash "$0" -k "$keytype" "$build"
fi

# ---- inside the namespace ------------------------------------------------------------------

testssl_bin=$(command -v testssl || command -v testssl.sh)
work=$(mktemp -d /tmp/tern-check-tls.XXXXXX)
chmod 755 "$work"
tern_pid=""
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    if [ -n "$tern_pid" ] && kill -0 "$tern_pid" 2>/dev/null; then
        kill -TERM "$tern_pid" 2>/dev/null || true
        wait "$tern_pid" 2>/dev/null || true
    fi
    if [ -n "${TERN_CHECK_TLS_KEEP:-}" ]; then
        echo "check_tls: kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# The test CA and a leaf from testkit/mkcerts, then the leaf re-issued with a CRL distribution
# point and an OCSP responder URI, as every public CA's certificates have: without them
# testssl rates the certificate HIGH ("cert_revocation"), a property of the throwaway
# certificate rather than of tern. Nothing fetches them (no --phone-out, no network).
"$testkit/mkcerts" -k "$keytype" "$work/pki" mx.tern.test localhost 127.0.0.1 >/dev/null
(
    cd "$work/pki"
    openssl req -new -key server.key -subj "/CN=mx.tern.test" -out server.csr 2>/dev/null
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
        -out server.crt -extfile <(printf '%s\n' \
            "subjectAltName=DNS:mx.tern.test,DNS:localhost,IP:127.0.0.1" \
            "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
            "extendedKeyUsage=serverAuth,clientAuth" \
            "crlDistributionPoints=URI:http://crl.tern.test/ca.crl" \
            "authorityInfoAccess=OCSP;URI:http://ocsp.tern.test/,caIssuers;URI:http://crl.tern.test/ca.crt"
        ) \
        2>/dev/null
    cat server.crt ca.crt >server-chain.crt
    rm -f server.csr
    openssl verify -CAfile ca.crt server.crt >/dev/null
    # An OCSP response for it ("good"), which tern staples: `openssl ocsp` answers from a CA
    # index file here, locally, as the responder at the AIA URI would (docs/tls.md's cron job).
    serial=$(openssl x509 -in server.crt -noout -serial | cut -d= -f2)
    printf 'V\t%s\t\t%s\tunknown\t/CN=mx.tern.test\n' \
        "$(date -u -d '+1 year' +%y%m%d%H%M%SZ)" "$serial" >index.txt
    openssl ocsp -index index.txt -CA ca.crt -rsigner ca.crt -rkey ca.key -issuer ca.crt \
        -cert server.crt -no_nonce -ndays 7 -respout ocsp.der >/dev/null 2>&1
)
mkdir -p "$work/spool" "$work/mail"
port_starttls=2525
port_smtps=4465
user_line=""
if getent passwd tern >/dev/null; then user_line="user tern"; else user_line="user nobody"; fi
cat >"$work/tern.conf" <<EOF
# check_tls.sh: one STARTTLS listener and one implicit-TLS listener, default TLS settings
hostname mx.tern.test
listen 127.0.0.1:$port_starttls smtp
listen 127.0.0.1:$port_smtps smtps
tls_certificate $work/pki/server-chain.crt $work/pki/server.key
tls_ocsp_response $work/pki/ocsp.der
spool $work/spool
maildir $work/mail/%d/%u
local_domain localhost
mailbox demo@localhost
workers 2
max_connections_per_ip 1000
timeout_command 30
log stderr
log_level info
$user_line
EOF
chown -R "${user_line#user }": "$work/spool" "$work/mail"

ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1} \
    "$build/tern" serve -c "$work/tern.conf" >"$work/tern.log" 2>&1 &
tern_pid=$!
for p in $port_starttls $port_smtps; do
    if ! "$testkit/wait-listen" -t 30 127.0.0.1 "$p" 2>/dev/null; then
        echo "FAIL check-tls:setup: tern did not listen on 127.0.0.1:$p"
        sed 's/^/    | /' "$work/tern.log" | tail -20
        exit 1
    fi
done
if ! grep -q "OCSP response .*stapled" "$work/tern.log"; then
    echo "FAIL check-tls:setup: tern did not load the OCSP response"
    grep OCSP "$work/tern.log" | sed 's/^/    | /'
    exit 1
fi

# One testssl run: NAME PORT [--starttls smtp]. Writes $work/NAME.json and $work/NAME.log.
scan() {
    local name=$1 port=$2
    shift 2
    local t0=$SECONDS rc=0
    # --warnings off: never stop to ask; --nodns none: no lookups at all (there is no DNS in
    # the namespace anyway); --add-ca: trust the test CA; --severity LOW: JSON keeps
    # LOW..CRITICAL findings (OK/INFO are in the log). Colour off for a readable log.
    "$testssl_bin" --quiet --color 0 --warnings off --nodns none --add-ca "$work/pki/ca.crt" \
        --connect-timeout 10 --openssl-timeout 10 \
        --jsonfile "$work/$name.json" --severity LOW "$@" "127.0.0.1:$port" \
        >"$work/$name.log" 2>&1 || rc=$?
    echo "$((SECONDS - t0))" >"$work/$name.secs"
    echo "$rc" >"$work/$name.rc"
}

testssl_version=$("$testssl_bin" --version 2>/dev/null |
    sed -n 's/.*testssl *\([0-9][^ ]*\).*/\1/p' | head -n1)
tern_version=$("$build/tern" version 2>/dev/null || echo 'tern ?')
echo "check_tls: testssl $testssl_version, $(openssl version | cut -d' ' -f1-2)," \
     "$keytype certificate, $tern_version"
t_all=$SECONDS
# One after the other: testssl is CPU-bound (thousands of forks), and two at once on 2 cores
# are no faster but make its timing-sensitive checks less reliable.
scan starttls $port_starttls --starttls smtp
scan smtps $port_smtps
total=$((SECONDS - t_all))

# Stop tern: it must exit 0 and be sanitizer-clean after the abuse.
kill -TERM "$tern_pid"
tern_rc=0
wait "$tern_pid" || tern_rc=$?
tern_pid=""

failed=0
summary=$work/summary.txt
: >"$summary"
for name in starttls smtps; do
    json=$work/$name.json
    secs=$(cat "$work/$name.secs")
    if [ ! -s "$json" ] ||
        ! python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$json" 2>/dev/null; then
        echo "FAIL check-tls:$name: testssl produced no JSON (exit $(cat "$work/$name.rc"))"
        tail -30 "$work/$name.log" | sed 's/^/    | /'
        failed=1
        continue
    fi
    # A run that could not talk TLS at all reports only scan problems: require real findings.
    verdict=$(python3 - "$json" "$name" "$secs" "$summary" <<'PY'
import json, sys
path, name, secs, summary = sys.argv[1:]
data = json.load(open(path))
findings = data if isinstance(data, list) else data.get("scanResult", [])
counts = {}
for f in findings:
    counts[f.get("severity", "?")] = counts.get(f.get("severity", "?"), 0) + 1
bad = [f for f in findings if f.get("severity") in ("HIGH", "CRITICAL")]
scan_problems = [f for f in findings if f.get("id") in ("scanProblem", "scanTime") and
                 f.get("severity") in ("WARN", "FATAL")]
with open(summary, "a") as out:
    out.write("| %s | %s s | %s | %s | %s | %s |\n" % (
        name, secs, counts.get("CRITICAL", 0), counts.get("HIGH", 0), counts.get("MEDIUM", 0),
        counts.get("LOW", 0)))
    for f in sorted(findings, key=lambda f: ["CRITICAL", "HIGH", "MEDIUM", "LOW", "WARN",
                                               "FATAL"].index(f.get("severity"))
                    if f.get("severity") in ("CRITICAL", "HIGH", "MEDIUM", "LOW", "WARN", "FATAL")
                    else 9):
        out.write("    %-8s %-8s %-28s %s\n" % (name, f.get("severity"), f.get("id"),
                                                 f.get("finding", "")[:110]))
if scan_problems:
    print("FAIL testssl reported a scan problem: %s" % "; ".join(
        "%s %s" % (f.get("id"), f.get("finding", "")[:120]) for f in scan_problems))
elif bad:
    print("FAIL %d finding(s) HIGH or CRITICAL: %s" % (len(bad), "; ".join(
        "%s %s (%s)" % (f.get("severity"), f.get("id"), f.get("finding", "")[:80]) for f in bad)))
else:
    print("PASS %s" % ", ".join("%s %d" % (k, counts.get(k, 0))
                                for k in ("CRITICAL", "HIGH", "MEDIUM", "LOW")))
PY
)
    # The log must show that TLS was really spoken (a protocol line "TLS 1.3 offered").
    if [[ $verdict == PASS* ]] && ! grep -q "TLS 1.3 .*offered" "$work/$name.log"; then
        verdict="FAIL the scan did not see TLS 1.3 offered (did testssl reach the server?)"
    fi
    # ... and that the OCSP response was stapled (testssl's log line: "OCSP stapling  offered").
    if [[ $verdict == PASS* ]] && ! grep -Eq "OCSP stapling +offered" "$work/$name.log"; then
        verdict="FAIL testssl did not see the OCSP response stapled"
    fi
    case $verdict in
        PASS*) echo "PASS check-tls:$name (${secs}s: ${verdict#PASS })" ;;
        *) echo "FAIL check-tls:$name: ${verdict#FAIL }"; failed=1 ;;
    esac
done

if [ "$tern_rc" != 0 ]; then
    echo "FAIL check-tls:tern-exit: tern exited $tern_rc after SIGTERM"
    tail -20 "$work/tern.log" | sed 's/^/    | /'
    failed=1
elif grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Undefined|Leak)' \
        "$work/tern.log"; then
    echo "FAIL check-tls:tern-exit: sanitizer report in tern's log"
    grep -E -A5 'ERROR: |runtime error:' "$work/tern.log" | head -40 | sed 's/^/    | /'
    failed=1
else
    echo "PASS check-tls:tern-exit"
fi

echo
echo "testssl findings of severity LOW and above" \
     "($keytype certificate, $(date -u +%Y-%m-%d), ${total}s in all):"
echo "| scan | time | CRITICAL | HIGH | MEDIUM | LOW |"
echo "| --- | --- | --- | --- | --- | --- |"
grep '^|' "$summary" || true
grep -v '^|' "$summary" || true
hs=$(grep -c "TLS handshake failed" "$work/tern.log" || true)
echo "tern: $(grep -c ' connect client=' "$work/tern.log" || true) connections," \
     "$(grep -c ' tls client=' "$work/tern.log" || true) TLS sessions, $hs failed handshakes logged"
if [ "$failed" != 0 ]; then
    [ -n "${TERN_CHECK_TLS_KEEP:-}" ] ||
        echo "check_tls: TERN_CHECK_TLS_KEEP=1 keeps $work for a look"
    exit 1
fi
exit 0
