#!/usr/bin/env python3
"""TLS session resumption and OCSP stapling through the real aloopd, seen by
openssl s_client: a ticket issued before a reload or a binary upgrade
resumes after it, on any of two workers; session_tickets = false issues none; an OCSP response made
with `openssl ocsp` for a test CA is stapled, re-read on reload, and
`aloopd -t` refuses one that is not an OCSP response or not about the
listener's certificate."""
import os
import re
import select
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean (distcheck)
import aloopd_harness as h  # noqa: E402


def run(*args):
    subprocess.run(args, check=True, capture_output=True)


def make_pki(d):
    """A test CA, a server certificate (serial 0x1001) it signed, another
    one (0x1002) and an OCSP response saying the first is good."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes"]
    p = lambda name: os.path.join(d, name)  # noqa: E731
    run("openssl", "req", "-x509", *ec, "-days", "2", "-subj",
        "/CN=aloop test CA", "-keyout", p("ca.key"), "-out", p("ca.pem"))
    for name, serial in (("server", "0x1001"), ("other", "0x1002")):
        run("openssl", "req", *ec, "-subj", "/CN=localhost", "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", p(name + ".key"), "-out", p(name + ".csr"))
        run("openssl", "x509", "-req", "-in", p(name + ".csr"), "-CA",
            p("ca.pem"), "-CAkey", p("ca.key"), "-set_serial", serial,
            "-days", "2", "-copy_extensions", "copy", "-out",
            p(name + ".pem"))
    expiry = time.strftime("%y%m%d%H%M%SZ", time.gmtime(time.time() + 86400))
    with open(p("index.txt"), "w") as f:
        f.write("V\t%s\t\t1001\tunknown\t/CN=localhost\n" % expiry)
        f.write("V\t%s\t\t1002\tunknown\t/CN=localhost\n" % expiry)
    # Both have the same subject, which `openssl ca` would refuse.
    with open(p("index.txt.attr"), "w") as f:
        f.write("unique_subject = no\n")
    make_ocsp(d, "server", "server.der")
    make_ocsp(d, "other", "other.der")
    with open(p("garbage.der"), "w") as f:
        f.write("this is no OCSP response\n")


def make_ocsp(d, cert, out):
    """What a responder would say of @cert, as `openssl ocsp -respout`
    writes it, made offline from the CA's index."""
    p = lambda name: os.path.join(d, name)  # noqa: E731
    run("openssl", "ocsp", "-index", p("index.txt"), "-rsigner", p("ca.pem"),
        "-rkey", p("ca.key"), "-CA", p("ca.pem"), "-issuer", p("ca.pem"),
        "-cert", p(cert + ".pem"), "-respout", p(out), "-ndays", "1")


def tls_listener(d, port, extra=""):
    return h.listener("echo-tls", "echo", port, "tcp",
                      'tls = { certificate = "%s/server.pem"; '
                      'key = "%s/server.key"; %s };' % (d, d, extra))


def s_client(d, port, args, done, linger=0.0):
    """openssl s_client until @done matches its output (then @linger more
    seconds, for tickets that follow the handshake); the output."""
    p = subprocess.Popen(["openssl", "s_client", "-connect",
                          "127.0.0.1:%d" % port, "-servername", "localhost",
                          "-CAfile", os.path.join(d, "ca.pem")] + args,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    out = b""
    deadline = time.monotonic() + 10
    matched_at = None
    while time.monotonic() < deadline:
        if matched_at is None and re.search(done, out.decode(errors="replace")):
            matched_at = time.monotonic()
        if matched_at is not None and time.monotonic() >= matched_at + linger:
            break
        r, _, _ = select.select([p.stdout], [], [], 0.05)
        if r:
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            out += chunk
    p.stdin.close()
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    return out.decode(errors="replace")


HANDSHAKE = r"(New|Reused), TLSv1\.[23]"
TICKET = "TLS session ticket lifetime hint"


def get_session(d, port, sess, version="-tls1_3"):
    """A session with its ticket, saved in @sess by s_client -sess_out; the
    number of NewSessionTicket messages that came with it."""
    if os.path.exists(sess):
        os.unlink(sess)
    out = s_client(d, port, [version, "-msg", "-sess_out", sess], TICKET,
                   0.5)
    assert re.search(r"New, TLSv1\.[23]", out), out
    assert os.path.getsize(sess) > 0, out
    return len(re.findall(r"<<< .*NewSessionTicket", out))


def reused(d, port, sess, n, version="-tls1_3"):
    count = 0
    for _ in range(n):
        out = s_client(d, port, [version, "-sess_in", sess], HANDSHAKE)
        count += "Reused, TLSv1." in out
    return count


def test_tickets_survive_reload_across_workers():
    d = h.tmpdir()
    make_pki(d)
    port = h.free_port()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [tls_listener(d, port)], workers=2)
    daemon = h.Daemon(cfg)
    daemon.wait_ready()
    for version in ("-tls1_3", "-tls1_2"):
        sess = os.path.join(d, "sess" + version + ".pem")
        # One ticket per handshake (issue 14), not OpenSSL's two.
        assert get_session(d, port, sess, version) == 1
        # Both workers (SO_REUSEPORT spreads the connections).
        assert reused(d, port, sess, 10, version) == 10
        daemon.signal(signal.SIGHUP)
        daemon.wait_log("(?s)" + "reloaded .*" * (1 if version == "-tls1_3"
                                                  else 2))
        assert reused(d, port, sess, 10, version) == 10
    assert daemon.stop() == 0, daemon.text()


