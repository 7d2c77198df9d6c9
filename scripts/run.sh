#!/bin/sh
# run.sh - the last step of `make run`: start build/tern serve on the built-in default
# configuration (etc/tern.conf) from the top of the checkout, in the foreground, after a
# short banner saying where it listens, where the mail goes and how to try it.
#
# Everything tern writes stays under var/ in the checkout (the spool and the Maildirs).
# Started as root, the workers and the queue manager run as user tern (created by
# scripts/install-deps.sh) and tern hands var/spool and var/mail to that user.
# Stop it with Ctrl-C (SIGINT) or SIGTERM. TERN_BIN overrides the binary.
set -eu
cd "$(dirname "$0")/.."
bin=${TERN_BIN:-build/tern}
conf=etc/tern.conf

if [ ! -x "$bin" ]; then
    echo "run.sh: $bin is not built; run \`make run\` (or \`make\` first)" >&2
    exit 1
fi
mkdir -p var
if [ "$(id -u)" != 0 ] && [ -e var/spool ] && ! [ -w var/spool ]; then
    echo "run.sh: var/spool is not writable by $(id -un) (left by \`make run\` as root?)." >&2
    echo "run.sh: give it back with:  sudo chown -R $(id -un) var" >&2
    exit 1
fi
if [ "$(id -u)" = 0 ] && [ -d var/mail ] && getent passwd tern >/dev/null; then
    # Maildirs left by a run as another user: the queue manager, as tern, must write them.
    chown -R tern: var/mail
fi

# TLS out of the box: a self-signed certificate for the default configuration, made once.
if [ ! -s var/tls/cert.pem ] || [ ! -s var/tls/key.pem ]; then
    mkdir -p var/tls
    (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -days 825 -subj "/CN=tern.localhost" \
        -addext "subjectAltName=DNS:tern.localhost,DNS:localhost,IP:127.0.0.1" \
        -keyout var/tls/key.pem -out var/tls/cert.pem 2>/dev/null)
    echo "run.sh: created a self-signed certificate in var/tls/ (key readable by $(id -un) only)"
fi

listen=$(sed -n 's/^listen[[:space:]]\{1,\}\([^[:space:]]*\)[[:space:]]*\([a-z]*\).*/\1 (\2)/p' \
    "$conf" | sed 's/ ()$/ (smtp)/' | paste -sd, - | sed 's/,/, /g')
port=$(sed -n 's/^listen[[:space:]]\{1,\}[^[:space:]]*:\([0-9]*\).*/\1/p' "$conf" | head -n 1)
whoruns="as $(id -un)"
[ "$(id -u)" = 0 ] && whoruns="supervisor as root, workers and queue manager as user tern"

cat <<EOF
$("$bin" version) - make run: the built-in configuration ($conf), $whoruns
  listening on  $listen  (loopback only)
  mailboxes     demo@localhost, postmaster@localhost
  demo Maildir  $(pwd)/var/mail/localhost/demo/new/
  queue         $(pwd)/var/spool/
  try it        swaks --server 127.0.0.1:$port --to demo@localhost
  with TLS      swaks --server 127.0.0.1:2587 --tls --to demo@localhost   (STARTTLS)
                swaks --server 127.0.0.1:2465 --tlsc --to demo@localhost  (implicit TLS)
  certificate   $(pwd)/var/tls/cert.pem (self-signed)
  stop          Ctrl-C
EOF
exec "$bin" serve
