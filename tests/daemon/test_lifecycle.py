#!/usr/bin/env python3
"""aloopd's life through signals: graceful stop with a transfer in flight,
the drain timeout, a second signal, SIGHUP adding and removing listeners
while a client stays connected, a bad reload, a plugin of a wrong ABI."""
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean (distcheck)
import aloopd_harness as h  # noqa: E402


start = h.start


def test_graceful_stop_delivers_data():
    port = h.free_port()
    cfg, daemon = start([h.listener("echo", "echo", port)],
                        "shutdown_timeout = 20;")
    s = h.connect(port)
    s.sendall(b"before")
    assert h.recv_exactly(s, 6) == b"before"
    daemon.signal(signal.SIGTERM)
    daemon.wait_log(r"stopping; 1 connections?")
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
    daemon.wait_log(r"stopping; 1 connections?")
    daemon.signal(signal.SIGINT)
    assert daemon.wait_exit(20) == 0, daemon.text()
    assert "again: stopping now" in daemon.text()
    s.close()


def test_reload_adds_and_removes():
    p_echo, p_discard, p_daytime = h.free_port(), h.free_port(), h.free_port()
    cfg, daemon = start([h.listener("echo", "echo", p_echo),
                         h.listener("echo2", "echo", p_discard)])
    client = h.connect(p_echo)
    client.sendall(b"one")
    assert h.recv_exactly(client, 3) == b"one"
    # Accepted for sure (a client still in the backlog when its listener
    # is removed is reset, as with any server that closes).
    held = h.connect(p_discard)
    held.sendall(b"x")
    assert h.recv_exactly(held, 1) == b"x"

    h.write_config(cfg, [h.listener("echo", "echo", p_echo),
                         h.listener("daytime", "daytime", p_daytime)])
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"reloaded .*: 2 listeners?")
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
    # ...but its open connection goes on and drains normally.
    held.sendall(b"still here")
    held.shutdown(socket.SHUT_WR)
    assert h.recv_all(held) == b"still here"
    held.close()
    # And the kept one accepts new clients.
    with h.connect(p_echo) as s:
        s.sendall(b"new")
        assert h.recv_exactly(s, 3) == b"new"
    client.close()
    assert daemon.stop() == 0, daemon.text()


def test_reload_rereads_settings():
    port = h.free_port()

    def chargen(length):
        return h.listener("chargen", "chargen", port,
                          extra="settings = { line_length = %d; };" % length)

    cfg, daemon = start([chargen(72)])
    old = h.connect(port)
    assert len(h.recv_exactly(old, 74).split(b"\r\n")[0]) == 72
    h.write_config(cfg, [chargen(10)])
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"reloaded .*: 1 listeners?")
    # New connections get the new settings, on the same socket...
    with h.connect(port) as new:
        assert h.recv_exactly(new, 12 * 3).split(b"\r\n")[0] == \
            bytes(range(32, 42))
    # ...while the old one goes on with the instance it started with.
    data = h.recv_exactly(old, 74 * 50)
    lines = [x for x in data.split(b"\r\n")[1:-1]]
    assert lines and all(len(x) == 72 for x in lines), lines[:3]
    old.close()
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

    # A valid file whose new listener cannot bind is rolled back too.
    blocked = h.free_port()
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", blocked))
    blocker.listen(1)
    h.write_config(cfg, [h.listener("echo", "echo", port,
                                    extra="max_connections = 1;"),
                         h.listener("daytime", "daytime", blocked)])
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"a listener could not be opened; keeping")
    blocker.close()
    # The old echo listener (no max_connections) still takes a second client.
    with h.connect(port) as s:
        s.sendall(b"kept")
        assert h.recv_exactly(s, 4) == b"kept"
    client.sendall(b"alive")
    assert h.recv_exactly(client, 5) == b"alive"
    client.close()
    assert daemon.stop() == 0, daemon.text()


