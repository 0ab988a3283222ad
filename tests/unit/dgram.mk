# Unit tests: datagram endpoints (see tests/local.mk).
check_PROGRAMS += tests/unit/test_dgram
tests_unit_test_dgram_SOURCES = tests/unit/test_dgram.c
tests_unit_test_dgram_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_dgram_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_dgram
