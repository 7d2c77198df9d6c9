#!/bin/sh
# run.sh BUILD - run bench/bench.py against BUILD/tern inside a private network namespace
# (testkit/netns-run: only loopback; everything started inside dies with it), with
# RLIMIT_NOFILE raised to its hard limit (10,000 idle connections need about 10,100).
# What `make bench` runs.
#   BENCH_QUICK=1        smaller counts, one run per figure (a few minutes)
#   BENCH_ONLY=tern,...  only these servers (tern, postfix, opensmtpd)
#   BENCH_FIGURES=TEXT   only the figures whose name contains TEXT (e.g. "accept 20";
#                        several: "accept 20 sessions 1,end to end")
set -eu
[ $# -eq 1 ] || { echo "usage: sh bench/run.sh BUILD" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
testkit=${TERN_TESTKIT:-$repo/../shared/testkit}
set -- "$repo/bench/bench.py" "$build/tern"
[ "${BENCH_QUICK:-0}" = 1 ] && set -- "$@" --quick
[ -n "${BENCH_ONLY:-}" ] && set -- "$@" --only "$BENCH_ONLY"
[ -n "${BENCH_FIGURES:-}" ] && set -- "$@" --figures "$BENCH_FIGURES"
exec "$testkit/netns-run" -- sh -c 'ulimit -n "$(ulimit -Hn)" && exec python3 "$@"' bench "$@"
