#!/usr/bin/env python3
"""The exec plugin in a real aloopd: /bin/cat as an echo, programs that exit
early, back-pressure both ways with aloopd's RSS staying bounded, a client
that leaves (terminate, then kill), timeout, max_children, env, cwd, user,
the peer's address in the environment, and settings that aloopd -t refuses."""
import os
import pwd
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

# The plugin logs the pids it starts at debug level; the tests need them.
os.environ.setdefault("ALOOPD_TEST_LOG_LEVEL", "debug")

import aloopd_harness as h  # noqa: E402


# 96 MiB through a program and back: on a loaded machine (the sanitizer
# build, other tests running beside) a quiet spell can last long, so the
# bound is generous; a stuck transfer still fails, and the file's own
# alarm stays behind it.
SLOW = 120
signal.alarm(int(os.environ.get("TEST_TIMEOUT", "400")))

def start(d, listeners):
    """@listeners: (name, settings text); returns daemon and ports."""
    ports = {}
    conf = []
    for name, settings in listeners:
        ports[name] = h.free_port()
        conf.append(h.listener(name, "exec", ports[name], "tcp",
                               "settings = { %s };" % settings))
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, conf)
    daemon = h.Daemon(cfg)
    daemon.wait_ready()
    return daemon, ports



def gone(pid, timeout=10):
    """Whether @pid is no more (aloopd reaps its children)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/stat" % pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state == "Z":
                time.sleep(0.05)
                continue
        except (FileNotFoundError, ProcessLookupError):
            # Reaped between the open and the read: ESRCH.
            return True
        time.sleep(0.05)
    return False


def started_pid(daemon, listener, after=0):
    """The pid of the @after-th program @listener started (0 is first)."""
    for _ in range(200):
        pids = re.findall(r"exec %s: started \S+ as pid (\d+)" % listener,
                          daemon.text())
        if len(pids) > after:
            return int(pids[after])
        time.sleep(0.05)
    raise AssertionError("no pid logged:\n" + daemon.text())


def reset(s):
    """Close with a reset: the client is gone, not merely done sending
    (an EOF alone keeps the connection half-open for the output)."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                 struct.pack("ii", 1, 0))
    s.close()


def sender(s, data):
    """Send @data from a thread, ignoring a peer that stops reading."""
    def run():
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_cat_echoes():
    d = h.tmpdir()
    daemon, ports = start(d, [("cat", 'command = [ "/bin/cat" ];')])
    with h.connect(ports["cat"]) as s:
        # Line by line: cat answers each before the next is sent.
        for line in (b"hello\n", b"world\n"):
            s.sendall(line)
            assert h.recv_exactly(s, len(line)) == line
        payload = os.urandom(1 << 20)
        t = sender(s, payload)
        assert h.recv_all(s) == payload
        t.join()
    assert daemon.stop() == 0, daemon.text()


def test_program_exits_early():
    d = h.tmpdir()
    daemon, ports = start(d, [
        ("early", 'command = [ "/bin/sh", "-c", '
                  '"echo hello; echo oops >&2; exit 3" ];'),
        ("head", 'command = [ "/usr/bin/head", "-c", "10" ];'),
        ("noisy", 'command = [ "/bin/sh", "-c", "i=0; while [ $i -lt 100 ]; '
                  'do echo complaint$i >&2; i=$((i+1)); done" ];')])
    # Nothing sent: the answer comes, then the connection closes.
    with h.connect(ports["early"]) as s:
        assert h.recv_all(s) == b"hello\n"
    daemon.wait_log(r"exec early: pid \d+: oops")
    daemon.wait_log(r"exec early: pid \d+ exited with 3")
    # stderr is logged a line at a time, up to a bound per connection.
    with h.connect(ports["noisy"]) as s:
        assert h.recv_all(s) == b""
    daemon.wait_log(r"exec noisy: pid \d+: 36 more lines of stderr not "
                    r"logged")
    text = daemon.text()
    assert re.search(r"exec noisy: pid \d+: complaint63\n", text), text
    assert "complaint64" not in text, text
    # The program stops reading while the client still sends a lot.
    with h.connect(ports["head"]) as s:
        t = sender(s, b"z" * (8 << 20))
        got = b""
        try:
            got = h.recv_all(s)
        except ConnectionResetError:
            pass
        assert got in (b"z" * 10, b""), got
        t.join(30)
    assert not t.is_alive()
    assert daemon.stop() == 0, daemon.text()


