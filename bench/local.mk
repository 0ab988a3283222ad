# Benchmarks: built with make, run by hand (see bench/README.md).

# aloop_echo: the TCP/UNIX echo server measured against the shared peers.
noinst_PROGRAMS += bench/aloop_echo
bench_aloop_echo_SOURCES = bench/aloop_echo.c
bench_aloop_echo_LDADD = lib/libaloop.la
