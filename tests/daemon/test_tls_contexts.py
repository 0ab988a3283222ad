#!/usr/bin/env python3
"""TLS contexts through the real aloopd: listeners with the same TLS
settings share one context and still keep their sessions apart; a reload
keeps the contexts whose files did not change and builds those whose
files did, so a certificate rewritten in place is served after SIGHUP;
a broken one fails the reload with file:line, and the running
certificate stays."""
import os
import re
import shutil
import signal
import ssl
import sys

sys.dont_write_bytecode = True  # keep the source tree clean (distcheck)
import aloopd_harness as h  # noqa: E402
import test_tls_sessions as ts  # noqa: E402


def tls_listener(d, name, port, cert, extra=""):
    return h.listener(name, "echo", port, "tcp",
                      'tls = { certificate = "%s/%s.pem"; '
                      'key = "%s/%s.key"; %s };' % (d, cert, d, cert, extra))


def served(port):
    """The DER certificate a client gets on @port."""
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    return ssl.PEM_cert_to_DER_cert(pem)


def der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def rewrite(src, dst):
    """@dst takes @src's bytes in place, as an editor that keeps the inode
    would write them."""
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "r+b") as f:
        f.write(data)
        f.truncate()


def test_shared_kept_and_rebuilt():
    d = h.tmpdir()
    ts.make_pki(d)
    pa, pb, pc, pd, pe = (h.free_port() for _ in range(5))
    cache = "session_tickets = false; session_cache = 100;"
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [tls_listener(d, "a", pa, "server"),
                         tls_listener(d, "b", pb, "server"),
                         tls_listener(d, "c", pc, "other"),
                         tls_listener(d, "d", pd, "server", cache),
                         tls_listener(d, "e", pe, "server", cache)])
    daemon = h.Daemon(cfg)
    daemon.wait_ready()
    daemon.wait_log(r"TLS: 5 listeners, 3 contexts: 3 built, 0 kept")
    assert served(pa) == served(pb) == der(os.path.join(d, "server.pem"))
    assert served(pc) == der(os.path.join(d, "other.pem"))

    # a and b share a context, not their sessions: by ticket (1.3, 1.2)
    # and, for d and e, from the session cache alike.
    for version in ("-tls1_3", "-tls1_2"):
        sess = os.path.join(d, "sess" + version + ".pem")
        ts.get_session(d, pa, sess, version)
        assert ts.reused(d, pa, sess, 2, version) == 2
        assert ts.reused(d, pb, sess, 2, version) == 0
    sess = os.path.join(d, "sess-cache.pem")
    ts.s_client(d, pd, ["-tls1_2", "-sess_out", sess], ts.HANDSHAKE, 0.2)
    assert ts.reused(d, pd, sess, 2, "-tls1_2") == 2
    assert ts.reused(d, pe, sess, 2, "-tls1_2") == 0

    # A reload of the same files builds nothing, and sessions live on.
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"TLS: 5 listeners, 3 contexts: 0 built, 3 kept")
    daemon.wait_log(r"reloaded ")
    assert ts.reused(d, pa, os.path.join(d, "sess-tls1_3.pem"), 2) == 2

    # The certificate and key of a, b, d and e rewritten in place: their
    # two contexts are built again and serve it, c's is kept.
    rewrite(os.path.join(d, "other.pem"), os.path.join(d, "server.pem"))
    rewrite(os.path.join(d, "other.key"), os.path.join(d, "server.key"))
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"TLS: 5 listeners, 3 contexts: 2 built, 1 kept")
    daemon.wait_log(r"(?s)reloaded .*reloaded ")
    new = der(os.path.join(d, "other.pem"))
    assert served(pa) == served(pb) == served(pc) == served(pd) == new

    # A broken certificate fails the reload where it is named; the
    # running one stays.
    shutil.copyfile(os.path.join(d, "garbage.der"),
                    os.path.join(d, "server.pem"))
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"reload failed")
    text = daemon.text()
    assert re.search(r"aloop\.conf:\d+: listeners\[0\]\.tls\.certificate "
                     r"\"[^\"]*server\.pem\": ", text), text
    assert served(pa) == new
    assert daemon.stop() == 0, daemon.text()


def test_check_builds_what_runs():
    """aloopd -t refuses what a start refuses, and shares the same way:
    two listeners with a bad file get one error each, where named."""
    d = h.tmpdir()
    ts.make_pki(d)
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [tls_listener(d, "a", h.free_port(), "server"),
                         tls_listener(d, "b", h.free_port(), "server",
                                      'ciphers = "AES128-SHA";')])
    rc, out = ts.check(cfg)
    assert rc == 1, out
    assert re.search(r"listeners\[1\]\.tls\.ciphers \"AES128-SHA\": no "
                     r"AEAD", out), out
    assert "listeners[0]" not in out, out


if __name__ == "__main__":
    h.run([test_shared_kept_and_rebuilt, test_check_builds_what_runs])
