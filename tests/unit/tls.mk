# Unit tests: tls (see tests/local.mk).  The certificates are made at test
# time by tls_certs.c, shared by the TLS test programs.
check_LTLIBRARIES += tests/unit/libtlscerts.la
tests_unit_libtlscerts_la_SOURCES = tests/unit/tls_certs.c tests/unit/tls_certs.h
tests_unit_libtlscerts_la_CPPFLAGS = $(TEST_CPPFLAGS)
TLS_TEST_LDADD = tests/unit/libtlscerts.la $(TEST_LDADD) $(OPENSSL_LIBS)

check_PROGRAMS += tests/unit/test_tls_context
tests_unit_test_tls_context_SOURCES = tests/unit/test_tls_context.c
tests_unit_test_tls_context_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_tls_context_LDADD = $(TLS_TEST_LDADD)
TESTS += tests/unit/test_tls_context

check_PROGRAMS += tests/unit/test_tls
tests_unit_test_tls_SOURCES = tests/unit/test_tls.c
tests_unit_test_tls_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_tls_LDADD = $(TLS_TEST_LDADD)
TESTS += tests/unit/test_tls
