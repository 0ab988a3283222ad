#!/usr/bin/env python3
"""The metrics plugin in the real aloopd: the counters move as traffic goes
through echo over TCP, UDP and TLS, reloads are counted, the output passes
`promtool check metrics`, and the HTTP side answers 404, 405, 400, 431 and
505 where it must and honours keep-alive."""
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # keep the source tree clean (distcheck)
import aloopd_harness as h  # noqa: E402

WORKERS = 2


def start(extra_listeners=()):
    d = h.tmpdir()
    h.make_cert(d)
    ports = {"metrics": h.free_port(), "echo": h.free_port(),
             "tls": h.free_port()}
    tls = ('tls = { certificate = "%s/cert.pem"; key = "%s/key.pem"; };'
           % (d, d))
    listeners = [h.listener("metrics", "metrics", ports["metrics"]),
                 h.listener("echo", "echo", ports["echo"]),
                 h.listener("echo-udp", "echo", ports["echo"], "udp"),
                 h.listener("echo-tls", "echo", ports["tls"], "tcp", tls)]
    listeners += list(extra_listeners)
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, listeners, daemon_extra=DAEMON_EXTRA, workers=WORKERS)
    daemon = h.Daemon(cfg)
    daemon.wait_ready()
    return d, cfg, daemon, ports


def scrape(port):
    url = "http://127.0.0.1:%d/metrics" % port
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200, r.status
        ctype = r.headers["Content-Type"]
        assert ctype.startswith("text/plain; version=0.0.4"), ctype
        return r.read().decode()


# These tests do not exercise draining: a connection the kernel or a
# client library still holds open at the end must not make the stop wait
# out the default 30 s, which is also how long the harness waits for exit.
DAEMON_EXTRA = "shutdown_timeout = 5;"

SAMPLE = re.compile(r'^([a-z_]+)(?:\{([^}]*)\})? (\S+)$')


def parse(text):
    """{(name, listener or None): value summed over workers}, and the
    set of (name, listener, worker) seen."""
    sums, seen = {}, set()
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        key = (m.group(1), labels.get("listener"))
        sums[key] = sums.get(key, 0) + float(m.group(3))
        seen.add((m.group(1), labels.get("listener"), labels.get("worker")))
    return sums, seen


def wait_for(port, cond, what, timeout=20):
    """Scrape until cond(sums) holds; the last text and sums."""
    deadline = time.monotonic() + timeout
    while True:
        text = scrape(port)
        sums, _ = parse(text)
        if cond(sums):
            return text, sums
        if time.monotonic() > deadline:
            raise AssertionError("%s never held:\n%s" % (what, text))
        time.sleep(0.05)


def promtool_check(text):
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool (Debian package prometheus) " \
        "is needed: script/lib.sh lists it"
    r = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    assert r.returncode == 0, "promtool check metrics failed:\n%s%s" % (
        r.stdout.decode(), r.stderr.decode())
    # promtool prints lint problems but still exits 0 for some of them.
    out = (r.stdout + r.stderr).decode().strip()
    assert out == "", "promtool complains:\n" + out


