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
