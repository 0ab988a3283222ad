# Tests that play the hostile peer against the real aloopd on loopback:
# silent and trickling clients, peers that never read, descriptor floods,
# overload, proxy loops and bad configuration files.  Each is bounded in
# time and counts what the daemon still holds afterwards (sockets in
# FIN_WAIT1, descriptors), not only what a client saw.  They share
# tests/daemon/aloopd_harness.py.

# Peers that stop reading (drain deadline, idle timeout: nothing left in
# FIN_WAIT1) and a flood past the descriptor limit (resets, prompt
# recovery, one log line per listener per 10 s).
TESTS += tests/hostile/test_unread.py
EXTRA_DIST += tests/hostile/test_unread.py
