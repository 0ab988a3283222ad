# Unit tests: subprocesses (see tests/local.mk).
check_PROGRAMS += tests/unit/test_subprocess
tests_unit_test_subprocess_SOURCES = tests/unit/test_subprocess.c
tests_unit_test_subprocess_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_subprocess_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_subprocess
