# wrap.sh - sourced by the test_*.sh scripts: honour TERN_WRAPPER (a command prefix such as
# valgrind, see docs/testing.md) for the programs they start.
#
#   bin=$(tern_wrap "$build/tern" "$dir")
#
# prints BIN itself when TERN_WRAPPER is empty, else the path of a small script in DIR that
# runs "$TERN_WRAPPER BIN ARGS...": callers keep using one path, quoted, as before.
tern_wrap() {
    if [ -z "${TERN_WRAPPER:-}" ]; then
        printf '%s\n' "$1"
        return
    fi
    w="$2/wrapped-$(basename "$1")"
    printf '#!/bin/sh\nexec %s %s "$@"\n' "$TERN_WRAPPER" "$1" >"$w" && chmod 755 "$w"
    printf '%s\n' "$w"
}

# The factor the scripts' own time limits are multiplied by: TERN_IT_SLOW (a whole number),
# default 10 under a wrapper, else 1.
tern_slow() {
    if [ -n "${TERN_IT_SLOW:-}" ]; then printf '%s\n' "${TERN_IT_SLOW%%.*}"
    elif [ -n "${TERN_WRAPPER:-}" ]; then echo 10
    else echo 1; fi
}
