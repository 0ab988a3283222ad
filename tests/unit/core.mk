# Unit tests: core (see tests/local.mk).

check_PROGRAMS += tests/unit/test_future tests/unit/test_executor
tests_unit_test_future_SOURCES = tests/unit/test_future.c
tests_unit_test_future_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_future_LDADD = $(TEST_LDADD)
tests_unit_test_executor_SOURCES = tests/unit/test_executor.c
tests_unit_test_executor_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_executor_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_future tests/unit/test_executor
check_PROGRAMS += tests/unit/test_loop
tests_unit_test_loop_SOURCES = tests/unit/test_loop.c tests/unit/loop-test.h
tests_unit_test_loop_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_loop_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_loop

check_PROGRAMS += tests/unit/test_signal
tests_unit_test_signal_SOURCES = tests/unit/test_signal.c tests/unit/loop-test.h
tests_unit_test_signal_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_signal_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_signal

check_PROGRAMS += tests/unit/test_policy
tests_unit_test_policy_SOURCES = tests/unit/test_policy.c tests/unit/loop-test.h
tests_unit_test_policy_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_policy_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_policy

# -export-dynamic lets dladdr name the test's callbacks in debug logs.
check_PROGRAMS += tests/unit/test_exception
tests_unit_test_exception_SOURCES = tests/unit/test_exception.c \
	tests/unit/loop-test.h
tests_unit_test_exception_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_exception_LDADD = $(TEST_LDADD)
tests_unit_test_exception_LDFLAGS = $(AM_LDFLAGS) -export-dynamic
TESTS += tests/unit/test_exception
