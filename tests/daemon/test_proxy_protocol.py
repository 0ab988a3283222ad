#!/usr/bin/env python3
"""proxy_protocol on aloopd's listeners, behind a real HAProxy run as this
test's own process on loopback: the client's address (127.0.0.2, not
HAProxy's 127.0.0.1) reaches the exec plugin's environment and the access
log through v2 (send-proxy-v2) and v1 (send-proxy); the header never reaches the plugin
as payload; malformed, absent and late headers are reset and counted in
/metrics; a listener without proxy_protocol treats a v2 header as the
payload it is and believes nothing of it, as the spec requires."""
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request

import aloopd_harness as h

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
CLIENT_ADDR = "127.0.0.2"

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
# PROXY TCP4 10.9.8.7:1111 -> 10.0.0.1:80, no TLVs.
V2_SPOOF = (V2_SIG + b"\x21\x11\x00\x0c" + bytes([10, 9, 8, 7, 10, 0, 0, 1])
            + (1111).to_bytes(2, "big") + (80).to_bytes(2, "big"))

ENV_CMD = ('command = [ "/bin/sh", "-c", "echo $PROTO $TCPREMOTEIP '
           '$TCPREMOTEPORT $TCPLOCALIP $TCPLOCALPORT" ]; '
           'env = [ "PATH=/usr/bin:/bin" ];')


def start():
    ports = {n: h.free_port() for n in
             ("pp_exec", "pp_echo", "plain_echo", "plain_exec", "metrics")}
    listeners = [
        h.listener("pp_exec", "exec", ports["pp_exec"], "tcp",
                   "proxy_protocol = true; settings = { %s };" % ENV_CMD),
        h.listener("pp_echo", "echo", ports["pp_echo"], "tcp",
                   "proxy_protocol = true; proxy_protocol_timeout = 1;"),
        h.listener("plain_echo", "echo", ports["plain_echo"]),
        h.listener("plain_exec", "exec", ports["plain_exec"], "tcp",
                   "settings = { %s };" % ENV_CMD),
        h.listener("metrics", "metrics", ports["metrics"]),
    ]
    d = h.tmpdir()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, listeners, daemon_extra='shutdown_timeout = 5; '
                   'access_log = "%s";' % os.path.join(d, "access.log"))
    daemon = h.Daemon(cfg)
    daemon.wait_ready()
    return d, daemon, ports


def start_haproxy(d, backend_port):
    """HAProxy in the foreground, ours alone: one frontend sending v2 and
    one sending v1 to @backend_port.  Returns (process, v2 port, v1 port)."""
    v2, v1 = h.free_port(), h.free_port()
    cfg = os.path.join(d, "haproxy.cfg")
    with open(cfg, "w") as f:
        f.write("""global
	maxconn 100
defaults
	mode tcp
	timeout connect 5s
	timeout client 30s
	timeout server 30s
frontend fe_v2
	bind 127.0.0.1:%d
	default_backend be_v2
frontend fe_v1
	bind 127.0.0.1:%d
	default_backend be_v1
backend be_v2
	server s1 127.0.0.1:%d send-proxy-v2
backend be_v1
	server s1 127.0.0.1:%d send-proxy
""" % (v2, v1, backend_port, backend_port))
    log = open(os.path.join(d, "haproxy.log"), "w")
    p = subprocess.Popen([HAPROXY, "-db", "-f", cfg], stdout=log,
                         stderr=subprocess.STDOUT)
    h._children.append(p)  # killed by PID at the end, whatever happens
    deadline = time.monotonic() + 10
    for port in (v2, v1):
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                assert p.poll() is None, open(log.name).read()
                assert time.monotonic() < deadline, "haproxy never listened"
                time.sleep(0.05)
    return p, v2, v1


