#!/usr/bin/env python3
"""aloopd's master and worker processes, run for real on loopback: a
plugin that crashes (a fault in connection_made, abort() in
data_received), hangs (a loop in data_received) or crashes as it loads
costs one worker or one check, never the daemon; a reload loads rebuilt
plugin code; reloads and a binary upgrade under load refuse nobody; the
counters of a dead worker stay counted; a killed master leaves no worker
behind."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aloopd_harness as h  # noqa: E402

# The whole file runs more daemons than most: give it room, still bounded.
signal.alarm(int(os.environ.get("TEST_TIMEOUT", "400")))

MISBEHAVE = os.path.join(h.FIXTURES, "plugin_misbehave.so")
CRASH_CTOR = os.path.join(h.FIXTURES, "plugin_crash_ctor.so")
# A crash under AddressSanitizer is its report and exit status 1.
DIED = r"(?:killed by SIG[A-Z]+(?: \(core dumped\))?|exited with status \d+)"


def start(listeners, daemon_extra="", workers=2):
    """Two workers unless said: most cases need one to die and one to go on."""
    return h.start(listeners, daemon_extra, workers)


def who(s):
    s.sendall(b"who\n")
    line = b""
    while not line.endswith(b"\n"):
        chunk = s.recv(64)
        assert chunk, "closed while asking who serves it"
        line += chunk
    return int(line.split()[1])


def spread(port, per_worker=2, workers=2, tries=200):
    """Clients of @port grouped by the worker process serving them, until
    each of @workers has @per_worker."""
    by_pid = {}
    for _ in range(tries):
        s = h.connect(port)
        by_pid.setdefault(who(s), []).append(s)
        if len(by_pid) == workers and \
                all(len(v) >= per_worker for v in by_pid.values()):
            return by_pid
    raise AssertionError("connections did not reach %d workers: %r"
                         % (workers, {k: len(v) for k, v in by_pid.items()}))


def echoes(s, size=65536):
    payload = os.urandom(size)
    s.sendall(payload)
    return h.recv_exactly(s, size) == payload


def is_gone(s):
    try:
        s.settimeout(5)
        s.sendall(b"x")
        return s.recv(16) == b""
    except OSError:
        return True


def replacement_ms(daemon, after=0):
    """The time the master took to have a new worker serving."""
    m = daemon.wait_log(r"(?s)^.{%d}.*worker \d+ \(pid \d+\) serves, (\d+) "
                        r"ms after its predecessor died" % after)
    return int(m.group(1))


def stop_within(daemon, bound):
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    status = daemon.wait_exit(bound + 10)
    took = time.monotonic() - started
    assert status == 0, daemon.text()
    assert took <= bound, "SIGTERM took %.1f s (bound %.1f)" % (took, bound)
    return took


def crash_case(fault, settings_bad=False, callback="data_received",
               extra=""):
    """One worker dies of @fault; the other's clients never notice."""
    port = h.free_port()
    listeners = [h.listener("mis", MISBEHAVE, port)]
    bad = None
    if settings_bad:
        bad = h.free_port()
        listeners.append(h.listener("bad", MISBEHAVE, bad,
                                    extra="settings = { crash_in_made "
                                          "= true; };"))
    cfg, daemon = start(listeners, "shutdown_timeout = 2;" + extra)
    by_pid = spread(port)
    if settings_bad:
        trigger = h.connect(bad)
    else:
        victim_pid = sorted(by_pid)[0]
        trigger = h.connect(port)
        while who(trigger) != victim_pid:
            trigger.close()
            trigger = h.connect(port)
        trigger.sendall(fault)
    m = daemon.wait_log(r"worker \d+ \(pid (\d+)\) (%s|was killed for "
                        r"stalling) in listener \"(mis|bad)\", plugin \S+ "
                        r"\(%s\), callback %s; starting a new one"
                        % (DIED, re.escape(MISBEHAVE), callback))
    dead = int(m.group(1))
    assert dead in by_pid, (dead, list(by_pid))
    ms = replacement_ms(daemon)
    print("  %s: a new worker served %d ms after the crash" %
          (fault.strip().decode() or "connection_made", ms))
    assert ms <= 1000, ms
    # Byte-exact for the survivors, gone for the dead worker's clients.
    for pid, socks in by_pid.items():
        for s in socks:
            if pid == dead:
                assert is_gone(s), "a dead worker's client still answers"
            else:
                assert echoes(s), "a surviving client lost data"
    # New clients reach both workers again, the replacement included.
    fresh = spread(port)
    assert dead not in fresh, fresh
    trigger.close()
    # SIGTERM ends it all within shutdown_timeout + 2 s, clients or not.
    took = stop_within(daemon, 2 + 2)
    print("  SIGTERM with %d clients open: %.2f s" %
          (sum(len(v) for v in fresh.values()), took))
    return daemon


