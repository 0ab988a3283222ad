#!/usr/bin/env python3
"""Each shipped protocol through the real aloopd, over TCP and UDP, and echo
over TLS with a certificate made for the test."""
import ctypes
import os
import shutil
import signal
import socket
import ssl
import struct
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean (distcheck)
import aloopd_harness as h  # noqa: E402

PROTOCOLS = ("echo", "discard", "chargen", "daytime", "time")


def start_all():
    d = h.tmpdir()
    h.make_cert(d)
    ports = {}
    listeners = []
    for p in PROTOCOLS:
        ports[p] = h.free_port()
        listeners.append(h.listener(p, p, ports[p]))
        listeners.append(h.listener(p + "-udp", p, ports[p], "udp"))
    ports["tls"] = h.free_port()
    listeners.append(h.listener("echo-tls", "echo", ports["tls"], "tcp",
                                'tls = { certificate = "%s/cert.pem"; '
                                'key = "%s/key.pem"; };' % (d, d)))
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, listeners)
    daemon = h.Daemon(cfg)
    daemon.wait_ready()
    return d, daemon, ports


def check_tcp(ports):
    with h.connect(ports["echo"]) as s:
        for msg in (b"hello\r\n", b"x" * 100000):
            s.sendall(msg)
            assert h.recv_exactly(s, len(msg)) == msg
        s.shutdown(socket.SHUT_WR)
        assert h.recv_all(s) == b""

    with h.connect(ports["discard"]) as s:
        s.sendall(b"thrown away" * 1000)
        s.shutdown(socket.SHUT_WR)
        assert h.recv_all(s) == b""

    with h.connect(ports["chargen"]) as s:
        data = h.recv_exactly(s, 74 * 3)
        lines = data.split(b"\r\n")
        assert len(lines[0]) == 72, lines[0]
        assert lines[0] == bytes(range(32, 32 + 72)), lines[0]
        # Each line starts one character later in the pattern.
        assert lines[1][:71] == lines[0][1:], lines[:2]

    with h.connect(ports["daytime"]) as s:
        text = h.recv_all(s)
        assert text.endswith(b"\r\n") and len(text) > 10, text

    with h.connect(ports["time"]) as s:
        data = h.recv_all(s)
        assert len(data) == 4, data
        t = struct.unpack("!I", data)[0] - 2208988800
        assert abs(t - time.time()) < 60, t


def check_udp(ports):
    assert h.udp_exchange(ports["echo"], b"ping") == b"ping"
    reply = h.udp_exchange(ports["chargen"], b"")
    # A random length (0..512) of the pattern, each character the next one.
    assert len(reply) <= 512, len(reply)
    assert all(32 <= c < 127 for c in reply), reply
    assert all(b == 32 + (a - 32 + 1) % 95 for a, b in zip(reply, reply[1:]))
    assert h.udp_exchange(ports["daytime"], b"").endswith(b"\r\n")
    data = h.udp_exchange(ports["time"], b"")
    assert len(data) == 4
    assert abs(struct.unpack("!I", data)[0] - 2208988800 - time.time()) < 60
    # discard answers nothing: the echo after it proves it was delivered.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    s.sendto(b"nothing comes back", ("127.0.0.1", ports["discard"]))
    try:
        s.recvfrom(100)
        raise AssertionError("discard answered")
    except socket.timeout:
        pass
    s.close()


def check_tls(d, ports):
    ctx = ssl.create_default_context(cafile=os.path.join(d, "cert.pem"))
    with h.connect(ports["tls"]) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"secret echo")
            assert h.recv_exactly(s, 11) == b"secret echo"
            assert s.version() in ("TLSv1.2", "TLSv1.3")


def test_every_protocol():
    d, daemon, ports = start_all()
    check_tcp(ports)
    check_udp(ports)
    check_tls(d, ports)
    assert daemon.stop() == 0, daemon.text()