def connect_from(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.bind((addr, 0))
    s.connect(("127.0.0.1", port))
    return s


def stop_haproxy(p):
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def refused_proxy(port):
    url = "http://127.0.0.1:%d/metrics" % port
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    total = 0
    for m in re.finditer(r'^aloop_connections_refused_total\{([^}]*)\} '
                         r'(\S+)$', text, re.M):
        if ('listener="pp_echo"' in m.group(1) and
                'reason="proxy_protocol"' in m.group(1)):
            total += float(m.group(2))
    return total


def wait_refused(port, n, timeout=10):
    deadline = time.monotonic() + timeout
    while refused_proxy(port) < n:
        assert time.monotonic() < deadline, "refused never reached %d" % n
        time.sleep(0.05)


def was_reset(s, timeout=5):
    """Whether the daemon reset @s (nothing but an RST comes back)."""
    s.settimeout(timeout)
    try:
        data = s.recv(100)
    except ConnectionResetError:
        return True
    assert not data, data
    return False


def test_behind_haproxy():
    d, daemon, ports = start()
    hp, v2, v1 = start_haproxy(d, ports["pp_exec"])
    clients = []
    try:
        for port in (v2, v1):
            with connect_from(CLIENT_ADDR, port) as s:
                me = s.getsockname()
                out = h.recv_all(s)
            clients.append("%s:%d" % me)
            # The client's address and port, and the address it
            # connected to (HAProxy's frontend), not HAProxy's own.
            want = b"TCP %s %d 127.0.0.1 %d\n" % (
                CLIENT_ADDR.encode(), me[1], port)
            assert out == want, (port, out, want)
    finally:
        stop_haproxy(hp)
    # The access log names the client too, never HAProxy.
    log = os.path.join(d, "access.log")
    deadline = time.monotonic() + 10
    while True:
        with open(log) as f:
            text = f.read()
        if all("client=%s " % c in text for c in clients):
            break
        assert time.monotonic() < deadline, (clients, text)
        time.sleep(0.05)
    assert re.search(r"listener=pp_exec .*client=%s:%d " % (
        re.escape(CLIENT_ADDR), int(clients[0].split(":")[1])), text), text
    # Straight to the echo: a v1 header and payload in one write; only
    # the payload comes back.
    with connect_from(CLIENT_ADDR, ports["pp_echo"]) as s:
        s.sendall(b"PROXY TCP4 192.0.2.1 192.0.2.2 1000 2000\r\nping")
        assert h.recv_exactly(s, 4) == b"ping"
    assert daemon.stop() == 0, daemon.text()


def test_bad_headers_reset_and_counted():
    _, daemon, ports = start()
    base = refused_proxy(ports["metrics"])
    # Malformed: reset at once, the plugin never hears of it.
    with h.connect(ports["pp_echo"]) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert was_reset(s)
    wait_refused(ports["metrics"], base + 1)
    # Absent: silence until proxy_protocol_timeout (1 s), then a reset.
    t0 = time.monotonic()
    with h.connect(ports["pp_echo"]) as s:
        assert was_reset(s, timeout=10)
    waited = time.monotonic() - t0
    assert 0.8 <= waited < 5, waited
    wait_refused(ports["metrics"], base + 2)
    # A CRC32C that does not match: malformed too.
    bad = bytearray(V2_SIG + b"\x21\x11\x00\x13" + bytes(12) +
                    b"\x03\x00\x04\x01\x02\x03\x04")
    with h.connect(ports["pp_echo"]) as s:
        s.sendall(bytes(bad) + b"data")
        assert was_reset(s)
    wait_refused(ports["metrics"], base + 3)
    daemon.wait_log(r"listener pp_echo: worker \d+: \d+ connections? reset "
                    r"on accept.*proxy_protocol")
    assert daemon.stop() == 0, daemon.text()


def test_no_guessing_without_the_setting():
    _, daemon, ports = start()
    # The spec forbids guessing whether a header comes: without
    # proxy_protocol a v2 header is payload, delivered as it came...
    with h.connect(ports["plain_echo"]) as s:
        s.sendall(V2_SPOOF + b"tail")
        assert h.recv_exactly(s, len(V2_SPOOF) + 4) == V2_SPOOF + b"tail"
    # ...and nothing in it is believed: exec sees the socket's peer.
    with connect_from(CLIENT_ADDR, ports["plain_exec"]) as s:
        s.sendall(V2_SPOOF)
        me = s.getsockname()
        out = h.recv_all(s)
    assert out == b"TCP %s %d 127.0.0.1 %d\n" % (
        CLIENT_ADDR.encode(), me[1], ports["plain_exec"]), out
    assert daemon.stop() == 0, daemon.text()


def test_config_check():
    d = h.tmpdir()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [
        h.listener("a", "echo", h.free_port(), "tcp",
                   "proxy_protocol_timeout = 3;"),
        h.listener("b", "echo", h.free_port(), "udp",
                   "proxy_protocol = true;"),
        h.listener("c", "echo", h.free_port(), "tcp",
                   "proxy_protocol = true; proxy_protocol_timeout = 0;"),
    ])
    r = subprocess.run([h.ALOOPD, "-t", "-c", cfg], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode != 0, r
    err = r.stderr
    assert re.search(r'proxy_protocol_timeout.*only with proxy_protocol',
                     err), err
    assert re.search(r'proxy_protocol.*only for type "tcp"', err), err
    assert re.search(r'listeners\[2\]\.proxy_protocol_timeout "0": out of '
                     r'range', err), err


if __name__ == "__main__":
    if not os.access(HAPROXY, os.X_OK):
        print("SKIP: haproxy is not installed (script/bootstrap installs "
              "it)")
        raise SystemExit(77)
    h.run([test_behind_haproxy, test_bad_headers_reset_and_counted,
           test_no_guessing_without_the_setting, test_config_check])
