#!/bin/sh
# run.sh BUILD SECONDS - run every libFuzzer target in BUILD for SECONDS each, on its corpus
# (tests/fuzz/corpus/<target>/, seeds committed; new inputs found go to a scratch copy), with
# the dictionary tests/fuzz/<target>.dict when there is one.
# Exit status non-zero if any target found a crash; the crashing input is left in BUILD.
set -u
build=$1 seconds=$2 failed=0
for bin in "$build"/fuzz_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin")
    seeds=tests/fuzz/corpus/$name
    work=$build/corpus-$name
    mkdir -p "$seeds" "$work"
    dict=""
    [ -f "tests/fuzz/$name.dict" ] && dict="-dict=tests/fuzz/$name.dict"
    echo "fuzz: $name for ${seconds}s"
    # shellcheck disable=SC2086  # $dict is one option or nothing
    if ! "$bin" $dict -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$build/$name-" \
        "$work" "$seeds" >"$build/$name.log" 2>&1; then
        echo "fuzz: $name FAILED, see $build/$name.log"; tail -30 "$build/$name.log"
        failed=1
    else
        # executions, seconds, coverage (edges) and features of the last status line
        grep -E '^#[0-9]+[[:space:]]+DONE' "$build/$name.log" | tail -1 |
            sed "s/^#\([0-9]*\).*cov: \([0-9]*\) ft: \([0-9]*\).*/fuzz: $name: \1 runs in ${seconds}s, cov \2, ft \3/"
    fi
done
exit $failed
