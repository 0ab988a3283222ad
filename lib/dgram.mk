# libaloop: datagram endpoints (see lib/local.mk).
lib_libaloop_core_la_SOURCES += lib/dgram.c lib/dgram_endpoint.c \
	lib/dgram-int.h
