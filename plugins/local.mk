# Plugins shipped with aloopd.  Each is a libtool module exporting only its
# descriptor; it takes every aloop_* symbol from the aloopd that loads it,
# so it links nothing.  noexecstack lets them load under systemd's
# MemoryDenyWriteExecute=yes.
PLUGIN_MODULE_FLAGS = $(AM_LDFLAGS) -module -avoid-version -shared \
	-export-symbols-regex '^aloop_plugin$$' -Wl,-z,noexecstack

plugin_LTLIBRARIES += plugins/echo.la plugins/discard.la \
	plugins/chargen.la plugins/daytime.la plugins/time.la

plugins_echo_la_SOURCES = plugins/echo.c
plugins_echo_la_LDFLAGS = $(PLUGIN_MODULE_FLAGS)
plugins_discard_la_SOURCES = plugins/discard.c
plugins_discard_la_LDFLAGS = $(PLUGIN_MODULE_FLAGS)
plugins_chargen_la_SOURCES = plugins/chargen.c
plugins_chargen_la_LDFLAGS = $(PLUGIN_MODULE_FLAGS)
plugins_daytime_la_SOURCES = plugins/daytime.c
plugins_daytime_la_LDFLAGS = $(PLUGIN_MODULE_FLAGS)
plugins_time_la_SOURCES = plugins/time.c
plugins_time_la_LDFLAGS = $(PLUGIN_MODULE_FLAGS)

# echo written as a stream_task, beside echo's callbacks (tests, bench).
plugin_LTLIBRARIES += plugins/echo_task.la
plugins_echo_task_la_SOURCES = plugins/echo_task.c
plugins_echo_task_la_LDFLAGS = $(PLUGIN_MODULE_FLAGS)

# proxy and exec open connections and children of their own, whose last
# callbacks may come after fini, when a reload has dropped the listener:
# -z nodelete keeps their code mapped for those callbacks.
plugin_LTLIBRARIES += plugins/proxy.la
plugins_proxy_la_SOURCES = plugins/proxy.c plugins/proxy_balance.c \
	plugins/proxy_balance.h
plugins_proxy_la_LDFLAGS = $(PLUGIN_MODULE_FLAGS) -Wl,-z,nodelete

plugin_LTLIBRARIES += plugins/exec.la
plugins_exec_la_SOURCES = plugins/exec.c
plugins_exec_la_LDFLAGS = $(PLUGIN_MODULE_FLAGS) -Wl,-z,nodelete

# The template a plugin author copies: built only out of tree, from the
# installed headers (tests/daemon/test_template.py proves that it does),
# and installed where the docs go, to copy from.
plugintemplatedir = $(docdir)/plugin-template
dist_plugintemplate_DATA = plugins/template/template.c \
	plugins/template/callback.c plugins/template/Makefile \
	plugins/template/README.md

# aloopd's counters for Prometheus (GET /metrics); reads them through
# aloop_daemon_metrics_*, which the loading aloopd provides.
plugin_LTLIBRARIES += plugins/metrics.la
plugins_metrics_la_SOURCES = plugins/metrics.c
plugins_metrics_la_LDFLAGS = $(PLUGIN_MODULE_FLAGS)
