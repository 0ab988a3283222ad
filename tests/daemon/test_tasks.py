#!/usr/bin/env python3
"""Plugins written as tasks (stream_task), run by the real aloopd: the
template and echo_task over TCP, TLS and UNIX; a client that stops reading
costs bounded memory; idle_timeout ends a task's connection; a crash or a stack overflow inside a task is
contained like any plugin crash, and the master names the listener and the
task; a reload leaves open task connections on the old generation; the
shutdown drain cancels a task blocked in a read and its cleanup runs."""

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aloopd_harness as h  # noqa: E402

signal.alarm(int(os.environ.get("TEST_TIMEOUT", "300")))

MISBEHAVE = os.path.join(h.FIXTURES, "plugin_task_misbehave.so")
# A crash under AddressSanitizer is its report and exit status 1.
DIED = r"(?:killed by SIG[A-Z]+(?: \(core dumped\))?|exited with status \d+)"


def make_cert(d):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", os.path.join(d, "key.pem"),
                    "-out", os.path.join(d, "cert.pem")],
                   check=True, capture_output=True)


def unix_listener(name, protocol, path, extra=""):
    return """	{
		name = "%s";
		protocol = "%s";
		listen = [ "unix:%s" ];
		%s
	}""" % (name, protocol, path, extra)


