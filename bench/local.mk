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

# bench_loop: the loop core (call_soon, call_later, call_soon_threadsafe)
# against raw libevent doing the same work.
noinst_PROGRAMS += bench/bench_loop
bench_bench_loop_SOURCES = bench/bench_loop.c
bench_bench_loop_CPPFLAGS = $(AM_CPPFLAGS) $(LIBEVENT_CFLAGS)
bench_bench_loop_LDADD = lib/libaloop.la $(LIBEVENT_LIBS) $(PTHREAD_LIBS)

# bench_task: tasks suspending and resuming, next to swapcontext and a
# call_soon chain.
noinst_PROGRAMS += bench/bench_task
bench_bench_task_SOURCES = bench/bench_task.c
bench_bench_task_LDADD = lib/libaloop.la

# bench_config: aloopd's configuration parse and checks with many
# listeners, the daemon's own code (config_parse), without plugins.
noinst_PROGRAMS += bench/bench_config
bench_bench_config_SOURCES = bench/bench_config.c $(ALOOPD_CONFIG_SOURCES)
bench_bench_config_CPPFLAGS = $(ALOOPD_CPPFLAGS)
bench_bench_config_LDADD = lib/libaloop.la $(ALOOPD_LIBS)

# bulk: the 1 GiB upload through the proxies (a sender and a sink that
# answers once it has every byte); plain sockets, no libaloop.
noinst_PROGRAMS += bench/bulk
bench_bulk_SOURCES = bench/bulk.c

# run.sh builds the programs above in a build dir of its own, runs them and
# the shared peer harness pinned to CPUs 0 and 1, and summary.awk turns its
# raw lines into the tables of bench/README.md.  Run by hand, never by make.
EXTRA_DIST += bench/run.sh bench/summary.awk bench/README.md bench/startup.py
