#!/usr/bin/env python3
"""The proxy plugin in a real aloopd: in front of python3's http.server
fetched with curl, a large transfer through a deliberately slow reader with
aloopd's RSS staying bounded, half-close in both directions, UNIX and TLS
upstreams, and an unreachable upstream logged once per burst."""
import hashlib
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

import aloopd_harness as h

BIG = 48 * 1024 * 1024


def wait_port(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("nothing listens on %d" % port)


def http_server(directory):
    """python3 -m http.server on 127.0.0.1, a server of another make."""
    port = h.free_port()
    p = subprocess.Popen(["python3", "-m", "http.server", str(port),
                          "--bind", "127.0.0.1", "--directory", directory],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    h._children.append(p)
    wait_port(port)
    return p, port


class Upstream(threading.Thread):
    """A socket server in the test: reads until EOF, then answers how many
    bytes it got and closes (which needs both half-closes passed on)."""

    def __init__(self, sock):
        super().__init__(daemon=True)
        self.sock = sock
        self.accepted = 0
        self.start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self.serve, args=(c,),
                             daemon=True).start()

    def serve(self, c):
        with c:
            n = 0
            while True:
                data = c.recv(65536)
                if not data:
                    break
                n += len(data)
            c.sendall(b"got %d\n" % n)


def tcp_upstream():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return Upstream(s), s.getsockname()[1]


def start_proxy(d, upstreams, extra=""):
    port = h.free_port()
    if "connect_timeout" not in extra:
        extra += " connect_timeout = 3.0;"
    settings = "settings = { upstream = [ %s ]; %s };" \
        % (", ".join('"%s"' % u for u in upstreams), extra)
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [h.listener("px", "proxy", port, "tcp", settings)])
    daemon = h.Daemon(cfg)
    daemon.wait_ready()
    return daemon, port


def dead_port():
    """A port on which nothing listens (bound then closed)."""
    return h.free_port()


def half_close_exchange(port, payload):
    with h.connect(port) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        return h.recv_all(s)


def test_http_server_through_curl():
    d = h.tmpdir()
    www = os.path.join(d, "www")
    os.mkdir(www)
    body = os.urandom(300000)
    with open(os.path.join(www, "file.bin"), "wb") as f:
        f.write(body)
    _, hport = http_server(www)
    # The first upstream refuses: the second is tried in turn.
    daemon, port = start_proxy(d, ["127.0.0.1:%d" % dead_port(),
                                   "localhost:%d" % hport])
    out = os.path.join(d, "out.bin")
    for _ in range(3):
        r = subprocess.run(["curl", "-sS", "--max-time", "30", "-o", out,
                            "-w", "%{http_code}",
                            "http://127.0.0.1:%d/file.bin" % port],
                           capture_output=True, text=True, timeout=60)
        assert r.stdout == "200", (r.stdout, r.stderr, daemon.text())
        with open(out, "rb") as f:
            assert f.read() == body
    r = subprocess.run(["curl", "-sS", "--max-time", "30", "-o", os.devnull,
                        "-w", "%{http_code}",
                        "http://127.0.0.1:%d/missing" % port],
                       capture_output=True, text=True, timeout=60)
    assert r.stdout == "404", (r.stdout, r.stderr)
    assert daemon.stop() == 0, daemon.text()