def test_counters():
    d, cfg, daemon, ports = start()
    try:
        text = scrape(ports["metrics"])
        promtool_check(text)
        sums, seen = parse(text)
        # Every listener on every worker is there from the start, at 0.
        for name in ("echo", "echo-udp", "echo-tls", "metrics"):
            for w in range(WORKERS):
                assert ("aloop_connections_accepted_total", name,
                        str(w)) in seen, (name, w, text)
        assert sums[("aloop_connections_accepted_total", "echo")] == 0
        assert sums[("aloop_reloads_total", None)] == 0
        assert sums[("process_open_fds", None)] > 0
        assert sums[("process_resident_memory_bytes", None)] > 0
        assert sums[("aloop_build_info", None)] == 1
        assert re.search(r'^aloop_build_info\{version="[0-9.]+",libevent='
                         r'"[^"]+",openssl="[^"]+",plugin_abi="\d+\.\d+"\} 1$',
                         text, re.M), text
        assert sums[("aloop_uptime_seconds", None)] >= 0
        assert abs(sums[("process_start_time_seconds", None)] -
                   time.time()) < 300

        # Echo traffic: each connection sends its own amount.
        conns, total = 7, 0
        for i in range(conns):
            msg = b"m" * (1000 * (i + 1) + i)
            with h.connect(ports["echo"]) as s:
                s.sendall(msg)
                assert h.recv_exactly(s, len(msg)) == msg
                s.shutdown(socket.SHUT_WR)
                assert h.recv_all(s) == b""
            total += len(msg)
        # Two held open, to see the gauge.
        held = [h.connect(ports["echo"]) for _ in range(2)]
        for s in held:
            s.sendall(b"ping")
            assert h.recv_exactly(s, 4) == b"ping"
        # The echo reaches the client a moment before its worker counts
        # the write, and another worker may answer the scrape: wait for
        # the byte counters too rather than reading them once.
        text, sums = wait_for(
            ports["metrics"],
            lambda s: s[("aloop_connections_closed_total", "echo")] == conns
            and s[("aloop_connections_active", "echo")] == 2
            and s[("aloop_received_bytes_total", "echo")] == total + 8
            and s[("aloop_sent_bytes_total", "echo")] == total + 8,
            "%d closed and 2 active echo connections, %d bytes each way"
            % (conns, total + 8))
        assert sums[("aloop_connections_accepted_total", "echo")] == \
            conns + 2, text
        assert sums[("aloop_received_bytes_total", "echo")] == total + 8
        assert sums[("aloop_sent_bytes_total", "echo")] == total + 8
        for s in held:
            s.close()
        wait_for(ports["metrics"],
                 lambda s: s[("aloop_connections_active", "echo")] == 0 and
                 s[("aloop_connections_closed_total", "echo")] == conns + 2,
                 "every echo connection closed")

        # UDP: one endpoint per worker, bytes both ways.
        sent = 0
        for i in range(5):
            payload = b"u" * (10 + i)
            assert h.udp_exchange(ports["echo"], payload) == payload
            sent += len(payload)
        text, sums = wait_for(
            ports["metrics"],
            lambda s: s[("aloop_sent_bytes_total", "echo-udp")] == sent,
            "%d bytes echoed over UDP" % sent)
        assert sums[("aloop_received_bytes_total", "echo-udp")] == sent

        # TLS: handshakes that complete, and two that fail.
        ctx = ssl.create_default_context(cafile=os.path.join(d, "cert.pem"))
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", ports["tls"]),
                                          timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    s.sendall(b"secret")
                    assert h.recv_exactly(s, 6) == b"secret"
        for _ in range(2):
            with h.connect(ports["tls"]) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n" + b"\0" * 100)
                s.settimeout(10)
                try:
                    h.recv_all(s)
                except ConnectionResetError:
                    pass
        text, sums = wait_for(
            ports["metrics"],
            lambda s: s[("aloop_tls_handshake_failures_total",
                         "echo-tls")] == 2,
            "2 failed TLS handshakes")
        assert sums[("aloop_tls_handshakes_total", "echo-tls")] == 3, text
        assert sums[("aloop_connections_accepted_total", "echo-tls")] == 3
        assert sums[("aloop_received_bytes_total", "echo-tls")] == 18
        assert sums[("aloop_tls_handshakes_total", "echo")] == 0

        # The scrapes so far were connections of the metrics listener.
        assert sums[("aloop_connections_accepted_total", "metrics")] >= 5
        promtool_check(text)

        # A reload that takes keeps the counters, also of a listener it
        # removes; one that fails counts.
        tls = ('tls = { certificate = "%s/cert.pem"; key = "%s/key.pem"; };'
               % (d, d))
        h.write_config(cfg, [
            h.listener("metrics", "metrics", ports["metrics"]),
            h.listener("echo", "echo", ports["echo"]),
            h.listener("echo-tls", "echo", ports["tls"], "tcp", tls)],
            daemon_extra=DAEMON_EXTRA, workers=WORKERS)
        daemon.signal(signal.SIGHUP)
        daemon.wait_log(r"reloaded ")
        text, sums = wait_for(
            ports["metrics"], lambda s: s[("aloop_reloads_total", None)] == 1,
            "one reload")
        assert sums[("aloop_connections_closed_total", "echo")] == \
            conns + 2, text
        assert sums[("aloop_received_bytes_total", "echo-udp")] == sent
        assert sums[("aloop_tls_handshakes_total", "echo-tls")] == 3
        with open(cfg, "a") as f:
            f.write("this is not libconfig\n")
        daemon.signal(signal.SIGHUP)
        daemon.wait_log(r"reload failed")
        text, sums = wait_for(
            ports["metrics"],
            lambda s: s[("aloop_reload_failures_total", None)] == 1,
            "one failed reload")
        assert sums[("aloop_reloads_total", None)] == 1
        promtool_check(text)
        # And with curl, as an operator would.
        curl = shutil.which("curl")
        assert curl is not None, "curl is needed: script/lib.sh lists it"
        r = subprocess.run([curl, "-sS", "-f", "http://127.0.0.1:%d/metrics"
                            % ports["metrics"]], capture_output=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        promtool_check(r.stdout.decode())
    finally:
        assert daemon.stop() == 0, daemon.text()


def raw_exchange(port, request):
    """Send @request, read until the server closes; the whole answer."""
    with h.connect(port) as s:
        s.sendall(request)
        return h.recv_all(s)


def status_of(answer):
    return int(answer.split(b" ", 2)[1])


def test_http():
    d, cfg, daemon, ports = start()
    port = ports["metrics"]
    try:
        # Keep-alive: several requests on one HTTP/1.1 connection.
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(3):
            c.request("GET", "/metrics")
            r = c.getresponse()
            body = r.read()
            assert r.status == 200 and b"aloop_uptime_seconds" in body
            assert r.getheader("Connection") == "keep-alive"
        c.request("GET", "/metrics?name=x")
        r = c.getresponse()
        assert r.status == 200 and r.read()
        c.request("GET", "/other")
        r = c.getresponse()
        assert r.status == 404, r.status
        r.read()
        c.request("POST", "/metrics", body=b"x" * 5000)
        r = c.getresponse()
        assert r.status == 405, r.status
        assert r.getheader("Allow") == "GET, HEAD"
        r.read()
        # The body was skipped: the connection still answers.
        c.request("HEAD", "/metrics")
        r = c.getresponse()
        assert r.status == 200 and int(r.getheader("Content-Length")) > 0
        assert r.read() == b""
        c.request("GET", "/metrics")
        r = c.getresponse()
        assert r.status == 200 and r.read()
        c.close()

        # urllib's view of the errors.
        for path, code in (("/", 404), ("/metricsx", 404),
                           ("/metrics/", 404)):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                       timeout=10)
                raise AssertionError("%s answered 200" % path)
            except urllib.error.HTTPError as e:
                assert e.code == code, (path, e.code)
        req = urllib.request.Request("http://127.0.0.1:%d/metrics" % port,
                                     method="DELETE")
        try:
            urllib.request.urlopen(req, timeout=10)
            raise AssertionError("DELETE answered 200")
        except urllib.error.HTTPError as e:
            assert e.code == 405, e.code

        # Pipelined: both answered, in order, then closed as asked.
        a = raw_exchange(port, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                         b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                         b"Connection: close\r\n\r\n")
        first, rest = a.split(b"\r\n\r\n", 1)
        assert status_of(first) == 404, a[:200]
        assert b"HTTP/1.1 200 OK" in rest and b"aloop_uptime" in rest

        # HTTP/1.0 closes unless asked to keep alive.
        a = raw_exchange(port, b"GET /metrics HTTP/1.0\r\n\r\n")
        assert status_of(a) == 200 and b"Connection: close" in a
        with h.connect(port) as s:
            s.sendall(b"GET /metrics HTTP/1.0\r\nConnection: keep-alive"
                      b"\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                assert chunk, "closed before the answer"
                head += chunk
            assert b"Connection: keep-alive" in head
            length = int(re.search(rb"Content-Length: (\d+)",
                                   head).group(1))
            body = head.split(b"\r\n\r\n", 1)[1]
            body += h.recv_exactly(s, length - len(body))
            assert body.endswith(b"\n")
            s.sendall(b"GET /x HTTP/1.0\r\n\r\n")
            assert status_of(h.recv_all(s)) == 404

        # A chunked body cannot be skipped: answered, then closed.
        a = raw_exchange(port, b"POST /metrics HTTP/1.1\r\nHost: a\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n"
                         b"5\r\nhello\r\n0\r\n\r\n")
        assert status_of(a) == 405 and b"Connection: close" in a
        assert a.count(b"HTTP/1.1") == 1

        # Garbage, a missing Host, another major version, too big a head.
        for req, code in ((b"\x16\x03\x01garbage\r\n\r\n", 400),
                          (b"GET /metrics\r\n\r\n", 400),
                          (b"GET /metrics HTTP/1.1\r\n\r\n", 400),
                          (b"GET /metrics HTTP/1.1\r\nHost: a\r\n"
                           b"Bad Header: x\r\n\r\n", 400),
                          (b"GET /metrics HTTP/1.1\r\nHost: a\r\n"
                           b"Content-Length: 1\r\nContent-Length: 2\r\n"
                           b"\r\n", 400),
                          (b"GET /metrics HTTP/2.0\r\nHost: a\r\n\r\n", 505),
                          (b"GET /metrics HTTP/1.1\r\nHost: a\r\nX: " +
                           b"y" * 9000 + b"\r\n\r\n", 431)):
            a = raw_exchange(port, req)
            assert status_of(a) == code, (req[:40], a[:100])
            assert b"Connection: close" in a

        # A client that pipelines without reading is bounded, not buffered.
        with h.connect(port) as s:
            s.settimeout(10)
            req = b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n"
            sent = 0
            s.setblocking(False)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    sent += s.send(req * 64)
                except BlockingIOError:
                    break
                except (ConnectionResetError, BrokenPipeError):
                    break
            assert sent > 0
        # Still serving.
        assert "aloop_uptime_seconds" in scrape(port)
    finally:
        assert daemon.stop() == 0, daemon.text()


if __name__ == "__main__":
    h.run([test_counters, test_http])
