# scenario-lib.sh - helpers sourced by the scenario scripts that run inside a private network
# namespace (outbound/, outtls/, queue/, maildrop/ scenario.sh): results, polling, smtp-capture
# peers, starting and stopping tern, reading what arrived.
#
#   T=WORKDIR kit=TESTKIT tern_bin=TERN prefix=NAME . "$OB_ROOT/tests/integration/scenario-lib.sh"
#
# Results are "PASS name" / "FAIL name: reason" lines; $failed is 1 after any FAIL. Waits are
# bounds, not timing assertions; they scale with OB_SLOW (a whole number, default 1).
# shellcheck disable=SC2034  # failed, tern_pid are the caller's
py=/usr/bin/python3
failed=0
pass() { echo "PASS $1"; }
fail() {
    echo "FAIL $1: $2"
    failed=1
}
# check NAME DESCRIPTION COMMAND...: PASS if COMMAND succeeds.
check() {
    local name=$1 what=$2
    shift 2
    if "$@"; then pass "$name"; else fail "$name" "$what"; fi
}
has() { grep -q -- "$2" "$1"; }
hasnt() { ! grep -q -- "$2" "$1"; }

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
    local limit=$(($1 * ${OB_SLOW:-1})) i=0
    shift
    while [ "$i" -lt $((limit * 10)) ]; do
        "$@" 2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# capture NAME ADDR PORT [smtp-capture options]: a peer writing what it accepts to $T/cap/NAME
declare -A cap_pid
capture() {
    local name=$1 addr=$2 port=$3
    shift 3
    mkdir -p "$T/cap/$name"
    local l=$addr:$port
    case $addr in *:*) l="[$addr]:$port" ;; esac
    "$py" "$kit/smtp-capture" -l "$l" -o "$T/cap/$name" --hostname "$name.capture.test" "$@" \
        >>"$T/cap-$name.log" 2>&1 &
    cap_pid[$name]=$!
    "$kit/wait-listen" "$addr" "$port" || fail "$prefix-capture-$name" "did not start"
}
stop_capture() {
    kill "${cap_pid[$1]}" 2>/dev/null
    wait "${cap_pid[$1]}" 2>/dev/null
}

# tern on $T/tern.conf, listening on 127.0.0.1:2525, logging to $T/tern.log
tern_pid=""
start_tern() {
    "$tern_bin" serve -c "$T/tern.conf" >>"$T/tern.log" 2>&1 &
    tern_pid=$!
    if ! "$kit/wait-listen" -t $((10 * ${OB_SLOW:-1})) 127.0.0.1 2525; then
        fail "$prefix-tern-start" "tern did not start: $(tail -c 800 "$T/tern.log")"
        exit 3
    fi
}
stop_tern() {
    kill -TERM "$tern_pid"
    local i=0
    while kill -0 "$tern_pid" 2>/dev/null && [ $i -lt $((150 * ${OB_SLOW:-1})) ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -0 "$tern_pid" 2>/dev/null && { fail "$prefix-tern-stop" "tern did not stop"; kill -KILL "$tern_pid"; }
    wait "$tern_pid" 2>/dev/null
}

# mail_in MAILDIR-NEW STRING...: the message there containing every fixed string given
mail_in() {
    local dir=$1 f p ok
    shift
    for f in "$dir"/*; do
        [ -f "$f" ] || continue
        ok=1
        for p in "$@"; do grep -qF -- "$p" "$f" || { ok=0; break; }; done
        [ $ok = 1 ] && { echo "$f"; return 0; }
    done
    return 1
}
json_with() { # NAME STRING: a captured envelope containing STRING
    grep -lF -- "$2" "$T/cap/$1"/*.json 2>/dev/null | head -1
}
has_json() { [ -n "$(json_with "$1" "$2")" ]; }
logged() { grep -F -- "$1" "$T/tern.log" | grep -qF -- "$2"; }
