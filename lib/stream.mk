# libaloop: stream transports, servers, connections, name resolution, the
# sock_* calls and pipes (see lib/local.mk).
lib_libaloop_core_la_SOURCES += \
	lib/transport.c lib/transport-int.h lib/stream.c lib/forward.c \
	lib/server.c lib/connect.c lib/resolve.c lib/sock.c lib/pipe.c \
	lib/net-int.h lib/proxy_header.c lib/proxy_accept.c lib/proxy-int.h
