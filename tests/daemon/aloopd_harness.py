"""Shared by the tests that run the real aloopd: configuration files with
free loopback ports, starting and stopping the daemon (always by PID, always
within a deadline), reading its log, and a fake systemd notification socket.
"""
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

TOP_SRCDIR = os.environ.get("top_srcdir", os.path.join(os.path.dirname(__file__), "..", ".."))
TOP_BUILDDIR = os.environ.get("top_builddir", os.getcwd())
ALOOPD = os.environ.get("ALOOPD", os.path.join(TOP_BUILDDIR, "daemon", "aloopd"))
PLUGINS = os.path.join(TOP_BUILDDIR, "plugins", ".libs")
FIXTURES = os.path.join(TOP_BUILDDIR, "tests", "fixtures", ".libs")

# Every test is bounded: a hang fails the test instead of blocking make check.
TEST_TIMEOUT = int(os.environ.get("TEST_TIMEOUT", "120"))

_children = []
_pids = []


def track_pid(pid):
    """A process the test did not start itself (a master that took over
    in a binary upgrade): killed at the end like the others."""
    _pids.append(pid)


def _kill_children(*_):
    for p in _children:
        if p.poll() is None:
            p.kill()
            p.wait()
    for pid in _pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    del _pids[:]


def _on_alarm(*_):
    sys.stderr.write("FAIL: test timed out\n")
    _kill_children()
    os._exit(1)


signal.signal(signal.SIGALRM, _on_alarm)
signal.alarm(TEST_TIMEOUT)


def free_port(kind=socket.SOCK_STREAM):
    """A port free for both TCP and UDP on 127.0.0.1 right now."""
    while True:
        s = socket.socket(socket.AF_INET, kind)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        other = socket.socket(socket.AF_INET,
                              socket.SOCK_DGRAM if kind == socket.SOCK_STREAM
                              else socket.SOCK_STREAM)
        try:
            other.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            other.close()


def listener(name, protocol, port, type_="tcp", extra=""):
    return """	{
		name = "%s";
		protocol = "%s";
		listen = [ "127.0.0.1:%d" ];
		type = "%s";
		%s
	}""" % (name, protocol, port, type_, extra)


def write_config(path, listeners, daemon_extra="", plugin_path=PLUGINS,
                 workers=None):
    with open(path, "w") as f:
        f.write("""daemon = {
	workers = %d;
	log_level = "%s";
	plugin_path = [ "%s" ];
	%s
};
listeners = (
%s
);
""" % (workers or int(os.environ.get("ALOOPD_TEST_WORKERS", "1")),
       os.environ.get("ALOOPD_TEST_LOG_LEVEL", "info"),
       plugin_path, daemon_extra, ",\n".join(listeners)))


def start(listeners, daemon_extra="", workers=None):
    """A config in a new directory and aloopd -f serving it: (path, Daemon)."""
    d = tmpdir()
    cfg = os.path.join(d, "aloop.conf")
    write_config(cfg, listeners, daemon_extra, workers=workers)
    daemon = Daemon(cfg)
    daemon.wait_ready()
    return cfg, daemon


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))


class Daemon:
    """aloopd -f on a config, its stderr collected in a file."""

    def __init__(self, config, env=None, args=(), pass_fds=(), shell_prefix=None,
                 journal=False):
        self.log_path = config + ".log"
        self.log = open(self.log_path, "w+")
        full_env = dict(os.environ)
        for k in ("NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS",
                  "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID",
                  "JOURNAL_STREAM"):
            full_env.pop(k, None)
        if journal:
            # What systemd sets when stderr is a stream to journald.
            st = os.fstat(self.log.fileno())
            full_env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
        full_env.update(env or {})
        argv = [ALOOPD, "-f", "-c", config] + list(args)
        if shell_prefix is not None:
            # The shell's PID is the daemon's after exec, so the prefix can
            # name it (socket activation's LISTEN_PID=$$).
            argv = ["/bin/sh", "-c", shell_prefix + ' exec "$@"', "sh"] + argv
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log,
                                     env=full_env, pass_fds=pass_fds)
        _children.append(self.proc)

    @property
    def pid(self):
        return self.proc.pid

    def workers(self):
        """The master's children: its worker processes."""
        with open("/proc/%d/task/%d/children" % (self.pid, self.pid)) as f:
            return [int(p) for p in f.read().split()]

    def rss_kib(self):
        """Resident memory of the master and its workers together."""
        return rss_kib(self.pid) + sum(rss_kib(w) for w in self.workers())

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_log(self, pattern, timeout=20):
        """The first match of @pattern in the log, waiting for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.text())
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("no %r in the log of aloopd (exit %r):\n%s"
                             % (pattern, self.proc.poll(), self.text()))

    def wait_ready(self):
        return self.wait_log(r"started: \d+ listeners?")

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout=30):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("aloopd did not exit in %d s:\n%s"
                                 % (timeout, self.text()))

    def stop(self):
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        status = self.wait_exit()
        self.log.close()
        return status


def connect(port, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return s


def recv_exactly(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def recv_all(s):
    buf = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return buf
        buf += chunk


def udp_exchange(port, payload, timeout=5):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(payload, ("127.0.0.1", port))
        return s.recvfrom(65536)[0]
    finally:
        s.close()


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []

    def next(self, timeout=20):
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            raise AssertionError("no notification within %d s; got %r"
                                 % (timeout, self.messages))
        msg = self.sock.recv(4096).decode()
        self.messages.append(msg)
        return msg

    def wait_for(self, prefix, timeout=20):
        """Skip messages until one starts with @prefix; return it."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %r notification; got %r"
                                     % (prefix, self.messages))
            msg = self.next(left)
            if msg.startswith(prefix):
                return msg


_tmpdirs = []


def make_cert(d, cn="localhost"):
    """A self-signed EC certificate for localhost and 127.0.0.1 in @d:
    cert.pem and key.pem."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=" + cn, "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", os.path.join(d, "key.pem"),
                    "-out", os.path.join(d, "cert.pem")],
                   check=True, capture_output=True)


def metric_sums(port):
    """GET /metrics of the metrics listener on @port, as {(name, listener,
    reason): value summed over workers}."""
    import urllib.request
    url = "http://127.0.0.1:%d/metrics" % port
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    sums = {}
    for line in text.splitlines():
        m = re.match(r'^([a-z_]+)\{([^}]*)\} (\S+)$', line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            key = (m.group(1), labels.get("listener"), labels.get("reason"))
            sums[key] = sums.get(key, 0) + float(m.group(3))
    return sums


def tmpdir():
    d = tempfile.mkdtemp(prefix="aloopd-test-")
    _tmpdirs.append(d)
    return d


def run(tests):
    """Run each test function in turn; exit 1 on the first failure."""
    failed = 0
    for t in tests:
        try:
            t()
            print("PASS: %s" % t.__name__)
        except Exception as e:  # report, clean up, go on with the rest
            failed += 1
            # The line that failed: a bare assert has no message.
            where = traceback.extract_tb(e.__traceback__)[-1]
            print("FAIL: %s: %s:%d: %s" % (t.__name__, where.filename,
                                           where.lineno, e))
        finally:
            _kill_children()
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)
    sys.exit(1 if failed else 0)