def test_slow_reader_keeps_rss_bounded():
    d = h.tmpdir()
    www = os.path.join(d, "www")
    os.mkdir(www)
    chunk = os.urandom(1024 * 1024)
    digest = hashlib.sha256()
    with open(os.path.join(www, "big.bin"), "wb") as f:
        for _ in range(BIG // len(chunk)):
            f.write(chunk)
            digest.update(chunk)
    _, hport = http_server(www)
    daemon, port = start_proxy(d, ["127.0.0.1:%d" % hport])
    # Warm up, so that the baseline includes a connection's fixed costs.
    r = subprocess.run(["curl", "-sS", "-o", os.devnull,
                        "http://127.0.0.1:%d/" % port], timeout=60)
    assert r.returncode == 0
    base = daemon.rss_kib()

    s = h.connect(port, timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(b"GET /big.bin HTTP/1.0\r\nHost: x\r\n\r\n")
    # Not reading at all: without back-pressure the whole file would pile
    # up in aloopd within this time.
    time.sleep(3)
    peak = daemon.rss_kib()
    got = b""
    while b"\r\n\r\n" not in got:
        got += s.recv(4096)
    head, rest = got.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.0 200"), head
    body = hashlib.sha256(rest)
    n = len(rest)
    reads = 0
    while True:
        data = s.recv(65536)
        if not data:
            break
        body.update(data)
        n += len(data)
        reads += 1
        if reads % 16 == 0:
            # Slow: about 16 MiB/s at most, far below what the proxy gets.
            time.sleep(0.05)
            peak = max(peak, daemon.rss_kib())
    s.close()
    assert n == BIG, n
    assert body.hexdigest() == digest.hexdigest()
    grown = peak - base
    print("rss: base %d KiB, peak %d KiB, grown %d KiB for %d MiB"
          % (base, peak, grown, BIG >> 20))
    assert grown < 16 * 1024, (base, peak)
    assert daemon.stop() == 0, daemon.text()


def test_half_close_both_ways():
    d = h.tmpdir()
    up, uport = tcp_upstream()
    daemon, port = start_proxy(d, ["127.0.0.1:%d" % uport])
    # The upstream answers only after our EOF reached it; its own EOF
    # then reaches us.
    assert half_close_exchange(port, b"x" * 200000) == b"got 200000\n"
    assert half_close_exchange(port, b"") == b"got 0\n"
    assert daemon.stop() == 0, daemon.text()


def test_unix_upstream():
    d = h.tmpdir()
    path = os.path.join(d, "up.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(16)
    Upstream(s)
    daemon, port = start_proxy(d, ["unix:" + path])
    assert half_close_exchange(port, b"over unix") == b"got 9\n"
    assert daemon.stop() == 0, daemon.text()


class TlsUpstream(threading.Thread):
    """A TLS echo server: what comes in goes back, until the client goes."""

    def __init__(self, d):
        super().__init__(daemon=True)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(os.path.join(d, "cert.pem"),
                                 os.path.join(d, "key.pem"))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,),
                             daemon=True).start()

    def serve(self, c):
        try:
            with self.ctx.wrap_socket(c, server_side=True) as t:
                while True:
                    data = t.recv(65536)
                    if not data:
                        break
                    t.sendall(data)
        except (OSError, ssl.SSLError):
            pass


def test_tls_upstream_verified():
    d = h.tmpdir()
    h.make_cert(d)
    up = TlsUpstream(d)
    daemon, port = start_proxy(
        d, ["127.0.0.1:%d" % up.port],
        'tls = { ca = "%s/cert.pem"; server_hostname = "localhost"; };' % d)
    with h.connect(port) as s:
        for msg in (b"through TLS", b"y" * 100000):
            s.sendall(msg)
            assert h.recv_exactly(s, len(msg)) == msg
    assert daemon.stop() == 0, daemon.text()

    # A certificate that does not verify: the client is closed, nothing
    # passes.
    d2 = h.tmpdir()
    daemon, port = start_proxy(
        d2, ["127.0.0.1:%d" % up.port],
        'tls = { server_hostname = "localhost"; };')
    with h.connect(port) as s:
        assert h.recv_all(s) == b""
    daemon.wait_log(r"no upstream reachable")
    assert daemon.stop() == 0, daemon.text()


def test_connect_timeout_moves_on():
    """An upstream that accepts but never completes the TLS handshake is
    given up after connect_timeout, and the next one serves."""
    d = h.tmpdir()
    h.make_cert(d)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    good = TlsUpstream(d)
    daemon, port = start_proxy(
        d, ["127.0.0.1:%d" % silent.getsockname()[1],
            "127.0.0.1:%d" % good.port],
        'connect_timeout = 0.5; tls = { ca = "%s/cert.pem"; '
        'server_hostname = "localhost"; };' % d)
    with h.connect(port, timeout=20) as s:
        s.sendall(b"late but served")
        assert h.recv_exactly(s, 15) == b"late but served"
    assert daemon.stop() == 0, daemon.text()

    # With only the silent one, the client is closed and the reason logged.
    d2 = h.tmpdir()
    daemon, port = start_proxy(
        d2, ["127.0.0.1:%d" % silent.getsockname()[1]],
        'connect_timeout = 0.5; tls = { verify = false; };')
    with h.connect(port, timeout=20) as s:
        assert h.recv_all(s) == b""
    daemon.wait_log(r"no upstream reachable.*connect timed out")
    assert daemon.stop() == 0, daemon.text()
    silent.close()


def test_tls_listener_in_front_of_http_server():
    """aloopd terminates TLS and passes plain HTTP on: curl over https."""
    d = h.tmpdir()
    h.make_cert(d)
    www = os.path.join(d, "www")
    os.mkdir(www)
    body = os.urandom(200000)
    with open(os.path.join(www, "f"), "wb") as f:
        f.write(body)
    _, hport = http_server(www)
    port = h.free_port()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [h.listener(
        "px", "proxy", port, "tcp",
        'tls = { certificate = "%s/cert.pem"; key = "%s/key.pem"; }; '
        'settings = { upstream = [ "127.0.0.1:%d" ]; };' % (d, d, hport))])
    daemon = h.Daemon(cfg)
    daemon.wait_ready()
    out = os.path.join(d, "out")
    r = subprocess.run(["curl", "-sS", "--max-time", "30", "--cacert",
                        os.path.join(d, "cert.pem"), "-o", out, "-w",
                        "%{http_code}", "https://localhost:%d/f" % port],
                       capture_output=True, text=True, timeout=60)
    assert r.stdout == "200", (r.stdout, r.stderr, daemon.text())
    with open(out, "rb") as f:
        assert f.read() == body
    assert daemon.stop() == 0, daemon.text()