def test_segv_in_connection_made():
    crash_case(b"", settings_bad=True, callback="connection_made")


def test_abort_in_data_received():
    daemon = crash_case(b"abort\n")
    assert "killed by SIGABRT" in daemon.text(), daemon.text()


def test_hang_in_data_received():
    daemon = crash_case(b"hang\n", extra="worker_stall_timeout = 1;")
    assert re.search(r"worker \d+ \(pid \d+\) stalled for [0-9.]+ s in "
                     r"listener \"mis\", plugin \S+ \(\S+\), callback "
                     r"data_received; killing it", daemon.text()), \
        daemon.text()


def test_hang_cannot_hold_sigterm():
    """With the stall check off, SIGTERM still ends a stuck worker."""
    port = h.free_port()
    cfg, daemon = start([h.listener("mis", MISBEHAVE, port)],
                        "shutdown_timeout = 1; worker_stall_timeout = 0;",
                        workers=1)
    s = h.connect(port)
    s.sendall(b"hang\n")
    time.sleep(0.3)
    took = stop_within(daemon, 1 + 2)
    print("  SIGTERM with a worker in an endless loop: %.2f s" % took)
    assert "did not finish; killing it" in daemon.text(), daemon.text()
    s.close()


def test_constructor_crash():
    port, other = h.free_port(), h.free_port()
    d = h.tmpdir()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [h.listener("echo", "echo", port),
                         h.listener("boom", CRASH_CTOR, other)])
    # aloopd -t survives it and names it.
    r = subprocess.run([h.ALOOPD, "-t", "-c", cfg], capture_output=True,
                       timeout=60, text=True)
    assert r.returncode == 1, r
    assert re.search(r'aloop.conf:\d+: listener "boom": plugin "%s" \(%s\) '
                     r'crashed in its constructor: (SIGSEGV|exit status \d+)'
                     % (re.escape(CRASH_CTOR), re.escape(CRASH_CTOR)),
                     r.stderr), r.stderr
    # A running aloopd survives a reload to it and keeps serving.
    h.write_config(cfg, [h.listener("echo", "echo", port)])
    daemon = h.Daemon(cfg)
    daemon.wait_ready()
    c = h.connect(port)
    assert echoes(c, 100)
    h.write_config(cfg, [h.listener("echo", "echo", port),
                         h.listener("boom", CRASH_CTOR, other)])
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"reload failed")
    assert "crashed in its constructor" in daemon.text(), daemon.text()
    assert echoes(c, 100)
    with h.connect(port) as s:
        assert echoes(s, 100)
    c.close()
    assert daemon.stop() == 0, daemon.text()


def build_reply_plugin(path, reply):
    """The misbehave fixture built with a reply on connect, as a plugin
    author rebuilds a plugin: to a new file, renamed over the old one."""
    cc = os.environ.get("CC", "cc")
    tmp = path + ".new"
    subprocess.run([cc, "-shared", "-fPIC", "-o", tmp,
                    "-I" + os.path.join(h.TOP_SRCDIR, "include"),
                    "-I" + os.path.join(h.TOP_BUILDDIR, "include"),
                    '-DMISBEHAVE_REPLY="%s"' % reply,
                    os.path.join(h.TOP_SRCDIR, "tests", "fixtures",
                                 "plugin_misbehave.c")],
                   check=True, timeout=120)
    os.rename(tmp, path)


def test_reload_loads_rebuilt_plugin():
    d = h.tmpdir()
    so = os.path.join(d, "reply.so")
    build_reply_plugin(so, "one")
    port = h.free_port()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [h.listener("reply", so, port)], workers=1)
    daemon = h.Daemon(cfg)
    daemon.wait_ready()
    old = h.connect(port)
    assert h.recv_exactly(old, 4) == b"one\n"
    old_pid = who(old)
    build_reply_plugin(so, "two")
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"reloaded .*: 1 listener")
    with h.connect(port) as s:
        assert h.recv_exactly(s, 4) == b"two\n"
        assert who(s) != old_pid
    # The connection from before goes on with the old code, to its end.
    assert echoes(old, 1000)
    assert who(old) == old_pid
    old.close()
    assert daemon.stop() == 0, daemon.text()


