#!/usr/bin/env python3
"""The proxy against peers that hold what they can: an upstream that drops
every SYN (connects in progress stay within max_connecting), an upstream
that never answers a finished request and a client that never finishes its
side (half_close_timeout), an upstream that reads nothing
(upstream_write_timeout), a proxy loop through a second aloopd (every
descriptor comes back when the client leaves), and aloopd refusing, at
start and on reload, an upstream that is its own listener.  Descriptors
are counted in the worker's /proc/PID/fd and sockets with ss, never
inferred from timing."""
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get(
    "top_srcdir", os.path.join(os.path.dirname(__file__), "..", "..")),
    "tests", "daemon"))
import aloopd_harness as h  # noqa: E402

signal.alarm(int(os.environ.get("TEST_TIMEOUT", "180")))


def nfds(pids):
    return sum(len(os.listdir("/proc/%d/fd" % p)) for p in pids)


def wait_fds(pids, want, timeout=20):
    """Wait until @pids hold at most @want descriptors; the last count."""
    deadline = time.monotonic() + timeout
    while True:
        n = nfds(pids)
        if n <= want or time.monotonic() > deadline:
            return n
        time.sleep(0.05)


def syn_sent(pid, port):
    """Connects of process @pid to 127.0.0.1:@port still in progress."""
    out = subprocess.run(["ss", "-Htnp", "state", "syn-sent", "dport", "=",
                          ":%d" % port], capture_output=True, text=True,
                         check=True).stdout
    return sum(1 for line in out.splitlines() if "pid=%d," % pid in line)


