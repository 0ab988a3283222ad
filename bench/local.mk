# Benchmarks: built with make, run by hand (see bench/README.md).

# aloop_echo: the TCP/UNIX echo server measured against the shared peers.
noinst_PROGRAMS += bench/aloop_echo
bench_aloop_echo_SOURCES = bench/aloop_echo.c
bench_aloop_echo_LDADD = lib/libaloop.la

# aloop_tls_echo: the TLS echo server, for echo_load --tls and
# tls_handshake_load.
noinst_PROGRAMS += bench/aloop_tls_echo
bench_aloop_tls_echo_SOURCES = bench/aloop_tls_echo.c
bench_aloop_tls_echo_LDADD = lib/libaloop.la
