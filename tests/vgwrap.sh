#!/bin/sh
# vgwrap.sh DIR TAG PROGRAM [ARGS...] - run PROGRAM under valgrind memcheck for `make
# check-valgrind` (tests/run-all.sh sets TERN_VGOPTS and uses this as TERN_WRAPPER), logging
# to DIR/TAG.XXXXXX.PID.log. The XXXXXX is unique to this start: PIDs wrap around during a
# long run (pid_max is 32768 here), and a later process must neither truncate an earlier
# process's log (losing its report) nor, as another user (a pipe command run as the mail
# user), fail to open it and exit 1. Children valgrind follows inherit the same name prefix.
dir=$1 tag=$2
shift 2
prefix=$(mktemp "$dir/$tag.XXXXXX") || exit 1   # the empty file reserves the name
# shellcheck disable=SC2086  # TERN_VGOPTS is a list of options
exec valgrind $TERN_VGOPTS --log-file="$prefix.%p.log" "$@"
