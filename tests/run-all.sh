#!/bin/sh
# run-all.sh - tern's test runner: cmocka unit tests, then the integration suites.
#
#   sh tests/run-all.sh BUILD [unit|integration|fuzz|all]
#
# unit:        every BUILD/tests/test_* (cmocka programs), each under a time limit; counts
#              cmocka's "[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)" lines, and one
#              failure for a program that dies without its summary (a sanitizer report).
# integration: tests/integration/run.py (the Python suites, real `tern serve` + real clients)
#              inside a private network namespace (testkit/netns-run: only loopback exists,
#              everything started inside is killed at the end), then every
#              tests/integration/test_*.sh (they make their own namespace). Counts the
#              "PASS name" / "FAIL name: reason" lines they print.
# fuzz:        every libFuzzer target in TERN_FUZZ_BUILD (default build/fuzz: `make test` builds
#              them with clang) replays its seed corpus tests/fuzz/corpus/<target>/ (the crash
#              regressions are in there) and runs a few thousand fixed-seed mutations, at most
#              TERN_FUZZ_SECONDS (default 8) each; one PASS or FAIL per target. Skipped with a
#              note when no target is built.
# TERN_VALGRIND=1 (`make check-valgrind`, with a gcc build without sanitizers): every unit
#              test program runs under valgrind memcheck, and every tern (and C helper) the
#              integration tests start runs under it too (TERN_WRAPPER, children followed);
#              each process with a memcheck error or a definite leak is one FAIL
#              "valgrind/..." (through tests/vgwrap.sh). Time limits are multiplied by TERN_IT_SLOW (default 10).
#              "all" is then unit + integration (fuzzing needs the sanitizer build).
# Prints the names of failed tests, then one final line "N passed, N failed"; exits 1 if any
# test failed or none ran. Environment: TERN_TESTKIT (default REPO/../shared/testkit),
# TERN_PYTHON (default /usr/bin/python3: Debian's, which has python3-aiosmtpd),
# TERN_IT_JOBS (integration files run at once, default 3), TERN_UNIT_TIMEOUT (seconds, 300).
# See docs/testing.md.
set -u