def test_reload_keeps_unix_socket():
    d = h.tmpdir()
    path = os.path.join(d, "echo.sock")
    lst = """	{
		name = "echo-unix";
		protocol = "echo";
		listen = [ "unix:%s" ];
		mode = "0660";
	}""" % path
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [lst])
    daemon = h.Daemon(cfg)
    daemon.wait_ready()
    assert os.stat(path).st_mode & 0o777 == 0o660

    def unix_client():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(path)
        return s

    old = unix_client()
    for n in range(2):
        daemon.signal(signal.SIGHUP)
        daemon.wait_log(r"(?s)(reloaded .*){%d}" % (n + 1))
        # The socket file outlives the server that made it.
        assert os.path.exists(path)
        with unix_client() as s:
            s.sendall(b"reloaded")
            assert h.recv_exactly(s, 8) == b"reloaded"
    old.sendall(b"old")
    assert h.recv_exactly(old, 3) == b"old"
    old.close()
    assert daemon.stop() == 0, daemon.text()
    # A stop closes the listener for good, and its file with it.
    assert not os.path.exists(path)


def test_workers_share_the_load():
    port = h.free_port()
    cfg, daemon = start([h.listener("echo", "echo", port,
                                    extra="reuse_port = true;"),
                         h.listener("echo-udp", "echo", port, "udp",
                                    "reuse_port = true;")],
                        workers=3)
    clients = [h.connect(port) for _ in range(12)]
    for i, c in enumerate(clients):
        msg = b"client %d" % i
        c.sendall(msg)
        assert h.recv_exactly(c, len(msg)) == msg
    assert h.udp_exchange(port, b"dgram") == b"dgram"
    # A reload is a new generation of workers, as many as the file says;
    # the old generation's clients keep being served while they drain.
    h.write_config(cfg, [h.listener("echo", "echo", port,
                                    extra="reuse_port = true;"),
                         h.listener("echo-udp", "echo", port, "udp",
                                    "reuse_port = true;")], workers=2)
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"reloaded .*: 2 listeners, 2 workers")
    for i in range(8):
        with h.connect(port) as c:
            c.sendall(b"new %d" % i)
            assert h.recv_exactly(c, 4 + len(str(i))) == b"new %d" % i
    assert h.udp_exchange(port, b"dgram") == b"dgram"
    for c in clients:
        c.sendall(b"again")
        assert h.recv_exactly(c, 5) == b"again"
        c.close()
    assert daemon.stop() == 0, daemon.text()


def test_max_connections():
    port = h.free_port()
    cfg, daemon = start([h.listener("echo", "echo", port,
                                    extra='max_connections = 2; '
                                    'overflow = "wait";')])
    first, second = h.connect(port), h.connect(port)
    for c in (first, second):
        c.sendall(b"in")
        assert h.recv_exactly(c, 2) == b"in"
    daemon.wait_log(r"2 connections, not accepting")
    # The third waits in the kernel's backlog: connected, but not served.
    third = h.connect(port)
    third.sendall(b"wait")
    third.settimeout(0.5)
    try:
        third.recv(4)
        raise AssertionError("served past max_connections")
    except socket.timeout:
        pass
    # A reload keeps the listener: the old clients still count.
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"reloaded .*: 1 listeners?")
    third.settimeout(0.5)
    try:
        third.recv(4)
        raise AssertionError("a reload let a client past max_connections")
    except socket.timeout:
        pass
    # One of the old generation's clients leaving makes room.
    first.close()
    third.settimeout(10)
    assert h.recv_exactly(third, 4) == b"wait"
    daemon.wait_log(r"accepting again")
    second.close()
    third.close()
    assert daemon.stop() == 0, daemon.text()


def idle_timeout_case(daemon, connect):
    busy, idle = connect(), connect()
    started = time.monotonic()
    # One keeps talking past the timeout, the other says nothing.
    while time.monotonic() - started < 2.5:
        busy.sendall(b"k")
        assert h.recv_exactly(busy, 1) == b"k"
        time.sleep(0.2)
    idle.settimeout(5)
    assert idle.recv(10) == b""
    busy.sendall(b"still")
    assert h.recv_exactly(busy, 5) == b"still"
    busy.close()
    idle.close()
    assert daemon.stop() == 0, daemon.text()