class Load:
    """Connections at a steady rate, each a request and its answer."""

    def __init__(self, port, rate=320, threads=2):
        self.port = port
        self.period = threads / float(rate)
        self.ok = 0
        self.failed = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,))
                        for i in range(threads)]
        self.started = time.monotonic()
        for t in self.threads:
            t.start()

    def run(self, i):
        n = 0
        next_at = time.monotonic()
        while not self.stop.is_set():
            msg = b"request %d.%d\n" % (i, n)
            n += 1
            try:
                with socket.create_connection(("127.0.0.1", self.port),
                                              timeout=10) as s:
                    s.sendall(msg)
                    got = h.recv_exactly(s, len(msg))
                if got != msg:
                    raise AssertionError("answer %r to %r" % (got, msg))
                with self.lock:
                    self.ok += 1
            except Exception as e:  # counted: the test asserts on them
                with self.lock:
                    self.failed.append(repr(e))
            next_at += self.period
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)
        return time.monotonic() - self.started


def wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().split(") ")[1].startswith("Z"):
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def read_pid(path):
    with open(path) as f:
        return int(f.read())


def test_no_refusal_across_reloads_and_upgrade():
    port = h.free_port()
    pidfile = os.path.join(h.tmpdir(), "aloopd.pid")
    cfg, daemon = start([h.listener("echo", "echo", port)],
                        'shutdown_timeout = 5; pidfile = "%s";' % pidfile)
    assert read_pid(pidfile) == daemon.pid
    load = Load(port)
    time.sleep(1)
    for n in range(5):
        daemon.signal(signal.SIGHUP)
        daemon.wait_log(r"(?s)(reloaded .*){%d}" % (n + 1))
        time.sleep(0.4)
    daemon.signal(signal.SIGUSR2)
    m = daemon.wait_log(r"binary upgrade: started \S+ as pid (\d+)")
    heir = int(m.group(1))
    h.track_pid(heir)
    daemon.wait_log(r"binary upgrade: pid %d took over" % heir)
    time.sleep(1)
    took = load.finish()
    rate = (load.ok + len(load.failed)) / took
    print("  %d connections in %.1f s (%.0f/s), %d failed, across 5 "
          "reloads and a binary upgrade" % (load.ok + len(load.failed),
                                             took, rate, len(load.failed)))
    assert not load.failed, load.failed[:5]
    assert rate >= 300, rate
    # The old master finishes and goes; the new one serves on, with the
    # pidfile and its lock.
    assert daemon.wait_exit(20) == 0, daemon.text()
    with h.connect(port) as s:
        assert echoes(s, 100)
    assert read_pid(pidfile) == heir
    second = subprocess.run([h.ALOOPD, "-f", "-c", cfg], capture_output=True,
                            text=True, timeout=20)
    assert second.returncode == 1, second.stderr
    assert "already running as pid %d" % heir in second.stderr
    os.kill(heir, signal.SIGTERM)
    assert wait_gone(heir, 10), daemon.text()
    assert not os.path.exists(pidfile)


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                timeout=10) as r:
        return r.read().decode()


def sample(text, name, **labels):
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    total = 0
    found = False
    for line in text.splitlines():
        m = re.match(r"^%s\{([^}]*)\} (\S+)$" % name, line)
        if not m:
            continue
        have = ",".join(sorted(m.group(1).split(",")))
        if all(part in have.split(",") for part in want.split(",") if part):
            total += float(m.group(2))
            found = True
    assert found, (name, labels, text)
    return total


def test_metrics_keep_a_dead_workers_counts():
    port, mport = h.free_port(), h.free_port()
    cfg, daemon = start([h.listener("mis", MISBEHAVE, port),
                         h.listener("metrics", "metrics", mport)], workers=1)
    for _ in range(3):
        with h.connect(port) as s:
            who(s)
    victim = h.connect(port)
    victim.sendall(b"segv\n")
    daemon.wait_log(r"callback data_received; starting a new one")
    replacement_ms(daemon)
    text = scrape(mport)
    assert sample(text, "aloop_connections_accepted_total",
                  listener="mis") == 4, text
    assert sample(text, "aloop_connections_closed_total",
                  listener="mis") == 4, text
    assert sample(text, "aloop_connections_active", listener="mis") == 0
    assert sample(text, "aloop_worker_restarts_total", reason="signal") + \
        sample(text, "aloop_worker_restarts_total", reason="exit") == 1, text
    victim.close()
    assert daemon.stop() == 0, daemon.text()


