#!/usr/bin/env python3
"""The proxy's balancing, health checks and PROXY headers on the real
aloopd: round robin spreads clients evenly over two upstreams across
workers, first and source_hash keep to one, a stopped upstream is taken out within its fall
count and back within its rise count, logged once per change, and /metrics
shows each upstream's state and connections; send_proxy tells an
upstream the client's address in v1 and v2."""

import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aloopd_harness as h  # noqa: E402


class Upstream:
    """A TCP server on loopback that answers a client's first byte with
    its name, and counts the clients it answered."""

    def __init__(self, name, port=None):
        self.name = name.encode()
        self.port = port or h.free_port()
        self.served = 0
        self.lock = threading.Lock()
        self.start()

    def start(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(128)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        sock = self.sock
        while True:
            try:
                c, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,),
                             daemon=True).start()

    def serve(self, c):
        c.settimeout(10)
        try:
            if c.recv(1):
                c.sendall(self.name)
                with self.lock:
                    self.served += 1
        except OSError:
            pass
        c.close()

    def stop(self):
        # shutdown() wakes the accept; later connects are refused.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


def ask(port, src="127.0.0.1"):
    """Which upstream served a client of the proxy."""
    s = socket.socket()
    s.settimeout(10)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    s.sendall(b"?")
    name = s.recv(16)
    s.close()
    return name.decode()


def proxy(port, ups, extra=""):
    return h.listener("px", "proxy", port, extra="settings = { upstream = "
                      "[ %s ]; %s };" % (", ".join('"127.0.0.1:%d"' % u.port
                                                   for u in ups), extra))


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                timeout=10) as r:
        return r.read().decode()


def gauge(text, name, upstream):
    total = 0
    for m in re.finditer(r'^%s\{listener="px",worker="\d+",upstream="%s"\} '
                         r'(\S+)$' % (name, re.escape(upstream)), text, re.M):
        total += float(m.group(1))
    return total


def test_round_robin_even_across_workers():
    a, b = Upstream("A"), Upstream("B")
    port = h.free_port()
    cfg, daemon = h.start([proxy(port, [a, b])], workers=2)
    got = [ask(port) for _ in range(100)]
    print("round_robin over 100: A %d, B %d" % (got.count("A"),
                                                 got.count("B")))
    assert abs(got.count("A") - 50) <= 2, got
    assert daemon.stop() == 0, daemon.text()
    a.stop()
    b.stop()


def test_first_and_source_hash():
    a, b = Upstream("A"), Upstream("B")
    first, hashed = h.free_port(), h.free_port()
    cfg, daemon = h.start([
        proxy(first, [a, b], 'balance = "first";').replace('"px"', '"first"'),
        proxy(hashed, [a, b], 'balance = "source_hash";').replace(
            '"px"', '"hashed"')], workers=2)
    assert {ask(first) for _ in range(10)} == {"A"}
    # One source keeps to one upstream; sources spread between them.
    seen = {}
    for i in range(2, 12):
        src = "127.0.0.%d" % i
        names = {ask(hashed, src) for _ in range(4)}
        assert len(names) == 1, (src, names)
        seen[src] = names.pop()
    assert set(seen.values()) == {"A", "B"}, seen
    assert daemon.stop() == 0, daemon.text()
    a.stop()
    b.stop()