def test_tickets_survive_binary_upgrade():
    d = h.tmpdir()
    make_pki(d)
    port = h.free_port()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [tls_listener(d, port)])
    daemon = h.Daemon(cfg)
    daemon.wait_ready()
    sess = os.path.join(d, "sess.pem")
    get_session(d, port, sess)
    # The old master passes its secret to the new one.
    daemon.signal(signal.SIGUSR2)
    m = daemon.wait_log(r"binary upgrade: started \S+ as pid (\d+)")
    heir = int(m.group(1))
    h.track_pid(heir)
    daemon.wait_log(r"binary upgrade: pid %d took over" % heir)
    assert daemon.wait_exit(20) == 0, daemon.text()
    assert reused(d, port, sess, 3) == 3
    assert "not passed on" not in daemon.text()
    os.kill(heir, signal.SIGTERM)
    for _ in range(100):
        try:
            os.kill(heir, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        assert False, "the new master did not stop"


def test_no_tickets():
    d = h.tmpdir()
    make_pki(d)
    port = h.free_port()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [tls_listener(d, port, "session_tickets = false;")])
    daemon = h.Daemon(cfg)
    daemon.wait_ready()
    sess = os.path.join(d, "sess.pem")
    for version in ("-tls1_3", "-tls1_2"):
        out = s_client(d, port, [version, "-sess_out", sess], HANDSHAKE, 0.5)
        assert re.search(r"New, TLSv1\.[23]", out), out
        assert TICKET not in out, out
        assert "Post-Handshake New Session Ticket" not in out, out
    # TLS 1.2 without a cache: nothing to resume either.
    assert reused(d, port, sess, 2, "-tls1_2") == 0
    assert daemon.stop() == 0, daemon.text()

    # session_cache resumes TLS 1.2 by session id (one worker here).
    h.write_config(cfg, [tls_listener(d, port, "session_tickets = false; "
                                      "session_cache = 100;")])
    daemon = h.Daemon(cfg)
    daemon.wait_ready()
    out = s_client(d, port, ["-tls1_2", "-sess_out", sess], HANDSHAKE, 0.2)
    assert TICKET not in out, out
    assert reused(d, port, sess, 3, "-tls1_2") == 3
    assert daemon.stop() == 0, daemon.text()


def test_ocsp_stapling():
    d = h.tmpdir()
    make_pki(d)
    port = h.free_port()
    cfg = os.path.join(d, "aloop.conf")
    resp = os.path.join(d, "resp.der")
    os.link(os.path.join(d, "server.der"), resp)
    h.write_config(cfg, [tls_listener(d, port,
                                      'ocsp_response = "%s";' % resp)])
    daemon = h.Daemon(cfg)
    daemon.wait_ready()

    def stapled():
        out = s_client(d, port, ["-status"], HANDSHAKE)
        m = re.search(r"Produced At: (.*)", out)
        assert "OCSP Response Status: successful" in out, out
        assert "Cert Status: good" in out, out
        assert "Serial Number: 1001" in out, out
        return m.group(1)

    for version in ("-tls1_3", "-tls1_2"):
        out = s_client(d, port, ["-status", version], HANDSHAKE)
        assert "OCSP Response Status: successful" in out, out
    first = stapled()
    # Without -status the client gets none and the server does no work.
    out = s_client(d, port, [], HANDSHAKE)
    assert "OCSP" not in out, out

    # A refreshed file is served after a reload.
    time.sleep(1.1)
    os.unlink(resp)
    make_ocsp(d, "server", "resp.der")
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"reloaded ")
    assert stapled() != first

    # A broken one fails the reload and the old response stays.
    os.unlink(resp)
    os.link(os.path.join(d, "garbage.der"), resp)
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"reload failed")
    assert "not a DER OCSP response" in daemon.text()
    assert stapled() != first
    assert daemon.stop() == 0, daemon.text()


def check(cfg):
    p = subprocess.run([h.ALOOPD, "-t", "-c", cfg], capture_output=True,
                       text=True, timeout=30)
    return p.returncode, p.stdout + p.stderr


def test_config_check_refuses_bad_responses():
    d = h.tmpdir()
    make_pki(d)
    port = h.free_port()
    cfg = os.path.join(d, "aloop.conf")
    for name, why in (("garbage.der", "not a DER OCSP response"),
                      ("other.der", "not about this certificate"),
                      ("missing.der", "cannot read")):
        h.write_config(cfg, [tls_listener(
            d, port, 'ocsp_response = "%s/%s";' % (d, name))])
        rc, out = check(cfg)
        assert rc == 1, out
        assert re.search(r"aloop\.conf:\d+: .*ocsp_response.*%s" % why,
                         out), out
    # Per SNI certificate too: "other" has its own response.
    h.write_config(cfg, [tls_listener(
        d, port, 'ocsp_response = "%s/server.der"; sni = ( { '
        'certificate = "%s/other.pem"; key = "%s/other.key"; '
        'ocsp_response = "%s/server.der"; } );' % (d, d, d, d))])
    rc, out = check(cfg)
    assert rc == 1 and "not about this certificate" in out, out
    with open(cfg) as f:
        text = f.read()
    with open(cfg, "w") as f:
        f.write(text.replace('ocsp_response = "%s/server.der"; }' % d,
                             'ocsp_response = "%s/other.der"; }' % d))
    rc, out = check(cfg)
    assert rc == 0, out
    # Settings out of range.
    h.write_config(cfg, [tls_listener(d, port, "session_timeout = 0;")])
    rc, out = check(cfg)
    assert rc == 1 and "session_timeout" in out, out


if __name__ == "__main__":
    h.run([test_tickets_survive_reload_across_workers,
           test_tickets_survive_binary_upgrade, test_no_tickets,
           test_ocsp_stapling, test_config_check_refuses_bad_responses])
