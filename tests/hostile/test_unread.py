#!/usr/bin/env python3
"""Peers that stop reading, and a flood of peers that outnumbers the
descriptors: what aloopd leaves behind.  After the drain deadline and after
the idle timeout, no socket of the listener's port may stay in FIN_WAIT1
holding unsent data (counted with ss); out of descriptors, waiting clients
are reset instead of left hanging, a new client is served promptly once
the flood leaves, and the log says so once per listener per 10 s."""
import errno
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean (distcheck)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "daemon"))
import aloopd_harness as h  # noqa: E402

# Clients per case; large-count variants: HOSTILE_SCALE=10.
SCALE = int(os.environ.get("HOSTILE_SCALE", "1"))


def fin_wait1(port):
    """(sockets, bytes in their send queues) in FIN_WAIT1 on @port."""
    out = subprocess.run(["ss", "-tnH", "state", "fin-wait-1",
                          "( sport = :%d )" % port], capture_output=True,
                         text=True, timeout=10).stdout
    n = queued = 0
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 2:
            n += 1
            queued += int(f[1])
    return n, queued


def wait_no_fin_wait1(port, bound):
    """Seconds until nothing of @port is in FIN_WAIT1, within @bound; the
    last count when it was not reached."""
    started = time.monotonic()
    while True:
        n, queued = fin_wait1(port)
        took = time.monotonic() - started
        if n == 0:
            return took, 0, 0
        if took > bound:
            return took, n, queued
        time.sleep(0.1)


def silent_clients(port, n):
    """@n connected clients with small receive windows that never read."""
    out = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        out.append(s)
    return out


def ended_by_reset(s, bound=10):
    """Read what @s still holds; True if it ends with a reset."""
    s.settimeout(bound)
    try:
        while s.recv(1 << 20):
            pass
        return False
    except ConnectionResetError:
        return True
    except OSError:
        return False


def test_drain_deadline_resets_unread():
    port = h.free_port()
    cfg, daemon = h.start([h.listener("chargen", "chargen", port)],
                          "shutdown_timeout = 1;")
    clients = silent_clients(port, 10 * SCALE)
    time.sleep(1)  # the kernel's buffers fill; chargen pauses
    before = fin_wait1(port)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0, daemon.text()
    took, n, queued = wait_no_fin_wait1(port, 10)
    print("drain deadline: %d clients; FIN_WAIT1 before %r, after exit "
          "%d sockets holding %d bytes (%.2f s)"
          % (len(clients), before, n, queued, took))
    assert n == 0, (n, queued)
    resets = sum(ended_by_reset(s) for s in clients)
    print("drain deadline: %d of %d clients saw a reset"
          % (resets, len(clients)))
    assert resets == len(clients)
    for s in clients:
        s.close()


def test_idle_timeout_leaves_nothing():
    port = h.free_port()
    cfg, daemon = h.start([h.listener("chargen", "chargen", port,
                                      extra="idle_timeout = 1;")])
    clients = silent_clients(port, 10 * SCALE)
    # Idle after the buffers filled, then the close is bounded (5 s by
    # default): well within 20 s nothing of the port may linger.  Wait
    # well past the 1 s idle timeout before looking: reading earlier
    # (ended_by_reset) would make the connections busy again, and a
    # timer a few milliseconds late on a loaded machine then never fires.
    started = time.monotonic()
    time.sleep(2.5)
    took, n, queued = wait_no_fin_wait1(port, 20)
    print("idle timeout: %d clients; FIN_WAIT1 %d sockets holding %d "
          "bytes after %.2f s" % (len(clients), n, queued,
                                  time.monotonic() - started))
    assert n == 0, (n, queued)
    resets = sum(ended_by_reset(s) for s in clients)
    print("idle timeout: %d of %d clients saw a reset"
          % (resets, len(clients)))
    assert resets == len(clients)
    for s in clients:
        s.close()
    assert daemon.stop() == 0, daemon.text()


def try_connect(port, timeout):
    """A connected socket, or None when the kernel did not complete it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    _, w, _ = select.select([], [s], [], timeout)
    if not w or s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
        s.close()
        return None
    s.setblocking(True)
    return s


def echo_state(s, timeout):
    """'served' (echoed), 'reset', 'closed', or 'hang' for a client."""
    s.settimeout(timeout)
    try:
        s.sendall(b"?")
        b = s.recv(1)
        return "served" if b == b"?" else "closed"
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    except socket.timeout:
        return "hang"
    except OSError as e:
        return "reset" if e.errno == errno.ECONNRESET else "closed"


def test_out_of_descriptors():
    port = h.free_port()
    d = h.tmpdir()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [h.listener("echo", "echo", port)],
                   "shutdown_timeout = 1;", workers=2)
    # Every process of the daemon gets 64 descriptors.
    daemon = h.Daemon(cfg, shell_prefix="ulimit -n 64 &&")
    daemon.wait_ready()
    flood = []
    for _ in range(200 * SCALE):
        s = try_connect(port, 2)
        if s is not None:
            flood.append(s)
    # Each client was served or reset; none waits in the backlog.
    states = {}
    for s in flood:
        st = echo_state(s, 5)
        states[st] = states.get(st, 0) + 1
    print("flood: %d connected: %r" % (len(flood), states))
    assert states.get("served", 0) > 0, states
    assert states.get("reset", 0) > 0, states
    assert states.get("hang", 0) == 0, states
    # The flood leaves; how soon is a new client served?
    for s in flood:
        s.close()
    left = time.monotonic()
    served = None
    while time.monotonic() - left < 10:
        s = try_connect(port, 1)
        if s is not None:
            st = echo_state(s, 1)
            s.close()
            if st == "served":
                served = time.monotonic() - left
                break
        time.sleep(0.005)
    print("flood: a new client served %.1f ms after the flood left"
          % (served * 1e3 if served is not None else -1))
    assert served is not None and served < 2.0, served
    elapsed = time.monotonic() - left
    text = daemon.text()
    lines = re.findall(r'listener "echo": out of descriptors \([^)]*\): '
                       r'(\d+) connections reset', text)
    print("flood: %d log lines, counts %r" % (len(lines), lines))
    assert 1 <= len(lines) <= 2 + int(elapsed / 10), text
    assert daemon.stop() == 0, daemon.text()


if __name__ == "__main__":
    h.run([test_drain_deadline_resets_unread,
           test_idle_timeout_leaves_nothing,
           test_out_of_descriptors])
