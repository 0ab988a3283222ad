# Tests that play the hostile peer against the real aloopd on loopback:
# silent and trickling clients, peers that never read, descriptor floods,
# overload, proxy loops and bad configuration files.  Each is bounded in
# time and counts what the daemon still holds afterwards (sockets in
# FIN_WAIT1, descriptors), not only what a client saw.  They share
# tests/daemon/aloopd_harness.py.

# The daemon's own bounds: timeouts, overflow, per-source and rate limits.
TESTS += tests/hostile/test_bounds.py
EXTRA_DIST += tests/hostile/test_bounds.py

# The proxy and exec plugins against peers and programs that hold what
# they can: connects that never complete, half-closes never finished, a
# proxy loop through a second aloopd, process groups that outlive the
# client, programs and clients that stop reading.
TESTS += tests/hostile/test_proxy_bounds.py tests/hostile/test_exec_bounds.py
EXTRA_DIST += tests/hostile/test_proxy_bounds.py \
	tests/hostile/test_exec_bounds.py

# aloop.conf @including a directory or a FIFO, at start and on reload.
TESTS += tests/hostile/test_bad_include.py
EXTRA_DIST += tests/hostile/test_bad_include.py

# Peers that stop reading (drain deadline, idle timeout: nothing left in
# FIN_WAIT1) and a flood past the descriptor limit (resets, prompt
# recovery, one log line per listener per 10 s).
TESTS += tests/hostile/test_unread.py
EXTRA_DIST += tests/hostile/test_unread.py