def test_health_check_takes_out_and_back():
    a, b = Upstream("A"), Upstream("B")
    port, mport = h.free_port(), h.free_port()
    checks = ("balance = \"least_conn\"; health_check = { interval = 0.2; "
              "timeout = 0.2; fall = 2; rise = 3; };")
    cfg, daemon = h.start([proxy(port, [a, b], checks),
                           h.listener("metrics", "metrics", mport)],
                          workers=2)
    up_b = "127.0.0.1:%d" % b.port
    assert {ask(port) for _ in range(20)} == {"A", "B"}
    stopped = time.monotonic()
    b.stop()
    daemon.wait_log(r"proxy px: upstream %s is down \(2 checks failed"
                    % re.escape(up_b))
    took = time.monotonic() - stopped
    print("a stopped upstream was out after %.2f s (fall 2 x 0.2 s)" % took)
    deadline = time.monotonic() + 10
    while gauge(scrape(mport), "aloop_proxy_upstream_up", up_b) != 0:
        assert time.monotonic() < deadline, scrape(mport)
        time.sleep(0.1)
    # Both workers have it out: every client goes to A, none fails.
    time.sleep(1)
    assert {ask(port) for _ in range(20)} == {"A"}
    b.start()
    daemon.wait_log(r"proxy px: upstream %s is up again \(3 checks passed"
                    % re.escape(up_b))
    deadline = time.monotonic() + 10
    while "B" not in {ask(port) for _ in range(4)}:
        assert time.monotonic() < deadline, "B never came back"
    # Each worker checks on its own: the second may pass its rise count
    # a check later than the one that logged.
    deadline = time.monotonic() + 10
    while gauge(scrape(mport), "aloop_proxy_upstream_up", up_b) != 2:
        assert time.monotonic() < deadline, scrape(mport)
        time.sleep(0.1)
    text = scrape(mport)
    assert gauge(text, "aloop_proxy_upstream_connections_total",
                 "127.0.0.1:%d" % a.port) >= 20, text
    assert re.search(r"^# TYPE aloop_proxy_upstream_connections_total "
                     r"counter$", text, re.M), text
    # The plugin's own figures keep the exposition format valid.
    r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # One line per change, whatever the number of workers.
    assert len(re.findall(r"upstream %s is down" % re.escape(up_b),
                          daemon.text())) == 1, daemon.text()
    assert daemon.stop() == 0, daemon.text()
    a.stop()
    b.stop()


def test_expect_string():
    a = Upstream("A")
    port = h.free_port()
    # A answers "A" to a first byte: expect "A" passes, expect "Z" fails.
    cfg, daemon = h.start([proxy(port, [a], 'health_check = { interval = '
                                 '0.2; send = "x"; expect = "Z"; fall = 1; };')])
    daemon.wait_log(r"upstream 127\.0\.0\.1:%d is down \(1 check failed, "
                    r"the last: closed before the expected reply\)" % a.port)
    assert daemon.stop() == 0, daemon.text()
    a.stop()


def read_proxy_header(c):
    """The PROXY header at the start of @c, v1 or v2: (src, dst) as
    "ip:port" strings, and the bytes that followed it."""
    data = b""
    while len(data) < 16:
        chunk = c.recv(256)
        assert chunk, data
        data += chunk
    if data.startswith(b"PROXY "):
        while b"\r\n" not in data:
            data += c.recv(256)
        line, rest = data.split(b"\r\n", 1)
        _, proto, sip, dip, sport, dport = line.decode().split(" ")
        assert proto == "TCP4", line
        return "%s:%s" % (sip, sport), "%s:%s" % (dip, dport), rest
    assert data[:12] == b"\r\n\r\n\x00\r\nQUIT\n", data
    assert data[12] == 0x21 and data[13] == 0x11, data[:16]
    n = struct.unpack("!H", data[14:16])[0]
    while len(data) < 16 + n:
        data += c.recv(256)
    body = data[16:16 + n]
    src = "%s:%d" % (socket.inet_ntoa(body[0:4]),
                     struct.unpack("!H", body[8:10])[0])
    dst = "%s:%d" % (socket.inet_ntoa(body[4:8]),
                     struct.unpack("!H", body[10:12])[0])
    return src, dst, data[16 + n:]


def test_send_proxy_v1_and_v2():
    for version in ("v1", "v2"):
        up = socket.socket()
        up.bind(("127.0.0.1", 0))
        up.listen(4)
        port = h.free_port()
        cfg, daemon = h.start([h.listener(
            "px", "proxy", port, extra='settings = { upstream = '
            '[ "127.0.0.1:%d" ]; send_proxy = "%s"; };'
            % (up.getsockname()[1], version))])
        client = socket.socket()
        client.settimeout(10)
        client.bind(("127.0.0.2", 0))
        client.connect(("127.0.0.1", port))
        client.sendall(b"payload")
        up.settimeout(10)
        c, _ = up.accept()
        c.settimeout(10)
        src, dst, rest = read_proxy_header(c)
        while len(rest) < 7:
            rest += c.recv(64)
        assert src == "%s:%d" % client.getsockname(), (version, src)
        assert dst == "127.0.0.1:%d" % port, (version, dst)
        assert rest == b"payload", rest
        c.sendall(b"back")
        assert h.recv_exactly(client, 4) == b"back"
        client.close()
        c.close()
        up.close()
        assert daemon.stop() == 0, daemon.text()


if __name__ == "__main__":
    h.run([test_round_robin_even_across_workers, test_first_and_source_hash,
           test_health_check_takes_out_and_back, test_expect_string,
           test_send_proxy_v1_and_v2])
