# Unit tests: tasks (see tests/local.mk).
check_PROGRAMS += tests/unit/test_task
tests_unit_test_task_SOURCES = tests/unit/test_task.c tests/unit/loop-test.h
tests_unit_test_task_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_task_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_task
