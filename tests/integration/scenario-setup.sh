# scenario-setup.sh - sourced by the test_*.sh suites that run a scenario script inside a
# private network namespace with NSD and aiosmtpd peers (test_outbound.sh, test_queue.sh).
#
#   suite=NAME keep_var=NAME_KEEP . "$(dirname "$0")/scenario-setup.sh" "$@"
#
# Sets root (the repository), build (absolute), testkit and work (a fresh directory, removed
# at exit unless $keep_var is 1). Checks what every such scenario needs (the tern binary, the
# testkit, root, nsd, python3-aiosmtpd) and exits with one "FAIL" line when something lacks.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
testkit=${TESTKIT:-${TERN_TESTKIT:-$root/../shared/testkit}}

[ -x "$build/tern" ] || { echo "FAIL $suite: $build/tern is not built"; exit 1; }
[ -x "$testkit/netns-run" ] || { echo "FAIL $suite: no testkit at $testkit"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "FAIL $suite: needs root (network namespace)"; exit 1; }
command -v nsd >/dev/null || { echo "FAIL $suite: nsd is not installed"; exit 1; }
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null ||
    { echo "FAIL $suite: python3-aiosmtpd is not installed"; exit 1; }

work=$(mktemp -d "/tmp/test_$suite.XXXXXX") || exit 1
chmod 755 "$work"
if [ "$(eval "echo \${$keep_var:-0}")" = 1 ]; then
    echo "$suite: keeping $work" >&2
else
    trap 'rm -rf "$work"' EXIT
fi