def test_crash_loop_backs_off():
    port, bad = h.free_port(), h.free_port()
    cfg, daemon = start([h.listener("bad", MISBEHAVE, bad,
                                    extra="settings = { crash_in_made = "
                                          "true; };")], workers=1)
    for n in range(5):
        c = h.connect(bad)
        daemon.wait_log(r"(?s)(callback connection_made; starting a new "
                        r"one.*){%d}" % (n + 1))
        c.close()
        if n < 4:
            replacement_ms(daemon, 0)
    daemon.wait_log(r"worker 0 died 5 times in 10 s: starting it again in "
                    r"1 s")
    assert daemon.stop() == 0, daemon.text()


def test_accepts_spread_evenly():
    """One SO_REUSEPORT socket per worker: the kernel spreads new
    connections evenly, whichever worker is idle or busy."""
    port = h.free_port()
    cfg, daemon = start([h.listener("mis", MISBEHAVE, port)], workers=4)
    counts = {}
    for _ in range(400):
        with h.connect(port) as s:
            pid = who(s)
        counts[pid] = counts.get(pid, 0) + 1
    print("  400 connections over 4 workers: %s" % sorted(counts.values()))
    assert len(counts) == 4, counts
    # Hashing 400 source ports: each worker near 100, never starved.
    assert min(counts.values()) >= 50, counts
    assert daemon.stop() == 0, daemon.text()


def test_errors_name_listener_and_plugin():
    """What the loop reports while a plugin's callback runs says whose."""
    port = h.free_port()
    cfg, daemon = start([h.listener("mis", MISBEHAVE, port)], workers=1)
    with h.connect(port) as s:
        s.sendall(b"lost\n")
        assert h.recv_exactly(s, 3) == b"ok\n"
    daemon.wait_log(r"Future exception was never retrieved.*; listener: mis; "
                    r"plugin: %s" % re.escape(MISBEHAVE))
    assert daemon.stop() == 0, daemon.text()


def test_killed_master_takes_workers_along():
    port = h.free_port()
    cfg, daemon = start([h.listener("echo", "echo", port)])
    workers = daemon.workers()
    assert len(workers) == 2, workers
    daemon.proc.kill()
    daemon.proc.wait()
    for pid in workers:
        assert wait_gone(pid, 5), "worker %d outlived its master" % pid
    try:
        h.connect(port, timeout=2).close()
        raise AssertionError("the port still accepts")
    except OSError:
        pass


def test_check_and_start_agree_on_tls():
    """A cipher list the library refuses fails -t and a start alike."""
    d = h.tmpdir()
    subprocess.run([os.path.join(h.TOP_SRCDIR, "script", "make-dev-cert"),
                    os.path.join(d, "certs")], check=True, timeout=60,
                   capture_output=True)
    port = h.free_port()
    cfg = os.path.join(d, "aloop.conf")
    tls = ('tls = { certificate = "certs/server.crt"; '
           'key = "certs/server.key"; ciphers = "AES128-SHA"; };')
    h.write_config(cfg, [h.listener("tls", "echo", port, extra=tls)])
    r = subprocess.run([h.ALOOPD, "-t", "-c", cfg], capture_output=True,
                       timeout=60, text=True)
    assert r.returncode == 1, r
    line = ('tls.ciphers "AES128-SHA": no AEAD cipher for TLS 1.2 in '
            'the list')
    assert line in r.stderr, r.stderr
    daemon = h.Daemon(cfg)
    assert daemon.wait_exit() == 1, daemon.text()
    assert line in daemon.text(), daemon.text()


if __name__ == "__main__":
    h.run([test_segv_in_connection_made, test_abort_in_data_received,
           test_hang_in_data_received, test_hang_cannot_hold_sigterm,
           test_constructor_crash, test_reload_loads_rebuilt_plugin,
           test_no_refusal_across_reloads_and_upgrade,
           test_metrics_keep_a_dead_workers_counts, test_crash_loop_backs_off,
           test_accepts_spread_evenly, test_errors_name_listener_and_plugin,
           test_killed_master_takes_workers_along,
           test_check_and_start_agree_on_tls])
