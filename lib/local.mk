# libaloop.  Everything is compiled into a convenience library first, so
# that the unit tests can link the library's internals (aloop__ symbols are
# hidden in the shared object); libaloop.la then exports only ALOOP_API.
# Each module keeps its source list in its own fragment below.
noinst_LTLIBRARIES += lib/libaloop-core.la
lib_libaloop_core_la_SOURCES = \
	lib/version.c lib/error.c lib/log.c
lib_libaloop_core_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/lib
lib_libaloop_core_la_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden \
	$(LIBEVENT_CFLAGS) $(LIBEVENT_OPENSSL_CFLAGS) $(OPENSSL_CFLAGS)
lib_libaloop_core_la_LIBADD = \
	$(LIBEVENT_OPENSSL_LIBS) $(LIBEVENT_LIBS) $(OPENSSL_LIBS) $(PTHREAD_LIBS)

include lib/core.mk
include lib/stream.mk
include lib/tls.mk
include lib/dgram.mk
include lib/process.mk
include lib/task.mk

lib_LTLIBRARIES += lib/libaloop.la
lib_libaloop_la_SOURCES =
# An empty source list still needs a language for the link.
nodist_EXTRA_lib_libaloop_la_SOURCES = lib/dummy.c
lib_libaloop_la_LIBADD = lib/libaloop-core.la
lib_libaloop_la_LDFLAGS = $(AM_LDFLAGS) -version-info $(ALOOP_LT_VERSION) -no-undefined

aloopincludedir = $(includedir)/aloop
dist_aloopinclude_HEADERS = \
	include/aloop/aloop.h include/aloop/common.h include/aloop/log.h \
	include/aloop/loop.h include/aloop/future.h include/aloop/protocol.h \
	include/aloop/transport.h include/aloop/server.h include/aloop/net.h \
	include/aloop/tls.h include/aloop/subprocess.h include/aloop/plugin.h include/aloop/host.h
nodist_aloopinclude_HEADERS = include/aloop/version.h
EXTRA_DIST += include/aloop/version.h.in aloop.pc.in
