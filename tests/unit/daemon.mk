# Unit tests of aloopd's configuration and plugin loader (see
# tests/local.mk), and the fixture plugins the loader is tested with.
DAEMON_UNIT_CPPFLAGS = $(TEST_CPPFLAGS) -I$(top_srcdir)/daemon \
	$(LIBCONFIG_CFLAGS)
DAEMON_UNIT_LDADD = $(TEST_LDADD) $(LIBCONFIG_LIBS) $(PTHREAD_LIBS)
# The fixtures take aloop_* and the settings getters from the test program.
DAEMON_UNIT_LINKFLAGS = $(AM_LDFLAGS) -export-dynamic

check_PROGRAMS += tests/unit/test_config tests/unit/test_plugin_loader
tests_unit_test_config_SOURCES = tests/unit/test_config.c \
	tests/unit/daemon_test.c tests/unit/daemon_test.h \
	$(ALOOPD_CONFIG_SOURCES)
tests_unit_test_config_CPPFLAGS = $(DAEMON_UNIT_CPPFLAGS)
tests_unit_test_config_LDADD = $(DAEMON_UNIT_LDADD)
tests_unit_test_config_LDFLAGS = $(DAEMON_UNIT_LINKFLAGS)
tests_unit_test_plugin_loader_SOURCES = tests/unit/test_plugin_loader.c \
	tests/unit/daemon_test.c tests/unit/daemon_test.h \
	$(ALOOPD_CONFIG_SOURCES)
tests_unit_test_plugin_loader_CPPFLAGS = $(DAEMON_UNIT_CPPFLAGS)
tests_unit_test_plugin_loader_LDADD = $(DAEMON_UNIT_LDADD)
tests_unit_test_plugin_loader_LDFLAGS = $(DAEMON_UNIT_LINKFLAGS)
TESTS += tests/unit/test_config tests/unit/test_plugin_loader

# Fixture plugins: one good, and one of each way a plugin can be wrong.
# -rpath makes libtool build a shared module that is never installed.
FIXTURE_MODULE_FLAGS = $(AM_LDFLAGS) -module -avoid-version -shared \
	-rpath /nowhere -Wl,-z,noexecstack
check_LTLIBRARIES += tests/fixtures/plugin_good.la \
	tests/fixtures/plugin_wrong_major.la \
	tests/fixtures/plugin_newer_minor.la tests/fixtures/plugin_short.la \
	tests/fixtures/plugin_missing_symbol.la \
	tests/fixtures/plugin_failing_init.la \
	tests/fixtures/plugin_undefined.la \
	tests/fixtures/plugin_both_forms.la tests/fixtures/plugin_no_form.la \
	tests/fixtures/plugin_old_minor.la tests/fixtures/plugin_table.la \
	tests/fixtures/plugin_bad_table.la tests/fixtures/plugin_minor_1.la \
	tests/fixtures/plugin_misaligned.la
tests_fixtures_plugin_good_la_SOURCES = tests/fixtures/plugin_good.c
tests_fixtures_plugin_good_la_LDFLAGS = $(FIXTURE_MODULE_FLAGS)
tests_fixtures_plugin_wrong_major_la_SOURCES = tests/fixtures/plugin_bad.c
tests_fixtures_plugin_wrong_major_la_CPPFLAGS = $(AM_CPPFLAGS) \
	-DFIXTURE_WRONG_MAJOR
tests_fixtures_plugin_wrong_major_la_LDFLAGS = $(FIXTURE_MODULE_FLAGS)
tests_fixtures_plugin_newer_minor_la_SOURCES = tests/fixtures/plugin_bad.c
tests_fixtures_plugin_newer_minor_la_CPPFLAGS = $(AM_CPPFLAGS) \
	-DFIXTURE_NEWER_MINOR
tests_fixtures_plugin_newer_minor_la_LDFLAGS = $(FIXTURE_MODULE_FLAGS)
tests_fixtures_plugin_short_la_SOURCES = tests/fixtures/plugin_bad.c
tests_fixtures_plugin_short_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_SHORT
tests_fixtures_plugin_short_la_LDFLAGS = $(FIXTURE_MODULE_FLAGS)
tests_fixtures_plugin_missing_symbol_la_SOURCES = tests/fixtures/plugin_bad.c
tests_fixtures_plugin_missing_symbol_la_CPPFLAGS = $(AM_CPPFLAGS) \
	-DFIXTURE_MISSING_SYMBOL
tests_fixtures_plugin_missing_symbol_la_LDFLAGS = $(FIXTURE_MODULE_FLAGS)
tests_fixtures_plugin_failing_init_la_SOURCES = tests/fixtures/plugin_bad.c
tests_fixtures_plugin_failing_init_la_CPPFLAGS = $(AM_CPPFLAGS) \
	-DFIXTURE_FAILING_INIT
