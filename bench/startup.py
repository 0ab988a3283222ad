#!/usr/bin/env python3
"""aloopd's start-up and reload time with many listeners (issue 14).

    bench/startup.py ALOOPD PLUGIN_DIR CERT KEY [--listeners N] [--repeats R]
                     [--base-port P]

For N plain and then N TLS echo listeners on 127.0.0.1 (ports from P
up), measures from exec to aloopd's "started" line and from SIGHUP to its
"reloaded" line, R times each, and prints one raw line per figure:

    startup plain 100 ms 4.9 4.8 5.1
    reload tls 100 ms 160.2 158.9 161.0

aloopd runs in the foreground with one worker and is ended by its PID.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time


def config(path, plugins, n, base, tls, cert, key):
    listeners = []
    for i in range(n):
        extra = ('tls = { certificate = "%s"; key = "%s"; };' % (cert, key)
                 if tls else "")
        listeners.append('\t{ name = "l%d"; protocol = "echo"; listen = '
                         '[ "127.0.0.1:%d" ]; %s }' % (i, base + i, extra))
    with open(path, "w") as f:
        f.write('daemon = { workers = 1; log_level = "notice"; '
                'plugin_path = [ "%s" ]; };\nlisteners = (\n%s\n);\n'
                % (plugins, ",\n".join(listeners)))


def wait_line(proc, word, deadline):
    """Read aloopd's stderr until a line containing @word; its time."""
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        if word in line:
            return time.monotonic()
        seen.append(line)
    raise RuntimeError("aloopd never said %r:\n%s" % (word,
                                                    "".join(seen[-5:])))


def measure(aloopd, cfg, repeats):
    """([start-up ms], [reload ms]) over @repeats runs."""
    starts, reloads = [], []
    for _ in range(repeats):
        t0 = time.monotonic()
        proc = subprocess.Popen([aloopd, "-f", "-c", cfg],
                                stderr=subprocess.PIPE, text=True)
        try:
            t1 = wait_line(proc, " started: ", t0 + 60)
            starts.append((t1 - t0) * 1000)
            t2 = time.monotonic()
            proc.send_signal(signal.SIGHUP)
            t3 = wait_line(proc, " reloaded ", t2 + 60)
            reloads.append((t3 - t2) * 1000)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return starts, reloads


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("aloopd")
    ap.add_argument("plugins")
    ap.add_argument("cert")
    ap.add_argument("key")
    ap.add_argument("--listeners", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--base-port", type=int, default=7600)
    a = ap.parse_args()
    # Relative paths in aloop.conf are the file's directory's: make ours not.
    a.aloopd, a.plugins, a.cert, a.key = (os.path.abspath(x) for x in
                                          (a.aloopd, a.plugins, a.cert, a.key))
    d = tempfile.mkdtemp(prefix="aloop-startup-")
    try:
        for kind in ("plain", "tls"):
            cfg = os.path.join(d, kind + ".conf")
            config(cfg, a.plugins, a.listeners, a.base_port, kind == "tls",
                   a.cert, a.key)
            starts, reloads = measure(a.aloopd, cfg, a.repeats)
            for what, v in (("startup", starts), ("reload", reloads)):
                for rep, ms in enumerate(v, 1):
                    print("scenario=%s_%s server=aloopd rep=%d "
                          "listeners=%d ms=%.1f" % (what, kind, rep,
                                                    a.listeners, ms))
                sys.stdout.flush()
    finally:
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
        os.rmdir(d)


if __name__ == "__main__":
    main()
