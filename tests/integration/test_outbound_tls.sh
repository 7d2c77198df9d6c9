#!/bin/bash
# test_outbound_tls.sh - the outbound TLS security levels (none, may, encrypt, verify; per
# transport and global) and the double bounce, end to end: tern's queue manager delivers to
# aiosmtpd servers (the testkit's smtp-capture) with test certificates (testkit mkcerts),
# found through a local DNS server (NSD), inside a private network namespace.
#
#   tests/integration/test_outbound_tls.sh BUILD_DIR
#
# Uses BUILD_DIR/tern and BUILD_DIR/tests/outbound_inject (make builds it with the unit
# tests). Prints "PASS name" / "FAIL name: reason" lines; exit 1 if any check failed. Needs
# root, nsd, python3-aiosmtpd, openssl and the testkit. OUTTLS_KEEP=1 keeps the work directory.
suite=outbound_tls keep_var=OUTTLS_KEEP
# shellcheck source=tests/integration/scenario-setup.sh
. "$(dirname "$0")/scenario-setup.sh" "$@"

inject=$build/tests/outbound_inject
[ -x "$inject" ] || { echo "FAIL outtls-inject: $inject is not built (make ... $inject)"; exit 1; }
. "$root/tests/integration/wrap.sh"
export OB_ROOT=$root OB_TERN=$(tern_wrap "$build/tern" "$work") OB_INJECT=$(tern_wrap "$inject" "$work")
export OB_KIT=$testkit OB_WORK=$work OB_SLOW=$(tern_slow)
timeout $((240 * $(tern_slow))) "$testkit/netns-run" -r 127.0.0.53 -- \
    bash "$root/tests/integration/outtls/scenario.sh"
rc=$?
[ "$rc" = 0 ] || [ "$rc" = 3 ] || echo "FAIL outtls-scenario: exited with status $rc"
[ "$rc" = 0 ] && exit 0
exit 1
