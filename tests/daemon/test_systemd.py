#!/usr/bin/env python3
"""aloopd under a (fake) systemd: READY/RELOADING/STOPPING/STATUS and the
watchdog on the test's own NOTIFY_SOCKET, socket activation with
LISTEN_FDS/LISTEN_FDNAMES, and `systemd-analyze verify` of the unit."""
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean (distcheck)
import aloopd_harness as h  # noqa: E402


def test_notify_lifecycle():
    d = h.tmpdir()
    notify = h.NotifySocket(d)
    port = h.free_port()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [h.listener("echo", "echo", port)])
    daemon = h.Daemon(cfg, env={"NOTIFY_SOCKET": notify.path,
                                "WATCHDOG_USEC": "1000000"})
    assert notify.wait_for("READY=1") == "READY=1"
    # Every listener is bound by then.
    with h.connect(port) as s:
        s.sendall(b"up")
        assert h.recv_exactly(s, 2) == b"up"
    assert re.match(r"STATUS=\d+ connections?", notify.wait_for("STATUS="))
    # WatchdogSec=1 s: pings at half of it.
    assert notify.wait_for("WATCHDOG=1", 5) == "WATCHDOG=1"
    assert notify.wait_for("WATCHDOG=1", 5) == "WATCHDOG=1"

    daemon.signal(signal.SIGHUP)
    msg = notify.wait_for("RELOADING=1")
    assert re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=\d+", msg), msg
    assert notify.wait_for("READY=1") == "READY=1"

    daemon.signal(signal.SIGTERM)
    assert notify.wait_for("STOPPING=1") == "STOPPING=1"
    assert daemon.wait_exit() == 0, daemon.text()


def test_socket_activation():
    for workers in (1, 3):
        activate(workers)


def activate(workers):
    d = h.tmpdir()
    # The launcher's part: bind, listen, and hand the socket over as fd 3.
    passed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    passed.bind(("127.0.0.1", 0))
    passed.listen(16)
    port = passed.getsockname()[1]
    # The config names another port: the passed socket must win.
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [h.listener("echo-act", "echo", h.free_port(),
                                    extra="reuse_port = true;")],
                   workers=workers)
    fd = passed.fileno()
    move = "exec 3<&%d %d<&-;" % (fd, fd) if fd != 3 else ""
    prefix = (move + ' LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=echo-act;'
              ' export LISTEN_PID LISTEN_FDS LISTEN_FDNAMES;')
    daemon = h.Daemon(cfg, pass_fds=(fd,), shell_prefix=prefix)
    daemon.wait_ready()
    passed.close()
    assert "socket activation: 1 sockets" in daemon.text(), daemon.text()
    # Every worker serves the one passed socket.
    clients = [h.connect(port) for _ in range(10)]
    for c in clients:
        c.sendall(b"activated")
        assert h.recv_exactly(c, 9) == b"activated"
        c.close()
    assert daemon.stop() == 0, daemon.text()


def test_journal_priority_prefixes():
    d = h.tmpdir()
    port = h.free_port()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [h.listener("echo", "echo", port)])
    daemon = h.Daemon(cfg, journal=True)
    daemon.wait_ready()
    with open(cfg, "a") as f:
        f.write("typo = 1;\n")
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"reload failed")
    assert daemon.stop() == 0, daemon.text()
    lines = daemon.text().splitlines()
    # journald reads the level from "<N>"; it adds the time and name itself.
    assert all(re.match(r"<[3-7]>", x) for x in lines), lines
    assert any(x.startswith("<5>aloopd ") and "started" in x
               for x in lines), lines
    assert any(x.startswith("<3>") and "typo" in x for x in lines), lines


def test_watchdog_flows_while_a_worker_is_stuck():
    d = h.tmpdir()
    notify = h.NotifySocket(d)
    port = h.free_port()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [h.listener(
        "stall", os.path.join(h.FIXTURES, "plugin_stall.so"), port)])
    daemon = h.Daemon(cfg, env={"NOTIFY_SOCKET": notify.path,
                                "WATCHDOG_USEC": "1000000"})
    notify.wait_for("READY=1")
    notify.wait_for("WATCHDOG=1", 5)
    c = h.connect(port)
    started = time.monotonic()
    c.sendall(b"stall")     # blocks the worker's loop for 2 s
    pings = []
    reply = b""
    c.setblocking(False)
    while len(reply) < 2:
        r, _, _ = select.select([notify.sock, c], [], [], 10)
        assert r, "neither a ping nor the reply within 10 s"
        if notify.sock in r and notify.sock.recv(4096) == b"WATCHDOG=1":
            pings.append(time.monotonic() - started)
        if c in r:
            reply += c.recv(2)
    answered = time.monotonic() - started
    assert reply == b"ok"
    # The master is healthy while a worker is stuck, so the pings every
    # 0.5 s go on: a stuck worker is the master's business (it kills and
    # replaces one silent for worker_stall_timeout), not systemd's.
    assert [t for t in pings if 0.8 < t < answered - 0.1], pings
    notify.wait_for("WATCHDOG=1", 5)
    c.close()
    assert daemon.stop() == 0, daemon.text()


def test_unit_verifies_cleanly():
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze is missing (package systemd)"
    d = h.tmpdir()
    with open(os.path.join(h.TOP_SRCDIR, "systemd", "aloopd.service.in")) as f:
        unit = f.read()
    unit = unit.replace("@sbindir@/aloopd", os.path.abspath(h.ALOOPD))
    unit = unit.replace("@sysconfdir@", "/etc")
    path = os.path.join(d, "aloopd.service")
    with open(path, "w") as f:
        f.write(unit)
    # Documentation= is checked with man(1): give it our pages.
    for sec, page in (("8", "aloopd.8"), ("5", "aloop.conf.5")):
        os.makedirs(os.path.join(d, "man", "man" + sec), exist_ok=True)
        shutil.copy(os.path.join(h.TOP_BUILDDIR, "man", page),
                    os.path.join(d, "man", "man" + sec, page))
    socket_unit = os.path.join(d, "aloopd.socket")
    shutil.copy(os.path.join(h.TOP_SRCDIR, "systemd", "aloopd.socket"),
                socket_unit)
    env = dict(os.environ, MANPATH=os.path.join(d, "man"))
    r = subprocess.run([analyze, "verify", path, socket_unit],
                       capture_output=True, text=True, env=env, timeout=60)
    out = (r.stdout + r.stderr).strip()
    assert out == "", out


def test_unit_security_score():
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze is missing (package systemd)"
    d = h.tmpdir()
    with open(os.path.join(h.TOP_SRCDIR, "systemd", "aloopd.service.in")) as f:
        unit = f.read()
    path = os.path.join(d, "aloopd.service")
    with open(path, "w") as f:
        f.write(unit.replace("@sbindir@", "/usr/sbin")
                .replace("@sysconfdir@", "/etc"))
    r = subprocess.run([analyze, "security", "--offline=true", path],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for aloopd.service: ([0-9.]+)",
                  r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= 1.5, m.group(0)


h.run([test_notify_lifecycle, test_socket_activation,
       test_journal_priority_prefixes, test_watchdog_flows_while_a_worker_is_stuck,
       test_unit_verifies_cleanly, test_unit_security_score])
