#!/usr/bin/env python3
"""Silent, slow and greedy peers against the real aloopd: a TLS client
that never says hello, a client that never sends its first byte, one that
never reads, more clients than max_connections, than a source may hold
or than a rate allows, and a UDP source asking for more answers than its
rate.  Each is bounded by the listener's settings; what the daemon still
holds afterwards is counted (sockets in FIN_WAIT1, /metrics), not only
what a client saw."""

import errno
import os
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "daemon"))
import aloopd_harness as h  # noqa: E402


def wait_metric(port, key, cond, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        v = h.metric_sums(port).get(key, 0)
        if cond(v):
            return v
        if time.monotonic() > deadline:
            raise AssertionError("%r stayed at %r" % (key, v))
        time.sleep(0.1)


def ended(s, timeout=10):
    """How the server ended @s: "eof", "reset", or None if it did not
    within @timeout."""
    s.settimeout(timeout)
    try:
        while True:
            if s.recv(65536) == b"":
                return "eof"
    except ConnectionResetError:
        return "reset"
    except socket.timeout:
        return None


def fin_wait(port):
    """The server's sockets of @port still in FIN_WAIT1 or FIN_WAIT2, with
    their send queues: what a close left to the kernel."""
    out = subprocess.run(["ss", "-tnH", "state", "fin-wait-1", "state",
                          "fin-wait-2", "( sport = :%d )" % port],
                         capture_output=True, text=True, check=True).stdout
    return [line.split() for line in out.splitlines() if line.strip()]


class Refused:
    """A connection reset so early that connect() itself saw it (the
    reset can beat the client's check of its handshake): a closed
    socket in all but name."""

    def recv(self, n):
        raise ConnectionResetError(errno.ECONNRESET, "reset on connect")

    def settimeout(self, t):
        pass

    def sendall(self, data):
        self.recv(0)

    def close(self):
        pass


def connect_from(src, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.bind((src, 0))
    try:
        s.connect(("127.0.0.1", port))
    except ConnectionResetError:
        s.close()
        return Refused()
    return s


def connect(port):
    return connect_from("127.0.0.1", port)


def served(s, payload=b"ping"):
    """Whether the echo behind @s answers: False on a reset or EOF."""
    try:
        s.sendall(payload)
        return h.recv_exactly(s, len(payload)) == payload
    except (ConnectionResetError, BrokenPipeError, AssertionError):
        return False


def start(listeners, workers=1):
    mport = h.free_port()
    listeners = listeners + [h.listener("metrics", "metrics", mport)]
    cfg, daemon = h.start(listeners, "shutdown_timeout = 3;", workers)
    return daemon, mport


def test_tls_silent_client_handshake_timeout():
    d = h.tmpdir()
    h.make_cert(d)
    port = h.free_port()
    daemon, mport = start([h.listener(
        "tls", "echo", port, extra='handshake_timeout = 1; '
        'max_connections_per_source = 20; tls = { certificate = '
        '"%s/cert.pem"; key = "%s/key.pem"; };' % (d, d))], workers=2)
    # Twenty clients that never send a ClientHello fill the source...
    silent = [h.connect(port) for _ in range(20)]
    wait_metric(mport, ("aloop_connections_active", "metrics", None),
                lambda v: v >= 0)
    # ...the twenty-first is reset before any TLS work,
    extra = connect(port)
    assert ended(extra, 5) == "reset"
    extra.close()
    # and each silent one is closed by the handshake timeout.
    started = time.monotonic()
    results = [ended(s, 10) for s in silent]
    waited = time.monotonic() - started
    assert None not in results, results
    print("20 silent TLS clients closed %.1f s after the 21st" % waited)
    wait_metric(mport, ("aloop_tls_handshake_failures_total", "tls", None),
                lambda v: v >= 20)
    # Their places went back: a real client now completes a handshake.
    ctx = ssl.create_default_context(cafile=os.path.join(d, "cert.pem"))
    with ctx.wrap_socket(h.connect(port), server_hostname="localhost") as s:
        s.sendall(b"hello")
        assert h.recv_exactly(s, 5) == b"hello"
    for s in silent:
        s.close()
    assert daemon.stop() == 0, daemon.text()


def test_first_byte_timeout():
    port = h.free_port()
    daemon, mport = start([h.listener("echo", "echo", port,
                                      extra="first_byte_timeout = 1;")])
    silent, talker = h.connect(port), h.connect(port)
    assert served(talker)
    assert ended(silent, 10) == "reset"
    # A client that spoke once is past the bound, silent or not.
    time.sleep(1.5)
    assert served(talker)
    wait_metric(mport, ("aloop_connections_timed_out_total", "echo",
                        "first_byte"), lambda v: v == 1)
    talker.close()
    silent.close()
    assert daemon.stop() == 0, daemon.text()


def fill_and_stall(port, n=8):
    """@n chargen clients with tiny receive buffers that never read."""
    clients = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        clients.append(s)
    return clients


def stalled_readers_reset(settings, reason):
    """chargen clients that never read, ended by the timeout @reason of
    @settings: each sees a reset, and no socket is left holding unsent
    data in FIN_WAIT1."""
    port = h.free_port()
    daemon, mport = start([h.listener("chargen", "chargen", port,
                                      extra=settings)])
    clients = fill_and_stall(port)
    wait_metric(mport, ("aloop_connections_timed_out_total", "chargen",
                        reason), lambda v: v == len(clients))
    deadline = time.monotonic() + 5
    while fin_wait(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fin_wait(port) == [], fin_wait(port)
    for s in clients:
        assert ended(s, 10) == "reset"
        s.close()
    assert daemon.stop() == 0, daemon.text()


def test_write_timeout_resets_and_leaves_nothing():
    stalled_readers_reset("write_timeout = 1;", "write")


def test_idle_timeout_with_unsent_output_resets():
    stalled_readers_reset("idle_timeout = 1; write_timeout = 0;", "idle")


def test_overflow_close_and_wait():
    close_port, wait_port = h.free_port(), h.free_port()
    daemon, mport = start([
        h.listener("close", "echo", close_port, extra="max_connections = 2;"),
        h.listener("wait", "echo", wait_port,
                   extra='max_connections = 2; overflow = "wait";')])
    held = [h.connect(close_port), h.connect(close_port)]
    assert all(served(s) for s in held)
    # Past max_connections the client is told at once, never left hanging.
    third = connect(close_port)
    assert ended(third, 5) == "reset"
    third.close()
    wait_metric(mport, ("aloop_connections_refused_total", "close",
                        "max_connections"), lambda v: v == 1)
    held[0].close()
    deadline = time.monotonic() + 10
    while True:
        again = connect(close_port)
        if served(again):
            break
        again.close()
        assert time.monotonic() < deadline, "a freed place never came back"
        time.sleep(0.05)
    # "wait" keeps today's behaviour: the client waits in the backlog.
    waiting = [h.connect(wait_port), h.connect(wait_port)]
    assert all(served(s) for s in waiting)
    queued = h.connect(wait_port)
    queued.sendall(b"q")
    queued.settimeout(0.5)
    try:
        queued.recv(1)
        raise AssertionError("served past max_connections")
    except socket.timeout:
        pass
    waiting[0].close()
    queued.settimeout(10)
    assert h.recv_exactly(queued, 1) == b"q"
    for s in [again, held[1], queued, waiting[1]]:
        s.close()
    assert daemon.stop() == 0, daemon.text()


def test_per_source_limit_across_workers():
    port = h.free_port()
    daemon, mport = start([h.listener(
        "echo", "echo", port, extra="max_connections_per_source = 3;")],
        workers=2)
    mine = [connect_from("127.0.0.1", port) for _ in range(3)]
    assert all(served(s) for s in mine)
    # Whichever worker takes the fourth, the source is at its limit.
    for _ in range(4):
        s = connect_from("127.0.0.1", port)
        assert not served(s), "a fourth connection from one source"
        s.close()
    # Another source is not.
    other = connect_from("127.0.0.2", port)
    assert served(other)
    # A place freed is a place to take again.
    mine.pop().close()
    deadline = time.monotonic() + 10
    while True:
        s = connect_from("127.0.0.1", port)
        if served(s):
            break
        s.close()
        assert time.monotonic() < deadline, "the source's place never freed"
        time.sleep(0.05)
    refused = h.metric_sums(mport)[("aloop_connections_refused_total", "echo",
                             "max_connections_per_source")]
    assert refused >= 4, refused
    for c in mine + [other, s]:
        c.close()
    assert daemon.stop() == 0, daemon.text()


def test_connection_rate_per_source():
    port = h.free_port()
    rate = 5
    daemon, mport = start([h.listener(
        "echo", "echo", port,
        extra="connection_rate_per_source = %d;" % rate)], workers=2)
    started = time.monotonic()
    ok = 0
    for _ in range(30):
        s = connect(port)
        ok += served(s)
        s.close()
    elapsed = time.monotonic() - started
    # A burst of one second's worth, then the rate.
    bound = rate + rate * elapsed + 1
    print("%d of 30 connections in %.2f s served at %d/s (bound %.1f)"
          % (ok, elapsed, rate, bound))
    assert 1 <= ok <= bound, (ok, bound)
    refused = h.metric_sums(mport)[("aloop_connections_refused_total", "echo",
                             "connection_rate")]
    assert refused == 30 - ok, (refused, ok)
    # Another source has its own bucket.
    s = connect_from("127.0.0.3", port)
    assert served(s)
    s.close()
    assert daemon.stop() == 0, daemon.text()


def test_datagram_rate_per_source():
    port = h.free_port()
    rate = 5
    daemon, mport = start([h.listener(
        "chargen-udp", "chargen", port, "udp",
        extra="datagram_rate_per_source = %d;" % rate)])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    started = time.monotonic()
    for _ in range(50):
        s.sendto(b"x", ("127.0.0.1", port))
    answers = 0
    try:
        while True:
            s.recv(65536)
            answers += 1
    except socket.timeout:
        pass
    elapsed = time.monotonic() - started
    bound = rate + rate * elapsed + 1
    print("%d answers to 50 datagrams in %.2f s at %d/s (bound %.1f)"
          % (answers, elapsed, rate, bound))
    assert 1 <= answers <= bound, (answers, bound)
    wait_metric(mport, ("aloop_datagrams_dropped_total", "chargen-udp",
                        "datagram_rate_per_source"), lambda v: v >= 50 - bound)
    s.close()
    assert daemon.stop() == 0, daemon.text()


def test_metrics_request_timeout():
    port = h.free_port()
    cfg, daemon = h.start([h.listener(
        "metrics", "metrics", port,
        extra="settings = { request_timeout = 1.0; };")],
        "shutdown_timeout = 3;")
    # A request head trickled a byte at a time is cut off at the bound.
    s = h.connect(port)
    started = time.monotonic()
    got = b""
    try:
        for b in b"GET /metrics HTTP/1.1\r\nHost: x\r\n":
            s.sendall(bytes([b]))
            time.sleep(0.2)
    except (BrokenPipeError, ConnectionResetError):
        pass
    s.settimeout(10)
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except ConnectionResetError:
        pass
    took = time.monotonic() - started
    print("a trickled request head was answered 408 after %.1f s" % took)
    assert got.startswith(b"HTTP/1.1 408 "), got
    assert took < 5, took
    s.close()
    # A kept-alive client gets its answer, then the same bound for the next.
    s = h.connect(port)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    first = s.recv(65536)
    assert first.startswith(b"HTTP/1.1 200 "), first
    s.settimeout(10)
    rest = b""
    while b"408" not in rest:
        chunk = s.recv(65536)
        assert chunk, rest
        rest += chunk
    s.close()
    assert daemon.stop() == 0, daemon.text()


if __name__ == "__main__":
    h.run([test_tls_silent_client_handshake_timeout,
           test_first_byte_timeout,
           test_write_timeout_resets_and_leaves_nothing,
           test_idle_timeout_with_unsent_output_resets,
           test_overflow_close_and_wait,
           test_per_source_limit_across_workers,
           test_connection_rate_per_source,
           test_datagram_rate_per_source,
           test_metrics_request_timeout])