usage() { echo "usage: sh tests/run-all.sh BUILD [unit|integration|fuzz|all]" >&2; exit 2; }
[ $# -ge 1 ] || usage
repo=$(cd "$(dirname "$0")/.." && pwd)
build=$1
mode=${2:-all}
case $build in /*) ;; *) build=$(pwd)/$build ;; esac
case $mode in unit|integration|fuzz|all) ;; *) usage ;; esac
testkit=${TERN_TESTKIT:-$repo/../shared/testkit}
py=${TERN_PYTHON:-/usr/bin/python3}
[ -x "$py" ] || py=python3
unit_timeout=${TERN_UNIT_TIMEOUT:-300}
export TERN_TESTKIT="$testkit" TESTKIT="${TESTKIT:-$testkit}"

work=$(mktemp -d /tmp/tern-run-all.XXXXXX) || exit 1
trap 'rm -rf "$work"' EXIT

# Under valgrind: one memcheck command line for everything, a log file per process.
vg=${TERN_VALGRIND:-0}
slow=1
unit_wrap=""
if [ "$vg" = 1 ]; then
    command -v valgrind >/dev/null || { echo "run-all: valgrind is not installed" >&2; exit 1; }
    slow=${TERN_IT_SLOW:-10}
    mkdir -p "$work/valgrind" && chmod 1777 "$work/valgrind" && chmod 755 "$work"
    vgopts="--error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite"
    vgopts="$vgopts --show-leak-kinds=definite --trace-children=yes --child-silent-after-fork=no"
    vgopts="$vgopts --num-callers=30"
    # No gdbserver: its /tmp/vgdb-pipe-*-PID files outlive a run, and a process of another
    # user with a reused PID (a pipe alias's child of the queue manager) then could not
    # create its own and valgrind exited 1 ("cannot create shared_mem file").
    vgopts="$vgopts --vgdb=no"
    export TERN_IT_SLOW="$slow"
    unit_timeout=$((unit_timeout * slow))
fi

# vg_tag TAG: processes started from now on log to valgrind/TAG.XXXXXX.PID.log, XXXXXX unique
# to each start (tests/vgwrap.sh: PIDs repeat across namespaces and wrap around in a long run).
vg_tag() {
    [ "$vg" = 1 ] || return 0
    unit_wrap="sh $repo/tests/vgwrap.sh $work/valgrind $1"
    export TERN_WRAPPER="$unit_wrap" TERN_VGOPTS="$vgopts"
}
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
        vg_tag "$name"
        # shellcheck disable=SC2086  # $unit_wrap is a command prefix or nothing
        timeout "$unit_timeout" $unit_wrap "$t" >"$work/out" 2>"$work/err" </dev/null
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
        vg_tag run.py
        if [ "$(id -u)" = 0 ] && [ -x "$testkit/netns-run" ]; then
            ns="$testkit/netns-run --"
        else
            echo "run-all: not root or no $testkit/netns-run: integration tests run without a" \
                 "private network namespace (loopback only all the same)" >&2
            ns=""
        fi
        # shellcheck disable=SC2086  # $ns is a command prefix or nothing
        { timeout $((900 * slow)) $ns "$py" -u "$repo/tests/integration/run.py" "$build" 2>&1
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
        vg_tag "$(basename "$s" .sh)"
        { timeout $((300 * slow)) bash "$s" "$build" 2>&1; echo $? >"$work/rc"; } | tee "$work/sh"
        count "$work/sh"
        rc=$(cat "$work/rc")
        if [ "$rc" -ne 0 ] && ! grep -q '^FAIL ' "$work/sh"; then
            add 0 1
            fail_name "integration/$(basename "$s"): exited with status $rc"
        fi
    done
}

# ---- fuzz targets -------------------------------------------------------------------------

run_fuzz() {
    fuzz_build=${TERN_FUZZ_BUILD:-$repo/build/fuzz}
    fuzz_seconds=${TERN_FUZZ_SECONDS:-8}
    found=0
    for bin in "$fuzz_build"/fuzz_*; do
        if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then continue; fi
        found=1
        name=$(basename "$bin")
        seeds=$repo/tests/fuzz/corpus/$name
        scratch=$work/corpus-$name
        mkdir -p "$scratch"
        echo "== fuzz: $name"
        if [ ! -d "$seeds" ]; then
            echo "FAIL fuzz/$name: no seed corpus in tests/fuzz/corpus/$name"
            add 0 1
            fail_name "fuzz/$name: no seed corpus"
            continue
        fi
        # New inputs go to the scratch directory (listed first), never into the seeds.
        timeout $((fuzz_seconds + 60)) "$bin" -seed=1 -runs=4000 -max_total_time="$fuzz_seconds" \
            -print_final_stats=1 -artifact_prefix="$work/$name-" "$scratch" "$seeds" \
            >"$work/fuzz.log" 2>&1 </dev/null
        rc=$?
        if [ "$rc" -eq 0 ]; then
            echo "PASS fuzz/$name ($(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log") runs)"
            add 1 0
        else
            tail -40 "$work/fuzz.log"
            echo "FAIL fuzz/$name: exited with status $rc (crash, sanitizer report or timeout)"
            add 0 1
            fail_name "fuzz/$name: exited with status $rc"
        fi
    done
    [ "$found" = 1 ] || echo "run-all: no fuzz targets in $fuzz_build (make test builds them)" >&2
}

# ---- valgrind logs -------------------------------------------------------------------------

# One PASS line for a clean run, one FAIL per process whose log shows a memcheck error or a
# definite leak (the summary counts both, --errors-for-leak-kinds=definite).
check_valgrind() {
    bad=0 n=0
    for l in "$work"/valgrind/*.log; do
        [ -f "$l" ] || continue
        n=$((n + 1))
        grep -q 'ERROR SUMMARY: [1-9]' "$l" || continue
        bad=$((bad + 1))
        cmd=$(sed -n 's/^==[0-9]*== Command: //p' "$l" | head -1 | cut -c1-120)
        echo "---- valgrind: $l"
        grep -v '^==[0-9]*== *$' "$l" | head -80
        echo "FAIL valgrind/$(basename "$l" .log): memcheck errors in: $cmd"
        add 0 1
        fail_name "valgrind/$(basename "$l" .log): $cmd"
    done
    if [ "$bad" = 0 ]; then
        echo "PASS valgrind: $n processes, no memcheck error or definite leak"
        add 1 0
    fi
}

case $mode in
    unit) run_unit ;;
    integration) run_integration ;;
    fuzz) run_fuzz ;;
    all) run_unit; run_integration; [ "$vg" = 1 ] || run_fuzz ;;
esac
[ "$vg" = 1 ] && [ "$mode" != fuzz ] && check_valgrind

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