def test_unreachable_logged_once_per_burst():
    d = h.tmpdir()
    uport = dead_port()
    daemon, port = start_proxy(d, ["127.0.0.1:%d" % uport])
    for _ in range(5):
        with h.connect(port) as s:
            s.settimeout(10)
            assert h.recv_all(s) == b""
    daemon.wait_log(r"no upstream reachable")
    text = daemon.text()
    assert len(re.findall(r"no upstream reachable", text)) == 1, text
    assert "Connection refused" in text, text

    # The upstream comes back: served again, and the burst's end is logged.
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", uport))
    s.listen(16)
    Upstream(s)
    assert half_close_exchange(port, b"back") == b"got 4\n"
    daemon.wait_log(r"answers again, after 5 failed connections")
    assert daemon.stop() == 0, daemon.text()


class LoopbackUpstream(Upstream):
    """An Upstream on a loopback port of its own, in self.port."""

    def __init__(self):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        self.port = sock.getsockname()[1]
        super().__init__(sock)


class EchoUpstream(LoopbackUpstream):
    """Echoes what it gets until the client closes."""

    def serve(self, c):
        with c:
            while True:
                data = c.recv(65536)
                if not data:
                    return
                c.sendall(data)


class SilentTlsUpstream(TlsUpstream):
    """Completes the handshake, then neither reads nor closes: a TLS close
    towards it waits for a close_notify that never comes."""

    def __init__(self, d):
        self.handshaken = threading.Event()
        self.held = []
        super().__init__(d)

    def serve(self, c):
        try:
            self.held.append(self.ctx.wrap_socket(c, server_side=True))
            self.handshaken.set()
        except (OSError, ssl.SSLError):
            pass


