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
suite=queue keep_var=QUEUE_KEEP
# shellcheck source=tests/integration/scenario-setup.sh
. "$(dirname "$0")/scenario-setup.sh" "$@"

export Q_ROOT=$root Q_TERN=$build/tern Q_KIT=$testkit Q_WORK=$work
timeout 280 "$testkit/netns-run" -r 127.0.0.53 -- bash "$root/tests/integration/queue/scenario.sh"
rc=$?
[ "$rc" = 0 ] || [ "$rc" = 3 ] || echo "FAIL queue-scenario: exited with status $rc"
[ "$rc" = 0 ] && exit 0
exit 1
