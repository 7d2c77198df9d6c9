#!/bin/bash
# test_queue.sh - queue management and the sendmail interface, driven the way a user types
# them: `tern queue` (list, show, flush, delete, hold, release, requeue), `mailq`, and
# `sendmail` with each flag programs use (-t -i as cron and PHP's mail() do, -f, -F, -bs,
# -bp, -q, --, ignored flags), against a running `tern serve` whose remote domains' MX
# answers 451 so mail stays deferred; plus the errors when the server is not running.
#
#   tests/integration/test_queue.sh BUILD_DIR
#
# Runs tests/integration/queue/scenario.sh inside a private network namespace (testkit
# netns-run) with NSD (tests/lib/dns-server) and the testkit's smtp-capture as the MX.
# Prints "PASS name" / "FAIL name: reason" lines; exit 1 if any check failed. Needs root.
# QUEUE_KEEP=1 keeps the work directory.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
testkit=${TESTKIT:-${TERN_TESTKIT:-$root/../shared/testkit}}

[ -x "$build/tern" ] || { echo "FAIL queue: $build/tern is not built"; exit 1; }
[ -x "$testkit/netns-run" ] || { echo "FAIL queue: no testkit at $testkit"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "FAIL queue: needs root (network namespace)"; exit 1; }
command -v nsd >/dev/null || { echo "FAIL queue: nsd is not installed"; exit 1; }
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null ||
    { echo "FAIL queue: python3-aiosmtpd is not installed"; exit 1; }

work=$(mktemp -d /tmp/test_queue.XXXXXX) || exit 1
chmod 755 "$work"
if [ "${QUEUE_KEEP:-0}" = 1 ]; then
    echo "queue: keeping $work" >&2
else
    trap 'rm -rf "$work"' EXIT
fi

export Q_ROOT=$root Q_TERN=$build/tern Q_KIT=$testkit Q_WORK=$work
timeout 280 "$testkit/netns-run" -r 127.0.0.53 -- bash "$root/tests/integration/queue/scenario.sh"
rc=$?
[ "$rc" = 0 ] || [ "$rc" = 3 ] || echo "FAIL queue-scenario: exited with status $rc"
[ "$rc" = 0 ] && exit 0
exit 1
