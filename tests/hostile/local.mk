# Tests that play the hostile peer against the real aloopd on loopback:
# silent and trickling clients, peers that never read, descriptor floods,
# overload, proxy loops and bad configuration files.  Each is bounded in
# time and counts what the daemon still holds afterwards (sockets in
# FIN_WAIT1, descriptors), not only what a client saw.  They share
# tests/daemon/aloopd_harness.py.

# aloop.conf @including a directory or a FIFO, at start and on reload.
TESTS += tests/hostile/test_bad_include.py
EXTRA_DIST += tests/hostile/test_bad_include.py
