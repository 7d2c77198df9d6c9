#!/bin/sh
# install-deps.sh [build|test|bench|check-tls|valgrind] - install the Debian 12 packages tern
# needs, if missing.
#
#   build  compiler and libraries: what `make` and `make run` need (the default)
#   test   build + what `make test` needs: clang with sanitizers, cmocka, the SMTP/IMAP/DNS
#          programs the integration tests talk to (postfix for tern send --xclient), network
#          namespaces
#   bench  build + the peers the benchmarks compare against (`make bench`): postfix (with
#          smtp-source and smtp-sink) installed, and opensmtpd unpacked under
#          /opt/tern-bench/opensmtpd (its package conflicts with postfix's, so it is fetched
#          with `apt-get download` and extracted, plus its opensmtpd/opensmtpq users)
#   check-tls  test + testssl.sh, the TLS scanner `make check-tls` runs
#   valgrind   test + valgrind, for `make check-valgrind`
#
# Installs only what `dpkg -s` does not report as installed, runs `apt-get update` only when
# something must be installed, and needs nothing but Debian's archive. As root it also
# creates the `tern` system user the workers run as. Not root with something missing: prints
# the apt-get command to run and exits 1.
set -eu

what=${1:-build}
build_pkgs="gcc make pkg-config libevent-dev libssl-dev libc-ares-dev libcrypt-dev openssl"
case $what in
    build) pkgs=$build_pkgs ;;
    test) pkgs="$build_pkgs clang libclang-rt-14-dev libcmocka-dev swaks curl python3
                python3-aiosmtpd dovecot-imapd nsd postfix iproute2 util-linux procps" ;;
    bench) pkgs="$build_pkgs postfix" ;;
    check-tls) pkgs="$build_pkgs clang libclang-rt-14-dev iproute2 util-linux procps testssl.sh" ;;
    valgrind) pkgs="$build_pkgs valgrind libcmocka-dev swaks curl python3 python3-aiosmtpd
                    dovecot-imapd nsd postfix iproute2 util-linux procps" ;;
    *) echo "usage: sh scripts/install-deps.sh [build|test|bench|check-tls|valgrind]" >&2; exit 2 ;;
esac
# test_ocsp.py signs the OCSP responses `openssl ocsp` cannot make (expired ones) with it.
case $what in test|valgrind) pkgs="$pkgs python3-cryptography" ;; esac

missing=""
for p in $pkgs; do
    dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing="$missing $p"
done

root=false
[ "$(id -u)" = 0 ] && root=true

if [ -n "$missing" ]; then
    if ! $root; then
        echo "install-deps: missing Debian packages:$missing" >&2
        echo "install-deps: install them as root:  apt-get install$missing" >&2
        exit 1
    fi
    echo "install-deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    # postfix asks where it is; "No configuration" keeps it from touching port 25.
    case " $missing " in
        *" postfix "*) echo "postfix postfix/main_mailer_type select No configuration" |
                           debconf-set-selections ;;
    esac
    # Servers the tests start privately (dovecot, nsd, postfix) must not also be started on
    # the host by their packages: a policy-rc.d that says "no" for the install's duration.
    policy=/usr/sbin/policy-rc.d
    ours=false
    if [ ! -e $policy ]; then
        printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy && ours=true
    fi
    rc=0
    apt-get update -q && \
        # shellcheck disable=SC2086  # a list of package names
        apt-get install -y -q --no-install-recommends $missing </dev/null || rc=$?
    if $ours; then rm -f $policy; fi
    [ $rc = 0 ] || exit $rc
fi

# OpenSMTPD for the benchmarks: both packages provide mail-transport-agent and conflict, so
# the second one is unpacked beside the system instead of installed into it.
if [ "$what" = bench ] && $root && [ ! -x /opt/tern-bench/opensmtpd/usr/sbin/smtpd ] &&
        apt-cache show opensmtpd >/dev/null 2>&1; then
    echo "install-deps: unpacking opensmtpd under /opt/tern-bench/opensmtpd"
    tmp=$(mktemp -d)
    chown _apt "$tmp" 2>/dev/null || chmod 777 "$tmp" # apt-get download runs as _apt
    if (cd "$tmp" && apt-get download -q opensmtpd </dev/null); then
        mkdir -p /opt/tern-bench/opensmtpd
        dpkg-deb -x "$tmp"/opensmtpd_*.deb /opt/tern-bench/opensmtpd
    else
        echo "install-deps: cannot download opensmtpd; make bench skips it" >&2
    fi
    rm -rf "$tmp"
fi
if [ "$what" = bench ] && $root && [ -x /opt/tern-bench/opensmtpd/usr/sbin/smtpd ]; then
    for u in opensmtpd opensmtpq; do
        getent passwd $u >/dev/null || useradd --system --home-dir /nonexistent \
            --no-create-home --shell /usr/sbin/nologin --user-group $u
    done
    # Compiled-in paths smtpd checks at start (the benchmark bind-mounts private directories
    # over /var/spool/smtpd and /run inside its namespace).
    mkdir -p /var/lib/opensmtpd/empty /var/spool/smtpd
    # As the package's postinst does: smtpctl talks to the daemon as group opensmtpq.
    chgrp opensmtpq /opt/tern-bench/opensmtpd/usr/sbin/smtpctl
    chmod 2555 /opt/tern-bench/opensmtpd/usr/sbin/smtpctl
fi

# The unprivileged user tern's workers and queue manager run as when started as root.
if $root && ! getent passwd tern >/dev/null; then
    echo "install-deps: creating the system user tern"
    useradd --system --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin \
        --user-group tern
fi
exit 0
