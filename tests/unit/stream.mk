# Unit tests: stream transports, servers, connections, resolution, sock_*
# calls and pipes (see tests/local.mk).  They share the recording protocol
# and loop helpers of stream_util.c.
check_LTLIBRARIES += tests/unit/libstreamutil.la
tests_unit_libstreamutil_la_SOURCES = \
	tests/unit/stream_util.c tests/unit/stream_util.h
tests_unit_libstreamutil_la_CPPFLAGS = $(TEST_CPPFLAGS)

STREAM_TEST_LDADD = tests/unit/libstreamutil.la $(TEST_LDADD)

check_PROGRAMS += tests/unit/test_stream
tests_unit_test_stream_SOURCES = tests/unit/test_stream.c
tests_unit_test_stream_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_stream_LDADD = $(STREAM_TEST_LDADD)
TESTS += tests/unit/test_stream

check_PROGRAMS += tests/unit/test_server
tests_unit_test_server_SOURCES = tests/unit/test_server.c
tests_unit_test_server_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_server_LDADD = $(STREAM_TEST_LDADD)
TESTS += tests/unit/test_server

# How connections end: abort resets, close is bounded (close_timeout).
check_PROGRAMS += tests/unit/test_close
tests_unit_test_close_SOURCES = tests/unit/test_close.c
tests_unit_test_close_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_close_LDADD = $(STREAM_TEST_LDADD)
TESTS += tests/unit/test_close

check_PROGRAMS += tests/unit/test_connect
tests_unit_test_connect_SOURCES = tests/unit/test_connect.c
tests_unit_test_connect_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_connect_LDADD = $(STREAM_TEST_LDADD)
TESTS += tests/unit/test_connect

check_PROGRAMS += tests/unit/test_net
tests_unit_test_net_SOURCES = tests/unit/test_net.c
tests_unit_test_net_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_net_LDADD = $(STREAM_TEST_LDADD)
TESTS += tests/unit/test_net

check_PROGRAMS += tests/unit/test_pipe
tests_unit_test_pipe_SOURCES = tests/unit/test_pipe.c
tests_unit_test_pipe_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_pipe_LDADD = $(STREAM_TEST_LDADD)
TESTS += tests/unit/test_pipe

# create_server/create_connection handing their sockets to TLS; the
# certificates come from the TLS tests' helper (tests/unit/tls.mk).
check_PROGRAMS += tests/unit/test_stream_tls
tests_unit_test_stream_tls_SOURCES = tests/unit/test_stream_tls.c
tests_unit_test_stream_tls_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_stream_tls_LDADD = tests/unit/libtlscerts.la \
	$(STREAM_TEST_LDADD) $(OPENSSL_LIBS)
TESTS += tests/unit/test_stream_tls

# Transports handed out by futures outlive connection_lost (every kind).
check_PROGRAMS += tests/unit/test_lifetime
tests_unit_test_lifetime_SOURCES = tests/unit/test_lifetime.c
tests_unit_test_lifetime_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_lifetime_LDADD = tests/unit/libtlscerts.la \
	$(STREAM_TEST_LDADD) $(OPENSSL_LIBS)
TESTS += tests/unit/test_lifetime

# The PROXY protocol header parser (pure: no loop), and servers that read
# the header before TLS and the protocol.
check_PROGRAMS += tests/unit/test_proxy_header
tests_unit_test_proxy_header_SOURCES = tests/unit/test_proxy_header.c
tests_unit_test_proxy_header_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_proxy_header_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_proxy_header

check_PROGRAMS += tests/unit/test_proxy_server
tests_unit_test_proxy_server_SOURCES = tests/unit/test_proxy_server.c
tests_unit_test_proxy_server_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_proxy_server_LDADD = tests/unit/libtlscerts.la \
	$(STREAM_TEST_LDADD) $(OPENSSL_LIBS)
TESTS += tests/unit/test_proxy_server

# aloop_transport_forward (splice between two stream sockets) and the
# stream's read-until-drained.
check_PROGRAMS += tests/unit/test_forward
tests_unit_test_forward_SOURCES = tests/unit/test_forward.c
tests_unit_test_forward_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_forward_LDADD = $(STREAM_TEST_LDADD) -lpthread
TESTS += tests/unit/test_forward
