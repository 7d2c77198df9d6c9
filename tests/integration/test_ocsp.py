#!/usr/bin/python3
"""test_ocsp.py - OCSP stapling (RFC 6066 8, RFC 6960) on tern's TLS listeners.

A throwaway PKI (testkit/mkcerts, leaves re-issued with an OCSP responder URI in their
authorityInfoAccess, as real ones have) and OCSP responses made without any network:
`openssl ocsp -index` answers from a CA index file locally ("good", "revoked"), and Python's
cryptography signs the ones openssl cannot make (expired, not yet valid, status unknown).
`openssl s_client -status` (STARTTLS and smtps, TLS 1.2 and 1.3, SNI) shows what tern
staples. A response that is not usable is logged and not stapled, and never stops tern; SIGHUP
picks up a new file. See docs/tls.md ("OCSP stapling").

    /usr/bin/python3 tests/integration/test_ocsp.py BUILD_DIR [name-filter...]
"""
import atexit
import datetime
import os
import re
import shutil
import signal
import subprocess
import tempfile

from ternlib import (SANITIZER_RE, Group, TestFailure, check, free_port, mkcerts, poll,
                     run_main)
from ternlib import run_tool as run  # noqa: E402

HOST = "mx.tern.test"
OTHER = "mail.other.test"

PKI = tempfile.mkdtemp(prefix="tern-it-ocsp-pki.", dir=os.environ.get("TERN_IT_TMP") or None)
os.chmod(PKI, 0o755)
if not os.environ.get("TERN_IT_KEEP"):
    atexit.register(shutil.rmtree, PKI, True)


def openssl(*args, cwd=None):
    r = subprocess.run(["openssl"] + list(args), capture_output=True, timeout=60, cwd=cwd,
                       stdin=subprocess.DEVNULL)
    check(r.returncode == 0, "openssl %s failed: %s" % (" ".join(args),
                                                       r.stderr.decode("utf-8", "replace")))
    return r.stdout.decode("utf-8", "replace")


def leaf(directory, *names, keytype="ec", ca_from=None):
    """mkcerts, then the leaf re-issued by the same CA with an OCSP responder URI (AIA)."""
    mkcerts(directory, *names, keytype=keytype, ca_from=ca_from)
    san = ",".join(("IP:" if re.match(r"^[0-9.]+$", n) else "DNS:") + n for n in names)
    ext = os.path.join(directory, "leaf.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth,clientAuth\n"
                "authorityInfoAccess=OCSP;URI:http://ocsp.tern.test/\n" % san)
    openssl("req", "-new", "-key", "server.key", "-subj", "/CN=" + names[0], "-out", "leaf.csr",
            cwd=directory)
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "365", "-extfile", "leaf.ext", "-out", "server.crt",
            cwd=directory)
    with open(os.path.join(directory, "server-chain.crt"), "w") as out:
        for f in ("server.crt", "ca.crt"):
            with open(os.path.join(directory, f)) as src:
                out.write(src.read())
    check("OCSP - URI:http://ocsp.tern.test/" in openssl(
        "x509", "-in", os.path.join(directory, "server.crt"), "-noout", "-ext",
        "authorityInfoAccess"), "the leaf has no OCSP URI")
    return directory


def serial_of(cert):
    return openssl("x509", "-in", cert, "-noout", "-serial").strip().split("=", 1)[1]


def ocsp_index(d, name, status, signer=None):
    """An OCSP response for d's leaf made by `openssl ocsp` as a local responder from a CA index
    file (status "V" good or "R" revoked), signed by the CA or by signer (a directory with
    responder.crt/responder.key). Returns the DER file's path."""
    exp = (datetime.datetime.utcnow() + datetime.timedelta(days=365)).strftime("%y%m%d%H%M%SZ")
    rev = datetime.datetime.utcnow().strftime("%y%m%d%H%M%SZ") + ",keyCompromise" \
        if status == "R" else ""
    index = os.path.join(d, name + ".index")
    with open(index, "w") as f:
        f.write("%s\t%s\t%s\t%s\tunknown\t/CN=x\n" % (status, exp, rev,
                                                      serial_of(os.path.join(d, "server.crt"))))
    rsigner, rkey = os.path.join(d, "ca.crt"), os.path.join(d, "ca.key")
    if signer:
        rsigner, rkey = os.path.join(signer, "responder.crt"), os.path.join(signer, "responder.key")
    out = os.path.join(d, name + ".der")
    openssl("ocsp", "-index", index, "-CA", os.path.join(d, "ca.crt"), "-rsigner", rsigner,
            "-rkey", rkey, "-issuer", os.path.join(d, "ca.crt"),
            "-cert", os.path.join(d, "server.crt"), "-no_nonce", "-ndays", "7", "-respout", out)
    text = openssl("ocsp", "-respin", out, "-resp_text", "-noverify")
    want = "Cert Status: good" if status == "V" else "Cert Status: revoked"
    check(want in text, "openssl ocsp did not make a %s response:\n%s" % (want, text))
    return out


