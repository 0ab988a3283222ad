# Tests that run the real aloopd (see tests/local.mk), and the unit tests of
# the daemon's running part, which compile its modules in directly.
DAEMON_TEST_CPPFLAGS = $(TEST_CPPFLAGS) -I$(top_srcdir)/daemon $(LIBSYSTEMD_CFLAGS)
DAEMON_TEST_LDADD = $(TEST_LDADD) $(LIBSYSTEMD_LIBS)

check_PROGRAMS += tests/daemon/test_notify
tests_daemon_test_notify_SOURCES = tests/daemon/test_notify.c \
	daemon/notify.c daemon/notify.h daemon/activation.c \
	daemon/activation.h daemon/logsink.c daemon/logsink.h
tests_daemon_test_notify_CPPFLAGS = $(DAEMON_TEST_CPPFLAGS)
tests_daemon_test_notify_LDADD = $(DAEMON_TEST_LDADD)
TESTS += tests/daemon/test_notify

# aloopd -t on the shipped, a good and several bad configurations.  It
# needs the plugins, the fixtures and the certificate script.
TESTS += tests/daemon/test_config_check.sh
EXTRA_DIST += tests/daemon/test_config_check.sh

# The real aloopd on loopback: every protocol over TCP, UDP and TLS,
# signals, reload, drain, systemd's side
# channels, and the unit file (python3; aloopd_harness.py is shared).
TESTS += tests/daemon/test_lifecycle.py tests/daemon/test_systemd.py \
	tests/daemon/test_protocols.py
EXTRA_DIST += tests/daemon/aloopd_harness.py tests/daemon/test_lifecycle.py \
	tests/daemon/test_systemd.py tests/daemon/test_protocols.py

# A plugin that blocks its loop, so that the watchdog has a stuck worker.
check_LTLIBRARIES += tests/fixtures/plugin_stall.la
tests_fixtures_plugin_stall_la_SOURCES = tests/fixtures/plugin_stall.c
tests_fixtures_plugin_stall_la_LDFLAGS = $(AM_LDFLAGS) -module \
	-avoid-version -shared -rpath /nowhere -Wl,-z,noexecstack

# Plugins that crash or hang on request, for the master's containment,
# and the worker processes' tests built on them.
check_LTLIBRARIES += tests/fixtures/plugin_misbehave.la \
	tests/fixtures/plugin_crash_ctor.la
tests_fixtures_plugin_misbehave_la_SOURCES = tests/fixtures/plugin_misbehave.c
tests_fixtures_plugin_misbehave_la_LDFLAGS = $(AM_LDFLAGS) -module \
	-avoid-version -shared -rpath /nowhere -Wl,-z,noexecstack
tests_fixtures_plugin_crash_ctor_la_SOURCES = tests/fixtures/plugin_crash_ctor.c
tests_fixtures_plugin_crash_ctor_la_LDFLAGS = $(AM_LDFLAGS) -module \
	-avoid-version -shared -rpath /nowhere -Wl,-z,noexecstack
TESTS += tests/daemon/test_workers.py
EXTRA_DIST += tests/daemon/test_workers.py

# Plugins written as tasks: the template, echo_task and a stream_task
# that crashes, overflows its stack or blocks on request.
check_LTLIBRARIES += tests/fixtures/plugin_task_misbehave.la
tests_fixtures_plugin_task_misbehave_la_SOURCES = \
	tests/fixtures/plugin_task_misbehave.c
tests_fixtures_plugin_task_misbehave_la_LDFLAGS = $(AM_LDFLAGS) -module \
	-avoid-version -shared -rpath /nowhere -Wl,-z,noexecstack
TESTS += tests/daemon/test_tasks.py
EXTRA_DIST += tests/daemon/test_tasks.py

# The proxy and exec plugins with real peers (python3's http.server, curl,
# /bin/cat), and the template plugin built out of tree from installed files.
TESTS += tests/daemon/test_proxy.py tests/daemon/test_exec.py \
	tests/daemon/test_template.py
EXTRA_DIST += tests/daemon/test_proxy.py tests/daemon/test_exec.py \
	tests/daemon/test_template.py

# The metrics plugin scraped while echo runs over TCP, UDP and TLS; its
# output goes through promtool (Debian's prometheus package) and curl.
TESTS += tests/daemon/test_metrics.py
EXTRA_DIST += tests/daemon/test_metrics.py

# proxy_protocol listeners behind a real HAProxy (Debian's haproxy
# package), run as the test's own process on loopback.
TESTS += tests/daemon/test_proxy_protocol.py
EXTRA_DIST += tests/daemon/test_proxy_protocol.py

# The counters themselves and the transport byte count they come from.
check_PROGRAMS += tests/daemon/test_metrics_counters
tests_daemon_test_metrics_counters_SOURCES = \
	tests/daemon/test_metrics_counters.c daemon/metrics.c daemon/metrics.h \
	daemon/scoreboard.c daemon/scoreboard.h
tests_daemon_test_metrics_counters_CPPFLAGS = $(DAEMON_TEST_CPPFLAGS)
tests_daemon_test_metrics_counters_LDADD = tests/unit/libstreamutil.la \
	$(DAEMON_TEST_LDADD) $(PTHREAD_LIBS)
TESTS += tests/daemon/test_metrics_counters

# allow and deny over TCP, TLS, UDP and UNIX, with reload.
TESTS += tests/daemon/test_access.py
EXTRA_DIST += tests/daemon/test_access.py

# The access log: every way a connection ends, TLS facts, JSON, reopen.
TESTS += tests/daemon/test_access_log.py
EXTRA_DIST += tests/daemon/test_access_log.py

# The proxy's balancing and health checks, with upstreams of the test's own.
TESTS += tests/daemon/test_proxy_balance.py
EXTRA_DIST += tests/daemon/test_proxy_balance.py

# TLS session tickets across a reload and two workers, tickets off, and
# OCSP stapling from a file made with `openssl ocsp` (openssl s_client).
TESTS += tests/daemon/test_tls_sessions.py
EXTRA_DIST += tests/daemon/test_tls_sessions.py

# Listeners with the same TLS settings share a context, not sessions; a
# reload keeps the unchanged contexts and builds the changed ones.
TESTS += tests/daemon/test_tls_contexts.py
EXTRA_DIST += tests/daemon/test_tls_contexts.py
