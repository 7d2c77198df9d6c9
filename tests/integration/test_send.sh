#!/bin/bash
# test_send.sh - `tern send` and `tern check` against real servers: smtp-capture (aiosmtpd, a
# third-party SMTP implementation) in its plain, STARTTLS, AUTH, CHUNKING and scripted-failure
# modes, aiosmtpd as an LMTP server, as a server requiring client certificates and behind the
# PROXY protocol (send/aio-servers), an HTTPS server for the MTA-STS policy, and the real
# `tern serve` - all inside a private network namespace, with NSD (tests/lib/dns-server)
# serving the fake domains of tests/integration/send/zones/ on 127.0.0.53.
#
#   tests/integration/test_send.sh BUILD_DIR
#
# BUILD_DIR/tern is the binary (TERN_SEND_BIN overrides the one used for `send`/`check`,
# e.g. while main.c does not dispatch them yet). Prints "PASS name" / "FAIL name: reason"
# per check and exits 0 (the runner counts the lines); exits 1 only if it could not start.
# Needs root, nsd, python3-aiosmtpd, openssl, postfix (XCLIENT), and the testkit (TESTKIT, default
# ../shared/testkit beside the repository). About a minute. ST_DEMO='commands' runs the
# commands with the servers up instead of the tests (see send/cases.sh).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
testkit=${TESTKIT:-${TERN_TESTKIT:-$root/../shared/testkit}}
bin=${TERN_SEND_BIN:-$build/tern}

[ -x "$bin" ] || { echo "FAIL send-setup: $bin is not built"; exit 0; }
if ! "$bin" send --help >/dev/null 2>&1 || ! "$bin" check --help >/dev/null 2>&1; then
    echo "FAIL send-setup: $bin has no send/check subcommands (src/main.c dispatches them" \
         "to send_main/check_main)"
    exit 0
fi
[ -x "$testkit/netns-run" ] || { echo "FAIL send-setup: no testkit at $testkit"; exit 0; }
[ "$(id -u)" = 0 ] || { echo "FAIL send-setup: needs root (network namespaces)"; exit 0; }
command -v nsd >/dev/null || { echo "FAIL send-setup: nsd is not installed"; exit 0; }
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null ||
    { echo "FAIL send-setup: python3-aiosmtpd is not installed"; exit 0; }

. "$root/tests/integration/wrap.sh"
serve=$build/tern
if [ -n "${TERN_WRAPPER:-}" ]; then
    wdir=$(mktemp -d /tmp/test_send-wrap.XXXXXX) || exit 1
    chmod 755 "$wdir"
    trap 'rm -rf "$wdir"' EXIT
    bin=$(tern_wrap "$bin" "$wdir")
    [ "$serve" = "${TERN_SEND_BIN:-$build/tern}" ] && serve=$bin || serve=$(tern_wrap "$serve" "$wdir")
fi
export ST_ROOT=$root ST_BIN=$bin ST_KIT=$testkit ST_SERVE=$serve ST_DEMO=${ST_DEMO:-}
export ST_SLOW=$(tern_slow)
timeout $((240 * $(tern_slow))) "$testkit/netns-run" -r 127.0.0.53 -a 127.0.1.23 -- bash "$root/tests/integration/send/cases.sh"
rc=$?
[ "$rc" = 0 ] || echo "FAIL send-run: the test script exited with status $rc"
exit 0