def test_reload_drops_listener_with_live_pair():
    """A reload removes the proxy's listener while a pair is open: the pair
    goes on, and when it ends the instance is finished while its upstream
    is still closing, after the plugin was released."""
    saved = os.environ.get("ALOOPD_TEST_LOG_LEVEL")
    os.environ["ALOOPD_TEST_LOG_LEVEL"] = "debug"
    try:
        d = h.tmpdir()
        up = EchoUpstream()
        daemon, port = start_proxy(d, ["127.0.0.1:%d" % up.port])
        s = h.connect(port)
        s.sendall(b"before")
        assert h.recv_exactly(s, 6) == b"before"
        eport = h.free_port()
        h.write_config(os.path.join(d, "aloop.conf"),
                       [h.listener("other", "echo", eport)])
        daemon.signal(signal.SIGHUP)
        daemon.wait_log(r"reloaded .*: 1 listeners?")
        s.sendall(b"during")
        assert h.recv_exactly(s, 6) == b"during"
        s.close()
        daemon.wait_log(r"listener px: worker \d+: finished")

        # Again, with an upstream still closing when the listener goes:
        # its last callbacks come after fini, the plugin released.
        h.make_cert(d)
        tup = SilentTlsUpstream(d)
        port = h.free_port()
        h.write_config(os.path.join(d, "aloop.conf"), [
            h.listener("other", "echo", eport),
            h.listener("tpx", "proxy", port, "tcp",
                       'settings = { upstream = [ "127.0.0.1:%d" ]; '
                       'tls = { verify = false; }; };' % tup.port)])
        daemon.signal(signal.SIGHUP)
        daemon.wait_log(r"reloaded .*: 2 listeners?")
        s = h.connect(port)
        daemon.wait_log(r"listener tpx: worker \d+: connection")
        tup.handshaken.wait(20)
        h.write_config(os.path.join(d, "aloop.conf"),
                       [h.listener("other", "echo", eport)])
        daemon.signal(signal.SIGHUP)
        daemon.wait_log(r"reloaded .*: 2 listeners(.|\n)*"
                        r"reloaded .*: 1 listeners?")
        s.shutdown(socket.SHUT_WR)
        assert h.recv_all(s) == b""
        s.close()
        daemon.wait_log(r"proxy tpx: finished, upstreams still closing")
        daemon.wait_log(r"listener tpx: worker \d+: finished")
        with h.connect(eport) as e:
            e.sendall(b"alive")
            assert h.recv_exactly(e, 5) == b"alive"
        assert daemon.stop() == 0, daemon.text()
    finally:
        if saved is None:
            os.environ.pop("ALOOPD_TEST_LOG_LEVEL")
        else:
            os.environ["ALOOPD_TEST_LOG_LEVEL"] = saved