def test_back_pressure_keeps_rss_bounded():
    d = h.tmpdir()
    daemon, ports = start(d, [
        ("zero", 'command = [ "/usr/bin/head", "-c", "67108864", '
                 '"/dev/zero" ];'),
        ("late", 'command = [ "/bin/sh", "-c", "sleep 2; exec cat" ];')])
    base = daemon.rss_kib()

    # stdout -> client: the client reads nothing for a while.
    s = h.connect(ports["zero"], timeout=SLOW)
    time.sleep(2)
    peak = daemon.rss_kib()
    n = 0
    while True:
        data = s.recv(1 << 16)
        if not data:
            break
        assert data.count(0) == len(data)
        n += len(data)
    s.close()
    assert n == 64 << 20, n

    # client -> stdin: the program reads nothing for two seconds while
    # the client sends as fast as it can.
    payload = os.urandom(32 << 20)
    s = h.connect(ports["late"], timeout=SLOW)
    t = sender(s, payload)
    time.sleep(1.5)
    peak = max(peak, daemon.rss_kib())
    assert h.recv_all(s) == payload
    t.join()
    s.close()
    grown = peak - base
    print("rss: base %d KiB, peak %d KiB, grown %d KiB" % (base, peak, grown))
    assert grown < 16 * 1024, (base, peak)
    assert daemon.stop() == 0, daemon.text()


def test_client_leaving_stops_the_program():
    d = h.tmpdir()
    daemon, ports = start(d, [
        ("sleep", 'command = [ "/bin/sleep", "1000" ];'),
        ("stubborn", 'command = [ "/bin/sh", "-c", "trap \\"\\" TERM; '
                     'echo ready; while :; do sleep 0.1; done" ]; '
                     'kill_timeout = 0.5;')])
    s = h.connect(ports["sleep"])
    pid = started_pid(daemon, "sleep")
    reset(s)
    assert gone(pid), "sleep %d still runs" % pid
    daemon.wait_log(r"exec sleep: pid %d killed by signal 15" % pid)

    s = h.connect(ports["stubborn"])
    assert h.recv_exactly(s, 6) == b"ready\n"
    pid = started_pid(daemon, "stubborn")
    reset(s)
    daemon.wait_log(r"exec stubborn: pid %d ignored SIGTERM" % pid)
    assert gone(pid), "sh %d still runs" % pid
    daemon.wait_log(r"exec stubborn: pid %d killed by signal 9" % pid)
    # Its own child (the sleep) holds the pipes a little longer; stopping
    # aloopd before they close would leave the connection to the exit.
    daemon.wait_log(r"exec stubborn: pid %d: done" % pid)
    assert daemon.stop() == 0, daemon.text()


def test_leftover_process_holding_stdout():
    """The program exits, but a child it started in the background keeps
    stdout open: the connection still ends, kill_timeout after the exit."""
    d = h.tmpdir()
    daemon, ports = start(d, [
        ("bg", 'command = [ "/bin/sh", "-c", "sleep 60 & echo $!" ]; '
               'kill_timeout = 0.5;')])
    with h.connect(ports["bg"]) as s:
        s.settimeout(20)
        out = h.recv_all(s)
    orphan = int(out)
    try:
        daemon.wait_log(r"exec bg: pid \d+ exited, but a process it left "
                        r"behind holds its output open")
    finally:
        os.kill(orphan, signal.SIGKILL)
    assert daemon.stop() == 0, daemon.text()


def test_start_failures_logged_once_per_burst():
    """A program that cannot be started closes each client; the failure is
    logged once, and once more when it starts again."""
    d = h.tmpdir()
    daemon, ports = start(d, [
        ("late", 'command = [ "aloop-late-program" ]; env = [ "PATH=%s" ];'
                 % d)])
    for _ in range(3):
        with h.connect(ports["late"]) as s:
            s.settimeout(10)
            assert h.recv_all(s) == b""
    daemon.wait_log(r"exec late: cannot start aloop-late-program")
    prog = os.path.join(d, "aloop-late-program")
    with open(prog, "w") as f:
        f.write("#!/bin/sh\necho here now\n")
    os.chmod(prog, 0o755)
    with h.connect(ports["late"]) as s:
        assert h.recv_all(s) == b"here now\n"
    daemon.wait_log(r"exec late: aloop-late-program starts again, after 3 "
                    r"failures")
    text = daemon.text()
    assert len(re.findall(r"warning: exec late: cannot start", text)) == 1, \
        text
    assert daemon.stop() == 0, daemon.text()