def connect_unix(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s


def echoes(s, size=200000):
    """A payload larger than every buffer on the way, back byte-exact."""
    payload = os.urandom(size)
    s.sendall(payload)
    return h.recv_exactly(s, size) == payload


def shout(s):
    assert h.recv_exactly(s, 10) == b"hi there\r\n"
    s.sendall(b"abc\r\nx")
    s.sendall(b"yz\n")
    assert h.recv_exactly(s, 8) == b"ABC\nXYZ\n"
    s.sendall(b"QUIT\r\nignored\n")
    assert h.recv_all(s) == b"BYE\r\n"


def test_tcp_tls_unix():
    d = h.tmpdir()
    make_cert(d)
    tls = 'tls = { certificate = "%s/cert.pem"; key = "%s/key.pem"; };' % (
        d, d)
    settings = 'settings = { greeting = "hi there"; max_line = 16; };'
    tpl_dir = os.path.join(d, "tpl")
    os.mkdir(tpl_dir)
    # The template as the tree builds it for its own tests.
    build_template(tpl_dir)
    ports = {k: h.free_port() for k in ("echo", "echo-tls", "shout",
                                        "shout-tls")}
    usock = os.path.join(d, "echo.sock")
    ushout = os.path.join(d, "shout.sock")
    listeners = [
        h.listener("echo", "echo_task", ports["echo"]),
        h.listener("echo-tls", "echo_task", ports["echo-tls"], "tcp", tls),
        unix_listener("echo-unix", "echo_task", usock),
        h.listener("shout", tpl_dir + "/template.so", ports["shout"], "tcp",
                   settings),
        h.listener("shout-tls", tpl_dir + "/template.so",
                   ports["shout-tls"], "tcp", settings + tls),
        unix_listener("shout-unix", tpl_dir + "/template.so", ushout,
                      settings),
    ]
    cfg, daemon = h.start(listeners)
    ctx = ssl.create_default_context(cafile=os.path.join(d, "cert.pem"))
    with h.connect(ports["echo"]) as s:
        assert echoes(s)
        s.shutdown(socket.SHUT_WR)
        assert h.recv_all(s) == b""
    with h.connect(ports["echo-tls"]) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            assert echoes(s)
    with connect_unix(usock) as s:
        assert echoes(s)
    with h.connect(ports["shout"]) as s:
        shout(s)
    with h.connect(ports["shout"]) as s:
        assert h.recv_exactly(s, 10) == b"hi there\r\n"
        s.sendall(b"z" * 17)
        assert h.recv_all(s) == b"ERR line too long\r\n"
    with h.connect(ports["shout-tls"]) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            shout(s)
    with connect_unix(ushout) as s:
        shout(s)
    assert daemon.stop() == 0, daemon.text()
    # One instance per listener: the TCP one served two.
    assert "template: served 2 connections" in daemon.text(), daemon.text()


def build_template(out):
    """template.c compiled against the tree's headers, as a plugin."""
    inc = [os.path.join(h.TOP_SRCDIR, "include"),
           os.path.join(h.TOP_BUILDDIR, "include")]
    cmd = [os.environ.get("CC", "cc"), "-shared", "-fPIC", "-Wall",
           "-Wextra", "-Werror", "-fvisibility=hidden"]
    cmd += ["-I" + i for i in inc]
    cmd += [os.path.join(h.TOP_SRCDIR, "plugins", "template", "template.c"),
            "-o", os.path.join(out, "template.so")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_slow_reader_bounded():
    """A client that sends and never reads: the task waits in drain, the
    reader stops reading, and the worker's memory stays put."""
    port = h.free_port()
    cfg, daemon = h.start([h.listener("echo", "echo_task", port)])
    s = h.connect(port)
    s.setblocking(False)
    chunk = b"x" * 65536
    sent = 0
    before = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and sent < 256 << 20:
        try:
            sent += s.send(chunk)
        except BlockingIOError:
            if before is None:
                # Everything between us is full: measure from here.
                before = daemon.rss_kib()
            time.sleep(0.05)
            if time.monotonic() > deadline - 15:
                break
    assert before is not None, "the daemon read without end"
    time.sleep(1)
    after = daemon.rss_kib()
    print("  slow reader: %d KiB sent, worker RSS %d -> %d KiB"
          % (sent >> 10, before, after))
    # ASan's quarantine keeps what was freed: more room, still bounded.
    assert after - before < 16384, (before, after)
    s.close()
    assert daemon.stop() == 0, daemon.text()


def test_idle_timeout_ends_task():
    """The listener's idle_timeout closes a task's connection as any other:
    the task's read sees EOF and it returns; the counters saw its bytes."""
    port = h.free_port()
    cfg, daemon = h.start([h.listener("echo", "echo_task", port, "tcp",
                                      "idle_timeout = 1;")])
    with h.connect(port) as s:
        s.sendall(b"ping")
        assert h.recv_exactly(s, 4) == b"ping"
        started = time.monotonic()
        assert h.recv_all(s) == b""
        took = time.monotonic() - started
    assert 0.9 <= took < 5, took
    assert daemon.stop() == 0, daemon.text()


def who(s):
    s.sendall(b"who\n")
    line = b""
    while not line.endswith(b"\n"):
        chunk = s.recv(64)
        assert chunk, "closed while asking who serves it"
        line += chunk
    return int(line.split()[1])


def crash_case(trigger):
    port = h.free_port()
    cfg, daemon = h.start([h.listener("mis", MISBEHAVE, port)],
                          "shutdown_timeout = 2;", workers=1)
    with h.connect(port) as s:
        first = who(s)
        s.sendall(trigger)
        daemon.wait_log(r"worker \d+ \(pid %d\) %s in listener \"mis\", "
                        r"plugin \S+ \(%s\), callback stream_task \(in its "
                        r"task\); starting a new one"
                        % (first, DIED, re.escape(MISBEHAVE)))
    # The replacement serves.
    deadline = time.monotonic() + 10
    while True:
        try:
            with h.connect(port) as s:
                assert who(s) != first
                break
        except (OSError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert daemon.stop() == 0, daemon.text()
    return daemon


def test_crash_in_task():
    crash_case(b"segv\n")


def test_stack_overflow_in_task():
    daemon = crash_case(b"deep\n")
    # ASan names it itself; a plain build dies of SIGSEGV on the guard.
    assert re.search(r"SIGSEGV|SEGV on|stack-overflow", daemon.text()), \
        daemon.text()


def test_reload_keeps_task_connections():
    port = h.free_port()
    cfg, daemon = h.start([h.listener("mis", MISBEHAVE, port)])
    old = h.connect(port)
    old_pid = who(old)
    daemon.signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while True:
        with h.connect(port) as s:
            if who(s) != old_pid:
                break
        assert time.monotonic() < deadline, "no new generation"
        time.sleep(0.1)
    # The old connection is still served, by the old worker.
    assert who(old) == old_pid
    old.sendall(b"still here\n")
    assert h.recv_exactly(old, 11) == b"still here\n"
    old.close()
    assert daemon.stop() == 0, daemon.text()


def test_drain_cancels_blocked_task():
    port = h.free_port()
    cfg, daemon = h.start([h.listener("mis", MISBEHAVE, port)],
                          "shutdown_timeout = 1;")
    s = h.connect(port)
    s.sendall(b"block\n")
    assert h.recv_exactly(s, 8) == b"blocked\n"
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(15) == 0, daemon.text()
    took = time.monotonic() - started
    assert "task cleanup ran: " in daemon.text(), daemon.text()
    assert took < 1 + 3, took
    s.close()


TESTS = [test_tcp_tls_unix, test_slow_reader_bounded,
         test_idle_timeout_ends_task, test_crash_in_task,
         test_stack_overflow_in_task, test_reload_keeps_task_connections,
         test_drain_cancels_blocked_task]
h.run([t for t in TESTS if len(sys.argv) < 2 or t.__name__ in sys.argv[1:]])
