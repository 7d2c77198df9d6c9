#!/bin/bash
# test_outbound.sh - outbound delivery end to end: tern's queue manager delivers to fake
# remote domains served by a local DNS server (NSD, tests/lib/dns-server) and to real SMTP
# servers (the testkit's smtp-capture) on loopback addresses, inside a private network
# namespace. Covers MX fallback, implicit MX, null MX, IPv6, retries after 451, bounces
# (read back from the sender's Maildir), delay warnings, success DSNs, STARTTLS, CHUNKING,
# 8-bit content to a server without 8BITMIME (converted to quoted-printable, or 5.6.3),
# AUTH to a relay, connection reuse, timeouts and a restart with deferred mail.
#
#   tests/integration/test_outbound.sh BUILD_DIR
#
# Uses BUILD_DIR/tern and BUILD_DIR/tests/outbound_inject (built from
# tests/integration/outbound/inject.c and BUILD_DIR/libtern.a here when missing). Prints
# "PASS name" / "FAIL name: reason" lines; exit 1 if any check failed. Needs root, nsd,
# python3-aiosmtpd, openssl, and the testkit (TESTKIT, default ../shared/testkit).
# OUTBOUND_KEEP=1 keeps the work directory (logs, spool, captures).
suite=outbound keep_var=OUTBOUND_KEEP
# shellcheck source=tests/integration/scenario-setup.sh
. "$(dirname "$0")/scenario-setup.sh" "$@"

inject=$build/tests/outbound_inject
if [ ! -x "$inject" ]; then
    # Not built by the Makefile: build it here against the library (with the sanitizers when
    # the library was built with them).
    inject=$work/outbound_inject
    libs=$(pkg-config --libs libevent libevent_openssl libcares openssl)
    built=0
    for flags in "" "-fsanitize=address,undefined"; do
        # shellcheck disable=SC2086  # word lists
        if ${CC:-cc} $flags -D_GNU_SOURCE -I"$root/src" -std=c17 -o "$inject" \
                "$root/tests/integration/outbound/inject.c" "$build/libtern.a" $libs \
                2>"$work/cc.log" ||
           clang $flags -D_GNU_SOURCE -I"$root/src" -std=c17 -o "$inject" \
                "$root/tests/integration/outbound/inject.c" "$build/libtern.a" $libs \
                2>>"$work/cc.log"; then
            built=1
            break
        fi
    done
    if [ "$built" = 0 ]; then
        echo "FAIL outbound-inject-build: $(head -c 600 "$work/cc.log")"
        exit 1
    fi
fi

. "$root/tests/integration/wrap.sh"
inject=$(tern_wrap "$inject" "$work")
export OB_ROOT=$root OB_TERN=$(tern_wrap "$build/tern" "$work") OB_INJECT=$inject OB_KIT=$testkit
export OB_WORK=$work OB_SLOW=$(tern_slow)
timeout $((280 * $(tern_slow))) "$testkit/netns-run" -r 127.0.0.53 -- \
    bash "$root/tests/integration/outbound/scenario.sh"
rc=$?
[ "$rc" = 0 ] || [ "$rc" = 3 ] || echo "FAIL outbound-scenario: exited with status $rc"
[ "$rc" = 0 ] && exit 0
exit 1
