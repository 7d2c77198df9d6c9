#!/bin/sh
# test_users.sh - `tern user add|passwd|del|list` on a real users file: the file's format
# (docs/auth.md), its mode (0640), atomic rewrite (no temporary file left), passwords from
# --password-stdin and --password, -c CONFIG with users_file, and every refusal. No network.
#
#   tests/integration/test_users.sh BUILD_DIR
#
# Prints "PASS name" / "FAIL name: reason" per check; exits 0 (the runner counts the lines).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
bin=$build/tern
[ -x "$bin" ] || { echo "FAIL users-setup: $bin is not built"; exit 0; }

dir=$(mktemp -d /tmp/tern-users-test.XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT
. "$root/tests/integration/wrap.sh"
bin=$(tern_wrap "$bin" "$dir")
f=$dir/users

ok() { echo "PASS users-$1"; }
bad() { echo "FAIL users-$1: $2"; }
check() { # name, then a command that must succeed
    n=$1; shift
    if "$@" >"$dir/out" 2>&1; then ok "$n"; else bad "$n" "$(head -c 300 "$dir/out")"; fi
}
refuse() { # name, expected stderr fragment, then a command that must fail
    n=$1 want=$2; shift 2
    if "$@" >"$dir/out" 2>&1; then bad "$n" "succeeded"
    elif grep -q -- "$want" "$dir/out"; then ok "$n"
    else bad "$n" "no '$want' in: $(head -c 300 "$dir/out")"; fi
}

check add-stdin sh -c "printf 'secret one\n' | '$bin' user -f '$f' add alice@example.org --password-stdin"
check add-cram "$bin" user -f "$f" add bob --cram --password 'pw two' --iterations 4096
check mode sh -c "[ \"\$(stat -c %a '$f')\" = 640 ]"
check no-tmp-left sh -c "! ls '$dir' | grep -q tmp"
check format sh -c "grep -Eq '^alice@example.org:\\\$y\\\$[^:]+:10000,[A-Za-z0-9+/=]+,[A-Za-z0-9+/=]{44},[A-Za-z0-9+/=]{44}:\$' '$f' &&
                    grep -Eq '^bob:\\\$y\\\$[^:]+:4096,[^:]+:[0-9a-f]{64}\$' '$f'"
"$bin" user -f "$f" list >"$dir/list" 2>&1
if grep -q '^alice@example.org	PLAIN LOGIN SCRAM-SHA-256$' "$dir/list" &&
   grep -q '^bob	PLAIN LOGIN SCRAM-SHA-256 CRAM-MD5$' "$dir/list"; then ok list
else bad list "$(cat "$dir/list")"; fi

old=$(grep '^alice' "$f")
check passwd sh -c "printf 'new pw\n' | '$bin' user -f '$f' passwd alice@example.org --password-stdin"
new=$(grep '^alice' "$f")
[ -n "$new" ] && [ "$old" != "$new" ] && ok passwd-changed || bad passwd-changed "line unchanged"
[ "$(grep -c . "$f")" = 3 ] && ok passwd-no-duplicate || bad passwd-no-duplicate "$(cat "$f")"

refuse add-exists "exists" "$bin" user -f "$f" add bob --password x
refuse passwd-missing "no user" "$bin" user -f "$f" passwd carol --password x
refuse del-missing "no user" "$bin" user -f "$f" del carol
refuse bad-name "invalid user name" "$bin" user -f "$f" add 'a:b' --password x
refuse empty-password "empty password" sh -c "printf '\n' | '$bin' user -f '$f' add carol --password-stdin"
refuse no-tty "use --password-stdin" setsid -w sh -c "'$bin' user -f '$f' add carol </dev/null"
refuse no-file "which users file" "$bin" user add carol --password x
refuse unknown-cmd "unknown command" "$bin" user -f "$f" frob
refuse list-missing-file "No such file" "$bin" user -f "$dir/nope" list
echo 'garbage line' >"$dir/broken"
refuse broken-file "line 1" "$bin" user -f "$dir/broken" list

check del "$bin" user -f "$f" del bob
grep -q '^bob:' "$f" && bad del-gone "bob still there" || ok del-gone

# -c CONFIG: the users_file keyword names the file
cat >"$dir/tern.conf" <<EOF
listen 127.0.0.1:2525
local_domain example.org
users_file $dir/users2
EOF
check config-add "$bin" user -c "$dir/tern.conf" add dave --password 'x y z'
grep -q '^dave:' "$dir/users2" && ok config-file || bad config-file "no dave in users2"
exit 0
