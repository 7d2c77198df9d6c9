#!/bin/sh
# embed.sh NAME FILE - print a C file defining "const char NAME[]" with FILE's bytes and a NUL.
# Used to compile etc/tern.conf into the binary (no xxd needed: od is in coreutils).
set -eu
name=$1 file=$2
printf '/* generated from %s by scripts/embed.sh - do not edit */\n' "$file"
printf 'extern const char %s[];\nconst char %s[] = {\n' "$name" "$name"
od -An -v -tx1 "$file" | sed -e 's/  */ /g' -e 's/^ //' -e 's/ $//' -e '/^$/d' \
    -e 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'
printf '0x00 };\n'