def test_reload_rereads_certificate():
    d = h.tmpdir()
    h.make_cert(d, "first")
    port = h.free_port()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [h.listener(
        "echo-tls", "echo", port, "tcp", 'tls = { certificate = "%s/cert.pem";'
        ' key = "%s/key.pem"; };' % (d, d))])
    daemon = h.Daemon(cfg)
    daemon.wait_ready()

    def tls_client():
        ctx = ssl.create_default_context(cafile=os.path.join(d, "cert.pem"))
        return ctx.wrap_socket(h.connect(port), server_hostname="localhost")

    def common_name(s):
        subject = dict(x[0] for x in s.getpeercert()["subject"])
        return subject["commonName"]

    old = tls_client()
    assert common_name(old) == "first"
    h.make_cert(d, "second")
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"reloaded .*: 1 listeners?")
    with tls_client() as new:
        assert common_name(new) == "second"
        new.sendall(b"renewed")
        assert h.recv_exactly(new, 7) == b"renewed"
    # The connection made before the reload keeps its session.
    old.sendall(b"old")
    assert h.recv_exactly(old, 3) == b"old"
    old.close()

    # Accepted by the old server, but its handshake ends after a reload
    # that retires that server with no other connection left.
    pending = h.connect(port)
    time.sleep(0.5)
    second_ca = os.path.join(d, "second.pem")
    shutil.copy(os.path.join(d, "cert.pem"), second_ca)
    h.make_cert(d, "third")
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r"(?s)reloaded .*reloaded .*: 1 listeners?")
    ctx = ssl.create_default_context(cafile=second_ca)
    with ctx.wrap_socket(pending, server_hostname="localhost") as s:
        assert common_name(s) == "second"
        s.sendall(b"late")
        assert h.recv_exactly(s, 4) == b"late"
    assert daemon.stop() == 0, daemon.text()


def test_daytime_utc_names_its_zone_alike():
    port = h.free_port()
    settings = ('settings = { utc = true; '
                'format = "%A, %B %d, %Y %H:%M:%S-%Z"; };')
    cfg, daemon = h.start([h.listener("daytime", "daytime", port,
                                      extra=settings),
                           h.listener("daytime-udp", "daytime", port, "udp",
                                      extra=settings)])
    with h.connect(port) as s:
        tcp = h.recv_all(s)
    udp = h.udp_exchange(port, b"")
    # gmtime() calls its zone GMT: the listener says UTC, over both.
    assert tcp.endswith(b"-UTC\r\n"), tcp
    assert udp.endswith(b"-UTC\r\n"), udp
    assert daemon.stop() == 0, daemon.text()


def accepted_sockets(pid, port):
    """Copies of process @pid's sockets accepted on @port (pidfd_getfd)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    found = []
    try:
        for name in os.listdir("/proc/%d/fd" % pid):
            try:
                if not os.readlink("/proc/%d/fd/%s" % (pid, name)) \
                        .startswith("socket:"):
                    continue
            except OSError:
                continue
            fd = libc.syscall(438, pidfd, int(name), 0)  # pidfd_getfd
            if fd < 0:
                raise OSError(ctypes.get_errno(), "pidfd_getfd")
            s = socket.socket(fileno=fd)
            try:
                if s.type == socket.SOCK_STREAM and \
                        s.family == socket.AF_INET and \
                        s.getsockname()[1] == port:
                    s.getpeername()
                    found.append(s)
                    continue
            except OSError:
                pass
            s.close()
    finally:
        os.close(pidfd)
    return found


def test_socket_options_from_the_listener():
    """tcp_nodelay and keepalive reach every accepted socket, plain and TLS,
    though aloopd sets them once, on the listening socket."""
    d = h.tmpdir()
    h.make_cert(d)
    tls = ('tls = { certificate = "%s/cert.pem"; key = "%s/key.pem"; };'
           % (d, d))
    for nodelay, keepalive in ((1, 0), (0, 1)):
        opts = "tcp_nodelay = %s; keepalive = %s;" % (
            "true" if nodelay else "false", "true" if keepalive else "false")
        plain, secure = h.free_port(), h.free_port()
        cfg, daemon = h.start([
            h.listener("echo", "echo", plain, extra=opts),
            h.listener("echo-tls", "echo", secure, extra=opts + tls)],
            workers=1)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        clients = []
        for _ in range(3):
            clients.append(h.connect(plain))
            c = ctx.wrap_socket(h.connect(secure))
            c.sendall(b"x")
            assert c.recv(1) == b"x"
            clients.append(c)
        for c in clients[:6:2]:
            c.sendall(b"y")
            assert c.recv(1) == b"y"
        (worker,) = daemon.workers()
        for port in (plain, secure):
            socks = accepted_sockets(worker, port)
            assert len(socks) == 3, (port, socks)
            for s in socks:
                assert (s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                        != 0) == bool(nodelay)
                assert (s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
                        != 0) == bool(keepalive)
                s.close()
        for c in clients:
            c.close()
        assert daemon.stop() == 0, daemon.text()


h.run([test_every_protocol, test_reload_rereads_certificate,
       test_daytime_utc_names_its_zone_alike,
       test_socket_options_from_the_listener])