def test_bad_settings_rejected():
    d = h.tmpdir()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [
        h.listener("px", "proxy", h.free_port(), "tcp",
                   'settings = { upstream = [ "nocolon", "unix:relative" ]; '
                   'connect_timeout = -1.0; colour = "red"; };'),
        h.listener("tls1", "proxy", h.free_port(), "tcp",
                   'settings = { upstream = "127.0.0.1:1"; '
                   'tls = { ca = "/nonexistent/ca.pem"; }; };'),
        h.listener("tls2", "proxy", h.free_port(), "tcp",
                   'settings = { upstream = "127.0.0.1:1"; '
                   'tls = { certificate = "c.pem"; size = 1; }; };')])
    r = subprocess.run([h.ALOOPD, "-t", "-c", cfg], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0, r
    for what in ("nocolon", "unix:relative", "connect_timeout", "colour",
                 "/nonexistent/ca.pem", "certificate and key go together",
                 "size"):
        assert what in r.stderr, (what, r.stderr)


class HashUpstream(LoopbackUpstream):
    """Hashes what it gets until EOF, answers the digest and then @down
    bytes of its own, and closes."""

    def __init__(self, down=0):
        self.down = down
        super().__init__()

    def serve(self, c):
        with c:
            digest = hashlib.sha256()
            n = 0
            while True:
                data = c.recv(262144)
                if not data:
                    break
                digest.update(data)
                n += len(data)
            c.sendall(b"%d %s\n" % (n, digest.hexdigest().encode()))
            block = bytes(range(256)) * 1024
            left = self.down
            while left > 0:
                c.sendall(block[:left])
                left -= min(left, len(block))


SPLICE_BIG = 64 * 1024 * 1024


def splice_transfer(splice):
    """SPLICE_BIG bytes up, checked by hash, 8 MiB down, and the access
    log's byte counts exact, with splice on or off."""
    d = h.tmpdir()
    log = os.path.join(d, "access.log")
    down = 8 * 1024 * 1024
    up = HashUpstream(down)
    port = h.free_port()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [h.listener(
        "px", "proxy", port, "tcp",
        'idle_timeout = 20; settings = { upstream = [ "127.0.0.1:%d" ]; '
        'splice = %s; };' % (up.port, "true" if splice else "false"))],
        'access_log = "%s";' % log)
    daemon = h.Daemon(cfg)
    daemon.wait_ready()
    chunk = os.urandom(1024 * 1024)
    digest = hashlib.sha256()
    with h.connect(port, timeout=60) as s:
        for i in range(SPLICE_BIG // len(chunk)):
            block = chunk[i:] + chunk[:i]
            s.sendall(block)
            digest.update(block)
        s.shutdown(socket.SHUT_WR)
        got = h.recv_all(s)
    line, rest = got.split(b"\n", 1)
    assert line == b"%d %s" % (SPLICE_BIG, digest.hexdigest().encode()), line
    assert rest == (bytes(range(256)) * 1024 * (down // 262144 + 1))[:down]
    want_out = len(line) + 1 + down
    deadline = time.monotonic() + 10
    entry = ""
    while time.monotonic() < deadline and "bytes_in" not in entry:
        with open(log) as f:
            entry = f.read()
        time.sleep(0.05)
    fields = dict(m.group(1, 2) for m in
                  re.finditer(r"(\w+)=(\S+)", entry.splitlines()[0]))
    assert int(fields["bytes_in"]) == SPLICE_BIG, entry
    assert int(fields["bytes_out"]) == want_out, entry
    assert fields["end"] == "eof", entry
    assert daemon.stop() == 0, daemon.text()


def test_splice_64mib_hash_and_access_log():
    splice_transfer(True)


def test_copy_64mib_hash_and_access_log():
    splice_transfer(False)


def test_splice_upstream_half_closes_first():
    """The upstream says hello and sends its EOF first; the client's bytes
    still reach it afterwards, and then its EOF."""
    d = h.tmpdir()
    got = []
    done = threading.Event()
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)

    def serve():
        c, _ = ls.accept()
        with c:
            c.sendall(b"hello")
            c.shutdown(socket.SHUT_WR)
            n = 0
            while True:
                data = c.recv(65536)
                if not data:
                    break
                n += len(data)
            got.append(n)
            done.set()

    threading.Thread(target=serve, daemon=True).start()
    daemon, port = start_proxy(d, ["127.0.0.1:%d" % ls.getsockname()[1]])
    with h.connect(port) as s:
        assert h.recv_all(s) == b"hello"
        s.sendall(b"z" * 3000000)
        s.shutdown(socket.SHUT_WR)
        assert done.wait(20)
        assert h.recv_all(s) == b""
    assert got == [3000000], got
    ls.close()
    assert daemon.stop() == 0, daemon.text()


def test_splice_busy_pair_not_idle():
    """A spliced pair whose bytes flow never pass data_received: neither
    first_byte_timeout nor idle_timeout may take it for idle."""
    d = h.tmpdir()
    up = EchoUpstream()
    port = h.free_port()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [h.listener(
        "px", "proxy", port, "tcp",
        'first_byte_timeout = 1; idle_timeout = 1; '
        'settings = { upstream = [ "127.0.0.1:%d" ]; };' % up.port)])
    daemon = h.Daemon(cfg)
    daemon.wait_ready()
    with h.connect(port) as s:
        time.sleep(0.5)        # connected, and spliced, before any byte
        for i in range(12):
            s.sendall(b"tick %02d\n" % i)
            assert h.recv_exactly(s, 8) == b"tick %02d\n" % i
            time.sleep(0.25)
    # Silent for longer than idle_timeout: now it is closed.
    with h.connect(port) as s:
        s.sendall(b"x")
        assert h.recv_exactly(s, 1) == b"x"
        s.settimeout(10)
        t0 = time.monotonic()
        assert h.recv_all(s) == b""
        assert time.monotonic() - t0 < 5
    assert daemon.stop() == 0, daemon.text()


def test_splice_stalled_client_write_timeout():
    """A client that reads nothing of a spliced download: the listener's
    write_timeout resets it, and the access log says why."""
    d = h.tmpdir()
    log = os.path.join(d, "access.log")
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    held = []

    def serve():
        c, _ = ls.accept()
        held.append(c)
        try:
            c.sendall(b"d" * (64 * 1024 * 1024))
        except OSError:
            pass

    threading.Thread(target=serve, daemon=True).start()
    port = h.free_port()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [h.listener(
        "px", "proxy", port, "tcp",
        'write_timeout = 1; settings = { upstream = [ "127.0.0.1:%d" ]; '
        'upstream_write_timeout = 0; };' % ls.getsockname()[1])],
        'access_log = "%s";' % log)
    daemon = h.Daemon(cfg)
    daemon.wait_ready()
    s = h.connect(port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    t0 = time.monotonic()
    entry = ""
    while time.monotonic() - t0 < 15 and "end=" not in entry:
        time.sleep(0.1)
        with open(log) as f:
            entry = f.read()
    assert "end=write_timeout" in entry, entry
    assert time.monotonic() - t0 < 6
    s.close()
    for c in held:
        c.close()
    ls.close()
    assert daemon.stop() == 0, daemon.text()



def tls13_handshake_then_leave(port):
    """A TLS 1.3 handshake whose last flight goes out in one segment with
    the FIN (TCP_CORK holds it), then whatever the server still sends."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    with h.connect(port) as s:
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                if out.pending:
                    s.sendall(out.read())
                data = s.recv(65536)
                assert data, "the server closed during the handshake"
                inc.write(data)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        s.sendall(out.read())
        s.shutdown(socket.SHUT_WR)
        return h.recv_all(s)


def test_tls_client_gone_after_handshake():
    """A client that leaves right after its TLS handshake gets no upstream
    connection, no session ticket and no close_notify."""
    d = h.tmpdir()
    h.make_cert(d)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    ls.settimeout(5)
    port = h.free_port()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [h.listener(
        "px", "proxy", port, "tcp",
        'tls = { certificate = "%s/cert.pem"; key = "%s/key.pem"; }; '
        'settings = { upstream = [ "127.0.0.1:%d" ]; };'
        % (d, d, ls.getsockname()[1]))])
    daemon = h.Daemon(cfg)
    daemon.wait_ready()
    for _ in range(5):
        assert tls13_handshake_then_leave(port) == b""
    r, _, _ = select.select([ls], [], [], 0.3)
    assert not r, "the proxy connected upstream for a departed client"
    # A client that stays is proxied as ever.
    with h.connect(port) as raw:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(raw, server_hostname="localhost") as c:
            c.sendall(b"hello")
            up, _ = ls.accept()
            with up:
                assert up.recv(5) == b"hello"
                up.sendall(b"world")
                assert c.recv(5) == b"world"
    ls.close()
    assert daemon.stop() == 0, daemon.text()

TESTS = [test_http_server_through_curl, test_slow_reader_keeps_rss_bounded,
         test_half_close_both_ways, test_unix_upstream,
         test_tls_upstream_verified, test_connect_timeout_moves_on,
         test_tls_listener_in_front_of_http_server,
         test_unreachable_logged_once_per_burst,
         test_reload_drops_listener_with_live_pair,
         test_bad_settings_rejected,
         test_splice_64mib_hash_and_access_log,
         test_copy_64mib_hash_and_access_log,
         test_splice_upstream_half_closes_first,
         test_splice_busy_pair_not_idle,
         test_splice_stalled_client_write_timeout,
         test_tls_client_gone_after_handshake]
# Names on the command line run only those tests.
h.run([t for t in TESTS if len(sys.argv) < 2 or t.__name__ in sys.argv[1:]])
