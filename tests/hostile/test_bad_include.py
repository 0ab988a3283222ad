#!/usr/bin/env python3
"""aloop.conf @including what is no configuration file: a directory once
made libconfig exit(2), so a SIGHUP killed aloopd; a FIFO blocked the
master for good, so that even SIGTERM was ignored.  Each must now fail the
reload (or the start) with the file and line, leave the running daemon
serving, and let SIGTERM stop it promptly."""
import os
import re
import signal
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean (distcheck)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "daemon"))
import aloopd_harness as h  # noqa: E402

# SIGTERM with nothing to drain: a healthy daemon is gone well within this.
STOP_BOUND = 10


def echo_works(port, payload):
    with h.connect(port, timeout=5) as s:
        s.sendall(payload)
        assert h.recv_exactly(s, len(payload)) == payload


def bad_reload(make, what):
    port = h.free_port()
    cfg, daemon = h.start([h.listener("echo", "echo", port)])
    client = h.connect(port, timeout=5)
    d = os.path.dirname(cfg)
    make(os.path.join(d, "bad"))
    with open(cfg) as f:
        lines = f.read().count("\n")
    with open(cfg, "a") as f:
        f.write('@include "bad"\n')
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"reload failed")
    # The message names the file and the line of the @include.
    want = r'%s:%d: @include "bad": not a regular file \(%s\)' % (
        re.escape(cfg), lines + 1, what)
    assert re.search(want, daemon.text()), daemon.text()
    assert daemon.proc.poll() is None, daemon.text()
    # The running generation still serves, old clients and new.
    client.sendall(b"still")
    assert h.recv_exactly(client, 5) == b"still"
    echo_works(port, b"new client")
    client.close()
    # And a second SIGHUP is handled as the first: the master is not stuck.
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"(?s)(reload failed.*){2}")
    echo_works(port, b"again")
    began = time.monotonic()
    daemon.signal(signal.SIGTERM)
    status = daemon.wait_exit(timeout=STOP_BOUND)
    took = time.monotonic() - began
    assert status == 0, (status, daemon.text())
    print("# stopped %.2f s after SIGTERM" % took)


def test_reload_with_directory_include():
    bad_reload(os.mkdir, "a directory")


def test_reload_with_fifo_include():
    # Nobody ever writes to it: a blocking open or read would hang.
    bad_reload(os.mkfifo, "a FIFO")


def test_start_with_fifo_include():
    d = h.tmpdir()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [h.listener("echo", "echo", h.free_port())])
    os.mkfifo(os.path.join(d, "fifo"))
    with open(cfg, "a") as f:
        f.write('@include "fifo"\n')
    daemon = h.Daemon(cfg)
    status = daemon.wait_exit(timeout=STOP_BOUND)
    assert status == 1, (status, daemon.text())
    assert '@include "fifo": not a regular file (a FIFO)' in daemon.text(), \
        daemon.text()


h.run([test_reload_with_directory_include, test_reload_with_fifo_include,
       test_start_with_fifo_include])