def ocsp_crafted(d, name, this_days, next_days, status="good"):
    """An OCSP response signed by d's CA with thisUpdate/nextUpdate that many days from now
    (negative: in the past): what `openssl ocsp` will not make (expired, not yet valid)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp
    with open(os.path.join(d, "server.crt"), "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(d, "ca.crt"), "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(d, "ca.key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    now = datetime.datetime.utcnow()
    st = {"good": ocsp.OCSPCertStatus.GOOD, "unknown": ocsp.OCSPCertStatus.UNKNOWN}[status]
    b = ocsp.OCSPResponseBuilder().add_response(
        cert=cert, issuer=ca, algorithm=hashes.SHA1(), cert_status=st,
        this_update=now + datetime.timedelta(days=this_days),
        next_update=now + datetime.timedelta(days=next_days),
        revocation_time=None, revocation_reason=None).responder_id(
        ocsp.OCSPResponderEncoding.HASH, ca)
    out = os.path.join(d, name + ".der")
    with open(out, "wb") as f:
        f.write(b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    return out


def responder(d, name, ocsp_signing=True):
    """A delegated OCSP responder certificate issued by d's CA (RFC 6960 4.2.2.2), with the
    id-kp-OCSPSigning extended key usage or (ocsp_signing=False) without it."""
    r = os.path.join(d, name)
    os.makedirs(r, exist_ok=True)
    ext = os.path.join(r, "resp.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=%s\n" % ("OCSPSigning" if ocsp_signing else "serverAuth"))
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", "/CN=OCSP responder " + name, "-keyout", os.path.join(r, "responder.key"),
            "-out", os.path.join(r, "responder.csr"))
    openssl("x509", "-req", "-in", os.path.join(r, "responder.csr"), "-CA",
            os.path.join(d, "ca.crt"), "-CAkey", os.path.join(d, "ca.key"), "-CAcreateserial",
            "-days", "30", "-extfile", ext, "-out", os.path.join(r, "responder.crt"))
    return r


_pki_error = None
try:
    A = leaf(os.path.join(PKI, "a"), HOST, "localhost", "127.0.0.1")
    B = leaf(os.path.join(PKI, "b"), OTHER, keytype="rsa", ca_from=A)
    ROGUE = leaf(os.path.join(PKI, "rogue"), HOST, "127.0.0.1")   # another CA altogether
    A_GOOD = ocsp_index(A, "good", "V")
    B_GOOD = ocsp_index(B, "good", "V")
except Exception as e:  # noqa: BLE001 - reported by every test below
    _pki_error = "cannot make the test PKI: %s" % e
CA = os.path.join(PKI, "a", "ca.crt")


def need_pki():
    check(_pki_error is None, _pki_error or "")


def cert_line(d, response=None):
    """A tls_certificate value; with response, its tls_ocsp_response line follows it."""
    line = "%s %s" % (os.path.join(d, "server-chain.crt"), os.path.join(d, "server.key"))
    return line + ("\ntls_ocsp_response %s" % response if response else "")


def status(port, starttls, *args):
    """openssl s_client -status: (stapled, text) where stapled is None (no response sent) or
    a dict with the response's "status", "cert_status" and "serial"; the handshake is verified
    against the test CA and the session ends with QUIT."""
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-status", "-CAfile", CA,
           "-verify_return_error", "-crlf"]
    if starttls:
        cmd += ["-starttls", "smtp", "-name", "client.test"]
    rc, out = run(cmd + list(args), input=b"QUIT\n")
    check(rc == 0 and "Verify return code: 0 (ok)" in out,
          "s_client %s failed (exit %d):\n%s" % (" ".join(args), rc, out))
    if "OCSP response: no response sent" in out:
        return None, out
    check("OCSP response:" in out, "s_client did not ask for a status (-status):\n" + out)
    got = {}
    for key, pat in (("status", r"OCSP Response Status: (\w+)"),
                     ("cert_status", r"Cert Status: (\w+)"),
                     ("serial", r"Serial Number: ([0-9A-F]+)")):
        m = re.search(pat, out)
        got[key] = m.group(1) if m else None
    return got, out


def check_stapled(port, starttls, d, *args):
    got, out = status(port, starttls, *args)
    check(got, "no OCSP response stapled (%s):\n%s" % (" ".join(args), out))
    check(got["status"] == "successful" and got["cert_status"] == "good",
          "stapled response is not successful/good: %r\n%s" % (got, out))
    want = serial_of(os.path.join(d, "server.crt"))
    check(got["serial"] == want, "stapled response is for serial %s, the certificate is %s" % (
        got["serial"], want))


def check_not_stapled(port, starttls, *args):
    got, out = status(port, starttls, *args)
    check(got is None, "a response was stapled (%r) where none should be:\n%s" % (got, out))


def wait_log(srv, pattern, since=0, timeout=10):
    got = poll(lambda: [l for l in srv.log_text()[since:].splitlines()
                        if re.search(pattern, l)], timeout)
    check(got, "no line matching %r in the server log\n%s" % (pattern, srv.log_tail()))
    return got


def no_crash(srv):
    bad = [l for l in srv.log_text().splitlines()
           if re.search(r"crashed \(|exited unexpectedly", l) or SANITIZER_RE.search(l)]
    check(not bad, "a tern process died:\n" + "\n".join("    " + l for l in bad))


# ---- stapling a good response ---------------------------------------------------------------

g = Group("ocsp", server=False)


@g.test("staple-good-starttls-smtps")
def _(make):
    need_pki()
    srv = make("good", tls_certificate=[cert_line(A, A_GOOD), cert_line(B, B_GOOD)],
               listeners={"smtps": "smtps"})
    srv.start()
    wait_log(srv, r"OCSP response %s: certificate status good, next update .*; stapled"
             % re.escape(A_GOOD))
    wait_log(srv, r"OCSP response %s: .*stapled" % re.escape(B_GOOD))
    for label in ("main", "smtps"):
        port, starttls = srv.ports[label], label == "main"
        for version in ("-tls1_3", "-tls1_2"):
            check_stapled(port, starttls, A, version, "-servername", HOST)
            # SNI: the second certificate comes with its own response
            check_stapled(port, starttls, B, version, "-servername", OTHER)
        check_stapled(port, starttls, A)                 # no SNI: the default certificate
        # A client that does not ask gets no status (and s_client prints none).
        cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile", CA, "-crlf"]
        rc, out = run(cmd + (["-starttls", "smtp"] if starttls else []), input=b"QUIT\n")
        check(rc == 0 and "OCSP" not in out, "status sent unasked (exit %d):\n%s" % (rc, out))
    # The stapled bytes are the file's: openssl ocsp verifies what s_client received.
    got, out = status(srv.ports["smtps"], False, "-servername", HOST)
    m = re.search(r"Produced At: (.+)", out)
    check(m and m.group(1) in openssl("ocsp", "-respin", A_GOOD, "-resp_text", "-noverify"),
          "the stapled response is not the configured file's")
    no_crash(srv)
    srv.stop_checked()


@g.test("delegated-responder")
def _(make):
    need_pki()
    d = leaf(os.path.join(PKI, "deleg"), HOST, "127.0.0.1", ca_from=A)
    good = ocsp_index(d, "by-responder", "V", signer=responder(d, "ocsp-signer"))
    bad = ocsp_index(d, "by-non-responder", "V", signer=responder(d, "web", ocsp_signing=False))
    srv = make("deleg", tls_certificate=cert_line(d, good), listeners={"smtps": "smtps"})
    srv.start()
    wait_log(srv, r"OCSP response %s: .*stapled" % re.escape(good))
    check_stapled(srv.ports["smtps"], False, d)
    srv.stop_checked()
    # A certificate of the same CA without id-kp-OCSPSigning may not sign responses.
    srv = make("nondeleg", tls_certificate=cert_line(d, bad), listeners={"smtps": "smtps"})
    srv.start()
    wait_log(srv, r"OCSP response %s not stapled: signature does not verify" % re.escape(bad))
    check_not_stapled(srv.ports["smtps"], False)
    srv.stop_checked()


# ---- responses that must not be stapled: logged, never fatal -------------------------------

def refused(make, name, cases, d=None):
    """One tern with d's certificate (default A) once per (response, why) case, each with its
    response (up to 16; only the first is chosen by SNI, but every one is read and checked at
    start): it starts, logs "not stapled: why" for each, staples nothing on either listener,
    and serves TLS."""
    d = d or A
    srv = make(name, tls_certificate=[cert_line(d, r) for r, _ in cases],
               listeners={"smtps": "smtps"})
    srv.start()
    for response, why in cases:
        lines = wait_log(srv, r"OCSP response (not stapled: )?%s" % re.escape(response))
        check(len(lines) == 1 and re.search("not stapled: .*" + why, lines[0]),
              "the log does not say why %s is not stapled (want %r): %r" % (response, why, lines))
    check(not re.search(r"; stapled$", srv.log_text(), re.M), "logged as stapled too")
    check_not_stapled(srv.port, True, "-servername", HOST)
    check_not_stapled(srv.ports["smtps"], False, "-servername", HOST)
    no_crash(srv)
    srv.stop_checked()


@g.test("revoked-not-stapled")
def _(make):
    need_pki()
    d = leaf(os.path.join(PKI, "revoked"), HOST, "127.0.0.1", ca_from=A)
    refused(make, "revoked", [(ocsp_index(d, "revoked", "R"),
                               r"certificate status revoked, reason keyCompromise")], d)


@g.test("expired-not-stapled")
def _(make):
    need_pki()
    refused(make, "expired", [
        (ocsp_crafted(A, "expired", -10, -3),
         r"expired or not yet valid \(this update \d{4}-.* UTC, next update \d{4}-.* UTC\)"),
        # past its nextUpdate by two minutes: within OpenSSL's clock skew, but clients refuse it
        (ocsp_crafted(A, "just-expired", -1, -2 / 1440.0),
         r"expired \(next update \d{4}-.* UTC\)"),
        (ocsp_crafted(A, "future", 2, 9), r"expired or not yet valid"),
        (ocsp_crafted(A, "unknown", -1, 6, status="unknown"), r"certificate status unknown")])
    # control: the same crafting with current times is stapled, so the refusals above were
    # about the times and the status
    fresh = ocsp_crafted(A, "fresh", -1, 6)
    srv = make("fresh", tls_certificate=cert_line(A, fresh), listeners={"smtps": "smtps"})
    srv.start()
    check_stapled(srv.ports["smtps"], False, A)
    srv.stop_checked()


@g.test("wrong-or-broken-response-not-stapled")
def _(make):
    need_pki()
    junk = os.path.join(PKI, "junk.der")
    with open(junk, "wb") as f:
        f.write(b"\x30\x03\x0a\x01\x00 this is not an OCSP response")
    empty = os.path.join(PKI, "empty.der")
    open(empty, "wb").close()
    # a responder error ("tryLater") is a well-formed response, but not one to staple
    try_later = os.path.join(PKI, "trylater.der")
    with open(try_later, "wb") as f:
        f.write(bytes([0x30, 0x03, 0x0a, 0x01, 0x03]))
    refused(make, "broken", [
        (B_GOOD, r"not about this certificate"),
        (ocsp_index(ROGUE, "good", "V"), r"signature does not verify"),
        (junk, r"not a DER OCSP response"),
        (empty, r"empty"),
        (try_later, r"the responder answered \"trylater\""),
        (os.path.join(PKI, "no-such", "ocsp.der"), r"cannot open")])


@g.test("no-file-no-staple")
def _(make):
    need_pki()
    srv = make("none", tls_certificate=cert_line(A), listeners={"smtps": "smtps"})
    srv.start()
    check_not_stapled(srv.port, True)
    check_not_stapled(srv.ports["smtps"], False)
    check("OCSP" not in srv.log_text(), "OCSP logged without tls_ocsp_response")
    srv.stop_checked()


# ---- SIGHUP reads the file again -------------------------------------------------------------

@g.test("sighup-new-response")
def _(make):
    need_pki()
    d = leaf(os.path.join(PKI, "hup"), HOST, "localhost", "127.0.0.1", ca_from=A)
    live = os.path.join(d, "live.der")
    srv = make("hup", tls_certificate=cert_line(d, live), listeners={"smtps": "smtps"})
    srv.start()
    wait_log(srv, r"OCSP response not stapled: %s: cannot open" % re.escape(live))
    check_not_stapled(srv.ports["smtps"], False)

    def install(src):
        shutil.copy2(src, live + ".new")
        os.rename(live + ".new", live)

    def reload():
        mark = len(srv.log_text())
        srv.send_signal(signal.SIGHUP)
        wait_log(srv, r"reloaded configuration", mark)
        return mark

    # The cron job fetched a response: SIGHUP, and new connections get it.
    install(ocsp_index(d, "good", "V"))
    mark = reload()
    wait_log(srv, r"OCSP response %s: certificate status good" % re.escape(live), mark)
    for label in ("main", "smtps"):
        check(poll(lambda: status(srv.ports[label], label == "main")[0], 10, 0.2),
              "%s: no response stapled after SIGHUP" % label)
        check_stapled(srv.ports[label], label == "main", d)
    # The certificate was revoked: the next fetch says so; tern stops stapling at SIGHUP.
    install(ocsp_index(d, "revoked", "R"))
    mark = reload()
    wait_log(srv, r"OCSP response %s not stapled: certificate status revoked" % re.escape(live),
             mark)
    check(poll(lambda: status(srv.ports["smtps"], False)[0] is None, 10, 0.2),
          "still stapling the old response after a reload with a revoked one")
    check_not_stapled(srv.port, True)
    no_crash(srv)
    srv.stop_checked()


@g.test("cron-recipe-fetch")
def _(make):
    """docs/tls.md's fetch command against a real responder on loopback (`openssl ocsp
    -port`, answering from the index file), then SIGHUP: what the cron job does."""
    need_pki()
    d = leaf(os.path.join(PKI, "cron"), HOST, "127.0.0.1", ca_from=A)
    ocsp_index(d, "index-made", "V")             # writes the index file the responder uses
    port = free_port()
    resp = subprocess.Popen(["openssl", "ocsp", "-index", os.path.join(d, "index-made.index"),
                             "-port", str(port), "-CA", os.path.join(d, "ca.crt"),
                             "-rsigner", os.path.join(d, "ca.crt"),
                             "-rkey", os.path.join(d, "ca.key"), "-ndays", "7"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    out = os.path.join(d, "fetched.der")
    try:
        def fetch():
            return run(["openssl", "ocsp", "-issuer", os.path.join(d, "ca.crt"),
                        "-cert", os.path.join(d, "server-chain.crt"),
                        "-url", "http://127.0.0.1:%d/" % port, "-no_nonce",
                        "-CAfile", os.path.join(d, "ca.crt"),
                        "-verify_other", os.path.join(d, "ca.crt"), "-respout", out + ".new"])
        got = poll(lambda: ": good" in fetch()[1], 10, 0.2)
        check(got, "the recipe's fetch did not get a good response:\n%s" % fetch()[1])
    finally:
        resp.kill()
        resp.wait()
    srv = make("cron", tls_certificate=cert_line(d, out), listeners={"smtps": "smtps"})
    srv.start()
    check_not_stapled(srv.ports["smtps"], False)
    os.rename(out + ".new", out)
    mark = len(srv.log_text())
    srv.send_signal(signal.SIGHUP)
    wait_log(srv, r"OCSP response %s: certificate status good" % re.escape(out), mark)
    check(poll(lambda: status(srv.ports["smtps"], False)[0], 10, 0.2),
          "no response stapled after the recipe's SIGHUP")
    check_stapled(srv.port, True, d)
    srv.stop_checked()


# ---- configuration errors ------------------------------------------------------------------

def serve_fails(srv, *needles):
    p = subprocess.run([srv.binary, "serve", "-c", srv.conf], stdin=subprocess.DEVNULL,
                       capture_output=True, cwd=srv.dir, timeout=30)
    text = (p.stdout + p.stderr).decode("utf-8", "replace")
    check(p.returncode != 0, "tern serve exited 0 on a bad configuration:\n%s" % text)
    for n in needles:
        check(n in text, "the error does not mention %r:\n%s" % (n, text))
    check(not SANITIZER_RE.search(text), "sanitizer report:\n" + text)


@g.test("config-errors")
def _(make):
    need_pki()
    # no certificate before it (the option sorts after tls_certificate, so use none at all)
    serve_fails(make("orphan", tls_ocsp_response=A_GOOD), "tls_ocsp_response",
                "must follow the tls_certificate")
    serve_fails(make("twice", tls_certificate=cert_line(A, A_GOOD), tls_ocsp_response=A_GOOD),
                "tls_ocsp_response", "already has one")
    serve_fails(make("noarg", tls_certificate=cert_line(A) + "\ntls_ocsp_response"),
                "tls_ocsp_response")


if __name__ == "__main__":
    run_main()
