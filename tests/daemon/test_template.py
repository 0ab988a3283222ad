#!/usr/bin/env python3
"""The plugin author's path, end to end: install aloop into a staging
directory (make install DESTDIR=...), build plugins/template outside the
tree with nothing but the installed headers and aloop.pc -- once with the
one-line cc command the documentation gives, once with the template's own
Makefile under -Werror -- and serve clients with it in the installed aloopd.
template.c is written as a task, callback.c (the same protocol) as protocol
callbacks; both serve the same conversation.
"""
import os
import shutil
import subprocess
import sys

import aloopd_harness as h


def sub_make_env():
    """The environment for a make of our own, free of the outer make's
    jobserver and flags."""
    env = dict(os.environ)
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
        env.pop(k, None)
    return env


def find(top, name):
    for d, _, files in os.walk(top):
        if name in files:
            return os.path.join(d, name)
    raise AssertionError("no %s under %s" % (name, top))


def stage_install(stage):
    r = subprocess.run([os.environ.get("MAKE", "make"), "-C", h.TOP_BUILDDIR,
                        "install", "DESTDIR=" + stage],
                       env=sub_make_env(), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def pkg_env(stage):
    env = sub_make_env()
    env["PKG_CONFIG_PATH"] = os.path.dirname(find(stage, "aloop.pc"))
    # pkg-config prefixes every -I and -L it prints with the stage.
    env["PKG_CONFIG_SYSROOT_DIR"] = stage
    env.pop("PKG_CONFIG_LIBDIR", None)
    return env


def exported(so):
    r = subprocess.run(["nm", "-D", "--defined-only", so],
                       capture_output=True, text=True, check=True)
    return sorted(line.split()[-1] for line in r.stdout.splitlines()
                  if line.strip())


def test_template_from_installed_files():
    d = h.tmpdir()
    stage = os.path.join(d, "stage")
    stage_install(stage)
    env = pkg_env(stage)
    src = os.path.join(h.TOP_SRCDIR, "plugins", "template")

    # What a plugin's author types.
    cflags = subprocess.run(["pkg-config", "--cflags", "aloop"], env=env,
                            capture_output=True, text=True, check=True)
    assert stage in cflags.stdout, cflags.stdout
    one = os.path.join(d, "one")
    os.mkdir(one)
    for name in ("template", "callback"):
        r = subprocess.run(["sh", "-c", 'cc -shared -fPIC $(pkg-config '
                            '--cflags --libs aloop) "$1" -o "$2"', "sh",
                            os.path.join(src, name + ".c"),
                            os.path.join(one, name + ".so")],
                           env=env, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr

    # The template's Makefile, warnings as errors, in a copy of its own.
    copy = os.path.join(d, "copy")
    shutil.copytree(src, copy)
    for f in os.listdir(copy):
        if f.endswith(".so"):
            os.unlink(os.path.join(copy, f))
    r = subprocess.run(["make", "-C", copy,
                        "CFLAGS=-O2 -g -Wall -Wextra -Werror"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("template", "callback"):
        assert exported(os.path.join(copy, name + ".so")) == ["aloop_plugin"]

    # The installed aloopd, finding the installed libaloop.
    aloopd = find(stage, "aloopd")
    libdir = os.path.dirname(os.path.dirname(find(stage, "aloop.pc")))
    run_env = {"LD_LIBRARY_PATH": libdir}
    h.ALOOPD = aloopd
    for plugin_dir in (one, copy):
        for name in ("template", "callback"):
            serve_with(d, plugin_dir, name, run_env)
    for name in ("template", "callback"):
        check_refused_settings(d, one, name, run_env)


def serve_with(d, plugin_dir, name, env):
    port = h.free_port()
    cfg = os.path.join(d, "aloop.conf")
    h.write_config(cfg, [h.listener(
        "shout", name, port, "tcp",
        'settings = { greeting = "hi there"; max_line = 16; };')],
        plugin_path=plugin_dir)
    daemon = h.Daemon(cfg, env=env)
    daemon.wait_ready()
    with h.connect(port) as s:
        assert h.recv_exactly(s, 10) == b"hi there\r\n"
        # Lines cut anywhere and in several writes, CR LF or LF.
        s.sendall(b"abc\r\nx")
        s.sendall(b"yz\n")
        assert h.recv_exactly(s, 8) == b"ABC\nXYZ\n"
        s.sendall(b"QUIT\r\nignored\n")
        assert h.recv_all(s) == b"BYE\r\n"
    with h.connect(port) as s:
        assert h.recv_exactly(s, 10) == b"hi there\r\n"
        s.sendall(b"z" * 17)
        assert h.recv_all(s) == b"ERR line too long\r\n"
    assert daemon.stop() == 0, daemon.text()
    # fini ran, and logged what the instance served.
    assert name + ": served 2 connections" in daemon.text(), daemon.text()


def check_refused_settings(d, plugin_dir, name, env):
    cfg = os.path.join(d, "bad.conf")
    h.write_config(cfg, [h.listener(
        "shout", name, h.free_port(), "tcp",
        'settings = { max_line = 0; colour = "red"; };')],
        plugin_path=plugin_dir)
    full = dict(os.environ)
    full.update(env)
    r = subprocess.run([h.ALOOPD, "-t", "-c", cfg], env=full,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0, r
    assert "max_line" in r.stderr and "colour" in r.stderr, r.stderr


TESTS = [test_template_from_installed_files]
h.run([t for t in TESTS if len(sys.argv) < 2 or t.__name__ in sys.argv[1:]])
