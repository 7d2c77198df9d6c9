#!/bin/sh
# run-all.sh - tern's test runner: cmocka unit tests, then the integration suites.
#
#   sh tests/run-all.sh BUILD [unit|integration|all]
#
# unit:        every BUILD/tests/test_* (cmocka programs), each under a time limit; counts
#              cmocka's "[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)" lines, and one
#              failure for a program that dies without its summary (a sanitizer report).
# integration: tests/integration/run.py (the Python suites, real `tern serve` + real clients)
#              inside a private network namespace (testkit/netns-run: only loopback exists,
#              everything started inside is killed at the end), then every
#              tests/integration/test_*.sh (they make their own namespace). Counts the
#              "PASS name" / "FAIL name: reason" lines they print.
# Prints the names of failed tests, then one final line "N passed, N failed"; exits 1 if any
# test failed or none ran. Environment: TERN_TESTKIT (default REPO/../shared/testkit),
# TERN_PYTHON (default /usr/bin/python3: Debian's, which has python3-aiosmtpd),
# TERN_IT_JOBS (integration files run at once, default 3), TERN_UNIT_TIMEOUT (seconds, 300).
# See docs/testing.md.
set -u

usage() { echo "usage: sh tests/run-all.sh BUILD [unit|integration|all]" >&2; exit 2; }
[ $# -ge 1 ] || usage
repo=$(cd "$(dirname "$0")/.." && pwd)
build=$1
mode=${2:-all}
case $build in /*) ;; *) build=$(pwd)/$build ;; esac
case $mode in unit|integration|all) ;; *) usage ;; esac
testkit=${TERN_TESTKIT:-$repo/../shared/testkit}
py=${TERN_PYTHON:-/usr/bin/python3}
[ -x "$py" ] || py=python3
unit_timeout=${TERN_UNIT_TIMEOUT:-300}
export TERN_TESTKIT="$testkit" TESTKIT="${TESTKIT:-$testkit}"

work=$(mktemp -d /tmp/tern-run-all.XXXXXX) || exit 1
trap 'rm -rf "$work"' EXIT
: >"$work/failed"
passed=0
failed=0

add() { passed=$((passed + $1)); failed=$((failed + $2)); }
fail_name() { printf '%s\n' "$1" >>"$work/failed"; }

# ---- unit tests ---------------------------------------------------------------------------

run_unit() {
    found=0
    for t in "$build"/tests/test_*; do
        if [ ! -f "$t" ] || [ ! -x "$t" ]; then continue; fi
        found=1
        name=$(basename "$t")
        echo "== unit: $name"
        timeout "$unit_timeout" "$t" >"$work/out" 2>"$work/err" </dev/null
        rc=$?
        cat "$work/out" "$work/err"
        # cmocka prints "[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s), listed below:"
        # per group, then "[  FAILED  ] name" for each failed test.
        # shellcheck disable=SC2046  # three numbers
        set -- $(cat "$work/out" "$work/err" | awk '
            /^\[  PASSED  \] [0-9]+ test/ { p += $4 }
            /^\[  FAILED  \] [0-9]+ test/ { f += $4; next }
            /^\[==========\] [0-9]+ test\(s\) run/ { s++ }
            END { print p + 0, f + 0, s + 0 }')
        np=$1 nf=$2 summaries=$3
        cat "$work/out" "$work/err" | awk '
            /^\[  FAILED  \] [0-9]+ test/ { next }
            /^\[  FAILED  \] / { sub(/^\[  FAILED  \] /, ""); print }' | sort -u |
            while IFS= read -r n; do fail_name "unit/$name: $n"; done
        if [ "$rc" -ne 0 ] && [ "$nf" -eq 0 ]; then
            # died without reporting a failure: crash, sanitizer abort, timeout (124);
            # what completed before it still counts
            [ "$summaries" -gt 0 ] || np=$(grep -c '^\[       OK \]' "$work/out")
            nf=1
            fail_name "unit/$name: exited with status $rc (crash, sanitizer report or timeout)"
        elif [ "$rc" -eq 0 ] && [ "$summaries" -eq 0 ]; then
            nf=1
            fail_name "unit/$name: printed no cmocka summary"
        fi
        add "$np" "$nf"
    done
    [ "$found" = 1 ] || echo "run-all: no unit test programs in $build/tests/" >&2
}

# ---- integration tests --------------------------------------------------------------------

# count FILE: add its PASS/FAIL lines; FAIL names go to the failed list.
count() {
    # shellcheck disable=SC2046  # two numbers
    set -- "$1" $(awk '/^PASS /{p++} /^FAIL /{f++} END{print p+0, f+0}' "$1")
    add "$2" "$3"
    sed -n 's/^FAIL //p' "$1" | while IFS= read -r n; do fail_name "integration/$n"; done
}

run_integration() {
    if [ ! -x "$build/tern" ]; then
        echo "FAIL integration: $build/tern is not built"
        add 0 1
        fail_name "integration: $build/tern is not built"
    else
        echo "== integration: tests/integration/run.py"
        if [ "$(id -u)" = 0 ] && [ -x "$testkit/netns-run" ]; then
            ns="$testkit/netns-run --"
        else
            echo "run-all: not root or no $testkit/netns-run: integration tests run without a" \
                 "private network namespace (loopback only all the same)" >&2
            ns=""
        fi
        # shellcheck disable=SC2086  # $ns is a command prefix or nothing
        { timeout 900 $ns "$py" -u "$repo/tests/integration/run.py" "$build" 2>&1
          echo $? >"$work/rc"; } | tee "$work/it"
        count "$work/it"
        rc=$(cat "$work/rc")
        if [ "$rc" -ne 0 ] && ! grep -q '^FAIL ' "$work/it"; then
            add 0 1
            fail_name "integration/run.py: exited with status $rc"
        fi
    fi
    for s in "$repo"/tests/integration/test_*.sh; do
        [ -f "$s" ] || continue
        echo "== integration: ${s#"$repo"/}"
        { timeout 300 bash "$s" "$build" 2>&1; echo $? >"$work/rc"; } | tee "$work/sh"
        count "$work/sh"
        rc=$(cat "$work/rc")
        if [ "$rc" -ne 0 ] && ! grep -q '^FAIL ' "$work/sh"; then
            add 0 1
            fail_name "integration/$(basename "$s"): exited with status $rc"
        fi
    done
}

case $mode in
    unit) run_unit ;;
    integration) run_integration ;;
    all) run_unit; run_integration ;;
esac

echo
if [ -s "$work/failed" ]; then
    echo "Failed tests:"
    sed 's/^/  /' "$work/failed"
fi
status=0
[ "$failed" -eq 0 ] || status=1
if [ $((passed + failed)) -eq 0 ]; then
    echo "run-all: no test ran" >&2
    status=1
fi
echo "$passed passed, $failed failed"
exit "$status"
