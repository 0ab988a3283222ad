#!/usr/bin/env python3
"""aloopd's life through signals: graceful stop with a transfer in flight,
the drain timeout, a second signal, SIGHUP adding and removing listeners
while a client stays connected, a bad reload, a plugin of a wrong ABI."""
import os
import signal
import socket
import time

import aloopd_harness as h


def start(listeners, daemon_extra=""):
    d = h.tmpdir()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, listeners, daemon_extra)
    daemon = h.Daemon(cfg)
    daemon.wait_ready()
    return cfg, daemon


def test_graceful_stop_delivers_data():
    port = h.free_port()
    cfg, daemon = start([h.listener("echo", "echo", port)],
                        "shutdown_timeout = 20;")
    s = h.connect(port)
    s.sendall(b"before")
    assert h.recv_exactly(s, 6) == b"before"
    daemon.signal(signal.SIGTERM)
    daemon.wait_log(r"stopping; 1 connections")
    # New clients are refused at once...
    try:
        h.connect(port, timeout=2).close()
        raise AssertionError("still accepting after SIGTERM")
    except OSError:
        pass
    # ...while the open one still works until it is done.
    payload = b"z" * 200000
    s.sendall(payload)
    assert h.recv_exactly(s, len(payload)) == payload
    s.shutdown(socket.SHUT_WR)
    assert h.recv_all(s) == b""
    s.close()
    assert daemon.wait_exit() == 0, daemon.text()
    assert "every connection is closed" in daemon.text()


def test_drain_timeout():
    port = h.free_port()
    cfg, daemon = start([h.listener("echo", "echo", port)],
                        "shutdown_timeout = 1;")
    s = h.connect(port)
    s.sendall(b"x")
    assert h.recv_exactly(s, 1) == b"x"
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0, daemon.text()
    assert time.monotonic() - started >= 0.9
    assert "shutdown_timeout of 1 s reached" in daemon.text()
    # The idle client was closed by the daemon.
    s.settimeout(5)
    try:
        assert s.recv(10) == b""
    except ConnectionResetError:
        pass
    s.close()


def test_second_signal_stops_now():
    port = h.free_port()
    cfg, daemon = start([h.listener("echo", "echo", port)],
                        "shutdown_timeout = 60;")
    s = h.connect(port)
    s.sendall(b"x")
    assert h.recv_exactly(s, 1) == b"x"
    daemon.signal(signal.SIGINT)
    daemon.wait_log(r"stopping; 1 connections")
    daemon.signal(signal.SIGINT)
    assert daemon.wait_exit(20) == 0, daemon.text()
    assert "again: stopping now" in daemon.text()
    s.close()


def test_reload_adds_and_removes():
    p_echo, p_discard, p_daytime = h.free_port(), h.free_port(), h.free_port()
    cfg, daemon = start([h.listener("echo", "echo", p_echo),
                         h.listener("discard", "discard", p_discard)])
    client = h.connect(p_echo)
    client.sendall(b"one")
    assert h.recv_exactly(client, 3) == b"one"
    held = h.connect(p_discard)

    h.write_config(cfg, [h.listener("echo", "echo", p_echo),
                         h.listener("daytime", "daytime", p_daytime)])
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"reloaded .*: 2 listeners")
    # The kept listener's client never noticed.
    client.sendall(b"two")
    assert h.recv_exactly(client, 3) == b"two"
    # The new listener serves; the removed one refuses newcomers...
    with h.connect(p_daytime) as s:
        assert h.recv_all(s).endswith(b"\r\n")
    try:
        h.connect(p_discard, timeout=2).close()
        raise AssertionError("removed listener still accepts")
    except OSError:
        pass
    # ...but its open connection drains normally.
    held.sendall(b"still here")
    held.shutdown(socket.SHUT_WR)
    held.settimeout(5)
    assert held.recv(10) == b""
    held.close()
    # And the kept one accepts new clients.
    with h.connect(p_echo) as s:
        s.sendall(b"new")
        assert h.recv_exactly(s, 3) == b"new"
    client.close()
    assert daemon.stop() == 0, daemon.text()


def test_bad_reload_keeps_running():
    port = h.free_port()
    cfg, daemon = start([h.listener("echo", "echo", port)])
    client = h.connect(port)
    with open(cfg, "a") as f:
        f.write("bogus_setting = 1;\n")
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"reload failed")
    assert "bogus_setting" in daemon.text(), daemon.text()
    client.sendall(b"alive")
    assert h.recv_exactly(client, 5) == b"alive"
    with h.connect(port) as s:
        s.sendall(b"new")
        assert h.recv_exactly(s, 3) == b"new"
    client.close()
    assert daemon.stop() == 0, daemon.text()


def test_wrong_abi_plugin_refused():
    d = h.tmpdir()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [h.listener("bad", os.path.join(
        h.FIXTURES, "plugin_wrong_major.so"), h.free_port())])
    daemon = h.Daemon(cfg)
    status = daemon.wait_exit()
    assert status == 1, (status, daemon.text())
    assert "plugin_wrong_major.so" in daemon.text(), daemon.text()
    assert "ABI" in daemon.text(), daemon.text()


h.run([test_graceful_stop_delivers_data, test_drain_timeout,
       test_second_signal_stops_now, test_reload_adds_and_removes,
       test_bad_reload_keeps_running, test_wrong_abi_plugin_refused])
