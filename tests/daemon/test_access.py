#!/usr/bin/env python3
"""allow and deny on the real aloopd: a denied client is reset before any
plugin or TLS work, over TCP, TLS and UNIX (by peer credentials); a
denied UDP source gets no answer; each refusal is counted, a source is
logged at most once a minute, and a reload changes the lists for new
connections."""

import os
import re
import signal
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aloopd_harness as h  # noqa: E402


def outcome(s):
    """"served" if the echo answers, "reset" or "eof" if not."""
    s.settimeout(10)
    try:
        s.sendall(b"ping")
        data = b""
        while len(data) < 4:
            chunk = s.recv(4 - len(data))
            if not chunk:
                return "eof"
            data += chunk
        return "served"
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    finally:
        s.close()


def tcp_from(src, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.bind((src, 0))
    try:
        s.connect(("127.0.0.1", port))
    except ConnectionResetError:
        return None    # the reset beat connect()'s own check
    return s


def tcp_outcome(src, port):
    s = tcp_from(src, port)
    return "reset" if s is None else outcome(s)


def test_tcp_tls_udp_unix():
    d = h.tmpdir()
    h.make_cert(d)
    ports = {k: h.free_port() for k in ("tcp", "tls", "udp", "metrics")}
    sock = os.path.join(d, "echo.sock")
    uid = os.getuid()
    tls = 'tls = { certificate = "%s/cert.pem"; key = "%s/key.pem"; };' % (
        d, d)
    listeners = [
        h.listener("tcp", "echo", ports["tcp"],
                   extra='deny = [ "127.0.0.2" ];'),
        h.listener("tls", "echo", ports["tls"],
                   extra='allow = [ "127.0.0.1/32" ]; ' + tls),
        h.listener("udp", "echo", ports["udp"], "udp",
                   extra='deny = [ "127.0.0.2/32" ];'),
        h.listener("metrics", "metrics", ports["metrics"]),
    ]
    listeners.append("""	{
		name = "unix";
		protocol = "echo";
		listen = [ "unix:%s" ];
		deny = [ "uid:%d" ];
	}""" % (sock, uid))
    cfg, daemon = h.start(listeners, "shutdown_timeout = 3;", workers=2)

    # TCP: the denied source is reset, the others served.
    assert tcp_outcome("127.0.0.1", ports["tcp"]) == "served"
    for _ in range(5):
        assert tcp_outcome("127.0.0.2", ports["tcp"]) == "reset"
    assert tcp_outcome("127.0.0.3", ports["tcp"]) == "served"

    # TLS: refused before the handshake starts, so no ServerHello comes
    # and no handshake failure is counted.
    ctx = ssl.create_default_context(cafile=os.path.join(d, "cert.pem"))
    with ctx.wrap_socket(tcp_from("127.0.0.1", ports["tls"]),
                         server_hostname="localhost") as s:
        s.sendall(b"ok")
        assert h.recv_exactly(s, 2) == b"ok"
    raw = tcp_from("127.0.0.2", ports["tls"])
    if raw is not None:
        try:
            ctx.wrap_socket(raw, server_hostname="localhost")
            raise AssertionError("a denied client completed a handshake")
        except (ConnectionResetError, ssl.SSLError, OSError):
            pass
        raw.close()

    # UDP: a denied source gets no answer; another does.
    for src, answered in (("127.0.0.2", False), ("127.0.0.1", True)):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind((src, 0))
        u.settimeout(0.5 if not answered else 5)
        u.sendto(b"dgram", ("127.0.0.1", ports["udp"]))
        try:
            got = u.recv(100) == b"dgram"
        except socket.timeout:
            got = False
        u.close()
        assert got == answered, (src, got)

    # UNIX: refused by our own uid.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect(sock)
        assert outcome(s) in ("reset", "eof")
    except ConnectionResetError:
        s.close()

    m = h.metric_sums(ports["metrics"])
    assert m[("aloop_connections_refused_total", "tcp", "access")] == 5, m
    assert m[("aloop_connections_refused_total", "tls", "access")] == 1
    assert m[("aloop_connections_refused_total", "unix", "access")] == 1
    assert m[("aloop_datagrams_dropped_total", "udp", "access")] == 1
    assert m[("aloop_tls_handshake_failures_total", "tls", None)] == 0
    # Only the served clients reached the plugin.
    assert m[("aloop_connections_accepted_total", "tcp", None)] == 2
    assert m[("aloop_connections_accepted_total", "unix", None)] == 0
    # Five refusals from one source, on two workers: one log line.
    lines = re.findall(r"listener tcp: access denied to 127\.0\.0\.2",
                       daemon.text())
    assert len(lines) == 1, daemon.text()
    daemon.wait_log(r"listener unix: access denied to uid %d" % uid)
    assert daemon.stop() == 0, daemon.text()


def test_reload_changes_lists():
    port = h.free_port()
    cfg, daemon = h.start([h.listener("tcp", "echo", port,
                                      extra='deny = [ "127.0.0.2" ];')],
                          "shutdown_timeout = 3;")
    kept = tcp_from("127.0.0.1", port)
    assert tcp_outcome("127.0.0.2", port) == "reset"
    h.write_config(cfg, [h.listener("tcp", "echo", port,
                                    extra='deny = [ "127.0.0.1" ];')])
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"reloaded")
    assert tcp_outcome("127.0.0.2", port) == "served"
    deadline = time.monotonic() + 10
    while tcp_outcome("127.0.0.1", port) != "reset":
        assert time.monotonic() < deadline, "the new list never took"
        time.sleep(0.05)
    # A connection made before the reload keeps its old verdict.
    assert outcome(kept) == "served"
    assert daemon.stop() == 0, daemon.text()


if __name__ == "__main__":
    h.run([test_tcp_tls_udp_unix, test_reload_changes_lists])