tests_fixtures_plugin_failing_init_la_LDFLAGS = $(FIXTURE_MODULE_FLAGS)
tests_fixtures_plugin_undefined_la_SOURCES = tests/fixtures/plugin_bad.c
tests_fixtures_plugin_undefined_la_CPPFLAGS = $(AM_CPPFLAGS) \
	-DFIXTURE_UNDEFINED
tests_fixtures_plugin_undefined_la_LDFLAGS = $(FIXTURE_MODULE_FLAGS)
tests_fixtures_plugin_both_forms_la_SOURCES = tests/fixtures/plugin_bad.c
tests_fixtures_plugin_both_forms_la_CPPFLAGS = $(AM_CPPFLAGS) \
	-DFIXTURE_BOTH_FORMS
tests_fixtures_plugin_both_forms_la_LDFLAGS = $(FIXTURE_MODULE_FLAGS)
tests_fixtures_plugin_no_form_la_SOURCES = tests/fixtures/plugin_bad.c
tests_fixtures_plugin_no_form_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_NO_FORM
tests_fixtures_plugin_no_form_la_LDFLAGS = $(FIXTURE_MODULE_FLAGS)
tests_fixtures_plugin_old_minor_la_SOURCES = tests/fixtures/plugin_bad.c
tests_fixtures_plugin_old_minor_la_CPPFLAGS = $(AM_CPPFLAGS) \
	-DFIXTURE_OLD_MINOR
tests_fixtures_plugin_old_minor_la_LDFLAGS = $(FIXTURE_MODULE_FLAGS)
tests_fixtures_plugin_table_la_SOURCES = tests/fixtures/plugin_table.c \
	tests/fixtures/plugin_table.h
tests_fixtures_plugin_table_la_LDFLAGS = $(FIXTURE_MODULE_FLAGS)
tests_fixtures_plugin_bad_table_la_SOURCES = tests/fixtures/plugin_bad.c
tests_fixtures_plugin_bad_table_la_CPPFLAGS = $(AM_CPPFLAGS) \
	-DFIXTURE_BAD_TABLE
tests_fixtures_plugin_bad_table_la_LDFLAGS = $(FIXTURE_MODULE_FLAGS)
tests_fixtures_plugin_misaligned_la_SOURCES = tests/fixtures/plugin_bad.c
tests_fixtures_plugin_misaligned_la_CPPFLAGS = $(AM_CPPFLAGS) \
	-DFIXTURE_MISALIGNED
tests_fixtures_plugin_misaligned_la_LDFLAGS = $(FIXTURE_MODULE_FLAGS)
tests_fixtures_plugin_minor_1_la_SOURCES = tests/fixtures/plugin_bad.c
tests_fixtures_plugin_minor_1_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_MINOR_1
tests_fixtures_plugin_minor_1_la_LDFLAGS = $(FIXTURE_MODULE_FLAGS)

# Where the tests find the scripts and fixtures when run by hand.
DAEMON_UNIT_CPPFLAGS += -DABS_TOP_SRCDIR='"$(abs_top_srcdir)"' \
	-DABS_TOP_BUILDDIR='"$(abs_top_builddir)"'

# The shipped plugins, loaded as aloopd loads them and driven over loopback.
check_PROGRAMS += tests/unit/test_plugins
tests_unit_test_plugins_SOURCES = tests/unit/test_plugins.c \
	$(ALOOPD_CONFIG_SOURCES)
tests_unit_test_plugins_CPPFLAGS = $(DAEMON_UNIT_CPPFLAGS)
tests_unit_test_plugins_LDADD = tests/unit/libstreamutil.la \
	$(DAEMON_UNIT_LDADD)
tests_unit_test_plugins_LDFLAGS = $(DAEMON_UNIT_LINKFLAGS)
TESTS += tests/unit/test_plugins

# aloop_daemon_listener_at(): the listeners a plugin's settings can see.
check_PROGRAMS += tests/unit/test_listening
tests_unit_test_listening_SOURCES = tests/unit/test_listening.c \
	tests/unit/daemon_test.c tests/unit/daemon_test.h \
	$(ALOOPD_CONFIG_SOURCES)
tests_unit_test_listening_CPPFLAGS = $(DAEMON_UNIT_CPPFLAGS)
tests_unit_test_listening_LDADD = $(DAEMON_UNIT_LDADD)
tests_unit_test_listening_LDFLAGS = $(DAEMON_UNIT_LINKFLAGS)
TESTS += tests/unit/test_listening