def test_idle_timeout():
    port = h.free_port()
    cfg, daemon = start([h.listener("echo", "echo", port,
                                    extra="idle_timeout = 1;")])
    idle_timeout_case(daemon, lambda: h.connect(port))


def test_idle_timeout_unix():
    # No kernel times for a UNIX socket: the daemon's own clock decides.
    d = h.tmpdir()
    path = os.path.join(d, "echo.sock")
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, ["""	{
		name = "echo-unix";
		protocol = "echo";
		listen = [ "unix:%s" ];
		idle_timeout = 1;
	}""" % path])
    daemon = h.Daemon(cfg)
    daemon.wait_ready()

    def unix_client():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(path)
        return s

    idle_timeout_case(daemon, unix_client)


def test_version_says_how_it_was_built():
    r = subprocess.run([h.ALOOPD, "-V"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 0, r.stderr
    for pattern in (r"^aloopd \d+\.\d+\.\d+$", r"^libaloop .*OpenSSL 3",
                    r"^plugin ABI \d+\.\d+$", r"^configuration: /\S+/aloop\.conf$",
                    r"^plugins: /\S+$", r"^systemd: ", r"^sanitizers: ",
                    r"^configure arguments: "):
        assert re.search(pattern, r.stdout, re.M), (pattern, r.stdout)


def test_dump_prints_what_runs():
    d = h.tmpdir()
    port = h.free_port()
    cfg = os.path.join(d, "aloop.conf")
    with open(os.path.join(d, "extra.conf"), "w") as f:
        f.write(h.listener("included", "echo", port, "udp") + "\n")
    with open(cfg, "w") as f:
        f.write('daemon = { plugin_path = [ "%s" ]; };\n'
                'listeners = (\n%s,\n@include "extra.conf"\n);\n'
                % (h.PLUGINS, h.listener("echo", "echo", port,
                                         extra="max_connections = 5;")))
    r = subprocess.run([h.ALOOPD, "-T", "-c", cfg], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "configuration OK" in r.stderr
    text = r.stdout
    # What the file said, what it included, and the defaults it left out.
    assert re.search(r"max_connections = 5;", text), text
    assert re.search(r'name = "included";', text), text
    assert re.search(r"shutdown_timeout = 30", text), text
    assert re.search(r'overflow = "close";', text), text
    # Only what applies: no stream settings on the UDP listener.
    udp = text[text.index('name = "included"'):]
    assert "write_timeout" not in udp and "datagram_rate_per_source" in udp
    # The dump is a configuration that reads back to the same dump.
    again = os.path.join(d, "again.conf")
    with open(again, "w") as f:
        f.write(text)
    r2 = subprocess.run([h.ALOOPD, "-T", "-c", again], capture_output=True,
                        text=True, timeout=30)
    assert r2.returncode == 0, r2.stderr
    body = lambda t: t.split("\n", 2)[2]
    assert body(r2.stdout) == body(text)
    # A bad file is refused as -t refuses it, and nothing is printed.
    with open(cfg, "a") as f:
        f.write("bogus = 1;\n")
    r = subprocess.run([h.ALOOPD, "-T", "-c", cfg], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1 and r.stdout == "", r
    assert "bogus" in r.stderr, r.stderr


def test_detach_and_pidfile():
    d = h.tmpdir()
    port = h.free_port()
    pidfile = os.path.join(d, "aloopd.pid")
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [h.listener("echo", "echo", port)],
                   'pidfile = "%s";' % pidfile)
    log = open(os.path.join(d, "log"), "w+")
    # Without -f the command returns once the detached daemon is ready.
    parent = subprocess.run([h.ALOOPD, "-c", cfg], stdout=log, stderr=log,
                            timeout=30)
    assert parent.returncode == 0
    with open(pidfile) as f:
        pid = int(f.read())
    assert pid != parent.returncode and os.path.exists("/proc/%d" % pid)
    try:
        with h.connect(port) as s:
            s.sendall(b"detached")
            assert h.recv_exactly(s, 8) == b"detached"
        # A second aloopd on the same pidfile stops before binding, even
        # though SO_REUSEPORT would let it serve beside the first.
        second = subprocess.run([h.ALOOPD, "-f", "-c", cfg],
                                capture_output=True, text=True, timeout=20)
        assert second.returncode == 1, second.stderr
        assert "already running as pid %d" % pid in second.stderr, \
            second.stderr
        with open(pidfile) as f:
            assert int(f.read()) == pid
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while os.path.exists(pidfile) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(pidfile), "pidfile left behind"
        while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists("/proc/%d" % pid), "still running"
    finally:
        if os.path.exists("/proc/%d" % pid):
            os.kill(pid, signal.SIGKILL)
    log.seek(0)
    assert "stopped" in log.read()


def test_failed_start_exits_1():
    # Two listeners on one port: the second cannot bind, nothing runs.
    port = h.free_port()
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", port))
    blocker.listen(1)
    d = h.tmpdir()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [h.listener("echo", "echo", port)])
    daemon = h.Daemon(cfg)
    assert daemon.wait_exit() == 1, daemon.text()
    assert "cannot listen on 127.0.0.1:%d" % port in daemon.text()
    # Detached, the failure is still the command's exit status.
    r = subprocess.run([h.ALOOPD, "-c", cfg], capture_output=True,
                       timeout=30)
    blocker.close()
    assert r.returncode == 1, r
    assert b"cannot listen" in r.stderr, r.stderr


def ids_of(pid):
    with open("/proc/%d/status" % pid) as f:
        ids = dict(line.split(":", 1) for line in f if ":" in line)
    return set(ids["Uid"].split()), set(ids["Gid"].split()), ids


def test_privilege_drop():
    port = h.free_port()
    cfg, daemon = start([h.listener("echo", "echo", port)],
                        'user = "nobody"; group = "nogroup";', workers=2)
    with h.connect(port) as s:
        s.sendall(b"dropped")
        assert h.recv_exactly(s, 7) == b"dropped"
    workers = daemon.workers()
    assert len(workers) == 2, workers
    for pid in workers:
        uids, gids, ids = ids_of(pid)
        if os.geteuid() == 0:
            # Real, effective and saved: root is gone, and stays gone.
            assert uids == {"65534"} and gids == {"65534"}, (pid, ids)
            assert ids["NoNewPrivs"].strip() == "1", ids
        else:
            assert uids == {str(os.geteuid())}, (pid, uids)
    # The master keeps its user, to bind what a reload adds.
    uids, _, _ = ids_of(daemon.pid)
    assert uids == {str(os.geteuid())}, uids
    assert ("workers run as nobody:nogroup" if os.geteuid() == 0 else
            "not started as root") in daemon.text(), daemon.text()
    if os.geteuid() == 0:
        # A reload may add a privileged port: the master binds it.
        low = None
        for p in range(900, 1000):
            try:
                probe = socket.socket()
                probe.bind(("127.0.0.1", p))
                probe.close()
                low = p
                break
            except OSError:
                continue
        assert low is not None
        h.write_config(cfg, [h.listener("echo", "echo", port),
                             h.listener("low", "echo", low)],
                       'user = "nobody"; group = "nogroup";', workers=2)
        daemon.signal(signal.SIGHUP)
        daemon.wait_log(r"reloaded .*: 2 listeners")
        with h.connect(low) as s:
            s.sendall(b"low")
            assert h.recv_exactly(s, 3) == b"low"
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
       test_reload_rereads_settings, test_bad_reload_keeps_running,
       test_reload_keeps_unix_socket,
       test_workers_share_the_load, test_max_connections, test_idle_timeout,
       test_idle_timeout_unix,
       test_version_says_how_it_was_built, test_dump_prints_what_runs,
       test_detach_and_pidfile, test_failed_start_exits_1,
       test_privilege_drop,
       test_wrong_abi_plugin_refused])