def test_timeout():
    d = h.tmpdir()
    daemon, ports = start(d, [
        ("slow", 'command = [ "/bin/sleep", "1000" ]; timeout = 0.5;')])
    with h.connect(ports["slow"]) as s:
        s.settimeout(20)
        assert h.recv_all(s) == b""
    daemon.wait_log(r"exec slow: pid \d+ still runs after 0.5 s")
    assert daemon.stop() == 0, daemon.text()


def test_max_children():
    d = h.tmpdir()
    daemon, ports = start(d, [
        ("cat", 'command = [ "/bin/cat" ]; max_children = 2;')])
    held = [h.connect(ports["cat"]) for _ in range(2)]
    for i, s in enumerate(held):
        s.sendall(b"%d\n" % i)
        assert h.recv_exactly(s, 2) == b"%d\n" % i
    # A refused client is reset, so fast under load that connect() may
    # already see it.
    try:
        with h.connect(ports["cat"]) as s:
            s.settimeout(10)
            assert s.recv(10) == b""
    except ConnectionResetError:
        pass
    daemon.wait_log(r"exec cat: 2 programs run \(max_children\)")
    held[0].close()
    held[1].shutdown(socket.SHUT_WR)
    assert h.recv_all(held[1]) == b""
    held[1].close()
    daemon.wait_log(r"exec cat: accepting again")
    with h.connect(ports["cat"]) as s:
        s.sendall(b"again\n")
        assert h.recv_exactly(s, 6) == b"again\n"
    assert daemon.stop() == 0, daemon.text()


def test_env_cwd_user_and_peer():
    d = h.tmpdir()
    nobody = pwd.getpwnam("nobody")
    daemon, ports = start(d, [
        ("env", 'command = [ "/bin/sh", "-c", "echo $FOO; pwd" ]; '
                'env = [ "FOO=bar", "PATH=/usr/bin:/bin" ]; cwd = "%s";' % d),
        ("user", 'command = [ "/usr/bin/id", "-u" ]; user = "nobody";'),
        ("peer", 'command = [ "/bin/sh", "-c", "echo $PROTO $TCPREMOTEIP '
                 '$TCPREMOTEPORT $TCPLOCALIP $TCPLOCALPORT" ]; '
                 'env = [ "TCPREMOTEIP=spoofed", "PATH=/usr/bin:/bin" ];')])
    with h.connect(ports["env"]) as s:
        assert h.recv_all(s) == b"bar\n%s\n" % os.path.realpath(d).encode()
    # The connection's addresses, as UCSPI-TCP names them; a configured
    # variable of the same name does not win.
    with h.connect(ports["peer"]) as s:
        me = s.getsockname()
        assert h.recv_all(s) == b"TCP %s %d 127.0.0.1 %d\n" % (
            me[0].encode(), me[1], ports["peer"])
    with h.connect(ports["user"]) as s:
        out = h.recv_all(s)
    if os.getuid() == 0:
        assert out == b"%d\n" % nobody.pw_uid, out
    else:
        # Only root may change user: the start fails, and says why.
        assert out == b"", out
        daemon.wait_log(r"exec user: cannot start /usr/bin/id: .*"
                        r"(not permitted|denied)")
    assert daemon.stop() == 0, daemon.text()


def test_bad_settings_rejected():
    d = h.tmpdir()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [
        h.listener("a", "exec", h.free_port(), "tcp",
                   'settings = { env = [ "NOEQUALS" ]; '
                   'user = "no-such-user-aloop"; max_children = 0; };'),
        h.listener("b", "exec", h.free_port(), "tcp",
                   'settings = { command = [ "/no/such/program" ]; '
                   'timeout = -1.0; colour = "red"; };')])
    r = subprocess.run([h.ALOOPD, "-t", "-c", cfg], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0, r
    for what in ("command is required", "NOEQUALS", "no-such-user-aloop",
                 "max_children", "/no/such/program", "timeout", "colour"):
        assert what in r.stderr, (what, r.stderr)


TESTS = [test_cat_echoes, test_program_exits_early,
         test_back_pressure_keeps_rss_bounded,
         test_client_leaving_stops_the_program,
         test_leftover_process_holding_stdout,
         test_start_failures_logged_once_per_burst, test_timeout,
         test_max_children, test_env_cwd_user_and_peer,
         test_bad_settings_rejected]
# Names on the command line run only those tests.
h.run([t for t in TESTS if len(sys.argv) < 2 or t.__name__ in sys.argv[1:]])
