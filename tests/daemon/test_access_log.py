#!/usr/bin/env python3
"""The access log on the real aloopd: one line per connection with exact
byte counts and the right reason for each way a connection ends (peer
EOF, reset, idle timeout, closed by the plugin, shutdown, refused), TLS
version, SNI and ALPN, key=value to a file reopened on SIGUSR1, and JSON
to stderr."""

import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aloopd_harness as h  # noqa: E402


def kv(line):
    """A key=value line as a dict; quoted values unescaped."""
    out = {}
    for m in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line):
        v = m.group(2)
        if v.startswith('"'):
            v = re.sub(r'\\x([0-9a-f]{2})', lambda x: chr(int(x.group(1), 16)),
                       v[1:-1]).replace('\\"', '"').replace("\\\\", "\\")
        out[m.group(1)] = v
    return out


def lines_of(path, n, timeout=10):
    """The first @n lines of @path, waiting for them."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path) as f:
                got = f.read().splitlines()
        except FileNotFoundError:
            got = []
        if len(got) >= n:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("%d lines, not %d, in %s:\n%s"
                                 % (len(got), n, path, "\n".join(got)))
        time.sleep(0.05)


def by_client(lines):
    return {kv(line)["client"]: kv(line) for line in lines}


def name(s):
    return "%s:%d" % s.getsockname()


def test_reasons_and_bytes():
    d = h.tmpdir()
    h.make_cert(d)
    log = os.path.join(d, "access.log")
    ports = {k: h.free_port() for k in ("echo", "idle", "daytime", "deny",
                                        "tls")}
    cfg, daemon = h.start([
        h.listener("echo", "echo", ports["echo"]),
        h.listener("idle", "echo", ports["idle"], extra="idle_timeout = 1;"),
        h.listener("daytime", "daytime", ports["daytime"]),
        h.listener("deny", "echo", ports["deny"],
                   extra='deny = [ "127.0.0.2" ];'),
        h.listener("tls", "echo", ports["tls"], extra=(
            'tls = { certificate = "%s/cert.pem"; key = "%s/key.pem"; '
            'alpn = [ "echo" ]; };' % (d, d))),
    ], 'access_log = "%s"; shutdown_timeout = 1;' % log, workers=2)
    expect = {}

    # The peer ends it: 1000 bytes each way, then EOF.
    s = h.connect(ports["echo"])
    s.sendall(b"e" * 1000)
    assert h.recv_exactly(s, 1000) == b"e" * 1000
    s.shutdown(socket.SHUT_WR)
    assert h.recv_all(s) == b""
    expect[name(s)] = ("echo", "eof", 1000, 1000)
    s.close()

    # The peer resets it.
    s = h.connect(ports["echo"])
    s.sendall(b"r" * 10)
    assert h.recv_exactly(s, 10) == b"r" * 10
    expect[name(s)] = ("echo", "reset", 10, 10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()

    # The daemon's idle timeout.
    s = h.connect(ports["idle"])
    s.sendall(b"i")
    assert h.recv_exactly(s, 1) == b"i"
    expect[name(s)] = ("idle", "idle_timeout", 1, 1)
    assert h.recv_all(s) == b""
    s.close()

    # The plugin closes it: daytime answers and hangs up.
    s = h.connect(ports["daytime"])
    answer = h.recv_all(s)
    expect[name(s)] = ("daytime", "closed", 0, len(answer))
    s.close()

    # Refused by deny, before any plugin.
    r = socket.socket()
    r.bind(("127.0.0.2", 0))
    r.settimeout(10)
    try:
        r.connect(("127.0.0.1", ports["deny"]))
        r.recv(1)
    except ConnectionResetError:
        pass
    expect[name(r)] = ("deny", "refused", None, None)
    r.close()

    # TLS: version, SNI and ALPN.
    ctx = ssl.create_default_context(cafile=os.path.join(d, "cert.pem"))
    ctx.set_alpn_protocols(["echo"])
    t = ctx.wrap_socket(h.connect(ports["tls"]), server_hostname="localhost")
    t.sendall(b"tls!")
    assert h.recv_exactly(t, 4) == b"tls!"
    tls_name = name(t)
    expect[tls_name] = ("tls", "eof", 4, 4)
    t.close()

    # Still open at the stop: the drain deadline ends it.
    held = h.connect(ports["echo"])
    held.sendall(b"h" * 3)
    assert h.recv_exactly(held, 3) == b"hhh"
    expect[name(held)] = ("echo", "shutdown", 3, 3)
    lines_of(log, len(expect) - 1)
    assert daemon.stop() == 0, daemon.text()
    held.close()

    got = by_client(lines_of(log, len(expect)))
    for client, (listener, end, bin_, bout) in expect.items():
        e = got.get(client)
        assert e is not None, (client, got)
        assert e["listener"] == listener, e
        assert e["end"] == end, (end, e)
        assert e["local"].startswith("127.0.0.1:"), e
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$",
                        e["time"]), e
        assert e["worker"] in ("0", "1"), e
        if end == "refused":
            assert e["refused"] == "access", e
            assert "bytes_in" not in e, e
        else:
            assert int(e["bytes_in"]) == bin_, (bin_, e)
            assert int(e["bytes_out"]) == bout, (bout, e)
            assert float(e["duration"]) >= 0, e
    assert got[tls_name]["tls"] == "TLSv1.3", got[tls_name]
    assert got[tls_name]["sni"] == "localhost", got[tls_name]
    assert got[tls_name]["alpn"] == "echo", got[tls_name]


def test_json_to_stderr_and_reopen():
    d = h.tmpdir()
    port, quiet = h.free_port(), h.free_port()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [h.listener("echo", "echo", port),
                         h.listener("quiet", "echo", quiet,
                                    extra="access_log = false;")],
                   'access_log = "stderr"; access_log_format = "json";')
    daemon = h.Daemon(cfg)
    daemon.wait_ready()
    for p in (quiet, port):
        s = h.connect(p)
        s.sendall(b'say "hi"\n')
        assert h.recv_exactly(s, 9) == b'say "hi"\n'
        s.close()
    m = daemon.wait_log(r'(?m)^\{"time":.*\}$')
    e = json.loads(m.group(0))
    assert e["listener"] == "echo" and e["end"] == "eof", e
    assert e["bytes_in"] == 9 and e["bytes_out"] == 9, e
    assert e["worker"] == 0, e
    assert '"listener":"quiet"' not in daemon.text()
    assert daemon.stop() == 0, daemon.text()

    # A file target reopened on SIGUSR1, as logrotate does.
    log = os.path.join(d, "access.log")
    h.write_config(cfg, [h.listener("echo", "echo", port)],
                   'access_log = "%s";' % log)
    daemon = h.Daemon(cfg)
    daemon.wait_ready()
    s = h.connect(port)
    s.close()
    lines_of(log, 1)
    os.rename(log, log + ".1")
    daemon.signal(signal.SIGUSR1)
    daemon.wait_log(r"access_log .* reopened")
    s = h.connect(port)
    s.close()
    assert len(lines_of(log, 1)) == 1
    assert len(lines_of(log + ".1", 1)) == 1
    assert daemon.stop() == 0, daemon.text()


def test_bad_target_is_a_config_error():
    d = h.tmpdir()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [h.listener("echo", "echo", h.free_port())],
                   'access_log = "/nonexistent/dir/access.log";')
    r = subprocess.run([h.ALOOPD, "-t", "-c", cfg], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 1, r
    assert re.search(r"aloop\.conf:\d+: daemon\.access_log .*cannot open "
                     r"/nonexistent/dir/access\.log: No such file", r.stderr), \
        r.stderr


if __name__ == "__main__":
    h.run([test_reasons_and_bytes, test_json_to_stderr_and_reopen,
           test_bad_target_is_a_config_error])
