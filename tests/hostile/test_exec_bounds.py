#!/usr/bin/env python3
"""The exec plugin against peers and programs that hold what they can: a
client that leaves a program whose background job ignores SIGTERM (the
whole process group ends within kill_timeout), a program that never reads
its stdin while the client sends as fast as it can (stopped reading, then
closed after stdin_timeout), and a client that never reads the program's
output (back-pressure: what aloopd buffers stays bounded, and the program
blocks instead)."""
import os
import re
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get(
    "top_srcdir", os.path.join(os.path.dirname(__file__), "..", "..")),
    "tests", "daemon"))
# The plugin logs the pids it starts at debug level; the tests need them.
os.environ.setdefault("ALOOPD_TEST_LOG_LEVEL", "debug")
import aloopd_harness as h  # noqa: E402

signal.alarm(int(os.environ.get("TEST_TIMEOUT", "180")))


def exec_listener(name, port, settings):
    return h.listener(name, "exec", port, extra="settings = { %s };"
                      % settings)


def alive(pid):
    """Whether @pid runs (a zombie waiting for its reaper does not)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pids, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.05)
    return left


def started_pid(daemon, listener):
    m = daemon.wait_log(r"exec %s: started \S+ as pid (\d+)" % listener)
    return int(m.group(1))


def reset(s):
    """Leave with a reset: gone, not merely done sending."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                 struct.pack("ii", 1, 0))
    s.close()


def closed_by_peer(s, timeout):
    """Whether aloopd closed @s (EOF or reset) within @timeout seconds."""
    s.setblocking(True)
    s.settimeout(timeout)
    try:
        while s.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def send_until_blocked(s, quiet=1.0, limit=256 << 20):
    """Send as fast as the peer takes it; stop once it has taken nothing
    for @quiet seconds (or at @limit).  The bytes it took."""
    s.setblocking(False)
    chunk = b"x" * 65536
    total = 0
    last = time.monotonic()
    while total < limit and time.monotonic() - last < quiet:
        try:
            total += s.send(chunk)
            last = time.monotonic()
        except BlockingIOError:
            time.sleep(0.01)
        except (ConnectionResetError, BrokenPipeError):
            break
    return total


def test_client_leaving_ends_the_process_group():
    port = h.free_port()
    # sh ignores SIGTERM, and so does the job it starts in the background
    # (an ignored signal stays ignored across fork and exec).
    _, daemon = h.start([exec_listener(
        "job", port, 'command = [ "/bin/sh", "-c", "trap \\"\\" TERM; '
        'sleep 1000 & echo $!; wait" ]; kill_timeout = 0.5;')])
    s = h.connect(port)
    s.settimeout(20)
    job = int(s.recv(64))
    sh = started_pid(daemon, "job")
    assert alive(sh) and alive(job)
    reset(s)
    left = wait_gone([sh, job])
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, "still running after the client left: %r" % left
    daemon.wait_log(r"exec job: pid %d: done" % sh)
    assert daemon.stop() == 0, daemon.text()


def test_program_not_reading_stdin():
    port = h.free_port()
    # A client paused by back-pressure is not read, so its leaving is not
    # seen: stdin_timeout is what ends the connection and the program.
    _, daemon = h.start([exec_listener(
        "deaf", port, 'command = [ "/bin/sleep", "1000" ]; '
        'stdin_timeout = 1.0;')])
    worker = daemon.workers()[0]
    base = h.rss_kib(worker)
    s = h.connect(port)
    pid = started_pid(daemon, "deaf")
    taken = send_until_blocked(s, quiet=0.5)
    grown = h.rss_kib(worker) - base
    print("the client got %d KiB in before aloopd stopped reading; worker "
          "RSS grew %d KiB" % (taken >> 10, grown))
    # Kernel socket buffers on both sides, the pipe and one write buffer.
    assert taken < 64 << 20, taken
    assert grown < 16 << 10, grown
    daemon.wait_log(r"exec deaf: pid %d took none of its stdin for 1 s: "
                    r"closing" % pid)
    assert closed_by_peer(s, 20)
    assert wait_gone([pid]) == []
    s.close()
    assert daemon.stop() == 0, daemon.text()


def test_client_not_reading_output():
    port = h.free_port()
    _, daemon = h.start([exec_listener(
        "yes", port, 'command = [ "/usr/bin/yes" ];')])
    worker = daemon.workers()[0]
    base = h.rss_kib(worker)
    s = h.connect(port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    pid = started_pid(daemon, "yes")
    # yes writes as fast as it can; once every buffer is full it blocks
    # in write and uses no CPU: its utime stops moving.
    def cpu(p):
        with open("/proc/%d/stat" % p) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    deadline = time.monotonic() + 30
    last = cpu(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu(pid)
        if now == last:
            break
        last = now
    else:
        raise AssertionError("yes never blocked")
    with open("/proc/%d/wchan" % pid) as f:
        wchan = f.read()
    grown = h.rss_kib(worker) - base
    print("yes blocked in %s; worker RSS grew %d KiB" % (wchan, grown))
    assert grown < 16 << 10, grown
    reset(s)
    daemon.wait_log(r"exec yes: pid %d: done" % pid)
    assert daemon.stop() == 0, daemon.text()


if __name__ == "__main__":
    h.run([test_client_leaving_ends_the_process_group,
           test_program_not_reading_stdin, test_client_not_reading_output])
