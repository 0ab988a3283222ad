# Unit tests: tasks and streams (see tests/local.mk).  test_streams uses
# the TLS tests' certificates (tests/unit/tls.mk).
check_PROGRAMS += tests/unit/test_task
tests_unit_test_task_SOURCES = tests/unit/test_task.c tests/unit/loop-test.h
tests_unit_test_task_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_task_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_task

check_PROGRAMS += tests/unit/test_streams
tests_unit_test_streams_SOURCES = tests/unit/test_streams.c \
	tests/unit/loop-test.h
tests_unit_test_streams_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_streams_LDADD = tests/unit/libtlscerts.la $(TEST_LDADD) \
	$(OPENSSL_LIBS)
TESTS += tests/unit/test_streams
