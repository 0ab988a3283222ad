# Tests: CUnit programs per library module (tests/unit), and tests that run
# the real aloopd (tests/daemon).  Each area keeps its programs in a fragment.
check_LTLIBRARIES += tests/unit/librunner.la
tests_unit_librunner_la_SOURCES = tests/unit/runner.c tests/unit/runner.h
tests_unit_librunner_la_CPPFLAGS = $(AM_CPPFLAGS) $(CUNIT_CFLAGS)

# What a unit test program needs: the library's internals and the runner.
TEST_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/lib -I$(top_srcdir)/tests/unit \
	$(CUNIT_CFLAGS) $(LIBEVENT_CFLAGS) $(OPENSSL_CFLAGS)
TEST_LDADD = tests/unit/librunner.la lib/libaloop-core.la $(CUNIT_LIBS)

AM_TESTS_ENVIRONMENT = \
	top_srcdir='$(abs_top_srcdir)'; top_builddir='$(abs_top_builddir)'; \
	export top_srcdir top_builddir; \
	ASAN_OPTIONS="$${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"; \
	UBSAN_OPTIONS="$${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"; \
	export ASAN_OPTIONS UBSAN_OPTIONS;

check_PROGRAMS += tests/unit/test_version
tests_unit_test_version_SOURCES = tests/unit/test_version.c
tests_unit_test_version_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_version_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_version

include tests/unit/core.mk
include tests/unit/stream.mk
include tests/unit/tls.mk
include tests/unit/dgram.mk
include tests/unit/process.mk
include tests/unit/task.mk
include tests/unit/daemon.mk
include tests/daemon/local.mk
include tests/hostile/local.mk

# libFuzzer targets, built and run by tests/fuzz/run.sh with clang (not by
# make), with their seed corpus.
EXTRA_DIST += tests/fuzz

# The fiber switch alone, built for another machine and run under
# qemu-user by script/cross-fiber (not by make).
EXTRA_DIST += tests/cross