def reset(s):
    """Leave with a reset: gone, not merely done sending (an EOF alone
    leaves a proxied connection half-open for the reply)."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                 struct.pack("ii", 1, 0))
    s.close()


def closed_by_peer(s, timeout):
    """Whether aloopd closed @s (EOF or reset) within @timeout seconds."""
    s.settimeout(timeout)
    try:
        while s.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def connect_or_refused(port):
    """A connection to @port, or None when aloopd's refusal (a reset)
    came before connect() returned, as it may on a busy machine."""
    try:
        return h.connect(port)
    except ConnectionResetError:
        return None


def proxy(name, port, settings):
    return h.listener(name, "proxy", port,
                      extra="settings = { %s };" % settings)


def test_connects_in_progress_bounded():
    # An upstream whose accept queue is full: the kernel drops every SYN,
    # so each connect to it stays in progress until connect_timeout.
    up = socket.socket()
    up.bind(("127.0.0.1", 0))
    up.listen(0)
    uport = up.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", uport))
    port = h.free_port()
    _, daemon = h.start([proxy("p", port, 'upstream = "127.0.0.1:%d"; '
                               'max_connecting = 4; connect_timeout = 60;'
                               % uport)])
    worker = daemon.workers()[0]
    base = nfds([worker])
    clients = [connect_or_refused(port) for _ in range(12)]
    # Eight of them are refused at once; four wait for their connect.
    refused = sum(c is None or closed_by_peer(c, 0.5) for c in clients)
    daemon.wait_log(r"proxy p: 4 upstream connects in progress "
                    r"\(max_connecting\), refusing connections")
    n = syn_sent(worker, uport)
    print("connects in progress: %d; clients refused: %d" % (n, refused))
    assert n == 4, n
    assert refused == 8, refused
    for c in clients:
        if c is not None:
            reset(c)
    # Leaving cancels the connects at once, not after connect_timeout:
    # their descriptors come back.
    left = wait_fds([worker], base)
    assert left <= base, (base, left)
    assert syn_sent(worker, uport) == 0
    daemon.wait_log(r"proxy p: accepting again, after refusing 8 "
                    r"connections at max_connecting 4")
    filler.close()
    up.close()
    assert daemon.stop() == 0, daemon.text()


class Silent:
    """An upstream that accepts and keeps every connection open, reading
    nothing and answering nothing (or, with @reply, sending it and its
    EOF, then nothing more)."""

    def __init__(self, reply=None):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.reply = reply
        self.held = []

    def accept(self, timeout=10):
        self.sock.settimeout(timeout)
        c, _ = self.sock.accept()
        if self.reply is not None:
            c.sendall(self.reply)
            c.shutdown(socket.SHUT_WR)
        self.held.append(c)
        return c

    def close(self):
        for c in self.held:
            c.close()
        self.sock.close()


def test_half_close_bounded():
    mute = Silent()
    done = Silent(reply=b"bye\n")
    pm, pd = h.free_port(), h.free_port()
    _, daemon = h.start([
        proxy("mute", pm, 'upstream = "127.0.0.1:%d"; '
              'half_close_timeout = 1.0;' % mute.port),
        proxy("done", pd, 'upstream = "127.0.0.1:%d"; '
              'half_close_timeout = 1.0;' % done.port)])
    worker = daemon.workers()[0]
    base = nfds([worker])

    # The client sends its request and its EOF; the upstream never answers.
    c = h.connect(pm)
    mute.accept()
    c.sendall(b"GET / HTTP/1.0\r\n\r\n")
    c.shutdown(socket.SHUT_WR)
    assert closed_by_peer(c, 20), "a finished request waits for good"
    c.close()
    daemon.wait_log(r"proxy mute: the upstream sent no EOF within 1 s of "
                    r"the client's: closing")

    # The upstream answers and sends its EOF; the client never finishes.
    c = h.connect(pd)
    done.accept()
    assert h.recv_all(c) == b"bye\n"
    daemon.wait_log(r"proxy done: the client sent no EOF within 1 s of "
                    r"the upstream's: closing")
    left = wait_fds([worker], base)
    print("worker descriptors: base %d, after %d" % (base, left))
    assert left <= base, (base, left)
    c.close()
    mute.close()
    done.close()
    assert daemon.stop() == 0, daemon.text()


def test_upstream_not_reading_bounded():
    """An upstream that takes no byte while the client sends: the client is
    paused (so aloopd's memory stays flat) and, after
    upstream_write_timeout without progress, both are closed."""
    deaf = Silent()
    port = h.free_port()
    _, daemon = h.start([proxy("deaf", port, 'upstream = "127.0.0.1:%d"; '
                               'upstream_write_timeout = 1.0;' % deaf.port)])
    worker = daemon.workers()[0]
    base = nfds([worker])
    c = h.connect(port)
    deaf.accept()
    # Send until aloopd stops reading (the kernel's buffers toward the
    # upstream full, then its own up to high_water), or closes.
    c.setblocking(False)
    taken = 0
    chunk = b"x" * 65536
    last = time.monotonic()
    while time.monotonic() - last < 2:
        try:
            taken += c.send(chunk)
            last = time.monotonic()
        except BlockingIOError:
            time.sleep(0.01)
        except (ConnectionResetError, BrokenPipeError):
            break
    c.setblocking(True)
    assert closed_by_peer(c, 20), "a stuck upstream holds the client"
    c.close()
    daemon.wait_log(r"proxy deaf: upstream 127\.0\.0\.1:%d took nothing "
                    r"for 1 s: closing" % deaf.port)
    left = wait_fds([worker], base)
    print("the client got %d KiB in; worker descriptors: base %d, after %d"
          % (taken >> 10, base, left))
    assert left <= base, (base, left)
    deaf.close()
    assert daemon.stop() == 0, daemon.text()


def test_loop_through_another_daemon_released():
    """Two aloopd, each proxying to the other: the one client's connection
    loops until the descriptors run out.  When it leaves, both workers go
    back to what they held before."""
    pa, pb = h.free_port(), h.free_port()
    d = h.tmpdir()
    ca, cb = os.path.join(d, "a.conf"), os.path.join(d, "b.conf")
    h.write_config(ca, [proxy("a", pa, 'upstream = "127.0.0.1:%d";' % pb)])
    h.write_config(cb, [proxy("b", pb, 'upstream = "127.0.0.1:%d";' % pa)])
    # A small descriptor limit: the loop saturates fast.
    a = h.Daemon(ca, shell_prefix="ulimit -n 256;")
    b = h.Daemon(cb, shell_prefix="ulimit -n 256;")
    a.wait_ready()
    b.wait_ready()
    workers = a.workers() + b.workers()
    base = nfds(workers)
    c = h.connect(pa)
    c.sendall(b"ping")
    deadline = time.monotonic() + 20
    peak = base

    def saturated():
        return "Too many open files" in a.text() + b.text()
    # The loop runs until descriptors run out; then the connects that
    # fail, and the waiting connections reset to free the backlog, may
    # unwind it all within milliseconds, before a count sees the peak.
    while (time.monotonic() < deadline and peak < base + 200 and
           not saturated()):
        peak = max(peak, nfds(workers))
        time.sleep(0.05)
    c.close()
    left = wait_fds(workers, base)
    print("loop descriptors: base %d, peak seen %d, after the client "
          "left %d" % (base, peak, left))
    assert peak >= base + 200 or saturated(), (base, peak)
    assert left <= base, (base, left)
    assert a.stop() == 0, a.text()
    assert b.stop() == 0, b.text()


def test_itself_refused_at_start_and_reload():
    port, other = h.free_port(), h.free_port()
    d = h.tmpdir()
    cfg = os.path.join(d, "aloop.conf")
    own = [proxy("p", port, 'upstream = "localhost:%d";' % port)]
    h.write_config(cfg, own)
    daemon = h.Daemon(cfg)
    assert daemon.wait_exit() != 0
    assert re.search(r'aloop\.conf:\d+: listeners\[0\]\.settings\.upstream '
                     r'"localhost:%d": is listener "p" of this aloopd'
                     % port, daemon.text()), daemon.text()

    h.write_config(cfg, [proxy("p", port, 'upstream = "127.0.0.1:%d";'
                               % other)])
    daemon = h.Daemon(cfg)
    daemon.wait_ready()
    h.write_config(cfg, own)
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r'upstream "localhost:%d": is listener "p" of this '
                    r'aloopd' % port)
    daemon.wait_log(r"reload failed")
    # The running configuration still serves: the upstream is down, so
    # the client is closed, not looped.
    c = h.connect(port)
    assert closed_by_peer(c, 20)
    c.close()
    assert daemon.stop() == 0, daemon.text()


if __name__ == "__main__":
    h.run([test_connects_in_progress_bounded, test_half_close_bounded,
           test_upstream_not_reading_bounded,
           test_loop_through_another_daemon_released,
           test_itself_refused_at_start_and_reload])
