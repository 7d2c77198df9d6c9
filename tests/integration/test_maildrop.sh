#!/bin/bash
# test_maildrop.sh - sendmail while the server is down: the maildrop and its pickup, driven
# as a user would: stop tern, `sendmail -t -i` as an unprivileged user (runuser -u nobody),
# exit 0 and a file in the maildrop, `tern queue` listing it as waiting for pickup, start
# tern, the message in the Maildir with the right sender; a forged -f; garbage and symlinks
# set aside; a refused recipient told to the sender; pickup while tern runs.
#
#   tests/integration/test_maildrop.sh BUILD_DIR
#
# Runs tests/integration/maildrop/scenario.sh inside a private network namespace (testkit
# netns-run). Prints "PASS name" / "FAIL name: reason" lines; exit 1 if any check failed.
# Needs root (namespace, runuser). MAILDROP_KEEP=1 keeps the work directory.
suite=maildrop keep_var=MAILDROP_KEEP
# shellcheck source=tests/integration/scenario-setup.sh
. "$(dirname "$0")/scenario-setup.sh" "$@"

export M_ROOT=$root M_TERN=$build/tern M_KIT=$testkit M_WORK=$work
timeout 280 "$testkit/netns-run" -- bash "$root/tests/integration/maildrop/scenario.sh"
rc=$?
[ "$rc" = 0 ] || [ "$rc" = 3 ] || echo "FAIL maildrop-scenario: exited with status $rc"
[ "$rc" = 0 ] && exit 0
exit 1
