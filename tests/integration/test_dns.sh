#!/bin/bash
# test_dns.sh - src/dns.c against a real DNS server (NSD via tests/lib/dns-server) serving
# the fake zones in tests/integration/dns-zones/, inside a private network namespace.
#
#   tests/integration/test_dns.sh [BUILD_DIR]
#
# Runs BUILD_DIR/tests/dns_check (built from tests/integration/dns_check.c + src/dns.c;
# default BUILD_DIR: build). Prints "PASS name" / "FAIL name: reason" lines; exit 1 if any
# check failed. Needs root, the Debian package nsd, and the testkit (TESTKIT, default
# ../shared/testkit beside the repository).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
bin=$build/tests/dns_check
testkit=${TESTKIT:-$root/../shared/testkit}

[ -x "$bin" ] || { echo "FAIL dns: $bin is not built"; exit 1; }
[ -x "$testkit/netns-run" ] || { echo "FAIL dns: no testkit at $testkit"; exit 1; }
command -v nsd >/dev/null ||
    { echo "FAIL dns: nsd is not installed (apt-get install nsd)"; exit 1; }

log=$(mktemp /tmp/test_dns.XXXXXX)
wdir=$(mktemp -d /tmp/test_dns-wrap.XXXXXX)
chmod 755 "$wdir"
trap 'rm -rf "$log" "$wdir"' EXIT
. "$root/tests/integration/wrap.sh"
bin=$(tern_wrap "$bin" "$wdir")
export DNS_T_ROOT=$root DNS_T_BIN=$bin DNS_T_KIT=$testkit
export DNS_T_LOG=$log

# The server listens on 127.0.0.53:53 and /etc/resolv.conf (inside the namespace only)
# names it, so the resolv.conf mode of dns_resolver_new() is tested too.
# shellcheck disable=SC2016  # expanded by the inner shell
timeout $((120 * $(tern_slow))) "$testkit/netns-run" -r 127.0.0.53 -- bash -c '
    z=$DNS_T_ROOT/tests/integration/dns-zones
    srv=$DNS_T_ROOT/tests/lib/dns-server

    # The server script must refuse a broken zone instead of serving SERVFAIL for it.
    bad_rc=0
    bad=$(mktemp /tmp/bad.XXXXXX.zone)
    printf "\$ORIGIN bad.test.\n@ SOA ns.test. h.test. 1 2 3 4 5\nx MX notanumber y.\n" >"$bad"
    if timeout 10 "$srv" 127.0.0.2 53 "$bad" >/dev/null 2>&1; then
        echo "FAIL dns-server-rejects-bad-zone: it started"
        bad_rc=1
    else
        echo "PASS dns-server-rejects-bad-zone"
    fi
    rm -f "$bad"

    "$srv" -s servfail.test 127.0.0.53 53 "$z"/*.zone 2>"$DNS_T_LOG" &
    if ! "$DNS_T_KIT/wait-listen" -u 127.0.0.53 53 || ! "$DNS_T_KIT/wait-listen" 127.0.0.53 53; then
        echo "FAIL dns-server-start: nothing on 127.0.0.53:53"
        cat "$DNS_T_LOG"
        exit 1
    fi
    echo "PASS dns-server-start"
    "$DNS_T_BIN" 127.0.0.53:53 servfail.test
    rc=$?
    # 3: some check printed FAIL; anything else is a crash or a sanitizer report
    [ "$rc" = 0 ] || [ "$rc" = 3 ] || echo "FAIL dns-check-exit: dns_check exited with status $rc"
    kill %1
    wait
    [ "$rc" = 0 ] && exit "$bad_rc"
    exit "$rc"
'
